//! TUN offload code on arbitrary input: `VnetHdr::split` + `split_packet` (what the kernel hands
//! us) and the `Coalescer` (fed decrypted packets, i.e. whatever an authenticated peer sends)
//! never panic. Every super-packet the coalescer writes splits back into exactly the TCP
//! payload bytes that went in, and single packets pass through unchanged.

#![no_main]

use fuzz::Cursor;
use libfuzzer_sys::fuzz_target;
use wire::offload::{split_packet, Coalescer, VnetHdr, VNET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let mut scratch = vec![0u8; 65_535];

    // What a TUN read returns.
    let mut chunk = input.bytes().to_vec();
    if let Ok((hdr, _)) = VnetHdr::split(&chunk) {
        let _ = split_packet(&hdr, &mut chunk[VNET_HDR_LEN..], &mut scratch, |_| {});
    }

    // What decrypted packets become on the way to the TUN.
    let mut coalescer = Coalescer::new();
    let mut pushed: Vec<Vec<u8>> = Vec::new();
    let mut written: Vec<Vec<u8>> = Vec::new();
    while !input.is_empty() {
        let packet = input.bytes().to_vec();
        coalescer.push(&packet, &mut |w| written.push(w.to_vec()));
        pushed.push(packet);
    }
    coalescer.finish(&mut |w| written.push(w.to_vec()));

    let mut out_packets = Vec::new();
    for w in &written {
        let (hdr, packet) = VnetHdr::split(w).expect("the coalescer writes a header");
        let mut packet = packet.to_vec();
        if hdr == VnetHdr::default() {
            out_packets.push(packet);
            continue;
        }
        split_packet(&hdr, &mut packet, &mut scratch, |s| {
            out_packets.push(s.to_vec())
        })
        .expect("a coalesced super-packet splits");
    }
    assert_eq!(out_packets.len(), pushed.len(), "packets lost or invented");
    for (out, original) in out_packets.iter().zip(&pushed) {
        if out.len() >= 20 && out[0] >> 4 == 4 && out.len() == original.len() {
            // The IPv4 id and header checksum of joined segments are rewritten, as in GSO.
            assert_eq!(out[..4], original[..4]);
            assert_eq!(out[12..], original[12..]);
        } else {
            assert_eq!(out, original);
        }
    }
});
