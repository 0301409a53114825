//! What `tandem-gwm status` shows.

use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use super::*;

impl Gwm {
    /// What `tandem-gwm status` shows.
    pub fn status(&self, now: Instant) -> GwmStatus {
        let lbs = self
            .lbs
            .iter()
            .map(|(uid, lb)| {
                let session = lb.conn.and_then(|c| self.sessions.get(&c));
                LbStatus {
                    lb_uid: uid.clone(),
                    connected: session.is_some(),
                    peer: session.map(|s| s.peer.clone()),
                    health: lb.health,
                    push: lb.flags & LB_PUSH != 0,
                    trust: lb.flags & LB_TRUST != 0,
                    changed_only: lb.flags & LB_NOCHANGE != 0,
                    requests: session.map_or(0, |s| s.requests),
                    pushes: session.map_or(0, |s| s.pushes),
                    grace_left: lb.lost_at.map(|t| {
                        (t + self.settings.lb_grace)
                            .saturating_duration_since(now)
                            .as_secs_f64()
                    }),
                    groups: lb
                        .groups
                        .keys()
                        .map(|name| GroupStatus {
                            name: name.clone(),
                            members: self
                                .group_entries(uid, name)
                                .into_iter()
                                .map(|e| MemberStatus {
                                    address: e.member.address,
                                    port: e.member.port,
                                    protocol: e.member.protocol,
                                    label: e.label,
                                    weight: e.weight,
                                    flags: e.flags,
                                    contact: e.flags & WE_CONTACT != 0,
                                    quiesce: e.flags & WE_QUIESCE != 0,
                                    registration: e.flags & WE_REGISTRATION != 0,
                                    confident: e.flags & WE_CONFIDENT != 0,
                                    state: e.state,
                                    load: self.health.get(&e.member).and_then(|h| h.load),
                                    last_error: self
                                        .health
                                        .get(&e.member)
                                        .and_then(|h| h.last_error.clone()),
                                })
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect();
        GwmStatus {
            connections: self.sessions.len(),
            lbs,
        }
    }
}

/// `tandem-gwm status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GwmStatus {
    pub connections: usize,
    pub lbs: Vec<LbStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LbStatus {
    pub lb_uid: String,
    pub connected: bool,
    pub peer: Option<String>,
    pub health: u8,
    pub push: bool,
    pub trust: bool,
    pub changed_only: bool,
    pub requests: u64,
    pub pushes: u64,
    /// Seconds its groups are still kept after the connection was lost.
    pub grace_left: Option<f64>,
    pub groups: Vec<GroupStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberStatus {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub label: String,
    pub weight: u16,
    pub flags: u8,
    pub contact: bool,
    pub quiesce: bool,
    pub registration: bool,
    pub confident: bool,
    pub state: u8,
    pub load: Option<f64>,
    pub last_error: Option<String>,
}
