//! Key rotation as IdPs do it: with overlap, without overlap, under the same kid, flapping, and
//! a burst of requests for a freshly rotated key.

use std::time::Duration;

use keyward::Reason;
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
    ok(v.verify(&t2).await, "K2, first sight");
    assert_eq!(server.hits(KEYS), 2, "the new kid triggers exactly one fetch");
    for _ in 0..3 {
        ok(v.verify(&t1).await, "K1 during the overlap");
        ok(v.verify(&t2).await, "K2 during the overlap");
    }
    assert_eq!(server.hits(KEYS), 2, "no further fetches once K2 is known");
    assert_eq!(source.current().unwrap().len(), 2);

    // The IdP retires K1 after the overlap; the source sees it at the next TTL refresh.
    server.set(KEYS, Reply::jwks(&[&k2]));
    advance(PAST_TTL).await;
    ok(v.verify(&t1).await, "K1 when the set expired (served while the refresh runs)");
    until("the TTL refresh", || server.hits(KEYS) == 3).await;
    until("K1 moved to removal grace", || source.keys_in_grace().len() == 1).await;
    assert_eq!(source.keys_in_grace()[0].kid(), Some("k1"));
    ok(v.verify(&t1).await, "K1 in removal grace");
    ok(v.verify(&t2).await, "K2 after K1's retirement");
    settle().await;
    assert_eq!(server.hits(KEYS), 3);
}

#[tokio::test(start_paused = true)]
async fn rotation_without_overlap_keeps_removed_key_for_the_grace() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    // K1 is replaced outright; the first K2 token fetches the new set.
    server.set(KEYS, Reply::jwks(&[&k2]));
    ok(v.verify(&t2).await, "K2 after the switch");
    assert_eq!(server.hits(KEYS), 2);
    assert_eq!(source.current().unwrap().len(), 1);
    assert_eq!(source.health().keys_in_grace, 1);

    // K1 tokens still in flight keep verifying, without fetching, for the 15-minute grace,
    // across TTL refreshes that keep omitting K1.
    for minute in 0..14 {
        ok(v.verify(&t1).await, &format!("K1 {minute} min into the grace"));
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
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 again (negatively cached)");
    assert_eq!(server.hits(KEYS), 18);
    ok(v.verify(&t2).await, "K2");
}

#[tokio::test(start_paused = true)]
async fn rotation_without_overlap_and_zero_grace_fails_at_once() {
    let server = Server::start().await;
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).configure(|s| s.removal_grace = Duration::ZERO).build().unwrap();
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    server.set(KEYS, Reply::jwks(&[&k2]));
    ok(v.verify(&t2).await, "K2 after the switch");
    assert_eq!(server.hits(KEYS), 2);
    assert!(source.keys_in_grace().is_empty());
    let err = rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 right after the fetch");
    assert_eq!(err.kid(), Some("k1"));
    assert_eq!(server.hits(KEYS), 3, "one unknown-kid fetch, which confirms K1 is gone");
    rejected(v.verify(&t1).await, Reason::UnknownKid, "K1 again");
    assert_eq!(server.hits(KEYS), 3);
}

#[tokio::test(start_paused = true)]
async fn same_kid_rotation_refetches_once_after_the_cooldown() {
    // Three key pairs under one kid: the IdP reuses "k1" for new material.
    let (old, new, newer, stranger) = (key("k1"), key("k1"), key("k1"), key("k1"));
    let (server, source) = serving(Reply::jwks(&[&old])).await;
    let v = verifier(&source);
    ok(v.verify(&token(&old)).await, "old material at startup");

    server.set(KEYS, Reply::jwks(&[&new]));
    // The set is younger than the 30 s cooldown: a failed signature does not refetch.
    advance(Duration::from_secs(29)).await;
    let err = rejected(v.verify(&token(&new)).await, Reason::InvalidSignature, "new material, set too young");
    assert!(!err.key_material_changed(), "{err}");
    assert_eq!(server.hits(KEYS), 1);

    // Older than the cooldown: one refetch, and the new material verifies.
    advance(Duration::from_secs(2)).await;
    ok(v.verify(&token(&new)).await, "new material after the refetch");
    assert_eq!(server.hits(KEYS), 2);
    // The old material under the same kid is a removed key: it verifies during the grace.
    ok(v.verify(&token(&old)).await, "old material in removal grace");
    assert_eq!(source.keys_in_grace().len(), 1);
    assert_eq!(server.hits(KEYS), 2);

    // A token signed by neither, while the set is fresh: no refetch.
    let err = rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, fresh set");
    assert!(!err.key_material_changed());
    assert_eq!(server.hits(KEYS), 2);
    // After the cooldown: one refetch; the material did not change, and the error says nothing more.
    advance(Duration::from_secs(31)).await;
    let err =
        rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, same material");
    assert!(!err.key_material_changed(), "{err}");
    assert_eq!(server.hits(KEYS), 3);

    // The material changes again; a token signed by neither refetches and is told so.
    server.set(KEYS, Reply::jwks(&[&newer]));
    advance(Duration::from_secs(31)).await;
    let err =
        rejected(v.verify(&token(&stranger)).await, Reason::InvalidSignature, "stranger, changed material");
    assert!(err.key_material_changed(), "{err}");
    assert!(err.detail().contains("key material"), "{err}");
    assert_eq!(err.kid(), Some("k1"));
    assert_eq!(server.hits(KEYS), 4);
    ok(v.verify(&token(&newer)).await, "newest material");
    assert_eq!(server.hits(KEYS), 4);
}

#[tokio::test(start_paused = true)]
async fn flapping_key_never_fails_a_token() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (t1, t2) = (token(&k1), token(&k2));
    let (server, source) = serving(Reply::jwks(&[&k1, &k2])).await;
    let v = verifier(&source);
    ok(v.verify(&t1).await, "K1 at startup");

    // Entra ID style: K1 is missing from some fetches (twice in a row at most, 10 minutes,
    // inside the grace), for far longer than the grace overall. The IdP's next answers, queued:
    let published = [false, true, false, false, true, false, true, false, false, true, false, true];
    for present in published {
        server.push(KEYS, if present { Reply::jwks(&[&k1, &k2]) } else { Reply::jwks(&[&k2]) });
    }
    for (round, present) in (1..).zip(published) {
        advance(PAST_TTL).await;
        source.refresh().await.unwrap();
        assert_eq!(source.current().unwrap().contains_kid("k1"), present, "round {round}");
        assert_eq!(source.health().keys_in_grace, usize::from(!present), "round {round}");
        ok(v.verify(&t1).await, &format!("K1, round {round} (published: {present})"));
        ok(v.verify(&t2).await, &format!("K2, round {round}"));
        assert_eq!(server.hits(KEYS), round + 1, "round {round}: verifications never fetch");
    }
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

/// A token signed with a new key can arrive before the IdP's JWKS publishes it (CDN lag). The
/// miss is negatively cached for 30 s, so the key is found at most one negative TTL later.
#[tokio::test(start_paused = true)]
async fn new_kid_seen_before_publication_is_found_after_the_negative_ttl() {
    let (k1, k2) = (key("k1"), key("k2"));
    let t2 = token(&k2);
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);

    rejected(v.verify(&t2).await, Reason::UnknownKid, "K2 before publication");
    assert_eq!(server.hits(KEYS), 2);
    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    advance(Duration::from_secs(10)).await;
    rejected(v.verify(&t2).await, Reason::UnknownKid, "K2 published, miss still cached");
    assert_eq!(server.hits(KEYS), 2, "a negatively cached kid does not fetch");
    advance(Duration::from_secs(21)).await;
    ok(v.verify(&t2).await, "K2 after the negative TTL");
    assert_eq!(server.hits(KEYS), 3);
}

/// A token cache subscribes to key events: it learns of every added, removed, reappearing and
/// retired key, with the kid and the material's thumbprint.
#[tokio::test(start_paused = true)]
async fn key_events_tell_subscribers_what_changed() {
    use keyward::source::KeyEventKind;

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
    assert_eq!(removed.kind, KeyEventKind::Removed { grace: Duration::from_secs(15 * 60) });

    server.set(KEYS, Reply::jwks(&[&k1, &k2]));
    source.refresh().await.unwrap();
    let back = events.try_recv().unwrap();
    assert_eq!((back.kid.as_deref(), back.kind), (Some("k1"), KeyEventKind::Reappeared));

    server.set(KEYS, Reply::jwks(&[&k2]));
    source.refresh().await.unwrap();
    assert!(matches!(events.try_recv().unwrap().kind, KeyEventKind::Removed { .. }));
    advance(Duration::from_secs(15 * 60 + 1)).await;
    source.refresh().await.unwrap();
    let retired = events.try_recv().unwrap();
    assert_eq!((retired.kid.as_deref(), retired.kind), (Some("k1"), KeyEventKind::Retired));
    assert!(events.try_recv().is_err(), "nothing else happened");
}
