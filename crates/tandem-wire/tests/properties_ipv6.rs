//! IPv6 property tests, with etherparse as an independent oracle for layouts and checksums.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use common::{parsed, set_l4_checksum, stored_l4_checksum};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TransportSlice, VlanId};
use proptest::prelude::*;
use tandem_wire::{
    Frame, IPPROTO_TCP, IPPROTO_UDP, Malformed, NdpOp, build, checksum, complete_partial_checksum,
    fill_l4_checksum, ndp, parse, rewrite_dst, rewrite_src, tcp_rst_reply,
};

/// What to build with etherparse.
#[derive(Debug, Clone)]
struct Spec {
    tcp: bool,
    vlan: Option<u16>,
    /// Destination options headers (8 bytes each) inserted before the TCP/UDP header.
    ext: usize,
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
    padding: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (any::<bool>(), proptest::option::of(0u16..4095), 0usize..3),
        any::<([u8; 6], [u8; 6])>(),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (any::<u32>(), any::<u32>(), any::<u8>()),
        (proptest::collection::vec(any::<u8>(), 0..64), 0usize..8),
    )
        .prop_map(|(a, macs, b, c, d)| Spec {
            tcp: a.0,
            vlan: a.1,
            ext: a.2,
            macs,
            src: b.0,
            dst: b.1,
            sport: b.2,
            dport: b.3,
            seq: c.0,
            ack: c.1,
            flags: c.2,
            payload: d.0,
            padding: d.1,
        })
}

fn build_frame(s: &Spec) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(s.macs.0, s.macs.1);
    let mut out = Vec::new();
    let l3 = if s.vlan.is_some() { 18 } else { 14 };
    macro_rules! finish {
        ($step:expr) => {
            if s.tcp {
                let mut t = TcpHeader::new(s.sport, s.dport, s.seq, 1024);
                t.acknowledgment_number = s.ack;
                t.fin = s.flags & 0x01 != 0;
                t.syn = s.flags & 0x02 != 0;
                t.rst = s.flags & 0x04 != 0;
                t.psh = s.flags & 0x08 != 0;
                t.ack = s.flags & 0x10 != 0;
                $step.tcp_header(t).write(&mut out, &s.payload).unwrap();
            } else {
                $step
                    .udp(s.sport, s.dport)
                    .write(&mut out, &s.payload)
                    .unwrap();
            }
        };
    }
    match s.vlan {
        Some(v) => finish!(
            eth.single_vlan(VlanId::try_new(v).unwrap())
                .ipv6(s.src, s.dst, 64)
        ),
        None => finish!(eth.ipv6(s.src, s.dst, 64)),
    }
    // Destination options headers (PadN only) between the fixed header and TCP/UDP: the
    // upper-layer checksums do not change, the payload length grows.
    for _ in 0..s.ext {
        let next = out[l3 + 6];
        out[l3 + 6] = 60;
        let plen = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) + 8;
        out[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        let at = l3 + 40;
        out.splice(at..at, [next, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.resize(out.len() + s.padding, 0);
    out
}

/// Whether etherparse, computing from scratch, agrees with the stored L4 checksum; a UDP
/// checksum of 0 counts as ok.
fn oracle_l4_ok(frame: &[u8]) -> bool {
    let sp = SlicedPacket::from_ethernet(frame).expect("etherparse slices the frame");
    let Some(NetSlice::Ipv6(ip)) = &sp.net else {
        panic!("not ipv6")
    };
    let (src, dst) = (ip.header().source(), ip.header().destination());
    match &sp.transport {
        Some(TransportSlice::Tcp(t)) => t.calc_checksum_ipv6(src, dst).unwrap() == t.checksum(),
        Some(TransportSlice::Udp(u)) => {
            u.checksum() == 0
                || u.to_header()
                    .calc_checksum_ipv6_raw(src, dst, u.payload())
                    .unwrap()
                    == u.checksum()
        }
        other => panic!("unexpected transport {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// parse never panics on damaged IPv6 frames (which reach the extension header walk and
    /// the NDP checks); rewrites never panic on what it accepted.
    #[test]
    fn damaged_frames_never_panic(
        s in spec(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        ip in any::<[u8; 16]>(),
        port in any::<u16>(),
    ) {
        let mut f = build_frame(&s);
        for (at, v) in flips {
            let i = at.index(f.len());
            f[i] ^= v;
        }
        if truncate {
            f.truncate(cut.index(f.len() + 1));
        }
        if let Ok(Frame::Ip(p)) = parse(&f) {
            prop_assert!(p.l4 < p.payload && p.payload <= p.end);
            prop_assert!(p.end <= p.l3 + usize::from(p.ip_total_len) && p.end <= f.len());
            if p.src_ip.is_ipv6() {
                prop_assert!(p.l3 + 40 <= p.l4);
                rewrite_dst(&mut f, &p, Ipv6Addr::from(ip), port).unwrap();
                rewrite_src(&mut f, &p, Ipv6Addr::from(ip), port).unwrap();
                let q = parsed(&f);
                prop_assert_eq!((q.l3, q.l4, q.payload, q.end), (p.l3, p.l4, p.payload, p.end));
                let _ = tcp_rst_reply(&f, &p);
                fill_l4_checksum(&mut f, &p).unwrap();
            }
        }
    }

    /// parse agrees with etherparse on what it finds in a well-formed IPv6 frame.
    #[test]
    fn parse_matches_etherparse(s in spec()) {
        let f = build_frame(&s);
        let p = parsed(&f);
        prop_assert_eq!((p.src_mac, p.dst_mac), s.macs);
        prop_assert_eq!(p.l3, if s.vlan.is_some() { 18 } else { 14 });
        prop_assert_eq!(p.l4, p.l3 + 40 + 8 * s.ext);
        prop_assert_eq!(p.proto, if s.tcp { IPPROTO_TCP } else { IPPROTO_UDP });
        prop_assert_eq!(p.src_ip, IpAddr::from(s.src));
        prop_assert_eq!(p.dst_ip, IpAddr::from(s.dst));
        prop_assert_eq!((p.src_port, p.dst_port), (s.sport, s.dport));
        prop_assert_eq!(&f[p.payload..p.end], &s.payload[..]);
        prop_assert_eq!(p.end + s.padding, f.len());
        let hdr = if s.tcp { 20 } else { 8 };
        prop_assert_eq!(usize::from(p.ip_total_len), 40 + 8 * s.ext + hdr + s.payload.len());
        if s.tcp {
            prop_assert_eq!(p.tcp_seq_ack(&f), Some((s.seq, s.ack)));
        }
        prop_assert!(oracle_l4_ok(&f));
        prop_assert_eq!(checksum::l4_checksum(&f, &p).unwrap(), stored_l4_checksum(&f, &p));
    }

    /// Incremental IPv6 rewrites give the checksum a full recomputation gives.
    #[test]
    fn rewrites_keep_checksums(
        s in spec(),
        new_dst in any::<[u8; 16]>(),
        new_dport in any::<u16>(),
        new_src in any::<[u8; 16]>(),
        new_sport in any::<u16>(),
        which in 0u8..3,
    ) {
        let mut f = build_frame(&s);
        let p = parsed(&f);
        if which != 1 {
            rewrite_dst(&mut f, &p, Ipv6Addr::from(new_dst), new_dport).unwrap();
        }
        if which != 0 {
            rewrite_src(&mut f, &p, Ipv6Addr::from(new_src), new_sport).unwrap();
        }
        prop_assert!(oracle_l4_ok(&f));
        let q = parsed(&f);
        if which != 1 {
            prop_assert_eq!(q.dst(), (Ipv6Addr::from(new_dst), new_dport).into());
        }
        if which != 0 {
            prop_assert_eq!(q.src(), (Ipv6Addr::from(new_src), new_sport).into());
        }
        prop_assert_eq!(stored_l4_checksum(&f, &q), checksum::l4_checksum(&f, &q).unwrap());
        // A mixed-family rewrite is refused.
        prop_assert!(rewrite_dst(&mut f, &p, std::net::Ipv4Addr::LOCALHOST, 1).is_err());
    }

    /// Completing a partial IPv6 checksum gives what etherparse computes.
    #[test]
    fn partial_checksums_complete(s in spec()) {
        let mut f = build_frame(&s);
        let p = parsed(&f);
        let want = stored_l4_checksum(&f, &p);
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (p.src_ip, p.dst_ip) else { unreachable!() };
        let pseudo = checksum::pseudo_header_sum_ipv6(src, dst, p.proto, (p.end - p.l4) as u32);
        set_l4_checksum(&mut f, &p, pseudo);
        complete_partial_checksum(&mut f, &p, p.l4, if s.tcp { 16 } else { 6 }).unwrap();
        prop_assert_eq!(stored_l4_checksum(&f, &p), want);
    }

    /// IPv6 resets parse with etherparse, with a right checksum, addressed back.
    #[test]
    fn rst_reply_is_valid(mut s in spec()) {
        s.tcp = true;
        s.flags &= !0x04;
        let f = build_frame(&s);
        let p = parsed(&f);
        let r = tcp_rst_reply(&f, &p).unwrap();
        prop_assert_eq!(r.len(), build::TCP_RST_IPV6_LEN);
        prop_assert!(oracle_l4_ok(&r));
        let q = parsed(&r);
        prop_assert!(q.is_rst());
        prop_assert_eq!((q.src(), q.dst()), (p.dst(), p.src()));
        prop_assert_eq!((q.src_mac, q.dst_mac), (p.dst_mac, p.src_mac));
        prop_assert_eq!(tandem_wire::tcp_rst_reply_ipv4(&f, &p), None);
    }

    /// NDP builders' output is valid ICMPv6 for etherparse and parses back.
    #[test]
    fn ndp_builders_parse(mac in any::<[u8; 6]>(), ours in any::<[u8; 16]>(), target in any::<[u8; 16]>()) {
        let (ours, target) = (Ipv6Addr::from(ours), Ipv6Addr::from(target));
        let ns = ndp::neighbor_solicitation(mac, ours, target);
        let Ok(Frame::Ndp(n)) = parse(&ns) else { panic!("{:?}", parse(&ns)) };
        prop_assert_eq!((n.op, n.target, n.link_addr), (NdpOp::Solicit, target, Some(mac)));
        let na = ndp::neighbor_advertisement(mac, &n);
        let una = ndp::unsolicited_advertisement(mac, target);
        for f in [&ns, &na, &una] {
            let sp = SlicedPacket::from_ethernet(f).unwrap();
            let Some(NetSlice::Ipv6(ip)) = &sp.net else { panic!() };
            let Some(TransportSlice::Icmpv6(icmp)) = &sp.transport else { panic!() };
            prop_assert!(icmp.is_checksum_valid(ip.header().source(), ip.header().destination()));
        }
        let Ok(Frame::Ndp(a)) = parse(&na) else { panic!() };
        prop_assert_eq!((a.op, a.target, a.link_addr), (NdpOp::Advert, target, Some(mac)));
        let mut bad = na.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x55;
        prop_assert_eq!(parse(&bad), Err(Malformed::BadNdp));
    }

    #[test]
    fn rst_builder_parses(
        macs in any::<([u8; 6], [u8; 6])>(),
        src in any::<([u8; 16], u16)>(),
        dst in any::<([u8; 16], u16)>(),
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
    ) {
        let src = SocketAddrV6::new(src.0.into(), src.1, 0, 0);
        let dst = SocketAddrV6::new(dst.0.into(), dst.1, 0, 0);
        let f = build::tcp_rst_ipv6(macs.0, macs.1, src, dst, seq, ack);
        prop_assert!(oracle_l4_ok(&f));
        let p = parsed(&f);
        prop_assert!(p.is_rst());
        prop_assert_eq!(p.is_ack(), ack.is_some());
        prop_assert_eq!(p.tcp_seq_ack(&f), Some((seq, ack.unwrap_or(0))));
        prop_assert_eq!((p.src(), p.dst()), (src.into(), dst.into()));
    }
}
