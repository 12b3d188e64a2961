//! The container operations the command line calls — create, start, stop, kill, rm, wait,
//! exec, pause, unpause and the cleanup of containers whose process is gone — over the
//! container store, the container layers, the monitor and the runtime.
//!
//! Locking: start, rm, pause and unpause take the container's lock for their whole work;
//! stop, kill and wait take none (they only signal and watch, and the monitor must be able to
//! take the lock to record the exit while they wait). Cleanup is idempotent, so the monitor
//! and a command that found the monitor gone may both run it.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_runtime::state::StateRoot;
use berth_storage::ContainerLayers;
pub use oci_spec::runtime::Process;
use tracing::{debug, info, warn};

use super::lifecycle::{self, StopOutcome, StopTarget};
use super::{ContainerError, ContainerStore, CreateOptions, CreateRequest, RemovalOptions};
use crate::context::EngineContext;
use crate::images::{Image, Images};
use crate::monitor::{self, AttachIo, MonitorConfig, MonitorError, Started};
use crate::network::engine::{ContainerNetworkOptions as NetworkOptions, EngineNetError};
use crate::spec::{HostInfo, RunOptions};
use crate::state::{
    generate_id, ContainerRecord, ContainerState, ProcProbe, ProcessProbe, StateChange, StateError,
    Timestamp,
};

/// Errors of the container operations.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    // The wrapped errors are boxed: they carry paths and sources, and every operation
    // returns this type.
    #[error(transparent)]
    Container(Box<ContainerError>),
    #[error(transparent)]
    Image(Box<crate::images::ImageError>),
    #[error(transparent)]
    Layer(Box<berth_storage::ContainerLayerError>),
    #[error(transparent)]
    Monitor(Box<MonitorError>),
    #[error(transparent)]
    Spec(Box<crate::spec::SpecError>),
    #[error("container {name} is {state}: {what}")]
    BadState { name: String, state: ContainerState, what: &'static str },
    #[error("sending signal {signal} to container {name}")]
    Signal {
        name: String,
        signal: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("container {name}: {step}")]
    Runtime { name: String, step: &'static str, message: String },
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error("timed out after {seconds} s waiting for container {name} to {what}")]
    Timeout { name: String, seconds: u64, what: &'static str },
    #[error("{what} is not supported yet")]
    NotSupportedYet { what: String },
    #[error(transparent)]
    Network(Box<crate::network::engine::EngineNetError>),
}

impl From<crate::network::engine::EngineNetError> for OpsError {
    fn from(e: crate::network::engine::EngineNetError) -> Self {
        Self::Network(Box::new(e))
    }
}

impl From<StateError> for OpsError {
    fn from(e: StateError) -> Self {
        OpsError::Container(Box::new(ContainerError::State(e)))
    }
}

impl From<ContainerError> for OpsError {
    fn from(e: ContainerError) -> Self {
        OpsError::Container(Box::new(e))
    }
}

impl From<crate::images::ImageError> for OpsError {
    fn from(e: crate::images::ImageError) -> Self {
        OpsError::Image(Box::new(e))
    }
}

impl From<berth_storage::ContainerLayerError> for OpsError {
    fn from(e: berth_storage::ContainerLayerError) -> Self {
        OpsError::Layer(Box::new(e))
    }
}

impl From<MonitorError> for OpsError {
    fn from(e: MonitorError) -> Self {
        OpsError::Monitor(Box::new(e))
    }
}

impl From<crate::spec::SpecError> for OpsError {
    fn from(e: crate::spec::SpecError) -> Self {
        OpsError::Spec(Box::new(e))
    }
}

impl OpsError {
    /// The exit code berth reports for this failure: the container command's 126/127 when it
    /// could not be started, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Monitor(e) => e.exit_code(),
            Self::Exec { code, .. } => *code,
            _ => lifecycle::ENGINE_FAILURE,
        }
    }

    /// Whether the container named was not found.
    pub fn is_no_such_container(&self) -> bool {
        matches!(
            self,
            Self::Container(e) if matches!(**e, ContainerError::State(StateError::NoSuchContainer { .. }))
        )
    }
}

/// What `create` (and `run`) asks for besides the image.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub options: RunOptions,
    pub auto_remove: bool,
    pub create_command: Vec<String>,
    /// The name the user gave the image, as `ps` shows it.
    pub image_name: String,
    /// Keep the root mounted after create (run starts it at once).
    pub keep_mounted: bool,
}

/// What `exec` runs.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// How a container's root is mounted: a `--rm` container's root is thrown away after its one
/// run, so it is mounted volatile (as Podman mounts it) and its unmount does not sync the
/// whole disk under it; every other root is synced.
fn root_durability(auto_remove: bool) -> berth_storage::Durability {
    if auto_remove {
        berth_storage::Durability::Volatile
    } else {
        berth_storage::Durability::Synced
    }
}

/// The engine's container side for one context.
pub struct Containers {
    ctx: EngineContext,
    store: ContainerStore,
    layers: ContainerLayers,
    runtime: StateRoot,
}

impl std::fmt::Debug for Containers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containers").field("ctx", &self.ctx).finish()
    }
}

/// What [`Containers::prepare_start`] made ready: the container's lock (held until its
/// process is recorded running), its record, its monitor's configuration and its network
/// attachment (with the sockets of published ports).
struct Prepared {
    lock: crate::state::ContainerLock,
    record: ContainerRecord,
    config: MonitorConfig,
    attached: Option<crate::network::attach::Attached>,
}

/// The network call site for `run` and `start`: a container's network namespace is made and
/// connected before its process starts, so bridges and published ports are prepared here.
/// `none` and `host` need nothing (the spec gives a fresh namespace or none).
// The networking engineer's check; Containers::start connects through network::engine.
pub fn prepare_network(
    options: &crate::network::engine::ContainerNetworkOptions,
    rootless: bool,
) -> Result<(), OpsError> {
    Ok(options.check(rootless)?)
}

impl Containers {
    pub fn open(ctx: &EngineContext) -> Result<Self, OpsError> {
        let store = ContainerStore::open(&ctx.root, &ctx.runroot)?;
        Ok(Self {
            ctx: ctx.clone(),
            store,
            layers: ContainerLayers::new(&ctx.root, &ctx.runroot),
            runtime: StateRoot::new(ctx.runtime_root()),
        })
    }

    pub fn store(&mut self) -> &mut ContainerStore {
        &mut self.store
    }

    pub fn context(&self) -> &EngineContext {
        &self.ctx
    }

    /// Creates a container of `image`: its layer, mounted to read the image's users, then
    /// its record and bundle. On any failure nothing is left.
    pub fn create(
        &mut self,
        images: &Images,
        image: &Image,
        new: &NewRun,
    ) -> Result<ContainerRecord, OpsError> {
        let id = generate_id()?;
        let lower = lower_dirs(images, image);
        let made = (|| {
            let layer = self.layers.mount_as(
                &id,
                self.ctx.storage_driver,
                &lower,
                root_durability(new.auto_remove),
            )?;
            let host = HostInfo { rootless: self.ctx.rootless, ..HostInfo::detect()? };
            // -v/--mount and the image's VOLUMEs (issue 7): volumes made, copied up, resolved.
            let options = crate::volumes::prepare(
                &self.ctx.root,
                &new.options,
                image.config.config.as_ref(),
                &layer.merged,
                &host,
            )
            .map_err(crate::spec::SpecError::from)?;
            let request = CreateRequest {
                id: Some(id.clone()),
                image_id: image.id().hex().to_owned(),
                image_name: new.image_name.clone(),
                image_digest: Some(image.record.manifest.digest.to_string()),
                image_config: image.config.config.clone(),
                rootfs: layer.merged.clone(),
                options,
                auto_remove: new.auto_remove,
                create_command: new.create_command.clone(),
                host,
                storage_driver: self.ctx.storage_driver_name().to_owned(),
            };
            Ok::<_, OpsError>(self.store.create(&request)?)
        })();
        match made {
            Ok(record) => {
                crate::events::record_container(&self.ctx.runroot, "create", &record, None);
                if !new.keep_mounted {
                    self.layers.unmount(&id)?;
                }
                Ok(record)
            }
            Err(e) => {
                if let Err(undo) = self.layers.remove(&id) {
                    warn!(%id, error = %undo, "removing the layer of a failed create");
                }
                Err(e)
            }
        }
    }

    /// Marks containers whose process is gone as exited and cleans up after them (their
    /// monitor was killed, or the machine rebooted); returns their ids.
    ///
    /// A `--rm` container that nothing runs any more is ended and removed, as its `--rm`
    /// asked: one whose foreground `berth run` was killed (nothing else watches it, so its
    /// process is killed first), and any exited one whose runner (that `berth run`, or its
    /// monitor) is gone before it removed it.
    pub fn reconcile(&mut self) -> Result<Vec<String>, OpsError> {
        // A container whose monitor lives is the monitor's to record, with the real exit
        // code: it counts as alive here until the monitor has written it.
        let mut watched = std::collections::HashMap::new();
        let mut abandoned = Vec::new();
        let mut auto_remove = Vec::new();
        for record in self.store.db().list()? {
            if record.state != ContainerState::Configured && RemovalOptions::of(&record).auto_remove
            {
                auto_remove.push(record.id.clone());
            }
            if let (true, Some(pid)) = (record.state.has_process(), record.pid) {
                let userdata = CreateOptions::of(&record)?.userdata_dir;
                if monitor::monitor_alive(&userdata, &record.id) {
                    watched.insert(pid, record.pid_start_time.unwrap_or(0));
                } else if monitor::foreground::runs_in_foreground(&userdata) {
                    abandoned.push(record);
                }
            }
        }
        for record in &abandoned {
            self.end_abandoned(record);
        }
        let ids = self.store.reconcile(&WatchedProbe { watched })?;
        for id in &ids {
            self.cleanup(id);
        }
        self.remove_unattended(&auto_remove);
        // What a foreground `run --rm` moved to the trash, if its detached child did not get
        // to it (see monitor::foreground).
        self.layers.empty_trash();
        Ok(ids)
    }

    /// Kills the process of `record`, a container whose foreground `berth run` is gone, and
    /// waits (a few seconds at most) until it is gone too; reconciling then records it exited.
    fn end_abandoned(&mut self, record: &ContainerRecord) {
        info!(id = %record.id, name = %record.name, "the berth run of this container is gone; killing it");
        if record.state == ContainerState::Paused {
            let _ = berth_runtime::pause::resume(&self.runtime, &record.id);
        }
        if let Err(e) = signal_init(record, libc::SIGKILL) {
            warn!(id = %record.id, error = %e, "killing a container whose berth run is gone");
            return;
        }
        let Some(pid) = record.pid else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while ProcProbe.start_time(pid).is_some_and(|now| Some(now) == record.pid_start_time)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes those of the `--rm` containers `ids` that have exited and whose runner is gone
    /// (killed before it removed the container, or the machine rebooted), with their layers
    /// and anonymous volumes.
    fn remove_unattended(&mut self, ids: &[String]) {
        for id in ids {
            let Ok(record) = self.store.db().get(id) else { continue };
            if record.state != ContainerState::Exited {
                continue;
            }
            if monitor::monitor_alive(&RemovalOptions::of(&record).userdata_dir, id) {
                continue;
            }
            debug!(%id, "removing an exited --rm container that nothing removed");
            self.cleanup(id);
            self.remove_auto_removed(id);
        }
    }

    /// Every container, reconciled first.
    pub fn list(&mut self) -> Result<Vec<ContainerRecord>, OpsError> {
        self.reconcile()?;
        Ok(self.store.db().list()?)
    }

    /// Finds a container, reconciled first.
    pub fn lookup(&mut self, query: &str) -> Result<ContainerRecord, OpsError> {
        let record = self.store.lookup(query)?;
        if record.state.has_process() {
            self.reconcile()?;
            return Ok(self.store.db().get(&record.id)?);
        }
        Ok(record)
    }

    /// The runtime state, cgroup and mount of a container whose process is gone; each step
    /// is skipped when done already.
    pub fn cleanup(&mut self, id: &str) {
        if let Err(e) = berth_runtime::delete::delete(&self.runtime, id, true) {
            debug!(%id, error = %e, "no runtime state to delete");
        }
        if let Err(e) = self.layers.unmount(id) {
            warn!(%id, error = %e, "unmounting the container's root");
        }
        let net = crate::network::attach::NetworkPaths::new(&self.ctx.root, &self.ctx.runroot);
        if let Err(e) = crate::network::engine::stop(&net, id) {
            warn!(%id, error = %e, "taking down the container's network");
        }
    }

    /// Starts container `query`: mounts its root, starts its monitor (which starts the
    /// process), records it running. With `attach`, the caller's descriptors get the output
    /// from the first byte on.
    pub fn start(
        &mut self,
        query: &str,
        attach: Option<AttachIo<'_>>,
    ) -> Result<(ContainerRecord, Started), OpsError> {
        let Prepared { lock, record, config, attached } = self.prepare_start(query)?;
        // The published ports' sockets go to the monitor, which holds them while the
        // container runs (as conmon does), so no other process can take a forwarded port.
        let ports = attached.as_ref().map(|a| a.held_ports.descriptors()).unwrap_or_default();
        let started = match monitor::spawn(&config, attach, &ports) {
            Ok(started) => started,
            Err(e) => {
                self.undo_start(&record.id);
                return Err(e.into());
            }
        };
        drop(ports);
        drop(attached);
        let record = self.record_running(&record.id, started.pid, started.start_time)?;
        let _ = started.recorded();
        drop(lock);
        debug!(id = %record.id, pid = started.pid, "container started");
        crate::events::record_container(&self.ctx.runroot, "start", &record, None);
        Ok((record, started))
    }

    /// Whether [`Containers::run_here`] can run container `record` in this process: a
    /// foreground run with `--rm`, no pty and no stdin, no restart policy or healthcheck (the
    /// monitor's duties), in a process with one thread (the runtime forks it).
    pub fn can_run_here(record: &ContainerRecord, sig_proxy: bool) -> bool {
        let Ok(options) = CreateOptions::of(record) else { return false };
        options.auto_remove
            && !options.run.tty
            && !options.run.interactive
            && sig_proxy
            && matches!(options.duties.restart, monitor::restart::RestartPolicy::No)
            && options.duties.health.is_none()
            && single_threaded()
    }

    /// Starts container `query` and waits for it in this process, without a monitor (see
    /// [`monitor::foreground`]): the output goes to `io` and the log, signals this process gets
    /// go to the container, and the exit is recorded (with `--rm`, the container removed)
    /// before this returns the container's exit code.
    pub fn run_here(&mut self, query: &str, io: AttachIo<'_>) -> Result<i32, OpsError> {
        // This process holds the published ports' sockets while the container runs, as a
        // monitor would (close-on-exec, so the container does not inherit them).
        let Prepared { lock, record, config, attached: _held } = self.prepare_start(query)?;
        let mut lock = Some(lock);
        let mut running = None;
        let result = monitor::foreground::run_here(&config, io, |pid, start_time| {
            let recorded = self.record_running(&record.id, pid, start_time);
            // The exit is recorded (and --rm removes) under the same lock: let it go first.
            drop(lock.take());
            let recorded = recorded.map_err(|e| e.to_string())?;
            crate::events::record_container(&self.ctx.runroot, "start", &recorded, None);
            running = Some(recorded);
            Ok(())
        });
        drop(lock);
        match result {
            Ok(code) => Ok(code),
            Err(e) => {
                if running.is_none() {
                    self.undo_start(&record.id);
                }
                Err(e.into())
            }
        }
    }

    /// The part of a start before its process: the container's lock, its record (checked to be
    /// startable), its root mounted and its network made, and the monitor's configuration.
    fn prepare_start(&mut self, query: &str) -> Result<Prepared, OpsError> {
        let record = self.lookup(query)?;
        let lock = self.store.locks().lock(&record.id)?;
        let record = self.store.db().get(&record.id)?;
        if record.state.has_process() {
            return Err(OpsError::BadState {
                name: record.name,
                state: record.state,
                what: "it must be stopped to be started",
            });
        }
        let options = CreateOptions::of(&record)?;
        // A monitor waiting to restart the container by its policy gives way to the user.
        end_pending_restart(&options.userdata_dir, &record.id);
        monitor::restart::reset(&options.userdata_dir);
        if record.state != ContainerState::Configured {
            // A restart: the old runtime state goes first.
            self.cleanup(&record.id);
        }
        let images = Images::open(&self.ctx.root)?;
        let image = images.find(&record.image_id)?;
        self.layers.mount_as(
            &record.id,
            self.ctx.storage_driver,
            &lower_dirs(&images, &image),
            root_durability(options.auto_remove),
        )?;
        let userdata = options.userdata_dir.clone();
        if !options.auto_remove {
            let _ = fs::remove_file(monitor::exit_file(&userdata));
        }
        let config = MonitorConfig {
            id: record.id.clone(),
            root: self.ctx.root.clone(),
            runroot: self.ctx.runroot.clone(),
            rootless: self.ctx.rootless,
            bundle: userdata.clone(),
            log_path: options.log_path.clone().unwrap_or_else(|| userdata.join("ctr.log")),
            tty: options.run.tty,
            stdin: options.run.interactive,
            auto_remove: options.auto_remove,
            duties: options.duties.clone(),
        };
        // The network (network::engine): made and connected before the process starts, and
        // joined by path through config.json.
        let net = crate::network::attach::NetworkPaths::new(&self.ctx.root, &self.ctx.runroot);
        let exposed: Vec<String> = image
            .config
            .config
            .as_ref()
            .and_then(|c| c.exposed_ports.as_ref())
            .map(|ports| ports.keys().cloned().collect())
            .unwrap_or_default();
        let net_request = crate::network::engine::StartRequest {
            id: &record.id,
            name: &record.name,
            hostname: &options.hostname,
            options: &options.run.networking,
            exposed: &exposed,
            rootless: self.ctx.rootless,
            bundle: &userdata,
        };
        let attached = match crate::network::engine::start(&net, &net_request) {
            Ok(attached) => attached,
            Err(e) => {
                let _ = self.layers.unmount(&record.id);
                return Err(e.into());
            }
        };
        Ok(Prepared { lock, record, config, attached })
    }

    /// Takes down what [`Containers::prepare_start`] made, after the process failed to start.
    fn undo_start(&mut self, id: &str) {
        let net = crate::network::attach::NetworkPaths::new(&self.ctx.root, &self.ctx.runroot);
        let _ = crate::network::engine::stop(&net, id);
        let _ = self.layers.unmount(id);
    }

    /// Records container `id` created and running with its init `pid`.
    fn record_running(
        &mut self,
        id: &str,
        pid: i32,
        start_time: u64,
    ) -> Result<ContainerRecord, OpsError> {
        let boot_id = self.store.boot_id().to_owned();
        // Created and running in one transaction: one write on the hot path.
        Ok(self.store.db().update_states(
            id,
            &[
                StateChange::Created {
                    pid: Some(pid),
                    pid_start_time: Some(start_time),
                    boot_id: boot_id.clone(),
                },
                StateChange::Running {
                    pid,
                    pid_start_time: start_time,
                    boot_id,
                    at: Timestamp::now(),
                },
            ],
        )?)
    }

    /// Removes a container that failed to start with `--rm`.
    pub fn remove_after_failed_start(&mut self, id: &str) {
        self.remove_auto_removed(id);
    }

    /// Removes `--rm` container `id` that has no process: its record, directories, layer
    /// and anonymous volumes; one that is gone or live already is left alone.
    fn remove_auto_removed(&mut self, id: &str) {
        if let Ok(removed) = self.store.remove(id) {
            let _ = self.layers.remove(id);
            // Its anonymous volumes too, as after a run (issue 7).
            if let Err(e) = crate::volumes::remove_anonymous(&self.ctx.root, &removed) {
                warn!(%id, error = %e, "removing the anonymous volumes (--rm)");
            }
            crate::events::record_container(&self.ctx.runroot, "remove", &removed, None);
        }
    }

    /// Sends `signal` to the container's init.
    pub fn kill(&mut self, query: &str, signal: i32) -> Result<ContainerRecord, OpsError> {
        let record = self.lookup(query)?;
        if !matches!(record.state, ContainerState::Running | ContainerState::Paused) {
            return Err(OpsError::BadState {
                name: record.name,
                state: record.state,
                what: "can only kill running containers",
            });
        }
        // A kill by the user is not followed by a restart, as in Podman.
        monitor::restart::mark_stopped_by_user(&CreateOptions::of(&record)?.userdata_dir);
        signal_init(&record, signal)?;
        Ok(record)
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` seconds (its own
    /// `--stop-timeout` when `None`); waits until the exit is recorded.
    pub fn stop(
        &mut self,
        query: &str,
        timeout: Option<u32>,
    ) -> Result<(ContainerRecord, StopOutcome), OpsError> {
        let record = self.lookup(query)?;
        let options = CreateOptions::of(&record)?;
        // Neither the policy restarts it afterwards nor a pending restart happens.
        monitor::restart::mark_stopped_by_user(&options.userdata_dir);
        if !record.state.has_process() {
            end_pending_restart(&options.userdata_dir, &record.id);
            return Ok((self.store.db().get(&record.id)?, StopOutcome::NotRunning));
        }
        if record.state == ContainerState::Paused {
            // A frozen process cannot act on its signal: thaw it first, as Podman does.
            let _ = berth_runtime::pause::resume(&self.runtime, &record.id);
            let _ = self.store.db().update_state(&record.id, &StateChange::Unpaused);
        }
        let mut target = InitTarget { record: &record };
        let timeout = timeout.unwrap_or(options.stop_timeout);
        let outcome = lifecycle::stop(&mut target, &record.name, options.stop_signal, timeout);
        let record = self.await_exit(&record.id, Duration::from_secs(30))?;
        crate::events::record_container(&self.ctx.runroot, "stop", &record, None);
        Ok((record, outcome))
    }

    /// Waits until container `id` (whose process is gone or going) is recorded as exited or
    /// removed; does the cleanup itself when its monitor is gone. A container that `--rm`
    /// removed once it exited comes back as its last record, marked exited.
    fn await_exit(&mut self, id: &str, limit: Duration) -> Result<ContainerRecord, OpsError> {
        let deadline = Instant::now() + limit;
        let mut last: Option<ContainerRecord> = None;
        loop {
            let record = match (self.store.db().get(id), last.take()) {
                (Ok(record), _) => record,
                (Err(StateError::NoSuchContainer { .. }), Some(mut gone)) => {
                    gone.state = ContainerState::Exited;
                    return Ok(gone);
                }
                (Err(e), _) => return Err(e.into()),
            };
            if !record.state.has_process() {
                return Ok(record);
            }
            last = Some(record.clone());
            let options = CreateOptions::of(&record)?;
            if !monitor::monitor_alive(&options.userdata_dir, id) {
                // Its exit is ours to record; the next round reads what that made of it.
                self.reconcile()?;
            }
            if Instant::now() > deadline {
                return Err(OpsError::Timeout {
                    name: record.name,
                    seconds: limit.as_secs(),
                    what: "exit",
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a container to exit and returns its exit code (-1 when unknown, as Podman).
    pub fn wait(&mut self, query: &str) -> Result<i32, OpsError> {
        let record = self.lookup(query)?;
        let id = record.id.clone();
        loop {
            let record = match self.store.db().get(&id) {
                Ok(r) => r,
                // Removed (--rm) while we waited: its exit file may still tell.
                Err(StateError::NoSuchContainer { .. }) => return Ok(-1),
                Err(e) => return Err(e.into()),
            };
            if !record.state.has_process() && record.state != ContainerState::Configured {
                return Ok(record.exit_code.unwrap_or(-1));
            }
            if record.state.has_process() {
                let options = CreateOptions::of(&record)?;
                if !monitor::monitor_alive(&options.userdata_dir, &id) {
                    self.reconcile()?;
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes a container; a live one only with `force`, after killing it. A start that
    /// races with a forced removal (a `--health-on-failure restart`, another shell's `start`)
    /// is killed again, a few times at most.
    pub fn remove(&mut self, query: &str, force: bool) -> Result<ContainerRecord, OpsError> {
        const FORCED_ROUNDS: u32 = 5;
        let mut record = self.lookup(query)?;
        let mut round = 0;
        loop {
            if record.state.has_process() {
                if !force {
                    let (name, state) = (record.name, record.state);
                    return Err(ContainerError::Live { name, state }.into());
                }
                monitor::restart::mark_stopped_by_user(&CreateOptions::of(&record)?.userdata_dir);
                if record.state == ContainerState::Paused {
                    let _ = berth_runtime::pause::resume(&self.runtime, &record.id);
                }
                let _ = signal_init(&record, libc::SIGKILL);
                self.await_exit(&record.id, Duration::from_secs(30))?;
            }
            // The monitor (of an --rm container) may be removing it right now: let it finish.
            // One waiting to restart the container gives up.
            let options = CreateOptions::of(&record)?;
            monitor::restart::mark_stopped_by_user(&options.userdata_dir);
            let deadline = Instant::now() + Duration::from_secs(10);
            while monitor::monitor_alive(&options.userdata_dir, &record.id)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.cleanup(&record.id);
            let removed = match self.store.remove(&record.id) {
                Ok(r) => r,
                Err(ContainerError::State(StateError::NoSuchContainer { .. })) => record.clone(),
                Err(ContainerError::Live { .. }) if force && round < FORCED_ROUNDS => {
                    round += 1;
                    debug!(id = %record.id, round, "started again while being removed");
                    record = self.store.db().get(&record.id)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.layers.remove(&record.id)?;
            crate::events::record_container(&self.ctx.runroot, "remove", &removed, None);
            return Ok(removed);
        }
    }

    /// `network connect`: puts container `query` on one more bridge network, as Podman does.
    /// The network goes into the container's create options, so every later start joins it;
    /// a running (or paused) container is connected at once too. Nothing changes on failure.
    pub fn connect_network(
        &mut self,
        query: &str,
        attach: &crate::network::mode::NetworkAttach,
    ) -> Result<ContainerRecord, OpsError> {
        let net = crate::network::attach::NetworkPaths::new(&self.ctx.root, &self.ctx.runroot);
        let attach = crate::network::mode::NetworkAttach {
            name: crate::network::engine::network_name(&net, &attach.name)?,
            ..attach.clone()
        };
        self.change_networks(
            query,
            |id, options, rootless| options.with_network(id, &attach, rootless),
            |id, bundle| crate::network::engine::connect(&net, id, bundle, &attach),
        )
    }

    /// `network disconnect`: takes container `query` off bridge network `network` (a name or
    /// an id), in its create options and, while it runs, at once.
    pub fn disconnect_network(
        &mut self,
        query: &str,
        network: &str,
    ) -> Result<ContainerRecord, OpsError> {
        let net = crate::network::attach::NetworkPaths::new(&self.ctx.root, &self.ctx.runroot);
        // A network removed since keeps its name in the container's options.
        let name =
            crate::network::engine::network_name(&net, network).unwrap_or(network.to_owned());
        self.change_networks(
            query,
            |id, options, rootless| options.without_network(id, &name, rootless),
            |id, bundle| crate::network::engine::disconnect(&net, id, bundle, &name),
        )
    }

    /// Rewrites container `query`'s network options with `edit` under its lock and, if its
    /// process runs, applies the change to it with `live` first (a failure there records
    /// nothing).
    fn change_networks(
        &mut self,
        query: &str,
        edit: impl FnOnce(&str, &NetworkOptions, bool) -> Result<NetworkOptions, EngineNetError>,
        live: impl FnOnce(&str, &std::path::Path) -> Result<(), EngineNetError>,
    ) -> Result<ContainerRecord, OpsError> {
        let found = self.lookup(query)?;
        let _lock = self.store.locks().lock(&found.id)?;
        let record = self.store.db().get(&found.id)?;
        let mut options = CreateOptions::of(&record)?;
        let networking = edit(&record.id, &options.run.networking, self.ctx.rootless)?;
        if record.state.has_process() {
            live(&record.id, &options.userdata_dir)?;
        }
        options.run.networking = networking;
        let value = serde_json::to_value(&options)
            .map_err(|source| ContainerError::EncodeSpec { id: record.id.clone(), source })?;
        let record = self.store.db().update_create_options(&record.id, &value)?;
        let networks = &options.run.networking.bridge_networks;
        debug!(id = %record.id, ?networks, "the container's networks recorded");
        Ok(record)
    }

    /// Freezes a running container.
    pub fn pause(&mut self, query: &str) -> Result<ContainerRecord, OpsError> {
        let record = self.lookup(query)?;
        let _lock = self.store.locks().lock(&record.id)?;
        if record.state != ContainerState::Running {
            return Err(OpsError::BadState {
                name: record.name,
                state: record.state,
                what: "only running containers can be paused",
            });
        }
        berth_runtime::pause::pause(&self.runtime, &record.id).map_err(|e| OpsError::Runtime {
            name: record.name.clone(),
            step: "pausing",
            message: e.to_string(),
        })?;
        Ok(self.store.db().update_state(&record.id, &StateChange::Paused)?)
    }

    /// Thaws a paused container.
    pub fn unpause(&mut self, query: &str) -> Result<ContainerRecord, OpsError> {
        let record = self.lookup(query)?;
        let _lock = self.store.locks().lock(&record.id)?;
        if record.state != ContainerState::Paused {
            return Err(OpsError::BadState {
                name: record.name,
                state: record.state,
                what: "only paused containers can be unpaused",
            });
        }
        berth_runtime::pause::resume(&self.runtime, &record.id).map_err(|e| OpsError::Runtime {
            name: record.name.clone(),
            step: "unpausing",
            message: e.to_string(),
        })?;
        Ok(self.store.db().update_state(&record.id, &StateChange::Unpaused)?)
    }

    /// The process `exec` runs in container `record`: the container's own process (its
    /// environment, capabilities, user) with the request's command, env, user and workdir.
    pub fn exec_process(
        &self,
        record: &ContainerRecord,
        req: &ExecRequest,
    ) -> Result<Process, OpsError> {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&record.spec_json)
            .map_err(|source| ContainerError::DecodeSpec { id: record.id.clone(), source })?;
        let mut process = spec.process().clone().unwrap_or_default();
        if req.command.is_empty() {
            return Err(OpsError::Exec {
                code: lifecycle::ENGINE_FAILURE,
                message: "exec: a command is needed".into(),
            });
        }
        process.set_args(Some(req.command.clone()));
        process.set_terminal(Some(req.tty));
        process.set_console_size(None);
        let mut env = process.env().clone().unwrap_or_default();
        for entry in &req.env {
            let entry = match entry.split_once('=') {
                Some(_) => entry.clone(),
                None => match std::env::var(entry) {
                    Ok(value) => format!("{entry}={value}"),
                    Err(_) => continue,
                },
            };
            let key = entry.split('=').next().unwrap_or("").to_owned();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(entry);
        }
        if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        if let Some(dir) = &req.workdir {
            if !dir.starts_with('/') {
                return Err(crate::spec::SpecError::WorkdirNotAbsolute { dir: dir.clone() }.into());
            }
            process.set_cwd(PathBuf::from(dir));
        }
        if let Some(user) = &req.user {
            let rootfs = self.layers.layer(&record.id).merged;
            let resolved = crate::spec::user::resolve(&rootfs, user, &[])?;
            let mut spec_user = process.user().clone();
            spec_user.set_uid(resolved.uid);
            spec_user.set_gid(resolved.gid);
            spec_user.set_additional_gids(
                Some(resolved.additional_gids.clone()).filter(|g| !g.is_empty()),
            );
            process.set_user(spec_user);
            env.retain(|e| !e.starts_with("HOME="));
            env.push(format!("HOME={}", resolved.home));
            if resolved.uid != 0 {
                // As in run: a non-root user keeps capabilities only in its bounding set.
                if let Some(mut caps) = process.capabilities().clone() {
                    caps.set_effective(Some(Default::default()));
                    caps.set_permitted(Some(Default::default()));
                    caps.set_inheritable(Some(Default::default()));
                    caps.set_ambient(Some(Default::default()));
                    process.set_capabilities(Some(caps));
                }
            }
        }
        if req.privileged {
            return Err(OpsError::NotSupportedYet { what: "exec --privileged".into() });
        }
        process.set_env(Some(env));
        Ok(process)
    }

    /// Runs `process` in the running container `record` (the caller is single-threaded);
    /// returns its exit code. With a console socket the process gets a pty there.
    pub fn exec(
        &self,
        record: &ContainerRecord,
        process: Process,
        detach: bool,
        console_socket: Option<PathBuf>,
    ) -> Result<i32, OpsError> {
        if record.state != ContainerState::Running {
            return Err(OpsError::BadState {
                name: record.name.clone(),
                state: record.state,
                what: "can only exec in running containers",
            });
        }
        let rootfs = self.layers.layer(&record.id).merged;
        let opts = berth_runtime::exec::ExecOptions {
            process,
            detach,
            pid_file: None,
            console_socket,
            preserve_fds: 0,
        };
        berth_runtime::exec::exec(&self.runtime, &record.id, &opts).map_err(|e| {
            let message = e.to_string();
            OpsError::Exec { code: monitor::launch_failure_code(&message, &rootfs), message }
        })
    }
}

/// Makes a monitor that waits to restart container `id` by its policy give up, and waits
/// until it has (it looks for the marker every 50 ms, and kills a process it started again).
fn end_pending_restart(userdata: &std::path::Path, id: &str) {
    if !monitor::monitor_alive(userdata, id) {
        return;
    }
    monitor::restart::mark_stopped_by_user(userdata);
    let deadline = Instant::now() + Duration::from_secs(30);
    while monitor::monitor_alive(userdata, id) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether this process has one thread (from /proc/self/stat's num_threads).
fn single_threaded() -> bool {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: state is field 3, num_threads field 20.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(17) == Some("1")
}

/// The image's layer directories, top-most first, as overlay's lowerdir wants them.
fn lower_dirs(images: &Images, image: &Image) -> Vec<PathBuf> {
    let mut dirs = images.layer_dirs(image);
    dirs.reverse();
    dirs
}

/// Sends `signal` to `record`'s init if it is still the process the record names.
fn signal_init(record: &ContainerRecord, signal: i32) -> Result<(), OpsError> {
    let Some(pid) = record.pid else { return Ok(()) };
    if let (Some(recorded), Some(now)) = (record.pid_start_time, ProcProbe.start_time(pid)) {
        if recorded != now {
            return Ok(());
        }
    }
    // SAFETY: kill takes a pid and a signal number by value.
    if unsafe { libc::kill(pid, signal) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(OpsError::Signal { name: record.name.clone(), signal, source: e });
    }
    Ok(())
}

/// The stop sequence's view of a container's init: signals by pid, waits with a pidfd.
struct InitTarget<'a> {
    record: &'a ContainerRecord,
}

impl StopTarget for InitTarget<'_> {
    fn signal(&mut self, signal: i32) -> bool {
        self.alive() && signal_init(self.record, signal).is_ok()
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(pid) = self.record.pid.and_then(rustix::process::Pid::from_raw) else {
            return true;
        };
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty());
        loop {
            if !self.alive() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match &pidfd {
                Ok(fd) => {
                    use std::os::fd::AsRawFd;
                    let ms = left.as_millis().min(100) as i32;
                    monitor::fds::poll_one(fd.as_raw_fd(), libc::POLLIN, ms);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl InitTarget<'_> {
    fn alive(&self) -> bool {
        let Some(pid) = self.record.pid else { return false };
        match (ProcProbe.start_time(pid), self.record.pid_start_time) {
            (None, _) => false,
            (Some(now), Some(recorded)) => now == recorded,
            (Some(_), None) => true,
        }
    }
}

/// /proc, except that the processes of containers with a live monitor count as alive.
struct WatchedProbe {
    watched: std::collections::HashMap<i32, u64>,
}

impl ProcessProbe for WatchedProbe {
    fn start_time(&self, pid: i32) -> Option<u64> {
        match self.watched.get(&pid) {
            Some(start) => Some(*start),
            None => ProcProbe.start_time(pid),
        }
    }
}
