//! Weighted Maglev lookup table for `selectionalgorithm hash`.
//!
//! The table maps a flow hash to a server without any shared per-flow state (Eisenbud et
//! al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016). Both
//! nodes of a high-availability pair that are given the same servers and weights build the
//! same table, so a flow keeps its server when the backup takes over, even if the
//! connection record was never replicated.
//!
//! Properties:
//!
//! * **Same servers, same table.** The table depends only on the set of (server, weight)
//!   pairs and the table size, never on the order in which the servers were listed, the
//!   machine or the build. The byte-level recipe is versioned by [`MAGLEV_FORMAT`].
//! * **Weighted.** Each server receives a share of the table slots (and so of the flows)
//!   proportional to its weight. Servers of weight 0 receive nothing.
//! * **Minimal disruption.** When one of N servers is removed (or added), only about 1/N
//!   of the flows change server.
//!
//! Table format 1:
//!
//! * servers with weight 0 are dropped; the rest are sorted by address (IPv4 before IPv6,
//!   numerically within a family); a server listed twice gets the sum of its weights;
//! * a server's preference list is `offset, offset + skip, offset + 2·skip, …` modulo the
//!   table size `M` (a prime), where `offset = xxh3(a, OFFSET_SEED) mod M` and
//!   `skip = xxh3(a, SKIP_SEED) mod (M − 1) + 1`, and `a` is the 16-byte form of the address
//!   ([`crate::flow::ip16`]: IPv4 as IPv4-mapped IPv6);
//! * the table is filled in rounds. In each round every server, in address order, adds its
//!   weight to its credit; a server whose credit reaches the largest weight spends that
//!   amount and claims the next free slot of its preference list. Filling stops when all
//!   `M` slots are claimed;
//! * a flow with hash `h` goes to the server in slot `h mod M`.

use crate::flow::ip16;
use std::fmt;
use std::net::IpAddr;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Version of the table recipe described in the module documentation. Two nodes agree on
/// the server of every flow only if they use the same format, the same size and the same
/// servers and weights.
pub const MAGLEV_FORMAT: u32 = 1;

/// Default number of slots of a table: a prime, large compared with any sensible number
/// of servers behind one port.
pub const DEFAULT_SIZE: usize = 65537;

/// Largest number of slots a table may have (a prime). Larger requested sizes are reduced
/// to this one.
pub const MAX_SIZE: usize = 1_048_573;

/// Seed of the hash that gives a server the first slot of its preference list.
/// Part of table format 1.
pub const OFFSET_SEED: u64 = 0x7a6e_6d61_676c_0001;

/// Seed of the hash that gives a server the step between the slots of its preference
/// list. Part of table format 1.
pub const SKIP_SEED: u64 = 0x7a6e_6d61_676c_0002;

/// Marks a slot that no server has claimed yet (only while the table is built).
const EMPTY: u32 = u32::MAX;

/// A weighted Maglev lookup table: flow hash → server.
///
/// Immutable once built: rebuild it when the servers or their weights change. Lookups take
/// `&self` and need no lock, so any number of forwarding threads can share one table.
#[derive(Clone, PartialEq, Eq)]
pub struct Maglev {
    /// Servers that received a place in the table (weight > 0), sorted by address.
    servers: Vec<(IpAddr, u32)>,
    /// Slot → index into `servers`. Empty when there is no server.
    table: Vec<u32>,
    /// Number of slots (a prime), even when `table` is empty.
    size: usize,
}

impl Maglev {
    /// Builds the table for `servers` given as (server, weight) pairs.
    ///
    /// `size` is the number of slots and should be a prime such as [`DEFAULT_SIZE`],
    /// comfortably larger than the number of servers (100 times or more keeps the shares
    /// close to the weights). A size that is not a prime is rounded up to the next prime;
    /// sizes below 2 become 2 and sizes above [`MAX_SIZE`] become [`MAX_SIZE`].
    ///
    /// Servers of weight 0 take no slot. When no server has a weight above 0, every
    /// lookup returns `None`. The order of `servers` does not matter.
    pub fn new(servers: &[(IpAddr, u32)], size: usize) -> Maglev {
        let size = next_prime(size.clamp(2, MAX_SIZE)).min(MAX_SIZE);

        let mut list: Vec<(IpAddr, u32)> =
            servers.iter().copied().filter(|&(_, w)| w > 0).collect();
        list.sort_unstable();
        // A server listed twice: one entry with the sum of the weights (order-independent).
        list.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 = kept.1.saturating_add(later.1);
                true
            } else {
                false
            }
        });
        // The slot index is a u32; more servers than that cannot exist in practice, but
        // never let a cast wrap.
        list.truncate(EMPTY as usize);

        let table = if list.is_empty() {
            Vec::new()
        } else {
            populate(&list, size)
        };
        Maglev {
            servers: list,
            table,
            size,
        }
    }

    /// The server of the flow whose hash is `hash` (normally
    /// [`FlowKey::stable_hash`](crate::flow::FlowKey::stable_hash)), or `None` when no
    /// server has a weight above 0.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<IpAddr> {
        if self.table.is_empty() {
            return None;
        }
        // `size` fits in a u64 and the remainder is below `size`, so both casts are exact.
        let slot = (hash % self.size as u64) as usize;
        let index = *self.table.get(slot)?;
        self.servers.get(index as usize).map(|&(ip, _)| ip)
    }

    /// Number of table slots each server holds, sorted by server address, for reports.
    /// A server's share of the flows is its slots divided by [`Maglev::size`].
    /// Servers of weight 0 are not listed.
    pub fn shares(&self) -> Vec<(IpAddr, usize)> {
        let mut counts = vec![0usize; self.servers.len()];
        for &index in &self.table {
            if let Some(c) = counts.get_mut(index as usize) {
                *c += 1;
            }
        }
        self.servers
            .iter()
            .zip(counts)
            .map(|(&(ip, _), c)| (ip, c))
            .collect()
    }

    /// The servers in the table (weight above 0) with their weights, sorted by address.
    pub fn servers(&self) -> &[(IpAddr, u32)] {
        &self.servers
    }

    /// Number of slots of the table (a prime).
    pub fn size(&self) -> usize {
        self.size
    }

    /// True when no server has a weight above 0 (every lookup returns `None`).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("format", &MAGLEV_FORMAT)
            .field("size", &self.size)
            .field("shares", &self.shares())
            .finish()
    }
}

/// Fills a table of `size` slots (`size` prime, ≥ 2) for a non-empty list of servers with
/// weights above 0, sorted by address.
fn populate(servers: &[(IpAddr, u32)], size: usize) -> Vec<u32> {
    let m = size as u64;
    let max_weight = u64::from(servers.iter().map(|&(_, w)| w).max().unwrap_or(1));

    // Per server: next slot of its preference list, step between slots, credit.
    let mut pos: Vec<u64> = Vec::with_capacity(servers.len());
    let mut skip: Vec<u64> = Vec::with_capacity(servers.len());
    for &(ip, _) in servers {
        let bytes = ip16(ip);
        pos.push(xxh3_64_with_seed(&bytes, OFFSET_SEED) % m);
        skip.push(xxh3_64_with_seed(&bytes, SKIP_SEED) % (m - 1) + 1);
    }
    let mut credit = vec![0u64; servers.len()];

    let mut table = vec![EMPTY; size];
    let mut filled = 0usize;
    'rounds: loop {
        for (i, &(_, weight)) in servers.iter().enumerate() {
            // credit < max_weight before the addition, so at most one slot per round.
            credit[i] += u64::from(weight);
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            // `skip` is in 1..m and m is prime, so the preference list visits every slot
            // within m steps: a free slot is found while the table is not full.
            let mut p = pos[i];
            while table[p as usize] != EMPTY {
                p += skip[i];
                if p >= m {
                    p -= m;
                }
            }
            table[p as usize] = i as u32;
            p += skip[i];
            if p >= m {
                p -= m;
            }
            pos[i] = p;
            filled += 1;
            if filled == size {
                break 'rounds;
            }
        }
    }
    table
}

/// Whether `n` is a prime (valid Maglev table size).
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5usize;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// The smallest prime ≥ `n` (2 for `n` ≤ 2). Saturates at the largest `usize` prime
/// search range; meant for table sizes.
pub fn next_prime(n: usize) -> usize {
    let mut c = n.max(2);
    while !is_prime(c) {
        match c.checked_add(1) {
            Some(next) => c = next,
            None => return c,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKey;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn servers(n: u8, weight: u32) -> Vec<(IpAddr, u32)> {
        (1..=n)
            .map(|i| (IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), weight))
            .collect()
    }

    /// Hashes of `n` synthetic client flows to one cluster port.
    fn flow_hashes(n: u32) -> Vec<u64> {
        (0..n)
            .map(|i| {
                FlowKey {
                    proto: 6,
                    src_ip: IpAddr::V4(Ipv4Addr::from(0xc633_0000u32.wrapping_add(i * 7919))),
                    src_port: 1024 + (i % 60000) as u16,
                    dst_ip: ip("192.0.2.100"),
                    dst_port: 80,
                }
                .stable_hash()
            })
            .collect()
    }

    #[test]
    fn sizes() {
        assert!(is_prime(DEFAULT_SIZE));
        assert!(is_prime(MAX_SIZE));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65535));
        assert_eq!(next_prime(65536), 65537);
        assert_eq!(next_prime(0), 2);
        assert_eq!(Maglev::new(&servers(3, 1), 0).size(), 2);
        assert_eq!(Maglev::new(&servers(3, 1), 100).size(), 101);
        assert_eq!(Maglev::new(&servers(3, 1), usize::MAX).size(), MAX_SIZE);
        assert_eq!(
            Maglev::new(&servers(3, 1), DEFAULT_SIZE).size(),
            DEFAULT_SIZE
        );
    }

    #[test]
    fn empty_and_zero_weight() {
        let t = Maglev::new(&[], DEFAULT_SIZE);
        assert!(t.is_empty());
        assert_eq!(t.lookup(12345), None);
        assert!(t.shares().is_empty());

        let t = Maglev::new(&[(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 0)], 101);
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u64::MAX), None);

        let t = Maglev::new(&[(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 5)], 101);
        assert_eq!(t.shares(), vec![(ip("10.0.0.2"), 101)]);
        for h in flow_hashes(1000) {
            assert_eq!(t.lookup(h), Some(ip("10.0.0.2")));
        }
    }

    #[test]
    fn order_independent() {
        let mut list = servers(10, 10);
        list.push((ip("2001:db8::1"), 15));
        list.push((ip("2001:db8::2"), 3));
        list[4].1 = 7;
        let a = Maglev::new(&list, DEFAULT_SIZE);
        let mut rev = list.clone();
        rev.reverse();
        let b = Maglev::new(&rev, DEFAULT_SIZE);
        let mut rot = list.clone();
        rot.rotate_left(5);
        let c = Maglev::new(&rot, DEFAULT_SIZE);
        assert_eq!(a, b);
        assert_eq!(a, c);
        let hashes = flow_hashes(100_000);
        let same = hashes
            .iter()
            .filter(|&&h| a.lookup(h) == b.lookup(h))
            .count();
        assert_eq!(same, hashes.len());
        assert!(hashes.iter().all(|&h| a.lookup(h) == c.lookup(h)));
    }

    #[test]
    fn removal_moves_few_flows() {
        let hashes = flow_hashes(100_000);
        for n in [3u8, 5, 10] {
            let all = servers(n, 10);
            let before = Maglev::new(&all, DEFAULT_SIZE);
            for removed in 0..usize::from(n) {
                let mut rest = all.clone();
                rest.remove(removed);
                let after = Maglev::new(&rest, DEFAULT_SIZE);
                let moved = hashes
                    .iter()
                    .filter(|&&h| before.lookup(h) != after.lookup(h))
                    .count();
                let fraction = moved as f64 / hashes.len() as f64;
                let bound = 1.2 / f64::from(n);
                assert!(
                    fraction <= bound,
                    "n={n} removed={removed}: moved {fraction:.4} > {bound:.4}"
                );
                // Flows of the remaining servers mostly stay: the moved ones are mostly
                // those of the removed server.
                assert!(fraction >= 0.8 / f64::from(n));
            }
        }
    }

    #[test]
    fn weighted_shares() {
        let list = vec![
            (ip("10.0.0.1"), 10),
            (ip("10.0.0.2"), 10),
            (ip("10.0.0.3"), 20),
        ];
        let t = Maglev::new(&list, DEFAULT_SIZE);
        let slots = t.shares();
        let want = [25.0, 25.0, 50.0];
        for ((_, c), w) in slots.iter().zip(want) {
            let pct = *c as f64 * 100.0 / DEFAULT_SIZE as f64;
            assert!((pct - w).abs() <= 2.0, "slot share {pct} vs {w}");
        }
        let hashes = flow_hashes(100_000);
        for ((server, _), w) in list.iter().zip(want) {
            let n = hashes
                .iter()
                .filter(|&&h| t.lookup(h) == Some(*server))
                .count();
            let pct = n as f64 * 100.0 / hashes.len() as f64;
            assert!(
                (pct - w).abs() <= 2.0,
                "flow share of {server}: {pct} vs {w}"
            );
        }
    }

    #[test]
    fn skewed_weights() {
        let list = vec![(ip("10.0.0.1"), 1), (ip("10.0.0.2"), 99)];
        let t = Maglev::new(&list, DEFAULT_SIZE);
        let s = t.shares();
        let pct = s[0].1 as f64 * 100.0 / DEFAULT_SIZE as f64;
        assert!((pct - 1.0).abs() < 0.2, "{pct}");
        let t = Maglev::new(&[(ip("10.0.0.1"), 1), (ip("10.0.0.2"), u32::MAX)], 101);
        assert_eq!(t.shares().iter().map(|s| s.1).sum::<usize>(), 101);
    }

    #[test]
    fn duplicates_are_merged() {
        let a = Maglev::new(
            &[
                (ip("10.0.0.1"), 5),
                (ip("10.0.0.2"), 5),
                (ip("10.0.0.1"), 5),
            ],
            101,
        );
        let b = Maglev::new(&[(ip("10.0.0.2"), 5), (ip("10.0.0.1"), 10)], 101);
        assert_eq!(a, b);
        assert_eq!(a.servers(), &[(ip("10.0.0.1"), 10), (ip("10.0.0.2"), 5)]);
    }

    #[test]
    fn more_servers_than_slots() {
        let list: Vec<_> = (0..50u16)
            .map(|i| {
                (
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
                    1,
                )
            })
            .collect();
        let t = Maglev::new(&list, 7);
        assert_eq!(t.size(), 7);
        assert_eq!(t.shares().iter().map(|s| s.1).sum::<usize>(), 7);
        for h in 0..100 {
            assert!(t.lookup(h).is_some());
        }
    }

    /// Golden vectors of table format 1. If this test fails, the table recipe changed:
    /// two nodes running different releases would disagree on the server of existing
    /// flows. Bump [`MAGLEV_FORMAT`] and update the vectors only on purpose.
    #[test]
    fn golden_format_1() {
        assert_eq!(MAGLEV_FORMAT, 1);
        let list = vec![
            (ip("10.0.0.1"), 10),
            (ip("10.0.0.2"), 10),
            (ip("10.0.0.3"), 20),
            (ip("2001:db8::10"), 10),
        ];
        let t = Maglev::new(&list, DEFAULT_SIZE);
        let flow = FlowKey {
            proto: 6,
            src_ip: ip("203.0.113.7"),
            src_port: 40000,
            dst_ip: ip("192.0.2.100"),
            dst_port: 80,
        };
        let got: Vec<String> = [
            0u64,
            1,
            2,
            12345,
            65536,
            1 << 40,
            u64::MAX,
            flow.stable_hash(),
        ]
        .iter()
        .map(|&h| t.lookup(h).unwrap().to_string())
        .collect();
        let shares: Vec<usize> = t.shares().iter().map(|s| s.1).collect();
        // Digest of the whole table: the server of every slot, in slot order.
        let mut bytes = Vec::with_capacity(t.size() * 16);
        for slot in 0..t.size() as u64 {
            bytes.extend_from_slice(&ip16(t.lookup(slot).unwrap()));
        }
        let digest = xxh3_64_with_seed(&bytes, 0);
        println!("{got:?} {shares:?} {digest:#018x}");
        assert_eq!(got, GOLDEN_LOOKUPS);
        assert_eq!(shares, GOLDEN_SHARES);
        assert_eq!(digest, GOLDEN_DIGEST);
    }

    const GOLDEN_LOOKUPS: [&str; 8] = [
        "10.0.0.3",
        "2001:db8::10",
        "10.0.0.1",
        "10.0.0.3",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.3",
        "10.0.0.1",
    ];
    const GOLDEN_SHARES: [usize; 4] = [13108, 13107, 26215, 13107];
    const GOLDEN_DIGEST: u64 = 0x9001_a8e2_94ca_ad4c;

    #[test]
    fn build_is_fast() {
        // A coarse guard (debug builds are slow): the release build takes ~1 ms.
        let list = servers(10, 10);
        let start = std::time::Instant::now();
        let t = Maglev::new(&list, DEFAULT_SIZE);
        let took = start.elapsed();
        assert!(!t.is_empty());
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Maglev>();
    }

    proptest! {
        #[test]
        fn prop_order_independent_and_total(
            raw in proptest::collection::vec((any::<u32>(), 0u32..20), 0..12),
            rotate in 0usize..12,
            hashes in proptest::collection::vec(any::<u64>(), 50),
        ) {
            let list: Vec<(IpAddr, u32)> =
                raw.iter().map(|&(a, w)| (IpAddr::V4(Ipv4Addr::from(a)), w)).collect();
            let a = Maglev::new(&list, 251);
            let mut other = list.clone();
            other.reverse();
            if !other.is_empty() {
                let r = rotate % other.len();
                other.rotate_left(r);
            }
            let b = Maglev::new(&other, 251);
            prop_assert_eq!(&a, &b);
            let live: Vec<IpAddr> =
                list.iter().filter(|s| s.1 > 0).map(|s| s.0).collect();
            prop_assert_eq!(a.shares().iter().map(|s| s.1).sum::<usize>(),
                if live.is_empty() { 0 } else { 251 });
            for h in hashes {
                match a.lookup(h) {
                    None => prop_assert!(live.is_empty()),
                    Some(s) => prop_assert!(live.contains(&s)),
                }
            }
        }
    }
}
