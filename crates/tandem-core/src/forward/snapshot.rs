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
//! 1 000 000 records resync in about 1.3 s on two cores (BENCHMARKS.md, "Records
//! and resync"). Records of one connection keep their order.

use super::conn::Conn;
use super::engine::Engine;
use super::plan::PortPlan;
use super::replicate::{replicates_affinity, replicates_connections};
use super::stats::ServerCounters;
use crate::config::{Method, Protocol};
use crate::replication::{self, ConnectionRecord, Record, SyncSource};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
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

    /// Installs `records` (as [`Engine::install_replicated`] each, in order) and returns how
    /// many were installed. The records are grouped by the shard of their connection; a large
    /// batch is spread over a few threads, each owning a set of shards. The connection records
    /// of `method mac` ports that pass the plan's checks go in a shard's table under one lock
    /// with one lookup each, their slots taken at once and the server counters added once
    /// ([`Engine::install_shard`]); any other record (NAT, ended, refused, affinity) takes
    /// [`Engine::install_replicated`], on the first thread for affinity records.
    pub fn install_replicated_batch(&self, records: &[Record], now: Instant) -> usize {
        let shards = self.conns.shard_count();
        let mut by_shard: Vec<Vec<&Record>> = vec![Vec::new(); shards];
        let mut affinity = Vec::new();
        for r in records {
            match r {
                Record::Connection(c) => by_shard[self.conns.shard_index(&c.flow_key())].push(r),
                Record::Affinity(_) => affinity.push(r),
            }
        }
        let threads = if records.len() < PARALLEL_MIN {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, INSTALL_THREADS)
        };
        let work = |t: usize| {
            let mut n = 0;
            if t == 0 {
                n += affinity
                    .iter()
                    .filter(|r| self.install_replicated(r, now).is_ok())
                    .count();
            }
            for (shard, group) in by_shard.iter().enumerate() {
                if shard % threads == t && !group.is_empty() {
                    n += self.install_shard(shard, group, now);
                }
            }
            n
        };
        if threads == 1 {
            return work(0);
        }
        std::thread::scope(|s| {
            let work = &work;
            let handles: Vec<_> = (1..threads).map(|t| s.spawn(move || work(t))).collect();
            let mine = work(0);
            mine + handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .sum::<usize>()
        })
    }

    /// Installs the records of one connection shard, in order (see
    /// [`Engine::install_replicated_batch`]); how many were installed.
    fn install_shard(&self, shard: usize, records: &[&Record], now: Instant) -> usize {
        let plan = self.plan();
        let mut installed = 0;
        let mut fast: Vec<(Conn, &ServerCounters)> = Vec::with_capacity(records.len());
        // The port of the previous record (a sync's records are mostly of a few ports).
        let mut last: Option<&PortPlan> = None;
        for r in records {
            let Record::Connection(cr) = r else {
                continue;
            };
            let key = cr.flow_key();
            let port = match last {
                Some(p)
                    if p.cluster == key.dst_ip
                        && p.config.number == key.dst_port
                        && p.proto == key.proto =>
                {
                    Some(p)
                }
                _ => plan.port(key.dst_ip, key.dst_port, key.proto).map(|p| &**p),
            };
            last = port.or(last);
            let server = port
                .filter(|p| {
                    p.uses_connection_records() && p.config.method == Method::Mac && !cr.ended
                })
                .and_then(|p| Some((p, p.server(cr.server)?)));
            match (server, cr.nat) {
                (Some((port, server)), None) => {
                    let mut conn = cr.to_conn(now);
                    conn.staletimeout = conn.staletimeout.min(port.staletimeout());
                    // As install_replicated: a TCP client that never acknowledged has not
                    // completed its handshake.
                    conn.established =
                        cr.proto != Protocol::Tcp || cr.client_ack != 0 || cr.closing;
                    fast.push((conn, &server.counters));
                }
                _ => {
                    // Records of this shard keep their order.
                    installed += self.install_conns(shard, &mut fast, now);
                    installed += usize::from(self.install_replicated(r, now).is_ok());
                }
            }
        }
        installed + self.install_conns(shard, &mut fast, now)
    }

    /// Puts checked `method mac` records of one shard in the table (taken from `conns`): the
    /// slots at once, the records under one lock, the counters once per server. Records that
    /// find the table full take [`Engine::install_replicated`] (which makes room from
    /// half-open records, or refuses them counted).
    fn install_conns(
        &self,
        shard: usize,
        conns: &mut Vec<(Conn, &ServerCounters)>,
        now: Instant,
    ) -> usize {
        if conns.is_empty() {
            return 0;
        }
        let got = self.conns.try_reserve_many(conns.len());
        let rest: Vec<(Conn, &ServerCounters)> = conns.split_off(got);
        let mut deltas: Vec<(&ServerCounters, i64, i64)> = Vec::new();
        let mut replaced = Vec::new();
        let mut installed = 0;
        let counted: Vec<(&ServerCounters, bool)> = conns
            .iter()
            .map(|(c, s)| (*s, c.closing_since.is_none()))
            .collect();
        let mut results = counted.iter();
        self.conns
            .insert_batch(shard, conns.drain(..).map(|(c, _)| c), |r| {
                let Some(&(server, active)) = results.next() else {
                    return;
                };
                // A MAC record holds no NAT port: it is always put in.
                if let Ok(old) = r {
                    installed += 1;
                    let d = match deltas.iter_mut().find(|d| std::ptr::eq(d.0, server)) {
                        Some(d) => d,
                        None => {
                            deltas.push((server, 0, 0));
                            deltas.last_mut().expect("pushed")
                        }
                    };
                    d.1 += i64::from(active);
                    d.2 += 1;
                    replaced.extend(old);
                }
            });
        for (server, active, records) in deltas {
            if active != 0 {
                server.add_active(0, active);
            }
            server.add_records(0, records);
        }
        self.release(0, &replaced);
        self.replicated
            .installed
            .fetch_add(installed as u64, Relaxed);
        // The table was full for these: one at a time, making room or refused.
        let replay: Vec<Record> = rest
            .iter()
            .filter_map(|(c, _)| ConnectionRecord::from_conn(c, now).map(Record::Connection))
            .collect();
        installed
            + replay
                .iter()
                .filter(|r| self.install_replicated(r, now).is_ok())
                .count()
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
