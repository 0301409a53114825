//! The neighbour table: MAC addresses of servers, routers and gateways, learnt from ARP
//! (IPv4) and neighbour discovery (IPv6: advertisements, and the source link-layer address
//! of solicitations).
//!
//! Tandem resolves the next hops it forwards to itself (it owns the forwarding interface's
//! traffic for cluster addresses; the kernel's table is not consulted on the packet path). Only
//! addresses the configuration wants are learnt, so an ARP flood cannot grow the table.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often an unresolved address is asked for again.
pub const REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// MAC addresses of wanted neighbours.
#[derive(Default)]
pub struct NeighborTable {
    known: RwLock<HashMap<IpAddr, [u8; 6]>>,
    asked: Mutex<HashMap<IpAddr, Instant>>,
}

impl NeighborTable {
    /// The MAC of `ip`, if known.
    pub fn get(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.known.read().get(&ip).copied()
    }

    /// Records `ip` at `mac` (the caller checks that `ip` is wanted).
    pub fn learn(&self, ip: IpAddr, mac: [u8; 6]) {
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return; // never learn a zero or multicast address
        }
        let mut known = self.known.write();
        if known.get(&ip) != Some(&mac) {
            known.insert(ip, mac);
        }
        drop(known);
        self.asked.lock().remove(&ip);
    }

    /// Whether an ARP request (IPv4) or neighbour solicitation (IPv6) for `ip` should go out now (rate-limited per address).
    pub fn should_ask(&self, ip: IpAddr, now: Instant) -> bool {
        let mut asked = self.asked.lock();
        match asked.get(&ip) {
            Some(&t) if now.saturating_duration_since(t) < REQUEST_INTERVAL => false,
            _ => {
                asked.insert(ip, now);
                true
            }
        }
    }

    /// Forgets addresses no longer wanted.
    pub fn retain(&self, wanted: impl Fn(IpAddr) -> bool) {
        self.known.write().retain(|ip, _| wanted(*ip));
        self.asked.lock().retain(|ip, _| wanted(*ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_at_most_every_interval_and_stops_once_learnt() {
        let t = NeighborTable::default();
        let ip = IpAddr::from([192, 0, 2, 11]);
        let now = Instant::now();
        assert!(t.should_ask(ip, now));
        assert!(!t.should_ask(ip, now + Duration::from_millis(100)));
        assert!(t.should_ask(ip, now + REQUEST_INTERVAL));
        t.learn(ip, [2, 0, 0, 0, 0, 1]);
        assert_eq!(t.get(ip), Some([2, 0, 0, 0, 0, 1]));
        t.learn(ip, [1, 0, 0, 0, 0, 1]); // multicast: ignored
        assert_eq!(t.get(ip), Some([2, 0, 0, 0, 0, 1]));
    }
}
