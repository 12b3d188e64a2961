//! The engine's side of `berth build`: running one RUN step as a container over the stage's
//! layers, and storing what a build produces (layer blobs, unpacked layers, the committed
//! image) in the image store.
//!
//! A step runs in a forked child of berth, so that the runtime's single-threaded launch has
//! the process it needs whatever threads the build has, and so that everything the step
//! mounts lives in the child's private mount namespace: the overlay (the parent layers
//! read-only below a fresh upper directory) and the container's own mounts go away with the
//! child, on success, on failure and on ctrl-c alike. The child redirects its standard output
//! and error into a pipe that the parent streams to the build output, keeping the last lines
//! for the error report of a failing step; it launches the process through berth-runtime
//! in-process, waits for it, deletes its runtime state (and cgroup) and exits with the
//! process's code. What the step changed stays in the upper directory, which the caller turns
//! into a layer ([`berth_storage::diff`]) and then drops with the [`Scratch`] guard.
//!
//! Rootless, berth has joined its per-user user namespace before the build starts, so the
//! same steps run there: the overlay is mounted with the store's rootless driver (native
//! overlay with `userxattr`, or fuse-overlayfs, which the child unmounts so its server ends),
//! files keep the owners the namespace maps, and the step container shares that namespace as
//! a rootless `berth run` does.
//!
//! A RUN container gets what Buildah gives one: Podman's default capabilities, seccomp
//! profile, masked paths and mounts, a hostname of its own, and /etc/hosts and
//! /etc/resolv.conf bind-mounted from outside the layer (so they never end up in it). Its
//! network is a namespace of its own connected as a `berth run` container's is by default
//! (the default bridge network rootful, pasta rootless: outbound traffic works, the host's
//! ports and loopback services are out of reach), unless the step or the build says `host`
//! or `none`. The connection is taken down when the step ends; a build that crashed mid-step
//! has it taken down by the next build, which finds the step's scratch directory.
//! Build containers are not `berth ps` containers: they have no record in the state database.

// StepError carries ImageError unboxed, as images.rs does, so the build can report its typed
// causes; it is made at most once per failed step.
#![allow(clippy::result_large_err)]

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use berth_image::config::{chain_ids, ContainerConfig};
use berth_image::digest::{Digest, Hasher, HashingWriter};
use berth_image::manifest::{self, Compression, Descriptor, ImageManifest};
use berth_storage::diff::{write_diff, DiffError, DiffOptions};
use berth_storage::mount::{mount_overlay, Overlay};
use tracing::debug;

pub use berth_storage::mount::Driver;

use crate::images::{Image, ImageError, Images};
use crate::network::attach::NetworkPaths;
use crate::spec::{self, HostInfo, NetworkMode, RunOptions, SpecInput};

/// How many lines of a failing step's output its error shows.
pub const TAIL_LINES: usize = 10;

/// Why a build step could not run, or its result not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("preparing the step's scratch directory {path}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("making the step's output pipe")]
    Pipe(#[source] io::Error),
    #[error("forking the step's process")]
    Fork(#[source] io::Error),
    #[error("reading the step's output")]
    Output(#[source] io::Error),
    #[error("writing the build output")]
    Forward(#[source] io::Error),
    #[error("waiting for the step's process")]
    Wait(#[source] io::Error),
    #[error("setting up the step's container: {0}")]
    Setup(String),
    #[error("interrupted")]
    Interrupted,
    #[error("writing the layer of the step")]
    Diff(#[source] DiffError),
    #[error("storing the layer blob")]
    StoreLayer(#[source] io::Error),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("reading how container {id} was created")]
    ContainerOptions {
        id: String,
        #[source]
        source: crate::containers::ContainerError,
    },
}

/// A mount a RUN step asks for (`RUN --mount=…`), prepared by the caller: a cache is a
/// persistent directory bound in, a secret a private file bound in read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepMount {
    Bind { source: PathBuf, target: String, read_only: bool },
    Tmpfs { target: String, size: Option<u64> },
}

/// One RUN step.
pub struct StepSpec<'a> {
    /// The stage's layers so far, base first, as [`Images::layer_dirs`] gives them.
    pub layers: &'a [PathBuf],
    /// The stage's config at this step: Env, WorkingDir and User are used.
    pub config: &'a ContainerConfig,
    /// The command, already through the stage's SHELL for the shell form.
    pub argv: &'a [String],
    /// Added to the environment (the ARGs in scope), `KEY=VALUE`.
    pub env: &'a [String],
    pub mounts: &'a [StepMount],
    pub network: NetworkMode,
    /// How the step's overlay is mounted: [`Driver::Overlay`] as root, the rootless driver
    /// of the store ([`crate::context::EngineContext::storage_driver`]) in the user namespace.
    pub driver: Driver,
    /// Where berth's networking keeps its state, for [`NetworkMode::Attached`] steps.
    pub net: Option<&'a StepNetwork>,
}

/// What a step with a network of its own needs from the engine.
#[derive(Debug, Clone)]
pub struct StepNetwork {
    pub paths: NetworkPaths,
    pub rootless: bool,
}

/// The file in a step's scratch directory naming the runroot its network state is under, so
/// that a later build can take down the network of a step whose build crashed.
const NETWORK_MARK: &str = "network-runroot";

/// The directories of one step; removed (after unmounting what may be left) when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    /// A new scratch directory under `root/build/tmp`, named after this process so that a
    /// later build can remove it when this one crashed.
    pub fn new(root: &Path) -> Result<Self, StepError> {
        // Absolute, as the runtime spec's root.path must be.
        let root = std::path::absolute(root)
            .map_err(|source| StepError::Scratch { path: root.to_owned(), source })?;
        let base = root.join("build").join("tmp");
        let dir = base.join(format!(
            "{}-{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["upper", "work", "merged", "state", "etc", "lower"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|source| StepError::Scratch { path, source })?;
        }
        Ok(Self { dir })
    }

    /// Removes scratch directories of builds whose process is gone.
    pub fn remove_stale(root: &Path) {
        let Ok(entries) = fs::read_dir(root.join("build").join("tmp")) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else { continue };
            if Path::new("/proc").join(pid).exists() {
                continue;
            }
            debug!(path = %entry.path().display(), "removing a crashed build's scratch directory");
            if let Ok(runroot) = fs::read_to_string(entry.path().join(NETWORK_MARK)) {
                let paths = NetworkPaths::new(root, Path::new(runroot.trim_end()));
                let id = format!("berth-build-{}", name.to_string_lossy());
                if let Err(e) = crate::network::engine::stop(&paths, &id) {
                    tracing::warn!(id, error = %e, "taking down a crashed build step's network");
                }
            }
            let _ = berth_storage::unmount(&entry.path().join("merged"));
            let _ = fs::remove_dir_all(entry.path());
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The upper directory: what the step changed.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The overlay lives in the step's own mount namespace; this only matters if a
        // future caller mounts it here.
        let _ = berth_storage::unmount(&self.dir.join("merged"));
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(path = %self.dir.display(), error = %e, "removing a build step's scratch directory");
        }
    }
}

/// What a step did.
#[derive(Debug)]
pub struct StepOutcome {
    /// The process's exit code, 128+N when signal N ended it.
    pub exit_code: i32,
    /// The last [`TAIL_LINES`] lines of its output.
    pub tail: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The inits of the steps running now (stages build in parallel), 0 for a free slot; the
/// interrupt handler kills them. A step that finds no free slot waits for one.
static STEP_INITS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    for slot in &STEP_INITS {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe. The init of a pid namespace ignores
            // signals it has no handler for, so only SIGKILL is sure to end the step.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A claimed slot of [`STEP_INITS`], freed when dropped.
struct InitSlot(&'static AtomicI32);

impl InitSlot {
    /// Claims a free slot (-1 marks it taken until the pid is known).
    fn claim() -> Self {
        loop {
            for slot in &STEP_INITS {
                if slot.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    return Self(slot);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn set(&self, pid: i32) {
        self.0.store(pid, Ordering::SeqCst);
    }
}

impl Drop for InitSlot {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// Makes SIGINT and SIGTERM end the running step (and the build, which checks
/// [`interrupted`]) instead of berth, so the build can clean up after itself.
pub fn handle_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to atomics and calls kill(2), both
        // async-signal-safe; the sigaction struct is fully initialised before the call.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            // No SA_RESTART: a blocked read returns EINTR, so the build notices at once.
            action.sa_flags = 0;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT or SIGTERM arrived since [`handle_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), StepError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, which lives for the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(StepError::Pipe(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just made and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs one step in `scratch`, streaming its output to `output`.
pub fn run_step(
    step: &StepSpec<'_>,
    scratch: &Scratch,
    output: &mut dyn Write,
) -> Result<StepOutcome, StepError> {
    if interrupted() {
        return Err(StepError::Interrupted);
    }
    // Everything that can fail for a reason the user can fix is checked before the fork.
    let host = HostInfo::detect().map_err(|e| StepError::Setup(e.to_string()))?;
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let (pid_read, pid_write) = pipe()?;
    let slot = InitSlot::claim();

    // SAFETY: the child only runs the step (file-system work, the runtime's launch, which
    // wants a single-threaded caller — a forked child is one) and leaves with _exit. Other
    // threads' locks are not taken on its way: it logs only on failure, and glibc's fork
    // leaves malloc usable in the child.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(StepError::Fork(io::Error::last_os_error()));
    }
    if child == 0 {
        drop(out_read);
        drop(err_read);
        drop(pid_read);
        // A step of another stage running at the same time must not hold this one's pipes
        // open (its reader would wait for this step to end): only ours stay.
        close_other_fds(&[out_write.as_raw_fd(), err_write.as_raw_fd(), pid_write.as_raw_fd()]);
        let code = match child_main(step, scratch, &host, &out_write, pid_write) {
            Ok(code) => code,
            Err(message) => {
                let mut file = fs::File::from(err_write);
                let _ = file.write_all(message.as_bytes());
                125
            }
        };
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(out_write);
    drop(err_write);
    drop(pid_write);

    // The init's pid, so that ctrl-c can kill it; it comes before any output.
    let mut pid_file = fs::File::from(pid_read);
    let mut tail = Tail::default();
    let mut out = fs::File::from(out_read);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut pid_bytes = Vec::new();
    let mut pid_known = false;
    loop {
        if !pid_known {
            let mut b = [0u8; 16];
            match pid_file.read(&mut b) {
                Ok(0) => pid_known = true,
                Ok(n) => {
                    pid_bytes.extend_from_slice(&b[..n]);
                    if pid_bytes.ends_with(b"\n") {
                        let pid = String::from_utf8_lossy(&pid_bytes).trim().parse().unwrap_or(0);
                        slot.set(pid);
                        if interrupted() {
                            on_interrupt(0);
                        }
                        pid_known = true;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StepError::Output(e)),
            }
        }
        match out.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                output.write_all(&buffer[..n]).map_err(StepError::Forward)?;
                output.flush().map_err(StepError::Forward)?;
                tail.push(&buffer[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StepError::Output(e)),
        }
    }
    let status = loop {
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        let got = unsafe { libc::waitpid(child, &mut status, 0) };
        if got == child {
            break status;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(StepError::Wait(e));
        }
    };
    drop(slot);
    let mut message = String::new();
    let _ = fs::File::from(err_read).read_to_string(&mut message);
    if interrupted() {
        return Err(StepError::Interrupted);
    }
    if !message.is_empty() {
        return Err(StepError::Setup(message));
    }
    let exit_code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(StepOutcome { exit_code, tail: tail.lines() })
}

/// Closes every descriptor from 3 up but those in `keep`.
fn close_other_fds(keep: &[i32]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut first = 3u32;
    for fd in keep.into_iter().filter_map(|fd| u32::try_from(fd).ok()) {
        if fd > first {
            // SAFETY: close_range(2) only closes descriptors of this (forked) process; none
            // in the range is in use by anything that runs after the fork.
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0) };
        }
        first = first.max(fd + 1);
    }
    // SAFETY: as above, for everything above the last kept descriptor.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
}

/// The child's work: mount, generate the spec, launch, wait, clean up. Returns the exit code.
fn child_main(
    step: &StepSpec<'_>,
    scratch: &Scratch,
    host: &HostInfo,
    out: &OwnedFd,
    pid_pipe: OwnedFd,
) -> Result<i32, String> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's parent-death signal.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: dup2 onto the standard descriptors of this (single-threaded) child; /dev/null
    // is opened first so that a failure leaves them as they were.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    // SAFETY: a forked child is single-threaded; the new mount namespace is its own.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| format!("unsharing the mount namespace: {e}"))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| format!("making the mounts private: {e}"))?;

    let dir = scratch.path();
    let merged = dir.join("merged");
    let mut lower: Vec<PathBuf> = step.layers.iter().rev().cloned().collect();
    if lower.is_empty() {
        // FROM scratch: an empty directory stands in for the missing layers.
        lower.push(dir.join("lower"));
    }
    let upper = dir.join("upper");
    let work = dir.join("work");
    mount_overlay(step.driver, &Overlay { lower: &lower, upper: &upper, work: &work }, &merged)
        .map_err(|e| e.to_string())?;

    // The working directory exists before the process starts in it, as Buildah makes it.
    let workdir = step.config.working_dir.clone().filter(|w| !w.is_empty());
    if let Some(workdir) = &workdir {
        let path = berth_runtime::mounts::secure_join(&merged, Path::new(workdir));
        fs::create_dir_all(&path).map_err(|e| format!("making WORKDIR {workdir}: {e}"))?;
    }
    // So do the mount points of the stage's VOLUMEs, as in Buildah's and Docker's (classic)
    // RUN containers, so they end up in the layer as directories.
    for volume in step.config.volumes.iter().flat_map(|v| v.keys()) {
        let path = berth_runtime::mounts::secure_join(&merged, Path::new(volume));
        if fs::symlink_metadata(&path).is_err() {
            fs::create_dir_all(&path).map_err(|e| format!("making VOLUME {volume}: {e}"))?;
        }
    }

    let id = format!("berth-build-{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("step"));
    let options = RunOptions {
        command: step.argv.to_vec(),
        entrypoint: Some(String::new()),
        env: step.env.to_vec(),
        network: Some(step.network.as_str().to_owned()),
        ..RunOptions::default()
    };
    let userdata = dir.join("etc");
    let input = SpecInput {
        id: &id,
        image: Some(step.config),
        rootfs: &merged,
        options: &options,
        host,
        userdata_dir: &userdata,
        cgroups_path: None,
        host_env: &spec::process_env,
        host_vars: &spec::process_vars,
    };
    let generated = spec::generate(&input).map_err(|e| e.to_string())?;
    generated.etc_files.write(&id).map_err(|e| e.to_string())?;
    let mut spec_json =
        serde_json::to_value(&generated.spec).map_err(|e| format!("writing the spec: {e}"))?;
    let mounts = spec_json["mounts"].as_array_mut().ok_or("the spec has no mounts")?;
    for mount in step.mounts {
        mounts.push(match mount {
            StepMount::Bind { source, target, read_only } => {
                let mut options = vec!["rbind", "rprivate"];
                if *read_only {
                    options.push("ro");
                }
                serde_json::json!({"destination": target, "type": "bind", "source": source, "options": options})
            }
            StepMount::Tmpfs { target, size } => {
                let mut options = vec!["nosuid".to_owned(), "nodev".to_owned()];
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                serde_json::json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
        });
    }
    // The bundle is the directory of the etc files, where the network writes its own.
    let bundle = userdata.clone();
    let config = serde_json::to_vec(&spec_json).map_err(|e| format!("writing the spec: {e}"))?;
    fs::write(bundle.join("config.json"), config)
        .map_err(|e| format!("writing {}: {e}", bundle.display()))?;
    let net = match (step.network, step.net) {
        (NetworkMode::Attached, Some(net)) => Some(net),
        (NetworkMode::Attached, None) => return Err("the step's network has no state root".into()),
        _ => None,
    };
    if let Some(net) = net {
        fs::write(dir.join(NETWORK_MARK), net.paths.runroot.as_os_str().as_encoded_bytes())
            .map_err(|e| format!("writing {}: {e}", dir.join(NETWORK_MARK).display()))?;
        let options = crate::network::engine::ContainerNetworkOptions::default();
        let hostname = generated.spec.hostname().clone().unwrap_or_else(|| id.clone());
        let request = crate::network::engine::StartRequest {
            id: &id,
            name: &id,
            hostname: &hostname,
            options: &options,
            exposed: &[],
            rootless: net.rootless,
            bundle: &bundle,
        };
        crate::network::engine::start(&net.paths, &request)
            .map_err(|e| format!("connecting the step's network: {e}"))?;
    }
    let stop_network = || {
        if let Some(net) = net {
            if let Err(e) = crate::network::engine::stop(&net.paths, &id) {
                tracing::warn!(id, error = %e, "taking down the step's network");
            }
        }
    };

    let root = berth_runtime::state::StateRoot::new(dir.join("state"));
    let create = berth_runtime::create::CreateOptions {
        id: id.clone(),
        bundle: bundle.clone(),
        ..Default::default()
    };
    let container =
        match berth_runtime::create::launch(&root, &create, berth_runtime::create::Mode::Run) {
            Ok(container) => container,
            Err(e) => {
                stop_network();
                return Err(format!("starting the step: {e}"));
            }
        };
    let pid = container.record.pid;
    // Closed right after, so the parent goes on to read the output.
    let mut pid_file = fs::File::from(pid_pipe);
    let _ = writeln!(pid_file, "{pid}");
    drop(pid_file);
    let code = berth_runtime::create::wait_init(pid);
    if let Err(e) = berth_runtime::delete::delete(&root, &id, true) {
        tracing::warn!(id, error = %e, "deleting the step's container");
    }
    stop_network();
    // The namespace goes with this process, but a fuse-overlayfs server would keep it (and
    // itself) alive: unmounting ends the server.
    if let Err(e) = berth_storage::unmount(&merged) {
        tracing::warn!(id, error = %e, "unmounting the step's overlay");
    }
    Ok(code)
}

/// The last lines of a stream.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.lines.push_back(line);
                if self.lines.len() > TAIL_LINES {
                    self.lines.pop_front();
                }
            } else if self.partial.len() < 4096 {
                self.partial.push(b);
            }
        }
    }

    fn lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.lines.push_back(String::from_utf8_lossy(&self.partial).into_owned());
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
        self.lines.into_iter().collect()
    }
}

/// A layer a build stored: its blob and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuiltLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
}

/// The manifest flavour `--format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Oci,
    Docker,
}

impl Images {
    /// Held (shared) for a whole build, so that garbage collection cannot remove the layers
    /// and blobs it stored but has not yet referenced from an image.
    pub fn build_lock(&self) -> Result<fs::File, ImageError> {
        self.shared_gc_lock()
    }

    /// Whether the store still holds a blob a build cache entry names.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs().contains(digest)
    }

    /// Stores the diff of a step's upper directory as a layer blob; `epoch` is
    /// SOURCE_DATE_EPOCH, the latest modification time the layer may record.
    pub fn store_diff(&self, upper: &Path, epoch: Option<u64>) -> Result<BuiltLayer, StepError> {
        self.store_diff_without(upper, epoch, Vec::new())
    }

    /// [`Images::store_diff`] leaving out the layer paths `skip` (mount points).
    pub fn store_diff_without(
        &self,
        upper: &Path,
        epoch: Option<u64>,
        skip: Vec<String>,
    ) -> Result<BuiltLayer, StepError> {
        let writer = self.blobs().writer(None, None).map_err(ImageError::from)?;
        let (diff, mut writer) =
            write_diff(upper, &DiffOptions { epoch, skip }, writer).map_err(StepError::Diff)?;
        writer.flush().map_err(StepError::StoreLayer)?;
        let digest = writer.commit().map_err(ImageError::from)?;
        debug_assert_eq!(digest, diff.digest);
        Ok(BuiltLayer { digest, size: diff.size, diff_id: diff.diff_id })
    }

    /// Stores a layer whose uncompressed tar `fill` writes, gzip-compressing it on the way.
    pub fn store_layer_tar<E>(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<Result<BuiltLayer, E>, StepError> {
        let writer = self.blobs().writer(None, None).map_err(ImageError::from)?;
        let compressed = HashingWriter::new(writer, Hasher::sha256());
        let gzip = flate2::GzBuilder::new().mtime(0).write(compressed, flate2::Compression::fast());
        let mut tar = HashingWriter::new(gzip, Hasher::sha256());
        if let Err(e) = fill(&mut tar) {
            return Ok(Err(e));
        }
        let (diff_id, _, gzip) = tar.finish();
        let compressed = gzip.finish().map_err(StepError::StoreLayer)?;
        let (_, size, mut writer) = compressed.finish();
        writer.flush().map_err(StepError::StoreLayer)?;
        let digest = writer.commit().map_err(ImageError::from)?;
        Ok(Ok(BuiltLayer { digest, size, diff_id }))
    }

    /// The unpacked directories of `layers` stacked in this order (base first), unpacking
    /// the ones the layer store does not hold yet, for the next RUN to mount.
    pub fn unpack_built(&self, layers: &[BuiltLayer]) -> Result<Vec<PathBuf>, StepError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        for (i, layer) in layers.iter().enumerate() {
            if self.layers().contains(&chains[i]) {
                continue;
            }
            let blob = io::BufReader::with_capacity(
                1 << 20,
                self.blobs().open_blob(&layer.digest).map_err(ImageError::from)?,
            );
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            self.layers()
                .apply(
                    &chains[i],
                    parent,
                    &layer.diff_id,
                    blob,
                    Compression::Gzip,
                    self.unpack_options(),
                )
                .map_err(ImageError::from)?;
        }
        Ok(chains.iter().map(|c| self.layers().diff_path(c)).collect())
    }

    /// Stores an image config (its `rootfs.diff_ids` matching `layers`) and a manifest of
    /// `format` for it, and records the image under `names`.
    pub fn commit_built(
        &self,
        config: &[u8],
        layers: &[BuiltLayer],
        format: ImageFormat,
        names: &[String],
    ) -> Result<Image, StepError> {
        let (manifest_type, config_type, layer_type) = match format {
            ImageFormat::Oci => {
                (manifest::OCI_MANIFEST, manifest::OCI_CONFIG, manifest::OCI_LAYER_GZIP)
            }
            ImageFormat::Docker => {
                (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG, manifest::DOCKER_LAYER_GZIP)
            }
        };
        let config_digest = self.blobs().put(config).map_err(ImageError::from)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_owned()),
            artifact_type: None,
            config: Descriptor::new(config_type, config_digest, config.len() as u64),
            layers: layers
                .iter()
                .map(|l| Descriptor::new(layer_type, l.digest.clone(), l.size))
                .collect(),
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let digest = self.blobs().put(&bytes).map_err(ImageError::from)?;
        let descriptor = Descriptor::new(manifest_type, digest, bytes.len() as u64);
        Ok(self.commit_image(&descriptor, names, &[])?)
    }
}

/// Gives this process a private mount namespace, so that what the build mounts outside its
/// steps (the merged view of another stage for `COPY --from`) is seen by nobody else and goes
/// away with berth, however it ends. Must be called while the process is single-threaded.
pub fn private_mounts() -> Result<(), StepError> {
    // SAFETY: the caller is single-threaded (unshare(CLONE_NEWNS) refuses otherwise, as the
    // file-system context would be shared); the new namespace is this process's alone.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| StepError::Setup(format!("unsharing the mount namespace: {e}")))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| StepError::Setup(format!("making the mounts private: {e}")))
}

/// A read-only-in-spirit merged view of some layers, mounted in this process's namespace
/// (see [`private_mounts`]) for reading another stage's or image's files; unmounted when
/// dropped, before its scratch directory goes.
pub struct MergedView {
    scratch: Scratch,
}

impl MergedView {
    /// Mounts `layers` (base first) at a new scratch directory under `root` with `driver`.
    pub fn mount(root: &Path, layers: &[PathBuf], driver: Driver) -> Result<Self, StepError> {
        let scratch = Scratch::new(root)?;
        let dir = scratch.path();
        let mut lower: Vec<PathBuf> = layers.iter().rev().cloned().collect();
        if lower.is_empty() {
            lower.push(dir.join("lower"));
        }
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        mount_overlay(driver, &Overlay { lower: &lower, upper: &upper, work: &work }, &merged)
            .map_err(|e| StepError::Setup(e.to_string()))?;
        Ok(Self { scratch })
    }

    /// The root of the merged tree.
    pub fn root(&self) -> PathBuf {
        self.scratch.path().join("merged")
    }
}

impl Drop for MergedView {
    fn drop(&mut self) {
        if let Err(e) = berth_storage::unmount(&self.root()) {
            tracing::warn!(error = %e, "unmounting a build's merged view");
        }
    }
}

/// What `berth commit` asks for besides the container.
#[derive(Debug, Clone)]
pub struct CommitRequest<'a> {
    /// The new image's `config` object (see [`commit_base_config`]), changes applied.
    pub config: serde_json::Value,
    /// `--author`: the image's author.
    pub author: Option<&'a str>,
    /// `--message`: the comment of the new history entry.
    pub message: Option<&'a str>,
    pub format: ImageFormat,
    /// Full names the image gets (none: a dangling image).
    pub names: &'a [String],
}

/// The files a runtime bind-mounts over a container's root, which it may have had to create
/// (empty) in the upper directory as mount points; as Podman's commit, they are no change.
const MOUNT_POINT_FILES: [&str; 5] = [
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "run/.containerenv",
    // `run --init`'s mount point (crate::init::CONTAINER_PATH).
    "run/berth-init",
];

/// The image config (`config` object) a commit of container `record` starts from, as
/// Podman's commit makes it: its image's, with the entrypoint, command, user, working
/// directory and added environment the container was created with.
pub fn commit_base_config(
    images: &Images,
    record: &crate::state::ContainerRecord,
) -> Result<serde_json::Value, StepError> {
    let image = images.find(&record.image_id)?;
    let options = crate::containers::CreateOptions::of(record)
        .map_err(|source| StepError::ContainerOptions { id: record.id.clone(), source })?;
    let mut config = serde_json::to_value(image.config.config.clone().unwrap_or_default())
        .unwrap_or_else(|_| serde_json::json!({}));
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let map = config.as_object_mut().expect("made an object above");
    let strings = |v: &[String]| serde_json::Value::from(v.to_vec());
    map.insert("Entrypoint".into(), strings(&options.entrypoint));
    map.insert("Cmd".into(), strings(&options.cmd));
    if !options.user.is_empty() {
        map.insert("User".into(), options.user.clone().into());
    }
    if let Some(workdir) = options.run.workdir.as_ref().filter(|w| !w.is_empty()) {
        map.insert("WorkingDir".into(), workdir.clone().into());
    }
    // The container's own variables replace the image's of the same name, in its order.
    let mut env: Vec<String> = map
        .get("Env")
        .and_then(|e| e.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for added in options.run.env.iter().filter(|e| e.contains('=')) {
        let name = added.split('=').next().unwrap_or_default();
        match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
            Some(existing) => existing.clone_from(added),
            None => env.push(added.clone()),
        }
    }
    map.insert("Env".into(), env.into());
    Ok(config)
}

/// Commits container `record`: its upper directory becomes one more layer on its image's,
/// with `request`'s config and a history entry naming the container's command. The
/// container should not be writing meanwhile (the caller pauses it for `--pause`).
pub fn commit_container(
    ctx: &crate::context::EngineContext,
    images: &Images,
    record: &crate::state::ContainerRecord,
    request: &CommitRequest<'_>,
) -> Result<Image, StepError> {
    let _lock = images.build_lock()?;
    let base = images.find(&record.image_id)?;
    let upper =
        berth_storage::ContainerLayers::new(&ctx.root, &ctx.runroot).layer(&record.id).upper;
    let lower = images.layer_dirs(&base);
    let skip: Vec<String> = MOUNT_POINT_FILES
        .iter()
        .filter(|path| {
            let empty_file =
                fs::symlink_metadata(upper.join(path)).is_ok_and(|m| m.is_file() && m.len() == 0);
            empty_file && !lower.iter().any(|dir| fs::symlink_metadata(dir.join(path)).is_ok())
        })
        .map(|path| (*path).to_owned())
        .collect();
    let layer = images.store_diff_without(&upper, None, skip)?;

    let options = crate::containers::CreateOptions::of(record)
        .map_err(|source| StepError::ContainerOptions { id: record.id.clone(), source })?;
    let now = crate::images::time::format_rfc3339(crate::images::time::now());
    let mut history = base.config.history.clone();
    let command: Vec<String> = options.entrypoint.iter().chain(&options.cmd).cloned().collect();
    history.push(berth_image::config::History {
        created: Some(now.clone()),
        created_by: Some(command.join(" ")),
        author: request.author.map(str::to_owned),
        comment: request.message.map(str::to_owned),
        empty_layer: false,
    });
    let mut layers: Vec<BuiltLayer> = base
        .manifest
        .layers
        .iter()
        .zip(&base.config.rootfs.diff_ids)
        .map(|(d, diff_id)| BuiltLayer {
            digest: d.digest.clone(),
            size: d.size,
            diff_id: diff_id.clone(),
        })
        .collect();
    layers.push(layer);
    let platform = berth_image::Platform::host();
    let mut image = serde_json::json!({
        "created": now,
        "architecture": base.config.architecture.clone(),
        "os": base.config.os.clone(),
        "config": request.config,
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        },
        "history": history,
    });
    if image["architecture"].as_str().is_none_or(str::is_empty) {
        image["architecture"] = platform.architecture.clone().into();
        image["os"] = platform.os.clone().into();
    }
    if let Some(author) = request.author {
        image["author"] = author.into();
    }
    let bytes = serde_json::to_vec(&image).expect("a config serialises");
    debug!(id = %record.id, layer = %layers.last().map(|l| l.digest.to_string()).unwrap_or_default(), "committing a container");
    images.commit_built(&bytes, &layers, request.format, request.names)
}
