//! A byte reader that never panics, and the small writers the encodings share.
//!
//! In the style of rustls' `Codec`/`Reader`: every read returns `None` when the input is too
//! short instead of indexing past the end, and a sub-reader confines a length-prefixed element
//! so that it can neither read into its neighbour nor leave bytes unread unnoticed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A cursor over received bytes. No method panics, whatever the input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, or `None` (reading nothing) if fewer remain.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// A reader over the next `n` bytes (which this reader skips), or `None` if fewer remain.
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }

    /// Skips everything that is left.
    pub fn skip_rest(&mut self) {
        self.pos = self.buf.len();
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    /// A 24-bit big-endian unsigned integer.
    pub fn u24(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    /// An address of the record's family: 4 bytes, or 16 bytes when `v6` (an IPv4-mapped
    /// IPv6 address reads back as the IPv4 address).
    pub fn addr(&mut self, v6: bool) -> Option<IpAddr> {
        if v6 {
            Some(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)).to_canonical())
        } else {
            Some(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)))
        }
    }
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes the low 24 bits of `v`, big-endian.
pub(crate) fn put_u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes an address in the record's family (IPv4 as IPv4-mapped when `v6`).
pub(crate) fn put_addr(out: &mut Vec<u8>, ip: IpAddr, v6: bool) {
    match (ip, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), _) => out.extend_from_slice(&a.octets()),
    }
}

/// Encoded size of one address in the record's family.
pub(crate) const fn addr_len(v6: bool) -> usize {
    if v6 { 16 } else { 4 }
}

/// True if `ip` needs the 16-byte family (an IPv4-mapped IPv6 address does not).
pub(crate) fn needs_v6(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V6(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None, "a short read takes nothing");
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.take(usize::MAX), None);
        assert_eq!(r.u8(), Some(3));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
        let mut r = Reader::new(&[0xab, 0xcd, 0xef, 9]);
        assert_eq!(r.u24(), Some(0xabcdef));
        let mut s = r.sub(1).unwrap();
        assert_eq!(s.u8(), Some(9));
        assert_eq!(s.u8(), None);
        assert!(r.sub(1).is_none());
    }

    #[test]
    fn addresses() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for (ip, fam) in [(v4, false), (v4, true), (v6, true)] {
            let mut out = Vec::new();
            put_addr(&mut out, ip, fam);
            assert_eq!(out.len(), addr_len(fam));
            assert_eq!(Reader::new(&out).addr(fam), Some(ip));
        }
        assert!(!needs_v6("::ffff:192.0.2.1".parse().unwrap()));
        assert!(needs_v6(v6));
    }
}
