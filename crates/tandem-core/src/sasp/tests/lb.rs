//! `LbSession` conversations against a scripted GWM built from the codec.

use crate::config::{SaspGroupTarget, SaspGwm, SaspMode};
use crate::sasp::codec::*;
use crate::sasp::lb::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const UID: &str = "tandem-192.0.2.1";

fn mid(last: u8, port: u16) -> MemberId {
    MemberId::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)),
        port,
        PROTOCOL_TCP,
    )
}

fn groups(spec: &[(&str, &[MemberId])]) -> Groups {
    spec.iter()
        .map(|(g, m)| (g.to_string(), m.iter().copied().collect::<BTreeSet<_>>()))
        .collect()
}

fn two() -> Groups {
    groups(&[("192.0.2.100@80", &[mid(1, 80), mid(2, 80)])])
}

fn settings(mode: SaspMode, changed_only: bool, interval: Option<f64>) -> LbSettings {
    LbSettings::new(
        UID,
        &SaspGwm {
            mode,
            changed_only,
            interval,
            ..SaspGwm::default()
        },
    )
}

/// The GWM's end of the conversation, scripted by the test.
struct Gwm {
    framer: Framer,
}

impl Gwm {
    fn new() -> Gwm {
        Gwm {
            framer: Framer::new(),
        }
    }

    /// Everything the session wrote, decoded.
    fn read(&mut self, s: &mut LbSession) -> Vec<Message> {
        while let Some(b) = s.poll_transmit() {
            self.framer.push(&b);
        }
        let mut out = Vec::new();
        while let Some(m) = self
            .framer
            .next_message()
            .expect("the LB writes valid SASP")
        {
            assert_eq!(m.version, VERSION);
            out.push(m);
        }
        out
    }

    fn send(&self, s: &mut LbSession, now: Instant, m: Message) {
        s.handle_bytes(now, &m.to_bytes().unwrap());
    }

    /// Answers every request in `msgs` with `code` (Get Weights: `interval`, weights `w`).
    fn answer(
        &self,
        s: &mut LbSession,
        now: Instant,
        msgs: &[Message],
        interval: u16,
        w: &[(MemberId, u8, u16)],
    ) {
        for m in msgs {
            let code = ReturnCode::SUCCESS;
            let body = match &m.body {
                Body::SetLbStateRequest { .. } => Body::SetLbStateReply { code },
                Body::RegistrationRequest { .. } => Body::RegistrationReply { code },
                Body::DeregistrationRequest { .. } => Body::DeregistrationReply { code },
                Body::SetMemberStateRequest { .. } => Body::SetMemberStateReply { code },
                Body::GetWeightsRequest { groups } => Body::GetWeightsReply {
                    code,
                    interval,
                    groups: groups.iter().map(|g| weights(&g.name, w)).collect(),
                },
                other => panic!("the LB sent {other:?}"),
            };
            self.send(s, now, Message::new(m.id, body));
        }
    }
}

fn weights(group: &str, w: &[(MemberId, u8, u16)]) -> GroupWeights {
    GroupWeights {
        group: Group::new(UID, group),
        entries: w
            .iter()
            .map(|(m, flags, weight)| {
                (
                    m.to_member(),
                    WeightEntry {
                        state: 0,
                        flags: *flags,
                        weight: *weight,
                    },
                )
            })
            .collect(),
    }
}

fn events(s: &mut LbSession) -> Vec<LbEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn weights_of(ev: &[LbEvent]) -> Vec<BTreeMap<MemberId, u16>> {
    ev.iter()
        .filter_map(|e| match e {
            LbEvent::Weights { entries, .. } => {
                Some(entries.iter().map(|(m, w)| (*m, w.weight)).collect())
            }
            _ => None,
        })
        .collect()
}

fn closed_reason(ev: &[LbEvent]) -> Option<String> {
    ev.iter().find_map(|e| match e {
        LbEvent::Closed { reason } => Some(reason.clone()),
        _ => None,
    })
}

const OK: u8 = WEIGHT_CONTACT | WEIGHT_REGISTRATION | WEIGHT_CONFIDENT;

/// Connects and completes registration; returns the session at Connected.
fn connected(set: LbSettings, g: Groups, t0: Instant, interval: u16) -> (LbSession, Gwm) {
    let mut s = LbSession::new(set, g).unwrap();
    let mut gwm = Gwm::new();
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    gwm.answer(
        &mut s,
        t0,
        &sent,
        interval,
        &[(mid(1, 80), OK, 100), (mid(2, 80), OK, 50)],
    );
    let ev = events(&mut s);
    assert!(ev.contains(&LbEvent::Registered), "{ev:?}");
    assert_eq!(s.state(), SessionState::Connected);
    (s, gwm)
}

#[test]
fn push_conversation() {
    let t0 = Instant::now();
    let mut s = LbSession::new(settings(SaspMode::Push, false, None), two()).unwrap();
    let mut gwm = Gwm::new();
    assert_eq!(s.poll_timeout(), None, "idle until connected");
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    let kinds: Vec<u16> = sent.iter().map(|m| m.body.message_type()).collect();
    assert_eq!(
        kinds,
        [0x1050, 0x1010, 0x1030],
        "Set LB State, Registration, Get Weights"
    );
    assert_eq!(
        sent[0].body,
        Body::SetLbStateRequest {
            lb_uid: UID.into(),
            health: 0x7f,
            flags: LB_FLAG_PUSH
        }
    );
    let Body::RegistrationRequest { flags, groups } = &sent[1].body else {
        unreachable!()
    };
    assert_eq!(*flags, FLAG_LB);
    assert_eq!(groups[0].group, Group::new(UID, "192.0.2.100@80"));
    assert_eq!(
        groups[0].members,
        [mid(1, 80).to_member(), mid(2, 80).to_member()]
    );
    let ids: Vec<u32> = sent.iter().map(|m| m.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "increasing IDs {ids:?}"
    );

    gwm.answer(
        &mut s,
        t0,
        &sent,
        4,
        &[(mid(1, 80), OK, 100), (mid(2, 80), OK, 50)],
    );
    let ev = events(&mut s);
    assert_eq!(ev[0], LbEvent::Registered);
    assert_eq!(
        weights_of(&ev),
        [BTreeMap::from([(mid(1, 80), 100), (mid(2, 80), 50)])]
    );
    assert_eq!(s.interval(), Duration::from_secs(4), "the GWM's suggestion");

    // A push: merged into the table.
    let t1 = t0 + Duration::from_secs(2);
    let push = Body::SendWeights {
        groups: vec![weights("192.0.2.100@80", &[(mid(2, 80), OK, 7)])],
    };
    gwm.send(&mut s, t1, Message::new(0, push));
    let ev = events(&mut s);
    assert_eq!(
        weights_of(&ev),
        [BTreeMap::from([(mid(1, 80), 100), (mid(2, 80), 7)])]
    );
    // Pushes keep the session quiet; no push for one interval → a liveness Get Weights.
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(4)));
    s.handle_timeout(t1 + Duration::from_secs(3));
    assert!(gwm.read(&mut s).is_empty());
    s.handle_timeout(t1 + Duration::from_secs(4));
    let sent = gwm.read(&mut s);
    assert!(matches!(
        sent[..],
        [Message {
            body: Body::GetWeightsRequest { .. },
            ..
        }]
    ));
    gwm.answer(
        &mut s,
        t1 + Duration::from_secs(4),
        &sent,
        4,
        &[(mid(1, 80), OK, 9)],
    );
    let ev = events(&mut s);
    assert_eq!(
        weights_of(&ev),
        [BTreeMap::from([(mid(1, 80), 9), (mid(2, 80), 7)])]
    );
    assert_eq!(s.state(), SessionState::Connected);
    assert_eq!(s.counters().weights_messages, 3);
}

#[test]
fn pull_polls_at_the_gwm_interval_or_the_override() {
    let t0 = Instant::now();
    let (mut s, mut gwm) = connected(settings(SaspMode::Pull, false, None), two(), t0, 5);
    assert_eq!(s.settings().mode, SaspMode::Pull,);
    for round in 1..=3u64 {
        let due = t0 + Duration::from_secs(5 * round);
        assert_eq!(s.poll_timeout(), Some(due));
        s.handle_timeout(due - Duration::from_millis(1));
        assert!(gwm.read(&mut s).is_empty(), "not before the interval");
        s.handle_timeout(due);
        let sent = gwm.read(&mut s);
        assert!(matches!(
            sent[..],
            [Message {
                body: Body::GetWeightsRequest { .. },
                ..
            }]
        ));
        gwm.answer(&mut s, due, &sent, 5, &[(mid(1, 80), OK, round as u16)]);
        assert_eq!(weights_of(&events(&mut s))[0][&mid(1, 80)], round as u16);
    }
    // Pull mode flags: neither PUSH nor NOCHANGE.
    let mut s2 = LbSession::new(settings(SaspMode::Pull, false, Some(1.5)), two()).unwrap();
    s2.handle_connected(t0);
    let sent = gwm.read(&mut s2);
    assert!(matches!(
        sent[0].body,
        Body::SetLbStateRequest { flags: 0, .. }
    ));
    gwm.answer(&mut s2, t0, &sent, 60, &[]);
    assert_eq!(
        s2.interval(),
        Duration::from_millis(1500),
        "the override wins"
    );
    assert_eq!(s2.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
}

#[test]
fn changed_only_sets_nochange_and_merges_deltas() {
    let t0 = Instant::now();
    let mut s = LbSession::new(settings(SaspMode::Push, true, None), two()).unwrap();
    let mut gwm = Gwm::new();
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    assert!(matches!(
        sent[0].body,
        Body::SetLbStateRequest { flags, .. } if flags == LB_FLAG_PUSH | LB_FLAG_NOCHANGE
    ));
    gwm.answer(
        &mut s,
        t0,
        &sent,
        10,
        &[(mid(1, 80), OK, 10), (mid(2, 80), OK, 20)],
    );
    events(&mut s);
    // An empty push and a one-member push: absent members keep their weight.
    for push in [vec![], vec![(mid(1, 80), OK | WEIGHT_QUIESCE, 0)]] {
        let b = Body::SendWeights {
            groups: vec![weights("192.0.2.100@80", &push)],
        };
        gwm.send(&mut s, t0, Message::new(0, b));
    }
    let table = &s.weights()["192.0.2.100@80"];
    assert_eq!(table[&mid(2, 80)].weight, 20);
    assert!(table[&mid(1, 80)].quiesce());
    assert_eq!(effective_weight(&table[&mid(1, 80)], 20), 0);
    assert_eq!(
        effective_weight(&table[&mid(2, 80)], 20),
        0,
        "20/65535 of 20 rounds to 0"
    );
}

#[test]
fn quiesce_sends_set_member_state_with_the_flag() {
    let t0 = Instant::now();
    let g = groups(&[
        ("c@80", &[mid(1, 80), mid(2, 80)]),
        ("c", &[mid(2, 80), mid(3, 443)]),
    ]);
    let mut s = LbSession::new(settings(SaspMode::Push, false, None), g).unwrap();
    let mut gwm = Gwm::new();
    // Quiesced before the connection: sent right after the registrations.
    s.set_quiesce(t0, mid(3, 443), true);
    assert!(s.poll_transmit().is_none());
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    let kinds: Vec<u16> = sent.iter().map(|m| m.body.message_type()).collect();
    assert_eq!(kinds, [0x1050, 0x1010, 0x1010, 0x1060, 0x1030]);
    gwm.answer(&mut s, t0, &sent, 10, &[]);
    events(&mut s);
    // Member 2 is in both groups: one Set Member State covering both.
    s.set_quiesce(t0, mid(2, 80), true);
    s.set_quiesce(t0, mid(2, 80), true); // no change, nothing sent
    let sent = gwm.read(&mut s);
    assert_eq!(sent.len(), 1);
    let Body::SetMemberStateRequest { flags, groups } = &sent[0].body else {
        unreachable!()
    };
    assert_eq!(*flags, FLAG_LB);
    let names: Vec<&str> = groups.iter().map(|g| g.group.name.as_str()).collect();
    assert_eq!(names, ["c", "c@80"]);
    for g in groups {
        assert_eq!(
            g.entries,
            [(
                mid(2, 80).to_member(),
                MemberState {
                    state: 0,
                    flags: STATE_QUIESCE
                }
            )]
        );
    }
    gwm.answer(&mut s, t0, &sent, 10, &[]);
    s.set_quiesce(t0, mid(2, 80), false);
    let sent = gwm.read(&mut s);
    let Body::SetMemberStateRequest { groups, .. } = &sent[0].body else {
        unreachable!()
    };
    assert_eq!(groups[0].entries[0].1.flags, 0, "un-quiesce");
    assert_eq!(s.quiesced(), &BTreeSet::from([mid(3, 443)]));
}

#[test]
fn set_groups_registers_and_deregisters_the_difference() {
    let t0 = Instant::now();
    let g = groups(&[("a", &[mid(1, 80), mid(2, 80)]), ("b", &[mid(5, 80)])]);
    let (mut s, mut gwm) = connected(settings(SaspMode::Push, false, None), g, t0, 10);
    let push = Body::SendWeights {
        groups: vec![weights("a", &[(mid(1, 80), OK, 1), (mid(2, 80), OK, 2)])],
    };
    gwm.send(&mut s, t0, Message::new(0, push));
    events(&mut s);
    // a loses member 2 and gains 3; b goes; c is new.
    let g2 = groups(&[("a", &[mid(1, 80), mid(3, 80)]), ("c", &[mid(7, 80)])]);
    s.set_groups(t0, g2).unwrap();
    let ev = events(&mut s);
    assert_eq!(
        weights_of(&ev),
        [BTreeMap::from([(mid(1, 80), 1)])],
        "member 2's weight dropped"
    );
    let sent = gwm.read(&mut s);
    let summary: Vec<(u16, String, u8, Vec<MemberId>)> = sent
        .iter()
        .flat_map(|m| match &m.body {
            Body::DeregistrationRequest { reason, groups, .. } => groups
                .iter()
                .map(|g| {
                    (
                        0x1020,
                        g.group.name.clone(),
                        *reason,
                        g.members.iter().map(MemberId::of).collect(),
                    )
                })
                .collect::<Vec<_>>(),
            Body::RegistrationRequest { groups, .. } => groups
                .iter()
                .map(|g| {
                    (
                        0x1010,
                        g.group.name.clone(),
                        0,
                        g.members.iter().map(MemberId::of).collect(),
                    )
                })
                .collect(),
            Body::GetWeightsRequest { groups } => {
                vec![(
                    0x1030,
                    groups
                        .iter()
                        .map(|g| g.name.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                    0,
                    vec![],
                )]
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0x1020, "a".into(), REASON_LEARNED, vec![mid(2, 80)]),
            (0x1020, "b".into(), REASON_LEARNED, vec![]),
            (0x1010, "a".into(), 0, vec![mid(3, 80)]),
            (0x1010, "c".into(), 0, vec![mid(7, 80)]),
            (0x1030, "a,c".into(), 0, vec![]),
        ]
    );
    gwm.answer(&mut s, t0, &sent, 10, &[]);
    assert!(closed_reason(&events(&mut s)).is_none());
    assert_eq!(
        s.set_groups(t0, groups(&[("", &[])])),
        Err(SettingsError::GroupName(String::new()))
    );
}

#[test]
fn shutdown_deregisters_everything_and_closes() {
    let t0 = Instant::now();
    let g = groups(&[("a", &[mid(1, 80)]), ("b", &[mid(5, 80)])]);
    let (mut s, mut gwm) = connected(settings(SaspMode::Pull, false, None), g, t0, 10);
    s.handle_timeout(t0 + Duration::from_secs(10)); // a Get Weights in flight
    let poll = gwm.read(&mut s);
    s.shutdown(t0 + Duration::from_secs(10));
    assert_eq!(s.state(), SessionState::ShuttingDown);
    let sent = gwm.read(&mut s);
    let Body::DeregistrationRequest {
        flags,
        reason,
        groups,
    } = &sent[0].body
    else {
        unreachable!()
    };
    assert_eq!((*flags, *reason), (FLAG_LB, REASON_NONE));
    let names: Vec<(&str, usize)> = groups
        .iter()
        .map(|g| (g.group.name.as_str(), g.members.len()))
        .collect();
    assert_eq!(names, [("a", 0), ("b", 0)], "whole groups");
    // The older reply arrives first and is ignored; then the DeRegistration's.
    gwm.answer(&mut s, t0, &poll, 10, &[]);
    assert!(events(&mut s).is_empty());
    gwm.answer(&mut s, t0, &sent, 10, &[]);
    assert_eq!(closed_reason(&events(&mut s)).as_deref(), Some("shut down"));
    assert_eq!(s.state(), SessionState::Closed);
    // Shutting down a session that never connected closes it at once.
    let mut idle = LbSession::new(settings(SaspMode::Push, false, None), two()).unwrap();
    idle.shutdown(t0);
    assert!(idle.poll_transmit().is_none());
    assert_eq!(
        closed_reason(&events(&mut idle)).as_deref(),
        Some("shut down")
    );
}

/// A session at Registering with its first messages read.
fn fresh() -> (LbSession, Gwm, Vec<Message>, Instant) {
    let t0 = Instant::now();
    let mut s = LbSession::new(settings(SaspMode::Push, false, None), two()).unwrap();
    let mut gwm = Gwm::new();
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    (s, gwm, sent, t0)
}

#[test]
fn return_codes() {
    // 0x40 "already registered" after a reconnect counts as success.
    let (mut s, gwm, sent, t0) = fresh();
    let code = ReturnCode::ALREADY_REGISTERED;
    gwm.send(
        &mut s,
        t0,
        Message::new(
            sent[0].id,
            Body::SetLbStateReply {
                code: ReturnCode::SUCCESS,
            },
        ),
    );
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[1].id, Body::RegistrationReply { code }),
    );
    assert_eq!(events(&mut s), [LbEvent::Registered]);
    // An error on Get Weights: reported, the session goes on.
    let code = ReturnCode::UNKNOWN_GROUP;
    let body = Body::GetWeightsReply {
        code,
        interval: 0,
        groups: vec![],
    };
    gwm.send(&mut s, t0, Message::new(sent[2].id, body));
    assert_eq!(
        events(&mut s),
        [LbEvent::Error {
            request: "Get Weights",
            code
        }]
    );
    assert_eq!(s.state(), SessionState::Connected);
    assert_eq!(s.counters().error_replies, 1);

    // 0x10 (version) on Set LB State: the GWM does not speak version 1.
    let (mut s, gwm, sent, t0) = fresh();
    let mut reply = Message::new(
        sent[0].id,
        Body::SetLbStateReply {
            code: ReturnCode::NOT_UNDERSTOOD,
        },
    );
    reply.version = 2;
    gwm.send(&mut s, t0, reply);
    let reason = closed_reason(&events(&mut s)).unwrap();
    assert!(reason.contains("version 2"), "{reason}");
    // Any other refusal of Set LB State is fatal too.
    let (mut s, gwm, sent, t0) = fresh();
    let code = ReturnCode::INVALID_LB_UID_SIZE;
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[0].id, Body::SetLbStateReply { code }),
    );
    assert!(
        closed_reason(&events(&mut s))
            .unwrap()
            .contains("Set LB State refused")
    );
    // A registration refused: reported, the session still becomes Connected.
    let (mut s, gwm, sent, t0) = fresh();
    gwm.send(
        &mut s,
        t0,
        Message::new(
            sent[0].id,
            Body::SetLbStateReply {
                code: ReturnCode::SUCCESS,
            },
        ),
    );
    let code = ReturnCode::DUPLICATE_MEMBER;
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[1].id, Body::RegistrationReply { code }),
    );
    assert_eq!(
        events(&mut s),
        [
            LbEvent::Error {
                request: "Registration",
                code
            },
            LbEvent::Registered
        ]
    );
}

#[test]
fn bad_input_closes_with_a_reason() {
    type Case = (&'static str, fn(&[Message]) -> Vec<u8>);
    let cases: [Case; 6] = [
        ("unknown message ID", |_| {
            Message::new(
                999,
                Body::SetLbStateReply {
                    code: ReturnCode::SUCCESS,
                },
            )
            .to_bytes()
            .unwrap()
        }),
        ("answers a Set LB State request", |sent| {
            Message::new(
                sent[0].id,
                Body::RegistrationReply {
                    code: ReturnCode::SUCCESS,
                },
            )
            .to_bytes()
            .unwrap()
        }),
        ("the GWM sent a request", |_| {
            Message::new(5, Body::GetWeightsRequest { groups: vec![] })
                .to_bytes()
                .unwrap()
        }),
        ("unknown message type 0x1070", |_| {
            vec![
                0x20, 0x10, 0, 13, 1, 0, 0, 0, 18, 0, 0, 0, 1, 0x10, 0x70, 0, 5, 0,
            ]
        }),
        ("exceeds the limit", |_| {
            let mut b = vec![0x20, 0x10, 0, 13, 1, 0, 0, 0, 0, 0, 0, 0, 1];
            b[5..9].copy_from_slice(&(MAX_MESSAGE_LEN as u32 + 1).to_be_bytes());
            b
        }),
        ("header type 0x4854", |_| {
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()
        }),
    ];
    for (want, bytes) in cases {
        let (mut s, _gwm, sent, t0) = fresh();
        s.handle_bytes(t0, &bytes(&sent));
        let reason = closed_reason(&events(&mut s)).unwrap_or_else(|| panic!("{want}: not closed"));
        assert!(reason.contains(want), "{want}: {reason}");
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(s.poll_timeout(), None);
        // Nothing more happens after the close.
        s.handle_bytes(t0, &bytes(&sent));
        assert!(events(&mut s).is_empty());
    }
    // A close from the connection is passed on.
    let (mut s, ..) = fresh();
    s.handle_close("connection reset by peer");
    assert_eq!(
        closed_reason(&events(&mut s)).as_deref(),
        Some("connection reset by peer")
    );
}

#[test]
fn entries_of_unregistered_members_are_ignored() {
    let t0 = Instant::now();
    let (mut s, gwm) = connected(settings(SaspMode::Push, false, None), two(), t0, 10);
    let mut other_lb = weights("192.0.2.100@80", &[(mid(1, 80), OK, 1)]);
    other_lb.group.lb_uid = "someone-else".into();
    let push = Body::SendWeights {
        groups: vec![
            weights(
                "192.0.2.100@80",
                &[(mid(9, 80), OK, 1), (mid(1, 81), OK, 1)],
            ),
            weights("no-such-group", &[(mid(1, 80), OK, 1)]),
            other_lb,
        ],
    };
    gwm.send(&mut s, t0, Message::new(0, push));
    assert_eq!(s.counters().ignored_entries, 4);
    assert_eq!(s.weights()["192.0.2.100@80"][&mid(1, 80)].weight, 100);
}

#[test]
fn silent_gwm_is_detected() {
    // No reply to Set LB State within the reply timeout.
    let (mut s, _gwm, _sent, t0) = fresh();
    let deadline = t0 + DEFAULT_REPLY_TIMEOUT;
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(s.state(), SessionState::Registering);
    s.handle_timeout(deadline);
    let reason = closed_reason(&events(&mut s)).unwrap();
    assert!(
        reason.starts_with("silent GWM: no reply to Set LB State"),
        "{reason}"
    );

    // Push, interval 1 s, reply timeout 10 s: the liveness poll goes unanswered and after
    // 3 × interval without anything from the GWM the session closes.
    let t0 = Instant::now();
    let (mut s, mut gwm) = connected(settings(SaspMode::Push, false, Some(1.0)), two(), t0, 60);
    s.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(gwm.read(&mut s).len(), 1, "liveness Get Weights");
    s.handle_timeout(t0 + Duration::from_millis(2999));
    assert_eq!(s.state(), SessionState::Connected);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    s.handle_timeout(t0 + Duration::from_secs(3));
    let reason = closed_reason(&events(&mut s)).unwrap();
    assert!(
        reason.starts_with("silent GWM: nothing received"),
        "{reason}"
    );
}

#[test]
fn settings_are_checked() {
    let bad = LbSettings::new(&"x".repeat(65), &SaspGwm::default());
    assert!(matches!(
        LbSession::new(bad, two()),
        Err(SettingsError::LbUid(_))
    ));
    let bad = LbSettings::new("", &SaspGwm::default());
    assert!(matches!(
        LbSession::new(bad, two()),
        Err(SettingsError::LbUid(_))
    ));
    let long = groups(&[(&"g".repeat(256), &[])]);
    assert!(matches!(
        LbSession::new(settings(SaspMode::Push, false, None), long),
        Err(SettingsError::GroupName(_))
    ));
    let weird = SaspGwm {
        interval: Some(f64::NAN),
        ..SaspGwm::default()
    };
    assert_eq!(LbSettings::new(UID, &weird).interval, None);
}

#[test]
fn big_groups_are_registered_in_chunks() {
    let t0 = Instant::now();
    let members: BTreeSet<MemberId> = (0..20_000u32)
        .map(|i| {
            MemberId::new(
                IpAddr::V4(Ipv4Addr::from(0xC633_0000 + i)),
                80,
                PROTOCOL_TCP,
            )
        })
        .collect();
    let g = Groups::from([("big".to_string(), members)]);
    let mut s = LbSession::new(settings(SaspMode::Push, false, None), g).unwrap();
    let mut gwm = Gwm::new();
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    let regs: Vec<usize> = sent
        .iter()
        .filter_map(|m| match &m.body {
            Body::RegistrationRequest { groups, .. } => Some(groups[0].members.len()),
            _ => None,
        })
        .collect();
    assert_eq!(regs, [8_000, 8_000, 4_000]);
    gwm.answer(&mut s, t0, &sent[..3], 10, &[]);
    assert!(
        events(&mut s).is_empty(),
        "one Registration still unanswered"
    );
    gwm.answer(&mut s, t0, &sent[3..], 10, &[]);
    assert_eq!(events(&mut s)[0], LbEvent::Registered);
}

#[test]
fn backoff_grows_from_1_to_30_seconds_with_jitter() {
    let mut b = Backoff::new(7);
    let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
    let bases = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
    for (got, base) in d.iter().zip(bases) {
        assert!(
            *got >= (base * 0.75f64).max(1.0) && *got <= (base * 1.25f64).min(30.0),
            "{d:?}"
        );
    }
    assert_eq!(
        Backoff::new(7).next_delay(),
        Backoff::new(7).next_delay(),
        "seeded"
    );
    let spread: BTreeSet<u128> = (0..20)
        .map(|s| Backoff::new(s).next_delay().as_millis())
        .collect();
    assert!(
        spread.len() > 10,
        "jitter differs between seeds: {spread:?}"
    );
    b.reset();
    assert!(b.next_delay() <= Duration::from_millis(1250));
}

#[test]
fn weight_conversion_and_names() {
    assert_eq!(convert_weight(65_535, 20), 20);
    assert_eq!(convert_weight(0, 20), 0);
    assert_eq!(convert_weight(32_768, 20), 10);
    assert_eq!(convert_weight(40, 100), 0);
    assert_eq!(convert_weight(1_000, 100), 2, "1.53 rounds to 2");
    let e = WeightEntry {
        state: 0,
        flags: OK,
        weight: 65_535,
    };
    assert_eq!(effective_weight(&e, 100), 100);
    assert_eq!(
        effective_weight(
            &WeightEntry {
                flags: OK & !WEIGHT_CONTACT,
                ..e
            },
            100
        ),
        0
    );
    assert!(group_confident([&e]));
    assert!(!group_confident([&WeightEntry {
        flags: WEIGHT_CONTACT,
        ..e
    }]));
    let c: IpAddr = "192.0.2.100".parse().unwrap();
    assert_eq!(
        group_name(&SaspGroupTarget {
            cluster: c,
            port: Some(80)
        }),
        "192.0.2.100@80"
    );
    assert_eq!(
        group_name(&SaspGroupTarget {
            cluster: c,
            port: None
        }),
        "192.0.2.100"
    );
    assert_eq!(
        default_lb_uid("2001:db8::1".parse().unwrap()),
        "tandem-2001:db8::1"
    );
    assert_eq!(
        serde_json::to_string(&GwmState::Grace).unwrap(),
        "\"grace\""
    );
    assert!(GwmState::Grace.steers() && !GwmState::Lost.steers());
}

#[test]
fn refused_and_empty_groups_are_left_out_of_get_weights() {
    let t0 = Instant::now();
    let g = groups(&[("a", &[mid(1, 80)]), ("b", &[mid(2, 80)]), ("empty", &[])]);
    let mut s = LbSession::new(settings(SaspMode::Pull, false, None), g).unwrap();
    let mut gwm = Gwm::new();
    s.handle_connected(t0);
    let sent = gwm.read(&mut s);
    let kinds: Vec<u16> = sent.iter().map(|m| m.body.message_type()).collect();
    assert_eq!(
        kinds,
        [0x1050, 0x1010, 0x1010, 0x1030],
        "no Registration of an empty group"
    );
    let code = ReturnCode::SUCCESS;
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[0].id, Body::SetLbStateReply { code }),
    );
    let invalid = ReturnCode::INVALID_GROUP;
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[1].id, Body::RegistrationReply { code: invalid }),
    );
    gwm.send(
        &mut s,
        t0,
        Message::new(sent[2].id, Body::RegistrationReply { code }),
    );
    let reply = Body::GetWeightsReply {
        code,
        interval: 5,
        groups: vec![],
    };
    gwm.send(&mut s, t0, Message::new(sent[3].id, reply));
    assert_eq!(
        events(&mut s),
        [
            LbEvent::Error {
                request: "Registration",
                code: invalid
            },
            LbEvent::Registered
        ]
    );
    s.handle_timeout(t0 + Duration::from_secs(5));
    let sent = gwm.read(&mut s);
    let Body::GetWeightsRequest { groups } = &sent[0].body else {
        panic!("{sent:?}")
    };
    assert_eq!(
        groups,
        &[Group::new(UID, "b")],
        "refused a and empty left out"
    );
}

#[test]
fn member_report_shape() {
    let e = WeightEntry {
        state: 0,
        flags: OK | WEIGHT_QUIESCE,
        weight: 65_535,
    };
    let r = MemberReport::new(&mid(1, 80), &e, 20);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"address": "198.51.100.1", "port": 80, "protocol": "tcp", "weight": 0,
            "raw_weight": 65535, "contact": true, "quiesce": true, "registration": true,
            "confident": true})
    );
    let e = WeightEntry { flags: OK, ..e };
    assert_eq!(MemberReport::new(&mid(1, 80), &e, 20).weight, 20);
}
