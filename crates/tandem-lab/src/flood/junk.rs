//! Fast floods of junk from inside a lab namespace, for the hardening tests: junk UDP datagrams
//! at a port (the heartbeat port) and ICMP echo requests or replies at an address (the reach
//! prober), both with `sendmmsg` in batches of 64, paced to a rate.
//!
//! Like [`crate::traffic`], a flood uses the network namespace of the calling thread: run it in
//! [`crate::Host::in_ns`]. Targets must be lab addresses ([`crate::check_lab_ip`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::check_target;

/// Datagrams per `sendmmsg`.
const BATCH: usize = 64;

/// What a flood achieved.
#[derive(Clone, Debug, Serialize)]
pub struct FloodStats {
    /// `udp 192.0.2.2:20001`, `icmp echo-request 192.0.2.2`, ...
    pub what: String,
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// `sendmmsg` calls that failed (ENOBUFS, EAGAIN, ...).
    pub errors: u64,
    pub elapsed_s: f64,
    /// `sent / elapsed_s`.
    pub rate_pps: f64,
    /// The rate asked for (0: unpaced).
    pub target_pps: u64,
}

impl std::fmt::Display for FloodStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} datagrams in {:.2} s = {:.0}/s (asked {}/s, {} failed sends)",
            self.what, self.sent, self.elapsed_s, self.rate_pps, self.target_pps, self.errors
        )
    }
}

/// Which ICMP message an [`icmp_flood`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpKind {
    EchoRequest,
    EchoReply,
}

/// A small deterministic generator (xorshift64*): junk that differs datagram to datagram.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `BATCH` junk payloads: random bytes of lengths 1 to 1200; one in four starts with a
/// heartbeat's magic (`TNDM`) and one in eight with a replication datagram's (`TNDR`), so the
/// receiver has to look past the first four bytes.
fn junk_payloads(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Junk(seed | 1);
    (0..BATCH)
        .map(|i| {
            let len = 1 + (rng.next() % 1200) as usize;
            let mut p = vec![0u8; len];
            rng.fill(&mut p);
            if i % 4 == 0 && len >= 4 {
                p[..4].copy_from_slice(b"TNDM");
            } else if i % 8 == 1 && len >= 4 {
                p[..4].copy_from_slice(b"TNDR");
            }
            p
        })
        .collect()
}

/// ICMP echo message with the internet checksum; identifier and sequence vary per datagram.
fn icmp_payloads(kind: IcmpKind, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Junk(seed | 1);
    (0..BATCH)
        .map(|_| {
            let mut p = vec![0u8; 64];
            p[0] = match kind {
                IcmpKind::EchoRequest => 8,
                IcmpKind::EchoReply => 0,
            };
            rng.fill(&mut p[4..]);
            let sum = internet_checksum(&p);
            p[2..4].copy_from_slice(&sum.to_be_bytes());
            p
        })
        .collect()
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sends `payloads` round and round to `dest` through `fd` with `sendmmsg`, paced to `rate`
/// datagrams/s (0: as fast as the kernel takes them), for `duration`.
fn blast(
    fd: RawFd,
    dest: libc::sockaddr_in,
    payloads: &mut [Vec<u8>],
    rate: f64,
    duration: Duration,
) -> (u64, u64, f64) {
    let mut addr = dest;
    let mut iovs: Vec<libc::iovec> = payloads
        .iter_mut()
        .map(|p| libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdrs are valid; each points at its own iovec and the shared address,
    // all of which outlive every call below.
    let mut msgs: Vec<libc::mmsghdr> = (0..iovs.len())
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let (mut sent, mut errors) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            if due > now {
                std::thread::sleep((due - now).min(deadline - now));
                continue;
            }
        }
        // SAFETY: msgs point at live buffers for the call's duration.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            errors += 1;
            std::thread::yield_now();
        }
    }
    (sent, errors, start.elapsed().as_secs_f64())
}

/// Runs `threads` blasts at once (each with its own socket from `open`) and adds them up.
fn run_threads(
    what: String,
    threads: usize,
    rate_pps: u64,
    duration: Duration,
    dest: libc::sockaddr_in,
    open: impl Fn() -> Result<OwnedFd>,
    payloads: impl Fn(u64) -> Vec<Vec<u8>>,
) -> Result<FloodStats> {
    let threads = threads.max(1);
    // Open every socket first, so that a failure sends nothing.
    let socks: Vec<OwnedFd> = (0..threads).map(|_| open()).collect::<Result<_>>()?;
    let per_thread = rate_pps as f64 / threads as f64;
    let results: Vec<(u64, u64, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut p = payloads(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
                let fd = s.as_raw_fd();
                scope.spawn(move || blast(fd, dest, &mut p, per_thread, duration))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0, 0.0)))
            .collect()
    });
    let sent: u64 = results.iter().map(|r| r.0).sum();
    let elapsed = results.iter().map(|r| r.2).fold(0.0, f64::max);
    Ok(FloodStats {
        what,
        sent,
        errors: results.iter().map(|r| r.1).sum(),
        elapsed_s: elapsed,
        rate_pps: sent as f64 / elapsed.max(1e-9),
        target_pps: rate_pps,
    })
}

fn bigger_send_buffer(fd: RawFd) {
    let v: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with a valid int option on a socket we own. Best effort.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Junk UDP datagrams (random bytes, 1 to 1200 of them, some starting with Tandem's magics) to
/// `target` at `rate_pps` in total (0: unpaced) from `threads` sockets, for `duration`, in the
/// calling thread's namespace.
pub fn junk_udp_flood(
    target: SocketAddr,
    rate_pps: u64,
    duration: Duration,
    threads: usize,
) -> Result<FloodStats> {
    check_target(target)?;
    let SocketAddr::V4(v4) = target else {
        bail!("junk_udp_flood: IPv4 targets only")
    };
    let dest = sockaddr(*v4.ip(), v4.port());
    run_threads(
        format!("junk udp to {target}"),
        threads,
        rate_pps,
        duration,
        dest,
        || {
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                .context("binding a flood socket")?;
            s.set_nonblocking(true)?;
            bigger_send_buffer(s.as_raw_fd());
            Ok(OwnedFd::from(s))
        },
        junk_payloads,
    )
}

/// ICMP echo requests or replies (64 bytes, random identifier, sequence and data) to `target`
/// at `rate_pps` (0: unpaced) from `threads` raw sockets, for `duration`, in the calling
/// thread's namespace. Needs CAP_NET_RAW.
pub fn icmp_flood(
    target: Ipv4Addr,
    kind: IcmpKind,
    rate_pps: u64,
    duration: Duration,
    threads: usize,
) -> Result<FloodStats> {
    check_target(SocketAddr::V4(SocketAddrV4::new(target, 0)))?;
    let dest = sockaddr(target, 0);
    let name = match kind {
        IcmpKind::EchoRequest => "echo-request",
        IcmpKind::EchoReply => "echo-reply",
    };
    run_threads(
        format!("icmp {name} to {target}"),
        threads,
        rate_pps,
        duration,
        dest,
        || {
            // SAFETY: plain socket(2); the descriptor is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_ICMP,
                )
            };
            if fd < 0 {
                bail!(
                    "raw ICMP socket (needs root): {}",
                    std::io::Error::last_os_error()
                );
            }
            // SAFETY: fd is a fresh descriptor nobody else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            bigger_send_buffer(fd);
            Ok(owned)
        },
        move |seed| icmp_payloads(kind, seed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_payloads_carry_a_valid_checksum() {
        for kind in [IcmpKind::EchoRequest, IcmpKind::EchoReply] {
            for p in icmp_payloads(kind, 7) {
                assert_eq!(internet_checksum(&p), 0, "{kind:?}");
                assert_eq!(p[0], if kind == IcmpKind::EchoRequest { 8 } else { 0 });
            }
        }
    }

    #[test]
    fn junk_differs_and_is_bounded() {
        let p = junk_payloads(1);
        assert_eq!(p.len(), BATCH);
        assert!(p.iter().all(|d| !d.is_empty() && d.len() <= 1200));
        assert!(p.windows(2).any(|w| w[0] != w[1]));
        assert!(p.iter().any(|d| d.starts_with(b"TNDM")));
    }

    #[test]
    fn floods_refuse_addresses_outside_the_lab() {
        assert!(junk_udp_flood("8.8.8.8:53".parse().unwrap(), 1, Duration::ZERO, 1).is_err());
        assert!(
            icmp_flood(
                Ipv4Addr::new(8, 8, 8, 8),
                IcmpKind::EchoRequest,
                1,
                Duration::ZERO,
                1
            )
            .is_err()
        );
    }
}
