//! `wg`: a sans-IO WireGuard node shared by the client and the edge.
//!
//! It is N boringtun `noise::Tunn` peers behind one UDP socket and one timer: it finds the peer of
//! a handshake initiation by its static key, routes data packets by receiver index, follows roaming
//! endpoints, answers with cookies under load, and drops decrypted packets whose inner source is
//! not one of the peer's allowed IPs. It is not a driver: it never touches a socket, a TUN device or
//! the clock (boringtun reads its own clock internally; see STYLE.md).

pub mod keys;
pub mod uapi;

mod allowed_ips;
mod limits;
mod node;
mod peer;

pub use node::{
    DropReason, Event, Node, NodeConfig, OwnedTransmit, PeerError, Received, Transmit,
    WireGuardErrorKind, DEFAULT_HANDSHAKE_LOAD_LIMIT, MIN_BUFFER,
};
pub use peer::{PeerConfig, PeerStatus};
