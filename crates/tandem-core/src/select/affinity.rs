//! Affinity records for `selectionalgorithm affinity` and `conn+affin`.
//!
//! An affinity record says that a client of a cluster port sticks to one server. It lives
//! while new connections keep coming: each new connection from the client refreshes it, and
//! it dies once the port's stickytime has passed without one. Removing a server breaks the
//! affinity of its clients. A stickytime of 0 means the port has no affinity.

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
    /// When the client last opened a new connection: the stickytime counts from here.
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

/// All affinity records of a node.
///
/// Every method takes `&self`; the table is split into independently locked parts so that
/// forwarding threads working for different clients rarely wait for each other. The table is
/// bounded (`maxconnections`): when it is full, a client without a record gets none (its
/// connection is still placed by weight) and the refusal is counted; records that exist keep
/// working.
pub struct AffinityTable {
    shards: Box<[Mutex<HashMap<AffinityKey, AffinityRecord>>]>,
    len: AtomicUsize,
    max: AtomicUsize,
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
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            max: AtomicUsize::new(usize::MAX),
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

    fn shard(&self, key: &AffinityKey) -> &Mutex<HashMap<AffinityKey, AffinityRecord>> {
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
        let mut shard = self.shard(key).lock();
        let record = shard.get(key)?;
        if record.is_expired(now, stickytime) {
            shard.remove(key);
            self.gone(1);
            return None;
        }
        Some(record.server)
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
        if let Some(r) = shard.get_mut(key) {
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
        shard.insert(*key, r);
        Some((r, true))
    }

    /// Removes the client's record if `pred` says so (a half-open connection that made it
    /// ended). Returns whether it was removed.
    pub fn remove_if(&self, key: &AffinityKey, pred: impl FnOnce(&AffinityRecord) -> bool) -> bool {
        let mut shard = self.shard(key).lock();
        if shard.get(key).is_some_and(pred) {
            shard.remove(key);
            self.gone(1);
            return true;
        }
        false
    }

    /// Removes the records that have outlived their port's stickytime at `now`.
    /// `stickytime_of(cluster, port)` gives a port's stickytime, or `None` when the port no
    /// longer exists (its records are removed). Returns the number of records removed.
    pub fn expire(
        &self,
        now: Instant,
        stickytime_of: impl Fn(IpAddr, u16) -> Option<Duration>,
    ) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|key, record| match stickytime_of(key.cluster, key.port) {
                Some(stickytime) => !record.is_expired(now, stickytime),
                None => false,
            });
            removed += before - shard.len();
        }
        self.gone(removed);
        removed
    }

    /// Breaks the affinity of every client of the cluster port that sticks to `server`
    /// (the server was removed). Returns the number of records removed.
    pub fn remove_server(&self, cluster: IpAddr, port: u16, server: IpAddr) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|k, r| !(k.cluster == cluster && k.port == port && r.server == server));
            removed += before - shard.len();
        }
        self.gone(removed);
        removed
    }

    /// Removes one client's record; returns it if there was one.
    pub fn remove(&self, key: &AffinityKey) -> Option<AffinityRecord> {
        let r = self.shard(key).lock().remove(key);
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
        if let Some(r) = shard.get_mut(&key) {
            *r = record;
            return true;
        }
        if !self.take_slot() {
            return false;
        }
        shard.insert(key, record);
        true
    }

    /// Number of records, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    /// A copy of every record, sorted by key, for reports and replication. Each part of the
    /// table is copied under its own lock: records changed meanwhile may or may not appear.
    /// One record, if present (expired or not).
    pub fn snapshot_one(&self, key: &AffinityKey) -> Option<(AffinityKey, AffinityRecord)> {
        self.shard(key).lock().get(key).map(|r| (*key, *r))
    }

    pub fn snapshot(&self) -> Vec<(AffinityKey, AffinityRecord)> {
        let mut all = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            all.extend(shard.lock().iter().map(|(k, r)| (*k, *r)));
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
