//! Column lists and row decoding shared by the read and write sides.

use std::str::FromStr;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::ids::{ConnectorId, DeviceId, ServiceTokenId, SessionId, UnixTime, UserId};
use crate::types::{
    AuditEvent, Connector, Device, Policy, Posture, ServiceToken, Session, SigningKey,
    StoredDecision, User,
};
use crate::StoreError;
use identity_claims::DecisionRecord;

pub(crate) const USER_COLUMNS: &str =
    "id, idp, subject, email, display_name, disabled, created_at, updated_at";
pub(crate) const DEVICE_COLUMNS: &str =
    "id, user_id, public_key, os, os_version, hostname, client_version, created_at, last_seen, revoked_at";
pub(crate) const SESSION_COLUMNS: &str =
    "id, user_id, device_id, idp, login_method, auth_time, expires_at, revoked_at";
pub(crate) const SERVICE_TOKEN_COLUMNS: &str =
    "id, name, kind, secret_hash, created_at, expires_at, revoked_at";
pub(crate) const CONNECTOR_COLUMNS: &str =
    "id, name, credential, created_at, updated_at, revoked_at";
pub(crate) const POLICY_COLUMNS: &str = "version, format, source, sha256, applied_at, applied_by";
pub(crate) const AUDIT_COLUMNS: &str = "id, at, actor, action, target, outcome, detail";
pub(crate) const SIGNING_KEY_COLUMNS: &str = "kid, private_seed, created_at, retired_at";
pub(crate) const DECISION_COLUMNS: &str =
    "id, received_at_ms, token_id, at_ms, edge, reference, decision, kind, source_ip, device_id, \
     user_id, email, destination, application, policy, reason";

pub(crate) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId::new(row.get::<_, String>(0)?),
        idp: row.get(1)?,
        subject: row.get(2)?,
        email: row.get(3)?,
        display_name: row.get(4)?,
        disabled: row.get::<_, i64>(5)? != 0,
        created_at: UnixTime(row.get(6)?),
        updated_at: UnixTime(row.get(7)?),
    })
}

/// A device row without its addresses (they live in `device_addresses`).
pub(crate) fn device(row: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: DeviceId::new(row.get::<_, String>(0)?),
        user_id: UserId::new(row.get::<_, String>(1)?),
        public_key: row.get(2)?,
        addresses: Vec::new(),
        posture: Posture {
            os: row.get(3)?,
            os_version: row.get(4)?,
            hostname: row.get(5)?,
            client_version: row.get(6)?,
        },
        created_at: UnixTime(row.get(7)?),
        last_seen: row.get::<_, Option<i64>>(8)?.map(UnixTime),
        revoked_at: row.get::<_, Option<i64>>(9)?.map(UnixTime),
    })
}

pub(crate) fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: SessionId::new(row.get::<_, String>(0)?),
        user_id: UserId::new(row.get::<_, String>(1)?),
        device_id: row.get::<_, Option<String>>(2)?.map(DeviceId::new),
        idp: row.get(3)?,
        login_method: row.get(4)?,
        auth_time: UnixTime(row.get(5)?),
        expires_at: UnixTime(row.get(6)?),
        revoked_at: row.get::<_, Option<i64>>(7)?.map(UnixTime),
    })
}

pub(crate) fn service_token(row: &Row<'_>) -> rusqlite::Result<ServiceToken> {
    Ok(ServiceToken {
        id: ServiceTokenId::new(row.get::<_, String>(0)?),
        name: row.get(1)?,
        kind: parsed(row, 2)?,
        secret_hash: hex_bytes(row, 3)?,
        created_at: UnixTime(row.get(4)?),
        expires_at: row.get::<_, Option<i64>>(5)?.map(UnixTime),
        revoked_at: row.get::<_, Option<i64>>(6)?.map(UnixTime),
    })
}

/// A connector row without its routes (they live in `connector_routes`).
pub(crate) fn connector(row: &Row<'_>) -> rusqlite::Result<Connector> {
    Ok(Connector {
        id: ConnectorId::new(row.get::<_, String>(0)?),
        name: row.get(1)?,
        routes: Vec::new(),
        credential: ServiceTokenId::new(row.get::<_, String>(2)?),
        created_at: UnixTime(row.get(3)?),
        updated_at: UnixTime(row.get(4)?),
        revoked_at: row.get::<_, Option<i64>>(5)?.map(UnixTime),
    })
}

pub(crate) fn policy(row: &Row<'_>) -> rusqlite::Result<Policy> {
    Ok(Policy {
        version: unsigned(row, 0)?,
        format: parsed(row, 1)?,
        source: row.get(2)?,
        sha256: row.get(3)?,
        applied_at: UnixTime(row.get(4)?),
        applied_by: row.get(5)?,
    })
}

pub(crate) fn audit_event(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let detail: String = row.get(6)?;
    Ok(AuditEvent {
        id: unsigned(row, 0)?,
        at: UnixTime(row.get(1)?),
        actor: row.get(2)?,
        action: parsed(row, 3)?,
        target: row.get(4)?,
        outcome: parsed(row, 5)?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, Type::Text, Box::new(e)))?,
    })
}

pub(crate) fn decision(row: &Row<'_>) -> rusqlite::Result<StoredDecision> {
    Ok(StoredDecision {
        id: unsigned(row, 0)?,
        received_at_ms: unsigned(row, 1)?,
        token_id: ServiceTokenId::new(row.get::<_, String>(2)?),
        record: DecisionRecord {
            at_ms: unsigned(row, 3)?,
            edge: row.get(4)?,
            reference: row.get(5)?,
            decision: parsed(row, 6)?,
            kind: parsed(row, 7)?,
            source_ip: row.get(8)?,
            device_id: row.get(9)?,
            user_id: row.get(10)?,
            email: row.get(11)?,
            destination: row.get(12)?,
            application: row.get(13)?,
            policy: row.get(14)?,
            reason: row.get(15)?,
        },
    })
}

pub(crate) fn signing_key(row: &Row<'_>) -> rusqlite::Result<SigningKey> {
    Ok(SigningKey {
        kid: row.get(0)?,
        private_seed: hex_bytes(row, 1)?.into(),
        created_at: UnixTime(row.get(2)?),
        retired_at: row.get::<_, Option<i64>>(3)?.map(UnixTime),
    })
}

/// Reads at most one row.
pub(crate) fn optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    Ok(conn.query_row(sql, params, map).optional()?)
}

/// Reads every row.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, map)?;
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

/// Whether `error` is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Maps a uniqueness violation to `Conflict { what }`, anything else to `Database`.
pub(crate) fn conflict_as(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| {
        if is_unique_violation(&error) {
            StoreError::Conflict { what }
        } else {
            StoreError::from(error)
        }
    }
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn parsed<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn hex_bytes(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<u8>> {
    let text: String = row.get(idx)?;
    hex::decode(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}
