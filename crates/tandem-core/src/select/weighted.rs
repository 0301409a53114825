//! Weighted round robin for `selectionalgorithm connection`.
//!
//! Each new connection goes to the next server of a precomputed sequence in which every
//! server appears in proportion to its weight, spread out as evenly as possible (the
//! "smooth weighted round robin" of nginx): with weights 10/10/20 the servers are picked
//! C, A, B, C, C, A, B, C, … rather than ten times A in a row.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest sequence a picker precomputes. When the weights (divided by their greatest
/// common divisor) add up to more, they are scaled down proportionally, every server of
/// weight above 0 keeping at least one place.
pub const MAX_SEQUENCE: usize = 1 << 16;

/// Picks servers in proportion to their weights, for new connections of a port.
///
/// Immutable once built: rebuild it when the servers or their weights change. [`pick`]
/// takes `&self` and is lock-free (one atomic increment), so any number of forwarding
/// threads can share one picker; together they follow the sequence exactly.
///
/// [`pick`]: WeightedPicker::pick
#[derive(Debug)]
pub struct WeightedPicker {
    /// The servers in the order they are picked; repeats forever.
    sequence: Vec<IpAddr>,
    /// Servers of weight above 0 and their (reduced) weights, sorted by address.
    servers: Vec<(IpAddr, u32)>,
    cursor: AtomicUsize,
}

impl WeightedPicker {
    /// A picker for `servers` given as (server, weight) pairs. Servers of weight 0 are never
    /// picked; a server listed twice gets the sum of its weights. The order of `servers`
    /// does not matter.
    pub fn new(servers: &[(IpAddr, u32)]) -> WeightedPicker {
        let mut list: Vec<(IpAddr, u64)> = servers
            .iter()
            .filter(|s| s.1 > 0)
            .map(|&(ip, w)| (ip, u64::from(w)))
            .collect();
        list.sort_unstable();
        list.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 += later.1;
                true
            } else {
                false
            }
        });

        // Shortest sequence with the same proportions.
        let g = list.iter().fold(0u64, |g, s| gcd(g, s.1));
        if g > 1 {
            for s in &mut list {
                s.1 /= g;
            }
        }
        let total: u64 = list.iter().map(|s| s.1).sum();
        if total > MAX_SEQUENCE as u64 {
            let cap = MAX_SEQUENCE as u128;
            for s in &mut list {
                let scaled = u128::from(s.1) * cap / u128::from(total);
                s.1 = u64::try_from(scaled).unwrap_or(u64::MAX).max(1);
            }
        }

        let sequence = smooth_sequence(&list);
        let servers = list
            .iter()
            .map(|&(ip, w)| (ip, u32::try_from(w).unwrap_or(u32::MAX)))
            .collect();
        WeightedPicker {
            sequence,
            servers,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The server for the next new connection, or `None` when no server has a weight
    /// above 0.
    #[inline]
    pub fn pick(&self) -> Option<IpAddr> {
        if self.sequence.is_empty() {
            return None;
        }
        // Wraps after 2^64 picks, which only shifts the sequence once.
        let n = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.sequence.get(n % self.sequence.len()).copied()
    }

    /// The servers that can be picked with their weights, reduced to lowest terms (10/10/20
    /// becomes 1/1/2), sorted by address.
    pub fn servers(&self) -> &[(IpAddr, u32)] {
        &self.servers
    }

    /// Length of one cycle of the sequence: over any run of picks whose number is a
    /// multiple of it, each server is picked exactly in proportion to its weight.
    pub fn period(&self) -> usize {
        self.sequence.len()
    }

    /// True when no server can be picked.
    pub fn is_empty(&self) -> bool {
        self.sequence.is_empty()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// nginx's smooth weighted round robin, run for one full cycle (sum of the weights picks):
/// every server adds its weight to its current value, the largest current value wins
/// (the first in address order on a tie) and gives back the total.
fn smooth_sequence(servers: &[(IpAddr, u64)]) -> Vec<IpAddr> {
    let total: u64 = servers.iter().map(|s| s.1).sum();
    let total_i = i128::from(total);
    let mut current = vec![0i128; servers.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0usize;
        for (i, s) in servers.iter().enumerate() {
            current[i] += i128::from(s.1);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_i;
        sequence.push(servers[best].0);
    }
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn count(p: &WeightedPicker, n: usize) -> HashMap<IpAddr, usize> {
        let mut m = HashMap::new();
        for _ in 0..n {
            *m.entry(p.pick().unwrap()).or_default() += 1;
        }
        m
    }

    #[test]
    fn exact_shares_interleaved() {
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let p = WeightedPicker::new(&[(c, 20), (a, 10), (b, 10)]);
        for k in 1..=5 {
            let m = count(&p, 40 * k);
            assert_eq!(m[&a], 10 * k);
            assert_eq!(m[&b], 10 * k);
            assert_eq!(m[&c], 20 * k);
        }
        // Interleaved: never the same server twice in a row.
        let seq: Vec<_> = (0..400).map(|_| p.pick().unwrap()).collect();
        assert!(seq.windows(2).all(|w| w[0] != w[1] || w[0] == c));
        assert!(seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])));
        assert_eq!(p.servers(), &[(a, 1), (b, 1), (c, 2)]);
        assert_eq!(p.period(), 4);
    }

    #[test]
    fn zero_weights() {
        assert_eq!(WeightedPicker::new(&[]).pick(), None);
        let p = WeightedPicker::new(&[(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 0)]);
        assert!(p.is_empty());
        assert_eq!(p.pick(), None);
        let p = WeightedPicker::new(&[(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 3)]);
        for _ in 0..100 {
            assert_eq!(p.pick(), Some(ip("10.0.0.2")));
        }
    }

    #[test]
    fn huge_weights_are_scaled() {
        let p = WeightedPicker::new(&[
            (ip("10.0.0.1"), u32::MAX),
            (ip("10.0.0.2"), u32::MAX - 1),
            (ip("10.0.0.3"), 1),
        ]);
        assert!(p.period() <= MAX_SEQUENCE + 3);
        let m = count(&p, p.period());
        assert_eq!(m[&ip("10.0.0.3")], 1);
        let d = m[&ip("10.0.0.1")].abs_diff(m[&ip("10.0.0.2")]);
        assert!(d <= 1, "{m:?}");
    }

    #[test]
    fn concurrent_picks_follow_the_sequence() {
        let p = Arc::new(WeightedPicker::new(&[
            (ip("10.0.0.1"), 10),
            (ip("10.0.0.2"), 10),
            (ip("10.0.0.3"), 20),
        ]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || count(&p, 10_000))
            })
            .collect();
        let mut total: HashMap<IpAddr, usize> = HashMap::new();
        for t in threads {
            for (k, v) in t.join().unwrap() {
                *total.entry(k).or_default() += v;
            }
        }
        assert_eq!(total[&ip("10.0.0.1")], 10_000);
        assert_eq!(total[&ip("10.0.0.2")], 10_000);
        assert_eq!(total[&ip("10.0.0.3")], 20_000);
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<WeightedPicker>();
    }

    proptest! {
        #[test]
        fn prop_counts_match_weights(
            raw in proptest::collection::btree_map(any::<u32>(), 0u32..30, 0..10),
            cycles in 1usize..4,
        ) {
            let list: Vec<(IpAddr, u32)> =
                raw.iter().map(|(&a, &w)| (IpAddr::V4(Ipv4Addr::from(a)), w)).collect();
            let p = WeightedPicker::new(&list);
            let total: u32 = list.iter().map(|s| s.1).sum();
            if total == 0 {
                prop_assert_eq!(p.pick(), None);
            } else {
                // One full (unreduced) cycle gives each server exactly its weight.
                let picks = total as usize * cycles;
                let m = count(&p, picks);
                for (ip, w) in &list {
                    prop_assert_eq!(m.get(ip).copied().unwrap_or(0), *w as usize * cycles);
                }
            }
        }
    }
}
