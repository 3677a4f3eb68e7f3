//! `gatehouse-connector`'s driver: the process that runs next to origins and only dials out.
//!
//! What it is: the command line's work (`ingress validate`, `ingress rule`), the configuration
//! while running ([`live_config`]: polled and SIGHUP reloads, atomic replacement), the signal
//! life cycle ([`lifecycle`], pure), origin dialing ([`origin`]: TCP, unix sockets, TLS, PROXY
//! protocol v2 from [`proxy_protocol`], local `http_status:`), and the local `/ready` and
//! `/metrics` endpoints ([`local_http`] over [`metrics`]).
//!
//! The tunnel to the edges is a [`Transport`] (see [`transport`] for the contract) that [`run()`]
//! takes: [`TunnelTransport`] ([`tunnel_transport`]) drives `edge-gateway/tunnel`'s QUIC dialer
//! with the credentials file ([`credentials`]) and forwards flow streams to origins, rewriting
//! HTTP request heads ([`http_request`]), and UDP flows to `private-routes` ([`udp_origin`]).
//!
//! What it is not: the QUIC protocol and sessions (`edge-gateway/tunnel`), nor the configuration
//! file's format, validation and rule matching (`connector-config`).
//!
//! What drives it: `main` builds a tokio runtime and calls [`run()`] with a transport.

pub mod commands;
pub mod credentials;
pub mod http_request;
pub mod lifecycle;
pub mod live_config;
pub mod local_http;
pub mod metrics;
pub mod origin;
pub mod origin_tls;
pub mod proxy_protocol;
pub mod run;
pub mod transport;
pub mod tunnel_transport;
pub mod udp_origin;

pub use run::{run, RunOptions};
pub use transport::{LocalOnly, Transport, TransportContext};
pub use tunnel_transport::TunnelTransport;

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
