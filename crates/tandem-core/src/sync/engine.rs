//! One node's end of configuration sync: the source answers, the follower pulls.
//!
//! The follower drives. It sends `Status` (where it is) until a `Head` answers, then pulls
//! what the answer says (the entries after its position, or the full shared text) with
//! `Get` requests, a window of chunks at a time, each request sent again on a timer (200 ms,
//! doubling to 1 s) until answered: loss, reordering and duplication only delay. A complete
//! entry is handed to the shell ([`SyncEvent::Apply`]), which applies it all or nothing and
//! commits it through its one commit path (then [`SyncEngine::set_shared`] with
//! [`Origin::Synced`] records it) or reports [`SyncEngine::apply_failed`].

use super::log::ChangeLog;
use super::wire::{CHUNK_HEADER, MAX_OBJECT, Message, Resume, What};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tunables.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Largest message (the frame's room): chunks carry this less their header.
    pub max_message: usize,
    /// Chunks asked for by one `Get`.
    pub window: u16,
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// How often the source repeats its head (and a node with sync off says so).
    pub head_every: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_message: 1400,
            window: 32,
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(1),
            head_every: Duration::from_secs(1),
        }
    }
}

/// This node's place in the pair, as the HA node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No partner in contact: its own source.
    Standalone,
    /// Active with a partner in contact.
    Source,
    /// Not Active, partner in contact.
    Follower,
}

/// Where a configuration change comes from (given with the commit that makes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// One command, as its canonical line.
    Command(String),
    /// A file load (or anything else): the entry replaces the whole shared part.
    Replace,
    /// The entry [`SyncEvent::Apply`] handed over.
    Synced,
}

/// A complete entry (or full text) to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub lineage: u64,
    pub seq: u64,
    /// A full sync (the log restarts at `seq` of `lineage`).
    pub full: bool,
    pub replace: bool,
    pub payload: Arc<Vec<u8>>,
    pub digest_after: u64,
}

impl Apply {
    pub fn lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.payload)
            .map(|s| s.lines().filter(|l| !l.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    Apply(Apply),
    /// For the log and the HA timeline.
    Note(String),
    /// A full sync replaced changes this node made alone: keep this text (a command file).
    Discarded(String),
}

/// `data["sync"]["state"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncState {
    #[serde(rename = "off")]
    Off,
    #[serde(rename = "standalone")]
    Standalone,
    #[serde(rename = "source")]
    Source,
    #[serde(rename = "in-sync")]
    InSync,
    #[serde(rename = "syncing")]
    Syncing,
    #[serde(rename = "inconsistent")]
    Inconsistent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounters {
    /// Entries this node served (first chunk sent; a re-asked entry counts again).
    pub entries_sent: u64,
    pub entries_applied: u64,
    /// Full syncs applied here / served (answers that sent the follower to a full sync).
    pub full_syncs: u64,
    pub full_syncs_sent: u64,
    pub chunks_sent: u64,
    pub chunks_received: u64,
    pub retransmits: u64,
    /// Changes refused on this node because it follows the partner.
    pub refused: u64,
    /// Messages dropped: undecodable, out of place, or too large.
    pub dropped: u64,
    pub apply_failed: u64,
    pub discarded: u64,
}

/// `data["sync"]`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    pub state: SyncState,
    pub role: Option<Role>,
    pub lineage: String,
    pub applied: u64,
    pub head: Option<u64>,
    pub digest: String,
    pub stopped_at: Option<u64>,
    pub first_difference: Option<String>,
    pub partner_sync_off: bool,
    pub transfer: Option<String>,
    pub last_error: Option<String>,
    pub note: Option<String>,
    pub log_base: u64,
    pub log_entries: usize,
    pub log_bytes: usize,
    pub counters: SyncCounters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    lineage: u64,
    head: u64,
    digest: u64,
}

#[derive(Debug)]
struct Transfer {
    what: What,
    lineage: u64,
    seq: u64,
    total: Option<u32>,
    digest_after: u64,
    replace: bool,
    buf: Vec<u8>,
    parts: BTreeMap<u32, Vec<u8>>,
    /// End of the window last asked for.
    asked_to: u32,
    /// Text to keep if this full sync replaces changes made here alone.
    discard: Option<String>,
}

impl Transfer {
    fn new(what: What, lineage: u64, seq: u64) -> Transfer {
        Transfer {
            what,
            lineage,
            seq,
            total: None,
            digest_after: 0,
            replace: false,
            buf: Vec::new(),
            parts: BTreeMap::new(),
            asked_to: 0,
            discard: None,
        }
    }
    fn done(&self) -> u32 {
        self.buf.len() as u32
    }
    fn complete(&self) -> bool {
        self.total == Some(self.done())
    }
}

#[derive(Debug, Clone, Copy)]
struct FollowerView {
    lineage: u64,
    applied: u64,
    digest: u64,
}

/// One node's end of configuration sync. See the module documentation.
pub struct SyncEngine {
    cfg: SyncConfig,
    enabled: bool,
    role: Role,
    stall: Duration,
    partner_digest: Option<u64>,
    log: ChangeLog,
    text: Arc<String>,
    digest: u64,
    // source side
    snapshot: Option<(u64, u64, Arc<String>, u64)>,
    follower: Option<FollowerView>,
    announced: Option<(u64, u64, u64)>,
    /// The last change known to be held by both nodes (lineage, seq).
    common: Option<(u64, u64)>,
    /// This node is Active (whatever its role).
    active: bool,
    next_head: Option<Instant>,
    partner_off_until: Option<Instant>,
    // follower side
    head: Option<Known>,
    want_status: bool,
    want_full: bool,
    transfer: Option<Transfer>,
    applying: Option<(Apply, Option<String>)>,
    sent_at: Option<Instant>,
    rto: Duration,
    last_progress: Option<Instant>,
    stopped: Option<(u64, Option<u64>)>,
    note: Option<String>,
    last_error: Option<String>,
    retry_after: Option<Instant>,
    // drift (sync off)
    difference: Option<((u64, u64), Option<String>)>,
    counters: SyncCounters,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<SyncEvent>,
}

impl SyncEngine {
    /// A node with an empty log of `lineage` (a random value) at the shared `text`.
    pub fn new(lineage: u64, text: String, cfg: SyncConfig) -> SyncEngine {
        let digest = super::shared::digest_of(&text);
        SyncEngine {
            rto: cfg.rto_min,
            cfg,
            enabled: true,
            role: Role::Standalone,
            stall: Duration::from_secs(6),
            partner_digest: None,
            log: ChangeLog::new(lineage, digest),
            text: Arc::new(text),
            digest,
            snapshot: None,
            follower: None,
            announced: None,
            common: None,
            active: false,
            next_head: None,
            partner_off_until: None,
            head: None,
            want_status: false,
            want_full: false,
            transfer: None,
            applying: None,
            sent_at: None,
            last_progress: None,
            stopped: None,
            note: None,
            last_error: None,
            retry_after: None,
            difference: None,
            counters: SyncCounters::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn log(&self) -> &ChangeLog {
        &self.log
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn counters(&self) -> &SyncCounters {
        &self.counters
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether this node refuses changes of the shared configuration (it follows a source
    /// with sync on).
    pub fn refuses_changes(&self, now: Instant) -> bool {
        self.enabled && self.role == Role::Follower && !self.partner_off(now)
    }

    /// A change was refused because this node follows the partner.
    pub fn note_refused(&mut self) {
        self.counters.refused += 1;
    }

    fn partner_off(&self, now: Instant) -> bool {
        self.partner_off_until.is_some_and(|t| now < t)
    }

    fn in_sync(&self) -> bool {
        self.head.is_some_and(|k| {
            k.lineage == self.log.lineage() && k.head == self.log.head() && k.digest == self.digest
        })
    }

    /// Why Active must not change hands by preemption now (for the HA machine's gate).
    pub fn behind(&self, now: Instant) -> Option<String> {
        if !self.enabled || self.partner_off(now) {
            return None;
        }
        match self.role {
            Role::Follower if !self.in_sync() => Some(match self.head {
                Some(k) => format!(
                    "configuration is at change {} of {} (configuration sync {})",
                    self.log.head(),
                    k.head,
                    if self.stopped.is_some() {
                        "inconsistent"
                    } else {
                        "in progress"
                    }
                ),
                None => "configuration sync with the Active has not completed yet".into(),
            }),
            Role::Source => self.follower.and_then(|f| {
                let at_head = f.lineage == self.log.lineage()
                    && f.applied == self.log.head()
                    && f.digest == self.digest;
                (!at_head).then(|| {
                    format!(
                        "the partner's configuration is at change {} of {}",
                        f.applied,
                        self.log.head()
                    )
                })
            }),
            _ => None,
        }
    }

    /// The state for status.
    pub fn state(&self, now: Instant) -> SyncState {
        if !self.enabled {
            return SyncState::Off;
        }
        match self.role {
            Role::Standalone if self.stopped.is_some() => SyncState::Inconsistent,
            Role::Standalone => SyncState::Standalone,
            Role::Source => SyncState::Source,
            Role::Follower if self.partner_off(now) => SyncState::Off,
            Role::Follower if self.in_sync() => SyncState::InSync,
            Role::Follower if self.stopped.is_some() => SyncState::Inconsistent,
            Role::Follower => SyncState::Syncing,
        }
    }

    pub fn status(&self, now: Instant) -> SyncStatus {
        let state = self.state(now);
        SyncStatus {
            state,
            role: self.enabled.then_some(self.role),
            lineage: format!("{:016x}", self.log.lineage()),
            applied: self.log.head(),
            head: match self.role {
                Role::Follower => self.head.map(|k| k.head),
                _ => Some(self.log.head()),
            },
            digest: format!("{:016x}", self.digest),
            stopped_at: self
                .stopped
                .filter(|_| state == SyncState::Inconsistent)
                .map(|s| s.0),
            first_difference: self.difference.as_ref().and_then(|d| d.1.clone()),
            partner_sync_off: self.partner_off(now),
            transfer: self.transfer.as_ref().map(|t| {
                format!(
                    "{} {} : {} of {} bytes",
                    match t.what {
                        What::Entry => "change",
                        What::Full => "full configuration at change",
                        What::Text => "partner's text",
                    },
                    t.seq,
                    t.done(),
                    t.total.map_or("?".into(), |n| n.to_string())
                )
            }),
            last_error: self.last_error.clone(),
            note: self.note.clone(),
            log_base: self.log.base_seq(),
            log_entries: self.log.len(),
            log_bytes: self.log.bytes(),
            counters: self.counters.clone(),
        }
    }

    // ----- inputs -----

    /// `highavailability sync off|on`.
    pub fn set_enabled(&mut self, now: Instant, on: bool) {
        if self.enabled != on {
            self.enabled = on;
            self.reset_follower();
            self.stopped = None;
            self.events.push_back(SyncEvent::Note(format!(
                "configuration sync {}",
                if on { "on" } else { "off" }
            )));
            self.next_head = Some(now);
        }
    }

    /// The HA node's view: role, the partner's heartbeat digest, the stall bound (a few
    /// hatimeouts).
    pub fn update(
        &mut self,
        now: Instant,
        role: Role,
        active: bool,
        partner_digest: Option<u64>,
        stall: Duration,
    ) {
        if active
            && !self.active
            && self.enabled
            && let Some((at, head)) = self.stopped
        {
            let text = format!(
                "took over with the configuration at change {at} of {} (inconsistent)",
                head.map_or("?".into(), |h| h.to_string())
            );
            self.note = Some(text.clone());
            self.events.push_back(SyncEvent::Note(text));
        }
        self.active = active;
        self.stall = stall;
        self.partner_digest = partner_digest;
        if role != self.role {
            let old = self.role;
            self.role = role;
            self.on_role(now, old);
        }
        self.drift(now);
        self.send_request(now, false);
    }

    fn on_role(&mut self, now: Instant, old: Role) {
        let behind = old == Role::Follower && self.enabled && !self.in_sync();
        let at = |s: &Self| {
            format!(
                "change {} of {}",
                s.log.head(),
                s.head.map_or("?".into(), |k| k.head.to_string())
            )
        };
        if behind {
            let head = self.head.map(|k| k.head);
            match self.role {
                Role::Source => {
                    let text = format!(
                        "took over with the configuration at {} (inconsistent)",
                        at(self)
                    );
                    self.note = Some(text.clone());
                    self.events.push_back(SyncEvent::Note(text));
                    self.stopped = None;
                }
                _ => {
                    self.stopped = Some((self.log.head(), head));
                    self.events.push_back(SyncEvent::Note(format!(
                        "configuration sync stopped at {} (partner lost): inconsistent",
                        at(self)
                    )));
                }
            }
        }
        self.reset_follower();
        self.follower = None;
        self.snapshot = None;
        self.partner_off_until = None;
        self.difference = None;
        match self.role {
            Role::Follower => {
                self.want_status = true;
                self.last_progress = Some(now);
            }
            Role::Source => {
                self.announced = None;
                self.next_head = Some(now);
            }
            Role::Standalone => {}
        }
    }

    fn reset_follower(&mut self) {
        self.head = None;
        self.want_status = self.enabled && self.role == Role::Follower;
        self.want_full = false;
        self.transfer = None;
        self.applying = None;
        self.sent_at = None;
        self.rto = self.cfg.rto_min;
    }

    /// The running configuration's shared text changed (or not) with a commit from `origin`
    /// (`None`: unknown, recorded as a replacing entry).
    pub fn set_shared(&mut self, now: Instant, text: String, origin: Option<Origin>) {
        let digest = super::shared::digest_of(&text);
        let changed = digest != self.digest;
        self.text = Arc::new(text);
        self.digest = digest;
        if let Some((apply, discard)) = self.applying.take() {
            if origin == Some(Origin::Synced) && digest == apply.digest_after {
                self.applied(now, apply, discard);
                return;
            }
            // Not the apply's commit: it is void (pulled again after this change).
            self.want_status = self.role == Role::Follower;
        }
        if !changed {
            return;
        }
        let (replace, payload) = match origin {
            Some(Origin::Command(line)) => (false, line.into_bytes()),
            _ => (true, self.text.as_bytes().to_vec()),
        };
        self.log.push(replace, Arc::new(payload), digest);
        if self.role == Role::Follower {
            // A change made here while following (the shell refuses those): the next head
            // shows the divergence and a full sync follows.
            self.want_status = true;
        }
        self.announce(now);
    }

    fn applied(&mut self, now: Instant, apply: Apply, discard: Option<String>) {
        if apply.full {
            self.log.reset(apply.lineage, apply.seq, apply.digest_after);
            self.counters.full_syncs += 1;
            self.events.push_back(SyncEvent::Note(format!(
                "full configuration received at change {} ({} bytes)",
                apply.seq,
                apply.payload.len()
            )));
        } else {
            self.log
                .push(apply.replace, apply.payload.clone(), apply.digest_after);
            self.counters.entries_applied += 1;
        }
        if let Some(text) = discard {
            self.counters.discarded += 1;
            self.events.push_back(SyncEvent::Discarded(text));
        }
        self.last_error = None;
        self.common = Some((self.log.lineage(), self.log.head()));
        self.progress(now);
        self.next_pull(now);
    }

    /// The shell could not apply the entry of the last [`SyncEvent::Apply`].
    pub fn apply_failed(&mut self, now: Instant, reason: String) {
        let Some((apply, _)) = self.applying.take() else {
            return;
        };
        self.counters.apply_failed += 1;
        let text = format!(
            "change {} from the partner could not be applied: {reason}",
            apply.seq
        );
        self.events.push_back(SyncEvent::Note(text.clone()));
        self.last_error = Some(text);
        // Start over from the full configuration, after a pause if that is what failed.
        self.want_status = true;
        self.want_full = true;
        if apply.full {
            self.retry_after = Some(now + self.cfg.rto_max);
        }
        self.send_request(now, true);
    }

    /// A Config-direction message from the partner.
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(msg) = Message::decode(bytes) else {
            self.counters.dropped += 1;
            return;
        };
        match msg {
            Message::Status {
                off,
                full,
                lineage,
                applied,
                digest,
            } => self.on_status(now, off, full, lineage, applied, digest),
            Message::Get {
                what,
                lineage,
                seq,
                offset,
                count,
            } => self.on_get(what, lineage, seq, offset, count),
            Message::Head {
                off,
                lineage,
                head,
                digest,
                resume,
                echo,
            } => self.on_head(
                now,
                off,
                Known {
                    lineage,
                    head,
                    digest,
                },
                resume,
                echo,
            ),
            Message::Chunk {
                what,
                lineage,
                seq,
                digest_after,
                replace,
                total,
                offset,
                data,
            } => self.on_chunk(
                now,
                (what, lineage, seq),
                digest_after,
                replace,
                total,
                offset,
                data,
            ),
            Message::Gone { what, lineage, seq } => {
                let matches = self
                    .transfer
                    .as_ref()
                    .is_some_and(|t| (t.what, t.lineage, t.seq) == (what, lineage, seq));
                if !matches {
                    self.counters.dropped += 1;
                    return;
                }
                self.transfer = None;
                if what == What::Text {
                    self.difference = None;
                } else {
                    self.want_status = true;
                    self.progress(now);
                }
                self.send_request(now, true);
            }
        }
    }

    // ----- source side -----

    pub fn handle_timeout(&mut self, now: Instant) {
        // Stall: behind, and nothing moved for longer than the bound.
        if self.enabled
            && self.role == Role::Follower
            && self.stopped.is_none()
            && !self.in_sync()
            && !self.partner_off(now)
            && self.last_progress.is_some_and(|t| now >= t + self.stall)
        {
            self.stopped = Some((self.log.head(), self.head.map(|k| k.head)));
            let text = format!(
                "configuration sync stalled at change {} of {} (no answer for {:.1} s): inconsistent",
                self.log.head(),
                self.head.map_or("?".into(), |k| k.head.to_string()),
                self.stall.as_secs_f64()
            );
            self.events.push_back(SyncEvent::Note(text));
        }
        if self.role == Role::Source
            && self.enabled
            && !self.follower_at_head()
            && !self.partner_off(now)
            && self.next_head.is_some_and(|t| now >= t)
        {
            self.next_head = Some(now + self.cfg.head_every);
            self.announced = Some((self.log.lineage(), self.log.head(), self.digest));
            self.push_head();
        }
        if !self.enabled && self.role != Role::Standalone && self.next_head.is_none_or(|t| now >= t)
        {
            // Tell the partner that this node has sync off (it then reports drift).
            self.next_head = Some(now + self.cfg.head_every);
            self.push(Message::Status {
                off: true,
                full: false,
                lineage: self.log.lineage(),
                applied: self.log.head(),
                digest: self.digest,
            });
        }
        self.send_request(now, false);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |c: Option<Instant>| {
            if let Some(c) = c {
                t = Some(t.map_or(c, |t| t.min(c)));
            }
        };
        if self.request().is_some() {
            consider(self.retry_after.or(self.sent_at.map(|s| s + self.rto)));
        }
        if self.role == Role::Follower && self.stopped.is_none() && !self.in_sync() {
            consider(self.last_progress.map(|p| p + self.stall));
        }
        if (self.role == Role::Source && self.enabled && !self.follower_at_head())
            || (!self.enabled && self.role != Role::Standalone)
        {
            consider(self.next_head);
        }
        t
    }

    fn push(&mut self, m: Message) {
        self.out.push_back(m.encode());
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }
}

#[path = "engine_follower.rs"]
mod follower;
#[path = "engine_source.rs"]
mod source;
