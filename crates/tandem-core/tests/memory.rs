//! Memory per record, measured on this process's resident set: the figure behind
//! `BUDGET_BYTES_PER_RECORD` (the default `maxconnections` rule and the SYN-flood budget).

mod common;

use common::*;
use std::time::{Duration, Instant};
use tandem_core::forward::BUDGET_BYTES_PER_RECORD;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

const NAT_AFFINITY: &str = "port add 192.0.2.100@8080 method nat selectionalgorithm conn+affin stickytime 60\n\
    server add 192.0.2.100@8080@192.0.2.12 returnaddress 192.0.2.200 mapport 80\n\
    server add 192.0.2.100@8080@192.0.2.13 returnaddress 192.0.2.201 mapport 80\n";

/// A `method mac` port without affinity: the plainest IPv4 record.
const MAC: &str = "port add 192.0.2.100@8080 method mac\n\
    server add 192.0.2.100@8080@192.0.2.12\n\
    server add 192.0.2.100@8080@192.0.2.13\n";

/// Fills a table of `n` records of port 8080 of `ports` and returns the resident bytes it
/// added per record (the record, its indexes and the hash tables' slack).
fn records_per_record(ports: &str, n: u32, established: bool) -> u64 {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections {n}\n{ports}"));
    let e = engine(&cfg, t0);
    let before = rss_bytes();
    for i in 0..n {
        let src = flood_source(i);
        let mut f = tcp(src, (CLUSTER, 8080), SYN);
        assert!(sent(handle(&e, &mut f, t0)), "record {i}");
        if established {
            let mut f = tcp(src, (CLUSTER, 8080), ACK);
            assert!(sent(handle(&e, &mut f, t0)));
        }
    }
    assert_eq!(e.conns.len(), n as usize);
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) / u64::from(n);
    println!(
        "{n} records ({}): {per} bytes each, {} affinity records",
        if established {
            "established"
        } else {
            "half-open"
        },
        e.affinity.len()
    );
    // Drop everything while measuring nothing (keeps the engine alive to here).
    e.housekeeping(t0 + Duration::from_secs(3600));
    per
}

/// NAT records with affinity: the largest kind.
fn per_record(n: u32, established: bool) -> u64 {
    records_per_record(NAT_AFFINITY, n, established)
}

/// Resident bytes one affinity record adds (IPv6 clients of 2001:db8::/32: each its own).
fn affinity_per_record(n: u32) -> u64 {
    let t = tandem_core::select::AffinityTable::new();
    let t0 = Instant::now();
    let before = rss_bytes();
    for i in 0..n {
        let key = tandem_core::select::AffinityKey {
            cluster: std::net::IpAddr::from(CLUSTER),
            port: 8080,
            client: std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (i >> 16) as u16,
                i as u16,
            )),
        };
        assert!(
            t.touch_new_connection(&key, "192.0.2.12".parse().unwrap(), t0)
                .is_some()
        );
    }
    let per = rss_bytes().saturating_sub(before) / u64::from(n);
    println!("{n} affinity records: {per} bytes each");
    per
}

// Each measurement runs in its own process (nextest), so freed memory of one does not hide
// the cost of the next. Together: a record and an affinity record of its own.
const N: u32 = 120_000;
const AFFINITY_SHARE: u64 = 256;

#[test]
fn a_half_open_record_fits_in_its_budget() {
    let b = per_record(N, false);
    assert!(b + AFFINITY_SHARE <= BUDGET_BYTES_PER_RECORD, "{b} B");
}

#[test]
fn an_established_record_fits_in_its_budget() {
    let b = per_record(N, true);
    assert!(b + AFFINITY_SHARE <= BUDGET_BYTES_PER_RECORD, "{b} B");
}

#[test]
fn an_affinity_record_fits_in_its_share() {
    let b = affinity_per_record(N);
    assert!(b <= AFFINITY_SHARE, "{b} B");
}

/// Issue 10: an IPv4 connection record with its index in at most 128 bytes, measured with a
/// million of them (the table's shards just past a doubling: the worst case of its slack).
#[test]
fn a_million_ipv4_records_take_at_most_128_bytes_each() {
    let b = records_per_record(MAC, 1_000_000, true);
    assert!(b <= 128, "{b} B");
}
