//! The forwarding engine, driven frame by frame without sockets: MAC and NAT rewrites, records,
//! weights, affinity, hash, ARP, and counted drops of malformed frames.

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{ControlFrameKind, DropReason, Engine, Plan, RxMeta, Verdict};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const CLIENT: [u8; 4] = [203, 0, 113, 7];
const CLUSTER: [u8; 4] = [192, 0, 2, 100];
const RETURN: [u8; 4] = [192, 0, 2, 200];

fn server_mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

fn config(text: &str) -> Config {
    let base = "executor start\nexecutor set nfa 192.0.2.2\ncluster add 192.0.2.100\n";
    load_file(&format!("{base}{text}"), "test.cfg", &Config::default()).expect("valid config")
}

/// An engine with `cfg` installed and servers 192.0.2.11-13 resolved.
fn engine(cfg: &Config, now: Instant) -> Engine {
    let e = Engine::default();
    e.install(
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    for last in 11..=13 {
        let mut arp = tandem_wire::arp_reply(
            server_mac(last),
            Ipv4Addr::new(192, 0, 2, last),
            OUR_MAC,
            Ipv4Addr::new(192, 0, 2, 2),
        );
        let mut out = Vec::new();
        e.handle(&mut arp, RxMeta::default(), now, &mut out);
    }
    e
}

fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), syn: bool, ack: bool, fin: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(777);
    }
    if fin {
        b = b.fin();
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

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut v = Vec::new();
    b.write(&mut v, b"ping").unwrap();
    v
}

fn handle(e: &Engine, frame: &mut [u8], now: Instant) -> Verdict {
    let mut out = Vec::new();
    e.handle(frame, RxMeta::default(), now, &mut out)
}

/// (dst mac, src ip, src port, dst ip, dst port), checking every checksum on the way.
fn summary(frame: &[u8]) -> ([u8; 6], Ipv4Addr, u16, Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("valid frame");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let h = ip.header();
    assert_eq!(
        h.to_header().calc_header_checksum(),
        h.header_checksum(),
        "IP checksum"
    );
    let (sp, dp) = match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), t.payload())
                .unwrap();
            assert_eq!(want, t.checksum(), "TCP checksum");
            (t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        _ => panic!("no transport"),
    };
    let dst_mac: [u8; 6] = frame[0..6].try_into().unwrap();
    (dst_mac, h.source_addr(), sp, h.destination_addr(), dp)
}

#[test]
fn mac_forwarding_changes_only_the_mac_addresses() {
    let now = Instant::now();
    let cfg = config("port add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11\n");
    let e = engine(&cfg, now);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), true, false, false);
    let before = f.clone();
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    assert_eq!(&f[0..6], &server_mac(11));
    assert_eq!(&f[6..12], &OUR_MAC);
    assert_eq!(&f[12..], &before[12..], "IP and TCP untouched");
    assert_eq!(e.conns.len(), 1);
}

#[test]
fn nat_translates_both_ways() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@8080 method nat\nserver add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200 mapport 80\n",
    );
    let e = engine(&cfg, now);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), true, false, false);
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    let (mac, src, sport, dst, dport) = summary(&f);
    assert_eq!(mac, server_mac(12));
    assert_eq!(
        (src, dst, dport),
        (Ipv4Addr::from(RETURN), Ipv4Addr::new(192, 0, 2, 12), 80)
    );
    // The server's reply to returnaddress:sport comes back translated to the client.
    let reply = PacketBuilder::ethernet2(server_mac(12), OUR_MAC)
        .ipv4([192, 0, 2, 12], RETURN, 64)
        .tcp(80, sport, 5000, 65535)
        .syn()
        .ack(1001);
    let mut r = Vec::new();
    reply.write(&mut r, &[]).unwrap();
    assert!(matches!(handle(&e, &mut r, now), Verdict::Transmit(_)));
    let (mac, src, sport2, dst, dport2) = summary(&r);
    assert_eq!(mac, CLIENT_MAC);
    assert_eq!(
        (src, sport2, dst, dport2),
        (Ipv4Addr::from(CLUSTER), 8080, Ipv4Addr::from(CLIENT), 40000)
    );
}

#[test]
fn mid_connection_segment_without_record_is_dropped_unless_hash() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@80\nport add 192.0.2.100@81 selectionalgorithm hash\nserver add 192.0.2.100@80+81@192.0.2.11+192.0.2.12\n",
    );
    let e = engine(&cfg, now);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), false, true, false);
    assert_eq!(
        handle(&e, &mut f, now),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(e.node.dropped(DropReason::NoConnection), 1);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 81), false, true, false);
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
}

#[test]
fn weights_spread_new_connections_and_weight_zero_keeps_open_ones() {
    let now = Instant::now();
    let mut cfg = config(
        "port add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11+192.0.2.12 weight 10\nserver add 192.0.2.100@80@192.0.2.13 weight 20\n",
    );
    let e = engine(&cfg, now);
    let mut per = std::collections::BTreeMap::<u8, usize>::new();
    for p in 0..400u16 {
        let mut f = tcp((CLIENT, 10000 + p), (CLUSTER, 80), true, false, false);
        assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
        *per.entry(f[5]).or_default() += 1;
    }
    assert_eq!(per.get(&11), Some(&100));
    assert_eq!(per.get(&12), Some(&100));
    assert_eq!(per.get(&13), Some(&200));
    // Weight 0 for .13: no new connections there, but its open ones continue.
    let open = (10000..10400).find(|p| {
        let mut f = tcp((CLIENT, *p), (CLUSTER, 80), false, true, false);
        handle(&e, &mut f, now);
        f[5] == 13
    });
    let open = open.expect("a connection on .13");
    let cmd = tandem_core::config::parse_line("server set 192.0.2.100@80@192.0.2.13 weight 0")
        .unwrap()
        .unwrap();
    cfg.apply(&cmd).unwrap();
    e.install(
        Plan::compile(
            &cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    for p in 20000..20100u16 {
        let mut f = tcp((CLIENT, p), (CLUSTER, 80), true, false, false);
        handle(&e, &mut f, now);
        assert_ne!(f[5], 13, "weight 0 server got a new connection");
    }
    let mut f = tcp((CLIENT, open), (CLUSTER, 80), false, true, false);
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    assert_eq!(f[5], 13, "open connection moved");
}

#[test]
fn reset_yes_sends_a_reset_to_clients_of_a_server_going_down() {
    let now = Instant::now();
    let mut cfg =
        config("port add 192.0.2.100@80 reset yes\nserver add 192.0.2.100@80@192.0.2.11\n");
    let e = engine(&cfg, now);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), true, false, false);
    handle(&e, &mut f, now);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), false, true, false);
    handle(&e, &mut f, now);
    cfg.apply(
        &tandem_core::config::parse_line("server down 192.0.2.100@80@192.0.2.11")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let frames = e.install(
        Plan::compile(
            &cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    let rst = frames
        .iter()
        .filter(|fr| fr.kind == ControlFrameKind::TcpReset)
        .find_map(|fr| {
            let p = SlicedPacket::from_ethernet(&fr.bytes).ok()?;
            match p.transport {
                Some(TransportSlice::Tcp(t)) if t.rst() => Some((
                    t.sequence_number(),
                    t.destination_port(),
                    fr.bytes[0..6].to_vec(),
                )),
                _ => None,
            }
        })
        .expect("a reset");
    assert_eq!(
        rst,
        (777, 40000, CLIENT_MAC.to_vec()),
        "reset carries the client's ACK as its sequence number"
    );
    assert_eq!(e.conns.len(), 0);
}

#[test]
fn affinity_keeps_a_client_until_stickytime_passes() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@80 selectionalgorithm affinity stickytime 5\nserver add 192.0.2.100@80@192.0.2.11+192.0.2.12+192.0.2.13\n",
    );
    let e = engine(&cfg, now);
    let mut first = None;
    for p in 0..100u16 {
        let mut f = tcp((CLIENT, 10000 + p), (CLUSTER, 80), true, false, false);
        handle(&e, &mut f, now + Duration::from_millis(p as u64 * 10));
        assert_eq!(
            *first.get_or_insert(f[5]),
            f[5],
            "client moved while sticky"
        );
    }
    // Another client is spread independently; after stickytime the first one picks afresh.
    let later = now + Duration::from_secs(20);
    e.housekeeping(later);
    assert_eq!(e.affinity.len(), 0);
    let seen: std::collections::BTreeSet<u8> = (0..3u16)
        .map(|i| {
            let t = later + Duration::from_secs(10 * i as u64);
            let mut f = tcp((CLIENT, 30000 + i), (CLUSTER, 80), true, false, false);
            handle(&e, &mut f, t);
            e.housekeeping(t + Duration::from_secs(6));
            f[5]
        })
        .collect();
    assert!(seen.len() > 1, "selection did not start afresh: {seen:?}");
}

#[test]
fn udp_flows_keep_their_server() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@9999 protocol udp\nserver add 192.0.2.100@9999@192.0.2.11+192.0.2.12\n",
    );
    let e = engine(&cfg, now);
    let mut f = udp((CLIENT, 5000), (CLUSTER, 9999));
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
    let mac = f[5];
    for _ in 0..5 {
        let mut f = udp((CLIENT, 5000), (CLUSTER, 9999));
        handle(&e, &mut f, now);
        assert_eq!(f[5], mac);
    }
}

#[test]
fn arp_is_answered_for_cluster_and_return_addresses_only() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@8080 method nat\nserver add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200\n",
    );
    let e = engine(&cfg, now);
    for (target, answered) in [
        ([192, 0, 2, 100], true),
        ([192, 0, 2, 200], true),
        ([192, 0, 2, 2], false),
        ([192, 0, 2, 99], false),
    ] {
        let mut req =
            tandem_wire::arp_request(CLIENT_MAC, Ipv4Addr::from(CLIENT), Ipv4Addr::from(target));
        let mut out = Vec::new();
        e.handle(&mut req, RxMeta::default(), now, &mut out);
        assert_eq!(out.len(), answered as usize, "ARP for {target:?}");
        if answered {
            match tandem_wire::parse(&out[0]).unwrap() {
                tandem_wire::Frame::Arp(a) => {
                    assert_eq!(a.sender_mac, OUR_MAC);
                    assert_eq!(IpAddr::V4(a.sender_ip), IpAddr::from(target));
                }
                other => panic!("not ARP: {other:?}"),
            }
        }
    }
}

#[test]
fn malformed_frames_are_counted_and_forwarding_goes_on() {
    let now = Instant::now();
    let cfg = config("port add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11\n");
    let e = engine(&cfg, now);
    let good = tcp((CLIENT, 40000), (CLUSTER, 80), true, false, false);
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut fragment = good.clone();
    fragment[20] = 0x20; // MF
    let truncated = good[..30].to_vec();
    let mut garbage = vec![0xAB; 60];
    garbage[12] = 0x08;
    garbage[13] = 0x00;
    for mut f in [bad_ihl, fragment, truncated, garbage] {
        assert!(matches!(handle(&e, &mut f, now), Verdict::Drop(_)));
    }
    assert_eq!(e.node.total_drops(), 4);
    assert_eq!(e.node.dropped(DropReason::Fragment), 1);
    assert_eq!(e.node.dropped(DropReason::BadIhl), 1);
    let mut f = good;
    assert!(matches!(handle(&e, &mut f, now), Verdict::Transmit(_)));
}

#[test]
fn executor_stop_stops_forwarding_and_answering() {
    let now = Instant::now();
    let cfg = config("port add 192.0.2.100@80\nserver add 192.0.2.100@80@192.0.2.11\n");
    let e = engine(&cfg, now);
    e.install(
        Plan::compile(
            &cfg,
            &tandem_core::health::Overlay::default(),
            false,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), true, false, false);
    assert_eq!(handle(&e, &mut f, now), Verdict::Pass);
    let mut req =
        tandem_wire::arp_request(CLIENT_MAC, Ipv4Addr::from(CLIENT), Ipv4Addr::from(CLUSTER));
    let mut out = Vec::new();
    e.handle(&mut req, RxMeta::default(), now, &mut out);
    assert!(out.is_empty());
}
