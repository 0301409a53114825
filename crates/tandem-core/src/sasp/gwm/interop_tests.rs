//! The two sans-IO sides against each other: the LB's [`LbSession`] and this [`Gwm`], bytes
//! moved by hand, time advanced virtually. Both were written from the same notes by different
//! people; these conversations check that they agree.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::*;
use crate::config::SaspMode;
use crate::sasp::lb::{Groups, LbEvent, LbSession, LbSettings, MemberId, SessionState};

struct Pair {
    gwm: Gwm,
    conn: ConnId,
    lb: LbSession,
    now: Instant,
    events: Vec<LbEvent>,
}

fn mid(s: &str) -> MemberId {
    MemberId::new(s.parse().unwrap(), 80, 6)
}

fn key(m: MemberId) -> MemberKey {
    MemberKey {
        address: m.address,
        port: m.port,
        protocol: m.protocol,
    }
}

fn groups(members: &[&str]) -> Groups {
    BTreeMap::from([(
        "192.0.2.100@80".to_owned(),
        members.iter().map(|m| mid(m)).collect::<BTreeSet<_>>(),
    )])
}

impl Pair {
    fn new(mode: SaspMode, changed_only: bool, members: &[&str]) -> Pair {
        let now = Instant::now();
        let mut gwm = Gwm::new(GwmSettings {
            push_interval: Duration::from_secs(10),
            poll_interval: 7,
            ..GwmSettings::default()
        });
        let conn = gwm.accept(now, "lb".into()).unwrap();
        let settings = LbSettings {
            lb_uid: "tandem-192.0.2.10".into(),
            mode,
            changed_only,
            interval: None,
            reply_timeout: Duration::from_secs(10),
        };
        let lb = LbSession::new(settings, groups(members)).unwrap();
        let mut pair = Pair {
            gwm,
            conn,
            lb,
            now,
            events: Vec::new(),
        };
        pair.lb.handle_connected(now);
        pair.step();
        pair
    }

    /// Moves bytes both ways until both sides are quiet.
    fn step(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(b) = self.lb.poll_transmit() {
                self.gwm.handle_bytes(self.now, self.conn, &b);
                moved = true;
            }
            while let Some(b) = self.gwm.poll_transmit(self.conn) {
                self.lb.handle_bytes(self.now, &b);
                moved = true;
            }
            self.events
                .extend(std::iter::from_fn(|| self.lb.poll_event()));
            if let Some(reason) = self.gwm.poll_close(self.conn) {
                panic!("the GWM closed the connection: {reason}");
            }
            if !moved {
                return;
            }
        }
        panic!("no end to the conversation");
    }

    /// Advances time by `d`, running both sides' timers.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..100_000 {
            let next = [self.gwm.poll_timeout(), self.lb.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.gwm.handle_timeout(self.now);
                    self.lb.handle_timeout(self.now);
                    self.step();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("timers never settle");
    }

    fn health(&mut self, m: &str, contact: bool, load: Option<f64>) {
        let h = MemberHealth {
            contact,
            load,
            confident: true,
            last_error: None,
        };
        self.gwm.set_member_health(self.now, key(mid(m)), h);
        self.step();
    }

    /// The LB's merged view: member → (flags, weight).
    fn lb_view(&self) -> BTreeMap<MemberId, (u8, u16)> {
        self.lb
            .weights()
            .values()
            .flat_map(|g| g.iter().map(|(m, e)| (*m, (e.flags, e.weight))))
            .collect()
    }

    fn closed(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            LbEvent::Closed { reason } => Some(reason.as_str()),
            _ => None,
        })
    }
}

#[test]
fn gwm_interop_push_changed_only_quiesce_and_shutdown() {
    let mut p = Pair::new(SaspMode::Push, true, &["192.0.2.21", "192.0.2.22"]);
    assert!(p.events.contains(&LbEvent::Registered), "{:?}", p.events);
    assert_eq!(p.lb.state(), SessionState::Connected);
    let st = p.gwm.status(p.now);
    assert_eq!(st.lbs[0].lb_uid, "tandem-192.0.2.10");
    assert!(st.lbs[0].push && st.lbs[0].changed_only);
    // Loads 1 and 3: the LB sees what the GWM computed.
    p.health("192.0.2.21", true, Some(1.0));
    p.health("192.0.2.22", true, Some(3.0));
    p.advance(Duration::from_millis(200));
    assert_eq!(
        p.lb_view(),
        BTreeMap::from([
            (mid("192.0.2.21"), (0x0d, 65535)),
            (mid("192.0.2.22"), (0x0d, 32768))
        ])
    );
    // The LB quiesces a member: the GWM reflects it in the weights.
    p.lb.set_quiesce(p.now, mid("192.0.2.22"), true);
    p.step();
    p.advance(Duration::from_millis(200));
    assert_eq!(p.lb_view()[&mid("192.0.2.22")], (0x0f, 0));
    // A minute without change: pushes at least every 10 s keep the LB from calling the GWM
    // silent, and nothing is refused.
    p.advance(Duration::from_secs(60));
    assert_eq!(p.closed(), None);
    assert!(
        !p.events.iter().any(|e| matches!(e, LbEvent::Error { .. })),
        "{:?}",
        p.events
    );
    assert!(p.gwm.status(p.now).lbs[0].pushes >= 6);
    // Shutdown deregisters everything.
    p.lb.shutdown(p.now);
    p.step();
    assert!(p.gwm.probe_targets().is_empty());
}

#[test]
fn gwm_interop_pull_all_members_and_group_changes() {
    let mut p = Pair::new(SaspMode::Pull, false, &["192.0.2.21", "192.0.2.22"]);
    assert!(p.events.contains(&LbEvent::Registered));
    p.health("192.0.2.21", true, None);
    p.health("192.0.2.22", false, None);
    // Pull: the LB polls at the GWM's suggested 7 s; after 15 s it has the weights.
    p.advance(Duration::from_secs(15));
    assert_eq!(
        p.lb_view(),
        BTreeMap::from([
            (mid("192.0.2.21"), (0x0d, 65535)),
            (mid("192.0.2.22"), (0x0c, 0))
        ])
    );
    let requests = p.gwm.status(p.now).lbs[0].requests;
    p.advance(Duration::from_secs(70));
    let polls = p.gwm.status(p.now).lbs[0].requests - requests;
    assert!((9..=11).contains(&polls), "{polls} polls in 70 s at 7 s");
    assert_eq!(
        p.gwm.status(p.now).lbs[0].pushes,
        0,
        "no pushes in pull mode"
    );
    // The LB's configuration changes: one member removed, one added.
    p.lb.set_groups(p.now, groups(&["192.0.2.21", "192.0.2.23"]))
        .unwrap();
    p.step();
    let targets: Vec<MemberKey> = p.gwm.probe_targets().into_iter().collect();
    assert_eq!(
        targets,
        vec![key(mid("192.0.2.21")), key(mid("192.0.2.23"))]
    );
    p.health("192.0.2.23", true, None);
    p.advance(Duration::from_secs(8));
    assert_eq!(p.lb_view()[&mid("192.0.2.23")], (0x0d, 65535));
    assert_eq!(p.closed(), None);
}

#[test]
fn gwm_interop_reconnect_finds_its_registrations() {
    let mut p = Pair::new(SaspMode::Push, false, &["192.0.2.21"]);
    p.health("192.0.2.21", true, None);
    // The connection breaks; a new session of the same LB UID connects within the grace.
    p.gwm.handle_closed(p.now, p.conn);
    p.lb.handle_close("test");
    p.now += Duration::from_secs(5);
    p.conn = p.gwm.accept(p.now, "lb".into()).unwrap();
    let settings = p.lb.settings().clone();
    p.lb = LbSession::new(settings, groups(&["192.0.2.21"])).unwrap();
    p.events.clear();
    p.lb.handle_connected(p.now);
    p.step();
    // "Already registered" counts as registered; the weights come at once.
    assert!(p.events.contains(&LbEvent::Registered), "{:?}", p.events);
    assert_eq!(p.lb_view()[&mid("192.0.2.21")], (0x0d, 65535));
    assert_eq!(p.gwm.status(p.now).connections, 1);
}
