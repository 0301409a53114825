//! Ratios, the best configuration, the table, and the facts of the machine.

use super::*;

pub(super) fn add_ratios(rows: &mut [Row]) {
    let find = |case: &str| -> (Option<f64>, Option<f64>) {
        rows.iter()
            .find(|r| r.case == case)
            .map_or((None, None), |r| {
                (
                    r.conn.as_ref().map(|c| c.rate.per_sec),
                    r.udp.as_ref().map(|u| u.delivered_pps),
                )
            })
    };
    let (nft_conn, nft_pps) = find("nft");
    let (br_conn, br_pps) = find("bridge");
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for r in rows
        .iter_mut()
        .filter(|r| r.case == "mac" || r.case == "nat")
    {
        let conn = r.conn.as_ref().map(|c| c.rate.per_sec);
        let pps = r.udp.as_ref().map(|u| u.delivered_pps);
        r.ratios = Some(Ratios {
            conn_vs_nft: div(conn, nft_conn),
            pps_vs_nft: div(pps, nft_pps),
            conn_vs_bridge: div(conn, br_conn),
            pps_vs_bridge: div(pps, br_pps),
        });
    }
}

pub(super) fn best_of(rows: &[Row]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for case in ["mac", "nat"] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.case == case).collect();
        let pick = |key: &dyn Fn(&Row) -> f64| {
            of.iter()
                .max_by(|a, b| key(a).total_cmp(&key(b)))
                .map(|r| serde_json::json!({"workers": r.workers, "ring": r.ring, "value": key(r)}))
        };
        if !of.is_empty() {
            out.insert(
                case.into(),
                serde_json::json!({
                    "conn_per_sec": pick(&|r: &Row| r.conn.as_ref().map_or(0.0, |c| c.rate.per_sec)),
                    "delivered_pps": pick(&|r: &Row| r.udp.as_ref().map_or(0.0, |u| u.delivered_pps)),
                }),
            );
        }
    }
    serde_json::Value::Object(out)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.2}"))
}

pub(super) fn render_table(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    s.push_str(&format!(
        "\nTandem benchmark, {} — {} CPUs ({}), kernel {}, load at start {}, background busy {:.0}%\n",
        report.date, m.cpus, m.cpu_model, m.kernel, m.loadavg_at_start, m.background_busy_pct
    ));
    let st = &report.settings;
    s.push_str(&format!(
        "conn: HTTP GET, new connection each, {} in flight, {} s; udp: {}-byte payloads, {} threads x {} source ports, {} s{}\n\n",
        st["concurrency"],
        st["conn_secs"],
        st["udp_payload"],
        st["udp_threads"],
        st["udp_sockets_per_thread"],
        st["udp_secs"],
        match st["udp_rate"].as_u64() {
            Some(r) if r > 0 => format!(", paced to {r}/s"),
            _ => ", unpaced".into(),
        }
    ));
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    s.push_str("New TCP connections (HTTP GET, one connection per request)\n");
    s.push_str(&format!(
        "{:<34} {:>8} {:>7} {:>7} {:>5} {:>9} {:>8} | {:>6} {:>6}\n",
        "case", "conn/s", "p50 ms", "p99 ms", "fail", "µs CPU/c", "tandemd%", "÷nft", "÷bridge"
    ));
    s.push_str(&format!("{}\n", "-".repeat(100)));
    for r in &report.rows {
        let Some(c) = &r.conn else { continue };
        let rt = r.ratios.clone().unwrap_or_default();
        s.push_str(&format!(
            "{:<34} {:>8.0} {:>7.2} {:>7.2} {:>5} {:>9.0} {:>8} | {:>6} {:>6}\n",
            r.label,
            c.rate.per_sec,
            c.rate.latency.p50_ms,
            c.rate.latency.p99_ms,
            c.rate.failed,
            c.usage.lab_us_per_unit,
            opt(c.usage.tandemd_cpu_pct, 0),
            ratio(rt.conn_vs_nft),
            ratio(rt.conn_vs_bridge),
        ));
    }
    s.push_str("\nForwarded packets (UDP flood, counted at the servers)\n");
    s.push_str(&format!(
        "{:<34} {:>9} {:>9} {:>6} {:>9} {:>8} {:>8} | {:>6} {:>6}\n",
        "case", "sent/s", "deliv/s", "loss%", "µs CPU/p", "tandemd%", "td µs/fr", "÷nft", "÷bridge"
    ));
    s.push_str(&format!("{}\n", "-".repeat(104)));
    for r in &report.rows {
        let Some(u) = &r.udp else { continue };
        let rt = r.ratios.clone().unwrap_or_default();
        s.push_str(&format!(
            "{:<34} {:>9.0} {:>9.0} {:>6.1} {:>9.2} {:>8} {:>8} | {:>6} {:>6}\n",
            r.label,
            u.flood.offered_pps,
            u.delivered_pps,
            u.loss_pct,
            u.usage.lab_us_per_unit,
            opt(u.usage.tandemd_cpu_pct, 0),
            opt(u.usage.tandemd_us_per_frame, 2),
            ratio(rt.pps_vs_nft),
            ratio(rt.pps_vs_bridge),
        ));
    }
    s.push_str(
        "\nµs CPU/c, µs CPU/p: CPU time of the lab's processes (load generator, servers, tandemd, and\n\
         the kernel's packet work done in their context) per connection or delivered packet.\n\
         tandemd%: its CPU, percent of one core. td µs/fr: tandemd CPU per forwarded frame.\n\
         ÷nft, ÷bridge: Tandem's rate over the nftables and bridge rates.\n",
    );
    s.push('\n');
    if let Some(best) = report.best.as_object() {
        for (case, b) in best {
            let show = |k: &str| {
                let v = &b[k];
                format!(
                    "{} workers {} ({:.0})",
                    v["workers"],
                    v["ring"].as_str().unwrap_or("-"),
                    v["value"].as_f64().unwrap_or(0.0)
                )
            };
            s.push_str(&format!(
                "best Tandem {case}: by conn/s {}; by delivered pkt/s {}\n",
                show("conn_per_sec"),
                show("delivered_pps")
            ));
        }
    }
    s.push_str(&format!("whole bench: {:.0} s\n", report.elapsed_s));
    s
}

pub(super) fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(super) fn machine_facts() -> Machine {
    let (b0, t0) = sys::machine_cpu();
    std::thread::sleep(Duration::from_secs(1));
    let (b1, t1) = sys::machine_cpu();
    let cpus = num_cpus();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        cpus,
        cpu_model,
        kernel,
        loadavg_at_start: loadavg,
        background_busy_pct: 100.0 * (b1 - b0) / ((t1 - t0).max(1e-9) / cpus as f64),
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
