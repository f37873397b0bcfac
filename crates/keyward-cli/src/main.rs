//! `keyward`: verify, inspect and diagnose JWTs against JWKS key sets.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod doctor;
mod drill;
mod input;
mod keys;
mod when;
mod wire;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// mimalloc rather than the C library's allocator: the gateway allocates per request on every
/// core, where glibc's malloc cost a tenth of its CPU (see the dependency's note in Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a usage error, an unreadable file, or an unusable key file.
pub(crate) const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(flag) = misplaced_help(&args) {
        eprintln!(
            "keyward: error: {flag} is honoured only as the sole argument (e.g. `keyward verify --help`); \
             on a longer command line it is refused, so a token that looks like an option never \
             prints help and exits 0. Put `--` before an untrusted token: `keyward verify --jwks FILE -- \"$TOKEN\"`"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let color = if no_color() { clap::ColorChoice::Never } else { clap::ColorChoice::Auto };
    let matches = cli::Cli::command().color(color).get_matches_from(args);
    let mut cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let (cli::Command::Serve(serve), Some(given)) = (&mut cli.command, matches.subcommand_matches("serve"))
    {
        serve.source_flags_given = cli::SourceArgs::given_on_command_line(given);
    }
    // One token: the verdict already names the cause of keys_unavailable, so the key source's
    // own fetch warnings would say it twice more. The demo narrates what the key source does,
    // and a drill provokes fetch failures on purpose and reports them in its table.
    let one_token = matches!(&cli.command, cli::Command::Verify(v) if !v.stream)
        || matches!(&cli.command, cli::Command::Demo | cli::Command::Drill(_));
    // A server's operator wants its startup line and lifecycle events.
    let serve = matches!(&cli.command, cli::Command::Serve(_));
    init_tracing(cli.log.as_deref(), one_token, serve);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keyward: error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `NO_COLOR` set to anything non-empty turns colour off (<https://no-color.org>).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// A help or version flag on a command line that has other arguments too: `Some(flag)`.
///
/// Help and version are honoured only as the sole argument after `keyward` or after the
/// subcommand, so `keyward verify --jwks k.json "$TOKEN"` with a token `--help` cannot print
/// help and exit 0. Arguments after `--` are never options.
fn misplaced_help(args: &[OsString]) -> Option<String> {
    let mut rest: Vec<&str> = Vec::new();
    let mut iter = args.iter().skip(1);
    let mut subcommand_seen = false;
    while let Some(arg) = iter.next() {
        let Some(arg) = arg.to_str() else {
            rest.push("");
            continue;
        };
        if arg == "--" {
            break;
        }
        if arg == "--log" {
            // Its value is a filter, not an option; clap refuses a missing one.
            iter.next();
            continue;
        }
        if arg.starts_with("--log=") {
            continue;
        }
        if !subcommand_seen && !arg.starts_with('-') {
            subcommand_seen = true;
            if arg == "help" {
                return None;
            }
            continue;
        }
        rest.push(arg);
    }
    let is_help = |arg: &&&str| {
        let arg: &str = arg;
        matches!(arg, "--help" | "--version")
            || (arg.len() > 1
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg.chars().skip(1).any(|c| c == 'h' || c == 'V'))
    };
    if rest.len() > 1 { rest.iter().find(is_help).map(|flag| (*flag).to_owned()) } else { None }
}

fn init_tracing(filter: Option<&str>, one_token: bool, serve: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if one_token {
        "warn,keyward::source=off"
    } else if serve {
        "warn,keyward_serve=info,keyward=info"
    } else {
        "warn"
    };
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_env("KEYWARD_LOG").ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &[&str]) -> Option<String> {
        let args: Vec<OsString> =
            std::iter::once("keyward").chain(line.iter().copied()).map(Into::into).collect();
        misplaced_help(&args)
    }

    #[test]
    fn help_only_as_the_sole_argument() {
        assert_eq!(check(&["--help"]), None);
        assert_eq!(check(&["-V"]), None);
        assert_eq!(check(&["verify", "--help"]), None);
        assert_eq!(check(&["--log", "debug", "verify", "-h"]), None);
        assert_eq!(check(&["help", "verify"]), None);
        assert_eq!(check(&["verify", "--jwks", "k.json", "--", "--help"]), None);
        assert_eq!(check(&["verify", "--jwks", "k.json", "--help"]), Some("--help".to_owned()));
        assert_eq!(check(&["verify", "--jwks", "k.json", "-V"]), Some("-V".to_owned()));
        assert_eq!(check(&["inspect", "--json", "-h"]), Some("-h".to_owned()));
        assert_eq!(check(&["--version", "verify"]), None, "one argument after the subcommand name? none");
    }
}
