//! Enrollment messages against literal JSON, and the wg-quick file a profile renders to, read
//! back through `wg_quick::parse`.
#![allow(clippy::unwrap_used)]

use client_core::enroll::{
    wg_quick_config, Edge, EnrollError, EnrollRequest, EnrollResponse, Posture, Profile,
    PERSISTENT_KEEPALIVE_SECS,
};
use client_core::wg_quick::{parse, DnsEntry, Endpoint};
use ipnet::IpNet;
use wg::keys::{KeyError, PrivateKey};

fn private(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes([seed; 32])
}

fn nets(items: &[&str]) -> Vec<IpNet> {
    items.iter().map(|n| n.parse().unwrap()).collect()
}

fn edge(name: &str, endpoint: &str, seed: u8) -> Edge {
    Edge {
        name: name.into(),
        endpoint: endpoint.into(),
        public_key: private(seed).public_key().to_base64(),
        region: Some("eu-west".into()),
    }
}

fn profile() -> Profile {
    Profile {
        addresses: nets(&["100.64.0.2/32", "fd7a:115c::2/128"]),
        edges: vec![
            edge("fra", "edge-fra.example.com:51820", 2),
            edge("ams", "[2001:db8::7]:51820", 3),
        ],
        routes: vec![
            "10.0.0.0/8".into(),
            "app.example.com".into(),
            "192.168.7.9".into(),
            "fd00:1::/64".into(),
        ],
        dns: vec!["100.64.0.1".into(), "corp.example".into()],
        mtu: None,
    }
}

fn key() -> String {
    private(1).to_base64()
}

#[test]
fn rendered_file_round_trips_with_the_first_edge_by_default() {
    let text = wg_quick_config(&profile(), &key(), None).unwrap();

    let config = parse(&text).unwrap();
    let iface = &config.interface;
    assert_eq!(iface.private_key.to_base64(), key());
    assert_eq!(
        iface.addresses,
        nets(&["100.64.0.2/32", "fd7a:115c::2/128"])
    );
    assert_eq!(
        iface.dns,
        vec![
            DnsEntry::Server("100.64.0.1".parse().unwrap()),
            DnsEntry::SearchDomain("corp.example".into()),
        ]
    );
    assert_eq!(config.peers.len(), 1);
    let peer = &config.peers[0];
    assert_eq!(peer.public_key, private(2).public_key());
    assert_eq!(
        peer.endpoint,
        Some(Endpoint::Host {
            host: "edge-fra.example.com".into(),
            port: 51820
        })
    );
    assert_eq!(
        peer.allowed_ips,
        nets(&["10.0.0.0/8", "192.168.7.9/32", "fd00:1::/64"])
    );
    assert_eq!(peer.persistent_keepalive, Some(PERSISTENT_KEEPALIVE_SECS));
    assert_eq!(peer.persistent_keepalive, Some(25));
}

#[test]
fn profile_from_identity_json_renders_addresses_edge_routes_dns_and_mtu() {
    let json = format!(
        r#"{{"addresses":["100.64.0.7/32","fd7a:115c::7/128"],
            "edges":[{{"name":"test1","endpoint":"10.201.0.1:51820","public_key":"{}",
                       "region":"local"}}],
            "routes":["10.202.0.0/24","intranet.example.com"],"dns":["10.0.0.53"],
            "mtu":1380,"future_field":true}}"#,
        private(2).public_key().to_base64()
    );
    let profile: Profile = serde_json::from_str(&json).unwrap();

    let config = parse(&wg_quick_config(&profile, &key(), None).unwrap()).unwrap();

    assert_eq!(
        config.interface.addresses,
        nets(&["100.64.0.7/32", "fd7a:115c::7/128"])
    );
    assert_eq!(config.interface.mtu, Some(1380));
    assert_eq!(
        config.interface.dns,
        vec![DnsEntry::Server("10.0.0.53".parse().unwrap())]
    );
    let peer = &config.peers[0];
    assert_eq!(
        peer.endpoint,
        Some(Endpoint::Addr("10.201.0.1:51820".parse().unwrap()))
    );
    assert_eq!(peer.public_key, private(2).public_key());
    assert_eq!(peer.allowed_ips, nets(&["10.202.0.0/24"]));
}

#[test]
fn profile_without_mtu_leaves_it_to_the_client() {
    let config = parse(&wg_quick_config(&profile(), &key(), None).unwrap()).unwrap();

    assert_eq!(config.interface.mtu, None);
    let zero = Profile {
        mtu: Some(0),
        ..profile()
    };
    let config = parse(&wg_quick_config(&zero, &key(), None).unwrap()).unwrap();
    assert_eq!(config.interface.mtu, None);
}

#[test]
fn named_edge_is_chosen() {
    let text = wg_quick_config(&profile(), &key(), Some("ams")).unwrap();

    let peer = &parse(&text).unwrap().peers[0];
    assert_eq!(peer.public_key, private(3).public_key());
    assert_eq!(
        peer.endpoint,
        Some(Endpoint::Addr("[2001:db8::7]:51820".parse().unwrap()))
    );
}

#[test]
fn empty_routes_mean_a_full_tunnel() {
    let mut profile = profile();
    profile.routes.clear();
    profile.dns.clear();

    let text = wg_quick_config(&profile, &key(), None).unwrap();

    let config = parse(&text).unwrap();
    assert!(config.interface.dns.is_empty());
    assert!(!text.contains("DNS"));
    assert_eq!(config.peers[0].allowed_ips, nets(&["0.0.0.0/0", "::/0"]));
}

#[test]
fn profile_without_addresses_is_rejected() {
    let mut profile = profile();
    profile.addresses.clear();

    let err = wg_quick_config(&profile, &key(), None).unwrap_err();

    assert_eq!(err, EnrollError::NoAddresses);
    assert_eq!(err.to_string(), "the profile has no addresses");
}

#[test]
fn profile_without_edges_is_rejected_with_or_without_a_name() {
    let mut profile = profile();
    profile.edges.clear();

    assert_eq!(
        wg_quick_config(&profile, &key(), None).unwrap_err(),
        EnrollError::NoEdges
    );
    assert_eq!(
        wg_quick_config(&profile, &key(), Some("fra")).unwrap_err(),
        EnrollError::NoEdges
    );
}

#[test]
fn unknown_edge_name_lists_the_known_ones() {
    let err = wg_quick_config(&profile(), &key(), Some("nyc")).unwrap_err();

    assert_eq!(
        err.to_string(),
        "no edge named \"nyc\" in the profile (edges: fra, ams)"
    );
}

#[test]
fn bad_endpoints_are_rejected() {
    for endpoint in [
        "",
        "edge.example.com",
        "edge.example.com:0",
        "edge.example.com:99999",
        "2001:db8::1:51820",
        "[2001:db8::1]",
        "edge example.com:51820",
        "edge#x:51820",
        ":51820",
        "[::1]:",
    ] {
        let mut profile = profile();
        profile.edges[0].endpoint = endpoint.into();

        let err = wg_quick_config(&profile, &key(), None).unwrap_err();

        assert_eq!(
            err,
            EnrollError::InvalidEndpoint { edge: "fra".into() },
            "{endpoint:?}"
        );
    }
}

#[test]
fn bad_edge_keys_are_rejected() {
    let mut profile = profile();
    profile.edges[0].public_key = "not base64!".into();
    assert!(matches!(
        wg_quick_config(&profile, &key(), None).unwrap_err(),
        EnrollError::InvalidEdgeKey { edge, source: KeyError::Base64 } if edge == "fra"
    ));

    profile.edges[0].public_key = wg::keys::PublicKey::from_bytes([0; 32]).to_base64();
    assert!(matches!(
        wg_quick_config(&profile, &key(), None).unwrap_err(),
        EnrollError::InvalidEdgeKey {
            source: KeyError::LowOrder,
            ..
        }
    ));

    profile.edges[0].public_key = private(1).public_key().to_base64();
    assert_eq!(
        wg_quick_config(&profile, &key(), None).unwrap_err(),
        EnrollError::EdgeKeyIsOwn { edge: "fra".into() }
    );
}

#[test]
fn bad_private_key_is_rejected_without_echoing_it() {
    let err = wg_quick_config(&profile(), "c2VjcmV0", None).unwrap_err();

    assert_eq!(err, EnrollError::InvalidPrivateKey(KeyError::Length(6)));
    assert!(!err.to_string().contains("c2VjcmV0"));
}

#[test]
fn bad_dns_entries_are_rejected() {
    for entry in ["10.0.0.300", "corp example", "a,b", "fe80::zz"] {
        let mut profile = profile();
        profile.dns = vec![entry.into()];

        let err = wg_quick_config(&profile, &key(), None).unwrap_err();

        assert_eq!(
            err,
            EnrollError::InvalidDns {
                entry: entry.into()
            }
        );
    }
}

#[test]
fn enroll_response_with_unknown_fields_parses() {
    let json = r#"{
        "device_id": "dev_01",
        "device_token": "eyJhbGciOiJFZERTQSJ9.e30.sig",
        "expires_at": 1700000000,
        "profile": {
            "addresses": ["100.64.0.2/32", "fd7a:115c::2/128"],
            "edges": [
                {"name": "fra", "endpoint": "edge.example.com:51820",
                 "public_key": "AAAA", "region": "eu", "weight": 3}
            ],
            "routes": ["10.0.0.0/8", "app.example.com"],
            "dns": ["100.64.0.1"],
            "mtu": 1280
        }
    }"#;

    let response: EnrollResponse = serde_json::from_str(json).unwrap();

    assert_eq!(response.device_id, "dev_01");
    assert_eq!(
        response.device_token.expose(),
        "eyJhbGciOiJFZERTQSJ9.e30.sig"
    );
    assert_eq!(
        response.profile.addresses,
        nets(&["100.64.0.2/32", "fd7a:115c::2/128"])
    );
    assert_eq!(response.profile.edges[0].name, "fra");
    assert_eq!(response.profile.edges[0].region.as_deref(), Some("eu"));
    assert_eq!(response.profile.routes, ["10.0.0.0/8", "app.example.com"]);
    assert_eq!(response.profile.dns, ["100.64.0.1"]);
}

#[test]
fn enroll_response_missing_optional_fields_defaults() {
    let json = r#"{"device_id":"d","device_token":"t","profile":{
        "addresses":["100.64.0.9/32"],
        "edges":[{"name":"e","endpoint":"192.0.2.1:51820","public_key":"k"}]}}"#;

    let response: EnrollResponse = serde_json::from_str(json).unwrap();

    assert!(response.profile.routes.is_empty());
    assert!(response.profile.dns.is_empty());
    assert_eq!(response.profile.edges[0].region, None);
}

#[test]
fn device_token_is_redacted_in_debug() {
    let json = r#"{"device_id":"d","device_token":"secret-jwt","profile":{}}"#;

    let response: EnrollResponse = serde_json::from_str(json).unwrap();

    let debug = format!("{response:?}");
    assert!(!debug.contains("secret-jwt"), "{debug}");
    assert!(debug.contains("DeviceToken(..)"));
}

#[test]
fn enroll_request_serializes_as_the_contract_shows() {
    let request = EnrollRequest {
        public_key: "S2V5".into(),
        posture: Posture {
            os: "linux".into(),
            os_version: "6.1".into(),
            hostname: "h".into(),
            client_version: "0.1.0".into(),
        },
    };

    let json = serde_json::to_string(&request).unwrap();

    assert_eq!(
        json,
        r#"{"public_key":"S2V5","posture":{"os":"linux","os_version":"6.1","hostname":"h","client_version":"0.1.0"}}"#
    );
}
