//! TUN offload support: the `virtio_net_hdr` a TUN device opened with `IFF_VNET_HDR` puts in
//! front of every packet, and the segmentation of TCP "super-packets" (TSO) into MTU-sized
//! segments with complete checksums, so each can be encrypted on its own.
//!
//! Reading one 64 KiB super-packet instead of ~45 MTU-sized packets is what makes a userspace
//! tunnel fast (wireguard-go's `tun/offload_linux.go` does the same). Layout and flags:
//! Linux `include/uapi/linux/virtio_net.h` (legacy header, 10 bytes, host byte order = little
//! endian on every platform we build for).

/// Size of `struct virtio_net_hdr` without mergeable buffers.
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

/// The parsed `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

/// Why a packet read from the TUN device could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("packet shorter than its virtio header")]
    Truncated,
    #[error("unsupported gso type {0}")]
    UnsupportedGso(u8),
    #[error("malformed headers in a gso packet")]
    Malformed,
    #[error("checksum offsets outside the packet")]
    BadChecksumOffsets,
}

impl VnetHdr {
    /// Splits `buf` into its header and the packet behind it.
    ///
    /// # Errors
    /// [`OffloadError::Truncated`] when `buf` is shorter than the header.
    pub fn split(buf: &[u8]) -> Result<(VnetHdr, &[u8]), OffloadError> {
        if buf.len() < VNET_HDR_LEN {
            return Err(OffloadError::Truncated);
        }
        let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
        Ok((
            VnetHdr {
                flags: buf[0],
                gso_type: buf[1],
                hdr_len: u16_at(2),
                gso_size: u16_at(4),
                csum_start: u16_at(6),
                csum_offset: u16_at(8),
            },
            &buf[VNET_HDR_LEN..],
        ))
    }

    /// The header for a packet with nothing offloaded (what we write before every packet).
    pub const NONE: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
}

/// Calls `emit` with each complete, checksummed IP packet contained in `packet` as described
/// by `hdr`: the packet itself (checksum completed if the kernel left it partial), or its TCP
/// segments. `scratch` must hold one segment (the MTU is enough; 65 535 always is).
///
/// # Errors
/// See [`OffloadError`]; nothing is emitted for a packet that fails.
pub fn split_packet(
    hdr: &VnetHdr,
    packet: &mut [u8],
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete_checksum(packet, hdr.csum_start.into(), hdr.csum_offset.into())?;
            }
            emit(packet);
            Ok(())
        }
        GSO_TCPV4 | GSO_TCPV6 => segment_tcp(packet, hdr.gso_size.into(), scratch, emit),
        other => Err(OffloadError::UnsupportedGso(other)),
    }
}

/// Fills in a partial checksum: the field at `start + offset` holds the pseudo-header sum; the
/// checksum covers everything from `start` to the end.
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let field = start + offset;
    if field + 2 > packet.len() || start > packet.len() {
        return Err(OffloadError::BadChecksumOffsets);
    }
    let sum = fold(sum_bytes(&packet[start..], 0));
    packet[field..field + 2].copy_from_slice(&(!sum).to_be_bytes());
    Ok(())
}

fn segment_tcp(
    packet: &[u8],
    gso_size: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let version = packet.first().ok_or(OffloadError::Malformed)? >> 4;
    let ip_len = match version {
        4 => usize::from(packet[0] & 0x0f) * 4,
        6 => 40,
        _ => return Err(OffloadError::Malformed),
    };
    if gso_size == 0 || ip_len < 20 || packet.len() < ip_len + 20 {
        return Err(OffloadError::Malformed);
    }
    let tcp_len = usize::from(packet[ip_len + 12] >> 4) * 4;
    let headers = ip_len + tcp_len;
    if tcp_len < 20
        || packet.len() < headers
        || scratch.len() < headers + gso_size
        || headers + gso_size > usize::from(u16::MAX)
    {
        return Err(OffloadError::Malformed);
    }
    let payload = &packet[headers..];
    let seq0 = u32::from_be_bytes([
        packet[ip_len + 4],
        packet[ip_len + 5],
        packet[ip_len + 6],
        packet[ip_len + 7],
    ]);
    let id0 = u16::from_be_bytes([packet[4], packet[5]]);
    let chunks = payload.chunks(gso_size);
    let count = chunks.len();
    for (i, chunk) in chunks.enumerate() {
        let seg = &mut scratch[..headers + chunk.len()];
        seg[..headers].copy_from_slice(&packet[..headers]);
        seg[headers..].copy_from_slice(chunk);
        let total = seg.len();
        if version == 4 {
            seg[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            seg[10..12].copy_from_slice(&[0, 0]);
            let ip_sum = !fold(sum_bytes(&seg[..ip_len], 0));
            seg[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        } else {
            seg[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        }
        let tcp = ip_len;
        let seq = seq0.wrapping_add((i * gso_size) as u32);
        seg[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        if i + 1 < count {
            // FIN and PSH belong to the last segment only.
            seg[tcp + 13] &= !(0x01 | 0x08);
        }
        if i > 0 {
            // CWR is set on the first segment only (RFC 3168 §6.1.2).
            seg[tcp + 13] &= !0x80;
        }
        seg[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
        let pseudo = pseudo_header_sum(seg, version, ip_len, total - ip_len);
        let tcp_sum = !fold(sum_bytes(&seg[tcp..], pseudo));
        seg[tcp + 16..tcp + 18].copy_from_slice(&tcp_sum.to_be_bytes());
        emit(seg);
    }
    Ok(())
}

/// Largest IP packet a TUN write may carry (the IPv4 total-length field).
const MAX_SUPER_PACKET: usize = 65_535;

/// Joins consecutive TCP segments of one flow into a super-packet for a TUN device with
/// offloads (receive-side GRO, as Linux `tcp_gro_receive` does): one write instead of dozens.
///
/// Segments join while they continue the flow exactly: same addresses, ports, IP and TCP
/// header fields except length/id/checksum/sequence, equal TCP options, ACK (and PSH on the
/// last) as the only flags, a valid TCP checksum, each payload the size of the first (the last
/// may be shorter), and the sequence number right after the previous one. Everything else is
/// written as it came.
pub struct Coalescer {
    /// Virtio header space, then the pending packet.
    buf: Vec<u8>,
    pending: Option<Pending>,
}

#[derive(Clone, Copy)]
struct Pending {
    ip_len: usize,
    headers: usize,
    gso_size: usize,
    count: usize,
    next_seq: u32,
    /// A short segment or PSH ended the run.
    closed: bool,
    /// The last segment joined carried PSH, which the super-packet must pass on.
    push_flag: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(VNET_HDR_LEN + MAX_SUPER_PACKET),
            pending: None,
        }
    }

    /// Adds `packet`. When it cannot join the pending super-packet, the pending one is handed
    /// to `write` (virtio header included) first.
    pub fn push(&mut self, packet: &[u8], write: &mut dyn FnMut(&[u8])) {
        if let Some(pending) = self.pending {
            if let Some(next) = self.joins(&pending, packet) {
                self.buf.extend_from_slice(&packet[pending.headers..]);
                self.pending = Some(next);
                return;
            }
            self.finish(write);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&VnetHdr::NONE);
        self.buf.extend_from_slice(packet);
        self.pending = start(packet);
        if self.pending.is_none() {
            write(&self.buf);
            self.buf.clear();
        }
    }

    /// Hands the pending packet, if any, to `write`.
    pub fn finish(&mut self, write: &mut dyn FnMut(&[u8])) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if pending.count > 1 {
            self.seal(&pending);
        }
        write(&self.buf);
        self.buf.clear();
    }

    /// The run after `packet` joined, or `None` when it cannot.
    fn joins(&self, pending: &Pending, packet: &[u8]) -> Option<Pending> {
        let first = &self.buf[VNET_HDR_LEN..];
        let (ip_len, headers) = (pending.ip_len, pending.headers);
        if pending.closed || packet.len() <= headers || packet.len() < 40 {
            return None;
        }
        let payload = packet.len() - headers;
        if payload > pending.gso_size || first.len() + payload > MAX_SUPER_PACKET {
            return None;
        }
        if start(packet).map(|p| (p.ip_len, p.headers)) != Some((ip_len, headers)) {
            return None;
        }
        let same_ip = if ip_len == 20 {
            // Version/IHL/TOS, flags/fragment, TTL/protocol, addresses.
            first[..2] == packet[..2]
                && first[6..10] == packet[6..10]
                && first[12..20] == packet[12..20]
        } else {
            first[..4] == packet[..4] && first[6..40] == packet[6..40]
        };
        let t = ip_len;
        let same_tcp = first[t..t + 4] == packet[t..t + 4]
            && first[t + 8..t + 13] == packet[t + 8..t + 13]
            && first[t + 13] & !0x08 == packet[t + 13] & !0x08
            && first[t + 14..t + 16] == packet[t + 14..t + 16]
            && first[t + 18..headers] == packet[t + 18..headers];
        let seq = u32::from_be_bytes([packet[t + 4], packet[t + 5], packet[t + 6], packet[t + 7]]);
        if !same_ip || !same_tcp || seq != pending.next_seq {
            return None;
        }
        Some(Pending {
            count: pending.count + 1,
            next_seq: seq.wrapping_add(payload as u32),
            closed: payload < pending.gso_size || packet[t + 13] & 0x08 != 0,
            push_flag: packet[t + 13] & 0x08 != 0,
            ..*pending
        })
    }

    /// Turns the joined bytes into a valid GSO packet: lengths, IPv4 header checksum, the TCP
    /// pseudo-header sum for the kernel to complete, PSH from the last segment, the header.
    fn seal(&mut self, pending: &Pending) {
        let Pending {
            ip_len,
            headers,
            gso_size,
            ..
        } = *pending;
        let packet = &mut self.buf[VNET_HDR_LEN..];
        let total = packet.len();
        let v4 = ip_len == 20;
        if pending.push_flag {
            packet[ip_len + 13] |= 0x08;
        }
        if v4 {
            packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            packet[10..12].copy_from_slice(&[0, 0]);
            let sum = !fold(sum_bytes(&packet[..20], 0));
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
        } else {
            packet[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        }
        let version = if v4 { 4 } else { 6 };
        let pseudo = fold(pseudo_header_sum(packet, version, ip_len, total - ip_len));
        packet[ip_len + 16..ip_len + 18].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v4 { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: headers as u16,
            gso_size: gso_size as u16,
            csum_start: ip_len as u16,
            csum_offset: 16,
        };
        self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
    }
}

/// Starts a run with `packet` if it is a TCP segment that may lead one: plain IPv4 (no
/// options, not a fragment) or IPv6 (no extension headers), ACK with optional PSH only, and a
/// payload.
fn start(packet: &[u8]) -> Option<Pending> {
    let ip_len = match packet.first()? >> 4 {
        4 if packet.len() >= 40
            && packet[0] == 0x45
            && packet[9] == 6
            && u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff == 0
            && usize::from(u16::from_be_bytes([packet[2], packet[3]])) == packet.len() =>
        {
            20
        }
        6 if packet.len() >= 60
            && packet[6] == 6
            && usize::from(u16::from_be_bytes([packet[4], packet[5]])) + 40 == packet.len() =>
        {
            40
        }
        _ => return None,
    };
    let tcp_len = usize::from(packet[ip_len + 12] >> 4) * 4;
    let headers = ip_len + tcp_len;
    let flags = packet[ip_len + 13];
    if tcp_len < 20 || packet.len() <= headers || flags & !0x08 != 0x10 {
        return None;
    }
    // Like Linux GRO, only segments whose checksum verifies are joined: the kernel recomputes
    // checksums for a super-packet, which would otherwise launder a corrupt segment.
    let version = if ip_len == 20 { 4 } else { 6 };
    let pseudo = pseudo_header_sum(packet, version, ip_len, packet.len() - ip_len);
    if fold(sum_bytes(&packet[ip_len..], pseudo)) != 0xffff {
        return None;
    }
    let payload = packet.len() - headers;
    let seq = u32::from_be_bytes([
        packet[ip_len + 4],
        packet[ip_len + 5],
        packet[ip_len + 6],
        packet[ip_len + 7],
    ]);
    Some(Pending {
        ip_len,
        headers,
        gso_size: payload,
        count: 1,
        next_seq: seq.wrapping_add(payload as u32),
        closed: flags & 0x08 != 0,
        push_flag: flags & 0x08 != 0,
    })
}

impl VnetHdr {
    /// The header's 10 bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut out = [0u8; VNET_HDR_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        out
    }
}

/// The one's-complement sum of the TCP/UDP pseudo-header.
fn pseudo_header_sum(packet: &[u8], version: u8, ip_len: usize, l4_len: usize) -> u64 {
    let (addrs, proto) = if version == 4 {
        (&packet[12..20], packet[9])
    } else {
        (&packet[8..40], packet[6])
    };
    let _ = ip_len;
    sum_bytes(addrs, u64::from(proto) + l4_len as u64)
}

fn sum_bytes(bytes: &[u8], initial: u64) -> u64 {
    let mut sum = initial;
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn tcp_packet(v6: bool, payload: &[u8], fin_psh: bool) -> Vec<u8> {
        let builder = if v6 {
            PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
        } else {
            PacketBuilder::ipv4([100, 64, 0, 2], [10, 0, 0, 9], 64)
        };
        let mut builder = builder.tcp(40000, 80, 1000, 500).ack(77);
        if fin_psh {
            builder = builder.fin().psh();
        }
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("vec write");
        out
    }

    fn gso(v6: bool, gso_size: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: 0,
            gso_size,
            csum_start: 0,
            csum_offset: 16,
        }
    }

    #[test]
    fn a_tso_packet_splits_into_valid_segments_that_reassemble() {
        for v6 in [false, true] {
            let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            let mut packet = tcp_packet(v6, &payload, true);
            let mut scratch = vec![0u8; 65_535];
            let mut segments = Vec::new();
            split_packet(&gso(v6, 1400), &mut packet, &mut scratch, |s| {
                segments.push(s.to_vec())
            })
            .expect("splits");
            assert_eq!(segments.len(), 8);
            let mut joined = Vec::new();
            for (i, seg) in segments.iter().enumerate() {
                let sliced = SlicedPacket::from_ip(seg).expect("valid segment");
                let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
                    panic!("tcp")
                };
                assert_eq!(tcp.sequence_number(), 1000 + (i as u32) * 1400);
                let last = i == segments.len() - 1;
                assert_eq!(tcp.fin(), last);
                assert_eq!(tcp.psh(), last);
                // Checksums verify: etherparse recomputes and we compare.
                let expected = match &sliced.net {
                    Some(etherparse::NetSlice::Ipv4(ip)) => tcp
                        .to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
                        .expect("checksum"),
                    Some(etherparse::NetSlice::Ipv6(ip)) => tcp
                        .to_header()
                        .calc_checksum_ipv6(&ip.header().to_header(), tcp.payload())
                        .expect("checksum"),
                    _ => panic!("ip"),
                };
                assert_eq!(tcp.checksum(), expected, "segment {i} v6={v6}");
                if let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net {
                    let header = ip.header().to_header();
                    assert_eq!(header.header_checksum, header.calc_header_checksum());
                }
                joined.extend_from_slice(tcp.payload());
            }
            assert_eq!(joined, payload);
        }
    }

    #[test]
    fn a_partial_checksum_is_completed() {
        let mut packet = tcp_packet(false, b"hello", false);
        let good = packet.clone();
        // What the kernel hands over: the pseudo-header sum in the checksum field.
        let pseudo = fold(pseudo_header_sum(&packet, 4, 20, packet.len() - 20));
        packet[36..38].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        let mut out = Vec::new();
        split_packet(&hdr, &mut packet, &mut [0u8; 16], |p| out = p.to_vec()).expect("ok");
        assert_eq!(out, good);
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        let mut scratch = vec![0u8; 2000];
        for len in 0..80 {
            let mut junk: Vec<u8> = (0..len).map(|i| (i * 13) as u8 | 0x40).collect();
            let _ = split_packet(&gso(false, 100), &mut junk, &mut scratch, |_| {});
            let _ = split_packet(
                &VnetHdr {
                    flags: F_NEEDS_CSUM,
                    csum_start: 60,
                    csum_offset: 60,
                    ..VnetHdr::default()
                },
                &mut junk,
                &mut scratch,
                |_| {},
            );
        }
        assert_eq!(VnetHdr::split(&[0; 5]), Err(OffloadError::Truncated));
        let mut packet = tcp_packet(false, &[1; 100], false);
        let udp_gso = VnetHdr {
            gso_type: 5,
            ..VnetHdr::default()
        };
        assert_eq!(
            split_packet(&udp_gso, &mut packet, &mut scratch, |_| {}),
            Err(OffloadError::UnsupportedGso(5))
        );
    }

    fn segment(seq: u32, payload: &[u8], psh: bool) -> Vec<u8> {
        let mut builder = PacketBuilder::ipv4([10, 0, 0, 9], [100, 64, 0, 2], 64)
            .tcp(80, 40000, seq, 500)
            .ack(5);
        if psh {
            builder = builder.psh();
        }
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("vec write");
        out
    }

    fn coalesce(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut coalescer = Coalescer::new();
        let mut written = Vec::new();
        for p in packets {
            coalescer.push(p, &mut |w| written.push(w.to_vec()));
        }
        coalescer.finish(&mut |w| written.push(w.to_vec()));
        written
    }

    #[test]
    fn consecutive_segments_join_and_split_back_to_the_originals() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let packets: Vec<Vec<u8>> = data
            .chunks(1000)
            .enumerate()
            .map(|(i, c)| segment(7000 + (i as u32) * 1000, c, i == 4))
            .collect();
        let written = coalesce(&packets);
        assert_eq!(written.len(), 1, "one super-packet");
        let (hdr, packet) = VnetHdr::split(&written[0]).expect("header");
        assert_eq!(
            (hdr.gso_type, hdr.gso_size, hdr.csum_start),
            (GSO_TCPV4, 1000, 20)
        );
        // What the kernel does with it: segment and checksum; we must get the originals back.
        let mut packet = packet.to_vec();
        let mut scratch = vec![0u8; 65_535];
        let mut resegmented = Vec::new();
        split_packet(&hdr, &mut packet, &mut scratch, |s| {
            resegmented.push(s.to_vec())
        })
        .expect("splits");
        assert_eq!(resegmented.len(), 5);
        for (original, again) in packets.iter().zip(&resegmented) {
            // IP ids differ (the kernel increments them); everything else must match.
            assert_eq!(original[20..], again[20..]);
            assert_eq!(original[..4], again[..4]);
        }
    }

    #[test]
    fn gaps_other_flows_and_non_ack_segments_break_runs() {
        let a = segment(1000, &[1; 500], false);
        let gap = segment(2000, &[2; 500], false);
        let mut other_port = segment(1500, &[3; 500], false);
        other_port[20..22].copy_from_slice(&81u16.to_be_bytes());
        let syn = {
            let mut out = Vec::new();
            PacketBuilder::ipv4([10, 0, 0, 9], [100, 64, 0, 2], 64)
                .tcp(80, 40000, 1, 500)
                .syn()
                .write(&mut out, &[])
                .expect("vec write");
            out
        };
        let written = coalesce(&[a.clone(), gap.clone(), other_port, syn.clone()]);
        assert_eq!(written.len(), 4);
        for w in &written {
            assert_eq!(
                &w[..VNET_HDR_LEN],
                &VnetHdr::NONE,
                "single packets pass unchanged"
            );
        }
        assert_eq!(&written[0][VNET_HDR_LEN..], a.as_slice());
        assert_eq!(&written[3][VNET_HDR_LEN..], syn.as_slice());
    }

    #[test]
    fn a_segment_with_a_bad_checksum_is_not_joined() {
        let good = segment(0, &[1; 1000], false);
        let mut bad = segment(1000, &[1; 1000], false);
        bad[36] ^= 0xff;
        let written = coalesce(&[good, bad.clone()]);
        assert_eq!(written.len(), 2);
        assert_eq!(
            &written[1][VNET_HDR_LEN..],
            bad.as_slice(),
            "passed on untouched"
        );
    }

    #[test]
    fn segments_differing_in_the_urgent_pointer_are_not_joined() {
        // Found by the `offload` fuzz target: the split copies the first segment's header.
        let first = segment(0, &[1; 1000], false);
        let mut second = segment(1000, &[1; 1000], false);
        second[38..40].copy_from_slice(&[0xff, 0xff]);
        // Keep the checksum valid: the urgent pointer adds 0xffff (= 0 in one's complement).
        let written = coalesce(&[first, second]);
        assert_eq!(written.len(), 2);
    }

    #[test]
    fn a_short_segment_or_psh_ends_a_run() {
        let packets = vec![
            segment(0, &[1; 1000], false),
            segment(1000, &[1; 400], false),
            segment(1400, &[1; 1000], false),
        ];
        let written = coalesce(&packets);
        assert_eq!(written.len(), 2);
        let (hdr, packet) = VnetHdr::split(&written[0]).expect("header");
        assert_eq!(hdr.gso_size, 1000);
        assert_eq!(packet.len(), 40 + 1400);
    }
}
