//! ARP (RFC 826) for Ethernet hardware addresses and IPv4 protocol addresses.
//!
//! ```text
//!  0      2      4    5    6      8     14    18     24    28
//!  | htype| ptype| hlen| plen| oper | sha | spa | tha  | tpa |
//! ```
//!
//! Offsets are relative to the start of the ARP message (after the Ethernet header).

use std::net::Ipv4Addr;

use crate::{Malformed, read_mac, read_u16, read_u32, write_bytes, write_u16};

/// Field offsets, relative to the start of the ARP message.
pub mod field {
    use crate::Field;

    /// Hardware type (1 = Ethernet).
    pub const HTYPE: Field = 0..2;
    /// Protocol type (0x0800 = IPv4).
    pub const PTYPE: Field = 2..4;
    /// Hardware address length (6 for Ethernet).
    pub const HLEN: usize = 4;
    /// Protocol address length (4 for IPv4).
    pub const PLEN: usize = 5;
    /// Operation (1 = request, 2 = reply).
    pub const OPER: Field = 6..8;
    /// Sender hardware address.
    pub const SHA: Field = 8..14;
    /// Sender protocol address.
    pub const SPA: Field = 14..18;
    /// Target hardware address.
    pub const THA: Field = 18..24;
    /// Target protocol address.
    pub const TPA: Field = 24..28;
    /// Length of an Ethernet/IPv4 ARP message.
    pub const LEN: usize = 28;
}

/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// ARP operation code of a request.
pub const OPER_REQUEST: u16 = 1;
/// ARP operation code of a reply.
pub const OPER_REPLY: u16 = 2;

/// A checked view of an ARP message at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 28 bytes of an Ethernet/IPv4 message are
/// present; it does not check that the message *is* Ethernet/IPv4 (see
/// [`is_ethernet_ipv4`](Self::is_ethernet_ipv4)); accessors read the fixed offsets of that
/// layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer`, or returns [`Malformed::Truncated`] if it is shorter than 28 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < field::LEN {
            return Err(Malformed::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    pub fn htype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// Protocol type.
    pub fn ptype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE.start)
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref().get(field::HLEN).copied().unwrap_or(0)
    }

    /// Protocol address length.
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref().get(field::PLEN).copied().unwrap_or(0)
    }

    /// Whether the fixed header announces Ethernet (6-byte) hardware and IPv4 (4-byte)
    /// protocol addresses, the only layout the address accessors understand.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == crate::ethernet::ethertype::IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }

    /// Operation code.
    pub fn oper(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER.start)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        read_mac(self.buffer.as_ref(), field::SHA.start)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::SPA.start))
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        read_mac(self.buffer.as_ref(), field::THA.start)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::TPA.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed header for Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::HTYPE.start, HTYPE_ETHERNET);
        write_u16(b, field::PTYPE.start, crate::ethernet::ethertype::IPV4);
        write_bytes(b, field::HLEN, &[6, 4]);
    }

    /// Sets the operation code.
    pub fn set_oper(&mut self, oper: u16) {
        write_u16(self.buffer.as_mut(), field::OPER.start, oper);
    }

    /// Sets the sender hardware address.
    pub fn set_sender_mac(&mut self, mac: [u8; 6]) {
        write_bytes(self.buffer.as_mut(), field::SHA.start, &mac);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, ip: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::SPA.start, &ip.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_mac(&mut self, mac: [u8; 6]) {
        write_bytes(self.buffer.as_mut(), field::THA.start, &mac);
    }

    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, ip: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::TPA.start, &ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arp, ArpOp, Frame, build, parse};

    // "Who has 192.0.2.1? Tell 192.0.2.2", from 02:00:00:00:00:02.
    static ARP_BYTES: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sha
        0xc0, 0x00, 0x02, 0x02, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        0xc0, 0x00, 0x02, 0x01, // tpa
    ];

    static FRAME_BYTES: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc0, 0x00, 0x02, 0x02, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01,
    ];

    fn repr() -> Arp {
        Arp {
            op: ArpOp::Request,
            sender_mac: [2, 0, 0, 0, 0, 2],
            sender_ip: Ipv4Addr::new(192, 0, 2, 2),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(192, 0, 2, 1),
        }
    }

    #[test]
    fn test_deconstruct() {
        let a = ArpPacket::new_checked(&ARP_BYTES[..]).unwrap();
        assert_eq!(a.htype(), 1);
        assert_eq!(a.ptype(), 0x0800);
        assert_eq!((a.hlen(), a.plen()), (6, 4));
        assert!(a.is_ethernet_ipv4());
        assert_eq!(a.oper(), OPER_REQUEST);
        assert_eq!(a.sender_mac(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(a.target_mac(), [0; 6]);
        assert_eq!(a.target_ip(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut a = ArpPacket::new_checked(&mut bytes[..]).unwrap();
        a.set_ethernet_ipv4();
        a.set_oper(OPER_REQUEST);
        a.set_sender_mac([2, 0, 0, 0, 0, 2]);
        a.set_sender_ip(Ipv4Addr::new(192, 0, 2, 2));
        a.set_target_mac([0; 6]);
        a.set_target_ip(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(bytes, ARP_BYTES);
    }

    #[test]
    fn test_parse() {
        assert_eq!(parse(&FRAME_BYTES), Ok(Frame::Arp(repr())));
        // Ethernet padding after the message is fine.
        let mut padded = [0u8; 60];
        padded[..42].copy_from_slice(&FRAME_BYTES);
        assert_eq!(parse(&padded), Ok(Frame::Arp(repr())));
    }

    #[test]
    fn test_emit() {
        let r = repr();
        assert_eq!(
            build::arp_request(r.sender_mac, r.sender_ip, r.target_ip),
            FRAME_BYTES
        );
    }

    #[test]
    fn test_malformed() {
        assert_eq!(parse(&FRAME_BYTES[..41]), Err(Malformed::Truncated));
        for (at, value) in [(14, 0x01), (15, 0x06), (16, 0x86), (18, 0x08), (19, 0x10)] {
            let mut bad = FRAME_BYTES;
            bad[at] = value;
            assert_eq!(
                parse(&bad),
                Err(Malformed::BadArp),
                "byte {at} = {value:#x}"
            );
        }
        let mut bad_op = FRAME_BYTES;
        bad_op[21] = 3; // RARP request
        assert_eq!(parse(&bad_op), Err(Malformed::BadArp));
    }
}
