//! IPv4 header (RFC 791).
//!
//! ```text
//!  0        1        2        4        6          8     9       10         12    16    20
//!  | ver/ihl| dscp   | length | ident  | flags/off| ttl | proto | checksum | src | dst | options
//! ```
//!
//! Offsets are relative to the start of the IP header.

use std::net::Ipv4Addr;

use crate::{Malformed, checksum, read_u16, read_u32, write_bytes, write_u16};

/// Field offsets, relative to the start of the IPv4 header.
pub mod field {
    use crate::Field;

    /// Version (high nibble) and IHL, the header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub const DSCP_ECN: usize = 1;
    /// Total length of the datagram (header and payload).
    pub const LENGTH: Field = 2..4;
    /// Identification.
    pub const IDENT: Field = 4..6;
    /// Flags (reserved, DF, MF) and the fragment offset in 8-byte units.
    pub const FLG_OFF: Field = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Field = 10..12;
    /// Source address.
    pub const SRC_ADDR: Field = 12..16;
    /// Destination address.
    pub const DST_ADDR: Field = 16..20;
    /// Length of a header without options (the minimum).
    pub const HEADER_LEN: usize = 20;
}

/// "Don't fragment" bit of [`field::FLG_OFF`].
pub const FLAG_DF: u16 = 0x4000;
/// "More fragments" bit of [`field::FLG_OFF`].
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset bits of [`field::FLG_OFF`].
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A checked view of an IPv4 header at the start of `buffer`.
///
/// [`new_checked`](Self::new_checked) guarantees the 20-byte fixed header is present;
/// accessors of fixed fields then cannot fail. It does not check the version, IHL or total
/// length against the buffer; [`parse`](crate::parse) does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Header<T> {
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

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// IP version (4 for a well-formed header).
    pub fn version(&self) -> u8 {
        self.byte(field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(field::VER_IHL) & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.byte(field::DSCP_ECN)
    }

    /// Total length of the datagram in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    fn flg_off(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The "don't fragment" flag.
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.byte(field::TTL)
    }

    /// Protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        self.byte(field::PROTOCOL)
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// Whether the stored checksum matches the header. `false` if the IHL is below 5 or
    /// points past the buffer.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        match self.buffer.as_ref().get(..hl) {
            Some(h) if hl >= field::HEADER_LEN => checksum::ones_complement_sum(h) == 0xffff,
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Header<T> {
    /// Sets version 4 and the header length in bytes (rounded down to 32-bit words; values
    /// are clamped to the 4-bit IHL field).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = (header_len / 4).min(15) as u8;
        write_bytes(self.buffer.as_mut(), field::VER_IHL, &[0x40 | ihl]);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::DSCP_ECN, &[value]);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    /// Sets the flags and fragment offset word as a whole (see [`FLAG_DF`], [`FLAG_MF`]).
    pub fn set_flags_and_frag_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, value);
    }

    /// Sets the time to live (does not update the checksum).
    pub fn set_ttl(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::TTL, &[value]);
    }

    /// Sets the protocol number.
    pub fn set_protocol(&mut self, value: u8) {
        write_bytes(self.buffer.as_mut(), field::PROTOCOL, &[value]);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address (does not update any checksum).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::SRC_ADDR.start, &addr.octets());
    }

    /// Sets the destination address (does not update any checksum).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::DST_ADDR.start, &addr.octets());
    }

    /// Computes the header checksum over [`header_len`](Self::header_len) bytes and stores
    /// it. Does nothing if the IHL is below 5 or points past the buffer.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        if hl < field::HEADER_LEN {
            return;
        }
        if let Some(h) = self.buffer.as_ref().get(..hl) {
            let c = checksum::ipv4_header_checksum(h);
            self.set_checksum(c);
        }
    }
}

/// Rewrites the source and/or destination address of the IPv4 header at `l3` in `frame`,
/// updating the header checksum incrementally (RFC 1624) and nothing else: for what carries
/// no TCP/UDP header of its own (a later fragment, an ICMP message), or whose L4 checksum the
/// caller keeps itself.
///
/// # Errors
///
/// [`RewriteError::Mismatch`](crate::RewriteError::Mismatch) if the frame does not hold an
/// IPv4 header at `l3`; the frame is untouched then.
pub fn rewrite_addresses(
    frame: &mut [u8],
    l3: usize,
    new_src: Option<Ipv4Addr>,
    new_dst: Option<Ipv4Addr>,
) -> Result<(), crate::RewriteError> {
    let fits = l3
        .checked_add(field::HEADER_LEN)
        .is_some_and(|end| end <= frame.len());
    if !fits || frame.get(l3).is_none_or(|b| b >> 4 != 4) {
        return Err(crate::RewriteError::Mismatch);
    }
    let csum_at = l3 + field::CHECKSUM.start;
    for (at, new) in [
        (field::SRC_ADDR.start, new_src),
        (field::DST_ADDR.start, new_dst),
    ] {
        let Some(new) = new else { continue };
        let (old, new) = (read_u32(frame, l3 + at), u32::from(new));
        let c = read_u16(frame, csum_at);
        write_u16(frame, csum_at, checksum::update_u32(c, old, new));
        crate::write_u32(frame, l3 + at, new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, IPPROTO_ICMP, parse};
    use std::net::IpAddr;

    // 192.0.2.1 -> 198.51.100.2, ICMP, TTL 64, DF, id 0x1234, 4 bytes of payload.
    static HEADER_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, // v4, ihl 5, len 24
        0x12, 0x34, 0x40, 0x00, // id, DF
        0x40, 0x01, 0x00, 0x00, // ttl 64, ICMP, checksum (filled in below)
        0xc0, 0x00, 0x02, 0x01, // src
        0xc6, 0x33, 0x64, 0x02, // dst
        0x08, 0x00, 0xf7, 0xff, // payload (an ICMP echo request header stub)
    ];

    fn header_bytes() -> [u8; 24] {
        let mut b = HEADER_BYTES;
        let c = checksum::ipv4_header_checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn checksum_known_value() {
        // Independently computed: sum of the header words with the checksum zeroed.
        let words: u32 = HEADER_BYTES[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (words & 0xffff) + (words >> 16);
        let expected = !((folded & 0xffff) + (folded >> 16)) as u16;
        assert_eq!(
            checksum::ipv4_header_checksum(&HEADER_BYTES[..20]),
            expected
        );
    }

    #[test]
    fn test_deconstruct() {
        let b = header_bytes();
        let h = Ipv4Header::new_checked(&b[..]).unwrap();
        assert_eq!(h.version(), 4);
        assert_eq!(h.header_len(), 20);
        assert_eq!(h.dscp_ecn(), 0);
        assert_eq!(h.total_len(), 24);
        assert_eq!(h.ident(), 0x1234);
        assert!(h.dont_frag());
        assert!(!h.more_frags());
        assert_eq!(h.frag_offset(), 0);
        assert!(!h.is_fragment());
        assert_eq!(h.ttl(), 64);
        assert_eq!(h.protocol(), IPPROTO_ICMP);
        assert_eq!(h.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(h.dst_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert!(h.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut b = [0u8; 24];
        b[20..].copy_from_slice(&HEADER_BYTES[20..]);
        let mut h = Ipv4Header::new_checked(&mut b[..]).unwrap();
        h.set_version_and_header_len(20);
        h.set_dscp_ecn(0);
        h.set_total_len(24);
        h.set_ident(0x1234);
        h.set_flags_and_frag_offset(FLAG_DF);
        h.set_ttl(64);
        h.set_protocol(IPPROTO_ICMP);
        h.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        h.set_dst_addr(Ipv4Addr::new(198, 51, 100, 2));
        h.fill_checksum();
        assert_eq!(b, header_bytes());
    }

    #[test]
    fn test_check_len() {
        assert_eq!(
            Ipv4Header::new_checked(&HEADER_BYTES[..19]),
            Err(Malformed::Truncated)
        );
        let mut bad_ihl = header_bytes();
        bad_ihl[0] = 0x4f; // 60 bytes of header in a 24-byte buffer
        assert!(
            !Ipv4Header::new_checked(&bad_ihl[..])
                .unwrap()
                .verify_checksum()
        );
    }

    fn in_frame(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn test_parse() {
        let f = in_frame(&header_bytes());
        assert_eq!(
            parse(&f),
            Ok(Frame::IpOther {
                proto: IPPROTO_ICMP,
                src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                dst_ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            })
        );
    }

    #[test]
    fn test_malformed() {
        let good = header_bytes();
        type Mangle = fn(&mut Vec<u8>);
        let cases: [(Mangle, Malformed); 7] = [
            (|f| f.truncate(14 + 19), Malformed::Truncated),
            (|f| f[14] = 0x65, Malformed::BadIpVersion),
            (|f| f[14] = 0x44, Malformed::BadIhl),
            (|f| f[14] = 0x47, Malformed::BadIhl), // 28 bytes > 24 available
            (|f| f[17] = 19, Malformed::BadTotalLength), // < header
            (|f| f[17] = 25, Malformed::BadTotalLength), // > frame
            (|f| f.truncate(14 + 23), Malformed::BadTotalLength),
        ];
        for (i, (mangle, want)) in cases.into_iter().enumerate() {
            let mut f = in_frame(&good);
            mangle(&mut f);
            assert_eq!(parse(&f), Err(want), "case {i}");
        }
        // Fragments of other protocols are located, not refused (see fragment.rs).
        let frags: [Mangle; 3] = [|f| f[20] = 0x20, |f| f[21] = 0x01, |f| f[20] = 0x5f];
        for mangle in frags {
            let mut f = in_frame(&good);
            mangle(&mut f);
            assert!(matches!(parse(&f), Ok(Frame::Fragment(fr)) if fr.first.is_none()));
        }
    }
}
