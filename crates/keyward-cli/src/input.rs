//! Reading tokens and files with bounds.

use std::io::Read;

use anyhow::{Context, Result};

/// Nothing keyward reads from stdin or a file needs more than this.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The token from the argument, from a file for `@PATH`, or from stdin for `-` or no
/// argument; surrounding whitespace trimmed.
pub(crate) fn token(arg: Option<&str>) -> Result<String> {
    match arg {
        Some(arg) if arg.starts_with('@') && arg.len() > 1 => {
            let path = std::path::Path::new(arg.get(1..).unwrap_or_default());
            let bytes = file(path)?;
            Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
        }
        Some(token) if token != "-" => Ok(token.trim().to_owned()),
        _ => {
            let mut buf = String::new();
            std::io::stdin()
                .take(MAX_INPUT_BYTES)
                .read_to_string(&mut buf)
                .context("cannot read the token from stdin")?;
            Ok(buf.trim().to_owned())
        }
    }
}

/// A whole file, bounded.
pub(crate) fn file(path: &std::path::Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_INPUT_BYTES)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(buf)
}
