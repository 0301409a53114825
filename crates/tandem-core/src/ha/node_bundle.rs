//! The node's hooks for the diagnostics pull protocol ([`super::super::bundle`]): requests
//! to the partner and answers to it travel in frames of direction `Diagnostics`, on the pair
//! the partner was last heard on, signed like every frame.

use super::super::bundle::BundleCounters;
use super::{Direction, Event, Instant, Node, SocketAddr};

impl Node {
    /// Starts pulling the partner's diagnostics bundle; the id to ask [`Node::bundle_outcome`]
    /// about. Refused when no partner is in contact (the reason says so).
    pub fn request_bundle(&mut self, now: Instant) -> Result<u64, String> {
        let now = self.tick(now);
        if !self.machine.configured() {
            return Err("high availability is not configured on this node".into());
        }
        if !self.machine.in_contact() || self.machine.partner_pair().is_none() {
            return Err("no partner in contact (it is not heard on any heartbeat pair)".into());
        }
        self.next_bundle = self.next_bundle.wrapping_add(1);
        let id = self.next_bundle;
        self.bundles.request(now, id);
        self.after(now);
        Ok(id)
    }

    /// The outcome of pull `id`, once there is one (taken): the partner's bundle or why not.
    pub fn bundle_outcome(&mut self, id: u64) -> Option<Result<Vec<u8>, String>> {
        self.bundles.take_outcome(id)
    }

    /// The shell built the bundle asked for by [`Event::BuildBundle`] (or could not).
    pub fn bundle_built(&mut self, now: Instant, id: u64, bundle: Result<Vec<u8>, String>) {
        let now = self.tick(now);
        self.bundles.built(id, bundle);
        self.after(now);
    }

    pub fn bundle_counters(&self) -> &BundleCounters {
        self.bundles.counters()
    }

    /// Retries and deadlines of a pull; a pull ends at once when the partner is lost.
    pub(super) fn bundle_timeout(&mut self, now: Instant) {
        if !self.machine.in_contact() {
            self.bundles
                .abandon("the partner was lost during the transfer");
        }
        if self.bundles.poll_timeout().is_some_and(|t| t <= now) {
            self.bundles.handle_timeout(now);
        }
    }

    /// Sends the protocol's messages to the partner; asks the shell for the bundles to build.
    pub(super) fn send_bundle_messages(&mut self) {
        while let Some(id) = self.bundles.poll_build() {
            self.events.push_back(Event::BuildBundle(id));
        }
        let target = match (self.machine.partner_pair(), self.machine.port()) {
            (Some((source, dest)), Some(port)) => Some((source, SocketAddr::new(dest, port))),
            _ => None,
        };
        while let Some(m) = self.bundles.poll_message() {
            if let Some((source, destination)) = target {
                self.send_frame(source, destination, Direction::Diagnostics, &m);
            }
        }
    }
}
