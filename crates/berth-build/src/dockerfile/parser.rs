//! The parser proper: parser directives, logical lines (continuations with the escape
//! character, comments inside them), heredoc bodies, builder flags, and one function per
//! instruction that turns its arguments into the typed tree.
//!
//! The rules are those of BuildKit's `frontend/dockerfile/parser`: directives only before the
//! first other line; a line ending in the escape character (optionally followed by blanks)
//! continues on the next; comment and blank lines inside a continuation are dropped; heredoc
//! bodies follow the logical line in order, for RUN, COPY and ADD only.

use std::time::Duration;

use super::ast::*;
use super::{Location, ParseError};

/// Parses `text`, naming it `file` in positions and errors.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut parser = Parser { file, lines, next: 0, escape: '\\' };
    let directives = parser.directives()?;
    parser.escape = directives.escape;

    let mut instructions = Vec::new();
    while let Some(logical) = parser.logical_line() {
        instructions.push(parser.instruction(&logical, 0, false)?);
    }
    let lines = parser.lines.iter().map(|l| (*l).to_owned()).collect();
    Ok(Dockerfile { file: file.to_owned(), directives, instructions, lines })
}

/// Maps an offset in a logical line back to the physical line and column it came from.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: usize,
    line: usize,
    column: usize,
}

/// One instruction's text after joining continuation lines.
#[derive(Debug)]
struct Logical {
    text: String,
    segments: Vec<Segment>,
}

impl Logical {
    fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let seg =
            self.segments.iter().rev().find(|s| s.offset <= offset).unwrap_or(&self.segments[0]);
        let start = seg.offset.min(offset);
        Position { line: seg.line, column: seg.column + self.text[start..offset].chars().count() }
    }
}

struct Parser<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    /// Index of the next physical line to read.
    next: usize,
    escape: char,
}

/// A `--name[=value]` before an instruction's arguments.
#[derive(Debug)]
struct RawFlag {
    name: String,
    value: Option<String>,
    offset: usize,
}

/// The flags of one instruction, taken one by one; what is left over is an unknown flag.
struct Flags {
    flags: Vec<RawFlag>,
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

fn trim_blank_start(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

/// `# name = value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = trim_blank_start(line).strip_prefix('#')?;
    let rest = trim_blank_start(rest);
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.chars().next()?.is_ascii_alphabetic() {
        return None;
    }
    let rest = trim_blank_start(&rest[name_len..]).strip_prefix('=')?;
    let value = rest.trim_matches(is_blank);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_owned()))
}

impl<'a> Parser<'a> {
    fn error(&self, position: Position, message: impl Into<String>) -> ParseError {
        let text = position
            .line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .map(|l| (*l).to_owned())
            .unwrap_or_default();
        ParseError::Syntax {
            location: Location {
                file: self.file.to_owned(),
                line: position.line,
                column: position.column,
                text,
            },
            message: message.into(),
        }
    }

    fn directives(&mut self) -> Result<Directives, ParseError> {
        let mut directives = Directives::default();
        let mut seen: Vec<String> = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            let Some((name, value)) = directive(line) else { break };
            if !matches!(name.as_str(), "syntax" | "escape" | "check") {
                break;
            }
            let position = Position { line: index + 1, column: 1 };
            if seen.contains(&name) {
                return Err(
                    self.error(position, format!("only one {name} parser directive can be used"))
                );
            }
            match name.as_str() {
                "escape" => {
                    directives.escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(self.error(
                                position,
                                format!("invalid escape token {other:?}: expected ` or \\"),
                            ))
                        }
                    }
                }
                "syntax" => directives.syntax = Some(value),
                _ => directives.check = Some(value),
            }
            seen.push(name);
        }
        Ok(directives)
    }

    /// Strips a trailing escape character (and blanks after it): the line continues.
    fn continuation<'s>(&self, line: &'s str) -> (&'s str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        match trimmed.strip_suffix(self.escape) {
            Some(rest) => (rest, true),
            None => (line, false),
        }
    }

    /// The next instruction's logical line, or None at the end of the file.
    fn logical_line(&mut self) -> Option<Logical> {
        while self.next < self.lines.len() {
            let number = self.next + 1;
            let raw = self.lines[self.next];
            self.next += 1;
            let body = trim_blank_start(raw);
            if body.starts_with('#') {
                continue;
            }
            let (first, mut continues) = self.continuation(body);
            if !continues && first.trim_matches(is_blank).is_empty() {
                continue;
            }
            let column = raw[..raw.len() - body.len()].chars().count() + 1;
            let mut logical = Logical {
                text: first.to_owned(),
                segments: vec![Segment { offset: 0, line: number, column }],
            };
            while continues && self.next < self.lines.len() {
                let number = self.next + 1;
                let raw = self.lines[self.next];
                self.next += 1;
                let body = trim_blank_start(raw);
                if body.starts_with('#') || body.is_empty() {
                    continue;
                }
                let (part, more) = self.continuation(raw);
                continues = more;
                logical.segments.push(Segment {
                    offset: logical.text.len(),
                    line: number,
                    column: 1,
                });
                logical.text.push_str(part);
            }
            return Some(logical);
        }
        None
    }

    /// Parses the instruction that starts at `start` in `logical`.
    fn instruction(
        &mut self,
        logical: &Logical,
        start: usize,
        nested: bool,
    ) -> Result<Instruction, ParseError> {
        let text = &logical.text;
        let lead = text[start..].len() - trim_blank_start(&text[start..]).len();
        let keyword_start = start + lead;
        let keyword_len =
            text[keyword_start..].find(char::is_whitespace).unwrap_or(text.len() - keyword_start);
        let keyword = text[keyword_start..keyword_start + keyword_len].to_ascii_uppercase();
        let position = logical.position(keyword_start);
        let after = keyword_start + keyword_len;
        let (flags, args_start) = extract_flags(text, after);
        let mut flags = Flags { flags };
        let args = text[args_start..].trim_matches(char::is_whitespace);
        let args_start =
            args_start + (text[args_start..].len() - text[args_start..].trim_start().len());
        let at = |offset: usize| logical.position(offset);

        let kind = match keyword.as_str() {
            "FROM" => {
                let platform = self.value_flag(&mut flags, "platform", logical)?;
                let words: Vec<(usize, &str)> = split_blank(args, args_start);
                let (image, alias) = match words.as_slice() {
                    [(_, image)] => (image.to_string(), None),
                    [(_, image), (_, as_word), (name_at, name)]
                        if as_word.eq_ignore_ascii_case("as") =>
                    {
                        if !valid_stage_name(name) {
                            return Err(self.error(
                                at(*name_at),
                                format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"),
                            ));
                        }
                        (image.to_string(), Some(name.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(
                            self.error(position, "FROM requires either one or three arguments")
                        )
                    }
                };
                InstructionKind::From(From { platform, image, alias })
            }
            "RUN" => {
                let mut mounts = Vec::new();
                for flag in flags.take_all("mount") {
                    let value = self.require_value(flag.value.as_deref(), &flag, logical)?;
                    mounts.push(self.mount(value, logical.position(flag.offset))?);
                }
                let network = match self.value_flag(&mut flags, "network", logical)? {
                    None => None,
                    Some(v) => Some(match v.as_str() {
                        "default" => NetworkMode::Default,
                        "none" => NetworkMode::None,
                        "host" => NetworkMode::Host,
                        other => {
                            return Err(self.error(position, format!("unsupported network mode {other:?}: expected default, none or host")))
                        }
                    }),
                };
                let security = match self.value_flag(&mut flags, "security", logical)? {
                    None => None,
                    Some(v) => Some(match v.as_str() {
                        "sandbox" => Security::Sandbox,
                        "insecure" => Security::Insecure,
                        other => {
                            return Err(self.error(
                                position,
                                format!(
                                "unsupported security mode {other:?}: expected sandbox or insecure"
                            ),
                            ))
                        }
                    }),
                };
                self.no_more_flags(flags, logical)?;
                if args.is_empty() {
                    return Err(self.error(position, "RUN requires at least one argument"));
                }
                let command = self.maybe_json(args, at(args_start))?;
                let heredocs = match (&command, nested) {
                    (Command::Shell(shell), false) => {
                        let words: Vec<String> =
                            words(shell, self.escape).into_iter().map(|(_, w)| w).collect();
                        self.heredocs(&words, position)?
                    }
                    _ => Vec::new(),
                };
                InstructionKind::Run(Run { mounts, network, security, command, heredocs })
            }
            "CMD" | "ENTRYPOINT" => {
                self.no_more_flags(flags, logical)?;
                if args.is_empty() {
                    return Err(
                        self.error(position, format!("{keyword} requires at least one argument"))
                    );
                }
                let command = self.maybe_json(args, at(args_start))?;
                if keyword == "CMD" {
                    InstructionKind::Cmd(command)
                } else {
                    InstructionKind::Entrypoint(command)
                }
            }
            "LABEL" | "ENV" => {
                self.no_more_flags(flags, logical)?;
                let pairs = self.name_values(&keyword, args, args_start, logical, position)?;
                if keyword == "LABEL" {
                    InstructionKind::Label(pairs)
                } else {
                    InstructionKind::Env(pairs)
                }
            }
            "MAINTAINER" => {
                self.no_more_flags(flags, logical)?;
                InstructionKind::Maintainer(self.one_string(&keyword, args, position)?)
            }
            "EXPOSE" => {
                self.no_more_flags(flags, logical)?;
                let ports: Vec<String> =
                    split_blank(args, args_start).into_iter().map(|(_, w)| w.to_owned()).collect();
                if ports.is_empty() {
                    return Err(self.error(position, "EXPOSE requires at least one argument"));
                }
                InstructionKind::Expose(ports)
            }
            "ADD" | "COPY" => {
                let chown = self.value_flag(&mut flags, "chown", logical)?;
                let chmod = self.value_flag(&mut flags, "chmod", logical)?;
                let link = self.bool_flag(&mut flags, "link", logical)?;
                let (mut list, json) = self.json_or_words(args, args_start, at(args_start))?;
                if list.len() < 2 {
                    return Err(self.error(
                        position,
                        format!("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"),
                    ));
                }
                let destination = list.pop().unwrap_or_default();
                let heredocs =
                    if json || nested { Vec::new() } else { self.heredocs(&list, position)? };
                if keyword == "ADD" {
                    let checksum = self.value_flag(&mut flags, "checksum", logical)?;
                    let keep_git_dir = self.bool_flag(&mut flags, "keep-git-dir", logical)?;
                    self.no_more_flags(flags, logical)?;
                    InstructionKind::Add(Add {
                        chown,
                        chmod,
                        checksum,
                        keep_git_dir,
                        link,
                        sources: list,
                        destination,
                        heredocs,
                    })
                } else {
                    let from = self.value_flag(&mut flags, "from", logical)?;
                    let parents = self.bool_flag(&mut flags, "parents", logical)?;
                    let mut excludes = Vec::new();
                    for flag in flags.take_all("exclude") {
                        excludes.push(
                            self.require_value(flag.value.as_deref(), &flag, logical)?.to_owned(),
                        );
                    }
                    self.no_more_flags(flags, logical)?;
                    InstructionKind::Copy(Copy {
                        from,
                        chown,
                        chmod,
                        link,
                        parents,
                        excludes,
                        sources: list,
                        destination,
                        heredocs,
                    })
                }
            }
            "VOLUME" => {
                self.no_more_flags(flags, logical)?;
                let (list, _) = self.json_or_words(args, args_start, at(args_start))?;
                if list.is_empty() || list.iter().any(|v| v.is_empty()) {
                    return Err(self.error(position, "VOLUME specified can not be an empty string"));
                }
                InstructionKind::Volume(list)
            }
            "USER" => {
                self.no_more_flags(flags, logical)?;
                InstructionKind::User(self.one_string(&keyword, args, position)?)
            }
            "WORKDIR" => {
                self.no_more_flags(flags, logical)?;
                InstructionKind::Workdir(self.one_string(&keyword, args, position)?)
            }
            "STOPSIGNAL" => {
                self.no_more_flags(flags, logical)?;
                InstructionKind::Stopsignal(self.one_string(&keyword, args, position)?)
            }
            "ARG" => {
                self.no_more_flags(flags, logical)?;
                let mut decls = Vec::new();
                for (offset, word) in words(args, self.escape) {
                    let (name, default) = match word.split_once('=') {
                        Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                        None => (word.clone(), None),
                    };
                    if !valid_variable_name(&name) {
                        return Err(self
                            .error(at(args_start + offset), format!("invalid ARG name {name:?}")));
                    }
                    decls.push(ArgDecl { name, default });
                }
                if decls.is_empty() {
                    return Err(self.error(position, "ARG requires at least one argument"));
                }
                InstructionKind::Arg(decls)
            }
            "ONBUILD" => {
                self.no_more_flags(flags, logical)?;
                if nested {
                    return Err(self
                        .error(position, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
                }
                if args.is_empty() {
                    return Err(self.error(position, "ONBUILD requires at least one argument"));
                }
                let inner = self.instruction(logical, args_start, true)?;
                if matches!(inner.kind, InstructionKind::From(_) | InstructionKind::Maintainer(_)) {
                    return Err(self.error(
                        inner.position,
                        format!("{} isn't allowed as an ONBUILD trigger", inner.keyword()),
                    ));
                }
                InstructionKind::Onbuild(Box::new(inner))
            }
            "HEALTHCHECK" => self.healthcheck(&mut flags, args, args_start, logical, position)?,
            "SHELL" => {
                self.no_more_flags(flags, logical)?;
                match self.maybe_json(args, at(args_start))? {
                    Command::Exec(list) if !list.is_empty() => InstructionKind::Shell(list),
                    _ => {
                        return Err(
                            self.error(position, "SHELL requires the arguments to be in JSON form")
                        )
                    }
                }
            }
            "" => return Err(self.error(position, "empty instruction")),
            other => {
                return Err(self.error(position, format!("unknown instruction: {other}")));
            }
        };
        Ok(Instruction {
            position,
            end_line: self.next.max(position.line),
            original: text[keyword_start..].trim_end().to_owned(),
            kind,
        })
    }

    fn require_value<'f>(
        &self,
        value: Option<&'f str>,
        flag: &RawFlag,
        logical: &Logical,
    ) -> Result<&'f str, ParseError> {
        value.ok_or_else(|| {
            self.error(logical.position(flag.offset), format!("flag --{} needs a value", flag.name))
        })
    }

    fn value_flag(
        &self,
        flags: &mut Flags,
        name: &str,
        logical: &Logical,
    ) -> Result<Option<String>, ParseError> {
        let mut taken = flags.take_all(name);
        if taken.len() > 1 {
            let second = &taken[1];
            return Err(self.error(
                logical.position(second.offset),
                format!("flag --{name} given more than once"),
            ));
        }
        match taken.pop() {
            None => Ok(None),
            Some(flag) => {
                Ok(Some(self.require_value(flag.value.as_deref(), &flag, logical)?.to_owned()))
            }
        }
    }

    fn bool_flag(
        &self,
        flags: &mut Flags,
        name: &str,
        logical: &Logical,
    ) -> Result<bool, ParseError> {
        let mut value = false;
        for flag in flags.take_all(name) {
            value = match flag.value.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(self.error(
                        logical.position(flag.offset),
                        format!("expecting boolean value for flag --{name}, not {other:?}"),
                    ))
                }
            };
        }
        Ok(value)
    }

    fn no_more_flags(&self, flags: Flags, logical: &Logical) -> Result<(), ParseError> {
        match flags.flags.first() {
            None => Ok(()),
            Some(flag) => {
                Err(self
                    .error(logical.position(flag.offset), format!("unknown flag: --{}", flag.name)))
            }
        }
    }

    fn one_string(
        &self,
        keyword: &str,
        args: &str,
        position: Position,
    ) -> Result<String, ParseError> {
        if args.is_empty() {
            return Err(self.error(position, format!("{keyword} requires exactly one argument")));
        }
        Ok(args.to_owned())
    }

    /// The exec form when `args` is a JSON array of strings, else the shell form.
    fn maybe_json(&self, args: &str, at: Position) -> Result<Command, ParseError> {
        match json_strings(args) {
            Json::Strings(list) => Ok(Command::Exec(list)),
            Json::NotStrings => Err(self.error(at, "the JSON array form takes only strings")),
            Json::Text => Ok(Command::Shell(args.to_owned())),
        }
    }

    fn json_or_words(
        &self,
        args: &str,
        args_start: usize,
        at: Position,
    ) -> Result<(Vec<String>, bool), ParseError> {
        match json_strings(args) {
            Json::Strings(list) => Ok((list, true)),
            Json::NotStrings => Err(self.error(at, "the JSON array form takes only strings")),
            Json::Text => Ok((
                split_blank(args, args_start).into_iter().map(|(_, w)| w.to_owned()).collect(),
                false,
            )),
        }
    }

    /// `KEY=VALUE …`, or the old `KEY VALUE` form with one pair.
    fn name_values(
        &self,
        keyword: &str,
        args: &str,
        args_start: usize,
        logical: &Logical,
        position: Position,
    ) -> Result<Vec<KeyValue>, ParseError> {
        let list = words(args, self.escape);
        let Some((_, first)) = list.first() else {
            return Err(self.error(position, format!("{keyword} requires at least one argument")));
        };
        if !first.contains('=') {
            let mut parts = args.splitn(2, |c: char| c.is_whitespace());
            let key = parts.next().unwrap_or_default().to_owned();
            let value = parts.next().map(str::trim_start).unwrap_or_default();
            if value.is_empty() {
                return Err(self.error(position, format!("{keyword} must have two arguments")));
            }
            return Ok(vec![KeyValue { key, value: value.to_owned() }]);
        }
        let mut pairs = Vec::new();
        for (offset, word) in list {
            let Some((key, value)) = word.split_once('=') else {
                return Err(self.error(
                    logical.position(args_start + offset),
                    format!(
                        "syntax error - can't find = in {word:?}. Must be of the form: name=value"
                    ),
                ));
            };
            if key.is_empty() {
                return Err(self.error(
                    logical.position(args_start + offset),
                    format!("{keyword} names can not be blank"),
                ));
            }
            pairs.push(KeyValue { key: key.to_owned(), value: value.to_owned() });
        }
        Ok(pairs)
    }

    /// Reads the bodies of the heredocs named among `words`, from the lines after the
    /// instruction, in order.
    fn heredocs(
        &mut self,
        words: &[String],
        position: Position,
    ) -> Result<Vec<Heredoc>, ParseError> {
        let mut docs = Vec::new();
        for word in words {
            let Some(mut doc) = heredoc_word(word, self.escape) else { continue };
            let mut terminated = false;
            while self.next < self.lines.len() {
                let line = self.lines[self.next];
                self.next += 1;
                let candidate = if doc.chomp { line.trim_start_matches('\t') } else { line };
                if candidate == doc.name {
                    terminated = true;
                    break;
                }
                doc.content.push_str(candidate);
                doc.content.push('\n');
            }
            if !terminated {
                return Err(self.error(position, format!("unterminated heredoc {:?}", doc.name)));
            }
            docs.push(doc);
        }
        Ok(docs)
    }

    fn healthcheck(
        &self,
        flags: &mut Flags,
        args: &str,
        args_start: usize,
        logical: &Logical,
        position: Position,
    ) -> Result<InstructionKind, ParseError> {
        let type_len = args.find(char::is_whitespace).unwrap_or(args.len());
        let kind = args[..type_len].to_ascii_uppercase();
        let rest = args[type_len..].trim_start();
        match kind.as_str() {
            "NONE" => {
                if !rest.is_empty() {
                    return Err(self.error(position, "HEALTHCHECK NONE takes no arguments"));
                }
                if let Some(flag) = flags.flags.first() {
                    return Err(self.error(
                        logical.position(flag.offset),
                        "HEALTHCHECK NONE takes no options",
                    ));
                }
                Ok(InstructionKind::Healthcheck(Healthcheck::None))
            }
            "CMD" => {
                let mut duration = |name: &str| -> Result<Option<Duration>, ParseError> {
                    let Some(text) = self.value_flag(flags, name, logical)? else {
                        return Ok(None);
                    };
                    let value = parse_go_duration(&text).ok_or_else(|| {
                        self.error(position, format!("invalid duration {text:?} for --{name}"))
                    })?;
                    if !value.is_zero() && value < Duration::from_millis(1) {
                        return Err(
                            self.error(position, format!("--{name} cannot be less than 1ms"))
                        );
                    }
                    Ok(Some(value))
                };
                let interval = duration("interval")?;
                let timeout = duration("timeout")?;
                let start_period = duration("start-period")?;
                let start_interval = duration("start-interval")?;
                let retries = match self.value_flag(flags, "retries", logical)? {
                    None => None,
                    Some(text) => Some(text.parse::<u32>().map_err(|_| {
                        self.error(
                            position,
                            format!("--retries must be a non-negative integer, not {text:?}"),
                        )
                    })?),
                };
                let remaining = Flags { flags: std::mem::take(&mut flags.flags) };
                self.no_more_flags(remaining, logical)?;
                if rest.is_empty() {
                    return Err(self.error(position, "HEALTHCHECK CMD requires a command"));
                }
                let rest_start = args_start + (args.len() - rest.len());
                let command = self.maybe_json(rest, logical.position(rest_start))?;
                Ok(InstructionKind::Healthcheck(Healthcheck::Check {
                    command,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                }))
            }
            "" => Err(self.error(position, "HEALTHCHECK requires an argument")),
            other => {
                Err(self
                    .error(position, format!("unknown type {other:?} in HEALTHCHECK (try CMD)")))
            }
        }
    }

    fn mount(&self, value: &str, at: Position) -> Result<Mount, ParseError> {
        parse_mount(value, &mut |v| Ok(v.to_owned()), true)
            .map_err(|message| self.error(at, message))
    }
}

impl Flags {
    fn take_all(&mut self, name: &str) -> Vec<RawFlag> {
        let (taken, kept) =
            std::mem::take(&mut self.flags).into_iter().partition(|f| f.name == name);
        self.flags = kept;
        taken
    }
}

/// One `--mount=` value: comma-separated `key=value` fields, quoted as CSV. Each value goes
/// through `expand` first. With `lenient`, a value that still holds a `$` and does not parse
/// as its type is left unset: the plan parses the mount again after expansion.
pub(crate) fn parse_mount(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
    lenient: bool,
) -> Result<Mount, String> {
    let mut fields = Vec::new();
    for field in csv_fields(value) {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(expand(v.trim())?)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        fields.push((key, val));
    }
    let mut kind = MountKind::Bind;
    for (key, val) in &fields {
        if key == "type" {
            kind = match val.as_deref().unwrap_or_default() {
                "bind" => MountKind::Bind,
                "cache" => MountKind::Cache,
                "secret" => MountKind::Secret,
                "tmpfs" => MountKind::Tmpfs,
                "ssh" => MountKind::Ssh,
                other => return Err(format!("unsupported mount type {other:?}")),
            };
        }
    }
    let mut mount = Mount::new(kind);
    mount.raw = value.to_owned();
    for (key, val) in &fields {
        let val = val.as_deref();
        let deferred = lenient && val.is_some_and(|v| v.contains('$'));
        let need = || -> Result<String, String> {
            val.map(str::to_owned).ok_or_else(|| format!("mount option {key:?} needs a value"))
        };
        let invalid = |v: &str| format!("invalid value {v:?} for mount option {key:?}");
        let boolean = || -> Result<Option<bool>, String> {
            match val {
                None | Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(_) if deferred => Ok(None),
                Some(other) => Err(invalid(other)),
            }
        };
        let number = |radix: u32| -> Result<Option<u32>, String> {
            let text = need()?;
            match u32::from_str_radix(&text, radix) {
                Ok(n) => Ok(Some(n)),
                Err(_) if deferred => Ok(None),
                Err(_) => Err(invalid(&text)),
            }
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => mount.target = Some(need()?),
            "source" | "src" => mount.source = Some(need()?),
            "from" => mount.from = Some(need()?),
            "ro" | "readonly" => mount.read_only = boolean()?,
            "rw" | "readwrite" => mount.read_only = boolean()?.map(|rw| !rw),
            "id" => mount.id = Some(need()?),
            "sharing" => {
                mount.sharing = match need()?.as_str() {
                    "shared" => Some(CacheSharing::Shared),
                    "private" => Some(CacheSharing::Private),
                    "locked" => Some(CacheSharing::Locked),
                    _ if deferred => None,
                    other => {
                        return Err(format!(
                        "unsupported sharing value {other:?}: expected shared, private or locked"
                    ))
                    }
                }
            }
            "mode" => mount.mode = number(8)?,
            "uid" => mount.uid = number(10)?,
            "gid" => mount.gid = number(10)?,
            "required" => mount.required = boolean()?,
            "size" => {
                let text = need()?;
                mount.size = match parse_size(&text) {
                    Some(n) => Some(n),
                    None if deferred => None,
                    None => return Err(format!("invalid size {text:?} for a tmpfs mount")),
                };
            }
            "env" => mount.env = Some(need()?),
            _ => return Err(format!("unexpected key {key:?} in mount option {value:?}")),
        }
    }
    match kind {
        MountKind::Bind | MountKind::Cache | MountKind::Tmpfs if mount.target.is_none() => {
            return Err("mount requires a target (target=, dst= or destination=)".to_owned());
        }
        MountKind::Secret if mount.id.is_none() && mount.target.is_none() => {
            return Err("secret mount requires an id or a target".to_owned());
        }
        _ => {}
    }
    if kind != MountKind::Secret && mount.env.is_some() {
        return Err("mount option \"env\" is only for secret mounts".to_owned());
    }
    Ok(mount)
}

/// Splits the builder flags (`--name[=value]`) off the front of an instruction's arguments,
/// removing quotes and backslash escapes in them; returns them with where the arguments start.
fn extract_flags(text: &str, start: usize) -> (Vec<RawFlag>, usize) {
    let mut flags = Vec::new();
    let mut pos = start;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if !trimmed.starts_with("--") {
            return (flags, pos);
        }
        let flag_start = pos;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = trimmed.char_indices().peekable();
        let mut end = trimmed.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                _ => word.push(c),
            }
        }
        pos += end;
        if word == "--" {
            return (flags, pos);
        }
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (body.to_owned(), None),
        };
        flags.push(RawFlag { name, value, offset: flag_start });
    }
}

/// Words split at blanks, with their offsets (relative to `base`'s origin).
fn split_blank(args: &str, base: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in args.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((base + s, &args[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((base + s, &args[s..]));
    }
    out
}

/// Words as BuildKit's `parseWords` splits them: at blanks outside quotes, with quotes and
/// escapes kept in the word (expansion removes them later). Offsets are relative to `args`.
pub(crate) fn words(args: &str, escape: char) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut word_start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = args.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            None => {
                if c.is_whitespace() {
                    if let Some(s) = word_start.take() {
                        if blank_ok || !word.is_empty() {
                            out.push((s, std::mem::take(&mut word)));
                        }
                        word.clear();
                        blank_ok = false;
                    }
                    continue;
                }
                word_start.get_or_insert(i);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    match chars.next() {
                        None => continue,
                        Some((_, next)) => {
                            word.push(c);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some((_, next)) => {
                            word.push(c);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if let Some(s) = word_start {
        if blank_ok || !word.is_empty() {
            out.push((s, word));
        }
    }
    out
}

/// A heredoc introducer such as `<<EOF`, `<<-"EOF"` or `3<<EOF`.
fn heredoc_word(word: &str, escape: char) -> Option<Heredoc> {
    let digits = word.find(|c: char| !c.is_ascii_digit()).unwrap_or(word.len());
    let fd = if digits > 0 { word[..digits].parse::<u32>().ok() } else { None };
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['\'', '"', escape]);
    let mut name = String::new();
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            None if c == escape => name.extend(chars.next()),
            _ => name.push(c),
        }
    }
    if name.is_empty() || quote.is_some() {
        return None;
    }
    Some(Heredoc { name, content: String::new(), expand: !quoted, chomp, fd })
}

enum Json {
    Strings(Vec<String>),
    NotStrings,
    Text,
}

fn json_strings(args: &str) -> Json {
    if !args.starts_with('[') {
        return Json::Text;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(args) {
        Err(_) => Json::Text,
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
    }
}

/// Fields of a CSV record (as Go's encoding/csv reads one line): commas separate, double
/// quotes group and `""` inside them is a quote.
fn csv_fields(value: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields.retain(|f| !f.trim().is_empty());
    fields
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace)
}

/// A Go `time.ParseDuration` string: `300ms`, `1.5h`, `2h45m`, or `0`.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !total.is_finite() || total > u64::MAX as f64 / 2.0 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// A size such as `64m` or `1g` (1024-based, as Docker's RAMInBytes), or plain bytes.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let digits = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let number: u64 = lower[..digits].parse().ok()?;
    let shift = match &lower[digits..] {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}
