//! An ingress rule's `service`: where matching traffic goes.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use url::{Host, Url};

use crate::error::Problem;

/// A validated origin service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// `http://host[:port]` (TLS false) or `https://host[:port]` (TLS true); `ws://` and `wss://`
    /// are accepted as their HTTP equivalents, as cloudflared does. Ports default to 80 and 443.
    Http {
        /// Whether the connector speaks TLS to the origin.
        tls: bool,
        /// Where the origin listens.
        origin: HostPort,
    },
    /// `tcp://host:port`: raw TCP splicing. cloudflared's `ssh://`, `rdp://` and `smb://` are
    /// accepted as TCP with default ports 22, 3389 and 445.
    Tcp {
        /// Where the origin listens.
        origin: HostPort,
    },
    /// `unix:/path` (HTTP) or `unix+tls:/path` (HTTPS) over a unix domain socket.
    Unix {
        /// The socket path.
        path: PathBuf,
        /// Whether the connector speaks TLS over the socket.
        tls: bool,
    },
    /// `http_status:NNN`: answers every request with this status, no origin.
    HttpStatus(u16),
}

impl Service {
    /// Whether this is a raw TCP service (the only kind that may use `proxyProtocol`).
    pub fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp { .. })
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { tls: false, origin } => write!(f, "http://{origin}"),
            Self::Http { tls: true, origin } => write!(f, "https://{origin}"),
            Self::Tcp { origin } => write!(f, "tcp://{origin}"),
            Self::Unix { path, tls: false } => write!(f, "unix:{}", path.display()),
            Self::Unix { path, tls: true } => write!(f, "unix+tls:{}", path.display()),
            Self::HttpStatus(code) => write!(f, "http_status:{code}"),
        }
    }
}

/// A host (DNS name or IP address, IPv6 without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// DNS name (lowercase) or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Names cloudflared gives its built-in services, which the connector does not run.
const BUILT_IN_SERVICES: &[&str] = &[
    "hello_world",
    "hello-world",
    "helloworld",
    "bastion",
    "socks-proxy",
];

/// Parses a rule's `service` the way cloudflared's `validateIngress` does, in the same order.
pub(crate) fn parse_service(rule: usize, text: &str) -> Result<Service, Problem> {
    if let Some(path) = text.strip_prefix("unix+tls:") {
        return unix(rule, text, path, true);
    }
    if let Some(path) = text.strip_prefix("unix:") {
        return unix(rule, text, path, false);
    }
    if let Some(code) = text.strip_prefix("http_status:") {
        // cloudflared takes any integer in 100..=999; three plain digits is the same set minus
        // spellings like `+404` or `0404`, which are typos worth reporting.
        let three_digits = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
        return match code.parse::<u16>() {
            Ok(status @ 100..=999) if three_digits => Ok(Service::HttpStatus(status)),
            Ok(_) | Err(_) => Err(Problem::InvalidStatusCode {
                rule,
                code: code.to_owned(),
            }),
        };
    }
    if BUILT_IN_SERVICES.contains(&text) {
        return Err(Problem::UnsupportedService {
            rule,
            service: text.to_owned(),
        });
    }
    url_service(rule, text)
}

fn unix(rule: usize, text: &str, path: &str, tls: bool) -> Result<Service, Problem> {
    if path.is_empty() {
        return Err(Problem::InvalidAddress {
            rule,
            service: text.to_owned(),
        });
    }
    Ok(Service::Unix {
        path: PathBuf::from(path),
        tls,
    })
}

fn url_service(rule: usize, text: &str) -> Result<Service, Problem> {
    let invalid = || Problem::InvalidAddress {
        rule,
        service: text.to_owned(),
    };
    let url = Url::parse(text).map_err(|_| invalid())?;
    let host = match url.host() {
        Some(Host::Domain(name)) if !name.is_empty() => name.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        Some(Host::Domain(_)) | None => return Err(invalid()),
    };
    // `Url` normalizes an absent path of `http://host` to `/`, so look at what was written:
    // cloudflared (Go's `url.Parse`) rejects any path, even a lone `/`.
    if written_path(text).is_some_and(|path| !path.is_empty()) {
        return Err(Problem::ServiceHasPath {
            rule,
            service: text.to_owned(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Problem::ServiceHasQuery {
            rule,
            service: text.to_owned(),
        });
    }
    let (default_port, kind) = match url.scheme() {
        "http" | "ws" => (Some(80), Kind::Http { tls: false }),
        "https" | "wss" => (Some(443), Kind::Http { tls: true }),
        "tcp" => (None, Kind::Tcp),
        "ssh" => (Some(22), Kind::Tcp),
        "rdp" => (Some(3389), Kind::Tcp),
        "smb" => (Some(445), Kind::Tcp),
        _ => {
            return Err(Problem::UnsupportedService {
                rule,
                service: text.to_owned(),
            })
        }
    };
    let port = url
        .port()
        .or(default_port)
        .ok_or_else(|| Problem::TcpServiceWithoutPort {
            rule,
            service: text.to_owned(),
        })?;
    let origin = HostPort { host, port };
    Ok(match kind {
        Kind::Http { tls } => Service::Http { tls, origin },
        Kind::Tcp => Service::Tcp { origin },
    })
}

enum Kind {
    Http { tls: bool },
    Tcp,
}

/// The path part of `scheme://authority/path?query#fragment` as written.
fn written_path(text: &str) -> Option<&str> {
    let after_scheme = text.split_once("://")?.1;
    let before_query = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(after_scheme);
    Some(before_query.find('/').map_or("", |at| &before_query[at..]))
}
