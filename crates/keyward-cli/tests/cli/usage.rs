//! Exit status 2: usage errors, unreadable files, key sets that are not a JWKS, bad settings.
//! Nothing is printed on stdout (no verdict), and stderr says what is wrong.

use super::support::{Files, assert_usage_error, claims, dead_base, run};

#[test]
fn unknown_flag_and_missing_key_source() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out = run(&["verify", "--jwks", &files.jwks(), "--frobnicate", &token], "");
    assert_usage_error(&out, "--frobnicate");

    let out = run(&["verify", &token], "");
    assert_usage_error(&out, "--jwks");

    let out = run(&["verify", "--json"], &token);
    assert_usage_error(&out, "required");

    let out = run(&["frobnicate"], "");
    assert_usage_error(&out, "frobnicate");

    // --stream takes tokens from stdin only.
    let out = run(&["verify", "--jwks", &files.jwks(), "--stream", &token], "");
    assert_usage_error(&out, "--stream");
}

#[test]
fn unreadable_or_non_jwks_key_files() {
    let files = Files::new("k1");
    let token = files.token(&claims());

    let missing = files.path("missing.json");
    let out = run(&["verify", "--jwks", &missing, &token], "");
    assert_usage_error(&out, "cannot open");

    let out = run(&["verify", "--jwks", &files.dir.path().display().to_string(), &token], "");
    assert_usage_error(&out, "cannot read");

    for (name, contents) in [
        ("not-json.json", "this is not JSON\n"),
        ("no-keys.json", r#"{"issuer": "https://idp.example.test"}"#),
        ("keys-object.json", r#"{"keys": {"kid": "k1"}}"#),
    ] {
        let path = files.write(name, contents);
        let out = run(&["verify", "--jwks", path.to_str().unwrap(), &token], "");
        assert_usage_error(&out, "as a key set");
    }
}

#[test]
fn symmetric_and_unknown_algorithms_are_refused() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    for alg in ["HS256", "HS384", "HS512", "none"] {
        let out = run(&["verify", "--jwks", &files.jwks(), "--alg", alg, &token], "");
        assert_usage_error(&out, "never accepted");
    }
    let out = run(&["verify", "--jwks", &files.jwks(), "--alg", "ES257", &token], "");
    assert_usage_error(&out, "unknown algorithm");
}

#[test]
fn leeway_above_300_is_refused() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out = run(&["verify", "--jwks", &files.jwks(), "--leeway", "301", &token], "");
    assert_usage_error(&out, "301");
    let out = run(&["verify", "--jwks", &files.jwks(), "--leeway=-1", &token], "");
    assert_usage_error(&out, "--leeway");
}

#[test]
fn incoherent_or_unparsable_key_source_durations() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    // Checked before anything is fetched: nothing listens at this address, and the settings
    // error must win over the (otherwise) unavailable keys.
    let base = dead_base();
    let url = format!("{base}/jwks");
    let out = run(&["verify", "--jwks", &url, "--removal-grace", "20m", "--max-ttl", "15m", &token], "");
    assert_usage_error(&out, "removal_grace");
    let out = run(&["verify", "--issuer", &base, "--removal-grace", "20m", "--max-ttl", "15m", &token], "");
    assert_usage_error(&out, "removal_grace");
    let out = run(&["verify", "--jwks", &url, "--min-ttl", "1h", "--max-ttl", "15m", &token], "");
    assert_usage_error(&out, "min_ttl");

    for (flag, value) in [("--max-stale", "6x"), ("--min-ttl", "30"), ("--refresh-cooldown", "1.5s")] {
        let out = run(&["verify", "--jwks", &url, flag, value, &token], "");
        assert_usage_error(&out, "invalid duration");
        assert!(out.stderr.contains(flag), "{out:?}");
    }
}

/// The key-source flags are validated even with `--jwks FILE`, where they have no effect:
/// an incoherent combination is a usage error, not silently ignored.
#[test]
fn incoherent_durations_are_refused_with_a_key_file_too() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let out =
        run(&["verify", "--jwks", &files.jwks(), "--removal-grace", "20m", "--max-ttl", "15m", &token], "");
    assert_usage_error(&out, "removal_grace");
}
