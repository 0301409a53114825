//! The clients: HTTP load, UDP request, long-lived echo connections.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::{LineEvent, LineReader, secs, sleep_until};
use crate::addr::check_target;

/// How many error messages a [`LoadReport`] keeps verbatim.
const KEEP_ERRORS: usize = 10;
/// How many distinct messages [`LoadReport::error_counts`] counts separately.
const KEEP_ERROR_KINDS: usize = 50;

/// Latencies of the successful requests, in milliseconds (all zero if none succeeded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Minimum, p50, p90, p99 and maximum of `samples`, in milliseconds.
    pub(crate) fn from_samples(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        LatencySummary {
            min_ms: at(0.0),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Outcome of [`http_load`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// `ip:port` loaded.
    pub target: String,
    /// Requests attempted.
    pub requested: usize,
    /// Requests answered `200` with a `server=NAME` body.
    pub ok: usize,
    /// Requests that failed (connect, send, receive, timeout, bad answer).
    pub failed: usize,
    /// Successful requests per answering server name.
    pub by_server: BTreeMap<String, usize>,
    /// The first few error messages.
    pub errors: Vec<String>,
    /// Failures per error message.
    pub error_counts: BTreeMap<String, usize>,
    /// Wall time of the whole run.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// Latency of successful requests.
    pub latency: LatencySummary,
}

impl LoadReport {
    /// True when every request succeeded.
    pub fn all_ok(&self) -> bool {
        self.failed == 0 && self.ok == self.requested
    }

    /// Each answering server's share of the successful requests, in percent.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        self.by_server
            .iter()
            .map(|(k, v)| (k.clone(), 100.0 * *v as f64 / self.ok.max(1) as f64))
            .collect()
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn record_error(&mut self, message: String) {
        self.failed += 1;
        if self.error_counts.len() < KEEP_ERROR_KINDS || self.error_counts.contains_key(&message) {
            *self.error_counts.entry(message.clone()).or_default() += 1;
        } else {
            *self.error_counts.entry("(other)".into()).or_default() += 1;
        }
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(message);
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}/{} ok, {} failed in {:.2}s ({:.0}/s); p50 {:.1}ms p99 {:.1}ms max {:.1}ms; by server {:?}",
            self.target,
            self.ok,
            self.requested,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.latency.p50_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            self.by_server,
        )?;
        for (message, count) in &self.error_counts {
            write!(f, "\n  {count} x {message}")?;
        }
        Ok(())
    }
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

/// One HTTP request on a new connection to `path`; returns the answering server's name.
fn http_request(target: SocketAddr, path: &str, timeout: Duration) -> Result<String> {
    check_target(target)?;
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target, timeout).context("connect")?;
    stream.set_nodelay(true).context("nodelay")?;
    stream
        .set_write_timeout(Some(left(deadline).context("send")?))
        .context("send")?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {target}\r\nUser-Agent: tandem-lab\r\n\r\n");
    stream.write_all(request.as_bytes()).context("send")?;
    let mut response = Vec::with_capacity(512);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(left(deadline).context("receive")?))
            .context("receive")?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            // Keep the head and the start of the body; count (and drop) filler.
            Ok(n) => {
                let room = 4096usize.saturating_sub(response.len());
                response.extend_from_slice(&chunk[..n.min(room)]);
            }
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
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.") || status.split_whitespace().nth(1) != Some("200") {
        bail!(
            "bad answer: {:?}",
            status.chars().take(80).collect::<String>()
        );
    }
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    body.lines()
        .find_map(|l| l.strip_prefix("server="))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| anyhow!("answer without server=NAME"))
}

/// One `GET /` on a new TCP connection; returns the `NAME` of the `server=NAME` answer.
pub fn http_get(target: SocketAddr, timeout: Duration) -> Result<String> {
    http_request(target, "/", timeout)
}

/// [`http_load_path`] for `/`.
pub fn http_load(
    target: SocketAddr,
    count: usize,
    concurrency: usize,
    timeout: Duration,
) -> LoadReport {
    http_load_path(target, "/", count, concurrency, timeout)
}

/// Sends `count` HTTP GETs for `path`, each on a NEW TCP connection, from `concurrency`
/// threads; `timeout` bounds each request (connect to end of answer). Never fails as a whole:
/// failures are counted in the report. A target outside the lab's address rules fails every
/// request without sending anything.
pub fn http_load_path(
    target: SocketAddr,
    path: &str,
    count: usize,
    concurrency: usize,
    timeout: Duration,
) -> LoadReport {
    let mut report = LoadReport {
        target: target.to_string(),
        requested: count,
        ..LoadReport::default()
    };
    let start = Instant::now();
    if let Err(e) = check_target(target) {
        let message = format!("{e:#}");
        for _ in 0..count {
            report.record_error(message.clone());
        }
        return report;
    }
    let next = AtomicUsize::new(0);
    let shared = Mutex::new((report, Vec::<Duration>::with_capacity(count)));
    let worker = || {
        let mut local = LoadReport::default();
        let mut latencies = Vec::new();
        while next.fetch_add(1, Ordering::Relaxed) < count {
            let began = Instant::now();
            match http_request(target, path, timeout) {
                Ok(server) => {
                    latencies.push(began.elapsed());
                    local.ok += 1;
                    *local.by_server.entry(server).or_default() += 1;
                }
                Err(e) => local.record_error(format!("{e:#}")),
            }
        }
        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
        let (total, all_latencies) = &mut *guard;
        total.ok += local.ok;
        for (server, n) in local.by_server {
            *total.by_server.entry(server).or_default() += n;
        }
        for (message, n) in local.error_counts {
            for _ in 0..n {
                total.record_error(message.clone());
            }
        }
        all_latencies.extend(latencies);
    };
    let threads = concurrency.clamp(1, count.max(1));
    std::thread::scope(|scope| {
        let mut spawned = 0;
        for i in 0..threads {
            let ok = std::thread::Builder::new()
                .name(format!("http-load-{i}"))
                .stack_size(256 * 1024)
                .spawn_scoped(scope, worker)
                .is_ok();
            if !ok {
                break;
            }
            spawned += 1;
        }
        if spawned == 0 {
            worker();
        }
    });
    let (mut report, latencies) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    // Error messages were re-recorded in merge order; keep the first few of them.
    report.errors.truncate(KEEP_ERRORS);
    report.latency = LatencySummary::from_samples(latencies);
    report.elapsed = start.elapsed();
    report
}

/// Sends one UDP datagram to `target` from a connected socket (so only an answer *from*
/// `target` counts) and returns the answer (`"<server> <payload>"`), or an error after
/// `timeout`. No retries.
pub fn udp_request(target: SocketAddr, payload: &str, timeout: Duration) -> Result<String> {
    check_target(target)?;
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).context("bind")?;
    socket.connect(target).context("connect")?;
    socket.send(payload.as_bytes()).context("send")?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        socket.set_read_timeout(Some(
            left(deadline).map_err(|_| anyhow!("no answer from {target} within {timeout:?}"))?,
        ))?;
        match socket.recv(&mut buf) {
            Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no answer from {target} within {timeout:?}")
            }
            Err(e) => return Err(e).with_context(|| format!("receive from {target}")),
        }
    }
}

/// How a long-lived connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ended {
    /// Reset by the peer (or by something in between): RST, broken pipe.
    Reset,
    /// Closed by the peer (FIN).
    Eof,
    /// Anything else, e.g. a failed connect or an unexpected answer.
    Error(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Reset => f.write_str("reset"),
            Ended::Eof => f.write_str("eof"),
            Ended::Error(e) => write!(f, "error: {e}"),
        }
    }
}

fn classify(e: &io::Error) -> Ended {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Ended::Reset,
        _ => Ended::Error(e.to_string()),
    }
}

/// One answered ping of a [`LongLived`] connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Name of the server that answered.
    pub server: String,
    /// From sending the line to reading its echo.
    pub rtt: Duration,
    /// Sequence number of the ping (1, 2, ...).
    pub seq: u64,
}

enum PingFailure {
    Ended(Ended),
    TimedOut,
    Stopped,
}

/// A held TCP connection to an echo port. Each [`LongLived::ping`] sends `<name> <seq>` and
/// waits for `<server> <name> <seq>`; late answers to earlier pings are skipped, so a ping
/// that timed out does not spoil the next.
pub struct LongLived {
    stream: TcpStream,
    reader: LineReader,
    name: String,
    target: SocketAddr,
    seq: u64,
    timeout: Duration,
    server: Option<String>,
}

impl std::fmt::Debug for LongLived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongLived")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("local", &self.stream.local_addr().ok())
            .field("seq", &self.seq)
            .field("server", &self.server)
            .finish()
    }
}

impl LongLived {
    /// Connects (10 s timeout); pings then time out after 10 s too (see [`LongLived::set_timeout`]).
    /// `name` labels this connection's lines; no whitespace.
    pub fn connect(target: SocketAddr, name: &str) -> Result<Self> {
        Self::connect_timeout(target, name, Duration::from_secs(10))
    }

    /// Like [`LongLived::connect`] with the given connect and ping timeout.
    pub fn connect_timeout(target: SocketAddr, name: &str, timeout: Duration) -> Result<Self> {
        check_target(target)?;
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            bail!("connection name {name:?} must be non-empty without whitespace");
        }
        let stream = TcpStream::connect_timeout(&target, timeout)
            .with_context(|| format!("connect to {target}"))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(LongLived {
            stream,
            reader: LineReader::default(),
            name: name.to_string(),
            target,
            seq: 0,
            timeout,
            server: None,
        })
    }

    /// Timeout of later pings.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Server that answered the last successful ping.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Local address of the connection.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// Address connected to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sends a line and waits for its echo. An error says `timed out` (the connection may
    /// still recover), `reset`, `eof` or what else went wrong.
    pub fn ping(&mut self) -> Result<Echo> {
        let deadline = Instant::now() + self.timeout;
        match self.exchange(Some(deadline), None) {
            Ok(echo) => Ok(echo),
            Err(PingFailure::TimedOut) => bail!(
                "ping {} of {} timed out after {:?}",
                self.seq,
                self.name,
                self.timeout
            ),
            Err(PingFailure::Stopped) => bail!("stopped"),
            Err(PingFailure::Ended(end)) => {
                bail!("connection {} to {}: {end}", self.name, self.target)
            }
        }
    }

    fn exchange(
        &mut self,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<Echo, PingFailure> {
        self.seq += 1;
        let sent = Instant::now();
        let expected = format!("{} {}", self.name, self.seq);
        self.stream
            .write_all(format!("{expected}\n").as_bytes())
            .map_err(|e| PingFailure::Ended(classify(&e)))?;
        loop {
            let event = self
                .reader
                .next_line(&mut self.stream, deadline, stop)
                .map_err(|e| PingFailure::Ended(classify(&e)))?;
            let line = match event {
                LineEvent::Line(line) => line,
                LineEvent::Eof => return Err(PingFailure::Ended(Ended::Eof)),
                LineEvent::TimedOut => return Err(PingFailure::TimedOut),
                LineEvent::Stopped => return Err(PingFailure::Stopped),
            };
            let (server, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            if rest == expected {
                self.server = Some(server.to_string());
                return Ok(Echo {
                    server: server.to_string(),
                    rtt: sent.elapsed(),
                    seq: self.seq,
                });
            }
            let stale = rest
                .strip_prefix(&self.name)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < self.seq);
            if !stale {
                return Err(PingFailure::Ended(Ended::Error(format!(
                    "unexpected answer {line:?} to {expected:?}"
                ))));
            }
        }
    }
}

/// Per-connection record of a [`LongLivedSet`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnStats {
    /// Position in the set; the connection's lines are named `c<index>`.
    pub index: usize,
    /// Client-side address, once connected.
    pub local_addr: Option<SocketAddr>,
    /// The server that answered first.
    pub server: Option<String>,
    /// Every distinct server that answered, in order (more than one means the connection was
    /// moved to another server, which should never happen).
    pub servers_seen: Vec<String>,
    /// Successful echoes.
    pub echoes: u64,
    /// Longest time between two successful echoes (the first gap counts from connecting). With
    /// pings every `interval`, a healthy connection shows about `interval` plus a round trip.
    #[serde(with = "secs")]
    pub longest_gap: Duration,
    /// Time since the last successful echo (or since connecting), when the record was taken.
    #[serde(with = "secs")]
    pub since_last_echo: Duration,
    /// Longest round trip of a successful echo.
    #[serde(with = "secs")]
    pub max_rtt: Duration,
    /// Set once the connection died (reset, EOF, error); `None` while it lives.
    pub ended: Option<Ended>,
}

impl ConnStats {
    /// Connected, never ended, and only ever answered by one server.
    pub fn is_healthy(&self) -> bool {
        self.ended.is_none() && self.local_addr.is_some() && self.servers_seen.len() <= 1
    }

    /// Whether this connection came through a failover: it never ended, one server answered
    /// it all along, it never stalled longer than `max_stall`, and it still echoes (its
    /// last echo under a second ago). The error says which condition failed.
    pub fn survived(&self, max_stall: Duration) -> Result<()> {
        if let Some(ended) = &self.ended {
            bail!("connection {} ended: {ended:?}", self.index);
        }
        if self.servers_seen.len() != 1 {
            bail!(
                "connection {} was answered by {:?}",
                self.index,
                self.servers_seen
            );
        }
        if self.longest_gap > max_stall {
            bail!(
                "connection {} stalled {:?} (at most {max_stall:?})",
                self.index,
                self.longest_gap
            );
        }
        if self.since_last_echo >= Duration::from_secs(1) {
            bail!(
                "connection {} no longer echoes ({:?} since the last)",
                self.index,
                self.since_last_echo
            );
        }
        Ok(())
    }
}

struct ConnState {
    stats: ConnStats,
    last_ok: Option<Instant>,
}

impl ConnState {
    fn snapshot(&self, now: Instant) -> ConnStats {
        let mut stats = self.stats.clone();
        if let Some(last) = self.last_ok {
            stats.since_last_echo = now.saturating_duration_since(last);
        }
        stats
    }
}

/// N long-lived echo connections, each pinging every `interval` on its own thread, recording
/// per connection which server answers, how many echoes came back, the longest gap between
/// them, and whether the connection was reset/closed/failed. Used to check that connections
/// survive a failover and stay on their server. A ping waits for its echo as long as it takes
/// (TCP retransmits through an outage), so an outage shows as a long gap, not as an error.
pub struct LongLivedSet {
    stop: Arc<AtomicBool>,
    conns: Vec<Arc<Mutex<ConnState>>>,
    threads: Vec<JoinHandle<()>>,
    frozen: Option<Vec<ConnStats>>,
}

fn lock_state(state: &Mutex<ConnState>) -> std::sync::MutexGuard<'_, ConnState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl LongLivedSet {
    /// Starts `connections` connections to `target` (an echo port), in the calling thread's
    /// namespace. Returns at once; see [`LongLivedSet::wait_echoes`].
    pub fn start(target: SocketAddr, connections: usize, interval: Duration) -> Result<Self> {
        check_target(target)?;
        let mut set = LongLivedSet {
            stop: Arc::new(AtomicBool::new(false)),
            conns: Vec::new(),
            threads: Vec::new(),
            frozen: None,
        };
        for index in 0..connections {
            let state = Arc::new(Mutex::new(ConnState {
                stats: ConnStats {
                    index,
                    local_addr: None,
                    server: None,
                    servers_seen: Vec::new(),
                    echoes: 0,
                    longest_gap: Duration::ZERO,
                    since_last_echo: Duration::ZERO,
                    max_rtt: Duration::ZERO,
                    ended: None,
                },
                last_ok: None,
            }));
            set.conns.push(Arc::clone(&state));
            let stop = Arc::clone(&set.stop);
            let handle = std::thread::Builder::new()
                .name(format!("long-lived-{index}"))
                .stack_size(256 * 1024)
                .spawn(move || conn_thread(index, target, interval, &stop, &state))
                .context("spawning a long-lived connection thread")?;
            set.threads.push(handle);
        }
        Ok(set)
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True if the set has no connections.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Current record of every connection.
    pub fn snapshot(&self) -> Vec<ConnStats> {
        if let Some(frozen) = &self.frozen {
            return frozen.clone();
        }
        let now = Instant::now();
        self.conns
            .iter()
            .map(|c| lock_state(c).snapshot(now))
            .collect()
    }

    /// Waits until every connection has at least `min` echoes; fails at once if one ended.
    pub fn wait_echoes(&self, min: u64, timeout: Duration) -> Result<()> {
        let mut failure = None;
        let result = crate::wait_until(
            timeout,
            &format!("{} connections to get {min} echoes", self.len()),
            || {
                let snap = self.snapshot();
                if let Some(dead) = snap.iter().find(|c| c.ended.is_some()) {
                    failure = Some(format!(
                        "connection {} ended: {}",
                        dead.index,
                        dead.ended
                            .as_ref()
                            .map(|e| e.to_string())
                            .unwrap_or_default()
                    ));
                    return true;
                }
                snap.iter().all(|c| c.echoes >= min)
            },
        );
        if let Some(failure) = failure {
            bail!(failure);
        }
        result.with_context(|| format!("{:?}", self.snapshot()))
    }

    /// Stops all connections (closing them) and returns their final records.
    pub fn stop(mut self) -> Vec<ConnStats> {
        self.shutdown();
        self.snapshot()
    }

    fn shutdown(&mut self) {
        if self.frozen.is_some() {
            return;
        }
        self.stop.store(true, Ordering::SeqCst);
        let now = Instant::now();
        let frozen: Vec<ConnStats> = self
            .conns
            .iter()
            .map(|c| lock_state(c).snapshot(now))
            .collect();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        self.frozen = Some(frozen);
    }
}

impl Drop for LongLivedSet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn conn_thread(
    index: usize,
    target: SocketAddr,
    interval: Duration,
    stop: &AtomicBool,
    state: &Mutex<ConnState>,
) {
    let mut conn =
        match LongLived::connect_timeout(target, &format!("c{index}"), Duration::from_secs(10)) {
            Ok(conn) => conn,
            Err(e) => {
                lock_state(state).stats.ended = Some(Ended::Error(format!("{e:#}")));
                return;
            }
        };
    {
        let mut s = lock_state(state);
        s.stats.local_addr = conn.local_addr().ok();
        s.last_ok = Some(Instant::now());
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let sent = Instant::now();
        match conn.exchange(None, Some(stop)) {
            Ok(echo) => {
                let now = Instant::now();
                let mut s = lock_state(state);
                let gap = s
                    .last_ok
                    .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
                s.last_ok = Some(now);
                let stats = &mut s.stats;
                stats.echoes += 1;
                stats.longest_gap = stats.longest_gap.max(gap);
                stats.max_rtt = stats.max_rtt.max(echo.rtt);
                if stats.server.is_none() {
                    stats.server = Some(echo.server.clone());
                }
                if !stats.servers_seen.contains(&echo.server) {
                    stats.servers_seen.push(echo.server);
                }
            }
            Err(PingFailure::Stopped | PingFailure::TimedOut) => return,
            Err(PingFailure::Ended(end)) => {
                lock_state(state).stats.ended = Some(end);
                return;
            }
        }
        if !sleep_until(sent + interval, stop) {
            return;
        }
    }
}
