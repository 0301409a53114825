//! `/metrics`: the node's counters in the Prometheus text format, gathered from the node's
//! reports at scrape time (no per-packet cost): `executor report`, `highavailability status`,
//! `cluster|port|server report`. The list with meanings is docs/metrics.md.

mod render;
mod transitions;

pub use render::Metrics;
pub use transitions::Transitions;

use crate::node::Node;
use serde_json::{Value, json};
use std::time::Instant;

/// The exposition text of `node` (`transitions` counts HA transitions across scrapes).
pub fn gather(node: &Node, transitions: &Transitions) -> String {
    let data = |words: &[&str], fallback: Value| super::status::data(node, words, fallback);
    let executor = data(&["executor", "report"], Value::Null);
    let ha = data(&["highavailability", "status"], Value::Null);
    let clusters = data(&["cluster", "report", "@"], json!([]));
    let ports = data(&["port", "report", "@"], json!([]));
    let servers = data(&["server", "report", "@@"], json!([]));
    transitions.observe(&ha["transitions"], Instant::now());
    let mut m = Metrics::default();
    render::node(&mut m, &executor, node.started_at.elapsed().as_secs_f64());
    render::traffic(&mut m, &clusters, &ports, &servers);
    render::ha(&mut m, &ha, transitions);
    m.text()
}
