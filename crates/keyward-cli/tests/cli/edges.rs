//! `verify` and `inspect` at the edges a black-box pass found: oversized input that is not
//! UTF-8, key files that hold no usable key, and fractional NumericDates in `inspect`.

use keyward_idp::SigningAlg;
use serde_json::json;

use super::support::{Files, NOW, claims_for, key, run, run_with};

#[test]
fn the_size_bound_is_judged_before_the_encoding() {
    let files = Files::new("unused");
    files.write("k1.json", &keyward_idp::jwks([&key(SigningAlg::ES256, "k1")]).to_string());
    let set = files.path("k1.json");
    let big = vec![0xffu8; 20_000];
    let out = run_with(&["verify", "--jwks", &set, "-"], &big, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("token_too_large") && out.stdout.contains("20000 bytes"), "{out:?}");
    // Small input that is not UTF-8 stays malformed.
    let out = run_with(&["verify", "--jwks", &set, "-"], &[0xff, 0xfe], &[]);
    assert!(out.stdout.contains("malformed"), "{out:?}");
}

#[test]
fn a_key_file_with_no_usable_key_is_a_usage_error() {
    let files = Files::new("unused");
    files.write("empty.json", r#"{"keys":[]}"#);
    let out = run(&["verify", "--jwks", &files.path("empty.json"), "a.b.c"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("it holds no keys"), "{out:?}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../keyward/tests/data/real-jwks/kubernetes.json");
    let out = run(&["verify", "--jwks", dir, "a.b.c"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("none of its keys is usable") && out.stderr.contains("(weak)"), "{out:?}");
}

#[test]
fn inspect_reads_fractional_times_as_the_verifier_does() {
    let k1 = key(SigningAlg::ES256, "k1");
    let mut claims = claims_for("https://idp.example.com");
    claims["exp"] = json!((NOW - 100) as f64 + 0.5);
    let token = k1.sign_jwt(&claims).unwrap();
    let now = NOW.to_string();
    let out = run(&["inspect", "--json", "--now", &now, &token], "");
    assert_eq!(out.json()["validity"]["expired"], json!(true), "{out:?}");
    let out = run(&["inspect", "--now", &now, &token], "");
    assert!(out.stdout.contains("EXPIRED"), "{out:?}");
}
