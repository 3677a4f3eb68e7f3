//! The store through its public API, in memory and on disk.

#![allow(clippy::unwrap_used)]

use identity_store::{
    AuditAction, AuditOutcome, AuditQuery, ConnectorId, DeviceId, EntityKind, NewAuditEvent,
    NewConnector, NewDevice, NewPolicy, NewServiceToken, NewSession, NewUser, PolicyFormat,
    Posture, Revision, ServiceTokenId, ServiceTokenKind, SessionId, Store, StoreError, UnixTime,
    UserId,
};
use secrecy::ExposeSecret;

const T0: UnixTime = UnixTime(1_700_000_000);

fn at(offset: i64) -> UnixTime {
    UnixTime(T0.0 + offset)
}

fn new_user(n: u8) -> NewUser {
    NewUser {
        id: UserId::from_random([n; 16]),
        idp: "corp".into(),
        subject: format!("sub-{n}"),
        email: Some(format!("user{n}@example.com")),
        display_name: Some(format!("User {n}")),
    }
}

fn new_device(n: u8, user: &UserId) -> NewDevice {
    NewDevice {
        id: DeviceId::from_random([n; 16]),
        user_id: user.clone(),
        public_key: format!("key-{n}"),
        addresses: vec![
            format!("100.64.0.{n}/32").parse().unwrap(),
            format!("fd00::{n}/128").parse().unwrap(),
        ],
        posture: Posture {
            os: "linux".into(),
            os_version: "6.1".into(),
            hostname: format!("host{n}"),
            client_version: "0.1.0".into(),
        },
    }
}

fn new_token(n: u8, kind: ServiceTokenKind) -> NewServiceToken {
    NewServiceToken {
        id: ServiceTokenId::from_random([n; 16]),
        name: format!("token-{n}"),
        kind,
        secret_hash: vec![n; 32],
        expires_at: None,
    }
}

fn kinds_since(store: &Store, since: Revision) -> Vec<(EntityKind, String)> {
    store
        .changes_since(since, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.entity_kind, e.entity_id))
        .collect()
}

#[test]
fn migrating_an_empty_database_yields_the_expected_schema() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name",
        )
        .unwrap();
    let schema: Vec<String> = stmt
        .query_map([], |row| {
            Ok(format!(
                "{} {}: {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    insta::assert_snapshot!(schema.join("\n"));
}

#[test]
fn a_file_is_in_wal_mode_and_reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let user = {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        store.upsert_user(&new_user(1), T0).unwrap()
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(store.user(&user.id).unwrap(), Some(user));
}

#[test]
fn foreign_keys_are_enforced() {
    let store = Store::open_in_memory().unwrap();
    let err = store
        .upsert_device(&new_device(1, &UserId::new("usr_missing")), T0)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "user" }),
        "{err:?}"
    );
}

#[test]
fn users_upsert_by_provider_and_subject() {
    let store = Store::open_in_memory().unwrap();
    let first = store.upsert_user(&new_user(1), T0).unwrap();
    assert_eq!(first.email.as_deref(), Some("user1@example.com"));
    assert!(!first.disabled);

    let again = NewUser {
        id: UserId::from_random([9; 16]),
        email: Some("renamed@example.com".into()),
        ..new_user(1)
    };
    let second = store.upsert_user(&again, at(10)).unwrap();
    assert_eq!(second.id, first.id, "the existing id is kept");
    assert_eq!(second.email.as_deref(), Some("renamed@example.com"));
    assert_eq!(second.created_at, T0);
    assert_eq!(second.updated_at, at(10));
    assert_eq!(store.users().unwrap().len(), 1);
    assert_eq!(
        store.users_by_email("renamed@example.com").unwrap(),
        vec![second.clone()]
    );

    let other_idp = NewUser {
        idp: "local".into(),
        id: UserId::from_random([2; 16]),
        ..new_user(1)
    };
    store.upsert_user(&other_idp, T0).unwrap();
    assert_eq!(
        store.users().unwrap().len(),
        2,
        "same subject at another provider is another user"
    );

    let disabled = store.set_user_disabled(&first.id, true, at(20)).unwrap();
    assert!(disabled.disabled);
    assert!(store.user(&first.id).unwrap().unwrap().disabled);
}

#[test]
fn groups_from_the_provider_and_from_admins_combine() {
    let store = Store::open_in_memory().unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    store
        .set_idp_groups(&user.id, &["eng".into(), "all".into()], T0)
        .unwrap();
    assert!(store.add_group_member("oncall", &user.id, T0).unwrap());
    assert!(
        !store.add_group_member("eng", &user.id, T0).unwrap(),
        "already a member"
    );
    assert_eq!(store.groups_of(&user.id).unwrap(), ["all", "eng", "oncall"]);

    store
        .set_idp_groups(&user.id, &["all".into()], at(1))
        .unwrap();
    assert_eq!(
        store.groups_of(&user.id).unwrap(),
        ["all", "eng", "oncall"],
        "eng stays: an admin added it too"
    );
    assert!(store.remove_group_member("eng", &user.id, at(2)).unwrap());
    assert_eq!(store.groups_of(&user.id).unwrap(), ["all", "oncall"]);
    assert_eq!(store.group_members("all").unwrap(), vec![user.id.clone()]);
    let groups = store.groups().unwrap();
    let names: Vec<_> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.members))
        .collect();
    assert_eq!(names, [("all", 1), ("eng", 0), ("oncall", 1)]);
    assert!(matches!(
        store.group_members("nope"),
        Err(StoreError::NotFound { what: "group" })
    ));
}

#[test]
fn devices_enroll_reenroll_and_revoke() {
    let store = Store::open_in_memory().unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    let device = store.upsert_device(&new_device(1, &user.id), T0).unwrap();
    assert_eq!(device.addresses.len(), 2);
    assert_eq!(device.addresses[0].to_string(), "100.64.0.1/32");
    assert_eq!(device.posture.hostname, "host1");
    assert_eq!(
        store.device_by_public_key("key-1").unwrap(),
        Some(device.clone())
    );

    let mut again = new_device(1, &user.id);
    again.id = DeviceId::from_random([7; 16]);
    again.addresses = vec!["100.64.9.9/32".parse().unwrap()];
    again.posture.os_version = "6.2".into();
    let re = store.upsert_device(&again, at(5)).unwrap();
    assert_eq!(re.id, device.id, "same key, same user: same device");
    assert_eq!(re.addresses, device.addresses, "addresses are kept");
    assert_eq!(re.posture.os_version, "6.2");
    assert_eq!(re.last_seen, Some(at(5)));

    store.touch_device(&device.id, at(9)).unwrap();
    assert_eq!(
        store.device(&device.id).unwrap().unwrap().last_seen,
        Some(at(9))
    );

    let revoked = store.revoke_device(&device.id, at(10)).unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let twice = store.revoke_device(&device.id, at(11)).unwrap();
    assert_eq!(
        twice.revoked_at,
        Some(at(10)),
        "revoking twice keeps the first time"
    );
    assert_eq!(store.devices_of_user(&user.id).unwrap().len(), 1);
    assert_eq!(store.devices().unwrap().len(), 1);
    assert_eq!(
        store.addresses_in_use().unwrap().len(),
        2,
        "revoked devices keep addresses"
    );
    assert!(matches!(
        store.upsert_device(&new_device(1, &user.id), at(12)),
        Err(StoreError::Conflict {
            what: "device public key"
        })
    ));
}

#[test]
fn duplicate_public_key_and_duplicate_address_conflict_and_leave_no_revision() {
    let store = Store::open_in_memory().unwrap();
    let alice = store.upsert_user(&new_user(1), T0).unwrap();
    let bob = store.upsert_user(&new_user(2), T0).unwrap();
    store.upsert_device(&new_device(1, &alice.id), T0).unwrap();
    let before = store.current_revision().unwrap();

    let mut stolen_key = new_device(2, &bob.id);
    stolen_key.public_key = "key-1".into();
    assert!(matches!(
        store.upsert_device(&stolen_key, T0),
        Err(StoreError::Conflict {
            what: "device public key"
        })
    ));

    let mut taken_address = new_device(3, &bob.id);
    taken_address.addresses = vec!["100.64.0.1/24".parse().unwrap()];
    assert!(matches!(
        store.upsert_device(&taken_address, T0),
        Err(StoreError::Conflict {
            what: "device address"
        })
    ));

    assert_eq!(
        store.current_revision().unwrap(),
        before,
        "no revision for failed mutations"
    );
    assert_eq!(store.changes_since(before, 10).unwrap(), vec![]);
    assert_eq!(
        store.device(&taken_address.id).unwrap(),
        None,
        "the device row rolled back"
    );
    assert_eq!(store.devices().unwrap().len(), 1);
}

#[test]
fn a_failing_write_closure_rolls_back_every_change_and_revision() {
    let store = Store::open_in_memory().unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    let result: Result<(), StoreError> = store.write(|w| {
        w.upsert_device(&new_device(1, &user.id), T0)?;
        w.apply_policy(
            &NewPolicy {
                format: PolicyFormat::Toml,
                source: "x".into(),
                applied_by: "admin".into(),
            },
            T0,
        )?;
        assert_eq!(
            w.current_revision()?,
            Revision(2),
            "the transaction sees its own writes"
        );
        Err(StoreError::NotFound { what: "test" })
    });
    assert!(result.is_err());
    assert_eq!(store.current_revision().unwrap(), Revision(0));
    assert_eq!(store.devices().unwrap(), vec![]);
    assert_eq!(store.active_policy().unwrap(), None);
}

#[test]
fn sessions_bind_to_devices_and_revoke() {
    let store = Store::open_in_memory().unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    let device = store.upsert_device(&new_device(1, &user.id), T0).unwrap();
    let session = store
        .create_session(
            &NewSession {
                id: SessionId::from_random([1; 16]),
                user_id: user.id.clone(),
                device_id: None,
                idp: "corp".into(),
                login_method: "device_code".into(),
                auth_time: T0,
                expires_at: at(3600),
            },
            T0,
        )
        .unwrap();
    assert_eq!(session.device_id, None);
    let rev = store.current_revision().unwrap();
    let bound = store
        .set_session_device(&session.id, &device.id, at(1))
        .unwrap();
    assert_eq!(bound.device_id.as_ref(), Some(&device.id));
    assert_eq!(
        kinds_since(&store, rev),
        [(EntityKind::Device, device.id.to_string())]
    );

    let record = store.device_record(&device.id).unwrap().unwrap();
    assert_eq!(
        record.session.as_ref().map(|s| &s.login_method[..]),
        Some("device_code")
    );
    assert_eq!(record.user.id, user.id);

    let rev = store.current_revision().unwrap();
    let revoked = store.revoke_session(&session.id, at(2)).unwrap();
    assert_eq!(revoked.revoked_at, Some(at(2)));
    assert_eq!(
        kinds_since(&store, rev),
        [(EntityKind::Session, session.id.to_string())]
    );
    assert_eq!(store.sessions_of_user(&user.id).unwrap(), vec![revoked]);
    assert_eq!(
        store.device_record(&device.id).unwrap().unwrap().session,
        None
    );
}

#[test]
fn service_tokens_store_the_hash_and_revoke() {
    let store = Store::open_in_memory().unwrap();
    let token = store
        .create_service_token(&new_token(1, ServiceTokenKind::Edge), T0)
        .unwrap();
    assert_eq!(token.secret_hash, vec![1; 32]);
    assert_eq!(token.kind, ServiceTokenKind::Edge);
    assert!(
        !format!("{token:?}").contains("[1, 1"),
        "the hash is redacted in Debug"
    );
    assert_eq!(
        store.current_revision().unwrap(),
        Revision(0),
        "creation needs no revision"
    );
    assert!(matches!(
        store.create_service_token(&new_token(1, ServiceTokenKind::Edge), T0),
        Err(StoreError::Conflict {
            what: "service token id"
        })
    ));
    let revoked = store.revoke_service_token(&token.id, at(1)).unwrap();
    assert_eq!(revoked.revoked_at, Some(at(1)));
    assert_eq!(
        kinds_since(&store, Revision(0)),
        [(EntityKind::ServiceToken, token.id.to_string())]
    );
    assert_eq!(store.service_tokens().unwrap(), vec![revoked]);
}

#[test]
fn connectors_carry_routes_and_a_credential() {
    let store = Store::open_in_memory().unwrap();
    let new = NewConnector {
        id: ConnectorId::from_random([1; 16]),
        name: "dc1".into(),
        routes: vec!["10.1.0.0/16".into(), "app.example.com".into()],
    };
    let (connector, token) = store
        .create_connector(&new, &new_token(1, ServiceTokenKind::Machine), T0)
        .unwrap();
    assert_eq!(
        token.kind,
        ServiceTokenKind::Connector,
        "the kind is forced"
    );
    assert_eq!(connector.credential, token.id);
    assert_eq!(connector.routes, new.routes);
    assert_eq!(
        store.connector_by_name("dc1").unwrap(),
        Some(connector.clone())
    );
    assert_eq!(
        store.connector_by_credential(&token.id).unwrap(),
        Some(connector.clone())
    );
    let dup = NewConnector {
        id: ConnectorId::from_random([2; 16]),
        ..new.clone()
    };
    assert!(matches!(
        store.create_connector(&dup, &new_token(2, ServiceTokenKind::Connector), T0),
        Err(StoreError::Conflict {
            what: "connector name"
        })
    ));
    assert_eq!(
        store
            .service_token(&ServiceTokenId::from_random([2; 16]))
            .unwrap(),
        None
    );

    let updated = store
        .set_connector_routes(&connector.id, &["10.2.0.0/16".into()], at(1))
        .unwrap();
    assert_eq!(updated.routes, ["10.2.0.0/16"]);
    let revoked = store.revoke_connector(&connector.id, at(2)).unwrap();
    assert!(revoked.revoked());
    assert!(store
        .service_token(&token.id)
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    let id = connector.id.to_string();
    assert_eq!(
        kinds_since(&store, Revision(0)),
        [
            (EntityKind::Connector, id.clone()),
            (EntityKind::Connector, id.clone()),
            (EntityKind::Connector, id),
            (EntityKind::ServiceToken, token.id.to_string()),
        ]
    );
    assert_eq!(store.connectors().unwrap(), vec![revoked]);
}

#[test]
fn policies_are_versioned_and_the_newest_is_active() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.active_policy().unwrap(), None);
    let p1 = store
        .apply_policy(
            &NewPolicy {
                format: PolicyFormat::Toml,
                source: "abc".into(),
                applied_by: "admin".into(),
            },
            T0,
        )
        .unwrap();
    assert_eq!(p1.version, 1);
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        p1.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let p2 = store
        .apply_policy(
            &NewPolicy {
                format: PolicyFormat::Yaml,
                source: "x: 1".into(),
                applied_by: "alice".into(),
            },
            at(1),
        )
        .unwrap();
    assert_eq!(p2.version, 2);
    assert_eq!(store.active_policy().unwrap(), Some(p2.clone()));
    assert_eq!(store.policy(1).unwrap(), Some(p1.clone()));
    assert_eq!(store.policies().unwrap(), vec![p2, p1]);
    assert_eq!(
        kinds_since(&store, Revision(0)),
        [
            (EntityKind::Policy, "1".into()),
            (EntityKind::Policy, "2".into())
        ]
    );
}

#[test]
fn audit_events_filter_by_action_and_time_newest_first() {
    let store = Store::open_in_memory().unwrap();
    for (i, action) in [AuditAction::Login, AuditAction::Enroll, AuditAction::Login]
        .into_iter()
        .enumerate()
    {
        store
            .record_audit(&NewAuditEvent {
                at: at(i as i64 * 10),
                actor: "usr_1".into(),
                action,
                target: Some("dev_1".into()),
                outcome: AuditOutcome::Success,
                detail: serde_json::json!({ "n": i }),
            })
            .unwrap();
    }
    let all = store.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(all[0].detail, serde_json::json!({ "n": 2 }));
    let logins = store
        .audit_events(&AuditQuery {
            action: Some(AuditAction::Login),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(logins.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 1]);
    let recent = store
        .audit_events(&AuditQuery {
            since: Some(at(10)),
            limit: 1,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(recent.iter().map(|e| e.id).collect::<Vec<_>>(), [3]);
    assert_eq!(
        store.current_revision().unwrap(),
        Revision(0),
        "audit is not in the feed"
    );
}

#[test]
fn signing_keys_add_retire_delete() {
    let store = Store::open_in_memory().unwrap();
    let key = store.add_signing_key("k1", &[7; 32], T0).unwrap();
    assert_eq!(key.private_seed.expose_secret(), &[7; 32]);
    assert!(
        !format!("{key:?}").contains("7, 7"),
        "the seed is redacted in Debug"
    );
    assert!(matches!(
        store.add_signing_key("k1", &[8; 32], T0),
        Err(StoreError::Conflict {
            what: "signing key id"
        })
    ));
    assert_eq!(
        store.retire_signing_key("k1", at(1)).unwrap().retired_at,
        Some(at(1))
    );
    assert_eq!(store.signing_keys().unwrap().len(), 1);
    store.delete_signing_key("k1", at(2)).unwrap();
    assert!(store.signing_key("k1").unwrap().is_none());
    assert_eq!(kinds_since(&store, Revision(0)).len(), 3);
}

#[test]
fn user_changes_append_one_revision_per_live_device() {
    let store = Store::open_in_memory().unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    let d1 = store.upsert_device(&new_device(1, &user.id), T0).unwrap();
    let d2 = store.upsert_device(&new_device(2, &user.id), T0).unwrap();
    store.revoke_device(&d2.id, T0).unwrap();
    let rev = store.current_revision().unwrap();
    store
        .set_idp_groups(&user.id, &["eng".into()], at(1))
        .unwrap();
    store
        .set_idp_groups(&user.id, &["eng".into()], at(2))
        .unwrap();
    store.set_user_disabled(&user.id, true, at(3)).unwrap();
    store.set_user_disabled(&user.id, true, at(4)).unwrap();
    let device = (EntityKind::Device, d1.id.to_string());
    assert_eq!(
        kinds_since(&store, rev),
        [device.clone(), device],
        "one entry per real change, none for the revoked device"
    );
}

#[test]
fn revisions_are_consecutive_and_compaction_moves_the_floor() {
    let store = Store::open_in_memory().unwrap();
    for n in 1..=5 {
        store
            .add_signing_key(&format!("k{n}"), &[n; 32], at(i64::from(n)))
            .unwrap();
    }
    let entries = store.changes_since(Revision(0), 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.revision.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(entries[2].at, at(3));
    assert_eq!(
        store.changes_since(Revision(3), 1).unwrap()[0].revision,
        Revision(4)
    );
    assert_eq!(store.compacted_before().unwrap(), Revision(1));
    assert_eq!(store.compact_before(Revision(4)).unwrap(), 3);
    assert_eq!(store.compacted_before().unwrap(), Revision(4));
    assert_eq!(
        store.compact_before(Revision(2)).unwrap(),
        0,
        "the floor never moves back"
    );
    assert_eq!(store.changes_since(Revision(0), 100).unwrap().len(), 2);
    assert_eq!(store.compact_before(Revision(100)).unwrap(), 2);
    assert_eq!(
        store.compacted_before().unwrap(),
        Revision(6),
        "at most current + 1"
    );
    store.add_signing_key("k6", &[6; 32], at(6)).unwrap();
    assert_eq!(
        store.current_revision().unwrap(),
        Revision(6),
        "numbering continues"
    );
}

#[test]
fn a_snapshot_holds_live_state_at_its_revision() {
    let store = Store::open_in_memory().unwrap();
    let alice = store.upsert_user(&new_user(1), T0).unwrap();
    let bob = store.upsert_user(&new_user(2), T0).unwrap();
    store
        .set_idp_groups(&alice.id, &["eng".into()], T0)
        .unwrap();
    let live = store.upsert_device(&new_device(1, &alice.id), T0).unwrap();
    let gone = store.upsert_device(&new_device(2, &alice.id), T0).unwrap();
    store.upsert_device(&new_device(3, &bob.id), T0).unwrap();
    store.revoke_device(&gone.id, T0).unwrap();
    store.set_user_disabled(&bob.id, true, T0).unwrap();
    let mk_session = |n: u8, expires: i64| NewSession {
        id: SessionId::from_random([n; 16]),
        user_id: alice.id.clone(),
        device_id: None,
        idp: "corp".into(),
        login_method: "oidc".into(),
        auth_time: T0,
        expires_at: at(expires),
    };
    store.create_session(&mk_session(1, 100), T0).unwrap();
    store.create_session(&mk_session(2, 5), T0).unwrap();
    store
        .revoke_session(&SessionId::from_random([1; 16]), T0)
        .unwrap();
    store
        .revoke_session(&SessionId::from_random([2; 16]), T0)
        .unwrap();
    let token = store
        .create_service_token(&new_token(1, ServiceTokenKind::Machine), T0)
        .unwrap();
    store.revoke_service_token(&token.id, T0).unwrap();
    store.add_signing_key("k1", &[1; 32], T0).unwrap();

    let snapshot = store.snapshot(at(10)).unwrap();
    assert_eq!(snapshot.revision, store.current_revision().unwrap());
    let devices: Vec<_> = snapshot
        .devices
        .iter()
        .map(|r| r.device.id.clone())
        .collect();
    assert_eq!(
        devices,
        [live.id],
        "revoked devices and disabled users' devices are left out"
    );
    assert_eq!(snapshot.devices[0].groups, ["eng"]);
    let sessions: Vec<_> = snapshot
        .revoked_sessions
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(
        sessions,
        [SessionId::from_random([1; 16])],
        "expired revocations are left out"
    );
    assert_eq!(snapshot.revoked_service_tokens, [token.id]);
    assert_eq!(snapshot.signing_keys.len(), 1);
    assert!(snapshot.policy.is_none());
    assert_eq!(
        snapshot.groups.get(&alice.id).map(Vec::as_slice),
        Some(&["eng".to_owned()][..])
    );
}

#[test]
fn disabling_a_user_revokes_their_live_sessions() {
    let store = Store::open_in_memory().unwrap();
    let alice = store.upsert_user(&new_user(1), T0).unwrap();
    let bob = store.upsert_user(&new_user(2), T0).unwrap();
    let mk_session = |n: u8, user: &UserId, expires: i64| NewSession {
        id: SessionId::from_random([n; 16]),
        user_id: user.clone(),
        device_id: None,
        idp: "corp".into(),
        login_method: "oidc".into(),
        auth_time: T0,
        expires_at: at(expires),
    };
    store
        .create_session(&mk_session(1, &alice.id, 100), T0)
        .unwrap();
    store
        .create_session(&mk_session(2, &alice.id, 5), T0)
        .unwrap();
    store
        .create_session(&mk_session(3, &bob.id, 100), T0)
        .unwrap();
    let rev = store.current_revision().unwrap();

    store.set_user_disabled(&alice.id, true, at(10)).unwrap();
    let revoked = |n: u8| {
        store
            .session(&SessionId::from_random([n; 16]))
            .unwrap()
            .unwrap()
            .revoked_at
    };
    assert_eq!(revoked(1), Some(at(10)), "the live session is revoked");
    assert_eq!(revoked(2), None, "an expired session is left alone");
    assert_eq!(revoked(3), None, "another user's session is left alone");
    assert_eq!(
        kinds_since(&store, rev),
        [(
            EntityKind::Session,
            SessionId::from_random([1; 16]).to_string()
        )],
        "edges learn of the revocation through the feed"
    );

    store.set_user_disabled(&alice.id, false, at(11)).unwrap();
    assert_eq!(revoked(1), Some(at(10)), "re-enabling does not revive it");
}

#[test]
fn a_read_closure_sees_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let store = Store::open(&path).unwrap();
    let user = store.upsert_user(&new_user(1), T0).unwrap();
    store.upsert_device(&new_device(1, &user.id), T0).unwrap();
    let (revision, devices) = store
        .read(|r| Ok::<_, StoreError>((r.current_revision()?, r.devices()?)))
        .unwrap();
    assert_eq!(revision, Revision(1));
    assert_eq!(devices.len(), 1);
    // A second connection (as a second replica would hold) writes while a snapshot is built
    // from the first; the snapshot's revision matches its contents.
    let other = Store::open(&path).unwrap();
    let snapshot = store
        .read(|r| {
            let before = r.current_revision()?;
            other.upsert_device(&new_device(2, &user.id), at(1))?;
            let snapshot = r.snapshot(at(1))?;
            assert_eq!(snapshot.revision, before);
            Ok::<_, StoreError>(snapshot)
        })
        .unwrap();
    assert_eq!(
        snapshot.devices.len(),
        1,
        "the concurrent write is not in the snapshot"
    );
    assert_eq!(store.current_revision().unwrap(), Revision(2));
}
