//! Errors: the file does not parse ([`ConfigError::Syntax`]), or it parses and breaks rules
//! ([`ConfigError::Invalid`], every [`Problem`] at once).

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;

/// Why a configuration was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or YAML of the wrong shape (unknown key, wrong type). The message names the key
    /// path and ends with `at line L column C` when the parser knows where.
    #[error("{message}")]
    Syntax {
        /// serde_norway's message, e.g. ``ingress[0]: unknown field `hostnme`, expected one of …
        /// at line 3 column 5``.
        message: String,
        /// 1-based line of the offending input, when known.
        line: Option<usize>,
        /// 1-based column of the offending input, when known.
        column: Option<usize>,
    },
    /// Well-formed, but `ingress validate` would fail: all problems, in file order.
    #[error("{0}")]
    Invalid(Problems),
}

/// Why [`crate::Config::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and rejected.
    #[error("invalid configuration in {}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
}

/// Every problem found in one configuration (never empty), one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One broken rule. Rule numbers are 1-based, as `cloudflared tunnel ingress validate` prints
/// them; the wording follows cloudflared's where it has one (with a lowercase start and no final
/// period, the workspace's error style).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// No `ingress` list, or an empty one.
    #[error("the config file doesn't contain any ingress rules")]
    NoIngressRules,
    /// The last rule has a hostname or a path.
    #[error(
        "rule #{rule}: the last ingress rule must match all URLs (i.e. it should not have a \
         hostname or path filter)"
    )]
    LastRuleNotCatchAll {
        /// 1-based rule number.
        rule: usize,
    },
    /// A rule before the last matches everything, so the rules after it never match.
    #[error(
        "rule #{rule} is matching the hostname '{hostname}', but this will match every hostname, \
         meaning the rules which follow it will never be triggered"
    )]
    CatchAllNotLast {
        /// 1-based rule number.
        rule: usize,
        /// The hostname as written (empty or `*`).
        hostname: String,
    },
    /// A `*` other than a leading `*.` (or a lone `*`).
    #[error(
        "rule #{rule}: hostname patterns can have at most one wildcard character (\"*\") and it \
         can only be used for subdomains, e.g. \"*.example.com\""
    )]
    BadWildcard {
        /// 1-based rule number.
        rule: usize,
    },
    /// `hostname: app.example.com:8080`.
    #[error("rule #{rule}: hostname cannot contain a port")]
    HostnameHasPort {
        /// 1-based rule number.
        rule: usize,
    },
    /// `path` is not a valid regular expression.
    #[error("rule #{rule} has an invalid regex: {error}")]
    InvalidRegex {
        /// 1-based rule number.
        rule: usize,
        /// The regex compiler's message.
        error: String,
    },
    /// A service without a scheme or a host (`localhost:8080`), or an empty unix socket path.
    #[error(
        "rule #{rule}: {service} is an invalid address, please make sure it has a scheme and a \
         hostname"
    )]
    InvalidAddress {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// A service URL with a path (`http://localhost:8080/app`, even a lone `/`).
    #[error(
        "rule #{rule}: {service} is an invalid address, ingress rules don't support proxying to a \
         different path on the origin service. The path will be the same as the eyeball \
         request's path"
    )]
    ServiceHasPath {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// A service URL with a query or fragment, which would be dropped.
    #[error(
        "rule #{rule}: {service} is an invalid address, a service URL cannot have a query or \
         fragment"
    )]
    ServiceHasQuery {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// `http_status:` without a three-digit code in 100..=999.
    #[error("rule #{rule}: invalid HTTP status code: {code}")]
    InvalidStatusCode {
        /// 1-based rule number.
        rule: usize,
        /// What followed `http_status:`.
        code: String,
    },
    /// cloudflared's built-in services (`hello_world`, `bastion`, `socks-proxy`) and URL schemes
    /// the connector cannot dial.
    #[error(
        "rule #{rule}: service '{service}' is not supported by gatehouse-connector (use http://, \
         https://, tcp://, unix:, unix+tls: or http_status:)"
    )]
    UnsupportedService {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// `tcp://host` without a port: there is no default.
    #[error("rule #{rule}: {service} is an invalid address, a tcp:// service needs a port")]
    TcpServiceWithoutPort {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// `proxyProtocol: true` in the rule's own `originRequest`, on a service that is not TCP.
    #[error("rule #{rule}: proxyProtocol is only supported for tcp:// services, not {service}")]
    ProxyProtocolNotTcp {
        /// 1-based rule number.
        rule: usize,
        /// The service as written.
        service: String,
    },
    /// `ha-connections: 0`.
    #[error("ha-connections must be at least 1")]
    NoHaConnections,
    /// A private route with bits set below its prefix length, which usually means a typo.
    #[error("private route {route} has host bits set (did you mean {}?)", route.trunc())]
    PrivateRouteHostBits {
        /// The route as written.
        route: IpNet,
    },
    /// `assertion-header` is not an HTTP header name.
    #[error("assertion-header {header:?} is not a valid HTTP header name")]
    InvalidAssertionHeader {
        /// The header as written.
        header: String,
    },
}
