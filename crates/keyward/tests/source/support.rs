//! The scripted JWKS server and shared fixtures for the key-source tests.
//!
//! [`Server`] listens on `127.0.0.1:0` (axum) and answers each path from a script the test
//! controls: a queue of one-shot [`Reply`]s, then a current reply. It counts hits per path,
//! records request headers, can delay a reply (with `tokio::time::sleep`, so paused time
//! applies) and can go down (new connections are closed at accept, and connections opened
//! before the outage fail on their next read). Dropping the server aborts its accept loop; the
//! connection tasks end with the test's runtime.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use keyward::source::{FetchStage, HealthState, JwksSource, JwksSourceBuilder};
use keyward::{Error, FixedClock, Policy, Reason, Verifier};
use keyward_idp::mint::b64;
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The verifier's clock: 2026-01-01T00:00:00Z. Tokens are valid for an hour around it, and the
/// verifier clock never moves, so advancing tokio time never expires a token.
pub(crate) const NOW: i64 = 1_767_225_600;
/// The issuer of the single-issuer tests (a name only; keys come from the scripted server).
pub(crate) const ISS: &str = "https://idp.example.test";
/// The JWKS path on the scripted server.
pub(crate) const KEYS: &str = "/keys";

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    delay: Duration,
}

impl Reply {
    /// 200 with `body` as JSON.
    pub(crate) fn json(body: &Value) -> Self {
        Self::bytes(body.to_string().into_bytes()).header("content-type", "application/json")
    }

    /// 200 with a JWKS publishing `keys`.
    pub(crate) fn jwks(keys: &[&SigningKey]) -> Self {
        Self::json(&jwks(keys.iter().copied()))
    }

    /// 200 with raw bytes.
    pub(crate) fn bytes(body: Vec<u8>) -> Self {
        Self { status: 200, headers: Vec::new(), body: Arc::new(body), delay: Duration::ZERO }
    }

    /// An empty body with `status`.
    pub(crate) fn status(status: u16) -> Self {
        Self { status, ..Self::bytes(Vec::new()) }
    }

    /// Adds a response header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `delay` (tokio time).
    pub(crate) fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    current: Option<Reply>,
    hits: usize,
    requests: Vec<HeaderMap>,
}

#[derive(Default)]
struct Script {
    routes: HashMap<String, Route>,
}

struct Shared {
    script: Mutex<Script>,
    /// True while the server is down.
    down: AtomicBool,
    /// Bumped at every outage: connections from an earlier epoch fail on their next I/O.
    epoch: AtomicU64,
    /// Connections closed at accept while down.
    refused: AtomicU64,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }
}

/// A scripted HTTP server on a loopback port.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Binds `127.0.0.1:0` and serves the (initially empty) script.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            down: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let gated = GatedListener { inner: listener, shared: Arc::clone(&shared) };
        let task = tokio::spawn(async move {
            axum::serve(gated, app).await.unwrap();
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers `path` with `reply` from now on (after any queued replies).
    pub(crate) fn set(&self, path: &str, reply: Reply) {
        self.shared.script().routes.entry(path.to_owned()).or_default().current = Some(reply);
    }

    /// Answers the next request to `path` with `reply`, once.
    pub(crate) fn push(&self, path: &str, reply: Reply) {
        self.shared.script().routes.entry(path.to_owned()).or_default().queue.push_back(reply);
    }

    /// Requests `path` received (while up).
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.shared.script().routes.get(path).map_or(0, |r| r.hits)
    }

    /// Request headers of every request to `path`, in order.
    pub(crate) fn requests(&self, path: &str) -> Vec<HeaderMap> {
        self.shared.script().routes.get(path).map(|r| r.requests.clone()).unwrap_or_default()
    }

    /// The value of header `name` in the last request to `path`.
    pub(crate) fn last_header(&self, path: &str, name: &str) -> Option<String> {
        let requests = self.requests(path);
        let last = requests.last()?;
        last.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Stops answering: connections are closed at accept, open ones fail on their next I/O.
    pub(crate) fn go_down(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.down.store(true, Ordering::SeqCst);
    }

    /// Answers again.
    pub(crate) fn come_up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Connections closed at accept while down.
    pub(crate) fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let reply = {
        let mut script = shared.script();
        let route = script.routes.entry(uri.path().to_owned()).or_default();
        route.hits += 1;
        route.requests.push(headers);
        route.queue.pop_front().or_else(|| route.current.clone())
    };
    let Some(reply) = reply else {
        return Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).unwrap();
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Body::from(reply.body.as_ref().clone()));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in &reply.headers {
        response
            .headers_mut()
            .append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    response
}

/// A listener that closes connections while the server is down.
struct GatedListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for GatedListener {
    type Io = GatedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else { continue };
            if self.shared.down.load(Ordering::SeqCst) {
                self.shared.refused.fetch_add(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            let epoch = self.shared.epoch.load(Ordering::SeqCst);
            return (GatedStream { inner: stream, shared: Arc::clone(&self.shared), epoch }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A server-side connection that fails once an outage began after it was accepted.
struct GatedStream {
    inner: TcpStream,
    shared: Arc<Shared>,
    epoch: u64,
}

impl GatedStream {
    fn cut(&self) -> bool {
        self.shared.epoch.load(Ordering::SeqCst) != self.epoch
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "scripted outage")
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.cut() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
