//! Adding and changing ports and servers, and expanding targets to existing objects.

use super::super::grammar::{PortOptions, PortTarget, ServerOptions, ServerTarget, Targets};
use super::super::model::{Port, Server};
use super::{Config, ConfigError, non_empty};
use std::net::IpAddr;

/// Error constructor for an explicit port that does not exist.
pub(super) type MissingPort = fn(IpAddr, u16) -> ConfigError;

pub(super) fn port_not_found(cluster: IpAddr, port: u16) -> ConfigError {
    ConfigError::PortNotFound { cluster, port }
}

pub(super) fn server_on_unknown_port(cluster: IpAddr, port: u16) -> ConfigError {
    ConfigError::ServerOnUnknownPort { cluster, port }
}

impl Config {
    /// `port add`: every selected cluster gets every listed port, none of which may exist.
    pub(super) fn port_add(
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
        let executor = (self.executor.staletimeout, self.executor.stickytime);
        for &c in &clusters {
            let Some(cluster) = self.clusters.get_mut(&c) else {
                continue;
            };
            // IBM: values set at executor or cluster level are inherited by the ports added
            // later; a value given here wins, then the cluster's, then the executor's.
            let d = cluster.defaults;
            let options = PortOptions {
                staletimeout: options.staletimeout.or(d.staletimeout).or(executor.0),
                stickytime: options.stickytime.or(d.stickytime).or(executor.1),
                weightbound: options.weightbound.or(d.weightbound),
                ..*options
            };
            let options = &options;
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
    pub(super) fn server_add(
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
                    advisorrequest: non_empty_text(&options.advisorrequest),
                    advisorresponse: non_empty_text(&options.advisorresponse),
                    label: non_empty_text(&options.label),
                };
                port.servers.insert(address, server);
                added.push((c, p, address));
            }
        }
        self.check_ports(ports.iter().copied())?;
        Ok(added)
    }

    /// `server set`: changes weight, fixedweight, router and the advisor strings; the
    /// returnaddress is fixed.
    pub(super) fn server_set(
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
            if let Some(text) = &options.advisorrequest {
                server.advisorrequest = (!text.is_empty()).then(|| text.clone());
            }
            if let Some(text) = &options.advisorresponse {
                server.advisorresponse = (!text.is_empty()).then(|| text.clone());
            }
            if let Some(text) = &options.label {
                server.label = (!text.is_empty()).then(|| text.clone());
            }
        }
        self.check_ports(servers.iter().map(|&(c, p, _)| (c, p)))?;
        Ok(servers)
    }

    pub(super) fn port_mut(&mut self, cluster: IpAddr, port: u16) -> Option<&mut Port> {
        self.clusters.get_mut(&cluster)?.ports.get_mut(&port)
    }

    pub(super) fn server_mut(
        &mut self,
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    ) -> Option<&mut Server> {
        self.port_mut(cluster, port)?.servers.get_mut(&server)
    }

    /// Expands a cluster target. Listed clusters must exist.
    pub(super) fn select_clusters(
        &self,
        target: &Targets<IpAddr>,
    ) -> Result<Vec<IpAddr>, ConfigError> {
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
    pub(super) fn select_ports(
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
    pub(super) fn select_servers(
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
}

/// Applies the given `port add|set` options; a lower weightbound clamps server weights.
/// An advisor string option: `""` means "none" (the advisor's default).
fn non_empty_text(text: &Option<String>) -> Option<String> {
    text.as_ref().filter(|t| !t.is_empty()).cloned()
}

pub(super) fn set_port_options(port: &mut Port, o: &PortOptions) {
    if let Some(v) = o.method {
        port.method = v;
    }
    if let Some(v) = o.protocol {
        port.protocol = v;
        port.both = o.both.unwrap_or(false);
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
