//! [`ConfigError`]: what is wrong with a configuration, and where (file, line, column, field).

use std::fmt;
use std::ops::Range;

/// A configuration that cannot run: unreadable, not TOML, or failing validation. Its text
/// names the file, line and column, and the field path, for example
/// `keyward.toml:14:11: issuer[1].audiences: at least one audience is required`.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    file: Option<String>,
    position: Option<(usize, usize)>,
    field: Option<String>,
    message: String,
    #[source]
    source: Option<std::io::Error>,
}

impl ConfigError {
    /// An error at a byte range of `text` (the position is its start).
    pub(crate) fn at(
        file: Option<&str>,
        text: &str,
        span: &Range<usize>,
        field: &str,
        message: String,
    ) -> Self {
        Self {
            file: file.map(str::to_owned),
            position: Some(line_column(text, span.start)),
            field: (!field.is_empty()).then(|| field.to_owned()),
            message,
            source: None,
        }
    }

    /// An error with no position: quick-start flags, or a file that could not be read.
    pub(crate) fn unplaced(file: Option<&str>, field: Option<&str>, message: String) -> Self {
        Self {
            file: file.map(str::to_owned),
            position: None,
            field: field.map(str::to_owned),
            message,
            source: None,
        }
    }

    /// A file that could not be read.
    pub(crate) fn io(file: &str, message: String, source: std::io::Error) -> Self {
        Self { file: Some(file.to_owned()), position: None, field: None, message, source: Some(source) }
    }

    /// The file, as given to [`crate::config::Config::load`] (`None` for a string without a
    /// path and for the quick-start flags).
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line of the offending text, when the error has a place in a file.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// The 1-based column (in characters) of the offending text.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|(_, column)| column)
    }

    /// The field path, such as `issuer[1].audiences` or `policy.admin.require.all[0].scope`
    /// (array indices count from 0); for the quick start, the flag (`--issuer`).
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn render(&self) -> Rendered<'_> {
        Rendered(self)
    }
}

struct Rendered<'a>(&'a ConfigError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match (&e.file, e.position) {
            (Some(file), Some((line, column))) => write!(f, "{file}:{line}:{column}: ")?,
            (None, Some((line, column))) => write!(f, "line {line}, column {column}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, None) => {}
        }
        if let Some(field) = &e.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&e.message)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset = offset.saturating_sub(1);
    }
    let before = &text[..offset];
    let line = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let column = before[line_start..].chars().count().saturating_add(1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn positions_are_one_based_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` after a two-byte character is the fourth character of line 2.
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
