//! The node's SASP sessions: one connection per GWM address (a GWM replaces a connection
//! whose LB UID it already knows, so all the groups that name one GWM share one connection),
//! their last weights, and what the overlay takes from them ([`Steering::input`]).
//!
//! Runs inside the health loop's runtime ([`Steering::reconcile`] spawns and stops the tasks
//! of [`super::sasp`]).

use super::sasp::{self, GwmView, SaspConfig, SaspEvent, SaspEventKind, SaspHandle};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tandem_core::config::{Config, GwmAddress, Method, Protocol, SaspGroupTarget, SaspGwm};
use tandem_core::health::{SaspInput, SaspMember, ServerId};
use tandem_core::sasp::lb::{
    Groups, GwmState, LbSettings, MemberId, MemberReport, PROTOCOL_TCP, PROTOCOL_UDP,
    default_lb_uid, group_name,
};
use tokio::sync::mpsc;

/// How long a removed or stopping session may take to deregister.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// What a GWM's connection is started with; a change restarts it.
#[derive(Clone, PartialEq)]
struct Wanted {
    settings: LbSettings,
    grace: Duration,
    tls: bool,
    groups: Groups,
    quiesced: BTreeSet<MemberId>,
}

struct Session {
    handle: SaspHandle,
    /// The serial its events carry.
    serial: u64,
    wanted: Wanted,
    /// State, last weights per group and last error, from the task's events.
    view: GwmView,
}

/// Every SASP session of the node.
#[derive(Default)]
pub struct Steering {
    sessions: BTreeMap<GwmAddress, Session>,
    /// The serial of the next session.
    next_serial: u64,
    /// The client configuration of `tls yes`, read once (not at every reconcile).
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Why a GWM of the configuration has no session (e.g. TLS without CA certificates).
    refused: BTreeMap<GwmAddress, String>,
}

/// A server's SASP member: its own address and the port it serves on (the cluster port, or
/// `mapport` in NAT), with the port's protocol.
fn member_of(config: &Config, cluster: IpAddr, port: u16, server: IpAddr) -> Option<MemberId> {
    let p = config.clusters.get(&cluster)?.ports.get(&port)?;
    let s = p.servers.get(&server)?;
    let member_port = match p.method {
        Method::Nat => s.mapport.unwrap_or(port),
        Method::Mac => port,
    };
    let proto = match p.protocol {
        Protocol::Tcp => PROTOCOL_TCP,
        Protocol::Udp => PROTOCOL_UDP,
    };
    Some(MemberId::new(server, member_port, proto))
}

/// The servers of a group target, with their members.
fn group_servers(config: &Config, target: &SaspGroupTarget) -> Vec<(ServerId, MemberId)> {
    let Some(cluster) = config.clusters.get(&target.cluster) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (pnum, port) in &cluster.ports {
        if target.port.is_some_and(|p| p != *pnum) {
            continue;
        }
        for saddr in port.servers.keys() {
            if let Some(m) = member_of(config, target.cluster, *pnum, *saddr) {
                let id = ServerId {
                    cluster: target.cluster,
                    port: *pnum,
                    server: *saddr,
                };
                out.push((id, m));
            }
        }
    }
    out
}

/// The connection each GWM of `config` should have.
fn wanted(config: &Config) -> BTreeMap<GwmAddress, Wanted> {
    let lb_uid = match config.executor.nfa {
        Some(nfa) => default_lb_uid(nfa),
        None => "tandem".to_string(),
    };
    let mut out: BTreeMap<GwmAddress, Wanted> = BTreeMap::new();
    for (target, gwms) in &config.health.sasp {
        let name = group_name(target);
        let servers = group_servers(config, target);
        let members: BTreeSet<MemberId> = servers.iter().map(|(_, m)| *m).collect();
        let quiesced: BTreeSet<MemberId> = servers
            .iter()
            .filter(|(id, _)| {
                config
                    .clusters
                    .get(&id.cluster)
                    .and_then(|c| c.ports.get(&id.port))
                    .and_then(|p| p.servers.get(&id.server))
                    .is_some_and(|s| s.quiesced)
            })
            .map(|(_, m)| *m)
            .collect();
        for (gwm, settings) in gwms {
            let w = out
                .entry(*gwm)
                .or_insert_with(|| new_wanted(&lb_uid, settings));
            w.groups.insert(name.clone(), members.clone());
            w.quiesced.extend(quiesced.iter().copied());
        }
    }
    out
}

fn new_wanted(lb_uid: &str, settings: &SaspGwm) -> Wanted {
    Wanted {
        settings: LbSettings::new(lb_uid, settings),
        grace: Duration::from_secs_f64(settings.grace.clamp(0.0, 86_400.0)),
        tls: settings.tls,
        groups: Groups::new(),
        quiesced: BTreeSet::new(),
    }
}

impl Steering {
    /// Brings the sessions in line with `config` (call inside the health runtime). Groups and
    /// quiesced members change in place; other settings restart the connection.
    pub fn reconcile(&mut self, config: &Config, events: &mpsc::Sender<SaspEvent>, seed: u64) {
        let wanted = wanted(config);
        let gone: Vec<GwmAddress> = self
            .sessions
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .copied()
            .collect();
        for k in gone {
            if let Some(s) = self.sessions.remove(&k) {
                tokio::spawn(s.handle.shutdown(SHUTDOWN_WAIT));
            }
        }
        self.refused.retain(|k, _| wanted.contains_key(k));
        for (gwm, w) in wanted {
            if let Some(s) = self.sessions.get_mut(&gwm) {
                if s.wanted == w {
                    continue;
                }
                let same_connection = s.wanted.settings == w.settings
                    && s.wanted.grace == w.grace
                    && s.wanted.tls == w.tls;
                if same_connection {
                    if s.wanted.groups != w.groups {
                        s.handle.set_groups(w.groups.clone());
                    }
                    for m in w.quiesced.symmetric_difference(&s.wanted.quiesced) {
                        s.handle.set_quiesce(*m, w.quiesced.contains(m));
                    }
                    s.wanted = w;
                    continue;
                }
                if let Some(old) = self.sessions.remove(&gwm) {
                    tokio::spawn(old.handle.shutdown(SHUTDOWN_WAIT));
                }
            }
            let tls = if w.tls {
                let loaded = match self.tls.clone() {
                    Some(c) => Ok(c),
                    None => sasp::default_tls_config(),
                };
                match loaded {
                    Ok(c) => {
                        self.tls = Some(c.clone());
                        Some(c)
                    }
                    Err(e) => {
                        let reason = format!("tls yes: {e:#}");
                        tracing::warn!(gwm = %gwm.0, "SASP: {reason}");
                        self.refused.insert(gwm, reason);
                        continue;
                    }
                }
            } else {
                None
            };
            let cfg = SaspConfig {
                gwm: SocketAddr::new(gwm.0, gwm.1),
                settings: w.settings.clone(),
                groups: w.groups.clone(),
                grace: w.grace,
                tls,
                seed: seed ^ u64::from(gwm.1) ^ hash_ip(gwm.0),
                serial: self.next_serial,
            };
            let serial = self.next_serial;
            self.next_serial += 1;
            match sasp::spawn(cfg, events.clone()) {
                Ok(handle) => {
                    for m in &w.quiesced {
                        handle.set_quiesce(*m, true);
                    }
                    self.refused.remove(&gwm);
                    self.sessions.insert(
                        gwm,
                        Session {
                            handle,
                            serial,
                            wanted: w,
                            view: GwmView::default(),
                        },
                    );
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(gwm = %gwm.0, "SASP: {reason}");
                    self.refused.insert(gwm, reason);
                }
            }
        }
    }

    /// A report of a session's task; returns whether the overlay's input changed.
    pub fn handle_event(&mut self, event: SaspEvent) -> bool {
        let key = (event.gwm.ip(), event.gwm.port());
        let Some(s) = self.sessions.get_mut(&key) else {
            return false;
        };
        if s.serial != event.serial {
            // From a replaced session that is still shutting down.
            return false;
        }
        let steered = s.view.state.is_some_and(GwmState::steers);
        s.view.apply(&event.kind);
        let steers = s.view.state.is_some_and(GwmState::steers);
        match event.kind {
            SaspEventKind::State(_) => steered != steers,
            SaspEventKind::Weights { .. } => steers,
            SaspEventKind::Refused { .. } | SaspEventKind::Disconnected { .. } => false,
        }
    }

    /// What the overlay takes from the GWMs: every member of a steering session.
    pub fn input(&self, config: &Config) -> SaspInput {
        let mut input = SaspInput::default();
        let by_name: BTreeMap<String, SaspGroupTarget> = config
            .health
            .sasp
            .keys()
            .map(|t| (group_name(t), *t))
            .collect();
        for s in self.sessions.values() {
            for group in s.view.weights.keys() {
                // Connected or in grace, and at least one member CONFIDENT (RFC 4678 §5.3).
                let Some(entries) = s.view.steering(group) else {
                    continue;
                };
                let Some(target) = by_name.get(group) else {
                    continue;
                };
                for (id, member) in group_servers(config, target) {
                    if let Some(e) = entries.get(&member) {
                        input.add(
                            id,
                            SaspMember {
                                weight: e.weight,
                                contact: e.contact(),
                                quiesce: e.quiesce(),
                                confident: e.confident(),
                                steering: true,
                            },
                        );
                    }
                }
            }
        }
        input
    }

    /// Deregisters everything (daemon stop), waiting at most [`SHUTDOWN_WAIT`]; keeps taking
    /// the sessions' events meanwhile, so that no task waits on a full channel instead of
    /// deregistering.
    pub async fn shutdown(&mut self, events: &mut mpsc::Receiver<SaspEvent>) {
        let mut set = tokio::task::JoinSet::new();
        for s in std::mem::take(&mut self.sessions).into_values() {
            set.spawn(s.handle.shutdown(SHUTDOWN_WAIT));
        }
        loop {
            tokio::select! {
                done = set.join_next() => if done.is_none() { return },
                _ = events.recv() => {}
            }
        }
    }

    /// `sasp report`.
    pub fn report(&self, config: &Config) -> SaspReport {
        let mut groups = Vec::new();
        for (target, gwms) in &config.health.sasp {
            let name = group_name(target);
            let bounds: BTreeMap<MemberId, u32> = group_servers(config, target)
                .into_iter()
                .filter_map(|(id, m)| {
                    let p = config.clusters.get(&id.cluster)?.ports.get(&id.port)?;
                    Some((m, p.weightbound))
                })
                .collect();
            let weightbound = |member: &MemberId| bounds.get(member).copied().unwrap_or(20);
            let mut rows = Vec::new();
            for (gwm, settings) in gwms {
                let session = self.sessions.get(gwm);
                let members = session
                    .and_then(|s| s.view.weights.get(&name))
                    .map(|entries| {
                        entries
                            .iter()
                            .map(|(m, e)| MemberReport::new(m, e, weightbound(m)))
                            .collect()
                    })
                    .unwrap_or_default();
                rows.push(GwmReport {
                    address: gwm.0,
                    port: gwm.1,
                    state: match (session.and_then(|s| s.view.state), self.refused.get(gwm)) {
                        (Some(st), _) => state_name(st),
                        (None, Some(_)) => "refused",
                        (None, None) => "connecting",
                    },
                    lb_uid: session.map(|s| s.wanted.settings.lb_uid.clone()),
                    mode: settings.mode,
                    changed_only: settings.changed_only,
                    grace: settings.grace,
                    tls: settings.tls,
                    last_error: session
                        .and_then(|s| s.view.last_error.clone())
                        .or_else(|| self.refused.get(gwm).cloned()),
                    members,
                });
            }
            groups.push(GroupReport {
                cluster: target.cluster,
                port: target.port,
                name,
                gwms: rows,
            });
        }
        SaspReport { groups }
    }
}

fn state_name(s: GwmState) -> &'static str {
    match s {
        GwmState::Connecting => "connecting",
        GwmState::Registering => "registering",
        GwmState::Connected => "connected",
        GwmState::Backoff => "backoff",
        GwmState::Grace => "grace",
        GwmState::Lost => "lost",
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    }
}

/// `sasp report`: `{"groups":[...]}`.
#[derive(Debug, Serialize)]
pub struct SaspReport {
    pub groups: Vec<GroupReport>,
}

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub cluster: IpAddr,
    pub port: Option<u16>,
    /// The SASP group name (`CLUSTER@PORT` or `CLUSTER`).
    pub name: String,
    pub gwms: Vec<GwmReport>,
}

#[derive(Debug, Serialize)]
pub struct GwmReport {
    pub address: IpAddr,
    pub port: u16,
    pub state: &'static str,
    pub lb_uid: Option<String>,
    pub mode: tandem_core::config::SaspMode,
    pub changed_only: bool,
    pub grace: f64,
    pub tls: bool,
    pub last_error: Option<String>,
    pub members: Vec<MemberReport>,
}
