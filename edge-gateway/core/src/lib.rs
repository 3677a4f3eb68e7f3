//! `edge-core`: the sans-IO heart of `gatehouse-edge`.
//!
//! It terminates WireGuard for many peers (through [`wg::Node`]), puts every decrypted packet
//! into a flow, asks a [`FlowPolicy`] once per new flow whether the peer that sent it may reach
//! the destination, and answers denied flows with a TCP reset or an ICMP unreachable. Replies
//! from the destination are let back only on allowed flows. It is not a driver: sockets, the
//! TUN device, the clock and logging of decisions belong to `edge-gateway`.

pub mod access;
pub mod clientless;
mod edge;
mod flows;
pub mod http_host;
mod policy;

pub use edge::{Edge, EdgeConfig, EdgeDrop, EdgeEvent, EdgePeer, FromPeer};
pub use flows::FlowTimeouts;
pub use policy::{Action, Decision, FlowPolicy, PortRange, Rule, RulePolicy};
