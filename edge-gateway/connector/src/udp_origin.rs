//! UDP flows from the edges to origins: one connected UDP socket per flow, datagrams relayed
//! both ways until the flow expires.
//!
//! A flow's destination must be an address in `private-routes`; any other (a host name, an
//! address outside them) is not served: the flow is dropped and counted as refused, and its
//! datagrams are dropped by the tunnel as for an unknown flow. The socket is connected, so the
//! kernel delivers only the origin's replies to it and an ICMP unreachable shows as an error on
//! the next send or receive (counted, the flow goes on). The flow ends when the tunnel expires
//! it (no datagram either way for its idle timeout) or the connection ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use connector_config::Config;
use tokio::net::UdpSocket;
use tracing::{debug, trace};
use tunnel::connector::IncomingUdpFlow;
use tunnel_proto::Destination;

use crate::metrics::Metrics;

/// The largest UDP payload (65,535 less the 8-byte UDP header); a reply that does not fit the
/// tunnel's datagram size is dropped there and counted as oversize.
const MAX_UDP_PAYLOAD: usize = 65_527;

/// Serves one flow; see the module documentation.
pub async fn serve_udp(incoming: IncomingUdpFlow, config: Arc<Config>, metrics: Arc<Metrics>) {
    let IncomingUdpFlow { open, mut flow } = incoming;
    let Some(origin) = udp_target(&config, &open.destination) else {
        debug!("no private route for the udp destination");
        metrics.record_udp_flow_refused();
        return;
    };
    let socket = match connect(origin).await {
        Ok(socket) => socket,
        Err(e) => {
            debug!(error = %e, "failed to open a udp socket toward the origin");
            metrics.record_udp_flow_refused();
            return;
        }
    };
    let _open = metrics.udp_flow_opened();
    trace!(%origin, "udp flow to origin");
    let mut buf = vec![0; MAX_UDP_PAYLOAD];
    loop {
        tokio::select! {
            payload = flow.recv() => {
                let Some(payload) = payload else { break };
                match socket.send(&payload).await {
                    Ok(_) => metrics.record_udp_datagram(true),
                    Err(e) => {
                        trace!(error = %e, "udp send to origin failed");
                        metrics.record_udp_origin_error();
                    }
                }
            }
            received = socket.recv(&mut buf) => match received {
                Ok(n) => {
                    metrics.record_udp_datagram(false);
                    // Failures (oversize, connection gone) are counted by the tunnel; a gone
                    // connection also ends `recv` above.
                    let _ = flow.send(&buf[..n]);
                }
                Err(e) => {
                    trace!(error = %e, "udp receive from origin failed");
                    metrics.record_udp_origin_error();
                }
            },
        }
    }
    debug!("udp flow ended");
}

/// The origin of a UDP flow: a `private-routes` address, as is.
pub fn udp_target(config: &Config, destination: &Destination) -> Option<SocketAddr> {
    match destination {
        Destination::Addr(addr) if is_private(config, addr.ip()) => Some(*addr),
        Destination::Addr(_) | Destination::Host { .. } => None,
    }
}

async fn connect(origin: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = match origin {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(origin).await?;
    Ok(socket)
}

fn is_private(config: &Config, ip: IpAddr) -> bool {
    config.private_routes.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_private_route_addresses_are_udp_targets() {
        let config =
            config("private-routes: [10.99.0.0/24]\ningress:\n  - service: http_status:404\n");
        let inside: SocketAddr = "10.99.0.5:53".parse().unwrap_or_else(|e| panic!("{e}"));
        let outside: SocketAddr = "10.98.0.5:53".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            udp_target(&config, &Destination::Addr(inside)),
            Some(inside)
        );
        assert_eq!(udp_target(&config, &Destination::Addr(outside)), None);
        let host = Destination::Host {
            host: "dns.internal".into(),
            port: 53,
        };
        assert_eq!(udp_target(&config, &host), None);
    }
}
