//! keyward-tower against the in-process mock IdP (127.0.0.1): valid tokens reach handlers with
//! claims, each rejection class gets its status, header and gRPC code, rotations lose no
//! request, a stalled JWKS endpoint does not slow requests whose kid is known, the modes and
//! extractors behave as documented.
//!
//! Time: current-thread runtime with the clock paused; the app is called in-process with
//! `tower::ServiceExt::oneshot`.

mod support;

use axum::Router;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{Request as HttpRequest, StatusCode};
use axum::routing::get;
use keyward::Verifier;
use keyward_idp::Fault;
use keyward_tower::{
    AuthOutcome, Authenticated, Claims, KeywardAuthorizer, KeywardLayer, Mode, StandardClaims, require, role,
    scope,
};
use serde::Deserialize;
use serde_json::json;
use support::*;
use tower::ServiceExt;

async fn me(Claims(claims): Claims) -> String {
    format!("sub={}", claims.sub.unwrap_or_default())
}

#[derive(Deserialize)]
struct Mine {
    sub: String,
    email: String,
}

async fn mine(Claims(claims): Claims<Mine>) -> String {
    format!("{} <{}>", claims.sub, claims.email)
}

async fn maybe(claims: Option<Claims>) -> String {
    match claims {
        Some(Claims(c)) => format!("hello {}", c.sub.unwrap_or_default()),
        None => "anonymous".to_owned(),
    }
}

async fn outcome(outcome: AuthOutcome) -> String {
    outcome.as_str().to_owned()
}

/// What the handler can see of the credential: the header is sensitive, the digest is there.
async fn evidence(auth: Authenticated, request: HttpRequest<axum::body::Body>) -> String {
    let sensitive = request.headers().get(AUTHORIZATION).is_some_and(|v| v.is_sensitive());
    format!("{} {sensitive} {:?}", auth.token_id(), auth.verified().issuer())
}

fn app(verifier: Verifier, mode: Mode) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/mine", get(mine))
        .route("/maybe", get(maybe))
        .route("/outcome", get(outcome))
        .route("/orders", get(me).route_layer(require(scope("orders:read").and(role("admin")))))
        .layer(KeywardLayer::new(verifier).mode(mode))
}

async fn call(app: &Router, request: HttpRequest<axum::body::Body>, header: &str) -> (u16, String, String) {
    parts(app.clone().oneshot(request).await.unwrap(), header).await
}

#[tokio::test(start_paused = true)]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Required);
    let t = token(idp.issuer(), &k1, json!({"email": "alice@example.com"}));

    assert_eq!(call(&app, req("/me", Some(&t)), "").await, (200, String::new(), "sub=alice".to_owned()));
    assert_eq!(call(&app, req("/mine", Some(&t)), "").await.2, "alice <alice@example.com>");

    let with_evidence = Router::new()
        .route("/e", get(evidence))
        .layer(KeywardLayer::new(verifier_for(&idp.jwks_uri(), idp.issuer())));
    let (status, _, body) = call(&with_evidence, req("/e", Some(&t)), "").await;
    assert_eq!(status, 200);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
    let short: String = digest.as_ref().iter().take(8).map(|b| format!("{b:02x}")).collect();
    assert_eq!(body, format!("{short} true Some({:?})", idp.issuer()));
}

#[tokio::test(start_paused = true)]
async fn every_rejection_class_gets_its_status_header_and_grpc_code() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Required);
    let iss = idp.issuer().to_owned();
    let good = token(&iss, &k1, json!({"scope": "orders:read", "roles": ["auditor"]}));
    let expired = token(&iss, &k1, json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}));
    let forged = token(&iss, &key("k1"), json!({}));

    // No token.
    assert_eq!(call(&app, req("/me", None), WWW_AUTHENTICATE.as_str()).await.0, 401);
    assert_eq!(call(&app, req("/me", None), WWW_AUTHENTICATE.as_str()).await.1, "Bearer");
    // Another scheme is no bearer token either.
    let mut basic = req("/me", None);
    basic.headers_mut().insert(AUTHORIZATION, "Basic YWxpY2U6c2VjcmV0".parse().unwrap());
    assert_eq!(call(&app, basic, WWW_AUTHENTICATE.as_str()).await.1, "Bearer");
    // Rejected tokens: the reason code in error_description.
    let (status, challenge, body) = call(&app, req("/me", Some(&expired)), WWW_AUTHENTICATE.as_str()).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer error="invalid_token", error_description="expired""#)
    );
    assert_eq!(body, r#"{"error":"invalid_token","reason":"expired"}"#);
    let (status, challenge, _) = call(&app, req("/me", Some(&forged)), WWW_AUTHENTICATE.as_str()).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer error="invalid_token", error_description="invalid_signature""#)
    );
    // Two Authorization headers: not exactly one bearer token.
    let mut twice = req("/me", Some(&good));
    twice.headers_mut().append(AUTHORIZATION, format!("Bearer {good}").parse().unwrap());
    let (status, challenge, _) = call(&app, twice, WWW_AUTHENTICATE.as_str()).await;
    assert_eq!(status, 400);
    assert!(challenge.starts_with(r#"Bearer error="invalid_request""#), "{challenge}");
    // A verified token without the route's role.
    let (status, challenge, _) = call(&app, req("/orders", Some(&good)), WWW_AUTHENTICATE.as_str()).await;
    assert_eq!(
        (status, challenge.as_str()),
        (403, r#"Bearer error="insufficient_scope", scope="orders:read""#)
    );

    // gRPC: HTTP 200 with grpc-status 16 / 16 / 7.
    for (request, code) in
        [(grpc("/me", None), "16"), (grpc("/me", Some(&expired)), "16"), (grpc("/orders", Some(&good)), "7")]
    {
        let (status, grpc_status, _) = call(&app, request, "grpc-status").await;
        assert_eq!((status, grpc_status.as_str()), (200, code));
    }
    let (_, message, _) = call(&app, grpc("/me", Some(&expired)), "grpc-message").await;
    assert_eq!(message, "expired");
}

#[tokio::test(start_paused = true)]
async fn keys_unavailable_is_503_with_retry_after_never_401() {
    let k1 = key("k1");
    let idp = keyward_idp::MockIdp::start().await.unwrap();
    idp.set_fault(Fault::Status(500));
    let verifier = verifier_for(&idp.jwks_uri(), idp.issuer());
    let app = app(verifier, Mode::Required);
    let t = token(idp.issuer(), &k1, json!({}));

    // The first fetch fails (after its retries, in paused time).
    let (status, _, body) = call(&app, req("/me", Some(&t)), "").await;
    assert_eq!(status, 503, "{body}");
    let (status, retry_after, body) = call(&app, req("/me", Some(&t)), RETRY_AFTER.as_str()).await;
    assert_eq!(status, 503);
    let secs: u64 = retry_after.parse().unwrap();
    assert!((1..=3600).contains(&secs), "{retry_after}");
    assert_eq!(body, r#"{"error":"temporarily_unavailable","reason":"keys_unavailable"}"#);
    let (status, grpc_status, _) = call(&app, grpc("/me", Some(&t)), "grpc-status").await;
    assert_eq!((status, grpc_status.as_str()), (200, "14"));
}

#[tokio::test(start_paused = true)]
async fn a_key_rotated_in_right_after_a_tampered_token_is_accepted_at_once() {
    let (k1, k2, forger) = (key("k1"), key("k2"), key("k1"));
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Required);
    let iss = idp.issuer().to_owned();
    assert_eq!(call(&app, req("/me", Some(&token(&iss, &k1, json!({})))), "").await.0, 200);
    // A token forged under k1 costs a signature retry, and is refused.
    let (status, header, _) =
        call(&app, req("/me", Some(&token(&iss, &forger, json!({})))), "www-authenticate").await;
    assert_eq!(
        (status, header.as_str()),
        (401, r#"Bearer error="invalid_token", error_description="invalid_signature""#)
    );
    // The IdP rotates k2 in at once: signature retries have a budget of their own, so k2's
    // first token is looked up and accepted, not refused for the rest of a fetch spacing.
    idp.publish(&[&k1, &k2]);
    let (status, _, body) = call(&app, req("/me", Some(&token(&iss, &k2, json!({})))), "").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(start_paused = true)]
async fn requirements_read_scopes_and_roles_from_every_usual_claim() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Required);
    let iss = idp.issuer().to_owned();
    let allowed = [
        json!({"scope": "profile orders:read", "roles": ["admin"]}),
        json!({"scp": ["orders:read"], "realm_access": {"roles": ["admin"]}}),
        json!({"scp": "orders:read openid", "resource_access": {AUD: {"roles": ["admin"]}}}),
        json!({"scopes": ["orders:read"], "roles": "admin"}),
    ];
    for extra in allowed {
        let t = token(&iss, &k1, extra.clone());
        assert_eq!(call(&app, req("/orders", Some(&t)), "").await.0, 200, "{extra}");
    }
    let denied = [
        json!({"scope": "orders:write", "roles": ["admin"]}),
        json!({"scope": "orders:read"}),
        json!({"scope": "orders:read", "resource_access": {"another-api": {"roles": ["admin"]}}}),
        json!({"scope": "orders:read-all", "roles": ["administrator"]}),
    ];
    for extra in denied {
        let t = token(&iss, &k1, extra.clone());
        assert_eq!(call(&app, req("/orders", Some(&t)), "").await.0, 403, "{extra}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_rotation_mid_traffic_loses_no_request() {
    let (k1, k2) = (key("k1"), key("k2"));
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Required);
    let iss = idp.issuer().to_owned();
    for _ in 0..5 {
        assert_eq!(call(&app, req("/me", Some(&token(&iss, &k1, json!({})))), "").await.0, 200);
    }
    let hits = idp.jwks_hits();

    // The IdP rotates: k2 signs from now on; tokens of both keys are in flight at once.
    idp.publish(&[&k1, &k2]);
    let mut inflight = Vec::new();
    for i in 0..20 {
        let signer = if i % 2 == 0 { &k2 } else { &k1 };
        let request = req("/me", Some(&token(&iss, signer, json!({}))));
        inflight.push(tokio::spawn(app.clone().oneshot(request)));
    }
    for handle in inflight {
        assert_eq!(handle.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(idp.jwks_hits(), hits + 1, "one fetch served every request waiting for k2");

    // k1 is retired by the IdP: still verifying until the removal is confirmed, k2 throughout.
    idp.publish(&[&k2]);
    assert_eq!(call(&app, req("/me", Some(&token(&iss, &k2, json!({})))), "").await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_jwks_fetch_does_not_slow_requests_with_a_known_kid() {
    let (k1, k2) = (key("k1"), key("k2"));
    let jwks = SlowJwks::start(&[&k1]).await;
    let iss = "https://idp.example.test";
    let app = app(verifier_for(&jwks.url, iss), Mode::Required);
    assert_eq!(call(&app, req("/me", Some(&token(iss, &k1, json!({})))), "").await.0, 200);

    // The IdP rotates in k2 but its JWKS endpoint hangs.
    jwks.publish(&[&k1, &k2]);
    jwks.stall();
    let waiting = tokio::spawn(app.clone().oneshot(req("/me", Some(&token(iss, &k2, json!({}))))));
    // The token-driven request is sent after its random delay (at most 500 ms of paused time).
    for _ in 0..100 {
        if jwks.hits() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(jwks.hits(), 2, "the k2 fetch reached the stalled endpoint");
    let stalled_at = tokio::time::Instant::now();

    // While the fetch hangs, known-kid requests complete, without any time passing.
    for _ in 0..50 {
        let request = req("/me", Some(&token(iss, &k1, json!({}))));
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(tokio::time::Instant::now(), stalled_at, "no request waited on the clock");
    assert!(!waiting.is_finished(), "the k2 request is still waiting for the stalled fetch");

    jwks.release();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn passthrough_records_every_outcome_and_rejects_nothing() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Passthrough);
    let iss = idp.issuer().to_owned();
    let good = token(&iss, &k1, json!({}));
    let expired = token(&iss, &k1, json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}));

    assert_eq!(
        call(&app, req("/outcome", Some(&good)), "").await,
        (200, String::new(), "verified".to_owned())
    );
    assert_eq!(call(&app, req("/outcome", None), "").await, (200, String::new(), "missing".to_owned()));
    assert_eq!(
        call(&app, req("/outcome", Some(&expired)), "").await,
        (200, String::new(), "expired".to_owned())
    );
    // A handler that insists on claims still rejects what the layer let through.
    assert_eq!(call(&app, req("/me", Some(&expired)), "").await.0, 401);
    assert_eq!(call(&app, req("/me", None), "").await.0, 401);
    assert_eq!(call(&app, req("/orders", Some(&expired)), "").await.0, 401);
}

#[tokio::test(start_paused = true)]
async fn optional_lets_anonymous_requests_through_but_not_invalid_tokens() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app = app(verifier, Mode::Optional);
    let iss = idp.issuer().to_owned();
    let good = token(&iss, &k1, json!({}));
    let expired = token(&iss, &k1, json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}));

    assert_eq!(call(&app, req("/maybe", None), "").await, (200, String::new(), "anonymous".to_owned()));
    assert_eq!(call(&app, req("/maybe", Some(&good)), "").await.2, "hello alice");
    assert_eq!(call(&app, req("/maybe", Some(&expired)), "").await.0, 401);
    // A required extractor without a token: 401, not 500.
    let (status, challenge, _) = call(&app, req("/me", None), WWW_AUTHENTICATE.as_str()).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer"));
}

/// Log output captured for this thread.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_extractor_without_the_layer_is_a_500_naming_the_route() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = Logs::default();
    let writer = logs.clone();
    let _guard =
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish().set_default();

    let app: Router = Router::new().route("/orders/{id}", get(me));
    let (status, _, body) = call(&app, req("/orders/7", None), "").await;
    assert_eq!(status, 500);
    assert_eq!(body, r#"{"error":"server_error","reason":"not_configured"}"#);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("ERROR"), "{logged}");
    assert!(logged.contains("route=\"/orders/{id}\""), "{logged}");
    assert!(logged.contains("without a KeywardLayer"), "{logged}");

    let unprotected: Router = Router::new().route("/o", get(me).route_layer(require(scope("x"))));
    assert_eq!(call(&unprotected, req("/o", None), "").await.0, 500);
}

#[tokio::test(start_paused = true)]
async fn tower_http_async_require_authorization_works_the_same() {
    use tower_http::auth::AsyncRequireAuthorizationLayer;
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let app: Router = Router::new()
        .route("/me", get(me))
        .layer(AsyncRequireAuthorizationLayer::new(KeywardAuthorizer::new(verifier)));
    let good = token(idp.issuer(), &k1, json!({}));
    assert_eq!(call(&app, req("/me", Some(&good)), "").await.2, "sub=alice");
    let (status, challenge, _) = call(&app, req("/me", None), WWW_AUTHENTICATE.as_str()).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer"));
    // A rotated-in kid waits for its fetch here too.
    let k2 = key("k2");
    idp.publish(&[&k1, &k2]);
    assert_eq!(call(&app, req("/me", Some(&token(idp.issuer(), &k2, json!({})))), "").await.0, 200);
}

#[test]
fn standard_claims_take_aud_as_string_or_array() {
    let one: StandardClaims = serde_json::from_value(json!({"aud": "a", "sub": "s"})).unwrap();
    assert_eq!(one.aud, vec!["a".to_owned()]);
    let many: StandardClaims = serde_json::from_value(json!({"aud": ["a", "b"]})).unwrap();
    assert_eq!(many.aud, vec!["a".to_owned(), "b".to_owned()]);
}

#[test]
fn standard_claims_read_fractional_numeric_dates_as_the_verifier_does() {
    let c: StandardClaims =
        serde_json::from_value(json!({"exp": 1_767_229_200.5, "nbf": 1_767_225_600.2, "iat": 1_767_225_600}))
            .unwrap();
    assert_eq!((c.exp, c.nbf, c.iat), (Some(1_767_229_200), Some(1_767_225_601), Some(1_767_225_600)));
    let none: StandardClaims = serde_json::from_value(json!({})).unwrap();
    assert_eq!((none.exp, none.nbf, none.iat), (None, None, None));
    assert!(serde_json::from_value::<StandardClaims>(json!({"exp": "tomorrow"})).is_err());
}

/// The application's own mapping, used wherever a rejection is answered.
#[derive(Clone)]
struct Teapot;

impl keyward_tower::Reject for Teapot {
    fn reject(&self, rejection: &keyward_tower::Rejection, _grpc: bool) -> http::Response<String> {
        let mut response = http::Response::new(format!("teapot: {}", rejection.code()));
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
        response
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_rejection_mapping_answers_for_the_layer_and_for_the_extractors() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let expired = token(idp.issuer(), &k1, json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}));
    // Required: the layer itself refuses.
    let required =
        Router::new().route("/me", get(me)).layer(KeywardLayer::new(verifier.clone()).reject_with(Teapot));
    assert_eq!(
        call(&required, req("/me", None), "").await,
        (418, String::new(), "teapot: missing_token".to_owned())
    );
    // Passthrough: the request goes on and the extractor refuses, the application's way too.
    let passthrough = Router::new()
        .route("/me", get(me))
        .layer(KeywardLayer::new(verifier).mode(Mode::Passthrough).reject_with(Teapot));
    assert_eq!(
        call(&passthrough, req("/me", Some(&expired)), "").await,
        (418, String::new(), "teapot: expired".to_owned())
    );
}
