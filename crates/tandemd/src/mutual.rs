//! Mutual high availability in the daemon (role `both`, `docs/mutual-ha.md`): the second HA
//! instance beside `HaShell::node`, and what the shell does for both.
//!
//! The logic is `tandem_core::ha::mutual` (groups, instance settings) and the ordinary HA
//! [`Node`]: this file only keeps the two instances fed (datagrams are routed by their
//! instance byte in `HaShell::receive`, records by their cluster here), drains both into the
//! same `flush`, and answers `takeover ADDRESS` and the groups part of status.

use crate::ha::HaShell;
use anyhow::{Result, anyhow, bail};
use std::net::IpAddr;
use std::time::Instant;
use tandem_core::config::Config;
use tandem_core::ha::mutual::Groups;
use tandem_core::ha::{Event, HaSettings, Node};
use tandem_core::replication::Record;

/// The cluster a record is about.
fn record_cluster(r: &Record) -> IpAddr {
    match r {
        Record::Connection(c) => c.cluster.ip(),
        Record::Affinity(a) => a.cluster,
    }
}

/// The settings of instance 0 for a configuration (its group's role in mutual HA).
pub fn instance0_settings(groups: &Option<Groups>, cfg: &Config, base: HaSettings) -> HaSettings {
    match groups {
        Some(g) => g.settings(cfg, &base, 0),
        None => base,
    }
}

impl HaShell {
    pub fn instance(&self, instance: u8) -> &Node {
        match (&self.second, instance) {
            (Some(s), 1) => s,
            _ => &self.node,
        }
    }

    pub fn instance_mut(&mut self, instance: u8) -> &mut Node {
        match (&mut self.second, instance) {
            (Some(s), 1) => s,
            _ => &mut self.node,
        }
    }

    /// Whether any instance sends records now.
    pub fn replicating(&self) -> bool {
        self.node.replicating() || self.second.as_ref().is_some_and(|s| s.replicating())
    }

    /// The next event of either instance, with the instance.
    pub fn poll_event(&mut self) -> Option<(u8, Event)> {
        if let Some(e) = self.node.poll_event() {
            return Some((0, e));
        }
        self.second.as_mut()?.poll_event().map(|e| (1, e))
    }

    /// Whether this node forwards cluster `c` now (HA-wise): in mutual HA, iff the instance
    /// of its group forwards; else as instance 0.
    pub fn forwards(&self, c: IpAddr) -> bool {
        match &self.groups {
            Some(g) => g
                .instance_of_cluster(c)
                .is_some_and(|i| self.instance(i).machine().forwarding()),
            None => self.node.machine().forwarding(),
        }
    }

    /// Records the data plane queued, each to the instance of its cluster.
    pub fn push_records(&mut self, records: Vec<Record>) {
        let Some(groups) = &self.groups else {
            self.node.push_records(records);
            return;
        };
        let (first, second): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| groups.instance_of_cluster(record_cluster(r)) != Some(1));
        self.node.push_records(first);
        if let Some(s) = &mut self.second {
            s.push_records(second);
        }
    }

    /// Whether record snapshots of instance `instance` take cluster `c`.
    pub fn snapshot_takes(&self, instance: u8, c: IpAddr) -> bool {
        match &self.groups {
            Some(g) => g.instance_of_cluster(c) == Some(instance),
            None => true,
        }
    }

    pub fn set_key(&mut self, now: Instant, key: Option<Vec<u8>>) {
        if let Some(s) = &mut self.second {
            s.set_key(now, key.clone());
        }
        self.node.set_key(now, key);
    }

    pub fn executor_started(&mut self, now: Instant) {
        self.node.executor_started(now);
        if let Some(s) = &mut self.second {
            s.executor_started(now);
        }
    }

    pub fn executor_stopped(&mut self, now: Instant) {
        self.node.executor_stopped(now);
        if let Some(s) = &mut self.second {
            s.executor_stopped(now);
        }
    }

    /// Timers of both instances that are due.
    pub fn handle_timeouts(&mut self, now: Instant) {
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        if let Some(s) = &mut self.second
            && s.poll_timeout().is_some_and(|t| t <= now)
        {
            s.handle_timeout(now);
        }
    }

    /// After instance 0 was configured: the second instance follows the configuration
    /// (created, configured with its group's settings, or removed). `started` is whether the
    /// executor was started before this commit (a new instance starts with it).
    pub fn configure_second(
        &mut self,
        now: Instant,
        config: &Config,
        base: &HaSettings,
        groups: Option<Groups>,
        started: bool,
    ) {
        match &groups {
            Some(g) => {
                let settings = g.settings(config, base, 1);
                let new = self.second.is_none();
                let second = self.second.get_or_insert_with(|| {
                    let mut n = Node::new(
                        self.epoch,
                        crate::ha::product_version(),
                        crate::ha::random_u64() as u32,
                    );
                    n.set_instance(1);
                    n
                });
                if new {
                    // The key instance 0 signs with (read when the key command ran), never the
                    // file read again: an edited or unreadable file must not split the groups.
                    let key = self.node.keys().signing().map(<[u8]>::to_vec);
                    second.set_key(now, key);
                }
                second.configure(now, config, settings);
                if new && started {
                    second.executor_started(now);
                }
            }
            None => {
                if let Some(mut s) = self.second.take() {
                    s.executor_stopped(now);
                }
                self.second_snapshot_wanted = false;
            }
        }
        self.groups = groups;
    }

    /// `highavailability takeover [ADDRESS]`.
    pub fn takeover(&mut self, now: Instant, address: Option<IpAddr>) -> Result<String> {
        let instance = match (&self.groups, address) {
            (None, None) => 0,
            (None, Some(a)) => bail!(
                "takeover {a} refused: the address is used only with role both (mutual high \
                 availability); use 'highavailability takeover' on the Standby node"
            ),
            (Some(g), None) => bail!(
                "takeover refused: with role both, name the cluster group to take over by its \
                 primaryhost: highavailability takeover {}|{}",
                g.groups[0].primaryhost,
                g.groups[1].primaryhost
            ),
            (Some(g), Some(a)) => match g.by_primaryhost(a) {
                Some(group) => group.instance,
                None => bail!(
                    "takeover {a} refused: no cluster group has primaryhost {a} (the groups are \
                     {} and {})",
                    g.groups[0].primaryhost,
                    g.groups[1].primaryhost
                ),
            },
        };
        self.instance_mut(instance)
            .takeover(now)
            .map_err(|e| anyhow!("takeover refused: {e}"))?;
        let what = match (&self.groups, address) {
            (Some(_), Some(a)) => format!(" of the cluster group {a}"),
            _ => String::new(),
        };
        self.event(now, format!("takeover{what} requested by the operator"));
        Ok(format!(
            "takeover{what} started: the partner yields, then this node goes Active\n"
        ))
    }

    /// The groups part of `highavailability status` (mutual HA only): text and JSON.
    pub fn groups_status(&self) -> Option<(String, serde_json::Value)> {
        let groups = self.groups.as_ref()?;
        let mut text = String::from("\nCluster groups (mutual high availability):\n");
        let mut json = Vec::new();
        for g in &groups.groups {
            let m = self.instance(g.instance).machine();
            let clusters: Vec<String> = g.clusters.iter().map(|c| c.to_string()).collect();
            text.push_str(&format!(
                "  Primary host {} ({}): {} / {}, role {}, clusters {}\n",
                g.primaryhost,
                if g.local { "this node" } else { "partner" },
                m.state(),
                m.sub_state(),
                if g.local { "primary" } else { "backup" },
                if clusters.is_empty() {
                    "none".to_string()
                } else {
                    clusters.join(" ")
                },
            ));
            json.push(serde_json::json!({
                "instance": g.instance,
                "primaryhost": g.primaryhost.to_string(),
                "local": g.local,
                "role": if g.local { "primary" } else { "backup" },
                "state": m.state().to_string(),
                "sub_state": m.sub_state().to_string(),
                "forwarding": m.forwarding(),
                "clusters": clusters,
                "replicating": self.instance(g.instance).replicating(),
            }));
        }
        Some((text, serde_json::Value::Array(json)))
    }
}
