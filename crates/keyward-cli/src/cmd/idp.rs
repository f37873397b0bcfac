//! `keyward idp`: a mock OpenID provider for rehearsing rotations against any service.
//!
//! The provider itself lives in `keyward_idp::provider`; this command binds it, says where
//! everything is, and prints its change log on stderr until interrupted.

use std::process::ExitCode;

use anyhow::{Context, Result};
use keyward_idp::{Provider, ProviderConfig, SigningAlg};

use crate::cli::IdpArgs;

pub(crate) fn run(args: &IdpArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: &IdpArgs) -> Result<ExitCode> {
    if let Some(issuer) = &args.issuer
        && !url::Url::parse(issuer).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    {
        anyhow::bail!("--issuer {issuer:?} is not an http(s) URL: give the URL clients reach this idp at");
    }
    let config = ProviderConfig {
        algs: if args.algs.is_empty() { vec![SigningAlg::RS256] } else { args.algs.clone() },
        issuer: args.issuer.clone(),
        state_file: args.state.clone(),
        jwks_rate_limit: args.jwks_rate_limit,
    };
    let provider = Provider::start(args.listen, config)
        .await
        .with_context(|| format!("cannot start the idp on {}", args.listen))?;
    let mut log = provider.subscribe_log();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "keyward idp: listening on {}, which is NOT a loopback address: anyone who can reach it can \
             mint tokens from /token (the admin API still answers loopback clients only)",
            provider.local_addr()
        );
    }
    let base = provider.base_url();
    outln!("keyward idp: a mock OpenID provider (keys and tokens are for rehearsals only)");
    outln!("  issuer     {}", provider.issuer());
    outln!("  discovery  {base}/.well-known/openid-configuration");
    outln!("  jwks       {base}/jwks");
    outln!("  token      POST {base}/token   (sub, aud, scope, ttl, typ, alg, claim.NAME=value)");
    outln!("  admin      POST {base}/admin/rotate | /admin/retire | /admin/fault, GET {base}/admin/state");
    for key in provider.signing_keys() {
        outln!("  signing    {} ({})", key.kid(), key.alg());
    }
    if let Some(state) = &args.state {
        outln!("  state      {} (saved after every change)", state.display());
    }
    outln!("  ready      (changes are logged on stderr; Ctrl-C stops)");
    for line in provider.recent_log() {
        eprintln!("keyward idp: {line}");
    }
    loop {
        match log.recv().await {
            Ok(line) => eprintln!("keyward idp: {line}"),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("keyward idp: ({n} log lines dropped)");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}
