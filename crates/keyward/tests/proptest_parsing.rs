//! Property tests for the parsers: no input makes them panic, no forged token verifies, and
//! base64url has exactly one spelling per byte string.
//!
//! Case counts are chosen so the file runs in seconds in a debug build; the cargo-fuzz targets
//! under `fuzz/` run the same entry points for minutes.

use std::sync::OnceLock;

use keyward::danger::decode_unverified;
use keyward::internal::base64url;
use keyward::internal::{DEFAULT_MAX_TOKEN_LEN, UnverifiedToken};
use keyward::jwk::{JwkSet, JwksError};
use keyward::{Policy, Reason, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// 2026-01-01T00:00:00Z: the fixture tokens are valid at this instant.
const NOW: i64 = 1_767_225_600;
const ISS: &str = "https://idp.example.test";

struct Fixture {
    keys: JwkSet,
    policy: Policy,
    /// One valid token per algorithm.
    tokens: Vec<String>,
    /// A public JWK per key type, for building JWKS documents.
    jwks: Vec<Value>,
    /// The private keys behind `keys`, in the same order as `tokens`.
    signing: Vec<SigningKey>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signing: Vec<SigningKey> = [
            SigningAlg::RS256,
            SigningAlg::PS384,
            SigningAlg::ES256,
            SigningAlg::ES384,
            SigningAlg::ES512,
            SigningAlg::EdDSA,
        ]
        .into_iter()
        .map(|alg| SigningKey::generate(alg, format!("k-{alg}")).unwrap())
        .collect();
        let claims = json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": NOW - 10, "exp": NOW + 600});
        let tokens = signing.iter().map(|k| k.sign_jwt(&claims).unwrap()).collect();
        let keys = JwkSet::from_json(keyward_idp::jwks(signing.iter()).to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), signing.len());
        let policy = Policy::builder().issuer(ISS).audience("api").build().unwrap();
        let jwks = signing.iter().map(SigningKey::public_jwk).collect();
        Fixture { keys, policy, tokens, jwks, signing }
    })
}

/// Every token entry point on one input; none may panic, and only a fixture token verifies.
fn exercise(input: &str) {
    let f = fixture();
    let parsed = UnverifiedToken::parse(input, DEFAULT_MAX_TOKEN_LEN);
    let decoded = decode_unverified(input, DEFAULT_MAX_TOKEN_LEN);
    if parsed.is_ok() {
        let decoded = decoded.expect("parse accepted, so decode_unverified must");
        assert!(decoded.header_problem.is_none());
    }
    let verified = verify_with_keys(&f.keys, &f.policy, input, NOW);
    assert_eq!(verified.is_ok(), f.tokens.iter().any(|t| t == input), "verification outcome for {input:?}");
}

/// JSON values built from the names and values JOSE code looks at.
fn jose_json() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "alg", "kid", "typ", "cty", "crit", "b64", "zip", "enc", "jwk", "jku", "x5c", "iss", "sub", "aud",
        "exp", "nbf", "iat", "jti", "tid", "kty", "crv", "x", "y", "n", "e", "use", "key_ops", "d", "keys",
        "\u{0}", "",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        (NOW - 1000..NOW + 1000).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "none", "HS256", "RSA", "EC",
            "OKP", "P-256", "P-384", "P-521", "Ed25519", "X25519", "sig", "enc", "verify", "JWT", "at+jwt",
            "AQAB", "k-RS256", "k-ES256", ISS, "api",
        ])
        .prop_map(|s| json!(s)),
        "[A-Za-z0-9_-]{0,44}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((names.clone(), inner), 0..8).prop_map(|members| Value::Object(
                members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// JWKs that start from a real public key and then get members replaced, removed or added.
fn jwk_like() -> impl Strategy<Value = Value> {
    let member = prop::sample::select(vec![
        "kty", "crv", "x", "y", "n", "e", "alg", "use", "key_ops", "kid", "d", "p", "issuer", "x5c", "oth",
    ]);
    (0..6usize, prop::collection::vec((member, prop::option::of(jose_json())), 0..4)).prop_map(
        |(which, edits)| {
            let mut jwk = fixture().jwks[which].clone();
            if let Value::Object(map) = &mut jwk {
                for (name, value) in edits {
                    match value {
                        Some(v) => map.insert(name.to_owned(), v),
                        None => map.remove(name),
                    };
                }
            }
            jwk
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        exercise(&String::from_utf8_lossy(&bytes));
        let _ = JwkSet::from_json(&bytes);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        exercise(&s);
        let _ = JwkSet::from_json(s.as_bytes());
    }

    #[test]
    fn token_alphabet_strings_never_panic(s in "[A-Za-z0-9_.=+/ {}-]{0,200}") {
        exercise(&s);
    }

    #[test]
    fn three_base64url_segments_never_verify(
        h in "[A-Za-z0-9_-]{0,120}",
        p in "[A-Za-z0-9_-]{0,120}",
        s in "[A-Za-z0-9_-]{0,120}",
    ) {
        exercise(&format!("{h}.{p}.{s}"));
    }

    #[test]
    fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let encoded = base64url::encode(&bytes);
        prop_assert!(!encoded.contains(['=', '+', '/']));
        prop_assert_eq!(base64url::decode(&encoded).unwrap(), bytes);
    }

    #[test]
    fn base64url_has_one_spelling(s in "[A-Za-z0-9_-]{0,64}") {
        match base64url::decode(&s) {
            Ok(bytes) => prop_assert_eq!(base64url::encode(&bytes), s),
            // Over this alphabet only two things are wrong: a length of 1 (mod 4), or a last
            // character whose unused low bits are not zero.
            Err(_) => {
                const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let last = s.chars().last().and_then(|c| ALPHABET.find(c)).unwrap_or(0);
                let unused_bits_set = match s.len() % 4 {
                    2 => last & 0b1111 != 0,
                    3 => last & 0b11 != 0,
                    _ => false,
                };
                prop_assert!(s.len() % 4 == 1 || unused_bits_set, "{s:?} was rejected");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Structured headers and payloads (names and values JOSE code reads), with random
    /// signatures: every path through the header rules, and never an accepted token.
    #[test]
    fn json_tokens_never_verify(
        header in jose_json(),
        payload in jose_json(),
        signature in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let token = format!(
            "{}.{}.{}",
            base64url::encode(header.to_string().as_bytes()),
            base64url::encode(payload.to_string().as_bytes()),
            base64url::encode(&signature),
        );
        exercise(&token);
    }

    #[test]
    fn jose_json_as_jwks_never_panics(doc in jose_json()) {
        let _ = JwkSet::from_json(doc.to_string().as_bytes());
        let _ = JwkSet::from_json(json!({"keys": [doc]}).to_string().as_bytes());
    }

    /// Real keys with members replaced: every key lands either in `keys` or in `set_aside`.
    #[test]
    fn edited_jwks_are_kept_or_set_aside(jwks in prop::collection::vec(jwk_like(), 0..6)) {
        let count = jwks.len();
        let doc = json!({"keys": jwks});
        let set = JwkSet::from_json(doc.to_string().as_bytes()).unwrap();
        prop_assert_eq!(set.keys().len() + set.set_aside().len(), count);
        // The kept keys are exactly the entries not set aside, kid for kid.
        let aside: Vec<usize> = set.set_aside().iter().map(|a| a.index).collect();
        let mut expected: Vec<Option<String>> = jwks
            .iter()
            .enumerate()
            .filter(|(i, _)| !aside.contains(i))
            .map(|(_, jwk)| jwk["kid"].as_str().map(str::to_owned))
            .collect();
        let mut kept: Vec<Option<String>> = Vec::new();
        for key in set.keys() {
            let _ = key.describe();
            if let Some(kid) = key.kid() {
                prop_assert!(set.contains_kid(kid));
            }
            kept.push(key.kid().map(str::to_owned));
        }
        expected.sort();
        kept.sort();
        prop_assert_eq!(kept, expected);
    }
}

/// Claims sets near the fixture's valid one: registered claims replaced by generated values or
/// removed, members added, or (sometimes) the whole payload replaced by any JSON value.
fn claims_like() -> impl Strategy<Value = Value> {
    let name = prop::sample::select(vec!["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "azp", "scope"]);
    let edited = prop::collection::vec((name, prop::option::of(jose_json())), 0..4).prop_map(|edits| {
        let mut claims = json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": NOW - 10, "exp": NOW + 600});
        let map = claims.as_object_mut().unwrap();
        for (name, value) in edits {
            match value {
                Some(v) => map.insert(name.to_owned(), v),
                None => map.remove(name),
            };
        }
        claims
    });
    prop_oneof![4 => edited, 1 => jose_json()]
}

/// Whether the fixture policy's time, issuer and audience rules (exp required, leeway 60 s,
/// iss exact, aud "api") all hold; other claims are not looked at. NumericDates may be
/// fractional (RFC 7519): `exp` is rounded down and `nbf`/`iat` up, as keyward does.
fn policy_accepts(claims: &Map<String, Value>) -> bool {
    let time = |name: &str| claims.get(name).map(Value::as_f64);
    let (now, leeway) = (NOW as f64, 60.0);
    let exp_ok = matches!(time("exp"), Some(Some(exp)) if exp.floor() + leeway > now);
    let nbf_ok = match time("nbf") {
        None => true,
        Some(nbf) => nbf.is_some_and(|nbf| nbf.ceil() <= now + leeway),
    };
    let iat_ok = match time("iat") {
        None => true,
        Some(iat) => iat.is_some_and(|iat| iat.ceil() <= now + leeway),
    };
    let iss_ok = claims.get("iss") == Some(&json!(ISS));
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == "api",
        Some(Value::Array(auds)) => auds.iter().all(Value::is_string) && auds.contains(&json!("api")),
        _ => false,
    };
    exp_ok && nbf_ok && iat_ok && iss_ok && aud_ok
}

/// JSON equality, except that floats may differ in the last place (serde_json's default float
/// parser, which builds `claims()`, can be one ULP off).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Generated claims signed by a fixture key (ES256 or EdDSA): the signature verifies, so
    /// claims parsing and every claims rule run on them. The verdict never names a signature or
    /// header problem, a payload that is not a JSON object is `malformed`, and an accepted token
    /// satisfies the policy.
    #[test]
    fn signed_generated_claims_reach_the_claims_checks(which in prop::sample::select(vec![2usize, 5]), claims in claims_like()) {
        let f = fixture();
        let key = &f.signing[which];
        let header = json!({"alg": key.alg().as_str(), "kid": key.kid()});
        let token = key.sign_parts(header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap();
        match (verify_with_keys(&f.keys, &f.policy, &token, NOW), claims.as_object()) {
            (Ok(verified), Some(map)) => {
                prop_assert!(policy_accepts(map), "accepted {claims}");
                let shown = Value::Object(verified.claims().clone());
                prop_assert!(same_json(&shown, &claims), "claims shown {shown} for {claims}");
            }
            (Ok(_), None) => prop_assert!(false, "a non-object payload verified: {}", claims),
            (Err(err), None) => prop_assert_eq!(err.reason(), Reason::Malformed, "{}", claims),
            (Err(err), Some(map)) => {
                prop_assert!(
                    matches!(
                        err.reason(),
                        Reason::Expired
                            | Reason::NotYetValid
                            | Reason::IssuedInFuture
                            | Reason::IssuerMismatch
                            | Reason::AudienceMismatch
                            | Reason::MissingClaim
                            | Reason::InvalidClaim
                    ),
                    "{} for {}",
                    err.reason(),
                    claims
                );
                prop_assert!(!policy_accepts(map) || err.reason() == Reason::InvalidClaim, "{err} for {claims}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// A valid token with one byte changed verifies only if the byte did not change.
    #[test]
    fn single_byte_change_is_never_accepted(which in 0..6usize, at in any::<Index>(), byte in 0u8..0x80) {
        let f = fixture();
        let original = &f.tokens[which];
        let mut bytes = original.clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let mutated = String::from_utf8(bytes).unwrap();
        let result = verify_with_keys(&f.keys, &f.policy, &mutated, NOW);
        if mutated == *original {
            prop_assert!(result.is_ok(), "the unchanged token must verify: {:?}", result.err());
        } else {
            let err = result.expect_err("a changed token verified");
            // Which reason depends on where the byte landed, but never a claims reason: the
            // claims are only read after the signature verifies.
            prop_assert!(
                matches!(
                    err.reason(),
                    Reason::Malformed
                        | Reason::InvalidSignature
                        | Reason::UnsupportedAlgorithm
                        | Reason::AlgorithmNotAllowed
                        | Reason::UnknownKid
                        | Reason::KeyAlgorithmMismatch
                        | Reason::UnsupportedCriticalHeader
                        | Reason::NoMatchingKey
                ),
                "unexpected reason {} for {mutated}",
                err.reason()
            );
        }
    }
}

/// The reason a token that differs from a valid one only in its signature segment gets: the
/// segment is not canonical base64url (`malformed`), or it decodes to a signature that does not
/// verify (`invalid_signature`).
fn signature_reason(token: &str) -> Reason {
    let signature = token.rsplit_once('.').map_or("", |(_, s)| s);
    if base64url::decode(signature).is_ok() { Reason::InvalidSignature } else { Reason::Malformed }
}

/// Valid tokens for every algorithm verify, and their prefixes and extensions never do, each
/// for the reason its shape dictates.
#[test]
fn fixture_tokens_verify_and_truncations_do_not() {
    let f = fixture();
    let mut checked = 0;
    for token in &f.tokens {
        verify_with_keys(&f.keys, &f.policy, token, NOW).unwrap();
        let second_dot = token.rfind('.').unwrap();
        for cut in 0..token.len() {
            let prefix = &token[..cut];
            // Without both dots it is not a compact JWS; after them, only the signature changed.
            let reason = if cut <= second_dot { Reason::Malformed } else { signature_reason(prefix) };
            let err = verify_with_keys(&f.keys, &f.policy, prefix, NOW).unwrap_err();
            assert_eq!(err.reason(), reason, "prefix {cut} of {token}: {err}");
            checked += 1;
        }
        for suffix in ["A", ".", "=", " ", "\n", ".A"] {
            let extended = format!("{token}{suffix}");
            let reason = if suffix == "A" { signature_reason(&extended) } else { Reason::Malformed };
            let err = verify_with_keys(&f.keys, &f.policy, &extended, NOW).unwrap_err();
            assert_eq!(err.reason(), reason, "{token} + {suffix:?}: {err}");
            checked += 1;
        }
    }
    assert_eq!(checked, f.tokens.iter().map(|t| t.len() + 6).sum::<usize>());
}

/// Inputs the fuzz campaign (fuzz/README.md) and the properties above found worth keeping.
#[test]
fn regression_inputs_do_not_panic() {
    let deep_header = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let inputs: Vec<String> = vec![
        String::new(),
        ".".repeat(3),
        "..".to_owned(),
        "{}".to_owned(),
        format!("{}.e30.c2ln", base64url::encode(deep_header.as_bytes())),
        format!("{}.e30.c2ln", base64url::encode(br#"{"alg":"ES256","crit":[]}"#)),
        format!("{}.e30.c2ln", base64url::encode(b"\xef\xbb\xbf{\"alg\":\"ES256\"}")),
        "\u{feff}eyJ9.e30.c2ln".to_owned(),
    ];
    for input in &inputs {
        exercise(input);
    }
    let _ = JwkSet::from_json(format!(r#"{{"keys":[{}]}}"#, "[".repeat(5000)).as_bytes());
    let empty: Map<String, Value> = Map::new();
    let err = JwkSet::from_json(Value::Object(empty).to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, JwksError::NotAKeySet(_)), "{err:?}");
}
