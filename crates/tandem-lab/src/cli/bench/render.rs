//! Medians and spreads over the rounds, ratios against nftables, the Markdown tables (for
//! BENCHMARKS.md as they are), and the facts of the machine.

use super::*;

fn stat(values: impl IntoIterator<Item = f64>) -> Option<Stat> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stat {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

fn div(a: Option<Stat>, b: Option<Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

fn summary_of(rounds: &[Round]) -> Summary {
    let ka = || rounds.iter().filter_map(|r| r.keepalive.as_ref());
    let conn = || rounds.iter().filter_map(|r| r.conn.as_ref());
    let udp = || rounds.iter().filter_map(|r| r.udp.as_ref());
    Summary {
        keepalive_per_sec: stat(ka().map(|c| c.rate.per_sec)),
        keepalive_p99_ms: stat(
            ka().filter(|c| c.rate.ok > 0)
                .map(|c| c.rate.latency.p99_ms),
        ),
        conn_per_sec: stat(conn().map(|c| c.rate.per_sec)),
        conn_p99_ms: stat(
            conn()
                .filter(|c| c.rate.ok > 0)
                .map(|c| c.rate.latency.p99_ms),
        ),
        udp_delivered_pps: stat(udp().map(|u| u.delivered_pps)),
        tandemd_us_per_frame: stat(udp().filter_map(|u| u.usage.tandemd_us_per_frame)),
        ..Summary::default()
    }
}

/// Fills every row's summary, the ratios against nftables of the same family, and the
/// replication ratios.
pub(super) fn summarize(report: &mut Report) {
    for r in report.rows.iter_mut() {
        r.summary = summary_of(&r.rounds);
    }
    let nft: Vec<(&'static str, Summary)> = report
        .rows
        .iter()
        .filter(|r| r.case == "nft" && r.not_run.is_none())
        .map(|r| (r.family, r.summary.clone()))
        .collect();
    for r in report.rows.iter_mut().filter(|r| r.case != "nft") {
        if let Some((_, n)) = nft.iter().find(|(f, _)| *f == r.family) {
            let s = &mut r.summary;
            s.keepalive_vs_nft = div(s.keepalive_per_sec, n.keepalive_per_sec);
            s.conn_vs_nft = div(s.conn_per_sec, n.conn_per_sec);
            s.udp_vs_nft = div(s.udp_delivered_pps, n.udp_delivered_pps);
        }
    }
    if let Some(rep) = report.replication.as_mut() {
        for r in rep.rows.iter_mut() {
            r.summary = summary_of(&r.rounds);
        }
        let get = |case: &str| {
            rep.rows
                .iter()
                .find(|r| r.case == case)
                .map(|r| r.summary.clone())
        };
        if let (Some(none), Some(both)) = (get("none"), get("both")) {
            rep.keepalive_ratio = div(both.keepalive_per_sec, none.keepalive_per_sec);
            rep.conn_ratio = div(both.conn_per_sec, none.conn_per_sec);
            rep.udp_ratio = div(both.udp_delivered_pps, none.udp_delivered_pps);
        }
    }
}

/// `12 345 (12 001–12 502)`: the median with the spread, thousands grouped.
fn cell(s: Option<Stat>, prec: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.min == s.max => num(s.median, prec),
        Some(s) => format!(
            "{} ({}–{})",
            num(s.median, prec),
            num(s.min, prec),
            num(s.max, prec)
        ),
    }
}

/// A number with a thin space between thousands (as BENCHMARKS.md writes them).
fn num(x: f64, prec: usize) -> String {
    let text = format!("{x:.prec$}");
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None => ("", int),
    };
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && digits.len() > 4 {
            grouped.push('\u{202f}');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.2}×"))
}

/// The tables, in Markdown, with the command line, the date and the conditions.
pub(super) fn render_markdown(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let st = &report.settings;
    s.push_str(&format!(
        "\n`{}`\n\n{}, {} CPUs ({}), kernel {}, load at start {}, background busy {:.0}% of one core. \\\n\
         {} round(s) of every measurement, median (min–max); keep-alive and new connections: {} s, \\\n\
         {} connections in flight; UDP: {} s, {}-byte payloads, {} threads × {} source ports{}. \\\n\
         tandemd: --workers {} --ring {}. Whole bench: {:.0} s.\n\n",
        report.command,
        report.date,
        m.cpus,
        m.cpu_model,
        m.kernel,
        m.loadavg_at_start,
        m.background_busy_pct,
        st["rounds"],
        st["conn_secs"],
        st["concurrency"],
        st["udp_secs"],
        st["udp_payload"],
        st["udp_threads"],
        st["udp_sockets_per_thread"],
        match st["udp_rate"].as_u64() {
            Some(r) if r > 0 => format!(", paced to {r}/s"),
            _ => ", unpaced".into(),
        },
        st["workers"],
        st["ring"].as_str().unwrap_or("-"),
        report.elapsed_s,
    ));
    s.push_str(
        "| family | case | keep-alive req/s | ÷nft | new conn/s | ÷nft | UDP pkt/s delivered | ÷nft | p99 keep-alive ms | p99 new conn ms | tandemd µs/frame |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.rows {
        row_line(&mut s, r);
    }
    if let Some(rep) = &report.replication {
        s.push_str(&format!(
            "\nReplication cost: the pair lb1 + lb2 (IPv4, MAC, packetio {}), `repstrategy none` and `both` on the measured ports, alternating each round.\n\n",
            if rep.packetio.is_empty() { "–" } else { &rep.packetio }
        ));
        s.push_str(
            "| repstrategy | keep-alive req/s | new conn/s | UDP pkt/s delivered | p99 keep-alive ms | p99 new conn ms | tandemd µs/frame |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        if let Some(why) = &rep.not_run {
            s.push_str(&format!(
                "| – | not run: {} | | | | | |\n",
                why.replace('|', "/")
            ));
        }
        for r in &rep.rows {
            let x = &r.summary;
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.case,
                cell(x.keepalive_per_sec, 0),
                cell(x.conn_per_sec, 0),
                cell(x.udp_delivered_pps, 0),
                cell(x.keepalive_p99_ms, 2),
                cell(x.conn_p99_ms, 2),
                cell(x.tandemd_us_per_frame, 2),
            ));
        }
        if rep.not_run.is_none() {
            s.push_str(&format!(
                "| both ÷ none | {} | {} | {} | | | |\n",
                ratio(rep.keepalive_ratio),
                ratio(rep.conn_ratio),
                ratio(rep.udp_ratio)
            ));
        }
    }
    aims(&mut s, report);
    s.push_str(
        "\n÷nft: the median over nftables' median of the same family (nftables is the baseline of \
         both MAC and NAT). tandemd µs/frame: tandemd's CPU (utime + stime) during the UDP flood \
         ÷ the frames its counters say it forwarded.\n",
    );
    s
}

fn row_line(s: &mut String, r: &Row) {
    let family = if r.family == "ipv4" { "IPv4" } else { "IPv6" };
    if let Some(why) = &r.not_run {
        s.push_str(&format!(
            "| {family} | {} | not run: {} | | | | | | | | |\n",
            r.label,
            why.replace('|', "/")
        ));
        return;
    }
    let x = &r.summary;
    s.push_str(&format!(
        "| {family} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        r.label,
        cell(x.keepalive_per_sec, 0),
        ratio(x.keepalive_vs_nft),
        cell(x.conn_per_sec, 0),
        ratio(x.conn_vs_nft),
        cell(x.udp_delivered_pps, 0),
        ratio(x.udp_vs_nft),
        cell(x.keepalive_p99_ms, 2),
        cell(x.conn_p99_ms, 2),
        cell(x.tandemd_us_per_frame, 2),
    ));
}

/// Issue 10's benchmark aims against each Tandem row that ran.
fn aims(s: &mut String, report: &Report) {
    let tandem: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| (r.case == "afpacket" || r.case == "afxdp") && r.not_run.is_none())
        .collect();
    if tandem.is_empty() && report.replication.is_none() {
        return;
    }
    s.push_str("\nAims (issue 10), per Tandem row that ran:\n\n| row | aim | measured | met |\n|---|---|---:|---|\n");
    let yes = |ok: bool| if ok { "yes" } else { "**no**" };
    for r in tandem {
        let nat = r.mode.as_deref() == Some("nat");
        let name = format!(
            "{} {}",
            if r.family == "ipv4" { "IPv4" } else { "IPv6" },
            r.label
        );
        let x = &r.summary;
        let checks = [
            ("UDP pkt/s ÷ nftables", 2.0, x.udp_vs_nft),
            (
                "new conn/s ÷ nftables",
                if nat { 1.2 } else { 1.5 },
                x.conn_vs_nft,
            ),
            (
                "keep-alive req/s ÷ nftables",
                if nat { 1.1 } else { 1.3 },
                x.keepalive_vs_nft,
            ),
        ];
        for (what, aim, got) in checks {
            if let Some(v) = got {
                s.push_str(&format!(
                    "| {name} | {what} ≥ {aim:.1}× | {v:.2}× | {} |\n",
                    yes(v >= aim)
                ));
            }
        }
        if let Some(us) = x.tandemd_us_per_frame {
            s.push_str(&format!(
                "| {name} | tandemd ≤ 1.0 µs CPU per forwarded frame | {:.2} µs | {} |\n",
                us.median,
                yes(us.median <= 1.0)
            ));
        }
    }
    if let Some(rep) = &report.replication {
        for (what, v) in [
            ("keep-alive", rep.keepalive_ratio),
            ("new conn", rep.conn_ratio),
            ("UDP", rep.udp_ratio),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(
                    "| replication ({}) | {what}: both ÷ none ≥ 0.95× | {v:.2}× | {} |\n",
                    rep.packetio,
                    yes(v >= 0.95)
                ));
            }
        }
    }
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
