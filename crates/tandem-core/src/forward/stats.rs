//! Counters of the data plane: per server, per drop reason, per node.
//!
//! Per worker, summed on read: every counter has one cache-line-padded slot per forwarding
//! worker ([`MAX_WORKERS`] of them, made with the counters), and worker `i` of
//! [`Engine::handle_on`](super::Engine::handle_on) writes slot `i % MAX_WORKERS` only, so no
//! line is written per packet by two workers. The slots are Relaxed atomics: the control
//! plane (housekeeping, configuration, replication installs) adds to slot 0 now and then,
//! which is not per packet. Readers (`load`, [`ServerCounters::read`]) sum the slots; a gauge
//! such as `active` may be negative in one slot and positive in another, and is clamped at 0
//! only after summing. The number of workers needs no set-up: any index works, and indices
//! beyond [`MAX_WORKERS`] share slots (still exact, only no longer unshared).

use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, Ordering::Relaxed};

/// Forwarding workers with counter slots of their own.
pub const MAX_WORKERS: usize = 32;

/// One value on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line<T>(T);

/// A counter with one slot per worker, summed on read.
#[derive(Debug)]
pub struct PerWorker {
    slots: Box<[Line<AtomicU64>]>,
}

impl Default for PerWorker {
    fn default() -> Self {
        PerWorker {
            slots: (0..MAX_WORKERS).map(|_| Line::default()).collect(),
        }
    }
}

impl PerWorker {
    /// Adds `n` in `worker`'s slot.
    pub fn add(&self, worker: usize, n: u64) {
        self.slots[worker % MAX_WORKERS].0.fetch_add(n, Relaxed);
    }
    /// The sum of every worker's slot (`load` like an atomic, so readers stay as they were).
    pub fn load(&self, _order: Ordering) -> u64 {
        self.slots
            .iter()
            .fold(0u64, |s, l| s.wrapping_add(l.0.load(Relaxed)))
    }
}

/// Why a frame was dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Shorter than its headers claim.
    Truncated,
    /// IP version field is not 4 (6 in an IPv6 frame).
    BadIpVersion,
    /// IPv4 header length below 5 words or beyond the frame.
    BadIhl,
    /// IPv4 total length inconsistent with the header or the frame.
    BadTotalLength,
    /// An IP fragment that cannot be forwarded on its ports (a first fragment too short for
    /// its TCP/UDP header, a TCP fragment at offset 8).
    Fragment,
    /// TCP data offset out of range.
    BadTcpHeader,
    /// UDP length field out of range.
    BadUdpLength,
    /// An ARP frame that is not Ethernet/IPv4 or is short.
    BadArp,
    /// Larger than the interface MTU allows (`Plan::mtu_frame`; a coalesced super-frame, or
    /// a frame that did not fit the ring slot): never sent on.
    Oversize,
    /// 802.1Q-tagged with a VLAN id (not 0) on the interface Tandem forwards on: counted per
    /// VLAN id too (Tandem forwards a VLAN when it runs on its sub-interface, eth0.100).
    Vlan,
    /// To a cluster address on a port that is not configured.
    NoPort,
    /// To a cluster address with a protocol other than TCP or UDP.
    UnsupportedProtocol,
    /// A TCP segment other than SYN with no connection record (port not `hash`).
    NoConnection,
    /// No server of the port accepts new connections.
    NoServer,
    /// The returnaddress has no free NAT port.
    NatPortsExhausted,
    /// The server's (or router's) MAC address is not known yet.
    NeighborUnresolved,
    /// A new flow, and the connection table is at `maxconnections` with no half-open record
    /// to make room: established flows keep working, new ones wait.
    ConnectionTableFull,
    /// A handshake from a client that already holds `HALFOPEN_NAT_PER_CLIENT` half-open NAT
    /// records (so that one source cannot exhaust a NAT pool).
    HalfOpenLimit,
    /// An IPv6 extension header running past the packet, or too long a chain of them.
    BadExtensionHeader,
    /// A neighbour solicitation or advertisement a host would discard (RFC 4861 §7.1).
    BadNdp,
    /// A later fragment of a datagram whose first fragment Tandem did not see forwarded (or
    /// saw more than the fragment timeout ago).
    FragmentUnknown,
    /// An ICMP error to a cluster or return address quoting a flow Tandem has no record of.
    IcmpNoConnection,
}

impl DropReason {
    pub const ALL: [DropReason; 22] = [
        DropReason::Truncated,
        DropReason::BadIpVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLength,
        DropReason::Fragment,
        DropReason::BadTcpHeader,
        DropReason::BadUdpLength,
        DropReason::BadArp,
        DropReason::Oversize,
        DropReason::Vlan,
        DropReason::NoPort,
        DropReason::UnsupportedProtocol,
        DropReason::NoConnection,
        DropReason::NoServer,
        DropReason::NatPortsExhausted,
        DropReason::NeighborUnresolved,
        DropReason::ConnectionTableFull,
        DropReason::HalfOpenLimit,
        DropReason::BadExtensionHeader,
        DropReason::BadNdp,
        DropReason::FragmentUnknown,
        DropReason::IcmpNoConnection,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Operator-facing name (as in reports).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadIpVersion => "bad-ip-version",
            DropReason::BadIhl => "bad-ihl",
            DropReason::BadTotalLength => "bad-total-length",
            DropReason::Fragment => "fragment",
            DropReason::BadTcpHeader => "bad-tcp-header",
            DropReason::BadUdpLength => "bad-udp-length",
            DropReason::BadArp => "bad-arp",
            DropReason::Oversize => "oversize",
            DropReason::Vlan => "vlan",
            DropReason::NoPort => "no-port",
            DropReason::UnsupportedProtocol => "unsupported-protocol",
            DropReason::NoConnection => "no-connection",
            DropReason::NoServer => "no-server",
            DropReason::NatPortsExhausted => "nat-ports-exhausted",
            DropReason::NeighborUnresolved => "neighbor-unresolved",
            DropReason::ConnectionTableFull => "connection-table-full",
            DropReason::HalfOpenLimit => "client-half-open-limit",
            DropReason::BadExtensionHeader => "bad-extension-header",
            DropReason::BadNdp => "bad-ndp",
            DropReason::FragmentUnknown => "fragment-unknown",
            DropReason::IcmpNoConnection => "icmp-no-connection",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// One worker's slot of a server's counters (one cache line).
#[derive(Debug, Default)]
struct ServerSlot {
    packets: AtomicU64,
    bytes: AtomicU64,
    active: AtomicI64,
    total: AtomicU64,
    records: AtomicI64,
}

/// Traffic counters of one server on one port, one slot per worker (see the module
/// documentation). Outlives configuration snapshots: a server keeps its counters while it
/// stays configured.
///
/// * packets, bytes: frames forwarded towards the server (and, with NAT, back from it);
/// * active: open connection records; total: connections ever assigned;
/// * records: connection records of the server in the table (closing and half-open ones
///   included), kept as records go in and out: not touched per packet.
#[derive(Debug)]
pub struct ServerCounters {
    slots: Box<[Line<ServerSlot>]>,
}

impl Default for ServerCounters {
    fn default() -> Self {
        ServerCounters {
            slots: (0..MAX_WORKERS).map(|_| Line::default()).collect(),
        }
    }
}

impl ServerCounters {
    fn slot(&self, worker: usize) -> &ServerSlot {
        &self.slots[worker % MAX_WORKERS].0
    }
    /// A frame of `bytes` forwarded by `worker`.
    pub fn count(&self, worker: usize, bytes: usize) {
        let s = self.slot(worker);
        s.packets.fetch_add(1, Relaxed);
        s.bytes.fetch_add(bytes as u64, Relaxed);
    }
    /// One open connection more (`delta` 1) or less (-1).
    pub fn add_active(&self, worker: usize, delta: i64) {
        self.slot(worker).active.fetch_add(delta, Relaxed);
    }
    /// One connection more assigned.
    pub fn add_total(&self, worker: usize) {
        self.slot(worker).total.fetch_add(1, Relaxed);
    }
    /// One record of the server more (1) or less (-1) in the table.
    pub fn add_records(&self, worker: usize, delta: i64) {
        self.slot(worker).records.fetch_add(delta, Relaxed);
    }
    fn sum_i(&self, f: impl Fn(&ServerSlot) -> &AtomicI64) -> u64 {
        let n: i64 = self.slots.iter().map(|l| f(&l.0).load(Relaxed)).sum();
        n.max(0) as u64
    }
    fn sum_u(&self, f: impl Fn(&ServerSlot) -> &AtomicU64) -> u64 {
        self.slots.iter().map(|l| f(&l.0).load(Relaxed)).sum()
    }
    /// The active gauge summed without clamping at 0: below 0 means a connection was released
    /// twice (the fuzz targets check it).
    pub fn active_signed(&self) -> i64 {
        self.slots.iter().map(|l| l.0.active.load(Relaxed)).sum()
    }
    /// Connection records of the server now.
    pub fn records(&self) -> u64 {
        self.sum_i(|s| &s.records)
    }
    pub fn read(&self) -> ServerCountersView {
        ServerCountersView {
            packets: self.sum_u(|s| &s.packets),
            bytes: self.sum_u(|s| &s.bytes),
            active: self.sum_i(|s| &s.active),
            total: self.sum_u(|s| &s.total),
        }
    }
}

/// A point-in-time copy of [`ServerCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServerCountersView {
    pub packets: u64,
    pub bytes: u64,
    pub active: u64,
    pub total: u64,
}

impl std::ops::AddAssign for ServerCountersView {
    fn add_assign(&mut self, o: Self) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.active += o.active;
        self.total += o.total;
    }
}

/// Node-wide counters, per worker (see the module documentation).
#[derive(Debug, Default)]
pub struct NodeCounters {
    drops: [PerWorker; DropReason::COUNT],
    /// Frames the rings handed us.
    pub received: PerWorker,
    /// Frames forwarded to servers or back to clients.
    pub forwarded: PerWorker,
    pub forwarded_bytes: PerWorker,
    /// ARP replies, requests and gratuitous ARPs sent.
    pub arp_sent: PerWorker,
    /// Neighbour advertisements (solicited and unsolicited) and solicitations sent.
    pub ndp_sent: PerWorker,
    /// TCP resets sent for `reset yes` ports.
    pub resets_sent: PerWorker,
    /// Frames not for Tandem (left to the node's kernel).
    pub passed: PerWorker,
}

impl NodeCounters {
    /// A drop counted by `worker`.
    pub fn drop_on(&self, worker: usize, reason: DropReason) {
        self.drops[reason.index()].add(worker, 1);
    }
    /// A drop counted outside the workers (slot 0).
    pub fn drop(&self, reason: DropReason) {
        self.drop_on(0, reason);
    }
    pub fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped(*r)))
            .collect()
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Relaxed)
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_lines_of_their_own_and_sum_on_read() {
        assert_eq!(std::mem::size_of::<Line<ServerSlot>>(), 64);
        assert_eq!(std::mem::align_of::<Line<AtomicU64>>(), 64);
        let c = ServerCounters::default();
        c.count(0, 100);
        c.count(1, 50);
        c.count(MAX_WORKERS + 1, 1);
        c.add_active(0, 1);
        c.add_active(3, -1);
        c.add_active(2, 1);
        c.add_total(5);
        let v = c.read();
        assert_eq!((v.packets, v.bytes, v.active, v.total), (3, 151, 1, 1));
        let n = NodeCounters::default();
        n.drop_on(4, DropReason::NoPort);
        n.drop(DropReason::NoPort);
        n.received.add(7, 2);
        assert_eq!(n.dropped(DropReason::NoPort), 2);
        assert_eq!(n.total_drops(), 2);
        assert_eq!(n.received.load(Relaxed), 2);
    }
}
