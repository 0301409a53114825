//! The data of `advisor list` and `advisor report|status` (serialised as JSON by tandemd).

use super::State;
use crate::config::{Advisor, AdvisorKey};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `advisor list`: `{"advisors":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorList {
    pub advisors: Vec<AdvisorListEntry>,
}

/// One started advisor and its settings (seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorListEntry {
    pub name: String,
    pub cluster: Option<IpAddr>,
    pub port: u16,
    pub interval: f64,
    pub connecttimeout: f64,
    pub receivetimeout: f64,
    pub retries: u32,
    /// `null` = unlimited.
    pub timeout: Option<f64>,
}

/// `advisor report|status NAME TARGET`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorReport {
    pub name: String,
    pub cluster: Option<IpAddr>,
    pub port: u16,
    /// The advisor probes (the node forwards).
    pub running: bool,
    pub servers: Vec<ServerReport>,
}

/// One server as one advisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    pub cluster: IpAddr,
    pub port: u16,
    pub server: IpAddr,
    /// `up`, `down` or `unknown` (no result yet, or an up report past the advisor's timeout).
    pub state: State,
    /// The last load (ms, or the custom value) while trusted.
    pub load: Option<u32>,
    /// Failed queries in a row.
    pub failures: u32,
    pub last_error: Option<String>,
}

pub(super) fn list(advisors: &BTreeMap<AdvisorKey, Advisor>) -> AdvisorList {
    AdvisorList {
        advisors: advisors
            .iter()
            .map(|(k, a)| AdvisorListEntry {
                name: k.kind.keyword().to_string(),
                cluster: k.cluster,
                port: k.port,
                interval: a.interval,
                connecttimeout: a.connecttimeout,
                receivetimeout: a.receivetimeout,
                retries: a.retries,
                timeout: a.timeout,
            })
            .collect(),
    }
}
