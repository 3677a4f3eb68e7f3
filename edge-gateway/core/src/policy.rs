//! The per-flow policy hook, and the rule list an edge config provides until identity's
//! policy arrives.

use ipnet::IpNet;
use std::net::IpAddr;
use wire::{FlowKey, Protocol};

/// What to do with a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// A decision and the rule that produced it (`None`: nothing matched, denied by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule: Option<usize>,
}

/// Decides new flows. Implementations must be cheap: this runs once per flow on the data path.
pub trait FlowPolicy {
    /// `peer` is the name of the peer that sent the flow's first packet.
    fn decide(&self, peer: &str, flow: &FlowKey) -> Decision;
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// One rule; empty lists and `None` match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub peers: Vec<String>,
    pub destinations: Vec<IpNet>,
    pub protocol: Option<Protocol>,
    pub ports: Option<PortRange>,
}

/// Ordered rules; the first that matches decides; no match denies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePolicy {
    pub rules: Vec<Rule>,
}

impl FlowPolicy for RulePolicy {
    fn decide(&self, peer: &str, flow: &FlowKey) -> Decision {
        self.rules
            .iter()
            .position(|rule| rule.matches(peer, flow))
            .map_or(
                Decision {
                    action: Action::Deny,
                    rule: None,
                },
                |index| Decision {
                    action: self.rules[index].action,
                    rule: Some(index),
                },
            )
    }
}

impl Rule {
    fn matches(&self, peer: &str, flow: &FlowKey) -> bool {
        (self.peers.is_empty() || self.peers.iter().any(|p| p == peer))
            && (self.destinations.is_empty() || contains(&self.destinations, flow.dst))
            && self.protocol.is_none_or(|p| p == flow.protocol)
            && self
                .ports
                .is_none_or(|r| (r.first..=r.last).contains(&flow.dst_port))
    }
}

fn contains(nets: &[IpNet], addr: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&addr))
}

impl PortRange {
    /// Parses `80` or `8000-8080`.
    pub fn parse(text: &str) -> Option<PortRange> {
        match text.split_once('-') {
            Some((a, b)) => {
                let first = a.trim().parse().ok()?;
                let last = b.trim().parse().ok()?;
                (first <= last).then_some(PortRange { first, last })
            }
            None => {
                let port = text.trim().parse().ok()?;
                Some(PortRange {
                    first: port,
                    last: port,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(dst: &str, port: u16, protocol: Protocol) -> FlowKey {
        FlowKey {
            protocol,
            src: "100.64.0.2".parse().expect("ip"),
            src_port: 40000,
            dst: dst.parse().expect("ip"),
            dst_port: port,
        }
    }

    fn rule(action: Action) -> Rule {
        Rule {
            action,
            peers: vec![],
            destinations: vec![],
            protocol: None,
            ports: None,
        }
    }

    #[test]
    fn no_rules_deny_by_default() {
        let decision = RulePolicy::default().decide("alice", &flow("10.0.0.1", 80, Protocol::Tcp));
        assert_eq!(
            decision,
            Decision {
                action: Action::Deny,
                rule: None
            }
        );
    }

    #[test]
    fn first_matching_rule_wins_and_is_reported() {
        let policy = RulePolicy {
            rules: vec![
                Rule {
                    destinations: vec!["10.0.0.9/32".parse().expect("net")],
                    ..rule(Action::Deny)
                },
                Rule {
                    peers: vec!["alice".into()],
                    protocol: Some(Protocol::Tcp),
                    ports: PortRange::parse("80-443"),
                    ..rule(Action::Allow)
                },
            ],
        };
        let d = |peer: &str, dst: &str, port, proto| policy.decide(peer, &flow(dst, port, proto));
        assert_eq!(d("alice", "10.0.0.9", 80, Protocol::Tcp).rule, Some(0));
        assert_eq!(
            d("alice", "10.0.0.8", 80, Protocol::Tcp).action,
            Action::Allow
        );
        assert_eq!(
            d("alice", "10.0.0.8", 22, Protocol::Tcp).action,
            Action::Deny
        );
        assert_eq!(d("bob", "10.0.0.8", 80, Protocol::Tcp).action, Action::Deny);
        assert_eq!(
            d("alice", "10.0.0.8", 80, Protocol::Udp).action,
            Action::Deny
        );
    }

    #[test]
    fn port_ranges_parse_strictly() {
        assert_eq!(
            PortRange::parse("80"),
            Some(PortRange {
                first: 80,
                last: 80
            })
        );
        assert_eq!(PortRange::parse("90-80"), None);
        assert_eq!(PortRange::parse("x"), None);
        assert_eq!(PortRange::parse("70000"), None);
    }
}
