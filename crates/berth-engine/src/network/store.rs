//! Networks, their address allocations and the containers' attachments, kept in the engine's
//! state database (`ROOT/state.db`), beside the containers.
//!
//! The tables are this module's own and are created with `CREATE TABLE IF NOT EXISTS` inside a
//! `BEGIN IMMEDIATE` transaction when a connection opens, so the containers' schema version
//! (`PRAGMA user_version`, owned by [`state::db`](crate::state::db)) is left alone. The
//! connection settings are the state database's: WAL, `synchronous=FULL`, foreign keys, a long
//! busy timeout, and `BEGIN IMMEDIATE` for every write, so of two processes reserving one
//! address exactly one succeeds — the primary key on (network, address) decides.
//!
//! - `networks`: one row per network, its [`Network`] as JSON, its creation time.
//! - `network_addresses`: one row per address handed out, with the container holding it.
//! - `network_attachments`: what a container's networking is made of (an
//!   [`AttachRecord`]), written *before* anything is set up on the host, so that the next
//!   berth command can undo it after a monitor killed with SIGKILL.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::ipam::{plan_network, CreateOptions, IpamError, IpamStore, Network, Reserve, Subnet};
use crate::state::Timestamp;

/// Errors of the network tables, named after the step that failed, with the database path
/// or the network they were about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("creating the network tables in {path}")]
    Schema {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what}")]
    Query {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("decoding the record of network {name}")]
    Decode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding the record of {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("generating an id for network {name}")]
    Id {
        name: String,
        #[source]
        source: crate::state::StateError,
    },
    #[error(transparent)]
    Plan(#[from] IpamError),
    #[error("network {name} not found")]
    NotFound { name: String },
    #[error("network id prefix {prefix} is ambiguous: {count} networks match")]
    Ambiguous { prefix: String, count: usize },
}

/// How long a connection waits for another process's write lock, as the state database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(100);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS networks (
        name        TEXT PRIMARY KEY NOT NULL,
        id          TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        config_json TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS network_addresses (
        network      TEXT NOT NULL,
        address      TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (network, address)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS network_addresses_by_container
        ON network_addresses (container_id);
    CREATE TABLE IF NOT EXISTS network_attachments (
        container_id TEXT PRIMARY KEY NOT NULL,
        record_json  TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    );
";

/// A network with the time it was created, as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    pub network: Network,
    pub created: Timestamp,
}

/// A connection to the network tables of one state database.
pub struct NetworkDb {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for NetworkDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDb").field("path", &self.path).finish_non_exhaustive()
    }
}

fn query(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Query { what, source }
}

fn boxed(err: StoreError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(err)
}

impl NetworkDb {
    /// Opens the state database at `path` (creating it and its directory if needed) and makes
    /// sure the network tables exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                open(rusqlite::Error::InvalidPath(PathBuf::from(format!(
                    "{}: {e}",
                    parent.display()
                ))))
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        let mode = crate::state::db::enable_wal(&conn).map_err(open)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode stayed {mode}, WAL is needed (is {} on a network file system?)",
                path.display()
            ))));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(open)?;

        let mut db = Self { path: path.to_owned(), conn };
        let schema = |source| StoreError::Schema { path: path.to_owned(), source };
        let tx =
            db.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(schema)?;
        tx.execute_batch(SCHEMA).map_err(schema)?;
        tx.commit().map_err(schema)?;
        Ok(db)
    }

    /// Opens `ROOT/state.db`.
    pub fn open_root(root: &Path) -> Result<Self, StoreError> {
        Self::open(&root.join("state.db"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        let what = "listing networks";
        let mut stmt = self
            .conn
            .prepare("SELECT name, created_at, config_json FROM networks ORDER BY name")
            .map_err(query(what))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
            })
            .map_err(query(what))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, created, json) = row.map_err(query(what))?;
            out.push(decode(name, created, &json)?);
        }
        Ok(out)
    }

    /// The network called `name_or_id`, or whose id is or starts with it (as Podman resolves
    /// network references: the name first, then the id or a unique prefix of it).
    pub fn find(&self, name_or_id: &str) -> Result<NetworkRecord, StoreError> {
        let all = self.networks()?;
        if let Some(found) = all.iter().find(|r| r.network.name == name_or_id) {
            return Ok(found.clone());
        }
        let hex = !name_or_id.is_empty() && name_or_id.bytes().all(|b| b.is_ascii_hexdigit());
        let matching: Vec<&NetworkRecord> = if hex {
            all.iter().filter(|r| r.network.id.starts_with(name_or_id)).collect()
        } else {
            Vec::new()
        };
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(StoreError::NotFound { name: name_or_id.to_owned() }),
            many => Err(StoreError::Ambiguous { prefix: name_or_id.to_owned(), count: many.len() }),
        }
    }

    /// Plans and records a network in one write transaction, so that two berth processes
    /// creating networks at once cannot both take one subnet or one name.
    pub fn create_network(
        &mut self,
        opts: &CreateOptions,
        host_routes: &[Subnet],
    ) -> Result<NetworkRecord, StoreError> {
        let what = format!("creating network {}", opts.name);
        let id = crate::state::ids::generate_id()
            .map_err(|source| StoreError::Id { name: opts.name.clone(), source })?;
        let existing: Vec<Network> = self.networks()?.into_iter().map(|r| r.network).collect();
        // Plan once outside the lock for a quick answer to bad input, then again inside.
        plan_network(opts, &id, &existing, host_routes)?;

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))?;
        let existing = {
            let mut stmt = tx
                .prepare("SELECT name, created_at, config_json FROM networks")
                .map_err(query(&what))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
                })
                .map_err(query(&what))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, created, json) = row.map_err(query(&what))?;
                out.push(decode(name, created, &json)?.network);
            }
            out
        };
        let network = plan_network(opts, &id, &existing, host_routes)?;
        let json = serde_json::to_string(&network).map_err(|source| StoreError::Encode {
            what: format!("network {}", opts.name),
            source,
        })?;
        let created = Timestamp::now();
        tx.execute(
            "INSERT INTO networks (name, id, created_at, config_json) VALUES (?1, ?2, ?3, ?4)",
            params![network.name, network.id, created.unix_nanos(), json],
        )
        .map_err(query(&what))?;
        tx.commit().map_err(query(&what))?;
        tracing::debug!(network = %network.name, id = %network.id, "network created");
        Ok(NetworkRecord { network, created })
    }

    /// Forgets network `name` and every address handed out in it. Whether containers still
    /// use it is the caller's question ([`Self::users`]).
    pub fn remove_network(&mut self, name: &str) -> Result<(), StoreError> {
        let what = format!("removing network {name}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))?;
        let gone =
            tx.execute("DELETE FROM networks WHERE name = ?1", [name]).map_err(query(&what))?;
        tx.execute("DELETE FROM network_addresses WHERE network = ?1", [name])
            .map_err(query(&what))?;
        tx.commit().map_err(query(&what))?;
        if gone == 0 {
            return Err(StoreError::NotFound { name: name.to_owned() });
        }
        Ok(())
    }

    /// The containers using network `name`: those holding an address in it, and those whose
    /// attachment record names it.
    pub fn users(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let what = format!("listing the containers of network {name}");
        let mut out: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT DISTINCT container_id FROM network_addresses WHERE network = ?1")
                .map_err(query(&what))?;
            let rows = stmt.query_map([name], |row| row.get(0)).map_err(query(&what))?;
            rows.collect::<Result<_, _>>().map_err(query(&what))?
        };
        for (id, json) in self.attachment_rows()? {
            let uses = serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v.get("networks").cloned())
                .and_then(|n| n.as_array().cloned())
                .is_some_and(|n| {
                    n.iter().any(|x| x.get("name").and_then(|s| s.as_str()) == Some(name))
                });
            if uses && !out.contains(&id) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    fn attachment_rows(&self) -> Result<Vec<(String, String)>, StoreError> {
        let what = "listing network attachments";
        let mut stmt = self
            .conn
            .prepare("SELECT container_id, record_json FROM network_attachments")
            .map_err(query(what))?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).map_err(query(what))?;
        rows.collect::<Result<_, _>>().map_err(query(what))
    }

    /// Records (or replaces) container `id`'s attachment, as JSON.
    pub fn put_attachment(&mut self, id: &str, json: &str) -> Result<(), StoreError> {
        let what = format!("recording the networks of container {id}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))?;
        tx.execute(
            "INSERT INTO network_attachments (container_id, record_json, created_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (container_id) DO UPDATE SET record_json = excluded.record_json",
            params![id, json, Timestamp::now().unix_nanos()],
        )
        .map_err(query(&what))?;
        tx.commit().map_err(query(&what))
    }

    /// Container `id`'s attachment record, if any.
    pub fn attachment(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT record_json FROM network_attachments WHERE container_id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
            .map_err(query(format!("reading the networks of container {id}")))
    }

    /// Every container with an attachment record.
    pub fn attached_containers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.attachment_rows()?.into_iter().map(|(id, _)| id).collect())
    }

    /// Forgets container `id`'s attachment; no error when there is none.
    pub fn remove_attachment(&mut self, id: &str) -> Result<(), StoreError> {
        let what = format!("forgetting the networks of container {id}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))?;
        tx.execute("DELETE FROM network_attachments WHERE container_id = ?1", [id])
            .map_err(query(&what))?;
        tx.commit().map_err(query(&what))
    }
}

fn decode(name: String, created: i64, json: &str) -> Result<NetworkRecord, StoreError> {
    let network: Network =
        serde_json::from_str(json).map_err(|source| StoreError::Decode { name, source })?;
    Ok(NetworkRecord { network, created: Timestamp::from_unix_nanos(created) })
}

impl IpamStore for NetworkDb {
    fn allocated(
        &self,
        network: &str,
    ) -> Result<BTreeMap<IpAddr, String>, Box<dyn std::error::Error + Send + Sync>> {
        let what = format!("listing the addresses of network {network}");
        let mut stmt = self
            .conn
            .prepare("SELECT address, container_id FROM network_addresses WHERE network = ?1")
            .map_err(query(&what))
            .map_err(boxed)?;
        let rows = stmt
            .query_map([network], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
            .map_err(query(&what))
            .map_err(boxed)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (addr, container) = row.map_err(query(&what)).map_err(boxed)?;
            // Rows are written by `reserve` from an IpAddr; another text is no address of ours.
            if let Ok(addr) = addr.parse() {
                out.insert(addr, container);
            }
        }
        Ok(out)
    }

    fn reserve(
        &mut self,
        network: &str,
        addr: IpAddr,
        container: &str,
    ) -> Result<Reserve, Box<dyn std::error::Error + Send + Sync>> {
        let what = format!("reserving {addr} of network {network}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))
            .map_err(boxed)?;
        let inserted = tx.execute(
            "INSERT INTO network_addresses (network, address, container_id) VALUES (?1, ?2, ?3)",
            params![network, addr.to_string(), container],
        );
        let outcome = match inserted {
            Ok(_) => Reserve::Reserved,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT container_id FROM network_addresses
                         WHERE network = ?1 AND address = ?2",
                        params![network, addr.to_string()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(query(&what))
                    .map_err(boxed)?;
                if holder.as_deref() == Some(container) {
                    Reserve::Reserved
                } else {
                    Reserve::Taken
                }
            }
            Err(source) => return Err(boxed(StoreError::Query { what, source })),
        };
        tx.commit().map_err(query(&what)).map_err(boxed)?;
        Ok(outcome)
    }

    fn release(
        &mut self,
        network: &str,
        container: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let what = format!("releasing the addresses of {container} in network {network}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(query(&what))
            .map_err(boxed)?;
        let addrs: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT address FROM network_addresses WHERE network = ?1 AND container_id = ?2",
                )
                .map_err(query(&what))
                .map_err(boxed)?;
            let rows = stmt
                .query_map(params![network, container], |row| row.get(0))
                .map_err(query(&what))
                .map_err(boxed)?;
            rows.collect::<Result<_, _>>().map_err(query(&what)).map_err(boxed)?
        };
        tx.execute(
            "DELETE FROM network_addresses WHERE network = ?1 AND container_id = ?2",
            params![network, container],
        )
        .map_err(query(&what))
        .map_err(boxed)?;
        tx.commit().map_err(query(&what)).map_err(boxed)?;
        Ok(addrs.iter().filter_map(|a| a.parse().ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ipam::check_store_conformance;

    #[test]
    fn the_sqlite_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = NetworkDb::open_root(dir.path()).unwrap();
        check_store_conformance(&mut db);
        // A second connection sees the first one's rows.
        let other = NetworkDb::open_root(dir.path()).unwrap();
        assert_eq!(other.allocated("n").unwrap().len(), 1);
    }

    #[test]
    fn networks_are_recorded_found_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = NetworkDb::open_root(dir.path()).unwrap();
        let opts = |name: &str, subnet: &str| CreateOptions {
            name: name.into(),
            subnets: vec![subnet.parse().unwrap()],
            ..Default::default()
        };
        let a = db.create_network(&opts("a", "10.250.40.0/24"), &[]).unwrap();
        let err = db.create_network(&opts("b", "10.250.40.128/25"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.250.40.128/25 overlaps the subnet 10.250.40.0/24 of network a"
        );
        let err = db.create_network(&opts("a", "10.250.41.0/24"), &[]).unwrap_err();
        assert_eq!(err.to_string(), "network a already exists");
        assert_eq!(db.networks().unwrap().len(), 1, "nothing was recorded by the failures");

        assert_eq!(db.find("a").unwrap(), a);
        assert_eq!(db.find(&a.network.id[..12]).unwrap(), a);
        assert_eq!(db.find("zz").unwrap_err().to_string(), "network zz not found");

        db.reserve("a", "10.250.40.2".parse().unwrap(), "c1").unwrap();
        assert_eq!(db.users("a").unwrap(), ["c1"]);
        db.put_attachment("c2", r#"{"networks":[{"name":"a"}]}"#).unwrap();
        assert_eq!(db.users("a").unwrap(), ["c1", "c2"]);
        db.remove_attachment("c2").unwrap();
        db.remove_attachment("c2").unwrap();

        db.remove_network("a").unwrap();
        assert!(db.networks().unwrap().is_empty());
        assert!(db.allocated("a").unwrap().is_empty(), "the addresses went with the network");
        assert_eq!(db.remove_network("a").unwrap_err().to_string(), "network a not found");
    }
}
