//! Compact JWS parsing: size bound, exactly three segments, strict base64url.

use std::cell::RefCell;
use std::ops::Range;

use crate::error::{Error, Reason};
use crate::jose::Algorithm;
use crate::jose::base64url;
use crate::jose::buffer::DecodeBuffer;
use crate::jose::header::{Header, ParsedHeader};

/// The default bound on a whole token, checked before anything else.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;

/// A compact JWS whose structure and header were checked, and whose signature was not.
///
/// Nothing in it is trusted yet; it exists so the key source can choose keys by the header
/// (and, for multi-issuer setups, by `iss`) before the signature is checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    fields: HeaderFields,
    signing_input: &'a str,
    /// The header JSON, payload and signature, decoded back to back into one buffer.
    decoded: DecodeBuffer,
    /// Where the header JSON ends and the payload begins in `decoded`.
    header_end: usize,
    /// Where the payload ends and the signature begins in `decoded`.
    payload_end: usize,
    /// True when the header fields came from this thread's recent headers instead of being parsed.
    header_from_cache: bool,
}

impl<'a> UnverifiedToken<'a> {
    /// Parses `token`, rejecting anything larger than `max_len` bytes before looking at it.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, Error> {
        Self::parse_with(token, max_len, false)
    }

    /// [`parse`](Self::parse), taking the header fields from this thread's recent headers when
    /// they hold this exact header text (see [`remember_header`](Self::remember_header)).
    pub(crate) fn parse_cached(token: &'a str, max_len: usize) -> Result<Self, Error> {
        Self::parse_with(token, max_len, true)
    }

    fn parse_with(token: &'a str, max_len: usize, use_recent: bool) -> Result<Self, Error> {
        let [header_b64, payload_b64, signature_b64] = split(token, max_len)?;
        let signing_input = token.get(..header_b64.len() + 1 + payload_b64.len()).unwrap_or_default();
        if header_b64.is_empty() {
            return Err(Error::malformed("header segment is empty"));
        }
        // One buffer for all three segments, taken from this thread's spares.
        let bound = base64url::decoded_len_bound(header_b64.len())
            + base64url::decoded_len_bound(payload_b64.len())
            + base64url::decoded_len_bound(signature_b64.len());
        let mut decoded = DecodeBuffer::with_len(bound);
        let header_end = base64url::decode_into(header_b64, decoded.bytes_mut()).map_err(|_| {
            Error::malformed(format!(
                "header segment is not canonical unpadded base64url: {}",
                base64url::defect(header_b64)
            ))
        })?;
        let payload_end = header_end
            + base64url::decode_into(
                payload_b64,
                decoded.bytes_mut().get_mut(header_end..).unwrap_or_default(),
            )
            .map_err(|_| {
                Error::malformed(format!(
                    "payload segment is not canonical unpadded base64url: {}",
                    base64url::defect(payload_b64)
                ))
            })?;
        let end = payload_end
            + base64url::decode_into(
                signature_b64,
                decoded.bytes_mut().get_mut(payload_end..).unwrap_or_default(),
            )
            .map_err(|_| {
                Error::malformed(format!(
                    "signature segment is not canonical unpadded base64url: {}",
                    base64url::defect(signature_b64)
                ))
            })?;
        decoded.truncate(end);
        let header_json = decoded.bytes().get(..header_end).unwrap_or_default();
        let (fields, header_from_cache) = match use_recent.then(|| recent_header(header_b64)).flatten() {
            Some(hit) => (hit, true),
            None => {
                let header = ParsedHeader::parse(header_json)?;
                let kid = Text::new(header_json, header.kid);
                (HeaderFields { alg: header.alg, kid, typ: Text::new(header_json, header.typ) }, false)
            }
        };
        let token = Self { fields, signing_input, decoded, header_end, payload_end, header_from_cache };
        if end == payload_end {
            return Err(token.context()(Error::new(Reason::InvalidSignature, "signature segment is empty")));
        }
        Ok(token)
    }

    /// Remembers this token's header for this thread: call only once the token has verified,
    /// so forged tokens cannot churn the slots.
    pub(crate) fn remember_header(&self) {
        // Fields holding an unescaped copy of a string do not point into the buffer; such rare
        // headers are parsed every time rather than copied into the cache.
        if self.header_from_cache || !self.fields.points_into_buffer() {
            return;
        }
        let header_b64 = self.signing_input.split_once('.').map_or(self.signing_input, |(h, _)| h);
        // A thread being torn down simply does not remember.
        let _ = RECENT_HEADERS.try_with(|r| {
            if let Ok(mut recent) = r.try_borrow_mut() {
                recent.remember(header_b64, &self.fields);
            }
        });
    }

    /// The checked header.
    pub fn header(&self) -> Header<'_> {
        self.fields.view(self.decoded.bytes())
    }

    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.fields.kid(self.decoded.bytes())
    }

    /// The header's `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.fields.typ(self.decoded.bytes())
    }

    /// The header's `alg`.
    pub fn alg(&self) -> Algorithm {
        self.fields.alg
    }

    /// The decoded header JSON, exactly as received.
    pub fn header_json(&self) -> &[u8] {
        self.decoded.bytes().get(..self.header_end).unwrap_or_default()
    }

    /// The exact received `header.payload` ASCII that the signature covers.
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    /// The decoded payload bytes (claims JSON, unverified).
    pub fn payload(&self) -> &[u8] {
        self.decoded.bytes().get(self.header_end..self.payload_end).unwrap_or_default()
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.decoded.bytes().get(self.payload_end..).unwrap_or_default()
    }

    /// The checked header fields and the decoded buffer, with the ranges of the header JSON and
    /// the payload in it.
    pub(crate) fn into_parts(self) -> (HeaderFields, DecodeBuffer, Range<usize>, Range<usize>) {
        (self.fields, self.decoded, 0..self.header_end, self.header_end..self.payload_end)
    }

    pub(crate) fn context(&self) -> impl Fn(Error) -> Error + '_ {
        move |e| e.with_token_context(self.kid(), Some(self.fields.alg))
    }
}

/// The checked header fields of a token, kept beside its decoded buffer (and, in the recent
/// headers, beside the header text they were parsed from).
#[derive(Clone, Debug)]
pub(crate) struct HeaderFields {
    pub(crate) alg: Algorithm,
    kid: Option<Text>,
    typ: Option<Text>,
}

impl HeaderFields {
    /// The header view, given the decoded buffer these fields were parsed from.
    pub(crate) fn view<'b>(&'b self, decoded: &'b [u8]) -> Header<'b> {
        Header { alg: self.alg, kid: self.kid(decoded), typ: self.typ(decoded) }
    }

    pub(crate) fn kid<'b>(&'b self, decoded: &'b [u8]) -> Option<&'b str> {
        self.kid.as_ref().map(|t| t.get(decoded))
    }

    pub(crate) fn typ<'b>(&'b self, decoded: &'b [u8]) -> Option<&'b str> {
        self.typ.as_ref().map(|t| t.get(decoded))
    }

    /// True when every string is a range of the decoded header (none had escapes): then the
    /// fields fit any token whose header text is the same.
    fn points_into_buffer(&self) -> bool {
        [&self.kid, &self.typ].into_iter().flatten().all(|t| matches!(t, Text::In(_)))
    }
}

/// How many distinct headers each thread remembers: one per signing key in use, with room for
/// a rotation's overlap and a few issuers.
const RECENT_HEADER_SLOTS: usize = 4;

thread_local! {
    static RECENT_HEADERS: RefCell<RecentHeaders> = const { RefCell::new(RecentHeaders::new()) };
}

/// Checked protected headers remembered by their exact base64url text, per thread.
///
/// Every token signed with one key usually carries the same header, byte for byte, so each
/// distinct header need be parsed only once. Parsing is a pure function of that text and a
/// lookup compares the whole text, so a hit yields exactly what parsing would, whichever
/// verifier asks; being per thread, a lookup takes no lock and touches no shared memory. Only
/// headers of tokens that verified are remembered, in a few slots replaced in turn.
struct RecentHeaders {
    slots: [Option<CachedHeader>; RECENT_HEADER_SLOTS],
    next: usize,
}

struct CachedHeader {
    b64: Box<str>,
    /// Fields whose strings all point into the header (see `points_into_buffer`).
    fields: HeaderFields,
}

impl RecentHeaders {
    const fn new() -> Self {
        Self { slots: [const { None }; RECENT_HEADER_SLOTS], next: 0 }
    }

    fn lookup(&self, header_b64: &str) -> Option<HeaderFields> {
        self.slots.iter().flatten().find(|h| *h.b64 == *header_b64).map(|h| h.fields.clone())
    }

    fn remember(&mut self, header_b64: &str, fields: &HeaderFields) {
        if self.slots.iter().flatten().any(|h| *h.b64 == *header_b64) {
            return;
        }
        if let Some(slot) = self.slots.get_mut(self.next % RECENT_HEADER_SLOTS) {
            *slot = Some(CachedHeader { b64: header_b64.into(), fields: fields.clone() });
        }
        self.next = self.next.wrapping_add(1);
    }
}

/// This thread's remembered fields for `header_b64`, if any.
fn recent_header(header_b64: &str) -> Option<HeaderFields> {
    RECENT_HEADERS.try_with(|r| r.try_borrow().ok()?.lookup(header_b64)).ok().flatten()
}

/// A header string: where it sits in the decoded buffer, or (when it had escapes) its value.
#[derive(Clone, Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::base64url::encode;

    fn token(header: &str) -> String {
        format!("{}.{}.{}", encode(header.as_bytes()), encode(b"{}"), encode(b"sig"))
    }

    #[test]
    fn remembered_headers_are_reused_and_equal_what_parsing_gives() {
        let text = token(r#"{"alg":"ES256","kid":"key-1","typ":"at+jwt"}"#);
        let first = UnverifiedToken::parse_cached(&text, 1 << 14).unwrap();
        assert!(!first.header_from_cache);
        first.remember_header();
        let second = UnverifiedToken::parse_cached(&text, 1 << 14).unwrap();
        assert!(second.header_from_cache);
        assert_eq!(second.header(), first.header());
        assert_eq!(second.header(), UnverifiedToken::parse(&text, 1 << 14).unwrap().header());
        assert_eq!(second.kid(), Some("key-1"));
        assert_eq!(second.typ(), Some("at+jwt"));
    }

    #[test]
    fn only_the_exact_header_text_hits() {
        let good = token(r#"{"alg":"ES256","kid":"k"}"#);
        UnverifiedToken::parse_cached(&good, 1 << 14).unwrap().remember_header();
        // One byte away: parsed, and judged, on its own.
        for (header, reason) in [
            (r#"{"alg":"none","kid":"k"}"#, Reason::AlgorithmNotAllowed),
            (r#"{"alg":"ES256","kid":"k","crit":["x"]}"#, Reason::UnsupportedCriticalHeader),
            (r#"{"alg":"ES256","kid":"k","kid":"j"}"#, Reason::Malformed),
        ] {
            let err = UnverifiedToken::parse_cached(&token(header), 1 << 14).unwrap_err();
            assert_eq!(err.reason(), reason, "{header}");
        }
        let other = token(r#"{"alg":"ES256","kid":"j"}"#);
        assert!(!UnverifiedToken::parse_cached(&other, 1 << 14).unwrap().header_from_cache);
        // An empty signature is still an error on a cache hit.
        let unsigned = format!("{}.{}.", encode(br#"{"alg":"ES256","kid":"k"}"#), encode(b"{}"));
        let err = UnverifiedToken::parse_cached(&unsigned, 1 << 14).unwrap_err();
        assert_eq!((err.reason(), err.kid()), (Reason::InvalidSignature, Some("k")));
    }

    #[test]
    fn escaped_headers_are_parsed_every_time_and_slots_turn_over() {
        let escaped = token(r#"{"alg":"ES256","kid":"a\/b"}"#);
        let parsed = UnverifiedToken::parse_cached(&escaped, 1 << 14).unwrap();
        parsed.remember_header();
        let again = UnverifiedToken::parse_cached(&escaped, 1 << 14).unwrap();
        assert!(!again.header_from_cache);
        assert_eq!(again.kid(), Some("a/b"));
        // More distinct headers than slots: every lookup still answers for its own text.
        let kids: Vec<String> = (0..RECENT_HEADER_SLOTS * 3).map(|i| format!("kid-{i}")).collect();
        for kid in &kids {
            let text = token(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#));
            UnverifiedToken::parse_cached(&text, 1 << 14).unwrap().remember_header();
        }
        for kid in &kids {
            let text = token(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#));
            assert_eq!(UnverifiedToken::parse_cached(&text, 1 << 14).unwrap().kid(), Some(kid.as_str()));
        }
        let recent = token(&format!(r#"{{"alg":"RS256","kid":"{}"}}"#, kids[kids.len() - 1]));
        assert!(UnverifiedToken::parse_cached(&recent, 1 << 14).unwrap().header_from_cache);
    }
}
