//! A TCP relay from the root namespace into a lab host: `tandem-lab demo --web` makes each
//! node's status page reachable from a browser on the machine without routing any lab address
//! from the root namespace.
//!
//! The relay listens where its caller's thread is (the root namespace, `127.0.0.1:PORT`); for
//! each accepted connection it opens the upstream connection from a thread that has entered
//! the host's namespace ([`crate::Host::in_ns`], `setns`), then copies bytes both ways on two
//! threads, passing each direction's end (FIN) on. At most [`MAX_CONNECTIONS`] connections are
//! relayed at once; more are closed at once and counted.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::Host;

/// Connections relayed at once, at most (a browser opens about six).
pub const MAX_CONNECTIONS: usize = 64;

/// How long an upstream connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Counters of a [`Relay`].
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections accepted on the listening side.
    pub accepted: AtomicU64,
    /// Connections whose upstream connect failed (closed at once).
    pub upstream_failed: AtomicU64,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused_busy: AtomicU64,
    /// Bytes copied towards the host.
    pub bytes_up: AtomicU64,
    /// Bytes copied back from the host.
    pub bytes_down: AtomicU64,
}

/// A running relay; dropping it closes the listener (open connections finish by themselves).
pub struct Relay {
    local: SocketAddr,
    upstream: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<RelayStats>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("local", &self.local)
            .field("upstream", &self.upstream)
            .finish()
    }
}

impl Relay {
    /// Listens on `listen` in the calling thread's namespace (port 0: any free port) and
    /// relays every connection to `upstream` as seen from inside `host`.
    pub fn start(listen: SocketAddr, host: &Host, upstream: SocketAddr) -> Result<Relay> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("relay: listening on {listen}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RelayStats::default());
        let thread = {
            let (stop, stats, host) = (Arc::clone(&stop), Arc::clone(&stats), host.clone());
            std::thread::Builder::new()
                .name(format!("relay-{}", host.name))
                .spawn(move || accept_loop(&listener, &host, upstream, &stop, &stats))
                .context("spawning the relay thread")?
        };
        Ok(Relay {
            local,
            upstream,
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address it relays to (inside the host).
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Its counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    host: &Host,
    upstream: SocketAddr,
    stop: &AtomicBool,
    stats: &Arc<RelayStats>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            continue; // dropping `client` closes it
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (host, conn_stats, conn_open) = (host.clone(), Arc::clone(stats), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("relay-conn".into())
            .spawn(move || {
                relay_one(client, &host, upstream, &conn_stats);
                conn_open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
            stats.upstream_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn relay_one(client: TcpStream, host: &Host, upstream: SocketAddr, stats: &Arc<RelayStats>) {
    // The socket is made inside the host's namespace and stays there; it is then used from
    // this thread (root namespace) like any other descriptor.
    let server = host
        .in_ns(|| TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT))
        .map_err(io::Error::other)
        .and_then(|r| r);
    let Ok(server) = server else {
        stats.upstream_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = {
        let stats = Arc::clone(stats);
        std::thread::Builder::new()
            .name("relay-up".into())
            .spawn(move || copy_half(client2, server2, &stats.bytes_up))
    };
    copy_half(server, client, &stats.bytes_down);
    if let Ok(up) = up {
        let _ = up.join();
    }
}

/// Copies `from` to `to` until `from` ends (or either fails), counting the bytes read into
/// `count` as they pass, then passes the end on.
fn copy_half(mut from: TcpStream, mut to: TcpStream, count: &AtomicU64) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        count.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
