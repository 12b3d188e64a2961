//! An unprivileged user for rootless tests: `berth-test`, with ranges in /etc/subuid and
//! /etc/subgid so that newuidmap and newgidmap (Debian's uidmap) can map a whole container's
//! worth of ids, and a runtime directory as a login session would have.
//!
//! scripts/setup-host creates the user up front; [`TestUser::get`] creates it too when it is
//! missing (as root), so a test run on a machine set up by hand still works.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, ensure, Context, Result};

/// The test user's login name.
pub const NAME: &str = "berth-test";

/// Where the user's subordinate ranges start and how long they are, if berth-testkit has to
/// write them itself.
const SUB_START: u32 = 200_000;
const SUB_COUNT: u32 = 65_536;

/// One subordinate id range from /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// The unprivileged test user.
#[derive(Debug)]
pub struct TestUser {
    uid: u32,
    gid: u32,
    home: PathBuf,
    subuid: IdRange,
    subgid: IdRange,
}

impl TestUser {
    /// The test user, created with its id ranges on first use in this process.
    pub fn get() -> &'static TestUser {
        static USER: OnceLock<TestUser> = OnceLock::new();
        USER.get_or_init(|| Self::ensure().unwrap_or_else(|err| panic!("test user: {err:#}")))
    }

    fn ensure() -> Result<Self> {
        if lookup_passwd(NAME)?.is_none() {
            ensure!(rustix_is_root(), "user {NAME} is missing and only root can create it");
            run(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", NAME]))?;
        }
        let (uid, gid, home) = lookup_passwd(NAME)?.context("user vanished after useradd")?;
        let subuid = ensure_range("/etc/subuid")?;
        let subgid = ensure_range("/etc/subgid")?;
        let user = Self { uid, gid, home, subuid, subgid };
        let runtime = user.runtime_dir();
        if !runtime.exists() {
            fs::create_dir_all(&runtime)?;
            chown(&runtime, Some(uid), Some(gid))?;
            fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))?;
        }
        Ok(user)
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn subuid(&self) -> IdRange {
        self.subuid
    }

    pub fn subgid(&self) -> IdRange {
        self.subgid
    }

    /// The user's XDG_RUNTIME_DIR, `/run/user/UID`, as a login session would make it.
    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// A command that runs `program` as the test user, with no supplementary groups and a
    /// clean environment: HOME, USER, LOGNAME, SHELL, PATH and XDG_RUNTIME_DIR only.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", NAME)
            .env("LOGNAME", NAME)
            .env("SHELL", "/bin/sh")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid);
        // std drops the supplementary groups itself when root changes the uid.
        cmd
    }
}

/// Binaries that run beside another one and are staged with it: berth execs `berth-monitor`
/// from its own directory.
const COMPANIONS: &[(&str, &str)] = &[("berth", "berth-monitor")];

/// Copies the binary at `path` into a directory every user can read and traverse, and
/// returns the copy's path: the build's target directory may sit under a home or a CI folder
/// the test user cannot enter. Copies are named by content, so a run reuses an equal copy.
/// A companion binary beside `path` ([`COMPANIONS`]) is copied beside the copy.
pub fn stage_binary(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().context("binary path has no file name")?;
    let companions: Vec<PathBuf> = COMPANIONS
        .iter()
        .filter(|(main, _)| name == *main)
        .map(|(_, companion)| path.with_file_name(companion))
        .filter(|companion| companion.is_file())
        .collect();
    let mut bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for companion in &companions {
        bytes.extend(
            fs::read(companion).with_context(|| format!("reading {}", companion.display()))?,
        );
    }
    let digest = crate::digest::sha256(&bytes);
    let dir = PathBuf::from("/var/tmp/berth-testkit-bin").join(&digest["sha256:".len()..][..16]);
    for companion in &companions {
        let name = companion.file_name().expect("named above");
        if !dir.join(name).exists() {
            copy_into(companion, &dir, name)?;
        }
    }
    let staged = dir.join(name);
    if !staged.exists() {
        copy_into(path, &dir, name)?;
    }
    prune_staged(&dir);
    Ok(staged)
}

/// Copies `path` to `dir/name`, readable and executable by everyone.
fn copy_into(path: &Path, dir: &Path, name: &std::ffi::OsStr) -> Result<()> {
    let staged = dir.join(name);
    fs::create_dir_all(dir)?;
    for d in [dir.parent().expect("has parent"), dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
    }
    // A temporary file of its own per caller (threads of one process too), renamed into
    // place: concurrent callers each install a complete copy and the last rename wins.
    // cp writes it, never a descriptor of this process: a test that forks without exec
    // (berth-storage's do) would inherit a writable descriptor and keep the copy busy
    // for exec (ETXTBSY) for as long as its child runs.
    static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".staging-{}-{n}", std::process::id()));
    let status = std::process::Command::new("cp")
        .arg(path)
        .arg(&tmp)
        .status()
        .with_context(|| format!("running cp {}", path.display()))?;
    anyhow::ensure!(status.success(), "cp {} {} failed: {status}", path.display(), tmp.display());
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, &staged)
        .with_context(|| format!("renaming {} to {}", tmp.display(), staged.display()))?;
    Ok(())
}

/// Marks `keep` as used now and removes the copies no run has used for an hour: every build
/// of a test binary stages a new copy, and without this they pile up by the gigabyte.
fn prune_staged(keep: &Path) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(3600);
    let now = std::time::SystemTime::now();
    if let Ok(dir) = fs::File::open(keep) {
        let _ = dir.set_modified(now);
    }
    let Some(Ok(entries)) = keep.parent().map(fs::read_dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE));
        if path != keep && stale {
            // Another process may remove it at the same time; either way it is gone.
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn lookup_passwd(name: &str) -> Result<Option<(u32, u32, PathBuf)>> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 7 && fields[0] == name {
            let uid = fields[2].parse().context("uid in /etc/passwd")?;
            let gid = fields[3].parse().context("gid in /etc/passwd")?;
            return Ok(Some((uid, gid, PathBuf::from(fields[5]))));
        }
    }
    Ok(None)
}

/// Returns the test user's range in `file` (/etc/subuid or /etc/subgid), appending one that
/// overlaps no other user's range when there is none.
fn ensure_range(file: &str) -> Result<IdRange> {
    let text = fs::read_to_string(file).unwrap_or_default();
    let ranges = parse_ranges(&text);
    if let Some((_, range)) = ranges.iter().find(|(user, _)| user == NAME) {
        return Ok(*range);
    }
    ensure!(rustix_is_root(), "{file} has no range for {NAME} and only root can add one");
    let start = ranges
        .iter()
        .map(|(_, r)| r.start.saturating_add(r.count))
        .chain([SUB_START])
        .max()
        .expect("chain is not empty");
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{NAME}:{start}:{SUB_COUNT}\n"));
    fs::write(file, text).with_context(|| format!("writing {file}"))?;
    Ok(IdRange { start, count: SUB_COUNT })
}

/// Parses the `name:start:count` lines of /etc/subuid or /etc/subgid, skipping malformed ones.
pub fn parse_ranges(text: &str) -> Vec<(String, IdRange)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let name = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some((name.to_owned(), IdRange { start, count }))
        })
        .collect()
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    #[test]
    fn parse_ranges_reads_the_shadow_format() {
        let ranges = parse_ranges("alice:100000:65536\n# comment\nbob:165536:65536\nbroken\n");
        assert_eq!(
            ranges,
            vec![
                ("alice".to_owned(), IdRange { start: 100_000, count: 65_536 }),
                ("bob".to_owned(), IdRange { start: 165_536, count: 65_536 }),
            ]
        );
    }

    // The command really runs as the test user, with only the clean environment.
    #[test]
    fn command_runs_as_the_user_with_a_clean_environment() {
        let user = TestUser::get();
        let out = user
            .command("sh")
            .args(["-c", "id -u; id -g; id -G; echo $XDG_RUNTIME_DIR; echo ${CARGO:-unset}"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let expected = format!(
            "{uid}\n{gid}\n{gid}\n/run/user/{uid}\nunset\n",
            uid = user.uid(),
            gid = user.gid()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    // The user's subordinate ranges are usable: newuidmap and newgidmap, run as the user, map
    // container root to the user and ids 1.. to the ranges in a fresh user namespace.
    #[test]
    fn id_ranges_are_mapped_by_newuidmap() {
        let user = TestUser::get();
        let mut child = user
            .command("unshare")
            .args([
                "--user",
                "sh",
                "-c",
                "echo ready; read line; cat /proc/self/uid_map /proc/self/gid_map",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");

        let pid = child.id().to_string();
        let (uid, gid) = (user.uid().to_string(), user.gid().to_string());
        let (su, sg) = (user.subuid(), user.subgid());
        for (tool, own, range) in [("newuidmap", &uid, su), ("newgidmap", &gid, sg)] {
            let status = user
                .command(tool)
                .args([
                    &pid,
                    "0",
                    own,
                    "1",
                    "1",
                    &range.start.to_string(),
                    &range.count.to_string(),
                ])
                .status()
                .unwrap();
            assert!(status.success(), "{tool} failed");
        }
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut maps = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut maps).unwrap();
        assert!(child.wait().unwrap().success());
        let rows: Vec<Vec<&str>> = maps.lines().map(|l| l.split_whitespace().collect()).collect();
        let (su_start, sg_start) = (su.start.to_string(), sg.start.to_string());
        let (su_count, sg_count) = (su.count.to_string(), sg.count.to_string());
        assert_eq!(
            rows,
            vec![
                vec!["0", uid.as_str(), "1"],
                vec!["1", su_start.as_str(), su_count.as_str()],
                vec!["0", gid.as_str(), "1"],
                vec!["1", sg_start.as_str(), sg_count.as_str()],
            ]
        );
    }

    // Staging from many threads at once, as parallel tests do, gives each a complete binary.
    #[test]
    fn staging_concurrently_from_threads_is_safe() {
        let src = tempfile::tempdir().unwrap();
        let bin = src.path().join("busybox-copy");
        let mut bytes = fs::read("/bin/busybox").unwrap();
        bytes.extend_from_slice(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        fs::write(&bin, &bytes).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let bin = bin.clone();
                std::thread::spawn(move || stage_binary(&bin).unwrap())
            })
            .collect();
        for t in threads {
            let staged = t.join().unwrap();
            assert_eq!(fs::read(&staged).unwrap().len(), bytes.len());
        }
        let staged = stage_binary(&bin).unwrap();
        fs::remove_dir_all(staged.parent().unwrap()).unwrap();
    }

    #[test]
    fn staged_binary_is_runnable_by_the_user() {
        let staged = stage_binary(Path::new("/bin/busybox")).unwrap();
        let out = TestUser::get().command(&staged).args(["echo", "staged"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "staged\n");
    }
}
