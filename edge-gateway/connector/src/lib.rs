//! `gatehouse-connector`'s driver: the process that runs next to origins and only dials out.
//!
//! What it is: the command line's work (`ingress validate`, `ingress rule`), the configuration
//! while running ([`live_config`]: polled and SIGHUP reloads, atomic replacement), the signal
//! life cycle ([`lifecycle`], pure), origin dialing ([`origin`]: TCP, unix sockets, TLS, PROXY
//! protocol v2 from [`proxy_protocol`], local `http_status:`), and the local `/ready` and
//! `/metrics` endpoints ([`local_http`] over [`metrics`]).
//!
//! What it is not: the tunnel to the edges. [`run()`] takes that as a [`Transport`] (see
//! [`transport`] for the contract); the QUIC transport lives in `edge-gateway/tunnel`. The
//! configuration file's format, validation and rule matching are `connector-config`'s.
//!
//! What drives it: `main` builds a tokio runtime and calls [`run()`] with a transport.

pub mod commands;
pub mod lifecycle;
pub mod live_config;
pub mod local_http;
pub mod metrics;
pub mod origin;
pub mod origin_tls;
pub mod proxy_protocol;
pub mod run;
pub mod transport;

pub use run::{run, RunOptions};
pub use transport::{LocalOnly, Transport, TransportContext};

/// `error` and its sources joined by `": "`, like anyhow's `{:#}`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
