//! The configuration of server health: advisors, the manager and SASP (plain data).
//!
//! Issue 8's shared contract: the grammar fills these, the advisor scheduler
//! (`crate::advisor`), the manager (`crate::manager`) and the SASP sessions (`crate::sasp`)
//! read them. Runtime state (which server is up, computed weights) is never stored here: it
//! lives in those modules and reaches the data plane as a [`crate::health::Overlay`].

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The kind of an advisor (`advisor start NAME ...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisorKind {
    /// TCP connect: up when the server accepts the connection within connecttimeout.
    Connect,
    /// HTTP request (`advisorrequest`, default `HEAD / HTTP/1.0`); up on the expected
    /// response (`advisorresponse`, a substring of the reply) or a 1xx–3xx status otherwise.
    Http,
    /// TLS handshake (rustls), then the `http` check inside it.
    Https,
    /// ICMP / ICMPv6 echo.
    Ping,
    /// A DNS query (`advisorrequest` = the name, default `.`) that must be answered.
    Dns,
    /// `ADV_name`: runs the executable `ADV_name` of the script directory; exit status 0 =
    /// up, a number on the first line of its output = the load.
    Custom(String),
}

impl AdvisorKind {
    /// The dscontrol name (`connect`, `http`, ..., `ADV_name`).
    pub fn keyword(&self) -> &str {
        match self {
            AdvisorKind::Connect => "connect",
            AdvisorKind::Http => "http",
            AdvisorKind::Https => "https",
            AdvisorKind::Ping => "ping",
            AdvisorKind::Dns => "dns",
            AdvisorKind::Custom(name) => name,
        }
    }
}

/// Which port an advisor watches: `PORT` (that port of every cluster) or `CLUSTER@PORT`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AdvisorKey {
    pub kind: AdvisorKind,
    /// `None`: the port of every cluster that has it.
    pub cluster: Option<IpAddr>,
    pub port: u16,
}

/// IBM's default advisor interval, seconds.
pub const DEFAULT_ADVISOR_INTERVAL: f64 = 7.0;

/// A started advisor and its settings (`advisor interval|connecttimeout|receivetimeout|
/// retries|timeout NAME PORT VALUE`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisor {
    /// Seconds between two queries of one server (default 7).
    pub interval: f64,
    /// Seconds a connect may take before the query fails (default: the interval).
    pub connecttimeout: f64,
    /// Seconds a reply may take once connected before the query fails (default: the
    /// interval).
    pub receivetimeout: f64,
    /// A server is marked down after `retries + 1` failed queries in a row (default 0).
    pub retries: u32,
    /// Seconds the manager trusts the last report; `None` = unlimited (default). A "down"
    /// report is used even after it timed out.
    pub timeout: Option<f64>,
}

impl Default for Advisor {
    fn default() -> Self {
        Advisor {
            interval: DEFAULT_ADVISOR_INTERVAL,
            connecttimeout: DEFAULT_ADVISOR_INTERVAL,
            receivetimeout: DEFAULT_ADVISOR_INTERVAL,
            retries: 0,
            timeout: None,
        }
    }
}

/// `manager start|stop|interval|sensitivity|smoothing`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manager {
    /// `manager start` has been run (and `stop` not since).
    pub running: bool,
    /// Seconds between two weight computations (default 2).
    pub interval: f64,
    /// Percent: new weights are pushed only when the port's total weight changed by more
    /// than this (default 5).
    pub sensitivity: u32,
    /// Damping index, ≥ 1 (default 1.5): the new weight moves 1/smoothing of the way from
    /// the old weight to the computed one.
    pub smoothing: f64,
}

impl Default for Manager {
    fn default() -> Self {
        Manager {
            running: false,
            interval: 2.0,
            sensitivity: 5,
            smoothing: 1.5,
        }
    }
}

/// `cluster set CLUSTER proportions ACTIVE NEW PORT SYSTEM`: how much each input counts in
/// the manager's weights, percentages that add up to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Proportions {
    /// Active connections (fewer is better).
    pub active: u32,
    /// New connections since the last interval (fewer is better).
    pub new: u32,
    /// The advisor's load (response time, or a custom advisor's value; lower is better).
    pub port: u32,
    /// The system metric: the load a custom (`ADV_`) advisor reports.
    pub system: u32,
}

impl Default for Proportions {
    fn default() -> Self {
        Proportions {
            active: 50,
            new: 50,
            port: 0,
            system: 0,
        }
    }
}

/// What a SASP group covers: one port of a cluster, or every port of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SaspGroupTarget {
    pub cluster: IpAddr,
    /// `None`: every port of the cluster.
    pub port: Option<u16>,
}

/// Whether the GWM pushes weights or the LB polls for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaspMode {
    /// The GWM sends weights at its interval (the rule for first-tier balancers; default).
    Push,
    /// The LB sends Get Weights at the GWM's suggested interval (or `interval`).
    Pull,
}

/// Default SASP TCP port.
pub const DEFAULT_SASP_PORT: u16 = 3860;

/// One GWM that a group takes its weights from (`sasp add GROUP gwm ADDR [options]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaspGwm {
    pub mode: SaspMode,
    /// Ask the GWM for changed members only (NOCHANGE flag) instead of all members.
    pub changed_only: bool,
    /// Pull interval in seconds overriding the GWM's suggestion; `None` = the GWM's.
    pub interval: Option<f64>,
    /// Seconds the last weights are kept after contact is lost (default 30), then the
    /// advisors and the manager steer again.
    pub grace: f64,
    /// TLS toward the GWM.
    pub tls: bool,
}

impl Default for SaspGwm {
    fn default() -> Self {
        SaspGwm {
            mode: SaspMode::Push,
            changed_only: false,
            interval: None,
            grace: 30.0,
            tls: false,
        }
    }
}

/// Address and TCP port of a GWM.
pub type GwmAddress = (IpAddr, u16);

/// The health configuration of a node: advisors, manager, SASP.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HealthConfig {
    /// Started advisors.
    pub advisors: BTreeMap<AdvisorKey, Advisor>,
    pub manager: Manager,
    /// SASP groups and the GWMs each takes weights from.
    pub sasp: BTreeMap<SaspGroupTarget, BTreeMap<GwmAddress, SaspGwm>>,
}
