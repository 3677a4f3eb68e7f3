//! `client`: the Gatehouse client's drivers, as a library the desktop binary and the mobile
//! bindings share.
//!
//! [`tunnel`] runs a WireGuard tunnel over any TUN device the host hands it (one this process
//! created, or a file descriptor from Android's `VpnService`); it never assumes it owns the
//! process or the device. [`os`] configures a desktop's addresses and routes. The protocol
//! logic lives in `wg` and `client-core`.

pub mod os;
pub mod paths;
pub mod tunnel;
