//! The forwarding engine over IPv6, frame by frame without sockets: neighbour discovery
//! (solicitations answered and sent, advertisements learnt, unsolicited advertisements on
//! install), MAC and NAT forwarding with checksums checked by etherparse, resets, IPv4 and
//! IPv6 clusters on one node, and counted drops of malformed IPv6 frames.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{ControlFrameKind, DropReason, Engine, Plan, RxMeta, Verdict};
use tandem_wire::{Frame, NdpOp, ndp};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn client() -> Ipv6Addr {
    v6("2001:db8:1::7")
}

fn cluster() -> Ipv6Addr {
    v6("2001:db8::100")
}

fn server(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

fn server_mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

/// A node with IPv4 nfa 192.0.2.2 (as the daemon runs today) and `text`.
fn config(text: &str) -> Config {
    let base = "executor start\nexecutor set nfa 192.0.2.2\ncluster add 2001:db8::100\n";
    load_file(&format!("{base}{text}"), "test.cfg", &Config::default()).expect("valid config")
}

fn plan(e: &Engine, cfg: &Config, forwarding: bool) -> Plan {
    Plan::compile(
        cfg,
        &tandem_core::health::Overlay::default(),
        forwarding,
        OUR_MAC,
        &e.counters,
    )
}

/// A solicited advertisement from server `last` (unicast to us), as its kernel sends it.
fn advert_from(last: u8) -> Vec<u8> {
    let ns = ndp::neighbor_solicitation(OUR_MAC, v6("fe80::ff:fe00:2"), server(last.into()));
    let Ok(Frame::Ndp(ns)) = tandem_wire::parse(&ns) else {
        panic!()
    };
    ndp::neighbor_advertisement(server_mac(last), &ns)
}

/// An engine with `cfg` installed and servers 2001:db8::11-13 resolved by advertisements.
fn engine(cfg: &Config, now: Instant) -> Engine {
    let e = Engine::default();
    e.install(plan(&e, cfg, true), now);
    for last in 0x11..=0x13 {
        let mut na = advert_from(last);
        let mut out = Vec::new();
        assert_eq!(
            e.handle(&mut na, RxMeta::default(), now, &mut out),
            Verdict::Pass
        );
    }
    e
}

fn tcp6(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), syn: bool, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv6(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(777);
    }
    let payload = if syn {
        &[][..]
    } else {
        &b"GET / HTTP/1.0\r\n\r\n"[..]
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn handle(e: &Engine, frame: &mut [u8], now: Instant) -> (Verdict, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let v = e.handle(frame, RxMeta::default(), now, &mut out);
    (v, out)
}

/// (dst mac, src, src port, dst, dst port), checking the TCP checksum with etherparse.
fn summary(frame: &[u8]) -> ([u8; 6], Ipv6Addr, u16, Ipv6Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("valid frame");
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!("not ipv6")
    };
    let h = ip.header();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not tcp")
    };
    let want = t.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
    assert_eq!(want, t.checksum(), "TCP checksum");
    let dst_mac: [u8; 6] = frame[0..6].try_into().unwrap();
    (
        dst_mac,
        h.source_addr(),
        t.source_port(),
        h.destination_addr(),
        t.destination_port(),
    )
}

fn ndp_of(frame: &[u8]) -> tandem_wire::Ndp {
    match tandem_wire::parse(frame) {
        Ok(Frame::Ndp(n)) => n,
        other => panic!("not NDP: {other:?}"),
    }
}

#[test]
fn mac_forwarding_changes_only_the_mac_addresses() {
    let now = Instant::now();
    let cfg = config("port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11\n");
    let e = engine(&cfg, now);
    let mut f = tcp6((client(), 40000), (cluster(), 80), true, false);
    let before = f.clone();
    let (v, _) = handle(&e, &mut f, now);
    assert!(matches!(v, Verdict::Transmit(_)), "{v:?}");
    assert_eq!(&f[0..6], &server_mac(0x11));
    assert_eq!(&f[6..12], &OUR_MAC);
    assert_eq!(&f[12..], &before[12..], "IPv6 and TCP untouched");
    assert_eq!(e.conns.len(), 1);
    // The rest of the connection follows its record.
    let mut f = tcp6((client(), 40000), (cluster(), 80), false, true);
    assert!(matches!(handle(&e, &mut f, now).0, Verdict::Transmit(_)));
    assert_eq!(&f[0..6], &server_mac(0x11));
}

#[test]
fn nat_translates_both_ways() {
    let now = Instant::now();
    let cfg = config(
        "port add 2001:db8::100@8080 method nat\nserver add 2001:db8::100@8080@2001:db8::12 returnaddress 2001:db8::200 mapport 80\n",
    );
    let e = engine(&cfg, now);
    let mut f = tcp6((client(), 40000), (cluster(), 8080), true, false);
    assert!(matches!(handle(&e, &mut f, now).0, Verdict::Transmit(_)));
    let (mac, src, sport, dst, dport) = summary(&f);
    assert_eq!(mac, server_mac(0x12));
    assert_eq!((src, dst, dport), (v6("2001:db8::200"), server(0x12), 80));
    // The server's reply to returnaddress:sport comes back translated to the client.
    let reply = PacketBuilder::ethernet2(server_mac(0x12), OUR_MAC)
        .ipv6(server(0x12).octets(), v6("2001:db8::200").octets(), 64)
        .tcp(80, sport, 5000, 65535)
        .syn()
        .ack(1001);
    let mut r = Vec::new();
    reply.write(&mut r, &[]).unwrap();
    assert!(matches!(handle(&e, &mut r, now).0, Verdict::Transmit(_)));
    assert_eq!(
        summary(&r),
        (CLIENT_MAC, cluster(), 8080, client(), 40000),
        "from the cluster to the client"
    );
}

#[test]
fn solicitations_for_owned_addresses_are_answered() {
    let now = Instant::now();
    let cfg = config(
        "port add 2001:db8::100@8080 method nat\nserver add 2001:db8::100@8080@2001:db8::12 returnaddress 2001:db8::200\n",
    );
    let e = engine(&cfg, now);
    let sent_before = e.node.ndp_sent.load(std::sync::atomic::Ordering::Relaxed);
    for (target, answered) in [
        ("2001:db8::100", true),
        ("2001:db8::200", true),
        ("2001:db8::12", false),
        ("2001:db8::99", false),
    ] {
        let mut ns = ndp::neighbor_solicitation(CLIENT_MAC, client(), v6(target));
        let (v, out) = handle(&e, &mut ns, now);
        assert_eq!(out.len(), usize::from(answered), "NS for {target}");
        if answered {
            assert_eq!(v, Verdict::Consumed);
            assert_eq!(&out[0][..6], &CLIENT_MAC, "unicast to the solicitor");
            let na = ndp_of(&out[0]);
            assert_eq!(na.op, NdpOp::Advert);
            assert_eq!((na.src_ip, na.dst_ip), (v6(target), client()));
            assert_eq!((na.target, na.link_addr), (v6(target), Some(OUR_MAC)));
            assert_eq!(na.flags, ndp::FLAG_SOLICITED | ndp::FLAG_OVERRIDE);
        } else {
            assert_eq!(v, Verdict::Pass, "left to the kernel");
        }
    }
    let sent = e.node.ndp_sent.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent - sent_before, 2, "two advertisements counted");
}

#[test]
fn install_announces_and_solicits_for_both_families() {
    let now = Instant::now();
    let cfg = config(
        "cluster add 192.0.2.100\nport add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11\n",
    );
    let e = Engine::default();
    let frames = e.install(plan(&e, &cfg, true), now);
    let kinds = |k| frames.iter().filter(|f| f.kind == k).count();
    assert_eq!(kinds(ControlFrameKind::GratuitousArp), 2, "both forms");
    assert_eq!(kinds(ControlFrameKind::UnsolicitedNa), 1);
    assert_eq!(kinds(ControlFrameKind::ArpRequest), 1);
    assert_eq!(kinds(ControlFrameKind::NeighborSolicit), 1);
    for f in &frames {
        match f.kind {
            ControlFrameKind::UnsolicitedNa => {
                let n = ndp_of(&f.bytes);
                assert_eq!(
                    (n.op, n.target, n.dst_ip),
                    (NdpOp::Advert, cluster(), ndp::ALL_NODES)
                );
                assert_eq!(n.flags, ndp::FLAG_OVERRIDE);
                assert_eq!(n.link_addr, Some(OUR_MAC));
                assert!(f.is_announcement());
            }
            ControlFrameKind::NeighborSolicit => {
                let n = ndp_of(&f.bytes);
                assert_eq!(n.target, server(0x11));
                assert_eq!(n.dst_ip, v6("ff02::1:ff00:11"), "solicited-node");
                assert_eq!(&f.bytes[..6], &[0x33, 0x33, 0xff, 0, 0, 0x11]);
                // From the link-local address of our MAC: the nfa is IPv4.
                assert_eq!(n.src_ip, v6("fe80::ff:fe00:2"));
                assert_eq!(n.link_addr, Some(OUR_MAC));
            }
            ControlFrameKind::GratuitousArp => {
                let Ok(Frame::Arp(a)) = tandem_wire::parse(&f.bytes) else {
                    panic!()
                };
                assert_eq!(a.sender_ip, Ipv4Addr::new(192, 0, 2, 100));
            }
            _ => {}
        }
    }
    // Nothing new: no announcement again; the repeat is `announcements()`.
    let again = e.install(plan(&e, &cfg, true), now);
    assert!(again.iter().all(|f| !f.is_announcement()));
    let ann = e.announcements();
    assert_eq!(ann.len(), 3);
    assert!(ann.iter().all(|f| f.is_announcement()));

    // Both families forward on one node once their next hops answered.
    let mut na = advert_from(0x11);
    handle(&e, &mut na, now);
    let mut arp = tandem_wire::arp_reply(
        server_mac(0x11),
        Ipv4Addr::new(192, 0, 2, 11),
        OUR_MAC,
        Ipv4Addr::new(192, 0, 2, 2),
    );
    handle(&e, &mut arp, now);
    let mut f = tcp6((client(), 40000), (cluster(), 80), true, false);
    assert!(matches!(handle(&e, &mut f, now).0, Verdict::Transmit(_)));
    let mut f4 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4([203, 0, 113, 7], [192, 0, 2, 100], 64)
        .tcp(40000, 80, 1, 100)
        .syn()
        .write(&mut f4, &[])
        .unwrap();
    assert!(matches!(handle(&e, &mut f4, now).0, Verdict::Transmit(_)));
    assert_eq!(&f4[0..6], &server_mac(0x11));
}

#[test]
fn next_hops_are_learnt_from_advertisements_and_solicitations_only_when_wanted() {
    let now = Instant::now();
    let cfg = config(
        "port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11+2001:db8::12\n",
    );
    let e = Engine::default();
    e.install(plan(&e, &cfg, true), now);
    // Unresolved: dropped, and asked for (rate-limited: install just asked).
    let mut f = tcp6((client(), 40000), (cluster(), 80), true, false);
    let (v, _) = handle(&e, &mut f, now);
    assert_eq!(v, Verdict::Drop(DropReason::NeighborUnresolved));
    let later = now + std::time::Duration::from_secs(1);
    let mut f = tcp6((client(), 40001), (cluster(), 80), true, false);
    let (_, out) = handle(&e, &mut f, later);
    assert!(
        out.iter().any(|o| ndp_of(o).op == NdpOp::Solicit),
        "a solicitation for the unresolved server"
    );
    // .11 answers; .12 solicits us for the cluster address, its source link-layer address
    // teaches us its MAC; an unwanted address teaches nothing.
    let mut na = advert_from(0x11);
    handle(&e, &mut na, now);
    let mut ns = ndp::neighbor_solicitation(server_mac(0x12), server(0x12), cluster());
    assert_eq!(handle(&e, &mut ns, now).0, Verdict::Consumed);
    let mut stranger = ndp::neighbor_solicitation(server_mac(0x77), server(0x77), cluster());
    handle(&e, &mut stranger, now);
    assert_eq!(
        e.neighbors.get(IpAddr::V6(server(0x11))),
        Some(server_mac(0x11))
    );
    assert_eq!(
        e.neighbors.get(IpAddr::V6(server(0x12))),
        Some(server_mac(0x12))
    );
    assert_eq!(e.neighbors.get(IpAddr::V6(server(0x77))), None);
    // Learnt also while not forwarding (a standby has its next hops at takeover), but no
    // solicitation is answered then.
    let standby = Engine::default();
    standby.install(plan(&standby, &cfg, false), now);
    let mut na = advert_from(0x11);
    handle(&standby, &mut na, now);
    assert_eq!(
        standby.neighbors.get(IpAddr::V6(server(0x11))),
        Some(server_mac(0x11))
    );
    let mut ns = ndp::neighbor_solicitation(CLIENT_MAC, client(), cluster());
    assert_eq!(handle(&standby, &mut ns, now), (Verdict::Pass, vec![]));
}

#[test]
fn reset_yes_sends_ipv6_resets_to_clients_of_a_server_going_down() {
    let now = Instant::now();
    let mut cfg =
        config("port add 2001:db8::100@80 reset yes\nserver add 2001:db8::100@80@2001:db8::11\n");
    let e = engine(&cfg, now);
    let mut syn = tcp6((client(), 40000), (cluster(), 80), true, false);
    assert!(matches!(handle(&e, &mut syn, now).0, Verdict::Transmit(_)));
    let mut ack = tcp6((client(), 40000), (cluster(), 80), false, true);
    assert!(matches!(handle(&e, &mut ack, now).0, Verdict::Transmit(_)));
    cfg.apply(
        &tandem_core::config::parse_line("server down 2001:db8::100@80@2001:db8::11")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let frames = e.install(plan(&e, &cfg, true), now);
    let rst = frames
        .iter()
        .find(|f| f.kind == ControlFrameKind::TcpReset)
        .expect("a reset");
    let (mac, src, sport, dst, dport) = summary(&rst.bytes);
    assert_eq!(
        (mac, src, sport, dst, dport),
        (CLIENT_MAC, cluster(), 80, client(), 40000)
    );
    let Ok(Frame::Ip(p)) = tandem_wire::parse(&rst.bytes) else {
        panic!()
    };
    assert_eq!(
        p.tcp_seq_ack(&rst.bytes),
        Some((777, 0)),
        "the client's ACK as sequence"
    );
    assert_eq!(e.conns.len(), 0);
}

#[test]
fn malformed_ipv6_frames_are_counted_and_forwarding_goes_on() {
    let now = Instant::now();
    let cfg = config("port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11\n");
    let e = engine(&cfg, now);
    let good = tcp6((client(), 40000), (cluster(), 80), true, false);
    // A fragment header in front of TCP.
    let mut fragment = good.clone();
    fragment[20] = 44;
    let plen = u16::from_be_bytes([fragment[18], fragment[19]]) + 8;
    fragment[18..20].copy_from_slice(&plen.to_be_bytes());
    fragment.splice(54..54, [6, 0, 0, 1, 0, 0, 0, 1]);
    // A hop-by-hop header running past the packet.
    let mut bad_ext = good.clone();
    bad_ext[20] = 0;
    bad_ext[55] = 200;
    // A solicitation that crossed a router (hop limit not 255).
    let mut bad_ns = ndp::neighbor_solicitation(CLIENT_MAC, client(), cluster());
    bad_ns[21] = 64;
    let mut version = good.clone();
    version[14] = 0x40;
    let truncated = good[..40].to_vec();
    for mut f in [fragment, bad_ext, bad_ns, version, truncated] {
        let (v, out) = handle(&e, &mut f, now);
        assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
        assert!(out.is_empty());
    }
    assert_eq!(e.node.dropped(DropReason::Fragment), 1);
    assert_eq!(e.node.dropped(DropReason::BadExtensionHeader), 1);
    assert_eq!(e.node.dropped(DropReason::BadNdp), 1);
    assert_eq!(e.node.dropped(DropReason::BadIpVersion), 1);
    assert_eq!(e.node.dropped(DropReason::Truncated), 1);
    let mut f = good;
    assert!(matches!(handle(&e, &mut f, now).0, Verdict::Transmit(_)));
}

#[test]
fn other_icmpv6_to_a_cluster_is_dropped_and_to_others_passed() {
    let now = Instant::now();
    let cfg = config("port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11\n");
    let e = engine(&cfg, now);
    let echo = |dst: Ipv6Addr| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
            .ipv6(client().octets(), dst.octets(), 64)
            .icmpv6_echo_request(1, 1)
            .write(&mut v, b"ping")
            .unwrap();
        v
    };
    let mut f = echo(cluster());
    assert_eq!(
        handle(&e, &mut f, now).0,
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
    let mut f = echo(v6("2001:db8::2"));
    assert_eq!(handle(&e, &mut f, now).0, Verdict::Pass);
    // No port 81 on the cluster.
    let mut f = tcp6((client(), 40000), (cluster(), 81), true, false);
    assert_eq!(handle(&e, &mut f, now).0, Verdict::Drop(DropReason::NoPort));
}

#[test]
fn ipv6_configurations_that_cannot_be_served_are_refused_at_commit() {
    let refused = |text: &str, want: &str| {
        let base =
            "executor set nfa 192.0.2.2\ncluster add 2001:db8::100\ncluster add 192.0.2.100\n";
        let err = load_file(&format!("{base}{text}"), "test.cfg", &Config::default())
            .expect_err(text)
            .to_string();
        assert!(err.contains(want), "{text}: {err}");
    };
    refused(
        "cluster add ff05::1",
        "cluster ff05::1 cannot be forwarded to: it is a multicast address",
    );
    refused("cluster add ::ffff:192.0.2.7", "IPv4-mapped");
    refused(
        "port add 2001:db8::100@80\nserver add 2001:db8::100@80@::ffff:192.0.2.11",
        "server ::ffff:192.0.2.11 cannot be forwarded to",
    );
    refused(
        "port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11 router ff02::2",
        "router ff02::2 cannot be forwarded to",
    );
    // Families: an IPv6 server of an IPv4 cluster (MAC or NAT), an IPv4 returnaddress or
    // router for an IPv6 server.
    refused(
        "port add 192.0.2.100@80\nserver add 192.0.2.100@80@2001:db8::11",
        "server 2001:db8::11 is not of the same address family as cluster 192.0.2.100",
    );
    refused(
        "port add 2001:db8::100@80 method nat\nserver add 2001:db8::100@80@2001:db8::11 returnaddress 192.0.2.200",
        "returnaddress 192.0.2.200 is not of the same address family",
    );
    refused(
        "port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11 router 192.0.2.1",
        "router 192.0.2.1 is not of the same address family",
    );
    // A link-local next hop is on the link: served.
    let cfg = config(
        "port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11 router fe80::1\n",
    );
    let e = Engine::default();
    let p = plan(&e, &cfg, true);
    assert!(p.neighbors.contains(&IpAddr::V6(v6("fe80::1"))));
}

#[test]
fn an_ipv6_nfa_solicits_from_itself_and_arps_with_probes() {
    let now = Instant::now();
    let text = "executor start\nexecutor set nfa 2001:db8::2\ncluster add 2001:db8::100\ncluster add 192.0.2.100\n\
                port add 2001:db8::100@80\nserver add 2001:db8::100@80@2001:db8::11\n\
                port add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11\n";
    let cfg = load_file(text, "test.cfg", &Config::default()).unwrap();
    let e = Engine::default();
    let frames = e.install(plan(&e, &cfg, true), now);
    let ns = frames
        .iter()
        .find(|f| f.kind == ControlFrameKind::NeighborSolicit)
        .expect("a solicitation");
    assert_eq!(ndp_of(&ns.bytes).src_ip, v6("2001:db8::2"));
    let arp = frames
        .iter()
        .find(|f| f.kind == ControlFrameKind::ArpRequest)
        .expect("an ARP request");
    let Ok(Frame::Arp(a)) = tandem_wire::parse(&arp.bytes) else {
        panic!()
    };
    assert_eq!(
        (a.sender_ip, a.target_ip),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(192, 0, 2, 11)),
        "an RFC 5227 probe"
    );
    // The answer to a probe (to 0.0.0.0) teaches the server's MAC.
    let mut reply = tandem_wire::arp_reply(
        server_mac(0x11),
        Ipv4Addr::new(192, 0, 2, 11),
        OUR_MAC,
        Ipv4Addr::UNSPECIFIED,
    );
    handle(&e, &mut reply, now);
    assert_eq!(
        e.neighbors.get(IpAddr::from([192, 0, 2, 11])),
        Some(server_mac(0x11))
    );
}

#[test]
fn a_replicated_ipv6_nat_connection_goes_on_at_the_partner() {
    use std::sync::atomic::Ordering::Relaxed;
    let now = Instant::now();
    let cfg = config(
        "port add 2001:db8::100@8080 method nat repstrategy connection\nserver add 2001:db8::100@8080@2001:db8::12 returnaddress 2001:db8::200 mapport 80\n",
    );
    let active = engine(&cfg, now);
    active.replication.enabled.store(true, Relaxed);
    let mut syn = tcp6((client(), 40000), (cluster(), 8080), true, false);
    assert!(matches!(
        handle(&active, &mut syn, now).0,
        Verdict::Transmit(_)
    ));
    let (_, _, nat_port, _, _) = summary(&syn);
    let mut ack = tcp6((client(), 40000), (cluster(), 8080), false, true);
    assert!(matches!(
        handle(&active, &mut ack, now).0,
        Verdict::Transmit(_)
    ));
    let records = active.replication.drain();
    assert!(
        !records.is_empty(),
        "the established connection is replicated"
    );
    // The partner installs the records (through the replication wire format) and, once
    // Active, forwards both directions of the connection.
    let partner = engine(&cfg, now);
    for r in &records {
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        let back =
            tandem_core::replication::Record::decode(&mut tandem_core::codec::Reader::new(&bytes))
                .expect("decodes");
        partner.install_replicated(&back, now).expect("installed");
    }
    let mut more = tcp6((client(), 40000), (cluster(), 8080), false, true);
    assert!(matches!(
        handle(&partner, &mut more, now).0,
        Verdict::Transmit(_)
    ));
    assert_eq!(
        summary(&more),
        (
            server_mac(0x12),
            v6("2001:db8::200"),
            nat_port,
            server(0x12),
            80
        )
    );
    let reply = PacketBuilder::ethernet2(server_mac(0x12), OUR_MAC)
        .ipv6(server(0x12).octets(), v6("2001:db8::200").octets(), 64)
        .tcp(80, nat_port, 5000, 65535)
        .ack(1001);
    let mut r = Vec::new();
    reply.write(&mut r, b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
    assert!(matches!(
        handle(&partner, &mut r, now).0,
        Verdict::Transmit(_)
    ));
    assert_eq!(summary(&r), (CLIENT_MAC, cluster(), 8080, client(), 40000));
}
