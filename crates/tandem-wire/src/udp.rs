//! UDP header (RFC 768).
//!
//! ```text
//!  0      2      4        6          8
//!  | sport| dport| length | checksum | payload
//! ```
//!
//! Offsets are relative to the start of the UDP header. A checksum of 0 means "none" over
//! IPv4; a computed checksum of 0 is sent as `0xffff`.

use crate::{Malformed, read_u16, write_u16};

/// Field offsets, relative to the start of the UDP header.
pub mod field {
    use crate::Field;

    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Field = 4..6;
    /// Checksum (0 = none).
    pub const CHECKSUM: Field = 6..8;
    /// Length of the header.
    pub const HEADER_LEN: usize = 8;
}

/// A checked view of a UDP header at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 8-byte header is present; accessors
/// then cannot fail. It does not check the length field; [`parse`](crate::parse) does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// Wraps `buffer`, or returns [`Malformed::Truncated`] if it is shorter than 8 bytes.
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length of header and payload in bytes.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field is 0 (always malformed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum as stored (0 = none).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpHeader<T> {
    /// Sets the source port (does not update the checksum).
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port (does not update the checksum).
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, IPPROTO_UDP, checksum, parse};
    use std::net::{IpAddr, Ipv4Addr};

    // 5353 -> 53, length 12, checksum 0 (none), 4 bytes of payload.
    static HEADER_BYTES: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, // ports
        0x00, 0x0c, 0x00, 0x00, // length, checksum
        b'w', b'x', b'y', b'z',
    ];

    #[test]
    fn test_deconstruct() {
        let u = UdpHeader::new_checked(&HEADER_BYTES[..]).unwrap();
        assert_eq!(u.src_port(), 5353);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 12);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
    }

    #[test]
    fn test_construct() {
        let mut b = [0xffu8; 12];
        b[8..].copy_from_slice(b"wxyz");
        let mut u = UdpHeader::new_checked(&mut b[..]).unwrap();
        u.set_src_port(5353);
        u.set_dst_port(53);
        u.set_len(12);
        u.set_checksum(0);
        assert_eq!(b, HEADER_BYTES);
    }

    #[test]
    fn test_check_len() {
        assert_eq!(
            UdpHeader::new_checked(&HEADER_BYTES[..7]),
            Err(Malformed::Truncated)
        );
    }

    /// Ethernet + IPv4 (no options) around `udp`, with a correct IP checksum.
    fn frame_with(udp: &[u8]) -> Vec<u8> {
        let total = 20 + udp.len();
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17]);
        f.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(udp);
        f
    }

    #[test]
    fn test_parse() {
        let f = frame_with(&HEADER_BYTES);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!("{:?}", parse(&f))
        };
        assert_eq!(p.proto, IPPROTO_UDP);
        assert_eq!(p.src_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.dst_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((p.src_port, p.dst_port), (5353, 53));
        assert_eq!(p.tcp_flags, 0);
        assert_eq!((p.l4, p.payload, p.end, p.payload_len()), (34, 42, 46, 4));
        assert_eq!(p.tcp_seq_ack(&f), None);
        assert!(!p.is_syn() && !p.is_fin() && !p.is_rst());

        // A UDP length shorter than the IP payload is accepted (as Linux does); the
        // datagram ends where the UDP length says.
        let mut short = HEADER_BYTES;
        short[5] = 10;
        let f = frame_with(&short);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        assert_eq!((p.end, p.payload_len()), (44, 2));
    }

    #[test]
    fn test_malformed() {
        assert_eq!(
            parse(&frame_with(&HEADER_BYTES[..7])),
            Err(Malformed::BadUdpLength)
        );
        let mut h = HEADER_BYTES;
        h[5] = 7; // below the header
        assert_eq!(parse(&frame_with(&h)), Err(Malformed::BadUdpLength));
        h[5] = 13; // beyond the IP payload
        assert_eq!(parse(&frame_with(&h)), Err(Malformed::BadUdpLength));
    }
}
