//! Frames of real networks through the engine: the interface MTU (jumbo frames, oversize
//! drops), VLAN tags (counted per VLAN id), IPv4 UDP fragments (MAC and NAT, both ways) and
//! ICMP errors about a flow (to its server, translated for NAT, both ways).

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{
    DropReason, Engine, FRAGMENT_TIMEOUT, FragmentTable, Plan, RxMeta, Verdict,
};
use tandem_wire::{self as wire, Frame, checksum};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x20];
const CLIENT: [u8; 4] = [203, 0, 113, 7];
const ROUTER: [u8; 4] = [198, 51, 100, 1];
const CLUSTER: [u8; 4] = [192, 0, 2, 100];
const RETURN: [u8; 4] = [192, 0, 2, 200];
const SERVER: [u8; 4] = [192, 0, 2, 11];

fn server_mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

const MAC_UDP: &str =
    "port add 192.0.2.100@53 protocol udp\nserver add 192.0.2.100@53@192.0.2.11\n";
const NAT_UDP: &str = "port add 192.0.2.100@5353 protocol udp method nat\nserver add 192.0.2.100@5353@192.0.2.11 returnaddress 192.0.2.200 mapport 53\n";

fn config(text: &str) -> Config {
    let base = "executor start\nexecutor set nfa 192.0.2.2\ncluster add 192.0.2.100\n";
    load_file(&format!("{base}{text}"), "test.cfg", &Config::default()).expect("valid config")
}

/// An engine with `cfg` installed (frame limit `mtu_frame`, 0 for the default) and server
/// 192.0.2.11 resolved.
fn engine(cfg: &str, mtu_frame: usize, now: Instant) -> Engine {
    let e = Engine::default();
    let mut plan = Plan::compile(
        &config(cfg),
        &tandem_core::health::Overlay::default(),
        true,
        OUR_MAC,
        &e.counters,
    );
    if mtu_frame > 0 {
        plan.mtu_frame = mtu_frame;
    }
    e.install(plan, now);
    let mut arp = wire::arp_reply(
        server_mac(11),
        SERVER.into(),
        OUR_MAC,
        [192, 0, 2, 2].into(),
    );
    e.handle(&mut arp, RxMeta::default(), now, &mut Vec::new());
    e
}

fn handle(e: &Engine, frame: &mut [u8], now: Instant) -> Verdict {
    e.handle(frame, RxMeta::default(), now, &mut Vec::new())
}

/// A UDP datagram in one frame, `len` bytes of payload (a pattern).
fn udp(from: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, &payload)
        .unwrap();
    v
}

/// Cuts a one-frame IPv4 datagram into fragments of at most `mtu` bytes of IP (identification
/// `ident`), as a host's stack does.
fn fragments(frame: &[u8], mtu: usize, ident: u16) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let (hdr, data) = ip.split_at(20);
    let chunk = (mtu - 20) / 8 * 8;
    let mut out = Vec::new();
    for (i, part) in data.chunks(chunk).enumerate() {
        let offset = i * chunk;
        let more = offset + part.len() < data.len();
        let mut h = hdr.to_vec();
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::ipv4_header_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        out.push([eth, &h, part].concat());
    }
    out
}

/// Reassembles transmitted fragments: (dst MAC, src, dst, the UDP segment), checking that
/// every fragment went to the same MAC with the same addresses and a right IP checksum, and
/// that the reassembled UDP checksum is right.
fn reassemble(frames: &[Vec<u8>]) -> ([u8; 6], Ipv4Addr, Ipv4Addr, Vec<u8>) {
    let mut seg = Vec::new();
    let first = &frames[0];
    for f in frames {
        assert_eq!(f[0..6], first[0..6], "every fragment to the same next hop");
        assert_eq!(f[6..12], OUR_MAC);
        assert_eq!(
            f[26..34],
            first[26..34],
            "every fragment with the same addresses"
        );
        assert_eq!(
            checksum::ones_complement_sum(&f[14..34]),
            0xffff,
            "IP checksum"
        );
        let off = usize::from(u16::from_be_bytes([f[20], f[21]]) & 0x1fff) * 8;
        let len = usize::from(u16::from_be_bytes([f[16], f[17]])) - 20;
        if seg.len() < off + len {
            seg.resize(off + len, 0);
        }
        seg[off..off + len].copy_from_slice(&f[34..34 + len]);
    }
    let src = Ipv4Addr::new(first[26], first[27], first[28], first[29]);
    let dst = Ipv4Addr::new(first[30], first[31], first[32], first[33]);
    let pseudo = checksum::pseudo_header_sum_ipv4(src, dst, 17, seg.len() as u16);
    let sum = checksum::combine(pseudo, checksum::ones_complement_sum(&seg));
    assert_eq!(sum, 0xffff, "UDP checksum of the reassembled datagram");
    (first[0..6].try_into().unwrap(), src, dst, seg)
}

fn forward_all(e: &Engine, frames: Vec<Vec<u8>>, now: Instant) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .map(|mut f| {
            let v = handle(e, &mut f, now);
            let Verdict::Transmit(n) = v else {
                panic!("fragment not forwarded: {v:?}")
            };
            f.truncate(n);
            f
        })
        .collect()
}

#[test]
fn jumbo_frames_pass_up_to_the_interface_mtu() {
    let now = Instant::now();
    // 9014 bytes: a UDP datagram of 8972 bytes of payload in a 9000-byte MTU.
    let jumbo = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 8972);
    assert_eq!(jumbo.len(), 9014);
    let e = engine(MAC_UDP, tandem_core::forward::mtu_frame(9000), now);
    let mut f = jumbo.clone();
    assert_eq!(handle(&e, &mut f, now), Verdict::Transmit(9014));
    assert_eq!(f[0..6], server_mac(11));
    // One byte more than the interface carries.
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 8973);
    assert_eq!(handle(&e, &mut f, now), Verdict::Drop(DropReason::Oversize));
    // The same jumbo frame on a 1500-byte interface (the default limit).
    let e = engine(MAC_UDP, 0, now);
    let mut f = jumbo;
    assert_eq!(handle(&e, &mut f, now), Verdict::Drop(DropReason::Oversize));
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 1472);
    assert_eq!(handle(&e, &mut f, now), Verdict::Transmit(1514));
    // A frame the ring slot cut short is never sent on.
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 100);
    let meta = RxMeta {
        truncated: true,
        ..RxMeta::default()
    };
    let v = e.handle(&mut f, meta, now, &mut Vec::new());
    assert_eq!(v, Verdict::Drop(DropReason::Oversize));
    assert_eq!(e.node.dropped(DropReason::Oversize), 2);
}

#[test]
fn tagged_frames_are_dropped_and_counted_per_vlan() {
    let now = Instant::now();
    let e = engine(MAC_UDP, 0, now);
    let meta = |id| RxMeta {
        vlan: true,
        vlan_id: Some(id),
        ..RxMeta::default()
    };
    for (id, n) in [(100u16, 3), (200, 1)] {
        for _ in 0..n {
            let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 10);
            let v = e.handle(&mut f, meta(id), now, &mut Vec::new());
            assert_eq!(v, Verdict::Drop(DropReason::Vlan));
        }
    }
    // A tag the kernel left in the frame counts the same.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .single_vlan(300u16.try_into().unwrap())
        .ipv4(CLIENT, CLUSTER, 64)
        .udp(4000, 53)
        .write(&mut f, b"tagged")
        .unwrap();
    assert_eq!(handle(&e, &mut f, now), Verdict::Drop(DropReason::Vlan));
    assert_eq!(e.vlans.read(), vec![(100, 3), (200, 1), (300, 1)]);
    assert_eq!(e.node.dropped(DropReason::Vlan), 5);
    // Priority-tagged frames (VLAN 0) are of the untagged network: forwarded.
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 10);
    let v = e.handle(&mut f, meta(0), now, &mut Vec::new());
    assert!(matches!(v, Verdict::Transmit(_)), "{v:?}");
    // Tagged frames for addresses Tandem does not own are the kernel's.
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), ([192, 0, 2, 99], 53), 10);
    let v = e.handle(&mut f, meta(100), now, &mut Vec::new());
    assert_eq!(v, Verdict::Pass);
    assert_eq!(e.vlans.dropped(100), 3);
    // A tagged ARP request for the cluster is not answered (the answer would be untagged).
    let mut arp = wire::arp_request(CLIENT_MAC, CLIENT.into(), CLUSTER.into()).to_vec();
    let mut out = Vec::new();
    let v = e.handle(&mut arp, meta(100), now, &mut out);
    assert_eq!((v, out.len()), (Verdict::Pass, 0));
    let v = e.handle(&mut arp, RxMeta::default(), now, &mut out);
    assert_eq!((v, out.len()), (Verdict::Consumed, 1));
}

#[test]
fn mac_fragments_follow_their_first_fragment() {
    let now = Instant::now();
    let e = engine(MAC_UDP, 0, now);
    let whole = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 8000);
    let frags = fragments(&whole, 1500, 0x4242);
    assert_eq!(frags.len(), 6);
    // A later fragment before its first: not known yet.
    let mut early = frags[1].clone();
    assert_eq!(
        handle(&e, &mut early, now),
        Verdict::Drop(DropReason::FragmentUnknown)
    );
    let sent = forward_all(&e, frags.clone(), now);
    let (mac, src, dst, seg) = reassemble(&sent);
    assert_eq!(mac, server_mac(11));
    assert_eq!((src, dst), (CLIENT.into(), CLUSTER.into()));
    assert_eq!(
        seg,
        whole[34..],
        "MAC forwarding leaves the datagram as it was"
    );
    assert_eq!(e.conns.len(), 1);
    let c = e
        .counters
        .lookup(CLUSTER.into(), 53, SERVER.into())
        .unwrap();
    assert_eq!(c.read().packets, 6, "every fragment counted on the server");
    // After the fragment timeout, later fragments of that datagram are unknown.
    let later = now + FRAGMENT_TIMEOUT + Duration::from_millis(1);
    let mut f = frags[2].clone();
    assert_eq!(
        handle(&e, &mut f, later),
        Verdict::Drop(DropReason::FragmentUnknown)
    );
    assert_eq!(e.node.dropped(DropReason::FragmentUnknown), 2);
}

#[test]
fn nat_fragments_are_translated_both_ways() {
    let now = Instant::now();
    let e = engine(NAT_UDP, 0, now);
    let request = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 5353), 8000);
    let sent = forward_all(&e, fragments(&request, 1500, 7), now);
    let (mac, src, dst, seg) = reassemble(&sent);
    assert_eq!(mac, server_mac(11));
    assert_eq!((src, dst), (RETURN.into(), SERVER.into()));
    let nat_port = u16::from_be_bytes([seg[0], seg[1]]);
    assert_eq!(u16::from_be_bytes([seg[2], seg[3]]), 53);
    assert_eq!(seg[8..], request[42..], "payload untouched");
    // The server's 8 KB answer, fragmented, back to the returnaddress.
    let reply = udp(server_mac(11), (SERVER, 53), (RETURN, nat_port), 8000);
    let back = forward_all(&e, fragments(&reply, 1500, 7), now);
    let (mac, src, dst, seg) = reassemble(&back);
    assert_eq!(mac, CLIENT_MAC);
    assert_eq!((src, dst), (CLUSTER.into(), CLIENT.into()));
    assert_eq!(u16::from_be_bytes([seg[0], seg[1]]), 5353);
    assert_eq!(u16::from_be_bytes([seg[2], seg[3]]), 4000);
    assert_eq!(seg[8..], reply[42..]);
    // Same identification, other direction: two datagrams, not one.
    assert_eq!(e.fragments.len(), 2);
}

#[test]
fn the_fragment_table_is_bounded() {
    let now = Instant::now();
    let e = engine(MAC_UDP, 0, now);
    let t = FragmentTable::new(32);
    assert_eq!(t.max(), 32);
    drop(t);
    // Through the engine: many datagrams, the default bound holds and evictions are counted.
    let n = tandem_core::forward::FRAGMENT_DATAGRAMS + 500;
    for i in 0..n {
        let whole = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 1600);
        let mut first = fragments(&whole, 1500, i as u16).remove(0);
        assert!(matches!(handle(&e, &mut first, now), Verdict::Transmit(_)));
    }
    assert!(e.fragments.len() <= e.fragments.max());
    assert!(
        e.fragments
            .evicted
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 500
    );
}

/// An ICMP error from `from` (MAC `from_mac`) to `to`, type/code, quoting `quoted` (a frame:
/// its IP packet, as much as Linux quotes).
fn icmp_error(
    from_mac: [u8; 6],
    from: [u8; 4],
    to: [u8; 4],
    (icmp_type, code, mtu): (u8, u8, u16),
    quoted: &[u8],
) -> Vec<u8> {
    // Routers quote at least 8 bytes of the datagram; Linux quotes up to 576 bytes in all.
    let quote = &quoted[14..quoted.len().min(14 + 548)];
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(quote);
    let c = !checksum::ones_complement_sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0xc0];
    ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&from);
    ip.extend_from_slice(&to);
    let c = checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    [&OUR_MAC[..], &from_mac, &[0x08, 0x00], &ip, &icmp].concat()
}

/// The translated ICMP error: (outer src, outer dst, quoted src, quoted dst), checking that
/// the outer, the ICMP and the quoted IP checksums are right.
fn icmp_summary(f: &[u8]) -> (Ipv4Addr, Ipv4Addr, (Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let Ok(Frame::IcmpError(e)) = wire::parse(f) else {
        panic!("not an ICMP error")
    };
    assert_eq!(checksum::ones_complement_sum(&f[e.l3..e.icmp]), 0xffff);
    assert_eq!(checksum::ones_complement_sum(&f[e.icmp..e.end]), 0xffff);
    assert_eq!(
        checksum::ones_complement_sum(&f[e.quoted.l3..e.quoted.l4]),
        0xffff
    );
    let v4 = |ip| match ip {
        std::net::IpAddr::V4(a) => a,
        _ => panic!("v6"),
    };
    let q = e.quoted;
    (
        v4(e.src_ip),
        v4(e.dst_ip),
        (v4(q.src_ip), q.src_port),
        (v4(q.dst_ip), q.dst_port),
    )
}

#[test]
fn mac_frag_needed_reaches_the_flows_server() {
    let now = Instant::now();
    let e = engine(MAC_UDP, 0, now);
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 53), 10);
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    // The server's answer (from the cluster address) was too big for a router's next link.
    let answer = udp(server_mac(11), (CLUSTER, 53), (CLIENT, 4000), 1472);
    let mut icmp = icmp_error(ROUTER_MAC, ROUTER, CLUSTER, (3, 4, 1400), &answer);
    let before = icmp.clone();
    let v = handle(&e, &mut icmp, now);
    assert_eq!(v, Verdict::Transmit(before.len()));
    assert_eq!(icmp[0..6], server_mac(11));
    assert_eq!(icmp[6..12], OUR_MAC);
    assert_eq!(
        icmp[12..],
        before[12..],
        "MAC forwarding leaves the ICMP as it was"
    );
    // An error about a flow Tandem never saw.
    let other = udp(server_mac(11), (CLUSTER, 53), (CLIENT, 4001), 1472);
    let mut icmp = icmp_error(ROUTER_MAC, ROUTER, CLUSTER, (3, 4, 1400), &other);
    assert_eq!(
        handle(&e, &mut icmp, now),
        Verdict::Drop(DropReason::IcmpNoConnection)
    );
    // Time exceeded on the same flow goes the same way.
    let mut icmp = icmp_error(ROUTER_MAC, ROUTER, CLUSTER, (11, 0, 0), &answer);
    assert!(matches!(handle(&e, &mut icmp, now), Verdict::Transmit(_)));
}

#[test]
fn nat_icmp_errors_are_translated_both_ways() {
    let now = Instant::now();
    let e = engine(NAT_UDP, 0, now);
    let mut f = udp(CLIENT_MAC, (CLIENT, 4000), (CLUSTER, 5353), 10);
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    let nat_port = u16::from_be_bytes([f[34], f[35]]);
    // (a) A router on the client's side: the answer cluster:5353 → client:4000 was too big.
    let answer = udp(server_mac(11), (CLUSTER, 5353), (CLIENT, 4000), 1472);
    let mut icmp = icmp_error(ROUTER_MAC, ROUTER, CLUSTER, (3, 4, 1400), &answer);
    assert!(matches!(handle(&e, &mut icmp, now), Verdict::Transmit(_)));
    assert_eq!(icmp[0..6], server_mac(11));
    let (src, dst, qsrc, qdst) = icmp_summary(&icmp);
    assert_eq!((src, dst), (RETURN.into(), SERVER.into()));
    assert_eq!(qsrc, (SERVER.into(), 53));
    assert_eq!(qdst, (RETURN.into(), nat_port));
    // (b) The server's port is closed: port unreachable to the returnaddress, quoting what
    // Tandem sent it (returnaddress:natport → server:53): back to the client.
    let request = udp(OUR_MAC, (RETURN, nat_port), (SERVER, 53), 10);
    let mut icmp = icmp_error(server_mac(11), SERVER, RETURN, (3, 3, 0), &request);
    assert!(matches!(handle(&e, &mut icmp, now), Verdict::Transmit(_)));
    assert_eq!(icmp[0..6], CLIENT_MAC);
    let (src, dst, qsrc, qdst) = icmp_summary(&icmp);
    assert_eq!((src, dst), (CLUSTER.into(), CLIENT.into()));
    assert_eq!(qsrc, (CLIENT.into(), 4000));
    assert_eq!(qdst, (CLUSTER.into(), 5353));
    // About a datagram to another server than the record's: not that flow.
    let other = udp(OUR_MAC, (RETURN, nat_port), ([192, 0, 2, 12], 53), 10);
    let mut icmp = icmp_error(server_mac(12), [192, 0, 2, 12], RETURN, (3, 3, 0), &other);
    assert_eq!(
        handle(&e, &mut icmp, now),
        Verdict::Drop(DropReason::IcmpNoConnection)
    );
}

#[test]
fn nat_icmp_about_tcp_keeps_the_quoted_tcp_checksum() {
    let now = Instant::now();
    let cfg = "port add 192.0.2.100@8080 method nat\nserver add 192.0.2.100@8080@192.0.2.11 returnaddress 192.0.2.200 mapport 80\n";
    let e = engine(cfg, 0, now);
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(CLIENT, CLUSTER, 64)
        .tcp(40000, 8080, 1, 65535)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    assert!(matches!(handle(&e, &mut syn, now), Verdict::Transmit(_)));
    let nat_port = u16::from_be_bytes([syn[34], syn[35]]);
    // The SYN-ACK tandemd sent the client (cluster:8080 → client:40000) with 100 bytes of
    // data, quoted whole by a router: the quoted TCP checksum can be checked in full.
    let mut answer = Vec::new();
    PacketBuilder::ethernet2(server_mac(11), CLIENT_MAC)
        .ipv4(CLUSTER, CLIENT, 64)
        .tcp(8080, 40000, 9, 65535)
        .syn()
        .ack(2)
        .write(&mut answer, &[5u8; 100])
        .unwrap();
    let mut icmp = icmp_error(ROUTER_MAC, ROUTER, CLUSTER, (3, 4, 1400), &answer);
    assert!(matches!(handle(&e, &mut icmp, now), Verdict::Transmit(_)));
    let (src, dst, qsrc, qdst) = icmp_summary(&icmp);
    assert_eq!((src, dst), (RETURN.into(), SERVER.into()));
    assert_eq!(qsrc, (SERVER.into(), 80));
    assert_eq!(qdst, (RETURN.into(), nat_port));
    let Ok(Frame::IcmpError(err)) = wire::parse(&icmp) else {
        unreachable!()
    };
    let seg = &icmp[err.quoted.l4..err.end];
    assert_eq!(seg.len(), 120);
    let pseudo = checksum::pseudo_header_sum_ipv4(SERVER.into(), RETURN.into(), 6, 120);
    let sum = checksum::combine(pseudo, checksum::ones_complement_sum(seg));
    assert_eq!(sum, 0xffff, "quoted TCP checksum of the translated segment");
}
