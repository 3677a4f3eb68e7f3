//! Which connector connections an edge holds, what each serves, and which one gets a new stream.
//!
//! Pure bookkeeping: no quinn types, no clock, no IO. The listener feeds it registrations, route
//! updates, drains and stream counts; [`Registry::pick`] answers where a new flow goes.
//!
//! Matching: a hostname route is exact (`app.example.com`) or a leading wildcard
//! (`*.example.com`, which matches any name ending in `.example.com` at any depth, not the apex
//! itself), compared case-insensitively with a trailing dot ignored, optionally limited to a
//! path prefix (`/api` matches `/api`, `/api/x`, not `/apix`). A CIDR route contains addresses.
//! The most specific matching route across all non-draining connections wins (exact host over
//! wildcard, longer wildcard suffix, longer path prefix, longer CIDR prefix); among connections
//! whose best route is that specific, the one with the fewest open streams, then the lowest id.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tunnel_proto::{ConnectionId, ConnectorId, Route};

/// What a new flow is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A host name (HTTP `Host`, TLS SNI) and, for HTTP, the request path.
    Host {
        host: &'a str,
        path: Option<&'a str>,
    },
    /// An IP address (TCP and UDP flows to private networks).
    Ip(IpAddr),
}

/// One connection as the registry sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub connector_id: ConnectorId,
    /// The routes as registered or last updated, including any the matcher skips.
    pub routes: Vec<Route>,
    /// Routes skipped because their pattern or path prefix is malformed.
    pub skipped_routes: usize,
    /// The connector (or the edge) announced a drain: no new streams go here.
    pub draining: bool,
    pub open_streams: u32,
}

/// The connections of one edge, by the edge's connection id.
#[derive(Debug, Default)]
pub struct Registry {
    connections: BTreeMap<ConnectionId, Entry>,
}

#[derive(Debug)]
struct Entry {
    info: ConnectionInfo,
    matchers: Vec<Matcher>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a registered connection and returns how many of its routes were
    /// skipped as malformed.
    pub fn insert(
        &mut self,
        id: ConnectionId,
        connector_id: ConnectorId,
        routes: Vec<Route>,
    ) -> usize {
        let (matchers, skipped) = compile(&routes);
        self.connections.insert(
            id,
            Entry {
                info: ConnectionInfo {
                    connector_id,
                    routes,
                    skipped_routes: skipped,
                    draining: false,
                    open_streams: 0,
                },
                matchers,
            },
        );
        skipped
    }

    /// Replaces a connection's routes; returns how many were skipped, `None` for an unknown id.
    pub fn update_routes(&mut self, id: ConnectionId, routes: Vec<Route>) -> Option<usize> {
        let entry = self.connections.get_mut(&id)?;
        let (matchers, skipped) = compile(&routes);
        entry.matchers = matchers;
        entry.info.routes = routes;
        entry.info.skipped_routes = skipped;
        Some(skipped)
    }

    /// Marks a connection as draining; returns false for an unknown id.
    pub fn set_draining(&mut self, id: ConnectionId) -> bool {
        match self.connections.get_mut(&id) {
            Some(entry) => {
                entry.info.draining = true;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: ConnectionId) -> Option<ConnectionInfo> {
        self.connections.remove(&id).map(|entry| entry.info)
    }

    /// Counts a stream opened on `id`.
    pub fn stream_opened(&mut self, id: ConnectionId) {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.info.open_streams = entry.info.open_streams.saturating_add(1);
        }
    }

    /// Counts a stream on `id` ended.
    pub fn stream_closed(&mut self, id: ConnectionId) {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.info.open_streams = entry.info.open_streams.saturating_sub(1);
        }
    }

    pub fn connection(&self, id: ConnectionId) -> Option<&ConnectionInfo> {
        self.connections.get(&id).map(|entry| &entry.info)
    }

    /// All connections, by ascending id.
    pub fn connections(&self) -> impl Iterator<Item = (ConnectionId, &ConnectionInfo)> {
        self.connections
            .iter()
            .map(|(id, entry)| (*id, &entry.info))
    }

    /// The connections of one connector, by ascending id.
    pub fn connections_of<'a>(
        &'a self,
        connector_id: &'a ConnectorId,
    ) -> impl Iterator<Item = ConnectionId> + 'a {
        self.connections()
            .filter(move |(_, info)| &info.connector_id == connector_id)
            .map(|(id, _)| id)
    }

    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The connection a new flow to `target` should use: see the module doc for the order.
    /// `None` when no non-draining connection has a matching route.
    pub fn pick(&self, target: Target<'_>) -> Option<ConnectionId> {
        self.pick_excluding(target, &[])
    }

    /// [`pick`](Self::pick) among the connections not in `exclude` (ones that just failed).
    pub fn pick_excluding(
        &self,
        target: Target<'_>,
        exclude: &[ConnectionId],
    ) -> Option<ConnectionId> {
        let query = Query::new(target);
        let mut best: Option<(Specificity, u32, ConnectionId)> = None;
        for (id, entry) in &self.connections {
            if entry.info.draining || exclude.contains(id) {
                continue;
            }
            let Some(spec) = entry
                .matchers
                .iter()
                .filter_map(|m| m.matches(&query))
                .max()
            else {
                continue;
            };
            let load = entry.info.open_streams;
            let better = match &best {
                None => true,
                // Higher specificity first, then lower load; ids ascend, so ties keep the first.
                Some((best_spec, best_load, _)) => {
                    spec > *best_spec || (spec == *best_spec && load < *best_load)
                }
            };
            if better {
                best = Some((spec, load, *id));
            }
        }
        best.map(|(_, _, id)| id)
    }
}

/// How specific a match is; compared lexicographically, larger is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    /// Wildcard (`rank` 0) or exact (`rank` 1) host, the pattern's length without `*`, the path
    /// prefix's length.
    Host {
        rank: u8,
        host_len: usize,
        path_len: usize,
    },
    Cidr {
        prefix_len: u8,
    },
}

#[derive(Debug)]
enum Matcher {
    Exact {
        host: String,
        path: Option<String>,
    },
    /// `suffix` keeps its leading dot: `*.example.com` is `.example.com`.
    Wildcard {
        suffix: String,
        path: Option<String>,
    },
    Cidr(IpNet),
}

enum Query {
    Host { host: String, path: Option<String> },
    Ip(IpAddr),
}

impl Query {
    fn new(target: Target<'_>) -> Self {
        match target {
            Target::Host { host, path } => Self::Host {
                host: normalize_host(host),
                path: path.map(str::to_owned),
            },
            Target::Ip(ip) => Self::Ip(ip),
        }
    }
}

impl Matcher {
    fn matches(&self, query: &Query) -> Option<Specificity> {
        match (self, query) {
            (Self::Exact { host, path }, Query::Host { host: h, path: p }) => (host == h
                && path_matches(path.as_deref(), p.as_deref()))
            .then(|| Specificity::Host {
                rank: 1,
                host_len: host.len(),
                path_len: path.as_ref().map_or(0, String::len),
            }),
            (Self::Wildcard { suffix, path }, Query::Host { host: h, path: p }) => (h.len()
                > suffix.len()
                && h.ends_with(suffix.as_str())
                && path_matches(path.as_deref(), p.as_deref()))
            .then(|| Specificity::Host {
                rank: 0,
                host_len: suffix.len(),
                path_len: path.as_ref().map_or(0, String::len),
            }),
            (Self::Cidr(net), Query::Ip(ip)) => net.contains(ip).then(|| Specificity::Cidr {
                prefix_len: net.prefix_len(),
            }),
            (Self::Exact { .. } | Self::Wildcard { .. }, Query::Ip(_))
            | (Self::Cidr(_), Query::Host { .. }) => None,
        }
    }
}

/// A route without a path prefix matches any path (and no path); one with a prefix needs a
/// path equal to it or continuing it at a `/`.
fn path_matches(prefix: Option<&str>, path: Option<&str>) -> bool {
    let Some(prefix) = prefix else {
        return true;
    };
    let Some(path) = path else {
        return false;
    };
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/') || rest.starts_with('?')
}

fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn compile(routes: &[Route]) -> (Vec<Matcher>, usize) {
    let mut matchers = Vec::with_capacity(routes.len());
    let mut skipped = 0;
    for route in routes {
        match compile_route(route) {
            Some(m) => matchers.push(m),
            None => skipped += 1,
        }
    }
    (matchers, skipped)
}

fn compile_route(route: &Route) -> Option<Matcher> {
    match route {
        Route::Cidr(net) => Some(Matcher::Cidr(net.trunc())),
        Route::Hostname {
            pattern,
            path_prefix,
        } => {
            if path_prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return None;
            }
            let path = path_prefix.clone().filter(|p| p != "/");
            let pattern = normalize_host(pattern);
            if let Some(rest) = pattern.strip_prefix("*.") {
                if !valid_host(rest) {
                    return None;
                }
                Some(Matcher::Wildcard {
                    suffix: format!(".{rest}"),
                    path,
                })
            } else if valid_host(&pattern) {
                Some(Matcher::Exact {
                    host: pattern,
                    path,
                })
            } else {
                None
            }
        }
    }
}

/// Labels of letters, digits, `-` and `_`, none empty.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host(pattern: &str) -> Route {
        Route::Hostname {
            pattern: pattern.into(),
            path_prefix: None,
        }
    }

    fn host_path(pattern: &str, path: &str) -> Route {
        Route::Hostname {
            pattern: pattern.into(),
            path_prefix: Some(path.into()),
        }
    }

    fn cidr(net: &str) -> Route {
        Route::Cidr(net.parse().unwrap())
    }

    fn registry(conns: &[(u64, Vec<Route>)]) -> Registry {
        let mut r = Registry::new();
        for (id, routes) in conns {
            r.insert(
                ConnectionId(*id),
                ConnectorId(format!("c{id}")),
                routes.clone(),
            );
        }
        r
    }

    fn pick_host(r: &Registry, h: &str, path: Option<&str>) -> Option<u64> {
        r.pick(Target::Host { host: h, path }).map(|id| id.0)
    }

    fn pick_ip(r: &Registry, ip: &str) -> Option<u64> {
        r.pick(Target::Ip(ip.parse().unwrap())).map(|id| id.0)
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let r = registry(&[
            (1, vec![host("*.example.com")]),
            (2, vec![host("app.example.com")]),
        ]);

        assert_eq!(pick_host(&r, "app.example.com", None), Some(2));
        assert_eq!(pick_host(&r, "other.example.com", None), Some(1));
    }

    #[test]
    fn longer_wildcard_suffix_and_longer_path_win() {
        let r = registry(&[
            (1, vec![host("*.example.com")]),
            (2, vec![host("*.eu.example.com")]),
            (3, vec![host_path("app.example.com", "/api")]),
            (4, vec![host("app.example.com")]),
        ]);

        assert_eq!(pick_host(&r, "x.eu.example.com", None), Some(2));
        assert_eq!(pick_host(&r, "app.example.com", Some("/api/v1")), Some(3));
        assert_eq!(pick_host(&r, "app.example.com", Some("/web")), Some(4));
    }

    #[test]
    fn wildcard_matches_any_depth_but_not_apex() {
        let r = registry(&[(1, vec![host("*.example.com")])]);

        assert_eq!(pick_host(&r, "a.example.com", None), Some(1));
        assert_eq!(pick_host(&r, "a.b.example.com", None), Some(1));
        assert_eq!(pick_host(&r, "example.com", None), None);
        assert_eq!(pick_host(&r, "badexample.com", None), None);
    }

    #[test]
    fn host_match_ignores_case_and_trailing_dot() {
        let r = registry(&[(1, vec![host("App.Example.com")])]);

        assert_eq!(pick_host(&r, "app.example.COM.", None), Some(1));
    }

    #[test]
    fn path_prefix_matches_at_segment_boundary_only() {
        let r = registry(&[(1, vec![host_path("app.example.com", "/api")])]);

        assert_eq!(pick_host(&r, "app.example.com", Some("/api")), Some(1));
        assert_eq!(pick_host(&r, "app.example.com", Some("/api/x")), Some(1));
        assert_eq!(pick_host(&r, "app.example.com", Some("/apix")), None);
        assert_eq!(pick_host(&r, "app.example.com", None), None);
    }

    #[test]
    fn most_specific_cidr_wins() {
        let r = registry(&[
            (1, vec![cidr("10.0.0.0/8")]),
            (2, vec![cidr("10.1.0.0/16")]),
        ]);

        assert_eq!(pick_ip(&r, "10.1.2.3"), Some(2));
        assert_eq!(pick_ip(&r, "10.2.0.1"), Some(1));
        assert_eq!(pick_ip(&r, "192.168.0.1"), None);
    }

    #[test]
    fn least_loaded_connection_wins_among_equals() {
        let mut r = registry(&[(1, vec![cidr("10.0.0.0/8")]), (2, vec![cidr("10.0.0.0/8")])]);
        assert_eq!(pick_ip(&r, "10.0.0.1"), Some(1));

        r.stream_opened(ConnectionId(1));

        assert_eq!(pick_ip(&r, "10.0.0.1"), Some(2));
        r.stream_opened(ConnectionId(2));
        r.stream_opened(ConnectionId(2));
        assert_eq!(pick_ip(&r, "10.0.0.1"), Some(1));
        r.stream_closed(ConnectionId(2));
        r.stream_closed(ConnectionId(2));
        assert_eq!(pick_ip(&r, "10.0.0.1"), Some(2));
    }

    #[test]
    fn specificity_beats_load() {
        let mut r = registry(&[
            (1, vec![cidr("10.0.0.0/8")]),
            (2, vec![cidr("10.1.0.0/16")]),
        ]);
        for _ in 0..10 {
            r.stream_opened(ConnectionId(2));
        }

        assert_eq!(pick_ip(&r, "10.1.0.1"), Some(2));
    }

    #[test]
    fn draining_connection_is_skipped() {
        let mut r = registry(&[
            (1, vec![cidr("10.1.0.0/16")]),
            (2, vec![cidr("10.0.0.0/8")]),
        ]);

        assert!(r.set_draining(ConnectionId(1)));

        assert_eq!(pick_ip(&r, "10.1.0.1"), Some(2));
        assert!(r.set_draining(ConnectionId(2)));
        assert_eq!(pick_ip(&r, "10.1.0.1"), None);
    }

    #[test]
    fn malformed_routes_are_skipped_and_counted() {
        let mut r = Registry::new();

        let skipped = r.insert(
            ConnectionId(1),
            ConnectorId("c".into()),
            vec![
                host("*"),
                host("a.*.com"),
                host("*."),
                host_path("app.example.com", "api"),
                host("ok.example.com"),
            ],
        );

        assert_eq!(skipped, 4);
        assert_eq!(pick_host(&r, "ok.example.com", None), Some(1));
        assert_eq!(r.connection(ConnectionId(1)).unwrap().routes.len(), 5);
    }

    #[test]
    fn update_routes_replaces_matchers() {
        let mut r = registry(&[(1, vec![cidr("10.0.0.0/8")])]);

        r.update_routes(ConnectionId(1), vec![cidr("192.168.0.0/24")])
            .unwrap();

        assert_eq!(pick_ip(&r, "10.0.0.1"), None);
        assert_eq!(pick_ip(&r, "192.168.0.7"), Some(1));
        assert_eq!(r.update_routes(ConnectionId(9), vec![]), None);
    }

    #[test]
    fn host_routes_do_not_match_ips_and_back() {
        let r = registry(&[(1, vec![host("10.0.0.1")]), (2, vec![cidr("10.0.0.0/8")])]);

        assert_eq!(pick_ip(&r, "10.0.0.1"), Some(2));
        assert_eq!(pick_host(&r, "10.0.0.1", None), Some(1));
    }
}
