//! `/api/status`: what the status page shows, in one JSON document, and the history it draws
//! its chart from.

use super::server::Ctx;
use crate::node::Node;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A history sample every this often...
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// ...kept for 10 minutes.
pub const SAMPLES_KEPT: usize = 300;

/// One point of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Cumulative frames forwarded since the daemon started.
    pub frames_forwarded: u64,
    pub connections_active: u64,
}

/// The last [`SAMPLES_KEPT`] samples (a bounded ring).
#[derive(Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    pub fn push(&self, s: Sample) {
        let mut q = self.0.lock();
        if q.len() == SAMPLES_KEPT {
            q.pop_front();
        }
        q.push_back(s);
    }
    pub fn samples(&self) -> Vec<Sample> {
        self.0.lock().iter().copied().collect()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Samples the node's counters (atomics only: no lock) every [`SAMPLE_EVERY`].
pub(super) async fn sample_history(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = ctx.node.upgrade() else {
            return;
        };
        ctx.history.push(Sample {
            t_ms: now_ms(),
            frames_forwarded: node.engine.node.forwarded.load(Relaxed),
            connections_active: node.engine.conns.len() as u64,
        });
    }
}

/// The `data` of one query, `fallback` when it is refused (no HA configured, no cluster...).
pub fn data(node: &Node, words: &[&str], fallback: Value) -> Value {
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let reply = node.execute(&words, true);
    if reply.ok { reply.data } else { fallback }
}

/// The `/api/status` document.
pub fn status(node: &Node, history: &[Sample]) -> Value {
    let executor = data(node, &["executor", "status"], Value::Null);
    let packetio = executor["packetio_running"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .filter(|w| *w == "afxdp" || *w == "afpacket");
    json!({
        "node": {
            "nfa": executor["nfa"],
            "version": env!("CARGO_PKG_VERSION"),
            "packetio": packetio,
            "time_ms": now_ms(),
            "uptime_seconds": node.started_at.elapsed().as_secs_f64(),
        },
        "highavailability": data(node, &["highavailability", "status"], Value::Null),
        "clusters": data(node, &["cluster", "report", "@"], json!([])),
        "ports": data(node, &["port", "report", "@"], json!([])),
        "servers": data(node, &["server", "report", "@@"], json!([])),
        "executor": executor,
        "history": history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_ten_minutes() {
        let h = History::default();
        for i in 0..(SAMPLES_KEPT as u64 + 7) {
            h.push(Sample {
                t_ms: i,
                frames_forwarded: i,
                connections_active: 0,
            });
        }
        let s = h.samples();
        assert_eq!(s.len(), SAMPLES_KEPT);
        assert_eq!(s[0].t_ms, 7);
        assert_eq!(s.last().unwrap().t_ms, SAMPLES_KEPT as u64 + 6);
        assert_eq!(SAMPLES_KEPT as u64 * SAMPLE_EVERY.as_secs(), 600);
    }
}
