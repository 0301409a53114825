//! The forwarding plan: a configuration compiled into what the packet path looks up.
//!
//! A plan is immutable. Each committed configuration change compiles a new one, which the
//! engine swaps in atomically; workers never wait for the control plane.

use super::stats::ServerCounters;
use crate::config::{Config, Method, Port, Protocol, Selection};
use crate::flow::{IPPROTO_TCP, IPPROTO_UDP};
use crate::health::{Overlay, WeightSource};
use crate::select::{Maglev, WeightedPicker};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection record lives after its FIN or RST.
pub const DEFAULT_FIN_TIMEOUT: Duration = Duration::from_secs(4);

/// A server as the packet path needs it.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    pub address: IpAddr,
    /// Where frames for this server go on the link: its router, or the server itself.
    pub next_hop: IpAddr,
    /// The effective weight (the overlay's: operator, advisors, SASP, manager, config).
    pub weight: u32,
    /// Which rule decided `weight`.
    pub weight_source: WeightSource,
    /// Effective weight above 0: new clients may be sent here.
    pub accepts_new: bool,
    /// A client with a live affinity record may still be sent here: while the server
    /// accepts new connections, and when it is quiesced (IBM). False when it is down or at
    /// weight 0, which breaks its affinity and, on `reset yes` ports, ends its connections.
    pub keeps_affinity: bool,
    /// Destination port on the server (NAT).
    pub server_port: u16,
    /// NAT source address.
    pub returnaddress: Option<IpAddr>,
    pub counters: Arc<ServerCounters>,
}

/// A cluster port as the packet path needs it.
pub struct PortPlan {
    pub cluster: IpAddr,
    /// The port's configuration (its `servers` map is left empty; see `servers`).
    pub config: Port,
    pub proto: u8,
    pub servers: Vec<ServerPlan>,
    pub picker: WeightedPicker,
    /// Built for `selectionalgorithm hash` only.
    pub maglev: Option<Maglev>,
    /// Every server of the port is down: they all got weightbound/2 (IBM's rule).
    pub all_down: bool,
}

impl PortPlan {
    pub fn server(&self, address: IpAddr) -> Option<&ServerPlan> {
        self.servers.iter().find(|s| s.address == address)
    }
    /// Whether the port makes affinity records: `affinity` and `conn+affin` with a
    /// stickytime above 0 (`connection` and `hash` never do, whatever the stickytime).
    pub fn uses_affinity(&self) -> bool {
        self.config.stickytime > 0
            && matches!(
                self.config.selection,
                Selection::Affinity | Selection::ConnAffin
            )
    }
    /// Whether the port makes connection records: every algorithm but `affinity`, whose
    /// packets follow the client's affinity record alone. (The configuration refuses
    /// `affinity` with NAT, which needs the records for its translation, and with stickytime
    /// 0; a port built in code that way keeps connection records.)
    pub fn uses_connection_records(&self) -> bool {
        !(self.config.selection == Selection::Affinity
            && self.config.method != Method::Nat
            && self.config.stickytime > 0)
    }
    pub fn stickytime(&self) -> Duration {
        Duration::from_secs(self.config.stickytime as u64)
    }
    pub fn staletimeout(&self) -> Duration {
        Duration::from_secs(self.config.staletimeout as u64)
    }
}

/// Where the packet path finds a cluster port.
pub type PortKey = (IpAddr, u16, u8);

/// An immutable, compiled configuration.
#[derive(Default)]
pub struct Plan {
    /// Forwarding on (`executor start`, and this node is the one that should forward some
    /// cluster).
    pub forwarding: bool,
    /// Cluster and return addresses this node does not forward although `forwarding` is on:
    /// in mutual HA, those of the group the partner is Active for (see [`Plan::compile_for`]).
    pub standby: HashSet<IpAddr>,
    /// MAC address of the forwarding interface.
    pub our_mac: [u8; 6],
    /// The sender address of ARP requests: the nfa when it is IPv4; `0.0.0.0` when the nfa
    /// is IPv6 (an RFC 5227 probe, which a neighbour answers as well); `None` without an nfa.
    pub nfa: Option<Ipv4Addr>,
    /// The source of neighbour solicitations for IPv6 next hops: the nfa when it is IPv6,
    /// otherwise the interface's link-local address `fe80::` + EUI-64 of `our_mac` (every
    /// IPv6 interface has one, and a solicitation may come from it, RFC 4861 §7.2.2).
    pub nfa6: Option<Ipv6Addr>,
    pub clusters: HashSet<IpAddr>,
    pub return_addresses: HashSet<IpAddr>,
    pub ports: HashMap<PortKey, Arc<PortPlan>>,
    /// Next hops whose MAC addresses Tandem resolves (ARP for IPv4, NDP for IPv6).
    pub neighbors: HashSet<IpAddr>,
    pub fin_timeout: Duration,
    /// `executor set maxconnections` (None: the engine's default for the machine).
    pub max_connections: Option<usize>,
    /// `executor set syntimeout`: how long a record lives before the client's first ACK.
    pub halfopen_timeout: Duration,
}

impl Plan {
    /// Whether Tandem answers ARP for `ip` (and forwards its traffic).
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.forwarding
            && (self.clusters.contains(&ip) || self.return_addresses.contains(&ip))
            && !self.standby.contains(&ip)
    }

    /// Addresses Tandem answers for, sorted.
    pub fn owned_addresses(&self) -> Vec<IpAddr> {
        if !self.forwarding {
            return Vec::new();
        }
        let mut v: Vec<IpAddr> = self
            .clusters
            .iter()
            .chain(self.return_addresses.iter())
            .filter(|a| !self.standby.contains(a))
            .copied()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn port(&self, cluster: IpAddr, port: u16, proto: u8) -> Option<&Arc<PortPlan>> {
        self.ports.get(&(cluster, port, proto))
    }
}

/// Counters of every configured server, kept across plans.
#[derive(Default)]
pub struct CounterRegistry {
    map: Mutex<HashMap<(IpAddr, u16, IpAddr), Arc<ServerCounters>>>,
}

impl CounterRegistry {
    fn get(&self, cluster: IpAddr, port: u16, server: IpAddr) -> Arc<ServerCounters> {
        self.map
            .lock()
            .entry((cluster, port, server))
            .or_default()
            .clone()
    }
    /// Drops counters of servers no longer configured.
    fn retain(&self, keep: &HashSet<(IpAddr, u16, IpAddr)>) {
        self.map.lock().retain(|k, _| keep.contains(k));
    }
    /// Counters of one server, if configured.
    pub fn lookup(
        &self,
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    ) -> Option<Arc<ServerCounters>> {
        self.map.lock().get(&(cluster, port, server)).cloned()
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

impl Plan {
    /// Compiles `config` with the servers' effective weights from `overlay`
    /// ([`Overlay::default`]: the configured weights, `server down` and quiesce only).
    /// `forwarding` says whether this node forwards now (executor started and, in a pair,
    /// Active or stand-alone).
    pub fn compile(
        config: &Config,
        overlay: &Overlay,
        forwarding: bool,
        our_mac: [u8; 6],
        counters: &CounterRegistry,
    ) -> Plan {
        let mut plan = Plan::compile_for(config, overlay, &|_| forwarding, our_mac, counters);
        plan.forwarding = forwarding;
        plan
    }

    /// [`Plan::compile`] with forwarding decided per cluster (mutual HA: a cluster is
    /// forwarded iff its group's instance is Active here). A NAT return address is forwarded
    /// when a forwarded cluster uses it.
    pub fn compile_for(
        config: &Config,
        overlay: &Overlay,
        forwards: &dyn Fn(IpAddr) -> bool,
        our_mac: [u8; 6],
        counters: &CounterRegistry,
    ) -> Plan {
        let mut owned_returns = HashSet::new();
        let mut plan = Plan {
            forwarding: config.clusters.keys().any(|&c| forwards(c)),
            our_mac,
            nfa: match config.executor.nfa {
                Some(IpAddr::V4(a)) => Some(a),
                Some(IpAddr::V6(_)) => Some(Ipv4Addr::UNSPECIFIED),
                None => None,
            },
            nfa6: Some(match config.executor.nfa {
                Some(IpAddr::V6(a)) => a,
                _ => tandem_wire::ipv6::link_local_eui64(our_mac),
            }),
            fin_timeout: config
                .executor
                .fintimeout
                .map_or(DEFAULT_FIN_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
            max_connections: config
                .executor
                .maxconnections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            halfopen_timeout: Duration::from_secs(u64::from(config.executor.syntimeout)),
            ..Plan::default()
        };
        let mut keep = HashSet::new();
        for (caddr, cluster) in &config.clusters {
            plan.clusters.insert(*caddr);
            let forwarded = forwards(*caddr);
            if !forwarded {
                plan.standby.insert(*caddr);
            }
            for (pnum, port) in &cluster.ports {
                let mut servers = Vec::new();
                let mut weights = Vec::new();
                for (saddr, server) in &port.servers {
                    keep.insert((*caddr, *pnum, *saddr));
                    let next_hop = server.router.unwrap_or(*saddr);
                    plan.neighbors.insert(next_hop);
                    let returnaddress = if port.method == Method::Nat {
                        server.returnaddress
                    } else {
                        None
                    };
                    if let Some(r) = returnaddress {
                        plan.return_addresses.insert(r);
                        if forwarded {
                            owned_returns.insert(r);
                        }
                    }
                    let eff = overlay.effective(*caddr, port, server);
                    weights.push((*saddr, eff.weight));
                    servers.push(ServerPlan {
                        address: *saddr,
                        next_hop,
                        weight: eff.weight,
                        weight_source: eff.source,
                        accepts_new: eff.accepts_new(),
                        keeps_affinity: eff.keeps_affinity,
                        server_port: if port.method == Method::Nat {
                            server.mapport.unwrap_or(*pnum)
                        } else {
                            *pnum
                        },
                        returnaddress,
                        counters: counters.get(*caddr, *pnum, *saddr),
                    });
                }
                let maglev = (port.selection == Selection::Hash)
                    .then(|| Maglev::new(&weights, crate::select::maglev::DEFAULT_SIZE));
                let mut cfg = port.clone();
                cfg.servers.clear();
                // `porttype both`: one plan per protocol, each with its own records.
                for &protocol in port.protocols() {
                    let proto = proto_number(protocol);
                    plan.ports.insert(
                        (*caddr, *pnum, proto),
                        Arc::new(PortPlan {
                            cluster: *caddr,
                            config: cfg.clone(),
                            proto,
                            servers: servers.clone(),
                            picker: WeightedPicker::new(&weights),
                            maglev: maglev.clone(),
                            all_down: overlay.all_down(*caddr, *pnum),
                        }),
                    );
                }
            }
        }
        if let Some(gw) = config.executor.clientgateway {
            plan.neighbors.insert(gw);
        }
        counters.retain(&keep);
        for r in &plan.return_addresses {
            if !owned_returns.contains(r) {
                plan.standby.insert(*r);
            }
        }
        plan
    }
}
