//! `gatehouse status`: the login part built from a saved device state, the tunnel part from a
//! UAPI `get=1` body, the text rendering and the JSON field names scripts rely on.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use client_core::device_state::DeviceState;
use client_core::enroll::{DeviceToken, Edge, Posture, Profile};
use client_core::status::{render_text, utc, LoginStatus, Status, TunnelStatus, STATUS_FORMAT};
use wg::keys::PrivateKey;

fn public(seed: u8) -> wg::keys::PublicKey {
    PrivateKey::from_bytes([seed; 32]).public_key()
}

fn state() -> DeviceState {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = serde_json::json!({
        "email": "alice@example.com", "login_method": "pwd",
        "auth_time": 1_700_000_000, "exp": 1_702_592_000,
    });
    let edge = |name: &str, endpoint: &str, seed: u8| Edge {
        name: name.into(),
        endpoint: endpoint.into(),
        public_key: public(seed).to_base64(),
        region: Some("eu".into()),
    };
    DeviceState {
        version: 1,
        identity: "https://id.example.com/".into(),
        device_id: "dev_42".into(),
        device_token: DeviceToken::new(format!("e30.{}.c2ln", b64(claims.to_string().as_bytes()))),
        public_key: public(1).to_base64(),
        profile: Profile {
            addresses: vec![
                "100.64.0.2/32".parse().unwrap(),
                "fd7a::2/128".parse().unwrap(),
            ],
            edges: vec![
                edge("fra", "192.0.2.1:51820", 2),
                edge("ams", "192.0.2.2:51820", 3),
            ],
            routes: vec!["10.0.0.0/8".into()],
            dns: vec!["10.0.0.53".into()],
            mtu: None,
        },
        edge: Some("ams".into()),
        posture: Some(Posture {
            os: "linux".into(),
            os_version: "6.1.0".into(),
            hostname: "laptop".into(),
            client_version: "0.1.0".into(),
        }),
        enrolled_at: Some(1_700_000_010),
        profile_updated_at: None,
    }
}

fn uapi_body() -> String {
    format!(
        "listen_port=40000\npublic_key={}\nendpoint=192.0.2.2:51820\nlast_handshake_time_sec=990\n\
         last_handshake_time_nsec=0\ntx_bytes=300\nrx_bytes=200\npersistent_keepalive_interval=25\n\
         allowed_ip=10.0.0.0/8\nprotocol_version=1\npublic_key={}\ntx_bytes=0\nrx_bytes=0\n\
         last_handshake_time_sec=0\n",
        public(3).to_hex(),
        public(4).to_hex()
    )
}

#[test]
fn login_status_shows_user_device_chosen_edge_and_posture() {
    let login = LoginStatus::from_state(&state());

    assert_eq!(login.user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(login.user.login_method.as_deref(), Some("pwd"));
    assert_eq!(login.user.auth_time, Some(1_700_000_000));
    assert_eq!(login.device.id, "dev_42");
    assert_eq!(login.device.hostname.as_deref(), Some("laptop"));
    let edge = login.edge.unwrap();
    assert_eq!(edge.name, "ams");
    assert_eq!(edge.endpoint, "192.0.2.2:51820");
    assert_eq!(login.posture.unwrap().os_version, "6.1.0");
    assert_eq!(login.token_expires_at, Some(1_702_592_000));
}

#[test]
fn without_a_chosen_edge_the_profiles_first_is_shown() {
    let state = DeviceState {
        edge: None,
        ..state()
    };

    assert_eq!(LoginStatus::from_state(&state).edge.unwrap().name, "fra");
}

#[test]
fn tunnel_status_reads_the_uapi_body() {
    let tunnel = TunnelStatus::from_uapi("gh0", &uapi_body());

    assert!(tunnel.up);
    assert_eq!(tunnel.listen_port, Some(40000));
    assert_eq!(tunnel.peers.len(), 2);
    let peer = &tunnel.peers[0];
    assert_eq!(peer.public_key, public(3).to_base64());
    assert_eq!(peer.endpoint.as_deref(), Some("192.0.2.2:51820"));
    assert_eq!(peer.allowed_ips, vec!["10.0.0.0/8"]);
    assert_eq!(peer.latest_handshake, Some(990));
    assert_eq!((peer.rx_bytes, peer.tx_bytes), (200, 300));
    assert_eq!(peer.persistent_keepalive, Some(25));
    assert_eq!(tunnel.peers[1].latest_handshake, None);
}

#[test]
fn text_shows_the_login_and_the_tunnel_like_wg_show() {
    let status = Status {
        format: STATUS_FORMAT,
        state_dir: Some("/state".into()),
        login: Some(LoginStatus::from_state(&state())),
        tunnel: TunnelStatus::from_uapi("gh0", &uapi_body()),
    };

    let text = render_text(&status, 1_000);

    for expected in [
        "login:\n",
        "  user: alice@example.com\n",
        "  login method: pwd at 2023-11-14T22:13:20Z\n",
        "  identity: https://id.example.com/\n",
        "  device: dev_42 (laptop)\n",
        &format!(
            "  edge: ams 192.0.2.2:51820 ({}, eu)\n",
            public(3).to_base64()
        ),
        "  addresses: 100.64.0.2/32, fd7a::2/128\n",
        "  routes: 10.0.0.0/8\n",
        "  dns: 10.0.0.53\n",
        "  posture: os=linux os_version=6.1.0 client_version=0.1.0 hostname=laptop\n",
        "  profile updated: at enrollment\n",
        "tunnel: up\ninterface: gh0\n  listening port: 40000\n",
        &format!(
            "\npeer: {}\n  endpoint: 192.0.2.2:51820\n",
            public(3).to_base64()
        ),
        "  allowed ip: 10.0.0.0/8\n  received bytes: 200\n  sent bytes: 300\n",
        "  latest handshake: 10 seconds ago\n",
        "  latest handshake: never\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[test]
fn text_without_a_tunnel_says_down_and_without_a_login_says_so() {
    let logged_in = Status {
        format: STATUS_FORMAT,
        state_dir: Some("/state".into()),
        login: Some(LoginStatus::from_state(&state())),
        tunnel: TunnelStatus::down("gh0"),
    };
    assert!(render_text(&logged_in, 0).ends_with("tunnel: down (interface gh0)\n"));

    let anonymous = Status {
        login: None,
        tunnel: TunnelStatus::from_uapi("gh0", &uapi_body()),
        ..logged_in
    };
    let text = render_text(&anonymous, 0);
    assert!(text.starts_with("login: none in /state (run `gatehouse login`)\ntunnel: up\n"));
}

#[test]
fn server_chosen_text_cannot_reach_the_terminal_as_escapes() {
    let mut state = state();
    state.profile.edges[1].region = Some("\u{1b}[2Jeu".into());

    let text = render_text(
        &Status {
            format: STATUS_FORMAT,
            state_dir: None,
            login: Some(LoginStatus::from_state(&state)),
            tunnel: TunnelStatus::down("gh0"),
        },
        0,
    );

    assert!(!text.contains('\u{1b}'), "{text}");
}

#[test]
fn json_field_names_are_stable() {
    let status = Status {
        format: STATUS_FORMAT,
        state_dir: Some("/state".into()),
        login: Some(LoginStatus::from_state(&state())),
        tunnel: TunnelStatus::from_uapi("gh0", &uapi_body()),
    };

    let json = serde_json::to_value(&status).unwrap();

    assert_eq!(json["format"], 1);
    assert_eq!(json["state_dir"], "/state");
    let login = &json["login"];
    assert_eq!(login["identity"], "https://id.example.com/");
    assert_eq!(login["user"]["email"], "alice@example.com");
    assert_eq!(login["user"]["login_method"], "pwd");
    assert_eq!(login["user"]["auth_time"], 1_700_000_000);
    assert_eq!(login["device"]["id"], "dev_42");
    assert_eq!(login["device"]["hostname"], "laptop");
    assert_eq!(login["device"]["public_key"], public(1).to_base64());
    assert_eq!(login["edge"]["name"], "ams");
    assert_eq!(login["edge"]["endpoint"], "192.0.2.2:51820");
    assert_eq!(login["edge"]["public_key"], public(3).to_base64());
    assert_eq!(login["edge"]["region"], "eu");
    assert_eq!(
        login["addresses"],
        serde_json::json!(["100.64.0.2/32", "fd7a::2/128"])
    );
    assert_eq!(login["routes"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(login["dns"], serde_json::json!(["10.0.0.53"]));
    assert_eq!(
        login["posture"],
        serde_json::json!({"os": "linux", "os_version": "6.1.0", "hostname": "laptop",
                           "client_version": "0.1.0"})
    );
    assert_eq!(login["enrolled_at"], 1_700_000_010);
    assert_eq!(login["profile_updated_at"], serde_json::Value::Null);
    assert_eq!(login["token_expires_at"], 1_702_592_000);
    let tunnel = &json["tunnel"];
    assert_eq!(tunnel["interface"], "gh0");
    assert_eq!(tunnel["up"], true);
    assert_eq!(tunnel["listen_port"], 40000);
    let peer = &tunnel["peers"][0];
    assert_eq!(peer["public_key"], public(3).to_base64());
    assert_eq!(peer["endpoint"], "192.0.2.2:51820");
    assert_eq!(peer["allowed_ips"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(peer["latest_handshake"], 990);
    assert_eq!(peer["rx_bytes"], 200);
    assert_eq!(peer["tx_bytes"], 300);
    assert_eq!(peer["persistent_keepalive"], 25);
    let token = state().device_token;
    assert!(
        !json.to_string().contains(token.expose()),
        "no token in the output"
    );
}

#[test]
fn unix_times_render_as_rfc3339_utc() {
    assert_eq!(utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
}
