//! The Config direction of the partner channel: the node's glue to configuration sync
//! (`crate::sync`). Sync messages travel in replication frames of direction Config (5),
//! sealed with the pair's key and both epochs, on the pair the partner was last heard on.

use super::{Direction, Event, Node, State};
use crate::config::Config;
use crate::sync::{self, Origin, Role, SyncConfig, SyncEngine, SyncEvent, SyncStatus};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The engine of a new node: a lineage of its own (from the run's epoch and random session).
pub(super) fn new_engine(epoch: u64, session: u32) -> SyncEngine {
    let mut seed = epoch.to_be_bytes().to_vec();
    seed.extend_from_slice(&session.to_be_bytes());
    let lineage = xxhash_rust::xxh3::xxh3_64(&seed);
    SyncEngine::new(
        lineage,
        sync::shared_text(&Config::default()),
        SyncConfig {
            max_message: super::FRAME_MESSAGE_BYTES,
            ..SyncConfig::default()
        },
    )
}

impl Node {
    /// The origin of the change the next [`Node::configure`] brings (a command's canonical
    /// line, a file load, or an entry from the partner). Without one a change is recorded
    /// as replacing the whole shared part.
    pub fn set_change_origin(&mut self, origin: Origin) {
        self.sync_origin = Some(origin);
    }

    /// Forgets an origin whose commit did not happen.
    pub fn clear_change_origin(&mut self) {
        self.sync_origin = None;
    }

    /// Configuration sync's status (`data["sync"]` of `highavailability status`).
    pub fn sync_status(&self, now: Instant) -> SyncStatus {
        self.sync.status(now)
    }

    /// Whether a change of the shared configuration must be refused here, and the message:
    /// this node follows the Active partner.
    pub fn sync_refusal(&mut self, now: Instant) -> Option<String> {
        if !self.sync.refuses_changes(now) {
            return None;
        }
        self.sync.note_refused();
        let active = self
            .machine
            .partner_pair()
            .map_or("(unknown)".to_string(), |(_, d)| d.to_string());
        let state = self.machine.state();
        Some(format!(
            "refused: configuration changes are made on the Active node {active} (this node is \
             {state} and receives them by configuration sync; node-local statements are allowed \
             here)"
        ))
    }

    /// The shell could not apply the last [`Event::SyncApply`].
    pub fn sync_apply_failed(&mut self, now: Instant, reason: String) {
        let now = self.tick(now);
        self.sync.apply_failed(now, reason);
        self.after(now);
    }

    /// The shared part of the new running configuration (digest for the heartbeats).
    pub(super) fn sync_configure(&mut self, now: Instant, config: &Config) -> u64 {
        if self.instance != 0 {
            // Mutual HA: sync runs on instance 0 alone; the others only report the digest.
            self.sync_origin = None;
            return sync::shared_digest(config);
        }
        let text = sync::shared_text(config);
        self.sync.set_enabled(now, config.ha.sync);
        let origin = self.sync_origin.take();
        self.sync.set_shared(now, text, origin);
        self.sync.digest()
    }

    /// Gives sync the pair as it stands, and the machine sync's gate.
    pub(super) fn sync_step(&mut self, now: Instant) {
        if self.instance != 0 {
            // Mutual HA: configuration sync runs on instance 0 alone (docs/config-sync.md).
            return;
        }
        let m = &self.machine;
        let contact = m.configured() && m.in_contact() && m.partner_compatible() == Some(true);
        let role = match (contact, m.state()) {
            (false, _) => Role::Standalone,
            (true, State::Active) => Role::Source,
            (true, _) => Role::Follower,
        };
        let stall = (m.settings().hatimeout() * 3).max(Duration::from_secs(1));
        let partner_digest = m.partner_config_digest().filter(|_| contact);
        let active = m.state() == State::Active;
        self.sync.update(now, role, active, partner_digest, stall);
        let behind = self.sync.behind(now);
        if behind.as_deref() != self.machine.config_behind() {
            self.machine.set_config_behind(now, behind);
        }
    }

    /// Sends sync's messages to the partner and passes its events on.
    pub(super) fn sync_output(&mut self) {
        if self.instance != 0 {
            return;
        }
        let to = match (self.machine.partner_pair(), self.machine.port()) {
            (Some((source, dest)), Some(port)) if self.machine.in_contact() => {
                Some((source, SocketAddr::new(dest, port)))
            }
            _ => None,
        };
        while let Some(message) = self.sync.poll_transmit() {
            if let Some((source, destination)) = to {
                self.send_frame(source, destination, Direction::Config, &message);
            }
        }
        while let Some(e) = self.sync.poll_event() {
            self.events.push_back(match e {
                SyncEvent::Apply(a) => Event::SyncApply(a),
                SyncEvent::Note(n) => Event::Note(n),
                SyncEvent::Discarded(text) => Event::SyncDiscarded(text),
            });
        }
    }
}
