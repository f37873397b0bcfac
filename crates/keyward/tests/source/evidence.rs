//! Evidence as data (what `doctor`, `serve` and the CLI read), the side-effect-free one-shot
//! fetch, the warm-start cache reader, failure stages from error types, and time arithmetic
//! that no setting or header can overflow.

use std::sync::Arc;
use std::time::Duration;

use keyward::source::{
    CacheFileError, FetchDecision, FetchStage, FetchTarget, HealthState, JwksSource, NoFetchReason,
    SourceSettings, Trigger, fetch, read_cache_file,
};
use keyward::{ConfigError, FixedClock, Reason};
use serde_json::json;
use tokio::time::advance;

use super::support::*;

#[tokio::test(start_paused = true)]
async fn verdicts_carry_what_the_key_source_did() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).clock(FixedClock::at(NOW)).build().unwrap();
    ready(&source).await;
    let v = verifier(&source);

    advance(Duration::from_secs(7)).await;
    let verified = ok(v.verify(&token(&k1)).await, "K1");
    let evidence = *verified.keys().expect("remote keys carry evidence");
    assert_eq!(evidence.fetch, FetchDecision::NotNeeded);
    assert_eq!(evidence.age, Some(Duration::from_secs(7)));
    assert_eq!(evidence.fetched_at_unix, Some(NOW), "the source's clock at the fetch");
    assert!(!evidence.stale && !evidence.kid_negatively_cached && evidence.grace.is_none());

    // An unknown kid: this verification fetched, the set lacked it.
    let err = rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 unpublished");
    let evidence = *err.keys().unwrap();
    assert_eq!(evidence.fetch, FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: true });
    assert_eq!(evidence.age, Some(Duration::ZERO), "the set it was checked against is the new one");
    // Right after: the spacing refuses another fetch, and says when one is allowed.
    let err = rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 again");
    let evidence = *err.keys().unwrap();
    assert_eq!(
        evidence.fetch,
        FetchDecision::Refused {
            reason: NoFetchReason::Cooldown,
            retry_after: Some(Duration::from_millis(3750))
        }
    );
    assert!(evidence.kid_negatively_cached, "K2 was missing from a recent fetch");
    assert_eq!(server.hits(KEYS), 2);

    // Past its follow-up window the kid is answered from the negative cache.
    for _ in 0..20 {
        advance(Duration::from_secs(4)).await;
        let _ = v.verify(&token(&k2)).await;
    }
    let err = rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 after 80 s of misses");
    assert!(
        matches!(
            err.keys().unwrap().fetch,
            FetchDecision::Refused { reason: NoFetchReason::NegativeCache, .. }
        ),
        "{:?}",
        err.keys()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_the_rejections_source() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    server.set(KEYS, Reply::status(502));
    let err = rejected(v.verify(&token(&k2)).await, Reason::UnknownKid, "K2 while the IdP fails");
    assert_eq!(
        err.keys().unwrap().fetch,
        FetchDecision::Made { trigger: Trigger::UnknownKid, succeeded: false }
    );
    let cause = std::error::Error::source(&err).expect("the fetch error is chained");
    let cause = cause.downcast_ref::<keyward::source::FetchError>().expect("a FetchError");
    assert_eq!(cause.stage, FetchStage::HttpStatus(502));
    assert!(!err.to_string().contains("502"), "the cause is not repeated in the message: {err}");
}

/// A token naming a key that was set aside as malformed gets a key reason, not `malformed`
/// (the token is fine; the key is not).
#[tokio::test(start_paused = true)]
async fn a_kid_naming_a_malformed_key_gets_a_key_reason() {
    let k1 = key("k1");
    let mut set = keyward_idp::jwks([&k1]);
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"}));
    let (_server, source) = serving(Reply::json(&set)).await;
    ready(&source).await;
    let forged = forge(&json!({"alg": "ES256", "kid": "broken"}), &claims_for(ISS), &[7; 64]);
    let err = rejected(verifier(&source).verify(&forged).await, Reason::KeyNotForSigning, "malformed key");
    assert!(err.detail().contains("set aside"), "{err}");
}

#[tokio::test]
async fn tls_and_dns_failures_are_named_by_type() {
    // https to a server that answers the TLS ClientHello in plain HTTP: the handshake fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plain = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut hello = [0u8; 512];
            let _ = conn.read(&mut hello).await;
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let url = format!("https://127.0.0.1:{port}{KEYS}");
    let source = JwksSource::from_url(&url)
        .configure(|s| {
            s.background_refresh = false;
            s.http.retries = 0;
        })
        .build()
        .unwrap();
    let err = source.refresh().await.unwrap_err();
    assert_eq!(err.stage, FetchStage::Tls, "{err}");
    plain.abort();

    // A name that cannot resolve (the reserved `.invalid` TLD), retried like other transient
    // failures: three attempts, each a DNS failure.
    let source = JwksSource::from_url("https://keyward-test.invalid/keys")
        .configure(|s| {
            s.background_refresh = false;
            s.http.retry_backoff = Duration::from_millis(1);
        })
        .build()
        .unwrap();
    let err = source.refresh().await.unwrap_err();
    assert_eq!(err.stage, FetchStage::Dns, "{err}");
}

#[tokio::test(start_paused = true)]
async fn one_shot_fetch_reports_facts_and_touches_nothing() {
    let server = Server::start().await;
    let k1 = key("k1");
    server.set(
        KEYS,
        Reply::jwks(&[&k1]).header("cache-control", "public, max-age=86400").header("etag", "\"v7\""),
    );
    server.set(
        "/.well-known/openid-configuration",
        Reply::json(&json!({"issuer": server.base(), "jwks_uri": server.url(KEYS)})),
    );
    let report = fetch(&FetchTarget::Issuer(server.base()), &SourceSettings::default()).await.unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    let discovery = report.discovery.as_ref().unwrap();
    assert!(discovery.issuer_matches);
    assert_eq!(discovery.jwks_uri.as_deref(), Some(server.url(KEYS).as_str()));
    let facts = report.facts.as_ref().unwrap();
    assert_eq!(facts.status, 200);
    assert_eq!(facts.etag.as_deref(), Some("\"v7\""));
    assert_eq!(facts.content_type.as_deref(), Some("application/json"));
    assert_eq!(report.requested_ttl, Some(Duration::from_secs(86_400)));
    assert_eq!(report.ttl, Some(Duration::from_secs(15 * 60)), "clamped to max_ttl");
    assert_eq!(report.set.as_ref().unwrap().len(), 1);

    // Discovery that finds nothing lists every URL it tried.
    let report =
        fetch(&FetchTarget::Issuer(format!("{}/realms/none", server.base())), &SourceSettings::default())
            .await
            .unwrap();
    let err = report.error.unwrap();
    assert_eq!(err.stage, FetchStage::HttpStatus(404));
    assert_eq!(report.discovery.unwrap().tried.len(), 2);
    assert!(err.detail.contains("/realms/none/.well-known/openid-configuration"), "{err}");
    assert!(err.detail.contains("/.well-known/oauth-authorization-server/realms/none"), "{err}");

    // A body that is not a JWKS: the parse stage, with the response's facts kept.
    server.set(KEYS, Reply::bytes(b"<html>".to_vec()));
    let report = fetch(&FetchTarget::JwksUri(server.url(KEYS)), &SourceSettings::default()).await.unwrap();
    assert_eq!(report.error.unwrap().stage, FetchStage::Parse);
    assert_eq!(report.facts.unwrap().body_bytes, 6);
}

#[tokio::test(start_paused = true)]
async fn warm_cache_file_reader_refuses_a_save_time_in_the_future() {
    let dir = TempDir::new("reader");
    let server = Server::start().await;
    let k1 = key("k1");
    server.set(KEYS, Reply::jwks(&[&k1]));
    let clock = Arc::new(FixedClock::at(NOW));
    let build = || warm_process(&server, &dir, &clock);
    let a = build();
    ready(&a).await;
    drop(a);
    let path = std::fs::read_dir(&dir.0).unwrap().next().unwrap().unwrap().path();
    let cached = read_cache_file(&path, NOW + 10).unwrap();
    assert_eq!((cached.saved_at_unix, cached.set.len()), (NOW, 1));
    assert_eq!(cached.jwks_uri, server.url(KEYS));
    assert!(matches!(read_cache_file(&path, NOW - 1), Err(CacheFileError::SavedInFuture { .. })));
    assert!(matches!(read_cache_file(&dir.0.join("missing.json"), NOW), Err(CacheFileError::Io { .. })));

    // Warm start with the clock moved back: the file is not trusted.
    server.set(KEYS, Reply::status(503));
    clock.set(NOW - 3600);
    let b = build();
    rejected(verifier(&b).verify(&token(&k1)).await, Reason::KeysUnavailable, "cache saved in the future");
    assert!(b.current().is_none());
}

/// Durations from a server's headers never overflow the source's time arithmetic.
#[tokio::test(start_paused = true)]
async fn huge_caching_and_retry_headers_do_not_panic() {
    let k1 = key("k1");
    let cases = [
        (Reply::jwks(&[&k1]).header("cache-control", "max-age=18446744073709551615"), 15 * 60),
        (
            Reply::jwks(&[&k1])
                .header("expires", "Fri, 31 Dec 9999 23:59:59 GMT")
                .header("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            15 * 60,
        ),
        // Not a number keyward can represent: as if absent, the default TTL.
        (Reply::jwks(&[&k1]).header("cache-control", "max-age=99999999999999999999999"), 5 * 60),
    ];
    for (reply, ttl) in cases {
        let (_server, source) = serving(reply).await;
        ready(&source).await;
        ok(verifier(&source).verify(&token(&k1)).await, "huge TTL clamped");
        assert_eq!(source.health().expires_in_secs, Some(ttl));
    }
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    server.set(KEYS, Reply::status(429).header("retry-after", "18446744073709551615"));
    assert_eq!(source.refresh().await.unwrap_err().stage, FetchStage::HttpStatus(429));
    advance(Duration::from_secs(3600)).await;
    ok(verifier(&source).verify(&token(&k1)).await, "K1 stale, the next try capped at 60 s");
    assert!(matches!(source.health().state, HealthState::Stale { .. }));
}

#[test]
fn settings_past_their_bounds_are_configuration_errors() {
    let huge = Duration::from_secs(u64::MAX);
    type Set = fn(&mut SourceSettings, Duration);
    let cases: [(&str, Set); 5] = [
        ("max_stale", |s, d| s.max_stale = d),
        ("refresh_cooldown", |s, d| s.refresh_cooldown = d),
        ("fetch_wait", |s, d| s.fetch_wait = d),
        ("outage_backoff_max", |s, d| s.outage_backoff_max = d),
        ("removal_confirm_within", |s, d| s.removal_confirm_within = d),
    ];
    for (name, set) in cases {
        let mut settings = SourceSettings::default();
        set(&mut settings, huge);
        match settings.validate() {
            Err(ConfigError::Invalid(text)) => assert!(text.contains(name), "{name}: {text}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(SourceSettings::default().validate().is_ok());
}
