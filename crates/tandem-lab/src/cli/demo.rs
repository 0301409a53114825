//! `tandem-lab demo`: Tandem balancing real traffic in a lab of real hosts.
//!
//! One node (lb1) runs `tandemd` with `examples/demo.cfg`; three servers answer HTTP, UDP and
//! echo. The demo drives 3000 HTTP connections through the MAC port and 3000 through the NAT
//! port while it shows, live, how Tandem spreads them (read from Tandem's own `server report`),
//! then a UDP request/response round, and ends with the node's reports.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use tandem_lab::cluster::{CLUSTER_IP, ClusterLab, TandemNode, UDP_PORT, demo_config};
use tandem_lab::interrupted;

/// Arguments of `tandem-lab demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Connections per port.
    #[arg(long, default_value_t = 3000)]
    pub connections: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    println!("Tandem demo: building a lab (client, lb1, three servers) in network namespaces...");
    let lab = ClusterLab::new("demo", 1, 3).context("building the lab (run as root)")?;
    println!(
        "  client {}  lb1 {} (tandemd)  servers 192.0.2.11-13  cluster {CLUSTER_IP}",
        lab.client.ip(),
        lab.lbs[0].ip()
    );
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[])?;
    println!("  tandemd started with examples/demo.cfg; logs in {}", lab.lab.log_dir().display());
    lab.wait_serving(80, Duration::from_secs(20))?;
    println!();

    let mut ok = true;
    for (port, what) in [(80u16, "MAC forwarding (direct server return)"), (8080, "NAT forwarding (via 192.0.2.200)")] {
        if interrupted() {
            break;
        }
        println!("Port {port}: {what}, servers weighted 10/10/20");
        ok &= drive(&lab, &node, port, &args)?;
        println!();
    }

    println!("Port {UDP_PORT}: UDP request/response");
    for i in 0..6 {
        let reply = lab.client.udp_request(ClusterLab::cluster(UDP_PORT), &format!("request {i}"), Duration::from_secs(3));
        match reply {
            Ok(r) => println!("  request {i} -> {r}"),
            Err(e) => {
                ok = false;
                println!("  request {i} -> FAILED: {e:#}")
            }
        }
    }
    println!();
    println!("$ tandemctl server report {CLUSTER_IP}@@");
    print!("{}", node.ctl(&["server", "report", &format!("{CLUSTER_IP}@@")])?);
    println!();
    println!("$ tandemctl executor status");
    print!("{}", node.ctl(&["executor", "status"])?);
    println!();
    println!("{}", if ok { "Demo complete: every request was answered." } else { "Demo complete, with failures (see above)." });
    drop(node);
    lab.lab.shutdown()?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One port: load in the background, a live table of Tandem's counters in the foreground.
fn drive(lab: &ClusterLab, node: &TandemNode, port: u16, args: &DemoArgs) -> Result<bool> {
    let target = ClusterLab::cluster(port);
    let (count, concurrency) = (args.connections, args.concurrency);
    let base = totals(node, port)?;
    let load = lab
        .client
        .in_ns_background(move || tandem_lab::traffic::http_load(target, count, concurrency, Duration::from_secs(5)))?;
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut drawn = 0;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let done = load.is_finished();
        let now = totals(node, port)?;
        let rows: Vec<(String, u64)> = now
            .iter()
            .map(|(s, n)| (s.clone(), n - base.iter().find(|(b, _)| b == s).map(|(_, v)| *v).unwrap_or(0)))
            .collect();
        let sum: u64 = rows.iter().map(|(_, n)| n).sum();
        if tty || done || last_print.elapsed() >= Duration::from_secs(1) {
            let mut out = String::new();
            if tty && drawn > 0 {
                out.push_str(&format!("\x1b[{drawn}A"));
            }
            let mut lines = 0;
            for (server, n) in &rows {
                let pct = if sum > 0 { 100.0 * *n as f64 / sum as f64 } else { 0.0 };
                let bar = "#".repeat((pct / 2.0).round() as usize);
                out.push_str(&format!("\x1b[2K  {server:<12} {n:>6} conns {pct:5.1} %  {bar}\n"));
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
    let report = load.join().map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    println!(
        "  {} of {} answered in {:.2} s ({:.0} connections/s, p50 {:.2} ms, p99 {:.2} ms)",
        report.ok,
        report.requested,
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.latency.p50_ms,
        report.latency.p99_ms
    );
    let by: Vec<String> = report.by_server.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("  answers by server name: {}", by.join(", "));
    Ok(report.all_ok())
}

/// Total connections per server on `port`, from Tandem's `server report`.
fn totals(node: &TandemNode, port: u16) -> Result<Vec<(String, u64)>> {
    let rows = node.ctl_json(&["server", "report", &format!("{CLUSTER_IP}@{port}@")])?;
    Ok(rows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| (r["server"].as_str().unwrap_or("?").to_string(), r["total"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default())
}
