//! Checking received records against the receiver's configuration.
//!
//! IBM's backup crashed on corrupt replication records (APARs PH37663, PI72199), and records
//! for clusters, ports or servers it did not know were lost silently. Tandem checks every
//! record before it touches a table, drops the bad ones and counts them by reason.

use super::record::{AffinityRecord, ConnectionRecord, Record};
use crate::config::{Config, Method, Port};
use serde::Serialize;
use std::net::IpAddr;

/// Why a received record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Invalid {
    #[error("port number 0")]
    ZeroPort,
    #[error("client address is unspecified, multicast or broadcast")]
    BadClient,
    #[error("no such cluster")]
    UnknownCluster,
    #[error("no such port on the cluster")]
    UnknownPort,
    #[error("protocol differs from the port's")]
    ProtocolMismatch,
    #[error("no such server on the port")]
    UnknownServer,
    #[error("NAT mapping on a MAC-forwarding port")]
    NatOnMacPort,
    #[error("no NAT mapping for a NAT port")]
    NatMissing,
    #[error("returnaddress is not the server's")]
    ReturnAddressMismatch,
    #[error("affinity record for a port with stickytime 0")]
    NoAffinity,
    #[error("staletimeout or stickytime of 0")]
    Lifetime,
    #[error("record already expired")]
    Expired,
}

impl Invalid {
    /// Every reason, in counter order.
    pub const ALL: [Invalid; 12] = [
        Invalid::ZeroPort,
        Invalid::BadClient,
        Invalid::UnknownCluster,
        Invalid::UnknownPort,
        Invalid::ProtocolMismatch,
        Invalid::UnknownServer,
        Invalid::NatOnMacPort,
        Invalid::NatMissing,
        Invalid::ReturnAddressMismatch,
        Invalid::NoAffinity,
        Invalid::Lifetime,
        Invalid::Expired,
    ];

    /// A short name for reports (`unknown_server`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Invalid::ZeroPort => "zero_port",
            Invalid::BadClient => "bad_client",
            Invalid::UnknownCluster => "unknown_cluster",
            Invalid::UnknownPort => "unknown_port",
            Invalid::ProtocolMismatch => "protocol_mismatch",
            Invalid::UnknownServer => "unknown_server",
            Invalid::NatOnMacPort => "nat_on_mac_port",
            Invalid::NatMissing => "nat_missing",
            Invalid::ReturnAddressMismatch => "returnaddress_mismatch",
            Invalid::NoAffinity => "no_affinity",
            Invalid::Lifetime => "lifetime",
            Invalid::Expired => "expired",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Refused records, counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvalidCounts([u64; Invalid::ALL.len()]);

impl InvalidCounts {
    pub fn add(&mut self, reason: Invalid) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: Invalid) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The non-zero counts.
    pub fn iter(&self) -> impl Iterator<Item = (Invalid, u64)> + '_ {
        Invalid::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &InvalidCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl Serialize for InvalidCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Invalid::ALL.len()))?;
        for r in Invalid::ALL {
            m.serialize_entry(r.name(), &self.get(r))?;
        }
        m.end()
    }
}

fn bad_client(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(a) if a.is_broadcast())
}

/// The configured port of `cluster`:`port`.
fn port_of(config: &Config, cluster: IpAddr, port: u16) -> Result<&Port, Invalid> {
    if port == 0 {
        return Err(Invalid::ZeroPort);
    }
    let c = config
        .clusters
        .get(&cluster)
        .ok_or(Invalid::UnknownCluster)?;
    c.ports.get(&port).ok_or(Invalid::UnknownPort)
}

/// Checks a received record against the receiver's configuration: its cluster, port (and
/// protocol) and server exist, port numbers are not 0, a NAT record is on a NAT port and
/// uses the server's returnaddress, an affinity record is on a port with a stickytime, and
/// its lifetimes are in range and not yet over.
///
/// An `ended` connection record only deletes, so it needs only its cluster and port: the
/// receiver's configuration may already have lost the server.
pub fn validate(record: &Record, config: &Config) -> Result<(), Invalid> {
    match record {
        Record::Connection(c) => validate_connection(c, config),
        Record::Affinity(a) => validate_affinity(a, config),
    }
}

fn validate_connection(c: &ConnectionRecord, config: &Config) -> Result<(), Invalid> {
    if c.client.port() == 0 {
        return Err(Invalid::ZeroPort);
    }
    if bad_client(c.client.ip()) {
        return Err(Invalid::BadClient);
    }
    let port = port_of(config, c.cluster.ip(), c.cluster.port())?;
    if port.protocol != c.proto {
        return Err(Invalid::ProtocolMismatch);
    }
    if c.ended {
        return Ok(());
    }
    let server = port.servers.get(&c.server).ok_or(Invalid::UnknownServer)?;
    match (port.method, c.nat) {
        (Method::Mac, Some(_)) => return Err(Invalid::NatOnMacPort),
        (Method::Nat, None) => return Err(Invalid::NatMissing),
        (Method::Nat, Some(n)) => {
            if n.nat_port == 0 || n.server_port == 0 {
                return Err(Invalid::ZeroPort);
            }
            if server.returnaddress != Some(n.returnaddress) {
                return Err(Invalid::ReturnAddressMismatch);
            }
        }
        (Method::Mac, None) => {}
    }
    if c.staletimeout_s == 0 {
        return Err(Invalid::Lifetime);
    }
    if u64::from(c.idle_ms) >= u64::from(c.staletimeout_s) * 1000 {
        return Err(Invalid::Expired);
    }
    Ok(())
}

fn validate_affinity(a: &AffinityRecord, config: &Config) -> Result<(), Invalid> {
    if bad_client(a.client) {
        return Err(Invalid::BadClient);
    }
    let port = port_of(config, a.cluster, a.port)?;
    if port.stickytime == 0 {
        return Err(Invalid::NoAffinity);
    }
    if !port.servers.contains_key(&a.server) {
        return Err(Invalid::UnknownServer);
    }
    if a.stickytime_s == 0 {
        return Err(Invalid::Lifetime);
    }
    if u64::from(a.age_ms) > u64::from(a.stickytime_s) * 1000 {
        return Err(Invalid::Expired);
    }
    Ok(())
}
