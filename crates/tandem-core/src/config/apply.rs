//! Running a [`Command`] against a [`Config`].

use super::Config;
use super::grammar::{
    Command, ExecutorSetting, MAX_SECONDS, MIN_SECONDS, PortOptions, PortTarget, ServerOptions,
    ServerTarget, Targets,
};
use super::model::{Cluster, Method, Port, Selection, Server};
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

/// Why a command cannot be applied to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cluster {0} does not exist")]
    ClusterNotFound(IpAddr),
    #[error("cluster {0} already exists")]
    ClusterExists(IpAddr),
    #[error("port {cluster}@{port} does not exist")]
    PortNotFound { cluster: IpAddr, port: u16 },
    #[error("port {cluster}@{port} already exists")]
    PortExists { cluster: IpAddr, port: u16 },
    /// `server add` names a port that does not exist.
    #[error("server on an unknown port {cluster}@{port}")]
    ServerOnUnknownPort { cluster: IpAddr, port: u16 },
    #[error("server {cluster}@{port}@{server} does not exist")]
    ServerNotFound {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error("server {cluster}@{port}@{server} already exists")]
    ServerExists {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    /// A changing command whose wildcards select nothing.
    #[error("no {kind} matches '{target}'")]
    NothingSelected { kind: &'static str, target: String },
    #[error(
        "weight {weight} out of range 0-{weightbound} (the weightbound of port {cluster}@{port})"
    )]
    WeightAboveBound {
        cluster: IpAddr,
        port: u16,
        weight: u32,
        weightbound: u32,
    },
    #[error(
        "port {cluster}@{port}: selectionalgorithm affinity does not work with method nat \
         (use connection, conn+affin or hash)"
    )]
    NatAffinity { cluster: IpAddr, port: u16 },
    #[error(
        "server {cluster}@{port}@{server} needs a returnaddress: port {cluster}@{port} uses method nat"
    )]
    MissingReturnAddress {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error(
        "returnaddress {returnaddress} of server {cluster}@{port}@{server} must differ from the cluster, \
         server and nfa addresses (it is {clash})"
    )]
    ReturnAddressClash {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
        returnaddress: IpAddr,
        clash: String,
    },
    #[error(
        "the returnaddress of server {cluster}@{port}@{server} cannot be changed with server set; \
         remove the server and add it again"
    )]
    ReturnAddressFixed {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error("{what} {address} is not of the same address family as {of}")]
    FamilyMismatch {
        what: &'static str,
        address: IpAddr,
        of: String,
    },
    #[error("nfa {0} is also a cluster address")]
    NfaIsCluster(IpAddr),
    #[error("heartbeat {0} {1} already exists")]
    HeartbeatExists(IpAddr, IpAddr),
    #[error("no heartbeat uses address {0}")]
    HeartbeatNotFound(IpAddr),
    #[error("reach target {0} already exists")]
    ReachExists(IpAddr),
    #[error("reach target {0} does not exist")]
    ReachNotFound(IpAddr),
    #[error(
        "high availability backup is already configured; run 'highavailability backup delete' first"
    )]
    BackupExists,
    #[error("no high availability backup is configured")]
    NoBackup,
    /// A command value out of range (only possible for commands built in code, since
    /// [`parse`](super::parse) checks ranges).
    #[error("{0}")]
    Invalid(String),
}

/// Error constructor for an explicit port that does not exist.
type MissingPort = fn(IpAddr, u16) -> ConfigError;

fn port_not_found(cluster: IpAddr, port: u16) -> ConfigError {
    ConfigError::PortNotFound { cluster, port }
}

fn server_on_unknown_port(cluster: IpAddr, port: u16) -> ConfigError {
    ConfigError::ServerOnUnknownPort { cluster, port }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
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

/// Range checks for values of commands built in code rather than parsed.
fn check_values(cmd: &Command) -> Result<(), ConfigError> {
    let invalid = |msg: String| Err(ConfigError::Invalid(msg));
    let seconds_ok = |s: f64| s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s);
    let path_ok = |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c == '#');
    let port_options_ok = |o: &PortOptions| -> Result<(), ConfigError> {
        if let Some(wb) = o.weightbound
            && !(1..=100).contains(&wb)
        {
            return invalid(format!("weightbound {wb} out of range 1-100"));
        }
        if o.staletimeout == Some(0) {
            return invalid("staletimeout 0 out of range 1-4294967295".to_string());
        }
        Ok(())
    };
    match cmd {
        Command::ExecutorSet(ExecutorSetting::HaTimeout(s)) if !seconds_ok(*s) => invalid(format!(
            "bad hatimeout '{s}' (expected seconds, a number from 0.01 to 3600)"
        )),
        Command::ExecutorSet(ExecutorSetting::MaxConnections(Some(n)))
            if !(1..=super::model::MAX_MAXCONNECTIONS).contains(n) =>
        {
            invalid(format!(
                "maxconnections {n} out of range 1-1073741824 (or auto)"
            ))
        }
        Command::ExecutorSet(ExecutorSetting::SynTimeout(s))
            if !(1..=super::model::MAX_SYNTIMEOUT).contains(s) =>
        {
            invalid(format!("syntimeout {s} out of range 1-3600"))
        }
        Command::ManagerReachInterval(s) if !seconds_ok(*s) => invalid(format!(
            "bad interval '{s}' (expected seconds, a number from 0.01 to 3600)"
        )),
        Command::PortAdd { target, options } => {
            if let Targets::List(ports) = &target.ports
                && ports.contains(&0)
            {
                return invalid("port 0 out of range 1-65535".to_string());
            }
            port_options_ok(options)
        }
        Command::PortSet { options, .. } => port_options_ok(options),
        Command::ServerAdd { options, .. } if options.mapport == Some(0) => {
            invalid("mapport 0 out of range 1-65535".to_string())
        }
        Command::ServerSet { options, .. } if options.mapport.is_some() => invalid(
            "option 'mapport' is not allowed in server set: it can only be given at server add"
                .to_string(),
        ),
        Command::HaBackupAdd(b) if b.port == 0 => {
            invalid("port 0 out of range 1-65535".to_string())
        }
        Command::HaKey(p) | Command::HaScripts(p) | Command::HaKeyGenerate(p) if !path_ok(p) => {
            invalid(format!(
                "bad path '{p}' (must not be empty or contain whitespace or '#')"
            ))
        }
        _ => Ok(()),
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
            | Command::HaKeyGenerate(_) => Resolved::HighAvailability,
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
                }
                Resolved::Executor
            }
            Command::ClusterAdd(clusters) => {
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
                            proportions: Default::default(),
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
                }
                Resolved::Clusters(clusters)
            }
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
            Command::ManagerReachInterval(seconds) => {
                self.ha.reach_interval = *seconds;
                Resolved::HighAvailability
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
            | Command::HaKeyGenerate(_) => return self.query(cmd),
        };
        Ok(Applied::Changed(changed))
    }

    /// `port add`: every selected cluster gets every listed port, none of which may exist.
    fn port_add(
        &mut self,
        target: &PortTarget,
        options: &PortOptions,
    ) -> Result<Vec<(IpAddr, u16)>, ConfigError> {
        let Targets::List(numbers) = &target.ports else {
            return Err(ConfigError::Invalid(format!(
                "the '@' wildcard is not allowed for the port in '{target}' (port add needs explicit ports)"
            )));
        };
        let clusters = non_empty(
            self.select_clusters(&target.clusters)?,
            "cluster",
            &target.clusters,
        )?;
        let mut added = Vec::new();
        for &c in &clusters {
            let Some(cluster) = self.clusters.get_mut(&c) else {
                continue;
            };
            for &number in numbers {
                if cluster.ports.contains_key(&number) {
                    return Err(ConfigError::PortExists {
                        cluster: c,
                        port: number,
                    });
                }
                let mut port = Port::with_defaults(number);
                set_port_options(&mut port, options);
                cluster.ports.insert(number, port);
                added.push((c, number));
            }
        }
        let added = non_empty(added, "port", target)?;
        self.check_ports(added.iter().copied())?;
        Ok(added)
    }

    /// `server add`: every selected port gets every listed server, none of which may exist.
    fn server_add(
        &mut self,
        target: &ServerTarget,
        options: &ServerOptions,
    ) -> Result<Vec<(IpAddr, u16, IpAddr)>, ConfigError> {
        let Targets::List(addresses) = &target.servers else {
            return Err(ConfigError::Invalid(format!(
                "the '@' wildcard is not allowed for the server in '{target}' (server add needs explicit servers)"
            )));
        };
        let port_target = target.port_target();
        let ports = non_empty(
            self.select_ports(&port_target, server_on_unknown_port)?,
            "port",
            &port_target,
        )?;
        let mut added = Vec::new();
        for &(c, p) in &ports {
            let Some(port) = self.port_mut(c, p) else {
                continue;
            };
            for &address in addresses {
                if port.servers.contains_key(&address) {
                    return Err(ConfigError::ServerExists {
                        cluster: c,
                        port: p,
                        server: address,
                    });
                }
                let weight = options.weight.unwrap_or(port.weightbound / 2);
                if weight > port.weightbound {
                    return Err(ConfigError::WeightAboveBound {
                        cluster: c,
                        port: p,
                        weight,
                        weightbound: port.weightbound,
                    });
                }
                let server = Server {
                    address,
                    weight,
                    fixedweight: options.fixedweight.unwrap_or(false),
                    returnaddress: options.returnaddress,
                    router: options.router,
                    mapport: options.mapport,
                    down: false,
                    quiesced: false,
                    advisorrequest: None,
                    advisorresponse: None,
                };
                port.servers.insert(address, server);
                added.push((c, p, address));
            }
        }
        self.check_ports(ports.iter().copied())?;
        Ok(added)
    }

    /// `server set`: changes weight, fixedweight and router; the returnaddress is fixed.
    fn server_set(
        &mut self,
        target: &ServerTarget,
        options: &ServerOptions,
    ) -> Result<Vec<(IpAddr, u16, IpAddr)>, ConfigError> {
        let servers = non_empty(self.select_servers(target)?, "server", target)?;
        for &(c, p, s) in &servers {
            let Some(port) = self.port_mut(c, p) else {
                continue;
            };
            let weightbound = port.weightbound;
            let Some(server) = port.servers.get_mut(&s) else {
                continue;
            };
            if let Some(weight) = options.weight {
                if weight > weightbound {
                    return Err(ConfigError::WeightAboveBound {
                        cluster: c,
                        port: p,
                        weight,
                        weightbound,
                    });
                }
                server.weight = weight;
            }
            if let Some(fixed) = options.fixedweight {
                server.fixedweight = fixed;
            }
            if let Some(returnaddress) = options.returnaddress
                && server.returnaddress != Some(returnaddress)
            {
                return Err(ConfigError::ReturnAddressFixed {
                    cluster: c,
                    port: p,
                    server: s,
                });
            }
            if let Some(router) = options.router {
                server.router = Some(router);
            }
        }
        self.check_ports(servers.iter().map(|&(c, p, _)| (c, p)))?;
        Ok(servers)
    }

    fn port_mut(&mut self, cluster: IpAddr, port: u16) -> Option<&mut Port> {
        self.clusters.get_mut(&cluster)?.ports.get_mut(&port)
    }

    fn server_mut(&mut self, cluster: IpAddr, port: u16, server: IpAddr) -> Option<&mut Server> {
        self.port_mut(cluster, port)?.servers.get_mut(&server)
    }

    /// Expands a cluster target. Listed clusters must exist.
    fn select_clusters(&self, target: &Targets<IpAddr>) -> Result<Vec<IpAddr>, ConfigError> {
        match target {
            Targets::All => Ok(self.clusters.keys().copied().collect()),
            Targets::List(clusters) => clusters
                .iter()
                .map(|c| {
                    if self.clusters.contains_key(c) {
                        Ok(*c)
                    } else {
                        Err(ConfigError::ClusterNotFound(*c))
                    }
                })
                .collect(),
        }
    }

    /// Expands a port target to existing ports. A listed port of a listed cluster must
    /// exist (else `missing`); under a cluster wildcard, clusters without it are skipped.
    fn select_ports(
        &self,
        target: &PortTarget,
        missing: MissingPort,
    ) -> Result<Vec<(IpAddr, u16)>, ConfigError> {
        let mut selected = Vec::new();
        for c in self.select_clusters(&target.clusters)? {
            let Some(cluster) = self.clusters.get(&c) else {
                continue;
            };
            match &target.ports {
                Targets::All => selected.extend(cluster.ports.keys().map(|p| (c, *p))),
                Targets::List(ports) => {
                    for &p in ports {
                        if cluster.ports.contains_key(&p) {
                            selected.push((c, p));
                        } else if !target.clusters.is_all() {
                            return Err(missing(c, p));
                        }
                    }
                }
            }
        }
        Ok(selected)
    }

    /// Expands a server target to existing servers. A listed server under a listed port of
    /// a listed cluster must exist; under any wildcard, ports without it are skipped.
    fn select_servers(
        &self,
        target: &ServerTarget,
    ) -> Result<Vec<(IpAddr, u16, IpAddr)>, ConfigError> {
        let all_explicit = !target.clusters.is_all() && !target.ports.is_all();
        let mut selected = Vec::new();
        for (c, p) in self.select_ports(&target.port_target(), port_not_found)? {
            let Some(port) = self.clusters.get(&c).and_then(|cl| cl.ports.get(&p)) else {
                continue;
            };
            match &target.servers {
                Targets::All => selected.extend(port.servers.keys().map(|s| (c, p, *s))),
                Targets::List(servers) => {
                    for &s in servers {
                        if port.servers.contains_key(&s) {
                            selected.push((c, p, s));
                        } else if all_explicit {
                            return Err(ConfigError::ServerNotFound {
                                cluster: c,
                                port: p,
                                server: s,
                            });
                        }
                    }
                }
            }
        }
        Ok(selected)
    }

    /// Checks the rules that span objects, for every cluster.
    fn check_all(&self) -> Result<(), ConfigError> {
        self.clusters
            .values()
            .try_for_each(|c| self.check_cluster(c))
    }

    /// Checks the rules that span objects, for the given ports only (each once, however
    /// often it is listed): a command that touched them cannot have broken another port, so
    /// checking whole clusters made `file newload` quadratic in the servers of a cluster.
    fn check_ports(
        &self,
        ports: impl IntoIterator<Item = (IpAddr, u16)>,
    ) -> Result<(), ConfigError> {
        let ports: std::collections::BTreeSet<(IpAddr, u16)> = ports.into_iter().collect();
        for (c, p) in ports {
            if let Some(cluster) = self.clusters.get(&c)
                && let Some(port) = cluster.ports.get(&p)
            {
                self.check_cluster_address(c)?;
                self.check_port(c, p, port)?;
            }
        }
        Ok(())
    }

    /// The cluster address is not the nfa.
    fn check_cluster_address(&self, c: IpAddr) -> Result<(), ConfigError> {
        if self.executor.nfa == Some(c) {
            return Err(ConfigError::NfaIsCluster(c));
        }
        Ok(())
    }

    /// The rules a cluster and everything under it must keep:
    /// * the cluster address is not the nfa;
    /// * a NAT port does not use `selectionalgorithm affinity`;
    /// * servers have the cluster's address family, routers and returnaddresses the server's;
    /// * a NAT port's servers have a returnaddress, and a returnaddress is never the server,
    ///   the nfa or any cluster address;
    /// * weights are within the port's weightbound.
    fn check_cluster(&self, cluster: &Cluster) -> Result<(), ConfigError> {
        self.check_cluster_address(cluster.address)?;
        for (&p, port) in &cluster.ports {
            self.check_port(cluster.address, p, port)?;
        }
        Ok(())
    }

    /// The rules of [`Config::check_cluster`] for one port of cluster `c`.
    fn check_port(&self, c: IpAddr, p: u16, port: &Port) -> Result<(), ConfigError> {
        let nfa = self.executor.nfa;
        let nat = port.method == Method::Nat;
        if nat && port.selection == Selection::Affinity {
            return Err(ConfigError::NatAffinity {
                cluster: c,
                port: p,
            });
        }
        for (&s, server) in &port.servers {
            if !same_family(s, c) {
                return Err(ConfigError::FamilyMismatch {
                    what: "server",
                    address: s,
                    of: format!("cluster {c}"),
                });
            }
            if let Some(router) = server.router
                && !same_family(router, s)
            {
                return Err(ConfigError::FamilyMismatch {
                    what: "router",
                    address: router,
                    of: format!("server {c}@{p}@{s}"),
                });
            }
            if server.weight > port.weightbound {
                return Err(ConfigError::WeightAboveBound {
                    cluster: c,
                    port: p,
                    weight: server.weight,
                    weightbound: port.weightbound,
                });
            }
            match server.returnaddress {
                None if nat => {
                    return Err(ConfigError::MissingReturnAddress {
                        cluster: c,
                        port: p,
                        server: s,
                    });
                }
                None => {}
                Some(ra) => {
                    if !same_family(ra, s) {
                        return Err(ConfigError::FamilyMismatch {
                            what: "returnaddress",
                            address: ra,
                            of: format!("server {c}@{p}@{s}"),
                        });
                    }
                    let clash = if ra == s {
                        Some("the server address".to_string())
                    } else if Some(ra) == nfa {
                        Some("the nfa".to_string())
                    } else if self.clusters.contains_key(&ra) {
                        Some(format!("the address of cluster {ra}"))
                    } else {
                        None
                    };
                    if let Some(clash) = clash {
                        return Err(ConfigError::ReturnAddressClash {
                            cluster: c,
                            port: p,
                            server: s,
                            returnaddress: ra,
                            clash,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Applies the given `port add|set` options; a lower weightbound clamps server weights.
fn set_port_options(port: &mut Port, o: &PortOptions) {
    if let Some(v) = o.method {
        port.method = v;
    }
    if let Some(v) = o.protocol {
        port.protocol = v;
    }
    if let Some(v) = o.selection {
        port.selection = v;
    }
    if let Some(v) = o.stickytime {
        port.stickytime = v;
    }
    if let Some(v) = o.staletimeout {
        port.staletimeout = v;
    }
    if let Some(v) = o.reset {
        port.reset = v;
    }
    if let Some(v) = o.repstrategy {
        port.repstrategy = v;
    }
    if let Some(bound) = o.weightbound {
        port.weightbound = bound;
        for server in port.servers.values_mut() {
            server.weight = server.weight.min(bound);
        }
    }
}
