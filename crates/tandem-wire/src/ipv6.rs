//! IPv6 header (RFC 8200) and the walk over its extension headers.
//!
//! ```text
//!  0            4        6            7           8     24    40
//!  | ver/tc/flow | length | next header | hop limit | src | dst | extension headers, upper layer
//! ```
//!
//! Offsets are relative to the start of the IPv6 header. There is no header checksum.

use std::net::Ipv6Addr;

use crate::{Malformed, read_u16, write_bytes, write_u16};

/// Field offsets, relative to the start of the IPv6 header.
pub mod field {
    use crate::Field;

    /// Version (4 bits), traffic class (8 bits) and flow label (20 bits).
    pub const VER_TC_FLOW: Field = 0..4;
    /// Payload length: everything after the fixed header (extension headers included).
    pub const PAYLOAD_LEN: Field = 4..6;
    /// Next header: the protocol of what follows the fixed header.
    pub const NEXT_HEADER: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC_ADDR: Field = 8..24;
    /// Destination address.
    pub const DST_ADDR: Field = 24..40;
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;
}

/// Next-header number of the hop-by-hop options header.
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next-header number of the routing header.
pub const NEXT_ROUTING: u8 = 43;
/// Next-header number of the fragment header.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next-header number of the destination options header.
pub const NEXT_DEST_OPTIONS: u8 = 60;
/// Next-header number of "no next header".
pub const NEXT_NONE: u8 = 59;

/// At most this many extension headers are skipped before giving up (a chain of tiny
/// headers must not cost more than a bounded walk).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A checked view of an IPv6 header at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 40-byte fixed header is present. It
/// does not check the version or payload length; [`parse`](crate::parse) does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Header<T> {
    /// Wraps `buffer`, or returns [`Malformed::Truncated`] if it is shorter than 40 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        Ok(Self { buffer })
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn addr(&self, f: crate::Field) -> Ipv6Addr {
        let mut a = [0u8; 16];
        if let Some(s) = self.buffer.as_ref().get(f) {
            a.copy_from_slice(s);
        }
        Ipv6Addr::from(a)
    }

    /// IP version (6 for a well-formed header).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 4
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.byte(field::NEXT_HEADER)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.byte(field::HOP_LIMIT)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr(field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr(field::DST_ADDR)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Header<T> {
    /// Sets version 6, traffic class 0 and flow label 0.
    pub fn set_version(&mut self) {
        write_bytes(self.buffer.as_mut(), 0, &[0x60, 0, 0, 0]);
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, value);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::NEXT_HEADER, &[value]);
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::HOP_LIMIT, &[value]);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        write_bytes(self.buffer.as_mut(), field::SRC_ADDR.start, &a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        write_bytes(self.buffer.as_mut(), field::DST_ADDR.start, &a.octets());
    }
}

/// Walks the extension headers of an IPv6 packet. `packet` is the IPv6 packet bounded by its
/// payload length (fixed header included). Returns the upper-layer protocol and the offset
/// of its header within `packet`.
///
/// Hop-by-hop, routing and destination options headers are skipped; a fragment header is
/// [`Malformed::Fragment`] (Tandem does not reassemble, as for IPv4); "no next header" and
/// any other protocol are returned as they are (ICMPv6, ESP ...).
///
/// # Errors
///
/// [`Malformed::BadExtensionHeader`] for an extension header that runs past the packet,
/// or a chain longer than [`MAX_EXTENSION_HEADERS`].
pub fn upper_layer(packet: &[u8]) -> Result<(u8, usize), Malformed> {
    let mut next = packet.get(field::NEXT_HEADER).copied().unwrap_or(NEXT_NONE);
    let mut at = field::HEADER_LEN;
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTIONS => {
                let (Some(&n), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
                    return Err(Malformed::BadExtensionHeader);
                };
                let hl = (usize::from(len) + 1) * 8;
                if at + hl > packet.len() {
                    return Err(Malformed::BadExtensionHeader);
                }
                next = n;
                at += hl;
            }
            NEXT_FRAGMENT => return Err(Malformed::Fragment),
            other => return Ok((other, at)),
        }
    }
    Err(Malformed::BadExtensionHeader)
}

/// The solicited-node multicast address of `ip` (`ff02::1:ffXX:XXXX`, RFC 4291 §2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address of IPv6 multicast address `ip` (`33:33` and its last 32 bits,
/// RFC 2464 §7).
pub fn multicast_mac(ip: Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The link-local address `fe80::/64` with the modified EUI-64 interface identifier of
/// `mac` (RFC 4291 appendix A): what a Linux interface has unless configured otherwise.
pub fn link_local_eui64(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        let mut h = Ipv6Header::new_checked(&mut p[..]).unwrap();
        h.set_version();
        h.set_payload_len(payload.len() as u16);
        h.set_next_header(next);
        h.set_hop_limit(64);
        h.set_src_addr("2001:db8::1".parse().unwrap());
        h.set_dst_addr("2001:db8::2".parse().unwrap());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn fields_round_trip() {
        let p = header(6, &[0; 20]);
        let h = Ipv6Header::new_checked(&p[..]).unwrap();
        assert_eq!(h.version(), 6);
        assert_eq!(h.payload_len(), 20);
        assert_eq!(h.next_header(), 6);
        assert_eq!(h.hop_limit(), 64);
        assert_eq!(h.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(h.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Ipv6Header::new_checked(&p[..39]), Err(Malformed::Truncated));
    }

    #[test]
    fn extension_headers_are_skipped_and_fragments_reported() {
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then TCP.
        let mut ext = vec![NEXT_DEST_OPTIONS, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[0; 20]);
        let p = header(NEXT_HOP_BY_HOP, &ext);
        assert_eq!(upper_layer(&p), Ok((6, 64)));
        // Cut inside the destination options header.
        assert_eq!(upper_layer(&p[..60]), Err(Malformed::BadExtensionHeader));
        let p = header(NEXT_FRAGMENT, &[6, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(upper_layer(&p), Err(Malformed::Fragment));
        let p = header(NEXT_NONE, &[]);
        assert_eq!(upper_layer(&p), Ok((NEXT_NONE, 40)));
        // An endless chain of hop-by-hop headers.
        let mut chain = Vec::new();
        for _ in 0..20 {
            chain.extend_from_slice(&[NEXT_HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = header(NEXT_HOP_BY_HOP, &chain);
        assert_eq!(upper_layer(&p), Err(Malformed::BadExtensionHeader));
    }

    #[test]
    fn multicast_addresses() {
        let ip: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(ip),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(ip)),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
        assert_eq!(
            link_local_eui64([0x02, 0, 0, 0, 0, 0x01]),
            "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
    }
}
