//! The forwarding engine: per-frame decisions over a compiled plan and shared tables.
//!
//! Sans-IO like the rest of the crate: the daemon's ring workers hand frames in with the time,
//! and transmit what the engine says.

mod admit;
mod by_affinity;
mod compact;
pub mod conn;
pub mod control;
pub mod engine;
pub mod fragments;
mod from_server;
mod icmp_error;
pub mod neighbor;
pub mod plan;
pub mod replicate;
pub mod snapshot;
pub mod stats;
pub mod table;
mod to_server;
pub mod vlan;

pub use conn::{Conn, NatMapping};
pub use control::{ControlFrame, ControlFrameKind};
pub use engine::{
    BUDGET_BYTES_PER_RECORD, DEFAULT_MAX_CONNECTIONS, Engine, RxMeta, Verdict,
    default_max_connections,
};
pub use fragments::{FRAGMENT_DATAGRAMS, FRAGMENT_TIMEOUT, FragmentTable};
pub use neighbor::NeighborTable;
pub use plan::{CounterRegistry, DEFAULT_MTU_FRAME, Plan, PortPlan, ServerPlan, mtu_frame};
pub use replicate::{
    Change, REPLICATION_QUEUE, Refused, ReplicatedCounters, ReplicationQueue, needs_resend,
    replication_needed,
};
pub use snapshot::{LoopbackSync, SnapshotCursor, loopback_full_sync};
pub use stats::{
    DropReason, MAX_WORKERS, NodeCounters, PerWorker, ServerCounters, ServerCountersView,
};
pub use table::{ConnTable, HALFOPEN_NAT_PER_CLIENT, NatPortKey, Removed};
