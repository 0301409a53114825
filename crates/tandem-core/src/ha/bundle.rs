//! The diagnostics pull protocol, sans IO: how a node fetches its partner's diagnostics bundle
//! (its HA logs, status, configuration and counters, an archive the partner's shell builds)
//! over the partner channel, in replication frames of direction 6 (`Diagnostics`, see
//! [`super::datagram`]; authenticated like every frame when the pair has a key).
//!
//! ```text
//! requester                                   partner
//!   Request{id}            ───────────────▶   builds the bundle once (Event::BuildBundle)
//!                          ◀───────────────   Manifest{id, size, chunks, digest}  | Refused{id, reason}
//!   Pull{id, first, count} ───────────────▶   (count ≤ PULL_WINDOW)
//!                          ◀───────────────   Chunk{id, index, bytes} × count
//!   … until every chunk is in; the digest (xxh3-64) checks the whole.
//! ```
//! Datagrams get lost, duplicated and reordered: the requester sends its Request again every
//! [`RETRY`] until a manifest comes, and pulls again the chunks still missing when [`RETRY`]
//! passes without progress. A duplicate Request gets the same manifest (the bundle is built
//! once per id); duplicate chunks and manifests are counted and dropped. A partner that does
//! not answer within [`ANSWER_TIMEOUT`], or a transfer not done within [`TRANSFER_TIMEOUT`],
//! ends the pull with the reason. Bundles are at most [`MAX_BUNDLE_BYTES`]; nothing a
//! datagram says can make either side hold more.
//!
//! Message layout (integers big-endian), the frame's message:
//! ```text
//! 0  1  kind: 1 Request, 2 Manifest, 3 Refused, 4 Pull, 5 Chunk
//! 1  8  bundle id
//! 9  …  Request: nothing | Manifest: size u32, chunks u32, digest u64 | Refused: reason (UTF-8)
//!       Pull: first u32, count u16 | Chunk: index u32, bytes (CHUNK_BYTES, the last one shorter)
//! ```

use crate::codec::Reader;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes of a chunk (a frame's message fits a 1500-byte path with room to spare).
pub const CHUNK_BYTES: usize = 1024;
/// The largest bundle served or accepted.
pub const MAX_BUNDLE_BYTES: usize = 8 << 20;
/// Chunks asked for at once (and answered to one Pull).
pub const PULL_WINDOW: u32 = 32;
/// Without progress for this long, the requester asks again.
pub const RETRY: Duration = Duration::from_millis(200);
/// A partner that sends no manifest within this time is reported missing.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole transfer must be done within this time.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest refusal reason carried.
const MAX_REASON: usize = 512;

/// A message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Request {
        id: u64,
    },
    Manifest {
        id: u64,
        size: u32,
        chunks: u32,
        digest: u64,
    },
    Refused {
        id: u64,
        reason: String,
    },
    Pull {
        id: u64,
        first: u32,
        count: u16,
    },
    Chunk {
        id: u64,
        index: u32,
        bytes: &'a [u8],
    },
}

impl Message<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let (kind, id) = match self {
            Message::Request { id } => (1, id),
            Message::Manifest { id, .. } => (2, id),
            Message::Refused { id, .. } => (3, id),
            Message::Pull { id, .. } => (4, id),
            Message::Chunk { id, .. } => (5, id),
        };
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Message::Request { .. } => {}
            Message::Manifest {
                size,
                chunks,
                digest,
                ..
            } => {
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&chunks.to_be_bytes());
                out.extend_from_slice(&digest.to_be_bytes());
            }
            Message::Refused { reason, .. } => {
                let mut end = reason.len().min(MAX_REASON);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&reason.as_bytes()[..end]);
            }
            Message::Pull { first, count, .. } => {
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
            }
            Message::Chunk { index, bytes, .. } => {
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Decodes a message; `None` for anything malformed (truncated, trailing bytes, unknown
    /// kind, a chunk too long, a reason not UTF-8).
    pub fn decode(bytes: &[u8]) -> Option<Message<'_>> {
        let mut r = Reader::new(bytes);
        let kind = r.u8()?;
        let id = r.u64()?;
        let rest = &bytes[9..];
        let m = match kind {
            1 if rest.is_empty() => Message::Request { id },
            2 if rest.len() == 16 => Message::Manifest {
                id,
                size: r.u32()?,
                chunks: r.u32()?,
                digest: r.u64()?,
            },
            3 if rest.len() <= MAX_REASON => Message::Refused {
                id,
                reason: std::str::from_utf8(rest).ok()?.to_string(),
            },
            4 if rest.len() == 6 => Message::Pull {
                id,
                first: r.u32()?,
                count: r.u16()?,
            },
            5 if rest.len() >= 4 && rest.len() - 4 <= CHUNK_BYTES => Message::Chunk {
                id,
                index: r.u32()?,
                bytes: &rest[4..],
            },
            _ => return None,
        };
        Some(m)
    }
}

/// The digest a manifest carries.
pub fn digest(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Chunks of a bundle of `size` bytes.
pub fn chunks_for(size: usize) -> u32 {
    size.div_ceil(CHUNK_BYTES) as u32
}

/// What the protocol saw, both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BundleCounters {
    /// Messages that did not decode, or that broke the protocol (a chunk of the wrong length
    /// or out of range, a manifest that does not add up).
    pub malformed: u64,
    /// Duplicate requests, manifests and chunks.
    pub duplicates: u64,
    /// Messages for a bundle id not (or no longer) in use.
    pub stray: u64,
    /// Requests sent again and pulls repeated after [`RETRY`] without progress.
    pub retries: u64,
    /// Bundles built for the partner, and chunks sent of them.
    pub served: u64,
    pub chunks_sent: u64,
    /// Pulls that ended with the partner's bundle, and those that did not.
    pub pulled: u64,
    pub failed: u64,
}

/// The pull in progress on this node.
#[derive(Debug)]
struct Pulling {
    id: u64,
    started: Instant,
    /// Last send or progress: the retry timer runs from it.
    last: Instant,
    manifest: Option<(u32, u64)>,
    have: Vec<Option<Vec<u8>>>,
    got: u32,
    /// Chunks below this index have been asked for.
    asked: u32,
}

/// The bundle this node built for its partner.
#[derive(Debug)]
struct Served {
    id: u64,
    bytes: Vec<u8>,
}

/// Both ends of the protocol for one node. See the module documentation.
#[derive(Debug, Default)]
pub struct Bundles {
    pulling: Option<Pulling>,
    outcome: Option<(u64, Result<Vec<u8>, String>)>,
    served: Option<Served>,
    building: Option<u64>,
    messages: VecDeque<Vec<u8>>,
    builds: VecDeque<u64>,
    counters: BundleCounters,
}

impl Bundles {
    pub fn counters(&self) -> &BundleCounters {
        &self.counters
    }

    /// Starts pulling the partner's bundle `id` (a pull in progress is abandoned).
    pub fn request(&mut self, now: Instant, id: u64) {
        self.pulling = Some(Pulling {
            id,
            started: now,
            last: now,
            manifest: None,
            have: Vec::new(),
            got: 0,
            asked: 0,
        });
        self.outcome = None;
        self.send(Message::Request { id });
    }

    /// Ends the pull in progress (the partner is gone): its outcome is `reason`.
    pub fn abandon(&mut self, reason: &str) {
        if self.pulling.is_some() {
            self.finish(Err(reason.to_string()));
        }
    }

    /// The outcome of pull `id` once it has one (taken).
    pub fn take_outcome(&mut self, id: u64) -> Option<Result<Vec<u8>, String>> {
        match &self.outcome {
            Some((i, _)) if *i == id => self.outcome.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// Whether pull `id` is still in progress.
    pub fn pulling(&self, id: u64) -> bool {
        self.pulling.as_ref().is_some_and(|p| p.id == id)
    }

    /// The next message for the partner.
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.messages.pop_front()
    }

    /// The next bundle the shell must build for the partner (answer with [`Bundles::built`]).
    pub fn poll_build(&mut self) -> Option<u64> {
        self.builds.pop_front()
    }

    /// The shell built bundle `id` (or could not: the reason).
    pub fn built(&mut self, id: u64, bundle: Result<Vec<u8>, String>) {
        if self.building != Some(id) {
            return; // a newer request replaced it
        }
        self.building = None;
        match bundle {
            Ok(bytes) if bytes.len() <= MAX_BUNDLE_BYTES => {
                self.counters.served += 1;
                self.send(manifest(id, &bytes));
                self.served = Some(Served { id, bytes });
            }
            Ok(bytes) => self.send(Message::Refused {
                id,
                reason: format!(
                    "bundle of {} bytes is over the {} MiB bound",
                    bytes.len(),
                    MAX_BUNDLE_BYTES >> 20
                ),
            }),
            Err(reason) => self.send(Message::Refused { id, reason }),
        }
    }

    /// A message from the partner.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) {
        let Some(m) = Message::decode(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        match m {
            Message::Request { id } => self.on_request(id),
            Message::Pull { id, first, count } => self.on_pull(id, first, count),
            Message::Manifest {
                id,
                size,
                chunks,
                digest,
            } => self.on_manifest(now, id, size, chunks, digest),
            Message::Refused { id, reason } => {
                if self.pulling(id) {
                    self.finish(Err(format!("the partner refused: {reason}")));
                } else {
                    self.counters.stray += 1;
                }
            }
            Message::Chunk { id, index, bytes } => self.on_chunk(now, id, index, bytes),
        }
    }

    /// Retries and deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(p) = &self.pulling else {
            return;
        };
        if p.manifest.is_none() && now >= p.started + ANSWER_TIMEOUT {
            self.finish(Err(format!(
                "the partner did not answer within {} s",
                ANSWER_TIMEOUT.as_secs()
            )));
            return;
        }
        if now >= p.started + TRANSFER_TIMEOUT {
            let (got, total) = (p.got, p.have.len());
            self.finish(Err(format!(
                "the transfer was not done within {} s ({got} of {total} chunks)",
                TRANSFER_TIMEOUT.as_secs()
            )));
            return;
        }
        if now < p.last + RETRY {
            return;
        }
        self.counters.retries += 1;
        let id = p.id;
        if p.manifest.is_none() {
            self.send(Message::Request { id });
        } else {
            // Ask again for what is missing below the window's edge, as runs.
            let mut runs: Vec<(u32, u16)> = Vec::new();
            let mut budget = PULL_WINDOW;
            for (i, c) in p.have.iter().enumerate().take(p.asked as usize) {
                if c.is_some() || budget == 0 {
                    continue;
                }
                budget -= 1;
                let i = i as u32;
                match runs.last_mut() {
                    Some((first, count)) if *first + u32::from(*count) == i => *count += 1,
                    _ => runs.push((i, 1)),
                }
            }
            for (first, count) in runs {
                self.send(Message::Pull { id, first, count });
            }
        }
        if let Some(p) = self.pulling.as_mut() {
            p.last = now;
        }
    }

    /// When [`Bundles::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.pulling.as_ref()?;
        let deadline = if p.manifest.is_none() {
            p.started + ANSWER_TIMEOUT
        } else {
            p.started + TRANSFER_TIMEOUT
        };
        Some((p.last + RETRY).min(deadline))
    }

    // ----- internals -----

    fn send(&mut self, m: Message<'_>) {
        self.messages.push_back(m.encode());
    }

    fn finish(&mut self, r: Result<Vec<u8>, String>) {
        let Some(p) = self.pulling.take() else {
            return;
        };
        match r {
            Ok(_) => self.counters.pulled += 1,
            Err(_) => self.counters.failed += 1,
        }
        self.outcome = Some((p.id, r));
    }

    fn on_request(&mut self, id: u64) {
        if let Some(s) = &self.served
            && s.id == id
        {
            self.counters.duplicates += 1;
            let m = manifest(id, &s.bytes).encode();
            self.messages.push_back(m);
            return;
        }
        if self.building == Some(id) {
            self.counters.duplicates += 1;
            return;
        }
        // One bundle at a time: a new request replaces the one kept.
        self.served = None;
        self.building = Some(id);
        self.builds.push_back(id);
    }

    fn on_pull(&mut self, id: u64, first: u32, count: u16) {
        let Some(s) = &self.served else {
            self.counters.stray += 1;
            return;
        };
        if s.id != id {
            self.counters.stray += 1;
            let reason = "no such bundle here (the node restarted, or another was asked for since)";
            self.send(Message::Refused {
                id,
                reason: reason.into(),
            });
            return;
        }
        let total = chunks_for(s.bytes.len());
        let end = first
            .saturating_add(u32::from(count).min(PULL_WINDOW))
            .min(total);
        if first >= total || count == 0 {
            self.counters.malformed += 1;
            return;
        }
        for index in first..end {
            let at = index as usize * CHUNK_BYTES;
            let bytes = &s.bytes[at..(at + CHUNK_BYTES).min(s.bytes.len())];
            let m = Message::Chunk { id, index, bytes }.encode();
            self.messages.push_back(m);
            self.counters.chunks_sent += 1;
        }
    }

    fn on_manifest(&mut self, now: Instant, id: u64, size: u32, chunks: u32, digest: u64) {
        let Some(p) = self.pulling.as_mut().filter(|p| p.id == id) else {
            self.counters.stray += 1;
            return;
        };
        if p.manifest.is_some() {
            self.counters.duplicates += 1;
            return;
        }
        if size as usize > MAX_BUNDLE_BYTES || chunks != chunks_for(size as usize) {
            self.counters.malformed += 1;
            self.finish(Err(format!(
                "the partner's manifest does not add up ({size} bytes in {chunks} chunks; at most {} MiB)",
                MAX_BUNDLE_BYTES >> 20
            )));
            return;
        }
        p.manifest = Some((size, digest));
        p.have = vec![None; chunks as usize];
        p.last = now;
        if chunks == 0 {
            self.complete();
            return;
        }
        self.ask_more();
    }

    fn on_chunk(&mut self, now: Instant, id: u64, index: u32, bytes: &[u8]) {
        let Some(p) = self.pulling.as_mut().filter(|p| p.id == id) else {
            self.counters.stray += 1;
            return;
        };
        let Some((size, _)) = p.manifest else {
            self.counters.stray += 1;
            return;
        };
        let total = p.have.len() as u32;
        if index >= total {
            // An index the manifest does not have (u32::MAX included): never arithmetic on it.
            self.counters.malformed += 1;
            return;
        }
        let want = if index + 1 == total {
            size as usize - (total as usize - 1) * CHUNK_BYTES
        } else {
            CHUNK_BYTES
        };
        if index >= p.asked || bytes.len() != want {
            self.counters.malformed += 1;
            return;
        }
        let slot = &mut p.have[index as usize];
        if slot.is_some() {
            self.counters.duplicates += 1;
            return;
        }
        *slot = Some(bytes.to_vec());
        p.got += 1;
        p.last = now;
        if p.got == total {
            self.complete();
        } else {
            self.ask_more();
        }
    }

    /// Keeps up to [`PULL_WINDOW`] chunks asked for and not yet in.
    fn ask_more(&mut self) {
        let Some(p) = self.pulling.as_mut() else {
            return;
        };
        let total = p.have.len() as u32;
        let outstanding = p.asked - p.got;
        if outstanding > PULL_WINDOW / 2 || p.asked >= total {
            return;
        }
        let count = (PULL_WINDOW - outstanding).min(total - p.asked);
        let (id, first) = (p.id, p.asked);
        p.asked += count;
        self.send(Message::Pull {
            id,
            first,
            count: count as u16,
        });
    }

    fn complete(&mut self) {
        let Some(p) = self.pulling.as_mut() else {
            return;
        };
        let Some((size, want)) = p.manifest else {
            return;
        };
        let mut bytes = Vec::with_capacity(size as usize);
        for c in p.have.drain(..) {
            bytes.extend_from_slice(&c.unwrap_or_default());
        }
        if digest(&bytes) == want {
            self.finish(Ok(bytes));
        } else {
            self.counters.malformed += 1;
            self.finish(Err("the partner's bundle does not match its digest".into()));
        }
    }
}

fn manifest(id: u64, bytes: &[u8]) -> Message<'static> {
    Message::Manifest {
        id,
        size: bytes.len() as u32,
        chunks: chunks_for(bytes.len()),
        digest: digest(bytes),
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
