//! Bytes of the GWM's requests and replies (RFC 4678 §4–§7; sasp-notes §1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codec::Reader;

use super::request::{GroupRef, GroupWeights, MemberSpec, Reply, ReplyKind, Request, StateSpec};
use super::{MemberKey, SASP_VERSION};

const HEADER: u16 = 0x2010;
const MEMBER_DATA: u16 = 0x3010;
const GROUP_DATA: u16 = 0x3011;
const WEIGHT_ENTRY: u16 = 0x3012;
const MEMBER_STATE: u16 = 0x3013;
const GROUP_OF_MEMBERS: u16 = 0x4010;
const GROUP_OF_WEIGHTS: u16 = 0x4011;
const GROUP_OF_STATES: u16 = 0x4012;

fn short(what: &str) -> String {
    format!("{what} is cut short")
}

fn tlv(r: &mut Reader<'_>, ty: u16, fixed: usize, what: &str) -> Result<(), String> {
    let t = r.u16().ok_or_else(|| short(what))?;
    let l = r.u16().ok_or_else(|| short(what))?;
    if t != ty {
        return Err(format!("{what}: type {t:#06x}, expected {ty:#06x}"));
    }
    if l as usize != fixed {
        return Err(format!("{what}: length {l}, expected {fixed}"));
    }
    Ok(())
}

fn string(r: &mut Reader<'_>, len: usize, what: &str) -> Result<String, String> {
    let b = r.take(len).ok_or_else(|| short(what))?;
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn group_data(r: &mut Reader<'_>) -> Result<GroupRef, String> {
    let t = r.u16().ok_or_else(|| short("Group Data"))?;
    let l = r.u16().ok_or_else(|| short("Group Data"))?;
    if t != GROUP_DATA {
        return Err(format!("Group Data: type {t:#06x}"));
    }
    let ul = r.u8().ok_or_else(|| short("Group Data"))? as usize;
    let uid = string(r, ul, "LB UID")?;
    let gl = r.u8().ok_or_else(|| short("Group Data"))? as usize;
    let name = string(r, gl, "Group Name")?;
    if l as usize != 6 + ul + gl {
        return Err(format!("Group Data: length {l}, expected {}", 6 + ul + gl));
    }
    Ok(GroupRef { uid, name })
}

fn member_data(r: &mut Reader<'_>) -> Result<MemberSpec, String> {
    let t = r.u16().ok_or_else(|| short("Member Data"))?;
    let l = r.u16().ok_or_else(|| short("Member Data"))?;
    if t != MEMBER_DATA {
        return Err(format!("Member Data: type {t:#06x}"));
    }
    let protocol = r.u8().ok_or_else(|| short("Member Data"))?;
    let port = r.u16().ok_or_else(|| short("Member Data"))?;
    let ip: [u8; 16] = r.array().ok_or_else(|| short("Member Data"))?;
    let ll = r.u8().ok_or_else(|| short("Member Data"))? as usize;
    let label = string(r, ll, "Label")?;
    if l as usize != 24 + ll {
        return Err(format!("Member Data: length {l}, expected {}", 24 + ll));
    }
    let v6 = Ipv6Addr::from(ip);
    let address = if ip[..12].iter().all(|&b| b == 0) {
        IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]))
    } else {
        IpAddr::V6(v6).to_canonical()
    };
    Ok(MemberSpec {
        key: MemberKey {
            address,
            port,
            protocol,
        },
        label,
    })
}

fn group_of_members(r: &mut Reader<'_>) -> Result<(GroupRef, Vec<MemberSpec>), String> {
    let t = r.u16().ok_or_else(|| short("Group of Member Data"))?;
    let l = r.u16().ok_or_else(|| short("Group of Member Data"))?;
    if t != GROUP_OF_MEMBERS || l != 6 {
        return Err(format!("Group of Member Data: type {t:#06x} length {l}"));
    }
    let n = r.u16().ok_or_else(|| short("Group of Member Data"))?;
    let g = group_data(r)?;
    let members = (0..n).map(|_| member_data(r)).collect::<Result<_, _>>()?;
    Ok((g, members))
}

fn group_of_states(r: &mut Reader<'_>) -> Result<(GroupRef, Vec<StateSpec>), String> {
    let t = r.u16().ok_or_else(|| short("Group of Member State Data"))?;
    let l = r.u16().ok_or_else(|| short("Group of Member State Data"))?;
    if t != GROUP_OF_STATES || l != 6 {
        return Err(format!(
            "Group of Member State Data: type {t:#06x} length {l}"
        ));
    }
    let n = r.u16().ok_or_else(|| short("Group of Member State Data"))?;
    let g = group_data(r)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let member = member_data(r)?;
        tlv(r, MEMBER_STATE, 6, "Member State Instance")?;
        let state = r.u8().ok_or_else(|| short("Member State Instance"))?;
        let flags = r.u8().ok_or_else(|| short("Member State Instance"))?;
        out.push(StateSpec {
            member,
            state,
            quiesce: flags & 0x01 != 0,
        });
    }
    Ok((g, out))
}

/// Decodes one whole request message (header included).
pub(crate) fn decode(frame: &[u8]) -> Result<Request, String> {
    let mut r = Reader::new(frame);
    r.take(13).ok_or_else(|| short("the header"))?;
    let ty = r.u16().ok_or_else(|| short("the message"))?;
    let len = r.u16().ok_or_else(|| short("the message"))?;
    let fixed = |want: usize| {
        if len as usize == want {
            Ok(())
        } else {
            Err(format!("message {ty:#06x}: length {len}, expected {want}"))
        }
    };
    let req = match ty {
        0x1050 => {
            let ul = r.u8().ok_or_else(|| short("Set LB State"))? as usize;
            let uid = string(&mut r, ul, "LB UID")?;
            let health = r.u8().ok_or_else(|| short("Set LB State"))?;
            let flags = r.u8().ok_or_else(|| short("Set LB State"))?;
            fixed(7 + ul)?;
            Request::SetLbState { uid, health, flags }
        }
        0x1010 => {
            fixed(7)?;
            let flag = r.u8().ok_or_else(|| short("Registration"))?;
            let n = r.u16().ok_or_else(|| short("Registration"))?;
            let groups = (0..n)
                .map(|_| group_of_members(&mut r))
                .collect::<Result<_, _>>()?;
            Request::Registration {
                lb_flag: flag & 0x01 != 0,
                groups,
            }
        }
        0x1020 => {
            fixed(8)?;
            let flag = r.u8().ok_or_else(|| short("DeRegistration"))?;
            let reason = r.u8().ok_or_else(|| short("DeRegistration"))?;
            let n = r.u16().ok_or_else(|| short("DeRegistration"))?;
            let groups = (0..n)
                .map(|_| group_of_members(&mut r))
                .collect::<Result<_, _>>()?;
            Request::Deregistration {
                lb_flag: flag & 0x01 != 0,
                reason,
                groups,
            }
        }
        0x1030 => {
            fixed(6)?;
            let n = r.u16().ok_or_else(|| short("Get Weights"))?;
            let groups = (0..n)
                .map(|_| group_data(&mut r))
                .collect::<Result<_, _>>()?;
            Request::GetWeights { groups }
        }
        0x1060 => {
            fixed(7)?;
            let flag = r.u8().ok_or_else(|| short("Set Member State"))?;
            let n = r.u16().ok_or_else(|| short("Set Member State"))?;
            let groups = (0..n)
                .map(|_| group_of_states(&mut r))
                .collect::<Result<_, _>>()?;
            Request::SetMemberState {
                lb_flag: flag & 0x01 != 0,
                groups,
            }
        }
        0x1015 | 0x1025 | 0x1035 | 0x1040 | 0x1055 | 0x1065 => {
            return Err(format!("message {ty:#06x} is not a request a GWM takes"));
        }
        _ => return Err(format!("unknown message type {ty:#06x}")),
    };
    if !r.is_empty() {
        return Err(format!("{} bytes after the message", r.remaining()));
    }
    Ok(req)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn message(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + body.len());
    put16(&mut out, HEADER);
    put16(&mut out, 13);
    out.push(SASP_VERSION);
    out.extend_from_slice(&((13 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn put_weights(out: &mut Vec<u8>, groups: &[GroupWeights]) {
    for g in groups {
        put16(out, GROUP_OF_WEIGHTS);
        put16(out, 6);
        put16(out, g.entries.len() as u16);
        put16(out, GROUP_DATA);
        put16(out, (6 + g.lb_uid.len() + g.group.len()) as u16);
        out.push(g.lb_uid.len() as u8);
        out.extend_from_slice(g.lb_uid.as_bytes());
        out.push(g.group.len() as u8);
        out.extend_from_slice(g.group.as_bytes());
        for e in &g.entries {
            put16(out, MEMBER_DATA);
            put16(out, (24 + e.label.len()) as u16);
            out.push(e.member.protocol);
            put16(out, e.member.port);
            match e.member.address {
                IpAddr::V4(a) => {
                    out.extend_from_slice(&[0; 12]);
                    out.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
            out.push(e.label.len() as u8);
            out.extend_from_slice(e.label.as_bytes());
            put16(out, WEIGHT_ENTRY);
            put16(out, 8);
            out.push(e.state);
            out.push(e.flags);
            put16(out, e.weight);
        }
    }
}

pub(crate) fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut body = Vec::new();
    let ty = match reply.kind {
        ReplyKind::Registration => 0x1015,
        ReplyKind::Deregistration => 0x1025,
        ReplyKind::GetWeights => 0x1035,
        ReplyKind::SetLbState => 0x1055,
        ReplyKind::SetMemberState => 0x1065,
    };
    put16(&mut body, ty);
    if reply.kind == ReplyKind::GetWeights {
        put16(&mut body, 9);
        body.push(reply.code);
        put16(&mut body, reply.interval);
        put16(&mut body, reply.groups.len() as u16);
        put_weights(&mut body, &reply.groups);
    } else {
        put16(&mut body, 5);
        body.push(reply.code);
    }
    message(reply.id, &body)
}

pub(crate) fn encode_send_weights(groups: &[GroupWeights]) -> Vec<u8> {
    let mut body = Vec::new();
    put16(&mut body, 0x1040);
    put16(&mut body, 6);
    put16(&mut body, groups.len() as u16);
    put_weights(&mut body, groups);
    message(0, &body)
}
