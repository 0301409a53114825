//! Connection records: which server each client flow goes to, and its NAT translation.
//!
//! [`Conn`] is the record as the engine reads and changes it. The table that holds them,
//! bounded, is in [`super::table`], which stores them compactly ([`super::compact`]): a [`Conn`]
//! is decoded from the table for each use and encoded back.

use crate::flow::FlowKey;
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The translation of a NAT (directed) connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NatMapping {
    /// Source address of the forwarded request (the server replies to it).
    pub returnaddress: IpAddr,
    /// Source port taken from the returnaddress's pool.
    pub nat_port: u16,
    /// Destination port on the server (mapport, or the cluster port).
    pub server_port: u16,
}

/// One connection record. The server's counters are not part of it: they are the plan's
/// ([`super::ServerPlan::counters`], found by the record's port and server address), so a
/// record that outlives its server's configuration counts nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Client → cluster tuple.
    pub key: FlowKey,
    pub server: IpAddr,
    pub nat: Option<NatMapping>,
    /// Where frames back to the client go (the client or its router).
    pub client_mac: [u8; 6],
    pub created: Instant,
    pub last_seen: Instant,
    /// Set when a FIN or RST was seen; the record ends `fin_timeout` later.
    pub closing_since: Option<Instant>,
    /// Inactivity after which the record ends (the port's staletimeout).
    pub staletimeout: Duration,
    /// Last acknowledgement number the client sent: the sequence number a reset to the client
    /// must carry to be accepted.
    pub client_ack: u32,
    /// When this record was last handed to replication (None: never).
    pub replicated_at: Option<Instant>,
    /// The client has acknowledged after the segment that made the record (for a record made
    /// by a SYN: the handshake completed). UDP records are established from the start. A
    /// record that is not is *half-open*: it ends after the half-open timeout and is the first
    /// to make room when the table is full.
    pub established: bool,
    /// The record's first packet made the client's affinity record: a half-open record that
    /// ends takes that affinity record with it, so a SYN flood leaves no affinity behind.
    pub made_affinity: bool,
}

impl Conn {
    /// The server-side tuple of replies (server → returnaddress:natport), for NAT records.
    pub fn reverse_key(&self) -> Option<FlowKey> {
        self.nat.map(|n| FlowKey {
            proto: self.key.proto,
            src_ip: self.server,
            src_port: n.server_port,
            dst_ip: n.returnaddress,
            dst_port: n.nat_port,
        })
    }

    /// Whether the record is half-open (see [`Conn::established`]).
    pub fn is_halfopen(&self) -> bool {
        !self.established
    }

    /// Whether the record has ended at `now`: `fin_timeout` after its FIN or RST,
    /// `halfopen_timeout` after its creation while half-open, or after its staletimeout of
    /// inactivity.
    pub fn expired(&self, now: Instant, fin_timeout: Duration, halfopen_timeout: Duration) -> bool {
        if let Some(t) = self.closing_since
            && now.saturating_duration_since(t) >= fin_timeout
        {
            return true;
        }
        if self.is_halfopen() && now.saturating_duration_since(self.created) >= halfopen_timeout {
            return true;
        }
        now.saturating_duration_since(self.last_seen) >= self.staletimeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_after_fin_halfopen_or_staletimeout() {
        let now = Instant::now();
        let fin = Duration::from_secs(2);
        let half = Duration::from_secs(5);
        let mut c = Conn {
            key: FlowKey {
                proto: 6,
                src_ip: "203.0.113.5".parse().unwrap(),
                src_port: 1,
                dst_ip: "192.0.2.100".parse().unwrap(),
                dst_port: 80,
            },
            server: "192.0.2.11".parse().unwrap(),
            nat: None,
            client_mac: [2, 0, 0, 0, 0, 9],
            created: now,
            last_seen: now,
            closing_since: None,
            staletimeout: Duration::from_secs(300),
            client_ack: 0,
            replicated_at: None,
            established: true,
            made_affinity: false,
        };
        assert!(!c.expired(now + Duration::from_secs(299), fin, half));
        assert!(c.expired(now + Duration::from_secs(300), fin, half));
        c.established = false;
        assert!(!c.expired(now + Duration::from_secs(4), fin, half));
        assert!(c.expired(now + Duration::from_secs(5), fin, half));
        c.established = true;
        c.closing_since = Some(now);
        assert!(c.expired(now + Duration::from_secs(2), fin, half));
    }
}
