//! Ethernet II header, and the 802.1Q VLAN tag that may follow it.
//!
//! ```text
//!  0      6      12        14      16        18
//!  | dst  | src  | type    | TCI   | type'   |   (TCI and type' only when type = 0x8100)
//! ```

use crate::{Malformed, read_mac, read_u16, write_bytes, write_u16};

/// Field offsets, relative to the start of the frame.
pub mod field {
    use crate::Field;

    /// Destination MAC address.
    pub const DESTINATION: Field = 0..6;
    /// Source MAC address.
    pub const SOURCE: Field = 6..12;
    /// Ethertype (or the 802.1Q TPID `0x8100` when tagged).
    pub const ETHERTYPE: Field = 12..14;
    /// Length of the untagged header.
    pub const HEADER_LEN: usize = 14;
    /// 802.1Q tag control information (PCP, DEI, VLAN ID), when tagged.
    pub const VLAN_TCI: Field = 14..16;
    /// The ethertype of the payload, when tagged.
    pub const VLAN_ETHERTYPE: Field = 16..18;
    /// Length of the header with one 802.1Q tag.
    pub const VLAN_HEADER_LEN: usize = 18;
}

/// Ethertypes Tandem recognises.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-tag, "QinQ"); not unwrapped by [`parse`](crate::parse).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// The broadcast MAC address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A checked view of an Ethernet II header at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 14-byte header is present; accessors
/// then read fixed offsets and cannot fail. The view does not look past the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer`, or returns [`Malformed::Truncated`] if it is shorter than 14 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst_mac(&self) -> [u8; 6] {
        read_mac(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// Source MAC address.
    pub fn src_mac(&self) -> [u8; 6] {
        read_mac(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The ethertype field (the TPID `0x8100` for a tagged frame).
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// For a frame with an 802.1Q tag: `(TCI, inner ethertype)`. `None` if the frame is not
    /// tagged or too short to hold the tag.
    pub fn vlan(&self) -> Option<(u16, u16)> {
        let b = self.buffer.as_ref();
        if self.ethertype() != ethertype::VLAN || b.len() < field::VLAN_HEADER_LEN {
            return None;
        }
        Some((
            read_u16(b, field::VLAN_TCI.start),
            read_u16(b, field::VLAN_ETHERTYPE.start),
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_mac(&mut self, mac: [u8; 6]) {
        write_bytes(self.buffer.as_mut(), field::DESTINATION.start, &mac);
    }

    /// Sets the source MAC address.
    pub fn set_src_mac(&mut self, mac: [u8; 6]) {
        write_bytes(self.buffer.as_mut(), field::SOURCE.start, &mac);
    }

    /// Sets the ethertype field.
    pub fn set_ethertype(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, parse};

    // An untagged ARP frame header followed by two payload bytes.
    static FRAME_BYTES: [u8; 16] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb,
    ];

    // A tagged (VLAN 100, PCP 5) IPv6 frame header.
    static VLAN_BYTES: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // PCP 5, VID 100
        0x86, 0xdd, // IPv6
    ];

    #[test]
    fn test_deconstruct() {
        let f = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(f.dst_mac(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_mac(), [0x11, 0x12, 0x13, 0x14, 0x15, 0x16]);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.vlan(), None);

        let v = EthernetFrame::new_checked(&VLAN_BYTES[..]).unwrap();
        assert_eq!(v.ethertype(), ethertype::VLAN);
        assert_eq!(v.vlan(), Some((0xa064, ethertype::IPV6)));
        assert_eq!(v.vlan().unwrap().0 & 0x0fff, 100);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 16];
        bytes[14..].copy_from_slice(&[0xaa, 0xbb]);
        let mut f = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        f.set_dst_mac([1, 2, 3, 4, 5, 6]);
        f.set_src_mac([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]);
        f.set_ethertype(ethertype::ARP);
        assert_eq!(bytes, FRAME_BYTES);
    }

    #[test]
    fn test_check_len() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME_BYTES[..13]),
            Err(Malformed::Truncated)
        );
        assert!(EthernetFrame::new_checked(&FRAME_BYTES[..14]).is_ok());
        // A tag that does not fit is not reported as a tag.
        let v = EthernetFrame::new_checked(&VLAN_BYTES[..17]).unwrap();
        assert_eq!(v.vlan(), None);
    }

    #[test]
    fn test_parse() {
        // A tagged IPv6 frame whose IPv6 header is missing.
        assert_eq!(parse(&VLAN_BYTES), Err(Malformed::Truncated));
        let mut arp_type = VLAN_BYTES;
        arp_type[16..18].copy_from_slice(&0x88ccu16.to_be_bytes());
        assert_eq!(parse(&arp_type), Ok(Frame::Other(0x88cc)));
        assert_eq!(parse(&VLAN_BYTES[..17]), Err(Malformed::Truncated));
        assert_eq!(parse(&FRAME_BYTES[..12]), Err(Malformed::Truncated));
        let mut qinq = VLAN_BYTES;
        qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
        assert_eq!(parse(&qinq), Ok(Frame::Other(ethertype::QINQ)));
        // Two C-tags: the inner type is a tag again, which is not unwrapped.
        let mut double = VLAN_BYTES;
        double[16..18].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        assert_eq!(parse(&double), Ok(Frame::Other(ethertype::VLAN)));
    }
}
