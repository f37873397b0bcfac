//! Shared fixtures: keys, tokens, a verifier on the mock IdP, requests, and a JWKS server that
//! can be stalled.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, header};
use http_body_util::BodyExt;
use keyward::source::JwksSource;
use keyward::{FixedClock, Policy, Verifier};
use keyward_idp::{MockIdp, SigningAlg, SigningKey, jwks};
use serde_json::{Value, json};
use tokio::sync::watch;

pub(crate) const NOW: i64 = 1_767_225_600;
pub(crate) const AUD: &str = "orders-api";

pub(crate) fn key(kid: &str) -> Arc<SigningKey> {
    Arc::new(SigningKey::generate(SigningAlg::ES256, kid).unwrap())
}

pub(crate) fn claims(iss: &str, extra: Value) -> Value {
    let mut claims =
        json!({"iss": iss, "sub": "alice", "aud": AUD, "iat": NOW, "nbf": NOW, "exp": NOW + 3600});
    if let (Some(map), Value::Object(more)) = (claims.as_object_mut(), extra) {
        map.extend(more);
    }
    claims
}

pub(crate) fn token(iss: &str, signer: &SigningKey, extra: Value) -> String {
    signer.sign_jwt(&claims(iss, extra)).unwrap()
}

pub(crate) fn verifier_for(jwks_uri: &str, iss: &str) -> Verifier {
    let source = JwksSource::from_url(jwks_uri).build().unwrap();
    Verifier::builder()
        .keys(source)
        .policy(Policy::builder().issuer(iss).audience(AUD).build().unwrap())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap()
}

pub(crate) async fn idp_with(keys: &[&Arc<SigningKey>]) -> (MockIdp, Verifier) {
    let idp = MockIdp::start().await.unwrap();
    idp.publish(keys);
    let verifier = verifier_for(&idp.jwks_uri(), idp.issuer());
    (idp, verifier)
}

pub(crate) fn req(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

pub(crate) fn grpc(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = req(path, token);
    request.headers_mut().insert(header::CONTENT_TYPE, "application/grpc+proto".parse().unwrap());
    request
}

/// Status, one header (or ""), and the body.
pub(crate) async fn parts(response: Response<Body>, name: &str) -> (u16, String, String) {
    let status = response.status().as_u16();
    let value = response.headers().get(name).map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, value, String::from_utf8(body.to_vec()).unwrap())
}

/// A JWKS endpoint on 127.0.0.1 that serves what it is given and can be stalled: while the
/// gate is closed, requests wait (on a channel, not a timer) until it opens.
pub(crate) struct SlowJwks {
    pub(crate) url: String,
    keys: Arc<Mutex<Value>>,
    gate: watch::Sender<bool>,
    hits: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowJwks {
    pub(crate) async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(jwks(keys.iter().copied())));
        let gate = watch::Sender::new(true);
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (served, open, counter) = (Arc::clone(&keys), gate.subscribe(), Arc::clone(&hits));
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (served, mut open, counter) = (Arc::clone(&served), open.clone(), Arc::clone(&counter));
                async move {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    open.wait_for(|open| *open).await.unwrap();
                    let body = served.lock().unwrap().to_string();
                    (
                        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "max-age=300")],
                        body,
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, keys, gate, hits, task }
    }

    pub(crate) fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = jwks(keys.iter().copied());
    }

    pub(crate) fn stall(&self) {
        self.gate.send_replace(false);
    }

    pub(crate) fn release(&self) {
        self.gate.send_replace(true);
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SlowJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lets spawned work run without advancing paused time.
pub(crate) async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}
