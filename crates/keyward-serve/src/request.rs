//! What the proxy asks about: the original request (method, host, URI) and its token.
//!
//! The original method and URI come from `X-Original-Method`/`X-Original-URI` (nginx),
//! `X-Forwarded-Method`/`X-Forwarded-Uri`/`X-Forwarded-Host` (Traefik, Caddy), or the path after
//! the policy (Envoy `path_prefix`). Headers are believed only from a trusted proxy; from
//! anyone else the request's own method and URI are used.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{AUTHORIZATION, COOKIE, HOST};
use http::{HeaderMap, HeaderName, Method};
use ipnet::IpNet;

/// Longest original URI (path and query) considered; a longer one is `invalid_request`.
pub(crate) const MAX_URI_LEN: usize = 16 * 1024;
/// Longest `Cookie` header section read for tokens.
const MAX_COOKIE_LEN: usize = 64 * 1024;

const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The request the proxy is deciding about.
#[derive(Debug)]
pub(crate) struct Original<'a> {
    pub(crate) method: Method,
    /// Lower-case host without port, when known.
    pub(crate) host: Option<&'a str>,
    /// Path and query, as sent.
    pub(crate) uri: &'a str,
}

impl<'a> Original<'a> {
    /// The path, without the query.
    pub(crate) fn path(&self) -> &'a str {
        self.uri.split_once('?').map_or(self.uri, |(p, _)| p)
    }

    /// The query, without `?`.
    pub(crate) fn query(&self) -> Option<&'a str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }
}

/// True when `peer` may speak for the client through forwarding headers.
pub(crate) fn trusted(peer: IpAddr, proxies: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|net| net.contains(&peer))
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Host without port, for path rules (compared case-insensitively).
fn host_only(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split_once(']').map_or(host, |(h, _)| h);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// The original request. `own_uri` is the request's own path and query (for Envoy, the path
/// after the policy, which is the original path).
pub(crate) fn original<'a>(
    method: &Method,
    headers: &'a HeaderMap,
    own_uri: &'a str,
    trusted: bool,
) -> Result<Original<'a>, &'static str> {
    let own_host = header(headers, &HOST);
    let original = if trusted {
        let (m, uri, host) = if let Some(uri) = header(headers, &X_ORIGINAL_URI) {
            // nginx's subrequest carries the upstream's Host unless told otherwise: an
            // `X-Forwarded-Host` the proxy sets names the original one.
            (header(headers, &X_ORIGINAL_METHOD), uri, header(headers, &X_FORWARDED_HOST).or(own_host))
        } else if let Some(uri) = header(headers, &X_FORWARDED_URI) {
            (header(headers, &X_FORWARDED_METHOD), uri, header(headers, &X_FORWARDED_HOST).or(own_host))
        } else {
            (
                header(headers, &X_ORIGINAL_METHOD).or_else(|| header(headers, &X_FORWARDED_METHOD)),
                own_uri,
                header(headers, &X_FORWARDED_HOST).or(own_host),
            )
        };
        let method = match m {
            Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| "the original method is not a method")?,
            None => method.clone(),
        };
        Original { method, host, uri }
    } else {
        Original { method: method.clone(), host: own_host, uri: own_uri }
    };
    if original.uri.len() > MAX_URI_LEN {
        return Err("the original URI is too long");
    }
    Ok(Original { host: original.host.map(host_only), ..original })
}

/// True when `path` has a `.` or `..` segment, also spelled with `%2e` or set off by `%2f`, `\\`
/// or `%5c`: a backend may resolve it to a path other than the one written, so path rules
/// cannot judge it. (Browsers and HTTP clients remove dot segments before sending.)
pub(crate) fn has_dot_segment(path: &str) -> bool {
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    let unified = path
        .to_ascii_lowercase()
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/")
        .replace("%2e", ".");
    unified.split('/').any(|segment| segment == "." || segment == "..")
}

/// True when the request carries a CORS preflight's headers (`Origin` and
/// `Access-Control-Request-Method`); it is a preflight when the original method is OPTIONS.
pub(crate) fn has_preflight_headers(headers: &HeaderMap) -> bool {
    // Present and not blank: an empty `Access-Control-Request-Method` asks for no method.
    let given = |name| headers.get(name).is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    given(http::header::ACCESS_CONTROL_REQUEST_METHOD) && given(http::header::ORIGIN)
}

/// What the request's credentials amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// No token anywhere.
    None,
    /// Credentials that cannot be a token, or several different tokens: the reason code
    /// (`invalid_request` or `ambiguous_token`) and a detail for logs.
    Invalid(&'static str, &'static str),
    /// Exactly one token (possibly sent in several places), its characters not yet checked
    /// ([`checked`]).
    Token(Cow<'a, [u8]>),
}

/// Where tokens may come from besides `Authorization: Bearer`.
#[derive(Debug)]
pub(crate) struct Sources<'c> {
    pub(crate) cookies: &'c [String],
    pub(crate) query: bool,
    pub(crate) max_len: usize,
}

/// The `Authorization` header, with keyward-tower's semantics: exactly one header, the
/// `Bearer` scheme (case-insensitive), one token. Another scheme is no token at all. The
/// token's characters are checked by [`checked`], only when it is not in the cache (a cached
/// token passed that check when it was verified).
fn bearer(headers: &HeaderMap) -> Result<Option<&[u8]>, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|b| *b == b' ') {
        Some(space) => (bytes.get(..space).unwrap_or_default(), bytes.get(space + 1..).unwrap_or_default()),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme is no token; a header that is not even ASCII is refused (as the layer does).
        return if bytes.is_ascii() { Ok(None) } else { Err("the Authorization header is not ASCII") };
    }
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let end = rest.iter().rposition(|b| *b != b' ').map_or(start, |last| last + 1);
    let token = rest.get(start..end).unwrap_or_default();
    if token.is_empty() {
        return Err("the Bearer credentials are empty");
    }
    Ok(Some(token))
}

/// The token as text, if it can be one: ASCII without spaces (RFC 6750's b64token; anything
/// else that is not base64url the verifier refuses as `malformed`).
pub(crate) fn checked(token: &[u8]) -> Result<&str, &'static str> {
    if !token.is_ascii() {
        return Err("the token is not ASCII");
    }
    if token.contains(&b' ') {
        return Err("the Bearer credentials contain a space");
    }
    std::str::from_utf8(token).map_err(|_| "the token is not ASCII")
}

/// Every non-empty value of cookie `name` across the `Cookie` headers: a client may repeat a
/// name, and two different values under it are two tokens, not the first one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    let mut budget = MAX_COOKIE_LEN;
    let mut values = Vec::new();
    for value in headers.get_all(COOKIE) {
        let bytes = value.as_bytes();
        if bytes.len() > budget {
            return Vec::new();
        }
        budget -= bytes.len();
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k.trim() == name
            {
                let v = v.trim().trim_matches('"');
                if !v.is_empty() {
                    values.push(v);
                }
            }
        }
    }
    values
}

/// Every `access_token` query parameter (percent-decoded), repeated ones included.
fn query_tokens(query: &str) -> impl Iterator<Item = Cow<'_, str>> {
    form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "access_token").map(|(_, v)| v)
}

/// The one token of a request: `Authorization: Bearer`, then the cookies in order, then the
/// `access_token` query parameter. The same token in several places is one token; two
/// different ones are `ambiguous_token`.
pub(crate) fn token<'a>(headers: &'a HeaderMap, query: Option<&'a str>, sources: &Sources<'_>) -> Found<'a> {
    let mut found: Option<Cow<'a, [u8]>> = match bearer(headers) {
        Ok(t) => t.map(Cow::Borrowed),
        Err(why) => return Found::Invalid("invalid_request", why),
    };
    let mut consider = |candidate: Cow<'a, [u8]>| -> Result<(), &'static str> {
        if candidate.len() > sources.max_len.saturating_mul(2) {
            return Err("a token is far larger than any accepted");
        }
        match &found {
            None => found = Some(candidate),
            Some(existing) if *existing == candidate => {}
            Some(_) => return Err("two different tokens in one request"),
        }
        Ok(())
    };
    for name in sources.cookies {
        for value in cookie(headers, name) {
            if let Err(why) = consider(Cow::Borrowed(value.as_bytes())) {
                return Found::Invalid(code_of(why), why);
            }
        }
    }
    if sources.query
        && let Some(query) = query
    {
        for value in query_tokens(query) {
            let bytes = match value {
                Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            };
            if let Err(why) = consider(bytes) {
                return Found::Invalid(code_of(why), why);
            }
        }
    }
    match found {
        Some(token) => Found::Token(token),
        None => Found::None,
    }
}

fn code_of(why: &str) -> &'static str {
    if why.starts_with("two different") { "ambiguous_token" } else { "invalid_request" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let h = headers(&[
            ("host", "auth.internal:4190"),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/orders/7?x=1"),
        ]);
        let o = original(&Method::GET, &h, "/auth", true).unwrap();
        assert_eq!(
            (o.method.as_str(), o.uri, o.path(), o.host),
            ("DELETE", "/orders/7?x=1", "/orders/7", Some("auth.internal"))
        );
        let o = original(&Method::GET, &h, "/auth", false).unwrap();
        assert_eq!((o.method.as_str(), o.uri), ("GET", "/auth"));
        let t = headers(&[
            ("x-forwarded-method", "PUT"),
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-host", "Shop.Example:443"),
        ]);
        let o = original(&Method::GET, &t, "/auth", true).unwrap();
        assert_eq!((o.method.as_str(), o.uri, o.host), ("PUT", "/a", Some("Shop.Example")));
    }

    #[test]
    fn trusted_proxies_match_v4_mapped_v6_peers() {
        let loopback: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(trusted("::ffff:127.0.0.1".parse().unwrap(), &loopback));
        assert!(!trusted("10.0.0.1".parse().unwrap(), &loopback));
    }

    #[test]
    fn bearer_parsing_follows_the_layer() {
        let one = |value: &[u8]| {
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, http::HeaderValue::from_bytes(value).unwrap());
            bearer(&map).map(|t| t.map(<[u8]>::to_vec))
        };
        assert_eq!(one(b"Bearer a.b.c"), Ok(Some(b"a.b.c".to_vec())));
        assert_eq!(one(b"bEaReR   a.b.c  "), Ok(Some(b"a.b.c".to_vec())));
        assert_eq!(one(b"Basic YWxpY2U="), Ok(None));
        assert_eq!(one(b"Bearer"), Err("the Bearer credentials are empty"));
        assert_eq!(one(b"Bearer    "), Err("the Bearer credentials are empty"));
        assert_eq!(one(b"Basic \xc3\xa9"), Err("the Authorization header is not ASCII"));
        // Characters are checked when the token is not in the cache.
        assert_eq!(one(b"Bearer a b"), Ok(Some(b"a b".to_vec())));
        assert_eq!(checked(b"a b"), Err("the Bearer credentials contain a space"));
        assert_eq!(checked(b"a.\xc3\xa9"), Err("the token is not ASCII"));
        assert_eq!(checked(b"a.b.c"), Ok("a.b.c"));
    }

    #[test]
    fn tokens_come_from_bearer_cookies_then_query_and_must_agree() {
        let cookies = vec!["session".to_owned(), "at".to_owned()];
        let sources = Sources { cookies: &cookies, query: true, max_len: 100 };
        let own = Original { method: Method::GET, host: None, uri: "/x?access_token=q.q.q" };
        let h = headers(&[("cookie", "a=b; at=c.c.c")]);
        assert_eq!(
            token(&h, own.query(), &sources),
            Found::Invalid("ambiguous_token", "two different tokens in one request")
        );
        let same = Original { uri: "/x?access_token=c.c.c", ..own };
        assert_eq!(token(&h, same.query(), &sources), Found::Token(Cow::Borrowed(&b"c.c.c"[..])));
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(token(&h, same.query(), &sources), Found::Token(Cow::Borrowed(&b"c.c.c"[..])));
        let h = headers(&[("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")]);
        assert_eq!(
            token(&h, same.query(), &sources),
            Found::Invalid("invalid_request", "more than one Authorization header")
        );
        let none = Sources { cookies: &[], query: false, max_len: 100 };
        assert_eq!(token(&headers(&[("cookie", "at=c.c.c")]), same.query(), &none), Found::None);
    }

    #[test]
    fn a_repeated_cookie_or_query_parameter_with_two_tokens_is_ambiguous() {
        let cookies = vec!["at".to_owned()];
        let sources = Sources { cookies: &cookies, query: true, max_len: 100 };
        let ambiguous = Found::Invalid("ambiguous_token", "two different tokens in one request");
        assert_eq!(token(&headers(&[("cookie", "at=a.a.a; at=b.b.b")]), None, &sources), ambiguous);
        let two_headers = headers(&[("cookie", "at=a.a.a"), ("cookie", "at=b.b.b")]);
        assert_eq!(token(&two_headers, None, &sources), ambiguous);
        assert_eq!(
            token(&HeaderMap::new(), Some("access_token=a.a.a&access_token=b.b.b"), &sources),
            ambiguous
        );
        // The same token repeated is one token.
        let same = headers(&[("cookie", "at=a.a.a; at=a.a.a")]);
        assert_eq!(
            token(&same, Some("access_token=a.a.a"), &sources),
            Found::Token(Cow::Borrowed(&b"a.a.a"[..]))
        );
    }

    #[test]
    fn dot_segments_are_found_however_they_are_spelled() {
        for path in [
            "/public/../admin",
            "/./admin",
            "/a/..",
            "/public/%2e%2E/admin",
            "/public/..%2Fadmin",
            "/public/..%5cadmin",
            "/public\\..\\admin",
            "/public/.%2e/admin",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/", "/admin/x", "/files/a..b", "/v1.2/x", "/.well-known/jwks", "/a%20b", "/..x"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn a_preflight_needs_both_headers_with_values() {
        let full = headers(&[("origin", "https://app.example"), ("access-control-request-method", "GET")]);
        assert!(has_preflight_headers(&full));
        let blank = headers(&[("origin", "https://app.example"), ("access-control-request-method", " ")]);
        assert!(!has_preflight_headers(&blank));
        assert!(!has_preflight_headers(&headers(&[("origin", "https://app.example")])));
    }
}
