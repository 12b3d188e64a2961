//! The container store: the state database, the lock files and each container's runtime
//! directory, behind the operations `create`, `ps`, `inspect`, `rename` and `rm` need.
//!
//! Layout: `ROOT/state.db` (persistent), `RUNROOT/locks/ID.lock` and
//! `RUNROOT/containers/ID/userdata/` (per boot: config.json, /etc/hosts and friends, later the
//! pid file and attach socket). Creating validates everything before it writes anything; a
//! failure after the record exists removes the record and the directory again, so a failed
//! `create` leaves nothing behind. Removing takes the container's exclusive lock, so it never
//! races a start or an exec of the same container.

use std::fs;
use std::path::{Path, PathBuf};

use berth_image::config::ContainerConfig;
use tracing::{debug, warn};

use super::{ContainerError, CreateOptions};
use crate::spec::{generate, process_env, process_vars, HostInfo, RunOptions, SpecInput};
use crate::state::{
    current_boot_id, generate_id, ContainerLocks, ContainerRecord, NewContainer, ProcProbe,
    ProcessProbe, StateDb, StateError,
};

/// What `create` needs besides the options.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The id to give the container (its storage is prepared under it first); generated
    /// when `None`.
    pub id: Option<String>,
    pub image_id: String,
    pub image_name: String,
    pub image_digest: Option<String>,
    pub image_config: Option<ContainerConfig>,
    /// The container's root file system, already prepared by storage.
    pub rootfs: PathBuf,
    pub options: RunOptions,
    /// `--rm`
    pub auto_remove: bool,
    pub create_command: Vec<String>,
    pub host: HostInfo,
    pub storage_driver: String,
}

/// Where a container's cgroup goes, as the runtime spec's `cgroupsPath` (the cgroupfs
/// driver's form, like Podman's `/libpod_parent/libpod-ID`). Rootless there is none: cgroup v1
/// delegates nothing to an unprivileged user.
// TODO: rootless on a cgroup v2 host with delegation (user@.service) can have one; add it with
// the confinement issue's v2 delegation support.
pub fn default_cgroups_path(id: &str, rootless: bool) -> Option<String> {
    (!rootless).then(|| format!("/berth_parent/berth-{id}"))
}

/// The containers of one root and runroot.
pub struct ContainerStore {
    db: StateDb,
    locks: ContainerLocks,
    runroot: PathBuf,
    boot_id: String,
}

impl std::fmt::Debug for ContainerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerStore")
            .field("db", &self.db)
            .field("runroot", &self.runroot)
            .finish()
    }
}

impl ContainerStore {
    /// Opens the store of data root `root` and runtime root `runroot`.
    pub fn open(root: &Path, runroot: &Path) -> Result<Self, ContainerError> {
        let db = StateDb::open(&root.join("state.db"))?;
        let locks = ContainerLocks::new(runroot)?;
        Ok(Self { db, locks, runroot: runroot.to_owned(), boot_id: current_boot_id()? })
    }

    pub fn db(&mut self) -> &mut StateDb {
        &mut self.db
    }

    pub fn locks(&self) -> &ContainerLocks {
        &self.locks
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// `RUNROOT/containers/ID`: everything of the container that lives for one boot.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    pub fn userdata_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("userdata")
    }

    /// Creates a container in state `configured`: its record, its config.json and its /etc
    /// files. A bad option, or a name in use, fails before anything is written.
    pub fn create(&mut self, req: &CreateRequest) -> Result<ContainerRecord, ContainerError> {
        let id = match &req.id {
            Some(id) => id.clone(),
            None => generate_id()?,
        };
        let userdata = self.userdata_dir(&id);
        let image_health = req.image_config.as_ref().and_then(|c| c.healthcheck.as_ref());
        let duties = req.options.duties.resolve(image_health, req.auto_remove)?;
        let generated = generate(&SpecInput {
            id: &id,
            image: req.image_config.as_ref(),
            rootfs: &req.rootfs,
            options: &req.options,
            host: &req.host,
            userdata_dir: &userdata,
            cgroups_path: default_cgroups_path(&id, req.host.rootless),
            host_env: &process_env,
            host_vars: &process_vars,
        })?;
        let create_options = CreateOptions {
            run: req.options.clone(),
            auto_remove: req.auto_remove,
            create_command: req.create_command.clone(),
            entrypoint: generated.entrypoint.clone(),
            cmd: generated.cmd.clone(),
            user: generated.user_spec.clone(),
            stop_signal: generated.stop_signal,
            stop_timeout: generated.stop_timeout,
            seccomp: generated.seccomp.clone(),
            network: generated.network,
            hostname: generated.hostname.clone(),
            image_digest: req.image_digest.clone(),
            rootfs: req.rootfs.clone(),
            userdata_dir: userdata.clone(),
            log_path: Some(duties.log_path(&userdata)),
            storage_driver: req.storage_driver.clone(),
            duties,
        };
        let spec_json = serde_json::to_string(&generated.spec)
            .map_err(|source| ContainerError::EncodeSpec { id: id.clone(), source })?;
        let record = self.db.create(&NewContainer {
            id: id.clone(),
            name: req.options.name.clone(),
            image_id: req.image_id.clone(),
            image_name: req.image_name.clone(),
            spec_json: spec_json.clone(),
            create_options: serde_json::to_value(&create_options)
                .map_err(|source| ContainerError::EncodeSpec { id: id.clone(), source })?,
            labels: generated.labels.clone(),
        })?;

        let written = (|| {
            fs::create_dir_all(&userdata)
                .map_err(|source| ContainerError::WriteFile { path: userdata.clone(), source })?;
            let config = userdata.join("config.json");
            fs::write(&config, &spec_json)
                .map_err(|source| ContainerError::WriteFile { path: config, source })?;
            generated.etc_files.write(&record.name)?;
            Ok::<_, ContainerError>(())
        })();
        if let Err(err) = written {
            // Undo: a failed create leaves neither a record nor a directory.
            if let Err(undo) = self.db.remove(&id) {
                warn!(%id, error = %undo, "could not remove the record of a failed create");
            }
            let _ = fs::remove_dir_all(self.container_dir(&id));
            return Err(err);
        }
        debug!(%id, name = %record.name, "container created");
        Ok(record)
    }

    /// Finds a container by id, name or id prefix.
    pub fn lookup(&self, query: &str) -> Result<ContainerRecord, ContainerError> {
        Ok(self.db.lookup(query)?)
    }

    /// Every container, after marking those whose process is gone as exited.
    pub fn list(&mut self) -> Result<Vec<ContainerRecord>, ContainerError> {
        self.reconcile(&ProcProbe)?;
        Ok(self.db.list()?)
    }

    /// Marks containers whose process is gone as exited; returns their ids.
    pub fn reconcile(&mut self, probe: &dyn ProcessProbe) -> Result<Vec<String>, ContainerError> {
        let boot_id = self.boot_id.clone();
        Ok(self.db.reconcile(&boot_id, probe)?)
    }

    /// Renames a container; its /etc/hosts names the new name from the next start on.
    pub fn rename(
        &mut self,
        query: &str,
        new_name: &str,
    ) -> Result<ContainerRecord, ContainerError> {
        let record = self.db.lookup(query)?;
        let _lock = self.locks.lock(&record.id)?;
        Ok(self.db.rename(&record.id, new_name)?)
    }

    /// Removes a container that has no live process: its record, its runtime directory and
    /// its lock file. A live one is refused (the caller stops or kills it first).
    pub fn remove(&mut self, query: &str) -> Result<ContainerRecord, ContainerError> {
        let record = self.db.lookup(query)?;
        let lock = self.locks.lock(&record.id)?;
        // Under the lock, the state is what the last holder left: check it fresh.
        self.reconcile(&ProcProbe)?;
        let record = self.db.get(&record.id)?;
        if record.state.has_process() {
            return Err(ContainerError::Live { name: record.name.clone(), state: record.state });
        }
        let dir = self.container_dir(&record.id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ContainerError::RemoveDir { path: dir, source }),
        }
        let removed = self.db.remove(&record.id)?;
        lock.remove()?;
        debug!(id = %removed.id, name = %removed.name, "container removed");
        Ok(removed)
    }
}

impl From<StateError> for ContainerError {
    fn from(err: StateError) -> Self {
        ContainerError::State(err)
    }
}

impl From<crate::spec::SpecError> for ContainerError {
    fn from(err: crate::spec::SpecError) -> Self {
        ContainerError::Spec(err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier};
    use std::thread;

    use super::*;
    use crate::state::{ContainerState, StateChange, Timestamp};

    struct Fixture {
        dir: tempfile::TempDir,
        rootfs: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let rootfs = dir.path().join("rootfs");
            berth_testkit::busybox::rootfs(&rootfs).unwrap();
            Self { dir, rootfs }
        }

        fn store(&self) -> ContainerStore {
            ContainerStore::open(&self.dir.path().join("root"), &self.dir.path().join("run"))
                .unwrap()
        }

        fn request(&self, options: RunOptions) -> CreateRequest {
            CreateRequest {
                id: None,
                image_id: "f".repeat(64),
                image_name: "localhost/busybox:latest".into(),
                image_digest: None,
                image_config: Some(ContainerConfig {
                    cmd: Some(vec!["sh".into()]),
                    ..Default::default()
                }),
                rootfs: self.rootfs.clone(),
                options,
                auto_remove: false,
                create_command: vec!["berth".into(), "create".into()],
                host: HostInfo { nofile_hard: 20_000, ..HostInfo::detect().unwrap() },
                storage_driver: "overlay".into(),
            }
        }
    }

    #[test]
    fn create_writes_the_record_config_and_etc_files() {
        let f = Fixture::new();
        let mut store = f.store();
        let record = store
            .create(&f.request(RunOptions { name: Some("web".into()), ..Default::default() }))
            .unwrap();
        assert_eq!(record.state, ContainerState::Configured);
        let userdata = store.userdata_dir(&record.id);
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(userdata.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));
        if !HostInfo::detect().unwrap().rootless {
            assert_eq!(
                config["linux"]["cgroupsPath"],
                format!("/berth_parent/berth-{}", record.id)
            );
        }
        assert_eq!(
            fs::read_to_string(userdata.join("hostname")).unwrap(),
            format!("{}\n", &record.id[..12])
        );
        assert!(fs::read_to_string(userdata.join("hosts")).unwrap().contains(" web\n"));
        assert_eq!(store.lookup("web").unwrap().id, record.id);
        let options = CreateOptions::of(&record).unwrap();
        assert_eq!(options.cmd, ["sh"]);
        assert_eq!(options.userdata_dir, userdata);
    }

    // Bad input and a name in use: one error, and nothing created.
    #[test]
    fn a_failed_create_leaves_nothing() {
        let f = Fixture::new();
        let mut store = f.store();
        store
            .create(&f.request(RunOptions { name: Some("taken".into()), ..Default::default() }))
            .unwrap();
        let err = store
            .create(&f.request(RunOptions { name: Some("taken".into()), ..Default::default() }))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("the container name \"taken\" is already in use by "),
            "{err}"
        );
        let err = store
            .create(
                &f.request(RunOptions { user: Some("nobody-here".into()), ..Default::default() }),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user nobody-here: no matching entries in the image's /etc/passwd"
        );
        assert_eq!(store.list().unwrap().len(), 1);
        let dirs = fs::read_dir(f.dir.path().join("run/containers")).unwrap().count();
        assert_eq!(dirs, 1, "a failed create left a runtime directory");
    }

    #[test]
    fn remove_refuses_a_live_container_and_cleans_up_a_dead_one() {
        let f = Fixture::new();
        let mut store = f.store();
        let record = store.create(&f.request(RunOptions::default())).unwrap();
        let boot = store.boot_id().to_owned();
        // Our own pid stands in for a running container.
        let me = std::process::id() as i32;
        let start = ProcProbe.start_time(me).unwrap();
        store
            .db()
            .update_state(
                &record.id,
                &StateChange::Created {
                    pid: Some(me),
                    pid_start_time: Some(start),
                    boot_id: boot.clone(),
                },
            )
            .unwrap();
        store
            .db()
            .update_state(
                &record.id,
                &StateChange::Running {
                    pid: me,
                    pid_start_time: start,
                    boot_id: boot,
                    at: Timestamp::now(),
                },
            )
            .unwrap();
        let err = store.remove(&record.name).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot remove container {}: it is running (stop it first)", record.name)
        );
        store
            .db()
            .update_state(
                &record.id,
                &StateChange::Exited { exit_code: Some(0), at: Timestamp::now(), error: None },
            )
            .unwrap();
        store.remove(&record.id[..8]).unwrap();
        assert!(!store.container_dir(&record.id).exists());
        assert!(!store.locks().path_of(&record.id).exists());
        assert!(store.list().unwrap().is_empty());
    }

    // A container whose process died behind berth's back (a monitor killed with SIGKILL):
    // `ps` shows it exited and `rm` removes it.
    #[test]
    fn a_dead_process_reads_exited_and_removes_cleanly() {
        let f = Fixture::new();
        let mut store = f.store();
        let record = store.create(&f.request(RunOptions::default())).unwrap();
        let boot = store.boot_id().to_owned();
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = ProcProbe.start_time(pid).unwrap();
        store
            .db()
            .update_state(
                &record.id,
                &StateChange::Created {
                    pid: Some(pid),
                    pid_start_time: Some(start),
                    boot_id: boot.clone(),
                },
            )
            .unwrap();
        store
            .db()
            .update_state(
                &record.id,
                &StateChange::Running {
                    pid,
                    pid_start_time: start,
                    boot_id: boot,
                    at: Timestamp::now(),
                },
            )
            .unwrap();
        assert_eq!(store.list().unwrap()[0].state, ContainerState::Running);
        child.kill().unwrap();
        child.wait().unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed[0].state, ContainerState::Exited);
        assert_eq!(listed[0].exit_code, None);
        store.remove(&record.id).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    // 20 parallel creates then removes (what 20 parallel `run -d` and `rm -f` do to the
    // store) leave a consistent database and no directory or lock file behind.
    #[test]
    fn twenty_parallel_creates_and_removes_leak_nothing() {
        let f = Arc::new(Fixture::new());
        f.store();
        let barrier = Arc::new(Barrier::new(20));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (f, barrier) = (f.clone(), barrier.clone());
                thread::spawn(move || {
                    let mut store = f.store();
                    barrier.wait();
                    let record = store.create(&f.request(RunOptions::default())).unwrap();
                    barrier.wait();
                    record.name
                })
            })
            .collect();
        let names: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            names.iter().collect::<HashSet<_>>().len(),
            20,
            "a generated name was given twice"
        );
        assert_eq!(f.store().list().unwrap().len(), 20);
        let threads: Vec<_> = names
            .into_iter()
            .map(|name| {
                let f = f.clone();
                thread::spawn(move || f.store().remove(&name).map(|_| ()))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert!(f.store().list().unwrap().is_empty());
        assert_eq!(fs::read_dir(f.dir.path().join("run/containers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(f.dir.path().join("run/locks")).unwrap().count(), 0);
    }
}
