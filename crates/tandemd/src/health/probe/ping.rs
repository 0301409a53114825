//! The `ping` advisor: one ICMP / ICMPv6 echo request with a random id, sequence and token;
//! up when the matching reply comes from the server within receivetimeout.
//!
//! It uses an unprivileged ICMP datagram socket when the kernel allows it
//! (`net.ipv4.ping_group_range`), else a raw socket (root or CAP_NET_RAW). A raw socket sees
//! every ICMP message of the host, so replies are matched on source, type, id, sequence and
//! the random token.

use super::{ProbeResult, elapsed_ms, secs};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::time::Instant;
use tandem_core::advisor::Probe;
use tokio::net::UdpSocket;

/// Which ICMP socket to use (tests force each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// Datagram if allowed, else raw.
    Any,
    #[cfg_attr(not(test), allow(dead_code))]
    Dgram,
    #[cfg_attr(not(test), allow(dead_code))]
    Raw,
}

const ECHO_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const TOKEN: usize = 12;

pub(crate) async fn ping(probe: &Probe, kind: SocketKind) -> ProbeResult {
    let started = Instant::now();
    let ip = probe.address.ip().to_canonical();
    let v6 = ip.is_ipv6();
    let (sock, dgram) = open(v6, kind).map_err(|e| format!("ICMP socket: {e}"))?;
    let mut rnd = [0u8; 4 + TOKEN];
    getrandom::fill(&mut rnd).map_err(|e| format!("random id: {e}"))?;
    let id = u16::from_be_bytes([rnd[0], rnd[1]]);
    let seq = u16::from_be_bytes([rnd[2], rnd[3]]);
    let token = &rnd[4..];
    let pkt = echo(v6, id, seq, token);
    sock.send_to(&pkt, SocketAddr::new(ip, 0))
        .await
        .map_err(|e| format!("ping {ip}: {e}"))?;
    let wait = async {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = sock
                .recv_from(&mut buf)
                .await
                .map_err(|e| format!("ping {ip}: {e}"))?;
            if from.ip().to_canonical() == ip && is_reply(&buf[..n], v6, dgram, id, seq, token) {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(probe.receivetimeout, wait).await {
        Ok(Ok(())) => Ok(Some(elapsed_ms(started))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no echo reply from {ip} within {}",
            secs(probe.receivetimeout)
        )),
    }
}

fn open(v6: bool, kind: SocketKind) -> std::io::Result<(UdpSocket, bool)> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let finish = |s: Socket, dgram: bool| -> std::io::Result<(UdpSocket, bool)> {
        s.set_nonblocking(true)?;
        s.set_cloexec(true)?;
        let std: std::net::UdpSocket = s.into();
        Ok((UdpSocket::from_std(std)?, dgram))
    };
    if kind != SocketKind::Raw {
        match Socket::new(domain, Type::DGRAM, Some(proto)) {
            Ok(s) => return finish(s, true),
            Err(e) if kind == SocketKind::Dgram => return Err(e),
            Err(_) => {}
        }
    }
    finish(Socket::new(domain, Type::RAW, Some(proto))?, false)
}

/// An echo request (ICMPv6's checksum is the kernel's; IPv4's is ours).
fn echo(v6: bool, id: u16, seq: u16, token: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + token.len());
    p.push(if v6 { ECHO_V6 } else { ECHO_V4 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(token);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `buf` is our echo reply. A raw IPv4 socket gives the IP header too; a datagram
/// socket's id is the kernel's (it filters on it), so only sequence and token are checked.
fn is_reply(buf: &[u8], v6: bool, dgram: bool, id: u16, seq: u16, token: &[u8]) -> bool {
    let icmp = if !v6 && !dgram {
        let Some(first) = buf.first() else {
            return false;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 {
            return false;
        }
        match buf.get(ihl..) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        buf
    };
    if icmp.len() < 8 + token.len() {
        return false;
    }
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp[0] == want
        && icmp[1] == 0
        && (dgram || icmp[4..6] == id.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + token.len()] == token
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn echo_and_reply_matching() {
        let token = [7u8; TOKEN];
        let req = echo(false, 0x1234, 9, &token);
        assert_eq!(checksum(&req), 0, "a valid checksum sums to zero");
        let mut reply = req.clone();
        reply[0] = ECHO_REPLY_V4;
        assert!(
            is_reply(&reply, false, true, 0, 9, &token),
            "dgram: id not checked"
        );
        assert!(!is_reply(&reply, false, true, 0, 10, &token));
        let mut ip = vec![0x45u8];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert!(is_reply(&ip, false, false, 0x1234, 9, &token));
        assert!(!is_reply(&ip, false, false, 0x1235, 9, &token));
        assert!(!is_reply(&ip[..25], false, false, 0x1234, 9, &token));
        assert!(!is_reply(&[0x4f], false, false, 0x1234, 9, &token));
        assert!(!is_reply(&[], false, false, 0x1234, 9, &token));
        let mut v6 = echo(true, 1, 2, &token);
        v6[0] = ECHO_REPLY_V6;
        assert!(is_reply(&v6, true, false, 1, 2, &token));
        let mut bad = v6.clone();
        bad[10] ^= 1;
        assert!(!is_reply(&bad, true, false, 1, 2, &token), "token");
    }
}
