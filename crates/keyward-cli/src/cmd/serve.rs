//! `keyward serve`: the forward-auth gateway (crate `keyward-serve`) behind a command line.

use std::process::ExitCode;

use anyhow::{Context, Result};
use keyward_serve::Server;
use keyward_serve::config::{Config, QuickStart};

use crate::EXIT_USAGE;
use crate::cli::ServeArgs;

pub(crate) fn run(args: &ServeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let config = match load(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if args.check {
        outln!("{}", summary(&config));
        return Ok(ExitCode::SUCCESS);
    }
    runtime.block_on(serve(config))
}

/// The configuration of the flags or of the file; the error is the line to print.
fn load(args: &ServeArgs) -> Result<Config, String> {
    if let Some(path) = &args.config {
        if let Some(flag) = args.source_flags_given.first() {
            return Err(format!(
                "keyward: error: {flag} applies to --issuer only; with --config set it per issuer, \
                 in its [issuer.keys] table (docs/configuration.md)"
            ));
        }
        return Config::load(path).map_err(|e| format!("keyward: error: {e}"));
    }
    let settings = super::verify::unchecked_source_settings(&args.source);
    let quick = QuickStart {
        issuer: args.issuer.clone().unwrap_or_default(),
        audiences: args.audiences.clone(),
        source: settings,
        listen: args.listen,
    };
    Config::quick_start(quick).map_err(|e| format!("keyward: error: {e}"))
}

/// One paragraph: listen address, issuers, policies, rules.
fn summary(config: &Config) -> String {
    let issuers: Vec<String> =
        config.issuers.iter().map(|i| format!("{} (audiences {})", i.name, i.audiences.join(", "))).collect();
    let mut policies: Vec<&str> = config.policies.iter().map(|p| p.name.as_str()).collect();
    if !policies.contains(&config.default_policy.as_str()) {
        policies.push(&config.default_policy);
    }
    format!(
        "configuration valid: listen {}; issuers: {}; policies: {} (default {}); path rules: {}",
        config.listen,
        issuers.join("; "),
        policies.join(", "),
        config.default_policy,
        config.rules.len()
    )
}

async fn serve(config: Config) -> Result<ExitCode> {
    let listen = config.listen;
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("keyward: error: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    // Before the startup line: a SIGTERM right after it must already be a graceful shutdown.
    let shutdown = keyward_serve::shutdown_signal();
    let config = server.gateway().config();
    let addr = server.local_addr();
    if !addr.ip().is_loopback() {
        tracing::warn!(
            listen = %addr,
            "listening on a non-loopback address: anyone who can reach it can ask for decisions; \
             keep it on a private network next to the proxy"
        );
    }
    let issuers: Vec<&str> = config.issuers.iter().map(|i| i.name.as_str()).collect();
    let mut policies: Vec<&str> = config.policies.iter().map(|p| p.name.as_str()).collect();
    if !policies.contains(&config.default_policy.as_str()) {
        policies.push(&config.default_policy);
    }
    tracing::info!(
        listen = %addr,
        issuers = %issuers.join(","),
        policies = %policies.join(","),
        "keyward serve listening on http://{addr}/auth"
    );
    server.run_until(shutdown).await.with_context(|| format!("serving on {listen}"))?;
    tracing::info!("keyward serve stopped");
    Ok(ExitCode::SUCCESS)
}
