//! Codec, log and shared-part tests.

use super::log::ChangeLog;
use super::wire::{DecodeError, Message, Resume, What};
use super::*;
use crate::config::{Config, parse_line};
use std::sync::Arc;

fn samples() -> Vec<Message> {
    vec![
        Message::Status {
            off: false,
            full: true,
            lineage: 7,
            applied: 3,
            digest: 0xABCD,
        },
        Message::Head {
            off: true,
            lineage: 1,
            head: u64::MAX,
            digest: 2,
            resume: Resume::Diverged,
            echo: (3, 4),
        },
        Message::Get {
            what: What::Full,
            lineage: 9,
            seq: 4,
            offset: 1000,
            count: 32,
        },
        Message::Chunk {
            what: What::Entry,
            lineage: 9,
            seq: 4,
            digest_after: 5,
            replace: true,
            total: 10,
            offset: 4,
            data: b"abcdef".to_vec(),
        },
        Message::Gone {
            what: What::Text,
            lineage: 0,
            seq: 77,
        },
    ]
}

#[test]
fn messages_round_trip_and_every_prefix_is_refused() {
    for m in samples() {
        let b = m.encode();
        assert_eq!(Message::decode(&b), Ok(m.clone()));
        for n in 0..b.len() {
            assert!(Message::decode(&b[..n]).is_err(), "{m:?} prefix {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Message::decode(&long), Err(DecodeError::Trailing));
    }
    assert_eq!(Message::decode(&[9]), Err(DecodeError::Kind(9)));
}

#[test]
fn a_chunk_beyond_its_total_is_refused() {
    let m = Message::Chunk {
        what: What::Entry,
        lineage: 1,
        seq: 1,
        digest_after: 0,
        replace: false,
        total: 3,
        offset: 2,
        data: b"xy".to_vec(),
    };
    assert_eq!(Message::decode(&m.encode()), Err(DecodeError::Field));
}

/// Fuzz-style: random bytes and mutated messages never panic; an engine counts them.
#[test]
fn garbage_never_panics_and_is_counted() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut e = SyncEngine::new(1, shared_text(&Config::default()), SyncConfig::default());
    let now = std::time::Instant::now();
    let bases: Vec<Vec<u8>> = samples().iter().map(Message::encode).collect();
    for i in 0..20_000 {
        let mut b = bases[i % bases.len()].clone();
        let flips = next() % 4;
        for _ in 0..flips {
            if b.is_empty() {
                break;
            }
            let at = (next() as usize) % b.len();
            b[at] = next() as u8;
        }
        if next() % 3 == 0 {
            let n = (next() as usize) % (b.len() + 1);
            b.truncate(n);
        }
        let _ = Message::decode(&b);
        e.handle_message(now, &b);
    }
    assert!(e.counters().dropped > 0);
}

#[test]
fn the_log_is_bounded_by_bytes_and_count_and_keeps_digests() {
    let mut log = ChangeLog::with_bounds(5, 100, 1000, 4);
    for i in 1..=10u64 {
        let seq = log.push(false, Arc::new(vec![b'x'; 10]), 100 + i);
        assert_eq!(seq, i);
    }
    assert_eq!(log.len(), 4);
    assert_eq!(log.base_seq(), 6);
    assert_eq!(log.digest_at(6), Some(106));
    assert_eq!(log.digest_at(10), Some(110));
    assert_eq!(log.digest_at(5), None);
    assert_eq!(log.entry(7).map(|e| e.seq), Some(7));
    // By bytes: a large entry pushes the older ones out, but stays itself.
    log.push(true, Arc::new(vec![b'y'; 5000]), 999);
    assert_eq!(log.len(), 1);
    assert_eq!(log.head(), 11);
    assert_eq!(log.head_digest(), 999);
    log.reset(8, 40, 4);
    assert_eq!((log.lineage(), log.head(), log.head_digest()), (8, 40, 4));
}

fn config(lines: &[&str]) -> Config {
    let mut c = Config::default();
    for l in lines {
        c.apply(&parse_line(l).unwrap().unwrap()).unwrap();
    }
    c
}

#[test]
fn node_local_statements_are_not_shared_and_survive_a_replace() {
    let a = config(&[
        "executor start",
        "executor set nfa 192.0.2.1",
        "executor set hatimeout 3",
        "cluster add 203.0.113.10",
        "port add 203.0.113.10@80",
        "highavailability heartbeat add 192.0.2.1 192.0.2.2",
        "highavailability reach add 192.0.2.254",
        "highavailability backup add primary auto 7777",
        "highavailability sync off",
    ]);
    let shared = shared_lines(&a);
    assert!(shared.iter().any(|l| l.contains("hatimeout 3")));
    assert!(shared.iter().any(|l| l.contains("reach add 192.0.2.254")));
    for l in &shared {
        assert!(
            !l.contains("nfa") && !l.contains("heartbeat") && !l.contains("backup"),
            "{l}"
        );
        assert!(!l.contains("executor start") && !l.contains("sync"), "{l}");
    }
    let b = config(&[
        "executor start",
        "executor set nfa 192.0.2.2",
        "highavailability heartbeat add 192.0.2.2 192.0.2.1",
        "highavailability backup add backup auto 7777",
    ]);
    let text = shared_text(&a);
    let lines: Vec<&str> = text.lines().collect();
    let c = candidate(&b, true, &lines).unwrap();
    assert_eq!(shared_digest(&c), shared_digest(&a));
    assert_eq!(c.executor.nfa, b.executor.nfa);
    assert_eq!(c.ha.heartbeats, b.ha.heartbeats);
    assert_eq!(c.ha.backup, b.ha.backup);
    assert!(c.ha.sync && c.executor.started);
    // Incremental: one line on top; a bad line changes nothing.
    let d = candidate(&c, false, &["server add 203.0.113.10@80@198.51.100.1"]).unwrap();
    assert_ne!(shared_digest(&d), shared_digest(&c));
    assert!(candidate(&c, false, &["port add 203.0.113.99@80"]).is_err());
}

#[test]
fn the_first_difference_names_the_line() {
    assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
    assert_eq!(
        first_difference("a\nb\nc\n", "a\nx\nc\n").as_deref(),
        Some("line 2: partner has `x`, this node has `b`")
    );
    assert_eq!(
        first_difference("a\n", "a\nport add 1\n").as_deref(),
        Some("line 2: partner has `port add 1`, this node has nothing")
    );
}
