//! One process answering HTTP for thousands of servers: the peer side of `bench-health`.
//!
//! [`serve_many`] listens on `0.0.0.0:PORT` for each given port, on one thread with epoll.
//! Every address of the host is a "server" on every port: a host holding 200 addresses and
//! listening on 10 ports is 2 000 servers. Each connection gets the answer of
//! [`crate::serve`]'s HTTP (`HEAD` and `GET` → `200 OK`, body `server=<local address>`),
//! then is closed. A server "dies" with an nftables reject on its address and port (the
//! bench does that), so the responder itself never changes.
//!
//! Bounded: at most [`MAX_CONNS`] connections at once (more are accepted and closed at once),
//! request heads of at most 4 KiB, and connections idle for 10 s are closed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Connections held at once, at most.
pub const MAX_CONNS: usize = 20_000;
const MAX_HEAD: usize = 4096;
const IDLE: Duration = Duration::from_secs(10);

/// Counters of [`serve_many`].
#[derive(Debug, Default)]
pub struct ManyStats {
    pub requests: AtomicU64,
    pub dropped: AtomicU64,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    since: Instant,
}

fn epoll_ctl(ep: i32, op: i32, fd: i32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: a valid epoll fd and event struct.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn answer(stream: &mut TcpStream, head: &[u8]) -> io::Result<()> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("");
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let body = format!("server={local}\n");
    let (status, send_body) = match method {
        "GET" => ("200 OK", true),
        "HEAD" => ("200 OK", false),
        _ => ("405 Method Not Allowed", true),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nServer: tandem-lab\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if send_body { body.as_str() } else { "" }
    );
    stream.write_all(response.as_bytes())
}

/// Serves `ports` until `stop` is set; see the module docs. Binds everything before it
/// returns (an error if a port cannot be bound); serving runs on a background thread.
pub fn serve_many(
    ports: &[u16],
    stop: Arc<AtomicBool>,
) -> Result<(Vec<SocketAddr>, Arc<ManyStats>, std::thread::JoinHandle<()>)> {
    if ports.is_empty() {
        bail!("serve_many: no ports");
    }
    let mut listeners = Vec::new();
    for &p in ports {
        let l = TcpListener::bind(("0.0.0.0", p)).with_context(|| format!("binding port {p}"))?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    // SAFETY: epoll_create1 has no memory effects.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error()).context("epoll_create1");
    }
    for (i, l) in listeners.iter().enumerate() {
        epoll_ctl(ep, libc::EPOLL_CTL_ADD, l.as_raw_fd(), i as u64)?;
    }
    let stats = Arc::new(ManyStats::default());
    let st = Arc::clone(&stats);
    let handle = std::thread::Builder::new()
        .name("serve-many".into())
        .spawn(move || run(ep, listeners, &stop, &st))?;
    Ok((addrs, stats, handle))
}

fn run(ep: i32, listeners: Vec<TcpListener>, stop: &AtomicBool, stats: &ManyStats) {
    let nl = listeners.len() as u64;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next: u64 = nl;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut last_sweep = Instant::now();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` is a valid buffer of that many entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 200) };
        for ev in events.iter().take(n.max(0) as usize) {
            let token = ev.u64;
            if token < nl {
                let l = &listeners[token as usize];
                while let Ok((s, _)) = l.accept() {
                    if conns.len() >= MAX_CONNS || s.set_nonblocking(true).is_err() {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let t = next;
                    next += 1;
                    if epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), t).is_ok() {
                        conns.insert(
                            t,
                            Conn {
                                stream: s,
                                buf: Vec::new(),
                                since: Instant::now(),
                            },
                        );
                    }
                }
                continue;
            }
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            let done = match c.stream.read(&mut chunk) {
                Ok(0) => true,
                Ok(k) => {
                    c.buf.extend_from_slice(&chunk[..k]);
                    let end = c.buf.windows(4).any(|w| w == b"\r\n\r\n")
                        || c.buf.windows(2).any(|w| w == b"\n\n");
                    if end {
                        if answer(&mut c.stream, &c.buf).is_ok() {
                            stats.requests.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    } else {
                        c.buf.len() > MAX_HEAD
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if done {
                // Dropping the stream closes it, which also removes it from the epoll set.
                conns.remove(&token);
            }
        }
        if last_sweep.elapsed() > Duration::from_secs(1) {
            last_sweep = Instant::now();
            conns.retain(|_, c| c.since.elapsed() < IDLE);
        }
    }
    // SAFETY: closing our epoll fd.
    unsafe { libc::close(ep) };
}
