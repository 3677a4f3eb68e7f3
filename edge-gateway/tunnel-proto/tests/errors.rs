//! Hostile and malformed input: each gives its typed error (or is skipped where the protocol
//! says so), never a panic; and values the peer would refuse are not encoded.
#![allow(clippy::unwrap_used)]

use tunnel_proto::{
    Destination, Frame, FrameDecoder, ProtoError, Protocol, RequestId, Route, StreamHeader,
    StreamKind, HEADER_LEN, MAX_ASSERTION_LEN, MAX_FRAME, MAX_HOST_LEN, MAX_ROUTES,
};

/// A frame with version 1 and a correct length around `body`.
fn raw(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![1, frame_type];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Pushes all of `bytes` (looping as the decoder asks) and collects frames until the first error.
fn decode_all(kind: StreamKind, bytes: &[u8]) -> Result<Vec<Frame>, ProtoError> {
    let mut decoder = FrameDecoder::new(kind);
    let mut frames = Vec::new();
    let mut rest = bytes;
    loop {
        let taken = decoder.push(rest);
        rest = &rest[taken..];
        let mut got = false;
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
            got = true;
        }
        if taken == 0 && !got {
            break;
        }
    }
    decoder.finish()?;
    Ok(frames)
}

fn control(bytes: &[u8]) -> Result<Vec<Frame>, ProtoError> {
    decode_all(StreamKind::Control, bytes)
}

fn header_body(destination: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = 9u64.to_be_bytes().to_vec();
    body.push(Protocol::Tcp as u8);
    body.extend_from_slice(destination);
    body.extend_from_slice(rest);
    body
}

#[test]
fn an_oversized_length_fails_before_the_body_is_read() {
    let mut bytes = vec![1, 0x04];
    bytes.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let mut decoder = FrameDecoder::new(StreamKind::Control);
    assert_eq!(decoder.push(&bytes), HEADER_LEN, "only the header is taken");
    let error = ProtoError::FrameTooLarge(MAX_FRAME as u64 + 1);
    assert_eq!(decoder.next_frame(), Err(error.clone()));
    assert_eq!(decoder.push(&bytes[HEADER_LEN..]), 0, "sticky");
    assert_eq!(decoder.next_frame(), Err(error.clone()));
    assert_eq!(decoder.finish(), Err(error));
    assert_eq!(
        ProtoError::FrameTooLarge(u64::from(u32::MAX)).to_string(),
        "frame body of 4294967295 bytes exceeds the limit of 16384"
    );
}

#[test]
fn an_unknown_type_over_the_limit_is_not_skipped() {
    let mut bytes = vec![1, 0x3e];
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        control(&bytes),
        Err(ProtoError::FrameTooLarge(u64::from(u32::MAX)))
    );
}

#[test]
fn a_frame_of_exactly_max_frame_is_accepted() {
    // An unknown control type: the body is skipped, not buffered.
    let mut bytes = raw(0x3e, &vec![0xaa; MAX_FRAME]);
    bytes.extend(raw(0x08, &[]));
    assert_eq!(control(&bytes), Ok(vec![Frame::Goodbye]));
}

#[test]
fn other_versions_are_refused() {
    for version in [0, 2, 0xff] {
        let mut bytes = raw(0x04, &7u64.to_be_bytes());
        bytes[0] = version;
        assert_eq!(
            control(&bytes),
            Err(ProtoError::UnsupportedVersion(version))
        );
    }
}

#[test]
fn truncated_bodies_name_their_field() {
    assert_eq!(
        control(&raw(0x04, &[0, 0, 0, 7])),
        Err(ProtoError::Truncated("heartbeat.seq"))
    );
    // A string whose length runs past the body.
    assert_eq!(
        control(&raw(0x02, &[0, 9, b'f', b'r'])),
        Err(ProtoError::Truncated("registered.edge_name"))
    );
    // A route count larger than the bytes left could hold.
    assert_eq!(
        control(&raw(0x06, &[0x10, 0x00])),
        Err(ProtoError::Truncated("routes"))
    );
    // A route whose length runs past the body.
    assert_eq!(
        control(&raw(0x06, &[0, 1, 2, 0, 6, 4, 10, 0])),
        Err(ProtoError::Truncated("route"))
    );
    // A route body too short for its own fields.
    assert_eq!(
        control(&raw(0x06, &[0, 1, 2, 0, 3, 4, 10, 0])),
        Err(ProtoError::Truncated("route.cidr"))
    );
}

#[test]
fn a_stream_that_ends_inside_a_frame_is_truncated() {
    let bytes = Frame::Heartbeat { seq: 1 }.encode().unwrap();
    for cut in 1..bytes.len() {
        assert_eq!(
            control(&bytes[..cut]),
            Err(ProtoError::Truncated("frame")),
            "cut at {cut}"
        );
    }
    assert_eq!(
        control(&[]),
        Ok(vec![]),
        "an empty control stream is complete"
    );
    assert_eq!(
        decode_all(StreamKind::Flow, &[]),
        Err(ProtoError::Truncated("frame")),
        "a flow stream needs its frame"
    );
}

#[test]
fn bad_utf8_is_refused() {
    assert_eq!(
        control(&raw(0x03, &[0, 1, 0, 2, 0xc3, 0x28])),
        Err(ProtoError::InvalidUtf8("rejected.message"))
    );
    let body = header_body(&[0, 0, 2, 0xff, b'a', 0, 80], &[0, 0]);
    assert_eq!(
        decode_all(StreamKind::Flow, &raw(0x40, &body)),
        Err(ProtoError::InvalidUtf8("destination.host"))
    );
}

#[test]
fn too_many_routes_fail_before_any_route_is_read() {
    let count = MAX_ROUTES as u16 + 1;
    assert_eq!(
        control(&raw(0x06, &count.to_be_bytes())),
        Err(ProtoError::TooManyRoutes(MAX_ROUTES + 1))
    );
    let routes = vec![Route::Cidr("10.0.0.0/8".parse().unwrap()); MAX_ROUTES + 1];
    assert_eq!(
        Frame::UpdateRoutes { routes }.encode(),
        Err(ProtoError::TooManyRoutes(MAX_ROUTES + 1))
    );
}

#[test]
fn unknown_control_types_are_skipped() {
    let mut bytes = raw(0x3e, b"from a later version");
    bytes.extend(raw(0x04, &5u64.to_be_bytes()));
    bytes.extend(raw(0x9a, &[]));
    bytes.extend(raw(0x08, &[]));
    let mut decoder = FrameDecoder::new(StreamKind::Control);
    let mut frames = Vec::new();
    for byte in &bytes {
        assert_eq!(decoder.push(std::slice::from_ref(byte)), 1);
        frames.extend(decoder.next_frame().unwrap());
    }
    assert_eq!(frames, [Frame::Heartbeat { seq: 5 }, Frame::Goodbye]);
    assert_eq!(decoder.skipped(), 2);
    assert_eq!(decoder.finish(), Ok(()));
}

#[test]
fn frames_on_the_wrong_stream_are_refused() {
    let header = raw(0x41, &[]);
    assert_eq!(control(&header), Err(ProtoError::UnexpectedFrame(0x41)));
    let heartbeat = raw(0x04, &[0; 8]);
    assert_eq!(
        decode_all(StreamKind::Flow, &heartbeat),
        Err(ProtoError::UnexpectedFrame(0x04))
    );
    assert_eq!(
        decode_all(StreamKind::Flow, &raw(0x9a, &[])),
        Err(ProtoError::UnknownFrameType(0x9a))
    );
}

#[test]
fn a_flow_stream_leaves_the_bytes_after_its_frame_to_the_caller() {
    let mut bytes = Frame::StreamAccept.encode().unwrap();
    bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let mut decoder = FrameDecoder::new(StreamKind::Flow);
    let taken = decoder.push(&bytes);
    assert_eq!(taken, HEADER_LEN);
    assert_eq!(decoder.next_frame(), Ok(Some(Frame::StreamAccept)));
    assert!(decoder.is_done());
    assert_eq!(decoder.push(&bytes[taken..]), 0);
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(&bytes[taken..], b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn tags_without_meaning_are_refused() {
    let flow = |body: &[u8]| decode_all(StreamKind::Flow, &raw(0x40, body));
    let mut body = header_body(&[4, 10, 0, 0, 1, 0, 22], &[0, 0]);
    body[8] = 9;
    assert_eq!(
        flow(&body),
        Err(ProtoError::InvalidTag {
            field: "stream_header.protocol",
            tag: 9
        })
    );
    assert_eq!(
        flow(&header_body(&[5, 10, 0, 0, 1, 0, 22], &[0, 0])),
        Err(ProtoError::InvalidTag {
            field: "destination",
            tag: 5
        })
    );
    assert_eq!(
        flow(&header_body(&[4, 10, 0, 0, 1, 0, 22], &[2])),
        Err(ProtoError::InvalidTag {
            field: "assertion",
            tag: 2
        })
    );
    assert_eq!(
        flow(&header_body(
            &[4, 10, 0, 0, 1, 0, 22],
            &[0, 1, 7, 1, 2, 3, 4, 0, 1]
        )),
        Err(ProtoError::InvalidTag {
            field: "stream_header.source",
            tag: 7
        })
    );
}

#[test]
fn hosts_and_assertions_are_bounded() {
    let flow = |body: &[u8]| decode_all(StreamKind::Flow, &raw(0x40, body));
    let long = MAX_HOST_LEN as u16 + 1;
    let mut destination = vec![0];
    destination.extend_from_slice(&long.to_be_bytes());
    destination.extend(std::iter::repeat_n(b'a', usize::from(long)));
    destination.extend_from_slice(&[0, 80]);
    assert_eq!(
        flow(&header_body(&destination, &[0, 0])),
        Err(ProtoError::TooLong {
            field: "destination.host",
            len: MAX_HOST_LEN + 1,
            max: MAX_HOST_LEN
        })
    );
    assert_eq!(
        flow(&header_body(&[0, 0, 0, 0, 80], &[0, 0])),
        Err(ProtoError::Empty("destination.host"))
    );
    let long = MAX_ASSERTION_LEN as u16 + 1;
    let mut rest = vec![1];
    rest.extend_from_slice(&long.to_be_bytes());
    rest.extend(std::iter::repeat_n(b'e', usize::from(long)));
    rest.push(0);
    assert_eq!(
        flow(&header_body(&[4, 10, 0, 0, 1, 0, 22], &rest)),
        Err(ProtoError::TooLong {
            field: "assertion",
            len: MAX_ASSERTION_LEN + 1,
            max: MAX_ASSERTION_LEN
        })
    );
}

#[test]
fn cidr_routes_must_be_networks() {
    assert_eq!(
        control(&raw(0x06, &[0, 1, 2, 0, 6, 4, 10, 0, 0, 1, 8])),
        Err(ProtoError::CidrHostBits("10.0.0.1/8".parse().unwrap()))
    );
    assert_eq!(
        control(&raw(0x06, &[0, 1, 2, 0, 6, 4, 10, 0, 0, 0, 33])),
        Err(ProtoError::InvalidPrefixLen(33))
    );
    assert_eq!(
        Frame::UpdateRoutes {
            routes: vec![Route::Cidr("10.0.0.1/8".parse().unwrap())]
        }
        .encode(),
        Err(ProtoError::CidrHostBits("10.0.0.1/8".parse().unwrap()))
    );
}

#[test]
fn flow_ids_beyond_the_varint_range_are_refused() {
    let mut body = (1u64 << 62).to_be_bytes().to_vec();
    body.extend_from_slice(&[4, 10, 0, 0, 1, 0, 53, 0]);
    assert_eq!(
        control(&raw(0x09, &body)),
        Err(ProtoError::FlowIdTooLarge(1 << 62))
    );
}

#[test]
fn unknown_route_kinds_and_trailing_fields_are_skipped() {
    // Two routes: kind 9 (unknown, 2 bytes), then 10.0.0.0/8; then a field from a later version.
    let body = [0, 2, 9, 0, 2, 0xaa, 0xbb, 2, 0, 6, 4, 10, 0, 0, 0, 8, 0xee];
    assert_eq!(
        control(&raw(0x06, &body)),
        Ok(vec![Frame::UpdateRoutes {
            routes: vec![Route::Cidr("10.0.0.0/8".parse().unwrap())]
        }])
    );
}

#[test]
fn values_the_peer_would_refuse_are_not_encoded() {
    let header = |host: String| {
        Frame::StreamHeader(StreamHeader {
            request_id: RequestId(1),
            protocol: Protocol::Http,
            destination: Destination::Host { host, port: 443 },
            assertion: None,
            source: None,
        })
    };
    let mut out = b"kept".to_vec();
    assert_eq!(
        header("a".repeat(MAX_HOST_LEN + 1)).encode_into(&mut out),
        Err(ProtoError::TooLong {
            field: "destination.host",
            len: MAX_HOST_LEN + 1,
            max: MAX_HOST_LEN
        })
    );
    assert_eq!(out, b"kept", "a failed encode leaves the buffer as it was");
    assert_eq!(
        header(String::new()).encode(),
        Err(ProtoError::Empty("destination.host"))
    );
    assert!(header("a".repeat(MAX_HOST_LEN)).encode().is_ok());

    let routes = (0..1000)
        .map(|i| Route::Hostname {
            pattern: format!("app{i}.example.com"),
            path_prefix: None,
        })
        .collect();
    assert!(matches!(
        Frame::UpdateRoutes { routes }.encode(),
        Err(ProtoError::FrameTooLarge(len)) if len > MAX_FRAME as u64
    ));
}
