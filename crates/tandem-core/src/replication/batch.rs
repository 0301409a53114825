//! Batch and acknowledgement messages (see `docs/replication.md`).
//!
//! A batch is a header (`version, kind, session, seq, low`) followed by elements up to the end
//! of the payload. An acknowledgement carries the next sequence number the receiver expects
//! and a bitmap of the 64 batches after it that it already holds. Both are transport-neutral:
//! the daemon puts them in a heartbeat's records section or in a datagram of their own with
//! its own authentication.

use crate::codec::{Reader, put_u32, put_u64};

/// Version of the replication messages.
pub const VERSION: u8 = 1;
/// `kind` of a batch of records.
pub const KIND_BATCH: u8 = 1;
/// `kind` of an acknowledgement.
pub const KIND_ACK: u8 = 2;
/// Bytes of a batch header.
pub const BATCH_HEADER_LEN: usize = 14;
/// Bytes of an acknowledgement.
pub const ACK_LEN: usize = 18;
/// Batches after [`Ack::next`] that the bitmap reports.
pub const ACK_BITMAP_BITS: u32 = 64;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message too short")]
    Truncated,
    #[error("unsupported replication version {0}")]
    Version(u8),
    #[error("unexpected message kind {0}")]
    Kind(u8),
    #[error("bytes after the end of the message")]
    TrailingBytes,
}

/// The kind of a replication message, without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Batch,
    Ack,
}

/// What kind of message `bytes` holds (`None`: not a replication message of this version).
pub fn message_kind(bytes: &[u8]) -> Option<MessageKind> {
    match bytes {
        [VERSION, KIND_BATCH, ..] => Some(MessageKind::Batch),
        [VERSION, KIND_ACK, ..] => Some(MessageKind::Ack),
        _ => None,
    }
}

fn check_head(r: &mut Reader<'_>, kind: u8) -> Result<(), MessageError> {
    let version = r.u8().ok_or(MessageError::Truncated)?;
    if version != VERSION {
        return Err(MessageError::Version(version));
    }
    let k = r.u8().ok_or(MessageError::Truncated)?;
    if k != kind {
        return Err(MessageError::Kind(k));
    }
    Ok(())
}

/// The header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The sender's session (a new one each time the sender starts over).
    pub session: u32,
    /// Sequence number of this batch.
    pub seq: u32,
    /// The sender's oldest unacknowledged sequence number: every batch before it has been
    /// acknowledged.
    pub low: u32,
}

impl BatchHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, KIND_BATCH]);
        put_u32(out, self.session);
        put_u32(out, self.seq);
        put_u32(out, self.low);
    }

    /// Reads the header; `r` is left at the first element.
    pub fn decode(r: &mut Reader<'_>) -> Result<BatchHeader, MessageError> {
        check_head(r, KIND_BATCH)?;
        let t = MessageError::Truncated;
        Ok(BatchHeader {
            session: r.u32().ok_or(t)?,
            seq: r.u32().ok_or(t)?,
            low: r.u32().ok_or(t)?,
        })
    }
}

/// A batch ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub seq: u32,
    /// The whole message: header and elements.
    pub bytes: Vec<u8>,
    /// Records in it (markers not counted).
    pub records: usize,
    /// A retransmission of a batch sent before.
    pub retransmit: bool,
}

/// An acknowledgement of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The session acknowledged.
    pub session: u32,
    /// Every batch before this sequence number has been received (and this one has not).
    pub next: u32,
    /// Bit `i` set: batch `next + 1 + i` has been received too.
    pub received: u64,
}

impl Ack {
    /// Whether the acknowledgement covers batch `seq`.
    pub fn covers(&self, seq: u32) -> bool {
        let d = seq.wrapping_sub(self.next);
        if (d as i32) < 0 {
            return true;
        }
        (1..=ACK_BITMAP_BITS).contains(&d) && self.received & (1 << (d - 1)) != 0
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, KIND_ACK]);
        put_u32(out, self.session);
        put_u32(out, self.next);
        put_u64(out, self.received);
    }

    /// The encoded acknowledgement.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ACK_LEN);
        self.encode(&mut out);
        out
    }

    /// Reads an acknowledgement that is exactly `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Ack, MessageError> {
        let mut r = Reader::new(bytes);
        check_head(&mut r, KIND_ACK)?;
        let t = MessageError::Truncated;
        let ack = Ack {
            session: r.u32().ok_or(t)?,
            next: r.u32().ok_or(t)?,
            received: r.u64().ok_or(t)?,
        };
        if !r.is_empty() {
            return Err(MessageError::TrailingBytes);
        }
        Ok(ack)
    }
}
