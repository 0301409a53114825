//! The manager: weights that follow the servers' load (`manager start`, IBM's manager).
//!
//! Sans-IO. Every `manager interval` the health loop samples each server's connection
//! counters ([`samples`]) and calls [`Manager::handle_timeout`] with them and the advisors'
//! view; the manager computes a weight per server and makes it visible in
//! [`Manager::weights`] when the port's weights moved by more than `sensitivity` percent.
//! The weights reach the data plane through [`crate::health::Overlay::compute`].
//!
//! The computation, per port, over the servers that are up, not quiesced and not
//! `fixedweight yes` (docs/manager.md works an example through):
//! 1. inputs: active connections, new connections since the last interval, the port load
//!    (a protocol advisor's response time) and the system load (a custom advisor's value);
//! 2. each input is scored per server as `(lowest + 1) / (value + 1)`: 1 for the least
//!    loaded, about 1/2 for a server with twice its load (a server without a value gets the
//!    mean of the others; an input no server has is left out);
//! 3. the scores are combined with the cluster's proportions:
//!    `score = Σ proportion·score / Σ proportion` over the inputs present;
//! 4. scaled: `target = 1 + (weightbound − 1)·score`, within `[1, weightbound]`;
//! 5. damped: `weight = weight + (target − weight) / smoothing` (kept unrounded between
//!    intervals);
//! 6. pushed, rounded, only when `Σ |rounded − pushed| > sensitivity% · Σ pushed` over the
//!    port's computed servers (IBM: a total of 100 becoming 105 is not pushed at 5 %, 106 is).

mod report;
#[cfg(test)]
mod tests;

pub use report::{ManagerReport, PortReport, ServerReport};

use crate::config::{Config, Proportions};
use crate::forward::CounterRegistry;
use crate::health::{AdvisorInput, ServerId};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One server's connection counters at a manager interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSample {
    pub id: ServerId,
    /// Open connections now.
    pub active: u64,
    /// Connections ever assigned (cumulative): new = total − the previous total.
    pub total: u64,
}

/// The samples of every configured server, read from the engine's counters.
pub fn samples(config: &Config, counters: &CounterRegistry) -> Vec<ServerSample> {
    let mut out = Vec::new();
    for (caddr, cluster) in &config.clusters {
        for (pnum, port) in &cluster.ports {
            for saddr in port.servers.keys() {
                if let Some(c) = counters.lookup(*caddr, *pnum, *saddr) {
                    let v = c.read();
                    out.push(ServerSample {
                        id: ServerId {
                            cluster: *caddr,
                            port: *pnum,
                            server: *saddr,
                        },
                        active: v.active,
                        total: v.total,
                    });
                }
            }
        }
    }
    out
}

/// What the manager knows of one server.
#[derive(Debug, Clone)]
struct ServerState {
    /// The damped weight, unrounded.
    current: f64,
    /// The weight last pushed.
    pushed: u32,
    /// `total` at the previous interval.
    last_total: Option<u64>,
    fixed: bool,
    /// `server down` or `manager quiesce`: not computed.
    excluded: bool,
    // The inputs of the last interval.
    active: u64,
    new: u64,
    port_load: Option<u32>,
    system_load: Option<u32>,
    advisor_down: bool,
}

#[derive(Debug, Clone)]
struct PortState {
    weightbound: u32,
    proportions: Proportions,
    servers: BTreeMap<IpAddr, ServerState>,
}

/// The manager's state machine.
#[derive(Debug, Clone)]
pub struct Manager {
    running: bool,
    interval: Duration,
    sensitivity: u32,
    smoothing: f64,
    /// When the next computation is due.
    next: Option<Instant>,
    ports: BTreeMap<(IpAddr, u16), PortState>,
    /// The pushed weights of the computed (not fixed) servers.
    weights: BTreeMap<ServerId, u32>,
    warnings: Vec<String>,
}

impl Default for Manager {
    fn default() -> Self {
        Manager::new()
    }
}

fn interval_of(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds)
        .unwrap_or(Duration::from_secs(2))
        .max(Duration::from_millis(10))
}

impl Manager {
    /// A stopped manager.
    pub fn new() -> Manager {
        Manager {
            running: false,
            interval: Duration::from_secs(2),
            sensitivity: 5,
            smoothing: 1.5,
            next: None,
            ports: BTreeMap::new(),
            weights: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Follows a configuration change: `manager start|stop|interval|sensitivity|smoothing`,
    /// proportions, servers added or removed, `fixedweight`, `server down`, quiesce. A start
    /// begins from the configured weights and computes at once (`now`); a stop forgets
    /// everything.
    pub fn configure(&mut self, config: &Config, now: Instant) {
        let m = &config.health.manager;
        if !m.running {
            *self = Manager::new();
            return;
        }
        if !self.running {
            self.running = true;
            self.ports.clear();
            self.next = Some(now);
        }
        self.interval = interval_of(m.interval);
        self.sensitivity = m.sensitivity;
        self.smoothing = if m.smoothing.is_finite() {
            m.smoothing.max(1.0)
        } else {
            1.0
        };
        if let Some(next) = self.next
            && next > now + self.interval
        {
            self.next = Some(now + self.interval);
        }
        let mut ports = BTreeMap::new();
        for (caddr, cluster) in &config.clusters {
            for (pnum, port) in &cluster.ports {
                let mut old = self.ports.remove(&(*caddr, *pnum));
                let mut servers = BTreeMap::new();
                for (saddr, server) in &port.servers {
                    let configured = server.weight.min(port.weightbound);
                    let mut st = old
                        .as_mut()
                        .and_then(|o| o.servers.remove(saddr))
                        .unwrap_or(ServerState {
                            current: f64::from(configured),
                            pushed: configured,
                            last_total: None,
                            fixed: false,
                            excluded: false,
                            active: 0,
                            new: 0,
                            port_load: None,
                            system_load: None,
                            advisor_down: false,
                        });
                    st.fixed = server.fixedweight;
                    st.excluded = server.down || server.quiesced;
                    if st.fixed {
                        st.current = f64::from(configured);
                        st.pushed = configured;
                    }
                    st.current = st.current.min(f64::from(port.weightbound));
                    st.pushed = st.pushed.min(port.weightbound);
                    servers.insert(*saddr, st);
                }
                ports.insert(
                    (*caddr, *pnum),
                    PortState {
                        weightbound: port.weightbound,
                        proportions: cluster.proportions,
                        servers,
                    },
                );
            }
        }
        self.ports = ports;
        self.rebuild_weights();
    }

    fn rebuild_weights(&mut self) {
        self.weights.clear();
        for ((cluster, port), p) in &self.ports {
            for (server, st) in &p.servers {
                if !st.fixed {
                    self.weights.insert(
                        ServerId {
                            cluster: *cluster,
                            port: *port,
                            server: *server,
                        },
                        st.pushed,
                    );
                }
            }
        }
    }

    /// Whether `manager start` is in force.
    pub fn running(&self) -> bool {
        self.running
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` while stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next.filter(|_| self.running)
    }

    /// The pushed weights of the servers the manager computes (not the `fixedweight yes`
    /// ones): what [`crate::health::Overlay::compute`] takes.
    pub fn weights(&self) -> &BTreeMap<ServerId, u32> {
        &self.weights
    }

    /// Status warnings (for example a proportion given to an input that nothing reports).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// One manager interval: takes the counters and the advisors' view and computes the
    /// weights. Does nothing before [`poll_timeout`](Self::poll_timeout) or while stopped.
    /// Returns whether [`weights`](Self::weights) changed.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        samples: &[ServerSample],
        advisor: &BTreeMap<ServerId, AdvisorInput>,
    ) -> bool {
        match self.next {
            Some(next) if self.running && now >= next => {}
            _ => return false,
        }
        self.next = Some(now + self.interval);
        let by_id: HashMap<ServerId, &ServerSample> = samples.iter().map(|s| (s.id, s)).collect();
        let mut changed = false;
        let mut missing: BTreeMap<IpAddr, (bool, bool, Proportions)> = BTreeMap::new();
        for ((cluster, port), p) in &mut self.ports {
            for (server, st) in &mut p.servers {
                let id = ServerId {
                    cluster: *cluster,
                    port: *port,
                    server: *server,
                };
                if let Some(s) = by_id.get(&id) {
                    st.active = s.active;
                    st.new = match st.last_total {
                        Some(prev) if s.total >= prev => s.total - prev,
                        // The counters started again (the server was re-added).
                        Some(_) => s.total,
                        None => 0,
                    };
                    st.last_total = Some(s.total);
                } else {
                    st.active = 0;
                    st.new = 0;
                }
                let a = advisor.get(&id).copied().unwrap_or_default();
                st.port_load = a.load;
                st.system_load = a.system;
                st.advisor_down = a.down;
            }
            changed |= compute_port(p, self.smoothing, self.sensitivity);
            let computed = p.servers.values().filter(|s| s.computed());
            let (mut has_port, mut has_system) = (false, false);
            for s in computed {
                has_port |= s.port_load.is_some();
                has_system |= s.system_load.is_some();
            }
            let e = missing
                .entry(*cluster)
                .or_insert((false, false, p.proportions));
            e.0 |= has_port;
            e.1 |= has_system;
        }
        self.warnings.clear();
        for (cluster, (has_port, has_system, prop)) in missing {
            if prop.port > 0 && !has_port {
                self.warnings.push(format!(
                    "cluster {cluster}: proportions give the port load {}% but no advisor \
                     reports one; it is left out",
                    prop.port
                ));
            }
            if prop.system > 0 && !has_system {
                self.warnings.push(format!(
                    "cluster {cluster}: proportions give the system load {}% but no ADV_ \
                     advisor reports one; it is left out",
                    prop.system
                ));
            }
        }
        if changed {
            self.rebuild_weights();
        }
        changed
    }
}

impl ServerState {
    /// Whether the manager computes this server's weight this interval.
    fn computed(&self) -> bool {
        !self.fixed && !self.excluded && !self.advisor_down
    }
}

/// Scores of one input over the computed servers: `(lowest + 1) / (value + 1)`, a missing
/// value counting as the mean of the present ones; `None` when no server has a value.
fn scores(values: &[Option<f64>]) -> Option<Vec<f64>> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let filled: Vec<f64> = values.iter().map(|v| v.unwrap_or(mean)).collect();
    let lowest = filled.iter().copied().fold(f64::INFINITY, f64::min);
    Some(filled.iter().map(|v| (lowest + 1.0) / (v + 1.0)).collect())
}

/// One interval of one port. Returns whether its pushed weights changed.
fn compute_port(p: &mut PortState, smoothing: f64, sensitivity: u32) -> bool {
    let wb = p.weightbound.max(1);
    let mut members: Vec<&mut ServerState> =
        p.servers.values_mut().filter(|s| s.computed()).collect();
    if members.is_empty() {
        return false;
    }
    let prop = p.proportions;
    let inputs: [(u32, Option<Vec<f64>>); 4] = [
        (
            prop.active,
            scores(
                &members
                    .iter()
                    .map(|s| Some(s.active as f64))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            prop.new,
            scores(
                &members
                    .iter()
                    .map(|s| Some(s.new as f64))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            prop.port,
            scores(
                &members
                    .iter()
                    .map(|s| s.port_load.map(f64::from))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            prop.system,
            scores(
                &members
                    .iter()
                    .map(|s| s.system_load.map(f64::from))
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    let total_prop: u32 = inputs
        .iter()
        .filter(|(_, s)| s.is_some())
        .map(|(w, _)| *w)
        .sum();
    if total_prop == 0 {
        return false;
    }
    let mut proposed = Vec::with_capacity(members.len());
    for (i, st) in members.iter_mut().enumerate() {
        let score: f64 = inputs
            .iter()
            .filter_map(|(w, s)| s.as_ref().map(|s| f64::from(*w) * s[i]))
            .sum::<f64>()
            / f64::from(total_prop);
        let target = 1.0 + f64::from(wb - 1) * score;
        st.current += (target - st.current) / smoothing;
        st.current = st.current.clamp(1.0, f64::from(wb));
        proposed.push((st.current.round() as u32).clamp(1, wb));
    }
    let old_total: u64 = members.iter().map(|s| u64::from(s.pushed)).sum();
    let moved: u64 = members
        .iter()
        .zip(&proposed)
        .map(|(s, w)| u64::from(s.pushed.abs_diff(*w)))
        .sum();
    let push = if old_total == 0 {
        moved > 0
    } else {
        moved * 100 > u64::from(sensitivity) * old_total
    };
    if !push {
        return false;
    }
    for (st, w) in members.iter_mut().zip(proposed) {
        st.pushed = w;
    }
    true
}
