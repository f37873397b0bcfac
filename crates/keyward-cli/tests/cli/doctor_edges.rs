//! `doctor` where the evidence is thin or the input is not a token: a kid no copy of the key set
//! ever held, a wrong kid on a token another live key verifies, the `exp` boundary, base64
//! defects with their position, audit findings that are not warning codes, and usage errors.

use keyward_idp::{SigningAlg, jwks};
use serde_json::{Value, json};

use super::doctor::doctor;
use super::support::{Files, NOW, NOW_ARG, claims_for, key, run};

const ISS: &str = "https://idp.example.com";

fn check<'a>(report: &'a serde_json::Map<String, Value>, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == json!(name)).unwrap()
}

#[test]
fn a_kid_no_copy_ever_held_is_tampered_and_a_wrong_kid_another_key_verifies_is_reused() {
    let files = Files::new("unused");
    let (k1, k2) = (key(SigningAlg::ES256, "k1"), key(SigningAlg::ES256, "k2"));
    files.write("k1.json", &jwks([&k1]).to_string());
    files.write("k1k2.json", &jwks([&k1, &k2]).to_string());
    let (k1_set, both) = (files.path("k1.json"), files.path("k1k2.json"));
    let by_k2 = k2.sign_jwt(&claims_for(ISS)).unwrap();

    // Neither the live set nor the application's cached copy has k2: nothing was dropped.
    let (_, report) = doctor(&["--jwks", &k1_set, "--cached-jwks", &k1_set, "--now", NOW_ARG, &by_k2]);
    assert_eq!(report["cause"], json!("token_tampered"), "{report:#?}");
    // Without a cached copy it may have been dropped early, or not published yet: both named.
    let (_, report) = doctor(&["--jwks", &k1_set, "--now", NOW_ARG, &by_k2]);
    assert_eq!(report["cause"], json!("key_dropped_early"), "{report:#?}");
    let why = check(&report, "cause")["detail"].as_str().unwrap();
    assert!(why.contains("before publishing"), "{why}");

    // Signed by k2 (published) but naming a kid the set lacks: a wrong kid, not a dropped key.
    let header = json!({"alg": "ES256", "kid": "never-published", "typ": "JWT"});
    let wrong_kid = k2.sign_with_header(&header, &claims_for(ISS)).unwrap();
    let (_, report) = doctor(&["--jwks", &both, "--now", NOW_ARG, &wrong_kid]);
    assert_eq!(report["cause"], json!("kid_reused"), "{report:#?}");
    assert_eq!(check(&report, "signature_other_keys")["status"], json!("warn"));
}

#[test]
fn the_exp_check_agrees_with_the_verifier_at_the_leeway_boundary() {
    let files = Files::new("unused");
    let k1 = key(SigningAlg::ES256, "k1");
    files.write("k1.json", &jwks([&k1]).to_string());
    let mut claims = claims_for(ISS);
    claims["exp"] = json!(NOW - 60);
    let token = k1.sign_jwt(&claims).unwrap();
    // now = exp + 60 with a 60 s leeway: no longer valid (valid while now < exp + leeway).
    let (_, report) = doctor(&["--jwks", &files.path("k1.json"), "--now", NOW_ARG, &token]);
    assert_eq!(report["cause"], json!("expired"), "{report:#?}");
    assert_eq!(check(&report, "exp")["status"], json!("fail"), "{report:#?}");
}

#[test]
fn a_base64_defect_is_named_with_its_position() {
    let files = Files::new("unused");
    let k1 = key(SigningAlg::ES256, "k1");
    files.write("k1.json", &jwks([&k1]).to_string());
    let token = k1.sign_jwt(&claims_for(ISS)).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1].replace_range(5..6, "*");
    let broken = parts.join(".");
    let (_, report) = doctor(&["--jwks", &files.path("k1.json"), "--now", NOW_ARG, &broken]);
    assert_eq!(report["cause"], json!("token_tampered"));
    let detail = check(&report, "token")["detail"].as_str().unwrap();
    assert!(detail.contains("character '*' at position 5 is not base64url"), "{detail}");
}

#[test]
fn audit_findings_without_a_warning_code_still_exit_1() {
    let files = Files::new("unused");
    files.write("empty.json", r#"{"keys":[]}"#);
    let out = run(&["doctor", "--audit", "--jwks", &files.path("empty.json")], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("✗ key_count: 0 published keys"), "{out:?}");
    assert!(out.stdout.ends_with("audit: 0 warnings, 1 failed check\n"), "{out:?}");
}

#[test]
fn nothing_to_diagnose_is_a_usage_error() {
    let files = Files::new("unused");
    let k1 = key(SigningAlg::ES256, "k1");
    files.write("k1.json", &jwks([&k1]).to_string());
    let set = files.path("k1.json");
    for (args, stdin, says) in [
        (vec!["doctor", "--jwks", &set, "-"], "", "no token"),
        (vec!["doctor", "--jwks", &set], "  \n", "no token"),
        (vec!["doctor", "--jwks", &set, "@"], "", "@ needs a file name"),
        (vec!["doctor", "--issuer", "", "x.y.z"], "", "--issuer is empty"),
    ] {
        let out = run(&args, stdin);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(says), "{args:?}: {out:?}");
    }
}
