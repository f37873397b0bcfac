//! Header attacks: A4/A18 (keys embedded in or referenced by the header), A5 (`kid` injection),
//! A8 (`crit`), A9 (`b64: false`) and A10 (duplicate member names).

use keyward::Reason;
use keyward::jwk::{JwkSet, JwksError};
use keyward_idp::SigningAlg;
use serde_json::{Value, json};

use super::support::{
    ISS, NOW, assert_accepted, assert_rejected, b64, claims, header_with, jwk_member, key, policy, set,
};

#[test]
fn a04_a18_embedded_or_referenced_keys_never_select_a_key() {
    // A4 key injection through jwk/jku/x5u/x5c: CVE-2018-0114 (node-jose), CVE-2026-34240 (Dart jose),
    // CVE-2026-27962 (Authlib). A18 (header half): CVE-2026-48522 (PyJWT PyJWKClient), RFC 8725 §3.10:
    // a header URL or key never selects a key. verify_with_keys has no network path at all, so
    // "no request is made" holds by construction; the fetching half is tested with the key source.
    let trusted = key(SigningAlg::ES256, "k1");
    let keys = set(&[&trusted]);
    let attacker_es = key(SigningAlg::ES256, "evil");
    let attacker_rsa = key(SigningAlg::RS256, "evil-rsa");
    let mut forged = claims();
    forged["sub"] = json!("admin");

    // The header members an attacker uses to carry or point at a key; the "certificate" is the
    // attacker's SPKI (x5c is never parsed, so its content is irrelevant to the outcome).
    let x5c = |k: &keyward_idp::SigningKey| {
        json!([base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            k.public_key_spki_der().unwrap()
        )])
    };
    let injections = |k: &keyward_idp::SigningKey| -> Vec<(&'static str, Value)> {
        vec![
            ("jwk", json!({"jwk": k.public_jwk()})),
            ("jku", json!({"jku": "http://127.0.0.1:9/jwks"})),
            ("jku metadata", json!({"jku": "http://169.254.169.254/latest/meta-data/"})),
            ("x5u", json!({"x5u": "http://127.0.0.1:9/cert.pem"})),
            ("x5c", json!({"x5c": x5c(k)})),
            (
                "all four",
                json!({"jwk": k.public_jwk(), "jku": "file:///etc/passwd", "x5u": "https://evil/", "x5c": x5c(k)}),
            ),
        ]
    };

    for attacker in [&attacker_es, &attacker_rsa] {
        for (what, extra) in injections(attacker) {
            let alg = attacker.alg().as_str();
            // The attacker's own kid: not in the configured set.
            let header = header_with(attacker, extra.clone());
            let token = attacker.sign_with_header(&header, &forged).unwrap();
            assert_rejected(&keys, &policy(), &token, Reason::UnknownKid, &format!("{alg} {what}, own kid"));
            // The trusted kid: the configured key is used, and the attacker's signature fails it.
            let mut header = header.clone();
            header["kid"] = json!("k1");
            let token = attacker.sign_with_header(&header, &forged).unwrap();
            let expected =
                if alg == "ES256" { Reason::InvalidSignature } else { Reason::KeyAlgorithmMismatch };
            assert_rejected(&keys, &policy(), &token, expected, &format!("{alg} {what}, trusted kid"));
            // No kid: only configured keys are candidates.
            header.as_object_mut().unwrap().remove("kid");
            let token = attacker.sign_with_header(&header, &forged).unwrap();
            let expected = if alg == "ES256" { Reason::InvalidSignature } else { Reason::NoMatchingKey };
            assert_rejected(&keys, &policy(), &token, expected, &format!("{alg} {what}, no kid"));
        }
    }

    // The same members on a token the trusted key really signed change nothing: they are ignored.
    for (what, extra) in injections(&attacker_es) {
        let token = trusted.sign_with_header(&header_with(&trusted, extra), &claims()).unwrap();
        let verified = assert_accepted(&keys, &policy(), &token, what);
        assert_eq!(verified.key().kid(), Some("k1"));
    }
}

#[test]
fn a05_kid_injection() {
    // A5 kid injection (path traversal, SQL, URL, log injection, type confusion): WebGoat#1538,
    // OWASP/wstg#1275; the empty-key outcome is the class of CVE-2019-20933 (InfluxDB).
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let roomy =
        keyward::Policy::builder().issuer(ISS).audience("api").max_token_len(1 << 20).build().unwrap();

    let long = "k".repeat(100 * 1024);
    let string_kids = [
        "../../../../dev/null",
        "x' OR '1'='1",
        "http://evil/",
        "a\r\nInjected: 1",
        "\u{0}",
        "",
        "K1",
        "k1 ",
        " k1",
        "k1\u{0}",
        long.as_str(),
    ];
    for kid in string_kids {
        let header = json!({"alg": "ES256", "kid": kid});
        let token = es.sign_with_header(&header, &claims()).unwrap();
        let case = format!("kid {:?}", kid.chars().take(40).collect::<String>());
        assert_rejected(&keys, &roomy, &token, Reason::UnknownKid, &case);
        // The rejection text is safe to log: the kid is escaped, never echoed raw.
        let err = keyward::verify_with_keys(&keys, &roomy, &token, NOW).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains(['\r', '\n', '\0']), "{case}: unescaped control character in {text:?}");
        assert_eq!(err.kid(), Some(kid), "{case}: the error keeps the exact kid for structured logs");
    }
    // The 100 KB kid is a size problem under the default bound.
    let token = es.sign_with_header(&json!({"alg": "ES256", "kid": long}), &claims()).unwrap();
    assert_rejected(&keys, &policy(), &token, Reason::TokenTooLarge, "100 KB kid, default bound");

    // Non-string kids are malformed headers (never "absent", never coerced).
    for kid in [json!(123), json!({}), json!(null), json!(["k1"]), json!(true), json!(1.5)] {
        let header = json!({"alg": "ES256", "kid": kid});
        let token = es.sign_with_header(&header, &claims()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, &format!("kid {kid}"));
    }

    // A JSON escape spelling the same string is the same kid (byte equality after decoding).
    let token =
        es.sign_parts(br#"{"alg":"ES256","kid":"\u006b1"}"#, claims().to_string().as_bytes()).unwrap();
    assert_accepted(&keys, &policy(), &token, "kid spelled with a JSON escape");

    // Without a kid: the unambiguous key is used; more than 4 candidates are never all tried.
    let token = es.sign_with_header(&json!({"alg": "ES256"}), &claims()).unwrap();
    assert_accepted(&keys, &policy(), &token, "no kid, one key");
    let others: Vec<_> = (0..4).map(|i| key(SigningAlg::ES256, &format!("other{i}"))).collect();
    let four: Vec<&keyward_idp::SigningKey> = others.iter().take(3).chain([&es]).collect();
    assert_accepted(&set(&four), &policy(), &token, "no kid, four compatible keys");
    let five: Vec<&keyward_idp::SigningKey> = others.iter().chain([&es]).collect();
    assert_rejected(&set(&five), &policy(), &token, Reason::NoMatchingKey, "no kid, five compatible keys");
}

#[test]
fn a08_crit_header() {
    // A8 crit and unknown critical extensions: CVE-2025-59420 (Authlib), CVE-2026-32597 (PyJWT,
    // GHSA-752w-5fwx-jx9f), GHSA-hm7r-c7qw-ghp6 (fast-jwt), auth0/node-jsonwebtoken#1041.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let shapes = [
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": []}),
        json!({"crit": "b64"}),
        json!({"crit": ["alg"]}),
        json!({"crit": ["kid"]}),
        json!({"crit": ["x", "x"], "x": 1}),
        json!({"crit": ["x"]}),
        json!({"crit": ["x"], "x": 1}),
        json!({"crit": [null]}),
        json!({"crit": [1]}),
        json!({"crit": null}),
        json!({"crit": {}}),
        json!({"crit": ["b64"], "b64": true}),
    ];
    for extra in shapes {
        let header = header_with(&es, extra.clone());
        let token = es.sign_with_header(&header, &claims()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::UnsupportedCriticalHeader, &format!("{extra}"));
    }
}

#[test]
fn a09_b64_false_unencoded_payload() {
    // A9 b64:false (RFC 7797): lestrrat-go/jwx#2101, microprofile-jwt-auth#301. RFC 7797 §7 says
    // JWTs MUST NOT use it.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let header = json!({"alg": "ES256", "kid": "k1", "b64": false, "crit": ["b64"]}).to_string();

    // Signed over b64u(H) + "." + the raw payload. The raw JSON payload (no dots in it, as RFC
    // 7797 §5.2 requires for the compact form) is not base64url, so the token is malformed.
    let raw_payload = json!({"sub": "admin", "aud": "api", "exp": NOW + 600}).to_string();
    assert!(!raw_payload.contains('.'));
    let signing_input = format!("{}.{raw_payload}", b64(header.as_bytes()));
    let signature = es.sign_raw(signing_input.as_bytes()).unwrap();
    let token = format!("{signing_input}.{}", b64(&signature));
    assert_rejected(&keys, &policy(), &token, Reason::Malformed, "b64:false, raw JSON payload");

    // A raw payload that happens to be base64url alphabet reaches the header check.
    let signing_input = format!("{}.abcd", b64(header.as_bytes()));
    let signature = es.sign_raw(signing_input.as_bytes()).unwrap();
    let token = format!("{signing_input}.{}", b64(&signature));
    assert_rejected(
        &keys,
        &policy(),
        &token,
        Reason::UnsupportedCriticalHeader,
        "b64:false, alphabet payload",
    );
    // Detached content (empty payload segment).
    let signing_input = format!("{}.", b64(header.as_bytes()));
    let signature = es.sign_raw(format!("{signing_input}{raw_payload}").as_bytes()).unwrap();
    let token = format!("{signing_input}.{}", b64(&signature));
    assert_rejected(&keys, &policy(), &token, Reason::UnsupportedCriticalHeader, "b64:false, detached");

    // Conventionally encoded payloads with a b64 member other than true.
    for b64_value in [json!(false), json!("false"), json!(0), json!(null), json!("true"), json!(1)] {
        let with_crit = header_with(&es, json!({"b64": b64_value, "crit": ["b64"]}));
        let without_crit = header_with(&es, json!({"b64": b64_value}));
        for header in [with_crit, without_crit] {
            let token = es.sign_with_header(&header, &claims()).unwrap();
            assert_rejected(&keys, &policy(), &token, Reason::UnsupportedCriticalHeader, &header.to_string());
        }
    }
    // b64:true without crit is the default encoding spelled out: accepted (context policy:
    // "b64 other than true" is rejected).
    let token = es.sign_with_header(&header_with(&es, json!({"b64": true})), &claims()).unwrap();
    assert_accepted(&keys, &policy(), &token, "b64:true, no crit");
}

#[test]
fn a10_duplicate_member_names() {
    // A10 duplicate JSON members / parser differentials: CVE-2017-12635 (CouchDB), CVE-2022-39227
    // (python-jwt), lestrrat-go/jwx#2234, jwtk/jjwt#1073.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let payload = claims().to_string();

    // Header duplicates, each signed correctly so only the duplicate is wrong.
    let headers: [&str; 9] = [
        r#"{"alg":"ES256","kid":"k1","alg":"none"}"#,
        r#"{"alg":"none","kid":"k1","alg":"ES256"}"#,
        r#"{"alg":"ES256","alg":"ES256","kid":"k1"}"#,
        r#"{"alg":"ES256","kid":"k1","kid":"k2"}"#,
        r#"{"alg":"ES256","kid":"k1","crit":["x"],"crit":[]}"#,
        r#"{"alg":"ES256","kid":"k1","typ":"JWT","typ":"at+jwt"}"#,
        r#"{"alg":"ES256","kid":"k1","\u0061lg":"none"}"#,
        r#"{"alg":"ES256","\u0061lg":"ES256","kid":"k1"}"#,
        r#"{"alg":"ES256","kid":"k1","cnf":{"jkt":"a","jkt":"b"}}"#,
    ];
    for header in headers {
        let token = es.sign_parts(header.as_bytes(), payload.as_bytes()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, header);
    }

    // Claim duplicates; in each, either copy alone would pass or fail differently.
    let body = format!(r#""iss":"{ISS}","aud":"api","exp":{}"#, NOW + 600);
    let claim_sets = [
        format!(r#"{{{body},"sub":"alice","sub":"admin"}}"#),
        format!(r#"{{{body},"aud":"other"}}"#),
        format!(r#"{{{body},"exp":{}}}"#, NOW - 3600),
        format!(r#"{{{body},"exp":{}}}"#, NOW + 600),
        format!(r#"{{{body},"iss":"https://evil"}}"#),
        format!(r#"{{{body},"\u0073ub":"a","sub":"b"}}"#),
        format!(r#"{{{body},"cnf":{{"jkt":"a","jkt":"b"}}}}"#),
        format!(r#"{{{body},"cnf":{{"x5t#S256":"a","\u0078\u0035t#S256":"b"}}}}"#),
        format!(r#"{{{body},"roles":[{{"r":"user","r":"admin"}}]}}"#),
    ];
    for claims_json in &claim_sets {
        let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, claims_json.as_bytes()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, claims_json);
    }
    // Same names at different depths are not duplicates.
    let nested = format!(r#"{{{body},"cnf":{{"iss":"x","exp":1}}}}"#);
    let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, nested.as_bytes()).unwrap();
    assert_accepted(&keys, &policy(), &token, "same names at another depth");

    // A JWKS entry with two `n` members (the second a different key) rejects the document.
    let rsa = key(SigningAlg::RS256, "dup");
    let other = key(SigningAlg::RS256, "other");
    let n1 = b64(&jwk_member(&rsa, "n"));
    let n2 = b64(&jwk_member(&other, "n"));
    let document =
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"dup","alg":"RS256","n":"{n1}","e":"AQAB","n":"{n2}"}}]}}"#);
    let err = JwkSet::from_json(document.as_bytes()).unwrap_err();
    assert!(matches!(err, JwksError::NotJson(_)), "{err:?}");
    let document =
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"dup","n":"{n1}","e":"AQAB","\u006e":"{n1}"}}]}}"#);
    assert!(matches!(JwkSet::from_json(document.as_bytes()), Err(JwksError::NotJson(_))));
    // A duplicate "keys" member at the top.
    let document = format!(r#"{{"keys":[],"keys":[{}]}}"#, rsa.public_jwk());
    assert!(matches!(JwkSet::from_json(document.as_bytes()), Err(JwksError::NotJson(_))));
}
