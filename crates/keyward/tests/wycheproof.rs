//! Wycheproof conformance: every vector of the 13 files in `tests/data/wycheproof` (byte copies
//! of upstream C2SP/wycheproof files; provenance, commit and Apache-2.0 licence in that folder's
//! README and LICENSE) runs against keyward's public API. The files are part of the repository:
//! a missing or unreadable one fails the test, nothing is skipped.
//!
//! * JWS/JWK files: the group key goes through `JwkSet::from_json` and the token through
//!   `verify_with_keys`, the real public verification path. See [`run_jws`] for how payloads that
//!   are not JWT claims (`foo`, `123400`, empty) are judged.
//! * Primitive files (RSA PKCS#1 v1.5, RSA-PSS, ECDSA P1363, Ed25519): the key is built as a JWK,
//!   parsed by `JwkSet::from_json`, and `VerifyingKey::verify_signature(alg, msg, sig)` (the raw
//!   primitive the JWS layer calls) checks the signature.
//!
//! How a vector is judged lives in `wycheproof/overrides.rs`: the override table (decisions that
//! differ from the Wycheproof labels), the flag→reason table `DEFECTS` (the code an `invalid`
//! vector must get for the defect its flag or comment names), per-vector reason pins, and the
//! per-file reason counts (a snapshot of today's behaviour, not a spec).
//! Run with `cargo test -p keyward --test wycheproof -- --nocapture` to see the summary.

#[path = "wycheproof/overrides.rs"]
mod overrides;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward::danger::decode_unverified;
use keyward::internal::UnverifiedToken;
use keyward::internal::base64url;
use keyward::jwk::{JwkSet, VerifyingKey};
use keyward::{Algorithm, Error, Policy, Reason, verify_with_keys};
use serde_json::{Value, json};

use self::overrides::{
    DEFECTS, Defect, Due, ED25519_MODE, Expect, JWE_TESTS, Kind, Match, OVERRIDES, REASON_COUNTS, REASON_PINS,
};

/// Any fixed time: no Wycheproof payload carries time claims.
const NOW: i64 = 1_700_000_000;

/// How a file's tests are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    /// Compact JWS strings with a JWK or JWKS per group.
    Jws,
    /// RSASSA-PKCS1-v1_5 primitive vectors.
    RsaPkcs1,
    /// RSASSA-PSS primitive vectors.
    RsaPss,
    /// ECDSA with raw r‖s (IEEE P1363) signatures.
    Ecdsa,
    /// Ed25519.
    Ed25519,
}

const FILES: [(&str, FileKind); 13] = [
    ("json_web_signature_test.json", FileKind::Jws),
    ("json_web_key_test.json", FileKind::Jws),
    ("json_web_crypto_test.json", FileKind::Jws),
    ("rsa_signature_2048_sha256_test.json", FileKind::RsaPkcs1),
    ("rsa_signature_3072_sha256_test.json", FileKind::RsaPkcs1),
    ("rsa_signature_3072_sha384_test.json", FileKind::RsaPkcs1),
    ("rsa_signature_2048_sha512_test.json", FileKind::RsaPkcs1),
    ("rsa_pss_2048_sha256_mgf1_32_test.json", FileKind::RsaPss),
    ("rsa_pss_4096_sha384_mgf1_48_test.json", FileKind::RsaPss),
    ("rsa_pss_4096_sha512_mgf1_64_test.json", FileKind::RsaPss),
    ("ecdsa_secp256r1_sha256_p1363_test.json", FileKind::Ecdsa),
    ("ecdsa_secp384r1_sha384_p1363_test.json", FileKind::Ecdsa),
    ("ed25519_test.json", FileKind::Ed25519),
];

/// The vector directory: the copies committed in `tests/data/wycheproof` (provenance and
/// licence in its README). A missing file there fails the test; nothing is skipped.
fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wycheproof")
}

fn load(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read Wycheproof vector file {}: {e} (it is committed in the repository)",
            path.display()
        )
    });
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}")))
        .collect()
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_else(|| panic!("no string member {name:?} in {value}"))
}

/// A Wycheproof `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Valid,
    Invalid,
    Acceptable,
}

impl Label {
    fn parse(text: &str) -> Self {
        match text {
            "valid" => Self::Valid,
            "invalid" => Self::Invalid,
            "acceptable" => Self::Acceptable,
            other => panic!("unknown result label {other:?}"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Acceptable => "acceptable",
        }
    }
}

/// What keyward did with one vector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Verified. `claims_skipped` is true when only the signature stage could be judged because
    /// the (signature-valid) payload is not a JWT claims object.
    Accept { claims_skipped: bool },
    /// Rejected with this reason code (`jwks_error` when the key document was refused).
    Reject { code: String, detail: String },
}

impl Outcome {
    fn reject(error: &Error) -> Self {
        Self::Reject { code: error.reason().as_str().to_owned(), detail: error.detail().to_owned() }
    }

    fn describe(&self) -> String {
        match self {
            Self::Accept { claims_skipped: false } => "accepted".to_owned(),
            Self::Accept { claims_skipped: true } => "accepted (signature; payload is not claims)".to_owned(),
            Self::Reject { code, detail } => format!("rejected {code} ({detail})"),
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Self::Accept { .. } => None,
            Self::Reject { code, .. } => Some(code),
        }
    }
}

fn policy() -> Policy {
    Policy::builder().any_audience().require_exp(false).build().expect("policy")
}

/// Loads a group's key the way an application would: a JWKS document through `JwkSet::from_json`.
/// Single JWKs are wrapped into `{"keys":[..]}`.
fn key_set(key: &Value) -> Result<JwkSet, String> {
    let document = if key.get("keys").is_some() { key.clone() } else { json!({ "keys": [key] }) };
    let bytes = serde_json::to_vec(&document).expect("serialise JWKS");
    JwkSet::from_json(&bytes).map_err(|e| e.to_string())
}

/// The signature stage of `verify_with_keys`, rebuilt from public pieces: strict parse,
/// algorithm allowlist, key selection by kid/alg, then `VerifyingKey::verify_signature` on the
/// exact received signing input.
fn signature_stage(set: &JwkSet, policy: &Policy, token: &str) -> Result<(), Error> {
    let parsed = UnverifiedToken::parse(token, policy.max_token_len())?;
    let header = parsed.header();
    if !policy.allows(header.alg) {
        return Err(Error::new(Reason::AlgorithmNotAllowed, format!("{} not allowed", header.alg)));
    }
    let candidates = set.candidates(header.kid, header.alg)?;
    let mut errors = Vec::new();
    for key in &candidates {
        match key.verify_signature(header.alg, parsed.signing_input().as_bytes(), parsed.signature()) {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(e),
        }
    }
    match errors.pop() {
        Some(e) if candidates.len() == 1 => Err(e),
        _ => Err(Error::new(Reason::InvalidSignature, "no candidate key verifies")),
    }
}

/// Runs one compact JWS.
///
/// Wycheproof payloads are not JWT claims (`foo`, `123400`, empty, binary), so a token whose
/// signature is correct still fails `verify_with_keys` at the claims stage with `malformed`. To
/// exercise the real path as much as possible, every token goes through `verify_with_keys`
/// unchanged, and the signature stage is also rebuilt from public pieces ([`signature_stage`]).
/// The two must agree: when the signature stage rejects, `verify_with_keys` must reject with the
/// same reason; when it passes, `verify_with_keys` must either succeed or fail with `malformed`
/// on a payload that `decode_unverified` also says is not a JSON object. Only that last case
/// counts as "accepted (signature; payload is not claims)"; a JSON-object payload that fails a
/// claims rule is a rejection. A signature-stage rejection that `verify_with_keys` does not
/// repeat with the same reason is reported as a disagreement.
fn run_jws(key: &Value, token: &str) -> Result<Outcome, String> {
    let set = match key_set(key) {
        Ok(set) => set,
        Err(e) => return Ok(Outcome::Reject { code: "jwks_error".to_owned(), detail: e }),
    };
    let policy = policy();
    let full = verify_with_keys(&set, &policy, token, NOW);
    let stage = signature_stage(&set, &policy, token);
    match (stage, full) {
        (Err(s), Err(f)) if s.reason() == f.reason() => Ok(Outcome::reject(&f)),
        (Err(s), full) => {
            Err(format!("signature stage rejects with {s}, but verify_with_keys gives {full:?}"))
        }
        (Ok(()), Ok(_)) => Ok(Outcome::Accept { claims_skipped: false }),
        (Ok(()), Err(f)) => {
            let payload_is_object = decode_unverified(token, policy.max_token_len())
                .map_err(|e| format!("decode_unverified failed on a signature-valid token: {e}"))?
                .claims
                .is_ok();
            if f.reason() == Reason::Malformed && !payload_is_object {
                Ok(Outcome::Accept { claims_skipped: true })
            } else {
                // A JSON-object payload that fails a claims rule is a genuine rejection.
                Ok(Outcome::reject(&f))
            }
        }
    }
}

/// A parsed primitive-file key, or why `JwkSet::from_json` set it aside.
fn primitive_key(jwk: &Value) -> Result<Arc<VerifyingKey>, Outcome> {
    let set = key_set(jwk).map_err(|e| Outcome::Reject { code: "jwks_error".to_owned(), detail: e })?;
    match (set.keys(), set.set_aside()) {
        ([key], []) => Ok(Arc::clone(key)),
        ([], [aside]) => Err(Outcome::Reject {
            code: aside.problem.reason().as_str().to_owned(),
            detail: format!("key set aside: {}", aside.detail),
        }),
        (keys, aside) => panic!("one JWK gave {} keys and {} set aside: {jwk}", keys.len(), aside.len()),
    }
}

fn run_primitive(
    key: &Result<Arc<VerifyingKey>, Outcome>,
    alg: Algorithm,
    msg: &[u8],
    sig: &[u8],
) -> Outcome {
    match key {
        Err(outcome) => outcome.clone(),
        Ok(key) => match key.verify_signature(alg, msg, sig) {
            Ok(()) => Outcome::Accept { claims_skipped: false },
            Err(e) => Outcome::reject(&e),
        },
    }
}

/// The EC JWK built from `wx`/`wy`, which may carry a leading zero byte or be short.
fn ec_jwk_from_coordinates(public_key: &Value) -> Value {
    let (crv, size) = match str_of(public_key, "curve") {
        "secp256r1" => ("P-256", 32),
        "secp384r1" => ("P-384", 48),
        other => panic!("unexpected curve {other}"),
    };
    let coordinate = |name: &str| {
        let bytes = hex(str_of(public_key, name));
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        assert!(significant.len() <= size, "{name} longer than {size} bytes: {public_key}");
        let mut padded = vec![0u8; size - significant.len()];
        padded.extend_from_slice(&significant);
        base64url::encode(&padded)
    };
    json!({ "kty": "EC", "crv": crv, "x": coordinate("wx"), "y": coordinate("wy") })
}

/// The group's key and algorithm for a primitive file. Also checks that the group parameters
/// are exactly the JOSE ones (hash, MGF1 hash, salt length).
fn primitive_group(file: &str, kind: FileKind, group: &Value) -> (Value, Vec<Algorithm>) {
    let sha = group["sha"].as_str();
    match kind {
        FileKind::RsaPkcs1 | FileKind::RsaPss => {
            let jwk = if kind == FileKind::RsaPkcs1 { &group["keyJwk"] } else { &group["publicKeyJwk"] };
            let alg: Algorithm = str_of(jwk, "alg").parse().expect("JOSE alg");
            let (hash, salt) = match alg {
                Algorithm::RS256 | Algorithm::PS256 => ("SHA-256", 32),
                Algorithm::RS384 | Algorithm::PS384 => ("SHA-384", 48),
                Algorithm::RS512 | Algorithm::PS512 => ("SHA-512", 64),
                other => panic!("{file}: unexpected alg {other}"),
            };
            assert_eq!(sha, Some(hash), "{file}: group hash does not match {alg}");
            if kind == FileKind::RsaPss {
                assert_eq!(group["mgf"].as_str(), Some("MGF1"), "{file}");
                assert_eq!(group["mgfSha"].as_str(), Some(hash), "{file}: MGF1 hash is not {alg}'s");
                assert_eq!(group["sLen"].as_u64(), Some(salt), "{file}: salt length is not {alg}'s");
            }
            (jwk.clone(), vec![alg])
        }
        FileKind::Ecdsa => {
            let built = ec_jwk_from_coordinates(&group["publicKey"]);
            let alg = match str_of(&built, "crv") {
                "P-256" => Algorithm::ES256,
                _ => Algorithm::ES384,
            };
            assert_eq!(sha, Some(if alg == Algorithm::ES256 { "SHA-256" } else { "SHA-384" }), "{file}");
            // Where the group has a JWK, the one built from wx/wy must be the same key.
            if let Some(given) = group.get("publicKeyJwk") {
                for member in ["crv", "x", "y"] {
                    assert_eq!(given[member], built[member], "{file}: wx/wy disagree with publicKeyJwk");
                }
            }
            (built, vec![alg])
        }
        FileKind::Ed25519 => {
            let jwk = group["publicKeyJwk"].clone();
            assert_eq!(
                base64url::decode(str_of(&jwk, "x")).expect("x"),
                hex(str_of(&group["publicKey"], "pk")),
                "{file}: publicKeyJwk disagrees with pk"
            );
            // Both JOSE names for the same operation must give the same answer.
            (jwk, vec![Algorithm::EdDSA, Algorithm::Ed25519])
        }
        FileKind::Jws => unreachable!("not a primitive file"),
    }
}

/// One test vector's identity, for judging and for failure messages.
struct Vector<'a> {
    file: &'static str,
    tc_id: u64,
    comment: &'a str,
    label: Label,
}

impl<'a> Vector<'a> {
    fn from_test(file: &'static str, test: &'a Value) -> Self {
        Self {
            file,
            tc_id: test["tcId"].as_u64().expect("tcId"),
            comment: str_of(test, "comment"),
            label: Label::parse(str_of(test, "result")),
        }
    }

    fn name(&self) -> String {
        format!("{}#{} {:?} [{}]", self.file, self.tc_id, self.comment, self.label.as_str())
    }
}

/// Per-file counts for the summary.
#[derive(Default)]
struct Tally {
    run: usize,
    accepted: usize,
    accepted_signature_only: usize,
    rejected: usize,
    overridden: usize,
    skipped_jwe: usize,
    reasons: BTreeMap<String, usize>,
}

/// Everything observed across all files.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    summary: String,
    used_overrides: BTreeSet<(&'static str, u64)>,
    used_pins: BTreeSet<(&'static str, u64)>,
    /// Indexes of the [`DEFECTS`] rows that matched a vector.
    used_defects: BTreeSet<usize>,
    /// Invalid JWS vectors whose [`DEFECTS`] row demanded an exact code, and those it let
    /// through with any rejection.
    defect_exact: usize,
    defect_any: usize,
}

/// The first [`DEFECTS`] row (and its index) whose flag the vector carries, else the first whose
/// comment it has.
fn defect_row(flags: &[&str], comment: &str) -> Option<(usize, &'static Defect)> {
    let by_flag = DEFECTS
        .iter()
        .enumerate()
        .find(|(_, row)| matches!(row.matches, Match::Flag(name) if flags.contains(&name)));
    by_flag.or_else(|| {
        DEFECTS
            .iter()
            .enumerate()
            .find(|(_, row)| matches!(row.matches, Match::Comment(text) if text == comment))
    })
}

/// The `alg` of a compact token's header, when the first segment decodes to a JSON object with
/// a string `alg` (the flag table needs it to tell HMAC tokens from the rest).
fn header_alg(token: &str) -> Option<String> {
    let segment = token.split('.').next()?;
    let header: Value = serde_json::from_slice(&base64url::decode(segment).ok()?).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

impl Report {
    /// Checks an `invalid` JWS vector against the flag→reason table ([`DEFECTS`]): it must match
    /// a row (unless an override decides it), and get the code the row demands.
    fn check_defect(&mut self, vector: &Vector<'_>, test: &Value, token: &str, outcome: &Outcome) {
        if vector.label != Label::Invalid
            || OVERRIDES.iter().any(|o| o.file == vector.file && o.tc_id == vector.tc_id)
        {
            return;
        }
        let flags: Vec<&str> =
            test["flags"].as_array().expect("flags").iter().filter_map(Value::as_str).collect();
        let Some((index, row)) = defect_row(&flags, vector.comment) else {
            self.failures.push(format!(
                "{}: invalid vector (flags {flags:?}) matches no DEFECTS row: say which reason it must get",
                vector.name()
            ));
            return;
        };
        self.used_defects.insert(index);
        let Some(code) = row.due.code(header_alg(token).as_deref()) else {
            // No single code for the defect: the vector's own code must then be pinned.
            self.defect_any += 1;
            if !REASON_PINS.iter().any(|(f, id, _, _)| *f == vector.file && *id == vector.tc_id) {
                self.failures.push(format!(
                    "{}: defect {:?} has no single reason code, so the vector needs a REASON_PINS row",
                    vector.name(),
                    row.matches
                ));
            }
            return;
        };
        self.defect_exact += 1;
        if outcome.code() != Some(code) {
            self.failures.push(format!(
                "{}: expected {code} for defect {:?} ({:?}), got {}",
                vector.name(),
                row.matches,
                row.due,
                outcome.describe()
            ));
        }
    }

    /// Counts `outcome` and records a failure when it is not what the override table, the reason
    /// pins or (otherwise) the Wycheproof label demand.
    fn judge(&mut self, tally: &mut Tally, vector: &Vector<'_>, outcome: &Outcome) {
        tally.run += 1;
        match outcome {
            Outcome::Accept { claims_skipped } => {
                tally.accepted += 1;
                tally.accepted_signature_only += usize::from(*claims_skipped);
            }
            Outcome::Reject { code, .. } => {
                tally.rejected += 1;
                *tally.reasons.entry(code.clone()).or_default() += 1;
            }
        }
        let row = OVERRIDES.iter().find(|o| o.file == vector.file && o.tc_id == vector.tc_id);
        let (mut ok, mut expected, mut why) = match row {
            Some(row) => {
                self.used_overrides.insert((row.file, row.tc_id));
                if row.kind != Kind::Pin {
                    tally.overridden += 1;
                }
                match row.expect {
                    Expect::Accept => (
                        matches!(outcome, Outcome::Accept { .. }),
                        "accept".to_owned(),
                        format!("override {:?}: {}", row.kind, row.reason),
                    ),
                    Expect::Reject(code) => (
                        outcome.code() == Some(code),
                        format!("reject {code}"),
                        format!("override {:?}: {}", row.kind, row.reason),
                    ),
                }
            }
            None => match vector.label {
                Label::Valid => {
                    (matches!(outcome, Outcome::Accept { .. }), "accept".to_owned(), "label".to_owned())
                }
                Label::Invalid => (outcome.code().is_some(), "reject".to_owned(), "label".to_owned()),
                Label::Acceptable => (
                    false,
                    "a pinned outcome".to_owned(),
                    "acceptable vector missing from OVERRIDES".to_owned(),
                ),
            },
        };
        let pin = REASON_PINS.iter().find(|(f, id, _, _)| *f == vector.file && *id == vector.tc_id);
        if let Some((file, tc_id, code, pin_why)) = pin {
            self.used_pins.insert((file, *tc_id));
            if outcome.code() != Some(*code) {
                ok = false;
                expected = format!("reject {code}");
                why = format!("reason pin: {pin_why}");
            }
        }
        if !ok {
            self.failures.push(format!(
                "{}: expected {expected}, got {} ({why})",
                vector.name(),
                outcome.describe()
            ));
        }
    }
}

fn run_jws_group(report: &mut Report, tally: &mut Tally, file: &'static str, group: &Value) {
    let key = group.get("public").or_else(|| group.get("private")).expect("group key");
    for test in group["tests"].as_array().expect("tests") {
        let vector = Vector::from_test(file, test);
        let token = match test.get("jws") {
            Some(Value::String(token)) => token.clone(),
            // json_web_crypto tc 17: the JSON serialization, stored as a JSON object.
            Some(object @ Value::Object(_)) => object.to_string(),
            Some(other) => panic!("{}: jws is {other}", vector.name()),
            None => {
                assert!(test.get("jwe").is_some(), "{}: neither jws nor jwe", vector.name());
                tally.skipped_jwe += 1;
                continue;
            }
        };
        match run_jws(key, &token) {
            Ok(outcome) => {
                report.check_defect(&vector, test, &token, &outcome);
                report.judge(tally, &vector, &outcome);
            }
            Err(disagreement) => {
                tally.run += 1;
                report.failures.push(format!("{}: {disagreement}", vector.name()));
            }
        }
    }
}

fn run_primitive_group(
    report: &mut Report,
    tally: &mut Tally,
    file: &'static str,
    kind: FileKind,
    group: &Value,
) {
    let (jwk, algorithms) = primitive_group(file, kind, group);
    let key = primitive_key(&jwk);
    for test in group["tests"].as_array().expect("tests") {
        let vector = Vector::from_test(file, test);
        let (msg, sig) = (hex(str_of(test, "msg")), hex(str_of(test, "sig")));
        let outcome = run_primitive(&key, algorithms[0], &msg, &sig);
        for alias in &algorithms[1..] {
            let other = run_primitive(&key, *alias, &msg, &sig);
            if other != outcome {
                report.failures.push(format!(
                    "{}: {} gives {} but {alias} gives {}",
                    vector.name(),
                    algorithms[0],
                    outcome.describe(),
                    other.describe()
                ));
            }
        }
        // The primitive files' keys all import, so every rejection must come from the signature
        // check itself; another reason would mean key parsing or the alg binding went wrong.
        if outcome.code().is_some_and(|code| code != "invalid_signature") {
            report.failures.push(format!(
                "{}: rejected as {}, expected invalid_signature",
                vector.name(),
                outcome.describe()
            ));
        }
        report.judge(tally, &vector, &outcome);
    }
}

fn run_file(report: &mut Report, dir: &Path, file: &'static str, kind: FileKind) {
    let doc = load(dir, file);
    let mut tally = Tally::default();
    let mut parsed_tests = 0u64;
    for group in doc["testGroups"].as_array().expect("testGroups") {
        parsed_tests += group["tests"].as_array().expect("tests").len() as u64;
        match kind {
            FileKind::Jws => run_jws_group(report, &mut tally, file, group),
            _ => run_primitive_group(report, &mut tally, file, kind, group),
        }
    }

    let declared = doc["numberOfTests"].as_u64().expect("numberOfTests");
    if parsed_tests != declared {
        report.failures.push(format!("{file}: parsed {parsed_tests} tests, numberOfTests says {declared}"));
    }
    if (tally.run + tally.skipped_jwe) as u64 != declared {
        report
            .failures
            .push(format!("{file}: ran {} and skipped {} of {declared} tests", tally.run, tally.skipped_jwe));
    }
    let jwe_expected = if file == "json_web_crypto_test.json" { JWE_TESTS } else { 0 };
    if tally.skipped_jwe != jwe_expected {
        report
            .failures
            .push(format!("{file}: skipped {} JWE tests, expected {jwe_expected}", tally.skipped_jwe));
    }
    if let Some((_, counts)) = REASON_COUNTS.iter().find(|(f, _)| *f == file) {
        let pinned: BTreeMap<String, usize> = counts.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect();
        if pinned != tally.reasons {
            report.failures.push(format!(
                "{file}: reason counts changed: pinned {pinned:?}, observed {:?}",
                tally.reasons
            ));
        }
    }

    let reasons: Vec<String> = tally.reasons.iter().map(|(code, n)| format!("{code} {n}")).collect();
    let signature_only = if tally.accepted_signature_only > 0 {
        format!(" (signature-only {})", tally.accepted_signature_only)
    } else {
        String::new()
    };
    let skipped =
        if tally.skipped_jwe > 0 { format!("  skipped-jwe {}", tally.skipped_jwe) } else { String::new() };
    let _ = writeln!(
        report.summary,
        "  {file:<40} run {:>3}  accepted {:>3}{signature_only}  rejected {:>3}  overridden {:>2}{skipped}\n      \
         reasons: {}",
        tally.run,
        tally.accepted,
        tally.rejected,
        tally.overridden,
        reasons.join(", ")
    );
}

#[test]
fn wycheproof_vectors() {
    let dir = vectors_dir();
    let mut report = Report::default();
    for (file, kind) in FILES {
        run_file(&mut report, &dir, file, kind);
    }
    for row in OVERRIDES {
        if !report.used_overrides.contains(&(row.file, row.tc_id)) {
            report.failures.push(format!("stale override: {}#{} matches no vector", row.file, row.tc_id));
        }
    }
    for (index, row) in DEFECTS.iter().enumerate() {
        if !report.used_defects.contains(&index) {
            report.failures.push(format!("stale DEFECTS row: {:?} matches no invalid vector", row.matches));
        }
    }
    for (file, tc_id, _, _) in REASON_PINS {
        if !report.used_pins.contains(&(*file, *tc_id)) {
            report.failures.push(format!("stale reason pin: {file}#{tc_id} matches no vector"));
        }
    }
    println!("Wycheproof summary (Ed25519 mode: {ED25519_MODE}):\n{}", report.summary);
    println!(
        "DEFECTS: {} invalid JWS vectors checked for the reason code their defect names, {} whose \
         defect has no single code (each pinned in REASON_PINS instead)",
        report.defect_exact, report.defect_any
    );
    assert!(
        report.failures.is_empty(),
        "{} Wycheproof mismatches:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

/// README 4: the HMAC `base64` group must not pass vacuously on "HS256 is not allowed". The
/// damaged strings (360-375) must already fail in the compact parser with `malformed`, while the
/// well-formed ones (357-359, 376, 377) parse and stop only at the algorithm.
#[test]
fn base64_group_fails_in_the_parser() {
    let dir = vectors_dir();
    let doc = load(&dir, "json_web_signature_test.json");
    let group = doc["testGroups"]
        .as_array()
        .expect("testGroups")
        .iter()
        .find(|g| g["comment"] == "base64")
        .expect("base64 group");
    let tokens: BTreeMap<u64, &str> = group["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| (t["tcId"].as_u64().expect("tcId"), str_of(t, "jws")))
        .collect();
    assert_eq!(tokens.keys().copied().collect::<Vec<_>>(), (357..=377).collect::<Vec<_>>());
    let parse_reason = |token: &str| match UnverifiedToken::parse(token, policy().max_token_len()) {
        Ok(_) => panic!("{token:?} parsed as a supported-alg token"),
        Err(e) => e.reason(),
    };

    // README 1 (C2SP/wycheproof#236): 367 and 370 lost their padding upstream and are the
    // valid 357, byte for byte, so they get 357's outcome.
    for id in [367, 370] {
        assert_eq!(tokens[&id], tokens[&357], "tc {id} is no longer identical to tc 357");
    }
    for id in [357, 358, 359, 367, 370, 376, 377] {
        assert_eq!(parse_reason(tokens[&id]), Reason::AlgorithmNotAllowed, "tc {id}");
    }
    for id in (360..=375).filter(|id| ![367, 370].contains(id)) {
        assert_eq!(parse_reason(tokens[&id]), Reason::Malformed, "tc {id}: {:?}", tokens[&id]);
    }
    // What 367 and 370 meant to test: padding on the MAC and on the payload.
    let (input, mac) = tokens[&357].rsplit_once('.').expect("three segments");
    let (header, payload) = input.split_once('.').expect("three segments");
    for padded in [format!("{input}.{mac}="), format!("{header}.{payload}==.{mac}")] {
        assert_eq!(parse_reason(&padded), Reason::Malformed, "{padded}");
    }
}

/// README 8: the Ed25519 mode, pinned with probes that tell the modes apart.
#[test]
fn ed25519_mode_is_pinned() {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

    let identity = hex("0100000000000000000000000000000000000000000000000000000000000000");
    // R = identity, S = 0.
    let mut forged = identity.clone();
    forged.extend_from_slice(&[0u8; 32]);
    let messages: Vec<Vec<u8>> = (0..64).map(|i| format!("message {i}").into_bytes()).collect();

    // The primitive is cofactorless: under the order-4 point (y = 0) the forgery verifies only
    // when 4 divides the challenge k, i.e. for some messages. A cofactored check ([8][S]B =
    // [8]R + [8][k]A) would accept all of them; a strict one none.
    let order4 = UnparsedPublicKey::new(&ED25519, [0u8; 32]);
    let accepted = messages.iter().filter(|m| order4.verify(m, &forged).is_ok()).count();
    assert!(0 < accepted && accepted < messages.len(), "order-4 key accepted {accepted}/64: mode changed");
    // Under the identity the same forgery verifies for every message, so such keys must never
    // reach the primitive.
    let identity_key = UnparsedPublicKey::new(&ED25519, &identity);
    assert!(messages.iter().all(|m| identity_key.verify(m, &forged).is_ok()));

    // keyward sets every small-order point aside as weak, canonical or not, either sign bit.
    let small_order = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];
    for point in small_order {
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": base64url::encode(&hex(point)) });
        match primitive_key(&jwk) {
            Err(Outcome::Reject { code, .. }) => assert_eq!(code, "weak_key", "{point}"),
            other => panic!("small-order key {point} was not set aside: {other:?}"),
        }
    }

    // End to end: a token "signed" with the identity forgery is refused for the key, not the
    // signature.
    let jwks = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "k",
                                  "x": base64url::encode(&identity) }] });
    let set = key_set(&jwks).expect("JWKS");
    let header = base64url::encode(br#"{"alg":"EdDSA","kid":"k"}"#);
    let claims = base64url::encode(br#"{"sub":"attacker"}"#);
    let token = format!("{header}.{claims}.{}", base64url::encode(&forged));
    let error = verify_with_keys(&set, &policy(), &token, NOW).expect_err("forgery must be refused");
    assert_eq!(error.reason(), Reason::WeakKey);

    // A regular key still verifies under both JOSE names: the file ran with no override.
    assert!(OVERRIDES.iter().all(|o| o.file != "ed25519_test.json"));
}

/// The harness itself: a wrong outcome, an unpinned `acceptable` and a wrong pinned reason must
/// all be reported, and matching outcomes must not.
#[test]
fn harness_reports_mismatches() {
    let accept = Outcome::Accept { claims_skipped: false };
    let reject = |code: &str| Outcome::Reject { code: code.to_owned(), detail: String::new() };
    let vector =
        |file: &'static str, tc_id: u64, label: Label| Vector { file, tc_id, comment: "self-test", label };
    let cases = [
        (vector("selftest.json", 1, Label::Valid), accept.clone(), true),
        (vector("selftest.json", 2, Label::Valid), reject("invalid_signature"), false),
        (vector("selftest.json", 3, Label::Invalid), reject("malformed"), true),
        (vector("selftest.json", 4, Label::Invalid), accept.clone(), false),
        (vector("selftest.json", 5, Label::Acceptable), accept.clone(), false),
        // Override rows: 372 must be malformed, so another reason fails.
        (vector("json_web_signature_test.json", 372, Label::Valid), reject("malformed"), true),
        (vector("json_web_signature_test.json", 372, Label::Valid), reject("invalid_signature"), false),
        (vector("json_web_signature_test.json", 372, Label::Valid), accept, false),
        // Reason pins: 32 must be invalid_signature.
        (vector("json_web_signature_test.json", 32, Label::Invalid), reject("invalid_signature"), true),
        (vector("json_web_signature_test.json", 32, Label::Invalid), reject("unknown_kid"), false),
    ];
    for (vector, outcome, passes) in cases {
        let mut report = Report::default();
        report.judge(&mut Tally::default(), &vector, &outcome);
        assert_eq!(
            report.failures.is_empty(),
            passes,
            "{} with {outcome:?}: {:?}",
            vector.name(),
            report.failures
        );
    }
}

/// The flag→reason table itself: flags win over comments, a `none`/HMAC header turns a later
/// stage's code into `algorithm_not_allowed`, parse-stage codes do not depend on the header, and
/// an unknown defect matches nothing.
#[test]
fn defect_table_rules() {
    let due = |flags: &[&str], comment: &str| defect_row(flags, comment).map(|(_, row)| row.due);
    let code = |flags: &[&str], comment: &str, alg: Option<&str>| {
        due(flags, comment).expect("a DEFECTS row").code(alg)
    };
    assert_eq!(code(&["ModifiedSignature"], "SaltModified", Some("PS256")), Some("invalid_signature"));
    assert_eq!(code(&["ModifiedSignature"], "SaltModified", Some("HS256")), Some("algorithm_not_allowed"));
    assert_eq!(code(&[], "rejectsModifiedPayload", Some("none")), Some("algorithm_not_allowed"));
    assert_eq!(code(&[], "rejectsModifiedHeader", Some("ES256")), Some("unknown_kid"));
    assert_eq!(code(&[], "rejectsEmptyString", Some("HS256")), Some("malformed"));
    assert_eq!(code(&[], "rejectsEmptyString", None), Some("malformed"));
    // A flag decides even when the comment has its own row.
    assert_eq!(code(&["JsonSerialization"], "rejectsModifiedSignature", Some("RS256")), Some("malformed"));
    assert!(matches!(due(&["WrongPrimitive"], "UsingRS256"), Some(Due::AnyRejection(_))));
    assert_eq!(due(&["NotAFlag"], "notAComment"), None);
}
