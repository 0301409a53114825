//! Packet rate: a counting UDP sink and a bounded UDP flood from many source ports.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{Host, check_target};

/// Datagrams handed to the kernel per `sendmmsg` / taken per `recvmmsg`.
const BATCH: usize = 32;

fn set_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A UDP socket on `[::]:port` (IPv4 too; `0.0.0.0:port` where IPv6 is unavailable) that counts what it receives and never answers, on a thread
/// of its own. Dropping it stops the thread (within 100 ms).
pub struct UdpSink {
    port: u16,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Starts a sink in the calling thread's namespace.
    pub fn start(port: u16) -> Result<UdpSink> {
        let socket = Self::bind(port)?;
        Self::run(socket)
    }

    /// Starts a sink inside `host`'s namespace.
    pub fn start_in(host: &Host, port: u16) -> Result<UdpSink> {
        let socket = host.in_ns(move || Self::bind(port))??;
        Self::run(socket)
    }

    fn bind(port: u16) -> Result<UdpSocket> {
        let socket = UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, port))
            .or_else(|_| UdpSocket::bind(("0.0.0.0", port)))
            .with_context(|| format!("binding UDP sink port {port}"))?;
        let fd = socket.as_raw_fd();
        // A deep receive buffer, so that the sink itself is not where packets are lost.
        if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20).is_err() {
            let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 32 << 20);
        }
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(socket)
    }

    fn run(socket: UdpSocket) -> Result<UdpSink> {
        let port = socket.local_addr()?.port();
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = std::thread::Builder::new()
            .name(format!("udp-sink-{port}"))
            .spawn({
                let count = Arc::clone(&count);
                let stop = Arc::clone(&stop);
                move || sink_loop(socket, &count, &stop)
            })
            .context("spawning the UDP sink")?;
        Ok(UdpSink {
            port,
            count,
            stop,
            handle: Some(handle),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sink_loop(socket: UdpSocket, count: &AtomicU64, stop: &AtomicBool) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdrs are valid; each points at its own iovec below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: msgs and the buffers their iovecs point at live across the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
        // n < 0: timeout (EAGAIN) or EINTR; look at the stop flag again.
    }
}

/// Outcome of [`udp_flood`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FloodReport {
    /// `ip:port` flooded.
    pub target: String,
    /// Sending threads.
    pub threads: usize,
    /// Distinct source ports (one socket each).
    pub flows: usize,
    /// UDP payload bytes per datagram.
    pub payload_bytes: usize,
    /// Datagrams the kernel accepted from us.
    pub sent: u64,
    /// `sendmmsg` calls that failed (buffer full, ...).
    pub send_errors: u64,
    /// Seconds spent sending.
    pub elapsed_s: f64,
    /// `sent / elapsed_s`.
    pub offered_pps: f64,
    /// Pacing asked for (datagrams per second, all threads together); 0 = as fast as possible.
    pub rate_limit_pps: u64,
}

/// Floods `target` with `payload_bytes`-byte datagrams from `threads` threads, each cycling
/// over `sockets_per_thread` sockets (one source port each), `sendmmsg` batches of 32, until
/// `duration` passed or `max_packets` went out; paced to `rate_pps` in total unless 0.
/// Uses the calling thread's namespace; refuses targets outside the lab's address rules.
pub fn udp_flood(
    target: SocketAddr,
    threads: usize,
    sockets_per_thread: usize,
    payload_bytes: usize,
    duration: Duration,
    max_packets: u64,
    rate_pps: u64,
) -> Result<FloodReport> {
    check_target(target)?;
    let threads = threads.max(1);
    let sockets_per_thread = sockets_per_thread.max(1);
    // Open every socket first, so a failure sends nothing.
    let mut sets = Vec::new();
    for _ in 0..threads {
        let mut set = Vec::new();
        for _ in 0..sockets_per_thread {
            let s = match target {
                SocketAddr::V4(_) => UdpSocket::bind(("0.0.0.0", 0)),
                SocketAddr::V6(_) => UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            }
            .context("binding a flood socket")?;
            // SO_SNDTIMEO bounds a blocked send, so the run stays bounded in time.
            s.set_write_timeout(Some(Duration::from_millis(100)))?;
            set.push(s);
        }
        sets.push(set);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let per_thread_max = max_packets.div_ceil(threads as u64);
    let per_thread_rate = rate_pps as f64 / threads as f64;
    let totals: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = sets
            .into_iter()
            .enumerate()
            .map(|(i, set)| {
                std::thread::Builder::new()
                    .name(format!("udp-flood-{i}"))
                    .spawn_scoped(scope, move || {
                        flood_thread(
                            &set,
                            target,
                            payload_bytes,
                            deadline,
                            per_thread_max,
                            per_thread_rate,
                        )
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or((0, 0)),
                Err(_) => (0, 0),
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let sent: u64 = totals.iter().map(|t| t.0).sum();
    Ok(FloodReport {
        target: target.to_string(),
        threads,
        flows: threads * sockets_per_thread,
        payload_bytes,
        sent,
        send_errors: totals.iter().map(|t| t.1).sum(),
        elapsed_s: elapsed,
        offered_pps: sent as f64 / elapsed.max(1e-9),
        rate_limit_pps: rate_pps,
    })
}

/// One flood thread: returns (datagrams sent, failed calls).
fn flood_thread(
    sockets: &[UdpSocket],
    target: SocketAddr,
    payload_bytes: usize,
    deadline: Instant,
    max: u64,
    rate: f64,
) -> (u64, u64) {
    // SAFETY: an all-zero sockaddr_storage is valid; it is filled as the family says below.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let addr_len = match target {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut addr as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut addr as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    let mut payload = vec![b'x'; payload_bytes.max(1)];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: zeroed mmsghdrs are valid; all point at the same payload and address.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for m in msgs.iter_mut() {
        m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = addr_len as libc::socklen_t;
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut next = 0usize;
    while sent < max {
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
        let want = (max - sent).min(BATCH as u64) as u32;
        let fd = sockets[next].as_raw_fd();
        next = (next + 1) % sockets.len();
        // SAFETY: msgs point at live buffers (payload, addr, iov) for the call's duration.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), want, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            errors += 1;
            std::thread::yield_now();
        }
    }
    (sent, errors)
}
