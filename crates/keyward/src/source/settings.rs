//! Key source settings, with the defaults of `docs/key-source.md`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::source::http::HttpSettings;

/// How a remote key set is cached, refreshed and kept through outages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceSettings {
    /// Lower bound on the TTL taken from caching headers. Default 60 s.
    pub min_ttl: Duration,
    /// Upper bound on the TTL. Default 15 min.
    pub max_ttl: Duration,
    /// TTL when the response has no caching headers. Default 5 min.
    pub default_ttl: Duration,
    /// How long before expiry a background refresh starts. Default 30 s (±10 % jitter).
    pub refresh_ahead: Duration,
    /// The window of the token-driven fetch budget (unknown kid, signature retry). Default 30 s.
    pub refresh_cooldown: Duration,
    /// Token-driven fetches allowed per `refresh_cooldown` window, per issuer and kind (unknown
    /// kids and their follow-ups; signature retries), however many kids a flood brings; they
    /// are also spaced at least window / budget apart (3.75 s by default), so the budget lasts
    /// the whole window. Default 8.
    pub unknown_kid_fetches: usize,
    /// How long after a kid was first missing from a fetch its tokens may still trigger fetches
    /// (within the budget): a key published up to this long after its first token is found
    /// within one fetch spacing of its publication. Default 60 s.
    pub follow_up_window: Duration,
    /// After its follow-up window, how long a kid that fetches kept missing is answered
    /// `unknown_kid` without any fetch. Default 30 s.
    pub negative_cache_ttl: Duration,
    /// Bound on the number of unresolved kids remembered. Default 4096.
    pub negative_cache_capacity: usize,
    /// Token-driven fetches (unknown kid, signature retry, follow-ups) wait a random time in
    /// `[0, token_fetch_jitter]` before their request, so replicas that see a new kid at the
    /// same moment do not fetch in lockstep. It adds to the spacing bound of a late-published
    /// key (3.75 s + 0.5 s by default). Must be below `fetch_wait`. Default 500 ms.
    pub token_fetch_jitter: Duration,
    /// The longest a `Retry-After` on a `429` (or a `503`) holds every fetch back; larger and
    /// unreadable-but-huge values saturate to it. Default 5 min.
    pub max_retry_after: Duration,
    /// `None` (default): a key missing from a fetch keeps verifying until a second fetch, at
    /// least `removal_confirm_after` later, also lacks it (never longer than
    /// `removal_confirm_within`). `Some(ZERO)`: dropped at the first fetch that lacks it.
    /// `Some(d)`: keeps verifying for `d` (opt-in for IdPs known to drop keys early; a pulled,
    /// compromised key then stays trusted that long). New material under the kid always drops
    /// the old key at once.
    pub removal_grace: Option<Duration>,
    /// How long after the first fetch lacking a key the confirming fetch is made. Default 5 s.
    pub removal_confirm_after: Duration,
    /// The longest a key awaiting confirmation keeps verifying. Default 60 s.
    pub removal_confirm_within: Duration,
    /// How long past its expiry the last good key set keeps serving while fetches fail. Default 6 h.
    pub max_stale: Duration,
    /// First background retry delay after a failed fetch; doubles up to `outage_backoff_max`. Default 1 s.
    pub outage_backoff_min: Duration,
    /// Longest background retry delay. Default 60 s.
    pub outage_backoff_max: Duration,
    /// How long a request may wait for an in-flight fetch before it is answered. Default 10 s.
    pub fetch_wait: Duration,
    /// Bound on the number of keys in a fetched set. Default 256.
    pub max_keys: usize,
    /// Refresh from a background task even without traffic. Default true.
    pub background_refresh: bool,
    /// Directory for the last good key set per source (warm start). Default none.
    pub cache_dir: Option<PathBuf>,
    /// HTTP timeouts, size bound and retries.
    pub http: HttpSettings,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(15 * 60),
            default_ttl: Duration::from_secs(5 * 60),
            refresh_ahead: Duration::from_secs(30),
            refresh_cooldown: Duration::from_secs(30),
            unknown_kid_fetches: 8,
            follow_up_window: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(30),
            negative_cache_capacity: 4096,
            token_fetch_jitter: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(5 * 60),
            removal_grace: None,
            removal_confirm_after: Duration::from_secs(5),
            removal_confirm_within: Duration::from_secs(60),
            max_stale: Duration::from_secs(6 * 3600),
            outage_backoff_min: Duration::from_secs(1),
            outage_backoff_max: Duration::from_secs(60),
            fetch_wait: Duration::from_secs(10),
            max_keys: crate::jose::jwks::DEFAULT_MAX_KEYS,
            background_refresh: true,
            cache_dir: None,
            http: HttpSettings::default(),
        }
    }
}

/// Upper bounds on durations, so no setting can overflow time arithmetic or mean "never".
pub const MAX_TTL_BOUND: Duration = Duration::from_secs(24 * 3600);
/// Upper bound on `max_stale`: 30 days.
pub const MAX_STALE_BOUND: Duration = Duration::from_secs(30 * 24 * 3600);
/// Upper bound on the cooldown, follow-up, negative-cache, wait and backoff durations: 1 hour.
pub const MAX_WINDOW_BOUND: Duration = Duration::from_secs(3600);

impl SourceSettings {
    /// The least time between two token-driven fetches: `refresh_cooldown / unknown_kid_fetches`.
    pub fn fetch_spacing(&self) -> Duration {
        let budget = u32::try_from(self.unknown_kid_fetches.max(1)).unwrap_or(u32::MAX);
        self.refresh_cooldown / budget
    }

    /// Checks that the settings are coherent and within their bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        let bounded = [
            ("min_ttl", self.min_ttl, MAX_TTL_BOUND),
            ("max_ttl", self.max_ttl, MAX_TTL_BOUND),
            ("default_ttl", self.default_ttl, MAX_TTL_BOUND),
            ("refresh_ahead", self.refresh_ahead, MAX_TTL_BOUND),
            ("refresh_cooldown", self.refresh_cooldown, MAX_WINDOW_BOUND),
            ("follow_up_window", self.follow_up_window, MAX_WINDOW_BOUND),
            ("negative_cache_ttl", self.negative_cache_ttl, MAX_WINDOW_BOUND),
            ("token_fetch_jitter", self.token_fetch_jitter, MAX_WINDOW_BOUND),
            ("max_retry_after", self.max_retry_after, MAX_WINDOW_BOUND),
            ("removal_grace", self.removal_grace.unwrap_or_default(), MAX_TTL_BOUND),
            ("removal_confirm_after", self.removal_confirm_after, MAX_WINDOW_BOUND),
            ("removal_confirm_within", self.removal_confirm_within, MAX_WINDOW_BOUND),
            ("max_stale", self.max_stale, MAX_STALE_BOUND),
            ("outage_backoff_min", self.outage_backoff_min, MAX_WINDOW_BOUND),
            ("outage_backoff_max", self.outage_backoff_max, MAX_WINDOW_BOUND),
            ("fetch_wait", self.fetch_wait, MAX_WINDOW_BOUND),
            ("connect_timeout", self.http.connect_timeout, MAX_WINDOW_BOUND),
            ("total_timeout", self.http.total_timeout, MAX_WINDOW_BOUND),
            ("retry_backoff", self.http.retry_backoff, MAX_WINDOW_BOUND),
            ("retry_backoff_max", self.http.retry_backoff_max, MAX_WINDOW_BOUND),
        ];
        for (name, value, bound) in bounded {
            if value > bound {
                return invalid(format!("{name} {value:?} is above its upper bound of {bound:?}"));
            }
        }
        if self.min_ttl > self.max_ttl {
            return invalid(format!("min_ttl {:?} is above max_ttl {:?}", self.min_ttl, self.max_ttl));
        }
        if let Some(grace) = self.removal_grace
            && grace > self.max_ttl
        {
            return invalid(format!(
                "removal_grace {grace:?} is above max_ttl {:?}: a removed key would outlive any cached set",
                self.max_ttl
            ));
        }
        if self.removal_confirm_after > self.removal_confirm_within {
            return invalid(format!(
                "removal_confirm_after {:?} is above removal_confirm_within {:?}",
                self.removal_confirm_after, self.removal_confirm_within
            ));
        }
        if self.token_fetch_jitter >= self.fetch_wait {
            return invalid(format!(
                "token_fetch_jitter {:?} is not below fetch_wait {:?}: token-driven fetches would time out",
                self.token_fetch_jitter, self.fetch_wait
            ));
        }
        if self.unknown_kid_fetches == 0 {
            return Err(ConfigError::ZeroBound("unknown_kid_fetches"));
        }
        if self.max_keys == 0 {
            return Err(ConfigError::ZeroBound("max_keys"));
        }
        if self.http.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBound("max_body_bytes"));
        }
        if self.http.total_timeout.is_zero() || self.http.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroBound("HTTP timeouts"));
        }
        if self.fetch_wait.is_zero() {
            return Err(ConfigError::ZeroBound("fetch_wait"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_settings_are_bounded() {
        assert!(SourceSettings::default().validate().is_ok());
        let jitter_at_wait =
            SourceSettings { token_fetch_jitter: Duration::from_secs(10), ..Default::default() };
        let err = jitter_at_wait.validate().unwrap_err().to_string();
        assert!(err.contains("token_fetch_jitter 10s is not below fetch_wait 10s"), "{err}");
        let huge_cap = SourceSettings { max_retry_after: Duration::from_secs(3601), ..Default::default() };
        let err = huge_cap.validate().unwrap_err().to_string();
        assert!(err.contains("max_retry_after 3601s is above its upper bound"), "{err}");
        let no_jitter = SourceSettings { token_fetch_jitter: Duration::ZERO, ..Default::default() };
        assert!(no_jitter.validate().is_ok());
    }
}
