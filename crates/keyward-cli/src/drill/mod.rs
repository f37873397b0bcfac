//! `keyward drill`: rotation and failure scenarios against a verifier.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::DrillArgs;

pub(crate) fn run(_args: &DrillArgs) -> Result<ExitCode> {
    bail!("not yet")
}
