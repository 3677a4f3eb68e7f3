//! Signing key rotation: when to create a key, which key signs, which keys stay published.
//!
//! A key signs from its creation until a newer key exists; it is then retired but stays in the
//! JWKS until the last token it signed has expired (`retired_at + token_lifetime`), so rotation
//! never invalidates a live token.

use crate::UnixTime;

/// A stored signing key's life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// When the key was created.
    pub created_at: UnixTime,
    /// When it stopped signing, if it did.
    pub retired_at: Option<UnixTime>,
}

/// How often keys rotate and how long tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Age after which a new key is created, seconds (e.g. 30 days).
    pub rotate_after: u64,
    /// The longest lifetime of any token identity signs, seconds.
    pub token_lifetime: u64,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    /// Create a new key (then plan again): there is no signing key or it is too old.
    pub create_new: bool,
    /// The key to sign with: the newest unretired key.
    pub signing: Option<String>,
    /// Unretired keys older than the signing key: mark them retired at `now`.
    pub retire: Vec<String>,
    /// Keys to publish in the JWKS: unretired ones and retired ones whose tokens may still be
    /// live. Newest first.
    pub published: Vec<String>,
    /// Retired keys whose tokens have all expired: delete them.
    pub remove: Vec<String>,
    /// When to plan again at the latest.
    pub next_check: UnixTime,
}

impl RotationPolicy {
    /// The plan for `keys` at `now`.
    pub fn plan(&self, keys: &[KeyInfo], now: UnixTime) -> RotationPlan {
        let mut sorted: Vec<&KeyInfo> = keys.iter().collect();
        // Newest first; ties by kid so the outcome does not depend on input order.
        sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.kid.cmp(&a.kid)));
        let signing = sorted.iter().find(|k| k.retired_at.is_none()).copied();
        let mut plan = RotationPlan {
            create_new: signing.is_none_or(|k| now.secs_since(k.created_at) >= self.rotate_after),
            signing: signing.map(|k| k.kid.clone()),
            retire: Vec::new(),
            published: Vec::new(),
            remove: Vec::new(),
            next_check: signing.map_or(now, |k| k.created_at.plus(self.rotate_after)),
        };
        for key in sorted {
            let is_signing = signing.is_some_and(|s| s.kid == key.kid);
            let retired_at = match key.retired_at {
                None if is_signing => None,
                None => {
                    plan.retire.push(key.kid.clone());
                    Some(now)
                }
                Some(at) => Some(at),
            };
            match retired_at {
                Some(at) if now.secs_since(at) >= self.token_lifetime => {
                    plan.remove.push(key.kid.clone());
                }
                Some(at) => {
                    plan.next_check = plan.next_check.min(at.plus(self.token_lifetime));
                    plan.published.push(key.kid.clone());
                }
                None => plan.published.push(key.kid.clone()),
            }
        }
        plan.next_check = plan.next_check.max(now);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const POLICY: RotationPolicy = RotationPolicy {
        rotate_after: 30 * DAY,
        token_lifetime: DAY,
    };

    fn key(kid: &str, created: u64, retired: Option<u64>) -> KeyInfo {
        KeyInfo {
            kid: kid.into(),
            created_at: UnixTime(created),
            retired_at: retired.map(UnixTime),
        }
    }

    #[test]
    fn without_keys_a_key_is_created() {
        let plan = POLICY.plan(&[], UnixTime(1000));
        assert!(plan.create_new);
        assert_eq!(plan.signing, None);
        assert!(plan.published.is_empty());
    }

    #[test]
    fn a_young_key_signs_and_an_old_one_asks_for_a_successor() {
        let keys = [key("a", 0, None)];
        let young = POLICY.plan(&keys, UnixTime(DAY));
        assert!(!young.create_new);
        assert_eq!(young.signing.as_deref(), Some("a"));
        assert_eq!(young.next_check, UnixTime(30 * DAY));
        let old = POLICY.plan(&keys, UnixTime(30 * DAY));
        assert!(old.create_new);
        assert_eq!(
            old.signing.as_deref(),
            Some("a"),
            "sign with it until the new one exists"
        );
    }

    #[test]
    fn the_old_key_is_retired_published_for_one_token_lifetime_then_removed() {
        let now = 30 * DAY;
        let keys = [key("a", 0, None), key("b", now, None)];
        let plan = POLICY.plan(&keys, UnixTime(now));
        assert_eq!(plan.signing.as_deref(), Some("b"));
        assert_eq!(plan.retire, ["a"]);
        assert_eq!(plan.published, ["b", "a"]);
        assert_eq!(plan.next_check, UnixTime(now + DAY));

        let keys = [key("a", 0, Some(now)), key("b", now, None)];
        let later = POLICY.plan(&keys, UnixTime(now + DAY - 1));
        assert_eq!(later.published, ["b", "a"]);
        assert!(later.remove.is_empty() && later.retire.is_empty());
        let after = POLICY.plan(&keys, UnixTime(now + DAY));
        assert_eq!(after.published, ["b"]);
        assert_eq!(after.remove, ["a"]);
    }
}
