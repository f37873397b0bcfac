//! The rotation-aware key source: a remote JWKS kept fresh without ever stalling readers.
//!
//! - Readers load the current key set lock-free (`arc-swap`); only a token whose kid is unknown
//!   waits, and only for the one in-flight fetch (single-flight), with a deadline.
//! - The TTL comes from `Cache-Control`/`Expires`, clamped; a refresh starts ahead of expiry.
//! - Unknown kids fetch at once, limited per issuer to a few fetches per cooldown window, and
//!   kids a fresh fetch did not contain are negatively cached, so a kid flood cannot hammer
//!   the IdP and a real rotation is never locked out for longer than one window.
//! - Removed keys keep verifying for a removal grace; failed fetches never replace a good set;
//!   the last good set serves up to `max_stale` past expiry; an optional cache directory makes
//!   restarts during an outage survivable.

mod discovery;
mod http;
mod settings;
mod ttl;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::http::{FetchError, FetchStage, HttpFacts, HttpSettings};
use self::http::{Fetched, HttpClient, Validators, jitter};
pub use self::settings::SourceSettings;
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error, Reason};
use crate::jose::compact::UnverifiedToken;
use crate::jose::header::MAX_KID_LEN;
use crate::jose::jwk::VerifyingKey;
use crate::jose::jwks::JwkSet;
use crate::telemetry;

/// Why a fetch happened (the `trigger` label of `keyward_jwks_fetches_total`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The first fetch of a source.
    Startup,
    /// The key set expired.
    Ttl,
    /// Shortly before expiry.
    RefreshAhead,
    /// A token named a kid the set does not have.
    UnknownKid,
    /// A signature failed under a known kid (same-kid rotation).
    SignatureRetry,
    /// Asked for by the application.
    Manual,
}

impl Trigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Ttl => "ttl",
            Self::RefreshAhead => "refresh_ahead",
            Self::UnknownKid => "unknown_kid",
            Self::SignatureRetry => "signature_retry",
            Self::Manual => "manual",
        }
    }
}

/// What happened to a key in a source's published set.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEventKind {
    /// The key appeared in a fetched set (not reported for the first fetch).
    Added,
    /// The key left the published set; it keeps verifying for `grace`.
    Removed {
        /// The removal grace it was given.
        grace: Duration,
    },
    /// A removed key came back before its grace ended (Entra ID does this).
    Reappeared,
    /// A removed key's grace ended: it no longer verifies. Reported at the first fetch after
    /// the deadline; verification itself stops using the key at the deadline.
    Retired,
}

/// A change in a source's key set, so caches of verified tokens can forget what a removed key
/// verified. Subscribe with [`JwksSource::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyEvent {
    /// The source's name (its issuer or URL).
    pub source: Arc<str>,
    /// The key's `kid`.
    pub kid: Option<String>,
    /// The RFC 7638 thumbprint of the key material.
    pub thumbprint: [u8; 32],
    /// What happened.
    pub kind: KeyEventKind,
}

/// The state of a source, for health endpoints and alerts.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// No fetch has completed yet.
    Starting,
    /// The key set is within its TTL.
    Fresh,
    /// The key set expired and refreshing it fails; it still serves until `max_stale`.
    Stale {
        /// Unix time the set expired without a successful refresh.
        since_unix: i64,
    },
    /// No usable key set: never fetched, or past `max_stale`.
    Unavailable {
        /// Unix time this state began.
        since_unix: i64,
    },
}

impl HealthState {
    /// `starting`, `fresh`, `stale` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Fresh => "fresh",
            Self::Stale { .. } => "stale",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

/// A health report for one source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Health {
    /// The configured issuer or URL this source serves.
    pub name: String,
    /// Fresh, stale or unavailable.
    pub state: HealthState,
    /// Usable keys in the current set.
    pub keys: usize,
    /// Removed keys still verifying during their grace.
    pub keys_in_grace: usize,
    /// Unix time of the last successful fetch (200 or 304).
    pub last_success_unix: Option<i64>,
    /// Seconds until the current set expires (negative once expired).
    pub expires_in_secs: Option<i64>,
    /// Fetch failures since the last success.
    pub consecutive_failures: u32,
    /// The last fetch failure, if the last attempt failed.
    pub last_error: Option<FetchError>,
    /// The HTTP facts of the last response received.
    pub last_response: Option<HttpFacts>,
}

/// Key events a slow subscriber may fall behind by before it misses some (it is told so).
const KEY_EVENT_BACKLOG: usize = 256;

/// Where a source's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Discovery { issuer: String },
    JwksUri(String),
}

/// A remote key set with rotation-aware caching. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct JwksSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksSource").field("name", &self.inner.name).finish_non_exhaustive()
    }
}

struct Inner {
    name: Arc<str>,
    origin: Origin,
    settings: SourceSettings,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    snapshot: ArcSwap<Snapshot>,
    control: Mutex<Control>,
    attempts: watch::Sender<u64>,
    events: tokio::sync::broadcast::Sender<KeyEvent>,
    runtime: tokio::runtime::Handle,
}

/// What readers see: replaced whole after every fetch attempt.
struct Snapshot {
    keys: Option<Arc<JwkSet>>,
    grace: Vec<GraceKey>,
    fetched_at: Option<Instant>,
    expires_at: Option<Instant>,
    stale_until: Option<Instant>,
    next_due: Instant,
    attempt: u64,
    unavailable_since: Option<Instant>,
    last_error: Option<FetchError>,
    last_response: Option<HttpFacts>,
    failures: u32,
}

impl Snapshot {
    /// Nothing fetched, nothing attempted: the first fetch is due at once.
    fn starting(now: Instant) -> Self {
        Self {
            keys: None,
            grace: Vec::new(),
            fetched_at: None,
            expires_at: None,
            stale_until: None,
            next_due: now,
            attempt: 0,
            unavailable_since: None,
            last_error: None,
            last_response: None,
            failures: 0,
        }
    }
}

#[derive(Clone)]
struct GraceKey {
    key: Arc<VerifyingKey>,
    until: Instant,
}

/// Writer-side state, touched only under a short lock (never across an await).
struct Control {
    inflight: bool,
    jwks_uri: Option<String>,
    validators: Validators,
    limiter: VecDeque<Instant>,
    negative: HashMap<String, Instant>,
    stale_warned: bool,
}

/// Builds a [`JwksSource`].
#[derive(Debug)]
pub struct JwksSourceBuilder {
    origin: Origin,
    name: Option<String>,
    settings: SourceSettings,
    clock: Option<Arc<dyn Clock>>,
}

impl JwksSource {
    /// A source that fetches the JWKS at `url` (https, or http to loopback).
    pub fn from_url(url: impl Into<String>) -> JwksSourceBuilder {
        JwksSourceBuilder {
            origin: Origin::JwksUri(url.into()),
            name: None,
            settings: SourceSettings::default(),
            clock: None,
        }
    }

    /// A source that discovers the JWKS through `{issuer}/.well-known/openid-configuration`
    /// (then RFC 8414 metadata); the discovered `issuer` must equal `issuer` exactly.
    pub fn from_issuer(issuer: impl Into<String>) -> JwksSourceBuilder {
        let issuer = issuer.into();
        JwksSourceBuilder {
            name: Some(issuer.clone()),
            origin: Origin::Discovery { issuer },
            settings: SourceSettings::default(),
            clock: None,
        }
    }

    /// The name used in logs and metric labels (the issuer, or the URL).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current key set, if one was ever fetched (lock-free).
    pub fn current(&self) -> Option<Arc<JwkSet>> {
        self.inner.snapshot.load().keys.clone()
    }

    /// Removed keys that still verify during their grace.
    pub fn keys_in_grace(&self) -> Vec<Arc<VerifyingKey>> {
        let now = Instant::now();
        self.inner
            .snapshot
            .load()
            .grace
            .iter()
            .filter(|g| g.until > now)
            .map(|g| Arc::clone(&g.key))
            .collect()
    }

    /// Key added / removed / reappeared / retired events from now on. A receiver that falls
    /// more than 256 events behind gets `RecvError::Lagged` and should drop its whole cache.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<KeyEvent> {
        self.inner.events.subscribe()
    }

    /// Health for dashboards and readiness probes.
    pub fn health(&self) -> Health {
        let snap = self.inner.snapshot.load();
        let now = Instant::now();
        let to_unix = |t: Instant| self.inner.unix_at(now, t);
        let state = match (&snap.keys, snap.stale_until, snap.expires_at) {
            (None, _, _) if snap.attempt == 0 => HealthState::Starting,
            (Some(_), Some(stale_until), Some(expires)) if now <= stale_until => {
                if now < expires {
                    HealthState::Fresh
                } else {
                    HealthState::Stale { since_unix: to_unix(expires) }
                }
            }
            _ => HealthState::Unavailable { since_unix: to_unix(snap.unavailable_since.unwrap_or(now)) },
        };
        Health {
            name: self.inner.name.to_string(),
            state,
            keys: snap.keys.as_ref().map_or(0, |k| k.len()),
            keys_in_grace: snap.grace.iter().filter(|g| g.until > now).count(),
            last_success_unix: snap.fetched_at.map(to_unix),
            expires_in_secs: snap.expires_at.map(|e| signed_secs(e, now)),
            consecutive_failures: snap.failures,
            last_error: snap.last_error.clone(),
            last_response: snap.last_response.clone(),
        }
    }

    /// Fetches now (single-flight) and waits for the outcome.
    ///
    /// Waits for the whole fetch (its HTTP timeouts and retries bound it), not `fetch_wait`.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let seen = self.inner.snapshot.load().attempt;
        self.inner.fetch_and_wait_for(Trigger::Manual, seen, false, None).await;
        let snap = self.inner.snapshot.load();
        match &snap.last_error {
            Some(e) if snap.failures > 0 => Err(e.clone()),
            _ if snap.attempt == seen => {
                Err(FetchError::new(FetchStage::Timeout, &self.inner.name, "the fetch did not complete"))
            }
            _ => Ok(()),
        }
    }

    /// Chooses a key for `token` and verifies its signature, fetching when the kid is new or
    /// the key under a known kid changed.
    ///
    /// `required_iss`: when set, a token whose (unverified) `iss` differs never causes a fetch;
    /// it is rejected `issuer_mismatch` instead (THREATS.md A19: only tokens of a configured
    /// issuer may make its keys be refetched).
    pub(crate) async fn verify_signature(
        &self,
        token: &UnverifiedToken<'_>,
        required_iss: Option<&str>,
    ) -> Result<Arc<VerifyingKey>, Error> {
        let inner = &self.inner;
        let (kid, alg) = (token.kid(), token.alg());
        let (message, signature) = (token.signing_input().as_bytes(), token.signature());

        let mut snap = inner.snapshot.load_full();
        let mut now = Instant::now();
        if snap.keys.is_none() {
            if snap.attempt > 0 {
                // Fetches have failed and nothing was ever fetched: answer at once, never hang;
                // the background retries (or this request, when one is due) keep trying.
                if now >= snap.next_due {
                    inner.start_fetch(Trigger::Startup, snap.attempt, false);
                }
                return Err(inner.unavailable(&snap));
            }
            // The first fetch is under way: wait for it, bounded by `fetch_wait`.
            inner.fetch_and_wait(Trigger::Startup, snap.attempt, false).await;
            snap = inner.snapshot.load_full();
            now = Instant::now();
        } else if now >= snap.next_due {
            let trigger =
                if snap.expires_at.is_some_and(|e| now >= e) { Trigger::Ttl } else { Trigger::RefreshAhead };
            inner.start_fetch(trigger, snap.attempt, false);
        }
        let Some(keys) = usable(&snap, now) else {
            return Err(inner.unavailable(&snap));
        };

        let first = verify_in(keys, &snap.grace, now, kid, alg, message, signature);
        let retry_trigger = match &first {
            Ok(key) => return Ok(Arc::clone(key)),
            Err(e) => match (e.reason(), kid) {
                (Reason::UnknownKid, Some(kid)) if kid.len() <= MAX_KID_LEN => {
                    if inner.negatively_cached(kid) {
                        return first.map(Arc::clone);
                    }
                    Trigger::UnknownKid
                }
                (Reason::InvalidSignature, Some(_))
                    if snap.fetched_at.is_none_or(|t| t.elapsed() >= inner.settings.refresh_cooldown) =>
                {
                    Trigger::SignatureRetry
                }
                _ => return first.map(Arc::clone),
            },
        };
        let first = first.map(Arc::clone);
        if let Some(required) = required_iss {
            let (iss, _) = crate::verify::peek_issuer(token.payload())?;
            if iss.as_deref() != Some(required) {
                return Err(Error::new(
                    Reason::IssuerMismatch,
                    format!("iss {iss:?} is not the configured issuer {required:?}; no refetch for it"),
                ));
            }
        }
        let old_material: Vec<[u8; 32]> =
            kid.map(|kid| keys.keys_with_kid(kid).map(|k| *k.thumbprint()).collect()).unwrap_or_default();

        let waited = inner.fetch_and_wait(retry_trigger, snap.attempt, true).await;
        let after = inner.snapshot.load_full();
        if !waited {
            // The limiter refused, or the fetch did not finish in time: answer with what we know.
            return first.map_err(|e| inner.explain_no_refresh(e, retry_trigger));
        }
        let now = Instant::now();
        let Some(new_keys) = usable(&after, now) else {
            return first;
        };
        let second = verify_in(new_keys, &after.grace, now, kid, alg, message, signature).map(Arc::clone);
        match (&second, kid) {
            // Only a fetch that succeeded proves the kid is not published.
            (Err(e), Some(kid)) if e.reason() == Reason::UnknownKid && after.failures == 0 => {
                inner.remember_unknown(kid);
            }
            (Err(e), Some(kid)) if e.reason() == Reason::InvalidSignature => {
                let changed = new_keys.keys_with_kid(kid).any(|k| !old_material.contains(k.thumbprint()));
                if changed {
                    return second.map_err(Error::with_key_material_changed);
                }
            }
            _ => {}
        }
        second
    }
}

/// The key set if it may still serve: within `max_stale` past its expiry.
fn usable(snap: &Snapshot, now: Instant) -> Option<&JwkSet> {
    let keys = snap.keys.as_deref()?;
    match snap.stale_until {
        Some(limit) if now > limit => None,
        _ => Some(keys),
    }
}

/// Verifies against the fresh set, then against keys in removal grace.
fn verify_in<'a>(
    keys: &'a JwkSet,
    grace: &'a [GraceKey],
    now: Instant,
    kid: Option<&str>,
    alg: crate::Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<&'a Arc<VerifyingKey>, Error> {
    let fresh = keys.verify_signature(kid, alg, message, signature);
    let Err(fresh_err) = fresh else { return fresh };
    let mut tried = false;
    for g in grace.iter().filter(|g| g.until > now && g.key.kid() == kid && g.key.supports(alg)) {
        tried = true;
        if g.key.verify_signature(alg, message, signature).is_ok() {
            return Ok(&g.key);
        }
    }
    if tried && fresh_err.reason() == Reason::UnknownKid {
        return Err(Error::new(
            Reason::InvalidSignature,
            "signature does not verify under the recently removed key with this kid",
        ));
    }
    Err(fresh_err)
}

fn signed_secs(t: Instant, now: Instant) -> i64 {
    if t >= now {
        i64::try_from((t - now).as_secs()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((now - t).as_secs()).unwrap_or(i64::MAX)
    }
}

impl Inner {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A poisoned lock only means another thread panicked mid-update of plain data; the
        // state is still coherent enough to keep serving.
        self.control.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unix_at(&self, now: Instant, t: Instant) -> i64 {
        self.clock.now_unix().saturating_sub(signed_secs(now, t))
    }

    fn unavailable(&self, snap: &Snapshot) -> Error {
        let detail = match (&snap.keys, &snap.last_error) {
            (None, Some(e)) => format!("no key set for {} has ever been fetched: {e}", self.name),
            (None, None) => format!("no key set for {} has been fetched yet", self.name),
            (Some(_), Some(e)) => format!(
                "the last good key set for {} is more than {:?} past its expiry: {e}",
                self.name, self.settings.max_stale
            ),
            (Some(_), None) => format!("the key set for {} is past its stale limit", self.name),
        };
        Error::new(Reason::KeysUnavailable, detail)
    }

    fn negatively_cached(&self, kid: &str) -> bool {
        let now = Instant::now();
        self.control().negative.get(kid).is_some_and(|until| *until > now)
    }

    fn remember_unknown(&self, kid: &str) {
        let now = Instant::now();
        let mut control = self.control();
        if control.negative.len() >= self.settings.negative_cache_capacity {
            control.negative.retain(|_, until| *until > now);
        }
        if control.negative.len() < self.settings.negative_cache_capacity {
            control.negative.insert(kid.to_owned(), now + self.settings.negative_cache_ttl);
        }
    }

    fn explain_no_refresh(&self, e: Error, trigger: Trigger) -> Error {
        let limit = self.settings.unknown_kid_fetches;
        let window = self.settings.refresh_cooldown;
        let note = format!(
            " (no refetch: at most {limit} {} fetches per {window:?} for {}, or the fetch did not finish within {:?})",
            trigger.as_str(),
            self.name,
            self.settings.fetch_wait
        );
        let reason = e.reason();
        let detail = format!("{}{note}", e.detail());
        let kid = e.kid().map(str::to_owned);
        Error::new(reason, detail).with_token_context(kid.as_deref(), e.alg())
    }

    /// Starts a fetch unless one is running or one completed since `seen_attempt`.
    /// Returns false when the limiter refused.
    fn start_fetch(self: &Arc<Self>, trigger: Trigger, seen_attempt: u64, limited: bool) -> bool {
        let mut control = self.control();
        if control.inflight || *self.attempts.borrow() != seen_attempt {
            return true;
        }
        if limited {
            let now = Instant::now();
            let window = self.settings.refresh_cooldown;
            while control.limiter.front().is_some_and(|t| now.duration_since(*t) >= window) {
                control.limiter.pop_front();
            }
            if control.limiter.len() >= self.settings.unknown_kid_fetches {
                return false;
            }
            control.limiter.push_back(now);
        }
        control.inflight = true;
        drop(control);
        let inner = Arc::clone(self);
        self.runtime.spawn(async move { inner.run_fetch(trigger).await });
        true
    }

    /// Starts (or joins) a fetch and waits for it, at most `fetch_wait`. False when no fetch
    /// was allowed or it did not finish in time.
    async fn fetch_and_wait(self: &Arc<Self>, trigger: Trigger, seen_attempt: u64, limited: bool) -> bool {
        self.fetch_and_wait_for(trigger, seen_attempt, limited, Some(self.settings.fetch_wait)).await
    }

    /// As [`Inner::fetch_and_wait`], with an explicit deadline (`None`: until the fetch ends).
    async fn fetch_and_wait_for(
        self: &Arc<Self>,
        trigger: Trigger,
        seen_attempt: u64,
        limited: bool,
        deadline: Option<Duration>,
    ) -> bool {
        let mut rx = self.attempts.subscribe();
        if *rx.borrow_and_update() != seen_attempt {
            return true;
        }
        if !self.start_fetch(trigger, seen_attempt, limited) {
            return false;
        }
        let wait = async {
            while *rx.borrow_and_update() == seen_attempt {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        match deadline {
            Some(limit) => tokio::time::timeout(limit, wait).await.unwrap_or(false),
            None => wait.await,
        }
    }

    async fn run_fetch(self: Arc<Self>, trigger: Trigger) {
        let result = self.fetch_once().await;
        let now = Instant::now();
        let prev = self.snapshot.load_full();
        let attempt = prev.attempt + 1;
        let label = (self.name.to_string(), trigger.as_str());
        let next = match result {
            Ok((fetched, jwks_uri)) => {
                let ttl = ttl::ttl_from_headers(
                    &fetched.facts,
                    self.settings.min_ttl,
                    self.settings.max_ttl,
                    self.settings.default_ttl,
                );
                match fetched.body {
                    None => {
                        metrics::counter!(telemetry::JWKS_FETCHES_TOTAL, "issuer" => label.0, "trigger" => label.1, "result" => "not_modified").increment(1);
                        tracing::debug!(issuer = %self.name, trigger = trigger.as_str(), "key set not modified");
                        self.renewed(&prev, now, ttl, attempt, fetched.facts)
                    }
                    Some(body) => match JwkSet::from_json_with_limits(
                        &body,
                        self.settings.http.max_body_bytes,
                        self.settings.max_keys,
                    ) {
                        Ok(set) if !set.is_empty() => {
                            metrics::counter!(telemetry::JWKS_FETCHES_TOTAL, "issuer" => label.0, "trigger" => label.1, "result" => "success").increment(1);
                            self.save_warm(&body, &jwks_uri).await;
                            let mut control = self.control();
                            control.validators = Validators {
                                etag: fetched.facts.etag.clone(),
                                last_modified: fetched.facts.last_modified.clone(),
                            };
                            control.jwks_uri = Some(jwks_uri);
                            control.stale_warned = false;
                            drop(control);
                            self.replaced(&prev, set, now, ttl, attempt, fetched.facts)
                        }
                        parsed => {
                            let detail = match parsed {
                                Ok(set) => format!(
                                    "the key set has no usable key ({} set aside)",
                                    set.set_aside().len()
                                ),
                                Err(e) => e.to_string(),
                            };
                            let mut err = FetchError::new(FetchStage::Parse, &jwks_uri, detail);
                            err.facts = Some(Box::new(fetched.facts));
                            self.failed(&prev, now, attempt, err, trigger)
                        }
                    },
                }
            }
            Err(err) => self.failed(&prev, now, attempt, err, trigger),
        };
        self.publish_gauges(&next, now);
        self.snapshot.store(Arc::new(next));
        self.control().inflight = false;
        self.attempts.send_replace(attempt);
    }

    async fn fetch_once(&self) -> Result<(Fetched, String), FetchError> {
        let (uri, validators, have_keys) = {
            let control = self.control();
            (control.jwks_uri.clone(), control.validators.clone(), self.snapshot.load().keys.is_some())
        };
        let uri = match (uri, &self.origin) {
            (Some(uri), _) => uri,
            (None, Origin::JwksUri(uri)) => uri.clone(),
            (None, Origin::Discovery { issuer }) => {
                let uri = discovery::discover_jwks_uri(&self.http, issuer).await?;
                // Kept at once, so a failing JWKS endpoint does not repeat discovery each time.
                self.control().jwks_uri = Some(uri.clone());
                uri
            }
        };
        // Conditional requests only when a 304 has a set to renew.
        let validators = if have_keys { validators } else { Validators::default() };
        let result = self.http.get(&uri, &validators).await;
        if let (Err(e), Origin::Discovery { .. }) = (&result, &self.origin)
            && matches!(e.stage, FetchStage::HttpStatus(404 | 410))
        {
            // The jwks_uri moved: discover again next time.
            self.control().jwks_uri = None;
        }
        let fetched = result?;
        if fetched.body.is_none() && !have_keys {
            return Err(FetchError::new(
                FetchStage::HttpStatus(304),
                &uri,
                "304 Not Modified without a cached key set",
            ));
        }
        Ok((fetched, uri))
    }

    fn schedule(&self, now: Instant, ttl: Duration) -> Instant {
        let lead = jitter(self.settings.refresh_ahead, 0.1);
        let wait = if ttl > lead { ttl - lead } else { ttl / 2 };
        now + wait
    }

    fn renewed(
        &self,
        prev: &Snapshot,
        now: Instant,
        ttl: Duration,
        attempt: u64,
        facts: HttpFacts,
    ) -> Snapshot {
        let grace = prev.grace.iter().filter(|g| g.until > now).cloned().collect();
        self.fetched(prev.keys.clone(), grace, now, ttl, attempt, facts)
    }

    fn replaced(
        &self,
        prev: &Snapshot,
        set: JwkSet,
        now: Instant,
        ttl: Duration,
        attempt: u64,
        facts: HttpFacts,
    ) -> Snapshot {
        let grace = self.diff_keys(prev, &set, now);
        if prev.failures > 0 {
            tracing::info!(issuer = %self.name, keys = set.len(), "key set fetched again after failures");
        }
        self.fetched(Some(Arc::new(set)), grace, now, ttl, attempt, facts)
    }

    /// The state after a successful fetch (200 or 304): fresh for `ttl`.
    fn fetched(
        &self,
        keys: Option<Arc<JwkSet>>,
        grace: Vec<GraceKey>,
        now: Instant,
        ttl: Duration,
        attempt: u64,
        facts: HttpFacts,
    ) -> Snapshot {
        let expires = now + ttl;
        Snapshot {
            keys,
            grace,
            fetched_at: Some(now),
            expires_at: Some(expires),
            stale_until: Some(expires + self.settings.max_stale),
            next_due: self.schedule(now, ttl),
            attempt,
            unavailable_since: None,
            last_error: None,
            last_response: Some(facts),
            failures: 0,
        }
    }

    /// Logs and counts added, removed and reappearing keys; returns the new grace list.
    fn diff_keys(&self, prev: &Snapshot, set: &JwkSet, now: Instant) -> Vec<GraceKey> {
        let ident = |k: &VerifyingKey| (k.kid().map(str::to_owned), *k.thumbprint());
        let new_ids: Vec<_> = set.keys().iter().map(|k| ident(k)).collect();
        let old_ids: Vec<_> =
            prev.keys.as_ref().map(|s| s.keys().iter().map(|k| ident(k)).collect()).unwrap_or_default();
        let event = |key: &VerifyingKey, kind: KeyEventKind| {
            let name = match kind {
                KeyEventKind::Added => "added",
                KeyEventKind::Removed { .. } => "removed",
                KeyEventKind::Reappeared => "reappeared",
                KeyEventKind::Retired => "retired",
            };
            metrics::counter!(telemetry::KEY_EVENTS_TOTAL, "issuer" => self.name.to_string(), "event" => name).increment(1);
            // No subscriber is not an error.
            let _ = self.events.send(KeyEvent {
                source: Arc::clone(&self.name),
                kid: key.kid().map(str::to_owned),
                thumbprint: *key.thumbprint(),
                kind,
            });
        };
        let mut grace: Vec<GraceKey> = Vec::new();
        for g in &prev.grace {
            if new_ids.contains(&ident(&g.key)) {
                tracing::info!(issuer = %self.name, kid = g.key.kid().unwrap_or(""), "key reappeared in the key set");
                event(&g.key, KeyEventKind::Reappeared);
            } else if g.until > now {
                grace.push(g.clone());
            } else {
                tracing::info!(issuer = %self.name, kid = g.key.kid().unwrap_or(""), "removed key's grace ended; it no longer verifies");
                event(&g.key, KeyEventKind::Retired);
            }
        }
        for key in set.keys() {
            let id = ident(key);
            if !old_ids.contains(&id)
                && !prev.grace.iter().any(|g| ident(&g.key) == id)
                && prev.keys.is_some()
            {
                tracing::info!(issuer = %self.name, kid = key.kid().unwrap_or(""), alg = ?key.alg(), "key added");
                event(key, KeyEventKind::Added);
            }
        }
        if let Some(old) = &prev.keys {
            for key in old.keys() {
                if !new_ids.contains(&ident(key)) {
                    let grace_for = self.settings.removal_grace;
                    tracing::info!(issuer = %self.name, kid = key.kid().unwrap_or(""), grace_secs = grace_for.as_secs(), "key removed from the published set");
                    event(key, KeyEventKind::Removed { grace: grace_for });
                    if !grace_for.is_zero() {
                        grace.push(GraceKey { key: Arc::clone(key), until: now + grace_for });
                    }
                }
            }
        }
        grace
    }

    fn failed(
        &self,
        prev: &Snapshot,
        now: Instant,
        attempt: u64,
        err: FetchError,
        trigger: Trigger,
    ) -> Snapshot {
        metrics::counter!(telemetry::JWKS_FETCHES_TOTAL, "issuer" => self.name.to_string(), "trigger" => trigger.as_str(), "result" => "error").increment(1);
        tracing::warn!(issuer = %self.name, trigger = trigger.as_str(), stage = err.stage.as_str(), url = %err.url, "key set fetch failed: {}", err.detail);
        let failures = prev.failures.saturating_add(1);
        let exp = failures.saturating_sub(1).min(16);
        let mut backoff = self.settings.outage_backoff_min.saturating_mul(1u32 << exp);
        // A server asking for time gets it (within the cap), instead of the failure-count backoff.
        if let Some(asked) = err.facts.as_deref().and_then(http::retry_after) {
            backoff = backoff.max(asked);
        }
        let backoff = backoff.min(self.settings.outage_backoff_max);
        let stale_until = prev.stale_until;
        let expired = prev.expires_at.is_some_and(|e| now >= e);
        if prev.keys.is_some() && expired {
            let mut control = self.control();
            if !control.stale_warned {
                control.stale_warned = true;
                tracing::warn!(issuer = %self.name, max_stale_secs = self.settings.max_stale.as_secs(), "serving a stale key set while fetches fail");
            }
        }
        let unavailable = prev.keys.is_none() || stale_until.is_some_and(|s| now > s);
        if unavailable && prev.unavailable_since.is_none() {
            tracing::error!(issuer = %self.name, "no usable key set: tokens are rejected with keys_unavailable");
        }
        Snapshot {
            keys: prev.keys.clone(),
            grace: prev.grace.iter().filter(|g| g.until > now).cloned().collect(),
            fetched_at: prev.fetched_at,
            expires_at: prev.expires_at,
            stale_until,
            next_due: now + jitter(backoff, 0.1),
            attempt,
            unavailable_since: if unavailable { prev.unavailable_since.or(Some(now)) } else { None },
            last_response: err.facts.as_deref().cloned().or_else(|| prev.last_response.clone()),
            last_error: Some(err),
            failures,
        }
    }

    fn publish_gauges(&self, snap: &Snapshot, now: Instant) {
        let issuer = self.name.to_string();
        let keys = snap.keys.as_ref().map_or(0, |k| k.len()) + snap.grace.len();
        metrics::gauge!(telemetry::JWKS_KEYS, "issuer" => issuer.clone()).set(keys as f64);
        if let Some(fetched) = snap.fetched_at {
            metrics::gauge!(telemetry::JWKS_AGE_SECONDS, "issuer" => issuer.clone())
                .set(now.duration_since(fetched).as_secs_f64());
            metrics::gauge!(telemetry::JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS, "issuer" => issuer)
                .set(self.unix_at(now, fetched) as f64);
        }
    }

    fn warm_path(&self) -> Option<PathBuf> {
        let dir = self.settings.cache_dir.as_ref()?;
        let origin = match &self.origin {
            Origin::Discovery { issuer } => format!("issuer:{issuer}"),
            Origin::JwksUri(uri) => format!("jwks:{uri}"),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, origin.as_bytes());
        let name: String = digest.as_ref().iter().take(12).map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("keyward-{name}.json")))
    }

    /// Writes the last good set atomically (temp file, then rename).
    async fn save_warm(&self, body: &[u8], uri: &str) {
        let Some(path) = self.warm_path() else { return };
        let record = serde_json::json!({
            "saved_at": self.clock.now_unix(),
            "source": self.name.as_ref(),
            "jwks_uri": uri,
            "jwks": String::from_utf8_lossy(body),
        });
        let tmp = path.with_extension("json.tmp");
        let write = async {
            tokio::fs::write(&tmp, record.to_string()).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            tracing::warn!(issuer = %self.name, path = %path.display(), "cannot save the key set for warm start: {e}");
        }
    }

    /// Loads a saved set younger than `max_stale`, serving it as stale until fetched anew.
    fn load_warm(&self) -> Option<Snapshot> {
        let path = self.warm_path()?;
        let bytes = std::fs::read(&path).ok()?;
        let record = crate::jose::json::parse_object(&bytes).ok()?;
        let saved_at = record.get("saved_at")?.as_i64()?;
        let age = u64::try_from(self.clock.now_unix().saturating_sub(saved_at)).unwrap_or(0);
        let max_stale = self.settings.max_stale.as_secs();
        if age >= max_stale {
            tracing::info!(issuer = %self.name, age_secs = age, "saved key set is older than max_stale; not used");
            return None;
        }
        let jwks = record.get("jwks")?.as_str()?;
        let set = JwkSet::from_json_with_limits(
            jwks.as_bytes(),
            self.settings.http.max_body_bytes,
            self.settings.max_keys,
        )
        .ok()?;
        if set.is_empty() {
            return None;
        }
        tracing::info!(issuer = %self.name, age_secs = age, keys = set.len(), "loaded the saved key set (warm start)");
        let now = Instant::now();
        Some(Snapshot {
            keys: Some(Arc::new(set)),
            expires_at: Some(now),
            stale_until: Some(now + Duration::from_secs(max_stale - age)),
            ..Snapshot::starting(now)
        })
    }
}

impl JwksSourceBuilder {
    /// All settings at once.
    pub fn settings(mut self, settings: SourceSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Changes settings in place, starting from the current ones.
    pub fn configure(mut self, f: impl FnOnce(&mut SourceSettings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// The name for logs and the `issuer` metric label. Default: the issuer, or the URL.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The wall clock used for warm-start ages and health timestamps.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the source inside the current tokio runtime and starts its first fetch.
    pub fn build(self) -> Result<JwksSource, ConfigError> {
        self.settings.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::Invalid("a JwksSource must be built inside a tokio runtime".to_owned())
        })?;
        let http = HttpClient::new(self.settings.http.clone()).map_err(ConfigError::Invalid)?;
        match &self.origin {
            Origin::JwksUri(uri) => {
                http.check_url(uri)
                    .map_err(|e| ConfigError::Invalid(format!("JWKS URL {uri:?}: {}", e.detail)))?;
            }
            Origin::Discovery { issuer } => {
                http.check_url(issuer)
                    .map_err(|e| ConfigError::Invalid(format!("issuer {issuer:?}: {}", e.detail)))?;
            }
        }
        let name: Arc<str> = Arc::from(self.name.unwrap_or_else(|| match &self.origin {
            Origin::Discovery { issuer } => issuer.clone(),
            Origin::JwksUri(uri) => uri.clone(),
        }));
        let now = Instant::now();
        let inner = Arc::new(Inner {
            name,
            origin: self.origin,
            settings: self.settings,
            http,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            snapshot: ArcSwap::from_pointee(Snapshot::starting(now)),
            control: Mutex::new(Control {
                inflight: false,
                jwks_uri: None,
                validators: Validators::default(),
                limiter: VecDeque::new(),
                negative: HashMap::new(),
                stale_warned: false,
            }),
            attempts: watch::Sender::new(0),
            events: tokio::sync::broadcast::Sender::new(KEY_EVENT_BACKLOG),
            runtime,
        });
        if let Some(warm) = inner.load_warm() {
            inner.snapshot.store(Arc::new(warm));
        }
        inner.start_fetch(Trigger::Startup, 0, false);
        if inner.settings.background_refresh {
            let weak = Arc::downgrade(&inner);
            inner.runtime.spawn(background_refresh(weak));
        }
        Ok(JwksSource { inner })
    }
}

/// Keeps an idle source fresh: wakes at each scheduled refresh or retry. Ends with the source.
async fn background_refresh(weak: Weak<Inner>) {
    loop {
        let due = match weak.upgrade() {
            Some(inner) => inner.snapshot.load().next_due,
            None => return,
        };
        tokio::time::sleep_until(due.max(Instant::now() + Duration::from_millis(10))).await;
        let Some(inner) = weak.upgrade() else { return };
        let snap = inner.snapshot.load_full();
        let now = Instant::now();
        if now < snap.next_due {
            continue;
        }
        let trigger = match (&snap.keys, snap.expires_at) {
            (None, _) => Trigger::Startup,
            (Some(_), Some(e)) if now >= e => Trigger::Ttl,
            _ => Trigger::RefreshAhead,
        };
        let seen = snap.attempt;
        drop(snap);
        inner.fetch_and_wait(trigger, seen, false).await;
    }
}
