//! Claims attacks: A12 (time claims), A13 (audience), A14 (issuer confusion) and A23 (cross-JWT
//! confusion through `typ`).

use std::time::Duration;

use keyward::{ConfigError, FixedClock, Policy, Reason, Verifier};
use keyward_idp::{SigningAlg, SigningKey};
use serde_json::{Value, json};

use super::support::{
    ISS, NOW, assert_accepted, assert_rejected, claims, jwk_with, key, policy, set, set_from,
};

/// A token from `key` over raw claims JSON (so number literals are exactly as written).
fn token_raw(key: &SigningKey, claims_json: &str) -> String {
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid()}).to_string();
    key.sign_parts(header.as_bytes(), claims_json.as_bytes()).unwrap()
}

/// `None` means the token must verify.
type Expect = Option<Reason>;

#[test]
fn a12_time_claims_with_the_wrong_type_floats_and_overflow() {
    // A12 time claims: CVE-2026-25537 (Rust jsonwebtoken < 10.3.0: an ill-typed exp/nbf was treated
    // as absent, so validation was skipped).
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let mut checked = 0;
    for leeway in [0i64, 60] {
        let exp_cases: Vec<(String, Expect)> = vec![
            (r#""1700000000""#.to_owned(), Some(Reason::InvalidClaim)),
            (format!(r#""{}""#, NOW + 600), Some(Reason::InvalidClaim)),
            (r#""never""#.to_owned(), Some(Reason::InvalidClaim)),
            ("true".to_owned(), Some(Reason::InvalidClaim)),
            ("null".to_owned(), Some(Reason::InvalidClaim)),
            ("[1]".to_owned(), Some(Reason::InvalidClaim)),
            (format!("[{}]", NOW + 600), Some(Reason::InvalidClaim)),
            ("{}".to_owned(), Some(Reason::InvalidClaim)),
            ("-1".to_owned(), Some(Reason::InvalidClaim)),
            ("-0.5".to_owned(), Some(Reason::InvalidClaim)),
            // Not representable by serde_json: the payload itself does not parse.
            ("1e309".to_owned(), Some(Reason::Malformed)),
            // Beyond u64 (read as a float), beyond i64, beyond 2^53.
            ("18446744073709551616".to_owned(), Some(Reason::InvalidClaim)),
            ("9223372036854775807".to_owned(), Some(Reason::InvalidClaim)),
            ("9007199254740993".to_owned(), Some(Reason::InvalidClaim)),
            ("1e16".to_owned(), Some(Reason::InvalidClaim)),
            // 2^53 itself is the largest accepted value, as an integer and as a float.
            ("9007199254740992".to_owned(), None),
            ("9007199254740992.0".to_owned(), None),
            (format!("{}e0", NOW + 600), None),
            ("0".to_owned(), Some(Reason::Expired)),
            ("1.5".to_owned(), Some(Reason::Expired)),
            // Floats are floored for exp (the strict direction).
            (format!("{}.5", NOW - 1), if leeway == 0 { Some(Reason::Expired) } else { None }),
            (format!("{NOW}.5"), if leeway == 0 { Some(Reason::Expired) } else { None }),
            (format!("{}.5", NOW - leeway), Some(Reason::Expired)),
            (format!("{}.999", NOW - leeway), Some(Reason::Expired)),
            (format!("{}", NOW - leeway), Some(Reason::Expired)),
            (format!("{}", NOW - leeway + 1), None),
        ];
        for require_exp in [true, false] {
            let policy = Policy::builder()
                .issuer(ISS)
                .audience("api")
                .leeway(Duration::from_secs(leeway.unsigned_abs()))
                .require_exp(require_exp)
                .build()
                .unwrap();
            let context = format!("leeway {leeway}, exp required {require_exp}");
            for (exp, expected) in &exp_cases {
                let token = token_raw(&es, &format!(r#"{{"iss":"{ISS}","aud":"api","exp":{exp}}}"#));
                let case = format!("exp {exp} ({context})");
                match expected {
                    Some(reason) => assert_rejected(&keys, &policy, &token, *reason, &case),
                    None => drop(assert_accepted(&keys, &policy, &token, &case)),
                }
                checked += 1;
            }
            // exp missing.
            let token = token_raw(&es, &format!(r#"{{"iss":"{ISS}","aud":"api"}}"#));
            if require_exp {
                assert_rejected(
                    &keys,
                    &policy,
                    &token,
                    Reason::MissingClaim,
                    &format!("exp missing ({context})"),
                );
            } else {
                assert_accepted(&keys, &policy, &token, &format!("exp missing ({context})"));
            }

            // nbf and iat: ill-typed, in the future, and floats ceiled (the strict direction).
            let others: Vec<(&str, String, Expect)> = vec![
                ("nbf", format!("{}", NOW + 3600), Some(Reason::NotYetValid)),
                ("nbf", r#""0""#.to_owned(), Some(Reason::InvalidClaim)),
                ("nbf", "null".to_owned(), Some(Reason::InvalidClaim)),
                ("nbf", "-1".to_owned(), Some(Reason::InvalidClaim)),
                ("nbf", "1e309".to_owned(), Some(Reason::Malformed)),
                ("nbf", format!("{}", NOW + leeway), None),
                ("nbf", format!("{}.5", NOW + leeway - 1), None),
                ("nbf", format!("{}.5", NOW + leeway), Some(Reason::NotYetValid)),
                ("nbf", format!("{}.001", NOW + leeway), Some(Reason::NotYetValid)),
                ("nbf", format!("{}", NOW + leeway + 1), Some(Reason::NotYetValid)),
                ("iat", r#""0""#.to_owned(), Some(Reason::InvalidClaim)),
                ("iat", "[0]".to_owned(), Some(Reason::InvalidClaim)),
                ("iat", format!("{}", NOW + leeway), None),
                ("iat", format!("{}.5", NOW + leeway), Some(Reason::IssuedInFuture)),
                ("iat", "9223372036854775807".to_owned(), Some(Reason::InvalidClaim)),
            ];
            for (name, value, expected) in others {
                let json = format!(r#"{{"iss":"{ISS}","aud":"api","exp":{},"{name}":{value}}}"#, NOW + 600);
                let token = token_raw(&es, &json);
                let case = format!("{name} {value} ({context})");
                match expected {
                    Some(reason) => assert_rejected(&keys, &policy, &token, reason, &case),
                    None => drop(assert_accepted(&keys, &policy, &token, &case)),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 2 * (26 + 15));

    // The leeway is capped at 5 minutes.
    assert!(Policy::builder().any_audience().leeway(Duration::from_secs(300)).build().is_ok());
    let err = Policy::builder().any_audience().leeway(Duration::from_secs(301)).build().unwrap_err();
    assert!(matches!(err, ConfigError::LeewayTooLarge(301)), "{err:?}");
}

#[test]
fn a13_audience_type_confusion() {
    // A13 aud string/array/type confusion: CVE-2020-26160 (dgrijalva/jwt-go treated an aud array
    // that failed a type assertion as "").
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let api = policy();
    let any = Policy::builder().issuer(ISS).any_audience().build().unwrap();
    let several = Policy::builder().issuer(ISS).audiences(["api", "admin"]).build().unwrap();

    // (aud JSON or None for missing, expected under "api", under any audience)
    let cases: [(Option<&str>, Expect, Expect); 22] = [
        (Some(r#""api""#), None, None),
        (Some(r#"["api"]"#), None, None),
        (Some(r#"["x","api"]"#), None, None),
        (Some(r#"["api","api"]"#), None, None),
        (Some(r#""\u0061pi""#), None, None),
        (Some(r#""""#), Some(Reason::AudienceMismatch), None),
        (Some("[]"), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some("null"), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some(r#"["api",5]"#), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some(r#"[5,"api"]"#), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some(r#"["api",null]"#), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some(r#"[["api"]]"#), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some(r#""API""#), Some(Reason::AudienceMismatch), None),
        (Some(r#""api ""#), Some(Reason::AudienceMismatch), None),
        (Some(r#"" api""#), Some(Reason::AudienceMismatch), None),
        (Some(r#"["apix"]"#), Some(Reason::AudienceMismatch), None),
        (Some(r#""ap""#), Some(Reason::AudienceMismatch), None),
        (Some(r#"["API","Api"]"#), Some(Reason::AudienceMismatch), None),
        (None, Some(Reason::MissingClaim), None),
        (Some(r#"{"aud":"api"}"#), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some("5"), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
        (Some("true"), Some(Reason::InvalidClaim), Some(Reason::InvalidClaim)),
    ];
    for (aud, under_api, under_any) in cases {
        let json = match aud {
            Some(aud) => format!(r#"{{"iss":"{ISS}","exp":{},"aud":{aud}}}"#, NOW + 600),
            None => format!(r#"{{"iss":"{ISS}","exp":{}}}"#, NOW + 600),
        };
        let token = token_raw(&es, &json);
        for (policy, expected, name) in [(&api, under_api, "aud=api"), (&any, under_any, "any audience")] {
            let case = format!("aud {aud:?}, policy {name}");
            match expected {
                Some(reason) => assert_rejected(&keys, policy, &token, reason, &case),
                None => drop(assert_accepted(&keys, policy, &token, &case)),
            }
        }
    }
    let token = token_raw(&es, &format!(r#"{{"iss":"{ISS}","exp":{},"aud":["x","admin"]}}"#, NOW + 600));
    assert_accepted(&keys, &several, &token, "one of several audiences");
    let token = token_raw(&es, &format!(r#"{{"iss":"{ISS}","exp":{},"aud":["x","y"]}}"#, NOW + 600));
    assert_rejected(&keys, &several, &token, Reason::AudienceMismatch, "none of several audiences");
}

const ISS_A: &str = "https://a.example.test";
const ISS_B: &str = "https://b.example.test";

fn issuer_claims(iss: Value) -> Value {
    let mut claims = claims();
    claims["iss"] = iss;
    claims
}

#[tokio::test]
async fn a14_issuer_confusion_across_two_issuers() {
    // A14 issuer/key confusion: nearform/fast-jwt#552 (arrays for iss), NodeDB-Lab/nodedb#61
    // (single-provider fallback), SAP cloud-security-services-integration-library #1942-#1944.
    let a1 = key(SigningAlg::ES256, "a1");
    let a_shared = key(SigningAlg::ES256, "shared");
    let b1 = key(SigningAlg::ES256, "b1");
    let b_shared = key(SigningAlg::ES256, "shared");
    let verifier_for = |iss: &str, keys: &[&SigningKey]| {
        let policy = Policy::builder().issuer(iss).audience("api").build().unwrap();
        Verifier::builder().keys(set(keys)).policy(policy).clock(FixedClock::at(NOW)).build().unwrap()
    };
    let verifier_a = verifier_for(ISS_A, &[&a1, &a_shared]);
    let verifier_b = verifier_for(ISS_B, &[&b1, &b_shared]);
    let attacker = key(SigningAlg::ES256, "b1");

    // (case, token, reason at A)
    let cases: [(&str, String, Reason); 6] = [
        (
            "iss=A signed by B's key under B's kid",
            b1.sign_jwt(&issuer_claims(json!(ISS_A))).unwrap(),
            Reason::UnknownKid,
        ),
        (
            "iss=A signed by B's key under A's kid",
            b1.sign_with_header(&json!({"alg": "ES256", "kid": "a1"}), &issuer_claims(json!(ISS_A))).unwrap(),
            Reason::InvalidSignature,
        ),
        (
            "iss=A signed by B's key under a kid both issuers use",
            b_shared.sign_jwt(&issuer_claims(json!(ISS_A))).unwrap(),
            Reason::InvalidSignature,
        ),
        (
            "iss=A with a kid only B has",
            attacker.sign_jwt(&issuer_claims(json!(ISS_A))).unwrap(),
            Reason::UnknownKid,
        ),
        ("B's genuine token", b1.sign_jwt(&issuer_claims(json!(ISS_B))).unwrap(), Reason::UnknownKid),
        (
            "B's genuine token under the shared kid",
            b_shared.sign_jwt(&issuer_claims(json!(ISS_B))).unwrap(),
            Reason::InvalidSignature,
        ),
    ];
    for (case, token, reason) in &cases {
        let err = verifier_a.verify(token).await.unwrap_err();
        assert_eq!(err.reason(), *reason, "{case}: {err}");
    }
    // B's genuine tokens verify at B, and not with A's key material.
    for (case, token, _) in &cases[4..] {
        let verified =
            verifier_b.verify(token).await.unwrap_or_else(|e| panic!("{case} at B: rejected: {e}"));
        assert_eq!(verified.claims()["iss"], json!(ISS_B), "{case}");
    }

    // A's key, wrong or ill-typed iss.
    let iss_cases: [(Value, Reason); 9] = [
        (json!(ISS_B), Reason::IssuerMismatch),
        (json!([ISS_A]), Reason::InvalidClaim),
        (json!(format!("{ISS_A}/")), Reason::IssuerMismatch),
        (json!(ISS_A.to_uppercase()), Reason::IssuerMismatch),
        (json!("https://A.example.test"), Reason::IssuerMismatch),
        (json!("https://evil.example.test"), Reason::IssuerMismatch),
        (json!(""), Reason::IssuerMismatch),
        (json!(null), Reason::InvalidClaim),
        (json!({"iss": ISS_A}), Reason::InvalidClaim),
    ];
    for (iss, reason) in iss_cases {
        let token = a1.sign_jwt(&issuer_claims(iss.clone())).unwrap();
        let err = verifier_a.verify(&token).await.unwrap_err();
        assert_eq!(err.reason(), reason, "iss {iss}: {err}");
    }
    let mut no_iss = claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    let err = verifier_a.verify(&a1.sign_jwt(&no_iss).unwrap()).await.unwrap_err();
    assert_eq!(err.reason(), Reason::MissingClaim, "iss missing: {err}");
    let verified = verifier_a
        .verify(&a1.sign_jwt(&issuer_claims(json!(ISS_A))).unwrap())
        .await
        .unwrap_or_else(|e| panic!("A's genuine token at A: rejected: {e}"));
    assert_eq!(verified.claims()["iss"], json!(ISS_A));

    // A key bound to its issuer (the JWK `issuer` member, as Entra publishes) verifies only that
    // issuer's tokens, even in a merged set under a policy without an issuer.
    let bound_a = key(SigningAlg::ES256, "bound-a");
    let merged = set_from(&json!({"keys": [
        jwk_with(&bound_a, json!({"issuer": ISS_A})),
        jwk_with(&b1, json!({"issuer": ISS_B})),
    ]}));
    let open = Policy::builder().audience("api").build().unwrap();
    assert_accepted(
        &merged,
        &open,
        &bound_a.sign_jwt(&issuer_claims(json!(ISS_A))).unwrap(),
        "bound A, iss A",
    );
    let token = bound_a.sign_jwt(&issuer_claims(json!(ISS_B))).unwrap();
    assert_rejected(&merged, &open, &token, Reason::IssuerMismatch, "key bound to A, iss B");
    assert_rejected(
        &merged,
        &open,
        &bound_a.sign_jwt(&no_iss).unwrap(),
        Reason::MissingClaim,
        "bound, no iss",
    );

    // Templated issuer: the tenant comes from `tid`, which must be a GUID and agree with `iss`.
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let other_tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let templated = key(SigningAlg::RS256, "entra");
    let keys = set_from(&json!({"keys": [
        jwk_with(&templated, json!({"alg": null, "issuer": "https://login.example.test/{tenantid}/v2.0"})),
    ]}));
    let tenant_claims = |iss_tenant: &str, tid: Value| {
        let mut c = issuer_claims(json!(format!("https://login.example.test/{iss_tenant}/v2.0")));
        if !tid.is_null() {
            c["tid"] = tid;
        }
        c
    };
    let tenant_cases: [(Value, Expect); 5] = [
        (tenant_claims(tenant, json!(tenant)), None),
        (tenant_claims(tenant, json!(other_tenant)), Some(Reason::IssuerMismatch)),
        (tenant_claims(tenant, Value::Null), Some(Reason::MissingClaim)),
        (tenant_claims("common", json!("common")), Some(Reason::InvalidClaim)),
        (tenant_claims(tenant, json!([tenant])), Some(Reason::InvalidClaim)),
    ];
    for (claims, expected) in tenant_cases {
        let token = templated.sign_jwt(&claims).unwrap();
        match expected {
            Some(reason) => assert_rejected(&keys, &open, &token, reason, &claims.to_string()),
            None => drop(assert_accepted(&keys, &open, &token, &claims.to_string())),
        }
    }
}

#[test]
fn a23_cross_jwt_confusion_through_typ() {
    // A23 cross-JWT confusion (ID token as access token): RFC 8725 §2.8 and §3.11, OWASP/wstg#1490.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let api = Policy::builder().issuer(ISS).audience("api").require_typ("at+jwt").build().unwrap();
    let id_profile = Policy::builder().issuer(ISS).audience("spa-client").require_typ("JWT").build().unwrap();

    let with_typ = |typ: Option<&str>, aud: &str| {
        let mut header = json!({"alg": "ES256", "kid": "k1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let mut claims = claims();
        claims["aud"] = json!(aud);
        es.sign_with_header(&header, &claims).unwrap()
    };

    // A correctly signed ID token presented to the API.
    let id_token = with_typ(Some("JWT"), "spa-client");
    assert_rejected(&keys, &api, &id_token, Reason::InvalidClaim, "ID token at the API");
    assert_rejected(&keys, &api, &with_typ(Some("JWT"), "api"), Reason::InvalidClaim, "typ JWT, aud api");
    assert_rejected(&keys, &api, &with_typ(None, "api"), Reason::InvalidClaim, "no typ at the API");
    assert_accepted(&keys, &id_profile, &id_token, "ID token at the ID profile");
    // An access token presented where an ID token is expected.
    let access = with_typ(Some("at+jwt"), "api");
    assert_accepted(&keys, &api, &access, "access token at the API");
    assert_rejected(&keys, &id_profile, &access, Reason::InvalidClaim, "access token at the ID profile");
    assert_rejected(
        &keys,
        &id_profile,
        &with_typ(Some("at+jwt"), "spa-client"),
        Reason::InvalidClaim,
        "at+jwt with the client as audience",
    );
    // Media-type spellings (RFC 7515 §4.1.9: case-insensitive, application/ optional).
    for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
        assert_accepted(&keys, &api, &with_typ(Some(typ), "api"), typ);
    }
    for typ in ["at+jwt ", "at+jwt;v=1", "application/jwt", "jwt", "", "dpop+jwt", "application/"] {
        assert_rejected(
            &keys,
            &api,
            &with_typ(Some(typ), "api"),
            Reason::InvalidClaim,
            &format!("typ {typ:?}"),
        );
    }
    // The typ check precedes the audience check, and the audience still applies after it.
    assert_rejected(
        &keys,
        &api,
        &with_typ(Some("at+jwt"), "spa-client"),
        Reason::AudienceMismatch,
        "at+jwt, aud client",
    );
    // Without a required typ, only JWT/at+jwt types (or none) are accepted.
    for typ in ["dpop+jwt", "logout+jwt", "secevent+jwt"] {
        assert_rejected(&keys, &policy(), &with_typ(Some(typ), "api"), Reason::InvalidClaim, typ);
    }
    let non_string = es.sign_with_header(&json!({"alg": "ES256", "kid": "k1", "typ": 1}), &claims()).unwrap();
    assert_rejected(&keys, &policy(), &non_string, Reason::Malformed, "typ 1");
    assert_accepted(&keys, &policy(), &with_typ(Some("JWT"), "api"), "typ JWT");
}
