//! The `dns` advisor: one UDP query with a random id, for the A record of `advisorrequest`
//! or, without one, the root's NS records (`. IN NS`). Up on any reply with that id whose
//! RCODE is not SERVFAIL (2) or REFUSED (5); NXDOMAIN is an answer.

use super::{ProbeResult, elapsed_ms, secs};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;
use tandem_core::advisor::Probe;
use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const CLASS_IN: u16 = 1;
const SERVFAIL: u8 = 2;
const REFUSED: u8 = 5;

pub(super) async fn dns(probe: &Probe) -> ProbeResult {
    let started = Instant::now();
    let name = probe
        .request
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let mut idb = [0u8; 2];
    getrandom::fill(&mut idb).map_err(|e| format!("random id: {e}"))?;
    let id = u16::from_be_bytes(idb);
    let query = match name {
        Some(n) => query(id, n, TYPE_A)?,
        None => query(id, ".", TYPE_NS)?,
    };
    let local: SocketAddr = match probe.address {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let target = probe.address;
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    sock.connect(target)
        .await
        .map_err(|e| format!("dns {target}: {e}"))?;
    sock.send(&query)
        .await
        .map_err(|e| format!("dns {target}: {e}"))?;
    let wait = async {
        let mut buf = [0u8; 4096];
        loop {
            // A connected socket only hears the server; an ICMP unreachable fails it at once.
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("dns {target}: {e}"))?;
            if let Some(rcode) = reply_rcode(&buf[..n], id) {
                return match rcode {
                    SERVFAIL => Err(format!("dns {target}: SERVFAIL")),
                    REFUSED => Err(format!("dns {target}: REFUSED")),
                    _ => Ok(()),
                };
            }
        }
    };
    match tokio::time::timeout(probe.receivetimeout, wait).await {
        Ok(Ok(())) => Ok(Some(elapsed_ms(started))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "dns {target}: no reply within {}",
            secs(probe.receivetimeout)
        )),
    }
}

/// A standard recursive query for `name` (`.` = the root), one question.
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // AN, NS, AR
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        if trimmed.parse::<IpAddr>().is_ok() {
            return Err(format!("advisorrequest {name:?} is an address, not a name"));
        }
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("advisorrequest {name:?}: bad DNS label"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("advisorrequest {name:?}: bad DNS name"));
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    if q.len() - 12 > 255 {
        return Err(format!("advisorrequest {name:?}: DNS name too long"));
    }
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// The RCODE of a reply (QR set) to query `id`; `None` for anything else.
pub(crate) fn reply_rcode(buf: &[u8], id: u16) -> Option<u8> {
    if buf.len() < 12 || buf[0..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
        return None;
    }
    Some(buf[3] & 0x0f)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn queries_and_replies() {
        let q = query(0xabcd, ".", TYPE_NS).unwrap();
        assert_eq!(
            q,
            [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1],
            "root NS"
        );
        let q = query(1, "www.example.", TYPE_A).unwrap();
        assert_eq!(&q[12..], b"\x03www\x07example\x00\x00\x01\x00\x01");
        assert!(query(1, "a..b", TYPE_A).is_err());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err());
        assert!(query(1, &["abcdefgh"; 40].join("."), TYPE_A).is_err());
        assert!(query(1, "bad name", TYPE_A).is_err());
        assert!(query(1, "192.0.2.1", TYPE_A).is_err());
        let mut r = q.clone();
        r[2] |= 0x80;
        assert_eq!(reply_rcode(&r, 1), Some(0));
        assert_eq!(reply_rcode(&r, 2), None, "another id");
        assert_eq!(reply_rcode(&q, 1), None, "a query, not a reply");
        r[3] |= 5;
        assert_eq!(reply_rcode(&r, 1), Some(5));
        assert_eq!(reply_rcode(&r[..11], 1), None);
    }
}
