//! Client → cluster, in named steps (IPv4 and IPv6 alike):
//!
//! ```text
//!  segment ─▶ lookup (existing record) ─found─────────┐
//!                 └─none─▶ select (new flow: admit.rs) ┴─▶ Target ─▶ deliver: next hop MAC,
//!                                                                   translate (NAT), MACs
//! ```
//!
//! [`Segment`] is the prologue both kinds of ports share (connection records here, affinity
//! records alone in by_affinity.rs): what the TCP flags say about the packet.

use super::conn::NatMapping;
use super::engine::{Engine, Verdict};
use super::plan::{Plan, PortPlan};
use super::replicate::{Change, replicates_affinity, replicates_connections, replication_needed};
use super::stats::{DropReason, ServerCounters};
use crate::flow::{FlowKey, IPPROTO_TCP};
use crate::replication::{ConnectionRecord, Record};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tandem_wire as wire;

/// What a client's packet says about its connection (the shared prologue of both port
/// kinds).
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    /// TCP (else UDP).
    pub tcp: bool,
    /// A connection-opening SYN (without ACK).
    pub syn: bool,
    /// A FIN or RST.
    pub ending: bool,
    /// The ACK flag.
    pub acks: bool,
    /// The acknowledgment number (0 without the ACK flag).
    pub ack: u32,
}

impl Segment {
    pub(super) fn of(frame: &[u8], pkt: &wire::Packet) -> Segment {
        let tcp = pkt.proto == IPPROTO_TCP;
        Segment {
            tcp,
            syn: tcp && pkt.is_syn(),
            ending: tcp && (pkt.is_fin() || pkt.is_rst()),
            acks: tcp && pkt.is_ack(),
            ack: if tcp { tcp_ack(frame, pkt) } else { 0 },
        }
    }
}

/// Where a client's packet goes: the server, the NAT translation if any, the counters.
pub(super) struct Target {
    pub server: IpAddr,
    pub nat: Option<NatMapping>,
    pub counters: Arc<ServerCounters>,
}

impl Engine {
    /// Client → cluster.
    pub(super) fn to_server(
        &self,
        plan: &Plan,
        port: &PortPlan,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let seg = Segment::of(frame, pkt);
        if !port.uses_connection_records() {
            return self.by_affinity(plan, port, &seg, frame, pkt, now, out);
        }
        let key = FlowKey {
            proto: pkt.proto,
            src_ip: pkt.src_ip,
            src_port: pkt.src_port,
            dst_ip: pkt.dst_ip,
            dst_port: pkt.dst_port,
        };
        let target = match self.lookup(port, &key, &seg, now) {
            Some(t) => t,
            None => match self.select(port, &key, pkt, &seg, now) {
                Ok(t) => t,
                Err(reason) => return Verdict::Drop(reason),
            },
        };
        self.deliver(plan, port, &target, frame, pkt, now, out)
    }

    /// A new flow's target: a server by the port's algorithm, a NAT port, the record
    /// (admit.rs). Refused flows leave nothing taken.
    fn select(
        &self,
        port: &PortPlan,
        key: &FlowKey,
        pkt: &wire::Packet,
        seg: &Segment,
        now: Instant,
    ) -> Result<Target, DropReason> {
        let (server, nat, counters) =
            self.new_flow(port, key, pkt, seg.syn, seg.ending, seg.ack, now)?;
        Ok(Target {
            server,
            nat,
            counters,
        })
    }

    /// The record of an existing flow, brought up to date by this segment (last seen, the
    /// client's ACK, closing, established) and replicated when that is due. `None` when there
    /// is none, or when a SYN arrives on a closing record (a new connection).
    fn lookup(
        &self,
        port: &PortPlan,
        key: &FlowKey,
        seg: &Segment,
        now: Instant,
    ) -> Option<Target> {
        let replicating = self.replication.wanted();
        let rep_conn = replicating && replicates_connections(port.config.repstrategy);
        let rep_aff =
            replicating && replicates_affinity(port.config.repstrategy) && port.uses_affinity();
        let (target, record) = self.conns.with(key, |c| match c {
            Some(c) if !(seg.syn && c.closing_since.is_some()) => {
                c.last_seen = now;
                c.staletimeout = port.staletimeout();
                if seg.ack != 0 {
                    c.client_ack = seg.ack;
                }
                let mut change = Change::Packet;
                if seg.ending && c.closing_since.is_none() {
                    c.closing_since = Some(now);
                    c.counters.active.fetch_sub(1, Relaxed);
                    change = Change::Ending;
                } else if c.is_halfopen() && seg.acks && !seg.syn {
                    // The client's first ACK after the segment that made the record: for a
                    // SYN, the handshake is complete.
                    c.established = true;
                    change = Change::Established;
                }
                let record = ((rep_conn || rep_aff)
                    && replication_needed(c, change, now, port.replication_half_life()))
                .then(|| {
                    c.replicated_at = Some(now);
                    ConnectionRecord::from_conn(c, now)
                });
                let target = Target {
                    server: c.server,
                    nat: c.nat,
                    counters: c.counters.clone(),
                };
                Some((target, record.flatten()))
            }
            _ => None,
        })?;
        if let Some(r) = record {
            if rep_conn {
                self.replication.push(Record::Connection(r));
            }
            if rep_aff {
                self.replicate_affinity(port, key.src_ip, now);
            }
        }
        Some(target)
    }

    /// Sends a client's frame on to `target` of `port`: its next hop's MAC address (asked
    /// for when unknown), the NAT translation if any, the MAC rewrite, the server's counters.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &self,
        plan: &Plan,
        port: &PortPlan,
        target: &Target,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let Some(server) = port.server(target.server) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        let Some(mac) = self.next_hop_mac(plan, server.next_hop, now, out) else {
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        if let Some(n) = target.nat
            && !translate(frame, pkt, target.server, &n)
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        if !rewrite_macs(frame, plan.our_mac, mac) {
            return Verdict::Drop(DropReason::Truncated);
        }
        target.counters.count(frame.len());
        Verdict::Transmit(frame.len())
    }

    /// The MAC address of `next_hop`; when unknown, asks for it (ARP request or neighbour
    /// solicitation, rate-limited) into `out`.
    fn next_hop_mac(
        &self,
        plan: &Plan,
        next_hop: IpAddr,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<[u8; 6]> {
        let mac = self.neighbors.get(next_hop);
        if mac.is_none()
            && let Some(q) = self.solicit(plan, next_hop, now)
        {
            self.count_sent(&q);
            out.push(q.bytes);
        }
        mac
    }
}

/// NAT, client → server: the destination becomes the server's address and port, the source
/// the returnaddress and the record's NAT port. `false` when the frame cannot take it (a
/// family mismatch, which the configuration refuses, or a frame shorter than its packet).
pub(super) fn translate(
    frame: &mut [u8],
    pkt: &wire::Packet,
    server: IpAddr,
    n: &NatMapping,
) -> bool {
    wire::rewrite_dst(frame, pkt, server, n.server_port).is_ok()
        && wire::rewrite_src(frame, pkt, n.returnaddress, n.nat_port).is_ok()
}

/// The MAC rewrite of a forwarded frame: from us, to `dst`.
pub(super) fn rewrite_macs(frame: &mut [u8], ours: [u8; 6], dst: [u8; 6]) -> bool {
    wire::set_src_mac(frame, ours).is_ok() && wire::set_dst_mac(frame, dst).is_ok()
}

/// The ACK number of a TCP segment (0 when the ACK flag is off).
pub(super) fn tcp_ack(frame: &[u8], pkt: &wire::Packet) -> u32 {
    if pkt.tcp_flags & 0x10 == 0 {
        return 0;
    }
    frame
        .get(pkt.l4 + 8..pkt.l4 + 12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}
