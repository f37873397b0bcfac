//! An IdP that rate-limits (issue 12, fleet): a `429` (or a `503` with `Retry-After`) is never
//! retried inline, and no fetch but a manual one is made before the time it asked for
//! (token-driven, follow-up, scheduled and background alike); after it, fetches resume with a
//! jitter. `Retry-After` values are capped (5 min by default), saturate, and an unreadable one
//! means the usual outage backoff. All on tokio's paused clock.

use std::time::Duration;

use keyward::Reason;
use keyward::source::{FetchDecision, FetchStage, NoFetchReason, Trigger};
use keyward::telemetry::JWKS_FETCHES_TOTAL;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::{Instant, advance};

use super::support::*;

/// The hold a rate-limited fetch started, as the next refused verification reports it.
fn refused_rate_limited(err: &keyward::Error) -> Duration {
    match err.keys().map(|k| k.fetch) {
        Some(FetchDecision::Refused { reason: NoFetchReason::RateLimited, retry_after: Some(d) }) => d,
        other => panic!("expected a rate_limited refusal, got {other:?}: {err}"),
    }
}

/// A source (background off) whose startup fetch succeeded with K1, then an IdP answering
/// `reply` to the next request, and a K2 token: the unknown kid makes one fetch, which gets
/// `reply`. Returns the hold it started, as health reports it.
async fn hold_after(reply: Reply) -> Duration {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, reply);
    rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 while rate-limited");
    assert_eq!(server.hits(KEYS), 2, "one request, no inline retry");
    source.health().rate_limited_for.expect("a hold")
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_every_token_driven_fetch_until_retry_after_then_resumes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);

    // The IdP rotates to K2 but throttles: one request, answered 429, never retried inline.
    server.set(KEYS, Reply::status(429).header("retry-after", "10"));
    let started = Instant::now();
    let err = rejected(v.verify(&t2).await, Reason::UnknownKid, "K2, JWKS throttled");
    assert!(
        started.elapsed() <= Duration::from_millis(500),
        "only the token jitter: {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: false }
    );
    assert_eq!(err.fetch_error().map(|e| e.stage), Some(FetchStage::HttpStatus(429)), "{err}");
    assert_eq!(server.hits(KEYS), 2, "startup and one attempt: a 429 is not retried inline");
    let health = source.health();
    let held = health.rate_limited_for.expect("health reports the hold");
    // 10 s asked, plus a jitter of up to a quarter of it.
    assert!((Duration::from_secs(10)..=Duration::from_millis(12_500)).contains(&held), "held {held:?}");

    // K2 is published now; until the hold ends no fetch is made, however many tokens arrive,
    // and each says why and for how long. Known kids keep verifying without waiting.
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    let hold_ends = Instant::now() + held;
    let mut reported = Vec::new();
    while Instant::now() + Duration::from_millis(2250) < hold_ends {
        let err = rejected(v.verify(&t2).await, Reason::UnknownKid, "K2 during the hold");
        let wait = refused_rate_limited(&err);
        assert_eq!(Instant::now() + wait, hold_ends, "the refusal names the end of the hold");
        reported.push(wait);
        let known = Instant::now();
        ok(v.verify(&t1).await, "K1 during the hold");
        assert_eq!(known.elapsed(), Duration::ZERO);
        settle().await;
        advance(Duration::from_millis(250)).await;
    }
    assert!(reported.len() >= 30, "{} refusals", reported.len());
    assert_eq!(server.hits(KEYS), 2, "a fetch was made before the time the IdP asked for");

    // Two seconds or less before the hold ends, a K2 token waits it out and joins the one fetch
    // made at its end (the refused tokens spent no budget): accepted when the hold ends.
    advance(hold_ends - Instant::now() - Duration::from_secs(2)).await;
    let verified = ok(v.verify(&t2).await, "K2 at the end of the hold");
    assert_eq!(Instant::now(), hold_ends, "answered when the hold ended");
    assert_eq!(
        verified.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: true }
    );
    assert_eq!(server.hits(KEYS), 3);
    assert_eq!(source.health().rate_limited_for, None);

    // One snapshot: taking it resets the debugging recorder's counters.
    let snapshot = snapshotter.snapshot().into_vec();
    let counted = |trigger: &str, result: &str| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                key.key().name() == JWKS_FETCHES_TOTAL
                    && key.key().labels().any(|l| l.key() == "result" && l.value() == result)
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "trigger" && (trigger == "*" || l.value() == trigger))
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum::<u64>()
    };
    let metric = "keyward_jwks_fetches_total{trigger=\"unknown_kid\",result=\"rate_limited\"}";
    assert_eq!(counted("unknown_kid", "rate_limited"), 1, "{metric}");
    // The startup fetch, and the one after the hold (the schedule was due at the hold's end, so
    // it is labelled as the scheduled fetch the K2 token joined).
    assert_eq!(counted("*", "success"), 2);
    assert_eq!(counted("*", "error"), 0, "a 429 is counted as rate_limited, not error");
}

/// The background task (TTL refresh) honours the hold too: nothing before the time asked for,
/// a fetch after it.
#[tokio::test(start_paused = true)]
async fn background_refresh_waits_out_retry_after() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]).header("cache-control", "max-age=60"));
    let source = keyward::source::JwksSource::from_url(server.url(KEYS)).build().unwrap();
    ready(&source).await;
    let v = verifier(&source);

    // The refresh-ahead fetch (about 30 s before expiry) gets a 429 asking for 40 s.
    server.set(KEYS, Reply::status(429).header("retry-after", "40"));
    let mut waited = 0;
    while server.hits(KEYS) < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
        assert!(waited < 60, "no refresh-ahead fetch");
    }
    let throttled_at = Instant::now();
    server.set(KEYS, Reply::jwks(&[&k1]).header("cache-control", "max-age=60"));
    // 39 s of traffic (the set expires meanwhile and is served stale): no fetch of any kind.
    while throttled_at.elapsed() < Duration::from_secs(39) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ok(v.verify(&t1).await, "K1 while held");
    }
    assert_eq!(server.hits(KEYS), 2, "fetched before the time the IdP asked for");
    // 40 s plus at most 10 s of jitter (and 1 s of sleep granularity): the background fetches.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(server.hits(KEYS), 3, "the background task resumed after the hold");
    assert_eq!(source.health().consecutive_failures, 0);
}

/// Retry-After values a server may send: seconds, HTTP-dates (relative to its `Date`), huge
/// numbers (capped at `max_retry_after`, saturating), and garbage (the usual 1 s backoff); at
/// least the first backoff (1 s), plus a jitter of up to a quarter of the wait.
#[tokio::test(start_paused = true)]
async fn retry_after_values_are_capped_saturated_or_ignored() {
    let (secs, ms) = (Duration::from_secs, Duration::from_millis);
    let date = "Sun, 06 Dec 2026 09:00:00 GMT";
    let cases: [(&str, Reply, Duration, Duration); 9] = [
        ("8 s", Reply::status(429).header("retry-after", "8"), secs(8), secs(10)),
        (
            "0 s: at least the first backoff",
            Reply::status(429).header("retry-after", "0"),
            ms(1000),
            ms(1250),
        ),
        ("1 h: capped at 5 min", Reply::status(429).header("retry-after", "3600"), secs(300), secs(375)),
        ("u64::MAX", Reply::status(429).header("retry-after", "18446744073709551615"), secs(300), secs(375)),
        (
            "40 digits: saturates",
            Reply::status(429).header("retry-after", "9999999999999999999999999999999999999999"),
            secs(300),
            secs(375),
        ),
        (
            "HTTP-date 2 min after Date",
            Reply::status(429).header("date", date).header("retry-after", "Sun, 06 Dec 2026 09:02:00 GMT"),
            secs(120),
            secs(150),
        ),
        (
            "HTTP-date before Date",
            Reply::status(429).header("date", date).header("retry-after", "Sun, 06 Dec 2026 08:00:00 GMT"),
            ms(1000),
            ms(1250),
        ),
        ("garbage: the usual backoff", Reply::status(429).header("retry-after", "soon"), ms(1000), ms(1250)),
        ("negative: the usual backoff", Reply::status(429).header("retry-after", "-5"), ms(1000), ms(1250)),
    ];
    for (case, reply, low, high) in cases {
        let held = hold_after(reply).await;
        assert!((low..=high).contains(&held), "{case}: held {held:?}, expected {low:?}..={high:?}");
    }
    // No Retry-After at all: the usual backoff.
    let held = hold_after(Reply::status(429)).await;
    assert!((ms(1000)..=ms(1250)).contains(&held), "no Retry-After: held {held:?}");
    // A 503 with Retry-After is a rate limit too.
    let held = hold_after(Reply::status(503).header("retry-after", "12")).await;
    assert!((secs(12)..=secs(15)).contains(&held), "503: held {held:?}");
}

/// Refused again and again: the first four refusals in a row resume within a quarter of the
/// asked time after it (a small fleet uses every slot the IdP frees); from the fifth the jitter
/// is a random part of the outage backoff, doubling per refusal up to 60 s, so a large fleet
/// refused together spreads out.
#[tokio::test(start_paused = true)]
async fn consecutive_429s_widen_the_hold() {
    let (k1, k2) = (key("k1"), key("k2"));
    let t2 = token(&k2);
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::status(429).header("retry-after", "4"));
    let asked = Duration::from_secs(4);
    let mut widest = Duration::ZERO;
    for n in 1..=10u32 {
        rejected(v.verify(&t2).await, Reason::UnknownKid, "K2, throttled");
        assert_eq!(server.hits(KEYS), 1 + n as usize, "attempt {n}: one request each");
        assert_eq!(source.health().consecutive_failures, n);
        let held = source.health().rate_limited_for.expect("held");
        let spread = match n {
            1..=4 => asked / 4,
            _ => Duration::from_secs(1 << (n - 4)).min(Duration::from_secs(60)),
        };
        assert!((asked..=asked + spread).contains(&held), "attempt {n}: held {held:?}, spread {spread:?}");
        widest = widest.max(held);
        advance(held + Duration::from_millis(1)).await;
    }
    assert!(widest > asked + Duration::from_secs(1), "the spread grew: widest hold {widest:?}");
}

/// `refresh()` is the application asking: a hold does not refuse it, and its success ends it.
#[tokio::test(start_paused = true)]
async fn a_manual_refresh_is_not_held_and_ends_the_hold() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::status(429).header("retry-after", "120"));
    rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2, throttled");
    assert!(source.health().rate_limited_for.is_some());
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    source.refresh().await.unwrap();
    assert_eq!(server.hits(KEYS), 3);
    assert_eq!(source.health().rate_limited_for, None);
    ok(v.verify(&token(&k2)).await, "K2 after the manual refresh");
}

/// A source rate-limited at startup answers `keys_unavailable` at once, saying it is held.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_startup_says_so() {
    let k1 = key("k1");
    let t1 = token(&k1);
    let (server, source) = serving(Reply::status(429).header("retry-after", "30")).await;
    let v = verifier(&source);
    rejected(v.verify(&t1).await, Reason::KeysUnavailable, "startup throttled");
    assert_eq!(server.hits(KEYS), 1, "not retried inline");
    let started = Instant::now();
    let err = rejected(v.verify(&t1).await, Reason::KeysUnavailable, "during the hold");
    assert_eq!(started.elapsed(), Duration::ZERO);
    let held = refused_rate_limited(&err);
    assert!((Duration::from_secs(29)..=Duration::from_millis(37_500)).contains(&held), "held {held:?}");
    server.set(KEYS, Reply::jwks(&[&k1]));
    advance(held + Duration::from_millis(1)).await;
    let _ = v.verify(&t1).await; // due: starts the startup retry without waiting
    until("the retried startup fetch", || source.current().is_some()).await;
    assert_eq!(server.hits(KEYS), 2);
    ok(v.verify(&t1).await, "after the hold");
}

/// A 503 without Retry-After is an outage, not a rate limit: retried inline as before, no hold.
#[tokio::test(start_paused = true)]
async fn a_503_without_retry_after_is_an_outage_not_a_hold() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::status(503));
    rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2, JWKS 503");
    assert_eq!(server.hits(KEYS), 4, "three attempts");
    assert_eq!(source.health().rate_limited_for, None);
    let err = rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 again");
    assert!(
        matches!(err.keys().unwrap().fetch, FetchDecision::Refused { reason: NoFetchReason::Cooldown, .. }),
        "{:?}",
        err.keys()
    );
}

/// A hold of at most 2 s is waited out: every token that would fetch meanwhile (a new kid, or a
/// flood of forged ones) joins the one fetch made at its end, so a small fleet that an IdP
/// throttles for a second does not answer valid tokens 401; a forged kid is still rejected.
#[tokio::test(start_paused = true)]
async fn tokens_wait_out_a_short_hold_and_share_the_fetch_at_its_end() {
    let (k1, k2) = (key("k1"), key("k2"));
    let t2 = token(&k2);
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::status(429).header("retry-after", "1"));
    rejected(v.verify(&t2).await, Reason::UnknownKid, "K2, throttled");
    let held = source.health().rate_limited_for.expect("held");
    assert!(held <= Duration::from_millis(1250), "held {held:?}");

    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let v = v.clone();
        let t2 = t2.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                v.verify(&t2).await.map(|_| "valid")
            } else {
                let header = serde_json::json!({"alg": "ES256", "kid": format!("forged-{i}")});
                v.verify(&forge(&header, &claims_for(ISS), &[7; 64])).await.map(|_| "forged")
            }
        });
    }
    let (mut accepted, mut unknown) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok("valid") => accepted += 1,
            Ok(other) => panic!("{other} accepted"),
            Err(e) => {
                assert_eq!(e.reason(), Reason::UnknownKid, "{e}");
                unknown += 1;
            }
        }
    }
    assert_eq!((accepted, unknown), (25, 25));
    assert_eq!(started.elapsed(), held, "answered when the hold ended");
    assert_eq!(server.hits(KEYS), 3, "one fetch for all of them, at the end of the hold");
}
