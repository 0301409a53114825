//! `manager report [CLUSTER+...]`: each server's inputs and effective weight.

use super::Manager;
use crate::config::Config;
use crate::health::{Overlay, ServerId, WeightSource};
use serde::Serialize;
use std::net::IpAddr;

/// `manager report` (JSON shape of the issue-8 design).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagerReport {
    pub running: bool,
    pub ports: Vec<PortReport>,
    /// Status warnings (an input the proportions count that nothing reports).
    pub warnings: Vec<String>,
}

/// One port of a `manager report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortReport {
    pub cluster: IpAddr,
    pub port: u16,
    /// Every server is down: all got weightbound/2 and traffic is spread over all.
    pub all_down: bool,
    pub servers: Vec<ServerReport>,
}

/// One server of a `manager report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    pub server: IpAddr,
    /// The effective weight (the data plane's).
    pub weight: u32,
    /// Which rule decided it.
    pub source: WeightSource,
    /// The manager's own weight for the server (`None`: not computed, e.g. fixedweight or
    /// the manager stopped).
    pub manager_weight: Option<u32>,
    /// The inputs of the last interval.
    pub active: u64,
    pub new: u64,
    pub port_load: Option<u32>,
    pub system_load: Option<u32>,
}

impl Manager {
    /// The report of the ports of `clusters` (empty: every cluster). Weights and sources are
    /// the effective ones of `overlay`; inputs are those of the last interval.
    pub fn report(&self, config: &Config, overlay: &Overlay, clusters: &[IpAddr]) -> ManagerReport {
        let mut ports = Vec::new();
        for (caddr, cluster) in &config.clusters {
            if !clusters.is_empty() && !clusters.contains(caddr) {
                continue;
            }
            for (pnum, port) in &cluster.ports {
                let state = self.ports.get(&(*caddr, *pnum));
                let servers = port
                    .servers
                    .values()
                    .map(|server| {
                        let eff = overlay.effective(*caddr, port, server);
                        let st = state.and_then(|p| p.servers.get(&server.address));
                        let id = ServerId {
                            cluster: *caddr,
                            port: *pnum,
                            server: server.address,
                        };
                        ServerReport {
                            server: server.address,
                            weight: eff.weight,
                            source: eff.source,
                            manager_weight: self.weights.get(&id).copied(),
                            active: st.map_or(0, |s| s.active),
                            new: st.map_or(0, |s| s.new),
                            port_load: st.and_then(|s| s.port_load),
                            system_load: st.and_then(|s| s.system_load),
                        }
                    })
                    .collect();
                ports.push(PortReport {
                    cluster: *caddr,
                    port: *pnum,
                    all_down: overlay.all_down(*caddr, *pnum),
                    servers,
                });
            }
        }
        ManagerReport {
            running: self.running,
            ports,
            warnings: self.warnings.clone(),
        }
    }
}
