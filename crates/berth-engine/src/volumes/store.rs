//! The `volumes` table in `ROOT/state.db` and the data directories under `ROOT/volumes`.
//!
//! The table is this module's own: it is made with CREATE TABLE IF NOT EXISTS in a
//! `BEGIN IMMEDIATE` transaction on open, and every write is `BEGIN IMMEDIATE` too, with the
//! connection settings of the container database (WAL, synchronous=FULL, a long busy
//! timeout; see [`crate::state::db`]). A volume's row is written before its directory is made
//! and removed after its directory is gone, so a crash leaves at worst a row whose directory
//! `create` makes again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use tracing::debug;

use super::parse::valid_name;
use super::VolumeError;
use crate::state::db::BUSY_TIMEOUT;
use crate::state::Timestamp;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS volumes (
        name          TEXT PRIMARY KEY NOT NULL,
        driver        TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        labels        TEXT NOT NULL,
        options       TEXT NOT NULL,
        anonymous     INTEGER NOT NULL,
        needs_copy_up INTEGER NOT NULL
    );
";

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created_at: Timestamp,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub anonymous: bool,
    /// Not mounted yet: the first mount copies the image's content in.
    pub needs_copy_up: bool,
    /// `ROOT/volumes/NAME/_data`.
    pub mountpoint: PathBuf,
}

/// `volume inspect`'s JSON, Podman's shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: &'static str,
    pub options: BTreeMap<String, String>,
    #[serde(rename = "MountCount")]
    pub mount_count: u32,
    #[serde(rename = "NeedsCopyUp")]
    pub needs_copy_up: bool,
    #[serde(rename = "NeedsChown")]
    pub needs_chown: bool,
    #[serde(rename = "Anonymous")]
    pub anonymous: bool,
}

impl Volume {
    pub fn inspect(&self) -> VolumeInspect {
        VolumeInspect {
            name: self.name.clone(),
            driver: self.driver.clone(),
            mountpoint: self.mountpoint.clone(),
            created_at: self.created_at.to_rfc3339_nanos(),
            labels: self.labels.clone(),
            scope: "local",
            options: self.options.clone(),
            mount_count: 0,
            needs_copy_up: self.needs_copy_up,
            needs_chown: false,
            anonymous: self.anonymous,
        }
    }
}

/// The volumes of one data root.
pub struct VolumeStore {
    root: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for VolumeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeStore").field("root", &self.root).finish_non_exhaustive()
    }
}

fn query(what: &str) -> impl FnOnce(rusqlite::Error) -> VolumeError + '_ {
    move |source| VolumeError::Query { what: what.to_owned(), source }
}

impl VolumeStore {
    /// Opens the volume table of data root `root`, creating it if needed.
    pub fn open(root: &Path) -> Result<Self, VolumeError> {
        fs::create_dir_all(root)
            .map_err(|source| VolumeError::CreateDir { path: root.to_owned(), source })?;
        let path = root.join("state.db");
        let open = |source| VolumeError::OpenDatabase { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        let _: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(open)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(open)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open)?;
        tx.execute_batch(SCHEMA).map_err(open)?;
        tx.commit().map_err(open)?;
        Ok(Self { root: root.to_owned(), conn })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// Creates a volume named `name` (a random 64-digit name when `None`) and its directory.
    pub fn create(
        &mut self,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume, VolumeError> {
        let name = match name {
            Some(n) if !valid_name(n) => return Err(VolumeError::BadName { name: n.to_owned() }),
            Some(n) => n.to_owned(),
            None => crate::state::generate_id().map_err(VolumeError::Containers)?,
        };
        let created_at = Timestamp::now();
        let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
        let data = self.dir(&name).join("_data");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query("begin"))?;
        let exists: Option<String> = tx
            .query_row("SELECT name FROM volumes WHERE name = ?1", [&name], |r| r.get(0))
            .optional()
            .map_err(query("looking up a volume"))?;
        if exists.is_some() {
            return Err(VolumeError::Exists { name });
        }
        tx.execute(
            "INSERT INTO volumes (name, driver, created_at, labels, options, anonymous, \
             needs_copy_up) VALUES (?1, 'local', ?2, ?3, '{}', ?4, 1)",
            params![name, created_at.0, labels_json, anonymous],
        )
        .map_err(query("inserting a volume"))?;
        if let Err(source) = fs::create_dir_all(&data) {
            return Err(VolumeError::CreateDir { path: data, source });
        }
        tx.commit().map_err(query("commit"))?;
        debug!(%name, "volume created");
        Ok(Volume {
            name,
            driver: "local".into(),
            created_at,
            labels: labels.clone(),
            options: BTreeMap::new(),
            anonymous,
            needs_copy_up: true,
            mountpoint: data,
        })
    }

    fn read_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
        let name: String = row.get(0)?;
        let labels: String = row.get(3)?;
        let options: String = row.get(4)?;
        Ok(Volume {
            mountpoint: self.dir(&name).join("_data"),
            name,
            driver: row.get(1)?,
            created_at: Timestamp(row.get(2)?),
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            options: serde_json::from_str(&options).unwrap_or_default(),
            anonymous: row.get(5)?,
            needs_copy_up: row.get(6)?,
        })
    }

    /// The volume named `name`.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.conn
            .query_row(
                "SELECT name, driver, created_at, labels, options, anonymous, needs_copy_up \
                 FROM volumes WHERE name = ?1",
                [name],
                |row| self.read_row(row),
            )
            .optional()
            .map_err(query("looking up a volume"))?
            .ok_or_else(|| VolumeError::NoSuchVolume { name: name.to_owned() })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, driver, created_at, labels, options, anonymous, needs_copy_up \
                 FROM volumes ORDER BY name",
            )
            .map_err(query("listing volumes"))?;
        let rows = stmt
            .query_map([], |row| self.read_row(row))
            .map_err(query("listing volumes"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(query("listing volumes"))?;
        Ok(rows)
    }

    /// Records that `name` had its copy-up.
    pub fn mark_copied_up(&mut self, name: &str) -> Result<(), VolumeError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query("begin"))?;
        tx.execute("UPDATE volumes SET needs_copy_up = 0 WHERE name = ?1", [name])
            .map_err(query("recording a copy-up"))?;
        tx.commit().map_err(query("commit"))
    }

    /// Removes volume `name` and its data. `users` are the names of the containers that use
    /// it (see [`super::users`]): a volume in use is refused.
    pub fn remove(&mut self, name: &str, users: &[String]) -> Result<Volume, VolumeError> {
        let volume = self.get(name)?;
        if !users.is_empty() {
            return Err(VolumeError::InUse { name: name.to_owned(), containers: users.join(", ") });
        }
        let dir = self.dir(name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(VolumeError::RemoveDir { path: dir, source }),
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query("begin"))?;
        tx.execute("DELETE FROM volumes WHERE name = ?1", [name])
            .map_err(query("removing a volume"))?;
        tx.commit().map_err(query("commit"))?;
        debug!(%name, "volume removed");
        Ok(volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_created_listed_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut store = VolumeStore::open(root.path()).unwrap();
        let v = store.create(Some("data"), &BTreeMap::new(), false).unwrap();
        assert!(v.mountpoint.ends_with("volumes/data/_data") && v.mountpoint.is_dir());
        assert!(matches!(
            store.create(Some("data"), &BTreeMap::new(), false),
            Err(VolumeError::Exists { .. })
        ));
        let anon = store.create(None, &BTreeMap::new(), true).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(store.list().unwrap().len(), 2);
        let err = store.remove("data", &["c1".into()]).unwrap_err().to_string();
        assert!(err.contains("is being used by the following container(s): c1"), "{err}");
        store.remove("data", &[]).unwrap();
        assert!(!root.path().join("volumes/data").exists());
        assert!(matches!(store.get("data"), Err(VolumeError::NoSuchVolume { .. })));
        // A second store on the same file sees the same table.
        let again = VolumeStore::open(root.path()).unwrap();
        assert_eq!(again.list().unwrap().len(), 1);
    }
}
