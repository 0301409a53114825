//! Property tests, with etherparse as an independent oracle for layouts and checksums.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use common::{parsed, set_l4_checksum, stored_l4_checksum};
use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv4Options, NetSlice, PacketBuilder, SlicedPacket, TcpHeader,
    TransportSlice, VlanId,
};
use proptest::prelude::*;
use tandem_wire::{
    ArpOp, Frame, IPPROTO_TCP, IPPROTO_UDP, build, checksum, complete_partial_checksum,
    fill_l4_checksum, parse, rewrite_dst, rewrite_src, tcp_rst_reply_ipv4,
};

/// What to build with etherparse.
#[derive(Debug, Clone)]
struct Spec {
    tcp: bool,
    vlan: Option<u16>,
    ip_options: Vec<u8>,
    tcp_options: Vec<u8>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    ident: u16,
    ttl: u8,
    payload: Vec<u8>,
    padding: usize,
}

fn words(max: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 4))
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<bool>(),
            proptest::option::of(0u16..4096),
            words(10),
            words(10),
        ),
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
        ),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
        ),
        (
            any::<u16>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            0usize..40,
        ),
    )
        .prop_map(|(a, b, c, d)| Spec {
            tcp: a.0,
            vlan: a.1,
            ip_options: a.2,
            tcp_options: a.3,
            src_mac: b.0,
            dst_mac: b.1,
            src: b.2,
            dst: b.3,
            sport: c.0,
            dport: c.1,
            seq: c.2,
            ack: c.3,
            flags: c.4,
            ident: d.0,
            ttl: d.1,
            payload: d.2,
            padding: d.3,
        })
}

fn build_frame(s: &Spec) -> Vec<u8> {
    let proto = if s.tcp { IpNumber::TCP } else { IpNumber::UDP };
    let mut ip = Ipv4Header::new(0, s.ttl, proto, s.src, s.dst).unwrap();
    ip.identification = s.ident;
    ip.dont_fragment = s.ident & 1 == 0;
    ip.options = Ipv4Options::try_from(&s.ip_options[..]).unwrap();
    let iph = IpHeaders::Ipv4(ip, Default::default());
    let eth = PacketBuilder::ethernet2(s.src_mac, s.dst_mac);
    let step = match s.vlan {
        Some(v) => eth.single_vlan(VlanId::try_new(v).unwrap()).ip(iph),
        None => eth.ip(iph),
    };
    let mut out = Vec::new();
    if s.tcp {
        let mut t = TcpHeader::new(s.sport, s.dport, s.seq, 1024);
        t.acknowledgment_number = s.ack;
        t.fin = s.flags & 0x01 != 0;
        t.syn = s.flags & 0x02 != 0;
        t.rst = s.flags & 0x04 != 0;
        t.psh = s.flags & 0x08 != 0;
        t.ack = s.flags & 0x10 != 0;
        t.urg = s.flags & 0x20 != 0;
        t.ece = s.flags & 0x40 != 0;
        t.cwr = s.flags & 0x80 != 0;
        t.set_options_raw(&s.tcp_options).unwrap();
        step.tcp_header(t).write(&mut out, &s.payload).unwrap();
    } else {
        step.udp(s.sport, s.dport)
            .write(&mut out, &s.payload)
            .unwrap();
    }
    out.resize(out.len() + s.padding, 0);
    out
}

/// Whether etherparse, computing from scratch, agrees with the stored checksums:
/// `(ip header ok, l4 ok)`; a UDP checksum of 0 counts as ok.
fn oracle_checksums(frame: &[u8]) -> (bool, bool) {
    let sp = SlicedPacket::from_ethernet(frame).expect("etherparse slices the frame");
    let Some(NetSlice::Ipv4(ip)) = &sp.net else {
        panic!("not ipv4")
    };
    let h = ip.header();
    let ip_ok = h.to_header().calc_header_checksum() == h.header_checksum();
    let (src, dst) = (h.source(), h.destination());
    let l4_ok = match &sp.transport {
        Some(TransportSlice::Tcp(t)) => t.calc_checksum_ipv4(src, dst).unwrap() == t.checksum(),
        Some(TransportSlice::Udp(u)) => {
            u.checksum() == 0
                || u.to_header()
                    .calc_checksum_ipv4_raw(src, dst, u.payload())
                    .unwrap()
                    == u.checksum()
        }
        other => panic!("unexpected transport {other:?}"),
    };
    (ip_ok, l4_ok)
}

proptest! {
    // Minimal failing inputs are printed; no regression files are written into the tree.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// (a) parse never panics, whatever the bytes.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes);
    }

    /// (a') Nor on damaged versions of real frames, which reach the deeper checks; and the
    /// rewrites never panic on whatever parse accepted.
    #[test]
    fn damaged_frames_never_panic(
        s in spec(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        ip in any::<[u8; 4]>(),
        port in any::<u16>(),
        csum in (0usize..100, 0usize..40),
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
            prop_assert!(p.l3 + 20 <= p.l4 && p.l4 < p.payload && p.payload <= p.end);
            prop_assert!(p.end <= p.l3 + usize::from(p.ip_total_len) && p.end <= f.len());
            rewrite_dst(&mut f, &p, Ipv4Addr::from(ip), port).unwrap();
            rewrite_src(&mut f, &p, Ipv4Addr::from(ip), port).unwrap();
            let q = parsed(&f);
            prop_assert_eq!((q.l3, q.l4, q.payload, q.end), (p.l3, p.l4, p.payload, p.end));
            let _ = tcp_rst_reply_ipv4(&f, &p);
            let _ = checksum::l4_checksum_ipv4(&f, &p).unwrap();
            fill_l4_checksum(&mut f, &p).unwrap();
            let _ = complete_partial_checksum(&mut f, &p, p.l4 + csum.0, csum.1);
        }
    }

    /// parse agrees with etherparse on what it finds in a well-formed frame.
    #[test]
    fn parse_matches_etherparse(s in spec()) {
        let f = build_frame(&s);
        let p = parsed(&f);
        prop_assert_eq!(p.src_mac, s.src_mac);
        prop_assert_eq!(p.dst_mac, s.dst_mac);
        prop_assert_eq!(p.l3, if s.vlan.is_some() { 18 } else { 14 });
        prop_assert_eq!(p.l4, p.l3 + 20 + s.ip_options.len());
        prop_assert_eq!(p.proto, if s.tcp { IPPROTO_TCP } else { IPPROTO_UDP });
        prop_assert_eq!(p.src_ip, IpAddr::from(s.src));
        prop_assert_eq!(p.dst_ip, IpAddr::from(s.dst));
        prop_assert_eq!((p.src_port, p.dst_port), (s.sport, s.dport));
        prop_assert_eq!(p.payload_len(), s.payload.len());
        prop_assert_eq!(&f[p.payload..p.end], &s.payload[..]);
        prop_assert_eq!(p.end + s.padding, f.len());
        let hdr = if s.tcp { 20 + s.tcp_options.len() } else { 8 };
        prop_assert_eq!(
            usize::from(p.ip_total_len),
            20 + s.ip_options.len() + hdr + s.payload.len()
        );
        if s.tcp {
            prop_assert_eq!(p.tcp_flags, s.flags);
            prop_assert_eq!(p.is_syn(), s.flags & 0x12 == 0x02);
            prop_assert_eq!(p.tcp_seq_ack(&f), Some((s.seq, s.ack)));
        } else {
            prop_assert_eq!(p.tcp_flags, 0);
        }
        // Our full checksum agrees with the one etherparse stored.
        prop_assert_eq!(checksum::l4_checksum_ipv4(&f, &p).unwrap(), stored_l4_checksum(&f, &p));
        let ip_hdr = &f[p.l3..p.l4];
        prop_assert_eq!(
            checksum::ipv4_header_checksum(ip_hdr),
            u16::from_be_bytes([ip_hdr[10], ip_hdr[11]])
        );
    }

    /// (b) Incremental rewrites give the checksums a full recomputation gives.
    #[test]
    fn rewrites_keep_checksums(
        s in spec(),
        new_dst in any::<[u8; 4]>(),
        new_dport in any::<u16>(),
        new_src in any::<[u8; 4]>(),
        new_sport in any::<u16>(),
        which in 0u8..3,
        zero_udp in any::<bool>(),
    ) {
        let mut f = build_frame(&s);
        let p = parsed(&f);
        prop_assert_eq!(oracle_checksums(&f), (true, true));
        let udp_none = !s.tcp && zero_udp;
        if udp_none {
            set_l4_checksum(&mut f, &p, 0);
        }
        if which != 1 {
            rewrite_dst(&mut f, &p, Ipv4Addr::from(new_dst), new_dport).unwrap();
        }
        if which != 0 {
            rewrite_src(&mut f, &p, Ipv4Addr::from(new_src), new_sport).unwrap();
        }
        prop_assert_eq!(oracle_checksums(&f), (true, true));
        let q = parsed(&f);
        if which != 1 {
            prop_assert_eq!(q.dst_ip, IpAddr::from(new_dst));
            prop_assert_eq!(q.dst_port, new_dport);
        }
        if which != 0 {
            prop_assert_eq!(q.src_ip, IpAddr::from(new_src));
            prop_assert_eq!(q.src_port, new_sport);
        }
        let stored = stored_l4_checksum(&f, &q);
        if udp_none {
            prop_assert_eq!(stored, 0);
        } else {
            prop_assert_eq!(stored, checksum::l4_checksum_ipv4(&f, &q).unwrap());
            prop_assert_ne!(stored, if s.tcp { 0xffff } else { 0 });
        }
        // Everything but the rewritten fields and the checksums is unchanged.
        let orig = build_frame(&s);
        let mut masked = f.clone();
        let mut masked_orig = orig.clone();
        for m in [&mut masked, &mut masked_orig] {
            for i in (q.l3 + 10..q.l3 + 20).chain(q.l4..q.l4 + 4) {
                m[i] = 0;
            }
            set_l4_checksum(m, &q, 0);
        }
        prop_assert_eq!(masked, masked_orig);
    }

    /// Completing a partial checksum (or recomputing it) gives what etherparse computes.
    #[test]
    fn partial_checksums_complete(s in spec(), garbage in any::<u16>()) {
        let mut f = build_frame(&s);
        let p = parsed(&f);
        let want = stored_l4_checksum(&f, &p);
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (p.src_ip, p.dst_ip) else { unreachable!() };
        let pseudo = checksum::pseudo_header_sum_ipv4(src, dst, p.proto, (p.end - p.l4) as u16);
        set_l4_checksum(&mut f, &p, pseudo);
        let off = if s.tcp { 16 } else { 6 };
        complete_partial_checksum(&mut f, &p, p.l4, off).unwrap();
        prop_assert_eq!(stored_l4_checksum(&f, &p), want);
        prop_assert_eq!(oracle_checksums(&f), (true, true));

        set_l4_checksum(&mut f, &p, garbage);
        fill_l4_checksum(&mut f, &p).unwrap();
        prop_assert_eq!(stored_l4_checksum(&f, &p), want);
    }

    /// (c) Builders' output parses with etherparse and with our parse.
    #[test]
    fn arp_builders_parse(
        our_mac in any::<[u8; 6]>(),
        our_ip in any::<[u8; 4]>(),
        to_mac in any::<[u8; 6]>(),
        to_ip in any::<[u8; 4]>(),
        reply_form in any::<bool>(),
    ) {
        let (our_ip, to_ip) = (Ipv4Addr::from(our_ip), Ipv4Addr::from(to_ip));
        let cases = [
            (build::arp_reply(our_mac, our_ip, to_mac, to_ip), ArpOp::Reply, to_mac, to_mac, to_ip),
            (build::arp_request(our_mac, our_ip, to_ip), ArpOp::Request, [0xff; 6], [0; 6], to_ip),
            (
                build::gratuitous_arp(our_mac, our_ip, reply_form),
                if reply_form { ArpOp::Reply } else { ArpOp::Request },
                [0xff; 6],
                if reply_form { our_mac } else { [0; 6] },
                our_ip,
            ),
        ];
        for (f, op, eth_dst, tha, tpa) in cases {
            let Ok(Frame::Arp(a)) = parse(&f) else { panic!("{:?}", parse(&f)) };
            prop_assert_eq!(a.op, op);
            prop_assert_eq!((a.sender_mac, a.sender_ip), (our_mac, our_ip));
            prop_assert_eq!((a.target_mac, a.target_ip), (tha, tpa));

            let sp = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sp.link else { panic!() };
            prop_assert_eq!(eth.destination(), eth_dst);
            prop_assert_eq!(eth.source(), our_mac);
            let Some(NetSlice::Arp(arp)) = &sp.net else { panic!("{:?}", sp.net) };
            let e = arp.to_packet().try_eth_ipv4().unwrap();
            prop_assert_eq!(e.operation.0, op.code());
            prop_assert_eq!((e.sender_mac, e.sender_ipv4), (our_mac, our_ip.octets()));
            prop_assert_eq!((e.target_mac, e.target_ipv4), (tha, tpa.octets()));
        }
    }

    #[test]
    fn rst_builder_parses(
        macs in any::<([u8; 6], [u8; 6])>(),
        src in any::<([u8; 4], u16)>(),
        dst in any::<([u8; 4], u16)>(),
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
    ) {
        let src = SocketAddrV4::new(src.0.into(), src.1);
        let dst = SocketAddrV4::new(dst.0.into(), dst.1);
        let f = build::tcp_rst_ipv4(macs.0, macs.1, src, dst, seq, ack);
        prop_assert_eq!(f.len(), build::TCP_RST_IPV4_LEN);
        prop_assert_eq!(oracle_checksums(&f), (true, true));
        let sp = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(TransportSlice::Tcp(t)) = &sp.transport else { panic!() };
        prop_assert!(t.rst() && !t.syn() && !t.fin());
        prop_assert_eq!(t.ack(), ack.is_some());
        prop_assert_eq!(t.sequence_number(), seq);
        prop_assert_eq!(t.acknowledgment_number(), ack.unwrap_or(0));
        prop_assert_eq!((t.source_port(), t.destination_port()), (src.port(), dst.port()));

        let p = parsed(&f);
        prop_assert!(p.is_rst());
        prop_assert_eq!((p.src_mac, p.dst_mac), macs);
        prop_assert_eq!(p.src(), src.into());
        prop_assert_eq!(p.dst(), dst.into());
        prop_assert_eq!(p.payload_len(), 0);
    }

    /// The reset answering any non-reset segment is valid and addressed back.
    #[test]
    fn rst_reply_is_valid(mut s in spec()) {
        s.tcp = true;
        s.flags &= !0x04;
        let f = build_frame(&s);
        let p = parsed(&f);
        let r = tcp_rst_reply_ipv4(&f, &p).unwrap();
        prop_assert_eq!(oracle_checksums(&r), (true, true));
        let q = parsed(&r);
        prop_assert!(q.is_rst());
        prop_assert_eq!((q.src(), q.dst()), (p.dst(), p.src()));
        let (rseq, rack) = q.tcp_seq_ack(&r).unwrap();
        if p.is_ack() {
            prop_assert_eq!((rseq, q.is_ack()), (s.ack, false));
        } else {
            let len = s.payload.len() as u32 + u32::from(s.flags & 1) + u32::from(s.flags >> 1 & 1);
            prop_assert_eq!((rseq, rack, q.is_ack()), (0, s.seq.wrapping_add(len), true));
        }
    }
}
