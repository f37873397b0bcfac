//! HTTP caching: `Cache-Control` TTLs clamped to [60 s, 15 min], refresh ahead of expiry, and
//! conditional requests (ETag / Last-Modified) with 304 renewing the TTL.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::advance;

use super::support::*;

/// Response headers of one case.
type Headers = &'static [(&'static str, &'static str)];

#[tokio::test(start_paused = true)]
async fn cache_control_ttl_is_clamped_and_honoured() {
    let server = Server::start().await;
    let k1 = key("k1");
    let t1 = token(&k1);
    const DATE: &str = "Wed, 25 Nov 2026 10:00:00 GMT";
    let cases: [(&str, Headers, u64); 8] = [
        ("max-age=15", &[("cache-control", "max-age=15")], 60), // Auth0: floor
        ("44 days", &[("cache-control", "public, max-age=3801600")], 900), // Okta: ceiling
        ("no-cache", &[("cache-control", "no-cache")], 60),     // Keycloak: floor, not "never cache"
        ("no-store", &[("cache-control", "private, no-store")], 60),
        ("max-age=600", &[("cache-control", "max-age=600")], 600), // inside the bounds: as asked
        ("max-age less Age", &[("cache-control", "max-age=600"), ("age", "100")], 500),
        ("Expires less Date", &[("date", DATE), ("expires", "Wed, 25 Nov 2026 10:10:00 GMT")], 600),
        ("no caching headers", &[], 300), // the default
    ];
    for (case, headers, ttl) in cases {
        let reply =
            headers.iter().fold(Reply::jwks(&[&k1]), |reply, (name, value)| reply.header(name, value));
        server.set(KEYS, reply);
        let source = quiet(&server.url(KEYS)).build().unwrap();
        let v = verifier(&source);
        ok(v.verify(&t1).await, case);
        let ttl_secs = i64::try_from(ttl).unwrap();
        assert_eq!(source.health().expires_in_secs, Some(ttl_secs), "{case}");
        let hits = server.hits(KEYS);

        // Before the refresh-ahead point (TTL - 30 s, ±10 %), verifications never fetch.
        advance(Duration::from_secs(ttl - 34)).await;
        ok(v.verify(&t1).await, case);
        settle().await;
        assert_eq!(server.hits(KEYS), hits, "{case}: fetched before the refresh-ahead point");
        // Past expiry, a verification starts a refresh (and is answered from the old set).
        advance(Duration::from_secs(35)).await;
        ok(v.verify(&t1).await, case);
        until("the refresh", || server.hits(KEYS) == hits + 1).await;
        until("the renewed TTL", || source.health().expires_in_secs == Some(ttl_secs)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn etag_304_renews_the_ttl_without_a_new_set() {
    let k1 = key("k1");
    let t1 = token(&k1);
    const LAST_MODIFIED: &str = "Wed, 25 Nov 2026 10:00:00 GMT";
    let (server, source) = serving(
        Reply::jwks(&[&k1])
            .header("cache-control", "max-age=120")
            .header("etag", "\"v1\"")
            .header("last-modified", LAST_MODIFIED),
    )
    .await;
    ready(&source).await;
    let v = verifier(&source);
    assert_eq!(server.last_header(KEYS, "if-none-match"), None, "the first request is unconditional");
    assert_eq!(server.last_header(KEYS, "if-modified-since"), None);
    let parsed = source.current().unwrap();

    advance(Duration::from_secs(80)).await;
    assert_eq!(source.health().expires_in_secs, Some(40));
    // The IdP has nothing new: 304, no body.
    server.set(KEYS, Reply::status(304).header("cache-control", "max-age=120").header("etag", "\"v1\""));
    source.refresh().await.unwrap();
    assert_eq!(server.hits(KEYS), 2);
    assert_eq!(server.last_header(KEYS, "if-none-match").as_deref(), Some("\"v1\""));
    assert_eq!(server.last_header(KEYS, "if-modified-since").as_deref(), Some(LAST_MODIFIED));
    let health = source.health();
    assert_eq!(health.expires_in_secs, Some(120), "the 304 renewed the TTL");
    let response = health.last_response.unwrap();
    assert_eq!((response.status, response.body_bytes), (304, 0));
    assert!(Arc::ptr_eq(&parsed, &source.current().unwrap()), "a 304 keeps the parsed set as is");
    ok(v.verify(&t1).await, "after the 304");

    // A new set with a new ETag replaces the validators.
    let k2 = key("k2");
    server.set(KEYS, Reply::jwks(&[&k1, &k2]).header("etag", "\"v2\""));
    ok(v.verify(&token(&k2)).await, "K2 via unknown-kid fetch");
    assert_eq!(server.last_header(KEYS, "if-none-match").as_deref(), Some("\"v1\""));
    server.set(KEYS, Reply::status(304));
    source.refresh().await.unwrap();
    assert_eq!(server.last_header(KEYS, "if-none-match").as_deref(), Some("\"v2\""));
    assert_eq!(server.last_header(KEYS, "if-modified-since"), None, "the new response had no Last-Modified");
    assert_eq!(source.current().unwrap().len(), 2);
    assert_eq!(source.health().expires_in_secs, Some(300), "304 without caching headers: the default TTL");
}
