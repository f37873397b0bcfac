//! One module per subcommand; each returns the process exit code.

/// `println!` for command output, through [`say`]: a closed stdout does not panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cmd::say(format_args!($($arg)*))
    };
}

mod demo;
mod idp;
mod inspect;
mod serve;
pub(crate) mod verify;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Verify(args) => verify::run(*args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Doctor(args) => crate::doctor::run(&args),
        Command::Watch(args) => crate::doctor::run_watch(&args),
        Command::Demo => demo::run(),
        Command::Idp(args) => idp::run(&args),
        Command::Drill(args) => crate::drill::run(&args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "keyward", &mut out);
            emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
