//! IPv4 fragments: what [`parse`](crate::parse) tells about a fragment ([`Fragment`]).
//!
//! Tandem does not reassemble. The first fragment (offset 0, MF set) carries the TCP/UDP
//! header, so it is located as a [`Packet`] ([`Fragment::first`]) whose data ends with the
//! fragment (`end` = the fragment's IP end, not the UDP length): the address and port
//! rewrites work on it unchanged, and their incremental checksum update is right for the
//! whole datagram, because it depends only on the fields that change. Later fragments carry
//! no ports: the engine sends them where their first fragment went, rewriting the IP header
//! only ([`crate::ipv4::rewrite_addresses`]).

use std::net::IpAddr;

use crate::ipv4::Ipv4Header;
use crate::tcp::{self, TcpHeader};
use crate::udp::{self, UdpHeader};
use crate::{IPPROTO_TCP, IPPROTO_UDP, Malformed, Packet};

/// An IP fragment, as located in a frame by [`parse`](crate::parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// IP protocol of the datagram.
    pub proto: u8,
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// The datagram's identification (16 bits in IPv4).
    pub ident: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// The IP total length of this fragment (header and data).
    pub ip_total_len: u16,
    /// The first fragment of a TCP/UDP datagram, located as a packet whose data ends with
    /// this fragment. `None` for later fragments and other protocols.
    pub first: Option<Packet>,
}

impl Fragment {
    /// Whether this is the first fragment (offset 0).
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Classifies an IPv4 fragment whose header (`hl` bytes) and total length (`total`) the
/// caller checked against `ip` (the frame from the IP header on, at offset `l3`).
///
/// # Errors
///
/// [`Malformed::Fragment`] for a first fragment of TCP/UDP too short to hold its L4 header
/// (the "tiny fragment" of RFC 1858), and for a TCP fragment at offset 8 (which could
/// overwrite the first fragment's flags): neither can be forwarded on its ports.
pub(crate) fn parse_ipv4_fragment(
    h: &Ipv4Header<&[u8]>,
    ip: &[u8],
    l3: usize,
    (hl, total): (usize, usize),
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
) -> Result<Fragment, Malformed> {
    let proto = h.protocol();
    let offset = h.frag_offset();
    let src_ip = IpAddr::V4(h.src_addr());
    let dst_ip = IpAddr::V4(h.dst_addr());
    if proto == IPPROTO_TCP && offset == 8 {
        return Err(Malformed::Fragment);
    }
    let seg = ip.get(hl..total).unwrap_or(&[]);
    let l4 = l3 + hl;
    let first = match (offset, proto) {
        (0, IPPROTO_TCP) => {
            let t = TcpHeader::new_checked(seg).map_err(|_| Malformed::Fragment)?;
            let doff = t.header_len();
            if doff < tcp::field::HEADER_LEN || doff > seg.len() {
                return Err(Malformed::Fragment);
            }
            Some((t.src_port(), t.dst_port(), t.flags(), l4 + doff))
        }
        (0, IPPROTO_UDP) => {
            let u = UdpHeader::new_checked(seg).map_err(|_| Malformed::Fragment)?;
            // The UDP length is the whole datagram's: more than this fragment holds.
            if usize::from(u.len()) < seg.len() {
                return Err(Malformed::Fragment);
            }
            Some((u.src_port(), u.dst_port(), 0, l4 + udp::field::HEADER_LEN))
        }
        _ => None,
    };
    Ok(Fragment {
        src_mac,
        dst_mac,
        l3,
        proto,
        src_ip,
        dst_ip,
        ident: u32::from(h.ident()),
        offset,
        more: h.more_frags(),
        ip_total_len: h.total_len(),
        first: first.map(|(src_port, dst_port, tcp_flags, payload)| Packet {
            src_mac,
            dst_mac,
            l3,
            l4,
            payload,
            end: l3 + total,
            proto,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            tcp_flags,
            ip_total_len: h.total_len(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use crate::{Frame, Malformed, parse};
    use std::net::{IpAddr, Ipv4Addr};

    /// An IPv4 UDP fragment frame: `flags_off` the flags/offset word, `data` the IP payload.
    fn fragment(flags_off: u16, ident: u16, data: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + data.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ident.to_be_bytes());
        f.extend_from_slice(&flags_off.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]);
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn first_fragment_has_ports() {
        // UDP header: 4000 -> 53, length 3000 (the whole datagram), checksum 0x1234.
        let mut data = vec![0x0f, 0xa0, 0, 53, 0x0b, 0xb8, 0x12, 0x34];
        data.resize(1480, 7);
        let f = fragment(0x2000, 0xbeef, &data);
        let Ok(Frame::Fragment(fr)) = parse(&f) else {
            panic!("not a fragment: {:?}", parse(&f))
        };
        assert!(fr.is_first() && fr.more);
        assert_eq!(fr.ident, 0xbeef);
        assert_eq!(fr.src_ip, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let p = fr.first.expect("ports");
        assert_eq!((p.src_port, p.dst_port), (4000, 53));
        assert_eq!(p.end, f.len());
    }

    #[test]
    fn later_fragment_has_no_ports() {
        let f = fragment(185, 7, &[1u8; 800]); // offset 1480, last
        let Ok(Frame::Fragment(fr)) = parse(&f) else {
            panic!("not a fragment")
        };
        assert_eq!((fr.offset, fr.more, fr.first), (1480, false, None));
    }

    #[test]
    fn unusable_fragments_are_malformed() {
        // A first fragment too short for its UDP header.
        assert_eq!(
            parse(&fragment(0x2000, 1, &[0, 1, 0, 2])),
            Err(Malformed::Fragment)
        );
        // A UDP length shorter than the first fragment's data.
        let mut data = vec![0, 1, 0, 2, 0, 16, 0, 0];
        data.resize(64, 0);
        assert_eq!(parse(&fragment(0x2000, 1, &data)), Err(Malformed::Fragment));
        // TCP at offset 8 (RFC 1858).
        let mut f = fragment(1, 1, &[0u8; 40]);
        f[23] = 6;
        assert_eq!(parse(&f), Err(Malformed::Fragment));
    }
}
