//! The HA state machine: one node's view of its pair, sans IO.
//!
//! Inputs are method calls carrying `now`; outputs are [`Action`]s drained with
//! [`Machine::poll_action`]; the shell sleeps until [`Machine::poll_timeout`] and then calls
//! [`Machine::handle_timeout`]. Nothing here reads a clock, opens a socket or sleeps.
//!
//! # States
//!
//! ```text
//!              executor_started, no HA            executor_started, HA configured
//!   ┌──────┐ ◀───────────────────────── ┌──────┐ ─────────────────────────────▶ ┌────────┐
//!   │ Idle │ ─── executor_stopped ────▶ │ Down │ ◀── executor_stopped (any) ─── │ Listen │
//!   └──────┘                            └──────┘                                └────────┘
//!     │  ▲                                                                        │    │
//!     │  └── HA deleted (from Listen, Standby, Active)                            │    │
//!     └───── HA configured ───────────────────────────────────────────▶ Listen    │    │
//!                                                                                 │    │
//!                                                   partner heard Active          │    │
//!                                                                                 ▼    │
//!                       ┌───────────────── (1) ─────────────────────────── ┌─────────┐ │
//!                       ▼                                                  │ Standby │ │
//!                  ┌────────┐ ─────────────────── (2) ───────────────────▶ └─────────┘ │
//!                  │ Active │ ◀──── nothing heard for hatimeout, or preferred ─────────┘
//!                  └────────┘       over a partner that is not Active
//!
//!  (1) Standby → Active: partner silent for hatimeout, or it left (executor stopped, HA
//!      deleted); the partner yielded to our takeover request (operator `takeover`, `auto`
//!      failback); both not Active and this node is preferred.
//!  (2) Active → Standby (yield-first, Synchronized only): the partner asked to take over; the
//!      Standby partner reached strictly more targets for the reach hold; maintenance.
//!      Also: both Active, in contact, and this node loses the tie-break; or the partner is
//!      Active and does not hear us (it leads, we follow).
//! ```
//!
//! Sub-state: **Synchronized** when the partner is in two-way contact (it is heard, and its
//! acks show it hears us), runs a compatible version (same V.R), and, with replication on, the
//! standby holds the full table ([`Machine::sync_complete`]). Otherwise **Not Synchronized**.
//!
//! # Rules
//!
//! * Heartbeats go out every interval (default hatimeout/4) on every pair, and at once whenever
//!   what they say changes (state, sub-state, request, reach, maintenance), so handshakes take
//!   one trip rather than one interval. A node also replies at once (at most four replies an
//!   interval) when the partner's view of it is stale (old ack), when it has not acked this run
//!   of the partner yet, or when the partner says something new; a reply never triggers a
//!   reply, so the two never ping-pong.
//! * **Heard**: some pair delivered a heartbeat within hatimeout and the partner has not said it
//!   is leaving. **Deaf** (PH33032): heard for at least hatimeout, but its last ack names a seq
//!   of ours sent more than hatimeout before that heartbeat arrived — it does not hear us.
//!   Either silence or deafness means the partner is lost (`PartnerLost`, Not Synchronized).
//!   Silence makes a Standby take over. Deafness never makes a node go Active: a deaf partner
//!   believes we are gone and will itself be (or become) Active, so we follow it — an Active
//!   node that hears a deaf Active partner yields. ("The deaf side leads, the hearing side
//!   follows": IBM's literal rule would take over here and make both Active.)
//! * Start: Listen; Active when nothing is heard for hatimeout; Standby as soon as an Active
//!   partner is heard; when the partner is heard but not Active (both starting), the preferred
//!   node (see below) goes Active.
//! * Standby takes over when the partner is silent for hatimeout or leaves. While Synchronized,
//!   an Active whose Standby partner has reached strictly more targets for the reach hold
//!   (reach interval + hatimeout: probes on two nodes see a shared target fail at different
//!   moments) yields to it; equal counts change nothing.
//! * Handover is always yield-first, so there is no moment with both Active while heartbeats
//!   flow: the requester (operator [`Machine::takeover`] on a Synchronized Standby, or an `auto`
//!   primary that is Standby, Synchronized and in contact for `failback_hold`) sends
//!   `TakeoverRequest`; the Active goes Standby and answers `YieldAck`; then the requester goes
//!   Active. An attempt the partner does not answer within `takeover_timeout` is abandoned.
//! * A node entering Standby sends `StandbyEntered` until an Active partner acknowledges it; the
//!   Active answers with [`Action::Announce`] (PH36755).
//! * Dual Active while in contact (a healed partition), or neither Active: the election
//!   (`election::prefer`, a pure and symmetric rule) decides. Maintenance loses; a node that
//!   has just started (Listen: it crashed and came back within hatimeout, empty) loses to one
//!   that was running and holds the replicated table; then more reach targets wins; then with
//!   `auto` the primary wins, with `manual` the backup (the current holder); neither Active:
//!   the primary, whatever the recovery. Same roles (misconfigured): the older epoch, then the
//!   lower source address of the first heartbeat pair.
//! * Silence is judged by the slower of the two nodes' hatimeouts (each advertises its own),
//!   so a pair with different hatimeouts never flaps.
//! * A yield with replication on is a hand-over: the yielding node asks its shell for every
//!   record ([`Action::HandOver`]) and flags its heartbeats (HANDOVER); the partner waits for
//!   [`Machine::handover_complete`] (or half the takeover timeout) before it goes Active.
//! * Unauthenticated pairs ([`HaSettings::authenticated`] false): a "leaving" notice is
//!   ignored (only silence counts), and a heartbeat that changes what the partner says is
//!   acted on only when a second, later one confirms it (see `receive.rs`).
//! * An incompatible partner (different V.R) is still heard, so it is never dual-Active with us;
//!   it is never Synchronized: no replication, no failback, no reach takeover, no `takeover`.
//! * `executor_stopped`: Down at once, and one last heartbeat with `Leaving`, so that the partner
//!   takes over without waiting for hatimeout. Deleting HA: Idle (stand-alone forwarding), also
//!   with a `Leaving` heartbeat. Configuring HA on an Idle node: Listen (it stops forwarding
//!   until it knows its partner), so call [`Machine::configure`] before
//!   [`Machine::executor_started`] when a configuration file is loaded, or a backup would
//!   forward (and announce) for a moment as Idle.
//!
//! Scripts: after each state action come `RunScript(goX)` then `RunScript(highavailChange, goX)`:
//! goActive (→Active), goStandby (→Standby), goIdle (→Idle), goInOp (→Down, and Down→Listen at
//! executor start). Idle→Listen runs none.

use super::heartbeat::{
    DropKind, Heartbeat, ProductVersion, ReplayGuard, Request, State, SubState,
};
use crate::config::{Recovery, Role};
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

mod election;
mod receive;
mod settings;
mod status;
mod transitions;

pub use settings::{HaSettings, MAX_TIMER};
pub use status::{
    Contact, DropCounters, HaStatus, PairLiveness, PairStatus, PartnerStatus, ReachStatus,
    TransitionStatus,
};

/// Script names, as IBM's Dispatcher calls them.
pub const GO_ACTIVE: &str = "goActive";
pub const GO_STANDBY: &str = "goStandby";
pub const GO_IN_OP: &str = "goInOp";
pub const GO_IDLE: &str = "goIdle";
pub const HIGHAVAIL_CHANGE: &str = "highavailChange";

/// How many transitions the status keeps.
pub const HISTORY: usize = 16;

/// What the shell must do. Process in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Encode `heartbeat` (add replication records to it if any are queued; add the key) and
    /// send it from `source` to `destination`:`port`.
    SendHeartbeat {
        pair: usize,
        source: IpAddr,
        destination: IpAddr,
        port: u16,
        heartbeat: Heartbeat,
    },
    /// In one step: forward, answer ARP for the cluster and return addresses, send gratuitous
    /// ARPs for them.
    GoActive,
    /// First stop forwarding and answering ARP for the addresses (then scripts run).
    GoStandby,
    /// HA starting: not forwarding (as Standby).
    GoListen,
    /// Stand-alone: forward and own the addresses (as Active).
    GoIdle,
    /// Executor stopped: not forwarding.
    GoDown,
    /// Re-send the gratuitous ARPs (the partner has just entered Standby: PH36755).
    Announce,
    /// Run script `name` (if the file exists), with `arg` as `$1`.
    RunScript {
        name: &'static str,
        arg: Option<&'static str>,
    },
    /// Send the whole connection/affinity table (and configuration) to the partner.
    RequestFullSync,
    /// This node has just yielded Active to a Synchronized partner: send it every record of
    /// the replicating ports now, then call [`Machine::handover_complete`] (the partner waits
    /// for that before it goes Active; the machine gives up waiting after half the takeover
    /// timeout).
    HandOver,
    /// Two-way contact with the partner lost (silence, leaving, or deafness).
    PartnerLost,
    /// Two-way contact with the partner (re)established.
    PartnerFound { compatible: bool },
}

impl Action {
    /// For the data plane: `Some(true)` = forward and own the addresses, `Some(false)` = do
    /// not, `None` = no change.
    pub fn forwarding(&self) -> Option<bool> {
        match self {
            Action::GoActive | Action::GoIdle => Some(true),
            Action::GoStandby | Action::GoListen | Action::GoDown => Some(false),
            _ => None,
        }
    }
}

/// Why `takeover` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeoverError {
    #[error("high availability is not configured on this node")]
    NotConfigured,
    #[error("the executor is not started")]
    ExecutorStopped,
    #[error("this node is already Active")]
    AlreadyActive,
    #[error("this node is {0}; takeover runs on the Standby node")]
    NotStandby(State),
    #[error(
        "this node is Standby but Not Synchronized ({0}); takeover needs a Synchronized Standby"
    )]
    NotSynchronized(String),
    #[error(
        "the partner runs {partner}, incompatible with this node's {local}: stop the partner's executor to hand over"
    )]
    Incompatible {
        local: ProductVersion,
        partner: ProductVersion,
    },
    #[error(
        "the partner reaches more targets ({partner} > {local}) and would take Active straight back"
    )]
    FewerReach { local: u16, partner: u16 },
    #[error(
        "recovery is auto and this node is the backup: the primary would take Active straight back (use manual recovery)"
    )]
    AutoBackup,
    #[error("a takeover is already in progress")]
    InProgress,
    #[error("this node is in maintenance: end maintenance first")]
    Maintenance,
    /// Configuration sync: this node's configuration is not the source's yet.
    #[error("{0}")]
    ConfigBehind(String),
}

/// What became of a heartbeat handed to [`Machine::handle_heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// New: its records (if any) may be processed.
    New,
    /// A copy of a heartbeat already received on another pair: liveness only.
    Duplicate,
    /// HA is not running here (Idle or Down): ignored.
    Ignored,
    /// Dropped and counted.
    Dropped(DropKind),
}

#[derive(Debug, Clone)]
struct Pair {
    source: IpAddr,
    destination: IpAddr,
    guard: ReplayGuard,
    last_heard: Option<Instant>,
    received: u64,
    lost: u64,
    sent: u64,
}

impl Pair {
    fn new(source: IpAddr, destination: IpAddr) -> Self {
        Pair {
            source,
            destination,
            guard: ReplayGuard::new(),
            last_heard: None,
            received: 0,
            lost: 0,
            sent: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Reach {
    address: IpAddr,
    reachable: Option<bool>,
}

#[derive(Debug, Clone)]
struct Partner {
    /// Latest heartbeat content (records dropped).
    hb: Heartbeat,
    last_heard: Instant,
    /// Start of the current run of hearing it.
    heard_since: Instant,
    /// Its last ack named a seq of ours sent within hatimeout of that heartbeat's arrival.
    fresh_ack: bool,
    /// Destination of the pair it was last heard on.
    address: IpAddr,
    /// Index of that pair.
    pair: usize,
    /// This run of the partner was heard running before (not only leaving): only then can
    /// it leave. A node that has just started and first hears a "leaving" heartbeat (a
    /// replay of an old one, say) waits for silence instead of going Active at once.
    was_running: bool,
}

impl Partner {
    fn left(&self) -> bool {
        self.was_running && self.says_leaving()
    }

    fn says_leaving(&self) -> bool {
        self.hb.request == Request::Leaving || matches!(self.hb.state, State::Down | State::Idle)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptKind {
    Operator,
    Failback,
}

impl fmt::Display for AttemptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttemptKind::Operator => "takeover",
            AttemptKind::Failback => "auto failback",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    kind: AttemptKind,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Notice {
    #[default]
    None,
    /// Entered Standby; not sent yet.
    Pending,
    /// First sent in this seq; repeated until an Active partner acks it.
    Sent(u64),
}

/// The state and the data that belongs to it.
#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Down,
    /// Starting: goes Active at `deadline` if nothing is heard.
    Listen {
        deadline: Instant,
    },
    Standby(StandbyData),
    Active(ActiveData),
}

#[derive(Debug, Clone, Default)]
struct StandbyData {
    /// A takeover this node asked for (operator, or auto failback).
    attempt: Option<Attempt>,
    /// Yielded to the partner's request; don't take Active back before this, unless it fails.
    yielded_until: Option<Instant>,
    /// The PH36755 notice that this node entered Standby.
    notice: Notice,
    /// Yielded Active and handing the records over, until this deadline (or until
    /// [`Machine::handover_complete`]).
    handover_until: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct ActiveData {
    /// Since when the Standby partner has reached strictly more targets than this node.
    reach_behind_since: Option<Instant>,
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Phase::Idle => State::Idle,
            Phase::Down => State::Down,
            Phase::Listen { .. } => State::Listen,
            Phase::Standby(_) => State::Standby,
            Phase::Active(_) => State::Active,
        }
    }
}

#[derive(Debug, Clone)]
struct Transition {
    at: Instant,
    from: State,
    to: State,
    reason: String,
}

/// What a heartbeat says that moves the pair, for confirmation on unauthenticated pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    epoch: u64,
    state: State,
    sub_state: SubState,
    request: Request,
    maintenance: bool,
    handover: bool,
    reach: u16,
    role: Role,
    recovery: Recovery,
    fresh_ack: bool,
}

#[derive(Debug, Clone, Copy)]
struct Unconfirmed {
    facts: Facts,
    seq: u64,
}

/// What a heartbeat says about us that, when it changes, is sent at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    state: State,
    sub_state: SubState,
    request: Request,
    reach: (u16, u16),
    maintenance: bool,
    handover: bool,
}

/// One node's HA state machine. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    epoch: u64,
    version: ProductVersion,
    settings: HaSettings,
    executor: bool,
    /// The state, with the data that belongs to it (h2 style: data of another state cannot
    /// linger, it does not exist).
    phase: Phase,
    maintenance: bool,

    seq: u64,
    /// Send time of each recent seq (for ack lag).
    sent: VecDeque<(u64, Instant)>,
    next_send: Option<Instant>,
    last_round: Option<Instant>,
    first_send: Option<Instant>,
    sent_signature: Option<Signature>,
    /// First seq that carried the current signature.
    change_seq: u64,

    pairs: Vec<Pair>,
    reach: Vec<Reach>,

    partner: Option<Partner>,
    contact: bool,
    contact_since: Option<Instant>,
    synced: bool,
    sync_requested: bool,

    failback_not_before: Option<Instant>,
    /// Unauthenticated pairs: a heartbeat that would change the partner's view, held until a
    /// later one confirms it.
    unconfirmed: Option<Unconfirmed>,
    /// Partner epoch that our last heartbeat acknowledged.
    acked_epoch: Option<u64>,
    last_reply: Option<Instant>,
    takeover_note: Option<String>,
    /// When two-way contact with the partner was last lost (cleared when it is found again).
    partner_lost_at: Option<Instant>,
    /// Configuration sync says the pair's configurations differ (why): no preemptive change
    /// of Active (takeover, failback, yielding to the partner); a lost partner is still taken
    /// over from.
    config_behind: Option<String>,

    actions: VecDeque<Action>,
    history: VecDeque<Transition>,
    drops: DropCounters,
    last_now: Option<Instant>,
    /// Everything due at or before this instant has been handled.
    last_eval: Option<Instant>,
}

fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Machine {
    /// A node with executor stopped and HA off. `epoch` must grow across restarts (start time
    /// in ms since the Unix epoch does).
    pub fn new(epoch: u64, version: ProductVersion) -> Self {
        Machine {
            epoch,
            version,
            settings: HaSettings::default(),
            executor: false,
            phase: Phase::Down,
            maintenance: false,
            seq: 0,
            sent: VecDeque::new(),
            next_send: None,
            last_round: None,
            first_send: None,
            sent_signature: None,
            change_seq: 0,
            pairs: Vec::new(),
            reach: Vec::new(),
            partner: None,
            contact: false,
            contact_since: None,
            synced: false,
            sync_requested: false,
            failback_not_before: None,
            acked_epoch: None,
            unconfirmed: None,
            last_reply: None,
            takeover_note: None,
            partner_lost_at: None,
            config_behind: None,
            actions: VecDeque::new(),
            history: VecDeque::new(),
            drops: DropCounters::default(),
            last_now: None,
            last_eval: None,
        }
    }

    // ----- accessors -----

    pub fn state(&self) -> State {
        self.phase.state()
    }

    fn standby(&self) -> Option<&StandbyData> {
        match &self.phase {
            Phase::Standby(d) => Some(d),
            _ => None,
        }
    }

    fn standby_mut(&mut self) -> Option<&mut StandbyData> {
        match &mut self.phase {
            Phase::Standby(d) => Some(d),
            _ => None,
        }
    }

    fn active_mut(&mut self) -> Option<&mut ActiveData> {
        match &mut self.phase {
            Phase::Active(d) => Some(d),
            _ => None,
        }
    }

    fn attempt(&self) -> Option<Attempt> {
        self.standby().and_then(|d| d.attempt)
    }

    fn yielded(&self) -> Option<Instant> {
        self.standby().and_then(|d| d.yielded_until)
    }

    fn handover_until(&self) -> Option<Instant> {
        self.standby().and_then(|d| d.handover_until)
    }

    fn listen_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Listen { deadline } => Some(deadline),
            _ => None,
        }
    }

    fn reach_behind_since(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Active(d) => d.reach_behind_since,
            _ => None,
        }
    }

    pub fn sub_state(&self) -> SubState {
        let ok = self.contact
            && self.compatible()
            && (!self.settings.replication || self.synced)
            && self.ha_running();
        if ok {
            SubState::Synchronized
        } else {
            SubState::NotSynchronized
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn version(&self) -> ProductVersion {
        self.version
    }

    pub fn settings(&self) -> &HaSettings {
        &self.settings
    }

    /// Whether HA is configured (`highavailability backup add` given).
    pub fn configured(&self) -> bool {
        self.settings.backup.is_some()
    }

    /// Whether the data plane should forward (Active or Idle).
    pub fn forwarding(&self) -> bool {
        self.state().forwarding()
    }

    /// Whether the partner is in two-way contact.
    pub fn in_contact(&self) -> bool {
        self.contact
    }

    /// Whether the partner (if known) runs a compatible version.
    pub fn partner_compatible(&self) -> Option<bool> {
        self.partner
            .as_ref()
            .map(|p| p.hb.version.compatible(&self.version))
    }

    /// Heartbeats accepted so far, over every pair (liveness, for tests and status).
    pub fn heartbeats_received(&self) -> u64 {
        self.pairs.iter().map(|p| p.received).sum()
    }

    /// The partner's epoch (its current run), once heard.
    pub fn partner_epoch(&self) -> Option<u64> {
        self.partner.as_ref().map(|p| p.hb.epoch)
    }

    /// The heartbeat pair (local source, partner destination) the partner was last heard on:
    /// where replication goes, so that a cut first pair does not slow it to heartbeat pace.
    pub fn partner_pair(&self) -> Option<(IpAddr, IpAddr)> {
        let p = self.partner.as_ref()?;
        let pair = self.pairs.get(p.pair)?;
        Some((pair.source, pair.destination))
    }

    /// The HA port (`highavailability backup add ... PORT`).
    pub fn port(&self) -> Option<u16> {
        self.settings.backup.map(|b| b.port)
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The index of the heartbeat pair (local source, partner destination), if configured.
    pub fn pair_index(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.pairs
            .iter()
            .position(|p| p.source == local && p.destination == remote)
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Machine::handle_timeout`] next (never a time already handled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.ha_running() {
            return None;
        }
        let h = self.settings.hatimeout();
        let mut c: Vec<Instant> = Vec::new();
        c.extend(self.next_send);
        c.extend(self.listen_deadline());
        c.extend(self.attempt().map(|a| a.deadline));
        c.extend(self.yielded());
        c.extend(
            self.reach_behind_since()
                .map(|t| t + self.settings.reach_hold()),
        );
        c.extend(self.failback_not_before);
        c.extend(
            self.contact_since
                .map(|t| t + self.settings.failback_hold()),
        );
        c.extend(self.first_send.map(|t| t + h));
        c.extend(self.handover_until());
        if let Some(p) = &self.partner {
            let s = self.silence();
            c.push(p.last_heard + s);
            c.push(p.heard_since + s);
            c.push(p.heard_since + h);
        }
        c.into_iter()
            .filter(|&t| self.last_eval.is_none_or(|n| t > n))
            .min()
    }

    // ----- inputs -----

    /// Applies (new) HA settings. HA off → Idle (if the executor runs); HA added while Idle
    /// → Listen; other changes keep the state and re-evaluate.
    pub fn configure(&mut self, now: Instant, settings: &HaSettings) {
        let now = self.tick(now);
        if *settings == self.settings {
            self.evaluate(now);
            return;
        }
        let was_on = self.configured();
        let on = settings.backup.is_some();
        if was_on && !on && self.ha_running() {
            self.transition(now, State::Idle, "high availability deleted".into());
            self.send_round(now);
            self.reset_run();
        }
        let mut old_pairs = std::mem::take(&mut self.pairs);
        self.pairs = settings
            .heartbeats
            .iter()
            .map(|&(s, d)| {
                match old_pairs
                    .iter()
                    .position(|p| p.source == s && p.destination == d)
                {
                    Some(i) => old_pairs.swap_remove(i),
                    None => Pair::new(s, d),
                }
            })
            .collect();
        let old_reach = std::mem::take(&mut self.reach);
        self.reach = settings
            .reach
            .iter()
            .map(|&a| Reach {
                address: a,
                reachable: old_reach
                    .iter()
                    .find(|r| r.address == a)
                    .and_then(|r| r.reachable),
            })
            .collect();
        self.settings = settings.clone();
        if !on {
            self.reset_run();
        }
        if !was_on && on && self.executor {
            self.enter_listen(now, "high availability configured".into());
        }
        if self.ha_running() {
            let interval = self.settings.interval();
            self.next_send = Some(self.next_send.map_or(now, |t| t.min(now + interval)));
            self.evaluate(now);
        }
    }

    /// The executor started: Listen (HA) or Idle (stand-alone).
    pub fn executor_started(&mut self, now: Instant) {
        let now = self.tick(now);
        if self.executor {
            self.evaluate(now);
            return;
        }
        self.executor = true;
        if self.configured() {
            self.enter_listen(now, "executor started".into());
            self.evaluate(now);
        } else {
            self.transition(now, State::Idle, "executor started (stand-alone)".into());
        }
    }

    /// The executor stopped: Down, with one last `Leaving` heartbeat so the partner takes over
    /// at once.
    pub fn executor_stopped(&mut self, now: Instant) {
        let now = self.tick(now);
        if !self.executor {
            self.evaluate(now);
            return;
        }
        self.executor = false;
        let was_ha = self.ha_running();
        self.transition(now, State::Down, "executor stopped".into());
        if was_ha {
            self.send_round(now);
        }
        self.reset_run();
    }

    /// A datagram on the heartbeat port failed to decode (`HeartbeatError::kind()`).
    pub fn record_bad_datagram(&mut self, kind: DropKind) {
        self.drops.count(kind);
    }

    /// A reach-target probe result. Unknown targets are ignored (returns false).
    pub fn handle_reach(&mut self, now: Instant, target: IpAddr, reachable: bool) -> bool {
        let now = self.tick(now);
        let found = match self.reach.iter_mut().find(|r| r.address == target) {
            Some(r) => {
                r.reachable = Some(reachable);
                true
            }
            None => false,
        };
        self.evaluate(now);
        found
    }

    /// Timers: heartbeat sends, hatimeout, Listen, takeover attempts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        self.evaluate(now);
    }

    /// Replication reports that the partner pair holds the full table.
    pub fn sync_complete(&mut self, now: Instant) {
        let now = self.tick(now);
        if self.heard(now) {
            self.synced = true;
        }
        self.evaluate(now);
    }

    /// The records have been handed over to the partner after this node yielded Active (the
    /// partner acknowledged them all): the partner may go Active now.
    pub fn handover_complete(&mut self, now: Instant) {
        let now = self.tick(now);
        if let Some(d) = self.standby_mut() {
            d.handover_until = None;
        }
        self.evaluate(now);
    }

    /// Whether this node is handing its records over after yielding Active.
    pub fn handing_over(&self) -> bool {
        self.handover_until().is_some()
    }

    /// Operator `highavailability takeover`: make this Standby node Active, yield-first.
    pub fn takeover(&mut self, now: Instant) -> Result<(), TakeoverError> {
        let now = self.tick(now);
        self.evaluate(now);
        if !self.configured() {
            return Err(TakeoverError::NotConfigured);
        }
        if !self.executor {
            return Err(TakeoverError::ExecutorStopped);
        }
        match self.state() {
            State::Standby => {}
            State::Active => return Err(TakeoverError::AlreadyActive),
            s => return Err(TakeoverError::NotStandby(s)),
        }
        if self.attempt().is_some() {
            return Err(TakeoverError::InProgress);
        }
        if self.maintenance {
            return Err(TakeoverError::Maintenance);
        }
        if let Some(why) = &self.config_behind {
            return Err(TakeoverError::ConfigBehind(why.clone()));
        }
        let heard = self.heard(now);
        let p = self.partner.as_ref().filter(|_| heard);
        if let Some(p) = p
            && !p.hb.version.compatible(&self.version)
        {
            return Err(TakeoverError::Incompatible {
                local: self.version,
                partner: p.hb.version,
            });
        }
        if self.sub_state() != SubState::Synchronized {
            let why = match (p, self.contact) {
                (None, _) => "partner not heard".to_string(),
                (Some(_), false) => "partner does not hear this node yet".to_string(),
                (Some(_), true) => "replication has not completed".to_string(),
            };
            return Err(TakeoverError::NotSynchronized(why));
        }
        let Some(p) = p else {
            return Err(TakeoverError::NotSynchronized("partner not heard".into()));
        };
        let local = self.reach_count();
        if p.hb.reach_count > local {
            return Err(TakeoverError::FewerReach {
                local,
                partner: p.hb.reach_count,
            });
        }
        if self.role() == Some(Role::Backup)
            && p.hb.role == Role::Primary
            && p.hb.recovery == Recovery::Auto
        {
            return Err(TakeoverError::AutoBackup);
        }
        self.start_attempt(now, AttemptKind::Operator);
        self.evaluate(now);
        Ok(())
    }

    /// Maintenance on or off. In maintenance a node hands Active to a Synchronized partner,
    /// loses every tie-break, and does not fail back; it still takes over from a lost partner.
    pub fn set_maintenance(&mut self, now: Instant, on: bool) {
        let now = self.tick(now);
        self.maintenance = on;
        if on {
            self.abandon_attempt(now, "maintenance started".into());
        }
        self.evaluate(now);
    }

    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    /// Configuration sync's gate: `Some(why)` while this node's configuration (or, on the
    /// Active, the partner's) is not the source's, `None` once they agree. While set, Active
    /// never changes hands by preemption (operator takeover, auto failback, yielding to a
    /// partner that asks or reaches more); a partner that is gone is still taken over from.
    pub fn set_config_behind(&mut self, now: Instant, behind: Option<String>) {
        if self.config_behind == behind {
            return;
        }
        let now = self.tick(now);
        self.config_behind = behind;
        self.evaluate(now);
    }

    /// Why Active may not change hands by preemption now (see [`Machine::set_config_behind`]).
    pub fn config_behind(&self) -> Option<&str> {
        self.config_behind.as_deref()
    }

    /// The partner's state, as its last heartbeat said.
    pub fn partner_state(&self) -> Option<State> {
        self.partner.as_ref().map(|p| p.hb.state)
    }

    /// The configuration digest the partner's last heartbeat carried.
    pub fn partner_config_digest(&self) -> Option<u64> {
        self.partner.as_ref().map(|p| p.hb.config_digest)
    }

    // ----- internals -----

    fn tick(&mut self, now: Instant) -> Instant {
        let now = self.last_now.map_or(now, |l| l.max(now));
        self.last_now = Some(now);
        now
    }

    fn role(&self) -> Option<Role> {
        self.settings.backup.map(|b| b.role)
    }

    fn recovery(&self) -> Recovery {
        self.settings.backup.map_or(Recovery::Auto, |b| b.recovery)
    }

    fn ha_running(&self) -> bool {
        matches!(self.state(), State::Listen | State::Active | State::Standby)
    }

    fn reach_count(&self) -> u16 {
        let n = self
            .reach
            .iter()
            .filter(|r| r.reachable == Some(true))
            .count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    fn reach_total(&self) -> u16 {
        u16::try_from(self.reach.len()).unwrap_or(u16::MAX)
    }

    fn compatible(&self) -> bool {
        self.partner
            .as_ref()
            .is_some_and(|p| p.hb.version.compatible(&self.version))
    }

    fn send_time(&self, seq: u64) -> Option<Instant> {
        self.sent
            .binary_search_by_key(&seq, |&(s, _)| s)
            .ok()
            .map(|i| self.sent[i].1)
    }

    /// The partner is heard: a heartbeat within hatimeout, and not leaving.
    fn heard(&self, now: Instant) -> bool {
        self.partner
            .as_ref()
            .is_some_and(|p| !self.left(p) && now < p.last_heard + self.silence())
    }

    /// How long the partner may be silent before it is lost: the slower of the two nodes'
    /// hatimeouts (each advertises its own in every heartbeat), so that a pair whose
    /// hatimeouts differ never flaps: the node with the short one would otherwise take over
    /// between two heartbeats of the node with the long one.
    pub(super) fn silence(&self) -> Duration {
        let own = self.settings.hatimeout();
        match &self.partner {
            Some(p) => own.max(Duration::from_millis(u64::from(p.hb.hatimeout_ms)).min(MAX_TIMER)),
            None => own,
        }
    }

    /// The partner said it is leaving (or stopped): take over at once. Only an authenticated
    /// heartbeat may say so; on an unkeyed pair anyone could, so there only silence counts.
    fn left(&self, p: &Partner) -> bool {
        self.settings.authenticated && p.left()
    }

    fn deaf(&self, now: Instant) -> bool {
        let h = self.silence();
        self.heard(now)
            && self
                .partner
                .as_ref()
                .is_some_and(|p| !p.fresh_ack && now >= p.heard_since + h)
            && self.first_send.is_some_and(|t| now >= t + h)
    }

    fn contact_kind(&self, now: Instant) -> Contact {
        match &self.partner {
            Some(p) if self.left(p) => Contact::Left,
            _ if !self.heard(now) => Contact::Silent,
            _ if self.contact => Contact::Ok,
            _ if self.deaf(now) => Contact::Deaf,
            _ => Contact::Pending,
        }
    }

    /// Forget the partner's contact (lost, or restarted).
    fn drop_contact(&mut self) {
        if self.contact {
            self.actions.push_back(Action::PartnerLost);
            self.partner_lost_at = self.last_now;
        }
        self.contact = false;
        self.contact_since = None;
        self.synced = false;
        self.sync_requested = false;
    }

    /// Clears everything that belongs to one HA run (executor stop, HA delete).
    fn reset_run(&mut self) {
        self.partner = None;
        self.partner_lost_at = None;
        self.contact = false;
        self.contact_since = None;
        self.synced = false;
        self.sync_requested = false;
        self.failback_not_before = None;
        self.acked_epoch = None;
        self.unconfirmed = None;
        match &mut self.phase {
            Phase::Standby(d) => *d = StandbyData::default(),
            Phase::Active(d) => *d = ActiveData::default(),
            Phase::Idle | Phase::Down | Phase::Listen { .. } => {}
        }
        self.next_send = None;
        self.first_send = None;
        self.sent_signature = None;
        self.sent.clear();
        for p in &mut self.pairs {
            p.last_heard = None;
        }
    }
}
