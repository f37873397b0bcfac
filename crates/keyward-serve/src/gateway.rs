//! The decision for one `/auth` request: which policy, which token, verified (or found in the
//! verified-token cache), then the policy's issuers and requirement, on every request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri};
use keyward::source::{HealthState, JwksSource, KeyEventKind};
use keyward::{Clock, Error, Issuer, Policy, Reason, SystemClock, Verifier, VerifierEvent};
use keyward_tower::Rejection;
use tokio::task::JoinHandle;

use crate::cache::{Entry, TokenCache, token_hash};
use crate::config::{Config, IssuerConfig, IssuerMatcher, PathRule};
use crate::headers::{ClaimValue, claim_value};
use crate::ops::metrics::{DecisionMetrics, DecisionReason, Metrics, PolicyId};
use crate::ops::ready::{IssuerReadiness, Readiness, needed_issuers};
use crate::ops::spike::{IssuerId, SpikeDetector};
use crate::request::{self, Found, Original, Sources};
use crate::respond::{self, Denial};

/// Why a configuration could not be put into service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An issuer's key source or verification policy was refused by the library.
    #[error("issuer {issuer}: {source}")]
    Issuer {
        /// The issuer's name.
        issuer: String,
        /// What the library said.
        source: keyward::ConfigError,
    },
    /// A policy or rule names something that does not exist (validation should have caught it).
    #[error("{0}")]
    Inconsistent(String),
}

/// A clock shared by every verifier of a gateway (the system clock, or a test's).
#[derive(Clone, Debug)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now_unix(&self) -> i64 {
        self.0.now_unix()
    }
}

/// How a token's unverified `iss` picks an issuer (the verifier then checks it for real).
#[derive(Debug)]
enum Match {
    Exact(String),
    Template { prefix: String, suffix: String },
}

impl Match {
    fn of(matcher: &IssuerMatcher) -> Self {
        match matcher {
            IssuerMatcher::Exact(iss) => Self::Exact(iss.clone()),
            IssuerMatcher::Template { template, .. } => {
                let (prefix, suffix) = template.split_once("{tenantid}").unwrap_or((template, ""));
                Self::Template { prefix: prefix.to_owned(), suffix: suffix.to_owned() }
            }
        }
    }

    fn matches(&self, iss: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == iss,
            Self::Template { prefix, suffix } => {
                iss.len() > prefix.len() + suffix.len()
                    && iss.starts_with(prefix.as_str())
                    && iss.ends_with(suffix.as_str())
            }
        }
    }
}

/// One configured issuer in service.
#[derive(Debug)]
pub(crate) struct IssuerRt {
    pub(crate) config: IssuerConfig,
    pub(crate) source: JwksSource,
    pub(crate) verifier: Verifier,
    matcher: Match,
    spike: Option<IssuerId>,
}

/// One policy in service, with its challenge prebuilt.
#[derive(Debug)]
pub(crate) struct PolicyRt {
    pub(crate) name: Arc<str>,
    /// Allowed, by issuer index.
    allowed: Vec<bool>,
    require: Option<keyward_tower::Requirement>,
    /// `Bearer realm="<name>"`.
    pub(crate) challenge: HeaderValue,
    metrics: Option<PolicyId>,
}

/// A configuration in service: verifiers, policies, the token cache and the tasks that keep
/// the cache honest. Replaced whole on reload.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) issuers: Vec<IssuerRt>,
    pub(crate) policies: Vec<PolicyRt>,
    default_policy: usize,
    rules: Vec<(PathRule, usize)>,
    cache: Arc<TokenCache>,
    claim_headers: Vec<HeaderName>,
    /// The headers of a bypassed CORS preflight's 200 (every claim header empty).
    preflight_headers: HeaderMap,
    clock: SharedClock,
    tasks: Vec<JoinHandle<()>>,
    decisions: DecisionMetrics,
    spikes: SpikeDetector,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Decisions counted since start (also exported as metrics by the ops module).
#[derive(Debug, Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The token cache's counters and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions that verified the token (the cache did not have it).
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

/// The forward-auth gateway: answers `/auth` requests for the configuration in service,
/// which [`Gateway::reload`] replaces atomically.
#[derive(Debug)]
pub struct Gateway {
    current: ArcSwap<Runtime>,
    clock: SharedClock,
    stats: Stats,
    /// The Prometheus recorder (`None` when another recorder was installed first).
    metrics: Option<Metrics>,
}

/// The decision of one request, for metrics.
pub(crate) struct Decided {
    pub(crate) response: Response<Body>,
    pub(crate) reason: DecisionReason,
}

impl Gateway {
    /// Puts `config` into service with the system clock. Must run inside a tokio runtime
    /// (key sources start their fetches on it).
    pub fn new(config: Config) -> Result<Self, BuildError> {
        Self::with_clock(config, SystemClock)
    }

    /// As [`Gateway::new`], judging `exp`/`nbf` and cache lifetimes by `clock` (tests, replays).
    pub fn with_clock(config: Config, clock: impl Clock) -> Result<Self, BuildError> {
        // Installed before any verifier exists: handles taken earlier would record nowhere.
        let metrics = match Metrics::install() {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!("metrics are not recorded: {e}");
                None
            }
        };
        let clock = SharedClock(Arc::new(clock));
        let runtime = Runtime::build(config, &clock, None)?;
        Ok(Self { current: ArcSwap::from_pointee(runtime), clock, stats: Stats::default(), metrics })
    }

    /// Replaces the configuration in service. Issuers whose configuration is unchanged keep
    /// their key sources (and cached key sets); the token cache starts empty. On error the
    /// old configuration keeps serving.
    pub fn reload(&self, config: Config) -> Result<(), BuildError> {
        let old = self.current.load_full();
        if config.listen != old.config.listen {
            tracing::warn!(
                listen = %config.listen,
                serving = %old.config.listen,
                "the listen address is read at start only: restart to move it"
            );
        }
        let runtime = Runtime::build(config, &self.clock, Some(&old))?;
        self.current.store(Arc::new(runtime));
        Ok(())
    }

    /// The configuration in service.
    pub fn config(&self) -> Config {
        self.current.load().config.clone()
    }

    /// The verified-token cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.stats.hits.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            entries: self.current.load().cache.len(),
        }
    }

    /// Each issuer's name and key-set health, in configuration order (for `/readyz`).
    pub fn issuer_health(&self) -> Vec<(String, keyward::source::Health)> {
        let rt = self.current.load();
        rt.issuers.iter().map(|i| (i.config.name.clone(), i.source.health())).collect()
    }

    /// The `/readyz` report: ready when every issuer some policy accepts has a usable key set
    /// (fresh, or stale within its limit); per issuer its state, marked degraded during a
    /// failure spike.
    pub fn readiness(&self) -> Readiness {
        let rt = self.current.load();
        let needed = needed_issuers(&rt.config);
        let (now_unix, now) = (rt.clock.now_unix(), tokio::time::Instant::now());
        Readiness::new(rt.issuers.iter().map(|issuer| {
            let name = &issuer.config.name;
            let spike = issuer.spike.and_then(|id| rt.spikes.degraded(id, now));
            let health = issuer.source.health();
            let line = IssuerReadiness::new(&health, spike, needed.contains(&name.as_str()), now_unix);
            (name.clone(), line)
        }))
    }

    /// Keeps the metrics' memory bounded when nobody scrapes `/metrics`: histogram samples are
    /// drained into their buckets every few seconds (`None` when metrics are not recorded).
    pub fn spawn_metrics_upkeep(&self) -> Option<JoinHandle<()>> {
        self.metrics.as_ref().map(|m| m.spawn_upkeep(std::time::Duration::from_secs(5)))
    }

    /// The Prometheus text exposition for `/metrics` (`None` when another metrics recorder
    /// owns the process).
    pub fn metrics_text(&self) -> Option<String> {
        let metrics = self.metrics.as_ref()?;
        let rt = self.current.load();
        let health: Vec<(&str, keyward::source::Health)> =
            rt.issuers.iter().map(|i| (i.config.name.as_str(), i.source.health())).collect();
        metrics.refresh_issuers(health.iter().map(|(name, h)| (*name, h)), rt.clock.now_unix());
        Some(metrics.render())
    }

    /// Decides one `/auth` request from `peer`: the response for the proxy.
    pub async fn check(
        &self,
        peer: IpAddr,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Response<Body> {
        let started = tokio::time::Instant::now();
        // A guard, not a clone of the `Arc`: no shared reference count written on every request.
        let rt = self.current.load();
        let (policy, decided) = self.decide(&rt, peer, method, uri, headers, started).await;
        let status = decided.response.status().as_u16();
        match policy.and_then(|p| rt.policies.get(p)).and_then(|p| p.metrics) {
            Some(id) => rt.decisions.record(id, decided.reason, status, started.elapsed()),
            None => rt.decisions.record_unknown_policy(started.elapsed()),
        }
        decided.response
    }

    /// The policy index chosen (when one was) and the decision.
    async fn decide(
        &self,
        rt: &Runtime,
        peer: IpAddr,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        started: tokio::time::Instant,
    ) -> (Option<usize>, Decided) {
        let config = &rt.config;
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let (named, own_uri) = split_auth_path(uri.path(), path_and_query);
        // The original request is read only when something needs it: path rules, the query
        // token, or a CORS preflight (whose headers are looked at first). A plain decision
        // looks at no forwarding header at all.
        let needs_rules = named.is_none() && !rt.rules.is_empty();
        let maybe_preflight = config.cors_preflight_bypass && request::has_preflight_headers(headers);
        let original = if needs_rules || maybe_preflight || config.tokens.query_parameter {
            let trusted = request::trusted(peer, &config.trusted_proxies);
            match request::original(method, headers, own_uri, trusted) {
                Ok(original) => Some(original),
                Err(why) => {
                    let policy = named.and_then(|n| rt.policy_index(n)).unwrap_or(rt.default_policy);
                    let denial = Denial::InvalidRequest { code: "invalid_request", why };
                    return (
                        Some(policy),
                        respond::deny(rt.policy(policy), &denial, config.error_description),
                    );
                }
            }
        } else {
            None
        };
        let policy = match named {
            Some(name) => match rt.policy_index(name) {
                Some(index) => index,
                None => return (None, respond::unknown_policy()),
            },
            None if rt.rules.is_empty() => rt.default_policy,
            // A backend may resolve `/public/../admin` to `/admin`: rules cannot judge such a
            // path, so it is refused rather than matched as written.
            None if original.as_ref().is_some_and(|o| request::has_dot_segment(o.path())) => {
                let denial = Denial::InvalidRequest {
                    code: "invalid_request",
                    why: "the original path has a dot segment (. or ..), which path rules cannot judge",
                };
                let policy = rt.default_policy;
                return (Some(policy), respond::deny(rt.policy(policy), &denial, config.error_description));
            }
            None => match original.as_ref().and_then(|o| rt.rule_for(o)) {
                Some(index) => index,
                // Counted under the default policy: the one `/auth` stands for.
                None => return (Some(rt.default_policy), respond::no_rule()),
            },
        };
        let policy_rt = rt.policy(policy);
        if maybe_preflight && original.as_ref().is_some_and(|o| o.method == Method::OPTIONS) {
            rt.decisions.cors_preflight_bypassed();
            return (Some(policy), respond::allow(&rt.preflight_headers));
        }
        let sources = Sources {
            cookies: &config.tokens.cookies,
            query: config.tokens.query_parameter,
            max_len: keyward::DEFAULT_MAX_TOKEN_LEN,
        };
        let query = original.as_ref().and_then(Original::query);
        let token = match request::token(headers, query, &sources) {
            Found::None => {
                return (
                    Some(policy),
                    respond::deny(policy_rt, &Denial::MissingToken, config.error_description),
                );
            }
            Found::Invalid(code, why) => {
                let denial = Denial::InvalidRequest { code, why };
                return (Some(policy), respond::deny(policy_rt, &denial, config.error_description));
            }
            Found::Token(token) => token,
        };
        let entry = match self.verified(rt, &token, started).await {
            Ok(entry) => entry,
            Err(denial) => {
                return (Some(policy), respond::deny(policy_rt, &denial, config.error_description));
            }
        };
        if !policy_rt.allowed.get(entry.issuer).copied().unwrap_or(false) {
            return (
                Some(policy),
                respond::deny(policy_rt, &Denial::IssuerNotAllowed, config.error_description),
            );
        }
        if let Some(require) = &policy_rt.require
            && let Err(unmet) = require.check(entry.verified.claims())
        {
            let denial =
                Denial::Rejected(Rejection::InsufficientScope { scope: unmet.scope, detail: unmet.detail });
            return (Some(policy), respond::deny(policy_rt, &denial, config.error_description));
        }
        for (index, value) in entry.headers.iter().enumerate() {
            if *value == ClaimValue::Dropped {
                rt.decisions.claim_header_dropped(index);
            }
        }
        (Some(policy), respond::allow(&entry.response))
    }

    /// The verified token: from the cache, or verified now (waiting at most the decision
    /// deadline for a key fetch, which goes on in the background either way).
    async fn verified(
        &self,
        rt: &Runtime,
        token: &[u8],
        started: tokio::time::Instant,
    ) -> Result<Arc<Entry>, Denial> {
        let now = rt.clock.now_unix();
        let epoch = rt.cache.epoch();
        let hash = if rt.cache.enabled() && token.len() <= keyward::DEFAULT_MAX_TOKEN_LEN {
            let hash = token_hash(token);
            if let Some(entry) = rt.cache.get(&hash, now) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                rt.decisions.cache_hit();
                // A valid token from the cache is an outcome like any other: without it, a
                // failure spike's ratio would leave out every reused valid token.
                if let Some(issuer) = rt.issuers.get(entry.issuer) {
                    rt.spike(issuer, Ok(()), started);
                }
                return Ok(entry);
            }
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            rt.decisions.cache_miss();
            Some(hash)
        } else {
            None
        };
        let token =
            request::checked(token).map_err(|why| Denial::InvalidRequest { code: "invalid_request", why })?;
        // A token matching no configured issuer is nobody's outcome (its volume cannot make
        // a configured issuer look degraded).
        let index = rt.select_issuer(token).map_err(|e| Denial::Rejected(Rejection::from_error(e)))?;
        let Some(issuer) = rt.issuers.get(index) else {
            // `select_issuer` answers indices of this runtime only.
            let e = Error::new(Reason::IssuerMismatch, "iss is not a configured issuer");
            return Err(Denial::Rejected(Rejection::from_error(e)));
        };
        let outcome = match issuer.verifier.verify_now(token) {
            Ok(outcome) => outcome,
            // The fetch runs on its own task: dropping this wait at the deadline leaves it going.
            // Boxed: the rare waiting path does not make every decision's future large.
            Err(pending) => {
                match Box::pin(tokio::time::timeout(rt.config.decision_deadline, pending.wait())).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        rt.spike(issuer, Err(Reason::KeysUnavailable), tokio::time::Instant::now());
                        return Err(Denial::Deadline);
                    }
                }
            }
        };
        let verified = outcome.map_err(|e| {
            rt.spike(issuer, Err(e.reason()), started);
            Denial::Rejected(Rejection::from_error(e))
        })?;
        rt.spike(issuer, Ok(()), started);
        let claims = verified.claims();
        let headers: Vec<ClaimValue> =
            rt.claim_header_paths().map(|path| claim_value(claims, path)).collect();
        let response = respond::allow_headers(&rt.claim_headers, Some(&headers));
        let max_ttl = i64::try_from(rt.config.token_cache.max_ttl.as_secs()).unwrap_or(i64::MAX);
        let until_unix = verified.registered().exp.unwrap_or(now).min(now.saturating_add(max_ttl));
        let entry = Arc::new(Entry {
            issuer: index,
            thumbprint: *verified.key().thumbprint(),
            verified,
            headers,
            response,
            until_unix,
        });
        if let Some(hash) = hash {
            rt.cache.insert(hash, Arc::clone(&entry), now, epoch);
        }
        Ok(entry)
    }
}

/// Splits `/auth[/<policy>[/<rest>]]`: the policy name, and the URI the request speaks of on
/// its own (for Envoy's `path_prefix`, the original path and query after the policy).
fn split_auth_path<'a>(path: &'a str, path_and_query: &'a str) -> (Option<&'a str>, &'a str) {
    let rest = path.strip_prefix("/auth").unwrap_or(path);
    let Some(rest) = rest.strip_prefix('/').filter(|r| !r.is_empty()) else {
        return (None, path_and_query);
    };
    match rest.split_once('/') {
        Some((name, _)) => {
            let skip = "/auth/".len() + name.len();
            (Some(name), path_and_query.get(skip..).filter(|u| u.starts_with('/')).unwrap_or(path_and_query))
        }
        None => (Some(rest), path_and_query),
    }
}

/// True when `path` is `prefix` or below it on whole segments.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Runtime {
    fn build(config: Config, clock: &SharedClock, old: Option<&Runtime>) -> Result<Self, BuildError> {
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for issuer in &config.issuers {
            let kept = old.and_then(|o| o.issuers.iter().find(|i| i.config == *issuer));
            let (source, verifier) = match kept {
                Some(kept) => (kept.source.clone(), kept.verifier.clone()),
                None => build_verifier(issuer, clock)
                    .map_err(|source| BuildError::Issuer { issuer: issuer.name.clone(), source })?,
            };
            issuers.push(IssuerRt {
                config: issuer.clone(),
                source,
                verifier,
                matcher: Match::of(&issuer.matcher),
                spike: None,
            });
        }
        let issuer_index = |name: &str| issuers.iter().position(|i| i.config.name == name);
        let mut policies = Vec::with_capacity(config.policies.len() + 1);
        for policy in &config.policies {
            let mut allowed = vec![policy.issuers.is_empty(); issuers.len()];
            for name in &policy.issuers {
                let index = issuer_index(name).ok_or_else(|| {
                    BuildError::Inconsistent(format!("policy {}: no issuer named {name}", policy.name))
                })?;
                if let Some(slot) = allowed.get_mut(index) {
                    *slot = true;
                }
            }
            policies.push(PolicyRt {
                name: Arc::from(policy.name.as_str()),
                allowed,
                require: policy.require.clone(),
                challenge: respond::realm_challenge(&policy.name),
                metrics: None,
            });
        }
        let default_policy = match policies.iter().position(|p| *p.name == *config.default_policy) {
            Some(index) => index,
            None => {
                policies.push(PolicyRt {
                    name: Arc::from(config.default_policy.as_str()),
                    allowed: vec![true; issuers.len()],
                    require: None,
                    challenge: respond::realm_challenge(&config.default_policy),
                    metrics: None,
                });
                policies.len() - 1
            }
        };
        let mut rules = Vec::with_capacity(config.rules.len());
        for rule in &config.rules {
            let index = policies.iter().position(|p| *p.name == *rule.policy).ok_or_else(|| {
                BuildError::Inconsistent(format!("a path rule names the unknown policy {}", rule.policy))
            })?;
            rules.push((rule.clone(), index));
        }
        let cache = Arc::new(TokenCache::new(config.token_cache.enabled, config.token_cache.max_entries));
        let claim_headers: Vec<HeaderName> = config.claim_headers.iter().map(|c| c.header.clone()).collect();
        let preflight_headers = respond::allow_headers(&claim_headers, None);
        let decisions = DecisionMetrics::from_config(&config);
        for policy in &mut policies {
            policy.metrics = decisions.policy(&policy.name);
        }
        let spikes =
            SpikeDetector::new(&config.failure_spike, issuers.iter().map(|i| i.config.name.as_str()));
        for issuer in &mut issuers {
            issuer.spike = spikes.issuer(&issuer.config.name);
        }
        let tasks = issuers
            .iter()
            .enumerate()
            .map(|(index, issuer)| watch_keys(index, &issuer.verifier, Arc::downgrade(&cache)))
            .collect();
        Ok(Self {
            config,
            issuers,
            policies,
            default_policy,
            rules,
            cache,
            claim_headers,
            preflight_headers,
            clock: clock.clone(),
            tasks,
            decisions,
            spikes,
        })
    }

    /// Feeds the failure-spike detector one token outcome of `issuer` at `now` (it logs a
    /// spike's start and end itself).
    fn spike(&self, issuer: &IssuerRt, outcome: Result<(), Reason>, now: tokio::time::Instant) {
        if let Some(id) = issuer.spike {
            self.spikes.record(id, outcome, now);
        }
    }

    fn policy_index(&self, name: &str) -> Option<usize> {
        self.policies.iter().position(|p| *p.name == *name)
    }

    fn policy(&self, index: usize) -> &PolicyRt {
        // Indices come from this runtime's own lookups; the default policy always exists.
        self.policies.get(index).or_else(|| self.policies.get(self.default_policy)).unwrap_or_else(|| {
            static NONE: std::sync::OnceLock<PolicyRt> = std::sync::OnceLock::new();
            NONE.get_or_init(|| PolicyRt {
                name: Arc::from("default"),
                allowed: Vec::new(),
                require: None,
                challenge: HeaderValue::from_static("Bearer"),
                metrics: None,
            })
        })
    }

    fn claim_header_paths(&self) -> impl Iterator<Item = &str> {
        self.config.claim_headers.iter().map(|c| c.claim.as_str())
    }

    /// The first path rule matching the original request.
    fn rule_for(&self, original: &Original<'_>) -> Option<usize> {
        let path = original.path();
        self.rules.iter().find_map(|(rule, index)| {
            let host =
                rule.host.as_deref().is_none_or(|h| original.host.is_some_and(|o| o.eq_ignore_ascii_case(h)));
            let prefix = rule.path_prefix.as_deref().is_none_or(|p| under(path, p));
            let method = rule.methods.is_empty() || rule.methods.contains(&original.method);
            (host && prefix && method).then_some(*index)
        })
    }

    /// The issuer a token claims (unverified; the verifier checks it after the signature).
    /// Also with one issuer: a foreign token is refused `issuer_mismatch` before the verifier
    /// would ask for keys (which, with the IdP unreachable, answered it 503).
    fn select_issuer(&self, token: &str) -> Result<usize, Error> {
        let iss =
            keyward::danger::unverified_issuer(token, keyward::DEFAULT_MAX_TOKEN_LEN)?.ok_or_else(|| {
                Error::new(
                    Reason::MissingClaim,
                    "iss is missing; it selects which issuer's keys verify the token",
                )
            })?;
        self.issuers
            .iter()
            .position(|i| i.matcher.matches(&iss))
            .ok_or_else(|| Error::new(Reason::IssuerMismatch, "iss is not a configured issuer"))
    }
}

/// The key source and verifier of one issuer.
fn build_verifier(
    issuer: &IssuerConfig,
    clock: &SharedClock,
) -> Result<(JwksSource, Verifier), keyward::ConfigError> {
    let builder = match (&issuer.jwks_uri, &issuer.matcher) {
        (Some(uri), _) => JwksSource::from_url(uri.clone()),
        (None, IssuerMatcher::Exact(iss)) => JwksSource::from_issuer(iss.clone()),
        (None, IssuerMatcher::Template { template, .. }) => {
            return Err(keyward::ConfigError::Invalid(format!(
                "templated issuer {template:?} needs jwks_uri: discovery needs one issuer"
            )));
        }
    };
    // Named as in the config, so the key source's metrics (`keyward_jwks_*{issuer}`) carry the
    // same `issuer` label as the gateway's own (`keyward_issuer_ready`) and `/readyz`.
    let source = builder.name(issuer.name.clone()).settings(issuer.source.clone()).build()?;
    let mut policy = Policy::builder().audiences(issuer.audiences.iter().cloned()).leeway(issuer.leeway);
    if !issuer.algorithms.is_empty() {
        policy = policy.algorithms(issuer.algorithms.iter().copied());
    }
    for claim in &issuer.required_claims {
        policy = policy.require_claim(claim.clone());
    }
    let policy = policy.build()?;
    let keyed = match &issuer.matcher {
        IssuerMatcher::Exact(iss) => Issuer::new(iss.clone(), source.clone()),
        IssuerMatcher::Template { template, tenants } => {
            Issuer::templated(template.clone(), source.clone()).tenants(tenants.iter().cloned())
        }
    };
    let verifier = Verifier::builder().issuer(keyed).policy(policy).clock(clock.clone()).build()?;
    Ok((source, verifier))
}

/// Drops cache entries whose key left the issuer's set, changed material, or whose issuer's
/// keys became unavailable; everything of the issuer when events were missed.
fn watch_keys(index: usize, verifier: &Verifier, cache: std::sync::Weak<TokenCache>) -> JoinHandle<()> {
    let mut events = verifier.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(cache) = cache.upgrade() else { return };
            let dropped = match event {
                VerifierEvent::Key { event, .. } => match event.kind {
                    KeyEventKind::Removed { .. } | KeyEventKind::Retired | KeyEventKind::MaterialChanged => {
                        cache.remove_where(|e| e.issuer == index && e.thumbprint == event.thumbprint)
                    }
                    _ => 0,
                },
                VerifierEvent::Health { state: HealthState::Unavailable { .. }, .. }
                | VerifierEvent::Lagged { .. } => cache.remove_where(|e| e.issuer == index),
                _ => 0,
            };
            if dropped > 0 {
                tracing::debug!(
                    issuer = index,
                    dropped,
                    "verified-token cache entries dropped after a key event"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_paths_name_the_policy_and_envoy_the_original_path() {
        assert_eq!(split_auth_path("/auth", "/auth?x=1"), (None, "/auth?x=1"));
        assert_eq!(split_auth_path("/auth/", "/auth/"), (None, "/auth/"));
        assert_eq!(split_auth_path("/auth/admin", "/auth/admin"), (Some("admin"), "/auth/admin"));
        assert_eq!(
            split_auth_path("/auth/admin/orders/7", "/auth/admin/orders/7?a=b"),
            (Some("admin"), "/orders/7?a=b")
        );
        assert_eq!(split_auth_path("/auth/admin/", "/auth/admin/"), (Some("admin"), "/"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("/api", "/api"));
        assert!(under("/api/x", "/api"));
        assert!(under("/api/x", "/api/"));
        assert!(!under("/apix", "/api"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn templates_match_by_prefix_and_suffix() {
        let m = Match::Template { prefix: "https://login.example/".into(), suffix: "/v2.0".into() };
        assert!(m.matches("https://login.example/abc/v2.0"));
        assert!(!m.matches("https://login.example//v2.0"));
        assert!(!m.matches("https://evil.example/abc/v2.0"));
    }
}
