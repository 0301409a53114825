//! Configuration sync, sans IO: the Active node's shared configuration, mirrored on its
//! partner (see `docs/config-sync.md`).
//!
//! * [`shared`]: which statements are shared and which node-local, the shared text and its
//!   digest (the one the heartbeats carry), and how a follower builds a candidate
//!   configuration from what it receives (all or nothing).
//! * [`log`]: the change log (sequence-numbered entries in a lineage, bounded).
//! * [`wire`]: the messages, carried in partner-channel frames of direction Config (5).
//! * [`engine`]: one node's end, the source's answers and the follower's pulls, with
//!   retransmission, chunk reassembly, the states and the counters.

pub mod engine;
pub mod log;
pub mod shared;
pub mod wire;

pub use engine::{
    Apply, Origin, Role, SyncConfig, SyncCounters, SyncEngine, SyncEvent, SyncState, SyncStatus,
};
pub use log::{ChangeLog, Entry};
pub use shared::{
    candidate, first_difference, is_node_local, local_lines, shared_digest, shared_lines,
    shared_text,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pull;
