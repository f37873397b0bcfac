//! The validated configuration the gateway runs on: what `load` produces from a TOML file
//! or from the quick-start flags. Every value here has passed validation; the runtime never
//! re-checks it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use keyward::Algorithm;
use keyward::source::SourceSettings;
use keyward_tower::Requirement;

/// The gateway's whole configuration, validated.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The file it was read from (`None` for the quick-start flags): reloads re-read it.
    pub path: Option<PathBuf>,
    /// Where `/auth`, `/metrics`, `/healthz` and `/readyz` are served. Default `127.0.0.1:4190`.
    pub listen: SocketAddr,
    /// Trusted issuers, in file order; at least one.
    pub issuers: Vec<IssuerConfig>,
    /// Named policies; names are unique. `/auth` uses [`Config::default_policy`],
    /// `/auth/<name>` the policy called `<name>`.
    pub policies: Vec<PolicyConfig>,
    /// The policy of `/auth` (and of path rules' fallthrough, when no rule is configured).
    /// Default `default`, which exists implicitly (every issuer, no requirement) when the file
    /// defines no policy of that name.
    pub default_policy: String,
    /// Path rules for proxies that cannot pick a policy by URL: first match wins; when rules
    /// are configured and none matches, the answer is 403 `no_rule`.
    pub rules: Vec<PathRule>,
    /// Where the token may come from besides `Authorization: Bearer`.
    pub tokens: TokenSources,
    /// Response headers filled from claims on every 200 (empty when the claim is absent).
    /// Default `X-Auth-Subject` ← `sub`, `X-Auth-Issuer` ← `iss`.
    pub claim_headers: Vec<ClaimHeader>,
    /// Peers whose `X-Original-*` / `X-Forwarded-*` headers are believed. Default loopback
    /// (`127.0.0.0/8`, `::1/128`).
    pub trusted_proxies: Vec<IpNet>,
    /// The verified-token cache.
    pub token_cache: TokenCacheConfig,
    /// How long a decision may wait for a key fetch before answering 503 with `Retry-After`
    /// (the fetch goes on in the background). Default 1 s.
    pub decision_deadline: Duration,
    /// Whether 401s carry the reason code in `error_description` (it is always in
    /// `X-Keyward-Reason`). Default true.
    pub error_description: bool,
    /// Whether CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`)
    /// are let through unauthenticated (and counted). Default true.
    pub cors_preflight_bypass: bool,
    /// Failure-spike detection per issuer.
    pub failure_spike: SpikeConfig,
    /// Reloading on file change (SIGHUP always reloads).
    pub reload: ReloadConfig,
    /// How long in-flight requests may finish after SIGTERM. Default 10 s.
    pub shutdown_grace: Duration,
}

/// One trusted issuer: how tokens are matched to it, where its keys come from, what its tokens
/// must satisfy.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// A short name for policies and logs; defaults to the issuer string. Unique.
    pub name: String,
    /// Which `iss` values belong to this issuer.
    pub matcher: IssuerMatcher,
    /// The JWKS URL; `None`: found by OIDC discovery from the issuer (exact issuers only: a
    /// templated issuer needs `jwks_uri`).
    pub jwks_uri: Option<String>,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Accepted algorithms; empty means the library's default set.
    pub algorithms: Vec<Algorithm>,
    /// Claims every token must carry (beyond `exp`, which is always required).
    pub required_claims: Vec<String>,
    /// Clock-skew leeway for `exp`/`nbf`/`iat`. Default 60 s.
    pub leeway: Duration,
    /// Key-source settings (TTL bounds, cooldown, stale limit, removal grace, HTTP timeouts,
    /// and `http.allow_insecure_http` for a plain-`http` URL that is not loopback).
    pub source: SourceSettings,
}

/// How a token's `iss` selects an issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerMatcher {
    /// `iss` equals this string exactly.
    Exact(String),
    /// An Entra-style template such as `https://login.microsoftonline.com/{tenantid}/v2.0`:
    /// `iss` must equal the template filled with the token's `tid`, which must be one of
    /// `tenants` (a non-empty allowlist of GUIDs, lower-cased).
    Template {
        /// The template, containing `{tenantid}` once.
        template: String,
        /// Allowed tenant ids.
        tenants: Vec<String>,
    },
}

/// A named policy: which issuers' tokens it accepts and what their claims must satisfy.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// The name in `/auth/<name>` and in metrics labels.
    pub name: String,
    /// Names of the issuers whose tokens this policy accepts; every issuer when the file does
    /// not say.
    pub issuers: Vec<String>,
    /// What the verified claims must satisfy; `None` accepts every verified token.
    pub require: Option<Requirement>,
}

/// A path rule: when host, path prefix and method match, the request is decided by `policy`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PathRule {
    /// Exact host (case-insensitive, port ignored); `None` matches every host.
    pub host: Option<String>,
    /// Path prefix, matched on whole segments (`/api` matches `/api` and `/api/x`, not
    /// `/apix`); `None` matches every path.
    pub path_prefix: Option<String>,
    /// Methods; empty matches every method.
    pub methods: Vec<Method>,
    /// The policy that decides matching requests (must exist).
    pub policy: String,
}

/// Where a token may be read from, in order after `Authorization: Bearer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSources {
    /// Cookie names to read, in order. Default none.
    pub cookies: Vec<String>,
    /// Whether the `access_token` query parameter of the original URI is read. Default false.
    pub query_parameter: bool,
}

/// A response header filled from a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimHeader {
    /// The header to set.
    pub header: HeaderName,
    /// The claim, as a dot path (`realm_access.roles`); arrays become comma-separated values.
    pub claim: String,
}

/// The verified-token cache: skips the signature check for a token already verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheConfig {
    /// Default true.
    pub enabled: bool,
    /// Default 10,000.
    pub max_entries: u64,
    /// An entry lives min(exp − now, this). Default 300 s.
    pub max_ttl: Duration,
}

/// Failure-spike detection: over a sliding window, when the share of rejected tokens for an
/// issuer exceeds `ratio` with at least `min_requests`, one WARN names the dominant reason and
/// `/readyz` marks the issuer degraded.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpikeConfig {
    /// Default true.
    pub enabled: bool,
    /// Default 60 s.
    pub window: Duration,
    /// Default 0.2.
    pub ratio: f64,
    /// Default 20.
    pub min_requests: u64,
}

/// Reloading on configuration change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadConfig {
    /// Watch the file and reload when it changes. Default true (when started with a file).
    pub watch: bool,
    /// Changes within this period become one reload. Default 500 ms.
    pub debounce: Duration,
}
