//! `keyward drill`: against keyward's own verifier (in process, and behind HTTP) it passes;
//! against a naive verifier that fetched the JWKS once it fails exactly the rotation scenarios,
//! naming each with the runbook cause it reproduced. Windows are 1 s so the tests stay short.
#![allow(clippy::disallowed_methods)] // the drill runs in a child process bounded in real time

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keyward::source::{JwksSource, SourceSettings};
use keyward::{Keys, Policy, Verifier};
use serde_json::Value;

use super::idp_support::{RunningIdp, get, run_for};
use super::support::run;

const AUD: &str = "orders-api";
const LIMIT: Duration = Duration::from_secs(150);

/// An HTTP service on a loopback port answering `/orders` with the router `make_app` builds (on
/// the service's own runtime); stops when dropped.
struct Service {
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Service {
    fn spawn(make_app: impl FnOnce() -> axum::Router + Send + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/orders", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let app = make_app();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        Self { url, shutdown: Some(shutdown) }
    }

    /// Checks `Authorization: Bearer` with a verifier over `keys`: 200 when valid, 401
    /// otherwise; the first `warmup` requests get 503.
    fn start(keys: impl FnOnce() -> Keys + Send + 'static, issuer: &str, warmup: usize) -> Self {
        let issuer = issuer.to_owned();
        Self::spawn(move || {
            let policy = Policy::builder().issuer(issuer).audience(AUD).build().unwrap();
            let verifier = Verifier::builder().keys(keys()).policy(policy).build().unwrap();
            let seen = Arc::new(AtomicUsize::new(0));
            axum::Router::new().route(
                "/orders",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let verifier = verifier.clone();
                    let seen = Arc::clone(&seen);
                    async move {
                        if seen.fetch_add(1, Ordering::SeqCst) < warmup {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let token = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .unwrap_or_default()
                            .to_owned();
                        match verifier.verify(&token).await {
                            Ok(_) => axum::http::StatusCode::OK,
                            Err(_) => axum::http::StatusCode::UNAUTHORIZED,
                        }
                    }
                }),
            )
        })
    }

    /// Lets every request through: what a verifier that checks nothing looks like.
    fn accept_all() -> Self {
        Self::spawn(|| axum::Router::new().fallback(|| async { axum::http::StatusCode::OK }))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// The naive verifier: the key set fetched once at start, kept forever.
fn naive(idp: &RunningIdp) -> Service {
    let body = get(&idp.url("/jwks")).unwrap().body;
    let set = keyward::jwk::JwkSet::from_json(&body).unwrap();
    Service::start(move || Keys::from(set), &idp.issuer, 0)
}

fn scenarios(report: &serde_json::Map<String, Value>) -> Vec<(String, String, Option<String>)> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["result"].as_str().unwrap().to_owned(),
                s["cause"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn json_of(stdout: &str) -> serde_json::Map<String, Value> {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn the_drill_passes_against_keyward_in_process() {
    let (code, stdout, stderr) = run_for(&["drill", "--target", "self", "--window", "1", "--json"], LIMIT);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report = json_of(&stdout);
    assert_eq!(report["passed"], true);
    let got = scenarios(&report);
    let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "steady",
            "overlap",
            "pre-publish",
            "replace",
            "kid-reuse",
            "sign-before-publish",
            "outage-short",
            "outage-long",
            "slow-jwks",
            "429-storm",
            "kid-flood",
            "wrong-key-set",
            "flapping"
        ]
    );
    for (name, result, cause) in &got {
        assert_eq!((result.as_str(), cause), ("pass", &None), "{name}: {stdout}");
    }
    let flood = report["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "kid-flood").unwrap();
    assert_eq!(flood["tokens"]["forged"]["sent"], 500);
    assert_eq!(flood["tokens"]["forged"]["rejected"]["unknown_kid"], 500);
}

#[test]
fn a_naive_verifier_fails_the_rotation_scenarios_with_their_causes() {
    let idp = RunningIdp::spawn(&["--alg", "ES256"]);
    let service = naive(&idp);
    let mut args = vec!["drill", "--idp", &idp.base, "--target-url", &service.url, "--audience", AUD];
    args.extend(["--window", "1", "--json"]);
    for s in [
        "steady",
        "overlap",
        "replace",
        "kid-reuse",
        "sign-before-publish",
        "outage-short",
        "outage-long",
        "kid-flood",
    ] {
        args.extend(["--scenario", s]);
    }
    let (code, stdout, stderr) = run_for(&args, LIMIT);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report = json_of(&stdout);
    assert_eq!(report["passed"], false);
    let expected = [
        ("steady", "pass", None),
        ("overlap", "fail", Some("stale_cache")),
        ("replace", "fail", Some("stale_cache")),
        ("kid-reuse", "fail", Some("kid_reused")),
        ("sign-before-publish", "fail", Some("stale_cache")),
        // Not judged: the naive verifier never accepted the current signing key.
        ("outage-short", "skipped", None),
        ("outage-long", "skipped", None),
        ("kid-flood", "pass", None),
    ];
    let got = scenarios(&report);
    let got: Vec<(&str, &str, Option<&str>)> =
        got.iter().map(|(n, r, c)| (n.as_str(), r.as_str(), c.as_deref())).collect();
    assert_eq!(got, expected, "{stdout}");
    let overlap = &report["scenarios"][1];
    assert_eq!(overlap["tokens"]["new_key"]["accepted"], 0, "{overlap}");
    assert_eq!(overlap["tokens"]["old_key"]["rejected"], serde_json::json!({}), "{overlap}");
    assert!(overlap["tokens"]["new_key"]["rejected"]["http 401"].as_u64().unwrap() > 0, "{overlap}");

    // The table names the failed scenarios and causes.
    let (code, stdout, _) = run_for(
        &[
            "drill",
            "--idp",
            &idp.base,
            "--target-url",
            &service.url,
            "--audience",
            AUD,
            "--window",
            "1",
            "--scenario",
            "overlap",
        ],
        LIMIT,
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("drill FAILED: overlap (stale_cache)"), "{stdout}");
    assert!(stdout.contains("FAIL, cause stale_cache: none of"), "{stdout}");
}

#[test]
fn keyward_behind_http_passes_after_a_readiness_wait() {
    let idp = RunningIdp::spawn(&["--alg", "ES256"]);
    let issuer = idp.issuer.clone();
    // keyward's key source with the fetch window shortened to the drill's scale.
    let service = Service::start(
        move || {
            let mut settings = SourceSettings::default();
            settings.refresh_cooldown = Duration::from_secs(2);
            settings.negative_cache_ttl = Duration::from_secs(1);
            Keys::from(JwksSource::from_issuer(issuer).settings(settings).build().unwrap())
        },
        &idp.issuer,
        3,
    );
    let mut args = vec!["drill", "--idp", &idp.base, "--target-url", &service.url, "--audience", AUD];
    args.extend(["--window", "1"]);
    for s in
        ["steady", "overlap", "kid-reuse", "sign-before-publish", "outage-short", "kid-flood", "flapping"]
    {
        args.extend(["--scenario", s]);
    }
    let (code, stdout, stderr) = run_for(&args, LIMIT);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("drill passed"), "{stdout}");
    assert!(stdout.contains(&format!("target  {}", service.url)), "{stdout}");
    let state = idp.state();
    assert!(state["jwks_requests"].as_u64().unwrap() >= 3, "the target fetched from the idp: {state}");
}

#[test]
fn drill_usage_errors_exit_2() {
    let out = run(&["drill", "--target", "self", "--scenario", "earthquake"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("unknown scenario \"earthquake\"") && out.stderr.contains("kid-flood"),
        "{out:?}"
    );
    let out = run(&["drill"], "");
    assert_eq!(out.code, 2, "{out:?}");
    let out = run(&["drill", "--target", "self", "--target-url", "http://127.0.0.1:1/"], "");
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn the_fleet_simulation_reports_every_phase() {
    let (code, stdout, stderr) = run_for(&["drill", "--fleet", "5", "--window", "3", "--json"], LIMIT);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report = json_of(&stdout);
    assert_eq!(report["replicas"], 5);
    assert_eq!(report["rate_limit_per_s"], 20);
    let phases = report["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(names, ["sign-before-publish", "overlap", "random-kid flood"]);
    for rotation in &phases[..2] {
        // Five replicas stay under the idp's limit: each finds the new key within one fetch
        // spacing of its publication, and none rejects a valid token 5 s after it.
        assert_eq!(rotation["valid_rejected_after_publication_plus_5s"], 0, "{rotation}");
        assert!(rotation["all_replicas_accepted_after_s"].is_number(), "{rotation}");
        assert!(rotation["jwks_requests"].as_u64().unwrap() >= 5, "every replica fetched: {rotation}");
        assert_eq!(rotation["throttled_429"], 0, "{rotation}");
        // After the traffic, every replica holds the new key: the wait for it ended, and the
        // whole rotation's requests include the traffic's.
        assert!(rotation["all_replicas_settled_after_s"].is_number(), "{rotation}");
        let (total, traffic) = (&rotation["jwks_requests_until_settled"], &rotation["jwks_requests"]);
        assert!(total.as_u64().unwrap() >= traffic.as_u64().unwrap(), "{rotation}");
        assert_eq!(rotation["throttled_429_until_settled"], 0, "{rotation}");
    }
    assert_eq!(phases[2]["sent"], 100, "20 random kids per replica");
    assert_eq!(phases[2]["valid_rejected"], 0, "{}", phases[2]);
    for phase in phases {
        assert_eq!(phase["unanswered_fetches_peak"], 0, "every fetch got an answer: {phase}");
    }
}

#[test]
fn the_fleet_simulation_takes_the_idps_rate_limit() {
    // Five replicas that meet a new kid within 500 ms ask more than 2 requests in a second.
    let args = ["drill", "--fleet", "5", "--window", "3", "--jwks-rate-limit", "2", "--json"];
    let (code, stdout, stderr) = run_for(&args, LIMIT);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report = json_of(&stdout);
    assert_eq!(report["rate_limit_per_s"], 2);
    let phases = report["phases"].as_array().unwrap();
    let refused: u64 = phases.iter().map(|p| p["throttled_429"].as_u64().unwrap()).sum();
    assert!(refused > 0, "a limit of 2 per second refuses part of the fleet's fetches: {stdout}");
    for phase in phases {
        assert_eq!(phase["unanswered_fetches_peak"], 0, "429s are answers: {phase}");
    }
    // The limit belongs to the fleet simulation only.
    let out = run(&["drill", "--target", "self", "--jwks-rate-limit", "5"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--jwks-rate-limit"), "{out:?}");
}

#[test]
fn a_target_that_accepts_everything_fails_wherever_it_is_tested() {
    let idp = RunningIdp::spawn(&["--alg", "ES256"]);
    let target = Service::accept_all();
    let mut args = vec!["drill", "--idp", &idp.base, "--target-url", &target.url, "--audience", AUD];
    args.extend(["--window", "1", "--json"]);
    for s in ["steady", "replace", "429-storm", "wrong-key-set", "flapping"] {
        args.extend(["--scenario", s]);
    }
    let (code, stdout, stderr) = run_for(&args, LIMIT);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let got = scenarios(&json_of(&stdout));
    let got: Vec<(&str, &str, Option<&str>)> =
        got.iter().map(|(n, r, c)| (n.as_str(), r.as_str(), c.as_deref())).collect();
    assert_eq!(
        got,
        [
            ("steady", "pass", None),
            // The dropped key's tokens are never refused.
            ("replace", "fail", Some("stale_cache")),
            // Forged tokens (random kids) let in, whatever else the scenario judges.
            ("429-storm", "fail", Some("token_tampered")),
            ("wrong-key-set", "fail", Some("token_tampered")),
            ("flapping", "fail", Some("token_tampered")),
        ],
        "{stdout}"
    );
}

#[test]
fn malformed_urls_are_refused_at_once() {
    let (code, _, stderr) = run_for(&["drill", "--target-url", "notaurl", "--scenario", "steady"], LIMIT);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a URL"), "{stderr}");
    let (code, _, stderr) = run_for(&["idp", "--issuer", "not a url"], LIMIT);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not an http(s) URL"), "{stderr}");
}
