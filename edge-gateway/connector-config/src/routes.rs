//! What a connector announces to edges so they know which traffic to send it.

use ipnet::IpNet;

use crate::ingress::Ingress;

/// One destination this connector serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// A public or private hostname from an ingress rule.
    Hostname {
        /// The rule's hostname, lowercase; a wildcard keeps its `*.` (`*.example.com`).
        hostname: String,
        /// Set when the rule's path regex is a plain `^/prefix` literal (optionally followed by
        /// `.*`), so the edge can route by prefix; `None` means every path. The prefix is a string
        /// prefix, as the regex is: `/api` also covers `/apiary`.
        path_prefix: Option<String>,
    },
    /// A private network (`private-routes`).
    Private(IpNet),
}

/// Hostname routes in rule order without repeats, then the private CIDRs in file order without
/// repeats.
pub(crate) fn routes(ingress: &Ingress, private: &[IpNet]) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    let hostname_routes = ingress.rules().filter_map(|rule| {
        let pattern = rule.hostname()?;
        Some(Route::Hostname {
            hostname: pattern.to_string(),
            path_prefix: rule.path().and_then(|regex| literal_prefix(regex.as_str())),
        })
    });
    let private_routes = private.iter().copied().map(Route::Private);
    for route in hostname_routes.chain(private_routes) {
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    routes
}

/// `/prefix` when `pattern` is `^/prefix` or `^/prefix.*` with no other regex syntax in the
/// prefix.
fn literal_prefix(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('^')?;
    let body = body.strip_suffix(".*").unwrap_or(body);
    let is_literal = body.starts_with('/') && regex::escape(body) == body;
    is_literal.then(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn only_anchored_literals_become_prefixes() {
        assert_eq!(literal_prefix("^/api"), Some("/api".to_owned()));
        assert_eq!(literal_prefix("^/api/"), Some("/api/".to_owned()));
        assert_eq!(literal_prefix("^/api/.*"), Some("/api/".to_owned()));
        assert_eq!(literal_prefix("/api"), None);
        assert_eq!(literal_prefix("^/api$"), None);
        assert_eq!(literal_prefix("^/v[12]/"), None);
        assert_eq!(literal_prefix("^/a.b"), None);
        assert_eq!(literal_prefix("^api"), None);
    }
}
