//! The client's pure logic: configuration and routing decisions for the Gatehouse tunnel.
//!
//! What it is: sans-IO code the client driver calls with plain values. [`wg_quick`] reads and
//! writes wg-quick configuration files; [`routes`] decides which prefixes go through the tunnel;
//! [`enroll`] holds identity's enrollment messages and turns a device profile into a wg-quick file;
//! [`device_state`] is the saved login (`device.json`) and what a profile refresh answer means;
//! [`status`] builds and renders what `gatehouse status` shows.
//!
//! What it is not: no files, sockets, TUN devices, OS routes, DNS resolution, clocks or async
//! runtime. It never runs the hook commands a wg-quick file carries.
//!
//! What drives it: the `client` driver crate (desktop daemon and mobile bindings) reads files and
//! the environment, calls into this crate, and applies the results to the OS.

pub mod device_state;
pub mod enroll;
pub mod routes;
pub mod status;
pub mod wg_quick;
// pub mod client;  (the tunnel core, added separately)
