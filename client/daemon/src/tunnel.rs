//! The client's tunnel: a [`wg::Node`] with the configuration's peers, run by the shared loop.

use anyhow::Context as _;
use client_core::wg_quick::{Endpoint, WgQuickConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;
use wg::uapi::{DeviceSnapshot, SetRequest};
use wg::{
    DropReason, Event, Node, NodeConfig, OwnedTransmit, PeerConfig, PeerError, Received, Transmit,
};
use wg_driver::event_loop::{self, LoopStats, TunnelCore};
use wg_driver::packet_device::PacketDevice;
use wg_driver::uapi_server::UapiServer;

/// Builds the node for `config`, resolving peer endpoints given as host names.
///
/// # Errors
/// A peer key the node refuses, or an endpoint that does not resolve.
pub async fn build_node(config: &WgQuickConfig, now: Instant) -> anyhow::Result<Node> {
    let mut node = Node::new(
        NodeConfig {
            private_key: config.interface.private_key.clone(),
            listen_port: config.interface.listen_port.unwrap_or(0),
            fwmark: config.interface.fwmark,
            handshake_load_limit: wg::DEFAULT_HANDSHAKE_LOAD_LIMIT,
        },
        now,
    );
    for peer in &config.peers {
        let endpoint = match &peer.endpoint {
            None => None,
            Some(endpoint) => Some(resolve(endpoint).await?),
        };
        node.add_peer(PeerConfig {
            public_key: peer.public_key,
            preshared_key: peer.preshared_key.clone(),
            endpoint,
            allowed_ips: peer.allowed_ips.clone(),
            persistent_keepalive: peer.persistent_keepalive.filter(|k| *k > 0),
        })
        .with_context(|| format!("peer {}", peer.public_key))?;
    }
    Ok(node)
}

/// Resolves an endpoint, preferring the first address the resolver returns.
///
/// # Errors
/// The name does not resolve.
pub async fn resolve(endpoint: &Endpoint) -> anyhow::Result<SocketAddr> {
    match endpoint {
        Endpoint::Addr(addr) => Ok(*addr),
        Endpoint::Host { host, port } => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .with_context(|| format!("failed to resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address")),
    }
}

/// Runs the tunnel until `shutdown` completes. The host owns `socket` and `device`: a TUN
/// device (created here, or adopted from a host fd) or [`wg_driver::packet_device::ChannelDevice`]
/// for hosts that pass packets in and out.
///
/// # Errors
/// The UDP socket failing for good.
pub async fn run(
    node: Node,
    socket: &mut wg_driver::udp::BatchSocket,
    tun: &impl PacketDevice,
    uapi: Option<&mut UapiServer>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<LoopStats> {
    let mut core = ClientCore { node };
    let stats = event_loop::run(&mut core, socket, tun, uapi, shutdown)
        .await
        .context("the UDP socket failed")?;
    tracing::info!(dropped = stats.dropped, "tunnel stopped");
    Ok(stats)
}

struct ClientCore {
    node: Node,
}

impl TunnelCore for ClientCore {
    type Drop = DropReason;

    fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<&'b [u8]>, DropReason> {
        Ok(match self.node.handle_datagram(from, datagram, buf, now)? {
            Received::Packet { packet, .. } => Some(packet),
            Received::Control => None,
        })
    }

    fn handle_tun_packet<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<Transmit<'b>>, DropReason> {
        self.node.send(packet, buf, now)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Instant {
        self.node.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<OwnedTransmit> {
        self.node.poll_transmit()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::HandshakeCompleted { peer, .. } => {
                    tracing::info!(%peer, "connected");
                }
                Event::EndpointChanged { peer, endpoint } => {
                    tracing::debug!(%peer, %endpoint, "peer endpoint changed");
                }
            }
        }
    }

    fn snapshot(&self) -> DeviceSnapshot {
        self.node.snapshot()
    }

    fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError> {
        self.node.apply_uapi(request, now)
    }
}
