//! Properties on random frames: every frame type round-trips, chunking (down to one byte at a
//! time) does not change what is decoded, and arbitrary bytes never panic the decoder.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use proptest::prelude::*;
use tunnel_proto::{
    decode_datagram, encode_datagram, Assertion, ConnectionId, ConnectorId, Credential,
    Destination, FlowId, Frame, FrameDecoder, ProtoError, Protocol, RefuseCode, Register,
    RejectCode, RequestId, Route, StreamHeader, StreamKind, TunnelId, UdpFlowOpen, HEADER_LEN,
};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9*.-]{1,40}",
        "[a-z]{253}",
        "\\PC{1,20}".prop_filter("at most 253 bytes", |s| s.len() <= 253),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::from(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::from(Ipv6Addr::from(b))),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (ip(), any::<u8>()).prop_map(|(ip, prefix)| {
        let max = if ip.is_ipv4() { 33 } else { 129 };
        IpNet::new(ip, prefix % max).unwrap().trunc()
    })
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn destination() -> impl Strategy<Value = Destination> {
    prop_oneof![
        (host(), any::<u16>()).prop_map(|(host, port)| Destination::Host { host, port }),
        socket_addr().prop_map(Destination::Addr),
    ]
}

fn assertion() -> impl Strategy<Value = Option<Assertion>> {
    proptest::option::of("[A-Za-z0-9._-]{0,300}".prop_map(Assertion))
}

fn routes() -> impl Strategy<Value = Vec<Route>> {
    let route = prop_oneof![
        (host(), proptest::option::of(text())).prop_map(|(pattern, path_prefix)| Route::Hostname {
            pattern,
            path_prefix
        }),
        net().prop_map(Route::Cidr),
    ];
    proptest::collection::vec(route, 0..12)
}

fn control_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (text(), text(), text(), "[A-Za-z0-9._-]{0,600}", routes()).prop_map(
            |(tunnel, connector, version, credential, routes)| Frame::Register(Register {
                tunnel_id: TunnelId(tunnel),
                connector_id: ConnectorId(connector),
                connector_version: version,
                credential: Credential(credential),
                routes,
            })
        ),
        (text(), any::<u64>()).prop_map(|(edge_name, id)| Frame::Registered {
            edge_name,
            connection_id: ConnectionId(id),
        }),
        (any::<u16>(), text()).prop_map(|(code, message)| Frame::Rejected {
            code: RejectCode(code),
            message,
        }),
        any::<u64>().prop_map(|seq| Frame::Heartbeat { seq }),
        any::<u64>().prop_map(|seq| Frame::HeartbeatAck { seq }),
        routes().prop_map(|routes| Frame::UpdateRoutes { routes }),
        any::<u32>().prop_map(|grace_ms| Frame::Drain { grace_ms }),
        Just(Frame::Goodbye),
        (0..=FlowId::MAX, destination(), assertion()).prop_map(|(id, destination, assertion)| {
            Frame::UdpFlowOpen(UdpFlowOpen {
                flow_id: FlowId::new(id).unwrap(),
                destination,
                assertion,
            })
        }),
    ]
}

fn flow_frame() -> impl Strategy<Value = Frame> {
    let protocol = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Http),
        Just(Protocol::Udp)
    ];
    prop_oneof![
        (
            any::<u64>(),
            protocol,
            destination(),
            assertion(),
            proptest::option::of(socket_addr())
        )
            .prop_map(|(id, protocol, destination, assertion, source)| {
                Frame::StreamHeader(StreamHeader {
                    request_id: RequestId(id),
                    protocol,
                    destination,
                    assertion,
                    source,
                })
            }),
        Just(Frame::StreamAccept),
        (any::<u16>(), text()).prop_map(|(code, message)| Frame::StreamRefuse {
            code: RefuseCode(code),
            message,
        }),
    ]
}

/// Feeds `bytes` in chunks of the given sizes (cycled, 0 read as 1) as a driver would, and
/// returns the frames (or the first error) and how many bytes the decoder took.
fn decode_chunked(
    kind: StreamKind,
    bytes: &[u8],
    sizes: &[usize],
) -> (Result<Vec<Frame>, ProtoError>, usize) {
    let mut decoder = FrameDecoder::new(kind);
    let mut frames = Vec::new();
    let mut offset = 0;
    let mut sizes = sizes.iter().cycle();
    'read: while offset < bytes.len() {
        let size = (*sizes.next().unwrap()).max(1);
        let mut chunk = &bytes[offset..(offset + size).min(bytes.len())];
        while !chunk.is_empty() {
            let taken = decoder.push(chunk);
            chunk = &chunk[taken..];
            offset += taken;
            let mut got = false;
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        frames.push(frame);
                        got = true;
                    }
                    Ok(None) => break,
                    Err(e) => return (Err(e), offset),
                }
            }
            if taken == 0 && !got {
                // A flow stream's frame is complete: the rest is raw bytes.
                break 'read;
            }
        }
    }
    (decoder.finish().map(|()| frames), offset)
}

proptest! {
    #[test]
    fn control_frames_round_trip(frame in control_frame()) {
        let bytes = frame.encode().unwrap();
        let len = u32::from_be_bytes(bytes[2..6].try_into().unwrap()) as usize;
        prop_assert_eq!(len + HEADER_LEN, bytes.len());
        let (decoded, taken) = decode_chunked(StreamKind::Control, &bytes, &[bytes.len()]);
        prop_assert_eq!(decoded, Ok(vec![frame]));
        prop_assert_eq!(taken, bytes.len());
    }

    #[test]
    fn flow_frames_round_trip_and_leave_the_raw_bytes(
        frame in flow_frame(),
        raw in proptest::collection::vec(any::<u8>(), 0..64),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let mut bytes = frame.encode().unwrap();
        let frame_len = bytes.len();
        bytes.extend_from_slice(&raw);
        let (decoded, taken) = decode_chunked(StreamKind::Flow, &bytes, &sizes);
        prop_assert_eq!(decoded, Ok(vec![frame]));
        prop_assert_eq!(taken, frame_len, "the raw bytes stay with the caller");
    }

    #[test]
    fn chunking_does_not_change_the_frames(
        frames in proptest::collection::vec(control_frame(), 0..8),
        sizes in proptest::collection::vec(0usize..300, 1..8),
    ) {
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode_into(&mut bytes).unwrap();
        }
        let (whole, _) = decode_chunked(StreamKind::Control, &bytes, &[bytes.len()]);
        prop_assert_eq!(&whole, &Ok(frames.clone()));
        let (one_at_a_time, _) = decode_chunked(StreamKind::Control, &bytes, &[1]);
        prop_assert_eq!(&one_at_a_time, &whole);
        let (chunked, _) = decode_chunked(StreamKind::Control, &bytes, &sizes);
        prop_assert_eq!(&chunked, &whole);
    }

    #[test]
    fn datagrams_round_trip(
        id in 0..=FlowId::MAX,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let flow_id = FlowId::new(id).unwrap();
        let mut out = Vec::new();
        encode_datagram(flow_id, &payload, &mut out);
        prop_assert_eq!(
            out.len(),
            tunnel_proto::datagram_overhead(flow_id) + payload.len()
        );
        prop_assert_eq!(decode_datagram(&out), Ok((flow_id, &payload[..])));
    }

    #[test]
    fn arbitrary_bytes_decode_to_frames_that_re_encode(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        sizes in proptest::collection::vec(0usize..64, 1..8),
        flow in any::<bool>(),
    ) {
        let kind = if flow { StreamKind::Flow } else { StreamKind::Control };
        // Valid headers are rare in random bytes: also try with a valid first header.
        let mut framed = vec![1, if flow { 0x40 } else { 0x01 }];
        framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        framed.extend_from_slice(&bytes);
        for input in [&bytes, &framed] {
            let (decoded, _) = decode_chunked(kind, input, &sizes);
            let Ok(frames) = decoded else { continue };
            for frame in frames {
                let again = frame.encode().unwrap();
                let (redecoded, _) = decode_chunked(kind, &again, &[again.len()]);
                prop_assert_eq!(redecoded, Ok(vec![frame]));
            }
        }
    }
}
