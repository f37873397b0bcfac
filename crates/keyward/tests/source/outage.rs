//! IdP outages and bad answers: the last good set keeps serving (up to `max_stale`), failures
//! never replace it, slow fetches never stall known kids, restarts survive with a warm cache,
//! and a source that never fetched answers `keys_unavailable` promptly.

use std::sync::Arc;
use std::time::Duration;

use keyward::FixedClock;
use keyward::Reason;
use keyward::source::{FetchDecision, FetchStage, HealthState, NoFetchReason};
use serde_json::json;
use tokio::time::{Instant, advance};

use super::support::*;

const MAX_STALE: Duration = Duration::from_secs(6 * 3600);

/// Sleeps in paused time (1 s steps) until the source reports `failures` consecutive failures.
async fn until_failures(source: &keyward::source::JwksSource, failures: u32) {
    for _ in 0..600 {
        if source.health().consecutive_failures >= failures {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("no fetch failure after 10 min");
}

#[tokio::test(start_paused = true)]
async fn outage_shorter_than_max_stale_keeps_known_kids_verifying() {
    let server = Server::start().await;
    let k1 = key("k1");
    let t1 = token(&k1);
    server.set(KEYS, Reply::jwks(&[&k1]).header("cache-control", "max-age=60"));
    let source = quiet(&server.url(KEYS)).clock(FixedClock::at(NOW)).build().unwrap();
    let v = verifier(&source);
    ok(v.verify(&t1).await, "before the outage");
    assert_eq!(source.health().state, HealthState::Fresh);

    server.set(KEYS, Reply::status(500));
    advance(Duration::from_secs(61)).await;
    let started = Instant::now();
    ok(v.verify(&t1).await, "just expired, refresh failing");
    assert_eq!(started.elapsed(), Duration::ZERO, "a known kid never waits for the refresh");
    // The expiry started a refresh: three attempts (two retries), all 500.
    let err = source.refresh().await.unwrap_err();
    assert_eq!(err.stage, FetchStage::HttpStatus(500));
    assert_eq!(server.hits(KEYS), 4);
    let health = source.health();
    let HealthState::Stale { since_unix } = health.state else { panic!("{health:?}") };
    // Since the set's expiry: fetched at NOW (the clock's reading then), max-age 60.
    assert_eq!(since_unix, NOW + 60, "stale since {since_unix}");
    assert_eq!(health.consecutive_failures, 1);
    assert_eq!(health.last_response.as_ref().map(|r| r.status), Some(500));
    assert_eq!(health.keys, 1);
    ok(v.verify(&t1).await, "stale");

    // Five hours into the outage: still serving.
    advance(Duration::from_secs(5 * 3600)).await;
    ok(v.verify(&t1).await, "5 h into the outage");
    assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(500));
    assert!(matches!(source.health().state, HealthState::Stale { .. }));

    // Past max_stale: nothing serves.
    advance(MAX_STALE - Duration::from_secs(5 * 3600)).await;
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "past max_stale");
    assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(500));
    assert!(matches!(source.health().state, HealthState::Unavailable { .. }), "{:?}", source.health());
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "still past max_stale");

    // The IdP comes back.
    server.set(KEYS, Reply::jwks(&[&k1]).header("cache-control", "max-age=60"));
    source.refresh().await.unwrap();
    ok(v.verify(&t1).await, "after recovery");
    let health = source.health();
    assert_eq!(health.state, HealthState::Fresh);
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn closed_connections_are_an_outage_too() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let (server, source) = serving(Reply::jwks(&[&k1]).header("cache-control", "max-age=60")).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "before the outage");

    // The server closes every connection, including the pooled one.
    server.go_down();
    advance(Duration::from_secs(61)).await;
    ok(v.verify(&t1).await, "expired, connections closed");
    let err = source.refresh().await.unwrap_err();
    assert_eq!(err.stage, FetchStage::Connect, "{err}");
    assert_eq!(server.hits(KEYS), 1, "no request reached the handler");
    assert!(server.refused() >= 1);
    assert!(matches!(source.health().state, HealthState::Stale { .. }));
    ok(v.verify(&t1).await, "stale while the server is down");

    server.come_up();
    source.refresh().await.unwrap();
    assert_eq!(server.hits(KEYS), 2);
    assert_eq!(source.health().state, HealthState::Fresh);
    ok(v.verify(&t1).await, "after recovery");
}

#[tokio::test(start_paused = true)]
async fn slow_endpoint_times_out_without_stalling_known_kids() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "startup");

    // The IdP now takes 30 s to answer: beyond the 5 s total timeout.
    server.set(KEYS, Reply::jwks(&[&k1, &k2]).delay(Duration::from_secs(30)));
    advance(Duration::from_secs(301)).await;
    let started = Instant::now();
    ok(v.verify(&t1).await, "expired; the refresh starts and hangs");
    assert_eq!(started.elapsed(), Duration::ZERO);
    // While the refresh hangs, a known kid answers at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.hits(KEYS), 2, "the refresh reached the server");
    let started = Instant::now();
    ok(v.verify(&t1).await, "during the hanging refresh");
    assert_eq!(started.elapsed(), Duration::ZERO, "a known kid never waits");
    // A new kid waits for the in-flight fetch, at most `fetch_wait` (10 s).
    let started = Instant::now();
    let err = rejected(v.verify(&t2).await, Reason::UnknownKid, "new kid during the hanging refresh");
    assert!(started.elapsed() <= Duration::from_secs(10), "waited {:?}", started.elapsed());
    let evidence = err.keys().copied().expect("remote keys carry evidence");
    assert_eq!(
        evidence.fetch,
        FetchDecision::Refused { reason: NoFetchReason::WaitTimedOut, retry_after: None },
        "{err}"
    );

    until_failures(&source, 1).await;
    let health = source.health();
    assert_eq!(health.last_error.as_ref().map(|e| e.stage), Some(FetchStage::Timeout), "{health:?}");
    assert_eq!(server.hits(KEYS), 4, "three attempts, each timed out");
    assert!(matches!(health.state, HealthState::Stale { .. }));
    let started = Instant::now();
    ok(v.verify(&t1).await, "after the timeouts");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// `refresh()` waits for the whole fetch, not `fetch_wait`: a fetch that takes longer than
/// `fetch_wait` (and then times out) is reported as the timeout it was, never as `Ok`.
#[tokio::test(start_paused = true)]
async fn refresh_reports_a_fetch_that_times_out() {
    let k1 = key("k1");
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;

    // Three attempts of 5 s plus backoff: about 15.6 s, longer than the 10 s fetch_wait.
    server.set(KEYS, Reply::jwks(&[&k1]).delay(Duration::from_secs(30)));
    let result = source.refresh().await;
    let err = result.expect_err("refresh() returned Ok while its fetch was still failing");
    assert_eq!(err.stage, FetchStage::Timeout);
}

#[tokio::test(start_paused = true)]
async fn failed_fetches_never_replace_the_good_set() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    let good = source.current().unwrap();

    let cases = [
        ("500", Reply::status(500), FetchStage::HttpStatus(500), 3),
        ("404", Reply::status(404), FetchStage::HttpStatus(404), 1),
        ("HTML", Reply::bytes(b"<html>maintenance</html>".to_vec()), FetchStage::Parse, 1),
        ("truncated JSON", Reply::bytes(br#"{"keys":[{"kty":"EC""#.to_vec()), FetchStage::Parse, 1),
        ("10 MiB body", Reply::bytes(vec![b' '; 10 << 20]), FetchStage::Body, 1),
        ("empty set", Reply::json(&json!({"keys": []})), FetchStage::Parse, 1),
        (
            "no usable key",
            Reply::json(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
            FetchStage::Parse,
            1,
        ),
        ("not a JWKS", Reply::json(&json!(["keys"])), FetchStage::Parse, 1),
        ("257 keys", Reply::json(&json!({"keys": vec![k1.public_jwk(); 257]})), FetchStage::Parse, 1),
    ];
    for (case, reply, stage, attempts) in cases {
        server.set(KEYS, reply);
        let before = server.hits(KEYS);
        let err = source.refresh().await.expect_err(case);
        assert_eq!(err.stage, stage, "{case}: {err}");
        assert_eq!(server.hits(KEYS) - before, attempts, "{case}: attempts");
        assert!(Arc::ptr_eq(&good, &source.current().unwrap()), "{case}: the good set was replaced");
        let health = source.health();
        assert_eq!(health.keys, 1, "{case}");
        assert_eq!(health.last_error.map(|e| e.stage), Some(stage), "{case}");
        assert_eq!(health.state, HealthState::Fresh, "{case}: the good set has not expired");
        ok(v.verify(&t1).await, case);
    }
    assert_eq!(source.health().consecutive_failures, 9);
}

/// A 503 whose Retry-After exceeds the inline bound is not retried inline.
#[tokio::test(start_paused = true)]
async fn long_retry_after_is_not_retried_inline() {
    let k1 = key("k1");
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    server.set(KEYS, Reply::status(503).header("retry-after", "45"));
    let started = Instant::now();
    let err = source.refresh().await.unwrap_err();
    assert_eq!(err.stage, FetchStage::HttpStatus(503));
    assert_eq!(server.hits(KEYS), 2, "one attempt, no inline retries");
    assert_eq!(started.elapsed(), Duration::ZERO);
    let health = source.health();
    assert_eq!(health.last_response.and_then(|r| r.retry_after).as_deref(), Some("45"));
}

/// A long `Retry-After` is not retried inline but holds every fetch: the next fetch is made
/// after the time the IdP asked for (45 s), not after the 1 s minimum backoff, and traffic in
/// between does not fetch.
#[tokio::test(start_paused = true)]
async fn long_retry_after_delays_the_next_fetch() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let (server, source) = serving(Reply::jwks(&[&k1]).header("cache-control", "max-age=60")).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "startup");
    server.set(KEYS, Reply::status(503).header("retry-after", "45"));
    advance(Duration::from_secs(61)).await;
    ok(v.verify(&t1).await, "expired: starts the TTL refresh");
    until_failures(&source, 1).await;
    assert_eq!(server.hits(KEYS), 2);

    // Traffic continues; the IdP asked for 45 s. The next fetch is due 45 s plus a jitter of up
    // to a quarter of that (56.25 s) after the failure, so nothing may fetch for 44 s (a margin
    // for the paused clock, which may have auto-advanced while the failing fetch was in
    // flight), and something must by 57 s.
    for _ in 0..44 {
        advance(Duration::from_secs(1)).await;
        ok(v.verify(&t1).await, "stale during Retry-After");
        settle().await;
    }
    assert_eq!(server.hits(KEYS), 2, "fetched again before Retry-After elapsed");
    advance(Duration::from_secs(13)).await;
    ok(v.verify(&t1).await, "after Retry-After");
    until("the fetch after Retry-After", || server.hits(KEYS) == 3).await;
}

#[tokio::test(start_paused = true)]
async fn warm_start_serves_the_saved_set_during_an_outage() {
    let dir = TempDir::new("warm");
    let server = Server::start().await;
    let k1 = key("k1");
    let t1 = token(&k1);
    let clock = Arc::new(FixedClock::at(NOW));
    let build = || warm_process(&server, &dir, &clock);

    // Process A fetches once and saves the set.
    server.set(KEYS, Reply::jwks(&[&k1]));
    let a = build();
    ready(&a).await;
    let saved: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    drop(a);

    // The IdP goes down; process B starts an hour later with the same cache directory.
    server.set(KEYS, Reply::status(503));
    clock.advance(3600);
    let b = build();
    let vb = verifier(&b);
    let started = Instant::now();
    ok(vb.verify(&t1).await, "warm start during the outage");
    assert_eq!(started.elapsed(), Duration::ZERO, "the saved set serves without waiting for a fetch");
    assert_eq!(b.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(503), "the IdP is still down");
    let health = b.health();
    assert_eq!(health.last_success_unix, None, "B never fetched successfully");
    assert!(matches!(health.state, HealthState::Stale { .. }), "{health:?}");
    assert_eq!(server.hits(KEYS), 1 + 3);
    ok(vb.verify(&t1).await, "warm set after a failed fetch");
    drop((b, vb));

    // Process C starts more than max_stale after the save: the saved set is not used.
    clock.advance(i64::try_from(MAX_STALE.as_secs()).unwrap());
    let c = build();
    let vc = verifier(&c);
    rejected(vc.verify(&t1).await, Reason::KeysUnavailable, "saved set older than max_stale");
    assert!(c.current().is_none());
    drop((c, vc));

    // A damaged cache file is ignored, not trusted and not fatal.
    clock.set(NOW + 60);
    let path = dir.0.join(&saved[0]);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let d = build();
    rejected(verifier(&d).verify(&t1).await, Reason::KeysUnavailable, "damaged cache file");
}

#[tokio::test(start_paused = true)]
async fn failed_startup_recovers_when_the_server_comes_back() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let (server, source) = serving(Reply::status(503)).await;
    let v = verifier(&source);
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "IdP down at startup");
    assert_eq!(server.hits(KEYS), 3);

    server.set(KEYS, Reply::jwks(&[&k1]));
    // Past the first outage backoff (1 s ±10 %), traffic starts the next attempt without waiting.
    advance(Duration::from_secs(2)).await;
    let started = Instant::now();
    let _ = v.verify(&t1).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    until("the retried startup fetch", || source.current().is_some()).await;
    assert_eq!(server.hits(KEYS), 4);
    ok(v.verify(&t1).await, "after recovery");
    assert_eq!(source.health().state, HealthState::Fresh);
}

#[tokio::test(start_paused = true)]
async fn never_fetched_answers_keys_unavailable_promptly() {
    // A loopback port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = quiet(&format!("http://127.0.0.1:{port}/keys")).build().unwrap();
    let v = verifier(&source);
    let t1 = token(&key("k1"));
    assert_eq!(source.health().state, HealthState::Starting);

    // The first call waits for the startup fetch (three refused attempts and their backoff).
    let started = Instant::now();
    let err = rejected(v.verify(&t1).await, Reason::KeysUnavailable, "first call");
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    assert_eq!(err.fetch_error().map(|e| e.stage), Some(FetchStage::Connect), "{err}");
    let health = source.health();
    assert!(matches!(health.state, HealthState::Unavailable { .. }), "{health:?}");
    assert_eq!(health.last_error.map(|e| e.stage), Some(FetchStage::Connect));
    // Later calls answer at once.
    for _ in 0..5 {
        let started = Instant::now();
        rejected(v.verify(&t1).await, Reason::KeysUnavailable, "later call");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn never_answered_startup_is_bounded_by_fetch_wait() {
    let k1 = key("k1");
    let (_server, source) = serving(Reply::jwks(&[&k1]).delay(Duration::from_secs(3600))).await;
    let v = verifier(&source);
    let t1 = token(&k1);

    let started = Instant::now();
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "startup fetch hanging");
    assert_eq!(started.elapsed(), Duration::from_secs(10), "the first call waits fetch_wait, no more");
    until_failures(&source, 1).await;
    assert_eq!(source.health().last_error.map(|e| e.stage), Some(FetchStage::Timeout));
    let started = Instant::now();
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "after the startup fetch failed");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// Only a fetch that succeeded proves a kid is not published: a miss whose fetch failed is not
/// remembered, so once the IdP recovers the new key verifies at the next fetch (here the
/// outage retry, which the unknown-kid request joins).
#[tokio::test(start_paused = true)]
async fn a_failed_fetch_does_not_negatively_cache_the_kid() {
    let (k1, k2) = (key("k1"), key("k2"));
    let t2 = token(&k2);
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);

    server.set(KEYS, Reply::status(502));
    rejected(v.verify(&t2).await, Reason::UnknownKid, "K2 while the IdP fails");
    assert_eq!(server.hits(KEYS), 4, "one unknown-kid fetch, three attempts");

    // The IdP recovers with K2 published; the outage retry is due and the request joins it.
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    advance(Duration::from_secs(2)).await;
    ok(v.verify(&t2).await, "K2 after the IdP recovered");
    assert_eq!(server.hits(KEYS), 5);
}
