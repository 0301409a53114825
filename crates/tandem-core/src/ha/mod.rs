//! High availability, sans IO: the heartbeat datagram and the HA state machine.
//!
//! * [`heartbeat`]: encoding, decoding and authentication of the heartbeat datagram (layout in
//!   `docs/heartbeat.md`), product versions, replay protection.
//! * [`machine`]: [`Machine`], one node's HA state machine (Idle, Listen, Active, Standby;
//!   Synchronized or not), driven by `now`-stamped inputs and returning [`Action`]s.
//!
//! The daemon's loop, in outline:
//!
//! ```text
//! on datagram from (src, dst) on the heartbeat port:
//!     match heartbeat::decode(bytes, key) {
//!         Err(e) => machine.record_bad_datagram(e.kind()),
//!         Ok(hb) => if let Some(pair) = machine.pair_index(dst, src) {
//!             if machine.handle_heartbeat(now, pair, &hb) == Received::New { replication(hb.records) }
//!         } else { machine.record_bad_datagram(DropKind::UnknownPair) }
//!     }
//! on reach probe result:        machine.handle_reach(now, target, ok)
//! on timer (machine.poll_timeout()): machine.handle_timeout(now)
//! after every call:             while let Some(a) = machine.poll_action() { carry out a }
//! ```

pub mod bundle;
pub mod datagram;
pub mod heartbeat;
pub mod machine;
pub mod mutual;
pub mod node;

#[cfg(test)]
mod tests;

pub use heartbeat::{
    DropKind, Heartbeat, HeartbeatError, ProductVersion, ReplayGuard, Replayed, Request, State,
    SubState, VersionParseError, carries_mac, decode, encode,
};
pub use machine::{
    Action, Contact, DropCounters, HaSettings, HaStatus, Machine, PairLiveness, PairStatus,
    PartnerStatus, ReachStatus, Received, TakeoverError, TransitionStatus,
};
pub use node::{ChannelCounters, ChannelStatus, Event, Node, Transmit};
