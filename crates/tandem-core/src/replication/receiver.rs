//! The receiving side: in-order delivery of batches, duplicates and garbage counted,
//! acknowledgements, and the end of a full synchronisation.

use super::batch::{ACK_BITMAP_BITS, Ack, BatchHeader};
use super::record::{Item, Record, RecordError};
use super::validate::{InvalidCounts, validate};
use crate::codec::Reader;
use crate::config::Config;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// Settings of a [`Receiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Batches beyond the next expected one that are held until the gap fills; a batch
    /// further ahead is dropped (and retransmitted by the sender later). At least the
    /// sender's window.
    pub window: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig { window: 256 }
    }
}

/// Things a receiver dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// Payloads that are not a batch of this version (or too short for a header).
    pub garbage: u64,
    /// Batches of the sender's previous session.
    pub stale_session: u64,
    /// Batches already received (acknowledged again, not delivered again).
    pub duplicate_batches: u64,
    /// Batches too far ahead of the next expected one.
    pub out_of_window: u64,
    /// Elements that could not be read (the rest of their batch was still used, when its
    /// framing allowed).
    pub malformed: u64,
    /// Elements of a type this version does not know (skipped).
    pub unknown: u64,
    /// Records refused by [`validate`], by reason.
    pub invalid: InvalidCounts,
}

impl DropCounts {
    /// Adds `o`'s counts to these.
    pub fn merge(&mut self, o: &DropCounts) {
        self.garbage += o.garbage;
        self.stale_session += o.stale_session;
        self.duplicate_batches += o.duplicate_batches;
        self.out_of_window += o.out_of_window;
        self.malformed += o.malformed;
        self.unknown += o.unknown;
        self.invalid.merge(&o.invalid);
    }

    /// Everything dropped.
    pub fn total(&self) -> u64 {
        self.garbage
            + self.stale_session
            + self.duplicate_batches
            + self.out_of_window
            + self.malformed
            + self.unknown
            + self.invalid.total()
    }
}

/// What one received payload produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiveOutcome {
    /// Records now deliverable, in the order sent, to apply to the tables in this order
    /// (an `ended` connection record deletes).
    pub records: Vec<Record>,
    /// The acknowledgement to send back (`None` for garbage).
    pub ack: Option<Ack>,
    /// A full synchronisation has completed: every record it carried has been delivered
    /// (one payload may complete more than one: see [`ReceiverStats::syncs_completed`]).
    pub sync_complete: bool,
    /// The receiver has started following a new sender session. If it did not start at the
    /// session's beginning, records sent before may be missing: request a full sync unless
    /// one is under way.
    pub new_session: bool,
    /// Batches the sender considers acknowledged were never received here; request a full
    /// sync.
    pub gap: bool,
    pub dropped: DropCounts,
}

/// A completed full synchronisation, as the receiver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReceivedSync {
    pub epoch: u32,
    /// Records delivered between the start and end markers.
    pub records: u64,
    /// Records the sender queued for it (records replaced in its queue by newer ones sent
    /// earlier make the two differ).
    pub announced: u32,
    #[serde(skip)]
    pub completed_at: Instant,
}

/// Counters of a [`Receiver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReceiverStats {
    /// Batches accepted (delivered now or held for later).
    pub batches: u64,
    /// Records delivered.
    pub records: u64,
    /// Sender sessions followed.
    pub sessions: u64,
    /// Times batches were missed for good (see [`ReceiveOutcome::gap`]).
    pub gaps: u64,
    /// Batches held waiting for an earlier one.
    pub held: usize,
    /// Full synchronisations completed.
    pub syncs_completed: u64,
    /// Epoch of the full synchronisation being received, if any.
    pub sync_in_progress: Option<u32>,
    pub last_full_sync: Option<ReceivedSync>,
    pub dropped: DropCounts,
}

/// The receiving side of replication.
pub struct Receiver {
    cfg: ReceiverConfig,
    session: Option<u32>,
    /// The session followed before the current one: its late batches are dropped.
    retired: Option<u32>,
    /// Next sequence number to deliver.
    next: u32,
    /// Batches received ahead of `next`, decoded.
    held: HashMap<u32, Vec<Item>>,
    /// Full synchronisation under way: epoch and records delivered since its start.
    sync: Option<(u32, u64)>,
    stats: ReceiverStats,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new(ReceiverConfig::default())
    }
}

impl Receiver {
    pub fn new(cfg: ReceiverConfig) -> Receiver {
        Receiver {
            cfg,
            session: None,
            retired: None,
            next: 0,
            held: HashMap::new(),
            sync: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Forgets the sender's session (e.g. the partner is gone); the next batch starts a new
    /// one. Counters are kept.
    pub fn reset(&mut self) {
        if let Some(s) = self.session.take() {
            self.retired = Some(s);
        }
        self.held.clear();
        self.sync = None;
    }

    /// Takes a received payload: a batch, or anything else (counted as garbage). Never
    /// panics, whatever the bytes.
    pub fn on_batch(&mut self, bytes: &[u8], now: Instant) -> ReceiveOutcome {
        let mut out = ReceiveOutcome::default();
        self.receive(bytes, now, &mut out);
        self.stats.dropped.merge(&out.dropped);
        out
    }

    /// [`on_batch`](Self::on_batch), then [`validate`] of each delivered record against
    /// `config`: refused records are removed from the outcome and counted.
    pub fn on_batch_validated(
        &mut self,
        bytes: &[u8],
        now: Instant,
        config: &Config,
    ) -> ReceiveOutcome {
        let mut out = ReceiveOutcome::default();
        self.receive(bytes, now, &mut out);
        let invalid = &mut out.dropped.invalid;
        out.records.retain(|r| match validate(r, config) {
            Ok(()) => true,
            Err(reason) => {
                invalid.add(reason);
                false
            }
        });
        self.stats.dropped.merge(&out.dropped);
        out
    }

    fn receive(&mut self, bytes: &[u8], now: Instant, out: &mut ReceiveOutcome) {
        let mut r = Reader::new(bytes);
        let Ok(hdr) = BatchHeader::decode(&mut r) else {
            out.dropped.garbage += 1;
            return;
        };
        if self.session != Some(hdr.session) {
            if self.retired == Some(hdr.session) {
                out.dropped.stale_session += 1;
                return;
            }
            if let Some(old) = self.session {
                self.retired = Some(old);
            }
            self.session = Some(hdr.session);
            self.next = hdr.low;
            self.held.clear();
            self.sync = None;
            self.stats.sessions += 1;
            out.new_session = true;
        }
        let ahead = hdr.low.wrapping_sub(self.next);
        if ahead != 0 && (ahead as i32) > 0 {
            // The sender holds batches before `low` for acknowledged, yet they never came
            // (a sender does not skip batches within a session: defensive). A batch's `low`
            // is never after its `seq`, and the jump must stay within the window.
            let d = hdr.seq.wrapping_sub(self.next);
            if ahead > d || d >= self.cfg.window {
                out.dropped.out_of_window += 1;
                out.ack = self.ack();
                return;
            }
            self.skip_to(hdr.low, now, out);
        }
        let d = hdr.seq.wrapping_sub(self.next);
        if (d as i32) < 0 || self.held.contains_key(&hdr.seq) {
            out.dropped.duplicate_batches += 1;
        } else if d >= self.cfg.window {
            out.dropped.out_of_window += 1;
        } else {
            let items = decode_items(&mut r, &mut out.dropped);
            self.stats.batches += 1;
            self.held.insert(hdr.seq, items);
            self.deliver_ready(now, out);
        }
        out.ack = self.ack();
    }

    /// Delivers what was held before `low`, in order, and moves on to `low`.
    fn skip_to(&mut self, low: u32, now: Instant, out: &mut ReceiveOutcome) {
        let span = low.wrapping_sub(self.next);
        let mut before: Vec<u32> = self
            .held
            .keys()
            .copied()
            .filter(|s| s.wrapping_sub(self.next) < span)
            .collect();
        before.sort_unstable_by_key(|s| s.wrapping_sub(self.next));
        for seq in before {
            if let Some(items) = self.held.remove(&seq) {
                self.apply(items, now, out);
            }
        }
        self.next = low;
        self.stats.gaps += 1;
        out.gap = true;
        self.deliver_ready(now, out);
    }

    fn deliver_ready(&mut self, now: Instant, out: &mut ReceiveOutcome) {
        while let Some(items) = self.held.remove(&self.next) {
            self.next = self.next.wrapping_add(1);
            self.apply(items, now, out);
        }
    }

    fn apply(&mut self, items: Vec<Item>, now: Instant, out: &mut ReceiveOutcome) {
        for item in items {
            match item {
                Item::Record(r) => {
                    self.stats.records += 1;
                    if let Some((_, n)) = &mut self.sync {
                        *n += 1;
                    }
                    out.records.push(r);
                }
                Item::SyncStart { epoch } => self.sync = Some((epoch, 0)),
                Item::SyncEnd { epoch, records } => {
                    if let Some((e, n)) = self.sync
                        && e == epoch
                    {
                        self.sync = None;
                        out.sync_complete = true;
                        self.stats.syncs_completed += 1;
                        self.stats.last_full_sync = Some(ReceivedSync {
                            epoch,
                            records: n,
                            announced: records,
                            completed_at: now,
                        });
                    }
                }
            }
        }
    }

    /// The acknowledgement of what has been received so far (`None` before any batch).
    /// The daemon may also send it in heartbeats.
    pub fn ack(&self) -> Option<Ack> {
        let session = self.session?;
        let mut received = 0u64;
        if !self.held.is_empty() {
            for i in 0..ACK_BITMAP_BITS {
                if self.held.contains_key(&self.next.wrapping_add(1 + i)) {
                    received |= 1 << i;
                }
            }
        }
        Some(Ack {
            session,
            next: self.next,
            received,
        })
    }

    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            held: self.held.len(),
            sync_in_progress: self.sync.map(|(e, _)| e),
            ..self.stats
        }
    }
}

/// Reads the elements of a batch. A bad element is counted and skipped; an element whose
/// length runs past the end stops the reading (what came before it is kept).
fn decode_items(r: &mut Reader<'_>, dropped: &mut DropCounts) -> Vec<Item> {
    let mut items = Vec::with_capacity(r.remaining() / 32);
    while !r.is_empty() {
        match Item::decode(r) {
            Ok(item) => items.push(item),
            Err(RecordError::UnknownType(_)) => dropped.unknown += 1,
            Err(e) => {
                dropped.malformed += 1;
                if e.is_framing() {
                    r.skip_rest();
                }
            }
        }
    }
    items
}
