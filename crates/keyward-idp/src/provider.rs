//! `keyward idp`: a mock OpenID provider that rotates keys and fails on command.
//!
//! [`Provider`] serves OIDC discovery, a JWKS, a token endpoint and an admin API over HTTP. The
//! admin API (rotate, retire, fault, state) answers only loopback peers. Keys may be kept in a
//! state file (written atomically, mode 0600) so a restarted provider publishes the same keys.
//! The same type drives `keyward drill` in process: every admin action is also a method.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::mint::{MintError, SigningAlg, SigningKey, b64};
use crate::script::{Reply, Script};

/// The largest request body any endpoint reads (form fields are short).
const MAX_BODY: usize = 64 * 1024;
/// The most form fields one request may carry.
const MAX_FIELDS: usize = 64;
/// The longest a fault may last, and the longest a `slow` delay or a publication delay.
const MAX_FAULT: Duration = Duration::from_secs(24 * 3600);
/// The longest `slow` JWKS delay.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// The longest token lifetime the token endpoint signs.
const MAX_TTL: i64 = 7 * 24 * 3600;
/// The size of the `huge` fault's JWKS body: over any sane verifier's limit.
const HUGE_BYTES: usize = 8 * 1024 * 1024;
/// The largest state file read back.
const MAX_STATE_FILE: u64 = 4 * 1024 * 1024;

/// Why the provider could not start or refused an action.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// Binding, reading or writing the state file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Key generation, loading or signing failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The state file is not one this provider wrote.
    #[error("state file {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A request the provider refuses (unknown mode, the signing key retired, a bad field).
    #[error("{0}")]
    Refused(String),
}

fn refused(detail: impl Into<String>) -> ProviderError {
    ProviderError::Refused(detail.into())
}

/// How [`Provider::rotate`] changes the keys of one algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateMode {
    /// Publish a new key beside the old one and sign with the new one.
    Overlap,
    /// Publish a new key and keep signing with the old one (see [`RotateMode::Activate`]).
    PrePublish,
    /// Sign with the newest published key (ends a pre-publish).
    Activate,
    /// Publish a new key, sign with it, and drop every old key of the algorithm at once.
    Replace,
    /// New key material under the signing key's kid; the old material is dropped.
    ReuseKid,
    /// Sign with a new key now and publish it only after the delay.
    SignBeforePublish(Duration),
}

impl RotateMode {
    /// The admin API's name for the mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::PrePublish => "pre-publish",
            Self::Activate => "activate",
            Self::Replace => "replace",
            Self::ReuseKid => "reuse-kid",
            Self::SignBeforePublish(_) => "sign-before-publish",
        }
    }

    /// Parses an admin API mode; `delay` is used by `sign-before-publish` only.
    pub fn parse(name: &str, delay: Duration) -> Option<Self> {
        Some(match name {
            "overlap" => Self::Overlap,
            "pre-publish" => Self::PrePublish,
            "activate" => Self::Activate,
            "replace" => Self::Replace,
            "reuse-kid" => Self::ReuseKid,
            "sign-before-publish" => Self::SignBeforePublish(delay),
            _ => return None,
        })
    }
}

/// How the JWKS endpoint misbehaves while a fault lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultMode {
    /// Every connection to the provider is closed at accept (and open ones on their next read).
    Down,
    /// JWKS responses are delayed.
    Slow(Duration),
    /// JWKS answers 500.
    Status500,
    /// JWKS answers 429 with `Retry-After` (seconds).
    TooMany(u64),
    /// JWKS answers 200 with a body that is not JSON.
    Garbage,
    /// JWKS answers `{"keys": []}`.
    EmptySet,
    /// JWKS answers another issuer's key set.
    WrongKeys,
    /// JWKS answers a body of several megabytes.
    Huge,
    /// A key is absent from every other JWKS response (as Entra ID's sets have been seen to do).
    Flap,
    /// JWKS responses carry this `Cache-Control` value.
    CacheControl(String),
}

impl FaultMode {
    /// The admin API's name for the mode.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Slow(_) => "slow",
            Self::Status500 => "500",
            Self::TooMany(_) => "429",
            Self::Garbage => "garbage",
            Self::EmptySet => "empty-set",
            Self::WrongKeys => "wrong-keys",
            Self::Huge => "huge",
            Self::Flap => "flap",
            Self::CacheControl(_) => "cache-control",
        }
    }

    /// Whether the fault replaces the JWKS body (only one such fault is active at a time).
    fn replaces_body(&self) -> bool {
        matches!(
            self,
            Self::Status500
                | Self::TooMany(_)
                | Self::Garbage
                | Self::EmptySet
                | Self::WrongKeys
                | Self::Huge
        )
    }
}

/// How to start a [`Provider`].
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The algorithms to keep a signing key for; the first is the default for tokens.
    pub algs: Vec<SigningAlg>,
    /// The advertised issuer (default: the bound base URL).
    pub issuer: Option<String>,
    /// Where keys are loaded from and saved to.
    pub state_file: Option<PathBuf>,
    /// JWKS requests per second above which the endpoint answers 429 (none by default).
    pub jwks_rate_limit: Option<u32>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self { algs: vec![SigningAlg::RS256], issuer: None, state_file: None, jwks_rate_limit: None }
    }
}

struct Entry {
    key: Arc<SigningKey>,
    /// Published from this instant on (a future instant: sign-before-publish).
    publish_at: Instant,
}

struct Fault {
    mode: FaultMode,
    until: Instant,
}

struct Keys {
    entries: Vec<Entry>,
    /// The signing key of each algorithm, in `algs` order.
    signing: Vec<Arc<SigningKey>>,
    counter: u64,
}

struct Inner {
    keys: Keys,
    faults: Vec<Fault>,
    /// Rate-limit window: its start and the requests counted in it.
    window: (Instant, u32),
}

struct Shared {
    issuer: String,
    base: String,
    algs: Vec<SigningAlg>,
    state_file: Option<PathBuf>,
    /// JWKS requests per second above which it answers 429; 0: no limit.
    rate_limit: AtomicU32,
    foreign: Arc<SigningKey>,
    inner: Mutex<Inner>,
    jwks_requests: AtomicU64,
    jwks_throttled: AtomicU64,
    flap_counter: AtomicU64,
    refused_connections: AtomicU64,
    /// Bumped when `down` starts: connections accepted earlier fail on their next read.
    epoch: AtomicU64,
    /// Bumped by [`Provider::go_down`]: connections accepted earlier fail every later read and
    /// write, even after [`Provider::come_up`] (a reply in flight is cut too).
    cut_epoch: AtomicU64,
    /// Down until [`Provider::come_up`], whatever the faults say.
    held_down: AtomicBool,
    /// Every answer closes its connection (`Connection: close`): see
    /// [`Provider::set_close_connections`].
    close_connections: AtomicBool,
    /// Scripted replies per path, and the record of every request.
    script: Mutex<Script>,
    /// The JWKS `Cache-Control` when no `cache-control` fault is active.
    cache_control: Mutex<String>,
    log: broadcast::Sender<String>,
    recent: Mutex<VecDeque<String>>,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log(&self, line: String) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if recent.len() >= 100 {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
        // No subscriber is fine: the line is still in `recent`.
        let _ = self.log.send(line);
    }

    /// Rotates the keys of `alg` (default: the first algorithm); returns the new signing kid.
    fn rotate(&self, mode: RotateMode, alg: Option<SigningAlg>) -> Result<String, ProviderError> {
        let alg = alg.unwrap_or(self.algs[0]);
        let slot = self
            .algs
            .iter()
            .position(|a| *a == alg)
            .ok_or_else(|| refused(format!("this provider does not sign with {alg}")))?;
        let now = Instant::now();
        let line = {
            let mut inner = self.inner();
            let keys = &mut inner.keys;
            let old = Arc::clone(&keys.signing[slot]);
            keys.counter = keys.counter.saturating_add(1);
            let fresh = |kid: String| -> Result<Arc<SigningKey>, MintError> {
                Ok(Arc::new(SigningKey::generate(alg, kid)?))
            };
            match mode {
                RotateMode::Overlap | RotateMode::PrePublish | RotateMode::Replace => {
                    let key = fresh(new_kid(alg, keys.counter))?;
                    if mode == RotateMode::Replace {
                        keys.entries.retain(|e| e.key.alg() != alg);
                    }
                    keys.entries.push(Entry { key: Arc::clone(&key), publish_at: now });
                    if mode != RotateMode::PrePublish {
                        keys.signing[slot] = Arc::clone(&key);
                    }
                    format!(
                        "rotate {}: published {}, signing with {}{}",
                        mode.name(),
                        key.kid(),
                        keys.signing[slot].kid(),
                        if mode == RotateMode::Replace {
                            format!(", dropped {}", old.kid())
                        } else {
                            String::new()
                        }
                    )
                }
                RotateMode::Activate => {
                    let newest = keys
                        .entries
                        .iter()
                        .rev()
                        .find(|e| e.key.alg() == alg && e.publish_at <= now)
                        .map(|e| Arc::clone(&e.key))
                        .ok_or_else(|| refused("no published key to activate"))?;
                    keys.signing[slot] = Arc::clone(&newest);
                    format!("rotate activate: signing with {} (was {})", newest.kid(), old.kid())
                }
                RotateMode::ReuseKid => {
                    let key = fresh(old.kid().to_owned())?;
                    keys.entries.retain(|e| !Arc::ptr_eq(&e.key, &old));
                    keys.entries.push(Entry { key: Arc::clone(&key), publish_at: now });
                    keys.signing[slot] = Arc::clone(&key);
                    format!(
                        "rotate reuse-kid: new key material under kid {}, the old material dropped",
                        key.kid()
                    )
                }
                RotateMode::SignBeforePublish(delay) => {
                    let delay = delay.min(MAX_FAULT);
                    let key = fresh(new_kid(alg, keys.counter))?;
                    keys.entries.push(Entry { key: Arc::clone(&key), publish_at: now + delay });
                    keys.signing[slot] = Arc::clone(&key);
                    format!(
                        "rotate sign-before-publish: signing with {} now, publishing it in {} s",
                        key.kid(),
                        delay.as_secs_f64()
                    )
                }
            }
        };
        self.log(line);
        save(self)?;
        Ok(self.inner().keys.signing[slot].kid().to_owned())
    }

    /// Stops publishing `kid` (every key under it). The signing key cannot be retired.
    fn retire(&self, kid: &str) -> Result<(), ProviderError> {
        {
            let mut inner = self.inner();
            let keys = &mut inner.keys;
            if keys.signing.iter().any(|k| k.kid() == kid) {
                return Err(refused(format!("kid {kid} is a signing key; rotate first")));
            }
            let before = keys.entries.len();
            keys.entries.retain(|e| e.key.kid() != kid);
            if keys.entries.len() == before {
                return Err(refused(format!("no published key has kid {kid}")));
            }
        }
        self.log(format!("retire: {kid} is no longer published"));
        save(self)
    }

    /// Starts a fault for `duration` (replacing an active fault of the same kind, and any other
    /// fault that replaces the JWKS body).
    fn fault(&self, mode: FaultMode, duration: Duration) {
        let duration = duration.min(MAX_FAULT);
        let until = Instant::now() + duration;
        let line = format!("fault {} for {} s{}", mode.name(), duration.as_secs_f64(), fault_detail(&mode));
        {
            let mut inner = self.inner();
            let body = mode.replaces_body();
            inner.faults.retain(|f| f.mode.name() != mode.name() && !(body && f.mode.replaces_body()));
            if mode == FaultMode::Down {
                self.epoch.fetch_add(1, Ordering::SeqCst);
            }
            inner.faults.push(Fault { mode, until });
        }
        self.log(line);
    }

    /// Ends every fault now.
    fn clear_faults(&self) {
        self.inner().faults.clear();
        self.log("faults cleared".to_owned());
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_down(&self) -> bool {
        if self.held_down.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        self.inner().faults.iter().any(|f| f.mode == FaultMode::Down && f.until > now)
    }
}

/// A running mock OpenID provider; stops when dropped.
pub struct Provider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.shared.issuer).field("addr", &self.addr).finish()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The provider's wall clock: a mock IdP signs with the real time, like the IdP it stands in for.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn new_kid(alg: SigningAlg, counter: u64) -> String {
    let mut tag = [0u8; 3];
    // A random suffix keeps kids of providers started without a state file distinct.
    let _ = aws_lc_rs::rand::fill(&mut tag);
    format!("{}-{counter}-{}", alg.as_str().to_ascii_lowercase(), b64(&tag))
}

impl Provider {
    /// Binds `listen` (any address; the admin API still answers loopback peers only) and starts.
    pub async fn start(listen: SocketAddr, config: ProviderConfig) -> Result<Self, ProviderError> {
        let listener = TcpListener::bind(listen).await?;
        Self::serve(listener, config).await
    }

    /// Starts on an already-bound listener.
    pub async fn serve(listener: TcpListener, config: ProviderConfig) -> Result<Self, ProviderError> {
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let issuer = config.issuer.clone().unwrap_or_else(|| base.clone());
        let algs = if config.algs.is_empty() { vec![SigningAlg::RS256] } else { config.algs.clone() };
        let keys = match &config.state_file {
            Some(path) if path.exists() => load_state(path, &algs)?,
            _ => generate_keys(&algs)?,
        };
        let foreign = Arc::new(SigningKey::generate(SigningAlg::ES256, "foreign-issuer-key")?);
        let (log, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            issuer,
            base,
            algs,
            state_file: config.state_file.clone(),
            rate_limit: AtomicU32::new(config.jwks_rate_limit.unwrap_or(0)),
            foreign,
            inner: Mutex::new(Inner { keys, faults: Vec::new(), window: (Instant::now(), 0) }),
            jwks_requests: AtomicU64::new(0),
            jwks_throttled: AtomicU64::new(0),
            flap_counter: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            cut_epoch: AtomicU64::new(0),
            held_down: AtomicBool::new(false),
            close_connections: AtomicBool::new(false),
            script: Mutex::new(Script::default()),
            cache_control: Mutex::new("public, max-age=300".to_owned()),
            log,
            recent: Mutex::new(VecDeque::new()),
        });
        save(&shared)?;
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_endpoint))
            .route("/token", post(token_endpoint))
            .route("/admin/rotate", post(admin_post))
            .route("/admin/retire", post(admin_post))
            .route("/admin/fault", post(admin_post))
            .route("/admin/state", get(admin_state))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&shared), scripted))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(&shared));
        let gated = GatedListener { inner: listener, shared: Arc::clone(&shared) };
        let task = tokio::spawn(async move {
            // Ends with the process or when the provider is dropped (aborted).
            let _ = axum::serve(gated, app.into_make_service_with_connect_info::<Peer>()).await;
        });
        let provider = Self { shared, addr, task };
        let kids: Vec<String> = provider.signing_keys().iter().map(|k| k.kid().to_owned()).collect();
        provider.shared.log(format!(
            "started: issuer {}, signing kids {}",
            provider.issuer(),
            kids.join(", ")
        ));
        Ok(provider)
    }

    /// The advertised issuer.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The base URL the provider answers on (`http://ADDR`).
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWKS URL as discovery advertises it.
    pub fn jwks_uri(&self) -> String {
        endpoint(&self.shared.issuer, "jwks")
    }

    /// Every change, as a line, as it happens (the CLI prints them).
    pub fn subscribe_log(&self) -> broadcast::Receiver<String> {
        self.shared.log.subscribe()
    }

    /// The last 100 log lines.
    pub fn recent_log(&self) -> Vec<String> {
        self.shared.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    /// JWKS requests received so far (including faulted and throttled ones).
    pub fn jwks_requests(&self) -> u64 {
        self.shared.jwks_requests.load(Ordering::Relaxed)
    }

    /// JWKS requests answered 429 by the rate limit (not by a `429` fault).
    pub fn jwks_throttled(&self) -> u64 {
        self.shared.jwks_throttled.load(Ordering::Relaxed)
    }

    /// Sets (or with `None` lifts) the JWKS rate limit, in requests per second.
    pub fn set_jwks_rate_limit(&self, limit: Option<u32>) {
        self.shared.rate_limit.store(limit.unwrap_or(0), Ordering::Relaxed);
        self.shared.log(match limit {
            Some(n) => format!("JWKS rate limit: {n} requests per second, 429 above"),
            None => "JWKS rate limit lifted".to_owned(),
        });
    }

    /// Makes every answer close its connection (`Connection: close`), so that clients hold a
    /// descriptor only while a request is in flight: a fleet simulation of N clients in one
    /// process would otherwise keep 2N open (one at each end of every idle keep-alive).
    pub fn set_close_connections(&self, close: bool) {
        self.shared.close_connections.store(close, Ordering::Relaxed);
    }

    /// The signing key of each configured algorithm, in `--alg` order.
    pub fn signing_keys(&self) -> Vec<Arc<SigningKey>> {
        self.shared.inner().keys.signing.clone()
    }

    /// The signing key of the default (first) algorithm.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        let signing = self.signing_keys();
        // `algs` is never empty, so neither is `signing`; the fallback is unreachable.
        signing.into_iter().next().unwrap_or_else(|| Arc::clone(&self.shared.foreign))
    }

    /// The private key of the `wrong-keys` fault's set: another issuer's key.
    pub fn foreign_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.shared.foreign)
    }

    /// The kids published now.
    pub fn published_kids(&self) -> Vec<String> {
        published(&self.shared.inner().keys, Instant::now()).iter().map(|k| k.kid().to_owned()).collect()
    }

    /// Standard claims from this issuer for `sub` and `audience`, valid for `ttl` seconds.
    pub fn claims(&self, sub: &str, audience: &str, ttl: i64) -> Value {
        let now = unix_now();
        json!({"iss": self.shared.issuer, "sub": sub, "aud": audience, "iat": now, "nbf": now,
               "exp": now.saturating_add(ttl)})
    }

    /// A token signed by `key` for `sub` and `audience` (any key: old, new, foreign).
    pub fn mint_with(&self, key: &SigningKey, sub: &str, audience: &str) -> Result<String, MintError> {
        key.sign_jwt(&self.claims(sub, audience, 3600))
    }

    /// Rotates the keys of `alg` (default: the first algorithm); returns the new signing kid.
    pub fn rotate(&self, mode: RotateMode, alg: Option<SigningAlg>) -> Result<String, ProviderError> {
        self.shared.rotate(mode, alg)
    }

    /// Stops publishing `kid` (every key under it). The signing key cannot be retired.
    pub fn retire(&self, kid: &str) -> Result<(), ProviderError> {
        self.shared.retire(kid)
    }

    /// Starts a fault for `duration` (replacing an active fault of the same kind, and any other
    /// fault that replaces the JWKS body).
    pub fn fault(&self, mode: FaultMode, duration: Duration) {
        self.shared.fault(mode, duration);
    }

    /// Ends every fault now.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Applies one admin API request in process: the same paths and form fields as over HTTP
    /// (`/admin/rotate`, `/admin/retire`, `/admin/fault`, `/admin/state`), the same JSON answer.
    pub fn admin(&self, path: &str, fields: &[(String, String)]) -> Result<Value, ProviderError> {
        admin_apply(&self.shared, path, fields)
    }

    /// The provider's state as `GET /admin/state` shows it.
    pub fn state(&self) -> Value {
        state_json(&self.shared)
    }

    /// Answers `path` with `reply` from now on (after any queued one-shot replies), instead of
    /// the provider's own endpoint.
    pub fn set_reply(&self, path: &str, reply: Reply) {
        self.shared.script().set(path, Some(reply));
    }

    /// Gives `path` back to the provider's own endpoint (queued one-shot replies stay).
    pub fn clear_reply(&self, path: &str) {
        self.shared.script().set(path, None);
    }

    /// Answers the next request to `path` with `reply`, once (queued in order).
    pub fn push_reply(&self, path: &str, reply: Reply) {
        self.shared.script().push(path, reply);
    }

    /// Requests received for `path` while up (scripted or not).
    pub fn hits(&self, path: &str) -> usize {
        self.shared.script().hits(path)
    }

    /// The request headers of the requests to `path`, oldest first (the last 4,096; 16 MiB across paths).
    pub fn requests(&self, path: &str) -> Vec<HeaderMap> {
        self.shared.script().requests(path)
    }

    /// Publishes exactly `keys` from now on (the signing keys are unchanged): a test scripts
    /// the key set by hand.
    pub fn publish(&self, keys: &[&Arc<SigningKey>]) {
        let now = Instant::now();
        let kids: Vec<&str> = keys.iter().map(|k| k.kid()).collect();
        self.shared.inner().keys.entries =
            keys.iter().map(|k| Entry { key: Arc::clone(k), publish_at: now }).collect();
        self.shared.log(format!("publish: exactly {}", kids.join(", ")));
    }

    /// The JWKS `Cache-Control` value while no `cache-control` fault is active.
    pub fn set_cache_control(&self, value: &str) {
        *self.shared.cache_control.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            value.to_owned();
    }

    /// Goes down until [`Provider::come_up`]: new connections are closed at accept, and
    /// connections opened before fail their next read or write (a reply in flight is cut).
    pub fn go_down(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.cut_epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.held_down.store(true, Ordering::SeqCst);
        self.shared.log("down until brought up".to_owned());
    }

    /// Ends [`Provider::go_down`] (a `down` fault still runs its course).
    pub fn come_up(&self) {
        self.shared.held_down.store(false, Ordering::SeqCst);
        self.shared.log("up".to_owned());
    }

    /// Connections closed at accept while down.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused_connections.load(Ordering::Relaxed)
    }

    /// A token as the token endpoint mints it, from its form fields.
    pub fn mint_from_form(&self, fields: &[(String, String)]) -> Result<Value, ProviderError> {
        mint_token(&self.shared, fields)
    }
}

fn fault_detail(mode: &FaultMode) -> String {
    match mode {
        FaultMode::Slow(d) => format!(" (JWKS delayed {} s)", d.as_secs_f64()),
        FaultMode::TooMany(s) => format!(" (Retry-After: {s})"),
        FaultMode::CacheControl(v) => format!(" (Cache-Control: {v})"),
        _ => String::new(),
    }
}

fn generate_keys(algs: &[SigningAlg]) -> Result<Keys, ProviderError> {
    let mut keys = Keys { entries: Vec::new(), signing: Vec::new(), counter: 0 };
    let now = Instant::now();
    for alg in algs {
        keys.counter += 1;
        let key = Arc::new(SigningKey::generate(*alg, new_kid(*alg, keys.counter))?);
        keys.entries.push(Entry { key: Arc::clone(&key), publish_at: now });
        keys.signing.push(key);
    }
    Ok(keys)
}

fn published(keys: &Keys, now: Instant) -> Vec<Arc<SigningKey>> {
    keys.entries.iter().filter(|e| e.publish_at <= now).map(|e| Arc::clone(&e.key)).collect()
}

fn state_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let inner = shared.inner();
    let keys: Vec<Value> = inner
        .keys
        .entries
        .iter()
        .map(|e| {
            let signing = inner.keys.signing.iter().any(|s| Arc::ptr_eq(s, &e.key));
            json!({
                "kid": e.key.kid(),
                "alg": e.key.alg().as_str(),
                "published": e.publish_at <= now,
                "publish_in_s": e.publish_at.saturating_duration_since(now).as_secs_f64(),
                "signing": signing,
            })
        })
        .collect();
    let faults: Vec<Value> = inner
        .faults
        .iter()
        .filter(|f| f.until > now)
        .map(|f| {
            let mut v = json!({"mode": f.mode.name(), "remaining_s": f.until.saturating_duration_since(now).as_secs_f64()});
            match &f.mode {
                FaultMode::Slow(d) => v["delay_s"] = json!(d.as_secs_f64()),
                FaultMode::TooMany(s) => v["retry_after"] = json!(s),
                FaultMode::CacheControl(c) => v["value"] = json!(c),
                _ => {}
            }
            v
        })
        .collect();
    json!({
        "issuer": shared.issuer,
        "jwks_uri": endpoint(&shared.issuer, "jwks"),
        "keys": keys,
        "faults": faults,
        "jwks_requests": shared.jwks_requests.load(Ordering::Relaxed),
        "jwks_throttled": shared.jwks_throttled.load(Ordering::Relaxed),
        "refused_connections": shared.refused_connections.load(Ordering::Relaxed),
        "jwks_rate_limit": match shared.rate_limit.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        },
        "state_file": shared.state_file.as_ref().map(|p| p.display().to_string()),
    })
}

// ---- state file -------------------------------------------------------------------------------

fn save(shared: &Shared) -> Result<(), ProviderError> {
    let Some(path) = &shared.state_file else { return Ok(()) };
    let document = {
        let inner = shared.inner();
        let now = Instant::now();
        let unix = unix_now();
        let mut keys = Vec::new();
        for e in &inner.keys.entries {
            let signing = inner.keys.signing.iter().any(|s| Arc::ptr_eq(s, &e.key));
            let wait =
                i64::try_from(e.publish_at.saturating_duration_since(now).as_secs()).unwrap_or(i64::MAX);
            keys.push(json!({
                "kid": e.key.kid(),
                "alg": e.key.alg().as_str(),
                "pkcs8": b64(&e.key.to_pkcs8()?),
                "signing": signing,
                "publish_at": unix.saturating_add(wait),
            }));
        }
        json!({"format": "keyward-idp-state/1", "counter": inner.keys.counter, "keys": keys})
    };
    write_atomically(path, document.to_string().as_bytes())?;
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600: it holds private keys), then
/// renames it over `path`, so a reader never sees a half-written state.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".to_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn load_state(path: &Path, algs: &[SigningAlg]) -> Result<Keys, ProviderError> {
    let bad = |detail: String| ProviderError::State { path: path.to_owned(), detail };
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, MAX_STATE_FILE + 1), &mut text)?;
    if text.len() as u64 > MAX_STATE_FILE {
        return Err(bad(format!("larger than {MAX_STATE_FILE} bytes")));
    }
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if doc.get("format").and_then(Value::as_str) != Some("keyward-idp-state/1") {
        return Err(bad("not a keyward idp state file (format keyward-idp-state/1)".to_owned()));
    }
    let counter = doc.get("counter").and_then(Value::as_u64).unwrap_or(0);
    let listed = doc.get("keys").and_then(Value::as_array).ok_or_else(|| bad("no keys array".to_owned()))?;
    let now = Instant::now();
    let unix = unix_now();
    let mut keys = Keys { entries: Vec::new(), signing: Vec::new(), counter };
    let mut signing: Vec<Arc<SigningKey>> = Vec::new();
    for (i, item) in listed.iter().enumerate() {
        let field = |name: &str| {
            item.get(name).and_then(Value::as_str).ok_or_else(|| bad(format!("key {i}: no {name}")))
        };
        let alg = SigningAlg::from_name(field("alg")?).ok_or_else(|| bad(format!("key {i}: unknown alg")))?;
        let der = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(field("pkcs8")?.as_bytes())
            .map_err(|e| bad(format!("key {i}: pkcs8 is not base64url: {e}")))?;
        let key = Arc::new(SigningKey::from_pkcs8(alg, field("kid")?, &der)?);
        let wait = item.get("publish_at").and_then(Value::as_i64).unwrap_or(0).saturating_sub(unix).max(0);
        let publish_at = now + Duration::from_secs(u64::try_from(wait).unwrap_or(0)).min(MAX_FAULT);
        if item.get("signing").and_then(Value::as_bool) == Some(true) {
            signing.push(Arc::clone(&key));
        }
        keys.entries.push(Entry { key, publish_at });
    }
    for alg in algs {
        match signing.iter().find(|k| k.alg() == *alg) {
            Some(key) => keys.signing.push(Arc::clone(key)),
            None => {
                // An algorithm added since the state was saved gets a fresh key.
                keys.counter = keys.counter.saturating_add(1);
                let key = Arc::new(SigningKey::generate(*alg, new_kid(*alg, keys.counter))?);
                keys.entries.push(Entry { key: Arc::clone(&key), publish_at: now });
                keys.signing.push(key);
            }
        }
    }
    Ok(keys)
}

// ---- HTTP -------------------------------------------------------------------------------------

/// The peer address of a connection, for the admin API's loopback check.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl Connected<axum::serve::IncomingStream<'_, GatedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, GatedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn error_response(status: StatusCode, error: &str, detail: &str) -> Response {
    json_response(status, &json!({"error": error, "error_description": detail}))
}

fn form(body: &Bytes) -> Result<Vec<(String, String)>, Box<Response>> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body)
        .take(MAX_FIELDS + 1)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if fields.len() > MAX_FIELDS {
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "too many form fields",
        )));
    }
    Ok(fields)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn seconds(fields: &[(String, String)], name: &str, default: f64) -> Result<Duration, ProviderError> {
    let Some(text) = field(fields, name) else { return Ok(Duration::from_secs_f64(default)) };
    let value: f64 =
        text.trim().parse().map_err(|_| refused(format!("{name}: not a number of seconds: {text}")))?;
    if !value.is_finite() || value < 0.0 || value > MAX_FAULT.as_secs_f64() {
        return Err(refused(format!("{name}: {text} is outside 0..={}", MAX_FAULT.as_secs())));
    }
    Ok(Duration::from_secs_f64(value))
}

fn admin_guard(peer: Peer) -> Option<Response> {
    if peer.0.ip().is_loopback() {
        None
    } else {
        Some(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API answers loopback clients only",
        ))
    }
}

fn refusal(e: &ProviderError) -> Response {
    let status = match e {
        ProviderError::Refused(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, "refused", &e.to_string())
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let algs: Vec<&str> = shared.algs.iter().map(|a| a.as_str()).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": shared.issuer,
            "jwks_uri": endpoint(&shared.issuer, "jwks"),
            "token_endpoint": endpoint(&shared.issuer, "token"),
            "id_token_signing_alg_values_supported": algs,
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["client_credentials"],
        }),
    )
}

async fn jwks_endpoint(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let (keys, faults, throttled) = {
        let mut inner = shared.inner();
        inner.faults.retain(|f| f.until > now);
        let throttled = match shared.rate_limit.load(Ordering::Relaxed) {
            0 => false,
            limit => {
                if now.saturating_duration_since(inner.window.0) >= Duration::from_secs(1) {
                    inner.window = (now, 0);
                }
                inner.window.1 = inner.window.1.saturating_add(1);
                inner.window.1 > limit
            }
        };
        let faults: Vec<FaultMode> = inner.faults.iter().map(|f| f.mode.clone()).collect();
        (published(&inner.keys, now), faults, throttled)
    };
    if throttled {
        shared.jwks_throttled.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "rate limited").into_response();
    }
    let mut cache_control =
        shared.cache_control.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut keys = keys;
    let mut body_fault = None;
    for fault in faults {
        match fault {
            FaultMode::Slow(delay) => tokio::time::sleep(delay.min(MAX_DELAY)).await,
            FaultMode::CacheControl(value) => cache_control = value,
            FaultMode::Flap => {
                // Odd-numbered responses leave the newest key out.
                if shared.flap_counter.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
                    keys.pop();
                }
            }
            FaultMode::Down => {}
            other => body_fault = Some(other),
        }
    }
    let body = match body_fault {
        Some(FaultMode::Status500) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
        Some(FaultMode::TooMany(after)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, after.to_string())], "slow down")
                .into_response();
        }
        Some(FaultMode::Garbage) => "<html><body>502 Bad Gateway</body></html>".to_owned(),
        Some(FaultMode::EmptySet) => r#"{"keys":[]}"#.to_owned(),
        Some(FaultMode::WrongKeys) => crate::mint::jwks([shared.foreign.as_ref()]).to_string(),
        Some(FaultMode::Huge) => {
            let set = crate::mint::jwks(keys.iter().map(AsRef::as_ref));
            let mut object = match set {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            object.insert("padding".into(), Value::String("x".repeat(HUGE_BYTES)));
            Value::Object(object).to_string()
        }
        _ => crate::mint::jwks(keys.iter().map(AsRef::as_ref)).to_string(),
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

fn mint_token(shared: &Shared, fields: &[(String, String)]) -> Result<Value, ProviderError> {
    let sub = field(fields, "sub").unwrap_or("keyward-drill");
    let ttl: i64 = match field(fields, "ttl") {
        Some(t) => t.trim().parse().map_err(|_| refused(format!("ttl: not a number of seconds: {t}")))?,
        None => 3600,
    };
    if !(1..=MAX_TTL).contains(&ttl) {
        return Err(refused(format!("ttl: {ttl} is outside 1..={MAX_TTL}")));
    }
    let typ = match field(fields, "typ") {
        None | Some("JWT") => "JWT",
        Some("at+jwt") => "at+jwt",
        Some(other) => return Err(refused(format!("typ: {other} is neither JWT nor at+jwt"))),
    };
    let key = {
        let inner = shared.inner();
        match field(fields, "alg") {
            None => inner.keys.signing.first().cloned(),
            Some(name) => {
                let alg =
                    SigningAlg::from_name(name).ok_or_else(|| refused(format!("alg: unknown {name}")))?;
                inner.keys.signing.iter().find(|k| k.alg() == alg).cloned()
            }
        }
        .ok_or_else(|| refused("no signing key for that alg"))?
    };
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(shared.issuer));
    claims.insert("sub".into(), json!(sub));
    // One `aud` is a string; repeated (several resources), an array of them.
    let audiences: Vec<&str> = fields.iter().filter(|(k, _)| k == "aud").map(|(_, v)| v.as_str()).collect();
    match audiences.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), json!(one));
        }
        many => {
            claims.insert("aud".into(), json!(many));
        }
    }
    if let Some(scope) = field(fields, "scope") {
        claims.insert("scope".into(), json!(scope));
    }
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(ttl)));
    let mut jti = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut jti);
    claims.insert("jti".into(), json!(b64(&jti)));
    for (name, value) in fields {
        if let Some(claim) = name.strip_prefix("claim.").filter(|c| !c.is_empty()) {
            // Numbers, booleans, arrays and objects are taken as JSON; anything else as a string.
            let parsed = serde_json::from_str::<Value>(value)
                .ok()
                .filter(|v| !v.is_string())
                .unwrap_or_else(|| Value::String(value.clone()));
            claims.insert(claim.to_owned(), parsed);
        }
    }
    // A `claim.exp` given as a number decides the lifetime the answer reports too.
    let expires_in = claims.get("exp").and_then(Value::as_i64).map_or(ttl, |exp| exp.saturating_sub(now));
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": typ});
    let token = key.sign_with_header(&header, &Value::Object(claims))?;
    shared.log(format!("token: sub {sub}, kid {}, ttl {ttl} s", key.kid()));
    Ok(json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
}

async fn token_endpoint(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let fields = match form(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match mint_token(&shared, &fields) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e @ ProviderError::Refused(_)) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
    }
}

fn admin_apply(shared: &Shared, path: &str, fields: &[(String, String)]) -> Result<Value, ProviderError> {
    match path {
        "/admin/rotate" => {
            let delay = seconds(fields, "delay", 10.0)?;
            let name = field(fields, "mode").unwrap_or("overlap");
            let mode = RotateMode::parse(name, delay).ok_or_else(|| {
                refused(format!(
                    "mode: unknown {name} (overlap, pre-publish, activate, replace, reuse-kid, sign-before-publish)"
                ))
            })?;
            let alg = match field(fields, "alg") {
                Some(a) => {
                    Some(SigningAlg::from_name(a).ok_or_else(|| refused(format!("alg: unknown {a}")))?)
                }
                None => None,
            };
            let kid = shared.rotate(mode, alg)?;
            Ok(json!({"signing_kid": kid, "state": state_json(shared)}))
        }
        "/admin/retire" => {
            let kid = field(fields, "kid").ok_or_else(|| refused("kid: missing"))?;
            shared.retire(kid)?;
            Ok(state_json(shared))
        }
        "/admin/fault" => {
            let mode = parse_fault(fields)?;
            let duration = seconds(fields, "seconds", 30.0)?;
            match mode {
                Some(mode) => shared.fault(mode, duration),
                None => shared.clear_faults(),
            }
            Ok(state_json(shared))
        }
        "/admin/state" => Ok(state_json(shared)),
        other => Err(refused(format!("no admin endpoint {other}"))),
    }
}

async fn admin_post(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    if let Some(r) = admin_guard(peer) {
        return r;
    }
    let fields = match form(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match admin_apply(&shared, uri.path(), &fields) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => refusal(&e),
    }
}

/// Parses the admin API's fault fields into a mode (`None` for `mode=none`: clear).
fn parse_fault(fields: &[(String, String)]) -> Result<Option<FaultMode>, ProviderError> {
    let name = field(fields, "mode").ok_or_else(|| refused("mode: missing"))?;
    Ok(Some(match name {
        "none" | "clear" => return Ok(None),
        "down" => FaultMode::Down,
        "slow" => FaultMode::Slow(seconds(fields, "delay", 5.0)?.min(MAX_DELAY)),
        "500" => FaultMode::Status500,
        "429" => FaultMode::TooMany(seconds(fields, "retry_after", 30.0)?.as_secs()),
        "garbage" => FaultMode::Garbage,
        "empty-set" => FaultMode::EmptySet,
        "wrong-keys" => FaultMode::WrongKeys,
        "huge" => FaultMode::Huge,
        "flap" => FaultMode::Flap,
        "cache-control" => {
            let value =
                field(fields, "value").ok_or_else(|| refused("value: missing (a Cache-Control value)"))?;
            if value.len() > 256 || HeaderValue::from_str(value).is_err() {
                return Err(refused("value: not a valid header value of at most 256 bytes"));
            }
            FaultMode::CacheControl(value.to_owned())
        }
        other => {
            return Err(refused(format!(
                "mode: unknown {other} (down, slow, 500, 429, garbage, empty-set, wrong-keys, huge, flap, cache-control, none)"
            )));
        }
    }))
}

async fn admin_state(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<Peer>) -> Response {
    if let Some(r) = admin_guard(peer) {
        return r;
    }
    json_response(StatusCode::OK, &state_json(&shared))
}

/// Serves a path's scripted reply if it has one (after counting and recording the request),
/// else the provider's own endpoint.
async fn scripted(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let reply = shared.script().take(request.uri().path(), request.headers());
    let mut response = match reply {
        Some(reply) => reply.respond().await,
        None => next.run(request).await,
    };
    if shared.close_connections.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

// ---- the `down` fault -------------------------------------------------------------------------

/// A listener that closes connections while the provider is `down`.
struct GatedListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for GatedListener {
    type Io = GatedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if self.shared.is_down() {
                self.shared.refused_connections.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let epoch = self.shared.epoch.load(Ordering::SeqCst);
            let cut_epoch = self.shared.cut_epoch.load(Ordering::SeqCst);
            return (GatedStream { inner: stream, shared: Arc::clone(&self.shared), epoch, cut_epoch }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails its next read once an outage began after it was accepted (writes
/// still go through, so the admin request that started the outage gets its answer).
struct GatedStream {
    inner: TcpStream,
    shared: Arc<Shared>,
    epoch: u64,
    cut_epoch: u64,
}

impl GatedStream {
    /// Whether [`Provider::go_down`] was called since this connection was accepted.
    fn cut(&self) -> bool {
        self.shared.cut_epoch.load(Ordering::SeqCst) != self.cut_epoch
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "keyward idp: down")
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut() || self.shared.epoch.load(Ordering::SeqCst) != self.epoch && self.shared.is_down() {
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

/// `issuer` + `/` + `path`, without doubling the slash of an issuer that ends with one (Auth0
/// and Entra ID v1 issuers do; the `iss` claim keeps it).
fn endpoint(issuer: &str, path: &str) -> String {
    format!("{}/{path}", issuer.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_an_issuer_with_a_trailing_slash_have_one_slash() {
        assert_eq!(
            endpoint("https://proxy.example.com/tenant1/", "jwks"),
            "https://proxy.example.com/tenant1/jwks"
        );
        assert_eq!(endpoint("http://127.0.0.1:8600", "token"), "http://127.0.0.1:8600/token");
    }

    fn temp_state(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyward-idp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.json")
    }

    async fn start(state: &Path) -> Provider {
        let config = ProviderConfig {
            algs: vec![SigningAlg::ES256, SigningAlg::EdDSA],
            state_file: Some(state.to_owned()),
            ..ProviderConfig::default()
        };
        Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap()
    }

    #[tokio::test]
    async fn a_pending_publication_survives_a_restart() {
        let path = temp_state("pending");
        let first = start(&path).await;
        let old = first.signing_key().kid().to_owned();
        let new = first.rotate(RotateMode::SignBeforePublish(Duration::from_secs(600)), None).unwrap();
        assert_eq!(first.published_kids().len(), 2, "the pending key is not published yet");
        let ed = first.signing_keys()[1].kid().to_owned();
        drop(first);

        let second = start(&path).await;
        let kids: Vec<String> = second.signing_keys().iter().map(|k| k.kid().to_owned()).collect();
        assert_eq!(kids, [new.clone(), ed]);
        assert!(second.published_kids().contains(&old));
        assert!(!second.published_kids().contains(&new), "still pending after the restart");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_foreign_or_oversized_state_file_is_refused_with_its_path() {
        let path = temp_state("refused");
        for contents in [
            "not json".to_owned(),
            r#"{"format": "keyward-idp-state/1", "keys": [{"kid": "k", "alg": "XX256", "pkcs8": ""}]}"#
                .to_owned(),
            r#"{"format": "keyward-idp-state/1", "keys": [{"kid": "k", "alg": "ES256", "pkcs8": "AAAA"}]}"#
                .to_owned(),
            " ".repeat(usize::try_from(MAX_STATE_FILE).unwrap() + 1),
        ] {
            std::fs::write(&path, &contents).unwrap();
            let config = ProviderConfig { state_file: Some(path.clone()), ..ProviderConfig::default() };
            let err = Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap_err();
            let text = err.to_string();
            let expected_path = matches!(err, ProviderError::State { .. });
            assert!(
                expected_path && text.contains("state.json") || text.contains("not a ES256 private key"),
                "{text}"
            );
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn the_in_process_admin_api_takes_the_http_fields() {
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), ProviderConfig::default()).await.unwrap();
        let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let answer =
            provider.admin("/admin/fault", &[field("mode", "429"), field("retry_after", "9")]).unwrap();
        assert_eq!(answer["faults"][0]["retry_after"], 9);
        let err = provider.admin("/admin/rotate", &[field("mode", "sideways")]).unwrap_err();
        assert!(err.to_string().contains("reuse-kid"), "{err}");
        let err = provider.admin("/admin/nope", &[]).unwrap_err();
        assert!(err.to_string().contains("no admin endpoint"), "{err}");
    }

    /// One HTTP/1.1 GET over a fresh connection: the status, or `None` if the connection failed.
    async fn get(provider: &Provider, path: &str, probe: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(provider.local_addr()).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: idp\r\nX-Probe: {probe}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.get(9..12)?.parse().ok()?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        Some((status, body))
    }

    /// Sends two requests on one connection (the second asks to close) and counts the answers.
    async fn answers_on_one_connection(provider: &Provider) -> usize {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = TcpStream::connect(provider.local_addr()).await else { return 0 };
        let requests = "GET /jwks HTTP/1.1\r\nHost: idp\r\n\r\n\
                        GET /jwks HTTP/1.1\r\nHost: idp\r\nConnection: close\r\n\r\n";
        if stream.write_all(requests.as_bytes()).await.is_err() {
            return 0;
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the connection was neither answered twice nor closed within 5 s");
        String::from_utf8_lossy(&answer).matches("HTTP/1.1 200").count()
    }

    #[tokio::test]
    async fn the_token_endpoint_takes_several_audiences_and_reports_an_overridden_exp() {
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), ProviderConfig::default()).await.unwrap();
        let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let payload = |answer: &Value| -> Value {
            let token = answer["access_token"].as_str().unwrap();
            let part = token.split('.').nth(1).unwrap();
            serde_json::from_slice(&base64_simd::URL_SAFE_NO_PAD.decode_to_vec(part).unwrap()).unwrap()
        };
        let two = provider.mint_from_form(&[field("aud", "orders"), field("aud", "billing")]).unwrap();
        assert_eq!(payload(&two)["aud"], json!(["orders", "billing"]));
        let one = provider.mint_from_form(&[field("aud", "orders")]).unwrap();
        assert_eq!(payload(&one)["aud"], json!("orders"));
        let soon = unix_now() + 120;
        let short = provider.mint_from_form(&[field("claim.exp", &soon.to_string())]).unwrap();
        assert_eq!(payload(&short)["exp"], json!(soon));
        let left = short["expires_in"].as_i64().unwrap();
        assert!((118..=120).contains(&left), "expires_in follows the exp claim: {left}");
    }

    #[tokio::test]
    async fn with_close_connections_every_answer_ends_its_connection() {
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), ProviderConfig::default()).await.unwrap();
        assert_eq!(answers_on_one_connection(&provider).await, 2, "keep-alive by default");
        provider.set_close_connections(true);
        assert_eq!(answers_on_one_connection(&provider).await, 1, "closed after the first answer");
        provider.set_close_connections(false);
        assert_eq!(answers_on_one_connection(&provider).await, 2, "keep-alive again");
    }

    #[tokio::test]
    async fn scripted_replies_take_a_path_over_and_every_request_is_recorded() {
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), ProviderConfig::default()).await.unwrap();
        provider.push_reply("/jwks", Reply::status(503));
        provider.set_reply("/jwks", Reply::bytes(b"scripted".to_vec()));
        assert_eq!(get(&provider, "/jwks", "1").await.unwrap().0, 503, "the one-shot reply first");
        assert_eq!(get(&provider, "/jwks", "2").await.unwrap(), (200, "scripted".to_owned()));
        provider.clear_reply("/jwks");
        let (status, body) = get(&provider, "/jwks", "3").await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains(provider.signing_key().kid()), "the provider's own JWKS again: {body}");
        assert_eq!(get(&provider, "/nowhere", "4").await.unwrap().0, 404);
        assert_eq!(provider.hits("/jwks"), 3);
        assert_eq!(provider.hits("/nowhere"), 1);
        let probes: Vec<String> = provider
            .requests("/jwks")
            .iter()
            .map(|h| h.get("x-probe").unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(probes, ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn go_down_refuses_connections_until_come_up() {
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), ProviderConfig::default()).await.unwrap();
        provider.go_down();
        assert_eq!(get(&provider, "/jwks", "down").await, None);
        assert_eq!(provider.refused_connections(), 1);
        assert_eq!(provider.hits("/jwks"), 0, "a refused request is not counted");
        provider.come_up();
        assert_eq!(get(&provider, "/jwks", "up").await.unwrap().0, 200);
    }
}
