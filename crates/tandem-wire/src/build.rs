//! Frames Tandem originates: ARP and TCP resets (IPv4 and IPv6). Neighbour discovery
//! messages are built in [`ndp`](crate::ndp).
//!
//! ARP builders return fixed 42-byte arrays (Ethernet header and an Ethernet/IPv4 ARP
//! message, unpadded: the NIC or kernel pads to the 60-byte minimum on transmit).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::arp::{self, ArpPacket};
use crate::ethernet::{self, BROADCAST, EthernetFrame, ethertype};
use crate::ipv4::{self, FLAG_DF, Ipv4Header};
use crate::ipv6::{self, Ipv6Header};
use crate::tcp::{self, TcpHeader, flags};
use crate::{IPPROTO_TCP, Packet, checksum};

/// Length of a frame from the ARP builders.
pub const ARP_FRAME_LEN: usize = ethernet::field::HEADER_LEN + arp::field::LEN;
/// Length of a frame from [`tcp_rst_ipv4`].
pub const TCP_RST_IPV4_LEN: usize =
    ethernet::field::HEADER_LEN + ipv4::field::HEADER_LEN + tcp::field::HEADER_LEN;
/// Length of a frame from [`tcp_rst_ipv6`].
pub const TCP_RST_IPV6_LEN: usize =
    ethernet::field::HEADER_LEN + ipv6::field::HEADER_LEN + tcp::field::HEADER_LEN;
/// TTL (hop limit) of the packets Tandem originates.
pub const DEFAULT_TTL: u8 = 64;

const L3: usize = ethernet::field::HEADER_LEN;
const L4: usize = L3 + ipv4::field::HEADER_LEN;

/// Writes the Ethernet header at the start of `frame` (nothing if it is shorter).
pub(crate) fn eth_header(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    if let Ok(mut eth) = EthernetFrame::new_checked(frame) {
        eth.set_dst_mac(dst);
        eth.set_src_mac(src);
        eth.set_ethertype(ethertype);
    }
}

fn arp_frame(
    eth_dst: [u8; 6],
    oper: u16,
    sender: ([u8; 6], Ipv4Addr),
    target: ([u8; 6], Ipv4Addr),
) -> [u8; ARP_FRAME_LEN] {
    let mut buf = [0u8; ARP_FRAME_LEN];
    let (head, body) = buf.split_at_mut(L3);
    eth_header(head, eth_dst, sender.0, ethertype::ARP);
    if let Ok(mut a) = ArpPacket::new_checked(body) {
        a.set_ethernet_ipv4();
        a.set_oper(oper);
        a.set_sender_mac(sender.0);
        a.set_sender_ip(sender.1);
        a.set_target_mac(target.0);
        a.set_target_ip(target.1);
    }
    buf
}

/// An ARP reply telling `to_mac`/`to_ip` that `our_ip` is at `our_mac`, unicast to `to_mac`.
pub fn arp_reply(
    our_mac: [u8; 6],
    our_ip: Ipv4Addr,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) -> [u8; ARP_FRAME_LEN] {
    arp_frame(to_mac, arp::OPER_REPLY, (our_mac, our_ip), (to_mac, to_ip))
}

/// A broadcast ARP request for `target_ip` from `our_mac`/`our_ip` (target MAC zero).
pub fn arp_request(our_mac: [u8; 6], our_ip: Ipv4Addr, target_ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        BROADCAST,
        arp::OPER_REQUEST,
        (our_mac, our_ip),
        ([0; 6], target_ip),
    )
}

/// A broadcast gratuitous ARP announcing that `ip` is at `our_mac`, sent after a takeover so
/// neighbours update their caches.
///
/// * Request form (`reply_form = false`, RFC 5227 "ARP announcement"): operation 1, sender
///   and target address both `ip`, target MAC zero.
/// * Reply form (`reply_form = true`, as `arping -A`): operation 2, sender and target address
///   both `ip`, target MAC `our_mac`.
///
/// Some neighbours only honour one form; senders commonly send both.
pub fn gratuitous_arp(our_mac: [u8; 6], ip: Ipv4Addr, reply_form: bool) -> [u8; ARP_FRAME_LEN] {
    if reply_form {
        arp_frame(BROADCAST, arp::OPER_REPLY, (our_mac, ip), (our_mac, ip))
    } else {
        arp_frame(BROADCAST, arp::OPER_REQUEST, (our_mac, ip), ([0; 6], ip))
    }
}

/// A TCP reset from `src` to `dst` with sequence number `seq`; with `ack = Some(n)` the ACK
/// flag is set and the acknowledgment number is `n`. IPv4 with DF, TTL [`DEFAULT_TTL`],
/// identification 0, window 0, no options, both checksums filled in;
/// [`TCP_RST_IPV4_LEN`] bytes. Which `seq`/`ack` to use follows RFC 9293 §3.10.7.1;
/// [`tcp_rst_reply_ipv4`] works them out from the offending segment.
pub fn tcp_rst_ipv4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    let mut buf = [0u8; TCP_RST_IPV4_LEN];
    let (head, rest) = buf.split_at_mut(L3);
    let (ip, seg) = rest.split_at_mut(L4 - L3);
    eth_header(head, dst_mac, src_mac, ethertype::IPV4);
    if let Ok(mut h) = Ipv4Header::new_checked(ip) {
        h.set_version_and_header_len(ipv4::field::HEADER_LEN);
        h.set_total_len((TCP_RST_IPV4_LEN - L3) as u16);
        h.set_flags_and_frag_offset(FLAG_DF);
        h.set_ttl(DEFAULT_TTL);
        h.set_protocol(IPPROTO_TCP);
        h.set_src_addr(*src.ip());
        h.set_dst_addr(*dst.ip());
        h.fill_checksum();
    }
    let pseudo = checksum::pseudo_header_sum_ipv4(
        *src.ip(),
        *dst.ip(),
        IPPROTO_TCP,
        tcp::field::HEADER_LEN as u16,
    );
    rst_segment(seg, (src.port(), dst.port()), seq, ack, pseudo);
    buf.to_vec()
}

/// Writes a reset's TCP header into `seg` with the checksum over `pseudo`.
fn rst_segment(seg: &mut [u8], ports: (u16, u16), seq: u32, ack: Option<u32>, pseudo: u16) {
    if let Ok(mut t) = TcpHeader::new_checked(&mut *seg) {
        t.set_src_port(ports.0);
        t.set_dst_port(ports.1);
        t.set_seq_number(seq);
        t.set_ack_number(ack.unwrap_or(0));
        t.set_header_len(tcp::field::HEADER_LEN);
        t.set_flags(if ack.is_some() {
            flags::RST | flags::ACK
        } else {
            flags::RST
        });
    }
    let c = !checksum::combine(pseudo, checksum::ones_complement_sum(seg));
    if let Ok(mut t) = TcpHeader::new_checked(seg) {
        t.set_checksum(c);
    }
}

/// [`tcp_rst_ipv4`] over IPv6: hop limit [`DEFAULT_TTL`], no extension headers;
/// [`TCP_RST_IPV6_LEN`] bytes.
pub fn tcp_rst_ipv6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV6,
    dst: SocketAddrV6,
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    const L4V6: usize = L3 + ipv6::field::HEADER_LEN;
    let mut buf = [0u8; TCP_RST_IPV6_LEN];
    let (head, rest) = buf.split_at_mut(L3);
    let (ip, seg) = rest.split_at_mut(L4V6 - L3);
    eth_header(head, dst_mac, src_mac, ethertype::IPV6);
    if let Ok(mut h) = Ipv6Header::new_checked(ip) {
        h.set_version();
        h.set_payload_len(tcp::field::HEADER_LEN as u16);
        h.set_next_header(IPPROTO_TCP);
        h.set_hop_limit(DEFAULT_TTL);
        h.set_src_addr(*src.ip());
        h.set_dst_addr(*dst.ip());
    }
    let pseudo = checksum::pseudo_header_sum_ipv6(
        *src.ip(),
        *dst.ip(),
        IPPROTO_TCP,
        tcp::field::HEADER_LEN as u32,
    );
    rst_segment(seg, (src.port(), dst.port()), seq, ack, pseudo);
    buf.to_vec()
}

/// A TCP reset from `src` to `dst` of either family ([`tcp_rst_ipv4`] or [`tcp_rst_ipv6`]);
/// `None` when the two addresses are not of one family.
pub fn tcp_rst(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
) -> Option<Vec<u8>> {
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            Some(tcp_rst_ipv4(src_mac, dst_mac, s, d, seq, ack))
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            Some(tcp_rst_ipv6(src_mac, dst_mac, s, d, seq, ack))
        }
        _ => None,
    }
}

/// The reset answering TCP segment `packet` (parsed from `frame`), per RFC 9293 §3.10.7.1:
/// if the segment has ACK, the reset's sequence number is the segment's acknowledgment
/// number; otherwise the reset has sequence number 0 and acknowledges everything the
/// segment occupied (sequence number + payload length + SYN + FIN). Addresses, ports and
/// MAC addresses are those of `packet`, swapped. IPv4 or IPv6, as the segment.
///
/// `None` if `packet` is not TCP, is itself a reset (never answer one), or does not fit
/// `frame`.
pub fn tcp_rst_reply(frame: &[u8], packet: &Packet) -> Option<Vec<u8>> {
    if packet.is_rst() {
        return None;
    }
    let (seq, ack) = packet.tcp_seq_ack(frame)?;
    let (rst_seq, rst_ack) = if packet.is_ack() {
        (ack, None)
    } else {
        let mut len = packet.payload_len() as u32;
        len += u32::from(packet.tcp_flags & flags::SYN != 0);
        len += u32::from(packet.tcp_flags & flags::FIN != 0);
        (0, Some(seq.wrapping_add(len)))
    };
    tcp_rst(
        packet.dst_mac,
        packet.src_mac,
        packet.dst(),
        packet.src(),
        rst_seq,
        rst_ack,
    )
}

/// [`tcp_rst_reply`] for IPv4 segments only (`None` for IPv6).
pub fn tcp_rst_reply_ipv4(frame: &[u8], packet: &Packet) -> Option<Vec<u8>> {
    match packet.src_ip {
        IpAddr::V4(_) => tcp_rst_reply(frame, packet),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arp, ArpOp, Frame, parse};

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    static GARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0x00, 0x02, 0x0a, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0a,
    ];

    #[test]
    fn gratuitous_forms() {
        assert_eq!(gratuitous_arp(OUR_MAC, OUR_IP, false), GARP_REQUEST);
        let reply = gratuitous_arp(OUR_MAC, OUR_IP, true);
        assert_eq!(&reply[..6], &BROADCAST);
        let Ok(Frame::Arp(a)) = parse(&reply) else {
            panic!()
        };
        assert_eq!(
            a,
            Arp {
                op: ArpOp::Reply,
                sender_mac: OUR_MAC,
                sender_ip: OUR_IP,
                target_mac: OUR_MAC,
                target_ip: OUR_IP
            }
        );
        assert!(a.is_gratuitous());
    }

    #[test]
    fn arp_reply_fields() {
        let peer_mac = [0x02, 0, 0, 0, 0, 0x99];
        let peer_ip = Ipv4Addr::new(192, 0, 2, 99);
        let f = arp_reply(OUR_MAC, OUR_IP, peer_mac, peer_ip);
        assert_eq!(&f[..6], &peer_mac);
        assert_eq!(&f[6..12], &OUR_MAC);
        let Ok(Frame::Arp(a)) = parse(&f) else {
            panic!()
        };
        assert_eq!(a.op, ArpOp::Reply);
        assert_eq!((a.sender_mac, a.sender_ip), (OUR_MAC, OUR_IP));
        assert_eq!((a.target_mac, a.target_ip), (peer_mac, peer_ip));
        assert!(!a.is_gratuitous());
    }

    // RST 192.0.2.100:80 -> 192.0.2.1:40000, seq 0x11223344, no ACK.
    static RST_BYTES: [u8; 54] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, //
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xb6, 0x6a, //
        0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02, 0x01, //
        0x00, 0x50, 0x9c, 0x40, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00, //
        0x50, 0x04, 0x00, 0x00, 0x4a, 0x84, 0x00, 0x00,
    ];

    #[test]
    fn rst_emit() {
        let f = tcp_rst_ipv4(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "192.0.2.100:80".parse().unwrap(),
            "192.0.2.1:40000".parse().unwrap(),
            0x1122_3344,
            None,
        );
        assert_eq!(f, RST_BYTES);
    }

    #[test]
    fn rst_reply_seq_rules() {
        // SYN with 5 bytes of data, no ACK: reset acknowledges seq + 5 + 1.
        let mut seg = vec![
            0x9c,
            0x40,
            0x00,
            0x50,
            0,
            0,
            0,
            100,
            0,
            0,
            0,
            7,
            0x50,
            flags::SYN,
        ];
        seg.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        seg.extend_from_slice(b"hello");
        let f = crate::tcp::tests::frame_with(&seg);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        let r = tcp_rst_reply_ipv4(&f, &p).unwrap();
        let Ok(Frame::Ip(q)) = parse(&r) else {
            panic!()
        };
        assert_eq!((q.src(), q.dst()), (p.dst(), p.src()));
        assert_eq!((q.src_mac, q.dst_mac), (p.dst_mac, p.src_mac));
        assert_eq!(q.tcp_flags, flags::RST | flags::ACK);
        assert_eq!(q.tcp_seq_ack(&r), Some((0, 106)));

        // With ACK: seq = their ack, no ACK flag.
        let mut seg2 = seg.clone();
        seg2[13] = flags::ACK | flags::PSH;
        let f = crate::tcp::tests::frame_with(&seg2);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        let r = tcp_rst_reply_ipv4(&f, &p).unwrap();
        let Ok(Frame::Ip(q)) = parse(&r) else {
            panic!()
        };
        assert_eq!(q.tcp_flags, flags::RST);
        assert_eq!(q.tcp_seq_ack(&r), Some((7, 0)));

        // Never answer a reset.
        seg2[13] = flags::RST;
        let f = crate::tcp::tests::frame_with(&seg2);
        let Ok(Frame::Ip(p)) = parse(&f) else {
            panic!()
        };
        assert_eq!(tcp_rst_reply_ipv4(&f, &p), None);
    }
}
