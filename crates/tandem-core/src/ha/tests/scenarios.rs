//! Scenario tests of the HA machine, two nodes in simulated time.

use super::harness::*;
use crate::config::Recovery;
use crate::ha::heartbeat::{ProductVersion, State, SubState};
use crate::ha::machine::{Action, Contact, HaSettings, PairLiveness, TakeoverError};
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn assert_steady(p: &HaPair, active: usize) {
    let standby = 1 - active;
    assert_eq!(
        p.state(active),
        State::Active,
        "node {active} should be Active"
    );
    assert_eq!(
        p.state(standby),
        State::Standby,
        "node {standby} should be Standby"
    );
    assert_eq!(p.nodes[active].m().sub_state(), SubState::Synchronized);
    assert_eq!(p.nodes[standby].m().sub_state(), SubState::Synchronized);
    assert_eq!(p.single_active(), Some(active));
}

/// No moment with both nodes forwarding at or after `since`.
fn never_dual_since(p: &HaPair, since: std::time::Instant) {
    for &(s, e) in &p.trace.dual {
        assert!(
            e.is_some_and(|e| e <= since),
            "dual-active from {:?} to {:?}",
            s - p.t0,
            e.map(|e| e - p.t0)
        );
    }
}

#[test]
fn startup_primary_active_backup_standby() {
    // Both at once, primary first, backup first: the primary ends Active (auto).
    for order in 0..3 {
        let o = PairOptions {
            replication: order == 1,
            ..PairOptions::default()
        };
        let mut p = HaPair::new(&o);
        match order {
            0 => {
                p.start(A);
                p.start(B);
            }
            1 => {
                p.start(A);
                p.run_for(secs(5.0));
                assert_eq!(p.state(A), State::Active);
                assert_eq!(p.nodes[A].m().sub_state(), SubState::NotSynchronized);
                p.start(B);
            }
            _ => {
                p.start(B);
                p.run_for(secs(5.0));
                assert_eq!(p.state(B), State::Active, "backup alone goes Active");
                p.start(A);
            }
        }
        p.run_for(secs(10.0));
        assert_steady(&p, A);
        let st = p.nodes[B].m().status(p.now);
        assert_eq!(st.partner.as_ref().unwrap().contact, Contact::Ok);
        assert!(st.heartbeats.iter().all(|h| h.status == PairLiveness::Ok));
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    }
}

#[test]
fn simultaneous_start_has_no_dual_active() {
    let o = PairOptions::default();
    let p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
    assert!(p.trace.dual.is_empty(), "{:?}", p.trace.dual);
}

#[test]
fn primary_killed_backup_takes_over_within_hatimeout_plus_interval() {
    for pairs in [1, 2] {
        let o = PairOptions {
            pairs,
            ..PairOptions::default()
        };
        let mut p = HaPair::started(&o, secs(10.0));
        assert_steady(&p, A);
        let killed = p.now;
        p.kill(A);
        let t = p
            .run_until_cond(secs(10.0), |p| p.state(B) == State::Active)
            .expect("takeover");
        let took = t - killed;
        assert!(took <= p.hatimeout() + p.interval(), "took {took:?}");
        assert!(took >= p.hatimeout() - p.interval(), "too early: {took:?}");
        let st = p.nodes[B].m().status(p.now);
        assert!(
            st.transitions[0]
                .reason
                .contains("heartbeat timeout (hatimeout 2s exceeded)"),
            "{:?}",
            st.transitions[0]
        );
        assert!(
            p.nodes[B]
                .log
                .iter()
                .any(|(_, a)| *a == Action::PartnerLost)
        );
    }
}

#[test]
fn link_cut_backup_takes_over_and_heal_resolves() {
    let o = PairOptions::default();
    let mut p = HaPair::started(&o, secs(10.0));
    let cut = p.now;
    p.set_links(false);
    let t = p
        .run_until_cond(secs(10.0), |p| p.state(B) == State::Active)
        .expect("takeover");
    assert!(t - cut <= p.hatimeout() + p.interval());
    assert_eq!(
        p.state(A),
        State::Active,
        "a partitioned primary keeps forwarding"
    );
    // Heal: resolved at once (auto: the primary keeps Active).
    p.run_for(secs(3.0));
    let healed = p.now;
    p.set_links(true);
    let t = p
        .run_until_cond(secs(5.0), |p| p.single_active().is_some())
        .expect("resolved");
    assert!(
        t - healed <= p.interval() + secs(0.01),
        "resolution took {:?}",
        t - healed
    );
    p.run_for(secs(5.0));
    assert_steady(&p, A);
    // Manual: the backup (current holder) keeps Active.
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    p.set_links(false);
    p.run_for(secs(5.0));
    p.set_links(true);
    p.run_for(secs(5.0));
    assert_steady(&p, B);
    let st = p.nodes[A].m().status(p.now);
    assert!(
        st.transitions[0].reason.contains("both Active"),
        "{:?}",
        st.transitions[0]
    );
}

#[test]
fn auto_failback_after_primary_returns() {
    let o = PairOptions {
        replication: true,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
    p.kill(A);
    p.run_for(secs(5.0));
    assert_eq!(p.state(B), State::Active);
    p.restart(A);
    let back = p.now;
    let t = p
        .run_until_cond(secs(20.0), |p| p.state(A) == State::Active)
        .expect("failback");
    // Listen → Standby, sync, hold (hatimeout), handshake.
    assert!(t - back < secs(6.0), "failback took {:?}", t - back);
    p.run_for(secs(5.0));
    assert_steady(&p, A);
    never_dual_since(&p, back);
    // The backup synced the primary's table (it was Active), then yielded.
    assert!(p.nodes[B].node.counters().full_syncs_sent >= 1);
    assert!(
        p.nodes[B].node.counters().handovers >= 1,
        "records handed over on yield"
    );
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.transitions[0].to, State::Standby);
    assert_eq!(st.transitions[0].reason, "partner requested takeover");
    let st = p.nodes[A].m().status(p.now);
    assert_eq!(st.transitions[0].reason, "auto failback: partner yielded");
    assert_eq!(st.takeover.as_deref(), Some("auto failback completed"));
}

#[test]
fn manual_stays_standby_until_takeover() {
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
    p.kill(A);
    p.run_for(secs(5.0));
    p.restart(A);
    p.run_for(secs(60.0));
    assert_steady(&p, B);
    let before = p.now;
    // Takeover on the Active node is refused; on the Synchronized Standby it swaps.
    assert_eq!(p.takeover(B), Err(TakeoverError::AlreadyActive));
    assert_eq!(p.takeover(A), Ok(()));
    assert_eq!(p.takeover(A), Err(TakeoverError::InProgress));
    let t = p
        .run_until_cond(secs(5.0), |p| p.state(A) == State::Active)
        .expect("swap");
    assert!(t - before < secs(0.1), "swap took {:?}", t - before);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
    never_dual_since(&p, before);
    // And back again.
    let before = p.now;
    assert_eq!(p.takeover(B), Ok(()));
    p.run_for(secs(5.0));
    assert_steady(&p, B);
    never_dual_since(&p, before);
}

#[test]
fn takeover_refusals() {
    // Replication on and never completed: the standby is Not Synchronized.
    let o = PairOptions {
        recovery: Recovery::Manual,
        replication: true,
        ..PairOptions::default()
    };
    let mut p = HaPair::new(&o);
    p.answer_snapshots = false;
    p.start(A);
    p.start(B);
    p.run_for(secs(10.0));
    assert_eq!(p.state(B), State::Standby);
    assert_eq!(p.nodes[B].m().sub_state(), SubState::NotSynchronized);
    let err = p.takeover(B).unwrap_err();
    assert!(matches!(err, TakeoverError::NotSynchronized(_)), "{err}");
    assert!(err.to_string().contains("Not Synchronized"), "{err}");
    p.run_for(secs(10.0));
    assert_eq!(p.state(A), State::Active);
    // Not configured / executor stopped.
    let mut m = crate::ha::Machine::new(1, ProductVersion::new(9, 0, 5, 8));
    assert_eq!(m.takeover(p.now), Err(TakeoverError::NotConfigured));
    p.stop(B);
    assert_eq!(p.takeover(B), Err(TakeoverError::ExecutorStopped));
    // Backup with auto recovery: the primary would take it straight back.
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    assert_eq!(p.takeover(B), Err(TakeoverError::AutoBackup));
}

#[test]
fn takeover_abandoned_when_partner_does_not_yield() {
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
    // B asks, but B→A is cut at that moment: A never sees the request. B still hears A
    // Active, so it must neither go Active nor wait forever.
    p.set_direction(1, false);
    assert!(p.takeover(B).is_ok());
    assert!(
        p.nodes[B]
            .m()
            .status(p.now)
            .takeover
            .unwrap()
            .contains("in progress")
    );
    p.run_for(secs(5.0));
    assert_eq!(p.state(A), State::Active);
    assert_eq!(p.state(B), State::Standby);
    let st = p.nodes[B].m().status(p.now);
    assert!(
        st.takeover
            .as_deref()
            .unwrap()
            .contains("takeover abandoned"),
        "{:?}",
        st.takeover
    );
    p.set_direction(1, true);
    p.run_for(secs(10.0));
    assert_eq!(p.single_active(), Some(A));
}

#[test]
fn reach_decides_takeover() {
    let o = PairOptions {
        reach: 2,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
    // Equal loss on both sides: no change.
    let t = p.now;
    p.set_reach(A, 0, false);
    p.set_reach(B, 0, false);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
    assert_eq!(p.nodes[A].transitions_since(t), 0);
    assert_eq!(p.nodes[B].transitions_since(t), 0);
    // Probes see a shared target fail at different moments: a skew shorter than the reach
    // hold (reach interval + hatimeout = 4 s) swaps nothing.
    let t = p.now;
    p.set_reach(A, 0, true);
    p.set_reach(B, 0, true);
    p.run_for(secs(1.0));
    p.set_reach(A, 0, false);
    p.run_for(secs(3.0));
    p.set_reach(B, 0, false);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
    assert_eq!(p.nodes[A].transitions_since(t), 0);
    // The active loses one more for good: the standby (more) takes over, yield-first, once
    // the difference has lasted the reach hold.
    let t = p.now;
    p.set_reach(A, 1, false);
    let took = p
        .run_until_cond(secs(10.0), |p| p.state(B) == State::Active)
        .expect("reach takeover");
    let hold = p.nodes[A].settings.reach_hold();
    assert!(
        took - t >= hold && took - t < hold + secs(0.1),
        "took {:?}",
        took - t
    );
    p.run_for(secs(10.0));
    assert_steady(&p, B);
    never_dual_since(&p, t);
    let st = p.nodes[A].m().status(p.now);
    assert_eq!(
        st.transitions[0].reason,
        "partner reaches more targets (1 > 0)"
    );
    assert_eq!(st.reach_count, 0);
    assert_eq!(st.partner.unwrap().reach_count, 1);
    // The target comes back: equal counts, auto primary fails back.
    p.set_reach(A, 0, true);
    p.set_reach(A, 1, true);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
}

#[test]
fn version_mismatch_seen_alive_never_dual_active() {
    let o = PairOptions {
        versions: [
            ProductVersion::new(9, 0, 5, 8),
            ProductVersion::new(9, 1, 0, 0),
        ],
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    assert_eq!(p.state(A), State::Active);
    assert_eq!(p.state(B), State::Standby);
    for n in [A, B] {
        let st = p.nodes[n].m().status(p.now);
        let partner = st.partner.unwrap();
        assert!(!partner.compatible);
        assert_eq!(st.sub_state, SubState::NotSynchronized);
        assert!(
            st.warnings.iter().any(|w| w.contains("incompatible")),
            "{:?}",
            st.warnings
        );
        assert!(
            p.nodes[n]
                .log
                .iter()
                .any(|(_, a)| *a == Action::PartnerFound { compatible: false })
        );
    }
    assert!(p.trace.dual.is_empty());
    assert!(matches!(
        p.takeover(B),
        Err(TakeoverError::Incompatible { .. })
    ));
    // Primary restarts with the new version: it stays Standby (no auto failback), once Active
    // stays single.
    p.kill(A);
    p.run_for(secs(5.0));
    p.restart(A);
    p.run_for(secs(30.0));
    assert_eq!(p.state(A), State::Standby);
    assert_eq!(p.single_active(), Some(B));
    // Stopping B's executor hands over at once (the maintenance procedure).
    let t = p.now;
    p.stop(B);
    let took = p
        .run_until_cond(secs(5.0), |p| p.state(A) == State::Active)
        .unwrap();
    assert!(took - t < secs(0.01));
    // Same V.R, other M.F: compatible.
    let o = PairOptions {
        versions: [
            ProductVersion::new(8, 5, 5, 16),
            ProductVersion::new(8, 5, 0, 0),
        ],
        ..PairOptions::default()
    };
    let p = HaPair::started(&o, secs(10.0));
    assert_steady(&p, A);
}

#[test]
fn standby_entered_makes_active_announce() {
    let o = PairOptions::default();
    let mut p = HaPair::new(&o);
    p.start(A);
    p.run_for(secs(5.0));
    assert_eq!(p.state(A), State::Active);
    let t = p.now;
    p.start(B);
    p.run_for(secs(5.0));
    assert_eq!(p.nodes[A].count(t, |a| *a == Action::Announce), 1);
    // And after a swap, the new active announces once the old one says it is Standby.
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    let t = p.now;
    p.takeover(B).unwrap();
    p.run_for(secs(5.0));
    assert_eq!(p.nodes[B].count(t, |a| *a == Action::Announce), 1);
    assert_eq!(p.nodes[A].count(t, |a| *a == Action::Announce), 0);
}

#[test]
fn scripts_once_per_transition_in_order() {
    let o = PairOptions::default();
    let mut p = HaPair::new(&o);
    let t = p.now;
    p.start(A);
    p.run_for(secs(5.0));
    p.start(B);
    p.run_for(secs(5.0));
    assert_eq!(
        p.nodes[A].effects_since(t),
        [
            "GoListen",
            "goInOp",
            "highavailChange goInOp",
            "GoActive",
            "goActive",
            "highavailChange goActive"
        ]
    );
    assert_eq!(
        p.nodes[B].effects_since(t),
        [
            "GoListen",
            "goInOp",
            "highavailChange goInOp",
            "GoStandby",
            "goStandby",
            "highavailChange goStandby"
        ]
    );
    // Executor stop and the partner's takeover.
    let t = p.now;
    p.stop(A);
    p.run_for(secs(1.0));
    assert_eq!(
        p.nodes[A].effects_since(t),
        ["GoDown", "goInOp", "highavailChange goInOp"]
    );
    assert_eq!(
        p.nodes[B].effects_since(t),
        ["GoActive", "goActive", "highavailChange goActive"]
    );
    // The state action comes right before its scripts in the action stream.
    let log = &p.nodes[B].log;
    let i = log
        .iter()
        .position(|(_, a)| *a == Action::GoActive)
        .unwrap();
    assert_eq!(
        log[i + 1].1,
        Action::RunScript {
            name: "goActive",
            arg: None
        }
    );
    assert_eq!(
        log[i + 2].1,
        Action::RunScript {
            name: "highavailChange",
            arg: Some("goActive")
        }
    );
}

#[test]
fn executor_stop_hands_over_at_once() {
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    let t = p.now;
    p.stop(A);
    let took = p
        .run_until_cond(secs(5.0), |p| p.state(B) == State::Active)
        .unwrap();
    assert!(took - t <= secs(0.002), "took {:?}", took - t);
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.transitions[0].reason, "partner left (executor stopped)");
    assert_eq!(st.partner.unwrap().contact, Contact::Left);
    assert_eq!(p.state(A), State::Down);
    assert!(!p.nodes[A].forwarding);
    // Restarting the executor: Listen, then Standby, then auto failback.
    p.start(A);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
}

#[test]
fn deleting_ha_goes_idle_and_adding_it_listens() {
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    // IBM's procedure: stop the executor on one, delete HA on the other.
    p.stop(B);
    p.run_for(secs(1.0));
    let standalone = HaSettings {
        backup: None,
        heartbeats: Vec::new(),
        ..p.nodes[A].settings.clone()
    };
    let t = p.now;
    p.reconfigure(A, standalone);
    assert_eq!(p.state(A), State::Idle);
    assert!(p.nodes[A].forwarding);
    assert_eq!(
        p.nodes[A].effects_since(t),
        ["GoIdle", "goIdle", "highavailChange goIdle"]
    );
    assert!(p.nodes[A].m().poll_timeout().is_none());
    let st = p.nodes[A].m().status(p.now);
    assert!(!st.configured);
    assert_eq!(st.state, State::Idle);
    // Adding HA back: Listen (not forwarding), then Active after hatimeout.
    let s = settings_for(&PairOptions::default(), A);
    p.reconfigure(A, s);
    assert_eq!(p.state(A), State::Listen);
    assert!(!p.nodes[A].forwarding);
    p.run_for(secs(3.0));
    assert_eq!(p.state(A), State::Active);
}

#[test]
fn one_way_links_never_both_active() {
    for dir in [0, 1] {
        let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
        let t = p.now;
        p.set_direction(dir, false);
        p.run_for(secs(30.0));
        assert!(
            p.single_active().is_some(),
            "dir {dir}: A {:?} B {:?}",
            p.state(A),
            p.state(B)
        );
        // Dual-active lasts at most a link latency (the deaf side leads, the other follows).
        for &(s, e) in &p.trace.dual {
            if s >= t {
                assert!(
                    e.unwrap_or(p.now) - s <= secs(0.01),
                    "dir {dir}: dual for {:?}",
                    e.unwrap_or(p.now) - s
                );
            }
        }
        let hearing = dir; // cutting A→B (0) leaves A (0) receiving
        let st = p.nodes[hearing].m().status(p.now);
        assert_eq!(st.partner.unwrap().contact, Contact::Deaf, "dir {dir}");
        assert!(st.warnings.iter().any(|w| w.contains("does not hear")));
        // Healing: back to the normal pair.
        p.set_direction(dir, true);
        p.run_for(secs(10.0));
        assert_steady(&p, A);
    }
}

#[test]
fn partial_pair_loss_causes_no_takeover() {
    let o = PairOptions {
        pairs: 2,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    let t = p.now;
    p.links[0] = [
        Link {
            up: false,
            ..Link::default()
        },
        Link {
            up: false,
            ..Link::default()
        },
    ];
    p.run_for(secs(20.0));
    assert_steady(&p, A);
    assert_eq!(p.nodes[B].transitions_since(t), 0);
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.heartbeats[0].status, PairLiveness::Down);
    assert_eq!(st.heartbeats[1].status, PairLiveness::Ok);
}

#[test]
fn no_false_takeover_at_5_percent_loss() {
    for seed in [1, 2, 3] {
        let o = PairOptions {
            seed,
            ..PairOptions::default()
        };
        let mut p = HaPair::started(&o, secs(10.0));
        assert_steady(&p, A);
        p.set_loss(0.05);
        let t = p.now;
        p.run_for(secs(600.0));
        assert_eq!(p.nodes[A].transitions_since(t), 0, "seed {seed}");
        assert_eq!(p.nodes[B].transitions_since(t), 0, "seed {seed}");
        assert!(p.dropped > 60, "the loss did happen: {}", p.dropped);
        let st = p.nodes[B].m().status(p.now);
        // About 61 expected (5% of ~1225); the bound only shows that loss happened.
        assert!(st.heartbeats[0].lost > 25, "{:?}", st.heartbeats[0]);
    }
}

#[test]
fn keys_wrong_or_missing() {
    // A key on one side only: the keyed side refuses the unkeyed heartbeats (MissingMac), the
    // unkeyed side still sees its partner: exactly one Active.
    let o = PairOptions {
        keys: [Some(b"k".to_vec()), None],
        ..PairOptions::default()
    };
    let p = HaPair::started(&o, secs(20.0));
    assert!(p.single_active().is_some());
    assert!(p.nodes[A].m().drops().missing_mac > 10);
    // Different keys: nothing authenticates; both count BadMac (and both go Active: nothing
    // can tell a partner with another key from a forger).
    let o = PairOptions {
        keys: [Some(b"k1".to_vec()), Some(b"k2".to_vec())],
        ..PairOptions::default()
    };
    let p = HaPair::started(&o, secs(10.0));
    assert!(p.nodes[A].m().drops().bad_mac > 10 && p.nodes[B].m().drops().bad_mac > 10);
    assert_eq!(
        p.nodes[B].m().status(p.now).dropped.bad_mac,
        p.nodes[B].m().drops().bad_mac
    );
}

#[test]
fn replayed_heartbeats_are_dropped() {
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    // Record one of A's heartbeats as it went on the wire, replay it to B later.
    let hb = p.nodes[A].last_sent(b"TNDM");
    p.run_for(secs(2.0));
    let before = p.nodes[B].m().drops().replayed;
    p.inject(A, 0, hb);
    p.run_for(secs(0.1));
    assert_eq!(p.nodes[B].m().drops().replayed, before + 1);
    assert_eq!(p.state(A), State::Active);
    assert_eq!(p.state(B), State::Standby);
}

#[test]
fn status_reports_everything() {
    let o = PairOptions {
        reach: 2,
        pairs: 2,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    p.set_reach(B, 1, false);
    p.run_for(secs(1.0));
    let st = p.nodes[B].m().status(p.now);
    assert!(st.configured);
    assert_eq!(st.role, Some(crate::config::Role::Backup));
    assert_eq!(st.recovery, Some(Recovery::Auto));
    assert_eq!(st.port, Some(20001));
    assert_eq!(
        (st.state, st.sub_state),
        (State::Standby, SubState::Synchronized)
    );
    assert_eq!((st.reach_count, st.reach_total), (1, 2));
    assert_eq!(st.reach[1].reachable, Some(false));
    assert_eq!(st.hatimeout_ms, 2000);
    assert_eq!(st.interval_ms, 500);
    assert_eq!(st.heartbeats.len(), 2);
    assert!(
        st.heartbeats
            .iter()
            .all(|h| h.received > 10 && h.last_heard_ms.unwrap() <= 500)
    );
    let partner = st.partner.as_ref().unwrap();
    assert_eq!(partner.state, State::Active);
    assert_eq!(partner.version.to_string(), "9.0.5.8");
    assert!(partner.compatible && partner.config_matches);
    assert!([pair_addrs(0).0, pair_addrs(1).0].contains(&partner.address.unwrap()));
    assert_eq!(partner.contact, Contact::Ok);
    assert_eq!(st.transitions.len(), 2, "{:?}", st.transitions);
    assert_eq!(st.transitions[0].to, State::Standby);
    assert_eq!(st.transitions[0].reason, "partner is Active");
    assert_eq!(st.transitions[1].to, State::Listen);
    assert!(st.transitions[0].age_ms >= 1000);
    assert_eq!(st.dropped, crate::ha::DropCounters::default());
}

#[test]
fn history_keeps_last_16() {
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    for i in 0..20 {
        let n = if i % 2 == 0 { B } else { A };
        p.takeover(n).unwrap();
        p.run_for(secs(3.0));
    }
    let st = p.nodes[A].m().status(p.now);
    assert_eq!(st.transitions.len(), 16);
    assert!(
        st.transitions
            .windows(2)
            .all(|w| w[0].age_ms <= w[1].age_ms)
    );
}

#[test]
fn maintenance_hands_over_and_does_not_take_back() {
    let mut p = HaPair::started(&PairOptions::default(), secs(10.0));
    assert_steady(&p, A);
    let t = p.now;
    p.set_maintenance(A, true);
    p.run_for(secs(0.1));
    assert_eq!(p.single_active(), Some(B), "handed over at once");
    never_dual_since(&p, t);
    p.run_for(secs(30.0));
    assert_steady(&p, B);
    assert!(p.nodes[A].m().status(p.now).maintenance);
    assert_eq!(
        p.nodes[A].m().status(p.now).transitions[0].reason,
        "maintenance: handing Active over to the partner"
    );
    // Maintenance off: the auto primary takes Active back (after the failback hold).
    p.set_maintenance(A, false);
    p.run_for(secs(10.0));
    assert_steady(&p, A);
    // A node in maintenance still takes over from a lost partner.
    p.set_maintenance(B, true);
    p.kill(A);
    p.run_for(secs(5.0));
    assert_eq!(p.state(B), State::Active);
}

#[test]
fn runtime_configuration_changes() {
    let o = PairOptions::default();
    let mut p = HaPair::started(&o, secs(10.0));
    let received = p.nodes[B].m().status(p.now).heartbeats[0].received;
    // Add a second heartbeat pair on both nodes, a reach target, a longer hatimeout.
    let o2 = PairOptions {
        pairs: 2,
        reach: 1,
        hatimeout: secs(3.0),
        ..o.clone()
    };
    p.links.push([Link::default(), Link::default()]);
    let t = p.now;
    for n in [A, B] {
        p.reconfigure(n, settings_for(&o2, n));
        p.set_reach(n, 0, true);
    }
    p.run_for(secs(10.0));
    assert_steady(&p, A);
    assert_eq!(p.nodes[A].transitions_since(t), 0);
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.heartbeats.len(), 2);
    assert!(
        st.heartbeats[0].received > received,
        "stats of a kept pair survive"
    );
    assert!(st.heartbeats[1].received > 5);
    assert_eq!(st.hatimeout_ms, 3000);
    assert_eq!(st.interval_ms, 750);
    assert_eq!((st.reach_count, st.reach_total), (1, 1));
    // The same settings again change nothing.
    let before = p.nodes[B].log.len();
    p.reconfigure(B, settings_for(&o2, B));
    assert_eq!(p.nodes[B].log.len(), before);
    // Different recovery on the two nodes is reported.
    let manual = PairOptions {
        recovery: Recovery::Manual,
        ..o2.clone()
    };
    p.reconfigure(B, settings_for(&manual, B));
    p.run_for(secs(2.0));
    let st = p.nodes[A].m().status(p.now);
    assert!(
        st.warnings
            .iter()
            .any(|w| w.contains("recovery strategies differ")),
        "{:?}",
        st.warnings
    );
}

#[test]
fn settings_from_config() {
    use crate::config::{Config, parse_line};
    let mut cfg = Config::default();
    for line in [
        "executor set hatimeout 3",
        "highavailability heartbeat add 192.0.2.1 192.0.2.2",
        "highavailability reach add 198.51.100.1",
        "highavailability backup add primary manual 20001",
        "manager reach set interval 5",
    ] {
        cfg.apply(&parse_line(line).unwrap().unwrap()).unwrap();
    }
    let s = HaSettings::from_config(&cfg);
    assert_eq!(s.backup.unwrap().port, 20001);
    assert_eq!(s.backup.unwrap().recovery, Recovery::Manual);
    assert_eq!(s.heartbeats, vec![pair_addrs(0)]);
    assert_eq!(s.reach, vec![reach_target(0)]);
    assert_eq!(s.hatimeout(), secs(3.0));
    assert_eq!(s.interval(), secs(0.75));
    assert_eq!(s.takeover_timeout(), secs(6.0));
    assert_eq!(s.reach_hold(), secs(8.0));
    assert!(!s.replication);
    assert!(HaSettings::from_config(&Config::default()).backup.is_none());
}

#[test]
fn poll_timeout_never_returns_a_handled_instant() {
    let mut p = HaPair::started(
        &PairOptions {
            reach: 1,
            ..PairOptions::default()
        },
        secs(10.0),
    );
    for _ in 0..50 {
        p.run_for(secs(0.37));
        for n in [A, B] {
            let t = p.nodes[n].m().poll_timeout().unwrap();
            assert!(t > p.now || p.nodes[n].m().poll_timeout().is_some_and(|x| x >= p.now));
        }
    }
    // Idle and Down have no timers.
    p.stop(A);
    assert!(p.nodes[A].m().poll_timeout().is_none());
}

/// Configuration sync's gate: a standby whose configuration is not the Active's (here it never
/// gets it: the harness applies nothing) is refused a takeover, but takes over a lost partner.
#[test]
fn config_sync_gate_holds_takeover_but_not_a_lost_partner() {
    let o = PairOptions {
        recovery: Recovery::Manual,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, secs(10.0));
    let mut other = sim_config();
    other
        .apply_line("cluster add 192.0.2.101")
        .expect("a valid line");
    let now = p.now;
    let settings = p.nodes[B].settings.clone();
    p.nodes[B].node.configure(now, &other, settings);
    p.run_for(secs(2.0));
    let err = p.takeover(B).unwrap_err();
    assert!(matches!(err, TakeoverError::ConfigBehind(_)), "{err}");
    assert!(err.to_string().contains("configuration"), "{err}");
    p.kill(A);
    p.run_for(secs(10.0));
    assert_eq!(p.state(B), State::Active);
}
