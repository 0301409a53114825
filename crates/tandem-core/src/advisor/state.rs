//! The advisors' states as the Active sends them to the Standby: a compact, bounded binary
//! list that [`TargetState::decode_all`] reads back without panicking on any input.
//!
//! ```text
//! version u8 (1) | count u32 | count × entry
//! entry: kind u8 [len u8, name] | flags u8 | port u16 | [key cluster] | cluster | server
//!        | [load u32] | failures u32
//! kind:  0 connect, 1 http, 2 https, 3 ping, 4 dns, 5 custom (name ADV_[A-Za-z0-9_]+, ≤ 64)
//! flags: 0x01 the advisor key names a cluster, 0x02 that cluster is IPv6, 0x04 cluster
//!        IPv6, 0x08 server IPv6, 0x10 load present, 0x60 state (0x20 up, 0x40 down)
//! ```

use super::{State, TargetKey};
use crate::codec::{Reader, put_addr, put_u16, put_u32};
use crate::config::{AdvisorKey, AdvisorKind};
use std::net::IpAddr;

/// Most entries one list may hold (encode truncates, decode refuses more).
pub const MAX_EXPORTED_TARGETS: usize = 65_536;
/// Longest custom advisor name.
pub const MAX_CUSTOM_NAME: usize = 64;
const VERSION: u8 = 1;
/// Largest encoded entry: a custom advisor of the longest name, all addresses IPv6, a load.
pub const MAX_ENTRY: usize = 1 + 1 + MAX_CUSTOM_NAME + 1 + 2 + 16 * 3 + 4 + 4;
/// Smallest chunk [`TargetState::encode_chunks`] makes room for: the list header and one entry.
pub const MIN_CHUNK: usize = 5 + MAX_ENTRY;
const MIN_ENTRY: usize = 1 + 1 + 2 + 4 + 4 + 4;

const F_KEY_CLUSTER: u8 = 0x01;
const F_KEY_V6: u8 = 0x02;
const F_CLUSTER_V6: u8 = 0x04;
const F_SERVER_V6: u8 = 0x08;
const F_LOAD: u8 = 0x10;
const F_UP: u8 = 0x20;
const F_DOWN: u8 = 0x40;
const F_KNOWN: u8 = 0x7f;

/// One advisor's last known view of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub key: TargetKey,
    /// Up or down (unknown ones are not exported).
    pub state: State,
    pub load: Option<u32>,
    pub failures: u32,
}

/// Why a received state list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("advisor states: truncated")]
    Truncated,
    #[error("advisor states: unsupported version {0}")]
    Version(u8),
    #[error("advisor states: {0} entries (at most {MAX_EXPORTED_TARGETS})")]
    TooMany(u32),
    #[error("advisor states: unknown advisor kind {0}")]
    Kind(u8),
    #[error("advisor states: bad custom advisor name")]
    CustomName,
    #[error("advisor states: bad flags {0:#04x}")]
    Flags(u8),
    #[error("advisor states: {0} bytes after the last entry")]
    Trailing(usize),
}

fn is_v6(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V6(_))
}

fn valid_custom(name: &[u8]) -> bool {
    name.len() > 4
        && name.len() <= MAX_CUSTOM_NAME
        && name.starts_with(b"ADV_")
        && name[4..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl TargetState {
    /// Encodes `states` (at most [`MAX_EXPORTED_TARGETS`]; entries with an unknown state or
    /// an invalid custom name are left out).
    pub fn encode_all(states: &[TargetState]) -> Vec<u8> {
        let keep: Vec<&TargetState> = states
            .iter()
            .filter(|s| s.state != State::Unknown)
            .filter(|s| match &s.key.advisor.kind {
                AdvisorKind::Custom(n) => valid_custom(n.as_bytes()),
                _ => true,
            })
            .take(MAX_EXPORTED_TARGETS)
            .collect();
        let mut out = Vec::with_capacity(5 + keep.len() * 24);
        out.push(VERSION);
        put_u32(&mut out, keep.len() as u32);
        for s in keep {
            s.encode(&mut out);
        }
        out
    }

    /// Encodes `states` as self-contained lists of at most `max_bytes` each (every one decodes
    /// with [`TargetState::decode_all`]), for datagrams such as the partner channel's
    /// replication frames (`crate::ha::datagram::FRAME_MESSAGE_BYTES`). `max_bytes` below
    /// [`MIN_CHUNK`] is raised to it. No states: one empty list.
    pub fn encode_chunks(states: &[TargetState], max_bytes: usize) -> Vec<Vec<u8>> {
        let max = max_bytes.max(MIN_CHUNK);
        let mut chunks = Vec::new();
        let mut cur = Vec::new();
        let mut count = 0u32;
        let mut entry = Vec::with_capacity(MAX_ENTRY);
        let flush = |cur: &mut Vec<u8>, count: &mut u32, chunks: &mut Vec<Vec<u8>>| {
            if cur.is_empty() {
                return;
            }
            cur[1..5].copy_from_slice(&count.to_be_bytes());
            chunks.push(std::mem::take(cur));
            *count = 0;
        };
        let encodable = states
            .iter()
            .filter(|s| s.state != State::Unknown)
            .filter(|s| match &s.key.advisor.kind {
                AdvisorKind::Custom(n) => valid_custom(n.as_bytes()),
                _ => true,
            })
            .take(MAX_EXPORTED_TARGETS);
        for s in encodable {
            entry.clear();
            s.encode(&mut entry);
            if !cur.is_empty() && cur.len() + entry.len() > max {
                flush(&mut cur, &mut count, &mut chunks);
            }
            if cur.is_empty() {
                cur.push(VERSION);
                put_u32(&mut cur, 0);
            }
            cur.extend_from_slice(&entry);
            count += 1;
        }
        flush(&mut cur, &mut count, &mut chunks);
        if chunks.is_empty() {
            chunks.push(TargetState::encode_all(&[]));
        }
        chunks
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let k = &self.key;
        match &k.advisor.kind {
            AdvisorKind::Connect => out.push(0),
            AdvisorKind::Http => out.push(1),
            AdvisorKind::Https => out.push(2),
            AdvisorKind::Ping => out.push(3),
            AdvisorKind::Dns => out.push(4),
            AdvisorKind::Custom(n) => {
                out.push(5);
                out.push(n.len() as u8);
                out.extend_from_slice(n.as_bytes());
            }
        }
        let mut flags = match self.state {
            State::Up => F_UP,
            _ => F_DOWN,
        };
        if let Some(c) = k.advisor.cluster {
            flags |= F_KEY_CLUSTER;
            if is_v6(c) {
                flags |= F_KEY_V6;
            }
        }
        if is_v6(k.cluster) {
            flags |= F_CLUSTER_V6;
        }
        if is_v6(k.server) {
            flags |= F_SERVER_V6;
        }
        if self.load.is_some() {
            flags |= F_LOAD;
        }
        out.push(flags);
        put_u16(out, k.advisor.port);
        if let Some(c) = k.advisor.cluster {
            put_addr(out, c.to_canonical(), flags & F_KEY_V6 != 0);
        }
        put_addr(out, k.cluster.to_canonical(), flags & F_CLUSTER_V6 != 0);
        put_addr(out, k.server.to_canonical(), flags & F_SERVER_V6 != 0);
        if let Some(l) = self.load {
            put_u32(out, l);
        }
        put_u32(out, self.failures);
    }

    /// Decodes a list made by [`TargetState::encode_all`]; any malformed input is an error.
    pub fn decode_all(buf: &[u8]) -> Result<Vec<TargetState>, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.u8().ok_or(DecodeError::Truncated)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let count = r.u32().ok_or(DecodeError::Truncated)?;
        if count as usize > MAX_EXPORTED_TARGETS {
            return Err(DecodeError::TooMany(count));
        }
        if (count as usize).saturating_mul(MIN_ENTRY) > r.remaining() {
            return Err(DecodeError::Truncated);
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(Self::decode(&mut r)?);
        }
        if !r.is_empty() {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(out)
    }

    fn decode(r: &mut Reader<'_>) -> Result<TargetState, DecodeError> {
        let t = DecodeError::Truncated;
        let kind = match r.u8().ok_or(t.clone())? {
            0 => AdvisorKind::Connect,
            1 => AdvisorKind::Http,
            2 => AdvisorKind::Https,
            3 => AdvisorKind::Ping,
            4 => AdvisorKind::Dns,
            5 => {
                let len = r.u8().ok_or(t.clone())? as usize;
                let name = r.take(len).ok_or(t.clone())?;
                if !valid_custom(name) {
                    return Err(DecodeError::CustomName);
                }
                // valid_custom admits ASCII only.
                AdvisorKind::Custom(String::from_utf8_lossy(name).into_owned())
            }
            k => return Err(DecodeError::Kind(k)),
        };
        let flags = r.u8().ok_or(t.clone())?;
        let state = match flags & (F_UP | F_DOWN) {
            F_UP => State::Up,
            F_DOWN => State::Down,
            _ => return Err(DecodeError::Flags(flags)),
        };
        if flags & !F_KNOWN != 0 || (flags & F_KEY_V6 != 0 && flags & F_KEY_CLUSTER == 0) {
            return Err(DecodeError::Flags(flags));
        }
        let port = r.u16().ok_or(t.clone())?;
        let key_cluster = if flags & F_KEY_CLUSTER != 0 {
            Some(r.addr(flags & F_KEY_V6 != 0).ok_or(t.clone())?)
        } else {
            None
        };
        let cluster = r.addr(flags & F_CLUSTER_V6 != 0).ok_or(t.clone())?;
        let server = r.addr(flags & F_SERVER_V6 != 0).ok_or(t.clone())?;
        let load = if flags & F_LOAD != 0 {
            Some(r.u32().ok_or(t.clone())?)
        } else {
            None
        };
        let failures = r.u32().ok_or(t)?;
        Ok(TargetState {
            key: TargetKey {
                advisor: AdvisorKey {
                    kind,
                    cluster: key_cluster,
                    port,
                },
                cluster,
                server,
            },
            state,
            load,
            failures,
        })
    }
}
