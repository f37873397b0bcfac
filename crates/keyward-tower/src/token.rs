//! The bearer token of a request: exactly one `Authorization: Bearer` header.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// What the `Authorization` header(s) of a request hold.
pub(crate) enum Bearer<'a> {
    /// No `Authorization` header, or one for another scheme (`Basic`, …): no credentials for us.
    None,
    /// Credentials that cannot be a bearer token: the reason, for `error_description`.
    Invalid(&'static str),
    /// The token (not yet verified).
    Token(&'a str),
}

/// Reads the bearer token and marks the header sensitive, so it never reaches logs or traces
/// (hyper and tower-http honour the flag).
pub(crate) fn bearer(headers: &mut HeaderMap) -> Bearer<'_> {
    if let http::header::Entry::Occupied(mut entry) = headers.entry(AUTHORIZATION) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Bearer::None };
    if values.next().is_some() {
        return Bearer::Invalid("more than one Authorization header");
    }
    let Ok(value) = value.to_str() else { return Bearer::Invalid("the Authorization header is not ASCII") };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::None;
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Bearer::Invalid("the Bearer credentials are empty");
    }
    // RFC 6750 b64token: one token, no inner spaces.
    if token.contains(' ') {
        return Bearer::Invalid("the Bearer credentials contain a space");
    }
    Bearer::Token(token)
}

/// The SHA-256 of the token, for correlating requests in logs without keeping the credential.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// True for gRPC requests (`content-type: application/grpc`, `application/grpc+proto`,
/// `application/grpc-web`, `application/grpc-web-text+proto`, …), which get `grpc-status`
/// answers (trailers-only, which gRPC-Web clients read from the headers too) instead of HTTP
/// statuses.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.as_bytes();
        let Some(rest) =
            ct.get(..16).filter(|p| p.eq_ignore_ascii_case(b"application/grpc")).and(ct.get(16..))
        else {
            return false;
        };
        let rest = match rest.get(..4) {
            Some(web) if web.eq_ignore_ascii_case(b"-web") => rest.get(4..).unwrap_or_default(),
            _ => rest,
        };
        let rest = match rest.get(..5) {
            Some(text) if text.eq_ignore_ascii_case(b"-text") => rest.get(5..).unwrap_or_default(),
            _ => rest,
        };
        matches!(rest.first(), None | Some(b'+' | b';'))
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn grpc_content_types_include_grpc_web_and_nothing_else() {
        let of = |ct: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc(&headers)
        };
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC; charset=utf-8",
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ] {
            assert!(of(ct), "{ct}");
        }
        for ct in ["application/json", "application/grpcx", "application/grpc-webx", "application/grp"] {
            assert!(!of(ct), "{ct}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
