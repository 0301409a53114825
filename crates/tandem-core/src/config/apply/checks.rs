//! The rules a configuration keeps: value ranges of commands built in code, and the rules
//! that span objects (addresses, families, NAT, weights).

use super::super::grammar::{
    Command, ExecutorSetting, MAX_SECONDS, MIN_SECONDS, PortOptions, Targets,
};
use super::super::model::{Cluster, Method, Port, Selection};
use super::{Config, ConfigError};
use std::net::IpAddr;

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Why the data plane cannot serve `ip` as a cluster, server, router or returnaddress
/// address, if it cannot: no neighbour answers for a multicast or broadcast address, and an
/// IPv4-mapped IPv6 address never appears in an IPv6 header (and would be an IPv4 address
/// once replicated). Loopback addresses stay allowed: advisors probe servers there.
fn unservable(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (write the IPv4 address)")
        }
        _ => None,
    }
}

fn check_servable(what: &'static str, address: IpAddr) -> Result<(), ConfigError> {
    match unservable(address) {
        Some(why) => Err(ConfigError::UnservableAddress { what, address, why }),
        None => Ok(()),
    }
}

/// Range checks for values of commands built in code rather than parsed.
pub(super) fn check_values(cmd: &Command) -> Result<(), ConfigError> {
    super::health::check_values(cmd)?;
    let invalid = |msg: String| Err(ConfigError::Invalid(msg));
    let seconds_ok = |s: f64| s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s);
    let path_ok =
        |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c == '#' || c == '"');
    let port_options_ok = |o: &PortOptions| -> Result<(), ConfigError> {
        if let Some(wb) = o.weightbound
            && !(1..=100).contains(&wb)
        {
            return invalid(format!("weightbound {wb} out of range 1-100"));
        }
        if o.staletimeout == Some(0) {
            return invalid("staletimeout 0 out of range 1-4294967295".to_string());
        }
        if o.both == Some(true) && o.protocol != Some(crate::config::model::Protocol::Tcp) {
            return invalid(
                "porttype both goes with protocol tcp (it serves tcp and udp)".to_string(),
            );
        }
        Ok(())
    };
    let defaults_ok = |d: &crate::config::model::PortDefaults| -> Result<(), ConfigError> {
        if let Some(wb) = d.weightbound
            && !(1..=100).contains(&wb)
        {
            return invalid(format!("weightbound {wb} out of range 1-100"));
        }
        if d.staletimeout == Some(0) {
            return invalid("staletimeout 0 out of range 1-4294967295".to_string());
        }
        Ok(())
    };
    match cmd {
        Command::ExecutorSet(ExecutorSetting::HaTimeout(s)) if !seconds_ok(*s) => invalid(format!(
            "bad hatimeout '{s}' (expected seconds, a number from 0.01 to 3600)"
        )),
        Command::ExecutorSet(ExecutorSetting::MaxConnections(Some(n)))
            if !(1..=crate::config::model::MAX_MAXCONNECTIONS).contains(n) =>
        {
            invalid(format!(
                "maxconnections {n} out of range 1-1073741824 (or auto)"
            ))
        }
        Command::ExecutorSet(ExecutorSetting::SynTimeout(s))
            if !(1..=crate::config::model::MAX_SYNTIMEOUT).contains(s) =>
        {
            invalid(format!("syntimeout {s} out of range 1-3600"))
        }
        Command::ExecutorSet(ExecutorSetting::FinTimeout(s))
            if !(1..=crate::config::grammar::MAX_FINTIMEOUT).contains(s) =>
        {
            invalid(format!("fintimeout {s} out of range 1-3600"))
        }
        Command::ExecutorSet(ExecutorSetting::StaleTimeout(0)) => {
            invalid("staletimeout 0 out of range 1-4294967295".to_string())
        }
        Command::ClusterAdd { defaults, .. } | Command::ClusterSetDefaults { defaults, .. } => {
            defaults_ok(defaults)
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
        Command::HaKey(p)
        | Command::HaScripts(p)
        | Command::HaKeyGenerate(p)
        | Command::Diagnostics(p)
            if !path_ok(p) =>
        {
            invalid(format!(
                "bad path '{p}' (must not be empty or contain whitespace, '#' or '\"')"
            ))
        }
        _ => Ok(()),
    }
}

impl Config {
    /// Checks the rules that span objects, for every cluster.
    pub(super) fn check_all(&self) -> Result<(), ConfigError> {
        self.clusters
            .values()
            .try_for_each(|c| self.check_cluster(c))
    }

    /// Checks the rules that span objects, for the given ports only (each once, however
    /// often it is listed): a command that touched them cannot have broken another port, so
    /// checking whole clusters made `file newload` quadratic in the servers of a cluster.
    pub(super) fn check_ports(
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

    /// The cluster address is not the nfa, and can be served.
    pub(super) fn check_cluster_address(&self, c: IpAddr) -> Result<(), ConfigError> {
        check_servable("cluster", c)?;
        if self.executor.nfa == Some(c) {
            return Err(ConfigError::NfaIsCluster(c));
        }
        Ok(())
    }

    /// The rules a cluster and everything under it must keep:
    /// * the cluster address is not the nfa;
    /// * no cluster, server, router or returnaddress is multicast, broadcast or an IPv4-mapped
    ///   IPv6 address;
    /// * a NAT port does not use `selectionalgorithm affinity`;
    /// * servers have the cluster's address family, routers and returnaddresses the server's;
    /// * a NAT port's servers have a returnaddress, and a returnaddress is never the server,
    ///   the nfa or any cluster address;
    /// * weights are within the port's weightbound.
    pub(super) fn check_cluster(&self, cluster: &Cluster) -> Result<(), ConfigError> {
        self.check_cluster_address(cluster.address)?;
        for (&p, port) in &cluster.ports {
            self.check_port(cluster.address, p, port)?;
        }
        Ok(())
    }

    /// The rules of [`Config::check_cluster`] for one port of cluster `c`.
    pub(super) fn check_port(&self, c: IpAddr, p: u16, port: &Port) -> Result<(), ConfigError> {
        let nfa = self.executor.nfa;
        let nat = port.method == Method::Nat;
        if nat && port.selection == Selection::Affinity {
            return Err(ConfigError::NatAffinity {
                cluster: c,
                port: p,
            });
        }
        for (&s, server) in &port.servers {
            check_servable("server", s)?;
            for (what, a) in [
                ("router", server.router),
                ("returnaddress", server.returnaddress),
            ] {
                if let Some(a) = a {
                    check_servable(what, a)?;
                }
            }
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
