//! QUIC datagrams of UDP flows: a flow id as a QUIC variable-length integer, then the payload.

use crate::frame::FlowId;
use crate::ProtoError;

/// Appends a datagram for `flow_id` carrying `payload` to `out`.
pub fn encode_datagram(flow_id: FlowId, payload: &[u8], out: &mut Vec<u8>) {
    let id = flow_id.get();
    // RFC 9000 §16: the two high bits of the first byte give the length (1, 2, 4 or 8 bytes).
    // `FlowId` is at most 2^62 - 1, so the 8-byte form always fits.
    match id {
        0..=0x3f => out.push(id as u8),
        0x40..=0x3fff => out.extend_from_slice(&(id as u16 | 0x4000).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(id as u32 | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(id | 0xc000_0000_0000_0000).to_be_bytes()),
    }
    out.extend_from_slice(payload);
}

/// How many bytes the flow id of `flow_id` takes in front of a datagram's payload (1, 2, 4 or
/// 8), for sizing payloads to the connection's maximum datagram size.
pub fn datagram_overhead(flow_id: FlowId) -> usize {
    match flow_id.get() {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

/// Splits a datagram into its flow id and payload. A flow id in a longer form than needed is
/// accepted (RFC 9000 §16 allows it).
///
/// # Errors
/// [`ProtoError::Truncated`]`("datagram.flow_id")` when the datagram ends inside the flow id.
pub fn decode_datagram(datagram: &[u8]) -> Result<(FlowId, &[u8]), ProtoError> {
    let truncated = ProtoError::Truncated("datagram.flow_id");
    let first = *datagram.first().ok_or(truncated.clone())?;
    let len = 1 << (first >> 6);
    let bytes = datagram.get(..len).ok_or(truncated)?;
    let mut id = u64::from(first & 0x3f);
    for byte in &bytes[1..] {
        id = (id << 8) | u64::from(*byte);
    }
    // Eight bytes with the two tag bits cleared hold at most 62 bits.
    let flow_id = FlowId::new(id)?;
    Ok((flow_id, &datagram[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: u64) -> FlowId {
        FlowId::new(id).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flow_ids_use_the_rfc_9000_examples() {
        // RFC 9000 §A.1: 151,288,809,941,952,652 in 8 bytes, 494,878,333 in 4, 15,293 in 2, 37 in 1.
        let cases: [(u64, &[u8]); 4] = [
            (
                151_288_809_941_952_652,
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            ),
            (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d]),
            (15_293, &[0x7b, 0xbd]),
            (37, &[0x25]),
        ];
        for (id, bytes) in cases {
            let mut out = Vec::new();
            encode_datagram(flow(id), b"", &mut out);
            assert_eq!(out, bytes, "{id}");
            assert_eq!(datagram_overhead(flow(id)), bytes.len());
            assert_eq!(decode_datagram(bytes), Ok((flow(id), &b""[..])));
        }
        // A two-byte encoding of 37 (RFC 9000 §A.1) is accepted.
        assert_eq!(
            decode_datagram(&[0x40, 0x25, 0xaa]),
            Ok((flow(37), &[0xaa][..]))
        );
    }

    #[test]
    fn short_datagrams_are_truncated() {
        let truncated = Err(ProtoError::Truncated("datagram.flow_id"));
        assert_eq!(decode_datagram(&[]), truncated);
        assert_eq!(decode_datagram(&[0x9d, 0x7f, 0x3e]), truncated);
    }
}
