//! The configuration sync messages, the message of a partner-channel frame of direction
//! Config (5). All integers big-endian; the first byte is the kind.
//!
//! ```text
//! 1 Status  (follower → source)   flags u8, lineage u64, applied u64, digest u64
//! 2 Head    (source → follower)   flags u8, lineage u64, head u64, digest u64, resume u8,
//!                                 echo_applied u64, echo_digest u64 (the status answered)
//! 3 Get     (follower → source)   what u8, lineage u64, seq u64, offset u32, count u16
//! 4 Chunk   (source → follower)   what u8, lineage u64, seq u64, digest_after u64,
//!                                 replace u8, total u32, offset u32, len u16, data[len]
//! 5 Gone    (source → follower)   what u8, lineage u64, seq u64
//! ```
//! `flags` bit 0: the sender has sync off; bit 1 (status): the follower asks for the full
//! configuration (it could not apply an entry). `resume`: 0 = none (an unsolicited head: ask
//! with a status), 1 = in sync, 2 = pull the entries after `applied`, 3 = full sync at
//! `head` (the follower's position is unknown to the log), 4 = full sync, diverged (the
//! follower holds changes the source does not). `what`: 1 = an entry of the log (seq),
//! 2 = the full shared text at seq, 3 = the shared text whose digest is `seq` (read-only,
//! for drift with sync off).

use crate::codec::Reader;

/// The largest object (entry or text) a follower reassembles.
pub const MAX_OBJECT: u32 = 32 << 20;
/// Bytes of a chunk's header.
pub const CHUNK_HEADER: usize = 1 + 1 + 8 + 8 + 8 + 1 + 4 + 4 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum What {
    Entry,
    Full,
    Text,
}

impl What {
    fn code(self) -> u8 {
        match self {
            What::Entry => 1,
            What::Full => 2,
            What::Text => 3,
        }
    }
    fn from_code(c: u8) -> Option<What> {
        Some(match c {
            1 => What::Entry,
            2 => What::Full,
            3 => What::Text,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    None,
    InSync,
    Entries,
    Full,
    Diverged,
}

impl Resume {
    fn code(self) -> u8 {
        match self {
            Resume::None => 0,
            Resume::InSync => 1,
            Resume::Entries => 2,
            Resume::Full => 3,
            Resume::Diverged => 4,
        }
    }
    fn from_code(c: u8) -> Option<Resume> {
        Some(match c {
            0 => Resume::None,
            1 => Resume::InSync,
            2 => Resume::Entries,
            3 => Resume::Full,
            4 => Resume::Diverged,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Status {
        off: bool,
        full: bool,
        lineage: u64,
        applied: u64,
        digest: u64,
    },
    Head {
        off: bool,
        lineage: u64,
        head: u64,
        digest: u64,
        resume: Resume,
        /// The `applied` and `digest` of the status this answers (0 when unsolicited).
        echo: (u64, u64),
    },
    Get {
        what: What,
        lineage: u64,
        seq: u64,
        offset: u32,
        count: u16,
    },
    Chunk {
        what: What,
        lineage: u64,
        seq: u64,
        digest_after: u64,
        replace: bool,
        total: u32,
        offset: u32,
        data: Vec<u8>,
    },
    Gone {
        what: What,
        lineage: u64,
        seq: u64,
    },
}

/// Why a message was not taken (counted by the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated sync message")]
    Truncated,
    #[error("unknown sync message kind {0}")]
    Kind(u8),
    #[error("bad field in sync message")]
    Field,
    #[error("trailing bytes after sync message")]
    Trailing,
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(48);
        let u64s = |o: &mut Vec<u8>, v: &[u64]| {
            for x in v {
                o.extend_from_slice(&x.to_be_bytes());
            }
        };
        match self {
            Message::Status {
                off,
                full,
                lineage,
                applied,
                digest,
            } => {
                o.push(1);
                o.push(*off as u8 | (*full as u8) << 1);
                u64s(&mut o, &[*lineage, *applied, *digest]);
            }
            Message::Head {
                off,
                lineage,
                head,
                digest,
                resume,
                echo,
            } => {
                o.push(2);
                o.push(*off as u8);
                u64s(&mut o, &[*lineage, *head, *digest]);
                o.push(resume.code());
                u64s(&mut o, &[echo.0, echo.1]);
            }
            Message::Get {
                what,
                lineage,
                seq,
                offset,
                count,
            } => {
                o.push(3);
                o.push(what.code());
                u64s(&mut o, &[*lineage, *seq]);
                o.extend_from_slice(&offset.to_be_bytes());
                o.extend_from_slice(&count.to_be_bytes());
            }
            Message::Chunk {
                what,
                lineage,
                seq,
                digest_after,
                replace,
                total,
                offset,
                data,
            } => {
                o.push(4);
                o.push(what.code());
                u64s(&mut o, &[*lineage, *seq, *digest_after]);
                o.push(*replace as u8);
                o.extend_from_slice(&total.to_be_bytes());
                o.extend_from_slice(&offset.to_be_bytes());
                let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
                o.extend_from_slice(&len.to_be_bytes());
                o.extend_from_slice(&data[..len as usize]);
            }
            Message::Gone { what, lineage, seq } => {
                o.push(5);
                o.push(what.code());
                u64s(&mut o, &[*lineage, *seq]);
            }
        }
        o
    }

    /// Decodes one message; never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes);
        let t = DecodeError::Truncated;
        let kind = r.u8().ok_or(t)?;
        let flag = |b: u8| match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Field),
        };
        let what = |b: u8| What::from_code(b).ok_or(DecodeError::Field);
        let m = match kind {
            1 => {
                let flags = r.u8().ok_or(t)?;
                if flags > 3 {
                    return Err(DecodeError::Field);
                }
                Message::Status {
                    off: flags & 1 != 0,
                    full: flags & 2 != 0,
                    lineage: r.u64().ok_or(t)?,
                    applied: r.u64().ok_or(t)?,
                    digest: r.u64().ok_or(t)?,
                }
            }
            2 => Message::Head {
                off: flag(r.u8().ok_or(t)?)?,
                lineage: r.u64().ok_or(t)?,
                head: r.u64().ok_or(t)?,
                digest: r.u64().ok_or(t)?,
                resume: Resume::from_code(r.u8().ok_or(t)?).ok_or(DecodeError::Field)?,
                echo: (r.u64().ok_or(t)?, r.u64().ok_or(t)?),
            },
            3 => Message::Get {
                what: what(r.u8().ok_or(t)?)?,
                lineage: r.u64().ok_or(t)?,
                seq: r.u64().ok_or(t)?,
                offset: r.u32().ok_or(t)?,
                count: r.u16().ok_or(t)?,
            },
            4 => {
                let what = what(r.u8().ok_or(t)?)?;
                let lineage = r.u64().ok_or(t)?;
                let seq = r.u64().ok_or(t)?;
                let digest_after = r.u64().ok_or(t)?;
                let replace = flag(r.u8().ok_or(t)?)?;
                let total = r.u32().ok_or(t)?;
                let offset = r.u32().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                let data = r.take(len as usize).ok_or(t)?.to_vec();
                if total > MAX_OBJECT || u64::from(offset) + u64::from(len) > u64::from(total) {
                    return Err(DecodeError::Field);
                }
                Message::Chunk {
                    what,
                    lineage,
                    seq,
                    digest_after,
                    replace,
                    total,
                    offset,
                    data,
                }
            }
            5 => Message::Gone {
                what: what(r.u8().ok_or(t)?)?,
                lineage: r.u64().ok_or(t)?,
                seq: r.u64().ok_or(t)?,
            },
            k => return Err(DecodeError::Kind(k)),
        };
        if !r.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(m)
    }
}
