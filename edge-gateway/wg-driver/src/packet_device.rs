//! Where the tunnel's inner IP packets come from and go to: a TUN device, or channels the host
//! feeds (iOS's `NEPacketTunnelFlow` hands packets in and out instead of a file descriptor).

use crate::tun_device::AsyncTun;
use std::future::Future;
use std::io;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// A source and sink of IP packets for [`crate::event_loop::run`].
pub trait PacketDevice {
    /// Waits for one packet and copies it into `buf`, returning its length.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
    /// Reads one packet if one is ready; `WouldBlock` otherwise.
    ///
    /// # Errors
    /// `WouldBlock`, or the device's own error.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Calls `emit` for each IP packet in `chunk`, the bytes of one `recv` (a device with
    /// offloads may return several packets, or one to complete, per read).
    fn for_each_packet(&self, chunk: &mut [u8], scratch: &mut [u8], emit: &mut dyn FnMut(&[u8])) {
        let _ = scratch;
        emit(chunk);
    }
    /// Hands one packet to the host; a full device drops it (`WouldBlock`), as a NIC would.
    ///
    /// # Errors
    /// `WouldBlock` when full, `BrokenPipe` when the host side is gone.
    fn send(&self, packet: &[u8]) -> io::Result<usize>;
    /// True when the device takes super-packets behind a virtio header
    /// ([`PacketDevice::send_offloaded`]), so the loop may coalesce TCP segments.
    fn takes_super_packets(&self) -> bool {
        false
    }
    /// Writes a virtio header followed by a (super-)packet, from [`wire::offload::Coalescer`].
    ///
    /// # Errors
    /// `Unsupported` unless [`PacketDevice::takes_super_packets`]; else as [`PacketDevice::send`].
    fn send_offloaded(&self, header_and_packet: &[u8]) -> io::Result<usize> {
        let _ = header_and_packet;
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl PacketDevice for AsyncTun {
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> {
        AsyncTun::recv(self, buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        AsyncTun::try_recv(self, buf)
    }

    fn for_each_packet(&self, chunk: &mut [u8], scratch: &mut [u8], emit: &mut dyn FnMut(&[u8])) {
        AsyncTun::for_each_packet(self, chunk, scratch, emit);
    }

    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        AsyncTun::send(self, packet)
    }

    fn takes_super_packets(&self) -> bool {
        self.offload()
    }

    fn send_offloaded(&self, header_and_packet: &[u8]) -> io::Result<usize> {
        AsyncTun::send_raw(self, header_and_packet)
    }
}

/// Packets exchanged with the host through bounded channels.
pub struct ChannelDevice {
    from_host: Mutex<mpsc::Receiver<Vec<u8>>>,
    to_host: mpsc::Sender<Vec<u8>>,
}

/// The host's ends of a [`ChannelDevice`].
pub struct HostPackets {
    /// Packets the host wants sent through the tunnel (what the OS routed to the VPN).
    pub to_tunnel: mpsc::Sender<Vec<u8>>,
    /// Packets that came out of the tunnel, for the host to deliver to the OS.
    pub from_tunnel: mpsc::Receiver<Vec<u8>>,
}

impl ChannelDevice {
    /// A device and the host's ends, each direction holding at most `capacity` packets.
    pub fn pair(capacity: usize) -> (ChannelDevice, HostPackets) {
        let (to_tunnel, from_host) = mpsc::channel(capacity);
        let (to_host, from_tunnel) = mpsc::channel(capacity);
        (
            ChannelDevice {
                from_host: Mutex::new(from_host),
                to_host,
            },
            HostPackets {
                to_tunnel,
                from_tunnel,
            },
        )
    }

    fn copy_out(packet: Option<Vec<u8>>, buf: &mut [u8]) -> io::Result<usize> {
        let packet = packet.ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let len = packet.len().min(buf.len());
        buf[..len].copy_from_slice(&packet[..len]);
        Ok(len)
    }
}

impl PacketDevice for ChannelDevice {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let packet = std::future::poll_fn(|cx| match self.from_host.lock() {
            Ok(mut receiver) => receiver.poll_recv(cx),
            // A poisoned lock means a panic elsewhere; report the device as gone.
            Err(_) => std::task::Poll::Ready(None),
        })
        .await;
        Self::copy_out(packet, buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut receiver = self
            .from_host
            .lock()
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        match receiver.try_recv() {
            Ok(packet) => Self::copy_out(Some(packet), buf),
            Err(mpsc::error::TryRecvError::Empty) => Err(io::ErrorKind::WouldBlock.into()),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        match self.to_host.try_send(packet.to_vec()) {
            Ok(()) => Ok(packet.len()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(io::ErrorKind::WouldBlock.into()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}
