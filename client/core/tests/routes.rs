//! Route planning properties (known answers live in `src/routes.rs`): a plan covers exactly the addresses it should, with sorted,
//! non-overlapping, maximal prefixes.
#![allow(clippy::unwrap_used)]

use client_core::routes::{mode_from_allowed_ips, must_bypass_tunnel, plan, RoutePlan, TunnelMode};
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Prefixes with lengths spread over the whole range; v6 addresses share a few high bits so
/// that random prefixes overlap and nest often.
fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0..=32u8)
            .prop_map(|(a, len)| IpNet::new(Ipv4Addr::from(a).into(), len).unwrap()),
        (any::<u128>(), 0..=128u8).prop_map(|(a, len)| {
            let a = (a >> 4) | (0x2u128 << 124);
            IpNet::new(Ipv6Addr::from(a).into(), len).unwrap()
        }),
    ]
}

/// Addresses at and around every prefix edge, plus the random extra ones.
fn probes(nets: &[IpNet], extra: &[IpAddr]) -> Vec<IpAddr> {
    let mut out = extra.to_vec();
    for net in nets {
        for edge in [net.network(), net.broadcast()] {
            out.push(edge);
            match edge {
                IpAddr::V4(a) => {
                    let a = u32::from(a);
                    out.push(Ipv4Addr::from(a.wrapping_sub(1)).into());
                    out.push(Ipv4Addr::from(a.wrapping_add(1)).into());
                }
                IpAddr::V6(a) => {
                    let a = u128::from(a);
                    out.push(Ipv6Addr::from(a.wrapping_sub(1)).into());
                    out.push(Ipv6Addr::from(a.wrapping_add(1)).into());
                }
            }
        }
    }
    out
}

/// The reference answer; IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn in_any(nets: &[IpNet], addr: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&addr.to_canonical()))
}

fn all_prefixes(plan: &RoutePlan) -> Vec<IpNet> {
    let v4 = plan.v4.iter().copied().map(IpNet::V4);
    v4.chain(plan.v6.iter().copied().map(IpNet::V6)).collect()
}

/// Sorted, truncated, and each prefix ends before the next begins.
fn assert_sorted_disjoint(plan: &RoutePlan) {
    assert!(plan.v4.iter().all(|n| *n == n.trunc()));
    assert!(plan.v6.iter().all(|n| *n == n.trunc()));
    for pair in plan.v4.windows(2) {
        assert!(pair[0].broadcast() < pair[1].network(), "{pair:?}");
    }
    for pair in plan.v6.windows(2) {
        assert!(pair[0].broadcast() < pair[1].network(), "{pair:?}");
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

proptest! {
    #[test]
    fn exclude_plan_covers_exactly_the_non_excluded_addresses(
        excluded in proptest::collection::vec(arb_net(), 0..8),
        extra in proptest::collection::vec(any::<IpAddr>(), 0..16),
    ) {
        let plan = plan(&TunnelMode::SplitExclude(excluded.clone()));
        assert_sorted_disjoint(&plan);
        for addr in probes(&excluded, &extra) {
            prop_assert_eq!(plan.contains(addr), !in_any(&excluded, addr), "{}", addr);
            prop_assert_eq!(must_bypass_tunnel(&plan, addr), plan.contains(addr));
        }
        // Minimal: no prefix could be widened, since its supernet touches an exclusion.
        for net in all_prefixes(&plan) {
            if let Some(parent) = net.supernet() {
                prop_assert!(excluded.iter().any(|e| overlaps(&parent, e)), "{} not maximal", net);
            }
        }
    }

    #[test]
    fn include_plan_covers_exactly_the_included_addresses(
        included in proptest::collection::vec(arb_net(), 0..8),
        extra in proptest::collection::vec(any::<IpAddr>(), 0..16),
    ) {
        let plan = plan(&TunnelMode::SplitInclude(included.clone()));
        assert_sorted_disjoint(&plan);
        for addr in probes(&included, &extra) {
            prop_assert_eq!(plan.contains(addr), in_any(&included, addr), "{}", addr);
        }
    }

    #[test]
    fn exclusions_always_win_in_derived_modes(
        allowed in proptest::collection::vec(arb_net(), 0..6),
        excluded in proptest::collection::vec(arb_net(), 0..6),
        extra in proptest::collection::vec(any::<IpAddr>(), 0..16),
    ) {
        let mode = mode_from_allowed_ips(&allowed, &excluded);
        let plan = plan(&mode);
        assert_sorted_disjoint(&plan);
        let everything = allowed.iter().any(|n| n.prefix_len() == 0);
        let mut nets = allowed.clone();
        nets.extend(&excluded);
        for addr in probes(&nets, &extra) {
            let expected = (everything || in_any(&allowed, addr)) && !in_any(&excluded, addr);
            prop_assert_eq!(plan.contains(addr), expected, "{} in {:?}", addr, mode);
        }
    }
}
