//! Everything that reads, inside one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::{params, Connection};

use crate::ids::{ConnectorId, DeviceId, Revision, ServiceTokenId, SessionId, UnixTime, UserId};
use crate::rows::{self, all, optional, to_i64};
use crate::types::{
    AuditEvent, AuditQuery, Connector, DecisionQuery, Device, DeviceRecord, Group, Policy,
    RevisionEntry, ServiceToken, Session, SigningKey, Snapshot, StoredDecision, UpstreamGrant,
    User, MAX_DECISION_PAGE,
};
use crate::StoreError;

/// A read transaction; see [`crate::Store::read`]. Lists are ordered (by creation, then id)
/// unless a method says otherwise.
#[derive(Debug)]
pub struct ReadTx<'a> {
    pub(crate) conn: &'a Connection,
}

impl<'a> ReadTx<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    /// The user with this id.
    ///
    /// # Errors
    /// `Database` only.
    pub fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE id = ?1", rows::USER_COLUMNS);
        optional(self.conn, &sql, [id.as_str()], rows::user)
    }

    /// The user a provider knows by `subject`.
    ///
    /// # Errors
    /// `Database` only.
    pub fn user_by_subject(&self, idp: &str, subject: &str) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE idp = ?1 AND subject = ?2",
            rows::USER_COLUMNS
        );
        optional(self.conn, &sql, [idp, subject], rows::user)
    }

    /// Users with this email (one per provider at most, usually one).
    ///
    /// # Errors
    /// `Database` only.
    pub fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE email = ?1 ORDER BY created_at, id",
            rows::USER_COLUMNS
        );
        all(self.conn, &sql, [email], rows::user)
    }

    /// All users.
    ///
    /// # Errors
    /// `Database` only.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "SELECT {} FROM users ORDER BY created_at, id",
            rows::USER_COLUMNS
        );
        all(self.conn, &sql, [], rows::user)
    }

    /// All groups by name, with their member counts.
    ///
    /// # Errors
    /// `Database` only.
    pub fn groups(&self) -> Result<Vec<Group>, StoreError> {
        all(
            self.conn,
            "SELECT g.name, g.created_at, COUNT(DISTINCT m.user_id) FROM user_groups g \
             LEFT JOIN group_members m ON m.group_name = g.name \
             GROUP BY g.name, g.created_at ORDER BY g.name",
            [],
            |row| {
                Ok(Group {
                    name: row.get(0)?,
                    created_at: UnixTime(row.get(1)?),
                    members: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                })
            },
        )
    }

    /// The groups a user is in, from the provider and from admins, sorted, without duplicates.
    ///
    /// # Errors
    /// `Database` only.
    pub fn groups_of(&self, user: &UserId) -> Result<Vec<String>, StoreError> {
        all(
            self.conn,
            "SELECT DISTINCT group_name FROM group_members WHERE user_id = ?1 ORDER BY group_name",
            [user.as_str()],
            |row| row.get(0),
        )
    }

    /// The members of a group, sorted by id.
    ///
    /// # Errors
    /// `NotFound` when the group does not exist.
    pub fn group_members(&self, group: &str) -> Result<Vec<UserId>, StoreError> {
        let exists = optional(
            self.conn,
            "SELECT 1 FROM user_groups WHERE name = ?1",
            [group],
            |row| row.get::<_, i64>(0),
        )?;
        if exists.is_none() {
            return Err(StoreError::NotFound { what: "group" });
        }
        all(
            self.conn,
            "SELECT DISTINCT user_id FROM group_members WHERE group_name = ?1 ORDER BY user_id",
            [group],
            |row| Ok(UserId::new(row.get::<_, String>(0)?)),
        )
    }

    /// The device with this id, revoked or not.
    ///
    /// # Errors
    /// `Database` only.
    pub fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let sql = format!("SELECT {} FROM devices WHERE id = ?1", rows::DEVICE_COLUMNS);
        let device = optional(self.conn, &sql, [id.as_str()], rows::device)?;
        device.map(|d| self.with_addresses(d)).transpose()
    }

    /// The device enrolled with this public key, revoked or not.
    ///
    /// # Errors
    /// `Database` only.
    pub fn device_by_public_key(&self, public_key: &str) -> Result<Option<Device>, StoreError> {
        let sql = format!(
            "SELECT {} FROM devices WHERE public_key = ?1",
            rows::DEVICE_COLUMNS
        );
        let device = optional(self.conn, &sql, [public_key], rows::device)?;
        device.map(|d| self.with_addresses(d)).transpose()
    }

    /// All devices, revoked ones included.
    ///
    /// # Errors
    /// `Database` only.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let sql = format!(
            "SELECT {} FROM devices ORDER BY created_at, id",
            rows::DEVICE_COLUMNS
        );
        let devices = all(self.conn, &sql, [], rows::device)?;
        devices
            .into_iter()
            .map(|d| self.with_addresses(d))
            .collect()
    }

    /// A user's devices, revoked ones included.
    ///
    /// # Errors
    /// `Database` only.
    pub fn devices_of_user(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let sql = format!(
            "SELECT {} FROM devices WHERE user_id = ?1 ORDER BY created_at, id",
            rows::DEVICE_COLUMNS
        );
        let devices = all(self.conn, &sql, [user.as_str()], rows::device)?;
        devices
            .into_iter()
            .map(|d| self.with_addresses(d))
            .collect()
    }

    /// A device with its user, the user's groups and its latest unrevoked session: what a feed
    /// `device_upserted` carries. The caller decides what a revoked device or a disabled user
    /// means (the feed sends `device_removed`).
    ///
    /// # Errors
    /// `Database` only.
    pub fn device_record(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let Some(device) = self.device(id)? else {
            return Ok(None);
        };
        self.record_of(device).map(Some)
    }

    /// Every tunnel address assigned to any device (revoked devices keep theirs, so an address
    /// is never handed out twice).
    ///
    /// # Errors
    /// `Database` only.
    pub fn addresses_in_use(&self) -> Result<BTreeSet<IpAddr>, StoreError> {
        let texts = all(
            self.conn,
            "SELECT address FROM device_addresses",
            [],
            |row| row.get::<_, String>(0),
        )?;
        Ok(texts.iter().filter_map(|t| t.parse().ok()).collect())
    }

    /// The session with this id.
    ///
    /// # Errors
    /// `Database` only.
    pub fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE id = ?1",
            rows::SESSION_COLUMNS
        );
        optional(self.conn, &sql, [id.as_str()], rows::session)
    }

    /// A user's sessions, newest `auth_time` first.
    ///
    /// # Errors
    /// `Database` only.
    pub fn sessions_of_user(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE user_id = ?1 ORDER BY auth_time DESC, id",
            rows::SESSION_COLUMNS
        );
        all(self.conn, &sql, [user.as_str()], rows::session)
    }

    /// The service token with this id (with its secret hash, for verification).
    ///
    /// # Errors
    /// `Database` only.
    pub fn service_token(&self, id: &ServiceTokenId) -> Result<Option<ServiceToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM service_tokens WHERE id = ?1",
            rows::SERVICE_TOKEN_COLUMNS
        );
        optional(self.conn, &sql, [id.as_str()], rows::service_token)
    }

    /// All service tokens, revoked ones included.
    ///
    /// # Errors
    /// `Database` only.
    pub fn service_tokens(&self) -> Result<Vec<ServiceToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM service_tokens ORDER BY created_at, id",
            rows::SERVICE_TOKEN_COLUMNS
        );
        all(self.conn, &sql, [], rows::service_token)
    }

    /// The connector with this id.
    ///
    /// # Errors
    /// `Database` only.
    pub fn connector(&self, id: &ConnectorId) -> Result<Option<Connector>, StoreError> {
        self.connector_where("id", id.as_str())
    }

    /// The connector with this name.
    ///
    /// # Errors
    /// `Database` only.
    pub fn connector_by_name(&self, name: &str) -> Result<Option<Connector>, StoreError> {
        self.connector_where("name", name)
    }

    /// The connector that authenticates with this service token.
    ///
    /// # Errors
    /// `Database` only.
    pub fn connector_by_credential(
        &self,
        credential: &ServiceTokenId,
    ) -> Result<Option<Connector>, StoreError> {
        self.connector_where("credential", credential.as_str())
    }

    /// All connectors, revoked ones included.
    ///
    /// # Errors
    /// `Database` only.
    pub fn connectors(&self) -> Result<Vec<Connector>, StoreError> {
        let sql = format!(
            "SELECT {} FROM connectors ORDER BY created_at, id",
            rows::CONNECTOR_COLUMNS
        );
        let connectors = all(self.conn, &sql, [], rows::connector)?;
        connectors
            .into_iter()
            .map(|c| self.with_routes(c))
            .collect()
    }

    /// The policy in force: the one with the highest version.
    ///
    /// # Errors
    /// `Database` only.
    pub fn active_policy(&self) -> Result<Option<Policy>, StoreError> {
        let sql = format!(
            "SELECT {} FROM policies ORDER BY version DESC LIMIT 1",
            rows::POLICY_COLUMNS
        );
        optional(self.conn, &sql, [], rows::policy)
    }

    /// One applied policy version.
    ///
    /// # Errors
    /// `Database` only.
    pub fn policy(&self, version: u64) -> Result<Option<Policy>, StoreError> {
        let sql = format!(
            "SELECT {} FROM policies WHERE version = ?1",
            rows::POLICY_COLUMNS
        );
        optional(self.conn, &sql, [to_i64(version)], rows::policy)
    }

    /// Every applied policy version, newest first.
    ///
    /// # Errors
    /// `Database` only.
    pub fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        let sql = format!(
            "SELECT {} FROM policies ORDER BY version DESC",
            rows::POLICY_COLUMNS
        );
        all(self.conn, &sql, [], rows::policy)
    }

    /// Audit events matching `query`, newest first.
    ///
    /// # Errors
    /// `Database` only.
    pub fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM audit_events \
             WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR at >= ?2) \
             ORDER BY id DESC LIMIT ?3",
            rows::AUDIT_COLUMNS
        );
        all(
            self.conn,
            &sql,
            params![
                query.action.map(|a| a.as_str()),
                query.since.map(|t| t.0),
                i64::from(query.limit)
            ],
            rows::audit_event,
        )
    }

    /// Access decisions matching `query`, newest first (by `at_ms`, then id), at most
    /// `query.limit` (capped at [`MAX_DECISION_PAGE`]).
    ///
    /// # Errors
    /// `Database` only.
    pub fn decisions(&self, query: &DecisionQuery) -> Result<Vec<StoredDecision>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions \
             WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR email = ?2) \
             AND (?3 IS NULL OR device_id = ?3) AND (?4 IS NULL OR decision = ?4) \
             AND (?5 IS NULL OR application = ?5) AND (?6 IS NULL OR reference = ?6) \
             AND (?7 IS NULL OR at_ms >= ?7) AND (?8 IS NULL OR at_ms < ?8) \
             AND (?9 IS NULL OR at_ms < ?9 OR (at_ms = ?9 AND id < ?10)) \
             ORDER BY at_ms DESC, id DESC LIMIT ?11",
            rows::DECISION_COLUMNS
        );
        all(
            self.conn,
            &sql,
            params![
                query.user_id.as_ref().map(UserId::as_str),
                query.email,
                query.device_id.as_ref().map(DeviceId::as_str),
                query.decision.map(|d| d.as_str()),
                query.application,
                query.reference,
                query.since_ms.map(to_i64),
                query.until_ms.map(to_i64),
                query.before.map(|c| to_i64(c.at_ms)),
                query.before.map(|c| to_i64(c.id)),
                i64::from(query.limit.min(MAX_DECISION_PAGE)),
            ],
            rows::decision,
        )
    }

    /// One signing key.
    ///
    /// # Errors
    /// `Database` only.
    pub fn signing_key(&self, kid: &str) -> Result<Option<SigningKey>, StoreError> {
        let sql = format!(
            "SELECT {} FROM signing_keys WHERE kid = ?1",
            rows::SIGNING_KEY_COLUMNS
        );
        optional(self.conn, &sql, [kid], rows::signing_key)
    }

    /// All signing keys, oldest first, retired ones included.
    ///
    /// # Errors
    /// `Database` only.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let sql = format!(
            "SELECT {} FROM signing_keys ORDER BY created_at, kid",
            rows::SIGNING_KEY_COLUMNS
        );
        all(self.conn, &sql, [], rows::signing_key)
    }

    /// The newest revision (`Revision(0)` before the first change).
    ///
    /// # Errors
    /// `Database` only.
    pub fn current_revision(&self) -> Result<Revision, StoreError> {
        self.counter("revision").map(Revision)
    }

    /// The oldest revision still in the log after compaction: a feed can send deltas to a
    /// receiver at revision `r` exactly when `r + 1 >= compacted_before()`, else it sends a
    /// snapshot. `Revision(1)` until the first compaction.
    ///
    /// # Errors
    /// `Database` only.
    pub fn compacted_before(&self) -> Result<Revision, StoreError> {
        self.counter("compacted_before").map(Revision)
    }

    /// Log entries after `since`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// `Database` only.
    pub fn changes_since(
        &self,
        since: Revision,
        limit: u32,
    ) -> Result<Vec<RevisionEntry>, StoreError> {
        let entries = all(
            self.conn,
            "SELECT revision, at, entity_kind, entity_id FROM revisions \
             WHERE revision > ?1 ORDER BY revision LIMIT ?2",
            params![to_i64(since.0), i64::from(limit)],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            },
        )?;
        entries
            .into_iter()
            .map(|(revision, at, kind, entity_id)| {
                Ok(RevisionEntry {
                    revision: Revision(
                        u64::try_from(revision)
                            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, revision))?,
                    ),
                    at: UnixTime(at),
                    entity_kind: kind.parse().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                    entity_id,
                })
            })
            .collect()
    }

    /// Everything an edge needs, valid at the returned revision (call it inside one
    /// [`crate::Store::read`], as the shortcut does, for that guarantee). `now` decides which
    /// revoked sessions and tokens are still worth listing.
    ///
    /// # Errors
    /// `Database` only.
    pub fn snapshot(&self, now: UnixTime) -> Result<Snapshot, StoreError> {
        let revision = self.current_revision()?;
        let sql = format!(
            "SELECT {} FROM devices d WHERE d.revoked_at IS NULL AND EXISTS \
             (SELECT 1 FROM users u WHERE u.id = d.user_id AND u.disabled = 0) ORDER BY d.id",
            prefixed(rows::DEVICE_COLUMNS, "d.")
        );
        let devices = all(self.conn, &sql, [], rows::device)?
            .into_iter()
            .map(|d| self.with_addresses(d).and_then(|d| self.record_of(d)))
            .collect::<Result<Vec<_>, _>>()?;
        let sql = format!(
            "SELECT {} FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > ?1 ORDER BY id",
            rows::SESSION_COLUMNS
        );
        let revoked_sessions = all(self.conn, &sql, [now.0], rows::session)?;
        let revoked_service_tokens = all(
            self.conn,
            "SELECT id FROM service_tokens WHERE revoked_at IS NOT NULL \
             AND (expires_at IS NULL OR expires_at > ?1) ORDER BY id",
            [now.0],
            |row| Ok(ServiceTokenId::new(row.get::<_, String>(0)?)),
        )?;
        let mut groups: BTreeMap<UserId, Vec<String>> = BTreeMap::new();
        let pairs = all(
            self.conn,
            "SELECT DISTINCT user_id, group_name FROM group_members ORDER BY user_id, group_name",
            [],
            |row| {
                Ok((
                    UserId::new(row.get::<_, String>(0)?),
                    row.get::<_, String>(1)?,
                ))
            },
        )?;
        for (user, group) in pairs {
            groups.entry(user).or_default().push(group);
        }
        Ok(Snapshot {
            revision,
            devices,
            policy: self.active_policy()?,
            revoked_sessions,
            revoked_service_tokens,
            connectors: self.connectors()?,
            signing_keys: self.signing_keys()?,
            groups,
        })
    }

    pub(crate) fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let value: i64 = self.conn.query_row(
            "SELECT value FROM counters WHERE name = ?1",
            [name],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(value).unwrap_or(0))
    }

    fn record_of(&self, device: Device) -> Result<DeviceRecord, StoreError> {
        let user = self
            .user(&device.user_id)?
            .ok_or(StoreError::NotFound { what: "user" })?;
        let groups = self.groups_of(&user.id)?;
        let sql = format!(
            "SELECT {} FROM sessions WHERE device_id = ?1 AND revoked_at IS NULL \
             ORDER BY auth_time DESC, id LIMIT 1",
            rows::SESSION_COLUMNS
        );
        let session = optional(self.conn, &sql, [device.id.as_str()], rows::session)?;
        Ok(DeviceRecord {
            device,
            user,
            groups,
            session,
        })
    }

    /// The upstream refresh token kept for the browser login `session`.
    ///
    /// # Errors
    /// `Database` only.
    pub fn upstream_grant(&self, session: &SessionId) -> Result<Option<UpstreamGrant>, StoreError> {
        let sql =
            format!("SELECT {UPSTREAM_GRANT_COLUMNS} FROM upstream_grants WHERE session_id = ?1");
        optional(self.conn, &sql, [session.as_str()], upstream_grant_row)
    }

    /// The upstream grants something still rests on: the login session or a session issued
    /// from it (the CLI's, a device's) is unrevoked and unexpired at `now`. Ordered by session id.
    ///
    /// # Errors
    /// `Database` only.
    pub fn live_upstream_grants(&self, now: UnixTime) -> Result<Vec<UpstreamGrant>, StoreError> {
        let sql = format!(
            "WITH RECURSIVE tree (root, id) AS ( \
               SELECT session_id, session_id FROM upstream_grants \
               UNION ALL \
               SELECT tree.root, s.id FROM sessions s JOIN tree ON s.parent_id = tree.id) \
             SELECT {UPSTREAM_GRANT_COLUMNS} FROM upstream_grants WHERE EXISTS ( \
               SELECT 1 FROM tree JOIN sessions s ON s.id = tree.id \
               WHERE tree.root = upstream_grants.session_id AND s.revoked_at IS NULL \
               AND s.expires_at > ?1) \
             ORDER BY session_id"
        );
        all(self.conn, &sql, [now.0], upstream_grant_row)
    }

    /// `root` and every session issued from it, directly or not (root first, then by id).
    ///
    /// # Errors
    /// `Database` only.
    pub fn session_tree(&self, root: &SessionId) -> Result<Vec<Session>, StoreError> {
        let columns = prefixed(rows::SESSION_COLUMNS, "s.");
        let sql = format!(
            "WITH RECURSIVE tree (id, depth) AS ( \
               SELECT ?1, 0 \
               UNION ALL \
               SELECT s.id, tree.depth + 1 FROM sessions s JOIN tree ON s.parent_id = tree.id \
               WHERE tree.depth < 16) \
             SELECT {columns} FROM sessions s JOIN tree ON s.id = tree.id \
             ORDER BY tree.depth, s.id"
        );
        all(self.conn, &sql, [root.as_str()], rows::session)
    }

    fn with_addresses(&self, mut device: Device) -> Result<Device, StoreError> {
        let pairs = all(
            self.conn,
            "SELECT address, prefix_len FROM device_addresses WHERE device_id = ?1 ORDER BY position",
            [device.id.as_str()],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, u8>(1)?)),
        )?;
        device.addresses = pairs
            .iter()
            .filter_map(|(addr, len)| IpNet::new(addr.parse().ok()?, *len).ok())
            .collect();
        Ok(device)
    }

    fn connector_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<Connector>, StoreError> {
        let sql = format!(
            "SELECT {} FROM connectors WHERE {column} = ?1",
            rows::CONNECTOR_COLUMNS
        );
        let connector = optional(self.conn, &sql, [value], rows::connector)?;
        connector.map(|c| self.with_routes(c)).transpose()
    }

    fn with_routes(&self, mut connector: Connector) -> Result<Connector, StoreError> {
        connector.routes = all(
            self.conn,
            "SELECT route FROM connector_routes WHERE connector_id = ?1 ORDER BY position",
            [connector.id.as_str()],
            |row| row.get(0),
        )?;
        Ok(connector)
    }
}

const UPSTREAM_GRANT_COLUMNS: &str =
    "session_id, user_id, idp, refresh_token, created_at, synced_at";

fn upstream_grant_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UpstreamGrant> {
    Ok(UpstreamGrant {
        session_id: SessionId::new(row.get::<_, String>(0)?),
        user_id: UserId::new(row.get::<_, String>(1)?),
        idp: row.get(2)?,
        refresh_token: secrecy::SecretString::from(row.get::<_, String>(3)?),
        created_at: UnixTime(row.get(4)?),
        synced_at: row.get::<_, Option<i64>>(5)?.map(UnixTime),
    })
}

fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
