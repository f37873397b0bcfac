//! A strict, allocation-light JSON scanner for the verification hot path.
//!
//! It accepts exactly RFC 8259 JSON (as serde_json does: no trailing commas, no comments, no
//! lone surrogates, no raw control characters in strings, numbers out of the f64 range are
//! errors), rejects duplicate member names at every depth, bounds nesting at
//! [`MAX_DEPTH`], and hands the caller only the top-level members it asked for. Everything else
//! is validated and skipped without being built. `json::parse_object` (serde_json) is its oracle
//! in the property tests.

use std::borrow::Cow;

use crate::jose::json::Scalar;

/// The deepest nesting accepted (serde_json's default recursion limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// Member names kept inline per object before spilling to the heap.
const INLINE_NAMES: usize = 16;

/// Scans a JSON object, calling `on_member` with the index into `wanted` of each top-level
/// member whose name is listed there; records every top-level member name in `names` (for
/// "required claim" checks), which the caller owns so nothing large is moved.
pub(crate) fn scan_object<'a>(
    input: &'a [u8],
    wanted: &Wanted<'_>,
    names: &mut Names<'a>,
    mut on_member: impl FnMut(usize, Scalar<'a>),
) -> Result<(), String> {
    scan_object_dyn(input, wanted, names, &mut on_member)
}

/// One compiled copy for every caller: the hot loop stays small enough to share the
/// instruction cache with the signature check that runs between two tokens.
fn scan_object_dyn<'a>(
    input: &'a [u8],
    wanted: &Wanted<'_>,
    names: &mut Names<'a>,
    on_member: &mut dyn FnMut(usize, Scalar<'a>),
) -> Result<(), String> {
    let text = std::str::from_utf8(input).map_err(|_| "not valid UTF-8".to_owned())?;
    if scan_flat(input, text, wanted, names, on_member).is_some() {
        return Ok(());
    }
    // Not the common shape (or not valid at all): the general scanner decides, from scratch.
    *names = Names::default();
    scan_general(input, text, wanted, names, on_member)
}

/// The general scanner: any JSON, with a precise error for invalid documents.
#[inline(never)]
fn scan_general<'a>(
    input: &'a [u8],
    text: &'a str,
    wanted: &Wanted<'_>,
    names: &mut Names<'a>,
    on_member: &mut dyn FnMut(usize, Scalar<'a>),
) -> Result<(), String> {
    let mut s = Scanner { text, bytes: input, pos: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(s.error("expected a JSON object"));
    }
    s.pos += 1;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.skip_ws();
            let (name, key) = s.name()?;
            let index = wanted.index_of(&name, key);
            names.insert(name, key).map_err(|dup| s.error(&format!("duplicate member {dup:?}")))?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            match index {
                Some(index) => {
                    let value = s.scalar(1)?;
                    on_member(index, value);
                }
                None => s.skip_value(1)?,
            }
            s.skip_ws();
            match s.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(s.error("expected ',' or '}'")),
            }
        }
    }
    s.skip_ws();
    if s.pos != s.bytes.len() {
        return Err(s.error("trailing characters"));
    }
    Ok(())
}

/// The shape nearly every JWT header and claims set has, scanned without error plumbing: one
/// object, no whitespace, no escapes, and values that are plain strings, non-negative
/// integers, `true`/`false`/`null` or arrays of plain strings.
///
/// `None` means "not this shape" (which includes every invalid document): the caller then
/// resets `names` and lets the general scanner decide, and members already handed out are
/// handed out again. `Some` means the document is valid and every member was handed out
/// exactly as the general scanner would (the property tests hold the two to that).
#[inline(always)]
fn scan_flat<'a>(
    bytes: &'a [u8],
    text: &'a str,
    wanted: &Wanted<'_>,
    names: &mut Names<'a>,
    on_member: &mut dyn FnMut(usize, Scalar<'a>),
) -> Option<()> {
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut pos = 1;
    if bytes.get(pos) == Some(&b'}') {
        return (pos + 1 == bytes.len()).then_some(());
    }
    loop {
        // A member name, then ':'.
        if bytes.get(pos) != Some(&b'"') {
            return None;
        }
        let start = pos + 1;
        let end = plain_run_from(bytes, start);
        if bytes.get(end) != Some(&b'"') || bytes.get(end + 1) != Some(&b':') {
            return None;
        }
        let name = text.get(start..end)?;
        let key = name_key_at(bytes, start, end - start);
        let index = wanted.index_of(name, key);
        names.insert(Cow::Borrowed(name), key).ok()?;
        pos = end + 2;

        // Its value.
        let first = *bytes.get(pos)?;
        let value = match first {
            b'"' => {
                let (value, after) = flat_string(bytes, text, pos)?;
                pos = after;
                Scalar::Str(Cow::Borrowed(value))
            }
            b'0' => {
                pos += 1;
                Scalar::UInt(0)
            }
            b'1'..=b'9' => {
                let mut value = u64::from(first - b'0');
                pos += 1;
                while let Some(&d @ b'0'..=b'9') = bytes.get(pos) {
                    value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    pos += 1;
                }
                Scalar::UInt(value)
            }
            b't' | b'f' | b'n' => {
                let (word, value): (&[u8], _) = match first {
                    b't' => (b"true", Scalar::Bool(true)),
                    b'f' => (b"false", Scalar::Bool(false)),
                    _ => (b"null", Scalar::Null),
                };
                if bytes.get(pos..pos + word.len()) != Some(word) {
                    return None;
                }
                pos += word.len();
                value
            }
            b'[' => {
                let mut list = Vec::new();
                pos += 1;
                if bytes.get(pos) == Some(&b']') {
                    pos += 1;
                } else {
                    loop {
                        let (item, after) = flat_string(bytes, text, pos)?;
                        if index.is_some() {
                            list.push(Cow::Borrowed(item));
                        }
                        pos = after + 1;
                        match bytes.get(after) {
                            Some(b',') => {}
                            Some(b']') => break,
                            _ => return None,
                        }
                    }
                }
                Scalar::StrArray(list)
            }
            _ => return None,
        };
        // Numbers and literals end here too: a '.', 'e' or stray byte fails this test.
        match bytes.get(pos) {
            Some(b',') => {}
            Some(b'}') => {
                if let Some(index) = index {
                    on_member(index, value);
                }
                return (pos + 1 == bytes.len()).then_some(());
            }
            _ => return None,
        }
        if let Some(index) = index {
            on_member(index, value);
        }
        pos += 1;
    }
}

/// A plain string (no escapes, no control characters) whose opening quote is at `pos`: its
/// contents and the position after its closing quote.
#[inline(always)]
fn flat_string<'a>(bytes: &[u8], text: &'a str, pos: usize) -> Option<(&'a str, usize)> {
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    let end = plain_run_from(bytes, pos + 1);
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    // Both ends sit next to ASCII quotes, so they are character boundaries.
    Some((text.get(pos + 1..end)?, end + 1))
}

/// The members one object's reader wants, by name, in a fixed order: [`Members::scan`] returns
/// their values in that order, so a reader destructures `let [alg, kid, ..] = ...` and the
/// compiler checks that it bound one variable per name (no index matched by hand).
pub(crate) struct Members<const N: usize> {
    wanted: Wanted<'static>,
}

impl<const N: usize> Members<N> {
    pub(crate) const fn new(names: &'static [&'static str; N]) -> Self {
        Self { wanted: Wanted::new(names) }
    }

    /// Scans `input` strictly (see [`scan_object`]) and returns the wanted members' values.
    #[inline(always)]
    pub(crate) fn scan<'a>(
        &self,
        input: &'a [u8],
        names: &mut Names<'a>,
    ) -> Result<[Option<Scalar<'a>>; N], String> {
        let mut found: [Option<Scalar<'a>>; N] = [const { None }; N];
        scan_object(input, &self.wanted, names, |index, value| {
            if let Some(slot) = found.get_mut(index) {
                *slot = Some(value);
            }
        })?;
        Ok(found)
    }
}

/// The member names a scan hands out, with their keys computed once (at compile time for the
/// fixed header and claim lists); names past the first [`INLINE_WANTED`] are compared as strings.
#[derive(Debug)]
pub(crate) struct Wanted<'w> {
    names: &'w [&'w str],
    keys: [u64; INLINE_WANTED],
}

impl<'w> Wanted<'w> {
    pub(crate) const fn new(names: &'w [&'w str]) -> Self {
        let mut keys = [0u64; INLINE_WANTED];
        let mut rest = names;
        let mut i = 0;
        while let Some((name, tail)) = rest.split_first() {
            if let Some((_, [slot, ..])) = keys.split_at_mut_checked(i) {
                *slot = name_key(name.as_bytes());
            }
            rest = tail;
            i += 1;
        }
        Self { names, keys }
    }

    /// The index of `name` (whose key is `key`) in the list, if it is there.
    #[inline(always)]
    fn index_of(&self, name: &str, key: u64) -> Option<usize> {
        let inline = self.keys.get(..self.names.len().min(INLINE_WANTED)).unwrap_or_default();
        let found = if name.len() <= KEY_BYTES {
            inline.iter().position(|&k| k == key)
        } else {
            inline.iter().zip(self.names).position(|(&k, w)| k == key && *w == name)
        };
        found.or_else(|| {
            let rest = self.names.get(INLINE_WANTED..)?;
            rest.iter().position(|w| *w == name).map(|i| i + INLINE_WANTED)
        })
    }
}

/// Wanted names whose keys are precomputed; later ones are compared as strings.
const INLINE_WANTED: usize = 8;

/// How many leading bytes of a name its key holds.
const KEY_BYTES: usize = 7;

/// A name's length (top byte, saturating) and first [`KEY_BYTES`] bytes packed into one word:
/// different keys mean different names, and for names shorter than [`KEY_BYTES`] + 1 bytes equal
/// keys mean equal names, so most comparisons are one integer compare.
const fn name_key(name: &[u8]) -> u64 {
    let mut key = (if name.len() > 0xFF { 0xFF } else { name.len() as u64 }) << 56;
    let mut rest = name;
    let mut i = 0;
    while let Some((&b, tail)) = rest.split_first() {
        if i == KEY_BYTES {
            break;
        }
        key |= (b as u64) << (8 * i);
        rest = tail;
        i += 1;
    }
    key
}

/// [`name_key`] of the `len` bytes at `start`, read as one word when eight bytes are there
/// (they are, except at the very end of a document).
#[inline(always)]
fn name_key_at(bytes: &[u8], start: usize, len: usize) -> u64 {
    match bytes.get(start..start + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        Some(word) => {
            let kept = len.min(KEY_BYTES);
            let mask = (1u64 << (8 * kept)) - 1;
            (u64::try_from(len).unwrap_or(u64::MAX).min(0xFF) << 56) | (u64::from_le_bytes(word) & mask)
        }
        None => name_key(bytes.get(start..start + len).unwrap_or_default()),
    }
}

/// The member names of one object, with duplicate detection.
///
/// Names borrowed from the input are kept inline with their keys; names that had escapes, and
/// names past the first [`INLINE_NAMES`], are kept in `spill`.
#[derive(Default)]
pub(crate) struct Names<'a> {
    keys: [u64; INLINE_NAMES],
    inline: [&'a str; INLINE_NAMES],
    len: usize,
    spill: Vec<Cow<'a, str>>,
}

impl<'a> Names<'a> {
    #[inline(never)]
    fn insert(&mut self, name: Cow<'a, str>, key: u64) -> Result<(), Cow<'a, str>> {
        if self.find(&name, key) {
            return Err(name);
        }
        match (&name, self.keys.get_mut(self.len), self.inline.get_mut(self.len)) {
            (Cow::Borrowed(borrowed), Some(k), Some(slot)) => {
                *k = key;
                *slot = *borrowed;
                self.len += 1;
            }
            _ => self.spill.push(name),
        }
        Ok(())
    }

    #[inline(always)]
    fn find(&self, name: &str, key: u64) -> bool {
        let keys = self.keys.get(..self.len).unwrap_or_default();
        let inline = if name.len() <= KEY_BYTES {
            // Equal keys mean equal names here: one integer compare per name.
            keys.contains(&key)
        } else {
            keys.iter().zip(&self.inline).any(|(&k, n)| k == key && *n == name)
        };
        inline || (!self.spill.is_empty() && self.spill.iter().any(|n| n == name))
    }

    /// True when the object had a member with this name.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.find(name, name_key(name.as_bytes()))
    }
}

/// The end of the run of plain string bytes starting at `start`: the index of the first `"`,
/// `\\` or control character at or after `start`, or `bytes.len()`; eight bytes at a time.
///
/// Kept out of line on purpose: one copy of the loop instead of one per caller measurably
/// reduces the instruction-cache lines a verification displaces from the signature check.
#[inline(never)]
fn plain_run_from(bytes: &[u8], start: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = start;
    while let Some(word) = bytes.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let w = u64::from_le_bytes(word);
        // The high bit of a byte is set in `hits` for a byte below 0x20, equal to '"' or equal to
        // '\\'; borrows only run towards higher bytes, so the lowest flagged byte is exact.
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = ((w.wrapping_sub(ONES * 0x20) & !w)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGHS;
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len())
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    #[cold]
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        if self.next() == Some(want) { Ok(()) } else { Err(self.expected(want)) }
    }

    #[cold]
    #[inline(never)]
    fn expected(&self, want: u8) -> String {
        self.error(&format!("expected '{}'", want as char))
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// A string at the cursor: borrowed when it has no escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        // Fast path: an opening quote, a run of plain bytes, a closing quote.
        if self.peek() == Some(b'"') {
            let start = self.pos + 1;
            let end = plain_run_from(self.bytes, start);
            // Quotes are ASCII in valid UTF-8, so both ends are character boundaries.
            if self.bytes.get(end) == Some(&b'"')
                && let Some(text) = self.text.get(start..end)
            {
                self.pos = end + 1;
                return Ok(Cow::Borrowed(text));
            }
        }
        self.string_slow()
    }

    /// Everything [`string`](Self::string)'s fast path leaves: escapes and errors.
    #[cold]
    #[inline(never)]
    fn string_slow(&mut self) -> Result<Cow<'a, str>, String> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = plain_run_from(self.bytes, start);
        self.pos = end;
        match self.next() {
            Some(b'"') => Ok(Cow::Borrowed(self.text.get(start..end).unwrap_or_default())),
            Some(b'\\') => {
                self.pos = end;
                let prefix = self.text.get(start..end).unwrap_or_default();
                self.escaped_string(prefix).map(Cow::Owned)
            }
            Some(_) => Err(self.error("control character in string")),
            None => Err(self.error("unterminated string")),
        }
    }

    /// A member name at the cursor, with its [`name_key`].
    #[inline(always)]
    fn name(&mut self) -> Result<(Cow<'a, str>, u64), String> {
        let start = self.pos + 1;
        let name = self.string()?;
        let key = match &name {
            Cow::Borrowed(n) => name_key_at(self.bytes, start, n.len()),
            Cow::Owned(n) => name_key(n.as_bytes()),
        };
        Ok((name, key))
    }

    fn escaped_string(&mut self, prefix: &str) -> Result<String, String> {
        let mut out = String::from(prefix);
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.error("invalid escape")),
                    };
                    out.push(c);
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.error("short \\u escape"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\u escape"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                    return Err(self.error("lone leading surrogate in \\u escape"));
                }
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("invalid trailing surrogate in \\u escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate in \\u escape")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    /// A number at the cursor, classified like serde_json does.
    fn number(&mut self) -> Result<Scalar<'a>, String> {
        // Fast path for the common case (NumericDates): a plain non-negative integer that fits.
        let start = self.pos;
        if let Some(first @ b'1'..=b'9') = self.peek() {
            let mut value = u64::from(first - b'0');
            let mut at = start + 1;
            let mut fits = true;
            while let Some(&d @ b'0'..=b'9') = self.bytes.get(at) {
                match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
                    Some(v) => value = v,
                    None => fits = false,
                }
                at += 1;
            }
            if fits && !matches!(self.bytes.get(at), Some(b'.' | b'e' | b'E')) {
                self.pos = at;
                return Ok(Scalar::UInt(value));
            }
        }
        self.number_general(start)
    }

    /// Any number, from `start`, by the JSON grammar and Rust's correctly rounded parsers.
    #[inline(never)]
    fn number_general(&mut self, start: usize) -> Result<Scalar<'a>, String> {
        self.pos = start;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("invalid number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if !matches!(self.next(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.next(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        if integer {
            if negative {
                if let Ok(v) = text.parse::<i64>() {
                    return Ok(if v == 0 { Scalar::UInt(0) } else { Scalar::Int(v) });
                }
            } else if let Ok(v) = text.parse::<u64>() {
                return Ok(Scalar::UInt(v));
            }
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Scalar::Float(v)),
            _ => Err(self.error("number out of range")),
        }
    }

    /// A value kept as a [`Scalar`] (containers are validated; string arrays are kept).
    fn scalar(&mut self, depth: usize) -> Result<Scalar<'a>, String> {
        match self.peek() {
            Some(b'"') => Ok(Scalar::Str(self.string()?)),
            Some(b'[') => {
                let mut strings = Vec::new();
                let mut all_strings = true;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Scalar::StrArray(strings));
                }
                loop {
                    self.skip_ws();
                    if all_strings && self.peek() == Some(b'"') {
                        strings.push(self.string()?);
                    } else {
                        all_strings = false;
                        self.skip_value(depth + 1)?;
                    }
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b']') => break,
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
                Ok(if all_strings { Scalar::StrArray(strings) } else { Scalar::Array })
            }
            Some(b'{') => {
                self.skip_value(depth)?;
                Ok(Scalar::Object)
            }
            Some(b't') => self.literal(b"true").map(|()| Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Scalar::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Scalar::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Validates and skips one value; objects are checked for duplicate names.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'[') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(()),
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut names = Names::default();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    let (name, key) = self.name()?;
                    names
                        .insert(name, key)
                        .map_err(|dup| self.error(&format!("duplicate member {dup:?}")))?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(()),
                        _ => return Err(self.error("expected ',' or '}'")),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => Err(self.error("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::json;

    fn accepts(input: &str) -> bool {
        scan_object(input.as_bytes(), &Wanted::new(&[]), &mut Names::default(), |_, _| {}).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let cases = [
            r#"{}"#,
            r#" { "a" : 1 } "#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e5}"#,
            r#"{"a":1E+5}"#,
            r#"{"a":1e}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-1e400}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\ud83d"}"#,
            r#"{"a":"\ude00"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":tru}"#,
            r#"{"a":true}"#,
            r#"{"a":nul}"#,
            r#"{"a":[1,2,]}"#,
            r#"{"a":[1,[2,{"b":3}]]}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a":1} x"#,
            r#"[1]"#,
            r#"{"a":1}{"#,
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            "{\"a\":\"é\"}",
            "{\"a\":+1}",
        ];
        for case in cases {
            assert_eq!(accepts(case), json::parse_object(case.as_bytes()).is_ok(), "{case}");
        }
        let deep_ok = format!("{{\"a\":{}{}}}", "[".repeat(120), "]".repeat(120));
        assert_eq!(accepts(&deep_ok), json::parse_object(deep_ok.as_bytes()).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(!accepts(&deep));
        assert!(json::parse_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn extracts_wanted_members() {
        let mut seen = Vec::new();
        let wanted = ["iss", "exp", "aud", "n", "o", "big"];
        let mut names = Names::default();
        scan_object(
            br#"{"iss":"a\/b","exp":1.5,"aud":["x","y"],"n":-3,"o":{"k":[1]},"big":18446744073709551615}"#,
            &Wanted::new(&wanted),
            &mut names,
            |index, value| seen.push((wanted[index].to_owned(), value)),
        )
        .unwrap();
        assert!(names.contains("o") && !names.contains("k"));
        assert_eq!(seen[0].1, Scalar::Str(Cow::Owned("a/b".into())));
        assert_eq!(seen[1].1, Scalar::Float(1.5));
        assert_eq!(seen[2].1, Scalar::StrArray(vec![Cow::Borrowed("x"), Cow::Borrowed("y")]));
        assert_eq!(seen[3].1, Scalar::Int(-3));
        assert_eq!(seen[4].1, Scalar::Object);
        assert_eq!(seen[5].1, Scalar::UInt(u64::MAX));
    }

    #[test]
    fn flat_path_takes_the_common_shape_and_leaves_the_rest() {
        let wanted = Wanted::new(&["iss", "exp", "aud"]);
        let flat = |doc: &str| {
            scan_flat(doc.as_bytes(), doc, &wanted, &mut Names::default(), &mut |_, _| {}).is_some()
        };
        assert!(flat(r#"{"iss":"https://idp","exp":1767225600,"aud":["a","b"],"ok":true,"n":null}"#));
        assert!(flat("{}"));
        for other in [
            r#"{"iss": "https://idp"}"#,
            r#"{"iss":"a\/b"}"#,
            r#"{"exp":1.5}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":01}"#,
            r#"{"o":{"k":1}}"#,
            r#"{"aud":["a",1]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1} "#,
            "{\"a\":\"\t\"}",
        ] {
            assert!(!flat(other), "{other}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The scanner and serde_json (the oracle) accept exactly the same documents.
        #[test]
        fn accepts_what_serde_json_accepts(parts in proptest::collection::vec(proptest::sample::select(vec![
            "{", "}", "[", "]", ",", ":", " ", "\"a\"", "\"b\"", "\"\\u0061\"", "\"x\\ny\"", "\"\\ud83d\"",
            "1", "-0", "01", "1.5", "1e3", "1e400", "-", ".", "true", "false", "null", "nul", "\"\t\"", "\"é\"",
        ]), 0..24)) {
            let doc = format!("{{{}", parts.concat());
            let ours = scan_object(doc.as_bytes(), &Wanted::new(&["a", "b"]), &mut Names::default(), |_, _| {}).is_ok();
            let oracle = json::parse_object(doc.as_bytes()).is_ok();
            proptest::prop_assert_eq!(ours, oracle, "{}", doc);
        }

        /// The word-at-a-time string scan stops exactly where a byte-at-a-time scan does.
        #[test]
        fn plain_run_matches_bytewise(bytes in proptest::collection::vec(proptest::sample::select(vec![
            b'a', b'a', b'a', b'a', b'a', b'a', 0, 0x1f, 0x20, 0x21, b'"', 0x23, 0x5b, b'\\', 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ]), 0..40), start in 0usize..40) {
            let start = start.min(bytes.len());
            let naive = start + bytes[start..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(bytes.len() - start);
            proptest::prop_assert_eq!(plain_run_from(&bytes, start), naive);
        }

        /// The one-word key read from the buffer equals the key built byte by byte, wherever the
        /// name sits (including the last bytes of the document, where no whole word is left).
        #[test]
        fn name_key_at_matches_name_key(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24), start in 0usize..24, len in 0usize..24) {
            if start + len <= bytes.len() {
                proptest::prop_assert_eq!(name_key_at(&bytes, start, len), name_key(&bytes[start..start + len]));
            }
        }

        /// Duplicate detection and member selection agree with plain string comparisons, for names
        /// sharing long prefixes, more names than fit inline and more wanted names than have keys.
        #[test]
        fn names_and_wanted_match_string_compare(names in proptest::collection::vec("[ab]{0,10}", 0..24)) {
            let wanted = ["", "a", "ab", "aaaaaaa", "aaaaaaab", "aaaaaaaa", "abababab", "b", "bbbbbbbbbb", "aaaaaaaaab"];
            let members: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("\"{n}\":{i}")).collect();
            let doc = format!("{{{}}}", members.join(","));
            let mut got = Vec::new();
            let mut found = Names::default();
            let result = scan_object(doc.as_bytes(), &Wanted::new(&wanted), &mut found, |index, _| got.push(wanted[index].to_owned()));
            let distinct = names.iter().collect::<std::collections::HashSet<_>>().len() == names.len();
            proptest::prop_assert_eq!(result.is_ok(), distinct, "{}", doc);
            if result.is_ok() {
                let expected: Vec<String> = names.iter().filter(|n| wanted.contains(&n.as_str())).cloned().collect();
                proptest::prop_assert_eq!(got, expected);
                for n in &names {
                    proptest::prop_assert!(found.contains(n));
                }
                for w in wanted {
                    proptest::prop_assert_eq!(found.contains(w), names.iter().any(|n| n == w));
                }
            }
        }

        /// Wherever the flat fast path answers, it answers exactly as the general scanner does:
        /// same members handed out, same names recorded. Documents mix its shape with every
        /// way out of it (escapes, whitespace, floats, negatives, leading zeros, nesting,
        /// duplicates, mixed arrays, trailing bytes).
        #[test]
        fn flat_path_agrees_with_the_general_scanner(members in proptest::collection::vec((
            proptest::sample::select(vec!["a", "b", "iss", "exp", "aud", "long_name_x", "long_name_y", "a\\u0062"]),
            proptest::sample::select(vec![
                r#""x""#, r#""""#, r#""a\/b""#, r#""é""#, "0", "01", "7", "-1", "1.5", "1e3",
                "18446744073709551615", "18446744073709551616", "true", "false", "null", "nul",
                r#"["p","q"]"#, "[]", r#"["p",1]"#, r#"{"k":1}"#, " 1", "[ ]", "\"\t\"",
            ]),
        ), 0..8), tail in proptest::sample::select(vec!["", " ", "x", "}"])) {
            let body: Vec<String> = members.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect();
            let doc = format!("{{{}}}{tail}", body.join(","));
            let wanted = Wanted::new(&["a", "iss", "exp", "aud", "long_name_x"]);
            let text = std::str::from_utf8(doc.as_bytes()).unwrap();
            let mut flat_names = Names::default();
            let mut flat_seen = Vec::new();
            let flat = scan_flat(doc.as_bytes(), text, &wanted, &mut flat_names, &mut |i, v| flat_seen.push((i, v)));
            if flat.is_some() {
                let mut names = Names::default();
                let mut seen = Vec::new();
                let general = scan_general(doc.as_bytes(), text, &wanted, &mut names, &mut |i, v| seen.push((i, v)));
                proptest::prop_assert!(general.is_ok(), "{}", doc);
                proptest::prop_assert_eq!(&flat_seen, &seen, "{}", doc);
                for (n, _) in &members {
                    proptest::prop_assert_eq!(flat_names.contains(n), names.contains(n));
                }
            }
        }

        /// Well-formed objects: the members handed out equal what serde_json reads.
        #[test]
        fn extracted_values_match_serde_json(value in proptest::prelude::any::<i64>(), text in "[a-z\\\\\"/é]{0,8}", f in -1e300f64..1e300) {
            let doc = serde_json::json!({"a": value, "b": text, "c": f, "d": [&text, "z"]}).to_string();
            let oracle = json::parse_object(doc.as_bytes()).unwrap();
            // Every wanted member is reported, and every report matches serde_json. The last
            // pass reports them all in document order (when the flat path steps aside midway,
            // the members it already handed out are handed out again, as `scan_flat` says).
            let wanted = ["a", "b", "c", "d"];
            let mut reported = Vec::new();
            let mut mismatches = Vec::new();
            scan_object(doc.as_bytes(), &Wanted::new(&wanted), &mut Names::default(), |index, v| {
                let name = wanted[index];
                reported.push(name);
                let agrees = match (&v, oracle[name].as_f64()) {
                    // serde_json's default float parser may be one ULP off; ours is correctly rounded.
                    (Scalar::Float(ours), Some(theirs)) => (ours - theirs).abs() <= theirs.abs() * 1e-15,
                    _ => as_json(&v) == oracle[name],
                };
                if !agrees {
                    mismatches.push(name);
                }
            })
            .unwrap();
            proptest::prop_assert!(reported.ends_with(&wanted), "reported {:?} for {}", reported, doc);
            proptest::prop_assert!(mismatches.is_empty(), "{:?} differ in {}", mismatches, doc);
        }
    }

    fn as_json(v: &Scalar<'_>) -> serde_json::Value {
        match v {
            Scalar::UInt(u) => serde_json::json!(u),
            Scalar::Int(i) => serde_json::json!(i),
            Scalar::Float(f) => serde_json::json!(f),
            Scalar::Str(s) => serde_json::json!(s),
            Scalar::StrArray(list) => serde_json::json!(list),
            Scalar::Bool(b) => serde_json::json!(b),
            Scalar::Null | Scalar::Array | Scalar::Object => serde_json::Value::Null,
        }
    }
}
