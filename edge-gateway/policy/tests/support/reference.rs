//! A naive reference evaluator: a linear scan over every destination and rule of a parsed
//! [`PolicyFile`] with plain string comparisons, written straight from the README's semantics.
//! The property tests check [`PolicySet::evaluate`] against it, and `examples/bench_policy.rs`
//! times it as the "naive" figure.
//!
//! [`PolicySet::evaluate`]: edge_policy::PolicySet::evaluate

use edge_policy::{
    Action, Decision, DenyReason, Destination, HostPattern, Policy, PolicyFile, Protocol, Request,
    Selector, Target, UnixTime,
};

/// Decides `request` at `now` the slow, obvious way.
pub(crate) fn evaluate<'f>(
    file: &'f PolicyFile,
    request: &Request<'_>,
    now: UnixTime,
) -> Decision<'f> {
    let Some(app) = best_application(file, &request.target) else {
        return Decision::Deny(DenyReason::NoApplication);
    };
    for policy in &app.policies {
        if policy_matches(policy, request, now) {
            return if policy.action == Action::Block {
                Decision::Deny(DenyReason::Blocked {
                    application: &app.name,
                    policy: &policy.name,
                })
            } else {
                Decision::Allow {
                    application: &app.name,
                    policy: &policy.name,
                    action: policy.action,
                }
            };
        }
    }
    let has = |action| app.policies.iter().any(|p| p.action == action);
    let application = app.name.as_str();
    Decision::Deny(if request.user.is_none() && has(Action::Allow) {
        DenyReason::AuthenticationRequired { application }
    } else if request.service_token.is_none() && has(Action::ServiceAuth) {
        DenyReason::ServiceAuthRequired { application }
    } else {
        DenyReason::NoPolicyMatched { application }
    })
}

/// Scores every destination; the highest wins, the first in file order among equals.
fn best_application<'f>(
    file: &'f PolicyFile,
    target: &Target<'_>,
) -> Option<&'f edge_policy::Application> {
    let mut best: Option<((u8, usize, usize), &edge_policy::Application)> = None;
    for app in &file.applications {
        for destination in &app.destinations {
            if let Some(score) = score(destination, target) {
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, app));
                }
            }
        }
    }
    best.map(|(_, app)| app)
}

fn score(destination: &Destination, target: &Target<'_>) -> Option<(u8, usize, usize)> {
    match (destination, target) {
        (Destination::Internet, _) => Some((0, 0, 0)),
        (
            Destination::Host { host, path },
            Target::Http {
                host: asked,
                path: asked_path,
            },
        ) => {
            let asked = asked.trim_end_matches('.').to_lowercase();
            let (kind, len) = match host {
                HostPattern::Exact(name) if *name == asked => (3, name.len()),
                HostPattern::Wildcard(suffix)
                    if asked.ends_with(&format!(".{suffix}")) && asked.len() > suffix.len() + 1 =>
                {
                    (2, suffix.len())
                }
                HostPattern::Exact(_) | HostPattern::Wildcard(_) => return None,
            };
            let path_len = match path {
                None => 0,
                Some(prefix) if prefix.as_str() == "/" => 0,
                Some(prefix) => {
                    let p = prefix.as_str();
                    let under = *asked_path == p
                        || (asked_path.starts_with(p) && asked_path[p.len()..].starts_with('/'));
                    if !under {
                        return None;
                    }
                    p.len()
                }
            };
            Some((kind, len, path_len))
        }
        (
            Destination::Network {
                cidr,
                ports,
                protocol,
            },
            Target::Ip {
                addr,
                port,
                protocol: asked,
            },
        ) => {
            let addr = addr.to_canonical();
            let admitted = cidr.contains(addr)
                && protocol.is_none_or(|p| p == *asked)
                && (*asked == Protocol::Icmp
                    || ports.is_empty()
                    || ports.iter().any(|r| r.first <= *port && *port <= r.last));
            admitted.then(|| (1, usize::from(cidr.0.prefix_len()), 0))
        }
        (Destination::Host { .. }, Target::Ip { .. })
        | (Destination::Network { .. }, Target::Http { .. }) => None,
    }
}

fn policy_matches(policy: &Policy, request: &Request<'_>, now: UnixTime) -> bool {
    let gate = match policy.action {
        Action::Allow => request.user.is_some(),
        Action::ServiceAuth => request.service_token.is_some(),
        Action::Block | Action::Bypass => true,
    };
    let included = if policy.include.is_empty() {
        policy.action == Action::Bypass
    } else {
        policy
            .include
            .iter()
            .any(|s| selector_matches(s, request, now))
    };
    gate && included
        && policy
            .require
            .iter()
            .all(|s| selector_matches(s, request, now))
        && !policy
            .exclude
            .iter()
            .any(|s| selector_matches(s, request, now))
}

fn selector_matches(selector: &Selector, request: &Request<'_>, now: UnixTime) -> bool {
    let user = request.user;
    let device = request.device.unwrap_or_default();
    match selector {
        Selector::Everyone => true,
        Selector::Email(e) => user.is_some_and(|u| u.email.eq_ignore_ascii_case(e)),
        Selector::EmailDomain(d) => user.is_some_and(|u| {
            u.email
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(d))
        }),
        Selector::Group(g) => user.is_some_and(|u| u.groups.iter().any(|x| x == g)),
        Selector::Idp(i) => user.and_then(|u| u.idp) == Some(i.as_str()),
        Selector::LoginMethod(m) => user
            .and_then(|u| u.login_method)
            .is_some_and(|x| x.eq_ignore_ascii_case(m)),
        Selector::Os(o) => device.os.is_some_and(|x| x.eq_ignore_ascii_case(o)),
        Selector::OsVersion(v) => device.os_version.is_some_and(|x| v.is_satisfied_by(x)),
        Selector::ClientVersion(v) => device.client_version.is_some_and(|x| v.is_satisfied_by(x)),
        Selector::Ip(net) => request
            .source_ip
            .is_some_and(|ip| net.contains(ip.to_canonical())),
        Selector::ServiceToken(t) => request.service_token == Some(t.as_str()),
        Selector::AnyServiceToken => request.service_token.is_some(),
        Selector::MaxAuthAge(max) => user
            .and_then(|u| u.auth_time)
            .is_some_and(|at| now.0 - at.0 <= i64::try_from(*max).unwrap_or(i64::MAX)),
        Selector::Time(window) => window.contains(now),
    }
}
