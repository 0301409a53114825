//! The heartbeat datagram: what two HA partners send each other over UDP.
//!
//! The layout is documented byte by byte in `docs/heartbeat.md`. In short (all integers
//! big-endian):
//!
//! ```text
//!  0  4  magic "TNDM"                     ┐ stable header: never changes, so nodes of any
//!  4  1  format (1)                       │ product version can always find out whether a
//!  5  1  flags                            │ datagram is a heartbeat, whether it is keyed,
//!  6  2  header length (76 for format 1)  ┘ and where the records start
//!  8  8  product version V.R.M.F (4 × u16)
//! 16  8  sender epoch
//! 24  8  seq
//! 32  8  ack epoch
//! 40  8  ack
//! 48  1  role        49 1 state      50 1 sub-state    51 1 recovery
//! 52  2  reach count 54 2 reach total
//! 56  8  configuration digest
//! 64  1  request     65 1 HA instance (0; 1 = the second group of mutual HA)  66 2 reserved (0)
//! 68  4  hatimeout (ms)                72 4 heartbeat interval (ms)
//! 76  2  records length N, then N bytes of records (opaque here)
//!  …  32 HMAC-SHA256 over everything before it (only when flag KEYED is set)
//! ```
//!
//! Evolution rule: format 1 is append-only. A later product may add fields after offset 76
//! by raising the header length (older decoders skip them) and may define new flag bits in
//! the low nibble (older decoders ignore them). A flag bit in the high nibble is *critical*:
//! a decoder that does not know it refuses the datagram ([`HeartbeatError::UnsupportedFormat`]).
//! The code sets of role, state, sub-state, recovery and request are frozen: a sender never
//! writes a code that format 1 does not define (a new state is reported in a new field and as
//! its nearest format-1 state in the old one), so liveness and the dual-active guard work
//! across every product version that speaks format 1.

use super::datagram::{FrameError, KeyId, KeyRing, sign};
use crate::codec::Reader;
use crate::config::{Recovery, Role};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The four bytes every heartbeat starts with.
pub const MAGIC: [u8; 4] = *b"TNDM";
/// The only format this code writes and reads.
pub const FORMAT: u8 = 1;
/// Offset of the records-length field in format 1 (the fixed header's length).
pub const HEADER_LEN: usize = 76;
pub use super::datagram::MAC_LEN;
/// Smallest possible datagram: header and an empty records section, unkeyed.
pub const MIN_LEN: usize = HEADER_LEN + 2;
/// Largest records section that fits one UDP datagram with header and trailer.
pub const MAX_RECORDS: usize = 65_507 - MIN_LEN - MAC_LEN;

/// Flag: a 32-byte HMAC-SHA256 trailer follows the records.
pub const FLAG_KEYED: u8 = 0x01;
/// Flag: the records section is not empty.
pub const FLAG_RECORDS: u8 = 0x02;
/// Flag: the sender is in maintenance (it hands Active over and does not take it back).
pub const FLAG_MAINTENANCE: u8 = 0x04;
/// Flag: the sender has just yielded Active and is handing its records over; the partner
/// waits for the hand-over to end before it goes Active (a non-critical bit: an older
/// decoder ignores it and only loses the wait).
pub const FLAG_HANDOVER: u8 = 0x08;
/// Flag bits a format-1 decoder must understand or refuse the datagram.
pub const FLAGS_CRITICAL: u8 = 0xF0;

/// Product version `V.R.M.F` (version, release, modification, fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProductVersion {
    pub v: u16,
    pub r: u16,
    pub m: u16,
    pub f: u16,
}

impl ProductVersion {
    pub const fn new(v: u16, r: u16, m: u16, f: u16) -> Self {
        ProductVersion { v, r, m, f }
    }

    /// Whether two nodes of these versions may replicate to each other and fail back: the
    /// same version and release. Modification and fix levels are not compared (IBM stopped
    /// comparing the modification level in 8.5.5.16 and 9.0.5.1). Liveness never depends on
    /// this: an incompatible partner is still seen alive.
    pub fn compatible(&self, other: &ProductVersion) -> bool {
        self.v == other.v && self.r == other.r
    }
}

impl fmt::Display for ProductVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}.{}", self.v, self.r, self.m, self.f)
    }
}

impl Serialize for ProductVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `V.R.M.F` string that is not four dot-separated numbers of 0..=65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid product version {0:?}: expected V.R.M.F, four numbers 0..=65535")]
pub struct VersionParseError(pub String);

impl FromStr for ProductVersion {
    type Err = VersionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionParseError(s.to_string());
        let mut parts = s.trim().split('.');
        let mut next = || -> Result<u16, VersionParseError> {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let version = ProductVersion {
            v: next()?,
            r: next()?,
            m: next()?,
            f: next()?,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(version)
    }
}

/// HA state of a node, as reported in status and heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum State {
    /// Stand-alone: forwarding, no partner (no `highavailability backup` configured).
    Idle,
    /// HA configured, starting: not forwarding, listening for the partner.
    Listen,
    /// Forwarding; owns the cluster and return addresses.
    Active,
    /// Not forwarding; watching the Active partner, ready to take over.
    Standby,
    /// Executor stopped: not forwarding, not heartbeating (a Tandem addition; IBM's status
    /// is simply unavailable then). A node sends one last heartbeat in this state, with
    /// [`Request::Leaving`], so that its partner takes over at once.
    Down,
}

impl State {
    fn code(self) -> u8 {
        match self {
            State::Idle => 0,
            State::Listen => 1,
            State::Active => 2,
            State::Standby => 3,
            State::Down => 4,
        }
    }

    fn from_code(c: u8) -> Option<State> {
        Some(match c {
            0 => State::Idle,
            1 => State::Listen,
            2 => State::Active,
            3 => State::Standby,
            4 => State::Down,
            _ => return None,
        })
    }

    /// Whether a node in this state forwards cluster traffic and owns the addresses.
    pub fn forwarding(self) -> bool {
        matches!(self, State::Idle | State::Active)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Listen => "Listen",
            State::Active => "Active",
            State::Standby => "Standby",
            State::Down => "Down",
        })
    }
}

/// Sub-state: whether the pair is in contact (and, with replication, the standby holds the
/// full table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SubState {
    #[serde(rename = "Not Synchronized")]
    NotSynchronized,
    Synchronized,
}

impl fmt::Display for SubState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubState::NotSynchronized => "Not Synchronized",
            SubState::Synchronized => "Synchronized",
        })
    }
}

/// What a heartbeat asks of the partner (one at a time; see the machine for precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    None,
    /// The sender (a Synchronized Standby) asks the Active to yield: operator `takeover`, or
    /// an `auto` primary taking Active back.
    TakeoverRequest,
    /// The sender has just entered Standby: the Active re-sends its gratuitous ARPs
    /// (PH36755). Repeated until an Active partner acknowledges it.
    StandbyEntered,
    /// The sender yielded to the partner's takeover request and is now Standby.
    YieldAck,
    /// The sender is leaving (executor stopped or HA deleted): take over now.
    Leaving,
}

impl Request {
    fn code(self) -> u8 {
        match self {
            Request::None => 0,
            Request::TakeoverRequest => 1,
            Request::StandbyEntered => 2,
            Request::YieldAck => 3,
            Request::Leaving => 4,
        }
    }

    fn from_code(c: u8) -> Option<Request> {
        Some(match c {
            0 => Request::None,
            1 => Request::TakeoverRequest,
            2 => Request::StandbyEntered,
            3 => Request::YieldAck,
            4 => Request::Leaving,
            _ => return None,
        })
    }
}

/// One heartbeat, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Sender's product version.
    pub version: ProductVersion,
    /// Sender's epoch: grows across restarts (e.g. its start time in ms).
    pub epoch: u64,
    /// Per-epoch sequence number; the copies of one heartbeat sent over several pairs share
    /// it.
    pub seq: u64,
    /// Epoch of the receiver that `ack` refers to (0 = nothing received yet).
    pub ack_epoch: u64,
    /// Last `seq` the sender received from the receiver (PH33032).
    pub ack: u64,
    pub role: Role,
    pub state: State,
    pub sub_state: SubState,
    pub recovery: Recovery,
    /// Reach targets the sender can reach, and how many it has.
    pub reach_count: u16,
    pub reach_total: u16,
    /// Digest of the sender's configuration (to report differences).
    pub config_digest: u64,
    pub request: Request,
    /// The sender is in maintenance.
    pub maintenance: bool,
    /// The sender is handing its records over after yielding Active ([`FLAG_HANDOVER`]).
    pub handover: bool,
    /// Sender's hatimeout and heartbeat interval, in ms (reported when they differ).
    pub hatimeout_ms: u32,
    pub interval_ms: u32,
    /// Opaque records section (replication).
    pub records: Vec<u8>,
}

/// Why a datagram was not accepted as a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("truncated heartbeat ({got} bytes, at least {need} needed)")]
    Truncated { got: usize, need: usize },
    #[error("not a Tandem heartbeat (bad magic)")]
    BadMagic,
    #[error("unsupported heartbeat format {format} (flags {flags:#04x})")]
    UnsupportedFormat { format: u8, flags: u8 },
    #[error("heartbeat authentication failed (wrong key or forged)")]
    BadMac,
    #[error("unauthenticated heartbeat received while a key is configured")]
    MissingMac,
    #[error("malformed heartbeat: bad {0}")]
    Malformed(&'static str),
}

impl HeartbeatError {
    /// The counter this error goes to.
    pub fn kind(&self) -> DropKind {
        match self {
            HeartbeatError::Truncated { .. } => DropKind::Truncated,
            HeartbeatError::BadMagic => DropKind::BadMagic,
            HeartbeatError::UnsupportedFormat { .. } => DropKind::UnsupportedFormat,
            HeartbeatError::BadMac => DropKind::BadMac,
            HeartbeatError::MissingMac => DropKind::MissingMac,
            HeartbeatError::Malformed(_) => DropKind::Malformed,
        }
    }
}

/// Kinds of dropped heartbeat datagrams, for the counters in the HA status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    Truncated,
    BadMagic,
    UnsupportedFormat,
    BadMac,
    MissingMac,
    Malformed,
    /// Authentic but old: (epoch, seq) not newer than the last accepted on that pair.
    Replayed,
    /// Our own heartbeat came back (a heartbeat pair that points at this node).
    Own,
    /// Arrived on no configured heartbeat pair.
    UnknownPair,
    /// Unauthenticated pair: a heartbeat that changes what the partner says, held until a
    /// later one confirms it (see `HaSettings::authenticated`).
    Unconfirmed,
}

/// Encodes a heartbeat. With a key, the HMAC-SHA256 trailer is appended and flag KEYED set.
///
/// A records section longer than [`MAX_RECORDS`] is cut to that length (the caller sizes
/// batches to the path MTU long before that).
pub fn encode(hb: &Heartbeat, key: Option<&[u8]>) -> Vec<u8> {
    encode_for(hb, 0, key)
}

/// [`encode`] for HA instance `instance` (offset 65; 0 outside mutual high availability,
/// where the byte was reserved zero, so the format stays compatible).
pub fn encode_for(hb: &Heartbeat, instance: u8, key: Option<&[u8]>) -> Vec<u8> {
    let records = &hb.records[..hb.records.len().min(MAX_RECORDS)];
    let mut out = Vec::with_capacity(MIN_LEN + records.len() + MAC_LEN);
    let mut flags = 0u8;
    if key.is_some() {
        flags |= FLAG_KEYED;
    }
    if !records.is_empty() {
        flags |= FLAG_RECORDS;
    }
    if hb.maintenance {
        flags |= FLAG_MAINTENANCE;
    }
    if hb.handover {
        flags |= FLAG_HANDOVER;
    }
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    out.push(flags);
    out.extend_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    for part in [hb.version.v, hb.version.r, hb.version.m, hb.version.f] {
        out.extend_from_slice(&part.to_be_bytes());
    }
    out.extend_from_slice(&hb.epoch.to_be_bytes());
    out.extend_from_slice(&hb.seq.to_be_bytes());
    out.extend_from_slice(&hb.ack_epoch.to_be_bytes());
    out.extend_from_slice(&hb.ack.to_be_bytes());
    out.push(match hb.role {
        // `both` never reaches a machine: each instance of mutual HA is primary or backup.
        Role::Primary | Role::Both => 0,
        Role::Backup => 1,
    });
    out.push(hb.state.code());
    out.push(match hb.sub_state {
        SubState::NotSynchronized => 0,
        SubState::Synchronized => 1,
    });
    out.push(match hb.recovery {
        Recovery::Auto => 0,
        Recovery::Manual => 1,
    });
    out.extend_from_slice(&hb.reach_count.to_be_bytes());
    out.extend_from_slice(&hb.reach_total.to_be_bytes());
    out.extend_from_slice(&hb.config_digest.to_be_bytes());
    out.push(hb.request.code());
    out.extend_from_slice(&[instance, 0, 0]);
    out.extend_from_slice(&hb.hatimeout_ms.to_be_bytes());
    out.extend_from_slice(&hb.interval_ms.to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(records);
    if let Some(key) = key {
        let tag = sign(key, &out);
        out.extend_from_slice(&tag);
    }
    out
}

/// Whether a datagram claims an HMAC trailer (flag KEYED), without checking anything else.
/// Lets a node without a key report that its partner authenticates heartbeats.
pub fn carries_mac(bytes: &[u8]) -> bool {
    bytes.len() > 5 && bytes[..4] == MAGIC && bytes[5] & FLAG_KEYED != 0
}

/// Decodes and, with a key, authenticates a heartbeat (see [`decode_with`]).
pub fn decode(bytes: &[u8], key: Option<&[u8]>) -> Result<Heartbeat, HeartbeatError> {
    decode_with(bytes, &KeyRing::new(key.map(<[u8]>::to_vec))).map(|(hb, _)| hb)
}

/// Decodes a heartbeat and authenticates it against the key ring; says which key verified it.
///
/// Checks, in order: stable header (magic, format, critical flags, lengths), then the MAC
/// (before any field is interpreted, so a forged datagram is `BadMac` whatever it holds),
/// then the fields. Without a local key a keyed datagram is accepted unverified: this node
/// authenticates nothing anyway, and seeing the partner alive is what keeps the pair from
/// going dual-active; the status should say that the keys differ (see [`carries_mac`]).
pub fn decode_with(
    bytes: &[u8],
    keys: &KeyRing,
) -> Result<(Heartbeat, Option<KeyId>), HeartbeatError> {
    let truncated = |need: usize| HeartbeatError::Truncated {
        got: bytes.len(),
        need,
    };
    let mut r = Reader::new(bytes);
    match r.take(4) {
        None => return Err(truncated(8)),
        Some(m) if m != MAGIC => return Err(HeartbeatError::BadMagic),
        Some(_) => {}
    }
    let (Some(format), Some(flags), Some(header_len)) = (r.u8(), r.u8(), r.u16()) else {
        return Err(truncated(8));
    };
    if format != FORMAT || flags & FLAGS_CRITICAL != 0 {
        return Err(HeartbeatError::UnsupportedFormat { format, flags });
    }
    let header_len = usize::from(header_len);
    if header_len < HEADER_LEN {
        return Err(HeartbeatError::Malformed("header length"));
    }
    let records_len = Reader::new(bytes.get(header_len..).unwrap_or_default())
        .u16()
        .ok_or(truncated(header_len + 2))?;
    if usize::from(records_len) > MAX_RECORDS {
        // The encoder never writes more (it could not round-trip).
        return Err(HeartbeatError::Malformed("records length"));
    }
    let records_start = header_len + 2;
    let body_end = records_start + usize::from(records_len);
    let keyed = flags & FLAG_KEYED != 0;
    let total = body_end + if keyed { MAC_LEN } else { 0 };
    if bytes.len() < total {
        return Err(truncated(total));
    }
    if bytes.len() > total {
        return Err(HeartbeatError::Malformed("length (trailing bytes)"));
    }
    let verified_by = keys
        .verify(keyed, &bytes[..body_end], &bytes[body_end..total])
        .map_err(|e| match e {
            FrameError::MissingMac => HeartbeatError::MissingMac,
            _ => HeartbeatError::BadMac,
        })?;
    if (flags & FLAG_RECORDS != 0) != (records_len != 0) {
        return Err(HeartbeatError::Malformed("records flag"));
    }
    // The fixed header is known to be there (header_len >= HEADER_LEN): every read below
    // succeeds; `Malformed("header")` is unreachable but keeps this panic-free by construction.
    let bad = HeartbeatError::Malformed("header");
    let mut r = Reader::new(&bytes[8..HEADER_LEN]);
    let version = ProductVersion {
        v: r.u16().ok_or(bad.clone())?,
        r: r.u16().ok_or(bad.clone())?,
        m: r.u16().ok_or(bad.clone())?,
        f: r.u16().ok_or(bad.clone())?,
    };
    let epoch = r.u64().ok_or(bad.clone())?;
    let seq = r.u64().ok_or(bad.clone())?;
    let ack_epoch = r.u64().ok_or(bad.clone())?;
    let ack = r.u64().ok_or(bad.clone())?;
    let codes: [u8; 4] = r.array().ok_or(bad.clone())?;
    let reach_count = r.u16().ok_or(bad.clone())?;
    let reach_total = r.u16().ok_or(bad.clone())?;
    let config_digest = r.u64().ok_or(bad.clone())?;
    let request = r.u8().ok_or(bad.clone())?;
    let _reserved: [u8; 3] = r.array().ok_or(bad.clone())?;
    let hatimeout_ms = r.u32().ok_or(bad.clone())?;
    let interval_ms = r.u32().ok_or(bad)?;
    let hb = Heartbeat {
        version,
        epoch,
        seq,
        ack_epoch,
        ack,
        role: match codes[0] {
            0 => Role::Primary,
            1 => Role::Backup,
            _ => return Err(HeartbeatError::Malformed("role")),
        },
        state: State::from_code(codes[1]).ok_or(HeartbeatError::Malformed("state"))?,
        sub_state: match codes[2] {
            0 => SubState::NotSynchronized,
            1 => SubState::Synchronized,
            _ => return Err(HeartbeatError::Malformed("sub-state")),
        },
        recovery: match codes[3] {
            0 => Recovery::Auto,
            1 => Recovery::Manual,
            _ => return Err(HeartbeatError::Malformed("recovery")),
        },
        reach_count,
        reach_total,
        config_digest,
        request: Request::from_code(request).ok_or(HeartbeatError::Malformed("request"))?,
        maintenance: flags & FLAG_MAINTENANCE != 0,
        handover: flags & FLAG_HANDOVER != 0,
        hatimeout_ms,
        interval_ms,
        records: bytes[records_start..body_end].to_vec(),
    };
    Ok((hb, verified_by))
}

/// An authentic datagram that is not newer than the last one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replayed heartbeat (epoch {epoch}, seq {seq})")]
pub struct Replayed {
    pub epoch: u64,
    pub seq: u64,
}

/// Refuses replayed heartbeats: accepts `(epoch, seq)` only if the epoch is newer than the
/// last accepted one, or the same with a higher seq. Feed it only authenticated datagrams.
///
/// Epochs must grow across the sender's restarts (its start time in ms does): a sender whose
/// epoch went backwards is refused until this node restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    last: Option<(u64, u64)>,
}

impl ReplayGuard {
    pub fn new() -> Self {
        ReplayGuard { last: None }
    }

    /// Whether `(epoch, seq)` would be accepted, without recording it.
    pub fn check(&self, epoch: u64, seq: u64) -> Result<(), Replayed> {
        match self.last {
            Some(last) if (epoch, seq) <= last => Err(Replayed { epoch, seq }),
            _ => Ok(()),
        }
    }

    /// Checks and records `(epoch, seq)`.
    pub fn accept(&mut self, epoch: u64, seq: u64) -> Result<(), Replayed> {
        self.check(epoch, seq)?;
        self.last = Some((epoch, seq));
        Ok(())
    }

    /// The last accepted `(epoch, seq)`.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.last
    }
}
