//! Warm start: the last good key set of each source saved in a cache directory, so a restart
//! during an IdP outage still has keys; and a reader for that file (the application's cached
//! copy, as `doctor --cached-jwks` reads it).

use std::path::{Path, PathBuf};

use crate::jose::json;
use crate::jose::jwks::JwkSet;

/// Largest cache file read: the JWKS body bound plus room for the record around it.
const MAX_CACHE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A key set saved by a source for warm start.
#[derive(Debug)]
#[non_exhaustive]
pub struct CachedKeySet {
    /// Unix time the set was saved (after a successful fetch).
    pub saved_at_unix: i64,
    /// The source's name (its issuer or URL).
    pub source: String,
    /// The URL the set was fetched from.
    pub jwks_uri: String,
    /// The key set.
    pub set: JwkSet,
}

/// Why a warm-start cache file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than any cache file keyward writes.
    #[error("{path} is larger than {MAX_CACHE_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a keyward cache record.
    #[error("{path} is not a keyward key-set cache file: {detail}")]
    NotACacheFile {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        detail: String,
    },
    /// The save time is later than now: the clock moved back, or the file was tampered with.
    #[error("{path} was saved at Unix time {saved_at}, which is in the future (now {now})")]
    SavedInFuture {
        /// The file.
        path: PathBuf,
        /// The recorded save time.
        saved_at: i64,
        /// The reader's clock.
        now: i64,
    },
    /// The saved JWKS does not parse.
    #[error("{path}: the saved key set is not usable: {source}")]
    KeySet {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: crate::jose::jwks::JwksError,
    },
}

/// Reads a warm-start cache file written by a key source (with `cache_dir` set).
///
/// `now_unix` is the reader's clock: a file saved in the future is refused. The saved set is
/// parsed with the default JWKS bounds; its age is `now_unix - saved_at_unix`.
pub fn read_cache_file(path: &Path, now_unix: i64) -> Result<CachedKeySet, CacheFileError> {
    let io = |source| CacheFileError::Io { path: path.to_owned(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_CACHE_FILE_BYTES {
        return Err(CacheFileError::TooLarge { path: path.to_owned() });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_record(
        path,
        &bytes,
        now_unix,
        crate::jose::jwks::DEFAULT_MAX_JWKS_BYTES,
        crate::jose::jwks::DEFAULT_MAX_KEYS,
    )
}

/// Parses a cache record's bytes (see [`read_cache_file`]).
pub(crate) fn parse_record(
    path: &Path,
    bytes: &[u8],
    now_unix: i64,
    max_bytes: usize,
    max_keys: usize,
) -> Result<CachedKeySet, CacheFileError> {
    let not =
        |detail: &str| CacheFileError::NotACacheFile { path: path.to_owned(), detail: detail.to_owned() };
    let record = json::parse_object(bytes).map_err(|e| not(&format!("not a JSON object: {e}")))?;
    let saved_at = record.get("saved_at").and_then(|v| v.as_i64()).ok_or_else(|| not("no saved_at"))?;
    if saved_at > now_unix {
        return Err(CacheFileError::SavedInFuture { path: path.to_owned(), saved_at, now: now_unix });
    }
    let text = |name: &str| record.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let jwks = text("jwks").ok_or_else(|| not("no jwks"))?;
    let set = JwkSet::from_json_with_limits(jwks.as_bytes(), max_bytes, max_keys)
        .map_err(|source| CacheFileError::KeySet { path: path.to_owned(), source })?;
    Ok(CachedKeySet {
        saved_at_unix: saved_at,
        source: text("source").unwrap_or_default(),
        jwks_uri: text("jwks_uri").unwrap_or_default(),
        set,
    })
}

/// The record a source writes after each successful fetch.
pub(crate) fn record(saved_at: i64, source: &str, jwks_uri: &str, body: &[u8]) -> String {
    serde_json::json!({
        "saved_at": saved_at,
        "source": source,
        "jwks_uri": jwks_uri,
        "jwks": String::from_utf8_lossy(body),
    })
    .to_string()
}

/// Writes `contents` to `path` atomically: a reader sees the old file or the new one, never a
/// partial write, and a crash between write and rename leaves the old file in place.
pub(crate) async fn write_atomically(path: &Path, contents: String) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, contents).await?;
    tokio::fs::rename(&tmp, path).await
}
