//! New flows: room in the bounded table, a server, a NAT port, the record.
//!
//! When the table is full, the oldest half-open record makes room (its slot passes to the new
//! flow); when there is none the flow is refused (`connection-table-full`). A client holding
//! [`HALFOPEN_NAT_PER_CLIENT`] half-open NAT records is refused more (`client-half-open-limit`),
//! and an exhausted NAT pool gets a port back from its oldest half-open record. Nothing is left
//! taken when a flow is refused.

use super::conn::{Conn, NatMapping};
use super::engine::Engine;
use super::plan::PortPlan;
use super::replicate::{Change, replicates_affinity, replicates_connections, replication_needed};
use super::stats::DropReason;
use super::table::HALFOPEN_NAT_PER_CLIENT;
use crate::config::{Method, Selection};
use crate::flow::{FlowKey, IPPROTO_TCP};
use crate::replication::{self, ConnectionRecord, Record};
use crate::select::AffinityKey;
use std::net::IpAddr;
use std::time::Instant;
use tandem_wire as wire;

impl Engine {
    /// A flow without a record: room in the table (the oldest half-open record makes it when
    /// full), a server, a NAT port, the record. Nothing is left taken when it is refused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_flow(
        &self,
        worker: usize,
        port: &PortPlan,
        key: &FlowKey,
        pkt: &wire::Packet,
        syn: bool,
        ending: bool,
        ack: u32,
        now: Instant,
    ) -> Result<(IpAddr, Option<NatMapping>), DropReason> {
        let tcp = key.proto == IPPROTO_TCP;
        if tcp && !syn && port.config.selection != Selection::Hash && !port.uses_affinity() {
            return Err(DropReason::NoConnection);
        }
        let nat_port = port.config.method == Method::Nat;
        if nat_port && tcp && self.conns.client_halfopen(key.src_ip) >= HALFOPEN_NAT_PER_CLIENT {
            return Err(DropReason::HalfOpenLimit);
        }
        if !self.conns.try_reserve() {
            // The evicted record's slot becomes this flow's.
            match self.conns.evict_halfopen(key) {
                Some(r) => self.release(worker, std::slice::from_ref(&r)),
                None => return Err(DropReason::ConnectionTableFull),
            }
        }
        let placed = self.place(port, key, pkt, syn, now);
        let server_addr = match placed {
            Ok(s) => s,
            Err(r) => {
                self.conns.unreserve();
                return Err(r);
            }
        };
        let Some(server) = port.server(server_addr) else {
            self.conns.unreserve();
            return Err(DropReason::NoServer);
        };
        let nat = match (port.config.method, server.returnaddress) {
            (Method::Nat, Some(ret)) => match self.nat_port(worker, ret, key) {
                Some(p) => Some(NatMapping {
                    returnaddress: ret,
                    nat_port: p,
                    server_port: server.server_port,
                }),
                None => {
                    self.conns.unreserve();
                    return Err(DropReason::NatPortsExhausted);
                }
            },
            (Method::Nat, None) => {
                self.conns.unreserve();
                return Err(DropReason::NoServer);
            }
            (Method::Mac, _) => None,
        };
        let replicating = self.replication.wanted();
        let rep_conn = replicating && replicates_connections(port.config.repstrategy);
        let rep_aff =
            replicating && replicates_affinity(port.config.repstrategy) && port.uses_affinity();
        let affinity_key = AffinityKey {
            cluster: port.cluster,
            port: port.config.number,
            client: key.src_ip,
        };
        let mut made_affinity = false;
        if port.uses_affinity()
            && (syn || !tcp)
            && let Some((rec, made)) = self.affinity.touch(&affinity_key, server_addr, now)
        {
            made_affinity = made;
            // TCP affinity goes to the partner when the handshake completes (with the
            // connection record), so SYNs alone never reach it.
            if rep_aff && !tcp {
                let r = replication::AffinityRecord::from_table(
                    &affinity_key,
                    &rec,
                    port.stickytime(),
                    now,
                );
                self.replication.push(worker, now, Record::Affinity(r));
            }
        }
        server.counters.add_total(worker);
        if !ending {
            server.counters.add_active(worker, 1);
        }
        let mut conn = Conn {
            key: *key,
            server: server_addr,
            nat,
            client_mac: pkt.src_mac,
            created: now,
            last_seen: now,
            closing_since: if ending { Some(now) } else { None },
            staletimeout: port.staletimeout(),
            client_ack: ack,
            replicated_at: None,
            established: !tcp,
            made_affinity,
        };
        if rep_conn && replication_needed(&conn, Change::Created, now, port.replication_half_life())
        {
            conn.replicated_at = Some(now);
            if let Some(r) = ConnectionRecord::from_conn(&conn, now) {
                self.replication.push(worker, now, Record::Connection(r));
            }
        }
        match self.conns.insert(conn) {
            Ok(old) => {
                server.counters.add_records(worker, 1);
                if let Some(old) = old {
                    self.release(worker, std::slice::from_ref(&old));
                }
            }
            Err(_) => {
                // The port is another record's (cannot happen: the pool handed it out as
                // free); it is not released.
                self.conns.unreserve();
                if !ending {
                    server.counters.add_active(worker, -1);
                }
                return Err(DropReason::NatPortsExhausted);
            }
        }
        Ok((server_addr, nat))
    }

    /// The server for a new flow of `port`.
    fn place(
        &self,
        port: &PortPlan,
        key: &FlowKey,
        pkt: &wire::Packet,
        syn: bool,
        now: Instant,
    ) -> Result<IpAddr, DropReason> {
        let tcp = key.proto == IPPROTO_TCP;
        let affinity_key = AffinityKey {
            cluster: port.cluster,
            port: port.config.number,
            client: pkt.src_ip,
        };
        let chosen = if port.config.selection == Selection::Hash {
            port.maglev
                .as_ref()
                .and_then(|m| m.lookup(key.stable_hash()))
        } else if tcp && !syn {
            // Mid-connection segment without a record: only a live affinity record (e.g.
            // replicated from the partner) can place it.
            self.affinity.lookup(&affinity_key, now, port.stickytime())
        } else {
            let sticky = if port.uses_affinity() {
                self.affinity
                    .lookup(&affinity_key, now, port.stickytime())
                    // Quiesced servers keep their clients (IBM); down ones lose them.
                    .filter(|s| port.server(*s).is_some_and(|s| s.keeps_affinity))
            } else {
                None
            };
            sticky.or_else(|| port.picker.pick())
        };
        chosen.ok_or(if tcp && !syn && port.config.selection != Selection::Hash {
            DropReason::NoConnection
        } else {
            DropReason::NoServer
        })
    }

    /// A NAT source port of `returnaddress` for `key` (its own source port when free). An
    /// exhausted pool gets one from its oldest half-open record: the record ends and its port
    /// passes straight to the new flow (so that another worker cannot take it first).
    fn nat_port(&self, worker: usize, returnaddress: IpAddr, key: &FlowKey) -> Option<u16> {
        if let Some(p) = self
            .natpool
            .allocate_preferring(returnaddress, key.proto, key.src_port)
        {
            return Some(p);
        }
        loop {
            let mut r = self.conns.evict_halfopen_nat(returnaddress, key.proto)?;
            let handed = r
                .owned_port
                .then(|| r.conn.nat.map(|n| n.nat_port))
                .flatten();
            // The port stays marked in use in the pool: it is the new flow's now.
            r.owned_port = false;
            self.release(worker, std::slice::from_ref(&r));
            if handed.is_some() {
                return handed;
            }
        }
    }
}
