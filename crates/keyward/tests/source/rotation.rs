//! Key rotation as IdPs do it: with overlap, without overlap, under the same kid, flapping, and
//! a burst of requests for a freshly rotated key.

use std::time::Duration;

use keyward::Reason;
use keyward::source::{FetchDecision, GraceKind, KeyEventKind, NoFetchReason, Trigger};
use tokio::task::JoinSet;
use tokio::time::advance;

use super::support::*;

/// The default TTL (no caching headers), plus a second.
const PAST_TTL: Duration = Duration::from_secs(301);

#[tokio::test(start_paused = true)]
async fn overlap_rotation_keeps_old_and_new_tokens_verifying() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    let v = verifier(&source);

    // The first verification waits for the startup fetch.
    ok(v.verify(&t1).await, "K1 at startup");
    assert_eq!(server.hits(KEYS), 1);

    // The IdP publishes K2 next to K1 and starts signing with K2.
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    ok(v.verify(&t1).await, "K1 while K2 is published but unseen");
    assert_eq!(server.hits(KEYS), 1, "a known kid never fetches");
    let first = ok(v.verify(&t2).await, "K2, first sight");
    assert_eq!(server.hits(KEYS), 2, "the new kid triggers exactly one fetch");
    assert_eq!(
        first.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: true },
        "the verdict says it fetched"
    );
    for _ in 0..3 {
        ok(v.verify(&t1).await, "K1 during the overlap");
        let later = ok(v.verify(&t2).await, "K2 during the overlap");
        assert_eq!(later.keys().unwrap().fetch, FetchDecision::NotNeeded);
    }
    assert_eq!(server.hits(KEYS), 2, "no further fetches once K2 is known");
    assert_eq!(source.current().unwrap().len(), 2);

    // The IdP retires K1 after the overlap; the source sees it at the next TTL refresh, and K1
    // verifies only until a second fetch, about 5 s later, confirms the removal.
    server.set(KEYS, Reply::jwks(&[&k2]));
    advance(PAST_TTL).await;
    ok(v.verify(&t1).await, "K1 when the set expired (served while the refresh runs)");
    until("the TTL refresh", || server.hits(KEYS) == 3).await;
    until("K1 awaiting removal confirmation", || source.keys_in_grace().len() == 1).await;
    assert_eq!(source.keys_in_grace()[0].kid(), Some("k1"));
    let pending = ok(v.verify(&t1).await, "K1 awaiting confirmation");
    assert!(
        matches!(pending.keys().unwrap().grace, Some(GraceKind::AwaitingConfirmation { .. })),
        "the verdict says the key is no longer published: {:?}",
        pending.keys()
    );
    ok(v.verify(&t2).await, "K2 after K1 left the set");
    advance(Duration::from_secs(5)).await;
    source.refresh().await.unwrap();
    assert!(source.keys_in_grace().is_empty(), "the second fetch confirmed the removal");
    let err = rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 once the removal is confirmed");
    assert_eq!(err.kid(), Some("k1"));
    ok(v.verify(&t2).await, "K2");
}

/// Removal is revocation: a key the IdP pulls stops verifying once a second fetch, about 5 s
/// later, also lacks it (node `jose` and PyJWT reject it at the first fetch that lacks it).
#[tokio::test(start_paused = true)]
async fn removed_key_stops_verifying_once_a_second_fetch_confirms() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1, &k2])).await;
    ready(&source).await;
    let v = verifier(&source);
    let mut events = source.subscribe();

    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    let removed = events.try_recv().unwrap();
    assert_eq!(removed.kind, KeyEventKind::Removed { grace: Duration::from_secs(60) });
    assert_eq!(source.health().keys_in_grace, 1);
    ok(v.verify(&t1).await, "K1 right after the first fetch that lacks it");

    // A fetch sooner than 5 s later does not count as the confirmation.
    advance(Duration::from_secs(2)).await;
    source.refresh().await.unwrap();
    ok(v.verify(&t1).await, "K1 after a fetch 2 s later");
    assert!(events.try_recv().is_err(), "no event yet");

    // The confirming fetch is scheduled about 5 s after the first miss: traffic starts it.
    advance(Duration::from_secs(3)).await;
    let hits = server.hits(KEYS);
    ok(v.verify(&t2).await, "K2 starts the removal check");
    until("the removal check", || server.hits(KEYS) == hits + 1).await;
    until("K1 retired", || source.keys_in_grace().is_empty()).await;
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::Retired);
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 after the confirmation");
    ok(v.verify(&t2).await, "K2 throughout");
}

/// A key awaiting confirmation never outlives 60 s, even when no second fetch succeeds.
#[tokio::test(start_paused = true)]
async fn unconfirmed_removal_ends_within_a_minute_even_in_an_outage() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1, &k2])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    server.set(KEYS, Reply::status(503));
    for second in (0..60).step_by(10) {
        ok(v.verify(&t1).await, &format!("K1 {second} s after it left the set"));
        advance(Duration::from_secs(10)).await;
    }
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 60 s after it left the set");
    ok(v.verify(&t2).await, "K2 from the last good set");
}

/// New material under a known kid drops the old material at once (no confirmation, no grace).
#[tokio::test(start_paused = true)]
async fn new_material_under_a_kid_drops_the_old_key_at_once() {
    let (old, new) = (key("k1"), key("k1"));
    let (server, source) = serving(Reply::jwks(&[&old])).await;
    ready(&source).await;
    let v = verifier(&source);
    let mut events = source.subscribe();
    server.set(KEYS, Reply::jwks(&[&new]));
    source.refresh().await.unwrap();
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::MaterialChanged);
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::Added);
    assert!(source.keys_in_grace().is_empty());
    ok(v.verify(&token(&new)).await, "new material");
    let err = rejected(v.verify(&token(&old)).await, Reason::InvalidSignature, "old material");
    assert_eq!(err.kid(), Some("k1"));
}

/// The opt-in removal grace keeps a removed key verifying for as long as it says.
#[tokio::test(start_paused = true)]
async fn opt_in_removal_grace_keeps_removed_key_for_the_grace() {
    let server = Server::start().await;
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    server.set(KEYS, Reply::jwks(&[&k1]));
    let grace = Duration::from_secs(15 * 60);
    let source = quiet(&server.url(KEYS)).configure(|s| s.removal_grace = Some(grace)).build().unwrap();
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    // K1 is replaced outright; the first K2 token fetches the new set.
    server.set(KEYS, Reply::jwks(&[&k2]));
    ok(v.verify(&t2).await, "K2 after the switch");
    assert_eq!(server.hits(KEYS), 2);
    assert_eq!(source.current().unwrap().len(), 1);
    assert_eq!(source.health().keys_in_grace, 1);

    // K1 tokens still in flight keep verifying, without fetching, for the opt-in 15-minute grace,
    // across TTL refreshes that keep omitting K1.
    for minute in 0..14 {
        let verified = ok(v.verify(&t1).await, &format!("K1 {minute} min into the grace"));
        assert!(matches!(verified.keys().unwrap().grace, Some(GraceKind::RemovalGrace { .. })));
        advance(Duration::from_secs(60)).await;
        source.refresh().await.unwrap();
    }
    assert_eq!(server.hits(KEYS), 16);
    ok(v.verify(&t1).await, "K1 14 min into the grace");
    assert_eq!(server.hits(KEYS), 16, "a key in grace answers without fetching");

    // Past the grace (and a fetch), K1 is gone.
    advance(Duration::from_secs(61)).await;
    source.refresh().await.unwrap();
    assert_eq!(server.hits(KEYS), 17);
    assert!(source.keys_in_grace().is_empty());
    assert_eq!(source.health().keys_in_grace, 0);
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 after the grace");
    assert_eq!(server.hits(KEYS), 18, "an unknown kid fetches once");
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 again, within the fetch spacing");
    assert_eq!(server.hits(KEYS), 18);
    ok(v.verify(&t2).await, "K2");
}

#[tokio::test(start_paused = true)]
async fn rotation_without_overlap_and_zero_grace_fails_at_once() {
    let server = Server::start().await;
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source =
        quiet(&server.url(KEYS)).configure(|s| s.removal_grace = Some(Duration::ZERO)).build().unwrap();
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    server.set(KEYS, Reply::jwks(&[&k2]));
    ok(v.verify(&t2).await, "K2 after the switch");
    assert_eq!(server.hits(KEYS), 2);
    assert!(source.keys_in_grace().is_empty());
    let err = rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 right after the fetch");
    assert_eq!(err.kid(), Some("k1"));
    assert_eq!(
        err.keys().unwrap().fetch,
        FetchDecision::Refused {
            reason: NoFetchReason::Cooldown,
            retry_after: Some(Duration::from_millis(3750))
        },
        "the set is 0 s old: the next token-driven fetch is 3.75 s away"
    );
    assert_eq!(server.hits(KEYS), 2);
}

/// A same-kid rotation (the IdP reuses "k1" for new material) is found by a signature retry
/// at once, not after a cooldown; a forged signature cannot make more than the budget fetch.
#[tokio::test(start_paused = true)]
async fn same_kid_rotation_is_found_at_once() {
    let (old, new, newer, stranger) = (key("k1"), key("k1"), key("k1"), key("k1"));
    let (server, source) = serving(Reply::jwks(&[&old])).await;
    let v = verifier(&source);
    ok(v.verify(&token(&old)).await, "old material at startup");

    server.set(KEYS, Reply::jwks(&[&new]));
    advance(Duration::from_secs(1)).await;
    let verified = ok(v.verify(&token(&new)).await, "new material, set 1 s old");
    assert_eq!(
        verified.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::SignatureRetry, succeeded: true }
    );
    assert!(verified.keys().unwrap().material_changed, "the verdict says the kid's material changed");
    assert_eq!(server.hits(KEYS), 2);
    // The old material under the same kid is gone at once: the IdP replaced it.
    let err = rejected(v.verify(&token(&old)).await, Reason::InvalidSignature, "old material");
    assert!(!err.key_material_changed(), "no refetch within the spacing: {err:?}");
    assert_eq!(server.hits(KEYS), 2);

    // A token signed by neither: one refetch (the material did not change), then the kid is
    // followed up within the budget only.
    advance(Duration::from_secs(4)).await;
    let err = rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger");
    assert!(!err.key_material_changed(), "{err}");
    assert_eq!(server.hits(KEYS), 3);

    // The material changes again; a token signed by neither refetches and is told so.
    server.set(KEYS, Reply::jwks(&[&newer]));
    advance(Duration::from_secs(4)).await;
    let err =
        rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, changed material");
    assert!(err.key_material_changed(), "{err}");
    assert!(err.keys().unwrap().material_changed);
    assert_eq!(err.kid(), Some("k1"));
    assert_eq!(server.hits(KEYS), 4);
    ok(v.verify(&token(&newer)).await, "newest material");
    assert_eq!(server.hits(KEYS), 4);
}

/// A tampered token (a failed signature under a known kid) spends the signature-retry budget,
/// not the unknown-kid one: a key the IdP rotates in right after it is fetched at once, and its
/// first token verifies instead of waiting out a spacing.
#[tokio::test(start_paused = true)]
async fn a_tampered_token_does_not_put_off_the_fetch_of_a_key_rotated_in_after_it() {
    let (k1, k2, forger) = (key("k1"), key("k2"), key("k1"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    let v = verifier(&source);
    ok(v.verify(&token(&k1)).await, "k1 at startup");
    advance(Duration::from_secs(1)).await;
    let err = rejected(v.verify(&token(&forger)).await, Reason::InvalidSignature, "forged under k1");
    assert_eq!(
        err.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::SignatureRetry, succeeded: true }
    );
    assert_eq!(server.hits(KEYS), 2);

    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    let first = ok(v.verify(&token(&k2)).await, "k2's first token, right after the forged one");
    assert_eq!(
        first.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: true }
    );
    assert_eq!(server.hits(KEYS), 3);

    // Each kind keeps its own spacing: a second forged token right now is refused a fetch.
    let err = rejected(v.verify(&token(&forger)).await, Reason::InvalidSignature, "forged again");
    assert!(
        matches!(err.keys().unwrap().fetch, FetchDecision::Refused { reason: NoFetchReason::Cooldown, .. }),
        "{:?}",
        err.keys().unwrap().fetch
    );
    assert_eq!(server.hits(KEYS), 3);
}

/// Same kid, new material published a few seconds after its first token: accepted within one
/// fetch spacing plus the token-fetch jitter (3.75 + 0.5 s) and the test's 250 ms token interval
/// of the material appearing in the JWKS.
#[tokio::test(start_paused = true)]
async fn same_kid_new_material_published_late_is_accepted_within_5s() {
    let (old, new) = (key("k1"), key("k1"));
    let (server, source) = serving(Reply::jwks(&[&old])).await;
    ready(&source).await;
    let v = verifier(&source);
    let t_new = token(&new);
    let published_at = first_acceptance(&v, &t_new, &server, Duration::from_secs(7), &[&new]).await;
    assert!(published_at <= LATE_BOUND, "accepted {published_at:?} after publication");
}

/// The longest a late-published key may take to be accepted after publication: one fetch
/// spacing (3.75 s) plus the token-fetch jitter (up to 500 ms) plus the 250 ms between tokens.
const LATE_BOUND: Duration = Duration::from_millis(3750 + 500 + 250);

/// Sends `token` every 250 ms; publishes `published` after `delay`; returns how long after
/// publication `token` was first accepted (when its verification returned, jitter included).
async fn first_acceptance(
    v: &keyward::Verifier,
    token: &str,
    server: &Server,
    delay: Duration,
    published: &[&keyward_idp::SigningKey],
) -> Duration {
    let step = Duration::from_millis(250);
    let started = tokio::time::Instant::now();
    let mut published_at = None;
    for _ in 0..1000 {
        let elapsed = started.elapsed();
        if published_at.is_none() && elapsed >= delay {
            server.set(KEYS, Reply::jwks(published));
            published_at = Some(elapsed);
        }
        match v.verify(token).await {
            Ok(_) => return started.elapsed() - published_at.expect("accepted before publication"),
            Err(e) => assert!(
                matches!(e.reason(), Reason::UnknownKid | Reason::InvalidSignature),
                "unexpected rejection: {e}"
            ),
        }
        advance(step).await;
    }
    panic!("never accepted");
}

/// A key the IdP signs with before its JWKS shows it (CDN lag, another cluster node): a kid
/// published up to 60 s after its first token is accepted within 4.5 s of publication
/// ([`LATE_BOUND`]).
#[tokio::test(start_paused = true)]
async fn late_published_kid_is_accepted_within_5s_of_publication() {
    for delay_s in [1, 5, 17, 30, 45, 59, 60] {
        let (k1, k2) = (key("k1"), key("k2"));
        let (server, source) = serving(Reply::jwks(&[&k1])).await;
        ready(&source).await;
        let v = verifier(&source);
        let t2 = token(&k2);
        let lag = first_acceptance(&v, &t2, &server, Duration::from_secs(delay_s), &[&k1, &k2]).await;
        assert!(lag <= LATE_BOUND, "published {delay_s} s late: accepted {lag:?} after");
        // Token-driven fetches stayed within the budget: 8 per 30 s.
        let fetches = server.hits(KEYS) - 1;
        let budget = 8 * (delay_s as usize + 5).div_ceil(30);
        assert!(fetches <= budget, "published {delay_s} s late: {fetches} fetches > {budget}");
    }
}

/// Entra ID flaps keys: a key is missing from some responses and back in the next. A key that
/// is missing from one fetch and present at the confirming fetch never fails a token; missing
/// from two fetches in a row (5 s or more apart), it is removed.
#[tokio::test(start_paused = true)]
async fn flapping_key_never_fails_a_token() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1, &k2])).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    // Never missing twice in a row. The IdP's next answers, queued:
    let published = [false, true, false, true, true, false, true, false, true];
    for present in published {
        server.push(KEYS, if present { Reply::jwks(&[&k1, &k2]) } else { Reply::jwks(&[&k2]) });
    }
    for (round, present) in (1..).zip(published) {
        advance(Duration::from_secs(6)).await;
        source.refresh().await.unwrap();
        assert_eq!(source.current().unwrap().contains_kid("k1"), present, "round {round}");
        assert_eq!(source.health().keys_in_grace, usize::from(!present), "round {round}");
        ok(v.verify(&t1).await, &format!("K1, round {round} (published: {present})"));
        ok(v.verify(&t2).await, &format!("K2, round {round}"));
        assert_eq!(server.hits(KEYS), round + 1, "round {round}: verifications never fetch");
    }
    // Missing from two fetches 6 s apart: the removal is confirmed.
    server.set(KEYS, Reply::jwks(&[&k2]));
    for _ in 0..2 {
        advance(Duration::from_secs(6)).await;
        source.refresh().await.unwrap();
    }
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 missing twice in a row");
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_requests_for_a_new_kid_fetch_once() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);

    // The rotation lands; the answer takes a moment, so every request piles up on the fetch.
    server.set(KEYS, Reply::jwks(&[&k1, &k2]).delay(Duration::from_millis(50)));
    let t2: std::sync::Arc<str> = token(&k2).into();
    let mut tasks = JoinSet::new();
    for _ in 0..1000 {
        let (v, t2) = (v.clone(), t2.clone());
        tasks.spawn(async move { v.verify(&t2).await.map(|verified| verified.kid().map(str::to_owned)) });
    }
    let mut valid = 0;
    while let Some(joined) = tasks.join_next().await {
        let kid = ok(joined.unwrap(), "concurrent K2");
        assert_eq!(kid.as_deref(), Some("k2"));
        valid += 1;
    }
    assert_eq!(valid, 1000);
    assert_eq!(server.hits(KEYS), 2, "one startup fetch and one shared unknown-kid fetch");
}

/// A token cache subscribes to key events: it learns of every added, removed, reappearing and
/// retired key, with the kid and the material's thumbprint.
#[tokio::test(start_paused = true)]
async fn key_events_tell_subscribers_what_changed() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    let mut events = source.subscribe();
    source.refresh().await.unwrap();
    assert!(events.try_recv().is_err(), "the first set is not a change");

    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    source.refresh().await.unwrap();
    let added = events.try_recv().unwrap();
    assert_eq!((added.kid.as_deref(), added.kind), (Some("k2"), KeyEventKind::Added));
    assert_eq!(&*added.source, source.name());
    let k2_thumbprint = source.current().unwrap().keys_with_kid("k2").next().unwrap().thumbprint().to_owned();
    assert_eq!(added.thumbprint, k2_thumbprint);

    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    let removed = events.try_recv().unwrap();
    assert_eq!(removed.kid.as_deref(), Some("k1"));
    assert_eq!(removed.kind, KeyEventKind::Removed { grace: Duration::from_secs(60) });

    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    source.refresh().await.unwrap();
    let back = events.try_recv().unwrap();
    assert_eq!((back.kid.as_deref(), back.kind), (Some("k1"), KeyEventKind::Reappeared));

    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    assert!(matches!(events.try_recv().unwrap().kind, KeyEventKind::Removed { .. }));
    advance(Duration::from_secs(5)).await;
    source.refresh().await.unwrap();
    let retired = events.try_recv().unwrap();
    assert_eq!((retired.kid.as_deref(), retired.kind), (Some("k1"), KeyEventKind::Retired));
    assert!(events.try_recv().is_err(), "nothing else happened");
}
