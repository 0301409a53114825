//! The GWM's requests and replies to and from the shared codec's messages
//! ([`crate::sasp::codec`]).

use crate::sasp::codec::{
    self, Body, FLAG_LB, Group, GroupMembers, Member, Message, ReturnCode, STATE_QUIESCE,
};

use super::MemberKey;
use super::request::{GroupRef, GroupWeights, MemberSpec, Reply, ReplyKind, Request, StateSpec};

fn group_ref(g: Group) -> GroupRef {
    GroupRef {
        uid: g.lb_uid,
        name: g.name,
    }
}

fn member_spec(m: Member) -> MemberSpec {
    MemberSpec {
        key: MemberKey {
            address: m.address,
            port: m.port,
            protocol: m.protocol,
        },
        label: m.label,
    }
}

fn groups_of_members(groups: Vec<GroupMembers>) -> Vec<(GroupRef, Vec<MemberSpec>)> {
    groups
        .into_iter()
        .map(|g| {
            (
                group_ref(g.group),
                g.members.into_iter().map(member_spec).collect(),
            )
        })
        .collect()
}

/// Decodes one whole version-1 message into a request; `Err` with the reason to close.
pub(crate) fn decode(frame: &[u8]) -> Result<Request, String> {
    let msg = Message::decode(frame).map_err(|e| e.to_string())?;
    Ok(match msg.body {
        Body::SetLbStateRequest {
            lb_uid,
            health,
            flags,
        } => Request::SetLbState {
            uid: lb_uid,
            health,
            flags,
        },
        Body::RegistrationRequest { flags, groups } => Request::Registration {
            lb_flag: flags & FLAG_LB != 0,
            groups: groups_of_members(groups),
        },
        Body::DeregistrationRequest {
            flags,
            reason,
            groups,
        } => Request::Deregistration {
            lb_flag: flags & FLAG_LB != 0,
            reason,
            groups: groups_of_members(groups),
        },
        Body::GetWeightsRequest { groups } => Request::GetWeights {
            groups: groups.into_iter().map(group_ref).collect(),
        },
        Body::SetMemberStateRequest { flags, groups } => Request::SetMemberState {
            lb_flag: flags & FLAG_LB != 0,
            groups: groups
                .into_iter()
                .map(|g| {
                    let entries = g
                        .entries
                        .into_iter()
                        .map(|(m, s)| StateSpec {
                            member: member_spec(m),
                            state: s.state,
                            quiesce: s.flags & STATE_QUIESCE != 0,
                        })
                        .collect();
                    (group_ref(g.group), entries)
                })
                .collect(),
        },
        other => {
            return Err(format!(
                "{} ({:#06x}) is not a request a GWM takes",
                other.name(),
                other.message_type()
            ));
        }
    })
}

fn codec_weights(groups: &[GroupWeights]) -> Vec<codec::GroupWeights> {
    groups
        .iter()
        .map(|g| codec::GroupWeights {
            group: Group::new(&g.lb_uid, &g.group),
            entries: g
                .entries
                .iter()
                .map(|e| {
                    let mut m = Member::new(e.member.address, e.member.port, e.member.protocol);
                    m.label = e.label.clone();
                    (
                        m,
                        codec::WeightEntry {
                            state: e.state,
                            flags: e.flags,
                            weight: e.weight,
                        },
                    )
                })
                .collect(),
        })
        .collect()
}

/// The reply's bytes; `Err` if it does not fit a message (then the connection is closed).
pub(crate) fn encode_reply(reply: &Reply) -> Result<Vec<u8>, String> {
    let code = ReturnCode(reply.code);
    let body = match reply.kind {
        ReplyKind::Registration => Body::RegistrationReply { code },
        ReplyKind::Deregistration => Body::DeregistrationReply { code },
        ReplyKind::SetLbState => Body::SetLbStateReply { code },
        ReplyKind::SetMemberState => Body::SetMemberStateReply { code },
        ReplyKind::GetWeights => Body::GetWeightsReply {
            code,
            interval: reply.interval,
            groups: codec_weights(&reply.groups),
        },
    };
    Message::new(reply.id, body)
        .to_bytes()
        .map_err(|e| format!("cannot encode the {} reply: {e}", reply.kind.request_name()))
}

/// A Send Weights message (Message ID 0: it "serves no purpose" there).
pub(crate) fn encode_send_weights(groups: &[GroupWeights]) -> Result<Vec<u8>, String> {
    let body = Body::SendWeights {
        groups: codec_weights(groups),
    };
    Message::new(0, body)
        .to_bytes()
        .map_err(|e| format!("cannot encode Send Weights: {e}"))
}
