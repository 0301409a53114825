//! Replication of connection and affinity records from the active node to the standby.
//!
//! Sans-IO, like the rest of the crate: bytes and `now` go in, bytes and decisions come out.
//! The wire format is described byte by byte in `docs/replication.md`.
//!
//! * [`record`](ConnectionRecord): [`ConnectionRecord`] and [`AffinityRecord`] with compact
//!   fixed encodings (38 bytes for a typical IPv4 NAT connection, so at least 36 fit in a
//!   1400-byte batch), read with a [`Reader`] that never panics. Element framing
//!   (`type, len, body`) lets receivers skip element types they do not know.
//! * [`validate`]: checks a received record against the receiver's [`Config`] (IBM's backup
//!   crashed on corrupt records, APARs PH37663 and PI72199); refusals are counted by
//!   [`Invalid`] reason.
//! * [`Sender`]: a queue that keeps one record per key (a newer record replaces a queued
//!   older one), batches with sequence numbers, selective acknowledgements, retransmission
//!   after an adaptive timeout, a window of unacknowledged batches, a token bucket for
//!   pacing, and full synchronisation between start and end markers.
//! * [`Receiver`]: delivers the records of each batch once and in the order sent (holding
//!   batches that arrive early), acknowledges duplicates again without delivering them,
//!   counts garbage, and reports the end of a full synchronisation.
//!
//! The transport is not UDP-specific: a batch or an acknowledgement is a byte string that the
//! daemon puts in a heartbeat's records section or in a datagram of its own (with its own
//! HMAC, which the receiver must check before [`Receiver::on_batch`]).
//!
//! [`Config`]: crate::config::Config

mod batch;

mod receiver;
mod record;
mod sender;
mod validate;

#[cfg(test)]
mod tests;

pub use crate::codec::Reader;
pub use batch::{
    ACK_BITMAP_BITS, ACK_LEN, Ack, BATCH_HEADER_LEN, Batch, BatchHeader, KIND_ACK, KIND_BATCH,
    MessageError, MessageKind, VERSION, message_kind,
};
pub use receiver::{
    DropCounts, ReceiveOutcome, ReceivedSync, Receiver, ReceiverConfig, ReceiverStats,
};
pub use record::{
    AffinityRecord, ConnectionRecord, ELEMENT_HEADER, Item, Record, RecordError, RecordKey,
    TYPE_AFFINITY, TYPE_CONNECTION, TYPE_SYNC_END, TYPE_SYNC_START, ip_proto, protocol_of,
};
pub use sender::{FullSyncStats, PushOutcome, Sender, SenderConfig, SenderStats, SyncSource};
pub use validate::{Invalid, InvalidCounts, validate};
