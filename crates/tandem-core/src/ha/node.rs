//! One node's end of the partner channel, sans IO, in the shape of quinn-proto's `Endpoint`.
//!
//! The [`Node`] owns everything the two nodes say to each other on the heartbeat port: the
//! HA [`Machine`], the replication [`Sender`] and [`Receiver`], the [`KeyRing`], the datagram
//! framing (heartbeats and replication frames), the gate that decides when this node may
//! replicate, the choice of the pair replication goes on (the one the partner was last heard
//! on), full synchronisation and the hand-over of records when Active changes hands.
//!
//! The shell moves bytes and carries out events:
//!
//! ```text
//! datagram from `from` to local address `local`: node.handle_datagram(now, local, from, bytes)
//! reach probe result:                            node.handle_reach(now, target, ok)
//! records the data plane queued:                 node.push_records(records)
//! at node.poll_timeout():                        node.handle_timeout(now)
//! after each call: while let Some(t) = node.poll_transmit() { send t.bytes from t.source to t.destination }
//!                  while let Some(e) = node.poll_event() { carry out e }
//! ```
//! An [`Event::TakeSnapshot`] asks the shell for every record of the replicating ports; it
//! answers with [`Node::full_sync`] (it may take its time, off any lock).

use super::datagram::{
    self, Direction, FRAME_MESSAGE_BYTES, FrameError, HEARTBEAT_RECORD_BYTES, KeyId, KeyRing,
};
use super::heartbeat::{self, DropKind, ProductVersion, State};
use super::machine::{Action, HaSettings, Machine, Received};
use crate::config::Config;
use crate::replication::{
    Ack, BatchHeader, MessageKind, Reader, Receiver, ReceiverConfig, Record, Sender, SenderConfig,
    message_kind,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[path = "node_sync.rs"]
mod sync;

/// Replication pacing: 150 MB/s, a million records resynchronised in well under a second of
/// sending and still a small share of a 10 Gb/s link.
pub const REPLICATION_RATE: u64 = 150_000_000;
/// How often the shell must look at its queue of records when it has some (the data plane's
/// queue is drained at this pace at the latest).
pub const RECORD_POLL: Duration = Duration::from_millis(10);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (a heartbeat source address).
    pub source: IpAddr,
    pub destination: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What the shell must do (in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A state action of the machine: forwarding on or off, announce, scripts, partner found
    /// or lost (never `SendHeartbeat`, `RequestFullSync` or `HandOver`: the node does those).
    Machine(Action),
    /// Take a snapshot of every record of the replicating ports and give it to
    /// [`Node::full_sync`].
    TakeSnapshot,
    /// Install these records from the partner in the tables (this node is Standby).
    Install(Vec<Record>),
    /// Something for the log and the takeover timeline.
    Note(String),
    /// A chunk of the partner's advisor states (sent by the Active, see
    /// [`Node::send_health`]); decoded by `crate::advisor`.
    PartnerHealth(Vec<u8>),
    /// The partner asks for this node's diagnostics bundle `id`: build it (off any lock) and
    /// give it to [`Node::bundle_built`].
    BuildBundle(u64),
    /// Configuration sync: apply this entry from the partner, all or nothing, through the
    /// commit path with [`crate::sync::Origin::Synced`] (or [`Node::sync_apply_failed`]).
    SyncApply(crate::sync::Apply),
    /// Configuration sync: a full sync replaced changes this node made alone; write this
    /// text to `sync-discarded-<unix time>.cfg` in the configuration directory.
    SyncDiscarded(String),
}

/// Counters of the partner channel, beyond the machine's heartbeat counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounters {
    /// Replication frames dropped: truncated, bad format or direction, bad or missing HMAC.
    pub frames_dropped: u64,
    /// Replication frames from another run of the partner (replayed from an earlier session).
    pub stale_epoch: u64,
    /// Replication frames that carry this node's own epoch as sender (reflected back to it).
    pub reflected: u64,
    /// Replication frames whose direction does not match their message, or that come while
    /// this node is the one replicating (records to an Active node).
    pub wrong_direction: u64,
    /// Batches of an older replication session than the one in use.
    pub stale_session: u64,
    /// Records not installed because this node is Active (its own records are the truth).
    pub refused_active: u64,
    /// Records handed to the shell to install, and how many it installed.
    pub delivered: u64,
    pub installed: u64,
    /// Records the data plane queued while this node was not replicating (dropped: the full
    /// synchronisation on (re)join covers them).
    pub not_replicating: u64,
    /// Full synchronisations and hand-overs this node started.
    pub full_syncs_sent: u64,
    pub handovers: u64,
    /// Key probes sent during a key change.
    pub key_probes: u64,
    /// Advisor-state chunks sent to the partner / received from it.
    pub health_sent: u64,
    pub health_received: u64,
    /// Advisor-state chunks refused because they did not fit one frame.
    pub health_oversize: u64,
    /// Datagrams for an HA instance this node does not run (mutual HA: `docs/mutual-ha.md`).
    pub wrong_instance: u64,
}

/// The channel's part of `highavailability status`.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub authenticated: bool,
    pub key_change: Option<String>,
    pub replicating: bool,
    pub handing_over: bool,
    pub counters: ChannelCounters,
    pub sender: crate::replication::SenderStats,
    pub receiver: crate::replication::ReceiverStats,
    pub last_sync_received_ms_ago: Option<u64>,
    pub last_sync_sent_ms_ago: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Snapshot {
    /// None asked for.
    Idle,
    /// Asked the shell; the answer goes to a full sync (or to a hand-over when `handover`).
    Asked { handover: bool },
}

/// One node's end of the partner channel. See the module documentation.
pub struct Node {
    machine: Machine,
    keys: KeyRing,
    config: Config,
    sender: Sender,
    receiver: Receiver,
    /// Sender sessions grow by one at each reset, so the partner's receiver can refuse an
    /// older one.
    next_session: u32,
    /// The partner run the receiver follows, and the lowest session it still takes from it.
    rx_partner: Option<u64>,
    rx_floor: Option<u32>,
    /// The partner run the sender sends to.
    tx_partner: Option<u64>,
    snapshot: Snapshot,
    /// Epoch of the full sync that is a hand-over (its acknowledgement ends the hand-over).
    handover_sync: Option<u32>,
    last_sync_received: Option<Instant>,
    last_sync_sent: Option<Instant>,
    counters: ChannelCounters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    last_now: Option<Instant>,
    /// The diagnostics pull protocol (see `node_bundle.rs`).
    bundles: super::bundle::Bundles,
    next_bundle: u64,
    /// Configuration sync (the Config direction, see `node_sync.rs`).
    sync: crate::sync::SyncEngine,
    /// Where the next configured change comes from (given by the shell before its commit).
    sync_origin: Option<crate::sync::Origin>,
    /// The HA instance this node is (0, or 1 for the second group of mutual HA): written in
    /// every heartbeat and frame it sends, and required of every one it takes.
    instance: u8,
}

impl Node {
    /// A node with executor stopped and HA off. `epoch` must grow across restarts (start time
    /// in ms does); `session` seeds the replication sessions (any value; random is best).
    pub fn new(epoch: u64, version: ProductVersion, session: u32) -> Node {
        let session = session.max(1);
        Node {
            machine: Machine::new(epoch, version),
            keys: KeyRing::default(),
            config: Config::default(),
            sender: Sender::new(SenderConfig {
                session,
                rate: REPLICATION_RATE,
                burst: 1 << 20,
                ..SenderConfig::default()
            }),
            receiver: Receiver::new(ReceiverConfig::default()),
            next_session: session.wrapping_add(1).max(1),
            rx_partner: None,
            rx_floor: None,
            tx_partner: None,
            snapshot: Snapshot::Idle,
            handover_sync: None,
            last_sync_received: None,
            last_sync_sent: None,
            counters: ChannelCounters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            last_now: None,
            bundles: Default::default(),
            next_bundle: epoch.wrapping_mul(1000),
            sync: sync::new_engine(epoch, session),
            sync_origin: None,
            instance: 0,
        }
    }

    /// Makes this node HA instance `instance` (mutual HA, before it sends anything).
    pub fn set_instance(&mut self, instance: u8) {
        self.instance = instance;
    }

    pub fn instance(&self) -> u8 {
        self.instance
    }

    // ----- accessors -----

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn counters(&self) -> &ChannelCounters {
        &self.counters
    }

    /// Whether this node sends records now: Active (or handing its records over after
    /// yielding), in two-way contact with a compatible partner, some port replicating.
    pub fn replicating(&self) -> bool {
        let m = &self.machine;
        m.settings().replication
            && (m.state() == State::Active || m.handing_over())
            && m.in_contact()
            && m.partner_compatible() == Some(true)
    }

    /// The channel's status; ages relative to `now`.
    pub fn channel_status(&self, now: Instant) -> ChannelStatus {
        let age =
            |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
        ChannelStatus {
            authenticated: self.keys.authenticated(),
            key_change: self.keys.rotating().then(|| {
                if self.keys.awaiting_partner() {
                    "in progress: signing with the old key until the partner shows the new one"
                        .into()
                } else {
                    "the partner holds the new key; the old one is still accepted for a few seconds"
                        .into()
                }
            }),
            replicating: self.replicating(),
            handing_over: self.machine.handing_over(),
            counters: self.counters.clone(),
            sender: self.sender.stats(),
            receiver: self.receiver.stats(),
            last_sync_received_ms_ago: age(self.last_sync_received),
            last_sync_sent_ms_ago: age(self.last_sync_sent),
        }
    }

    /// Warnings about the channel an operator should act on.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.machine.configured() && !self.keys.authenticated() {
            w.push(
                "the pair is not authenticated: anyone on the heartbeat segment can forge heartbeats \
                 and records; run `highavailability key generate FILE` and `highavailability key FILE` \
                 on both nodes"
                    .into(),
            );
        }
        if self.keys.awaiting_partner() {
            w.push("key change in progress: the partner has not shown the new key yet".into());
        }
        w
    }

    // ----- inputs -----

    /// Applies a (new) running configuration: HA settings, replication, the digest the pair
    /// compares. The key is set apart ([`Node::set_key`]), when the key command runs.
    /// `settings` is what the configuration gives ([`HaSettings::from_config`], with the
    /// digest); the node sets `authenticated` from its keys.
    pub fn configure(&mut self, now: Instant, config: &Config, mut settings: HaSettings) {
        let now = self.tick(now);
        self.config = config.clone();
        settings.config_digest = self.sync_configure(now, config);
        settings.authenticated = self.keys.authenticated();
        self.machine.configure(now, &settings);
        self.after(now);
    }

    /// Sets the pair key (read from its file by the shell when the key command runs); a
    /// change from one key to another is rolled without deafness (see [`KeyRing`]).
    pub fn set_key(&mut self, now: Instant, key: Option<Vec<u8>>) {
        let now = self.tick(now);
        let live = self.machine.partner_epoch().is_some();
        self.keys.set(key, live);
        self.refresh_authenticated(now);
        self.after(now);
    }

    pub fn executor_started(&mut self, now: Instant) {
        let now = self.tick(now);
        self.machine.executor_started(now);
        self.after(now);
    }

    pub fn executor_stopped(&mut self, now: Instant) {
        let now = self.tick(now);
        self.machine.executor_stopped(now);
        self.after(now);
    }

    pub fn takeover(&mut self, now: Instant) -> Result<(), super::TakeoverError> {
        let now = self.tick(now);
        let r = self.machine.takeover(now);
        self.after(now);
        r
    }

    pub fn set_maintenance(&mut self, now: Instant, on: bool) {
        let now = self.tick(now);
        self.machine.set_maintenance(now, on);
        self.after(now);
    }

    pub fn handle_reach(&mut self, now: Instant, target: IpAddr, reachable: bool) -> bool {
        let now = self.tick(now);
        let found = self.machine.handle_reach(now, target, reachable);
        self.after(now);
        found
    }

    /// Records the data plane queued for replication. Taken only while replicating (else
    /// counted and dropped: the full synchronisation on (re)join covers them).
    /// Sends one chunk of this node's advisor states to the partner, on the pair it was last
    /// heard on, when this node is Active and the partner is a compatible, live run. Chunks are
    /// self-contained and unacknowledged: the health loop sends them again periodically.
    pub fn send_health(&mut self, chunk: &[u8]) -> bool {
        let m = &self.machine;
        if m.state() != State::Active || !m.in_contact() || m.partner_compatible() != Some(true) {
            return false;
        }
        let (Some((source, dest)), Some(port)) = (m.partner_pair(), m.port()) else {
            return false;
        };
        if chunk.len() > FRAME_MESSAGE_BYTES {
            self.counters.health_oversize += 1;
            return false;
        }
        self.counters.health_sent += 1;
        self.send_frame(
            source,
            SocketAddr::new(dest, port),
            Direction::Health,
            chunk,
        );
        true
    }

    pub fn push_records(&mut self, records: impl IntoIterator<Item = Record>) {
        if self.replicating() {
            for r in records {
                self.sender.push(r);
            }
        } else {
            self.counters.not_replicating += records.into_iter().count() as u64;
        }
    }

    /// The snapshot asked for with [`Event::TakeSnapshot`]: starts the full synchronisation
    /// (or the hand-over) of the partner. Ignored if nothing asked for it any more.
    pub fn full_sync(&mut self, now: Instant, records: Vec<Record>) {
        let n = records.len();
        self.start_sync(now, Some(n), |s, now| s.start_full_sync(records, now));
    }

    /// [`Node::full_sync`] streamed from `source` (e.g. [`crate::forward::Engine::snapshot_cursor`]):
    /// the records are read a chunk at a time as the sender paces them, so the table is never
    /// copied whole. Call it on the thread that drives the node; reading a chunk is short.
    pub fn full_sync_from(
        &mut self,
        now: Instant,
        source: Box<dyn crate::replication::SyncSource>,
    ) {
        self.start_sync(now, None, |s, now| s.start_full_sync_from(source, now));
    }

    fn start_sync(
        &mut self,
        now: Instant,
        records: Option<usize>,
        start: impl FnOnce(&mut Sender, Instant) -> u32,
    ) {
        let now = self.tick(now);
        let Snapshot::Asked { handover } = std::mem::replace(&mut self.snapshot, Snapshot::Idle)
        else {
            return;
        };
        if !self.replicating() || (handover && !self.machine.handing_over()) {
            return;
        }
        let epoch = start(&mut self.sender, now);
        if handover {
            self.handover_sync = Some(epoch);
            self.counters.handovers += 1;
            let n = records.map_or("its".to_string(), |n| n.to_string());
            self.events.push_back(Event::Note(format!(
                "handing {n} records over to the partner before it goes Active"
            )));
        } else {
            self.counters.full_syncs_sent += 1;
            let n = records.map_or("streamed from the table".to_string(), |n| {
                format!("{n} records")
            });
            self.events.push_back(Event::Note(format!(
                "full synchronisation of the partner started ({n})"
            )));
        }
        self.send_records(now);
        self.after(now);
    }

    /// The shell installed `installed` of the records of an [`Event::Install`].
    pub fn note_installed(&mut self, installed: u64) {
        self.counters.installed += installed;
    }

    /// A datagram arrived on the heartbeat port at local address `local` from `from`.
    pub fn handle_datagram(&mut self, now: Instant, local: IpAddr, from: SocketAddr, bytes: &[u8]) {
        let now = self.tick(now);
        self.receive(now, local, from, bytes);
        self.after(now);
    }

    /// Timers: heartbeats, hatimeout, takeover, replication retransmission and pacing, the
    /// end of a key change.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        self.keys.handle_timeout(now);
        self.refresh_authenticated(now);
        self.machine.handle_timeout(now);
        self.bundle_timeout(now);
        if self.sync.poll_timeout().is_some_and(|t| t <= now) {
            self.sync.handle_timeout(now);
        }
        if self.replicating() && self.sender.poll_timeout().is_some_and(|t| t <= now) {
            self.sender.handle_timeout(now);
        }
        self.after(now);
    }

    /// When to call [`Node::handle_timeout`] next: the earliest of the machine's timers, the
    /// sender's retransmission and pacing, and the key ring's.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.machine.poll_timeout();
        let mut consider = |c: Option<Instant>| {
            if let Some(c) = c {
                t = Some(t.map_or(c, |t| t.min(c)));
            }
        };
        consider(self.keys.poll_timeout());
        consider(self.bundles.poll_timeout());
        consider(self.sync.poll_timeout());
        if self.replicating() {
            consider(self.sender.poll_timeout());
            if self.sender.queued() > 0
                && let Some(now) = self.last_now
            {
                consider(Some(now + Duration::from_millis(1)));
            }
        }
        t
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The machine's status (ages relative to `now`), with the channel's warnings added.
    pub fn status(&self, now: Instant) -> super::HaStatus {
        let mut s = self.machine.status(now);
        s.warnings.extend(self.warnings());
        s
    }

    // ----- internals -----

    fn tick(&mut self, now: Instant) -> Instant {
        let now = self.last_now.map_or(now, |l| l.max(now));
        self.last_now = Some(now);
        now
    }

    fn refresh_authenticated(&mut self, now: Instant) {
        let auth = self.keys.authenticated();
        if self.machine.settings().authenticated != auth {
            let mut s = self.machine.settings().clone();
            s.authenticated = auth;
            self.machine.configure(now, &s);
        }
    }

    fn receive(&mut self, now: Instant, local: IpAddr, from: SocketAddr, bytes: &[u8]) {
        let Some(pair) = self.machine.pair_index(local, from.ip()) else {
            self.machine.record_bad_datagram(DropKind::UnknownPair);
            return;
        };
        if datagram::is_replication(bytes) {
            self.receive_frame(now, local, from, bytes);
            return;
        }
        match heartbeat::decode_with(bytes, &self.keys) {
            // Authentic (or unkeyed) but for another HA instance (mutual HA): the byte is
            // checked after decoding, so garbage keeps being counted by what is wrong with it.
            Ok(_) if datagram::instance_of(bytes) != self.instance => {
                self.counters.wrong_instance += 1;
            }
            Ok((hb, verified_by)) => {
                let before = self.machine.partner_epoch();
                let r = self.machine.handle_heartbeat(now, pair, &hb);
                if matches!(r, Received::New | Received::Duplicate) {
                    self.keys.note(verified_by, now);
                }
                if self.machine.partner_epoch() != before {
                    self.partner_changed();
                }
                if r == Received::New && !hb.records.is_empty() {
                    self.on_message(now, local, from, hb.epoch, &hb.records);
                }
            }
            Err(e) => self.machine.record_bad_datagram(e.kind()),
        }
    }

    fn receive_frame(&mut self, now: Instant, local: IpAddr, from: SocketAddr, bytes: &[u8]) {
        let frame = match datagram::open(bytes, &self.keys) {
            Ok(f) => f,
            Err(FrameError::BadMac | FrameError::MissingMac | FrameError::Truncated)
            | Err(FrameError::UnsupportedFormat(_) | FrameError::Direction(_)) => {
                self.counters.frames_dropped += 1;
                return;
            }
        };
        if datagram::instance_of(bytes) != self.instance {
            self.counters.wrong_instance += 1;
            return;
        }
        let own = self.machine.epoch();
        if frame.sender_epoch == own {
            self.counters.reflected += 1;
            return;
        }
        if Some(frame.sender_epoch) != self.machine.partner_epoch() || frame.receiver_epoch != own {
            self.counters.stale_epoch += 1;
            return;
        }
        self.keys.note(frame.verified_by, now);
        if frame.verified_by == Some(KeyId::Current) {
            self.refresh_authenticated(now);
        }
        let message = frame.message.to_vec();
        match (frame.direction, message_kind(&message)) {
            (Direction::KeyProbe, _) => {}
            (Direction::Diagnostics, _) => self.bundles.handle(now, &message),
            (Direction::Config, _) if self.instance == 0 => self.sync.handle_message(now, &message),
            (Direction::Health, _) => {
                if self.machine.state() == State::Active {
                    // Two Actives: each keeps its own view.
                    self.counters.wrong_direction += 1;
                } else {
                    self.counters.health_received += 1;
                    self.events.push_back(Event::PartnerHealth(message));
                }
            }
            (Direction::Records, Some(MessageKind::Batch))
            | (Direction::Acks, Some(MessageKind::Ack)) => {
                self.on_message(now, local, from, frame.sender_epoch, &message);
            }
            _ => self.counters.wrong_direction += 1,
        }
    }

    /// The partner restarted (or was first heard): fresh replication state both ways.
    fn partner_changed(&mut self) {
        let epoch = self.machine.partner_epoch();
        if self.rx_partner != epoch {
            self.receiver.reset();
            self.rx_partner = epoch;
            self.rx_floor = None;
        }
        if self.tx_partner.is_some() && self.tx_partner != epoch {
            self.reset_sender();
            self.events.push_back(Event::Note(
                "partner restarted: replication starts a new session".into(),
            ));
        }
        self.tx_partner = epoch;
    }

    fn reset_sender(&mut self) {
        let session = self.next_session;
        self.next_session = self.next_session.wrapping_add(1).max(1);
        self.sender.reset(session);
        self.handover_sync = None;
        if self.snapshot != Snapshot::Idle {
            self.snapshot = Snapshot::Idle;
        }
    }

    /// A replication message (batch or ack) from the partner run `sender_epoch`.
    fn on_message(
        &mut self,
        now: Instant,
        local: IpAddr,
        from: SocketAddr,
        sender_epoch: u64,
        message: &[u8],
    ) {
        match message_kind(message) {
            Some(MessageKind::Ack) => {
                let Ok(ack) = Ack::decode(message) else {
                    self.counters.frames_dropped += 1;
                    return;
                };
                if !self.replicating() {
                    return;
                }
                let had = self.sender.stats().last_full_sync;
                self.sender.on_ack(&ack, now);
                let done = self.sender.stats().last_full_sync;
                if done != had
                    && let Some(d) = done
                {
                    self.last_sync_sent = Some(now);
                    if self.handover_sync == Some(d.epoch) {
                        self.handover_sync = None;
                        self.events.push_back(Event::Note(format!(
                            "partner holds every record ({} in {} ms): it may go Active",
                            d.records, d.duration_ms
                        )));
                        self.machine.handover_complete(now);
                        self.reset_sender();
                    } else {
                        self.events.push_back(Event::Note(format!(
                            "partner holds the full table: {} records in {} ms",
                            d.records, d.duration_ms
                        )));
                        self.machine.sync_complete(now);
                    }
                }
                self.send_records(now);
            }
            Some(MessageKind::Batch) => {
                if Some(sender_epoch) != self.rx_partner {
                    self.counters.stale_epoch += 1;
                    return;
                }
                let Ok(hdr) = BatchHeader::decode(&mut Reader::new(message)) else {
                    self.counters.frames_dropped += 1;
                    return;
                };
                if self
                    .rx_floor
                    .is_some_and(|f| (hdr.session.wrapping_sub(f) as i32) < 0)
                {
                    self.counters.stale_session += 1;
                    return;
                }
                self.rx_floor = Some(hdr.session);
                let out = self.receiver.on_batch_validated(message, now, &self.config);
                if !out.records.is_empty() {
                    if self.machine.state() == State::Active {
                        self.counters.refused_active += out.records.len() as u64;
                    } else {
                        self.counters.delivered += out.records.len() as u64;
                        self.events.push_back(Event::Install(out.records));
                    }
                }
                if let Some(ack) = out.ack {
                    // To the partner's heartbeat socket (the pair address and the HA port),
                    // as heartbeats go: never to whatever source port the batch came from.
                    let to = SocketAddr::new(from.ip(), self.machine.port().unwrap_or(from.port()));
                    self.send_frame(local, to, Direction::Acks, &ack.to_bytes());
                }
                if out.sync_complete {
                    self.last_sync_received = Some(now);
                    self.events
                        .push_back(Event::Note("full synchronisation received".into()));
                    self.machine.sync_complete(now);
                }
            }
            None => self.counters.frames_dropped += 1,
        }
    }

    fn send_frame(
        &mut self,
        source: IpAddr,
        destination: SocketAddr,
        direction: Direction,
        message: &[u8],
    ) {
        let Some(receiver_epoch) = self.machine.partner_epoch() else {
            return;
        };
        let bytes = datagram::seal_for(
            self.instance,
            direction,
            self.machine.epoch(),
            receiver_epoch,
            message,
            self.keys.signing(),
        );
        self.transmits.push_back(Transmit {
            source,
            destination,
            bytes,
        });
    }

    /// Sends the batches pacing allows, on the pair the partner was last heard on.
    fn send_records(&mut self, now: Instant) {
        if !self.replicating() {
            return;
        }
        let (Some((source, dest)), Some(port)) = (self.machine.partner_pair(), self.machine.port())
        else {
            return;
        };
        let destination = SocketAddr::new(dest, port);
        let mut budget = self.sender.pace(now);
        while budget > 0 {
            let Some(batch) = self.sender.next_batch(now, FRAME_MESSAGE_BYTES) else {
                break;
            };
            budget = budget.saturating_sub(batch.bytes.len());
            self.send_frame(source, destination, Direction::Records, &batch.bytes);
        }
    }

    /// Carries out what the machine asked for, then sends what replication has ready (and
    /// what configuration sync has to say).
    fn after(&mut self, now: Instant) {
        // Sync's view of the pair, and its gate on the machine (which may act on it).
        for _ in 0..3 {
            self.sync_step(now);
            if !self.machine_actions(now) {
                break;
            }
        }
        self.sync_output();
        if !self.machine.handing_over() && self.handover_sync.is_some() {
            // The hand-over ended without the partner's acknowledgement (deadline): this node
            // is Standby now and sends nothing more.
            self.reset_sender();
        }
        if self.replicating() {
            self.send_records(now);
        }
        self.send_bundle_messages();
        if self.sender.is_idle() {
            self.sender.compact();
        }
    }

    /// Carries out the machine's actions; whether there were any.
    fn machine_actions(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(action) = self.machine.poll_action() {
            any = true;
            match action {
                Action::SendHeartbeat {
                    source,
                    destination,
                    port,
                    mut heartbeat,
                    ..
                } => {
                    let destination = SocketAddr::new(destination, port);
                    if self.replicating()
                        && let Some(batch) = self.sender.next_batch(now, HEARTBEAT_RECORD_BYTES)
                    {
                        heartbeat.records = batch.bytes;
                    }
                    let bytes =
                        heartbeat::encode_for(&heartbeat, self.instance, self.keys.signing());
                    self.transmits.push_back(Transmit {
                        source,
                        destination,
                        bytes,
                    });
                    if let Some(k) = self.keys.probe_key() {
                        let probe = self.machine.partner_epoch().map(|rx| {
                            datagram::seal_for(
                                self.instance,
                                Direction::KeyProbe,
                                self.machine.epoch(),
                                rx,
                                &[],
                                Some(k),
                            )
                        });
                        if let Some(bytes) = probe {
                            self.counters.key_probes += 1;
                            self.transmits.push_back(Transmit {
                                source,
                                destination,
                                bytes,
                            });
                        }
                    }
                }
                Action::RequestFullSync => {
                    if self.machine.settings().replication {
                        self.snapshot = Snapshot::Asked { handover: false };
                        self.events.push_back(Event::TakeSnapshot);
                    }
                }
                Action::HandOver => {
                    self.snapshot = Snapshot::Asked { handover: true };
                    self.events.push_back(Event::TakeSnapshot);
                }
                other => {
                    let leaves_active = matches!(
                        other,
                        Action::GoStandby | Action::GoListen | Action::GoDown | Action::GoIdle
                    );
                    if leaves_active && !self.machine.handing_over() {
                        // Nothing queued while Active may be sent later, stale.
                        self.reset_sender();
                    }
                    self.events.push_back(Event::Machine(other));
                }
            }
        }
        any
    }
}

#[path = "node_bundle.rs"]
mod node_bundle;
