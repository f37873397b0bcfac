//! The gateway's operations module seen from outside: the metric names and labels `/metrics`
//! shows, the `/readyz` answer through an IdP outage, failure-spike episodes and reload.
//!
//! Every test shares the process's one metrics recorder, so each uses its own policy, issuer
//! and header names and asserts on its own series.

use std::time::Duration;

use keyward::Reason;
use keyward_serve::ops::metrics::{DecisionMetrics, DecisionReason, Metrics};

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
