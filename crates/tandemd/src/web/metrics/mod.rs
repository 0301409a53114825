//! `/metrics`: the node's counters in the Prometheus text format, gathered from the node's
//! reports at scrape time (no per-packet cost): `executor report`, `highavailability status`,
//! `cluster|port|server report`, `advisor list` and `advisor report`. The list with meanings is docs/metrics.md.

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
    // One `advisor report` per started advisor (bounded by the configuration).
    let advisors: Vec<Value> = data(&["advisor", "list"], Value::Null)["advisors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let name = a["name"].as_str()?;
            let port = a["port"].as_u64()?;
            let target = match a["cluster"].as_str() {
                Some(c) => format!("{c}@{port}"),
                None => port.to_string(),
            };
            Some(data(&["advisor", "report", name, &target], Value::Null))
        })
        .filter(|r| !r.is_null())
        .collect();
    transitions.observe(&ha["transitions"], Instant::now());
    let mut m = Metrics::default();
    render::node(&mut m, &executor, node.started_at.elapsed().as_secs_f64());
    render::traffic(&mut m, &clusters, &ports, &servers);
    render::ha(&mut m, &ha, transitions);
    render::advisors(&mut m, &advisors);
    m.text()
}
