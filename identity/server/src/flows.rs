//! Bounded in-memory state: login attempts, browser sessions, device grants, authorization codes.
//!
//! Each map has a fixed capacity; expired entries are purged before an insert, and an insert
//! into a full map fails, so unauthenticated clients cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::Hash;

/// Most pending entries per map: far above honest load, small enough to stay a few MiB.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// A capacity-bounded map whose values expire at a unix-second deadline.
pub(crate) struct Bounded<K, V> {
    entries: HashMap<K, (V, u64)>,
    capacity: usize,
}

/// The map is full of live entries.
#[derive(Debug, thiserror::Error)]
#[error("too many pending requests")]
pub(crate) struct Full;

impl<K: Eq + Hash, V> Bounded<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Inserts `value` until `expires_at`, after dropping everything expired at `now`.
    pub(crate) fn insert(
        &mut self,
        key: K,
        value: V,
        expires_at: u64,
        now: u64,
    ) -> Result<(), Full> {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, exp)| *exp > now);
        }
        if self.entries.len() >= self.capacity {
            return Err(Full);
        }
        self.entries.insert(key, (value, expires_at));
        Ok(())
    }

    /// Removes and returns a live entry (one-shot use: codes, states).
    pub(crate) fn take(&mut self, key: &K, now: u64) -> Option<V> {
        let (value, exp) = self.entries.remove(key)?;
        (exp > now).then_some(value)
    }

    /// A live entry, in place.
    pub(crate) fn get_mut(&mut self, key: &K, now: u64) -> Option<&mut V> {
        match self.entries.get_mut(key) {
            Some((value, exp)) if *exp > now => Some(value),
            Some(_) | None => None,
        }
    }

    /// An entry even if expired, with its deadline (the device grant reports `expired_token`).
    pub(crate) fn get_with_expiry(&mut self, key: &K) -> Option<(&mut V, u64)> {
        self.entries.get_mut(key).map(|(v, exp)| (v, *exp))
    }

    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Finds the first live entry matching `pred` (user codes are looked up by value).
    pub(crate) fn find_key(&self, now: u64, pred: impl Fn(&V) -> bool) -> Option<&K> {
        // Order does not matter: at most one entry matches (user codes are unique).
        #[allow(clippy::iter_over_hash_type)]
        for (k, (v, exp)) in &self.entries {
            if *exp > now && pred(v) {
                return Some(k);
            }
        }
        None
    }
}

/// `n` random bytes from the OS, base64url (no padding): session ids, codes, secrets.
pub(crate) fn random_token(n: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// 32 random bytes from the OS (key seeds).
pub(crate) fn random_seed() -> [u8; 32] {
    use rand::RngCore as _;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// The wall clock as unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 7636 §4.2 S256: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`, compared in
/// constant time.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    // RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !valid {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::keys::sha2_256(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn full_map_rejects_until_entries_expire() {
        let mut map = Bounded::new(2);
        map.insert(1, "a", 10, 0).unwrap();
        map.insert(2, "b", 20, 0).unwrap();
        assert!(map.insert(3, "c", 30, 5).is_err());
        map.insert(3, "c", 30, 10).unwrap();
        assert!(map.take(&1, 10).is_none());
        assert_eq!(map.take(&3, 10), Some("c"));
        assert!(map.take(&3, 10).is_none(), "one-shot");
    }

    #[test]
    fn pkce_rfc7636_appendix_b_vector() {
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
