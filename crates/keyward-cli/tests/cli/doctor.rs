//! `keyward doctor`: each cause and warning reproduced against the mock IdP (`keyward-idp`'s
//! `MockIdp` on 127.0.0.1) or a key file, asserting the cause code and the key facts of its
//! evidence; the human checklist compared as text for three cases.
#![allow(clippy::disallowed_methods)] // the server-Date test needs the real clock, as doctor does

use keyward_idp::{Fault, MockIdp, SigningAlg, SigningKey, jwks};
use serde_json::{Map, Value, json};

use super::support::{AUD, Files, ISS, NOW, NOW_ARG, Output, claims, claims_with, dead_base, key, run};

/// The exact top-level members of `doctor --json`.
const DOCTOR_FIELDS: [&str; 6] = ["cause", "checks", "fix", "jwks", "token", "warnings"];

/// A `MockIdp` served by its own runtime for as long as the test holds it.
pub(crate) struct Mock {
    pub(crate) idp: MockIdp,
    _runtime: tokio::runtime::Runtime,
}

impl Mock {
    pub(crate) fn start(keys: &[&std::sync::Arc<SigningKey>]) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let idp = runtime.block_on(MockIdp::start()).unwrap();
        idp.publish(keys);
        Self { idp, _runtime: runtime }
    }

    pub(crate) fn base(&self) -> String {
        self.idp.issuer().to_owned()
    }

    /// Claims valid at [`NOW`] from this issuer for [`AUD`].
    pub(crate) fn claims(&self) -> Value {
        self.idp.claims("alice", AUD, NOW - 10, 600)
    }
}

pub(crate) fn arc(alg: SigningAlg, kid: &str) -> std::sync::Arc<SigningKey> {
    std::sync::Arc::new(key(alg, kid))
}

/// Runs `keyward doctor ARGS --json` and checks the object's shape.
#[track_caller]
pub(crate) fn doctor(args: &[&str]) -> (Output, Map<String, Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let out = run(&all, "");
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert_eq!(out.stderr, "", "the verdict says everything; nothing is logged: {out:?}");
    let report = out.json();
    let mut names: Vec<&str> = report.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, DOCTOR_FIELDS, "{report:?}");
    for check in report["checks"].as_array().unwrap() {
        assert!(["pass", "fail", "warn"].contains(&check["status"].as_str().unwrap()), "{check:?}");
        assert!(check["name"].is_string() && check["detail"].is_string(), "{check:?}");
    }
    for warning in report["warnings"].as_array().unwrap() {
        assert!(warning["code"].is_string() && warning["detail"].is_string(), "{warning:?}");
    }
    assert!(report["fix"].as_str().is_some_and(|f| !f.is_empty()), "{report:?}");
    let cause = report["cause"].as_str().unwrap();
    assert_eq!(out.code, i32::from(cause != "ok"), "exit 0 only for ok: {out:?}");
    (out, report)
}

#[track_caller]
fn assert_cause(report: &Map<String, Value>, cause: &str) {
    assert_eq!(report["cause"], json!(cause), "{report:#?}");
}

/// The detail of the (first) check `name` with `status`; panics when there is none.
#[track_caller]
fn check<'a>(report: &'a Map<String, Value>, name: &str, status: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name) && c["status"] == json!(status))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no {status} check {name}: {report:#?}"))
}

fn warning_codes(report: &Map<String, Value>) -> Vec<&str> {
    report["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect()
}

fn write_jwks(files: &Files, name: &str, document: &Value) -> String {
    files.write(name, &document.to_string());
    files.path(name)
}

#[test]
fn ok_through_discovery_with_every_fact() {
    let (k1, k2) = (arc(SigningAlg::ES256, "k1"), arc(SigningAlg::RS256, "k2"));
    let mock = Mock::start(&[&k1, &k2]);
    let token = k1.sign_jwt(&mock.claims()).unwrap();
    let (_, report) = doctor(&["--issuer", &mock.base(), "--audience", AUD, "--now", NOW_ARG, &token]);
    assert_cause(&report, "ok");
    assert_eq!(report["warnings"], json!([]), "two keys, max-age 300: nothing to warn about");
    assert!(check(&report, "signature", "pass").contains("\"k1\""));
    assert!(check(&report, "discovery", "pass").contains("equals the configured issuer"));
    assert!(check(&report, "exp", "pass").starts_with("expires in 9 min 50 s"));
    let jwks = &report["jwks"];
    assert_eq!(jwks["source"], json!("discovery"));
    assert_eq!(jwks["discovery"]["issuer_matches"], json!(true));
    assert_eq!(jwks["http"]["status"], json!(200));
    assert_eq!(jwks["http"]["cache_control"], json!("public, max-age=300"));
    assert_eq!(jwks["requested_ttl_s"], json!(300));
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(report["token"]["kid"], json!("k1"));
    assert_eq!(report["token"]["header"]["alg"], json!("ES256"));
    assert_eq!(report["token"]["claims"]["iss"], json!(mock.base()));
    assert_eq!(report["token"]["verified_by"], json!("key \"k1\" (EC P-256, ES256)"));
    assert_eq!(report["token"]["signature_verified"], json!(true));
    assert_eq!(mock.idp.jwks_hits(), 1, "one fetch");
}

#[test]
fn stale_cache_from_a_jwks_file_and_from_a_keyward_cache_file() {
    let (k1, k2) = (arc(SigningAlg::ES256, "2026-10-k1"), arc(SigningAlg::ES256, "2026-11-k2"));
    let mock = Mock::start(&[&k1, &k2]);
    let files = Files::new("unused");
    let cached = write_jwks(&files, "cached.json", &jwks([&*k1]));
    let token = k2.sign_jwt(&mock.claims()).unwrap();
    let (_, report) =
        doctor(&["--jwks", &mock.idp.jwks_uri(), "--cached-jwks", &cached, "--now", NOW_ARG, &token]);
    assert_cause(&report, "stale_cache");
    assert!(check(&report, "kid_cached", "fail").contains("kid \"2026-11-k2\" is not in the cached copy"));
    assert!(check(&report, "signature", "pass").contains("2026-11-k2"));
    assert_eq!(report["jwks"]["cached"]["kids"], json!(["2026-10-k1"]));

    // The same copy as keyward's warm-start cache file.
    let record = json!({
        "saved_at": NOW - 3600,
        "source": mock.base(),
        "jwks_uri": mock.idp.jwks_uri(),
        "jwks": jwks([&*k1]).to_string(),
    });
    let cache_file = write_jwks(&files, "warm.json", &record);
    let (_, report) =
        doctor(&["--jwks", &mock.idp.jwks_uri(), "--cached-jwks", &cache_file, "--now", NOW_ARG, &token]);
    assert_cause(&report, "stale_cache");
    assert_eq!(report["jwks"]["cached"]["saved_at"], json!("2025-12-31T23:00:00Z"));
    assert!(check(&report, "kid_cached", "fail").contains("saved 1 h ago"), "{report:#?}");
}

#[test]
fn key_dropped_early_with_and_without_a_cached_copy() {
    let (k1, k2) = (arc(SigningAlg::ES256, "k1"), arc(SigningAlg::ES256, "k2"));
    let mock = Mock::start(&[&k2]);
    let token = k1.sign_jwt(&mock.claims()).unwrap();
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &token]);
    assert_cause(&report, "key_dropped_early");
    assert!(check(&report, "kid_live", "fail").contains("kid \"k1\" is not in the live set (kids: k2)"));

    let files = Files::new("unused");
    let cached = write_jwks(&files, "cached.json", &jwks([&*k1, &*k2]));
    let (_, report) =
        doctor(&["--jwks", &mock.idp.jwks_uri(), "--cached-jwks", &cached, "--now", NOW_ARG, &token]);
    assert_cause(&report, "key_dropped_early");
    assert!(check(&report, "signature_cached", "pass").contains("\"k1\""));
    assert!(check(&report, "cause", "fail").contains("no longer publishes it"));

    // The same token once expired is simply expired: the key was retired after its last token.
    let late = (NOW + 3600).to_string();
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", &late, &token]);
    assert_cause(&report, "expired");
}

#[test]
fn kid_reused_when_the_cached_key_under_the_kid_verifies() {
    let old = arc(SigningAlg::ES256, "main");
    let new = arc(SigningAlg::ES256, "main");
    let mock = Mock::start(&[&new]);
    let files = Files::new("unused");
    let cached = write_jwks(&files, "cached.json", &jwks([&*old]));
    let token = old.sign_jwt(&mock.claims()).unwrap();
    let (_, report) =
        doctor(&["--jwks", &mock.idp.jwks_uri(), "--cached-jwks", &cached, "--now", NOW_ARG, &token]);
    assert_cause(&report, "kid_reused");
    assert!(check(&report, "signature", "fail").contains("\"main\""));
    let why = check(&report, "cause", "fail");
    assert!(why.contains("other material under kid main"), "{why}");
    assert!(why.contains(&keyward_thumbprint(&old)), "names the cached key's thumbprint: {why}");
}

/// The RFC 7638 thumbprint the library computes, read back through doctor's own JSON.
fn keyward_thumbprint(key: &SigningKey) -> String {
    let files = Files::new("unused");
    let path = write_jwks(&files, "one.json", &jwks([key]));
    let out = run(&["doctor", "--json", "--audit", "--jwks", &path], "");
    out.json()["jwks"]["keys"][0]["thumbprint"].as_str().unwrap().to_owned()
}

#[test]
fn jwks_unreachable_names_the_stage() {
    let k1 = arc(SigningAlg::ES256, "k1");
    let mock = Mock::start(&[&k1]);
    mock.idp.set_fault(Fault::Status(503));
    let token = k1.sign_jwt(&mock.claims()).unwrap();
    let (_, report) = doctor(&["--issuer", &mock.base(), "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert_eq!(report["jwks"]["fetch_error"]["stage"], json!("http_status"));
    assert_eq!(report["jwks"]["fetch_error"]["status"], json!(503));
    assert!(check(&report, "cause", "fail").contains("HTTP status 503"));

    mock.idp.set_fault(Fault::Garbage);
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert_eq!(report["jwks"]["fetch_error"]["stage"], json!("parse"));

    // A Kubernetes API server without credentials: the hint points at a file.
    mock.idp.set_fault(Fault::Status(401));
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert!(check(&report, "cause", "fail").contains("kubectl get --raw /openid/v1/jwks"), "{report:#?}");

    let dead = format!("{}/jwks", dead_base());
    let (_, report) = doctor(&["--jwks", &dead, "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert_eq!(report["jwks"]["fetch_error"]["stage"], json!("connect"));

    // A name that does not resolve (the reserved `.invalid` TLD): the DNS stage.
    let (_, report) = doctor(&["--jwks", "https://keyward-doctor.invalid/jwks", "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert_eq!(report["jwks"]["fetch_error"]["stage"], json!("dns"));

    // https to a server that answers the TLS ClientHello in plain HTTP: the TLS stage.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten().take(8) {
            let mut hello = [0u8; 512];
            let _ = conn.read(&mut hello);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let url = format!("https://127.0.0.1:{port}/jwks");
    let (_, report) = doctor(&["--jwks", &url, "--now", NOW_ARG, &token]);
    assert_cause(&report, "jwks_unreachable");
    assert_eq!(report["jwks"]["fetch_error"]["stage"], json!("tls"));
}

#[test]
fn wrong_key_set_names_the_near_miss() {
    let k1 = arc(SigningAlg::ES256, "k1");
    let mock = Mock::start(&[&k1]);
    let token = k1.sign_jwt(&mock.claims()).unwrap();

    // Configured with a trailing slash: discovery's document names the issuer without one.
    let slash = format!("{}/", mock.base());
    let (_, report) = doctor(&["--issuer", &slash, "--now", NOW_ARG, &token]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "discovery", "fail").contains("differ only by a trailing slash"), "{report:#?}");

    // Entra ID v1 token against a v2 configuration (keys from the JWKS URL).
    let v1 =
        k1.sign_jwt(&json!({"iss": "https://sts.windows.net/tid/", "aud": AUD, "exp": NOW + 600})).unwrap();
    let v2 = "https://login.microsoftonline.com/tid/v2.0";
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--issuer", v2, "--now", NOW_ARG, &v1]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "issuer", "fail").contains("Entra ID v1"), "{report:#?}");

    // A literal {tenantid} left in the configuration.
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--issuer", template, "--now", NOW_ARG, &v1]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "cause", "fail").contains("literal tenant template"), "{report:#?}");

    // An Entra ID token signed with an app-specific key, checked against the common keys.
    let files = Files::new("common-1");
    let entra = key(SigningAlg::RS256, "app-key")
        .sign_jwt(&json!({"iss": v2, "aud": "api://orders", "appid": "11111111-2222", "exp": NOW + 600}))
        .unwrap();
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--issuer", v2, "--now", NOW_ARG, &entra]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "key_set", "fail").contains("?appid=11111111-2222"), "{report:#?}");

    // A Firebase ID token against Google's OAuth keys.
    let firebase = key(SigningAlg::RS256, "fb-1")
        .sign_jwt(&json!({"iss": "https://securetoken.google.com/my-project", "aud": "my-project", "exp": NOW + 600}))
        .unwrap();
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &firebase]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "key_set", "fail").contains("securetoken@system.gserviceaccount.com"));

    // Another audience.
    let (_, report) =
        doctor(&["--jwks", &mock.idp.jwks_uri(), "--audience", "billing", "--now", NOW_ARG, &token]);
    assert_cause(&report, "wrong_key_set");
    assert!(check(&report, "audience", "fail").contains("names none of the accepted audiences billing"));
}

#[test]
fn expired_and_not_yet_valid_tokens() {
    let files = Files::new("k1");
    // 2 min past exp with a 60 s leeway: expired (nothing shows this host's clock is off).
    let skewed = files.token(&claims_with(json!({"exp": NOW - 120})));
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &skewed]);
    assert_cause(&report, "expired");
    assert!(check(&report, "exp", "fail").contains("1 min beyond the 60 s leeway"), "{report:#?}");

    let expired = files.token(&claims_with(json!({"exp": NOW - 3600})));
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &expired]);
    assert_cause(&report, "expired");
    assert!(check(&report, "exp", "fail").contains("expired 1 h ago (2025-12-31T23:00:00Z)"));

    let early = files.token(&claims_with(json!({"nbf": NOW + 200})));
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &early]);
    assert_cause(&report, "clock_skew");
    assert!(check(&report, "nbf", "fail").contains("2 min 20 s beyond the 60 s leeway"));
}

#[test]
fn clock_skew_from_the_server_date() {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, DATE};
    let signer = key(SigningAlg::ES256, "k1");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // An hour ahead, in IMF-fixdate.
    let date = http_date(now + 3600);
    let body = jwks([&signer, &key(SigningAlg::ES256, "k2")]).to_string();
    let server = Scripted::start(move |_| {
        (
            vec![
                (CONTENT_TYPE, "application/json".to_owned()),
                (CACHE_CONTROL, "max-age=300".to_owned()),
                (DATE, date.clone()),
            ],
            body.clone(),
        )
    });
    let token = signer.sign_jwt(&json!({"iss": ISS, "aud": AUD, "iat": now - 10, "exp": now + 600})).unwrap();
    let (_, report) = doctor(&["--jwks", &server.url(), &token]);
    assert_cause(&report, "clock_skew");
    assert!(check(&report, "clock", "fail").contains("1 h ahead of this host's clock"), "{report:#?}");
    assert!(report["jwks"]["date_skew_s"].as_i64().unwrap() >= 3590);
}

#[test]
fn algorithm_mismatch_when_the_token_alg_does_not_fit_the_kid() {
    let files = Files::new("unused");
    let signer = key(SigningAlg::PS256, "rsa-1");
    let mut jwk = signer.public_jwk();
    jwk["alg"] = json!("RS256");
    let path =
        write_jwks(&files, "rs.json", &json!({"keys": [jwk, key(SigningAlg::ES256, "ec").public_jwk()]}));
    let token = signer.sign_jwt(&claims()).unwrap();
    let (_, report) = doctor(&["--jwks", &path, "--now", NOW_ARG, &token]);
    assert_cause(&report, "algorithm_mismatch");
    assert!(check(&report, "signature", "fail").contains("token alg PS256 does not fit key \"rsa-1\""));
}

#[test]
fn token_tampered_for_a_forged_or_malformed_token() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let forged_claims = keyward_idp::mint::b64(claims_with(json!({"sub": "mallory"})).to_string().as_bytes());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &forged]);
    assert_cause(&report, "token_tampered");
    assert!(check(&report, "signature", "fail").contains("does not verify with key \"k1\""));

    // A genuine signature under a header keyward refuses is not a forgery.
    let crit = files
        .key
        .sign_with_header(&json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1}), &claims())
        .unwrap();
    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, &crit]);
    assert!(check(&report, "header", "warn").contains("unsupported_critical_header"), "{report:#?}");
    assert!(check(&report, "signature", "pass").contains("\"k1\""), "{report:#?}");
    assert_cause(&report, "foreign_token");
    assert!(check(&report, "claims", "fail").contains("keyward rejects it: unsupported_critical_header"));

    let (_, report) = doctor(&["--jwks", &files.jwks(), "--now", NOW_ARG, "Bearer abc.def"]);
    assert_cause(&report, "token_tampered");
    assert!(report["token"]["defect"].as_str().unwrap().contains("segment"), "{report:#?}");
    assert_eq!(report["token"]["notes"], json!(["removed the \"Bearer \" prefix"]));
}

#[test]
fn foreign_tokens_are_named() {
    let k1 = arc(SigningAlg::RS256, "k1");
    let mock = Mock::start(&[&k1, &arc(SigningAlg::RS256, "k2")]);
    // A Microsoft Graph token: its kid is published, but the signature covers a hashed nonce.
    let graph = key(SigningAlg::RS256, "k1")
        .sign_with_header(
            &json!({"alg": "RS256", "kid": "k1", "typ": "JWT", "nonce": "abc"}),
            &json!({"aud": "00000003-0000-0000-c000-000000000000", "iss": mock.base(), "exp": NOW + 600}),
        )
        .unwrap();
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &graph]);
    assert_cause(&report, "foreign_token");
    assert!(check(&report, "foreign", "fail").contains("Microsoft Graph"));

    // A Keycloak refresh token: HS512 and typ Refresh.
    let b64 = |v: Value| keyward_idp::mint::b64(v.to_string().as_bytes());
    let refresh = format!(
        "{}.{}.{}",
        b64(json!({"alg": "HS512", "typ": "JWT", "kid": "hmac-1"})),
        b64(json!({"iss": mock.base(), "typ": "Refresh", "exp": NOW + 600})),
        keyward_idp::mint::b64(&[7; 64])
    );
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &refresh]);
    assert_cause(&report, "foreign_token");
    assert!(check(&report, "foreign", "fail").contains("refresh token"));

    // An Okta org authorization server token.
    let okta = key(SigningAlg::RS256, "okta-org")
        .sign_jwt(&json!({"iss": "https://dev-123.okta.com", "aud": AUD, "exp": NOW + 600}))
        .unwrap();
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &okta]);
    assert_cause(&report, "foreign_token");
    assert!(check(&report, "foreign", "fail").contains("Okta org authorization server"));
}

#[test]
fn key_set_warnings() {
    let files = Files::new("unused");
    let good = key(SigningAlg::ES256, "good");
    let mut private = key(SigningAlg::ES256, "leaky").public_jwk();
    private["d"] = json!("AAAA");
    let mut kidless = key(SigningAlg::ES256, "x").public_jwk();
    kidless.as_object_mut().unwrap().remove("kid");
    let mut enc = key(SigningAlg::RS256, "enc-1").public_jwk();
    enc["use"] = json!("enc");
    enc.as_object_mut().unwrap().remove("alg");
    // A 1024-bit modulus.
    let weak = json!({"kty": "RSA", "kid": "weak", "use": "sig", "alg": "RS256", "e": "AQAB",
        "n": keyward_idp::mint::b64(&[0xc5; 128])});
    let twin = key(SigningAlg::ES256, "good").public_jwk();
    let document = json!({"keys": [good.public_jwk(), twin, private, kidless, enc, weak]});
    let path = write_jwks(&files, "messy.json", &document);
    let token = good.sign_jwt(&claims()).unwrap();
    let (_, report) = doctor(&["--jwks", &path, "--now", NOW_ARG, &token]);
    assert_cause(&report, "ok");
    let mut codes = warning_codes(&report);
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["duplicate_kid", "enc_key_in_set", "key_without_kid", "private_key_published", "weak_key"],
        "{report:#?}"
    );

    // One key, served with a day-long max-age.
    let only = arc(SigningAlg::ES256, "only");
    let mock = Mock::start(&[&only]);
    mock.idp.set_max_age(86_400);
    let token = only.sign_jwt(&mock.claims()).unwrap();
    let (_, report) = doctor(&["--jwks", &mock.idp.jwks_uri(), "--now", NOW_ARG, &token]);
    assert_cause(&report, "ok");
    assert_eq!(warning_codes(&report), ["cache_ttl_too_long", "single_key"]);
    assert!(report["warnings"][0]["detail"].as_str().unwrap().contains("1 d"));
}

#[test]
fn usage_errors_exit_2() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    for args in [
        vec!["doctor", &token],
        vec!["doctor", "--jwks", "/nonexistent/jwks.json", &token],
        vec!["doctor", "--jwks", &files.jwks(), "--cached-jwks", "/nonexistent/c.json", &token],
        vec!["doctor", "--jwks", &files.jwks(), "--audit", &token],
        vec!["doctor", "--jwks", "http://idp.example.test/jwks", &token],
    ] {
        let out = run(&args, "");
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{out:?}");
    }
}

/// Times in the human output are pinned by --now; key thumbprints come from a committed
/// certificate, so the checklist is compared whole.
#[test]
fn human_checklists() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let cert = format!("{data}/cert-key.pem");
    let token = format!("@{data}/cert-key-token.jwt");
    let out =
        run(&["doctor", "--jwks", &cert, "--issuer", ISS, "--audience", AUD, "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    let expected_ok = "\
✓ token: alg RS256, kid \"cert-key\", typ JWT; iss https://idp.example.test, aud orders-api
✓ jwks_fetch: read CERT: 1 usable key, 0 set aside
  ✓ key: key without kid (RSA 2048): use (none), alg (none), key_ops (none), thumbprint fpAMZ3fo5tErIweUtqzyUaAKufMlSv7tdyP8ySDSPrA
✓ kid_live: the key file holds one key without kid: it answers any kid
✓ signature: verifies with key without kid (RSA 2048)
✓ issuer: iss \"https://idp.example.test\" equals the configured issuer
✓ audience: aud orders-api includes an accepted audience
✓ exp: expires in 10 min (2026-01-01T00:10:00Z)
✓ iat: issued 10 s ago (2025-12-31T23:59:50Z)
cause: ok (every check passed)
fix: Nothing to fix: the token verifies against the live key set with these settings.
";
    assert_eq!(out.stdout.replace(&cert, "CERT"), expected_ok);

    let later = (NOW + 3600).to_string();
    let out = run(&["doctor", "--jwks", &cert, "--now", &later, &token], "");
    assert_eq!(out.code, 1, "{out:?}");
    let expected_expired = "\
✓ token: alg RS256, kid \"cert-key\", typ JWT; iss https://idp.example.test, aud orders-api
✓ jwks_fetch: read CERT: 1 usable key, 0 set aside
  ✓ key: key without kid (RSA 2048): use (none), alg (none), key_ops (none), thumbprint fpAMZ3fo5tErIweUtqzyUaAKufMlSv7tdyP8ySDSPrA
✓ kid_live: the key file holds one key without kid: it answers any kid
✓ signature: verifies with key without kid (RSA 2048)
⚠ issuer: not checked (no --issuer)
⚠ audience: not checked (no --audience)
✗ exp: expired 50 min ago (2026-01-01T00:10:00Z), 49 min beyond the 60 s leeway
✓ iat: issued 1 h ago (2025-12-31T23:59:50Z)
cause: expired (expired 50 min ago (2026-01-01T00:10:00Z), 49 min beyond the 60 s leeway)
fix: The token has expired; the client must obtain a new one (refresh it) before calling.
";
    assert_eq!(out.stdout.replace(&cert, "CERT"), expected_expired);

    // A key set fetched from the mock IdP: the port and latency are normalised.
    let k1 = arc(SigningAlg::ES256, "k1");
    let mock = Mock::start(&[&k1]);
    mock.idp.set_fault(Fault::Status(503));
    let token = k1.sign_jwt(&mock.claims()).unwrap();
    let out = run(&["doctor", "--issuer", &mock.base(), "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 1, "{out:?}");
    let normalised = out.stdout.replace(&mock.base(), "http://IDP");
    let normalised = without_dates(&regex_ms(&normalised));
    let expected_unreachable = "\
✓ token: alg ES256, kid \"k1\", typ JWT; iss http://IDP, aud orders-api
✓ discovery: http://IDP/.well-known/openid-configuration (HTTP 200 in N ms): issuer \"http://IDP\" equals the configured issuer; jwks_uri http://IDP/jwks
✗ jwks_fetch: http://IDP/jwks HTTP 503 in N ms, text/plain; charset=utf-8, 0 bytes, no Cache-Control, Date D; failed at HTTP status 503: server answered 503 Service Unavailable
✓ issuer: iss \"http://IDP\" equals the configured issuer
⚠ audience: not checked (no --audience)
✓ exp: expires in 9 min 50 s (2026-01-01T00:09:50Z)
✓ nbf: not valid before 10 s ago (2025-12-31T23:59:50Z)
✓ iat: issued 10 s ago (2025-12-31T23:59:50Z)
cause: jwks_unreachable (fetching http://IDP/jwks failed at HTTP status 503: server answered 503 Service Unavailable)
fix: The key set cannot be fetched from here; fix the network path, the URL or the trust store named by the failing stage, or give the keys as a file with --jwks FILE.
";
    assert_eq!(normalised, expected_unreachable);
}

/// Replaces every "Date Sun, 06 Dec 2026 07:34:53 GMT" with "Date D".
fn without_dates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("Date ") {
        let (before, after) = rest.split_at(at + 5);
        out.push_str(before);
        match after.find(" GMT") {
            Some(end) if end < 30 => {
                out.push('D');
                rest = &after[end + 4..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Replaces every "in 123 ms" with "in N ms".
fn regex_ms(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("in ") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(" ms") {
            out.push('N');
            rest = &after[digits..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Unix seconds as an IMF-fixdate.
fn http_date(unix: i64) -> String {
    let stamp = keyward::clock::format_rfc3339(unix); // 2026-12-06T07:34:53Z
    let (year, month, day) = (&stamp[0..4], &stamp[5..7], &stamp[8..10]);
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months[month.parse::<usize>().unwrap() - 1];
    let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = days[(unix.div_euclid(86_400)).rem_euclid(7) as usize];
    format!("{weekday}, {day} {month} {year} {} GMT", &stamp[11..19])
}

/// A JWKS server on 127.0.0.1 whose answer to the Nth request (from 0) is scripted.
pub(crate) struct Scripted {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

type Answer = (Vec<(axum::http::HeaderName, String)>, String);

impl Scripted {
    pub(crate) fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                let (headers, body) = answer(n);
                async move {
                    let mut response = axum::response::Response::new(axum::body::Body::from(body));
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, _runtime: runtime }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/jwks", self.base)
    }
}
