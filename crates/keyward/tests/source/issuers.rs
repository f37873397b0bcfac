//! Several issuers, each with its own source: `iss` picks the source before any key is looked
//! up, so an unconfigured issuer causes no traffic and one issuer's kids never reach another's.

use keyward::{FixedClock, Issuer, Policy, Reason, Verifier};
use serde_json::json;

use super::support::*;

const A: &str = "https://a.example.test";
const B: &str = "https://b.example.test";

#[tokio::test(start_paused = true)]
async fn issuers_select_their_own_source() {
    let (ka, kb) = (key("a1"), key("b1"));
    let (server_a, source_a) = serving(Reply::jwks(&[&ka])).await;
    let (server_b, source_b) = serving(Reply::jwks(&[&kb])).await;
    ready(&source_a).await;
    ready(&source_b).await;
    let v = Verifier::builder()
        .issuer(Issuer::new(A, source_a.clone()))
        .issuer(Issuer::new(B, source_b.clone()))
        .policy(Policy::builder().any_audience().build().unwrap())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let hits = || (server_a.hits(KEYS), server_b.hits(KEYS));
    assert_eq!(hits(), (1, 1), "startup fetches only");

    ok(v.verify(&ka.sign_jwt(&claims_for(A)).unwrap()).await, "A's token");
    ok(v.verify(&kb.sign_jwt(&claims_for(B)).unwrap()).await, "B's token");

    // An unconfigured iss, with a fresh kid or with a kid A knows: no fetch anywhere.
    let stranger = key("x1");
    for (case, token) in [
        ("unconfigured iss, new kid", stranger.sign_jwt(&claims_for("https://evil.example.test")).unwrap()),
        ("unconfigured iss, A's kid", ka.sign_jwt(&claims_for("https://evil.example.test")).unwrap()),
        ("A's iss with different case", ka.sign_jwt(&claims_for("https://A.example.test")).unwrap()),
        ("A's iss with a trailing slash", ka.sign_jwt(&claims_for("https://a.example.test/")).unwrap()),
        ("metadata address", stranger.sign_jwt(&claims_for("http://169.254.169.254")).unwrap()),
        ("file URL", stranger.sign_jwt(&claims_for("file:///etc/passwd")).unwrap()),
    ] {
        rejected(v.verify(&token).await, Reason::IssuerMismatch, case);
    }
    let no_iss = ka.sign_jwt(&json!({"sub": "alice", "exp": NOW + 60})).unwrap();
    rejected(v.verify(&no_iss).await, Reason::MissingClaim, "no iss");
    settle().await;
    assert_eq!(hits(), (1, 1), "unselected issuers cause no traffic");

    // A's iss with a kid only B publishes: A looks it up (one unknown-kid fetch); B is never asked.
    rejected(v.verify(&kb.sign_jwt(&claims_for(A)).unwrap()).await, Reason::UnknownKid, "B's kid under A");
    assert_eq!(hits(), (2, 1));
    rejected(v.verify(&ka.sign_jwt(&claims_for(B)).unwrap()).await, Reason::UnknownKid, "A's kid under B");
    assert_eq!(hits(), (2, 2));

    // The same kid at both issuers: a token verifies only with its own issuer's key.
    let (sa, sb) = (key("shared"), key("shared"));
    server_a.set(KEYS, Reply::jwks(&[&ka, &sa]));
    server_b.set(KEYS, Reply::jwks(&[&kb, &sb]));
    source_a.refresh().await.unwrap();
    source_b.refresh().await.unwrap();
    ok(v.verify(&sa.sign_jwt(&claims_for(A)).unwrap()).await, "A's shared-kid key");
    ok(v.verify(&sb.sign_jwt(&claims_for(B)).unwrap()).await, "B's shared-kid key");
    rejected(
        v.verify(&sb.sign_jwt(&claims_for(A)).unwrap()).await,
        Reason::InvalidSignature,
        "B's key, A's iss",
    );
    assert_eq!(v.health().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn templated_issuer_accepts_only_listed_tenants() {
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const OTHER: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let k1 = key("t1");
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let template = format!("http://127.0.0.1:{}/{{tenantid}}/v2.0", server.port());
    let v = Verifier::builder()
        .issuer(Issuer::templated(template.as_str(), source.clone()).tenants([TID]))
        .policy(Policy::builder().any_audience().build().unwrap())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let tenant_token = |iss_tid: &str, tid: &str| {
        let mut claims = claims_for(&template.replace("{tenantid}", iss_tid));
        claims["tid"] = json!(tid);
        k1.sign_jwt(&claims).unwrap()
    };

    let verified = ok(v.verify(&tenant_token(TID, TID)).await, "listed tenant");
    assert_eq!(verified.claims()["tid"], TID);
    rejected(v.verify(&tenant_token(OTHER, OTHER)).await, Reason::IssuerMismatch, "another tenant");
    rejected(v.verify(&tenant_token("contoso", "contoso")).await, Reason::IssuerMismatch, "non-GUID tid");
    rejected(v.verify(&tenant_token(TID, OTHER)).await, Reason::IssuerMismatch, "tid and iss disagree");
    rejected(v.verify(&tenant_token(OTHER, TID)).await, Reason::IssuerMismatch, "iss of another tenant");
    settle().await;
    assert_eq!(server.hits(KEYS), 1, "rejected tenants cause no fetch");
}
