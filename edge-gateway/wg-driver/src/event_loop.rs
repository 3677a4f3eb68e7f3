//! The tunnel event loop shared by the client and the edge: UDP ⇄ core ⇄ packet device, one
//! timer, the UAPI socket, and a shutdown signal.
//!
//! The per-packet path is batched at both ends: one `recvmmsg` (with UDP GRO) hands over many
//! datagrams, one TUN read may hold a TCP super-packet of up to 64 KiB, and the encrypted
//! datagrams of one read leave in as few `sendmsg` calls as UDP GSO allows.

use crate::packet_device::PacketDevice;
use crate::uapi_server::{UapiCall, UapiServer};
use crate::udp::BatchSocket;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};
use wg::uapi::{DeviceSnapshot, Request, SetRequest};
use wg::{OwnedTransmit, PeerError, Transmit};

/// Reads per readiness event before the loop looks at its other inputs, so one busy direction
/// cannot starve the other or the timer.
const BATCH: usize = 16;
/// One TUN read: a packet, or a virtio header and a super-packet of up to 64 KiB.
const TUN_BUF: usize = 65_536 + 64;
/// A GSO send carries at most 64 KiB in all (the IP datagram limit of the kernel's UDP GSO).
const GSO_MAX_BYTES: usize = 65_000;

/// What the loop needs from a sans-IO tunnel core (the client's node or the edge).
pub trait TunnelCore {
    /// Why the core dropped a datagram or packet; the loop counts drops and logs them at TRACE.
    type Drop: std::fmt::Display;
    /// A datagram arrived; returns the packet to write to the TUN device, if any.
    ///
    /// # Errors
    /// The datagram was dropped.
    fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<&'b [u8]>, Self::Drop>;
    /// A packet was read from the TUN device; returns the datagram to send, if any.
    ///
    /// # Errors
    /// The packet was dropped.
    fn handle_tun_packet<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<Transmit<'b>>, Self::Drop>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Instant;
    fn poll_transmit(&mut self) -> Option<OwnedTransmit>;
    /// Logs (or otherwise handles) pending events.
    fn drain_events(&mut self);
    fn snapshot(&self) -> DeviceSnapshot;
    /// # Errors
    /// A peer the core refused.
    fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError>;
    /// A signal other tasks notify when the core has work from outside the loop (new peers
    /// from a config feed, say); the loop then calls [`handle_wake`](Self::handle_wake).
    /// Asked once, when the loop starts.
    fn wake_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// The wake signal fired.
    fn handle_wake(&mut self, _now: Instant) {}
}

/// Counters the loop keeps about its own IO.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    pub to_tun: u64,
    pub to_network: u64,
    pub tun_write_errors: u64,
    pub udp_sends: u64,
    /// Datagrams and packets the core dropped.
    pub dropped: u64,
}

/// Runs `core` over `socket` and the packet device `tun` until `shutdown` completes.
///
/// # Errors
/// The UDP socket failing for good; per-packet errors are counted, never returned.
pub async fn run<C: TunnelCore, D: PacketDevice>(
    core: &mut C,
    socket: &mut BatchSocket,
    tun: &D,
    mut uapi: Option<&mut UapiServer>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<LoopStats> {
    let max_segments = socket.max_gso_segments();
    let mut io = Io {
        socket,
        tun,
        stats: LoopStats::default(),
        rx: vec![0u8; TUN_BUF],
        scratch: vec![0u8; TUN_BUF],
        out: vec![0u8; TUN_BUF],
        tx: TxBatch::new(max_segments),
        coalescer: tun
            .takes_super_packets()
            .then(wire::offload::Coalescer::new),
    };
    tokio::pin!(shutdown);
    let wake = core.wake_signal();
    loop {
        let deadline = tokio::time::Instant::from_std(core.poll_timeout());
        tokio::select! {
            ready = io.socket.readable() => {
                ready?;
                io.on_udp_readable(core);
            }
            read = tun.recv(&mut io.rx) => match read {
                Ok(n) => io.on_tun_readable(core, n).await,
                Err(e) => tracing::warn!("TUN read failed: {e}"),
            },
            () = tokio::time::sleep_until(deadline) => core.handle_timeout(Instant::now()),
            call = next_call(&mut uapi) => on_uapi(core, call),
            () = woken(wake.as_deref()) => core.handle_wake(Instant::now()),
            () = &mut shutdown => break,
        }
        io.flush(core).await;
    }
    Ok(io.stats)
}

struct Io<'a, D> {
    socket: &'a mut BatchSocket,
    tun: &'a D,
    stats: LoopStats,
    rx: Vec<u8>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    tx: TxBatch,
    /// Joins decrypted TCP segments into super-packets when the device takes them.
    coalescer: Option<wire::offload::Coalescer>,
}

impl<D: PacketDevice> Io<'_, D> {
    fn on_udp_readable<C: TunnelCore>(&mut self, core: &mut C) {
        let Self {
            socket,
            tun,
            stats,
            out,
            coalescer,
            ..
        } = self;
        let mut write = |bytes: &[u8], offloaded: bool| {
            let result = if offloaded {
                tun.send_offloaded(bytes)
            } else {
                tun.send(bytes)
            };
            if let Err(e) = result {
                stats.tun_write_errors += 1;
                tracing::trace!("TUN write failed: {e}");
            }
        };
        for _ in 0..BATCH {
            let result = socket.try_recv_each(|received| {
                let now = Instant::now();
                let packet = match core.handle_datagram(received.from, received.datagram, out, now)
                {
                    Ok(Some(packet)) => packet,
                    Ok(None) => return,
                    Err(reason) => {
                        stats.dropped += 1;
                        tracing::trace!("datagram dropped: {reason}");
                        return;
                    }
                };
                stats.to_tun += 1;
                match coalescer {
                    Some(c) => c.push(packet, &mut |bytes| write(bytes, true)),
                    None => write(packet, false),
                }
            });
            // A batch's last super-packet must not wait for traffic that may never come.
            if let Some(c) = coalescer {
                c.finish(&mut |bytes| write(bytes, true));
            }
            match result {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("UDP receive failed: {e}");
                    return;
                }
            }
        }
    }

    async fn on_tun_readable<C: TunnelCore>(&mut self, core: &mut C, first_len: usize) {
        let mut len = Some(first_len);
        for _ in 0..BATCH {
            let Some(n) = len.take() else { break };
            let now = Instant::now();
            let Self {
                tun,
                rx,
                scratch,
                tx,
                stats,
                ..
            } = self;
            tun.for_each_packet(&mut rx[..n], scratch, &mut |packet| {
                let slot = tx.slot(packet.len());
                match core.handle_tun_packet(packet, slot, now) {
                    Ok(Some(t)) => {
                        let (to, len) = (t.to, t.datagram.len());
                        tx.commit(to, len);
                        stats.to_network += 1;
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        stats.dropped += 1;
                        tracing::trace!("packet dropped: {reason}");
                    }
                }
            });
            self.send_batch().await;
            len = self.tun.try_recv(&mut self.rx).ok();
        }
    }

    async fn send_batch(&mut self) {
        for group in self.tx.groups.drain(..) {
            let contents = &self.tx.buf[group.start..group.end];
            let segment = (group.count > 1).then_some(group.segment);
            self.stats.udp_sends += 1;
            if let Err(e) = self.socket.send(group.to, contents, segment).await {
                tracing::debug!("UDP send failed: {e}");
            }
        }
        self.tx.len = 0;
    }

    async fn flush<C: TunnelCore>(&mut self, core: &mut C) {
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = self.socket.send(t.to, &t.datagram, None).await {
                tracing::debug!("UDP send failed: {e}");
            }
        }
        core.drain_events();
    }
}

/// Encrypted datagrams waiting to be sent, grouped into runs a single GSO send can carry:
/// same destination, same size (the last of a run may be shorter).
struct TxBatch {
    buf: Vec<u8>,
    len: usize,
    groups: Vec<Group>,
    max_segments: usize,
}

struct Group {
    to: SocketAddr,
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl TxBatch {
    fn new(max_segments: usize) -> Self {
        Self {
            buf: vec![0u8; TUN_BUF],
            len: 0,
            groups: Vec::new(),
            max_segments: max_segments.max(1),
        }
    }

    /// Space for the encryption of a `packet_len`-byte packet, right after what is batched.
    fn slot(&mut self, packet_len: usize) -> &mut [u8] {
        let need = (packet_len + 32).max(wg::MIN_BUFFER);
        if self.buf.len() < self.len + need {
            self.buf.resize(self.len + need, 0);
        }
        &mut self.buf[self.len..self.len + need]
    }

    /// Adds the `len` bytes just written into the slot as a datagram to `to`.
    fn commit(&mut self, to: SocketAddr, len: usize) {
        let start = self.len;
        self.len += len;
        if let Some(group) = self.groups.last_mut() {
            let fits = group.to == to
                && !group.closed
                && len <= group.segment
                && group.count < self.max_segments
                && group.end - group.start + len <= GSO_MAX_BYTES
                && group.end == start;
            if fits {
                group.end = self.len;
                group.count += 1;
                group.closed = len < group.segment;
                return;
            }
        }
        self.groups.push(Group {
            to,
            start,
            end: self.len,
            segment: len,
            count: 1,
            closed: false,
        });
    }
}

/// Completes when `wake` is notified; never without one.
async fn woken(wake: Option<&tokio::sync::Notify>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn push(batch: &mut TxBatch, to: SocketAddr, len: usize) {
        let _ = batch.slot(len);
        batch.commit(to, len);
    }

    #[test]
    fn equal_datagrams_to_one_peer_form_one_gso_run_ended_by_a_shorter_one() {
        let mut batch = TxBatch::new(64);
        for _ in 0..5 {
            push(&mut batch, addr(1), 1452);
        }
        push(&mut batch, addr(1), 100);
        push(&mut batch, addr(1), 1452);
        assert_eq!(batch.groups.len(), 2);
        assert_eq!((batch.groups[0].count, batch.groups[0].segment), (6, 1452));
        assert_eq!(batch.groups[0].end - batch.groups[0].start, 5 * 1452 + 100);
        assert_eq!(batch.groups[1].count, 1);
    }

    #[test]
    fn runs_split_by_destination_segment_limit_and_size_limit() {
        let mut batch = TxBatch::new(3);
        for _ in 0..4 {
            push(&mut batch, addr(1), 1000);
        }
        push(&mut batch, addr(2), 1000);
        let counts: Vec<usize> = batch.groups.iter().map(|g| g.count).collect();
        assert_eq!(counts, [3, 1, 1]);

        let mut big = TxBatch::new(1000);
        for _ in 0..100 {
            push(&mut big, addr(1), 1452);
        }
        assert!(big.groups.iter().all(|g| g.end - g.start <= GSO_MAX_BYTES));
        assert_eq!(big.groups.iter().map(|g| g.count).sum::<usize>(), 100);
    }
}
