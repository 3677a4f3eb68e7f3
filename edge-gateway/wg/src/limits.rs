//! Handshake rate limits that boringtun's `noise` module leaves to its caller, as the Linux
//! kernel implements them (drivers/net/wireguard/ratelimiter.c, noise.c).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Kernel `INITIATIONS_PER_SECOND`: a peer's initiations are consumed at most every 20 ms.
pub(crate) const MIN_INITIATION_SPACING: Duration = Duration::from_millis(1000 / 50);
/// Kernel ratelimiter: 20 packets per second per source...
const PACKETS_PER_SECOND: u64 = 20;
/// ...with a burst of 5.
const PACKETS_BURST: u64 = 5;
const PACKET_COST_NS: u64 = 1_000_000_000 / PACKETS_PER_SECOND;
const TOKEN_MAX_NS: u64 = PACKET_COST_NS * PACKETS_BURST;
/// Kernel ratelimiter garbage collection: entries idle for a second are dropped.
const SOURCE_IDLE: Duration = Duration::from_secs(1);

/// Token buckets per source address (IPv4 /32, IPv6 /64) for handshake messages that arrive
/// while the node is under load and carry a valid cookie (mac2).
#[derive(Debug)]
pub(crate) struct SourceLimiter {
    buckets: BTreeMap<SourceKey, Bucket>,
    max_entries: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SourceKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

#[derive(Debug)]
struct Bucket {
    tokens_ns: u64,
    last: Instant,
}

impl SourceLimiter {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            buckets: BTreeMap::new(),
            max_entries,
        }
    }

    /// Takes one packet's worth of tokens for `source`; false means drop the packet.
    /// A full table refuses new sources, like the kernel's.
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let key = SourceKey::from(source);
        if let Some(bucket) = self.buckets.get_mut(&key) {
            let elapsed = now.saturating_duration_since(bucket.last).as_nanos();
            let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
            bucket.tokens_ns = bucket.tokens_ns.saturating_add(elapsed).min(TOKEN_MAX_NS);
            bucket.last = now;
            if bucket.tokens_ns >= PACKET_COST_NS {
                bucket.tokens_ns -= PACKET_COST_NS;
                return true;
            }
            return false;
        }
        if self.buckets.len() >= self.max_entries {
            return false;
        }
        self.buckets.insert(
            key,
            Bucket {
                tokens_ns: TOKEN_MAX_NS - PACKET_COST_NS,
                last: now,
            },
        );
        true
    }

    /// Forgets sources idle for more than a second.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.last) <= SOURCE_IDLE);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

impl From<IpAddr> for SourceKey {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                SourceKey::V6Prefix(prefix)
            }
        }
    }
}

/// Counts handshake messages per second to tell when the node is under load, mirroring the
/// threshold of the boringtun `RateLimiter` that answers with cookies.
#[derive(Debug)]
pub(crate) struct LoadMeter {
    limit: u64,
    count: u64,
    window_start: Instant,
}

impl LoadMeter {
    pub(crate) fn new(limit: u64, now: Instant) -> Self {
        Self {
            limit,
            count: 0,
            window_start: now,
        }
    }

    /// Records one handshake message; true when the node is under load.
    pub(crate) fn record(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.limit
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick their own instants
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn source_gets_a_burst_of_five_then_twenty_per_second() {
        let mut limiter = SourceLimiter::new(16);
        let t0 = Instant::now();
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let burst = (0..10).filter(|_| limiter.allow(src, t0)).count();
        assert_eq!(burst, 5);
        // One more token every 50 ms.
        assert!(!limiter.allow(src, t0 + Duration::from_millis(49)));
        assert!(limiter.allow(src, t0 + Duration::from_millis(100)));
        // Over one second at most 20 more.
        let t1 = t0 + Duration::from_secs(10);
        let allowed = (0..1000)
            .filter(|i| limiter.allow(src, t1 + Duration::from_millis(*i)))
            .count();
        assert!((20..=26).contains(&allowed), "allowed {allowed}");
    }

    #[test]
    fn sources_are_independent_and_v6_is_grouped_by_64() {
        let mut limiter = SourceLimiter::new(16);
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        let c: IpAddr = "2001:db9::1".parse().expect("ip");
        for _ in 0..5 {
            assert!(limiter.allow(a, now));
        }
        assert!(!limiter.allow(b, now), "same /64 shares the bucket");
        assert!(limiter.allow(c, now));
    }

    #[test]
    fn full_table_refuses_new_sources_until_expiry() {
        let mut limiter = SourceLimiter::new(2);
        let now = Instant::now();
        assert!(limiter.allow("192.0.2.1".parse().expect("ip"), now));
        assert!(limiter.allow("192.0.2.2".parse().expect("ip"), now));
        assert!(!limiter.allow("192.0.2.3".parse().expect("ip"), now));
        limiter.expire(now + Duration::from_secs(2));
        assert_eq!(limiter.len(), 0);
        assert!(limiter.allow(
            "192.0.2.3".parse().expect("ip"),
            now + Duration::from_secs(2)
        ));
    }

    #[test]
    fn load_meter_trips_above_the_limit_and_resets_each_second() {
        let now = Instant::now();
        let mut meter = LoadMeter::new(3, now);
        let loaded: Vec<bool> = (0..5).map(|_| meter.record(now)).collect();
        assert_eq!(loaded, [false, false, false, true, true]);
        assert!(!meter.record(now + Duration::from_secs(1)));
    }
}
