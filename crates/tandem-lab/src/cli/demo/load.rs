//! The HTTP rounds of the demo: load in the background, a live table of Tandem's own
//! counters (`server report`) in the foreground.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use tandem_lab::cluster::{CLUSTER_IP, ClusterLab, TandemNode};

use super::DemoArgs;
use super::results::LoadResult;

/// One port: load in the background, a live table of Tandem's counters in the foreground.
pub fn drive(
    lab: &ClusterLab,
    node: &TandemNode,
    port: u16,
    args: &DemoArgs,
) -> Result<LoadResult> {
    let target = ClusterLab::cluster(port);
    let (count, concurrency) = (args.connections, args.concurrency);
    let base = totals(node, port)?;
    let load = lab.client.in_ns_background(move || {
        tandem_lab::traffic::http_load(target, count, concurrency, Duration::from_secs(5))
    })?;
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut drawn = 0;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let done = load.is_finished();
        let now = totals(node, port)?;
        let rows: Vec<(String, u64)> = now
            .iter()
            .map(|(s, n)| {
                (
                    s.clone(),
                    n - base
                        .iter()
                        .find(|(b, _)| b == s)
                        .map(|(_, v)| *v)
                        .unwrap_or(0),
                )
            })
            .collect();
        let sum: u64 = rows.iter().map(|(_, n)| n).sum();
        if tty || done || last_print.elapsed() >= Duration::from_secs(1) {
            let mut out = String::new();
            if tty && drawn > 0 {
                out.push_str(&format!("\x1b[{drawn}A"));
            }
            let mut lines = 0;
            for (server, n) in &rows {
                let pct = if sum > 0 {
                    100.0 * *n as f64 / sum as f64
                } else {
                    0.0
                };
                let bar = "#".repeat((pct / 2.0).round() as usize);
                out.push_str(&format!(
                    "\x1b[2K  {server:<12} {n:>6} conns {pct:5.1} %  {bar}\n"
                ));
                lines += 1;
            }
            out.push_str(&format!(
                "\x1b[2K  progress: {sum}/{count} connections, {:.1} s\n",
                started.elapsed().as_secs_f64()
            ));
            lines += 1;
            if !tty {
                out = out.replace("\x1b[2K", "");
            }
            print!("{out}");
            std::io::stdout().flush().ok();
            drawn = lines;
            last_print = Instant::now();
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    println!(
        "  {} of {} answered in {:.2} s ({:.0} connections/s, p50 {:.2} ms, p99 {:.2} ms)",
        report.ok,
        report.requested,
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.latency.p50_ms,
        report.latency.p99_ms
    );
    let by: Vec<String> = report
        .by_server
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!("  answers by server name: {}", by.join(", "));
    Ok(LoadResult {
        port,
        requested: report.requested,
        answered: report.ok,
    })
}

/// Total connections per server on `port`, from Tandem's `server report`.
fn totals(node: &TandemNode, port: u16) -> Result<Vec<(String, u64)>> {
    let rows = node.ctl_json(&["server", "report", &format!("{CLUSTER_IP}@{port}@")])?;
    Ok(rows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["server"].as_str().unwrap_or("?").to_string(),
                        r["total"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
