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
    let lab = ClusterLab::new("demo", 2, 3).context("building the lab (run as root)")?;
    println!(
        "  client {}  lb1 {} (tandemd)  servers 192.0.2.11-13  cluster {CLUSTER_IP}",
        lab.client.ip(),
        lab.lbs[0].ip()
    );
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[])?;
    println!(
        "  tandemd started with examples/demo.cfg; logs in {}",
        lab.lab.log_dir().display()
    );
    lab.wait_serving(80, Duration::from_secs(20))?;
    println!();

    let mut ok = true;
    for (port, what) in [
        (80u16, "MAC forwarding (direct server return)"),
        (8080, "NAT forwarding (via 192.0.2.200)"),
    ] {
        if interrupted() {
            break;
        }
        println!("Port {port}: {what}, servers weighted 10/10/20");
        ok &= drive(&lab, &node, port, &args)?;
        println!();
    }

    println!("Port {UDP_PORT}: UDP request/response");
    for i in 0..6 {
        let reply = lab.client.udp_request(
            ClusterLab::cluster(UDP_PORT),
            &format!("request {i}"),
            Duration::from_secs(3),
        );
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
    print!(
        "{}",
        node.ctl(&["server", "report", &format!("{CLUSTER_IP}@@")])?
    );
    println!();
    println!("$ tandemctl executor status");
    print!("{}", node.ctl(&["executor", "status"])?);
    println!();
    if !interrupted() {
        ok &= failover(&lab, node)?;
    }
    println!();
    println!(
        "{}",
        if ok {
            "Demo complete: every request was answered."
        } else {
            "Demo complete, with failures (see above)."
        }
    );
    lab.lab.shutdown()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One port: load in the background, a live table of Tandem's counters in the foreground.
fn drive(lab: &ClusterLab, node: &TandemNode, port: u16, args: &DemoArgs) -> Result<bool> {
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
    Ok(report.all_ok())
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

fn ha_state(node: &TandemNode) -> String {
    node.ctl_json(&["highavailability", "status"])
        .map(|v| {
            format!(
                "{}/{}",
                v["state"].as_str().unwrap_or("?"),
                v["sub_state"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|_| "down".into())
}

fn wait_for(node: &TandemNode, want: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while ha_state(node) != want {
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} did not reach {want} (is {})",
                node.host.name,
                ha_state(node)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The second node joins as backup (the seed procedure through tandemctl); then the active is
/// killed in the middle of traffic and the takeover timeline is printed.
fn failover(lab: &ClusterLab, mut lb1: TandemNode) -> Result<bool> {
    println!(
        "High availability: lb2 (192.0.2.3) joins as backup; heartbeats on UDP 20001, reach target 192.0.2.10"
    );
    let scripts = lab.lab.log_dir().join("scripts");
    std::fs::create_dir_all(&scripts)?;
    // tandemd runs scripts only from a directory writable by root alone.
    std::fs::set_permissions(
        &scripts,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let log = scripts.join("ran.log");
    for name in ["goActive", "goStandby", "highavailChange"] {
        let path = scripts.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$(date +%s.%N) $(basename $0) $1 $TANDEM_STATE\" >> {}\n",
                log.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[])?;
    lb2.ctl(&[
        "highavailability",
        "scripts",
        scripts.to_str().unwrap_or_default(),
    ])?;
    for (node, src, dst, role) in [
        (&lb1, "192.0.2.2", "192.0.2.3", "primary"),
        (&lb2, "192.0.2.3", "192.0.2.2", "backup"),
    ] {
        for cmd in [
            vec!["highavailability", "heartbeat", "add", src, dst],
            vec!["highavailability", "reach", "add", "192.0.2.10"],
            vec!["highavailability", "backup", "add", role, "manual", "20001"],
        ] {
            println!("  {}$ tandemctl {}", node.host.name, cmd.join(" "));
            node.ctl(&cmd)?;
        }
    }
    wait_for(&lb1, "Active/Synchronized", Duration::from_secs(15))?;
    wait_for(&lb2, "Standby/Synchronized", Duration::from_secs(15))?;
    println!("  lb1 is {}, lb2 is {}", ha_state(&lb1), ha_state(&lb2));
    let _ = std::fs::remove_file(&log);

    // Traffic: a new connection every 20 ms, recording when each succeeded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let traffic = lab.client.in_ns_background(move || {
        let mut samples = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = unix_now();
            let r =
                tandem_lab::traffic::http_get(ClusterLab::cluster(80), Duration::from_millis(250));
            samples.push((t, r.ok()));
            std::thread::sleep(Duration::from_millis(20));
        }
        samples
    })?;
    std::thread::sleep(Duration::from_secs(1));
    println!("  traffic running; killing lb1 (kill -9) now");
    let killed = unix_now();
    lb1.kill()?;
    wait_for(&lb2, "Active/Not Synchronized", Duration::from_secs(10))
        .or_else(|_| wait_for(&lb2, "Active/Synchronized", Duration::from_secs(1)))?;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = traffic
        .join()
        .map_err(|_| anyhow::anyhow!("traffic thread panicked"))?;

    let status = lb2.ctl_json(&["highavailability", "status"])?;
    let asked = unix_now();
    let mut timeline: Vec<(f64, String)> =
        vec![(0.0, "lb1 killed with kill -9 (heartbeats stop)".into())];
    if let Some(last_ok) = samples.iter().rfind(|(t, ok)| *t < killed && ok.is_some()) {
        timeline.push((
            last_ok.0 - killed,
            format!(
                "last connection before the failure answered by {}",
                last_ok.1.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(tr) = status["transitions"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["to"] == "Active"))
    {
        let at = asked - tr["age_ms"].as_f64().unwrap_or(0.0) / 1000.0 - killed;
        timeline.push((
            at,
            format!(
                "lb2 detects the failure: {} -> Active ({})",
                tr["from"].as_str().unwrap_or("?"),
                tr["reason"].as_str().unwrap_or("")
            ),
        ));
        timeline.push((at, "lb2 forwards, answers ARP and sends gratuitous ARPs for 192.0.2.100 and 192.0.2.200 (same step)".into()));
    }
    std::thread::sleep(Duration::from_millis(300));
    for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
        let mut w = line.split_whitespace();
        if let (Some(t), Some(name)) = (w.next().and_then(|t| t.parse::<f64>().ok()), w.next()) {
            let arg = w.next().unwrap_or("");
            if t >= killed {
                timeline.push((t - killed, format!("script {name} {arg} ran")));
            }
        }
    }
    let first_fail = samples
        .iter()
        .find(|(t, ok)| *t >= killed && ok.is_none())
        .map(|s| s.0);
    if let Some(ff) = first_fail
        && let Some(back) = samples.iter().find(|(t, ok)| *t > ff && ok.is_some())
    {
        timeline.push((
            back.0 - killed,
            format!(
                "traffic resumed: new connection answered by {} through lb2",
                back.1.clone().unwrap_or_default()
            ),
        ));
    } else if first_fail.is_none() {
        timeline.push((0.0, "no client connection failed".into()));
    }
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!();
    println!("Takeover timeline (seconds after the kill; hatimeout 2 s):");
    for (t, what) in &timeline {
        println!("  {t:+7.3} s  {what}");
    }
    let failed = samples
        .iter()
        .filter(|(t, ok)| *t >= killed && ok.is_none())
        .count();
    let after = samples.iter().filter(|(t, _)| *t >= killed).count();
    println!(
        "  {failed} of {after} connection attempts after the kill failed; lb2 is now {}",
        ha_state(&lb2)
    );
    println!();
    println!("$ tandemctl highavailability status   (on lb2)");
    print!("{}", lb2.ctl(&["highavailability", "status"])?);
    Ok(samples.iter().rev().take(5).all(|(_, ok)| ok.is_some()))
}
