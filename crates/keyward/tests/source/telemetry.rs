//! Metrics through a local debugging recorder: fetches by trigger and result, verifications by
//! outcome, key events, and no kid in any label.
//!
//! The recorder is installed for this thread only (`set_default_local_recorder`); the test
//! runtime is current-thread, so the fetch tasks the source spawns record into it too, and
//! tests running in parallel on other threads do not.

use std::time::Duration;

use keyward::Reason;
use keyward::source::FetchStage;
use keyward::telemetry::{JWKS_FETCHES_TOTAL, KEY_EVENTS_TOTAL, VERIFICATIONS_TOTAL};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tokio::time::advance;

use super::support::*;

/// One metric: name, labels, and the counter value (0 for other kinds).
type Entry = (String, Vec<(String, String)>, u64);

/// Every metric of one snapshot.
struct Recorded(Vec<Entry>);

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        let entries = snapshotter.snapshot().into_vec().into_iter().map(|(key, _, _, value)| {
            let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            let count = match value {
                DebugValue::Counter(n) => n,
                _ => 0,
            };
            (key.key().name().to_owned(), labels, count)
        });
        Self(entries.collect())
    }

    /// The counter `name` with exactly `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut want: Vec<(String, String)> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        want.sort();
        self.0
            .iter()
            .filter(|(n, l, _)| {
                let mut l = l.clone();
                l.sort();
                n == name && l == want
            })
            .map(|(_, _, count)| count)
            .sum()
    }

    /// Every `(trigger, result)` with a non-zero fetch count.
    fn fetches(&self) -> Vec<(String, String, u64)> {
        let mut out: Vec<_> = self
            .0
            .iter()
            .filter(|(n, _, count)| n == JWKS_FETCHES_TOTAL && *count > 0)
            .map(|(_, labels, count)| {
                let get = |k: &str| labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
                (get("trigger"), get("result"), *count)
            })
            .collect();
        out.sort();
        out
    }
}

#[tokio::test(start_paused = true)]
async fn fetch_and_verification_counters() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let (k1, k2, stranger) = (key("kid-one"), key("kid-two"), key("kid-one"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1]).header("etag", "\"v1\"")).await;
    let name = source.name().to_owned();
    ready(&source).await; // startup, success
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1"); // valid

    // A new kid: unknown_kid, success; a forged kid: unknown_kid, success (the set lacks it).
    server.set(KEYS, Reply::jwks(&[&k1, &k2]).header("etag", "\"v2\""));
    ok(v.verify(&t2).await, "K2"); // valid
    // Token-driven fetches are spaced (30 s / 8 = 3.75 s): the forged kid comes after that.
    advance(Duration::from_secs(4)).await;
    let forged = forge(&json!({"alg": "ES256", "kid": "kid-forged-zz"}), &claims_for(ISS), &[7; 64]);
    rejected(v.verify(&forged).await, Reason::UnknownKid, "forged kid");

    // Nothing new: manual, not_modified. A stranger under a known kid: invalid_signature after
    // a signature_retry, not_modified (signature retries have a budget of their own, so the
    // unknown-kid fetch just before does not put it off); again past the cooldown.
    server.set(KEYS, Reply::status(304));
    source.refresh().await.unwrap();
    rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, fresh set");
    advance(Duration::from_secs(31)).await;
    rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, after the cooldown");

    // Outage: the expiry triggers ttl, error (one count for three attempts); then manual, error.
    server.set(KEYS, Reply::status(500));
    advance(Duration::from_secs(301)).await;
    ok(v.verify(&t1).await, "K1, stale"); // valid
    let hits = server.hits(KEYS);
    assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(500));
    assert_eq!(server.hits(KEYS) - hits, 3);
    assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(500));

    // Recovery without K1: manual, success, and a key removal.
    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    rejected(
        v.verify(&k1.sign_jwt(&claims_for("https://evil.example.test")).unwrap()).await,
        Reason::IssuerMismatch,
        "other iss",
    );

    let m = Recorded::take(&snapshotter);
    let fetch = |trigger, result| (String::from(trigger), String::from(result));
    let expected: Vec<(String, String, u64)> = [
        (fetch("manual", "error"), 1),
        (fetch("manual", "not_modified"), 1),
        (fetch("manual", "success"), 1),
        (fetch("signature_retry", "not_modified"), 2),
        (fetch("startup", "success"), 1),
        (fetch("ttl", "error"), 1),
        (fetch("unknown_kid", "success"), 2),
    ]
    .into_iter()
    .map(|((t, r), n)| (t, r, n))
    .collect();
    assert_eq!(m.fetches(), expected);
    for (trigger, result, count) in &expected {
        let labels = [("issuer", name.as_str()), ("trigger", trigger.as_str()), ("result", result.as_str())];
        assert_eq!(m.counter(JWKS_FETCHES_TOTAL, &labels), *count, "fetches labelled with the source name");
    }
    let verified = |outcome| m.counter(VERIFICATIONS_TOTAL, &[("issuer", ISS), ("outcome", outcome)]);
    assert_eq!(verified("valid"), 3);
    assert_eq!(verified("unknown_kid"), 1);
    assert_eq!(verified("invalid_signature"), 2);
    assert_eq!(verified("issuer_mismatch"), 1);
    let event = |event| m.counter(KEY_EVENTS_TOTAL, &[("issuer", name.as_str()), ("event", event)]);
    assert_eq!((event("added"), event("removed")), (1, 1));

    // Label values come from closed sets: never a kid (attacker-chosen, unbounded).
    for (metric, labels, _) in &m.0 {
        for (label, value) in labels {
            assert!(!value.contains("kid-"), "{metric}{{{label}={value:?}}} holds a kid");
            assert!(
                ["issuer", "outcome", "trigger", "result", "event"].contains(&label.as_str()),
                "{metric}: {label}"
            );
        }
    }
}

/// Log events during an outage (the levels the README documents): each failed fetch is one WARN with its
/// stage; serving a stale set is one WARN per state change, not one per fetch or request; the
/// recovery is INFO. Captured with a subscriber for this thread (the runtime is current-thread).
#[tokio::test(start_paused = true)]
async fn an_outage_logs_one_stale_warning_and_one_warning_per_failed_fetch() {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Default)]
    struct Message(String);
    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(tracing::Level, String)>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let mut message = Message::default();
            event.record(&mut message);
            self.0.lock().unwrap().push((*event.metadata().level(), message.0));
        }
    }
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let count = |level: tracing::Level, text: &str| {
        capture.0.lock().unwrap().iter().filter(|(l, m)| *l == level && m.contains(text)).count()
    };

    let server = Server::start().await;
    let k1 = key("k1");
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).configure(|s| s.http.retries = 0).build().unwrap();
    let v = verifier(&source);
    ok(v.verify(&token(&k1)).await, "startup");

    server.set(KEYS, Reply::status(503));
    advance(Duration::from_secs(301)).await; // past the default TTL
    for _ in 0..5 {
        assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(503));
        ok(v.verify(&token(&k1)).await, "stale keys during the outage");
        advance(Duration::from_secs(61)).await;
    }
    assert_eq!(count(tracing::Level::WARN, "key set fetch failed"), 5, "one WARN per failed fetch");
    assert_eq!(count(tracing::Level::WARN, "serving a stale key set"), 1, "one WARN for the state change");

    server.set(KEYS, Reply::jwks(&[&k1]));
    source.refresh().await.unwrap();
    assert_eq!(count(tracing::Level::INFO, "fetched again after failures"), 1);
    // A second outage is a new state change: one more stale WARN.
    server.set(KEYS, Reply::status(503));
    advance(Duration::from_secs(301)).await;
    for _ in 0..2 {
        assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(503));
    }
    assert_eq!(count(tracing::Level::WARN, "serving a stale key set"), 2);
    // No log line ever carries a token.
    assert!(capture.0.lock().unwrap().iter().all(|(_, m)| !m.contains("eyJ")));
}
