//! `gatehouse status`: what the client knows about its login and its tunnel, as text for people
//! and as JSON for scripts.
//!
//! [`Status`] is built from the saved [`DeviceState`] and the tunnel's UAPI `get=1` body; the
//! driver reads both and the wall clock, and prints the result. The JSON field names are a
//! stable interface (client/README.md lists them); fields are added, never renamed. No
//! rendering shows a key or a token: only public keys are displayed.

use crate::device_state::DeviceState;
use crate::enroll::Posture;
use ipnet::IpNet;
use serde::Serialize;
use std::fmt::Write as _;

/// `format` of the JSON output; bumped only if a field changes meaning.
pub const STATUS_FORMAT: u32 = 1;

/// Everything `gatehouse status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The state directory looked at, if one could be determined.
    pub state_dir: Option<String>,
    /// The login, if `device.json` exists there.
    pub login: Option<LoginStatus>,
    /// The tunnel interface.
    pub tunnel: TunnelStatus,
}

/// The logged-in device as identity enrolled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginStatus {
    /// identity's base URL.
    pub identity: String,
    /// The user.
    pub user: UserStatus,
    /// This device.
    pub device: DeviceStatus,
    /// The edge `gatehouse connect` uses; `None` if the profile lists no usable one.
    pub edge: Option<EdgeStatus>,
    /// The tunnel addresses.
    pub addresses: Vec<IpNet>,
    /// The profile's routes (CIDRs and host names).
    pub routes: Vec<String>,
    /// The profile's resolvers and search domains.
    pub dns: Vec<String>,
    /// The posture reported at enrollment, the facts the policy sees; `None` for a login by a
    /// client that did not save it.
    pub posture: Option<Posture>,
    /// When the device enrolled, unix seconds.
    pub enrolled_at: Option<u64>,
    /// When the profile was last fetched from identity, unix seconds (`None`: at enrollment).
    pub profile_updated_at: Option<u64>,
    /// When the device token expires, unix seconds.
    pub token_expires_at: Option<u64>,
}

/// The user, from the device token's claims (display only, not verified here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserStatus {
    /// E-mail address.
    pub email: Option<String>,
    /// How the user authenticated (`pwd`, `otp`, …).
    pub login_method: Option<String>,
    /// When the user authenticated, unix seconds.
    pub auth_time: Option<u64>,
}

/// This device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// The device id at identity.
    pub id: String,
    /// The host name reported at enrollment (the device's name).
    pub hostname: Option<String>,
    /// The device's WireGuard public key, base64.
    pub public_key: String,
}

/// One edge of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeStatus {
    /// Its name in the profile.
    pub name: String,
    /// Its WireGuard UDP endpoint.
    pub endpoint: String,
    /// Its WireGuard public key, base64.
    pub public_key: String,
    /// Where it runs.
    pub region: Option<String>,
}

/// The tunnel interface, from its UAPI socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    /// The interface name.
    pub interface: String,
    /// Whether a daemon answered on the interface's UAPI socket.
    pub up: bool,
    /// The UDP listen port.
    pub listen_port: Option<u16>,
    /// The peers, in the daemon's order.
    pub peers: Vec<PeerStatus>,
}

/// One WireGuard peer of the running tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Base64, like `wg show`.
    pub public_key: String,
    /// The current endpoint.
    pub endpoint: Option<String>,
    /// The allowed IPs.
    pub allowed_ips: Vec<String>,
    /// The last completed handshake, unix seconds; `None` if there was none.
    pub latest_handshake: Option<u64>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Keepalive interval in seconds; `None` if off.
    pub persistent_keepalive: Option<u16>,
}

impl LoginStatus {
    /// The login part of the status of `state`. The edge is the one named in the state, else
    /// the profile's first.
    pub fn from_state(state: &DeviceState) -> Self {
        let facts = state.token_facts();
        let edges = &state.profile.edges;
        let edge = match &state.edge {
            Some(name) => edges.iter().find(|edge| &edge.name == name),
            None => edges.first(),
        };
        Self {
            identity: state.identity.clone(),
            user: UserStatus {
                email: facts.email,
                login_method: facts.login_method,
                auth_time: facts.auth_time,
            },
            device: DeviceStatus {
                id: state.device_id.clone(),
                hostname: state
                    .posture
                    .as_ref()
                    .map(|p| p.hostname.clone())
                    .filter(|h| !h.is_empty()),
                public_key: state.public_key.clone(),
            },
            edge: edge.map(|edge| EdgeStatus {
                name: edge.name.clone(),
                endpoint: edge.endpoint.clone(),
                public_key: edge.public_key.clone(),
                region: edge.region.clone(),
            }),
            addresses: state.profile.addresses.clone(),
            routes: state.profile.routes.clone(),
            dns: state.profile.dns.clone(),
            posture: state.posture.clone(),
            enrolled_at: state.enrolled_at,
            profile_updated_at: state.profile_updated_at,
            token_expires_at: facts.expires_at,
        }
    }
}

impl TunnelStatus {
    /// An interface no daemon serves.
    pub fn down(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            up: false,
            listen_port: None,
            peers: Vec::new(),
        }
    }

    /// Reads a UAPI `get=1` body (without the `errno` line). Lines it does not know, or values
    /// it cannot read, are skipped; peer keys are shown in base64.
    pub fn from_uapi(interface: &str, body: &str) -> Self {
        let mut status = Self {
            up: true,
            ..Self::down(interface)
        };
        for (key, value) in body.lines().filter_map(|line| line.split_once('=')) {
            if key == "listen_port" {
                status.listen_port = value.parse().ok();
                continue;
            }
            if key == "public_key" {
                let public_key = wg::keys::PublicKey::from_hex(value)
                    .map_or_else(|_| value.to_owned(), |k| k.to_base64());
                status.peers.push(PeerStatus {
                    public_key,
                    ..PeerStatus::default()
                });
                continue;
            }
            let Some(peer) = status.peers.last_mut() else {
                continue;
            };
            match key {
                "endpoint" => peer.endpoint = Some(value.to_owned()),
                "allowed_ip" => peer.allowed_ips.push(value.to_owned()),
                "last_handshake_time_sec" => {
                    peer.latest_handshake = value.parse().ok().filter(|&t: &u64| t > 0);
                }
                "rx_bytes" => peer.rx_bytes = value.parse().unwrap_or(0),
                "tx_bytes" => peer.tx_bytes = value.parse().unwrap_or(0),
                "persistent_keepalive_interval" => {
                    peer.persistent_keepalive = value.parse().ok().filter(|&k: &u16| k > 0);
                }
                _ => {}
            }
        }
        status
    }
}

/// Renders `status` for a terminal; `now` (unix seconds) makes handshake ages relative.
/// Server-chosen text is stripped of control characters.
pub fn render_text(status: &Status, now: u64) -> String {
    let mut out = String::new();
    match &status.login {
        Some(login) => render_login(&mut out, login),
        None => {
            let dir = status.state_dir.as_deref().unwrap_or("the state directory");
            line(
                &mut out,
                &format!("login: none in {dir} (run `gatehouse login`)"),
            );
        }
    }
    if status.tunnel.up {
        line(&mut out, "tunnel: up");
        render_tunnel(&mut out, &status.tunnel, now);
    } else {
        line(
            &mut out,
            &format!("tunnel: down (interface {})", status.tunnel.interface),
        );
    }
    out
}

fn render_login(out: &mut String, login: &LoginStatus) {
    let unknown = || "unknown".to_owned();
    line(out, "login:");
    field(
        out,
        "user",
        &login.user.email.clone().unwrap_or_else(unknown),
    );
    if let Some(method) = &login.user.login_method {
        let at = login
            .user
            .auth_time
            .map_or_else(String::new, |t| format!(" at {}", utc(t)));
        field(out, "login method", &format!("{method}{at}"));
    }
    field(out, "identity", &login.identity);
    let device = match &login.device.hostname {
        Some(host) => format!("{} ({host})", login.device.id),
        None => login.device.id.clone(),
    };
    field(out, "device", &device);
    field(out, "device public key", &login.device.public_key);
    let edge = login.edge.as_ref().map_or_else(
        || "none usable in the profile".to_owned(),
        |edge| {
            let region = edge
                .region
                .as_ref()
                .map_or_else(String::new, |r| format!(", {r}"));
            format!(
                "{} {} ({}{region})",
                edge.name, edge.endpoint, edge.public_key
            )
        },
    );
    field(out, "edge", &edge);
    field(out, "addresses", &list(login.addresses.iter()));
    let routes = if login.routes.is_empty() {
        "everything (full tunnel)".to_owned()
    } else {
        list(login.routes.iter())
    };
    field(out, "routes", &routes);
    if !login.dns.is_empty() {
        field(out, "dns", &list(login.dns.iter()));
    }
    let posture = login.posture.as_ref().map_or_else(
        || "not saved at login (log in again to see it)".to_owned(),
        |p| {
            format!(
                "os={} os_version={} client_version={} hostname={}",
                p.os, p.os_version, p.client_version, p.hostname
            )
        },
    );
    field(out, "posture", &posture);
    if let Some(at) = login.enrolled_at {
        field(out, "enrolled", &utc(at));
    }
    let updated = login
        .profile_updated_at
        .map_or_else(|| "at enrollment".to_owned(), utc);
    field(out, "profile updated", &updated);
    if let Some(at) = login.token_expires_at {
        field(out, "device token expires", &utc(at));
    }
}

/// The tunnel part, laid out like `wg show`.
fn render_tunnel(out: &mut String, tunnel: &TunnelStatus, now: u64) {
    line(out, &format!("interface: {}", tunnel.interface));
    if let Some(port) = tunnel.listen_port {
        field(out, "listening port", &port.to_string());
    }
    for peer in &tunnel.peers {
        line(out, "");
        line(out, &format!("peer: {}", peer.public_key));
        if let Some(endpoint) = &peer.endpoint {
            field(out, "endpoint", endpoint);
        }
        for allowed in &peer.allowed_ips {
            field(out, "allowed ip", allowed);
        }
        field(out, "received bytes", &peer.rx_bytes.to_string());
        field(out, "sent bytes", &peer.tx_bytes.to_string());
        let handshake = peer.latest_handshake.map_or_else(
            || "never".to_owned(),
            |t| format!("{} seconds ago", now.saturating_sub(t)),
        );
        field(out, "latest handshake", &handshake);
    }
}

fn line(out: &mut String, text: &str) {
    let _ = writeln!(out, "{}", printable(text));
}

fn field(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "  {name}: {}", printable(value));
}

fn list<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Control characters (terminal escapes in server-chosen text) become spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Unix seconds as RFC 3339 UTC, e.g. `2024-05-01T12:00:00Z` (the proleptic Gregorian
/// calendar; days to civil date after H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
pub fn utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Shift the epoch to 0000-03-01, so leap days end a 400-year era's years.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}
