//! `HaPair`: two HA machines joined by simulated heartbeat links, in simulated time.
//!
//! Every heartbeat goes through the real codec (encode with the sender's key, decode with the
//! receiver's). Each heartbeat pair has one link per direction with its own loss rate,
//! latency, jitter and up/down switch. Time moves from event to event (deliveries, machine
//! timeouts, replication completions); nothing sleeps.
//!
//! The pair keeps a trace for invariants: when each node forwarded, when each direction last
//! delivered a heartbeat, and the silences (no delivery for at least hatimeout).

use crate::config::{Backup, Recovery, Role};
use crate::ha::heartbeat::{ProductVersion, State, decode, encode};
use crate::ha::machine::{Action, HaSettings, Machine, Received};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

pub const A: usize = 0;
pub const B: usize = 1;

/// Deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_5EED)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One direction of one heartbeat pair.
#[derive(Debug, Clone)]
pub struct Link {
    pub up: bool,
    pub loss: f64,
    pub latency: Duration,
    pub jitter: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            up: true,
            loss: 0.0,
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
        }
    }
}

/// A node: its machine and what the shell would have done with its actions.
pub struct Node {
    pub m: Machine,
    /// The process runs (a crash stops everything, without a last heartbeat).
    pub alive: bool,
    /// What the data plane does, as the actions said.
    pub forwarding: bool,
    pub key: Option<Vec<u8>>,
    pub settings: HaSettings,
    pub version: ProductVersion,
    pub epoch: u64,
    /// Every action except SendHeartbeat, with its time.
    pub log: Vec<(Instant, Action)>,
    /// Reach targets the "world" lets this node reach.
    pub reachable: Vec<bool>,
}

impl Node {
    /// State actions and scripts, in order, from `since` on (for script-order tests).
    pub fn effects_since(&self, since: Instant) -> Vec<String> {
        self.log
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(_, a)| match a {
                Action::GoActive => Some("GoActive".to_string()),
                Action::GoStandby => Some("GoStandby".to_string()),
                Action::GoListen => Some("GoListen".to_string()),
                Action::GoIdle => Some("GoIdle".to_string()),
                Action::GoDown => Some("GoDown".to_string()),
                Action::RunScript { name, arg: None } => Some(name.to_string()),
                Action::RunScript { name, arg: Some(a) } => Some(format!("{name} {a}")),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, since: Instant, f: impl Fn(&Action) -> bool) -> usize {
        self.log.iter().filter(|(t, a)| *t >= since && f(a)).count()
    }

    /// Number of state transitions since `since`.
    pub fn transitions_since(&self, since: Instant) -> usize {
        self.count(since, |a| a.forwarding().is_some())
    }
}

struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    pair: usize,
    bytes: Vec<u8>,
}

/// Trace for invariants.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Intervals during which both nodes forwarded: (start, end); the last may be open.
    pub dual: Vec<(Instant, Option<Instant>)>,
    /// Intervals during which neither forwarded while at least one was alive with executor
    /// started and HA settled: (start, end).
    pub vacant: Vec<(Instant, Option<Instant>)>,
    /// Per direction (0: A→B, 1: B→A): silences of at least hatimeout, (start, end).
    pub silences: [Vec<(Instant, Option<Instant>)>; 2],
    pub last_delivery: [Option<Instant>; 2],
    /// Per direction, start of the current stretch without delivery.
    pub quiet_since: [Instant; 2],
}

pub struct HaPair {
    pub t0: Instant,
    pub now: Instant,
    pub nodes: [Node; 2],
    /// links[pair][direction], direction 0 = A→B, 1 = B→A.
    pub links: Vec<[Link; 2]>,
    pub rng: Rng,
    inflight: Vec<InFlight>,
    order: u64,
    /// Time replication takes to bring a joining standby up to date (when replication is on).
    pub sync_delay: Duration,
    pending_sync: Vec<(Instant, usize)>,
    pub trace: Trace,
    /// Delivered / dropped datagram counts.
    pub delivered: u64,
    pub dropped: u64,
}

pub fn addr(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Heartbeat pair addresses: pair i is 192.0.2.(10i+1) on A ↔ 192.0.2.(10i+2) on B.
pub fn pair_addrs(i: usize) -> (IpAddr, IpAddr) {
    let base = 10 * i as u8;
    (addr(192, 0, 2, base + 1), addr(192, 0, 2, base + 2))
}

pub fn reach_target(i: usize) -> IpAddr {
    addr(198, 51, 100, 1 + i as u8)
}

/// Options for building a pair.
#[derive(Debug, Clone)]
pub struct PairOptions {
    pub recovery: Recovery,
    pub pairs: usize,
    pub reach: usize,
    pub hatimeout: Duration,
    pub replication: bool,
    pub versions: [ProductVersion; 2],
    pub keys: [Option<Vec<u8>>; 2],
    pub seed: u64,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            recovery: Recovery::Auto,
            pairs: 1,
            reach: 0,
            hatimeout: Duration::from_secs(2),
            replication: false,
            versions: [ProductVersion::new(9, 0, 5, 8); 2],
            keys: [Some(b"pair key".to_vec()), Some(b"pair key".to_vec())],
            seed: 1,
        }
    }
}

pub fn settings_for(o: &PairOptions, node: usize) -> HaSettings {
    let role = if node == A {
        Role::Primary
    } else {
        Role::Backup
    };
    HaSettings {
        backup: Some(Backup {
            role,
            recovery: o.recovery,
            port: 20001,
        }),
        heartbeats: (0..o.pairs)
            .map(|i| {
                let (a, b) = pair_addrs(i);
                if node == A { (a, b) } else { (b, a) }
            })
            .collect(),
        reach: (0..o.reach).map(reach_target).collect(),
        hatimeout: o.hatimeout,
        replication: o.replication,
        config_digest: 77,
        authenticated: o.keys[node].is_some(),
        ..HaSettings::default()
    }
}

impl HaPair {
    /// Two nodes, configured, executors not started yet.
    pub fn new(o: &PairOptions) -> Self {
        let t0 = Instant::now();
        let nodes = [A, B].map(|i| {
            let epoch = 1_000_000 + i as u64;
            let settings = settings_for(o, i);
            let mut m = Machine::new(epoch, o.versions[i]);
            m.configure(t0, &settings);
            Node {
                m,
                alive: true,
                forwarding: false,
                key: o.keys[i].clone(),
                settings,
                version: o.versions[i],
                epoch,
                log: Vec::new(),
                reachable: vec![true; o.reach],
            }
        });
        HaPair {
            t0,
            now: t0,
            nodes,
            links: (0..o.pairs)
                .map(|_| [Link::default(), Link::default()])
                .collect(),
            rng: Rng::new(o.seed),
            inflight: Vec::new(),
            order: 0,
            sync_delay: Duration::from_millis(300),
            pending_sync: Vec::new(),
            trace: Trace {
                dual: Vec::new(),
                vacant: Vec::new(),
                silences: [Vec::new(), Vec::new()],
                last_delivery: [None, None],
                quiet_since: [t0, t0],
            },
            delivered: 0,
            dropped: 0,
        }
    }

    /// A pair with both executors started at t0 and run for `settle`.
    pub fn started(o: &PairOptions, settle: Duration) -> Self {
        let mut p = HaPair::new(o);
        p.start(A);
        p.start(B);
        p.run_for(settle);
        p
    }

    pub fn state(&self, n: usize) -> State {
        self.nodes[n].m.state()
    }

    pub fn hatimeout(&self) -> Duration {
        self.nodes[A].settings.hatimeout()
    }

    pub fn interval(&self) -> Duration {
        self.nodes[A].settings.interval()
    }

    // ----- operations on nodes -----

    pub fn start(&mut self, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.alive {
            return;
        }
        node.m.executor_started(now);
        for (i, ok) in node.reachable.clone().into_iter().enumerate() {
            node.m.handle_reach(now, reach_target(i), ok);
        }
        self.drain(n);
    }

    pub fn stop(&mut self, n: usize) {
        let now = self.now;
        if !self.nodes[n].alive {
            return;
        }
        self.nodes[n].m.executor_stopped(now);
        self.drain(n);
    }

    /// Crash: the process vanishes; no last heartbeat.
    pub fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
        self.nodes[n].forwarding = false;
        self.observe();
    }

    /// A new process with a higher epoch, configured and started.
    pub fn restart(&mut self, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[n];
        node.epoch += 10_000;
        node.m = Machine::new(node.epoch, node.version);
        node.m.configure(now, &node.settings);
        node.alive = true;
        node.forwarding = false;
        self.start(n);
    }

    pub fn takeover(&mut self, n: usize) -> Result<(), crate::ha::TakeoverError> {
        let now = self.now;
        let r = self.nodes[n].m.takeover(now);
        self.drain(n);
        r
    }

    pub fn set_reach(&mut self, n: usize, target: usize, ok: bool) {
        let now = self.now;
        self.nodes[n].reachable[target] = ok;
        if self.nodes[n].alive {
            self.nodes[n].m.handle_reach(now, reach_target(target), ok);
            self.drain(n);
        }
    }

    pub fn reconfigure(&mut self, n: usize, settings: HaSettings) {
        let now = self.now;
        self.nodes[n].settings = settings.clone();
        self.nodes[n].reachable.resize(settings.reach.len(), true);
        self.nodes[n].m.configure(now, &settings);
        self.drain(n);
    }

    /// All links of every pair up or down (both directions).
    pub fn set_links(&mut self, up: bool) {
        for l in self.links.iter_mut().flatten() {
            l.up = up;
        }
    }

    pub fn set_direction(&mut self, dir: usize, up: bool) {
        for l in &mut self.links {
            l[dir].up = up;
        }
    }

    pub fn set_loss(&mut self, loss: f64) {
        for l in self.links.iter_mut().flatten() {
            l.loss = loss;
        }
    }

    // ----- the event loop -----

    fn drain(&mut self, n: usize) {
        let now = self.now;
        while let Some(a) = self.nodes[n].m.poll_action() {
            match a {
                Action::SendHeartbeat {
                    pair, heartbeat, ..
                } => {
                    if !self.nodes[n].alive {
                        continue;
                    }
                    let bytes = encode(&heartbeat, self.nodes[n].key.as_deref());
                    let link = &self.links[pair][n];
                    if !link.up || self.rng.chance(link.loss) {
                        self.dropped += 1;
                        continue;
                    }
                    let jitter = if link.jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        Duration::from_nanos(self.rng.below(link.jitter.as_nanos() as u64))
                    };
                    self.order += 1;
                    self.inflight.push(InFlight {
                        at: now + link.latency + jitter,
                        order: self.order,
                        to: 1 - n,
                        pair,
                        bytes,
                    });
                }
                Action::RequestFullSync => {
                    // The node sends its table; the other one holds it after sync_delay.
                    self.pending_sync.push((now + self.sync_delay, 1 - n));
                    self.nodes[n].log.push((now, a));
                }
                other => {
                    if let Some(f) = other.forwarding() {
                        self.nodes[n].forwarding = f;
                    }
                    self.nodes[n].log.push((now, other));
                }
            }
        }
        self.observe();
    }

    fn deliver(&mut self, f: InFlight) {
        let now = self.now;
        let node = &mut self.nodes[f.to];
        if !node.alive {
            return;
        }
        self.delivered += 1;
        let dir = 1 - f.to;
        match decode(&f.bytes, self.nodes[f.to].key.as_deref()) {
            Ok(hb) => {
                let r = self.nodes[f.to].m.handle_heartbeat(now, f.pair, &hb);
                // Liveness: only heartbeats the machine took (not replays, not reordered ones).
                if matches!(r, Received::New | Received::Duplicate) {
                    self.note_delivery(dir);
                }
                if let Ok(w) = std::env::var("HA_DEBUG_DELIVERY") {
                    let (a, b) = w.split_once('-').unwrap();
                    let d = (now - self.t0).as_secs_f64();
                    if d >= a.parse::<f64>().unwrap() && d <= b.parse::<f64>().unwrap() {
                        eprintln!(
                            "{d:.4} to {} pair {} seq {} state {:?} req {:?} ack {} -> {r:?}",
                            f.to, f.pair, hb.seq, hb.state, hb.request, hb.ack
                        );
                    }
                }
            }
            Err(e) => self.nodes[f.to].m.record_bad_datagram(e.kind()),
        }
        self.drain(f.to);
    }

    fn note_delivery(&mut self, dir: usize) {
        let now = self.now;
        let h = self.hatimeout();
        let q = self.trace.quiet_since[dir];
        if now - q >= h {
            self.trace.silences[dir].push((q, Some(now)));
        }
        self.trace.quiet_since[dir] = now;
        self.trace.last_delivery[dir] = Some(now);
    }

    fn next_event(&self) -> Option<Instant> {
        let mut t = self.inflight.iter().map(|f| f.at).min();
        for (at, _) in &self.pending_sync {
            t = Some(t.map_or(*at, |x: Instant| x.min(*at)));
        }
        for n in &self.nodes {
            if n.alive
                && let Some(at) = n.m.poll_timeout()
            {
                t = Some(t.map_or(at, |x: Instant| x.min(at)));
            }
        }
        t
    }

    /// Runs until `until`, processing everything due at or before it.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let Some(next) = self.next_event().filter(|&t| t <= until) else {
                self.now = until.max(self.now);
                self.observe();
                return;
            };
            self.now = next.max(self.now);
            self.step();
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `cond` holds or `limit` passes; returns the time it first held.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        cond: impl Fn(&HaPair) -> bool,
    ) -> Option<Instant> {
        let until = self.now + limit;
        loop {
            if cond(self) {
                return Some(self.now);
            }
            let Some(next) = self.next_event().filter(|&t| t <= until) else {
                self.now = until;
                self.observe();
                return cond(self).then_some(self.now);
            };
            self.now = next.max(self.now);
            self.step();
        }
    }

    /// Everything due now: deliveries first (in send order), then replication, then timers.
    fn step(&mut self) {
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.inflight.len() {
            if self.inflight[i].at <= now {
                due.push(self.inflight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| (f.at, f.order));
        for f in due {
            self.deliver(f);
        }
        let syncs: Vec<usize> = self
            .pending_sync
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|&(_, n)| n)
            .collect();
        self.pending_sync.retain(|(at, _)| *at > now);
        for n in syncs {
            if self.nodes[n].alive {
                self.nodes[n].m.sync_complete(now);
                self.drain(n);
            }
        }
        for n in [A, B] {
            if self.nodes[n].alive && self.nodes[n].m.poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[n].m.handle_timeout(now);
                self.drain(n);
            }
        }
        self.observe();
    }

    fn observe(&mut self) {
        let now = self.now;
        let fwd = |n: &Node| n.alive && n.forwarding;
        let dual = fwd(&self.nodes[A]) && fwd(&self.nodes[B]);
        track(&mut self.trace.dual, dual, now);
        let someone_up = self
            .nodes
            .iter()
            .any(|n| n.alive && n.m.state() != State::Down);
        let vacant = someone_up && !fwd(&self.nodes[A]) && !fwd(&self.nodes[B]);
        track(&mut self.trace.vacant, vacant, now);
    }

    /// Closes open trace intervals (and silences) at `now`.
    pub fn close_trace(&mut self) {
        let now = self.now;
        for v in [&mut self.trace.dual, &mut self.trace.vacant] {
            if let Some((_, end @ None)) = v.last_mut() {
                *end = Some(now);
            }
        }
        let h = self.hatimeout();
        for dir in 0..2 {
            let q = self.trace.quiet_since[dir];
            if now - q >= h {
                self.trace.silences[dir].push((q, Some(now)));
            }
        }
    }

    /// The node that forwards, if exactly one does.
    pub fn single_active(&self) -> Option<usize> {
        let f: Vec<usize> = (0..2)
            .filter(|&n| self.nodes[n].alive && self.nodes[n].forwarding)
            .collect();
        (f.len() == 1).then(|| f[0])
    }
}

fn track(v: &mut Vec<(Instant, Option<Instant>)>, on: bool, now: Instant) {
    let open = matches!(v.last(), Some((_, None)));
    if on && !open {
        v.push((now, None));
    } else if !on
        && open
        && let Some((_, end)) = v.last_mut()
    {
        *end = Some(now);
    }
}
