//! Running a [`Command`] against a [`Config`].

mod checks;
mod error;
mod health;
mod objects;

pub use error::ConfigError;

use super::Config;
use super::grammar::{Command, ExecutorSetting};
use super::health::{AdvisorKey, SaspGroupTarget};
use super::model::Cluster;
use checks::check_values;
use objects::{port_not_found, set_port_options};
use serde::Serialize;
use std::net::IpAddr;

/// The objects a command selected, after `@` wildcards and `+` lists are expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolved {
    /// An executor command.
    Executor,
    /// Cluster addresses.
    Clusters(Vec<IpAddr>),
    /// `(cluster, port)` pairs.
    Ports(Vec<(IpAddr, u16)>),
    /// `(cluster, port, server)` triples.
    Servers(Vec<(IpAddr, u16, IpAddr)>),
    /// A `highavailability` or `manager reach` command.
    HighAvailability,
    /// Advisors (`advisor ...`): the one named, or every started one (`advisor list`).
    Advisors(Vec<AdvisorKey>),
    /// A `manager` command (not `reach`): the clusters it covers (every cluster, or those
    /// `manager report` names).
    Manager(Vec<IpAddr>),
    /// SASP groups (`sasp ...`): the one named, or every group (`sasp report`).
    Sasp(Vec<SaspGroupTarget>),
}

/// What [`Config::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// The configuration changed; these are the objects the command added, changed or
    /// removed.
    Changed(Resolved),
    /// Nothing changed: a report / status query, or an HA action (`takeover`,
    /// `maintenance`) for the daemon to carry out. These are the objects to report on.
    Query(Resolved),
}

impl Applied {
    /// The objects the command selected.
    pub fn targets(&self) -> &Resolved {
        match self {
            Applied::Changed(r) | Applied::Query(r) => r,
        }
    }
}

/// Fails with [`ConfigError::NothingSelected`] when a changing command selected nothing.
fn non_empty<T>(
    items: Vec<T>,
    kind: &'static str,
    target: &dyn std::fmt::Display,
) -> Result<Vec<T>, ConfigError> {
    if items.is_empty() {
        Err(ConfigError::NothingSelected {
            kind,
            target: target.to_string(),
        })
    } else {
        Ok(items)
    }
}

impl Config {
    /// Runs one command.
    ///
    /// A changing command is all or nothing: if any selected object fails a rule (an
    /// unknown cluster in a `+` list, a weight above the weightbound, ...), `self` is left
    /// exactly as it was. A query ([`Command::is_mutation`] is false) changes nothing and
    /// returns the objects it selects, for the daemon to render with live counters.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, ConfigError> {
        if !cmd.is_mutation() {
            return self.query(cmd);
        }
        let mut next = self.clone();
        let applied = next.apply_in_place(cmd)?;
        *self = next;
        Ok(applied)
    }

    /// Resolves the targets of a query without changing anything. Explicitly named
    /// clusters, ports and servers must exist; wildcards may select nothing.
    pub fn query(&self, cmd: &Command) -> Result<Applied, ConfigError> {
        let resolved = match cmd {
            Command::ClusterReport(t) | Command::ClusterStatus(t) => {
                Resolved::Clusters(self.select_clusters(t)?)
            }
            Command::PortReport(t) | Command::PortStatus(t) => {
                Resolved::Ports(self.select_ports(t, port_not_found)?)
            }
            Command::ServerReport(t) | Command::ServerStatus(t) => {
                Resolved::Servers(self.select_servers(t)?)
            }
            Command::HaStatus
            | Command::HaTakeover(_)
            | Command::HaMaintenance
            | Command::HaMaintenanceMode(_)
            | Command::HaKeyGenerate(_)
            | Command::Diagnostics(_)
            | Command::Ha(_) => Resolved::HighAvailability,
            Command::AdvisorList => {
                Resolved::Advisors(self.health.advisors.keys().cloned().collect())
            }
            Command::AdvisorReport(key) | Command::AdvisorStatus(key) => {
                self.started_advisor(key)?;
                Resolved::Advisors(vec![key.clone()])
            }
            Command::ManagerStatus => Resolved::Manager(self.clusters.keys().copied().collect()),
            Command::ManagerReport(t) => Resolved::Manager(self.select_clusters(t)?),
            Command::SaspReport => Resolved::Sasp(self.health.sasp.keys().copied().collect()),
            _ => Resolved::Executor,
        };
        Ok(Applied::Query(resolved))
    }

    /// Applies a command to `self` directly. On error `self` may be partly changed: callers
    /// either work on a copy ([`Config::apply`]) or discard the result ([`super::load_file`]).
    pub(super) fn apply_in_place(&mut self, cmd: &Command) -> Result<Applied, ConfigError> {
        check_values(cmd)?;
        let changed = match cmd {
            Command::ExecutorStart => {
                self.executor.started = true;
                Resolved::Executor
            }
            Command::ExecutorStop => {
                self.executor.started = false;
                Resolved::Executor
            }
            Command::ExecutorSet(setting) => {
                match *setting {
                    ExecutorSetting::Nfa(a) => {
                        self.executor.nfa = Some(a);
                        self.check_all()?;
                    }
                    ExecutorSetting::ClientGateway(a) => self.executor.clientgateway = Some(a),
                    ExecutorSetting::HaTimeout(s) => self.executor.hatimeout = s,
                    ExecutorSetting::MaxConnections(n) => self.executor.maxconnections = n,
                    ExecutorSetting::SynTimeout(s) => self.executor.syntimeout = s,
                    ExecutorSetting::FinTimeout(s) => self.executor.fintimeout = Some(s),
                    ExecutorSetting::StaleTimeout(s) => self.executor.staletimeout = Some(s),
                    ExecutorSetting::StickyTime(s) => self.executor.stickytime = Some(s),
                    ExecutorSetting::PacketIo(p) => self.executor.packetio = p,
                    ExecutorSetting::Metrics(a) => self.executor.metrics = a,
                    ExecutorSetting::LogLevel(l) => self.executor.loglevel = l,
                }
                Resolved::Executor
            }
            Command::ClusterAdd {
                clusters,
                proportions,
                defaults,
                primaryhost,
                label,
            } => {
                if clusters.is_empty() {
                    return Err(ConfigError::Invalid(
                        "cluster add needs at least one cluster".to_string(),
                    ));
                }
                for &address in clusters {
                    if self.clusters.contains_key(&address) {
                        return Err(ConfigError::ClusterExists(address));
                    }
                    self.clusters.insert(
                        address,
                        Cluster {
                            address,
                            proportions: proportions.unwrap_or_default(),
                            defaults: *defaults,
                            primaryhost: *primaryhost,
                            label: label.clone().filter(|l| !l.is_empty()),
                            ports: Default::default(),
                        },
                    );
                }
                // A new cluster address must not be the nfa or any returnaddress.
                self.check_all()?;
                Resolved::Clusters(clusters.clone())
            }
            Command::ClusterRemove(target) => {
                let clusters = non_empty(self.select_clusters(target)?, "cluster", target)?;
                for c in &clusters {
                    self.clusters.remove(c);
                    self.forget_health_of(*c, None);
                }
                Resolved::Clusters(clusters)
            }
            Command::ClusterSetDefaults { clusters, defaults } => {
                let selected = non_empty(self.select_clusters(clusters)?, "cluster", clusters)?;
                for c in &selected {
                    if let Some(cluster) = self.clusters.get_mut(c) {
                        let d = &mut cluster.defaults;
                        d.staletimeout = defaults.staletimeout.or(d.staletimeout);
                        d.stickytime = defaults.stickytime.or(d.stickytime);
                        d.weightbound = defaults.weightbound.or(d.weightbound);
                    }
                }
                Resolved::Clusters(selected)
            }
            Command::ManagerStartLogged { .. } => self.apply_health(&Command::ManagerStart)?,
            Command::PortAdd { target, options } => {
                Resolved::Ports(self.port_add(target, options)?)
            }
            Command::PortSet { target, options } => {
                let ports = non_empty(self.select_ports(target, port_not_found)?, "port", target)?;
                for &(c, p) in &ports {
                    if let Some(port) = self.port_mut(c, p) {
                        set_port_options(port, options);
                    }
                }
                self.check_ports(ports.iter().copied())?;
                Resolved::Ports(ports)
            }
            Command::PortRemove(target) => {
                let ports = non_empty(self.select_ports(target, port_not_found)?, "port", target)?;
                for (c, p) in &ports {
                    if let Some(cluster) = self.clusters.get_mut(c) {
                        cluster.ports.remove(p);
                    }
                    self.forget_health_of(*c, Some(*p));
                }
                Resolved::Ports(ports)
            }
            Command::ServerAdd { target, options } => {
                Resolved::Servers(self.server_add(target, options)?)
            }
            Command::ServerSet { target, options } => {
                Resolved::Servers(self.server_set(target, options)?)
            }
            Command::ServerDown(target) | Command::ServerUp(target) => {
                let down = matches!(cmd, Command::ServerDown(_));
                let servers = non_empty(self.select_servers(target)?, "server", target)?;
                for &(c, p, s) in &servers {
                    if let Some(server) = self.server_mut(c, p, s) {
                        server.down = down;
                    }
                }
                Resolved::Servers(servers)
            }
            Command::ServerRemove(target) => {
                let servers = non_empty(self.select_servers(target)?, "server", target)?;
                for &(c, p, s) in &servers {
                    if let Some(port) = self.port_mut(c, p) {
                        port.servers.remove(&s);
                    }
                }
                Resolved::Servers(servers)
            }
            Command::HaHeartbeatAdd {
                source,
                destination,
            } => {
                let pair = (*source, *destination);
                if self.ha.heartbeats.contains(&pair) {
                    return Err(ConfigError::HeartbeatExists(pair.0, pair.1));
                }
                self.ha.heartbeats.push(pair);
                Resolved::HighAvailability
            }
            Command::HaHeartbeatDelete(address) => {
                let before = self.ha.heartbeats.len();
                self.ha
                    .heartbeats
                    .retain(|(s, d)| s != address && d != address);
                if self.ha.heartbeats.len() == before {
                    return Err(ConfigError::HeartbeatNotFound(*address));
                }
                Resolved::HighAvailability
            }
            Command::HaReachAdd(address) => {
                if self.ha.reach.contains(address) {
                    return Err(ConfigError::ReachExists(*address));
                }
                self.ha.reach.push(*address);
                Resolved::HighAvailability
            }
            Command::HaReachDelete(address) => {
                let Some(i) = self.ha.reach.iter().position(|a| a == address) else {
                    return Err(ConfigError::ReachNotFound(*address));
                };
                self.ha.reach.remove(i);
                Resolved::HighAvailability
            }
            Command::HaBackupAdd(backup) => {
                if self.ha.backup.is_some() {
                    return Err(ConfigError::BackupExists);
                }
                self.ha.backup = Some(*backup);
                Resolved::HighAvailability
            }
            Command::HaBackupDelete => {
                if self.ha.backup.take().is_none() {
                    return Err(ConfigError::NoBackup);
                }
                Resolved::HighAvailability
            }
            Command::HaBackupRecovery(recovery) => {
                let Some(b) = &mut self.ha.backup else {
                    return Err(ConfigError::NoBackup);
                };
                b.recovery = *recovery;
                Resolved::HighAvailability
            }
            Command::HaKey(path) => {
                self.ha.key_file = Some(path.clone());
                Resolved::HighAvailability
            }
            Command::HaScripts(path) => {
                self.ha.script_dir = Some(path.clone());
                Resolved::HighAvailability
            }
            Command::HaSync(on) => {
                self.ha.sync = *on;
                Resolved::HighAvailability
            }
            Command::ManagerReachInterval(seconds) => {
                self.ha.reach_interval = *seconds;
                Resolved::HighAvailability
            }
            Command::ClusterSetPrimaryHost {
                clusters,
                primaryhost,
            } => {
                let clusters = non_empty(self.select_clusters(clusters)?, "cluster", clusters)?;
                for c in &clusters {
                    if let Some(cluster) = self.clusters.get_mut(c) {
                        cluster.primaryhost = Some(*primaryhost);
                    }
                }
                Resolved::Clusters(clusters)
            }
            Command::ClusterSetLabel { clusters, label } => {
                let clusters = non_empty(self.select_clusters(clusters)?, "cluster", clusters)?;
                for c in &clusters {
                    if let Some(cluster) = self.clusters.get_mut(c) {
                        cluster.label = (!label.is_empty()).then(|| label.clone());
                    }
                }
                Resolved::Clusters(clusters)
            }
            Command::ExecutorStatus
            | Command::ExecutorReport
            | Command::ClusterReport(_)
            | Command::ClusterStatus(_)
            | Command::PortReport(_)
            | Command::PortStatus(_)
            | Command::ServerReport(_)
            | Command::ServerStatus(_)
            | Command::HaStatus
            | Command::HaTakeover(_)
            | Command::HaMaintenance
            | Command::HaMaintenanceMode(_)
            | Command::HaKeyGenerate(_)
            | Command::AdvisorList
            | Command::AdvisorReport(_)
            | Command::AdvisorStatus(_)
            | Command::ManagerStatus
            | Command::ManagerReport(_)
            | Command::SaspReport
            | Command::Diagnostics(_)
            | Command::FileSave { .. }
            | Command::FileNewLoad(_)
            | Command::FileAppendLoad(_)
            | Command::FileReport
            | Command::FileDelete(_) => return self.query(cmd),
            Command::Ha(a) => return self.apply_appliance(a),
            Command::ClusterSetProportions { .. }
            | Command::AdvisorStart(_)
            | Command::AdvisorStop(_)
            | Command::AdvisorSet { .. }
            | Command::ManagerStart
            | Command::ManagerStop
            | Command::ManagerInterval(_)
            | Command::ManagerSensitivity(_)
            | Command::ManagerSmoothing(_)
            | Command::ManagerQuiesce(_)
            | Command::ManagerUnquiesce(_)
            | Command::SaspAdd { .. }
            | Command::SaspRemove { .. } => self.apply_health(cmd)?,
        };
        Ok(Applied::Changed(changed))
    }
}
