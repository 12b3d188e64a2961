//! `create` and `run` (runtime spec, "Lifecycle" steps 1–6): validate the bundle, make the
//! state directory, fork the init, write its id maps, run the runtime's hooks, and record the
//! container once the init waits to be started.
//!
//! Every failure undoes what was done: the init (and its first stage) are killed and reaped
//! and the state directory is removed. The mounts live in the init's mount namespace, so they
//! go with it; nothing is mounted on the host.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use crate::init::{self, InitArgs, StartGate};
use crate::namespaces::{self, MapMethod, Plan};
use crate::spec::Bundle;
use crate::state::{self, Container, Record, StateRoot, Status};
use crate::sync::{Channel, Msg};
use crate::{hooks, sys, Error};

/// The options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// runc's `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// runc's `--rootless`: run without a cgroup unless one is writable.
    pub rootless: bool,
}

/// What went wrong while creating; each variant is a step.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("making the exec fifo {path}: {source}")]
    Fifo {
        path: PathBuf,
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
    #[error("preparing the init: {0}")]
    Prepare(#[source] io::Error),
    #[error("forking the init: {0}")]
    Fork(#[source] io::Error),
    #[error("talking to the init: {0}")]
    Channel(#[source] io::Error),
    #[error("the init exited during setup ({how})")]
    InitDied { how: String },
    #[error("container init: {0}")]
    Init(String),
    #[error("writing the pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("linux.seccomp: {0}")]
    Seccomp(String),
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroups::Error),
    #[error("the init's process {pid} vanished")]
    NoInit { pid: i32 },
    #[error("moving {pid} into the cgroup {path}: {source}")]
    JoinCgroup {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How the init gets into its cgroups without the cgroup attach lock: writing a pid to
/// cgroup.procs takes a global lock whose first writer waits for an RCU grace period (several
/// milliseconds here, tens under load), while a process writing "0" to a v1 `tasks` file moves
/// just itself and skips it (kernel/cgroup/cgroup.c, cgroup_procs_write_start), and a child
/// made with clone3's CLONE_INTO_CGROUP starts in its cgroup2 directory. Single-threaded
/// processes only, as the runtime is: moving the one thread moves the process.
pub(crate) struct SelfPlacement {
    /// The `tasks` files of the v1 hierarchies.
    pub(crate) tasks: Vec<PathBuf>,
    /// The cgroup2 directory (a hybrid host's unified one, or a v2 host's), opened.
    pub(crate) v2: Option<(PathBuf, OwnedFd)>,
}

impl SelfPlacement {
    pub(crate) fn of(cgroup: &crate::cgroups::Manager) -> SelfPlacement {
        let mut tasks = Vec::new();
        let mut v2 = None;
        for dir in cgroup.paths() {
            let t = dir.join("tasks");
            if t.exists() {
                tasks.push(t);
            } else if v2.is_none() {
                let fd = sys::open(&dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0);
                v2 = fd.ok().map(|fd| (dir, fd));
            }
        }
        SelfPlacement { tasks, v2 }
    }

    /// Forks, into the cgroup2 directory where there is one and the kernel allows it, and
    /// into new namespaces of `namespaces` (CLONE_NEW* flags, or 0); the flag says whether
    /// the child started in the cgroup.
    pub(crate) fn fork(&self, namespaces: u64) -> io::Result<(sys::Fork, bool)> {
        if let Some((_, fd)) = &self.v2 {
            if let Ok(f) = sys::clone3(namespaces, Some(fd.as_raw_fd())) {
                return Ok((f, true));
            }
        }
        if namespaces != 0 {
            return sys::clone3(namespaces, None).map(|f| (f, false));
        }
        Ok((sys::fork()?, false))
    }

    /// Completes the placement of `pid` from the runtime's side: everything through the
    /// manager unless the child joined its v1 cgroups itself, else the cgroup2 directory
    /// unless the fork started it there.
    pub(crate) fn finish(
        &self,
        cgroup: &crate::cgroups::Manager,
        pid: i32,
        v1_done: bool,
        v2_done: bool,
    ) -> Result<(), CreateError> {
        if !v1_done && !self.tasks.is_empty() {
            return cgroup.add_pid(pid).map_err(CreateError::from);
        }
        match &self.v2 {
            Some((dir, _)) if !v2_done => {
                let path = dir.join("cgroup.procs");
                fs::write(&path, pid.to_string()).map_err(|source| CreateError::JoinCgroup {
                    pid,
                    path,
                    source,
                })
            }
            _ => Ok(()),
        }
    }
}

/// How far `launch` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop at "created": the init waits on the exec fifo for `start`.
    Create,
    /// Start at once.
    Run,
}

/// Removes the state directory and kills the init unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    pids: Vec<i32>,
    cgroup: Option<crate::cgroups::Manager>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            let _ = sys::kill(pid, libc::SIGKILL);
            // SAFETY: waitpid with WNOHANG on a pid we forked, or one that is not our child,
            // only reaps or fails.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Creates a container (and in `Mode::Run`, starts it). The calling process must be
/// single-threaded. Returns the container as recorded.
pub fn launch(root: &StateRoot, opts: &CreateOptions, mode: Mode) -> Result<Container, Error> {
    let bundle = Bundle::load(&opts.bundle, true)?;
    let spec = &bundle.spec;
    let process = spec.process().as_ref().expect("validated");
    let terminal = process.terminal() == Some(true);

    // Connect before making anything, so a bad socket path leaves nothing behind.
    let console = match (&opts.console_socket, terminal) {
        (Some(path), true) => Some(
            sys::connect_unix(path)
                .map_err(|source| CreateError::ConsoleSocket { path: path.clone(), source })?,
        ),
        (None, true) => return Err(CreateError::NoConsoleSocket.into()),
        _ => None,
    };
    let plan = Plan::from_spec(spec)?;
    let seccomp = compile_seccomp(root, spec)?;
    let listener = seccomp.as_ref().and_then(Listener::of);

    let dir = root.create(&opts.id)?;
    let mut undo = Undo { dir: Some(dir.clone()), pids: Vec::new(), cgroup: None };
    let linux = spec.linux().clone().unwrap_or_default();
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    let map_method = plan.new_user.then(|| MapMethod::choose(&uid_maps, &gid_maps));

    // The descriptors the child keeps must not land on a --preserve-fds number.
    let min_fd = 3 + opts.preserve_fds as i32;
    let above = |fd: OwnedFd| sys::dup_above(fd.as_raw_fd(), min_fd).map_err(CreateError::Prepare);
    let gate = match mode {
        Mode::Create => {
            let fifo = dir.join("exec.fifo");
            make_fifo(&fifo, container_root_ids(&uid_maps, &gid_maps))?;
            let fd = sys::open(&fifo, libc::O_PATH, 0)
                .map_err(|source| CreateError::Fifo { path: fifo.clone(), source })?;
            let proc = sys::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(CreateError::Prepare)?;
            StartGate::Fifo { fifo: above(fd)?, proc: above(proc)? }
        }
        Mode::Run => StartGate::Channel,
    };
    let console = console.map(above).transpose()?;
    let (parent_end, child_end) = sys::seqpacket_pair().map_err(CreateError::Prepare)?;
    let chan = Channel { fd: parent_end };
    let child_chan = Channel { fd: above(child_end)? };

    let mut record = Record {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::rfc3339(std::time::SystemTime::now()),
        owner: state::owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        paused: false,
        rootless: opts.rootless || sys::is_rootless(),
        cgroup: None,
        cgroups_path: None,
        own_cgroup: String::new(),
        systemd_cgroup: opts.systemd_cgroup,
        cgroup_state: None,
        resources: linux.resources().clone(),
        hooks: spec.hooks().clone(),
        started: false,
    };
    // The cgroup exists, with its limits, before the init does anything in it.
    let cgroups_path = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy().into_owned());
    let own_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cgroup = crate::cgroups::Manager::builder(&opts.id)
        .with_cgroups_path(cgroups_path.clone())
        .with_own_cgroup(own_cgroup.clone())
        .with_systemd(opts.systemd_cgroup)
        .with_rootless(record.rootless)
        .build()
        .map_err(CreateError::from)?;
    cgroup.create().map_err(CreateError::from)?;
    record.cgroup = cgroup.inner_path();
    record.cgroup_state = Some(cgroup.state());
    record.cgroups_path = cgroups_path;
    record.own_cgroup = own_cgroup;
    let cgroup = undo.cgroup.insert(cgroup);
    if let Some(resources) = linux.resources() {
        let resources = with_default_devices(resources, linux.devices().as_deref().unwrap_or(&[]));
        cgroup.apply(&resources).map_err(CreateError::from)?;
    }

    let mut container = Container { dir: dir.clone(), record: record.clone() };
    container.save()?;

    if mode == Mode::Run {
        // The init is our grandchild once it forks into its pid namespace; as subreaper we
        // can still wait for it.
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0).map_err(CreateError::Prepare)?;
    }

    let placement = SelfPlacement::of(cgroup);
    tracing::debug!(id = %opts.id, bundle = %bundle.dir.display(), "forking the init");
    // One clone3 makes the init in its namespaces where it can (see Plan::direct_flags): a
    // fork, a copy of this process's page tables and an exit fewer than two stages take.
    // Where that fails (no clone3), the two stages report the reason or do without. Id-mapped
    // mounts need the first stage outside the new pid namespace: it names their helper's
    // /proc entry by pid.
    let idmaps = spec.mounts().iter().flatten().any(crate::mounts::wants_idmap);
    let direct = plan.direct_flags().filter(|_| !idmaps && !sys::in_user_namespace());
    let (fork, v2_placed, direct) = match direct.map(|flags| placement.fork(flags)) {
        Some(Ok((fork, placed))) => (fork, placed, true),
        _ => {
            let (fork, placed) = placement.fork(0).map_err(CreateError::Fork)?;
            (fork, placed, false)
        }
    };
    let stage1 = match fork {
        sys::Fork::Child => {
            drop(chan);
            init::run(InitArgs {
                id: &opts.id,
                bundle: &bundle,
                chan: child_chan,
                plan,
                gate,
                console,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                map_method,
                seccomp,
                cgroup_tasks: placement.tasks.clone(),
                direct,
            })
        }
        sys::Fork::Parent(pid) => pid,
    };
    undo.pids.push(stage1);
    drop(child_chan);
    drop(gate);
    drop(console);

    let mut init_pid = 0;
    let mut stage1_left = false;
    loop {
        let (msg, fd) = chan.recv_with_fd().map_err(CreateError::Channel)?;
        let Some(msg) = msg else {
            // In `run` the init sends no Ready: end of file after its pid means the exec
            // happened (its end of the channel is close-on-exec).
            if mode == Mode::Run && init_pid != 0 {
                break;
            }
            // Say how it ended: the first stage is our child.
            let how = if init_pid == 0 {
                sys::waitpid(stage1).map(describe_status).unwrap_or_default()
            } else {
                String::from("after forking the init")
            };
            undo.pids.retain(|p| *p != stage1);
            return Err(CreateError::InitDied { how }.into());
        };
        match msg {
            Msg::MapIds => {
                let method = map_method.unwrap_or(MapMethod::Direct { deny_setgroups: false });
                if let Err(e) = namespaces::write_maps(stage1, &uid_maps, &gid_maps, method) {
                    let _ = chan.send(&Msg::Error(e.to_string()));
                    return Err(e.into());
                }
                ack(&chan)?;
            }
            Msg::Pid(pid) | Msg::PlacedPid(pid) => {
                let v1_placed = matches!(msg, Msg::PlacedPid(_));
                init_pid = pid;
                if pid != stage1 {
                    undo.pids.insert(0, pid);
                }
                let (start, _) = sys::proc_stat(pid).ok_or(CreateError::NoInit { pid })?;
                record.pid = pid;
                record.start_time = start;
                // Into the cgroup while the init sets up its root; it waits for this Ack
                // before its cgroup namespace, hooks or ready (see init::Placement).
                if let Some(cg) = &undo.cgroup {
                    placement.finish(cg, pid, v1_placed, v2_placed)?;
                }
                ack(&chan)?;
                if pid != stage1 {
                    // The first stage exits once it has forked the init: reaped now if it is
                    // gone already, else once the init is ready, without a wait in between.
                    // SAFETY: waitpid with WNOHANG on our own child only reaps or returns 0.
                    let got = unsafe { libc::waitpid(stage1, std::ptr::null_mut(), libc::WNOHANG) };
                    stage1_left = got != stage1;
                    if !stage1_left {
                        undo.pids.retain(|p| *p != stage1);
                    }
                }
                if mode == Mode::Run {
                    // The init goes on to its exec without a Ready. state.json gets its pid
                    // once with the exec, below (a crash in between leaves the cgroup, which
                    // delete empties, to find the init by).
                    if let Some(path) = &opts.pid_file {
                        write_pid_file(path, pid)?;
                    }
                }
            }
            Msg::Hooks => {
                container.record = record.clone();
                // The spec's state for these hooks says "created" (runtime-tools checks it).
                let state = container.hook_state(Status::Created);
                let hooks = spec.hooks().clone().unwrap_or_default();
                let res =
                    hooks::run("prestart", hooks.prestart().as_deref().unwrap_or(&[]), &state)
                        .and_then(|()| {
                            let list = hooks.create_runtime().as_deref().unwrap_or(&[]);
                            hooks::run("createRuntime", list, &state)
                        });
                if let Err(e) = res {
                    let _ = chan.send(&Msg::Error(e.to_string()));
                    return Err(e.into());
                }
                ack(&chan)?;
            }
            Msg::SeccompFd => {
                let state = Listener::state(&record, Status::Creating);
                if let Err(e) = Listener::hand_over(listener.as_ref(), fd, &state) {
                    let _ = chan.send(&Msg::Error(e.to_string()));
                    return Err(e.into());
                }
                ack(&chan)?;
            }
            Msg::Ready => break,
            Msg::Error(e) => return Err(CreateError::Init(e).into()),
            Msg::Ack => {}
        }
    }
    if init_pid == 0 {
        return Err(CreateError::InitDied { how: "no pid".into() }.into());
    }

    if stage1_left {
        // Long gone by now: it exited right after its last message.
        let _ = sys::waitpid(stage1);
    }
    container.record = record;
    if mode == Mode::Run {
        container.record.started = true;
        container.save()?;
        crate::start::poststart(&container);
    } else {
        container.save()?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, init_pid)?;
        }
    }
    undo.pids.clear();
    undo.dir = None;
    undo.cgroup = None;
    Ok(container)
}

/// Compiles linux.seccomp before the fork, cached under the state root. A filter with
/// SCMP_ACT_NOTIFY rules has the process load it early and pass its fd back (see
/// [`Listener`]).
pub(crate) fn compile_seccomp(
    root: &StateRoot,
    spec: &oci_spec::runtime::Spec,
) -> Result<Option<crate::seccomp::Filter>, CreateError> {
    let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let cache = root.path.join(".seccomp");
    if !cache.is_dir() {
        let _ = fs::DirBuilder::new().recursive(true).create(&cache);
        let _ = fs::set_permissions(&cache, fs::Permissions::from_mode(0o700));
    }
    let filter = crate::seccomp::compile_cached(sc, &cache)
        .map_err(|e| CreateError::Seccomp(e.to_string()))?;
    Ok(Some(filter))
}

/// The seccomp agent at linux.seccomp.listenerPath, which gets the notification fd of each
/// process that loads a filter with SCMP_ACT_NOTIFY rules (the init at create, every exec).
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    path: PathBuf,
    metadata: Option<String>,
}

impl Listener {
    pub(crate) fn of(filter: &crate::seccomp::Filter) -> Option<Listener> {
        let path = filter.listener_path().filter(|_| filter.notifies())?;
        Some(Listener {
            path: path.to_owned(),
            metadata: filter.listener_metadata().map(str::to_owned),
        })
    }

    /// The container's state as the agent receives it: the runtime spec's state, the pid of
    /// the process whose fd it is, and the names of the fds sent.
    pub(crate) fn state(record: &Record, status: Status) -> serde_json::Value {
        let mut state = serde_json::json!({
            "ociVersion": state::OCI_VERSION,
            "id": record.id,
            "status": status,
            "pid": record.pid,
            "bundle": record.bundle,
        });
        if !record.annotations.is_empty() {
            state["annotations"] = serde_json::json!(record.annotations);
        }
        serde_json::json!({
            "ociVersion": state::OCI_VERSION,
            "fds": [oci_spec::runtime::SECCOMP_FD_NAME],
            "pid": record.pid,
            "state": state,
        })
    }

    /// Sends `fd` with `state` (and the listener's metadata) to the agent; the fd is closed
    /// here afterwards, the agent holds its own copy.
    pub(crate) fn hand_over(
        listener: Option<&Listener>,
        fd: Option<OwnedFd>,
        state: &serde_json::Value,
    ) -> Result<(), CreateError> {
        let (Some(listener), Some(fd)) = (listener, fd) else {
            return Err(CreateError::Seccomp(
                "a notification fd came without a listenerPath, or no fd came".into(),
            ));
        };
        let mut state = state.clone();
        if let Some(m) = &listener.metadata {
            state["metadata"] = serde_json::json!(m);
        }
        let state: oci_spec::runtime::ContainerProcessState = serde_json::from_value(state)
            .map_err(|e| CreateError::Seccomp(format!("the agent's state: {e}")))?;
        crate::seccomp::send_listener_fd(&listener.path, &fd, &state)
            .map_err(|e| CreateError::Seccomp(e.to_string()))
    }
}

/// The device rules the container needs whatever its spec says, appended after the spec's
/// own as runc does: mknod of any node (the init makes /dev), the default devices, the pty
/// multiplexer and slaves, and every linux.devices entry.
fn with_default_devices(
    resources: &oci_spec::runtime::LinuxResources,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let mut out = resources.clone();
    let Some(mut rules) = resources.devices().clone() else { return out };
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_owned()));
        r
    };
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)] {
        rules.push(rule(LinuxDeviceType::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    for d in devices {
        // A fifo is no device to the cgroup.
        let typ = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
            LinuxDeviceType::B => LinuxDeviceType::B,
            _ => continue,
        };
        rules.push(rule(typ, Some(d.major()), Some(d.minor()), "rwm"));
    }
    out.set_devices(Some(rules));
    out
}

fn describe_status(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// Tells the init to go on. If it is gone, its last words are still queued on the channel:
/// report those rather than the broken pipe.
fn ack(chan: &Channel) -> Result<(), CreateError> {
    match chan.send(&Msg::Ack) {
        Ok(()) => Ok(()),
        Err(e) => {
            while let Ok(Some(msg)) = chan.recv() {
                if let Msg::Error(text) = msg {
                    return Err(CreateError::Init(text));
                }
            }
            Err(CreateError::Channel(e))
        }
    }
}

/// Writes a pid file atomically, as runc does (Podman reads it as soon as it appears).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), CreateError> {
    let err = |source| CreateError::PidFile { path: path.to_owned(), source };
    let tmp = path.with_extension("berth-tmp");
    fs::write(&tmp, pid.to_string()).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// The host ids of the container's root, which must be able to open the fifo.
fn container_root_ids(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Option<(u32, u32)> {
    let host = |m: &[oci_spec::runtime::LinuxIdMapping]| {
        m.iter().find(|m| m.container_id() == 0).map(|m| m.host_id())
    };
    Some((host(uid)?, host(gid)?))
}

fn make_fifo(path: &Path, owner: Option<(u32, u32)>) -> Result<(), CreateError> {
    let err = |source| CreateError::Fifo { path: path.to_owned(), source };
    let c = sys::cstr(path).map_err(err)?;
    // SAFETY: c is a NUL-terminated path that outlives the call.
    sys::cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o622) }).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o622)).map_err(err)?;
    if let (Some((uid, gid)), 0) = (owner, sys::geteuid()) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(err)?;
    }
    Ok(())
}

/// Waits for a started container's init (the caller is its subreaper), forwarding the
/// usual terminating signals to it; returns the shell-style exit code.
pub fn wait_init(pid: i32) -> i32 {
    forward_signals(pid);
    loop {
        let mut status = 0;
        // SAFETY: status is a valid place for the kernel's answer.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            return sys::exit_code(status);
        }
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return 255;
        }
    }
}

static FORWARD_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn forward_signals(pid: i32) {
    FORWARD_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: the handler only calls kill(2), which is async-signal-safe.
        unsafe { libc::signal(sig, forward as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
}

/// The namespace types the container made or joined, with their /proc names.
pub fn ns_proc_names() -> [(LinuxNamespaceType, &'static str); 8] {
    [
        (LinuxNamespaceType::User, "user"),
        (LinuxNamespaceType::Ipc, "ipc"),
        (LinuxNamespaceType::Uts, "uts"),
        (LinuxNamespaceType::Network, "net"),
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Cgroup, "cgroup"),
        (LinuxNamespaceType::Time, "time"),
        (LinuxNamespaceType::Mount, "mnt"),
    ]
}
