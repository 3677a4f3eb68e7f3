//! Tunnel address allocation: the lowest free IPv4 and IPv6 address of the pools, given the
//! addresses in use. Deterministic, so replicas and tests agree.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Errors of pool construction and allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The pool has no addresses left for devices once network, first host and last address
    /// are reserved (IPv4 shorter than /30 … i.e. a /31 or /32; IPv6 likewise).
    #[error("pool too small")]
    PoolTooSmall,
    /// Every device address is in use.
    #[error("address pool exhausted")]
    Exhausted,
}

/// The IPv4 and IPv6 pools devices get addresses from.
///
/// In each pool the network address, the first host (edges' tunnel address) and the last
/// address (IPv4 broadcast; its IPv6 counterpart for symmetry) are never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    v4: Ipv4Net,
    v6: Ipv6Net,
}

impl AddressPool {
    /// The shared address space of RFC 6598 §7, as Tailscale and others use for tunnels.
    pub const DEFAULT_V4: &'static str = "100.64.0.0/10";

    /// Pools from two networks (host bits are cleared).
    ///
    /// # Errors
    /// [`AllocError::PoolTooSmall`] when a pool has no device address.
    pub fn new(v4: Ipv4Net, v6: Ipv6Net) -> Result<Self, AllocError> {
        if v4.prefix_len() > 29 || v6.prefix_len() > 125 {
            return Err(AllocError::PoolTooSmall);
        }
        Ok(Self {
            v4: v4.trunc(),
            v6: v6.trunc(),
        })
    }

    /// The IPv4 pool.
    pub fn v4(&self) -> Ipv4Net {
        self.v4
    }

    /// The IPv6 pool.
    pub fn v6(&self) -> Ipv6Net {
        self.v6
    }

    /// The reserved first IPv4 host (edges).
    pub fn edge_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.v4.network()) + 1)
    }

    /// The reserved first IPv6 host (edges).
    pub fn edge_v6(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.v6.network()) + 1)
    }

    /// The lowest IPv4 device address not in `used`.
    ///
    /// # Errors
    /// [`AllocError::Exhausted`].
    pub fn allocate_v4(&self, used: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, AllocError> {
        let first = u32::from(self.v4.network()) + 2;
        let last = u32::from(self.v4.broadcast()) - 1;
        let used = used.iter().map(|a| u128::from(u32::from(*a)));
        let a = lowest_free(u128::from(first), u128::from(last), used)?;
        // `a` lies in first..=last, which are u32 values.
        Ok(Ipv4Addr::from(
            u32::try_from(a).map_err(|_| AllocError::Exhausted)?,
        ))
    }

    /// The lowest IPv6 device address not in `used`.
    ///
    /// # Errors
    /// [`AllocError::Exhausted`].
    pub fn allocate_v6(&self, used: &BTreeSet<Ipv6Addr>) -> Result<Ipv6Addr, AllocError> {
        let first = u128::from(self.v6.network()) + 2;
        let last = u128::from(self.v6.broadcast()) - 1;
        let a = lowest_free(first, last, used.iter().map(|a| u128::from(*a)))?;
        Ok(Ipv6Addr::from(a))
    }
}

impl Default for AddressPool {
    fn default() -> Self {
        Self {
            v4: Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
            // A fixed ULA /48 (RFC 4193 §3.2 wants it random: deployments configure their own).
            v6: Ipv6Net::new_assert(Ipv6Addr::new(0xfd7a, 0x6768, 0x0001, 0, 0, 0, 0, 0), 48),
        }
    }
}

/// The lowest value in `first..=last` not in the ascending `used`.
fn lowest_free(
    first: u128,
    last: u128,
    used: impl Iterator<Item = u128>,
) -> Result<u128, AllocError> {
    let mut candidate = first;
    for u in used {
        if u < candidate {
            continue;
        }
        if u > candidate {
            break;
        }
        candidate += 1;
    }
    if candidate <= last {
        Ok(candidate)
    } else {
        Err(AllocError::Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_device_gets_the_third_address_and_gaps_are_refilled() {
        let pool = AddressPool::default();
        assert_eq!(pool.edge_v4(), Ipv4Addr::new(100, 64, 0, 1));
        let mut used = BTreeSet::new();
        assert_eq!(
            pool.allocate_v4(&used).unwrap(),
            Ipv4Addr::new(100, 64, 0, 2)
        );
        used.extend([Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(100, 64, 0, 4)]);
        assert_eq!(
            pool.allocate_v4(&used).unwrap(),
            Ipv4Addr::new(100, 64, 0, 3)
        );
        used.insert(Ipv4Addr::new(100, 64, 0, 3));
        assert_eq!(
            pool.allocate_v4(&used).unwrap(),
            Ipv4Addr::new(100, 64, 0, 5)
        );
        // Addresses outside the pool in `used` do not matter.
        used.insert(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            pool.allocate_v4(&used).unwrap(),
            Ipv4Addr::new(100, 64, 0, 5)
        );
        assert_eq!(
            pool.allocate_v6(&BTreeSet::new()).unwrap(),
            "fd7a:6768:1::2".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn a_small_pool_is_exhausted_before_broadcast() {
        let pool = AddressPool::new(
            "192.0.2.0/29".parse().unwrap(),
            "fd00::/125".parse().unwrap(),
        )
        .unwrap();
        let mut used = BTreeSet::new();
        for _ in 0..5 {
            let a = pool.allocate_v4(&used).unwrap();
            used.insert(a);
        }
        assert_eq!(used.last(), Some(&Ipv4Addr::new(192, 0, 2, 6)));
        assert_eq!(pool.allocate_v4(&used), Err(AllocError::Exhausted));
        assert_eq!(
            AddressPool::new(
                "192.0.2.0/30".parse().unwrap(),
                "fd00::/64".parse().unwrap()
            ),
            Err(AllocError::PoolTooSmall)
        );
    }
}
