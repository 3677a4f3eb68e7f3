//! Identity's token signing keys: Ed25519 seeds kept in the store, rotated by
//! `identity_core::rotation` (a new key every `key_rotation`; a retired key stays published
//! until the longest-lived token it signed has expired).

use identity_claims::{Jwks, KeySet, SigningKey};
use identity_core::rotation::{KeyInfo, RotationPolicy};
use identity_store::{Store, StoreError, UnixTime as StoreTime};
use secrecy::ExposeSecret as _;

/// The keys in use: the one that signs and the ones that verify (and are published).
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) signing: SigningKey,
    pub(crate) jwks: Jwks,
    pub(crate) verify: KeySet,
    /// When to reconcile again at the latest (unix seconds).
    pub(crate) next_check: u64,
}

/// Brings the stored keys in line with `policy` at `now` (creating, retiring and deleting keys,
/// each appending a revision) and returns the keys to use, plus whether anything changed.
///
/// # Errors
/// Store failures.
pub(crate) fn reconcile(
    store: &Store,
    policy: RotationPolicy,
    now: u64,
) -> Result<(Keys, bool), StoreError> {
    let at = to_store_time(now);
    store.write(|w| {
        let mut changed = false;
        let mut plan = policy.plan(&key_infos(&w.signing_keys()?), identity_claims::UnixTime(now));
        if plan.create_new {
            let seed = crate::flows::random_bytes::<32>();
            let key = SigningKey::from_seed(&seed);
            w.add_signing_key(key.kid(), &seed, at)?;
            changed = true;
            plan = policy.plan(&key_infos(&w.signing_keys()?), identity_claims::UnixTime(now));
        }
        for kid in &plan.retire {
            w.retire_signing_key(kid, at)?;
            changed = true;
        }
        for kid in &plan.remove {
            w.delete_signing_key(kid, at)?;
            changed = true;
        }
        let stored = w.signing_keys()?;
        let mut published = Vec::new();
        let mut signing = None;
        for kid in &plan.published {
            let Some(row) = stored.iter().find(|k| &k.kid == kid) else {
                continue;
            };
            let Ok(seed) = <[u8; 32]>::try_from(row.private_seed.expose_secret()) else {
                tracing::error!(kid = %row.kid, "stored signing key is not a 32-byte seed; skipped");
                continue;
            };
            let key = SigningKey::from_seed(&seed);
            if plan.signing.as_deref() == Some(kid.as_str()) {
                signing = Some(key.clone());
            }
            published.push(key);
        }
        let signing = signing.ok_or(StoreError::NotFound {
            what: "signing key",
        })?;
        let jwks = Jwks::from_signing_keys(&published);
        let verify = KeySet::from_jwks(&jwks);
        Ok((
            Keys {
                signing,
                jwks,
                verify,
                next_check: plan.next_check.0,
            },
            changed,
        ))
    })
}

/// The published key set as the store holds it (all stored keys; reconcile deletes expired
/// ones), for the feed.
pub(crate) fn stored_jwks(keys: &[identity_store::SigningKey]) -> Jwks {
    let keys: Vec<SigningKey> = keys
        .iter()
        .filter_map(|k| <[u8; 32]>::try_from(k.private_seed.expose_secret()).ok())
        .map(|seed| SigningKey::from_seed(&seed))
        .collect();
    Jwks::from_signing_keys(&keys)
}

fn key_infos(keys: &[identity_store::SigningKey]) -> Vec<KeyInfo> {
    keys.iter()
        .map(|k| KeyInfo {
            kid: k.kid.clone(),
            created_at: to_claims_time(k.created_at),
            retired_at: k.retired_at.map(to_claims_time),
        })
        .collect()
}

/// Store times are signed (SQLite integers); claim times are unsigned.
pub(crate) fn to_claims_time(t: StoreTime) -> identity_claims::UnixTime {
    identity_claims::UnixTime(u64::try_from(t.0).unwrap_or(0))
}

/// Unix seconds as a store time (saturating; no real clock reaches `i64::MAX`).
pub(crate) fn to_store_time(secs: u64) -> StoreTime {
    StoreTime(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const POLICY: RotationPolicy = RotationPolicy {
        rotate_after: 7 * DAY,
        token_lifetime: DAY,
    };

    #[test]
    fn keys_are_created_kept_rotated_with_overlap_and_removed() {
        let store = Store::open_in_memory().unwrap();
        let (first, changed) = reconcile(&store, POLICY, 1_000_000).unwrap();
        assert!(changed);
        let (same, changed) = reconcile(&store, POLICY, 1_000_000 + DAY).unwrap();
        assert!(!changed);
        assert_eq!(same.signing.kid(), first.signing.kid());

        let rotated_at = 1_000_000 + 7 * DAY;
        let (rotated, changed) = reconcile(&store, POLICY, rotated_at).unwrap();
        assert!(changed);
        assert_ne!(rotated.signing.kid(), first.signing.kid());
        assert!(
            rotated.verify.contains(first.signing.kid()),
            "old key still verifies"
        );
        assert_eq!(rotated.jwks.keys.len(), 2);

        let (later, _) = reconcile(&store, POLICY, rotated_at + DAY).unwrap();
        assert!(
            !later.verify.contains(first.signing.kid()),
            "removed after the overlap"
        );
        assert_eq!(later.signing.kid(), rotated.signing.kid());
        assert_eq!(stored_jwks(&store.signing_keys().unwrap()), later.jwks);
    }
}
