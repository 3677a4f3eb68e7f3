//! What a decision is asked about, and the answer: the input and output types of evaluation.
//!
//! The edge and the identity service map their own verified claims onto these borrowed views;
//! nothing here is verified by this crate (a `service_token` is the id of a token the caller has
//! already checked).

use crate::values::{Protocol, UnixTime};
use std::fmt;
use std::net::IpAddr;

/// One access request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The authenticated person, if any.
    pub user: Option<User<'a>>,
    /// The id of the verified service token the request carries, if any.
    pub service_token: Option<&'a str>,
    /// Posture facts of the device the request comes from, if known.
    pub device: Option<Device<'a>>,
    /// The source address of the request (an IPv4-mapped IPv6 address counts as IPv4).
    pub source_ip: Option<IpAddr>,
    /// What is asked for.
    pub target: Target<'a>,
}

/// An authenticated user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    /// Compared case-insensitively.
    pub email: &'a str,
    /// Compared exactly.
    pub groups: &'a [String],
    /// The identity provider id the user logged in with.
    pub idp: Option<&'a str>,
    /// How the user authenticated (RFC 8176 `amr`), compared case-insensitively.
    pub login_method: Option<&'a str>,
    /// When the user authenticated.
    pub auth_time: Option<UnixTime>,
}

/// Device posture facts as the device reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Device<'a> {
    pub os: Option<&'a str>,
    pub os_version: Option<&'a str>,
    pub client_version: Option<&'a str>,
}

/// The destination of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An HTTP request: `host` without port (case and a trailing dot are ignored), `path` from `/`.
    Http { host: &'a str, path: &'a str },
    /// An IP flow; `port` is ignored for ICMP.
    Ip {
        addr: IpAddr,
        port: u16,
        protocol: Protocol,
    },
}

/// The outcome of evaluation: a value, never an error. Names borrow from the [`PolicySet`].
///
/// [`PolicySet`]: crate::PolicySet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'p> {
    /// `action` is `Allow`, `Bypass` or `ServiceAuth`.
    Allow {
        application: &'p str,
        policy: &'p str,
        action: crate::Action,
    },
    Deny(DenyReason<'p>),
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason<'p> {
    /// No application covers the destination (deny by default).
    NoApplication,
    /// An application matched but none of its policies did.
    NoPolicyMatched { application: &'p str },
    /// No policy matched, the request has no user and the application has `allow` policies: the
    /// edge may send the person to log in.
    AuthenticationRequired { application: &'p str },
    /// No policy matched, the request has no service token and the application has
    /// `service_auth` policies.
    ServiceAuthRequired { application: &'p str },
    /// A `block` policy matched.
    Blocked {
        application: &'p str,
        policy: &'p str,
    },
}

impl Decision<'_> {
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The application that decided, if one matched.
    pub fn application(&self) -> Option<&str> {
        match *self {
            Self::Allow { application, .. }
            | Self::Deny(
                DenyReason::NoPolicyMatched { application }
                | DenyReason::AuthenticationRequired { application }
                | DenyReason::ServiceAuthRequired { application }
                | DenyReason::Blocked { application, .. },
            ) => Some(application),
            Self::Deny(DenyReason::NoApplication) => None,
        }
    }

    /// The policy that decided, if one matched.
    pub fn policy(&self) -> Option<&str> {
        match *self {
            Self::Allow { policy, .. } | Self::Deny(DenyReason::Blocked { policy, .. }) => {
                Some(policy)
            }
            Self::Deny(
                DenyReason::NoApplication
                | DenyReason::NoPolicyMatched { .. }
                | DenyReason::AuthenticationRequired { .. }
                | DenyReason::ServiceAuthRequired { .. },
            ) => None,
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Http { host, path } if path.is_empty() || path == "/" => write!(f, "host {host}"),
            Self::Http { host, path } => write!(f, "host {host} path {path}"),
            Self::Ip {
                addr,
                protocol: Protocol::Icmp,
                ..
            } => write!(f, "{addr} icmp"),
            Self::Ip {
                addr,
                port,
                protocol,
            } => write!(f, "{addr} {protocol} port {port}"),
        }
    }
}
