//! Rejections and the one place they become HTTP or gRPC responses.

use std::fmt;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use keyward::source::FetchDecision;
use keyward::{Error, Reason};

/// Why a request was not let through.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// No bearer token (401, `WWW-Authenticate: Bearer`).
    MissingToken,
    /// The `Authorization` header cannot hold a bearer token: several headers, non-ASCII,
    /// empty credentials (400, `error="invalid_request"`).
    InvalidRequest(&'static str),
    /// The token was rejected (401, `error="invalid_token"`, the reason code in
    /// `error_description`).
    InvalidToken(Error),
    /// No usable key set: the server's problem, not the client's (503 with `Retry-After`).
    KeysUnavailable(Error),
    /// The token verified but lacks what the route requires (403, `error="insufficient_scope"`).
    InsufficientScope {
        /// The scopes the route requires (for the `scope=` attribute), space-separated.
        scope: String,
        /// What was missing, for people.
        detail: String,
    },
    /// A handler or requirement asked for verified claims, but no keyward layer ran before it:
    /// a server bug (500).
    NotConfigured {
        /// The route, for the log line.
        route: String,
    },
}

impl Rejection {
    /// A stable code: `missing_token`, `invalid_request`, the token's reason code
    /// (`expired`, `keys_unavailable`, …), `insufficient_scope` or `not_configured`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(e) | Self::KeysUnavailable(e) => e.reason().as_str(),
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::NotConfigured { .. } => "not_configured",
        }
    }

    /// The token's rejection, for `InvalidToken` and `KeysUnavailable`.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::InvalidToken(e) | Self::KeysUnavailable(e) => Some(e),
            _ => None,
        }
    }

    /// Classifies a verification failure: `keys_unavailable` is the server's, the rest the
    /// token's. (An `unknown_kid` refused a fetch by the spacing stays the token's: the kid may
    /// be one the IdP just removed, which is revocation, and must not be retried for a minute.)
    pub fn from_error(error: Error) -> Self {
        if error.reason() == Reason::KeysUnavailable {
            Self::KeysUnavailable(error)
        } else {
            Self::InvalidToken(error)
        }
    }

    /// How long a client should wait before retrying, for `KeysUnavailable`: the key source's
    /// own estimate when it has one (rounded up to whole seconds, so a retry never comes back
    /// early), else 5 seconds; always 1 s to 1 h.
    pub fn retry_after(&self) -> Option<Duration> {
        let Self::KeysUnavailable(e) = self else { return None };
        let known = e.keys().and_then(|k| match k.fetch {
            FetchDecision::Refused { retry_after, .. } => retry_after,
            _ => None,
        });
        let wait = known.map_or(Duration::from_secs(5), |d| {
            Duration::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
        });
        Some(wait.clamp(Duration::from_secs(1), Duration::from_secs(3600)))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str("no bearer token"),
            Self::InvalidRequest(why) => write!(f, "invalid Authorization header: {why}"),
            Self::InvalidToken(e) | Self::KeysUnavailable(e) => write!(f, "{}: {}", e.reason(), e.detail()),
            Self::InsufficientScope { detail, .. } => write!(f, "insufficient scope: {detail}"),
            Self::NotConfigured { route } => write!(f, "no keyward layer in front of route {route}"),
        }
    }
}

/// The gRPC status codes a rejection maps to.
pub mod grpc {
    /// `UNAUTHENTICATED`: no token, or a rejected one.
    pub const UNAUTHENTICATED: u16 = 16;
    /// `PERMISSION_DENIED`: a verified token lacking a required scope or role.
    pub const PERMISSION_DENIED: u16 = 7;
    /// `UNAVAILABLE`: no usable key set; the client may retry.
    pub const UNAVAILABLE: u16 = 14;
    /// `INTERNAL`: the server is misconfigured (an extractor without the layer).
    pub const INTERNAL: u16 = 13;
}

/// Turns a [`Rejection`] into a response. Implement it to change statuses, headers or bodies;
/// call [`DefaultReject`] for the cases you keep.
pub trait Reject: Clone + Send + Sync + 'static {
    /// The response for `rejection`; `grpc` is true for gRPC requests.
    fn reject(&self, rejection: &Rejection, grpc: bool) -> Response<String>;
}

/// RFC 6750 responses for HTTP, `grpc-status` trailers-only responses for gRPC.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultReject;

impl Reject for DefaultReject {
    fn reject(&self, rejection: &Rejection, grpc: bool) -> Response<String> {
        if grpc { grpc_response(rejection) } else { http_response(rejection) }
    }
}

/// The default HTTP response: status, `WWW-Authenticate` (and `Retry-After`), a small JSON body.
pub fn http_response(rejection: &Rejection) -> Response<String> {
    let (status, challenge) = match rejection {
        Rejection::MissingToken => (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())),
        Rejection::InvalidRequest(why) => (
            StatusCode::BAD_REQUEST,
            Some(format!(r#"Bearer error="invalid_request", error_description="{}""#, quoted(why))),
        ),
        Rejection::InvalidToken(e) => (
            StatusCode::UNAUTHORIZED,
            Some(format!(r#"Bearer error="invalid_token", error_description="{}""#, e.reason().as_str())),
        ),
        Rejection::KeysUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        Rejection::InsufficientScope { scope, .. } => (
            StatusCode::FORBIDDEN,
            Some(format!(r#"Bearer error="insufficient_scope", scope="{}""#, quoted(scope))),
        ),
        Rejection::NotConfigured { .. } => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let body = serde_json::json!({"error": error_name(rejection), "reason": rejection.code()}).to_string();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if let Some(wait) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
    }
    response
}

/// The default gRPC response: HTTP 200, trailers-only, `grpc-status` and `grpc-message`.
pub fn grpc_response(rejection: &Rejection) -> Response<String> {
    let status = match rejection {
        Rejection::MissingToken | Rejection::InvalidRequest(_) | Rejection::InvalidToken(_) => {
            grpc::UNAUTHENTICATED
        }
        Rejection::KeysUnavailable(_) => grpc::UNAVAILABLE,
        Rejection::InsufficientScope { .. } => grpc::PERMISSION_DENIED,
        Rejection::NotConfigured { .. } => grpc::INTERNAL,
    };
    let mut response = Response::new(String::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(status));
    // The code only: ASCII snake_case, needing no percent-encoding.
    headers.insert("grpc-message", HeaderValue::from_static(rejection.code()));
    if let Some(wait) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
    }
    response
}

fn error_name(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::MissingToken => "missing_token",
        Rejection::InvalidRequest(_) => "invalid_request",
        Rejection::InvalidToken(_) => "invalid_token",
        Rejection::KeysUnavailable(_) => "temporarily_unavailable",
        Rejection::InsufficientScope { .. } => "insufficient_scope",
        Rejection::NotConfigured { .. } => "server_error",
    }
}

/// Makes `text` safe inside a quoted-string (no quotes, backslashes or controls).
fn quoted(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect()
}
