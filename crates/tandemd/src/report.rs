//! Reports: `executor status|report`, `cluster|port|server report|status`, rendered as readable
//! tables or as JSON from the same data.

mod executor;
pub mod health;

use crate::afpacket::RingVersion;
use crate::netdev::Interface;
use anyhow::{Result, bail};
use executor::{executor, executor_text};
use serde::Serialize;
use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;
use tandem_core::config::{Applied, Command, Config, Resolved};
use tandem_core::forward::{Engine, ServerCountersView};
use tandem_core::health::WeightSource;

/// What a report can see.
pub struct View<'a> {
    pub config: &'a Config,
    /// The effective weights (advisors, manager, SASP).
    pub overlay: &'a tandem_core::health::Overlay,
    pub engine: &'a Engine,
    pub interface: Option<&'a Interface>,
    pub workers: usize,
    /// The packet I/O backend running and why (`None`: no data plane).
    pub packetio: Option<&'a str>,
    /// AF_XDP: the XDP program's and the sockets' counters.
    pub afxdp: Option<crate::afxdp::AfxdpStats>,
    pub ring: RingVersion,
    pub uptime: Duration,
    /// Where the web server (metrics, status page) listens; None: off.
    pub web: Option<std::net::SocketAddr>,
}

/// Renders a query command: (text, JSON data).
pub fn render(v: &View, cmd: &Command) -> Result<(String, serde_json::Value)> {
    // The grammar resolves the targets (wildcards, `+` lists, objects that must exist).
    let resolved = match v.config.query(cmd).map_err(|e| anyhow::anyhow!("{e}"))? {
        Applied::Query(r) | Applied::Changed(r) => r,
    };
    match (cmd, resolved) {
        (Command::ExecutorStatus | Command::ExecutorReport, _) => json(executor(v), executor_text),
        (_, Resolved::Clusters(list)) => json(clusters(v, &list), clusters_text),
        (_, Resolved::Ports(list)) => json(ports(v, &list), ports_text),
        (_, Resolved::Servers(list)) => json(servers(v, &list), servers_text),
        (other, _) => bail!("'{other}' is not available in this build"),
    }
}

fn json<T: Serialize>(
    data: T,
    text: impl FnOnce(&T) -> String,
) -> Result<(String, serde_json::Value)> {
    let t = text(&data);
    Ok((t, serde_json::to_value(&data)?))
}

fn dots(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "{label} {} {value}",
        ".".repeat(28usize.saturating_sub(label.len()))
    );
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

#[derive(Serialize)]
struct ClusterRow {
    cluster: IpAddr,
    /// The operator's `label` (`null` when none).
    label: Option<String>,
    ports: Vec<u16>,
    #[serde(flatten)]
    traffic: ServerCountersView,
}

fn traffic(v: &View, cluster: IpAddr, port: u16, server: IpAddr) -> ServerCountersView {
    v.engine
        .counters
        .lookup(cluster, port, server)
        .map(|c| c.read())
        .unwrap_or_default()
}

fn clusters(v: &View, list: &[IpAddr]) -> Vec<ClusterRow> {
    list.iter()
        .filter_map(|c| v.config.clusters.get(c).map(|cl| (*c, cl)))
        .map(|(c, cl)| {
            let mut sum = ServerCountersView::default();
            for (p, port) in &cl.ports {
                for s in port.servers.keys() {
                    sum += traffic(v, c, *p, *s);
                }
            }
            ClusterRow {
                cluster: c,
                label: cl.label.clone(),
                ports: cl.ports.keys().copied().collect(),
                traffic: sum,
            }
        })
        .collect()
}

/// The four traffic columns every report table ends with.
fn traffic_cells(t: &ServerCountersView) -> [String; 4] {
    [
        t.packets.to_string(),
        t.bytes.to_string(),
        t.active.to_string(),
        t.total.to_string(),
    ]
}

fn clusters_text(rows: &Vec<ClusterRow>) -> String {
    let mut t = Table::new(&[
        "Cluster", "Ports", "Packets", "Bytes", "Active", "Total", "Label",
    ]);
    for r in rows {
        let ports = r
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("+");
        t.row(
            vec![
                r.cluster.to_string(),
                if ports.is_empty() { "-".into() } else { ports },
            ]
            .into_iter()
            .chain(traffic_cells(&r.traffic))
            .chain([label_cell(&r.label)])
            .collect(),
        );
    }
    t.render()
}

/// The last column of the cluster and server tables: the label, or `-`.
fn label_cell(label: &Option<String>) -> String {
    label.clone().unwrap_or_else(|| "-".into())
}

#[derive(Serialize)]
struct PortRow {
    cluster: IpAddr,
    port: u16,
    method: String,
    protocol: String,
    selectionalgorithm: String,
    stickytime: u32,
    staletimeout: u32,
    weightbound: u32,
    reset: bool,
    repstrategy: String,
    servers: usize,
    /// Connection records of the port in the table now (none under `affinity`).
    connection_records: u64,
    /// Affinity records of the port now (none under `connection` and `hash`).
    affinity_records: u64,
    /// Settings that have no effect under the port's selectionalgorithm.
    notes: Vec<String>,
    #[serde(flatten)]
    traffic: ServerCountersView,
}

fn keyword<T: Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn ports(v: &View, list: &[(IpAddr, u16)]) -> Vec<PortRow> {
    let mut rows = Vec::new();
    for &(c, p) in list {
        let Some(port) = v.config.clusters.get(&c).and_then(|cl| cl.ports.get(&p)) else {
            continue;
        };
        let mut sum = ServerCountersView::default();
        for s in port.servers.keys() {
            sum += traffic(v, c, p, *s);
        }
        let records = v.engine.port_records(c, p);
        rows.push(PortRow {
            cluster: c,
            port: p,
            method: keyword(&port.method),
            protocol: port.porttype_keyword().to_string(),
            selectionalgorithm: keyword(&port.selection),
            stickytime: port.stickytime,
            staletimeout: port.staletimeout,
            weightbound: port.weightbound,
            reset: port.reset,
            repstrategy: keyword(&port.repstrategy),
            servers: port.servers.len(),
            connection_records: records.0,
            affinity_records: records.1,
            notes: tandem_core::select::selection_notes(port),
            traffic: sum,
        });
    }
    rows
}

fn ports_text(rows: &Vec<PortRow>) -> String {
    let mut t = Table::new(&[
        "Cluster",
        "Port",
        "Method",
        "Proto",
        "Selection",
        "Sticky",
        "Stale",
        "Bound",
        "Servers",
        "ConnRecs",
        "AffRecs",
        "Packets",
        "Bytes",
        "Active",
        "Total",
    ]);
    for r in rows {
        t.row(
            vec![
                r.cluster.to_string(),
                r.port.to_string(),
                r.method.clone(),
                r.protocol.clone(),
                r.selectionalgorithm.clone(),
                r.stickytime.to_string(),
                r.staletimeout.to_string(),
                r.weightbound.to_string(),
                r.servers.to_string(),
                r.connection_records.to_string(),
                r.affinity_records.to_string(),
            ]
            .into_iter()
            .chain(traffic_cells(&r.traffic))
            .collect(),
        );
    }
    let mut text = t.render();
    for r in rows {
        for n in &r.notes {
            let _ = writeln!(text, "note: port {}@{}: {n}", r.cluster, r.port);
        }
    }
    text
}

/// Warnings for a changing command: the settings of the ports it added or changed that have
/// no effect under their selectionalgorithm (`config` is the configuration after it).
pub fn selection_warnings(config: &Config, applied: &Applied) -> Vec<String> {
    let Applied::Changed(Resolved::Ports(list)) = applied else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (c, p) in list {
        if let Some(port) = config.clusters.get(c).and_then(|cl| cl.ports.get(p)) {
            for n in tandem_core::select::selection_notes(port) {
                out.push(format!("port {c}@{p}: {n}"));
            }
        }
    }
    out
}

#[derive(Serialize)]
struct ServerRow {
    cluster: IpAddr,
    port: u16,
    server: IpAddr,
    /// The operator's `label` (`null` when none).
    label: Option<String>,
    /// The effective weight (what the data plane uses).
    weight: u32,
    /// The rule that decided it (config, manager, sasp, advisor-down, ...).
    weight_source: &'static str,
    /// The configured weight.
    configured_weight: u32,
    state: &'static str,
    returnaddress: Option<IpAddr>,
    mapport: Option<u16>,
    router: Option<IpAddr>,
    #[serde(flatten)]
    traffic: ServerCountersView,
}

fn servers(v: &View, list: &[(IpAddr, u16, IpAddr)]) -> Vec<ServerRow> {
    list.iter()
        .filter_map(|&(c, p, s)| {
            let port = v.config.clusters.get(&c)?.ports.get(&p)?;
            let srv = port.servers.get(&s)?;
            let eff = v.overlay.effective(c, port, srv);
            Some(ServerRow {
                cluster: c,
                port: p,
                server: s,
                label: srv.label.clone(),
                weight: eff.weight,
                weight_source: eff.source.name(),
                configured_weight: srv.weight,
                state: if srv.down {
                    "down"
                } else if eff.source == WeightSource::AdvisorDown {
                    "down (advisor)"
                } else if srv.quiesced {
                    "quiesced"
                } else if eff.weight == 0 {
                    "weight 0"
                } else {
                    "up"
                },
                returnaddress: srv.returnaddress,
                mapport: srv.mapport,
                router: srv.router,
                traffic: traffic(v, c, p, s),
            })
        })
        .collect()
}

fn servers_text(rows: &Vec<ServerRow>) -> String {
    let mut t = Table::new(&[
        "Cluster", "Port", "Server", "Weight", "Source", "State", "Packets", "Bytes", "Active",
        "Total", "Label",
    ]);
    for r in rows {
        t.row(
            vec![
                r.cluster.to_string(),
                r.port.to_string(),
                r.server.to_string(),
                r.weight.to_string(),
                r.weight_source.to_string(),
                r.state.to_string(),
            ]
            .into_iter()
            .chain(traffic_cells(&r.traffic))
            .chain([label_cell(&r.label)])
            .collect(),
        );
    }
    t.render()
}

/// A plain text table with aligned columns.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.len());
                }
            }
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(&self.head, &mut out);
        let _ = writeln!(
            out,
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  ")
        );
        for r in &self.rows {
            line(r, &mut out);
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

/// `highavailability status`, in the Dispatcher's layout, with the real liveness of each
/// heartbeat pair (not PH57722's frozen neighbour state) and the recent transitions.
pub fn ha_status(
    st: &tandem_core::ha::HaStatus,
    events: &[(u64, String)],
) -> Result<(String, serde_json::Value)> {
    let mut s = String::from("High Availability Status:\n-------------------------\n");
    let kw = |x: Option<String>| x.unwrap_or_else(|| "-".into());
    dots(&mut s, "Role", kw(st.role.map(|r| r.keyword().to_string())));
    dots(
        &mut s,
        "Recovery strategy",
        kw(st.recovery.map(|r| r.keyword().to_string())),
    );
    dots(&mut s, "State", st.state);
    dots(&mut s, "Sub-state", st.sub_state);
    dots(&mut s, "Port", kw(st.port.map(|p| p.to_string())));
    dots(&mut s, "Version", st.version);
    dots(
        &mut s,
        "HA timeout / interval",
        format!("{} ms / {} ms", st.hatimeout_ms, st.interval_ms),
    );
    match &st.partner {
        Some(p) => {
            dots(&mut s, "Partner", kw(p.address.map(|a| a.to_string())));
            dots(
                &mut s,
                "Partner state",
                format!("{} / {} ({:?} contact)", p.state, p.sub_state, p.contact),
            );
            dots(
                &mut s,
                "Partner version",
                format!(
                    "{} ({})",
                    p.version,
                    if p.compatible {
                        "compatible"
                    } else {
                        "INCOMPATIBLE: no replication"
                    }
                ),
            );
            dots(
                &mut s,
                "Partner last heard",
                format!("{} ms ago", p.last_heard_ms),
            );
            dots(
                &mut s,
                "Partner reach",
                format!("{}/{}", p.reach_count, p.reach_total),
            );
        }
        None => dots(&mut s, "Partner", "not heard"),
    }
    if let Some(t) = &st.takeover {
        dots(&mut s, "Takeover", t);
    }
    s.push_str("\nHeartbeat Status:\n-----------------\n");
    dots(&mut s, "Count", st.heartbeats.len());
    for h in &st.heartbeats {
        dots(
            &mut s,
            "Source/destination",
            format!(
                "{}/{} {:?} (last heard {}, received {}, lost {}, sent {})",
                h.source,
                h.destination,
                h.status,
                h.last_heard_ms
                    .map(|m| format!("{m} ms ago"))
                    .unwrap_or_else(|| "never".into()),
                h.received,
                h.lost,
                h.sent
            ),
        );
    }
    s.push_str("\nReachability Status:\n--------------------\n");
    dots(
        &mut s,
        "Count",
        format!("{} (reaching {})", st.reach.len(), st.reach_count),
    );
    for r in &st.reach {
        let state = match r.reachable {
            Some(true) => "reachable",
            Some(false) => "unreachable",
            None => "not probed yet",
        };
        dots(&mut s, "Address", format!("{} {state}", r.address));
    }
    let d = &st.dropped;
    let dropped = d.truncated
        + d.bad_magic
        + d.unsupported_format
        + d.bad_mac
        + d.missing_mac
        + d.malformed
        + d.replayed
        + d.own
        + d.unknown_pair;
    s.push_str("\nDropped heartbeats:\n-------------------\n");
    dots(&mut s, "Total", dropped);
    if dropped > 0 {
        let v = serde_json::to_value(d)?;
        if let Some(map) = v.as_object() {
            for (k, n) in map {
                if n.as_u64().unwrap_or(0) > 0 {
                    dots(&mut s, &format!("  {k}"), n);
                }
            }
        }
    }
    for w in &st.warnings {
        let _ = writeln!(s, "WARNING: {w}");
    }
    s.push_str("\nRecent transitions (newest first):\n");
    for t in &st.transitions {
        let _ = writeln!(
            s,
            "  {:>8} ms ago  {} -> {}  ({})",
            t.age_ms, t.from, t.to, t.reason
        );
    }
    let mut data = serde_json::to_value(st)?;
    data["events"] = serde_json::to_value(events)?;
    Ok((s, data))
}

/// `highavailability maintenance`: how to upgrade the pair without dropping connections,
/// computed from live data as IBM's maintenance procedure describes.
pub fn maintenance(config: &Config, engine: &Engine) -> Result<(String, serde_json::Value)> {
    use tandem_core::config::RepStrategy;
    #[derive(Serialize)]
    struct Row {
        cluster: IpAddr,
        port: u16,
        repstrategy: String,
        active: u64,
        stickytime: u32,
        staletimeout: u32,
        counts: u32,
    }
    let mut rows = Vec::new();
    for (c, cl) in &config.clusters {
        for (p, port) in &cl.ports {
            if port.repstrategy == RepStrategy::None {
                continue;
            }
            let active: u64 = port
                .servers
                .keys()
                .map(|s| {
                    engine
                        .counters
                        .lookup(*c, *p, *s)
                        .map(|x| x.read().active)
                        .unwrap_or(0)
                })
                .sum();
            // Under `affinity` there are no connection records: its clients are its affinity
            // records, and only the stickytime counts.
            let affinity_only =
                port.selection == tandem_core::config::Selection::Affinity && port.stickytime > 0;
            let active = if affinity_only {
                active + engine.port_records(*c, *p).1
            } else {
                active
            };
            let mut counts = 0;
            if matches!(port.repstrategy, RepStrategy::Affinity | RepStrategy::Both)
                && port.stickytime > 0
            {
                counts = counts.max(port.stickytime);
            }
            if matches!(
                port.repstrategy,
                RepStrategy::Connection | RepStrategy::Both
            ) && !affinity_only
            {
                counts = counts.max(port.staletimeout);
            }
            rows.push(Row {
                cluster: *c,
                port: *p,
                repstrategy: keyword(&port.repstrategy),
                active,
                stickytime: port.stickytime,
                staletimeout: port.staletimeout,
                counts,
            });
        }
    }
    let largest = rows
        .iter()
        .filter(|r| r.active > 0)
        .map(|r| r.counts)
        .max()
        .unwrap_or(0);
    let wait = largest as f64 / 2.0;
    let mut t = Table::new(&[
        "Cluster",
        "Port",
        "Repstrategy",
        "Active",
        "Stickytime",
        "Staletimeout",
    ]);
    for r in &rows {
        t.row(vec![
            r.cluster.to_string(),
            r.port.to_string(),
            r.repstrategy.clone(),
            r.active.to_string(),
            r.stickytime.to_string(),
            r.staletimeout.to_string(),
        ]);
    }
    let mut s = String::from("Replicating ports:\n");
    s.push_str(&t.render());
    let _ = writeln!(
        s,
        "\nIdeal wait time: {wait} s (half the largest stickytime/staletimeout in use on ports with open connections)\n"
    );
    s.push_str(
        "Steps to upgrade the pair without dropping connections (each safe on a live pair):\n",
    );
    s.push_str("  1. On the Standby, then on the Active: highavailability backup set recovery manual (in place: no takeover, no gratuitous ARP, the node never passes through Idle).\n");
    s.push_str("  2. Stop the Standby (executor stop, or stop tandemd), upgrade it, start it with the same configuration and key; wait until highavailability status shows Synchronized on both nodes (the Standby then holds every record: a rejoining node gets the full table).\n");
    let _ = writeln!(
        s,
        "  3. Only if the new version is incompatible (different V.R: nothing is replicated between the two): wait the ideal wait time ({wait} s) so that connections opened before drain."
    );
    s.push_str("  4. On the Active: highavailability maintenance start. It hands Active over to the upgraded node with its records, and never takes it back (highavailability takeover on the Standby does the same).\n");
    s.push_str("  5. Upgrade the other node the same way; then highavailability maintenance stop on it, and highavailability backup set recovery auto on both if you use auto recovery.\n");
    Ok((
        s,
        serde_json::json!({"ports": rows, "ideal_wait_seconds": wait}),
    ))
}

/// The replication part of `highavailability status`.
pub fn replication_text(v: &serde_json::Value) -> String {
    let mut s = String::from("\nReplication:\n------------\n");
    let n = |p: &str| v.pointer(p).and_then(|x| x.as_u64()).unwrap_or(0);
    dots(
        &mut s,
        "Records sent",
        format!(
            "{} in {} batches ({} retransmitted)",
            n("/sender/records_sent"),
            n("/sender/batches_sent"),
            n("/sender/retransmits")
        ),
    );
    dots(&mut s, "Records queued", n("/sender/queued"));
    dots(
        &mut s,
        "Records received",
        format!("{} ({} installed)", n("/receiver/records"), n("/installed")),
    );
    let dropped = v.pointer("/receiver/dropped").map(|d| {
        [
            "garbage",
            "stale_session",
            "duplicate_batches",
            "out_of_window",
            "malformed",
            "unknown",
        ]
        .iter()
        .map(|k| d[*k].as_u64().unwrap_or(0))
        .sum::<u64>()
            + d["invalid"]
                .as_object()
                .map(|o| o.values().filter_map(|x| x.as_u64()).sum::<u64>())
                .unwrap_or(0)
    });
    dots(
        &mut s,
        "Records dropped",
        format!(
            "{} (invalid or garbage; {} datagrams refused, {} queue overflows)",
            dropped.unwrap_or(0),
            n("/datagrams_dropped"),
            n("/queue_dropped")
        ),
    );
    match v.pointer("/sender/last_full_sync") {
        Some(f) if !f.is_null() => dots(
            &mut s,
            "Last full sync sent",
            format!(
                "{} records in {} ms, {} ms ago (epoch {})",
                f["records"],
                f["duration_ms"],
                n("/last_sync_sent_ms_ago"),
                f["epoch"]
            ),
        ),
        _ => dots(&mut s, "Last full sync sent", "none"),
    }
    match v.pointer("/receiver/last_full_sync") {
        Some(f) if !f.is_null() => dots(
            &mut s,
            "Last full sync received",
            format!(
                "{} records, {} ms ago",
                f["records"],
                n("/last_sync_received_ms_ago")
            ),
        ),
        _ => dots(&mut s, "Last full sync received", "none"),
    }
    dots(
        &mut s,
        "Records held",
        format!(
            "{} connection, {} affinity",
            n("/connection_records"),
            n("/affinity_records")
        ),
    );
    s
}
