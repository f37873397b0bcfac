//! One module per subcommand; each returns the process exit code.

mod demo;
mod inspect;
mod verify;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Verify(args) => verify::run(*args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Demo => demo::run(),
    }
}

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
