//! The tunnel event loop shared by the client and the edge: UDP ⇄ core ⇄ TUN, one timer, the
//! UAPI socket, and a shutdown signal.

use crate::packet_device::PacketDevice;
use crate::uapi_server::{UapiCall, UapiServer};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};
use tokio::net::UdpSocket;
use wg::uapi::{DeviceSnapshot, Request, SetRequest};
use wg::{OwnedTransmit, PeerError, Transmit};

/// Packets handled per readiness event before the loop looks at its other inputs, so one busy
/// direction cannot starve the other or the timer.
const BATCH: usize = 64;
/// Large enough for any UDP datagram plus WireGuard's 32-byte overhead.
const BUF: usize = 65_536 + 64;

/// What the loop needs from a sans-IO tunnel core (the client's node or the edge).
pub trait TunnelCore {
    /// A datagram arrived; returns the packet to write to the TUN device, if any. The core
    /// counts or logs what it drops.
    fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Option<&'b [u8]>;
    /// A packet was read from the TUN device; returns the datagram to send, if any.
    fn handle_tun_packet<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Option<Transmit<'b>>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Instant;
    fn poll_transmit(&mut self) -> Option<OwnedTransmit>;
    /// Logs (or otherwise handles) pending events.
    fn drain_events(&mut self);
    fn snapshot(&self) -> DeviceSnapshot;
    /// # Errors
    /// A peer the core refused.
    fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError>;
}

/// Counters the loop keeps about its own IO.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    pub to_tun: u64,
    pub to_network: u64,
    pub tun_write_errors: u64,
}

/// Runs `core` over `socket` and the packet device `tun` until `shutdown` completes.
///
/// # Errors
/// The UDP socket failing for good; per-packet errors are counted, never returned.
pub async fn run<C: TunnelCore, D: PacketDevice>(
    core: &mut C,
    socket: &UdpSocket,
    tun: &D,
    mut uapi: Option<&mut UapiServer>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<LoopStats> {
    let mut io = Io {
        socket,
        tun,
        stats: LoopStats::default(),
        rx: vec![0u8; BUF],
        out: vec![0u8; BUF],
    };
    tokio::pin!(shutdown);
    loop {
        let deadline = tokio::time::Instant::from_std(core.poll_timeout());
        tokio::select! {
            ready = socket.readable() => {
                ready?;
                io.on_udp_readable(core).await;
            }
            read = tun.recv(&mut io.rx) => match read {
                Ok(n) => io.on_tun_packets(core, n).await,
                Err(e) => tracing::warn!("TUN read failed: {e}"),
            },
            () = tokio::time::sleep_until(deadline) => core.handle_timeout(Instant::now()),
            call = next_call(&mut uapi) => on_uapi(core, call),
            () = &mut shutdown => break,
        }
        io.flush(core).await;
    }
    Ok(io.stats)
}

struct Io<'a, D> {
    socket: &'a UdpSocket,
    tun: &'a D,
    stats: LoopStats,
    rx: Vec<u8>,
    out: Vec<u8>,
}

impl<D: PacketDevice> Io<'_, D> {
    async fn on_udp_readable<C: TunnelCore>(&mut self, core: &mut C) {
        for _ in 0..BATCH {
            let (n, from) = match self.socket.try_recv_from(&mut self.rx) {
                Ok(received) => received,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("UDP receive failed: {e}");
                    return;
                }
            };
            // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; keep endpoints canonical.
            let from = SocketAddr::new(from.ip().to_canonical(), from.port());
            if let Some(packet) =
                core.handle_datagram(from, &self.rx[..n], &mut self.out, Instant::now())
            {
                self.stats.to_tun += 1;
                if let Err(e) = self.tun.send(packet) {
                    self.stats.tun_write_errors += 1;
                    tracing::trace!("TUN write failed: {e}");
                }
            }
            self.flush(core).await;
        }
    }

    async fn on_tun_packets<C: TunnelCore>(&mut self, core: &mut C, first_len: usize) {
        let mut len = Some(first_len);
        for _ in 0..BATCH {
            let Some(n) = len.take() else { break };
            if let Some(t) = core.handle_tun_packet(&self.rx[..n], &mut self.out, Instant::now()) {
                self.stats.to_network += 1;
                send(self.socket, t.to, t.datagram).await;
            }
            len = self.tun.try_recv(&mut self.rx).ok();
        }
    }

    async fn flush<C: TunnelCore>(&mut self, core: &mut C) {
        while let Some(t) = core.poll_transmit() {
            send(self.socket, t.to, &t.datagram).await;
        }
        core.drain_events();
    }
}

async fn next_call(uapi: &mut Option<&mut UapiServer>) -> UapiCall {
    match uapi {
        Some(server) => server.next().await,
        None => std::future::pending().await,
    }
}

fn on_uapi<C: TunnelCore>(core: &mut C, mut call: UapiCall) {
    match std::mem::replace(&mut call.request, Request::Get) {
        Request::Get => call.respond_get(wg::uapi::format_get(&core.snapshot(), SystemTime::now())),
        Request::Set(set) => match core.apply_uapi(set, Instant::now()) {
            Ok(()) => call.respond_errno(0),
            Err(e) => {
                tracing::debug!("UAPI set refused: {e}");
                call.respond_errno(EINVAL);
            }
        },
    }
}

/// errno for a set request the core refuses (wireguard-go answers EINVAL for bad peers too).
const EINVAL: i32 = 22;

async fn send(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) {
    match socket.try_send_to(datagram, to) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if let Err(e) = socket.send_to(datagram, to).await {
                tracing::debug!("UDP send failed: {e}");
            }
        }
        Err(e) => tracing::debug!("UDP send failed: {e}"),
    }
}
