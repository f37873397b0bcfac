//! Key source settings, with the defaults of DESIGN.md's "Key source policy".

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::source::http::HttpSettings;

/// How a remote key set is cached, refreshed and kept through outages.
#[derive(Clone, Debug)]
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
    /// The window of the unknown-kid limiter, and the minimum age of a key set before a failed
    /// signature under a known kid triggers a refetch. Default 30 s.
    pub refresh_cooldown: Duration,
    /// Unknown-kid (and signature-retry) fetches allowed per cooldown window. Default 2.
    pub unknown_kid_fetches: usize,
    /// How long a kid that a fresh fetch did not contain is answered `unknown_kid` without
    /// another fetch. Default 30 s.
    pub negative_cache_ttl: Duration,
    /// Bound on the negative cache's entries. Default 4096.
    pub negative_cache_capacity: usize,
    /// How long a key removed from the published set keeps verifying. Default 15 min; at most
    /// `max_ttl`; zero removes keys at once.
    pub removal_grace: Duration,
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
            unknown_kid_fetches: 2,
            negative_cache_ttl: Duration::from_secs(30),
            negative_cache_capacity: 4096,
            removal_grace: Duration::from_secs(15 * 60),
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

impl SourceSettings {
    /// Checks that the settings are coherent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        if self.min_ttl > self.max_ttl {
            return invalid(format!("min_ttl {:?} is above max_ttl {:?}", self.min_ttl, self.max_ttl));
        }
        if self.removal_grace > self.max_ttl {
            return invalid(format!(
                "removal_grace {:?} is above max_ttl {:?}: a removed key would outlive any cached set",
                self.removal_grace, self.max_ttl
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
