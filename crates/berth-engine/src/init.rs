//! `run --init` and `--init-path` (issue 7): a small init as the container's PID 1, with the
//! command as its child, so orphans are reaped and `stop` reaches a command that has no signal
//! handler of its own.
//!
//! The init is berth's own (init/berth-init.rs, built static by build.rs and embedded here).
//! At create it is written once under the data root, named by its sha256 digest
//! (`ROOT/init/berth-init-HEX`, 0555, written to a temporary name and renamed, so concurrent
//! creates and a later berth with another init never see a partial file), and the spec
//! bind-mounts it read-only at [`CONTAINER_PATH`] and runs
//! `/run/berth-init -- ENTRYPOINT... CMD...`, as Podman does with catatonit at
//! /run/podman-init. `--init-path FILE` mounts that host file instead.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::debug;

/// The init's static executable, as build.rs made it.
pub static BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where the init appears inside the container.
pub const CONTAINER_PATH: &str = "/run/berth-init";

/// Errors of `--init`; each names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("--init-path {path} needs --init (it only chooses which init --init runs)")]
    PathWithoutInit { path: PathBuf },
    #[error("--init-path {path}: {reason}")]
    BadInitPath { path: PathBuf, reason: &'static str },
    #[error("--init-path {path}")]
    StatInitPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing berth's init to {path}")]
    Install {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `--init` flags as typed, and the host file they resolved to at create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InitOptions {
    /// `--init`
    pub init: bool,
    /// `--init-path FILE`: a host executable to use as the init instead of berth's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_path: Option<PathBuf>,
    /// Filled in by [`prepare`]: the host file mounted at [`CONTAINER_PATH`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_binary: Option<PathBuf>,
}

/// Checks the flags and, with `--init`, finds or writes the init for a new container of data
/// root `root`; returns the options with [`InitOptions::init_binary`] filled in.
pub fn prepare(root: &Path, options: &InitOptions) -> Result<InitOptions, InitError> {
    let mut out = options.clone();
    if !options.init {
        if let Some(path) = &options.init_path {
            return Err(InitError::PathWithoutInit { path: path.clone() });
        }
        return Ok(out);
    }
    let binary = match &options.init_path {
        Some(path) => {
            check_init_path(path)?;
            path.clone()
        }
        None => install(root)?,
    };
    out.init_binary = Some(binary);
    Ok(out)
}

fn check_init_path(path: &Path) -> Result<(), InitError> {
    if !path.is_absolute() {
        return Err(InitError::BadInitPath { path: path.into(), reason: "not an absolute path" });
    }
    let meta = fs::metadata(path)
        .map_err(|source| InitError::StatInitPath { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(InitError::BadInitPath { path: path.into(), reason: "not a regular file" });
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(InitError::BadInitPath { path: path.into(), reason: "not executable" });
    }
    Ok(())
}

/// The embedded init's file under `root`, written if it is not there yet.
pub fn install(root: &Path) -> Result<PathBuf, InitError> {
    let digest = berth_image::digest::Digest::sha256(BINARY);
    let dir = root.join("init");
    let path = dir.join(format!("berth-init-{}", digest.hex()));
    // Named by its content: a file of the right size there is this init.
    if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == BINARY.len() as u64) {
        return Ok(path);
    }
    let fail = |source| InitError::Install { path: path.clone(), source };
    fs::create_dir_all(&dir).map_err(fail)?;
    let mut temp =
        tempfile::Builder::new().prefix(".berth-init-").tempfile_in(&dir).map_err(fail)?;
    temp.write_all(BINARY).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o555)).map_err(fail)?;
    temp.persist(&path).map_err(|e| fail(e.error))?;
    debug!(path = %path.display(), "wrote berth's init");
    Ok(path)
}

/// Puts the init into a generated spec (its JSON form): the read-only bind mount of the host
/// file at [`CONTAINER_PATH`], and the process line behind `/run/berth-init --`. Nothing
/// without `--init`; with it but no resolved file (a record made without [`prepare`]), the
/// spec is left alone too.
pub fn apply(spec: &mut Value, options: &InitOptions) {
    let (true, Some(binary)) = (options.init, &options.init_binary) else { return };
    if let Some(args) = spec["process"]["args"].as_array_mut() {
        args.splice(0..0, [json!(CONTAINER_PATH), json!("--")]);
    }
    if !spec["mounts"].is_array() {
        spec["mounts"] = json!([]);
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != CONTAINER_PATH);
        mounts.push(json!({
            "destination": CONTAINER_PATH,
            "type": "bind",
            "source": binary,
            "options": ["bind", "rprivate", "ro", "nosuid", "nodev"],
        }));
    }
}

/// The process line without the init, as `ps` and `inspect` show the command.
pub fn strip(args: &[String]) -> &[String] {
    match args {
        [init, dashes, rest @ ..] if init == CONTAINER_PATH && dashes == "--" => rest,
        _ => args,
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// The init written to a temporary data root.
    fn installed() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let path = install(root.path()).unwrap();
        (root, path)
    }

    /// Waits for `child` for up to a minute (a loaded machine is slow), killing it after.
    fn wait(mut child: Child) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth-init did not exit within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(init: &Path, args: &[&str]) -> Child {
        Command::new(init).args(args).stdin(Stdio::null()).spawn().unwrap()
    }

    #[test]
    fn the_init_is_written_once_read_only_and_named_by_its_digest() {
        let (root, path) = installed();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let digest = berth_image::digest::Digest::sha256(&fs::read(&path).unwrap());
        assert_eq!(name, format!("berth-init-{}", digest.hex()));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o555);
        assert_eq!(install(root.path()).unwrap(), path);
        assert_eq!(fs::read_dir(root.path().join("init")).unwrap().count(), 1);
    }

    #[test]
    fn exit_codes_pass_through_and_a_death_by_signal_is_128_plus_n() {
        let (_root, init) = installed();
        assert_eq!(wait(spawn(&init, &["--", "sh", "-c", "exit 3"])), Some(3));
        assert_eq!(wait(spawn(&init, &["sh", "-c", "kill -TERM $$"])), Some(143));
        assert_eq!(wait(spawn(&init, &["/no/such/command"])), Some(127));
        assert_eq!(wait(spawn(&init, &[])), Some(125));
    }

    // The init blocks SIGTERM for itself: the command ends only if the init passes it on.
    #[test]
    fn signals_are_forwarded_to_the_command() {
        let (_root, init) = installed();
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script =
            format!("trap 'exit 7' USR1; touch {}; while :; do sleep 0.05; done", ready.display());
        let child = spawn(&init, &["--", "sh", "-c", &script]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::USR1,
        )
        .unwrap();
        assert_eq!(wait(child), Some(7));
    }

    // Orphans of the command become the init's children (it is a subreaper off PID 1) and
    // are reaped: none stays a zombie while the command runs on.
    #[test]
    fn orphans_are_reaped() {
        let (_root, init) = installed();
        let child = spawn(&init, &["--", "sh", "-c", "(sleep 0 &); (sleep 0 &); exec sleep 60"]);
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        // (state, command line) of each of the init's children.
        let children = || -> Vec<(String, String)> {
            let list =
                fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            list.split_whitespace()
                .map(|p| {
                    let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                    let state = stat.rsplit_once(") ").map(|(_, r)| r[..1].to_owned());
                    let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    (
                        state.unwrap_or_default(),
                        String::from_utf8_lossy(&cmdline).replace('\0', " "),
                    )
                })
                .collect()
        };
        // Done when the init's one child is the command after its exec: by then both
        // `sleep 0` were started, so they are gone only if the init reaped them.
        loop {
            let found = children();
            if found.len() == 1 && found[0].1.trim_end() == "sleep 60" {
                break;
            }
            assert!(Instant::now() < deadline, "the init's children stayed: {found:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::TERM,
        );
        assert_eq!(wait(child), Some(143));
    }

    #[test]
    fn the_spec_runs_the_command_under_the_init() {
        let options = InitOptions {
            init: true,
            init_path: None,
            init_binary: Some("/var/lib/berth/init/berth-init-ab".into()),
        };
        let mut spec = json!({"process": {"args": ["sh", "-c", "true"]}, "mounts": []});
        apply(&mut spec, &options);
        assert_eq!(spec["process"]["args"], json!(["/run/berth-init", "--", "sh", "-c", "true"]));
        assert_eq!(spec["mounts"][0]["destination"], "/run/berth-init");
        assert_eq!(spec["mounts"][0]["source"], "/var/lib/berth/init/berth-init-ab");
        assert!(spec["mounts"][0]["options"].as_array().unwrap().contains(&json!("ro")));
        let args: Vec<String> = serde_json::from_value(spec["process"]["args"].clone()).unwrap();
        assert_eq!(strip(&args), ["sh", "-c", "true"]);

        let mut plain = json!({"process": {"args": ["sh"]}});
        apply(&mut plain, &InitOptions::default());
        assert_eq!(plain["process"]["args"], json!(["sh"]));
    }

    #[test]
    fn init_path_is_checked_and_needs_init() {
        let root = tempfile::tempdir().unwrap();
        let alone = InitOptions { init_path: Some("/bin/true".into()), ..Default::default() };
        let err = prepare(root.path(), &alone).unwrap_err().to_string();
        assert!(err.contains("needs --init"), "{err}");
        let missing =
            InitOptions { init: true, init_path: Some("/no/init".into()), ..Default::default() };
        assert!(prepare(root.path(), &missing)
            .unwrap_err()
            .to_string()
            .starts_with("--init-path /no/init"));
        let not_exec =
            InitOptions { init: true, init_path: Some("/etc/passwd".into()), ..Default::default() };
        assert!(prepare(root.path(), &not_exec)
            .unwrap_err()
            .to_string()
            .contains("not executable"));
        let given =
            InitOptions { init: true, init_path: Some("/bin/true".into()), ..Default::default() };
        assert_eq!(prepare(root.path(), &given).unwrap().init_binary, Some("/bin/true".into()));
        let ours = prepare(root.path(), &InitOptions { init: true, ..Default::default() }).unwrap();
        assert!(ours.init_binary.unwrap().starts_with(root.path().join("init")));
    }
}
