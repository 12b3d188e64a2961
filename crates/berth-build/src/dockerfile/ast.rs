//! The typed syntax tree of a Dockerfile or Containerfile, as the parser leaves it: every
//! instruction with its flags and arguments, values still unexpanded (expansion needs the
//! build's arguments and each stage's environment, see [`crate::expand`]), and the position
//! of each instruction in its file.
//!
//! The shapes follow the Dockerfile reference (docs.docker.com/reference/dockerfile) and the
//! BuildKit frontend that defines today's syntax.

use std::fmt;
use std::time::Duration;

/// A place in a Dockerfile: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A whole parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name errors and positions refer to (usually the path given with `-f`).
    pub file: String,
    pub directives: Directives,
    /// Every instruction in file order, stages not yet split.
    pub instructions: Vec<Instruction>,
    /// The physical lines of the file, for showing where a later step failed.
    pub lines: Vec<String>,
}

/// Parser directives from the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    pub syntax: Option<String>,
    pub escape: char,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self { syntax: None, escape: '\\', check: None }
    }
}

/// One instruction: where it is, how it read, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Position of the keyword.
    pub position: Position,
    /// The last physical line the instruction (with its heredocs) occupies.
    pub end_line: usize,
    /// The logical line after joining continuations, without heredoc bodies: what a build
    /// shows for the step and records in history.
    pub original: String,
    pub kind: InstructionKind,
}

impl Instruction {
    /// The keyword in upper case (`RUN`, `COPY`, …).
    pub fn keyword(&self) -> &'static str {
        self.kind.keyword()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    From(From),
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    Label(Vec<KeyValue>),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(Add),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Box<Instruction>),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Maintainer(String),
}

impl InstructionKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::From(_) => "FROM",
            Self::Run(_) => "RUN",
            Self::Cmd(_) => "CMD",
            Self::Entrypoint(_) => "ENTRYPOINT",
            Self::Label(_) => "LABEL",
            Self::Expose(_) => "EXPOSE",
            Self::Env(_) => "ENV",
            Self::Add(_) => "ADD",
            Self::Copy(_) => "COPY",
            Self::Volume(_) => "VOLUME",
            Self::User(_) => "USER",
            Self::Workdir(_) => "WORKDIR",
            Self::Arg(_) => "ARG",
            Self::Onbuild(_) => "ONBUILD",
            Self::Stopsignal(_) => "STOPSIGNAL",
            Self::Healthcheck(_) => "HEALTHCHECK",
            Self::Shell(_) => "SHELL",
            Self::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// `FROM [--platform=P] IMAGE [AS NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub platform: Option<String>,
    pub image: String,
    /// The stage name, lower-cased as stage names are case-insensitive.
    pub alias: Option<String>,
}

/// The command of RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The JSON array form, run without a shell.
    Exec(Vec<String>),
    /// The shell form, given to the stage's SHELL as one string (escapes kept).
    Shell(String),
}

/// A here-document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body, every line ending in `\n`; leading tabs already removed for `<<-`.
    pub content: String,
    /// False when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// True for `<<-`.
    pub chomp: bool,
    /// The file descriptor for `3<<EOF`, when one was given.
    pub fd: Option<u32>,
}

/// `RUN [--mount=…]… [--network=…] [--security=…] COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<Security>,
    pub command: Command,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

/// One `--mount=` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    /// Where it appears in the container (`target`, `dst`, `destination`).
    pub target: Option<String>,
    /// `source`/`src`: a path in `from` (bind, cache) or the secret's file name.
    pub source: Option<String>,
    /// `from`: a stage name or index, or an image, as source of a bind or cache mount.
    pub from: Option<String>,
    pub read_only: Option<bool>,
    /// `id` of a cache or secret mount.
    pub id: Option<String>,
    pub sharing: Option<CacheSharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `required` of a secret or ssh mount.
    pub required: Option<bool>,
    /// `size` of a tmpfs mount, in bytes.
    pub size: Option<u64>,
    /// `env` of a secret mount: expose it as this environment variable.
    pub env: Option<String>,
    /// The `--mount=` value as written (after flag unquoting), parsed again after expansion.
    pub raw: String,
}

impl Mount {
    pub fn new(kind: MountKind) -> Self {
        Self {
            kind,
            target: None,
            source: None,
            from: None,
            read_only: None,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            required: None,
            size: None,
            env: None,
            raw: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Secret,
    Tmpfs,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// `KEY=VALUE` of ENV and LABEL. The value is still unexpanded, quotes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One name of `ARG NAME[=DEFAULT] …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Unexpanded default, quotes included.
    pub default: Option<String>,
}

/// `ADD [--chown] [--chmod] [--checksum] [--keep-git-dir] [--link] SRC… DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub link: bool,
    pub sources: Vec<String>,
    pub destination: String,
    pub heredocs: Vec<Heredoc>,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]… SRC… DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    pub sources: Vec<String>,
    pub destination: String,
    pub heredocs: Vec<Heredoc>,
}

/// The heredoc a COPY or ADD source word such as `<<EOF` stands for.
pub fn heredoc_source<'a>(heredocs: &'a [Heredoc], source: &str) -> Option<&'a Heredoc> {
    let name = source.strip_prefix("<<")?;
    let name = name.strip_prefix('-').unwrap_or(name);
    let name = name.trim_matches(|c| c == '"' || c == '\'');
    heredocs.iter().find(|h| h.name == name)
}

/// HEALTHCHECK NONE, or HEALTHCHECK [options] CMD command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Check {
        command: Command,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}
