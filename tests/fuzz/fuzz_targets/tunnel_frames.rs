//! `tunnel_proto::FrameDecoder` on arbitrary bytes pushed in chunks never panics; every frame it
//! decodes re-encodes to bytes that decode to the same frame; a flow stream's decoder stops
//! after its one frame; datagrams round-trip the same way.
//!
//! Input: the first byte selects the mode (`& 3`: 0 control stream, 1 flow stream, 2 datagram,
//! 3 control stream) and the chunk size (`>> 2`: 0 pushes everything at once, else 1–63 bytes
//! at a time); the rest is the stream or the datagram.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tunnel_proto::{decode_datagram, encode_datagram, FrameDecoder, StreamKind};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(mode >> 2) {
        0 => bytes.len().max(1),
        n => n,
    };
    let kind = match mode & 3 {
        1 => StreamKind::Flow,
        2 => return datagram(bytes),
        _ => StreamKind::Control,
    };

    let mut decoder = FrameDecoder::new(kind);
    let mut frames = Vec::new();
    let mut taken_total = 0;
    'read: for piece in bytes.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let taken = decoder.push(rest);
            assert!(taken <= rest.len());
            rest = &rest[taken..];
            taken_total += taken;
            let mut got = false;
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        frames.push(frame);
                        got = true;
                    }
                    Ok(None) => break,
                    Err(_) => break 'read,
                }
            }
            if taken == 0 && !got {
                assert!(decoder.is_done(), "push stalls only after a flow stream's frame");
                break 'read;
            }
        }
    }
    assert!(taken_total <= bytes.len());
    if kind == StreamKind::Flow {
        assert!(frames.len() <= 1, "a flow stream has one frame");
    }
    let _ = decoder.finish();

    for frame in frames {
        let encoded = frame
            .encode()
            .unwrap_or_else(|e| panic!("decoded frame does not encode: {e}\n{frame:?}"));
        let mut again = FrameDecoder::new(kind);
        assert_eq!(again.push(&encoded), encoded.len());
        assert_eq!(again.next_frame(), Ok(Some(frame)));
        assert_eq!(again.finish(), Ok(()));
    }
});

fn datagram(bytes: &[u8]) {
    let Ok((flow_id, payload)) = decode_datagram(bytes) else {
        return;
    };
    let mut encoded = Vec::new();
    encode_datagram(flow_id, payload, &mut encoded);
    assert!(encoded.len() <= bytes.len(), "the shortest form is written");
    assert_eq!(decode_datagram(&encoded), Ok((flow_id, payload)));
}
