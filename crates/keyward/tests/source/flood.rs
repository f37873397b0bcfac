//! An unknown-kid flood (THREATS A19): at most eight fetches per 30 s window per issuer, spaced
//! so that a real rotation in the middle of the flood is still found within seconds, and known
//! kids unaffected.

use std::time::Duration;

use keyward::Reason;
use keyward::source::FetchDecision;
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

    // Wave 1: the flood arrives all at once, with real K1 traffic mixed in: one shared fetch.
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
    assert_eq!(server.hits(KEYS) - 1, 1, "the concurrent flood shares one fetch");
    assert!(started.elapsed() < Duration::from_secs(1), "the flood waited {:?}", started.elapsed());

    // Wave 2: the same volume one request after another, spread over 60 s, while the IdP
    // rotates to K2 in the middle (publishing it 5 s after its first token).
    advance(PAST_WINDOW).await;
    let before = server.hits(KEYS);
    let flood_started = Instant::now();
    let step = Duration::from_secs(60) / FLOOD as u32;
    let mut fetched_at = Vec::new();
    let mut k2_accepted = None;
    for (i, forged) in forged(2).iter().enumerate() {
        let elapsed = flood_started.elapsed();
        let hits = server.hits(KEYS);
        let err = rejected(v.verify(forged).await, Reason::UnknownKid, "sequential flood kid");
        if server.hits(KEYS) > hits {
            fetched_at.push(elapsed);
        } else {
            assert!(
                matches!(err.keys().unwrap().fetch, FetchDecision::Refused { .. }),
                "a flood kid without a fetch says why: {err:?}"
            );
        }
        if i % 500 == 0 {
            let known_started = Instant::now();
            ok(v.verify(&t1).await, "K1 during the sequential flood");
            assert_eq!(known_started.elapsed(), Duration::ZERO, "a known kid never waits");
        }
        if elapsed >= Duration::from_secs(20) && k2_accepted.is_none() {
            if elapsed >= Duration::from_secs(25) {
                server.set(KEYS, Reply::jwks(&[&k1, &k2]));
            }
            if let Ok(_verified) = v.verify(&t2).await {
                k2_accepted = Some(elapsed);
            }
        }
        advance(step).await;
    }
    let total = server.hits(KEYS) - before;
    assert!(total >= 10, "the budget is used, not starved: {total} fetches in 60 s");
    for (i, start) in fetched_at.iter().enumerate() {
        let in_window = fetched_at[i..].iter().take_while(|t| **t - *start < Duration::from_secs(30)).count();
        assert!(in_window <= 8, "{in_window} fetches in the 30 s from {start:?}: {fetched_at:?}");
    }
    let k2_accepted = k2_accepted.expect("K2 accepted during the flood");
    assert!(
        k2_accepted <= Duration::from_secs(30),
        "K2, published at 25 s into the flood, accepted at {k2_accepted:?}"
    );
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
