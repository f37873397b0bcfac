//! `/healthz` and `/readyz`: the process serves; the issuers its policies need have keys.
//!
//! Readiness follows key availability only. A stale key set (the IdP is down, last-known-good
//! keys still within their stale limit) is ready: taking replicas out of the load balancer
//! would turn an IdP outage into a full one. A failure spike (degraded) is ready too: bad
//! tokens are the clients' problem, and pulling every replica would hand them an outage.

use std::collections::BTreeMap;

use keyward::Reason;
use keyward::clock::format_rfc3339;
use keyward::source::{Health, HealthState};
use serde::Serialize;

use crate::config::Config;

/// The body of `/healthz` (status 200 while the process serves).
pub const HEALTHZ_BODY: &str = "ok";

/// The `Content-Type` of the `/readyz` body.
pub const READYZ_CONTENT_TYPE: &str = "application/json";

/// Whether `health` has a key set that verifies tokens: fresh, or stale within its stale limit.
pub fn usable(health: &Health) -> bool {
    matches!(health.state, HealthState::Fresh | HealthState::Stale { .. })
}

/// The names of the issuers some policy accepts (the ones readiness waits for), in
/// configuration order. A policy listing no issuer accepts all of them, and so does the
/// implicit default policy.
pub fn needed_issuers(config: &Config) -> Vec<&str> {
    let default_is_implicit = !config.policies.iter().any(|p| p.name == config.default_policy);
    config
        .issuers
        .iter()
        .map(|i| i.name.as_str())
        .filter(|name| {
            default_is_implicit
                || config.policies.iter().any(|p| p.issuers.is_empty() || p.issuers.iter().any(|i| i == name))
        })
        .collect()
}

/// One issuer's line in `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IssuerReadiness {
    /// `fresh`, `stale`, `unavailable` or `degraded` (usable keys, but a failure spike).
    pub state: &'static str,
    /// Usable keys in the current set.
    pub keys: usize,
    /// Seconds since the last successful fetch (absent when never fetched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// When the key set expired without a successful refresh (RFC 3339), while stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<String>,
    /// When the issuer lost its last usable key set (RFC 3339), while unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_since: Option<String>,
    /// The last fetch failure, if the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The most frequent rejection reason of the spike, while degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dominant_failure: Option<&'static str>,
    /// Whether this issuer counts toward readiness.
    #[serde(skip)]
    pub needed: bool,
    /// Whether its key set verifies tokens.
    #[serde(skip)]
    pub usable: bool,
}

impl IssuerReadiness {
    /// The readiness of one issuer from its key source's `health` at `now_unix`; `spike` is the
    /// dominant reason while the failure-spike detector holds it degraded.
    pub fn new(health: &Health, spike: Option<Reason>, needed: bool, now_unix: i64) -> Self {
        let usable = usable(health);
        let state = match (usable, spike) {
            (true, Some(_)) => "degraded",
            (true, None) => health.state.as_str(),
            (false, _) => "unavailable",
        };
        Self {
            state,
            keys: health.keys,
            age_seconds: super::metrics::age_seconds(health, now_unix),
            stale_since: match health.state {
                HealthState::Stale { since_unix } => Some(format_rfc3339(since_unix)),
                _ => None,
            },
            unavailable_since: match health.state {
                HealthState::Unavailable { since_unix } => Some(format_rfc3339(since_unix)),
                _ => None,
            },
            last_error: health.last_error.as_ref().map(ToString::to_string),
            dominant_failure: spike.filter(|_| usable).map(Reason::as_str),
            needed,
            usable,
        }
    }
}

/// The `/readyz` answer: `{"ready": bool, "issuers": {"<name>": {...}}}`, 200 when ready,
/// else 503.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether every needed issuer has a usable key set.
    pub ready: bool,
    /// Each issuer's details, by configured name.
    pub issuers: BTreeMap<String, IssuerReadiness>,
}

impl Readiness {
    /// Readiness over `issuers` (configured name and details); ready when every needed one is
    /// usable.
    pub fn new(issuers: impl IntoIterator<Item = (String, IssuerReadiness)>) -> Self {
        let issuers: BTreeMap<String, IssuerReadiness> = issuers.into_iter().collect();
        let ready = issuers.values().all(|i| i.usable || !i.needed);
        Self { ready, issuers }
    }

    /// 200 when ready, else 503.
    pub fn status(&self) -> u16 {
        if self.ready { 200 } else { 503 }
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and maps cannot fail; the fallback keeps the
        // answer well-formed anyway.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"ready\":{}}}", self.ready))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keyward::source::SourceSettings;

    use super::*;
    use crate::config::{IssuerConfig, IssuerMatcher, PolicyConfig};

    fn issuer(name: &str) -> IssuerConfig {
        IssuerConfig {
            name: name.to_owned(),
            matcher: IssuerMatcher::Exact(format!("https://{name}.example")),
            jwks_uri: None,
            audiences: vec!["api".to_owned()],
            algorithms: Vec::new(),
            required_claims: Vec::new(),
            leeway: Duration::from_secs(60),
            source: SourceSettings::default(),
        }
    }

    fn policy(name: &str, issuers: &[&str]) -> PolicyConfig {
        PolicyConfig {
            name: name.to_owned(),
            issuers: issuers.iter().map(|s| (*s).to_owned()).collect(),
            require: None,
        }
    }

    /// The loader's defaults with exactly these issuers and policies (built by hand, so the
    /// cases the loader would fill in — a policy naming no issuer, no `default` — stay as given).
    fn config(policies: Vec<PolicyConfig>, default_policy: &str) -> Config {
        let base = Config::from_toml_str(
            "[[issuer]]\nname = \"a\"\nissuer = \"https://a.example\"\naudiences = [\"api\"]\n",
            None,
        )
        .unwrap();
        Config {
            issuers: vec![issuer("a"), issuer("b"), issuer("c")],
            policies,
            default_policy: default_policy.to_owned(),
            ..base
        }
    }

    #[test]
    fn readiness_waits_for_the_issuers_some_policy_accepts() {
        let explicit = config(vec![policy("default", &["a"]), policy("admin", &["c"])], "default");
        assert_eq!(needed_issuers(&explicit), ["a", "c"]);
        // A policy that names no issuer accepts every one.
        let open = config(vec![policy("default", &["a"]), policy("any", &[])], "default");
        assert_eq!(needed_issuers(&open), ["a", "b", "c"]);
        // The implicit default policy accepts every issuer.
        let implicit = config(vec![policy("admin", &["c"])], "default");
        assert_eq!(needed_issuers(&implicit), ["a", "b", "c"]);
    }

    #[test]
    fn decision_metrics_cover_every_policy_including_the_implicit_default() {
        let implicit = config(vec![policy("admin", &["c"])], "default");
        let metrics = crate::ops::metrics::DecisionMetrics::from_config(&implicit);
        assert!(metrics.policy("admin").is_some());
        assert!(metrics.policy("default").is_some());
        assert_ne!(metrics.policy("admin"), metrics.policy("default"));
        assert_eq!(metrics.policy("other"), None);
    }
}
