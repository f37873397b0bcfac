//! Remote keys: `--jwks URL` and `--issuer URL` discovery against an in-process IdP.

use keyward_idp::{SigningAlg, jwks};
use serde_json::json;

use super::support::{
    Idp, Interactive, NOW_ARG, assert_rejected, assert_usage_error, assert_valid, claims_for, dead_base, key,
    run, str_of,
};

#[test]
fn jwks_url_verifies() {
    let signer = key(SigningAlg::ES256, "k1");
    let idp = Idp::start(jwks([&signer]));
    let token = signer.sign_jwt(&claims_for("https://idp.example.test")).unwrap();
    let out = run(&["verify", "--jwks", &idp.jwks_url(), "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_valid(&report);
    assert_eq!(report["kid"], json!("k1"));
    assert_eq!(idp.jwks_hits(), 1, "one startup fetch");
    assert_eq!(idp.discovery_hits(), 0, "a JWKS URL needs no discovery");
}

#[test]
fn issuer_alone_discovers_the_jwks_and_verifies() {
    let signer = key(SigningAlg::ES256, "k1");
    let idp = Idp::start(jwks([&signer]));
    let token = signer.sign_jwt(&claims_for(&idp.base)).unwrap();
    let out = run(&["verify", "--issuer", &idp.base, "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("valid: signature verified with key \"k1\""), "{out:?}");
    assert!(out.stdout.contains(&format!("iss  {}\n", idp.base)), "iss is checked: {out:?}");
    assert!(out.stdout.contains("aud was not checked"), "{out:?}");
    assert!(!out.stdout.contains("iss was not checked"), "{out:?}");
    assert_eq!(idp.discovery_hits(), 1, "discovery once");
    assert_eq!(idp.jwks_hits(), 1, "then the discovered jwks_uri once");
}

#[test]
fn another_issuer_is_rejected_without_fetching_for_it() {
    let signer = key(SigningAlg::ES256, "k1");
    let idp = Idp::start(jwks([&signer]));
    // An unknown kid would trigger a refetch if the token reached the key source.
    let attacker = key(SigningAlg::ES256, "attacker-kid");
    let foreign = attacker.sign_jwt(&claims_for("https://evil.example.test")).unwrap();

    let out = run(&["verify", "--issuer", &idp.base, "--now", NOW_ARG, "--json", &foreign], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "issuer_mismatch");
    assert!(idp.jwks_hits() <= 1, "at most the startup fetch, got {}", idp.jwks_hits());

    // Counted exactly on a long-lived process: after the startup fetch, tokens naming another
    // issuer (each with a new kid) cause no request at all.
    let (hits_before, discovery_before) = (idp.jwks_hits(), idp.discovery_hits());
    let valid = signer.sign_jwt(&claims_for(&idp.base)).unwrap();
    let mut stream = Interactive::spawn(&["verify", "--issuer", &idp.base, "--now", NOW_ARG, "--stream"]);
    assert_valid(&stream.ask(&valid));
    assert_eq!(idp.jwks_hits(), hits_before + 1);
    for n in 0..5 {
        let kid = format!("attacker-{n}");
        let token = key(SigningAlg::ES256, &kid)
            .sign_jwt(&claims_for(&format!("https://evil-{n}.example.test")))
            .unwrap();
        let answer = stream.ask(&token);
        assert_rejected(&answer, "issuer_mismatch");
    }
    assert_eq!(stream.finish(), 1);
    assert_eq!(idp.jwks_hits(), hits_before + 1, "no fetch for tokens of another issuer");
    assert_eq!(idp.discovery_hits(), discovery_before + 1, "one discovery for the process");
}

/// README: `claims` is present only when the signature verified (so the claims shown are
/// authentic). A forged token naming a known kid fails its signature; one naming an unknown
/// kid with a foreign `iss` is refused before any fetch. Neither may show its claims.
#[test]
fn rejections_before_the_signature_never_show_claims() {
    let signer = key(SigningAlg::ES256, "k1");
    let idp = Idp::start(jwks([&signer]));
    let foreign_iss = claims_for("https://evil.example.test");
    let mut no_iss = claims_for(&idp.base);
    no_iss.as_object_mut().unwrap().remove("iss");
    let cases = [
        ("known kid, forged", "k1", &foreign_iss, "invalid_signature"),
        // Unknown kid and a foreign iss: issuer_mismatch, decided before any key or fetch.
        ("unknown kid, foreign iss", "k-new", &foreign_iss, "issuer_mismatch"),
        // The same holds for a token without iss.
        ("unknown kid, no iss", "k-new", &no_iss, "issuer_mismatch"),
    ];
    for (case, kid, claims, reason) in cases {
        let forged = key(SigningAlg::ES256, kid).sign_jwt(claims).unwrap();
        let out = run(&["verify", "--issuer", &idp.base, "--now", NOW_ARG, "--json", &forged], "");
        assert_eq!(out.code, 1, "{case}: {out:?}");
        let report = out.json();
        assert_rejected(&report, reason);
        assert_eq!(report["signature_verified"], json!(false), "{case}: {report:?}");
        assert_eq!(report["claims"], json!(null), "{case}: {report:?}");
    }
}

/// One token whose keys cannot be obtained gets no verdict: exit 3, the cause said once.
#[test]
fn server_down_is_keys_unavailable_promptly_with_exit_3() {
    let signer = key(SigningAlg::ES256, "k1");
    let base = dead_base();
    let token = signer.sign_jwt(&claims_for(&base)).unwrap();

    let url = format!("{base}/jwks");
    let out = run(&["verify", "--jwks", &url, "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 3, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "keys_unavailable");
    assert_eq!(report["signature_verified"], json!(false));
    assert_eq!(report["claims"], json!(null));
    assert!(str_of(&report, "detail").contains(&base), "{report:?}");
    assert_eq!(out.stderr, "", "the cause is in the verdict, not repeated on stderr: {out:?}");

    let out = run(&["verify", "--issuer", &base, "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 3, "{out:?}");
    assert_rejected(&out.json(), "keys_unavailable");

    let out = run(&["verify", "--issuer", &base, "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.starts_with("no verdict: keys_unavailable (the keys could not be obtained)\n"),
        "{out:?}"
    );
    let everything = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(everything.matches("Connection refused").count(), 1, "the cause once: {out:?}");

    // --log brings the key source's own warnings back.
    let out = run(&["verify", "--issuer", &base, "--now", NOW_ARG, "--log", "warn", &token], "");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("WARN"), "{out:?}");

    // In --stream mode it is a rejection like any other: exit 1.
    let out = run(&["verify", "--jwks", &url, "--now", NOW_ARG, "--stream"], &format!("{token}\n"));
    assert_eq!(out.code, 1, "{out:?}");
    assert_rejected(&out.json_lines()[0], "keys_unavailable");
}

#[test]
fn plain_http_is_refused_for_non_loopback_hosts() {
    let signer = key(SigningAlg::ES256, "k1");
    let token = signer.sign_jwt(&claims_for("https://idp.example.test")).unwrap();
    // Refused by policy before any connection (the .invalid TLD never resolves anyway).
    let out = run(&["verify", "--jwks", "http://idp.example.invalid/jwks", "--json", &token], "");
    assert_usage_error(&out, "plain http is allowed only to loopback");
}
