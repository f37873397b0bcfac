//! From facts to a verdict: the checklist, the warnings, and exactly one cause.
//!
//! Every check that applies runs and records what it saw; each failing check proposes a
//! cause; the verdict is the proposal that comes first in [`Cause::PRECEDENCE`]. An unreadable
//! token is `token_tampered` before anything else (nothing else about it can be judged).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward::danger::decode_unverified;
use keyward::jwk::{JwkSet, VerifyingKey};
use keyward::{Algorithm, DEFAULT_MAX_TOKEN_LEN, Policy, Reason, verify_with_keys};
use serde_json::{Map, Value, json};

use super::Settings;
use super::causes::{self, Cause};
use super::checks::{Checklist, Status, fetch_checks, jwks_wire, set_warnings};
use super::keyset::{self, Cached, Live};
use crate::input::Token;
use crate::when;
use crate::wire::{DoctorReport, DoctorToken};

/// A finished diagnosis.
#[derive(Debug)]
pub(crate) struct Diagnosis {
    pub(crate) cause: Cause,
    /// Why this cause, in one line.
    pub(crate) why: String,
    pub(crate) list: Checklist,
    pub(crate) token: DoctorToken,
}

/// The causes proposed by failing checks.
#[derive(Debug, Default)]
struct Proposals(Vec<(Cause, String)>);

impl Proposals {
    fn add(&mut self, cause: Cause, why: impl Into<String>) {
        self.0.push((cause, why.into()));
    }

    /// The proposal first in precedence order; `ok` when none.
    fn verdict(self) -> (Cause, String) {
        let rank = |c: Cause| Cause::PRECEDENCE.iter().position(|p| *p == c).unwrap_or(usize::MAX);
        self.0
            .into_iter()
            .min_by_key(|(c, _)| rank(*c))
            .unwrap_or((Cause::Ok, "every check passed".to_owned()))
    }
}

/// `key` alone, under the token's kid (or without one), as a set.
fn single_key_set(key: &VerifyingKey, kid: Option<&str>) -> Option<JwkSet> {
    let mut jwk = key.public_jwk().clone();
    match kid {
        Some(kid) => {
            jwk.insert("kid".to_owned(), Value::String(kid.to_owned()));
        }
        None => {
            jwk.remove("kid");
        }
    }
    JwkSet::from_json(json!({"keys": [jwk]}).to_string().as_bytes()).ok()
}

/// True when `key` verifies the token's signature under `alg` (the key's own `alg` binding
/// applies; the header's other rules and the claims are judged separately, so a token with a
/// refused header still shows whether its signature is genuine).
fn signature_verifies(key: &VerifyingKey, token: &str, alg: Algorithm) -> bool {
    let Some((signing_input, signature)) = token.rsplit_once('.') else { return false };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    key.verify_signature(alg, signing_input.as_bytes(), &signature).is_ok()
}

/// A token's registered string or string-list claim as a list.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// A NumericDate claim in whole seconds (a fraction is cut off); `None` when absent or not a number.
/// Diagnoses one token against the live set and the cached copy.
pub(crate) fn diagnose(
    token: &Token,
    live: &Live,
    cached: Option<&Cached>,
    settings: &Settings,
) -> Diagnosis {
    let mut list = Checklist::default();
    let mut proposals = Proposals::default();
    let mut facts = DoctorToken {
        notes: token.notes.clone(),
        now: settings.now,
        leeway: settings.leeway,
        ..DoctorToken::default()
    };

    // 1. The token.
    let decoded = if token.not_utf8.is_some() {
        Err("the input is not UTF-8 text, so it cannot be a token".to_owned())
    } else if token.text.is_empty() {
        Err("the token is empty".to_owned())
    } else {
        decode_unverified(&token.text, DEFAULT_MAX_TOKEN_LEN).map_err(|e| e.detail().to_owned())
    };
    let mut header_problem = None;
    let (header, claims) = match decoded {
        Ok(d) => {
            header_problem = d.header_problem.map(|e| format!("{}: {}", e.reason(), e.detail()));
            (Some(d.header), d.claims.map_err(|e| facts.defect = Some(e)).ok())
        }
        Err(defect) => {
            facts.defect = Some(defect);
            (None, None)
        }
    };
    facts.header = header.clone();
    facts.claims = claims.clone();
    let text = |map: Option<&Map<String, Value>>, name: &str| {
        map.and_then(|m| m.get(name)).and_then(Value::as_str).map(str::to_owned)
    };
    facts.kid = text(header.as_ref(), "kid");
    facts.alg = text(header.as_ref(), "alg");
    facts.typ = text(header.as_ref(), "typ");
    let notes = if token.notes.is_empty() { String::new() } else { format!(" ({})", token.notes.join("; ")) };
    match (&facts.defect, &header) {
        (Some(defect), _) => {
            list.check("token", Status::Fail, format!("not a well-formed token: {defect}{notes}"))
        }
        (None, Some(_)) => {
            let iss = text(claims.as_ref(), "iss").unwrap_or_else(|| "(none)".to_owned());
            let aud = string_list(claims.as_ref().and_then(|c| c.get("aud")));
            list.check(
                "token",
                Status::Pass,
                format!(
                    "alg {}, kid {}, typ {}; iss {iss}, aud {}{notes}",
                    facts.alg.as_deref().unwrap_or("(none)"),
                    facts.kid.as_deref().map_or_else(|| "(none)".to_owned(), |k| format!("{k:?}")),
                    facts.typ.as_deref().unwrap_or("(none)"),
                    if aud.is_empty() { "(none)".to_owned() } else { aud.join(", ") },
                ),
            );
        }
        (None, None) => {}
    }
    if let Some(problem) = header_problem.filter(|_| facts.defect.is_none()) {
        // What verification would refuse before any key is tried (`crit`, `b64`, `alg: none`).
        list.check("header", Status::Warn, format!("verification refuses this header: {problem}"));
    }

    // 2-3. Discovery, fetch, keys.
    for (cause, why) in fetch_checks(&mut list, live, settings) {
        proposals.add(cause, why);
    }
    if let Some(set) = &live.set {
        for key in set.keys() {
            list.check("key", Status::Pass, key_line(key));
        }
        for aside in set.set_aside() {
            let kid = aside.kid.as_deref().map_or_else(|| format!("#{}", aside.index), |k| format!("{k:?}"));
            list.check(
                "key",
                Status::Fail,
                format!("key {kid} set aside ({}): {}", aside.problem.as_str(), aside.detail),
            );
        }
        set_warnings(&mut list, set, live.any_kid, settings.now);
    }

    let Some(header) = header.filter(|_| facts.defect.is_none()) else {
        let why = format!("not a well-formed token: {}", facts.defect.clone().unwrap_or_default());
        return finish(list, Cause::TokenTampered, why, facts);
    };
    let claims = claims.as_ref();
    let kid = facts.kid.clone();
    let kid = kid.as_deref();
    let now = settings.now;
    let alg: Option<Algorithm> = facts.alg.as_deref().and_then(|a| a.parse().ok());

    // 4-5. Kids and signatures.
    let mut verified_by: Option<(std::sync::Arc<VerifyingKey>, bool)> = None; // (key, live)
    let mut live_kid_known = false;
    if let Some(set) = &live.set {
        let matching: Vec<_> = match kid {
            _ if live.any_kid => set.keys().iter().collect(),
            Some(kid) => set.keys_with_kid(kid).collect(),
            None => set.keys().iter().collect(),
        };
        live_kid_known = !matching.is_empty();
        let live_kids = keyset::kids(set);
        match kid {
            _ if live.any_kid => list.check(
                "kid_live",
                Status::Pass,
                "the key file holds one key without kid: it answers any kid",
            ),
            Some(k) if live_kid_known => {
                list.check("kid_live", Status::Pass, format!("kid {k:?} is in the live set"))
            }
            Some(k) => {
                if let Some(aside) = set.set_aside().iter().find(|a| a.kid.as_deref() == Some(k)) {
                    let why = format!(
                        "kid {k:?} names a key set aside ({}): {}",
                        aside.problem.as_str(),
                        aside.detail
                    );
                    list.check("kid_live", Status::Fail, why.clone());
                    proposals.add(Cause::AlgorithmMismatch, why);
                } else {
                    list.check(
                        "kid_live",
                        Status::Fail,
                        format!("kid {k:?} is not in the live set (kids: {})", live_kids.join(", ")),
                    );
                    if let Some(why) = causes::other_key_set(claims, live.origin.text()) {
                        list.check("key_set", Status::Fail, why.clone());
                        proposals.add(Cause::WrongKeySet, why);
                    }
                }
            }
            None => list.check(
                "kid_live",
                Status::Warn,
                format!(
                    "the token has no kid; every compatible live key is tried (kids: {})",
                    live_kids.join(", ")
                ),
            ),
        }
        match alg {
            None => {
                let name = facts.alg.clone().unwrap_or_else(|| "(none)".to_owned());
                let why =
                    format!("alg {name:?} is never accepted: keyward verifies only public-key signatures");
                list.check("signature", Status::Fail, why.clone());
                proposals.add(Cause::AlgorithmMismatch, why);
            }
            Some(alg) => {
                let compatible: Vec<_> = matching.iter().copied().filter(|k| k.supports(alg)).collect();
                if live_kid_known && compatible.is_empty() {
                    let described: Vec<String> = matching.iter().map(|k| k.describe()).collect();
                    let why = format!("token alg {alg} does not fit {}", described.join(", "));
                    list.check("signature", Status::Fail, why.clone());
                    proposals.add(Cause::AlgorithmMismatch, why);
                }
                let good = compatible.iter().find(|k| signature_verifies(k, &token.text, alg));
                if let Some(good) = good {
                    list.check("signature", Status::Pass, format!("verifies with {}", good.describe()));
                    verified_by = Some((std::sync::Arc::clone(good), true));
                } else {
                    if !compatible.is_empty() {
                        let tried: Vec<String> = compatible.iter().map(|k| k.describe()).collect();
                        list.check(
                            "signature",
                            Status::Fail,
                            format!("does not verify with {}", tried.join(", ")),
                        );
                    }
                    // Every other compatible live key: a wrong or reused kid, or a forgery?
                    let others: Vec<_> = set
                        .keys()
                        .iter()
                        .filter(|k| k.supports(alg) && !compatible.iter().any(|c| std::ptr::eq(*c, *k)))
                        .collect();
                    let other = others.iter().find(|k| signature_verifies(k, &token.text, alg));
                    match other {
                        Some(other) => {
                            let why = format!(
                                "{} (thumbprint {}) verifies the token, although the token names kid {}",
                                other.describe(),
                                other.thumbprint_b64(),
                                kid.map_or_else(|| "(none)".to_owned(), |k| format!("{k:?}"))
                            );
                            list.check("signature_other_keys", Status::Warn, why.clone());
                            // A live key verifies it under another kid: the kid is wrong or
                            // reused, nothing was dropped and nothing was forged.
                            proposals.add(Cause::KidReused, why);
                        }
                        None if !others.is_empty() => list.check(
                            "signature_other_keys",
                            Status::Fail,
                            format!(
                                "none of the {} other compatible live keys verifies it either",
                                others.len()
                            ),
                        ),
                        None => {}
                    }
                }
            }
        }
    }

    // The cached copy.
    if let Some(cached) = cached {
        let cached_matching: Vec<_> = match kid {
            Some(kid) => cached.set.keys_with_kid(kid).collect(),
            None => cached.set.keys().iter().collect(),
        };
        let age =
            cached.saved_at.map_or_else(String::new, |at| format!(", saved {}", when::relative(at, now)));
        match kid {
            Some(k) if cached_matching.is_empty() => list.check(
                "kid_cached",
                Status::Fail,
                format!(
                    "kid {k:?} is not in the cached copy {} (kids: {}{age})",
                    cached.path.display(),
                    keyset::kids(&cached.set).join(", ")
                ),
            ),
            Some(k) => list.check(
                "kid_cached",
                Status::Pass,
                format!("kid {k:?} is in the cached copy {}{age}", cached.path.display()),
            ),
            None => {}
        }
        let cached_good = match alg {
            Some(alg) => cached_matching
                .iter()
                .filter(|k| k.supports(alg))
                .find(|k| signature_verifies(k, &token.text, alg))
                .map(|k| std::sync::Arc::clone(k)),
            _ => None,
        };
        match (&verified_by, cached_good) {
            (Some((live_key, true)), cached_good) => {
                let same_material = cached_matching.iter().any(|k| k.thumbprint() == live_key.thumbprint());
                match kid {
                    Some(k) if cached_matching.is_empty() => proposals.add(
                        Cause::StaleCache,
                        format!("kid {k:?} is in the live set and verifies the token, but the cached copy lacks it"),
                    ),
                    Some(k) if !same_material && cached_good.is_none() => proposals.add(
                        Cause::StaleCache,
                        format!("the cached copy holds older key material under kid {k:?}; the live key verifies the token"),
                    ),
                    _ => {}
                }
            }
            (_, Some(good)) => {
                let why = format!(
                    "the cached {} (thumbprint {}) verifies the token",
                    good.describe(),
                    good.thumbprint_b64()
                );
                list.check("signature_cached", Status::Pass, why.clone());
                if live_kid_known && !live.any_kid {
                    proposals.add(
                        Cause::KidReused,
                        format!(
                            "the live set publishes other material under kid {}; {why}",
                            kid.unwrap_or("(none)")
                        ),
                    );
                } else if live.set.is_some() {
                    proposals.add(
                        Cause::KeyDroppedEarly,
                        format!("{why}, but the live set no longer publishes it"),
                    );
                }
                verified_by = Some((good, false));
            }
            (_, None) => {
                if !cached_matching.is_empty() && live.set.is_some() && verified_by.is_none() {
                    list.check(
                        "signature_cached",
                        Status::Fail,
                        "no cached key under this kid verifies it either",
                    );
                    proposals
                        .add(Cause::TokenTampered, "neither a live nor a cached key verifies the signature");
                }
            }
        }
    }
    facts.signature_verified = verified_by.as_ref().is_some_and(|(_, live)| *live);
    facts.verified_by = verified_by
        .as_ref()
        .map(|(k, live)| format!("{}{}", k.describe(), if *live { "" } else { " (cached)" }));
    if live.set.is_some() && verified_by.is_none() && alg.is_some() {
        if live_kid_known {
            proposals.add(Cause::TokenTampered, "no live or cached key verifies the signature");
        } else if let Some(k) = kid {
            let never_cached = cached.is_some_and(|c| c.set.keys_with_kid(k).next().is_none());
            if never_cached {
                // Neither copy ever held it: nothing was dropped.
                proposals.add(
                    Cause::TokenTampered,
                    format!(
                        "kid {k:?} is in neither the live set nor the cached copy: the token is signed by a key \
                         this key set has not published (a forgery, another environment, or an IdP that \
                         signs with a key before publishing it)"
                    ),
                );
            } else {
                proposals.add(
                    Cause::KeyDroppedEarly,
                    format!(
                        "kid {k:?} is not in the live set while the token is still valid: the IdP removed \
                         its key early (or signs with a key before publishing it: look again in a minute, or \
                         give --cached-jwks to tell the two apart)"
                    ),
                );
            }
        } else {
            proposals.add(Cause::TokenTampered, "the token has no kid and no live key verifies it");
        }
    }
    if verified_by.is_none()
        && let Some(why) = causes::foreign(&header, claims)
    {
        list.check("foreign", Status::Fail, why.clone());
        proposals.add(Cause::ForeignToken, why);
    }

    // 6. Claims.
    claim_checks(&mut list, &mut proposals, claims, settings);

    // The library's own verdict on a token doctor finds fine, so the two never disagree silently.
    let verified_live =
        verified_by.as_ref().filter(|(_, live)| *live).and_then(|(k, _)| single_key_set(k, kid));
    if let Some(set_key) = verified_live
        && let Ok(policy) = full_policy(settings)
        && let Err(e) = verify_with_keys(&set_key, &policy, &token.text, now)
        && !proposals.0.iter().any(|(c, _)| *c != Cause::StaleCache)
    {
        // Missing or ill-typed claims the policy requires: not a token for this API.
        let cause = match e.reason() {
            Reason::Expired => Cause::Expired,
            Reason::NotYetValid | Reason::IssuedInFuture => Cause::ClockSkew,
            Reason::IssuerMismatch | Reason::AudienceMismatch => Cause::WrongKeySet,
            _ => Cause::ForeignToken,
        };
        let why = format!("keyward rejects it: {} ({})", e.reason(), e.detail());
        list.check("claims", Status::Fail, why.clone());
        proposals.add(cause, why);
    }

    let (cause, why) = proposals.verdict();
    finish(list, cause, why, facts)
}

fn full_policy(settings: &Settings) -> anyhow::Result<Policy> {
    let mut builder = Policy::builder().leeway(std::time::Duration::from_secs(settings.leeway));
    if let Some(issuer) = &settings.issuer {
        builder = builder.issuer(issuer.clone());
    }
    builder = if settings.audiences.is_empty() {
        builder.any_audience()
    } else {
        builder.audiences(settings.audiences.clone())
    };
    Ok(builder.build()?)
}

/// Issuer, audience, and the times with the leeway and how far off they are.
fn claim_checks(
    list: &mut Checklist,
    proposals: &mut Proposals,
    claims: Option<&Map<String, Value>>,
    settings: &Settings,
) {
    let Some(claims) = claims else { return };
    let iss = claims.get("iss").and_then(Value::as_str);
    match (&settings.issuer, iss) {
        (Some(expected), Some(iss)) if iss == expected => {
            list.check("issuer", Status::Pass, format!("iss {iss:?} equals the configured issuer"));
        }
        (Some(expected), Some(iss)) => {
            let why = format!("token iss: {}", causes::near_miss(expected, iss));
            // A literal template is named once, by the configuration's own check.
            if !list.checks.iter().any(|c| c.name == "issuer" && c.status == "fail") {
                list.check("issuer", Status::Fail, why.clone());
            }
            proposals.add(Cause::WrongKeySet, why);
        }
        (Some(expected), None) => {
            let why = format!("the token has no iss; the configured issuer is {expected:?}");
            list.check("issuer", Status::Fail, why.clone());
            proposals.add(Cause::WrongKeySet, why);
        }
        (None, _) => list.check("issuer", Status::Warn, "not checked (no --issuer)"),
    }
    let aud = string_list(claims.get("aud"));
    if settings.audiences.is_empty() {
        list.check("audience", Status::Warn, "not checked (no --audience)");
    } else if aud.iter().any(|a| settings.audiences.contains(a)) {
        list.check("audience", Status::Pass, format!("aud {} includes an accepted audience", aud.join(", ")));
    } else {
        let cognito = claims.get("token_use").and_then(Value::as_str) == Some("access") && aud.is_empty();
        let why = if cognito {
            format!(
                "the token has no aud: a Cognito access token (token_use access, client_id {}) carries no audience; \
                 send the ID token, or check client_id instead",
                claims.get("client_id").and_then(Value::as_str).unwrap_or("(none)")
            )
        } else {
            format!(
                "aud {} names none of the accepted audiences {}",
                if aud.is_empty() { "(none)".to_owned() } else { aud.join(", ") },
                settings.audiences.join(", ")
            )
        };
        list.check("audience", Status::Fail, why.clone());
        proposals.add(Cause::WrongKeySet, why);
    }
    let now = settings.now;
    let leeway = i64::try_from(settings.leeway).unwrap_or(i64::MAX);
    match when::numeric_date(claims, "exp") {
        Some(exp) => {
            let over = now.saturating_sub(exp).saturating_sub(leeway);
            // As the verifier judges it: valid while now < exp + leeway (RFC 7519 4.1.4).
            if over >= 0 {
                let why = format!(
                    "expired {}, {} beyond the {leeway} s leeway",
                    when::relative(exp, now),
                    when::span(over.unsigned_abs())
                );
                // Past exp is `expired`: only the server's Date (the `clock` check) can show that
                // this host's clock is what is off, and then `clock_skew` takes precedence.
                list.check("exp", Status::Fail, why.clone());
                proposals.add(Cause::Expired, why);
            } else {
                list.check("exp", Status::Pass, format!("expires {}", when::relative(exp, now)));
            }
        }
        None => list.check("exp", Status::Warn, "the token has no exp"),
    }
    for (name, what) in [("nbf", "not valid before"), ("iat", "issued")] {
        let Some(at) = when::numeric_date(claims, name) else { continue };
        let ahead = at.saturating_sub(now).saturating_sub(leeway);
        if ahead > 0 {
            let why = format!(
                "{name}: {what} {}, {} beyond the {leeway} s leeway: the issuer's clock is ahead of this one",
                when::relative(at, now),
                when::span(ahead.unsigned_abs())
            );
            list.check(if name == "nbf" { "nbf" } else { "iat" }, Status::Fail, why.clone());
            proposals.add(Cause::ClockSkew, why);
        } else {
            list.check(
                if name == "nbf" { "nbf" } else { "iat" },
                Status::Pass,
                format!("{what} {}", when::relative(at, now)),
            );
        }
    }
}

fn key_line(key: &VerifyingKey) -> String {
    let jwk = key.public_jwk();
    let member = |name: &str| match jwk.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("+"),
        _ => "(none)".to_owned(),
    };
    format!(
        "{}: use {}, alg {}, key_ops {}, thumbprint {}",
        key.describe(),
        member("use"),
        member("alg"),
        member("key_ops"),
        key.thumbprint_b64()
    )
}

fn finish(mut list: Checklist, cause: Cause, why: String, facts: DoctorToken) -> Diagnosis {
    let status = if cause == Cause::Ok { Status::Pass } else { Status::Fail };
    list.check("cause", status, format!("{}: {why}", cause.as_str()));
    Diagnosis { cause, why, list, token: facts }
}

impl Diagnosis {
    /// The checklist, the warnings, the cause and the fix, for people.
    pub(crate) fn human(&self) -> String {
        let mut out = self.list.human();
        out.push_str(&format!("cause: {} ({})\nfix: {}\n", self.cause.as_str(), self.why, self.cause.fix()));
        out
    }

    /// One line for `--stream` without `--json`.
    pub(crate) fn one_line(&self) -> String {
        let kid = self.token.kid.as_deref().map_or_else(String::new, |k| format!(" kid {k}"));
        format!("{}{kid}: {}", self.cause.as_str(), self.why)
    }

    /// The `--json` object.
    pub(crate) fn wire(&self, live: &Live, cached: Option<&Cached>, settings: &Settings) -> DoctorReport {
        DoctorReport {
            cause: self.cause.as_str(),
            warnings: self.list.warnings.clone(),
            checks: self.list.checks.clone(),
            fix: self.cause.fix().to_owned(),
            token: self.token.clone(),
            jwks: jwks_wire(live, cached, settings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_proposal_in_precedence_order_wins() {
        let mut proposals = Proposals::default();
        assert_eq!(Proposals::default().verdict().0, Cause::Ok);
        proposals.add(Cause::StaleCache, "a");
        proposals.add(Cause::Expired, "b");
        proposals.add(Cause::ClockSkew, "c");
        assert_eq!(proposals.verdict(), (Cause::ClockSkew, "c".to_owned()));
        let mut proposals = Proposals::default();
        proposals.add(Cause::TokenTampered, "x");
        proposals.add(Cause::ForeignToken, "y");
        assert_eq!(proposals.verdict().0, Cause::ForeignToken);
    }
}
