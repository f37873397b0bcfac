//! A one-shot fetch with no side effects: no cache, metrics, events or warm-start file is
//! touched. What `keyward doctor` reads to compare the live key set with a token.

use std::time::Duration;

use crate::error::ConfigError;
use crate::jose::jwks::JwkSet;
use crate::source::discovery::{self, Discovery};
use crate::source::http::{FetchError, FetchStage, HttpClient, HttpFacts, Validators};
use crate::source::settings::SourceSettings;
use crate::source::ttl;

/// Where a one-shot fetch finds the key set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchTarget {
    /// Discover the `jwks_uri` through `{issuer}/.well-known/openid-configuration` (then RFC
    /// 8414 metadata); the document's `issuer` must equal this exactly.
    Issuer(String),
    /// Fetch the JWKS at this URL.
    JwksUri(String),
}

/// Everything one fetch saw, whether it succeeded or not.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FetchReport {
    /// The discovery step, for [`FetchTarget::Issuer`].
    pub discovery: Option<Discovery>,
    /// The JWKS URL requested (given, or discovered).
    pub jwks_uri: Option<String>,
    /// The JWKS response's HTTP facts (status, latency, caching headers, `Date`, size), when a
    /// response arrived.
    pub facts: Option<HttpFacts>,
    /// The parsed key set (usable keys, keys set aside with reasons, warnings).
    pub set: Option<JwkSet>,
    /// The TTL a key source would give this response (caching headers clamped to the settings).
    pub ttl: Option<Duration>,
    /// The TTL the caching headers ask for, before clamping (`Some(ZERO)` for `no-cache`).
    pub requested_ttl: Option<Duration>,
    /// The failure, with its stage (DNS, connect, TLS, HTTP status, timeout, body, parse).
    pub error: Option<FetchError>,
}

/// Fetches `target` once with the HTTP bounds of `settings` and reports every fact seen.
///
/// Nothing is cached, counted or logged: this is for diagnosis, not for verifying tokens.
/// Only a client that cannot be built (bad settings) is an `Err`; a failed fetch is a report
/// whose `error` says where it failed.
pub async fn fetch(target: &FetchTarget, settings: &SourceSettings) -> Result<FetchReport, ConfigError> {
    settings.validate()?;
    let http = HttpClient::new(settings.http.clone()).map_err(ConfigError::Invalid)?;
    let mut report = FetchReport::default();
    let uri = match target {
        FetchTarget::JwksUri(uri) => uri.clone(),
        FetchTarget::Issuer(issuer) => {
            let mut found = Discovery::default();
            let outcome = discovery::discover(&http, issuer, &mut found).await;
            report.discovery = Some(found);
            match outcome {
                Ok(uri) => uri,
                Err(e) => {
                    report.error = Some(e);
                    return Ok(report);
                }
            }
        }
    };
    report.jwks_uri = Some(uri.clone());
    match http.get(&uri, &Validators::default()).await {
        Err(mut e) => {
            report.facts = e.facts.take().map(|f| *f);
            report.error = Some(e);
        }
        Ok(fetched) => {
            report.ttl = Some(ttl::ttl_from_headers(
                &fetched.facts,
                settings.min_ttl,
                settings.max_ttl,
                settings.default_ttl,
            ));
            report.requested_ttl = ttl::requested(&fetched.facts);
            let body = fetched.body.unwrap_or_default();
            match JwkSet::from_json_with_limits(&body, settings.http.max_body_bytes, settings.max_keys) {
                Ok(set) => report.set = Some(set),
                Err(e) => report.error = Some(FetchError::new(FetchStage::Parse, &uri, e.to_string())),
            }
            report.facts = Some(fetched.facts);
        }
    }
    Ok(report)
}
