//! The `gatehouse-connector` configuration file: cloudflared's `config.yml` (tunnel, credentials,
//! ingress rules, `originRequest`) plus Gatehouse's keys (edges, HA connections, private routes,
//! grace period, metrics, edge CA, assertion header).
//!
//! What it is: YAML parsing into typed, validated values ([`Config::from_yaml`]); ingress
//! validation with cloudflared's rule numbers and wording ([`Problem`]); first-match rule lookup
//! ([`Ingress::matching_rule`]); and the routes the connector announces to edges
//! ([`Config::routes`]).
//!
//! What it is not: it dials nothing, reads no clock, and touches the file system only in the
//! [`Config::load`] convenience. The `connector` driver loads the file, logs the
//! [`Config::notices`], and hands the values to `connector-core` and its origin dialer.
//!
//! See the crate's README for what matches cloudflared, what differs, and what is rejected.

mod duration;
mod error;
mod ingress;
mod origin_request;
mod routes;
mod service;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

pub use duration::parse_go_duration;
pub use error::{ConfigError, LoadError, Problem, Problems};
pub use ingress::{HostPattern, Ingress, Rule};
pub use origin_request::OriginRequest;
pub use routes::Route;
pub use service::{HostPort, Service};

use duration::GoDuration;
use ingress::{validate_ingress, RawRule};
use origin_request::RawOriginRequest;

/// HTTP header carrying the identity assertion (a JWT) to HTTP origins, unless
/// `assertion-header` names another.
pub const DEFAULT_ASSERTION_HEADER: &str = "Gatehouse-Assertion";

/// QUIC connections kept to edges, unless `ha-connections` says otherwise; cloudflared's default.
pub const DEFAULT_HA_CONNECTIONS: u32 = 4;

/// How long in-flight streams may finish after a shutdown signal; cloudflared's default.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Where the metrics endpoint listens by default: loopback, the port cloudflared documents.
pub const DEFAULT_METRICS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2000));

/// A validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `tunnel`: the tunnel's UUID or name. Optional here; the driver may take it from the
    /// command line or the credentials file.
    pub tunnel: Option<TunnelRef>,
    /// `credentials-file`: the tunnel credential JSON.
    pub credentials_file: Option<PathBuf>,
    /// `ingress` and the top-level `originRequest`.
    pub ingress: Ingress,
    /// `edges` (Gatehouse): `host:port` of edges to dial. Default empty: the edges listed in the
    /// credentials.
    pub edges: Vec<HostPort>,
    /// `ha-connections`: QUIC connections kept to distinct edges. Default 4.
    pub ha_connections: NonZeroU32,
    /// `private-routes` (Gatehouse): CIDRs reachable through this connector. Default empty.
    pub private_routes: Vec<IpNet>,
    /// `grace-period`: how long in-flight streams may finish on shutdown. Default 30 s.
    pub grace_period: Duration,
    /// `metrics`: the metrics listen address. Default `127.0.0.1:2000`.
    pub metrics: SocketAddr,
    /// `edge-ca-file` (Gatehouse): PEM CA bundle the edges' certificates chain to. Default: the
    /// CA in the credentials.
    pub edge_ca_file: Option<PathBuf>,
    /// `assertion-header` (Gatehouse): the header carrying the identity JWT to HTTP origins.
    /// Default `Gatehouse-Assertion`.
    pub assertion_header: String,
    /// cloudflared keys that were accepted and have no effect, for the driver to log.
    pub notices: Vec<Notice>,
}

impl Config {
    /// Parses and validates a `config.yml`.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for YAML errors, unknown keys and wrongly typed values (with line
    /// and column); [`ConfigError::Invalid`] with every rule problem otherwise.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_norway::from_str(text).map_err(|error| {
            let location = error.location();
            ConfigError::Syntax {
                message: error.to_string(),
                line: location.as_ref().map(serde_norway::Location::line),
                column: location.as_ref().map(serde_norway::Location::column),
            }
        })?;
        raw.validate()
    }

    /// Reads and parses the file at `path`: the only IO in this crate.
    ///
    /// # Errors
    /// [`LoadError::Read`] if the file cannot be read, [`LoadError::Config`] if it is rejected.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| LoadError::Config {
            path: path.to_owned(),
            source,
        })
    }

    /// What the connector announces to edges: one [`Route::Hostname`] per distinct hostname
    /// rule (with a path prefix only where the rule's regex is a plain `^/prefix` literal), then
    /// one [`Route::Private`] per private CIDR. Path-only rules and the catch-all announce nothing:
    /// they serve whatever hostnames the other routes bring.
    pub fn routes(&self) -> Vec<Route> {
        routes::routes(&self.ingress, &self.private_routes)
    }
}

/// `tunnel`: which tunnel this connector serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelRef {
    /// A UUID (`8-4-4-4-12` hex digits), lowercased.
    Id(String),
    /// Anything else: a tunnel name.
    Name(String),
}

impl TunnelRef {
    fn parse(text: &str) -> Self {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths_ok = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
        if lengths_ok {
            Self::Id(text.to_ascii_lowercase())
        } else {
            Self::Name(text.to_owned())
        }
    }
}

/// A cloudflared key accepted for compatibility that changes nothing here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// The key as written in the file.
    pub key: &'static str,
    /// Why it has no effect.
    pub reason: &'static str,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is ignored: {}", self.key, self.reason)
    }
}

/// The file as written. Every cloudflared key that has no effect here is listed explicitly so
/// that `deny_unknown_fields` still catches typos.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    tunnel: Option<String>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    ingress: Vec<RawRule>,
    #[serde(default, rename = "originRequest")]
    origin_request: RawOriginRequest,

    #[serde(default)]
    edges: Vec<EdgeAddr>,
    ha_connections: Option<u32>,
    #[serde(default)]
    private_routes: Vec<IpNet>,
    grace_period: Option<GoDuration>,
    metrics: Option<MetricsAddr>,
    edge_ca_file: Option<PathBuf>,
    assertion_header: Option<String>,

    warp_routing: Option<IgnoredAny>,
    loglevel: Option<IgnoredAny>,
    transport_loglevel: Option<IgnoredAny>,
    logfile: Option<IgnoredAny>,
    log_directory: Option<IgnoredAny>,
    no_autoupdate: Option<IgnoredAny>,
    autoupdate_freq: Option<IgnoredAny>,
    protocol: Option<IgnoredAny>,
    edge_ip_version: Option<IgnoredAny>,
    edge_bind_address: Option<IgnoredAny>,
    region: Option<IgnoredAny>,
    retries: Option<IgnoredAny>,
    pidfile: Option<IgnoredAny>,
    origincert: Option<IgnoredAny>,
    tag: Option<IgnoredAny>,
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let ingress = validate_ingress(&self.ingress, &self.origin_request, &mut problems);
        let ha_connections = NonZeroU32::new(self.ha_connections.unwrap_or(DEFAULT_HA_CONNECTIONS));
        if ha_connections.is_none() {
            problems.push(Problem::NoHaConnections);
        }
        for route in &self.private_routes {
            if route.trunc() != *route {
                problems.push(Problem::PrivateRouteHostBits { route: *route });
            }
        }
        let assertion_header = self
            .assertion_header
            .clone()
            .unwrap_or_else(|| DEFAULT_ASSERTION_HEADER.to_owned());
        if !is_header_name(&assertion_header) {
            problems.push(Problem::InvalidAssertionHeader {
                header: assertion_header.clone(),
            });
        }
        let notices = self.notices();
        match (ingress, ha_connections) {
            (Some(ingress), Some(ha_connections)) if problems.is_empty() => Ok(Config {
                tunnel: self.tunnel.as_deref().map(TunnelRef::parse),
                credentials_file: self.credentials_file,
                ingress,
                edges: self.edges.into_iter().map(|edge| edge.0).collect(),
                ha_connections,
                private_routes: self.private_routes,
                grace_period: self.grace_period.map_or(DEFAULT_GRACE_PERIOD, |d| d.0),
                metrics: self.metrics.map_or(DEFAULT_METRICS, |m| m.0),
                edge_ca_file: self.edge_ca_file,
                assertion_header,
                notices,
            }),
            _ => Err(ConfigError::Invalid(Problems(problems))),
        }
    }

    fn notices(&self) -> Vec<Notice> {
        const LOGGING: &str = "gatehouse-connector's logging is set on its command line";
        const EDGES: &str = "edges are dialed as listed in `edges` or the credentials";
        let keys: [(&'static str, bool, &'static str); 15] = [
            (
                "warp-routing",
                self.warp_routing.is_some(),
                "private networks are announced with `private-routes`",
            ),
            ("loglevel", self.loglevel.is_some(), LOGGING),
            (
                "transport-loglevel",
                self.transport_loglevel.is_some(),
                LOGGING,
            ),
            ("logfile", self.logfile.is_some(), LOGGING),
            ("log-directory", self.log_directory.is_some(), LOGGING),
            (
                "no-autoupdate",
                self.no_autoupdate.is_some(),
                "gatehouse-connector never updates itself",
            ),
            (
                "autoupdate-freq",
                self.autoupdate_freq.is_some(),
                "gatehouse-connector never updates itself",
            ),
            (
                "protocol",
                self.protocol.is_some(),
                "gatehouse-connector always uses QUIC",
            ),
            ("edge-ip-version", self.edge_ip_version.is_some(), EDGES),
            ("edge-bind-address", self.edge_bind_address.is_some(), EDGES),
            ("region", self.region.is_some(), EDGES),
            (
                "retries",
                self.retries.is_some(),
                "re-dials back off without a limit",
            ),
            ("pidfile", self.pidfile.is_some(), "no pid file is written"),
            (
                "origincert",
                self.origincert.is_some(),
                "only cloudflared's tunnel management commands use it",
            ),
            ("tag", self.tag.is_some(), "tags are not supported"),
        ];
        keys.into_iter()
            .filter(|(_, present, _)| *present)
            .map(|(key, _, reason)| Notice { key, reason })
            .collect()
    }
}

/// An RFC 9110 `token`: the characters a header name may have.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An `edges` entry: `host:port`, `[v6]:port`.
#[derive(Debug)]
struct EdgeAddr(HostPort);

impl<'de> Deserialize<'de> for EdgeAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_host_port(&text).map(EdgeAddr).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid edge address {text:?}: expected host:port"))
        })
    }
}

fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:")?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            (host.to_owned(), port)
        }
        None => {
            let (host, port) = text.rsplit_once(':')?;
            let bad = |c: char| c.is_whitespace() || matches!(c, ':' | '/' | '[' | ']');
            if host.is_empty() || host.contains(bad) {
                return None;
            }
            (host.to_ascii_lowercase(), port)
        }
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    Some(HostPort { host, port })
}

/// `metrics`: an IP socket address, or `localhost:PORT` (cloudflared's docs write both).
#[derive(Debug)]
struct MetricsAddr(SocketAddr);

impl<'de> Deserialize<'de> for MetricsAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let parsed = match text.strip_prefix("localhost:") {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            None => text.parse::<SocketAddr>().ok(),
        };
        parsed.map(MetricsAddr).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid metrics address {text:?}: expected ip:port or localhost:port"
            ))
        })
    }
}
