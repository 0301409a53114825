//! The faults the hardening issue names, each driven through two real [`crate::ha::Node`]s
//! in simulated time: crashes, forgeries on keyed and unkeyed pairs, replays of earlier
//! replication sessions, mismatched hatimeouts, key changes and recovery changes on a live
//! pair, and the hand-over of records when Active changes hands.

use super::harness::Rng;
use super::harness::*;
use crate::config::Recovery;
use crate::ha::datagram::{self, Direction};
use crate::ha::heartbeat::{Heartbeat, Request, State, SubState, decode, encode};
use crate::replication::{Sender, SenderConfig};
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn replicating(recovery: Recovery) -> PairOptions {
    PairOptions {
        recovery,
        replication: true,
        hatimeout: secs(3.0),
        ..PairOptions::default()
    }
}

fn unkeyed(o: PairOptions) -> PairOptions {
    PairOptions {
        keys: [None, None],
        ..o
    }
}

fn steady(p: &HaPair, active: usize) -> bool {
    p.state(active) == State::Active
        && p.state(1 - active) == State::Standby
        && p.nodes[A].m().sub_state() == SubState::Synchronized
        && p.nodes[B].m().sub_state() == SubState::Synchronized
}

/// Runs `d` in steps of 50 ms, asserting at each that no two nodes forward at once and that
/// the node that forwards holds every one of `ports`.
fn run_checked(p: &mut HaPair, d: Duration, ports: &[u16]) {
    let until = p.now + d;
    while p.now < until {
        p.run_for(secs(0.05));
        assert!(p.trace.dual.is_empty(), "dual Active: {:?}", p.trace.dual);
        for n in [A, B] {
            if p.nodes[n].alive && p.nodes[n].forwarding {
                assert_eq!(
                    p.holds(n, ports),
                    ports.len(),
                    "node {n} forwards without every record at {:?}",
                    p.now - p.t0
                );
            }
        }
    }
}

/// The last heartbeat node `n` sent, decoded with its own key.
fn last_heartbeat(p: &HaPair, n: usize) -> Heartbeat {
    let bytes = p.nodes[n].last_sent(b"TNDM");
    decode(&bytes, p.nodes[n].key.as_deref()).unwrap()
}

#[test]
fn crash_and_restart_within_hatimeout_keeps_the_table() {
    for recovery in [Recovery::Manual, Recovery::Auto] {
        let mut p = HaPair::started(&replicating(recovery), secs(15.0));
        assert!(steady(&p, A), "{recovery:?}");
        let ports = p.open_connections(A, 40_000, 50);
        p.run_for(secs(2.0));
        assert_eq!(p.holds(B, &ports), 50, "replicated");
        p.kill(A);
        p.run_for(secs(0.5));
        p.restart(A);
        // The empty, restarted primary must not win the election against the Synchronized
        // standby holding the table; under auto it gets Active back later with the records
        // handed over.
        run_checked(&mut p, secs(30.0), &ports);
        let active = if recovery == Recovery::Manual { B } else { A };
        assert!(
            steady(&p, active),
            "{recovery:?}: {:?} {:?}",
            p.state(A),
            p.state(B)
        );
        assert_eq!(p.holds(active, &ports), 50);
        let st = p.nodes[B].m().status(p.now);
        assert!(
            st.transitions
                .iter()
                .any(|t| t.to == State::Active && t.reason.contains("holds the replicated table")),
            "{:?}",
            st.transitions
        );
    }
}

#[test]
fn a_spoofed_leaving_heartbeat_changes_nothing_keyed_or_not() {
    for keyed in [true, false] {
        let o = if keyed {
            PairOptions::default()
        } else {
            unkeyed(PairOptions::default())
        };
        let mut p = HaPair::started(&o, secs(10.0));
        assert!(steady(&p, A));
        let genuine = last_heartbeat(&p, A);
        // The attacker knows everything on the wire: epoch, seq; it says A is leaving, with
        // the next seq and, in a second try, a later epoch (a "restart").
        for forged in [
            Heartbeat {
                seq: genuine.seq + 1,
                state: State::Down,
                request: Request::Leaving,
                ..genuine.clone()
            },
            Heartbeat {
                epoch: genuine.epoch + 1,
                seq: 1,
                state: State::Down,
                request: Request::Leaving,
                ..genuine.clone()
            },
            Heartbeat {
                seq: genuine.seq + 1_000_000,
                ..genuine.clone()
            },
        ] {
            let key = keyed.then_some(&b"attacker's guess"[..]);
            let received_before = p.nodes[B].m().heartbeats_received();
            p.inject(A, 0, encode(&forged, key));
            p.run_for(secs(5.0));
            assert!(steady(&p, A), "keyed {keyed}: {forged:?}");
            assert_eq!(p.nodes[B].transitions_since(p.t0 + secs(10.0)), 0);
            assert!(p.trace.dual.is_empty());
            // Genuine heartbeats keep arriving and count (the guard did not move).
            assert!(p.nodes[B].m().heartbeats_received() >= received_before + 8);
            assert_eq!(p.nodes[B].m().drops().replayed, 0, "keyed {keyed}");
        }
        let d = p.nodes[B].m().drops();
        if keyed {
            assert_eq!(d.bad_mac, 3);
        } else {
            assert!(d.unconfirmed >= 3, "{d:?}");
        }
    }
}

/// A batch of `records` as the partner's sender would make it.
fn batch_of(records: Vec<crate::replication::Record>, session: u32) -> Vec<u8> {
    let mut s = Sender::new(SenderConfig {
        session,
        ..SenderConfig::default()
    });
    for r in records {
        s.push(r);
    }
    s.next_batch(p_now(), 1400).unwrap().bytes
}

fn p_now() -> std::time::Instant {
    std::time::Instant::now()
}

#[test]
fn forged_replication_records_change_nothing_on_the_active() {
    for keyed in [true, false] {
        let o = replicating(Recovery::Auto);
        let o = if keyed { o } else { unkeyed(o) };
        let mut p = HaPair::started(&o, secs(15.0));
        assert!(steady(&p, A));
        let ports = p.open_connections(A, 40_000, 5);
        p.run_for(secs(1.0));
        let (ea, eb) = (p.nodes[A].epoch, p.nodes[B].epoch);
        // Records "from B" to the Active A: a victim flow redirected to another MAC.
        let mut evil = connection(40_000);
        if let crate::replication::Record::Connection(c) = &mut evil {
            c.client_mac = [0xde, 0xad, 0, 0, 0, 1];
        }
        let batch = batch_of(vec![evil, connection(50_000)], 77);
        let key = keyed.then_some(&b"attacker's guess"[..]);
        p.inject(
            B,
            0,
            datagram::seal(Direction::Records, eb, ea, &batch, key),
        );
        p.run_for(secs(1.0));
        assert_eq!(p.nodes[A].table.get(&40_000), Some(&connection(40_000)));
        assert!(!p.nodes[A].table.contains_key(&50_000));
        let c = p.nodes[A].node.counters();
        if keyed {
            assert_eq!(c.frames_dropped, 1, "{c:?}");
        } else {
            assert_eq!(c.refused_active, 2, "never installed on the Active: {c:?}");
        }
        assert!(steady(&p, A));
        assert_eq!(p.holds(B, &ports), 5);
    }
}

#[test]
fn replayed_or_reflected_replication_frames_are_dropped_and_retire_nothing() {
    let mut p = HaPair::started(&replicating(Recovery::Manual), secs(15.0));
    let first = p.open_connections(A, 40_000, 20);
    p.run_for(secs(1.0));
    let old: Vec<Vec<u8>> = p.nodes[A].sent_of(b"TNDR");
    assert!(!old.is_empty());
    // Two hand-overs: A's sender starts a new session when it is Active again.
    p.takeover(B).unwrap();
    p.run_for(secs(5.0));
    assert!(steady(&p, B));
    p.takeover(A).unwrap();
    p.run_for(secs(5.0));
    assert!(steady(&p, A));
    // A's new session is in use.
    let second = p.open_connections(A, 42_000, 5);
    p.run_for(secs(1.0));
    assert_eq!(p.holds(B, &second), 5);
    // Replay the first session's frames to B, and reflect B's own frames back to it.
    for f in &old {
        p.inject(A, 0, f.clone());
    }
    let own: Vec<Vec<u8>> = p.nodes[B].sent_of(b"TNDR");
    for f in &own {
        p.inject(A, 0, f.clone());
    }
    p.run_for(secs(1.0));
    let c = p.nodes[B].node.counters().clone();
    assert!(c.stale_session >= 1, "{c:?}");
    assert!(c.reflected >= own.len() as u64, "{c:?}");
    // The live session still delivers.
    let more = p.open_connections(A, 41_000, 20);
    p.run_for(secs(1.0));
    assert_eq!(p.holds(B, &more), 20);
    assert_eq!(p.holds(B, &first), 20);
    assert!(steady(&p, A));
}

#[test]
fn mismatched_hatimeouts_never_flap() {
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    let mut slow = p.nodes[A].settings.clone();
    slow.hatimeout = secs(4.0);
    let mut fast = p.nodes[B].settings.clone();
    fast.hatimeout = secs(0.5);
    p.reconfigure(A, slow);
    p.reconfigure(B, fast);
    p.run_for(secs(2.0));
    let t = p.now;
    p.run_for(secs(30.0));
    assert_eq!(p.nodes[A].transitions_since(t), 0);
    assert_eq!(p.nodes[B].transitions_since(t), 0);
    assert!(steady(&p, A));
    // B judges silence by A's 4 s: A's kill is taken over after about 4 s, not 0.5 s.
    p.kill(A);
    let t = p.now;
    let took = p
        .run_until_cond(secs(10.0), |p| p.state(B) == State::Active)
        .unwrap();
    // (A sends every second: its last heartbeat came up to 1 s before the kill.)
    assert!(
        took - t >= secs(2.9) && took - t <= secs(4.6),
        "{:?}",
        took - t
    );
}

#[test]
fn a_rolling_key_change_keeps_the_pair_synchronized() {
    let mut p = HaPair::started(&replicating(Recovery::Auto), secs(15.0));
    let ports = p.open_connections(A, 40_000, 10);
    p.run_for(secs(1.0));
    let new = b"the new pair key 0123456789".to_vec();
    p.set_key(B, Some(new.clone()));
    for _ in 0..100 {
        p.run_for(secs(0.1));
        assert!(steady(&p, A), "one node changed");
    }
    p.set_key(A, Some(new.clone()));
    for _ in 0..200 {
        p.run_for(secs(0.1));
        assert!(steady(&p, A), "both changed");
    }
    assert!(p.trace.dual.is_empty());
    assert!(!p.nodes[A].node.keys().rotating() && !p.nodes[B].node.keys().rotating());
    assert_eq!(
        last_heartbeat(&p, A).epoch,
        p.nodes[A].epoch,
        "A signs with the new key"
    );
    // The old key is refused now.
    let mut forged = last_heartbeat(&p, A);
    forged.seq += 5;
    let bad = p.nodes[B].m().drops().bad_mac;
    p.inject(A, 0, encode(&forged, Some(b"pair key")));
    p.run_for(secs(0.1));
    assert_eq!(p.nodes[B].m().drops().bad_mac, bad + 1);
    let more = p.open_connections(A, 41_000, 10);
    p.run_for(secs(1.0));
    assert_eq!(p.holds(B, &more), 10);
    assert_eq!(p.holds(B, &ports), 10);
}

#[test]
fn takeover_hands_every_record_over_and_back() {
    let mut p = HaPair::started(&replicating(Recovery::Manual), secs(15.0));
    let ports = p.open_connections(A, 40_000, 50);
    p.run_for(secs(1.0));
    // Records the Active holds that never went out (its queue was lost, say): the hand-over
    // carries them anyway.
    for port in 45_000..45_010 {
        p.nodes[A].table.insert(port, connection(port));
    }
    let all: Vec<u16> = ports.iter().copied().chain(45_000..45_010).collect();
    p.takeover(B).unwrap();
    run_checked(&mut p, secs(5.0), &all);
    assert!(steady(&p, B));
    assert_eq!(p.holds(B, &all), 60);
    assert!(p.nodes[A].node.counters().handovers == 1);
    // Nothing is left queued on the node that yielded: no stale sync later.
    let s = p.nodes[A].node.channel_status(p.now).sender;
    assert_eq!((s.queued, s.in_flight), (0, 0));
    p.takeover(A).unwrap();
    run_checked(&mut p, secs(5.0), &all);
    assert!(steady(&p, A));
    assert_eq!(p.holds(A, &all), 60);
}

#[test]
fn changing_the_recovery_in_place_changes_nothing() {
    let mut p = HaPair::started(&replicating(Recovery::Auto), secs(15.0));
    let t = p.now;
    for n in [A, B] {
        let mut s = p.nodes[n].settings.clone();
        if let Some(b) = &mut s.backup {
            b.recovery = Recovery::Manual;
        }
        p.reconfigure(n, s);
        p.run_for(secs(1.0));
    }
    p.run_for(secs(20.0));
    assert_eq!(p.nodes[A].transitions_since(t), 0);
    assert_eq!(p.nodes[B].transitions_since(t), 0);
    assert!(steady(&p, A));
    assert_eq!(
        p.nodes[A].m().status(p.now).recovery,
        Some(Recovery::Manual)
    );
}

#[test]
fn a_flood_of_junk_and_forgeries_on_the_heartbeat_port_moves_nothing() {
    for keyed in [true, false] {
        let o = replicating(Recovery::Auto);
        let o = if keyed { o } else { unkeyed(o) };
        let mut p = HaPair::started(&o, secs(15.0));
        let ports = p.open_connections(A, 40_000, 10);
        p.run_for(secs(1.0));
        let genuine = last_heartbeat(&p, B);
        let t = p.now;
        // 10 s at 20 datagrams per ms toward the Active (200 000/s): garbage, truncated
        // heartbeats, forged "leaving" and state changes with random seqs, forged frames.
        let mut rng = Rng::new(7);
        for ms in 0..10_000u64 {
            for k in 0..20u64 {
                let junk = match k % 5 {
                    0 => vec![0x5a; 64],
                    1 => encode(&genuine, None)[..20].to_vec(),
                    2 => encode(
                        &Heartbeat {
                            seq: rng.next_u64(),
                            state: State::Down,
                            request: Request::Leaving,
                            ..genuine.clone()
                        },
                        keyed.then_some(&b"guess"[..]),
                    ),
                    3 => encode(
                        &Heartbeat {
                            epoch: genuine.epoch + 1 + ms,
                            seq: 1,
                            state: State::Standby,
                            request: Request::TakeoverRequest,
                            ..genuine.clone()
                        },
                        keyed.then_some(&b"guess"[..]),
                    ),
                    _ => datagram::seal(
                        Direction::Records,
                        genuine.epoch,
                        p.nodes[A].epoch,
                        &batch_of(vec![connection(50_000 + k as u16)], 9),
                        keyed.then_some(&b"guess"[..]),
                    ),
                };
                p.inject(B, 0, junk);
            }
            p.run_for(secs(0.001));
        }
        p.run_for(secs(2.0));
        assert_eq!(p.nodes[A].transitions_since(t), 0, "keyed {keyed}");
        assert_eq!(p.nodes[B].transitions_since(t), 0, "keyed {keyed}");
        assert!(steady(&p, A), "keyed {keyed}");
        assert!(p.trace.dual.is_empty());
        assert_eq!(p.holds(A, &ports), 10);
        assert!((50_000..50_005).all(|port| !p.nodes[A].table.contains_key(&port)));
        let d = p.nodes[A].m().drops();
        assert!(d.bad_magic + d.truncated >= 80_000, "{d:?}");
    }
}

#[test]
fn a_restarted_node_does_not_believe_a_replayed_leaving_notice() {
    let mut p = HaPair::started(&replicating(Recovery::Manual), secs(15.0));
    // Record A's authentic "leaving" heartbeat, then make A Active again.
    p.stop(A);
    let leaving = p.nodes[A].last_sent(b"TNDM");
    p.run_for(secs(1.0));
    p.start(A);
    p.run_for(secs(10.0));
    p.takeover(A).unwrap();
    p.run_for(secs(5.0));
    assert!(steady(&p, A));
    // B crashes and comes back; the attacker replays A's old "leaving" at once.
    p.kill(B);
    p.run_for(secs(0.5));
    p.restart(B);
    let t = p.now;
    p.inject(A, 0, leaving);
    p.run_for(secs(10.0));
    assert_eq!(
        p.nodes[B].count(t, |a| *a == crate::ha::Action::GoActive),
        0
    );
    assert!(p.trace.dual.is_empty(), "{:?}", p.trace.dual);
    assert!(steady(&p, A));
}

/// Fuzzing finding 6 (BENCHMARKS.md): a batch from the partner's address but another port
/// had its acknowledgement sent to that port, where the partner does not listen.
#[test]
fn fuzz_regression_acks_go_to_the_partners_heartbeat_port() {
    let mut p = HaPair::started(&unkeyed(replicating(Recovery::Manual)), secs(15.0));
    p.open_connections(A, 40_000, 5);
    p.run_for(secs(1.0));
    // The last records frame (direction 1; configuration sync frames share the magic).
    let batch = p.nodes[A]
        .sent_of(b"TNDR")
        .into_iter()
        .rfind(|b| b[6] == 1)
        .expect("a records frame");
    p.nodes[B].sent.clear();
    p.inject_from_port(A, 0, 40_000, batch);
    p.run_for(secs(0.01));
    let acks: Vec<_> = p.nodes[B]
        .sent
        .iter()
        .filter(|t| t.bytes.starts_with(b"TNDR"))
        .collect();
    assert!(!acks.is_empty(), "the duplicate batch is acknowledged");
    assert!(
        acks.iter().all(|t| t.destination.port() == 20001),
        "{acks:?}"
    );
    assert!(steady(&p, A));
}

/// The Active's advisor states reach the Standby (so that a takeover starts from them); the
/// Standby sends none, a chunk too large for one frame is refused, and a forged chunk is
/// dropped like any frame that fails authentication.
#[test]
fn advisor_states_travel_from_the_active_to_the_standby_only() {
    let mut p = HaPair::started(&replicating(Recovery::Manual), secs(15.0));
    assert!(steady(&p, A));
    assert!(p.nodes[A].node.send_health(b"chunk-1"));
    assert!(!p.nodes[B].node.send_health(b"from the standby"));
    let too_big = vec![0u8; datagram::FRAME_MESSAGE_BYTES + 1];
    assert!(!p.nodes[A].node.send_health(&too_big));
    assert_eq!(p.nodes[A].node.counters().health_oversize, 1);
    p.run_for(secs(0.1));
    assert_eq!(p.nodes[B].partner_health, vec![b"chunk-1".to_vec()]);
    assert!(p.nodes[A].partner_health.is_empty());
    let forged = datagram::seal(Direction::Health, 1, 2, b"forged", Some(b"not the key"));
    p.inject(A, 0, forged);
    p.run_for(secs(0.1));
    assert_eq!(p.nodes[B].partner_health.len(), 1);
    assert_eq!(p.nodes[B].node.counters().health_received, 1);
}
