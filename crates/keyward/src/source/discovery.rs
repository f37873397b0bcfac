//! OIDC discovery (and RFC 8414 metadata) for an issuer, with the exact-issuer check.

use crate::jose::json;
use crate::source::http::{FetchError, FetchStage, HttpClient, Validators};

/// The well-known URLs to try for `issuer`, in order.
pub(crate) fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    // RFC 8414 §3.1 inserts the well-known segment between the host and the issuer's path.
    if let Ok(url) = url::Url::parse(issuer) {
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        urls.push(format!("{origin}/.well-known/oauth-authorization-server{path}"));
    }
    urls
}

/// Discovers the `jwks_uri` of `issuer`; the document's `issuer` must equal it exactly.
pub(crate) async fn discover_jwks_uri(http: &HttpClient, issuer: &str) -> Result<String, FetchError> {
    let mut last = None;
    for url in metadata_urls(issuer) {
        match http.get(&url, &Validators::default()).await {
            Ok(fetched) => {
                let body = fetched.body.unwrap_or_default();
                return jwks_uri_from(http, issuer, &url, &body);
            }
            Err(e) if matches!(e.stage, FetchStage::HttpStatus(404)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| FetchError::new(FetchStage::Policy, issuer, "issuer is not a URL")))
}

fn jwks_uri_from(http: &HttpClient, issuer: &str, url: &str, body: &[u8]) -> Result<String, FetchError> {
    let parse = |detail: String| FetchError::new(FetchStage::Parse, url, detail);
    let document = json::parse_object(body)
        .map_err(|e| parse(format!("discovery document is not a JSON object: {e}")))?;
    match document.get("issuer").and_then(|v| v.as_str()) {
        Some(found) if found == issuer => {}
        Some(found) => {
            return Err(parse(format!(
                "discovery document names issuer {found:?}, not the configured {issuer:?} (issuers are compared exactly)"
            )));
        }
        None => return Err(parse("discovery document has no issuer".to_owned())),
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| parse("discovery document has no jwks_uri".to_owned()))?;
    http.check_url(jwks_uri)?;
    Ok(jwks_uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls() {
        assert_eq!(
            metadata_urls("https://idp.example.com/realms/a"),
            [
                "https://idp.example.com/realms/a/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/a"
            ]
        );
        assert_eq!(
            metadata_urls("https://idp.example.com/"),
            [
                "https://idp.example.com/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server"
            ]
        );
    }
}
