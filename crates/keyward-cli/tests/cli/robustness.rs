//! Input that must never abort a stream or turn into a false exit 0: bytes that are not
//! UTF-8, lines cut inside a character, tokens that look like options.

use serde_json::json;

use super::support::{Files, NOW_ARG, assert_rejected, assert_valid, claims, run, run_with, str_of};

#[test]
fn stream_answers_a_non_utf8_line_and_goes_on() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let mut stdin = format!("{token}\n").into_bytes();
    stdin.extend_from_slice(b"\xff\xfe not text \xc3\n");
    stdin.extend_from_slice(format!("{token}\n").as_bytes());
    let out = run_with(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &stdin, &[]);
    assert_eq!(out.code, 1, "one line was rejected: {out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 3, "one answer per line, the stream went on: {out:?}");
    assert_valid(&lines[0]);
    assert_rejected(&lines[1], "malformed");
    assert!(str_of(&lines[1], "detail").contains("not UTF-8"), "{:?}", lines[1]);
    assert_valid(&lines[2]);
    assert_eq!(out.stderr, "", "{out:?}");
}

#[test]
fn stream_answers_an_overlong_line_cut_inside_a_character_and_goes_on() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    // 1 MiB + change of two-byte characters after one ASCII byte: the 1 MiB cut falls inside
    // a character.
    let long = format!("a{}", "é".repeat(600 * 1024));
    assert!(long.len() > 1024 * 1024);
    // A line just above the token bound but under the line bound is cut by the verifier.
    let medium = format!("{token}{}", "A".repeat(20 * 1024));
    let stdin = format!("{token}\n{long}\n{medium}\n{token}\n");
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &stdin);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4, "{}", out.stderr);
    assert_valid(&lines[0]);
    assert_rejected(&lines[1], "token_too_large");
    assert!(str_of(&lines[1], "detail").contains("line bound"), "{:?}", lines[1]);
    assert_rejected(&lines[2], "token_too_large");
    assert_valid(&lines[3]);

    // The over-long line last, without a final newline.
    let out =
        run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &format!("{token}\n{long}"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_rejected(&lines[1], "token_too_large");
}

#[test]
fn one_shot_input_that_is_not_utf8_is_malformed() {
    let files = Files::new("k1");
    let bad = b"eyJhbGciOiJFUzI1NiJ9.\xff\xfe.sig\n";
    let out = run_with(&["verify", "--jwks", &files.jwks(), "--json"], bad, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "malformed");
    assert!(str_of(&report, "detail").contains("not UTF-8"), "{report:?}");

    let out = run_with(&["verify", "--jwks", &files.jwks()], bad, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("rejected: malformed\n"), "{out:?}");

    // The same from a file.
    let path = files.dir.path().join("bad.jwt");
    std::fs::write(&path, bad).unwrap();
    let at_file = format!("@{}", path.display());
    let out = run(&["verify", "--jwks", &files.jwks(), "--json", &at_file], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert_rejected(&out.json(), "malformed");

    let out = run_with(&["inspect", "--json"], bad, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json()["reason"], json!("malformed"), "{out:?}");
}

/// A wrapper running `keyward verify --jwks k.json "$TOKEN"` with an attacker's token must
/// never get exit 0 from help or version output.
#[test]
fn a_token_that_looks_like_help_or_version_is_a_usage_error() {
    let files = Files::new("k1");
    let jwks = files.jwks();
    for flag in ["--help", "--version", "-h", "-V", "-hV"] {
        for args in [
            vec!["verify", "--jwks", jwks.as_str(), flag],
            vec!["verify", "--jwks", jwks.as_str(), "--json", flag],
            vec!["verify", flag, "--jwks", jwks.as_str()],
            vec!["inspect", "--json", flag],
        ] {
            let out = run(&args, "");
            assert_eq!(out.code, 2, "{args:?}: {out:?}");
            assert_eq!(out.stdout, "", "{args:?}: {out:?}");
            assert!(out.stderr.contains("only as the sole argument"), "{args:?}: {out:?}");
            assert!(out.stderr.contains("--"), "{args:?}: {out:?}");
        }
        // After `--` it is a token, and not one that verifies.
        let out = run(&["verify", "--jwks", &files.jwks(), "--json", "--", flag], "");
        assert_eq!(out.code, 1, "{flag}: {out:?}");
        assert_rejected(&out.json(), "malformed");
    }
    // A real token after `--` verifies.
    let token = files.token(&claims());
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--json", "--", &token], "");
    assert_eq!(out.code, 0, "{out:?}");

    // Alone after the subcommand (or alone), help and version work and say the rule.
    for args in [vec!["verify", "--help"], vec!["inspect", "-h"], vec!["--help"]] {
        let out = run(&args, "");
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(out.stdout.contains("sole argument"), "{args:?}: {}", out.stdout);
    }
    let out = run(&["--version"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("keyward "), "{out:?}");
}
