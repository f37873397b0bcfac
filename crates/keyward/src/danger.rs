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

/// The `iss` a token claims, read WITHOUT verifying anything, to choose which issuer's keys may
/// verify it (as the multi-issuer [`crate::Verifier`] does, with the same strict reading: size
/// bound, three canonical base64url segments, a JSON object payload, a string `iss`).
/// `Ok(None)` when the payload has no `iss`.
pub fn unverified_issuer(token: &str, max_len: usize) -> Result<Option<String>, Error> {
    let [_, payload, _] = compact::split(token, max_len)?;
    let bytes = base64url::decode(payload).map_err(|_| {
        Error::malformed(format!(
            "payload segment is not canonical unpadded base64url: {}",
            base64url::defect(payload)
        ))
    })?;
    Ok(crate::jose::peek::peek_issuer(&bytes)?.iss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn token(payload: &str) -> String {
        format!("{}.{}.c2ln", base64url::encode(br#"{"alg":"RS256"}"#), base64url::encode(payload.as_bytes()))
    }

    #[test]
    fn the_unverified_issuer_is_read_strictly() {
        assert_eq!(
            unverified_issuer(&token(r#"{"iss":"https://a","sub":"x"}"#), 4096).unwrap(),
            Some("https://a".into())
        );
        assert_eq!(unverified_issuer(&token(r#"{"sub":"x"}"#), 4096).unwrap(), None);
        assert_eq!(
            unverified_issuer(&token(r#"{"iss":7}"#), 4096).unwrap_err().reason(),
            Reason::InvalidClaim
        );
        assert_eq!(unverified_issuer(&token("[]"), 4096).unwrap_err().reason(), Reason::Malformed);
        assert_eq!(unverified_issuer("a.b*.c", 4096).unwrap_err().reason(), Reason::Malformed);
        assert_eq!(
            unverified_issuer(&token(r#"{"iss":"x"}"#), 10).unwrap_err().reason(),
            Reason::TokenTooLarge
        );
    }
}
