//! Mutual high availability (role `both`): two HA instances multiplexed on one partner channel.
//!
//! Each node is Active for its own clusters and Standby for the partner's. Tandem builds
//! that from what exists: the clusters are split into two **groups** by their `primaryhost`
//! (an nfa), and each group is an ordinary primary/backup pair, an HA instance with its own
//! [`super::Node`] (machine, replication sender and receiver). On each node the instance of its
//! own group runs as `primary` and the other as `backup`, with the configured recovery
//! strategy, so failover, failback, `takeover` and replication work per group as they do for
//! one pair. Instance 0 is the group whose primaryhost is the numerically lower nfa, instance 1
//! the other: both nodes compute the same. Heartbeats and replication frames carry the
//! instance (heartbeat offset 65, frame offset 7; 0 outside mutual HA, where those bytes were
//! reserved zero), and the receiver routes by it ([`super::datagram::instance_of`]).
//!
//! Nothing here depends on the address family: IPv4 and IPv6 nfas and clusters are grouped
//! the same way (the data plane forwards IPv4 only for now; see `docs/mutual-ha.md`).

use super::machine::HaSettings;
use crate::config::{Config, RepStrategy, Role};
use serde::Serialize;
use std::net::IpAddr;

/// One cluster group of mutual HA: the clusters of one primaryhost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// 0 or 1 (see the module documentation).
    pub instance: u8,
    /// The nfa of the node that forwards this group normally.
    pub primaryhost: IpAddr,
    /// Whether the primaryhost is this node (its instance runs as `primary` here).
    pub local: bool,
    /// The group's clusters, in address order.
    pub clusters: Vec<IpAddr>,
}

/// The two groups of a mutual-HA configuration, by instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Groups {
    pub groups: [Group; 2],
}

impl Groups {
    /// The groups of `cfg`: `Ok(None)` unless the role is `both`; an error naming what is
    /// missing when a role-`both` configuration cannot run:
    /// * `executor set nfa` is set, and a heartbeat pair goes from the nfa to the partner's
    ///   nfa (IBM: "at least one heartbeat pair must use the NFAs"), a different address;
    /// * there are at least two clusters, and each names a primaryhost that is one of the two
    ///   nfas.
    pub fn from_config(cfg: &Config) -> Result<Option<Groups>, String> {
        if cfg.ha.backup.is_none_or(|b| b.role != Role::Both) {
            return Ok(None);
        }
        let nfa = cfg.executor.nfa.ok_or(
            "role both (mutual high availability) needs this node's nfa: executor set nfa ADDRESS",
        )?;
        let partner = cfg
            .ha
            .heartbeats
            .iter()
            .find(|(src, _)| *src == nfa)
            .map(|&(_, dst)| dst)
            .ok_or(format!(
                "role both (mutual high availability) needs a heartbeat pair between the two nodes' \
                 nfas: highavailability heartbeat add {nfa} PARTNER_NFA"
            ))?;
        if cfg.clusters.len() < 2 {
            return Err(format!(
                "role both (mutual high availability) needs at least two clusters, each with a \
                 primaryhost ({} configured)",
                cfg.clusters.len()
            ));
        }
        let (low, high) = if nfa < partner {
            (nfa, partner)
        } else {
            (partner, nfa)
        };
        let mut groups = [low, high].map(|primaryhost| Group {
            instance: u8::from(primaryhost == high),
            primaryhost,
            local: primaryhost == nfa,
            clusters: Vec::new(),
        });
        for (&c, cluster) in &cfg.clusters {
            match cluster.primaryhost {
                Some(p) if p == low => groups[0].clusters.push(c),
                Some(p) if p == high => groups[1].clusters.push(c),
                Some(p) => {
                    return Err(format!(
                        "cluster {c}: primaryhost {p} is neither this node's nfa {nfa} nor the \
                         partner's {partner} (the destination of the nfa's heartbeat pair)"
                    ));
                }
                None => {
                    return Err(format!(
                        "cluster {c} has no primaryhost: with role both every cluster names the \
                         node that forwards it (cluster set {c} primaryhost {nfa}|{partner})"
                    ));
                }
            }
        }
        Ok(Some(Groups { groups }))
    }

    /// The instance of cluster `c` (`None`: not a cluster of either group).
    pub fn instance_of_cluster(&self, c: IpAddr) -> Option<u8> {
        self.groups
            .iter()
            .find(|g| g.clusters.contains(&c))
            .map(|g| g.instance)
    }

    /// The group of a primaryhost.
    pub fn by_primaryhost(&self, primaryhost: IpAddr) -> Option<&Group> {
        self.groups.iter().find(|g| g.primaryhost == primaryhost)
    }

    pub fn group(&self, instance: u8) -> &Group {
        &self.groups[usize::from(instance.min(1))]
    }

    /// The settings of one instance: `base` (the configuration's) with role `primary` on the
    /// group's primaryhost and `backup` on the other node, and replication on when a port of
    /// the group's clusters replicates.
    pub fn settings(&self, cfg: &Config, base: &HaSettings, instance: u8) -> HaSettings {
        let group = self.group(instance);
        let mut s = base.clone();
        if let Some(b) = &mut s.backup {
            b.role = if group.local {
                Role::Primary
            } else {
                Role::Backup
            };
        }
        s.replication = group
            .clusters
            .iter()
            .filter_map(|c| cfg.clusters.get(c))
            .flat_map(|c| c.ports.values())
            .any(|p| p.repstrategy != RepStrategy::None);
        s
    }
}

/// Warnings about `primaryhost` in a configuration that is not mutual: the option only
/// matters with role `both` (accepted so that IBM files load, and reported, never ignored
/// silently).
pub fn warnings(cfg: &Config) -> Vec<String> {
    if cfg.ha.backup.is_some_and(|b| b.role == Role::Both) {
        return Vec::new();
    }
    let named: Vec<String> = cfg
        .clusters
        .values()
        .filter(|c| c.primaryhost.is_some())
        .map(|c| c.address.to_string())
        .collect();
    if named.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "cluster {} names a primaryhost, which is used only with role both (mutual high \
         availability): this node forwards every cluster while Active",
        named.join(", ")
    )]
}
