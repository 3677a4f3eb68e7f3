//! The config feed identity streams to edges: NDJSON, one [`FeedMessage`] per line.
//!
//! ```text
//! {"type":"snapshot","revision":42,"state":{"devices":[…],"policy":{…}|null,…}}
//! {"type":"delta","revision":43,"change":{"kind":"device_upserted","device":{…}}}
//! {"type":"heartbeat","revision":43}
//! ```
//!
//! Receivers are lenient: unknown fields are ignored and unknown change kinds parse as
//! [`Change::Unknown`], which [`FeedReplica`] skips while still advancing its revision. Deltas
//! carry consecutive revisions; on a [`FeedError::Gap`] the receiver resubscribes from
//! [`FeedReplica::revision`] and the server answers with a snapshot if it cannot fill the gap.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Jwks, Posture, UnixTime};

/// A feed revision. Revision 0 is the empty state before anything happened.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One line of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedMessage {
    /// The whole state at `revision`; replaces what the receiver had.
    Snapshot {
        /// The state's revision.
        revision: Revision,
        /// The state.
        state: FeedState,
    },
    /// One change; `revision` is the previous revision plus one.
    Delta {
        /// The revision this change produces.
        revision: Revision,
        /// The change.
        change: Change,
    },
    /// Keep-alive carrying the server's latest revision.
    Heartbeat {
        /// The server's latest revision.
        revision: Revision,
    },
}

impl FeedMessage {
    /// Parses one NDJSON line (a trailing `\n` or `\r\n` is allowed).
    ///
    /// # Errors
    /// [`FeedError::Parse`] when the line is not a feed message.
    pub fn from_json_line(line: &[u8]) -> Result<Self, FeedError> {
        serde_json::from_slice(line).map_err(|e| FeedError::Parse(e.to_string()))
    }

    /// The message as one NDJSON line, ending in `\n`.
    pub fn to_json_line(&self) -> String {
        // Feed types hold only strings, integers, bools, addresses and vectors, whose
        // serialization cannot fail; the fallback is never taken.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// The message's revision.
    pub fn revision(&self) -> Revision {
        match self {
            Self::Snapshot { revision, .. }
            | Self::Delta { revision, .. }
            | Self::Heartbeat { revision } => *revision,
        }
    }
}

/// Everything an edge needs, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    /// Enrolled, unrevoked devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// The active policy, if one was ever applied.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// Revoked sessions that have not expired yet.
    #[serde(default)]
    pub revoked_sessions: Vec<RevokedSession>,
    /// Revoked service tokens.
    #[serde(default)]
    pub revoked_service_tokens: Vec<RevokedServiceToken>,
    /// Live (unrevoked, unexpired) machine service tokens, which edges verify themselves for
    /// `service_auth` policies.
    #[serde(default)]
    pub service_tokens: Vec<ServiceToken>,
    /// Connectors and their routes.
    #[serde(default)]
    pub connectors: Vec<Connector>,
    /// Identity's published signing keys.
    #[serde(default)]
    pub signing_keys: Jwks,
}

/// An enrolled device, as edges see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Device id.
    pub device_id: String,
    /// WireGuard public key, standard base64 (as `wg` prints it).
    pub public_key: String,
    /// Tunnel addresses (`100.64.0.2/32`, `fd…/128`).
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// The user the device is enrolled for.
    pub user: DeviceUser,
    /// Posture at enrollment.
    #[serde(default)]
    pub posture: Posture,
    /// When the device enrolled.
    pub enrolled_at: UnixTime,
    /// How the user authenticated for the enrollment.
    #[serde(default)]
    pub login_method: String,
    /// When the user authenticated.
    pub auth_time: UnixTime,
}

/// The user behind a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceUser {
    /// User id.
    pub user_id: String,
    /// E-mail.
    pub email: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Identity provider id.
    pub idp: String,
}

/// Format of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

/// An applied policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Monotonic policy version.
    pub version: u64,
    /// File format.
    pub format: PolicyFormat,
    /// The file text.
    pub source: String,
    /// SHA-256 of `source`, lowercase hex.
    pub sha256: String,
}

/// A revoked session (user or device session id, the tokens' `sid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession {
    /// The session id.
    pub session_id: String,
    /// When the session's last token expires; the entry can be dropped after this.
    pub expires_at: UnixTime,
}

/// A revoked service token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedServiceToken {
    /// The token id.
    pub token_id: String,
}

/// A machine service token an edge accepts (`Authorization: Bearer ghst_…`). The edge parses
/// the presented token with `identity_core::service_token::ServiceTokenSecret::parse`, looks
/// up its id here and compares its hash with `secret_sha256` in constant time
/// (`ServiceTokenSecret::verify_hex`). Only the hash travels: it does not reveal the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceToken {
    /// The token id (the `<id>` of `ghst_<id>_<secret>`).
    pub token_id: String,
    /// Display name, e.g. for decision records.
    #[serde(default)]
    pub name: String,
    /// Lowercase hex SHA-256 of the token id, a 0 byte and the secret, as identity stores it.
    pub secret_sha256: String,
    /// When the token stops being valid; `None`: never.
    #[serde(default)]
    pub expires_at: Option<UnixTime>,
}

/// A connector and the routes it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// Connector id.
    pub connector_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// CIDRs and hostnames (`10.1.0.0/16`, `app.example.com`).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Whether its credential is revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// One change in a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// One value per feed message, not per packet: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// A device enrolled or changed.
    DeviceUpserted {
        /// The device.
        device: Device,
    },
    /// A device was revoked or deleted.
    DeviceRemoved {
        /// The device id.
        device_id: String,
        /// Why (e.g. `revoked`, `user_removed`).
        #[serde(default)]
        reason: String,
    },
    /// A policy was applied.
    PolicyApplied {
        /// The policy.
        policy: Policy,
    },
    /// A session was revoked.
    SessionRevoked {
        /// The session.
        session: RevokedSession,
    },
    /// A machine service token was created (or changed).
    ServiceTokenUpserted {
        /// The token.
        token: ServiceToken,
    },
    /// A service token was revoked.
    ServiceTokenRevoked {
        /// The token id.
        token_id: String,
    },
    /// A connector was created or changed.
    ConnectorUpserted {
        /// The connector.
        connector: Connector,
    },
    /// A connector was deleted.
    ConnectorRemoved {
        /// The connector id.
        connector_id: String,
    },
    /// The published signing keys changed.
    SigningKeys {
        /// The new key set.
        jwks: Jwks,
    },
    /// A change kind this receiver does not know; skipped.
    #[serde(other)]
    Unknown,
}

/// Why a feed message could not be parsed or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The line is not a feed message.
    #[error("bad feed message: {0}")]
    Parse(String),
    /// A delta's revision is not the replica's plus one: resubscribe from the replica's revision.
    #[error("feed gap: expected revision {expected}, got {got}")]
    Gap {
        /// The replica's revision plus one.
        expected: Revision,
        /// The delta's revision.
        got: Revision,
    },
}

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
// One value per feed message, not per packet: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Applied {
    /// A snapshot replaced the state.
    Replaced,
    /// A delta changed the state; the change is handed back so the caller can react (end flows
    /// of a removed device, recompile a policy, …).
    Changed(Change),
    /// A delta of an unknown kind: the revision advanced, the state did not change.
    Skipped,
    /// A heartbeat at the replica's revision (or older).
    InSync,
    /// A heartbeat announced a later revision than the replica's: deltas were lost, resubscribe.
    Behind {
        /// The replica's revision.
        local: Revision,
        /// The server's.
        remote: Revision,
    },
}

/// An edge's copy of the feed state. Pure: fed parsed messages, queried by the edge.
///
/// Starts empty at revision 0 (or from a cached snapshot with [`FeedReplica::from_snapshot`]).
/// Lookups are by id; iteration is in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedReplica {
    revision: Revision,
    devices: BTreeMap<String, Device>,
    /// WireGuard public key → device id.
    by_public_key: BTreeMap<String, String>,
    policy: Option<Policy>,
    revoked_sessions: BTreeMap<String, UnixTime>,
    revoked_service_tokens: BTreeSet<String>,
    service_tokens: BTreeMap<String, ServiceToken>,
    connectors: BTreeMap<String, Connector>,
    signing_keys: Jwks,
}

impl FeedReplica {
    /// An empty replica at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A replica holding `state` at `revision` (e.g. the edge's on-disk cache).
    pub fn from_snapshot(revision: Revision, state: FeedState) -> Self {
        let mut r = Self::new();
        r.replace(revision, state);
        r
    }

    /// Applies one message.
    ///
    /// # Errors
    /// [`FeedError::Gap`] when a delta's revision is not the replica's plus one; the replica is
    /// unchanged.
    pub fn apply(&mut self, msg: FeedMessage) -> Result<Applied, FeedError> {
        match msg {
            FeedMessage::Snapshot { revision, state } => {
                self.replace(revision, state);
                Ok(Applied::Replaced)
            }
            FeedMessage::Delta { revision, change } => {
                let expected = self.revision.next();
                if revision != expected {
                    return Err(FeedError::Gap {
                        expected,
                        got: revision,
                    });
                }
                self.revision = revision;
                Ok(self.apply_change(change))
            }
            FeedMessage::Heartbeat { revision } if revision > self.revision => {
                Ok(Applied::Behind {
                    local: self.revision,
                    remote: revision,
                })
            }
            FeedMessage::Heartbeat { .. } => Ok(Applied::InSync),
        }
    }

    /// The revision of the state held.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// A device by id.
    pub fn device(&self, device_id: &str) -> Option<&Device> {
        self.devices.get(device_id)
    }

    /// A device by its WireGuard public key (standard base64).
    pub fn device_by_public_key(&self, public_key: &str) -> Option<&Device> {
        self.by_public_key
            .get(public_key)
            .and_then(|id| self.devices.get(id))
    }

    /// All devices, in id order.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The active policy.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// Whether a session id is revoked (regardless of its expiry: an expired session's tokens
    /// are rejected by their `exp` anyway).
    pub fn is_session_revoked(&self, session_id: &str) -> bool {
        self.revoked_sessions.contains_key(session_id)
    }

    /// The ids of the revoked sessions not yet expired.
    pub fn revoked_session_ids(&self) -> impl Iterator<Item = &str> {
        self.revoked_sessions.keys().map(String::as_str)
    }

    /// Whether a service token id is revoked.
    pub fn is_service_token_revoked(&self, token_id: &str) -> bool {
        self.revoked_service_tokens.contains(token_id)
    }

    /// A live machine service token by id (`None` once revoked). Its `expires_at` is the
    /// caller's to check.
    pub fn service_token(&self, token_id: &str) -> Option<&ServiceToken> {
        self.service_tokens.get(token_id)
    }

    /// The live machine service tokens.
    pub fn service_tokens(&self) -> impl Iterator<Item = &ServiceToken> {
        self.service_tokens.values()
    }

    /// A connector by id.
    pub fn connector(&self, connector_id: &str) -> Option<&Connector> {
        self.connectors.get(connector_id)
    }

    /// All connectors, in id order.
    pub fn connectors(&self) -> impl Iterator<Item = &Connector> {
        self.connectors.values()
    }

    /// Identity's published signing keys.
    pub fn signing_keys(&self) -> &Jwks {
        &self.signing_keys
    }

    /// Drops revoked-session entries whose sessions expired before `now`.
    pub fn purge_expired(&mut self, now: UnixTime) {
        self.revoked_sessions.retain(|_, expires| *expires > now);
    }

    /// The held state as a snapshot message (for the edge's on-disk cache).
    pub fn to_snapshot(&self) -> FeedMessage {
        FeedMessage::Snapshot {
            revision: self.revision,
            state: FeedState {
                devices: self.devices.values().cloned().collect(),
                policy: self.policy.clone(),
                revoked_sessions: self
                    .revoked_sessions
                    .iter()
                    .map(|(id, expires_at)| RevokedSession {
                        session_id: id.clone(),
                        expires_at: *expires_at,
                    })
                    .collect(),
                revoked_service_tokens: self
                    .revoked_service_tokens
                    .iter()
                    .map(|id| RevokedServiceToken {
                        token_id: id.clone(),
                    })
                    .collect(),
                service_tokens: self.service_tokens.values().cloned().collect(),
                connectors: self.connectors.values().cloned().collect(),
                signing_keys: self.signing_keys.clone(),
            },
        }
    }

    fn replace(&mut self, revision: Revision, state: FeedState) {
        *self = Self {
            revision,
            policy: state.policy,
            signing_keys: state.signing_keys,
            ..Self::default()
        };
        for device in state.devices {
            self.upsert_device(device);
        }
        for s in state.revoked_sessions {
            self.revoked_sessions.insert(s.session_id, s.expires_at);
        }
        for t in state.revoked_service_tokens {
            self.revoked_service_tokens.insert(t.token_id);
        }
        for t in state.service_tokens {
            if !self.revoked_service_tokens.contains(&t.token_id) {
                self.service_tokens.insert(t.token_id.clone(), t);
            }
        }
        for c in state.connectors {
            self.connectors.insert(c.connector_id.clone(), c);
        }
    }

    fn apply_change(&mut self, change: Change) -> Applied {
        match &change {
            Change::DeviceUpserted { device } => self.upsert_device(device.clone()),
            Change::DeviceRemoved { device_id, .. } => self.remove_device(device_id),
            Change::PolicyApplied { policy } => self.policy = Some(policy.clone()),
            Change::SessionRevoked { session } => {
                self.revoked_sessions
                    .insert(session.session_id.clone(), session.expires_at);
            }
            Change::ServiceTokenUpserted { token } => {
                if !self.revoked_service_tokens.contains(&token.token_id) {
                    self.service_tokens
                        .insert(token.token_id.clone(), token.clone());
                }
            }
            Change::ServiceTokenRevoked { token_id } => {
                self.service_tokens.remove(token_id);
                self.revoked_service_tokens.insert(token_id.clone());
            }
            Change::ConnectorUpserted { connector } => {
                self.connectors
                    .insert(connector.connector_id.clone(), connector.clone());
            }
            Change::ConnectorRemoved { connector_id } => {
                self.connectors.remove(connector_id);
            }
            Change::SigningKeys { jwks } => self.signing_keys = jwks.clone(),
            Change::Unknown => return Applied::Skipped,
        }
        Applied::Changed(change)
    }

    fn upsert_device(&mut self, device: Device) {
        self.remove_device(&device.device_id);
        // A key belongs to one device: a re-enrolment under a new id takes the key over.
        if let Some(old) = self.by_public_key.get(&device.public_key).cloned() {
            self.remove_device(&old);
        }
        self.by_public_key
            .insert(device.public_key.clone(), device.device_id.clone());
        self.devices.insert(device.device_id.clone(), device);
    }

    fn remove_device(&mut self, device_id: &str) {
        if let Some(old) = self.devices.remove(device_id) {
            self.by_public_key.remove(&old.public_key);
        }
    }
}
