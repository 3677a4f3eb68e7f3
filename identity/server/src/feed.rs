//! `GET /v1/feed?since=<revision>`: the config feed to edges, NDJSON (one
//! `identity_claims::feed::FeedMessage` per line).
//!
//! A subscriber gets a snapshot when it gives no revision (or 0), one the revision log no longer
//! covers, or one from the future; otherwise the deltas after its revision. Then every new
//! revision as a delta as soon as it commits ([`AppState::notify`]), and a heartbeat every
//! [`HEARTBEAT`] so both ends notice a dead connection. Each revision log entry names an
//! entity; the delta carries that entity's current row.

use crate::auth::EdgeAuth;
use crate::error::ApiError;
use crate::keys::{stored_jwks, to_claims_time};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use identity_claims::feed::{self, Change, FeedMessage, FeedState};
use identity_store::{
    ConnectorId, DeviceId, DeviceRecord, EntityKind, ReadTx, Revision, RevisionEntry,
    ServiceTokenId, ServiceTokenKind, SessionId, Store, StoreError,
};
use serde::Deserialize;
use std::time::Duration;

/// How often an idle feed sends a heartbeat.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// Revision log entries read per store call.
const BATCH: u32 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/feed", get(subscribe))
}

#[derive(Deserialize)]
struct FeedQuery {
    since: Option<u64>,
}

async fn subscribe(
    State(state): State<AppState>,
    EdgeAuth(token): EdgeAuth,
    Query(q): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    tracing::info!(token = %token.id, since = ?q.since, "edge subscribed to the feed");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(stream(state, q.since, tx));
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// An mpsc receiver as a `Stream`, without another dependency.
fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// Writes the feed into `tx` until the subscriber goes away.
async fn stream(
    state: AppState,
    since: Option<u64>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut changes = state.subscribe();
    let now = crate::flows::unix_now();
    let first = state.db(move |store| Ok(start(store, since, now)?)).await;
    let (mut at, messages) = match first {
        Ok(start) => start,
        Err(e) => {
            tracing::error!("feed: {e}");
            return;
        }
    };
    // A subscriber already in sync learns so at once.
    let messages = if messages.is_empty() {
        vec![FeedMessage::Heartbeat { revision: at }]
    } else {
        messages
    };
    if !send(&tx, &messages).await {
        return;
    }
    loop {
        // A heartbeat tick also looks for revisions committed without a notification (another
        // process writing the same database).
        let woke = tokio::time::timeout(HEARTBEAT, changes.changed()).await;
        if let Ok(Err(_)) = woke {
            return; // the server is shutting down
        }
        let from = at;
        let next = state
            .db(move |store| Ok(catch_up(store, from, crate::flows::unix_now())?))
            .await;
        let messages = match next {
            Ok((revision, messages)) => {
                at = revision;
                messages
            }
            Err(e) => {
                tracing::error!("feed: {e}");
                return;
            }
        };
        let messages = if messages.is_empty() && woke.is_err() {
            vec![FeedMessage::Heartbeat { revision: at }]
        } else {
            messages
        };
        if !send(&tx, &messages).await {
            return;
        }
    }
}

async fn send(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    messages: &[FeedMessage],
) -> bool {
    for m in messages {
        if tx.send(Ok(Bytes::from(m.to_json_line()))).await.is_err() {
            return false;
        }
    }
    true
}

/// The first messages for a subscriber at `since`.
fn start(
    store: &Store,
    since: Option<u64>,
    now: u64,
) -> Result<(feed::Revision, Vec<FeedMessage>), StoreError> {
    let covered = store.read(|r| {
        let current = r.current_revision()?;
        let compacted = r.compacted_before()?;
        // Revision 0 is a subscriber that holds nothing yet: it gets a snapshot.
        Ok::<_, StoreError>(since.filter(|s| *s > 0 && *s <= current.0 && *s + 1 >= compacted.0))
    })?;
    match covered {
        Some(since) => catch_up(store, feed::Revision(since), now),
        None => snapshot(store, now),
    }
}

/// A snapshot of everything, as one message.
fn snapshot(store: &Store, now: u64) -> Result<(feed::Revision, Vec<FeedMessage>), StoreError> {
    let at = crate::keys::to_store_time(now);
    let (s, tokens) =
        store.read(|r| Ok::<_, StoreError>((r.snapshot(at)?, r.service_tokens()?)))?;
    let revision = feed::Revision(s.revision.0);
    let state = FeedState {
        devices: s.devices.iter().map(device).collect(),
        policy: s.policy.as_ref().map(policy),
        revoked_sessions: s.revoked_sessions.iter().map(revoked_session).collect(),
        revoked_service_tokens: s
            .revoked_service_tokens
            .iter()
            .map(|id| feed::RevokedServiceToken {
                token_id: id.as_str().to_owned(),
            })
            .collect(),
        service_tokens: tokens
            .iter()
            .filter(|t| {
                t.kind == ServiceTokenKind::Machine
                    && t.revoked_at.is_none()
                    && t.expires_at.is_none_or(|e| e.0 > at.0)
            })
            .map(service_token)
            .collect(),
        connectors: s.connectors.iter().map(connector).collect(),
        signing_keys: stored_jwks(&s.signing_keys),
    };
    Ok((revision, vec![FeedMessage::Snapshot { revision, state }]))
}

/// Deltas after `from`, read in one transaction per batch. When an entry cannot be expressed
/// as a delta, or the log was compacted past `from`, a snapshot replaces them.
fn catch_up(
    store: &Store,
    from: feed::Revision,
    now: u64,
) -> Result<(feed::Revision, Vec<FeedMessage>), StoreError> {
    let mut at = from;
    let mut messages = Vec::new();
    loop {
        let batch = store.read(|r| {
            if r.compacted_before()?.0 > at.0 + 1 {
                return Ok::<_, StoreError>(None);
            }
            let entries = r.changes_since(Revision(at.0), BATCH)?;
            let mut out = Vec::with_capacity(entries.len());
            for entry in &entries {
                match delta(r, entry)? {
                    Some(change) => out.push(FeedMessage::Delta {
                        revision: feed::Revision(entry.revision.0),
                        change,
                    }),
                    None => return Ok(None),
                }
            }
            Ok(Some(out))
        })?;
        let Some(batch) = batch else {
            return snapshot(store, now);
        };
        let full = batch.len() == BATCH as usize;
        if let Some(last) = batch.last() {
            at = last.revision();
        }
        messages.extend(batch);
        if !full {
            return Ok((at, messages));
        }
    }
}

/// The change an entry stands for, from the entity's current row; `None` when there is no
/// delta for it (the caller sends a snapshot instead).
fn delta(r: &ReadTx<'_>, entry: &RevisionEntry) -> Result<Option<Change>, StoreError> {
    let id = entry.entity_id.as_str();
    Ok(match entry.entity_kind {
        EntityKind::Device => {
            let record = r.device_record(&DeviceId::new(id))?;
            Some(match record {
                Some(rec) if rec.device.revoked_at.is_none() && !rec.user.disabled => {
                    Change::DeviceUpserted {
                        device: device(&rec),
                    }
                }
                Some(rec) => Change::DeviceRemoved {
                    device_id: id.to_owned(),
                    reason: if rec.user.disabled {
                        "user_disabled"
                    } else {
                        "revoked"
                    }
                    .to_owned(),
                },
                None => Change::DeviceRemoved {
                    device_id: id.to_owned(),
                    reason: "deleted".to_owned(),
                },
            })
        }
        EntityKind::Session => r
            .session(&SessionId::new(id))?
            .filter(|s| s.revoked_at.is_some())
            .map(|s| Change::SessionRevoked {
                session: revoked_session(&s),
            }),
        EntityKind::ServiceToken => r.service_token(&ServiceTokenId::new(id))?.map(|t| {
            if t.revoked_at.is_some() {
                Change::ServiceTokenRevoked {
                    token_id: t.id.as_str().to_owned(),
                }
            } else if t.kind == ServiceTokenKind::Machine {
                Change::ServiceTokenUpserted {
                    token: service_token(&t),
                }
            } else {
                // Edges see only machine tokens and revocations. The store writes no revision
                // for other live tokens; should one appear, it is a no-op delta that keeps the
                // revisions consecutive (receivers skip it) rather than a snapshot.
                Change::Unknown
            }
        }),
        EntityKind::Connector => Some(match r.connector(&ConnectorId::new(id))? {
            Some(c) => Change::ConnectorUpserted {
                connector: connector(&c),
            },
            None => Change::ConnectorRemoved {
                connector_id: id.to_owned(),
            },
        }),
        EntityKind::Policy => match id.parse::<u64>() {
            Ok(version) => r
                .policy(version)?
                .map(|p| Change::PolicyApplied { policy: policy(&p) }),
            Err(_) => None,
        },
        EntityKind::SigningKey => Some(Change::SigningKeys {
            jwks: stored_jwks(&r.signing_keys()?),
        }),
    })
}

/// How and when the user behind a device record last authenticated (its newest live session).
pub(crate) fn login_facts(rec: &DeviceRecord) -> (String, identity_claims::UnixTime) {
    rec.session.as_ref().map_or_else(
        || (String::new(), identity_claims::UnixTime(0)),
        |s| (s.login_method.clone(), to_claims_time(s.auth_time)),
    )
}

/// A stored posture as the token and feed types carry it.
pub(crate) fn claims_posture(p: &identity_store::Posture) -> identity_claims::Posture {
    identity_claims::Posture {
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        hostname: p.hostname.clone(),
        client_version: p.client_version.clone(),
    }
}

fn device(rec: &DeviceRecord) -> feed::Device {
    let d = &rec.device;
    let (login_method, auth_time) = login_facts(rec);
    feed::Device {
        device_id: d.id.as_str().to_owned(),
        public_key: d.public_key.clone(),
        addresses: d.addresses.clone(),
        user: feed::DeviceUser {
            user_id: rec.user.id.as_str().to_owned(),
            email: rec.user.email.clone().unwrap_or_default(),
            groups: rec.groups.clone(),
            idp: rec.user.idp.clone(),
        },
        posture: claims_posture(&d.posture),
        enrolled_at: to_claims_time(d.created_at),
        login_method,
        auth_time,
    }
}

fn policy(p: &identity_store::Policy) -> feed::Policy {
    feed::Policy {
        version: p.version,
        format: match p.format {
            identity_store::PolicyFormat::Toml => feed::PolicyFormat::Toml,
            identity_store::PolicyFormat::Yaml => feed::PolicyFormat::Yaml,
        },
        source: p.source.clone(),
        sha256: p.sha256.clone(),
    }
}

fn revoked_session(s: &identity_store::Session) -> feed::RevokedSession {
    feed::RevokedSession {
        session_id: s.id.as_str().to_owned(),
        expires_at: to_claims_time(s.expires_at),
    }
}

fn service_token(t: &identity_store::ServiceToken) -> feed::ServiceToken {
    feed::ServiceToken {
        token_id: t.id.as_str().to_owned(),
        name: t.name.clone(),
        // The store keeps `SecretHash` bytes; their hex is `SecretHash::to_hex`.
        secret_sha256: hex::encode(&t.secret_hash),
        expires_at: t.expires_at.map(to_claims_time),
    }
}

fn connector(c: &identity_store::Connector) -> feed::Connector {
    feed::Connector {
        connector_id: c.id.as_str().to_owned(),
        name: c.name.clone(),
        routes: c.routes.clone(),
        revoked: c.revoked(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_claims::feed::{Applied, FeedReplica};
    use identity_store::{
        NewConnector, NewDevice, NewPolicy, NewServiceToken, NewSession, NewUser, PolicyFormat,
        Posture, UnixTime, UserId,
    };

    const NOW: u64 = 1_700_000_000;
    const AT: UnixTime = UnixTime(1_700_000_000);

    fn user(store: &Store) -> UserId {
        store
            .upsert_user(
                &NewUser {
                    id: UserId::new("usr_1"),
                    idp: "corp".into(),
                    subject: "s1".into(),
                    email: Some("a@example.com".into()),
                    display_name: None,
                },
                AT,
            )
            .unwrap()
            .id
    }

    fn enroll(store: &Store, user: &UserId, id: &str, key: &str, address: &str) -> DeviceId {
        store
            .upsert_device(
                &NewDevice {
                    id: DeviceId::new(id),
                    user_id: user.clone(),
                    public_key: key.into(),
                    addresses: vec![address.parse().unwrap()],
                    posture: Posture {
                        os: "linux".into(),
                        ..Posture::default()
                    },
                },
                AT,
            )
            .unwrap()
            .id
    }

    fn apply_all(replica: &mut FeedReplica, messages: Vec<FeedMessage>) -> Vec<Applied> {
        messages
            .into_iter()
            .map(|m| replica.apply(m).unwrap())
            .collect()
    }

    #[test]
    fn a_replica_fed_deltas_matches_a_fresh_snapshot() {
        let store = Store::open_in_memory().unwrap();
        let (_, first) = start(&store, None, NOW).unwrap();
        let mut replica = FeedReplica::new();
        apply_all(&mut replica, first);

        let u = user(&store);
        let d1 = enroll(&store, &u, "dev_1", "k1", "100.64.0.2/32");
        enroll(&store, &u, "dev_2", "k2", "100.64.0.3/32");
        store.revoke_device(&d1, AT).unwrap();
        store.set_idp_groups(&u, &["eng".to_owned()], AT).unwrap();
        store
            .apply_policy(
                &NewPolicy {
                    format: PolicyFormat::Toml,
                    source: "# empty\n".into(),
                    applied_by: "admin".into(),
                },
                AT,
            )
            .unwrap();
        let token = NewServiceToken {
            id: ServiceTokenId::new("tok_1"),
            name: "c".into(),
            kind: ServiceTokenKind::Connector,
            secret_hash: vec![0; 32],
            expires_at: None,
        };
        store
            .create_connector(
                &NewConnector {
                    id: ConnectorId::new("con_1"),
                    name: "c".into(),
                    routes: vec!["10.1.0.0/16".into()],
                },
                &token,
                AT,
            )
            .unwrap();
        store.revoke_service_token(&token.id, AT).unwrap();
        let machine = |id: &str, byte: u8| NewServiceToken {
            id: ServiceTokenId::new(id),
            name: format!("bot {id}"),
            kind: ServiceTokenKind::Machine,
            secret_hash: vec![byte; 32],
            expires_at: Some(UnixTime(AT.0 + 86_400)),
        };
        store
            .create_service_token(&machine("tok_m1", 1), AT)
            .unwrap();
        store
            .create_service_token(&machine("tok_m2", 2), AT)
            .unwrap();
        store
            .revoke_service_token(&ServiceTokenId::new("tok_m1"), AT)
            .unwrap();
        let edge = NewServiceToken {
            kind: ServiceTokenKind::Edge,
            ..machine("tok_e1", 3)
        };
        let before = store.current_revision().unwrap();
        store.create_service_token(&edge, AT).unwrap();
        assert_eq!(
            store.current_revision().unwrap(),
            before,
            "edges never see other tokens, so creating one writes no revision"
        );
        store
            .create_session(
                &NewSession {
                    id: SessionId::new("ses_1"),
                    user_id: u.clone(),
                    device_id: None,
                    idp: "corp".into(),
                    login_method: "pwd".into(),
                    auth_time: AT,
                    expires_at: UnixTime(AT.0 + 3600),
                },
                AT,
            )
            .unwrap();
        store.revoke_session(&SessionId::new("ses_1"), AT).unwrap();

        let (at, deltas) = catch_up(&store, replica.revision(), NOW).unwrap();
        assert!(deltas
            .iter()
            .all(|m| matches!(m, FeedMessage::Delta { .. })));
        assert_eq!(at.0, store.current_revision().unwrap().0);
        apply_all(&mut replica, deltas);

        let (_, fresh) = snapshot(&store, NOW).unwrap();
        let mut expected = FeedReplica::new();
        apply_all(&mut expected, fresh);
        assert_eq!(replica.to_snapshot(), expected.to_snapshot());
        let devices: Vec<_> = replica.devices().map(|d| d.device_id.clone()).collect();
        assert_eq!(devices, ["dev_2"]);
        assert_eq!(replica.device("dev_2").unwrap().user.groups, ["eng"]);
        assert!(replica.is_session_revoked("ses_1"));
        assert!(replica.is_service_token_revoked("tok_1"));
        assert!(
            replica.service_token("tok_1").is_none(),
            "not a machine token"
        );
        assert!(replica.service_token("tok_m1").is_none());
        assert!(replica.is_service_token_revoked("tok_m1"));
        let m2 = replica.service_token("tok_m2").unwrap();
        assert_eq!(m2.secret_sha256, "02".repeat(32));
        assert_eq!(m2.name, "bot tok_m2");
        assert_eq!(m2.expires_at, Some(identity_claims::UnixTime(NOW + 86_400)));
        assert!(replica.service_token("tok_e1").is_none());
        assert_eq!(replica.policy().unwrap().version, 1);
    }

    #[test]
    fn a_machine_token_is_an_upsert_delta_and_its_revocation_a_revocation() {
        let store = Store::open_in_memory().unwrap();
        let from = feed::Revision(store.current_revision().unwrap().0);
        let id = ServiceTokenId::new("tok_m");
        store
            .create_service_token(
                &NewServiceToken {
                    id: id.clone(),
                    name: "ci".into(),
                    kind: ServiceTokenKind::Machine,
                    secret_hash: vec![0xab; 32],
                    expires_at: None,
                },
                AT,
            )
            .unwrap();
        let (_, deltas) = catch_up(&store, from, NOW).unwrap();
        let [FeedMessage::Delta {
            change: Change::ServiceTokenUpserted { token },
            ..
        }] = deltas.as_slice()
        else {
            panic!("{deltas:?}")
        };
        assert_eq!(token.secret_sha256, "ab".repeat(32));
        let from = feed::Revision(store.current_revision().unwrap().0);
        store.revoke_service_token(&id, AT).unwrap();
        let (_, deltas) = catch_up(&store, from, NOW).unwrap();
        assert!(matches!(
            deltas.as_slice(),
            [FeedMessage::Delta {
                change: Change::ServiceTokenRevoked { .. },
                ..
            }]
        ));
    }

    #[test]
    fn an_uncovered_or_future_revision_gets_a_snapshot_a_current_one_nothing() {
        let store = Store::open_in_memory().unwrap();
        let u = user(&store);
        enroll(&store, &u, "dev_1", "k1", "100.64.0.2/32");
        enroll(&store, &u, "dev_2", "k2", "100.64.0.3/32");
        let current = store.current_revision().unwrap().0;
        let is_snapshot = |m: &[FeedMessage]| matches!(m, [FeedMessage::Snapshot { .. }]);
        assert!(is_snapshot(&start(&store, None, NOW).unwrap().1));
        assert!(is_snapshot(
            &start(&store, Some(current + 5), NOW).unwrap().1
        ));
        assert!(start(&store, Some(current), NOW).unwrap().1.is_empty());
        assert_eq!(start(&store, Some(current - 1), NOW).unwrap().1.len(), 1);

        store
            .write(|w| w.compact_before(Revision(current)))
            .unwrap();
        assert!(
            is_snapshot(&start(&store, Some(current - 2), NOW).unwrap().1),
            "revision {} is compacted away",
            current - 1
        );
        assert_eq!(start(&store, Some(current - 1), NOW).unwrap().1.len(), 1);
    }
}
