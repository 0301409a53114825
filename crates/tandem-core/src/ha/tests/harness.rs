//! `HaPair`: two real sans-IO HA nodes ([`crate::ha::Node`]) joined by simulated links, in
//! simulated time.
//!
//! Every datagram is the real one: heartbeats and replication frames are encoded, signed,
//! decoded and verified by the nodes themselves, and replication runs for real (each node has
//! a table of records that the node snapshots, hands over and installs). Each heartbeat pair
//! has one link per direction with its own loss rate, latency, jitter and up/down switch. Time
//! moves from event to event (deliveries, timeouts); nothing sleeps, and a run that does not
//! settle within [`MAX_STEPS`] fails.
//!
//! The pair keeps a trace for invariants: when each node forwarded, when each direction last
//! delivered a heartbeat, and the silences (no delivery for at least hatimeout).

use crate::config::{Backup, Config, Protocol, Recovery, Role};
use crate::ha::heartbeat::{ProductVersion, State};
use crate::ha::machine::{Action, HaSettings, Machine};
use crate::ha::node::{Event, Node as HaNode, Transmit};
use crate::replication::{ConnectionRecord, Record};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Steps one `run_*` call may take before the test fails as a livelock (quinn's
/// `drive_bounded`): far above what any scenario needs.
pub const MAX_STEPS: usize = 2_000_000;

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

/// A node: the real sans-IO [`ha::Node`] (machine, replication, keys, framing) and what a
/// shell would have done with its events, including a table of records standing in for the
/// data plane's connection table.
pub struct SimNode {
    pub node: HaNode,
    /// The process runs (a crash stops everything, without a last heartbeat).
    pub alive: bool,
    /// What the data plane does, as the events said.
    pub forwarding: bool,
    pub key: Option<Vec<u8>>,
    pub settings: HaSettings,
    pub version: ProductVersion,
    pub epoch: u64,
    /// Every machine action (except heartbeats), with its time.
    pub log: Vec<(Instant, Action)>,
    /// Reach targets the "world" lets this node reach.
    pub reachable: Vec<bool>,
    /// The node's connection table (what the data plane holds): client port → record.
    pub table: BTreeMap<u16, Record>,
    /// A snapshot was asked for and not answered yet.
    pub snapshot_wanted: bool,
    /// Datagrams this node sent, most recent last (for replay tests).
    pub sent: VecDeque<Transmit>,
    /// Advisor-state chunks received from the partner.
    pub partner_health: Vec<Vec<u8>>,
}

impl SimNode {
    pub fn m(&self) -> &Machine {
        self.node.machine()
    }

    /// The datagrams this node sent whose first bytes are `magic` (`b"TNDM"`: heartbeats,
    /// `b"TNDR"`: replication frames), oldest first.
    pub fn sent_of(&self, magic: &[u8]) -> Vec<Vec<u8>> {
        self.sent
            .iter()
            .filter(|t| t.bytes.starts_with(magic))
            .map(|t| t.bytes.clone())
            .collect()
    }

    /// The last datagram this node sent whose first bytes are `magic`.
    pub fn last_sent(&self, magic: &[u8]) -> Vec<u8> {
        self.sent_of(magic)
            .pop()
            .expect("the node sent such a datagram")
    }

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

/// The configuration both simulated nodes run: one cluster, one replicating MAC port.
/// The diagnostics bundle node `n` builds for its partner (several chunks long).
pub fn bundle_of(n: usize) -> Vec<u8> {
    (0..20_000u32)
        .map(|i| (i as usize * 31 + n) as u8)
        .collect()
}

pub fn sim_config() -> Config {
    crate::config::load_file(
        "cluster add 192.0.2.100\n\
         port add 192.0.2.100@80 repstrategy connection\n\
         server add 192.0.2.100@80@198.51.100.11\n",
        "harness",
        &Config::default(),
    )
    .expect("harness configuration")
}

/// A long-lived connection record of the simulated cluster, from client port `port`.
pub fn connection(port: u16) -> Record {
    Record::Connection(ConnectionRecord {
        proto: Protocol::Tcp,
        client: SocketAddr::new(addr(203, 0, 113, 7), port),
        cluster: SocketAddr::new(addr(192, 0, 2, 100), 80),
        server: addr(198, 51, 100, 11),
        nat: None,
        client_mac: [2, 0, 0, 0, 0, 7],
        client_ack: 1,
        closing: false,
        ended: false,
        idle_ms: 0,
        staletimeout_s: 300,
    })
}

struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    from: SocketAddr,
    local: IpAddr,
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
    pub nodes: [SimNode; 2],
    /// links[pair][direction], direction 0 = A→B, 1 = B→A.
    pub links: Vec<[Link; 2]>,
    pub rng: Rng,
    inflight: Vec<InFlight>,
    order: u64,
    /// Snapshots are answered (off: a full synchronisation never starts).
    pub answer_snapshots: bool,
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
            let mut node = HaNode::new(epoch, o.versions[i], 100 + i as u32);
            node.set_key(t0, o.keys[i].clone());
            node.configure(t0, &sim_config(), settings.clone());
            SimNode {
                node,
                alive: true,
                forwarding: false,
                key: o.keys[i].clone(),
                settings,
                version: o.versions[i],
                epoch,
                log: Vec::new(),
                reachable: vec![true; o.reach],
                table: BTreeMap::new(),
                snapshot_wanted: false,
                sent: VecDeque::new(),
                partner_health: Vec::new(),
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
            answer_snapshots: true,
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
        self.nodes[n].m().state()
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
        node.node.executor_started(now);
        for (i, ok) in node.reachable.clone().into_iter().enumerate() {
            node.node.handle_reach(now, reach_target(i), ok);
        }
        self.drain(n);
    }

    pub fn stop(&mut self, n: usize) {
        let now = self.now;
        if !self.nodes[n].alive {
            return;
        }
        self.nodes[n].node.executor_stopped(now);
        self.nodes[n].table.clear();
        self.drain(n);
    }

    /// Crash: the process vanishes; no last heartbeat, and its table is gone.
    pub fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
        self.nodes[n].forwarding = false;
        self.nodes[n].table.clear();
        self.observe();
    }

    /// A new process with a higher epoch, configured and started (with an empty table).
    pub fn restart(&mut self, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[n];
        node.epoch += 10_000;
        node.node = HaNode::new(node.epoch, node.version, 100 + n as u32 + node.epoch as u32);
        node.node.set_key(now, node.key.clone());
        node.node
            .configure(now, &sim_config(), node.settings.clone());
        node.table.clear();
        node.snapshot_wanted = false;
        node.alive = true;
        node.forwarding = false;
        self.start(n);
    }

    pub fn takeover(&mut self, n: usize) -> Result<(), crate::ha::TakeoverError> {
        let now = self.now;
        let r = self.nodes[n].node.takeover(now);
        self.drain(n);
        r
    }

    pub fn set_maintenance(&mut self, n: usize, on: bool) {
        let now = self.now;
        if self.nodes[n].alive {
            self.nodes[n].node.set_maintenance(now, on);
            self.drain(n);
        }
    }

    /// Sets node `n`'s key (as `highavailability key FILE` does).
    pub fn set_key(&mut self, n: usize, key: Option<Vec<u8>>) {
        let now = self.now;
        self.nodes[n].key = key.clone();
        if self.nodes[n].alive {
            self.nodes[n].node.set_key(now, key);
            self.drain(n);
        }
    }

    pub fn set_reach(&mut self, n: usize, target: usize, ok: bool) {
        let now = self.now;
        self.nodes[n].reachable[target] = ok;
        if self.nodes[n].alive {
            self.nodes[n]
                .node
                .handle_reach(now, reach_target(target), ok);
            self.drain(n);
        }
    }

    pub fn reconfigure(&mut self, n: usize, settings: HaSettings) {
        let now = self.now;
        self.nodes[n].settings = settings.clone();
        self.nodes[n].reachable.resize(settings.reach.len(), true);
        self.nodes[n].node.configure(now, &sim_config(), settings);
        self.drain(n);
    }

    /// Opens `count` connections on the node that forwards (as its data plane would: a record
    /// in its table, queued for replication). Returns the client ports.
    pub fn open_connections(&mut self, n: usize, first_port: u16, count: u16) -> Vec<u16> {
        let ports: Vec<u16> = (first_port..first_port + count).collect();
        let records: Vec<Record> = ports.iter().map(|&p| connection(p)).collect();
        for (p, r) in ports.iter().zip(&records) {
            self.nodes[n].table.insert(*p, *r);
        }
        self.nodes[n].node.push_records(records);
        self.drain(n);
        ports
    }

    /// How many of `ports` node `n` holds a record for.
    pub fn holds(&self, n: usize, ports: &[u16]) -> usize {
        ports
            .iter()
            .filter(|p| self.nodes[n].table.contains_key(p))
            .count()
    }

    /// Puts a datagram on the wire as if `from` node had sent it on pair `pair` (replays,
    /// forgeries): it reaches the other node after the link's latency, if the link is up.
    pub fn inject(&mut self, from: usize, pair: usize, bytes: Vec<u8>) {
        self.inject_from_port(from, pair, 20001, bytes);
    }

    /// [`HaPair::inject`] from another source port than the HA port.
    pub fn inject_from_port(&mut self, from: usize, pair: usize, port: u16, bytes: Vec<u8>) {
        let (a, b) = pair_addrs(pair);
        let (src, dst) = if from == A { (a, b) } else { (b, a) };
        self.order += 1;
        self.inflight.push(InFlight {
            at: self.now + self.links[pair][from].latency,
            order: self.order,
            to: 1 - from,
            from: SocketAddr::new(src, port),
            local: dst,
            bytes,
        });
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

    fn pair_of(&self, n: usize, t: &Transmit) -> Option<usize> {
        self.nodes[n]
            .settings
            .heartbeats
            .iter()
            .position(|&(s, d)| s == t.source && d == t.destination.ip())
    }

    /// Carries out node `n`'s transmits and events, as the daemon's shell does.
    fn drain(&mut self, n: usize) {
        loop {
            let now = self.now;
            let mut progressed = false;
            while let Some(t) = self.nodes[n].node.poll_transmit() {
                progressed = true;
                if !self.nodes[n].alive {
                    continue;
                }
                if self.nodes[n].sent.len() == 256 {
                    self.nodes[n].sent.pop_front();
                }
                self.nodes[n].sent.push_back(t.clone());
                let Some(pair) = self.pair_of(n, &t) else {
                    self.dropped += 1;
                    continue;
                };
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
                    from: SocketAddr::new(t.source, t.destination.port()),
                    local: t.destination.ip(),
                    bytes: t.bytes,
                });
            }
            while let Some(e) = self.nodes[n].node.poll_event() {
                progressed = true;
                match e {
                    Event::Machine(a) => {
                        if let Some(f) = a.forwarding() {
                            self.nodes[n].forwarding = f;
                        }
                        self.nodes[n].log.push((now, a));
                    }
                    Event::TakeSnapshot => self.nodes[n].snapshot_wanted = true,
                    Event::Install(records) => {
                        let mut installed = 0;
                        for r in records {
                            if let Record::Connection(c) = r {
                                if c.ended {
                                    self.nodes[n].table.remove(&c.client.port());
                                } else {
                                    self.nodes[n].table.insert(c.client.port(), r);
                                }
                                installed += 1;
                            }
                        }
                        self.nodes[n].node.note_installed(installed);
                    }
                    Event::Note(_) => {}
                    Event::PartnerHealth(chunk) => self.nodes[n].partner_health.push(chunk),
                    Event::BuildBundle(id) => {
                        let bundle = bundle_of(n);
                        self.nodes[n].node.bundle_built(now, id, Ok(bundle));
                    }
                    // Both nodes run the same configuration: nothing to apply.
                    Event::SyncApply(_) | Event::SyncDiscarded(_) => {}
                }
            }
            if self.nodes[n].snapshot_wanted && self.answer_snapshots && self.nodes[n].alive {
                self.nodes[n].snapshot_wanted = false;
                let records: Vec<Record> = self.nodes[n].table.values().copied().collect();
                self.nodes[n].node.full_sync(now, records);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.observe();
    }

    fn deliver(&mut self, f: InFlight) {
        let now = self.now;
        if !self.nodes[f.to].alive {
            return;
        }
        self.delivered += 1;
        let dir = 1 - f.to;
        let before = self.nodes[f.to].m().heartbeats_received();
        self.nodes[f.to]
            .node
            .handle_datagram(now, f.local, f.from, &f.bytes);
        // Liveness: only heartbeats the machine took (not replays, not reordered ones).
        if self.nodes[f.to].m().heartbeats_received() != before {
            self.note_delivery(dir);
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
        for n in &self.nodes {
            if n.alive
                && let Some(at) = n.node.poll_timeout()
            {
                t = Some(t.map_or(at, |x: Instant| x.min(at)));
            }
        }
        t
    }

    /// Runs until `until`, processing everything due at or before it.
    pub fn run_until(&mut self, until: Instant) {
        let mut steps = 0;
        loop {
            let Some(next) = self.next_event().filter(|&t| t <= until) else {
                self.now = until.max(self.now);
                self.observe();
                return;
            };
            self.now = next.max(self.now);
            self.step();
            steps += 1;
            assert!(
                steps < MAX_STEPS,
                "livelock: {steps} steps without reaching {until:?}"
            );
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
        let mut steps = 0;
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
            steps += 1;
            assert!(steps < MAX_STEPS, "livelock: {steps} steps");
        }
    }

    /// Everything due now: deliveries first (in send order), then timers.
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
        for n in [A, B] {
            if self.nodes[n].alive && self.nodes[n].node.poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[n].node.handle_timeout(now);
                self.drain(n);
            }
        }
        self.observe();
    }

    fn observe(&mut self) {
        let now = self.now;
        let fwd = |n: &SimNode| n.alive && n.forwarding;
        let dual = fwd(&self.nodes[A]) && fwd(&self.nodes[B]);
        track(&mut self.trace.dual, dual, now);
        let someone_up = self
            .nodes
            .iter()
            .any(|n| n.alive && n.m().state() != State::Down);
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
