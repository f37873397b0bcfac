//! The cause codes, their fixes, and the recognisers of look-alike failures real IdPs produce:
//! near-miss issuers and tokens that were never meant for the application.

use serde_json::{Map, Value};

/// The one verdict of a diagnosis (DESIGN.md's cause codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Cause {
    /// The token verifies against the live key set and the settings given.
    Ok,
    /// The token's kid is in the live set but not in the application's cached copy.
    StaleCache,
    /// The token's kid is gone from the live set although the token has not expired.
    KeyDroppedEarly,
    /// The live set has the token's kid under other key material than the one that signed it.
    KidReused,
    /// The live key set could not be fetched.
    JwksUnreachable,
    /// The token or the configuration belongs to another issuer, audience or tenant.
    WrongKeySet,
    /// The token's times are off by less than the clock error a host may have, or the IdP's
    /// clock and this host's disagree.
    ClockSkew,
    /// The token has expired.
    Expired,
    /// The token's algorithm does not fit the key its kid names (or is never accepted).
    AlgorithmMismatch,
    /// No live or cached key verifies the token, or it is not a well-formed token at all.
    TokenTampered,
    /// A token issued for someone else (Microsoft Graph, a refresh token, an Okta org server).
    ForeignToken,
}

impl Cause {
    /// Every cause, in precedence order: when several apply, the first one listed is the verdict.
    pub(crate) const PRECEDENCE: [Self; 11] = [
        Self::ForeignToken,
        Self::WrongKeySet,
        Self::JwksUnreachable,
        Self::AlgorithmMismatch,
        Self::KidReused,
        Self::TokenTampered,
        Self::ClockSkew,
        Self::Expired,
        Self::KeyDroppedEarly,
        Self::StaleCache,
        Self::Ok,
    ];

    /// The stable snake_case code.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::StaleCache => "stale_cache",
            Self::KeyDroppedEarly => "key_dropped_early",
            Self::KidReused => "kid_reused",
            Self::JwksUnreachable => "jwks_unreachable",
            Self::WrongKeySet => "wrong_key_set",
            Self::ClockSkew => "clock_skew",
            Self::Expired => "expired",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::TokenTampered => "token_tampered",
            Self::ForeignToken => "foreign_token",
        }
    }

    /// The fix in one or two plain sentences; the evidence that led here is in the checks.
    pub(crate) fn fix(self) -> &'static str {
        match self {
            Self::Ok => "Nothing to fix: the token verifies against the live key set with these settings.",
            Self::StaleCache => {
                "The application's cached JWKS predates the IdP's rotation; clear it and keep its cache TTL ≤ 15 min, \
                 or use a verifier that refreshes on an unknown kid."
            }
            Self::KeyDroppedEarly => {
                "The IdP removed the signing key while tokens it signed are still valid; ask the IdP to keep \
                 retired keys published until their last token expires, and meanwhile have clients fetch new tokens."
            }
            Self::KidReused => {
                "The IdP published new key material under an old kid, so caches keyed by kid keep the old key; \
                 refetch the JWKS when a signature fails under a known kid, and ask the IdP to use a new kid per key."
            }
            Self::JwksUnreachable => {
                "The key set cannot be fetched from here; fix the network path, the URL or the trust store \
                 named by the failing stage, or give the keys as a file with --jwks FILE."
            }
            Self::WrongKeySet => {
                "The token and the configuration name different issuers, audiences or tenants; configure the \
                 exact value the checks show, or request a token for this API."
            }
            Self::ClockSkew => {
                "A clock is off by minutes: synchronise the clocks (NTP) of this host and the IdP; a leeway of \
                 up to 5 min covers small skews."
            }
            Self::Expired => {
                "The token has expired; the client must obtain a new one (refresh it) before calling."
            }
            Self::AlgorithmMismatch => {
                "The token's alg does not fit the key its kid names; configure the algorithm the IdP signs with, \
                 or find which client mints tokens with the wrong alg."
            }
            Self::TokenTampered => {
                "No published or cached key verifies this token: it was altered, truncated, or signed by a key \
                 the IdP never published; do not accept it, and find where it came from."
            }
            Self::ForeignToken => {
                "This token was not issued for your API, so no key you hold can verify it; request a token \
                 for your own API (audience) from your own authorization server."
            }
        }
    }
}

/// How an issuer the application expects and one it was given differ, for people: the near
/// miss named when there is one.
pub(crate) fn near_miss(expected: &str, actual: &str) -> String {
    let lower = expected.to_ascii_lowercase();
    if lower.contains("{tenantid}") || lower.contains("{tenant}") {
        return format!(
            "the configured issuer {expected:?} holds a literal tenant template; substitute the tenant ID \
             ({actual})"
        );
    }
    if expected.trim_end_matches('/') == actual.trim_end_matches('/') {
        return format!(
            "{actual:?} and the configured {expected:?} differ only by a trailing slash (issuers are \
             compared exactly; Auth0 and Entra ID v1 issuers end with '/')"
        );
    }
    let (e_scheme, e_rest) = split_scheme(expected);
    let (a_scheme, a_rest) = split_scheme(actual);
    if e_rest.trim_end_matches('/') == a_rest.trim_end_matches('/') && e_scheme != a_scheme {
        if e_scheme.is_empty() || a_scheme.is_empty() {
            return format!(
                "{actual:?} and the configured {expected:?} differ only by the scheme (Google ID tokens \
                 may carry \"accounts.google.com\" without https://; accept both spellings)"
            );
        }
        return format!(
            "{actual:?} and the configured {expected:?} differ only by the scheme ({a_scheme} against \
             {e_scheme}): configure the issuer exactly as the IdP writes it"
        );
    }
    let (e_host, e_path) = split_host(e_rest);
    let (a_host, a_path) = split_host(a_rest);
    let entra = |host: &str| {
        let host = host.to_ascii_lowercase();
        if host == "sts.windows.net" {
            Some(1)
        } else if host == "login.microsoftonline.com" {
            Some(2)
        } else {
            None
        }
    };
    if let (Some(e), Some(a)) = (entra(e_host), entra(a_host))
        && e != a
    {
        return format!(
            "Entra ID v{a} issuer {actual:?} against the configured v{e} issuer {expected:?}: the token version \
             follows the API app's accessTokenAcceptedVersion; configure the matching issuer or change that setting"
        );
    }
    if !e_host.eq_ignore_ascii_case(a_host) && e_path.trim_end_matches('/') == a_path.trim_end_matches('/') {
        return format!(
            "same path on another host ({a_host:?} instead of {e_host:?}): the token comes from another IdP \
             instance or environment"
        );
    }
    format!("{actual:?} is not the configured issuer {expected:?}")
}

fn split_scheme(url: &str) -> (&str, &str) {
    match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", url),
    }
}

fn split_host(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    }
}

/// When a token's kid is missing from the key set because the token is signed with keys
/// published elsewhere: an Entra ID app-specific signing key (published only at
/// `jwks_uri?appid=…`), or a Firebase ID token checked against Google's OAuth keys.
pub(crate) fn other_key_set(claims: Option<&Map<String, Value>>, location: &str) -> Option<String> {
    let claim = |name: &str| claims.and_then(|c| c.get(name)).and_then(Value::as_str);
    let iss = claim("iss")?;
    let host = url::Url::parse(iss).ok()?.host_str()?.to_ascii_lowercase();
    if (host == "login.microsoftonline.com" || host == "sts.windows.net") && !location.contains("appid=") {
        let app = claim("appid").or_else(|| claim("azp")).or_else(|| claim("aud")).unwrap_or("<client id>");
        return Some(format!(
            "an Entra ID token whose kid is not in the tenant's common keys: apps with a custom signing key \
             (claims mapping) publish it only at the jwks_uri with ?appid={app}"
        ));
    }
    if host == "securetoken.google.com" && !location.contains("securetoken") {
        return Some(
            "a Firebase ID token (iss securetoken.google.com) is signed with Firebase's keys, not Google's OAuth \
             keys: use https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
                .to_owned(),
        );
    }
    None
}

/// Microsoft Graph's application ID, the audience of Graph access tokens.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Why the token was never meant to be verified by the application, when it is recognisably
/// so: a Microsoft Graph token (its `nonce` header), a Keycloak refresh token (`typ` Refresh,
/// or an HMAC algorithm), an Okta org authorization server token (`iss` without `/oauth2/`).
pub(crate) fn foreign(header: &Map<String, Value>, claims: Option<&Map<String, Value>>) -> Option<String> {
    let claim = |name: &str| claims.and_then(|c| c.get(name)).and_then(Value::as_str);
    let audiences: Vec<&str> = match claims.and_then(|c| c.get("aud")) {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if header.contains_key("nonce") {
        let graph = audiences.iter().any(|a| *a == GRAPH_APP_ID || a.starts_with("https://graph.microsoft"));
        return Some(format!(
            "the header carries a nonce{}: a Microsoft first-party (Graph) access token, signed over a hashed \
             nonce only Microsoft can check; not verifiable by you",
            if graph { " and the audience is Microsoft Graph" } else { "" }
        ));
    }
    let typ = claim("typ").unwrap_or_default();
    if typ.eq_ignore_ascii_case("refresh") || typ.eq_ignore_ascii_case("offline") {
        return Some(format!(
            "the claims say typ {typ:?}: a Keycloak refresh token, meant only for the token endpoint"
        ));
    }
    if let Some(alg) = header.get("alg").and_then(Value::as_str)
        && alg.starts_with("HS")
    {
        return Some(format!(
            "alg {alg} is an HMAC shared secret held by the IdP (Keycloak signs its refresh tokens this way): \
             the token is for the IdP itself"
        ));
    }
    if let Some(iss) = claim("iss")
        && let Ok(url) = url::Url::parse(iss)
        && let Some(host) = url.host_str()
        && [".okta.com", ".oktapreview.com", ".okta-emea.com"].iter().any(|d| host.ends_with(d))
        && !url.path().contains("/oauth2/")
    {
        return Some(format!(
            "iss {iss:?} is an Okta org authorization server (no /oauth2/ in the path): its access tokens are \
             for Okta's own APIs; use a custom authorization server (…/oauth2/default)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_named() {
        assert!(near_miss("https://a.auth0.com/", "https://a.auth0.com").contains("trailing slash"));
        assert!(near_miss("https://accounts.google.com", "accounts.google.com").contains("scheme"));
        assert!(
            near_miss("https://login.microsoftonline.com/t/v2.0", "https://sts.windows.net/t/")
                .contains("Entra ID v1")
        );
        assert!(near_miss("https://login.microsoftonline.com/{tenantid}/v2.0", "x").contains("template"));
        assert!(
            near_miss("https://idp.prod.example/realms/a", "https://idp.dev.example/realms/a")
                .contains("another host")
        );
        assert!(near_miss("https://a.example", "https://b.example/x").contains("is not the configured"));
    }

    #[test]
    fn precedence_lists_every_cause_once() {
        let mut all = Cause::PRECEDENCE.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 11);
    }
}
