//! Everything that writes, inside one transaction.

use std::ops::Deref;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::ids::{ConnectorId, DeviceId, Revision, ServiceTokenId, SessionId, UnixTime, UserId};
use crate::read::ReadTx;
use crate::rows::{conflict_as, to_i64};
use crate::types::{
    AuditEvent, Connector, Device, EntityKind, NewAuditEvent, NewConnector, NewDevice, NewPolicy,
    NewServiceToken, NewSession, NewUser, Policy, ServiceToken, ServiceTokenKind, Session,
    SigningKey, User,
};
use crate::StoreError;
use identity_claims::DecisionRecord;

/// Where a group membership came from: the provider's claim at login, or an admin.
const SOURCE_IDP: &str = "idp";
const SOURCE_ADMIN: &str = "admin";

/// A write transaction; see [`crate::Store::write`]. It reads too (it derefs to [`ReadTx`]) and
/// sees its own writes.
#[derive(Debug)]
pub struct WriteTx<'a> {
    read: ReadTx<'a>,
}

impl<'a> Deref for WriteTx<'a> {
    type Target = ReadTx<'a>;

    fn deref(&self) -> &ReadTx<'a> {
        &self.read
    }
}

impl<'a> WriteTx<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        Self {
            read: ReadTx::new(conn),
        }
    }

    /// Creates the user a login names by `(idp, subject)`, or updates its email and display
    /// name. `user.id` is used only for a new user. An email change appends a `device` revision
    /// per unrevoked device of the user.
    ///
    /// # Errors
    /// `Database` only.
    pub fn upsert_user(&self, user: &NewUser, now: UnixTime) -> Result<User, StoreError> {
        let Some(existing) = self.user_by_subject(&user.idp, &user.subject)? else {
            self.conn().execute(
                "INSERT INTO users (id, idp, subject, email, display_name, disabled, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
                params![
                    user.id.as_str(),
                    user.idp,
                    user.subject,
                    user.email,
                    user.display_name,
                    now.0
                ],
            )
            .map_err(conflict_as("user id"))?;
            return self.must_user(&user.id);
        };
        if existing.email == user.email && existing.display_name == user.display_name {
            return Ok(existing);
        }
        self.conn().execute(
            "UPDATE users SET email = ?2, display_name = ?3, updated_at = ?4 WHERE id = ?1",
            params![existing.id.as_str(), user.email, user.display_name, now.0],
        )?;
        if existing.email != user.email {
            self.touch_user_devices(&existing.id, now)?;
        }
        self.must_user(&existing.id)
    }

    /// Disables or re-enables a user; a change appends a `device` revision per unrevoked device
    /// (the feed removes a disabled user's devices). Disabling also revokes every session of
    /// the user that has not expired (a `session` revision each), so browser sessions at the
    /// edges end too; re-enabling does not bring them back.
    ///
    /// # Errors
    /// `NotFound` when the user does not exist.
    pub fn set_user_disabled(
        &self,
        id: &UserId,
        disabled: bool,
        now: UnixTime,
    ) -> Result<User, StoreError> {
        let user = self.must_user(id)?;
        if user.disabled == disabled {
            return Ok(user);
        }
        self.conn().execute(
            "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.as_str(), i64::from(disabled), now.0],
        )?;
        self.touch_user_devices(id, now)?;
        if disabled {
            for session in self.sessions_of_user(id)? {
                if session.revoked_at.is_none() && session.expires_at > now {
                    self.revoke_session(&session.id, now)?;
                }
            }
        }
        self.must_user(id)
    }

    /// Replaces the groups the provider gave a user (admin-added memberships stay), creating
    /// unknown groups. A change appends a `device` revision per unrevoked device.
    ///
    /// # Errors
    /// `NotFound` when the user does not exist.
    pub fn set_idp_groups(
        &self,
        user: &UserId,
        groups: &[String],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.must_user(user)?;
        let before = self.groups_of(user)?;
        self.conn().execute(
            "DELETE FROM group_members WHERE user_id = ?1 AND source = ?2",
            params![user.as_str(), SOURCE_IDP],
        )?;
        for group in groups {
            self.insert_membership(group, user, SOURCE_IDP, now)?;
        }
        if self.groups_of(user)? != before {
            self.touch_user_devices(user, now)?;
        }
        Ok(())
    }

    /// Adds a user to a group (creating the group); returns whether the user was not in it yet.
    ///
    /// # Errors
    /// `NotFound` when the user does not exist.
    pub fn add_group_member(
        &self,
        group: &str,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.must_user(user)?;
        let before = self.groups_of(user)?;
        self.insert_membership(group, user, SOURCE_ADMIN, now)?;
        let added = !before.iter().any(|g| g == group);
        if added {
            self.touch_user_devices(user, now)?;
        }
        Ok(added)
    }

    /// Removes a user from a group, whatever added them (a provider membership returns at the
    /// user's next login if the provider still sends it); returns whether the user was in it.
    ///
    /// # Errors
    /// `NotFound` when the user or the group does not exist.
    pub fn remove_group_member(
        &self,
        group: &str,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.must_user(user)?;
        self.group_members(group)?;
        let removed = self.conn().execute(
            "DELETE FROM group_members WHERE user_id = ?1 AND group_name = ?2",
            params![user.as_str(), group],
        )? > 0;
        if removed {
            self.touch_user_devices(user, now)?;
        }
        Ok(removed)
    }

    /// Enrolls a device, or re-enrolls the same public key for the same user: then the
    /// existing device keeps its id and addresses, its posture and `last_seen` are updated.
    /// Appends a `device` revision either way.
    ///
    /// # Errors
    /// `Conflict { what: "device public key" }` when the key belongs to another user or to a
    /// revoked device, `Conflict { what: "device address" }` when an address is taken,
    /// `Conflict { what: "device id" }`, `NotFound` when the user does not exist.
    pub fn upsert_device(&self, device: &NewDevice, now: UnixTime) -> Result<Device, StoreError> {
        self.must_user(&device.user_id)?;
        let p = &device.posture;
        if let Some(existing) = self.device_by_public_key(&device.public_key)? {
            if existing.user_id != device.user_id || existing.revoked_at.is_some() {
                return Err(StoreError::Conflict {
                    what: "device public key",
                });
            }
            self.conn().execute(
                "UPDATE devices SET os = ?2, os_version = ?3, hostname = ?4, client_version = ?5, \
                 last_seen = ?6 WHERE id = ?1",
                params![
                    existing.id.as_str(),
                    p.os,
                    p.os_version,
                    p.hostname,
                    p.client_version,
                    now.0
                ],
            )?;
            self.append_revision(EntityKind::Device, existing.id.as_str(), now)?;
            return self.must_device(&existing.id);
        }
        self.conn()
            .execute(
                "INSERT INTO devices (id, user_id, public_key, os, os_version, hostname, \
                 client_version, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    device.id.as_str(),
                    device.user_id.as_str(),
                    device.public_key,
                    p.os,
                    p.os_version,
                    p.hostname,
                    p.client_version,
                    now.0
                ],
            )
            .map_err(conflict_as("device id"))?;
        for (position, address) in device.addresses.iter().enumerate() {
            self.conn()
                .execute(
                    "INSERT INTO device_addresses (address, prefix_len, device_id, position) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        address.addr().to_string(),
                        address.prefix_len(),
                        device.id.as_str(),
                        to_i64(position as u64)
                    ],
                )
                .map_err(conflict_as("device address"))?;
        }
        self.append_revision(EntityKind::Device, device.id.as_str(), now)?;
        self.must_device(&device.id)
    }

    /// Records that a device was seen (its `last_seen`); edges need not learn it, so no revision.
    ///
    /// # Errors
    /// `NotFound` when the device does not exist.
    pub fn touch_device(&self, id: &DeviceId, now: UnixTime) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE devices SET last_seen = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound { what: "device" });
        }
        Ok(())
    }

    /// Revokes a device (appending a `device` revision); revoking it again changes nothing.
    ///
    /// # Errors
    /// `NotFound` when the device does not exist.
    pub fn revoke_device(&self, id: &DeviceId, now: UnixTime) -> Result<Device, StoreError> {
        let device = self.must_device(id)?;
        if device.revoked_at.is_some() {
            return Ok(device);
        }
        self.conn().execute(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        self.append_revision(EntityKind::Device, id.as_str(), now)?;
        self.must_device(id)
    }

    /// Stores a new session. With a device, appends a `device` revision (the device's login
    /// method and auth time come from its latest session).
    ///
    /// # Errors
    /// `Conflict { what: "session id" }`, `NotFound` when the user or device does not exist.
    pub fn create_session(
        &self,
        session: &NewSession,
        now: UnixTime,
    ) -> Result<Session, StoreError> {
        self.must_user(&session.user_id)?;
        if let Some(device) = &session.device_id {
            self.must_device(device)?;
        }
        self.conn()
            .execute(
                "INSERT INTO sessions (id, user_id, device_id, idp, login_method, auth_time, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    session.id.as_str(),
                    session.user_id.as_str(),
                    session.device_id.as_ref().map(DeviceId::as_str),
                    session.idp,
                    session.login_method,
                    session.auth_time.0,
                    session.expires_at.0
                ],
            )
            .map_err(conflict_as("session id"))?;
        if let Some(device) = &session.device_id {
            self.append_revision(EntityKind::Device, device.as_str(), now)?;
        }
        self.must_session(&session.id)
    }

    /// Binds a session to the device enrolled with it; appends a `device` revision.
    ///
    /// # Errors
    /// `NotFound` when the session or device does not exist.
    pub fn set_session_device(
        &self,
        id: &SessionId,
        device: &DeviceId,
        now: UnixTime,
    ) -> Result<Session, StoreError> {
        self.must_session(id)?;
        self.must_device(device)?;
        self.conn().execute(
            "UPDATE sessions SET device_id = ?2 WHERE id = ?1",
            params![id.as_str(), device.as_str()],
        )?;
        self.append_revision(EntityKind::Device, device.as_str(), now)?;
        self.must_session(id)
    }

    /// Revokes a session (appending a `session` revision); revoking it again changes nothing.
    ///
    /// # Errors
    /// `NotFound` when the session does not exist.
    pub fn revoke_session(&self, id: &SessionId, now: UnixTime) -> Result<Session, StoreError> {
        let session = self.must_session(id)?;
        if session.revoked_at.is_some() {
            return Ok(session);
        }
        self.conn().execute(
            "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        self.append_revision(EntityKind::Session, id.as_str(), now)?;
        self.must_session(id)
    }

    /// Records that session `id` was issued from `parent` (see [`ReadTx::session_tree`]);
    /// edges need not learn it, so no revision.
    ///
    /// # Errors
    /// `NotFound` when either session does not exist.
    pub fn set_session_parent(&self, id: &SessionId, parent: &SessionId) -> Result<(), StoreError> {
        self.must_session(parent)?;
        let n = self.conn().execute(
            "UPDATE sessions SET parent_id = ?2 WHERE id = ?1",
            params![id.as_str(), parent.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound { what: "session" });
        }
        Ok(())
    }

    /// Keeps the upstream refresh token of the browser login `session` (replacing one kept
    /// before). No revision: edges never see it.
    ///
    /// # Errors
    /// `NotFound` when the session does not exist.
    pub fn put_upstream_grant(
        &self,
        session: &SessionId,
        refresh_token: &secrecy::SecretString,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        use secrecy::ExposeSecret as _;
        let s = self.must_session(session)?;
        self.conn().execute(
            "INSERT INTO upstream_grants (session_id, user_id, idp, refresh_token, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (session_id) DO UPDATE SET \
             refresh_token = excluded.refresh_token, created_at = excluded.created_at, synced_at = NULL",
            params![
                session.as_str(),
                s.user_id.as_str(),
                s.idp,
                refresh_token.expose_secret(),
                now.0
            ],
        )?;
        Ok(())
    }

    /// A refresh of `session`'s grant succeeded at `now`; a rotated refresh token replaces the
    /// kept one.
    ///
    /// # Errors
    /// `NotFound` when no grant is kept for the session.
    pub fn mark_upstream_synced(
        &self,
        session: &SessionId,
        refresh_token: Option<&secrecy::SecretString>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        use secrecy::ExposeSecret as _;
        let n = match refresh_token {
            Some(token) => self.conn().execute(
                "UPDATE upstream_grants SET synced_at = ?2, refresh_token = ?3 WHERE session_id = ?1",
                params![session.as_str(), now.0, token.expose_secret()],
            )?,
            None => self.conn().execute(
                "UPDATE upstream_grants SET synced_at = ?2 WHERE session_id = ?1",
                params![session.as_str(), now.0],
            )?,
        };
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "upstream grant",
            });
        }
        Ok(())
    }

    /// Forgets `session`'s upstream grant; returns whether one was kept.
    ///
    /// # Errors
    /// `Database` only.
    pub fn delete_upstream_grant(&self, session: &SessionId) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM upstream_grants WHERE session_id = ?1",
            params![session.as_str()],
        )? > 0)
    }

    /// Stores a service token (the caller hashed its secret). A `machine` token appends a
    /// `service_token` revision (edges verify machine tokens themselves, from the feed);
    /// other kinds append none: edges learn only about their revocations.
    ///
    /// # Errors
    /// `Conflict { what: "service token id" }`.
    pub fn create_service_token(
        &self,
        token: &NewServiceToken,
        now: UnixTime,
    ) -> Result<ServiceToken, StoreError> {
        self.conn()
            .execute(
                "INSERT INTO service_tokens (id, name, kind, secret_hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.id.as_str(),
                    token.name,
                    token.kind.as_str(),
                    hex::encode(&token.secret_hash),
                    now.0,
                    token.expires_at.map(|t| t.0)
                ],
            )
            .map_err(conflict_as("service token id"))?;
        if token.kind == ServiceTokenKind::Machine {
            self.append_revision(EntityKind::ServiceToken, token.id.as_str(), now)?;
        }
        self.must_service_token(&token.id)
    }

    /// Revokes a service token (appending a `service_token` revision); revoking it again
    /// changes nothing. A connector's credential is revoked with [`Self::revoke_connector`].
    ///
    /// # Errors
    /// `NotFound` when the token does not exist.
    pub fn revoke_service_token(
        &self,
        id: &ServiceTokenId,
        now: UnixTime,
    ) -> Result<ServiceToken, StoreError> {
        let token = self.must_service_token(id)?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        self.conn().execute(
            "UPDATE service_tokens SET revoked_at = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        self.append_revision(EntityKind::ServiceToken, id.as_str(), now)?;
        self.must_service_token(id)
    }

    /// Creates a connector and its credential (a `connector` service token) together; appends
    /// a `connector` revision. `credential.kind` is forced to `Connector`.
    ///
    /// # Errors
    /// `Conflict { what: "connector name" }`, `Conflict { what: "connector id" }`,
    /// `Conflict { what: "service token id" }`.
    pub fn create_connector(
        &self,
        connector: &NewConnector,
        credential: &NewServiceToken,
        now: UnixTime,
    ) -> Result<(Connector, ServiceToken), StoreError> {
        if self.connector_by_name(&connector.name)?.is_some() {
            return Err(StoreError::Conflict {
                what: "connector name",
            });
        }
        let token = self.create_service_token(
            &NewServiceToken {
                kind: ServiceTokenKind::Connector,
                ..credential.clone()
            },
            now,
        )?;
        self.conn()
            .execute(
                "INSERT INTO connectors (id, name, credential, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![
                    connector.id.as_str(),
                    connector.name,
                    token.id.as_str(),
                    now.0
                ],
            )
            .map_err(conflict_as("connector id"))?;
        self.insert_routes(&connector.id, &connector.routes)?;
        self.append_revision(EntityKind::Connector, connector.id.as_str(), now)?;
        Ok((self.must_connector(&connector.id)?, token))
    }

    /// Replaces a connector's routes; appends a `connector` revision.
    ///
    /// # Errors
    /// `NotFound` when the connector does not exist.
    pub fn set_connector_routes(
        &self,
        id: &ConnectorId,
        routes: &[String],
        now: UnixTime,
    ) -> Result<Connector, StoreError> {
        self.must_connector(id)?;
        self.conn().execute(
            "DELETE FROM connector_routes WHERE connector_id = ?1",
            [id.as_str()],
        )?;
        self.insert_routes(id, routes)?;
        self.conn().execute(
            "UPDATE connectors SET updated_at = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        self.append_revision(EntityKind::Connector, id.as_str(), now)?;
        self.must_connector(id)
    }

    /// Revokes a connector and its credential; appends a `connector` and a `service_token`
    /// revision. Revoking it again changes nothing.
    ///
    /// # Errors
    /// `NotFound` when the connector does not exist.
    pub fn revoke_connector(
        &self,
        id: &ConnectorId,
        now: UnixTime,
    ) -> Result<Connector, StoreError> {
        let connector = self.must_connector(id)?;
        if connector.revoked_at.is_some() {
            return Ok(connector);
        }
        self.conn().execute(
            "UPDATE connectors SET revoked_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![id.as_str(), now.0],
        )?;
        self.append_revision(EntityKind::Connector, id.as_str(), now)?;
        self.revoke_service_token(&connector.credential, now)?;
        self.must_connector(id)
    }

    /// Stores a policy file as the next version, which becomes the active one (the caller has
    /// compiled it and run its tests); appends a `policy` revision.
    ///
    /// # Errors
    /// `Database` only.
    pub fn apply_policy(&self, policy: &NewPolicy, now: UnixTime) -> Result<Policy, StoreError> {
        let version: i64 = self.conn().query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM policies",
            [],
            |row| row.get(0),
        )?;
        let sha256 = hex::encode(Sha256::digest(policy.source.as_bytes()));
        self.conn().execute(
            "INSERT INTO policies (version, format, source, sha256, applied_at, applied_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                version,
                policy.format.as_str(),
                policy.source,
                sha256,
                now.0,
                policy.applied_by
            ],
        )?;
        self.append_revision(EntityKind::Policy, &version.to_string(), now)?;
        let version = u64::try_from(version).unwrap_or(0);
        self.policy(version)?
            .ok_or(StoreError::NotFound { what: "policy" })
    }

    /// Records an audit event; its id is the next in sequence.
    ///
    /// # Errors
    /// `Database` only.
    pub fn record_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let id = self.next_counter("audit_event")?;
        self.conn().execute(
            "INSERT INTO audit_events (id, at, actor, action, target, outcome, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                to_i64(id),
                event.at.0,
                event.actor,
                event.action.as_str(),
                event.target,
                event.outcome.as_str(),
                event.detail.to_string()
            ],
        )?;
        Ok(AuditEvent {
            id,
            at: event.at,
            actor: event.actor.clone(),
            action: event.action,
            target: event.target.clone(),
            outcome: event.outcome,
            detail: event.detail.clone(),
        })
    }

    /// Stores a batch of access decisions `token` (an edge service token) sent; their ids are
    /// the next in sequence, in slice order. Returns how many were stored. The caller validates
    /// the records ([`identity_claims::DecisionBatch::validate`]).
    ///
    /// # Errors
    /// `Database` only.
    pub fn insert_decisions(
        &self,
        token: &ServiceTokenId,
        records: &[DecisionRecord],
        received_at_ms: u64,
    ) -> Result<u64, StoreError> {
        let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
        if count == 0 {
            return Ok(0);
        }
        let last = self.advance_counter("decision", count)?;
        let mut insert = self.conn().prepare_cached(
            "INSERT INTO decisions (id, received_at_ms, token_id, at_ms, edge, reference, decision, \
             kind, source_ip, device_id, user_id, email, destination, application, policy, reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        let first = last.saturating_sub(count) + 1;
        for (id, r) in (first..).zip(records) {
            insert.execute(params![
                to_i64(id),
                to_i64(received_at_ms),
                token.as_str(),
                to_i64(r.at_ms),
                r.edge,
                r.reference,
                r.decision.as_str(),
                r.kind.as_str(),
                r.source_ip,
                r.device_id,
                r.user_id,
                r.email,
                r.destination,
                r.application,
                r.policy,
                r.reason
            ])?;
        }
        Ok(count)
    }

    /// Deletes up to `max_rows` of the oldest decisions made before `before_ms` (retention);
    /// returns how many it deleted. Bounded so one call never holds the write lock for long:
    /// call again while it returns `max_rows`.
    ///
    /// # Errors
    /// `Database` only.
    pub fn prune_decisions(&self, before_ms: u64, max_rows: u32) -> Result<u64, StoreError> {
        let deleted = self.conn().execute(
            "DELETE FROM decisions WHERE id IN \
             (SELECT id FROM decisions WHERE at_ms < ?1 ORDER BY at_ms, id LIMIT ?2)",
            params![to_i64(before_ms), i64::from(max_rows)],
        )?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    /// Stores a new signing key; appends a `signing_key` revision.
    ///
    /// # Errors
    /// `Conflict { what: "signing key id" }`.
    pub fn add_signing_key(
        &self,
        kid: &str,
        private_seed: &[u8],
        now: UnixTime,
    ) -> Result<SigningKey, StoreError> {
        self.conn()
            .execute(
                "INSERT INTO signing_keys (kid, private_seed, created_at) VALUES (?1, ?2, ?3)",
                params![kid, hex::encode(private_seed), now.0],
            )
            .map_err(conflict_as("signing key id"))?;
        self.append_revision(EntityKind::SigningKey, kid, now)?;
        self.must_signing_key(kid)
    }

    /// Stops a key from signing (it still verifies); appends a `signing_key` revision.
    /// Retiring it again changes nothing.
    ///
    /// # Errors
    /// `NotFound` when the key does not exist.
    pub fn retire_signing_key(&self, kid: &str, now: UnixTime) -> Result<SigningKey, StoreError> {
        let key = self.must_signing_key(kid)?;
        if key.retired_at.is_some() {
            return Ok(key);
        }
        self.conn().execute(
            "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1",
            params![kid, now.0],
        )?;
        self.append_revision(EntityKind::SigningKey, kid, now)?;
        self.must_signing_key(kid)
    }

    /// Deletes a key (its tokens no longer verify); appends a `signing_key` revision.
    ///
    /// # Errors
    /// `NotFound` when the key does not exist.
    pub fn delete_signing_key(&self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "signing key",
            });
        }
        self.append_revision(EntityKind::SigningKey, kid, now)?;
        Ok(())
    }

    /// Drops log entries older than `revision` (never past the current revision + 1) and
    /// returns how many went; see [`ReadTx::compacted_before`].
    ///
    /// # Errors
    /// `Database` only.
    pub fn compact_before(&self, revision: Revision) -> Result<u64, StoreError> {
        let limit = revision.0.min(self.current_revision()?.0 + 1);
        if limit <= self.compacted_before()?.0 {
            return Ok(0);
        }
        let n = self
            .conn()
            .execute("DELETE FROM revisions WHERE revision < ?1", [to_i64(limit)])?;
        self.conn().execute(
            "UPDATE counters SET value = ?1 WHERE name = 'compacted_before'",
            [to_i64(limit)],
        )?;
        Ok(n as u64)
    }

    fn conn(&self) -> &'a Connection {
        self.read.conn
    }

    fn next_counter(&self, name: &str) -> Result<u64, StoreError> {
        let value: i64 = self.conn().query_row(
            "UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value",
            [name],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(value).unwrap_or(0))
    }

    /// Adds `n` to a counter and returns its new value (the last of `n` fresh numbers).
    fn advance_counter(&self, name: &str, n: u64) -> Result<u64, StoreError> {
        let value: i64 = self.conn().query_row(
            "UPDATE counters SET value = value + ?2 WHERE name = ?1 RETURNING value",
            params![name, to_i64(n)],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(value).unwrap_or(0))
    }

    fn append_revision(
        &self,
        kind: EntityKind,
        entity_id: &str,
        now: UnixTime,
    ) -> Result<Revision, StoreError> {
        let revision = self.next_counter("revision")?;
        self.conn().execute(
            "INSERT INTO revisions (revision, at, entity_kind, entity_id) VALUES (?1, ?2, ?3, ?4)",
            params![to_i64(revision), now.0, kind.as_str(), entity_id],
        )?;
        Ok(Revision(revision))
    }

    /// A `device` revision for each unrevoked device of the user.
    fn touch_user_devices(&self, user: &UserId, now: UnixTime) -> Result<(), StoreError> {
        for device in self.devices_of_user(user)? {
            if device.revoked_at.is_none() {
                self.append_revision(EntityKind::Device, device.id.as_str(), now)?;
            }
        }
        Ok(())
    }

    fn insert_membership(
        &self,
        group: &str,
        user: &UserId,
        source: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO user_groups (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![group, now.0],
        )?;
        self.conn().execute(
            "INSERT INTO group_members (user_id, group_name, source) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id, group_name, source) DO NOTHING",
            params![user.as_str(), group, source],
        )?;
        Ok(())
    }

    fn insert_routes(&self, id: &ConnectorId, routes: &[String]) -> Result<(), StoreError> {
        for (position, route) in routes.iter().enumerate() {
            self.conn().execute(
                "INSERT INTO connector_routes (connector_id, position, route) VALUES (?1, ?2, ?3)",
                params![id.as_str(), to_i64(position as u64), route],
            )?;
        }
        Ok(())
    }

    fn must_user(&self, id: &UserId) -> Result<User, StoreError> {
        self.user(id)?.ok_or(StoreError::NotFound { what: "user" })
    }

    fn must_device(&self, id: &DeviceId) -> Result<Device, StoreError> {
        self.device(id)?
            .ok_or(StoreError::NotFound { what: "device" })
    }

    fn must_session(&self, id: &SessionId) -> Result<Session, StoreError> {
        self.session(id)?
            .ok_or(StoreError::NotFound { what: "session" })
    }

    fn must_service_token(&self, id: &ServiceTokenId) -> Result<ServiceToken, StoreError> {
        self.service_token(id)?.ok_or(StoreError::NotFound {
            what: "service token",
        })
    }

    fn must_connector(&self, id: &ConnectorId) -> Result<Connector, StoreError> {
        self.connector(id)?
            .ok_or(StoreError::NotFound { what: "connector" })
    }

    fn must_signing_key(&self, kid: &str) -> Result<SigningKey, StoreError> {
        self.signing_key(kid)?.ok_or(StoreError::NotFound {
            what: "signing key",
        })
    }
}
