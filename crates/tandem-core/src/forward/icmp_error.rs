//! ICMP errors about a balanced flow: "fragmentation needed" (path-MTU discovery), "port
//! unreachable", "time exceeded".
//!
//! ```text
//!  router ──ICMP to cluster, quoting cluster:port → client:cport──▶ Tandem
//!     MAC: record (client:cport → cluster:port) ─▶ its server, MAC rewrite only
//!     NAT: outer returnaddress → server, quote server:sport → returnaddress:natport
//!  server ──ICMP to returnaddress, quoting returnaddress:natport → server:sport──▶ Tandem (NAT)
//!          record by (returnaddress, natport) ─▶ the client: outer cluster → client,
//!          quote client:cport → cluster:port
//! ```
//!
//! In NAT the server sees the error come from the return address, the only peer it knows for
//! the flow (its route back to it is the one its replies take). Every checksum is updated
//! incrementally ([`tandem_wire::icmp::translate`]). An error quoting a flow Tandem has no
//! record of (nor, on an `affinity` port, an affinity record) is dropped as
//! `icmp-no-connection`. ICMP errors do not refresh or end records.

use super::engine::{Engine, RxMeta, Verdict, v4};
use super::plan::Plan;
use super::stats::DropReason;
use crate::flow::FlowKey;
use crate::select::AffinityKey;
use std::net::SocketAddrV4;
use std::time::Instant;
use tandem_wire as wire;
use tandem_wire::icmp::Translation;

impl Engine {
    /// An ICMP error to an address Tandem owns.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp_error(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        e: &wire::IcmpError,
        meta: RxMeta,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        if let Some(v) = self.admit_owned(plan, frame, (e.dst_mac, e.dst_ip, e.l3), meta) {
            return v;
        }
        if plan.return_addresses.contains(&e.dst_ip) {
            return self.icmp_to_client(worker, plan, frame, e);
        }
        self.icmp_to_server(worker, plan, frame, e, now, out)
    }

    /// From the client's side, about what the cluster address sent to a client.
    fn icmp_to_server(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        e: &wire::IcmpError,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let q = &e.quoted;
        let Some(port) = plan.port(q.src_ip, q.src_port, q.proto) else {
            return Verdict::Drop(DropReason::IcmpNoConnection);
        };
        let key = FlowKey {
            proto: q.proto,
            src_ip: q.dst_ip,
            src_port: q.dst_port,
            dst_ip: q.src_ip,
            dst_port: q.src_port,
        };
        let found = self.conns.with(&key, |c| c.map(|c| (c.server, c.nat)));
        let (server_addr, nat) = match found {
            Some(f) => f,
            None if !port.uses_connection_records() => {
                let akey = AffinityKey {
                    cluster: q.src_ip,
                    port: q.src_port,
                    client: q.dst_ip,
                };
                match self.affinity.snapshot_one(&akey) {
                    Some((_, r)) => (r.server, None),
                    None => return Verdict::Drop(DropReason::IcmpNoConnection),
                }
            }
            None => return Verdict::Drop(DropReason::IcmpNoConnection),
        };
        let Some(server) = port.server(server_addr) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        let Some(mac) = self.next_hop_mac(worker, plan, server.next_hop, now, out) else {
            return Verdict::Drop(DropReason::NeighborUnresolved);
        };
        if let Some(n) = nat {
            let (Some(srv), Some(ret)) = (v4(server_addr), v4(n.returnaddress)) else {
                return Verdict::Drop(DropReason::NoServer);
            };
            let t = Translation {
                outer_src: Some(ret),
                outer_dst: Some(srv),
                quoted_src: Some(SocketAddrV4::new(srv, n.server_port)),
                quoted_dst: Some(SocketAddrV4::new(ret, n.nat_port)),
            };
            if wire::icmp::translate(frame, e, &t).is_err() {
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

    /// From a NAT server (or a router on its side) to a return address: back to the client.
    fn icmp_to_client(
        &self,
        worker: usize,
        plan: &Plan,
        frame: &mut [u8],
        e: &wire::IcmpError,
    ) -> Verdict {
        let q = &e.quoted;
        let Some(key) = self.conns.lookup_nat(q.src_ip, q.proto, q.src_port) else {
            return Verdict::Drop(DropReason::IcmpNoConnection);
        };
        let found = self.conns.with(&key, |c| {
            let c = c?;
            let n = c.nat?;
            (c.server == q.dst_ip && n.server_port == q.dst_port)
                .then_some((c.client_mac, c.server))
        });
        let Some((client_mac, server)) = found else {
            return Verdict::Drop(DropReason::IcmpNoConnection);
        };
        let (Some(cluster), Some(client)) = (v4(key.dst_ip), v4(key.src_ip)) else {
            return Verdict::Drop(DropReason::IcmpNoConnection);
        };
        let t = Translation {
            outer_src: Some(cluster),
            outer_dst: Some(client),
            quoted_src: Some(SocketAddrV4::new(client, key.src_port)),
            quoted_dst: Some(SocketAddrV4::new(cluster, key.dst_port)),
        };
        if wire::icmp::translate(frame, e, &t).is_err()
            || wire::set_src_mac(frame, plan.our_mac).is_err()
            || wire::set_dst_mac(frame, client_mac).is_err()
        {
            return Verdict::Drop(DropReason::Truncated);
        }
        if let Some(s) = plan
            .port(key.dst_ip, key.dst_port, key.proto)
            .and_then(|p| p.server(server))
        {
            s.counters.count(worker, frame.len());
        }
        Verdict::Transmit(frame.len())
    }
}
