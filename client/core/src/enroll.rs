//! Device enrollment: the `POST /v1/enroll` messages of identity (docs/identity-api.md) and the
//! wg-quick file a device profile becomes.
//!
//! The messages are network input and lenient: unknown fields are ignored and missing lists
//! read as empty, so an older client keeps working with a newer server. [`wg_quick_config`]
//! checks what the tunnel needs (addresses, an edge with a usable key and endpoint) and renders a
//! file that [`wg_quick::parse`] reads back. Nothing here does IO; the `client` driver sends the
//! request, stores the answer and writes the file.

use crate::wg_quick::{
    self, DnsEntry, EmitError, Endpoint, InterfaceSection, PeerSection, WgQuickConfig, WgQuickError,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use wg::keys::{KeyError, PrivateKey, PublicKey};

/// `PersistentKeepalive` of the edge peer, in seconds: keeps NAT mappings alive, the value
/// wg(8) suggests for peers behind NAT.
pub const PERSISTENT_KEEPALIVE_SECS: u16 = 25;

/// The body of `POST /v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The device's WireGuard public key, base64 (the private key never leaves the device).
    pub public_key: String,
    /// What the device reports about itself.
    pub posture: Posture,
}

/// Device posture as the client reports it at enrollment: the contract type of
/// `identity-claims` (every field defaults when absent).
pub use identity_claims::Posture;

/// The 201 answer of `POST /v1/enroll`. `Debug` redacts the device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The device's id at identity.
    pub device_id: String,
    /// The device's bearer token for `GET /v1/profile`.
    pub device_token: DeviceToken,
    /// What the tunnel needs.
    #[serde(default)]
    pub profile: Profile,
}

/// A device's tunnel profile: its addresses, the edges it may use, and what to route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The device's tunnel addresses, e.g. `100.64.0.2/32`.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Edges the device may connect to, the preferred one first.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Routes through the tunnel: CIDRs and host names. Empty means everything (full tunnel).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Resolvers and search domains to use while the tunnel is up.
    #[serde(default)]
    pub dns: Vec<String>,
    /// The tunnel MTU in bytes; `None` leaves it to the client (`gatehouse up`: 1280).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// One edge gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The edge's name, unique within a profile (`--edge NAME`).
    pub name: String,
    /// The edge's WireGuard UDP endpoint: `host:port`, `addr:port` or `[v6]:port`.
    pub endpoint: String,
    /// The edge's WireGuard public key, base64.
    pub public_key: String,
    /// Where the edge runs, for display.
    #[serde(default)]
    pub region: Option<String>,
}

/// A device token (a JWT). `Debug` prints `DeviceToken(..)`; only [`DeviceToken::expose`]
/// shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceToken(String);

/// Why a profile cannot become a wg-quick file. Messages carry names, never key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrollError {
    /// The profile lists no tunnel addresses.
    #[error("the profile has no addresses")]
    NoAddresses,
    /// The profile lists no edges.
    #[error("the profile has no edges")]
    NoEdges,
    /// `--edge` names an edge the profile does not list.
    #[error("no edge named \"{name}\" in the profile (edges: {known})")]
    UnknownEdge {
        /// The requested name.
        name: String,
        /// The profile's edge names, comma-separated.
        known: String,
    },
    /// The edge's endpoint is not `host:port`, `addr:port` or `[v6]:port` with a non-zero port.
    #[error("edge \"{edge}\" has an invalid endpoint, expected host:port or [ipv6]:port")]
    InvalidEndpoint {
        /// The edge's name.
        edge: String,
    },
    /// The edge's public key does not decode or is a low-order point.
    #[error("edge \"{edge}\" has an invalid public key")]
    InvalidEdgeKey {
        /// The edge's name.
        edge: String,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The edge's public key is the device's own (wg-quick files cannot carry that).
    #[error("edge \"{edge}\" has the device's own public key")]
    EdgeKeyIsOwn {
        /// The edge's name.
        edge: String,
    },
    /// The device's private key does not decode.
    #[error("invalid device private key")]
    InvalidPrivateKey(#[source] KeyError),
    /// A DNS item that is neither an IP address nor a search domain wg-quick can carry.
    #[error("invalid DNS entry \"{entry}\" in the profile")]
    InvalidDns {
        /// The entry as the profile has it.
        entry: String,
    },
    /// A value the wg-quick syntax cannot carry.
    #[error("the profile cannot be written as a wg-quick file")]
    Emit(#[source] EmitError),
    /// The rendered file does not read back (an invariant of this module broke).
    #[error("the rendered wg-quick file does not parse")]
    Unparsable(#[source] WgQuickError),
}

/// Renders `profile` as a wg-quick file for the device key `private_key_b64`.
///
/// `[Interface]` gets the key, every profile address, the DNS entries and the MTU if the
/// profile sets one (a zero MTU is left out). One `[Peer]` is the
/// edge named `edge` (default: the profile's first edge) with its key and endpoint,
/// `AllowedIPs` = the routes that are IP prefixes or addresses (host-name routes are not
/// WireGuard's business and are left out; no routes at all means `0.0.0.0/0, ::/0`), and
/// `PersistentKeepalive` = [`PERSISTENT_KEEPALIVE_SECS`]. The output contains the private key:
/// never log it.
///
/// # Errors
/// [`EnrollError`]: no addresses or edges, an unknown edge name, an edge with a bad endpoint
/// or key, a bad private key or DNS entry.
pub fn wg_quick_config(
    profile: &Profile,
    private_key_b64: &str,
    edge: Option<&str>,
) -> Result<String, EnrollError> {
    let private_key =
        PrivateKey::from_base64(private_key_b64.trim()).map_err(EnrollError::InvalidPrivateKey)?;
    if profile.addresses.is_empty() {
        return Err(EnrollError::NoAddresses);
    }
    let chosen = choose_edge(&profile.edges, edge)?;
    let peer = edge_peer(chosen, &private_key, &profile.routes)?;
    let dns = profile
        .dns
        .iter()
        .map(|entry| dns_entry(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let config = WgQuickConfig {
        interface: InterfaceSection {
            dns,
            mtu: profile.mtu.filter(|&mtu| mtu > 0),
            ..InterfaceSection::new(private_key, profile.addresses.clone())
        },
        peers: vec![peer],
    };
    let text = wg_quick::to_string(&config).map_err(EnrollError::Emit)?;
    wg_quick::parse(&text).map_err(EnrollError::Unparsable)?;
    Ok(text)
}

impl DeviceToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token itself, for an `Authorization` header or the state file. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken(..)")
    }
}

fn choose_edge<'a>(edges: &'a [Edge], name: Option<&str>) -> Result<&'a Edge, EnrollError> {
    let Some(name) = name else {
        return edges.first().ok_or(EnrollError::NoEdges);
    };
    if edges.is_empty() {
        return Err(EnrollError::NoEdges);
    }
    edges
        .iter()
        .find(|edge| edge.name == name)
        .ok_or_else(|| EnrollError::UnknownEdge {
            name: name.to_owned(),
            known: edges
                .iter()
                .map(|edge| edge.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn edge_peer(
    edge: &Edge,
    private_key: &PrivateKey,
    routes: &[String],
) -> Result<PeerSection, EnrollError> {
    let invalid_key = |source| EnrollError::InvalidEdgeKey {
        edge: edge.name.clone(),
        source,
    };
    let public_key = PublicKey::from_base64(edge.public_key.trim()).map_err(invalid_key)?;
    private_key.check_peer(&public_key).map_err(invalid_key)?;
    if public_key == private_key.public_key() {
        return Err(EnrollError::EdgeKeyIsOwn {
            edge: edge.name.clone(),
        });
    }
    let endpoint =
        parse_endpoint(edge.endpoint.trim()).ok_or_else(|| EnrollError::InvalidEndpoint {
            edge: edge.name.clone(),
        })?;
    Ok(PeerSection {
        public_key,
        preshared_key: None,
        allowed_ips: allowed_ips(routes),
        endpoint: Some(endpoint),
        persistent_keepalive: Some(PERSISTENT_KEEPALIVE_SECS),
    })
}

/// The routes that are prefixes or addresses; no routes at all means a full tunnel.
fn allowed_ips(routes: &[String]) -> Vec<IpNet> {
    if routes.is_empty() {
        return vec![
            IpNet::V4(ipnet::Ipv4Net::default()),
            IpNet::V6(ipnet::Ipv6Net::default()),
        ];
    }
    routes
        .iter()
        .filter_map(|route| {
            let route = route.trim();
            route
                .parse::<IpNet>()
                .ok()
                .or_else(|| route.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// `addr:port`, `[v6]:port` or `host:port` with a non-zero port, as `wg_quick::parse` reads an
/// `Endpoint` line.
fn parse_endpoint(value: &str) -> Option<Endpoint> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(Endpoint::Addr(addr));
    }
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?,
        None => value
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))?,
    };
    let port = port.parse::<u16>().ok().filter(|&port| port != 0)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Endpoint::Addr(SocketAddr::new(ip, port)));
    }
    let is_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    is_host.then(|| Endpoint::Host {
        host: host.to_owned(),
        port,
    })
}

/// An IP address is a resolver; a word that does not look like one is a search domain
/// (wg-quick's rule: digits and dots, or a colon, mean an address).
fn dns_entry(entry: &str) -> Result<DnsEntry, EnrollError> {
    let entry = entry.trim();
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Ok(DnsEntry::Server(addr));
    }
    let looks_like_ip =
        entry.contains(':') || entry.chars().all(|c| c.is_ascii_digit() || c == '.');
    let is_word =
        !entry.is_empty() && !entry.contains(|c: char| c.is_whitespace() || c == ',' || c == '#');
    if looks_like_ip || !is_word {
        return Err(EnrollError::InvalidDns {
            entry: entry.to_owned(),
        });
    }
    Ok(DnsEntry::SearchDomain(entry.to_owned()))
}
