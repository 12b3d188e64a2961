//! The SQLite database of containers.
//!
//! Settings follow Podman's SQLite backend — WAL journal (readers never block the writer),
//! foreign keys on, a long busy timeout (another berth holding the write lock makes this one
//! wait, not fail), and `BEGIN IMMEDIATE` for every write, so a transaction takes the write
//! lock before it reads and never has to be retried half-way — with two exceptions made for the
//! hot path of `run`, where each fsync cost 2–4 ms on this machine's disk:
//!
//! - `synchronous=NORMAL`: in WAL mode a commit appends to the WAL without an fsync; the WAL is
//!   synced before each checkpoint and the database after it. That never corrupts the database
//!   (SQLite's documentation: WAL with NORMAL is safe from corruption), it only means a power
//!   cut can lose the last commits before it. What the database holds about running processes
//!   is per boot anyway — after a reboot every live record is reconciled to exited — so a lost
//!   commit costs at most a container record created or removed just before the power went.
//! - No checkpoint when a connection closes (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`): every berth
//!   command is a short-lived process, and SQLite's last connection otherwise checkpoints the
//!   WAL into the database (two fsyncs), deletes the WAL and makes the next command create it
//!   again (a directory fsync). The WAL stays and is checkpointed automatically once it holds
//!   [`WAL_AUTOCHECKPOINT`] pages.
//!
//! Reads that need several statements run in one deferred transaction, which in WAL mode is a
//! consistent snapshot.
//!
//! One [`StateDb`] is one connection; open one per process or thread. The database must be
//! on a local file system (WAL needs shared memory between the processes).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};
use tracing::debug;

use super::ids::{generate_name, is_full_id, validate_name};
use super::{ContainerRecord, ContainerState, NewContainer, StateChange, StateError, Timestamp};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another process's write lock before it gives up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(100);

/// WAL pages after which a commit checkpoints the WAL into the database (SQLite's default is
/// 1000; a smaller WAL keeps the recovery that the first connection after a close does short).
pub const WAL_AUTOCHECKPOINT: u32 = 256;

/// Generated names tried before giving up (each retry after the first adds a digit).
const NAME_ATTEMPTS: u32 = 64;

const SCHEMA_V1: &str = "
    CREATE TABLE containers (
        id             TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 64),
        name           TEXT NOT NULL UNIQUE,
        image_id       TEXT NOT NULL,
        image_name     TEXT NOT NULL,
        spec_json      TEXT NOT NULL,
        create_options TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        state          TEXT NOT NULL,
        pid            INTEGER,
        pid_start_time INTEGER,
        boot_id        TEXT,
        exit_code      INTEGER,
        started_at     INTEGER,
        finished_at    INTEGER,
        state_error    TEXT
    );
    CREATE TABLE container_labels (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        PRIMARY KEY (container_id, key)
    ) WITHOUT ROWID;
";

const COLUMNS: &str = "id, name, image_id, image_name, spec_json, create_options, created_at, \
    state, pid, pid_start_time, boot_id, exit_code, started_at, finished_at, state_error";

/// A connection to the state database.
pub struct StateDb {
    path: PathBuf,
    pub(super) conn: Connection,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish_non_exhaustive()
    }
}

fn query_err(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StateError {
    let what = what.into();
    move |source| StateError::Query { what, source }
}

fn write_err(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StateError {
    let what = what.into();
    move |source| StateError::Write { what, source }
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

/// `PRAGMA journal_mode = WAL`; answers with the mode in force (WAL persists in the file once
/// set). On a new database the first connections of several processes race for the switch,
/// and SQLite answers the losers SQLITE_BUSY at once instead of through the busy handler (a
/// reader upgrading to a writer would deadlock): they try again until [`BUSY_TIMEOUT`].
pub(crate) fn enable_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl StateDb {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|source| StateError::CreateDir { path: parent.to_owned(), source })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| StateError::OpenDatabase { path: path.to_owned(), source })?;
        let configure = |source| StateError::ConfigureDatabase { path: path.to_owned(), source };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(configure)?;
        let mode = enable_wal(&conn).map_err(configure)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(configure(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode stayed {mode}, WAL is needed (is {} on a network file system?)",
                path.display()
            ))));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT};"
        ))
        .map_err(configure)?;
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(configure)?;

        let mut db = Self { path: path.to_owned(), conn };
        db.migrate()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|source| StateError::MigrateSchema { path: path.clone(), from: 0, source })?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let migrate =
            |source| StateError::MigrateSchema { path: path.clone(), from: version, source };
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(migrate)?;
        // Another process may have migrated while this one waited for the write lock.
        let version: i64 =
            tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(migrate)?;
        if version == 0 {
            tx.execute_batch(SCHEMA_V1).map_err(migrate)?;
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(migrate)?;
            debug!(path = %path.display(), "created the state database schema");
        }
        tx.commit().map_err(migrate)
    }

    /// Adds a container in state `configured`, generating a unique name when none is given.
    /// A name or id already in use fails and creates nothing.
    pub fn create(&mut self, new: &NewContainer) -> Result<ContainerRecord, StateError> {
        if !is_full_id(&new.id) {
            return Err(StateError::InvalidId { id: new.id.clone() });
        }
        if let Some(name) = &new.name {
            validate_name(name)?;
        }
        let create_options = serde_json::to_string(&new.create_options).map_err(|source| {
            StateError::Encode { id: new.id.clone(), field: "create_options", source }
        })?;
        let created_at = Timestamp::now();
        let what = format!("creating container {}", new.id);

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(write_err(&what))?;
        let holder_of = |name: &str| -> Result<Option<String>, StateError> {
            tx.query_row("SELECT id FROM containers WHERE name = ?1", [name], |row| row.get(0))
                .optional()
                .map_err(query_err(format!("looking up name {name:?}")))
        };
        let id_taken: bool = tx
            .query_row("SELECT 1 FROM containers WHERE id = ?1", [&new.id], |_| Ok(()))
            .optional()
            .map_err(query_err(&what))?
            .is_some();
        if id_taken {
            return Err(StateError::IdInUse { id: new.id.clone() });
        }
        let name = match &new.name {
            Some(name) => {
                if let Some(id) = holder_of(name)? {
                    return Err(StateError::NameInUse { name: name.clone(), id });
                }
                name.clone()
            }
            None => {
                let mut found = None;
                for retry in 0..NAME_ATTEMPTS {
                    let candidate = generate_name(retry)?;
                    if holder_of(&candidate)?.is_none() {
                        found = Some(candidate);
                        break;
                    }
                }
                // Thousands of generated names in use: fall back on the id, always unique.
                found.unwrap_or_else(|| format!("berth_{}", &new.id[..12]))
            }
        };

        let inserted = tx.execute(
            &format!(
                "INSERT INTO containers ({COLUMNS}) VALUES \
                (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
            params![
                new.id,
                name,
                new.image_id,
                new.image_name,
                new.spec_json,
                create_options,
                created_at.unix_nanos(),
                ContainerState::Configured.as_str(),
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                return Err(StateError::NameInUse { name, id: "another container".to_owned() })
            }
            Err(err) => return Err(write_err(&what)(err)),
        }
        {
            let mut insert_label = tx
                .prepare(
                    "INSERT INTO container_labels (container_id, key, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(write_err(&what))?;
            for (key, value) in &new.labels {
                insert_label.execute(params![new.id, key, value]).map_err(write_err(&what))?;
            }
        }
        tx.commit().map_err(write_err(&what))?;
        debug!(id = %new.id, %name, "created container record");

        Ok(ContainerRecord {
            id: new.id.clone(),
            name,
            image_id: new.image_id.clone(),
            image_name: new.image_name.clone(),
            spec_json: new.spec_json.clone(),
            create_options: new.create_options.clone(),
            labels: new.labels.clone(),
            created_at,
            state: ContainerState::Configured,
            pid: None,
            pid_start_time: None,
            boot_id: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            state_error: None,
        })
    }

    /// The container with exactly this id.
    pub fn get(&self, id: &str) -> Result<ContainerRecord, StateError> {
        let tx = self.conn.unchecked_transaction().map_err(query_err(format!("reading {id}")))?;
        let record = read_one(&tx, id)?
            .ok_or_else(|| StateError::NoSuchContainer { query: id.to_owned() })?;
        tx.finish().map_err(query_err(format!("reading {id}")))?;
        Ok(record)
    }

    /// Finds a container as Podman's commands do: a full id, then an exact name, then a unique
    /// id prefix. A prefix that fits several containers is an error naming how many.
    pub fn lookup(&self, query: &str) -> Result<ContainerRecord, StateError> {
        let what = format!("looking up container {query:?}");
        let tx = self.conn.unchecked_transaction().map_err(query_err(&what))?;
        if query.is_empty() {
            return Err(StateError::NoSuchContainer { query: query.to_owned() });
        }
        if is_full_id(query) {
            if let Some(record) = read_one(&tx, query)? {
                return Ok(record);
            }
        }
        let by_name: Option<String> = tx
            .query_row("SELECT id FROM containers WHERE name = ?1", [query], |row| row.get(0))
            .optional()
            .map_err(query_err(&what))?;
        if let Some(id) = by_name {
            return read_one(&tx, &id)?
                .ok_or_else(|| StateError::NoSuchContainer { query: query.to_owned() });
        }
        if query.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            // Every id digit sorts below 'g', so [prefix, prefix + "g") holds exactly the ids
            // starting with the prefix, and the primary key index answers it.
            let mut stmt = tx
                .prepare("SELECT id FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 64")
                .map_err(query_err(&what))?;
            let ids: Vec<String> = stmt
                .query_map(params![query, format!("{query}g")], |row| row.get(0))
                .map_err(query_err(&what))?
                .collect::<Result<_, _>>()
                .map_err(query_err(&what))?;
            match ids.as_slice() {
                [id] => {
                    return read_one(&tx, id)?
                        .ok_or_else(|| StateError::NoSuchContainer { query: query.to_owned() })
                }
                [] => {}
                many => {
                    return Err(StateError::AmbiguousPrefix {
                        prefix: query.to_owned(),
                        count: many.len(),
                    })
                }
            }
        }
        Err(StateError::NoSuchContainer { query: query.to_owned() })
    }

    /// Every container, oldest first, read as one consistent snapshot.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, StateError> {
        let what = "listing containers";
        let tx = self.conn.unchecked_transaction().map_err(query_err(what))?;
        let mut labels: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        {
            let mut stmt = tx
                .prepare("SELECT container_id, key, value FROM container_labels")
                .map_err(query_err(what))?;
            let rows = stmt
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?)))
                .map_err(query_err(what))?;
            for row in rows {
                let (id, key, value) = row.map_err(query_err(what))?;
                labels.entry(id).or_default().insert(key, value);
            }
        }
        let mut out = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!("SELECT {COLUMNS} FROM containers ORDER BY created_at, id"))
                .map_err(query_err(what))?;
            let mut rows = stmt.query([]).map_err(query_err(what))?;
            while let Some(row) = rows.next().map_err(query_err(what))? {
                let mut record = record_from_row(row)?;
                record.labels = labels.remove(&record.id).unwrap_or_default();
                out.push(record);
            }
        }
        tx.finish().map_err(query_err(what))?;
        Ok(out)
    }

    /// Gives container `id` a new name; the old one is free again at once.
    pub fn rename(&mut self, id: &str, new_name: &str) -> Result<ContainerRecord, StateError> {
        validate_name(new_name)?;
        let what = format!("renaming container {id} to {new_name:?}");
        let (tx, mut record) = write_one(&mut self.conn, id, &what)?;
        let holder: Option<String> = tx
            .query_row("SELECT id FROM containers WHERE name = ?1", [new_name], |row| row.get(0))
            .optional()
            .map_err(query_err(&what))?;
        match holder {
            Some(holder) if holder == id => return Ok(record),
            Some(holder) => {
                return Err(StateError::NameInUse { name: new_name.to_owned(), id: holder })
            }
            None => {}
        }
        tx.execute("UPDATE containers SET name = ?1 WHERE id = ?2", params![new_name, id])
            .map_err(write_err(&what))?;
        tx.commit().map_err(write_err(&what))?;
        record.name = new_name.to_owned();
        Ok(record)
    }

    /// Replaces container `id`'s stored create options (`network connect` and `disconnect`
    /// change the networks it starts with); the caller holds the container's lock.
    pub fn update_create_options(
        &mut self,
        id: &str,
        create_options: &serde_json::Value,
    ) -> Result<ContainerRecord, StateError> {
        let text = serde_json::to_string(create_options).map_err(|source| StateError::Encode {
            id: id.to_owned(),
            field: "create_options",
            source,
        })?;
        let what = format!("updating the create options of container {id}");
        let (tx, mut record) = write_one(&mut self.conn, id, &what)?;
        tx.execute("UPDATE containers SET create_options = ?1 WHERE id = ?2", params![text, id])
            .map_err(write_err(&what))?;
        tx.commit().map_err(write_err(&what))?;
        record.create_options = create_options.clone();
        Ok(record)
    }

    /// Removes container `id` and its labels, returning what it was.
    pub fn remove(&mut self, id: &str) -> Result<ContainerRecord, StateError> {
        let what = format!("removing container {id}");
        let (tx, record) = write_one(&mut self.conn, id, &what)?;
        tx.execute("DELETE FROM containers WHERE id = ?1", [id]).map_err(write_err(&what))?;
        tx.commit().map_err(write_err(&what))?;
        debug!(%id, name = %record.name, "removed container record");
        Ok(record)
    }

    /// Applies `change` to container `id` if its current state allows it (checked and written
    /// under the write lock, so two processes cannot both make the same transition).
    pub fn update_state(
        &mut self,
        id: &str,
        change: &StateChange,
    ) -> Result<ContainerRecord, StateError> {
        self.update_states(id, std::slice::from_ref(change))
    }

    /// Applies `changes` in order to container `id` in one transaction (one write to disk),
    /// each checked against the state the one before left; none is applied if one is not
    /// allowed.
    pub fn update_states(
        &mut self,
        id: &str,
        changes: &[StateChange],
    ) -> Result<ContainerRecord, StateError> {
        let what = format!("changing the state of container {id}");
        let (tx, mut record) = write_one(&mut self.conn, id, &what)?;
        for change in changes {
            let from = record.state;
            let to = change.target();
            let allowed = match change {
                StateChange::Unpaused => from == ContainerState::Paused,
                StateChange::Running { .. } => {
                    from != ContainerState::Paused && from.can_become(to)
                }
                // The monitor's late word: reconciliation saw the process gone first and
                // recorded no code; the monitor that reaped it knows the code.
                StateChange::Exited { exit_code: Some(_), .. }
                    if from == ContainerState::Exited && record.exit_code.is_none() =>
                {
                    true
                }
                _ => from.can_become(to),
            };
            if !allowed {
                return Err(StateError::InvalidTransition { id: id.to_owned(), from, to });
            }
            apply_change(&mut record, change);
            debug!(%id, %from, %to, "container state changed");
        }
        write_state(&tx, &record).map_err(write_err(&what))?;
        tx.commit().map_err(write_err(&what))?;
        Ok(record)
    }
}

/// Sets the fields `change` decides on `record`.
pub(super) fn apply_change(record: &mut ContainerRecord, change: &StateChange) {
    record.state = change.target();
    match change {
        StateChange::Created { pid, pid_start_time, boot_id } => {
            record.pid = *pid;
            record.pid_start_time = *pid_start_time;
            record.boot_id = Some(boot_id.clone());
            record.exit_code = None;
            record.state_error = None;
        }
        StateChange::Running { pid, pid_start_time, boot_id, at } => {
            record.pid = Some(*pid);
            record.pid_start_time = Some(*pid_start_time);
            record.boot_id = Some(boot_id.clone());
            record.started_at = Some(*at);
            record.finished_at = None;
            record.exit_code = None;
            record.state_error = None;
        }
        StateChange::Paused | StateChange::Unpaused | StateChange::Stopped => {}
        StateChange::Exited { exit_code, at, error } => {
            record.pid = None;
            record.pid_start_time = None;
            record.exit_code = *exit_code;
            record.finished_at = Some(*at);
            record.state_error = error.clone();
        }
        StateChange::Reset => {
            record.pid = None;
            record.pid_start_time = None;
        }
    }
}

/// Writes the state columns of `record`.
pub(super) fn write_state(conn: &Connection, record: &ContainerRecord) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE containers SET state = ?2, pid = ?3, pid_start_time = ?4, boot_id = ?5, \
         exit_code = ?6, started_at = ?7, finished_at = ?8, state_error = ?9 WHERE id = ?1",
        params![
            record.id,
            record.state.as_str(),
            record.pid,
            record.pid_start_time.map(|t| t as i64),
            record.boot_id,
            record.exit_code,
            record.started_at.map(Timestamp::unix_nanos),
            record.finished_at.map(Timestamp::unix_nanos),
            record.state_error,
        ],
    )
}

/// Opens a write transaction (taking the write lock at once) and reads container `id` in it.
fn write_one<'c>(
    conn: &'c mut Connection,
    id: &str,
    what: &str,
) -> Result<(rusqlite::Transaction<'c>, ContainerRecord), StateError> {
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(write_err(what))?;
    let record =
        read_one(&tx, id)?.ok_or_else(|| StateError::NoSuchContainer { query: id.to_owned() })?;
    Ok((tx, record))
}

/// Reads one container with its labels.
pub(super) fn read_one(conn: &Connection, id: &str) -> Result<Option<ContainerRecord>, StateError> {
    let what = format!("reading container {id}");
    let mut record = match conn
        .query_row(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"), [id], |row| {
            Ok(record_from_row(row))
        })
        .optional()
        .map_err(query_err(&what))?
    {
        None => return Ok(None),
        Some(record) => record?,
    };
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM container_labels WHERE container_id = ?1")
        .map_err(query_err(&what))?;
    let rows =
        stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?))).map_err(query_err(&what))?;
    for row in rows {
        let (key, value) = row.map_err(query_err(&what))?;
        record.labels.insert(key, value);
    }
    Ok(Some(record))
}

/// Builds a record (without labels) from a row selected with [`COLUMNS`].
fn record_from_row(row: &Row<'_>) -> Result<ContainerRecord, StateError> {
    let id: String = row.get(0).map_err(query_err("reading a container row"))?;
    let column = |e: rusqlite::Error| StateError::Decode {
        id: id.clone(),
        field: "row",
        reason: e.to_string(),
    };
    let state: String = row.get(7).map_err(column)?;
    let state = state.parse().map_err(|reason| StateError::Decode {
        id: id.clone(),
        field: "state",
        reason,
    })?;
    let create_options: String = row.get(5).map_err(column)?;
    let create_options = serde_json::from_str(&create_options).map_err(|e| StateError::Decode {
        id: id.clone(),
        field: "create_options",
        reason: e.to_string(),
    })?;
    Ok(ContainerRecord {
        name: row.get(1).map_err(column)?,
        image_id: row.get(2).map_err(column)?,
        image_name: row.get(3).map_err(column)?,
        spec_json: row.get(4).map_err(column)?,
        create_options,
        labels: BTreeMap::new(),
        created_at: Timestamp(row.get(6).map_err(column)?),
        state,
        pid: row.get(8).map_err(column)?,
        pid_start_time: row.get::<_, Option<i64>>(9).map_err(column)?.map(|t| t as u64),
        boot_id: row.get(10).map_err(column)?,
        exit_code: row.get(11).map_err(column)?,
        started_at: row.get::<_, Option<i64>>(12).map_err(column)?.map(Timestamp),
        finished_at: row.get::<_, Option<i64>>(13).map_err(column)?.map(Timestamp),
        state_error: row.get(14).map_err(column)?,
        id,
    })
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
