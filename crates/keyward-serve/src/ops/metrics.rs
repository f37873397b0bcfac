//! The gateway's Prometheus metrics: one recorder per process, per-decision handles built once
//! per configuration, and gauges brought up to date at scrape time.
//!
//! Label values never come from a request: policy, issuer and header names come from the
//! configuration, reasons and statuses from the closed set of [`DecisionReason`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use keyward::Reason;
use keyward::source::Health;
use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Config;

/// `keyward_decisions_total{policy,status,reason}`: every `/auth` answer.
pub const DECISIONS_TOTAL: &str = "keyward_decisions_total";
/// `keyward_decision_duration_seconds{policy}`: time from request to decision.
pub const DECISION_DURATION_SECONDS: &str = "keyward_decision_duration_seconds";
/// `keyward_token_cache_hits_total`: decisions served from the verified-token cache.
pub const TOKEN_CACHE_HITS_TOTAL: &str = "keyward_token_cache_hits_total";
/// `keyward_token_cache_misses_total`: tokens that had to be verified.
pub const TOKEN_CACHE_MISSES_TOTAL: &str = "keyward_token_cache_misses_total";
/// `keyward_issuer_ready{issuer}`: 1 while the issuer has a usable key set, else 0.
pub const ISSUER_READY: &str = "keyward_issuer_ready";
/// `keyward_config_reloads_total{result}`: result is `ok` or `error`.
pub const CONFIG_RELOADS_TOTAL: &str = "keyward_config_reloads_total";
/// `keyward_cors_preflight_bypassed_total`: CORS preflights let through unauthenticated.
pub const CORS_PREFLIGHT_BYPASSED_TOTAL: &str = "keyward_cors_preflight_bypassed_total";
/// `keyward_claim_header_dropped_total{header}`: claim values dropped for control characters.
pub const CLAIM_HEADER_DROPPED_TOTAL: &str = "keyward_claim_header_dropped_total";

/// Histogram buckets (seconds) for decisions and verifications: a cached decision takes tens of
/// microseconds, an uncached RS256 one well under a millisecond, a decision waiting on a fetch
/// up to the 1 s deadline.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `policy` label of decisions for a policy name that is not configured (the name comes
/// from the request URL, so it is never a label value). Empty, so it cannot collide with a
/// configured policy.
pub const UNKNOWN_POLICY_LABEL: &str = "";

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Another `metrics` recorder was installed in this process first.
    #[error("another metrics recorder is already installed: {0}")]
    RecorderAlreadySet(String),
}

/// The process's Prometheus recorder: installed once, rendered for `/metrics`.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// Issuers whose readiness was last reported, to mark the ones a reload removed.
    reported: Arc<Mutex<BTreeSet<String>>>,
}

static INSTALLED: OnceLock<Result<Metrics, String>> = OnceLock::new();

impl Metrics {
    /// Installs the Prometheus recorder as the global `metrics` recorder (the first call does;
    /// later calls return the same recorder) and describes every metric. Call it before building
    /// verifiers or [`DecisionMetrics`]: handles taken before it record nowhere.
    pub fn install() -> Result<Self, MetricsError> {
        let installed = INSTALLED.get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            builder = builder
                .set_buckets_for_metric(
                    Matcher::Full(keyward::telemetry::VERIFY_DURATION_SECONDS.to_owned()),
                    &DURATION_BUCKETS,
                )
                .map_err(|e| e.to_string())?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            describe();
            Ok(Self { handle, reported: Arc::default() })
        });
        match installed {
            Ok(metrics) => Ok(metrics.clone()),
            Err(e) => Err(MetricsError::RecorderAlreadySet(e.clone())),
        }
    }

    /// The Prometheus text exposition of every metric, for `/metrics`
    /// (`Content-Type: text/plain; version=0.0.4`). Call [`Metrics::refresh_issuers`] first so
    /// key-set ages are current.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        render_decision_durations(&mut text);
        text
    }

    /// Brings per-issuer gauges up to date for a scrape: `keyward_jwks_age_seconds` (the
    /// library sets it only at fetch attempts; labelled with the source name, as the library
    /// does) and `keyward_issuer_ready` (labelled with the configured issuer name). Pass every
    /// configured issuer: one reported before and missing now (a reload removed it) gets
    /// `keyward_issuer_ready` NaN, so an alert on `== 0` does not fire for it forever (a
    /// series cannot be deleted).
    pub fn refresh_issuers<'a>(
        &self,
        issuers: impl IntoIterator<Item = (&'a str, &'a Health)>,
        now_unix: i64,
    ) {
        let mut now_reported = BTreeSet::new();
        for (name, health) in issuers {
            if let Some(age) = age_seconds(health, now_unix) {
                metrics::gauge!(keyward::telemetry::JWKS_AGE_SECONDS, "issuer" => health.name.clone())
                    .set(age as f64);
            }
            let ready = if super::ready::usable(health) { 1.0 } else { 0.0 };
            metrics::gauge!(ISSUER_READY, "issuer" => name.to_owned()).set(ready);
            now_reported.insert(name.to_owned());
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in reported.difference(&now_reported) {
            metrics::gauge!(ISSUER_READY, "issuer" => gone.clone()).set(f64::NAN);
        }
        *reported = now_reported;
    }

    /// Drains histogram samples into their buckets and forgets idle series. Rendering does the
    /// same, so this matters only when nobody scrapes: run it every few seconds
    /// ([`Metrics::spawn_upkeep`]) so memory stays bounded.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`Metrics::run_upkeep`] every `every` on the current tokio runtime until aborted.
    pub fn spawn_upkeep(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        let every = every.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                handle.run_upkeep();
            }
        })
    }
}

/// Seconds since the key set was last fetched successfully, never negative.
pub(crate) fn age_seconds(health: &Health, now_unix: i64) -> Option<i64> {
    health.last_success_unix.map(|t| now_unix.saturating_sub(t).max(0))
}

/// Registers the description (`# HELP`) of every metric the gateway and the library record.
pub fn describe() {
    keyward::telemetry::describe();
    metrics::describe_counter!(DECISIONS_TOTAL, "Forward-auth decisions by policy, HTTP status and reason");
    metrics::describe_counter!(TOKEN_CACHE_HITS_TOTAL, "Decisions served from the verified-token cache");
    metrics::describe_counter!(TOKEN_CACHE_MISSES_TOTAL, "Tokens not in the verified-token cache");
    metrics::describe_gauge!(
        ISSUER_READY,
        "1 while the issuer has a usable key set (fresh or stale), else 0"
    );
    metrics::describe_counter!(CONFIG_RELOADS_TOTAL, "Configuration reloads by result (ok, error)");
    metrics::describe_counter!(
        CORS_PREFLIGHT_BYPASSED_TOTAL,
        "CORS preflight requests let through without authentication"
    );
    metrics::describe_counter!(
        CLAIM_HEADER_DROPPED_TOTAL,
        "Claim values not sent in their header because they held control characters"
    );
}

/// `# HELP` of [`DECISION_DURATION_SECONDS`] (rendered by [`render_decision_durations`]).
const DECISION_DURATION_HELP: &str = "Time from receiving an auth request to its decision";

/// `keyward_decision_duration_seconds` for one policy, kept as counts over [`DURATION_BUCKETS`]:
/// recording is a bucket search and two atomic adds. The exporter's own histograms store every
/// sample until the next scrape or upkeep, which cost a cached decision about a tenth of its
/// time and held tens of bytes per request between upkeeps.
#[derive(Debug, Default)]
struct DurationHistogram {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    counts: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// Sum of the observations in nanoseconds (wraps after 584 years of summed decision time).
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket =
            DURATION_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(DURATION_BUCKETS.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends this histogram's `_bucket`, `_sum` and `_count` lines for `policy`.
    fn render(&self, policy: &str, out: &mut String) {
        let name = DECISION_DURATION_SECONDS;
        let policy = label_value(policy);
        let mut cumulative = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(count.load(Ordering::Relaxed));
            match DURATION_BUCKETS.get(index) {
                Some(bound) => {
                    let _ = writeln!(out, r#"{name}_bucket{{policy="{policy}",le="{bound}"}} {cumulative}"#);
                }
                None => {
                    let _ = writeln!(out, r#"{name}_bucket{{policy="{policy}",le="+Inf"}} {cumulative}"#);
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, r#"{name}_sum{{policy="{policy}"}} {sum}"#);
        let _ = writeln!(out, r#"{name}_count{{policy="{policy}"}} {cumulative}"#);
    }
}

/// Every policy's decision histogram, by `policy` label: one series per name for the life of
/// the process (a reload keeps counting into it, as Prometheus expects of a histogram).
static DECISION_DURATIONS: Mutex<BTreeMap<String, Arc<DurationHistogram>>> = Mutex::new(BTreeMap::new());

/// The decision histogram of `policy`, created on first use.
fn decision_duration(policy: &str) -> Arc<DurationHistogram> {
    let mut all = DECISION_DURATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(all.entry(policy.to_owned()).or_default())
}

/// Appends the decision histograms (when any exists) to the exporter's text.
fn render_decision_durations(out: &mut String) {
    let all = DECISION_DURATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if all.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "# HELP {DECISION_DURATION_SECONDS} {DECISION_DURATION_HELP}");
    let _ = writeln!(out, "# TYPE {DECISION_DURATION_SECONDS} histogram");
    for (policy, histogram) in all.iter() {
        histogram.render(policy, out);
    }
}

/// `text` as a label value: backslash, double quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Why a decision came out as it did: the `reason` label of `keyward_decisions_total`, a
/// closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionReason {
    /// The request was let through (`allowed`, 200).
    Allowed,
    /// No token was sent (`missing_token`, 401).
    MissingToken,
    /// Two different tokens were sent (`ambiguous_token`, 401).
    AmbiguousToken,
    /// The credentials could not hold a token (`invalid_request`, 401).
    InvalidRequest,
    /// The token was rejected with the library's reason (401; `keys_unavailable` 503).
    Token(Reason),
    /// The token verified but the policy's requirement failed (`insufficient_scope`, 403).
    InsufficientScope,
    /// Path rules are configured and none matched (`no_rule`, 403).
    NoRule,
    /// The token verified for an issuer the policy does not accept (`issuer_not_allowed`, 403).
    IssuerNotAllowed,
    /// The URL names a policy that is not configured (`unknown_policy`, 500).
    UnknownPolicy,
}

impl From<Reason> for DecisionReason {
    fn from(reason: Reason) -> Self {
        Self::Token(reason)
    }
}

/// Reasons that are not a library [`Reason`], in slot order.
const GATEWAY_REASONS: [DecisionReason; 8] = [
    DecisionReason::Allowed,
    DecisionReason::MissingToken,
    DecisionReason::AmbiguousToken,
    DecisionReason::InvalidRequest,
    DecisionReason::InsufficientScope,
    DecisionReason::NoRule,
    DecisionReason::IssuerNotAllowed,
    DecisionReason::UnknownPolicy,
];

/// Slots per policy: the gateway's reasons, then every library reason.
const SLOTS: usize = GATEWAY_REASONS.len() + Reason::ALL.len();

impl DecisionReason {
    /// The label value: `allowed`, a gateway code, or the library's reason code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::MissingToken => "missing_token",
            Self::AmbiguousToken => "ambiguous_token",
            Self::InvalidRequest => "invalid_request",
            Self::Token(reason) => reason.as_str(),
            Self::InsufficientScope => "insufficient_scope",
            Self::NoRule => "no_rule",
            Self::IssuerNotAllowed => "issuer_not_allowed",
            Self::UnknownPolicy => "unknown_policy",
        }
    }

    /// The HTTP status the gateway answers with for this reason (the handles are prebuilt for
    /// it; recording another status still works, on a slower path).
    pub const fn status(self) -> u16 {
        match self {
            Self::Allowed => 200,
            Self::Token(Reason::KeysUnavailable) => 503,
            Self::MissingToken | Self::AmbiguousToken | Self::InvalidRequest | Self::Token(_) => 401,
            Self::InsufficientScope | Self::NoRule | Self::IssuerNotAllowed => 403,
            Self::UnknownPolicy => 500,
        }
    }

    /// The reason whose label is `code` (`allowed`, `missing_token`, `unknown_kid`, …). For
    /// wiring and tests: on the request path keep the enum, which records without comparing
    /// strings.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::all().find(|r| r.as_str() == code)
    }

    /// Every reason, in slot order.
    pub fn all() -> impl Iterator<Item = Self> {
        GATEWAY_REASONS.into_iter().chain(Reason::ALL.into_iter().map(Self::Token))
    }

    /// The handle slot: an index, no hashing.
    fn slot(self) -> Option<usize> {
        match self {
            Self::Allowed => Some(0),
            Self::MissingToken => Some(1),
            Self::AmbiguousToken => Some(2),
            Self::InvalidRequest => Some(3),
            Self::InsufficientScope => Some(4),
            Self::NoRule => Some(5),
            Self::IssuerNotAllowed => Some(6),
            Self::UnknownPolicy => Some(7),
            Self::Token(reason) => {
                Reason::ALL.iter().position(|r| *r == reason).map(|i| i + GATEWAY_REASONS.len())
            }
        }
    }
}

/// A policy's index in a [`DecisionMetrics`], looked up once per configuration with
/// [`DecisionMetrics::policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyId(usize);

/// One policy's prebuilt handles.
#[derive(Debug)]
struct PolicyHandles {
    name: String,
    duration: Arc<DurationHistogram>,
    /// One counter per [`DecisionReason`] slot, labelled with the reason's usual status.
    decisions: Vec<Counter>,
}

impl PolicyHandles {
    fn new(name: &str) -> Self {
        let mut decisions = Vec::with_capacity(SLOTS);
        decisions.extend(DecisionReason::all().map(|reason| {
            metrics::counter!(DECISIONS_TOTAL,
                "policy" => name.to_owned(),
                "status" => status_label(reason.status()),
                "reason" => reason.as_str())
        }));
        Self { name: name.to_owned(), duration: decision_duration(name), decisions }
    }
}

/// The per-request metrics of one configuration, built once (at start and on each reload):
/// recording a decision is an index and an atomic add, with no label allocated or hashed.
///
/// Every (policy, reason) series exists from the start at 0, so alerts on `increase()` see the
/// first 503 too. Build it after [`Metrics::install`].
#[derive(Debug)]
pub struct DecisionMetrics {
    policies: Vec<PolicyHandles>,
    unknown_policy: Counter,
    unknown_policy_duration: Arc<DurationHistogram>,
    cache_hits: Counter,
    cache_misses: Counter,
    cors_preflight: Counter,
    claim_headers: Vec<Counter>,
}

impl DecisionMetrics {
    /// Handles for `policies` (configured names) and the claim `headers` (configured names,
    /// in the order [`DecisionMetrics::claim_header_dropped`] indexes them).
    pub fn new<'a>(
        policies: impl IntoIterator<Item = &'a str>,
        headers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut handles: Vec<PolicyHandles> = Vec::new();
        for name in policies {
            if !handles.iter().any(|p| p.name == name) {
                handles.push(PolicyHandles::new(name));
            }
        }
        Self {
            policies: handles,
            unknown_policy: metrics::counter!(DECISIONS_TOTAL,
                "policy" => UNKNOWN_POLICY_LABEL,
                "status" => status_label(500),
                "reason" => DecisionReason::UnknownPolicy.as_str()),
            unknown_policy_duration: decision_duration(UNKNOWN_POLICY_LABEL),
            cache_hits: metrics::counter!(TOKEN_CACHE_HITS_TOTAL),
            cache_misses: metrics::counter!(TOKEN_CACHE_MISSES_TOTAL),
            cors_preflight: metrics::counter!(CORS_PREFLIGHT_BYPASSED_TOTAL),
            claim_headers: headers
                .into_iter()
                .map(|h| metrics::counter!(CLAIM_HEADER_DROPPED_TOTAL, "header" => h.to_ascii_lowercase()))
                .collect(),
        }
    }

    /// Handles for every policy of `config` (and its default policy, which may be implicit)
    /// and its claim headers, in `config.claim_headers` order.
    pub fn from_config(config: &Config) -> Self {
        let policies = config
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .chain(std::iter::once(config.default_policy.as_str()));
        Self::new(policies, config.claim_headers.iter().map(|h| h.header.as_str()))
    }

    /// The id of a configured policy, to keep next to it; `None` when it is not configured.
    pub fn policy(&self, name: &str) -> Option<PolicyId> {
        self.policies.iter().position(|p| p.name == name).map(PolicyId)
    }

    /// Records one decision of `policy`: `reason`, the HTTP `status` answered, and how long
    /// deciding took. An id from another configuration's `DecisionMetrics` is ignored.
    pub fn record(&self, policy: PolicyId, reason: DecisionReason, status: u16, elapsed: Duration) {
        let Some(handles) = self.policies.get(policy.0) else { return };
        handles.duration.record(elapsed);
        match reason.slot().and_then(|slot| handles.decisions.get(slot)) {
            Some(counter) if status == reason.status() => counter.increment(1),
            // A status this reason does not usually get: still a closed set, labelled on demand.
            _ => metrics::counter!(DECISIONS_TOTAL,
                "policy" => handles.name.clone(),
                "status" => status_label(status),
                "reason" => reason.as_str())
            .increment(1),
        }
    }

    /// Records a request for a policy that is not configured (500 `unknown_policy`), under the
    /// policy label [`UNKNOWN_POLICY_LABEL`]: the requested name is never a label.
    pub fn record_unknown_policy(&self, elapsed: Duration) {
        self.unknown_policy_duration.record(elapsed);
        self.unknown_policy.increment(1);
    }

    /// Counts a decision served from the verified-token cache.
    pub fn cache_hit(&self) {
        self.cache_hits.increment(1);
    }

    /// Counts a token that was not in the verified-token cache.
    pub fn cache_miss(&self) {
        self.cache_misses.increment(1);
    }

    /// Counts a CORS preflight let through unauthenticated.
    pub fn cors_preflight_bypassed(&self) {
        self.cors_preflight.increment(1);
    }

    /// Counts a claim value dropped from the claim header at `index` (in the order given to
    /// [`DecisionMetrics::new`], i.e. `config.claim_headers`).
    pub fn claim_header_dropped(&self, index: usize) {
        if let Some(counter) = self.claim_headers.get(index) {
            counter.increment(1);
        }
    }
}

/// The `status` label: a static string for the statuses the gateway answers with.
fn status_label(status: u16) -> String {
    match status {
        200 => "200",
        401 => "401",
        403 => "403",
        500 => "500",
        503 => "503",
        other => return other.to_string(),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_label() {
        let all: Vec<DecisionReason> = DecisionReason::all().collect();
        assert_eq!(all.len(), SLOTS);
        for (i, reason) in all.iter().enumerate() {
            assert_eq!(reason.slot(), Some(i), "{reason:?}");
        }
        let mut labels: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), SLOTS, "labels are unique");
        for reason in all {
            assert_eq!(DecisionReason::from_code(reason.as_str()), Some(reason));
        }
        assert_eq!(DecisionReason::from_code("valid"), None);
        assert_eq!(DecisionReason::from(Reason::Expired), DecisionReason::Token(Reason::Expired));
    }

    #[test]
    fn decision_histograms_count_inclusive_buckets_and_escape_the_policy() {
        let histogram = DurationHistogram::default();
        histogram.record(Duration::from_micros(100)); // exactly on the 0.0001 bound: in it
        histogram.record(Duration::from_micros(101));
        histogram.record(Duration::from_secs(60)); // past every bound: +Inf only
        let mut text = String::new();
        histogram.render("a\"b\\c\nd", &mut text);
        let line = |series: &str| {
            text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')).map(str::to_owned)
        };
        let policy = r#"policy="a\"b\\c\nd""#;
        let bucket = |le: &str| line(&format!("{DECISION_DURATION_SECONDS}_bucket{{{policy},le=\"{le}\"}}"));
        assert_eq!(bucket("0.00005").as_deref(), Some("0"), "{text}");
        assert_eq!(bucket("0.0001").as_deref(), Some("1"), "{text}");
        assert_eq!(bucket("0.00025").as_deref(), Some("2"));
        assert_eq!(bucket("2.5").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("3"));
        assert_eq!(line(&format!("{DECISION_DURATION_SECONDS}_count{{{policy}}}")).as_deref(), Some("3"));
        let sum: f64 =
            line(&format!("{DECISION_DURATION_SECONDS}_sum{{{policy}}}")).unwrap().parse().unwrap();
        assert!((sum - 60.000_201).abs() < 1e-9, "{sum}");
        assert_eq!(text.lines().count(), DURATION_BUCKETS.len() + 3, "one line per bucket, +Inf, sum, count");
    }

    #[test]
    fn statuses_follow_the_issue() {
        assert_eq!(DecisionReason::Allowed.status(), 200);
        assert_eq!(DecisionReason::MissingToken.status(), 401);
        assert_eq!(DecisionReason::Token(Reason::UnknownKid).status(), 401);
        assert_eq!(DecisionReason::Token(Reason::KeysUnavailable).status(), 503);
        assert_eq!(DecisionReason::InsufficientScope.status(), 403);
        assert_eq!(DecisionReason::NoRule.status(), 403);
        assert_eq!(DecisionReason::UnknownPolicy.status(), 500);
        assert_eq!(DecisionReason::Token(Reason::Expired).as_str(), "expired");
    }
}
