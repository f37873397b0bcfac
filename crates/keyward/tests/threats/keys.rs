//! Key-set attacks: A15 (key-usage mismatch) and A20 (JWKS poisoning).

use keyward::Reason;
use keyward::jwk::{DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_KEYS, JwkSet, JwksError, KeyProblem, KeySetWarning};
use keyward_idp::{SigningAlg, SigningKey};
use serde_json::{Value, json};

use super::support::{
    assert_accepted, assert_rejected, b64, claims, jwk_with, key, policy, random_bytes, set, set_from,
};

/// A token signed by `signer` whose header names `kid` under `alg`.
fn token_naming(signer: &SigningKey, alg: &str, kid: &str) -> String {
    signer.sign_with_header(&json!({"alg": alg, "kid": kid}), &claims()).unwrap()
}

#[test]
fn a15_key_usage_mismatch() {
    // A15 key-usage mismatch (use enc, key_ops, alg/kty/crv): CVE-2022-23539 (jsonwebtoken key type
    // and algorithm pairs), lestrrat-go/jwx#2059 (use=enc key fell through), jose4j per Wycheproof.
    let rsa = key(SigningAlg::RS256, "rsa");
    let es = key(SigningAlg::ES256, "es");
    let ed = key(SigningAlg::EdDSA, "ed");

    // Keys set aside at parse time, and the reason a token naming each gets.
    let x25519 = json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64(&random_bytes(32))});
    let set_aside: [(&str, Value, KeyProblem, &SigningKey, &str); 17] = [
        ("use enc", jwk_with(&rsa, json!({"use": "enc"})), KeyProblem::NotForSigning, &rsa, "RS256"),
        ("use Sig (case)", jwk_with(&rsa, json!({"use": "Sig"})), KeyProblem::NotForSigning, &rsa, "RS256"),
        (
            "use sig, key_ops [encrypt]",
            jwk_with(&rsa, json!({"key_ops": ["encrypt"]})),
            KeyProblem::NotForSigning,
            &rsa,
            "RS256",
        ),
        (
            "key_ops [sign] only",
            jwk_with(&rsa, json!({"use": null, "key_ops": ["sign"]})),
            KeyProblem::NotForSigning,
            &rsa,
            "RS256",
        ),
        (
            "use sig, key_ops [verify, encrypt] disagree",
            jwk_with(&rsa, json!({"key_ops": ["verify", "encrypt"]})),
            KeyProblem::NotForSigning,
            &rsa,
            "RS256",
        ),
        (
            "use enc, key_ops [verify]",
            jwk_with(&rsa, json!({"use": "enc", "key_ops": ["verify"]})),
            KeyProblem::NotForSigning,
            &rsa,
            "RS256",
        ),
        (
            "key_ops [verify, verify]",
            jwk_with(&rsa, json!({"key_ops": ["verify", "verify"]})),
            KeyProblem::Malformed,
            &rsa,
            "RS256",
        ),
        (
            "key_ops a string",
            jwk_with(&rsa, json!({"key_ops": "verify"})),
            KeyProblem::Malformed,
            &rsa,
            "RS256",
        ),
        ("use a number", jwk_with(&rsa, json!({"use": 1})), KeyProblem::Malformed, &rsa, "RS256"),
        (
            "alg RSA-OAEP",
            jwk_with(&rsa, json!({"alg": "RSA-OAEP"})),
            KeyProblem::NotForSigning,
            &rsa,
            "RS256",
        ),
        (
            "RSA key, alg ES256",
            jwk_with(&rsa, json!({"alg": "ES256"})),
            KeyProblem::AlgorithmMismatch,
            &rsa,
            "ES256",
        ),
        (
            "RSA key, alg HS256",
            jwk_with(&rsa, json!({"alg": "HS256"})),
            KeyProblem::Unsupported,
            &rsa,
            "RS256",
        ),
        ("RSA key, alg none", jwk_with(&rsa, json!({"alg": "none"})), KeyProblem::Unsupported, &rsa, "RS256"),
        (
            "P-256 key, alg ES384",
            jwk_with(&es, json!({"alg": "ES384"})),
            KeyProblem::AlgorithmMismatch,
            &es,
            "ES256",
        ),
        (
            "Ed25519 key, alg ES256",
            jwk_with(&ed, json!({"alg": "ES256"})),
            KeyProblem::AlgorithmMismatch,
            &ed,
            "EdDSA",
        ),
        ("OKP X25519 key", x25519, KeyProblem::NotForSigning, &ed, "EdDSA"),
        ("kty DSA", jwk_with(&rsa, json!({"kty": "DSA"})), KeyProblem::Unsupported, &rsa, "RS256"),
    ];
    for (case, jwk, problem, signer, alg) in set_aside {
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        let keys = set_from(&json!({"keys": [jwk]}));
        assert!(keys.is_empty(), "{case}: must be set aside");
        assert_eq!(keys.set_aside()[0].problem, problem, "{case}: {}", keys.set_aside()[0].detail);
        let token = token_naming(signer, alg, &kid);
        assert_rejected(&keys, &policy(), &token, problem.reason(), case);
    }

    // Usable keys that do not fit the token's algorithm.
    let p384 = key(SigningAlg::ES384, "p384");
    let ps_bound = set_from(&json!({"keys": [jwk_with(&rsa, json!({"alg": "PS256"}))]}));
    let rs_bound = set(&[&rsa]);
    let both_ec = set(&[&es, &p384]);
    let mismatches: [(&str, &JwkSet, String); 6] = [
        ("RS256 token, JWK alg PS256", &ps_bound, rsa.sign_jwt(&claims()).unwrap()),
        ("PS256 token, JWK alg RS256", &rs_bound, token_naming(&rsa, "PS256", "rsa")),
        ("RS512 token, JWK alg RS256", &rs_bound, token_naming(&rsa, "RS512", "rsa")),
        ("ES256 token naming a P-384 key", &both_ec, token_naming(&es, "ES256", "p384")),
        ("ES384 token naming a P-256 key", &both_ec, token_naming(&p384, "ES384", "es")),
        ("ES512 token naming a P-256 key", &both_ec, token_naming(&es, "ES512", "es")),
    ];
    for (case, keys, token) in mismatches {
        assert_rejected(keys, &policy(), &token, Reason::KeyAlgorithmMismatch, case);
    }
    // Without a kid, a key of another family is never a candidate.
    let no_kid = es.sign_with_header(&json!({"alg": "ES256"}), &claims()).unwrap();
    let others = set(&[&rsa, &p384, &ed]);
    assert_rejected(&others, &policy(), &no_kid, Reason::NoMatchingKey, "ES256 without kid, no P-256 key");

    // Controls: key_ops [verify] without use, and a JWK without alg usable by family.
    let ops = set_from(&json!({"keys": [jwk_with(&rsa, json!({"use": null, "key_ops": ["verify"]}))]}));
    assert_accepted(&ops, &policy(), &rsa.sign_jwt(&claims()).unwrap(), "key_ops [verify]");
    let no_alg = set_from(&json!({"keys": [jwk_with(&rsa, json!({"alg": null}))]}));
    let ps = key(SigningAlg::PS256, "rsa");
    let ps_no_alg = set_from(&json!({"keys": [jwk_with(&ps, json!({"alg": null}))]}));
    assert_accepted(&no_alg, &policy(), &rsa.sign_jwt(&claims()).unwrap(), "RS256 with an alg-less RSA JWK");
    assert_accepted(
        &ps_no_alg,
        &policy(),
        &ps.sign_jwt(&claims()).unwrap(),
        "PS256 with an alg-less RSA JWK",
    );
    assert_rejected(
        &no_alg,
        &policy(),
        &token_naming(&rsa, "ES256", "rsa"),
        Reason::KeyAlgorithmMismatch,
        "ES256",
    );
}

#[test]
fn a20_jwks_poisoning() {
    // A20 JWKS response poisoning: go-jose/go-jose#171 (private keys published in JWKS, H. Böck
    // 2025), Wycheproof json_web_key_test MixedKeySet / DuplicateKid.
    let rsa = key(SigningAlg::RS256, "rsa");
    let es = key(SigningAlg::ES256, "es");

    // Private members: the public part stays usable, with a warning; the members are dropped.
    let with_private = json!({"keys": [
        jwk_with(&rsa, json!({"d": b64(&random_bytes(256))})),
        jwk_with(&es, json!({"d": b64(&random_bytes(32))})),
    ]});
    let keys = set_from(&with_private);
    assert_eq!(keys.len(), 2);
    assert!(keys.set_aside().is_empty());
    assert_eq!(
        keys.warnings(),
        [
            KeySetWarning::PrivateKeyPublished { kid: Some("rsa".to_owned()), members: vec!["d"] },
            KeySetWarning::PrivateKeyPublished { kid: Some("es".to_owned()), members: vec!["d"] },
        ]
    );
    assert!(keys.keys().iter().all(|k| !k.public_jwk().contains_key("d")));
    assert_accepted(&keys, &policy(), &rsa.sign_jwt(&claims()).unwrap(), "RSA key published with d");
    assert_accepted(&keys, &policy(), &es.sign_jwt(&claims()).unwrap(), "EC key published with d");
    let every_private = ["d", "p", "q", "dp", "dq", "qi", "oth"];
    let changes: serde_json::Map<String, Value> =
        every_private.iter().map(|m| ((*m).to_owned(), json!("AQAB"))).collect();
    let keys = set_from(&json!({"keys": [jwk_with(&rsa, Value::Object(changes))]}));
    assert_eq!(
        keys.warnings(),
        [KeySetWarning::PrivateKeyPublished { kid: Some("rsa".to_owned()), members: every_private.to_vec() }]
    );
    assert_eq!(keys.warnings()[0].as_str(), "private_key_published");

    // oct keys never verify, whatever the token says.
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64(&random_bytes(32)), "alg": "HS256"});
    let keys = set_from(&json!({"keys": [oct]}));
    assert_eq!(keys.set_aside()[0].problem, KeyProblem::NotForSigning);
    assert_rejected(
        &keys,
        &policy(),
        &token_naming(&rsa, "RS256", "oct"),
        Reason::KeyNotForSigning,
        "oct, RS256",
    );
    assert_rejected(
        &keys,
        &policy(),
        &token_naming(&rsa, "HS256", "oct"),
        Reason::AlgorithmNotAllowed,
        "oct, HS256",
    );
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64(&random_bytes(32))});
    assert_eq!(set_from(&json!({"keys": [oct]})).set_aside()[0].problem, KeyProblem::NotForSigning);

    // Documents that are not key sets.
    let not_sets: [(&str, &str); 6] = [
        ("keys is an object", r#"{"keys":{}}"#),
        ("keys is null", r#"{"keys":null}"#),
        ("keys is a string", r#"{"keys":"[]"}"#),
        ("no keys member", r#"{"kty":"RSA"}"#),
        ("keys is an object of keys", r#"{"keys":{"k1":{"kty":"RSA"}}}"#),
        ("keys is a number", r#"{"keys":1}"#),
    ];
    for (case, document) in not_sets {
        let err = JwkSet::from_json(document.as_bytes()).unwrap_err();
        assert!(matches!(err, JwksError::NotAKeySet(_)), "{case}: {err:?}");
    }
    for (case, document) in [
        ("top-level array", "[]"),
        ("not JSON", "<html>"),
        ("empty", ""),
        ("trailing data", r#"{"keys":[]} x"#),
    ] {
        let err = JwkSet::from_json(document.as_bytes()).unwrap_err();
        assert!(matches!(err, JwksError::NotJson(_)), "{case}: {err:?}");
    }

    // 10,000 keys: rejected whole, by count.
    let entry = r#"{"kty":"EC"}"#;
    let document = format!(r#"{{"keys":[{}]}}"#, vec![entry; 10_000].join(","));
    assert!(document.len() < DEFAULT_MAX_JWKS_BYTES);
    let err = JwkSet::from_json(document.as_bytes()).unwrap_err();
    assert_eq!(err, JwksError::TooManyKeys { count: 10_000, limit: DEFAULT_MAX_KEYS });
    // The bound is inclusive.
    let document = format!(r#"{{"keys":[{}]}}"#, vec![entry; DEFAULT_MAX_KEYS].join(","));
    assert_eq!(JwkSet::from_json(document.as_bytes()).unwrap().set_aside().len(), DEFAULT_MAX_KEYS);

    // A 2 MB document: rejected whole, by size, before parsing (it is not even valid JSON).
    let mut document = format!(r#"{{"keys":[{}],"pad":""#, es.public_jwk());
    document.push_str(&"x".repeat(2 * 1024 * 1024));
    let err = JwkSet::from_json(document.as_bytes()).unwrap_err();
    assert_eq!(err, JwksError::TooLarge { size: document.len(), limit: DEFAULT_MAX_JWKS_BYTES });
    let small_limit = JwkSet::from_json_with_limits(jwks_text(&[&es]).as_bytes(), 64, DEFAULT_MAX_KEYS);
    assert!(matches!(small_limit, Err(JwksError::TooLarge { limit: 64, .. })));

    // A valid key among junk: the junk is set aside with reasons, the valid key still works.
    let mut tiny_n = random_bytes(64);
    tiny_n[0] |= 0x80;
    let junk = json!({"keys": [
        null,
        5,
        "es",
        [],
        {},
        {"kty": "RSA"},
        {"kty": "EC", "crv": "P-256", "x": "!!", "y": "!!", "kid": "bad-b64"},
        {"kty": "Foo", "kid": "es"},
        {"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "AAAA"},
        es.public_jwk(),
        jwk_with(&rsa, json!({"n": b64(&tiny_n), "kid": "tiny"})),
    ]});
    let keys = set_from(&junk);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.set_aside().len(), 11);
    let problems: Vec<(usize, KeyProblem)> = keys.set_aside().iter().map(|k| (k.index, k.problem)).collect();
    assert_eq!(
        problems,
        [
            (0, KeyProblem::Malformed),
            (1, KeyProblem::Malformed),
            (2, KeyProblem::Malformed),
            (3, KeyProblem::Malformed),
            (4, KeyProblem::Malformed),
            (5, KeyProblem::Malformed),
            (6, KeyProblem::Malformed),
            (7, KeyProblem::Unsupported),
            (8, KeyProblem::Malformed),
            (9, KeyProblem::NotForSigning),
            (11, KeyProblem::Weak),
        ]
    );
    assert_accepted(&keys, &policy(), &es.sign_jwt(&claims()).unwrap(), "valid key among junk");
    assert_rejected(&keys, &policy(), &token_naming(&rsa, "RS256", "tiny"), Reason::WeakKey, "junk weak key");
    assert_rejected(
        &keys,
        &policy(),
        &token_naming(&es, "ES256", "bad-b64"),
        Reason::KeyNotForSigning,
        "junk bad b64",
    );

    // Duplicate kids with overlapping algorithms: a warning, and each compatible key is tried.
    let twin = key(SigningAlg::ES256, "es");
    let stranger = key(SigningAlg::ES256, "es");
    let keys = set(&[&es, &twin]);
    assert_eq!(keys.warnings(), [KeySetWarning::DuplicateKid { kid: "es".to_owned(), count: 2 }]);
    assert_accepted(&keys, &policy(), &es.sign_jwt(&claims()).unwrap(), "first key under a shared kid");
    assert_accepted(&keys, &policy(), &twin.sign_jwt(&claims()).unwrap(), "second key under a shared kid");
    let token = stranger.sign_jwt(&claims()).unwrap();
    assert_rejected(&keys, &policy(), &token, Reason::InvalidSignature, "a third key under the shared kid");

    // A usable key without a kid is reported.
    let keys = set_from(&json!({"keys": [jwk_with(&es, json!({"kid": null}))]}));
    assert_eq!(keys.warnings(), [KeySetWarning::KeyWithoutKid { index: 0 }]);
}

fn jwks_text(keys: &[&SigningKey]) -> String {
    keyward_idp::jwks(keys.iter().copied()).to_string()
}
