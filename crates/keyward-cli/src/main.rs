//! `keyward`: verify, inspect and diagnose JWTs against JWKS key sets.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod input;

use std::process::ExitCode;

use clap::Parser;

/// Exit status for a usage error, an unreadable file, or an unusable key set.
pub(crate) const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.log.as_deref());
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keyward: error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_tracing(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_env("KEYWARD_LOG").ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
