//! The container side of `create`: code that runs in the forked child, from the fork to the
//! exec of the container's process. Nothing here returns: every path ends in execve or
//! `_exit`, and every failure is sent to the runtime as one line before exiting.
//!
//! # Why no re-exec, and how that closes CVE-2019-5736
//!
//! runc re-executes itself as `runc init`, which is what let a container overwrite the runc
//! binary through /proc/self/exe. berth forks and then execs the *user's* binary straight from
//! the forked child: no berth code is ever started inside the container's namespaces from the
//! file system. The one window in which a process in the container could name a berth-oci
//! executable is between joining the container's pid namespace and the final execve (our
//! init while it waits to be started, or an `exec` joining a running container). Before
//! entering any namespace the container can see, the child makes itself non-dumpable
//! (PR_SET_DUMPABLE 0): /proc/PID/exe, /proc/PID/fd and /proc/PID/mem of a non-dumpable
//! process are then open only to holders of CAP_SYS_PTRACE in the user namespace that owns
//! the *runtime's* memory map, which is the host's — a container only has that when it is
//! fully privileged on the host anyway. execve of the user's binary resets the flag. This is
//! cheaper than runc's sealed memfd copy of the binary (a multi-megabyte copy on every start)
//! and is tested by reading /proc/1/exe of a created container from an exec'd process.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use crate::mounts::{self, RootfsConfig};
use crate::namespaces::{MapMethod, Plan};
use crate::process;
use crate::spec::Bundle;
use crate::sync::{Channel, Msg};
use crate::{console, hooks, sys};

/// How the init learns that it may start the process.
pub enum StartGate {
    /// `create`: open the fifo (an O_PATH descriptor, reopened through the host's /proc) for
    /// writing, which blocks until `start` opens it for reading.
    Fifo { fifo: OwnedFd, proc: OwnedFd },
    /// `run`: go straight on once set up, without a Ready: the runtime recorded the
    /// container when it got the pid, and learns of the exec by end of file (one wake-up
    /// less on each side).
    Channel,
}

/// Everything the child needs, prepared by the runtime before the fork.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub chan: Channel,
    pub plan: Plan,
    pub gate: StartGate,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub map_method: Option<MapMethod>,
    /// linux.seccomp, compiled by the runtime before the fork.
    pub seccomp: Option<crate::seccomp::Filter>,
    /// The `tasks` files of the container's v1 cgroups, which the first stage joins itself
    /// (see crate::create::SelfPlacement).
    pub cgroup_tasks: Vec<PathBuf>,
    /// Whether the runtime's clone3 made this process in its new namespaces, as the init
    /// (crate::namespaces::Plan::direct_flags): the first stage is the init then.
    pub direct: bool,
}

/// The child's entry point; never returns.
pub fn run(args: InitArgs<'_>) -> ! {
    let chan_fd = args.chan.fd.as_raw_fd();
    let chan = Channel { fd: args.chan.fd.try_clone().unwrap_or_else(|_| sys::exit_child(1)) };
    let res = stage1(args);
    let msg = match res {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // Told to the runtime if it still listens (create, run), else to the container's stderr.
    if chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("berth-oci init: {msg}");
    } else {
        drain_until_closed(&chan);
    }
    let _ = chan_fd;
    sys::exit_child(1)
}

/// Reads and drops what the runtime sent that we went past (in `run`, the Ack of our pid)
/// until it hangs up after reading our error, or for at most five seconds. A unix socket
/// closed with unread data resets its peer's connection, and the runtime would then read
/// ECONNRESET instead of the error we just sent.
fn drain_until_closed(chan: &Channel) {
    let mut pollfd = libc::pollfd { fd: chan.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pollfd is one valid, initialised entry for the length we pass.
    while unsafe { libc::poll(&mut pollfd, 1, 5000) } > 0 {
        match chan.recv() {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
}

enum Never {}

fn stage1(args: InitArgs<'_>) -> Result<Never, String> {
    let spec = &args.bundle.spec;
    let process = spec.process().as_ref().ok_or("process: missing")?;
    if args.direct {
        // Born in the container's namespaces: alone in its pid namespace, but non-dumpable
        // before anything else all the same (see the module docs).
        sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    }

    // Join the v1 cgroups first, before any namespace is joined (made directly, this process
    // is in its new ones already, which changes nothing here): "0" in `tasks` moves just the
    // caller, which the kernel does without the attach lock. Where that fails the
    // runtime moves us the usual way when it gets our pid.
    let placed = !args.cgroup_tasks.is_empty()
        && args.cgroup_tasks.iter().all(|t| fs::write(t, "0").is_ok());
    let pid_msg = |pid| if placed { Msg::PlacedPid(pid) } else { Msg::Pid(pid) };

    if let Some(adj) = process.oom_score_adj() {
        process::set_oom_score_adj(adj).map_err(|e| e.to_string())?;
    }
    process::apply_initial_affinity(process).map_err(|e| e.to_string())?;

    // Id-mapped mounts are made while this process still holds the host's privileges.
    let linux = spec.linux().clone().unwrap_or_default();
    let idmapped = mounts::prepare_idmapped(
        spec.mounts().as_deref().unwrap_or(&[]),
        &args.bundle.dir,
        (
            linux.uid_mappings().as_deref().unwrap_or(&[]),
            linux.gid_mappings().as_deref().unwrap_or(&[]),
        ),
    )
    .map_err(|e| e.to_string())?;

    if args.direct {
        // No user or pid namespace among them (Plan::direct_flags).
        join_namespaces(&args.plan)?;
        let pid = host_pid();
        args.chan.send(&pid_msg(pid)).map_err(|e| e.to_string())?;
        return init(args, false, idmapped);
    }

    let join_user = args.plan.join.iter().find(|(t, _, _)| *t == LinuxNamespaceType::User);
    if let Some((_, flag, file)) = join_user {
        sys::setns(file.as_raw_fd(), *flag)
            .map_err(|e| format!("joining the user namespace: {e}"))?;
    }
    // Other joins are checked against the user namespace we are in: the joined one, or,
    // before a new one is made, the runtime's.
    join_namespaces(&args.plan)?;
    let in_userns = args.plan.new_user || join_user.is_some() || sys::in_user_namespace();
    if args.plan.new_user {
        sys::unshare(libc::CLONE_NEWUSER).map_err(|e| format!("making a user namespace: {e}"))?;
        args.chan.send(&Msg::MapIds).map_err(|e| e.to_string())?;
        args.chan.expect_ack()?;
    }
    if in_userns {
        // Become the namespace's root where it is mapped, so that files made during setup
        // belong to it; the caps held in the namespace do not depend on it.
        // SAFETY: setresgid/setresuid take only ids; this process is single-threaded.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }

    // From here on the container's namespaces come into view; see the module docs.
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;

    // The cgroup namespace waits until the init is in its cgroup (see `Placement`).
    let flags = args.plan.new_flags & !libc::CLONE_NEWCGROUP;
    if flags != 0 {
        sys::unshare(flags).map_err(|e| format!("making namespaces: {e}"))?;
    }
    if args.plan.new_flags & libc::CLONE_NEWTIME != 0 {
        write_time_offsets(args.bundle)?;
    }

    // A pid or time namespace applies to children only: fork the init into it.
    let needs_fork =
        args.plan.has(LinuxNamespaceType::Pid) || args.plan.has(LinuxNamespaceType::Time);
    if needs_fork {
        match sys::fork().map_err(|e| format!("forking the init: {e}"))? {
            sys::Fork::Parent(pid) => {
                let _ = args.chan.send(&pid_msg(pid));
                sys::exit_child(0);
            }
            sys::Fork::Child => {}
        }
    } else {
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        args.chan.send(&pid_msg(pid)).map_err(|e| e.to_string())?;
    }
    init(args, in_userns, idmapped)
}

/// Joins the plan's namespaces other than a user namespace, in the plan's order.
fn join_namespaces(plan: &Plan) -> Result<(), String> {
    for (typ, flag, file) in &plan.join {
        if *typ == LinuxNamespaceType::User {
            continue;
        }
        sys::setns(file.as_raw_fd(), *flag)
            .map_err(|e| format!("joining the {} namespace: {e}", crate::spec::ns_name(*typ)))?;
    }
    Ok(())
}

/// This process's pid as the runtime sees it, read where the host's /proc is still mounted.
fn host_pid() -> i32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn write_time_offsets(bundle: &Bundle) -> Result<(), String> {
    let offsets =
        bundle.spec.linux().as_ref().and_then(|l| l.time_offsets().clone()).unwrap_or_default();
    let mut text = String::new();
    for (clock, off) in offsets {
        let (s, ns) = (off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0));
        text.push_str(&format!("{clock} {s} {ns}\n"));
    }
    if !text.is_empty() {
        fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| format!("writing /proc/self/timens_offsets: {e}"))?;
    }
    Ok(())
}

/// The init is in its cgroups before it does anything there: the first stage joins the v1
/// hierarchies itself and is forked into the cgroup2 directory (crate::create::SelfPlacement);
/// where either fails the runtime moves the init when it gets the pid, which is slow on
/// cgroup v1 (the attach lock waits for an RCU grace period) and overlaps with the init's
/// setup of its root. The init waits for the runtime's Ack only where it matters: before its
/// cgroup namespace, before hooks that see its pid, and before it reports ready or execs.
/// Because the Ack follows the runtime's receipt of the pid, nothing the init sends can
/// overtake the first stage's pid message either.
struct Placement(bool);

impl Placement {
    fn ensure(&mut self, chan: &Channel) -> Result<(), String> {
        if !self.0 {
            chan.expect_ack()?;
            self.0 = true;
        }
        Ok(())
    }
}

fn init(
    args: InitArgs<'_>,
    in_userns: bool,
    idmapped: Vec<Option<OwnedFd>>,
) -> Result<Never, String> {
    let mut placed = Placement(false);
    let bundle = args.bundle;
    let spec = &bundle.spec;
    let process = spec.process().as_ref().ok_or("process: missing")?;
    let linux = spec.linux().clone().unwrap_or_default();
    // SAFETY: setsid takes no arguments; the fork made us a non-leader, so it succeeds.
    unsafe { libc::setsid() };
    // Our pid as the runtime sees it, for the hooks' state.
    let host_pid = host_pid();

    if !args.no_new_keyring {
        // A session keyring of the container's own (keyctl(2), KEYCTL_JOIN_SESSION_KEYRING);
        // refused where keyrings are not namespaced for us, which is not fatal, as in runc.
        // SAFETY: a null name asks for a new anonymous session keyring.
        unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
    }

    if args.plan.new_flags & libc::CLONE_NEWCGROUP != 0 {
        placed.ensure(&args.chan)?;
        sys::unshare(libc::CLONE_NEWCGROUP).map_err(|e| format!("making namespaces: {e}"))?;
    }

    let new_mount = args.plan.new_flags & libc::CLONE_NEWNS != 0;
    if new_mount {
        let mounts = spec.mounts().clone().unwrap_or_default();
        // Without a cgroup namespace a `cgroup` mount binds this process's own cgroup
        // directories, so they must be its final ones.
        let cgroup_mount =
            mounts.iter().any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")));
        if cgroup_mount && !args.plan.has(LinuxNamespaceType::Cgroup) {
            placed.ensure(&args.chan)?;
        }
        let devices = linux.devices().clone().unwrap_or_default();
        let cfg = RootfsConfig {
            rootfs: &bundle.rootfs,
            bundle: &bundle.dir,
            mounts: &mounts,
            devices: &devices,
            propagation: linux.rootfs_propagation().as_deref(),
            in_userns,
            cgroupns: args.plan.has(LinuxNamespaceType::Cgroup),
            idmapped: &idmapped,
        };
        mounts::setup_rootfs(&cfg).map_err(|e| e.to_string())?;
    }

    // prestart and createRuntime hooks run in the runtime's namespaces, by the runtime.
    let hooks = spec.hooks().clone().unwrap_or_default();
    if hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks.create_runtime().as_ref().is_some_and(|h| !h.is_empty())
    {
        placed.ensure(&args.chan)?;
        args.chan.send(&Msg::Hooks).map_err(|e| e.to_string())?;
        args.chan.expect_ack()?;
    }
    if let Some(list) = hooks.create_container().as_ref().filter(|h| !h.is_empty()) {
        let state = hook_state(args.id, host_pid, bundle, "created");
        hooks::run("createContainer", list, &state).map_err(|e| e.to_string())?;
    }

    if new_mount {
        mounts::enter_root(&bundle.rootfs, args.no_pivot).map_err(|e| e.to_string())?;
        // rootfsPropagation applies to the container's "/", which only exists now; applied
        // before the pivot it would reach the host's mounts.
        if let Some(prop) = linux.rootfs_propagation().as_deref() {
            let flag = mounts::propagation_flag(prop).ok_or("linux.rootfsPropagation")?;
            sys::mount(None, Path::new("/"), None, flag, None)
                .map_err(|e| format!("linux.rootfsPropagation {prop}: {e}"))?;
        }
    } else {
        std::env::set_current_dir(&bundle.rootfs).map_err(|e| format!("chdir to the root: {e}"))?;
        sys::chroot(Path::new(".")).map_err(|e| format!("chroot: {e}"))?;
    }

    for (key, value) in linux.sysctl().clone().unwrap_or_default() {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        fs::write(&path, &value).map_err(|e| format!("linux.sysctl: {key}={value}: {e}"))?;
    }
    if new_mount {
        for p in linux.masked_paths().clone().unwrap_or_default() {
            mounts::mask_path(Path::new(&p)).map_err(|e| e.to_string())?;
        }
        for p in linux.readonly_paths().clone().unwrap_or_default() {
            mounts::readonly_path(Path::new(&p)).map_err(|e| e.to_string())?;
        }
        if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            mounts::remount_readonly(Path::new("/")).map_err(|e| e.to_string())?;
        }
    }

    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: the pointer and length describe h's bytes for the whole call.
        sys::cvt(unsafe { libc::sethostname(h.as_ptr() as *const libc::c_char, h.len()) })
            .map_err(|e| format!("hostname: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: the pointer and length describe d's bytes for the whole call.
        sys::cvt(unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) })
            .map_err(|e| format!("domainname: {e}"))?;
    }

    process::set_rlimits(process).map_err(|e| e.to_string())?;
    if process.terminal() == Some(true) {
        let sock = args.console.as_ref().ok_or("process.terminal needs --console-socket")?;
        let size = process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        console::setup(sock.as_raw_fd(), size).map_err(|e| e.to_string())?;
    }
    drop(args.console);

    let env = process.env().clone().unwrap_or_default();
    let argv = process.args().clone().unwrap_or_default();
    let exe = process::find_executable(&argv[0], &env).map_err(|e| e.to_string())?;

    placed.ensure(&args.chan)?;
    // A filter with SCMP_ACT_NOTIFY goes in now, while the runtime still listens, so that the
    // agent holds the notification fd before the container makes a notified call.
    let nnp = process.no_new_privileges() == Some(true);
    let mut seccomp = args.seccomp.as_ref();
    if let Some(f) = seccomp.filter(|f| f.notifies()) {
        load_notify_filter(&args.chan, f, nnp)?;
        seccomp = None;
    }
    match args.gate {
        StartGate::Fifo { fifo, proc } => {
            args.chan.send(&Msg::Ready).map_err(|e| e.to_string())?;
            wait_fifo(&fifo, &proc)?;
        }
        // The runtime recorded the container when it got our pid; our exec is its signal.
        StartGate::Channel => {}
    }

    if let Some(list) = hooks.start_container().as_ref().filter(|h| !h.is_empty()) {
        let state = hook_state(args.id, host_pid, bundle, "running");
        hooks::run("startContainer", list, &state).map_err(|e| e.to_string())?;
    }

    // The domain is set last before finish: seccomp may allow only some personality calls.
    if let Some(p) = linux.personality() {
        process::set_personality(p.domain()).map_err(|e| e.to_string())?;
    }

    finish(process, args.preserve_fds, &[args.chan.fd.as_raw_fd()], args.map_method, seccomp, &exe)
        .map_err(|e| e.to_string())
        .map(|n| match n {})
}

/// Loads a filter with SCMP_ACT_NOTIFY rules and passes its notification fd to the runtime,
/// which hands it to the seccomp agent (runtime spec, "Seccomp" listenerPath); returns once
/// the runtime has done so. The kernel takes the filter with no_new_privs (set here when the
/// process asks for it anyway) or while the process still holds CAP_SYS_ADMIN, as it does
/// here, before the user switch.
pub(crate) fn load_notify_filter(
    chan: &Channel,
    filter: &crate::seccomp::Filter,
    nnp: bool,
) -> Result<(), String> {
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
            .map_err(|e| format!("process.noNewPrivileges: {e}"))?;
    }
    let fd = filter
        .load()
        .map_err(|e| format!("linux.seccomp: {e}"))?
        .ok_or("linux.seccomp: the kernel returned no notification fd")?;
    chan.send_with_fd(&Msg::SeccompFd, &fd)
        .map_err(|e| format!("passing the seccomp notification fd to the runtime: {e}"))?;
    drop(fd);
    chan.expect_ack()
}

/// The common tail of init and exec: close stray descriptors, switch user and capabilities,
/// enter the working directory, exec.
pub(crate) fn finish(
    process: &oci_spec::runtime::Process,
    preserve_fds: u32,
    keep: &[RawFd],
    map_method: Option<MapMethod>,
    seccomp: Option<&crate::seccomp::Filter>,
    exe: &Path,
) -> Result<std::convert::Infallible, process::ProcessError> {
    process::close_fds(preserve_fds, keep)?;
    process::apply_scheduling(process)?;
    let setgroups = map_method.is_none_or(|m| m.setgroups_allowed());
    // The kernel takes a filter from a process with no_new_privs or CAP_SYS_ADMIN. With
    // no_new_privs the filter goes in last, right before the exec, so it never sees berth's
    // own calls; without, it must go in while CAP_SYS_ADMIN is still held, as in runc.
    let nnp = process.no_new_privileges() == Some(true);
    let load = |f: &crate::seccomp::Filter| {
        f.load().map(drop).map_err(|e| process::ProcessError::Seccomp { message: e.to_string() })
    };
    if let Some(f) = seccomp.filter(|_| !nnp) {
        load(f)?;
    }
    process::switch_user_and_caps(process, setgroups)?;
    if let Some(f) = seccomp.filter(|_| nnp) {
        load(f)?;
    }
    let umask = process.user().umask().unwrap_or(0o022);
    // SAFETY: umask takes only a mode.
    unsafe { libc::umask(umask as libc::mode_t) };
    process::enter_cwd(process.cwd())?;
    let env = process.env().clone().unwrap_or_default();
    let argv = process.args().clone().unwrap_or_default();
    Err(process::exec(exe, &argv, &env))
}

/// Blocks until `start` opens the fifo, then tells it we are going.
fn wait_fifo(fifo: &OwnedFd, proc: &OwnedFd) -> Result<(), String> {
    let name = sys::cstr(format!("self/fd/{}", fifo.as_raw_fd())).map_err(|e| e.to_string())?;
    let w = sys::openat(proc.as_raw_fd(), &name, libc::O_WRONLY)
        .map_err(|e| format!("opening the exec fifo: {e}"))?;
    sys::write_all(&w, b"0").map_err(|e| format!("writing the exec fifo: {e}"))
}

fn hook_state(id: &str, pid: i32, bundle: &Bundle, status: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle.dir,
        "annotations": bundle.spec.annotations().clone().unwrap_or_default(),
    })
}
