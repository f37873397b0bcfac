//! `keyward inspect`: decodes without verifying, and says so.

use keyward_idp::mint::b64;
use serde_json::json;

use super::support::{Files, claims, run, run_with_stdout_closed, str_of};

#[test]
fn human_output_is_loudly_unverified_and_shows_header_and_claims() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    // No key set is needed, and a signature by an unknown key decodes all the same.
    let out = run(&["inspect", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("NOT VERIFIED"), "{out:?}");
    assert!(out.stdout.contains("header:\n"), "{out:?}");
    assert!(out.stdout.contains("\"alg\": \"ES256\""), "{out:?}");
    assert!(out.stdout.contains("\"kid\": \"k1\""), "{out:?}");
    assert!(out.stdout.contains("claims:\n"), "{out:?}");
    assert!(out.stdout.contains("\"sub\": \"alice\""), "{out:?}");
    assert!(out.stdout.contains("exp = 2026-01-01T00:10:00Z"), "{out:?}");
    assert!(out.stdout.contains("signature: 64 bytes"), "{out:?}");
    assert!(!out.stdout.contains("would reject"), "{out:?}");

    // From stdin, with whitespace.
    let out = run(&["inspect"], &format!("\n {token} \n"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("NOT VERIFIED"), "{out:?}");
}

#[test]
fn json_output_says_verified_false() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out = run(&["inspect", "--json", "-"], &format!("{token}\n"));
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(report["verified"], json!(false), "{report:?}");
    assert_eq!(report["header"], json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
    assert_eq!(report["claims"], claims());
    assert_eq!(report["signature_bytes"], json!(64));
    assert_eq!(report["header_problem"], json!(null));
}

#[test]
fn alg_none_token_is_shown_with_its_problem() {
    let header = json!({"alg": "none", "typ": "JWT"});
    let token = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    let out = run(&["inspect", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("NOT VERIFIED"), "{out:?}");
    assert!(out.stdout.contains("\"alg\": \"none\""), "{out:?}");
    assert!(out.stdout.contains("\"sub\": \"alice\""), "{out:?}");
    assert!(out.stdout.contains("signature: 0 bytes"), "{out:?}");
    assert!(out.stdout.contains("would reject it before any key is tried: algorithm_not_allowed"), "{out:?}");

    let out = run(&["inspect", "--json", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(report["verified"], json!(false));
    assert_eq!(report["header"], header);
    assert_eq!(report["claims"], claims());
    let problem = report["header_problem"].as_object().expect("header_problem is an object");
    assert_eq!(problem["reason"], json!("algorithm_not_allowed"), "{report:?}");
    assert!(!str_of(problem, "detail").is_empty());
}

#[test]
fn a_non_token_exits_1() {
    for bad in ["hello", "a.b", "!!!.e30.", ""] {
        let out = run(&["inspect", bad], "");
        assert_eq!(out.code, 1, "{bad:?}: {out:?}");
        assert!(out.stdout.starts_with("not a decodable token: malformed"), "{bad:?}: {out:?}");
        assert!(!out.stdout.contains("NOT VERIFIED"), "{out:?}");

        let out = run(&["inspect", "--json", bad], "");
        assert_eq!(out.code, 1, "{bad:?}: {out:?}");
        let report = out.json();
        assert_eq!(report["verified"], json!(false));
        assert_eq!(report["reason"], json!("malformed"), "{bad:?}: {report:?}");
        assert_eq!(report["header"], json!(null));
        assert_eq!(report["claims"], json!(null));
    }
    // A usage error is still 2.
    let out = run(&["inspect", "--jwks", "x.json", "hello"], "");
    assert_eq!(out.code, 2, "{out:?}");
}

/// A reader that stops early (`keyward inspect TOKEN | head -1`) ends no command with a panic,
/// and the exit status stays the verdict's.
#[test]
fn a_closed_stdout_keeps_the_exit_status() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let jwks = files.jwks();
    for (args, code) in [
        (vec!["inspect", token.as_str()], 0),
        (vec!["inspect", "--json", token.as_str()], 0),
        (vec!["verify", "--jwks", jwks.as_str(), "--now", "1767225600", token.as_str()], 0),
        (vec!["verify", "--jwks", jwks.as_str(), "--now", "1", token.as_str()], 1),
    ] {
        let (got, stderr) = run_with_stdout_closed(&args);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
