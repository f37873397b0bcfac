//! `doctor --stream`, `doctor --audit` (every real IdP JWKS in the library's test data) and
//! `keyward watch` over a scripted rotation with flapping keys.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use keyward_idp::{SigningAlg, jwks};
use serde_json::{Value, json};

use super::doctor::{Mock, Scripted, arc};
use super::support::{Files, NOW, NOW_ARG, key, parse_object, run};

#[test]
fn stream_diagnoses_each_line_against_one_fetch_then_summarises() {
    let (k1, k2) = (arc(SigningAlg::ES256, "2026-10-k1"), arc(SigningAlg::ES256, "2026-11-k2"));
    let mock = Mock::start(&[&k1, &k2]);
    let files = Files::new("unused");
    files.write("cached.json", &jwks([&*k1]).to_string());
    let cached = files.path("cached.json");
    let fresh = k2.sign_jwt(&mock.claims()).unwrap();
    let mut old_claims = mock.claims();
    old_claims["exp"] = json!(NOW - 3600);
    let expired = k1.sign_jwt(&old_claims).unwrap();
    let ok = k1.sign_jwt(&mock.claims()).unwrap();
    let input = format!("{fresh}\n{fresh}\n\n{expired}\nnot-a-token\n{fresh}\n{ok}\n");
    let args =
        ["doctor", "--stream", "--jwks", &mock.idp.jwks_uri(), "--cached-jwks", &cached, "--now", NOW_ARG];

    let out = run(&args, &input);
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "six tokens (the blank line skipped) and the summary: {out:?}");
    assert!(lines[0].starts_with("stale_cache kid 2026-11-k2: "), "{out:?}");
    assert!(lines[2].starts_with("expired kid 2026-10-k1: expired 1 h ago"), "{out:?}");
    assert!(lines[3].starts_with("token_tampered: not a well-formed token"), "{out:?}");
    assert_eq!(
        lines[6],
        "summary: 6 tokens: 3 stale_cache kid 2026-11-k2; 1 expired kid 2026-10-k1; 1 ok kid 2026-10-k1; 1 token_tampered"
    );
    assert_eq!(mock.idp.jwks_hits(), 1, "one fetch for the whole stream");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = run(&json_args, &input);
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<_> = out.stdout.lines().map(parse_object).collect();
    assert_eq!(lines.len(), 7);
    let causes: Vec<&str> = lines[..6].iter().map(|l| l["cause"].as_str().unwrap()).collect();
    assert_eq!(causes, ["stale_cache", "stale_cache", "expired", "token_tampered", "stale_cache", "ok"]);
    assert_eq!(
        Value::Object(lines[6].clone()),
        json!({"tokens": 6, "summary": [
            {"cause": "stale_cache", "kid": "2026-11-k2", "count": 3},
            {"cause": "expired", "kid": "2026-10-k1", "count": 1},
            {"cause": "ok", "kid": "2026-10-k1", "count": 1},
            {"cause": "token_tampered", "kid": null, "count": 1},
        ]})
    );

    // A line over the 1 MiB line bound is one malformed token; the stream goes on.
    let huge = format!("{}\n{ok}\n", "a".repeat(3 << 20));
    let out = run(&args, &huge);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("token_tampered: not a well-formed token: token is "), "{out:?}");
    assert!(lines[1].starts_with("ok kid 2026-10-k1"), "{out:?}");

    // Every token fine: exit 0.
    let out = run(&args, &format!("{ok}\n{ok}\n"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.ends_with("summary: 2 tokens: 2 ok kid 2026-10-k1\n"), "{out:?}");
}

/// Every real IdP JWKS in the library's test data, audited as a file: the findings expected
/// of each (the documents are copies; see that directory's README).
#[test]
fn audit_of_every_real_jwks_document() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../keyward/tests/data/real-jwks");
    let expected: [(&str, &[&str], i32); 8] = [
        ("auth0.json", &[], 0),
        ("cognito.json", &[], 0),
        ("entra-common.json", &[], 0),
        ("github-actions.json", &[], 0),
        ("google.json", &[], 0),
        ("keycloak.json", &["single_key", "enc_key_in_set"], 1),
        ("kubernetes.json", &["weak_key", "weak_key"], 1),
        ("okta.json", &[], 0),
    ];
    let mut listed: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    listed.sort();
    assert_eq!(listed, expected.map(|(n, _, _)| n.to_owned()), "every document is audited");
    for (name, warnings, code) in expected {
        let path = format!("{dir}/{name}");
        // Pinned clock: the certificates in these documents expire from 2027 on.
        let out = run(&["doctor", "--audit", "--json", "--jwks", &path, "--now", NOW_ARG], "");
        assert_eq!(out.code, code, "{name}: {out:?}");
        let report = out.json();
        let mut names: Vec<&str> = report.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["checks", "jwks", "warnings"], "{name}");
        let codes: Vec<&str> =
            report["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
        assert_eq!(codes, warnings, "{name}: {report:#?}");
        let count =
            report["checks"].as_array().unwrap().iter().find(|c| c["name"] == json!("key_count")).unwrap();
        assert!(count["detail"].as_str().unwrap().contains("published key"), "{name}");
    }
    // In September 2027 one of GitHub's published certificates has expired.
    let path = format!("{dir}/github-actions.json");
    let out = run(&["doctor", "--audit", "--json", "--jwks", &path, "--now", "2027-09-01T00:00:00Z"], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1, "{report:#?}");
    assert_eq!(report["warnings"][0]["code"], json!("expired_certificate"));
    let detail = report["warnings"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("expired 25 d 9 h ago (2027-08-06T14:21:32Z)"), "{detail}");

    // Entra ID's keys carry no alg: said, not warned.
    let out =
        run(&["doctor", "--audit", "--jwks", &format!("{dir}/entra-common.json"), "--now", NOW_ARG], "");
    assert!(out.stdout.contains("has no alg: verifiers must infer it"), "{out:?}");
    assert!(out.stdout.ends_with("audit: no findings\n"), "{out:?}");
    let out = run(&["doctor", "--audit", "--jwks", &format!("{dir}/kubernetes.json"), "--now", NOW_ARG], "");
    assert!(out.stdout.contains("0 usable, 2 set aside"), "{out:?}");
    // Both keys are too weak to use: no usable key is a failed check besides the two warnings.
    assert!(out.stdout.contains("✗ key_count: 2 published keys: 0 usable, 2 set aside"), "{out:?}");
    assert!(out.stdout.ends_with("audit: 2 warnings, 1 failed check\n"), "{out:?}");
}

#[test]
fn audit_of_cache_headers_and_discovery() {
    let (k1, k2) = (arc(SigningAlg::ES256, "k1"), arc(SigningAlg::ES256, "k2"));
    let mock = Mock::start(&[&k1, &k2]);
    let out = run(&["doctor", "--audit", "--issuer", &mock.base()], "");
    assert_eq!(out.code, 0, "max-age 300, two keys, discovery consistent: {out:?}");
    assert!(out.stdout.contains("✓ cache_headers: the JWKS asks to be cached 5 min"), "{out:?}");
    assert!(out.stdout.contains("✓ discovery_consistency"), "{out:?}");

    mock.idp.set_max_age(7200);
    let out = run(&["doctor", "--audit", "--json", "--jwks", &mock.idp.jwks_uri()], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json()["warnings"][0]["code"], json!("cache_ttl_too_long"));

    let body = jwks([&key(SigningAlg::ES256, "a"), &key(SigningAlg::ES256, "b")]).to_string();
    let server = Scripted::start(move |_| {
        (
            vec![(CONTENT_TYPE, "application/json".to_owned()), (CACHE_CONTROL, "no-store".to_owned())],
            body.clone(),
        )
    });
    let out = run(&["doctor", "--audit", "--jwks", &server.url()], "");
    assert!(out.stdout.contains("✗ cache_headers: Cache-Control \"no-store\""), "{out:?}");
    assert_eq!(out.code, 1, "no-store goes against the guidance: a finding, {out:?}");
}

/// A scripted rotation: k2 flaps in and out (as Entra ID's front ends do) before it settles,
/// then k1 flaps out and back before it is really gone. With two polls to confirm, watch
/// prints exactly two events: k2 added, then k1 removed.
#[test]
fn watch_reports_a_rotation_once_through_flapping() {
    let (k1, k2) = (key(SigningAlg::ES256, "k1"), key(SigningAlg::ES256, "k2"));
    let only_1 = jwks([&k1]).to_string();
    let both = jwks([&k1, &k2]).to_string();
    let only_2 = jwks([&k2]).to_string();
    let script =
        [&only_1, &both, &only_1, &both, &both, &only_2, &both, &only_2, &only_2, &only_2].map(|s| s.clone());
    let server = Scripted::start(move |n| {
        let body = script.get(n).unwrap_or(&script[script.len() - 1]).clone();
        (vec![(CONTENT_TYPE, "application/json".to_owned())], body)
    });
    let out =
        run(&["watch", "--jwks", &server.url(), "--interval", "10ms", "--json", "--max-events", "2"], "");
    assert_eq!(out.code, 0, "{out:?}");
    let events: Vec<_> = out.stdout.lines().map(parse_object).collect();
    let summary: Vec<(String, Value, Value)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["kid"].clone(), e["kids"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("initial".to_owned(), Value::Null, json!(["k1"])),
            ("added".to_owned(), json!("k2"), json!(["k1", "k2"])),
            ("removed".to_owned(), json!("k1"), json!(["k2"])),
        ],
        "{out:?}"
    );
    assert!(events[2]["overlap_s"].is_u64(), "the removal says how long k1 and k2 overlapped: {out:?}");

    // The same rotation without debouncing: every flap is an event.
    let (k1, k2) = (key(SigningAlg::ES256, "k1"), key(SigningAlg::ES256, "k2"));
    let script = [jwks([&k1]).to_string(), jwks([&k1, &k2]).to_string(), jwks([&k1]).to_string()];
    let server = Scripted::start(move |n| {
        (vec![(CONTENT_TYPE, "application/json".to_owned())], script[n.min(2)].clone())
    });
    let out = run(
        &["watch", "--jwks", &server.url(), "--interval", "10ms", "--confirm", "1", "--max-events", "2"],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[1].contains(" added kid k2: key \"k2\" (EC P-256, ES256); published: k1, k2"), "{out:?}");
    assert!(lines[2].contains(" removed kid k2: "), "{out:?}");
}

#[test]
fn watch_usage_errors() {
    let files = Files::new("k1");
    let out = run(&["watch", "--jwks", &files.jwks()], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("watch polls a URL"), "{out:?}");
    let out = run(&["watch", "--jwks", "https://a.example/jwks", "--issuer", "https://a.example"], "");
    assert_eq!(out.code, 2, "one of --jwks or --issuer: {out:?}");
    let out = run(&["watch", "--jwks", "https://a.example/jwks", "--interval", "0s"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("below the minimum of 10ms"), "{out:?}");
    let _ = NOW;
}

/// The committed self-signed certificate (valid for 100 years from 2026) as an `x5c`: agreeing
/// with its JWK, expired at a later clock, and published beside another key's `n`.
#[test]
fn certificate_warnings() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let pem = std::fs::read_to_string(format!("{data}/cert-key.pem")).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let Value::Object(mut jwk) = keyward::jwk::public_key_pem_to_jwk(pem.as_bytes()).unwrap() else {
        panic!("not a JWK")
    };
    jwk.insert("kid".into(), json!("cert"));
    jwk.insert("x5c".into(), json!([der_b64]));
    let files = Files::new("unused");
    let other = key(SigningAlg::ES256, "other").public_jwk();
    files.write("good.json", &json!({"keys": [jwk.clone(), &other]}).to_string());
    let out = run(&["doctor", "--audit", "--json", "--jwks", &files.path("good.json"), "--now", NOW_ARG], "");
    assert_eq!(out.code, 0, "the certificate matches and is valid: {out:?}");

    let out = run(
        &["doctor", "--audit", "--json", "--jwks", &files.path("good.json"), "--now", "2200-01-01T00:00:00Z"],
        "",
    );
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_eq!(report["warnings"][0]["code"], json!("expired_certificate"), "{report:#?}");
    assert!(report["warnings"][0]["detail"].as_str().unwrap().contains("CN=keyward-cli-test"));

    let mut swapped = jwk.clone();
    let rsa = key(SigningAlg::RS256, "x").public_jwk();
    swapped.insert("n".into(), rsa["n"].clone());
    files.write("swapped.json", &json!({"keys": [swapped, other]}).to_string());
    let out =
        run(&["doctor", "--audit", "--json", "--jwks", &files.path("swapped.json"), "--now", NOW_ARG], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_eq!(report["warnings"][0]["code"], json!("x5c_mismatch"), "{report:#?}");
    assert!(
        report["warnings"][0]["detail"].as_str().unwrap().contains("key \"cert\": n differ"),
        "{report:#?}"
    );
}
