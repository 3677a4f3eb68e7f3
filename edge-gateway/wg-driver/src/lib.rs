//! `wg-driver`: the tokio IO shared by the `gatehouse` client and `gatehouse-edge`: the tunnel
//! event loop, the WireGuard UAPI socket server, the TUN device (or host-fed packet channels), the UDP socket, key generation
//! and iproute2 calls.
//!
//! Only IO lives here. The protocols and state machines these drivers shuttle bytes for are the
//! sans-IO cores (`wg`, `edge-core`; [`wg::uapi`] for the UAPI text protocol); each binary
//! builds its core and hands it to [`event_loop::run`].

pub mod event_loop;
pub mod iproute;
pub mod keygen;
pub mod packet_device;
pub mod process;
pub mod tun_device;
pub mod uapi_server;
pub mod udp;
