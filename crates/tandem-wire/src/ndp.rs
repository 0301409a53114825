//! Neighbour discovery (RFC 4861): neighbour solicitations and advertisements, the IPv6
//! twin of ARP. Parsed by [`parse`](crate::parse) into [`Frame::Ndp`](crate::Frame::Ndp);
//! built by [`neighbor_solicitation`], [`neighbor_advertisement`] and
//! [`unsolicited_advertisement`].
//!
//! ```text
//!  ICMPv6:  0     1      2          4             8        24
//!           | type | code | checksum | flags/rsvd | target | options (type, len in 8 bytes, ...)
//! ```
//!
//! Unlike forwarded packets, NDP messages are consumed, so they are checked the way a host
//! checks them (RFC 4861 §7.1): hop limit 255, code 0, at least 24 bytes, a correct ICMPv6
//! checksum, no option of length 0. Anything else is [`Malformed::BadNdp`].

use std::net::Ipv6Addr;

use crate::ethernet::{self, ethertype};
use crate::ipv6::{self, Ipv6Header, multicast_mac, solicited_node};
use crate::{Malformed, checksum, read_mac};

/// IP protocol (next header) number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 type of a neighbour solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Option type: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;
/// Advertisement flag: the sender is a router.
pub const FLAG_ROUTER: u8 = 0x80;
/// Advertisement flag: an answer to a solicitation.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Advertisement flag: replace a cached link-layer address.
pub const FLAG_OVERRIDE: u8 = 0x20;
/// The hop limit of every NDP message.
pub const HOP_LIMIT: u8 = 255;
/// Length of an NS or NA without options.
pub const MESSAGE_LEN: usize = 24;
/// Length of a frame from this module's builders (one link-layer address option).
pub const NDP_FRAME_LEN: usize = ethernet::field::HEADER_LEN + ipv6::field::HEADER_LEN + 32;
/// All-nodes multicast address `ff02::1`.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A neighbour discovery operation Tandem understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpOp {
    /// Neighbour solicitation (type 135): who has `target`?
    Solicit,
    /// Neighbour advertisement (type 136): `target` is at this link-layer address.
    Advert,
}

/// A neighbour solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ndp {
    /// Solicitation or advertisement.
    pub op: NdpOp,
    /// Ethernet source address.
    pub src_mac: [u8; 6],
    /// Ethernet destination address.
    pub dst_mac: [u8; 6],
    /// IPv6 source address (`::` in duplicate address detection).
    pub src_ip: Ipv6Addr,
    /// IPv6 destination address.
    pub dst_ip: Ipv6Addr,
    /// The target address.
    pub target: Ipv6Addr,
    /// The link-layer address option: the source's in a solicitation, the target's in an
    /// advertisement; `None` when absent.
    pub link_addr: Option<[u8; 6]>,
    /// Advertisement flags ([`FLAG_ROUTER`], [`FLAG_SOLICITED`], [`FLAG_OVERRIDE`]); 0 in a
    /// solicitation.
    pub flags: u8,
}

impl Ndp {
    /// Whether this is duplicate address detection (a solicitation from `::`).
    pub fn is_dad(&self) -> bool {
        self.op == NdpOp::Solicit && self.src_ip.is_unspecified()
    }
}

/// Classifies an ICMPv6 message: `Ok(Some(..))` for an NS or NA, `Ok(None)` for another
/// ICMPv6 type. `msg` is the message bounded by the IPv6 payload length.
pub(crate) fn parse_ndp(
    msg: &[u8],
    hop_limit: u8,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    macs: ([u8; 6], [u8; 6]),
) -> Result<Option<Ndp>, Malformed> {
    let op = match msg.first() {
        Some(&TYPE_NEIGHBOR_SOLICIT) => NdpOp::Solicit,
        Some(&TYPE_NEIGHBOR_ADVERT) => NdpOp::Advert,
        _ => return Ok(None),
    };
    if hop_limit != HOP_LIMIT || msg.len() < MESSAGE_LEN || msg.get(1) != Some(&0) {
        return Err(Malformed::BadNdp);
    }
    if icmpv6_sum(src_ip, dst_ip, msg) != 0xffff {
        return Err(Malformed::BadNdp);
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&msg[8..24]);
    let want = match op {
        NdpOp::Solicit => OPT_SOURCE_LLADDR,
        NdpOp::Advert => OPT_TARGET_LLADDR,
    };
    let mut link_addr = None;
    let mut at = MESSAGE_LEN;
    while at < msg.len() {
        let (Some(&t), Some(&len)) = (msg.get(at), msg.get(at + 1)) else {
            return Err(Malformed::BadNdp);
        };
        let olen = usize::from(len) * 8;
        if olen == 0 || at + olen > msg.len() {
            return Err(Malformed::BadNdp);
        }
        if t == want && olen == 8 {
            link_addr = Some(read_mac(msg, at + 2));
        }
        at += olen;
    }
    Ok(Some(Ndp {
        op,
        src_mac: macs.0,
        dst_mac: macs.1,
        src_ip,
        dst_ip,
        target: Ipv6Addr::from(target),
        link_addr,
        flags: if op == NdpOp::Advert { msg[4] } else { 0 },
    }))
}

/// The one's-complement sum of an ICMPv6 message and its pseudo header (0xffff when the
/// stored checksum is right).
fn icmpv6_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let pseudo = checksum::pseudo_header_sum_ipv6(src, dst, IPPROTO_ICMPV6, msg.len() as u32);
    checksum::combine(pseudo, checksum::ones_complement_sum(msg))
}

#[allow(clippy::too_many_arguments)]
fn ndp_frame(
    eth_dst: [u8; 6],
    our_mac: [u8; 6],
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    op: NdpOp,
    flags: u8,
    target: Ipv6Addr,
) -> Vec<u8> {
    const L3: usize = ethernet::field::HEADER_LEN;
    const L4: usize = L3 + ipv6::field::HEADER_LEN;
    let mut buf = vec![0u8; NDP_FRAME_LEN];
    crate::build::eth_header(&mut buf, eth_dst, our_mac, ethertype::IPV6);
    if let Ok(mut h) = Ipv6Header::new_checked(&mut buf[L3..L4]) {
        h.set_version();
        h.set_payload_len((NDP_FRAME_LEN - L4) as u16);
        h.set_next_header(IPPROTO_ICMPV6);
        h.set_hop_limit(HOP_LIMIT);
        h.set_src_addr(src_ip);
        h.set_dst_addr(dst_ip);
    }
    let msg = &mut buf[L4..];
    let (kind, opt) = match op {
        NdpOp::Solicit => (TYPE_NEIGHBOR_SOLICIT, OPT_SOURCE_LLADDR),
        NdpOp::Advert => (TYPE_NEIGHBOR_ADVERT, OPT_TARGET_LLADDR),
    };
    msg[0] = kind;
    msg[4] = flags;
    msg[8..24].copy_from_slice(&target.octets());
    msg[24] = opt;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&our_mac);
    let c = !icmpv6_sum(src_ip, dst_ip, msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    buf
}

/// A neighbour solicitation for `target` from `our_mac`/`our_ip`, to `target`'s
/// solicited-node multicast address, with our source link-layer address option.
/// [`NDP_FRAME_LEN`] bytes.
pub fn neighbor_solicitation(our_mac: [u8; 6], our_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    ndp_frame(
        multicast_mac(dst),
        our_mac,
        our_ip,
        dst,
        NdpOp::Solicit,
        0,
        target,
    )
}

/// The advertisement answering solicitation `ns` for `target` (an address we own): solicited
/// and override flags, our target link-layer address option, unicast to the solicitor; to
/// all-nodes without the solicited flag when the solicitation is duplicate address detection
/// (RFC 4861 §7.2.4).
pub fn neighbor_advertisement(our_mac: [u8; 6], ns: &Ndp) -> Vec<u8> {
    if ns.is_dad() {
        return unsolicited_advertisement(our_mac, ns.target);
    }
    let to_mac = ns.link_addr.unwrap_or(ns.src_mac);
    ndp_frame(
        to_mac,
        our_mac,
        ns.target,
        ns.src_ip,
        NdpOp::Advert,
        FLAG_SOLICITED | FLAG_OVERRIDE,
        ns.target,
    )
}

/// An unsolicited advertisement (override flag, to all-nodes `ff02::1`) announcing that `ip`
/// is at `our_mac`: the IPv6 twin of a gratuitous ARP, sent after a takeover.
pub fn unsolicited_advertisement(our_mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    ndp_frame(
        multicast_mac(ALL_NODES),
        our_mac,
        ip,
        ALL_NODES,
        NdpOp::Advert,
        FLAG_OVERRIDE,
        ip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, parse};

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn solicitation_round_trips() {
        let f = neighbor_solicitation(MAC, ip("2001:db8::1"), ip("2001:db8::12:3456"));
        assert_eq!(f.len(), NDP_FRAME_LEN);
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        let Ok(Frame::Ndp(n)) = parse(&f) else {
            panic!("{:?}", parse(&f))
        };
        assert_eq!(n.op, NdpOp::Solicit);
        assert_eq!(n.src_ip, ip("2001:db8::1"));
        assert_eq!(n.dst_ip, ip("ff02::1:ff12:3456"));
        assert_eq!(n.target, ip("2001:db8::12:3456"));
        assert_eq!(n.link_addr, Some(MAC));
        assert!(!n.is_dad());
    }

    #[test]
    fn advertisement_answers_the_solicitor() {
        let peer = [0x02, 0, 0, 0, 0, 0x99];
        let ns = neighbor_solicitation(peer, ip("2001:db8::99"), ip("2001:db8::100"));
        let Ok(Frame::Ndp(ns)) = parse(&ns) else {
            panic!()
        };
        let na = neighbor_advertisement(MAC, &ns);
        assert_eq!(&na[..6], &peer);
        let Ok(Frame::Ndp(n)) = parse(&na) else {
            panic!()
        };
        assert_eq!(n.op, NdpOp::Advert);
        assert_eq!(
            (n.src_ip, n.dst_ip),
            (ip("2001:db8::100"), ip("2001:db8::99"))
        );
        assert_eq!(n.target, ip("2001:db8::100"));
        assert_eq!(n.link_addr, Some(MAC));
        assert_eq!(n.flags, FLAG_SOLICITED | FLAG_OVERRIDE);

        let u = unsolicited_advertisement(MAC, ip("2001:db8::100"));
        assert_eq!(&u[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let Ok(Frame::Ndp(n)) = parse(&u) else {
            panic!()
        };
        assert_eq!(n.dst_ip, ALL_NODES);
        assert_eq!(n.flags, FLAG_OVERRIDE);
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = neighbor_solicitation(MAC, ip("2001:db8::1"), ip("2001:db8::2"));
        // A wrong checksum.
        let mut f = good.clone();
        f[14 + 40 + 2] ^= 1;
        assert_eq!(parse(&f), Err(Malformed::BadNdp));
        // A hop limit that is not 255: the message crossed a router.
        let mut f = good.clone();
        f[14 + 7] = 64;
        assert_eq!(parse(&f), Err(Malformed::BadNdp));
        // An option of length 0 (checksum fixed up so only the option is wrong).
        let mut f = good.clone();
        f[14 + 40 + 25] = 0;
        let c = u16::from_be_bytes([f[56], f[57]]);
        f[56..58].copy_from_slice(&checksum::update_u16(c, 0x0101, 0x0100).to_be_bytes());
        assert_eq!(parse(&f), Err(Malformed::BadNdp));
        // Cut short: the payload length claims more than the frame has.
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(Malformed::BadTotalLength)
        );
    }
}
