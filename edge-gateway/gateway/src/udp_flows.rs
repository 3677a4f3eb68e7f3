//! WireGuard clients' UDP to connector CIDR routes: TPROXY to a transparent UDP socket, one
//! tunnel datagram flow per (client, destination), replies sent from the original destination.
//!
//! # The path
//! The same nftables rule as for TCP ([`crate::tproxy`], `meta l4proto udp`) marks and TPROXYs
//! a client's datagram to a connector route to the transparent UDP socket on `tproxy_port`.
//! That socket has `IP_TRANSPARENT` and `IP_RECVORIGDSTADDR` (`IPV6_*` for IPv6), so each
//! `recvmsg` gives the payload, the client's address and, in a control message, the original
//! destination. The first datagram of a (client, destination) pair starts a flow task: it picks
//! a connector connection ([`tunnel::Target::Ip`]), opens a datagram flow
//! ([`TunnelListener::open_udp_flow`]) and forwards. Later datagrams reach the task through a
//! bounded queue ([`CLIENT_QUEUE`]; full: dropped and counted), so the receive loop never waits
//! on one flow. The flow ends when the tunnel expires it (nothing either way for the tunnel's
//! UDP idle timeout) or its connection ends; the next datagram opens a new one.
//!
//! # Replies from the original destination
//! A reply must come from the address and port the client sent to, or the client's stack
//! discards it. `sendmsg` with `IP_PKTINFO` sets only the source *address*: the port would be
//! `tproxy_port`. So each flow binds its own socket to the original destination (allowed for a
//! non-local address by `IP_TRANSPARENT`; `SO_REUSEADDR` lets flows of several clients to one
//! destination bind it together) and sends with `send_to(client)`. The socket is never
//! connected: TPROXY's socket lookup skips unconnected sockets for UDP (`nf_tproxy_get_sock_v4`
//! with `NF_TPROXY_LOOKUP_ESTABLISHED`), so every client datagram still arrives at the one
//! receiving socket, and the reply socket only sends.
//!
//! Not here: UDP to hostname routes (no name to route by) and the identity assertion.

use crate::live_flows::{FlowTarget, LiveFlows};
use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tunnel::edge::TunnelListener;
use tunnel::Target;
use tunnel_proto::Destination;

/// Datagrams from a client queued for its flow's task (while the flow opens, or when the task
/// falls behind) before new ones are dropped.
const CLIENT_QUEUE: usize = 256;

/// Most (client, destination) flows at once over all connectors: four connections' worth of
/// the tunnel's per-connection limit (`tunnel::udp::DEFAULT_MAX_UDP_FLOWS`).
const MAX_FLOWS: usize = 16 * 1024;

/// How long opening a flow (writing `UdpFlowOpen` on the control stream) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest UDP payload; a datagram over the tunnel's datagram size is dropped and counted by
/// the tunnel.
const MAX_UDP_PAYLOAD: usize = 65_535;

/// Binds the transparent UDP sockets on `port` (IPv4 required, IPv6 when the host has it) and
/// starts their receive loops.
///
/// # Errors
/// The IPv4 socket cannot be created or bound (needs CAP_NET_ADMIN).
pub(crate) fn start(
    port: u16,
    listener: Arc<TunnelListener>,
    live: Arc<LiveFlows>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let flows = Arc::new(Flows::default());
    let v4 = receiving_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .with_context(|| format!("failed to bind the transparent UDP socket on port {port}"))?;
    let mut sockets = vec![v4];
    match receiving_socket(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(v6) => sockets.push(v6),
        Err(e) => tracing::warn!("no IPv6 transparent UDP socket: {e:#}"),
    }
    Ok(sockets
        .into_iter()
        .map(|socket| {
            tokio::spawn(receive(
                socket,
                listener.clone(),
                flows.clone(),
                live.clone(),
            ))
        })
        .collect())
}

/// The live flows by (client, original destination), and what was dropped.
#[derive(Default)]
struct Flows {
    map: Mutex<FlowMap>,
    dropped_queue_full: AtomicU64,
    dropped_table_full: AtomicU64,
    no_connector: AtomicU64,
}

#[derive(Default)]
struct FlowMap {
    by_key: BTreeMap<(SocketAddr, SocketAddr), FlowEntry>,
    next_generation: u64,
}

/// A flow task's queue; `generation` tells a flow from a later one of the same pair.
struct FlowEntry {
    generation: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Flows {
    fn lock(&self) -> MutexGuard<'_, FlowMap> {
        // Every critical section leaves the map whole.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `payload` for the flow of `key`, creating it (the returned receiver goes to a new
    /// task) when there is none.
    fn route(
        &self,
        key: (SocketAddr, SocketAddr),
        payload: Vec<u8>,
    ) -> Option<(u64, mpsc::Receiver<Vec<u8>>)> {
        let mut map = self.lock();
        if let Some(entry) = map.by_key.get(&key) {
            if entry.tx.try_send(payload).is_err() {
                self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                tracing::trace!("client udp queue full, datagram dropped");
            }
            return None;
        }
        if map.by_key.len() >= MAX_FLOWS {
            self.dropped_table_full.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("too many udp flows, datagram dropped");
            return None;
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        // A new channel has room for its first datagram.
        let _ = tx.try_send(payload);
        let generation = map.next_generation;
        map.next_generation += 1;
        map.by_key.insert(key, FlowEntry { generation, tx });
        Some((generation, rx))
    }

    /// Forgets the flow of `key` if it is still the one of `generation`.
    fn remove(&self, key: (SocketAddr, SocketAddr), generation: u64) {
        let mut map = self.lock();
        if map
            .by_key
            .get(&key)
            .is_some_and(|entry| entry.generation == generation)
        {
            map.by_key.remove(&key);
        }
    }
}

async fn receive(
    socket: UdpSocket,
    listener: Arc<TunnelListener>,
    flows: Arc<Flows>,
    live: Arc<LiveFlows>,
) {
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
    let mut cmsg = nix::cmsg_space!(libc::sockaddr_in6);
    loop {
        if let Err(e) = socket.readable().await {
            tracing::warn!("transparent UDP socket: {e}");
            return;
        }
        let received = socket.try_io(Interest::READABLE, || {
            recv_with_destination(&socket, &mut buf, &mut cmsg)
        });
        let (n, client, destination) = match received {
            Ok(Some(received)) => received,
            // No original destination: not a TPROXYed datagram.
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!("transparent UDP receive: {e}");
                continue;
            }
        };
        let key = (client, destination);
        if let Some((generation, rx)) = flows.route(key, buf[..n].to_vec()) {
            let span = tracing::debug_span!("udp_flow", generation);
            tokio::spawn(tracing::Instrument::instrument(
                flow(
                    listener.clone(),
                    flows.clone(),
                    live.clone(),
                    key,
                    generation,
                    rx,
                ),
                span,
            ));
        }
    }
}

/// One `recvmsg`: the payload length, the client and the original destination (`None` when
/// the datagram carried none).
fn recv_with_destination(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> std::io::Result<Option<(usize, SocketAddr, SocketAddr)>> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
    let client = msg.address.as_ref().and_then(std_addr);
    let mut destination = None;
    for message in msg.cmsgs()? {
        // Other control messages (none are asked for) are ignored.
        if let ControlMessageOwned::Ipv4OrigDstAddr(addr) = message {
            destination = Some(SocketAddr::V4(SocketAddrV4::from(SockaddrIn::from(addr))));
        } else if let ControlMessageOwned::Ipv6OrigDstAddr(addr) = message {
            destination = Some(SocketAddr::V6(SocketAddrV6::from(SockaddrIn6::from(addr))));
        }
    }
    Ok(client.zip(destination).map(|(c, d)| (msg.bytes, c, d)))
}

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// One (client, destination) flow: pick, open, relay until the tunnel flow ends.
async fn flow(
    listener: Arc<TunnelListener>,
    flows: Arc<Flows>,
    live: Arc<LiveFlows>,
    key: (SocketAddr, SocketAddr),
    generation: u64,
    mut from_client: mpsc::Receiver<Vec<u8>>,
) {
    let (client, destination) = key;
    // Ends at once if the policy or the device's identity stops allowing it.
    let live_flow = live.register(
        client.ip(),
        FlowTarget::Ip {
            addr: destination.ip(),
            port: destination.port(),
            protocol: edge_policy::Protocol::Udp,
        },
    );
    tokio::select! {
        () = relay(&listener, &flows, client, destination, &mut from_client) => {}
        () = live_flow.closed() => {
            tracing::debug!(%client, %destination, "udp flow no longer allowed: closed");
        }
    }
    flows.remove(key, generation);
}

async fn relay(
    listener: &TunnelListener,
    flows: &Flows,
    client: SocketAddr,
    destination: SocketAddr,
    from_client: &mut mpsc::Receiver<Vec<u8>>,
) {
    let Some(connection) = listener.pick(Target::Ip(destination.ip())) else {
        flows.no_connector.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%client, %destination, "no connector for the udp destination");
        return;
    };
    let opened = tokio::time::timeout(
        OPEN_TIMEOUT,
        listener.open_udp_flow(connection, Destination::Addr(destination), None),
    )
    .await;
    let mut tunnel = match opened {
        Ok(Ok(flow)) => flow,
        Ok(Err(e)) => {
            tracing::debug!(%client, %destination, "udp flow not opened: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%client, %destination, "udp flow not opened in time");
            return;
        }
    };
    let reply = match reply_socket(destination) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::debug!(%destination, "no reply socket: {e:#}");
            return;
        }
    };
    tracing::trace!(%client, %destination, connection = connection.0, "udp flow to connector");
    loop {
        tokio::select! {
            payload = from_client.recv() => {
                let Some(payload) = payload else { return };
                // Failures are counted by the tunnel (oversize, closed).
                if let Err(e) = tunnel.send(&payload) {
                    tracing::trace!("udp datagram not sent: {e}");
                }
            }
            answer = tunnel.recv() => {
                let Some(answer) = answer else {
                    tracing::trace!("udp flow ended");
                    return;
                };
                if let Err(e) = reply.send_to(&answer, client).await {
                    tracing::debug!("udp reply to the client failed: {e}");
                }
            }
        }
    }
}

/// The transparent socket on `port` that receives every captured datagram.
fn receiving_socket(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = transparent_udp(addr)?;
    if addr.is_ipv4() {
        setsockopt(&socket, sockopt::Ipv4OrigDstAddr, &true).context("IP_RECVORIGDSTADDR")?;
    } else {
        setsockopt(&socket, sockopt::Ipv6OrigDstAddr, &true).context("IPV6_RECVORIGDSTADDR")?;
    }
    socket
        .bind(&addr.into())
        .with_context(|| format!("failed to bind {addr}"))?;
    UdpSocket::from_std(socket.into()).context("failed to register the UDP socket")
}

/// A send-only socket bound to a flow's original destination (see the module documentation).
fn reply_socket(destination: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = transparent_udp(destination)?;
    socket
        .bind(&destination.into())
        .with_context(|| format!("failed to bind {destination}"))?;
    UdpSocket::from_std(socket.into()).context("failed to register the UDP socket")
}

fn transparent_udp(addr: SocketAddr) -> anyhow::Result<socket2::Socket> {
    crate::transparent::socket(addr, socket2::Type::DGRAM, socket2::Protocol::UDP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, destination: &str) -> (SocketAddr, SocketAddr) {
        (
            client.parse().expect("addr"),
            destination.parse().expect("addr"),
        )
    }

    #[test]
    fn the_first_datagram_of_a_pair_starts_a_flow_and_later_ones_join_it() {
        let flows = Flows::default();
        let dns = key("100.64.0.2:40000", "10.99.0.5:53");
        let (generation, mut rx) = flows.route(dns, b"one".to_vec()).expect("new flow");
        assert!(flows.route(dns, b"two".to_vec()).is_none());
        assert_eq!(rx.try_recv().ok(), Some(b"one".to_vec()));
        assert_eq!(rx.try_recv().ok(), Some(b"two".to_vec()));

        // Another client port is another flow.
        let other = key("100.64.0.2:40001", "10.99.0.5:53");
        assert!(flows.route(other, b"x".to_vec()).is_some());

        // After the flow ends, the next datagram starts a new one; a stale remove is ignored.
        flows.remove(dns, generation);
        let (again, _rx) = flows.route(dns, b"three".to_vec()).expect("new flow");
        assert_ne!(again, generation);
        flows.remove(dns, generation);
        assert!(flows.route(dns, b"four".to_vec()).is_none());
    }

    #[test]
    fn a_full_client_queue_drops_and_counts() {
        let flows = Flows::default();
        let dns = key("100.64.0.2:40000", "10.99.0.5:53");
        let _flow = flows.route(dns, vec![0]).expect("new flow");
        for _ in 0..CLIENT_QUEUE + 3 {
            let _ = flows.route(dns, vec![1]);
        }
        assert_eq!(flows.dropped_queue_full.load(Ordering::Relaxed), 4);
    }
}
