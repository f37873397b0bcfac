//! Every JSON object the CLI prints, as serde structs: the field names here are a contract
//! (README, "JSON output"). `verify --json` and `inspect --json` share names for the same
//! things: `header`, `claims`, `kid`, `alg`, `notes`, `reason`, `detail`.
//!
//! Fields are only ever added; existing ones keep their names and meaning, because outside
//! scripts read them.

use std::borrow::Cow;

use keyward::clock::format_rfc3339;
use keyward::source::{FetchDecision, FetchError, FetchStage, GraceKind};
use keyward::{Error, KeyEvidence, Reason, Verified};
use serde::ser::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object taken from the token: its own bytes as is when they are already one line,
/// else the parsed object (so the output stays one line per object).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Object<'a> {
    /// The token's own JSON text, on one line, without surrounding blanks: keyward's strict
    /// scanner already checked it as one duplicate-free object, so it is embedded verbatim.
    Scanned(&'a [u8]),
    /// A parsed object.
    Map(&'a Map<String, Value>),
}

impl<'a> Object<'a> {
    /// The token's JSON bytes, which keyward's strict scanner validated as one object,
    /// embedded verbatim when they hold no line break; `parsed` is the fallback.
    pub(crate) fn scanned(bytes: &'a [u8], parsed: impl FnOnce() -> &'a Map<String, Value>) -> Self {
        if bytes.contains(&b'\n') || bytes.contains(&b'\r') {
            return Self::Map(parsed());
        }
        // The blanks around the object are left out, as serde_json's `RawValue` leaves them.
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
        let end = bytes.iter().rposition(|b| !blank(b)).map_or(start, |at| at.saturating_add(1));
        let text = bytes.get(start..end).unwrap_or_default();
        if text.first() == Some(&b'{') && text.last() == Some(&b'}') {
            return Self::Scanned(text);
        }
        Self::Map(parsed())
    }

    /// Writes the object: scanned bytes as they are, a parsed object through serde_json.
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Self::Scanned(text) => {
                out.extend_from_slice(text);
                Ok(())
            }
            Self::Map(map) => serde_json::to_writer(out, map),
        }
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Scanned(text) => {
                // Checked again here: this is the reference path the fast writer is tested against.
                let raw: &RawValue = serde_json::from_slice(text).map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
            Self::Map(map) => map.serialize(serializer),
        }
    }
}

/// The `notes` list: what keyward did to the input, then what it did not check.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notes<'a> {
    /// What keyward removed from the input (quotes, a `Bearer ` prefix).
    pub(crate) input: &'a [String],
    /// What was not checked (`iss`, `aud`); only for a verified token.
    pub(crate) unchecked: &'static [&'static str],
}

impl Notes<'_> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        self.input.iter().map(String::as_str).chain(self.unchecked.iter().copied())
    }
}

impl Serialize for Notes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The `verify --json` object (one per token; one per line with `--stream`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct VerifyReport<'a> {
    /// True only when the token verified.
    pub(crate) valid: bool,
    /// The stable reason code of a rejection; null when valid.
    pub(crate) reason: Option<&'static str>,
    /// For people: the key that verified, or why the token was rejected.
    pub(crate) detail: Cow<'a, str>,
    /// `detail` already written as a JSON string, when the caller keeps one (the fast writer
    /// copies it instead of escaping `detail` again).
    #[serde(skip)]
    pub(crate) detail_json: Option<&'a [u8]>,
    /// The token's header (decoded, unverified when rejected); null when unreadable.
    pub(crate) header: Option<Object<'a>>,
    /// The claims, only when the signature verified (so they are authentic).
    pub(crate) claims: Option<Object<'a>>,
    /// The token's `kid`.
    pub(crate) kid: Option<&'a str>,
    /// The token's `alg`, when known.
    pub(crate) alg: Option<&'static str>,
    /// True when the signature verified (valid, or rejected by a later claim check).
    pub(crate) signature_verified: bool,
    /// What keyward did to the input (removed quotes, a `Bearer ` prefix) and what it did not
    /// check (`iss`, `aud`); empty when nothing.
    pub(crate) notes: Notes<'a>,
    /// For `expired`, `not_yet_valid` and `issued_in_future`: the times compared; else null.
    pub(crate) times: Option<Times>,
    /// What the key source knew and did (a fetched key set only; null for a key file).
    pub(crate) keys: Option<KeysReport>,
}

/// The `keys` object: the key set's age and what this verification made the key source do.
#[derive(Debug, serde::Serialize)]
pub(crate) struct KeysReport {
    /// When the key set used was fetched (RFC 3339 UTC); null if never.
    pub(crate) fetched_at: Option<String>,
    /// How old that key set was, whole seconds.
    pub(crate) age_s: Option<u64>,
    /// `none` (no fetch needed), `made` (this verification fetched or joined a fetch) or
    /// `refused` (a fetch could have helped and was not made).
    pub(crate) fetch: &'static str,
    /// For `made`: why (`unknown_kid`, `signature_retry`, `startup`, ...).
    pub(crate) trigger: Option<&'static str>,
    /// For `made`: whether the fetch succeeded.
    pub(crate) fetch_succeeded: Option<bool>,
    /// For `refused`: `limiter`, `cooldown`, `negative_cache`, `outage_backoff`, `rate_limited` or
    /// `wait_timed_out`.
    pub(crate) reason: Option<&'static str>,
    /// For `refused`: seconds until a fetch may be made for this token, when known.
    pub(crate) retry_after_s: Option<f64>,
    /// True when a recent successful fetch lacked the token's kid.
    pub(crate) kid_negatively_cached: bool,
    /// Set when a key no longer published verified the token: `awaiting_confirmation` (the
    /// removal is confirmed by the next fetch, within 60 s) or `removal_grace` (opt-in).
    pub(crate) grace: Option<&'static str>,
    /// True when a fetch showed new key material under the token's kid.
    pub(crate) material_changed: bool,
    /// True when the key set is past its TTL and served because refreshing it fails.
    pub(crate) stale: bool,
    /// The fetch failure behind the verdict, when one failed.
    pub(crate) fetch_error: Option<FetchErrorReport>,
}

/// A failed fetch: the stage (`dns`, `connect`, `tls`, `http_status`, `timeout`, `body`,
/// `parse`, `policy`), the HTTP status when one came, the URL and what went wrong.
#[derive(Debug, serde::Serialize)]
pub(crate) struct FetchErrorReport {
    pub(crate) stage: &'static str,
    pub(crate) status: Option<u16>,
    pub(crate) url: String,
    pub(crate) detail: String,
}

impl KeysReport {
    /// The report of `evidence`, with the fetch failure behind the verdict if any.
    pub(crate) fn of(evidence: Option<&KeyEvidence>, fetch_error: Option<&FetchError>) -> Option<Self> {
        let e = evidence?;
        let (trigger, fetch_succeeded, reason, retry_after_s) = match e.fetch {
            FetchDecision::Made { trigger, succeeded } => {
                (Some(trigger.as_str()), Some(succeeded), None, None)
            }
            FetchDecision::Refused { reason, retry_after } => (
                None,
                None,
                Some(reason.as_str()),
                retry_after.map(|d| (d.as_secs_f64() * 10.0).ceil() / 10.0),
            ),
            _ => (None, None, None, None),
        };
        Some(Self {
            fetched_at: e.fetched_at_unix.map(format_rfc3339),
            age_s: e.age.map(|a| a.as_secs()),
            fetch: e.fetch.as_str(),
            trigger,
            fetch_succeeded,
            reason,
            retry_after_s,
            kid_negatively_cached: e.kid_negatively_cached,
            grace: e.grace.map(GraceKind::as_str),
            material_changed: e.material_changed,
            stale: e.stale,
            fetch_error: fetch_error.map(|f| FetchErrorReport {
                stage: f.stage.as_str(),
                status: match f.stage {
                    FetchStage::HttpStatus(code) => Some(code),
                    _ => None,
                },
                url: f.url.clone(),
                detail: f.detail.clone(),
            }),
        })
    }
}

/// The times behind a time-claim rejection.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Times {
    /// Which claim: `exp`, `nbf` or `iat`.
    pub(crate) claim: &'static str,
    /// The claim's value, Unix seconds.
    pub(crate) at: i64,
    /// The same as RFC 3339 UTC.
    pub(crate) at_rfc3339: String,
    /// The verifier's clock, Unix seconds.
    pub(crate) now: i64,
    /// The leeway applied, seconds.
    pub(crate) leeway: u64,
}

impl Times {
    /// The times of a time-claim rejection, if `error` is one.
    pub(crate) fn of(error: &Error) -> Option<Self> {
        let claim = match error.reason() {
            Reason::Expired => "exp",
            Reason::NotYetValid => "nbf",
            Reason::IssuedInFuture => "iat",
            _ => return None,
        };
        let t = error.times()?;
        Some(Self { claim, at: t.claim, at_rfc3339: format_rfc3339(t.claim), now: t.now, leeway: t.leeway })
    }
}

impl<'a> VerifyReport<'a> {
    /// The report of a verified token.
    pub(crate) fn valid(v: &'a Verified, detail: &'a str, notes: Notes<'a>) -> Self {
        Self {
            valid: true,
            reason: None,
            detail: Cow::Borrowed(detail),
            detail_json: None,
            header: Some(Object::scanned(v.header_json(), || v.header())),
            claims: Some(Object::scanned(v.payload_json(), || v.claims())),
            kid: v.kid(),
            alg: Some(v.alg().as_str()),
            signature_verified: true,
            notes,
            times: None,
            keys: KeysReport::of(v.keys(), None),
        }
    }

    /// The report of a rejected token; `claims` are shown only after a good signature.
    pub(crate) fn rejected(
        e: &'a Error,
        header: Option<&'a Map<String, Value>>,
        claims: Option<&'a Map<String, Value>>,
        notes: Notes<'a>,
    ) -> Self {
        let verified_sig = e.signature_verified();
        Self {
            valid: false,
            reason: Some(e.reason().as_str()),
            detail: Cow::Borrowed(e.detail()),
            detail_json: None,
            header: header.map(Object::Map),
            claims: if verified_sig { claims.map(Object::Map) } else { None },
            kid: e.kid(),
            alg: e.alg().map(|a| a.as_str()),
            signature_verified: verified_sig,
            notes,
            times: Times::of(e),
            keys: KeysReport::of(e.keys(), e.fetch_error()),
        }
    }

    /// Writes the same bytes as [`write_line`] does for this report, without serde's generic
    /// machinery: the members in their fixed order, the token's scanned JSON copied verbatim,
    /// and strings copied as they are unless they need escaping. `--stream` writes every report
    /// this way; the tests hold it to the serde output byte for byte.
    pub(crate) fn write_line_fast(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(if self.valid {
            b"{\"valid\":true,\"reason\":"
        } else {
            b"{\"valid\":false,\"reason\":"
        });
        write_opt_str(out, self.reason)?;
        out.extend_from_slice(b",\"detail\":");
        match self.detail_json {
            Some(json) => out.extend_from_slice(json),
            None => write_str(out, &self.detail)?,
        }
        out.extend_from_slice(b",\"header\":");
        write_opt_object(out, self.header.as_ref())?;
        out.extend_from_slice(b",\"claims\":");
        write_opt_object(out, self.claims.as_ref())?;
        out.extend_from_slice(b",\"kid\":");
        write_opt_str(out, self.kid)?;
        out.extend_from_slice(b",\"alg\":");
        write_opt_str(out, self.alg)?;
        out.extend_from_slice(if self.signature_verified {
            b",\"signature_verified\":true,\"notes\":["
        } else {
            b",\"signature_verified\":false,\"notes\":["
        });
        for (n, note) in self.notes.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_str(out, note)?;
        }
        out.extend_from_slice(b"],\"times\":");
        serde_json::to_writer(&mut *out, &self.times)?;
        out.extend_from_slice(b",\"keys\":");
        serde_json::to_writer(&mut *out, &self.keys)?;
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// The `inspect --json` object. Decoding only: `verified` is always false.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct InspectReport<'a> {
    /// Always false: nothing was verified.
    pub(crate) verified: bool,
    /// When the token could not be decoded: its reason code; else null.
    pub(crate) reason: Option<&'static str>,
    /// When the token could not be decoded: why; else null.
    pub(crate) detail: Option<&'a str>,
    /// The decoded header; null when not decodable.
    pub(crate) header: Option<&'a Map<String, Value>>,
    /// The decoded (unverified) claims; null when not decodable.
    pub(crate) claims: Option<&'a Map<String, Value>>,
    /// Why the payload is not a JSON object, when it is not.
    pub(crate) claims_error: Option<&'a str>,
    /// The header's `kid`, when a string.
    pub(crate) kid: Option<&'a str>,
    /// The header's `alg`, when a string.
    pub(crate) alg: Option<&'a str>,
    /// The signature's length in bytes.
    pub(crate) signature_bytes: Option<usize>,
    /// Why verification would reject the header before trying any key.
    pub(crate) header_problem: Option<Problem<'a>>,
    /// What keyward removed from the input; empty when nothing.
    pub(crate) notes: Vec<Cow<'a, str>>,
    /// `exp`/`nbf` against the clock (no leeway); null when the claims are unreadable.
    pub(crate) validity: Option<Validity>,
}

/// A reason code with its explanation.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Problem<'a> {
    /// The stable reason code.
    pub(crate) reason: &'static str,
    /// For people.
    pub(crate) detail: &'a str,
}

/// Whether a decoded token is inside its validity window now (no leeway).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Validity {
    /// The clock used, Unix seconds.
    pub(crate) now: i64,
    /// `exp` is at or before `now`.
    pub(crate) expired: bool,
    /// `nbf` is after `now`.
    pub(crate) not_yet_valid: bool,
}

/// Writes `s` as a JSON string, escaped as serde_json escapes it: quotes and backslashes get
/// a backslash, anything else is copied; a string holding a control character (rare: they
/// have several escape forms) is left to serde_json whole.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    let bytes = s.as_bytes();
    // Without an early exit, so the check runs many bytes at a time.
    let special = |b: u8| u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    if bytes.iter().fold(0u8, |any, b| any | special(*b)) == 0 {
        out.reserve(bytes.len().saturating_add(2));
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return Ok(());
    }
    if bytes.iter().any(|b| *b < 0x20) {
        return serde_json::to_writer(out, s);
    }
    out.reserve(bytes.len().saturating_add(2));
    out.push(b'"');
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|b| *b == b'"' || *b == b'\\') {
        let (plain, tail) = rest.split_at(at);
        out.extend_from_slice(plain);
        out.push(b'\\');
        if let Some((special, after)) = tail.split_first() {
            out.push(*special);
            rest = after;
        } else {
            rest = tail;
        }
    }
    out.extend_from_slice(rest);
    out.push(b'"');
    Ok(())
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) -> serde_json::Result<()> {
    match s {
        Some(s) => write_str(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn write_opt_object(out: &mut Vec<u8>, object: Option<&Object<'_>>) -> serde_json::Result<()> {
    match object {
        Some(object) => object.write(out),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// Writes `value` as one line of JSON.
pub(crate) fn write_line(out: &mut impl std::io::Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The `doctor --json` object: exactly these six members (README, "Doctor"); members are only
/// ever added inside `token` and `jwks`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DoctorReport {
    /// The one cause code (`ok`, `stale_cache`, …).
    pub(crate) cause: &'static str,
    /// Findings that do not decide the cause (`single_key`, `cache_ttl_too_long`, …).
    pub(crate) warnings: Vec<DoctorWarning>,
    /// The checklist, in the order it ran; the last check (`cause`) says why this cause.
    pub(crate) checks: Vec<DoctorCheck>,
    /// The fix, in one or two sentences.
    pub(crate) fix: String,
    /// The token as decoded (unverified).
    pub(crate) token: DoctorToken,
    /// The live key set and the cached copy.
    pub(crate) jwks: DoctorJwks,
}

/// One warning: a stable code and what was seen.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DoctorWarning {
    /// The stable code.
    pub(crate) code: &'static str,
    /// For people.
    pub(crate) detail: String,
}

/// One line of the checklist.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DoctorCheck {
    /// What was checked: `token`, `header`, `issuer` (a `{tenantid}` template), `discovery`,
    /// `jwks_fetch`, `clock`, `key`, `kid_live`, `key_set`, `signature`, `signature_other_keys`,
    /// `kid_cached`, `signature_cached`, `foreign`, `issuer`, `audience`, `exp`, `nbf`, `iat`,
    /// `claims`, and last `cause`; `--audit` adds `cache_headers`, `discovery_consistency`,
    /// `key_count` and `kids`.
    pub(crate) name: &'static str,
    /// `pass`, `fail` or `warn`.
    pub(crate) status: &'static str,
    /// The facts seen.
    pub(crate) detail: String,
}

/// The token as doctor decoded it (nothing here is verified).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct DoctorToken {
    /// The header; null when the token is unreadable.
    pub(crate) header: Option<Map<String, Value>>,
    /// The claims (unverified); null when unreadable.
    pub(crate) claims: Option<Map<String, Value>>,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The header's `alg`.
    pub(crate) alg: Option<String>,
    /// The header's `typ`.
    pub(crate) typ: Option<String>,
    /// Why the token is not well formed, when it is not.
    pub(crate) defect: Option<String>,
    /// What was removed from the input (quotes, `Bearer `).
    pub(crate) notes: Vec<String>,
    /// The clock the times were judged by, Unix seconds.
    pub(crate) now: i64,
    /// The leeway, seconds.
    pub(crate) leeway: u64,
    /// True when a live key verified the signature.
    pub(crate) signature_verified: bool,
    /// The key (live, else cached) that verified the signature.
    pub(crate) verified_by: Option<String>,
}

/// The live key set as fetched (or read), and the cached copy.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct DoctorJwks {
    /// `file`, `url` or `discovery`.
    pub(crate) source: &'static str,
    /// The file, URL or issuer given.
    pub(crate) location: String,
    /// The JWKS URL fetched (given or discovered).
    pub(crate) url: Option<String>,
    /// The discovery step, with --issuer.
    pub(crate) discovery: Option<DoctorDiscovery>,
    /// The JWKS response's HTTP facts.
    pub(crate) http: Option<DoctorHttp>,
    /// The TTL the caching headers ask for, seconds (0 for no-cache/no-store).
    pub(crate) requested_ttl_s: Option<u64>,
    /// The server `Date` minus this host's clock, seconds (not with --now).
    pub(crate) date_skew_s: Option<i64>,
    /// The failed fetch, when it failed.
    pub(crate) fetch_error: Option<FetchErrorReport>,
    /// Every key: usable ones, then those set aside (with `problem`).
    pub(crate) keys: Vec<DoctorKey>,
    /// The cached copy, with --cached-jwks.
    pub(crate) cached: Option<DoctorCached>,
}

/// What discovery saw.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DoctorDiscovery {
    /// The metadata document used.
    pub(crate) url: Option<String>,
    /// Its HTTP status.
    pub(crate) status: Option<u16>,
    /// Its latency, milliseconds.
    pub(crate) latency_ms: Option<u64>,
    /// The document's `issuer`.
    pub(crate) issuer: Option<String>,
    /// True when it equals the configured issuer exactly.
    pub(crate) issuer_matches: bool,
    /// The document's `jwks_uri`.
    pub(crate) jwks_uri: Option<String>,
    /// Every URL tried with its outcome (status or failing stage).
    pub(crate) tried: Vec<(String, String)>,
}

/// The HTTP facts of the JWKS response.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DoctorHttp {
    pub(crate) status: u16,
    pub(crate) latency_ms: u64,
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: usize,
    pub(crate) cache_control: Option<String>,
    pub(crate) expires: Option<String>,
    pub(crate) etag: Option<String>,
    pub(crate) date: Option<String>,
    pub(crate) age: Option<u64>,
}

/// One key of a set, usable or set aside.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DoctorKey {
    pub(crate) kid: Option<String>,
    pub(crate) kty: Option<String>,
    pub(crate) crv: Option<String>,
    /// Key size in bits (usable keys only).
    pub(crate) bits: Option<usize>,
    pub(crate) alg: Option<String>,
    pub(crate) r#use: Option<String>,
    pub(crate) key_ops: Option<Vec<String>>,
    /// RFC 7638 thumbprint, base64url (usable keys only).
    pub(crate) thumbprint: Option<String>,
    /// Why the key was set aside (`weak`, `not_for_signing`, …); null when usable.
    pub(crate) problem: Option<&'static str>,
    /// A description, or what is wrong with it.
    pub(crate) detail: String,
}

/// The application's cached copy.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DoctorCached {
    pub(crate) path: String,
    /// For a keyward cache file: when it was saved (RFC 3339).
    pub(crate) saved_at: Option<String>,
    /// For a keyward cache file: the URL it was fetched from.
    pub(crate) jwks_uri: Option<String>,
    /// The kids of its usable keys.
    pub(crate) kids: Vec<String>,
    pub(crate) keys: Vec<DoctorKey>,
}

/// The `doctor --audit --json` object.
#[derive(Debug, serde::Serialize)]
pub(crate) struct AuditReport<'a> {
    /// Hygiene findings; empty when none (exit 0).
    pub(crate) warnings: &'a [DoctorWarning],
    /// The checklist.
    pub(crate) checks: &'a [DoctorCheck],
    /// The key set as fetched or read.
    pub(crate) jwks: &'a DoctorJwks,
}

/// The last line of `doctor --stream --json`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StreamSummary {
    /// Tokens diagnosed.
    pub(crate) tokens: u64,
    /// Counts by cause and kid, largest first.
    pub(crate) summary: Vec<StreamCount>,
}

/// How many tokens had this cause and kid.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StreamCount {
    pub(crate) cause: &'static str,
    pub(crate) kid: Option<String>,
    pub(crate) count: u64,
}

/// One `watch --json` line.
#[derive(Debug, serde::Serialize)]
pub(crate) struct WatchEvent {
    /// `initial`, `added`, `removed`, `fetch_failed` or `fetch_recovered`.
    pub(crate) event: &'static str,
    /// When it was observed (RFC 3339 UTC).
    pub(crate) at: String,
    /// The kid added or removed.
    pub(crate) kid: Option<String>,
    /// The key, described.
    pub(crate) key: Option<String>,
    /// For `removed`: how long the removed key and the newest remaining key were both
    /// published, seconds, when watch saw the newer one arrive.
    pub(crate) overlap_s: Option<u64>,
    /// The kids published after the event.
    pub(crate) kids: Vec<String>,
    /// For `fetch_failed`: the failure.
    pub(crate) detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::write_str;

    /// Strings are escaped exactly as serde_json escapes them.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let cases = [
            "",
            "plain",
            "key \"k1\" (RSA 2048, RS256)",
            "back\\slash\\",
            "\"",
            "\\\"\\",
            "del \u{7f}, é, 🔑, </script>",
            "tab\there, newline\n, nul \u{0}, \u{1f}",
        ];
        for case in cases {
            let mut fast = Vec::new();
            write_str(&mut fast, case).unwrap();
            assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(case).unwrap(), "{case:?}");
        }
    }
}
