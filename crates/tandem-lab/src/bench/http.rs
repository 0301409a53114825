//! HTTP for the benchmarks: a dual-stack server answering keep-alive requests (HTTP/1.1) and
//! one-request connections (HTTP/1.0 or `Connection: close`), and a keep-alive load.
//!
//! The server runs as threads of the calling process in a host's namespace
//! ([`BenchHttp::start_in`]), bound to `[::]:PORT`, so IPv4 and IPv6 clients reach the same
//! code. A fixed pool of threads each takes a connection from `accept` and serves it to its end
//! (no thread per connection, no allocation per request beyond the answer). The answer's body
//! is `server=NAME`, as the lab's own HTTP server says it, so [`crate::bench::conn_rate`] works
//! against it too.

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::ConnRate;
use crate::{Host, check_target};

/// Largest request head the server reads.
const MAX_HEAD: usize = 8 * 1024;

/// A running benchmark HTTP server; dropping it stops it.
pub struct BenchHttp {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    port: u16,
}

impl BenchHttp {
    /// Starts the server in `host`'s namespace on `[::]:port` (IPv4 too, as mapped addresses)
    /// with `threads` serving threads (connections served at once).
    pub fn start_in(host: &Host, port: u16, name: &str, threads: usize) -> Result<BenchHttp> {
        let listener = host.in_ns(move || -> Result<TcpListener> {
            // std sets SO_REUSEADDR; IPV6_V6ONLY is off by default on Linux (dual stack).
            TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
                .with_context(|| format!("binding the bench HTTP port [::]:{port}"))
        })??;
        // A timeout on accept lets the threads see `stop`.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: setsockopt on a socket we own, with a valid timeval of the given size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let answer_body: Arc<str> = format!("server={name}\n").into();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (listener, stop, requests, body) = (
                listener.clone(),
                stop.clone(),
                requests.clone(),
                answer_body.clone(),
            );
            let h = std::thread::Builder::new()
                .name(format!("bench-http-{i}"))
                .stack_size(128 * 1024)
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((s, _)) => {
                                let _ = serve(s, &body, &stop, &requests);
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock
                                        | io::ErrorKind::TimedOut
                                        | io::ErrorKind::Interrupted
                                ) => {}
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                })
                .context("spawning a bench HTTP thread")?;
            handles.push(h);
        }
        Ok(BenchHttp {
            stop,
            requests,
            threads: handles,
            port,
        })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for BenchHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Serves one connection: requests one after the other until the client closes, asks to
/// close, speaks HTTP/1.0, or `stop` is set.
fn serve(mut s: TcpStream, body: &str, stop: &AtomicBool, requests: &AtomicU64) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut have = 0usize;
    let mut idle = Instant::now();
    loop {
        // Answer every complete head in the buffer (pipelined requests too).
        while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
            let head = &buf[..end];
            let first = head.split(|&b| b == b'\r').next().unwrap_or(head);
            let close = first.ends_with(b"HTTP/1.0") || find_ci(head, b"connection: close");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nServer: tandem-lab-bench\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "Connection: close\r\n" } else { "" }
            );
            s.write_all(answer.as_bytes())?;
            requests.fetch_add(1, Ordering::Relaxed);
            if close {
                return Ok(());
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
            idle = Instant::now();
        }
        if have == buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        match s.read(&mut buf[have..]) {
            Ok(0) => return Ok(()),
            Ok(n) => have += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) || idle.elapsed() > Duration::from_secs(30) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Keep-alive requests per second: `connections` threads, each holding one connection and
/// sending `GET /` (HTTP/1.1) after the previous answer, until `duration` has passed. A
/// connection that fails is counted and opened again. Latency is per request. Uses the calling
/// thread's namespace; refuses targets outside the lab's address rules.
pub fn keepalive_rate(
    target: SocketAddr,
    connections: usize,
    duration: Duration,
    timeout: Duration,
) -> Result<ConnRate> {
    check_target(target)?;
    Ok(super::load::drive(
        target,
        connections,
        duration,
        "keepalive",
        || {
            move |conn: &mut Option<KeepAlive>| {
                let c = match conn {
                    Some(c) => c,
                    None => conn.insert(KeepAlive::open(target, timeout)?),
                };
                let answer = c.get();
                if answer.is_err() {
                    *conn = None;
                }
                answer
            }
        },
    ))
}

/// One keep-alive connection of the load.
struct KeepAlive {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn open(target: SocketAddr, timeout: Duration) -> Result<KeepAlive> {
        let stream = TcpStream::connect_timeout(&target, timeout).context("connect")?;
        stream.set_nodelay(true).context("nodelay")?;
        stream.set_read_timeout(Some(timeout)).context("timeout")?;
        stream.set_write_timeout(Some(timeout)).context("timeout")?;
        Ok(KeepAlive {
            stream,
            request: format!("GET / HTTP/1.1\r\nHost: {target}\r\nUser-Agent: tandem-lab\r\n\r\n")
                .into_bytes(),
            buf: vec![0u8; 4096],
        })
    }

    /// One request; returns the answering server's name.
    fn get(&mut self) -> Result<String> {
        self.stream.write_all(&self.request).context("send")?;
        let mut have = 0usize;
        loop {
            if let Some(end) = find(&self.buf[..have], b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]);
                if head.split_whitespace().nth(1) != Some("200") {
                    bail!("bad answer: {:?}", head.lines().next().unwrap_or(""));
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse().ok())
                    })
                    .ok_or_else(|| anyhow!("answer without Content-Length"))?;
                let total = end + 4 + len;
                if total > self.buf.len() {
                    bail!("answer of {total} bytes is larger than the bench expects");
                }
                if have >= total {
                    if have > total {
                        bail!("{} bytes after the answer", have - total);
                    }
                    let body = String::from_utf8_lossy(&self.buf[end + 4..total]);
                    return body
                        .lines()
                        .find_map(|l| l.strip_prefix("server="))
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| anyhow!("answer without server=NAME"));
                }
            }
            if have == self.buf.len() {
                bail!("answer head too long");
            }
            match self.stream.read(&mut self.buf[have..]) {
                Ok(0) => bail!("receive: closed by the server"),
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("receive: timed out")
                }
                Err(e) => return Err(e).context("receive"),
            }
        }
    }
}
