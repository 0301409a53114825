//! The SASP wire format (RFC 4678 §4–§7): every message and component as a typed value.
//!
//! A message is the 13-byte SASP header followed by exactly one message component
//! ([`Body`]). All integers are big-endian and nothing is aligned. A TLV's Length counts
//! its own Type, Length and fixed fields only: the components a message or a group "refers
//! to" follow it and are **not** included (the RFC §8 example; `sasp-notes.md` §0.5), so
//! nested parsing is driven by the counts. A received message or group TLV whose Length
//! instead covers its nested components as well is accepted (some GWM might send that);
//! any other Length is refused. Leaf components (Member Data, Group Data, Weight Entry,
//! Member State Instance) must carry their exact Length.
//!
//! ```text
//!  0  2  Type 0x2010     2 2 Length 13     4 1 Version (1)
//!  5  4  Message Length (header included; signed, 13 ..= MAX_MESSAGE_LEN)
//!  9  4  Message ID (echoed in the reply; meaningless in Send Weights)
//! 13  …  the message component and the components it refers to
//! ```
//!
//! Addresses are 16 bytes: IPv6, or IPv4 as "IPv4-compatible" `::a.b.c.d` (what
//! [`Member::encode`] writes). On receipt both `::a.b.c.d` and IPv4-mapped
//! `::ffff:a.b.c.d` read back as the IPv4 address, except `::` and `::1` (0.0.0.0 and
//! 0.0.0.1 are no member addresses; those stay IPv6).
//!
//! Strings (LB UID, Group Name, Label) are UTF-8 with a 1-byte length; decoding refuses
//! invalid UTF-8. Whether a length is acceptable beyond the wire limit of 255 bytes (LB UID
//! 1–64, Group Name not empty) is the sessions' business: a GWM answers 0x50/0x51 to those,
//! so the codec must let them through. Flag bytes are kept whole, reserved bits included,
//! so that a decode → encode round trip is lossless.

mod component;

use crate::codec::{Reader, put_u16, put_u32};
pub use component::*;
use component::{
    Enc, GROUP_MIN, decode_list, encode_list, exact_len, get_str, get_u8, get_u16, parent_len,
    put_str, put_tlv,
};

/// Type of the SASP header TLV.
pub const HEADER_TYPE: u16 = 0x2010;
/// Size of the SASP header.
pub const HEADER_LEN: usize = 13;
/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Largest message accepted or written (1 MiB: about 32 000 members without labels in one
/// message). RFC 4678 sets no limit; a bound keeps a session's memory bounded.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// Largest LB UID the RFC recommends (§5.2).
pub const MAX_LB_UID_LEN: usize = 64;

/// Message component types (RFC §4.2).
pub mod msg_type {
    pub const REGISTRATION_REQUEST: u16 = 0x1010;
    pub const REGISTRATION_REPLY: u16 = 0x1015;
    pub const DEREGISTRATION_REQUEST: u16 = 0x1020;
    pub const DEREGISTRATION_REPLY: u16 = 0x1025;
    pub const GET_WEIGHTS_REQUEST: u16 = 0x1030;
    pub const GET_WEIGHTS_REPLY: u16 = 0x1035;
    pub const SEND_WEIGHTS: u16 = 0x1040;
    pub const SET_LB_STATE_REQUEST: u16 = 0x1050;
    pub const SET_LB_STATE_REPLY: u16 = 0x1055;
    pub const SET_MEMBER_STATE_REQUEST: u16 = 0x1060;
    pub const SET_MEMBER_STATE_REPLY: u16 = 0x1065;
}

/// Component types (RFC §4.2).
pub mod comp_type {
    pub const MEMBER_DATA: u16 = 0x3010;
    pub const GROUP_DATA: u16 = 0x3011;
    pub const WEIGHT_ENTRY: u16 = 0x3012;
    pub const MEMBER_STATE: u16 = 0x3013;
    pub const GROUP_OF_MEMBERS: u16 = 0x4010;
    pub const GROUP_OF_WEIGHTS: u16 = 0x4011;
    pub const GROUP_OF_MEMBER_STATES: u16 = 0x4012;
}

/// Flag of Registration, DeRegistration and Set Member State requests: the sender is the
/// load balancer (0: a member acting on itself).
pub const FLAG_LB: u8 = 0x01;

/// LB Flags of Set LB State: the GWM pushes Send Weights.
pub const LB_FLAG_PUSH: u8 = 0x01;
/// LB Flags: the GWM trusts member-initiated requests.
pub const LB_FLAG_TRUST: u8 = 0x02;
/// LB Flags: the GWM sends only members whose weight or flags changed ("No Change").
pub const LB_FLAG_NOCHANGE: u8 = 0x04;

/// Weight Entry flag: the GWM reached the member.
pub const WEIGHT_CONTACT: u8 = 0x01;
/// Weight Entry flag: the member is quiesced.
pub const WEIGHT_QUIESCE: u8 = 0x02;
/// Weight Entry flag: the load balancer registered the member (0: it registered itself).
pub const WEIGHT_REGISTRATION: u8 = 0x04;
/// Weight Entry flag: the GWM knows the member's state.
pub const WEIGHT_CONFIDENT: u8 = 0x08;

/// Member State Instance flag: quiesce (0: un-quiesce).
pub const STATE_QUIESCE: u8 = 0x01;

/// DeRegistration reason: none given.
pub const REASON_NONE: u8 = 0x00;
/// DeRegistration reason: "learned and purposeful" (removed from the configuration).
pub const REASON_LEARNED: u8 = 0x01;

/// A reply's return code (RFC §7); any byte is kept, the known ones have names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReturnCode(pub u8);

impl ReturnCode {
    pub const SUCCESS: ReturnCode = ReturnCode(0x00);
    pub const NOT_UNDERSTOOD: ReturnCode = ReturnCode(0x10);
    pub const NOT_ACCEPTED: ReturnCode = ReturnCode(0x11);
    pub const ALREADY_REGISTERED: ReturnCode = ReturnCode(0x40);
    pub const NOT_REGISTERED: ReturnCode = ReturnCode(0x41);
    pub const UNKNOWN_GROUP: ReturnCode = ReturnCode(0x42);
    pub const UNKNOWN_LB_UID: ReturnCode = ReturnCode(0x43);
    pub const DUPLICATE_MEMBER: ReturnCode = ReturnCode(0x44);
    pub const INVALID_GROUP: ReturnCode = ReturnCode(0x45);
    pub const DUPLICATE_GROUP: ReturnCode = ReturnCode(0x46);
    pub const INVALID_GROUP_NAME_SIZE: ReturnCode = ReturnCode(0x50);
    pub const INVALID_LB_UID_SIZE: ReturnCode = ReturnCode(0x51);
    pub const NOT_CONTACTED: ReturnCode = ReturnCode(0x61);

    /// The RFC's wording for the code.
    pub fn describe(self) -> &'static str {
        match self.0 {
            0x00 => "successful",
            0x10 => "message not understood",
            0x11 => "GWM will not accept this message from this sender",
            0x40 => "member already registered",
            0x41 => "application or system not registered",
            0x42 => "unknown group name",
            0x43 => "unknown LB UID",
            0x44 => "duplicate member in request",
            0x45 => "invalid group",
            0x46 => "duplicate group in request",
            0x50 => "invalid group name size",
            0x51 => "invalid LB UID size",
            0x61 => "member acting on itself before the LB contacted the GWM",
            0x01..=0x3f => "unknown general error",
            _ => "unknown message-specific error",
        }
    }
}

impl std::fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#04x} ({})", self.0, self.describe())
    }
}

/// The message component of a message (RFC §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    RegistrationRequest {
        /// `FLAG_LB` when the LB sends it.
        flags: u8,
        groups: Vec<GroupMembers>,
    },
    RegistrationReply {
        code: ReturnCode,
    },
    DeregistrationRequest {
        flags: u8,
        /// `REASON_*`.
        reason: u8,
        groups: Vec<GroupMembers>,
    },
    DeregistrationReply {
        code: ReturnCode,
    },
    GetWeightsRequest {
        groups: Vec<Group>,
    },
    GetWeightsReply {
        code: ReturnCode,
        /// Recommended polling period, seconds.
        interval: u16,
        groups: Vec<GroupWeights>,
    },
    /// The GWM's unsolicited weights (push mode; no reply).
    SendWeights {
        groups: Vec<GroupWeights>,
    },
    SetLbStateRequest {
        lb_uid: String,
        /// 0x00–0x7F, least to most healthy.
        health: u8,
        /// `LB_FLAG_*` bits.
        flags: u8,
    },
    SetLbStateReply {
        code: ReturnCode,
    },
    SetMemberStateRequest {
        flags: u8,
        groups: Vec<GroupMemberStates>,
    },
    SetMemberStateReply {
        code: ReturnCode,
    },
}

impl Body {
    /// The message component type.
    pub fn message_type(&self) -> u16 {
        use msg_type::*;
        match self {
            Body::RegistrationRequest { .. } => REGISTRATION_REQUEST,
            Body::RegistrationReply { .. } => REGISTRATION_REPLY,
            Body::DeregistrationRequest { .. } => DEREGISTRATION_REQUEST,
            Body::DeregistrationReply { .. } => DEREGISTRATION_REPLY,
            Body::GetWeightsRequest { .. } => GET_WEIGHTS_REQUEST,
            Body::GetWeightsReply { .. } => GET_WEIGHTS_REPLY,
            Body::SendWeights { .. } => SEND_WEIGHTS,
            Body::SetLbStateRequest { .. } => SET_LB_STATE_REQUEST,
            Body::SetLbStateReply { .. } => SET_LB_STATE_REPLY,
            Body::SetMemberStateRequest { .. } => SET_MEMBER_STATE_REQUEST,
            Body::SetMemberStateReply { .. } => SET_MEMBER_STATE_REPLY,
        }
    }

    /// The return code of a reply (`None` for requests and Send Weights).
    pub fn return_code(&self) -> Option<ReturnCode> {
        match self {
            Body::RegistrationReply { code }
            | Body::DeregistrationReply { code }
            | Body::GetWeightsReply { code, .. }
            | Body::SetLbStateReply { code }
            | Body::SetMemberStateReply { code } => Some(*code),
            _ => None,
        }
    }

    /// The message's name, as the RFC writes it.
    pub fn name(&self) -> &'static str {
        type_name(self.message_type()).unwrap_or("unknown")
    }
}

/// The RFC's name of a message type.
pub fn type_name(t: u16) -> Option<&'static str> {
    use msg_type::*;
    Some(match t {
        REGISTRATION_REQUEST => "Registration Request",
        REGISTRATION_REPLY => "Registration Reply",
        DEREGISTRATION_REQUEST => "DeRegistration Request",
        DEREGISTRATION_REPLY => "DeRegistration Reply",
        GET_WEIGHTS_REQUEST => "Get Weights Request",
        GET_WEIGHTS_REPLY => "Get Weights Reply",
        SEND_WEIGHTS => "Send Weights",
        SET_LB_STATE_REQUEST => "Set LB State Request",
        SET_LB_STATE_REPLY => "Set LB State Reply",
        SET_MEMBER_STATE_REQUEST => "Set Member State Request",
        SET_MEMBER_STATE_REPLY => "Set Member State Reply",
        _ => return None,
    })
}

/// One whole SASP message: header fields and its component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Proposed version in a request, the GWM's version in a reply.
    pub version: u8,
    /// Chosen by the requester and echoed in the reply.
    pub id: u32,
    pub body: Body,
}

/// The 13-byte header, decoded on its own (a GWM answering "not understood" to a message of
/// another version needs its ID even when the body does not parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    /// Total bytes of the message, header included.
    pub message_len: usize,
    pub id: u32,
}

/// Why received bytes are not a SASP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("SASP header type {0:#06x}, expected 0x2010")]
    BadHeaderType(u16),
    #[error("SASP header length {0}, expected 13")]
    BadHeaderLength(u16),
    #[error("message length {0} is below the 13-byte header or negative")]
    BadMessageLength(u32),
    #[error("message length {len} exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error("unknown message type {0:#06x}")]
    UnknownMessageType(u16),
    #[error("expected {expected} ({expected_type:#06x}), found type {found:#06x}")]
    UnexpectedComponent {
        expected: &'static str,
        expected_type: u16,
        found: u16,
    },
    #[error("{what} length {got}, expected {expected}")]
    BadLength {
        what: &'static str,
        got: u16,
        expected: usize,
    },
    #[error("{0} is not UTF-8")]
    BadString(&'static str),
    #[error("{0} bytes after the message component")]
    TrailingBytes(usize),
}

/// Why a value cannot be written (the output is left unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} is {len} bytes, at most 255 fit")]
    StringTooLong { what: &'static str, len: usize },
    #[error("{what}: {count} items, at most 65535 fit")]
    TooMany { what: &'static str, count: usize },
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
}

impl Header {
    /// Decodes and checks the 13-byte header at the start of `buf` (which may hold more).
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        const W: &str = "SASP header";
        let mut r = Reader::new(buf);
        let ty = get_u16(&mut r, W)?;
        if ty != HEADER_TYPE {
            return Err(DecodeError::BadHeaderType(ty));
        }
        let len = get_u16(&mut r, W)?;
        if usize::from(len) != HEADER_LEN {
            return Err(DecodeError::BadHeaderLength(len));
        }
        let version = get_u8(&mut r, W)?;
        let raw = r.u32().ok_or(DecodeError::Truncated(W))?;
        let id = r.u32().ok_or(DecodeError::Truncated(W))?;
        if raw > i32::MAX as u32 || (raw as usize) < HEADER_LEN {
            return Err(DecodeError::BadMessageLength(raw));
        }
        let message_len = raw as usize;
        if message_len > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong {
                len: message_len,
                max: MAX_MESSAGE_LEN,
            });
        }
        Ok(Header {
            version,
            message_len,
            id,
        })
    }
}

/// The message component type of a message (bytes 13–14), if present.
pub fn peek_type(buf: &[u8]) -> Option<u16> {
    let b = buf.get(HEADER_LEN..HEADER_LEN + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

impl Message {
    /// A version-1 message.
    pub fn new(id: u32, body: Body) -> Message {
        Message {
            version: VERSION,
            id,
            body,
        }
    }

    /// Appends the whole message to `out`; on error `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let r = self.encode_inner(out, start);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// The whole message as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    fn encode_inner(&self, out: &mut Vec<u8>, start: usize) -> Enc {
        put_tlv(out, HEADER_TYPE, HEADER_LEN);
        out.push(self.version);
        put_u32(out, 0); // message length, patched below
        put_u32(out, self.id);
        let ty = self.body.message_type();
        match &self.body {
            Body::RegistrationRequest { flags, groups } => {
                put_tlv(out, ty, 7);
                out.push(*flags);
                encode_list(out, "groups", groups, GroupMembers::encode)?;
            }
            Body::DeregistrationRequest {
                flags,
                reason,
                groups,
            } => {
                put_tlv(out, ty, 8);
                out.push(*flags);
                out.push(*reason);
                encode_list(out, "groups", groups, GroupMembers::encode)?;
            }
            Body::GetWeightsRequest { groups } => {
                put_tlv(out, ty, 6);
                encode_list(out, "groups", groups, Group::encode)?;
            }
            Body::GetWeightsReply {
                code,
                interval,
                groups,
            } => {
                put_tlv(out, ty, 9);
                out.push(code.0);
                put_u16(out, *interval);
                encode_list(out, "groups", groups, GroupWeights::encode)?;
            }
            Body::SendWeights { groups } => {
                put_tlv(out, ty, 6);
                encode_list(out, "groups", groups, GroupWeights::encode)?;
            }
            Body::SetLbStateRequest {
                lb_uid,
                health,
                flags,
            } => {
                put_tlv(out, ty, 7 + lb_uid.len().min(MAX_STRING_LEN));
                put_str(out, "LB UID", lb_uid)?;
                out.push(*health);
                out.push(*flags);
            }
            Body::SetMemberStateRequest { flags, groups } => {
                put_tlv(out, ty, 7);
                out.push(*flags);
                encode_list(out, "groups", groups, GroupMemberStates::encode)?;
            }
            Body::RegistrationReply { code }
            | Body::DeregistrationReply { code }
            | Body::SetLbStateReply { code }
            | Body::SetMemberStateReply { code } => {
                put_tlv(out, ty, 5);
                out.push(code.0);
            }
        }
        let len = out.len() - start;
        if len > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong {
                len,
                max: MAX_MESSAGE_LEN,
            });
        }
        out[start + 5..start + 9].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Decodes exactly one whole message (`buf` must be as long as its Message Length).
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let header = Header::decode(buf)?;
        let body = buf
            .get(HEADER_LEN..header.message_len)
            .ok_or(DecodeError::Truncated("message"))?;
        if buf.len() > header.message_len {
            return Err(DecodeError::TrailingBytes(buf.len() - header.message_len));
        }
        let mut r = Reader::new(body);
        let body = decode_body(&mut r)?;
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes(r.remaining()));
        }
        Ok(Message {
            version: header.version,
            id: header.id,
            body,
        })
    }
}

fn decode_body(r: &mut Reader<'_>) -> Result<Body, DecodeError> {
    use msg_type::*;
    let ty = r.u16().ok_or(DecodeError::Truncated("message component"))?;
    let what = type_name(ty).ok_or(DecodeError::UnknownMessageType(ty))?;
    let len = get_u16(r, what)?;
    // Everything after the component's own fixed fields is nested (see `parent_len`).
    let total = r.remaining() + 4;
    let body = match ty {
        REGISTRATION_REQUEST => {
            let flags = get_u8(r, what)?;
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, GroupMembers::decode)?;
            parent_len(what, len, 7, total - 7)?;
            Body::RegistrationRequest { flags, groups }
        }
        DEREGISTRATION_REQUEST => {
            let flags = get_u8(r, what)?;
            let reason = get_u8(r, what)?;
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, GroupMembers::decode)?;
            parent_len(what, len, 8, total - 8)?;
            Body::DeregistrationRequest {
                flags,
                reason,
                groups,
            }
        }
        GET_WEIGHTS_REQUEST => {
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, Group::decode)?;
            parent_len(what, len, 6, total - 6)?;
            Body::GetWeightsRequest { groups }
        }
        GET_WEIGHTS_REPLY => {
            let code = ReturnCode(get_u8(r, what)?);
            let interval = get_u16(r, what)?;
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, GroupWeights::decode)?;
            parent_len(what, len, 9, total - 9)?;
            Body::GetWeightsReply {
                code,
                interval,
                groups,
            }
        }
        SEND_WEIGHTS => {
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, GroupWeights::decode)?;
            parent_len(what, len, 6, total - 6)?;
            Body::SendWeights { groups }
        }
        SET_LB_STATE_REQUEST => {
            let lb_uid = get_str(r, "LB UID")?;
            let health = get_u8(r, what)?;
            let flags = get_u8(r, what)?;
            exact_len(what, len, 7 + lb_uid.len())?;
            Body::SetLbStateRequest {
                lb_uid,
                health,
                flags,
            }
        }
        SET_MEMBER_STATE_REQUEST => {
            let flags = get_u8(r, what)?;
            let count = get_u16(r, what)?;
            let groups = decode_list(r, count, GROUP_MIN, GroupMemberStates::decode)?;
            parent_len(what, len, 7, total - 7)?;
            Body::SetMemberStateRequest { flags, groups }
        }
        _ => {
            // The five replies: a return code only.
            let code = ReturnCode(get_u8(r, what)?);
            exact_len(what, len, 5)?;
            match ty {
                REGISTRATION_REPLY => Body::RegistrationReply { code },
                DEREGISTRATION_REPLY => Body::DeregistrationReply { code },
                SET_LB_STATE_REPLY => Body::SetLbStateReply { code },
                _ => Body::SetMemberStateReply { code },
            }
        }
    };
    Ok(body)
}

/// Splits a TCP byte stream into whole messages by the header's Message Length.
///
/// The buffer holds at most one incomplete message (≤ [`MAX_MESSAGE_LEN`]) plus what the
/// last [`Framer::push`] added: the shell pushes what one read returned. A header that
/// is malformed or announces an oversized message is an error as soon as its 13 bytes are
/// in; after an error the stream cannot be resynchronised and the framer stays failed.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    failed: Option<DecodeError>,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_MESSAGE_LEN {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message: `Ok(None)` when more bytes are needed, `Err` when the stream
    /// is malformed (and from then on).
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        if pending.len() < HEADER_LEN {
            return Ok(None);
        }
        let result = Header::decode(pending).and_then(|h| {
            let Some(whole) = pending.get(..h.message_len) else {
                return Ok(None);
            };
            Message::decode(whole).map(|m| Some((m, h.message_len)))
        });
        match result {
            Ok(Some((m, len))) => {
                self.start += len;
                Ok(Some(m))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }
}
