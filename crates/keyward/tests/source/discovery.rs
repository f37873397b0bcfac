//! OIDC discovery: `from_issuer` follows `jwks_uri`, and a document naming another issuer
//! yields no keys at all.

use keyward::Reason;
use keyward::source::{FetchStage, HealthState, JwksSource};
use serde_json::json;

use super::support::*;

const WELL_KNOWN: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/discovered/jwks";

#[tokio::test(start_paused = true)]
async fn discovery_follows_jwks_uri() {
    let server = Server::start().await;
    let iss = server.base();
    let k1 = key("k1");
    server.set(WELL_KNOWN, Reply::json(&json!({"issuer": iss, "jwks_uri": server.url(JWKS_PATH)})));
    server.set(JWKS_PATH, Reply::jwks(&[&k1]));
    let source = JwksSource::from_issuer(&iss).configure(|s| s.background_refresh = false).build().unwrap();
    assert_eq!(source.name(), iss);
    let v = verifier_for(&iss, &source);

    ok(v.verify(&k1.sign_jwt(&claims_for(&iss)).unwrap()).await, "token of the discovered issuer");
    assert_eq!((server.hits(WELL_KNOWN), server.hits(JWKS_PATH)), (1, 1));
    // Later fetches go straight to the discovered jwks_uri.
    source.refresh().await.unwrap();
    assert_eq!((server.hits(WELL_KNOWN), server.hits(JWKS_PATH)), (1, 2));
    // The policy's issuer still applies to the claims.
    let other = k1.sign_jwt(&claims_for("https://other.example.test")).unwrap();
    rejected(v.verify(&other).await, Reason::IssuerMismatch, "token of another issuer");
}

#[tokio::test(start_paused = true)]
async fn discovery_with_a_mismatched_issuer_never_gets_keys() {
    let server = Server::start().await;
    let iss = server.base();
    let k1 = key("k1");
    server.set(JWKS_PATH, Reply::jwks(&[&k1]));
    let token = k1.sign_jwt(&claims_for(&iss)).unwrap();
    // Another issuer's document, and the same issuer with a trailing slash: both are mismatches
    // (issuers are compared exactly).
    for (case, named) in [("other issuer", format!("{iss}/other")), ("trailing slash", format!("{iss}/"))] {
        server.set(WELL_KNOWN, Reply::json(&json!({"issuer": named, "jwks_uri": server.url(JWKS_PATH)})));
        let source =
            JwksSource::from_issuer(&iss).configure(|s| s.background_refresh = false).build().unwrap();
        let v = verifier_for(&iss, &source);
        let err = rejected(v.verify(&token).await, Reason::KeysUnavailable, case);
        let cause = err.fetch_error().expect("the failed fetch is the cause");
        assert!(cause.detail.contains("discovery document names issuer"), "{case}: {cause}");
        assert_eq!(cause.stage, FetchStage::Parse, "{case}");
        assert!(std::error::Error::source(&err).is_some(), "{case}: the fetch error is chained");
        assert_eq!(last_stage(&source), FetchStage::Parse, "{case}");
        assert!(matches!(source.health().state, HealthState::Unavailable { .. }), "{case}");
        assert!(source.current().is_none(), "{case}");
        assert_eq!(
            server.hits(JWKS_PATH),
            0,
            "{case}: the jwks_uri of a mismatched document is never fetched"
        );
    }
}
