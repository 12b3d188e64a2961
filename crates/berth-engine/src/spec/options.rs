//! The run options that shape a container's spec, as the user typed them (so they can be
//! stored with the record and shown by `inspect`), and the parsers of their values.
//!
//! Each field mirrors one of Podman's `run`/`create` flags; the doc comment is the flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::PosixRlimitType;
use serde::{Deserialize, Serialize};

use super::SpecError;

/// The flags of `berth run`/`berth create` that decide the runtime spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RunOptions {
    /// `--name`
    pub name: Option<String>,
    /// The command and arguments after the image.
    pub command: Vec<String>,
    /// `-e, --env KEY=VALUE | KEY | PREFIX*`
    pub env: Vec<String>,
    /// `--env-file FILE`
    pub env_files: Vec<PathBuf>,
    /// `-w, --workdir DIR`
    pub workdir: Option<String>,
    /// `-u, --user USER[:GROUP]`
    pub user: Option<String>,
    /// `--group-add GROUP`
    pub group_add: Vec<String>,
    /// `--entrypoint CMD | '["CMD","ARG"]'`; an empty string resets the image's entrypoint.
    pub entrypoint: Option<String>,
    /// `-h, --hostname NAME`
    pub hostname: Option<String>,
    /// `--read-only`
    pub read_only: bool,
    /// `--read-only-tmpfs` (default true): with `--read-only`, tmpfs on /run, /tmp, /var/tmp.
    pub read_only_tmpfs: bool,
    /// `--tmpfs DEST[:OPTIONS]`
    pub tmpfs: Vec<String>,
    /// `--cap-add CAP | ALL`
    pub cap_add: Vec<String>,
    /// `--cap-drop CAP | ALL`
    pub cap_drop: Vec<String>,
    /// `--security-opt seccomp=FILE|unconfined | no-new-privileges[=true|false]`
    pub security_opt: Vec<String>,
    /// `--privileged`: see [`crate::spec::generate`] for exactly what it turns off.
    pub privileged: bool,
    /// `--network none | host | bridge | NAME | container:ID | ns:PATH | pasta`
    pub network: Option<String>,
    /// `-p`, `-P`, `--dns*`, `--add-host`, `--network-alias` (crate::network::engine; the
    /// `network` field there repeats `--network`).
    #[serde(default)]
    pub networking: crate::network::engine::ContainerNetworkOptions,
    /// `-t, --tty`
    pub tty: bool,
    /// `-i, --interactive`
    pub interactive: bool,
    /// `-l, --label KEY=VALUE`
    pub labels: Vec<String>,
    /// `--annotation KEY=VALUE`
    pub annotations: Vec<String>,
    /// `--stop-signal SIGNAL`
    pub stop_signal: Option<String>,
    /// `--stop-timeout SECONDS` (default 10)
    pub stop_timeout: Option<u32>,
    /// `--ulimit NAME=SOFT[:HARD]`
    pub ulimits: Vec<String>,
    /// The resource flags (issue 7, spec/resources.rs).
    #[serde(flatten)]
    pub resources: super::resources::ResourceOptions,
    /// `-v` and `--mount`, and what they resolved to (issue 7, crate::volumes).
    #[serde(flatten)]
    pub volumes: crate::volumes::VolumeOptions,
    /// `--init` and `--init-path`, and the init they resolved to (issue 7, crate::init).
    #[serde(flatten)]
    pub init: crate::init::InitOptions,
    /// `--restart`, the healthcheck flags, `--log-driver`, `--log-opt` (issue 7,
    /// crate::monitor::duties).
    #[serde(flatten)]
    pub duties: crate::monitor::duties::DutyOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            name: None,
            command: Vec::new(),
            env: Vec::new(),
            env_files: Vec::new(),
            workdir: None,
            user: None,
            group_add: Vec::new(),
            entrypoint: None,
            hostname: None,
            read_only: false,
            read_only_tmpfs: true,
            tmpfs: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            security_opt: Vec::new(),
            privileged: false,
            network: None,
            networking: Default::default(),
            tty: false,
            interactive: false,
            labels: Vec::new(),
            annotations: Vec::new(),
            stop_signal: None,
            stop_timeout: None,
            ulimits: Vec::new(),
            resources: Default::default(),
            volumes: Default::default(),
            init: Default::default(),
            duties: Default::default(),
        }
    }
}

/// The seconds `stop` waits for the stop signal to work before it sends SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: u32 = 10;

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of the container's own with only a loopback interface.
    None,
    /// The host's network namespace.
    Host,
    /// A namespace berth's networking makes and connects before the process starts (bridge,
    /// named networks, container:, ns:, pasta), joined by path (crate::network::engine).
    Attached,
}

impl NetworkMode {
    /// Parses `--network`. No flag means berth's networking: the default bridge network
    /// rootful, pasta rootless (crate::network::mode).
    pub fn parse(value: Option<&str>) -> Result<Self, SpecError> {
        match value {
            Some("none") => Ok(Self::None),
            Some("host") => Ok(Self::Host),
            // Checked in full by crate::network::engine before the container is created.
            None | Some(_) => Ok(Self::Attached),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Host => "host",
            Self::Attached => "bridge",
        }
    }
}

/// Which seccomp filter the container gets: the containers-common profile
/// (/usr/share/containers/seccomp.json) where installed, berth-runtime's embedded equivalent
/// otherwise, the profile file given, or none. Spec generation resolves the profile for the
/// container's capabilities into `linux.seccomp` ([`crate::spec::generate::resolve_seccomp`]),
/// as Podman writes it into config.json; the runtime compiles and loads that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path")]
pub enum SeccompChoice {
    Default,
    File(PathBuf),
    Unconfined,
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    pub seccomp: SeccompChoice,
    pub no_new_privileges: bool,
}

impl SecurityOpts {
    pub fn parse(values: &[String]) -> Result<Self, SpecError> {
        let mut out = Self { seccomp: SeccompChoice::Default, no_new_privileges: false };
        for value in values {
            let bad = |reason: &str| SpecError::BadSecurityOpt {
                value: value.clone(),
                reason: reason.to_owned(),
            };
            // Podman accepts both `key=value` and the older `key:value`.
            let (key, arg) = match value.split_once(['=', ':']) {
                Some((key, arg)) => (key, Some(arg)),
                None => (value.as_str(), None),
            };
            match (key, arg) {
                ("seccomp", Some("unconfined")) => out.seccomp = SeccompChoice::Unconfined,
                ("seccomp", Some("")) | ("seccomp", None) => {
                    return Err(bad("seccomp needs a profile file or \"unconfined\""))
                }
                ("seccomp", Some(path)) => {
                    let path = Path::new(path);
                    std::fs::metadata(path).map_err(|source| SpecError::SeccompProfile {
                        path: path.to_owned(),
                        source,
                    })?;
                    out.seccomp = SeccompChoice::File(path.to_owned());
                }
                ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
                ("no-new-privileges", Some(_)) => return Err(bad("expected true or false")),
                // berth applies neither SELinux labels nor AppArmor profiles, so asking for
                // them to be off asks for what already holds.
                ("label", Some("disable")) | ("apparmor", Some("unconfined")) => {}
                ("label" | "apparmor" | "mask" | "unmask" | "proc-opts" | "systempaths", _) => {
                    return Err(SpecError::NotSupportedYet {
                        what: format!("--security-opt {value}"),
                    })
                }
                _ => return Err(bad("unknown option")),
            }
        }
        Ok(out)
    }
}

/// One `--ulimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub kind: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

const ULIMIT_NAMES: &[(&str, PosixRlimitType)] = &[
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (Docker's syntax); `-1` means unlimited.
    pub fn parse(value: &str) -> Result<Self, SpecError> {
        let bad = |reason: String| SpecError::BadUlimit { value: value.to_owned(), reason };
        if value == "host" {
            return Err(SpecError::NotSupportedYet { what: "--ulimit host".to_owned() });
        }
        let (name, limits) =
            value.split_once('=').ok_or_else(|| bad("expected NAME=SOFT[:HARD]".to_owned()))?;
        let kind = ULIMIT_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| bad(format!("unknown ulimit type {name:?}")))?;
        let number = |text: &str| -> Result<u64, SpecError> {
            match text {
                "-1" | "unlimited" => Ok(u64::MAX),
                _ => text.parse().map_err(|_| bad(format!("{text:?} is not a number"))),
            }
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => {
                let both = number(limits)?;
                (both, both)
            }
        };
        if soft > hard {
            return Err(bad(format!("the soft limit {soft} is above the hard limit {hard}")));
        }
        Ok(Self { kind, soft, hard })
    }
}

/// One `--tmpfs DEST[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub destination: String,
    pub options: Vec<String>,
}

impl TmpfsMount {
    pub fn parse(value: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::BadTmpfs {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (destination, options) = match value.split_once(':') {
            Some((dest, opts)) => {
                (dest, opts.split(',').filter(|o| !o.is_empty()).map(str::to_owned).collect())
            }
            None => (value, Vec::new()),
        };
        if !destination.starts_with('/') {
            return Err(bad("the destination must be an absolute path"));
        }
        if destination.split('/').any(|part| part == "..") {
            return Err(bad("the destination must not contain \"..\""));
        }
        let destination = normalize_destination(destination);
        if destination == "/" {
            return Err(bad("cannot mount a tmpfs over the root"));
        }
        Ok(Self { destination, options })
    }
}

/// `/a//b/` → `/a/b`.
pub fn normalize_destination(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Parses `KEY=VALUE` lists (`--label`, `--annotation`); a bare `KEY` means an empty value.
pub fn parse_key_values(
    flag: &'static str,
    values: &[String],
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    for value in values {
        let (key, val) = value.split_once('=').unwrap_or((value, ""));
        if key.is_empty() {
            return Err(SpecError::BadKeyValue {
                flag,
                value: value.clone(),
                reason: "the key is empty".to_owned(),
            });
        }
        out.insert(key.to_owned(), val.to_owned());
    }
    Ok(out)
}

/// Linux signal names and numbers (x86-64, arm64 and the other generic-ABI architectures).
pub const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// Parses a signal as Podman does: a number, a name with or without `SIG` in any case, or
/// `RTMIN+N` / `RTMAX-N`.
pub fn parse_signal(value: &str) -> Result<i32, SpecError> {
    let bad = || SpecError::BadSignal { value: value.to_owned() };
    if let Ok(number) = value.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&number) { Ok(number) } else { Err(bad()) };
    }
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, number)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(*number);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SpecError> {
        let offset: i32 = if rest.is_empty() { 0 } else { rest.parse().map_err(|_| bad())? };
        let number = base + sign * offset;
        if (SIGRTMIN..=SIGRTMAX).contains(&number) {
            Ok(number)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(SIGRTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(SIGRTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(bad())
}

/// The conventional name of signal `number` (`SIGTERM`), or `SIGRTMIN+N`.
pub fn signal_name(number: i32) -> String {
    if let Some((name, _)) = SIGNALS.iter().find(|(_, n)| *n == number) {
        return format!("SIG{name}");
    }
    match number {
        SIGRTMIN => "SIGRTMIN".to_owned(),
        n if n > SIGRTMIN && n <= SIGRTMAX => format!("SIGRTMIN+{}", n - SIGRTMIN),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_like_docker() {
        assert_eq!(
            Ulimit::parse("nofile=1024:2048").unwrap(),
            Ulimit { kind: PosixRlimitType::RlimitNofile, soft: 1024, hard: 2048 }
        );
        assert_eq!(Ulimit::parse("core=-1").unwrap().hard, u64::MAX);
        assert_eq!(Ulimit::parse("nproc=5").unwrap().soft, 5);
        for (bad, says) in [
            ("nofile", "expected NAME=SOFT[:HARD]"),
            ("files=1", "unknown ulimit type \"files\""),
            ("nofile=x", "\"x\" is not a number"),
            ("nofile=10:5", "the soft limit 10 is above the hard limit 5"),
        ] {
            let err = Ulimit::parse(bad).unwrap_err().to_string();
            assert_eq!(err, format!("invalid --ulimit {bad:?}: {says}"));
        }
    }

    #[test]
    fn signals_parse_by_name_number_and_realtime_offset() {
        for (text, number) in [
            ("SIGTERM", 15),
            ("term", 15),
            ("9", 9),
            ("SIGRTMIN+3", 37),
            ("RTMAX-1", 63),
            ("sigwinch", 28),
        ] {
            assert_eq!(parse_signal(text).unwrap(), number, "{text}");
        }
        for bad in ["0", "65", "SIGFOO", "RTMIN+40", ""] {
            assert!(parse_signal(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(37), "SIGRTMIN+3");
    }

    #[test]
    fn security_opts() {
        let opts = SecurityOpts::parse(&["seccomp=unconfined".into(), "no-new-privileges".into()])
            .unwrap();
        assert_eq!(
            opts,
            SecurityOpts { seccomp: SeccompChoice::Unconfined, no_new_privileges: true }
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let opts = SecurityOpts::parse(&[format!("seccomp={}", file.path().display())]).unwrap();
        assert_eq!(opts.seccomp, SeccompChoice::File(file.path().to_owned()));
        let err = SecurityOpts::parse(&["seccomp=/nonexistent/profile.json".into()]).unwrap_err();
        assert!(err.to_string().starts_with("seccomp profile /nonexistent/profile.json"), "{err}");
        assert!(matches!(
            SecurityOpts::parse(&["apparmor=myprofile".into()]),
            Err(SpecError::NotSupportedYet { .. })
        ));
        assert!(matches!(
            SecurityOpts::parse(&["bogus".into()]),
            Err(SpecError::BadSecurityOpt { .. })
        ));
    }

    #[test]
    fn tmpfs_and_networks() {
        let t = TmpfsMount::parse("/scratch//x/:size=1m,mode=1777").unwrap();
        assert_eq!(t.destination, "/scratch/x");
        assert_eq!(t.options, ["size=1m", "mode=1777"]);
        assert!(TmpfsMount::parse("tmp").is_err());
        assert!(TmpfsMount::parse("/").is_err());
        assert!(TmpfsMount::parse("/a/../etc").is_err());
        assert_eq!(NetworkMode::parse(Some("host")).unwrap(), NetworkMode::Host);
        assert_eq!(NetworkMode::parse(Some("none")).unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse(None).unwrap(), NetworkMode::Attached);
        // Everything else is berth's networking, joined by path (crate::network::engine).
        assert_eq!(NetworkMode::parse(Some("bridge")).unwrap(), NetworkMode::Attached);
        assert_eq!(NetworkMode::parse(Some("container:abc")).unwrap(), NetworkMode::Attached);
    }

    #[test]
    fn run_options_round_trip_through_json_with_defaults() {
        let opts: RunOptions = serde_json::from_str(r#"{"tty":true}"#).unwrap();
        assert!(opts.tty && opts.read_only_tmpfs);
        let back: RunOptions =
            serde_json::from_value(serde_json::to_value(&opts).unwrap()).unwrap();
        assert_eq!(back, opts);
    }
}
