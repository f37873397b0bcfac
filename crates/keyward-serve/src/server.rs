//! The HTTP server: `/auth`, `/auth/<policy>`, `/auth/<policy>/<original path>` (any method),
//! `/healthz`, `/readyz` and `/metrics`, over HTTP/1.1 with keep-alive.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::gateway::{BuildError, Gateway};
use crate::ops::ready;
use crate::ops::reload::{ReloadHandle, ReloadOptions, Reloader};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration could not be put into service.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound, not yet running gateway server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    gateway: Arc<Gateway>,
    local_addr: SocketAddr,
}

impl Server {
    /// Puts `config` into service (each issuer's first key fetch starts at once, in the
    /// background) and binds its listen address.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let gateway = Gateway::new(config)?;
        Self::bind_gateway(gateway).await
    }

    /// Binds the listen address of an existing gateway's configuration.
    pub async fn bind_gateway(gateway: Gateway) -> Result<Self, ServeError> {
        let addr = gateway.config().listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        Ok(Self { listener, gateway: Arc::new(gateway), local_addr })
    }

    /// The bound address (the real port when the configuration said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The gateway, for reloads and readiness.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most the
    /// configuration's `shutdown_grace`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let config = self.gateway.config();
        let grace = config.shutdown_grace;
        // Also without a file: SIGHUP must not kill a quick-start server (its default action),
        // and `keyward_config_reloads_total` exists either way.
        let (_reload_handle, reloading) = spawn_reloader(&self.gateway, &config);
        // Without it, the library's histogram samples pile up (tens of bytes a verification)
        // until a scrape.
        let upkeep = self.gateway.spawn_metrics_upkeep();
        let app = router(Arc::clone(&self.gateway));
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        // Answers are one small write each: no reason to wait for Nagle's algorithm.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let serving = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            });
        let mut serving = tokio::spawn(serving.into_future());
        let stop_reloading = || {
            reloading.abort();
            if let Some(task) = &upkeep {
                task.abort();
            }
        };
        tokio::select! {
            result = &mut serving => {
                stop_reloading();
                return flatten(result);
            }
            () = shutdown => stop_reloading(),
        }
        tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(result) => flatten(result),
            Err(_) => {
                serving.abort();
                tracing::warn!("shutdown grace over: requests still in flight were cut off");
                Ok(())
            }
        }
    }
}

/// Reloads the configuration file on SIGHUP and (when `reload.watch`) when it changes: a bad
/// file is logged and the configuration in service keeps serving. Started from flags (no file),
/// a SIGHUP has nothing to read: it is logged and the flags' configuration stays.
fn spawn_reloader(gateway: &Arc<Gateway>, config: &Config) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
    let path = config.path.clone();
    let target = Arc::clone(gateway);
    let reloader = Reloader::new(move || {
        let Some(path) = &path else {
            return Ok(
                "nothing to reload: started from flags, not --config (restart to change them)".to_owned()
            );
        };
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let summary = format!(
            "{} issuer(s), {} policy(ies), {} path rule(s)",
            config.issuers.len(),
            config.policies.len(),
            config.rules.len()
        );
        target.reload(config).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(summary)
    });
    reloader.spawn(ReloadOptions::from_config(config))
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServeError> {
    match result {
        Ok(inner) => inner.map_err(ServeError::Io),
        Err(e) => Err(ServeError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called,
/// not when the future is first polled: call it before announcing that the server listens, so
/// a SIGTERM sent right after the announcement is a graceful shutdown, never the default kill.
/// Must be called within a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Ok(mut term), Err(_)) => {
                    term.recv().await;
                }
                (Err(_), _) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The routes, on `gateway`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/auth", any(auth))
        .route("/auth/", any(auth))
        .route("/auth/{*rest}", any(auth))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gateway)
}

async fn auth(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, _body) = request.into_parts();
    gateway.check(peer.ip(), &parts.method, &parts.uri, &parts.headers).await
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn healthz() -> Response {
    text(StatusCode::OK, "text/plain; charset=utf-8", format!("{}\n", ready::HEALTHZ_BODY))
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let readiness = gateway.readiness();
    let status = StatusCode::from_u16(readiness.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    text(status, ready::READYZ_CONTENT_TYPE, readiness.to_json())
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.metrics_text() {
        Some(body) => text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are recorded by another recorder in this process\n".to_owned(),
        ),
    }
}
