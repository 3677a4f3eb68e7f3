//! PROXY protocol version 2 headers (HAProxy's `proxy-protocol.txt`, §2.2), written in front of a
//! stream to a `tcp://` origin whose rule has `proxyProtocol: true`, so the origin learns the
//! client's address and identity. Pure: bytes in, bytes out.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The 12-byte signature every v2 header starts with (§2.2).
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// TLV type of the identity assertion (the JWT the edge attached to the stream): the first of
/// the types §2.2.7 reserves for applications (`PP2_TYPE_MIN_CUSTOM`).
pub const TLV_IDENTITY_ASSERTION: u8 = 0xE0;

/// Version 2 (high nibble) with the PROXY command (low nibble 0x1): the connection was relayed
/// on behalf of another node (§2.2, 13th byte).
const VERSION_2_PROXY: u8 = 0x21;
/// `AF_UNSPEC` + `UNSPEC` (§2.2, 14th byte): no addresses follow; the receiver uses the real
/// connection's endpoints but still reads the TLVs.
const UNSPEC: u8 = 0x00;
/// `AF_INET` + `STREAM`: TCP over IPv4, 12 address bytes.
const TCP4: u8 = 0x11;
/// `AF_INET6` + `STREAM`: TCP over IPv6, 36 address bytes.
const TCP6: u8 = 0x21;

/// What one header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader<'a> {
    /// The client's address as the edge saw it; `None` when the edge did not say.
    pub source: Option<SocketAddr>,
    /// The address the connector connected to (the origin).
    pub destination: SocketAddr,
    /// The identity assertion, sent as a [`TLV_IDENTITY_ASSERTION`] TLV when present.
    pub assertion: Option<&'a [u8]>,
}

/// The header does not fit the 16-bit length field (§2.2, 15th and 16th bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("PROXY protocol header would be {length} bytes after the fixed part, at most 65535 fit")]
pub struct HeaderTooLong {
    /// Bytes of addresses and TLVs the header would have carried.
    pub length: usize,
}

/// Encodes `header`.
///
/// The address family is TCP over IPv4 when both addresses are IPv4, TCP over IPv6 when either
/// is IPv6 (an IPv4 address is then written IPv4-mapped, `::ffff:a.b.c.d`), and `UNSPEC` (no
/// addresses, TLVs only) without a source.
///
/// # Errors
/// [`HeaderTooLong`] when the assertion is too long for the length field.
pub fn encode(header: &ProxyHeader<'_>) -> Result<Vec<u8>, HeaderTooLong> {
    let mut body = Vec::with_capacity(36 + header.assertion.map_or(0, |a| 3 + a.len()));
    let family = match header.source {
        None => UNSPEC,
        Some(source) => match (source.ip(), header.destination.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                body.extend_from_slice(&src.octets());
                body.extend_from_slice(&dst.octets());
                push_ports(&mut body, source, header.destination);
                TCP4
            }
            (src, dst) => {
                body.extend_from_slice(&as_v6(src).octets());
                body.extend_from_slice(&as_v6(dst).octets());
                push_ports(&mut body, source, header.destination);
                TCP6
            }
        },
    };
    if let Some(assertion) = header.assertion {
        let length = u16::try_from(assertion.len()).map_err(|_| HeaderTooLong {
            length: body.len() + 3 + assertion.len(),
        })?;
        body.push(TLV_IDENTITY_ASSERTION);
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(assertion);
    }
    let length = u16::try_from(body.len()).map_err(|_| HeaderTooLong { length: body.len() })?;
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_2_PROXY);
    out.push(family);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn push_ports(body: &mut Vec<u8>, source: SocketAddr, destination: SocketAddr) {
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tcp4_header_has_the_spec_layout() {
        let header = ProxyHeader {
            source: Some("192.0.2.10:51000".parse().unwrap()),
            destination: "10.0.0.5:5432".parse().unwrap(),
            assertion: None,
        };
        let expected: Vec<u8> = [
            &SIGNATURE[..],
            &[0x21, 0x11, 0x00, 0x0C],
            &[192, 0, 2, 10, 10, 0, 0, 5],
            &[0xC7, 0x38, 0x15, 0x38], // 51000, 5432
        ]
        .concat();
        assert_eq!(encode(&header).unwrap(), expected);
    }

    #[test]
    fn tcp6_header_has_the_spec_layout() {
        let header = ProxyHeader {
            source: Some("[2001:db8::1]:443".parse().unwrap()),
            destination: "[2001:db8::2]:8443".parse().unwrap(),
            assertion: None,
        };
        let bytes = encode(&header).unwrap();
        assert_eq!(&bytes[..12], &SIGNATURE);
        assert_eq!(&bytes[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(
            &bytes[16..32],
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &bytes[32..48],
            &"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&bytes[48..], &[0x01, 0xBB, 0x20, 0xFB]);
    }

    #[test]
    fn mixed_families_are_written_as_ipv4_mapped_ipv6() {
        let header = ProxyHeader {
            source: Some("192.0.2.10:1".parse().unwrap()),
            destination: "[2001:db8::2]:2".parse().unwrap(),
            assertion: None,
        };
        let bytes = encode(&header).unwrap();
        assert_eq!(bytes[13], 0x21);
        assert_eq!(
            &bytes[16..32],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 0, 2, 10]
        );
    }

    #[test]
    fn assertion_is_a_custom_tlv_after_the_addresses() {
        let header = ProxyHeader {
            source: Some("192.0.2.10:51000".parse().unwrap()),
            destination: "10.0.0.5:5432".parse().unwrap(),
            assertion: Some(b"eyJ.a.b"),
        };
        let bytes = encode(&header).unwrap();
        // 12 address bytes + 3 TLV header bytes + 7 value bytes.
        assert_eq!(&bytes[14..16], &[0x00, 22]);
        assert_eq!(&bytes[28..], b"\xE0\x00\x07eyJ.a.b");
    }

    #[test]
    fn without_a_source_the_header_is_unspec_with_tlvs_only() {
        let header = ProxyHeader {
            source: None,
            destination: "10.0.0.5:5432".parse().unwrap(),
            assertion: Some(b"jwt"),
        };
        let expected: Vec<u8> = [
            &SIGNATURE[..],
            &[0x21, 0x00, 0x00, 0x06],
            b"\xE0\x00\x03jwt",
        ]
        .concat();
        assert_eq!(encode(&header).unwrap(), expected);
    }

    #[test]
    fn an_assertion_too_long_for_the_length_field_is_refused() {
        let assertion = vec![b'a'; 65_535 - 12 - 3 + 1];
        let header = ProxyHeader {
            source: Some("192.0.2.10:1".parse().unwrap()),
            destination: "10.0.0.5:2".parse().unwrap(),
            assertion: Some(&assertion),
        };
        assert_eq!(encode(&header), Err(HeaderTooLong { length: 65_536 }));
        let fits = vec![b'a'; 65_535 - 12 - 3];
        let header = ProxyHeader {
            assertion: Some(&fits),
            ..header
        };
        assert_eq!(encode(&header).unwrap().len(), 16 + 65_535);
    }
}
