//! The gateway's answers. nginx `auth_request` understands only 2xx, 401 and 403, so every
//! client fault is 401 or 403; keys the gateway cannot get are 503 with `Retry-After` (never
//! 401, which would send every client to its IdP at once); a policy the proxy names but the
//! configuration lacks is 500. Bodies are a small fixed JSON and never echo the token.

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use keyward_tower::Rejection;

use crate::gateway::{Decided, PolicyRt};
use crate::headers::ClaimValue;
use crate::ops::metrics::DecisionReason;

/// The header naming the reason of every refusal, for the proxy's logs.
pub const REASON_HEADER: &str = "x-keyward-reason";

/// `Retry-After` when the decision deadline passed while a fetch was in flight: the fetch goes
/// on and is usually done by then.
const DEADLINE_RETRY_AFTER_SECS: u64 = 1;

/// Why a request is refused.
#[derive(Debug)]
pub(crate) enum Denial {
    /// No token anywhere.
    MissingToken,
    /// Credentials that cannot be one token: `invalid_request` or `ambiguous_token`.
    InvalidRequest { code: &'static str, why: &'static str },
    /// The token was rejected, the keys are unavailable, or the requirement is unmet.
    Rejected(Rejection),
    /// The decision deadline passed while the keys were being fetched.
    Deadline,
    /// The token verified, for an issuer this policy does not accept.
    IssuerNotAllowed,
}

/// `Bearer realm="<policy>"`, built once per policy.
pub(crate) fn realm_challenge(policy: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(r#"Bearer realm="{}""#, quoted(policy)))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// Makes `text` safe inside a quoted-string.
fn quoted(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control() && c.is_ascii()).collect()
}

fn response(status: StatusCode, reason: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static(REASON_HEADER), HeaderValue::from_static(reason));
    response
}

/// The headers of a 200: `Cache-Control: no-store` and every claim header, empty when the
/// claim is absent or dropped (`values` is `None` for a bypassed CORS preflight: all empty).
/// Built once per cached token (and once per configuration for preflights).
pub(crate) fn allow_headers(names: &[HeaderName], values: Option<&[ClaimValue]>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(names.len() + 1);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (index, name) in names.iter().enumerate() {
        let value = match values.and_then(|v| v.get(index)) {
            Some(ClaimValue::Send(value)) => value.clone(),
            Some(ClaimValue::Dropped) | None => HeaderValue::from_static(""),
        };
        // `insert`, not `append`: one value per header, whatever the client sent.
        headers.insert(name.clone(), value);
    }
    headers
}

/// 200 with `headers` (from [`allow_headers`]) and no body.
pub(crate) fn allow(headers: &HeaderMap) -> Decided {
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = headers.clone();
    Decided { response, reason: DecisionReason::Allowed }
}

/// 500 `unknown_policy`: the proxy names a policy the configuration lacks (a deployment error,
/// never the client's).
pub(crate) fn unknown_policy() -> Decided {
    Decided {
        response: response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unknown_policy",
            r#"{"error":"server_error","reason":"unknown_policy"}"#,
        ),
        reason: DecisionReason::UnknownPolicy,
    }
}

/// 403 `no_rule`: path rules are configured and none matches the original request.
pub(crate) fn no_rule() -> Decided {
    Decided {
        response: response(
            StatusCode::FORBIDDEN,
            "no_rule",
            r#"{"error":"access_denied","reason":"no_rule"}"#,
        ),
        reason: DecisionReason::NoRule,
    }
}

/// The response to a refusal under `policy`.
pub(crate) fn deny(policy: &PolicyRt, denial: &Denial, describe: bool) -> Decided {
    if let Denial::InvalidRequest { code, why } = denial {
        tracing::debug!(policy = &*policy.name, reason = *code, "request refused: {why}");
    }
    let realm = || format!(r#"Bearer realm="{}""#, quoted(&policy.name));
    let (status, reason, body, challenge, retry_after): (_, &'static str, &'static str, _, _) = match denial {
        Denial::MissingToken => (
            StatusCode::UNAUTHORIZED,
            "missing_token",
            r#"{"error":"missing_token","reason":"missing_token"}"#,
            Some(policy.challenge.clone()),
            None,
        ),
        Denial::InvalidRequest { code, .. } => (
            StatusCode::UNAUTHORIZED,
            *code,
            if *code == "ambiguous_token" {
                r#"{"error":"invalid_request","reason":"ambiguous_token"}"#
            } else {
                r#"{"error":"invalid_request","reason":"invalid_request"}"#
            },
            challenge(realm(), "invalid_request", describe.then_some(*code), None),
            None,
        ),
        Denial::Rejected(Rejection::KeysUnavailable(_)) => {
            let wait = match denial {
                Denial::Rejected(r) => r.retry_after().map_or(5, |d| d.as_secs()),
                _ => 5,
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "keys_unavailable",
                r#"{"error":"temporarily_unavailable","reason":"keys_unavailable"}"#,
                None,
                Some(wait),
            )
        }
        Denial::Deadline => (
            StatusCode::SERVICE_UNAVAILABLE,
            "keys_unavailable",
            r#"{"error":"temporarily_unavailable","reason":"keys_unavailable"}"#,
            None,
            Some(DEADLINE_RETRY_AFTER_SECS),
        ),
        Denial::Rejected(Rejection::InsufficientScope { scope, .. }) => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            r#"{"error":"insufficient_scope","reason":"insufficient_scope"}"#,
            challenge(realm(), "insufficient_scope", None, Some(scope)),
            None,
        ),
        Denial::IssuerNotAllowed => (
            StatusCode::FORBIDDEN,
            "issuer_not_allowed",
            r#"{"error":"insufficient_scope","reason":"issuer_not_allowed"}"#,
            challenge(realm(), "insufficient_scope", describe.then_some("issuer_not_allowed"), None),
            None,
        ),
        Denial::Rejected(rejection) => {
            let code = rejection.code();
            (
                StatusCode::UNAUTHORIZED,
                code,
                "",
                challenge(realm(), "invalid_token", describe.then_some(code), None),
                None,
            )
        }
    };
    let mut response = response(status, reason, body);
    if body.is_empty() {
        // The token's reason code: a fixed vocabulary, never token-supplied text.
        *response.body_mut() = Body::from(format!(r#"{{"error":"invalid_token","reason":"{reason}"}}"#));
    }
    let headers = response.headers_mut();
    if let Some(challenge) = challenge {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    if let Some(wait) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(wait.clamp(1, 3600)));
    }
    Decided { response, reason: metric_reason(denial) }
}

/// The `reason` label of a refusal.
fn metric_reason(denial: &Denial) -> DecisionReason {
    match denial {
        Denial::MissingToken => DecisionReason::MissingToken,
        Denial::InvalidRequest { code: "ambiguous_token", .. } => DecisionReason::AmbiguousToken,
        Denial::InvalidRequest { .. } => DecisionReason::InvalidRequest,
        Denial::Rejected(Rejection::InsufficientScope { .. }) => DecisionReason::InsufficientScope,
        Denial::Rejected(rejection) => match rejection.error() {
            Some(e) => DecisionReason::Token(e.reason()),
            None => DecisionReason::InvalidRequest,
        },
        Denial::Deadline => DecisionReason::Token(keyward::Reason::KeysUnavailable),
        Denial::IssuerNotAllowed => DecisionReason::IssuerNotAllowed,
    }
}

fn challenge(
    realm: String,
    error: &str,
    description: Option<&str>,
    scope: Option<&str>,
) -> Option<HeaderValue> {
    let mut text = realm;
    text.push_str(&format!(r#", error="{error}""#));
    if let Some(description) = description {
        text.push_str(&format!(r#", error_description="{}""#, quoted(description)));
    }
    // Present whenever given, even empty (a role or claim requirement): as keyward-tower answers.
    if let Some(scope) = scope {
        text.push_str(&format!(r#", scope="{}""#, quoted(scope)));
    }
    HeaderValue::from_str(&text).ok()
}
