//! How the connection table stores a [`Conn`]: compactly, by address family.
//!
//! A record of IPv4 addresses only (client, cluster, server and returnaddress) is a 14-byte
//! key and a 36-byte value; with the hash table's control byte that is 51 bytes per slot
//! (`tests/memory.rs` measures the whole cost per record). The value holds
//!
//! * times as 32-bit milliseconds from the shard's [`Clock`] epoch (`created`, `last_seen`,
//!   `closing_since`, `replicated_at`; the optional ones with a flag bit), the staletimeout in
//!   whole seconds;
//! * the server as its 4-byte address: the counters are found through the plan by it (see
//!   [`Conn`]), so a plan swap never leaves a record pointing at stale counters;
//! * flags (established, affinity made, closing, replicated, NAT).
//!
//! The NAT translation (returnaddress, NAT port, server port: 8 bytes for IPv4) lives in a side
//! map of the family, for NAT records only. Any other record (IPv6, or addresses of mixed
//! families) is stored the same way with 17-byte addresses ([`IpAddr`]): a 40-byte key and a
//! 48-byte value.

use super::conn::{Conn, NatMapping};
use crate::flow::FlowKey;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Milliseconds from an epoch, in 32 bits (49 days). The table moves a shard's epoch forward
/// before its times run out ([`Family::rebase`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub epoch: Instant,
}

/// How far back of its creation a clock's epoch starts (records replicated with an age, and
/// times a little before the table was made, still fit).
const EPOCH_MARGIN: Duration = Duration::from_secs(24 * 3600);

impl Clock {
    pub fn new() -> Clock {
        let now = Instant::now();
        Clock {
            epoch: now.checked_sub(EPOCH_MARGIN).unwrap_or(now),
        }
    }
    /// `t` in milliseconds from the epoch (0 before it, `u32::MAX` past its range).
    pub fn enc(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX)
    }
    pub fn dec(&self, ms: u32) -> Instant {
        self.epoch + Duration::from_millis(u64::from(ms))
    }
    /// Milliseconds since the epoch at `now`.
    pub fn age_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

/// An address as a family stores it.
pub(super) trait Addr: Copy + Eq + Hash {
    fn of(ip: IpAddr) -> Option<Self>;
    fn ip(self) -> IpAddr;
}

impl Addr for Ipv4Addr {
    fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
}

impl Addr for IpAddr {
    fn of(ip: IpAddr) -> Option<Self> {
        Some(ip)
    }
    fn ip(self) -> IpAddr {
        self
    }
}

/// The client → cluster tuple of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key<A> {
    src: A,
    dst: A,
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

impl<A: Addr> Key<A> {
    pub fn of(k: &FlowKey) -> Option<Key<A>> {
        Some(Key {
            src: A::of(k.src_ip)?,
            dst: A::of(k.dst_ip)?,
            src_port: k.src_port,
            dst_port: k.dst_port,
            proto: k.proto,
        })
    }
    pub fn flow(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src_ip: self.src.ip(),
            src_port: self.src_port,
            dst_ip: self.dst.ip(),
            dst_port: self.dst_port,
        }
    }
}

const ESTABLISHED: u8 = 1;
const MADE_AFFINITY: u8 = 2;
const CLOSING: u8 = 4;
const REPLICATED: u8 = 8;
const NAT: u8 = 16;

/// A record's value in a family's map.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rec<A> {
    created: u32,
    last_seen: u32,
    closing_since: u32,
    replicated_at: u32,
    staletimeout_s: u32,
    client_ack: u32,
    server: A,
    client_mac: [u8; 6],
    flags: u8,
}

impl<A> Rec<A> {
    pub fn created(&self) -> u32 {
        self.created
    }
    pub fn is_halfopen(&self) -> bool {
        self.flags & ESTABLISHED == 0
    }
}

/// A NAT record's translation, in the family's side map.
#[derive(Debug, Clone, Copy)]
pub(super) struct NatRec<A> {
    returnaddress: A,
    nat_port: u16,
    server_port: u16,
}

/// Whole seconds, rounded up, saturating.
fn secs_ceil(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// The hasher of the table's maps: foldhash, seeded per map from a per-process random seed
/// (keys are chosen by clients, so the seed must not be guessable), several times faster than
/// the standard SipHash on these short keys.
pub(super) type Hasher = foldhash::quality::RandomState;

/// A map of the table.
pub(super) type Map<K, V> = HashMap<K, V, Hasher>;

/// The records of one address family in one shard.
pub(super) struct Family<A> {
    pub map: Map<Key<A>, Rec<A>>,
    nat: Map<Key<A>, NatRec<A>>,
}

impl<A> Default for Family<A> {
    fn default() -> Self {
        Family {
            map: Map::default(),
            nat: Map::default(),
        }
    }
}

impl<A: Addr> Family<A> {
    /// Whether `c` can be stored in this family (every address of it is an `A`).
    pub fn fits(c: &Conn) -> bool {
        Key::<A>::of(&c.key).is_some()
            && A::of(c.server).is_some()
            && c.nat.is_none_or(|n| A::of(n.returnaddress).is_some())
    }

    fn decode(&self, k: &Key<A>, r: &Rec<A>, clock: &Clock) -> Conn {
        Self::decode_with(&self.nat, k, r, clock)
    }

    fn decode_with(nat: &Map<Key<A>, NatRec<A>>, k: &Key<A>, r: &Rec<A>, clock: &Clock) -> Conn {
        let n = if r.flags & NAT != 0 { nat.get(k) } else { None };
        Self::decode_rec(k, r, n, clock)
    }

    /// The record of key `k`, value `r` and NAT translation `n` (if `r` says it has one).
    fn decode_rec(k: &Key<A>, r: &Rec<A>, n: Option<&NatRec<A>>, clock: &Clock) -> Conn {
        let nat = n.filter(|_| r.flags & NAT != 0).map(|n| NatMapping {
            returnaddress: n.returnaddress.ip(),
            nat_port: n.nat_port,
            server_port: n.server_port,
        });
        Conn {
            key: k.flow(),
            server: r.server.ip(),
            nat,
            client_mac: r.client_mac,
            created: clock.dec(r.created),
            last_seen: clock.dec(r.last_seen),
            closing_since: (r.flags & CLOSING != 0).then(|| clock.dec(r.closing_since)),
            staletimeout: Duration::from_secs(u64::from(r.staletimeout_s)),
            client_ack: r.client_ack,
            replicated_at: (r.flags & REPLICATED != 0).then(|| clock.dec(r.replicated_at)),
            established: r.flags & ESTABLISHED != 0,
            made_affinity: r.flags & MADE_AFFINITY != 0,
        }
    }

    /// `c` as a value (its NAT translation apart). `None` if an address is of another family.
    fn encode(c: &Conn, clock: &Clock) -> Option<Rec<A>> {
        let flag = |on: bool, f: u8| if on { f } else { 0 };
        Some(Rec {
            created: clock.enc(c.created),
            last_seen: clock.enc(c.last_seen),
            closing_since: c.closing_since.map_or(0, |t| clock.enc(t)),
            replicated_at: c.replicated_at.map_or(0, |t| clock.enc(t)),
            staletimeout_s: secs_ceil(c.staletimeout),
            client_ack: c.client_ack,
            server: A::of(c.server)?,
            client_mac: c.client_mac,
            flags: flag(c.established, ESTABLISHED)
                | flag(c.made_affinity, MADE_AFFINITY)
                | flag(c.closing_since.is_some(), CLOSING)
                | flag(c.replicated_at.is_some(), REPLICATED)
                | flag(c.nat.is_some(), NAT),
        })
    }

    pub fn get(&self, k: &Key<A>, clock: &Clock) -> Option<Conn> {
        self.map.get(k).map(|r| self.decode(k, r, clock))
    }

    /// Stores `c` (which [`fits`](Self::fits)), returning the record it replaced: one lookup
    /// in the map (and one in the NAT side map for a NAT record or a replaced one).
    pub fn put(&mut self, c: &Conn, clock: &Clock) -> Option<Conn> {
        let (Some(k), Some(rec)) = (Key::<A>::of(&c.key), Self::encode(c, clock)) else {
            return None;
        };
        let (old, old_nat) = match self.map.entry(k) {
            Entry::Occupied(mut e) => {
                let was = std::mem::replace(e.get_mut(), rec);
                (Some(was), was.flags & NAT != 0)
            }
            Entry::Vacant(e) => {
                e.insert(rec);
                (None, false)
            }
        };
        let new_nat = c.nat.and_then(|n| {
            Some(NatRec {
                returnaddress: A::of(n.returnaddress)?,
                nat_port: n.nat_port,
                server_port: n.server_port,
            })
        });
        let old_nat = match (old_nat, new_nat) {
            (false, None) => None,
            (false, Some(n)) => {
                self.nat.insert(k, n);
                None
            }
            (true, None) => self.nat.remove(&k),
            (true, Some(n)) => self.nat.insert(k, n),
        };
        old.map(|r| Self::decode_rec(&k, &r, old_nat.as_ref(), clock))
    }

    /// Runs `f` on the record of `k` and stores what it changed (not its key or translation)
    /// with one lookup: `f`'s result, whether the record was half-open before, and the record
    /// after; or `f` back, not run, when there is none.
    pub fn modify<R, F: FnOnce(Option<&mut Conn>) -> R>(
        &mut self,
        k: &Key<A>,
        clock: &Clock,
        f: F,
    ) -> Result<(R, bool, Conn), F> {
        let Some(slot) = self.map.get_mut(k) else {
            return Err(f);
        };
        let mut c = Self::decode_with(&self.nat, k, slot, clock);
        let was_halfopen = c.is_halfopen();
        let r = f(Some(&mut c));
        if let Some(rec) = Self::encode(&c, clock) {
            *slot = rec;
        }
        Ok((r, was_halfopen, c))
    }

    pub fn remove(&mut self, k: &Key<A>, clock: &Clock) -> Option<Conn> {
        let r = self.map.remove(k)?;
        let c = self.decode(k, &r, clock);
        if r.flags & NAT != 0 {
            self.nat.remove(k);
        }
        Some(c)
    }

    pub fn iter<'a>(&'a self, clock: &'a Clock) -> impl Iterator<Item = Conn> + 'a {
        self.map.iter().map(move |(k, r)| self.decode(k, r, clock))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Gives memory back once the family is mostly empty.
    pub fn shrink(&mut self) {
        let len = self.map.len();
        if self.map.capacity() > 4 * len + 1024 {
            self.map.shrink_to(2 * len);
        }
        let len = self.nat.len();
        if self.nat.capacity() > 4 * len + 1024 {
            self.nat.shrink_to(2 * len);
        }
    }

    /// Moves every time `shift_ms` back (the epoch moved forward by as much); times before
    /// the new epoch become the epoch.
    pub fn rebase(&mut self, shift_ms: u32) {
        for r in self.map.values_mut() {
            r.created = r.created.saturating_sub(shift_ms);
            r.last_seen = r.last_seen.saturating_sub(shift_ms);
            r.closing_since = r.closing_since.saturating_sub(shift_ms);
            r.replicated_at = r.replicated_at.saturating_sub(shift_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(v4: bool, nat: bool, clock: &Clock) -> Conn {
        let ip = |s4: &str, s6: &str| -> IpAddr { if v4 { s4 } else { s6 }.parse().unwrap() };
        let t = clock.epoch + Duration::from_secs(100_000);
        Conn {
            key: FlowKey {
                proto: 6,
                src_ip: ip("203.0.113.5", "2001:db8::5"),
                src_port: 40000,
                dst_ip: ip("192.0.2.100", "2001:db8::100"),
                dst_port: 80,
            },
            server: ip("192.0.2.11", "2001:db8::11"),
            nat: nat.then(|| NatMapping {
                returnaddress: ip("192.0.2.200", "2001:db8::200"),
                nat_port: 40001,
                server_port: 8080,
            }),
            client_mac: [2, 0, 0, 0, 0, 9],
            created: t,
            last_seen: t + Duration::from_millis(1500),
            closing_since: Some(t + Duration::from_secs(3)),
            staletimeout: Duration::from_secs(300),
            client_ack: 77,
            replicated_at: None,
            established: true,
            made_affinity: true,
        }
    }

    #[test]
    fn records_are_compact_and_round_trip() {
        // IPv4 with its key: 52 bytes in the map's slot (and 1 control byte).
        assert_eq!(std::mem::size_of::<Key<Ipv4Addr>>(), 14);
        assert_eq!(std::mem::size_of::<Rec<Ipv4Addr>>(), 36);
        assert_eq!(std::mem::size_of::<(Key<Ipv4Addr>, Rec<Ipv4Addr>)>(), 52);
        assert_eq!(std::mem::size_of::<(Key<Ipv4Addr>, NatRec<Ipv4Addr>)>(), 22);
        assert_eq!(std::mem::size_of::<(Key<IpAddr>, Rec<IpAddr>)>(), 88);
        // Issue 10: an IPv4 record with its index in at most 128 bytes, in the hash table's
        // worst case: just past a doubling it is 7/16 full, so a record costs its slot and
        // control byte 16/7 times (`tests/memory.rs` measures it with 1 000 000 records).
        let worst = (std::mem::size_of::<(Key<Ipv4Addr>, Rec<Ipv4Addr>)>() + 1) * 16 / 7;
        assert!(worst <= 128, "{worst} B");
        let clock = Clock::new();
        for (v4, nat) in [(true, false), (true, true), (false, false), (false, true)] {
            let c = conn(v4, nat, &clock);
            let mut f4 = Family::<Ipv4Addr>::default();
            let mut f6 = Family::<IpAddr>::default();
            assert_eq!(Family::<Ipv4Addr>::fits(&c), v4);
            assert!(Family::<IpAddr>::fits(&c));
            let back = if v4 {
                assert!(f4.put(&c, &clock).is_none());
                f4.get(&Key::of(&c.key).unwrap(), &clock).unwrap()
            } else {
                assert!(f6.put(&c, &clock).is_none());
                f6.get(&Key::of(&c.key).unwrap(), &clock).unwrap()
            };
            assert_eq!(back, c, "v4 {v4} nat {nat}");
        }
    }

    #[test]
    fn times_are_milliseconds_and_rebase_keeps_them() {
        let mut clock = Clock::new();
        let mut c = conn(true, false, &clock);
        c.last_seen += Duration::from_micros(700);
        c.replicated_at = Some(c.created);
        let mut f = Family::<Ipv4Addr>::default();
        f.put(&c, &clock);
        let k = Key::of(&c.key).unwrap();
        let back = f.get(&k, &clock).unwrap();
        assert_eq!(back.last_seen, c.last_seen - Duration::from_micros(700));
        assert_eq!(back.replicated_at, Some(c.created));
        f.rebase(50_000_000);
        clock.epoch += Duration::from_millis(50_000_000);
        assert_eq!(f.get(&k, &clock).unwrap(), back);
    }
}
