//! What the key source knew and did for one verification, as data.
//!
//! Every verification through a remote source carries a [`KeyEvidence`] (on [`crate::Verified`]
//! and on [`crate::Error`]), so `doctor`, a gateway's logs and the CLI's JSON can say why a token
//! was answered the way it was without reading message text.

use std::time::Duration;

use crate::source::Trigger;

/// What the key source knew and did while verifying one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyEvidence {
    /// Unix time of the last successful fetch of the key set used (200 or 304).
    pub fetched_at_unix: Option<i64>,
    /// How old that key set was when the token was checked.
    pub age: Option<Duration>,
    /// Whether this verification caused (or joined) a fetch, or why none was made.
    pub fetch: FetchDecision,
    /// True when the kid was answered from the unknown-kid cache: a recent successful fetch
    /// did not contain it.
    pub kid_negatively_cached: bool,
    /// Set when the key that verified the token is no longer published: it awaits the
    /// confirming fetch, or it is in the opt-in removal grace.
    pub grace: Option<GraceKind>,
    /// True when a fetch showed that the token's kid now names different key material.
    pub material_changed: bool,
    /// True when the key set is past its TTL and served only because refreshing it fails.
    pub stale: bool,
}

impl KeyEvidence {
    pub(crate) fn new(fetched_at_unix: Option<i64>, age: Option<Duration>) -> Self {
        Self {
            fetched_at_unix,
            age,
            fetch: FetchDecision::NotNeeded,
            kid_negatively_cached: false,
            grace: None,
            material_changed: false,
            stale: false,
        }
    }
}

/// Whether a verification made the key source fetch.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchDecision {
    /// The key set in hand answered the token; no fetch was needed.
    NotNeeded,
    /// This verification started or joined a fetch and used its outcome.
    Made {
        /// Why the fetch was made.
        trigger: Trigger,
        /// True when the fetch completed with a usable answer (200 or 304) in time.
        succeeded: bool,
    },
    /// A fetch would have helped but was not made.
    Refused {
        /// Why not.
        reason: NoFetchReason,
        /// How long until a fetch for this token may be made again, when known.
        retry_after: Option<Duration>,
    },
}

impl FetchDecision {
    /// `none`, `made` or `refused`: the stable name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotNeeded => "none",
            Self::Made { .. } => "made",
            Self::Refused { .. } => "refused",
        }
    }
}

/// Why a fetch that could have helped a token was not made.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoFetchReason {
    /// The issuer's budget of token-driven fetches (8 per 30 s by default) is spent.
    Limiter,
    /// Token-driven fetches are spaced (window / budget, 3.75 s by default); the last one was
    /// too recent.
    Cooldown,
    /// The kid was missing from recent fetches and is no longer followed up; it is answered
    /// from the unknown-kid cache until it expires.
    NegativeCache,
    /// Fetches are failing; the next attempt waits for the outage backoff.
    OutageBackoff,
    /// The IdP rate-limited the last fetch (`429`, or `503` with `Retry-After`): no fetch of
    /// any kind but a manual one is made before the time it asked for, plus a jitter.
    RateLimited,
    /// A fetch was started but did not finish within `fetch_wait`; it goes on in the background.
    WaitTimedOut,
}

impl NoFetchReason {
    /// The stable snake_case name: `limiter`, `cooldown`, `negative_cache`, `outage_backoff`,
    /// `rate_limited`, `wait_timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limiter => "limiter",
            Self::Cooldown => "cooldown",
            Self::NegativeCache => "negative_cache",
            Self::OutageBackoff => "outage_backoff",
            Self::RateLimited => "rate_limited",
            Self::WaitTimedOut => "wait_timed_out",
        }
    }
}

/// Why a key that is no longer published still verified a token.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraceKind {
    /// The last fetch lacked the key; it verifies until a second fetch confirms the removal
    /// (about 5 s later, never more than 60 s), which rides out IdPs that flap keys.
    AwaitingConfirmation {
        /// Unix time of the first fetch that lacked the key.
        missing_since_unix: i64,
    },
    /// The opt-in removal grace (`removal_grace`) keeps the removed key verifying.
    RemovalGrace {
        /// Unix time at which the key stops verifying.
        until_unix: i64,
    },
}

impl GraceKind {
    /// `awaiting_confirmation` or `removal_grace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingConfirmation { .. } => "awaiting_confirmation",
            Self::RemovalGrace { .. } => "removal_grace",
        }
    }
}
