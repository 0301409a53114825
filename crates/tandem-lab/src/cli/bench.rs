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

/// UDP port of the counting sinks on the servers.
const SINK_PORT: u16 = 9000;
/// Cluster UDP port forwarded by Tandem with NAT (mapport 9000).
const NAT_UDP_PORT: u16 = 9001;
/// Cluster TCP port forwarded by Tandem with NAT (mapport 80).
const NAT_HTTP_PORT: u16 = 8080;
/// Address of the kernel load balancer host.
const LBK_IP: &str = "192.0.2.4";

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
    /// Seconds of each connection-rate measurement.
    #[arg(long, default_value_t = 5.0)]
    conn_secs: f64,
    /// Requests in flight at once (threads) in the connection-rate measurement.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of each UDP flood.
    #[arg(long, default_value_t = 3.0)]
    udp_secs: f64,
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
            "conn_secs": args.conn_secs,
            "concurrency": args.concurrency,
            "udp_secs": args.udp_secs,
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

/// Before/after readings around one measurement.
struct Probe {
    perf_record: Option<PerfRecord>,
    pids: Vec<u32>,
    lab_cpu: Duration,
    machine: (f64, f64),
    softirq: f64,
    tandemd: Option<TandemProbe>,
}

struct TandemProbe {
    pid: u32,
    cpu: Duration,
    ctxsw: (u64, u64),
    received: u64,
    frames: u64,
    drops: u64,
    perf_stat: Option<PerfStat>,
}

/// tandemd's (frames received, frames forwarded, drops).
fn executor_counters(node: &TandemNode) -> (u64, u64, u64) {
    match node.ctl_json(&["executor", "report"]) {
        Ok(v) => {
            let d = if v.get("data").is_some() {
                &v["data"]
            } else {
                &v
            };
            let n = |k: &str| d[k].as_u64().unwrap_or(0);
            (
                n("frames_received"),
                n("frames_forwarded"),
                n("drops_total"),
            )
        }
        Err(_) => (0, 0, 0),
    }
}

impl Probe {
    fn start(
        node: Option<&TandemNode>,
        mut pids: Vec<u32>,
        servers: &[u32],
        args: &BenchArgs,
        tag: &str,
    ) -> Probe {
        let tandemd_pid = node.and_then(|n| n.process.as_ref()).map(|p| p.pid());
        pids.extend(tandemd_pid);
        let perf_record = args.perf_record.as_deref().and_then(|d| {
            let owners = bench::profile::LabPids {
                bench: std::process::id(),
                servers: servers.to_vec(),
                tandemd: tandemd_pid,
            };
            PerfRecord::start(d, tag, owners)
        });
        let tandemd = node.and_then(|n| {
            let pid = n.process.as_ref()?.pid();
            let (received, frames, drops) = executor_counters(n);
            Some(TandemProbe {
                pid,
                received,
                cpu: sys::process_cpu(pid).unwrap_or_default(),
                ctxsw: sys::context_switches(pid),
                frames,
                drops,
                perf_stat: args.perf_stat.then(|| PerfStat::start(pid)).flatten(),
            })
        });
        Probe {
            perf_record,
            lab_cpu: sys::processes_cpu(&pids),
            pids,
            machine: sys::machine_cpu(),
            softirq: sys::machine_softirq(),
            tandemd,
        }
    }

    /// The usage (with `units` of work done), and frames tandemd received meanwhile.
    fn finish(self, node: Option<&TandemNode>, units: u64) -> (Usage, Option<u64>) {
        let (busy1, total1) = sys::machine_cpu();
        let softirq1 = sys::machine_softirq();
        // Stop recording now; sort the profile once everything else is read.
        let recorded = self.perf_record.map(PerfRecord::stop);
        let lab = sys::processes_cpu(&self.pids)
            .saturating_sub(self.lab_cpu)
            .as_secs_f64();
        let cpus = num_cpus() as f64;
        let span = (total1 - self.machine.1).max(1e-9); // CPU-seconds of all cores
        let wall = span / cpus;
        let mut usage = Usage {
            machine_busy_pct: 100.0 * (busy1 - self.machine.0) / span * cpus,
            machine_softirq_pct: 100.0 * (softirq1 - self.softirq) / span * cpus,
            machine_us_per_unit: if units > 0 {
                (busy1 - self.machine.0) * 1e6 / units as f64
            } else {
                0.0
            },
            lab_cpu_pct: 100.0 * lab / wall.max(1e-9),
            lab_us_per_unit: if units > 0 {
                lab * 1e6 / units as f64
            } else {
                0.0
            },
            ..Usage::default()
        };
        let mut received = None;
        if let (Some(t), Some(node)) = (self.tandemd, node) {
            let syscalls = t.perf_stat.and_then(|p| p.stop());
            let cpu = sys::process_cpu(t.pid)
                .unwrap_or_default()
                .saturating_sub(t.cpu);
            let ctxsw = sys::context_switches(t.pid);
            let (rx, frames, drops) = executor_counters(node);
            received = Some(rx.saturating_sub(t.received));
            let frames = frames.saturating_sub(t.frames);
            let per = |x: f64| (frames > 0).then(|| x / frames as f64);
            usage.tandemd_cpu_pct = Some(100.0 * cpu.as_secs_f64() / wall.max(1e-9));
            usage.tandemd_frames = Some(frames);
            usage.tandemd_us_per_frame = per(cpu.as_secs_f64() * 1e6);
            usage.tandemd_ctxsw_per_frame =
                per(((ctxsw.0 + ctxsw.1).saturating_sub(t.ctxsw.0 + t.ctxsw.1)) as f64);
            usage.tandemd_syscalls_per_frame = syscalls.and_then(|s| per(s as f64));
            usage.tandemd_drops = Some(drops.saturating_sub(t.drops));
        }
        usage.profile = recorded.and_then(PerfRecord::analyze);
        (usage, received)
    }
}

impl Ctx<'_> {
    /// Waits (as allowed by --quiet-wait) for the machine to be quiet; returns its busy %.
    fn quiet(&self) -> f64 {
        // Let the tail of the previous measurement (queues, exiting threads) settle first.
        std::thread::sleep(Duration::from_millis(300));
        let busy = sys::wait_quiet(
            self.args.quiet_below,
            Duration::from_secs_f64(self.args.quiet_wait),
        );
        if busy > self.args.quiet_below {
            progress(format!(
                "  (machine busy {busy:.0}% with other work before this measurement)"
            ));
        }
        busy
    }

    fn conn(&self, target: SocketAddr, node: Option<&TandemNode>, tag: &str) -> Result<ConnResult> {
        let client = &self.cl.client;
        let timeout = Duration::from_secs(2);
        // Warm-up (neighbour caches, server threads), not measured.
        client.in_ns(|| {
            bench::conn_rate(
                target,
                self.args.concurrency,
                Duration::from_millis(500),
                timeout,
            )
        })?;
        let background = self.quiet();
        let probe = Probe::start(
            node,
            self.pids.clone(),
            &self.servers,
            self.args,
            &format!("{tag}-conn"),
        );
        let rate = client.in_ns(|| {
            bench::conn_rate(
                target,
                self.args.concurrency,
                Duration::from_secs_f64(self.args.conn_secs),
                timeout,
            )
        })?;
        let (mut usage, _) = probe.finish(node, rate.ok);
        usage.background_busy_pct = background;
        progress(format!(
            "  {tag}: {:.0} conn/s ({} ok, {} failed) p50 {:.2} ms p99 {:.2} ms; lab CPU {:.0}% ({:.0} µs/conn), machine {:.0}%{}",
            rate.per_sec,
            rate.ok,
            rate.failed,
            rate.latency.p50_ms,
            rate.latency.p99_ms,
            usage.lab_cpu_pct,
            usage.lab_us_per_unit,
            usage.machine_busy_pct,
            tandemd_note(&usage)
        ));
        for (e, n) in rate.errors.iter().take(3) {
            progress(format!("    {n} x {e}"));
        }
        Ok(ConnResult { rate, usage })
    }

    fn udp(
        &self,
        target: SocketAddr,
        node: Option<&TandemNode>,
        lb: Option<&Host>,
        tag: &str,
    ) -> Result<UdpResult> {
        let a = self.args;
        let count = || self.sinks.iter().map(UdpSink::count).sum::<u64>();
        let sink_drops = || -> u64 {
            self.cl
                .servers
                .iter()
                .map(|s| sys::udp_counters(s).map(|c| c.1).unwrap_or(0))
                .sum()
        };
        let background = self.quiet();
        let before = count();
        let drops_before = sink_drops();
        let backlog_before = sys::backlog_drops();
        let lb_before = lb.map(|h| sys::link_stats(h, "eth0")).transpose()?;
        let probe = Probe::start(
            node,
            self.pids.clone(),
            &self.servers,
            a,
            &format!("{tag}-udp"),
        );
        let flood = self.cl.client.in_ns(|| {
            bench::udp_flood(
                target,
                a.udp_threads,
                a.udp_sockets,
                a.udp_payload,
                Duration::from_secs_f64(a.udp_secs),
                a.udp_max,
                a.udp_rate,
            )
        })??;
        // Let the queues drain before counting.
        let mut last = count();
        let settle = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = count();
            if now == last || settle.elapsed() > Duration::from_secs(2) {
                break;
            }
            last = now;
        }
        let delivered = count().saturating_sub(before);
        let (mut usage, tandemd_received) = probe.finish(node, delivered);
        usage.background_busy_pct = background;
        let lb_rx = match (lb, lb_before) {
            (Some(h), Some(b)) => Some((sys::link_stats(h, "eth0")? - b).rx_packets),
            _ => None,
        };
        let result = UdpResult {
            delivered,
            delivered_pps: delivered as f64 / flood.elapsed_s.max(1e-9),
            loss_pct: if flood.sent > 0 {
                100.0 * (1.0 - delivered as f64 / flood.sent as f64)
            } else {
                0.0
            },
            sink_buffer_drops: sink_drops().saturating_sub(drops_before),
            lb_rx_frames: lb_rx,
            tandemd_received,
            backlog_drops: sys::backlog_drops().saturating_sub(backlog_before),
            flood,
            usage,
        };
        let lb_note = match (result.lb_rx_frames, result.tandemd_received) {
            (Some(rx), Some(got)) => format!(", lb1 eth0 got {rx}, tandemd's rings {got}"),
            (Some(rx), None) => format!(", lb eth0 got {rx}"),
            _ => String::new(),
        };
        progress(format!(
            "  {tag}: sent {:.0}/s, delivered {:.0}/s, loss {:.1}% (sink buffer drops {}, backlog drops {}{lb_note}); lab CPU {:.0}% ({:.2} µs/delivered), machine {:.0}%{}",
            result.flood.offered_pps,
            result.delivered_pps,
            result.loss_pct,
            result.sink_buffer_drops,
            result.backlog_drops,
            result.usage.lab_cpu_pct,
            result.usage.lab_us_per_unit,
            result.usage.machine_busy_pct,
            tandemd_note(&result.usage)
        ));
        Ok(result)
    }

    fn bridge_case(&self) -> Result<Row> {
        progress("case bridge: client straight to s1 (192.0.2.11)");
        let s1 = cluster::server_ip(1);
        let conn = self.conn(
            format!("{s1}:{}", cluster::HTTP_PORT).parse()?,
            None,
            "bridge",
        )?;
        let udp = self.udp(format!("{s1}:{SINK_PORT}").parse()?, None, None, "bridge")?;
        Ok(Row {
            case: "bridge".into(),
            label: "bridge: client → s1 directly".into(),
            workers: None,
            ring: None,
            conn: Some(conn),
            udp: Some(udp),
            ratios: None,
        })
    }

    fn nft_case(&self, lbk: &Host) -> Result<Row> {
        progress("case nft: kernel forwarding in lbk, nftables DNAT numgen inc mod 3 + masquerade");
        let servers: Vec<String> = (1..=3).map(cluster::server_ip).collect();
        let map = |port: Option<u16>| {
            servers
                .iter()
                .enumerate()
                .map(|(i, s)| match port {
                    Some(p) => format!("{i} : {s} . {p}"),
                    None => format!("{i} : {s}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rules = format!(
            "table ip tandembench {{\n\
             \tchain prerouting {{\n\
             \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
             \t\tip daddr {CLUSTER_IP} tcp dport {http} dnat to numgen inc mod 3 map {{ {m} }}\n\
             \t\tip daddr {CLUSTER_IP} tcp dport {nat} dnat ip addr . port to numgen inc mod 3 map {{ {mp} }}\n\
             \t\tip daddr {CLUSTER_IP} udp dport {SINK_PORT} dnat to numgen inc mod 3 map {{ {m} }}\n\
             \t}}\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tct status dnat ip daddr {{ {list} }} masquerade\n\
             \t}}\n\
             }}\n",
            http = cluster::HTTP_PORT,
            nat = NAT_HTTP_PORT,
            m = map(None),
            mp = map(Some(cluster::HTTP_PORT)),
            list = servers.join(", "),
        );
        let path = self.cl.lab.log_dir().join("lbk.nft");
        std::fs::write(&path, &rules)?;
        lbk.sysctl("net.ipv4.ip_forward", "1")?;
        lbk.run(["nft", "-f", &path.display().to_string()])
            .context("loading the nftables rules (is nft installed?)")?;
        lbk.add_address(&format!("{CLUSTER_IP}/32"))?;
        self.flush_neighbours()?;
        let result = (|| -> Result<Row> {
            self.cl
                .wait_serving(cluster::HTTP_PORT, Duration::from_secs(10))?;
            let conn = self.conn(ClusterLab::cluster(cluster::HTTP_PORT), None, "nft")?;
            let udp = self.udp(ClusterLab::cluster(SINK_PORT), None, Some(lbk), "nft")?;
            let ct = lbk
                .exec(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])
                .ok();
            if let Some(ct) = ct {
                progress(format!(
                    "  nft: conntrack entries now {}",
                    String::from_utf8_lossy(&ct.stdout).trim()
                ));
            }
            Ok(Row {
                case: "nft".into(),
                label: "nftables: DNAT numgen + masquerade".into(),
                workers: None,
                ring: None,
                conn: Some(conn),
                udp: Some(udp),
                ratios: None,
            })
        })();
        // Hand the cluster address back.
        let _ = lbk.del_address(&format!("{CLUSTER_IP}/32"));
        let _ = lbk.run(["nft", "delete", "table", "ip", "tandembench"]);
        let _ = lbk.sysctl("net.ipv4.ip_forward", "0");
        self.flush_neighbours()?;
        result
    }

    fn tandem_case(&self, workers: usize, ring: &str, mac: bool, nat: bool) -> Result<Vec<Row>> {
        progress(format!(
            "case tandem: tandemd --workers {workers} --ring {ring}"
        ));
        let config = bench_config();
        let w = workers.to_string();
        let lb = &self.cl.lbs[0];
        if self.args.lb_ingress_drop {
            let rules = format!(
                "table netdev tandembench {{\n\
                 \tchain ingress {{\n\
                 \t\ttype filter hook ingress device eth0 priority 0; policy accept;\n\
                 \t\tip daddr {{ {CLUSTER_IP}, {RETURN_IP} }} drop\n\
                 \t}}\n\
                 }}\n"
            );
            let path = self.cl.lab.log_dir().join("lb1-ingress.nft");
            std::fs::write(&path, rules)?;
            let _ = lb.run(["nft", "delete", "table", "netdev", "tandembench"]);
            lb.run(["nft", "-f", &path.display().to_string()])
                .context("loading the netdev ingress drop on lb1")?;
        }
        let mut node = TandemNode::start(
            &self.cl.lab,
            lb,
            &config,
            &["--workers", &w, "--ring", ring],
        )?;
        self.flush_neighbours()?;
        let result = (|| -> Result<Vec<Row>> {
            self.cl
                .wait_serving(cluster::HTTP_PORT, Duration::from_secs(10))?;
            self.cl
                .wait_serving(NAT_HTTP_PORT, Duration::from_secs(10))?;
            let mut rows = Vec::new();
            let cases = [
                (mac, "mac", cluster::HTTP_PORT, SINK_PORT, "Tandem MAC"),
                (nat, "nat", NAT_HTTP_PORT, NAT_UDP_PORT, "Tandem NAT"),
            ];
            for (enabled, case, http, udp, name) in cases {
                if !enabled {
                    continue;
                }
                let tag = format!("{case}-w{workers}-{ring}");
                let conn = self.conn(ClusterLab::cluster(http), Some(&node), &tag)?;
                let udp = self.udp(ClusterLab::cluster(udp), Some(&node), Some(lb), &tag)?;
                rows.push(Row {
                    case: case.into(),
                    label: format!(
                        "{name}, {workers} worker{}, {ring}",
                        if workers == 1 { "" } else { "s" }
                    ),
                    workers: Some(workers),
                    ring: Some(ring.to_string()),
                    conn: Some(conn),
                    udp: Some(udp),
                    ratios: None,
                });
            }
            Ok(rows)
        })();
        if result.is_err() {
            eprintln!("----- tandemd log -----\n{}", node.log());
        }
        node.kill()?;
        result
    }

    /// Forgets who holds the cluster address (it moves between lb1 and lbk).
    fn flush_neighbours(&self) -> Result<()> {
        for h in std::iter::once(&self.cl.client).chain(self.cl.servers.iter()) {
            h.run(["ip", "neigh", "flush", "all"])?;
        }
        Ok(())
    }
}

/// The demo configuration plus the bench's UDP ports: 9000 by MAC, 9001 by NAT (mapport 9000).
fn bench_config() -> String {
    let servers = (1..=3)
        .map(cluster::server_ip)
        .collect::<Vec<_>>()
        .join("+");
    format!(
        "{}\n# tandem-lab bench: UDP sinks on the servers, port {SINK_PORT}.\n\
         port add {CLUSTER_IP}@{SINK_PORT} protocol udp method mac\n\
         server add {CLUSTER_IP}@{SINK_PORT}@{servers}\n\
         port add {CLUSTER_IP}@{NAT_UDP_PORT} protocol udp method nat\n\
         server add {CLUSTER_IP}@{NAT_UDP_PORT}@{servers} returnaddress {RETURN_IP} mapport {SINK_PORT}\n",
        cluster::demo_config(1)
    )
}

fn tandemd_note(u: &Usage) -> String {
    match (u.tandemd_cpu_pct, u.tandemd_frames) {
        (Some(cpu), Some(frames)) => {
            let mut s = format!(", tandemd {cpu:.0}% CPU, {frames} frames");
            if let Some(us) = u.tandemd_us_per_frame {
                s.push_str(&format!(", {us:.2} µs/frame"));
            }
            if let Some(c) = u.tandemd_ctxsw_per_frame {
                s.push_str(&format!(", {c:.2} ctxsw/frame"));
            }
            if let Some(c) = u.tandemd_syscalls_per_frame {
                s.push_str(&format!(", {c:.2} syscalls/frame"));
            }
            if let Some(d) = u.tandemd_drops.filter(|d| *d > 0) {
                s.push_str(&format!(", {d} drops"));
            }
            s
        }
        _ => String::new(),
    }
}

fn add_ratios(rows: &mut [Row]) {
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

fn best_of(rows: &[Row]) -> serde_json::Value {
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

fn render_table(report: &Report) -> String {
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

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn machine_facts() -> Machine {
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
fn utc_now() -> String {
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

/// `perf stat` of tandemd's system calls, running while a measurement runs.
struct PerfStat {
    child: std::process::Child,
    out: PathBuf,
}

impl PerfStat {
    fn start(pid: u32) -> Option<PerfStat> {
        let out = std::env::temp_dir().join(format!(
            "tandem-bench-perfstat-{}-{pid}.txt",
            std::process::id()
        ));
        let child = std::process::Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "raw_syscalls:sys_enter",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| progress(format!("perf stat unavailable: {e}")))
            .ok()?;
        // Give perf a moment to attach.
        std::thread::sleep(Duration::from_millis(300));
        Some(PerfStat { child, out })
    }

    /// Stops perf and returns the system calls it counted.
    fn stop(mut self) -> Option<u64> {
        interrupt(&mut self.child);
        let text = std::fs::read_to_string(&self.out).ok()?;
        let _ = std::fs::remove_file(&self.out);
        text.lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
    }
}

/// Machine-wide `perf record -g` while a measurement runs.
struct PerfRecord {
    child: std::process::Child,
    out: PathBuf,
    pids: bench::profile::LabPids,
}

impl PerfRecord {
    fn start(dir: &Path, tag: &str, pids: bench::profile::LabPids) -> Option<PerfRecord> {
        let out = dir.join(format!("{tag}.perf.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-a", "-g", "-F", "997", "-o"])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| progress(format!("perf record unavailable: {e}")))
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(PerfRecord { child, out, pids })
    }

    /// Stops perf (it writes its data file).
    fn stop(mut self) -> Self {
        interrupt(&mut self.child);
        self
    }

    /// Sorts the profile into buckets, writes them next to the data, prints them.
    fn analyze(self) -> Option<Vec<bench::profile::Breakdown>> {
        let b = bench::profile::breakdown(&self.out, &self.pids)
            .map_err(|e| progress(format!("perf script: {e:#}")))
            .ok()?;
        let text: String = b.iter().map(|x| x.to_string()).collect();
        let _ = std::fs::write(self.out.with_extension("breakdown.txt"), &text);
        for line in text.lines() {
            progress(format!("    {line}"));
        }
        Some(b)
    }
}

/// SIGINT to a perf we started (it then writes its results), then waits for it (5 s at most).
fn interrupt(child: &mut std::process::Child) {
    // SAFETY: kill(2) on the pid of our own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let _ = wait_until(Duration::from_secs(5), "perf to exit", || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}
