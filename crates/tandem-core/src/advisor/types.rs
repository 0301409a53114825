//! The scheduler's public types: probes, outcomes, states, targets, events, counters.

use crate::config::{AdvisorKey, AdvisorKind};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// One probe the shell should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProbeId(pub u64);

/// A probe to run (by `tandemd::health::probe::run`).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub id: ProbeId,
    pub kind: AdvisorKind,
    pub cluster: IpAddr,
    pub port: u16,
    pub server: IpAddr,
    /// Where to probe: the server and the cluster port (MAC) or its mapport (NAT); port 0
    /// for `ping`.
    pub address: SocketAddr,
    pub connecttimeout: Duration,
    pub receivetimeout: Duration,
    /// The server's `advisorrequest`.
    pub request: Option<String>,
    /// The server's `advisorresponse`.
    pub response: Option<String>,
    /// The custom advisor's executable name (`ADV_name`) for [`AdvisorKind::Custom`].
    pub custom: Option<String>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered; `load` is the response time in ms, or a custom advisor's value.
    Up { load: Option<u32> },
    /// The query failed, for `reason`.
    Down { reason: String },
}

/// An advisor's view of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Down,
    /// No result yet, or an up report older than the advisor's `timeout`.
    Unknown,
}

impl State {
    pub fn keyword(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Unknown => "unknown",
        }
    }
}

/// One target: an advisor and one server of one cluster's port (the port is the advisor's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub advisor: AdvisorKey,
    pub cluster: IpAddr,
    pub server: IpAddr,
}

impl TargetKey {
    pub fn port(&self) -> u16 {
        self.advisor.port
    }
}

/// What one advisor knows of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The state as last set by results (see [`TargetHealth::state_at`] for trust).
    pub state: State,
    /// Load of the last good query.
    pub load: Option<u32>,
    /// Failed queries in a row.
    pub failures: u32,
    /// Reason of the last failed query, cleared by a good one.
    pub last_error: Option<String>,
    /// When `state` last changed.
    pub since: Option<Instant>,
    /// When the last result came in.
    pub updated: Option<Instant>,
}

impl TargetHealth {
    pub(super) fn unknown() -> TargetHealth {
        TargetHealth {
            state: State::Unknown,
            load: None,
            failures: 0,
            last_error: None,
            since: None,
            updated: None,
        }
    }

    /// The state at `now` given the advisor's `timeout`: an up report older than it reads
    /// unknown; a down report stays down.
    pub fn state_at(&self, now: Instant, timeout: Option<Duration>) -> State {
        match (self.state, timeout, self.updated) {
            (State::Up, Some(t), Some(at)) if now.saturating_duration_since(at) > t => {
                State::Unknown
            }
            (s, _, _) => s,
        }
    }

    /// The load if the report is up and still trusted at `now`.
    pub fn load_at(&self, now: Instant, timeout: Option<Duration>) -> Option<u32> {
        match self.state_at(now, timeout) {
            State::Up => self.load,
            _ => None,
        }
    }
}

/// All advisors' view of one server (see the module rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    pub state: State,
    /// Largest trusted load of the built-in advisors (response time, ms).
    pub port_load: Option<u32>,
    /// Largest trusted load of the custom (`ADV_`) advisors.
    pub system_load: Option<u32>,
    /// Why it is down (the advisor that said so and its reason).
    pub reason: Option<String>,
}

/// A script to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ServerDown {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
        advisor: AdvisorKind,
        reason: String,
    },
    ServerUp {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
        advisor: AdvisorKind,
    },
    /// Every server of the port is down (by advisors or the operator).
    ManagerAlert { cluster: IpAddr, port: u16 },
    /// A server of the port is up again after all were down.
    ManagerClear { cluster: IpAddr, port: u16 },
}

impl Event {
    /// IBM's script name.
    pub fn script(&self) -> &'static str {
        match self {
            Event::ServerDown { .. } => "serverDown",
            Event::ServerUp { .. } => "serverUp",
            Event::ManagerAlert { .. } => "managerAlert",
            Event::ManagerClear { .. } => "managerClear",
        }
    }

    /// The script's environment: `CLUSTER`, `PORT`, and for server events `SERVER`,
    /// `ADVISOR` and (down) `REASON`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::with_capacity(5);
        let mut put = |k: &str, v: String| env.push((k.to_string(), v));
        match self {
            Event::ServerDown {
                cluster,
                port,
                server,
                advisor,
                reason,
            } => {
                put("CLUSTER", cluster.to_string());
                put("PORT", port.to_string());
                put("SERVER", server.to_string());
                put("ADVISOR", advisor.keyword().to_string());
                put("REASON", reason.clone());
            }
            Event::ServerUp {
                cluster,
                port,
                server,
                advisor,
            } => {
                put("CLUSTER", cluster.to_string());
                put("PORT", port.to_string());
                put("SERVER", server.to_string());
                put("ADVISOR", advisor.keyword().to_string());
            }
            Event::ManagerAlert { cluster, port } | Event::ManagerClear { cluster, port } => {
                put("CLUSTER", cluster.to_string());
                put("PORT", port.to_string());
            }
        }
        env
    }
}

/// Counters since the scheduler was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub probes: u64,
    pub results: u64,
    /// Results for an unknown or stale probe id (ignored).
    pub stale_results: u64,
    /// Probes failed by the scheduler because no result came in time.
    pub lost_probes: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Partner states installed by `seed`.
    pub seeded: u64,
    /// Partner states for targets this node does not have (ignored).
    pub seed_unknown: u64,
}
