//! Server selection: which server a new connection to a cluster port goes to.
//!
//! One building block per `selectionalgorithm` of a port, plus the NAT source ports:
//!
//! * [`WeightedPicker`] — `connection`: every new connection is given the next server of a
//!   weighted round robin, so each server gets new connections in proportion to its weight.
//! * [`AffinityTable`] — `affinity` and `conn+affin` (with a stickytime above 0): a client
//!   keeps going to the same server while it opens new connections within the port's
//!   stickytime. When it has no live record, a server is picked by weight and a record made.
//!   Under `affinity` the record is all there is (no connection records): every packet
//!   follows it and refreshes it ([`AffinityTable::follow`]).
//! * [`selection_notes`] — settings a port's algorithm leaves without effect (`stickytime`
//!   under `connection`, `repstrategy connection` under `affinity`, ...), for warnings.
//! * [`Maglev`] — `hash`: the server follows from the flow hash through a weighted Maglev
//!   table. Both nodes of a pair given the same servers and weights pick the same server
//!   for every flow, without sharing any state; removing one of N servers moves only about
//!   1/N of the flows.
//! * [`NatPool`] — `method nat`: source ports on each server's returnaddress.
//!
//! All of them are plain data with `&self` methods, safe to share between forwarding
//! threads. None reads the clock: time is passed in as `now`. The tables and pickers
//! ([`Maglev`], [`WeightedPicker`]) are immutable; rebuild them when the servers or weights
//! of a port change.

pub mod affinity;
pub mod maglev;
pub mod natpool;
pub mod notes;
pub mod weighted;

pub use affinity::{AffinityKey, AffinityRecord, AffinityTable, Follow, Followed};
pub use maglev::{DEFAULT_SIZE, MAGLEV_FORMAT, Maglev};
pub use natpool::{DEFAULT_PORT_RANGE, NatPool};
pub use notes::selection_notes;
pub use weighted::WeightedPicker;
