//! The Group Workload Manager side of SASP (RFC 4678), sans-IO.
//!
//! [`Gwm`] is the registry of a GWM: the load balancers it knows (keyed by LB UID), their
//! groups and registered members, what the GWM knows of each member's health (fed in by the
//! shell's probes), and operator overrides. Each accepted TCP connection is a
//! [`GwmSession`] inside it, addressed by a [`ConnId`]. The shell (the `tandem-gwm` binary)
//! only moves bytes and runs probes:
//!
//! ```text
//! on accept:                 conn = gwm.accept(now, peer)?
//! on bytes from conn:        gwm.handle_bytes(now, conn, bytes)
//! on EOF / error on conn:    gwm.handle_closed(now, conn)
//! on probe result:           gwm.set_member_health(now, member, health)
//! on weights file change:    gwm.set_overrides(now, overrides)
//! on timer (poll_timeout):   gwm.handle_timeout(now)
//! after every call, for every conn:
//!     while let Some(bytes) = gwm.poll_transmit(conn) { write bytes }
//!     if let Some(reason) = gwm.poll_close(conn) { close conn; gwm.handle_closed(now, conn) }
//! ```
//!
//! The rules (sasp-notes §2.13):
//! * A connection belongs to the LB UID of its first LB request (Set LB State, or
//!   Registration / Get Weights / ... with the LB flag). A new connection with the same LB UID
//!   replaces the old one, which is closed (IBM). A connection cannot speak for another LB UID
//!   (0x11). An LB's groups and members are kept for `lb_grace` after its connection is lost,
//!   so a quick reconnect finds them (0x40 "already registered" for a re-registration).
//! * Set LB State sets PUSH, TRUST and NOCHANGE. PUSH: Send Weights at least every
//!   `push_interval`, and at once when a weight or flag changed. NOCHANGE: every weights
//!   message (push or Get Weights reply) holds only the members whose weight or flags changed
//!   since the last message on this connection. Members may act on themselves (LB flag 0) only
//!   when their LB set TRUST (else 0x11), and only once the LB contacted the GWM (else 0x61).
//! * Return codes as §1.9: duplicates 0x40 / 0x44 / 0x46, unknown 0x41 / 0x42 / 0x43,
//!   zero-length names 0x50 / 0x51. A request is checked whole before anything is applied.
//! * Version rule (§2.1): a request of another version than 1 gets the matching reply with
//!   code 0x10 and version 1 in its header. Every reply echoes the request's Message ID.
//! * Weight Entry flags: CONTACT from the probes, QUIESCE from Set Member State or the
//!   override file (weight forced to 0), REGISTRATION for members the LB registered,
//!   CONFIDENT once the GWM knows the member (probed, and its load read if a load source is
//!   configured). Weights are 0..=65535, inversely proportional to `1 + load` within a group
//!   (the least loaded member gets 65535), 0 when out of contact, quiesced or not confident;
//!   an override's weight replaces the computed one.
//! * Bad input (a header that is not SASP, a message too long, a message that does not
//!   decode, a message a GWM never receives) closes that connection with a reason.

mod handlers;
#[cfg(test)]
mod interop_tests;
mod request;
mod status;
#[cfg(test)]
mod tests;
mod weights;
mod wire;

pub use status::{GroupStatus, GwmStatus, LbStatus, MemberStatus};
pub use weights::load_weight;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use request::{GroupWeights, WeightEntry};
use request::{Reply, ReplyKind, Request};

use crate::sasp::codec;

/// The SASP version this GWM speaks.
pub const SASP_VERSION: u8 = codec::VERSION;
/// Longest LB UID accepted (RFC 4678 §5.2: "should not be any longer than 64 bytes").
pub const MAX_LB_UID: usize = codec::MAX_LB_UID_LEN;
/// Longest SASP message accepted from a peer; a longer one closes the connection.
pub const MAX_MESSAGE: usize = codec::MAX_MESSAGE_LEN;
/// Bytes of replies and pushes a connection may have waiting before it is closed as a peer
/// that does not read.
pub const MAX_QUEUED: usize = 4 << 20;

/// LB Flags of Set LB State.
pub const LB_PUSH: u8 = codec::LB_FLAG_PUSH;
pub const LB_TRUST: u8 = codec::LB_FLAG_TRUST;
pub const LB_NOCHANGE: u8 = codec::LB_FLAG_NOCHANGE;
/// Weight Entry flags.
pub const WE_CONTACT: u8 = codec::WEIGHT_CONTACT;
pub const WE_QUIESCE: u8 = codec::WEIGHT_QUIESCE;
pub const WE_REGISTRATION: u8 = codec::WEIGHT_REGISTRATION;
pub const WE_CONFIDENT: u8 = codec::WEIGHT_CONFIDENT;

/// Return codes (RFC 4678 §7).
pub mod rc {
    pub const OK: u8 = 0x00;
    pub const NOT_UNDERSTOOD: u8 = 0x10;
    pub const NOT_ACCEPTED: u8 = 0x11;
    pub const ALREADY_REGISTERED: u8 = 0x40;
    pub const NOT_REGISTERED: u8 = 0x41;
    pub const UNKNOWN_GROUP: u8 = 0x42;
    pub const UNKNOWN_LB_UID: u8 = 0x43;
    pub const DUPLICATE_MEMBER: u8 = 0x44;
    pub const INVALID_GROUP: u8 = 0x45;
    pub const DUPLICATE_GROUP: u8 = 0x46;
    pub const GROUP_NAME_SIZE: u8 = 0x50;
    pub const LB_UID_SIZE: u8 = 0x51;
    pub const LB_NOT_CONTACTED: u8 = 0x61;
}

/// A member's identity: address, port and IP protocol (RFC 4678 §1.2). Port 0 and protocol 0
/// together are a system-level member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MemberKey {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
}

/// What the GWM's probes know of a member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberHealth {
    /// The member answered its check (TCP connect or HTTP GET).
    pub contact: bool,
    /// Its load signal (lower is better), if one is configured and was read.
    pub load: Option<f64>,
    /// The GWM knows this member's state (CONFIDENT flag).
    pub confident: bool,
    /// Why the last check or load read failed, for status.
    pub last_error: Option<String>,
}

/// An operator's override of one member (every protocol of that address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Override {
    /// The exact weight to send (still 0 when out of contact or quiesced).
    pub weight: Option<u16>,
    /// Quiesce the member (QUIESCE flag, weight 0).
    pub quiesce: bool,
}

/// Settings of a GWM.
#[derive(Debug, Clone, PartialEq)]
pub struct GwmSettings {
    /// PUSH connections get a Send Weights at least this often.
    pub push_interval: Duration,
    /// ... and at once when a weight changed, but never two pushes closer than this.
    pub push_gap: Duration,
    /// The polling interval suggested in Get Weights replies, seconds.
    pub poll_interval: u16,
    /// How long an LB's groups are kept after its connection is lost.
    pub lb_grace: Duration,
    /// Connections accepted at once (IBM's LBA: 100 load balancers).
    pub max_connections: usize,
    /// Registered members in all (beyond: Registration gets 0x45).
    pub max_members: usize,
    /// Groups of one LB (beyond: Registration gets 0x45).
    pub max_groups: usize,
    /// A connection that sent no whole message this long after it was accepted is closed
    /// (it would hold one of the `max_connections` for nothing).
    pub first_message_timeout: Duration,
}

impl Default for GwmSettings {
    fn default() -> Self {
        GwmSettings {
            push_interval: Duration::from_secs(10),
            push_gap: Duration::from_millis(100),
            poll_interval: 10,
            lb_grace: Duration::from_secs(60),
            max_connections: 100,
            max_members: 10_000,
            max_groups: 1_000,
            first_message_timeout: Duration::from_secs(30),
        }
    }
}

/// The handle of one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ConnId(pub u64);

/// Something the shell may want to log.
#[derive(Debug, Clone, PartialEq)]
pub enum GwmEvent {
    /// A connection now speaks for `lb_uid`.
    LbBound { conn: ConnId, lb_uid: String },
    /// `old` was replaced by `new` for `lb_uid` (and is being closed).
    LbReplaced {
        lb_uid: String,
        old: ConnId,
        new: ConnId,
    },
    /// An LB's state was dropped `lb_grace` after its connection was lost.
    LbExpired { lb_uid: String },
    /// A request was answered with a return code other than 0.
    Refused {
        conn: ConnId,
        request: &'static str,
        code: u8,
    },
    /// A connection is to be closed (bad input, replaced, queue full).
    Closing { conn: ConnId, reason: String },
}

/// One registered member of a group.
#[derive(Debug, Clone)]
struct Member {
    label: String,
    by_lb: bool,
    quiesce: bool,
    state: u8,
}

#[derive(Debug, Clone, Default)]
struct Group {
    members: BTreeMap<MemberKey, Member>,
}

/// What the GWM keeps per LB UID.
#[derive(Debug, Clone)]
struct LbEntry {
    health: u8,
    flags: u8,
    groups: BTreeMap<String, Group>,
    conn: Option<ConnId>,
    lost_at: Option<Instant>,
}

impl LbEntry {
    fn new() -> LbEntry {
        LbEntry {
            health: 0,
            flags: 0,
            groups: BTreeMap::new(),
            conn: None,
            lost_at: None,
        }
    }
}

/// One accepted connection (an LB, or a member acting on itself).
#[derive(Debug)]
pub struct GwmSession {
    id: ConnId,
    peer: String,
    accepted_at: Instant,
    lb_uid: Option<String>,
    inbuf: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    queued: usize,
    /// Weight and flags last sent per (group, member) on this connection (NOCHANGE).
    last_sent: BTreeMap<(String, MemberKey), (u16, u8)>,
    next_push: Option<Instant>,
    /// A change came within `push_gap` of the last push: compare again then.
    recheck_at: Option<Instant>,
    last_push: Option<Instant>,
    close: Option<String>,
    closing: bool,
    requests: u64,
    pushes: u64,
}

impl GwmSession {
    fn new(id: ConnId, peer: String, now: Instant) -> GwmSession {
        GwmSession {
            id,
            peer,
            accepted_at: now,
            lb_uid: None,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            queued: 0,
            last_sent: BTreeMap::new(),
            next_push: None,
            recheck_at: None,
            last_push: None,
            close: None,
            closing: false,
            requests: 0,
            pushes: 0,
        }
    }

    fn queue(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.queued += bytes.len();
        self.out.push_back(bytes);
        if self.queued > MAX_QUEUED {
            return Err(format!(
                "more than {MAX_QUEUED} bytes waiting: the peer does not read"
            ));
        }
        Ok(())
    }

    /// Takes whole messages out of the input buffer; `Err` on bad framing.
    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.inbuf.len() < codec::HEADER_LEN {
            return Ok(None);
        }
        let header = codec::Header::decode(&self.inbuf).map_err(|e| e.to_string())?;
        if self.inbuf.len() < header.message_len {
            return Ok(None);
        }
        let rest = self.inbuf.split_off(header.message_len);
        Ok(Some(std::mem::replace(&mut self.inbuf, rest)))
    }
}

/// The registry of a GWM: load balancers, groups, members, health, sessions.
#[derive(Debug)]
pub struct Gwm {
    settings: GwmSettings,
    lbs: BTreeMap<String, LbEntry>,
    sessions: BTreeMap<ConnId, GwmSession>,
    health: BTreeMap<MemberKey, MemberHealth>,
    overrides: BTreeMap<(IpAddr, u16), Override>,
    next_conn: u64,
    /// Something changed that may change a weight: compare with what each push session had.
    dirty: bool,
    events: VecDeque<GwmEvent>,
}

/// Refusal of a new connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} connections already open (the limit)")]
pub struct TooManyConnections(pub usize);

impl Gwm {
    pub fn new(settings: GwmSettings) -> Gwm {
        Gwm {
            settings,
            lbs: BTreeMap::new(),
            sessions: BTreeMap::new(),
            health: BTreeMap::new(),
            overrides: BTreeMap::new(),
            next_conn: 1,
            dirty: false,
            events: VecDeque::new(),
        }
    }

    pub fn settings(&self) -> &GwmSettings {
        &self.settings
    }

    /// A new connection from `peer` (shown in status).
    pub fn accept(&mut self, now: Instant, peer: String) -> Result<ConnId, TooManyConnections> {
        if self.sessions.len() >= self.settings.max_connections {
            return Err(TooManyConnections(self.sessions.len()));
        }
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.sessions.insert(id, GwmSession::new(id, peer, now));
        Ok(id)
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<ConnId> {
        self.sessions.keys().copied().collect()
    }

    /// Bytes received on `conn`.
    pub fn handle_bytes(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.closing {
            return;
        }
        session.inbuf.extend_from_slice(bytes);
        loop {
            let Some(session) = self.sessions.get_mut(&conn) else {
                return;
            };
            if session.closing {
                break;
            }
            match session.next_frame() {
                Ok(Some(frame)) => {
                    session.requests += 1;
                    self.handle_frame(now, conn, &frame);
                }
                Ok(None) => break,
                Err(reason) => {
                    self.close(conn, reason);
                    break;
                }
            }
        }
        self.flush(now);
    }

    /// The connection is gone (EOF, error, or closed by the shell after `poll_close`).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        if let Some(uid) = session.lb_uid
            && let Some(lb) = self.lbs.get_mut(&uid)
            && lb.conn == Some(conn)
        {
            lb.conn = None;
            lb.lost_at = Some(now);
        }
    }

    /// Timers: pushes due, LB state past its grace, connections that never spoke.
    pub fn handle_timeout(&mut self, now: Instant) {
        let limit = self.settings.first_message_timeout;
        let mute: Vec<ConnId> = self
            .sessions
            .values()
            .filter(|s| !s.closing && s.requests == 0 && now >= s.accepted_at + limit)
            .map(|s| s.id)
            .collect();
        for conn in mute {
            self.close(
                conn,
                format!("no SASP message within {limit:?} of connecting"),
            );
        }
        let grace = self.settings.lb_grace;
        let expired: Vec<String> = self
            .lbs
            .iter()
            .filter(|(_, lb)| lb.conn.is_none() && lb.lost_at.is_some_and(|t| now >= t + grace))
            .map(|(uid, _)| uid.clone())
            .collect();
        let any = !expired.is_empty();
        for uid in expired {
            self.lbs.remove(&uid);
            self.events.push_back(GwmEvent::LbExpired { lb_uid: uid });
        }
        if any {
            self.prune_health();
        }
        self.flush(now);
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pushes = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .flat_map(|s| [s.next_push, s.recheck_at])
            .flatten();
        let expiries = self
            .lbs
            .values()
            .filter(|lb| lb.conn.is_none())
            .filter_map(|lb| lb.lost_at.map(|t| t + self.settings.lb_grace));
        let mute = self
            .sessions
            .values()
            .filter(|s| !s.closing && s.requests == 0)
            .map(|s| s.accepted_at + self.settings.first_message_timeout);
        pushes.chain(expiries).chain(mute).min()
    }

    /// The next message to write on `conn`.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let session = self.sessions.get_mut(&conn)?;
        let bytes = session.out.pop_front()?;
        session.queued -= bytes.len();
        Some(bytes)
    }

    /// `Some(reason)` once: close `conn` (after writing what `poll_transmit` gave).
    pub fn poll_close(&mut self, conn: ConnId) -> Option<String> {
        self.sessions.get_mut(&conn)?.close.take()
    }

    pub fn poll_event(&mut self) -> Option<GwmEvent> {
        self.events.pop_front()
    }

    /// Every member registered by any LB: what the shell probes.
    pub fn probe_targets(&self) -> BTreeSet<MemberKey> {
        self.lbs
            .values()
            .flat_map(|lb| lb.groups.values())
            .flat_map(|g| g.members.keys().copied())
            .collect()
    }

    /// A probe's result (members no longer registered are forgotten when they are
    /// deregistered or their LB expires).
    pub fn set_member_health(&mut self, now: Instant, member: MemberKey, health: MemberHealth) {
        if self.health.get(&member) != Some(&health) {
            self.health.insert(member, health);
            self.dirty = true;
        }
        self.flush(now);
    }

    /// Replaces the operator overrides (the weights file).
    pub fn set_overrides(&mut self, now: Instant, overrides: BTreeMap<(IpAddr, u16), Override>) {
        if self.overrides != overrides {
            self.overrides = overrides;
            self.dirty = true;
        }
        self.flush(now);
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        if let Some(session) = self.sessions.get_mut(&conn)
            && !session.closing
        {
            session.closing = true;
            session.close = Some(reason.clone());
            self.events.push_back(GwmEvent::Closing { conn, reason });
        }
    }

    fn queue(&mut self, conn: ConnId, bytes: Result<Vec<u8>, String>) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.closing {
            return;
        }
        if let Err(reason) = bytes.and_then(|b| session.queue(b)) {
            self.close(conn, reason);
        }
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: &[u8]) {
        let version = frame[4];
        let id = u32::from_be_bytes([frame[9], frame[10], frame[11], frame[12]]);
        if version != SASP_VERSION {
            // §2.1: answer with 0x10 and our version, if we know which reply it wants.
            let ty = codec::peek_type(frame);
            match ty.and_then(ReplyKind::for_request_type) {
                Some(kind) => {
                    let reply = Reply::error(kind, id, rc::NOT_UNDERSTOOD);
                    self.events.push_back(GwmEvent::Refused {
                        conn,
                        request: kind.request_name(),
                        code: rc::NOT_UNDERSTOOD,
                    });
                    self.queue(conn, wire::encode_reply(&reply));
                }
                None => self.close(
                    conn,
                    format!("version {version} message of unknown type {ty:04x?}"),
                ),
            }
            return;
        }
        let request = match wire::decode(frame) {
            Ok(request) => request,
            Err(reason) => {
                self.close(conn, reason);
                return;
            }
        };
        let kind = request.reply_kind();
        let reply = match request {
            Request::SetLbState { uid, health, flags } => {
                Reply::code(kind, id, self.set_lb_state(now, conn, uid, health, flags))
            }
            Request::Registration { lb_flag, groups } => {
                Reply::code(kind, id, self.registration(now, conn, lb_flag, groups))
            }
            Request::Deregistration {
                lb_flag, groups, ..
            } => Reply::code(kind, id, self.deregistration(now, conn, lb_flag, groups)),
            Request::SetMemberState { lb_flag, groups } => {
                Reply::code(kind, id, self.set_member_state(now, conn, lb_flag, groups))
            }
            Request::GetWeights { groups } => match self.get_weights(now, conn, &groups) {
                Ok(weights) => Reply {
                    kind,
                    id,
                    code: rc::OK,
                    interval: self.settings.poll_interval,
                    groups: weights,
                },
                Err(code) => Reply::error(kind, id, code),
            },
        };
        if reply.code != rc::OK {
            self.events.push_back(GwmEvent::Refused {
                conn,
                request: kind.request_name(),
                code: reply.code,
            });
        }
        self.queue(conn, wire::encode_reply(&reply));
    }
}
