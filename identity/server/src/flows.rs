//! Bounded in-memory state (the local provider's codes), randomness and the clock.
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
}

/// `n` random bytes from the OS, base64url (no padding): session ids, codes, secrets.
pub(crate) fn random_token(n: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `N` random bytes from the OS (key seeds, the pure flows' randomness).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore as _;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The wall clock as unix milliseconds.
pub(crate) fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wall clock as unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
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
}
