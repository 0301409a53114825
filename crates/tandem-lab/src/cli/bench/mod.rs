//! `tandem-lab bench`: Tandem against the Linux kernel on the same lab, side by side.
//!
//! One lab (client 192.0.2.10, servers 192.0.2.11-13, cluster 192.0.2.100), four ways to get
//! from the client to the servers, measured one after the other with the same load:
//!
//! - `mac`: Tandem MAC forwarding (port 80; UDP port 9000), direct server return;
//! - `nat`: Tandem NAT forwarding (port 8080 → 80, returnaddress 192.0.2.200; UDP 9001 → 9000);
//! - `nft`: the kernel, kube-proxy style: a host `lbk` holding the cluster address with
//!   `ip_forward=1`, nftables DNAT `numgen inc mod 3` over the servers plus masquerade, so
//!   replies come back through it (conntrack translates them back);
//! - `bridge`: the client straight to server 1's address, the ceiling of the lab itself.
//!
//! Metrics: new TCP connections per second (HTTP GET, one connection per request, time-bounded,
//! latency p50/p99), and forwarded packets per second (a UDP flood of small datagrams from many
//! source ports, counted by sinks on the servers: delivered/s and loss), each with the CPU time
//! of the lab's processes per unit of work. Tandem runs with the first `--workers` and `--rings`
//! values, then with each other value changed alone (`--full-matrix`: every combination). With
//! `--perf-stat`, `perf stat` counts tandemd's system calls per forwarded frame; with
//! `--perf-record DIR`, a machine-wide `perf record -g` is taken during every measurement and
//! sorted into buckets ([`tandem_lab::bench::profile`]).
//!
//! The servers run without TIME_WAIT by default (`--server-time-wait` keeps it), because
//! Tandem's NAT source ports collide with it (see BENCHMARKS.md). On a shared machine,
//! `--quiet-wait` waits for other work to calm down before each measurement, and the busy
//! share before each measurement is recorded either way. Results: a table on stdout, or JSON
//! with `--json` (table on stderr), or both with `--json-out FILE`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_lab::bench::{self, ConnRate, FloodReport, UdpSink, sys};
use tandem_lab::cluster::{self, CLIENT_IP, CLUSTER_IP, ClusterLab, RETURN_IP, TandemNode};
use tandem_lab::{Host, wait_until};

mod cases;
mod perf;
mod probe;
mod render;

use perf::{PerfRecord, PerfStat};
use probe::{Probe, tandemd_note};
use render::{add_ratios, best_of, machine_facts, num_cpus, render_table, utc_now};

/// UDP port of the counting sinks on the servers.
const SINK_PORT: u16 = 9000;
/// Cluster UDP port forwarded by Tandem with NAT (mapport 9000).
const NAT_UDP_PORT: u16 = 9001;
/// Cluster TCP port forwarded by Tandem with NAT (mapport 80).
const NAT_HTTP_PORT: u16 = 8080;
/// Address of the kernel load balancer host.
const LBK_IP: &str = "192.0.2.4";

/// The load of one measurement, shared by `tandem-lab bench` and `tandem-lab bench-ha`.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Seconds of each connection-rate measurement.
    #[arg(long, default_value_t = 5.0)]
    pub conn_secs: f64,
    /// Requests in flight at once (threads) in the connection-rate measurement.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of each UDP flood.
    #[arg(long, default_value_t = 3.0)]
    pub udp_secs: f64,
}

/// Arguments of `tandem-lab bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Print the results as JSON on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON results to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Cases to run, comma-separated: bridge, nft, mac, nat.
    #[arg(long, value_delimiter = ',', default_value = "bridge,nft,mac,nat")]
    cases: Vec<String>,
    /// tandemd worker counts to try, comma-separated. The first one, with the first ring, is
    /// the baseline; the others are tried with the first ring.
    #[arg(long, value_delimiter = ',', default_value = "2,1")]
    workers: Vec<usize>,
    /// tandemd ring layouts to try (v2, v3), comma-separated; the others than the first are
    /// tried with the first worker count.
    #[arg(long, value_delimiter = ',', default_value = "v2,v3")]
    rings: Vec<String>,
    /// Try every combination of --workers and --rings instead.
    #[arg(long)]
    full_matrix: bool,
    /// Experiment: on Tandem's node, drop frames to the cluster and return addresses at the
    /// netdev ingress hook (nftables), which runs after the packet sockets got their copy, so
    /// that the node's own IP stack does not also process (and drop) every forwarded frame.
    #[arg(long)]
    lb_ingress_drop: bool,
    #[command(flatten)]
    load: LoadArgs,
    /// Flooding threads.
    #[arg(long, default_value_t = 2)]
    udp_threads: usize,
    /// Source ports (sockets) per flooding thread.
    #[arg(long, default_value_t = 64)]
    udp_sockets: usize,
    /// UDP payload bytes (18 makes minimum-size 64-byte Ethernet frames with the FCS).
    #[arg(long, default_value_t = 18)]
    udp_payload: usize,
    /// Pace the flood to this many datagrams per second in total (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    udp_rate: u64,
    /// Upper bound of datagrams per flood.
    #[arg(long, default_value_t = 20_000_000)]
    udp_max: u64,
    /// Count tandemd's system calls and context switches with `perf stat` (needs perf).
    #[arg(long)]
    perf_stat: bool,
    /// Record a machine-wide `perf record -g` profile of every Tandem measurement into DIR.
    #[arg(long, value_name = "DIR")]
    perf_record: Option<PathBuf>,
    /// Before each measurement, wait up to this many seconds for the (shared) machine to be
    /// quiet: busy below --quiet-below percent of one core.
    #[arg(long, default_value_t = 0.0)]
    quiet_wait: f64,
    /// Busy threshold of --quiet-wait, percent of one core.
    #[arg(long, default_value_t = 25.0)]
    quiet_below: f64,
    /// Keep TIME_WAIT on the servers. By default the bench turns it off there
    /// (`tcp_max_tw_buckets=0`), because Tandem's NAT pool hands out source ports again from the
    /// start of its range after a restart (and wraps its range within the 60 s of TIME_WAIT
    /// above ~1000 connections/s), so new connections collide with the servers' TIME_WAIT
    /// entries of earlier ones and wait a SYN retransmission (1 s) or fail.
    #[arg(long)]
    server_time_wait: bool,
}

/// What the machine and tandemd did during one measurement.
#[derive(Clone, Debug, Default, Serialize)]
struct Usage {
    /// Machine-wide busy CPU in the half second before the measurement (other work on the
    /// shared machine), percent of one core.
    background_busy_pct: f64,
    /// Machine-wide busy CPU (both cores together: 200% = all busy).
    machine_busy_pct: f64,
    /// Of which softirq (kernel packet processing).
    machine_softirq_pct: f64,
    /// Busy CPU time of the whole machine per unit of work (per delivered datagram, or per
    /// completed connection), microseconds. Includes other users of a shared machine.
    machine_us_per_unit: f64,
    /// CPU of the lab's own processes (this process with the load generators and sinks, the
    /// servers, tandemd, and the kernel's ksoftirqd threads), percent of one core. On veths
    /// the kernel forwards, bridges and NATs in the sending task's context, so this includes
    /// the kernel's packet work, and excludes other users of the machine.
    lab_cpu_pct: f64,
    /// Lab CPU time per unit of work, microseconds.
    lab_us_per_unit: f64,
    /// tandemd's CPU (user + system, all threads), percent of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_cpu_pct: Option<f64>,
    /// Frames tandemd forwarded during the measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_frames: Option<u64>,
    /// tandemd CPU time per forwarded frame, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_us_per_frame: Option<f64>,
    /// tandemd context switches per forwarded frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_ctxsw_per_frame: Option<f64>,
    /// tandemd system calls per forwarded frame (`--perf-stat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_syscalls_per_frame: Option<f64>,
    /// Frames dropped by tandemd (its own drop counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_drops: Option<u64>,
    /// Where the time went (`--perf-record`).
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Vec<bench::profile::Breakdown>>,
}

/// The UDP measurement of one case.
#[derive(Clone, Debug, Serialize)]
struct UdpResult {
    flood: FloodReport,
    /// Datagrams the sinks counted.
    delivered: u64,
    /// `delivered / flood seconds`.
    delivered_pps: f64,
    /// `1 - delivered / sent`, percent.
    loss_pct: f64,
    /// Datagrams the servers' kernels dropped for a full sink buffer (RcvbufErrors).
    sink_buffer_drops: u64,
    /// Frames the load balancer's interface received (Tandem and nft cases).
    #[serde(skip_serializing_if = "Option::is_none")]
    lb_rx_frames: Option<u64>,
    /// Frames tandemd's rings handed it (its `frames_received`); `lb_rx_frames` minus this is
    /// roughly what its rings dropped for lack of room.
    #[serde(skip_serializing_if = "Option::is_none")]
    tandemd_received: Option<u64>,
    /// Packets dropped at the kernel's per-CPU input backlogs (machine-wide).
    backlog_drops: u64,
    usage: Usage,
}

#[derive(Clone, Debug, Serialize)]
struct ConnResult {
    #[serde(flatten)]
    rate: ConnRate,
    usage: Usage,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
struct Row {
    /// mac, nat, nft or bridge.
    case: String,
    /// Human label.
    label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ring: Option<String>,
    conn: Option<ConnResult>,
    udp: Option<UdpResult>,
    /// Ratios against the nft and bridge rows (Tandem rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ratios: Option<Ratios>,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Ratios {
    conn_vs_nft: Option<f64>,
    pps_vs_nft: Option<f64>,
    conn_vs_bridge: Option<f64>,
    pps_vs_bridge: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    kernel: String,
    loadavg_at_start: String,
    /// Busy CPU of the machine in the second before the bench started (other users of the
    /// shared machine), percent of one core.
    background_busy_pct: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    command: String,
    machine: Machine,
    settings: serde_json::Value,
    rows: Vec<Row>,
    /// Best Tandem configuration per case, by connection rate and by packet rate.
    best: serde_json::Value,
    elapsed_s: f64,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let started = Instant::now();
    for c in &args.cases {
        if !["bridge", "nft", "mac", "nat"].contains(&c.as_str()) {
            bail!("unknown case {c:?} (expected bridge, nft, mac, nat)");
        }
    }
    for r in &args.rings {
        if !["v2", "v3"].contains(&r.as_str()) {
            bail!("unknown ring {r:?} (expected v2 or v3)");
        }
    }
    if args.rings.is_empty() {
        bail!("--rings needs at least one ring layout");
    }
    if args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--workers needs counts of at least 1");
    }
    if let Some(dir) = &args.perf_record {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let want = |c: &str| args.cases.iter().any(|x| x == c);
    let machine = machine_facts();
    progress(format!(
        "{} CPUs ({}), kernel {}, load {}, background busy {:.0}%",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.loadavg_at_start,
        machine.background_busy_pct
    ));
    if machine.background_busy_pct > 20.0 {
        progress("warning: the machine is busy with other work; figures will be low and noisy");
    }

    progress("building the lab (client, lb1, lbk, s1-s3)");
    let cl = ClusterLab::new("bench", 1, 3)?;
    let lbk = cl.lab.add_host("lbk", &[&format!("{LBK_IP}/24")])?;
    // The client opens tens of thousands of connections: give it the whole port range.
    cl.client
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    if !args.server_time_wait {
        for s in &cl.servers {
            s.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
        }
    }
    let sinks: Vec<UdpSink> = cl
        .servers
        .iter()
        .map(|s| UdpSink::start_in(s, SINK_PORT))
        .collect::<Result<_>>()?;
    let servers: Vec<u32> = cl.server_procs.iter().map(|p| p.pid()).collect();
    let mut pids = vec![std::process::id()];
    pids.extend(servers.iter().copied());
    pids.extend(sys::ksoftirqd_pids());
    let ctx = Ctx {
        args: &args,
        cl: &cl,
        sinks: &sinks,
        pids,
        servers,
    };

    let mut rows = Vec::new();
    progress(format!(
        "  (lab ready at {:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    if want("bridge") {
        let t = Instant::now();
        rows.push(ctx.bridge_case()?);
        progress(format!("  ({:.0} s)", t.elapsed().as_secs_f64()));
    }
    if want("nft") {
        let t = Instant::now();
        rows.push(ctx.nft_case(&lbk)?);
        progress(format!("  ({:.0} s)", t.elapsed().as_secs_f64()));
    }
    if want("mac") || want("nat") {
        for (workers, ring) in variants(&args) {
            let t = Instant::now();
            rows.extend(ctx.tandem_case(workers, &ring, want("mac"), want("nat"))?);
            progress(format!("  ({:.0} s)", t.elapsed().as_secs_f64()));
        }
    }
    drop(sinks);

    add_ratios(&mut rows);
    let best = best_of(&rows);
    let report = Report {
        date: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        settings: serde_json::json!({
            "conn_secs": args.load.conn_secs,
            "concurrency": args.load.concurrency,
            "udp_secs": args.load.udp_secs,
            "udp_threads": args.udp_threads,
            "udp_sockets_per_thread": args.udp_sockets,
            "udp_payload": args.udp_payload,
            "udp_rate": args.udp_rate,
            "udp_max": args.udp_max,
            "server_time_wait": args.server_time_wait,
            "lb_ingress_drop": args.lb_ingress_drop,
            "client": CLIENT_IP,
            "cluster": CLUSTER_IP,
            "servers": [cluster::server_ip(1), cluster::server_ip(2), cluster::server_ip(3)],
        }),
        rows,
        best,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let table = render_table(&report);
    let json = serde_json::to_string_pretty(&report)?;
    if args.json {
        eprint!("{table}");
        println!("{json}");
    } else {
        print!("{table}");
    }
    std::io::stdout().flush()?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    cl.lab.shutdown()?;
    Ok(ExitCode::SUCCESS)
}

/// The tandemd configurations to run: (workers, ring).
fn variants(args: &BenchArgs) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if args.full_matrix {
        for &w in &args.workers {
            for r in &args.rings {
                out.push((w, r.clone()));
            }
        }
        return out;
    }
    let (w0, r0) = (args.workers[0], args.rings[0].clone());
    out.push((w0, r0.clone()));
    out.extend(args.workers[1..].iter().map(|&w| (w, r0.clone())));
    out.extend(args.rings[1..].iter().map(|r| (w0, r.clone())));
    out
}

struct Ctx<'a> {
    args: &'a BenchArgs,
    cl: &'a ClusterLab,
    sinks: &'a [UdpSink],
    /// The lab's processes (without tandemd), for CPU accounting.
    pids: Vec<u32>,
    /// The server processes.
    servers: Vec<u32>,
}
