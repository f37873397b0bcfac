//! Issue 10, library half: `Verifier::verify_now` / `Pending::wait` / `verify_owned` (verification
//! that borrows nothing across an await), `Verified::issuer`, and `Verifier::subscribe` (key events
//! and health of every issuer, merged).
//!
//! Remote keys come from the in-process mock IdP on 127.0.0.1; tests run on tokio's
//! current-thread runtime with the clock paused, so TTLs and stale limits pass with
//! `tokio::time::advance` and nothing sleeps on the wall clock.

use std::sync::Arc;
use std::time::Duration;

use keyward::jwk::JwkSet;
use keyward::source::{FetchDecision, HealthState, JwksSource, KeyEventKind, Trigger};
use keyward::{FixedClock, Issuer, Policy, Reason, Verified, Verifier, VerifierEvent};
use keyward_idp::{Fault, MockIdp, SigningAlg, SigningKey, jwks};
use serde_json::json;

const NOW: i64 = 1_767_225_600;
const AUD: &str = "orders-api";

fn key(alg: SigningAlg, kid: &str) -> Arc<SigningKey> {
    Arc::new(SigningKey::generate(alg, kid).unwrap())
}

fn token(idp_iss: &str, signer: &SigningKey) -> String {
    signer
        .sign_jwt(
            &json!({"iss": idp_iss, "sub": "alice", "aud": AUD, "iat": NOW, "nbf": NOW, "exp": NOW + 3600}),
        )
        .unwrap()
}

fn policy(iss: Option<&str>) -> Policy {
    let builder = Policy::builder().audience(AUD);
    match iss {
        Some(iss) => builder.issuer(iss),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn remote(idp: &MockIdp) -> (Verifier, JwksSource) {
    let source = JwksSource::from_url(idp.jwks_uri()).build().unwrap();
    let verifier = Verifier::builder()
        .keys(source.clone())
        .policy(policy(Some(idp.issuer())))
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    (verifier, source)
}

/// Lets spawned work (a fetch on loopback) run without advancing paused time.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn static_keys_answer_synchronously_with_the_configured_issuer() {
    let signer = key(SigningAlg::ES256, "k1");
    let keys = JwkSet::from_json(jwks([&*signer]).to_string().as_bytes()).unwrap();
    let verifier = Verifier::builder()
        .keys(keys)
        .policy(policy(Some("https://idp.example")))
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();

    let good = token("https://idp.example", &signer);
    let verified = verifier.verify_now(&good).expect("static keys never wait").unwrap();
    assert_eq!(verified.issuer(), Some("https://idp.example"));
    assert_eq!(verified.registered().sub.as_deref(), Some("alice"));

    let other = token("https://other.example", &signer);
    let rejected = verifier.verify_now(&other).expect("static keys never wait").unwrap_err();
    assert_eq!(rejected.reason(), Reason::IssuerMismatch);

    // The signature's first character carries six whole bits, so changing it keeps the
    // encoding canonical (the last one may not: then the verdict would be `malformed`).
    let at = good.rfind('.').unwrap() + 1;
    let mut tampered = good.clone();
    tampered.replace_range(at..=at, if good[at..].starts_with('A') { "B" } else { "A" });
    let rejected = verifier.verify_now(&tampered).expect("static keys never wait").unwrap_err();
    assert_eq!(rejected.reason(), Reason::InvalidSignature);

    // No runtime was needed: verify_owned is ready at once.
    let owned = verifier.verify_owned(good);
    assert!(owned.is_ready());
    assert_send_static(&owned);
}

#[test]
fn no_issuer_in_the_policy_means_no_issuer_name() {
    let signer = key(SigningAlg::ES256, "k1");
    let keys = JwkSet::from_json(jwks([&*signer]).to_string().as_bytes()).unwrap();
    let verifier =
        Verifier::builder().keys(keys).policy(policy(None)).clock(FixedClock::at(NOW)).build().unwrap();
    let verified = verifier.verify_now(&token("https://any.example", &signer)).unwrap().unwrap();
    assert_eq!(verified.issuer(), None);
}

#[test]
fn several_issuers_say_which_one_verified() {
    let a = key(SigningAlg::ES256, "a");
    let b = key(SigningAlg::ES256, "b");
    let set = |k: &SigningKey| JwkSet::from_json(jwks([k]).to_string().as_bytes()).unwrap();
    let template = "https://login.example/{tenantid}/v2.0";
    let tenant = "7f3a6b1c-0d2e-4f5a-8b9c-1d2e3f4a5b6c";
    let verifier = Verifier::builder()
        .issuer(Issuer::new("https://a.example", set(&a)))
        .issuer(Issuer::templated(template, set(&b)).tenants([tenant]))
        .policy(policy(None))
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let from_a = verifier.verify_now(&token("https://a.example", &a)).unwrap().unwrap();
    assert_eq!(from_a.issuer(), Some("https://a.example"));
    let iss_b = format!("https://login.example/{tenant}/v2.0");
    let claims = json!({"iss": iss_b, "tid": tenant, "sub": "bob", "aud": AUD, "iat": NOW, "nbf": NOW, "exp": NOW + 60});
    let from_b = verifier.verify_now(&b.sign_jwt(&claims).unwrap()).unwrap().unwrap();
    assert_eq!(from_b.issuer(), Some(template));
}

#[tokio::test(start_paused = true)]
async fn remote_keys_wait_only_when_a_fetch_is_needed() {
    let idp = MockIdp::start().await.unwrap();
    let k1 = key(SigningAlg::ES256, "k1");
    let k2 = key(SigningAlg::ES256, "k2");
    idp.publish(&[&k1]);
    let (verifier, _source) = remote(&idp).await;

    // The first fetch is under way: the first token waits for it.
    let first = verifier.verify_now(&token(idp.issuer(), &k1));
    let pending = first.expect_err("nothing fetched yet: must wait");
    assert_send_static(&pending);
    let verified = pending.wait().await.unwrap();
    assert_eq!(verified.issuer(), Some(idp.issuer()));
    assert_eq!(
        verified.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::Startup, succeeded: true }
    );

    // Known kid, fresh set: answered synchronously, no fetch.
    let hits = idp.jwks_hits();
    let now = verifier.verify_now(&token(idp.issuer(), &k1)).expect("known kid: no wait").unwrap();
    assert_eq!(now.keys().unwrap().fetch, FetchDecision::NotNeeded);
    assert_eq!(idp.jwks_hits(), hits);

    // A rotated-in kid: waits for the one fetch, which finds it.
    idp.publish(&[&k1, &k2]);
    let pending = verifier.verify_now(&token(idp.issuer(), &k2)).expect_err("unknown kid: must wait");
    let verified = pending.wait().await.unwrap();
    assert_eq!(verified.kid(), Some("k2"));
    assert_eq!(
        verified.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: true }
    );
    assert_eq!(idp.jwks_hits(), hits + 1, "the first attempt's fetch is joined, not repeated");

    // verify_owned is a 'static future that can be spawned.
    let owned = verifier.verify_owned(token(idp.issuer(), &k2));
    assert!(owned.is_ready());
    let joined = tokio::spawn(owned).await.unwrap().unwrap();
    assert_eq!(joined.kid(), Some("k2"));
}

#[tokio::test(start_paused = true)]
async fn verify_owned_waits_for_a_fetch_on_its_own_task() {
    let idp = MockIdp::start().await.unwrap();
    let (k1, k2) = (key(SigningAlg::ES256, "k1"), key(SigningAlg::ES256, "k2"));
    idp.publish(&[&k1]);
    let (verifier, source) = remote(&idp).await;
    source.refresh().await.unwrap();

    idp.publish(&[&k1, &k2]);
    let owned = verifier.verify_owned(token(idp.issuer(), &k2));
    assert!(!owned.is_ready(), "k2 is not fetched yet");
    let verified = tokio::spawn(owned).await.unwrap().unwrap();
    assert_eq!(verified.kid(), Some("k2"));
    assert_eq!(verified.issuer(), Some(idp.issuer()));
}

#[tokio::test(start_paused = true)]
async fn verify_now_reports_the_same_evidence_as_verify() {
    let idp = MockIdp::start().await.unwrap();
    let k1 = key(SigningAlg::ES256, "k1");
    idp.publish(&[&k1]);
    let (verifier, _source) = remote(&idp).await;
    verifier.verify(&token(idp.issuer(), &k1)).await.unwrap();

    let stranger = key(SigningAlg::ES256, "stranger");
    let forged = token(idp.issuer(), &stranger);
    // The unknown kid is fetched for once, then negatively cached: both APIs say so alike.
    let by_verify = verifier.verify(&forged).await.unwrap_err();
    assert_eq!(by_verify.reason(), Reason::UnknownKid);
    let by_now = verifier.verify_now(&forged).expect("negatively cached: no wait").unwrap_err();
    let by_verify_again = verifier.verify(&forged).await.unwrap_err();
    assert_eq!(by_now.reason(), Reason::UnknownKid);
    assert_eq!(by_now.keys(), by_verify_again.keys());
    assert!(by_now.keys().unwrap().kid_negatively_cached);
}

#[tokio::test(start_paused = true)]
async fn keys_unavailable_is_answered_without_waiting_once_fetches_failed() {
    let idp = MockIdp::start().await.unwrap();
    let k1 = key(SigningAlg::ES256, "k1");
    idp.set_fault(Fault::Status(503));
    let (verifier, source) = remote(&idp).await;
    let _ = source.refresh().await;
    let rejected =
        verifier.verify_now(&token(idp.issuer(), &k1)).expect("failed fetch: answered").unwrap_err();
    assert_eq!(rejected.reason(), Reason::KeysUnavailable);
}

fn verified_sub(v: &Verified) -> Option<&str> {
    v.registered().sub.as_deref()
}

#[tokio::test(start_paused = true)]
async fn subscribe_merges_key_events_and_health_changes() {
    let idp = MockIdp::start().await.unwrap();
    idp.set_max_age(60);
    let k1 = key(SigningAlg::ES256, "k1");
    let k2 = key(SigningAlg::ES256, "k2");
    idp.publish(&[&k1]);
    let source = JwksSource::from_url(idp.jwks_uri())
        .configure(|s| s.max_stale = Duration::from_secs(600))
        .build()
        .unwrap();
    let verifier = Verifier::builder()
        .keys(source.clone())
        .policy(policy(Some(idp.issuer())))
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let mut events = verifier.subscribe();

    let first = events.recv().await.unwrap();
    assert!(
        matches!(&first, VerifierEvent::Health { issuer, state: HealthState::Starting } if &**issuer == idp.issuer()),
        "{first:?}"
    );
    let v = verifier.verify(&token(idp.issuer(), &k1)).await.unwrap();
    assert_eq!(verified_sub(&v), Some("alice"));
    let fresh = events.recv().await.unwrap();
    assert!(matches!(fresh, VerifierEvent::Health { state: HealthState::Fresh, .. }), "{fresh:?}");

    // Rotation: k2 appears.
    idp.publish(&[&k1, &k2]);
    verifier.verify(&token(idp.issuer(), &k2)).await.unwrap();
    let added = events.recv().await.unwrap();
    match added {
        VerifierEvent::Key { issuer, event } => {
            assert_eq!(&*issuer, idp.issuer());
            assert_eq!(event.kid.as_deref(), Some("k2"));
            assert_eq!(event.kind, KeyEventKind::Added);
            assert_eq!(&*event.source, idp.jwks_uri());
        }
        other => panic!("expected k2 added, got {other:?}"),
    }

    // The IdP fails: past expiry the set is stale, past max_stale it is unavailable.
    idp.set_fault(Fault::Status(500));
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    let stale = events.recv().await.unwrap();
    assert!(matches!(stale, VerifierEvent::Health { state: HealthState::Stale { .. }, .. }), "{stale:?}");
    tokio::time::advance(Duration::from_secs(601)).await;
    settle().await;
    let gone = events.recv().await.unwrap();
    assert!(matches!(gone, VerifierEvent::Health { state: HealthState::Unavailable { .. }, .. }), "{gone:?}");
    assert_eq!(
        verifier.verify_now(&token(idp.issuer(), &k1)).expect("answered").unwrap_err().reason(),
        Reason::KeysUnavailable
    );

    // It recovers: fresh again.
    idp.set_fault(Fault::None);
    source.refresh().await.unwrap();
    let mut saw_fresh = false;
    while let Some(event) = events.try_recv() {
        saw_fresh |= matches!(event, VerifierEvent::Health { state: HealthState::Fresh, .. });
    }
    settle().await;
    while let Some(event) = events.try_recv() {
        saw_fresh |= matches!(event, VerifierEvent::Health { state: HealthState::Fresh, .. });
    }
    assert!(saw_fresh, "recovery is reported");
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_is_told_how_much_it_missed() {
    let idp = MockIdp::start().await.unwrap();
    let old: Vec<Arc<SigningKey>> = (0..200).map(|i| key(SigningAlg::ES256, &format!("old-{i}"))).collect();
    let new: Vec<Arc<SigningKey>> = (0..200).map(|i| key(SigningAlg::ES256, &format!("new-{i}"))).collect();
    idp.publish(&old.iter().collect::<Vec<_>>());
    let (verifier, source) = remote(&idp).await;
    source.refresh().await.unwrap();
    let mut events = verifier.subscribe();
    settle().await;

    // 200 added + 200 removed in one fetch: more than the backlog, and nobody reads meanwhile.
    idp.publish(&new.iter().collect::<Vec<_>>());
    source.refresh().await.unwrap();
    settle().await;

    let mut delivered = 0u64;
    let mut missed = 0u64;
    while let Some(event) = events.try_recv() {
        match event {
            VerifierEvent::Key { .. } => delivered += 1,
            VerifierEvent::Lagged { missed: n, .. } => missed += n,
            VerifierEvent::Health { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        settle().await;
    }
    assert!(missed > 0, "the subscriber lagged and was told ({delivered} delivered)");
    assert_eq!(delivered + missed, 400, "every event is either delivered or counted as missed");
}

/// `keyward_verifications_total{issuer, outcome}` as a local recorder saw it.
fn verifications(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == keyward::telemetry::VERIFICATIONS_TOTAL)
        .map(|(key, _, _, value)| {
            let labels: Vec<String> =
                key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let count = match value {
                metrics_util::debugging::DebugValue::Counter(n) => n,
                _ => 0,
            };
            (labels.join(","), count)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn verify_now_counts_outcomes_exactly_as_verify() {
    let signer = key(SigningAlg::ES256, "k1");
    let keys = JwkSet::from_json(jwks([&*signer]).to_string().as_bytes()).unwrap();
    let verifier = Verifier::builder()
        .keys(keys)
        .policy(policy(Some("https://idp.example")))
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let good = token("https://idp.example", &signer);
    let wrong_iss = token("https://other.example", &signer);

    let count = |sync: bool| {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            for t in [&good, &good, &wrong_iss] {
                if sync {
                    let _ = verifier.verify_now(t).unwrap();
                } else {
                    let mut fut = std::pin::pin!(verifier.verify(t));
                    let waker = std::task::Waker::noop();
                    assert!(fut.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready());
                }
            }
        });
        verifications(&snapshotter)
    };
    let by_now = count(true);
    assert_eq!(by_now, count(false));
    assert_eq!(
        by_now,
        vec![
            ("issuer=https://idp.example,outcome=issuer_mismatch".to_owned(), 1),
            ("issuer=https://idp.example,outcome=valid".to_owned(), 2),
        ]
    );
}
