//! The client tunnel driven the way iOS drives it: packets in and out through channels, no TUN
//! device, no root. A WireGuard node on a loopback UDP socket plays the edge.

#![allow(clippy::unwrap_used)]

use client::tunnel;
use client_core::wg_quick;
use etherparse::PacketBuilder;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use wg::keys::PrivateKey;
use wg::{Node, NodeConfig, PeerConfig, Received};
use wg_driver::packet_device::ChannelDevice;
use wg_driver::udp::BatchSocket;

fn udp_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(4000, 53)
        .write(&mut out, payload)
        .unwrap();
    out
}

#[tokio::test]
async fn packets_from_the_host_cross_the_tunnel_and_replies_come_back() {
    let edge_key = PrivateKey::from_bytes([21; 32]);
    let client_key = PrivateKey::from_bytes([22; 32]);
    let edge_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let edge_addr = edge_socket.local_addr().unwrap();
    let mut edge = Node::new(
        NodeConfig {
            private_key: edge_key.clone(),
            listen_port: edge_addr.port(),
            fwmark: None,
            handshake_load_limit: 100,
        },
        Instant::now(),
    );
    edge.add_peer(PeerConfig {
        public_key: client_key.public_key(),
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec!["100.64.0.2/32".parse().unwrap()],
        persistent_keepalive: None,
    })
    .unwrap();

    let config = wg_quick::parse(&format!(
        "[Interface]\nPrivateKey = {}\nAddress = 100.64.0.2/32\n\n[Peer]\nPublicKey = {}\n\
         Endpoint = {edge_addr}\nAllowedIPs = 10.9.0.0/24\n",
        client_key.to_base64(),
        edge_key.public_key().to_base64()
    ))
    .unwrap();
    let node = tunnel::build_node(&config, Instant::now()).await.unwrap();
    let mut client_socket =
        BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let (device, mut host) = ChannelDevice::pair(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client_task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        tunnel::run(node, &mut client_socket, &device, None, shutdown).await
    });

    let request = udp_packet([100, 64, 0, 2], [10, 9, 0, 1], b"question");
    host.to_tunnel.send(request.clone()).await.unwrap();

    // Play the edge until the request arrives decrypted, then answer it.
    let exchange = async {
        let mut rx = vec![0u8; 2048];
        let mut out = vec![0u8; 2048];
        loop {
            let (n, from) = edge_socket.recv_from(&mut rx).await.unwrap();
            let received = edge.handle_datagram(from, &rx[..n], &mut out, Instant::now());
            let arrived = matches!(&received, Ok(Received::Packet { packet, .. }) if *packet == request.as_slice());
            while let Some(t) = edge.poll_transmit() {
                edge_socket.send_to(&t.datagram, t.to).await.unwrap();
            }
            if arrived {
                let reply = udp_packet([10, 9, 0, 1], [100, 64, 0, 2], b"answer");
                let t = edge
                    .send(&reply, &mut out, Instant::now())
                    .unwrap()
                    .unwrap();
                edge_socket.send_to(t.datagram, t.to).await.unwrap();
                return reply;
            }
        }
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the request crossed the tunnel");
    let delivered = tokio::time::timeout(Duration::from_secs(10), host.from_tunnel.recv())
        .await
        .expect("the reply came back")
        .unwrap();
    assert_eq!(delivered, reply);

    stop.send(()).unwrap();
    client_task.await.unwrap().unwrap();
}
