//! The scripted JWKS server and shared fixtures for the key-source tests.
//!
//! [`Server`] is keyward-idp's [`Provider`] on `127.0.0.1:0`, answering each path from a script
//! the test controls: a queue of one-shot [`Reply`]s, then a current reply. It counts hits per
//! path, records request headers, can delay a reply (with `tokio::time::sleep`, so paused time
//! applies) and can go down (new connections are closed at accept, and connections opened
//! before the outage fail on their next read or write). Dropping the server aborts its accept
//! loop; the connection tasks end with the test's runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use keyward::source::{FetchStage, HealthState, JwksSource, JwksSourceBuilder};
use keyward::{Error, FixedClock, Policy, Reason, Verifier};
pub(crate) use keyward_idp::Reply;
use keyward_idp::mint::b64;
use keyward_idp::{Provider, ProviderConfig, SigningAlg, SigningKey};
use serde_json::{Value, json};

/// The verifier's clock: 2026-01-01T00:00:00Z. Tokens are valid for an hour around it, and the
/// verifier clock never moves, so advancing tokio time never expires a token.
pub(crate) const NOW: i64 = 1_767_225_600;
/// The issuer of the single-issuer tests (a name only; keys come from the scripted server).
pub(crate) const ISS: &str = "https://idp.example.test";
/// The JWKS path on the scripted server.
pub(crate) const KEYS: &str = "/keys";

/// A scripted HTTP server on a loopback port: keyward-idp's [`Provider`] with every path the
/// tests use scripted (its own endpoints answer paths that are not).
pub(crate) struct Server {
    provider: Provider,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves the (initially empty) script.
    pub(crate) async fn start() -> Self {
        let config = ProviderConfig { algs: vec![SigningAlg::ES256], ..ProviderConfig::default() };
        let provider = Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
        Self { provider }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        self.provider.base_url().to_owned()
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.provider.local_addr().port()
    }

    /// Answers `path` with `reply` from now on (after any queued replies).
    pub(crate) fn set(&self, path: &str, reply: Reply) {
        self.provider.set_reply(path, reply);
    }

    /// Answers the next request to `path` with `reply`, once.
    pub(crate) fn push(&self, path: &str, reply: Reply) {
        self.provider.push_reply(path, reply);
    }

    /// Requests `path` received (while up).
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.provider.hits(path)
    }

    /// Request headers of every request to `path`, in order.
    pub(crate) fn requests(&self, path: &str) -> Vec<HeaderMap> {
        self.provider.requests(path)
    }

    /// The value of header `name` in the last request to `path`.
    pub(crate) fn last_header(&self, path: &str, name: &str) -> Option<String> {
        let requests = self.requests(path);
        let last = requests.last()?;
        last.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Stops answering: connections are closed at accept, open ones fail on their next I/O.
    pub(crate) fn go_down(&self) {
        self.provider.go_down();
    }

    /// Answers again.
    pub(crate) fn come_up(&self) {
        self.provider.come_up();
    }

    /// Connections closed at accept while down.
    pub(crate) fn refused(&self) -> u64 {
        self.provider.refused_connections()
    }
}

/// A fresh ES256 key (fast to generate in debug builds).
pub(crate) fn key(kid: &str) -> SigningKey {
    SigningKey::generate(SigningAlg::ES256, kid).unwrap()
}

/// Claims valid at `NOW` for `iss`.
pub(crate) fn claims_for(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": "api", "iat": NOW - 10, "exp": NOW + 3600})
}

/// A token from `key` for `ISS`.
pub(crate) fn token(key: &SigningKey) -> String {
    key.sign_jwt(&claims_for(ISS)).unwrap()
}

/// A source of `url` with the background task off, so only the test drives fetches.
pub(crate) fn quiet(url: &str) -> JwksSourceBuilder {
    JwksSource::from_url(url).configure(|s| s.background_refresh = false)
}

/// A [`quiet`] source of the server's `KEYS` that saves to, and warm-starts from, `dir`, reading
/// the wall clock from `clock`: one "process" of a warm-start test.
pub(crate) fn warm_process(server: &Server, dir: &TempDir, clock: &Arc<FixedClock>) -> JwksSource {
    let cache = dir.0.clone();
    quiet(&server.url(KEYS))
        .configure(|s| s.cache_dir = Some(cache))
        .clock(Arc::clone(clock))
        .build()
        .unwrap()
}

/// A server answering `KEYS` with `reply`, and a [`quiet`] source of it. The startup fetch
/// runs at the test's next await.
pub(crate) async fn serving(reply: Reply) -> (Server, JwksSource) {
    let server = Server::start().await;
    server.set(KEYS, reply);
    let source = quiet(&server.url(KEYS)).build().unwrap();
    (server, source)
}

/// A compact token of `header` and `claims` with `signature` as given: what an attacker can
/// send without a key.
pub(crate) fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |value: &Value| b64(value.to_string().as_bytes());
    format!("{}.{}.{}", part(header), part(claims), b64(signature))
}

/// A verifier for `ISS` over `source`, any audience, clock at `NOW`.
pub(crate) fn verifier(source: &JwksSource) -> Verifier {
    verifier_for(ISS, source)
}

/// A verifier for `iss` over `source`, any audience, clock at `NOW`.
pub(crate) fn verifier_for(iss: &str, source: &JwksSource) -> Verifier {
    Verifier::builder()
        .keys(source.clone())
        .policy(Policy::builder().issuer(iss).any_audience().build().unwrap())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap()
}

/// Waits for the startup fetch (which `build` starts) to finish, without starting another;
/// it must succeed. (`refresh()` would start a second fetch if the first already finished.)
pub(crate) async fn ready(source: &JwksSource) {
    until("the startup fetch", || source.health().state != HealthState::Starting).await;
    assert!(source.current().is_some(), "startup fetch failed: {:?}", source.health().last_error);
}

/// Asserts that a verification succeeded.
#[track_caller]
pub(crate) fn ok<T>(result: Result<T, Error>, case: &str) -> T {
    result.unwrap_or_else(|e| panic!("{case}: rejected: {e}"))
}

/// Asserts that a verification was rejected with `reason`, returning the error.
#[track_caller]
pub(crate) fn rejected<T: std::fmt::Debug>(result: Result<T, Error>, reason: Reason, case: &str) -> Error {
    match result {
        Ok(v) => panic!("{case}: accepted ({v:?}), expected {reason}"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "{case}: {e}");
            e
        }
    }
}

/// The stage of the last fetch failure.
#[track_caller]
pub(crate) fn last_stage(source: &JwksSource) -> FetchStage {
    source.health().last_error.unwrap_or_else(|| panic!("no fetch error recorded")).stage
}

/// A unique empty directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("keyward-source-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` between yields until it holds. Yields never advance paused time (the runtime
/// is never idle), while the I/O driver is still polled, so loopback fetches complete.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting for {what}");
}

/// Lets already-spawned work (a fetch a verification started) run without advancing time.
pub(crate) async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}
