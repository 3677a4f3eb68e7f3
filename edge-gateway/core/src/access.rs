//! Per-request access decisions with identity's policy: who is behind a tunnel address, and
//! whether they may make this request now.
//!
//! The edge learns devices (their tunnel addresses, user, groups, posture, login) and the
//! active policy from identity's config feed, or reads a policy file when it runs without
//! identity. [`Access`] holds both, indexed for the data path; the driver rebuilds it when the
//! feed changes and swaps it in whole, so a decision always sees one consistent revision.
//! Pure: the caller passes the time, and nothing here is verified (the feed is authenticated by
//! the driver).

use edge_policy::{Decision, DenyReason, PolicySet, Request, Target, UnixTime};
use identity_claims::feed::{Device, FeedReplica, ServiceToken};
use identity_claims::{KeySet, UserFacts};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Devices by tunnel address and the policy that decides their requests, with what clientless
/// requests are checked against (identity's signing keys, revoked sessions, machine tokens:
/// [`crate::clientless`]).
#[derive(Debug, Default)]
pub struct Access {
    policy: Option<Arc<PolicySet>>,
    devices: BTreeMap<IpAddr, Device>,
    keys: KeySet,
    revoked_sessions: BTreeSet<String>,
    service_tokens: BTreeMap<String, ServiceToken>,
}

/// What a decision says, with owned names for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The application that decided, if one matched.
    pub application: Option<String>,
    /// The policy that decided, if one matched.
    pub policy: Option<String>,
    /// The device behind the source address, if enrolled.
    pub device_id: Option<String>,
    /// Why, in one short phrase a person can be shown (no policy internals, no personal data).
    pub summary: &'static str,
}

impl Access {
    /// No policy: every request is denied.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// `policy` for requests from unknown sources only (no feed).
    pub fn with_policy(policy: Arc<PolicySet>) -> Self {
        Self {
            policy: Some(policy),
            ..Self::default()
        }
    }

    /// The replica's devices with `policy` (the feed's policy compiled by the caller, or the
    /// edge's own file when the feed has none).
    pub fn from_replica(replica: &FeedReplica, policy: Option<Arc<PolicySet>>) -> Self {
        let mut devices = BTreeMap::new();
        for device in replica.devices() {
            for net in &device.addresses {
                devices.insert(net.addr(), device.clone());
            }
        }
        Self {
            policy,
            devices,
            keys: KeySet::from_jwks(replica.signing_keys()),
            revoked_sessions: replica.revoked_session_ids().map(str::to_owned).collect(),
            service_tokens: replica
                .service_tokens()
                .map(|t| (t.token_id.clone(), t.clone()))
                .collect(),
        }
    }

    /// The policy, if one is loaded.
    pub fn policy(&self) -> Option<&PolicySet> {
        self.policy.as_deref()
    }

    /// Identity's signing keys (from the feed).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Whether identity revoked the session `sid`.
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        self.revoked_sessions.contains(sid)
    }

    /// The live machine token `token_id`, if the feed has it.
    pub fn service_token(&self, token_id: &str) -> Option<&ServiceToken> {
        self.service_tokens.get(token_id)
    }

    /// Whether a policy is loaded (without one everything is denied).
    pub fn has_policy(&self) -> bool {
        self.policy.is_some()
    }

    /// The enrolled device using `address`, if any.
    pub fn device(&self, address: IpAddr) -> Option<&Device> {
        self.devices.get(&canonical(address))
    }

    /// Decides one HTTP request (`host` as sent, `path` from `/`) from `source`.
    pub fn decide_http(&self, source: IpAddr, host: &str, path: &str, now: UnixTime) -> Verdict {
        self.decide(source, Target::Http { host, path }, now)
    }

    /// Decides a request to `target` from `source`.
    pub fn decide(&self, source: IpAddr, target: Target<'_>, now: UnixTime) -> Verdict {
        let device = self.device(source);
        let device_id = device.map(|d| d.device_id.clone());
        let Some(policy) = &self.policy else {
            return Verdict::no_policy(device_id);
        };
        let request = request_for(device, source, target);
        verdict(policy.evaluate(&request, now), device_id)
    }

    /// The full explanation of a decision, for DEBUG logs and admins (names policy rules and
    /// may name users: never show it to the requester).
    pub fn explain(&self, source: IpAddr, target: Target<'_>, now: UnixTime) -> String {
        match &self.policy {
            None => "deny: no access policy is loaded".to_owned(),
            Some(policy) => {
                let device = self.device(source);
                policy
                    .explain(&request_for(device, source, target), now)
                    .to_string()
            }
        }
    }
}

impl Verdict {
    /// The denial when no policy is loaded.
    pub(crate) fn no_policy(device_id: Option<String>) -> Self {
        Self {
            allowed: false,
            application: None,
            policy: None,
            device_id,
            summary: "no access policy is loaded",
        }
    }
}

/// The policy's view of a user from a token's facts (empty facts are unknown).
pub(crate) fn policy_user(user: &UserFacts) -> edge_policy::User<'_> {
    edge_policy::User {
        email: &user.email,
        groups: &user.groups,
        idp: non_empty(&user.idp),
        login_method: non_empty(&user.login_method),
        auth_time: auth_time(user.auth_time),
    }
}

fn auth_time(at: identity_claims::UnixTime) -> Option<UnixTime> {
    Some(UnixTime(i64::try_from(at.0).unwrap_or(i64::MAX))).filter(|t| t.0 > 0)
}

/// The policy request for a source with an optional enrolled device.
fn request_for<'a>(device: Option<&'a Device>, source: IpAddr, target: Target<'a>) -> Request<'a> {
    Request {
        user: device.map(|d| edge_policy::User {
            email: &d.user.email,
            groups: &d.user.groups,
            idp: Some(d.user.idp.as_str()).filter(|s| !s.is_empty()),
            login_method: Some(d.login_method.as_str()).filter(|s| !s.is_empty()),
            auth_time: auth_time(d.auth_time),
        }),
        service_token: None,
        device: device.map(|d| edge_policy::Device {
            os: non_empty(&d.posture.os),
            os_version: non_empty(&d.posture.os_version),
            client_version: non_empty(&d.posture.client_version),
        }),
        source_ip: Some(source),
        target,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

pub(crate) fn verdict(decision: Decision<'_>, device_id: Option<String>) -> Verdict {
    let summary = match decision {
        Decision::Allow { .. } => "allowed",
        Decision::Deny(DenyReason::NoApplication) => "no application covers this address",
        Decision::Deny(DenyReason::NoPolicyMatched { .. }) => "no policy allows this request",
        Decision::Deny(DenyReason::AuthenticationRequired { .. }) => {
            "this application needs a signed-in user"
        }
        Decision::Deny(DenyReason::ServiceAuthRequired { .. }) => {
            "this application needs a service token"
        }
        Decision::Deny(DenyReason::Blocked { .. }) => "a policy blocks this request",
    };
    Verdict {
        allowed: decision.is_allow(),
        application: decision.application().map(str::to_owned),
        policy: decision.policy().map(str::to_owned),
        device_id,
        summary,
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_claims::feed::{DeviceUser, FeedState, Revision};
    use identity_claims::Posture;

    const POLICY: &str = r#"
version = 1
[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.test" }]
[[applications.policies]]
name = "eng"
action = "allow"
include = [{ group = "eng" }]
[[applications.policies]]
name = "no-admin"
action = "block"
include = [{ everyone = true }]
"#;

    fn policy() -> PolicySet {
        edge_policy::load(POLICY, edge_policy::Format::Toml, "test.toml").expect("policy")
    }

    fn device(id: &str, address: &str, groups: &[&str]) -> Device {
        Device {
            device_id: id.to_owned(),
            public_key: format!("key-{id}"),
            addresses: vec![address.parse().expect("net")],
            user: DeviceUser {
                user_id: format!("u-{id}"),
                email: format!("{id}@corp.test"),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                idp: "local".to_owned(),
            },
            posture: Posture::default(),
            enrolled_at: identity_claims::UnixTime(1),
            login_method: "pwd".to_owned(),
            auth_time: identity_claims::UnixTime(1),
        }
    }

    fn access() -> Access {
        let replica = FeedReplica::from_snapshot(
            Revision(1),
            FeedState {
                devices: vec![
                    device("ada", "100.64.0.2/32", &["eng"]),
                    device("bob", "100.64.0.3/32", &[]),
                ],
                ..FeedState::default()
            },
        );
        Access::from_replica(&replica, Some(Arc::new(policy())))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_device_behind_the_address_decides() {
        let access = access();
        let ada = access.decide_http(ip("100.64.0.2"), "wiki.corp.test", "/", UnixTime(10));
        assert!(ada.allowed, "{ada:?}");
        assert_eq!(ada.application.as_deref(), Some("wiki"));
        assert_eq!(ada.policy.as_deref(), Some("eng"));
        assert_eq!(ada.device_id.as_deref(), Some("ada"));

        let bob = access.decide_http(ip("100.64.0.3"), "wiki.corp.test", "/", UnixTime(10));
        assert!(!bob.allowed);
        assert_eq!(bob.policy.as_deref(), Some("no-admin"));
        assert_eq!(bob.summary, "a policy blocks this request");
    }

    #[test]
    fn mapped_ipv4_sources_find_their_device() {
        let access = access();
        let mapped = ip("::ffff:100.64.0.2");
        assert_eq!(
            access.device(mapped).map(|d| d.device_id.as_str()),
            Some("ada")
        );
    }

    #[test]
    fn unknown_hosts_and_sources_are_denied() {
        let access = access();
        let other = access.decide_http(ip("100.64.0.2"), "other.corp.test", "/", UnixTime(10));
        assert!(!other.allowed);
        assert_eq!(other.summary, "no application covers this address");
        let stranger = access.decide_http(ip("100.64.0.9"), "wiki.corp.test", "/", UnixTime(10));
        assert!(!stranger.allowed);
        assert_eq!(stranger.device_id, None);
    }

    #[test]
    fn without_a_policy_everything_is_denied() {
        let verdict =
            Access::deny_all().decide_http(ip("100.64.0.2"), "wiki.corp.test", "/", UnixTime(1));
        assert!(!verdict.allowed);
        assert_eq!(verdict.summary, "no access policy is loaded");
    }

    #[test]
    fn explanations_name_the_rule() {
        let text = access().explain(
            ip("100.64.0.2"),
            Target::Http {
                host: "wiki.corp.test",
                path: "/",
            },
            UnixTime(10),
        );
        assert!(text.starts_with("allow: application `wiki`"), "{text}");
    }
}
