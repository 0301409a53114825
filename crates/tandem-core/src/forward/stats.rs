//! Counters of the data plane: per server, per drop reason, per node. Atomics, summed on read.

use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

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
    /// An IP fragment (Tandem forwards only whole datagrams).
    Fragment,
    /// TCP data offset out of range.
    BadTcpHeader,
    /// UDP length field out of range.
    BadUdpLength,
    /// An ARP frame that is not Ethernet/IPv4 or is short.
    BadArp,
    /// Larger than the interface MTU (a coalesced super-frame): never sent on.
    Oversize,
    /// VLAN-tagged (not supported yet).
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
}

impl DropReason {
    pub const ALL: [DropReason; 20] = [
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
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Traffic counters of one server on one port. Outlives configuration snapshots: a server
/// keeps its counters while it stays configured.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Frames forwarded towards the server (and, with NAT, back from it).
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Open connection records.
    pub active: AtomicI64,
    /// Connections ever assigned.
    pub total: AtomicU64,
    /// Connection records of the server in the table (closing and half-open ones included),
    /// kept by the table as records go in and out: not touched per packet.
    pub records: AtomicI64,
}

impl ServerCounters {
    pub fn count(&self, bytes: usize) {
        self.packets.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
    /// Connection records of the server now.
    pub fn records(&self) -> u64 {
        self.records.load(Relaxed).max(0) as u64
    }
    pub fn read(&self) -> ServerCountersView {
        ServerCountersView {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            active: self.active.load(Relaxed).max(0) as u64,
            total: self.total.load(Relaxed),
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

/// Node-wide counters.
#[derive(Debug, Default)]
pub struct NodeCounters {
    drops: [AtomicU64; DropReason::COUNT],
    /// Frames the rings handed us.
    pub received: AtomicU64,
    /// Frames forwarded to servers or back to clients.
    pub forwarded: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    /// ARP replies, requests and gratuitous ARPs sent.
    pub arp_sent: AtomicU64,
    /// Neighbour advertisements (solicited and unsolicited) and solicitations sent.
    pub ndp_sent: AtomicU64,
    /// TCP resets sent for `reset yes` ports.
    pub resets_sent: AtomicU64,
    /// Frames not for Tandem (left to the node's kernel).
    pub passed: AtomicU64,
}

impl NodeCounters {
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason.index()].fetch_add(1, Relaxed);
    }
    pub fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[r.index()].load(Relaxed)))
            .collect()
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Relaxed)
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Relaxed)).sum()
    }
}
