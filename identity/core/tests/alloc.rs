//! Allocator properties.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use identity_core::alloc::{AddressPool, AllocError};
use proptest::prelude::*;

proptest! {
    #[test]
    fn never_returns_used_or_reserved_addresses_and_returns_the_lowest_free(
        used in proptest::collection::btree_set(0u32..64, 0..64),
        used6 in proptest::collection::btree_set(0u128..16, 0..16),
    ) {
        let pool = AddressPool::new("10.9.0.0/26".parse().unwrap(), "fd00:1::/124".parse().unwrap()).unwrap();
        let used: BTreeSet<Ipv4Addr> = used.iter().map(|o| Ipv4Addr::from(0x0a09_0000 + o)).collect();
        let base6 = u128::from("fd00:1::".parse::<Ipv6Addr>().unwrap());
        let used6: BTreeSet<Ipv6Addr> = used6.iter().map(|o| Ipv6Addr::from(base6 + o)).collect();
        match pool.allocate_v4(&used) {
            Ok(a) => {
                let off = u32::from(a) - 0x0a09_0000;
                prop_assert!((2..63).contains(&off), "{a} is reserved");
                prop_assert!(!used.contains(&a));
                for lower in 2..off {
                    prop_assert!(used.contains(&Ipv4Addr::from(0x0a09_0000 + lower)));
                }
            }
            Err(e) => {
                prop_assert_eq!(e, AllocError::Exhausted);
                for off in 2..63 {
                    prop_assert!(used.contains(&Ipv4Addr::from(0x0a09_0000 + off)));
                }
            }
        }
        if let Ok(a) = pool.allocate_v6(&used6) {
            let off = u128::from(a) - base6;
            prop_assert!((2..15).contains(&off));
            prop_assert!(!used6.contains(&a));
        }
    }
}
