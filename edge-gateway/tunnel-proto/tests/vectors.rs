//! The worked examples of `docs/tunnel-protocol.md`: each decodes to its documented value and
//! encodes back byte for byte, and the page shows exactly these bytes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use tunnel_proto::{
    decode_datagram, encode_datagram, Assertion, ConnectionId, ConnectorId, Credential,
    Destination, FlowId, Frame, FrameDecoder, Protocol, RefuseCode, Register, RejectCode,
    RequestId, Route, StreamHeader, StreamKind, TunnelId, UdpFlowOpen,
};

const DOC: &str = include_str!("../../../docs/tunnel-protocol.md");

fn frame_vectors() -> Vec<(&'static str, &'static str, Frame)> {
    vec![
        (
            "register",
            "01 01 00 00 00 6a 00 02 74 31 00 02 63 31 00 05 30 2e 31 2e 30 00 0b 65 79 4a 2e 65 33 30 2e 73 69 67 \
             00 04 01 00 12 00 0f 61 70 70 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 \
             01 00 16 00 0d 2a 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 01 00 04 2f 61 70 69 \
             02 00 06 04 0a 01 00 00 10 \
             02 00 12 06 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 08",
            Frame::Register(Register {
                tunnel_id: TunnelId("t1".into()),
                connector_id: ConnectorId("c1".into()),
                connector_version: "0.1.0".into(),
                credential: Credential("eyJ.e30.sig".into()),
                routes: vec![
                    Route::Hostname {
                        pattern: "app.example.com".into(),
                        path_prefix: None,
                    },
                    Route::Hostname {
                        pattern: "*.example.com".into(),
                        path_prefix: Some("/api".into()),
                    },
                    Route::Cidr(net("10.1.0.0/16")),
                    Route::Cidr(net("fd00::/8")),
                ],
            }),
        ),
        (
            "registered",
            "01 02 00 00 00 0e 00 04 66 72 61 31 00 00 00 00 00 00 00 2a",
            Frame::Registered {
                edge_name: "fra1".into(),
                connection_id: ConnectionId(42),
            },
        ),
        (
            "rejected",
            "01 03 00 00 00 0b 00 03 00 07 72 65 76 6f 6b 65 64",
            Frame::Rejected {
                code: RejectCode::REVOKED,
                message: "revoked".into(),
            },
        ),
        (
            "heartbeat",
            "01 04 00 00 00 08 00 00 00 00 00 00 00 07",
            Frame::Heartbeat { seq: 7 },
        ),
        (
            "heartbeat_ack",
            "01 05 00 00 00 08 00 00 00 00 00 00 00 07",
            Frame::HeartbeatAck { seq: 7 },
        ),
        (
            "update_routes",
            "01 06 00 00 00 0b 00 01 02 00 06 04 c0 a8 00 00 18",
            Frame::UpdateRoutes {
                routes: vec![Route::Cidr(net("192.168.0.0/24"))],
            },
        ),
        (
            "drain",
            "01 07 00 00 00 04 00 00 75 30",
            Frame::Drain { grace_ms: 30_000 },
        ),
        ("goodbye", "01 08 00 00 00 00", Frame::Goodbye),
        (
            "udp_flow_open",
            "01 09 00 00 00 10 00 00 00 00 00 00 00 05 04 0a 01 02 03 00 35 00",
            Frame::UdpFlowOpen(UdpFlowOpen {
                flow_id: flow(5),
                destination: Destination::Addr("10.1.2.3:53".parse().unwrap()),
                assertion: None,
            }),
        ),
        (
            "stream_header_http",
            "01 40 00 00 00 33 00 00 00 00 00 00 00 01 02 \
             00 00 0f 61 70 70 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50 \
             01 00 0b 65 79 4a 2e 65 33 30 2e 73 69 67 01 04 64 40 00 02 c7 38",
            Frame::StreamHeader(StreamHeader {
                request_id: RequestId(1),
                protocol: Protocol::Http,
                destination: Destination::Host {
                    host: "app.example.com".into(),
                    port: 80,
                },
                assertion: Some(Assertion("eyJ.e30.sig".into())),
                source: Some("100.64.0.2:51000".parse().unwrap()),
            }),
        ),
        (
            "stream_header_tcp",
            "01 40 00 00 00 1e 00 00 00 00 00 00 00 02 01 \
             06 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 00 16 00 00",
            Frame::StreamHeader(StreamHeader {
                request_id: RequestId(2),
                protocol: Protocol::Tcp,
                destination: Destination::Addr("[fd00::5]:22".parse().unwrap()),
                assertion: None,
                source: None,
            }),
        ),
        ("stream_accept", "01 41 00 00 00 00", Frame::StreamAccept),
        (
            "stream_refuse",
            "01 42 00 00 00 16 00 03 00 12 63 6f 6e 6e 65 63 74 69 6f 6e 20 72 65 66 75 73 65 64",
            Frame::StreamRefuse {
                code: RefuseCode::CONNECTION_REFUSED,
                message: "connection refused".into(),
            },
        ),
    ]
}

const DATAGRAM_VECTORS: [(&str, &str, u64, &[u8]); 2] = [
    ("datagram_5", "05 68 69", 5, b"hi"),
    ("datagram_300", "41 2c 68 69", 300, b"hi"),
];

#[test]
fn documented_frames_decode_to_their_values() {
    for (name, hex, frame) in frame_vectors() {
        let kind = if frame.frame_type().is_control() {
            StreamKind::Control
        } else {
            StreamKind::Flow
        };
        let bytes = unhex(hex);
        let mut decoder = FrameDecoder::new(kind);
        assert_eq!(decoder.push(&bytes), bytes.len(), "{name}");
        assert_eq!(decoder.next_frame(), Ok(Some(frame)), "{name}");
        assert_eq!(decoder.finish(), Ok(()), "{name}");
    }
}

#[test]
fn documented_values_encode_to_their_bytes() {
    for (name, hex, frame) in frame_vectors() {
        assert_eq!(
            frame.encode().map(|b| spaced(&b)),
            Ok(spaced(&unhex(hex))),
            "{name}"
        );
    }
}

#[test]
fn documented_datagrams_round_trip() {
    for (name, hex, id, payload) in DATAGRAM_VECTORS {
        let bytes = unhex(hex);
        assert_eq!(decode_datagram(&bytes), Ok((flow(id), payload)), "{name}");
        let mut out = Vec::new();
        encode_datagram(flow(id), payload, &mut out);
        assert_eq!(out, bytes, "{name}");
    }
}

#[test]
fn the_document_shows_exactly_these_vectors() {
    let mut expected: BTreeMap<&str, Vec<u8>> = frame_vectors()
        .into_iter()
        .map(|(name, hex, _)| (name, unhex(hex)))
        .collect();
    expected.extend(
        DATAGRAM_VECTORS
            .iter()
            .map(|(name, hex, ..)| (*name, unhex(hex))),
    );
    assert_eq!(doc_vectors(), expected);
}

/// The ```` ```hex <name> ```` blocks of the document, comments (`# …`) removed.
fn doc_vectors() -> BTreeMap<&'static str, Vec<u8>> {
    let mut vectors = BTreeMap::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```hex ") else {
            continue;
        };
        let hex: Vec<&str> = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect();
        let previous = vectors.insert(name.trim(), unhex(&hex.join(" ")));
        assert!(previous.is_none(), "vector {name} appears twice");
    }
    vectors
}

fn unhex(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("{b}: {e}")))
        .collect()
}

fn spaced(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x} ")).collect()
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn flow(id: u64) -> FlowId {
    FlowId::new(id).unwrap()
}
