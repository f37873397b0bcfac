//! The background task keeps an idle source fresh: it refreshes ahead of expiry (TTL - 30 s,
//! ±10 %) with no traffic at all, and stops with the source.

use std::time::Duration;

use keyward::source::{HealthState, JwksSource};
use keyward::telemetry::JWKS_FETCHES_TOTAL;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::advance;

use super::support::*;

#[tokio::test(start_paused = true)]
async fn background_refresh_renews_an_idle_source_ahead_of_expiry() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = Server::start().await;
    let k1 = key("k1");
    server.set(KEYS, Reply::jwks(&[&k1]).header("cache-control", "max-age=120"));
    let source = JwksSource::from_url(server.url(KEYS)).build().unwrap();
    ready(&source).await;
    assert_eq!(server.hits(KEYS), 1);
    assert_eq!(source.health().expires_in_secs, Some(120));

    for round in 2..=4 {
        // The refresh-ahead point is 87..=93 s after the last fetch: nothing before it...
        advance(Duration::from_secs(86)).await;
        settle().await;
        assert_eq!(server.hits(KEYS), round - 1, "round {round}: refreshed too early");
        // ...and a refresh by 94 s, well before the 120 s expiry, without any verification.
        advance(Duration::from_secs(8)).await;
        until("the background refresh", || server.hits(KEYS) == round).await;
        until("the renewed TTL", || source.health().expires_in_secs == Some(120)).await;
        assert_eq!(source.health().state, HealthState::Fresh);
    }

    let refresh_ahead = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == JWKS_FETCHES_TOTAL
                && key.key().labels().any(|l| l.key() == "trigger" && l.value() == "refresh_ahead")
                && key.key().labels().any(|l| l.key() == "result" && l.value() == "success")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("{other:?}"),
        })
        .sum::<u64>();
    assert_eq!(refresh_ahead, 3, "three refresh_ahead fetches");

    // The task ends with the source: no more fetches.
    drop(source);
    advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(server.hits(KEYS), 4);
}
