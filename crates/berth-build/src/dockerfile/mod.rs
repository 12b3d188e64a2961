//! Dockerfile and Containerfile syntax: the typed tree ([`ast`]) and the parser that builds
//! it ([`parse`]), with errors that name file, line and column and show the offending line.
//!
//! The parser is berth's own rather than the parse-dockerfile crate: that crate keeps shell
//! text and flag values raw (continuations and escapes still in them) and borrows the input,
//! so a second pass over every value would be needed anyway; here joining, flags, mounts and
//! heredocs are resolved once, with a position for every token.

pub mod ast;
pub(crate) mod parser;

use std::fmt;
use std::path::{Path, PathBuf};

pub use ast::*;
pub use parser::parse;

/// Where a syntax error is, with the text of its line so that it can be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The physical line the position is on, without its line break.
    pub text: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl Location {
    /// The line and a caret under the column, indented by the line number's gutter.
    pub fn snippet(&self) -> String {
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        // Tabs keep their width in the caret line, so the caret sits under the character.
        let pad: String = self
            .text
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!(" {number} | {}\n {gutter} | {pad}^", self.text)
    }
}

/// The line at `position` of `lines` with a caret under its column, as parse errors show it;
/// empty when the position is not in the file.
pub fn snippet(lines: &[String], position: Position) -> String {
    match position.line.checked_sub(1).and_then(|i| lines.get(i)) {
        None => String::new(),
        Some(text) => Location {
            file: String::new(),
            line: position.line,
            column: position.column,
            text: text.clone(),
        }
        .snippet(),
    }
}

/// Why a Dockerfile could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}\n{}", location.snippet())]
    Syntax { location: Location, message: String },
}

impl ParseError {
    /// The location of a syntax error.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Syntax { location, .. } => Some(location),
            Self::Read { .. } => None,
        }
    }
}

/// Reads and parses the file at `path`, naming it by `path` in errors.
pub fn parse_file(path: &Path) -> Result<Dockerfile, ParseError> {
    let bytes =
        std::fs::read(path).map_err(|source| ParseError::Read { path: path.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    parse(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests;
