//! How long a fetched key set stays fresh: HTTP caching headers, clamped to keyward's bounds.

use std::time::Duration;

use crate::source::http::HttpFacts;

/// The TTL the headers ask for, clamped to `[min, max]`.
///
/// `max-age` (less `Age`) wins over `Expires` (less `Date`); `no-cache`/`no-store` mean the
/// floor, not "never cache" (a verifier that refetches per request falls over under load);
/// no caching headers means `default`.
pub(crate) fn ttl_from_headers(
    facts: &HttpFacts,
    min: Duration,
    max: Duration,
    default: Duration,
) -> Duration {
    requested(facts).map_or(default, |asked| asked).clamp(min, max)
}

pub(crate) fn requested(facts: &HttpFacts) -> Option<Duration> {
    if let Some(cc) = &facts.cache_control {
        let mut max_age = None;
        for directive in cc.split(',') {
            let directive = directive.trim();
            let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "no-cache" | "no-store" => return Some(Duration::ZERO),
                "max-age" => max_age = value.trim().trim_matches('"').parse::<u64>().ok(),
                _ => {}
            }
        }
        if let Some(seconds) = max_age {
            let age = facts.age.unwrap_or(0);
            return Some(Duration::from_secs(seconds.saturating_sub(age)));
        }
    }
    let expires = httpdate::parse_http_date(facts.expires.as_deref()?).ok()?;
    // Expires is relative to the server's Date, which sidesteps our own clock skew.
    let date = facts.date.as_deref().and_then(|d| httpdate::parse_http_date(d).ok())?;
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(900);
    const DEFAULT: Duration = Duration::from_secs(300);

    fn ttl(cc: Option<&str>, age: Option<u64>, expires: Option<&str>, date: Option<&str>) -> u64 {
        let facts = HttpFacts {
            cache_control: cc.map(str::to_owned),
            age,
            expires: expires.map(str::to_owned),
            date: date.map(str::to_owned),
            ..HttpFacts::default()
        };
        ttl_from_headers(&facts, MIN, MAX, DEFAULT).as_secs()
    }

    #[test]
    fn real_idp_headers_are_clamped() {
        // Google: max-age=21532 → ceiling. Auth0: max-age=15 → floor. Okta: 44 days → ceiling.
        assert_eq!(
            ttl(Some("public, max-age=21532, must-revalidate, no-transform"), Some(5), None, None),
            900
        );
        assert_eq!(
            ttl(
                Some("public, max-age=15, stale-while-revalidate=15, stale-if-error=86400"),
                None,
                None,
                None
            ),
            60
        );
        assert_eq!(ttl(Some("max-age=3828277, must-revalidate"), None, None, None), 900);
        // Keycloak: no-cache means the floor, not "never cache".
        assert_eq!(ttl(Some("no-cache"), None, None, None), 60);
        assert_eq!(ttl(Some("private, no-store"), None, None, None), 60);
        assert_eq!(ttl(Some("max-age=600"), Some(100), None, None), 500);
        assert_eq!(ttl(None, None, None, None), 300);
        assert_eq!(ttl(Some("public"), None, None, None), 300);
        assert_eq!(
            ttl(None, None, Some("Wed, 25 Nov 2026 10:10:00 GMT"), Some("Wed, 25 Nov 2026 10:00:00 GMT")),
            600
        );
        assert_eq!(ttl(None, None, Some("garbage"), Some("Wed, 25 Nov 2026 10:00:00 GMT")), 300);
    }
}
