//! The partner channel's datagrams, as they travel on the heartbeat port: the authentication
//! both kinds share (HMAC-SHA256, written once, here), the key ring that lets a pair change
//! its key without a moment of deafness, and the replication frame.
//!
//! Two kinds of datagram share the port, told apart by their first four bytes:
//! heartbeats (`TNDM`, see [`super::heartbeat`] and `docs/heartbeat.md`) and replication
//! frames (`TNDR`, below and `docs/replication.md`).
//!
//! ```text
//! replication frame, format 2 (all integers big-endian)
//!  0  4  magic "TNDR"
//!  4  1  format (2)
//!  5  1  flags (bit 0: KEYED, an HMAC-SHA256 trailer follows)
//!  6  1  direction: 1 = records (batches), 2 = acknowledgements, 3 = key probe,
//!          4 = server health (the Active's advisor states, for a takeover),
//!          5 = configuration sync (`crate::sync::wire`, docs/config-sync.md),
//!          6 = diagnostics (the pull of the partner's diagnostics bundle, see `super::bundle`)
//!  7  1  HA instance (0; 1 = the second group of mutual HA; reserved zero before it)
//!  8  8  sender's heartbeat epoch
//! 16  8  receiver's heartbeat epoch, as the sender knows it
//! 24  …  message (a replication batch or ack; empty for a key probe)
//!  …  32 HMAC-SHA256 over everything before it (only when KEYED)
//! ```
//!
//! The two epochs bind a frame to one run of each node: a frame replayed from an earlier run
//! of either node, or reflected back to its sender, is dropped and counted, and can never
//! retire the replication session in use.

use crate::codec::Reader;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};

/// Length of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;

/// First bytes of a replication frame.
pub const REPLICATION_MAGIC: [u8; 4] = *b"TNDR";
/// The replication frame format this code writes and reads.
pub const REPLICATION_FORMAT: u8 = 2;
/// Bytes of the replication frame header.
pub const REPLICATION_HEADER: usize = 24;
const FLAG_KEYED: u8 = 0x01;

/// Records carried by a heartbeat (about 15 typical IPv4 records, as IBM's heartbeats carry).
pub const HEARTBEAT_RECORD_BYTES: usize = 584;
/// Room for a message in a replication frame on a 1500-byte path, after IP/UDP headers, the
/// frame header and the HMAC.
pub const FRAME_MESSAGE_BYTES: usize = 1500 - 20 - 8 - REPLICATION_HEADER - MAC_LEN;

/// HMAC-SHA256 of `bytes` under `key`.
pub fn sign(key: &[u8], bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `bytes` under `key` (compared in constant time).
pub fn verify(key: &[u8], bytes: &[u8], tag: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac.verify_slice(tag).is_ok()
}

/// What a replication frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Batches of records, from the node that replicates (Active, or handing over).
    Records,
    /// Acknowledgements of batches, back to it.
    Acks,
    /// No message: proves that the sender holds the key this frame is signed with (sent
    /// while a key change is in progress, see [`KeyRing`]).
    KeyProbe,
    /// The Active's advisor states (an opaque, self-contained chunk that
    /// `crate::advisor` encodes), so that a node taking over starts from them.
    Health,
    /// The diagnostics pull protocol ([`super::bundle`]), both ways.
    Diagnostics,
    /// Configuration sync messages (`crate::sync::wire`), both ways.
    Config,
}

impl Direction {
    fn code(self) -> u8 {
        match self {
            Direction::Records => 1,
            Direction::Acks => 2,
            Direction::KeyProbe => 3,
            Direction::Health => 4,
            Direction::Diagnostics => 6,
            Direction::Config => 5,
        }
    }

    fn from_code(c: u8) -> Option<Direction> {
        Some(match c {
            1 => Direction::Records,
            2 => Direction::Acks,
            3 => Direction::KeyProbe,
            4 => Direction::Health,
            6 => Direction::Diagnostics,
            5 => Direction::Config,
            _ => return None,
        })
    }
}

/// A replication frame, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub direction: Direction,
    pub sender_epoch: u64,
    pub receiver_epoch: u64,
    pub message: &'a [u8],
    /// Which key verified it (`None`: unkeyed).
    pub verified_by: Option<KeyId>,
}

/// Why a datagram on the heartbeat port was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated replication frame")]
    Truncated,
    #[error("unsupported replication frame format {0}")]
    UnsupportedFormat(u8),
    #[error("unknown replication direction {0}")]
    Direction(u8),
    #[error("replication frame authentication failed (wrong key or forged)")]
    BadMac,
    #[error("unauthenticated replication frame while a key is configured")]
    MissingMac,
}

/// Whether `bytes` is a replication frame (else a heartbeat, or garbage).
pub fn is_replication(bytes: &[u8]) -> bool {
    bytes.starts_with(&REPLICATION_MAGIC)
}

/// Offset of the HA instance byte in a heartbeat.
pub const HEARTBEAT_INSTANCE_OFFSET: usize = 65;
/// Offset of the HA instance byte in a replication frame.
pub const FRAME_INSTANCE_OFFSET: usize = 7;

/// The HA instance a datagram on the heartbeat port claims (heartbeat offset 65, frame
/// offset 7; 0 when too short to say). Read before authentication, to route the datagram to
/// its instance, which then verifies it: the byte is covered by the HMAC.
pub fn instance_of(bytes: &[u8]) -> u8 {
    let at = if is_replication(bytes) {
        FRAME_INSTANCE_OFFSET
    } else {
        HEARTBEAT_INSTANCE_OFFSET
    };
    bytes.get(at).copied().unwrap_or(0)
}

/// Builds a replication frame, signed with `key` if any.
pub fn seal(
    direction: Direction,
    sender_epoch: u64,
    receiver_epoch: u64,
    message: &[u8],
    key: Option<&[u8]>,
) -> Vec<u8> {
    seal_for(0, direction, sender_epoch, receiver_epoch, message, key)
}

/// [`seal`] for HA instance `instance` (offset 7).
pub fn seal_for(
    instance: u8,
    direction: Direction,
    sender_epoch: u64,
    receiver_epoch: u64,
    message: &[u8],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(REPLICATION_HEADER + message.len() + MAC_LEN);
    out.extend_from_slice(&REPLICATION_MAGIC);
    out.push(REPLICATION_FORMAT);
    out.push(if key.is_some() { FLAG_KEYED } else { 0 });
    out.push(direction.code());
    out.push(instance);
    out.extend_from_slice(&sender_epoch.to_be_bytes());
    out.extend_from_slice(&receiver_epoch.to_be_bytes());
    out.extend_from_slice(message);
    if let Some(k) = key {
        let tag = sign(k, &out);
        out.extend_from_slice(&tag);
    }
    out
}

/// Checks a replication frame's header and authentication (before reading any field).
pub fn open<'a>(bytes: &'a [u8], keys: &KeyRing) -> Result<Frame<'a>, FrameError> {
    let mut r = Reader::new(bytes);
    let head = r.take(4).ok_or(FrameError::Truncated)?;
    if head != REPLICATION_MAGIC {
        return Err(FrameError::Truncated);
    }
    let format = r.u8().ok_or(FrameError::Truncated)?;
    if format != REPLICATION_FORMAT {
        return Err(FrameError::UnsupportedFormat(format));
    }
    let flags = r.u8().ok_or(FrameError::Truncated)?;
    let keyed = flags & FLAG_KEYED != 0;
    let body_len = if keyed {
        bytes
            .len()
            .checked_sub(MAC_LEN)
            .filter(|&n| n >= REPLICATION_HEADER)
            .ok_or(FrameError::Truncated)?
    } else {
        bytes.len()
    };
    if body_len < REPLICATION_HEADER {
        return Err(FrameError::Truncated);
    }
    let (body, tag) = bytes.split_at(body_len);
    let verified_by = keys.verify(keyed, body, tag)?;
    let mut r = Reader::new(&body[6..]);
    let code = r.u8().ok_or(FrameError::Truncated)?;
    let direction = Direction::from_code(code).ok_or(FrameError::Direction(code))?;
    let _reserved = r.u8().ok_or(FrameError::Truncated)?;
    let sender_epoch = r.u64().ok_or(FrameError::Truncated)?;
    let receiver_epoch = r.u64().ok_or(FrameError::Truncated)?;
    Ok(Frame {
        direction,
        sender_epoch,
        receiver_epoch,
        message: &body[REPLICATION_HEADER..],
        verified_by,
    })
}

/// Which key of the ring verified a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyId {
    Current,
    Previous,
}

/// The pair's keys, with a change in progress.
///
/// A key change on a live pair is rolled one node at a time. The node that gets the new key
/// keeps signing with the old one, accepts both, and sends a key probe signed with the new
/// one each heartbeat round; a partner that holds the new key recognises the probe (or any
/// datagram signed with it) and switches to signing with it, which the first node recognises
/// in turn. So neither node ever signs with a key its partner cannot check: no moment of
/// deafness, no dual-Active, and the pair stays Synchronized. The old key is dropped
/// [`KeyRing::GRACE`] after the partner has shown the new one. Until it has, status says the
/// change is in progress.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    current: Option<Vec<u8>>,
    /// The key being replaced (`Some(None)`: the pair was unkeyed), until the partner shows
    /// the current one.
    previous: Option<Option<Vec<u8>>>,
    /// When the partner first showed the current key during a change.
    proven_at: Option<Instant>,
}

impl KeyRing {
    /// How long the old key is still accepted after the partner has shown the new one (for
    /// datagrams already in flight).
    pub const GRACE: Duration = Duration::from_secs(2);

    pub fn new(key: Option<Vec<u8>>) -> KeyRing {
        KeyRing {
            current: key,
            previous: None,
            proven_at: None,
        }
    }

    /// The key configured now.
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    /// Sets a new key. On a live pair (`rolling`: the partner has been heard), a change from
    /// one key to another (or from none to a key) is rolled as described above; otherwise,
    /// and when the key is removed, it takes effect at once.
    pub fn set(&mut self, key: Option<Vec<u8>>, rolling: bool) {
        if key == self.current {
            return;
        }
        let old = std::mem::replace(&mut self.current, key);
        if self.current.is_none() || !rolling {
            self.previous = None;
        } else {
            self.previous = Some(old);
        }
        self.proven_at = None;
    }

    /// A change is in progress: the partner has not shown the new key yet, or has only just.
    pub fn rotating(&self) -> bool {
        self.previous.is_some()
    }

    /// The partner has not yet shown the current key.
    pub fn awaiting_partner(&self) -> bool {
        self.previous.is_some() && self.proven_at.is_none()
    }

    /// Every datagram this node accepts is authenticated (a key is set, and no change from an
    /// unkeyed pair is in progress).
    pub fn authenticated(&self) -> bool {
        self.current.is_some() && !matches!(self.previous, Some(None))
    }

    /// The key to sign with: the old one until the partner has shown the new one.
    pub fn signing(&self) -> Option<&[u8]> {
        match (&self.previous, self.proven_at) {
            (Some(old), None) => old.as_deref(),
            _ => self.current.as_deref(),
        }
    }

    /// The key a probe is signed with, while the partner has not shown it yet.
    pub fn probe_key(&self) -> Option<&[u8]> {
        if self.awaiting_partner() {
            self.current.as_deref()
        } else {
            None
        }
    }

    /// Verifies `body` + `tag` (`keyed`: the datagram says it carries a tag).
    pub fn verify(
        &self,
        keyed: bool,
        body: &[u8],
        tag: &[u8],
    ) -> Result<Option<KeyId>, FrameError> {
        if let Some(k) = &self.current
            && keyed
            && verify(k, body, tag)
        {
            return Ok(Some(KeyId::Current));
        }
        match &self.previous {
            Some(Some(old)) if keyed && verify(old, body, tag) => return Ok(Some(KeyId::Previous)),
            Some(None) if !keyed => return Ok(None),
            _ => {}
        }
        match (&self.current, keyed) {
            (None, _) => Ok(None), // this node authenticates nothing
            (Some(_), true) => Err(FrameError::BadMac),
            (Some(_), false) => Err(FrameError::MissingMac),
        }
    }

    /// A datagram verified with `id` arrived at `now`: the partner holds that key.
    pub fn note(&mut self, id: Option<KeyId>, now: Instant) {
        if id == Some(KeyId::Current) && self.previous.is_some() && self.proven_at.is_none() {
            self.proven_at = Some(now);
        }
    }

    /// Ends a change once the grace after the partner's proof has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.proven_at.is_some_and(|t| now >= t + Self::GRACE) {
            self.previous = None;
            self.proven_at = None;
        }
    }

    /// When [`KeyRing::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.proven_at.map(|t| t + Self::GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"old key 0123456789abcdef";
    const NEW: &[u8] = b"new key 0123456789abcdef";

    #[test]
    fn frames_round_trip_and_refuse_forgeries() {
        let keys = KeyRing::new(Some(OLD.to_vec()));
        let f = seal(Direction::Records, 7, 9, b"batch", Some(OLD));
        let opened = open(&f, &keys).unwrap();
        assert_eq!(
            (
                opened.direction,
                opened.sender_epoch,
                opened.receiver_epoch,
                opened.message
            ),
            (Direction::Records, 7, 9, &b"batch"[..])
        );
        let mut forged = f.clone();
        forged[9] ^= 1;
        assert_eq!(open(&forged, &keys), Err(FrameError::BadMac));
        let unkeyed = seal(Direction::Records, 7, 9, b"batch", None);
        assert_eq!(open(&unkeyed, &keys), Err(FrameError::MissingMac));
        // Every prefix is refused cleanly.
        for n in 0..f.len() {
            assert!(open(&f[..n], &keys).is_err(), "{n}");
        }
        // Unknown direction (re-signed): refused after authentication.
        let mut odd = seal(Direction::Records, 7, 9, b"", None);
        odd[6] = 9;
        let config = seal(Direction::Config, 7, 9, b"sync", None);
        assert_eq!(
            open(&config, &KeyRing::new(None)).unwrap().direction,
            Direction::Config
        );
        assert_eq!(
            open(&odd, &KeyRing::new(None)),
            Err(FrameError::Direction(9))
        );
    }

    /// A rolling key change: node X gets the new key first, then node Y. Neither ever signs
    /// with a key the other cannot check.
    #[test]
    fn a_rolling_key_change_never_leaves_a_node_deaf() {
        let t0 = Instant::now();
        let mut x = KeyRing::new(Some(OLD.to_vec()));
        let mut y = KeyRing::new(Some(OLD.to_vec()));
        let check = |from: &KeyRing, to: &KeyRing| {
            let f = seal(Direction::Acks, 1, 2, b"", from.signing());
            open(&f, to).map(|f| f.verified_by)
        };
        x.set(Some(NEW.to_vec()), true);
        assert!(x.rotating() && x.awaiting_partner());
        assert_eq!(x.signing(), Some(OLD));
        assert!(check(&x, &y).is_ok() && check(&y, &x).is_ok());
        // X's probe is signed with the new key: Y cannot check it yet (counted, harmless).
        let probe = seal(Direction::KeyProbe, 1, 2, b"", x.probe_key());
        assert_eq!(open(&probe, &y), Err(FrameError::BadMac));
        // Y gets the new key: it recognises X's probe, and switches.
        y.set(Some(NEW.to_vec()), true);
        let id = open(&probe, &y).unwrap().verified_by;
        y.note(id, t0);
        assert_eq!(y.signing(), Some(NEW));
        // X sees Y's new signature and switches too.
        let id = check(&y, &x).unwrap();
        x.note(id, t0);
        assert_eq!(x.signing(), Some(NEW));
        assert!(check(&x, &y).is_ok() && check(&y, &x).is_ok());
        // After the grace, the old key is refused.
        x.handle_timeout(t0 + KeyRing::GRACE);
        assert!(!x.rotating());
        let old = seal(Direction::Acks, 1, 2, b"", Some(OLD));
        assert_eq!(open(&old, &x), Err(FrameError::BadMac));
    }

    #[test]
    fn adding_a_key_to_an_unkeyed_pair_stays_unauthenticated_until_the_partner_has_it() {
        let t0 = Instant::now();
        let mut x = KeyRing::new(None);
        assert!(!x.authenticated());
        x.set(Some(NEW.to_vec()), true);
        assert!(!x.authenticated(), "unkeyed datagrams are still accepted");
        assert_eq!(x.signing(), None);
        assert!(open(&seal(Direction::Acks, 1, 2, b"", None), &x).is_ok());
        let id = open(&seal(Direction::Acks, 1, 2, b"", Some(NEW)), &x)
            .unwrap()
            .verified_by;
        x.note(id, t0);
        x.handle_timeout(t0 + KeyRing::GRACE);
        assert!(x.authenticated());
        assert_eq!(
            open(&seal(Direction::Acks, 1, 2, b"", None), &x),
            Err(FrameError::MissingMac)
        );
    }
}
