//! IPv4 fragments of a balanced flow (both directions, MAC and NAT), without reassembly.
//!
//! The first fragment (offset 0) carries the TCP/UDP header: it takes the normal path
//! (record lookup or server selection, NAT, MAC rewrite) as a whole datagram would; the
//! incremental checksum update of its NAT rewrite is right for the whole datagram, as it
//! depends only on the fields that change. What that path did to it — the next hop's MAC
//! address and, with NAT, the new source and destination addresses — is remembered under the
//! datagram's (source, destination, protocol, identification) in a [`FragmentTable`] for
//! [`FRAGMENT_TIMEOUT`]. Later fragments (offset > 0) of the datagram get the same: their IP
//! header is rewritten (addresses and header checksum only: they carry no UDP header) and
//! they go to the same next hop. Replies of a NAT server that are fragmented take the same
//! way: their first fragment is translated back by its record, later ones follow it.
//!
//! A later fragment whose first was not forwarded (lost, reordered before it, or older than
//! the timeout) is dropped as `fragment-unknown`: Tandem holds no frames. Linux and most
//! stacks send a datagram's fragments in order.

use super::engine::{Engine, RxMeta, Verdict};
use super::plan::Plan;
use super::stats::{DropReason, ServerCounters};
use crate::flow::FlowKey;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tandem_wire as wire;

/// How long the rewrite of a datagram's first fragment applies to its later fragments.
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Datagrams remembered at most (over all shards); beyond, the oldest is forgotten and
/// counted in [`FragmentTable::evicted`]. About 100 bytes each: 1.6 MB at most.
pub const FRAGMENT_DATAGRAMS: usize = 16384;

const SHARDS: usize = 16;

/// A fragmented datagram, as every one of its fragments names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub proto: u8,
    pub ident: u32,
}

impl FragmentKey {
    pub fn of(f: &wire::Fragment) -> FragmentKey {
        FragmentKey {
            src_ip: f.src_ip,
            dst_ip: f.dst_ip,
            proto: f.proto,
            ident: f.ident,
        }
    }

    fn shard(&self) -> usize {
        let fold = |ip: IpAddr| match ip {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => a
                .segments()
                .iter()
                .fold(0u32, |h, &s| h.rotate_left(5) ^ u32::from(s)),
        };
        let h = fold(self.src_ip) ^ fold(self.dst_ip).rotate_left(16) ^ self.ident;
        (h ^ (h >> 8) ^ (h >> 16)) as usize % SHARDS
    }
}

/// What the first fragment's path did, for the later fragments to get the same.
#[derive(Debug, Clone)]
pub struct FragmentRoute {
    /// Destination MAC address (the server's or router's, or the client's for a reply).
    pub dst_mac: [u8; 6],
    /// New source address (NAT), `None` to keep it.
    pub new_src: Option<Ipv4Addr>,
    /// New destination address (NAT), `None` to keep it.
    pub new_dst: Option<Ipv4Addr>,
    /// The counters of the flow's server.
    pub counters: Option<Arc<ServerCounters>>,
    expires: Instant,
}

#[derive(Default)]
struct Shard {
    routes: HashMap<FragmentKey, FragmentRoute>,
    /// Keys in insertion order (each key once): expiry and eviction from the front.
    order: VecDeque<FragmentKey>,
}

/// The datagrams whose first fragment was forwarded lately: bounded, sharded by datagram.
pub struct FragmentTable {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Datagrams forgotten before their timeout because the table was full.
    pub evicted: AtomicU64,
}

impl Default for FragmentTable {
    fn default() -> Self {
        FragmentTable::new(FRAGMENT_DATAGRAMS)
    }
}

impl FragmentTable {
    /// A table of at most `max` datagrams (at least one per shard).
    pub fn new(max: usize) -> FragmentTable {
        FragmentTable {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max.div_ceil(SHARDS).max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Remembers `route` for the later fragments of `key` until `now` + [`FRAGMENT_TIMEOUT`].
    /// A datagram seen again (a retransmitted first fragment) gets the new route and keeps its
    /// place and expiry.
    pub fn insert(&self, key: FragmentKey, mut route: FragmentRoute, now: Instant) {
        let mut s = self.shards[key.shard()].lock();
        s.expire(now);
        if let Some(r) = s.routes.get_mut(&key) {
            route.expires = r.expires;
            *r = route;
            return;
        }
        while s.routes.len() >= self.per_shard {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            s.routes.remove(&old);
            self.evicted.fetch_add(1, Relaxed);
        }
        route.expires = now + FRAGMENT_TIMEOUT;
        s.routes.insert(key, route);
        s.order.push_back(key);
    }

    /// The route of a datagram's later fragments, if its first went by less than the timeout
    /// ago.
    pub fn get(&self, key: &FragmentKey, now: Instant) -> Option<FragmentRoute> {
        let s = self.shards[key.shard()].lock();
        s.routes.get(key).filter(|r| r.expires > now).cloned()
    }

    /// Datagrams remembered now (expired ones included until an insert clears them).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().routes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound of the table.
    pub fn max(&self) -> usize {
        self.per_shard * SHARDS
    }
}

impl Shard {
    fn expire(&mut self, now: Instant) {
        while let Some(k) = self.order.front() {
            if self.routes.get(k).is_some_and(|r| r.expires > now) {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.routes.remove(&k);
            }
        }
    }
}

fn ipv4_at(frame: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b = frame.get(at..at + 4)?;
    Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

impl Engine {
    /// An IP fragment to an address Tandem owns (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fragment(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        f: &wire::Fragment,
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        if let Some(v) = self.admit_owned(plan, frame, (f.dst_mac, f.dst_ip, f.l3), meta) {
            return v;
        }
        let key = FragmentKey::of(f);
        if let Some(pkt) = &f.first {
            return self.first_fragment(worker, plan, frame, key, pkt, now, out);
        }
        if f.is_first() {
            // The first fragment of another protocol than TCP/UDP.
            return Verdict::Drop(DropReason::UnsupportedProtocol);
        }
        let Some(route) = self.fragments.get(&key, now) else {
            return Verdict::Drop(DropReason::FragmentUnknown);
        };
        if wire::ipv4::rewrite_addresses(frame, f.l3, route.new_src, route.new_dst).is_err()
            || wire::set_src_mac(frame, plan.our_mac).is_err()
            || wire::set_dst_mac(frame, route.dst_mac).is_err()
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        if let Some(c) = &route.counters {
            c.count(worker, frame.len());
        }
        Verdict::Transmit(frame.len())
    }

    /// The first fragment: the normal path, then its rewrite remembered for the others.
    #[allow(clippy::too_many_arguments)]
    fn first_fragment(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        key: FragmentKey,
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let reply = plan.return_addresses.contains(&pkt.dst_ip);
        let verdict = if reply {
            self.reply_from_server(worker, plan, frame, pkt, now)
        } else {
            match plan.port(pkt.dst_ip, pkt.dst_port, pkt.proto) {
                Some(port) => self.to_server(worker, plan, port, frame, pkt, now, out),
                None => return Verdict::Drop(DropReason::NoPort),
            }
        };
        if !matches!(verdict, Verdict::Transmit(_)) {
            return verdict;
        }
        let changed = |at: usize, was: IpAddr| {
            ipv4_at(frame, pkt.l3 + at).filter(|&now| IpAddr::V4(now) != was)
        };
        let mut dst_mac = [0u8; 6];
        if let Some(m) = frame.get(..6) {
            dst_mac.copy_from_slice(m);
        }
        let route = FragmentRoute {
            dst_mac,
            new_src: changed(wire::ipv4::field::SRC_ADDR.start, pkt.src_ip),
            new_dst: changed(wire::ipv4::field::DST_ADDR.start, pkt.dst_ip),
            counters: self.flow_counters(plan, pkt, reply),
            expires: now,
        };
        self.fragments.insert(key, route, now);
        verdict
    }

    /// The server counters of the record a packet belongs to (client side, or NAT reply).
    fn flow_counters(
        &self,
        plan: &Plan,
        pkt: &wire::Packet,
        reply: bool,
    ) -> Option<Arc<ServerCounters>> {
        let key = if reply {
            self.conns.lookup_nat(pkt.dst_ip, pkt.proto, pkt.dst_port)?
        } else {
            FlowKey {
                proto: pkt.proto,
                src_ip: pkt.src_ip,
                src_port: pkt.src_port,
                dst_ip: pkt.dst_ip,
                dst_port: pkt.dst_port,
            }
        };
        let server = self.conns.with(&key, |c| c.map(|c| c.server))?;
        let port = plan.port(key.dst_ip, key.dst_port, key.proto)?;
        port.server(server).map(|s| s.counters.clone())
    }
}
