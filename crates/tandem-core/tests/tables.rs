//! Bounded tables and NAT mapping integrity, driven frame by frame: SYN floods stay within
//! `maxconnections`, half-open records go first, established flows keep working, one source
//! cannot exhaust a NAT pool, and a NAT port is held by one record only.

mod common;

use common::*;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tandem_core::forward::{DropReason, Engine, HALFOPEN_NAT_PER_CLIENT, Refused, Verdict};
use tandem_core::replication::{ConnectionRecord, Record};

const PORTS: &str = "port add 192.0.2.100@80\n\
    port add 192.0.2.100@8080 method nat\n\
    server add 192.0.2.100@80@192.0.2.11\n\
    server add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200 mapport 80\n";

fn ret() -> IpAddr {
    IpAddr::from(RETURN)
}

/// Opens a connection from `src` to cluster port `port`: SYN, then the client's ACK.
fn open(e: &Engine, src: ([u8; 4], u16), port: u16, now: Instant) -> u16 {
    let mut f = tcp(src, (CLUSTER, port), SYN);
    assert!(sent(handle(e, &mut f, now)), "SYN of {src:?} forwarded");
    let nat_port = src_port(&f);
    let mut f = tcp(src, (CLUSTER, port), ACK);
    assert!(sent(handle(e, &mut f, now)), "ACK of {src:?} forwarded");
    nat_port
}

#[test]
fn a_syn_flood_stays_within_maxconnections_and_real_clients_get_through() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections 1000\n{PORTS}"));
    let e = engine(&cfg, t0);
    assert_eq!(e.max_connections(), 1000);
    // Connections opened before the flood, on both ports.
    let before: Vec<(([u8; 4], u16), u16)> = (0..20u16)
        .map(|i| ((CLIENT, 40000 + i), if i % 2 == 0 { 80 } else { 8080 }))
        .collect();
    for &(src, port) in &before {
        open(&e, src, port, t0);
    }
    // 200 000 SYNs from random sources, half to each port, within one second.
    for i in 0..200_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 5);
        let port = if i % 2 == 0 { 80 } else { 8080 };
        let mut f = tcp(flood_source(i), (CLUSTER, port), SYN);
        handle(&e, &mut f, now);
        assert!(e.conns.len() <= 1000, "table above its limit at SYN {i}");
    }
    let now = t0 + Duration::from_secs(1);
    assert!(e.conns.evicted.load(Relaxed) >= 199_000 - 1000);
    assert_eq!(e.node.dropped(DropReason::ConnectionTableFull), 0);
    assert!(
        e.conns.queued() <= 2 * 1000 + 64 * 64 + 2 * 64,
        "half-open queues stay proportional to the table: {}",
        e.conns.queued()
    );
    assert!(e.natpool.in_use(ret(), 6) <= 1000);
    // Open connections keep working; a new real client is answered.
    for &(src, port) in &before {
        let mut f = tcp(src, (CLUSTER, port), ACK);
        assert!(sent(handle(&e, &mut f, now)), "{src:?} kept its connection");
    }
    open(&e, ([203, 0, 113, 250], 5555), 8080, now);
    open(&e, ([203, 0, 113, 250], 5556), 80, now);
    // After the SYN timeout the flood's records are gone, with their NAT ports.
    e.housekeeping(now + Duration::from_secs(6));
    assert_eq!(e.conns.len(), 22);
    assert_eq!(e.conns.halfopen(), 0);
    assert_eq!(e.natpool.in_use(ret(), 6), 11);
    assert_eq!(e.conns.queued(), 0, "queues emptied");
}

#[test]
fn a_full_table_of_established_flows_refuses_new_ones_and_keeps_the_old() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections 10\n{PORTS}"));
    let e = engine(&cfg, t0);
    for i in 0..10u16 {
        open(&e, (CLIENT, 30000 + i), 8080, t0);
    }
    let mut f = tcp((CLIENT, 31000), (CLUSTER, 8080), SYN);
    assert_eq!(
        handle(&e, &mut f, t0),
        Verdict::Drop(DropReason::ConnectionTableFull)
    );
    let mut f = udp((CLIENT, 31000), (CLUSTER, 80));
    assert_eq!(
        handle(&e, &mut f, t0),
        Verdict::Drop(DropReason::NoPort),
        "(no UDP port: the table is not asked)"
    );
    assert_eq!(e.node.dropped(DropReason::ConnectionTableFull), 1);
    assert_eq!(
        e.natpool.in_use(ret(), 6),
        10,
        "a refused flow takes no port"
    );
    for i in 0..10u16 {
        let mut f = tcp((CLIENT, 30000 + i), (CLUSTER, 8080), ACK);
        assert!(sent(handle(&e, &mut f, t0)));
    }
    // One ends: room for one.
    let mut f = tcp((CLIENT, 30000), (CLUSTER, 8080), FIN | ACK);
    handle(&e, &mut f, t0);
    e.housekeeping(t0 + Duration::from_secs(5));
    let mut f = tcp((CLIENT, 31000), (CLUSTER, 8080), SYN);
    assert!(sent(handle(&e, &mut f, t0 + Duration::from_secs(5))));
}

#[test]
fn half_open_records_end_after_syntimeout_and_free_their_nat_port() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set syntimeout 3\n{PORTS}"));
    let e = engine(&cfg, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), SYN);
    assert!(sent(handle(&e, &mut f, t0)));
    open(&e, (CLIENT, 40001), 8080, t0);
    assert_eq!(e.conns.halfopen(), 1);
    e.housekeeping(t0 + Duration::from_secs(2));
    assert_eq!(e.conns.len(), 2);
    e.housekeeping(t0 + Duration::from_secs(3));
    assert_eq!(
        e.conns.len(),
        1,
        "the half-open record ended, the established one stays"
    );
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    assert_eq!(e.conns.lookup_nat(ret(), 6, 40000), None);
    // The late ACK of the ended handshake has no record.
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), ACK);
    assert_eq!(
        handle(&e, &mut f, t0 + Duration::from_secs(3)),
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn one_source_cannot_exhaust_a_nat_pool() {
    let t0 = Instant::now();
    let e = engine(&config(PORTS), t0);
    let attacker = [198, 51, 100, 66];
    let mut refused = 0;
    for p in 0..3000u16 {
        let mut f = tcp((attacker, 2000 + p), (CLUSTER, 8080), SYN);
        if handle(&e, &mut f, t0) == Verdict::Drop(DropReason::HalfOpenLimit) {
            refused += 1;
        }
    }
    let cap = HALFOPEN_NAT_PER_CLIENT as usize;
    assert_eq!(refused, 3000 - cap);
    assert_eq!(e.natpool.in_use(ret(), 6), cap);
    assert_eq!(e.conns.client_halfopen(IpAddr::from(attacker)), cap as u32);
    // Another client still gets a port; the attacker's established connections do not count.
    open(&e, (CLIENT, 40000), 8080, t0);
    e.housekeeping(t0 + Duration::from_secs(5));
    assert_eq!(e.conns.client_halfopen(IpAddr::from(attacker)), 0);
    open(&e, (attacker, 9), 8080, t0 + Duration::from_secs(5));
}

#[test]
fn random_sources_cannot_exhaust_a_nat_pool_either() {
    let t0 = Instant::now();
    let e = engine(&config(PORTS), t0);
    let capacity = e.natpool.capacity();
    for i in 0..(capacity as u32 + 5000) {
        let mut f = tcp(flood_source(i), (CLUSTER, 8080), SYN);
        assert!(sent(handle(&e, &mut f, t0)), "SYN {i} forwarded");
    }
    assert_eq!(e.natpool.in_use(ret(), 6), capacity);
    assert!(e.conns.evicted.load(Relaxed) >= 5000);
    assert_eq!(e.node.dropped(DropReason::NatPortsExhausted), 0);
    open(&e, (CLIENT, 40000), 8080, t0);
    // Each half-open NAT record is queued in its shard and in its pool, stale entries at most
    // as many again (plus a constant per queue).
    let queued = e.conns.queued();
    assert!(queued <= 4 * capacity + 64 * 64 + 64, "queued {queued}");
}

#[test]
fn a_syn_flood_leaves_no_affinity_records() {
    let t0 = Instant::now();
    let cfg = config(
        "executor set maxconnections 100\n\
         port add 192.0.2.100@80 selectionalgorithm conn+affin stickytime 600\n\
         server add 192.0.2.100@80@192.0.2.11+192.0.2.12\n",
    );
    let e = engine(&cfg, t0);
    open(&e, (CLIENT, 40000), 80, t0);
    for i in 0..10_000u32 {
        let mut f = tcp(flood_source(i), (CLUSTER, 80), SYN);
        handle(&e, &mut f, t0 + Duration::from_millis(1));
    }
    assert!(
        e.affinity.len() <= 101,
        "affinity records: {}",
        e.affinity.len()
    );
    e.housekeeping(t0 + Duration::from_secs(6));
    assert_eq!(
        e.affinity.len(),
        1,
        "only the real client's affinity is left"
    );
    assert_eq!(e.conns.len(), 1);
}

fn nat_record(client: ([u8; 4], u16), nat_port: u16) -> ConnectionRecord {
    ConnectionRecord {
        proto: tandem_core::config::Protocol::Tcp,
        client: (IpAddr::from(client.0), client.1).into(),
        cluster: (IpAddr::from(CLUSTER), 8080).into(),
        server: "192.0.2.12".parse().unwrap(),
        nat: Some(tandem_core::forward::NatMapping {
            returnaddress: ret(),
            nat_port,
            server_port: 80,
        }),
        client_mac: CLIENT_MAC,
        client_ack: 1,
        closing: false,
        ended: false,
        idle_ms: 0,
        staletimeout_s: 300,
    }
}

/// A server reply to returnaddress:`nat_port` goes to which client port (None: dropped)?
fn reply_to(e: &Engine, nat_port: u16, now: Instant) -> Option<u16> {
    let mut r = server_tcp(12, 80, (RETURN, nat_port), ACK);
    match handle(e, &mut r, now) {
        Verdict::Transmit(_) => {
            let ihl = usize::from(r[14] & 0x0f) * 4;
            Some(u16::from_be_bytes([r[16 + ihl], r[17 + ihl]]))
        }
        _ => None,
    }
}

#[test]
fn replicated_record_on_a_busy_nat_port_is_refused() {
    let t0 = Instant::now();
    let e = engine(&config(PORTS), t0);
    // A live local connection holds NAT port 40000 (the client's own source port).
    assert_eq!(open(&e, (CLIENT, 40000), 8080, t0), 40000);
    let forged = nat_record(([198, 51, 100, 9], 40000), 40000);
    assert_eq!(
        e.install_replicated(&Record::Connection(forged), t0),
        Err(Refused::NatPortBusy)
    );
    assert_eq!(e.replicated.refused(Refused::NatPortBusy), 1);
    assert_eq!(e.conns.len(), 1);
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    assert_eq!(
        reply_to(&e, 40000, t0),
        Some(40000),
        "replies still reach the owner"
    );
    // The same connection's own copy may update it.
    let own = nat_record((CLIENT, 40000), 40000);
    assert_eq!(e.install_replicated(&Record::Connection(own), t0), Ok(()));
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
}

#[test]
fn freeing_one_record_never_releases_anothers_port() {
    let t0 = Instant::now();
    let e = engine(&config(PORTS), t0);
    let x = [198, 51, 100, 1];
    let y = [198, 51, 100, 2];
    let z = [198, 51, 100, 3];
    // R1 (X:40000 → 40000) installed; R2 (Y:40000 → 40000) refused: the port is R1's.
    let r1 = nat_record((x, 40000), 40000);
    let r2 = nat_record((y, 40000), 40000);
    assert_eq!(e.install_replicated(&Record::Connection(r1), t0), Ok(()));
    assert_eq!(
        e.install_replicated(&Record::Connection(r2), t0),
        Err(Refused::NatPortBusy)
    );
    // R2 on another port is fine (a later copy: it outlives R1).
    let mut r2b = r2;
    r2b.nat.as_mut().unwrap().nat_port = 40001;
    let t1 = t0 + Duration::from_secs(200);
    assert_eq!(e.install_replicated(&Record::Connection(r2b), t1), Ok(()));
    assert_eq!(e.natpool.in_use(ret(), 6), 2);
    // R1 expires: only its port is freed; R2 keeps its port and its replies.
    e.housekeeping(t0 + Duration::from_secs(301));
    assert_eq!(e.conns.len(), 1);
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    assert_eq!(e.conns.lookup_nat(ret(), 6, 40000), None);
    // Z:40000 takes port 40000 and cannot steal R2's entry.
    let now = t0 + Duration::from_secs(301);
    assert_eq!(open(&e, (z, 40000), 8080, now), 40000);
    assert_eq!(e.natpool.in_use(ret(), 6), 2);
    assert_eq!(
        reply_to(&e, 40001, now),
        Some(40000),
        "R2's replies reach Y:40000"
    );
    let mut f = tcp((y, 40000), (CLUSTER, 8080), ACK);
    assert!(sent(handle(&e, &mut f, now)));
    assert_eq!(src_port(&f), 40001);
    // An `ended` copy of R2 frees R2's port only.
    let mut end = r2b;
    end.ended = true;
    assert_eq!(e.install_replicated(&Record::Connection(end), now), Ok(()));
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    assert_eq!(
        reply_to(&e, 40000, now),
        Some(40000),
        "Z's replies still reach Z"
    );
    // A local record replaced by its own replicated copy on another port gives its old
    // port back.
    let mut z2 = nat_record((z, 40000), 40002);
    z2.idle_ms = 10;
    assert_eq!(e.install_replicated(&Record::Connection(z2), now), Ok(()));
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    assert_eq!(e.conns.lookup_nat(ret(), 6, 40000), None);
    assert_eq!(reply_to(&e, 40002, now), Some(40000));
}

#[test]
fn replicated_lifetimes_are_bounded_by_the_receiving_ports_settings() {
    let t0 = Instant::now();
    let cfg = config(
        "port add 192.0.2.100@8080 method nat staletimeout 60\n\
         server add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200 mapport 80\n",
    );
    let e = engine(&cfg, t0);
    let mut forged = nat_record(([198, 51, 100, 9], 5000), 5000);
    forged.staletimeout_s = u32::MAX;
    assert_eq!(
        e.install_replicated(&Record::Connection(forged), t0),
        Ok(())
    );
    e.housekeeping(t0 + Duration::from_secs(59));
    assert_eq!(e.conns.len(), 1);
    e.housekeeping(t0 + Duration::from_secs(60));
    assert_eq!(e.conns.len(), 0, "lives the port's 60 s, not 2^32 s");
    assert_eq!(e.natpool.in_use(ret(), 6), 0);
    // Unknown cluster, port or server; a NAT record on another returnaddress.
    let mut unknown = forged;
    unknown.cluster = ("192.0.2.101".parse::<IpAddr>().unwrap(), 8080).into();
    let rec = Record::Connection(unknown);
    assert_eq!(e.install_replicated(&rec, t0), Err(Refused::UnknownPort));
    unknown.cluster = (IpAddr::from(CLUSTER), 8081).into();
    let rec = Record::Connection(unknown);
    assert_eq!(e.install_replicated(&rec, t0), Err(Refused::UnknownPort));
    let mut other = forged;
    other.server = "192.0.2.13".parse().unwrap();
    let rec = Record::Connection(other);
    assert_eq!(e.install_replicated(&rec, t0), Err(Refused::UnknownServer));
    let mut other = forged;
    other.nat.as_mut().unwrap().returnaddress = "192.0.2.201".parse().unwrap();
    let rec = Record::Connection(other);
    assert_eq!(e.install_replicated(&rec, t0), Err(Refused::NatMismatch));
    let aff = tandem_core::replication::AffinityRecord {
        cluster: IpAddr::from(CLUSTER),
        port: 8080,
        client: IpAddr::from(CLIENT),
        server: "192.0.2.12".parse().unwrap(),
        age_ms: 0,
        stickytime_s: 1000,
    };
    assert_eq!(
        e.install_replicated(&Record::Affinity(aff), t0),
        Err(Refused::UnknownPort),
        "a port without affinity takes no affinity record"
    );
    assert_eq!(e.conns.len(), 0);
}

#[test]
fn replicated_records_do_not_evict_established_flows() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections 2\n{PORTS}"));
    let e = engine(&cfg, t0);
    open(&e, (CLIENT, 1), 8080, t0);
    let mut f = tcp((CLIENT, 2), (CLUSTER, 8080), SYN);
    assert!(sent(handle(&e, &mut f, t0)));
    // The half-open one makes room; then the table is full of established records.
    let r = nat_record(([198, 51, 100, 9], 5000), 5000);
    assert_eq!(e.install_replicated(&Record::Connection(r), t0), Ok(()));
    let r = nat_record(([198, 51, 100, 9], 5001), 5001);
    assert_eq!(
        e.install_replicated(&Record::Connection(r), t0),
        Err(Refused::TableFull)
    );
    assert_eq!(
        e.natpool.in_use(ret(), 6),
        2,
        "the refused record took no port"
    );
    let mut f = tcp((CLIENT, 1), (CLUSTER, 8080), ACK);
    assert!(sent(handle(&e, &mut f, t0)));
}

#[test]
fn a_replicated_record_of_a_client_that_never_acknowledged_is_half_open() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections 1\n{PORTS}"));
    let e = engine(&cfg, t0);
    let mut r = nat_record(([198, 51, 100, 9], 5000), 5000);
    r.client_ack = 0;
    assert_eq!(e.install_replicated(&Record::Connection(r), t0), Ok(()));
    assert_eq!(e.conns.halfopen(), 1);
    // It makes room for a real client, and would have ended after the SYN timeout.
    open(&e, (CLIENT, 40000), 8080, t0);
    assert_eq!(e.conns.evicted.load(Relaxed), 1);
    assert_eq!(e.natpool.in_use(ret(), 6), 1);
    let e = engine(&cfg, t0);
    assert_eq!(e.install_replicated(&Record::Connection(r), t0), Ok(()));
    e.housekeeping(t0 + Duration::from_secs(5));
    assert!(e.conns.is_empty());
}

#[test]
fn concurrent_workers_flooding_a_full_table_never_refuse_and_keep_the_books() {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections 1000\n{PORTS}"));
    let e = std::sync::Arc::new(engine(&cfg, t0));
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..40_000u32 {
                    let port = if i % 2 == 0 { 80 } else { 8080 };
                    let mut f = tcp(flood_source(w * 40_000 + i), (CLUSTER, port), SYN);
                    handle(&e, &mut f, t0);
                    assert!(e.conns.len() <= 1000);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.node.dropped(DropReason::ConnectionTableFull), 0);
    assert_eq!(e.conns.len(), 1000);
    assert_eq!(e.conns.halfopen(), 1000);
    e.housekeeping(t0 + Duration::from_secs(5));
    assert_eq!(e.conns.len(), 0);
    assert_eq!(e.conns.halfopen(), 0);
    assert_eq!(e.natpool.in_use(ret(), 6), 0);
    assert_eq!(e.conns.queued(), 0);
}

#[test]
fn concurrent_workers_exhausting_a_nat_pool_always_get_a_port() {
    let t0 = Instant::now();
    let e = std::sync::Arc::new(engine(&config(PORTS), t0));
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..25_000u32 {
                    let mut f = tcp(flood_source(w * 25_000 + i), (CLUSTER, 8080), SYN);
                    assert!(sent(handle(&e, &mut f, t0)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.node.dropped(DropReason::NatPortsExhausted), 0);
    assert_eq!(e.natpool.in_use(ret(), 6), e.natpool.capacity());
    assert_eq!(e.conns.len(), e.natpool.capacity());
    e.housekeeping(t0 + Duration::from_secs(5));
    assert_eq!(e.natpool.in_use(ret(), 6), 0);
    assert!(e.conns.is_empty());
}
