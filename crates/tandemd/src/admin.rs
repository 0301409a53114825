//! The admin socket: one JSON request per line from `tandemctl`, one JSON reply per line.
//!
//! Request: `{"words": ["executor", "status"], "json": false}` (decoded by
//! `tandem_core::admin::decode_request`). Reply: `{"ok": true, "output": "...table...",
//! "data": {...}, "error": ""}`. The socket file is created with mode 0600: only its owner
//! (root) may command the node.
//!
//! Bounded, whatever a client does:
//! * a request line longer than [`MAX_REQUEST_BYTES`] gets an error reply and the connection is
//!   closed; the line is read into a buffer of at most that size, never grown further;
//! * a request must arrive within [`REQUEST_TIMEOUT`] of the connection (or of the previous
//!   reply), or the client gets an error reply and is dropped;
//! * at most [`MAX_CLIENTS`] connections are served at once. The next one waits in the
//!   listen queue for a free slot (so a `tandemctl` command behind idle clients is answered
//!   as soon as they time out); after [`SLOT_WAIT`] without one it gets an error reply and is
//!   closed.
//!
//! Each of these is counted and logged (the log lines double in spacing: 1st, 2nd, 4th, …).

use crate::halog::Origin;
use crate::node::{Node, Reply};
use anyhow::{Context, Result};
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tandem_core::admin::{MAX_REQUEST_BYTES, RequestError, decode_request};

/// Connections served at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a client has to send a whole request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection beyond [`MAX_CLIENTS`] waits for a slot (longer than
/// [`REQUEST_TIMEOUT`], so that idle clients time out first).
pub const SLOT_WAIT: Duration = Duration::from_secs(7);
/// How long a reply may take to be written to a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin socket saw, since the daemon started.
#[derive(Debug, Default)]
pub struct AdminStats {
    pub connections: AtomicU64,
    pub commands: AtomicU64,
    /// Connections refused because [`MAX_CLIENTS`] were busy for [`SLOT_WAIT`].
    pub refused_busy: AtomicU64,
    /// Clients dropped for sending no (complete) request within [`REQUEST_TIMEOUT`].
    pub timed_out: AtomicU64,
    /// Request lines over [`MAX_REQUEST_BYTES`].
    pub too_long: AtomicU64,
    /// Request lines that were not a valid request.
    pub malformed: AtomicU64,
}

/// The counters, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdminCounts {
    pub connections: u64,
    pub commands: u64,
    pub refused_busy: u64,
    pub timed_out: u64,
    pub too_long: u64,
    pub malformed: u64,
}

impl AdminStats {
    pub fn counts(&self) -> AdminCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AdminCounts {
            connections: get(&self.connections),
            commands: get(&self.commands),
            refused_busy: get(&self.refused_busy),
            timed_out: get(&self.timed_out),
            too_long: get(&self.too_long),
            malformed: get(&self.malformed),
        }
    }
}

/// Counts one event; logs it when the count is a power of two (a flood cannot flood the log).
fn count(counter: &AtomicU64, what: &str) {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(total = n, "admin socket: {what}");
    }
}

/// The free client slots.
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
}

/// A taken slot; freed on drop.
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.busy.lock() -= 1;
        self.0.freed.notify_one();
    }
}

impl Slots {
    fn take(self: &Arc<Self>, wait: Duration) -> Option<Slot> {
        let deadline = Instant::now() + wait;
        let mut busy = self.busy.lock();
        while *busy >= MAX_CLIENTS {
            if self.freed.wait_until(&mut busy, deadline).timed_out() && *busy >= MAX_CLIENTS {
                return None;
            }
        }
        *busy += 1;
        Some(Slot(self.clone()))
    }
}

/// Binds the socket (replacing a stale file) and serves it on a thread.
pub fn serve(path: &Path, node: Arc<Node>) -> Result<Arc<AdminStats>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("another tandemd is listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    // Create it private from the start: no window in which others could connect.
    // SAFETY: umask only changes the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let stats = Arc::new(AdminStats::default());
    let slots = Arc::new(Slots {
        busy: Mutex::new(0),
        freed: Condvar::new(),
    });
    let st = stats.clone();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || accept_loop(listener, node, st, slots))?;
    Ok(stats)
}

fn accept_loop(listener: UnixListener, node: Arc<Node>, stats: Arc<AdminStats>, slots: Arc<Slots>) {
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(error = %e, "admin socket: accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.take(SLOT_WAIT) else {
            count(
                &stats.refused_busy,
                &format!("connection refused: {MAX_CLIENTS} clients busy"),
            );
            refuse(
                stream,
                &format!("tandemd is busy: {MAX_CLIENTS} admin clients connected; try again"),
            );
            continue;
        };
        let node = node.clone();
        let st = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                client(stream, &node, &st);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "admin socket: no thread for a client");
        }
    }
}

/// Sends one error reply, best effort, and closes.
fn refuse(mut stream: UnixStream, error: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(&encode(&Reply::err(error.to_string())));
}

fn encode(reply: &Reply) -> Vec<u8> {
    let mut text = serde_json::to_vec(reply)
        .unwrap_or_else(|_| b"{\"ok\":false,\"error\":\"encoding\"}".to_vec());
    text.push(b'\n');
    text
}

/// Serves one connection: requests in, replies out, within the bounds of the module doc.
fn client(mut stream: UnixStream, node: &Node, stats: &AdminStats) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let origin = peer(&stream);
    // Never more than MAX_REQUEST_BYTES + one chunk.
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        while let Some(end) = line.iter().position(|&b| b == b'\n') {
            let mut request: Vec<u8> = line.drain(..=end).collect();
            request.pop();
            if request.last() == Some(&b'\r') {
                request.pop();
            }
            if request.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (reply, close) = answer(&request, node, stats, &origin);
            if stream.write_all(&encode(&reply)).is_err() || close {
                return;
            }
            deadline = Instant::now() + REQUEST_TIMEOUT;
        }
        if line.len() > MAX_REQUEST_BYTES {
            let (reply, _) = answer(&line, node, stats, &origin);
            let _ = stream.write_all(&encode(&reply));
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            count(&stats.timed_out, "client dropped: no request in time");
            let error = format!(
                "no complete request within {} s: connection closed",
                REQUEST_TIMEOUT.as_secs()
            );
            let _ = stream.write_all(&encode(&Reply::err(error)));
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {} // the deadline check above drops the client
            Err(_) => return,
        }
    }
}

/// The reply to one request line, and whether the connection closes after it.
fn answer(request: &[u8], node: &Node, stats: &AdminStats, origin: &Origin) -> (Reply, bool) {
    match decode_request(request) {
        Ok(req) => {
            stats.commands.fetch_add(1, Ordering::Relaxed);
            let _span = crate::logging::command_span(&req.words, origin).entered();
            let r = node.execute_as(&req.words, req.json, origin);
            if r.ok {
                tracing::debug!(command = %req.words.join(" "), "command done");
            } else {
                tracing::info!(command = %req.words.join(" "), error = %r.error, "command refused");
            }
            (r, false)
        }
        Err(e @ RequestError::TooLong(_)) => {
            count(&stats.too_long, "request too long: connection closed");
            (Reply::err(format!("{e}: connection closed")), true)
        }
        Err(e) => {
            count(&stats.malformed, "malformed request");
            (Reply::err(e.to_string()), false)
        }
    }
}

/// Who is at the other end of the socket (`SO_PEERCRED`), for the audit.
fn peer(stream: &UnixStream) -> Origin {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt on our own socket, into a ucred of the length given.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "admin socket: no peer credentials");
    }
    Origin::Admin {
        uid: cred.uid,
        pid: cred.pid,
    }
}
