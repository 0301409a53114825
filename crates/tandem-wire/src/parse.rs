//! Frame classification: [`parse`] and the types it returns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::arp::{self, ArpPacket};
use crate::ethernet::{self, EthernetFrame, ethertype};
use crate::ipv4::{self, Ipv4Header};
use crate::ipv6::{self, Ipv6Header};
use crate::ndp::{self, Ndp};
use crate::tcp::{self, TcpHeader};
use crate::udp::{self, UdpHeader};
use crate::{IPPROTO_TCP, IPPROTO_UDP, read_u32, rewrite::RewriteError};

/// Why a frame was dropped as malformed. Each reason has a stable [`index`](Self::index) and
/// [`name`](Self::name) so callers can keep one counter per reason:
///
/// ```
/// use tandem_wire::Malformed;
/// let mut drops = [0u64; Malformed::COUNT];
/// drops[Malformed::Fragment.index()] += 1;
/// for m in Malformed::ALL {
///     println!("{} {}", m.name(), drops[m.index()]);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// The frame ends before a fixed-size header it announces (Ethernet, 802.1Q tag, IPv4
    /// fixed header, ARP message).
    Truncated,
    /// The IP header's version is not 4 (6) in a frame whose ethertype says IPv4 (IPv6).
    BadIpVersion,
    /// The IPv4 IHL is below 5 or points past the end of the frame.
    BadIhl,
    /// The IPv4 total length is shorter than the header or longer than the frame, or the
    /// IPv6 payload length runs past the frame.
    BadTotalLength,
    /// An IPv4 fragment (MF set or a non-zero offset), or an IPv6 packet with a fragment
    /// header. Tandem does not reassemble.
    Fragment,
    /// A TCP segment shorter than 20 bytes, or whose data offset is below 5 or points past
    /// the end of the IP packet.
    BadTcpHeader,
    /// A UDP datagram shorter than 8 bytes, or whose length field is below 8 or longer than
    /// the IP payload.
    BadUdpLength,
    /// An ARP message that is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4), or
    /// whose operation is neither request (1) nor reply (2).
    BadArp,
    /// An IPv6 extension header (hop-by-hop, routing, destination options) that runs past
    /// the packet, or a chain of more than [`ipv6::MAX_EXTENSION_HEADERS`] of them.
    BadExtensionHeader,
    /// A neighbour solicitation or advertisement that a host would discard (RFC 4861 §7.1:
    /// hop limit not 255, code not 0, shorter than 24 bytes, a bad ICMPv6 checksum, an option
    /// of length 0).
    BadNdp,
}

impl Malformed {
    /// Number of reasons.
    pub const COUNT: usize = 10;

    /// Every reason, in [`index`](Self::index) order.
    pub const ALL: [Malformed; Self::COUNT] = [
        Malformed::Truncated,
        Malformed::BadIpVersion,
        Malformed::BadIhl,
        Malformed::BadTotalLength,
        Malformed::Fragment,
        Malformed::BadTcpHeader,
        Malformed::BadUdpLength,
        Malformed::BadArp,
        Malformed::BadExtensionHeader,
        Malformed::BadNdp,
    ];

    /// Position of this reason in [`ALL`](Self::ALL), below [`COUNT`](Self::COUNT).
    pub const fn index(&self) -> usize {
        *self as usize
    }

    /// A stable snake_case name, suitable for metrics and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Malformed::Truncated => "truncated",
            Malformed::BadIpVersion => "bad_ip_version",
            Malformed::BadIhl => "bad_ihl",
            Malformed::BadTotalLength => "bad_total_length",
            Malformed::Fragment => "fragment",
            Malformed::BadTcpHeader => "bad_tcp_header",
            Malformed::BadUdpLength => "bad_udp_length",
            Malformed::BadArp => "bad_arp",
            Malformed::BadExtensionHeader => "bad_extension_header",
            Malformed::BadNdp => "bad_ndp",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Malformed {}

/// An ARP operation Tandem understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    /// Operation 1.
    Request,
    /// Operation 2.
    Reply,
}

impl ArpOp {
    /// The operation code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            ArpOp::Request => arp::OPER_REQUEST,
            ArpOp::Reply => arp::OPER_REPLY,
        }
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (usually zero in a request).
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Whether this is a gratuitous ARP (an announcement: sender and target address equal).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// A TCP or UDP packet over IP, as located in a frame by [`parse`].
///
/// Offsets are from the start of the frame and satisfy
/// `l3 + 20 <= l4 < payload <= end <= l3 + ip_total_len <= frame.len()` (`l3 + 40 <= l4`
/// for IPv6, where `l4` is after any extension headers). The `Packet` is a
/// snapshot: rewriting the frame does not update it (but the rewrite functions only use its
/// offsets, so it stays valid for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Offset of the IP header (14, or 18 behind an 802.1Q tag).
    pub l3: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// Offset of the TCP/UDP payload (after TCP options / the UDP header).
    pub payload: usize,
    /// Offset one past the last byte of the TCP/UDP data: `l3 + ip_total_len` for TCP,
    /// `l4 + UDP length` for UDP. Bytes from here on are not part of the datagram.
    pub end: usize,
    /// IP protocol: [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u8,
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The TCP flags byte (see [`tcp::flags`]); 0 for UDP.
    pub tcp_flags: u8,
    /// The IP total length (header and payload; excludes Ethernet padding). For IPv6, the
    /// fixed header's 40 bytes plus the payload length.
    pub ip_total_len: u16,
}

impl Packet {
    /// Whether this is TCP.
    pub fn is_tcp(&self) -> bool {
        self.proto == IPPROTO_TCP
    }

    /// Whether this is UDP.
    pub fn is_udp(&self) -> bool {
        self.proto == IPPROTO_UDP
    }

    /// A connection-opening TCP segment: SYN set and ACK clear.
    pub fn is_syn(&self) -> bool {
        self.is_tcp() && self.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
    }

    /// A TCP segment with FIN set.
    pub fn is_fin(&self) -> bool {
        self.is_tcp() && self.tcp_flags & tcp::flags::FIN != 0
    }

    /// A TCP segment with RST set.
    pub fn is_rst(&self) -> bool {
        self.is_tcp() && self.tcp_flags & tcp::flags::RST != 0
    }

    /// A TCP segment with ACK set.
    pub fn is_ack(&self) -> bool {
        self.is_tcp() && self.tcp_flags & tcp::flags::ACK != 0
    }

    /// Length of the TCP/UDP payload in bytes (0 for a bare header).
    pub fn payload_len(&self) -> usize {
        self.end.saturating_sub(self.payload)
    }

    /// Source address and port.
    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(self.src_ip, self.src_port)
    }

    /// Destination address and port.
    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(self.dst_ip, self.dst_port)
    }

    /// The TCP sequence and acknowledgment numbers, read from `frame` (which must be the
    /// frame this packet was parsed from). `None` for UDP or if the packet does not fit the
    /// frame.
    pub fn tcp_seq_ack(&self, frame: &[u8]) -> Option<(u32, u32)> {
        if !self.is_tcp() || self.check(frame).is_err() {
            return None;
        }
        Some((
            read_u32(frame, self.l4 + tcp::field::SEQ_NUM.start),
            read_u32(frame, self.l4 + tcp::field::ACK_NUM.start),
        ))
    }

    /// Offset of the L4 checksum field in the frame.
    pub(crate) fn l4_checksum_at(&self) -> usize {
        self.l4
            + if self.is_tcp() {
                tcp::field::CHECKSUM.start
            } else {
                udp::field::CHECKSUM.start
            }
    }

    /// Checks that this packet's offsets describe an IPv4 or IPv6 TCP/UDP packet inside
    /// `frame`, so that every fixed field is in range. Never panics, whatever the field values.
    pub(crate) fn check(&self, frame: &[u8]) -> Result<(), RewriteError> {
        let min_l4 = match self.proto {
            IPPROTO_TCP => tcp::field::HEADER_LEN,
            IPPROTO_UDP => udp::field::HEADER_LEN,
            _ => return Err(RewriteError::Mismatch),
        };
        if self.src_ip.is_ipv4() != self.dst_ip.is_ipv4() {
            return Err(RewriteError::AddressFamily);
        }
        let ip_header = if self.src_ip.is_ipv4() {
            ipv4::field::HEADER_LEN
        } else {
            ipv6::field::HEADER_LEN
        };
        let ip_end = self.l3.checked_add(usize::from(self.ip_total_len));
        let ok = self.l3 >= ethernet::field::HEADER_LEN
            && self.l3.checked_add(ip_header).is_some_and(|x| x <= self.l4)
            && self.l4.checked_add(min_l4).is_some_and(|x| x <= self.end)
            && ip_end.is_some_and(|x| self.end <= x && x <= frame.len());
        if ok {
            Ok(())
        } else {
            Err(RewriteError::Mismatch)
        }
    }
}

/// What an Ethernet frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame {
    /// An Ethernet/IPv4 ARP message.
    Arp(Arp),
    /// A TCP or UDP packet over IPv4 or IPv6 (not a fragment).
    Ip(Packet),
    /// An IPv6 neighbour solicitation or advertisement.
    Ndp(Ndp),
    /// An IP packet of another protocol (ICMP, ICMPv6 other than NS/NA, ...). Its header
    /// passed the same checks as for [`Frame::Ip`]; the payload was not looked at. For IPv6
    /// `proto` is the protocol after the extension headers.
    IpOther {
        /// IP protocol number.
        proto: u8,
        /// Source address.
        src_ip: IpAddr,
        /// Destination address.
        dst_ip: IpAddr,
    },
    /// Any other ethertype, including 802.3 length fields (< 0x0600), a
    /// second VLAN tag (0x8100 inside 0x8100) and 802.1ad (0x88a8). The value is the
    /// ethertype after at most one 802.1Q tag.
    Other(u16),
}

/// Classifies an Ethernet II frame, looking through at most one 802.1Q tag.
///
/// Costs a handful of bounds checks and byte reads; allocates nothing; never panics. Does not
/// verify checksums (see the crate docs). Trailing bytes beyond the IP total length (Ethernet
/// padding) are ignored: L4 lengths come from the IP header, never from the frame length.
///
/// # Errors
///
/// A [`Malformed`] reason for frames whose headers contradict each other or the frame
/// length, for IP fragments, for ARP that is not Ethernet/IPv4 request/reply and for
/// neighbour discovery messages a host would discard.
pub fn parse(frame: &[u8]) -> Result<Frame, Malformed> {
    let eth = EthernetFrame::new_checked(frame)?;
    let (l3, ethertype) = match eth.vlan() {
        Some((_tci, inner)) => (ethernet::field::VLAN_HEADER_LEN, inner),
        None if eth.ethertype() == ethertype::VLAN => return Err(Malformed::Truncated),
        None => (ethernet::field::HEADER_LEN, eth.ethertype()),
    };
    let Some(rest) = frame.get(l3..) else {
        return Err(Malformed::Truncated);
    };
    match ethertype {
        ethertype::IPV4 => parse_ipv4(rest, l3, eth.src_mac(), eth.dst_mac()),
        ethertype::IPV6 => parse_ipv6(rest, l3, eth.src_mac(), eth.dst_mac()),
        ethertype::ARP => parse_arp(rest).map(Frame::Arp),
        other => Ok(Frame::Other(other)),
    }
}

fn parse_arp(msg: &[u8]) -> Result<Arp, Malformed> {
    let a = ArpPacket::new_checked(msg)?;
    if !a.is_ethernet_ipv4() {
        return Err(Malformed::BadArp);
    }
    let op = match a.oper() {
        arp::OPER_REQUEST => ArpOp::Request,
        arp::OPER_REPLY => ArpOp::Reply,
        _ => return Err(Malformed::BadArp),
    };
    Ok(Arp {
        op,
        sender_mac: a.sender_mac(),
        sender_ip: a.sender_ip(),
        target_mac: a.target_mac(),
        target_ip: a.target_ip(),
    })
}

/// `ip` is the frame from the IP header on; `l3` its offset in the frame.
fn parse_ipv4(
    ip: &[u8],
    l3: usize,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Result<Frame, Malformed> {
    let h = Ipv4Header::new_checked(ip)?;
    if h.version() != 4 {
        return Err(Malformed::BadIpVersion);
    }
    let hl = h.header_len();
    if hl < ipv4::field::HEADER_LEN || hl > ip.len() {
        return Err(Malformed::BadIhl);
    }
    let total = usize::from(h.total_len());
    if total < hl || total > ip.len() {
        return Err(Malformed::BadTotalLength);
    }
    if h.is_fragment() {
        return Err(Malformed::Fragment);
    }
    let proto = h.protocol();
    let src_ip = IpAddr::V4(h.src_addr());
    let dst_ip = IpAddr::V4(h.dst_addr());
    // The L4 segment, bounded by the IP total length (not the frame: padding is not data).
    let Some(seg) = ip.get(hl..total) else {
        return Err(Malformed::BadTotalLength); // unreachable: hl <= total <= ip.len()
    };
    let ip_packet = IpPacket {
        l3,
        l4: l3 + hl,
        proto,
        src_ip,
        dst_ip,
        ip_total_len: h.total_len(),
        macs: (src_mac, dst_mac),
    };
    transport(seg, &ip_packet)
}

/// `ip` is the frame from the IPv6 header on; `l3` its offset in the frame.
fn parse_ipv6(
    ip: &[u8],
    l3: usize,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Result<Frame, Malformed> {
    let h = Ipv6Header::new_checked(ip)?;
    if h.version() != 6 {
        return Err(Malformed::BadIpVersion);
    }
    let total = ipv6::field::HEADER_LEN + usize::from(h.payload_len());
    // A payload length of 0 with a hop-by-hop header means a jumbogram: larger than any frame.
    let Some(packet) = ip.get(..total) else {
        return Err(Malformed::BadTotalLength);
    };
    let Ok(ip_total_len) = u16::try_from(total) else {
        return Err(Malformed::BadTotalLength);
    };
    let (proto, hl) = ipv6::upper_layer(packet)?;
    let (src, dst) = (h.src_addr(), h.dst_addr());
    let Some(seg) = packet.get(hl..) else {
        return Err(Malformed::BadExtensionHeader); // unreachable: upper_layer checks
    };
    if proto == ndp::IPPROTO_ICMPV6
        && let Some(n) = ndp::parse_ndp(seg, h.hop_limit(), src, dst, (src_mac, dst_mac))?
    {
        return Ok(Frame::Ndp(n));
    }
    let ip_packet = IpPacket {
        l3,
        l4: l3 + hl,
        proto,
        src_ip: IpAddr::V6(src),
        dst_ip: IpAddr::V6(dst),
        ip_total_len,
        macs: (src_mac, dst_mac),
    };
    transport(seg, &ip_packet)
}

/// What the IP layer found, for [`transport`].
struct IpPacket {
    l3: usize,
    l4: usize,
    proto: u8,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    ip_total_len: u16,
    macs: ([u8; 6], [u8; 6]),
}

/// The TCP/UDP header of `seg` (the L4 data, bounded by the IP length), or
/// [`Frame::IpOther`] for another protocol.
fn transport(seg: &[u8], ip: &IpPacket) -> Result<Frame, Malformed> {
    let l4 = ip.l4;
    let (src_port, dst_port, tcp_flags, payload, end) = match ip.proto {
        IPPROTO_TCP => {
            let t = TcpHeader::new_checked(seg).map_err(|_| Malformed::BadTcpHeader)?;
            let doff = t.header_len();
            if doff < tcp::field::HEADER_LEN || doff > seg.len() {
                return Err(Malformed::BadTcpHeader);
            }
            (
                t.src_port(),
                t.dst_port(),
                t.flags(),
                l4 + doff,
                l4 + seg.len(),
            )
        }
        IPPROTO_UDP => {
            let u = UdpHeader::new_checked(seg).map_err(|_| Malformed::BadUdpLength)?;
            let len = usize::from(u.len());
            if len < udp::field::HEADER_LEN || len > seg.len() {
                return Err(Malformed::BadUdpLength);
            }
            (
                u.src_port(),
                u.dst_port(),
                0,
                l4 + udp::field::HEADER_LEN,
                l4 + len,
            )
        }
        proto => {
            return Ok(Frame::IpOther {
                proto,
                src_ip: ip.src_ip,
                dst_ip: ip.dst_ip,
            });
        }
    };
    Ok(Frame::Ip(Packet {
        src_mac: ip.macs.0,
        dst_mac: ip.macs.1,
        l3: ip.l3,
        l4,
        payload,
        end,
        proto: ip.proto,
        src_ip: ip.src_ip,
        dst_ip: ip.dst_ip,
        src_port,
        dst_port,
        tcp_flags,
        ip_total_len: ip.ip_total_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_table_is_consistent() {
        for (i, m) in Malformed::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert!(!m.name().is_empty());
            assert_eq!(m.to_string(), m.name());
        }
        let mut names: Vec<_> = Malformed::ALL.iter().map(Malformed::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Malformed::COUNT);
    }

    #[test]
    fn short_frames() {
        for n in 0..14 {
            assert_eq!(parse(&[0u8; 14][..n]), Err(Malformed::Truncated));
        }
        // An IPv4 ethertype with nothing after it.
        let mut f = [0u8; 14];
        f[12] = 0x08;
        assert_eq!(parse(&f), Err(Malformed::Truncated));
        // ARP ethertype with nothing after it.
        f[13] = 0x06;
        assert_eq!(parse(&f), Err(Malformed::Truncated));
        // 802.1Q tag cut short.
        let mut v = [0u8; 17];
        v[12] = 0x81;
        assert_eq!(parse(&v), Err(Malformed::Truncated));
    }

    #[test]
    fn other_ethertypes() {
        let mut f = [0u8; 60];
        for et in [0x88ccu16, 0x0042, 0x88a8] {
            f[12..14].copy_from_slice(&et.to_be_bytes());
            assert_eq!(parse(&f), Ok(Frame::Other(et)));
        }
    }
}
