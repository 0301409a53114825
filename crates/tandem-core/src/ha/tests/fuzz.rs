//! The machine never panics, whatever arrives and in whatever order.

use super::harness::{PairOptions, reach_target, settings_for};
use crate::config::{Recovery, Role};
use crate::ha::heartbeat::{Heartbeat, ProductVersion, Request, State, SubState};
use crate::ha::machine::Machine;
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    Advance(u32),
    Timeout,
    Heartbeat(usize, Box<Heartbeat>),
    Reach(usize, bool),
    Start,
    Stop,
    Takeover,
    Sync,
    Maintenance(bool),
    Configure(u8),
    Bad,
}

fn any_state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Idle),
        Just(State::Listen),
        Just(State::Active),
        Just(State::Standby),
        Just(State::Down)
    ]
}

fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::None),
        Just(Request::TakeoverRequest),
        Just(Request::StandbyEntered),
        Just(Request::YieldAck),
        Just(Request::Leaving)
    ]
}

fn any_heartbeat() -> impl Strategy<Value = Heartbeat> {
    (
        (
            0u64..4,
            0u64..40,
            0u64..4,
            0u64..40,
            any::<bool>(),
            any_state(),
            any::<bool>(),
        ),
        (
            any::<bool>(),
            0u16..3,
            0u16..3,
            any_request(),
            any::<bool>(),
            0u16..3,
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (epoch, seq, ack_epoch, ack, primary, state, sync),
                (auto, rc, rt, request, maint, r, ext),
            )| {
                Heartbeat {
                    version: ProductVersion::new(9, r, 5, 8),
                    // Small epochs and seqs so that they collide with the machine's own (epoch 2).
                    epoch: if ext % 7 == 0 { ext } else { epoch },
                    seq,
                    ack_epoch,
                    ack,
                    role: if primary { Role::Primary } else { Role::Backup },
                    state,
                    sub_state: if sync {
                        SubState::Synchronized
                    } else {
                        SubState::NotSynchronized
                    },
                    recovery: if auto {
                        Recovery::Auto
                    } else {
                        Recovery::Manual
                    },
                    reach_count: rc,
                    reach_total: rt,
                    config_digest: ext,
                    request,
                    maintenance: maint,
                    handover: false,
                    hatimeout_ms: 2000,
                    interval_ms: 500,
                    records: Vec::new(),
                }
            },
        )
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..3000).prop_map(Op::Advance),
        3 => Just(Op::Timeout),
        8 => (0usize..3, any_heartbeat()).prop_map(|(p, h)| Op::Heartbeat(p, Box::new(h))),
        1 => (0usize..3, any::<bool>()).prop_map(|(t, ok)| Op::Reach(t, ok)),
        1 => Just(Op::Start),
        1 => Just(Op::Stop),
        1 => Just(Op::Takeover),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(Op::Maintenance),
        1 => any::<u8>().prop_map(Op::Configure),
        1 => Just(Op::Bad),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn machine_never_panics(ops in proptest::collection::vec(any_op(), 1..200)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut last_call = t0;
        let mut m = Machine::new(2, ProductVersion::new(9, 0, 5, 8));
        let base = PairOptions { pairs: 2, reach: 2, ..PairOptions::default() };
        m.configure(now, &settings_for(&base, 0));
        for op in ops {
            match op.clone() {
                Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
                Op::Timeout => {
                    if let Some(t) = m.poll_timeout() {
                        now = now.max(t);
                    }
                    m.handle_timeout(now);
                }
                Op::Heartbeat(pair, hb) => {
                    m.handle_heartbeat(now, pair, &hb);
                }
                Op::Reach(t, ok) => {
                    m.handle_reach(now, reach_target(t), ok);
                }
                Op::Start => m.executor_started(now),
                Op::Stop => m.executor_stopped(now),
                Op::Takeover => {
                    let _ = m.takeover(now);
                }
                Op::Sync => m.sync_complete(now),
                Op::Maintenance(on) => m.set_maintenance(now, on),
                Op::Configure(k) => {
                    let o = PairOptions {
                        pairs: usize::from(k % 3),
                        reach: usize::from(k / 3 % 3),
                        recovery: if k & 0x40 != 0 { Recovery::Manual } else { Recovery::Auto },
                        replication: k & 0x80 != 0,
                        ..base.clone()
                    };
                    let mut s = settings_for(&o, usize::from(k & 0x20 != 0));
                    if k % 11 == 0 {
                        s.backup = None;
                    }
                    m.configure(now, &s);
                }
                Op::Bad => m.record_bad_datagram(crate::ha::DropKind::BadMac),
            }
            if !matches!(op, Op::Advance(_) | Op::Bad) {
                last_call = now;
            }
            while let Some(a) = m.poll_action() {
                if let crate::ha::Action::SendHeartbeat { heartbeat, .. } = a {
                    // What the machine sends always encodes and decodes back.
                    let bytes = crate::ha::encode(&heartbeat, Some(b"k"));
                    prop_assert_eq!(crate::ha::decode(&bytes, Some(b"k")).unwrap(), heartbeat);
                }
            }
            // Timers always move forward: nothing is due at or before the last input (else a
            // shell would spin).
            if let Some(t) = m.poll_timeout() {
                prop_assert!(t > last_call, "timer not after the last input");
            }
            let st = m.status(now);
            prop_assert_eq!(st.state, m.state());
            prop_assert_eq!(m.forwarding(), matches!(m.state(), State::Active | State::Idle));
            prop_assert!(st.transitions.len() <= 16);
        }
    }
}
