//! `keyward verify --jwks FILE`: verdicts, the `--json` contract, the clock and token input.

use keyward_idp::SigningAlg;
use serde_json::json;

use super::support::{
    AUD, Files, ISS, NOW, NOW_ARG, assert_rejected, assert_usage_error, assert_valid, claims, claims_with,
    key, run, str_of,
};

#[test]
fn valid_token_human_output_names_the_key_and_unchecked_claims() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("valid: signature verified with key \"k1\""), "{out:?}");
    assert!(out.stdout.contains("ES256"), "{out:?}");
    assert!(out.stdout.contains(&format!("iss  {ISS}  (not checked)")), "{out:?}");
    assert!(out.stdout.contains(&format!("aud  {AUD}  (not checked)")), "{out:?}");
    assert!(out.stdout.contains("note: iss was not checked (no --issuer)"), "{out:?}");
    assert!(out.stdout.contains("note: aud was not checked (no --audience)"), "{out:?}");
    assert!(out.stdout.contains("\"sub\": \"alice\""), "claims are printed: {out:?}");
    assert_eq!(out.stderr, "", "{out:?}");

    // With both configured, nothing is said to be unchecked.
    let out = run(
        &["verify", "--jwks", &files.jwks(), "--issuer", ISS, "--audience", AUD, "--now", NOW_ARG, &token],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("iss  {ISS}\n")), "{out:?}");
    assert!(out.stdout.contains(&format!("aud  {AUD}\n")), "{out:?}");
    assert!(!out.stdout.contains("not checked"), "{out:?}");
}

#[test]
fn valid_token_json_is_one_object_with_exactly_the_contract_fields() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_valid(&report);
    assert_eq!(report["reason"], json!(null));
    assert_eq!(report["kid"], json!("k1"));
    assert_eq!(report["alg"], json!("ES256"));
    assert_eq!(report["header"], json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
    assert_eq!(report["claims"], claims());
    let detail = str_of(&report, "detail");
    assert!(detail.contains("key \"k1\""), "{detail}");
    assert!(detail.contains("iss was not checked"), "{detail}");
    assert!(detail.contains("aud was not checked"), "{detail}");

    let out = run(
        &["verify", "--jwks", &files.jwks(), "--issuer", ISS, "--audience", AUD, "--now", NOW_ARG, "--json"],
        &token,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_valid(&report);
    assert!(!str_of(&report, "detail").contains("not checked"), "{report:?}");
}

#[test]
fn expired_token_shows_authentic_claims_and_signature_verified() {
    let files = Files::new("k1");
    let expired = claims_with(json!({"exp": NOW - 3600, "iat": NOW - 7200}));
    let token = files.token(&expired);
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "expired");
    assert_eq!(report["signature_verified"], json!(true));
    assert_eq!(report["claims"], expired);
    assert_eq!(report["header"], json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
    assert_eq!(report["kid"], json!("k1"));
    assert_eq!(report["alg"], json!("ES256"));

    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("rejected: expired\n"), "{out:?}");
    assert!(out.stdout.contains("token kid \"k1\", alg ES256"), "{out:?}");
}

#[test]
fn invalid_signature_hides_claims() {
    let files = Files::new("k1");
    // Same kid, another key: the signature cannot verify.
    let forged = key(SigningAlg::ES256, "k1").sign_jwt(&claims()).unwrap();
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--json", &forged], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "invalid_signature");
    assert_eq!(report["signature_verified"], json!(false));
    assert_eq!(report["claims"], json!(null), "unauthenticated claims must not be shown");
    assert_eq!(report["header"], json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
    assert_eq!(report["kid"], json!("k1"));
}

#[test]
fn each_rejection_has_its_reason_code_and_exit_1() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    let good = files.token(&claims());
    let unknown = key(SigningAlg::ES256, "k-unknown").sign_jwt(&claims()).unwrap();
    let other_iss = files.token(&claims_with(json!({"iss": "https://other.example.test"})));
    let other_aud = files.token(&claims_with(json!({"aud": "billing-api"})));
    let cases: [(&str, Vec<&str>, &str, bool); 7] = [
        ("unknown kid", vec![], &unknown, false),
        ("issuer mismatch", vec!["--issuer", ISS], &other_iss, true),
        ("audience mismatch", vec!["--audience", AUD], &other_aud, true),
        ("alg outside --alg", vec!["--alg", "ES384", "--alg", "RS256"], &good, false),
        ("garbage", vec![], "garbage", false),
        ("two segments", vec![], "eyJhbGciOiJFUzI1NiJ9.e30", false),
        ("empty argument", vec![], "", false),
    ];
    let reasons = [
        "unknown_kid",
        "issuer_mismatch",
        "audience_mismatch",
        "algorithm_not_allowed",
        "malformed",
        "malformed",
        "malformed",
    ];
    for ((case, extra, token, sig_verified), reason) in cases.into_iter().zip(reasons) {
        let mut args = vec!["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json"];
        args.extend(extra);
        args.push(token);
        let out = run(&args, "");
        assert_eq!(out.code, 1, "{case}: {out:?}");
        let report = out.json();
        assert_rejected(&report, reason);
        assert_eq!(report["signature_verified"], json!(sig_verified), "{case}: {report:?}");
        assert_eq!(report["claims"].is_object(), sig_verified, "{case}: {report:?}");
    }

    // An empty stdin is an empty token: rejected, not a usage error.
    for stdin in ["", "\n", "  \n\t\n"] {
        let out = run(&["verify", "--jwks", &jwks, "--json"], stdin);
        assert_eq!(out.code, 1, "{stdin:?}: {out:?}");
        let report = out.json();
        assert_rejected(&report, "malformed");
        assert_eq!(report["header"], json!(null));
        assert_eq!(report["kid"], json!(null));
        assert_eq!(report["alg"], json!(null));
    }

    // Human form of a malformed token.
    let out = run(&["verify", "--jwks", &jwks, "garbage"], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("rejected: malformed\n"), "{out:?}");
}

#[test]
fn now_pins_the_clock() {
    let files = Files::new("k1");
    // Expired in 2001 by any real clock.
    let old = files.token(&claims_with(json!({"iat": 999_990_000, "exp": 1_000_000_000})));
    let out = run(&["verify", "--jwks", &files.jwks(), "--json", &old], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert_rejected(&out.json(), "expired");

    let out = run(&["verify", "--jwks", &files.jwks(), "--json", "--now", "999999000", &old], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_valid(&out.json());

    // A token valid now by the real clock is expired at a pinned later time.
    let out = run(&["verify", "--jwks", &files.jwks(), "--json", "--now", "1000003600", &old], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "expired");
    assert!(str_of(&report, "detail").contains("leeway 60 s"), "{report:?}");
}

#[test]
fn leeway_applies_to_exp_and_is_bounded() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    let just_expired = files.token(&claims_with(json!({"exp": NOW - 30})));
    let long_expired = files.token(&claims_with(json!({"exp": NOW - 200})));
    let not_yet = files.token(&claims_with(json!({"nbf": NOW + 120})));
    let cases: [(&str, &str, Option<&str>); 6] = [
        (&just_expired, "60", None),
        (&just_expired, "0", Some("expired")),
        (&long_expired, "60", Some("expired")),
        (&long_expired, "300", None),
        (&not_yet, "60", Some("not_yet_valid")),
        (&not_yet, "300", None),
    ];
    for (token, leeway, expected) in cases {
        let out =
            run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--leeway", leeway, "--json", token], "");
        match expected {
            None => {
                assert_eq!(out.code, 0, "leeway {leeway}: {out:?}");
                assert_valid(&out.json());
            }
            Some(reason) => {
                assert_eq!(out.code, 1, "leeway {leeway}: {out:?}");
                assert_rejected(&out.json(), reason);
            }
        }
    }
    // The default leeway is 60 s.
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json", &just_expired], "");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn token_from_argument_file_dash_and_stdin_ignoring_surrounding_whitespace() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    let token = files.token(&claims());
    let file = files.write("token.jwt", &format!("  {token}\r\n\n"));
    let at_file = format!("@{}", file.display());

    let padded = format!(" \t{token}\n");
    let runs: [(&str, Vec<&str>, String); 5] = [
        ("argument", vec![&token], String::new()),
        ("argument with whitespace", vec![&padded], String::new()),
        ("@FILE", vec![&at_file], String::new()),
        ("-", vec!["-"], format!("{token}\n")),
        ("absent", vec![], format!("\n  {token}  \r\n")),
    ];
    for (case, token_args, stdin) in runs {
        let mut args = vec!["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json"];
        args.extend(token_args);
        let out = run(&args, &stdin);
        assert_eq!(out.code, 0, "{case}: {out:?}");
        let report = out.json();
        assert_valid(&report);
        assert_eq!(report["claims"], claims(), "{case}");
    }

    // An argument wins over stdin: stdin is not read.
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json", &token], "garbage\n");
    assert_eq!(out.code, 0, "{out:?}");

    // A missing @FILE is an unreadable file: exit 2, nothing on stdout.
    let missing = format!("@{}", files.path("no-such-token.jwt"));
    let out = run(&["verify", "--jwks", &jwks, &missing], "");
    assert_usage_error(&out, "cannot open");
}
