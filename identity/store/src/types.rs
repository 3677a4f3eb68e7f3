//! Typed rows and the inputs that create them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use identity_claims::decisions::{DecisionOutcome, DecisionRecord};
use ipnet::IpNet;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, DeviceId, Revision, ServiceTokenId, SessionId, UnixTime, UserId};

/// A person as their identity provider knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    /// The provider id from identity's configuration.
    pub idp: String,
    /// The provider's `sub` claim.
    pub subject: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// What a login learned about a user; see [`crate::WriteTx::upsert_user`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// Used only when no user with this `(idp, subject)` exists yet.
    pub id: UserId,
    pub idp: String,
    pub subject: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// A group and how many users are in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    pub members: u64,
    pub created_at: UnixTime,
}

/// Facts a device reports about itself at enrollment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posture {
    pub os: String,
    pub os_version: String,
    pub hostname: String,
    pub client_version: String,
}

/// An enrolled device: one WireGuard public key of one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub user_id: UserId,
    /// The WireGuard public key, base64 as the client sent it.
    pub public_key: String,
    /// Tunnel addresses in the order they were assigned.
    pub addresses: Vec<IpNet>,
    pub posture: Posture,
    pub created_at: UnixTime,
    pub last_seen: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// An enrollment request; see [`crate::WriteTx::upsert_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDevice {
    /// Used only when the public key is not enrolled yet.
    pub id: DeviceId,
    pub user_id: UserId,
    pub public_key: String,
    /// Used only when the public key is not enrolled yet.
    pub addresses: Vec<IpNet>,
    pub posture: Posture,
}

/// A device with everything the feed says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    pub device: Device,
    pub user: User,
    /// The user's groups, sorted.
    pub groups: Vec<String>,
    /// The device's most recent unrevoked session (by `auth_time`), if any.
    pub session: Option<Session>,
}

/// A login session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub idp: String,
    /// How the user logged in, e.g. `oidc`, `device_code`, `local`.
    pub login_method: String,
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

/// An upstream provider's refresh token for the browser login `session_id` (group re-sync).
/// Not `Serialize`: the token is a secret and never leaves identity.
#[derive(Clone, Debug)]
pub struct UpstreamGrant {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub idp: String,
    pub refresh_token: secrecy::SecretString,
    pub created_at: UnixTime,
    /// When a refresh last succeeded.
    pub synced_at: Option<UnixTime>,
}

/// A new session; see [`crate::WriteTx::create_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub idp: String,
    pub login_method: String,
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
}

/// What a service token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTokenKind {
    /// A machine calling applications through an edge (`service_auth` policies).
    Machine,
    /// A connector's tunnel credential.
    Connector,
    /// An edge subscribing to the config feed.
    Edge,
}

/// A service token. The store keeps only the hash of its secret.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ServiceToken {
    pub id: ServiceTokenId,
    pub name: String,
    pub kind: ServiceTokenKind,
    /// The caller's hash of the secret (the store never sees the secret).
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// A new service token; see [`crate::WriteTx::create_service_token`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewServiceToken {
    pub id: ServiceTokenId,
    pub name: String,
    pub kind: ServiceTokenKind,
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<UnixTime>,
}

/// A connector: an outbound-only tunnel to origins behind its routes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connector {
    pub id: ConnectorId,
    pub name: String,
    /// CIDRs and hostnames, in the order given.
    pub routes: Vec<String>,
    /// The service token the connector authenticates with.
    pub credential: ServiceTokenId,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

impl Connector {
    /// Whether the connector was revoked.
    pub fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A new connector; see [`crate::WriteTx::create_connector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConnector {
    pub id: ConnectorId,
    pub name: String,
    pub routes: Vec<String>,
}

/// The language a policy file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    Toml,
    Yaml,
}

/// One applied policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// 1 for the first file applied, then consecutive.
    pub version: u64,
    pub format: PolicyFormat,
    pub source: String,
    /// Lowercase hex SHA-256 of `source`.
    pub sha256: String,
    pub applied_at: UnixTime,
    pub applied_by: String,
}

/// A policy file to apply; see [`crate::WriteTx::apply_policy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPolicy {
    pub format: PolicyFormat,
    pub source: String,
    pub applied_by: String,
}

/// What an audit event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Login,
    Logout,
    Enroll,
    DeviceRevoke,
    SessionRevoke,
    /// A browser was given a clientless access session for an application host.
    AccessGrant,
    UserDisable,
    UserEnable,
    GroupMemberAdd,
    GroupMemberRemove,
    ServiceTokenCreate,
    ServiceTokenRevoke,
    ConnectorCreate,
    ConnectorUpdate,
    ConnectorRevoke,
    PolicyApply,
    PolicyReject,
    SigningKeyRotate,
    AdminAuth,
    /// Groups re-read from the upstream provider with a refresh token (or the grant ended).
    GroupSync,
}

/// Whether the audited action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Failure,
}

/// A recorded audit event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Consecutive from 1.
    pub id: u64,
    pub at: UnixTime,
    /// Who did it: `admin`, a user id, a service token id, `system`.
    pub actor: String,
    pub action: AuditAction,
    /// What it was done to, e.g. a device id.
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    /// Free-form JSON; never secrets.
    pub detail: serde_json::Value,
}

/// An audit event to record; see [`crate::WriteTx::record_audit`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewAuditEvent {
    pub at: UnixTime,
    pub actor: String,
    pub action: AuditAction,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: serde_json::Value,
}

/// Filters for [`crate::ReadTx::audit_events`]; results are newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    /// Only events at or after this time.
    pub since: Option<UnixTime>,
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            action: None,
            since: None,
            limit: 100,
        }
    }
}

/// One of identity's token signing keys.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// The private key seed (e.g. 32 bytes of Ed25519); redacted in `Debug`.
    pub private_seed: SecretSlice<u8>,
    pub created_at: UnixTime,
    /// Set when the key stops signing; it still verifies until it is deleted.
    pub retired_at: Option<UnixTime>,
}

/// What a revision log entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Device,
    Session,
    ServiceToken,
    Connector,
    Policy,
    SigningKey,
}

/// One entry of the revision log: "this entity changed at this revision".
///
/// The entity's current row (or its absence) tells what changed. `entity_id` is the entity's id
/// as text; for a policy it is the version, for a signing key the `kid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevisionEntry {
    pub revision: Revision,
    pub at: UnixTime,
    pub entity_kind: EntityKind,
    pub entity_id: String,
}

/// Everything an edge needs, read in one transaction, valid at `revision`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub revision: Revision,
    /// Unrevoked devices of enabled users, by device id.
    pub devices: Vec<DeviceRecord>,
    pub policy: Option<Policy>,
    /// Revoked sessions that have not expired yet.
    pub revoked_sessions: Vec<Session>,
    /// Revoked service tokens that have not expired yet.
    pub revoked_service_tokens: Vec<ServiceTokenId>,
    /// All connectors, revoked ones included.
    pub connectors: Vec<Connector>,
    /// All signing keys, retired ones included.
    pub signing_keys: Vec<SigningKey>,
    /// Every user's groups, by user id.
    pub groups: BTreeMap<UserId, Vec<String>>,
}

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret_hash", &"[REDACTED]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

impl fmt::Debug for NewServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewServiceToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret_hash", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_seed", &self.private_seed)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// Text forms of the enums, as stored and as used in JSON.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $name {
            /// The stored and JSON form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(UnknownVariant {
                        what: stringify!($name),
                        value: s.to_owned(),
                    }),
                }
            }
        }
    };
}

/// A text that names no variant of an enum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
}

text_enum!(ServiceTokenKind {
    Machine => "machine",
    Connector => "connector",
    Edge => "edge",
});
text_enum!(PolicyFormat {
    Toml => "toml",
    Yaml => "yaml",
});
text_enum!(AuditOutcome {
    Success => "success",
    Failure => "failure",
});
text_enum!(EntityKind {
    Device => "device",
    Session => "session",
    ServiceToken => "service_token",
    Connector => "connector",
    Policy => "policy",
    SigningKey => "signing_key",
});
text_enum!(AuditAction {
    Login => "login",
    Logout => "logout",
    Enroll => "enroll",
    DeviceRevoke => "device_revoke",
    SessionRevoke => "session_revoke",
    AccessGrant => "access_grant",
    UserDisable => "user_disable",
    UserEnable => "user_enable",
    GroupMemberAdd => "group_member_add",
    GroupMemberRemove => "group_member_remove",
    ServiceTokenCreate => "service_token_create",
    ServiceTokenRevoke => "service_token_revoke",
    ConnectorCreate => "connector_create",
    ConnectorUpdate => "connector_update",
    ConnectorRevoke => "connector_revoke",
    PolicyApply => "policy_apply",
    PolicyReject => "policy_reject",
    SigningKeyRotate => "signing_key_rotate",
    AdminAuth => "admin_auth",
    GroupSync => "group_sync",
});

/// Most decisions one [`crate::ReadTx::decisions`] call returns.
pub const MAX_DECISION_PAGE: u32 = 1000;

/// An access decision an edge reported, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredDecision {
    /// Consecutive from 1, in arrival order (not in `at_ms` order: edges report late).
    pub id: u64,
    /// When identity stored it (Unix milliseconds).
    pub received_at_ms: u64,
    /// The edge service token that sent it.
    pub token_id: ServiceTokenId,
    #[serde(flatten)]
    pub record: DecisionRecord,
}

impl StoredDecision {
    /// Where the page after this decision starts.
    pub fn cursor(&self) -> DecisionCursor {
        DecisionCursor {
            at_ms: self.record.at_ms,
            id: self.id,
        }
    }
}

/// A position in the newest-first order of decisions: `(at_ms, id)` of the last one seen.
/// Its text form is `<at_ms>-<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecisionCursor {
    pub at_ms: u64,
    pub id: u64,
}

impl fmt::Display for DecisionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.at_ms, self.id)
    }
}

impl FromStr for DecisionCursor {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownVariant {
            what: "DecisionCursor",
            value: s.to_owned(),
        };
        let (at_ms, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            at_ms: at_ms.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Filters for [`crate::ReadTx::decisions`]; every given filter must match. Results are newest
/// first by `at_ms`, then by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionQuery {
    pub user_id: Option<UserId>,
    pub email: Option<String>,
    pub device_id: Option<DeviceId>,
    pub decision: Option<DecisionOutcome>,
    pub application: Option<String>,
    pub reference: Option<String>,
    /// Only decisions at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only decisions before this time (Unix ms, exclusive).
    pub until_ms: Option<u64>,
    /// Only decisions after this position in the order (the previous page's last cursor).
    pub before: Option<DecisionCursor>,
    /// At most this many; capped at [`MAX_DECISION_PAGE`].
    pub limit: u32,
}

impl Default for DecisionQuery {
    fn default() -> Self {
        Self {
            user_id: None,
            email: None,
            device_id: None,
            decision: None,
            application: None,
            reference: None,
            since_ms: None,
            until_ms: None,
            before: None,
            limit: 100,
        }
    }
}
