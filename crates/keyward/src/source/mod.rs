//! The rotation-aware key source: a remote JWKS kept fresh without ever stalling readers.
//!
//! - Readers load the current key set lock-free (`arc-swap`); only a token whose kid is unknown
//!   (or whose signature fails under a known kid) waits, and only for the one in-flight fetch
//!   (single-flight), with a deadline.
//! - The TTL comes from `Cache-Control`/`Expires`, clamped; a refresh starts ahead of expiry.
//! - Token-driven fetches come from two budgets per issuer, one for unknown kids (and their
//!   follow-ups), one for signature retries: each at most 8 per 30 s, spaced at least 3.75 s
//!   apart, so a tampered token never puts off the fetch of a key rotated in just after it. A kid a fetch lacked keeps being looked up (within
//!   that budget) for 60 s, so a key the IdP publishes late is found within one spacing of its
//!   publication, while a flood of random kids costs no more than the budget.
//! - Removal is revocation, confirmed: a key missing from a fetch verifies until a second fetch
//!   about 5 s later (never more than 60 s) also lacks it; new material under its kid drops it
//!   at once. An opt-in removal grace keeps removed keys for longer.
//! - Failed fetches never replace a good set; the last good set serves up to `max_stale` past
//!   expiry; an optional cache directory makes restarts during an outage survivable.
//!
//! `docs/key-source.md` explains the schedule and its trade-offs.

mod discovery;
mod events;
mod evidence;
mod health;
mod http;
mod report;
mod settings;
mod state;
mod ttl;
mod warm;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::discovery::Discovery;
use self::events::Events;
pub use self::events::{KeyEvent, KeyEventKind};
pub use self::evidence::{FetchDecision, GraceKind, KeyEvidence, NoFetchReason};
pub use self::health::{Health, HealthState};
pub use self::http::{FetchError, FetchStage, HttpFacts, HttpSettings, needs_insecure_http_opt_in};
use self::http::{Fetched, HttpClient, Validators, jitter, random_up_to};
pub use self::report::{FetchReport, FetchTarget, fetch};
pub use self::settings::{MAX_STALE_BOUND, MAX_TTL_BOUND, MAX_WINDOW_BOUND, SourceSettings};
use self::state::{Control, KidState, Moment, RemovedKey, Snapshot};
pub use self::warm::{CacheFileError, CachedKeySet, read_cache_file};
use crate::clock::{Clock, SystemClock, later};
use crate::error::{ConfigError, Error, Reason};
use crate::jose::compact::UnverifiedToken;
use crate::jose::header::MAX_KID_LEN;
use crate::jose::jwk::VerifyingKey;
use crate::jose::jwks::JwkSet;
use crate::telemetry;

/// A token that would fetch while a rate-limit hold has at most this long to run waits for
/// the fetch at its end instead of being refused.
const HOLD_WAIT: Duration = Duration::from_secs(2);

/// Rate-limited answers in a row after which the jitter past the IdP's `Retry-After` grows
/// with the outage backoff instead of staying within a quarter of the time asked.
const PROMPT_RETRIES: u32 = 4;

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
    /// The fetch that confirms (or cancels) the removal of keys a previous fetch lacked.
    RemovalCheck,
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
            Self::RemovalCheck => "removal_check",
            Self::Manual => "manual",
        }
    }
}

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
    events: Events,
    runtime: tokio::runtime::Handle,
}

/// Builds a [`JwksSource`].
#[derive(Debug)]
pub struct JwksSourceBuilder {
    origin: Origin,
    name: Option<String>,
    settings: SourceSettings,
    clock: Option<Arc<dyn Clock>>,
}

/// How a wait for a fetch ended.
enum Waited {
    /// A fetch completed (this one, or one that finished meanwhile).
    Completed,
    /// No fetch was allowed.
    Refused(NoFetchReason, Duration),
    /// The fetch did not finish within the deadline.
    TimedOut,
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

    /// The settings this source runs with.
    pub fn settings(&self) -> &SourceSettings {
        &self.inner.settings
    }

    /// The current key set, if one was ever fetched (lock-free).
    pub fn current(&self) -> Option<Arc<JwkSet>> {
        self.inner.snapshot.load().keys.clone()
    }

    /// Keys no longer published that still verify: awaiting the confirming fetch, or in the
    /// opt-in removal grace.
    pub fn keys_in_grace(&self) -> Vec<Arc<VerifyingKey>> {
        let now = Instant::now();
        self.inner.snapshot.load().removed_active(now).map(|r| Arc::clone(&r.key)).collect()
    }

    /// Key added / removed / reappeared / retired / material-changed events from now on. A
    /// receiver that falls more than 256 events behind gets `RecvError::Lagged` and should drop
    /// its whole cache.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<KeyEvent> {
        self.inner.events.subscribe()
    }

    /// Changes after every completed fetch attempt: the wake-up for health watchers
    /// ([`crate::Verifier::subscribe`]).
    pub(crate) fn completed_fetches(&self) -> watch::Receiver<u64> {
        self.inner.attempts.subscribe()
    }

    /// When the health state next changes by time alone (the set expires, or its stale limit
    /// passes) unless a fetch completes first; `None` when only a fetch can change it.
    pub(crate) fn next_health_change(&self) -> Option<Instant> {
        let snap = self.inner.snapshot.load();
        let now = Instant::now();
        snap.keys.as_ref()?;
        match (snap.expires_at, snap.stale_until) {
            (Some(expires), _) if now < expires => Some(expires),
            (_, Some(stale_until)) if now <= stale_until => {
                Some(later(stale_until, Duration::from_millis(1)))
            }
            _ => None,
        }
    }

    /// Health for dashboards and readiness probes.
    pub fn health(&self) -> Health {
        let snap = self.inner.snapshot.load();
        let now = Instant::now();
        health::health_of(&self.inner.name, &snap, now, |t| self.inner.unix_at(now, t))
    }

    /// Fetches now (single-flight) and waits for the outcome.
    ///
    /// Waits for the whole fetch (its HTTP timeouts and retries bound it), not `fetch_wait`.
    /// The application asked, so neither the token-driven budget nor a rate-limit hold (a
    /// `429`'s `Retry-After`) applies.
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
    /// the key under a known kid changed; says what the source knew and did.
    ///
    /// `required_iss`: when set, a token whose (unverified) `iss` differs never causes a fetch;
    /// an unknown kid is then `issuer_mismatch` (`docs/threat-model.md` A19: only tokens of a
    /// configured issuer may make its keys be refetched).
    pub(crate) async fn verify_signature(
        &self,
        token: &UnverifiedToken<'_>,
        required_iss: Option<&str>,
    ) -> Result<(Arc<VerifyingKey>, KeyEvidence), Error> {
        let inner = &self.inner;
        let (kid, alg) = (token.kid(), token.alg());
        let (message, signature) = (token.signing_input().as_bytes(), token.signature());

        let mut snap = inner.snapshot.load_full();
        let mut now = Instant::now();
        let mut evidence = inner.evidence(&snap, now);
        if snap.keys.is_none() {
            if snap.attempt > 0 {
                // Fetches have failed and nothing was ever fetched: answer at once, never hang;
                // the background retries (or this request, when one is due) keep trying.
                evidence.fetch = if now >= snap.next_due {
                    inner.start_scheduled(Trigger::Startup, snap.attempt);
                    FetchDecision::Made { trigger: Trigger::Startup, succeeded: false }
                } else {
                    let reason = match snap.held_for(now) {
                        Some(_) => NoFetchReason::RateLimited,
                        None => NoFetchReason::OutageBackoff,
                    };
                    FetchDecision::Refused { reason, retry_after: Some(snap.next_due - now) }
                };
                return Err(inner.unavailable(&snap).with_keys(evidence));
            }
            // The first fetch is under way: wait for it, bounded by `fetch_wait`.
            let waited = inner.fetch_and_wait(Trigger::Startup, snap.attempt, false).await;
            snap = inner.snapshot.load_full();
            now = Instant::now();
            evidence = inner.evidence(&snap, now);
            evidence.fetch = match waited {
                Waited::Completed => {
                    FetchDecision::Made { trigger: Trigger::Startup, succeeded: snap.keys.is_some() }
                }
                _ => FetchDecision::Refused { reason: NoFetchReason::WaitTimedOut, retry_after: None },
            };
        } else if now >= snap.next_due {
            inner.start_scheduled(due_trigger(&snap, now), snap.attempt);
        }
        let Some(keys) = snap.usable(now) else {
            return Err(inner.unavailable(&snap).with_keys(evidence));
        };

        let first = verify_in(keys, &snap, now, kid, alg, message, signature);
        let (first, trigger, kid) = match (first, kid) {
            (Ok((key, grace)), _) => {
                evidence.grace = grace;
                return Ok((Arc::clone(key), evidence));
            }
            (Err(e), Some(kid)) if e.reason() == Reason::UnknownKid && kid.len() <= MAX_KID_LEN => {
                (e, Trigger::UnknownKid, kid)
            }
            (Err(e), Some(kid)) if e.reason() == Reason::InvalidSignature => {
                (e, Trigger::SignatureRetry, kid)
            }
            // Tokens without a kid never refetch: nothing says a new key would help them.
            (Err(e), _) => return Err(e.with_keys(evidence)),
        };
        match inner.control().unresolved.state(kid, now, &inner.settings) {
            KidState::Negative { retry_after } => {
                evidence.kid_negatively_cached = true;
                evidence.fetch = FetchDecision::Refused {
                    reason: NoFetchReason::NegativeCache,
                    retry_after: Some(retry_after),
                };
                return Err(first.with_keys(evidence));
            }
            KidState::FollowingUp => evidence.kid_negatively_cached = true,
            KidState::New => {}
        }
        if let Some(required) = required_iss {
            let hint = crate::jose::peek::peek_issuer(token.payload())?;
            if hint.iss.as_deref() != Some(required) {
                // Another issuer's token never makes this issuer's keys be refetched. Its
                // signature already failed under a known kid: that stays the verdict.
                if trigger == Trigger::SignatureRetry {
                    return Err(first.with_keys(evidence));
                }
                let detail = format!(
                    "iss {:?} is not the configured issuer {required:?}; no refetch for it",
                    hint.iss
                );
                return Err(Error::new(Reason::IssuerMismatch, detail).with_keys(evidence));
            }
        }
        let old_material: Vec<[u8; 32]> = keys.keys_with_kid(kid).map(|k| *k.thumbprint()).collect();

        // A rate-limit hold about to end is waited out: the token joins the first fetch after
        // it (no extra request: the background task makes that fetch anyway). A longer hold is
        // answered at once (`rate_limited`), as the budget's refusals are.
        let waited = match snap.held_for(now) {
            Some(hold) if hold <= HOLD_WAIT.min(inner.settings.fetch_wait) => {
                inner.wait_out_hold(hold, snap.attempt).await
            }
            _ => inner.fetch_and_wait(trigger, snap.attempt, true).await,
        };
        match waited {
            Waited::Completed => {}
            Waited::Refused(reason, retry_after) => {
                evidence.fetch = FetchDecision::Refused { reason, retry_after: Some(retry_after) };
                return Err(first.with_keys(evidence));
            }
            Waited::TimedOut => {
                evidence.fetch =
                    FetchDecision::Refused { reason: NoFetchReason::WaitTimedOut, retry_after: None };
                return Err(first.with_keys(evidence));
            }
        }
        let after = inner.snapshot.load_full();
        let now = Instant::now();
        let succeeded = after.failures == 0;
        let mut evidence = KeyEvidence {
            fetch: FetchDecision::Made { trigger, succeeded },
            kid_negatively_cached: evidence.kid_negatively_cached,
            ..inner.evidence(&after, now)
        };
        let Some(new_keys) = after.usable(now) else {
            return Err(first.with_keys(evidence).with_fetch_error(after.last_error.clone()));
        };
        match verify_in(new_keys, &after, now, Some(kid), alg, message, signature) {
            Ok((key, grace)) => {
                inner.control().unresolved.resolved(kid);
                evidence.grace = grace;
                // The kid was known before the fetch, and what verifies now is other material.
                evidence.material_changed =
                    !old_material.is_empty() && !old_material.contains(key.thumbprint());
                Ok((Arc::clone(key), evidence))
            }
            Err(second) => {
                let unresolved = matches!(second.reason(), Reason::UnknownKid | Reason::InvalidSignature);
                // Only a fetch that succeeded proves the kid's key is not (yet) published.
                if unresolved && succeeded {
                    inner.control().unresolved.missed(kid, now, &inner.settings);
                }
                if second.reason() == Reason::InvalidSignature {
                    evidence.material_changed =
                        new_keys.keys_with_kid(kid).any(|k| !old_material.contains(k.thumbprint()));
                }
                Err(second.with_keys(evidence).with_fetch_error(if succeeded {
                    None
                } else {
                    after.last_error.clone()
                }))
            }
        }
    }
}

/// The trigger of a fetch that is due by schedule at `now`.
fn due_trigger(snap: &Snapshot, now: Instant) -> Trigger {
    match (&snap.keys, snap.expires_at) {
        (None, _) => Trigger::Startup,
        (Some(_), Some(e)) if now >= e => Trigger::Ttl,
        _ if snap.next_confirmation().is_some_and(|t| now >= t) => Trigger::RemovalCheck,
        _ => Trigger::RefreshAhead,
    }
}

/// Verifies against the published set, then against removed keys that still verify; says
/// which kind of removed key verified, if one did.
fn verify_in<'a>(
    keys: &'a JwkSet,
    snap: &'a Snapshot,
    now: Instant,
    kid: Option<&str>,
    alg: crate::Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(&'a Arc<VerifyingKey>, Option<GraceKind>), Error> {
    let published = keys.verify_signature(kid, alg, message, signature);
    let published_err = match published {
        Ok(key) => return Ok((key, None)),
        Err(e) => e,
    };
    if snap.removed.is_empty() {
        return Err(published_err);
    }
    let mut tried = false;
    for r in snap.removed_active(now).filter(|r| r.key.kid() == kid && r.key.supports(alg)) {
        tried = true;
        if r.key.verify_signature(alg, message, signature).is_ok() {
            return Ok((&r.key, Some(r.kind())));
        }
    }
    if tried && published_err.reason() == Reason::UnknownKid {
        return Err(Error::new(
            Reason::InvalidSignature,
            "signature does not verify under the recently removed key with this kid",
        ));
    }
    Err(published_err)
}

impl Inner {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A poisoned lock only means another thread panicked mid-update of plain data; the
        // state is still coherent enough to keep serving.
        self.control.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unix_at(&self, now: Instant, t: Instant) -> i64 {
        self.clock.now_unix().saturating_sub(health::signed_secs(now, t))
    }

    /// What the snapshot says about the key set, before any fetch decision.
    fn evidence(&self, snap: &Snapshot, now: Instant) -> KeyEvidence {
        let mut evidence =
            KeyEvidence::new(snap.fetched_at_unix, snap.fetched_at.map(|t| now.duration_since(t)));
        evidence.stale = snap.expires_at.is_some_and(|e| now >= e);
        evidence
    }

    fn unavailable(&self, snap: &Snapshot) -> Error {
        let detail = match (&snap.keys, &snap.last_error) {
            (None, Some(_)) => format!("no key set for {} has ever been fetched", self.name),
            (None, None) => format!("no key set for {} has been fetched yet", self.name),
            (Some(_), _) => format!(
                "the last good key set for {} is more than {:?} past its expiry",
                self.name, self.settings.max_stale
            ),
        };
        Error::new(Reason::KeysUnavailable, detail).with_fetch_error(snap.last_error.clone())
    }

    /// Starts a fetch unless one is running or one completed since `seen_attempt`.
    /// No fetch but a manual one starts while the IdP's rate-limit hold lasts; token-driven
    /// (`limited`) fetches must also fit the issuer's budget (a held fetch spends none of it).
    fn start_fetch(
        self: &Arc<Self>,
        trigger: Trigger,
        seen_attempt: u64,
        limited: bool,
    ) -> Result<(), (NoFetchReason, Duration)> {
        let mut control = self.control();
        if control.inflight || *self.attempts.borrow() != seen_attempt {
            return Ok(());
        }
        let now = Instant::now();
        if trigger != Trigger::Manual
            && let Some(wait) = self.snapshot.load().held_for(now)
        {
            return Err((NoFetchReason::RateLimited, wait));
        }
        // Replicas that see a new kid at the same moment would otherwise fetch in lockstep:
        // token-driven requests are sent after a random delay (requests arriving meanwhile
        // join this fetch, which is already in flight).
        let delay = if limited { random_up_to(self.settings.token_fetch_jitter) } else { Duration::ZERO };
        if limited {
            // Signature retries have a budget of their own: a tampered token (a failed
            // signature under a known kid) must not put off the fetch of a kid rotated in just
            // after it, which would refuse the new key's first tokens for up to one spacing.
            let budget = if trigger == Trigger::SignatureRetry {
                &mut control.signature_budget
            } else {
                &mut control.budget
            };
            budget.try_take(now, delay, &self.settings)?;
        }
        control.inflight = true;
        drop(control);
        let inner = Arc::clone(self);
        self.runtime.spawn(async move { inner.run_fetch(trigger, delay).await });
        Ok(())
    }

    /// Starts a fetch that is not token-driven (so outside the budget), unless one is running.
    fn start_scheduled(self: &Arc<Self>, trigger: Trigger, seen_attempt: u64) {
        // Refused only during a rate-limit hold, which also moved `next_due` past it: the
        // background task (or the next request after it) makes the fetch then.
        let _started = self.start_fetch(trigger, seen_attempt, false);
    }

    /// Starts (or joins) a fetch and waits for it, at most `fetch_wait`.
    async fn fetch_and_wait(self: &Arc<Self>, trigger: Trigger, seen_attempt: u64, limited: bool) -> Waited {
        self.fetch_and_wait_for(trigger, seen_attempt, limited, Some(self.settings.fetch_wait)).await
    }

    /// As [`Inner::fetch_and_wait`], with an explicit deadline (`None`: until the fetch ends).
    async fn fetch_and_wait_for(
        self: &Arc<Self>,
        trigger: Trigger,
        seen_attempt: u64,
        limited: bool,
        deadline: Option<Duration>,
    ) -> Waited {
        let mut rx = self.attempts.subscribe();
        if *rx.borrow_and_update() != seen_attempt {
            return Waited::Completed;
        }
        if let Err((reason, retry_after)) = self.start_fetch(trigger, seen_attempt, limited) {
            return Waited::Refused(reason, retry_after);
        }
        let wait = async {
            while *rx.borrow_and_update() == seen_attempt {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        let completed = match deadline {
            Some(limit) => tokio::time::timeout(limit, wait).await.unwrap_or(false),
            None => wait.await,
        };
        if completed { Waited::Completed } else { Waited::TimedOut }
    }

    /// Waits until a rate-limit hold of `hold` ends, then for the fetch made at its end (by
    /// the background task, or started here when there is none), at most `fetch_wait` in all.
    async fn wait_out_hold(self: &Arc<Self>, hold: Duration, seen_attempt: u64) -> Waited {
        let mut rx = self.attempts.subscribe();
        let completed = |rx: &mut watch::Receiver<u64>| *rx.borrow_and_update() != seen_attempt;
        if completed(&mut rx) {
            return Waited::Completed;
        }
        let deadline = later(Instant::now(), self.settings.fetch_wait);
        let ended = tokio::time::sleep(hold);
        tokio::pin!(ended);
        loop {
            tokio::select! {
                () = &mut ended => break,
                changed = rx.changed() => {
                    // A fetch completed meanwhile (a manual refresh): use its outcome.
                    if changed.is_err() || completed(&mut rx) {
                        return Waited::Completed;
                    }
                }
            }
        }
        let trigger = due_trigger(&self.snapshot.load(), Instant::now());
        self.start_scheduled(trigger, seen_attempt);
        let wait = async {
            while !completed(&mut rx) {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(true) => Waited::Completed,
            _ => Waited::TimedOut,
        }
    }

    async fn run_fetch(self: Arc<Self>, trigger: Trigger, delay: Duration) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = self.fetch_once().await;
        let now = Moment { at: Instant::now(), unix: self.clock.now_unix() };
        let prev = self.snapshot.load_full();
        let attempt = prev.attempt + 1;
        let next = match result {
            Ok((fetched, jwks_uri)) => {
                self.after_response(&prev, fetched, jwks_uri, now, attempt, trigger).await
            }
            Err(err) => self.failed(&prev, now.at, attempt, err, trigger),
        };
        self.publish_gauges(&next, now.at);
        self.snapshot.store(Arc::new(next));
        self.control().inflight = false;
        self.attempts.send_replace(attempt);
    }

    async fn after_response(
        &self,
        prev: &Snapshot,
        fetched: Fetched,
        jwks_uri: String,
        now: Moment,
        attempt: u64,
        trigger: Trigger,
    ) -> Snapshot {
        let settings = &self.settings;
        let ttl =
            ttl::ttl_from_headers(&fetched.facts, settings.min_ttl, settings.max_ttl, settings.default_ttl);
        let count = |result: &'static str| {
            metrics::counter!(telemetry::JWKS_FETCHES_TOTAL, "issuer" => self.name.to_string(), "trigger" => trigger.as_str(), "result" => result).increment(1);
        };
        let Some(body) = fetched.body else {
            count("not_modified");
            tracing::debug!(issuer = %self.name, trigger = trigger.as_str(), "key set not modified");
            let removed = state::removed_after_renewal(prev, now.at, true, &self.events);
            return self.fetched(prev.keys.clone(), removed, now, ttl, attempt, fetched.facts);
        };
        match JwkSet::from_json_with_limits(&body, settings.http.max_body_bytes, settings.max_keys) {
            Ok(set) if !set.is_empty() => {
                count("success");
                self.save_warm(&body, &jwks_uri).await;
                let mut control = self.control();
                control.validators = Validators {
                    etag: fetched.facts.etag.clone(),
                    last_modified: fetched.facts.last_modified.clone(),
                };
                control.jwks_uri = Some(jwks_uri);
                control.stale_warned = false;
                drop(control);
                if prev.failures > 0 {
                    tracing::info!(issuer = %self.name, keys = set.len(), "key set fetched again after failures");
                }
                let removed = state::removed_after_fetch(prev, &set, now, settings, &self.events);
                self.fetched(Some(Arc::new(set)), removed, now, ttl, attempt, fetched.facts)
            }
            parsed => {
                let detail = match parsed {
                    Ok(set) => format!("the key set has no usable key ({} set aside)", set.set_aside().len()),
                    Err(e) => e.to_string(),
                };
                let mut err = FetchError::new(FetchStage::Parse, &jwks_uri, detail);
                err.facts = Some(Box::new(fetched.facts));
                self.failed(prev, now.at, attempt, err, trigger)
            }
        }
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

    /// When the next scheduled fetch is due: ahead of expiry, or sooner when a removal awaits
    /// its confirming fetch.
    fn schedule(&self, now: Instant, ttl: Duration, removed: &[RemovedKey]) -> Instant {
        let lead = jitter(self.settings.refresh_ahead, 0.1);
        let wait = if ttl > lead { ttl - lead } else { ttl / 2 };
        let refresh = later(now, wait);
        removed.iter().filter_map(|r| r.confirm_from).fold(refresh, Instant::min)
    }

    /// The state after a successful fetch (200 or 304): fresh for `ttl`.
    fn fetched(
        &self,
        keys: Option<Arc<JwkSet>>,
        removed: Vec<RemovedKey>,
        now: Moment,
        ttl: Duration,
        attempt: u64,
        facts: HttpFacts,
    ) -> Snapshot {
        let expires = later(now.at, ttl);
        Snapshot {
            keys,
            next_due: self.schedule(now.at, ttl, &removed),
            removed,
            fetched_at: Some(now.at),
            fetched_at_unix: Some(now.unix),
            expires_at: Some(expires),
            stale_until: Some(later(expires, self.settings.max_stale)),
            held_until: None,
            attempt,
            unavailable_since: None,
            last_error: None,
            last_response: Some(facts),
            failures: 0,
        }
    }

    fn failed(
        &self,
        prev: &Snapshot,
        now: Instant,
        attempt: u64,
        err: FetchError,
        trigger: Trigger,
    ) -> Snapshot {
        let rate_limit = http::rate_limit_of(&err);
        let result = if rate_limit.is_some() { "rate_limited" } else { "error" };
        metrics::counter!(telemetry::JWKS_FETCHES_TOTAL, "issuer" => self.name.to_string(), "trigger" => trigger.as_str(), "result" => result).increment(1);
        let failures = prev.failures.saturating_add(1);
        let exp = failures.saturating_sub(1).min(16);
        let backoff = self
            .settings
            .outage_backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.settings.outage_backoff_max);
        let (next_due, held_until) = match rate_limit {
            Some(asked) => {
                // Wait what the IdP asked (capped, at least the first backoff; its absence
                // means the usual backoff), then a jitter: within a quarter of that for the
                // first refusals in a row, so a small fleet uses every slot the IdP frees; from
                // then on a random part of a backoff that doubles per refusal, so a large
                // fleet that was refused together spreads its retries ever wider.
                let asked = asked
                    .map_or(backoff, |a| a.min(self.settings.max_retry_after))
                    .max(self.settings.outage_backoff_min);
                let spread = match failures.checked_sub(PROMPT_RETRIES) {
                    None | Some(0) => asked / 4,
                    Some(beyond) => self
                        .settings
                        .outage_backoff_min
                        .saturating_mul(1u32 << beyond.min(16))
                        .min(self.settings.outage_backoff_max),
                };
                let until = later(later(now, asked), random_up_to(spread));
                tracing::warn!(issuer = %self.name, trigger = trigger.as_str(), status = err.facts.as_deref().map(|f| f.status), url = %err.url, hold_ms = u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX), "the IdP rate-limited the key set fetch; no fetch until the time it asked for");
                (until, Some(until))
            }
            None => {
                tracing::warn!(issuer = %self.name, trigger = trigger.as_str(), stage = err.stage.as_str(), url = %err.url, "key set fetch failed: {}", err.detail);
                // A server asking for time gets it (within the cap), instead of the failure-count backoff.
                let asked = err.facts.as_deref().and_then(http::retry_after).unwrap_or_default();
                let backoff = backoff.max(asked.min(self.settings.outage_backoff_max));
                (later(now, jitter(backoff, 0.1)), None)
            }
        };
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
        let removed = state::removed_after_renewal(prev, now, false, &self.events);
        Snapshot {
            keys: prev.keys.clone(),
            removed,
            fetched_at: prev.fetched_at,
            fetched_at_unix: prev.fetched_at_unix,
            expires_at: prev.expires_at,
            stale_until,
            next_due,
            held_until,
            attempt,
            unavailable_since: if unavailable { prev.unavailable_since.or(Some(now)) } else { None },
            last_response: err.facts.as_deref().cloned().or_else(|| prev.last_response.clone()),
            last_error: Some(err),
            failures,
        }
    }

    fn publish_gauges(&self, snap: &Snapshot, now: Instant) {
        let issuer = self.name.to_string();
        let removed = snap.removed_active(now).count();
        let keys = snap.keys.as_ref().map_or(0, |k| k.len()) + removed;
        metrics::gauge!(telemetry::JWKS_KEYS, "issuer" => issuer.clone()).set(keys as f64);
        metrics::gauge!(telemetry::JWKS_REMOVED_KEYS_VERIFYING, "issuer" => issuer.clone())
            .set(removed as f64);
        if let Some(fetched) = snap.fetched_at {
            metrics::gauge!(telemetry::JWKS_AGE_SECONDS, "issuer" => issuer.clone())
                .set(now.duration_since(fetched).as_secs_f64());
        }
        if let Some(unix) = snap.fetched_at_unix {
            metrics::gauge!(telemetry::JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS, "issuer" => issuer)
                .set(unix as f64);
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

    /// Saves the last good set for warm start (atomically: temp file, then rename).
    async fn save_warm(&self, body: &[u8], uri: &str) {
        let Some(path) = self.warm_path() else { return };
        let record = warm::record(self.clock.now_unix(), &self.name, uri, body);
        if let Err(e) = warm::write_atomically(&path, record).await {
            tracing::warn!(issuer = %self.name, path = %path.display(), "cannot save the key set for warm start: {e}");
        }
    }

    /// Loads a saved set younger than `max_stale`, serving it as stale until fetched anew.
    fn load_warm(&self) -> Option<Snapshot> {
        let path = self.warm_path()?;
        let bytes = std::fs::read(&path).ok()?;
        let now_unix = self.clock.now_unix();
        let limits = (self.settings.http.max_body_bytes, self.settings.max_keys);
        let cached = match warm::parse_record(&path, &bytes, now_unix, limits.0, limits.1) {
            Ok(cached) => cached,
            Err(e) => {
                tracing::warn!(issuer = %self.name, "saved key set not used: {e}");
                return None;
            }
        };
        let age = u64::try_from(now_unix.saturating_sub(cached.saved_at_unix)).unwrap_or(0);
        let max_stale = self.settings.max_stale.as_secs();
        if age >= max_stale {
            tracing::info!(issuer = %self.name, age_secs = age, "saved key set is older than max_stale; not used");
            return None;
        }
        if cached.set.is_empty() {
            return None;
        }
        tracing::info!(issuer = %self.name, age_secs = age, keys = cached.set.len(), "loaded the saved key set (warm start)");
        let now = Instant::now();
        Some(Snapshot {
            keys: Some(Arc::new(cached.set)),
            fetched_at_unix: Some(cached.saved_at_unix),
            expires_at: Some(now),
            stale_until: Some(later(now, Duration::from_secs(max_stale - age))),
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
        let (what, url) = match &self.origin {
            Origin::JwksUri(uri) => ("JWKS URL", uri),
            Origin::Discovery { issuer } => ("issuer", issuer),
        };
        http.check_url(url).map_err(|e| ConfigError::Invalid(format!("{what} {url:?}: {}", e.detail)))?;
        let name: Arc<str> = Arc::from(self.name.unwrap_or_else(|| url.clone()));
        let now = Instant::now();
        let inner = Arc::new(Inner {
            events: Events::new(Arc::clone(&name)),
            name,
            origin: self.origin,
            settings: self.settings,
            http,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            snapshot: ArcSwap::from_pointee(Snapshot::starting(now)),
            control: Mutex::new(Control::new()),
            attempts: watch::Sender::new(0),
            runtime,
        });
        if let Some(warm) = inner.load_warm() {
            inner.snapshot.store(Arc::new(warm));
        }
        inner.start_scheduled(Trigger::Startup, 0);
        if inner.settings.background_refresh {
            let weak = Arc::downgrade(&inner);
            inner.runtime.spawn(background_refresh(weak));
        }
        Ok(JwksSource { inner })
    }
}

/// Keeps an idle source fresh: wakes at each scheduled refresh, removal check or retry, and
/// after every completed fetch (a failed token-driven fetch may move the next one earlier: the
/// end of a 429's hold is then retried without waiting for traffic). Ends with the source.
async fn background_refresh(weak: Weak<Inner>) {
    let mut completed = match weak.upgrade() {
        Some(inner) => inner.attempts.subscribe(),
        None => return,
    };
    loop {
        // Marked seen before `next_due` is read, so a fetch completing in between still wakes us.
        completed.borrow_and_update();
        let due = match weak.upgrade() {
            Some(inner) => inner.snapshot.load().next_due,
            None => return,
        };
        let wake = due.max(later(Instant::now(), Duration::from_millis(10)));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            changed = completed.changed() => {
                if changed.is_err() {
                    return; // the source is gone
                }
                continue;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let snap = inner.snapshot.load_full();
        let now = Instant::now();
        if now < snap.next_due {
            continue;
        }
        let (trigger, seen) = (due_trigger(&snap, now), snap.attempt);
        drop(snap);
        inner.fetch_and_wait(trigger, seen, false).await;
    }
}
