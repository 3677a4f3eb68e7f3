//! Sockets TPROXY hands flows to: `IP_TRANSPARENT` / `IPV6_TRANSPARENT` set before bind, so a
//! socket may accept traffic for (and send from) any address. Used by the TCP listeners
//! ([`crate::connectors`]) and the UDP flows ([`crate::udp_flows`]).

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// A non-blocking socket of `addr`'s family with `SO_REUSEADDR` and the transparent option,
/// not yet bound. An IPv6 one is v6-only, so the IPv4 socket gets the IPv4 flows.
///
/// # Errors
/// The socket cannot be created, or the option not set (needs CAP_NET_ADMIN).
pub(crate) fn socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> anyhow::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))
        .context("failed to create a socket")?;
    socket.set_reuse_address(true).context("SO_REUSEADDR")?;
    if addr.is_ipv4() {
        socket
            .set_ip_transparent(true)
            .context("failed to set IP_TRANSPARENT (needs CAP_NET_ADMIN)")?;
    } else {
        socket.set_only_v6(true).context("IPV6_V6ONLY")?;
        set_ipv6_transparent(&socket)
            .context("failed to set IPV6_TRANSPARENT (needs CAP_NET_ADMIN)")?;
    }
    socket.set_nonblocking(true).context("O_NONBLOCK")?;
    Ok(socket)
}

/// Neither socket2 0.5 nor nix has a setter for `IPV6_TRANSPARENT`.
fn set_ipv6_transparent(socket: &Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    // SAFETY: `socket` owns a valid descriptor for the duration of the call; the option value
    // is a live c_int whose size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_IPV6,
            libc::IPV6_TRANSPARENT,
            std::ptr::addr_of!(on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
