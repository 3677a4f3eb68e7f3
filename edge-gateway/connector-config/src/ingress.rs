//! Ingress rules: validation of the list as `cloudflared tunnel ingress validate` does it, and
//! first-match lookup of a request's rule as cloudflared's `FindMatchingRule` does it.

use std::fmt;

use regex::Regex;
use serde::Deserialize;

use crate::error::Problem;
use crate::origin_request::{OriginRequest, RawOriginRequest};
use crate::service::{parse_service, Service};

/// The validated ingress list: zero or more rules, then a catch-all.
///
/// Indexes are 0-based; cloudflared prints them 1-based (`rule #1` is index 0).
#[derive(Debug, Clone)]
pub struct Ingress {
    /// Every rule before the catch-all, in file order.
    rules: Vec<Rule>,
    /// The last rule: no hostname (or `*`) and no path, so it matches everything.
    catch_all: Rule,
    /// The top-level `originRequest` over the built-in defaults.
    defaults: OriginRequest,
}

impl Ingress {
    /// The first rule matching `host` and `path`, and its 0-based index; the catch-all when no
    /// other rule matches, so there is always one.
    ///
    /// `host` is a `Host` header or SNI value: a port (`app.example.com:8443`, `[::1]:80`) is
    /// ignored and the comparison ignores ASCII case. `path` is the request path (the regex sees
    /// it as given, so pass it without the query string, as cloudflared does).
    pub fn matching_rule(&self, host: &str, path: &str) -> (usize, &Rule) {
        let host = strip_port(host);
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(host, path))
            .unwrap_or((self.rules.len(), &self.catch_all))
    }

    /// The rule at a 0-based index, the catch-all being the last.
    pub fn rule(&self, index: usize) -> Option<&Rule> {
        match index.cmp(&self.rules.len()) {
            std::cmp::Ordering::Less => self.rules.get(index),
            std::cmp::Ordering::Equal => Some(&self.catch_all),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Every rule in file order, the catch-all last.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(std::iter::once(&self.catch_all))
    }

    /// How many rules there are, the catch-all included (always at least 1).
    pub fn rule_count(&self) -> usize {
        self.rules.len() + 1
    }

    /// The top-level `originRequest` merged over the built-in defaults.
    pub fn defaults(&self) -> &OriginRequest {
        &self.defaults
    }
}

/// One validated ingress rule.
#[derive(Debug, Clone)]
pub struct Rule {
    hostname: Option<HostPattern>,
    path: Option<Regex>,
    service: Service,
    origin_request: OriginRequest,
}

impl Rule {
    /// The hostname pattern; `None` matches every hostname (no `hostname`, or `*`).
    pub fn hostname(&self) -> Option<&HostPattern> {
        self.hostname.as_ref()
    }

    /// The path regex; `None` matches every path. Unanchored, like Go's `MatchString`: write `^`
    /// to match from the start.
    pub fn path(&self) -> Option<&Regex> {
        self.path.as_ref()
    }

    /// Where matching traffic goes.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The effective origin settings: this rule's `originRequest` over the top-level one over the
    /// built-in defaults.
    pub fn origin_request(&self) -> &OriginRequest {
        &self.origin_request
    }

    /// Whether this rule takes a request for `host` (port already stripped) and `path`.
    fn matches(&self, host: &str, path: &str) -> bool {
        self.hostname
            .as_ref()
            .is_none_or(|pattern| pattern.matches(host))
            && self.path.as_ref().is_none_or(|regex| regex.is_match(path))
    }
}

/// A rule's `hostname`, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// `app.example.com`: that name only.
    Exact {
        /// The name, lowercase.
        name: String,
        /// Its punycode (`xn--…`) form when the name is internationalized; requests may use
        /// either.
        punycode: Option<String>,
    },
    /// `*.example.com`: any name ending in `.example.com` with at least one more label, so
    /// `a.example.com` and `a.b.example.com` but not `example.com`.
    Wildcard {
        /// The part after the `*`, leading dot included (`.example.com`), lowercase.
        suffix: String,
        /// The punycode form of `suffix` when it is internationalized.
        punycode_suffix: Option<String>,
    },
}

impl HostPattern {
    /// Whether `host` (without a port) matches, ignoring ASCII case.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact { name, punycode } => {
                host.eq_ignore_ascii_case(name)
                    || punycode
                        .as_deref()
                        .is_some_and(|p| host.eq_ignore_ascii_case(p))
            }
            Self::Wildcard {
                suffix,
                punycode_suffix,
            } => {
                ends_with_ignore_case(host, suffix)
                    || punycode_suffix
                        .as_deref()
                        .is_some_and(|p| ends_with_ignore_case(host, p))
            }
        }
    }

    fn parse(written: &str) -> Self {
        let lower = written.to_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) => Self::Wildcard {
                punycode_suffix: punycode_of(suffix.trim_start_matches('.'))
                    .map(|p| format!(".{p}")),
                suffix: suffix.to_owned(),
            },
            None => Self::Exact {
                punycode: punycode_of(&lower),
                name: lower,
            },
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact { name, .. } => f.write_str(name),
            Self::Wildcard { suffix, .. } => write!(f, "*{suffix}"),
        }
    }
}

/// One rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(default)]
    pub(crate) hostname: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    pub(crate) service: String,
    #[serde(default, rename = "originRequest")]
    pub(crate) origin_request: RawOriginRequest,
}

/// Validates every rule, reporting all problems, and builds the [`Ingress`] when there are none.
pub(crate) fn validate_ingress(
    raw: &[RawRule],
    defaults: &RawOriginRequest,
    problems: &mut Vec<Problem>,
) -> Option<Ingress> {
    let defaults = defaults.over(&OriginRequest::default());
    let count = problems.len();
    let mut rules = Vec::with_capacity(raw.len());
    for (index, raw_rule) in raw.iter().enumerate() {
        let is_last = index + 1 == raw.len();
        if let Some(rule) = validate_rule(index + 1, is_last, raw_rule, &defaults, problems) {
            rules.push(rule);
        }
    }
    if raw.is_empty() {
        problems.push(Problem::NoIngressRules);
    }
    if problems.len() > count {
        return None;
    }
    let catch_all = rules.pop()?;
    Some(Ingress {
        rules,
        catch_all,
        defaults,
    })
}

/// Checks one rule in cloudflared's order (service, hostname, path) and the Gatehouse additions.
fn validate_rule(
    number: usize,
    is_last: bool,
    raw: &RawRule,
    defaults: &OriginRequest,
    problems: &mut Vec<Problem>,
) -> Option<Rule> {
    let before = problems.len();
    let service = parse_service(number, &raw.service)
        .map_err(|p| problems.push(p))
        .ok();

    let hostname = raw.hostname.as_deref().unwrap_or("");
    let path = raw.path.as_deref().unwrap_or("");
    if has_port(hostname) {
        problems.push(Problem::HostnameHasPort { rule: number });
    }
    if !wildcard_is_valid(hostname) {
        problems.push(Problem::BadWildcard { rule: number });
    }
    let matches_every_host = hostname.is_empty() || hostname == "*";
    let is_catch_all = matches_every_host && path.is_empty();
    if is_last && !is_catch_all {
        problems.push(Problem::LastRuleNotCatchAll { rule: number });
    }
    if !is_last && is_catch_all {
        problems.push(Problem::CatchAllNotLast {
            rule: number,
            hostname: hostname.to_owned(),
        });
    }
    let regex = if path.is_empty() {
        None
    } else {
        Regex::new(path)
            .map_err(|error| {
                problems.push(Problem::InvalidRegex {
                    rule: number,
                    error: regex_error_line(&error),
                });
            })
            .ok()
    };

    let mut origin_request = raw.origin_request.over(defaults);
    if let Some(service) = &service {
        if !service.is_tcp() {
            if raw.origin_request.proxy_protocol == Some(true) {
                problems.push(Problem::ProxyProtocolNotTcp {
                    rule: number,
                    service: raw.service.clone(),
                });
            }
            // A top-level `proxyProtocol: true` is meant for the TCP rules only.
            origin_request.proxy_protocol = false;
        }
    }

    if problems.len() > before {
        return None;
    }
    Some(Rule {
        hostname: (!matches_every_host).then(|| HostPattern::parse(hostname)),
        path: regex,
        service: service?,
        origin_request,
    })
}

/// The `regex` crate's message on one line: its syntax errors repeat the pattern over several
/// lines with a caret, then end with `error: <what>`.
fn regex_error_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

/// Whether a rule hostname carries a port, as Go's `net.SplitHostPort` would split it
/// (`host:80`, `[::1]:80`; a bare IPv6 address has no port).
fn has_port(hostname: &str) -> bool {
    if hostname.starts_with('[') {
        return hostname.contains("]:");
    }
    hostname.matches(':').count() == 1
}

/// `*` alone, or one `*` as the first character followed by a dot. cloudflared's check only
/// demands that `*` be first; `*foo.example.com` passes it and then matches nothing but itself,
/// so it is rejected here.
fn wildcard_is_valid(hostname: &str) -> bool {
    match hostname.strip_prefix('*') {
        None => !hostname.contains('*'),
        Some(rest) => rest.is_empty() || (rest.starts_with('.') && !rest.contains('*')),
    }
}

/// `host` without a trailing `:port` (`[v6]:port` to `v6`), as cloudflared's `FindMatchingRule`
/// strips it; anything `net.SplitHostPort` would refuse is returned whole.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once("]:") {
            Some((inner, port))
                if !port.contains([':', '[', ']']) && !inner.contains(['[', ']']) =>
            {
                inner
            }
            Some(_) | None => host,
        };
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') && !name.contains(['[', ']']) => name,
        Some(_) | None => host,
    }
}

/// Whether `host` ends with `suffix` (which starts with a dot) and has something before it,
/// ignoring ASCII case. Compares bytes, so a multi-byte character never splits a slice.
fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
    host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The punycode form of an internationalized name, `None` when it is plain ASCII or invalid.
fn punycode_of(name: &str) -> Option<String> {
    if name.is_ascii() {
        return None;
    }
    idna::domain_to_ascii(name)
        .ok()
        .filter(|ascii| ascii != name)
}
