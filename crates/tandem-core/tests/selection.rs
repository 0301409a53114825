//! `selectionalgorithm connection|affinity|conn+affin` as the maintenance document has them,
//! frame by frame through the engine: which records each makes (by kind, as `port report`
//! counts them), which flows they keep, affinity broken by a server taken out, what goes to
//! the partner, and `executor set fintimeout` in the plan.

mod common;

use common::*;
use etherparse::{SlicedPacket, TransportSlice};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tandem_core::config::Config;
use tandem_core::forward::{DropReason, Engine, Plan, Refused, RxMeta, Verdict};
use tandem_core::replication::Record;
use tandem_core::select::AffinityKey;

const THREE: &str = "server add 192.0.2.100@80@192.0.2.11+192.0.2.12+192.0.2.13\n";

fn port_cfg(options: &str) -> Config {
    config(&format!("port add 192.0.2.100@80 {options}\n{THREE}"))
}

fn cluster() -> IpAddr {
    IpAddr::from(CLUSTER)
}

/// Sends one segment from `client`:`port`; the last byte of the server it went to.
fn send(e: &Engine, client: [u8; 4], port: u16, flags: u8, now: Instant) -> Result<u8, Verdict> {
    let mut f = tcp_from(CLIENT_MAC, (client, port), (CLUSTER, 80), flags);
    match handle(e, &mut f, now) {
        Verdict::Transmit(_) => Ok(f[5]),
        v => Err(v),
    }
}

/// A whole short connection (SYN, ACK with data, FIN); the server's last byte.
fn connection(e: &Engine, client: [u8; 4], port: u16, now: Instant) -> u8 {
    let s = send(e, client, port, SYN, now).expect("SYN forwarded");
    assert_eq!(
        send(e, client, port, ACK, now),
        Ok(s),
        "data follows the SYN"
    );
    assert_eq!(send(e, client, port, ACK | FIN, now), Ok(s), "FIN follows");
    s
}

fn reinstall(e: &Engine, cfg: &Config, now: Instant) -> Vec<tandem_core::forward::ControlFrame> {
    e.install(
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        now,
    )
}

#[test]
fn connection_makes_no_affinity_records_even_with_a_stickytime() {
    let now = Instant::now();
    let e = engine(
        &port_cfg("selectionalgorithm connection stickytime 60"),
        now,
    );
    let servers: BTreeSet<u8> = (0..30u16)
        .map(|p| connection(&e, CLIENT, 10_000 + p, now))
        .collect();
    assert_eq!(
        servers.len(),
        3,
        "one client's connections spread: {servers:?}"
    );
    assert_eq!(e.affinity.len(), 0);
    assert_eq!(e.port_records(cluster(), 80), (30, 0));
    // The records end after the FIN timeout: the count follows.
    e.housekeeping(now + Duration::from_secs(5));
    assert_eq!(e.port_records(cluster(), 80), (0, 0));
}

#[test]
fn affinity_makes_no_connection_records_and_keeps_the_client() {
    let now = Instant::now();
    let e = engine(&port_cfg("selectionalgorithm affinity stickytime 60"), now);
    let servers: BTreeSet<u8> = (0..30u16)
        .map(|p| connection(&e, CLIENT, 10_000 + p, now))
        .collect();
    assert_eq!(servers.len(), 1, "one client, one server: {servers:?}");
    let other = connection(&e, [203, 0, 113, 8], 10_000, now);
    assert!(e.conns.is_empty(), "no connection records");
    assert_eq!(e.port_records(cluster(), 80), (0, 2));
    let s = *servers.first().unwrap();
    let counters = e
        .counters
        .lookup(cluster(), 80, IpAddr::from([192, 0, 2, s]))
        .unwrap()
        .read();
    let extra = u64::from(other == s);
    assert_eq!(counters.total, 30 + extra, "each SYN is a new connection");
    assert_eq!(counters.active, 0, "no connection records, none active");
}

#[test]
fn affinity_lives_stickytime_after_the_last_packet() {
    let t0 = Instant::now();
    let e = engine(&port_cfg("selectionalgorithm affinity stickytime 60"), t0);
    let s = send(&e, CLIENT, 1000, SYN, t0).unwrap();
    assert_eq!(
        send(&e, CLIENT, 1000, ACK, t0),
        Ok(s),
        "the handshake's ACK"
    );
    // A long connection: each packet keeps the record alive, well past 60 s after its SYN.
    for i in 1..=5u64 {
        let t = t0 + Duration::from_secs(50 * i);
        assert_eq!(
            send(&e, CLIENT, 1000, ACK, t),
            Ok(s),
            "packet at {} s",
            50 * i
        );
    }
    let last = t0 + Duration::from_secs(250);
    e.housekeeping(last + Duration::from_secs(60));
    assert_eq!(
        e.affinity.len(),
        1,
        "alive stickytime after the last packet"
    );
    e.housekeeping(last + Duration::from_secs(61));
    assert_eq!(e.affinity.len(), 0, "gone once stickytime passed");
    assert_eq!(
        send(&e, CLIENT, 1000, ACK, last + Duration::from_secs(62)),
        Err(Verdict::Drop(DropReason::NoConnection)),
        "a segment without a record is not placed afresh"
    );
}

#[test]
fn affinity_is_broken_by_a_server_going_down_and_reset_answers_the_next_segment() {
    let now = Instant::now();
    let text = format!(
        "port add 192.0.2.100@80 selectionalgorithm affinity stickytime 60 reset yes\n{THREE}"
    );
    let mut cfg = config(&text);
    let e = engine(&cfg, now);
    let s = send(&e, CLIENT, 1000, SYN, now).unwrap();
    send(&e, CLIENT, 1000, ACK, now).unwrap();
    cfg.apply_line(&format!("server down 192.0.2.100@80@192.0.2.{s}"))
        .unwrap();
    reinstall(&e, &cfg, now);
    // The next segment of the connection finds its affinity broken: dropped, and reset.
    let mut f = tcp_from(CLIENT_MAC, (CLIENT, 1000), (CLUSTER, 80), ACK);
    let mut out = Vec::new();
    assert_eq!(
        e.handle(&mut f, RxMeta::default(), now, &mut out),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(out.len(), 1, "one reset");
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    assert!(t.rst());
    assert_eq!((t.source_port(), t.destination_port()), (80, 1000));
    assert_eq!(t.sequence_number(), 777, "the segment's ACK number");
    assert_eq!(&out[0][0..6], &CLIENT_MAC);
    assert_eq!(e.node.resets_sent.load(Relaxed), 1);
    // The client's next connection goes to another server, which it then keeps.
    let n = send(&e, CLIENT, 1001, SYN, now).unwrap();
    assert_ne!(n, s, "affinity to a down server holds");
    for p in 1002..1010 {
        assert_eq!(send(&e, CLIENT, p, SYN, now), Ok(n));
    }
    assert_eq!(e.port_records(cluster(), 80), (0, 1));
}

#[test]
fn affinity_without_reset_drops_quietly_and_a_removed_server_breaks_too() {
    let now = Instant::now();
    let mut cfg = port_cfg("selectionalgorithm affinity stickytime 60");
    let e = engine(&cfg, now);
    let s = send(&e, CLIENT, 1000, SYN, now).unwrap();
    cfg.apply_line(&format!("server remove 192.0.2.100@80@192.0.2.{s}"))
        .unwrap();
    reinstall(&e, &cfg, now);
    let mut f = tcp_from(CLIENT_MAC, (CLIENT, 1000), (CLUSTER, 80), ACK);
    let mut out = Vec::new();
    assert_eq!(
        e.handle(&mut f, RxMeta::default(), now, &mut out),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert!(out.is_empty(), "reset no: no reset");
    assert_ne!(send(&e, CLIENT, 1001, SYN, now).unwrap(), s);
}

#[test]
fn affinity_syn_flood_leaves_nothing_behind() {
    let now = Instant::now();
    let e = engine(&port_cfg("selectionalgorithm affinity stickytime 600"), now);
    for i in 0..2000 {
        let (a, p) = flood_source(i);
        let _ = send(&e, a, p, SYN, now);
    }
    let s = send(&e, CLIENT, 1000, SYN, now).unwrap();
    assert_eq!(send(&e, CLIENT, 1000, ACK, now), Ok(s));
    assert!(
        e.affinity.snapshot().len() == 1,
        "only a confirmed client counts for replication"
    );
    // Records made by a SYN alone end after syntimeout (5 s); the real client's stay.
    e.housekeeping(now + Duration::from_secs(6));
    assert_eq!(e.affinity.len(), 1);
    assert_eq!(e.port_records(cluster(), 80), (0, 1));
    assert!(e.conns.is_empty());
}

#[test]
fn affinity_full_table_refuses_new_clients_and_keeps_known_ones() {
    let now = Instant::now();
    let cfg = config(&format!(
        "executor set maxconnections 2\nport add 192.0.2.100@80 selectionalgorithm affinity stickytime 60\n{THREE}"
    ));
    let e = engine(&cfg, now);
    let a = send(&e, [203, 0, 113, 1], 1000, SYN, now).unwrap();
    send(&e, [203, 0, 113, 2], 1000, SYN, now).unwrap();
    assert_eq!(
        send(&e, [203, 0, 113, 3], 1000, SYN, now),
        Err(Verdict::Drop(DropReason::ConnectionTableFull))
    );
    assert_eq!(send(&e, [203, 0, 113, 1], 1000, ACK, now), Ok(a));
    assert_eq!(send(&e, [203, 0, 113, 1], 1001, SYN, now), Ok(a));
    assert_eq!(e.affinity.refused.load(Relaxed), 1);
}

#[test]
fn affinity_udp_datagrams_follow_the_client() {
    let now = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@53 protocol udp selectionalgorithm affinity stickytime 60\n\
         server add 192.0.2.100@53@192.0.2.11+192.0.2.12+192.0.2.13\n",
    );
    let e = engine(&cfg, now);
    let servers: BTreeSet<u8> = (0..20u16)
        .map(|p| {
            let mut f = udp((CLIENT, 5000 + p), (CLUSTER, 53));
            assert!(sent(handle(&e, &mut f, now)));
            f[5]
        })
        .collect();
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(e.port_records(cluster(), 53), (0, 1));
    assert!(e.conns.is_empty());
}

#[test]
fn conn_affin_makes_both_records_and_either_keeps_the_flow() {
    let now = Instant::now();
    let e = engine(
        &port_cfg("selectionalgorithm conn+affin stickytime 60"),
        now,
    );
    let s = send(&e, CLIENT, 1000, SYN, now).unwrap();
    send(&e, CLIENT, 1000, ACK, now).unwrap();
    for p in 1001..1010 {
        assert_eq!(
            send(&e, CLIENT, p, SYN, now),
            Ok(s),
            "new connections follow the affinity"
        );
        send(&e, CLIENT, p, ACK, now).unwrap();
    }
    assert_eq!(e.port_records(cluster(), 80), (10, 1));
    // The connection record alone keeps a connection: the affinity record gone, it stays.
    let key = AffinityKey {
        cluster: cluster(),
        port: 80,
        client: IpAddr::from(CLIENT),
    };
    e.affinity.remove(&key).unwrap();
    for _ in 0..5 {
        assert_eq!(send(&e, CLIENT, 1000, ACK, now), Ok(s));
    }
    // The affinity record alone keeps one too: a connection whose record is gone (as on a
    // standby that got only the affinity record) is placed by it.
    let t = send(&e, CLIENT, 2000, SYN, now).unwrap();
    let flow = tandem_core::flow::FlowKey {
        proto: 6,
        src_ip: IpAddr::from(CLIENT),
        src_port: 2000,
        dst_ip: cluster(),
        dst_port: 80,
    };
    assert!(e.conns.remove(&flow).is_some());
    assert_eq!(send(&e, CLIENT, 2000, ACK, now), Ok(t));
}

#[test]
fn affinity_replicates_affinity_records_only() {
    let t0 = Instant::now();
    let e = engine(
        &port_cfg("selectionalgorithm affinity stickytime 60 repstrategy both"),
        t0,
    );
    e.replication.enabled.store(true, Relaxed);
    send(&e, CLIENT, 1000, SYN, t0).unwrap();
    assert!(
        e.replication.drain().is_empty(),
        "a SYN alone is not replicated"
    );
    send(&e, CLIENT, 1000, ACK, t0).unwrap();
    let q = e.replication.drain();
    assert_eq!(q.len(), 1, "the client confirmed: its record goes");
    assert!(matches!(q[0], Record::Affinity(_)));
    // Within half the stickytime nothing more; after it, the record again.
    send(&e, CLIENT, 1000, ACK, t0 + Duration::from_secs(29)).unwrap();
    send(&e, CLIENT, 1001, SYN, t0 + Duration::from_secs(29)).unwrap();
    assert!(e.replication.drain().is_empty());
    send(&e, CLIENT, 1000, ACK, t0 + Duration::from_secs(31)).unwrap();
    let q = e.replication.drain();
    assert_eq!(q.len(), 1);
    let Record::Affinity(a) = &q[0] else {
        panic!("{q:?}")
    };
    assert_eq!(a.age_ms, 0, "the record refreshed by the packet");
    let snap = e.snapshot_records(t0 + Duration::from_secs(31));
    assert!(snap.iter().all(|r| matches!(r, Record::Affinity(_))));
    assert_eq!(snap.len(), 1);
}

#[test]
fn a_connection_record_for_an_affinity_port_is_refused() {
    let now = Instant::now();
    let active = engine(
        &port_cfg("selectionalgorithm conn+affin stickytime 60 repstrategy both"),
        now,
    );
    active.replication.enabled.store(true, Relaxed);
    send(&active, CLIENT, 1000, SYN, now).unwrap();
    send(&active, CLIENT, 1000, ACK, now).unwrap();
    let records = active.replication.drain();
    let conn = records
        .iter()
        .find(|r| matches!(r, Record::Connection(_)))
        .expect("a connection record");
    let standby = engine(
        &port_cfg("selectionalgorithm affinity stickytime 60 repstrategy both"),
        now,
    );
    assert_eq!(
        standby.install_replicated(conn, now),
        Err(Refused::AffinityPort)
    );
    let aff = records
        .iter()
        .find(|r| matches!(r, Record::Affinity(_)))
        .expect("an affinity record");
    assert_eq!(standby.install_replicated(aff, now), Ok(()));
    assert_eq!(standby.port_records(cluster(), 80), (0, 1));
}

#[test]
fn fintimeout_sets_how_long_a_closed_connection_record_lives() {
    let now = Instant::now();
    let mut cfg = port_cfg("");
    let plan = |cfg: &Config| {
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &Default::default(),
        )
        .fin_timeout
    };
    assert_eq!(plan(&cfg), Duration::from_secs(4), "IBM's default");
    cfg.executor.fintimeout = Some(30);
    assert_eq!(plan(&cfg), Duration::from_secs(30));
    let e = engine(&cfg, now);
    connection(&e, CLIENT, 1000, now);
    e.housekeeping(now + Duration::from_secs(29));
    assert_eq!(
        e.port_records(cluster(), 80),
        (1, 0),
        "closing, within fintimeout"
    );
    e.housekeeping(now + Duration::from_secs(30));
    assert_eq!(e.port_records(cluster(), 80), (0, 0));
}
