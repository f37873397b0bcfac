//! OIDC discovery (and RFC 8414 metadata) for an issuer, with the exact-issuer check.

use crate::jose::json;
use crate::source::http::{FetchError, FetchStage, HttpClient, HttpFacts, Validators};

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

/// What discovery found: the document's URL and HTTP facts, its `issuer` and `jwks_uri`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Discovery {
    /// Every metadata URL requested, in order, with the status or failure stage of each.
    pub tried: Vec<(String, String)>,
    /// The URL whose document was used.
    pub url: Option<String>,
    /// The HTTP facts of that response.
    pub facts: Option<HttpFacts>,
    /// The document's `issuer`.
    pub issuer: Option<String>,
    /// True when the document's `issuer` equals the configured issuer exactly.
    pub issuer_matches: bool,
    /// The document's `jwks_uri`.
    pub jwks_uri: Option<String>,
}

/// Discovers the `jwks_uri` of `issuer`; the document's `issuer` must equal it exactly.
pub(crate) async fn discover_jwks_uri(http: &HttpClient, issuer: &str) -> Result<String, FetchError> {
    let mut found = Discovery::default();
    discover(http, issuer, &mut found).await
}

/// Discovery, recording what it saw in `found` whether it succeeds or not.
pub(crate) async fn discover(
    http: &HttpClient,
    issuer: &str,
    found: &mut Discovery,
) -> Result<String, FetchError> {
    let mut last = None;
    for url in metadata_urls(issuer) {
        match http.get(&url, &Validators::default()).await {
            Ok(fetched) => {
                found.tried.push((url.clone(), fetched.facts.status.to_string()));
                found.url = Some(url.clone());
                let body = fetched.body.unwrap_or_default();
                found.facts = Some(fetched.facts);
                return jwks_uri_from(http, issuer, &url, &body, found);
            }
            Err(e) if matches!(e.stage, FetchStage::HttpStatus(404)) => {
                found.tried.push((url, "404".to_owned()));
                last = Some(e);
            }
            Err(e) => {
                found.tried.push((url, e.stage.to_string()));
                found.facts = e.facts.as_deref().cloned();
                return Err(with_tried(e, found));
            }
        }
    }
    let e = last.unwrap_or_else(|| FetchError::new(FetchStage::Policy, issuer, "issuer is not a URL"));
    Err(with_tried(e, found))
}

/// Names every URL discovery tried in the error, so a 404 on all of them is easy to act on.
fn with_tried(mut e: FetchError, found: &Discovery) -> FetchError {
    if found.tried.len() > 1 {
        let list: Vec<String> =
            found.tried.iter().map(|(url, outcome)| format!("{url} ({outcome})")).collect();
        e.detail = format!("{}; discovery tried {}", e.detail, list.join(", "));
    }
    e
}

fn jwks_uri_from(
    http: &HttpClient,
    issuer: &str,
    url: &str,
    body: &[u8],
    discovered: &mut Discovery,
) -> Result<String, FetchError> {
    let parse = |detail: String| FetchError::new(FetchStage::Parse, url, detail);
    let document = json::parse_object(body)
        .map_err(|e| parse(format!("discovery document is not a JSON object: {e}")))?;
    discovered.issuer = document.get("issuer").and_then(|v| v.as_str()).map(str::to_owned);
    discovered.jwks_uri = document.get("jwks_uri").and_then(|v| v.as_str()).map(str::to_owned);
    discovered.issuer_matches = discovered.issuer.as_deref() == Some(issuer);
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
