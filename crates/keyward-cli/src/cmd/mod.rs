//! One module per subcommand; each returns the process exit code.

/// `println!` for command output, through [`say`]: a closed stdout does not panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cmd::say(format_args!($($arg)*))
    };
}

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
    outln!("{value}");
}

/// Writes `bytes` to stdout. A reader that has gone away (`keyward inspect … | head -1`) is not
/// an error: the command still finishes and exits with its own status.
pub(crate) fn emit(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// One line to stdout through [`emit`]; any other write error is reported on stderr (where
/// `println!` would panic).
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    if let Err(e) = emit(format!("{line}\n").as_bytes()) {
        eprintln!("keyward: cannot write to stdout: {e}");
    }
}
