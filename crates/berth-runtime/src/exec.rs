//! `exec`: start another process in a created or running container, joining every namespace
//! its init has that the runtime does not share (user first, mount last), then applying the
//! process's own user, capabilities, rlimits, terminal and working directory.
//!
//! As for the init, the joining child is made non-dumpable before it enters any namespace and
//! execs the user's binary directly (see crate::init on CVE-2019-5736).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::Process;

use crate::create::{ns_proc_names, wait_init, write_pid_file};
use crate::namespaces::ns_inode;
use crate::state::{StateRoot, Status};
use crate::sync::{Channel, Msg};
use crate::{console, init, process, sys, Error};

/// The options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// What went wrong while exec'ing.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot exec in container {id}: it is {status}")]
    NotRunning { id: String, status: Status },
    #[error("opening the init's {name} namespace: {source}")]
    OpenNs {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("connecting to the console socket {path}: {source}")]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("process.terminal is set: --console-socket is needed")]
    NoConsoleSocket,
    #[error("preparing the process: {0}")]
    Prepare(#[source] io::Error),
    #[error("exec: {0}")]
    Child(String),
    #[error("the process exited during setup")]
    Died,
}

/// Runs `opts.process` in container `id`. Returns the exit code, or 0 once started with
/// `detach`.
pub fn exec(root: &StateRoot, id: &str, opts: &ExecOptions) -> Result<i32, Error> {
    crate::spec::check_process_extras(&opts.process)?;
    let c = root.load(id)?;
    let status = c.status();
    if !matches!(status, Status::Created | Status::Running) {
        return Err(ExecError::NotRunning { id: id.to_owned(), status }.into());
    }
    let pid = c.record.pid.to_string();
    let mut joins: Vec<(libc::c_int, OwnedFd)> = Vec::new();
    let mut joined_user = false;
    for (typ, name) in ns_proc_names() {
        if ns_inode(&pid, name) == ns_inode("self", name) {
            continue;
        }
        let fd = sys::open(&PathBuf::from(format!("/proc/{pid}/ns/{name}")), libc::O_RDONLY, 0)
            .map_err(|source| ExecError::OpenNs { name, source })?;
        joined_user |= name == "user";
        joins.push((crate::spec::ns_flag(typ), fd));
    }
    // The container's seccomp filter applies to every process in it, as in runc.
    let config = c.record.bundle.join("config.json");
    // So does its linux.personality (runc applies it to exec'd processes too).
    let (seccomp, personality) = match std::fs::read(&config) {
        Ok(bytes) => {
            let spec = crate::spec::parse(&config, &bytes)?;
            let personality =
                spec.linux().as_ref().and_then(|l| l.personality().as_ref()).map(|p| p.domain());
            (crate::create::compile_seccomp(root, &spec)?, personality)
        }
        Err(_) => (None, None),
    };
    let listener = seccomp.as_ref().and_then(crate::create::Listener::of);
    let terminal = opts.process.terminal() == Some(true);
    let console = match (&opts.console_socket, terminal) {
        (Some(path), true) => Some(
            sys::connect_unix(path)
                .map_err(|source| ExecError::ConsoleSocket { path: path.clone(), source })?,
        ),
        (None, true) => return Err(ExecError::NoConsoleSocket.into()),
        _ => None,
    };
    // setgroups may be denied in the container's user namespace (a rootless self-map).
    let setgroups_denied = joined_user
        && std::fs::read_to_string(format!("/proc/{pid}/setgroups"))
            .is_ok_and(|s| s.trim() == "deny");

    let (parent_end, child_end) = sys::seqpacket_pair().map_err(ExecError::Prepare)?;
    let min_fd = 3 + opts.preserve_fds as i32;
    let moved = sys::dup_above(child_end.as_raw_fd(), min_fd).map_err(ExecError::Prepare)?;
    // Only the child may hold its end, or end of file never comes.
    drop(child_end);
    let child_end = moved;
    let console = console
        .map(|c| sys::dup_above(c.as_raw_fd(), min_fd))
        .transpose()
        .map_err(ExecError::Prepare)?;
    let chan = Channel { fd: parent_end };
    if !opts.detach {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0).map_err(ExecError::Prepare)?;
    }

    // The process joins the container's cgroups, as runc's exec does, so that limits hold
    // for it and kill --all finds it (see create::SelfPlacement).
    let placement = c.cgroup_manager().map(|m| crate::create::SelfPlacement::of(&m));
    let (fork, v2_placed) = match &placement {
        Some(p) => p.fork(0),
        None => sys::fork().map(|f| (f, false)),
    }
    .map_err(ExecError::Prepare)?;
    let child = match fork {
        sys::Fork::Child => {
            drop(chan);
            let chan = Channel { fd: child_end };
            let mut cgroup_files = Vec::new();
            if let Some(p) = &placement {
                cgroup_files.extend(p.tasks.iter().cloned());
                if !v2_placed {
                    cgroup_files.extend(p.v2.as_ref().map(|(dir, _)| dir.join("cgroup.procs")));
                }
            }
            let setup = ChildSetup {
                setgroups_denied,
                seccomp: seccomp.as_ref(),
                personality,
                cgroup_files,
            };
            let err = child_main(&chan, &joins, console, opts, &setup);
            let _ = chan.send(&Msg::Error(err.clone()));
            eprintln!("berth-oci exec: {err}");
            sys::exit_child(1)
        }
        sys::Fork::Parent(p) => p,
    };
    drop(child_end);
    drop(console);
    drop(joins);

    let mut target = 0;
    loop {
        let (msg, fd) = chan.recv_with_fd().map_err(ExecError::Prepare)?;
        match msg {
            Some(Msg::Pid(p)) => target = p,
            Some(Msg::SeccompFd) => {
                let mut record = c.record.clone();
                record.pid = target;
                let state = crate::create::Listener::state(&record, c.status());
                if let Err(e) = crate::create::Listener::hand_over(listener.as_ref(), fd, &state) {
                    let _ = chan.send(&Msg::Error(e.to_string()));
                    let _ = sys::waitpid(child);
                    return Err(e.into());
                }
                chan.send(&Msg::Ack).map_err(ExecError::Prepare)?;
            }
            Some(Msg::Error(e)) => {
                let _ = sys::waitpid(child);
                return Err(ExecError::Child(e).into());
            }
            Some(_) => {}
            // End of file: the process exec'd (its end is close-on-exec), or died.
            None => break,
        }
    }
    let _ = sys::waitpid(child);
    if target == 0 {
        return Err(ExecError::Died.into());
    }
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, target)?;
    }
    if opts.detach {
        return Ok(0);
    }
    Ok(wait_init(target))
}

/// What the joining child takes from the container's config and its user namespace.
struct ChildSetup<'a> {
    /// setgroups is denied in the container's user namespace.
    setgroups_denied: bool,
    seccomp: Option<&'a crate::seccomp::Filter>,
    personality: Option<oci_spec::runtime::LinuxPersonalityDomain>,
    /// The container's cgroup files to write "0" to (v1 `tasks`, or cgroup.procs of a cgroup2
    /// directory the fork did not start in).
    cgroup_files: Vec<PathBuf>,
}

/// The joining child: returns only an error message.
fn child_main(
    chan: &Channel,
    joins: &[(libc::c_int, OwnedFd)],
    console: Option<OwnedFd>,
    opts: &ExecOptions,
    setup: &ChildSetup<'_>,
) -> String {
    let p = &opts.process;
    for file in &setup.cgroup_files {
        if let Err(e) = std::fs::write(file, "0") {
            return format!("joining the container's cgroup {}: {e}", file.display());
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        if let Err(e) = process::set_oom_score_adj(adj) {
            return e.to_string();
        }
    }
    if let Err(e) = process::apply_initial_affinity(p) {
        return e.to_string();
    }
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0) {
        return format!("PR_SET_DUMPABLE: {e}");
    }
    for (flag, fd) in joins {
        if let Err(e) = sys::setns(fd.as_raw_fd(), *flag) {
            return format!("joining namespace {flag:#x}: {e}");
        }
    }
    // The pid namespace applies to children: fork into it.
    match sys::fork() {
        Err(e) => return format!("forking into the container: {e}"),
        Ok(sys::Fork::Parent(pid)) => {
            let _ = chan.send(&Msg::Pid(pid));
            sys::exit_child(0)
        }
        Ok(sys::Fork::Child) => {}
    }
    // SAFETY: setsid takes no arguments.
    unsafe { libc::setsid() };
    if let Err(e) = process::set_rlimits(p) {
        return e.to_string();
    }
    if p.terminal() == Some(true) {
        let Some(sock) = console.as_ref() else { return "no console socket".into() };
        let size = p.console_size().map(|b| (b.height() as u16, b.width() as u16));
        if let Err(e) = console::setup(sock.as_raw_fd(), size) {
            return e.to_string();
        }
    }
    drop(console);
    let env = p.env().clone().unwrap_or_default();
    let argv = p.args().clone().unwrap_or_default();
    let Some(arg0) = argv.first() else { return "process.args: missing or empty".into() };
    let exe = match process::find_executable(arg0, &env) {
        Ok(e) => e,
        Err(e) => return e.to_string(),
    };
    // As in the init, the domain is set last before finish (see crate::init).
    if let Some(domain) = setup.personality {
        if let Err(e) = process::set_personality(domain) {
            return e.to_string();
        }
    }
    let method = setup
        .setgroups_denied
        .then_some(crate::namespaces::MapMethod::Direct { deny_setgroups: true });
    // A notifying filter goes in while the runtime still listens (see crate::init).
    let mut seccomp = setup.seccomp;
    if let Some(f) = seccomp.filter(|f| f.notifies()) {
        if let Err(e) = init::load_notify_filter(chan, f, p.no_new_privileges() == Some(true)) {
            return e;
        }
        seccomp = None;
    }
    let keep = [chan.fd.as_raw_fd()];
    match init::finish(p, opts.preserve_fds, &keep, method, seccomp, &exe) {
        Ok(n) => match n {},
        Err(e) => e.to_string(),
    }
}
