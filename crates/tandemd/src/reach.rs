//! The reach prober of the HA shell: ICMP echo to IPv4 targets and ICMPv6 echo to IPv6
//! targets, over raw sockets (one per family, opened when a target of that family is
//! configured), and who answered.
//!
//! Each probe carries an unpredictable 16-byte token (fresh per round and target) that the
//! reply must echo, with the random identifier and the round's seq: a spoofed echo reply
//! from a target's address cannot raise this node's reach count. A target whose probe could
//! not be sent (no socket of its family, a send error) is reported unreachable at the next
//! round like one that did not answer: it is never left out silently.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use crate::ha::{READ_BUDGET, random_u64};

/// `ICMP6_FILTER` of `<netinet/icmp6.h>` (level IPPROTO_ICMPV6); not in the libc crate.
const ICMP6_FILTER: libc::c_int = 1;
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const TOKEN: usize = 16;

/// Pings reach targets and reports who answered.
pub struct Prober {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
    ident: u16,
    seq: u16,
    /// Target → (token of the last probe, answered since).
    outstanding: HashMap<IpAddr, ([u8; TOKEN], bool)>,
    pub last_round: Option<Instant>,
    /// Echo replies that matched no probe (spoofed, late, or for another prober).
    pub unmatched: u64,
    /// Probes that could not be sent (no socket of the family, send errors).
    pub send_errors: u64,
}

fn open_raw(v6: bool) -> Result<OwnedFd> {
    let (family, proto, what) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6, "ICMPv6")
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP, "ICMP")
    };
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            proto,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!("opening the {what} socket for reach targets (needs CAP_NET_RAW)")
        });
    }
    // SAFETY: raw is a fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if v6 {
        // Only echo replies: a raw ICMPv6 socket would otherwise see every neighbour
        // discovery message of the host. The kernel computes ICMPv6 checksums itself.
        let mut filter = [u32::MAX; 8];
        filter[usize::from(ECHO_REPLY_V6 >> 5)] &= !(1u32 << (ECHO_REPLY_V6 & 31));
        // SAFETY: setsockopt with a 32-byte filter on our socket.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("ICMP6_FILTER");
        }
    }
    Ok(fd)
}

/// An echo request; the IPv4 checksum is ours, ICMPv6's the kernel's.
fn echo_request(v6: bool, ident: u16, seq: u16, token: &[u8; TOKEN]) -> [u8; 8 + TOKEN] {
    let mut pkt = [0u8; 8 + TOKEN];
    pkt[0] = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    pkt[4..6].copy_from_slice(&ident.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..].copy_from_slice(token);
    if !v6 {
        let sum = tandem_wire::checksum::ones_complement_sum(&pkt);
        pkt[2..4].copy_from_slice(&(!sum).to_be_bytes());
    }
    pkt
}

impl Prober {
    /// A prober with the sockets `targets` need. Fails if one cannot be opened.
    pub fn open(targets: &[IpAddr]) -> Result<Prober> {
        let mut p = Prober {
            v4: None,
            v6: None,
            ident: random_u64() as u16,
            seq: random_u64() as u16,
            outstanding: HashMap::new(),
            last_round: None,
            unmatched: 0,
            send_errors: 0,
        };
        p.sockets_for(targets)?;
        Ok(p)
    }

    /// Opens the socket of each family of `targets` not open yet.
    pub fn sockets_for(&mut self, targets: &[IpAddr]) -> Result<()> {
        if self.v4.is_none() && targets.iter().any(IpAddr::is_ipv4) {
            self.v4 = Some(open_raw(false)?);
        }
        if self.v6.is_none() && targets.iter().any(IpAddr::is_ipv6) {
            self.v6 = Some(open_raw(true)?);
        }
        Ok(())
    }

    /// The sockets to wait on.
    pub fn raw_fds(&self) -> Vec<i32> {
        [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .map(|fd| fd.as_raw_fd())
            .collect()
    }

    /// One probe round: reports the previous round's unanswered targets as unreachable, and
    /// sends a new echo request to each target.
    pub fn round(&mut self, targets: &[IpAddr], node: &mut dyn FnMut(IpAddr, bool), now: Instant) {
        for (ip, (_, answered)) in self.outstanding.drain() {
            if !answered {
                node(ip, false);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        for &t in targets {
            let mut token = [0u8; TOKEN];
            token[..8].copy_from_slice(&random_u64().to_ne_bytes());
            token[8..].copy_from_slice(&random_u64().to_ne_bytes());
            if !self.send(t, &token) {
                self.send_errors += 1;
            }
            self.outstanding.insert(t, (token, false));
        }
        self.last_round = Some(now);
    }

    fn send(&self, target: IpAddr, token: &[u8; TOKEN]) -> bool {
        let pkt = echo_request(target.is_ipv6(), self.ident, self.seq, token);
        let sent = match target {
            IpAddr::V4(ip) => {
                let Some(fd) = &self.v4 else { return false };
                let addr = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: pkt and addr are valid for the call.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&addr as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            IpAddr::V6(ip) => {
                let Some(fd) = &self.v6 else { return false };
                // SAFETY: an all-zero sockaddr_in6 is valid; the fields are set below.
                let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                addr.sin6_addr.s6_addr = ip.octets();
                // SAFETY: pkt and addr are valid for the call.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&addr as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if sent < 0 {
            tracing::debug!(target = %target, error = %std::io::Error::last_os_error(), "reach probe not sent");
        }
        sent >= 0
    }

    /// Reads at most [`READ_BUDGET`] packets per socket; each first matching answer of the
    /// round reports the target reachable.
    pub fn receive(&mut self, node: &mut dyn FnMut(IpAddr, bool)) {
        let mut buf = [0u8; 1500];
        for v6 in [false, true] {
            let fd = match (v6, &self.v4, &self.v6) {
                (false, Some(fd), _) | (true, _, Some(fd)) => fd.as_raw_fd(),
                _ => continue,
            };
            for _ in 0..READ_BUDGET {
                let Some((n, from)) = recv_from(fd, &mut buf, v6) else {
                    break;
                };
                let reply = if v6 {
                    EchoReply::parse_v6(from, &buf[..n])
                } else {
                    EchoReply::parse_v4(&buf[..n])
                };
                let Some(reply) = reply else { continue };
                self.answer(reply, node);
            }
        }
    }

    fn answer(&mut self, reply: EchoReply<'_>, node: &mut dyn FnMut(IpAddr, bool)) {
        match self.outstanding.get_mut(&reply.source) {
            Some((token, answered))
                if reply.ident == self.ident
                    && reply.seq == self.seq
                    && reply.payload == token.as_slice() =>
            {
                if !*answered {
                    *answered = true;
                    node(reply.source, true);
                }
            }
            _ => self.unmatched += 1,
        }
    }
}

/// One datagram of a raw socket and its source (IPv6: from the socket address; IPv4's is in
/// the IP header the socket delivers). `None` when there is nothing (more) to read.
fn recv_from(fd: i32, buf: &mut [u8], v6: bool) -> Option<(usize, IpAddr)> {
    // SAFETY: an all-zero sockaddr_in6 is valid storage for recvfrom to fill.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: buf and from are valid for writes of the lengths given.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_in6).cast(),
            &mut len,
        )
    };
    if n <= 0 {
        return None;
    }
    let source = if v6 {
        IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr))
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    Some((n as usize, source))
}

/// An echo reply as a raw socket delivers it.
#[derive(Debug, PartialEq, Eq)]
struct EchoReply<'a> {
    source: IpAddr,
    ident: u16,
    seq: u16,
    payload: &'a [u8],
}

impl<'a> EchoReply<'a> {
    /// A raw IPv4 socket gives the IP header first.
    fn parse_v4(pkt: &'a [u8]) -> Option<EchoReply<'a>> {
        let ip = tandem_wire::ipv4::Ipv4Header::new_checked(pkt).ok()?;
        if ip.header_len() < 20 {
            return None;
        }
        let icmp = pkt.get(ip.header_len()..)?;
        Self::icmp(IpAddr::V4(ip.src_addr()), icmp, ECHO_REPLY_V4)
    }

    /// A raw ICMPv6 socket gives the ICMPv6 message only; the source is the socket address.
    fn parse_v6(source: IpAddr, icmp: &'a [u8]) -> Option<EchoReply<'a>> {
        Self::icmp(source, icmp, ECHO_REPLY_V6)
    }

    fn icmp(source: IpAddr, icmp: &'a [u8], reply_type: u8) -> Option<EchoReply<'a>> {
        if icmp.len() < 8 || icmp[0] != reply_type || icmp[1] != 0 {
            return None; // not an echo reply
        }
        Some(EchoReply {
            source,
            ident: u16::from_be_bytes([icmp[4], icmp[5]]),
            seq: u16::from_be_bytes([icmp[6], icmp[7]]),
            payload: &icmp[8..],
        })
    }
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
