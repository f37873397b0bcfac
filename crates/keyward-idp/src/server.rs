//! A mock identity provider over HTTP on 127.0.0.1: discovery, JWKS, faults on command.
//!
//! It serves `/.well-known/openid-configuration` (issuer = its base URL) and `/jwks`, publishes
//! whatever keys it is told to, and can fail in the ways real IdPs do, so rotations and outages
//! can be rehearsed against any verifier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::mint::SigningKey;

/// How the JWKS endpoint misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Serve the published keys.
    None,
    /// Answer with this HTTP status and no keys.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with `{"keys": []}`.
    EmptySet,
}

struct Published {
    keys: Vec<Arc<SigningKey>>,
    fault: Fault,
    max_age: u64,
}

struct Shared {
    issuer: String,
    published: Mutex<Published>,
    jwks_hits: AtomicU64,
    discovery_hits: AtomicU64,
}

impl Shared {
    fn published(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running mock IdP; stops when dropped.
#[derive(Debug)]
pub struct MockIdp {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl MockIdp {
    /// Binds 127.0.0.1 on a free port and starts serving no keys.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            issuer,
            published: Mutex::new(Published { keys: Vec::new(), fault: Fault::None, max_age: 300 }),
            jwks_hits: AtomicU64::new(0),
            discovery_hits: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_endpoint))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // The server ends with the process or when the handle is dropped (aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, task })
    }

    /// The issuer: the base URL, as discovery reports it.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// Publishes exactly these keys (public halves) from now on.
    pub fn publish(&self, keys: &[&Arc<SigningKey>]) {
        self.shared.published().keys = keys.iter().map(|k| Arc::clone(k)).collect();
    }

    /// Makes the JWKS endpoint fail (or recover with [`Fault::None`]).
    pub fn set_fault(&self, fault: Fault) {
        self.shared.published().fault = fault;
    }

    /// The `Cache-Control: max-age` the JWKS is served with.
    pub fn set_max_age(&self, seconds: u64) {
        self.shared.published().max_age = seconds;
    }

    /// JWKS requests served so far.
    pub fn jwks_hits(&self) -> u64 {
        self.shared.jwks_hits.load(Ordering::Relaxed)
    }

    /// Discovery requests served so far.
    pub fn discovery_hits(&self) -> u64 {
        self.shared.discovery_hits.load(Ordering::Relaxed)
    }

    /// Standard claims for a token from this issuer, valid from `now` for `ttl` seconds.
    pub fn claims(&self, sub: &str, audience: &str, now: i64, ttl: i64) -> Value {
        json!({"iss": self.shared.issuer, "sub": sub, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl})
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_hits.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/jwks", shared.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn jwks_endpoint(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::Relaxed);
    let (fault, body, max_age) = {
        let published = shared.published();
        let keys: Vec<Value> = published.keys.iter().map(|k| k.public_jwk()).collect();
        (published.fault, json!({"keys": keys}).to_string(), published.max_age)
    };
    let cache = format!("public, max-age={max_age}");
    match fault {
        Fault::None => {
            ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::CACHE_CONTROL, cache)], body)
                .into_response()
        }
        Fault::Status(code) => {
            (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "unavailable")
                .into_response()
        }
        Fault::Garbage => ([(header::CONTENT_TYPE, "application/json")], "<html>oops</html>").into_response(),
        Fault::EmptySet => ([(header::CONTENT_TYPE, "application/json")], r#"{"keys":[]}"#).into_response(),
    }
}
