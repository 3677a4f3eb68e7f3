//! The WireGuard UDP socket.

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv6Addr, SocketAddr};

/// Socket buffers large enough for bursts of full-size datagrams; wireguard-go asks for 7 MiB.
const SOCKET_BUFFER: usize = 7 << 20;

/// Binds a dual-stack UDP socket on `listen` (an IPv6 wildcard also takes IPv4), with large
/// buffers and, when given, a firewall mark so the tunnel's own traffic can bypass its routes.
///
/// # Errors
/// The address is in use or not permitted; setting the mark needs CAP_NET_ADMIN.
pub fn bind(listen: SocketAddr, fwmark: Option<u32>) -> anyhow::Result<tokio::net::UdpSocket> {
    let domain = Domain::for_address(listen);
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .context("failed to create the UDP socket")?;
    if listen.is_ipv6() && listen.ip() == Ipv6Addr::UNSPECIFIED {
        socket
            .set_only_v6(false)
            .context("failed to make the socket dual-stack")?;
    }
    // Buffers are best effort: without CAP_NET_ADMIN the kernel caps them at
    // net.core.{r,w}mem_max (208 KiB by default, a few milliseconds at line rate).
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    force_buffer(&socket, libc::SO_RCVBUFFORCE);
    force_buffer(&socket, libc::SO_SNDBUFFORCE);
    if let Some(mark) = fwmark {
        socket
            .set_mark(mark)
            .context("failed to set the socket's fwmark (needs CAP_NET_ADMIN)")?;
    }
    socket
        .set_nonblocking(true)
        .context("failed to make the socket non-blocking")?;
    socket
        .bind(&listen.into())
        .with_context(|| format!("failed to bind UDP {listen}"))?;
    tokio::net::UdpSocket::from_std(socket.into()).context("failed to register the UDP socket")
}

/// Raises a socket buffer past `net.core.*mem_max` when the process may (CAP_NET_ADMIN), as
/// wireguard-go does; silently keeps the capped size otherwise.
fn force_buffer(socket: &Socket, option: libc::c_int) {
    use std::os::fd::AsRawFd as _;
    let size = libc::c_int::try_from(SOCKET_BUFFER).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads one c_int from a live stack variable of the size passed.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::addr_of!(size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Datagrams received per `recvmmsg` call.
pub const RECV_BATCH: usize = 8;
/// Each receive buffer holds one GRO-coalesced train of datagrams (at most 64 KiB).
const RECV_BUF: usize = 65_536;

/// The tunnel's UDP socket with batched IO: `recvmmsg` + UDP GRO on receive, UDP GSO on send,
/// through `quinn-udp` (the quinn project's maintained implementation of both).
pub struct BatchSocket {
    socket: tokio::net::UdpSocket,
    state: quinn_udp::UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
}

/// One received datagram: its source and its bytes.
pub struct Received<'a> {
    pub from: SocketAddr,
    pub datagram: &'a [u8],
}

impl BatchSocket {
    /// Wraps a bound socket (see [`bind`]).
    ///
    /// # Errors
    /// The socket options quinn-udp sets (GRO, packet info) are refused.
    pub fn new(socket: tokio::net::UdpSocket) -> anyhow::Result<Self> {
        let state = quinn_udp::UdpSocketState::new((&socket).into())
            .context("failed to configure the UDP socket for batched IO")?;
        Ok(Self {
            socket,
            state,
            bufs: (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUF]).collect(),
            meta: vec![quinn_udp::RecvMeta::default(); RECV_BATCH],
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The most datagrams one GSO send may carry here (1 without GSO support).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Waits until the socket is readable.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn readable(&self) -> std::io::Result<()> {
        self.socket.readable().await
    }

    /// Waits until the socket is writable.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn writable(&self) -> std::io::Result<()> {
        self.socket.writable().await
    }

    /// Receives what is ready (one `recvmmsg`) and calls `each` per datagram, source addresses
    /// made canonical (a dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`).
    ///
    /// # Errors
    /// `WouldBlock` when nothing was ready, or the socket's error.
    pub fn try_recv_each(&mut self, mut each: impl FnMut(Received<'_>)) -> std::io::Result<usize> {
        let Self {
            socket,
            state,
            bufs,
            meta,
        } = self;
        let mut slices: Vec<std::io::IoSliceMut<'_>> = bufs
            .iter_mut()
            .map(|b| std::io::IoSliceMut::new(b))
            .collect();
        let count = socket.try_io(tokio::io::Interest::READABLE, || {
            state.recv((&*socket).into(), &mut slices, meta)
        })?;
        let mut datagrams = 0;
        for (m, buf) in meta.iter().zip(slices.iter()).take(count) {
            let from = SocketAddr::new(m.addr.ip().to_canonical(), m.addr.port());
            let stride = m.stride.max(1);
            for datagram in buf[..m.len].chunks(stride) {
                datagrams += 1;
                each(Received { from, datagram });
            }
        }
        Ok(datagrams)
    }

    /// Sends `contents` to `to`: one datagram, or several of `segment_size` bytes each (the
    /// last may be shorter) in one GSO call.
    ///
    /// # Errors
    /// `WouldBlock` when the socket buffer is full, or the socket's error.
    pub fn try_send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> std::io::Result<()> {
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        self.socket.try_io(tokio::io::Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), &transmit)
        })
    }

    /// Like [`BatchSocket::try_send`], waiting while the socket buffer is full.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> std::io::Result<()> {
        loop {
            match self.try_send(to, contents, segment_size) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.writable().await?,
                other => return other,
            }
        }
    }
}
