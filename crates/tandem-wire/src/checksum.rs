//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Conventions: a *sum* is the folded 16-bit one's-complement sum of big-endian 16-bit words
//! (an odd trailing byte is padded with a zero byte), not yet complemented. A *checksum* is
//! what goes on the wire: the complement of the sum of everything it covers, computed with
//! the checksum field itself taken as zero. A header with a correct checksum sums to `0xffff`.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ipv4::field as ip_field;
use crate::ipv6::field as ip6_field;
use crate::{IPPROTO_UDP, Packet, read_u32, rewrite::RewriteError};

/// Adds the big-endian 16-bit words of `data` to a wide accumulator (not folded).
///
/// Reads four bytes at a time: in one's-complement arithmetic a 32-bit big-endian word
/// `a·2¹⁶ + b` is congruent to `a + b`, so summing 32-bit words and folding later gives the
/// same result with half the additions. A `u64` cannot overflow for any slice that fits in
/// memory.
#[inline]
fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        if let &[a, b, c, d] = c {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
        }
    }
    match *chunks.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// Folds a wide one's-complement accumulator to 16 bits. Returns 0 only for 0.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The one's-complement sum of `data` (not complemented). An odd trailing byte counts as the
/// high byte of a word whose low byte is zero.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// One's-complement addition of two sums.
#[inline]
pub fn combine(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// Updates `checksum` for a 16-bit field of the covered data changing from `old` to `new`
/// (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// Updates `checksum` for a 32-bit field (two 16-bit words, such as an IPv4 address) changing
/// from `old` to `new`.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let (oh, ol) = ((old >> 16) as u16, old as u16);
    let (nh, nl) = ((new >> 16) as u16, new as u16);
    !fold(u64::from(!checksum) + u64::from(!oh) + u64::from(!ol) + u64::from(nh) + u64::from(nl))
}

/// The IPv4 header checksum of `header` (exactly the header: IHL × 4 bytes). The stored
/// checksum field (bytes 10..12) is ignored, so this is the value to store.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let before = header.get(..ip_field::CHECKSUM.start).unwrap_or(header);
    let after = header.get(ip_field::CHECKSUM.end..).unwrap_or(&[]);
    !fold(accumulate(accumulate(0, before), after))
}

/// The sum of the IPv4 pseudo header of a TCP/UDP segment of `l4_len` bytes (header and
/// payload).
pub fn pseudo_header_sum_ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u16 {
    fold(pseudo_acc(u32::from(src), u32::from(dst), proto, l4_len))
}

fn pseudo_acc(src: u32, dst: u32, proto: u8, l4_len: u16) -> u64 {
    u64::from(src) + u64::from(dst) + u64::from(proto) + u64::from(l4_len)
}

/// The sum of the IPv6 pseudo header (RFC 8200 §8.1) of an upper-layer packet of `l4_len`
/// bytes.
pub fn pseudo_header_sum_ipv6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4_len: u32) -> u16 {
    fold(pseudo_acc_ipv6(&src.octets(), &dst.octets(), proto, l4_len))
}

fn pseudo_acc_ipv6(src: &[u8], dst: &[u8], proto: u8, l4_len: u32) -> u64 {
    accumulate(accumulate(0, src), dst) + u64::from(l4_len) + u64::from(proto)
}

/// The correct TCP/UDP checksum of `packet` in `frame`, IPv4 or IPv6: the pseudo header
/// (addresses read from the frame) and `frame[packet.l4..packet.end]`, with the stored
/// checksum field taken as zero. For UDP a computed 0 is returned as `0xffff` (0 on the wire
/// means "none"). The frame is not modified.
///
/// # Errors
///
/// [`RewriteError`] if `packet` does not describe a TCP/UDP packet inside `frame`.
pub fn l4_checksum(frame: &[u8], packet: &Packet) -> Result<u16, RewriteError> {
    packet.check(frame)?;
    let at = packet.l4_checksum_at();
    let (Some(before), Some(after)) = (frame.get(packet.l4..at), frame.get(at + 2..packet.end))
    else {
        return Err(RewriteError::Mismatch); // unreachable after check()
    };
    let len = packet.end - packet.l4; // <= ip_total_len, checked
    let acc = if packet.src_ip.is_ipv4() {
        let src = read_u32(frame, packet.l3 + ip_field::SRC_ADDR.start);
        let dst = read_u32(frame, packet.l3 + ip_field::DST_ADDR.start);
        pseudo_acc(src, dst, packet.proto, len as u16)
    } else {
        let (Some(src), Some(dst)) = (
            frame.get(packet.l3 + ip6_field::SRC_ADDR.start..packet.l3 + ip6_field::SRC_ADDR.end),
            frame.get(packet.l3 + ip6_field::DST_ADDR.start..packet.l3 + ip6_field::DST_ADDR.end),
        ) else {
            return Err(RewriteError::Mismatch); // unreachable after check()
        };
        pseudo_acc_ipv6(src, dst, packet.proto, len as u32)
    };
    // `before` has an even length (16 or 6), so `after` starts on a word boundary.
    let c = !fold(accumulate(accumulate(acc, before), after));
    Ok(if c == 0 && packet.proto == IPPROTO_UDP {
        0xffff
    } else {
        c
    })
}

/// [`l4_checksum`] under its older name (it handles IPv6 too).
///
/// # Errors
///
/// As [`l4_checksum`].
pub fn l4_checksum_ipv4(frame: &[u8], packet: &Packet) -> Result<u16, RewriteError> {
    l4_checksum(frame, packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 reference: 16-bit words, fold at the end.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in data.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            let lo = w.get(1).copied().map_or(0, u32::from);
            s += hi | lo;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(
            ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn sums_match_reference_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(
                ones_complement_sum(&data[..n]),
                reference_sum(&data[..n]),
                "len {n}"
            );
        }
        assert_eq!(ones_complement_sum(&[0xff; 64]), 0xffff);
        assert_eq!(ones_complement_sum(&[]), 0);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_matches_full() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(91)).collect();
        let c0 = !ones_complement_sum(&data);
        let old = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let new: u32 = 0xc0a8_0101;
        data[8..12].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update_u32(c0, old, new), !ones_complement_sum(&data));
        let old16 = u16::from_be_bytes([data[2], data[3]]);
        data[2..4].copy_from_slice(&443u16.to_be_bytes());
        let c1 = !ones_complement_sum(&{
            let mut d = data.clone();
            d[2..4].copy_from_slice(&old16.to_be_bytes());
            d
        });
        assert_eq!(update_u16(c1, old16, 443), !ones_complement_sum(&data));
    }

    #[test]
    fn ipv4_header_checksum_ignores_field() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        // The classic Wikipedia example: checksum b861.
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        h[10] = 0x12;
        h[11] = 0x34;
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
    }

    #[test]
    fn pseudo_header_ipv6() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut bytes = a.octets().to_vec();
        bytes.extend_from_slice(&b.octets());
        bytes.extend_from_slice(&[0, 1, 0, 20, 0, 0, 0, 6]);
        assert_eq!(
            pseudo_header_sum_ipv6(a, b, 6, 0x10014),
            reference_sum(&bytes)
        );
    }

    #[test]
    fn pseudo_header() {
        let s = pseudo_header_sum_ipv4(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 6, 20);
        assert_eq!(s, reference_sum(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 6, 0, 20]));
    }
}
