//! What the fetcher itself may do: redirects stay on the configured host (THREATS A18).

use keyward::Reason;
use keyward::source::FetchStage;

use super::support::*;

#[tokio::test(start_paused = true)]
async fn redirects_to_another_host_are_not_followed() {
    let elsewhere = Server::start().await;
    let k1 = key("k1");
    elsewhere.set(KEYS, Reply::jwks(&[&k1]));
    // `localhost` is another host name than the configured `127.0.0.1`, even if it resolves there.
    let target = format!("http://localhost:{}{KEYS}", elsewhere.port());
    let (server, source) = serving(Reply::status(302).header("location", &target)).await;
    let v = verifier(&source);

    rejected(v.verify(&token(&k1)).await, Reason::KeysUnavailable, "redirected off-host");
    assert_eq!(server.hits(KEYS), 1);
    assert_eq!(elsewhere.hits(KEYS), 0, "the redirect was followed");
    assert_eq!(last_stage(&source), FetchStage::HttpStatus(302));
}

#[tokio::test(start_paused = true)]
async fn redirects_on_the_same_host_are_followed() {
    let server = Server::start().await;
    let k1 = key("k1");
    server.set(KEYS, Reply::status(301).header("location", "/moved/keys"));
    server.set("/moved/keys", Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).build().unwrap();
    let v = verifier(&source);

    ok(v.verify(&token(&k1)).await, "same-host redirect");
    assert_eq!((server.hits(KEYS), server.hits("/moved/keys")), (1, 1));
    let response = source.health().last_response.unwrap();
    assert_eq!(response.url, server.url("/moved/keys"), "the facts name the URL that answered");
}

/// The premise of this suite (see `source.rs`): loopback fetches complete without the paused
/// clock moving, so no HTTP timeout can fire early and TTL arithmetic is exact.
#[tokio::test(start_paused = true)]
async fn loopback_fetches_do_not_advance_paused_time() {
    let server = Server::start().await;
    let k1 = key("k1");
    server.set(KEYS, Reply::jwks(&[&k1]));
    let started = tokio::time::Instant::now();
    let source = quiet(&server.url(KEYS)).build().unwrap();
    ready(&source).await;
    for _ in 0..50 {
        source.refresh().await.unwrap();
    }
    assert_eq!(server.hits(KEYS), 51);
    assert_eq!(started.elapsed(), std::time::Duration::ZERO);
}
