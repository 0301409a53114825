//! The forwarding engine: per-frame decisions over a compiled plan and shared tables.
//!
//! Sans-IO like the rest of the crate: the daemon's ring workers hand frames in with the time,
//! and transmit what the engine says.

pub mod conn;
pub mod engine;
pub mod neighbor;
pub mod plan;
pub mod stats;

pub use conn::{Conn, ConnTable, NatMapping};
pub use engine::{Engine, ReplicationQueue, RxMeta, Verdict};
pub use neighbor::NeighborTable;
pub use plan::{CounterRegistry, Plan, PortPlan, ServerPlan};
pub use stats::{DropReason, NodeCounters, ServerCounters, ServerCountersView};
