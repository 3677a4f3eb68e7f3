//! The compiled, immutable [`PolicySet`]: destination indexes, interned names, and evaluation.
//!
//! Finding the application is a hash lookup of the exact host, then one per wildcard suffix
//! (longest first), or one per distinct prefix length of the address family (longest first).
//! Names in rules (emails, domains, groups, …) are interned to `u32` ids when compiling; the
//! request's names are looked up once per evaluation, so rules compare integers. Evaluation does
//! not allocate unless the user has more than [`INLINE_GROUPS`] groups known to the policy.

use crate::file::{Action, Application, Destination, Policy, PolicyFile, Selector};
use crate::request::{Decision, DenyReason, Request, Target};
use crate::values::{
    HostPattern, PortRange, Protocol, TimeWindow, UnixTime, Version, MAX_HOSTNAME_LEN,
};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Groups of a user resolved without heap allocation; more spill to the heap.
pub const INLINE_GROUPS: usize = 16;
/// Longest email compared: 254 characters (RFC 5321 §4.5.3.1.3, a 256-octet path less `<>`).
const MAX_EMAIL_LEN: usize = 254;
/// Longest other name compared case-insensitively (OS names, login methods).
const MAX_NAME_LEN: usize = 64;

/// A compiled policy file. Cheap to share (`Arc<PolicySet>`) and never changes.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub(crate) applications: Vec<CompiledApp>,
    /// Exact hostnames → candidates, most specific path first, then file order.
    hosts: FxHashMap<Box<str>, Vec<HostEntry>>,
    /// Wildcard suffixes (`corp.example` for `*.corp.example`) → candidates, ordered likewise.
    wildcards: FxHashMap<Box<str>, Vec<HostEntry>>,
    /// Networks by prefix length, longest first.
    v4: Vec<PrefixTable<u32>>,
    v6: Vec<PrefixTable<u128>>,
    /// The first application with `internet = true`.
    internet: Option<(u32, u32)>,
    names: Names,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledApp {
    pub(crate) name: Box<str>,
    pub(crate) destinations: Vec<Destination>,
    pub(crate) policies: Vec<CompiledPolicy>,
    has_allow: bool,
    has_service_auth: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledPolicy {
    pub(crate) source: Policy,
    include: Vec<Cond>,
    require: Vec<Cond>,
    exclude: Vec<Cond>,
}

#[derive(Debug, Clone)]
struct HostEntry {
    /// `None`: every path.
    path: Option<Box<str>>,
    app: u32,
    destination: u32,
}

#[derive(Debug, Clone)]
struct PrefixTable<K> {
    len: u8,
    networks: FxHashMap<K, Vec<NetEntry>>,
}

#[derive(Debug, Clone)]
struct NetEntry {
    ports: Box<[PortRange]>,
    protocol: Option<Protocol>,
    app: u32,
    destination: u32,
}

/// A rule with its names interned.
#[derive(Debug, Clone)]
enum Cond {
    Everyone,
    Email(u32),
    EmailDomain(u32),
    Group(u32),
    Idp(u32),
    LoginMethod(u32),
    Os(u32),
    OsVersion(Version),
    ClientVersion(Version),
    Ip(IpNet),
    ServiceToken(u32),
    AnyServiceToken,
    MaxAuthAge(u64),
    Time(TimeWindow),
}

/// Interned names, one table per kind.
#[derive(Debug, Clone, Default)]
struct Names {
    emails: FxHashMap<Box<str>, u32>,
    domains: FxHashMap<Box<str>, u32>,
    groups: FxHashMap<Box<str>, u32>,
    idps: FxHashMap<Box<str>, u32>,
    logins: FxHashMap<Box<str>, u32>,
    oses: FxHashMap<Box<str>, u32>,
    tokens: FxHashMap<Box<str>, u32>,
}

/// Why a policy did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    NoUser,
    NoServiceToken,
    NoIncludeMet,
    /// 0-based index into `require`.
    RequireNotMet(usize),
    /// 0-based index into `exclude`.
    ExcludeMet(usize),
}

/// Why a policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    /// 0-based index into `include`.
    Include(usize),
    /// A `bypass` without `include`.
    Everyone,
}

/// Observes evaluation; `explain` records, `evaluate` uses [`NoTrace`], which compiles away.
pub(crate) trait Trace {
    fn application(&mut self, app: &CompiledApp, destination: &Destination);
    fn policy(&mut self, policy: &CompiledPolicy, outcome: Result<Hit, Skip>);
}

pub(crate) struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn application(&mut self, _: &CompiledApp, _: &Destination) {}
    #[inline(always)]
    fn policy(&mut self, _: &CompiledPolicy, _: Result<Hit, Skip>) {}
}

impl PolicySet {
    /// Compiles a parsed file. Never fails: [`parse`](crate::parse) has validated it; a policy
    /// built by hand without `include` (other than `bypass`) never matches.
    pub fn compile(file: &PolicyFile) -> Self {
        let mut set = Self {
            applications: Vec::with_capacity(file.applications.len()),
            hosts: FxHashMap::default(),
            wildcards: FxHashMap::default(),
            v4: Vec::new(),
            v6: Vec::new(),
            internet: None,
            names: Names::default(),
        };
        // Built in ordered maps, then frozen into hash maps: nothing iterates in hash order.
        let mut hosts: BTreeMap<&str, Vec<HostEntry>> = BTreeMap::new();
        let mut wildcards: BTreeMap<&str, Vec<HostEntry>> = BTreeMap::new();
        let mut v4: BTreeMap<u8, BTreeMap<u32, Vec<NetEntry>>> = BTreeMap::new();
        let mut v6: BTreeMap<u8, BTreeMap<u128, Vec<NetEntry>>> = BTreeMap::new();
        for (app_index, app) in file.applications.iter().enumerate() {
            let app_id = index_u32(app_index);
            for (dest_index, destination) in app.destinations.iter().enumerate() {
                let destination_id = index_u32(dest_index);
                match destination {
                    Destination::Host { host, path } => {
                        let entry = HostEntry {
                            path: path
                                .as_ref()
                                .filter(|p| p.as_str() != "/")
                                .map(|p| p.as_str().into()),
                            app: app_id,
                            destination: destination_id,
                        };
                        let (map, key) = match host {
                            HostPattern::Exact(name) => (&mut hosts, name),
                            HostPattern::Wildcard(suffix) => (&mut wildcards, suffix),
                        };
                        map.entry(key.as_str()).or_default().push(entry);
                    }
                    Destination::Network {
                        cidr,
                        ports,
                        protocol,
                    } => {
                        let entry = NetEntry {
                            ports: ports.clone().into_boxed_slice(),
                            protocol: *protocol,
                            app: app_id,
                            destination: destination_id,
                        };
                        match cidr.0.trunc() {
                            IpNet::V4(net) => v4
                                .entry(net.prefix_len())
                                .or_default()
                                .entry(u32::from(net.network()))
                                .or_default()
                                .push(entry),
                            IpNet::V6(net) => v6
                                .entry(net.prefix_len())
                                .or_default()
                                .entry(u128::from(net.network()))
                                .or_default()
                                .push(entry),
                        }
                    }
                    Destination::Internet => {
                        set.internet.get_or_insert((app_id, destination_id));
                    }
                }
            }
            let compiled = set.compile_app(app);
            set.applications.push(compiled);
        }
        // Entries were pushed in file order; a stable sort keeps it among equal path lengths.
        set.hosts = into_host_index(hosts);
        set.wildcards = into_host_index(wildcards);
        set.v4 = into_tables(v4);
        set.v6 = into_tables(v6);
        set
    }

    /// Decides a request at `now`. Does not allocate (see the module docs).
    pub fn evaluate(&self, request: &Request<'_>, now: UnixTime) -> Decision<'_> {
        self.run(request, now, &mut NoTrace)
    }

    /// The names of the applications in file order.
    pub fn application_names(&self) -> impl Iterator<Item = &str> {
        self.applications.iter().map(|a| &*a.name)
    }

    /// The number of rules (selectors in `include`, `require` and `exclude`) over all policies.
    pub fn rule_count(&self) -> usize {
        self.applications
            .iter()
            .flat_map(|a| &a.policies)
            .map(|p| p.include.len() + p.require.len() + p.exclude.len())
            .sum()
    }

    pub(crate) fn run<T: Trace>(
        &self,
        request: &Request<'_>,
        now: UnixTime,
        trace: &mut T,
    ) -> Decision<'_> {
        let Some((app_id, destination_id)) = self.find_application(&request.target) else {
            return Decision::Deny(DenyReason::NoApplication);
        };
        let Some(app) = self.applications.get(app_id as usize) else {
            return Decision::Deny(DenyReason::NoApplication);
        };
        if let Some(destination) = app.destinations.get(destination_id as usize) {
            trace.application(app, destination);
        }
        let facts = Facts::resolve(&self.names, request, now);
        for policy in &app.policies {
            let outcome = policy.check(&facts);
            trace.policy(policy, outcome);
            if outcome.is_ok() {
                let application = &*app.name;
                let name = policy.source.name.as_str();
                return match policy.source.action {
                    Action::Block => Decision::Deny(DenyReason::Blocked {
                        application,
                        policy: name,
                    }),
                    action @ (Action::Allow | Action::Bypass | Action::ServiceAuth) => {
                        Decision::Allow {
                            application,
                            policy: name,
                            action,
                        }
                    }
                };
            }
        }
        let application = &*app.name;
        Decision::Deny(if request.user.is_none() && app.has_allow {
            DenyReason::AuthenticationRequired { application }
        } else if request.service_token.is_none() && app.has_service_auth {
            DenyReason::ServiceAuthRequired { application }
        } else {
            DenyReason::NoPolicyMatched { application }
        })
    }

    /// The most specific destination: `(application, destination)` indexes.
    fn find_application(&self, target: &Target<'_>) -> Option<(u32, u32)> {
        let found = match *target {
            Target::Http { host, path } => self.find_host(host, path),
            Target::Ip {
                addr,
                port,
                protocol,
            } => match addr.to_canonical() {
                IpAddr::V4(addr) => find_network(&self.v4, u32::from(addr), 32, port, protocol),
                IpAddr::V6(addr) => find_network(&self.v6, u128::from(addr), 128, port, protocol),
            },
        };
        found.or(self.internet)
    }

    fn find_host(&self, host: &str, path: &str) -> Option<(u32, u32)> {
        let host = host.strip_suffix('.').unwrap_or(host);
        with_ascii_lowercase(host, MAX_HOSTNAME_LEN, |host| {
            let first_path = |entries: &Vec<HostEntry>| {
                entries
                    .iter()
                    .find(|e| {
                        e.path
                            .as_deref()
                            .is_none_or(|prefix| crate::values::path_under(prefix, path))
                    })
                    .map(|e| (e.app, e.destination))
            };
            if let Some(found) = self.hosts.get(host).and_then(first_path) {
                return Some(found);
            }
            if self.wildcards.is_empty() {
                return None;
            }
            // Suffixes after each dot, longest first: `b.corp.example`, `corp.example`, `example`.
            host.match_indices('.')
                .map(|(i, _)| &host[i + 1..])
                .find_map(|suffix| self.wildcards.get(suffix).and_then(first_path))
        })
        .flatten()
    }

    fn compile_app(&mut self, app: &Application) -> CompiledApp {
        let policies = app
            .policies
            .iter()
            .map(|policy| CompiledPolicy {
                include: self.compile_rules(&policy.include),
                require: self.compile_rules(&policy.require),
                exclude: self.compile_rules(&policy.exclude),
                source: policy.clone(),
            })
            .collect();
        CompiledApp {
            name: app.name.as_str().into(),
            destinations: app.destinations.clone(),
            policies,
            has_allow: app.policies.iter().any(|p| p.action == Action::Allow),
            has_service_auth: app.policies.iter().any(|p| p.action == Action::ServiceAuth),
        }
    }

    fn compile_rules(&mut self, selectors: &[Selector]) -> Vec<Cond> {
        selectors.iter().map(|s| self.names.compile(s)).collect()
    }
}

fn index_u32(index: usize) -> u32 {
    // A policy file is at most MAX_SOURCE_BYTES, far fewer than u32::MAX entries.
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Most specific path first; the sort is stable, so file order breaks ties.
fn into_host_index(by_host: BTreeMap<&str, Vec<HostEntry>>) -> FxHashMap<Box<str>, Vec<HostEntry>> {
    by_host
        .into_iter()
        .map(|(host, mut entries)| {
            entries.sort_by_key(|e| std::cmp::Reverse(e.path.as_ref().map_or(0, |p| p.len())));
            (host.into(), entries)
        })
        .collect()
}

/// Longest prefix first.
fn into_tables<K: Eq + std::hash::Hash>(
    by_len: BTreeMap<u8, BTreeMap<K, Vec<NetEntry>>>,
) -> Vec<PrefixTable<K>> {
    by_len
        .into_iter()
        .rev()
        .map(|(len, networks)| PrefixTable {
            len,
            networks: networks.into_iter().collect(),
        })
        .collect()
}

/// Longest prefix first; within one network, the first entry (file order) whose ports and
/// protocol admit the flow.
fn find_network<K>(
    tables: &[PrefixTable<K>],
    addr: K,
    bits: u8,
    port: u16,
    protocol: Protocol,
) -> Option<(u32, u32)>
where
    K: Copy
        + Default
        + Eq
        + std::hash::Hash
        + std::ops::Shr<u8, Output = K>
        + std::ops::Shl<u8, Output = K>,
{
    tables.iter().find_map(|table| {
        // A shift by the full width overflows: a /0 network is all zeros.
        let network = match bits.checked_sub(table.len) {
            Some(shift) if shift < bits => (addr >> shift) << shift,
            Some(_) | None => K::default(),
        };
        table
            .networks
            .get(&network)
            .and_then(|entries| admit(entries, port, protocol))
    })
}

fn admit(entries: &[NetEntry], port: u16, protocol: Protocol) -> Option<(u32, u32)> {
    entries
        .iter()
        .find(|e| {
            e.protocol.is_none_or(|p| p == protocol)
                && (protocol == Protocol::Icmp
                    || e.ports.is_empty()
                    || e.ports.iter().any(|r| r.contains(port)))
        })
        .map(|e| (e.app, e.destination))
}

impl Names {
    fn compile(&mut self, selector: &Selector) -> Cond {
        match selector {
            Selector::Everyone => Cond::Everyone,
            Selector::Email(v) => Cond::Email(intern(&mut self.emails, v)),
            Selector::EmailDomain(v) => Cond::EmailDomain(intern(&mut self.domains, v)),
            Selector::Group(v) => Cond::Group(intern(&mut self.groups, v)),
            Selector::Idp(v) => Cond::Idp(intern(&mut self.idps, v)),
            Selector::LoginMethod(v) => Cond::LoginMethod(intern(&mut self.logins, v)),
            Selector::Os(v) => Cond::Os(intern(&mut self.oses, v)),
            Selector::OsVersion(v) => Cond::OsVersion(v.clone()),
            Selector::ClientVersion(v) => Cond::ClientVersion(v.clone()),
            Selector::Ip(cidr) => Cond::Ip(cidr.0),
            Selector::ServiceToken(v) => Cond::ServiceToken(intern(&mut self.tokens, v)),
            Selector::AnyServiceToken => Cond::AnyServiceToken,
            Selector::MaxAuthAge(v) => Cond::MaxAuthAge(*v),
            Selector::Time(v) => Cond::Time(*v),
        }
    }
}

fn intern(table: &mut FxHashMap<Box<str>, u32>, name: &str) -> u32 {
    let next = index_u32(table.len());
    *table.entry(name.into()).or_insert(next)
}

/// The request's names as interned ids (`None`: absent or unknown to the policy).
struct Facts<'r, 'n> {
    names: &'n Names,
    user: Option<crate::request::User<'r>>,
    email: Option<u32>,
    domain: Option<u32>,
    /// Resolved on first use, sorted.
    groups: OnceCell<SmallVec<[u32; INLINE_GROUPS]>>,
    idp: Option<u32>,
    login: Option<u32>,
    os: Option<u32>,
    os_version: Option<&'r str>,
    client_version: Option<&'r str>,
    source_ip: Option<IpAddr>,
    token: Option<u32>,
    has_token: bool,
    now: UnixTime,
}

impl<'r, 'n> Facts<'r, 'n> {
    fn resolve(names: &'n Names, request: &Request<'r>, now: UnixTime) -> Self {
        let user = request.user;
        let email = user.map(|u| u.email);
        let lookup_lower = |table: &FxHashMap<Box<str>, u32>, value: Option<&str>, max: usize| {
            value.and_then(|v| with_ascii_lowercase(v, max, |v| table.get(v).copied()).flatten())
        };
        let device = request.device.unwrap_or_default();
        Self {
            names,
            user,
            email: lookup_lower(&names.emails, email, MAX_EMAIL_LEN),
            domain: lookup_lower(
                &names.domains,
                email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d),
                MAX_HOSTNAME_LEN,
            ),
            groups: OnceCell::new(),
            idp: user
                .and_then(|u| u.idp)
                .and_then(|v| names.idps.get(v).copied()),
            login: lookup_lower(
                &names.logins,
                user.and_then(|u| u.login_method),
                MAX_NAME_LEN,
            ),
            os: lookup_lower(&names.oses, device.os, MAX_NAME_LEN),
            os_version: device.os_version,
            client_version: device.client_version,
            source_ip: request.source_ip.map(|ip| ip.to_canonical()),
            token: request
                .service_token
                .and_then(|t| names.tokens.get(t).copied()),
            has_token: request.service_token.is_some(),
            now,
        }
    }

    fn groups(&self) -> &[u32] {
        self.groups.get_or_init(|| {
            let mut ids: SmallVec<[u32; INLINE_GROUPS]> = self
                .user
                .iter()
                .flat_map(|u| u.groups)
                .filter_map(|g| self.names.groups.get(g.as_str()).copied())
                .collect();
            ids.sort_unstable();
            ids
        })
    }

    fn matches(&self, cond: &Cond) -> bool {
        match cond {
            Cond::Everyone => true,
            Cond::Email(id) => self.email == Some(*id),
            Cond::EmailDomain(id) => self.domain == Some(*id),
            Cond::Group(id) => self.groups().binary_search(id).is_ok(),
            Cond::Idp(id) => self.idp == Some(*id),
            Cond::LoginMethod(id) => self.login == Some(*id),
            Cond::Os(id) => self.os == Some(*id),
            Cond::OsVersion(min) => self.os_version.is_some_and(|v| min.is_satisfied_by(v)),
            Cond::ClientVersion(min) => self.client_version.is_some_and(|v| min.is_satisfied_by(v)),
            Cond::Ip(net) => self.source_ip.is_some_and(|ip| net.contains(&ip)),
            Cond::ServiceToken(id) => self.token == Some(*id),
            Cond::AnyServiceToken => self.has_token,
            Cond::MaxAuthAge(max) => self
                .user
                .and_then(|u| u.auth_time)
                .is_some_and(|at| i128::from(self.now.0) - i128::from(at.0) <= i128::from(*max)),
            Cond::Time(window) => window.contains(self.now),
        }
    }
}

impl CompiledPolicy {
    fn check(&self, facts: &Facts<'_, '_>) -> Result<Hit, Skip> {
        match self.source.action {
            Action::Allow if facts.user.is_none() => return Err(Skip::NoUser),
            Action::ServiceAuth if !facts.has_token => return Err(Skip::NoServiceToken),
            Action::Allow | Action::Block | Action::Bypass | Action::ServiceAuth => {}
        }
        let hit = if self.include.is_empty() {
            if self.source.action != Action::Bypass {
                return Err(Skip::NoIncludeMet);
            }
            Hit::Everyone
        } else {
            match self.include.iter().position(|c| facts.matches(c)) {
                Some(i) => Hit::Include(i),
                None => return Err(Skip::NoIncludeMet),
            }
        };
        if let Some(i) = self.require.iter().position(|c| !facts.matches(c)) {
            return Err(Skip::RequireNotMet(i));
        }
        if let Some(i) = self.exclude.iter().position(|c| facts.matches(c)) {
            return Err(Skip::ExcludeMet(i));
        }
        Ok(hit)
    }
}

/// Runs `f` on the ASCII-lowercase form of `text`, copying to the stack only when `text` has
/// uppercase letters. `None` when a copy is needed and `text` is longer than `max` (≤ 256).
fn with_ascii_lowercase<R>(text: &str, max: usize, f: impl FnOnce(&str) -> R) -> Option<R> {
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(f(text));
    }
    let mut buffer = [0u8; 256];
    if text.len() > max.min(buffer.len()) {
        return None;
    }
    let lower = &mut buffer[..text.len()];
    lower.copy_from_slice(text.as_bytes());
    lower.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid, so this never fails.
    std::str::from_utf8(lower).ok().map(f)
}
