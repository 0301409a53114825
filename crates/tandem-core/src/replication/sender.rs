//! The sending side: a deduplicating queue, batches with sequence numbers, retransmission
//! and pacing. Sans-IO: the daemon moves the bytes and supplies the time.

use super::batch::{Ack, BATCH_HEADER_LEN, Batch, BatchHeader};
use super::record::{Item, Record, RecordKey};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Settings of a [`Sender`].
#[derive(Debug, Clone, PartialEq)]
pub struct SenderConfig {
    /// Session number written in every batch. Choose a new one each time the sender starts
    /// (e.g. random): the receiver starts over when it changes.
    pub session: u32,
    /// Sequence number of the first batch (0 normally; tests use it to cross the wrap).
    pub first_seq: u32,
    /// Most records waiting to be sent; a new record beyond it is dropped and counted (the
    /// age rule re-sends it later). Full-synchronisation records do not count.
    pub max_queued: usize,
    /// Most batches sent and not yet acknowledged.
    pub window: u32,
    /// Pacing: bytes per second ([`Sender::pace`]).
    pub rate: u64,
    /// Pacing: most bytes sent in one burst.
    pub burst: u64,
    /// Retransmission timeout before any round trip has been measured.
    pub initial_rto: Duration,
    pub min_rto: Duration,
    pub max_rto: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            session: 0,
            first_seq: 0,
            max_queued: 262_144,
            window: 128,
            rate: 50_000_000,
            burst: 256 * 1024,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(5),
        }
    }
}

/// What [`Sender::push`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued behind the others.
    Queued,
    /// Replaced a queued record with the same key, in its place.
    Superseded,
    /// The queue is full: dropped and counted.
    Dropped,
}

/// A completed full synchronisation, as the sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FullSyncStats {
    pub epoch: u32,
    /// Records queued for it.
    pub records: u64,
    /// From [`Sender::start_full_sync`] to the acknowledgement of its end marker.
    pub duration_ms: u64,
}

/// Counters of a [`Sender`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SenderStats {
    /// Records sent in new batches (retransmissions not counted).
    pub records_sent: u64,
    /// New batches sent.
    pub batches_sent: u64,
    /// Batches sent again.
    pub retransmits: u64,
    /// Bytes of all batches sent, retransmissions included.
    pub bytes_sent: u64,
    /// Elements waiting in the queue.
    pub queued: usize,
    /// Batches sent and not yet acknowledged.
    pub in_flight: usize,
    /// Records replaced in the queue by a newer one of the same key.
    pub superseded: u64,
    /// Records dropped because the queue was full.
    pub overflow_dropped: u64,
    /// Acknowledgements used.
    pub acks: u64,
    /// Acknowledgements of another session, or older than one already used.
    pub stale_acks: u64,
    /// Acknowledgements of batches never sent.
    pub bad_acks: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Current retransmission timeout, milliseconds.
    pub rto_ms: u64,
    pub full_syncs_started: u64,
    /// Epoch of the full synchronisation under way, if any.
    pub full_sync_in_progress: Option<u32>,
    pub last_full_sync: Option<FullSyncStats>,
}

struct Slot {
    item: Item,
    /// Queued by a full synchronisation (not subject to `max_queued`).
    sync: bool,
}

struct InFlight {
    seq: u32,
    bytes: Vec<u8>,
    records: usize,
    sent_at: Instant,
    transmissions: u32,
    acked: bool,
    /// Waiting to be retransmitted.
    due: bool,
    /// Already retransmitted early because later batches were acknowledged.
    fast_done: bool,
    /// Carries the end marker of this synchronisation epoch.
    ends_sync: Option<u32>,
}

struct SyncProgress {
    epoch: u32,
    records: u64,
    started: Instant,
}

/// Where a streamed full synchronisation takes its records from, a chunk at a time, as the
/// sender needs them ([`Sender::start_full_sync_from`]): e.g. a cursor over the shards of
/// the connection table, so that the table is never copied whole.
pub trait SyncSource: Send {
    /// The next records (an empty chunk is fine), or `None` when there are no more.
    fn next_chunk(&mut self) -> Option<Vec<Record>>;
}

/// A streamed synchronisation in progress.
struct Stream {
    source: Box<dyn SyncSource>,
    epoch: u32,
    records: u64,
}

/// A stream is asked for more when fewer synchronisation elements than this are queued.
const STREAM_LOW_WATER: usize = 4096;

/// Batches after a lost one that must be acknowledged before it is retransmitted early.
const FAST_RETRANSMIT_AFTER: usize = 3;
/// Most doublings of the retransmission timeout.
const MAX_BACKOFF: u32 = 8;
/// Offset of `low` in a batch header (refreshed on retransmission).
const LOW_OFFSET: usize = 10;

/// The sending side of replication.
///
/// Records go in with [`push`](Self::push) (or [`start_full_sync`](Self::start_full_sync));
/// batches come out of [`next_batch`](Self::next_batch), which the daemon sends inside
/// heartbeats or in datagrams of their own, as many as [`pace`](Self::pace) allows.
/// Acknowledgements go in with [`on_ack`](Self::on_ack); [`poll_timeout`](Self::poll_timeout)
/// and [`handle_timeout`](Self::handle_timeout) drive retransmission.
pub struct Sender {
    cfg: SenderConfig,
    queue: VecDeque<Slot>,
    /// Absolute position of `queue[0]`.
    head: u64,
    /// Absolute queue position of each queued record.
    /// (foldhash, seeded per map: keys are chosen by clients; SipHash cost a tenth of a full
    /// sync's time.)
    index: HashMap<RecordKey, u64, foldhash::quality::RandomState>,
    /// Queued records not from a full synchronisation.
    live: usize,
    /// Batches from `una` on, in order.
    flight: VecDeque<InFlight>,
    una: u32,
    due: usize,
    srtt: Option<Duration>,
    rttvar: Duration,
    backoff: u32,
    tokens: f64,
    refilled_at: Option<Instant>,
    epoch: u32,
    sync: Option<SyncProgress>,
    stream: Option<Stream>,
    stats: SenderStats,
}

impl Sender {
    pub fn new(cfg: SenderConfig) -> Sender {
        Sender {
            una: cfg.first_seq,
            tokens: cfg.burst as f64,
            cfg,
            queue: VecDeque::new(),
            head: 0,
            index: HashMap::default(),
            live: 0,
            flight: VecDeque::new(),
            due: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
            refilled_at: None,
            epoch: 0,
            sync: None,
            stream: None,
            stats: SenderStats::default(),
        }
    }

    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// The session in batches.
    pub fn session(&self) -> u32 {
        self.cfg.session
    }

    /// Starts a new session: forgets every queued and unacknowledged record (counters are
    /// kept). Use when the partner has restarted or come back; follow with a full sync.
    pub fn reset(&mut self, session: u32) {
        self.cfg.session = session;
        self.queue.clear();
        self.index.clear();
        self.live = 0;
        self.flight.clear();
        self.una = self.cfg.first_seq;
        self.due = 0;
        self.backoff = 0;
        self.sync = None;
        self.stream = None;
    }

    /// Queues a record. A queued record with the same key is replaced in its place, so a
    /// busy connection occupies one slot.
    pub fn push(&mut self, record: Record) -> PushOutcome {
        let key = record.key();
        if let Some(&pos) = self.index.get(&key) {
            self.slot_at(pos).item = Item::Record(record);
            self.stats.superseded += 1;
            return PushOutcome::Superseded;
        }
        if self.live >= self.cfg.max_queued {
            self.stats.overflow_dropped += 1;
            return PushOutcome::Dropped;
        }
        self.live += 1;
        self.index.insert(key, self.head + self.queue.len() as u64);
        self.queue.push_back(Slot {
            item: Item::Record(record),
            sync: false,
        });
        PushOutcome::Queued
    }

    fn slot_at(&mut self, pos: u64) -> &mut Slot {
        // The index only holds positions of queued slots.
        &mut self.queue[(pos - self.head) as usize]
    }

    /// Starts full synchronisation: queues a start marker, `records` (replacing queued
    /// records of the same keys) and an end marker. The receiver reports the end once every
    /// record before it has arrived; [`SenderStats::last_full_sync`] is set when the end is
    /// acknowledged. Returns the synchronisation's epoch.
    ///
    /// Drain the data plane's pending record events into [`push`](Self::push) first: a record
    /// pushed later than this replaces the synchronised one.
    pub fn start_full_sync(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        now: Instant,
    ) -> u32 {
        let epoch = self.begin_sync(now);
        let count = self.queue_sync(records);
        self.end_sync(epoch, count);
        epoch
    }

    /// [`start_full_sync`](Self::start_full_sync) with records streamed from `source`: a chunk
    /// is queued whenever fewer than a few thousand synchronisation records wait, so the
    /// queue holds a few chunks however large the table. The end marker follows the last
    /// chunk. Records pushed meanwhile are sent as usual; a chunk read later replaces a
    /// queued record of the same key (the source's copy is the newer).
    pub fn start_full_sync_from(&mut self, source: Box<dyn SyncSource>, now: Instant) -> u32 {
        let epoch = self.begin_sync(now);
        self.stream = Some(Stream {
            source,
            epoch,
            records: 0,
        });
        self.refill();
        epoch
    }

    /// Whether a streamed synchronisation has records still to read from its source.
    pub fn streaming(&self) -> bool {
        self.stream.is_some()
    }

    fn begin_sync(&mut self, now: Instant) -> u32 {
        // A stream still running ends where it is (its end marker was not queued: the
        // receiver waits for this epoch's).
        self.stream = None;
        self.epoch = self.epoch.wrapping_add(1);
        let epoch = self.epoch;
        self.queue.push_back(Slot {
            item: Item::SyncStart { epoch },
            sync: true,
        });
        self.sync = Some(SyncProgress {
            epoch,
            records: 0,
            started: now,
        });
        self.stats.full_syncs_started += 1;
        epoch
    }

    fn end_sync(&mut self, epoch: u32, count: u64) {
        let records = u32::try_from(count).unwrap_or(u32::MAX);
        self.queue.push_back(Slot {
            item: Item::SyncEnd { epoch, records },
            sync: true,
        });
        if let Some(p) = self.sync.as_mut().filter(|p| p.epoch == epoch) {
            p.records = count;
        }
    }

    /// Reads the stream's next chunks while few synchronisation elements are queued.
    fn refill(&mut self) {
        while let Some(stream) = self.stream.as_mut() {
            if self.queue.len() - self.live >= STREAM_LOW_WATER {
                return;
            }
            match stream.source.next_chunk() {
                Some(chunk) => {
                    let n = self.queue_sync(chunk);
                    if let Some(s) = self.stream.as_mut() {
                        s.records += n;
                    }
                }
                None => {
                    let Some(s) = self.stream.take() else { return };
                    self.end_sync(s.epoch, s.records);
                }
            }
        }
    }

    /// Queues records of a synchronisation; how many.
    fn queue_sync(&mut self, records: impl IntoIterator<Item = Record>) -> u64 {
        let mut count: u64 = 0;
        for record in records {
            count += 1;
            let key = record.key();
            if let Some(&pos) = self.index.get(&key) {
                let slot = self.slot_at(pos);
                slot.item = Item::Record(record);
                if !slot.sync {
                    slot.sync = true;
                    self.live -= 1;
                }
            } else {
                self.index.insert(key, self.head + self.queue.len() as u64);
                self.queue.push_back(Slot {
                    item: Item::Record(record),
                    sync: true,
                });
            }
        }
        count
    }

    /// Refills the pacing bucket and returns the bytes that may be sent now. Every batch
    /// [`next_batch`](Self::next_batch) returns is taken from the bucket (which may go into
    /// debt, e.g. for batches riding in heartbeats).
    pub fn pace(&mut self, now: Instant) -> usize {
        if let Some(t) = self.refilled_at {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            self.tokens = (self.tokens + dt * self.cfg.rate as f64).min(self.cfg.burst as f64);
        }
        if self.refilled_at.is_none_or(|t| now > t) {
            self.refilled_at = Some(now);
        }
        self.tokens.max(0.0) as usize
    }

    /// The next batch to send, at most `max_bytes` long: a retransmission that is due, else
    /// a new batch of queued records. `None` if there is nothing to send, the window of
    /// unacknowledged batches is full, or the next element does not fit.
    pub fn next_batch(&mut self, now: Instant, max_bytes: usize) -> Option<Batch> {
        if self.due > 0 {
            let una = self.una;
            if let Some(f) = self
                .flight
                .iter_mut()
                .find(|f| f.due && f.bytes.len() <= max_bytes)
            {
                f.due = false;
                f.transmissions += 1;
                f.sent_at = now;
                if let Some(low) = f.bytes.get_mut(LOW_OFFSET..LOW_OFFSET + 4) {
                    low.copy_from_slice(&una.to_be_bytes());
                }
                let batch = Batch {
                    seq: f.seq,
                    bytes: f.bytes.clone(),
                    records: f.records,
                    retransmit: true,
                };
                self.due -= 1;
                self.stats.retransmits += 1;
                self.spend(batch.bytes.len());
                return Some(batch);
            }
        }
        if self.flight.len() >= self.cfg.window as usize {
            return None;
        }
        self.refill();
        let first = self.queue.front()?;
        if BATCH_HEADER_LEN + first.item.encoded_len() > max_bytes {
            return None;
        }
        let seq = self.una.wrapping_add(self.flight.len() as u32);
        let mut bytes = Vec::with_capacity(max_bytes.min(64 * 1024));
        BatchHeader {
            session: self.cfg.session,
            seq,
            low: self.una,
        }
        .encode(&mut bytes);
        let mut records = 0;
        let mut ends_sync = None;
        loop {
            if self.queue.is_empty() {
                self.refill();
            }
            let Some(slot) = self.queue.front() else {
                break;
            };
            if bytes.len() + slot.item.encoded_len() > max_bytes {
                break;
            }
            slot.item.encode(&mut bytes);
            match slot.item {
                Item::Record(r) => {
                    records += 1;
                    self.index.remove(&r.key());
                    if !slot.sync {
                        self.live -= 1;
                    }
                }
                Item::SyncEnd { epoch, .. } => ends_sync = Some(epoch),
                Item::SyncStart { .. } => {}
            }
            self.queue.pop_front();
            self.head += 1;
        }
        self.stats.batches_sent += 1;
        self.stats.records_sent += records as u64;
        self.spend(bytes.len());
        self.flight.push_back(InFlight {
            seq,
            bytes: bytes.clone(),
            records,
            sent_at: now,
            transmissions: 1,
            acked: false,
            due: false,
            fast_done: false,
            ends_sync,
        });
        Some(Batch {
            seq,
            bytes,
            records,
            retransmit: false,
        })
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
        self.stats.bytes_sent += n as u64;
    }

    /// Takes an acknowledgement from the receiver.
    pub fn on_ack(&mut self, ack: &Ack, now: Instant) {
        if ack.session != self.cfg.session {
            self.stats.stale_acks += 1;
            return;
        }
        let advance = ack.next.wrapping_sub(self.una);
        if (advance as i32) < 0 {
            self.stats.stale_acks += 1;
            return;
        }
        if advance as usize > self.flight.len() {
            self.stats.bad_acks += 1;
            return;
        }
        self.stats.acks += 1;
        let mut sample = None;
        let mut highest = None;
        for (i, f) in self.flight.iter_mut().enumerate() {
            if f.acked {
                highest = Some(i);
                continue;
            }
            if !ack.covers(f.seq) {
                continue;
            }
            f.acked = true;
            highest = Some(i);
            if f.due {
                f.due = false;
                self.due -= 1;
            }
            if f.transmissions == 1 {
                sample = Some(now.saturating_duration_since(f.sent_at));
            }
        }
        // Batches well before one that arrived are most likely lost: send them again now.
        if let Some(h) = highest {
            for f in self
                .flight
                .iter_mut()
                .take(h.saturating_sub(FAST_RETRANSMIT_AFTER - 1))
            {
                if !f.acked && !f.due && !f.fast_done {
                    f.due = true;
                    f.fast_done = true;
                    self.due += 1;
                }
            }
        }
        let mut progressed = false;
        while self.flight.front().is_some_and(|f| f.acked) {
            if let Some(f) = self.flight.pop_front() {
                self.una = self.una.wrapping_add(1);
                progressed = true;
                if let (Some(e), Some(s)) = (f.ends_sync, &self.sync)
                    && e == s.epoch
                {
                    self.stats.last_full_sync = Some(FullSyncStats {
                        epoch: e,
                        records: s.records,
                        duration_ms: u64::try_from(
                            now.saturating_duration_since(s.started).as_millis(),
                        )
                        .unwrap_or(u64::MAX),
                    });
                    self.sync = None;
                }
            }
        }
        if progressed {
            self.backoff = 0;
        }
        if let Some(r) = sample {
            self.rtt_sample(r);
        }
    }

    /// RFC 6298 smoothing.
    fn rtt_sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
    }

    /// The retransmission timeout in force.
    pub fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => self.cfg.initial_rto,
            Some(s) => s + (self.rttvar * 4).max(Duration::from_millis(1)),
        };
        let base = base.clamp(self.cfg.min_rto, self.cfg.max_rto.max(self.cfg.min_rto));
        base.saturating_mul(1 << self.backoff)
            .min(self.cfg.max_rto.max(self.cfg.min_rto))
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if any batch
    /// awaits an acknowledgement.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rto = self.rto();
        self.flight
            .iter()
            .filter(|f| !f.acked && !f.due)
            .filter_map(|f| f.sent_at.checked_add(rto))
            .min()
    }

    /// Marks the batches whose retransmission timeout has passed for retransmission (by the
    /// following [`next_batch`](Self::next_batch) calls) and backs the timeout off.
    pub fn handle_timeout(&mut self, now: Instant) {
        let rto = self.rto();
        let mut fired = false;
        for f in self.flight.iter_mut() {
            if !f.acked && !f.due && f.sent_at.checked_add(rto).is_some_and(|t| t <= now) {
                f.due = true;
                self.due += 1;
                fired = true;
            }
        }
        if fired {
            self.stats.timeouts += 1;
            self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
        }
    }

    /// True when nothing is queued and every batch sent has been acknowledged.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.flight.is_empty() && self.stream.is_none()
    }

    /// Gives back the memory a large burst (a full synchronisation of a big table) left in the
    /// queue and its index, once they are empty. Cheap to call often: it does nothing while
    /// they are small or in use.
    pub fn compact(&mut self) {
        const KEEP: usize = 4096;
        if self.queue.is_empty() && self.queue.capacity() > KEEP {
            self.queue = VecDeque::new();
        }
        if self.index.is_empty() && self.index.capacity() > KEEP {
            self.index = HashMap::default();
        }
        if self.flight.is_empty() && self.flight.capacity() > KEEP {
            self.flight = VecDeque::new();
        }
    }

    /// Elements waiting to be sent (a stream with records still to read counts one).
    pub fn queued(&self) -> usize {
        self.queue.len() + usize::from(self.stream.is_some())
    }

    pub fn stats(&self) -> SenderStats {
        SenderStats {
            queued: self.queue.len(),
            in_flight: self.flight.len(),
            rto_ms: u64::try_from(self.rto().as_millis()).unwrap_or(u64::MAX),
            full_sync_in_progress: self.sync.as_ref().map(|s| s.epoch),
            ..self.stats
        }
    }
}
