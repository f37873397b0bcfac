//! The gateway's operations module seen from outside: the metric names and labels `/metrics`
//! shows, the `/readyz` answer through an IdP outage, failure-spike episodes and reload.
//!
//! Every test shares the process's one metrics recorder, so each uses its own policy, issuer
//! and header names and asserts on its own series.

use std::time::Duration;

use keyward::Reason;
use keyward_serve::ops::metrics::{DecisionMetrics, DecisionReason, Metrics};

/// `Metrics::refresh_issuers` reports the whole set of issuers: the tests calling it take turns.
static REFRESHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of the series `name{labels}` (labels in the exporter's order) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn decisions_are_counted_by_policy_status_and_reason() {
    let metrics = Metrics::install().unwrap();
    let decisions = DecisionMetrics::new(["orders", "admin"], ["X-Auth-Subject"]);
    let orders = decisions.policy("orders").unwrap();
    assert_eq!(decisions.policy("nope"), None);

    decisions.record(orders, DecisionReason::Allowed, 200, Duration::from_micros(80));
    decisions.record(orders, DecisionReason::Allowed, 200, Duration::from_micros(120));
    decisions.record(orders, DecisionReason::Token(Reason::UnknownKid), 401, Duration::from_micros(300));
    decisions.record(
        orders,
        DecisionReason::Token(Reason::KeysUnavailable),
        503,
        Duration::from_millis(1000),
    );
    decisions.record(orders, DecisionReason::MissingToken, 401, Duration::from_micros(20));
    decisions.record(orders, DecisionReason::InsufficientScope, 403, Duration::from_micros(90));
    // A status other than the reason's usual one is still counted, under its own status.
    decisions.record(orders, DecisionReason::IssuerNotAllowed, 401, Duration::from_micros(90));
    decisions.record_unknown_policy(Duration::from_micros(10));
    decisions.cache_hit();
    decisions.cache_miss();
    decisions.cache_miss();
    decisions.cors_preflight_bypassed();
    decisions.claim_header_dropped(0);

    let text = metrics.render();
    let count = |labels: &str| sample(&text, &format!("keyward_decisions_total{{{labels}}}"));
    assert_eq!(count(r#"policy="orders",status="200",reason="allowed""#), Some(2.0), "{text}");
    assert_eq!(count(r#"policy="orders",status="401",reason="unknown_kid""#), Some(1.0));
    assert_eq!(count(r#"policy="orders",status="503",reason="keys_unavailable""#), Some(1.0));
    assert_eq!(count(r#"policy="orders",status="401",reason="missing_token""#), Some(1.0));
    assert_eq!(count(r#"policy="orders",status="403",reason="insufficient_scope""#), Some(1.0));
    assert_eq!(count(r#"policy="orders",status="401",reason="issuer_not_allowed""#), Some(1.0));
    assert_eq!(count(r#"policy="",status="500",reason="unknown_policy""#), Some(1.0));
    // Series exist from the start, so the first 503 of a policy shows as an increase.
    assert_eq!(count(r#"policy="admin",status="503",reason="keys_unavailable""#), Some(0.0));
    assert_eq!(count(r#"policy="admin",status="200",reason="allowed""#), Some(0.0));
    assert_eq!(
        sample(&text, r#"keyward_decision_duration_seconds_bucket{policy="orders",le="0.0001"}"#),
        Some(4.0), // 20, 80, 90 and 90 µs; not 120 µs
        "sub-millisecond buckets: {text}"
    );
    assert_eq!(sample(&text, r#"keyward_decision_duration_seconds_count{policy="orders"}"#), Some(7.0));
    assert!(sample(&text, "keyward_token_cache_hits_total").unwrap() >= 1.0);
    assert!(sample(&text, "keyward_token_cache_misses_total").unwrap() >= 2.0);
    assert!(sample(&text, "keyward_cors_preflight_bypassed_total").unwrap() >= 1.0);
    assert_eq!(sample(&text, r#"keyward_claim_header_dropped_total{header="x-auth-subject"}"#), Some(1.0));
    for help in [
        "# HELP keyward_decisions_total ",
        "# TYPE keyward_decisions_total counter",
        "# TYPE keyward_decision_duration_seconds histogram",
        "# HELP keyward_token_cache_hits_total ",
        "# HELP keyward_token_cache_misses_total ",
        "# HELP keyward_cors_preflight_bypassed_total ",
        "# HELP keyward_claim_header_dropped_total ",
    ] {
        assert!(text.contains(help), "{help} missing in:\n{text}");
    }
}

mod readiness {
    //! `/readyz` through an IdP outage: ready while fresh or stale (last-known-good keys within
    //! the stale limit), 503 past it; a failure spike marks the issuer degraded but ready.

    use std::sync::Arc;
    use std::time::Duration;

    use keyward::source::JwksSource;
    use keyward::{Clock, FixedClock, Reason};
    use keyward_idp::{Fault, MockIdp, SigningAlg, SigningKey};
    use keyward_serve::ops::metrics::Metrics;
    use keyward_serve::ops::ready::{IssuerReadiness, Readiness};
    use serde_json::{Value, json};
    use tokio::time::advance;

    use super::sample;

    const NOW: i64 = 1_767_225_600;

    fn readiness(name: &str, source: &JwksSource, spike: Option<Reason>, now_unix: i64) -> (u16, Value) {
        let health = source.health();
        let r = Readiness::new([(name.to_owned(), IssuerReadiness::new(&health, spike, true, now_unix))]);
        (r.status(), serde_json::from_str(&r.to_json()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn ready_through_an_outage_while_last_known_good_keys_last() {
        let _turn = super::REFRESHING.lock().await;
        let metrics = Metrics::install().unwrap();
        let idp = MockIdp::start().await.unwrap();
        let k1 = Arc::new(SigningKey::generate(SigningAlg::ES256, "k1").unwrap());
        idp.publish(&[&k1]);
        idp.set_max_age(60);
        let clock = Arc::new(FixedClock::at(NOW));
        let source = JwksSource::from_url(idp.jwks_uri())
            .name("ready-idp")
            .configure(|s| {
                s.max_stale = Duration::from_secs(600);
                s.background_refresh = false;
            })
            .clock(Arc::clone(&clock))
            .build()
            .unwrap();
        let step = |secs: u64| {
            clock.advance(i64::try_from(secs).unwrap());
            advance(Duration::from_secs(secs))
        };

        // Never fetched: not ready.
        let (status, body) = readiness("idp", &source, None, clock.now_unix());
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["issuers"]["idp"]["state"], "unavailable");
        assert_eq!(body["issuers"]["idp"]["keys"], 0);

        // Fetched: fresh and ready.
        source.refresh().await.unwrap();
        step(10).await;
        let (status, body) = readiness("idp", &source, None, clock.now_unix());
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"ready": true, "issuers": {"idp": {"state": "fresh", "keys": 1, "age_seconds": 10}}})
        );
        // /metrics carries the same picture, with the key set's age as of the scrape.
        metrics.refresh_issuers([("idp", &source.health())], clock.now_unix());
        let text = metrics.render();
        assert_eq!(sample(&text, r#"keyward_issuer_ready{issuer="idp"}"#), Some(1.0), "{text}");
        assert_eq!(sample(&text, r#"keyward_jwks_age_seconds{issuer="ready-idp"}"#), Some(10.0), "{text}");

        // The IdP fails; the set expires: stale, still ready, with when and why.
        idp.set_fault(Fault::Status(503));
        step(60).await;
        assert!(source.refresh().await.is_err());
        let (status, body) = readiness("idp", &source, None, clock.now_unix());
        assert_eq!(status, 200, "stale keys still verify: {body}");
        let idp_state = &body["issuers"]["idp"];
        assert_eq!(idp_state["state"], "stale");
        assert_eq!(idp_state["keys"], 1);
        assert_eq!(idp_state["age_seconds"], 70);
        assert_eq!(idp_state["stale_since"], "2026-01-01T00:01:00Z");
        assert!(idp_state["last_error"].as_str().unwrap().contains("503"), "{idp_state}");

        // A failure spike on top: degraded, still ready, naming the dominant reason.
        let (status, body) = readiness("idp", &source, Some(Reason::UnknownKid), clock.now_unix());
        assert_eq!(status, 200);
        assert_eq!(body["issuers"]["idp"]["state"], "degraded");
        assert_eq!(body["issuers"]["idp"]["dominant_failure"], "unknown_kid");
        assert_eq!(body["issuers"]["idp"]["stale_since"], "2026-01-01T00:01:00Z");

        // Past the stale limit: unavailable, not ready, whatever the spike says.
        step(600).await;
        assert!(source.refresh().await.is_err());
        let (status, body) = readiness("idp", &source, Some(Reason::UnknownKid), clock.now_unix());
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["issuers"]["idp"]["state"], "unavailable");
        assert!(body["issuers"]["idp"].get("dominant_failure").is_none(), "{body}");
        assert!(body["issuers"]["idp"]["unavailable_since"].is_string(), "{body}");
        metrics.refresh_issuers([("idp", &source.health())], clock.now_unix());
        assert_eq!(sample(&metrics.render(), r#"keyward_issuer_ready{issuer="idp"}"#), Some(0.0));

        // The IdP comes back: ready again.
        idp.set_fault(Fault::None);
        source.refresh().await.unwrap();
        let (status, body) = readiness("idp", &source, None, clock.now_unix());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["issuers"]["idp"]["state"], "fresh");
        assert!(body["issuers"]["idp"].get("last_error").is_none(), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_issuer_removed_by_a_reload_stops_reporting_ready_or_not() {
        let _turn = super::REFRESHING.lock().await;
        let metrics = Metrics::install().unwrap();
        let idp = MockIdp::start().await.unwrap();
        let source = JwksSource::from_url(idp.jwks_uri())
            .name("removed-idp")
            .clock(FixedClock::at(NOW))
            .configure(|s| s.background_refresh = false)
            .build()
            .unwrap();
        let unready = source.health();
        metrics.refresh_issuers([("kept", &unready), ("removed", &unready)], NOW);
        let text = metrics.render();
        assert_eq!(sample(&text, r#"keyward_issuer_ready{issuer="kept"}"#), Some(0.0), "{text}");
        assert_eq!(sample(&text, r#"keyward_issuer_ready{issuer="removed"}"#), Some(0.0));
        // Never fetched: no age to report.
        assert_eq!(sample(&text, r#"keyward_jwks_age_seconds{issuer="removed-idp"}"#), None);

        metrics.refresh_issuers([("kept", &unready)], NOW);
        let text = metrics.render();
        assert_eq!(sample(&text, r#"keyward_issuer_ready{issuer="kept"}"#), Some(0.0));
        assert!(text.contains("keyward_issuer_ready{issuer=\"removed\"} NaN"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn only_needed_issuers_decide_readiness() {
        let idp = MockIdp::start().await.unwrap();
        let source = JwksSource::from_url(idp.jwks_uri())
            .clock(FixedClock::at(NOW))
            .configure(|s| s.background_refresh = false)
            .build()
            .unwrap();
        let never_fetched = source.health();
        let needed = IssuerReadiness::new(&never_fetched, None, true, NOW);
        let unused = IssuerReadiness::new(&never_fetched, None, false, NOW);
        assert_eq!(Readiness::new([("b".to_owned(), unused.clone())]).status(), 200);
        let both = Readiness::new([("a".to_owned(), needed), ("b".to_owned(), unused)]);
        assert_eq!(both.status(), 503);
        let body: Value = serde_json::from_str(&both.to_json()).unwrap();
        assert_eq!(body["issuers"]["b"]["state"], "unavailable", "shown even when not needed");
    }
}

mod reloading {
    //! The reloader around a "load and swap" function: debounced file changes, requests, bad
    //! configurations counted and survived. Paused clock; each load is awaited on a channel.

    use std::path::PathBuf;
    use std::time::Duration;

    use keyward_serve::ops::metrics::Metrics;
    use keyward_serve::ops::reload::{ReloadOptions, Reloader};
    use tokio::sync::mpsc;
    use tokio::time::sleep;

    use super::sample;

    /// A loader that reads `path`, fails on content starting with `bad` (as the real loader
    /// does, with file:line), and reports each content it read.
    fn loader(path: PathBuf, seen: mpsc::UnboundedSender<String>) -> impl Fn() -> Result<String, String> {
        move || {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let _ = seen.send(text.clone());
            if text.starts_with("bad") {
                return Err(format!("{}:1:1: listen: invalid socket address", path.display()));
            }
            Ok(format!("{} issuers", text.trim()))
        }
    }

    /// Reload counters are process-wide: the tests that count them take turns.
    static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn reloads(result: &str) -> f64 {
        let text = Metrics::install().unwrap().render();
        sample(&text, &format!("keyward_config_reloads_total{{result=\"{result}\"}}")).unwrap_or(0.0)
    }

    #[tokio::test(start_paused = true)]
    async fn debounced_changes_requests_and_bad_files() {
        let _turn = COUNTING.lock().await;
        Metrics::install().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "1").unwrap();
        let (tx, mut seen) = mpsc::unbounded_channel();
        let options = ReloadOptions::new(Some(path.clone()), Duration::from_millis(500))
            .poll_every(Duration::from_millis(50))
            .sighup(false);
        let (ok0, err0) = (reloads("ok"), reloads("error"));
        let (handle, _task) = Reloader::new(loader(path.clone(), tx)).spawn(options);
        sleep(Duration::from_millis(200)).await;

        // Three writes in 200 ms: one reload, of the last one.
        for text in ["2", "3", "4"] {
            std::fs::write(&path, text).unwrap();
            sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen.recv().await.unwrap(), "4");
        sleep(Duration::from_secs(2)).await;
        assert!(seen.try_recv().is_err(), "one reload for three writes");
        assert_eq!(reloads("ok") - ok0, 1.0);

        // A bad file: counted as an error, the reloader keeps running.
        std::fs::write(&path, "bad = [").unwrap();
        assert_eq!(seen.recv().await.unwrap(), "bad = [");
        sleep(Duration::from_secs(1)).await;
        assert_eq!(reloads("error") - err0, 1.0);

        // Fixed: reloaded again.
        std::fs::write(&path, "5").unwrap();
        assert_eq!(seen.recv().await.unwrap(), "5");
        sleep(Duration::from_secs(1)).await;
        assert_eq!(reloads("ok") - ok0, 2.0);

        // A request (what SIGHUP sends) reloads without any change to the file.
        assert!(handle.request());
        assert_eq!(seen.recv().await.unwrap(), "5");
        sleep(Duration::from_secs(1)).await;
        assert!(seen.try_recv().is_err());
        assert_eq!(reloads("ok") - ok0, 3.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loader_is_an_error_not_a_crash() {
        let _turn = COUNTING.lock().await;
        Metrics::install().unwrap();
        let err0 = reloads("error");
        let reloader = Reloader::new(|| -> Result<String, String> { panic!("loader bug") });
        let outcome = reloader.reload(keyward_serve::ops::reload::ReloadTrigger::Requested).await;
        assert!(outcome.unwrap_err().contains("loader failed"));
        assert_eq!(reloads("error") - err0, 1.0);
    }

    #[cfg(unix)]
    #[tokio::test(start_paused = true)]
    async fn sighup_reloads() {
        let _turn = COUNTING.lock().await;
        Metrics::install().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "7").unwrap();
        let (tx, mut seen) = mpsc::unbounded_channel();
        // No file watch: only the signal can trigger this reload.
        let (_handle, _task) =
            Reloader::new(loader(path, tx)).spawn(ReloadOptions::new(None, Duration::ZERO));
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(seen.recv().await.unwrap(), "7");
    }
}
