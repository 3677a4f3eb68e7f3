//! RFC 8628 device grant scenarios with explicit instants.
#![allow(clippy::unwrap_used)]

use identity_core::device::{DeviceError, DeviceFlow, DeviceFlowConfig, PollError, UserCode};
use identity_core::UnixTime;

const T0: UnixTime = UnixTime(1_700_000_000);
const CLIENT: &str = "gatehouse";

fn at(secs: u64) -> UnixTime {
    T0.plus(secs)
}

fn random(n: u8) -> [u8; 64] {
    let mut r = [n; 64];
    for (i, b) in r.iter_mut().enumerate().skip(32) {
        *b = n.wrapping_mul(7).wrapping_add(i as u8);
    }
    r
}

#[test]
fn approve_then_poll_returns_the_grant_once() {
    let mut flow = DeviceFlow::<&str>::default();
    let auth = flow.start(CLIENT, Some("openid"), &random(1), T0).unwrap();
    assert_eq!((auth.expires_in, auth.interval), (600, 5));
    assert_eq!(auth.device_code.len(), 43);

    assert_eq!(
        flow.poll(&auth.device_code, CLIENT, at(5)),
        Err(PollError::AuthorizationPending)
    );
    let typed = UserCode::parse(&auth.user_code.to_string().to_lowercase()).unwrap();
    let pending = flow.pending(&typed, at(6)).unwrap();
    assert_eq!(pending.scope.as_deref(), Some("openid"));
    flow.approve(&typed, "user-1", at(7)).unwrap();
    assert_eq!(
        flow.approve(&typed, "user-2", at(7)),
        Err(DeviceError::AlreadyDecided)
    );

    assert_eq!(flow.poll(&auth.device_code, CLIENT, at(10)), Ok("user-1"));
    assert_eq!(
        flow.poll(&auth.device_code, CLIENT, at(20)),
        Err(PollError::InvalidGrant)
    );
    assert!(flow.is_empty());
}

#[test]
fn polling_too_fast_slows_down_by_five_seconds_each_time() {
    let mut flow = DeviceFlow::<()>::default();
    let auth = flow.start(CLIENT, None, &random(2), T0).unwrap();
    let dc = auth.device_code.as_str();
    assert_eq!(
        flow.poll(dc, CLIENT, at(5)),
        Err(PollError::AuthorizationPending)
    );
    assert_eq!(flow.poll(dc, CLIENT, at(9)), Err(PollError::SlowDown));
    // Interval is now 10 s, counted from the last poll (at 9).
    assert_eq!(flow.poll(dc, CLIENT, at(18)), Err(PollError::SlowDown));
    // Interval 15 s from 18.
    assert_eq!(
        flow.poll(dc, CLIENT, at(33)),
        Err(PollError::AuthorizationPending)
    );
    assert_eq!(PollError::SlowDown.code(), "slow_down");
}

#[test]
fn denial_and_expiry_are_reported_and_purged() {
    let mut flow = DeviceFlow::<()>::default();
    let denied = flow.start(CLIENT, None, &random(3), T0).unwrap();
    let expiring = flow.start(CLIENT, None, &random(4), T0.plus(100)).unwrap();
    flow.deny(&denied.user_code, at(10)).unwrap();
    assert_eq!(
        flow.poll(&denied.device_code, CLIENT, at(20)),
        Err(PollError::AccessDenied)
    );
    assert_eq!(flow.poll_timeout(), Some(at(600)));

    assert_eq!(
        flow.poll(&expiring.device_code, CLIENT, at(700)),
        Err(PollError::ExpiredToken)
    );
    assert_eq!(
        flow.approve(&expiring.user_code, (), at(700)),
        Err(DeviceError::Expired)
    );
    flow.purge(at(700));
    assert!(flow.is_empty());
    assert_eq!(
        flow.poll(&expiring.device_code, CLIENT, at(701)),
        Err(PollError::InvalidGrant)
    );
    assert_eq!(
        flow.pending(&expiring.user_code, at(701)),
        Err(DeviceError::UnknownUserCode)
    );
}

#[test]
fn another_client_cannot_redeem_and_limits_hold() {
    let mut flow = DeviceFlow::<u8>::new(DeviceFlowConfig {
        max_outstanding: 2,
        ..DeviceFlowConfig::default()
    });
    let a = flow.start(CLIENT, None, &random(5), T0).unwrap();
    flow.approve(&a.user_code, 1, T0).unwrap();
    assert_eq!(
        flow.poll(&a.device_code, "other", at(5)),
        Err(PollError::InvalidGrant)
    );
    flow.start(CLIENT, None, &random(6), T0).unwrap();
    assert_eq!(
        flow.start(CLIENT, None, &random(7), T0),
        Err(DeviceError::TooManyOutstanding)
    );
    // Same random bytes give the same codes: a collision, not a duplicate.
    let mut flow2 = DeviceFlow::<u8>::default();
    flow2.start(CLIENT, None, &random(8), T0).unwrap();
    assert_eq!(
        flow2.start(CLIENT, None, &random(8), T0),
        Err(DeviceError::Collision)
    );
    // Expiry frees room.
    assert!(flow.start(CLIENT, None, &random(7), at(600)).is_ok());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn user_code_display_and_sloppy_input_round_trip(
            idx in proptest::collection::vec(0usize..20, 8),
            lower in proptest::collection::vec(any::<bool>(), 8),
            noise in proptest::collection::vec(prop_oneof![Just(""), Just("-"), Just(" "), Just("\t")], 9),
        ) {
            let alphabet = identity_core::device::USER_CODE_ALPHABET;
            let canonical: String = idx.iter().map(|i| char::from(alphabet[*i])).collect();
            let code = UserCode::parse(&canonical).unwrap();
            prop_assert_eq!(UserCode::parse(&code.to_string()).unwrap(), code.clone());
            let mut sloppy = String::new();
            for (i, c) in canonical.chars().enumerate() {
                sloppy.push_str(noise[i]);
                sloppy.push(if lower[i] { c.to_ascii_lowercase() } else { c });
            }
            sloppy.push_str(noise[8]);
            prop_assert_eq!(UserCode::parse(&sloppy).unwrap(), code);
        }

        #[test]
        fn started_codes_are_always_valid_user_codes(seed in any::<[u8; 32]>(), more in any::<[u8; 32]>()) {
            let mut r = [0u8; 64];
            r[..32].copy_from_slice(&seed);
            r[32..].copy_from_slice(&more);
            let mut flow = DeviceFlow::<()>::default();
            if let Ok(a) = flow.start(CLIENT, None, &r, T0) {
                prop_assert_eq!(UserCode::parse(a.user_code.as_str()).unwrap(), a.user_code);
            }
        }
    }
}
