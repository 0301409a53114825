//! Tests of the replication records, validation and transport.

use super::*;
use crate::config::{Cluster, Config, Method, Port, Protocol, Selection, Server};
use crate::forward::NatMapping;
use crate::select::affinity::{AffinityKey, AffinityRecord as TableAffinity};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}

/// A typical IPv4 NAT connection record to 192.0.2.100:80.
fn nat_conn(i: u32) -> ConnectionRecord {
    ConnectionRecord {
        proto: Protocol::Tcp,
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0xcb00_0000 | (i >> 16))),
            (i & 0xffff) as u16,
        ),
        cluster: sa("192.0.2.100:80"),
        server: ip("10.0.0.1"),
        nat: Some(NatMapping {
            returnaddress: ip("10.0.0.200"),
            nat_port: 2001,
            server_port: 80,
        }),
        client_mac: [2, 0, 0, 0, 0, 9],
        client_ack: i,
        closing: false,
        ended: false,
        idle_ms: 1500,
        staletimeout_s: 300,
    }
}

fn mac_conn(port: u16) -> ConnectionRecord {
    ConnectionRecord {
        proto: Protocol::Tcp,
        client: SocketAddr::new(ip("203.0.113.5"), port),
        cluster: sa("192.0.2.100:443"),
        server: ip("10.0.0.1"),
        nat: None,
        client_mac: [2, 0, 0, 0, 0, 9],
        client_ack: 7,
        closing: false,
        ended: false,
        idle_ms: 0,
        staletimeout_s: 300,
    }
}

fn affinity() -> AffinityRecord {
    AffinityRecord {
        cluster: ip("192.0.2.100"),
        port: 443,
        client: ip("203.0.113.5"),
        server: ip("10.0.0.1"),
        age_ms: 10_000,
        stickytime_s: 60,
    }
}

fn server(addr: &str, returnaddress: Option<&str>) -> Server {
    Server {
        label: None,
        address: ip(addr),
        weight: 10,
        fixedweight: false,
        returnaddress: returnaddress.map(ip),
        router: None,
        mapport: None,
        down: false,
        quiesced: false,
        advisorrequest: None,
        advisorresponse: None,
    }
}

/// 192.0.2.100 with port 80 (TCP, NAT), 443 (TCP, MAC, stickytime 60) and 53 (UDP, MAC).
fn config() -> Config {
    let mut p80 = Port::with_defaults(80);
    p80.method = Method::Nat;
    p80.servers
        .insert(ip("10.0.0.1"), server("10.0.0.1", Some("10.0.0.200")));
    p80.servers
        .insert(ip("10.0.0.2"), server("10.0.0.2", Some("10.0.0.201")));
    let mut p443 = Port::with_defaults(443);
    p443.selection = Selection::ConnAffin;
    p443.stickytime = 60;
    p443.servers
        .insert(ip("10.0.0.1"), server("10.0.0.1", None));
    let mut p53 = Port::with_defaults(53);
    p53.protocol = Protocol::Udp;
    p53.servers.insert(ip("10.0.0.1"), server("10.0.0.1", None));
    let ports = BTreeMap::from([(80, p80), (443, p443), (53, p53)]);
    let mut cfg = Config::default();
    cfg.clusters.insert(
        ip("192.0.2.100"),
        Cluster {
            label: None,
            address: ip("192.0.2.100"),
            proportions: Default::default(),
            defaults: Default::default(),
            primaryhost: None,
            ports,
        },
    );
    cfg
}

fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(&mut out);
    assert_eq!(out.len(), r.encoded_len(), "{r:?}");
    out
}

fn roundtrip(r: Record) {
    let bytes = encode(&r);
    let mut rd = Reader::new(&bytes);
    assert_eq!(Record::decode(&mut rd), Ok(r));
    assert!(rd.is_empty());
}

/// A batch message with the given elements.
fn batch_bytes(session: u32, seq: u32, low: u32, elements: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    BatchHeader { session, seq, low }.encode(&mut out);
    out.extend_from_slice(elements);
    out
}

// ---------------------------------------------------------------- encodings

#[test]
fn nat_record_is_pinned_byte_by_byte() {
    // The example of docs/replication.md.
    let r = ConnectionRecord {
        client: sa("203.0.113.5:40000"),
        client_ack: 0x0102_0304,
        ..nat_conn(0)
    };
    let bytes = encode(&r.into());
    #[rustfmt::skip]
    let expected = [
        0x01, 0x24, 0x04,                         // type, len 36, flags NAT
        203, 0, 113, 5, 0x9c, 0x40,               // client 203.0.113.5:40000
        192, 0, 2, 100, 0x00, 0x50,               // cluster 192.0.2.100:80
        10, 0, 0, 1,                              // server
        10, 0, 0, 200, 0x07, 0xd1,                // returnaddress, nat port 2001
        2, 0, 0, 0, 0, 9,                         // client MAC
        0x01, 0x02, 0x03, 0x04,                   // client ack
        0x00, 0x05, 0xdc,                         // idle 1500 ms
    ];
    assert_eq!(bytes, expected);
}

#[test]
fn sizes() {
    assert_eq!(Record::from(nat_conn(1)).encoded_len(), 38);
    assert_eq!(Record::from(mac_conn(1)).encoded_len(), 32);
    assert_eq!(Record::from(affinity()).encoded_len(), 25);
    // A mapport and a configured (not default) staletimeout each cost 2 bytes.
    let mut c = nat_conn(1);
    c.nat = Some(NatMapping {
        server_port: 8080,
        ..c.nat.unwrap()
    });
    c.staletimeout_s = 120;
    assert_eq!(Record::from(c).encoded_len(), 42);
    // Long timers: 4-byte idle and staletimeout.
    c.staletimeout_s = 100_000;
    assert_eq!(Record::from(c).encoded_len(), 45);
    let v6 = ConnectionRecord {
        client: sa("[2001:db8::5]:40000"),
        cluster: sa("[2001:db8::100]:80"),
        server: ip("2001:db8:1::1"),
        nat: Some(NatMapping {
            returnaddress: ip("2001:db8:1::200"),
            nat_port: 9,
            server_port: 80,
        }),
        ..nat_conn(1)
    };
    assert_eq!(Record::from(v6).encoded_len(), 86);
    let largest = ConnectionRecord {
        nat: Some(NatMapping {
            server_port: 8080,
            ..v6.nat.unwrap()
        }),
        idle_ms: u32::MAX,
        staletimeout_s: 1,
        ..v6
    };
    assert_eq!(Record::from(largest).encoded_len(), 93);
    let a6 = AffinityRecord {
        cluster: ip("2001:db8::100"),
        ..affinity()
    };
    assert_eq!(Record::from(a6).encoded_len(), 61);
    assert_eq!((1400 - BATCH_HEADER_LEN) / 45, 30);
}

#[test]
fn thirty_six_ipv4_nat_records_fit_in_1400_bytes() {
    let mut out = Vec::new();
    for i in 0..36 {
        Record::from(nat_conn(i)).encode(&mut out);
    }
    assert!(out.len() <= 1400, "{} bytes", out.len());
    // And in one batch of at most 1400 bytes, header included.
    let mut s = Sender::new(SenderConfig::default());
    for i in 0..100 {
        s.push(nat_conn(i).into());
    }
    let b = s.next_batch(Instant::now(), 1400).unwrap();
    assert!(b.records >= 36, "{} records", b.records);
    assert!(b.bytes.len() <= 1400);
    // Even in the 1440 bytes a 1500-byte MTU leaves after IP, UDP and a 32-byte HMAC, the
    // largest IPv4 NAT record (mapport, long timers) still fits 31 times.
    const { assert!(BATCH_HEADER_LEN + 31 * 45 <= 1440) };
}

#[test]
fn roundtrips() {
    roundtrip(nat_conn(5).into());
    roundtrip(mac_conn(5).into());
    roundtrip(affinity().into());
    let mut c = nat_conn(9);
    c.proto = Protocol::Udp;
    c.cluster = sa("192.0.2.100:53");
    c.nat = Some(NatMapping {
        returnaddress: ip("10.0.0.200"),
        nat_port: 65535,
        server_port: 5353,
    });
    c.closing = true;
    c.ended = true;
    c.idle_ms = u32::MAX;
    c.staletimeout_s = 30;
    roundtrip(c.into());
    c.idle_ms = 0x00ff_ffff;
    c.staletimeout_s = 70_000;
    roundtrip(c.into());
    // Port 23's default staletimeout is not carried.
    c.cluster = sa("192.0.2.100:23");
    c.staletimeout_s = 32_000_000;
    assert_eq!(
        Record::from(c).encoded_len(),
        2 + 1 + 6 + 6 + 4 + 6 + 2 + 6 + 4 + 3
    );
    roundtrip(c.into());
    // IPv6, and mixed families (IPv4 addresses travel IPv4-mapped).
    let v6 = ConnectionRecord {
        client: sa("[2001:db8::5]:40000"),
        server: ip("2001:db8:1::1"),
        ..nat_conn(1)
    };
    roundtrip(v6.into());
    roundtrip(
        AffinityRecord {
            client: ip("2001:db8::7"),
            server: ip("2001:db8::1"),
            ..affinity()
        }
        .into(),
    );
}

#[test]
fn markers_roundtrip_and_are_not_records() {
    for item in [
        Item::SyncStart { epoch: 3 },
        Item::SyncEnd {
            epoch: 3,
            records: 1_000_000,
        },
    ] {
        let mut out = Vec::new();
        item.encode(&mut out);
        assert_eq!(out.len(), item.encoded_len());
        assert_eq!(Item::decode(&mut Reader::new(&out)), Ok(item));
        let mut r = Reader::new(&out);
        assert_eq!(Record::decode(&mut r), Err(RecordError::NotARecord));
        assert!(r.is_empty());
    }
}

#[test]
fn bad_elements_are_skipped_by_their_length() {
    let mut elems = Vec::new();
    Record::from(nat_conn(1)).encode(&mut elems);
    elems.extend_from_slice(&[0x7f, 3, 1, 2, 3]); // unknown type: skipped
    let mut bad = Vec::new();
    Record::from(affinity()).encode(&mut bad);
    bad[2] = 0x80; // reserved affinity flag
    elems.extend_from_slice(&bad);
    let mut short = Vec::new();
    Record::from(mac_conn(2)).encode(&mut short);
    short[1] -= 1; // body one byte short of its layout
    short.pop();
    elems.extend_from_slice(&short);
    elems.extend_from_slice(&[TYPE_CONNECTION, 1, 0x08]); // MAPPORT without NAT
    Record::from(mac_conn(3)).encode(&mut elems);
    elems.extend_from_slice(&[TYPE_CONNECTION, 200, 0]); // runs past the end

    let mut r = Reader::new(&elems);
    assert!(Record::decode(&mut r).is_ok());
    assert_eq!(Record::decode(&mut r), Err(RecordError::UnknownType(0x7f)));
    assert_eq!(
        Record::decode(&mut r),
        Err(RecordError::BadFlags {
            kind: TYPE_AFFINITY,
            flags: 0x80
        })
    );
    assert!(matches!(
        Record::decode(&mut r),
        Err(RecordError::Length {
            kind: TYPE_CONNECTION,
            ..
        })
    ));
    assert!(matches!(
        Record::decode(&mut r),
        Err(RecordError::BadFlags { .. })
    ));
    assert_eq!(Record::decode(&mut r), Ok(mac_conn(3).into()));
    assert_eq!(Record::decode(&mut r), Err(RecordError::Truncated));

    let mut rx = Receiver::default();
    let out = rx.on_batch(&batch_bytes(1, 0, 0, &elems), Instant::now());
    assert_eq!(out.records, vec![nat_conn(1).into(), mac_conn(3).into()]);
    assert_eq!(out.dropped.unknown, 1);
    assert_eq!(out.dropped.malformed, 4);
    assert_eq!(
        out.ack,
        Some(Ack {
            session: 1,
            next: 1,
            received: 0
        }),
        "accepted all the same"
    );
}

#[test]
fn messages() {
    let ack = Ack {
        session: 9,
        next: u32::MAX,
        received: 0b101,
    };
    let bytes = ack.to_bytes();
    assert_eq!(bytes.len(), ACK_LEN);
    assert_eq!(message_kind(&bytes), Some(MessageKind::Ack));
    assert_eq!(Ack::decode(&bytes), Ok(ack));
    assert!(ack.covers(u32::MAX - 1) && !ack.covers(u32::MAX) && ack.covers(0) && !ack.covers(1));
    assert_eq!(
        Ack::decode(&[&bytes[..], &[0]].concat()),
        Err(MessageError::TrailingBytes)
    );
    assert_eq!(Ack::decode(&bytes[..17]), Err(MessageError::Truncated));
    assert_eq!(Ack::decode(&[2, 2]), Err(MessageError::Version(2)));
    let b = batch_bytes(1, 2, 3, &[]);
    assert_eq!(b.len(), BATCH_HEADER_LEN);
    assert_eq!(message_kind(&b), Some(MessageKind::Batch));
    assert_eq!(Ack::decode(&b), Err(MessageError::Kind(KIND_BATCH)));
    assert_eq!(message_kind(&[]), None);
}

#[test]
fn conversions() {
    let now = Instant::now();
    let t0 = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
    let conn = nat_conn(4).to_conn(now);
    assert_eq!(conn.last_seen + Duration::from_millis(1500), now);
    assert_eq!(conn.staletimeout, Duration::from_secs(300));
    assert_eq!(conn.closing_since, None);
    assert_eq!(ConnectionRecord::from_conn(&conn, now), Some(nat_conn(4)));
    assert_eq!(conn.key, nat_conn(4).flow_key());
    let closing = ConnectionRecord {
        closing: true,
        ..nat_conn(4)
    }
    .to_conn(now);
    assert_eq!(closing.closing_since, Some(now));

    let key = AffinityKey {
        cluster: ip("192.0.2.100"),
        port: 443,
        client: ip("203.0.113.5"),
    };
    let rec = TableAffinity {
        server: ip("10.0.0.1"),
        last_new_connection: t0,
        created: t0,
    };
    let a = AffinityRecord::from_table(&key, &rec, Duration::from_secs(60), now);
    if now.duration_since(t0) == Duration::from_secs(10) {
        assert_eq!(a, affinity());
        assert_eq!(a.to_table(now), (key, rec));
    }
    assert_eq!(a.affinity_key(), key);
    // A clock that cannot go back that far does not panic.
    let far = AffinityRecord {
        age_ms: u32::MAX,
        ..a
    };
    let _ = far.to_table(now);
    let _ = ConnectionRecord {
        idle_ms: u32::MAX,
        ..nat_conn(1)
    }
    .to_conn(now);
}

// ---------------------------------------------------------------- validation

#[test]
fn validation_accepts_good_records() {
    let cfg = config();
    assert_eq!(validate(&nat_conn(1).into(), &cfg), Ok(()));
    assert_eq!(validate(&mac_conn(1).into(), &cfg), Ok(()));
    assert_eq!(validate(&affinity().into(), &cfg), Ok(()));
    let udp = ConnectionRecord {
        proto: Protocol::Udp,
        cluster: sa("192.0.2.100:53"),
        ..mac_conn(1)
    };
    assert_eq!(validate(&udp.into(), &cfg), Ok(()));
    // A deletion needs only its cluster and port.
    let ended = ConnectionRecord {
        ended: true,
        server: ip("10.9.9.9"),
        nat: None,
        ..nat_conn(1)
    };
    assert_eq!(validate(&ended.into(), &cfg), Ok(()));
}

#[test]
fn validation_refuses_bad_records_by_reason() {
    let cfg = config();
    let nat = nat_conn(1);
    let ret = nat.nat.unwrap();
    let cases: Vec<(Record, Invalid)> = vec![
        (
            ConnectionRecord {
                cluster: sa("192.0.2.100:0"),
                ..nat
            }
            .into(),
            Invalid::ZeroPort,
        ),
        (
            ConnectionRecord {
                client: sa("203.0.113.5:0"),
                ..nat
            }
            .into(),
            Invalid::ZeroPort,
        ),
        (
            ConnectionRecord {
                nat: Some(NatMapping { nat_port: 0, ..ret }),
                ..nat
            }
            .into(),
            Invalid::ZeroPort,
        ),
        (
            ConnectionRecord {
                client: sa("0.0.0.0:5"),
                ..nat
            }
            .into(),
            Invalid::BadClient,
        ),
        (
            ConnectionRecord {
                client: sa("224.0.0.1:5"),
                ..nat
            }
            .into(),
            Invalid::BadClient,
        ),
        (
            ConnectionRecord {
                cluster: sa("192.0.2.99:80"),
                ..nat
            }
            .into(),
            Invalid::UnknownCluster,
        ),
        (
            ConnectionRecord {
                cluster: sa("192.0.2.100:81"),
                ..nat
            }
            .into(),
            Invalid::UnknownPort,
        ),
        (
            ConnectionRecord {
                proto: Protocol::Udp,
                ..nat
            }
            .into(),
            Invalid::ProtocolMismatch,
        ),
        (
            ConnectionRecord {
                server: ip("10.0.0.3"),
                ..nat
            }
            .into(),
            Invalid::UnknownServer,
        ),
        (
            ConnectionRecord {
                nat: Some(ret),
                ..mac_conn(1)
            }
            .into(),
            Invalid::NatOnMacPort,
        ),
        (
            ConnectionRecord { nat: None, ..nat }.into(),
            Invalid::NatMissing,
        ),
        (
            ConnectionRecord {
                server: ip("10.0.0.2"),
                ..nat
            }
            .into(),
            Invalid::ReturnAddressMismatch,
        ),
        (
            ConnectionRecord {
                staletimeout_s: 0,
                ..nat
            }
            .into(),
            Invalid::Lifetime,
        ),
        (
            ConnectionRecord {
                idle_ms: 300_000,
                ..nat
            }
            .into(),
            Invalid::Expired,
        ),
        (
            AffinityRecord {
                port: 80,
                ..affinity()
            }
            .into(),
            Invalid::NoAffinity,
        ),
        (
            AffinityRecord {
                port: 0,
                ..affinity()
            }
            .into(),
            Invalid::ZeroPort,
        ),
        (
            AffinityRecord {
                cluster: ip("192.0.2.1"),
                ..affinity()
            }
            .into(),
            Invalid::UnknownCluster,
        ),
        (
            AffinityRecord {
                server: ip("10.0.0.9"),
                ..affinity()
            }
            .into(),
            Invalid::UnknownServer,
        ),
        (
            AffinityRecord {
                stickytime_s: 0,
                ..affinity()
            }
            .into(),
            Invalid::Lifetime,
        ),
        (
            AffinityRecord {
                age_ms: 60_001,
                ..affinity()
            }
            .into(),
            Invalid::Expired,
        ),
        (
            AffinityRecord {
                client: ip("255.255.255.255"),
                ..affinity()
            }
            .into(),
            Invalid::BadClient,
        ),
    ];
    let mut counts = InvalidCounts::default();
    for (rec, reason) in &cases {
        assert_eq!(validate(rec, &cfg), Err(*reason), "{rec:?}");
        counts.add(*reason);
    }
    assert_eq!(counts.total(), cases.len() as u64);
    assert_eq!(counts.get(Invalid::ZeroPort), 4);
    // Every reason is exercised.
    assert_eq!(counts.iter().count(), Invalid::ALL.len());

    // The receiver drops and counts them, and keeps the good ones.
    let mut elems = Vec::new();
    for (rec, _) in &cases {
        rec.encode(&mut elems);
    }
    Record::from(nat_conn(2)).encode(&mut elems);
    let mut rx = Receiver::default();
    let out = rx.on_batch_validated(&batch_bytes(1, 0, 0, &elems), Instant::now(), &cfg);
    assert_eq!(out.records, vec![nat_conn(2).into()]);
    assert_eq!(out.dropped.invalid, counts);
    assert_eq!(rx.stats().dropped.invalid.get(Invalid::Expired), 2);
    assert!(names(&rx.stats().dropped.invalid).contains("returnaddress_mismatch=1"));
}

/// The reason names, as a report would list them.
fn names(c: &InvalidCounts) -> String {
    c.iter()
        .map(|(r, n)| format!("{}={n} ", r.name()))
        .collect()
}

// ---------------------------------------------------------------- sender

#[test]
fn a_newer_record_supersedes_a_queued_one() {
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    assert_eq!(s.push(nat_conn(1).into()), PushOutcome::Queued);
    assert_eq!(s.push(mac_conn(1).into()), PushOutcome::Queued);
    let newer = ConnectionRecord {
        client_ack: 99,
        ..nat_conn(1)
    };
    assert_eq!(s.push(newer.into()), PushOutcome::Superseded);
    assert_eq!(s.queued(), 2);
    let b = s.next_batch(now, 1400).unwrap();
    let out = Receiver::default().on_batch(&b.bytes, now);
    assert_eq!(
        out.records,
        vec![newer.into(), mac_conn(1).into()],
        "in its original place"
    );
    // Once sent, the key may be queued again.
    assert_eq!(s.push(nat_conn(1).into()), PushOutcome::Queued);
    assert_eq!(s.stats().superseded, 1);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let mut s = Sender::new(SenderConfig {
        max_queued: 2,
        ..SenderConfig::default()
    });
    assert_eq!(s.push(mac_conn(1).into()), PushOutcome::Queued);
    assert_eq!(s.push(mac_conn(2).into()), PushOutcome::Queued);
    assert_eq!(s.push(mac_conn(3).into()), PushOutcome::Dropped);
    assert_eq!(
        s.push(mac_conn(2).into()),
        PushOutcome::Superseded,
        "replacing needs no room"
    );
    assert_eq!(s.stats().overflow_dropped, 1);
    // A full sync is not limited.
    s.start_full_sync((10..20).map(|p| mac_conn(p).into()), Instant::now());
    assert_eq!(s.queued(), 2 + 10 + 2);
    // Records taken over by the sync free live room.
    s.start_full_sync([mac_conn(1).into()], Instant::now());
    assert_eq!(s.push(mac_conn(30).into()), PushOutcome::Queued);
}

#[test]
fn batches_respect_max_bytes_and_the_window() {
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig {
        window: 2,
        ..SenderConfig::default()
    });
    for p in 1..=10 {
        s.push(mac_conn(p).into());
    }
    assert!(
        s.next_batch(now, BATCH_HEADER_LEN + 31).is_none(),
        "one record needs 32 bytes"
    );
    let b = s.next_batch(now, BATCH_HEADER_LEN + 64).unwrap();
    assert_eq!(
        (b.seq, b.records, b.bytes.len()),
        (0, 2, BATCH_HEADER_LEN + 64)
    );
    assert_eq!(s.next_batch(now, 1400).unwrap().records, 8);
    for p in 11..=12 {
        s.push(mac_conn(p).into());
    }
    assert!(
        s.next_batch(now, 1400).is_none(),
        "window of 2 batches is full"
    );
    s.on_ack(
        &Ack {
            session: 0,
            next: 1,
            received: 0,
        },
        now,
    );
    assert_eq!(s.next_batch(now, 1400).unwrap().seq, 2);
}

#[test]
fn lost_batches_are_retransmitted_after_the_rto() {
    let t0 = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    let mut rx = Receiver::default();
    assert_eq!(s.poll_timeout(), None);
    s.push(nat_conn(1).into());
    let lost = s.next_batch(t0, 1400).unwrap();
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + s.config().initial_rto);
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(s.next_batch(deadline, 1400).is_none(), "not yet");
    s.handle_timeout(deadline);
    assert_eq!(s.poll_timeout(), None, "waiting to be resent");
    let again = s.next_batch(deadline, 1400).unwrap();
    assert!(again.retransmit);
    assert_eq!((again.seq, &again.bytes), (lost.seq, &lost.bytes));
    assert_eq!(s.rto(), s.config().initial_rto * 2, "backed off");
    let out = rx.on_batch(&again.bytes, deadline);
    assert_eq!(out.records.len(), 1);
    // The first copy arrives late: acknowledged again, not delivered again.
    let dup = rx.on_batch(&lost.bytes, deadline);
    assert!(dup.records.is_empty());
    assert_eq!(dup.dropped.duplicate_batches, 1);
    assert_eq!(dup.ack, out.ack);
    s.on_ack(&out.ack.unwrap(), deadline + Duration::from_millis(1));
    assert!(s.is_idle());
    let st = s.stats();
    assert_eq!(
        (
            st.batches_sent,
            st.retransmits,
            st.records_sent,
            st.timeouts
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        st.rto_ms, 500,
        "no sample from a retransmitted batch (Karn); backoff reset"
    );
}

#[test]
fn rtt_is_measured() {
    let t0 = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    let mut rx = Receiver::default();
    for i in 0..10u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 100);
        s.push(nat_conn(i).into());
        let b = s.next_batch(now, 1400).unwrap();
        let ack = rx.on_batch(&b.bytes, now).ack.unwrap();
        s.on_ack(&ack, now + Duration::from_millis(10));
    }
    assert!(
        s.rto() >= Duration::from_millis(20) && s.rto() < Duration::from_millis(100),
        "{:?}",
        s.rto()
    );
}

#[test]
fn fast_retransmit_when_later_batches_arrive() {
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    let mut rx = Receiver::default();
    let mut batches = Vec::new();
    for p in 1..=5 {
        s.push(mac_conn(p).into());
        batches.push(s.next_batch(now, 1400).unwrap());
    }
    // Batch 0 is lost; 1..=3 arrive.
    let mut ack = None;
    for b in &batches[1..4] {
        let out = rx.on_batch(&b.bytes, now);
        assert!(out.records.is_empty(), "held until batch 0 arrives");
        ack = out.ack;
    }
    let ack = ack.unwrap();
    assert_eq!(
        ack,
        Ack {
            session: 0,
            next: 0,
            received: 0b111
        }
    );
    assert_eq!(rx.stats().held, 3);
    s.on_ack(&ack, now);
    let re = s.next_batch(now, 1400).unwrap();
    assert!(re.retransmit);
    assert_eq!(re.seq, 0);
    let out = rx.on_batch(&re.bytes, now);
    let ports: Vec<u16> = out
        .records
        .iter()
        .map(|r| match r {
            Record::Connection(c) => c.client.port(),
            Record::Affinity(_) => 0,
        })
        .collect();
    assert_eq!(ports, vec![1, 2, 3, 4], "in the order sent");
    s.on_ack(&out.ack.unwrap(), now);
    assert_eq!(s.stats().in_flight, 1);
}

#[test]
fn acks_of_other_sessions_or_unsent_batches_are_ignored() {
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig {
        session: 5,
        ..SenderConfig::default()
    });
    s.push(mac_conn(1).into());
    s.next_batch(now, 1400).unwrap();
    s.on_ack(
        &Ack {
            session: 4,
            next: 1,
            received: 0,
        },
        now,
    );
    s.on_ack(
        &Ack {
            session: 5,
            next: 2,
            received: 0,
        },
        now,
    );
    s.on_ack(
        &Ack {
            session: 5,
            next: u32::MAX,
            received: 0,
        },
        now,
    );
    let st = s.stats();
    assert_eq!((st.stale_acks, st.bad_acks, st.in_flight), (2, 1, 1));
}

#[test]
fn pacing_is_a_token_bucket() {
    let t0 = Instant::now();
    let cfg = SenderConfig {
        rate: 1_000_000,
        burst: 10_000,
        ..SenderConfig::default()
    };
    let mut s = Sender::new(cfg);
    assert_eq!(s.pace(t0), 10_000);
    for i in 0..1000 {
        s.push(nat_conn(i).into());
    }
    let mut budget = s.pace(t0);
    let mut sent = 0;
    while budget > 0 {
        let Some(b) = s.next_batch(t0, budget.min(1400)) else {
            break;
        };
        budget = budget.saturating_sub(b.bytes.len());
        sent += b.bytes.len();
    }
    assert!(sent > 8_000 && sent <= 10_000, "{sent}");
    let left = s.pace(t0);
    assert!(left < 1400);
    // 1 ms at 1 MB/s: 1000 more bytes.
    let refilled = s.pace(t0 + Duration::from_millis(1));
    assert!((left + 999..=left + 1000).contains(&refilled), "{refilled}");
    assert_eq!(
        s.pace(t0 + Duration::from_secs(5)),
        10_000,
        "capped at the burst"
    );
    // A clock that goes back does not add.
    assert_eq!(s.pace(t0), 10_000);
}

// ---------------------------------------------------------------- receiver

#[test]
fn reordered_batches_are_delivered_in_order_and_acked_selectively() {
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig {
        session: 3,
        first_seq: u32::MAX - 1,
        ..SenderConfig::default()
    });
    let mut rx = Receiver::default();
    let mut batches = Vec::new();
    for p in 1..=4 {
        s.push(mac_conn(p).into());
        batches.push(s.next_batch(now, 1400).unwrap());
    }
    assert_eq!(
        batches.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![u32::MAX - 1, u32::MAX, 0, 1]
    );
    let o = rx.on_batch(&batches[3].bytes, now);
    assert!(o.new_session);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 3,
            next: u32::MAX - 1,
            received: 0b100
        })
    );
    let o = rx.on_batch(&batches[1].bytes, now);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 3,
            next: u32::MAX - 1,
            received: 0b101
        })
    );
    s.on_ack(&o.ack.unwrap(), now);
    let o = rx.on_batch(&batches[0].bytes, now);
    assert_eq!(o.records.len(), 2);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 3,
            next: 0,
            received: 0b1
        })
    );
    let o = rx.on_batch(&batches[2].bytes, now);
    assert_eq!(o.records.len(), 2);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 3,
            next: 2,
            received: 0
        })
    );
    s.on_ack(&o.ack.unwrap(), now);
    assert!(s.is_idle());
    assert_eq!(rx.stats().records, 4);
}

#[test]
fn batches_too_far_ahead_are_dropped() {
    let now = Instant::now();
    let mut rx = Receiver::new(ReceiverConfig { window: 4 });
    rx.on_batch(&batch_bytes(1, 0, 0, &[]), now);
    let o = rx.on_batch(&batch_bytes(1, 5, 1, &encode(&mac_conn(1).into())), now);
    assert_eq!(o.dropped.out_of_window, 1);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 1,
            next: 1,
            received: 0
        })
    );
    // A `low` after the batch's own seq is nonsense: ignored.
    let o = rx.on_batch(&batch_bytes(1, 2, 3, &[]), now);
    assert_eq!(o.dropped.out_of_window, 1);
    assert!(!o.gap);
}

#[test]
fn sessions() {
    let now = Instant::now();
    let mut rx = Receiver::default();
    let rec = encode(&mac_conn(1).into());
    // Joining a session in its middle: starts at its `low`.
    let o = rx.on_batch(&batch_bytes(10, 100, 98, &rec), now);
    assert!(o.new_session);
    assert!(o.records.is_empty());
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 10,
            next: 98,
            received: 0b10
        })
    );
    // The sender says 98 and 99 were acknowledged (by a previous incarnation of this
    // receiver): a gap, and what was held is delivered.
    let o = rx.on_batch(&batch_bytes(10, 101, 100, &rec), now);
    assert!(o.gap);
    assert_eq!(o.records.len(), 2);
    assert_eq!(
        o.ack,
        Some(Ack {
            session: 10,
            next: 102,
            received: 0
        })
    );
    // The sender restarts with a new session.
    let o = rx.on_batch(&batch_bytes(11, 0, 0, &rec), now);
    assert!(o.new_session);
    assert_eq!(o.records.len(), 1);
    // A late batch of the old session is dropped, without an acknowledgement.
    let o = rx.on_batch(&batch_bytes(10, 102, 102, &rec), now);
    assert_eq!((o.dropped.stale_session, o.ack), (1, None));
    let st = rx.stats();
    assert_eq!((st.sessions, st.gaps, st.records), (2, 1, 3));
    // Garbage.
    let o = rx.on_batch(b"hello", now);
    assert_eq!((o.dropped.garbage, o.ack), (1, None));
    rx.reset();
    assert_eq!(rx.ack(), None);
}

#[test]
fn full_sync_is_reported_complete() {
    let t0 = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    let mut rx = Receiver::default();
    s.push(mac_conn(1).into());
    let epoch = s.start_full_sync((0..100).map(|i| nat_conn(i).into()), t0);
    assert_eq!(s.stats().full_sync_in_progress, Some(epoch));
    let newer = ConnectionRecord {
        client_ack: 1000,
        ..nat_conn(7)
    };
    s.push(newer.into()); // replaces the synced copy in its place
    let mut got = Vec::new();
    let mut complete = 0;
    let mut now = t0;
    while let Some(b) = s.next_batch(now, 1400) {
        now += Duration::from_millis(1);
        let o = rx.on_batch(&b.bytes, now);
        complete += usize::from(o.sync_complete);
        got.extend(o.records);
        s.on_ack(&o.ack.unwrap(), now);
    }
    assert_eq!(complete, 1);
    assert_eq!(got.len(), 101);
    assert!(got.contains(&newer.into()));
    let sync = rx.stats().last_full_sync.unwrap();
    assert_eq!(
        (sync.epoch, sync.records, sync.announced),
        (epoch, 100, 100)
    );
    let st = s.stats();
    assert_eq!(st.full_sync_in_progress, None);
    let done = st.last_full_sync.unwrap();
    assert_eq!((done.epoch, done.records), (epoch, 100));
    assert!(done.duration_ms >= 2);
}

#[test]
fn a_million_records_full_sync_in_memory() {
    let n: u32 = 1_000_000;
    let started = std::time::Instant::now();
    let now = Instant::now();
    let mut s = Sender::new(SenderConfig::default());
    let mut rx = Receiver::default();
    s.start_full_sync((0..n).map(|i| nat_conn(i).into()), now);
    let mut seen = vec![false; n as usize];
    let mut complete = false;
    let mut batches = 0u64;
    while let Some(b) = s.next_batch(now, 1400) {
        batches += 1;
        let o = rx.on_batch(&b.bytes, now);
        for r in &o.records {
            let Record::Connection(c) = r else {
                panic!("{r:?}")
            };
            let i = c.client_ack as usize;
            assert!(!seen[i], "record {i} delivered twice");
            seen[i] = true;
        }
        complete |= o.sync_complete;
        s.on_ack(&o.ack.unwrap(), now);
    }
    assert!(s.is_idle());
    assert!(complete);
    assert!(seen.iter().all(|s| *s));
    assert_eq!(
        s.stats().last_full_sync.map(|f| f.records),
        Some(u64::from(n))
    );
    assert_eq!(
        rx.stats().last_full_sync.map(|f| f.records),
        Some(u64::from(n))
    );
    assert_eq!(s.stats().retransmits, 0);
    eprintln!(
        "full sync of {n} records: {batches} batches, {} bytes, {:?}",
        s.stats().bytes_sent,
        started.elapsed()
    );
}

// ---------------------------------------------------------------- properties

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        1 => any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b)).to_canonical()),
    ]
}

fn arb_conn() -> impl Strategy<Value = ConnectionRecord> {
    (
        (
            any::<bool>(),
            arb_ip(),
            any::<u16>(),
            arb_ip(),
            prop_oneof![Just(80u16), Just(23), Just(21), any::<u16>()],
        ),
        (
            arb_ip(),
            proptest::option::of((arb_ip(), any::<u16>(), any::<u16>())),
        ),
        (any::<[u8; 6]>(), any::<u32>(), any::<bool>(), any::<bool>()),
        (
            prop_oneof![0u32..0x0100_0000, any::<u32>()],
            prop_oneof![
                Just(300u32),
                Just(900),
                Just(32_000_000),
                0u32..70_000,
                any::<u32>()
            ],
        ),
    )
        .prop_map(
            |(
                (udp, cip, cport, kip, kport),
                (server, nat),
                (mac, ack, closing, ended),
                (idle, stale),
            )| {
                ConnectionRecord {
                    proto: if udp { Protocol::Udp } else { Protocol::Tcp },
                    client: SocketAddr::new(cip, cport),
                    cluster: SocketAddr::new(kip, kport),
                    server,
                    nat: nat.map(|(returnaddress, nat_port, server_port)| NatMapping {
                        returnaddress,
                        nat_port,
                        server_port,
                    }),
                    client_mac: mac,
                    client_ack: ack,
                    closing,
                    ended,
                    idle_ms: idle,
                    staletimeout_s: stale,
                }
            },
        )
}

fn arb_affinity() -> impl Strategy<Value = AffinityRecord> {
    (
        arb_ip(),
        any::<u16>(),
        arb_ip(),
        arb_ip(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(cluster, port, client, server, age_ms, stickytime_s)| AffinityRecord {
                cluster,
                port,
                client,
                server,
                age_ms,
                stickytime_s,
            },
        )
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        arb_conn().prop_map(Record::from),
        arb_affinity().prop_map(Record::from)
    ]
}

/// Operations of the lossy-network simulation.
#[derive(Debug, Clone)]
enum Op {
    /// A new version of the record of one of 24 keys (`true`: the connection ended).
    Push(u8, bool),
    /// The sender sends a batch of at most 60 + n bytes.
    Send(u16),
    /// The network delivers one batch in flight (by index: reordering), or a copy of it.
    Deliver(u16, bool),
    Lose(u16),
    /// The same for acknowledgements.
    DeliverAck(u16, bool),
    LoseAck(u16),
    /// Time passes (milliseconds); the sender's timers run.
    Advance(u16),
    /// Full synchronisation of the current state.
    FullSync,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), proptest::bool::weighted(0.1)).prop_map(|(k, e)| Op::Push(k % 24, e)),
        4 => (0u16..1400).prop_map(Op::Send),
        4 => (any::<u16>(), proptest::bool::weighted(0.2)).prop_map(|(i, d)| Op::Deliver(i, d)),
        1 => any::<u16>().prop_map(Op::Lose),
        3 => (any::<u16>(), proptest::bool::weighted(0.2)).prop_map(|(i, d)| Op::DeliverAck(i, d)),
        1 => any::<u16>().prop_map(Op::LoseAck),
        2 => (0u16..3000).prop_map(Op::Advance),
        1 => Just(Op::FullSync),
    ]
}

fn sim_record(key: u8, version: u32, ended: bool) -> Record {
    if key % 3 == 2 {
        Record::Affinity(AffinityRecord {
            client: IpAddr::V4(Ipv4Addr::new(203, 0, 113, key)),
            age_ms: version,
            ..affinity()
        })
    } else {
        Record::Connection(ConnectionRecord {
            client: SocketAddr::new(ip("203.0.113.5"), 1000 + u16::from(key)),
            client_ack: version,
            ended,
            ..nat_conn(0)
        })
    }
}

fn version_of(r: &Record) -> u32 {
    match r {
        Record::Connection(c) => c.client_ack,
        Record::Affinity(a) => a.age_ms,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut r = Reader::new(&bytes);
        while !r.is_empty() {
            if let Err(e) = Item::decode(&mut r) && e.is_framing() {
                break;
            }
        }
        let _ = Record::decode(&mut Reader::new(&bytes));
        let _ = Ack::decode(&bytes);
        let mut rx = Receiver::default();
        let _ = rx.on_batch(&bytes, Instant::now());
        // Behind a valid header, so that the elements are read.
        let o = rx.on_batch(&batch_bytes(1, 0, 0, &bytes), Instant::now());
        prop_assert!(o.ack.is_some());
        let _ = rx.on_batch_validated(&batch_bytes(1, 1, 0, &bytes), Instant::now(), &config());
    }

    #[test]
    fn prop_encode_decode_roundtrip(records in proptest::collection::vec(arb_record(), 1..20)) {
        let mut bytes = Vec::new();
        for r in &records {
            let before = bytes.len();
            r.encode(&mut bytes);
            prop_assert_eq!(bytes.len() - before, r.encoded_len());
            prop_assert!(r.encoded_len() <= 2 + 255);
        }
        let mut rd = Reader::new(&bytes);
        for r in &records {
            prop_assert_eq!(Record::decode(&mut rd), Ok(*r));
        }
        prop_assert!(rd.is_empty());
        // Flipping any one byte never panics (and at worst changes or drops records).
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let mut rd = Reader::new(&b);
            while !rd.is_empty() {
                if let Err(e) = Record::decode(&mut rd) && e.is_framing() {
                    break;
                }
            }
        }
    }

    #[test]
    fn prop_lossy_network_delivers_latest_state(
        ops in proptest::collection::vec(arb_op(), 0..300),
        wrap in any::<bool>(),
        window in 1u32..10,
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let first_seq = if wrap { u32::MAX - 4 } else { 0 };
        let mut s = Sender::new(SenderConfig { session: 42, first_seq, window, ..SenderConfig::default() });
        let mut rx = Receiver::new(ReceiverConfig { window });
        let mut net: Vec<Vec<u8>> = Vec::new();
        let mut acks: Vec<Ack> = Vec::new();
        let mut versions: HashMap<u8, u32> = HashMap::new();
        let mut latest: HashMap<RecordKey, Record> = HashMap::new();
        let mut applied: HashMap<RecordKey, Record> = HashMap::new();
        let mut syncs = 0u32;
        let mut completed = 0u32;
        let mut check = |o: ReceiveOutcome,
                         acks: &mut Vec<Ack>,
                         applied: &mut HashMap<RecordKey, Record>,
                         syncs: u32|
         -> Result<(), TestCaseError> {
            for r in o.records {
                if let Some(old) = applied.get(&r.key()) {
                    // Once and in order: versions only go up (a full sync may repeat one).
                    if syncs == 0 {
                        prop_assert!(version_of(&r) > version_of(old), "{:?} after {:?}", r, old);
                    } else {
                        prop_assert!(version_of(&r) >= version_of(old), "{:?} after {:?}", r, old);
                    }
                }
                applied.insert(r.key(), r);
            }
            completed += u32::from(o.sync_complete);
            prop_assert_eq!(o.dropped.garbage + o.dropped.malformed + o.dropped.unknown, 0);
            acks.extend(o.ack);
            Ok(())
        };
        for op in ops {
            match op {
                Op::Push(k, ended) => {
                    let v = versions.entry(k).or_insert(0);
                    *v += 1;
                    let r = sim_record(k, *v, ended);
                    latest.insert(r.key(), r);
                    prop_assert_ne!(s.push(r), PushOutcome::Dropped);
                }
                Op::Send(n) => {
                    if let Some(b) = s.next_batch(now, 60 + usize::from(n)) {
                        net.push(b.bytes);
                    }
                }
                Op::Deliver(i, dup) if !net.is_empty() => {
                    let i = usize::from(i) % net.len();
                    let bytes = if dup { net[i].clone() } else { net.swap_remove(i) };
                    check(rx.on_batch(&bytes, now), &mut acks, &mut applied, syncs)?;
                }
                Op::Lose(i) if !net.is_empty() => {
                    net.swap_remove(usize::from(i) % net.len());
                }
                Op::DeliverAck(i, dup) if !acks.is_empty() => {
                    let i = usize::from(i) % acks.len();
                    let a = if dup { acks[i] } else { acks.swap_remove(i) };
                    s.on_ack(&a, now);
                }
                Op::LoseAck(i) if !acks.is_empty() => {
                    acks.swap_remove(usize::from(i) % acks.len());
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    s.handle_timeout(now);
                }
                Op::FullSync => {
                    let mut all: Vec<Record> = latest.values().copied().collect();
                    all.sort_by_key(|r| r.key());
                    s.start_full_sync(all, now);
                    syncs += 1;
                }
                _ => {}
            }
        }
        // The network heals: everything queued or lost gets through.
        let mut rounds = 0;
        while !(s.is_idle() && net.is_empty() && acks.is_empty()) {
            rounds += 1;
            prop_assert!(rounds < 10_000, "no progress: {:?}", s.stats());
            for bytes in std::mem::take(&mut net) {
                check(rx.on_batch(&bytes, now), &mut acks, &mut applied, syncs)?;
            }
            for a in std::mem::take(&mut acks) {
                s.on_ack(&a, now);
            }
            now += Duration::from_millis(100);
            s.handle_timeout(now);
            while let Some(b) = s.next_batch(now, 1400) {
                net.push(b.bytes);
            }
        }
        prop_assert_eq!(&applied, &latest);
        prop_assert_eq!(completed > 0, syncs > 0);
        prop_assert_eq!(rx.stats().syncs_completed, u64::from(syncs));
        if syncs > 0 {
            let last = rx.stats().last_full_sync.map(|f| f.epoch);
            prop_assert_eq!(last, Some(syncs));
            prop_assert_eq!(s.stats().last_full_sync.map(|f| f.epoch), Some(syncs));
        }
    }
}
