//! The metric families, built with `prometheus-client` from the reports' JSON.

use super::Transitions;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;

/// The families of one scrape.
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    /// A counter family (`name` without `_total`: the text gets it).
    pub fn counter(&mut self, name: &str, help: &str, rows: Vec<(Labels, u64)>) {
        let f = Family::<Labels, Counter>::default();
        for (l, v) in rows {
            f.get_or_create(&l).inc_by(v);
        }
        self.registry.register(name, help, f);
    }

    pub fn gauge(&mut self, name: &str, help: &str, rows: Vec<(Labels, f64)>) {
        let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (l, v) in rows {
            f.get_or_create(&l).set(v);
        }
        self.registry.register(name, help, f);
    }

    /// A gauge with one series per possible value of `label`, 1 for `current`.
    pub fn enumeration(
        &mut self,
        name: &str,
        help: &str,
        base: &[(&str, &str)],
        label: &str,
        values: &[&str],
        current: Option<&str>,
    ) {
        let rows = values
            .iter()
            .map(|v| {
                let mut l = labels(base);
                l.push((label.to_string(), v.to_string()));
                (l, f64::from(u8::from(current == Some(*v))))
            })
            .collect();
        self.gauge(name, help, rows);
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry);
        to_prometheus_text(&s)
    }
}

/// OpenMetrics text (what `prometheus-client` writes) as the Prometheus text format 0.0.4
/// (what Prometheus and `promtool check metrics` read with `text/plain`): a counter's HELP and
/// TYPE name its `_total` series, and there are no UNIT lines.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn one(value: u64) -> Vec<(Labels, u64)> {
    vec![(Vec::new(), value)]
}

/// `[[name, n], ...]` → rows labelled `label`.
fn pairs(v: &Value, label: &str) -> Vec<(Labels, u64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((labels(&[(label, p.get(0)?.as_str()?)]), u(p.get(1)?))))
        .collect()
}

/// `{"reason": n, ...}` → rows labelled `label` (numbers only).
fn object(v: &Value, label: &str) -> Vec<(Labels, u64)> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.is_u64())
        .map(|(k, n)| (labels(&[(label, &k.replace('_', "-"))]), u(n)))
        .collect()
}

/// Per node: frames, bytes, drops, records, tables, packet I/O (`executor report`).
pub fn node(m: &mut Metrics, e: &Value, uptime: f64) {
    m.gauge(
        "tandem_build_info",
        "The running tandemd (version label), always 1",
        vec![(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    m.gauge(
        "tandem_uptime_seconds",
        "Seconds since tandemd started",
        vec![(Vec::new(), uptime)],
    );
    let started = e["state"]
        .as_str()
        .is_some_and(|s| s.starts_with("started"));
    m.gauge(
        "tandem_executor_started",
        "1 when the executor is started (executor start), 0 when stopped",
        vec![(Vec::new(), f64::from(u8::from(started)))],
    );
    let running = e["packetio_running"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("none");
    m.gauge(
        "tandem_packetio_info",
        "The packet I/O backend running (mode: afxdp, afpacket, none) and the one set (setting), always 1",
        vec![(
            labels(&[
                ("mode", running),
                ("setting", e["packetio"].as_str().unwrap_or("")),
            ]),
            1.0,
        )],
    );
    let c =
        |m: &mut Metrics, name: &str, help: &str, key: &str| m.counter(name, help, one(u(&e[key])));
    c(
        m,
        "tandem_frames_received",
        "Frames the data plane received",
        "frames_received",
    );
    c(
        m,
        "tandem_frames_forwarded",
        "Frames forwarded to servers or clients",
        "frames_forwarded",
    );
    c(
        m,
        "tandem_forwarded_bytes",
        "Bytes of the frames forwarded",
        "bytes_forwarded",
    );
    c(
        m,
        "tandem_frames_passed_to_kernel",
        "Frames left to the node's kernel (not cluster traffic)",
        "frames_passed_to_kernel",
    );
    m.counter(
        "tandem_frames_dropped",
        "Frames dropped, by reason",
        pairs(&e["drops"], "reason"),
    );
    m.counter(
        "tandem_frames_sent",
        "Frames the node sent itself, by kind (arp, ndp, reset)",
        vec![
            (labels(&[("kind", "arp")]), u(&e["arp_sent"])),
            (labels(&[("kind", "ndp")]), u(&e["ndp_sent"])),
            (labels(&[("kind", "reset")]), u(&e["resets_sent"])),
        ],
    );
    m.gauge(
        "tandem_records",
        "Records in the node's tables, by kind (connection, halfopen, affinity, fragment)",
        vec![
            (
                labels(&[("kind", "connection")]),
                f(&e["connection_records"]),
            ),
            (labels(&[("kind", "halfopen")]), f(&e["halfopen_records"])),
            (labels(&[("kind", "affinity")]), f(&e["affinity_records"])),
            (labels(&[("kind", "fragment")]), f(&e["fragment_datagrams"])),
        ],
    );
    m.gauge(
        "tandem_records_max",
        "The bound of each table (connection: maxconnections, also the affinity bound; fragment)",
        vec![
            (labels(&[("kind", "connection")]), f(&e["maxconnections"])),
            (
                labels(&[("kind", "fragment")]),
                f(&e["fragment_datagrams_max"]),
            ),
        ],
    );
    m.counter(
        "tandem_records_refused",
        "New records refused or evicted because a table was full, by reason",
        vec![
            (
                labels(&[("reason", "connection-table-full")]),
                u(&e["refused_table_full"]),
            ),
            (
                labels(&[("reason", "client-half-open-limit")]),
                u(&e["refused_client_halfopen_limit"]),
            ),
            (
                labels(&[("reason", "half-open-evicted")]),
                u(&e["halfopen_evicted"]),
            ),
            (
                labels(&[("reason", "affinity-table-full")]),
                u(&e["affinity_refused"]),
            ),
            (
                labels(&[("reason", "fragment-evicted")]),
                u(&e["fragment_evicted"]),
            ),
        ],
    );
    m.counter(
        "tandem_replicated_records_installed",
        "Records received from the partner and installed in the tables",
        one(u(&e["replicated_installed"])),
    );
    m.counter(
        "tandem_replicated_records_refused",
        "Records received from the partner and not installed, by reason",
        pairs(&e["replicated_refused"], "reason"),
    );
}

fn server_state(s: &str) -> &'static str {
    match s {
        "up" => "up",
        "down" => "down",
        "down (advisor)" => "advisor-down",
        "quiesced" => "quiesced",
        _ => "weight-zero",
    }
}

const SERVER_STATES: &[&str] = &["up", "down", "advisor-down", "quiesced", "weight-zero"];

/// Per cluster, port and server: connections, packets, bytes, weight, state.
/// Per advisor and server (the `data` of each started advisor's `advisor report`): its
/// verdict (one series per state, 1 for the current), the last load it measured, and the
/// failed queries in a row.
pub fn advisors(m: &mut Metrics, reports: &[Value]) {
    let mut state = Vec::new();
    let mut load = Vec::new();
    let mut failures = Vec::new();
    for rep in reports {
        let advisor = as_text(&rep["name"]);
        for s in rep["servers"].as_array().into_iter().flatten() {
            let lab = labels(&[
                ("advisor", &advisor),
                ("cluster", &as_text(&s["cluster"])),
                ("port", &as_text(&s["port"])),
                ("server", &as_text(&s["server"])),
            ]);
            let current = s["state"].as_str().unwrap_or("unknown");
            for v in ["up", "down", "unknown"] {
                let mut l = lab.clone();
                l.push(("state".into(), v.to_string()));
                state.push((l, f64::from(u8::from(v == current))));
            }
            if let Some(ms) = s["load"].as_f64() {
                load.push((lab.clone(), ms));
            }
            failures.push((lab, f(&s["failures"])));
        }
    }
    m.gauge(
        "tandem_advisor_server_state",
        "An advisor's verdict on a server: one series per state (up, down, unknown), 1 for the current one",
        state,
    );
    m.gauge(
        "tandem_advisor_server_load",
        "The last load an advisor measured on a server while trusted (milliseconds, or a custom advisor's value)",
        load,
    );
    m.gauge(
        "tandem_advisor_server_failures",
        "Failed advisor queries in a row, per server",
        failures,
    );
}

pub fn traffic(m: &mut Metrics, clusters: &Value, ports: &Value, servers: &Value) {
    let rows = |v: &Value| v.as_array().cloned().unwrap_or_default();
    type Key = fn(&Value) -> Vec<(&'static str, String)>;
    let levels: [(&str, Vec<Value>, Key); 3] = [
        ("cluster", rows(clusters), |r| {
            vec![("cluster", as_text(&r["cluster"]))]
        }),
        ("port", rows(ports), |r| {
            vec![
                ("cluster", as_text(&r["cluster"])),
                ("port", as_text(&r["port"])),
            ]
        }),
        ("server", rows(servers), |r| {
            vec![
                ("cluster", as_text(&r["cluster"])),
                ("port", as_text(&r["port"])),
                ("server", as_text(&r["server"])),
            ]
        }),
    ];
    for (level, list, key) in levels {
        let lab = |r: &Value| -> Labels {
            key(r)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        };
        let series = |field: &str| -> Vec<(Labels, u64)> {
            list.iter().map(|r| (lab(r), u(&r[field]))).collect()
        };
        m.gauge(
            &format!("tandem_{level}_connections_active"),
            &format!("Connections open now, per {level}"),
            list.iter().map(|r| (lab(r), f(&r["active"]))).collect(),
        );
        m.counter(
            &format!("tandem_{level}_connections"),
            &format!("Connections forwarded since tandemd started, per {level}"),
            series("total"),
        );
        m.counter(
            &format!("tandem_{level}_packets"),
            &format!("Packets forwarded, per {level}"),
            series("packets"),
        );
        m.counter(
            &format!("tandem_{level}_bytes"),
            &format!("Bytes forwarded, per {level}"),
            series("bytes"),
        );
    }
    let list = rows(servers);
    let lab = |r: &Value| -> Labels {
        labels(&[
            ("cluster", &as_text(&r["cluster"])),
            ("port", &as_text(&r["port"])),
            ("server", &as_text(&r["server"])),
        ])
    };
    m.gauge(
        "tandem_server_weight",
        "The server's effective weight (what the data plane uses; source label: config, manager, sasp, advisor-down...)",
        list.iter()
            .map(|r| {
                let mut l = lab(r);
                l.push(("source".into(), as_text(&r["weight_source"])));
                (l, f(&r["weight"]))
            })
            .collect(),
    );
    m.gauge(
        "tandem_server_configured_weight",
        "The server's configured weight (server set ... weight N)",
        list.iter()
            .map(|r| (lab(r), f(&r["configured_weight"])))
            .collect(),
    );
    let mut rows_state = Vec::new();
    for r in &list {
        let current = server_state(r["state"].as_str().unwrap_or(""));
        for s in SERVER_STATES {
            let mut l = lab(r);
            l.push(("state".into(), s.to_string()));
            rows_state.push((l, f64::from(u8::from(*s == current))));
        }
    }
    m.gauge(
        "tandem_server_state",
        "The server's state: one series per state (up, down, advisor-down, quiesced, weight-zero), 1 for the current one",
        rows_state,
    );
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

const HA_STATES: &[&str] = &["Idle", "Listen", "Active", "Standby", "Down"];
const SUB_STATES: &[&str] = &["Synchronized", "Not Synchronized"];
const CONTACTS: &[&str] = &["ok", "pending", "deaf", "silent", "left"];
const SYNC_STATES: &[&str] = &[
    "off",
    "standalone",
    "source",
    "in-sync",
    "syncing",
    "inconsistent",
];

/// High availability: state, partner, heartbeats, transitions, replication, config sync.
pub fn ha(m: &mut Metrics, h: &Value, transitions: &Transitions) {
    let configured = h["configured"].as_bool().unwrap_or(false);
    m.gauge(
        "tandem_ha_configured",
        "1 when high availability is configured on this node",
        vec![(Vec::new(), f64::from(u8::from(configured)))],
    );
    m.enumeration(
        "tandem_ha_state",
        "This node's HA state: one series per state, 1 for the current one",
        &[],
        "state",
        HA_STATES,
        h["state"].as_str(),
    );
    m.enumeration(
        "tandem_ha_sub_state",
        "This node's HA sub-state: one series per sub-state, 1 for the current one",
        &[],
        "sub_state",
        SUB_STATES,
        h["sub_state"].as_str(),
    );
    let p = &h["partner"];
    let heard = !p.is_null();
    m.enumeration(
        "tandem_ha_partner_state",
        "The partner's HA state as its heartbeats say (all 0 before it is heard)",
        &[],
        "state",
        HA_STATES,
        p["state"].as_str(),
    );
    m.enumeration(
        "tandem_ha_partner_contact",
        "Contact with the partner (ok: two-way; pending, deaf, silent, left)",
        &[],
        "contact",
        CONTACTS,
        p["contact"].as_str(),
    );
    m.gauge(
        "tandem_ha_partner_last_heard_seconds",
        "Seconds since the partner was last heard (absent before it is heard)",
        if heard {
            vec![(Vec::new(), f(&p["last_heard_ms"]) / 1000.0)]
        } else {
            Vec::new()
        },
    );
    m.gauge(
        "tandem_ha_config_digest_match",
        "1 when the partner's configuration digest matches this node's (absent before it is heard)",
        if heard {
            vec![(
                Vec::new(),
                f64::from(u8::from(p["config_matches"].as_bool().unwrap_or(false))),
            )]
        } else {
            Vec::new()
        },
    );
    let pairs: Vec<&Value> = h["heartbeats"].as_array().into_iter().flatten().collect();
    let pl = |p: &Value| -> Labels {
        labels(&[
            ("source", &as_text(&p["source"])),
            ("destination", &as_text(&p["destination"])),
        ])
    };
    for (name, help, field) in [
        (
            "tandem_ha_heartbeats_sent",
            "Heartbeats sent, per pair",
            "sent",
        ),
        (
            "tandem_ha_heartbeats_received",
            "Heartbeats received, per pair",
            "received",
        ),
        (
            "tandem_ha_heartbeats_lost",
            "Heartbeats missed (gaps in sequence), per pair",
            "lost",
        ),
    ] {
        m.counter(
            name,
            help,
            pairs.iter().map(|p| (pl(p), u(&p[field]))).collect(),
        );
    }
    m.gauge(
        "tandem_ha_heartbeat_pair_up",
        "1 when a heartbeat arrived on the pair within hatimeout",
        pairs
            .iter()
            .map(|p| (pl(p), f64::from(u8::from(p["status"] == "ok"))))
            .collect(),
    );
    m.counter(
        "tandem_ha_heartbeats_dropped",
        "Heartbeat datagrams dropped, by reason",
        object(&h["dropped"], "reason"),
    );
    m.counter(
        "tandem_ha_transitions",
        "HA state transitions seen since the web server started (from, to, cause)",
        transitions
            .counts()
            .into_iter()
            .map(|(from, to, cause, n)| {
                (
                    labels(&[("from", &from), ("to", &to), ("cause", &cause)]),
                    n,
                )
            })
            .collect(),
    );
    replication(m, &h["replication"]);
    let sync = &h["sync"];
    m.enumeration(
        "tandem_config_sync_state",
        "Configuration sync with the partner: one series per state, 1 for the current one",
        &[],
        "state",
        SYNC_STATES,
        sync["state"].as_str(),
    );
}

fn replication(m: &mut Metrics, r: &Value) {
    let ch = &r["channel"];
    m.gauge(
        "tandem_replication_active",
        "1 while this node replicates its records to the partner or receives the partner's",
        vec![(
            Vec::new(),
            f64::from(u8::from(r["replicating"].as_bool().unwrap_or(false))),
        )],
    );
    m.counter(
        "tandem_replication_records_sent",
        "Replication records sent to the partner (retransmissions not counted)",
        one(u(&r["sender"]["records_sent"])),
    );
    m.counter(
        "tandem_replication_records_received",
        "Replication records received from the partner",
        one(u(&r["receiver"]["records"])),
    );
    m.counter(
        "tandem_replication_records_installed",
        "Replication records received and installed",
        one(u(&ch["installed"])),
    );
    m.counter(
        "tandem_replication_records_dropped",
        "Replication records not sent or not installed, by reason",
        vec![
            (
                labels(&[("reason", "refused-active")]),
                u(&ch["refused_active"]),
            ),
            (
                labels(&[("reason", "not-replicating")]),
                u(&ch["not_replicating"]),
            ),
            (labels(&[("reason", "queue-full")]), u(&r["queue_dropped"])),
            (
                labels(&[("reason", "sender-overflow")]),
                u(&r["sender"]["overflow_dropped"]),
            ),
        ],
    );
    let mut dgrams = Vec::new();
    for k in [
        "frames_dropped",
        "stale_epoch",
        "reflected",
        "wrong_direction",
        "stale_session",
    ] {
        dgrams.push((labels(&[("reason", &k.replace('_', "-"))]), u(&ch[k])));
    }
    for (l, n) in object(&r["receiver"]["dropped"], "reason") {
        let reason = format!("batch-{}", l[0].1);
        dgrams.push((labels(&[("reason", &reason)]), n));
    }
    m.counter(
        "tandem_replication_datagrams_dropped",
        "Replication datagrams or batches dropped, by reason",
        dgrams,
    );
    m.counter(
        "tandem_replication_full_syncs_sent",
        "Full synchronisations of the tables this node sent to the partner",
        one(u(&ch["full_syncs_sent"])),
    );
    m.counter(
        "tandem_replication_full_syncs_received",
        "Full synchronisations received from the partner, completed",
        one(u(&r["receiver"]["syncs_completed"])),
    );
    let last = &r["sender"]["last_full_sync"];
    m.gauge(
        "tandem_replication_last_full_sync_duration_seconds",
        "Duration of the last full synchronisation sent, to the partner's acknowledgement (absent before one)",
        if last.is_null() {
            Vec::new()
        } else {
            vec![(Vec::new(), f(&last["duration_ms"]) / 1000.0)]
        },
    );
    m.gauge(
        "tandem_replication_last_full_sync_records",
        "Records of the last full synchronisation sent (absent before one)",
        if last.is_null() {
            Vec::new()
        } else {
            vec![(Vec::new(), f(&last["records"]))]
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counters_name_their_total_series_and_labels_are_escaped() {
        let mut m = Metrics::default();
        m.counter(
            "tandem_frames_dropped",
            "Frames dropped, by reason",
            vec![(labels(&[("reason", "a\"b\\c\nd")]), 3)],
        );
        m.gauge("tandem_uptime_seconds", "Seconds", vec![(Vec::new(), 1.5)]);
        let t = m.text();
        assert!(
            t.contains("# TYPE tandem_frames_dropped_total counter"),
            "{t}"
        );
        assert!(
            t.contains("# HELP tandem_frames_dropped_total Frames dropped"),
            "{t}"
        );
        assert!(
            t.contains(r#"tandem_frames_dropped_total{reason="a\"b\\c\nd"} 3"#),
            "{t}"
        );
        assert!(t.contains("# TYPE tandem_uptime_seconds gauge"), "{t}");
        assert!(t.contains("tandem_uptime_seconds 1.5"), "{t}");
    }

    #[test]
    fn ha_state_is_an_enumeration() {
        let mut m = Metrics::default();
        let h = json!({"configured": true, "state": "Active", "sub_state": "Synchronized",
                       "partner": null, "heartbeats": [], "dropped": {"bad_mac": 2}});
        ha(&mut m, &h, &Transitions::default());
        let t = m.text();
        assert!(t.contains(r#"tandem_ha_state{state="Active"} 1"#), "{t}");
        assert!(t.contains(r#"tandem_ha_state{state="Standby"} 0"#), "{t}");
        assert!(
            t.contains(r#"tandem_ha_heartbeats_dropped_total{reason="bad-mac"} 2"#),
            "{t}"
        );
        assert!(!t.contains("tandem_ha_partner_last_heard_seconds "), "{t}");
    }

    #[test]
    fn advisor_verdicts_loads_and_failures_per_server() {
        let mut m = Metrics::default();
        let rep = json!({"name": "http", "cluster": null, "port": 80, "running": true,
            "servers": [
                {"cluster": "192.0.2.100", "port": 80, "server": "192.0.2.11", "state": "up",
                 "load": 12, "failures": 0, "last_error": null},
                {"cluster": "192.0.2.100", "port": 80, "server": "192.0.2.12", "state": "down",
                 "load": null, "failures": 3, "last_error": "connection refused"}]});
        advisors(&mut m, &[rep]);
        let t = m.text();
        let l = |server: &str| {
            format!(r#"advisor="http",cluster="192.0.2.100",port="80",server="{server}""#)
        };
        for want in [
            format!(
                r#"tandem_advisor_server_state{{{},state="up"}} 1"#,
                l("192.0.2.11")
            ),
            format!(
                r#"tandem_advisor_server_state{{{},state="down"}} 0"#,
                l("192.0.2.11")
            ),
            format!(
                r#"tandem_advisor_server_state{{{},state="down"}} 1"#,
                l("192.0.2.12")
            ),
            format!(r#"tandem_advisor_server_load{{{}}} 12"#, l("192.0.2.11")),
            format!(r#"tandem_advisor_server_failures{{{}}} 3"#, l("192.0.2.12")),
        ] {
            assert!(t.contains(&want), "{want} not in\n{t}");
        }
        // A server without a trusted load has no load series.
        assert!(
            !t.contains(&format!(
                "tandem_advisor_server_load{{{}}}",
                l("192.0.2.12")
            )),
            "{t}"
        );
    }
}
