//! The unverified `iss` and `tid` of a payload, read before the signature only to choose which
//! issuer's keys may verify it (and whether a token may make those keys be refetched).

use crate::error::{Error, Reason};
use crate::jose::json::Scalar;
use crate::jose::scan;

/// What an unverified payload says its issuer is. Never trust it: it only picks keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IssuerHint {
    /// `iss`, when present.
    pub(crate) iss: Option<String>,
    /// `tid` (Entra ID tenant), when present and a string.
    pub(crate) tid: Option<String>,
}

/// Reads `iss` and `tid`; a non-string `iss` is `invalid_claim`, a non-object payload `malformed`.
pub(crate) fn peek_issuer(payload: &[u8]) -> Result<IssuerHint, Error> {
    const MEMBERS: scan::Members<2> = scan::Members::new(&["iss", "tid"]);
    let [iss, tid] = MEMBERS
        .scan(payload, &mut scan::Names::default())
        .map_err(|e| Error::malformed(format!("claims are not a JSON object: {e}")))?;
    let hint = IssuerHint {
        iss: match iss {
            None => None,
            Some(Scalar::Str(s)) => Some(s.into_owned()),
            Some(other) => {
                return Err(Error::new(
                    Reason::InvalidClaim,
                    format!("iss is {}, not a string", other.kind()),
                ));
            }
        },
        tid: match tid {
            Some(Scalar::Str(s)) => Some(s.into_owned()),
            _ => None,
        },
    };
    Ok(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iss_and_tid_and_types_iss() {
        let hint = peek_issuer(br#"{"iss":"https://a","tid":"t","sub":"x"}"#).unwrap();
        assert_eq!(hint, IssuerHint { iss: Some("https://a".into()), tid: Some("t".into()) });
        assert_eq!(peek_issuer(b"{}").unwrap(), IssuerHint::default());
        assert_eq!(peek_issuer(br#"{"iss":7}"#).unwrap_err().reason(), Reason::InvalidClaim);
        // A string starting with NUL is a string like any other (no sentinel values).
        let hint = peek_issuer(b"{\"iss\":\"\\u0000number\"}").unwrap();
        assert_eq!(hint.iss.as_deref(), Some("\u{0}number"));
        assert_eq!(peek_issuer(b"[]").unwrap_err().reason(), Reason::Malformed);
    }
}
