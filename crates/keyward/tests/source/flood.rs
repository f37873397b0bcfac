//! An unknown-kid flood (THREATS A19): at most two fetches per 30 s window per issuer, known
//! kids unaffected, and a real rotation found once the window has passed.

use std::time::Duration;

use keyward::Reason;
use keyward_idp::mint::b64;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, advance};

use super::support::*;

const FLOOD: usize = 10_000;
/// The limiter window (`refresh_cooldown`), plus a second.
const PAST_WINDOW: Duration = Duration::from_secs(31);

/// Distinct, random-looking kids (deterministic, so a failure replays).
fn kid(round: u64, i: usize) -> String {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_add(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", x ^ (x >> 31))
}

/// Forged tokens with `FLOOD` fresh kids and a well-formed (but wrong) ES256 signature: an
/// attacker needs no key to make the verifier look a kid up.
fn forged(round: u64) -> Vec<String> {
    let signature = key("mallory").sign_raw(b"anything").unwrap();
    let claims = claims_for(ISS);
    (0..FLOOD)
        .map(|i| forge(&json!({"alg": "ES256", "kid": kid(round, i), "typ": "JWT"}), &claims, &signature))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_flood_is_limited_per_window() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    assert_eq!(server.hits(KEYS), 1);

    // Window 1: the flood arrives all at once, with real K1 traffic mixed in.
    let mut tasks = JoinSet::new();
    for (i, forged) in forged(1).into_iter().enumerate() {
        let flood_v = v.clone();
        tasks.spawn(async move { (false, flood_v.verify(&forged).await.map(drop)) });
        if i % 1000 == 0 {
            let (v, t1) = (v.clone(), t1.clone());
            tasks.spawn(async move { (true, v.verify(&t1).await.map(drop)) });
        }
    }
    let started = Instant::now();
    let (mut known, mut unknown) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (true, result) => {
                ok(result, "K1 during the concurrent flood");
                known += 1;
            }
            (false, result) => {
                rejected(result, Reason::UnknownKid, "flood kid");
                unknown += 1;
            }
        }
    }
    assert_eq!((known, unknown), (10, FLOOD));
    let fetched = server.hits(KEYS) - 1;
    assert!((1..=2).contains(&fetched), "{fetched} fetches for the concurrent flood");
    assert!(started.elapsed() < Duration::from_secs(1), "the flood waited {:?}", started.elapsed());

    // Window 2: the same volume, one request after another.
    advance(PAST_WINDOW).await;
    let before = server.hits(KEYS);
    let started = Instant::now();
    for (i, forged) in forged(2).iter().enumerate() {
        rejected(v.verify(forged).await, Reason::UnknownKid, "sequential flood kid");
        if i % 1000 == 0 {
            let known_started = Instant::now();
            ok(v.verify(&t1).await, "K1 during the sequential flood");
            assert_eq!(known_started.elapsed(), Duration::ZERO, "a known kid never waits");
        }
    }
    assert_eq!(server.hits(KEYS) - before, 2, "two fetches, then the limiter answers");
    assert!(started.elapsed() < Duration::from_secs(1), "the flood waited {:?}", started.elapsed());

    // A real rotation inside the exhausted window is not found yet...
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    let err = rejected(v.verify(&t2).await, Reason::UnknownKid, "K2 inside the exhausted window");
    assert!(err.detail().contains("no refetch"), "{err}");
    assert_eq!(server.hits(KEYS) - before, 2);
    // ...and is found as soon as the window has passed, with one fetch.
    advance(PAST_WINDOW).await;
    ok(v.verify(&t2).await, "K2 after the window");
    assert_eq!(server.hits(KEYS) - before, 3);
    ok(v.verify(&t1).await, "K1 after the flood");
}

/// Only a token that could verify may trigger a fetch: its `alg` is allowed, it parses, and its
/// kid is short enough to name a key (THREATS A19).
#[tokio::test(start_paused = true)]
async fn only_lookups_that_could_succeed_fetch() {
    let k1 = key("k1");
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = keyward::Verifier::builder()
        .keys(source.clone())
        .policy(
            keyward::Policy::builder()
                .issuer(ISS)
                .any_audience()
                .algorithms([keyward::Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .clock(keyward::FixedClock::at(NOW))
        .build()
        .unwrap();
    let claims = claims_for(ISS);
    let with_header = |header: serde_json::Value| forge(&header, &claims, &[7; 64]);

    let cases = [
        (
            "alg outside the allowlist",
            with_header(json!({"alg": "RS256", "kid": "new-1"})),
            Reason::AlgorithmNotAllowed,
        ),
        ("alg none", with_header(json!({"alg": "none", "kid": "new-2"})), Reason::AlgorithmNotAllowed),
        ("HS256", with_header(json!({"alg": "HS256", "kid": "new-3"})), Reason::AlgorithmNotAllowed),
        (
            "bad base64 payload",
            format!(
                "{}.!!!.{}",
                b64(json!({"alg": "ES256", "kid": "new-4"}).to_string().as_bytes()),
                b64(&[7; 64])
            ),
            Reason::Malformed,
        ),
        (
            "crit header",
            with_header(json!({"alg": "ES256", "kid": "new-5", "crit": ["exp"], "exp": 1})),
            Reason::UnsupportedCriticalHeader,
        ),
        (
            "kid of 257 bytes",
            with_header(json!({"alg": "ES256", "kid": "x".repeat(257)})),
            Reason::UnknownKid,
        ),
    ];
    for (case, token, reason) in cases {
        rejected(v.verify(&token).await, reason, case);
    }
    settle().await;
    assert_eq!(server.hits(KEYS), 1, "none of these may fetch");
    // The longest kid that can name a key does fetch.
    rejected(
        v.verify(&with_header(json!({"alg": "ES256", "kid": "x".repeat(256)}))).await,
        Reason::UnknownKid,
        "kid of 256 bytes",
    );
    assert_eq!(server.hits(KEYS), 2);
}
