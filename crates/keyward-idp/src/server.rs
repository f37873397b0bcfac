//! A mock identity provider over HTTP on 127.0.0.1: discovery, JWKS, faults on command.
//!
//! It serves `/.well-known/openid-configuration` (issuer = its base URL) and `/jwks`, publishes
//! whatever keys it is told to, and can fail in the ways real IdPs do, so rotations and outages
//! can be rehearsed against any verifier.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::mint::{SigningAlg, SigningKey};
use crate::provider::{FaultMode, Provider, ProviderConfig, ProviderError};
use crate::script::Reply;

const JWKS: &str = "/jwks";
const DISCOVERY: &str = "/.well-known/openid-configuration";
/// A fault set by [`MockIdp::set_fault`] lasts until the next call (the provider caps it at a day).
const FOREVER: Duration = Duration::from_secs(24 * 3600);

/// How the JWKS endpoint misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Serve the published keys.
    None,
    /// Answer with this HTTP status and no keys.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with `{"keys": []}`.
    EmptySet,
}

/// A running mock IdP publishing the keys it is told to; stops when dropped.
///
/// A thin wrapper of [`Provider`]: the same server, started with no published key, whose
/// [`Fault`]s are the provider's fault modes or scripted replies on `/jwks`.
#[derive(Debug)]
pub struct MockIdp {
    provider: Provider,
}

impl MockIdp {
    /// Binds 127.0.0.1 on a free port and starts serving no keys.
    pub async fn start() -> std::io::Result<Self> {
        let config = ProviderConfig { algs: vec![SigningAlg::ES256], ..ProviderConfig::default() };
        let provider =
            Provider::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.map_err(|e| match e {
                ProviderError::Io(e) => e,
                other => std::io::Error::other(other.to_string()),
            })?;
        provider.publish(&[]);
        provider.set_cache_control("public, max-age=300");
        Ok(Self { provider })
    }

    /// The provider underneath: rotations, scripted replies, outages, request records.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The issuer: the base URL, as discovery reports it.
    pub fn issuer(&self) -> &str {
        self.provider.issuer()
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        self.provider.jwks_uri()
    }

    /// Publishes exactly these keys (public halves) from now on.
    pub fn publish(&self, keys: &[&Arc<SigningKey>]) {
        self.provider.publish(keys);
    }

    /// Makes the JWKS endpoint fail (or recover with [`Fault::None`]).
    pub fn set_fault(&self, fault: Fault) {
        self.provider.clear_reply(JWKS);
        self.provider.clear_faults();
        match fault {
            Fault::None => {}
            Fault::Status(code) => self.provider.set_reply(
                JWKS,
                Reply::bytes(b"unavailable".to_vec())
                    .with_status(code)
                    .header("content-type", "text/plain; charset=utf-8"),
            ),
            Fault::Garbage => self.provider.fault(FaultMode::Garbage, FOREVER),
            Fault::EmptySet => self.provider.fault(FaultMode::EmptySet, FOREVER),
        }
    }

    /// The `Cache-Control: max-age` the JWKS is served with.
    pub fn set_max_age(&self, seconds: u64) {
        self.provider.set_cache_control(&format!("public, max-age={seconds}"));
    }

    /// JWKS requests served so far.
    pub fn jwks_hits(&self) -> u64 {
        u64::try_from(self.provider.hits(JWKS)).unwrap_or(u64::MAX)
    }

    /// Discovery requests served so far.
    pub fn discovery_hits(&self) -> u64 {
        u64::try_from(self.provider.hits(DISCOVERY)).unwrap_or(u64::MAX)
    }

    /// Standard claims for a token from this issuer, valid from `now` for `ttl` seconds.
    pub fn claims(&self, sub: &str, audience: &str, now: i64, ttl: i64) -> Value {
        json!({"iss": self.issuer(), "sub": sub, "aud": audience, "iat": now, "nbf": now,
               "exp": now.saturating_add(ttl)})
    }
}
