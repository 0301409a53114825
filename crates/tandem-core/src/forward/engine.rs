//! The per-frame forwarding decision.
//!
//! [`Engine::handle`] takes one received Ethernet frame (which it may rewrite in place), the
//! time, and a place for frames to send besides it (ARP and neighbour discovery answers and
//! questions), and says whether to transmit the frame. It is shared by all workers (`&self`);
//! state lives in the tables. IPv4 and IPv6 go the same way.
//!
//! ```text
//!  frame ─▶ parse ─┬─ ARP, NS/NA ────▶ learn neighbour; answer for owned addresses
//!                  ├─ tagged / too large ─▶ counted drop (vlan per id, oversize)
//!                  ├─ fragment ─────▶ first: as below, rewrite remembered; later: the same
//!                  ├─ ICMP error ───▶ quoted flow's record: to its server / back to client
//!                  ├─ to returnaddress ─▶ NAT reply: find record, translate back, to client
//!                  ├─ to cluster:port ──▶ record? ─yes─▶ forward to its server
//!                  │                        └─no──▶ SYN/UDP/hash: select, record, forward
//!                  └─ anything else ────▶ not ours: left to the node's kernel
//! ```

use super::control::{self, ControlFrame};
use super::neighbor::NeighborTable;
use super::plan::{CounterRegistry, Plan, PortPlan};
use super::replicate::{ReplicatedCounters, ReplicationQueue, replicates_connections};
use super::stats::{DropReason, NodeCounters};
use super::table::{ConnTable, Removed};

use crate::flow::IPPROTO_TCP;
use crate::replication::{self, ConnectionRecord, Record};
use crate::select::{AffinityKey, AffinityTable, NatPool};
use arc_swap::ArcSwap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tandem_wire as wire;

/// What the ring told us about a frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct RxMeta {
    /// The TCP/UDP checksum is still partial (local sender with checksum offload).
    pub csum_not_ready: bool,
    /// The kernel stripped a VLAN tag.
    pub vlan: bool,
    /// The VLAN id of the tag the kernel stripped (`TP_STATUS_VLAN_VALID`, the low 12 bits
    /// of `tp_vlan_tci`); `None` when untagged or when the ring does not say.
    pub vlan_id: Option<u16>,
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

/// `maxconnections` when the daemon does not say (about 1.25 GiB of records; see
/// [`default_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1 << 20;

/// Memory budgeted per connection record: a NAT connection record with its port index entry,
/// its half-open queue entries and hash-table slack (780 B measured just after a table
/// doubled, the worst case), plus an affinity record of its own (224 B); measured by
/// `tests/memory.rs`, see BENCHMARKS.md ("SYN flood").
pub const BUDGET_BYTES_PER_RECORD: u64 = 1280;

/// The default `maxconnections` for a machine with `mem_total` bytes of memory: a quarter of
/// the memory at [`BUDGET_BYTES_PER_RECORD`] bytes a record, between 65 536 and 64 Mi records
/// (4 GiB of memory → 838 860 records). The daemon reads `MemTotal` from /proc/meminfo (or
/// its cgroup's `memory.max` when lower).
pub fn default_max_connections(mem_total: u64) -> usize {
    let n = mem_total / 4 / BUDGET_BYTES_PER_RECORD;
    usize::try_from(n.clamp(1 << 16, 1 << 26)).unwrap_or(1 << 26)
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
    /// Replicated records installed and refused.
    pub replicated: ReplicatedCounters,
    /// `maxconnections` when the configuration does not set it.
    default_max: usize,
    /// Tagged frames dropped per VLAN id (see `vlan.rs`).
    pub vlans: super::vlan::VlanDrops,
    /// Where the later fragments of recently forwarded first fragments go.
    pub fragments: super::fragments::FragmentTable,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(DEFAULT_MAX_CONNECTIONS)
    }
}

pub(super) fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

impl Engine {
    /// An engine whose tables hold `default_max` records unless the configuration sets
    /// `maxconnections`.
    pub fn new(default_max: usize) -> Engine {
        Engine {
            plan: ArcSwap::from_pointee(Plan::default()),
            conns: ConnTable::new(default_max),
            affinity: AffinityTable::default(),
            natpool: NatPool::new(crate::select::DEFAULT_PORT_RANGE),
            neighbors: NeighborTable::default(),
            node: NodeCounters::default(),
            counters: CounterRegistry::default(),
            replication: ReplicationQueue::default(),
            replicated: ReplicatedCounters::default(),
            default_max,
            vlans: Default::default(),
            fragments: Default::default(),
        }
    }

    /// The limit of the connection and affinity tables now.
    pub fn max_connections(&self) -> usize {
        self.conns.max()
    }

    /// Records of a cluster port now: (connection records, affinity records). Both are
    /// counts the tables keep as records go in and out (connection records per server, summed
    /// over the port's servers; affinity records per port).
    pub fn port_records(&self, cluster: IpAddr, port: u16) -> (u64, u64) {
        let plan = self.plan.load();
        let connections = plan
            .ports
            .values()
            .filter(|p| p.cluster == cluster && p.config.number == port)
            .flat_map(|p| p.servers.iter())
            .map(|s| s.counters.records())
            .sum();
        (
            connections,
            self.affinity.port_records(cluster, port) as u64,
        )
    }

    /// The plan in force.
    pub fn plan(&self) -> arc_swap::Guard<Arc<Plan>> {
        self.plan.load()
    }

    /// Installs a new plan. Returns frames to send: gratuitous ARPs and unsolicited neighbour
    /// advertisements for addresses Tandem newly answers for, ARP requests and neighbour
    /// solicitations for next hops not yet resolved, and TCP resets for clients of servers
    /// that went down on `reset yes` ports.
    pub fn install(&self, plan: Plan, now: Instant) -> Vec<ControlFrame> {
        let max = plan.max_connections.unwrap_or(self.default_max);
        self.conns.set_max(max);
        self.affinity.set_max(max);
        self.affinity.set_unconfirmed_timeout(plan.halfopen_timeout);
        let old = self.plan.swap(Arc::new(plan));
        let new = self.plan.load();
        let mut out = Vec::new();
        let before: std::collections::HashSet<IpAddr> = old.owned_addresses().into_iter().collect();
        for ip in new.owned_addresses() {
            if !before.contains(&ip) {
                out.extend(control::announce(new.our_mac, ip));
            }
        }
        // A standby keeps (replicated) records: they are what lets it carry on the
        // connections after a takeover. Executor stop clears them (see `clear`).
        out.extend(self.reset_and_prune(&new, now));
        for f in &out {
            self.count_sent(0, f);
        }
        self.neighbors.retain(|ip| new.neighbors.contains(&ip));
        out.extend(self.ask_neighbors(&new, now));
        out
    }

    /// Ends every record (executor stop).
    pub fn clear(&self, now: Instant) {
        let gone = self.conns.remove_where(|_| true);
        self.release(0, &gone);
        let _ = self.affinity.expire(now, |_, _| None);
        self.replication.drain();
    }

    /// Announcements of every owned address, e.g. to re-announce: gratuitous ARPs (request
    /// and reply form) for IPv4, an unsolicited neighbour advertisement for IPv6.
    pub fn announcements(&self) -> Vec<ControlFrame> {
        let plan = self.plan.load();
        let mut out = Vec::new();
        for ip in plan.owned_addresses() {
            out.extend(control::announce(plan.our_mac, ip));
        }
        for f in &out {
            self.count_sent(0, f);
        }
        out
    }

    /// Questions for unresolved next hops, counted.
    fn ask_neighbors(&self, plan: &Plan, now: Instant) -> Vec<ControlFrame> {
        let out: Vec<ControlFrame> = plan
            .neighbors
            .iter()
            .filter(|&&ip| self.neighbors.get(ip).is_none())
            .filter_map(|&ip| self.solicit(plan, ip, now))
            .collect();
        for f in &out {
            self.count_sent(0, f);
        }
        out
    }

    /// Records of servers no longer configured end; clients of servers that went down (by the
    /// operator or an advisor, or to weight 0; not quiesced ones) on `reset yes` ports get a
    /// TCP reset. It works off the plan, so an advisor's down resets as `server down` does.
    fn reset_and_prune(&self, plan: &Plan, now: Instant) -> Vec<ControlFrame> {
        let mut resets = Vec::new();
        let gone = self.conns.remove_where(|c| {
            let Some(port) = plan.port(c.key.dst_ip, c.key.dst_port, c.key.proto) else {
                return true;
            };
            let Some(server) = port.server(c.server) else {
                return true;
            };
            // Down (by the operator or an advisor) or at weight 0: `reset yes` ends the
            // connections. Quiesced servers keep theirs.
            if server.keeps_affinity
                || !port.config.reset
                || c.key.proto != IPPROTO_TCP
                || !plan.owns(c.key.dst_ip)
            {
                return false;
            }
            resets.extend(control::reset(
                plan.our_mac,
                c.client_mac,
                SocketAddr::new(c.key.dst_ip, c.key.dst_port),
                SocketAddr::new(c.key.src_ip, c.key.src_port),
                c.client_ack,
            ));
            true
        });
        if self.replication.wanted() {
            for Removed { conn: c, .. } in &gone {
                let replicate = plan
                    .port(c.key.dst_ip, c.key.dst_port, c.key.proto)
                    .is_some_and(|p| replicates_connections(p.config.repstrategy));
                if replicate && let Some(mut r) = ConnectionRecord::from_conn(c, now) {
                    r.ended = true;
                    self.replication.push(0, now, Record::Connection(r));
                }
            }
        }
        self.release(0, &gone);
        resets
    }

    /// Gives back what removed records held: their place in the active counts, their NAT
    /// port (if it was theirs) and, for a half-open record, the affinity record it made.
    /// `worker` is the counting worker (0 for the control plane).
    ///
    /// The server's counters are the plan's in force: a record of a server no longer
    /// configured counts nowhere (its counters went with it).
    pub(super) fn release(&self, worker: usize, gone: &[Removed]) {
        if gone.is_empty() {
            return;
        }
        let plan = self.plan.load();
        for Removed {
            conn: c,
            owned_port,
        } in gone
        {
            if let Some(s) = plan
                .port(c.key.dst_ip, c.key.dst_port, c.key.proto)
                .and_then(|p| p.server(c.server))
            {
                s.counters.add_records(worker, -1);
                // Closing records stopped counting as active when their FIN or RST went by.
                if c.closing_since.is_none() {
                    s.counters.add_active(worker, -1);
                }
            }
            if *owned_port && let Some(n) = c.nat {
                self.natpool
                    .release(n.returnaddress, c.key.proto, n.nat_port);
            }
            if c.is_halfopen() && c.made_affinity {
                let key = AffinityKey {
                    cluster: c.key.dst_ip,
                    port: c.key.dst_port,
                    client: c.key.src_ip,
                };
                // The record keeps milliseconds: its `created` is the affinity record's time
                // rounded down.
                self.affinity.remove_if(&key, |r| {
                    r.server == c.server
                        && r.last_new_connection >= c.created
                        && r.last_new_connection - c.created < std::time::Duration::from_millis(1)
                });
            }
        }
    }

    pub(super) fn replicate_affinity(
        &self,
        worker: usize,
        port: &PortPlan,
        client: IpAddr,
        now: Instant,
    ) {
        let key = AffinityKey {
            cluster: port.cluster,
            port: port.config.number,
            client,
        };
        if let Some((_, rec)) = self.affinity.snapshot_one(&key) {
            let r = replication::AffinityRecord::from_table(&key, &rec, port.stickytime(), now);
            self.replication.push(worker, now, Record::Affinity(r));
        }
    }

    /// Periodic work: ends expired connection and affinity records, asks again for unresolved
    /// next hops (ARP requests, neighbour solicitations). Returns frames to send and the
    /// number of records ended.
    pub fn housekeeping(&self, now: Instant) -> (Vec<Vec<u8>>, usize) {
        let plan = self.plan.load();
        let (fin, half) = (plan.fin_timeout, plan.halfopen_timeout);
        let gone = self.conns.remove_where(|c| c.expired(now, fin, half));
        self.release(0, &gone);
        self.conns.trim(now, half);
        self.affinity.expire(now, |cluster, port| {
            plan.ports
                .iter()
                .find(|((c, p, _), _)| *c == cluster && *p == port)
                .map(|(_, pp)| pp.stickytime())
        });
        let ask = self.ask_neighbors(&plan, now);
        (ask.into_iter().map(|f| f.bytes).collect(), gone.len())
    }

    /// [`Engine::handle_on`] for worker 0 (one worker, tests, the control plane).
    pub fn handle(
        &self,
        frame: &mut [u8],
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        self.handle_on(0, frame, meta, now, out)
    }

    /// Decides what happens to one received frame, for forwarding worker `worker` (its own
    /// counter slots and replication queue). `out` receives extra frames to send.
    pub fn handle_on(
        &self,
        worker: usize,
        frame: &mut [u8],
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        self.node.received.add(worker, 1);
        let plan = self.plan.load();
        let verdict = self.decide(worker, &plan, frame, meta, now, out);
        match verdict {
            Verdict::Drop(r) => self.node.drop_on(worker, r),
            Verdict::Pass => self.node.passed.add(worker, 1),
            Verdict::Transmit(n) => {
                self.node.forwarded.add(worker, 1);
                self.node.forwarded_bytes.add(worker, n as u64);
            }
            Verdict::Consumed => {}
        }
        verdict
    }

    /// How many forwarding workers call [`Engine::handle_on`] (indices `0..n`): the
    /// replication queue is split into `n` bounded queues (see [`ReplicationQueue`]). Counter
    /// slots need no set-up. Call it before the workers start; 1 until then.
    pub fn set_workers(&self, n: usize) {
        self.replication.set_workers(n);
    }

    pub(super) fn decide(
        &self,
        worker: usize,
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
        match &parsed {
            // Tandem answers on its own network only: a reply to a tagged request would go out
            // untagged (see vlan.rs).
            wire::Frame::Arp(_) | wire::Frame::Ndp(_) if super::vlan::foreign_vlan(frame, meta) => {
                return Verdict::Pass;
            }
            wire::Frame::Arp(arp) => return self.arp(worker, plan, arp, out),
            wire::Frame::Ndp(n) => return self.ndp(worker, plan, n, out),
            _ => {}
        }
        if !plan.forwarding {
            return Verdict::Pass;
        }
        let pkt = match parsed {
            wire::Frame::Ip(pkt) => pkt,
            wire::Frame::Fragment(f) => {
                return self.fragment(worker, plan, frame, &f, meta, now, out);
            }
            wire::Frame::IcmpError(e) => {
                return self.icmp_error(worker, plan, frame, &e, meta, now, out);
            }
            wire::Frame::IpOther { dst_ip, .. } => {
                return if plan.owns(dst_ip) {
                    Verdict::Drop(DropReason::UnsupportedProtocol)
                } else {
                    Verdict::Pass
                };
            }
            _ => return Verdict::Pass,
        };
        if let Some(v) = self.admit_owned(plan, frame, (pkt.dst_mac, pkt.dst_ip, pkt.l3), meta) {
            return v;
        }
        if meta.csum_not_ready && wire::fill_l4_checksum(frame, &pkt).is_err() {
            return Verdict::Drop(DropReason::Truncated);
        }
        if plan.return_addresses.contains(&pkt.dst_ip) {
            return self.reply_from_server(worker, plan, frame, &pkt, now);
        }
        match plan.port(pkt.dst_ip, pkt.dst_port, pkt.proto) {
            Some(port) => self.to_server(worker, plan, port, frame, &pkt, now, out),
            None => Verdict::Drop(DropReason::NoPort),
        }
    }
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
        M::BadExtensionHeader => DropReason::BadExtensionHeader,
        M::BadNdp => DropReason::BadNdp,
    }
}
