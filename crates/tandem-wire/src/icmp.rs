//! ICMP errors about a TCP/UDP flow (RFC 792): destination unreachable (type 3, with code 4
//! "fragmentation needed" for path-MTU discovery and code 3 "port unreachable") and time
//! exceeded (type 11). They quote the IPv4 header and at least 8 bytes of the datagram that
//! caused them, which is enough for its ports.
//!
//! ```text
//!  l3          icmp                         quoted.l3          quoted.l4
//!  | outer IP  | type code csum  rest(4)    | quoted IP header | ports (4) len/seq (4) ...
//! ```
//!
//! [`parse`](crate::parse) returns [`Frame::IcmpError`](crate::Frame::IcmpError) for such a
//! message; [`translate`] rewrites the outer and the quoted addresses and ports of a NAT
//! translation, keeping every checksum incrementally (the quoted IP header's, the quoted
//! L4 checksum when it is quoted, and the ICMP checksum, which covers the quote).

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use crate::checksum::{self, fold};
use crate::ipv4::{self, Ipv4Header};
use crate::{IPPROTO_TCP, IPPROTO_UDP, RewriteError, read_u16, read_u32, write_u16};

/// ICMP type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// ICMP type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Destination unreachable code: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Destination unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Length of the ICMP header (type, code, checksum and the 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;
/// Offset of the ICMP checksum in the ICMP header.
pub const CHECKSUM_AT: usize = 2;

/// The datagram an ICMP error quotes: the ports of a TCP/UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quoted {
    /// Offset of the quoted IP header in the frame.
    pub l3: usize,
    /// Offset of the quoted TCP/UDP header in the frame.
    pub l4: usize,
    /// IP protocol of the quoted datagram ([`IPPROTO_TCP`] or [`IPPROTO_UDP`]).
    pub proto: u8,
    /// Source address of the quoted datagram.
    pub src_ip: IpAddr,
    /// Destination address of the quoted datagram.
    pub dst_ip: IpAddr,
    /// Source port of the quoted datagram.
    pub src_port: u16,
    /// Destination port of the quoted datagram.
    pub dst_port: u16,
}

/// An ICMP error message quoting a TCP/UDP datagram, as located by [`parse`](crate::parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpError {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Offset of the outer IP header.
    pub l3: usize,
    /// Offset of the ICMP header.
    pub icmp: usize,
    /// One past the last byte of the ICMP message (the outer IP total length's end).
    pub end: usize,
    /// Sender of the error (a router, or the host that refused the datagram).
    pub src_ip: IpAddr,
    /// Destination of the error (the quoted datagram's source, normally).
    pub dst_ip: IpAddr,
    /// ICMP type ([`DEST_UNREACHABLE`] or [`TIME_EXCEEDED`]).
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The next-hop MTU of a "fragmentation needed" (RFC 1191), 0 otherwise.
    pub mtu: u16,
    /// The quoted datagram.
    pub quoted: Quoted,
}

impl IcmpError {
    /// Whether this is a "fragmentation needed" (path-MTU discovery).
    pub fn is_frag_needed(&self) -> bool {
        self.icmp_type == DEST_UNREACHABLE && self.code == CODE_FRAG_NEEDED
    }
}

/// Locates an ICMP error in an IPv4 packet that is not a fragment: `ip` is the frame from
/// the outer IP header on (at offset `l3`), `hl` and `total` its checked header and total
/// lengths. `None` for other ICMP messages and for errors whose quote is too short or not
/// TCP/UDP: those stay [`Frame::IpOther`](crate::Frame::IpOther).
pub(crate) fn parse_ipv4_error(
    ip: &[u8],
    l3: usize,
    (hl, total): (usize, usize),
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
) -> Option<IcmpError> {
    let outer = Ipv4Header::new_checked(ip).ok()?;
    let msg = ip.get(hl..total)?;
    let (&icmp_type, &code) = (msg.first()?, msg.get(1)?);
    if !matches!(icmp_type, DEST_UNREACHABLE | TIME_EXCEEDED) || msg.len() < HEADER_LEN {
        return None;
    }
    let quote = msg.get(HEADER_LEN..)?;
    let inner = Ipv4Header::new_checked(quote).ok()?;
    let ihl = inner.header_len();
    // The ports must be quoted: a whole quoted header, 8 bytes after it, and not a later
    // fragment of the quoted datagram.
    if inner.version() != 4
        || ihl < ipv4::field::HEADER_LEN
        || quote.len() < ihl + 8
        || inner.frag_offset() != 0
        || !matches!(inner.protocol(), IPPROTO_TCP | IPPROTO_UDP)
    {
        return None;
    }
    let icmp = l3 + hl;
    let q_l3 = icmp + HEADER_LEN;
    Some(IcmpError {
        src_mac,
        dst_mac,
        l3,
        icmp,
        end: l3 + total,
        src_ip: IpAddr::V4(outer.src_addr()),
        dst_ip: IpAddr::V4(outer.dst_addr()),
        icmp_type,
        code,
        mtu: if icmp_type == DEST_UNREACHABLE && code == CODE_FRAG_NEEDED {
            read_u16(msg, 6)
        } else {
            0
        },
        quoted: Quoted {
            l3: q_l3,
            l4: q_l3 + ihl,
            proto: inner.protocol(),
            src_ip: IpAddr::V4(inner.src_addr()),
            dst_ip: IpAddr::V4(inner.dst_addr()),
            src_port: read_u16(quote, ihl),
            dst_port: read_u16(quote, ihl + 2),
        },
    })
}

/// New addresses for an ICMP error: the outer header's, and the quoted datagram's
/// addresses with ports. `None` keeps a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Translation {
    /// Outer source address.
    pub outer_src: Option<Ipv4Addr>,
    /// Outer destination address.
    pub outer_dst: Option<Ipv4Addr>,
    /// Quoted source address and port.
    pub quoted_src: Option<SocketAddrV4>,
    /// Quoted destination address and port.
    pub quoted_dst: Option<SocketAddrV4>,
}

/// Rewrites an ICMP error in place (NAT in both directions): the outer addresses (outer IP
/// checksum), the quoted addresses and ports (quoted IP checksum, quoted UDP checksum, and
/// the quoted TCP checksum when the quote reaches it), and the ICMP checksum over all of it,
/// all incrementally: a wrong checksum stays exactly as wrong.
///
/// # Errors
///
/// [`RewriteError::Mismatch`] if `e` does not fit `frame`; the frame is untouched then.
pub fn translate(frame: &mut [u8], e: &IcmpError, t: &Translation) -> Result<(), RewriteError> {
    let q = &e.quoted;
    let fits = e.l3 + ipv4::field::HEADER_LEN <= e.icmp
        && e.icmp + HEADER_LEN <= q.l3
        && q.l3 + ipv4::field::HEADER_LEN <= q.l4
        && q.l4 + 8 <= e.end
        && e.end <= frame.len()
        && frame.get(e.l3).is_some_and(|b| b >> 4 == 4)
        && frame.get(q.l3).is_some_and(|b| b >> 4 == 4);
    if !fits {
        return Err(RewriteError::Mismatch);
    }
    // The bytes of the quote that change: its IP header, its ports and (UDP) checksum, and
    // the TCP checksum at 16..18 when quoted. The region starts at an even offset of the
    // ICMP message and has an even length, so its sum can be swapped in the ICMP checksum.
    let tcp_csum = q.proto == IPPROTO_TCP && q.l4 + 18 <= e.end;
    let region = q.l3..if tcp_csum { q.l4 + 18 } else { q.l4 + 8 };
    let old_sum = checksum::ones_complement_sum(&frame[region.clone()]);

    let l4_csum_at = if q.proto == IPPROTO_UDP {
        Some(q.l4 + 6).filter(|&at| read_u16(frame, at) != 0)
    } else {
        tcp_csum.then_some(q.l4 + 16)
    };
    for (addr_at, port_at, new) in [
        (ipv4::field::SRC_ADDR.start, 0, t.quoted_src),
        (ipv4::field::DST_ADDR.start, 2, t.quoted_dst),
    ] {
        let Some(new) = new else { continue };
        let old_ip = read_u32(frame, q.l3 + addr_at);
        let old_port = read_u16(frame, q.l4 + port_at);
        if let Some(at) = l4_csum_at {
            let c = read_u16(frame, at);
            let c = checksum::update_u32(c, old_ip, u32::from(*new.ip()));
            let c = checksum::update_u16(c, old_port, new.port());
            write_u16(
                frame,
                at,
                if c == 0 && q.proto == IPPROTO_UDP {
                    0xffff
                } else {
                    c
                },
            );
        }
        write_u16(frame, q.l4 + port_at, new.port());
        let (src, dst) = if addr_at == ipv4::field::SRC_ADDR.start {
            (Some(*new.ip()), None)
        } else {
            (None, Some(*new.ip()))
        };
        ipv4::rewrite_addresses(frame, q.l3, src, dst)?;
    }
    let new_sum = checksum::ones_complement_sum(&frame[region]);
    let at = e.icmp + CHECKSUM_AT;
    let c = read_u16(frame, at);
    let c = !fold(u64::from(!c) + u64::from(!old_sum) + u64::from(new_sum));
    write_u16(frame, at, c);
    ipv4::rewrite_addresses(frame, e.l3, t.outer_src, t.outer_dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, parse};

    /// A "fragmentation needed" from 203.0.113.1 to 192.0.2.10 quoting a UDP datagram
    /// 192.0.2.10:53 -> 198.51.100.7:4000 with 8 bytes of its header, checksums right.
    pub(crate) fn frag_needed() -> Vec<u8> {
        let mut quoted = vec![
            0x45, 0, 0x05, 0xdc, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 10, 198, 51, 100, 7,
        ];
        let c = checksum::ipv4_header_checksum(&quoted);
        quoted[10..12].copy_from_slice(&c.to_be_bytes());
        quoted.extend_from_slice(&[0, 53, 0x0f, 0xa0, 0x05, 0xc8, 0xab, 0xcd]);
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        icmp.extend_from_slice(&quoted);
        let c = !checksum::ones_complement_sum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut ip = vec![0x45, 0xc0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 9, 0, 0, 64, 1, 0, 0, 203, 0, 113, 1, 192, 0, 2, 10]);
        let c = checksum::ipv4_header_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn parses_frag_needed() {
        let f = frag_needed();
        let Ok(Frame::IcmpError(e)) = parse(&f) else {
            panic!("not an ICMP error: {:?}", parse(&f))
        };
        assert!(e.is_frag_needed());
        assert_eq!(e.mtu, 1400);
        assert_eq!(e.quoted.src_port, 53);
        assert_eq!(e.quoted.dst_port, 4000);
        assert_eq!(e.quoted.dst_ip, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    }

    #[test]
    fn other_icmp_stays_other() {
        let mut f = frag_needed();
        f[34] = 8; // echo request
        assert!(matches!(parse(&f), Ok(Frame::IpOther { .. })));
        let mut f = frag_needed();
        f.truncate(f.len() - 1); // 7 bytes of the quoted UDP header
        let len = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(parse(&f), Ok(Frame::IpOther { .. })));
    }

    #[test]
    fn translation_keeps_every_checksum() {
        let mut f = frag_needed();
        let Ok(Frame::IcmpError(e)) = parse(&f) else {
            unreachable!()
        };
        let t = Translation {
            outer_src: Some(Ipv4Addr::new(192, 0, 2, 200)),
            outer_dst: Some(Ipv4Addr::new(192, 0, 2, 21)),
            quoted_src: Some("192.0.2.21:8053".parse().unwrap()),
            quoted_dst: Some("192.0.2.200:61000".parse().unwrap()),
        };
        translate(&mut f, &e, &t).unwrap();
        let Ok(Frame::IcmpError(n)) = parse(&f) else {
            unreachable!()
        };
        assert_eq!(n.dst_ip, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21)));
        assert_eq!(n.quoted.src_port, 8053);
        assert_eq!(n.quoted.dst_port, 61000);
        // Outer IP header, ICMP message and quoted IP header all sum right.
        assert_eq!(checksum::ones_complement_sum(&f[14..34]), 0xffff);
        assert_eq!(checksum::ones_complement_sum(&f[34..]), 0xffff);
        assert_eq!(checksum::ones_complement_sum(&f[42..62]), 0xffff);
        // The quoted UDP checksum moved by exactly the pseudo-header and port change.
        let mut orig = frag_needed();
        let c0 = u16::from_be_bytes([orig[68], orig[69]]);
        orig.clear();
        let c1 = u16::from_be_bytes([f[68], f[69]]);
        let sum = |a: [u8; 4], p: u16| {
            checksum::combine(
                checksum::combine(
                    u16::from_be_bytes([a[0], a[1]]),
                    u16::from_be_bytes([a[2], a[3]]),
                ),
                p,
            )
        };
        let old = checksum::combine(sum([192, 0, 2, 10], 53), sum([198, 51, 100, 7], 4000));
        let new = checksum::combine(sum([192, 0, 2, 21], 8053), sum([192, 0, 2, 200], 61000));
        assert_eq!(c1, !fold(u64::from(!c0) + u64::from(!old) + u64::from(new)));
    }
}
