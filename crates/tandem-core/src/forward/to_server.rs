//! Client → cluster: the record lookup, a new flow's server, the NAT rewrite and the MAC
//! rewrite of a frame for a cluster port.

use super::engine::{Engine, Verdict, v4};
use super::plan::{Plan, PortPlan};
use super::replicate::{Change, replicates_affinity, replicates_connections, replication_needed};
use super::stats::DropReason;
use crate::flow::{FlowKey, IPPROTO_TCP};
use crate::replication::{ConnectionRecord, Record};
use std::net::IpAddr;
use std::time::Instant;
use tandem_wire as wire;

impl Engine {
    /// Client → cluster.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn to_server(
        &self,
        worker: usize,
        plan: &Plan,
        port: &PortPlan,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        if !port.uses_connection_records() {
            return self.by_affinity(worker, plan, port, frame, pkt, now, out);
        }
        let key = FlowKey {
            proto: pkt.proto,
            src_ip: pkt.src_ip,
            src_port: pkt.src_port,
            dst_ip: pkt.dst_ip,
            dst_port: pkt.dst_port,
        };
        let tcp = pkt.proto == IPPROTO_TCP;
        let replicating = self.replication.wanted();
        let rep_conn = replicating && replicates_connections(port.config.repstrategy);
        let rep_aff =
            replicating && replicates_affinity(port.config.repstrategy) && port.uses_affinity();
        let syn = tcp && pkt.is_syn();
        let ending = tcp && (pkt.is_fin() || pkt.is_rst());
        let acks = tcp && pkt.tcp_flags & 0x10 != 0;
        let ack = if tcp { tcp_ack(frame, pkt) } else { 0 };
        // Existing record?
        let existing = self.conns.with(&key, |c| match c {
            // A new SYN on a closing record starts a new connection.
            Some(c) if !(syn && c.closing_since.is_some()) => {
                c.last_seen = now;
                c.staletimeout = port.staletimeout();
                if ack != 0 {
                    c.client_ack = ack;
                }
                let mut change = Change::Packet;
                if ending && c.closing_since.is_none() {
                    c.closing_since = Some(now);
                    if let Some(s) = port.server(c.server) {
                        s.counters.add_active(worker, -1);
                    }
                    change = Change::Ending;
                } else if c.is_halfopen() && acks && !syn {
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
                Some((c.server, c.nat, record.flatten()))
            }
            _ => None,
        });
        let (server_addr, nat) = match existing {
            Some((server, nat, record)) => {
                if let Some(r) = record {
                    if rep_conn {
                        self.replication.push(worker, now, Record::Connection(r));
                    }
                    if rep_aff {
                        self.replicate_affinity(worker, port, pkt.src_ip, now);
                    }
                }
                (server, nat)
            }
            None => match self.new_flow(worker, port, &key, pkt, syn, ending, ack, now) {
                Ok(v) => v,
                Err(reason) => return Verdict::Drop(reason),
            },
        };
        self.deliver(worker, plan, port, server_addr, nat, frame, pkt, now, out)
    }

    /// Sends a client's frame on to `server_addr` of `port`: its next hop's MAC address (asked
    /// for when unknown), the NAT translation if any, the server's counters.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &self,
        worker: usize,
        plan: &Plan,
        port: &PortPlan,
        server_addr: IpAddr,
        nat: Option<super::conn::NatMapping>,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let Some(server) = port.server(server_addr) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        let Some(next_hop) = v4(server.next_hop) else {
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        let Some(mac) = self.neighbors.get(next_hop) else {
            if let Some(nfa) = plan.nfa
                && self.neighbors.should_ask(next_hop, now)
            {
                out.push(wire::arp_request(plan.our_mac, nfa, next_hop).to_vec());
            }
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        if let Some(n) = nat {
            let (Some(srv), Some(ret)) = (v4(server_addr), v4(n.returnaddress)) else {
                return Verdict::Drop(DropReason::NoServer);
            };
            if wire::rewrite_dst(frame, pkt, srv, n.server_port).is_err()
                || wire::rewrite_src(frame, pkt, ret, n.nat_port).is_err()
            {
                return Verdict::Drop(DropReason::Truncated);
            }
        }
        if wire::set_src_mac(frame, plan.our_mac).is_err() || wire::set_dst_mac(frame, mac).is_err()
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        server.counters.count(worker, frame.len());
        Verdict::Transmit(frame.len())
    }
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
