use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::json;

use super::*;
use crate::state::generate_id;
use crate::state::reconcile::ProcessProbe;

fn new_container(name: Option<&str>) -> NewContainer {
    NewContainer {
        id: generate_id().unwrap(),
        name: name.map(str::to_owned),
        image_id: "b".repeat(64),
        image_name: "localhost/busybox:latest".to_owned(),
        spec_json: r#"{"ociVersion":"1.2.0"}"#.to_owned(),
        create_options: json!({"tty": false}),
        labels: BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "1".to_owned()),
        ]),
    }
}

fn open_temp() -> (tempfile::TempDir, StateDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(&dir.path().join("state.db")).unwrap();
    (dir, db)
}

/// Checks what a crash or a race would break: SQLite's own integrity check, no label left
/// without its container, and unique names.
fn assert_consistent(db: &StateDb) {
    let integrity: String = db.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let orphans: i64 = db
        .conn
        .query_row(
            "SELECT count(*) FROM container_labels WHERE container_id NOT IN (SELECT id FROM containers)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "labels outlived their containers");
    let fk_problems: i64 = db
        .conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk_problems, 0);
}

#[test]
fn settings_are_podmans_but_for_fsyncs() {
    let (_dir, db) = open_temp();
    let mode: String = db.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = db.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 1, "synchronous is not NORMAL");
    let pages: i64 = db.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
    assert_eq!(pages, i64::from(WAL_AUTOCHECKPOINT));
    let fk: i64 = db.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = db.conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, BUSY_TIMEOUT.as_millis() as i64);
}

// Closing the last connection leaves the WAL in place (no checkpoint, no delete) and the next
// connection reads every commit from it.
#[test]
fn a_close_keeps_the_wal_and_loses_no_commit() {
    let (dir, mut db) = open_temp();
    let record = db.create(&new_container(Some("kept"))).unwrap();
    drop(db);
    let wal = dir.path().join("state.db-wal");
    assert!(wal.exists(), "the last close checkpointed and deleted the WAL");
    let db = StateDb::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(db.get(&record.id).unwrap().name, "kept");
}

// A database written by a newer berth is refused rather than misread.
#[test]
fn a_newer_schema_is_refused() {
    let (dir, db) = open_temp();
    db.conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(db);
    let err = StateDb::open(&dir.path().join("state.db")).unwrap_err();
    assert!(
        matches!(err, StateError::SchemaTooNew { found: 99, supported: SCHEMA_VERSION, .. }),
        "{err}"
    );
}

#[test]
fn a_record_round_trips_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.db");
    let new = new_container(Some("web"));
    let created = StateDb::open(&path).unwrap().create(&new).unwrap();
    assert_eq!(created.state, ContainerState::Configured);
    let db = StateDb::open(&path).unwrap();
    let read = db.get(&new.id).unwrap();
    assert_eq!(read, created);
    assert_eq!(read.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(read.create_options, json!({"tty": false}));
}

#[test]
fn generated_names_are_unique_and_given_names_conflict() {
    let (_dir, mut db) = open_temp();
    let mut names = std::collections::HashSet::new();
    for _ in 0..300 {
        let record = db.create(&new_container(None)).unwrap();
        validate_name(&record.name).unwrap();
        assert!(names.insert(record.name.clone()), "name {} given twice", record.name);
    }
    let first = db.create(&new_container(Some("db"))).unwrap();
    let before = db.list().unwrap().len();
    let err = db.create(&new_container(Some("db"))).unwrap_err();
    assert!(
        matches!(&err, StateError::NameInUse { name, id } if name == "db" && *id == first.id),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("the container name \"db\" is already in use by {}", first.id)
    );
    assert_eq!(db.list().unwrap().len(), before, "a failed create left a record");
    let mut dup = new_container(Some("other"));
    dup.id = first.id.clone();
    assert!(matches!(db.create(&dup), Err(StateError::IdInUse { .. })));
    assert!(matches!(
        db.create(&new_container(Some("bad name"))),
        Err(StateError::InvalidName { .. })
    ));
}

#[test]
fn lookup_by_id_name_and_prefix_with_ambiguity() {
    let (_dir, mut db) = open_temp();
    let mut a = new_container(Some("alpha"));
    a.id = format!("abc1{}", "0".repeat(60));
    let mut b = new_container(Some("beta"));
    b.id = format!("abc2{}", "0".repeat(60));
    // A container named like the other's id prefix: the name wins, as in Podman.
    let mut c = new_container(Some("abc2"));
    c.id = format!("def{}", "0".repeat(61));
    for n in [&a, &b, &c] {
        db.create(n).unwrap();
    }
    assert_eq!(db.lookup(&a.id).unwrap().name, "alpha");
    assert_eq!(db.lookup("beta").unwrap().id, b.id);
    assert_eq!(db.lookup("abc1").unwrap().id, a.id);
    assert_eq!(db.lookup("abc2").unwrap().id, c.id, "an exact name must beat an id prefix");
    assert_eq!(db.lookup("de").unwrap().id, c.id);
    let err = db.lookup("abc").unwrap_err();
    assert!(matches!(err, StateError::AmbiguousPrefix { count: 2, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the container id prefix \"abc\" is ambiguous: it matches 2 containers"
    );
    let err = db.lookup("nope").unwrap_err();
    assert_eq!(err.to_string(), "no container with name or id \"nope\" found");
    assert!(matches!(db.lookup(""), Err(StateError::NoSuchContainer { .. })));
}

#[test]
fn rename_frees_the_old_name_and_refuses_a_taken_one() {
    let (_dir, mut db) = open_temp();
    let a = db.create(&new_container(Some("one"))).unwrap();
    let b = db.create(&new_container(Some("two"))).unwrap();
    db.rename(&a.id, "uno").unwrap();
    assert_eq!(db.lookup("uno").unwrap().id, a.id);
    assert!(db.lookup("one").is_err());
    db.create(&new_container(Some("one"))).unwrap();
    let err = db.rename(&b.id, "uno").unwrap_err();
    assert!(matches!(err, StateError::NameInUse { ref id, .. } if *id == a.id), "{err}");
    assert_eq!(db.get(&b.id).unwrap().name, "two");
    assert!(matches!(db.rename(&b.id, "-x"), Err(StateError::InvalidName { .. })));
}

// New create options replace the stored ones and survive a reopen; the rest of the record,
// its labels included, stays as it was.
#[test]
fn create_options_can_be_replaced() {
    let (dir, mut db) = open_temp();
    let a = db.create(&new_container(Some("one"))).unwrap();
    let updated = db.update_create_options(&a.id, &json!({"tty": true})).unwrap();
    assert_eq!(updated.create_options, json!({"tty": true}));
    drop(db);
    let db = StateDb::open(&dir.path().join("state.db")).unwrap();
    let read = db.get(&a.id).unwrap();
    assert_eq!(read.create_options, json!({"tty": true}));
    assert_eq!((read.name.as_str(), read.labels), ("one", a.labels));
    let mut db = db;
    let gone = "c".repeat(64);
    let err = db.update_create_options(&gone, &json!({})).unwrap_err();
    assert!(matches!(err, StateError::NoSuchContainer { .. }), "{err}");
}

#[test]
fn remove_takes_the_labels_along() {
    let (_dir, mut db) = open_temp();
    let a = db.create(&new_container(Some("gone"))).unwrap();
    let removed = db.remove(&a.id).unwrap();
    assert_eq!(removed.name, "gone");
    assert!(matches!(db.get(&a.id), Err(StateError::NoSuchContainer { .. })));
    assert!(matches!(db.remove(&a.id), Err(StateError::NoSuchContainer { .. })));
    let labels: i64 =
        db.conn.query_row("SELECT count(*) FROM container_labels", [], |r| r.get(0)).unwrap();
    assert_eq!(labels, 0);
    // The name is free again.
    db.create(&new_container(Some("gone"))).unwrap();
}

#[test]
fn state_changes_follow_the_state_machine() {
    let (_dir, mut db) = open_temp();
    let id = db.create(&new_container(None)).unwrap().id;
    let boot = "boot-1".to_owned();
    let err = db.update_state(&id, &StateChange::Paused).unwrap_err();
    assert_eq!(err.to_string(), format!("container {id} cannot go from configured to paused"));
    db.update_state(
        &id,
        &StateChange::Created { pid: Some(42), pid_start_time: Some(7), boot_id: boot.clone() },
    )
    .unwrap();
    let at = Timestamp::now();
    let running = db
        .update_state(&id, &StateChange::Running { pid: 42, pid_start_time: 7, boot_id: boot, at })
        .unwrap();
    assert_eq!(
        (running.state, running.pid, running.started_at),
        (ContainerState::Running, Some(42), Some(at))
    );
    assert!(db.update_state(&id, &StateChange::Unpaused).is_err(), "unpaused a running container");
    db.update_state(&id, &StateChange::Paused).unwrap();
    db.update_state(&id, &StateChange::Unpaused).unwrap();
    let end = Timestamp::now();
    let exited = db
        .update_state(&id, &StateChange::Exited { exit_code: Some(3), at: end, error: None })
        .unwrap();
    assert_eq!(exited.state, ContainerState::Exited);
    assert_eq!((exited.pid, exited.exit_code, exited.finished_at), (None, Some(3), Some(end)));
    assert_eq!(db.get(&id).unwrap(), exited);
    assert!(db.update_state(&id, &StateChange::Paused).is_err());
}

// Several changes in one transaction: all or none, each checked against the one before; and
// a monitor's late exit code fills in what reconciliation left unknown.
#[test]
fn changes_in_one_transaction_and_a_late_exit_code() {
    let (_dir, mut db) = open_temp();
    let id = db.create(&new_container(None)).unwrap().id;
    let boot = "boot-1".to_owned();
    let created =
        StateChange::Created { pid: Some(42), pid_start_time: Some(7), boot_id: boot.clone() };
    let at = Timestamp::now();
    let running = StateChange::Running { pid: 42, pid_start_time: 7, boot_id: boot, at };
    let err = db.update_states(&id, &[created.clone(), StateChange::Unpaused]).unwrap_err();
    assert!(err.to_string().contains("cannot go from created to running"), "{err}");
    assert_eq!(db.get(&id).unwrap().state, ContainerState::Configured, "half a change stuck");
    let record = db.update_states(&id, &[created, running]).unwrap();
    assert_eq!((record.state, record.pid), (ContainerState::Running, Some(42)));
    db.update_state(&id, &StateChange::Exited { exit_code: None, at, error: Some("gone".into()) })
        .unwrap();
    let late = db
        .update_state(&id, &StateChange::Exited { exit_code: Some(137), at, error: None })
        .unwrap();
    assert_eq!(late.exit_code, Some(137));
    let again = db.update_state(&id, &StateChange::Exited { exit_code: Some(1), at, error: None });
    assert!(again.is_err(), "a known exit code was overwritten");
}

struct FakeProbe(Vec<(i32, u64)>);

impl ProcessProbe for FakeProbe {
    fn start_time(&self, pid: i32) -> Option<u64> {
        self.0.iter().find(|(p, _)| *p == pid).map(|(_, t)| *t)
    }
}

#[test]
fn reconcile_marks_gone_reused_and_previous_boot_processes_exited() {
    let (_dir, mut db) = open_temp();
    let mut start = |pid: i32, start: u64, boot: &str| {
        let id = db.create(&new_container(None)).unwrap().id;
        db.update_state(
            &id,
            &StateChange::Created {
                pid: Some(pid),
                pid_start_time: Some(start),
                boot_id: boot.into(),
            },
        )
        .unwrap();
        db.update_state(
            &id,
            &StateChange::Running {
                pid,
                pid_start_time: start,
                boot_id: boot.into(),
                at: Timestamp::now(),
            },
        )
        .unwrap();
        id
    };
    let alive = start(100, 5, "now");
    let gone = start(101, 5, "now");
    let reused = start(102, 5, "now");
    let old_boot = start(100, 5, "before");
    let configured = db.create(&new_container(None)).unwrap().id;
    let probe = FakeProbe(vec![(100, 5), (102, 9)]);

    let mut marked = db.reconcile("now", &probe).unwrap();
    marked.sort();
    let mut expected = vec![gone.clone(), reused.clone(), old_boot.clone()];
    expected.sort();
    assert_eq!(marked, expected);
    assert_eq!(db.get(&alive).unwrap().state, ContainerState::Running);
    assert_eq!(db.get(&configured).unwrap().state, ContainerState::Configured);
    for id in [&gone, &reused, &old_boot] {
        let record = db.get(id).unwrap();
        assert_eq!(record.state, ContainerState::Exited);
        assert_eq!(record.exit_code, None);
        assert!(record.finished_at.is_some());
        assert!(record.state_error.is_some());
    }
    assert!(db.get(&old_boot).unwrap().state_error.unwrap().contains("rebooted"));
    assert!(db.reconcile("now", &probe).unwrap().is_empty(), "a second pass changed more");
}

// A container started for real, whose process is then killed behind the engine's back (a
// monitor killed with SIGKILL), reads as exited after reconciliation.
#[test]
fn reconcile_with_the_real_probe() {
    let (_dir, mut db) = open_temp();
    let boot = crate::state::current_boot_id().unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    let start = crate::state::ProcProbe.start_time(pid).unwrap();
    let id = db.create(&new_container(None)).unwrap().id;
    db.update_state(
        &id,
        &StateChange::Created {
            pid: Some(pid),
            pid_start_time: Some(start),
            boot_id: boot.clone(),
        },
    )
    .unwrap();
    db.update_state(
        &id,
        &StateChange::Running {
            pid,
            pid_start_time: start,
            boot_id: boot.clone(),
            at: Timestamp::now(),
        },
    )
    .unwrap();
    assert!(db.reconcile(&boot, &crate::state::ProcProbe).unwrap().is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(db.reconcile(&boot, &crate::state::ProcProbe).unwrap(), vec![id.clone()]);
    assert_eq!(db.get(&id).unwrap().state, ContainerState::Exited);
}

/// One worker's share of a concurrency test: create `count` containers (names generated, or
/// given when `prefix` is set), then remove every other one.
fn churn(path: &Path, count: usize, prefix: Option<&str>) -> usize {
    let mut db = StateDb::open(path).unwrap();
    let mut ids = Vec::new();
    for n in 0..count {
        let name = prefix.map(|p| format!("{p}-{n}"));
        let record = db.create(&new_container(name.as_deref())).unwrap();
        ids.push(record.id);
        // Readers interleave with the writers.
        assert!(!db.list().unwrap().is_empty());
    }
    for id in ids.iter().step_by(2) {
        db.remove(id).unwrap();
    }
    count - ids.iter().step_by(2).count()
}

#[test]
fn many_threads_creating_and_removing_leave_the_database_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    StateDb::open(&path).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let (path, barrier) = (path.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let prefix = (n % 2 == 0).then(|| format!("t{n}"));
                churn(&path, 30, prefix.as_deref())
            })
        })
        .collect();
    let left: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let db = StateDb::open(&path).unwrap();
    let all = db.list().unwrap();
    assert_eq!(all.len(), left);
    assert!(all.iter().all(|r| r.labels.len() == 2));
    let names: std::collections::HashSet<_> = all.iter().map(|r| &r.name).collect();
    assert_eq!(names.len(), all.len());
    assert_consistent(&db);
}

// Concurrent processes racing for the same names: exactly one process gets each name, the
// others are told it is in use, and nothing is half-written.
#[test]
fn many_processes_creating_and_removing_leave_the_database_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|n| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "state::db::tests::worker_process",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("BERTH_STATE_WORKER_DB", &path)
                .env("BERTH_STATE_WORKER_N", n.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut won_names = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "the worker did not run: {stdout}");
    }
    let db = StateDb::open(&path).unwrap();
    let all = db.list().unwrap();
    for n in 0..10 {
        let holders = all.iter().filter(|r| r.name == format!("shared-{n}")).count();
        assert_eq!(holders, 1, "shared-{n} is held by {holders} containers");
        won_names += holders;
    }
    assert_eq!(won_names, 10);
    // Each worker leaves 10 of its 20 generated-name containers, plus the 10 shared names.
    assert_eq!(all.len(), 6 * 10 + 10);
    assert_consistent(&db);
}

/// The child side of the test above (run by it, with the database in the environment).
#[test]
#[ignore = "a helper process of many_processes_creating_and_removing_leave_the_database_consistent"]
fn worker_process() {
    let path = std::path::PathBuf::from(
        std::env::var_os("BERTH_STATE_WORKER_DB").expect("run by its parent test"),
    );
    churn(&path, 20, None);
    let mut db = StateDb::open(&path).unwrap();
    for n in 0..10 {
        match db.create(&new_container(Some(&format!("shared-{n}")))) {
            Ok(_) | Err(StateError::NameInUse { .. }) => {}
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
}

// The first connections to a new database, from the container state and the network store at
// once (as parallel build stages or parallel first commands open it), all get it in WAL mode:
// none loses the race for the switch with "database is locked".
#[test]
fn first_opens_of_a_new_database_race_safely() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join(format!("state-{round}.db")));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    if i % 2 == 0 {
                        StateDb::open(&path).map(drop).map_err(|e| e.to_string())
                    } else {
                        crate::network::store::NetworkDb::open(&path)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap().unwrap();
        }
    }
}
