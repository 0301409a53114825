//! Source ports for NAT forwarding (`port add … method nat`).
//!
//! A request forwarded with NAT leaves with the server's returnaddress as its source, so
//! the server's replies come back to this node. Each connection needs its own source port
//! on that returnaddress (per protocol) so the replies can be told apart. A [`NatPool`]
//! hands those ports out and takes them back.
//!
//! Ports are handed out in rotation: a port released a moment ago is reused only after
//! the rest of the range has been gone through, so late packets of an old connection are
//! unlikely to land on a new one.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// Source ports used when no range is configured.
pub const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 1024..=65535;

/// Number of independently locked parts (a power of two).
const SHARDS: usize = 16;

/// Ports of one (returnaddress, protocol): one bit per port of the range, 1 = in use.
#[derive(Debug)]
struct Ports {
    words: Vec<u64>,
    /// Offset in the range where the search for a free port starts.
    cursor: u32,
    in_use: u32,
}

impl Ports {
    fn new(len: u32) -> Ports {
        let nwords = len.div_ceil(64) as usize;
        let mut words = vec![0u64; nwords];
        // Bits past the end of the range are marked used so they are never handed out.
        let tail = len % 64;
        if tail != 0
            && let Some(last) = words.last_mut()
        {
            *last = !0u64 << tail;
        }
        Ports {
            words,
            cursor: 0,
            in_use: 0,
        }
    }

    fn is_set(&self, offset: u32) -> bool {
        self.words
            .get((offset / 64) as usize)
            .is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    fn set(&mut self, offset: u32) {
        if let Some(w) = self.words.get_mut((offset / 64) as usize) {
            *w |= 1 << (offset % 64);
        }
    }

    fn clear(&mut self, offset: u32) {
        if let Some(w) = self.words.get_mut((offset / 64) as usize) {
            *w &= !(1u64 << (offset % 64));
        }
    }

    /// First free offset at or after the cursor (wrapping around), if any.
    fn find_free(&self, len: u32) -> Option<u32> {
        if self.in_use >= len || self.words.is_empty() {
            return None;
        }
        let n = self.words.len();
        let start = (self.cursor / 64) as usize % n;
        let first_bit = self.cursor % 64;
        // The first word is visited twice: its bits from the cursor on, and at the end
        // (after wrapping) its bits below the cursor.
        for step in 0..=n {
            let index = (start + step) % n;
            let mut free = !self.words[index];
            if step == 0 {
                free &= !0u64 << first_bit;
            }
            if free != 0 {
                let offset = index as u32 * 64 + free.trailing_zeros();
                if offset < len {
                    return Some(offset);
                }
            }
        }
        None
    }
}

/// Pools keyed by (returnaddress, protocol number).
type Shard = Mutex<HashMap<(IpAddr, u8), Ports>>;

/// Source-port pools for NAT, one per (returnaddress, protocol).
///
/// Every method takes `&self` and the pools are split into independently locked parts, so
/// forwarding threads can share one `NatPool`. A pool is made the first time a port of
/// its returnaddress is allocated or reserved.
pub struct NatPool {
    first: u16,
    /// Number of ports in the range (0 when the range is empty).
    len: u32,
    shards: Box<[Shard]>,
}

impl Default for NatPool {
    fn default() -> Self {
        NatPool::new(DEFAULT_PORT_RANGE)
    }
}

impl std::fmt::Debug for NatPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatPool")
            .field("range", &self.range())
            .finish_non_exhaustive()
    }
}

impl NatPool {
    /// Pools that hand out the source ports of `range` (for example
    /// [`DEFAULT_PORT_RANGE`]). An empty range (start after end) gives pools that are
    /// always exhausted.
    pub fn new(range: RangeInclusive<u16>) -> NatPool {
        let (first, last) = (*range.start(), *range.end());
        let len = if first <= last {
            u32::from(last) - u32::from(first) + 1
        } else {
            0
        };
        NatPool {
            first,
            len,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The source ports handed out (empty when the pools are always exhausted).
    pub fn range(&self) -> RangeInclusive<u16> {
        if self.len == 0 {
            #[allow(clippy::reversed_empty_ranges)]
            return 1..=0;
        }
        self.first..=self.port_at(self.len - 1)
    }

    /// Number of ports in the range: how many connections one returnaddress can carry per
    /// protocol.
    pub fn capacity(&self) -> usize {
        self.len as usize
    }

    fn shard(&self, returnaddress: IpAddr, proto: u8) -> &Shard {
        let mut buf = [0u8; 17];
        buf[..16].copy_from_slice(&crate::flow::ip16(returnaddress));
        buf[16] = proto;
        let h = xxhash_rust::xxh3::xxh3_64(&buf);
        &self.shards[(h as usize) & (SHARDS - 1)]
    }

    fn port_at(&self, offset: u32) -> u16 {
        // offset < len ≤ 65536 - first, so the sum fits in a u16.
        u16::try_from(u32::from(self.first) + offset).unwrap_or(u16::MAX)
    }

    /// Offset of `port` in the range, if it is in it.
    fn offset_of(&self, port: u16) -> Option<u32> {
        let offset = u32::from(port).checked_sub(u32::from(self.first))?;
        (offset < self.len).then_some(offset)
    }

    /// `preferred` (the client's own source port) if it is free, else any free port, as Linux
    /// NAT does: a client's connections then reach the server on one tuple with consecutive
    /// TCP timestamps, which the server's TIME_WAIT accepts, where a port rotated in from
    /// another client would be refused.
    pub fn allocate_preferring(
        &self,
        returnaddress: IpAddr,
        proto: u8,
        preferred: u16,
    ) -> Option<u16> {
        if self.reserve(returnaddress, proto, preferred) {
            return Some(preferred);
        }
        self.allocate(returnaddress, proto)
    }

    /// A free source port on `returnaddress` for protocol `proto`, now marked in use, or
    /// `None` when every port of the range is in use (the connection cannot be forwarded).
    pub fn allocate(&self, returnaddress: IpAddr, proto: u8) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let mut shard = self.shard(returnaddress, proto).lock();
        let ports = shard
            .entry((returnaddress, proto))
            .or_insert_with(|| Ports::new(self.len));
        let offset = ports.find_free(self.len)?;
        ports.set(offset);
        ports.in_use += 1;
        ports.cursor = if offset + 1 >= self.len {
            0
        } else {
            offset + 1
        };
        Some(self.port_at(offset))
    }

    /// Gives a source port back (its connection ended). Returns false, and changes nothing,
    /// if the port was not in use or is outside the range.
    pub fn release(&self, returnaddress: IpAddr, proto: u8, port: u16) -> bool {
        let Some(offset) = self.offset_of(port) else {
            return false;
        };
        let mut shard = self.shard(returnaddress, proto).lock();
        let Some(ports) = shard.get_mut(&(returnaddress, proto)) else {
            return false;
        };
        if !ports.is_set(offset) {
            return false;
        }
        ports.clear(offset);
        ports.in_use -= 1;
        true
    }

    /// Marks a given source port in use (installing a connection replicated from the HA
    /// partner). Returns false if it was already in use or is outside the range.
    pub fn reserve(&self, returnaddress: IpAddr, proto: u8, port: u16) -> bool {
        let Some(offset) = self.offset_of(port) else {
            return false;
        };
        let mut shard = self.shard(returnaddress, proto).lock();
        let ports = shard
            .entry((returnaddress, proto))
            .or_insert_with(|| Ports::new(self.len));
        if ports.is_set(offset) {
            return false;
        }
        ports.set(offset);
        ports.in_use += 1;
        true
    }

    /// Number of source ports in use on `returnaddress` for protocol `proto`.
    pub fn in_use(&self, returnaddress: IpAddr, proto: u8) -> usize {
        let shard = self.shard(returnaddress, proto).lock();
        shard
            .get(&(returnaddress, proto))
            .map_or(0, |p| p.in_use as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{IPPROTO_TCP, IPPROTO_UDP};
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_clients_own_port_is_kept_when_free() {
        let pool = NatPool::new(1024..=65535);
        let r = ip("192.0.2.200");
        assert_eq!(pool.allocate_preferring(r, 6, 40000), Some(40000));
        let other = pool.allocate_preferring(r, 6, 40000).expect("a free port");
        assert_ne!(other, 40000, "a taken port is not handed out twice");
        assert_eq!(
            pool.allocate_preferring(r, 6, 80).map(|p| p >= 1024),
            Some(true),
            "below the range: any port"
        );
    }

    #[test]
    fn default_range() {
        let p = NatPool::default();
        assert_eq!(p.range(), 1024..=65535);
        assert_eq!(p.capacity(), 64512);
        let ra = ip("10.0.0.254");
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(1024));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(1025));
        // Pools are per returnaddress and per protocol.
        assert_eq!(p.allocate(ra, IPPROTO_UDP), Some(1024));
        assert_eq!(p.allocate(ip("10.0.0.253"), IPPROTO_TCP), Some(1024));
        assert_eq!(p.in_use(ra, IPPROTO_TCP), 2);
        assert_eq!(p.in_use(ra, IPPROTO_UDP), 1);
        assert_eq!(p.in_use(ip("2001:db8::1"), IPPROTO_TCP), 0);
    }

    #[test]
    fn exhaustion_and_rotation() {
        let p = NatPool::new(40000..=40099);
        let ra = ip("10.0.0.254");
        let got: Vec<u16> = (0..100)
            .map(|_| p.allocate(ra, IPPROTO_TCP).unwrap())
            .collect();
        assert_eq!(got, (40000..=40099).collect::<Vec<_>>());
        assert_eq!(p.allocate(ra, IPPROTO_TCP), None);
        assert_eq!(p.in_use(ra, IPPROTO_TCP), 100);
        assert!(p.release(ra, IPPROTO_TCP, 40050));
        assert!(p.release(ra, IPPROTO_TCP, 40010));
        assert!(!p.release(ra, IPPROTO_TCP, 40010), "double release");
        // The cursor is past the end: the search wraps and finds the lowest free port.
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(40010));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(40050));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), None);
    }

    #[test]
    fn recently_freed_not_reused_at_once() {
        let p = NatPool::new(2000..=2999);
        let ra = ip("10.0.0.254");
        let a = p.allocate(ra, IPPROTO_TCP).unwrap();
        assert!(p.release(ra, IPPROTO_TCP, a));
        let mut seen = HashSet::new();
        for _ in 0..999 {
            let port = p.allocate(ra, IPPROTO_TCP).unwrap();
            assert_ne!(port, a);
            assert!(seen.insert(port));
            assert!(p.release(ra, IPPROTO_TCP, port));
        }
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(a));
    }

    #[test]
    fn reserve() {
        let p = NatPool::new(5000..=5009);
        let ra = ip("10.0.0.254");
        assert!(p.reserve(ra, IPPROTO_TCP, 5000));
        assert!(!p.reserve(ra, IPPROTO_TCP, 5000));
        assert!(p.reserve(ra, IPPROTO_TCP, 5001));
        assert!(!p.reserve(ra, IPPROTO_TCP, 4999));
        assert!(!p.reserve(ra, IPPROTO_TCP, 5010));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(5002));
        assert_eq!(p.in_use(ra, IPPROTO_TCP), 3);
        assert!(!p.release(ra, IPPROTO_TCP, 6000));
        assert!(!p.release(ip("10.9.9.9"), IPPROTO_TCP, 5000));
    }

    #[test]
    fn odd_ranges() {
        #[allow(clippy::reversed_empty_ranges)]
        let p = NatPool::new(10..=9);
        let ra = ip("10.0.0.254");
        assert_eq!(p.capacity(), 0);
        assert!(p.range().is_empty());
        assert_eq!(p.allocate(ra, IPPROTO_TCP), None);
        assert!(!p.reserve(ra, IPPROTO_TCP, 10));

        let p = NatPool::new(65535..=65535);
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(65535));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), None);
        assert!(p.release(ra, IPPROTO_TCP, 65535));
        assert_eq!(p.allocate(ra, IPPROTO_TCP), Some(65535));

        let p = NatPool::new(0..=65535);
        assert_eq!(p.capacity(), 65536);
        assert_eq!(p.range(), 0..=65535);
        for want in 0..=65535u16 {
            assert_eq!(p.allocate(ra, IPPROTO_UDP), Some(want));
        }
        assert_eq!(p.allocate(ra, IPPROTO_UDP), None);
    }

    #[test]
    fn concurrent_allocations_are_unique() {
        let p = Arc::new(NatPool::new(10000..=19999));
        let ra = ip("10.0.0.254");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    (0..2500)
                        .map(|_| p.allocate(ra, IPPROTO_TCP).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for port in t.join().unwrap() {
                assert!(all.insert(port));
            }
        }
        assert_eq!(all.len(), 10000);
        assert_eq!(p.allocate(ra, IPPROTO_TCP), None);
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<NatPool>();
    }

    proptest! {
        /// Against a model: a set of ports in use.
        #[test]
        fn prop_matches_model(
            start in 60000u16..65535,
            ops in proptest::collection::vec((0u8..3, any::<u16>()), 0..300),
        ) {
            let p = NatPool::new(start..=65535);
            let ra = ip("10.0.0.254");
            let mut used = HashSet::new();
            for (op, n) in ops {
                let cap = 65536 - u32::from(start);
                let port = start.wrapping_add(n % (cap as u16).max(1));
                match op {
                    0 => match p.allocate(ra, IPPROTO_TCP) {
                        Some(got) => {
                            prop_assert!(got >= start);
                            prop_assert!(used.insert(got));
                        }
                        None => prop_assert_eq!(used.len() as u32, cap),
                    },
                    1 => prop_assert_eq!(p.release(ra, IPPROTO_TCP, port), used.remove(&port)),
                    _ => prop_assert_eq!(p.reserve(ra, IPPROTO_TCP, port), used.insert(port)),
                }
                prop_assert_eq!(p.in_use(ra, IPPROTO_TCP), used.len());
            }
        }
    }
}
