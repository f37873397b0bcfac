//! What someone new to keyward meets: pasted tokens, times for people, durations and times in
//! the forms people write, messages that name the way out, shell completions and a man page.

use keyward_idp::SigningAlg;
use serde_json::json;

use super::support::{
    Files, ISS, NOW, NOW_ARG, assert_rejected, assert_usage_error, assert_valid, claims, claims_with,
    dead_base, key, run, run_with,
};

#[test]
fn a_pasted_bearer_prefix_and_quotes_are_removed_with_a_note() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let jwks = files.jwks();
    let cases = [
        (format!("Bearer {token}"), vec!["removed the \"Bearer \" prefix"]),
        (format!("\"{token}\""), vec!["removed the surrounding double quotes"]),
        (format!("'{token}'"), vec!["removed the surrounding single quotes"]),
        (
            format!("\"Bearer {token}\""),
            vec!["removed the surrounding double quotes", "removed the \"Bearer \" prefix"],
        ),
    ];
    for (pasted, notes) in &cases {
        let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json", pasted], "");
        assert_eq!(out.code, 0, "{pasted}: {out:?}");
        let report = out.json();
        assert_valid(&report);
        let got: Vec<&str> = report["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
        for note in notes {
            assert!(got.contains(note), "{pasted}: {got:?}");
        }

        // Human output: the note goes to stderr, the verdict to stdout.
        let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG], &format!("{pasted}\n"));
        assert_eq!(out.code, 0, "{pasted}: {out:?}");
        for note in notes {
            assert!(out.stderr.contains(&format!("keyward: note: {note}")), "{pasted}: {out:?}");
        }
        assert!(out.stdout.starts_with("valid:"), "{out:?}");

        let out = run(&["inspect", "--json", pasted], "");
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.json()["notes"].as_array().map(Vec::len), Some(notes.len()), "{out:?}");
    }

    // In a stream, per line.
    let out = run(
        &["verify", "--jwks", &jwks, "--now", NOW_ARG, "--stream"],
        &format!("Bearer {token}\n{token}\n"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines[0]["notes"][0], json!("removed the \"Bearer \" prefix"));
    assert!(!lines[1]["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("Bearer")));
    // Without --issuer/--audience the JSON notes say what was not checked.
    assert!(lines[1]["notes"].as_array().unwrap().contains(&json!("iss was not checked (no --issuer)")));
}

#[test]
fn a_token_argument_naming_a_file_suggests_at_file() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let path = files.write("token.jwt", &token);
    let path = path.to_str().unwrap();
    let out = run(&["verify", "--jwks", &files.jwks(), path], "");
    assert_usage_error(&out, &format!("write @{path}"));
    let out = run(&["inspect", path], "");
    assert_usage_error(&out, &format!("write @{path}"));
    // With the @ it works.
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, &format!("@{path}")], "");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn times_read_like_people_write_them() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    // Expired 1 h 12 min before NOW.
    let expired = files.token(&claims_with(json!({"exp": NOW - 4_320, "iat": NOW - 7_200})));
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, &expired], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("rejected: expired\n"), "{out:?}");
    assert!(
        out.stdout
            .contains("signature valid, but expired 1 h 12 min ago (2025-12-31T22:48:00Z); leeway 60 s"),
        "{out:?}"
    );
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--json", &expired], "");
    let report = out.json();
    assert_rejected(&report, "expired");
    assert_eq!(
        report["times"],
        json!({"claim": "exp", "at": NOW - 4_320, "at_rfc3339": "2025-12-31T22:48:00Z", "now": NOW, "leeway": 60})
    );

    let not_yet = files.token(&claims_with(json!({"nbf": NOW + 600})));
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, &not_yet], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("signature valid, but not yet valid: nbf in 10 min (2026-01-01T00:10:00Z)"),
        "{out:?}"
    );

    let other_iss = files.token(&claims_with(json!({"iss": "https://other.example.test"})));
    let out = run(&["verify", "--jwks", &jwks, "--issuer", ISS, "--now", NOW_ARG, &other_iss], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("signature valid, but issuer_mismatch: "), "{out:?}");

    // A bad signature never says "signature valid".
    let forged = key(SigningAlg::ES256, "k1").sign_jwt(&claims_with(json!({"exp": NOW - 4_320}))).unwrap();
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, &forged], "");
    assert!(out.stdout.starts_with("rejected: invalid_signature\n"), "{out:?}");
    assert!(!out.stdout.contains("signature valid"), "{out:?}");

    // A valid token's expiry, for people.
    let valid = files.token(&claims());
    let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, &valid], "");
    assert!(out.stdout.contains("exp  expires in 10 min (2026-01-01T00:10:00Z)"), "{out:?}");
}

#[test]
fn inspect_flags_expired_and_not_yet_valid_tokens() {
    let files = Files::new("k1");
    let expired = files.token(&claims_with(json!({"exp": NOW - 4_320})));
    let out = run(&["inspect", "--now", NOW_ARG, &expired], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("EXPIRED 1 h 12 min ago (2025-12-31T22:48:00Z)"), "{out:?}");
    let out = run(&["inspect", "--json", "--now", "2026-01-01T00:00:00Z", &expired], "");
    let report = out.json();
    assert_eq!(report["validity"], json!({"now": NOW, "expired": true, "not_yet_valid": false}));
    assert_eq!(report["kid"], json!("k1"));
    assert_eq!(report["alg"], json!("ES256"));

    let not_yet = files.token(&claims_with(json!({"nbf": NOW + 600})));
    let out = run(&["inspect", "--now", NOW_ARG, &not_yet], "");
    assert!(out.stdout.contains("NOT YET VALID: valid from in 10 min"), "{out:?}");
    let out = run(&["inspect", "--json", "--now", NOW_ARG, &not_yet], "");
    assert_eq!(out.json()["validity"], json!({"now": NOW, "expired": false, "not_yet_valid": true}));

    // A current token is flagged neither way.
    let out = run(&["inspect", "--now", NOW_ARG, &files.token(&claims())], "");
    assert!(!out.stdout.contains("EXPIRED") && !out.stdout.contains("NOT YET VALID"), "{out:?}");
    // By the real clock, a token that expired in 2001 is expired.
    let ancient = files.token(&claims_with(json!({"iat": 999_990_000, "exp": 1_000_000_000})));
    let out = run(&["inspect", "--json", &ancient], "");
    assert_eq!(out.json()["validity"]["expired"], json!(true), "{out:?}");
}

#[test]
fn leeway_takes_durations_and_now_takes_rfc_3339() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    let expired_80s = files.token(&claims_with(json!({"exp": NOW - 80})));
    for (leeway, code) in [("60", 1), ("60s", 1), ("1m", 1), ("90s", 0), ("2m", 0), ("1m30s", 0), ("300", 0)]
    {
        let out = run(&["verify", "--jwks", &jwks, "--now", NOW_ARG, "--leeway", leeway, &expired_80s], "");
        assert_eq!(out.code, code, "--leeway {leeway}: {out:?}");
    }
    for (leeway, says) in
        [("301", "above the maximum of 300 s"), ("5m1s", "above the maximum"), ("500ms", "whole")]
    {
        let out = run(&["verify", "--jwks", &jwks, "--leeway", leeway, &expired_80s], "");
        assert_usage_error(&out, says);
    }

    let token = files.token(&claims());
    for now in ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", NOW_ARG] {
        let out = run(&["verify", "--jwks", &jwks, "--now", now, "--json", &token], "");
        assert_eq!(out.code, 0, "--now {now}: {out:?}");
        assert_valid(&out.json());
    }
    let out = run(&["verify", "--jwks", &jwks, "--now", "2026-01-01T00:20:00Z", "--json", &token], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert_rejected(&out.json(), "expired");
    let out = run(&["verify", "--jwks", &jwks, "--now", "yesterday", &token], "");
    assert_usage_error(&out, "RFC 3339");
}

#[test]
fn absurd_durations_are_usage_errors_not_overflows() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    for flag in ["--min-ttl", "--max-ttl", "--refresh-cooldown", "--max-stale", "--removal-grace", "--leeway"]
    {
        for value in ["10000000000d", "99999999999999999999s", "18446744073709551615d1s"] {
            let out = run(&["verify", "--jwks", &files.jwks(), flag, value, &token], "");
            assert_usage_error(&out, flag);
            assert!(!out.stderr.contains("panicked"), "{out:?}");
        }
    }
    let out = run(&["verify", "--jwks", &files.jwks(), "--max-stale", "31d", &token], "");
    assert_usage_error(&out, "maximum of 30 days");
    // 30 days is the bound itself, accepted.
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--max-stale", "30d", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn plain_http_error_names_the_flag_that_allows_it() {
    let token = key(SigningAlg::ES256, "k1").sign_jwt(&claims()).unwrap();
    for args in [
        vec!["verify", "--jwks", "http://idp.example.invalid/jwks", &token],
        vec!["verify", "--issuer", "http://idp.example.invalid", &token],
    ] {
        let out = run(&args, "");
        assert_usage_error(&out, "plain http is allowed only to loopback");
        assert!(out.stderr.contains("--allow-insecure-http"), "{out:?}");
    }
    // Loopback is allowed without the flag (nothing listens there: no verdict, exit 3).
    let url = format!("{}/jwks", dead_base());
    let out = run(&["verify", "--jwks", &url, "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn no_colour_when_not_a_terminal_or_no_color_is_set() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    // Two keys share a kid: a warning on stderr.
    let twice = files.write("twice.json", &keyward_idp::jwks([&files.key, &files.key]).to_string());
    // A warning and a clap error both go to stderr; neither may carry ANSI escapes.
    for env in [vec![], vec![("NO_COLOR", "1")]] {
        let out =
            run_with(&["verify", "--jwks", twice.to_str().unwrap(), "--now", NOW_ARG, &token], b"", &env);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("share kid"), "the warning is printed: {out:?}");
        assert!(!out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'), "{env:?}: {out:?}");
        let out = run_with(&["verify", "--frobnicate"], b"", &env);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(!out.stderr.contains('\u{1b}'), "{env:?}: {out:?}");
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell], "");
        assert_eq!(out.code, 0, "{shell}: {out:?}");
        assert!(out.stdout.contains("keyward"), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("verify") && out.stdout.contains("--jwks"), "{shell}: {}", out.stdout);
    }
    let out = run(&["completions", "tcsh"], "");
    assert_usage_error(&out, "tcsh");

    let out = run(&["man"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with(".ie") || out.stdout.contains(".TH keyward"), "{}", out.stdout);
    assert!(out.stdout.contains(".TH keyward"), "{}", out.stdout);
    assert!(out.stdout.contains("verify"), "{}", out.stdout);
}
