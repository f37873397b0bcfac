//! Where decisions meet operations: metrics and the failure-spike detector. Each hook is one
//! small function so the ops module wires in with one line each.

use std::time::Duration;

use http::HeaderName;

/// A decision was answered: `keyward_decisions_total{policy,status,reason}` and
/// `keyward_decision_duration_seconds`.
pub(crate) fn decision(policy: &str, status: u16, reason: &'static str, elapsed: Duration) {
    metrics::counter!(
        "keyward_decisions_total",
        "policy" => policy.to_owned(),
        "status" => status_label(status),
        "reason" => reason
    )
    .increment(1);
    metrics::histogram!("keyward_decision_duration_seconds").record(elapsed.as_secs_f64());
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        401 => "401",
        403 => "403",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// The verified-token cache answered (`hit`) or the token was verified.
pub(crate) fn token_cache(hit: bool) {
    if hit {
        metrics::counter!("keyward_token_cache_hits_total").increment(1);
    } else {
        metrics::counter!("keyward_token_cache_misses_total").increment(1);
    }
}

/// A claim header's value held control characters and was sent empty (`header` is from the
/// configuration, never from the token).
pub(crate) fn claim_header_dropped(header: &HeaderName) {
    metrics::counter!("keyward_claim_header_dropped_total", "header" => header.as_str().to_owned())
        .increment(1);
}

/// A CORS preflight was let through unauthenticated.
pub(crate) fn cors_preflight(policy: &str) {
    metrics::counter!("keyward_cors_preflight_bypassed_total", "policy" => policy.to_owned()).increment(1);
}

/// A token was verified (`valid`) or rejected (its reason) for `issuer` (`None`: no configured
/// issuer matched): the failure-spike detector's input.
pub(crate) fn issuer_outcome(issuer: Option<&str>, outcome: &'static str) {
    let _ = (issuer, outcome);
}
