//! A source's state: the snapshot readers load lock-free, and the writer-side control state
//! (token-driven fetch budget, unresolved kids) touched only under a short lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::later;
use crate::jose::jwk::VerifyingKey;
use crate::jose::jwks::JwkSet;
use crate::source::events::{Events, KeyEventKind};
use crate::source::evidence::{GraceKind, NoFetchReason};
use crate::source::http::{FetchError, HttpFacts, Validators};
use crate::source::settings::SourceSettings;

/// What readers see: replaced whole after every fetch attempt.
pub(crate) struct Snapshot {
    pub(crate) keys: Option<Arc<JwkSet>>,
    /// Keys no longer published that still verify until their deadline.
    pub(crate) removed: Vec<RemovedKey>,
    pub(crate) fetched_at: Option<Instant>,
    pub(crate) fetched_at_unix: Option<i64>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) stale_until: Option<Instant>,
    pub(crate) next_due: Instant,
    /// The IdP rate-limited the last fetch and asked us to wait: no fetch but a manual one
    /// starts before this instant (it includes the jitter that spreads a fleet's retries).
    pub(crate) held_until: Option<Instant>,
    pub(crate) attempt: u64,
    pub(crate) unavailable_since: Option<Instant>,
    pub(crate) last_error: Option<FetchError>,
    pub(crate) last_response: Option<HttpFacts>,
    pub(crate) failures: u32,
}

impl Snapshot {
    /// Nothing fetched, nothing attempted: the first fetch is due at once.
    pub(crate) fn starting(now: Instant) -> Self {
        Self {
            keys: None,
            removed: Vec::new(),
            fetched_at: None,
            fetched_at_unix: None,
            expires_at: None,
            stale_until: None,
            next_due: now,
            held_until: None,
            attempt: 0,
            unavailable_since: None,
            last_error: None,
            last_response: None,
            failures: 0,
        }
    }

    /// The key set if it may still serve: within `max_stale` past its expiry.
    pub(crate) fn usable(&self, now: Instant) -> Option<&JwkSet> {
        let keys = self.keys.as_deref()?;
        match self.stale_until {
            Some(limit) if now > limit => None,
            _ => Some(keys),
        }
    }

    /// How long fetches are still held back because the IdP rate-limited us, if they are.
    pub(crate) fn held_for(&self, now: Instant) -> Option<Duration> {
        self.held_until.filter(|t| now < *t).map(|t| t - now)
    }

    /// Removed keys that still verify at `now`.
    pub(crate) fn removed_active(&self, now: Instant) -> impl Iterator<Item = &RemovedKey> {
        self.removed.iter().filter(move |r| r.active(now))
    }

    /// The earliest instant a removal may be confirmed, if any awaits confirmation.
    pub(crate) fn next_confirmation(&self) -> Option<Instant> {
        self.removed.iter().filter_map(|r| r.confirm_from).min()
    }
}

/// A key that left the published set but still verifies until `until`.
#[derive(Clone)]
pub(crate) struct RemovedKey {
    pub(crate) key: Arc<VerifyingKey>,
    pub(crate) missing_since_unix: i64,
    pub(crate) until: Instant,
    pub(crate) until_unix: i64,
    /// Awaiting confirmation: a successful fetch at or after this instant that still lacks the
    /// key confirms the removal. `None` in the opt-in removal grace.
    pub(crate) confirm_from: Option<Instant>,
}

impl RemovedKey {
    pub(crate) fn active(&self, now: Instant) -> bool {
        now < self.until
    }

    pub(crate) fn kind(&self) -> GraceKind {
        match self.confirm_from {
            Some(_) => GraceKind::AwaitingConfirmation { missing_since_unix: self.missing_since_unix },
            None => GraceKind::RemovalGrace { until_unix: self.until_unix },
        }
    }

    fn same_key(&self, other: &VerifyingKey) -> bool {
        same_key(&self.key, other)
    }
}

fn same_key(a: &VerifyingKey, b: &VerifyingKey) -> bool {
    a.thumbprint() == b.thumbprint() && a.kid() == b.kid()
}

/// True when `set` publishes `key`'s kid under different material (and not `key` itself).
fn material_changed(set: &JwkSet, key: &VerifyingKey) -> bool {
    key.kid().is_some_and(|kid| {
        let mut with_kid = set.keys_with_kid(kid).peekable();
        with_kid.peek().is_some() && !with_kid.any(|k| same_key(k, key))
    })
}

/// The wall-clock and monotonic "now" of one fetch outcome.
#[derive(Clone, Copy)]
pub(crate) struct Moment {
    pub(crate) at: Instant,
    pub(crate) unix: i64,
}

impl Moment {
    fn unix_after(self, d: Duration) -> i64 {
        self.unix.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The removed keys after a fetch returned `set`: keys missing from it start their removal
/// (confirmed by a later fetch, or the opt-in grace), removals are confirmed, reappearing keys
/// come back, and a kid with new material drops its old material at once. Emits the events.
pub(crate) fn removed_after_fetch(
    prev: &Snapshot,
    set: &JwkSet,
    now: Moment,
    settings: &SourceSettings,
    events: &Events,
) -> Vec<RemovedKey> {
    let published = |key: &VerifyingKey| set.keys().iter().any(|k| same_key(k, key));
    let mut removed = Vec::new();
    for r in &prev.removed {
        if published(&r.key) {
            events.emit(&r.key, KeyEventKind::Reappeared);
        } else if material_changed(set, &r.key) {
            events.emit(&r.key, KeyEventKind::MaterialChanged);
        } else if !r.active(now.at) || r.confirm_from.is_some_and(|t| now.at >= t) {
            events.emit(&r.key, KeyEventKind::Retired);
        } else {
            removed.push(r.clone());
        }
    }
    let Some(old) = &prev.keys else { return removed };
    for key in old.keys() {
        if published(key) {
            continue;
        }
        if material_changed(set, key) {
            events.emit(key, KeyEventKind::MaterialChanged);
            continue;
        }
        let (grace, confirm_from) = match settings.removal_grace {
            None => (settings.removal_confirm_within, Some(later(now.at, settings.removal_confirm_after))),
            Some(grace) => (grace, None),
        };
        events.emit(key, KeyEventKind::Removed { grace });
        if !grace.is_zero() {
            removed.push(RemovedKey {
                key: Arc::clone(key),
                missing_since_unix: now.unix,
                until: later(now.at, grace),
                until_unix: now.unix_after(grace),
                confirm_from,
            });
        }
    }
    for key in set.keys() {
        let known =
            old.keys().iter().any(|k| same_key(k, key)) || prev.removed.iter().any(|r| r.same_key(key));
        if !known {
            events.emit(key, KeyEventKind::Added);
        }
    }
    removed
}

/// The removed keys after a 304 (the set is unchanged) or a failed fetch: removals due for
/// confirmation are confirmed by a 304, and keys past their deadline retire.
pub(crate) fn removed_after_renewal(
    prev: &Snapshot,
    now: Instant,
    confirmed_by_fetch: bool,
    events: &Events,
) -> Vec<RemovedKey> {
    let mut removed = Vec::new();
    for r in &prev.removed {
        let confirmed = confirmed_by_fetch && r.confirm_from.is_some_and(|t| now >= t);
        if confirmed || !r.active(now) {
            events.emit(&r.key, KeyEventKind::Retired);
        } else {
            removed.push(r.clone());
        }
    }
    removed
}

/// Writer-side state, touched only under a short lock (never across an await).
pub(crate) struct Control {
    pub(crate) inflight: bool,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) validators: Validators,
    /// Unknown-kid fetches and their follow-ups.
    pub(crate) budget: FetchBudget,
    /// Signature retries (a failed signature under a known kid): the same rule, its own
    /// budget, so tampered tokens cannot put off the fetch of a key rotated in just after them.
    pub(crate) signature_budget: FetchBudget,
    pub(crate) unresolved: Unresolved,
    pub(crate) stale_warned: bool,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self {
            inflight: false,
            jwks_uri: None,
            validators: Validators::default(),
            budget: FetchBudget::default(),
            signature_budget: FetchBudget::default(),
            unresolved: Unresolved::default(),
            stale_warned: false,
        }
    }
}

/// A per-issuer budget of token-driven fetches (one for unknown kids, one for signature retries): at most
/// `unknown_kid_fetches` in any `refresh_cooldown` window, spaced at least window / budget
/// apart, so a kid flood can neither exceed the budget nor spend it all at once and starve
/// the follow-ups that find a late-published key. It records when each request is sent
/// (after its jitter), so the IdP sees the spacing and the count, jitter or not.
#[derive(Default)]
pub(crate) struct FetchBudget {
    recent: VecDeque<Instant>,
}

impl FetchBudget {
    /// Takes one fetch from the budget, sent `delay` from `now` (its jitter), or says why not
    /// and how long until one is allowed.
    pub(crate) fn try_take(
        &mut self,
        now: Instant,
        delay: Duration,
        settings: &SourceSettings,
    ) -> Result<(), (NoFetchReason, Duration)> {
        let window = settings.refresh_cooldown;
        let budget = settings.unknown_kid_fetches;
        let send = later(now, delay);
        // Requests more than a window before this one no longer count against it.
        while self.recent.front().is_some_and(|t| send.saturating_duration_since(*t) > window) {
            self.recent.pop_front();
        }
        let spacing = settings.fetch_spacing();
        if let Some(last) = self.recent.back() {
            let allowed = later(*last, spacing);
            if now < allowed {
                return Err((NoFetchReason::Cooldown, allowed - now));
            }
        }
        if self.recent.len() >= budget {
            let allowed = self.recent.front().map_or(now, |t| later(*t, window));
            return Err((
                NoFetchReason::Limiter,
                allowed.saturating_duration_since(now) + Duration::from_millis(1),
            ));
        }
        self.recent.push_back(send);
        Ok(())
    }
}

/// What is known of a kid that a successful fetch did not resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KidState {
    /// Never missed, or forgotten: a fetch may be made for it (through the budget).
    New,
    /// Missed within the follow-up window: a fetch may still be made for it (through the
    /// budget), since its key may be published any second.
    FollowingUp,
    /// Missed, and past its follow-up window: answered without a fetch until the negative
    /// cache entry expires.
    Negative { retry_after: Duration },
}

/// How long after its first miss a kid is followed up: the window, plus one spacing and one
/// request jitter, so a key published at the window's very end is still fetched (the next
/// request may come a spacing after the last one, and its jitter later still).
fn follow_up_span(settings: &SourceSettings) -> Duration {
    settings
        .follow_up_window
        .saturating_add(settings.fetch_spacing())
        .saturating_add(settings.token_fetch_jitter)
}

#[derive(Clone, Copy)]
struct Miss {
    first: Instant,
    last: Instant,
}

/// Kids that successful fetches did not resolve (not published, or their material did not
/// verify the token), bounded in number.
#[derive(Default)]
pub(crate) struct Unresolved {
    misses: HashMap<String, Miss>,
}

impl Unresolved {
    pub(crate) fn state(&self, kid: &str, now: Instant, settings: &SourceSettings) -> KidState {
        let Some(miss) = self.misses.get(kid) else { return KidState::New };
        if now <= later(miss.first, follow_up_span(settings)) {
            return KidState::FollowingUp;
        }
        let until = later(miss.last, settings.negative_cache_ttl);
        if now < until { KidState::Negative { retry_after: until - now } } else { KidState::New }
    }

    /// Records that a successful fetch at `now` did not resolve `kid`.
    pub(crate) fn missed(&mut self, kid: &str, now: Instant, settings: &SourceSettings) {
        let fresh = matches!(self.state(kid, now, settings), KidState::New);
        if let Some(miss) = self.misses.get_mut(kid) {
            if fresh {
                miss.first = now;
            }
            miss.last = now;
            return;
        }
        if self.misses.len() >= settings.negative_cache_capacity {
            let follow_up = follow_up_span(settings);
            self.misses.retain(|_, m| {
                now <= later(m.first, follow_up) || now < later(m.last, settings.negative_cache_ttl)
            });
        }
        if self.misses.len() < settings.negative_cache_capacity {
            self.misses.insert(kid.to_owned(), Miss { first: now, last: now });
        }
    }

    /// Forgets `kid`: its key was found.
    pub(crate) fn resolved(&mut self, kid: &str) {
        self.misses.remove(kid);
    }
}
