//! Replication records and their compact encodings (see `docs/replication.md`).
//!
//! Every element of a batch is `type u8, len u8, body[len]`. A receiver skips an element of
//! a type it does not know by its length, so a newer sender may add record types. The body
//! of a known type has one layout per combination of its flags and must have exactly that
//! length: a new field means a new type number, never a longer body.

use crate::codec::{Reader, addr_len, needs_v6, put_addr, put_u16, put_u24, put_u32};
use crate::config::{Protocol, default_staletimeout};
use crate::flow::{FlowKey, IPPROTO_TCP, IPPROTO_UDP};
use crate::forward::{Conn, NatMapping};
use crate::select::affinity::{AffinityKey, AffinityRecord as TableAffinity};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Element type of a connection record.
pub const TYPE_CONNECTION: u8 = 0x01;
/// Element type of an affinity record.
pub const TYPE_AFFINITY: u8 = 0x02;
/// Element type of the marker that opens a full synchronisation.
pub const TYPE_SYNC_START: u8 = 0x10;
/// Element type of the marker that closes a full synchronisation.
pub const TYPE_SYNC_END: u8 = 0x11;

/// Bytes of an element's `type` and `len`.
pub const ELEMENT_HEADER: usize = 2;

// Flags of a connection record.
const C_V6: u8 = 0x01;
const C_UDP: u8 = 0x02;
const C_NAT: u8 = 0x04;
const C_MAPPORT: u8 = 0x08;
const C_CLOSING: u8 = 0x10;
const C_ENDED: u8 = 0x20;
const C_STALE: u8 = 0x40;
const C_LONG: u8 = 0x80;

// Flags of an affinity record.
const A_V6: u8 = 0x01;

/// Largest idle time carried in 24 bits (about 4 h 40 min); longer needs the LONG layout.
const U24_MAX: u32 = 0x00ff_ffff;

/// Why an element of a batch could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The element's header or body runs past the end of the batch: nothing after it can be
    /// read either.
    #[error("element runs past the end of the batch")]
    Truncated,
    /// An element type this version does not know; it was skipped.
    #[error("unknown element type {0:#04x} (skipped)")]
    UnknownType(u8),
    /// Reserved or contradictory flags.
    #[error("bad flags {flags:#04x} in element type {kind:#04x}")]
    BadFlags { kind: u8, flags: u8 },
    /// The body's length does not match the layout its flags describe.
    #[error("element type {kind:#04x}: body of {got} bytes, layout needs {expected}")]
    Length {
        kind: u8,
        expected: usize,
        got: usize,
    },
    /// A synchronisation marker where a record was expected.
    #[error("a synchronisation marker, not a record")]
    NotARecord,
}

impl RecordError {
    /// True when the rest of the batch cannot be read (the element's length is unusable);
    /// any other error concerns only this element, which the reader has skipped.
    pub fn is_framing(&self) -> bool {
        matches!(self, RecordError::Truncated)
    }
}

/// The replicated state of one connection (a [`Conn`] without the node-local parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub proto: Protocol,
    /// Client address and port (the flow's source).
    pub client: SocketAddr,
    /// Cluster address and port (the flow's destination).
    pub cluster: SocketAddr,
    pub server: IpAddr,
    /// NAT translation (returnaddress, NAT source port, server port), for NAT ports.
    pub nat: Option<NatMapping>,
    /// Where frames back to the client go.
    pub client_mac: [u8; 6],
    /// Last acknowledgement number the client sent (for resets).
    pub client_ack: u32,
    /// A FIN or RST was seen; the record ends after the FIN timeout.
    pub closing: bool,
    /// The connection is over (FIN/RST timed out, or its server went down with `reset yes`):
    /// the receiver deletes its copy.
    pub ended: bool,
    /// Milliseconds since the connection's last packet, when the record was made.
    pub idle_ms: u32,
    /// The port's staletimeout, seconds, that applies to this connection.
    pub staletimeout_s: u32,
}

/// The replicated state of one affinity (sticky) record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityRecord {
    pub cluster: IpAddr,
    pub port: u16,
    pub client: IpAddr,
    pub server: IpAddr,
    /// Milliseconds since the client's last new connection, when the record was made.
    pub age_ms: u32,
    /// The port's stickytime, seconds.
    pub stickytime_s: u32,
}

/// A replicated record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Connection(ConnectionRecord),
    Affinity(AffinityRecord),
}

/// What a record is about: a newer record with the same key replaces an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    Connection {
        proto: Protocol,
        client: SocketAddr,
        cluster: SocketAddr,
    },
    Affinity(AffinityKey),
}

/// One element of a batch: a record or a full-synchronisation marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Record(Record),
    /// The records of full synchronisation `epoch` follow.
    SyncStart {
        epoch: u32,
    },
    /// Full synchronisation `epoch` is complete; the sender queued `records` records for it.
    SyncEnd {
        epoch: u32,
        records: u32,
    },
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Whole seconds, rounded up, saturating.
fn duration_s_ceil(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// `now - ms`, or `now` if the clock cannot go back that far.
fn before(now: Instant, ms: u32) -> Instant {
    now.checked_sub(Duration::from_millis(u64::from(ms)))
        .unwrap_or(now)
}

/// The IP protocol number of a [`Protocol`].
pub fn ip_proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// The [`Protocol`] of an IP protocol number Tandem forwards.
pub fn protocol_of(proto: u8) -> Option<Protocol> {
    match proto {
        IPPROTO_TCP => Some(Protocol::Tcp),
        IPPROTO_UDP => Some(Protocol::Udp),
        _ => None,
    }
}

impl ConnectionRecord {
    /// The record of `conn` at `now`. `ended` is false: set it for a connection that ended.
    /// `None` for a protocol other than TCP or UDP.
    pub fn from_conn(conn: &Conn, now: Instant) -> Option<ConnectionRecord> {
        Some(ConnectionRecord {
            proto: protocol_of(conn.key.proto)?,
            client: SocketAddr::new(conn.key.src_ip, conn.key.src_port),
            cluster: SocketAddr::new(conn.key.dst_ip, conn.key.dst_port),
            server: conn.server,
            nat: conn.nat,
            client_mac: conn.client_mac,
            client_ack: conn.client_ack,
            closing: conn.closing_since.is_some(),
            ended: false,
            idle_ms: duration_ms(now.saturating_duration_since(conn.last_seen)),
            staletimeout_s: duration_s_ceil(conn.staletimeout),
        })
    }

    /// The connection as the receiver installs it at `now`. Its last packet is placed `idle_ms` before `now`;
    /// a closing record starts its FIN timeout at `now`. Meaningless for an `ended` record,
    /// which deletes the receiver's record of [`flow_key`](Self::flow_key) instead.
    pub fn to_conn(&self, now: Instant) -> Conn {
        let last_seen = before(now, self.idle_ms);
        Conn {
            key: self.flow_key(),
            server: self.server,
            nat: self.nat,
            client_mac: self.client_mac,
            created: last_seen,
            last_seen,
            closing_since: self.closing.then_some(now),
            staletimeout: Duration::from_secs(u64::from(self.staletimeout_s)),
            client_ack: self.client_ack,
            replicated_at: None,
            established: true,
            made_affinity: false,
        }
    }

    /// The connection table's key (client → cluster).
    pub fn flow_key(&self) -> FlowKey {
        FlowKey {
            proto: ip_proto(self.proto),
            src_ip: self.client.ip(),
            src_port: self.client.port(),
            dst_ip: self.cluster.ip(),
            dst_port: self.cluster.port(),
        }
    }

    pub fn key(&self) -> RecordKey {
        RecordKey::Connection {
            proto: self.proto,
            client: self.client,
            cluster: self.cluster,
        }
    }

    fn v6(&self) -> bool {
        needs_v6(self.client.ip())
            || needs_v6(self.cluster.ip())
            || needs_v6(self.server)
            || self.nat.is_some_and(|n| needs_v6(n.returnaddress))
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.v6() {
            f |= C_V6;
        }
        if self.proto == Protocol::Udp {
            f |= C_UDP;
        }
        if let Some(n) = self.nat {
            f |= C_NAT;
            if n.server_port != self.cluster.port() {
                f |= C_MAPPORT;
            }
        }
        if self.closing {
            f |= C_CLOSING;
        }
        if self.ended {
            f |= C_ENDED;
        }
        let stale = self.staletimeout_s != default_staletimeout(self.cluster.port());
        if stale {
            f |= C_STALE;
        }
        if self.idle_ms > U24_MAX || (stale && self.staletimeout_s > u32::from(u16::MAX)) {
            f |= C_LONG;
        }
        f
    }

    /// Body length of the layout `flags` describe.
    fn body_len(flags: u8) -> usize {
        let a = addr_len(flags & C_V6 != 0);
        let long = flags & C_LONG != 0;
        let mut n = 1 + (a + 2) * 2 + a + 6 + 4;
        if flags & C_NAT != 0 {
            n += a + 2;
        }
        if flags & C_MAPPORT != 0 {
            n += 2;
        }
        n += if long { 4 } else { 3 };
        if flags & C_STALE != 0 {
            n += if long { 4 } else { 2 };
        }
        n
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        ELEMENT_HEADER + Self::body_len(self.flags())
    }

    /// Appends the record's element to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let flags = self.flags();
        let v6 = flags & C_V6 != 0;
        let long = flags & C_LONG != 0;
        out.push(TYPE_CONNECTION);
        // At most 93 bytes (IPv6 with every optional field).
        out.push(Self::body_len(flags) as u8);
        out.push(flags);
        put_addr(out, self.client.ip(), v6);
        put_u16(out, self.client.port());
        put_addr(out, self.cluster.ip(), v6);
        put_u16(out, self.cluster.port());
        put_addr(out, self.server, v6);
        if let Some(n) = self.nat {
            put_addr(out, n.returnaddress, v6);
            put_u16(out, n.nat_port);
            if flags & C_MAPPORT != 0 {
                put_u16(out, n.server_port);
            }
        }
        out.extend_from_slice(&self.client_mac);
        put_u32(out, self.client_ack);
        if long {
            put_u32(out, self.idle_ms);
        } else {
            put_u24(out, self.idle_ms);
        }
        if flags & C_STALE != 0 {
            if long {
                put_u32(out, self.staletimeout_s);
            } else {
                put_u16(out, self.staletimeout_s as u16);
            }
        }
    }

    /// Reads a body (after `type` and `len`); `body` must be exactly one record.
    fn decode_body(body: &mut Reader<'_>) -> Result<ConnectionRecord, RecordError> {
        const K: u8 = TYPE_CONNECTION;
        let got = body.remaining();
        let flags = body.u8().ok_or(RecordError::Length {
            kind: K,
            expected: 1,
            got,
        })?;
        if flags & C_MAPPORT != 0 && flags & C_NAT == 0 {
            return Err(RecordError::BadFlags { kind: K, flags });
        }
        let expected = Self::body_len(flags);
        if got != expected {
            return Err(RecordError::Length {
                kind: K,
                expected,
                got,
            });
        }
        let short = RecordError::Length {
            kind: K,
            expected,
            got,
        };
        let v6 = flags & C_V6 != 0;
        let long = flags & C_LONG != 0;
        let client_ip = body.addr(v6).ok_or(short)?;
        let client_port = body.u16().ok_or(short)?;
        let cluster_ip = body.addr(v6).ok_or(short)?;
        let cluster_port = body.u16().ok_or(short)?;
        let server = body.addr(v6).ok_or(short)?;
        let nat = if flags & C_NAT != 0 {
            let returnaddress = body.addr(v6).ok_or(short)?;
            let nat_port = body.u16().ok_or(short)?;
            let server_port = if flags & C_MAPPORT != 0 {
                body.u16().ok_or(short)?
            } else {
                cluster_port
            };
            Some(NatMapping {
                returnaddress,
                nat_port,
                server_port,
            })
        } else {
            None
        };
        let client_mac = body.array::<6>().ok_or(short)?;
        let client_ack = body.u32().ok_or(short)?;
        let idle_ms = if long { body.u32() } else { body.u24() }.ok_or(short)?;
        let staletimeout_s = if flags & C_STALE == 0 {
            default_staletimeout(cluster_port)
        } else if long {
            body.u32().ok_or(short)?
        } else {
            u32::from(body.u16().ok_or(short)?)
        };
        Ok(ConnectionRecord {
            proto: if flags & C_UDP != 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            client: SocketAddr::new(client_ip, client_port),
            cluster: SocketAddr::new(cluster_ip, cluster_port),
            server,
            nat,
            client_mac,
            client_ack,
            closing: flags & C_CLOSING != 0,
            ended: flags & C_ENDED != 0,
            idle_ms,
            staletimeout_s,
        })
    }
}

impl AffinityRecord {
    /// The record of a table entry at `now`, for a port whose stickytime is `stickytime`.
    pub fn from_table(
        key: &AffinityKey,
        record: &TableAffinity,
        stickytime: Duration,
        now: Instant,
    ) -> AffinityRecord {
        AffinityRecord {
            cluster: key.cluster,
            port: key.port,
            client: key.client,
            server: record.server,
            age_ms: duration_ms(now.saturating_duration_since(record.last_new_connection)),
            stickytime_s: duration_s_ceil(stickytime),
        }
    }

    /// The table entry as the receiver installs it at `now` (last new connection `age_ms`
    /// before `now`).
    pub fn to_table(&self, now: Instant) -> (AffinityKey, TableAffinity) {
        let t = before(now, self.age_ms);
        (
            self.affinity_key(),
            TableAffinity {
                server: self.server,
                last_new_connection: t,
                created: t,
            },
        )
    }

    /// The affinity table's key.
    pub fn affinity_key(&self) -> AffinityKey {
        AffinityKey {
            cluster: self.cluster,
            port: self.port,
            client: self.client,
        }
    }

    pub fn key(&self) -> RecordKey {
        RecordKey::Affinity(self.affinity_key())
    }

    fn v6(&self) -> bool {
        needs_v6(self.cluster) || needs_v6(self.client) || needs_v6(self.server)
    }

    fn body_len(v6: bool) -> usize {
        1 + addr_len(v6) * 3 + 2 + 4 + 4
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        ELEMENT_HEADER + Self::body_len(self.v6())
    }

    /// Appends the record's element to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let v6 = self.v6();
        out.push(TYPE_AFFINITY);
        out.push(Self::body_len(v6) as u8);
        out.push(if v6 { A_V6 } else { 0 });
        put_addr(out, self.cluster, v6);
        put_u16(out, self.port);
        put_addr(out, self.client, v6);
        put_addr(out, self.server, v6);
        put_u32(out, self.age_ms);
        put_u32(out, self.stickytime_s);
    }

    fn decode_body(body: &mut Reader<'_>) -> Result<AffinityRecord, RecordError> {
        const K: u8 = TYPE_AFFINITY;
        let got = body.remaining();
        let flags = body.u8().ok_or(RecordError::Length {
            kind: K,
            expected: 1,
            got,
        })?;
        if flags & !A_V6 != 0 {
            return Err(RecordError::BadFlags { kind: K, flags });
        }
        let v6 = flags & A_V6 != 0;
        let expected = Self::body_len(v6);
        if got != expected {
            return Err(RecordError::Length {
                kind: K,
                expected,
                got,
            });
        }
        let short = RecordError::Length {
            kind: K,
            expected,
            got,
        };
        Ok(AffinityRecord {
            cluster: body.addr(v6).ok_or(short)?,
            port: body.u16().ok_or(short)?,
            client: body.addr(v6).ok_or(short)?,
            server: body.addr(v6).ok_or(short)?,
            age_ms: body.u32().ok_or(short)?,
            stickytime_s: body.u32().ok_or(short)?,
        })
    }
}

impl Record {
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Connection(c) => c.key(),
            Record::Affinity(a) => a.key(),
        }
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Connection(c) => c.encoded_len(),
            Record::Affinity(a) => a.encoded_len(),
        }
    }

    /// Appends the record's element to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Connection(c) => c.encode(out),
            Record::Affinity(a) => a.encode(out),
        }
    }

    /// Reads one record element. On any error but [`RecordError::Truncated`] the reader has
    /// moved past the element, so the caller may go on with the next one.
    pub fn decode(r: &mut Reader<'_>) -> Result<Record, RecordError> {
        match Item::decode(r)? {
            Item::Record(rec) => Ok(rec),
            Item::SyncStart { .. } | Item::SyncEnd { .. } => Err(RecordError::NotARecord),
        }
    }
}

impl From<ConnectionRecord> for Record {
    fn from(c: ConnectionRecord) -> Record {
        Record::Connection(c)
    }
}

impl From<AffinityRecord> for Record {
    fn from(a: AffinityRecord) -> Record {
        Record::Affinity(a)
    }
}

impl Item {
    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Item::Record(r) => r.encoded_len(),
            Item::SyncStart { .. } => ELEMENT_HEADER + 4,
            Item::SyncEnd { .. } => ELEMENT_HEADER + 8,
        }
    }

    /// Appends the element to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Item::Record(r) => r.encode(out),
            Item::SyncStart { epoch } => {
                out.extend_from_slice(&[TYPE_SYNC_START, 4]);
                put_u32(out, *epoch);
            }
            Item::SyncEnd { epoch, records } => {
                out.extend_from_slice(&[TYPE_SYNC_END, 8]);
                put_u32(out, *epoch);
                put_u32(out, *records);
            }
        }
    }

    /// Reads one element. On any error but [`RecordError::Truncated`] the reader has moved
    /// past the element (an unknown type is skipped this way).
    pub fn decode(r: &mut Reader<'_>) -> Result<Item, RecordError> {
        let kind = r.u8().ok_or(RecordError::Truncated)?;
        let len = r.u8().ok_or(RecordError::Truncated)?;
        let mut body = r.sub(usize::from(len)).ok_or(RecordError::Truncated)?;
        let fixed = |body: &Reader<'_>, expected: usize| {
            if body.remaining() == expected {
                Ok(())
            } else {
                Err(RecordError::Length {
                    kind,
                    expected,
                    got: body.remaining(),
                })
            }
        };
        match kind {
            TYPE_CONNECTION => ConnectionRecord::decode_body(&mut body)
                .map(|c| Item::Record(Record::Connection(c))),
            TYPE_AFFINITY => {
                AffinityRecord::decode_body(&mut body).map(|a| Item::Record(Record::Affinity(a)))
            }
            TYPE_SYNC_START => {
                fixed(&body, 4)?;
                let epoch = body.u32().ok_or(RecordError::Truncated)?;
                Ok(Item::SyncStart { epoch })
            }
            TYPE_SYNC_END => {
                fixed(&body, 8)?;
                let epoch = body.u32().ok_or(RecordError::Truncated)?;
                let records = body.u32().ok_or(RecordError::Truncated)?;
                Ok(Item::SyncEnd { epoch, records })
            }
            other => Err(RecordError::UnknownType(other)),
        }
    }
}
