//! The connector's counters and gauges: updated by the transport, read by `/ready` and
//! `/metrics`. Atomics, so the hot path never waits for a scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tunnel::udp::UdpCounters;

/// Every series `/metrics` exposes. Cheap to share: put it in an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    ha_connections: AtomicU64,
    active_streams: AtomicU64,
    config_reloads: AtomicU64,
    config_reload_errors: AtomicU64,
    active_udp_flows: AtomicU64,
    udp_flows: AtomicU64,
    udp_flows_refused: AtomicU64,
    udp_to_origin: AtomicU64,
    udp_from_origin: AtomicU64,
    udp_origin_errors: AtomicU64,
    /// The tunnel's own UDP counters (drops, expiry), shared by every edge connection.
    udp_tunnel: Arc<UdpCounters>,
    /// Per rule number (1-based, as `ingress rule` prints it).
    rules: Mutex<BTreeMap<usize, Arc<RuleCounters>>>,
}

/// The request counters of one ingress rule.
#[derive(Debug, Default)]
pub struct RuleCounters {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl RuleCounters {
    /// One request (stream or HTTP request) matched the rule.
    pub fn record_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One request of the rule failed: the origin could not be dialed or broke the exchange.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// Counters at zero, no edge connection (so not ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registered QUIC connections to edges: what `/ready` reports as `readyConnections`.
    pub fn ha_connections(&self) -> u64 {
        self.ha_connections.load(Ordering::Relaxed)
    }

    /// Sets the number of registered edge connections.
    pub fn set_ha_connections(&self, count: u64) {
        self.ha_connections.store(count, Ordering::Relaxed);
    }

    /// Counts one registered edge connection until the guard is dropped.
    pub fn connection_registered(self: &Arc<Self>) -> ConnectionGuard {
        self.ha_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }

    /// Streams between an edge and an origin open right now.
    pub fn active_streams(&self) -> u64 {
        self.active_streams.load(Ordering::Relaxed)
    }

    /// Counts one open stream until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> StreamGuard {
        self.active_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(Arc::clone(self))
    }

    /// The counters every edge connection's UDP flow table counts in (give them to the
    /// dialers).
    pub fn udp_tunnel(&self) -> Arc<UdpCounters> {
        Arc::clone(&self.udp_tunnel)
    }

    /// Counts one UDP flow served toward an origin, open until the guard is dropped.
    pub fn udp_flow_opened(self: &Arc<Self>) -> UdpFlowGuard {
        self.udp_flows.fetch_add(1, Ordering::Relaxed);
        self.active_udp_flows.fetch_add(1, Ordering::Relaxed);
        UdpFlowGuard(Arc::clone(self))
    }

    /// Counts one UDP flow not served: no private route covers it, or no socket toward it.
    pub fn record_udp_flow_refused(&self) {
        self.udp_flows_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one datagram relayed to (`true`) or from an origin.
    pub fn record_udp_datagram(&self, to_origin: bool) {
        let counter = if to_origin {
            &self.udp_to_origin
        } else {
            &self.udp_from_origin
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed send to or receive from an origin's UDP socket (ICMP unreachable).
    pub fn record_udp_origin_error(&self) {
        self.udp_origin_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// UDP flows toward origins open now.
    pub fn active_udp_flows(&self) -> u64 {
        self.active_udp_flows.load(Ordering::Relaxed)
    }

    /// Counts one configuration reload, valid (applied) or not (ignored).
    pub fn record_config_reload(&self, applied: bool) {
        let counter = if applied {
            &self.config_reloads
        } else {
            &self.config_reload_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reloads that replaced the configuration.
    pub fn config_reloads(&self) -> u64 {
        self.config_reloads.load(Ordering::Relaxed)
    }

    /// Reloads of an invalid file, which left the configuration as it was.
    pub fn config_reload_errors(&self) -> u64 {
        self.config_reload_errors.load(Ordering::Relaxed)
    }

    /// The counters of rule `number` (1-based); keep the `Arc` for the life of a request.
    pub fn rule(&self, number: usize) -> Arc<RuleCounters> {
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(rules.entry(number).or_default())
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "gatehouse_connector_ha_connections",
            "QUIC connections to edges that are registered.",
            self.ha_connections(),
        );
        gauge(
            &mut out,
            "gatehouse_connector_active_streams",
            "Streams between an edge and an origin open right now.",
            self.active_streams(),
        );
        counter(
            &mut out,
            "gatehouse_connector_config_reloads_total",
            "Configuration reloads that replaced the ingress rules.",
            self.config_reloads(),
        );
        counter(
            &mut out,
            "gatehouse_connector_config_reload_errors_total",
            "Configuration reloads rejected as invalid (the previous rules stay).",
            self.config_reload_errors(),
        );
        self.render_udp(&mut out);
        let rules: Vec<(usize, u64, u64)> = {
            let rules = self
                .rules
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rules
                .iter()
                .map(|(number, c)| (*number, c.requests(), c.errors()))
                .collect()
        };
        header(
            &mut out,
            "gatehouse_connector_requests_total",
            "Requests matched to each ingress rule (1-based rule number).",
            "counter",
        );
        for (number, requests, _) in &rules {
            let _ = writeln!(
                out,
                "gatehouse_connector_requests_total{{rule=\"{number}\"}} {requests}"
            );
        }
        header(
            &mut out,
            "gatehouse_connector_request_errors_total",
            "Requests of each ingress rule that failed at the origin (1-based rule number).",
            "counter",
        );
        for (number, _, errors) in &rules {
            let _ = writeln!(
                out,
                "gatehouse_connector_request_errors_total{{rule=\"{number}\"}} {errors}"
            );
        }
        out
    }
}

impl Metrics {
    fn render_udp(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        gauge(
            out,
            "gatehouse_connector_active_udp_flows",
            "UDP flows between an edge and an origin open right now.",
            self.active_udp_flows(),
        );
        counter(
            out,
            "gatehouse_connector_udp_flows_total",
            "UDP flows served toward an origin.",
            get(&self.udp_flows),
        );
        counter(
            out,
            "gatehouse_connector_udp_flows_refused_total",
            "UDP flows not served: no private route, a full or draining connection, no socket.",
            get(&self.udp_flows_refused) + self.udp_tunnel.snapshot().flows_refused,
        );
        counter(
            out,
            "gatehouse_connector_udp_flows_expired_total",
            "UDP flows forgotten after their idle timeout.",
            self.udp_tunnel.snapshot().flows_expired,
        );
        header(
            out,
            "gatehouse_connector_udp_datagrams_total",
            "UDP datagrams relayed, by direction.",
            "counter",
        );
        for (direction, value) in [
            ("to_origin", get(&self.udp_to_origin)),
            ("from_origin", get(&self.udp_from_origin)),
        ] {
            let _ = writeln!(
                out,
                "gatehouse_connector_udp_datagrams_total{{direction=\"{direction}\"}} {value}"
            );
        }
        counter(
            out,
            "gatehouse_connector_udp_origin_errors_total",
            "Failed sends to or receives from an origin's UDP socket.",
            get(&self.udp_origin_errors),
        );
        let tunnel = self.udp_tunnel.snapshot();
        header(
            out,
            "gatehouse_connector_udp_dropped_total",
            "UDP datagrams dropped in the tunnel, by reason.",
            "counter",
        );
        for (reason, value) in [
            ("oversize", tunnel.dropped_oversize),
            ("queue_full", tunnel.dropped_queue_full),
            ("unknown_flow", tunnel.dropped_unknown_flow),
            ("malformed", tunnel.dropped_malformed),
            ("send_failed", tunnel.dropped_send_failed),
        ] {
            let _ = writeln!(
                out,
                "gatehouse_connector_udp_dropped_total{{reason=\"{reason}\"}} {value}"
            );
        }
    }
}

/// Holds one UDP flow in [`Metrics::active_udp_flows`].
#[derive(Debug)]
pub struct UdpFlowGuard(Arc<Metrics>);

impl Drop for UdpFlowGuard {
    fn drop(&mut self) {
        self.0.active_udp_flows.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds one registered edge connection in [`Metrics::ha_connections`].
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.ha_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds one open stream in [`Metrics::active_streams`].
#[derive(Debug)]
pub struct StreamGuard(Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_held() {
        let metrics = Arc::new(Metrics::new());
        let connection = metrics.connection_registered();
        let stream = metrics.stream_opened();
        assert_eq!((metrics.ha_connections(), metrics.active_streams()), (1, 1));
        drop((connection, stream));
        assert_eq!((metrics.ha_connections(), metrics.active_streams()), (0, 0));
    }

    #[test]
    fn udp_flows_and_datagrams_are_counted() {
        let metrics = Arc::new(Metrics::new());
        let flow = metrics.udp_flow_opened();
        metrics.record_udp_datagram(true);
        metrics.record_udp_datagram(true);
        metrics.record_udp_datagram(false);
        metrics.record_udp_flow_refused();
        assert_eq!(metrics.active_udp_flows(), 1);
        drop(flow);
        let text = metrics.render();
        for line in [
            "gatehouse_connector_active_udp_flows 0",
            "gatehouse_connector_udp_flows_total 1",
            "gatehouse_connector_udp_flows_refused_total 1",
            "gatehouse_connector_udp_datagrams_total{direction=\"to_origin\"} 2",
            "gatehouse_connector_udp_datagrams_total{direction=\"from_origin\"} 1",
            "gatehouse_connector_udp_dropped_total{reason=\"unknown_flow\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn render_lists_every_series_with_rule_labels() {
        let metrics = Metrics::new();
        metrics.set_ha_connections(2);
        metrics.rule(1).record_request();
        metrics.rule(1).record_request();
        metrics.rule(3).record_request();
        metrics.rule(3).record_error();
        let text = metrics.render();
        for line in [
            "# TYPE gatehouse_connector_ha_connections gauge",
            "gatehouse_connector_ha_connections 2",
            "gatehouse_connector_active_streams 0",
            "# TYPE gatehouse_connector_requests_total counter",
            "gatehouse_connector_requests_total{rule=\"1\"} 2",
            "gatehouse_connector_requests_total{rule=\"3\"} 1",
            "gatehouse_connector_request_errors_total{rule=\"1\"} 0",
            "gatehouse_connector_request_errors_total{rule=\"3\"} 1",
            "# TYPE gatehouse_connector_udp_flows_total counter",
            "gatehouse_connector_active_udp_flows 0",
            "gatehouse_connector_udp_datagrams_total{direction=\"to_origin\"} 0",
            "gatehouse_connector_udp_dropped_total{reason=\"oversize\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
