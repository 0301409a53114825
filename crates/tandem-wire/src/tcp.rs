//! TCP header (RFC 9293).
//!
//! ```text
//!  0      2      4     8     12       13     14       16         18       20
//!  | sport| dport| seq | ack | doff/ns| flags| window | checksum | urgent | options
//! ```
//!
//! Offsets are relative to the start of the TCP header.

use crate::{Malformed, read_u16, read_u32, write_bytes, write_u16, write_u32};

/// Field offsets, relative to the start of the TCP header.
pub mod field {
    use crate::Field;

    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Field = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in 32-bit words (high nibble).
    pub const DATA_OFF: usize = 12;
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN).
    pub const FLAGS: usize = 13;
    /// Receive window.
    pub const WINDOW: Field = 14..16;
    /// Checksum.
    pub const CHECKSUM: Field = 16..18;
    /// Urgent pointer.
    pub const URGENT: Field = 18..20;
    /// Length of a header without options (the minimum).
    pub const HEADER_LEN: usize = 20;
}

/// Bits of the [`field::FLAGS`] byte.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment number is significant.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

/// A checked view of a TCP header at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 20-byte fixed header is present;
/// accessors of fixed fields then cannot fail. It does not check the data offset against the
/// buffer; [`parse`](crate::parse) does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHeader<T> {
    /// Wraps `buffer`, or returns [`Malformed::Truncated`] if it is shorter than 20 bytes.
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        let b = self
            .buffer
            .as_ref()
            .get(field::DATA_OFF)
            .copied()
            .unwrap_or(0);
        usize::from(b >> 4) * 4
    }

    /// The flags byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref().get(field::FLAGS).copied().unwrap_or(0)
    }

    /// Receive window.
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW.start)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpHeader<T> {
    /// Sets the source port (does not update the checksum).
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port (does not update the checksum).
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the header length in bytes (rounded down to words, clamped to 60); clears the
    /// reserved bits and NS.
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u8;
        write_bytes(self.buffer.as_mut(), field::DATA_OFF, &[words << 4]);
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::FLAGS, &[value]);
    }

    /// Sets the receive window.
    pub fn set_window(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW.start, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Frame, IPPROTO_TCP, checksum, parse};
    use std::net::{IpAddr, Ipv4Addr};

    // 40000 -> 80, seq 0x01020304, ack 0x05060708, ACK|PSH, window 512, 4 bytes of payload.
    static HEADER_BYTES: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, // ports
        0x01, 0x02, 0x03, 0x04, // seq
        0x05, 0x06, 0x07, 0x08, // ack
        0x50, 0x18, 0x02, 0x00, // doff 5, ACK|PSH, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn test_deconstruct() {
        let t = TcpHeader::new_checked(&HEADER_BYTES[..]).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0x0102_0304);
        assert_eq!(t.ack_number(), 0x0506_0708);
        assert_eq!(t.header_len(), 20);
        assert_eq!(t.flags(), flags::ACK | flags::PSH);
        assert_eq!(t.window(), 512);
        assert_eq!(t.checksum(), 0);
        assert_eq!(t.urgent(), 0);
    }

    #[test]
    fn test_construct() {
        let mut b = [0xffu8; 24];
        b[20..].copy_from_slice(b"abcd");
        let mut t = TcpHeader::new_checked(&mut b[..]).unwrap();
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_seq_number(0x0102_0304);
        t.set_ack_number(0x0506_0708);
        t.set_header_len(20);
        t.set_flags(flags::ACK | flags::PSH);
        t.set_window(512);
        t.set_checksum(0);
        t.set_urgent(0);
        assert_eq!(b, HEADER_BYTES);
    }

    #[test]
    fn test_check_len() {
        assert_eq!(
            TcpHeader::new_checked(&HEADER_BYTES[..19]),
            Err(Malformed::Truncated)
        );
    }

    /// Ethernet + IPv4 (no options) around `tcp`, with correct checksums.
    pub(crate) fn frame_with(tcp: &[u8]) -> Vec<u8> {
        let total = 20 + tcp.len();
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
        ]);
        f.extend_from_slice(&[0, 0, 192, 0, 2, 1, 192, 0, 2, 100]);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(tcp);
        f
    }

    #[test]
    fn test_parse() {
        let mut f = frame_with(&HEADER_BYTES);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!("{:?}", parse(&f))
        };
        assert_eq!(p.src_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(p.dst_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!((p.l3, p.l4, p.payload, p.end), (14, 34, 54, 58));
        assert_eq!(p.proto, IPPROTO_TCP);
        assert_eq!(p.src_ip, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(p.dst_ip, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)));
        assert_eq!((p.src_port, p.dst_port), (40000, 80));
        assert_eq!(p.tcp_flags, flags::ACK | flags::PSH);
        assert_eq!(p.ip_total_len, 44);
        assert_eq!(p.payload_len(), 4);
        assert!(!p.is_syn() && !p.is_fin() && !p.is_rst());
        assert_eq!(p.tcp_seq_ack(&f), Some((0x0102_0304, 0x0506_0708)));

        // The checksum helper agrees with a stored checksum verified from first principles.
        let c = checksum::l4_checksum_ipv4(&f, &p).unwrap();
        f[50..52].copy_from_slice(&c.to_be_bytes());
        let pseudo = checksum::pseudo_header_sum_ipv4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 100),
            IPPROTO_TCP,
            24,
        );
        let sum = checksum::combine(pseudo, checksum::ones_complement_sum(&f[34..]));
        assert_eq!(sum, 0xffff);

        // Options: data offset 6 moves the payload.
        let mut with_opts = HEADER_BYTES.to_vec();
        with_opts[12] = 0x60;
        let f = frame_with(&with_opts);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        assert_eq!((p.payload, p.payload_len()), (58, 0));

        // Ethernet padding is not payload.
        let mut padded = frame_with(&HEADER_BYTES[..20]);
        padded.resize(60, 0);
        let Ok(Frame::Ip(p)) = parse(&padded) else {
            panic!()
        };
        assert_eq!((p.end, p.payload_len()), (54, 0));
    }

    #[test]
    fn test_flags() {
        let with = |fl: u8| {
            let mut h = HEADER_BYTES;
            h[13] = fl;
            let Ok(Frame::Ip(p)) = parse(&frame_with(&h)) else {
                panic!()
            };
            p
        };
        assert!(with(flags::SYN).is_syn());
        assert!(!with(flags::SYN | flags::ACK).is_syn());
        assert!(with(flags::FIN | flags::ACK).is_fin());
        assert!(with(flags::RST).is_rst());
        assert!(with(flags::ACK).is_ack());
    }

    #[test]
    fn test_malformed() {
        // Segment shorter than a TCP header.
        assert_eq!(
            parse(&frame_with(&HEADER_BYTES[..19])),
            Err(Malformed::BadTcpHeader)
        );
        // Data offset below 5.
        let mut h = HEADER_BYTES;
        h[12] = 0x40;
        assert_eq!(parse(&frame_with(&h)), Err(Malformed::BadTcpHeader));
        // Data offset beyond the segment (28 > 24).
        h[12] = 0x70;
        assert_eq!(parse(&frame_with(&h)), Err(Malformed::BadTcpHeader));
        // The IP total length, not the frame length, bounds the segment.
        h[12] = 0x60; // 24 bytes of header: fits exactly in 24 bytes...
        let mut f = frame_with(&h);
        f[17] -= 1; // ...but not in 23 by the IP length
        f.push(0); // (the frame keeps a byte of padding)
        assert_eq!(parse(&f), Err(Malformed::BadTcpHeader));
    }
}
