//! A stand-in for the configuration loader's quick start until it is merged.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use keyward::source::SourceSettings;

use crate::config::{
    ClaimHeader, Config, IssuerConfig, IssuerMatcher, ReloadConfig, SpikeConfig, TokenCacheConfig,
    TokenSources,
};

/// One issuer by discovery, the implicit `default` policy, every other field at its default.
pub fn quick_config(
    issuer: &str,
    audiences: Vec<String>,
    source: SourceSettings,
    listen: SocketAddr,
) -> Config {
    Config {
        path: None,
        listen,
        issuers: vec![IssuerConfig {
            name: issuer.to_owned(),
            matcher: IssuerMatcher::Exact(issuer.to_owned()),
            jwks_uri: None,
            audiences,
            algorithms: Vec::new(),
            required_claims: Vec::new(),
            leeway: Duration::from_secs(60),
            source,
        }],
        policies: Vec::new(),
        default_policy: "default".to_owned(),
        rules: Vec::new(),
        tokens: TokenSources::default(),
        claim_headers: vec![
            ClaimHeader { header: HeaderName::from_static("x-auth-subject"), claim: "sub".to_owned() },
            ClaimHeader { header: HeaderName::from_static("x-auth-issuer"), claim: "iss".to_owned() },
        ],
        trusted_proxies: vec![
            "127.0.0.0/8".parse().unwrap_or_default(),
            "::1/128".parse().unwrap_or_default(),
        ],
        token_cache: TokenCacheConfig {
            enabled: true,
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
        },
        decision_deadline: Duration::from_secs(1),
        error_description: true,
        cors_preflight_bypass: true,
        failure_spike: SpikeConfig {
            enabled: true,
            window: Duration::from_secs(60),
            ratio: 0.2,
            min_requests: 20,
        },
        reload: ReloadConfig { watch: false, debounce: Duration::from_millis(500) },
        shutdown_grace: Duration::from_secs(10),
    }
}
