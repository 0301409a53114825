//! GWM conversations with hand-built messages: the golden vectors of sasp-notes §3 byte for
//! byte, and the rules of §2.13.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sasp::codec::{
    Body, FLAG_LB, Group, GroupMemberStates, GroupMembers, Member, MemberState, Message,
    STATE_QUIESCE,
};

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(s: &str, port: u16) -> MemberKey {
    MemberKey {
        address: ip(s),
        port,
        protocol: 6,
    }
}

// --- requests, built with the shared codec (RFC 4678 §7) ---

fn enc(id: u32, body: Body) -> Vec<u8> {
    Message::new(id, body).to_bytes().unwrap()
}

fn member(m: MemberKey) -> Member {
    Member::new(m.address, m.port, m.protocol)
}

fn set_lb(id: u32, uid: &str, flags: u8) -> Vec<u8> {
    let lb_uid = uid.to_owned();
    enc(
        id,
        Body::SetLbStateRequest {
            lb_uid,
            health: 0x7f,
            flags,
        },
    )
}

fn lb_flag(lb: bool) -> u8 {
    if lb { FLAG_LB } else { 0 }
}

/// Registration or DeRegistration (reason 1) of one group.
fn members_req(
    id: u32,
    dereg: bool,
    lb: bool,
    uid: &str,
    group: &str,
    ms: &[MemberKey],
) -> Vec<u8> {
    let groups = vec![GroupMembers {
        group: Group::new(uid, group),
        members: ms.iter().map(|&m| member(m)).collect(),
    }];
    let flags = lb_flag(lb);
    if dereg {
        enc(
            id,
            Body::DeregistrationRequest {
                flags,
                reason: 1,
                groups,
            },
        )
    } else {
        enc(id, Body::RegistrationRequest { flags, groups })
    }
}

fn reg(id: u32, uid: &str, group: &str, ms: &[MemberKey]) -> Vec<u8> {
    members_req(id, false, true, uid, group, ms)
}

fn get(id: u32, groups: &[(&str, &str)]) -> Vec<u8> {
    let groups = groups.iter().map(|(u, g)| Group::new(u, g)).collect();
    enc(id, Body::GetWeightsRequest { groups })
}

fn member_state(
    id: u32,
    lb: bool,
    uid: &str,
    group: &str,
    m: MemberKey,
    state: u8,
    quiesce: bool,
) -> Vec<u8> {
    let flags = if quiesce { STATE_QUIESCE } else { 0 };
    let groups = vec![GroupMemberStates {
        group: Group::new(uid, group),
        entries: vec![(member(m), MemberState { state, flags })],
    }];
    enc(
        id,
        Body::SetMemberStateRequest {
            flags: lb_flag(lb),
            groups,
        },
    )
}

// --- reply reader ---

/// (member, state, flags, weight)
type Entry = (MemberKey, u8, u8, u16);

#[derive(Debug, PartialEq)]
struct Weights {
    ty: u16,
    id: u32,
    code: Option<u8>,
    interval: Option<u16>,
    groups: Vec<(String, Vec<Entry>)>,
}

/// A weights message as the codec decodes it (which checks every length).
fn read_weights(bytes: &[u8]) -> Weights {
    let m = Message::decode(bytes).expect("a message the codec decodes");
    assert_eq!(m.version, 1);
    let ty = m.body.message_type();
    let (code, interval, groups) = match m.body {
        Body::GetWeightsReply {
            code,
            interval,
            groups,
        } => (Some(code.0), Some(interval), groups),
        Body::SendWeights { groups } => (None, None, groups),
        other => panic!("not a weights message: {other:?}"),
    };
    let groups = groups
        .into_iter()
        .map(|g| {
            let entries = g
                .entries
                .into_iter()
                .map(|(m, e)| {
                    let k = MemberKey {
                        address: m.address,
                        port: m.port,
                        protocol: m.protocol,
                    };
                    (k, e.state, e.flags, e.weight)
                })
                .collect();
            (g.group.name, entries)
        })
        .collect();
    Weights {
        ty,
        id: m.id,
        code,
        interval,
        groups,
    }
}

struct Harness {
    gwm: Gwm,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        let now = Instant::now();
        Harness {
            gwm: Gwm::new(GwmSettings {
                push_interval: Duration::from_secs(10),
                push_gap: Duration::from_millis(100),
                poll_interval: 7,
                lb_grace: Duration::from_secs(30),
                max_connections: 4,
                max_members: 16,
                max_groups: 3,
                first_message_timeout: Duration::from_secs(30),
            }),
            t0: now,
            now,
        }
    }
    fn conn(&mut self) -> ConnId {
        self.gwm.accept(self.now, "peer".into()).unwrap()
    }
    fn send(&mut self, c: ConnId, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.gwm.handle_bytes(self.now, c, bytes);
        self.out(c)
    }
    fn out(&mut self, c: ConnId) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.gwm.poll_transmit(c)).collect()
    }
    /// Sends one request and returns its only reply.
    fn ask(&mut self, c: ConnId, bytes: &[u8]) -> Vec<u8> {
        let mut out = self.send(c, bytes);
        assert_eq!(out.len(), 1, "one reply");
        out.pop().unwrap()
    }
    /// The return code of the only reply to `bytes` (checking the echoed Message ID).
    fn code(&mut self, c: ConnId, bytes: &[u8]) -> u8 {
        let r = self.ask(c, bytes);
        assert_eq!(&r[9..13], &bytes[9..13], "Message ID echoed");
        r[17]
    }
    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.gwm.handle_timeout(self.now);
    }
    fn health(&mut self, m: MemberKey, contact: bool, load: Option<f64>) {
        let h = MemberHealth {
            contact,
            load,
            confident: true,
            last_error: None,
        };
        self.gwm.set_member_health(self.now, m, h);
    }
}

const V02: &str = "2010000d0100000017000000011050000a034c42317f00";
const V05: &str = "2010000d010000005c00000003101000070100014010000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a01003010001c0600500000000000000000000000000a0a0a020477656232";
const V08: &str = "2010000d0100000021000000041030000600013011000e034c4231054641524d31";
const V09: &str = "2010000d010000001c0000000510300006000130110009034c423100";
const V12: &str = "2010000d010000004600000006106000070100014012000600013011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a0200301300060001";
const V14: &str = "2010000d01000000410000000710200008010100014010000600013011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a0200";
const V15: &str =
    "2010000d01000000290000000810200008010000014010000600003011000e034c4231054641524d31";
const V16: &str = "2010000d010000002400000009102000080100000140100006000030110009034c423100";

#[test]
fn gwm_golden_conversation() {
    let mut h = Harness::new();
    let c = h.conn();
    // Set LB State (pull) → v04 with the request's Message ID.
    assert_eq!(
        h.ask(c, &hex(V02)),
        hex("2010000d0100000012000000011055000500")
    );
    // Registration → v06; the same again → v07 (already registered).
    assert_eq!(
        h.ask(c, &hex(V05)),
        hex("2010000d0100000012000000031015000500")
    );
    assert_eq!(
        h.ask(c, &hex(V05)),
        hex("2010000d0100000012000000031015000540")
    );
    let (m1, m2) = (key("10.10.10.1", 80), key("10.10.10.2", 80));
    // Not probed yet: registered by the LB, nothing else, weight 0.
    let w = read_weights(&h.ask(c, &hex(V08)));
    assert_eq!(
        (w.ty, w.id, w.code, w.interval),
        (0x1035, 4, Some(0), Some(7))
    );
    assert_eq!(
        w.groups,
        vec![("FARM1".into(), vec![(m1, 0, 0x04, 0), (m2, 0, 0x04, 0)])]
    );
    // Probed and in contact, no load source: contact + registered + confident, 65535.
    h.health(m1, true, None);
    h.health(m2, true, None);
    let w = read_weights(&h.ask(c, &hex(V08)));
    assert_eq!(
        w.groups[0].1,
        vec![(m1, 0, 0x0d, 65535), (m2, 0, 0x0d, 65535)]
    );
    // The label "web2" is echoed in the weights (Member Data length 28).
    let raw = h.ask(c, &hex(V08));
    assert!(
        raw.windows(8)
            .any(|w| w == [0x30, 0x10, 0, 0x1c, 6, 0, 0x50, 0])
    );
    assert!(raw.windows(4).any(|w| w == b"web2"));
    // Set Member State QUIESCE for 10.10.10.2 → v13, then flags 0x0F and weight 0.
    assert_eq!(
        h.ask(c, &hex(V12)),
        hex("2010000d0100000012000000061065000500")
    );
    let w = read_weights(&h.ask(c, &hex(V09)));
    assert_eq!(w.id, 5);
    assert_eq!(w.groups[0].1, vec![(m1, 0, 0x0d, 65535), (m2, 0, 0x0f, 0)]);
    // DeRegistration of one member (v14), the whole group (v15), all groups (v16) → v17.
    assert_eq!(h.code(c, &hex(V14)), rc::OK);
    assert_eq!(
        h.gwm.probe_targets().into_iter().collect::<Vec<_>>(),
        vec![m1]
    );
    assert_eq!(h.code(c, &hex(V14)), rc::NOT_REGISTERED);
    assert_eq!(h.code(c, &hex(V15)), rc::OK);
    assert_eq!(h.code(c, &hex(V15)), rc::UNKNOWN_GROUP);
    assert_eq!(
        h.ask(c, &hex(V16)),
        hex("2010000d0100000012000000091025000500")
    );
    assert!(h.gwm.probe_targets().is_empty());
}

#[test]
fn gwm_unknown_lb_uid_and_version_rule() {
    let mut h = Harness::new();
    let c = h.conn();
    // Get Weights for an LB UID never seen → v10 byte for byte.
    assert_eq!(
        h.ask(c, &hex(V09)),
        hex("2010000d010000001600000005103500094300000000")
    );
    // A version-2 Set LB State (v19) → v20: 0x10 with version 1 in the header.
    let v19 = hex("2010000d02000000170000000b1050000a034c42317f01");
    assert_eq!(h.ask(c, &v19), hex("2010000d01000000120000000b1055000510"));
    // Not applied: the LB UID is still unknown.
    assert_eq!(h.code(c, &get(12, &[("LB1", "")])), rc::UNKNOWN_LB_UID);
}

#[test]
fn gwm_ipv6_and_system_members() {
    let mut h = Harness::new();
    let c = h.conn();
    let v18 = hex(
        "2010000d01000000590000000a101000070100014010000600023011000f034c42310656364641524d301000180601bb20010db8000000000000000000000010003010001800000020010db800000000000000000000002000",
    );
    assert_eq!(h.code(c, &v18), rc::OK);
    let targets: Vec<_> = h.gwm.probe_targets().into_iter().collect();
    assert_eq!(
        targets,
        vec![
            key("2001:db8::10", 443),
            MemberKey {
                address: ip("2001:db8::20"),
                port: 0,
                protocol: 0
            },
        ]
    );
}

#[test]
fn gwm_return_codes() {
    let mut h = Harness::new();
    let (lb, other, member) = (h.conn(), h.conn(), h.conn());
    let m = key("192.0.2.21", 80);
    assert_eq!(h.code(lb, &set_lb(1, "", 0)), rc::LB_UID_SIZE);
    assert_eq!(h.code(lb, &set_lb(1, &"x".repeat(65), 0)), rc::LB_UID_SIZE);
    assert_eq!(h.code(lb, &reg(2, "LB1", "", &[m])), rc::GROUP_NAME_SIZE);
    assert_eq!(h.code(lb, &reg(2, "", "G", &[m])), rc::LB_UID_SIZE);
    assert_eq!(
        h.code(lb, &reg(2, "LB1", "G", &[m, m])),
        rc::DUPLICATE_MEMBER
    );
    // A member before its LB contacted the GWM: 0x61.
    assert_eq!(
        h.code(member, &members_req(3, false, false, "LB1", "G", &[m])),
        rc::LB_NOT_CONTACTED
    );
    assert_eq!(h.code(lb, &set_lb(4, "LB1", 0)), rc::OK);
    assert_eq!(h.code(lb, &reg(5, "LB1", "G", &[m])), rc::OK);
    // A connection speaks for one LB UID only.
    assert_eq!(h.code(lb, &set_lb(6, "LB2", 0)), rc::NOT_ACCEPTED);
    assert_eq!(h.code(lb, &reg(6, "LB2", "G", &[m])), rc::NOT_ACCEPTED);
    assert_eq!(h.code(lb, &get(6, &[("LB2", "G")])), rc::NOT_ACCEPTED);
    // Unknown group, duplicate group, unknown member, unknown LB.
    assert_eq!(h.code(lb, &get(7, &[("LB1", "H")])), rc::UNKNOWN_GROUP);
    assert_eq!(
        h.code(lb, &get(7, &[("LB1", "G"), ("LB1", "G")])),
        rc::DUPLICATE_GROUP
    );
    let m2 = key("192.0.2.22", 80);
    assert_eq!(
        h.code(lb, &member_state(8, true, "LB1", "G", m2, 0, true)),
        rc::NOT_REGISTERED
    );
    assert_eq!(
        h.code(lb, &member_state(8, true, "LB1", "H", m, 0, true)),
        rc::UNKNOWN_GROUP
    );
    assert_eq!(
        h.code(lb, &members_req(9, true, true, "LB1", "G", &[m2])),
        rc::NOT_REGISTERED
    );
    assert_eq!(
        h.code(other, &members_req(9, true, true, "LB9", "G", &[m])),
        rc::UNKNOWN_LB_UID
    );
    // A member acting on itself without TRUST: 0x11; with TRUST: accepted, REGISTRATION 0.
    assert_eq!(
        h.code(member, &members_req(10, false, false, "LB1", "G", &[m2])),
        rc::NOT_ACCEPTED
    );
    assert_eq!(h.code(lb, &set_lb(11, "LB1", LB_TRUST)), rc::OK);
    assert_eq!(
        h.code(member, &members_req(12, false, false, "LB1", "G", &[m2])),
        rc::OK
    );
    assert_eq!(
        h.code(member, &member_state(13, false, "LB1", "G", m2, 9, false)),
        rc::OK
    );
    h.health(m, true, None);
    h.health(m2, true, None);
    let w = read_weights(&h.ask(lb, &get(14, &[("LB1", "G")])));
    assert_eq!(
        w.groups[0].1,
        vec![(m, 0, 0x0d, 65535), (m2, 9, 0x09, 65535)]
    );
    // Nothing was applied by refused requests: still one group with two members.
    assert_eq!(h.gwm.status(h.now).lbs.len(), 1);
    // The member limit (16): registration beyond it is refused whole with 0x45.
    let many: Vec<MemberKey> = (1..=15).map(|i| key("198.51.100.1", i)).collect();
    assert_eq!(h.code(lb, &reg(15, "LB1", "G", &many)), rc::INVALID_GROUP);
    assert_eq!(h.code(lb, &reg(15, "LB1", "G", &many[..14])), rc::OK);
    // The group limit (3 per LB), empty groups included.
    assert_eq!(h.code(lb, &reg(16, "LB1", "G2", &[])), rc::OK);
    assert_eq!(h.code(lb, &reg(17, "LB1", "G3", &[])), rc::OK);
    assert_eq!(h.code(lb, &reg(18, "LB1", "G4", &[])), rc::INVALID_GROUP);
}

#[test]
fn gwm_weights_follow_load_contact_and_overrides() {
    let mut h = Harness::new();
    let c = h.conn();
    let ms = [
        key("192.0.2.21", 80),
        key("192.0.2.22", 80),
        key("192.0.2.23", 80),
        key("192.0.2.24", 80),
    ];
    assert_eq!(h.code(c, &set_lb(1, "LB1", 0)), rc::OK);
    assert_eq!(h.code(c, &reg(2, "LB1", "G", &ms)), rc::OK);
    h.health(ms[0], true, Some(0.0));
    h.health(ms[1], true, Some(1.0));
    h.health(ms[2], true, Some(3.0));
    h.health(ms[3], false, None);
    let w = read_weights(&h.ask(c, &get(3, &[("LB1", "G")])));
    let got: Vec<(u8, u16)> = w.groups[0].1.iter().map(|e| (e.2, e.3)).collect();
    assert_eq!(
        got,
        vec![(0x0d, 65535), (0x0d, 32768), (0x0d, 16384), (0x0c, 0)]
    );
    // Weights are relative to the least loaded member.
    h.health(ms[0], true, Some(1.0));
    let w = read_weights(&h.ask(c, &get(4, &[("LB1", "G")])));
    let got: Vec<u16> = w.groups[0].1.iter().map(|e| e.3).collect();
    assert_eq!(got, vec![65535, 65535, 32768, 0]);
    // Overrides: an exact weight, and a quiesce.
    let mut o = BTreeMap::new();
    o.insert(
        (ms[0].address, 80),
        Override {
            weight: Some(1000),
            quiesce: false,
        },
    );
    o.insert(
        (ms[1].address, 80),
        Override {
            weight: None,
            quiesce: true,
        },
    );
    o.insert(
        (ms[3].address, 80),
        Override {
            weight: Some(5),
            quiesce: false,
        },
    );
    h.gwm.set_overrides(h.now, o);
    let w = read_weights(&h.ask(c, &get(5, &[("LB1", "G")])));
    let got: Vec<(u8, u16)> = w.groups[0].1.iter().map(|e| (e.2, e.3)).collect();
    // Out of contact stays 0 whatever the override says.
    assert_eq!(got, vec![(0x0d, 1000), (0x0f, 0), (0x0d, 32768), (0x0c, 0)]);
    assert_eq!(
        load_weight(Some(1e9), Some(0.0)),
        1,
        "a loaded member keeps weight 1"
    );
}

#[test]
fn gwm_push_all_and_changed_only() {
    let mut h = Harness::new();
    let (a, b) = (h.conn(), h.conn());
    let (m1, m2) = (key("192.0.2.21", 80), key("192.0.2.22", 80));
    // a: PUSH, all members. b: PUSH + NOCHANGE.
    assert_eq!(h.code(a, &set_lb(1, "LBA", LB_PUSH)), rc::OK);
    assert_eq!(h.code(b, &set_lb(1, "LBB", LB_PUSH | LB_NOCHANGE)), rc::OK);
    // A registration changes the weights: its reply, then at once a push.
    let out = h.send(a, &reg(2, "LBA", "G", &[m1, m2]));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0][17], rc::OK);
    let w = read_weights(&out[1]);
    assert_eq!((w.ty, w.id), (0x1040, 0));
    assert_eq!(w.groups[0].1.len(), 2);
    let out = h.send(b, &reg(2, "LBB", "G", &[m1, m2]));
    assert_eq!(read_weights(&out[1]).groups[0].1.len(), 2);
    // Nothing changes: nothing before the push interval, then a push each.
    h.advance(9);
    assert!(h.out(a).is_empty() && h.out(b).is_empty());
    h.advance(1);
    let wa = read_weights(&h.out(a)[0]);
    assert_eq!(wa.groups[0].1.len(), 2, "all members");
    let wb = read_weights(&h.out(b)[0]);
    assert_eq!(
        wb.groups,
        vec![("G".into(), vec![])],
        "changed only: none changed"
    );
    // One member changes: an immediate push; NOCHANGE holds that member only.
    h.now += Duration::from_secs(3);
    h.health(m2, true, None);
    let wa = read_weights(&h.out(a)[0]);
    assert_eq!(wa.groups[0].1, vec![(m1, 0, 0x04, 0), (m2, 0, 0x0d, 65535)]);
    let wb = read_weights(&h.out(b)[0]);
    assert_eq!(wb.groups[0].1, vec![(m2, 0, 0x0d, 65535)]);
    // The push timer restarted with that push.
    assert_eq!(h.gwm.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    // NOCHANGE also trims Get Weights replies.
    let w = read_weights(&h.ask(b, &get(3, &[("LBB", "G")])));
    assert_eq!(w.groups, vec![("G".into(), vec![])]);
    // Turning PUSH off stops the pushes.
    assert_eq!(h.code(a, &set_lb(4, "LBA", 0)), rc::OK);
    h.advance(30);
    assert!(h.out(a).is_empty());
    assert_eq!(h.out(b).len(), 1);
    let _ = h.t0;
}

#[test]
fn gwm_changes_in_a_burst_make_one_push() {
    let mut h = Harness::new();
    let c = h.conn();
    let ms: Vec<MemberKey> = (21..25).map(|i| key(&format!("192.0.2.{i}"), 80)).collect();
    assert_eq!(h.code(c, &set_lb(1, "LB1", LB_PUSH | LB_NOCHANGE)), rc::OK);
    assert_eq!(
        h.send(c, &reg(2, "LB1", "G", &ms)).len(),
        2,
        "reply and push"
    );
    // Four probe results within the gap after that push: no push yet ...
    for &m in &ms {
        h.health(m, true, None);
    }
    assert!(h.out(c).is_empty());
    assert_eq!(
        h.gwm.poll_timeout(),
        Some(h.now + Duration::from_millis(100))
    );
    // ... then one push with all four.
    h.now += Duration::from_millis(100);
    h.gwm.handle_timeout(h.now);
    let out = h.out(c);
    assert_eq!(out.len(), 1);
    assert_eq!(read_weights(&out[0]).groups[0].1.len(), 4);
    // The next change, later than the gap, goes at once.
    h.now += Duration::from_secs(1);
    h.health(ms[0], false, None);
    assert_eq!(
        read_weights(&h.out(c)[0]).groups[0].1,
        vec![(ms[0], 0, 0x0c, 0)]
    );
}

#[test]
fn gwm_same_uid_replaces_and_grace_keeps_state() {
    let mut h = Harness::new();
    let old = h.conn();
    let m = key("192.0.2.21", 80);
    assert_eq!(h.code(old, &set_lb(1, "LB1", LB_PUSH)), rc::OK);
    assert_eq!(h.send(old, &reg(2, "LB1", "G", &[m])).len(), 2);
    // A new connection with the same LB UID replaces the old one, which is to be closed.
    // It finds the registrations and gets all weights at once: the reply, then a push.
    let new = h.conn();
    let out = h.send(new, &set_lb(1, "LB1", LB_PUSH));
    assert_eq!(out.len(), 2);
    assert_eq!(read_weights(&out[1]).groups[0].1.len(), 1);
    assert!(h.gwm.poll_close(old).unwrap().contains("replaced"));
    assert_eq!(h.gwm.poll_close(new), None);
    h.gwm.handle_closed(h.now, old);
    // A re-registration is "already registered" (0x40).
    let out = h.send(new, &reg(2, "LB1", "G", &[m]));
    assert_eq!(out[0][17], rc::ALREADY_REGISTERED);
    let st = h.gwm.status(h.now);
    assert!(st.lbs[0].connected);
    assert_eq!(st.connections, 1);
    // Lost: kept for the grace period, then dropped.
    h.gwm.handle_closed(h.now, new);
    h.advance(29);
    assert_eq!(h.gwm.status(h.now).lbs[0].grace_left, Some(1.0));
    let again = h.conn();
    assert_eq!(h.code(again, &get(3, &[("LB1", "G")])), rc::OK);
    h.gwm.handle_closed(h.now, again);
    h.advance(30);
    assert!(h.gwm.status(h.now).lbs.is_empty());
    assert!(std::iter::from_fn(|| h.gwm.poll_event()).any(|e| e
        == GwmEvent::LbExpired {
            lb_uid: "LB1".into()
        }));
    let last = h.conn();
    assert_eq!(h.code(last, &get(4, &[("LB1", "G")])), rc::UNKNOWN_LB_UID);
    assert_eq!(h.code(last, &reg(5, "LB1", "G", &[m])), rc::OK);
}

#[test]
fn gwm_bad_input_closes_the_connection() {
    for (bytes, needle) in [
        (
            hex("2011000d0100000012000000031015000500"),
            "header type 0x2011",
        ),
        (
            hex("2010000d0100000021000000041030000600013011000e204c4231054641524d31"),
            "truncated",
        ),
        (
            hex("2010000d0100000012000000031070000500"),
            "unknown message type",
        ),
        (
            hex("2010000d010000000c000000011050000a034c42317f00"),
            "below the 13-byte header",
        ),
        (
            hex("2010000d0180000017000000011050000a034c42317f00"),
            "below the 13-byte header",
        ),
        (
            hex("2010000d0100200000000000011050000a034c42317f00"),
            "exceeds the limit",
        ),
        (hex("2010000d0100000012000000031015000500"), "not a request"),
        (
            hex("2010000d0100000018000000011050000a034c42317f0000"),
            "after the message",
        ),
    ] {
        let mut h = Harness::new();
        let c = h.conn();
        h.gwm.handle_bytes(h.now, c, &bytes);
        let reason = h
            .gwm
            .poll_close(c)
            .unwrap_or_else(|| panic!("{bytes:02x?} not closed"));
        assert!(reason.contains(needle), "{reason}");
        assert!(h.out(c).is_empty(), "no reply to bad input");
        // Further bytes are ignored.
        h.gwm.handle_bytes(h.now, c, &hex(V02));
        assert!(h.out(c).is_empty());
    }
}

#[test]
fn gwm_framing_byte_by_byte() {
    let mut h = Harness::new();
    let c = h.conn();
    // v02 ‖ v05 ‖ v08, one byte at a time: three replies, in order.
    let all = [hex(V02), hex(V05), hex(V08)].concat();
    let mut replies = Vec::new();
    for b in all {
        replies.extend(h.send(c, &[b]));
    }
    let ids: Vec<u8> = replies.iter().map(|r| r[12]).collect();
    assert_eq!(ids, vec![1, 3, 4]);
    assert_eq!(h.gwm.connections().len(), 1);
    // A connection that never sends a whole message is closed after 30 s; one that spoke
    // stays.
    let mute = h.conn();
    h.gwm.handle_bytes(h.now, mute, &hex(V02)[..5]);
    assert_eq!(h.gwm.poll_timeout(), Some(h.now + Duration::from_secs(30)));
    h.advance(30);
    assert!(h.gwm.poll_close(mute).unwrap().contains("no SASP message"));
    assert_eq!(h.gwm.poll_close(c), None);
    h.gwm.handle_closed(h.now, mute);
    assert!(h.gwm.accept(h.now, "x".into()).is_ok());
    assert!(h.gwm.accept(h.now, "x".into()).is_ok());
    assert!(h.gwm.accept(h.now, "x".into()).is_ok());
    assert_eq!(h.gwm.accept(h.now, "x".into()), Err(TooManyConnections(4)));
}

#[test]
fn gwm_thousands_of_probe_results_stay_cheap() {
    let mut h = Harness::new();
    h.gwm = Gwm::new(GwmSettings {
        max_members: 10_000,
        ..GwmSettings::default()
    });
    let c = h.conn();
    assert_eq!(h.code(c, &set_lb(1, "LB1", LB_PUSH | LB_NOCHANGE)), rc::OK);
    let ms: Vec<MemberKey> = (0..5000u32)
        .map(|i| key(&format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250), 80))
        .collect();
    for (n, chunk) in ms.chunks(1000).enumerate() {
        let out = h.send(c, &reg(2 + n as u32, "LB1", "G", chunk));
        assert_eq!(out[0][17], rc::OK);
    }
    // One probe interval's worth of results, all within the push gap: linear work, one
    // push at the end of the gap with all 5000.
    let start = std::time::Instant::now();
    h.now += Duration::from_secs(1);
    for &m in &ms {
        h.health(m, true, Some(1.0));
    }
    assert!(h.out(c).len() <= 1, "at most one push for the burst");
    h.now += Duration::from_millis(100);
    h.gwm.handle_timeout(h.now);
    let pushed: usize = h
        .out(c)
        .iter()
        .map(|m| read_weights(m).groups[0].1.len())
        .sum();
    let took = start.elapsed();
    assert!(pushed >= 4999, "{pushed} entries pushed");
    assert!(
        took < Duration::from_secs(5),
        "5000 probe results took {took:?}"
    );
}

mod fuzzish {
    use super::*;
    use proptest::prelude::*;

    fn conversation() -> Vec<u8> {
        [V02, V05, V08, V12, V09, V14, V15, V16]
            .iter()
            .flat_map(|v| hex(v))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes, in arbitrary chunks: never a panic, at most one close reason,
        /// nothing queued after it.
        #[test]
        fn gwm_survives_arbitrary_bytes(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut h = Harness::new();
            let c = h.conn();
            for chunk in &chunks {
                h.gwm.handle_bytes(h.now, c, chunk);
                h.advance(1);
            }
            let _ = h.out(c);
            if h.gwm.poll_close(c).is_some() {
                h.gwm.handle_bytes(h.now, c, &hex(V02));
                prop_assert!(h.out(c).is_empty());
            }
        }

        /// A valid conversation with bytes changed or cut: never a panic, and every reply
        /// still decodes with the codec.
        #[test]
        fn gwm_survives_mutated_conversations(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            chunk in 1usize..40,
        ) {
            let mut bytes = conversation();
            for (at, b) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let mut h = Harness::new();
            let c = h.conn();
            h.health(key("10.10.10.1", 80), true, Some(2.0));
            for part in bytes.chunks(chunk) {
                for reply in h.send(c, part) {
                    prop_assert!(Message::decode(&reply).is_ok(), "{reply:02x?}");
                }
            }
        }
    }
}
