//! Reading tokens without verifying them: for display and diagnosis only.
//!
//! Nothing returned here is authenticated. Never make an access decision from it.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::jose::base64url;
use crate::jose::compact::{self, UnverifiedToken};
use crate::jose::json;

/// A token decoded without any signature check.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Unverified {
    /// The header object.
    pub header: Map<String, Value>,
    /// The claims object, or why the payload is not one.
    pub claims: Result<Map<String, Value>, String>,
    /// The decoded signature length in bytes.
    pub signature_len: usize,
    /// What verification would say about the structure and header alone (e.g. `alg: none`),
    /// before any key is consulted; `None` when they would pass.
    pub header_problem: Option<Error>,
}

/// Decodes `token`'s header and claims WITHOUT verifying anything.
///
/// Applies the size bound and strict structure (three base64url segments, JSON header), but not
/// the header rules, so tokens that would be rejected can still be shown.
pub fn decode_unverified(token: &str, max_len: usize) -> Result<Unverified, Error> {
    let [h, p, s] = compact::split(token, max_len)?;
    let header_bytes = base64url::decode(h).map_err(|_| {
        Error::malformed(format!(
            "header segment is not canonical unpadded base64url: {}",
            base64url::defect(h)
        ))
    })?;
    let header = json::parse_object(&header_bytes)
        .map_err(|e| Error::malformed(format!("header is not a JSON object: {e}")))?;
    let claims = base64url::decode(p)
        .map_err(|_| format!("payload segment is not canonical unpadded base64url: {}", base64url::defect(p)))
        .and_then(|bytes| {
            json::parse_object(&bytes).map_err(|e| format!("payload is not a JSON object: {e}"))
        });
    let signature_len = base64url::decode(s).map_or(0, |sig| sig.len());
    let header_problem = UnverifiedToken::parse(token, max_len).err();
    Ok(Unverified { header, claims, signature_len, header_problem })
}
