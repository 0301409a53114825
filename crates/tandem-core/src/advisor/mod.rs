//! Advisors, sans-IO: which server is probed when, how results make it up or down, and the
//! script events (`serverDown`, `serverUp`, `managerAlert`, `managerClear`) that follow.
//!
//! The [`Scheduler`] never opens a socket and never reads the clock: the daemon's health
//! thread drives it with `now`.
//!
//! ```text
//! configure(now, &config)          targets = advisor × server of each matching port
//! set_running(now, true)           only while the node forwards (Active, or stand-alone)
//! loop {
//!     while let Some(p) = poll_probe(now)  { spawn the probe (shell) }
//!     handle_result(now, p.id, outcome)    when a probe finishes
//!     while let Some(e) = poll_event()     { run the script e.script() }
//!     sleep until poll_timeout()
//! }
//! ```
//!
//! # Rules
//!
//! * **Targets.** An advisor started on `PORT` watches that port of every cluster; one
//!   started on `CLUSTER@PORT` only that cluster's port, and there it replaces a port-wide
//!   advisor of the same name (the more specific one wins). Each server of a watched port is a
//!   target. Probes go to the server's own address and the cluster port (MAC) or the server's
//!   `mapport` (NAT); `ping` uses the address only.
//! * **Timing.** A target is probed every `interval`, measured from the start of the previous
//!   probe. New targets, and every target when the scheduler starts running, are due at once,
//!   but the first probes of a batch leave one every [`FIRST_PROBE_GAP`] (never later than one
//!   interval), so 2 000 servers do not get 2 000 connects in the same millisecond and stay
//!   spread afterwards. At most one probe per target is in flight.
//! * **Up and down.** A server is down after `retries + 1` failed queries in a row and up
//!   again on the first good one. A target starts `unknown` (treated as up: no weight change).
//! * **Lost probes.** The shell times its probes out; should a result never come, the
//!   scheduler itself fails the probe `connecttimeout + receivetimeout +` [`LOST_PROBE_SLACK`]
//!   after it left, so a lost future cannot wedge a target.
//! * **Trust (`advisor timeout`).** After `timeout` seconds without a fresh result an `up`
//!   report is no longer trusted: the target reads `unknown` and its load is ignored (the
//!   manager then treats it like a server without load data). A `down` report stays down
//!   however old it is (IBM).
//! * **Several advisors on one port.** A server is down when any of its advisors says down.
//!   Its port load is the largest fresh load of its built-in advisors, its system load the
//!   largest fresh load of its custom (`ADV_`) advisors.
//! * **Scripts (IBM).** `serverDown` when a server goes down, except for the last server of
//!   its port: then `managerAlert` runs instead. `serverUp` when a server comes back, except
//!   for the first one after all were down: then `managerClear` runs instead. A port counts as
//!   all down when each of its servers is down by an advisor or by the operator (`server
//!   down`); an operator's change raises `managerAlert` / `managerClear` but never
//!   `serverDown` / `serverUp`. Events are raised only while running; states installed by
//!   [`Scheduler::seed`] raise none (the partner raised them).

mod report;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_state;
mod types;

pub use report::{AdvisorList, AdvisorListEntry, AdvisorReport, ServerReport};
pub use state::{DecodeError, MAX_ENTRY, MAX_EXPORTED_TARGETS, MIN_CHUNK, TargetState};
pub use types::{
    Event, Outcome, Probe, ProbeId, ServerHealth, State, Stats, TargetHealth, TargetKey,
};

use crate::config::{AdvisorKey, AdvisorKind, Config, MAX_SECONDS, MIN_SECONDS, Method};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Between two first probes of a batch of new targets (at most 500 per second).
pub const FIRST_PROBE_GAP: Duration = Duration::from_millis(2);
/// Added to connecttimeout + receivetimeout before a probe without a result counts as failed.
pub const LOST_PROBE_SLACK: Duration = Duration::from_secs(1);
/// Events kept for [`Scheduler::poll_event`]; beyond, the oldest are dropped (counted).
pub const EVENT_QUEUE_LIMIT: usize = 4096;
/// Longest reason kept for a failed query (longer ones are cut).
pub const MAX_REASON: usize = 256;

/// Durations of one advisor, clamped to the grammar's range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Settings {
    interval: Duration,
    connect: Duration,
    receive: Duration,
    retries: u32,
    timeout: Option<Duration>,
}

fn secs(s: f64) -> Duration {
    let s = if s.is_finite() { s } else { MAX_SECONDS };
    Duration::from_secs_f64(s.clamp(MIN_SECONDS, MAX_SECONDS))
}

impl Settings {
    fn lost_after(&self) -> Duration {
        self.connect + self.receive + LOST_PROBE_SLACK
    }
}

#[derive(Debug)]
struct Target {
    key: TargetKey,
    settings: Settings,
    address: SocketAddr,
    request: Option<String>,
    response: Option<String>,
    health: TargetHealth,
    /// The one timer of this target: next probe, or the lost-probe deadline while in flight.
    timer: Option<Instant>,
    in_flight: Option<(ProbeId, Instant)>,
}

#[derive(Debug, Default)]
struct PortState {
    /// Every server of the port and whether the operator set it down.
    servers: BTreeMap<IpAddr, bool>,
    alerted: bool,
}

/// A target as the configuration wants it: key, settings, address, request, response.
type Wanted = (
    TargetKey,
    Settings,
    SocketAddr,
    Option<String>,
    Option<String>,
);

/// The advisor scheduler (see the module documentation).
#[derive(Debug, Default)]
pub struct Scheduler {
    targets: Vec<Option<Target>>,
    free: Vec<usize>,
    by_key: HashMap<TargetKey, usize>,
    /// (cluster, port, server) → its targets.
    by_server: HashMap<(IpAddr, u16, IpAddr), Vec<usize>>,
    ports: BTreeMap<(IpAddr, u16), PortState>,
    timers: BTreeSet<(Instant, usize)>,
    in_flight: HashMap<ProbeId, usize>,
    next_id: u64,
    running: bool,
    events: VecDeque<Event>,
    stats: Stats,
    advisors: BTreeMap<AdvisorKey, crate::config::Advisor>,
    generation: u64,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Takes the advisors and servers of `config`: keeps the state of targets that stay,
    /// adds new ones (due at once, spread, when running) and drops removed ones (a result
    /// of theirs still in flight is then ignored).
    pub fn configure(&mut self, now: Instant, config: &Config) {
        self.advisors = config.health.advisors.clone();
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut ports: BTreeMap<(IpAddr, u16), PortState> = BTreeMap::new();
        for (caddr, cluster) in &config.clusters {
            for (pnum, port) in &cluster.ports {
                let ps = ports.entry((*caddr, *pnum)).or_default();
                ps.servers = port.servers.iter().map(|(a, s)| (*a, s.down)).collect();
            }
        }
        for (key, adv) in &config.health.advisors {
            let settings = Settings {
                interval: secs(adv.interval),
                connect: secs(adv.connecttimeout),
                receive: secs(adv.receivetimeout),
                retries: adv.retries,
                timeout: adv.timeout.map(secs),
            };
            for (caddr, cluster) in &config.clusters {
                match key.cluster {
                    Some(c) if c != *caddr => continue,
                    None => {
                        let specific = AdvisorKey {
                            cluster: Some(*caddr),
                            ..key.clone()
                        };
                        if config.health.advisors.contains_key(&specific) {
                            continue;
                        }
                    }
                    _ => {}
                }
                let Some(port) = cluster.ports.get(&key.port) else {
                    continue;
                };
                for (saddr, server) in &port.servers {
                    let pnum = match (&key.kind, port.method) {
                        (AdvisorKind::Ping, _) => 0,
                        (_, Method::Nat) => server.mapport.unwrap_or(key.port),
                        (_, Method::Mac) => key.port,
                    };
                    wanted.push((
                        TargetKey {
                            advisor: key.clone(),
                            cluster: *caddr,
                            server: *saddr,
                        },
                        settings,
                        SocketAddr::new(*saddr, pnum),
                        server.advisorrequest.clone(),
                        server.advisorresponse.clone(),
                    ));
                }
            }
        }
        // Drop targets no longer wanted.
        let keep: std::collections::HashSet<&TargetKey> = wanted.iter().map(|w| &w.0).collect();
        let gone: Vec<usize> = self
            .by_key
            .iter()
            .filter(|(k, _)| !keep.contains(k))
            .map(|(_, s)| *s)
            .collect();
        for slot in gone {
            self.remove(slot);
            self.generation += 1;
        }
        // Update kept ones, add new ones.
        let mut new_slots = Vec::new();
        for (key, settings, address, request, response) in wanted {
            if let Some(&slot) = self.by_key.get(&key) {
                let t = self.targets[slot].as_mut().expect("indexed slot");
                t.settings = settings;
                t.address = address;
                t.request = request;
                t.response = response;
                // A shorter interval takes effect at once.
                let soonest = now + settings.interval;
                if t.in_flight.is_none() && t.timer.is_some_and(|at| at > soonest) {
                    self.set_timer(slot, Some(soonest));
                }
                continue;
            }
            let target = Target {
                key: key.clone(),
                settings,
                address,
                request,
                response,
                health: TargetHealth::unknown(),
                timer: None,
                in_flight: None,
            };
            let slot = match self.free.pop() {
                Some(s) => {
                    self.targets[s] = Some(target);
                    s
                }
                None => {
                    self.targets.push(Some(target));
                    self.targets.len() - 1
                }
            };
            self.by_key.insert(key.clone(), slot);
            self.by_server
                .entry((key.cluster, key.port(), key.server))
                .or_default()
                .push(slot);
            new_slots.push(slot);
            self.generation += 1;
        }
        if self.running {
            self.spread(now, &new_slots);
        }
        // Port bookkeeping: keep each port's alert state.
        for (k, ps) in ports.iter_mut() {
            if let Some(old) = self.ports.get(k) {
                ps.alerted = old.alerted;
            }
        }
        self.ports = ports;
        let keys: Vec<(IpAddr, u16)> = self.ports.keys().copied().collect();
        for (c, p) in keys {
            self.reconcile_port(c, p);
        }
    }

    /// Probes run only while running (the node forwards). Starting makes every target due
    /// at once (spread); stopping forgets the probes in flight (their results are ignored)
    /// and keeps the states.
    pub fn set_running(&mut self, now: Instant, running: bool) {
        if running == self.running {
            return;
        }
        self.running = running;
        self.timers.clear();
        self.in_flight.clear();
        for t in self.targets.iter_mut().flatten() {
            t.timer = None;
            t.in_flight = None;
        }
        if running {
            let slots: Vec<usize> = self
                .by_key
                .values()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.spread(now, &slots);
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Installs the partner's last known states (up or down) for the targets this node has
    /// (call after [`Scheduler::configure`]); others are ignored (counted). Raises no event.
    pub fn seed(&mut self, now: Instant, states: &[TargetState]) {
        for st in states {
            let Some(&slot) = self.by_key.get(&st.key) else {
                self.stats.seed_unknown += 1;
                continue;
            };
            let t = self.targets[slot].as_mut().expect("indexed slot");
            if st.state == State::Unknown {
                continue;
            }
            if t.health.state != st.state {
                t.health.since = Some(now);
            }
            t.health.state = st.state;
            t.health.load = if st.state == State::Up { st.load } else { None };
            t.health.failures = st.failures;
            t.health.updated = Some(now);
            self.stats.seeded += 1;
            self.generation += 1;
        }
        let keys: Vec<(IpAddr, u16)> = self.ports.keys().copied().collect();
        for (c, p) in keys {
            let all = self.port_all_down(c, p);
            if let Some(ps) = self.ports.get_mut(&(c, p)) {
                ps.alerted = all;
            }
        }
    }

    /// The known (up or down) states of every target, for the partner.
    pub fn export(&self) -> Vec<TargetState> {
        let mut out: Vec<TargetState> = self
            .targets
            .iter()
            .flatten()
            .filter(|t| t.health.state != State::Unknown)
            .map(|t| TargetState {
                key: t.key.clone(),
                state: t.health.state,
                load: t.health.load,
                failures: t.health.failures,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.truncate(MAX_EXPORTED_TARGETS);
        out
    }

    /// The next probe due at `now`, if any (none while not running).
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        loop {
            let &(at, slot) = self.timers.first()?;
            if at > now {
                return None;
            }
            self.timers.pop_first();
            let t = self.targets[slot].as_mut().expect("timer of a live target");
            t.timer = None;
            if let Some((id, _)) = t.in_flight {
                let after = t.settings.lost_after();
                self.in_flight.remove(&id);
                self.stats.lost_probes += 1;
                let reason = format!("no result within {:.3}s", after.as_secs_f64());
                self.apply(now, slot, Outcome::Down { reason });
                continue;
            }
            let id = ProbeId(self.next_id);
            self.next_id += 1;
            t.in_flight = Some((id, now));
            let deadline = now + t.settings.lost_after();
            let probe = Probe {
                id,
                kind: t.key.advisor.kind.clone(),
                cluster: t.key.cluster,
                port: t.key.port(),
                server: t.key.server,
                address: t.address,
                connecttimeout: t.settings.connect,
                receivetimeout: t.settings.receive,
                request: t.request.clone(),
                response: t.response.clone(),
                custom: match &t.key.advisor.kind {
                    AdvisorKind::Custom(n) => Some(n.clone()),
                    _ => None,
                },
            };
            self.in_flight.insert(id, slot);
            self.set_timer(slot, Some(deadline));
            self.stats.probes += 1;
            return Some(probe);
        }
    }

    /// The result of probe `id`. A result for an unknown or stale id (the target was
    /// removed, the scheduler stopped, the probe was already failed as lost) is ignored and
    /// counted.
    pub fn handle_result(&mut self, now: Instant, id: ProbeId, outcome: Outcome) {
        let Some(slot) = self.in_flight.remove(&id) else {
            self.stats.stale_results += 1;
            return;
        };
        self.stats.results += 1;
        self.apply(now, slot, outcome);
    }

    /// When [`Scheduler::poll_probe`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The next script to run.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Goes up whenever a target's state (up, down, unknown) changes, a target is added or
    /// removed, or states are seeded: the health loop recomputes the weights when it moved.
    /// (Loads change with every result and do not move it; the manager samples them.)
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Targets and probes in flight (for tests and status).
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// One advisor's view of one server.
    pub fn target(&self, key: &TargetKey) -> Option<&TargetHealth> {
        let slot = *self.by_key.get(key)?;
        self.targets[slot].as_ref().map(|t| &t.health)
    }

    /// Every advisor's view of one server combined at `now`; `None` if no advisor watches it.
    pub fn health(
        &self,
        now: Instant,
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    ) -> Option<ServerHealth> {
        let slots = self.by_server.get(&(cluster, port, server))?;
        let mut h = ServerHealth {
            state: State::Unknown,
            port_load: None,
            system_load: None,
            reason: None,
        };
        for t in slots.iter().filter_map(|s| self.targets[*s].as_ref()) {
            let st = t.health.state_at(now, t.settings.timeout);
            match st {
                State::Down => {
                    if h.state != State::Down {
                        h.reason = Some(format!(
                            "{}: {}",
                            t.key.advisor.kind.keyword(),
                            t.health.last_error.as_deref().unwrap_or("down")
                        ));
                    }
                    h.state = State::Down;
                }
                State::Up if h.state == State::Unknown => h.state = State::Up,
                _ => {}
            }
            if let Some(load) = t.health.load_at(now, t.settings.timeout) {
                let slot = match t.key.advisor.kind {
                    AdvisorKind::Custom(_) => &mut h.system_load,
                    _ => &mut h.port_load,
                };
                *slot = Some(slot.map_or(load, |l| l.max(load)));
            }
        }
        Some(h)
    }

    /// Whether the advisors say the server is down.
    pub fn is_down(&self, cluster: IpAddr, port: u16, server: IpAddr) -> bool {
        self.advisor_down(cluster, port, server)
    }

    /// Whether every server of the port is down (by advisors or the operator).
    pub fn port_all_down(&self, cluster: IpAddr, port: u16) -> bool {
        let Some(ps) = self.ports.get(&(cluster, port)) else {
            return false;
        };
        !ps.servers.is_empty()
            && ps
                .servers
                .iter()
                .all(|(s, op)| *op || self.advisor_down(cluster, port, *s))
    }

    fn advisor_down(&self, cluster: IpAddr, port: u16, server: IpAddr) -> bool {
        self.by_server
            .get(&(cluster, port, server))
            .is_some_and(|slots| {
                slots.iter().any(|s| {
                    self.targets[*s]
                        .as_ref()
                        .is_some_and(|t| t.health.state == State::Down)
                })
            })
    }

    fn operator_down(&self, cluster: IpAddr, port: u16, server: IpAddr) -> bool {
        self.ports
            .get(&(cluster, port))
            .and_then(|p| p.servers.get(&server))
            .copied()
            .unwrap_or(false)
    }

    fn effective_down(&self, cluster: IpAddr, port: u16, server: IpAddr) -> bool {
        self.operator_down(cluster, port, server) || self.advisor_down(cluster, port, server)
    }

    /// Applies a result to the target in `slot`, schedules its next probe, raises events.
    fn apply(&mut self, now: Instant, slot: usize, outcome: Outcome) {
        let t = self.targets[slot].as_ref().expect("live target");
        let (cluster, port, server) = (t.key.cluster, t.key.port(), t.key.server);
        let was_down = self.effective_down(cluster, port, server);
        let t = self.targets[slot].as_mut().expect("live target");
        let started = t.in_flight.take().map_or(now, |(_, s)| s);
        let advisor = t.key.advisor.kind.clone();
        let h = &mut t.health;
        let state_before = h.state;
        h.updated = Some(now);
        let mut reason_out = None;
        match outcome {
            Outcome::Up { load } => {
                if h.state != State::Up {
                    h.since = Some(now);
                }
                h.state = State::Up;
                h.load = load;
                h.failures = 0;
                h.last_error = None;
            }
            Outcome::Down { mut reason } => {
                if reason.len() > MAX_REASON {
                    let mut cut = MAX_REASON;
                    while !reason.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    reason.truncate(cut);
                }
                h.failures = h.failures.saturating_add(1);
                if h.failures > t.settings.retries {
                    if h.state != State::Down {
                        h.since = Some(now);
                    }
                    h.state = State::Down;
                    h.load = None;
                }
                reason_out = Some(reason.clone());
                h.last_error = Some(reason);
            }
        }
        if h.state != state_before {
            self.generation += 1;
        }
        let next = (started + t.settings.interval).max(now);
        if self.running {
            self.set_timer(slot, Some(next));
        } else {
            self.set_timer(slot, None);
        }
        let now_down = self.effective_down(cluster, port, server);
        if was_down == now_down || !self.running {
            self.reconcile_port(cluster, port);
            return;
        }
        let all_down = self.port_all_down(cluster, port);
        let alerted = self.ports.get(&(cluster, port)).is_some_and(|p| p.alerted);
        if now_down {
            if all_down && !alerted {
                self.set_alerted(cluster, port, true);
            } else {
                self.push(Event::ServerDown {
                    cluster,
                    port,
                    server,
                    advisor,
                    reason: reason_out.unwrap_or_default(),
                });
            }
        } else if alerted {
            self.set_alerted(cluster, port, false);
        } else {
            self.push(Event::ServerUp {
                cluster,
                port,
                server,
                advisor,
            });
        }
        self.reconcile_port(cluster, port);
    }

    /// Raises managerAlert / managerClear when the port's all-down state and its alert
    /// disagree (after operator changes); silently while not running.
    fn reconcile_port(&mut self, cluster: IpAddr, port: u16) {
        let all = self.port_all_down(cluster, port);
        let Some(ps) = self.ports.get_mut(&(cluster, port)) else {
            return;
        };
        if ps.alerted == all {
            return;
        }
        if self.running {
            self.set_alerted(cluster, port, all);
        } else {
            ps.alerted = all;
        }
    }

    fn set_alerted(&mut self, cluster: IpAddr, port: u16, alerted: bool) {
        if let Some(ps) = self.ports.get_mut(&(cluster, port)) {
            ps.alerted = alerted;
        }
        self.push(if alerted {
            Event::ManagerAlert { cluster, port }
        } else {
            Event::ManagerClear { cluster, port }
        });
    }

    fn push(&mut self, e: Event) {
        if self.events.len() >= EVENT_QUEUE_LIMIT {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    fn set_timer(&mut self, slot: usize, at: Option<Instant>) {
        let t = self.targets[slot].as_mut().expect("live target");
        if let Some(old) = t.timer.take() {
            self.timers.remove(&(old, slot));
        }
        if let Some(at) = at {
            t.timer = Some(at);
            self.timers.insert((at, slot));
        }
    }

    /// Makes `slots` due from `now` on, one every FIRST_PROBE_GAP, within one interval.
    fn spread(&mut self, now: Instant, slots: &[usize]) {
        let n = slots.len().max(1) as u32;
        for (k, &slot) in slots.iter().enumerate() {
            let k = k as u32;
            let interval = self.targets[slot].as_ref().expect("live").settings.interval;
            let offset = (FIRST_PROBE_GAP * k).min(interval / n * k);
            self.set_timer(slot, Some(now + offset));
        }
    }

    fn remove(&mut self, slot: usize) {
        self.set_timer(slot, None);
        let Some(t) = self.targets[slot].take() else {
            return;
        };
        if let Some((id, _)) = t.in_flight {
            self.in_flight.remove(&id);
        }
        self.by_key.remove(&t.key);
        let sk = (t.key.cluster, t.key.port(), t.key.server);
        if let Some(v) = self.by_server.get_mut(&sk) {
            v.retain(|s| *s != slot);
            if v.is_empty() {
                self.by_server.remove(&sk);
            }
        }
        self.free.push(slot);
    }

    /// The advisors' settings as `advisor list` shows them.
    pub fn list(&self) -> AdvisorList {
        report::list(&self.advisors)
    }

    /// `advisor report|status NAME TARGET`; `None` if that advisor is not started.
    pub fn report(&self, now: Instant, key: &AdvisorKey) -> Option<AdvisorReport> {
        let adv = self.advisors.get(key)?;
        let timeout = adv.timeout.map(secs);
        let mut servers: Vec<ServerReport> = self
            .by_key
            .iter()
            .filter(|(k, _)| k.advisor == *key)
            .filter_map(|(k, s)| {
                let t = self.targets[*s].as_ref()?;
                Some(ServerReport {
                    cluster: k.cluster,
                    port: k.port(),
                    server: k.server,
                    state: t.health.state_at(now, timeout),
                    load: t.health.load_at(now, timeout),
                    failures: t.health.failures,
                    last_error: t.health.last_error.clone(),
                })
            })
            .collect();
        servers.sort_by_key(|s| (s.cluster, s.port, s.server));
        Some(AdvisorReport {
            name: key.kind.keyword().to_string(),
            cluster: key.cluster,
            port: key.port,
            running: self.running,
            servers,
        })
    }
}
