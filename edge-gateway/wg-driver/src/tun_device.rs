//! A TUN device driven by tokio: opened by name (desktop, edge) or adopted from a file
//! descriptor the host already owns (Android's `VpnService`).

use anyhow::Context as _;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `TUNSETOFFLOAD`: `_IOW('T', 208, unsigned int)` (linux/if_tun.h).
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// The kernel may hand us packets with partial checksums and TCP super-packets (v4 and v6).
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// A non-blocking TUN device carrying IP packets (no packet-information header).
///
/// Created with offloads, every read and write carries a `virtio_net_hdr` and reads may return
/// TCP super-packets up to 64 KiB; [`AsyncTun::for_each_packet`] splits them (see
/// [`wire::offload`]). One read then replaces dozens, which is most of a userspace tunnel's cost.
pub struct AsyncTun {
    inner: AsyncFd<tun::Device>,
    name: String,
    offload: bool,
}

impl AsyncTun {
    /// Creates (or attaches to) the TUN interface `name`, sets its MTU and brings it up.
    /// Needs CAP_NET_ADMIN.
    ///
    /// # Errors
    /// The device cannot be created (no permission, no `/dev/net/tun`, bad name).
    pub fn create(name: &str, mtu: u16, offload: bool) -> anyhow::Result<Self> {
        let mut config = tun::Configuration::default();
        config.tun_name(name).mtu(mtu).up();
        if offload {
            config.platform_config(|p| {
                p.vnet_hdr(true);
            });
        }
        let device = tun::create(&config)
            .with_context(|| format!("failed to create TUN device {name} (needs CAP_NET_ADMIN)"))?;
        if offload {
            let flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes an integer argument and touches no memory of ours.
            if unsafe { libc::ioctl(device.as_raw_fd(), TUNSETOFFLOAD, flags) } != 0 {
                // Headers are still present; the kernel just never sends super-packets.
                tracing::warn!("TUN offloads unavailable: {}", io::Error::last_os_error());
            }
        }
        Self::wrap(device, name.to_string(), offload)
    }

    /// Adopts a TUN file descriptor opened by the host. The device's configuration (addresses,
    /// MTU, routes) is the host's business.
    ///
    /// # Safety
    /// `fd` must be an open TUN file descriptor in IFF_TUN | IFF_NO_PI mode. When `owned` is
    /// true it is closed when this value drops, and the caller must not close it; when false the
    /// caller keeps ownership and must keep it open for this value's lifetime.
    pub unsafe fn from_fd(fd: RawFd, owned: bool) -> anyhow::Result<Self> {
        let mut config = tun::Configuration::default();
        config.raw_fd(fd).close_fd_on_drop(owned);
        let device = tun::create(&config).context("failed to adopt the TUN file descriptor")?;
        Self::wrap(device, String::new(), false)
    }

    fn wrap(device: tun::Device, name: String, offload: bool) -> anyhow::Result<Self> {
        device
            .set_nonblock()
            .context("failed to make the TUN device non-blocking")?;
        // SAFETY: the device owns its file descriptor (or the caller of `from_fd` promised to
        // keep it open), and nothing replaces or closes it while `AsyncFd` holds it.
        let inner = unsafe { AsyncFd::register_with_interest(device, Interest::READABLE) }
            .context("failed to register the TUN device with tokio")?;
        Ok(Self {
            inner,
            name,
            offload,
        })
    }

    /// The interface name (empty for an adopted file descriptor).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the device is readable, then reads one packet.
    ///
    /// # Errors
    /// IO errors other than `WouldBlock`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|inner| inner.get_ref().recv(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one packet if one is ready, without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when no packet is ready, or another IO error.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.get_ref().recv(buf)
    }

    /// Writes one packet. The kernel queues TUN writes, so a full queue (`WouldBlock`) drops
    /// the packet like a full NIC ring would; the caller counts it.
    ///
    /// # Errors
    /// IO errors, `WouldBlock` included.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if !self.offload {
            return self.inner.get_ref().send(packet);
        }
        let parts = [
            libc::iovec {
                iov_base: wire::offload::VnetHdr::NONE.as_ptr() as *mut libc::c_void,
                iov_len: wire::offload::VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: packet.as_ptr() as *mut libc::c_void,
                iov_len: packet.len(),
            },
        ];
        // SAFETY: both iovecs point into live buffers for the duration of the call; writev
        // only reads them.
        let written = unsafe { libc::writev(self.as_raw_fd(), parts.as_ptr(), 2) };
        if written < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(written)
            .unwrap_or(0)
            .saturating_sub(wire::offload::VNET_HDR_LEN))
    }

    /// True when reads and writes carry virtio headers (offloads on).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Writes `bytes` as they are: with offloads, a virtio header and a (super-)packet.
    ///
    /// # Errors
    /// IO errors, `WouldBlock` included.
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<usize> {
        self.inner.get_ref().send(bytes)
    }

    /// Calls `emit` for each IP packet in `chunk` (one read's bytes): the chunk itself, or with
    /// offloads the packets behind its virtio header (segmented, checksums completed).
    /// `scratch` holds one segment. Malformed chunks are dropped and logged at TRACE.
    pub fn for_each_packet(
        &self,
        chunk: &mut [u8],
        scratch: &mut [u8],
        emit: &mut dyn FnMut(&[u8]),
    ) {
        if !self.offload {
            emit(chunk);
            return;
        }
        let Some((hdr_bytes, packet)) = chunk.split_at_mut_checked(wire::offload::VNET_HDR_LEN)
        else {
            return;
        };
        let result = wire::offload::VnetHdr::split(hdr_bytes)
            .and_then(|(hdr, _)| wire::offload::split_packet(&hdr, packet, scratch, emit));
        if let Err(e) = result {
            tracing::trace!("TUN packet dropped: {e}");
        }
    }
}

impl AsRawFd for AsyncTun {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}
