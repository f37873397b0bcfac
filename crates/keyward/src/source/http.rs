//! HTTP GET with bounds on everything: connect and total timeouts, body size, retries.
//!
//! Failures carry the stage that failed (DNS, connect, TLS, HTTP status, timeout, body), so
//! operators and `keyward doctor` can tell an outage from a misconfiguration.

use std::fmt;
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

/// Where a fetch failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchStage {
    /// The host name did not resolve.
    Dns,
    /// TCP connection refused, reset or unroutable.
    Connect,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The server answered with a non-success status.
    HttpStatus(u16),
    /// The connect or total timeout elapsed.
    Timeout,
    /// The body could not be read, or exceeded the size bound.
    Body,
    /// The body is not a usable key set or discovery document.
    Parse,
    /// The configuration forbids the request (scheme, redirect, address).
    Policy,
}

impl FetchStage {
    /// A stable lowercase name: `dns`, `connect`, `tls`, `http_status`, `timeout`, `body`, `parse`, `policy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::HttpStatus(_) => "http_status",
            Self::Timeout => "timeout",
            Self::Body => "body",
            Self::Parse => "parse",
            Self::Policy => "policy",
        }
    }
}

impl fmt::Display for FetchStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpStatus(code) => write!(f, "HTTP status {code}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// A failed fetch: the stage, the URL and what went wrong.
#[derive(Clone, Debug, thiserror::Error)]
#[error("fetching {url} failed at {stage}: {detail}")]
#[non_exhaustive]
pub struct FetchError {
    /// Where it failed.
    pub stage: FetchStage,
    /// The URL requested.
    pub url: String,
    /// What went wrong, for people.
    pub detail: String,
    /// The HTTP facts, when a response arrived.
    pub facts: Option<Box<HttpFacts>>,
}

impl FetchError {
    pub(crate) fn new(stage: FetchStage, url: &str, detail: impl Into<String>) -> Self {
        Self { stage, url: url.to_owned(), detail: detail.into(), facts: None }
    }
}

/// What the server said besides the body: kept for caching decisions and diagnosis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpFacts {
    /// The URL finally answered (after same-host redirects).
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// Time from sending the request to the end of the body.
    pub latency: Duration,
    /// `Content-Type`, verbatim.
    pub content_type: Option<String>,
    /// `Cache-Control`, verbatim.
    pub cache_control: Option<String>,
    /// `Expires`, verbatim.
    pub expires: Option<String>,
    /// `Date`, verbatim.
    pub date: Option<String>,
    /// `Age` in seconds.
    pub age: Option<u64>,
    /// `ETag`, verbatim.
    pub etag: Option<String>,
    /// `Last-Modified`, verbatim.
    pub last_modified: Option<String>,
    /// `Retry-After`, verbatim.
    pub retry_after: Option<String>,
    /// Body size in bytes.
    pub body_bytes: usize,
}

/// A response that passed the status and size checks.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    pub(crate) facts: HttpFacts,
    /// `None` for 304 Not Modified.
    pub(crate) body: Option<Vec<u8>>,
}

/// Validators from the last good response, for conditional requests.
#[derive(Clone, Debug, Default)]
pub(crate) struct Validators {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
}

/// HTTP settings; defaults in `docs/key-source.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpSettings {
    /// TCP (and TLS) connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included. Default 5 s.
    pub total_timeout: Duration,
    /// Body size bound. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Retries after the first attempt on DNS and connect errors, timeouts and 5xx, never on an
    /// answer that asks for time (`429`, or `Retry-After`). Default 2.
    pub retries: u32,
    /// First retry delay; doubles per retry up to `retry_backoff_max`, with jitter. Default 200 ms.
    pub retry_backoff: Duration,
    /// Longest retry delay. Default 1 s.
    pub retry_backoff_max: Duration,
    /// Allow plain `http://` to non-loopback hosts. Default false.
    pub allow_insecure_http: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            retries: 2,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(1),
            allow_insecure_http: false,
        }
    }
}

/// A pooled HTTP client with keyward's bounds.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
}

impl HttpClient {
    pub(crate) fn new(settings: HttpSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Redirects may not leave the configured host (no SSRF through a 302).
                let same_host = attempt.previous().first().is_some_and(|first| {
                    let next = attempt.url();
                    first.host_str() == next.host_str()
                        && first.scheme() == next.scheme()
                        && first.port_or_known_default() == next.port_or_known_default()
                });
                if attempt.previous().len() >= 3 || !same_host { attempt.stop() } else { attempt.follow() }
            }))
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(std::sync::Arc::new(Resolver))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, settings })
    }

    /// Checks that `url` may be fetched: https, or http to a loopback address, or an opt-in.
    pub(crate) fn check_url(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url)
            .map_err(|e| FetchError::new(FetchStage::Policy, url, format!("not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.settings.allow_insecure_http || is_loopback(&parsed) => Ok(parsed),
            "http" => Err(FetchError::new(
                FetchStage::Policy,
                url,
                "plain http is allowed only to loopback addresses (or with the insecure-http opt-in)",
            )),
            other => {
                Err(FetchError::new(FetchStage::Policy, url, format!("scheme {other:?} is not allowed")))
            }
        }
    }

    /// GET with retries and bounds.
    ///
    /// A server that asks for time (a `429`, or any answer with a `Retry-After`) is never
    /// retried inline: retrying adds load exactly when the server is saturated. The source
    /// holds every fetch back until the time it asked for instead ([`rate_limit_of`]).
    pub(crate) async fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let parsed = self.check_url(url)?;
        let mut attempt = 0;
        loop {
            let result = self.get_once(&parsed, validators).await;
            let retryable = match &result {
                Ok(_) => false,
                Err(e) if asks_for_time(e) => false,
                Err(e) => {
                    matches!(e.stage, FetchStage::Connect | FetchStage::Timeout | FetchStage::Dns)
                        || matches!(e.stage, FetchStage::HttpStatus(s) if s >= 500)
                }
            };
            if !retryable || attempt >= self.settings.retries {
                return result;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_backoff.saturating_mul(1u32 << attempt.min(16));
        let capped = base.min(self.settings.retry_backoff_max);
        jitter(capped, 0.2)
    }

    async fn get_once(&self, url: &Url, validators: &Validators) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        let mut request = self.client.get(url.clone()).header(header::ACCEPT, "application/json");
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, lm);
        }
        let work = async {
            let mut response = request.send().await.map_err(|e| classify(url.as_str(), &e))?;
            let mut facts = facts_of(url.as_str(), response.status(), response.headers());
            facts.url = response.url().to_string();
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                facts.latency = started.elapsed();
                return Ok(Fetched { facts, body: None });
            }
            if !status.is_success() {
                facts.latency = started.elapsed();
                let mut err = FetchError::new(
                    FetchStage::HttpStatus(status.as_u16()),
                    url.as_str(),
                    format!("server answered {status}"),
                );
                err.facts = Some(Box::new(facts));
                return Err(err);
            }
            let limit = self.settings.max_body_bytes;
            if response.content_length().is_some_and(|len| len > limit as u64) {
                return Err(FetchError::new(
                    FetchStage::Body,
                    url.as_str(),
                    format!("Content-Length is above the {limit}-byte limit"),
                ));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(url.as_str(), &e))? {
                if body.len() + chunk.len() > limit {
                    return Err(FetchError::new(
                        FetchStage::Body,
                        url.as_str(),
                        format!("body is above the {limit}-byte limit"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            facts.body_bytes = body.len();
            facts.latency = started.elapsed();
            Ok(Fetched { facts, body: Some(body) })
        };
        match tokio::time::timeout(self.settings.total_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::new(
                FetchStage::Timeout,
                url.as_str(),
                format!("no complete answer within {:?}", self.settings.total_timeout),
            )),
        }
    }
}

/// True when `url` is plain `http://` to a host other than loopback: a fetch of it is refused
/// unless `allow_insecure_http` is set. (Front ends use it to name their own opt-in flag.)
pub fn needs_insecure_http_opt_in(url: &str) -> bool {
    Url::parse(url).is_ok_and(|parsed| parsed.scheme() == "http" && !is_loopback(&parsed))
}

/// True for `localhost` and loopback IP literals.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned)
}

fn facts_of(url: &str, status: StatusCode, headers: &HeaderMap) -> HttpFacts {
    HttpFacts {
        url: url.to_owned(),
        status: status.as_u16(),
        latency: Duration::ZERO,
        content_type: header_string(headers, header::CONTENT_TYPE),
        cache_control: header_string(headers, header::CACHE_CONTROL),
        expires: header_string(headers, header::EXPIRES),
        date: header_string(headers, header::DATE),
        age: header_string(headers, header::AGE).and_then(|a| a.trim().parse().ok()),
        etag: header_string(headers, header::ETAG),
        last_modified: header_string(headers, header::LAST_MODIFIED),
        retry_after: header_string(headers, header::RETRY_AFTER),
        body_bytes: 0,
    }
}

/// True when the server asked for time: a `429`, or a readable `Retry-After` on any failed
/// answer (an unreadable one counts as absent).
fn asks_for_time(error: &FetchError) -> bool {
    matches!(error.stage, FetchStage::HttpStatus(429))
        || error.facts.as_deref().and_then(retry_after).is_some()
}

/// How long a rate-limited answer asks the source to hold back, when it is one: a `429` (with
/// or without `Retry-After`), or a `503` with a `Retry-After`. `Some(None)`: rate limited, no
/// readable `Retry-After` (the caller uses its usual backoff).
pub(crate) fn rate_limit_of(error: &FetchError) -> Option<Option<Duration>> {
    let facts = error.facts.as_deref();
    match error.stage {
        FetchStage::HttpStatus(429) => Some(facts.and_then(retry_after)),
        FetchStage::HttpStatus(503) => facts.and_then(retry_after).map(Some),
        _ => None,
    }
}

/// The `Retry-After` of a response: delta-seconds (saturating, so a 40-digit number is "very
/// long", not garbage), or an HTTP-date taken relative to the response's own `Date` (which
/// sidesteps clock skew; without `Date` it is ignored). `None` when absent or unreadable.
pub(crate) fn retry_after(facts: &HttpFacts) -> Option<Duration> {
    let value = facts.retry_after.as_deref()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let until = httpdate::parse_http_date(value).ok()?;
    let date = httpdate::parse_http_date(facts.date.as_deref()?).ok()?;
    Some(until.duration_since(date).unwrap_or(Duration::ZERO))
}

/// A host name that did not resolve: our own resolver's error, so the stage is known by type.
#[derive(Debug, thiserror::Error)]
#[error("dns error: {host} did not resolve: {source}")]
struct DnsError {
    host: String,
    source: std::io::Error,
}

/// The system resolver (through tokio), failing with [`DnsError`].
#[derive(Debug)]
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await.map(Iterator::collect::<Vec<_>>);
            match found {
                Ok(addrs) => {
                    if addrs.is_empty() {
                        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
                        return Err(
                            Box::new(DnsError { host, source }) as Box<dyn std::error::Error + Send + Sync>
                        );
                    }
                    Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                }
                Err(source) => {
                    Err(Box::new(DnsError { host, source }) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// The stage a transport error belongs to, read from the error types in its chain (our DNS
/// error, rustls errors, I/O error kinds, reqwest's own classification), never from its text.
fn stage_of(error: &reqwest::Error) -> FetchStage {
    let mut io_kind: Option<std::io::ErrorKind> = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<DnsError>() {
            return FetchStage::Dns;
        }
        if e.is::<rustls::Error>() {
            return FetchStage::Tls;
        }
        // An I/O error's `source()` skips the error it wraps; step into it instead.
        let mut next = e.source();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() != std::io::ErrorKind::Other || io_kind.is_none() {
                io_kind = Some(io.kind());
            }
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn std::error::Error + 'static));
            }
        }
        cause = next;
    }
    use std::io::ErrorKind as Kind;
    match io_kind {
        _ if error.is_timeout() => FetchStage::Timeout,
        Some(Kind::TimedOut) => FetchStage::Timeout,
        Some(
            Kind::ConnectionRefused
            | Kind::ConnectionReset
            | Kind::ConnectionAborted
            | Kind::NotConnected
            | Kind::AddrNotAvailable
            | Kind::HostUnreachable
            | Kind::NetworkUnreachable
            | Kind::BrokenPipe,
        ) => FetchStage::Connect,
        _ if error.is_connect() => FetchStage::Connect,
        _ if error.is_body() || error.is_decode() => FetchStage::Body,
        _ if error.is_redirect() => FetchStage::Policy,
        Some(Kind::UnexpectedEof) => FetchStage::Body,
        _ => FetchStage::Connect,
    }
}

fn classify(url: &str, error: &reqwest::Error) -> FetchError {
    FetchError::new(stage_of(error), url, error_chain(error))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A random duration in `[0, max]`, in whole milliseconds (tokio's timer resolution, so a
/// sleep of it ends exactly when it says).
pub(crate) fn random_up_to(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=max_ms))
}

/// `d` scaled by a random factor in `[1 - spread, 1 + spread]`.
pub(crate) fn jitter(d: Duration, spread: f64) -> Duration {
    let factor = 1.0 + rand::rng().random_range(-spread..=spread);
    d.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::needs_insecure_http_opt_in;

    #[test]
    fn plain_http_needs_the_opt_in_except_to_loopback() {
        for url in ["http://idp.example.com/jwks", "http://10.0.0.1/jwks", "http://[2001:db8::1]/jwks"] {
            assert!(needs_insecure_http_opt_in(url), "{url}");
        }
        for url in [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8600/jwks",
            "http://127.8.9.10/jwks",
            "http://[::1]:80/jwks",
            "http://LOCALHOST/jwks",
            "not a url",
        ] {
            assert!(!needs_insecure_http_opt_in(url), "{url}");
        }
    }
}
