//! The change log: sequence-numbered entries of one lineage, bounded by bytes and count.

use std::collections::VecDeque;
use std::sync::Arc;

/// Default bound of a log's payload bytes.
pub const MAX_LOG_BYTES: usize = 8 << 20;
/// Default bound of a log's entry count.
pub const MAX_LOG_ENTRIES: usize = 10_000;

/// One committed change of the shared configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// The lines replace the whole shared part (a file load), else they apply on top.
    pub replace: bool,
    /// Canonical command lines, one per line (`\n`-separated, UTF-8).
    pub payload: Arc<Vec<u8>>,
    /// The shared digest once applied.
    pub digest_after: u64,
}

impl Entry {
    /// The entry's command lines.
    pub fn lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.payload)
            .map(|s| s.lines().filter(|l| !l.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// A node's change log: entries `base_seq + 1 ..= head()` of `lineage`, and the digest at
/// `base_seq`. Older entries are dropped beyond the bounds (a follower below the base then
/// gets a full sync).
#[derive(Debug, Clone)]
pub struct ChangeLog {
    lineage: u64,
    base_seq: u64,
    base_digest: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    max_entries: usize,
}

impl ChangeLog {
    /// An empty log of a new lineage, at seq 0 with `digest`.
    pub fn new(lineage: u64, digest: u64) -> ChangeLog {
        ChangeLog::with_bounds(lineage, digest, MAX_LOG_BYTES, MAX_LOG_ENTRIES)
    }

    pub fn with_bounds(
        lineage: u64,
        digest: u64,
        max_bytes: usize,
        max_entries: usize,
    ) -> ChangeLog {
        ChangeLog {
            lineage,
            base_seq: 0,
            base_digest: digest,
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_entries: max_entries.max(1),
        }
    }

    pub fn lineage(&self) -> u64 {
        self.lineage
    }

    pub fn base_seq(&self) -> u64 {
        self.base_seq
    }

    /// The last seq.
    pub fn head(&self) -> u64 {
        self.base_seq + self.entries.len() as u64
    }

    /// The digest at the head.
    pub fn head_digest(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.base_digest, |e| e.digest_after)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The digest after `seq`, if the log knows it (the base or a held entry).
    pub fn digest_at(&self, seq: u64) -> Option<u64> {
        if seq == self.base_seq {
            return Some(self.base_digest);
        }
        self.entry(seq).map(|e| e.digest_after)
    }

    pub fn entry(&self, seq: u64) -> Option<&Entry> {
        let i = seq.checked_sub(self.base_seq + 1)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// Entries after `seq` (those the log holds).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.seq > seq)
    }

    /// Appends a change made here (or received); returns its seq.
    pub fn push(&mut self, replace: bool, payload: Arc<Vec<u8>>, digest_after: u64) -> u64 {
        let seq = self.head() + 1;
        self.bytes += payload.len();
        self.entries.push_back(Entry {
            seq,
            replace,
            payload,
            digest_after,
        });
        self.trim();
        seq
    }

    /// After a full sync: the log continues `lineage` from `seq` (nothing held before it).
    pub fn reset(&mut self, lineage: u64, seq: u64, digest: u64) {
        self.lineage = lineage;
        self.base_seq = seq;
        self.base_digest = digest;
        self.entries.clear();
        self.bytes = 0;
    }

    fn trim(&mut self) {
        // The newest entry always stays (so a change can be pulled), even if large.
        while self.entries.len() > 1
            && (self.bytes > self.max_bytes || self.entries.len() > self.max_entries)
        {
            let e = self.entries.pop_front().expect("non-empty");
            self.bytes -= e.payload.len();
            self.base_seq = e.seq;
            self.base_digest = e.digest_after;
        }
    }
}
