//! Affinity records for `selectionalgorithm affinity` and `conn+affin`.
//!
//! An affinity record says that a client of a cluster port sticks to one server. Under
//! `conn+affin` it lives while new connections keep coming: each new connection from the
//! client refreshes it, and it dies once the port's stickytime has passed without one. Under
//! `affinity` it is the only record of the client's traffic (there are no connection records),
//! so every packet refreshes it ([`AffinityTable::follow`]). Removing a server, or taking it
//! down, breaks the affinity of its clients. A stickytime of 0 means the port has no affinity.
//!
//! The table counts its records per cluster port as they are made and removed (under the
//! lock of the part that holds them), for `port report`.

use crate::flow::ip16;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Number of independently locked parts of the table (a power of two).
const SHARDS: usize = 64;

/// Seed of the hash that spreads clients over the table's parts (local only: not part of
/// any format shared between nodes).
const SHARD_SEED: u64 = 0x7a6e_6166_6669_0001;

/// How long a record made by a TCP SYN alone lives until the client sends more, unless
/// [`AffinityTable::set_unconfirmed_timeout`] says otherwise (the default `syntimeout`).
const DEFAULT_UNCONFIRMED_MS: u64 = 5_000;

/// Whose affinity a record is: a client of one port of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AffinityKey {
    /// Cluster address the client connects to.
    pub cluster: IpAddr,
    /// Cluster port.
    pub port: u16,
    /// Client address.
    pub client: IpAddr,
}

/// The server a client sticks to and the times that decide how long it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityRecord {
    /// The server the client's new connections go to.
    pub server: IpAddr,
    /// When the client last opened a new connection (under `affinity`: last sent a packet):
    /// the stickytime counts from here.
    pub last_new_connection: Instant,
    /// When the record was made (the client's first connection to this server).
    pub created: Instant,
}

impl AffinityRecord {
    /// Whether the record has outlived `stickytime` at `now`. A stickytime of 0 means no
    /// affinity: every record is expired.
    pub fn is_expired(&self, now: Instant, stickytime: Duration) -> bool {
        stickytime.is_zero() || now.saturating_duration_since(self.last_new_connection) > stickytime
    }
}

/// A record as the table keeps it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    record: AffinityRecord,
    /// False for a record made by a TCP SYN under `affinity` until the client sends another
    /// segment: such a record ends after the unconfirmed timeout (`syntimeout`), so a SYN
    /// flood leaves no affinity behind, and it is never replicated.
    confirmed: bool,
    /// When the record last went to the partner ([`AffinityTable::follow`]'s age rule), in
    /// tenths of a second after `record.created`, plus one (0: never). Small, so that a
    /// record costs no more memory than before it had one (it fits the padding).
    replicated: u32,
}

/// Half of `stickytime` in tenths of a second (at least one).
fn half_tenths(stickytime: Duration) -> u32 {
    u32::try_from(stickytime.as_millis() / 200)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// [`Slot::replicated`] for `now`.
fn tenths_after(created: Instant, now: Instant) -> u32 {
    let t = now.saturating_duration_since(created).as_millis() / 100;
    u32::try_from(t).unwrap_or(u32::MAX - 1).saturating_add(1)
}

impl Slot {
    fn confirmed(record: AffinityRecord) -> Slot {
        Slot {
            record,
            confirmed: true,
            replicated: 0,
        }
    }
    fn expired(&self, now: Instant, stickytime: Duration, unconfirmed: Duration) -> bool {
        self.record.is_expired(now, stickytime)
            || (!self.confirmed
                && now.saturating_duration_since(self.record.created) >= unconfirmed)
    }
}

/// One independently locked part of the table.
#[derive(Default)]
struct Shard {
    map: HashMap<AffinityKey, Slot>,
    /// Records of this part per cluster port.
    ports: HashMap<(IpAddr, u16), usize>,
}

impl Shard {
    fn count(ports: &mut HashMap<(IpAddr, u16), usize>, key: &AffinityKey, up: bool) {
        let k = (key.cluster, key.port);
        if up {
            *ports.entry(k).or_insert(0) += 1;
        } else if let Some(n) = ports.get_mut(&k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                ports.remove(&k);
            }
        }
    }
    /// Puts a record in (replacing the client's); returns the one replaced.
    fn put(&mut self, key: AffinityKey, slot: Slot) -> Option<Slot> {
        let old = self.map.insert(key, slot);
        if old.is_none() {
            Self::count(&mut self.ports, &key, true);
        }
        old
    }
    fn take(&mut self, key: &AffinityKey) -> Option<Slot> {
        let old = self.map.remove(key);
        if old.is_some() {
            Self::count(&mut self.ports, key, false);
        }
        old
    }
    /// Keeps the records `keep` says yes to; returns how many went.
    fn retain(&mut self, mut keep: impl FnMut(&AffinityKey, &Slot) -> bool) -> usize {
        let Shard { map, ports } = self;
        let before = map.len();
        map.retain(|k, s| {
            let kept = keep(k, s);
            if !kept {
                Self::count(ports, k, false);
            }
            kept
        });
        before - map.len()
    }
}

/// What [`AffinityTable::follow`] needs to know about a packet and its port.
pub struct Follow<'a> {
    /// The port's stickytime.
    pub stickytime: Duration,
    /// The packet may start a record: a TCP SYN or a UDP datagram.
    pub new_connection: bool,
    /// The packet confirms the client: anything but a TCP SYN.
    pub confirms: bool,
    /// The partner wants affinity records of this port now.
    pub replicate: bool,
    /// Whether a server still keeps its clients (up, or quiesced).
    pub keeps: &'a dyn Fn(IpAddr) -> bool,
    /// A server for a client without a record (by weight).
    pub pick: &'a dyn Fn() -> Option<IpAddr>,
}

/// What became of a packet under [`AffinityTable::follow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The client's live record sent it to `server`; `replicate` is the record when it is
    /// due to go to the partner (just confirmed, or its copy older than half the stickytime).
    Kept {
        server: IpAddr,
        replicate: Option<AffinityRecord>,
    },
    /// A new record sends it to its server (the client had none, it had expired, or its server
    /// was taken out: `broke`). `replicate` says whether it goes to the partner now.
    Made {
        record: AffinityRecord,
        broke: Option<IpAddr>,
        replicate: bool,
    },
    /// No live record and the packet cannot start one (a TCP segment other than SYN).
    /// `broke` is the server whose affinity the packet found taken out.
    Nothing { broke: Option<IpAddr> },
    /// No server accepts new clients.
    NoServer,
    /// The table is full (counted in `refused`).
    Full,
}

/// All affinity records of a node.
///
/// Every method takes `&self`; the table is split into independently locked parts so that
/// forwarding threads working for different clients rarely wait for each other. The table is
/// bounded (`maxconnections`): when it is full, a client without a record gets none (under
/// `conn+affin` its connection is still placed by weight; under `affinity` it is refused) and
/// the refusal is counted; records that exist keep working.
pub struct AffinityTable {
    shards: Box<[Mutex<Shard>]>,
    len: AtomicUsize,
    max: AtomicUsize,
    /// Milliseconds an unconfirmed record lives.
    unconfirmed_ms: AtomicU64,
    /// New records not made because the table was full.
    pub refused: AtomicU64,
}

impl Default for AffinityTable {
    fn default() -> Self {
        AffinityTable::new()
    }
}

impl std::fmt::Debug for AffinityTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AffinityTable")
            .field("records", &self.len())
            .finish()
    }
}

impl AffinityTable {
    /// An empty table.
    pub fn new() -> AffinityTable {
        AffinityTable {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            len: AtomicUsize::new(0),
            max: AtomicUsize::new(usize::MAX),
            unconfirmed_ms: AtomicU64::new(DEFAULT_UNCONFIRMED_MS),
            refused: AtomicU64::new(0),
        }
    }

    /// Changes the limit (records above a lowered one stay until they expire).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Relaxed);
    }

    /// The most records the table holds.
    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// How long a record made by a TCP SYN alone lives until the client sends more (the
    /// executor's `syntimeout`).
    pub fn set_unconfirmed_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.unconfirmed_ms.store(ms, Relaxed);
    }

    fn unconfirmed_timeout(&self) -> Duration {
        Duration::from_millis(self.unconfirmed_ms.load(Relaxed))
    }

    /// Takes a slot for a new record, or counts a refusal.
    fn take_slot(&self) -> bool {
        let max = self.max();
        let ok = self
            .len
            .fetch_update(Relaxed, Relaxed, |l| (l < max).then_some(l + 1))
            .is_ok();
        if !ok {
            self.refused.fetch_add(1, Relaxed);
        }
        ok
    }

    fn gone(&self, n: usize) {
        self.len.fetch_sub(n, Relaxed);
    }

    fn shard(&self, key: &AffinityKey) -> &Mutex<Shard> {
        let mut buf = [0u8; 16 + 2 + 16];
        buf[..16].copy_from_slice(&ip16(key.cluster));
        buf[16..18].copy_from_slice(&key.port.to_be_bytes());
        buf[18..].copy_from_slice(&ip16(key.client));
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(&buf, SHARD_SEED);
        &self.shards[(h as usize) & (SHARDS - 1)]
    }

    /// The server the client sticks to, if its record is still alive at `now` given the
    /// port's `stickytime`. An expired record is removed and `None` returned. Looking up
    /// does not refresh the record: see [`touch_new_connection`].
    ///
    /// [`touch_new_connection`]: AffinityTable::touch_new_connection
    pub fn lookup(&self, key: &AffinityKey, now: Instant, stickytime: Duration) -> Option<IpAddr> {
        let unconfirmed = self.unconfirmed_timeout();
        let mut shard = self.shard(key).lock();
        let slot = shard.map.get(key)?;
        if slot.expired(now, stickytime, unconfirmed) {
            shard.take(key);
            self.gone(1);
            return None;
        }
        Some(slot.record.server)
    }

    /// Records that the client opened a new connection to `server` at `now`: refreshes the
    /// record's lifetime if the client already sticks to that server, otherwise makes a new
    /// record (replacing one for another server). Returns the record as stored, e.g. for
    /// replication to the partner. `None` when the client had no record and the table is
    /// full (counted in `refused`).
    pub fn touch_new_connection(
        &self,
        key: &AffinityKey,
        server: IpAddr,
        now: Instant,
    ) -> Option<AffinityRecord> {
        self.touch(key, server, now).map(|(r, _)| r)
    }

    /// [`touch_new_connection`](Self::touch_new_connection), also saying whether the record
    /// was made (or remade for another server) by this call.
    pub fn touch(
        &self,
        key: &AffinityKey,
        server: IpAddr,
        now: Instant,
    ) -> Option<(AffinityRecord, bool)> {
        let mut shard = self.shard(key).lock();
        if let Some(s) = shard.map.get_mut(key) {
            let r = &mut s.record;
            let made = r.server != server;
            if made {
                *r = AffinityRecord {
                    server,
                    last_new_connection: now,
                    created: now,
                };
            } else {
                // Never move time backwards if calls arrive out of order.
                r.last_new_connection = r.last_new_connection.max(now);
            }
            s.confirmed = true;
            return Some((*r, made));
        }
        if !self.take_slot() {
            return None;
        }
        let r = AffinityRecord {
            server,
            last_new_connection: now,
            created: now,
        };
        shard.put(*key, Slot::confirmed(r));
        Some((r, true))
    }

    /// The packet path of `selectionalgorithm affinity`, under one lock: a client with a live
    /// record whose server keeps its clients is sent there and the record refreshed (every
    /// packet counts: it is the only record of the client's connections); a record that has
    /// expired, or whose server was taken out, ends; a packet that may start a record (a SYN,
    /// a UDP datagram) then gets a server by weight and a new record. See [`Followed`].
    pub fn follow(&self, key: &AffinityKey, now: Instant, f: &Follow) -> Followed {
        let unconfirmed = self.unconfirmed_timeout();
        let mut shard = self.shard(key).lock();
        let mut broke = None;
        if let Some(slot) = shard.map.get_mut(key) {
            let server = slot.record.server;
            if slot.expired(now, f.stickytime, unconfirmed) {
                shard.take(key);
                self.gone(1);
            } else if !(f.keeps)(server) {
                broke = Some(server);
                shard.take(key);
                self.gone(1);
            } else {
                let r = &mut slot.record;
                r.last_new_connection = r.last_new_connection.max(now);
                let confirmed_now = !slot.confirmed && f.confirms;
                slot.confirmed |= f.confirms;
                let due = confirmed_now
                    || slot.replicated == 0
                    || tenths_after(slot.record.created, now).saturating_sub(slot.replicated)
                        >= half_tenths(f.stickytime);
                let replicate = (f.replicate && slot.confirmed && due).then(|| {
                    slot.replicated = tenths_after(slot.record.created, now);
                    slot.record
                });
                return Followed::Kept { server, replicate };
            }
        }
        if !f.new_connection {
            return Followed::Nothing { broke };
        }
        let Some(server) = (f.pick)() else {
            return Followed::NoServer;
        };
        if !self.take_slot() {
            return Followed::Full;
        }
        let record = AffinityRecord {
            server,
            last_new_connection: now,
            created: now,
        };
        let replicate = f.replicate && f.confirms;
        shard.put(
            *key,
            Slot {
                record,
                confirmed: f.confirms,
                replicated: if replicate { tenths_after(now, now) } else { 0 },
            },
        );
        Followed::Made {
            record,
            broke,
            replicate,
        }
    }

    /// Removes the client's record if `pred` says so (a half-open connection that made it
    /// ended). Returns whether it was removed.
    pub fn remove_if(&self, key: &AffinityKey, pred: impl FnOnce(&AffinityRecord) -> bool) -> bool {
        let mut shard = self.shard(key).lock();
        if shard.map.get(key).is_some_and(|s| pred(&s.record)) {
            shard.take(key);
            self.gone(1);
            return true;
        }
        false
    }

    /// Removes the records that have outlived their port's stickytime at `now` (or, made by
    /// a SYN alone, the unconfirmed timeout). `stickytime_of(cluster, port)` gives a port's
    /// stickytime, or `None` when the port no longer exists (its records are removed).
    /// Returns the number of records removed.
    pub fn expire(
        &self,
        now: Instant,
        stickytime_of: impl Fn(IpAddr, u16) -> Option<Duration>,
    ) -> usize {
        let unconfirmed = self.unconfirmed_timeout();
        let mut removed = 0;
        for shard in self.shards.iter() {
            removed +=
                shard
                    .lock()
                    .retain(|key, slot| match stickytime_of(key.cluster, key.port) {
                        Some(stickytime) => !slot.expired(now, stickytime, unconfirmed),
                        None => false,
                    });
        }
        self.gone(removed);
        removed
    }

    /// Breaks the affinity of every client of the cluster port that sticks to `server`
    /// (the server was removed). Returns the number of records removed.
    pub fn remove_server(&self, cluster: IpAddr, port: u16, server: IpAddr) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            removed += shard.lock().retain(|k, s| {
                !(k.cluster == cluster && k.port == port && s.record.server == server)
            });
        }
        self.gone(removed);
        removed
    }

    /// Removes one client's record; returns it if there was one.
    pub fn remove(&self, key: &AffinityKey) -> Option<AffinityRecord> {
        let r = self.shard(key).lock().take(key).map(|s| s.record);
        if r.is_some() {
            self.gone(1);
        }
        r
    }

    /// Installs a record as given (e.g. received from the HA partner), replacing any record
    /// of the same client. False (nothing changed) when it is a new client and the table is
    /// full.
    pub fn insert_record(&self, key: AffinityKey, record: AffinityRecord) -> bool {
        let mut shard = self.shard(&key).lock();
        if let Some(s) = shard.map.get_mut(&key) {
            *s = Slot::confirmed(record);
            return true;
        }
        if !self.take_slot() {
            return false;
        }
        shard.put(key, Slot::confirmed(record));
        true
    }

    /// Number of records, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().map.is_empty())
    }

    /// Records of one cluster port (expired ones not yet removed included): the counts kept
    /// as records are made and removed, summed over the table's parts.
    pub fn port_records(&self, cluster: IpAddr, port: u16) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().ports.get(&(cluster, port)).copied().unwrap_or(0))
            .sum()
    }

    /// One record, if present (expired or not).
    pub fn snapshot_one(&self, key: &AffinityKey) -> Option<(AffinityKey, AffinityRecord)> {
        self.shard(key)
            .lock()
            .map
            .get(key)
            .map(|s| (*key, s.record))
    }

    /// A copy of every record, sorted by key, for reports and replication. Each part of the
    /// table is copied under its own lock: records changed meanwhile may or may not appear.
    /// Records made by a SYN alone (not confirmed) are left out.
    pub fn snapshot(&self) -> Vec<(AffinityKey, AffinityRecord)> {
        let mut all = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            all.extend(
                shard
                    .lock()
                    .map
                    .iter()
                    .filter(|(_, s)| s.confirmed)
                    .map(|(k, s)| (*k, s.record)),
            );
        }
        all.sort_unstable_by_key(|a| a.0);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(client: &str) -> AffinityKey {
        AffinityKey {
            cluster: ip("192.0.2.100"),
            port: 80,
            client: ip(client),
        }
    }

    const STICKY: Duration = Duration::from_secs(60);

    #[test]
    fn lookup_respects_stickytime() {
        let t = AffinityTable::new();
        let t0 = Instant::now();
        let k = key("203.0.113.7");
        assert_eq!(t.lookup(&k, t0, STICKY), None);
        t.touch_new_connection(&k, ip("10.0.0.1"), t0);
        assert_eq!(t.lookup(&k, t0, STICKY), Some(ip("10.0.0.1")));
        assert_eq!(t.lookup(&k, t0 + STICKY, STICKY), Some(ip("10.0.0.1")));
        // Lookups do not refresh.
        assert_eq!(
            t.lookup(&k, t0 + STICKY + Duration::from_millis(1), STICKY),
            None
        );
        assert_eq!(t.len(), 0, "an expired record found by a lookup is gone");
        // A stickytime of 0: no affinity.
        t.touch_new_connection(&k, ip("10.0.0.1"), t0);
        assert_eq!(t.lookup(&k, t0, Duration::ZERO), None);
        // A clock older than the record (replicated records) does not panic.
        t.touch_new_connection(&k, ip("10.0.0.1"), t0 + STICKY);
        assert_eq!(t.lookup(&k, t0, STICKY), Some(ip("10.0.0.1")));
    }

    #[test]
    fn new_connections_refresh() {
        let t = AffinityTable::new();
        let t0 = Instant::now();
        let k = key("203.0.113.7");
        t.touch_new_connection(&k, ip("10.0.0.1"), t0);
        let r = t
            .touch_new_connection(&k, ip("10.0.0.1"), t0 + Duration::from_secs(50))
            .unwrap();
        assert_eq!(r.created, t0);
        assert_eq!(r.last_new_connection, t0 + Duration::from_secs(50));
        assert_eq!(
            t.lookup(&k, t0 + Duration::from_secs(100), STICKY),
            Some(ip("10.0.0.1"))
        );
        // Out-of-order touch does not move the time back.
        let r = t.touch_new_connection(&k, ip("10.0.0.1"), t0).unwrap();
        assert_eq!(r.last_new_connection, t0 + Duration::from_secs(50));
        // Another server replaces the record.
        let t1 = t0 + Duration::from_secs(60);
        let r = t.touch_new_connection(&k, ip("10.0.0.2"), t1);
        assert_eq!(
            r.unwrap(),
            AffinityRecord {
                server: ip("10.0.0.2"),
                last_new_connection: t1,
                created: t1
            }
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expire_by_port() {
        let t = AffinityTable::new();
        let t0 = Instant::now();
        let other = AffinityKey {
            cluster: ip("192.0.2.100"),
            port: 443,
            client: ip("203.0.113.9"),
        };
        let gone = AffinityKey {
            cluster: ip("192.0.2.101"),
            port: 80,
            client: ip("203.0.113.9"),
        };
        t.touch_new_connection(&key("203.0.113.1"), ip("10.0.0.1"), t0);
        t.touch_new_connection(
            &key("203.0.113.2"),
            ip("10.0.0.1"),
            t0 + Duration::from_secs(30),
        );
        t.touch_new_connection(&other, ip("10.0.0.1"), t0);
        t.touch_new_connection(&gone, ip("10.0.0.1"), t0);
        let stickytime_of = |cluster: IpAddr, port: u16| match (cluster, port) {
            (c, 80) if c == ip("192.0.2.100") => Some(STICKY),
            (_, 443) => Some(Duration::from_secs(600)),
            _ => None,
        };
        assert_eq!(t.expire(t0 + Duration::from_secs(10), stickytime_of), 1);
        assert_eq!(t.expire(t0 + Duration::from_secs(61), stickytime_of), 1);
        assert_eq!(
            t.lookup(&key("203.0.113.2"), t0 + Duration::from_secs(61), STICKY),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.expire(t0 + Duration::from_secs(601), stickytime_of), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn remove_server_breaks_affinity() {
        let t = AffinityTable::new();
        let t0 = Instant::now();
        for i in 0..100u8 {
            let server = if i % 2 == 0 {
                ip("10.0.0.1")
            } else {
                ip("10.0.0.2")
            };
            t.touch_new_connection(&key(&format!("203.0.113.{i}")), server, t0);
        }
        let other_port = AffinityKey {
            cluster: ip("192.0.2.100"),
            port: 443,
            client: ip("203.0.113.1"),
        };
        t.touch_new_connection(&other_port, ip("10.0.0.1"), t0);
        assert_eq!(t.remove_server(ip("192.0.2.100"), 80, ip("10.0.0.1")), 50);
        assert_eq!(t.len(), 51);
        assert!(
            t.snapshot()
                .iter()
                .all(|(k, r)| r.server == ip("10.0.0.2") || k.port == 443)
        );
        assert_eq!(t.remove_server(ip("192.0.2.100"), 80, ip("10.0.0.1")), 0);
    }

    #[test]
    fn snapshot_and_insert_record() {
        let a = AffinityTable::new();
        let t0 = Instant::now();
        for i in 0..50u8 {
            a.touch_new_connection(&key(&format!("203.0.113.{i}")), ip("10.0.0.1"), t0);
        }
        let snap = a.snapshot();
        assert_eq!(snap.len(), 50);
        assert!(snap.windows(2).all(|w| w[0].0 < w[1].0));
        let b = AffinityTable::default();
        for (k, r) in &snap {
            b.insert_record(*k, *r);
        }
        assert_eq!(b.snapshot(), snap);
        assert_eq!(b.remove(&snap[0].0), Some(snap[0].1));
        assert_eq!(b.len(), 49);
    }

    #[test]
    fn concurrent_use() {
        let t = Arc::new(AffinityTable::new());
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4u32)
            .map(|n| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let k = AffinityKey {
                            cluster: ip("192.0.2.100"),
                            port: 80,
                            client: IpAddr::V4(Ipv4Addr::from(n << 16 | i)),
                        };
                        t.touch_new_connection(&k, ip("10.0.0.1"), t0);
                        assert_eq!(t.lookup(&k, t0, STICKY), Some(ip("10.0.0.1")));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.len(), 4000);
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<AffinityTable>();
    }

    #[test]
    fn a_full_table_refuses_new_clients_and_keeps_existing_ones() {
        let t = AffinityTable::new();
        t.set_max(2);
        let t0 = Instant::now();
        assert!(
            t.touch_new_connection(&key("203.0.113.1"), ip("10.0.0.1"), t0)
                .is_some()
        );
        assert!(
            t.touch_new_connection(&key("203.0.113.2"), ip("10.0.0.1"), t0)
                .is_some()
        );
        assert_eq!(
            t.touch_new_connection(&key("203.0.113.3"), ip("10.0.0.1"), t0),
            None
        );
        assert_eq!(t.refused.load(Relaxed), 1);
        // Existing clients refresh and even move server.
        assert!(
            t.touch_new_connection(&key("203.0.113.1"), ip("10.0.0.2"), t0)
                .is_some()
        );
        assert_eq!(t.len(), 2);
        assert!(t.remove_if(&key("203.0.113.2"), |r| r.server == ip("10.0.0.1")));
        assert!(!t.remove_if(&key("203.0.113.1"), |r| r.server == ip("10.0.0.1")));
        assert!(
            t.touch_new_connection(&key("203.0.113.3"), ip("10.0.0.1"), t0)
                .is_some()
        );
        t.expire(t0 + Duration::from_secs(61), |_, _| Some(STICKY));
        assert_eq!(t.len(), 0);
    }

    proptest! {
        #[test]
        fn prop_len_matches_snapshot(
            ops in proptest::collection::vec((0u8..20, 0u8..3, 0u64..200), 0..200),
        ) {
            let t = AffinityTable::new();
            let t0 = Instant::now();
            let mut latest = std::collections::HashMap::new();
            for (client, server, secs) in ops {
                let k = key(&format!("203.0.113.{client}"));
                let now = t0 + Duration::from_secs(secs);
                let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, server));
                t.touch_new_connection(&k, s, now);
                latest.insert(k, s);
                prop_assert_eq!(t.lookup(&k, now, STICKY), Some(s));
            }
            prop_assert_eq!(t.len(), latest.len());
            prop_assert_eq!(t.snapshot().len(), latest.len());
            for (k, r) in t.snapshot() {
                prop_assert_eq!(latest[&k], r.server);
            }
            t.expire(t0 + Duration::from_secs(1000), |_, _| Some(STICKY));
            prop_assert!(t.is_empty());
        }
    }
}
