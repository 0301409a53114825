//! New-connection rate: HTTP GETs, each on a new TCP connection, for a fixed time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::traffic::{LatencySummary, http_get};

/// Outcome of [`conn_rate`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConnRate {
    /// `ip:port` loaded.
    pub target: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seconds from the first request to the end of the last one.
    pub elapsed_s: f64,
    /// Requests answered `200 server=NAME`.
    pub ok: u64,
    /// Requests that failed (connect, timeout, bad answer).
    pub failed: u64,
    /// `ok / elapsed_s`.
    pub per_sec: f64,
    /// Latency of the successful requests (connect to end of answer).
    pub latency: LatencySummary,
    /// Successful requests per answering server.
    pub by_server: BTreeMap<String, u64>,
    /// Failures per error message.
    pub errors: BTreeMap<String, u64>,
}

/// Runs `concurrency` threads, each sending `GET /` on a new connection after the other,
/// until `duration` has passed (requests started before then finish, bounded by `timeout`).
/// Never fails as a whole: failures are counted. Uses the calling thread's namespace.
pub fn conn_rate(
    target: SocketAddr,
    concurrency: usize,
    duration: Duration,
    timeout: Duration,
) -> ConnRate {
    drive(target, concurrency, duration, "conn-rate", || {
        |_: &mut ()| http_get(target, timeout)
    })
}

/// The load driver of [`conn_rate`] and [`super::keepalive_rate`]: `concurrency` threads named
/// `name-I`, each with its own state (`S::default()`), calling the request function `make()`
/// gives it one after the other until `duration` has passed. A request returns the answering
/// server's name; failures are counted by message (and pause the thread 5 ms, so that a
/// refused target does not spin). Latency is per request.
pub(crate) fn drive<S, F, M>(
    target: SocketAddr,
    concurrency: usize,
    duration: Duration,
    name: &str,
    make: M,
) -> ConnRate
where
    S: Default,
    F: FnMut(&mut S) -> anyhow::Result<String>,
    M: Fn() -> F + Sync,
{
    let start = Instant::now();
    let deadline = start + duration;
    let merged = Mutex::new((ConnRate::default(), Vec::<Duration>::new()));
    std::thread::scope(|scope| {
        for i in 0..concurrency.max(1) {
            let (merged, make) = (&merged, &make);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || {
                    let mut request = make();
                    let mut state = S::default();
                    let mut local = ConnRate::default();
                    let mut latencies = Vec::with_capacity(4096);
                    while Instant::now() < deadline {
                        let began = Instant::now();
                        match request(&mut state) {
                            Ok(server) => {
                                latencies.push(began.elapsed());
                                local.ok += 1;
                                *local.by_server.entry(server).or_default() += 1;
                            }
                            Err(e) => {
                                local.failed += 1;
                                let message = format!("{e:#}");
                                if local.errors.len() < 20 || local.errors.contains_key(&message) {
                                    *local.errors.entry(message).or_default() += 1;
                                }
                                // A refused or unreachable target fails at once: do not spin.
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    let mut guard = merged.lock().unwrap_or_else(|p| p.into_inner());
                    let (total, all) = &mut *guard;
                    total.ok += local.ok;
                    total.failed += local.failed;
                    for (k, v) in local.by_server {
                        *total.by_server.entry(k).or_default() += v;
                    }
                    for (k, v) in local.errors {
                        *total.errors.entry(k).or_default() += v;
                    }
                    all.extend(latencies);
                });
            if spawned.is_err() {
                break;
            }
        }
    });
    let elapsed = start.elapsed();
    let (mut report, latencies) = merged.into_inner().unwrap_or_else(|p| p.into_inner());
    report.target = target.to_string();
    report.concurrency = concurrency.max(1);
    report.elapsed_s = elapsed.as_secs_f64();
    report.per_sec = report.ok as f64 / report.elapsed_s.max(1e-9);
    report.latency = LatencySummary::from_samples(latencies);
    report
}
