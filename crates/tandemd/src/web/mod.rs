//! The web server: Prometheus metrics, the status page and its JSON (`executor set metrics
//! ADDR:PORT`; off by default; see docs/metrics.md).
//!
//! Routes (GET and HEAD only; anything else is 405, an unknown path 404):
//! * `/metrics`: Prometheus text exposition, gathered from the node's reports at scrape time;
//! * `/api/status`: the node, HA, clusters, ports, servers and a 10-minute history (JSON);
//! * `/api/query?cmd=WORDS`: one read-only command (reports and status), answered with the
//!   reply `tandemctl --json` gets; a change or an action is refused with 403;
//! * `/` and `/static/NAME`: the status page (`page`).
//!
//! Read-only and without authentication: nothing served here changes the node. Bounded
//! whatever clients do: [`server::MAX_CONNECTIONS`] connections at once (more wait in the listen
//! queue), request headers of at most [`server::MAX_HEADER_BYTES`] (431), a header read timeout
//! ([`server::HEADER_READ_TIMEOUT`]), a connection lifetime ([`server::CONNECTION_LIFETIME`])
//! and a few handler threads.

pub mod metrics;
pub mod page;
mod query;
mod routes;
mod server;
pub mod status;

use crate::node::Node;
use anyhow::{Context, Result};
use parking_lot::Mutex;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock, Weak};

pub use server::WebServer;

/// Serves the web routes on `addr` for `node` until the returned [`WebServer`] is dropped.
#[allow(dead_code)] // the entry point of contract 1; the node goes through `Control`
pub fn serve(addr: SocketAddr, node: Arc<Node>) -> Result<WebServer> {
    server::start(bind(addr)?, Arc::downgrade(&node))
}

/// Binds the listening socket (address reuse, so the next server can bind while the previous
/// one still listens, and right after it stopped).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let listen = || -> std::io::Result<TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        Ok(s.into())
    };
    listen().with_context(|| format!("cannot serve metrics on {addr}"))
}

/// A change of `executor set metrics`, prepared before the commit (the socket is bound, so a
/// failure refuses the command) and applied after it.
#[must_use]
pub struct Prepared(Option<Option<TcpListener>>);

/// The node's web server, as `executor set metrics` wants it.
#[derive(Default)]
pub struct Control {
    /// The node itself, once it is shared (the HA thread attaches it at start).
    me: OnceLock<Weak<Node>>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    server: Option<WebServer>,
    /// Bound before the node was shared (configuration loaded at start); served on attach.
    pending: Option<TcpListener>,
}

impl Control {
    /// Binds the new address when the setting changes (`old` running, `new` wanted).
    pub fn prepare(&self, old: Option<SocketAddr>, new: Option<SocketAddr>) -> Result<Prepared> {
        if old == new {
            return Ok(Prepared(None));
        }
        Ok(Prepared(Some(match new {
            Some(addr) => Some(bind(addr)?),
            None => None,
        })))
    }

    /// Stops the previous server and starts the prepared one (after the commit succeeded).
    pub fn apply(&self, prepared: Prepared) {
        let Some(change) = prepared.0 else {
            return;
        };
        let mut inner = self.inner.lock();
        if let Some(old) = inner.server.take() {
            tracing::info!(address = %old.addr(), "web server stopped");
        }
        inner.pending = None;
        let Some(listener) = change else {
            return;
        };
        match self.me.get() {
            Some(me) => inner.server = start_logged(listener, me.clone()),
            None => inner.pending = Some(listener),
        }
    }

    /// The node is shared now: serve what was configured before.
    pub fn attach(&self, node: &Arc<Node>) {
        let _ = self.me.set(Arc::downgrade(node));
        let mut inner = self.inner.lock();
        if let Some(listener) = inner.pending.take() {
            inner.server = start_logged(listener, Arc::downgrade(node));
        }
    }

    /// Where the web server listens (None: off).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.inner.lock().server.as_ref().map(|s| s.addr())
    }
}

fn start_logged(listener: TcpListener, node: Weak<Node>) -> Option<WebServer> {
    match server::start(listener, node) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the web server did not start");
            None
        }
    }
}
