//! The HTTP/1 server (hyper) on its own thread and single-threaded tokio runtime; the
//! handlers run on a few blocking threads (they take the node lock).

use super::routes::{self, Answer};
use super::status::History;
use crate::node::Node;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// Connections served at once; the next ones wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 64;
/// The request line and headers must fit in this many bytes (hyper answers 431 otherwise).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A request's headers must arrive within this time (also between keep-alive requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this time, whatever it does (browsers reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Threads running handlers at once (each may wait for the node lock).
const HANDLER_THREADS: usize = 4;
/// How long stopping waits for the listener to close.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// A running web server; dropping it closes the listener (connections in flight are dropped).
pub struct WebServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    closed: std::sync::mpsc::Receiver<()>,
}

impl WebServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.closed.recv_timeout(STOP_WAIT);
    }
}

/// What a handler sees.
pub(super) struct Ctx {
    pub node: Weak<Node>,
    pub history: History,
    pub transitions: super::metrics::Transitions,
}

pub(super) fn start(listener: std::net::TcpListener, node: Weak<Node>) -> Result<WebServer> {
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(HANDLER_THREADS)
        .thread_name("web-handler")
        .build()
        .context("web server runtime")?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let ctx = Arc::new(Ctx {
        node,
        history: History::default(),
        transitions: Default::default(),
    });
    std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "web server: listener");
                        return;
                    }
                };
                tokio::spawn(super::status::sample_history(ctx.clone()));
                accept_loop(listener, ctx, stop_rx).await;
            });
            let _ = closed_tx.send(());
            rt.shutdown_background();
        })
        .context("web server thread")?;
    if addr.ip().is_loopback() {
        tracing::info!(address = %addr, "metrics and status page served on http://{addr}/");
    } else {
        tracing::warn!(
            address = %addr,
            "metrics and status page served on http://{addr}/, beyond loopback: read-only, but \
             without authentication (anyone who reaches the address sees the configuration and \
             the counters); restrict it with a packet filter"
        );
    }
    Ok(WebServer {
        addr,
        stop: Some(stop_tx),
        closed: closed_rx,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
    mut stop: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut errors = 0u64;
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!(error = %e, total = errors, "web server: accept");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| handle(ctx.clone(), req));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

async fn handle(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = if req.method() != Method::GET && req.method() != Method::HEAD {
        Answer::method_not_allowed()
    } else {
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        tokio::task::spawn_blocking(move || routes::route(&ctx, &path, query.as_deref()))
            .await
            .unwrap_or_else(|_| Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
    };
    Ok(response(answer))
}

fn response(a: Answer) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = a.status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page runs no inline script or style and talks only to its own origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::page::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}
