//! Scripted replies: a test takes any path of a [`Provider`](crate::Provider) over.
//!
//! Per path the provider keeps a queue of one-shot [`Reply`]s, then a current reply; a path with
//! neither is served by the provider's own endpoints (discovery, JWKS, token, admin) or 404.
//! Every request is counted and its headers recorded per path, whether scripted or not, so a
//! test can assert what a verifier sent. Delays use `tokio::time::sleep`, so a paused clock
//! applies to them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::mint::{SigningKey, jwks};

/// The most distinct paths whose requests are counted (later new paths are served, not counted).
const MAX_PATHS: usize = 256;
/// The most request header sets kept per path (the oldest are dropped first).
const MAX_RECORDED: usize = 4096;
/// The most bytes of recorded headers kept in all (later requests are counted, not recorded): a
/// long-running `keyward idp` must not grow without bound.
const MAX_RECORDED_BYTES: usize = 16 * 1024 * 1024;
/// The longest a scripted reply may be delayed.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// One scripted answer: status, headers, body, and how long to wait before sending it.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    delay: Duration,
}

impl Reply {
    /// 200 with `body` as JSON.
    pub fn json(body: &Value) -> Self {
        Self::bytes(body.to_string().into_bytes()).header("content-type", "application/json")
    }

    /// 200 with a JWKS publishing the public halves of `keys`.
    pub fn jwks(keys: &[&SigningKey]) -> Self {
        Self::json(&jwks(keys.iter().copied()))
    }

    /// 200 with raw bytes (no content type).
    pub fn bytes(body: Vec<u8>) -> Self {
        Self { status: 200, headers: Vec::new(), body: Arc::new(body), delay: Duration::ZERO }
    }

    /// An empty body with `status`.
    pub fn status(status: u16) -> Self {
        Self { status, ..Self::bytes(Vec::new()) }
    }

    /// The same reply with another status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header (an invalid name or value is left out when answering).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `delay` (tokio time, at most a day).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay.min(MAX_DELAY);
        self
    }

    /// Waits out the delay, then builds the response (an invalid status answers 500).
    pub(crate) async fn respond(self) -> Response {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut response = Response::new(Body::from(self.body.as_ref().clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
            {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    current: Option<Reply>,
    hits: usize,
    requests: VecDeque<HeaderMap>,
}

/// The scripted replies and request record of every path.
#[derive(Default)]
pub(crate) struct Script {
    routes: HashMap<String, Route>,
    /// The size of every recorded header set, by [`header_bytes`].
    recorded_bytes: usize,
}

/// Roughly what a recorded header set occupies.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum::<usize>() + 64
}

impl Script {
    fn route(&mut self, path: &str) -> Option<&mut Route> {
        if !self.routes.contains_key(path) && self.routes.len() >= MAX_PATHS {
            return None;
        }
        Some(self.routes.entry(path.to_owned()).or_default())
    }

    /// Counts a request to `path`, records its headers, and takes its scripted reply if any.
    pub(crate) fn take(&mut self, path: &str, headers: &HeaderMap) -> Option<Reply> {
        let mut recorded = self.recorded_bytes;
        let route = self.route(path)?;
        route.hits = route.hits.saturating_add(1);
        if route.requests.len() >= MAX_RECORDED
            && let Some(old) = route.requests.pop_front()
        {
            recorded = recorded.saturating_sub(header_bytes(&old));
        }
        let size = header_bytes(headers);
        if recorded.saturating_add(size) <= MAX_RECORDED_BYTES {
            route.requests.push_back(headers.clone());
            recorded += size;
        }
        let reply = route.queue.pop_front().or_else(|| route.current.clone());
        self.recorded_bytes = recorded;
        reply
    }

    pub(crate) fn set(&mut self, path: &str, reply: Option<Reply>) {
        if let Some(route) = self.route(path) {
            route.current = reply;
        }
    }

    pub(crate) fn push(&mut self, path: &str, reply: Reply) {
        if let Some(route) = self.route(path) {
            route.queue.push_back(reply);
        }
    }

    pub(crate) fn hits(&self, path: &str) -> usize {
        self.routes.get(path).map_or(0, |r| r.hits)
    }

    pub(crate) fn requests(&self, path: &str) -> Vec<HeaderMap> {
        self.routes.get(path).map(|r| r.requests.iter().cloned().collect()).unwrap_or_default()
    }
}
