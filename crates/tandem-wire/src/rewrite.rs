//! In-place rewrites of a parsed frame, keeping checksums right.
//!
//! Address and port rewrites update the IPv4 header checksum (IPv6 has none) and the TCP/UDP
//! checksum *incrementally* (RFC 1624), so their cost does not depend on the payload size and a
//! checksum that was wrong stays exactly as wrong (a load balancer must not launder corrupt
//! packets). The old values are read from the frame, never from the [`Packet`], which only
//! locates the headers.
//!
//! Frames whose TCP/UDP checksum field holds only the pseudo-header sum (a local stack's
//! `CHECKSUM_PARTIAL`, seen as `TP_STATUS_CSUMNOTREADY` on an `AF_PACKET` ring) must be
//! completed with [`complete_partial_checksum`] or [`fill_l4_checksum`] *before* an address
//! rewrite: an incremental update applies to a finished checksum only.

use std::fmt;
use std::net::IpAddr;

use crate::checksum::{self, fold};
use crate::ethernet::field as eth;
use crate::ipv4::field as ip;
use crate::ipv6::field as ip6;
use crate::tcp::field as tcp;
use crate::udp::field as udp;
use crate::{IPPROTO_UDP, Packet, read_u16, read_u32, write_bytes, write_u16, write_u32};

/// Why a rewrite (or checksum computation) refused to touch a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RewriteError {
    /// The [`Packet`] does not describe a TCP/UDP packet inside this frame (its offsets point
    /// past the frame, or it was parsed from another frame), or the frame is shorter than an
    /// Ethernet header. A bug in the caller.
    Mismatch,
    /// The new address is not of the packet's address family.
    AddressFamily,
    /// The checksum location given to [`complete_partial_checksum`] is not inside the
    /// packet's L4 data.
    ChecksumOutOfRange,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::Mismatch => "packet does not match the frame",
            RewriteError::AddressFamily => "address family differs from the packet's",
            RewriteError::ChecksumOutOfRange => "partial checksum location outside the packet",
        })
    }
}

impl std::error::Error for RewriteError {}

/// Sets the Ethernet destination address.
///
/// # Errors
///
/// [`RewriteError::Mismatch`] if the frame is shorter than an Ethernet header.
pub fn set_dst_mac(frame: &mut [u8], mac: [u8; 6]) -> Result<(), RewriteError> {
    if frame.len() < eth::HEADER_LEN {
        return Err(RewriteError::Mismatch);
    }
    write_bytes(frame, eth::DESTINATION.start, &mac);
    Ok(())
}

/// Sets the Ethernet source address.
///
/// # Errors
///
/// [`RewriteError::Mismatch`] if the frame is shorter than an Ethernet header.
pub fn set_src_mac(frame: &mut [u8], mac: [u8; 6]) -> Result<(), RewriteError> {
    if frame.len() < eth::HEADER_LEN {
        return Err(RewriteError::Mismatch);
    }
    write_bytes(frame, eth::SOURCE.start, &mac);
    Ok(())
}

/// Rewrites the destination address and port of `packet` in `frame`, updating the IPv4
/// header checksum (IPv6 has none) and the TCP/UDP checksum incrementally. A UDP checksum of 0 ("none") stays
/// 0; a UDP checksum that comes out as 0 is stored as `0xffff`.
///
/// `new_ip` is anything that converts into an [`IpAddr`] (`Ipv4Addr`, `Ipv6Addr`), of the
/// packet's family.
///
/// # Errors
///
/// [`RewriteError::AddressFamily`] if `new_ip` is not of the packet's family;
/// [`RewriteError::Mismatch`] if `packet` does not fit `frame`. The frame is untouched on
/// error.
pub fn rewrite_dst(
    frame: &mut [u8],
    packet: &Packet,
    new_ip: impl Into<IpAddr>,
    new_port: u16,
) -> Result<(), RewriteError> {
    rewrite(frame, packet, new_ip.into(), new_port, Side::Dst)
}

/// Rewrites the source address and port of `packet` in `frame`; otherwise as
/// [`rewrite_dst`].
///
/// # Errors
///
/// As [`rewrite_dst`].
pub fn rewrite_src(
    frame: &mut [u8],
    packet: &Packet,
    new_ip: impl Into<IpAddr>,
    new_port: u16,
) -> Result<(), RewriteError> {
    rewrite(frame, packet, new_ip.into(), new_port, Side::Src)
}

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

fn rewrite(
    frame: &mut [u8],
    packet: &Packet,
    new_ip: IpAddr,
    new_port: u16,
    side: Side,
) -> Result<(), RewriteError> {
    packet.check(frame)?;
    if new_ip.is_ipv4() != packet.src_ip.is_ipv4() {
        return Err(RewriteError::AddressFamily);
    }
    debug_assert_eq!(tcp::SRC_PORT, udp::SRC_PORT);
    debug_assert_eq!(tcp::DST_PORT, udp::DST_PORT);
    // Both TCP and UDP have the ports at 0..2 and 2..4.
    let port_at = packet.l4
        + match side {
            Side::Src => tcp::SRC_PORT.start,
            Side::Dst => tcp::DST_PORT.start,
        };
    let old_port = read_u16(frame, port_at);
    // The one's-complement difference the address change makes to a sum (~old + new, as
    // 16-bit words), and where the address is.
    let delta = match new_ip {
        IpAddr::V4(new_ip) => {
            let ip_at = packet.l3
                + match side {
                    Side::Src => ip::SRC_ADDR.start,
                    Side::Dst => ip::DST_ADDR.start,
                };
            let (old, new) = (read_u32(frame, ip_at), u32::from(new_ip));
            // IPv4 header checksum: the address is in the header.
            let ip_csum_at = packet.l3 + ip::CHECKSUM.start;
            let c = read_u16(frame, ip_csum_at);
            write_u16(frame, ip_csum_at, checksum::update_u32(c, old, new));
            write_u32(frame, ip_at, new);
            address_delta(&old.to_be_bytes(), &new.to_be_bytes())
        }
        IpAddr::V6(new_ip) => {
            let f = match side {
                Side::Src => ip6::SRC_ADDR,
                Side::Dst => ip6::DST_ADDR,
            };
            let Some(old) = frame.get(packet.l3 + f.start..packet.l3 + f.end) else {
                return Err(RewriteError::Mismatch); // unreachable after check()
            };
            let delta = address_delta(old, &new_ip.octets());
            write_bytes(frame, packet.l3 + f.start, &new_ip.octets());
            delta
        }
    };

    // L4 checksum: the address is in the pseudo header, the port in the L4 header.
    let l4_csum_at = packet.l4_checksum_at();
    let c = read_u16(frame, l4_csum_at);
    let udp = packet.proto == IPPROTO_UDP;
    if !(udp && c == 0) {
        let sum = u64::from(!c) + delta + u64::from(!old_port) + u64::from(new_port);
        let c = !fold(sum);
        write_u16(frame, l4_csum_at, if udp && c == 0 { 0xffff } else { c });
    }
    write_u16(frame, port_at, new_port);
    Ok(())
}

/// `Σ ~old_word + new_word` over the 16-bit words of an address (not folded).
fn address_delta(old: &[u8], new: &[u8]) -> u64 {
    old.chunks_exact(2)
        .zip(new.chunks_exact(2))
        .map(|(o, n)| {
            u64::from(!u16::from_be_bytes([o[0], o[1]]))
                + u64::from(u16::from_be_bytes([n[0], n[1]]))
        })
        .sum()
}

/// Completes a partial TCP/UDP checksum (`CHECKSUM_PARTIAL`): the field at
/// `csum_start + csum_offset` holds the pseudo-header sum, and the checksum is the complement
/// of the sum of `frame[csum_start..packet.end]` (that field included). Offsets are from the
/// start of the frame, as in a `virtio_net_hdr` (`csum_start` is normally `packet.l4`, and
/// `csum_offset` 16 for TCP, 6 for UDP). For UDP a result of 0 is stored as `0xffff`; with
/// the usual `csum_start`/`csum_offset` the result is the same as [`fill_l4_checksum`]'s.
///
/// # Errors
///
/// [`RewriteError::ChecksumOutOfRange`] unless
/// `packet.l4 <= csum_start` and `csum_start + csum_offset + 2 <= packet.end`;
/// [`RewriteError::Mismatch`] if `packet` does not fit `frame`. The frame is untouched on
/// error.
pub fn complete_partial_checksum(
    frame: &mut [u8],
    packet: &Packet,
    csum_start: usize,
    csum_offset: usize,
) -> Result<(), RewriteError> {
    packet.check(frame)?;
    let at = csum_start
        .checked_add(csum_offset)
        .filter(|&at| csum_start >= packet.l4 && at.checked_add(2).is_some_and(|e| e <= packet.end))
        .ok_or(RewriteError::ChecksumOutOfRange)?;
    let Some(data) = frame.get(csum_start..packet.end) else {
        return Err(RewriteError::Mismatch); // unreachable after check()
    };
    let c = !checksum::ones_complement_sum(data);
    write_u16(
        frame,
        at,
        if c == 0 && packet.proto == IPPROTO_UDP {
            0xffff
        } else {
            c
        },
    );
    Ok(())
}

/// Recomputes the full TCP/UDP checksum of `packet` and stores it, whatever the field held
/// before (a partial sum, garbage, or a UDP 0 — which becomes a real checksum). Costs a pass
/// over the payload; use it for frames flagged `TP_STATUS_CSUMNOTREADY` when the exact
/// `csum_start`/`csum_offset` are not at hand.
///
/// # Errors
///
/// [`RewriteError::Mismatch`] if `packet` does not fit `frame` (frame untouched).
pub fn fill_l4_checksum(frame: &mut [u8], packet: &Packet) -> Result<(), RewriteError> {
    let c = checksum::l4_checksum(frame, packet)?;
    write_u16(frame, packet.l4_checksum_at(), c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::tests::frame_with;
    use crate::{Frame, ipv4::Ipv4Header, parse};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tcp_frame() -> (Vec<u8>, Packet) {
        let mut seg = vec![
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
        ];
        seg.extend_from_slice(&[0, 0, 0, 0]);
        seg.extend_from_slice(b"hello");
        let mut f = frame_with(&seg);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        fill_l4_checksum(&mut f, &p).unwrap();
        (f, p)
    }

    fn l4_ok(f: &[u8], p: &Packet) -> bool {
        let stored = read_u16(f, p.l4_checksum_at());
        checksum::l4_checksum_ipv4(f, p) == Ok(stored)
    }

    #[test]
    fn rewrite_keeps_checksums() {
        let (mut f, p) = tcp_frame();
        rewrite_dst(&mut f, &p, Ipv4Addr::new(10, 1, 2, 3), 8080).unwrap();
        rewrite_src(&mut f, &p, Ipv4Addr::new(10, 9, 9, 9), 1234).unwrap();
        let Ok(Frame::Ip(q)) = parse(&f) else {
            panic!()
        };
        assert_eq!(q.dst(), "10.1.2.3:8080".parse().unwrap());
        assert_eq!(q.src(), "10.9.9.9:1234".parse().unwrap());
        assert!(Ipv4Header::new_checked(&f[14..]).unwrap().verify_checksum());
        assert!(l4_ok(&f, &q));
    }

    #[test]
    fn wrong_checksum_stays_wrong() {
        let (mut f, p) = tcp_frame();
        let at = p.l4_checksum_at();
        let good = read_u16(&f, at);
        // Off by 0x0101 in one's-complement terms; a rewrite keeps that error.
        write_u16(&mut f, at, checksum::combine(good, 0x0101));
        rewrite_dst(&mut f, &p, Ipv4Addr::new(10, 1, 2, 3), 8080).unwrap();
        let right = checksum::l4_checksum_ipv4(&f, &p).unwrap();
        assert_ne!(read_u16(&f, at), right);
        assert_eq!(read_u16(&f, at), checksum::combine(right, 0x0101));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[0, 53, 0, 53, 0, 10, 0, 0, 0xab, 0xcd]);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        rewrite_dst(&mut f, &p, Ipv4Addr::new(1, 1, 1, 1), 5353).unwrap();
        assert_eq!(read_u16(&f, p.l4_checksum_at()), 0);
        // fill_l4_checksum turns "none" into a real checksum.
        fill_l4_checksum(&mut f, &p).unwrap();
        assert_ne!(read_u16(&f, p.l4_checksum_at()), 0);
        assert!(l4_ok(&f, &p));
    }

    #[test]
    fn partial_checksum_completes() {
        let (mut f, p) = tcp_frame();
        let full = read_u16(&f, p.l4_checksum_at());
        // What a local stack leaves: the (uncomplemented) pseudo-header sum.
        let pseudo = checksum::pseudo_header_sum_ipv4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 100),
            6,
            (p.end - p.l4) as u16,
        );
        write_u16(&mut f, p.l4_checksum_at(), pseudo);
        complete_partial_checksum(&mut f, &p, p.l4, 16).unwrap();
        assert_eq!(read_u16(&f, p.l4_checksum_at()), full);

        write_u16(&mut f, p.l4_checksum_at(), 0x1234);
        fill_l4_checksum(&mut f, &p).unwrap();
        assert_eq!(read_u16(&f, p.l4_checksum_at()), full);
    }

    #[test]
    fn errors_leave_frame_untouched() {
        let (mut f, p) = tcp_frame();
        let orig = f.clone();
        let v6 = Ipv6Addr::LOCALHOST;
        assert_eq!(
            rewrite_dst(&mut f, &p, v6, 1),
            Err(RewriteError::AddressFamily)
        );
        assert_eq!(
            complete_partial_checksum(&mut f, &p, p.l4, p.end),
            Err(RewriteError::ChecksumOutOfRange)
        );
        assert_eq!(
            complete_partial_checksum(&mut f, &p, p.l4 - 1, 16),
            Err(RewriteError::ChecksumOutOfRange)
        );
        assert_eq!(
            complete_partial_checksum(&mut f, &p, usize::MAX, usize::MAX),
            Err(RewriteError::ChecksumOutOfRange)
        );
        let mut short = f[..f.len() - 1].to_vec();
        assert_eq!(
            rewrite_src(&mut short, &p, Ipv4Addr::LOCALHOST, 1),
            Err(RewriteError::Mismatch)
        );
        assert_eq!(
            fill_l4_checksum(&mut short, &p),
            Err(RewriteError::Mismatch)
        );
        let bogus = Packet {
            l4: usize::MAX - 3,
            end: usize::MAX,
            ..p
        };
        assert_eq!(
            rewrite_dst(&mut f, &bogus, Ipv4Addr::LOCALHOST, 1),
            Err(RewriteError::Mismatch)
        );
        let bogus = Packet { proto: 1, ..p };
        assert_eq!(
            fill_l4_checksum(&mut f, &bogus),
            Err(RewriteError::Mismatch)
        );
        let bogus = Packet {
            src_ip: v6.into(),
            ..p
        };
        assert_eq!(
            rewrite_dst(&mut f, &bogus, Ipv4Addr::LOCALHOST, 1),
            Err(RewriteError::AddressFamily)
        );
        assert_eq!(f, orig);
        assert_eq!(
            set_dst_mac(&mut f[..13], [0; 6]),
            Err(RewriteError::Mismatch)
        );
    }

    #[test]
    fn macs() {
        let (mut f, _) = tcp_frame();
        set_dst_mac(&mut f, [1, 2, 3, 4, 5, 6]).unwrap();
        set_src_mac(&mut f, [7, 8, 9, 10, 11, 12]).unwrap();
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        assert_eq!(
            (p.dst_mac, p.src_mac),
            ([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        );
    }
}
