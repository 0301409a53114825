//! The seed's replication rules (load-balancer-ha-maintenance.txt), one test per rule: the
//! engine is driven with real frames and what it queues for the partner is checked.

mod common;

use common::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tandem_core::forward::{Engine, Plan};
use tandem_core::replication::{ConnectionRecord, Record};

const NAT: &str = "port add 192.0.2.100@8080 method nat repstrategy both selectionalgorithm conn+affin stickytime 600\n\
    server add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200 mapport 80\n\
    port add 192.0.2.100@80 repstrategy connection staletimeout 100\n\
    server add 192.0.2.100@80@192.0.2.11\n\
    port add 192.0.2.100@53 protocol udp repstrategy connection\n\
    server add 192.0.2.100@53@192.0.2.13\n";

fn replicating(text: &str, now: Instant) -> (Engine, tandem_core::config::Config) {
    let cfg = config(text);
    let e = engine(&cfg, now);
    e.replication.enabled.store(true, Relaxed);
    (e, cfg)
}

fn connections(records: &[Record]) -> Vec<ConnectionRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Connection(c) => Some(*c),
            Record::Affinity(_) => None,
        })
        .collect()
}

fn affinities(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| matches!(r, Record::Affinity(_)))
        .count()
}

#[test]
fn a_connection_is_sent_when_the_clients_handshake_completes_not_at_its_syn() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), SYN);
    assert!(sent(handle(&e, &mut f, t0)));
    assert!(
        e.replication.drain().is_empty(),
        "a SYN alone queues nothing"
    );
    // A SYN sent again still queues nothing; the client's first ACK does.
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), SYN);
    handle(&e, &mut f, t0);
    assert!(e.replication.drain().is_empty());
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), ACK);
    assert!(sent(handle(&e, &mut f, t0)));
    let q = e.replication.drain();
    let c = connections(&q);
    assert_eq!(c.len(), 1, "{q:?}");
    assert_eq!(c[0].client.port(), 40000);
    assert!(!c[0].closing && !c[0].ended);
    assert!(c[0].nat.is_some(), "with its NAT mapping");
    assert_eq!(affinities(&q), 1, "the affinity record goes with it");
    // The next packets queue nothing (the partner's copy is fresh).
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 8080), ACK);
    handle(&e, &mut f, t0 + Duration::from_secs(1));
    assert!(e.replication.drain().is_empty());
}

#[test]
fn a_client_fin_or_rst_is_sent() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    for (port, flags) in [(40000, FIN | ACK), (40001, RST)] {
        let mut f = tcp((CLIENT, port), (CLUSTER, 80), SYN);
        handle(&e, &mut f, t0);
        let mut f = tcp((CLIENT, port), (CLUSTER, 80), ACK);
        handle(&e, &mut f, t0);
        e.replication.drain();
        let mut f = tcp((CLIENT, port), (CLUSTER, 80), flags);
        assert!(sent(handle(&e, &mut f, t0)));
        let c = connections(&e.replication.drain());
        assert_eq!(c.len(), 1);
        assert!(c[0].closing, "the partner's copy is closing");
    }
}

#[test]
fn a_server_side_fin_or_rst_in_nat_is_sent_like_a_client_side_one() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    for (client_port, flags) in [(40000u16, FIN | ACK), (40001, RST)] {
        let mut f = tcp((CLIENT, client_port), (CLUSTER, 8080), SYN);
        handle(&e, &mut f, t0);
        let nat_port = src_port(&f);
        let mut f = tcp((CLIENT, client_port), (CLUSTER, 8080), ACK);
        handle(&e, &mut f, t0);
        e.replication.drain();
        // The server's reply: nothing queued; its FIN or RST: the record, closing.
        let mut r = server_tcp(12, 80, (RETURN, nat_port), ACK);
        assert!(sent(handle(&e, &mut r, t0)));
        assert!(e.replication.drain().is_empty());
        let mut r = server_tcp(12, 80, (RETURN, nat_port), flags);
        assert!(sent(handle(&e, &mut r, t0)));
        let c = connections(&e.replication.drain());
        assert_eq!(c.len(), 1, "server {flags:#x}");
        assert_eq!(c[0].client.port(), client_port);
        assert!(c[0].closing);
        // The client's FIN after it does not send it again.
        let mut f = tcp((CLIENT, client_port), (CLUSTER, 8080), FIN | ACK);
        handle(&e, &mut f, t0);
        assert!(connections(&e.replication.drain()).is_empty());
    }
}

#[test]
fn a_record_is_sent_again_when_the_partners_copy_is_older_than_half_the_staletimeout() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), SYN);
    handle(&e, &mut f, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), ACK);
    handle(&e, &mut f, t0);
    assert_eq!(connections(&e.replication.drain()).len(), 1);
    // staletimeout 100: resent at 50 s, not before; then again 50 s after that.
    for (secs, want) in [(10, 0), (49, 0), (50, 1), (60, 0), (99, 0), (100, 1)] {
        let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), ACK);
        handle(&e, &mut f, t0 + Duration::from_secs(secs));
        let c = connections(&e.replication.drain());
        assert_eq!(c.len(), want, "at {secs} s");
    }
}

#[test]
fn a_udp_flow_is_sent_when_its_first_datagram_makes_the_record() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    let mut f = udp((CLIENT, 5000), (CLUSTER, 53));
    assert!(sent(handle(&e, &mut f, t0)));
    assert_eq!(connections(&e.replication.drain()).len(), 1);
    let mut f = udp((CLIENT, 5000), (CLUSTER, 53));
    handle(&e, &mut f, t0);
    assert!(e.replication.drain().is_empty());
}

#[test]
fn a_server_taken_out_on_a_reset_port_sends_an_ended_record() {
    let t0 = Instant::now();
    let text = "port add 192.0.2.100@80 repstrategy connection reset yes\n\
                server add 192.0.2.100@80@192.0.2.11\n";
    let (e, mut cfg) = replicating(text, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), SYN);
    handle(&e, &mut f, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), ACK);
    handle(&e, &mut f, t0);
    e.replication.drain();
    cfg.apply_line("server down 192.0.2.100@80@192.0.2.11")
        .unwrap();
    e.install(
        Plan::compile(
            &cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        t0,
    );
    let c = connections(&e.replication.drain());
    assert_eq!(c.len(), 1);
    assert!(c[0].ended);
}

#[test]
fn nothing_is_queued_while_replication_is_not_wanted_and_full_sync_skips_half_open_records() {
    let t0 = Instant::now();
    let (e, _) = replicating(NAT, t0);
    e.replication.enabled.store(false, Relaxed);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), SYN);
    handle(&e, &mut f, t0);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), ACK);
    handle(&e, &mut f, t0);
    let mut f = tcp((CLIENT, 40001), (CLUSTER, 80), SYN);
    handle(&e, &mut f, t0);
    assert!(e.replication.drain().is_empty());
    // The Active going Standby sends every record: the established one, not the half-open.
    let all = connections(&e.snapshot_records(t0));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].client.port(), 40000);
    // Once wanted again, the age rule sends the record that was never sent at its next packet.
    e.replication.enabled.store(true, Relaxed);
    let mut f = tcp((CLIENT, 40000), (CLUSTER, 80), ACK);
    handle(&e, &mut f, t0);
    assert_eq!(connections(&e.replication.drain()).len(), 1);
}

#[test]
fn a_full_sync_streams_from_the_table_and_installs_everything() {
    let t0 = Instant::now();
    let text = "port add 192.0.2.100@80 repstrategy connection\n\
        server add 192.0.2.100@80@192.0.2.11\n\
        server add 192.0.2.100@80@192.0.2.12\n";
    let (a, cfg) = replicating(text, t0);
    let n = 60_000;
    for i in 0..n {
        let src = flood_source(i);
        assert!(sent(handle(&a, &mut tcp(src, (CLUSTER, 80), SYN), t0)));
        assert!(sent(handle(&a, &mut tcp(src, (CLUSTER, 80), ACK), t0)));
    }
    a.replication.drain();
    let a = std::sync::Arc::new(a);
    let b = engine(&cfg, t0);
    let r = tandem_core::forward::loopback_full_sync(&a, Some(&b));
    assert_eq!(r.records, u64::from(n));
    assert_eq!(r.installed, n as usize);
    assert_eq!(b.conns.len(), n as usize);
    // The sender never held the table: a few shards' worth at most (1/64 each).
    assert!(r.max_queued < n as usize / 4, "{r:?}");
    // The same records as a snapshot in one piece.
    assert_eq!(connections(&a.snapshot_records(t0)).len(), n as usize);
}
