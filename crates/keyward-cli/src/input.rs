//! Reading tokens and files with bounds, and tidying what people paste.

use std::io::Read;

use anyhow::{Context, Result, bail};

/// Nothing keyward reads from stdin or a file needs more than this.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// A token as given, tidied: what was removed is said in `notes`.
#[derive(Debug, Default)]
pub(crate) struct Token {
    /// The token text to verify or decode.
    pub(crate) text: String,
    /// What keyward removed from the input (quotes, a `Bearer ` prefix), for the output.
    pub(crate) notes: Vec<String>,
    /// The input was not UTF-8 text (it cannot be a token): its length in bytes, since the size
    /// bound is still judged first.
    pub(crate) not_utf8: Option<usize>,
}

impl Token {
    /// Tidies raw input bytes: not UTF-8 is remembered (the token is then malformed).
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => Self::from_text(&text),
            Err(e) => Self { not_utf8: Some(e.as_bytes().len()), ..Self::default() },
        }
    }

    /// Trims whitespace, then removes surrounding quotes and a `Bearer ` prefix (in either
    /// order), noting each: these are what a copy from a header or a JSON file brings along.
    pub(crate) fn from_text(raw: &str) -> Self {
        let mut notes = Vec::new();
        let mut text = raw.trim();
        for _ in 0..2 {
            if let Some(inner) = strip_quotes(text) {
                notes.push(format!(
                    "removed the surrounding {} quotes",
                    if text.starts_with('"') { "double" } else { "single" }
                ));
                text = inner.trim();
            }
            if let Some(rest) = strip_bearer(text) {
                notes.push("removed the \"Bearer \" prefix".to_owned());
                text = rest.trim_start();
            }
        }
        Self { text: text.to_owned(), notes, ..Self::default() }
    }
}

fn strip_quotes(text: &str) -> Option<&str> {
    ['"', '\''].into_iter().find_map(|q| text.strip_prefix(q)?.strip_suffix(q))
}

fn strip_bearer(text: &str) -> Option<&str> {
    let (word, rest) = text.split_at_checked(6)?;
    let rest_starts_blank = rest.starts_with([' ', '\t']);
    (word.eq_ignore_ascii_case("bearer") && rest_starts_blank).then_some(rest)
}

/// The token from the argument, from a file for `@PATH`, or from stdin for `-` or no
/// argument, tidied by [`Token::from_text`]. An argument naming an existing file is refused
/// with a hint to write `@FILE`.
pub(crate) fn token(arg: Option<&str>) -> Result<Token> {
    match arg {
        Some("@") => bail!("@ needs a file name: @FILE reads the token from FILE"),
        Some(arg) if arg.starts_with('@') && arg.len() > 1 => {
            let path = std::path::Path::new(arg.get(1..).unwrap_or_default());
            Ok(Token::from_bytes(file(path)?))
        }
        Some(token) if token != "-" => {
            let trimmed = token.trim();
            if !trimmed.is_empty() && std::path::Path::new(trimmed).is_file() {
                bail!(
                    "the token argument {trimmed:?} names a file; to read the token from it, write @{trimmed}"
                );
            }
            Ok(Token::from_text(token))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(MAX_INPUT_BYTES)
                .read_to_end(&mut buf)
                .context("cannot read the token from stdin")?;
            Ok(Token::from_bytes(buf))
        }
    }
}

/// A whole file, bounded.
pub(crate) fn file(path: &std::path::Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_INPUT_BYTES)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_decorations_are_removed_and_noted() {
        for (raw, text, notes) in [
            ("abc", "abc", 0),
            ("  abc \n", "abc", 0),
            ("\"abc\"", "abc", 1),
            ("'abc'", "abc", 1),
            ("Bearer abc", "abc", 1),
            ("bearer\tabc", "abc", 1),
            ("\"Bearer abc\"", "abc", 2),
            ("Bearer \"abc\"", "abc", 2),
            ("Bearerabc", "Bearerabc", 0),
            ("\"abc", "\"abc", 0),
            ("\"", "\"", 0),
        ] {
            let token = Token::from_text(raw);
            assert_eq!(token.text, text, "{raw:?}");
            assert_eq!(token.notes.len(), notes, "{raw:?}: {:?}", token.notes);
        }
        assert_eq!(Token::from_bytes(vec![0xff, b'a']).not_utf8, Some(2));
    }
}
