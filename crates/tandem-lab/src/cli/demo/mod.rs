//! `tandem-lab demo`: Tandem balancing real traffic in a lab of real hosts, and a pair keeping
//! open connections through the failure of its Active.
//!
//! One node (lb1) runs `tandemd` with `examples/demo.cfg`; three servers answer HTTP, UDP and
//! echo. The demo drives HTTP connections through the MAC port and the NAT port while it
//! shows, live, how Tandem spreads them (read from Tandem's own `server report`), then a UDP
//! request/response round. Then lb2 joins as backup, 50 long-lived echo connections
//! (`repstrategy connection`) are opened and replicated to it, lb1 is killed with `kill -9`
//! while new connections keep arriving, and the demo prints the takeover timeline, how many
//! long-lived connections carried on and their stalls, and which new connections failed.
//!
//! Every figure goes into one [`results::DemoResults`]; the summary's claims are functions of
//! it, and the exit status is non-zero when one does not hold. With `--web` each node serves
//! its status page on its lab address and a relay on 127.0.0.1 makes it reachable ([`web`]).

mod failover;
mod load;
mod results;
mod web;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use tandem_lab::cluster::{CLUSTER_IP, ClusterLab, TandemNode, UDP_PORT, demo_config};
use tandem_lab::interrupted;

use results::DemoResults;

/// Arguments of `tandem-lab demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Connections per port.
    #[arg(long, default_value_t = 3000)]
    pub connections: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Long-lived echo connections held through the failover.
    #[arg(long, default_value_t = 50)]
    pub long_lived: usize,
    /// Serve each node's status page (`executor set metrics` on its lab address) through a
    /// relay on 127.0.0.1, wait for Enter before the kill, and keep the lab until Ctrl-C.
    #[arg(long)]
    pub web: bool,
    /// First local port of the `--web` relays (lb1 on it, lb2 on the next); 0: any free port.
    #[arg(long, default_value_t = 8401, requires = "web")]
    pub web_port: u16,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    println!(
        "Tandem demo: building a lab (client, lb1, lb2, three servers) in network namespaces..."
    );
    let lab = ClusterLab::new("demo", 2, 3).context("building the lab (run as root)")?;
    println!(
        "  client {}  lb1 {} (tandemd)  servers 192.0.2.11-13  cluster {CLUSTER_IP}",
        lab.client.ip(),
        lab.lbs[0].ip()
    );
    let web = if args.web {
        Some(web::Web::start(&lab.lbs, args.web_port)?)
    } else {
        None
    };
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[])?;
    println!(
        "  tandemd started with examples/demo.cfg; logs in {}",
        lab.lab.log_dir().display()
    );
    if let Some(w) = &web {
        web::Web::enable(&node)?;
        w.print();
    }
    lab.wait_serving(80, Duration::from_secs(20))?;
    println!();

    let mut results = DemoResults::default();
    for (port, what) in [
        (80u16, "MAC forwarding (direct server return)"),
        (8080, "NAT forwarding (via 192.0.2.200)"),
    ] {
        if interrupted() {
            break;
        }
        println!("Port {port}: {what}, servers weighted 10/10/20");
        results.loads.push(load::drive(&lab, &node, port, &args)?);
        println!();
    }

    println!("Port {UDP_PORT}: UDP request/response");
    let sent = 6;
    let mut answered = 0;
    for i in 0..sent {
        let reply = lab.client.udp_request(
            ClusterLab::cluster(UDP_PORT),
            &format!("request {i}"),
            Duration::from_secs(3),
        );
        match reply {
            Ok(r) => {
                answered += 1;
                println!("  request {i} -> {r}")
            }
            Err(e) => println!("  request {i} -> FAILED: {e:#}"),
        }
    }
    results.udp = (sent, answered);
    println!("  {answered} of {sent} answered");
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
        match failover::run(&lab, node, &args, web.as_ref()) {
            Ok(f) => results.failover = Some(f),
            Err(e) => {
                println!("  the failover part failed: {e:#}");
                results.errors.push(format!("failover: {e:#}"));
            }
        }
    }
    println!();
    print!("{}", results.summary());
    if let Some(w) = &web {
        w.print();
        web::hold_until_ctrl_c();
    }
    lab.lab.shutdown()?;
    Ok(if results.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
