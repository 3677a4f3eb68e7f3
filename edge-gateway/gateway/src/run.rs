//! Sets up the edge's devices and runs the shared tunnel loop over [`edge_core::Edge`].

use crate::access_state::SharedAccess;
use crate::config::EdgeSettings;
use crate::decision_audit::DecisionAudit;
use crate::feed_peers::{wanted_peers, FeedPeers};
use crate::flow_policy::EdgeFlowPolicy;
use crate::live_flows::LiveFlows;
use anyhow::Context as _;
use edge_core::{Action, Edge, EdgeConfig, EdgeDrop, EdgeEvent, FlowTimeouts, FromPeer};
use identity_claims::feed::Applied;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use wg::keys::PublicKey;
use wg::uapi::{DeviceSnapshot, SetRequest};
use wg::{NodeConfig, OwnedTransmit, PeerError, Transmit};
use wg_driver::event_loop::{self, TunnelCore};
use wg_driver::tun_device::AsyncTun;
use wg_driver::uapi_server::UapiServer;
use wg_driver::{iproute, udp};

/// Runs the edge until SIGINT or SIGTERM.
///
/// # Errors
/// Setup failures (TUN, socket, UAPI socket); per-packet errors are counted, not returned.
pub(crate) async fn run(settings: EdgeSettings) -> anyhow::Result<()> {
    let file = &settings.file;
    let access = Arc::new(SharedAccess::new(settings.access_policy.clone()));
    let live = Arc::new(LiveFlows::default());
    let edge_name = settings
        .connectors
        .as_ref()
        .map_or_else(|| "edge".to_owned(), |c| c.name.clone());
    let audit = DecisionAudit::start(settings.feed.as_ref(), edge_name);
    let front: BTreeSet<SocketAddr> = settings
        .connectors
        .iter()
        .flat_map(|c| c.http_listen.iter().chain(&c.tls_listen))
        .copied()
        .collect();
    // The same decisions for live flows the edge terminates, when identity's feed changes
    // (without recording them again).
    let recheck_policy = EdgeFlowPolicy {
        rules: settings.policy.clone(),
        front,
        access: access.clone(),
        audit: None,
    };
    let static_names: Vec<(ipnet::IpNet, String)> = settings
        .peers
        .iter()
        .flat_map(|p| {
            p.config
                .allowed_ips
                .iter()
                .map(|net| (*net, p.name.clone()))
        })
        .collect();
    let edge = Edge::new(
        EdgeConfig {
            node: NodeConfig {
                private_key: settings.private_key.clone(),
                listen_port: file.listen.port(),
                fwmark: None,
                handshake_load_limit: file.handshake_load_limit,
            },
            peers: settings.peers.clone(),
            policy: Box::new(EdgeFlowPolicy {
                audit: Some(audit.clone()),
                ..recheck_policy.clone()
            }),
            flow_timeouts: FlowTimeouts::default(),
        },
        Instant::now(),
    )
    .context("failed to load peers")?;
    if settings.policy.rules.is_empty()
        && settings.feed.is_none()
        && settings.access_policy.is_none()
    {
        tracing::warn!(
            "no [[policy]] rules, no [identity] and no [access] policy: every flow is denied"
        );
    }

    let tun = AsyncTun::create(&file.interface, file.mtu, true)?;
    for net in &file.address {
        iproute::add_address(&file.interface, &net.to_string())?;
    }
    let mut socket = udp::BatchSocket::new(udp::bind(file.listen, None)?)?;
    let mut uapi = UapiServer::bind(&file.interface)?;
    tracing::info!(
        interface = %file.interface,
        listen = %socket.local_addr()?,
        peers = settings.peers.len(),
        public_key = %edge.public_key(),
        "edge up"
    );

    let replica = match &settings.feed {
        Some(source) => {
            let replica = crate::identity_feed::load_cache(&source.cache)?;
            tracing::info!(
                revision = replica.revision().0,
                "identity feed: cached copy loaded"
            );
            Some(replica)
        }
        None => None,
    };
    let feed_peers = Arc::new(FeedPeers::default());
    if let Some(replica) = &replica {
        access.update_from_replica(replica);
        feed_peers.publish(wanted_peers(replica));
    }
    let assertions = settings
        .feed
        .as_ref()
        .map(|source| Arc::new(crate::assertions::AssertionCache::new(source)));
    // Connector traffic (QUIC, the TPROXY splices, the application fronts) runs on a runtime
    // of its own (`[connectors] threads`, default a worker per core), so that it neither
    // waits for nor slows down the WireGuard loop on this thread.
    let proxy_runtime = match &settings.connectors {
        Some(c) => crate::connectors::proxy_runtime(c.threads)?,
        None => None,
    };
    let proxy_context = proxy_runtime.as_ref().map(tokio::runtime::Runtime::enter);
    let connectors = match &settings.connectors {
        Some(connector_settings) => Some(crate::connectors::Connectors::start(
            connector_settings,
            &file.interface,
            replica.as_ref().map(|r| r.signing_keys()),
            access.clone(),
            live.clone(),
            assertions.clone(),
            audit.clone(),
        )?),
        None => None,
    };
    // Only the connector side's sockets and tasks belong to that runtime.
    drop(proxy_context);
    if let (Some(source), Some(replica)) = (settings.feed.clone(), replica) {
        let consumers = FeedConsumers {
            keys: connectors.as_ref().map(crate::connectors::Connectors::keys),
            assertions,
            access: access.clone(),
            live: live.clone(),
            recheck_policy: recheck_policy.clone(),
            static_names,
            feed_peers: feed_peers.clone(),
        };
        tokio::spawn(crate::identity_feed::follow(
            source,
            replica,
            move |update| {
                consumers.apply(&update);
            },
        ));
    }

    let fixed_peers = settings.peers.iter().map(|p| p.config.public_key).collect();
    let mut core = EdgeDriver {
        edge,
        feed_peers,
        managed: BTreeMap::new(),
        fixed_peers,
    };
    let stats = event_loop::run(
        &mut core,
        &mut socket,
        &tun,
        Some(&mut uapi),
        wg_driver::process::shutdown_signal()?,
    )
    .await
    .context("the UDP socket failed");
    if let Some(connectors) = connectors {
        connectors.shutdown().await;
    }
    if let Some(runtime) = proxy_runtime {
        // Its tasks were aborted; do not wait for them from inside this runtime.
        runtime.shutdown_background();
    }
    let stats = stats?;
    tracing::info!(
        to_tun = stats.to_tun,
        to_network = stats.to_network,
        dropped = stats.dropped,
        "edge stopping"
    );
    Ok(())
}

/// Everything that follows identity's feed: the connector keys, the assertion cache, the
/// access decisions, the live flows they recheck, and the WireGuard peers.
struct FeedConsumers {
    keys: Option<Arc<crate::connectors::ConnectorKeys>>,
    assertions: Option<Arc<crate::assertions::AssertionCache>>,
    access: Arc<SharedAccess>,
    live: Arc<LiveFlows>,
    recheck_policy: EdgeFlowPolicy,
    static_names: Vec<(ipnet::IpNet, String)>,
    feed_peers: Arc<FeedPeers>,
}

impl FeedConsumers {
    fn apply(&self, update: &crate::identity_feed::Update<'_>) {
        tracing::debug!(
            revision = update.replica.revision().0,
            kind = crate::identity_feed::applied_kind(&update.applied),
            "identity feed applied"
        );
        if let Some(keys) = &self.keys {
            keys.set_feed_keys(update.replica.signing_keys());
        }
        if let Some(assertions) = &self.assertions {
            assertions.apply_feed(update);
        }
        if !matches!(update.applied, Applied::Replaced | Applied::Changed(_)) {
            // A heartbeat or an unknown delta: nothing anyone decides on changed.
            return;
        }
        self.access.update_from_replica(update.replica);
        let closed = self.live.recheck(|source, target| {
            let peer = peer_name(&self.static_names, &self.access, source);
            self.recheck_policy.still_allows(&peer, source, target)
        });
        if closed > 0 {
            tracing::info!(closed, "live flows no longer allowed were closed");
        }
        self.feed_peers.publish(wanted_peers(update.replica));
    }
}

/// The name the edge core knows the peer using `source` by: a `[[peers]]` name, else
/// `device:<id>` for an enrolled device (what `[[policy]]` rules match on).
fn peer_name(
    static_names: &[(ipnet::IpNet, String)],
    access: &SharedAccess,
    source: std::net::IpAddr,
) -> String {
    if let Some((_, name)) = static_names.iter().find(|(net, _)| net.contains(&source)) {
        return name.clone();
    }
    access
        .current()
        .device(source)
        .map(|d| format!("device:{}", d.device_id))
        .unwrap_or_default()
}

/// The edge core as the shared loop sees it: events are logged; peers from identity's feed
/// are applied when the feed task wakes the loop.
struct EdgeDriver {
    edge: Edge,
    feed_peers: Arc<FeedPeers>,
    /// The peers the feed added.
    managed: BTreeMap<PublicKey, edge_core::EdgePeer>,
    /// The file's `[[peers]]`, which the feed never changes.
    fixed_peers: BTreeSet<PublicKey>,
}

impl TunnelCore for EdgeDriver {
    type Drop = EdgeDrop;

    fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<&'b [u8]>, EdgeDrop> {
        Ok(match self.edge.handle_datagram(from, datagram, buf, now)? {
            FromPeer::Forward(packet) => Some(packet),
            FromPeer::Consumed => None,
        })
    }

    fn handle_tun_packet<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<Transmit<'b>>, EdgeDrop> {
        self.edge.handle_tun_packet(packet, buf, now)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.edge.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Instant {
        self.edge.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<OwnedTransmit> {
        self.edge.poll_transmit()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.edge.poll_event() {
            log_event(&event);
        }
    }

    fn snapshot(&self) -> DeviceSnapshot {
        self.edge.snapshot()
    }

    fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError> {
        self.edge.apply_uapi(request, now)
    }

    fn wake_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.feed_peers.wake_signal())
    }

    /// Identity's devices or policy changed: apply the peers, then decide live flows again.
    fn handle_wake(&mut self, now: Instant) {
        // Flows first, while every session still exists for their resets; then the peers.
        let closed = self.edge.reevaluate_flows(now);
        let applied =
            self.feed_peers
                .apply(&mut self.edge, &mut self.managed, &self.fixed_peers, now);
        if let Some(applied) = applied {
            tracing::info!(
                peers = self.managed.len(),
                added = applied.added,
                removed = applied.removed,
                failed = applied.failed,
                closed_flows = closed,
                "identity peers applied"
            );
        }
    }
}

fn log_event(event: &EdgeEvent) {
    match event {
        EdgeEvent::FlowDecided {
            peer,
            flow,
            decision,
        } => {
            let verdict = match decision.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            };
            let rule = decision
                .rule
                .map_or_else(|| "default".to_string(), |r| (r + 1).to_string());
            tracing::debug!(peer = %peer, %flow, rule = %rule, "flow {verdict}");
        }
        EdgeEvent::HandshakeCompleted { peer, endpoint } => {
            tracing::debug!(peer = %peer, %endpoint, "handshake completed");
        }
        EdgeEvent::EndpointChanged { peer, endpoint } => {
            tracing::debug!(peer = %peer, %endpoint, "peer endpoint changed");
        }
    }
}
