//! Names and weight rules around the sessions: group names, the default LB UID, and how a
//! GWM's weight entry becomes a server weight (for the overlay).

use super::super::codec::WeightEntry;
use super::MemberId;
use crate::config::SaspGroupTarget;
use serde::Serialize;
use std::net::IpAddr;

/// The SASP group name of a `sasp add` target: `CLUSTER@PORT`, or `CLUSTER` for a
/// cluster-wide group.
pub fn group_name(target: &SaspGroupTarget) -> String {
    match target.port {
        Some(p) => format!("{}@{}", target.cluster, p),
        None => target.cluster.to_string(),
    }
}

/// The default LB UID of a node: `tandem-<nfa>`.
pub fn default_lb_uid(nfa: IpAddr) -> String {
    format!("tandem-{nfa}")
}

/// A GWM weight (0–65535) in the port's weight range: `w * weightbound / 65535`, rounded.
pub fn convert_weight(raw: u16, weightbound: u32) -> u32 {
    let w = u64::from(raw) * u64::from(weightbound);
    ((w + 32_767) / 65_535) as u32
}

/// The weight a member should get from a GWM entry: 0 without contact or when quiesced
/// (the flag decides, not the weight: RFC 4678 §9.3), else the converted weight.
pub fn effective_weight(entry: &WeightEntry, weightbound: u32) -> u32 {
    if !entry.contact() || entry.quiesce() {
        0
    } else {
        convert_weight(entry.weight, weightbound)
    }
}

/// Whether the GWM's weights of a group are to be used: at least one member is CONFIDENT
/// (RFC 4678 §5.3: when no member is, the GWM is disregarded for the group).
pub fn group_confident<'a>(entries: impl IntoIterator<Item = &'a WeightEntry>) -> bool {
    entries.into_iter().any(WeightEntry::confident)
}

/// One member of `sasp report` (the design's JSON shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    pub address: IpAddr,
    pub port: u16,
    /// `tcp`, `udp`, or the IP protocol number.
    pub protocol: String,
    /// The weight it gets from this GWM ([`effective_weight`]).
    pub weight: u32,
    /// The GWM's weight, 0–65535.
    pub raw_weight: u16,
    pub contact: bool,
    pub quiesce: bool,
    pub registration: bool,
    pub confident: bool,
}

impl MemberReport {
    pub fn new(member: &MemberId, entry: &WeightEntry, weightbound: u32) -> MemberReport {
        MemberReport {
            address: member.address,
            port: member.port,
            protocol: match member.protocol {
                super::PROTOCOL_TCP => "tcp".to_owned(),
                super::PROTOCOL_UDP => "udp".to_owned(),
                p => p.to_string(),
            },
            weight: effective_weight(entry, weightbound),
            raw_weight: entry.weight,
            contact: entry.contact(),
            quiesce: entry.quiesce(),
            registration: entry.registration(),
            confident: entry.confident(),
        }
    }
}
