//! The engine's side of replication: when a record goes to the partner, and how a record from
//! the partner is installed.
//!
//! The rules are the seed's (`load-balancer-ha-maintenance.txt`), in one predicate,
//! [`replication_needed`] (IPVS has the same in `ip_vs_sync_conn_needed`). A connection record
//! is queued when
//!
//! * the connection is established: the client's first ACK after its SYN (a UDP flow, which
//!   has no handshake, when its first datagram makes the record). A half-open TCP record is
//!   never sent, so a SYN flood costs the partner nothing; its affinity record goes with the
//!   connection record at the handshake;
//! * it ends: a FIN or RST from the client, or (NAT) from the server;
//! * a packet arrives and the copy the partner holds is older than half its lifetime
//!   (half the staletimeout, or half the stickytime when affinity is replicated too and that
//!   is shorter);
//! * its server is taken out (`server down` with `port reset yes`): an `ended` record, sent by
//!   [`Engine::install`]'s pruning.
//!
//! The transition of the Active into Standby sends every record ([`Engine::snapshot_records`],
//! driven by the HA node; streamed from the table by [`Engine::snapshot_cursor`], see
//! `snapshot.rs`, which also installs a full synchronisation in parallel).
//!
//! A port sends only what its `selectionalgorithm` makes: `affinity` ports have no connection
//! records (their affinity records follow the rule of `forward/by_affinity.rs`), and a
//! connection record received for one is refused ([`Refused::AffinityPort`]).

use super::conn::Conn;
use super::engine::Engine;
use super::plan::PortPlan;
use super::stats::{MAX_WORKERS, PerWorker};
use crate::config::{Method, RepStrategy};
use crate::replication::Record;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Records waiting for the replication sender, one bounded queue per forwarding worker.
///
/// Worker `i` pushes into queue `i % workers` ([`Engine::set_workers`]; 1 until set) under
/// that queue's own lock, so workers never wait for each other; the HA loop's
/// [`drain`](Self::drain) takes every queue in turn. Each queue holds at most
/// [`REPLICATION_QUEUE`] ÷ workers records: a push beyond is dropped and counted in `dropped`
/// (never a stall), and the record is sent again by the age rule ([`needs_resend`]) on a
/// later packet. Records carry the time of their push; a drain merges the queues in that
/// order (stable within a queue), so two changes of one connection seen by two workers reach
/// the sender in the order they happened.
pub struct ReplicationQueue {
    queues: Box<[Line<Mutex<Timed>>]>,
    /// Queues in use, and so the bound of each (see [`Engine::set_workers`]).
    workers: AtomicUsize,
    /// Records dropped because their worker's queue was full.
    pub dropped: PerWorker,
    /// Whether records are wanted now (this node is Active with a compatible partner).
    pub enabled: AtomicBool,
}

/// One worker's queue: records with the time of their push.
type Timed = Vec<(Instant, Record)>;

/// A queue on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Line<T>(T);

impl Default for ReplicationQueue {
    fn default() -> Self {
        ReplicationQueue {
            queues: (0..MAX_WORKERS).map(|_| Line::default()).collect(),
            workers: AtomicUsize::new(1),
            dropped: PerWorker::default(),
            enabled: AtomicBool::new(false),
        }
    }
}

/// Most records the queues hold together between two drains.
pub const REPLICATION_QUEUE: usize = 1 << 20;

impl ReplicationQueue {
    fn workers(&self) -> usize {
        self.workers.load(Relaxed).clamp(1, MAX_WORKERS)
    }
    pub(super) fn set_workers(&self, n: usize) {
        self.workers.store(n.clamp(1, MAX_WORKERS), Relaxed);
    }
    /// Queues `r`, pushed by `worker` at `now`; counted and dropped when its queue is full.
    pub(super) fn push(&self, worker: usize, now: Instant, r: Record) {
        let n = self.workers();
        let mut q = self.queues[worker % n].0.lock();
        if q.len() >= REPLICATION_QUEUE / n {
            drop(q);
            self.dropped.add(worker, 1);
        } else {
            q.push((now, r));
        }
    }
    pub(super) fn wanted(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    /// Takes every queued record of every worker, in the order they were pushed.
    pub fn drain(&self) -> Vec<Record> {
        let mut all: Vec<(Instant, Record)> = Vec::new();
        let mut queues = 0;
        for q in self.queues.iter() {
            let mut q = q.0.lock();
            if q.is_empty() {
                continue;
            }
            queues += 1;
            if all.is_empty() {
                std::mem::swap(&mut all, &mut q);
            } else {
                all.append(&mut q);
            }
        }
        if queues > 1 {
            // Stable: a queue's own order is kept among equal times.
            all.sort_by_key(|(t, _)| *t);
        }
        all.into_iter().map(|(_, r)| r).collect()
    }
    /// Records waiting now (every queue).
    pub fn len(&self) -> usize {
        self.queues.iter().map(|q| q.0.lock().len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(super) fn replicates_connections(r: RepStrategy) -> bool {
    matches!(r, RepStrategy::Connection | RepStrategy::Both)
}

pub(super) fn replicates_affinity(r: RepStrategy) -> bool {
    matches!(r, RepStrategy::Affinity | RepStrategy::Both)
}

/// What just happened to a connection record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The record was made by the flow's first packet.
    Created,
    /// The client's first ACK after the packet that made the record (the handshake).
    Established,
    /// A FIN or RST, from the client or (NAT) from the server.
    Ending,
    /// Any other packet of the flow.
    Packet,
}

/// Whether the partner must get the record of `c` now, after `change` (the seed's rules; see
/// the module documentation). `half_life` is half the lifetime of the partner's copy
/// ([`PortPlan::replication_half_life`]). Half-open records are never sent.
pub fn replication_needed(c: &Conn, change: Change, now: Instant, half_life: Duration) -> bool {
    if c.is_halfopen() {
        return false;
    }
    match change {
        Change::Created | Change::Established | Change::Ending => true,
        Change::Packet => needs_resend(c, now, half_life),
    }
}

/// The age rule: the partner's copy of `c` is older than `half_life` (or it never had one),
/// so the next packet sends the record again. It is also what repairs a record dropped by a
/// full [`ReplicationQueue`].
pub fn needs_resend(c: &Conn, now: Instant, half_life: Duration) -> bool {
    c.replicated_at
        .is_none_or(|t| now.saturating_duration_since(t) >= half_life)
}

impl PortPlan {
    /// Half the lifetime of a replicated copy: the age after which the age rule sends a record
    /// again (half the staletimeout; half the stickytime if affinity is replicated and
    /// shorter).
    pub fn replication_half_life(&self) -> Duration {
        if replicates_affinity(self.config.repstrategy) && self.uses_affinity() {
            self.stickytime().min(self.staletimeout()) / 2
        } else {
            self.staletimeout() / 2
        }
    }
}

/// Why [`Engine::install_replicated`] refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum Refused {
    #[error("no such cluster port on this node")]
    UnknownPort,
    #[error("no such server on the port")]
    UnknownServer,
    #[error("NAT mapping does not match the port's method or the server's returnaddress")]
    NatMismatch,
    #[error("the NAT port is held by another connection")]
    NatPortBusy,
    #[error("the table is full (maxconnections) and no half-open record can make room")]
    TableFull,
    #[error("a connection record for a port with selectionalgorithm affinity (it keeps none)")]
    AffinityPort,
}

impl Refused {
    pub const ALL: [Refused; 6] = [
        Refused::UnknownPort,
        Refused::UnknownServer,
        Refused::NatMismatch,
        Refused::NatPortBusy,
        Refused::TableFull,
        Refused::AffinityPort,
    ];

    /// Operator-facing name.
    pub fn name(self) -> &'static str {
        match self {
            Refused::UnknownPort => "unknown-port",
            Refused::UnknownServer => "unknown-server",
            Refused::NatMismatch => "nat-mismatch",
            Refused::NatPortBusy => "nat-port-busy",
            Refused::TableFull => "table-full",
            Refused::AffinityPort => "affinity-port",
        }
    }
}

/// Replicated records installed and refused by reason.
#[derive(Debug, Default)]
pub struct ReplicatedCounters {
    pub installed: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
}

impl ReplicatedCounters {
    fn refuse(&self, r: Refused) -> Result<(), Refused> {
        self.refused[r as usize].fetch_add(1, Relaxed);
        Err(r)
    }
    /// Records refused for `r`.
    pub fn refused(&self, r: Refused) -> u64 {
        self.refused[r as usize].load(Relaxed)
    }
    /// Every reason with its count.
    pub fn all_refused(&self) -> Vec<(Refused, u64)> {
        Refused::ALL
            .iter()
            .map(|r| (*r, self.refused(*r)))
            .collect()
    }
}

impl Engine {
    /// Installs a record received from the partner: the connection then continues after a
    /// takeover, to the same server and with the same translation. An `ended` connection
    /// record deletes.
    ///
    /// Checked against this node's plan whatever the receiver checked: the cluster port and
    /// server must be configured, a NAT record must use the server's returnaddress and a NAT
    /// port no other connection holds, and the record's staletimeout is cut to the port's own
    /// (a forged record cannot live 2³² s; affinity records already expire by the port's
    /// stickytime). Refusals are counted in [`Engine::replicated`].
    pub fn install_replicated(&self, record: &Record, now: Instant) -> Result<(), Refused> {
        let plan = self.plan();
        let c = &self.replicated;
        match record {
            Record::Connection(r) => {
                let key = r.flow_key();
                let Some(port) = plan.port(r.cluster.ip(), r.cluster.port(), key.proto) else {
                    return c.refuse(Refused::UnknownPort);
                };
                if !port.uses_connection_records() {
                    return c.refuse(Refused::AffinityPort);
                }
                if r.ended {
                    if let Some(old) = self.conns.remove(&key) {
                        self.release(0, std::slice::from_ref(&old));
                    }
                    c.installed.fetch_add(1, Relaxed);
                    return Ok(());
                }
                let Some(server) = port.server(r.server) else {
                    return c.refuse(Refused::UnknownServer);
                };
                match (port.config.method, r.nat) {
                    (Method::Mac, None) => {}
                    (Method::Nat, Some(n)) if Some(n.returnaddress) == server.returnaddress => {}
                    _ => return c.refuse(Refused::NatMismatch),
                }
                if let Some(n) = r.nat
                    && self
                        .conns
                        .lookup_nat(n.returnaddress, key.proto, n.nat_port)
                        .is_some_and(|owner| owner != key)
                {
                    return c.refuse(Refused::NatPortBusy);
                }
                // The same connection's older copy goes first (its port may be this one).
                if let Some(old) = self.conns.remove(&key) {
                    self.release(0, std::slice::from_ref(&old));
                }
                if let Some(n) = r.nat
                    && !self.natpool.reserve(n.returnaddress, key.proto, n.nat_port)
                {
                    // In use by a flow being made, or outside the pool's range.
                    return c.refuse(Refused::NatPortBusy);
                }
                let release_port = || {
                    if let Some(n) = r.nat {
                        self.natpool.release(n.returnaddress, key.proto, n.nat_port);
                    }
                };
                if !self.conns.try_reserve() {
                    match self.conns.evict_halfopen(&key) {
                        Some(victim) => self.release(0, std::slice::from_ref(&victim)),
                        None => {
                            release_port();
                            return c.refuse(Refused::TableFull);
                        }
                    }
                }
                let mut conn = r.to_conn(now);
                conn.staletimeout = conn.staletimeout.min(port.staletimeout());
                // A TCP client that never acknowledged has not completed its handshake (this
                // engine never sends such a record; a forged or foreign one is kept only as
                // long as a half-open record, and makes room first).
                conn.established =
                    r.proto != crate::config::Protocol::Tcp || r.client_ack != 0 || r.closing;
                let active = conn.closing_since.is_none();
                if active {
                    server.counters.add_active(0, 1);
                }
                match self.conns.insert(conn) {
                    Ok(old) => {
                        server.counters.add_records(0, 1);
                        self.release(0, old.as_slice());
                    }
                    Err(_) => {
                        // Cannot happen (the pool had the port free). The port stays reserved
                        // rather than risk freeing another record's.
                        self.conns.unreserve();
                        if active {
                            server.counters.add_active(0, -1);
                        }
                        return c.refuse(Refused::NatPortBusy);
                    }
                }
                c.installed.fetch_add(1, Relaxed);
                Ok(())
            }
            Record::Affinity(a) => {
                let Some(port) = plan
                    .ports
                    .values()
                    .find(|p| p.cluster == a.cluster && p.config.number == a.port)
                    .filter(|p| p.uses_affinity())
                else {
                    return c.refuse(Refused::UnknownPort);
                };
                if port.server(a.server).is_none() {
                    return c.refuse(Refused::UnknownServer);
                }
                let (key, rec) = a.to_table(now);
                if !self.affinity.insert_record(key, rec) {
                    return c.refuse(Refused::TableFull);
                }
                c.installed.fetch_add(1, Relaxed);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::AffinityRecord;

    fn rec(n: u16) -> Record {
        Record::Affinity(AffinityRecord {
            cluster: "192.0.2.100".parse().unwrap(),
            port: n,
            client: "203.0.113.5".parse().unwrap(),
            server: "192.0.2.11".parse().unwrap(),
            age_ms: 0,
            stickytime_s: 60,
        })
    }

    #[test]
    fn worker_queues_are_bounded_and_drain_in_push_order() {
        let q = ReplicationQueue::default();
        q.set_workers(2);
        let t0 = Instant::now();
        q.push(1, t0 + Duration::from_millis(2), rec(3));
        q.push(0, t0, rec(1));
        q.push(1, t0 + Duration::from_millis(1), rec(2));
        q.push(0, t0 + Duration::from_millis(3), rec(4));
        // Worker 3 of 2 shares worker 1's queue.
        q.push(3, t0 + Duration::from_millis(4), rec(5));
        assert_eq!(q.len(), 5);
        let ports: Vec<u16> = q
            .drain()
            .iter()
            .map(|r| match r {
                Record::Affinity(a) => a.port,
                Record::Connection(_) => 0,
            })
            .collect();
        assert_eq!(ports, [1, 2, 3, 4, 5]);
        assert!(q.is_empty());
        // A full queue drops (counted) and never blocks the other worker.
        for _ in 0..REPLICATION_QUEUE / 2 {
            q.push(0, t0, rec(1));
        }
        q.push(0, t0, rec(1));
        q.push(1, t0, rec(2));
        assert_eq!(q.dropped.load(Relaxed), 1);
        assert_eq!(q.len(), REPLICATION_QUEUE / 2 + 1);
    }
}
