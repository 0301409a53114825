//! One load balancer ↔ GWM conversation over one TCP connection, sans IO.
//!
//! The shell (`tandemd::health::sasp`) connects, then drives an [`LbSession`]:
//!
//! ```text
//! session.handle_connected(now)                       once the TCP (or TLS) stream is up
//! on bytes read:      session.handle_bytes(now, &bytes)
//! on EOF / error:     session.handle_close(reason)
//! on the timer:       session.handle_timeout(now)     when now ≥ session.poll_timeout()
//! configuration:      set_groups(now, groups), set_quiesce(now, member, bool), shutdown(now)
//! after every call:   write every session.poll_transmit(); act on every session.poll_event()
//! ```
//!
//! On connect it queues Set LB State (PUSH and NOCHANGE as configured, health 0x7F), one
//! Registration per group (members chunked so that a message stays under the size limit),
//! Set Member State for quiesced members, and one Get Weights. In pull mode it polls Get
//! Weights at the GWM's suggested interval (from the Get Weights reply) unless overridden.
//! In push mode it merges Send Weights; when no message came from the GWM for one interval
//! it sends a Get Weights as a liveness check (RFC 4678 allows it), so a GWM that pushes only
//! on change is not mistaken for a silent one. A request without reply within
//! `reply_timeout`, or nothing at all from the GWM for 3 × the interval, closes the session
//! ("silent GWM"). Any malformed or unexpected message closes it with a reason.
//!
//! Weights are merged: every weights message is a delta (NOCHANGE), a member missing from a
//! message keeps its last entry. Each [`LbEvent::Weights`] carries the whole merged table of
//! the group. Entries for members or groups this LB did not register are ignored (counted).

use super::codec::{
    Body, DecodeError, FLAG_LB, Framer, Group, GroupMemberStates, GroupMembers, GroupWeights,
    LB_FLAG_NOCHANGE, LB_FLAG_PUSH, MAX_LB_UID_LEN, MAX_STRING_LEN, Member, MemberState, Message,
    REASON_LEARNED, REASON_NONE, ReturnCode, STATE_QUIESCE, VERSION, WeightEntry,
};
use crate::config::{SaspGwm, SaspMode};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

mod connection;
mod weights;

pub use connection::{BACKOFF_MAX, BACKOFF_MIN, Backoff, GwmState};
pub use weights::{
    MemberReport, convert_weight, default_lb_uid, effective_weight, group_confident, group_name,
};

/// IP protocol number of TCP members.
pub const PROTOCOL_TCP: u8 = 6;
/// IP protocol number of UDP members.
pub const PROTOCOL_UDP: u8 = 17;
/// LB Health sent in Set LB State (the most healthy value).
pub const LB_HEALTH: u8 = 0x7f;
/// Interval used when the GWM suggests none (0) and none is configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest interval honoured (a GWM suggesting 0 s or an override of 0.01 s).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Default time a request may wait for its reply.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Members per Registration message (keeps a message far below the size limit).
pub const MEMBERS_PER_MESSAGE: usize = 8_000;

/// A member's identity within a group: (address, port, protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MemberId {
    pub address: IpAddr,
    pub port: u16,
    /// IP protocol number (`PROTOCOL_TCP`, `PROTOCOL_UDP`; 0 with port 0 = system member).
    pub protocol: u8,
}

impl MemberId {
    pub fn new(address: IpAddr, port: u16, protocol: u8) -> MemberId {
        MemberId {
            address,
            port,
            protocol,
        }
    }

    /// The Member Data this LB sends (no label).
    pub fn to_member(self) -> Member {
        Member::new(self.address, self.port, self.protocol)
    }

    /// The identity of received Member Data (its label is ignored).
    pub fn of(m: &Member) -> MemberId {
        MemberId::new(m.address, m.port, m.protocol)
    }
}

/// The groups of a session: group name → members.
pub type Groups = BTreeMap<String, BTreeSet<MemberId>>;

/// Settings of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct LbSettings {
    /// 1–64 bytes, distinct per HA node.
    pub lb_uid: String,
    pub mode: SaspMode,
    /// NOCHANGE: the GWM sends changed members only.
    pub changed_only: bool,
    /// Poll / liveness interval overriding the GWM's suggestion.
    pub interval: Option<Duration>,
    /// Time a request may wait for its reply.
    pub reply_timeout: Duration,
}

impl LbSettings {
    /// The settings of a `sasp add ... gwm` entry.
    pub fn new(lb_uid: &str, gwm: &SaspGwm) -> LbSettings {
        LbSettings {
            lb_uid: lb_uid.to_owned(),
            mode: gwm.mode,
            changed_only: gwm.changed_only,
            interval: gwm
                .interval
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(|s| Duration::from_secs_f64(s.min(86_400.0))),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// Why a session cannot be created or its groups changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("LB UID must be 1 to 64 bytes, {0:?} is not")]
    LbUid(String),
    #[error("group name must be 1 to 255 bytes, {0:?} is not")]
    GroupName(String),
}

/// What a session tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbEvent {
    /// Set LB State and every Registration were answered: the session is connected.
    Registered,
    /// The merged weights of a group after a Send Weights or Get Weights reply.
    Weights {
        group: String,
        entries: BTreeMap<MemberId, WeightEntry>,
    },
    /// The GWM refused a request; the session goes on.
    Error {
        request: &'static str,
        code: ReturnCode,
    },
    /// The session is over (the owner closes the connection; a new one needs a new
    /// session). `reason` is for the log.
    Closed { reason: String },
}

/// The session's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Created, not yet connected.
    Idle,
    Registering,
    Connected,
    /// `shutdown` sent the DeRegistration; waiting for its reply.
    ShuttingDown,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    SetLbState,
    Registration,
    Deregistration,
    GetWeights,
    SetMemberState,
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::SetLbState => "Set LB State",
            Request::Registration => "Registration",
            Request::Deregistration => "DeRegistration",
            Request::GetWeights => "Get Weights",
            Request::SetMemberState => "Set Member State",
        }
    }

    fn matches(self, body: &Body) -> bool {
        matches!(
            (self, body),
            (Request::SetLbState, Body::SetLbStateReply { .. })
                | (Request::Registration, Body::RegistrationReply { .. })
                | (Request::Deregistration, Body::DeregistrationReply { .. })
                | (Request::GetWeights, Body::GetWeightsReply { .. })
                | (Request::SetMemberState, Body::SetMemberStateReply { .. })
        )
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LbCounters {
    pub messages_sent: u64,
    pub messages_received: u64,
    pub weights_messages: u64,
    /// Weight entries for a group or member this LB did not register.
    pub ignored_entries: u64,
    pub error_replies: u64,
}

/// One LB ↔ GWM conversation (see the module doc).
#[derive(Debug)]
pub struct LbSession {
    settings: LbSettings,
    groups: Groups,
    quiesced: BTreeSet<MemberId>,
    state: SessionState,
    framer: Framer,
    next_id: u32,
    /// Requests sent and not answered: id → (kind, sent at).
    pending: BTreeMap<u32, (Request, Instant)>,
    /// The GWM's suggested interval (Get Weights reply), if it gave one.
    gwm_interval: Option<Duration>,
    /// Last time anything came from the GWM.
    last_heard: Option<Instant>,
    /// Pull: when the next Get Weights is due. Push: when a liveness Get Weights is due.
    next_poll: Option<Instant>,
    weights: BTreeMap<String, BTreeMap<MemberId, WeightEntry>>,
    /// ID of the DeRegistration `shutdown` sent.
    shutdown_id: Option<u32>,
    /// Group of each Registration in flight, by message ID.
    registering: BTreeMap<u32, String>,
    /// Groups whose Registration the GWM refused: left out of Get Weights (one unknown
    /// group would spoil the whole reply) until a Registration succeeds.
    refused: BTreeSet<String>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<LbEvent>,
    counters: LbCounters,
}

fn check_groups(groups: &Groups) -> Result<(), SettingsError> {
    match groups
        .keys()
        .find(|n| n.is_empty() || n.len() > MAX_STRING_LEN)
    {
        Some(n) => Err(SettingsError::GroupName(n.clone())),
        None => Ok(()),
    }
}

impl LbSession {
    pub fn new(settings: LbSettings, groups: Groups) -> Result<LbSession, SettingsError> {
        if settings.lb_uid.is_empty() || settings.lb_uid.len() > MAX_LB_UID_LEN {
            return Err(SettingsError::LbUid(settings.lb_uid.clone()));
        }
        check_groups(&groups)?;
        Ok(LbSession {
            settings,
            groups,
            quiesced: BTreeSet::new(),
            state: SessionState::Idle,
            framer: Framer::new(),
            next_id: 1,
            pending: BTreeMap::new(),
            gwm_interval: None,
            last_heard: None,
            next_poll: None,
            weights: BTreeMap::new(),
            shutdown_id: None,
            registering: BTreeMap::new(),
            refused: BTreeSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            counters: LbCounters::default(),
        })
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn settings(&self) -> &LbSettings {
        &self.settings
    }

    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The merged weights received, per group.
    pub fn weights(&self) -> &BTreeMap<String, BTreeMap<MemberId, WeightEntry>> {
        &self.weights
    }

    pub fn counters(&self) -> LbCounters {
        self.counters
    }

    pub fn quiesced(&self) -> &BTreeSet<MemberId> {
        &self.quiesced
    }

    /// The interval in force: the override, else the GWM's suggestion, else the default.
    pub fn interval(&self) -> Duration {
        self.settings
            .interval
            .or(self.gwm_interval)
            .unwrap_or(DEFAULT_INTERVAL)
            .max(MIN_INTERVAL)
    }

    fn open(&self) -> bool {
        matches!(
            self.state,
            SessionState::Registering | SessionState::Connected
        )
    }

    /// The TCP stream is up: queues Set LB State, the Registrations, Set Member State of
    /// quiesced members and one Get Weights.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != SessionState::Idle {
            return;
        }
        self.state = SessionState::Registering;
        self.last_heard = Some(now);
        let mut flags = 0;
        if self.settings.mode == SaspMode::Push {
            flags |= LB_FLAG_PUSH;
        }
        if self.settings.changed_only {
            flags |= LB_FLAG_NOCHANGE;
        }
        let body = Body::SetLbStateRequest {
            lb_uid: self.settings.lb_uid.clone(),
            health: LB_HEALTH,
            flags,
        };
        self.send(now, Request::SetLbState, body);
        let all: Vec<(String, Vec<MemberId>)> = self
            .groups
            .iter()
            .map(|(g, m)| (g.clone(), m.iter().copied().collect()))
            .collect();
        for (group, members) in &all {
            self.register(now, group, members);
        }
        let quiesced: Vec<MemberId> = self.quiesced.iter().copied().collect();
        for m in quiesced {
            self.send_member_state(now, m, true);
        }
        self.get_weights(now);
    }

    /// Bytes read from the GWM.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(
            self.state,
            SessionState::Registering | SessionState::Connected | SessionState::ShuttingDown
        ) {
            return;
        }
        self.framer.push(bytes);
        loop {
            match self.framer.next_message() {
                Ok(Some(m)) => {
                    self.counters.messages_received += 1;
                    self.last_heard = Some(now);
                    if let Err(reason) = self.handle_message(now, m) {
                        self.close(reason);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.close(bad(&e));
                }
            }
            if self.state == SessionState::Closed {
                break;
            }
        }
    }

    /// The connection ended (EOF or an I/O error, described by `reason`).
    pub fn handle_close(&mut self, reason: &str) {
        if self.state == SessionState::ShuttingDown {
            self.close(format!("closed during shutdown: {reason}"));
        } else {
            self.close(reason.to_owned());
        }
    }

    /// When [`LbSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !matches!(
            self.state,
            SessionState::Registering | SessionState::Connected | SessionState::ShuttingDown
        ) {
            return None;
        }
        let reply = self
            .pending
            .values()
            .map(|(_, at)| *at + self.settings.reply_timeout)
            .min();
        let silence = self.last_heard.map(|t| t + 3 * self.interval());
        [reply, silence, self.next_poll].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(
            self.state,
            SessionState::Registering | SessionState::Connected | SessionState::ShuttingDown
        ) {
            return;
        }
        if let Some((kind, at)) = self
            .pending
            .values()
            .find(|(_, at)| now >= *at + self.settings.reply_timeout)
        {
            let waited = now.saturating_duration_since(*at);
            let reason = format!(
                "silent GWM: no reply to {} within {:.1} s",
                kind.name(),
                waited.as_secs_f64()
            );
            self.close(reason);
            return;
        }
        if let Some(t) = self.last_heard
            && now >= t + 3 * self.interval()
        {
            let reason = format!(
                "silent GWM: nothing received for {:.1} s (3 × interval {:.1} s)",
                now.saturating_duration_since(t).as_secs_f64(),
                self.interval().as_secs_f64()
            );
            self.close(reason);
            return;
        }
        if let Some(t) = self.next_poll
            && now >= t
        {
            self.next_poll = None;
            if !self
                .pending
                .values()
                .any(|(k, _)| *k == Request::GetWeights)
            {
                self.get_weights(now);
            }
        }
    }

    /// The next message to write to the GWM.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LbEvent> {
        self.events.pop_front()
    }

    /// New groups or members: Registration of new members (new groups too), DeRegistration
    /// (reason 0x01) of removed members and groups. Weights of removed members are dropped.
    pub fn set_groups(&mut self, now: Instant, groups: Groups) -> Result<(), SettingsError> {
        check_groups(&groups)?;
        let old = std::mem::replace(&mut self.groups, groups);
        let empty = BTreeSet::new();
        let mut gone: Vec<GroupMembers> = Vec::new();
        let mut added: Vec<(String, Vec<MemberId>)> = Vec::new();
        for (name, members) in &old {
            match self.groups.get(name) {
                None => gone.push(GroupMembers {
                    group: self.group(name),
                    members: Vec::new(),
                }),
                Some(now_members) => {
                    let removed: Vec<Member> = members
                        .difference(now_members)
                        .map(|m| m.to_member())
                        .collect();
                    if !removed.is_empty() {
                        gone.push(GroupMembers {
                            group: self.group(name),
                            members: removed,
                        });
                    }
                }
            }
        }
        for (name, members) in &self.groups {
            let before = old.get(name).unwrap_or(&empty);
            let new: Vec<MemberId> = members.difference(before).copied().collect();
            if !new.is_empty() {
                added.push((name.clone(), new));
            }
        }
        // Forget weights of what is gone.
        let mut changed = Vec::new();
        self.weights.retain(|g, table| {
            let Some(members) = self.groups.get(g) else {
                return false;
            };
            let n = table.len();
            table.retain(|m, _| members.contains(m));
            if table.len() != n {
                changed.push(g.clone());
            }
            true
        });
        for g in changed {
            self.emit_weights(&g);
        }
        if !self.open() {
            return Ok(());
        }
        for chunk in gone.chunks(1) {
            let body = Body::DeregistrationRequest {
                flags: FLAG_LB,
                reason: REASON_LEARNED,
                groups: chunk.to_vec(),
            };
            self.send(now, Request::Deregistration, body);
        }
        for (group, members) in &added {
            self.register(now, group, members);
            let quiesced: Vec<MemberId> = members
                .iter()
                .filter(|m| self.quiesced.contains(m))
                .copied()
                .collect();
            for m in quiesced {
                self.send_member_state(now, m, true);
            }
        }
        if !added.is_empty() {
            self.get_weights(now);
        }
        Ok(())
    }

    /// Quiesces (or un-quiesces) a member in every group that has it: Set Member State with
    /// the QUIESCE flag. Remembered across reconnects of this session's owner only as long
    /// as this session lives.
    pub fn set_quiesce(&mut self, now: Instant, member: MemberId, quiesce: bool) {
        let changed = if quiesce {
            self.quiesced.insert(member)
        } else {
            self.quiesced.remove(&member)
        };
        if changed && self.open() {
            self.send_member_state(now, member, quiesce);
        }
    }

    /// Deregisters every group (reason 0x00) and waits for the reply: the session is then
    /// closed with reason "shut down" (the owner should bound the wait). Not connected: closes
    /// at once.
    pub fn shutdown(&mut self, now: Instant) {
        if !self.open() {
            self.close("shut down".to_owned());
            return;
        }
        self.next_poll = None;
        let groups: Vec<GroupMembers> = self
            .groups
            .keys()
            .map(|g| GroupMembers {
                group: self.group(g),
                members: Vec::new(),
            })
            .collect();
        if groups.is_empty() {
            self.close("shut down".to_owned());
            return;
        }
        let body = Body::DeregistrationRequest {
            flags: FLAG_LB,
            reason: REASON_NONE,
            groups,
        };
        self.shutdown_id = Some(self.next_id);
        self.send(now, Request::Deregistration, body);
        self.state = SessionState::ShuttingDown;
    }

    fn group(&self, name: &str) -> Group {
        Group::new(&self.settings.lb_uid, name)
    }

    fn close(&mut self, reason: String) {
        if self.state == SessionState::Closed {
            return;
        }
        self.state = SessionState::Closed;
        self.pending.clear();
        self.registering.clear();
        self.next_poll = None;
        self.events.push_back(LbEvent::Closed { reason });
    }

    fn send(&mut self, now: Instant, kind: Request, body: Body) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        match Message::new(id, body).to_bytes() {
            Ok(bytes) => {
                self.pending.insert(id, (kind, now));
                self.counters.messages_sent += 1;
                self.transmit.push_back(bytes);
            }
            // Unreachable with validated names and chunked members; never silent.
            Err(e) => self.close(format!("cannot encode {}: {e}", kind.name())),
        }
    }

    fn register(&mut self, now: Instant, group: &str, members: &[MemberId]) {
        for chunk in members.chunks(MEMBERS_PER_MESSAGE) {
            let body = Body::RegistrationRequest {
                flags: FLAG_LB,
                groups: vec![GroupMembers {
                    group: self.group(group),
                    members: chunk.iter().map(|m| m.to_member()).collect(),
                }],
            };
            self.registering.insert(self.next_id, group.to_owned());
            self.send(now, Request::Registration, body);
        }
    }

    fn send_member_state(&mut self, now: Instant, member: MemberId, quiesce: bool) {
        let state = MemberState {
            state: 0,
            flags: if quiesce { STATE_QUIESCE } else { 0 },
        };
        let groups: Vec<GroupMemberStates> = self
            .groups
            .iter()
            .filter(|(_, m)| m.contains(&member))
            .map(|(g, _)| GroupMemberStates {
                group: self.group(g),
                entries: vec![(member.to_member(), state)],
            })
            .collect();
        if !groups.is_empty() {
            let body = Body::SetMemberStateRequest {
                flags: FLAG_LB,
                groups,
            };
            self.send(now, Request::SetMemberState, body);
        }
    }

    fn get_weights(&mut self, now: Instant) {
        let groups: Vec<Group> = self
            .groups
            .iter()
            .filter(|(g, m)| !m.is_empty() && !self.refused.contains(*g))
            .map(|(g, _)| self.group(g))
            .collect();
        if groups.is_empty() {
            self.schedule_poll(now);
            return;
        }
        self.send(now, Request::GetWeights, Body::GetWeightsRequest { groups });
    }

    fn schedule_poll(&mut self, now: Instant) {
        self.next_poll = Some(now + self.interval());
    }

    fn handle_message(&mut self, now: Instant, m: Message) -> Result<(), String> {
        if let Body::SendWeights { groups } = m.body {
            if m.version != VERSION {
                return Err(format!("Send Weights in version {}", m.version));
            }
            if self.state == SessionState::ShuttingDown {
                return Ok(());
            }
            self.merge(groups);
            if self.settings.mode == SaspMode::Push {
                self.schedule_poll(now);
            }
            return Ok(());
        }
        let Some(code) = m.body.return_code() else {
            return Err(format!("the GWM sent a request ({})", m.body.name()));
        };
        let Some((kind, _)) = self.pending.remove(&m.id) else {
            return Err(format!(
                "{} with unknown message ID {}",
                m.body.name(),
                m.id
            ));
        };
        if !kind.matches(&m.body) {
            return Err(format!(
                "{} answers a {} request",
                m.body.name(),
                kind.name()
            ));
        }
        if code == ReturnCode::NOT_UNDERSTOOD {
            return Err(format!(
                "the GWM does not understand {} (it speaks version {}, we speak {VERSION})",
                kind.name(),
                m.version
            ));
        }
        if m.version != VERSION {
            return Err(format!("{} in version {}", m.body.name(), m.version));
        }
        if self.state == SessionState::ShuttingDown {
            if self.shutdown_id == Some(m.id) {
                self.close("shut down".to_owned());
            }
            return Ok(());
        }
        let ok = code == ReturnCode::SUCCESS
            || (kind == Request::Registration && code == ReturnCode::ALREADY_REGISTERED)
            || (kind == Request::Deregistration && code == ReturnCode::NOT_REGISTERED);
        if let Some(group) = self.registering.remove(&m.id) {
            if ok {
                self.refused.remove(&group);
            } else {
                self.refused.insert(group);
            }
        }
        if !ok {
            self.counters.error_replies += 1;
            if kind == Request::SetLbState {
                return Err(format!("Set LB State refused: {code}"));
            }
            self.events.push_back(LbEvent::Error {
                request: kind.name(),
                code,
            });
        }
        if let Body::GetWeightsReply {
            interval, groups, ..
        } = m.body
        {
            if interval > 0 {
                self.gwm_interval = Some(Duration::from_secs(u64::from(interval)));
            }
            if ok {
                self.merge(groups);
            }
            self.schedule_poll(now);
        }
        if self.state == SessionState::Registering
            && !self
                .pending
                .values()
                .any(|(k, _)| matches!(k, Request::SetLbState | Request::Registration))
        {
            self.state = SessionState::Connected;
            self.events.push_back(LbEvent::Registered);
        }
        Ok(())
    }

    fn merge(&mut self, groups: Vec<GroupWeights>) {
        self.counters.weights_messages += 1;
        let mut touched = BTreeSet::new();
        for gw in groups {
            let members = (gw.group.lb_uid == self.settings.lb_uid)
                .then(|| self.groups.get(&gw.group.name))
                .flatten();
            let Some(members) = members else {
                self.counters.ignored_entries += gw.entries.len() as u64;
                continue;
            };
            let table = self.weights.entry(gw.group.name.clone()).or_default();
            for (m, w) in gw.entries {
                let id = MemberId::of(&m);
                if members.contains(&id) {
                    table.insert(id, w);
                } else {
                    self.counters.ignored_entries += 1;
                }
            }
            touched.insert(gw.group.name);
        }
        for g in touched {
            self.emit_weights(&g);
        }
    }

    fn emit_weights(&mut self, group: &str) {
        let entries = self.weights.get(group).cloned().unwrap_or_default();
        self.events.push_back(LbEvent::Weights {
            group: group.to_owned(),
            entries,
        });
    }
}

fn bad(e: &DecodeError) -> String {
    format!("bad message from the GWM: {e}")
}
