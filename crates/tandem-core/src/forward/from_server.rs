//! Server → returnaddress: a NAT reply translated back to the client.

use super::engine::{Engine, Verdict};
use super::plan::Plan;
use super::replicate::{Change, replicates_connections, replication_needed};
use super::stats::DropReason;
use super::to_server::rewrite_macs;
use crate::flow::IPPROTO_TCP;
use crate::replication::{ConnectionRecord, Record};
use std::time::Instant;
use tandem_wire as wire;

impl Engine {
    /// Server → returnaddress (NAT replies).
    pub(super) fn reply_from_server(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
    ) -> Verdict {
        let Some(key) = self.conns.lookup_nat(pkt.dst_ip, pkt.proto, pkt.dst_port) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let ending = pkt.proto == IPPROTO_TCP && (pkt.is_fin() || pkt.is_rst());
        let port = plan.port(key.dst_ip, key.dst_port, key.proto);
        let rep_conn = self.replication.wanted()
            && port.is_some_and(|p| replicates_connections(p.config.repstrategy));
        let half_life = port.map(|p| p.replication_half_life()).unwrap_or_default();
        let found = self.conns.with(&key, |c| {
            let c = c?;
            // The port's holder must be the connection's server.
            let n = c.nat?;
            if c.server != pkt.src_ip || n.server_port != pkt.src_port {
                return None;
            }
            c.last_seen = now;
            let mut record = None;
            if ending && c.closing_since.is_none() {
                c.closing_since = Some(now);
                if let Some(s) = port.and_then(|p| p.server(c.server)) {
                    s.counters.add_active(worker, -1);
                }
                // The seed's rule: a FIN or RST ends the connection for the partner too,
                // whichever side sent it.
                if rep_conn && replication_needed(c, Change::Ending, now, half_life) {
                    c.replicated_at = Some(now);
                    record = ConnectionRecord::from_conn(c, now);
                }
            }
            Some((c.client_mac, c.server, record))
        });
        let Some((client_mac, server, record)) = found else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        if let Some(r) = record {
            self.replication.push(worker, now, Record::Connection(r));
        }
        // Back to the client, from the cluster address and port (IPv4 or IPv6: the record's
        // addresses are of the packet's family, the configuration keeps them so).
        if wire::rewrite_src(frame, pkt, key.dst_ip, key.dst_port).is_err()
            || wire::rewrite_dst(frame, pkt, key.src_ip, key.src_port).is_err()
            || !rewrite_macs(frame, plan.our_mac, client_mac)
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        if let Some(s) = port.and_then(|p| p.server(server)) {
            s.counters.count(worker, frame.len());
        }
        Verdict::Transmit(frame.len())
    }
}
