//! A TUN device driven by tokio: opened by name (desktop, edge) or adopted from a file
//! descriptor the host already owns (Android's `VpnService`).

use anyhow::Context as _;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A non-blocking TUN device carrying raw IP packets (no packet-information header).
pub struct AsyncTun {
    inner: AsyncFd<tun::Device>,
    name: String,
}

impl AsyncTun {
    /// Creates (or attaches to) the TUN interface `name`, sets its MTU and brings it up.
    /// Needs CAP_NET_ADMIN.
    ///
    /// # Errors
    /// The device cannot be created (no permission, no `/dev/net/tun`, bad name).
    pub fn create(name: &str, mtu: u16) -> anyhow::Result<Self> {
        let mut config = tun::Configuration::default();
        config.tun_name(name).mtu(mtu).up();
        let device = tun::create(&config)
            .with_context(|| format!("failed to create TUN device {name} (needs CAP_NET_ADMIN)"))?;
        Self::wrap(device, name.to_string())
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
        Self::wrap(device, String::new())
    }

    fn wrap(device: tun::Device, name: String) -> anyhow::Result<Self> {
        device
            .set_nonblock()
            .context("failed to make the TUN device non-blocking")?;
        // SAFETY: the device owns its file descriptor (or the caller of `from_fd` promised to
        // keep it open), and nothing replaces or closes it while `AsyncFd` holds it.
        let inner = unsafe { AsyncFd::register_with_interest(device, Interest::READABLE) }
            .context("failed to register the TUN device with tokio")?;
        Ok(Self { inner, name })
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
        self.inner.get_ref().send(packet)
    }
}

impl AsRawFd for AsyncTun {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}
