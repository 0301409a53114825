//! The two-tier lab (issue 8, Build 6; docs/two-tier.md): a first-tier Tandem pair in NAT
//! mode whose servers are the cluster addresses of two second-tier Tandems in MAC mode, in
//! front of the real servers; tier 1 takes its weights over SASP from `tandem-gwm`.
//!
//! ```text
//!  client 192.0.2.10
//!    │ 192.0.2.100:80
//!  t1a 192.0.2.2 ═ t1b 192.0.2.3      tier 1, HA pair, NAT: servers 192.0.2.101 and .102,
//!    │                               mapport 80, returnaddress 192.0.2.200; SASP from gwm
//!    ├── 192.0.2.101:80 ── t2a 192.0.2.4   tier 2, stand-alone, MAC
//!    └── 192.0.2.102:80 ── t2b 192.0.2.5   tier 2, stand-alone, MAC
//!                    │
//!  r1..r4 192.0.2.21-24    real servers (HTTP, names r1..r4), 192.0.2.101 and .102 on lo
//!  gwm    192.0.2.50       tandem-gwm: members 192.0.2.101:80 and .102:80, HTTP checks
//! ```
//!
//! One subnet (192.0.2.0/24) on one bridge, so no router is involved: tier 1 sends the
//! translated packet to whichever tier-2 node answers ARP for its cluster address; tier 2
//! sends the unchanged frame to a real server's MAC; the real server answers the tier-1
//! return address directly (direct server return past tier 2), and tier 1 translates the
//! answer back to the client.

use anyhow::Result;

use crate::cluster::{CLIENT_IP, TandemNode, join_pair};
use crate::health::Service;
use crate::{Host, Lab};

/// Tier-1 cluster and NAT return address.
pub const TIER1_CLUSTER: &str = "192.0.2.100";
pub const TIER1_RETURN: &str = "192.0.2.200";
/// Tier-1 node addresses (the pair).
pub const TIER1_NODES: [&str; 2] = ["192.0.2.2", "192.0.2.3"];
/// Tier-2 node addresses and their cluster addresses (tier 1's servers).
pub const TIER2_NODES: [&str; 2] = ["192.0.2.4", "192.0.2.5"];
pub const TIER2_CLUSTERS: [&str; 2] = ["192.0.2.101", "192.0.2.102"];
/// The GWM.
pub const GWM_IP: &str = "192.0.2.50";
/// Real server `n` (1-based).
pub fn real_server_ip(n: usize) -> String {
    format!("192.0.2.{}", 20 + n)
}

/// The hosts of the two-tier lab, with the real servers' HTTP services running.
pub struct TwoTier {
    pub lab: Lab,
    pub client: Host,
    pub tier1: [Host; 2],
    pub tier2: [Host; 2],
    pub real: Vec<Host>,
    pub gwm: Host,
    pub services: Vec<Service>,
}

impl TwoTier {
    /// Builds the hosts and starts HTTP on port 80 of `real` real servers (names `r1..`).
    pub fn new(tag: &str, real: usize) -> Result<TwoTier> {
        let lab = Lab::new(tag)?;
        let client = lab.add_host("client", &[&format!("{CLIENT_IP}/24")])?;
        let t1a = lab.add_host("t1a", &[&format!("{}/24", TIER1_NODES[0])])?;
        let t1b = lab.add_host("t1b", &[&format!("{}/24", TIER1_NODES[1])])?;
        let t2a = lab.add_host("t2a", &[&format!("{}/24", TIER2_NODES[0])])?;
        let t2b = lab.add_host("t2b", &[&format!("{}/24", TIER2_NODES[1])])?;
        let gwm = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
        let mut hosts = Vec::new();
        let mut services = Vec::new();
        for n in 1..=real {
            let h = lab.add_host(&format!("r{n}"), &[&format!("{}/24", real_server_ip(n))])?;
            for c in TIER2_CLUSTERS {
                h.add_loopback_address(c)?;
            }
            services.push(Service::http(&h, &format!("r{n}"), 80)?);
            hosts.push(h);
        }
        Ok(TwoTier {
            lab,
            client,
            tier1: [t1a, t1b],
            tier2: [t2a, t2b],
            real: hosts,
            gwm,
            services,
        })
    }

    /// Configuration of tier-1 node `i` (0 or 1): NAT port 80 over the tier-2 clusters.
    pub fn tier1_config(i: usize) -> String {
        format!(
            "executor start\nexecutor set nfa {nfa}\ncluster add {TIER1_CLUSTER}\n\
             port add {TIER1_CLUSTER}@80 method nat\n\
             server add {TIER1_CLUSTER}@80@{a}+{b} weight 10 returnaddress {TIER1_RETURN} mapport 80\n",
            nfa = TIER1_NODES[i],
            a = TIER2_CLUSTERS[0],
            b = TIER2_CLUSTERS[1],
        )
    }

    /// Configuration of tier-2 node `i`: its cluster, MAC port 80 over the real servers.
    pub fn tier2_config(&self, i: usize) -> String {
        let list = (1..=self.real.len())
            .map(real_server_ip)
            .collect::<Vec<_>>()
            .join("+");
        format!(
            "executor start\nexecutor set nfa {nfa}\ncluster add {c}\n\
             port add {c}@80 method mac\nserver add {c}@80@{list} weight 10\n",
            nfa = TIER2_NODES[i],
            c = TIER2_CLUSTERS[i],
        )
    }

    /// Starts the tier-2 nodes, then the tier-1 pair (t1a primary, t1b backup, recovery
    /// auto) and returns `(tier1, tier2)`; the pair is not waited for.
    pub fn start_tandems(&self) -> Result<([TandemNode; 2], [TandemNode; 2])> {
        let t2a = TandemNode::start(&self.lab, &self.tier2[0], &self.tier2_config(0), &[])?;
        let t2b = TandemNode::start(&self.lab, &self.tier2[1], &self.tier2_config(1), &[])?;
        let t1a = TandemNode::start(&self.lab, &self.tier1[0], &Self::tier1_config(0), &[])?;
        let t1b = TandemNode::start(&self.lab, &self.tier1[1], &Self::tier1_config(1), &[])?;
        // The seed procedure, as for the standard pair (cluster::seed_commands uses lb_ip(n),
        // which are these addresses).
        join_pair(&t1a, 1, "auto", 20001)?;
        join_pair(&t1b, 2, "auto", 20001)?;
        Ok(([t1a, t1b], [t2a, t2b]))
    }
}
