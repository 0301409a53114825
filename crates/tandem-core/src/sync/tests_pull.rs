//! The pull protocol between two engines over a deterministic lossy network, `now` stepping
//! by a millisecond: full sync, incremental changes, loss/duplication/reordering, a cut in
//! the middle of a large entry, a lost partner, failover and divergence, drift with sync off.

use super::*;
use crate::config::{Config, parse_line};
use std::time::{Duration, Instant};

struct Side {
    e: SyncEngine,
    cfg: Config,
    discarded: Vec<String>,
    notes: Vec<String>,
}

struct Net {
    s: [Side; 2],
    /// Which side is the source (the other follows) while in contact.
    source: usize,
    contact: bool,
    /// Active while standalone.
    active: [bool; 2],
    /// Messages pass (heartbeats may still flow: `contact` stays).
    link: bool,
    now: Instant,
    rng: u64,
    loss: u64,
    dup: u64,
    jitter: u64,
    flight: Vec<(Instant, usize, Vec<u8>)>,
    delivered: u64,
}

fn side(lines: &[&str], lineage: u64) -> Side {
    let mut cfg = Config::default();
    for l in lines {
        cfg.apply(&parse_line(l).unwrap().unwrap()).unwrap();
    }
    let mut e = SyncEngine::new(
        lineage,
        shared_text(&Config::default()),
        SyncConfig::default(),
    );
    e.set_shared(Instant::now(), shared_text(&cfg), Some(Origin::Replace));
    Side {
        e,
        cfg,
        discarded: Vec::new(),
        notes: Vec::new(),
    }
}

impl Net {
    fn new(a: Side, b: Side) -> Net {
        Net {
            s: [a, b],
            source: 0,
            contact: true,
            active: [true, false],
            link: true,
            now: Instant::now(),
            rng: 0x9E37_79B9_7F4A_7C15,
            loss: 0,
            dup: 0,
            jitter: 0,
            flight: Vec::new(),
            delivered: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn role(&self, i: usize) -> Role {
        match (self.contact, self.source == i) {
            (false, _) => Role::Standalone,
            (true, true) => Role::Source,
            (true, false) => Role::Follower,
        }
    }

    fn step(&mut self) {
        let stall = Duration::from_secs(3);
        for i in 0..2 {
            let role = self.role(i);
            let other = self.s[1 - i].e.digest();
            let pd = self.contact.then_some(other);
            let active = self.active[i] || role == Role::Source;
            self.s[i].e.update(self.now, role, active, pd, stall);
            if self.s[i].e.poll_timeout().is_some_and(|t| t <= self.now) {
                self.s[i].e.handle_timeout(self.now);
            }
            while let Some(m) = self.s[i].e.poll_transmit() {
                if !self.link || !self.contact || self.rand() % 1000 < self.loss {
                    continue;
                }
                let copies = if self.rand() % 1000 < self.dup { 2 } else { 1 };
                for _ in 0..copies {
                    let extra = if self.jitter > 0 {
                        self.rand() % self.jitter
                    } else {
                        0
                    };
                    let at = self.now + Duration::from_millis(1 + extra);
                    self.flight.push((at, 1 - i, m.clone()));
                }
            }
            while let Some(ev) = self.s[i].e.poll_event() {
                match ev {
                    SyncEvent::Apply(a) => {
                        let lines = a.lines();
                        match candidate(&self.s[i].cfg, a.replace, &lines) {
                            Ok(c) if shared_digest(&c) == a.digest_after => {
                                self.s[i].cfg = c;
                                let text = shared_text(&self.s[i].cfg);
                                self.s[i].e.set_shared(self.now, text, Some(Origin::Synced));
                            }
                            Ok(_) => self.s[i].e.apply_failed(self.now, "digest".into()),
                            Err(e) => self.s[i].e.apply_failed(self.now, e.to_string()),
                        }
                    }
                    SyncEvent::Note(n) => self.s[i].notes.push(n),
                    SyncEvent::Discarded(t) => self.s[i].discarded.push(t),
                }
            }
        }
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flight)
            .into_iter()
            .partition(|(t, _, _)| *t <= now);
        self.flight = rest;
        for (_, to, m) in due {
            if self.link {
                self.delivered += 1;
                self.s[to].e.handle_message(now, &m);
            }
        }
        self.now += Duration::from_millis(1);
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> Duration {
        let start = self.now;
        while !done(self) {
            assert!(
                self.now - start < limit,
                "not done within {limit:?}: {:?} / {:?}",
                self.s[0].e.status(self.now),
                self.s[1].e.status(self.now)
            );
            self.step();
        }
        self.now - start
    }

    fn change(&mut self, i: usize, line: &str) {
        let cmd = parse_line(line).unwrap().unwrap();
        self.s[i].cfg.apply(&cmd).unwrap();
        let text = shared_text(&self.s[i].cfg);
        self.s[i]
            .e
            .set_shared(self.now, text, Some(Origin::Command(cmd.to_string())));
    }

    fn replace(&mut self, i: usize, text: &str) {
        self.s[i].cfg = crate::config::load_file(text, "t", &self.s[i].cfg).unwrap();
        let t = shared_text(&self.s[i].cfg);
        self.s[i].e.set_shared(self.now, t, Some(Origin::Replace));
    }

    fn in_sync(&self) -> bool {
        let f = 1 - self.source;
        self.s[f].e.state(self.now) == SyncState::InSync
            && self.s[0].e.digest() == self.s[1].e.digest()
    }
}

fn base() -> Vec<String> {
    let mut v = vec![
        "executor set nfa 192.0.2.1".to_string(),
        "cluster add 203.0.113.10".into(),
        "port add 203.0.113.10@80".into(),
    ];
    for i in 1..=100 {
        v.push(format!(
            "server add 203.0.113.10@80@198.51.100.{} weight {}",
            i % 250 + 1,
            i % 7
        ));
    }
    v
}

/// 5 000 commands: 50 ports of 99 servers.
fn big_file() -> String {
    let mut file = String::new();
    for p in 1..=50 {
        file.push_str(&format!("port add 203.0.113.10@{}\n", 1000 + p));
        for s in 1..=99 {
            file.push_str(&format!(
                "server add 203.0.113.10@{}@198.51.100.{s} weight 3\n",
                1000 + p
            ));
        }
    }
    file
}

fn pair() -> Net {
    let lines = base();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let a = side(&refs, 1);
    let b = side(&["executor set nfa 192.0.2.2"], 2);
    Net::new(a, b)
}

#[test]
fn the_follower_gets_the_whole_configuration_when_the_pair_forms() {
    let mut n = pair();
    assert_ne!(n.s[0].e.digest(), n.s[1].e.digest());
    let took = n.run_until(Duration::from_secs(2), |n| {
        n.in_sync() && n.s[0].e.behind(n.now).is_none()
    });
    assert_eq!(n.s[1].e.counters().full_syncs, 1);
    assert_eq!(n.s[0].e.counters().full_syncs_sent, 1);
    assert_eq!(n.s[1].cfg.executor.nfa, "192.0.2.2".parse().ok());
    assert_eq!(n.s[1].e.log().lineage(), n.s[0].e.log().lineage());
    assert!(n.s[1].discarded.is_empty());
    assert_eq!(n.s[1].e.behind(n.now), None);
    assert_eq!(n.s[0].e.behind(n.now), None);
    eprintln!("full sync in {took:?}");
}

#[test]
fn changes_arrive_in_order_through_loss_duplication_and_reordering() {
    let mut n = pair();
    n.loss = 200;
    n.dup = 100;
    n.jitter = 30;
    n.run_until(Duration::from_secs(30), Net::in_sync);
    for i in 0..50 {
        n.change(
            0,
            &format!("server set 203.0.113.10@80@198.51.100.2 weight {}", i % 20),
        );
        n.change(0, &format!("port set 203.0.113.10@80 stickytime {i}"));
    }
    n.run_until(Duration::from_secs(60), Net::in_sync);
    let f = &n.s[1];
    // One of the 100 commands changes nothing (weight 1 again): no entry for it.
    assert_eq!(f.e.counters().entries_applied, 99);
    assert_eq!(f.e.log().head(), n.s[0].e.log().head());
    assert!(f.e.counters().retransmits > 0);
    assert_eq!(f.e.counters().apply_failed, 0);
    assert_eq!(shared_digest(&n.s[1].cfg), shared_digest(&n.s[0].cfg));
}

#[test]
fn a_cut_in_the_middle_of_a_large_entry_is_inconsistent_and_recovers() {
    let mut n = pair();
    n.run_until(Duration::from_secs(2), Net::in_sync);
    let file = big_file();
    n.replace(0, &file);
    // Let part of it through, then cut the sync messages (contact stays).
    n.run_until(Duration::from_secs(2), |n| {
        n.s[1].e.status(n.now).transfer.is_some_and(|t| {
            let got: u64 = t
                .split_whitespace()
                .nth(3)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            got > 50_000
        })
    });
    n.link = false;
    n.run_until(Duration::from_secs(10), |n| {
        n.s[1].e.state(n.now) == SyncState::Inconsistent
    });
    let st = n.s[1].e.status(n.now);
    assert_eq!(st.stopped_at, Some(n.s[0].e.log().head() - 1));
    assert_eq!(st.head, Some(n.s[0].e.log().head()));
    assert!(n.s[1].e.behind(n.now).unwrap().contains("inconsistent"));
    n.link = true;
    let took = n.run_until(Duration::from_secs(5), Net::in_sync);
    assert!(n.s[1].notes.iter().any(|x| x.contains("recovered")));
    assert_eq!(
        n.s[1].e.counters().full_syncs,
        1,
        "an entry, not a full sync"
    );
    eprintln!("converged {took:?} after the link's return");
}

#[test]
fn a_partner_lost_while_behind_leaves_it_inconsistent_and_a_takeover_says_so() {
    let mut n = pair();
    n.link = false; // heartbeats flow, sync messages do not
    n.step();
    n.contact = false; // then the partner is lost
    n.step();
    assert_eq!(n.s[1].e.state(n.now), SyncState::Inconsistent);
    assert_eq!(n.s[1].e.status(n.now).stopped_at, Some(0));
    // It takes over (the partner is gone): it says at which change.
    n.active[1] = true;
    n.step();
    assert!(
        n.s[1]
            .notes
            .iter()
            .any(|x| x.contains("took over with the configuration at change 0")),
        "{:?}",
        n.s[1].notes
    );
}

#[test]
fn after_a_failover_the_old_source_resyncs_incrementally() {
    let mut n = pair();
    n.run_until(Duration::from_secs(2), Net::in_sync);
    for i in 0..20 {
        n.change(0, &format!("port set 203.0.113.10@80 stickytime {i}"));
    }
    n.run_until(Duration::from_secs(5), Net::in_sync);
    // Failover: side 1 becomes the source, changes 3 times.
    n.source = 1;
    for i in 0..3 {
        n.change(
            1,
            &format!("server set 203.0.113.10@80@198.51.100.3 weight {}", 10 + i),
        );
    }
    let sent = n.s[1].e.counters().entries_sent;
    n.run_until(Duration::from_secs(5), Net::in_sync);
    assert_eq!(n.s[1].e.counters().entries_sent - sent, 3);
    assert_eq!(n.s[0].e.counters().full_syncs, 0);
    assert_eq!(n.s[0].e.counters().entries_applied, 3);
    assert!(n.s[0].discarded.is_empty());
}

#[test]
fn changes_made_apart_are_discarded_to_a_file_by_a_full_sync() {
    let mut n = pair();
    n.run_until(Duration::from_secs(2), Net::in_sync);
    n.contact = false;
    n.step();
    n.change(0, "port set 203.0.113.10@80 stickytime 5");
    n.change(1, "port set 203.0.113.10@80 stickytime 9");
    n.change(1, "cluster add 203.0.113.77");
    // Side 1 stayed Active: side 0 follows and loses its change, kept in a file.
    n.source = 1;
    n.contact = true;
    n.run_until(Duration::from_secs(5), Net::in_sync);
    assert_eq!(n.s[0].discarded.len(), 1);
    let text = &n.s[0].discarded[0];
    assert!(
        text.contains("change 2: port set 203.0.113.10@80 stickytime 5"),
        "{text}"
    );
    assert!(
        n.s[0]
            .cfg
            .clusters
            .contains_key(&"203.0.113.77".parse().unwrap())
    );
}

#[test]
fn with_sync_off_nothing_is_mirrored_and_the_first_difference_is_shown() {
    let mut n = pair();
    n.s[0].e.set_enabled(n.now, false);
    n.s[1].e.set_enabled(n.now, false);
    n.run_until(Duration::from_secs(2), |n| {
        n.s[1].e.status(n.now).first_difference.is_some()
            && n.s[0].e.status(n.now).first_difference.is_some()
    });
    assert_eq!(n.s[1].e.state(n.now), SyncState::Off);
    assert_eq!(n.s[1].e.counters().full_syncs, 0);
    let d = n.s[1].e.status(n.now).first_difference.unwrap();
    assert!(d.contains("partner has `cluster add 203.0.113.10`"), "{d}");
    // One side on: the other still reports off, and the follower never refuses changes.
    n.s[1].e.set_enabled(n.now, true);
    n.run_until(Duration::from_secs(3), |n| {
        n.s[1].e.state(n.now) == SyncState::Off && n.s[1].e.status(n.now).first_difference.is_some()
    });
    assert!(!n.s[1].e.refuses_changes(n.now));
}

#[test]
fn a_follower_behind_holds_the_gate_until_in_sync() {
    let mut n = pair();
    n.step();
    assert!(n.s[1].e.behind(n.now).is_some());
    n.run_until(Duration::from_secs(2), Net::in_sync);
    n.step();
    assert_eq!(n.s[1].e.behind(n.now), None);
    assert!(n.s[1].e.refuses_changes(n.now));
    assert!(!n.s[0].e.refuses_changes(n.now));
}
