//! Strict, unpadded base64url (RFC 7515 §2): one encoding per byte string.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Rejects padding, whitespace, `+`/`/`, lengths ≡ 1 (mod 4) and non-zero trailing bits.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The input is not canonical unpadded base64url.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotBase64Url;

/// Decodes canonical unpadded base64url, rejecting every other spelling.
pub fn decode(input: &str) -> Result<Vec<u8>, NotBase64Url> {
    STRICT.decode(input).map_err(|_| NotBase64Url)
}

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_canonical_forms() {
        assert_eq!(decode("Zm9v").unwrap(), b"foo");
        assert_eq!(decode("Zm8").unwrap(), b"fo");
        for bad in ["Zm8=", "Zm9v=", "Z", "Zm8 ", " Zm8", "Zm+v", "Zm/v", "Zm9", "Zm\n8", "Zm%3D"] {
            // "Zm9" has non-zero trailing bits ('9' = 61 -> low 2 bits 01).
            assert!(decode(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(decode("").unwrap(), b"");
    }
}
