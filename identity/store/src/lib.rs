//! `identity-store`: the persistent state of `gatehouse-identity`.
//!
//! Users, groups, devices, sessions, service tokens, connectors, policies, audit events, access
//! decisions edges report, signing keys and the **revision log** live in one embedded SQLite file (`rusqlite` with SQLite compiled
//! in). It is a driver crate: it does file IO, but it reads no clock and draws no randomness.
//! Every time is a [`UnixTime`] argument and every id is created by the caller (usually
//! `XxxId::from_random` with bytes from the caller's RNG). It is not the feed: the feed code turns
//! [`RevisionEntry`]s into deltas by reading the entities' current rows, and builds snapshots with
//! [`ReadTx::snapshot`].
//!
//! # Using it
//! [`Store::open`] a file (or [`Store::open_in_memory`] in tests), then either call a method on
//! [`Store`] (one transaction each), or group several calls in one transaction with
//! [`Store::read`] / [`Store::write`]: a write closure that returns `Err` rolls everything back.
//! Methods block; async callers run them on a blocking thread.
//!
//! # The revision log
//! Every mutation an edge must learn about appends, in the same transaction, a row
//! `(revision, at, entity_kind, entity_id)` with consecutive revisions: device upsert and revoke,
//! a user change that alters devices (disable, email, groups: one `device` entry per unrevoked
//! device of the user), a session's device binding and revocation, service token revocation,
//! connector create, route change and revoke, policy apply, signing key add, retire and delete.
//! Mutations that change nothing (revoking twice) append nothing. [`ReadTx::changes_since`] reads
//! the log; [`WriteTx::compact_before`] drops old entries and [`ReadTx::compacted_before`] tells a
//! feed whether it can still serve deltas from a revision or must send a snapshot.
//!
//! # SQLite here, PostgreSQL later
//! Callers see only typed Rust: newtype ids, row structs and [`StoreError`], never SQL, rusqlite
//! types or rowids, so a PostgreSQL implementation of the same API can replace this one without
//! changing callers. The schema (`migrations/*.sql`) is written in SQL both engines accept:
//! `BIGINT`/`INTEGER`/`TEXT` only, booleans as 0/1, bytes as hex text, JSON as text, and
//! generated numbers (revisions, audit ids) taken from a `counters` row with
//! `UPDATE … RETURNING`, which on PostgreSQL also serializes writers in revision order.
//!
//! # Storage settings
//! WAL journal (readers do not block the writer), `foreign_keys = ON`, `synchronous = NORMAL`
//! (durable across process crashes; the last transactions may be lost on power loss, which is
//! the usual WAL trade-off) and a 5 s busy timeout. Migrations are forward-only and run at
//! [`Store::open`], tracked in SQLite's `user_version` by `rusqlite_migration`.
//!
//! Secrets: service token secrets never reach the store (callers pass a hash); signing key
//! seeds are [`secrecy::SecretSlice`] and upstream refresh tokens [`secrecy::SecretString`],
//! both redacted in `Debug`.

mod ids;
mod read;
mod rows;
mod types;
mod write;

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

pub use ids::{ConnectorId, DeviceId, Revision, ServiceTokenId, SessionId, UnixTime, UserId};
pub use read::ReadTx;
pub use types::{
    AuditAction, AuditEvent, AuditOutcome, AuditQuery, Connector, DecisionCursor, DecisionQuery,
    Device, DeviceRecord, EntityKind, Group, NewAuditEvent, NewConnector, NewDevice, NewPolicy,
    NewServiceToken, NewSession, NewUser, Policy, PolicyFormat, Posture, RevisionEntry,
    ServiceToken, ServiceTokenKind, Session, SigningKey, Snapshot, StoredDecision, UnknownVariant,
    UpstreamGrant, User, MAX_DECISION_PAGE,
};
pub use write::WriteTx;

/// How long a writer waits for another connection's lock before failing with `Database`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema migrations, oldest first. Never edit a released one: append a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_decisions.sql"),
    include_str!("../migrations/0003_upstream_refresh.sql"),
];

/// Errors of every store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A uniqueness rule would be broken, e.g. `what = "device public key"`.
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// The database failed; the message of the source is the detail.
    #[error("database operation failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Database(Box::new(error))
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(error: rusqlite_migration::Error) -> Self {
        Self::Database(Box::new(error))
    }
}

/// The identity store: one SQLite connection behind a mutex, so every call is serialized and a
/// [`Store::read`] closure sees one consistent state.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if missing) the database file at `path` and migrates it to the newest
    /// schema.
    ///
    /// # Errors
    /// `Database` when the file cannot be opened, is not a database, or a migration fails.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::setup(Connection::open(path)?)
    }

    /// A private in-memory database (for tests); it disappears with the `Store`.
    ///
    /// # Errors
    /// `Database` when SQLite cannot allocate it.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    /// Runs `f` inside one read transaction: everything it reads is from the same state.
    ///
    /// # Errors
    /// What `f` returns, or `Database` when the transaction cannot start.
    pub fn read<T, E>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&ReadTx::new(&tx))?;
        tx.finish().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` inside one write transaction, committed when `f` returns `Ok` and rolled back
    /// (revision log entries included) when it returns `Err`.
    ///
    /// # Errors
    /// What `f` returns, or `Database` when the transaction cannot start or commit.
    pub fn write<T, E>(&self, f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&WriteTx::new(&tx))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// The schema version the file is at (the number of migrations applied).
    ///
    /// # Errors
    /// `Database` when the pragma cannot be read.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.lock();
        Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// The SQLite journal mode in effect (`wal` for files, `memory` in memory).
    ///
    /// # Errors
    /// `Database` when the pragma cannot be read.
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        let conn = self.lock();
        Ok(conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // `journal_mode` answers with the mode in effect; an in-memory database stays `memory`.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations().to_latest(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic inside a closure drops its transaction, which rolls back, so the connection
        // behind a poisoned mutex is still consistent.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// One-transaction shortcuts for every [`ReadTx`] method.
macro_rules! read_shortcuts {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                #[doc = concat!("[`ReadTx::", stringify!($name), "`] in its own transaction.")]
                ///
                /// # Errors
                /// As the `ReadTx` method.
                pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    self.read(|r| r.$name($($arg),*))
                }
            )*
        }
    };
}

/// One-transaction shortcuts for every [`WriteTx`] method.
macro_rules! write_shortcuts {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                #[doc = concat!("[`WriteTx::", stringify!($name), "`] in its own transaction.")]
                ///
                /// # Errors
                /// As the `WriteTx` method; nothing is written on error.
                pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    self.write(|w| w.$name($($arg),*))
                }
            )*
        }
    };
}

read_shortcuts! {
    fn user(&self, id: &UserId) -> Option<User>;
    fn user_by_subject(&self, idp: &str, subject: &str) -> Option<User>;
    fn users_by_email(&self, email: &str) -> Vec<User>;
    fn users(&self) -> Vec<User>;
    fn groups(&self) -> Vec<Group>;
    fn groups_of(&self, user: &UserId) -> Vec<String>;
    fn group_members(&self, group: &str) -> Vec<UserId>;
    fn device(&self, id: &DeviceId) -> Option<Device>;
    fn device_by_public_key(&self, public_key: &str) -> Option<Device>;
    fn devices(&self) -> Vec<Device>;
    fn devices_of_user(&self, user: &UserId) -> Vec<Device>;
    fn device_record(&self, id: &DeviceId) -> Option<DeviceRecord>;
    fn addresses_in_use(&self) -> std::collections::BTreeSet<std::net::IpAddr>;
    fn session(&self, id: &SessionId) -> Option<Session>;
    fn sessions_of_user(&self, user: &UserId) -> Vec<Session>;
    fn service_token(&self, id: &ServiceTokenId) -> Option<ServiceToken>;
    fn service_tokens(&self) -> Vec<ServiceToken>;
    fn connector(&self, id: &ConnectorId) -> Option<Connector>;
    fn connector_by_name(&self, name: &str) -> Option<Connector>;
    fn connector_by_credential(&self, credential: &ServiceTokenId) -> Option<Connector>;
    fn connectors(&self) -> Vec<Connector>;
    fn active_policy(&self) -> Option<Policy>;
    fn policy(&self, version: u64) -> Option<Policy>;
    fn policies(&self) -> Vec<Policy>;
    fn audit_events(&self, query: &AuditQuery) -> Vec<AuditEvent>;
    fn decisions(&self, query: &DecisionQuery) -> Vec<StoredDecision>;
    fn signing_key(&self, kid: &str) -> Option<SigningKey>;
    fn signing_keys(&self) -> Vec<SigningKey>;
    fn current_revision(&self) -> Revision;
    fn compacted_before(&self) -> Revision;
    fn changes_since(&self, since: Revision, limit: u32) -> Vec<RevisionEntry>;
    fn snapshot(&self, now: UnixTime) -> Snapshot;
    fn upstream_grant(&self, session: &SessionId) -> Option<UpstreamGrant>;
    fn live_upstream_grants(&self, now: UnixTime) -> Vec<UpstreamGrant>;
    fn session_tree(&self, root: &SessionId) -> Vec<Session>;
}

write_shortcuts! {
    fn upsert_user(&self, user: &NewUser, now: UnixTime) -> User;
    fn set_user_disabled(&self, id: &UserId, disabled: bool, now: UnixTime) -> User;
    fn set_idp_groups(&self, user: &UserId, groups: &[String], now: UnixTime) -> ();
    fn add_group_member(&self, group: &str, user: &UserId, now: UnixTime) -> bool;
    fn remove_group_member(&self, group: &str, user: &UserId, now: UnixTime) -> bool;
    fn upsert_device(&self, device: &NewDevice, now: UnixTime) -> Device;
    fn touch_device(&self, id: &DeviceId, now: UnixTime) -> ();
    fn revoke_device(&self, id: &DeviceId, now: UnixTime) -> Device;
    fn create_session(&self, session: &NewSession, now: UnixTime) -> Session;
    fn set_session_device(&self, id: &SessionId, device: &DeviceId, now: UnixTime) -> Session;
    fn revoke_session(&self, id: &SessionId, now: UnixTime) -> Session;
    fn create_service_token(&self, token: &NewServiceToken, now: UnixTime) -> ServiceToken;
    fn revoke_service_token(&self, id: &ServiceTokenId, now: UnixTime) -> ServiceToken;
    fn create_connector(&self, connector: &NewConnector, credential: &NewServiceToken, now: UnixTime) -> (Connector, ServiceToken);
    fn set_connector_routes(&self, id: &ConnectorId, routes: &[String], now: UnixTime) -> Connector;
    fn revoke_connector(&self, id: &ConnectorId, now: UnixTime) -> Connector;
    fn apply_policy(&self, policy: &NewPolicy, now: UnixTime) -> Policy;
    fn record_audit(&self, event: &NewAuditEvent) -> AuditEvent;
    fn insert_decisions(&self, token: &ServiceTokenId, records: &[identity_claims::DecisionRecord], received_at_ms: u64) -> u64;
    fn prune_decisions(&self, before_ms: u64, max_rows: u32) -> u64;
    fn add_signing_key(&self, kid: &str, private_seed: &[u8], now: UnixTime) -> SigningKey;
    fn retire_signing_key(&self, kid: &str, now: UnixTime) -> SigningKey;
    fn delete_signing_key(&self, kid: &str, now: UnixTime) -> ();
    fn compact_before(&self, revision: Revision) -> u64;
    fn set_session_parent(&self, id: &SessionId, parent: &SessionId) -> ();
    fn put_upstream_grant(&self, session: &SessionId, refresh_token: &secrecy::SecretString, now: UnixTime) -> ();
    fn mark_upstream_synced(&self, session: &SessionId, refresh_token: Option<&secrecy::SecretString>, now: UnixTime) -> ();
    fn delete_upstream_grant(&self, session: &SessionId) -> bool;
}
