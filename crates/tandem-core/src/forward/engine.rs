//! The per-frame forwarding decision.
//!
//! [`Engine::handle`] takes one received Ethernet frame (which it may rewrite in place), the
//! time, and a place for frames to send besides it (ARP replies and requests), and says whether
//! to transmit the frame. It is shared by all workers (`&self`); state lives in the tables.
//!
//! ```text
//!  frame ─▶ parse ─┬─ ARP ──────────▶ learn neighbour; answer for owned addresses
//!                  ├─ to returnaddress ─▶ NAT reply: find record, translate back, to client
//!                  ├─ to cluster:port ──▶ record? ─yes─▶ forward to its server
//!                  │                        └─no──▶ SYN/UDP/hash: select, record, forward
//!                  └─ anything else ────▶ not ours: left to the node's kernel
//! ```

use super::conn::{Conn, ConnTable, NatMapping};
use super::neighbor::NeighborTable;
use super::plan::{CounterRegistry, Plan, PortPlan};
use super::stats::{DropReason, NodeCounters};
use crate::config::{Method, RepStrategy, Selection};
use crate::flow::{FlowKey, IPPROTO_TCP};
use crate::replication::{self, ConnectionRecord, Record};
use crate::select::{AffinityKey, AffinityTable, NatPool};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tandem_wire as wire;

/// What the ring told us about a frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct RxMeta {
    /// The TCP/UDP checksum is still partial (local sender with checksum offload).
    pub csum_not_ready: bool,
    /// The kernel stripped a VLAN tag.
    pub vlan: bool,
    /// The frame did not fit the ring slot (a coalesced super-frame).
    pub truncated: bool,
}

/// What to do with the received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the rewritten frame (its first `n` bytes).
    Transmit(usize),
    /// Tandem handled it (e.g. an ARP request); nothing to send on.
    Consumed,
    /// Not Tandem's business: the node's kernel gets its own copy anyway.
    Pass,
    /// Dropped and counted.
    Drop(DropReason),
}

/// Records waiting for the replication sender, filled by the workers. Bounded: when full,
/// records are dropped and counted (the age rule sends them again later) rather than stalling
/// forwarding.
#[derive(Default)]
pub struct ReplicationQueue {
    records: Mutex<Vec<Record>>,
    /// Records dropped because the queue was full.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Whether records are wanted now (this node is Active with a compatible partner).
    pub enabled: std::sync::atomic::AtomicBool,
}

/// Most records the queue holds between two drains.
pub const REPLICATION_QUEUE: usize = 1 << 20;

impl ReplicationQueue {
    fn push(&self, r: Record) {
        let mut q = self.records.lock();
        if q.len() >= REPLICATION_QUEUE {
            self.dropped.fetch_add(1, Relaxed);
        } else {
            q.push(r);
        }
    }
    fn wanted(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    /// Takes every queued record.
    pub fn drain(&self) -> Vec<Record> {
        std::mem::take(&mut *self.records.lock())
    }
}

fn replicates_connections(r: RepStrategy) -> bool {
    matches!(r, RepStrategy::Connection | RepStrategy::Both)
}

fn replicates_affinity(r: RepStrategy) -> bool {
    matches!(r, RepStrategy::Affinity | RepStrategy::Both)
}

/// The shared forwarding state of a node.
pub struct Engine {
    plan: ArcSwap<Plan>,
    pub conns: ConnTable,
    pub affinity: AffinityTable,
    pub natpool: NatPool,
    pub neighbors: NeighborTable,
    pub node: NodeCounters,
    pub counters: CounterRegistry,
    pub replication: ReplicationQueue,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            plan: ArcSwap::from_pointee(Plan::default()),
            conns: ConnTable::default(),
            affinity: AffinityTable::default(),
            natpool: NatPool::new(crate::select::DEFAULT_PORT_RANGE),
            neighbors: NeighborTable::default(),
            node: NodeCounters::default(),
            counters: CounterRegistry::default(),
            replication: ReplicationQueue::default(),
        }
    }
}

const MTU_FRAME: usize = 1514;

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

impl Engine {
    /// Installs a new plan. Returns frames to send: gratuitous ARPs for addresses Tandem newly
    /// answers for, ARP requests for next hops not yet resolved, and TCP resets for clients of
    /// servers that went down on `reset yes` ports.
    pub fn install(&self, plan: Plan, now: Instant) -> Vec<Vec<u8>> {
        let old = self.plan.swap(Arc::new(plan));
        let new = self.plan.load();
        let mut out = Vec::new();
        let before: std::collections::HashSet<IpAddr> = old.owned_addresses().into_iter().collect();
        for ip in new.owned_addresses() {
            if !before.contains(&ip)
                && let Some(a) = v4(ip)
            {
                out.push(wire::gratuitous_arp(new.our_mac, a, false).to_vec());
                out.push(wire::gratuitous_arp(new.our_mac, a, true).to_vec());
                self.node.arp_sent.fetch_add(2, Relaxed);
            }
        }
        self.neighbors.retain(|ip| new.neighbors.contains(&ip));
        out.extend(self.ask_neighbors(&new, now));
        // A standby keeps (replicated) records: they are what lets it carry on the
        // connections after a takeover. Executor stop clears them (see `clear`).
        out.extend(self.reset_and_prune(&new, now));
        out
    }

    /// Ends every record (executor stop).
    pub fn clear(&self, now: Instant) {
        let gone = self.conns.remove_where(|_| true);
        self.release(&gone);
        let _ = self.affinity.expire(now, |_, _| None);
        self.replication.drain();
    }

    /// Gratuitous ARPs (request and reply form) for every owned address, e.g. to re-announce.
    pub fn announcements(&self) -> Vec<Vec<u8>> {
        let plan = self.plan.load();
        let mut out = Vec::new();
        for ip in plan.owned_addresses() {
            if let Some(a) = v4(ip) {
                out.push(wire::gratuitous_arp(plan.our_mac, a, false).to_vec());
                out.push(wire::gratuitous_arp(plan.our_mac, a, true).to_vec());
                self.node.arp_sent.fetch_add(2, Relaxed);
            }
        }
        out
    }

    fn ask_neighbors(&self, plan: &Plan, now: Instant) -> Vec<Vec<u8>> {
        let Some(nfa) = plan.nfa else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &ip in &plan.neighbors {
            if self.neighbors.get(ip).is_none() && self.neighbors.should_ask(ip, now) {
                out.push(wire::arp_request(plan.our_mac, nfa, ip).to_vec());
            }
        }
        out
    }

    /// Records of servers no longer configured end; clients of servers that went down on
    /// `reset yes` ports get a TCP reset.
    fn reset_and_prune(&self, plan: &Plan, now: Instant) -> Vec<Vec<u8>> {
        let mut resets = Vec::new();
        let gone = self.conns.remove_where(|c| {
            let Some(port) = plan.port(c.key.dst_ip, c.key.dst_port, c.key.proto) else {
                return true;
            };
            let Some(server) = port.server(c.server) else {
                return true;
            };
            if server.accepts_new
                || !port.config.reset
                || c.key.proto != IPPROTO_TCP
                || !plan.forwarding
            {
                return false;
            }
            if let (Some(cluster), Some(client)) = (v4(c.key.dst_ip), v4(c.key.src_ip)) {
                resets.push(wire::tcp_rst_ipv4(
                    plan.our_mac,
                    c.client_mac,
                    SocketAddrV4::new(cluster, c.key.dst_port),
                    SocketAddrV4::new(client, c.key.src_port),
                    c.client_ack,
                    None,
                ));
            }
            true
        });
        self.node
            .resets_sent
            .fetch_add(resets.len() as u64, Relaxed);
        if self.replication.wanted() {
            for c in &gone {
                let replicate = plan
                    .port(c.key.dst_ip, c.key.dst_port, c.key.proto)
                    .is_some_and(|p| replicates_connections(p.config.repstrategy));
                if replicate && let Some(mut r) = ConnectionRecord::from_conn(c, now) {
                    r.ended = true;
                    self.replication.push(Record::Connection(r));
                }
            }
        }
        self.release(&gone);
        resets
    }

    fn release(&self, gone: &[Conn]) {
        for c in gone {
            // Closing records stopped counting as active when their FIN or RST went by.
            if c.closing_since.is_none() {
                c.counters.active.fetch_sub(1, Relaxed);
            }
            if let Some(n) = c.nat {
                self.natpool
                    .release(n.returnaddress, c.key.proto, n.nat_port);
            }
        }
    }

    fn replicate_affinity(&self, port: &PortPlan, client: IpAddr, now: Instant) {
        let key = AffinityKey {
            cluster: port.cluster,
            port: port.config.number,
            client,
        };
        if let Some((_, rec)) = self.affinity.snapshot_one(&key) {
            self.replication
                .push(Record::Affinity(replication::AffinityRecord::from_table(
                    &key,
                    &rec,
                    port.stickytime(),
                    now,
                )));
        }
    }

    /// Installs a record received from the partner (already validated against the
    /// configuration): the connection then continues after a takeover, to the same server
    /// and with the same translation. An `ended` connection record deletes.
    pub fn install_replicated(&self, record: &Record, now: Instant) -> bool {
        match record {
            Record::Connection(r) => {
                let key = r.flow_key();
                if let Some(old) = self.conns.remove(&key) {
                    self.release(std::slice::from_ref(&old));
                }
                if r.ended {
                    return true;
                }
                let Some(counters) =
                    self.counters
                        .lookup(r.cluster.ip(), r.cluster.port(), r.server)
                else {
                    return false;
                };
                let conn = r.to_conn(now, counters);
                if let Some(n) = conn.nat {
                    self.natpool
                        .reserve(n.returnaddress, conn.key.proto, n.nat_port);
                }
                if conn.closing_since.is_none() {
                    conn.counters.active.fetch_add(1, Relaxed);
                }
                self.conns.insert(conn);
                true
            }
            Record::Affinity(a) => {
                let (key, rec) = a.to_table(now);
                self.affinity.insert_record(key, rec);
                true
            }
        }
    }

    /// Every record of replicating ports, for a full synchronisation of the partner.
    pub fn snapshot_records(&self, now: Instant) -> Vec<Record> {
        let plan = self.plan.load();
        let mut out = Vec::new();
        self.conns.for_each(|c| {
            if plan
                .port(c.key.dst_ip, c.key.dst_port, c.key.proto)
                .is_some_and(|p| replicates_connections(p.config.repstrategy))
                && let Some(r) = ConnectionRecord::from_conn(c, now)
            {
                out.push(Record::Connection(r));
            }
        });
        for (key, rec) in self.affinity.snapshot() {
            let port = plan
                .ports
                .iter()
                .find(|((c, p, _), _)| *c == key.cluster && *p == key.port)
                .map(|(_, pp)| pp);
            if let Some(pp) = port
                && replicates_affinity(pp.config.repstrategy)
                && pp.uses_affinity()
            {
                out.push(Record::Affinity(replication::AffinityRecord::from_table(
                    &key,
                    &rec,
                    pp.stickytime(),
                    now,
                )));
            }
        }
        out
    }

    /// Periodic work: ends expired connection and affinity records, asks again for unresolved
    /// next hops. Returns frames to send and the number of records ended.
    pub fn housekeeping(&self, now: Instant) -> (Vec<Vec<u8>>, usize) {
        let plan = self.plan.load();
        let fin = plan.fin_timeout;
        let gone = self.conns.remove_where(|c| c.expired(now, fin));
        self.release(&gone);
        self.affinity.expire(now, |cluster, port| {
            plan.ports
                .iter()
                .find(|((c, p, _), _)| *c == cluster && *p == port)
                .map(|(_, pp)| pp.stickytime())
        });
        (self.ask_neighbors(&plan, now), gone.len())
    }

    /// Decides what happens to one received frame. `out` receives extra frames to send.
    pub fn handle(
        &self,
        frame: &mut [u8],
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        self.node.received.fetch_add(1, Relaxed);
        let plan = self.plan.load();
        let verdict = self.decide(&plan, frame, meta, now, out);
        match verdict {
            Verdict::Drop(r) => self.node.drop(r),
            Verdict::Pass => {
                self.node.passed.fetch_add(1, Relaxed);
            }
            Verdict::Transmit(n) => {
                self.node.forwarded.fetch_add(1, Relaxed);
                self.node.forwarded_bytes.fetch_add(n as u64, Relaxed);
            }
            Verdict::Consumed => {}
        }
        verdict
    }

    fn decide(
        &self,
        plan: &Plan,
        frame: &mut [u8],
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let parsed = match wire::parse(frame) {
            Ok(p) => p,
            Err(_) if !plan.forwarding => return Verdict::Pass,
            Err(m) => return Verdict::Drop(malformed(m)),
        };
        // Next hops are learnt also while not forwarding, so that a node taking over has them.
        if let wire::Frame::Arp(arp) = &parsed {
            return self.arp(plan, arp, out);
        }
        if !plan.forwarding {
            return Verdict::Pass;
        }
        let pkt = match parsed {
            wire::Frame::Ip(pkt) => pkt,
            wire::Frame::IpOther { dst_ip, .. } => {
                return if plan.owns(dst_ip) {
                    Verdict::Drop(DropReason::UnsupportedProtocol)
                } else {
                    Verdict::Pass
                };
            }
            _ => return Verdict::Pass,
        };
        if pkt.dst_mac != plan.our_mac || !plan.owns(pkt.dst_ip) {
            return Verdict::Pass;
        }
        if meta.vlan {
            return Verdict::Drop(DropReason::Vlan);
        }
        if meta.truncated || frame.len() > MTU_FRAME {
            return Verdict::Drop(DropReason::Oversize);
        }
        if meta.csum_not_ready && wire::fill_l4_checksum(frame, &pkt).is_err() {
            return Verdict::Drop(DropReason::Truncated);
        }
        if plan.return_addresses.contains(&pkt.dst_ip) {
            return self.reply_from_server(plan, frame, &pkt, now);
        }
        match plan.port(pkt.dst_ip, pkt.dst_port, pkt.proto) {
            Some(port) => self.to_server(plan, port, frame, &pkt, now, out),
            None => Verdict::Drop(DropReason::NoPort),
        }
    }

    fn arp(&self, plan: &Plan, arp: &wire::Arp, out: &mut Vec<Vec<u8>>) -> Verdict {
        if plan.neighbors.contains(&arp.sender_ip) {
            self.neighbors.learn(arp.sender_ip, arp.sender_mac);
        }
        if arp.op == wire::ArpOp::Request
            && arp.sender_ip != arp.target_ip
            && plan.owns(IpAddr::V4(arp.target_ip))
        {
            out.push(
                wire::arp_reply(plan.our_mac, arp.target_ip, arp.sender_mac, arp.sender_ip)
                    .to_vec(),
            );
            self.node.arp_sent.fetch_add(1, Relaxed);
            return Verdict::Consumed;
        }
        Verdict::Pass
    }

    /// Client → cluster.
    fn to_server(
        &self,
        plan: &Plan,
        port: &PortPlan,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let key = FlowKey {
            proto: pkt.proto,
            src_ip: pkt.src_ip,
            src_port: pkt.src_port,
            dst_ip: pkt.dst_ip,
            dst_port: pkt.dst_port,
        };
        let tcp = pkt.proto == IPPROTO_TCP;
        let replicating = self.replication.wanted();
        let rep_conn = replicating && replicates_connections(port.config.repstrategy);
        let rep_aff =
            replicating && replicates_affinity(port.config.repstrategy) && port.uses_affinity();
        let syn = tcp && pkt.is_syn();
        let ending = tcp && (pkt.is_fin() || pkt.is_rst());
        let ack = if tcp { tcp_ack(frame, pkt) } else { 0 };
        // Existing record?
        let existing = self.conns.with(&key, |c| match c {
            // A new SYN on a closing record starts a new connection.
            Some(c) if !(syn && c.closing_since.is_some()) => {
                c.last_seen = now;
                c.staletimeout = port.staletimeout();
                if ack != 0 {
                    c.client_ack = ack;
                }
                let mut resend = false;
                if ending && c.closing_since.is_none() {
                    c.closing_since = Some(now);
                    c.counters.active.fetch_sub(1, Relaxed);
                    resend = true;
                }
                if rep_conn || rep_aff {
                    // The age rule: a record whose replicated copy is older than half its
                    // lifetime is sent again.
                    let half = if rep_aff && port.config.stickytime > 0 {
                        port.stickytime().min(port.staletimeout()) / 2
                    } else {
                        port.staletimeout() / 2
                    };
                    resend |= c
                        .replicated_at
                        .is_none_or(|t| now.saturating_duration_since(t) >= half);
                }
                let record = (resend && replicating).then(|| {
                    c.replicated_at = Some(now);
                    ConnectionRecord::from_conn(c, now)
                });
                Some((c.server, c.nat, c.counters.clone(), record.flatten()))
            }
            _ => None,
        });
        let (server_addr, nat, counters) = match existing {
            Some((server, nat, counters, record)) => {
                if let Some(r) = record {
                    if rep_conn {
                        self.replication.push(Record::Connection(r));
                    }
                    if rep_aff {
                        self.replicate_affinity(port, pkt.src_ip, now);
                    }
                }
                (server, nat, counters)
            }
            None => {
                let affinity_key = AffinityKey {
                    cluster: port.cluster,
                    port: port.config.number,
                    client: pkt.src_ip,
                };
                // Choose a server.
                let chosen = if port.config.selection == Selection::Hash {
                    port.maglev
                        .as_ref()
                        .and_then(|m| m.lookup(key.stable_hash()))
                } else if tcp && !syn {
                    // Mid-connection segment without a record: only a live affinity record
                    // (e.g. replicated from the partner) can place it.
                    if port.uses_affinity() {
                        self.affinity.lookup(&affinity_key, now, port.stickytime())
                    } else {
                        None
                    }
                    .or(None)
                } else {
                    let sticky = if port.uses_affinity() {
                        self.affinity
                            .lookup(&affinity_key, now, port.stickytime())
                            .filter(|s| port.server(*s).is_some_and(|s| s.accepts_new))
                    } else {
                        None
                    };
                    sticky.or_else(|| port.picker.pick())
                };
                let Some(server_addr) = chosen else {
                    return Verdict::Drop(
                        if tcp && !syn && port.config.selection != Selection::Hash {
                            DropReason::NoConnection
                        } else {
                            DropReason::NoServer
                        },
                    );
                };
                let Some(server) = port.server(server_addr) else {
                    return Verdict::Drop(DropReason::NoServer);
                };
                let nat = match (port.config.method, server.returnaddress) {
                    (Method::Nat, Some(ret)) => {
                        match self
                            .natpool
                            .allocate_preferring(ret, pkt.proto, pkt.src_port)
                        {
                            Some(p) => Some(NatMapping {
                                returnaddress: ret,
                                nat_port: p,
                                server_port: server.server_port,
                            }),
                            None => return Verdict::Drop(DropReason::NatPortsExhausted),
                        }
                    }
                    (Method::Nat, None) => return Verdict::Drop(DropReason::NoServer),
                    (Method::Mac, _) => None,
                };
                if port.uses_affinity() && (syn || !tcp) {
                    let rec = self
                        .affinity
                        .touch_new_connection(&affinity_key, server_addr, now);
                    if rep_aff {
                        self.replication.push(Record::Affinity(
                            replication::AffinityRecord::from_table(
                                &affinity_key,
                                &rec,
                                port.stickytime(),
                                now,
                            ),
                        ));
                    }
                }
                server.counters.total.fetch_add(1, Relaxed);
                if !ending {
                    server.counters.active.fetch_add(1, Relaxed);
                }
                let conn = Conn {
                    key,
                    server: server_addr,
                    nat,
                    client_mac: pkt.src_mac,
                    created: now,
                    last_seen: now,
                    closing_since: if ending { Some(now) } else { None },
                    staletimeout: port.staletimeout(),
                    client_ack: ack,
                    replicated_at: rep_conn.then_some(now),
                    counters: server.counters.clone(),
                };
                if rep_conn && let Some(r) = ConnectionRecord::from_conn(&conn, now) {
                    self.replication.push(Record::Connection(r));
                }
                if let Some(old) = self.conns.insert(conn) {
                    self.release(std::slice::from_ref(&old));
                }
                (server_addr, nat, server.counters.clone())
            }
        };
        let Some(server) = port.server(server_addr) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        let Some(next_hop) = v4(server.next_hop) else {
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        let Some(mac) = self.neighbors.get(next_hop) else {
            if let Some(nfa) = plan.nfa
                && self.neighbors.should_ask(next_hop, now)
            {
                out.push(wire::arp_request(plan.our_mac, nfa, next_hop).to_vec());
            }
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        if let Some(n) = nat {
            let (Some(srv), Some(ret)) = (v4(server_addr), v4(n.returnaddress)) else {
                return Verdict::Drop(DropReason::NoServer);
            };
            if wire::rewrite_dst(frame, pkt, srv, n.server_port).is_err()
                || wire::rewrite_src(frame, pkt, ret, n.nat_port).is_err()
            {
                return Verdict::Drop(DropReason::Truncated);
            }
        }
        if wire::set_src_mac(frame, plan.our_mac).is_err() || wire::set_dst_mac(frame, mac).is_err()
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        counters.count(frame.len());
        Verdict::Transmit(frame.len())
    }

    /// Server → returnaddress (NAT replies).
    fn reply_from_server(
        &self,
        plan: &Plan,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
    ) -> Verdict {
        let rkey = FlowKey {
            proto: pkt.proto,
            src_ip: pkt.src_ip,
            src_port: pkt.src_port,
            dst_ip: pkt.dst_ip,
            dst_port: pkt.dst_port,
        };
        let Some(key) = self.conns.lookup_reverse(&rkey) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let ending = pkt.proto == IPPROTO_TCP && (pkt.is_fin() || pkt.is_rst());
        let found = self.conns.with(&key, |c| {
            c.map(|c| {
                c.last_seen = now;
                if ending && c.closing_since.is_none() {
                    c.closing_since = Some(now);
                    c.counters.active.fetch_sub(1, Relaxed);
                }
                (c.client_mac, c.counters.clone())
            })
        });
        let Some((client_mac, counters)) = found else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let (Some(cluster), Some(client)) = (v4(key.dst_ip), v4(key.src_ip)) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        if wire::rewrite_src(frame, pkt, cluster, key.dst_port).is_err()
            || wire::rewrite_dst(frame, pkt, client, key.src_port).is_err()
            || wire::set_src_mac(frame, plan.our_mac).is_err()
            || wire::set_dst_mac(frame, client_mac).is_err()
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        counters.count(frame.len());
        Verdict::Transmit(frame.len())
    }
}

/// The ACK number of a TCP segment (0 when the ACK flag is off).
fn tcp_ack(frame: &[u8], pkt: &wire::Packet) -> u32 {
    if pkt.tcp_flags & 0x10 == 0 {
        return 0;
    }
    frame
        .get(pkt.l4 + 8..pkt.l4 + 12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

fn malformed(m: wire::Malformed) -> DropReason {
    use wire::Malformed as M;
    match m {
        M::Truncated => DropReason::Truncated,
        M::BadIpVersion => DropReason::BadIpVersion,
        M::BadIhl => DropReason::BadIhl,
        M::BadTotalLength => DropReason::BadTotalLength,
        M::Fragment => DropReason::Fragment,
        M::BadTcpHeader => DropReason::BadTcpHeader,
        M::BadUdpLength => DropReason::BadUdpLength,
        M::BadArp => DropReason::BadArp,
    }
}
