//! Connection records: which server each client flow goes to, and its NAT translation.
//!
//! Records are keyed by the client-side 5-tuple (client → cluster). A NAT record is also
//! indexed by its server-side tuple (server → returnaddress:natport) so replies find it. The
//! table is shared by all forwarding workers and split into shards, each behind its own lock, so
//! workers rarely contend (the NAT reverse direction of a flow may land on another worker).

use super::stats::ServerCounters;
use crate::flow::FlowKey;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

/// The translation of a NAT (directed) connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NatMapping {
    /// Source address of the forwarded request (the server replies to it).
    pub returnaddress: IpAddr,
    /// Source port taken from the returnaddress's pool.
    pub nat_port: u16,
    /// Destination port on the server (mapport, or the cluster port).
    pub server_port: u16,
}

/// One connection record.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client → cluster tuple.
    pub key: FlowKey,
    pub server: IpAddr,
    pub nat: Option<NatMapping>,
    /// Where frames back to the client go (the client or its router).
    pub client_mac: [u8; 6],
    pub created: Instant,
    pub last_seen: Instant,
    /// Set when a FIN or RST was seen; the record ends `fin_timeout` later.
    pub closing_since: Option<Instant>,
    /// Inactivity after which the record ends (the port's staletimeout).
    pub staletimeout: Duration,
    /// Last acknowledgement number the client sent: the sequence number a reset to the client
    /// must carry to be accepted.
    pub client_ack: u32,
    /// When this record was last handed to replication (None: never).
    pub replicated_at: Option<Instant>,
    /// The server's counters (active connections are decremented when the record ends).
    pub counters: Arc<ServerCounters>,
}

impl Conn {
    /// The server-side tuple of replies (server → returnaddress:natport), for NAT records.
    pub fn reverse_key(&self) -> Option<FlowKey> {
        self.nat.map(|n| FlowKey {
            proto: self.key.proto,
            src_ip: self.server,
            src_port: n.server_port,
            dst_ip: n.returnaddress,
            dst_port: n.nat_port,
        })
    }

    /// Whether the record has ended at `now`.
    pub fn expired(&self, now: Instant, fin_timeout: Duration) -> bool {
        if let Some(t) = self.closing_since
            && now.saturating_duration_since(t) >= fin_timeout
        {
            return true;
        }
        now.saturating_duration_since(self.last_seen) >= self.staletimeout
    }
}

/// The shared connection table.
pub struct ConnTable {
    shards: Box<[Mutex<HashMap<FlowKey, Conn>>]>,
    reverse: Box<[Mutex<HashMap<FlowKey, FlowKey>>]>,
    len: AtomicUsize,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            reverse: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
        }
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

impl ConnTable {
    /// Runs `f` on the record of `key` (None if absent) under its shard's lock.
    pub fn with<R>(&self, key: &FlowKey, f: impl FnOnce(Option<&mut Conn>) -> R) -> R {
        let mut shard = self.shards[shard_of(key)].lock();
        f(shard.get_mut(key))
    }

    /// Inserts (or replaces) a record; returns the replaced one.
    pub fn insert(&self, conn: Conn) -> Option<Conn> {
        let new_reverse = conn.reverse_key();
        if let Some(rk) = new_reverse {
            self.reverse[shard_of(&rk)].lock().insert(rk, conn.key);
        }
        let key = conn.key;
        let old = self.shards[shard_of(&key)].lock().insert(key, conn);
        match old.as_ref().and_then(Conn::reverse_key) {
            Some(old_rk) if Some(old_rk) != new_reverse => {
                self.reverse[shard_of(&old_rk)].lock().remove(&old_rk);
            }
            _ => {}
        }
        if old.is_none() {
            self.len.fetch_add(1, Relaxed);
        }
        old
    }

    /// The client-side key of the NAT record whose replies have tuple `reverse`.
    pub fn lookup_reverse(&self, reverse: &FlowKey) -> Option<FlowKey> {
        self.reverse[shard_of(reverse)].lock().get(reverse).copied()
    }

    /// Removes a record.
    pub fn remove(&self, key: &FlowKey) -> Option<Conn> {
        let old = self.shards[shard_of(key)].lock().remove(key);
        if let Some(o) = &old {
            self.len.fetch_sub(1, Relaxed);
            if let Some(rk) = o.reverse_key() {
                self.reverse[shard_of(&rk)].lock().remove(&rk);
            }
        }
        old
    }

    /// Removes and returns every record for which `remove` says yes.
    pub fn remove_where(&self, mut remove: impl FnMut(&Conn) -> bool) -> Vec<Conn> {
        let mut gone = Vec::new();
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.retain(|_, c| {
                if remove(c) {
                    gone.push(c.clone());
                    false
                } else {
                    true
                }
            });
        }
        self.len.fetch_sub(gone.len(), Relaxed);
        for c in &gone {
            if let Some(rk) = c.reverse_key() {
                let mut rev = self.reverse[shard_of(&rk)].lock();
                if rev.get(&rk) == Some(&c.key) {
                    rev.remove(&rk);
                }
            }
        }
        gone
    }

    /// Visits every record (shard by shard; records may change between shards).
    pub fn for_each(&self, mut f: impl FnMut(&Conn)) {
        for shard in self.shards.iter() {
            for c in shard.lock().values() {
                f(c);
            }
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            proto: 6,
            src_ip: "203.0.113.5".parse().unwrap(),
            src_port: port,
            dst_ip: "192.0.2.100".parse().unwrap(),
            dst_port: 80,
        }
    }

    fn conn(port: u16, now: Instant, nat: bool) -> Conn {
        Conn {
            key: key(port),
            server: "192.0.2.11".parse().unwrap(),
            nat: nat.then(|| NatMapping {
                returnaddress: "192.0.2.200".parse().unwrap(),
                nat_port: 2000 + port,
                server_port: 8080,
            }),
            client_mac: [2, 0, 0, 0, 0, 9],
            created: now,
            last_seen: now,
            closing_since: None,
            staletimeout: Duration::from_secs(300),
            client_ack: 0,
            replicated_at: None,
            counters: Arc::default(),
        }
    }

    #[test]
    fn nat_records_are_found_from_both_sides_and_removed_from_both() {
        let t = ConnTable::default();
        let now = Instant::now();
        let c = conn(40000, now, true);
        let rk = c.reverse_key().unwrap();
        t.insert(c);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup_reverse(&rk), Some(key(40000)));
        t.remove(&key(40000));
        assert_eq!(t.lookup_reverse(&rk), None);
        assert!(t.is_empty());
    }

    #[test]
    fn records_end_after_fin_timeout_or_staletimeout() {
        let now = Instant::now();
        let mut c = conn(1, now, false);
        assert!(!c.expired(now + Duration::from_secs(299), Duration::from_secs(2)));
        assert!(c.expired(now + Duration::from_secs(300), Duration::from_secs(2)));
        c.closing_since = Some(now);
        assert!(c.expired(now + Duration::from_secs(2), Duration::from_secs(2)));
        let t = ConnTable::default();
        t.insert(conn(1, now, true));
        t.insert(conn(2, now, true));
        let gone = t.remove_where(|c| c.key.src_port == 1);
        assert_eq!(gone.len(), 1);
        assert_eq!(t.len(), 1);
    }
}
