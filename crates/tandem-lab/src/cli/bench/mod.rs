//! `tandem-lab bench`: Tandem beside the Linux kernel and beside no balancer at all, side by
//! side in one run.
//!
//! One lab: a client, three servers, the Tandem node lb1 (and lb2 for the replication section),
//! and a kernel balancer host lbk. IPv4: client 192.0.2.10, servers 192.0.2.11-13, cluster
//! 192.0.2.100, return address 192.0.2.200, lbk 192.0.2.4. IPv6 (the bench turns IPv6 on in its
//! hosts): client 2001:db8::10, servers 2001:db8::11-13, cluster 2001:db8::100, return address
//! 2001:db8::200, lbk 2001:db8::4. The axes (`--cases`, `--modes`, `--families`):
//!
//! - `direct`: the client straight to server 1, no balancer: the ceiling of the lab itself;
//! - `nft`: the kernel, kube-proxy style: lbk holds the cluster address with forwarding on,
//!   nftables DNAT `numgen inc mod 3` over the servers plus masquerade (IPv6: SNAT to lbk's address), so replies come back
//!   through it (conntrack translates them back). The same row is the baseline of Tandem's MAC
//!   and NAT rows (the kernel has no direct-server-return balancer of its own);
//! - `afpacket`, `afxdp`: tandemd on lb1 with `executor set packetio afpacket` or `afxdp` in
//!   its configuration, each with `--modes` `mac` (TCP port 81, UDP 9000, direct server
//!   return) and `nat` (TCP 8081 → 81 and UDP 9001 → 9000, return address). A build or kernel
//!   that refuses the keyword or the backend gives a row that says why, never figures of
//!   another backend;
//! - `replication`: lb1 and lb2 as a pair (IPv4, MAC, the first of afxdp/afpacket that ran),
//!   with `repstrategy none` and `both` on the measured ports, alternating each round.
//!
//! Metrics (`--metrics`): keep-alive requests/s (`keepalive`: `--concurrency` connections, each
//! sending HTTP/1.1 GETs one after the other), new connections/s (`conn`: one GET per
//! connection), UDP packets/s delivered (`udp`: a flood of small datagrams from many source
//! ports, counted by sinks on the servers), p99 latency of both TCP loads, and tandemd's CPU
//! per forwarded frame (utime + stime from /proc over the flood ÷ the frames its counters say
//! it forwarded). Every measurement runs `--rounds` times (3 by default); the table shows the
//! median with the spread (min–max) and the ratio of medians against nftables of the same
//! family. The servers' HTTP is [`tandem_lab::bench::BenchHttp`] on port 81 (dual stack), the
//! same server for every case and family.
//!
//! With `--perf-stat`, `perf stat` counts tandemd's system calls per forwarded frame; with
//! `--perf-record DIR`, a machine-wide `perf record -g` is taken during every Tandem
//! measurement and sorted into buckets ([`tandem_lab::bench::profile`]). The servers run
//! without TIME_WAIT by default (`--server-time-wait` keeps it), because Tandem's NAT source
//! ports collide with it (see BENCHMARKS.md). Results: a Markdown table (for BENCHMARKS.md as
//! it is) on stdout, or JSON with `--json` (the table then on stderr), or both with
//! `--json-out FILE`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_lab::bench::{self, BenchHttp, ConnRate, FloodReport, UdpSink, sys};
use tandem_lab::cluster::{self, CLIENT_IP, CLUSTER_IP, ClusterLab, RETURN_IP, TandemNode};
use tandem_lab::{Host, wait_until};

mod cases;
mod measure;
mod perf;
mod probe;
mod render;

use perf::{PerfRecord, PerfStat};
use probe::{Probe, tandemd_note};
use render::{machine_facts, num_cpus, render_markdown, summarize, utc_now};

/// UDP port of the counting sinks on the servers (Tandem MAC, nftables, direct).
const SINK_PORT: u16 = 9000;
/// Cluster UDP port forwarded by Tandem with NAT (mapport 9000).
const NAT_UDP_PORT: u16 = 9001;
/// TCP port of the bench's HTTP servers (Tandem MAC, nftables, direct).
const HTTP_PORT: u16 = 81;
/// Cluster TCP port forwarded by Tandem with NAT (mapport 81).
const NAT_HTTP_PORT: u16 = 8081;
/// Heartbeat port of the replication section's pair.
const HA_PORT: u16 = 20001;
/// Address of the kernel load balancer host.
const LBK_IP: &str = "192.0.2.4";
/// Serving threads of each server's HTTP (connections served at once).
const HTTP_THREADS: usize = 48;

const CASES: [&str; 5] = ["direct", "nft", "afpacket", "afxdp", "replication"];
const MODES: [&str; 2] = ["mac", "nat"];
const METRICS: [&str; 3] = ["keepalive", "conn", "udp"];

/// An address family of the bench, with its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn parse(s: &str) -> Result<Family> {
        match s {
            "ipv4" | "4" => Ok(Family::V4),
            "ipv6" | "6" => Ok(Family::V6),
            _ => bail!("unknown family {s:?} (expected ipv4, ipv6)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn ip(self, v4: &str, v6: &str) -> IpAddr {
        match self {
            Family::V4 => v4.parse().expect("static address"),
            Family::V6 => v6.parse().expect("static address"),
        }
    }

    fn cluster(self) -> IpAddr {
        self.ip(CLUSTER_IP, "2001:db8::100")
    }

    fn return_ip(self) -> IpAddr {
        self.ip(RETURN_IP, "2001:db8::200")
    }

    fn client(self) -> IpAddr {
        self.ip(CLIENT_IP, "2001:db8::10")
    }

    fn lbk(self) -> IpAddr {
        self.ip(LBK_IP, "2001:db8::4")
    }

    /// Server `n` (1-based).
    fn server(self, n: usize) -> IpAddr {
        self.ip(&cluster::server_ip(n), &format!("2001:db8::{}", 10 + n))
    }

    /// Tandem node `n` (1-based).
    fn lb(self, n: usize) -> IpAddr {
        self.ip(&cluster::lb_ip(n), &format!("2001:db8::{}", 1 + n))
    }

    /// The prefix length of the lab's subnet.
    fn prefix(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }
}

/// The load of one measurement, shared by `tandem-lab bench` and `tandem-lab bench-ha`.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Seconds of each connection-rate measurement.
    #[arg(long, default_value_t = 5.0)]
    pub conn_secs: f64,
    /// Requests in flight at once (threads) in the connection-rate measurement (`bench`: also
    /// the connections of the keep-alive load).
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
    /// Cases to run, comma-separated: direct, nft, afpacket, afxdp, replication.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,nft,afpacket,afxdp,replication"
    )]
    cases: Vec<String>,
    /// Forwarding methods of the Tandem cases, comma-separated: mac, nat.
    #[arg(long, value_delimiter = ',', default_value = "mac,nat")]
    modes: Vec<String>,
    /// Address families, comma-separated: ipv4, ipv6.
    #[arg(long, value_delimiter = ',', default_value = "ipv4,ipv6")]
    families: Vec<String>,
    /// Metrics, comma-separated: keepalive (requests/s on held connections), conn (new
    /// connections/s), udp (packets/s delivered).
    #[arg(long, value_delimiter = ',', default_value = "keepalive,conn,udp")]
    metrics: Vec<String>,
    /// Rounds of every measurement; the table shows their median and spread.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of every measurement (keep-alive, new connections and UDP alike); overrides
    /// --conn-secs and --udp-secs.
    #[arg(long)]
    seconds: Option<f64>,
    /// Smoke run: one round of one second per measurement (overrides --rounds and --seconds).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    load: LoadArgs,
    /// tandemd worker threads (`tandemd --workers`).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// tandemd's AF_PACKET ring layout (`tandemd --ring`: v2 or v3).
    #[arg(long, default_value = "v2")]
    ring: String,
    /// Experiment: on Tandem's node, drop frames to the cluster and return addresses at the
    /// netdev ingress hook (nftables), which runs after the packet sockets got their copy, so
    /// that the node's own IP stack does not also process (and drop) every forwarded frame.
    #[arg(long)]
    lb_ingress_drop: bool,
    /// Flooding threads.
    #[arg(long, default_value_t = 2)]
    udp_threads: usize,
    /// Source ports (sockets) per flooding thread.
    #[arg(long, default_value_t = 64)]
    udp_sockets: usize,
    /// UDP payload bytes (18 makes minimum-size 64-byte Ethernet frames with the FCS over
    /// IPv4).
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

impl BenchArgs {
    fn rounds(&self) -> usize {
        if self.quick { 1 } else { self.rounds }
    }

    /// Seconds of each keep-alive and new-connection measurement.
    fn conn_secs(&self) -> f64 {
        match (self.quick, self.seconds) {
            (true, _) => 1.0,
            (false, Some(s)) => s,
            (false, None) => self.load.conn_secs,
        }
    }

    /// Seconds of each UDP flood.
    fn udp_secs(&self) -> f64 {
        match (self.quick, self.seconds) {
            (true, _) => 1.0,
            (false, Some(s)) => s,
            (false, None) => self.load.udp_secs,
        }
    }

    fn case(&self, c: &str) -> bool {
        self.cases.iter().any(|x| x == c)
    }

    fn metric(&self, m: &str) -> bool {
        self.metrics.iter().any(|x| x == m)
    }

    fn check(&self) -> Result<Vec<Family>> {
        let known = |what: &str, list: &[String], ok: &[&str]| -> Result<()> {
            for x in list {
                if !ok.contains(&x.as_str()) {
                    bail!("unknown {what} {x:?} (expected {})", ok.join(", "));
                }
            }
            Ok(())
        };
        known("case", &self.cases, &CASES)?;
        known("mode", &self.modes, &MODES)?;
        known("metric", &self.metrics, &METRICS)?;
        if !["v2", "v3"].contains(&self.ring.as_str()) {
            bail!("unknown ring {:?} (expected v2 or v3)", self.ring);
        }
        if self.workers == 0 {
            bail!("--workers needs at least 1");
        }
        if self.rounds() == 0 {
            bail!("--rounds needs at least 1");
        }
        if self.conn_secs() <= 0.0 || self.udp_secs() <= 0.0 {
            bail!("measurements need a positive number of seconds");
        }
        let mut families = Vec::new();
        for f in &self.families {
            let f = Family::parse(f)?;
            if !families.contains(&f) {
                families.push(f);
            }
        }
        Ok(families)
    }
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

/// One measured round of a row.
#[derive(Clone, Debug, Default, Serialize)]
struct Round {
    #[serde(skip_serializing_if = "Option::is_none")]
    keepalive: Option<ConnResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conn: Option<ConnResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpResult>,
}

/// Median and spread of one figure over the rounds.
#[derive(Clone, Copy, Debug, Serialize)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

/// The figures of a row over its rounds, with ratios of medians against nftables.
#[derive(Clone, Debug, Default, Serialize)]
struct Summary {
    keepalive_per_sec: Option<Stat>,
    keepalive_p99_ms: Option<Stat>,
    conn_per_sec: Option<Stat>,
    conn_p99_ms: Option<Stat>,
    udp_delivered_pps: Option<Stat>,
    tandemd_us_per_frame: Option<Stat>,
    keepalive_vs_nft: Option<f64>,
    conn_vs_nft: Option<f64>,
    udp_vs_nft: Option<f64>,
}

/// One row of the table: a case of one family (and mode, for Tandem).
#[derive(Clone, Debug, Serialize)]
struct Row {
    family: &'static str,
    /// direct, nft, afpacket, afxdp (replication rows: none, both).
    case: String,
    /// mac or nat (Tandem rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    label: String,
    /// Why the row has no figures (a refused keyword, a missing feature, a failed set-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_run: Option<String>,
    /// What tandemd's `executor status` says about its packet I/O, where it says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    packetio_status: Option<serde_json::Value>,
    rounds: Vec<Round>,
    summary: Summary,
}

impl Row {
    fn new(family: Family, case: &str, mode: Option<&str>, label: String) -> Row {
        Row {
            family: family.name(),
            case: case.into(),
            mode: mode.map(str::to_string),
            label,
            not_run: None,
            packetio_status: None,
            rounds: Vec::new(),
            summary: Summary::default(),
        }
    }

    fn not_run(mut self, why: impl Into<String>) -> Row {
        let why = why.into();
        progress(format!("  {} {}: not run: {why}", self.family, self.label));
        self.not_run = Some(why);
        self
    }
}

/// The replication section: the same load through a pair with `repstrategy none` and `both`.
#[derive(Clone, Debug, Default, Serialize)]
struct Replication {
    /// The packet I/O the pair ran with.
    packetio: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_run: Option<String>,
    /// Rows `none` and `both` (IPv4, MAC).
    rows: Vec<Row>,
    /// `both ÷ none` of the medians.
    keepalive_ratio: Option<f64>,
    conn_ratio: Option<f64>,
    udp_ratio: Option<f64>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    replication: Option<Replication>,
    elapsed_s: f64,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let families = args.check()?;
    if let Some(dir) = &args.perf_record {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
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

    let nodes = if args.case("replication") { 2 } else { 1 };
    progress(format!(
        "building the lab (client, lb1{}, lbk, s1-s3)",
        if nodes == 2 { ", lb2" } else { "" }
    ));
    let cl = ClusterLab::new("bench", nodes, 3)?;
    let lbk = cl.lab.add_host("lbk", &[&format!("{LBK_IP}/24")])?;
    // The client opens tens of thousands of connections: give it the whole port range.
    cl.client
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    if !args.server_time_wait {
        for s in &cl.servers {
            s.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
        }
    }
    let ipv6 = if families.contains(&Family::V6) {
        cases::enable_ipv6(&cl, &lbk).map_err(|e| format!("{e:#}"))
    } else {
        Ok(())
    };
    if let Err(e) = &ipv6 {
        progress(format!("IPv6 set-up failed: {e}"));
    }
    let sinks: Vec<UdpSink> = cl
        .servers
        .iter()
        .map(|s| UdpSink::start_in(s, SINK_PORT))
        .collect::<Result<_>>()?;
    let http: Vec<BenchHttp> = cl
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| BenchHttp::start_in(s, HTTP_PORT, &format!("s{}", i + 1), HTTP_THREADS))
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
    progress(format!(
        "  (lab ready at {:.0} s)",
        started.elapsed().as_secs_f64()
    ));

    let mut rows = Vec::new();
    let mut ran_packetio = Vec::new();
    for &family in &families {
        let timed = |what: &str, f: &mut dyn FnMut() -> Vec<Row>| {
            let t = Instant::now();
            let out = f();
            progress(format!(
                "  ({} {what}: {:.0} s)",
                family.label(),
                t.elapsed().as_secs_f64()
            ));
            out
        };
        let v6_refused = |row: Row| match (&ipv6, family) {
            (Err(e), Family::V6) => {
                Some(row.not_run(format!("IPv6 set-up of the lab failed: {e}")))
            }
            _ => None,
        };
        if args.case("direct") {
            let row = Row::new(family, "direct", None, "direct (no balancer)".into());
            rows.extend(v6_refused(row.clone()).map_or_else(
                || timed("direct", &mut || vec![ctx.direct_case(family, row.clone())]),
                |r| vec![r],
            ));
        }
        if args.case("nft") {
            let snat = if family == Family::V4 {
                "masquerade"
            } else {
                "SNAT"
            };
            let row = Row::new(family, "nft", None, format!("nftables DNAT + {snat}"));
            rows.extend(v6_refused(row.clone()).map_or_else(
                || timed("nft", &mut || vec![ctx.nft_case(family, &lbk, row.clone())]),
                |r| vec![r],
            ));
        }
        for packetio in ["afpacket", "afxdp"] {
            if !args.case(packetio) {
                continue;
            }
            let out = match (&ipv6, family) {
                (Err(e), Family::V6) => cases::tandem_rows(family, packetio, &args.modes)
                    .into_iter()
                    .map(|r| r.not_run(format!("IPv6 set-up of the lab failed: {e}")))
                    .collect(),
                _ => timed(packetio, &mut || ctx.tandem_case(family, packetio)),
            };
            if family == Family::V4 && out.iter().any(|r| r.not_run.is_none()) {
                ran_packetio.push(packetio);
            }
            rows.extend(out);
        }
    }
    let replication = args.case("replication").then(|| {
        let t = Instant::now();
        let r = ctx.replication_case(&ran_packetio);
        progress(format!(
            "  (replication: {:.0} s)",
            t.elapsed().as_secs_f64()
        ));
        r
    });
    drop(http);
    drop(sinks);

    let mut report = Report {
        date: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        settings: serde_json::json!({
            "rounds": args.rounds(),
            "conn_secs": args.conn_secs(),
            "udp_secs": args.udp_secs(),
            "concurrency": args.load.concurrency,
            "udp_threads": args.udp_threads,
            "udp_sockets_per_thread": args.udp_sockets,
            "udp_payload": args.udp_payload,
            "udp_rate": args.udp_rate,
            "udp_max": args.udp_max,
            "workers": args.workers,
            "ring": args.ring,
            "server_time_wait": args.server_time_wait,
            "lb_ingress_drop": args.lb_ingress_drop,
        }),
        rows,
        replication,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    summarize(&mut report);
    let table = render_markdown(&report);
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

struct Ctx<'a> {
    args: &'a BenchArgs,
    cl: &'a ClusterLab,
    sinks: &'a [UdpSink],
    /// The lab's processes (without tandemd), for CPU accounting.
    pids: Vec<u32>,
    /// The server processes.
    servers: Vec<u32>,
}
