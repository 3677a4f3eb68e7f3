//! Which destination prefixes the client routes through the TUN device.
//!
//! A [`TunnelMode`] says what the user wants (everything, only some prefixes, everything but some
//! prefixes); [`plan`] turns it into a [`RoutePlan`]: the minimal, sorted, non-overlapping list of
//! CIDRs per address family that the driver installs as routes. Installing them, and keeping the
//! edge's own endpoint reachable outside the tunnel ([`must_bypass_tunnel`]), is the driver's job.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::IpAddr;

/// What to send through the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelMode {
    /// All IPv4 and IPv6 traffic.
    Full,
    /// Only traffic to these prefixes.
    SplitInclude(Vec<IpNet>),
    /// All traffic except traffic to these prefixes (in both families).
    SplitExclude(Vec<IpNet>),
}

/// The prefixes to route via the TUN device, per family.
///
/// Each list is sorted by address, has no duplicates or overlaps, and is the smallest list of
/// CIDRs covering exactly the routed addresses. [`TunnelMode::Full`] yields `0.0.0.0/0` and
/// `::/0`; a driver that must not replace the default route splits them itself (for example
/// into two `/1` halves).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutePlan {
    /// IPv4 prefixes, in network byte order of their first address.
    pub v4: Vec<Ipv4Net>,
    /// IPv6 prefixes, in network byte order of their first address.
    pub v6: Vec<Ipv6Net>,
}

impl RoutePlan {
    /// True if `addr` falls inside one of the planned prefixes. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are looked up as the IPv4 address they carry, as the OS sends them.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(v4) => self.v4.iter().any(|net| net.contains(&v4)),
            IpAddr::V6(v6) => self.v6.iter().any(|net| net.contains(&v6)),
        }
    }
}

/// Computes the prefixes to route through the tunnel for `mode`.
///
/// Included prefixes are aggregated (host bits ignored, adjacent and nested prefixes merged);
/// excluded prefixes are subtracted from `0.0.0.0/0` and `::/0`.
pub fn plan(mode: &TunnelMode) -> RoutePlan {
    match mode {
        TunnelMode::Full => RoutePlan {
            v4: vec![Ipv4Net::default()],
            v6: vec![Ipv6Net::default()],
        },
        TunnelMode::SplitInclude(included) => {
            let (v4, v6) = split_families(included);
            RoutePlan {
                v4: Ipv4Net::aggregate(&v4),
                v6: Ipv6Net::aggregate(&v6),
            }
        }
        TunnelMode::SplitExclude(excluded) => {
            let (v4, v6) = split_families(excluded);
            RoutePlan {
                v4: subtract(&[Ipv4Net::default()], &v4),
                v6: subtract(&[Ipv6Net::default()], &v6),
            }
        }
    }
}

/// Derives the tunnel mode from a peer's `AllowedIPs` and a list of prefixes to keep outside.
///
/// The rule, first match wins:
/// 1. `allowed` contains a `/0` (either family) and `exclude` is non-empty:
///    [`TunnelMode::SplitExclude`]`(exclude)`.
/// 2. `allowed` contains a `/0`: [`TunnelMode::Full`].
/// 3. `exclude` is non-empty: [`TunnelMode::SplitInclude`] of `allowed` minus `exclude`
///    (exclusions always win).
/// 4. Otherwise [`TunnelMode::SplitInclude`]`(allowed)`.
///
/// A `/0` in one family captures the other family too, so traffic of a family the tunnel does
/// not carry is dropped rather than leaked around the tunnel.
pub fn mode_from_allowed_ips(allowed: &[IpNet], exclude: &[IpNet]) -> TunnelMode {
    let covers_everything = allowed.iter().any(|net| net.prefix_len() == 0);
    match (covers_everything, exclude.is_empty()) {
        (true, false) => TunnelMode::SplitExclude(exclude.to_vec()),
        (true, true) => TunnelMode::Full,
        (false, false) => {
            let (allowed_v4, allowed_v6) = split_families(allowed);
            let (exclude_v4, exclude_v6) = split_families(exclude);
            let v4 = subtract(&allowed_v4, &exclude_v4)
                .into_iter()
                .map(IpNet::V4);
            let v6 = subtract(&allowed_v6, &exclude_v6)
                .into_iter()
                .map(IpNet::V6);
            TunnelMode::SplitInclude(v4.chain(v6).collect())
        }
        (false, true) => TunnelMode::SplitInclude(allowed.to_vec()),
    }
}

/// True if the edge's own `endpoint` lies inside the planned routes, so the driver must keep
/// the encrypted UDP packets to it outside the tunnel (an fwmark policy rule or a host route via
/// the physical gateway); otherwise they would loop into the TUN device.
pub fn must_bypass_tunnel(plan: &RoutePlan, endpoint: IpAddr) -> bool {
    plan.contains(endpoint)
}

fn split_families(nets: &[IpNet]) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(net) => v4.push(*net),
            IpNet::V6(net) => v6.push(*net),
        }
    }
    (v4, v6)
}

/// An address family's prefix type, seen as an inclusive range of integers.
trait Prefix: Sized {
    /// Address width in bits (32 or 128).
    const BITS: u32;
    fn first(&self) -> u128;
    fn last(&self) -> u128;
    /// Builds the prefix starting at `start` with `host_bits` host bits. `start` must be
    /// aligned to `host_bits` and `host_bits <= BITS`.
    fn from_parts(start: u128, host_bits: u32) -> Self;
}

impl Prefix for Ipv4Net {
    const BITS: u32 = 32;

    fn first(&self) -> u128 {
        u32::from(self.network()).into()
    }

    fn last(&self) -> u128 {
        u32::from(self.broadcast()).into()
    }

    fn from_parts(start: u128, host_bits: u32) -> Self {
        // `start` is at most u32::MAX: it comes from ranges inside the IPv4 space.
        let addr = u32::try_from(start).unwrap_or(u32::MAX);
        // The prefix length is 32 - host_bits, at most 32: `new` cannot fail.
        Ipv4Net::new(addr.into(), prefix_len(Self::BITS, host_bits)).unwrap_or_default()
    }
}

impl Prefix for Ipv6Net {
    const BITS: u32 = 128;

    fn first(&self) -> u128 {
        self.network().into()
    }

    fn last(&self) -> u128 {
        self.broadcast().into()
    }

    fn from_parts(start: u128, host_bits: u32) -> Self {
        // The prefix length is 128 - host_bits, at most 128: `new` cannot fail.
        Ipv6Net::new(start.into(), prefix_len(Self::BITS, host_bits)).unwrap_or_default()
    }
}

fn prefix_len(bits: u32, host_bits: u32) -> u8 {
    u8::try_from(bits.saturating_sub(host_bits)).unwrap_or(u8::MAX)
}

/// `base` minus `excluded`, as the minimal sorted list of CIDRs.
fn subtract<P: Prefix>(base: &[P], excluded: &[P]) -> Vec<P> {
    let excluded = merge(excluded.iter().map(|p| (p.first(), p.last())).collect());
    let mut out = Vec::new();
    for (start, end) in merge(base.iter().map(|p| (p.first(), p.last())).collect()) {
        for (gap_start, gap_end) in gaps(start, end, &excluded) {
            range_to_prefixes(gap_start, gap_end, &mut out);
        }
    }
    out
}

/// Sorts inclusive ranges and merges overlapping and adjacent ones.
fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some((_, last_end)) if start <= last_end.saturating_add(1) => {
                *last_end = (*last_end).max(end);
            }
            Some(_) | None => merged.push((start, end)),
        }
    }
    merged
}

/// The parts of `start..=end` not covered by `holes` (sorted, merged, inclusive ranges).
fn gaps(start: u128, end: u128, holes: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    // The next address not yet accounted for; `None` once past `u128::MAX`.
    let mut cursor = Some(start);
    for &(hole_start, hole_end) in holes {
        let Some(next) = cursor else { break };
        if hole_start > end {
            break;
        }
        if hole_end < next {
            continue;
        }
        if hole_start > next {
            out.push((next, hole_start - 1));
        }
        cursor = hole_end.checked_add(1);
    }
    if let Some(next) = cursor {
        if next <= end {
            out.push((next, end));
        }
    }
    out
}

/// Appends the minimal list of CIDRs covering exactly `start..=end`: at each step, the largest
/// block that starts at `start` (alignment) and does not run past `end` (size).
fn range_to_prefixes<P: Prefix>(mut start: u128, end: u128, out: &mut Vec<P>) {
    loop {
        let aligned_bits = start.trailing_zeros().min(P::BITS);
        let span = end - start; // the block holds span + 1 addresses
        let size_bits = match span.checked_add(1) {
            Some(count) => count.ilog2(),
            None => u128::BITS,
        };
        let host_bits = aligned_bits.min(size_bits);
        out.push(P::from_parts(start, host_bits));
        let block_last = start | low_mask(host_bits);
        if block_last >= end {
            return;
        }
        start = block_last + 1;
    }
}

fn low_mask(host_bits: u32) -> u128 {
    u128::MAX.checked_shr(u128::BITS - host_bits).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v4(nets: &[&str]) -> Vec<Ipv4Net> {
        nets.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn nets(nets: &[&str]) -> Vec<IpNet> {
        nets.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn excluding_ten_slash_eight_leaves_eight_prefixes() {
        let plan = plan(&TunnelMode::SplitExclude(nets(&["10.0.0.0/8"])));
        let expected = v4(&[
            "0.0.0.0/5",
            "8.0.0.0/7",
            "11.0.0.0/8",
            "12.0.0.0/6",
            "16.0.0.0/4",
            "32.0.0.0/3",
            "64.0.0.0/2",
            "128.0.0.0/1",
        ]);
        assert_eq!(plan.v4, expected);
        assert_eq!(plan.v6, vec![Ipv6Net::default()]);
    }

    #[test]
    fn full_mode_routes_both_default_prefixes() {
        let plan = plan(&TunnelMode::Full);
        assert_eq!(plan.v4, v4(&["0.0.0.0/0"]));
        assert_eq!(plan.v6, vec!["::/0".parse::<Ipv6Net>().unwrap()]);
    }

    #[test]
    fn excluding_the_edges_of_the_space_works() {
        let plan = plan(&TunnelMode::SplitExclude(nets(&[
            "0.0.0.0/32",
            "255.255.255.255/32",
            "::/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
        ])));
        assert_eq!(plan.v4.len(), 62);
        assert_eq!(plan.v4.first(), Some(&"0.0.0.1/32".parse().unwrap()));
        assert_eq!(plan.v4.last(), Some(&"255.255.255.254/32".parse().unwrap()));
        assert_eq!(plan.v6.len(), 254);
    }

    #[test]
    fn excluding_everything_routes_nothing() {
        let plan = plan(&TunnelMode::SplitExclude(nets(&["0.0.0.0/0", "::/0"])));
        assert_eq!(plan, RoutePlan::default());
    }

    #[test]
    fn included_prefixes_are_aggregated_and_sorted() {
        let plan = plan(&TunnelMode::SplitInclude(nets(&[
            "10.0.1.0/24",
            "10.0.0.0/24",
            "10.0.0.5/32",
            "192.168.0.0/16",
            "fd00::/8",
            "fd00::/16",
        ])));
        assert_eq!(plan.v4, v4(&["10.0.0.0/23", "192.168.0.0/16"]));
        assert_eq!(plan.v6, vec!["fd00::/8".parse::<Ipv6Net>().unwrap()]);
    }

    #[test]
    fn mode_follows_the_documented_rule() {
        let everything = nets(&["0.0.0.0/0", "::/0"]);
        let lan = nets(&["192.168.0.0/16"]);
        assert_eq!(mode_from_allowed_ips(&everything, &[]), TunnelMode::Full);
        assert_eq!(
            mode_from_allowed_ips(&everything, &lan),
            TunnelMode::SplitExclude(lan.clone())
        );
        assert_eq!(
            mode_from_allowed_ips(&lan, &[]),
            TunnelMode::SplitInclude(lan.clone())
        );
        assert_eq!(
            mode_from_allowed_ips(&nets(&["10.0.0.0/8"]), &nets(&["10.128.0.0/9"])),
            TunnelMode::SplitInclude(nets(&["10.0.0.0/9"]))
        );
    }

    #[test]
    fn endpoint_inside_routes_must_bypass_the_tunnel() {
        let full = plan(&TunnelMode::Full);
        let split = plan(&TunnelMode::SplitInclude(nets(&["10.0.0.0/8"])));
        let endpoint: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(must_bypass_tunnel(&full, endpoint));
        assert!(!must_bypass_tunnel(&split, endpoint));
        assert!(must_bypass_tunnel(
            &split,
            "::ffff:10.1.2.3".parse().unwrap()
        ));
    }
}
