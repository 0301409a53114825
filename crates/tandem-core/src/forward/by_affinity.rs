//! `selectionalgorithm affinity`: packets follow the client's affinity record alone.
//!
//! The port keeps no connection records (the maintenance document: "If the server selection
//! algorithm is defined as affinity, no connection records are created"). Each packet to the
//! port looks up the client's affinity record ([`AffinityTable::follow`]) and goes to its
//! server; the record lives stickytime after the client's last packet. A TCP SYN or a UDP
//! datagram from a client without a live record gets a server by weight and a new record.
//! What connection records did for TCP is done this way:
//!
//! * a server taken out (down, removed, weight 0) breaks its clients' affinity: their next
//!   SYN or datagram is placed afresh, other segments are dropped (`no-connection`) and, on a
//!   `reset yes` port, answered with a TCP reset built from the segment itself;
//! * a record made by a SYN alone lives only `syntimeout` until the client sends more, and is
//!   never replicated, so a SYN flood leaves nothing behind; a full table (`maxconnections`)
//!   refuses new clients (`connection-table-full`) while known ones go on;
//! * there is no FIN timeout (no record of the connection to end): the record outlives the
//!   client's last connection by the stickytime;
//! * NAT needs connection records for its translation: the configuration refuses `affinity`
//!   with `method nat`.
//!
//! Replication (`repstrategy affinity` or `both`) sends the record when the client is
//! confirmed (its first segment after the SYN; a UDP record at once) and again when a packet
//! arrives and the partner's copy is older than half the stickytime.
//!
//! [`AffinityTable::follow`]: crate::select::AffinityTable::follow

use super::control;
use super::engine::Engine;
use super::plan::{Plan, PortPlan};
use super::replicate::replicates_affinity;
use super::stats::DropReason;
use super::to_server::{Segment, Target};
use crate::replication::{AffinityRecord, Record};
use crate::select::{AffinityKey, Follow, Followed};
use std::net::IpAddr;
use std::time::Instant;
use tandem_wire as wire;

use super::engine::Verdict;

impl Engine {
    /// Client → cluster on a port without connection records (see the module documentation).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn by_affinity(
        &self,
        worker: usize,
        plan: &Plan,
        port: &PortPlan,
        seg: &Segment,
        frame: &mut [u8],
        pkt: &wire::Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let (tcp, syn) = (seg.tcp, seg.syn);
        let key = AffinityKey {
            cluster: port.cluster,
            port: port.config.number,
            client: pkt.src_ip,
        };
        let keeps = |s: IpAddr| port.server(s).is_some_and(|s| s.keeps_affinity);
        let pick = || port.picker.pick();
        let follow = Follow {
            stickytime: port.stickytime(),
            new_connection: !tcp || syn,
            confirms: !syn,
            replicate: self.replication.wanted() && replicates_affinity(port.config.repstrategy),
            keeps: &keeps,
            pick: &pick,
        };
        let (server_addr, made, record) = match self.affinity.follow(&key, now, &follow) {
            Followed::Kept { server, replicate } => (server, false, replicate),
            Followed::Made {
                record, replicate, ..
            } => (record.server, true, replicate.then_some(record)),
            Followed::Nothing { broke } => {
                if broke.is_some() && port.config.reset && tcp {
                    self.reset_segment(worker, plan, seg, pkt, out);
                }
                return Verdict::Drop(DropReason::NoConnection);
            }
            Followed::NoServer => return Verdict::Drop(DropReason::NoServer),
            Followed::Full => return Verdict::Drop(DropReason::ConnectionTableFull),
        };
        if let Some(r) = record {
            let r = AffinityRecord::from_table(&key, &r, port.stickytime(), now);
            self.replication.push(worker, now, Record::Affinity(r));
        }
        let Some(server) = port.server(server_addr) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        // A new connection: a SYN, or a UDP client's first datagram.
        if syn || made {
            server.counters.add_total(worker);
        }
        let target = Target {
            server: server_addr,
            nat: None,
        };
        self.deliver(worker, plan, port, &target, frame, pkt, now, out)
    }

    /// A TCP reset to the client of `pkt` (a segment with the ACK flag: the reset carries its
    /// acknowledgement number as sequence number, RFC 9293 §3.10.7.1), from the cluster port.
    fn reset_segment(
        &self,
        worker: usize,
        plan: &Plan,
        seg: &Segment,
        pkt: &wire::Packet,
        out: &mut Vec<Vec<u8>>,
    ) {
        if !seg.acks || pkt.is_rst() {
            return;
        }
        if let Some(r) = control::reset(plan.our_mac, pkt.src_mac, pkt.dst(), pkt.src(), seg.ack) {
            self.count_sent(worker, &r);
            out.push(r.bytes);
        }
    }
}
