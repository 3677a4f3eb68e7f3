//! The policy file as an operator writes it (TOML or YAML), validated while it is deserialized so
//! that every error carries the line and the field it came from.
//!
//! Values parse into newtypes (`HostPattern`, `Cidr`, `PortRange`, `Version`, `TimeWindow`, …);
//! checks that span several fields (exactly one kind of destination, a non-empty `include`,
//! unique names) run in `TryFrom` conversions or `deserialize_with` helpers of the table that
//! holds them, so the error points at that table.

use crate::values::{
    Cidr, HostPattern, PathPrefix, PortRange, Protocol, Rfc3339Time, TimeWindow, Version,
};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A parsed and validated policy file (`version = 1`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The format version; only `1` exists.
    pub version: FileVersion,
    /// Applications in file order (file order breaks ties between equally specific destinations).
    #[serde(default, deserialize_with = "unique_applications")]
    pub applications: Vec<Application>,
    /// In-file tests; the loader rejects the file unless all pass.
    #[serde(default, deserialize_with = "unique_tests")]
    pub tests: Vec<PolicyTest>,
}

/// The `version` field: always 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion;

/// A set of destinations and the ordered policies that guard them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Unique within the file.
    #[serde(deserialize_with = "non_empty_name")]
    pub name: String,
    /// At least one.
    #[serde(deserialize_with = "non_empty_destinations")]
    pub destinations: Vec<Destination>,
    /// Evaluated in order; the first whose rules match decides. None: every request is denied.
    #[serde(default, deserialize_with = "unique_policies")]
    pub policies: Vec<Policy>,
}

/// What an application covers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDestination")]
pub enum Destination {
    /// HTTP(S) requests to a hostname (exact or `*.suffix`), optionally under a path prefix.
    Host {
        host: HostPattern,
        path: Option<PathPrefix>,
    },
    /// IP traffic to a network, optionally limited to ports and a protocol.
    Network {
        cidr: Cidr,
        /// Empty: every port.
        ports: Vec<PortRange>,
        /// `None`: any protocol.
        protocol: Option<Protocol>,
    },
    /// Everything no other application covers.
    Internet,
}

/// One ordered policy of an application.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct Policy {
    pub name: String,
    pub action: Action,
    /// Any of these must match (empty only for `bypass`, where it means everyone).
    pub include: Vec<Selector>,
    /// All of these must match.
    pub require: Vec<Selector>,
    /// None of these may match.
    pub exclude: Vec<Selector>,
}

/// What a policy does when its rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Allow an authenticated user.
    Allow,
    /// Deny.
    Block,
    /// Allow without identity checks (selectors: `everyone`, `ip`, `time` only).
    Bypass,
    /// Allow a request authenticated by a service token.
    ServiceAuth,
}

/// One rule: a test on the subject, its device, the source address or the time. Written as a
/// table with exactly one key, e.g. `{ group = "eng" }` (TOML) or `- group: eng` (YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSelector")]
pub enum Selector {
    /// `everyone = true`: always matches.
    Everyone,
    /// The user's email, case-insensitive (stored lowercase).
    Email(String),
    /// The domain of the user's email, case-insensitive (stored lowercase).
    EmailDomain(String),
    /// A group of the user, case-sensitive.
    Group(String),
    /// The identity provider id the user logged in with, case-sensitive.
    Idp(String),
    /// How the user authenticated (RFC 8176 `amr` values such as pwd, otp, hwk, mfa), stored
    /// lowercase.
    LoginMethod(String),
    /// Device posture: the OS name equals (case-insensitive, stored lowercase).
    Os(String),
    /// Device posture: the OS version is at least this.
    OsVersion(Version),
    /// Device posture: the Gatehouse client version is at least this.
    ClientVersion(Version),
    /// The request's source address is in this network.
    Ip(Cidr),
    /// The request carries the service token with this id.
    ServiceToken(String),
    /// `any_service_token = true`: the request carries any (verified) service token.
    AnyServiceToken,
    /// The user authenticated at most this many seconds ago.
    MaxAuthAge(u64),
    /// The request time falls in this weekly window.
    Time(TimeWindow),
}

/// A `true` that only parses from `true` (for `everyone = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct True;

/// An in-file test: a request and the decision it must get.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    #[serde(deserialize_with = "non_empty_name")]
    pub name: String,
    /// Who asks; omitted or without `email`: no authenticated user.
    #[serde(default)]
    pub subject: TestSubject,
    /// The device's posture facts, if any.
    pub device: Option<TestDevice>,
    /// The source address of the request.
    pub source_ip: Option<IpAddr>,
    /// What is asked for.
    pub request: TestRequest,
    /// When (RFC 3339); default 1970-01-01T00:00:00Z (a Thursday).
    pub at: Option<Rfc3339Time>,
    /// The decision the test expects.
    pub expect: Expectation,
}

/// The subject of an in-file test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSubject {
    /// Present: an authenticated user.
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub idp: Option<String>,
    pub login_method: Option<String>,
    /// Unix seconds.
    pub auth_time: Option<i64>,
    /// The id of the service token the request carries.
    pub service_token: Option<String>,
}

/// Posture facts of an in-file test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestDevice {
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub client_version: Option<String>,
}

/// The request of an in-file test: `host` (+ `path`) or `ip` + `port` + `protocol`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTestRequest")]
pub enum TestRequest {
    Http {
        host: String,
        path: String,
    },
    Ip {
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
    },
}

/// What an in-file test expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Allow,
    Deny,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Block => "block",
            Self::Bypass => "bypass",
            Self::ServiceAuth => "service_auth",
        })
    }
}

impl Selector {
    /// Whether the selector looks at who asks (not allowed in `bypass` policies).
    pub fn is_identity(&self) -> bool {
        !matches!(self, Self::Everyone | Self::Ip(_) | Self::Time(_))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str("everyone"),
            Self::Email(v) => write!(f, "email = {v}"),
            Self::EmailDomain(v) => write!(f, "email_domain = {v}"),
            Self::Group(v) => write!(f, "group = {v}"),
            Self::Idp(v) => write!(f, "idp = {v}"),
            Self::LoginMethod(v) => write!(f, "login_method = {v}"),
            Self::Os(v) => write!(f, "os = {v}"),
            Self::OsVersion(v) => write!(f, "os_version >= {v}"),
            Self::ClientVersion(v) => write!(f, "client_version >= {v}"),
            Self::Ip(v) => write!(f, "ip in {v}"),
            Self::ServiceToken(v) => write!(f, "service_token = {v}"),
            Self::AnyServiceToken => f.write_str("any service_token"),
            Self::MaxAuthAge(v) => write!(f, "auth age <= {v}s"),
            Self::Time(v) => write!(f, "time {v}"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { host, path: None } => write!(f, "{host}"),
            Self::Host {
                host,
                path: Some(path),
            } => write!(f, "{host}{path}"),
            Self::Network {
                cidr,
                ports,
                protocol,
            } => {
                write!(f, "{cidr}")?;
                for (i, range) in ports.iter().enumerate() {
                    f.write_str(if i == 0 { " port " } else { "," })?;
                    write!(f, "{range}")?;
                }
                if let Some(protocol) = protocol {
                    write!(f, "/{protocol}")?;
                }
                Ok(())
            }
            Self::Internet => f.write_str("internet"),
        }
    }
}

impl<'de> Deserialize<'de> for FileVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            1 => Ok(Self),
            other => Err(serde::de::Error::custom(format_args!(
                "unsupported version {other}, expected 1"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if bool::deserialize(deserializer)? {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom(
                "must be true (remove the rule instead)",
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    everyone: Option<True>,
    email: Option<String>,
    email_domain: Option<String>,
    group: Option<String>,
    idp: Option<String>,
    login_method: Option<String>,
    os: Option<String>,
    os_version: Option<Version>,
    client_version: Option<Version>,
    ip: Option<Cidr>,
    service_token: Option<String>,
    any_service_token: Option<True>,
    max_auth_age: Option<u64>,
    time: Option<TimeWindow>,
}

impl TryFrom<RawSelector> for Selector {
    type Error = String;

    fn try_from(raw: RawSelector) -> Result<Self, String> {
        let lower = |name: &str, value: String| {
            if value.is_empty() {
                Err(format!("`{name}` must not be empty"))
            } else {
                Ok(value.to_ascii_lowercase())
            }
        };
        let exact = |name: &str, value: String| {
            if value.is_empty() {
                Err(format!("`{name}` must not be empty"))
            } else {
                Ok(value)
            }
        };
        let mut found: Vec<Self> = Vec::with_capacity(1);
        if raw.everyone.is_some() {
            found.push(Self::Everyone);
        }
        if let Some(v) = raw.email {
            found.push(Self::Email(lower("email", v)?));
        }
        if let Some(v) = raw.email_domain {
            found.push(Self::EmailDomain(lower("email_domain", v)?));
        }
        if let Some(v) = raw.group {
            found.push(Self::Group(exact("group", v)?));
        }
        if let Some(v) = raw.idp {
            found.push(Self::Idp(exact("idp", v)?));
        }
        if let Some(v) = raw.login_method {
            found.push(Self::LoginMethod(lower("login_method", v)?));
        }
        if let Some(v) = raw.os {
            found.push(Self::Os(lower("os", v)?));
        }
        if let Some(v) = raw.os_version {
            found.push(Self::OsVersion(v));
        }
        if let Some(v) = raw.client_version {
            found.push(Self::ClientVersion(v));
        }
        if let Some(v) = raw.ip {
            found.push(Self::Ip(v));
        }
        if let Some(v) = raw.service_token {
            found.push(Self::ServiceToken(exact("service_token", v)?));
        }
        if raw.any_service_token.is_some() {
            found.push(Self::AnyServiceToken);
        }
        if let Some(v) = raw.max_auth_age {
            found.push(Self::MaxAuthAge(v));
        }
        if let Some(v) = raw.time {
            found.push(Self::Time(v));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err("a rule needs one selector, e.g. `group`, `email` or `everyone`".into()),
            n => Err(format!(
                "a rule has exactly one selector, found {n}: write each as its own rule"
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    host: Option<HostPattern>,
    path: Option<PathPrefix>,
    cidr: Option<Cidr>,
    ports: Option<Vec<PortRange>>,
    protocol: Option<ProtocolOrAny>,
    internet: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProtocolOrAny {
    Tcp,
    Udp,
    Icmp,
    Any,
}

impl TryFrom<RawDestination> for Destination {
    type Error = String;

    fn try_from(raw: RawDestination) -> Result<Self, String> {
        let kinds = usize::from(raw.host.is_some())
            + usize::from(raw.cidr.is_some())
            + usize::from(raw.internet.is_some());
        if kinds != 1 {
            return Err("a destination has exactly one of `host`, `cidr` or `internet`".into());
        }
        if let Some(host) = raw.host {
            if raw.ports.is_some() || raw.protocol.is_some() {
                return Err("`ports` and `protocol` belong to `cidr` destinations".into());
            }
            return Ok(Self::Host {
                host,
                path: raw.path,
            });
        }
        if raw.path.is_some() {
            return Err("`path` belongs to `host` destinations".into());
        }
        if let Some(cidr) = raw.cidr {
            let protocol = match raw.protocol {
                None | Some(ProtocolOrAny::Any) => None,
                Some(ProtocolOrAny::Tcp) => Some(Protocol::Tcp),
                Some(ProtocolOrAny::Udp) => Some(Protocol::Udp),
                Some(ProtocolOrAny::Icmp) => Some(Protocol::Icmp),
            };
            let ports = raw.ports.unwrap_or_default();
            if protocol == Some(Protocol::Icmp) && !ports.is_empty() {
                return Err("icmp has no ports".into());
            }
            return Ok(Self::Network {
                cidr,
                ports,
                protocol,
            });
        }
        if raw.ports.is_some() || raw.protocol.is_some() {
            return Err("`ports` and `protocol` belong to `cidr` destinations".into());
        }
        match raw.internet {
            Some(true) => Ok(Self::Internet),
            _ => Err("`internet` must be true (remove the destination instead)".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(deserialize_with = "non_empty_name")]
    name: String,
    action: Action,
    #[serde(default)]
    include: Vec<Selector>,
    #[serde(default)]
    require: Vec<Selector>,
    #[serde(default)]
    exclude: Vec<Selector>,
}

impl TryFrom<RawPolicy> for Policy {
    type Error = String;

    fn try_from(raw: RawPolicy) -> Result<Self, String> {
        if raw.action == Action::Bypass {
            let rules = [
                ("include", &raw.include),
                ("require", &raw.require),
                ("exclude", &raw.exclude),
            ];
            for (list, selectors) in rules {
                if let Some((i, selector)) =
                    selectors.iter().enumerate().find(|(_, s)| s.is_identity())
                {
                    return Err(format!(
                        "policy `{}`: bypass skips identity checks, so {list}[{i}] ({selector}) \
                         cannot be used; only everyone, ip and time can",
                        raw.name
                    ));
                }
            }
        } else if raw.include.is_empty() {
            return Err(format!(
                "policy `{}`: `include` must list at least one rule for action {}",
                raw.name, raw.action
            ));
        }
        Ok(Self {
            name: raw.name,
            action: raw.action,
            include: raw.include,
            require: raw.require,
            exclude: raw.exclude,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestRequest {
    host: Option<String>,
    path: Option<String>,
    ip: Option<IpAddr>,
    port: Option<u16>,
    protocol: Option<Protocol>,
}

impl TryFrom<RawTestRequest> for TestRequest {
    type Error = String;

    fn try_from(raw: RawTestRequest) -> Result<Self, String> {
        match (raw.host, raw.ip) {
            (Some(host), None) => {
                if raw.port.is_some() || raw.protocol.is_some() {
                    return Err("`port` and `protocol` belong to `ip` requests".into());
                }
                let path = raw.path.unwrap_or_else(|| "/".into());
                if !path.starts_with('/') {
                    return Err(format!("path `{path}` must start with /"));
                }
                Ok(Self::Http { host, path })
            }
            (None, Some(ip)) => {
                if raw.path.is_some() {
                    return Err("`path` belongs to `host` requests".into());
                }
                let protocol = raw.protocol.ok_or("an `ip` request needs `protocol`")?;
                let port = match (protocol, raw.port) {
                    (Protocol::Icmp, None) => 0,
                    (Protocol::Icmp, Some(_)) => return Err("icmp has no port".into()),
                    (_, Some(port)) => port,
                    (_, None) => return Err("a tcp or udp request needs `port`".into()),
                };
                Ok(Self::Ip { ip, port, protocol })
            }
            _ => Err("a request has exactly one of `host` or `ip`".into()),
        }
    }
}

fn non_empty_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    if name.trim().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(name)
}

fn non_empty_destinations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Destination>, D::Error> {
    let destinations = Vec::<Destination>::deserialize(deserializer)?;
    if destinations.is_empty() {
        return Err(serde::de::Error::custom(
            "an application needs at least one destination",
        ));
    }
    Ok(destinations)
}

fn unique_applications<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Application>, D::Error> {
    let applications = Vec::<Application>::deserialize(deserializer)?;
    check_unique(
        "application",
        "applications",
        applications.iter().map(|a| a.name.as_str()),
    )
    .map_err(serde::de::Error::custom)?;
    Ok(applications)
}

fn unique_policies<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Policy>, D::Error> {
    let policies = Vec::<Policy>::deserialize(deserializer)?;
    check_unique(
        "policy",
        "policies",
        policies.iter().map(|p| p.name.as_str()),
    )
    .map_err(serde::de::Error::custom)?;
    Ok(policies)
}

fn unique_tests<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PolicyTest>, D::Error> {
    let tests = Vec::<PolicyTest>::deserialize(deserializer)?;
    check_unique("test", "tests", tests.iter().map(|t| t.name.as_str()))
        .map_err(serde::de::Error::custom)?;
    Ok(tests)
}

fn check_unique<'a>(
    what: &str,
    list: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.insert(name, i) {
            return Err(format!(
                "duplicate {what} name `{name}` ({list}[{first}] and {list}[{i}])"
            ));
        }
    }
    Ok(())
}
