//! Compact JWS parsing: size bound, exactly three segments, strict base64url.

use std::ops::Range;

use crate::error::{Error, Reason};
use crate::jose::Algorithm;
use crate::jose::base64url;
use crate::jose::header::{Header, ParsedHeader};

/// The default bound on a whole token, checked before anything else.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;

/// A compact JWS whose structure and header were checked, and whose signature was not.
///
/// Nothing in it is trusted yet; it exists so the key source can choose keys by the header
/// (and, for multi-issuer setups, by `iss`) before the signature is checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    alg: Algorithm,
    kid: Option<Text>,
    typ: Option<Text>,
    signing_input: &'a str,
    /// The header JSON, payload and signature, decoded back to back into one buffer.
    decoded: Vec<u8>,
    /// Where the header JSON ends and the payload begins in `decoded`.
    header_end: usize,
    /// Where the payload ends and the signature begins in `decoded`.
    payload_end: usize,
}

impl<'a> UnverifiedToken<'a> {
    /// Parses `token`, rejecting anything larger than `max_len` bytes before looking at it.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, Error> {
        let [header_b64, payload_b64, signature_b64] = split(token, max_len)?;
        let signing_input = token.get(..header_b64.len() + 1 + payload_b64.len()).unwrap_or_default();
        if header_b64.is_empty() {
            return Err(Error::malformed("header segment is empty"));
        }
        // One buffer for all three segments: one allocation instead of three.
        let bound = base64url::decoded_len_bound(header_b64.len())
            + base64url::decoded_len_bound(payload_b64.len())
            + base64url::decoded_len_bound(signature_b64.len());
        let mut decoded = vec![0u8; bound];
        let header_end = base64url::decode_into(header_b64, &mut decoded)
            .map_err(|_| Error::malformed("header segment is not canonical unpadded base64url"))?;
        let payload_end = header_end
            + base64url::decode_into(payload_b64, decoded.get_mut(header_end..).unwrap_or_default())
                .map_err(|_| Error::malformed("payload segment is not canonical unpadded base64url"))?;
        let end = payload_end
            + base64url::decode_into(signature_b64, decoded.get_mut(payload_end..).unwrap_or_default())
                .map_err(|_| Error::malformed("signature segment is not canonical unpadded base64url"))?;
        decoded.truncate(end);
        let header_json = decoded.get(..header_end).unwrap_or_default();
        let header = ParsedHeader::parse(header_json)?;
        if end == payload_end {
            return Err(Error::new(Reason::InvalidSignature, "signature segment is empty")
                .with_token_context(header.kid.as_deref(), Some(header.alg)));
        }
        let (alg, kid, typ) =
            (header.alg, Text::new(header_json, header.kid), Text::new(header_json, header.typ));
        Ok(Self { alg, kid, typ, signing_input, decoded, header_end, payload_end })
    }

    /// The checked header.
    pub fn header(&self) -> Header<'_> {
        Header { alg: self.alg, kid: self.kid(), typ: self.typ() }
    }

    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_ref().map(|t| t.get(&self.decoded))
    }

    /// The header's `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_ref().map(|t| t.get(&self.decoded))
    }

    /// The header's `alg`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The decoded header JSON, exactly as received.
    pub fn header_json(&self) -> &[u8] {
        self.decoded.get(..self.header_end).unwrap_or_default()
    }

    /// The exact received `header.payload` ASCII that the signature covers.
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    /// The decoded payload bytes (claims JSON, unverified).
    pub fn payload(&self) -> &[u8] {
        self.decoded.get(self.header_end..self.payload_end).unwrap_or_default()
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.decoded.get(self.payload_end..).unwrap_or_default()
    }

    /// The checked header fields and the decoded buffer, with the ranges of the header JSON and
    /// the payload in it.
    pub(crate) fn into_parts(self) -> (HeaderFields, Vec<u8>, Range<usize>, Range<usize>) {
        let fields = HeaderFields { alg: self.alg, kid: self.kid, typ: self.typ };
        (fields, self.decoded, 0..self.header_end, self.header_end..self.payload_end)
    }

    pub(crate) fn context(&self) -> impl Fn(Error) -> Error + '_ {
        move |e| e.with_token_context(self.kid(), Some(self.alg))
    }
}

/// The checked header fields of a token, kept beside its decoded buffer.
#[derive(Debug)]
pub(crate) struct HeaderFields {
    pub(crate) alg: Algorithm,
    kid: Option<Text>,
    typ: Option<Text>,
}

impl HeaderFields {
    /// The header view, given the decoded buffer these fields were parsed from.
    pub(crate) fn view<'b>(&'b self, decoded: &'b [u8]) -> Header<'b> {
        Header {
            alg: self.alg,
            kid: self.kid.as_ref().map(|t| t.get(decoded)),
            typ: self.typ.as_ref().map(|t| t.get(decoded)),
        }
    }
}

/// A header string: where it sits in the decoded buffer, or (when it had escapes) its value.
#[derive(Debug)]
enum Text {
    In(Range<usize>),
    Owned(Box<str>),
}

impl Text {
    /// Locates `value`, which the scanner borrowed from `header_json` unless it had escapes.
    fn new(header_json: &[u8], value: Option<std::borrow::Cow<'_, str>>) -> Option<Self> {
        match value? {
            std::borrow::Cow::Borrowed(s) => {
                // A borrowed string is a subslice of the header JSON: its offset is the distance
                // between the two addresses.
                let start = (s.as_ptr() as usize).wrapping_sub(header_json.as_ptr() as usize);
                let range = start..start + s.len();
                Some(if header_json.get(range.clone()) == Some(s.as_bytes()) {
                    Self::In(range)
                } else {
                    Self::Owned(s.into())
                })
            }
            std::borrow::Cow::Owned(s) => Some(Self::Owned(s.into_boxed_str())),
        }
    }

    fn get<'b>(&'b self, decoded: &'b [u8]) -> &'b str {
        match self {
            // The range was cut from valid UTF-8 at string boundaries.
            Self::In(range) => {
                decoded.get(range.clone()).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default()
            }
            Self::Owned(s) => s,
        }
    }
}

/// The size bound, then exactly three segments: the structural checks every reader of a token
/// (verification and `danger::decode_unverified` alike) applies before decoding anything.
pub(crate) fn split(token: &str, max_len: usize) -> Result<[&str; 3], Error> {
    if token.len() > max_len {
        return Err(Error::new(
            Reason::TokenTooLarge,
            format!("token is {} bytes, above the {max_len}-byte limit", token.len()),
        ));
    }
    if token.is_empty() {
        return Err(Error::malformed("token is empty"));
    }
    if token.starts_with('{') {
        return Err(Error::malformed(
            "token is JSON: only the compact serialization (header.payload.signature) is accepted",
        ));
    }
    // Exactly two dots, found with SIMD searches; counting all of them is only for the error
    // message.
    let bytes = token.as_bytes();
    let first = memchr::memchr(b'.', bytes).ok_or_else(|| segments_error(token))?;
    let second = first
        + 1
        + memchr::memchr(b'.', bytes.get(first + 1..).unwrap_or_default())
            .ok_or_else(|| segments_error(token))?;
    if memchr::memchr(b'.', bytes.get(second + 1..).unwrap_or_default()).is_some() {
        return Err(segments_error(token));
    }
    // The dots are ASCII, so these are character boundaries.
    let header = token.get(..first).unwrap_or_default();
    let payload = token.get(first + 1..second).unwrap_or_default();
    let signature = token.get(second + 1..).unwrap_or_default();
    Ok([header, payload, signature])
}

fn segments_error(token: &str) -> Error {
    let dots = token.bytes().filter(|&b| b == b'.').count();
    Error::malformed(if dots == 4 {
        "token has 5 segments: JWE (encrypted tokens) is not supported".to_owned()
    } else {
        format!("token has {} segments, a signed JWT has exactly 3", dots + 1)
    })
}
