//! Metric names and labels, declared once (README "Observability").
//!
//! keyward records through the `metrics` facade and never installs an exporter; label values
//! come only from closed sets (configured issuer names, reason codes, triggers, results).

/// `keyward_verifications_total{issuer,outcome}`: outcome is `valid` or a reason code.
pub const VERIFICATIONS_TOTAL: &str = "keyward_verifications_total";
/// `keyward_verify_duration_seconds`: time spent in one verification.
pub const VERIFY_DURATION_SECONDS: &str = "keyward_verify_duration_seconds";
/// `keyward_jwks_fetches_total{issuer,trigger,result}`.
pub const JWKS_FETCHES_TOTAL: &str = "keyward_jwks_fetches_total";
/// `keyward_jwks_keys{issuer}`: usable keys, including keys in removal grace.
pub const JWKS_KEYS: &str = "keyward_jwks_keys";
/// `keyward_jwks_age_seconds{issuer}`: age of the key set at the last fetch attempt.
pub const JWKS_AGE_SECONDS: &str = "keyward_jwks_age_seconds";
/// `keyward_jwks_last_success_timestamp_seconds{issuer}`.
pub const JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "keyward_jwks_last_success_timestamp_seconds";
/// `keyward_jwks_removed_keys_verifying{issuer}`: keys no longer published that still verify
/// (awaiting the confirming fetch, or in the opt-in removal grace).
pub const JWKS_REMOVED_KEYS_VERIFYING: &str = "keyward_jwks_removed_keys_verifying";
/// `keyward_key_events_total{issuer,event}`: event is `added`, `removed`, `reappeared`,
/// `retired` or `material_changed`.
pub const KEY_EVENTS_TOTAL: &str = "keyward_key_events_total";

/// Registers descriptions with the installed recorder (call after installing one).
pub fn describe() {
    metrics::describe_counter!(VERIFICATIONS_TOTAL, "Token verifications by issuer and outcome");
    metrics::describe_histogram!(
        VERIFY_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time spent verifying one token"
    );
    metrics::describe_counter!(JWKS_FETCHES_TOTAL, "JWKS fetches by issuer, trigger and result");
    metrics::describe_gauge!(JWKS_KEYS, "Usable keys per issuer, including keys in removal grace");
    metrics::describe_gauge!(JWKS_AGE_SECONDS, metrics::Unit::Seconds, "Age of the key set");
    metrics::describe_gauge!(
        JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS,
        metrics::Unit::Seconds,
        "Unix time of the last successful JWKS fetch"
    );
    metrics::describe_gauge!(
        JWKS_REMOVED_KEYS_VERIFYING,
        "Keys no longer published that still verify (awaiting removal confirmation or in grace)"
    );
    metrics::describe_counter!(KEY_EVENTS_TOTAL, "Keys added to, removed from or reappearing in a key set");
}
