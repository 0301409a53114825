//! `tandem-gwm run`: the tokio shell around [`tandem_core::sasp::gwm::Gwm`].
//!
//! One current-thread runtime. The main loop owns the `Gwm` and is the only one to touch it;
//! every connection has a reader task (bytes in) and a writer task (bytes out), probes are
//! tasks, the status endpoint is a task that asks the main loop for the JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tandem_core::sasp::gwm::{ConnId, Gwm, GwmEvent, GwmSettings, MemberHealth, MemberKey};
use tokio::io::{AsyncRead, AsyncWrite, WriteHalf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{info, warn};

use crate::fault::{Action, Fault, Injector};
use crate::probe::{LoadSource, MemberCheck};
use crate::{status, weights_file};

/// Probes running at once.
const MAX_PROBES: usize = 256;
/// Messages waiting for one connection's writer before it is closed as not reading.
const WRITER_QUEUE: usize = 1024;
/// Longest a single write may block.
const WRITE_TIME: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct RunOptions {
    pub listen: SocketAddr,
    pub interval: Duration,
    pub push_interval: Duration,
    pub lb_grace: Duration,
    pub probe_timeout: Duration,
    pub status: Option<SocketAddr>,
    pub member_check: MemberCheck,
    pub load: LoadSource,
    pub weights_file: Option<PathBuf>,
    pub fault: Option<Fault>,
    pub fault_after: u64,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A load balancer's connection: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// TLS handshakes running at once, and how long one may take.
const MAX_HANDSHAKES: usize = 64;
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

enum Input {
    Accepted(Box<dyn Stream>, SocketAddr),
    Bytes(ConnId, Vec<u8>),
    Eof(ConnId, String),
    Health(MemberKey, MemberHealth),
}

enum Out {
    Bytes(Vec<u8>),
    Delay(Duration, Vec<u8>),
    Close,
}

struct Conn {
    writer: mpsc::Sender<Out>,
    reader: tokio::task::JoinHandle<()>,
    fault: Injector,
}

pub async fn run(opts: RunOptions) -> Result<()> {
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listen on {}", opts.listen))?;
    let local = listener.local_addr()?;
    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    let (ask_tx, mut ask_rx) = mpsc::channel::<oneshot::Sender<Value>>(16);
    let status_addr = match opts.status {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen for status on {addr}"))?;
            let bound = l.local_addr()?;
            tokio::spawn(status::serve(l, ask_tx));
            Some(bound)
        }
        None => None,
    };
    {
        let tx = tx.clone();
        let tls = opts.tls.clone();
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let Some(tls) = tls.clone() else {
                            if tx
                                .send(Input::Accepted(Box::new(stream), peer))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            continue;
                        };
                        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                            warn!(
                                "{peer}: more than {MAX_HANDSHAKES} TLS handshakes at once, refused"
                            );
                            continue;
                        };
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            match tokio::time::timeout(HANDSHAKE_TIME, tls.accept(stream)).await {
                                Ok(Ok(s)) => {
                                    let _ = tx.send(Input::Accepted(Box::new(s), peer)).await;
                                }
                                Ok(Err(e)) => warn!("{peer}: TLS handshake failed: {e}"),
                                Err(_) => warn!(
                                    "{peer}: TLS handshake not done within {HANDSHAKE_TIME:?}"
                                ),
                            }
                        });
                    }
                    Err(e) => {
                        warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let settings = GwmSettings {
        push_interval: opts.push_interval,
        poll_interval: opts.interval.as_secs_f64().ceil().clamp(1.0, 65535.0) as u16,
        lb_grace: opts.lb_grace,
        ..GwmSettings::default()
    };
    let mut gwm = Gwm::new(settings);
    let mut conns: BTreeMap<ConnId, Conn> = BTreeMap::new();
    let probes = Arc::new(Semaphore::new(MAX_PROBES));
    // Members being probed: a slow member is not probed twice at once.
    let mut inflight: BTreeSet<MemberKey> = BTreeSet::new();
    // Members probed at least once (new ones are probed at once).
    let mut probed: BTreeSet<MemberKey> = BTreeSet::new();
    let mut probe_tick = tokio::time::interval(opts.interval);
    probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut file_tick = tokio::time::interval(Duration::from_secs(1));
    let mut file_bytes: Option<Vec<u8>> = None;
    let mut file_error: Option<String> = None;
    info!(
        "tandem-gwm listening on {local} (status on {})",
        status_addr.map_or("-".to_owned(), |a| a.to_string())
    );
    loop {
        let wake = gwm
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let mut registered = false;
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { return Ok(()) };
                let now = Instant::now();
                match input {
                    Input::Accepted(stream, peer) => match gwm.accept(now, peer.to_string()) {
                        Ok(id) => {
                            info!("connection {} from {peer}", id.0);
                            let (mut rd, wr) = tokio::io::split(stream);
                            let (wtx, wrx) = mpsc::channel(WRITER_QUEUE);
                            tokio::spawn(writer(wr, wrx));
                            let itx = tx.clone();
                            let reader = tokio::spawn(async move {
                                let mut buf = vec![0u8; 16 * 1024];
                                loop {
                                    match rd.read(&mut buf).await {
                                        Ok(0) => {
                                            let _ = itx.send(Input::Eof(id, "closed by the peer".into())).await;
                                            return;
                                        }
                                        Ok(n) => {
                                            if itx.send(Input::Bytes(id, buf[..n].to_vec())).await.is_err() {
                                                return;
                                            }
                                        }
                                        Err(e) => {
                                            let _ = itx.send(Input::Eof(id, e.to_string())).await;
                                            return;
                                        }
                                    }
                                }
                            });
                            conns.insert(id, Conn { writer: wtx, reader, fault: Injector::new(opts.fault, opts.fault_after) });
                        }
                        Err(e) => warn!("refused a connection from {peer}: {e}"),
                    },
                    Input::Bytes(id, bytes) => {
                        gwm.handle_bytes(now, id, &bytes);
                        registered = true;
                    }
                    Input::Eof(id, why) => {
                        info!("connection {}: {why}", id.0);
                        gwm.handle_closed(now, id);
                        if let Some(c) = conns.remove(&id) {
                            c.reader.abort();
                        }
                    }
                    Input::Health(member, health) => {
                        inflight.remove(&member);
                        gwm.set_member_health(now, member, health);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => gwm.handle_timeout(Instant::now()),
            _ = probe_tick.tick() => {
                let targets = gwm.probe_targets();
                probed.retain(|m| targets.contains(m));
                probe_all(targets, &mut inflight, &mut probed, &probes, &tx, &opts);
            }
            _ = file_tick.tick(), if opts.weights_file.is_some() => {
                let path = opts.weights_file.as_ref().expect("checked by the guard");
                match weights_file::read(path) {
                    Ok((bytes, overrides)) => {
                        if file_bytes.as_ref() != Some(&bytes) {
                            info!("weights file {}: {} override(s)", path.display(), overrides.len());
                            file_bytes = Some(bytes);
                            file_error = None;
                            gwm.set_overrides(Instant::now(), overrides);
                        }
                    }
                    Err(e) => {
                        let e = format!("{e:#} (the last good overrides stay)");
                        if file_error.as_ref() != Some(&e) {
                            warn!("weights file: {e}");
                            file_error = Some(e);
                        }
                    }
                }
            }
            Some(reply) = ask_rx.recv() => {
                let mut v = serde_json::to_value(gwm.status(Instant::now())).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut v {
                    let extra = json!({
                        "listen": local.to_string(),
                        "interval": opts.interval.as_secs_f64(),
                        "push_interval": opts.push_interval.as_secs_f64(),
                        "lb_grace": opts.lb_grace.as_secs_f64(),
                        "member_check": opts.member_check,
                        "load": opts.load,
                        "weights_file": opts.weights_file.as_ref().map(|p| p.display().to_string()),
                        "weights_file_error": file_error,
                        "fault": opts.fault.map(|f| f.to_string()),
                    });
                    if let Value::Object(extra) = extra {
                        map.extend(extra);
                    }
                }
                let _ = reply.send(v);
            }
        }
        if registered {
            // Members registered since the last tick are probed at once, not an interval later.
            let fresh: BTreeSet<MemberKey> =
                gwm.probe_targets().difference(&probed).copied().collect();
            if !fresh.is_empty() {
                probe_all(fresh, &mut inflight, &mut probed, &probes, &tx, &opts);
            }
        }
        while let Some(event) = gwm.poll_event() {
            match event {
                GwmEvent::LbBound { conn, lb_uid } => {
                    info!("connection {}: LB UID {lb_uid:?}", conn.0)
                }
                GwmEvent::LbReplaced { lb_uid, old, new } => {
                    info!("LB UID {lb_uid:?}: connection {} replaces {}", new.0, old.0)
                }
                GwmEvent::LbExpired { lb_uid } => {
                    info!("LB UID {lb_uid:?}: state dropped after the grace period")
                }
                GwmEvent::Refused {
                    conn,
                    request,
                    code,
                } => info!("connection {}: {request} answered {code:#04x}", conn.0),
                GwmEvent::Closing { conn, reason } => {
                    warn!("connection {}: closing: {reason}", conn.0)
                }
            }
        }
        drain(&mut gwm, &mut conns);
    }
}

/// Starts a probe of each of `members` not being probed already (each member at most once
/// at a time, so the waiting tasks are bounded by the registered members).
fn probe_all(
    members: BTreeSet<MemberKey>,
    inflight: &mut BTreeSet<MemberKey>,
    probed: &mut BTreeSet<MemberKey>,
    probes: &Arc<Semaphore>,
    tx: &mpsc::Sender<Input>,
    opts: &RunOptions,
) {
    for member in members {
        if inflight.contains(&member) {
            continue;
        }
        inflight.insert(member);
        probed.insert(member);
        let tx = tx.clone();
        let load = opts.load.clone();
        let (check, limit) = (opts.member_check, opts.probe_timeout);
        let probes = probes.clone();
        tokio::spawn(async move {
            // At most MAX_PROBES run at once; the others wait their turn.
            let Ok(_permit) = probes.acquire_owned().await else {
                return;
            };
            let health = crate::probe::probe(member, check, &load, limit).await;
            let _ = tx.send(Input::Health(member, health)).await;
        });
    }
}

/// Moves what the GWM wants sent to the writers, closes what it wants closed.
fn drain(gwm: &mut Gwm, conns: &mut BTreeMap<ConnId, Conn>) {
    let now = Instant::now();
    for id in gwm.connections() {
        let mut close = None;
        if let Some(c) = conns.get_mut(&id) {
            while let Some(bytes) = gwm.poll_transmit(id) {
                let out = match c.fault.apply(bytes) {
                    Action::Send(b) => Out::Bytes(b),
                    Action::Delay(d, b) => Out::Delay(d, b),
                    Action::Drop => continue,
                    Action::Close => {
                        close = Some("fault injection: close".to_owned());
                        break;
                    }
                };
                if c.writer.try_send(out).is_err() {
                    close = Some(format!(
                        "more than {WRITER_QUEUE} messages waiting: the peer does not read"
                    ));
                    break;
                }
            }
        }
        if let Some(reason) = gwm.poll_close(id) {
            close = Some(reason);
        }
        if let Some(reason) = close {
            info!("connection {}: closed: {reason}", id.0);
            gwm.handle_closed(now, id);
            if let Some(c) = conns.remove(&id) {
                c.reader.abort();
                // The writer sends what is queued, then closes.
                let _ = c.writer.try_send(Out::Close);
            }
        }
    }
}

async fn writer(mut wr: WriteHalf<Box<dyn Stream>>, mut rx: mpsc::Receiver<Out>) {
    while let Some(out) = rx.recv().await {
        let bytes = match out {
            Out::Bytes(b) => b,
            Out::Delay(d, b) => {
                tokio::time::sleep(d).await;
                b
            }
            Out::Close => break,
        };
        // A peer that stops reading must not keep this task forever.
        match tokio::time::timeout(WRITE_TIME, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = wr.shutdown().await;
}
