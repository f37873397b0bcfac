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

/// An upper bound on the decoded length of `encoded_len` base64url characters.
pub(crate) fn decoded_len_bound(encoded_len: usize) -> usize {
    base64::decoded_len_estimate(encoded_len)
}

/// Decodes canonical unpadded base64url (exactly what [`decode`] accepts) into the front of
/// `out`, which must hold at least [`decoded_len_bound`] bytes; returns the decoded length.
pub(crate) fn decode_into(input: &str, out: &mut [u8]) -> Result<usize, NotBase64Url> {
    STRICT.decode_slice(input, out).map_err(|_| NotBase64Url)
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

    #[test]
    fn decode_into_matches_decode() {
        for input in [
            "",
            "Zm8",
            "Zm9v",
            "Zm9vYg",
            "Zm9vYmE",
            "Zm8=",
            "Z",
            "Zm9",
            "Zm+v",
            "_-_-",
            "AB",
            "AQ",
            "AAB",
            "AAE",
            "Zm9vZ",
            "Zm9v====",
            "Zm\u{e9}v",
            "////",
            "____",
        ] {
            let mut out = vec![0xAA; decoded_len_bound(input.len())];
            let got = decode_into(input, &mut out).map(|n| out[..n].to_vec());
            assert_eq!(got, decode(input), "{input:?}");
        }
    }
}
