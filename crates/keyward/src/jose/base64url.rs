//! Strict, unpadded base64url (RFC 7515 §2): one encoding per byte string.
//!
//! Decoding is `base64-simd` (AVX2/SSSE3/NEON with runtime detection, as used by the AWS SDK for
//! Rust): it is most of the per-token parsing work, and it checks exactly what JOSE requires
//! (URL-safe alphabet, no padding, no length ≡ 1 mod 4, zero trailing bits). It is the one
//! base64 implementation of the library; the `base64` crate's strict engine is its oracle in
//! the property tests below.

/// The input is not canonical unpadded base64url.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotBase64Url;

/// Decodes canonical unpadded base64url, rejecting every other spelling.
pub fn decode(input: &str) -> Result<Vec<u8>, NotBase64Url> {
    base64_simd::URL_SAFE_NO_PAD.decode_to_vec(input).map_err(|_| NotBase64Url)
}

/// Where `input` stops being canonical unpadded base64url, for people: the first character
/// outside the alphabet (padding included) and its position, a length no encoding has, or a
/// last character with bits set past the data. Cold: called only once decoding failed.
#[cold]
pub(crate) fn defect(input: &str) -> String {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if let Some((at, c)) = input.char_indices().find(|(_, c)| !(c.is_ascii() && alphabet(*c as u8))) {
        let hint = match c {
            '=' => " (padding, which JWS forbids)",
            '+' | '/' => " (standard base64, not base64url)",
            _ => "",
        };
        return format!("character {c:?} at position {at} is not base64url{hint}");
    }
    if input.len() % 4 == 1 {
        return format!(
            "{} characters: no base64url encoding has this length (one character too many or too few)",
            input.len()
        );
    }
    match input.chars().last() {
        Some(last) => format!(
            "the last character {last:?} (position {}) sets bits past the end of the data (not the canonical encoding)",
            input.len().saturating_sub(1)
        ),
        None => "the segment is empty".to_owned(),
    }
}

/// An upper bound on the decoded length of `encoded_len` base64url characters.
pub(crate) fn decoded_len_bound(encoded_len: usize) -> usize {
    encoded_len.div_ceil(4) * 3
}

/// Decodes canonical unpadded base64url (exactly what [`decode`] accepts) into the front of
/// `out`, which must hold at least [`decoded_len_bound`] bytes; returns the decoded length.
pub(crate) fn decode_into(input: &str, out: &mut [u8]) -> Result<usize, NotBase64Url> {
    if out.len() < decoded_len_bound(input.len()) {
        return Err(NotBase64Url);
    }
    let out = base64_simd::Out::from_slice(out);
    base64_simd::URL_SAFE_NO_PAD.decode(input.as_bytes(), out).map(|d| d.len()).map_err(|_| NotBase64Url)
}

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::alphabet::URL_SAFE;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

    use super::*;

    #[test]
    fn a_defect_names_its_position() {
        assert_eq!(defect("eyJh*GciOi"), "character '*' at position 4 is not base64url");
        assert!(defect("eyJhbGci=").contains("position 8 is not base64url (padding"));
        assert!(defect("ab+c").contains("position 2") && defect("ab+c").contains("standard base64"));
        assert!(defect("abcde").contains("5 characters"));
        // "QR" would decode to one byte with bits left over in R: not canonical ("QQ" is).
        assert!(base64_simd::URL_SAFE_NO_PAD.decode_to_vec("QR").is_err());
        assert!(defect("QR").contains("last character 'R' (position 1)"));
        assert!(defect("aé").contains("'é' at position 1"));
    }

    /// The oracle: rejects padding, whitespace, `+`/`/`, lengths ≡ 1 (mod 4) and non-zero
    /// trailing bits.
    const STRICT: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    );

    #[test]
    fn encoding_matches_the_oracle() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(encode(&bytes), STRICT.encode(&bytes), "{len} bytes");
        }
    }

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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The SIMD decoder accepts and returns exactly what the `base64` crate's strict engine
        /// does, at lengths that cross its 32-byte blocks, with stray padding, `+`, `/`, dots
        /// and non-ASCII mixed in.
        #[test]
        fn simd_decoder_matches_strict_base64(chars in proptest::collection::vec(proptest::sample::select(vec![
            'A', 'Q', 'g', 'w', 'z', '0', '9', '-', '_', 'A', 'b', 'E', '=', '+', '/', '.', ' ', 'é',
        ]), 0..140)) {
            let input: String = chars.into_iter().collect();
            let oracle = STRICT.decode(&input).map_err(|_| NotBase64Url);
            proptest::prop_assert_eq!(&decode(&input), &oracle, "{}", input);
            let mut out = vec![0; decoded_len_bound(input.len())];
            let into = decode_into(&input, &mut out).map(|n| out[..n].to_vec());
            proptest::prop_assert_eq!(into, oracle, "{}", input);
        }

        /// Canonical encodings of random bytes decode back, and one changed character anywhere
        /// (a block, the tail, the trailing bits) is judged as the `base64` crate judges it.
        #[test]
        fn simd_decoder_round_trips_and_judges_mutations(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), at in proptest::prelude::any::<proptest::sample::Index>(), with in proptest::sample::select(vec!['A', 'B', 'P', 'f', '_', '-', '=', '.', '+', '\n'])) {
            let encoded = encode(&bytes);
            proptest::prop_assert_eq!(decode(&encoded), Ok(bytes));
            if !encoded.is_empty() {
                let mut mutated: Vec<char> = encoded.chars().collect();
                let i = at.index(mutated.len());
                mutated[i] = with;
                let mutated: String = mutated.into_iter().collect();
                proptest::prop_assert_eq!(decode(&mutated), STRICT.decode(&mutated).map_err(|_| NotBase64Url), "{}", mutated);
            }
        }
    }
}
