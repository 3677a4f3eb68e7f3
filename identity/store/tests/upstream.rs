//! Upstream grants (refresh tokens kept for group re-sync) and session trees.

#![allow(clippy::unwrap_used)]

use identity_store::{NewSession, NewUser, SessionId, Store, UnixTime, UserId};
use secrecy::{ExposeSecret as _, SecretString};

const T0: UnixTime = UnixTime(1_700_000_000);

fn session(id: &str, user: &UserId, expires: i64) -> NewSession {
    NewSession {
        id: SessionId::new(id),
        user_id: user.clone(),
        device_id: None,
        idp: "corp".into(),
        login_method: "oidc".into(),
        auth_time: T0,
        expires_at: UnixTime(T0.0 + expires),
    }
}

fn store_with_tree() -> (Store, UserId) {
    let store = Store::open_in_memory().unwrap();
    let user = store
        .upsert_user(
            &NewUser {
                id: UserId::new("usr_1"),
                idp: "corp".into(),
                subject: "sub-1".into(),
                email: None,
                display_name: None,
            },
            T0,
        )
        .unwrap();
    // browser (expires soon) → cli → device (long-lived); "other" is unrelated.
    for (id, expires) in [
        ("browser", 10),
        ("cli", 100),
        ("device", 1000),
        ("other", 1000),
    ] {
        store
            .create_session(&session(id, &user.id, expires), T0)
            .unwrap();
    }
    store
        .set_session_parent(&SessionId::new("cli"), &SessionId::new("browser"))
        .unwrap();
    store
        .set_session_parent(&SessionId::new("device"), &SessionId::new("cli"))
        .unwrap();
    (store, user.id)
}

#[test]
fn a_session_tree_holds_the_root_and_everything_issued_from_it() {
    let (store, _) = store_with_tree();
    let tree = store.session_tree(&SessionId::new("browser")).unwrap();
    let ids: Vec<_> = tree.iter().map(|s| s.id.as_str().to_owned()).collect();
    assert_eq!(ids, ["browser", "cli", "device"]);
    assert_eq!(
        store.session_tree(&SessionId::new("other")).unwrap().len(),
        1
    );
}

#[test]
fn a_grant_stays_live_while_any_session_of_its_tree_is_live() {
    let (store, _) = store_with_tree();
    let root = SessionId::new("browser");
    store
        .put_upstream_grant(&root, &SecretString::from("rt-1"), T0)
        .unwrap();
    // The browser session expired, the device session did not.
    let live = store.live_upstream_grants(UnixTime(T0.0 + 500)).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].refresh_token.expose_secret(), "rt-1");
    assert!(
        format!("{:?}", live[0]).contains("REDACTED"),
        "{:?}",
        live[0]
    );
    // Everything expired.
    assert!(store
        .live_upstream_grants(UnixTime(T0.0 + 5000))
        .unwrap()
        .is_empty());
    // Everything revoked.
    for id in ["browser", "cli", "device"] {
        store.revoke_session(&SessionId::new(id), T0).unwrap();
    }
    assert!(store.live_upstream_grants(T0).unwrap().is_empty());
}

#[test]
fn a_sync_replaces_a_rotated_refresh_token_and_delete_forgets_it() {
    let (store, user) = store_with_tree();
    let root = SessionId::new("browser");
    store
        .put_upstream_grant(&root, &SecretString::from("rt-1"), T0)
        .unwrap();
    store
        .mark_upstream_synced(&root, Some(&SecretString::from("rt-2")), UnixTime(T0.0 + 5))
        .unwrap();
    let grant = store.upstream_grant(&root).unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(grant.synced_at, Some(UnixTime(T0.0 + 5)));
    assert_eq!(grant.user_id, user);
    store
        .mark_upstream_synced(&root, None, UnixTime(T0.0 + 6))
        .unwrap();
    let grant = store.upstream_grant(&root).unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert!(store.delete_upstream_grant(&root).unwrap());
    assert!(!store.delete_upstream_grant(&root).unwrap());
    assert!(store.mark_upstream_synced(&root, None, T0).is_err());
}
