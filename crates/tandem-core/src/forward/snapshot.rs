//! Full synchronisation: the records of the table for the partner, streamed, and a received
//! synchronisation installed in parallel.
//!
//! [`Engine::snapshot_cursor`] reads the connection table one shard at a time (1/64 of it),
//! as the replication sender asks for more ([`crate::replication::SyncSource`]): a full sync
//! never holds a second copy of the table, only the few chunks the sender has queued. The
//! affinity records follow as one last chunk (they are one per client, not per connection).
//! [`Engine::snapshot_records`] is the same as one `Vec`, for tests and small tables.
//!
//! [`Engine::install_replicated_batch`] installs many received records at once: grouped by
//! the shard of their connection, on a few threads each owning a set of shards, so that
//! 1 000 000 records install in well under a second on two cores (BENCHMARKS.md, "Records
//! and resync"). Records of one connection keep their order.

use super::engine::Engine;
use super::replicate::{replicates_affinity, replicates_connections};
use crate::replication::{self, ConnectionRecord, Record, SyncSource};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Batches smaller than this are installed on the calling thread.
const PARALLEL_MIN: usize = 4096;
/// Most threads of a parallel install.
const INSTALL_THREADS: usize = 4;

/// A full synchronisation read from the table a shard at a time (see the module documentation).
pub struct SnapshotCursor {
    engine: Arc<Engine>,
    next: usize,
    affinity_done: bool,
    cluster: Box<dyn Fn(IpAddr) -> bool + Send>,
}

impl SyncSource for SnapshotCursor {
    fn next_chunk(&mut self) -> Option<Vec<Record>> {
        let now = Instant::now();
        if self.next < self.engine.conns.shard_count() {
            let chunk = self.engine.snapshot_shard(self.next, now, &*self.cluster);
            self.next += 1;
            return Some(chunk);
        }
        if !self.affinity_done {
            self.affinity_done = true;
            return Some(self.engine.snapshot_affinity(now, &*self.cluster));
        }
        None
    }
}

impl Engine {
    /// A cursor over every record of replicating ports of the clusters `cluster` accepts, for
    /// [`crate::ha::Node::full_sync_from`].
    pub fn snapshot_cursor(
        self: &Arc<Self>,
        cluster: impl Fn(IpAddr) -> bool + Send + 'static,
    ) -> SnapshotCursor {
        SnapshotCursor {
            engine: self.clone(),
            next: 0,
            affinity_done: false,
            cluster: Box::new(cluster),
        }
    }

    /// Every record of replicating ports, for a full synchronisation of the partner
    /// (half-open connections excepted: they are sent when they are established).
    pub fn snapshot_records(&self, now: Instant) -> Vec<Record> {
        self.snapshot_records_for(now, &|_| true)
    }

    /// [`Engine::snapshot_records`] of the clusters `cluster` accepts (mutual HA: one
    /// instance's group).
    pub fn snapshot_records_for(
        &self,
        now: Instant,
        cluster: &dyn Fn(IpAddr) -> bool,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for shard in 0..self.conns.shard_count() {
            out.extend(self.snapshot_shard(shard, now, cluster));
        }
        out.extend(self.snapshot_affinity(now, cluster));
        out
    }

    /// The connection records of one shard of the table that a full sync sends.
    pub fn snapshot_shard(
        &self,
        shard: usize,
        now: Instant,
        cluster: &dyn Fn(IpAddr) -> bool,
    ) -> Vec<Record> {
        let plan = self.plan();
        let mut out = Vec::new();
        self.conns.for_each_in(shard, |c| {
            if !c.is_halfopen()
                && cluster(c.key.dst_ip)
                && plan
                    .port(c.key.dst_ip, c.key.dst_port, c.key.proto)
                    .is_some_and(|p| replicates_connections(p.config.repstrategy))
                && let Some(r) = ConnectionRecord::from_conn(c, now)
            {
                out.push(Record::Connection(r));
            }
        });
        out
    }

    /// The affinity records a full sync sends.
    fn snapshot_affinity(&self, now: Instant, cluster: &dyn Fn(IpAddr) -> bool) -> Vec<Record> {
        let plan = self.plan();
        let mut out = Vec::new();
        for (key, rec) in self.affinity.snapshot() {
            let port = plan
                .ports
                .iter()
                .find(|((c, p, _), _)| *c == key.cluster && *p == key.port)
                .map(|(_, pp)| pp);
            if let Some(pp) = port
                && cluster(key.cluster)
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

    /// Installs `records` ([`Engine::install_replicated`] each) and returns how many were
    /// installed. A large batch is split by connection shard over a few threads (each shard
    /// on one thread, in the batch's order); affinity records go on the first.
    pub fn install_replicated_batch(&self, records: &[Record], now: Instant) -> usize {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, INSTALL_THREADS);
        if records.len() < PARALLEL_MIN || threads == 1 {
            return records
                .iter()
                .filter(|r| self.install_replicated(r, now).is_ok())
                .count();
        }
        let mut groups: Vec<Vec<&Record>> = (0..threads)
            .map(|_| Vec::with_capacity(records.len() / threads + 1))
            .collect();
        for r in records {
            let g = match r {
                Record::Connection(c) => self.conns.shard_index(&c.flow_key()) % threads,
                Record::Affinity(_) => 0,
            };
            groups[g].push(r);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| {
                    s.spawn(move || {
                        g.iter()
                            .filter(|r| self.install_replicated(r, now).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        })
    }
}

/// What [`loopback_full_sync`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackSync {
    /// Records the sender's synchronisation carried.
    pub records: u64,
    /// Records installed on the receiving engine.
    pub installed: usize,
    /// Most elements the sender held queued at once.
    pub max_queued: usize,
    pub batches: u64,
}

/// A full synchronisation of `to` from `from` in this process, through the real sender,
/// batch codec, receiver and [`Engine::install_replicated_batch`] (no network, no pacing):
/// for tests of the streaming and for the `records` benchmark. With `to` None the received
/// records are decoded and dropped (the sender's side alone).
pub fn loopback_full_sync(from: &Arc<Engine>, to: Option<&Engine>) -> LoopbackSync {
    use crate::replication::{Receiver, ReceiverConfig, Sender, SenderConfig};
    // 64 batches of 16 KiB in flight: 1 MiB, as a daemon's window of datagrams.
    let window = 64;
    let mut sender = Sender::new(SenderConfig {
        window,
        ..SenderConfig::default()
    });
    let mut receiver = Receiver::new(ReceiverConfig { window });
    let mut report = LoopbackSync::default();
    sender.start_full_sync_from(Box::new(from.snapshot_cursor(|_| true)), Instant::now());
    let mut pending = Vec::new();
    let mut acks = Vec::new();
    loop {
        let now = Instant::now();
        while let Some(b) = sender.next_batch(now, 16 * 1024) {
            report.batches += 1;
            report.max_queued = report.max_queued.max(sender.queued());
            let out = receiver.on_batch(&b.bytes, now);
            pending.extend(out.records);
            acks.extend(out.ack);
        }
        if let Some(to) = to {
            report.installed += to.install_replicated_batch(&pending, now);
        }
        pending.clear();
        if acks.is_empty() {
            break;
        }
        for a in acks.drain(..) {
            sender.on_ack(&a, now);
        }
        if let Some(done) = sender.stats().last_full_sync {
            report.records = done.records;
            break;
        }
    }
    report
}
