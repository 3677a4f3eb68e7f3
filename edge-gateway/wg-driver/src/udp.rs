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
    // Buffers are best effort: the kernel caps them at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
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
