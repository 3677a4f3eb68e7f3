//! wg-quick property tests: `parse` never panics, and emit → parse round-trips generated configs.
#![allow(clippy::unwrap_used)]

use client_core::wg_quick::{
    parse, to_string, DnsEntry, Endpoint, InterfaceSection, PeerSection, WgQuickConfig,
};
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use wg::keys::{PresharedKey, PrivateKey, PublicKey};

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0..=32u8).prop_map(|(a, len)| IpNet::new(
            IpAddr::from(a.to_be_bytes()),
            len
        )
        .unwrap()),
        (any::<u128>(), 0..=128u8).prop_map(|(a, len)| IpNet::new(
            IpAddr::from(a.to_be_bytes()),
            len
        )
        .unwrap()),
    ]
}

fn arb_token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,2}"
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(a, port)| Endpoint::Addr(SocketAddr::new(
            IpAddr::from(a.to_be_bytes()),
            port
        ))),
        (any::<u128>(), any::<u16>(), any::<u32>()).prop_map(|(a, port, scope)| {
            Endpoint::Addr(SocketAddr::V6(SocketAddrV6::new(a.into(), port, 0, scope)))
        }),
        (arb_token(), any::<u16>()).prop_map(|(host, port)| Endpoint::Host { host, port }),
    ]
}

fn arb_peer() -> impl Strategy<Value = PeerSection> {
    (
        any::<[u8; 32]>(),
        proptest::option::of(any::<[u8; 32]>().prop_filter("zero means none", |b| b != &[0; 32])),
        proptest::collection::vec(arb_net(), 0..4),
        proptest::option::of(arb_endpoint()),
        proptest::option::of(1..=u16::MAX),
    )
        .prop_map(
            |(key, psk, allowed_ips, endpoint, persistent_keepalive)| PeerSection {
                public_key: PrivateKey::from_bytes(key).public_key(),
                preshared_key: psk.map(PresharedKey::from_bytes),
                allowed_ips,
                endpoint,
                persistent_keepalive,
            },
        )
}

fn arb_command() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ;%/._|=-]{0,30}".prop_map(|s| s.trim().to_owned())
}

fn arb_interface() -> impl Strategy<Value = InterfaceSection> {
    let commands = || proptest::collection::vec(arb_command(), 0..3);
    (
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(arb_net(), 0..4),
            proptest::option::of(any::<u16>()),
            proptest::collection::vec(
                prop_oneof![
                    any::<IpAddr>().prop_map(DnsEntry::Server),
                    arb_token().prop_map(DnsEntry::SearchDomain),
                ],
                0..4,
            ),
            proptest::option::of(any::<u16>()),
            proptest::option::of(1..=u32::MAX),
            proptest::option::of(prop_oneof![
                Just("off".to_owned()),
                Just("auto".to_owned()),
                "[0-9]{1,5}",
                arb_token()
            ]),
        ),
        (commands(), commands(), commands(), commands()),
    )
        .prop_map(
            |((key, addresses, listen_port, dns, mtu, fwmark, table), hooks)| InterfaceSection {
                private_key: PrivateKey::from_bytes(key),
                addresses,
                listen_port,
                dns,
                mtu,
                fwmark,
                table,
                pre_up: hooks.0,
                post_up: hooks.1,
                pre_down: hooks.2,
                post_down: hooks.3,
            },
        )
}

fn arb_config() -> impl Strategy<Value = WgQuickConfig> {
    (arb_interface(), proptest::collection::vec(arb_peer(), 0..4))
        .prop_filter(
            "peer keys are unique and not the interface's",
            |(iface, peers)| {
                let mut keys: Vec<PublicKey> = peers.iter().map(|p| p.public_key).collect();
                keys.push(iface.private_key.public_key());
                keys.sort();
                keys.windows(2).all(|w| w[0] != w[1])
            },
        )
        .prop_map(|(interface, peers)| WgQuickConfig { interface, peers })
}

/// Lines that look like wg-quick, so the fuzzing reaches past the first error.
fn arb_line() -> impl Strategy<Value = String> {
    let keys = [
        "PrivateKey",
        "PublicKey",
        "PresharedKey",
        "Address",
        "AllowedIPs",
        "DNS",
        "Endpoint",
        "ListenPort",
        "MTU",
        "FwMark",
        "Table",
        "PersistentKeepalive",
        "PostUp",
        "SaveConfig",
    ];
    let valid_key = any::<[u8; 32]>().prop_map(|b| PrivateKey::from_bytes(b).to_base64());
    prop_oneof![
        Just("[Interface]".to_owned()),
        Just("[Peer]".to_owned()),
        (proptest::sample::select(keys.to_vec()), "[ -~]{0,40}")
            .prop_map(|(k, v)| format!("{k} = {v}")),
        (
            proptest::sample::select(vec!["PrivateKey", "PublicKey"]),
            valid_key
        )
            .prop_map(|(k, v)| format!("{k} = {v}")),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn parse_never_panics_on_plausible_lines(lines in proptest::collection::vec(arb_line(), 0..24)) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn emitted_configs_parse_back_equal(config in arb_config()) {
        let text = to_string(&config).unwrap();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_same(&config, &parsed);
    }
}

/// Asserts field-by-field equality; `PrivateKey` has no `PartialEq`, so it is compared as base64.
fn assert_same(a: &WgQuickConfig, b: &WgQuickConfig) {
    let InterfaceSection {
        private_key,
        addresses,
        listen_port,
        dns,
        mtu,
        fwmark,
        table,
        pre_up,
        post_up,
        pre_down,
        post_down,
    } = &a.interface;
    let other = &b.interface;
    assert_eq!(private_key.to_base64(), other.private_key.to_base64());
    assert_eq!(addresses, &other.addresses);
    assert_eq!(listen_port, &other.listen_port);
    assert_eq!(dns, &other.dns);
    assert_eq!(mtu, &other.mtu);
    assert_eq!(fwmark, &other.fwmark);
    assert_eq!(table, &other.table);
    assert_eq!(pre_up, &other.pre_up);
    assert_eq!(post_up, &other.post_up);
    assert_eq!(pre_down, &other.pre_down);
    assert_eq!(post_down, &other.post_down);
    assert_eq!(a.peers, b.peers);
}
