//! Variable expansion in Dockerfile words, as BuildKit's shell lexer does it (not a shell):
//! `$name`, `${name}`, `${name:-word}`, `${name-word}`, `${name:+word}`, `${name+word}`,
//! `${name:?message}`, `${name?message}`, and the pattern forms `${name#pat}`, `${name##pat}`,
//! `${name%pat}`, `${name%%pat}`, `${name/pat/text}`, `${name//pat/text}`; single quotes
//! are literal, double quotes expand,
//! the escape character makes the next character literal (inside double quotes only before
//! `"`, `$` and itself). Quotes are removed from the result.
//!
//! Expansion applies to the instructions that allow it (ADD, COPY, ENV, EXPOSE, FROM, LABEL,
//! STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults, and some flags); never to the text of RUN,
//! CMD and ENTRYPOINT, which their shell expands at run time. Every name looked up is reported,
//! so the caller knows which build arguments a step used.

use std::collections::BTreeSet;
use std::iter::Peekable;
use std::str::Chars;

use crate::ignore::{glob, Token};

/// Why a word could not be expanded. `word` is the whole input, for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unterminated {quote} quote in {word:?}")]
    UnterminatedQuote { word: String, quote: char },
    #[error("bad substitution in {word:?}")]
    BadSubstitution { word: String },
    #[error("missing '}}' in {word:?}")]
    MissingBrace { word: String },
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid mount after expansion: {message}")]
    Mount { message: String },
}

/// How quotes are treated: Dockerfile words remove them; heredoc bodies keep them literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Word,
    Heredoc,
}

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded {
    pub value: String,
    /// Every variable name the word looked up, set or not.
    pub names: BTreeSet<String>,
}

/// Expands `word` with `lookup` giving each variable's value (None when unset).
pub fn expand(
    word: &str,
    escape: char,
    mode: Mode,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, ExpandError> {
    let mut lexer = Lexer {
        word,
        chars: word.chars().peekable(),
        escape,
        mode,
        lookup,
        names: BTreeSet::new(),
    };
    let (value, _) = lexer.until(&[])?;
    Ok(Expanded { value, names: lexer.names })
}

struct Lexer<'w, 'l> {
    word: &'w str,
    chars: Peekable<Chars<'w>>,
    escape: char,
    mode: Mode,
    lookup: &'l dyn Fn(&str) -> Option<String>,
    names: BTreeSet<String>,
}

impl Lexer<'_, '_> {
    /// Reads up to one of `stops` (consumed, and returned) or the end, expanding as it goes.
    fn until(&mut self, stops: &[char]) -> Result<(String, Option<char>), ExpandError> {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            if stops.contains(&c) {
                return Ok((out, Some(c)));
            }
            match c {
                '\'' if self.mode == Mode::Word => out.push_str(&self.single_quoted()?),
                '"' if self.mode == Mode::Word => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => match self.mode {
                    Mode::Word => out.extend(self.chars.next()),
                    Mode::Heredoc => match self.chars.peek() {
                        Some(&next) if next == '$' || next == self.escape => {
                            out.push(next);
                            self.chars.next();
                        }
                        _ => out.push(c),
                    },
                },
                c => out.push(c),
            }
        }
        if stops.is_empty() {
            Ok((out, None))
        } else {
            Err(ExpandError::MissingBrace { word: self.word.to_owned() })
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        for c in self.chars.by_ref() {
            if c == '\'' {
                return Ok(out);
            }
            out.push(c);
        }
        Err(ExpandError::UnterminatedQuote { word: self.word.to_owned(), quote: '\'' })
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                '"' => return Ok(out),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => match self.chars.peek() {
                    Some(&next) if next == '"' || next == '$' || next == self.escape => {
                        out.push(next);
                        self.chars.next();
                    }
                    None => {}
                    Some(_) => out.push(c),
                },
                c => out.push(c),
            }
        }
        Err(ExpandError::UnterminatedQuote { word: self.word.to_owned(), quote: '"' })
    }

    fn value(&mut self, name: &str) -> Option<String> {
        self.names.insert(name.to_owned());
        (self.lookup)(name)
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.chars.peek().copied() {
            Some('{') => {
                self.chars.next();
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.value(&name).unwrap_or_default())
            }
            // Positional parameters are never set in a Dockerfile.
            Some(c) if c.is_ascii_digit() => {
                self.chars.next();
                Ok(String::new())
            }
            _ => Ok("$".to_owned()),
        }
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            return Err(ExpandError::BadSubstitution { word: self.word.to_owned() });
        }
        let Some(c) = self.chars.next() else {
            return Err(ExpandError::MissingBrace { word: self.word.to_owned() });
        };
        let (colon, operator) = match c {
            '}' => return Ok(self.value(&name).unwrap_or_default()),
            ':' => match self.chars.next() {
                Some(op @ ('-' | '+' | '?')) => (true, op),
                Some(_) => return Err(ExpandError::BadSubstitution { word: self.word.to_owned() }),
                None => return Err(ExpandError::MissingBrace { word: self.word.to_owned() }),
            },
            op @ ('-' | '+' | '?') => (false, op),
            op @ ('#' | '%' | '/') => return self.pattern(&name, op),
            _ => return Err(ExpandError::BadSubstitution { word: self.word.to_owned() }),
        };
        let (alternative, _) = self.until(&['}'])?;
        let value = self.value(&name);
        // With a colon an empty value counts as unset.
        let set = match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        match operator {
            '-' => Ok(if set { value.unwrap_or_default() } else { alternative }),
            '+' => Ok(if set { alternative } else { String::new() }),
            _ if set => Ok(value.unwrap_or_default()),
            _ => Err(ExpandError::Required {
                name,
                message: if alternative.is_empty() {
                    "is not allowed to be unset".to_owned()
                } else {
                    alternative
                },
            }),
        }
    }

    /// After `${name#`, `${name%` or `${name/`: prefix and suffix removal (`#`, `##`, `%`,
    /// `%%`) and replacement (`/pattern/text`, `//` for every match), with shell patterns.
    fn pattern(&mut self, name: &str, operator: char) -> Result<String, ExpandError> {
        let longest = self.chars.peek() == Some(&operator);
        if longest {
            self.chars.next();
        }
        let value: Vec<char> = self.value(name).unwrap_or_default().chars().collect();
        let text = |chars: &[char]| chars.iter().collect::<String>();
        if operator == '/' {
            let (pattern, stop) = self.until(&['/', '}'])?;
            let replacement = match stop {
                Some('/') => self.until(&['}'])?.0,
                _ => String::new(),
            };
            let pattern = shell_pattern(&pattern);
            let mut out = String::new();
            let mut start = 0;
            let mut replaced = false;
            while start <= value.len() {
                // The longest non-empty match starting here; `//` replaces every one.
                let end = if replaced && !longest {
                    None
                } else {
                    (start + 1..=value.len()).rev().find(|end| glob(&pattern, &value[start..*end]))
                };
                match end {
                    Some(end) => {
                        out.push_str(&replacement);
                        start = end;
                        replaced = true;
                    }
                    None => {
                        if let Some(c) = value.get(start) {
                            out.push(*c);
                        }
                        start += 1;
                    }
                }
            }
            return Ok(out);
        }
        let (pattern, _) = self.until(&['}'])?;
        let pattern = shell_pattern(&pattern);
        let len = value.len();
        let mut cuts: Box<dyn Iterator<Item = usize>> = if (operator == '#') != longest {
            Box::new(0..=len)
        } else {
            Box::new((0..=len).rev())
        };
        Ok(if operator == '#' {
            match cuts.find(|i| glob(&pattern, &value[..*i])) {
                Some(i) => text(&value[i..]),
                None => text(&value),
            }
        } else {
            match cuts.find(|i| glob(&pattern, &value[*i..])) {
                Some(i) => text(&value[..i]),
                None => text(&value),
            }
        })
    }
}

/// A shell pattern (`*` matches anything, `/` included); a malformed class is literal.
fn shell_pattern(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '[' => {
                let negated = matches!(chars.get(i + 1), Some('!' | '^'));
                let mut j = i + 1 + usize::from(negated);
                let mut ranges = Vec::new();
                let mut closed = false;
                while j < chars.len() {
                    if chars[j] == ']' && !ranges.is_empty() {
                        closed = true;
                        break;
                    }
                    let lo = chars[j];
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|c| *c != ']')
                    {
                        ranges.push((lo, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((lo, lo));
                        j += 1;
                    }
                }
                if closed {
                    tokens.push(Token::Class { negated, ranges });
                    i = j;
                } else {
                    tokens.push(Token::Literal('['));
                }
            }
            c => tokens.push(Token::Literal(c)),
        }
        i += 1;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn never_panics(word in "\\PC{0,80}", backtick in any::<bool>(), heredoc in any::<bool>()) {
            let escape = if backtick { '`' } else { '\\' };
            let mode = if heredoc { Mode::Heredoc } else { Mode::Word };
            let _ = expand(&word, escape, mode, &env);
        }

        #[test]
        fn plain_words_are_unchanged(word in "[a-zA-Z0-9 _./:@%+=,-]{0,40}") {
            prop_assert_eq!(x(&word), word.clone());
            prop_assert_eq!(expand(&word, '\\', Mode::Heredoc, &env).unwrap().value, word);
        }

        #[test]
        fn single_quotes_keep_everything(word in "[^']{0,40}") {
            prop_assert_eq!(x(&format!("'{word}'")), word);
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("two words".into()),
            _ => None,
        }
    }

    fn x(word: &str) -> String {
        expand(word, '\\', Mode::Word, &env).unwrap().value
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(x("$A"), "alpha");
        assert_eq!(x("${A}"), "alpha");
        assert_eq!(x("x${A}y"), "xalphay");
        assert_eq!(x("$A.b"), "alpha.b");
        assert_eq!(x("$UNSET-"), "-");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$ a"), "$ a");
        assert_eq!(x("$1x"), "x");
    }

    #[test]
    fn modifiers_with_and_without_colon() {
        assert_eq!(x("${UNSET:-d}"), "d");
        assert_eq!(x("${EMPTY:-d}"), "d");
        assert_eq!(x("${EMPTY-d}"), "");
        assert_eq!(x("${UNSET-d}"), "d");
        assert_eq!(x("${A:-d}"), "alpha");
        assert_eq!(x("${A:+set}"), "set");
        assert_eq!(x("${EMPTY:+set}"), "");
        assert_eq!(x("${EMPTY+set}"), "set");
        assert_eq!(x("${UNSET+set}"), "");
        assert_eq!(x("${UNSET:-${A}}"), "alpha");
        assert_eq!(x("${UNSET:-a\\}b}"), "a}b");
    }

    #[test]
    fn required_values() {
        assert_eq!(x("${A:?x}"), "alpha");
        let err = expand("${EMPTY:?must be set}", '\\', Mode::Word, &env).unwrap_err();
        assert_eq!(err.to_string(), "EMPTY: must be set");
        assert_eq!(x("${EMPTY?x}"), "");
        let err = expand("${NOPE?}", '\\', Mode::Word, &env).unwrap_err();
        assert_eq!(err.to_string(), "NOPE: is not allowed to be unset");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "alpha b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"\\$A\""), "$A");
        assert_eq!(x("\"a\\b\""), "a\\b");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(x("\"$SP\""), "two words");
        assert_eq!(x("end\\"), "end");
    }

    #[test]
    fn prefix_suffix_and_replacement_patterns() {
        let path = |w: &str| {
            let lookup = |n: &str| (n == "P").then(|| "/usr/local/lib/libx.so.1".to_owned());
            expand(w, '\\', Mode::Word, &lookup).unwrap().value
        };
        assert_eq!(path("${P#*/}"), "usr/local/lib/libx.so.1");
        assert_eq!(path("${P##*/}"), "libx.so.1");
        assert_eq!(path("${P%.*}"), "/usr/local/lib/libx.so");
        assert_eq!(path("${P%%.*}"), "/usr/local/lib/libx");
        assert_eq!(path("${P#nomatch}"), "/usr/local/lib/libx.so.1");
        assert_eq!(path("${P/local/opt}"), "/usr/opt/lib/libx.so.1");
        assert_eq!(path("${P//l/L}"), "/usr/LocaL/Lib/Libx.so.1");
        assert_eq!(path("${P/[0-9]/N}"), "/usr/local/lib/libx.so.N");
        assert_eq!(path("${P/lib}"), "/usr/local//libx.so.1");
        assert_eq!(path("${UNSET##*/}"), "");
        assert_eq!(x("${A/ph/}"), "ala");
    }

    #[test]
    fn backtick_escape() {
        let v = expand("`$A c:\\dir", '`', Mode::Word, &env).unwrap().value;
        assert_eq!(v, "$A c:\\dir");
    }

    #[test]
    fn heredoc_mode_keeps_quotes() {
        let v = expand("echo '$A' \"$A\" \\$A\n", '\\', Mode::Heredoc, &env).unwrap().value;
        assert_eq!(v, "echo 'alpha' \"alpha\" $A\n");
    }

    #[test]
    fn errors() {
        let e = |w: &str| expand(w, '\\', Mode::Word, &env).unwrap_err();
        assert!(matches!(e("${A"), ExpandError::MissingBrace { .. }));
        assert!(matches!(e("${}"), ExpandError::BadSubstitution { .. }));
        assert!(matches!(e("${A:x}"), ExpandError::BadSubstitution { .. }));
        assert!(matches!(e("'abc"), ExpandError::UnterminatedQuote { quote: '\'', .. }));
        assert!(matches!(e("\"abc"), ExpandError::UnterminatedQuote { quote: '"', .. }));
        assert!(matches!(e("${A#x"), ExpandError::MissingBrace { .. }));
    }

    #[test]
    fn names_looked_up_are_reported() {
        let r = expand("${A}-${UNSET:-$EMPTY}-'$QUOTED'", '\\', Mode::Word, &env).unwrap();
        let names: Vec<&str> = r.names.iter().map(String::as_str).collect();
        assert_eq!(names, ["A", "EMPTY", "UNSET"]);
    }
}
