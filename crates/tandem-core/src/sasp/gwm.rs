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

mod request;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use request::{GroupRef, MemberSpec, Reply, ReplyKind, Request, StateSpec};
pub use request::{GroupWeights, WeightEntry};

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
}

impl Default for GwmSettings {
    fn default() -> Self {
        GwmSettings {
            push_interval: Duration::from_secs(10),
            poll_interval: 10,
            lb_grace: Duration::from_secs(60),
            max_connections: 100,
            max_members: 10_000,
            max_groups: 1_000,
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
    lb_uid: Option<String>,
    inbuf: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    queued: usize,
    /// Weight and flags last sent per (group, member) on this connection (NOCHANGE).
    last_sent: BTreeMap<(String, MemberKey), (u16, u8)>,
    next_push: Option<Instant>,
    close: Option<String>,
    closing: bool,
    requests: u64,
    pushes: u64,
}

impl GwmSession {
    fn new(id: ConnId, peer: String) -> GwmSession {
        GwmSession {
            id,
            peer,
            lb_uid: None,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            queued: 0,
            last_sent: BTreeMap::new(),
            next_push: None,
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
    pub fn accept(&mut self, _now: Instant, peer: String) -> Result<ConnId, TooManyConnections> {
        if self.sessions.len() >= self.settings.max_connections {
            return Err(TooManyConnections(self.sessions.len()));
        }
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.sessions.insert(id, GwmSession::new(id, peer));
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

    /// Timers: pushes due, LB state past its grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        let grace = self.settings.lb_grace;
        let expired: Vec<String> = self
            .lbs
            .iter()
            .filter(|(_, lb)| lb.conn.is_none() && lb.lost_at.is_some_and(|t| now >= t + grace))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in expired {
            self.lbs.remove(&uid);
            self.events.push_back(GwmEvent::LbExpired { lb_uid: uid });
        }
        self.flush(now);
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pushes = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .filter_map(|s| s.next_push);
        let expiries = self
            .lbs
            .values()
            .filter(|lb| lb.conn.is_none())
            .filter_map(|lb| lb.lost_at.map(|t| t + self.settings.lb_grace));
        pushes.chain(expiries).min()
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

    /// A probe's result; forgets members no longer registered.
    pub fn set_member_health(&mut self, now: Instant, member: MemberKey, health: MemberHealth) {
        let targets = self.probe_targets();
        self.health.retain(|k, _| targets.contains(k));
        if !targets.contains(&member) {
            return;
        }
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

    /// Binds `conn` to `uid` (replacing another connection of that UID).
    fn bind(&mut self, now: Instant, conn: ConnId, uid: &str) {
        let push_interval = self.settings.push_interval;
        let lb = self.lbs.entry(uid.to_owned()).or_insert_with(LbEntry::new);
        let old = lb.conn.replace(conn);
        lb.lost_at = None;
        let push = lb.flags & LB_PUSH != 0;
        if let Some(session) = self.sessions.get_mut(&conn)
            && session.lb_uid.is_none()
        {
            session.lb_uid = Some(uid.to_owned());
            session.next_push = push.then(|| now + push_interval);
            self.dirty = true;
            self.events.push_back(GwmEvent::LbBound {
                conn,
                lb_uid: uid.to_owned(),
            });
        }
        if let Some(old) = old
            && old != conn
        {
            self.events.push_back(GwmEvent::LbReplaced {
                lb_uid: uid.to_owned(),
                old,
                new: conn,
            });
            self.close(
                old,
                format!("replaced by a new connection of LB UID {uid:?}"),
            );
        }
    }

    /// Checks that `conn` may act for `uid` (LB flag set) or as a member of it (LB flag 0).
    fn authority(&self, conn: ConnId, lb_flag: bool, uid: &str) -> Result<(), u8> {
        if uid.is_empty() || uid.len() > MAX_LB_UID {
            return Err(rc::LB_UID_SIZE);
        }
        let session_uid = self.sessions.get(&conn).and_then(|s| s.lb_uid.as_deref());
        if lb_flag {
            match session_uid {
                Some(own) if own != uid => Err(rc::NOT_ACCEPTED),
                _ => Ok(()),
            }
        } else {
            // A member acting on itself: needs its LB to have contacted us, with TRUST.
            if session_uid.is_some() {
                return Err(rc::NOT_ACCEPTED);
            }
            match self.lbs.get(uid) {
                None => Err(rc::LB_NOT_CONTACTED),
                Some(lb) if lb.flags & LB_TRUST == 0 => Err(rc::NOT_ACCEPTED),
                Some(_) => Ok(()),
            }
        }
    }

    /// All groups of one request must name one LB UID; returns it.
    fn single_uid<'a>(groups: impl Iterator<Item = &'a GroupRef>) -> Result<Option<String>, u8> {
        let mut uid: Option<&str> = None;
        for g in groups {
            match uid {
                None => uid = Some(&g.uid),
                Some(u) if u != g.uid => return Err(rc::NOT_ACCEPTED),
                Some(_) => {}
            }
        }
        Ok(uid.map(str::to_owned))
    }

    fn set_lb_state(
        &mut self,
        now: Instant,
        conn: ConnId,
        uid: String,
        health: u8,
        flags: u8,
    ) -> u8 {
        if let Err(code) = self.authority(conn, true, &uid) {
            return code;
        }
        self.bind(now, conn, &uid);
        let lb = self.lbs.get_mut(&uid).expect("bound above");
        let was_push = lb.flags & LB_PUSH != 0;
        lb.health = health;
        lb.flags = flags;
        let push = flags & LB_PUSH != 0;
        if let Some(session) = self.sessions.get_mut(&conn) {
            if push && !was_push {
                session.next_push = Some(now + self.settings.push_interval);
            } else if !push {
                session.next_push = None;
            }
        }
        self.dirty = true;
        rc::OK
    }

    fn registration(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let mut seen = BTreeSet::new();
        let mut added = 0usize;
        for (group, members) in &groups {
            if group.name.is_empty() {
                return rc::GROUP_NAME_SIZE;
            }
            let existing = self.lbs.get(&uid).and_then(|lb| lb.groups.get(&group.name));
            for m in members {
                if !seen.insert((group.name.as_str(), m.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if existing.is_some_and(|g| g.members.contains_key(&m.key)) {
                    return rc::ALREADY_REGISTERED;
                }
                added += 1;
            }
        }
        let total: usize = self
            .lbs
            .values()
            .flat_map(|lb| lb.groups.values())
            .map(|g| g.members.len())
            .sum();
        if total + added > self.settings.max_members {
            return rc::INVALID_GROUP;
        }
        let mut names: BTreeSet<&str> = self
            .lbs
            .get(&uid)
            .map(|lb| lb.groups.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.extend(groups.iter().map(|(g, _)| g.name.as_str()));
        if names.len() > self.settings.max_groups {
            return rc::INVALID_GROUP;
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.entry(uid).or_insert_with(LbEntry::new);
        for (group, members) in groups {
            let g = lb.groups.entry(group.name).or_default();
            for m in members {
                g.members.insert(
                    m.key,
                    Member {
                        label: m.label,
                        by_lb: lb_flag,
                        quiesce: false,
                        state: 0,
                    },
                );
            }
        }
        self.dirty = true;
        rc::OK
    }

    fn deregistration(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let Some(lb) = self.lbs.get(&uid) else {
            return rc::UNKNOWN_LB_UID;
        };
        let mut seen_groups = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (group, members) in &groups {
            if !seen_groups.insert(group.name.as_str()) {
                return rc::DUPLICATE_GROUP;
            }
            if group.name.is_empty() {
                if !members.is_empty() {
                    return rc::UNKNOWN_GROUP;
                }
                continue;
            }
            let Some(existing) = lb.groups.get(&group.name) else {
                return rc::UNKNOWN_GROUP;
            };
            for m in members {
                if !seen.insert((group.name.as_str(), m.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if !existing.members.contains_key(&m.key) {
                    return rc::NOT_REGISTERED;
                }
            }
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.get_mut(&uid).expect("checked above");
        for (group, members) in groups {
            if group.name.is_empty() {
                lb.groups.clear();
            } else if members.is_empty() {
                lb.groups.remove(&group.name);
            } else if let Some(g) = lb.groups.get_mut(&group.name) {
                for m in members {
                    g.members.remove(&m.key);
                }
            }
        }
        // What is no longer registered is no longer "last sent": a re-registration is new.
        let lb = &self.lbs[&uid];
        for session in self.sessions.values_mut() {
            if session.lb_uid.as_deref() == Some(uid.as_str()) {
                session.last_sent.retain(|(group, key), _| {
                    lb.groups
                        .get(group)
                        .is_some_and(|g| g.members.contains_key(key))
                });
            }
        }
        self.dirty = true;
        rc::OK
    }

    fn set_member_state(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<StateSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let Some(lb) = self.lbs.get(&uid) else {
            return rc::UNKNOWN_LB_UID;
        };
        let mut seen_groups = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (group, members) in &groups {
            if group.name.is_empty() {
                return rc::GROUP_NAME_SIZE;
            }
            if !seen_groups.insert(group.name.as_str()) {
                return rc::DUPLICATE_GROUP;
            }
            let Some(existing) = lb.groups.get(&group.name) else {
                return rc::UNKNOWN_GROUP;
            };
            for m in members {
                if !seen.insert((group.name.as_str(), m.member.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if !existing.members.contains_key(&m.member.key) {
                    return rc::NOT_REGISTERED;
                }
            }
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.get_mut(&uid).expect("checked above");
        for (group, members) in groups {
            let g = lb.groups.get_mut(&group.name).expect("checked above");
            for m in members {
                let entry = g.members.get_mut(&m.member.key).expect("checked above");
                entry.quiesce = m.quiesce;
                entry.state = m.state;
            }
        }
        self.dirty = true;
        rc::OK
    }

    fn get_weights(
        &mut self,
        now: Instant,
        conn: ConnId,
        groups: &[GroupRef],
    ) -> Result<Vec<GroupWeights>, u8> {
        let uid = match Self::single_uid(groups.iter()) {
            Ok(Some(uid)) => uid,
            Ok(None) => return Ok(Vec::new()),
            Err(code) => return Err(code),
        };
        self.authority(conn, true, &uid)?;
        let lb = self.lbs.get(&uid).ok_or(rc::UNKNOWN_LB_UID)?;
        let mut names = BTreeSet::new();
        let mut wanted: Vec<String> = Vec::new();
        for g in groups {
            if !names.insert(g.name.as_str()) {
                return Err(rc::DUPLICATE_GROUP);
            }
            if g.name.is_empty() {
                wanted.extend(lb.groups.keys().cloned());
            } else if lb.groups.contains_key(&g.name) {
                wanted.push(g.name.clone());
            } else {
                return Err(rc::UNKNOWN_GROUP);
            }
        }
        wanted.sort();
        wanted.dedup();
        self.bind(now, conn, &uid);
        let nochange = self.lbs[&uid].flags & LB_NOCHANGE != 0;
        Ok(self.weights_for(conn, &uid, &wanted, nochange))
    }

    /// The weights of `groups` of `uid` for `conn`; updates what it was last sent. With
    /// `changed_only`, members whose weight and flags were last sent as they are now are left
    /// out (their group stays, possibly empty).
    fn weights_for(
        &mut self,
        conn: ConnId,
        uid: &str,
        groups: &[String],
        changed_only: bool,
    ) -> Vec<GroupWeights> {
        let mut out = Vec::new();
        for name in groups {
            let entries = self.group_entries(uid, name);
            let Some(session) = self.sessions.get_mut(&conn) else {
                break;
            };
            let mut sent = Vec::new();
            for e in entries {
                let key = (name.clone(), e.member);
                let now = (e.weight, e.flags);
                let before = session.last_sent.insert(key, now);
                if !changed_only || before != Some(now) {
                    sent.push(e);
                }
            }
            out.push(GroupWeights {
                lb_uid: uid.to_owned(),
                group: name.clone(),
                entries: sent,
            });
        }
        out
    }

    /// The current weight entries of one group.
    fn group_entries(&self, uid: &str, group: &str) -> Vec<WeightEntry> {
        let Some(g) = self.lbs.get(uid).and_then(|lb| lb.groups.get(group)) else {
            return Vec::new();
        };
        let min_load = g
            .members
            .keys()
            .filter_map(|k| self.health.get(k))
            .filter(|h| h.contact)
            .filter_map(|h| h.load)
            .fold(None, |acc: Option<f64>, l| {
                Some(acc.map_or(l, |a| a.min(l)))
            });
        g.members
            .iter()
            .map(|(key, m)| {
                let health = self.health.get(key);
                let ov = self.overrides.get(&(key.address, key.port));
                let contact = health.is_some_and(|h| h.contact);
                let confident =
                    health.is_some_and(|h| h.confident) || ov.is_some_and(|o| o.weight.is_some());
                let quiesce = m.quiesce || ov.is_some_and(|o| o.quiesce);
                let mut flags = 0;
                if contact {
                    flags |= WE_CONTACT;
                }
                if quiesce {
                    flags |= WE_QUIESCE;
                }
                if m.by_lb {
                    flags |= WE_REGISTRATION;
                }
                if confident {
                    flags |= WE_CONFIDENT;
                }
                let weight = if quiesce || !contact || !confident {
                    0
                } else if let Some(w) = ov.and_then(|o| o.weight) {
                    w
                } else {
                    load_weight(health.and_then(|h| h.load), min_load)
                };
                WeightEntry {
                    member: *key,
                    label: m.label.clone(),
                    state: m.state,
                    flags,
                    weight,
                }
            })
            .collect()
    }

    /// Sends what PUSH connections are due: at once when something changed, else when their
    /// push interval is up.
    fn flush(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        let conns: Vec<(ConnId, String)> = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .filter_map(|s| Some((s.id, s.lb_uid.clone()?)))
            .collect();
        for (conn, uid) in conns {
            let Some(lb) = self.lbs.get(&uid) else {
                continue;
            };
            if lb.flags & LB_PUSH == 0 || lb.conn != Some(conn) {
                continue;
            }
            let nochange = lb.flags & LB_NOCHANGE != 0;
            let names: Vec<String> = lb.groups.keys().cloned().collect();
            let due = self.sessions[&conn].next_push.is_some_and(|t| now >= t);
            let changed = dirty && {
                let session = &self.sessions[&conn];
                names.iter().any(|name| {
                    self.group_entries(&uid, name).iter().any(|e| {
                        session.last_sent.get(&(name.clone(), e.member))
                            != Some(&(e.weight, e.flags))
                    })
                })
            };
            if !due && !changed {
                continue;
            }
            let weights = self.weights_for(conn, &uid, &names, nochange);
            let push_interval = self.settings.push_interval;
            if let Some(session) = self.sessions.get_mut(&conn) {
                session.next_push = Some(now + push_interval);
                session.pushes += 1;
            }
            self.queue(conn, wire::encode_send_weights(&weights));
        }
    }

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

/// A weight from a load: 65535 for the least loaded member of the group, `65535 × (1 + min)
/// / (1 + load)` for the others; 65535 when there is no load signal.
pub fn load_weight(load: Option<f64>, min_load: Option<f64>) -> u16 {
    match (load, min_load) {
        (Some(load), Some(min)) => {
            let load = load.max(0.0);
            let min = min.max(0.0).min(load);
            let w = 65535.0 * (1.0 + min) / (1.0 + load);
            w.round().clamp(1.0, 65535.0) as u16
        }
        _ => 65535,
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
