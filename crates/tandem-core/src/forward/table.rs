//! The connection table: bounded, with half-open records first in line to make room.
//!
//! Records are keyed by the client-side 5-tuple (client → cluster). A NAT record also owns its
//! source port, `(returnaddress, protocol, natport)`: the port index finds the record of a
//! server's reply, and says which record holds a port, so that removing a record frees only a
//! port and an index entry that are its own (a second record never shares them: the engine
//! refuses to install one on a port in use).
//!
//! The table is shared by all forwarding workers and split into shards, each behind its own
//! lock. Its size is bounded by `maxconnections`: a new record first takes a slot
//! ([`ConnTable::try_reserve`]); when none is left the engine asks for the oldest half-open
//! record to be evicted ([`ConnTable::evict_halfopen`]), and refuses the flow if there is none.
//! Half-open records are queued in creation order per shard (and per NAT pool), so eviction
//! pops a queue front: O(1) amortised, never a scan of the table. Queue entries of records that
//! were since established or removed are skipped when they reach the front, and a queue is
//! compacted when stale entries outnumber live ones, so queues stay proportional to the
//! half-open records they index.
//!
//! Records are stored compactly by address family ([`super::compact`]): IPv4 records in a map of
//! 14-byte keys and 36-byte values with their NAT translations in a side map, the rest with
//! full-size addresses. Each shard has its own millisecond [`Clock`]; housekeeping moves its
//! epoch forward before 32-bit times run out (after 24 days), and times older than the new
//! epoch (12 days back) become the epoch.

use super::compact::{Clock, Family, Key, Map};
use super::conn::Conn;
use crate::flow::FlowKey;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SHARDS: usize = 64;
const SMALL_SHARDS: usize = 16;

/// Most half-open NAT records (so NAT source ports) one client address may hold at a time.
/// A client's handshakes beyond it are refused (`client-half-open-limit`), so no single source
/// can exhaust a returnaddress's pool of 64 512 ports with SYNs: it holds at most 1/63 of it.
pub const HALFOPEN_NAT_PER_CLIENT: u32 = 1024;

/// One NAT source port: the returnaddress, the IP protocol and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatPortKey {
    pub returnaddress: IpAddr,
    pub proto: u8,
    pub port: u16,
}

/// A record taken out of the table, and whether it held its NAT port (then the caller gives
/// the port back to the pool).
#[derive(Debug, Clone)]
pub struct Removed {
    pub conn: Conn,
    pub owned_port: bool,
}

/// A half-open record in a queue: its key and creation time (a record made again under the
/// same key later is another record).
type Entry = (FlowKey, Instant);

struct Shard {
    clock: Clock,
    /// Records whose addresses are all IPv4.
    v4: Family<Ipv4Addr>,
    /// The others (IPv6, or mixed families).
    v6: Family<IpAddr>,
    /// Half-open records, oldest first (with stale entries).
    fifo: VecDeque<Entry>,
    /// Live half-open records of the shard.
    halfopen: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            clock: Clock::new(),
            v4: Family::default(),
            v6: Family::default(),
            fifo: VecDeque::new(),
            halfopen: 0,
        }
    }
}

/// Times of a shard are moved back when they pass this age (2^31 ms: 24.8 days)...
const REBASE_AFTER_MS: u64 = 1 << 31;
/// ... to this age (12.4 days).
const REBASE_TO_MS: u64 = 1 << 30;

impl Shard {
    fn get(&self, key: &FlowKey) -> Option<Conn> {
        if let Some(k) = Key::<Ipv4Addr>::of(key) {
            let c = self.v4.get(&k, &self.clock);
            if c.is_some() || self.v6.len() == 0 {
                return c;
            }
        }
        self.v6.get(&Key::of(key)?, &self.clock)
    }

    /// Stores `c`, returning the record of its key it replaced.
    fn put(&mut self, c: &Conn) -> Option<Conn> {
        let clock = self.clock;
        if Family::<Ipv4Addr>::fits(c) {
            let old = self.v4.put(c, &clock);
            if old.is_none() && self.v6.len() > 0 {
                return self.v6.remove(&Key::of(&c.key)?, &clock);
            }
            old
        } else {
            let old = self.v6.put(c, &clock);
            match Key::<Ipv4Addr>::of(&c.key) {
                Some(k) if old.is_none() => self.v4.remove(&k, &clock),
                _ => old,
            }
        }
    }

    /// Runs `f` on the record of `key`, stored back (see [`Family::modify`]); `f` back when
    /// there is none.
    fn modify<R, F: FnOnce(Option<&mut Conn>) -> R>(
        &mut self,
        key: &FlowKey,
        f: F,
    ) -> Result<(R, bool, Conn), F> {
        let clock = self.clock;
        let f = match Key::<Ipv4Addr>::of(key) {
            Some(k) => match self.v4.modify(&k, &clock, f) {
                Ok(done) => return Ok(done),
                Err(f) => f,
            },
            None => f,
        };
        match Key::<IpAddr>::of(key) {
            Some(k) if self.v6.len() > 0 => self.v6.modify(&k, &clock, f),
            _ => Err(f),
        }
    }

    fn remove(&mut self, key: &FlowKey) -> Option<Conn> {
        let clock = self.clock;
        if let Some(k) = Key::<Ipv4Addr>::of(key) {
            let c = self.v4.remove(&k, &clock);
            if c.is_some() || self.v6.len() == 0 {
                return c;
            }
        }
        self.v6.remove(&Key::of(key)?, &clock)
    }

    /// The creation time (the clock's) of the half-open record of `key`.
    fn halfopen_created(&self, key: &FlowKey) -> Option<u32> {
        if let Some(k) = Key::<Ipv4Addr>::of(key)
            && let Some(r) = self.v4.map.get(&k)
        {
            return r.is_halfopen().then(|| r.created());
        }
        let r = self.v6.map.get(&Key::of(key)?)?;
        r.is_halfopen().then(|| r.created())
    }

    fn is_live(&self, e: &Entry) -> bool {
        self.halfopen_created(&e.0) == Some(self.clock.enc(e.1))
    }

    fn iter(&self) -> impl Iterator<Item = Conn> + '_ {
        self.v4.iter(&self.clock).chain(self.v6.iter(&self.clock))
    }

    /// Moves the clock's epoch forward once its times near their 32-bit range.
    fn rebase(&mut self, now: Instant) {
        let age = self.clock.age_ms(now);
        if age < REBASE_AFTER_MS {
            return;
        }
        let shift = u32::try_from(age - REBASE_TO_MS).unwrap_or(u32::MAX);
        self.v4.rebase(shift);
        self.v6.rebase(shift);
        self.clock.epoch += Duration::from_millis(u64::from(shift));
    }
}

#[derive(Default)]
struct PoolQueue {
    fifo: VecDeque<Entry>,
    /// Live half-open records holding a port of this pool.
    live: usize,
}

/// Half-open queues of the NAT pools, by (returnaddress, protocol).
type PoolMap = Map<(IpAddr, u8), PoolQueue>;

/// A shard of the NAT port index: IPv4 ports of IPv4 records compactly (8-byte key, 14-byte
/// value), the others in full.
#[derive(Default)]
struct NatIndex {
    v4: Map<(Ipv4Addr, u16, u8), Key<Ipv4Addr>>,
    any: Map<NatPortKey, FlowKey>,
}

impl NatIndex {
    fn compact(k: &NatPortKey, owner: &FlowKey) -> Option<((Ipv4Addr, u16, u8), Key<Ipv4Addr>)> {
        match k.returnaddress {
            IpAddr::V4(a) => Some(((a, k.port, k.proto), Key::of(owner)?)),
            IpAddr::V6(_) => None,
        }
    }
    fn get(&self, k: &NatPortKey) -> Option<FlowKey> {
        if let IpAddr::V4(a) = k.returnaddress
            && let Some(owner) = self.v4.get(&(a, k.port, k.proto))
        {
            return Some(owner.flow());
        }
        self.any.get(k).copied()
    }
    fn insert(&mut self, k: NatPortKey, owner: FlowKey) {
        self.remove(&k);
        match Self::compact(&k, &owner) {
            Some((ck, co)) => {
                self.v4.insert(ck, co);
            }
            None => {
                self.any.insert(k, owner);
            }
        }
    }
    fn remove(&mut self, k: &NatPortKey) {
        if let IpAddr::V4(a) = k.returnaddress {
            self.v4.remove(&(a, k.port, k.proto));
        }
        if !self.any.is_empty() {
            self.any.remove(k);
        }
    }
}

/// The shared, bounded connection table.
pub struct ConnTable {
    shards: Box<[Mutex<Shard>]>,
    /// NAT source port → the record that holds it.
    nat: Box<[Mutex<NatIndex>]>,
    /// Half-open NAT records per (returnaddress, protocol), oldest first.
    pools: Box<[Mutex<PoolMap>]>,
    /// Half-open NAT records per client address.
    clients: Box<[Mutex<Map<IpAddr, u32>>]>,
    /// Records plus slots reserved for records being made.
    len: AtomicUsize,
    halfopen: AtomicUsize,
    max: AtomicUsize,
    /// Half-open records evicted to make room.
    pub evicted: AtomicU64,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable::new(usize::MAX)
    }
}

fn shard_of(key: &FlowKey) -> usize {
    // Cheap mix of the fields; the HashMap inside hashes properly.
    let mut h = key.src_port as usize ^ ((key.dst_port as usize) << 7) ^ key.proto as usize;
    if let IpAddr::V4(a) = key.src_ip {
        h ^= u32::from(a) as usize;
    }
    (h ^ (h >> 6) ^ (h >> 12)) % SHARDS
}

fn small_shard_of(ip: IpAddr, extra: u16) -> usize {
    let mut buf = [0u8; 18];
    buf[..16].copy_from_slice(&crate::flow::ip16(ip));
    buf[16..].copy_from_slice(&extra.to_be_bytes());
    (xxhash_rust::xxh3::xxh3_64(&buf) as usize) % SMALL_SHARDS
}

fn locks<T: Default>(n: usize) -> Box<[Mutex<T>]> {
    (0..n).map(|_| Mutex::new(T::default())).collect()
}

impl ConnTable {
    /// An empty table that holds at most `max` records.
    pub fn new(max: usize) -> ConnTable {
        ConnTable {
            shards: locks(SHARDS),
            nat: locks(SHARDS),
            pools: locks(SMALL_SHARDS),
            clients: locks(SMALL_SHARDS),
            len: AtomicUsize::new(0),
            halfopen: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            evicted: AtomicU64::new(0),
        }
    }

    /// Changes the limit. Records above a lowered limit stay; new ones wait for room.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Relaxed);
    }

    /// The most records the table holds.
    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    fn nat_lock(&self, k: &NatPortKey) -> parking_lot::MutexGuard<'_, NatIndex> {
        let h = u32::from(k.port) ^ (u32::from(k.proto) << 16);
        let ip = match k.returnaddress {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => a.octets()[12..]
                .iter()
                .fold(0, |h, b| h << 8 | u32::from(*b)),
        };
        self.nat[((h ^ ip.rotate_left(7)) as usize) % SHARDS].lock()
    }

    fn pool_lock(&self, returnaddress: IpAddr, proto: u8) -> parking_lot::MutexGuard<'_, PoolMap> {
        self.pools[small_shard_of(returnaddress, u16::from(proto))].lock()
    }

    fn client_lock(&self, ip: IpAddr) -> parking_lot::MutexGuard<'_, Map<IpAddr, u32>> {
        self.clients[small_shard_of(ip, 0)].lock()
    }

    /// Takes a slot for a record about to be made; false when the table is full.
    pub fn try_reserve(&self) -> bool {
        let max = self.max();
        self.len
            .fetch_update(Relaxed, Relaxed, |l| (l < max).then_some(l + 1))
            .is_ok()
    }

    /// Gives back a slot taken by [`try_reserve`](Self::try_reserve) and not used.
    pub fn unreserve(&self) {
        self.len.fetch_sub(1, Relaxed);
    }

    /// Takes up to `n` slots at once (one update of the shared count for a batch of records,
    /// so that parallel installs do not contend on it); how many it took.
    pub fn try_reserve_many(&self, n: usize) -> usize {
        let max = self.max();
        let mut got = 0;
        let _ = self.len.fetch_update(Relaxed, Relaxed, |l| {
            got = max.saturating_sub(l).min(n);
            (got > 0).then_some(l + got)
        });
        got
    }

    /// Gives back `n` slots taken and not used.
    pub fn unreserve_many(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Relaxed);
        }
    }

    /// One half-open record more (`up`) or less, counted everywhere it is counted.
    fn count_halfopen(&self, shard: &mut Shard, c: &Conn, up: bool) {
        let step = |n: &mut usize| {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        };
        step(&mut shard.halfopen);
        if up {
            self.halfopen.fetch_add(1, Relaxed);
        } else {
            self.halfopen.fetch_sub(1, Relaxed);
        }
        if let Some(n) = c.nat {
            {
                let mut clients = self.client_lock(c.key.src_ip);
                let count = clients.entry(c.key.src_ip).or_insert(0);
                *count = if up {
                    *count + 1
                } else {
                    count.saturating_sub(1)
                };
                if *count == 0 {
                    clients.remove(&c.key.src_ip);
                }
            }
            let mut pools = self.pool_lock(n.returnaddress, c.key.proto);
            let q = pools.entry((n.returnaddress, c.key.proto)).or_default();
            step(&mut q.live);
            if up {
                q.fifo.push_back((c.key, c.created));
            }
        }
    }

    /// Runs `f` on the record of `key` (None if absent) under its shard's lock. A record that
    /// `f` marks established stops being half-open.
    pub fn with<R>(&self, key: &FlowKey, f: impl FnOnce(Option<&mut Conn>) -> R) -> R {
        let mut shard = self.shards[shard_of(key)].lock();
        match shard.modify(key, f) {
            Ok((r, was_halfopen, c)) => {
                if was_halfopen && !c.is_halfopen() {
                    self.count_halfopen(&mut shard, &c, false);
                }
                r
            }
            Err(f) => f(None),
        }
    }

    /// Puts a record in a slot taken with [`try_reserve`](Self::try_reserve), replacing the
    /// record of the same key (returned; its slot is given back). Refused, with nothing
    /// changed, when the record's NAT port is held by another record: `Err` gives the record
    /// back, and its port must not be released (it is the other record's).
    ///
    /// The server's `records` and `active` counts are the caller's to keep (the table knows no
    /// counters): a record put in counts +1, every [`Removed`] -1.
    pub fn insert(&self, conn: Conn) -> Result<Option<Removed>, Box<Conn>> {
        let nat = conn
            .nat
            .filter(|_| conn.is_halfopen())
            .map(|n| n.returnaddress);
        let proto = conn.key.proto;
        let mut shard = self.shards[shard_of(&conn.key)].lock();
        let r = self.insert_locked(&mut shard, conn);
        drop(shard);
        if let Ok(Some(_)) = r {
            self.len.fetch_sub(1, Relaxed);
        }
        if r.is_ok()
            && let Some(ret) = nat
        {
            self.compact_pool(ret, proto);
        }
        r
    }

    /// [`insert`](Self::insert) of many records of shard `shard` (each of that shard: see
    /// [`shard_index`](Self::shard_index)) under one lock of it, each in a slot taken before
    /// (for instance with [`try_reserve_many`](Self::try_reserve_many)); `done` gets each
    /// record's result in order.
    pub fn insert_batch(
        &self,
        shard: usize,
        conns: impl IntoIterator<Item = Conn>,
        mut done: impl FnMut(Result<Option<Removed>, Box<Conn>>),
    ) {
        let mut pools: Vec<(IpAddr, u8)> = Vec::new();
        let mut replaced = 0;
        let mut s = self.shards[shard % SHARDS].lock();
        for conn in conns {
            debug_assert_eq!(shard_of(&conn.key), shard % SHARDS);
            let nat = conn
                .nat
                .filter(|_| conn.is_halfopen())
                .map(|n| n.returnaddress);
            let proto = conn.key.proto;
            let r = self.insert_locked(&mut s, conn);
            if let Ok(old) = &r {
                replaced += usize::from(old.is_some());
                if let Some(ret) = nat
                    && !pools.contains(&(ret, proto))
                {
                    pools.push((ret, proto));
                }
            }
            done(r);
        }
        drop(s);
        self.unreserve_many(replaced);
        for (ret, proto) in pools {
            self.compact_pool(ret, proto);
        }
    }

    /// [`insert`](Self::insert) under the shard's lock, but the replaced record's slot is not
    /// given back (the caller does) and the pool's queue not compacted (it takes shard locks).
    fn insert_locked(&self, shard: &mut Shard, conn: Conn) -> Result<Option<Removed>, Box<Conn>> {
        let key = conn.key;
        let nat_key = conn.nat.map(|n| NatPortKey {
            returnaddress: n.returnaddress,
            proto: key.proto,
            port: n.nat_port,
        });
        if let Some(nk) = nat_key {
            let mut nat = self.nat_lock(&nk);
            match nat.get(&nk) {
                Some(owner) if owner != key => return Err(Box::new(conn)),
                _ => {
                    nat.insert(nk, key);
                }
            }
        }
        let halfopen = conn.is_halfopen();
        let created = conn.created;
        let old = shard.put(&conn);
        let new = conn;
        let replaced = old.map(|old| {
            if old.is_halfopen() {
                self.count_halfopen(shard, &old, false);
            }
            let old_key = old.nat.map(|n| NatPortKey {
                returnaddress: n.returnaddress,
                proto: key.proto,
                port: n.nat_port,
            });
            // The old record's port is its own unless the new record took it over.
            let owned_port = match old_key {
                Some(ok) if Some(ok) != nat_key => {
                    let mut nat = self.nat_lock(&ok);
                    if nat.get(&ok) == Some(key) {
                        nat.remove(&ok);
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            };
            Removed {
                conn: old,
                owned_port,
            }
        });
        if halfopen {
            shard.fifo.push_back((key, created));
            self.count_halfopen(shard, &new, true);
            if shard.fifo.len() > 2 * shard.halfopen + 64 {
                let mut fifo = std::mem::take(&mut shard.fifo);
                fifo.retain(|e| shard.is_live(e));
                shard.fifo = fifo;
            }
        }
        Ok(replaced)
    }

    /// Takes the record of `key` out of a locked shard; its slot is freed, or kept for the
    /// caller (`keep_slot`).
    fn take_keeping(&self, shard: &mut Shard, key: &FlowKey, keep_slot: bool) -> Option<Removed> {
        let conn = shard.remove(key)?;
        if !keep_slot {
            self.len.fetch_sub(1, Relaxed);
        }
        if conn.is_halfopen() {
            self.count_halfopen(shard, &conn, false);
        }
        let owned_port = conn.nat.is_some_and(|n| {
            let nk = NatPortKey {
                returnaddress: n.returnaddress,
                proto: key.proto,
                port: n.nat_port,
            };
            let mut nat = self.nat_lock(&nk);
            if nat.get(&nk).as_ref() == Some(key) {
                nat.remove(&nk);
                true
            } else {
                false
            }
        });
        Some(Removed { conn, owned_port })
    }

    fn take(&self, shard: &mut Shard, key: &FlowKey) -> Option<Removed> {
        self.take_keeping(shard, key, false)
    }

    /// The client-side key of the NAT record that holds source port `port` of
    /// `returnaddress` for protocol `proto`.
    pub fn lookup_nat(&self, returnaddress: IpAddr, proto: u8, port: u16) -> Option<FlowKey> {
        let nk = NatPortKey {
            returnaddress,
            proto,
            port,
        };
        self.nat_lock(&nk).get(&nk)
    }

    /// Removes a record.
    pub fn remove(&self, key: &FlowKey) -> Option<Removed> {
        let mut shard = self.shards[shard_of(key)].lock();
        self.take(&mut shard, key)
    }

    /// Removes and returns every record for which `remove` says yes (a full scan: for
    /// housekeeping and configuration changes, never per packet).
    pub fn remove_where(&self, mut remove: impl FnMut(&Conn) -> bool) -> Vec<Removed> {
        let mut gone = Vec::new();
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            let keys: Vec<FlowKey> = s.iter().filter(|c| remove(c)).map(|c| c.key).collect();
            for k in keys {
                gone.extend(self.take(&mut s, &k));
            }
        }
        gone
    }

    /// Evicts the oldest half-open record of `near`'s shard, or of the next shard that has
    /// one (at most one visit per shard), to make room for a record of `near`. The slot it
    /// held passes to the caller, as if taken with [`try_reserve`](Self::try_reserve) (so
    /// that another worker cannot take it first).
    pub fn evict_halfopen(&self, near: &FlowKey) -> Option<Removed> {
        if self.halfopen.load(Relaxed) == 0 {
            return None;
        }
        let first = shard_of(near);
        for i in 0..SHARDS {
            let mut shard = self.shards[(first + i) % SHARDS].lock();
            while let Some(e) = shard.fifo.pop_front() {
                if shard.is_live(&e) {
                    // The slot stays taken, now for the caller's record.
                    let r = self.take_keeping(&mut shard, &e.0, true);
                    if r.is_some() {
                        self.evicted.fetch_add(1, Relaxed);
                    }
                    return r;
                }
            }
        }
        None
    }

    /// Evicts the oldest half-open record holding a port of `returnaddress`'s pool for
    /// `proto` (the pool is exhausted and a new flow needs a port). Its slot is free; its port
    /// (if `owned_port`) is no longer indexed, for the caller to release or to hand on.
    pub fn evict_halfopen_nat(&self, returnaddress: IpAddr, proto: u8) -> Option<Removed> {
        loop {
            let e = {
                let mut pools = self.pool_lock(returnaddress, proto);
                pools.get_mut(&(returnaddress, proto))?.fifo.pop_front()?
            };
            let mut shard = self.shards[shard_of(&e.0)].lock();
            let live = shard.is_live(&e)
                && shard.get(&e.0).is_some_and(|c| {
                    c.nat.is_some_and(|n| n.returnaddress == returnaddress) && c.key.proto == proto
                });
            if live {
                let r = self.take(&mut shard, &e.0);
                if r.is_some() {
                    self.evicted.fetch_add(1, Relaxed);
                }
                return r;
            }
        }
    }

    /// Drops stale entries of a pool's queue once they outnumber the live ones.
    fn compact_pool(&self, returnaddress: IpAddr, proto: u8) {
        let taken = {
            let mut pools = self.pool_lock(returnaddress, proto);
            match pools.get_mut(&(returnaddress, proto)) {
                Some(q) if q.fifo.len() > 2 * q.live + 64 => std::mem::take(&mut q.fifo),
                _ => return,
            }
        };
        // Checked without the pool's lock (the record's shard is locked per entry).
        let kept: VecDeque<Entry> = taken
            .into_iter()
            .filter(|e| self.shards[shard_of(&e.0)].lock().is_live(e))
            .collect();
        let mut pools = self.pool_lock(returnaddress, proto);
        let q = pools.entry((returnaddress, proto)).or_default();
        let newer = std::mem::replace(&mut q.fifo, kept);
        q.fifo.extend(newer);
    }

    /// Housekeeping: drops queue entries older than `halfopen_timeout` (their records are
    /// established or ended by then) and the queues of pools with no half-open record.
    pub fn trim(&self, now: Instant, halfopen_timeout: Duration) {
        let old = |e: &Entry| now.saturating_duration_since(e.1) >= halfopen_timeout;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            while s.fifo.front().is_some_and(old) {
                s.fifo.pop_front();
            }
            // After a flood, give the memory back once a shard is mostly empty.
            s.v4.shrink();
            s.v6.shrink();
            s.rebase(now);
            let queued = s.fifo.len();
            if s.fifo.capacity() > 4 * queued + 1024 {
                s.fifo.shrink_to(2 * queued);
            }
        }
        for pools in self.pools.iter() {
            let mut p = pools.lock();
            p.retain(|_, q| {
                while q.fifo.front().is_some_and(old) {
                    q.fifo.pop_front();
                }
                q.live > 0 || !q.fifo.is_empty()
            });
        }
    }

    /// Half-open NAT records of client `ip`.
    pub fn client_halfopen(&self, ip: IpAddr) -> u32 {
        self.client_lock(ip).get(&ip).copied().unwrap_or(0)
    }

    /// Number of shards (each behind its own lock).
    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// The shard of `key`'s record.
    pub fn shard_index(&self, key: &FlowKey) -> usize {
        shard_of(key)
    }

    /// Visits the records of one shard under its lock (`shard` modulo the shard count).
    pub fn for_each_in(&self, shard: usize, mut f: impl FnMut(&Conn)) {
        for c in self.shards[shard % SHARDS].lock().iter() {
            f(&c);
        }
    }

    /// Visits every record (shard by shard; records may change between shards).
    pub fn for_each(&self, mut f: impl FnMut(&Conn)) {
        for shard in self.shards.iter() {
            for c in shard.lock().iter() {
                f(&c);
            }
        }
    }

    /// Number of records (and slots being filled).
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of half-open records.
    pub fn halfopen(&self) -> usize {
        self.halfopen.load(Relaxed)
    }

    /// Entries in the half-open queues (live and stale), for tests of their bound.
    pub fn queued(&self) -> usize {
        let shards: usize = self.shards.iter().map(|s| s.lock().fifo.len()).sum();
        let pools: usize = self
            .pools
            .iter()
            .map(|p| p.lock().values().map(|q| q.fifo.len()).sum::<usize>())
            .sum();
        shards + pools
    }
}
