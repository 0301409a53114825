//! The health loop (issue 8): advisors, the manager and the SASP sessions of a node, on one
//! thread running a tokio current-thread runtime. Every probe and every SASP connection is a
//! task on it, so thousands of servers need no thread each.
//!
//! The rules are in tandem-core and sans-IO: [`advisor::Scheduler`] says which probe is due and
//! what its result means, [`manager::Manager`] computes weights, and [`Overlay::compute`]
//! combines the operator's settings, the advisors, the manager and the GWMs into the weight of
//! every server. This file only moves their inputs and outputs:
//! * probes out to [`probe::run`] and their outcomes back;
//! * scheduler events to the `serverDown` / `serverUp` / `managerAlert` / `managerClear`
//!   scripts;
//! * the engine's per-server counters into the manager every manager interval;
//! * the overlay, when it changed, to the node, which recompiles the forwarding plan (the node
//!   reads the latest overlay from [`Core`] under its own lock, so a commit's overlay is never
//!   replaced by an older one);
//! * the advisor states to the Standby every [`PARTNER_SEND`], and the partner's into the
//!   scheduler while this node does not forward.
//!
//! Lock order: the node's lock, then this module's [`Core`] lock, never the other way round:
//! the loop releases the core before it calls into the node.

pub mod probe;
pub mod sasp;
pub mod steering;

use crate::node::Node;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tandem_core::advisor::{self, Probe, TargetState};
use tandem_core::config::Config;
use tandem_core::health::{AdvisorInput, Overlay, SaspInput, ServerId};
use tandem_core::manager::{self, Manager};
use tokio::sync::Notify;

/// How often the Active sends its advisor states to the Standby (and at once after a change
/// of a server's state).
pub const PARTNER_SEND: Duration = Duration::from_secs(2);
/// Longest sleep of the loop when nothing is due (it re-checks everything then).
const IDLE: Duration = Duration::from_secs(1);
/// Partner chunks waiting to be seeded, at most (older ones are dropped: the next round of the
/// partner sends every state again).
const MAX_PARTNER_CHUNKS: usize = 256;

/// The health state of a node, shared by the loop and the node's commands.
pub struct Core {
    pub config: Arc<Config>,
    /// The node forwards (Active or stand-alone): advisors probe and the manager runs.
    pub forwarding: bool,
    pub scheduler: advisor::Scheduler,
    pub manager: Manager,
    /// The GWMs' members, as the SASP sessions last reported them.
    pub sasp: SaspInput,
    /// The SASP sessions (their tasks run on the loop's runtime).
    pub steering: steering::Steering,
    /// The configuration changed: the loop brings the SASP sessions in line.
    reconcile: bool,
    /// The overlay the node runs with.
    pub overlay: Overlay,
    /// Partner chunks not yet seeded.
    partner: Vec<Vec<u8>>,
    /// Partner chunks refused (undecodable).
    pub partner_refused: u64,
    /// A server's state changed since the last send to the partner.
    states_changed: bool,
    /// Something the overlay depends on changed (configuration, manager weights, SASP,
    /// seeding); the scheduler's own changes are seen by its generation.
    dirty: bool,
    /// The scheduler generation and time the overlay was last computed at.
    computed: Option<(u64, Instant)>,
}

/// The node's handle on its health loop.
pub struct Health {
    core: Arc<Mutex<Core>>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    /// Says when the loop has ended (its GWMs deregistered).
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Health {
    pub fn new() -> Health {
        Health {
            core: Arc::new(Mutex::new(Core {
                config: Arc::new(Config::default()),
                forwarding: false,
                scheduler: advisor::Scheduler::new(),
                manager: Manager::new(),
                sasp: SaspInput::default(),
                steering: steering::Steering::default(),
                reconcile: true,
                overlay: Overlay::default(),
                partner: Vec::new(),
                partner_refused: 0,
                states_changed: false,
                dirty: true,
                computed: None,
            })),
            wake: Arc::new(Notify::new()),
            stop: Arc::new(AtomicBool::new(false)),
            done: Mutex::new(None),
        }
    }

    /// Starts the loop's thread.
    pub fn start(&self, node: Arc<Node>) -> std::io::Result<()> {
        let core = self.core.clone();
        let wake = self.wake.clone();
        let stop = self.stop.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        *self.done.lock() = Some(done_rx);
        std::thread::Builder::new()
            .name("health".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "no health loop: advisors, manager and SASP do not run");
                        return;
                    }
                };
                rt.block_on(run(node, core, wake, stop));
                let _ = done_tx.send(());
            })
            .map(|_| ())
    }

    /// Stops the loop and waits (a few seconds at most) until its SASP sessions have
    /// deregistered.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        if let Some(done) = self.done.lock().take() {
            let _ = done.recv_timeout(steering::SHUTDOWN_WAIT + Duration::from_secs(2));
        }
    }

    /// A committed configuration (called with the node locked); returns the overlay for it,
    /// so that the plan compiled with the new configuration never uses stale weights.
    pub fn configure(&self, config: &Config) -> Overlay {
        let now = Instant::now();
        let mut core = self.core.lock();
        core.config = Arc::new(config.clone());
        core.scheduler.configure(now, config);
        core.manager.configure(config, now);
        core.reconcile = true;
        core.sasp = core.steering.input(config);
        let advisor = advisor_inputs(config, &core.scheduler, now);
        core.overlay = Overlay::compute(config, &advisor, core.manager.weights(), &core.sasp);
        let overlay = core.overlay.clone();
        drop(core);
        self.wake.notify_one();
        overlay
    }

    /// Whether the node forwards now (called with the node locked, whenever its plan changes).
    pub fn set_forwarding(&self, forwarding: bool) {
        let now = Instant::now();
        let mut core = self.core.lock();
        if core.forwarding == forwarding {
            return;
        }
        core.forwarding = forwarding;
        if forwarding {
            // Taking over: start from the partner's last known states, then probe at once.
            seed_partner(&mut core, now);
        }
        core.dirty = true;
        core.scheduler.set_running(now, forwarding);
        drop(core);
        self.wake.notify_one();
    }

    /// A chunk of the partner's advisor states (the partner is Active).
    pub fn partner_chunk(&self, chunk: Vec<u8>) {
        let now = Instant::now();
        let mut core = self.core.lock();
        if core.partner.len() >= MAX_PARTNER_CHUNKS {
            core.partner.remove(0);
        }
        core.partner.push(chunk);
        if !core.forwarding {
            seed_partner(&mut core, now);
            drop(core);
            self.wake.notify_one();
        }
    }

    /// Runs `f` on the health state (reports).
    pub fn with_core<T>(&self, f: impl FnOnce(&Core) -> T) -> T {
        f(&self.core.lock())
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

/// Seeds the scheduler with the partner's chunks received so far (this node does not forward).
fn seed_partner(core: &mut Core, now: Instant) {
    let chunks = std::mem::take(&mut core.partner);
    for chunk in chunks {
        match TargetState::decode_all(&chunk) {
            Ok(states) => core.scheduler.seed(now, &states),
            Err(e) => {
                core.partner_refused += 1;
                tracing::debug!(error = %e, "partner advisor states refused");
            }
        }
    }
}

/// The advisors' view of every server of `config`, as the overlay and the manager take it.
pub fn advisor_inputs(
    config: &Config,
    scheduler: &advisor::Scheduler,
    now: Instant,
) -> BTreeMap<ServerId, AdvisorInput> {
    let mut out = BTreeMap::new();
    for (caddr, cluster) in &config.clusters {
        for (pnum, port) in &cluster.ports {
            for saddr in port.servers.keys() {
                if let Some(h) = scheduler.health(now, *caddr, *pnum, *saddr) {
                    out.insert(
                        ServerId {
                            cluster: *caddr,
                            port: *pnum,
                            server: *saddr,
                        },
                        AdvisorInput {
                            down: h.state == advisor::State::Down,
                            load: h.port_load,
                            system: h.system_load,
                        },
                    );
                }
            }
        }
    }
    out
}

/// Splits the advisor states into chunks that each fit one partner-channel frame.
fn partner_chunks(states: &[TargetState]) -> Vec<Vec<u8>> {
    TargetState::encode_chunks(states, tandem_core::ha::datagram::FRAME_MESSAGE_BYTES)
}

/// What one step of the loop asks the shell to do.
#[derive(Default)]
struct Step {
    probes: Vec<Probe>,
    scripts: Vec<advisor::Event>,
    overlay_changed: bool,
    partner: Vec<Vec<u8>>,
    wake: Option<Instant>,
    script_dir: Option<PathBuf>,
}

/// One step on the core: due probes, events, the manager, the overlay, the partner send.
fn step(core: &mut Core, now: Instant, last_partner_send: &mut Option<Instant>) -> Step {
    let mut out = Step {
        script_dir: core.config.ha.script_dir.as_ref().map(PathBuf::from),
        ..Step::default()
    };
    while let Some(p) = core.scheduler.poll_probe(now) {
        out.probes.push(p);
    }
    while let Some(e) = core.scheduler.poll_event() {
        core.states_changed = true;
        out.scripts.push(e);
    }
    // The overlay, when an input moved (and every IDLE, for advisor reports that age out).
    let generation = core.scheduler.generation();
    let stale = core
        .computed
        .is_none_or(|(g, t)| g != generation || now >= t + IDLE);
    if core.dirty || stale {
        core.dirty = false;
        core.computed = Some((generation, now));
        let config = core.config.clone();
        let advisor = advisor_inputs(&config, &core.scheduler, now);
        let overlay = Overlay::compute(&config, &advisor, core.manager.weights(), &core.sasp);
        if overlay != core.overlay {
            core.overlay = overlay;
            out.overlay_changed = true;
        }
    }
    if core.forwarding
        && (core.states_changed || last_partner_send.is_none_or(|t| now >= t + PARTNER_SEND))
    {
        core.states_changed = false;
        *last_partner_send = Some(now);
        out.partner = partner_chunks(&core.scheduler.export());
    }
    let mut wake = now + IDLE;
    if let Some(t) = core.scheduler.poll_timeout() {
        wake = wake.min(t);
    }
    if core.forwarding {
        if let Some(t) = core.manager.poll_timeout() {
            wake = wake.min(t);
        }
        if let Some(t) = *last_partner_send {
            wake = wake.min(t + PARTNER_SEND);
        }
    }
    out.wake = Some(wake.max(now));
    out
}

async fn run(node: Arc<Node>, core: Arc<Mutex<Core>>, wake: Arc<Notify>, stop: Arc<AtomicBool>) {
    let mut probes = probe::runner::Runner::new(probe::ProbeContext::new(None));
    let mut script_dir: Option<PathBuf> = None;
    let mut last_partner_send: Option<Instant> = None;
    let (sasp_tx, mut sasp_rx) = tokio::sync::mpsc::channel(sasp::EVENT_QUEUE);
    let seed = crate::ha::random_u64();
    loop {
        if stop.load(Ordering::Relaxed) {
            let mut sessions = std::mem::take(&mut core.lock().steering);
            sessions.shutdown(&mut sasp_rx).await;
            return;
        }
        {
            let mut c = core.lock();
            if c.reconcile {
                c.reconcile = false;
                let config = c.config.clone();
                c.steering.reconcile(&config, &sasp_tx, seed);
                c.sasp = c.steering.input(&config);
                c.dirty = true;
            }
        }
        let now = Instant::now();
        // The manager's interval: the engine's counters, read without any lock but its own.
        let manager_due = {
            let c = core.lock();
            c.forwarding && c.manager.poll_timeout().is_some_and(|t| t <= now)
        };
        if manager_due {
            let config = core.lock().config.clone();
            let samples = manager::samples(&config, &node.engine.counters);
            let mut c = core.lock();
            let advisor = advisor_inputs(&config, &c.scheduler, now);
            if c.manager.handle_timeout(now, &samples, &advisor) {
                c.dirty = true;
            }
        }
        let s = step(&mut core.lock(), now, &mut last_partner_send);
        if script_dir != s.script_dir {
            script_dir = s.script_dir.clone();
            probes.set_context(probe::ProbeContext::new(s.script_dir.clone()));
        }
        for p in s.probes {
            probes.spawn(p);
        }
        for e in s.scripts {
            tracing::info!(script = e.script(), env = ?e.env(), "advisor event");
            node.queue_health_script(e.script(), e.env());
        }
        if s.overlay_changed {
            node.refresh_overlay();
        }
        if !s.partner.is_empty() {
            node.send_health(&s.partner);
        }
        let until = s.wake.unwrap_or(now + IDLE);
        tokio::select! {
            _ = wake.notified() => {}
            Some((id, outcome)) = probes.next(), if !probes.is_empty() => {
                core.lock().scheduler.handle_result(Instant::now(), id, outcome);
            }
            Some(event) = sasp_rx.recv() => {
                let mut c = core.lock();
                if c.steering.handle_event(event) {
                    let config = c.config.clone();
                    c.sasp = c.steering.input(&config);
                    c.dirty = true;
                }
            }
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tandem_core::advisor::{State, TargetKey};
    use tandem_core::config::{AdvisorKey, AdvisorKind};

    #[test]
    fn partner_chunks_fit_one_frame_each_and_lose_nothing() {
        let states: Vec<TargetState> = (0..5000u32)
            .map(|i| TargetState {
                key: TargetKey {
                    advisor: AdvisorKey {
                        kind: AdvisorKind::Http,
                        cluster: None,
                        port: 1 + i as u16,
                    },
                    cluster: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
                    server: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 256) as u8)),
                },
                state: if i % 3 == 0 { State::Down } else { State::Up },
                load: Some(i),
                failures: i % 4,
            })
            .collect();
        let chunks = partner_chunks(&states);
        assert!(chunks.len() > 1);
        let mut back = Vec::new();
        for c in &chunks {
            assert!(c.len() <= tandem_core::ha::datagram::FRAME_MESSAGE_BYTES);
            back.extend(TargetState::decode_all(c).unwrap());
        }
        assert_eq!(back, states);
    }
}
