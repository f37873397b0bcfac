//! `keyward drill --fleet N`: many key sources against one rate-limited idp.

use std::process::ExitCode;

use anyhow::{Result, bail};

pub(crate) async fn run(_n: u64, _json: bool) -> Result<ExitCode> {
    bail!("--fleet is not implemented yet")
}
