//! UAPI through its public API: a `get=1` response fed back as a `set=1` recreates the device
//! (what `wg showconf | wg setconf` relies on), and the parser survives plausible but broken
//! requests. Literal parsing and formatting cases are unit tests in `src/uapi.rs`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};
use wg::keys::{PresharedKey, PrivateKey, PublicKey};
use wg::uapi::{format_get, parse_request, DeviceSnapshot, PeerSnapshot, Request, SetRequest};

#[test]
fn get_output_round_trips_through_set() {
    let device = DeviceSnapshot {
        private_key: Some(PrivateKey::from_bytes([1; 32])),
        listen_port: 51820,
        fwmark: Some(7),
        peers: vec![
            PeerSnapshot {
                public_key: PrivateKey::from_bytes([2; 32]).public_key(),
                preshared_key: Some(PresharedKey::from_bytes([3; 32])),
                endpoint: Some("192.0.2.1:51820".parse().unwrap()),
                persistent_keepalive: Some(25),
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap(), "::/0".parse().unwrap()],
                since_last_handshake: Some(Duration::from_secs(3)),
                rx_bytes: 1,
                tx_bytes: 2,
            },
            PeerSnapshot {
                public_key: PrivateKey::from_bytes([4; 32]).public_key(),
                preshared_key: None,
                endpoint: Some("[2001:db8::1]:443".parse().unwrap()),
                persistent_keepalive: None,
                allowed_ips: vec![],
                since_last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            },
        ],
    };

    assert_round_trip(&device);
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parse_never_panics_on_plausible_set_requests(text in arb_set_text()) {
        let _ = parse_request(&text);
    }

    #[test]
    fn any_snapshot_round_trips_through_set(
        private_key in proptest::option::of(any::<[u8; 32]>()),
        listen_port in any::<u16>(),
        fwmark in proptest::option::of(any::<u32>()),
        peers in proptest::collection::vec(arb_peer(), 0..4),
    ) {
        let device = DeviceSnapshot {
            private_key: private_key.map(PrivateKey::from_bytes),
            listen_port,
            fwmark,
            peers,
        };
        assert_round_trip(&device);
    }
}

fn assert_round_trip(device: &DeviceSnapshot) {
    let text = format_get(device, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
    let set = parse_set(&get_to_set(&text));

    assert_eq!(
        set.private_key.flatten().map(|key| key.to_hex()),
        device
            .private_key
            .as_ref()
            .map(PrivateKey::to_hex)
            .filter(|hex| hex.bytes().any(|digit| digit != b'0'))
    );
    assert_eq!(set.listen_port, Some(device.listen_port));
    assert_eq!(
        set.fwmark.flatten(),
        device.fwmark.filter(|mark| *mark != 0)
    );
    assert!(!set.replace_peers);
    assert_eq!(set.peers.len(), device.peers.len());
    for (update, peer) in set.peers.iter().zip(&device.peers) {
        assert_eq!(update.public_key, peer.public_key);
        assert!(!update.remove && !update.update_only && !update.replace_allowed_ips);
        assert_eq!(
            update.preshared_key.clone().flatten(),
            peer.preshared_key.clone().filter(|key| !key.is_zero())
        );
        assert_eq!(update.endpoint, peer.endpoint);
        assert_eq!(
            update.persistent_keepalive.flatten(),
            peer.persistent_keepalive.filter(|seconds| *seconds != 0)
        );
        let expected_ips: Vec<IpNet> = peer.allowed_ips.iter().map(IpNet::trunc).collect();
        assert_eq!(update.allowed_ips, expected_ips);
    }
}

fn parse_set(text: &str) -> SetRequest {
    match parse_request(text) {
        Ok(Request::Set(set)) => set,
        other => panic!("expected a set request, got {other:?} for {text:?}"),
    }
}

/// Turns a get response into the set request that recreates it, the way `wg showconf` piped
/// into `wg setconf` does: the statistics are read-only, everything else is settable.
fn get_to_set(text: &str) -> String {
    const READ_ONLY: [&str; 4] = [
        "last_handshake_time_sec=",
        "last_handshake_time_nsec=",
        "tx_bytes=",
        "rx_bytes=",
    ];
    let settable = text
        .lines()
        .filter(|line| !READ_ONLY.iter().any(|prefix| line.starts_with(prefix)));
    std::iter::once("set=1")
        .chain(settable)
        .map(|line| format!("{line}\n"))
        .collect()
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
    ]
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    (arb_ip(), any::<u8>()).prop_map(|(ip, prefix)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpNet::new(ip, prefix % (max + 1)).unwrap()
    })
}

fn arb_peer() -> impl Strategy<Value = PeerSnapshot> {
    (
        any::<[u8; 32]>(),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of((arb_ip(), any::<u16>())),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(arb_net(), 0..4),
        proptest::option::of(any::<u64>()),
        any::<(u64, u64)>(),
    )
        .prop_map(
            |(public_key, psk, endpoint, keepalive, allowed_ips, since, (rx_bytes, tx_bytes))| {
                PeerSnapshot {
                    public_key: PublicKey::from_bytes(public_key),
                    preshared_key: psk.map(PresharedKey::from_bytes),
                    endpoint: endpoint.map(SocketAddr::from),
                    persistent_keepalive: keepalive,
                    allowed_ips,
                    since_last_handshake: since.map(Duration::from_nanos),
                    rx_bytes,
                    tx_bytes,
                }
            },
        )
}

/// Lines built from real keys with arbitrary values reach deeper than arbitrary text.
fn arb_set_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("private_key"),
        Just("listen_port"),
        Just("fwmark"),
        Just("replace_peers"),
        Just("public_key"),
        Just("remove"),
        Just("update_only"),
        Just("preshared_key"),
        Just("endpoint"),
        Just("persistent_keepalive_interval"),
        Just("replace_allowed_ips"),
        Just("allowed_ip"),
        Just("protocol_version"),
    ];
    let value = prop_oneof![
        "[0-9a-fA-F]{64}",
        "[0-9]{0,12}",
        Just("true".to_owned()),
        "\\[?[0-9a-f:.%]{0,40}\\]?:?[0-9]{0,6}",
        "[0-9a-f:.]{0,40}/[0-9]{0,4}",
        "\\PC{0,20}",
    ];
    proptest::collection::vec((key, value), 0..12).prop_map(|lines| {
        let mut text = String::from("set=1\n");
        for (key, value) in lines {
            text.push_str(&format!("{key}={value}\n"));
        }
        text
    })
}
