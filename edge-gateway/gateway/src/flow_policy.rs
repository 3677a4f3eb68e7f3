//! How the edge decides a new IP flow from a WireGuard peer.
//!
//! In order: the edge file's `[[policy]]` rules, when one matches (local overrides, and the
//! whole policy of an edge without identity); flows to the application front (each request on
//! them is decided there); then identity's access policy for the device behind the flow's
//! source address ([`Access`](edge_core::access::Access)). Nothing matching is denied.

use crate::access_state::SharedAccess;
use crate::decision_audit::DecisionAudit;
use crate::live_flows::FlowTarget;
use edge_core::{Action, Decision, FlowPolicy, RulePolicy};
use identity_claims::DecisionKind;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wire::{FlowKey, Protocol};

#[derive(Clone)]
pub(crate) struct EdgeFlowPolicy {
    pub(crate) rules: RulePolicy,
    /// The application front's TCP listeners.
    pub(crate) front: BTreeSet<SocketAddr>,
    pub(crate) access: Arc<SharedAccess>,
    /// Where identity-policy decisions are recorded.
    pub(crate) audit: Option<Arc<DecisionAudit>>,
}

impl EdgeFlowPolicy {
    /// Whether a live flow the edge terminates (connector TCP/UDP, front request, TLS) is
    /// still allowed: an IP flow as a new flow from `peer` would be decided, a request or TLS
    /// flow by identity's policy (the front decides those alone).
    pub(crate) fn still_allows(&self, peer: &str, source: IpAddr, target: &FlowTarget) -> bool {
        match target {
            FlowTarget::Ip {
                addr,
                port,
                protocol,
            } => {
                let protocol = match protocol {
                    edge_policy::Protocol::Tcp => Protocol::Tcp,
                    edge_policy::Protocol::Udp => Protocol::Udp,
                    edge_policy::Protocol::Icmp => Protocol::Icmp,
                };
                let flow = FlowKey {
                    protocol,
                    src: source,
                    src_port: 0,
                    dst: *addr,
                    dst_port: *port,
                };
                self.decide(peer, &flow).action == Action::Allow
            }
            FlowTarget::Http { .. } => {
                self.access
                    .current()
                    .decide(
                        source,
                        target.as_policy_target(),
                        crate::app_front::policy_now(),
                    )
                    .allowed
            }
        }
    }
}

impl FlowPolicy for EdgeFlowPolicy {
    fn decide(&self, peer: &str, flow: &FlowKey) -> Decision {
        let by_rule = self.rules.decide(peer, flow);
        if by_rule.rule.is_some() {
            return by_rule;
        }
        let allow = Decision {
            action: Action::Allow,
            rule: None,
        };
        if flow.protocol == Protocol::Tcp
            && self
                .front
                .contains(&SocketAddr::new(flow.dst, flow.dst_port))
        {
            return allow;
        }
        let protocol = match flow.protocol {
            Protocol::Tcp => edge_policy::Protocol::Tcp,
            Protocol::Udp => edge_policy::Protocol::Udp,
            Protocol::Icmp => edge_policy::Protocol::Icmp,
            Protocol::Other(_) => return by_rule,
        };
        let target = edge_policy::Target::Ip {
            addr: flow.dst,
            port: flow.dst_port,
            protocol,
        };
        let access = self.access.current();
        let verdict = access.decide(flow.src, target, crate::app_front::policy_now());
        if let Some(audit) = &self.audit {
            audit.record_verdict(
                &verdict,
                access.device(flow.src).into(),
                DecisionKind::Flow,
                flow.src,
                target,
                None,
            );
        }
        if verdict.allowed {
            allow
        } else {
            by_rule
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
version = 1
[[applications]]
name = "db"
destinations = [{ cidr = "10.9.0.0/24", ports = [5432], protocol = "tcp" }]
[[applications.policies]]
name = "open"
action = "bypass"
include = [{ everyone = true }]
"#;

    fn flow(dst: &str, port: u16, protocol: Protocol) -> FlowKey {
        FlowKey {
            protocol,
            src: "100.64.0.2".parse().expect("ip"),
            dst: dst.parse().expect("ip"),
            src_port: 40000,
            dst_port: port,
        }
    }

    fn edge_policy(rules: RulePolicy) -> EdgeFlowPolicy {
        let set = edge_policy::load(POLICY, edge_policy::Format::Toml, "t.toml").expect("policy");
        EdgeFlowPolicy {
            rules,
            front: ["100.64.0.1:80".parse().expect("addr")].into(),
            access: Arc::new(SharedAccess::new(Some(set))),
            audit: None,
        }
    }

    #[test]
    fn identity_policy_front_and_default_deny() {
        let policy = edge_policy(RulePolicy::default());
        let decide = |f: FlowKey| policy.decide("peer", &f).action;
        assert_eq!(decide(flow("10.9.0.7", 5432, Protocol::Tcp)), Action::Allow);
        assert_eq!(decide(flow("10.9.0.7", 22, Protocol::Tcp)), Action::Deny);
        assert_eq!(decide(flow("100.64.0.1", 80, Protocol::Tcp)), Action::Allow);
        assert_eq!(decide(flow("100.64.0.1", 80, Protocol::Udp)), Action::Deny);
        assert_eq!(decide(flow("10.8.0.1", 53, Protocol::Udp)), Action::Deny);
    }

    #[test]
    fn live_flows_a_file_rule_allows_stay_allowed_without_identity_policy() {
        // The regression: connector flows allowed by `[[policy]]` were closed on every feed
        // message because the recheck asked identity's policy alone.
        let allow_all = RulePolicy {
            rules: vec![edge_core::Rule {
                action: Action::Allow,
                peers: vec![],
                destinations: vec![],
                protocol: None,
                ports: None,
            }],
        };
        let policy = EdgeFlowPolicy {
            access: Arc::new(SharedAccess::new(None)),
            ..edge_policy(allow_all)
        };
        let source = "100.64.0.2".parse().expect("ip");
        let tcp = FlowTarget::Ip {
            addr: "10.99.0.5".parse().expect("ip"),
            port: 8080,
            protocol: edge_policy::Protocol::Tcp,
        };
        assert!(policy.still_allows("peer", source, &tcp));
        let request = FlowTarget::Http {
            host: "app.test".to_owned(),
            path: "/".to_owned(),
        };
        assert!(
            !policy.still_allows("peer", source, &request),
            "requests answer to identity's policy only"
        );
        let identity_only = edge_policy(RulePolicy::default());
        let db = FlowTarget::Ip {
            addr: "10.9.0.7".parse().expect("ip"),
            port: 5432,
            protocol: edge_policy::Protocol::Tcp,
        };
        assert!(identity_only.still_allows("peer", source, &db));
        assert!(!identity_only.still_allows("peer", source, &tcp));
    }

    #[test]
    fn a_matching_file_rule_comes_first() {
        let rules = RulePolicy {
            rules: vec![edge_core::Rule {
                action: Action::Deny,
                peers: vec![],
                destinations: vec!["10.9.0.0/24".parse().expect("net")],
                protocol: None,
                ports: None,
            }],
        };
        let policy = edge_policy(rules);
        let denied = policy.decide("peer", &flow("10.9.0.7", 5432, Protocol::Tcp));
        assert_eq!((denied.action, denied.rule), (Action::Deny, Some(0)));
    }
}
