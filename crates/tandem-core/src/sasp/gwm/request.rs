//! The requests a GWM handles and the replies it sends, in the GWM's own terms, translated
//! from and to the codec's messages.

use serde::Serialize;

use super::MemberKey;

/// Group Data: an LB UID and a group name (empty = every group, where allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRef {
    pub uid: String,
    pub name: String,
}

/// A member named in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSpec {
    pub key: MemberKey,
    pub label: String,
}

/// A member with a Member State Instance (Set Member State).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateSpec {
    pub member: MemberSpec,
    pub state: u8,
    pub quiesce: bool,
}

/// A request received from an LB or a member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    SetLbState {
        uid: String,
        health: u8,
        flags: u8,
    },
    Registration {
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    },
    Deregistration {
        lb_flag: bool,
        #[allow(dead_code)]
        reason: u8,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    },
    GetWeights {
        groups: Vec<GroupRef>,
    },
    SetMemberState {
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<StateSpec>)>,
    },
}

impl Request {
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Request::SetLbState { .. } => ReplyKind::SetLbState,
            Request::Registration { .. } => ReplyKind::Registration,
            Request::Deregistration { .. } => ReplyKind::Deregistration,
            Request::GetWeights { .. } => ReplyKind::GetWeights,
            Request::SetMemberState { .. } => ReplyKind::SetMemberState,
        }
    }
}

/// Which reply answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    SetLbState,
    Registration,
    Deregistration,
    GetWeights,
    SetMemberState,
}

impl ReplyKind {
    /// The reply for a request's message type (0x1010, 0x1020, ...), `None` for a type that
    /// is not a request.
    pub fn for_request_type(ty: u16) -> Option<ReplyKind> {
        Some(match ty {
            0x1010 => ReplyKind::Registration,
            0x1020 => ReplyKind::Deregistration,
            0x1030 => ReplyKind::GetWeights,
            0x1050 => ReplyKind::SetLbState,
            0x1060 => ReplyKind::SetMemberState,
            _ => return None,
        })
    }

    /// The request's name, for logs.
    pub fn request_name(self) -> &'static str {
        match self {
            ReplyKind::SetLbState => "Set LB State",
            ReplyKind::Registration => "Registration",
            ReplyKind::Deregistration => "DeRegistration",
            ReplyKind::GetWeights => "Get Weights",
            ReplyKind::SetMemberState => "Set Member State",
        }
    }
}

/// One Weight Entry (with its Member Data) as the GWM sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightEntry {
    pub member: MemberKey,
    pub label: String,
    pub state: u8,
    pub flags: u8,
    pub weight: u16,
}

/// A Group of Weight Entry Data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupWeights {
    pub lb_uid: String,
    pub group: String,
    pub entries: Vec<WeightEntry>,
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub kind: ReplyKind,
    pub id: u32,
    pub code: u8,
    /// Get Weights only.
    pub interval: u16,
    /// Get Weights only.
    pub groups: Vec<GroupWeights>,
}

impl Reply {
    pub fn code(kind: ReplyKind, id: u32, code: u8) -> Reply {
        Reply {
            kind,
            id,
            code,
            interval: 0,
            groups: Vec::new(),
        }
    }

    pub fn error(kind: ReplyKind, id: u32, code: u8) -> Reply {
        Reply::code(kind, id, code)
    }
}
