//! `.containerignore` / `.dockerignore`: which paths of the build context are left out.
//!
//! This is berth's own implementation of Docker's semantics (moby/patternmatcher), which
//! differ from gitignore's:
//! - a pattern is matched against the whole path from the context root, never at any depth:
//!   `*.log` leaves out `x.log` but not `sub/x.log`, and `build` not `src/build`;
//! - each path element is matched as Go's `filepath.Match` does (`*`, `?`, `[a-z]`, `[^a]`,
//!   `\` escapes); `**` matches any number of elements, including none;
//! - a path is also left out when one of its parent directories matches;
//! - `!pattern` brings paths back; the last pattern that matches decides;
//! - patterns are cleaned like `filepath.Clean` (`./a//b/` is `a/b`), a leading `/` is dropped,
//!   and a trailing `/` does not restrict a pattern to directories;
//! - lines starting with `#` are comments, blank lines are skipped.

use std::path::{Path, PathBuf};

/// Why an ignore file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: bad pattern {pattern:?}: {reason}")]
    BadPattern { file: String, line: usize, pattern: String, reason: &'static str },
}

/// One token of a glob pattern: a path element of an ignore file, or a shell pattern of a
/// `${v#pattern}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[…]`: ranges (inclusive), negated with `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    /// `**`
    AnyDepth,
    Glob(Vec<Token>),
}

/// One line of an ignore file, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern, without `!`.
    pub text: String,
    pub exclusion: bool,
    elements: Vec<Element>,
}

impl Pattern {
    /// Compiles one pattern (`!` allowed); the reason when it is malformed.
    pub fn new(line: &str) -> Result<Self, &'static str> {
        let line = line.trim();
        let (exclusion, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut text = clean(body);
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        let elements = text.split('/').map(element).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { text, exclusion, elements })
    }

    /// Whether the pattern matches `path` itself (relative, `/`-separated, cleaned).
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        match_elements(&self.elements, &parts)
    }

    /// Whether the pattern could match `dir` or something below it.
    fn may_match_below(&self, dir: &[&str]) -> bool {
        // Does some prefix of the pattern consume all of `dir` and leave elements over?
        let n = self.elements.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for part in dir {
            let mut next = vec![false; n + 1];
            for i in 0..n {
                if !reach[i] {
                    continue;
                }
                match &self.elements[i] {
                    Element::AnyDepth => {
                        next[i] = true;
                        next[i + 1] = true;
                    }
                    Element::Glob(tokens) => {
                        if glob(tokens, &part.chars().collect::<Vec<_>>()) {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            // `**` may also match nothing.
            for i in 0..n {
                if next[i] && self.elements[i] == Element::AnyDepth {
                    next[i + 1] = true;
                }
            }
            reach = next;
        }
        // A full match counts too: a parent's match brings back everything below it.
        reach.iter().any(|r| *r)
    }
}

/// The patterns of one ignore file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ignore {
    pub patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses ignore-file text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            // A comment is a `#` in the first column, before any trimming.
            if line.starts_with('#') {
                continue;
            }
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed == "!" {
                continue;
            }
            let pattern = Pattern::new(trimmed).map_err(|reason| IgnoreError::BadPattern {
                file: file.to_owned(),
                line: index + 1,
                pattern: trimmed.to_owned(),
                reason,
            })?;
            patterns.push(pattern);
        }
        Ok(Self { patterns })
    }

    /// The ignore file of a context directory: `.containerignore` if present, else
    /// `.dockerignore` (Podman's order), else none.
    pub fn load(context: &Path) -> Result<Self, IgnoreError> {
        for name in [".containerignore", ".dockerignore"] {
            let path = context.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => return Self::parse(name, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(IgnoreError::Read { path, source }),
            }
        }
        Ok(Self::default())
    }

    /// The ignore file of a build, in order of precedence: `explicit` (`--ignorefile`), the
    /// Dockerfile's own (`NAME.containerignore`, `NAME.dockerignore` beside it, as BuildKit
    /// reads `NAME.dockerignore`), then the context's ([`Ignore::load`]).
    pub fn discover(
        context: &Path,
        dockerfile: Option<&Path>,
        explicit: Option<&Path>,
    ) -> Result<Self, IgnoreError> {
        let read = |path: &Path| -> Result<Option<Self>, IgnoreError> {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let name = path.display().to_string();
                    Self::parse(&name, &String::from_utf8_lossy(&bytes)).map(Some)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(IgnoreError::Read { path: path.to_owned(), source }),
            }
        };
        if let Some(path) = explicit {
            return read(path)?.ok_or_else(|| IgnoreError::Read {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        if let Some(dockerfile) = dockerfile {
            for suffix in [".containerignore", ".dockerignore"] {
                let mut name = dockerfile.as_os_str().to_owned();
                name.push(suffix);
                if let Some(found) = read(Path::new(&name))? {
                    return Ok(found);
                }
            }
        }
        Self::load(context)
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that would change the answer needs evaluating.
            if pattern.exclusion != excluded {
                continue;
            }
            let hit = match_elements(&pattern.elements, &parts)
                || (1..parts.len()).any(|k| match_elements(&pattern.elements, &parts[..k]));
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether an excluded directory must still be walked, because an exception pattern could
    /// bring back something inside it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let parts: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().any(|p| p.exclusion && p.may_match_below(&parts))
    }

    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn element(text: &str) -> Result<Element, &'static str> {
    if text == "**" {
        return Ok(Element::AnyDepth);
    }
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                // `**` inside an element acts as `*`.
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                tokens.push(Token::Star);
            }
            '?' => tokens.push(Token::One),
            '\\' => tokens.push(Token::Literal(chars.next().ok_or("trailing backslash")?)),
            '[' => {
                let negated = chars.peek() == Some(&'^');
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                loop {
                    let mut lo = chars.next().ok_or("unterminated character class")?;
                    if lo == ']' && !ranges.is_empty() {
                        break;
                    }
                    if lo == ']' {
                        return Err("empty character class");
                    }
                    if lo == '\\' {
                        lo = chars.next().ok_or("unterminated character class")?;
                    }
                    let mut hi = lo;
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        hi = chars.next().ok_or("unterminated character class")?;
                        if hi == '\\' {
                            hi = chars.next().ok_or("unterminated character class")?;
                        }
                        if hi == ']' {
                            return Err("unterminated range in character class");
                        }
                        if hi < lo {
                            return Err("reversed range in character class");
                        }
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(Element::Glob(tokens))
}

/// Whether `name` matches the whole pattern, backtracking over the last `*` only: enough,
/// since a later `*` can always absorb what an earlier one would have.
pub(crate) fn glob(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::One) => true,
            Some(Token::Literal(c)) => *c == name[n],
            Some(Token::Class { negated, ranges }) => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&name[n])) != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    tokens[t.min(tokens.len())..].iter().all(|tok| *tok == Token::Star)
}

/// Matches a whole path against a pattern's elements (dynamic programming over `**`).
fn match_elements(elements: &[Element], parts: &[&str]) -> bool {
    let (n, m) = (elements.len(), parts.len());
    // reach[i][j]: the first i elements match the first j parts.
    let mut reach = vec![vec![false; m + 1]; n + 1];
    reach[0][0] = true;
    for i in 0..n {
        for j in 0..=m {
            if !reach[i][j] {
                continue;
            }
            match &elements[i] {
                Element::AnyDepth => {
                    // A trailing `**` must match at least one element (`a/**` is not `a`).
                    let from = if i + 1 == n { j + 1 } else { j };
                    for cell in reach[i + 1].iter_mut().skip(from) {
                        *cell = true;
                    }
                }
                Element::Glob(tokens) => {
                    if j < m && glob(tokens, &parts[j].chars().collect::<Vec<_>>()) {
                        reach[i + 1][j + 1] = true;
                    }
                }
            }
        }
    }
    reach[n][m]
}

#[cfg(test)]
mod tests;
