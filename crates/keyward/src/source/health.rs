//! Health of a source, for dashboards, readiness probes and alerts.

use tokio::time::Instant;

use crate::source::http::{FetchError, HttpFacts};
use crate::source::state::Snapshot;

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
    /// Keys no longer published that still verify: awaiting the confirming fetch, or in the
    /// opt-in removal grace.
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
    /// How long fetches are still held back because the IdP rate-limited the last one
    /// (`429`, or `503` with `Retry-After`); `None` when they are not.
    pub rate_limited_for: Option<std::time::Duration>,
}

/// Seconds from `now` to `t` (negative when `t` is past).
pub(crate) fn signed_secs(t: Instant, now: Instant) -> i64 {
    if t >= now {
        i64::try_from((t - now).as_secs()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((now - t).as_secs()).unwrap_or(i64::MAX)
    }
}

/// The health of `snap` at `now`; `to_unix` turns instants into wall-clock seconds.
pub(crate) fn health_of(
    name: &str,
    snap: &Snapshot,
    now: Instant,
    to_unix: impl Fn(Instant) -> i64,
) -> Health {
    // Instants after a fetch are read against the fetch's own Unix second (recorded with it),
    // so one instant gives the same second on every look; `to_unix` (now's second minus whole
    // seconds elapsed) could differ by one from one look to the next.
    let unix_of = |t: Instant| match (snap.fetched_at, snap.fetched_at_unix) {
        (Some(at), Some(at_unix)) => at_unix.saturating_add(signed_secs(t, at)),
        _ => to_unix(t),
    };
    let state = match (&snap.keys, snap.stale_until, snap.expires_at) {
        (None, _, _) if snap.attempt == 0 => HealthState::Starting,
        (Some(_), Some(stale_until), Some(expires)) if now <= stale_until => {
            if now < expires {
                HealthState::Fresh
            } else {
                HealthState::Stale { since_unix: unix_of(expires) }
            }
        }
        // Keys past the stale limit became unusable at that limit (not when a fetch next
        // failed, nor "now", which moved with every look).
        (Some(_), Some(stale_until), _) => HealthState::Unavailable { since_unix: unix_of(stale_until) },
        _ => HealthState::Unavailable { since_unix: unix_of(snap.unavailable_since.unwrap_or(now)) },
    };
    Health {
        name: name.to_owned(),
        state,
        keys: snap.keys.as_ref().map_or(0, |k| k.len()),
        keys_in_grace: snap.removed_active(now).count(),
        last_success_unix: snap.fetched_at.map(&to_unix),
        expires_in_secs: snap.expires_at.map(|e| signed_secs(e, now)),
        consecutive_failures: snap.failures,
        last_error: snap.last_error.clone(),
        last_response: snap.last_response.clone(),
        rate_limited_for: snap.held_for(now),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stale_and_unavailable_times_are_the_same_on_every_look() {
        let t0 = Instant::now();
        let fetched_unix = 1_767_225_600;
        let mut snap = Snapshot::starting(t0);
        snap.keys = Some(Default::default());
        snap.attempt = 1;
        snap.fetched_at = Some(t0);
        snap.fetched_at_unix = Some(fetched_unix);
        snap.expires_at = Some(t0 + Duration::from_secs(10));
        snap.stale_until = Some(t0 + Duration::from_secs(20));
        // A `to_unix` whose second jitters, as now's truncated second minus elapsed seconds does.
        let jitter = |n: i64| move |_: Instant| fetched_unix + n;
        for (at_ms, want) in [
            (15_300, HealthState::Stale { since_unix: fetched_unix + 10 }),
            (15_900, HealthState::Stale { since_unix: fetched_unix + 10 }),
            (25_100, HealthState::Unavailable { since_unix: fetched_unix + 20 }),
            (40_000, HealthState::Unavailable { since_unix: fetched_unix + 20 }),
        ] {
            for n in [0, 1, 99] {
                let health = health_of("idp", &snap, t0 + Duration::from_millis(at_ms), jitter(n));
                assert_eq!(health.state, want, "at +{at_ms} ms");
            }
        }
    }
}
