//! `tandem-lab bench-ha`: Tandem's high availability measured in a lab, beside keepalived.
//!
//! Sections (`--only`, comma-separated; all of them by default):
//!
//! - `failover`: `kill -9` of the Active `tandemd` of a pair (lb1 192.0.2.2, lb2 192.0.2.3,
//!   cluster 192.0.2.100, MAC forwarding to three servers) while the client opens a new HTTP
//!   connection every 10 ms (each in its own thread, 1 s timeout). The gap is the start of the
//!   first attempt begun after the kill that was answered, minus the kill. Once per `--hatimeouts`
//!   value (`executor set hatimeout` on both nodes before the pair is formed), `--runs` times,
//!   each run with a freshly started pair.
//! - `keepalived`: the same failure and the same probe against keepalived (VRRPv3, unicast) on
//!   two more hosts, ka1 192.0.2.5 (priority 254) and ka2 192.0.2.6 (priority 253), managing the
//!   VIP 192.0.2.150; the node holding the VIP forwards it with nftables DNAT (`numgen inc mod 3`
//!   over the same servers, masquerade). `advert_int` = hatimeout / 3. The failure: the data
//!   path of ka1 dies (an nftables drop of everything addressed to the VIP, before DNAT) and
//!   every keepalived process of ka1 gets SIGKILL, a few milliseconds later; the gap is measured
//!   from the SIGKILL. (SIGKILL alone leaves the VIP and the DNAT rules of the kernel in place on
//!   ka1: forwarding would go on, and the VIP would end up on both nodes.)
//! - `soak`: a pair per `--soak-hatimeouts` value (all at once, one lab each) with
//!   `--drop-pct` % of the heartbeat port's datagrams dropped by nftables in lb1 (the primary),
//!   both directions (`numgen random mod 100 < N`); both nodes' HA state polled every 100 ms
//!   for `--duration` seconds. Counts state changes (false takeovers), sub-state changes, and
//!   "partner lost" events, from the polling and from the daemons' own transition history.
//! - `replication`: (a) new connections/s (HTTP, `--concurrency` threads, `--conn-secs`) and
//!   UDP packets/s (a flood from 128 source ports to counting sinks, `--udp-secs`) through the
//!   Active with `repstrategy both` and `none` on the same ports (80 and 9000), alternating;
//!   (b) records per replication datagram during a burst of `--records` SYNs (raw frames from
//!   the client, sources 203.0.113.1+ and ports 1024-61023, to port 7, `repstrategy
//!   connection`, MAC forwarding, default staletimeout); (c) a full resync: `kill -9` of the
//!   Standby, restart, re-join, until it is Standby/Synchronized and holds ≥ 99 % of the Active's
//!   connection records; (d) VmRSS of both daemons, idle and holding the records. The pair runs
//!   at `--rep-hatimeout` (2 s by default).
//!
//! Everything runs in namespaces of labs that this process creates, with documentation
//! addresses only, and is removed at the end.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_lab::bench::{ConnRate, FloodReport, UdpSink, conn_rate, udp_flood};
use tandem_lab::cluster::{
    self, CLUSTER_IP, ClusterLab, TandemNode, demo_config, ha_state, join_pair, wait_ha_state,
};
use tandem_lab::{Host, LabProcess, interrupted, wait_until};

const HA_PORT: u16 = 20001;
const VIP: &str = "192.0.2.150";
const KA_IPS: [&str; 2] = ["192.0.2.5", "192.0.2.6"];
const KA_PRIORITIES: [u32; 2] = [254, 253];
const SINK_PORT: u16 = 9000;
const SYN_PORT: u16 = 7;
/// Probe: a new connection attempt every PROBE_PERIOD, each with PROBE_TIMEOUT.
const PROBE_PERIOD: Duration = Duration::from_millis(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Arguments of `tandem-lab bench-ha`.
#[derive(clap::Args, Debug)]
pub struct BenchHaArgs {
    /// Sections to run, comma-separated: failover, keepalived, soak, replication (all by default).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Failover runs per setting.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// hatimeout values of the failover section, seconds (keepalived: advert_int = this / 3).
    #[arg(long, value_delimiter = ',', default_value = "2,0.2")]
    hatimeouts: Vec<f64>,
    /// Seconds of each soak (the recorded figure is 600).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// hatimeout values soaked side by side, one lab each.
    #[arg(long, value_delimiter = ',', default_value = "2,0.2")]
    soak_hatimeouts: Vec<f64>,
    /// Percent of heartbeat-port datagrams dropped in lb1 during the soak (each direction).
    #[arg(long, default_value_t = 5)]
    drop_pct: u32,
    /// Connection records created on the Active for the resync and memory measurements.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// SYN frames per second of the burst that creates them.
    #[arg(long, default_value_t = 50_000)]
    syn_rate: u64,
    /// Seconds of each connection-rate measurement.
    #[arg(long, default_value_t = 5.0)]
    conn_secs: f64,
    /// Threads of the connection-rate measurement.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of each UDP flood.
    #[arg(long, default_value_t = 3.0)]
    udp_secs: f64,
    /// hatimeout of the pair in the replication section, seconds (set on both nodes before
    /// the pair is formed).
    #[arg(long, default_value_t = 2.0)]
    rep_hatimeout: f64,
    /// Rounds of (none, both) in the replication-cost measurement.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Write every result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

fn progress(msg: &str) {
    eprintln!("[{}] {msg}", clock());
}

/// The machine's load averages (`/proc/loadavg`), to show other work on a shared machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn clock() -> String {
    let t = unix_now();
    let s = t as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Default, Serialize)]
struct Results {
    started_unix: f64,
    failover: Vec<FailoverRun>,
    failover_summary: Vec<Summary>,
    soak: Vec<SoakResult>,
    replication: Option<ReplicationResult>,
}

pub fn run(args: BenchHaArgs) -> Result<ExitCode> {
    let all = ["failover", "keepalived", "soak", "replication"];
    for s in &args.only {
        if !all.contains(&s.as_str()) {
            bail!("unknown section {s:?} (expected one of {all:?})");
        }
    }
    let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut results = Results {
        started_unix: unix_now(),
        ..Results::default()
    };
    let save = |r: &Results| -> Result<()> {
        if let Some(path) = &args.json_out {
            std::fs::write(path, serde_json::to_string_pretty(r)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    };

    progress(&format!(
        "machine load averages at the start: {}",
        loadavg()
    ));
    if want("failover") || want("keepalived") {
        failover_section(&args, want("failover"), want("keepalived"), &mut results)?;
        print_failover(&results);
        save(&results)?;
    }
    if want("soak") && !interrupted() {
        results.soak = soak_section(&args)?;
        print_soak(&results.soak);
        save(&results)?;
    }
    if want("replication") && !interrupted() {
        let r = replication_section(&args)?;
        print_replication(&r);
        results.replication = Some(r);
        save(&results)?;
    }
    progress(&format!("machine load averages at the end: {}", loadavg()));
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// The probe: a new connection every 10 ms.

#[derive(Clone, Debug)]
struct Attempt {
    start: f64,
    end: f64,
    ok: bool,
}

struct Probe {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Attempt>>,
}

impl Probe {
    fn start(client: &Host, target: SocketAddr) -> Result<Probe> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = client.in_ns_background(move || {
            let results = Arc::new(Mutex::new(Vec::new()));
            let mut threads = Vec::new();
            let t0 = Instant::now();
            let mut n = 0u32;
            while !stop2.load(Ordering::Relaxed) {
                let results = results.clone();
                let spawned = std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        let start = unix_now();
                        let ok = tandem_lab::traffic::http_get(target, PROBE_TIMEOUT).is_ok();
                        let end = unix_now();
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(Attempt { start, end, ok });
                    });
                if let Ok(h) = spawned {
                    threads.push(h);
                }
                n += 1;
                let due = t0 + PROBE_PERIOD * n;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                threads.retain(|h| !h.is_finished());
            }
            for h in threads {
                let _ = h.join();
            }
            let mut v = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
            v.sort_by(|a, b| a.start.total_cmp(&b.start));
            v
        })?;
        Ok(Probe { stop, handle })
    }

    fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Failover.

#[derive(Clone, Debug, Serialize)]
struct FailoverRun {
    system: String,
    /// hatimeout (Tandem) or advert_int (keepalived), seconds.
    setting_s: f64,
    run: usize,
    /// First answered attempt started after the failure, minus the failure, ms.
    gap_ms: Option<f64>,
    /// When that attempt was answered, ms after the failure.
    answered_ms: Option<f64>,
    /// When the survivor went Active/MASTER, ms after the failure.
    detect_ms: Option<f64>,
    /// Attempts started after the failure that failed, and all started after it.
    failed_after: usize,
    attempts_after: usize,
    /// Last answered attempt started before the failure, ms before it (negative).
    last_ok_before_ms: Option<f64>,
    /// keepalived: how long before the SIGKILL the data path was cut, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    datapath_cut_before_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
struct Summary {
    system: String,
    setting_s: f64,
    runs: usize,
    gap_min_ms: f64,
    gap_median_ms: f64,
    gap_max_ms: f64,
    detect_median_ms: Option<f64>,
    /// Theoretical detection time: hatimeout, or 3 × advert_int + skew.
    expected_detect_ms: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Analysis {
    gap: Option<f64>,
    answered: Option<f64>,
    failed: usize,
    after: usize,
    last_ok: Option<f64>,
}

fn analyse(attempts: &[Attempt], failure: f64) -> Analysis {
    let after: Vec<&Attempt> = attempts.iter().filter(|a| a.start >= failure).collect();
    let first = after.iter().find(|a| a.ok);
    let gap = first.map(|a| (a.start - failure) * 1000.0);
    let answered = first.map(|a| (a.end - failure) * 1000.0);
    let failed = after.iter().filter(|a| !a.ok).count();
    let last_ok = attempts
        .iter()
        .filter(|a| a.start < failure && a.ok)
        .map(|a| (a.start - failure) * 1000.0)
        .next_back();
    Analysis {
        gap,
        answered,
        failed,
        after: after.len(),
        last_ok,
    }
}

/// Waits until the probe has seen `secs` of answered attempts in a row after `since`.
fn wait_recovered(target: SocketAddr, client: &Host, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut ok_in_row = 0;
    while Instant::now() < deadline {
        if client.http_get(target, Duration::from_millis(300)).is_ok() {
            ok_in_row += 1;
            if ok_in_row >= 10 {
                return true;
            }
        } else {
            ok_in_row = 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn failover_section(
    args: &BenchHaArgs,
    tandem: bool,
    keepalived: bool,
    results: &mut Results,
) -> Result<()> {
    progress("failover: building the lab (client, lb1, lb2, ka1, ka2, s1-s3)");
    let cl = ClusterLab::new("haf", 2, 3)?;
    let kas: Vec<Host> = (0..2)
        .map(|i| {
            cl.lab
                .add_host(&format!("ka{}", i + 1), &[&format!("{}/24", KA_IPS[i])])
        })
        .collect::<Result<_>>()?;
    if tandem {
        for &h in &args.hatimeouts {
            for run in 1..=args.runs {
                if interrupted() {
                    bail!("interrupted");
                }
                let r = tandem_failover(&cl, h, run)
                    .with_context(|| format!("Tandem failover, hatimeout {h}, run {run}"))?;
                progress(&format!(
                    "  tandem hatimeout {h} s run {run}: gap {} ms, detected at {} ms, {} of {} attempts failed",
                    fmt_opt(r.gap_ms),
                    fmt_opt(r.detect_ms),
                    r.failed_after,
                    r.attempts_after
                ));
                results.failover.push(r);
            }
            summarize(results, "tandem", h, h * 1000.0);
        }
    }
    if keepalived {
        which("keepalived")
            .context("keepalived is not installed (apt-get install -y keepalived)")?;
        setup_keepalived_datapath(&cl, &kas)?;
        for &h in &args.hatimeouts {
            // VRRPv3 intervals are centiseconds.
            let advert = ((h / 3.0) * 100.0).round().max(1.0) / 100.0;
            let skew = (256 - KA_PRIORITIES[1]) as f64 * advert / 256.0;
            for run in 1..=args.runs {
                if interrupted() {
                    bail!("interrupted");
                }
                let r = keepalived_failover(&cl, &kas, advert, run).with_context(|| {
                    format!("keepalived failover, advert_int {advert}, run {run}")
                })?;
                progress(&format!(
                    "  keepalived advert_int {advert} s run {run}: gap {} ms, MASTER at {} ms, {} of {} attempts failed",
                    fmt_opt(r.gap_ms),
                    fmt_opt(r.detect_ms),
                    r.failed_after,
                    r.attempts_after
                ));
                results.failover.push(r);
            }
            summarize(
                results,
                "keepalived",
                advert,
                (3.0 * advert + skew) * 1000.0,
            );
        }
    }
    cl.lab.shutdown()?;
    Ok(())
}

fn summarize(results: &mut Results, system: &str, setting: f64, expected: f64) {
    let runs: Vec<&FailoverRun> = results
        .failover
        .iter()
        .filter(|r| r.system == system && r.setting_s == setting)
        .collect();
    let mut gaps: Vec<f64> = runs.iter().filter_map(|r| r.gap_ms).collect();
    let mut detects: Vec<f64> = runs.iter().filter_map(|r| r.detect_ms).collect();
    let min = gaps.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = gaps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    results.failover_summary.push(Summary {
        system: system.into(),
        setting_s: setting,
        runs: runs.len(),
        gap_min_ms: min,
        gap_median_ms: median(&mut gaps),
        gap_max_ms: max,
        detect_median_ms: (!detects.is_empty()).then(|| median(&mut detects)),
        expected_detect_ms: expected,
    });
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
}

fn tandem_failover(cl: &ClusterLab, hatimeout: f64, run: usize) -> Result<FailoverRun> {
    let mut lb1 = TandemNode::start(&cl.lab, &cl.lbs[0], &demo_config(1), &[])?;
    let lb2 = TandemNode::start(&cl.lab, &cl.lbs[1], &demo_config(2), &[])?;
    let h = format!("{hatimeout}");
    for n in [&lb1, &lb2] {
        n.ctl(&["executor", "set", "hatimeout", &h])?;
    }
    join_pair(&lb1, 1, "manual", HA_PORT)?;
    join_pair(&lb2, 2, "manual", HA_PORT)?;
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(20))?;
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20))?;
    let target = ClusterLab::cluster(cluster::HTTP_PORT);
    if !wait_recovered(target, &cl.client, Duration::from_secs(10)) {
        bail!("the pair does not serve {target}");
    }
    let probe = Probe::start(&cl.client, target)?;
    std::thread::sleep(Duration::from_secs(1));
    let killed = unix_now();
    lb1.kill()?;
    let limit = Duration::from_secs_f64(hatimeout * 3.0 + 5.0);
    wait_ha_state(&lb2, "Active", false, limit)?;
    // The daemon computed the ages somewhere between these two instants: take the middle.
    let before = unix_now();
    let status = lb2.ctl_json(&["highavailability", "status"])?;
    let asked = (before + unix_now()) / 2.0;
    let recovered = wait_recovered(target, &cl.client, limit);
    std::thread::sleep(Duration::from_millis(200));
    let attempts = probe.finish();
    let detect_ms = status["transitions"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["to"] == "Active"))
        .and_then(|t| t["age_ms"].as_f64())
        .map(|age| (asked - age / 1000.0 - killed) * 1000.0);
    let a = analyse(&attempts, killed);
    drop(lb2);
    if !recovered {
        progress("  warning: service did not come back within the limit");
    }
    Ok(FailoverRun {
        system: "tandem".into(),
        setting_s: hatimeout,
        run,
        gap_ms: a.gap,
        answered_ms: a.answered,
        detect_ms,
        failed_after: a.failed,
        attempts_after: a.after,
        last_ok_before_ms: a.last_ok,
        datapath_cut_before_ms: None,
    })
}

fn which(program: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{program} not found")
}

/// nftables DNAT of the VIP's port 80 over the servers, with masquerade, on both ka hosts.
fn setup_keepalived_datapath(cl: &ClusterLab, kas: &[Host]) -> Result<()> {
    let servers: Vec<String> = (1..=cl.servers.len()).map(cluster::server_ip).collect();
    let map = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i} : {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rules = format!(
        "table ip kalb {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tip daddr {VIP} tcp dport {http} dnat to numgen inc mod {n} map {{ {map} }}\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tct status dnat ip daddr {{ {list} }} masquerade\n\
         \t}}\n\
         }}\n",
        http = cluster::HTTP_PORT,
        n = servers.len(),
        list = servers.join(", "),
    );
    let path = cl.lab.log_dir().join("kalb.nft");
    std::fs::write(&path, &rules)?;
    for ka in kas {
        ka.sysctl("net.ipv4.ip_forward", "1")?;
        ka.run(["nft", "-f", &path.display().to_string()])
            .context("loading the DNAT rules")?;
    }
    Ok(())
}

fn holds_vip(ka: &Host) -> bool {
    ka.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{VIP}/")))
        .unwrap_or(false)
}

fn keepalived_config(i: usize, advert: f64, notify: &Path) -> String {
    let other = KA_IPS[1 - i];
    format!(
        "global_defs {{\n\
         \trouter_id ka{n}\n\
         \tvrrp_version 3\n\
         \tscript_user root\n\
         }}\n\
         vrrp_instance VI_1 {{\n\
         \tstate BACKUP\n\
         \tinterface eth0\n\
         \tvirtual_router_id 51\n\
         \tpriority {prio}\n\
         \tadvert_int {advert}\n\
         \tunicast_src_ip {me}\n\
         \tunicast_peer {{\n\t\t{other}\n\t}}\n\
         \tvirtual_ipaddress {{\n\t\t{VIP}/32 dev eth0\n\t}}\n\
         \tnotify_master \"/usr/bin/touch {notify}\"\n\
         }}\n",
        n = i + 1,
        prio = KA_PRIORITIES[i],
        me = KA_IPS[i],
        notify = notify.display(),
    )
}

fn start_keepalived(
    cl: &ClusterLab,
    ka: &Host,
    i: usize,
    advert: f64,
) -> Result<(LabProcess, PathBuf)> {
    let dir = cl.lab.log_dir();
    let notify = dir.join(format!("ka{}.master", i + 1));
    let _ = std::fs::remove_file(&notify);
    let conf = dir.join(format!("ka{}.conf", i + 1));
    std::fs::write(&conf, keepalived_config(i, advert, &notify))?;
    let p = |s: &str| dir.join(format!("ka{}.{s}", i + 1)).display().to_string();
    // A SIGKILLed run leaves its pid files, and its VRRP child may linger as a zombie that
    // keepalived would take for a running daemon.
    for f in ["pid", "vrrp.pid", "checkers.pid"] {
        let _ = std::fs::remove_file(p(f));
    }
    let proc = ka.spawn([
        "keepalived".to_string(),
        "--dont-fork".into(),
        "--log-console".into(),
        "--log-detail".into(),
        "--vrrp".into(),
        "--use-file".into(),
        conf.display().to_string(),
        "--pid".into(),
        p("pid"),
        "--vrrp_pid".into(),
        p("vrrp.pid"),
        "--checkers_pid".into(),
        p("checkers.pid"),
    ])?;
    Ok((proc, notify))
}

fn mtime_unix(path: &Path) -> Option<f64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    m.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

fn keepalived_failover(
    cl: &ClusterLab,
    kas: &[Host],
    advert: f64,
    run: usize,
) -> Result<FailoverRun> {
    // A clean slate: no VIP anywhere, no failure rule.
    for ka in kas {
        let _ = ka.exec(["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
        let _ = ka.exec(["nft", "delete", "table", "ip", "kadead"]);
        let _ = ka.exec(["conntrack", "-F"]);
    }
    let (mut ka1, _n1) = start_keepalived(cl, &kas[0], 0, advert)?;
    wait_until(Duration::from_secs(20), "ka1 to hold the VIP", || {
        holds_vip(&kas[0])
    })
    .with_context(|| ka1.log())?;
    let (mut ka2, n2) = start_keepalived(cl, &kas[1], 1, advert)?;
    ka2.wait_for_log("Entering BACKUP STATE", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs_f64((advert * 5.0).max(0.5)));
    if holds_vip(&kas[1]) || !holds_vip(&kas[0]) {
        bail!(
            "keepalived did not settle: ka1 {} ka2 {}\n{}\n{}",
            holds_vip(&kas[0]),
            holds_vip(&kas[1]),
            ka1.log(),
            ka2.log()
        );
    }
    let _ = std::fs::remove_file(&n2);
    let target: SocketAddr = format!("{VIP}:{}", cluster::HTTP_PORT).parse()?;
    if !wait_recovered(target, &cl.client, Duration::from_secs(10)) {
        bail!("keepalived + DNAT does not serve {target}");
    }
    let probe = Probe::start(&cl.client, target)?;
    std::thread::sleep(Duration::from_secs(1));
    // The node's data path dies, then its keepalived (SIGKILL to the whole process group).
    let cut = unix_now();
    kas[0].run(["nft", "add", "table", "ip", "kadead"])?;
    kas[0].run([
        "nft",
        "add",
        "chain",
        "ip",
        "kadead",
        "pre",
        "{ type filter hook prerouting priority -300; policy accept; }",
    ])?;
    kas[0].run([
        "nft", "add", "rule", "ip", "kadead", "pre", "ip", "daddr", VIP, "drop",
    ])?;
    let killed = unix_now();
    ka1.kill()?;
    let limit = Duration::from_secs_f64(advert * 10.0 + 5.0);
    wait_until(limit, "ka2 to take the VIP", || holds_vip(&kas[1]))?;
    let recovered = wait_recovered(target, &cl.client, limit);
    std::thread::sleep(Duration::from_millis(200));
    let attempts = probe.finish();
    let a = analyse(&attempts, killed);
    let detect_ms = mtime_unix(&n2).map(|t| (t - killed) * 1000.0);
    ka2.kill()?;
    if !recovered {
        progress("  warning: service did not come back within the limit");
    }
    Ok(FailoverRun {
        system: "keepalived".into(),
        setting_s: advert,
        run,
        gap_ms: a.gap,
        answered_ms: a.answered,
        detect_ms,
        failed_after: a.failed,
        attempts_after: a.after,
        last_ok_before_ms: a.last_ok,
        datapath_cut_before_ms: Some((killed - cut) * 1000.0),
    })
}

fn print_failover(r: &Results) {
    println!();
    println!(
        "## Failover: kill -9 of the active, new connection every 10 ms (gap = first answered attempt started after the kill)"
    );
    println!();
    println!(
        "| system | hatimeout / advert_int | runs | gap min ms | gap median ms | gap max ms | detection median ms | expected detection ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for s in &r.failover_summary {
        println!(
            "| {} | {} s | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} |",
            s.system,
            s.setting_s,
            s.runs,
            s.gap_min_ms,
            s.gap_median_ms,
            s.gap_max_ms,
            fmt_opt(s.detect_median_ms),
            s.expected_detect_ms
        );
    }
    println!();
    println!(
        "| system | setting s | run | gap ms | answered ms | detect ms | failed/attempts after | last ok before ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for x in &r.failover {
        println!(
            "| {} | {} | {} | {} | {} | {} | {}/{} | {} |",
            x.system,
            x.setting_s,
            x.run,
            fmt_opt(x.gap_ms),
            fmt_opt(x.answered_ms),
            fmt_opt(x.detect_ms),
            x.failed_after,
            x.attempts_after,
            fmt_opt(x.last_ok_before_ms)
        );
    }
    std::io::stdout().flush().ok();
}

// ---------------------------------------------------------------------------------------------
// Soak: false takeovers with heartbeats dropped.

#[derive(Clone, Debug, Default, Serialize)]
struct SoakResult {
    hatimeout_s: f64,
    duration_s: f64,
    drop_pct: u32,
    /// State changes seen by polling every 100 ms, per node.
    state_changes_polled: [u64; 2],
    /// Sub-state changes seen by polling.
    sub_state_changes_polled: [u64; 2],
    /// Polls that got no answer.
    unreachable_polls: [u64; 2],
    polls: u64,
    /// Transitions in the daemons' history (16 kept) younger than the window.
    transitions_in_history: [u64; 2],
    /// "partner lost" events in the daemons' event log (64 kept) younger than the window.
    partner_lost_events: [u64; 2],
    /// Heartbeat-port datagrams lb1 sent / dropped, received / dropped (nft counters).
    out_total: u64,
    out_dropped: u64,
    in_total: u64,
    in_dropped: u64,
    /// The pair's own heartbeat counters at the end (received, lost, sent), per node.
    heartbeat_counters: [serde_json::Value; 2],
    final_states: [String; 2],
    changes: Vec<String>,
    /// The daemons' own record of those transitions, with their reasons.
    history: Vec<String>,
}

fn soak_section(args: &BenchHaArgs) -> Result<Vec<SoakResult>> {
    let nft_check = std::process::Command::new("nft").arg("--version").output();
    if nft_check.is_err() {
        bail!("nft is not installed");
    }
    let mut pairs = Vec::new();
    for &h in &args.soak_hatimeouts {
        progress(&format!("soak: building a pair with hatimeout {h} s"));
        let cl = ClusterLab::new("hasoak", 2, 1)?;
        let lb1 = TandemNode::start(&cl.lab, &cl.lbs[0], &demo_config(1), &[])?;
        let lb2 = TandemNode::start(&cl.lab, &cl.lbs[1], &demo_config(2), &[])?;
        for n in [&lb1, &lb2] {
            n.ctl(&["executor", "set", "hatimeout", &format!("{h}")])?;
        }
        join_pair(&lb1, 1, "manual", HA_PORT)?;
        join_pair(&lb2, 2, "manual", HA_PORT)?;
        wait_ha_state(&lb1, "Active", true, Duration::from_secs(20))?;
        wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20))?;
        let rules = format!(
            "table inet hasoak {{\n\
             \tchain o {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\tudp dport {HA_PORT} counter\n\
             \t\tudp dport {HA_PORT} numgen random mod 100 < {p} counter drop\n\
             \t}}\n\
             \tchain i {{\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\tudp dport {HA_PORT} counter\n\
             \t\tudp dport {HA_PORT} numgen random mod 100 < {p} counter drop\n\
             \t}}\n\
             }}\n",
            p = args.drop_pct
        );
        let path = cl.lab.log_dir().join("hasoak.nft");
        std::fs::write(&path, &rules)?;
        cl.lbs[0]
            .run(["nft", "-c", "-f", &path.display().to_string()])
            .context("nft -c")?;
        cl.lbs[0].run(["nft", "-f", &path.display().to_string()])?;
        pairs.push((h, cl, lb1, lb2));
    }
    let duration = Duration::from_secs_f64(args.duration);
    progress(&format!(
        "soak: {} pair(s), {} s, {} % of heartbeats dropped each way in lb1",
        pairs.len(),
        args.duration,
        args.drop_pct
    ));
    let results: Vec<Result<SoakResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|(h, cl, lb1, lb2)| {
                scope.spawn(move || soak_one(*h, cl, lb1, lb2, duration, args.drop_pct))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("soak thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.push(r?);
    }
    for (_, cl, lb1, lb2) in pairs {
        drop((lb1, lb2));
        cl.lab.shutdown()?;
    }
    Ok(out)
}

fn nft_counters(host: &Host, chain: &str) -> (u64, u64) {
    let text = host
        .run(["nft", "list", "chain", "inet", "hasoak", chain])
        .unwrap_or_default();
    let mut counts = text.lines().filter_map(|l| {
        let i = l.find("counter packets ")?;
        l[i + 16..].split_whitespace().next()?.parse::<u64>().ok()
    });
    (counts.next().unwrap_or(0), counts.next().unwrap_or(0))
}

fn soak_one(
    h: f64,
    cl: &ClusterLab,
    lb1: &TandemNode,
    lb2: &TandemNode,
    duration: Duration,
    drop_pct: u32,
) -> Result<SoakResult> {
    let nodes = [lb1, lb2];
    let mut r = SoakResult {
        hatimeout_s: h,
        drop_pct,
        ..SoakResult::default()
    };
    let mut last: [(String, String); 2] = [ha_state(lb1), ha_state(lb2)];
    let start = Instant::now();
    let mut next = start;
    let mut last_report = start;
    while start.elapsed() < duration && !interrupted() {
        next += Duration::from_millis(100);
        r.polls += 1;
        for (i, n) in nodes.iter().enumerate() {
            let now = ha_state(n);
            if now.0 == "unreachable" {
                r.unreachable_polls[i] += 1;
                continue;
            }
            if now.0 != last[i].0 {
                r.state_changes_polled[i] += 1;
                r.changes.push(format!(
                    "{:.1}s lb{}: {}/{} -> {}/{}",
                    start.elapsed().as_secs_f64(),
                    i + 1,
                    last[i].0,
                    last[i].1,
                    now.0,
                    now.1
                ));
            } else if now.1 != last[i].1 {
                r.sub_state_changes_polled[i] += 1;
                r.changes.push(format!(
                    "{:.1}s lb{}: {}/{} -> {}/{}",
                    start.elapsed().as_secs_f64(),
                    i + 1,
                    last[i].0,
                    last[i].1,
                    now.0,
                    now.1
                ));
            }
            last[i] = now;
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            progress(&format!(
                "  soak hatimeout {h}: {:.0} s, state changes {:?}, sub-state changes {:?} (load {})",
                start.elapsed().as_secs_f64(),
                r.state_changes_polled,
                r.sub_state_changes_polled,
                loadavg()
            ));
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let window_ms = start.elapsed().as_millis() as u64;
    r.duration_s = start.elapsed().as_secs_f64();
    for (i, n) in nodes.iter().enumerate() {
        let st = n.ctl_json(&["highavailability", "status"])?;
        let recent: Vec<&serde_json::Value> = st["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["age_ms"].as_u64().unwrap_or(u64::MAX) < window_ms)
            .collect();
        r.transitions_in_history[i] = recent.len() as u64;
        for t in recent.iter().rev() {
            r.history.push(format!(
                "lb{} at {:.1} s: {} -> {} ({})",
                i + 1,
                (window_ms.saturating_sub(t["age_ms"].as_u64().unwrap_or(0))) as f64 / 1000.0,
                t["from"].as_str().unwrap_or("?"),
                t["to"].as_str().unwrap_or("?"),
                t["reason"].as_str().unwrap_or("")
            ));
        }
        r.partner_lost_events[i] = st["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| {
                        e[0].as_u64().unwrap_or(u64::MAX) < window_ms
                            && e[1].as_str().unwrap_or("").contains("partner lost")
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        r.heartbeat_counters[i] = st["heartbeats"].clone();
        r.final_states[i] = format!(
            "{}/{}",
            st["state"].as_str().unwrap_or("?"),
            st["sub_state"].as_str().unwrap_or("?")
        );
    }
    (r.out_total, r.out_dropped) = nft_counters(&cl.lbs[0], "o");
    (r.in_total, r.in_dropped) = nft_counters(&cl.lbs[0], "i");
    Ok(r)
}

fn print_soak(v: &[SoakResult]) {
    println!();
    println!("## False takeovers with heartbeats dropped (nftables in lb1, both directions)");
    println!();
    println!(
        "| hatimeout | duration s | drop % | lb1 sent/dropped | lb1 received/dropped | state changes lb1, lb2 (polled) | in history | sub-state changes | partner lost events | final |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in v {
        println!(
            "| {} s | {:.0} | {} | {}/{} ({:.2} %) | {}/{} ({:.2} %) | {}, {} | {}, {} | {}, {} | {}, {} | {}, {} |",
            r.hatimeout_s,
            r.duration_s,
            r.drop_pct,
            r.out_total,
            r.out_dropped,
            100.0 * r.out_dropped as f64 / r.out_total.max(1) as f64,
            r.in_total,
            r.in_dropped,
            100.0 * r.in_dropped as f64 / r.in_total.max(1) as f64,
            r.state_changes_polled[0],
            r.state_changes_polled[1],
            r.transitions_in_history[0],
            r.transitions_in_history[1],
            r.sub_state_changes_polled[0],
            r.sub_state_changes_polled[1],
            r.partner_lost_events[0],
            r.partner_lost_events[1],
            r.final_states[0],
            r.final_states[1],
        );
        for (i, hb) in r.heartbeat_counters.iter().enumerate() {
            for p in hb.as_array().into_iter().flatten() {
                println!(
                    "    lb{} heartbeats {} -> {}: received {}, lost {}, sent {}",
                    i + 1,
                    p["source"].as_str().unwrap_or("?"),
                    p["destination"].as_str().unwrap_or("?"),
                    p["received"],
                    p["lost"],
                    p["sent"]
                );
            }
        }
        for c in r.changes.iter().take(20) {
            println!("    polled: {c}");
        }
        for c in &r.history {
            println!("    history: {c}");
        }
    }
    std::io::stdout().flush().ok();
}

// ---------------------------------------------------------------------------------------------
// Replication.

#[derive(Clone, Debug, Serialize)]
struct CostRow {
    repstrategy: String,
    round: usize,
    conn: ConnRate,
    /// Records the Active's sender sent during the connection-rate measurement.
    conn_records_sent: u64,
    flood: FloodReport,
    delivered: u64,
    delivered_pps: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Rss {
    active_kb: u64,
    standby_kb: u64,
    active_hwm_kb: u64,
    standby_hwm_kb: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
struct ReplicationResult {
    cost: Vec<CostRow>,
    conn_ratio: f64,
    pps_ratio: f64,
    burst_sent: u64,
    burst_passes: usize,
    burst_elapsed_s: f64,
    active_records: u64,
    standby_records_after_burst: u64,
    standby_catch_up_s: Option<f64>,
    burst_records_sent: u64,
    burst_batches_sent: u64,
    burst_records_per_batch: f64,
    burst_retransmits: u64,
    burst_overflow_dropped: u64,
    resync_s: Option<f64>,
    resync_restart_s: f64,
    resync_records_sent: u64,
    resync_batches_sent: u64,
    resync_records_per_batch: f64,
    resync_retransmits: u64,
    sender_last_full_sync: serde_json::Value,
    receiver_last_full_sync: serde_json::Value,
    standby_records_after_resync: u64,
    active_records_at_resync: u64,
    /// Slowest `tandemctl highavailability status` on the Active during the resync, ms: the
    /// longest the Active's control lock (and so its HA thread) was held.
    active_ctl_max_ms: f64,
    /// UDP datagrams the Standby's kernel dropped for a full socket buffer during the resync.
    standby_udp_rcvbuf_errors: u64,
    /// HA transitions (older than the restart excluded) on both nodes after the resync.
    resync_transitions: Vec<String>,
    rss_idle: Rss,
    rss_loaded: Rss,
    rss_after_resync: Rss,
}

fn rss(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pid(node: &TandemNode) -> u32 {
    node.process.as_ref().map(|p| p.pid()).unwrap_or(0)
}

fn rss_of(active: &TandemNode, standby: &TandemNode) -> Rss {
    let (a, ah) = rss(pid(active));
    let (s, sh) = rss(pid(standby));
    Rss {
        active_kb: a,
        standby_kb: s,
        active_hwm_kb: ah,
        standby_hwm_kb: sh,
    }
}

fn status(node: &TandemNode) -> serde_json::Value {
    node.ctl_json(&["highavailability", "status"])
        .unwrap_or(serde_json::Value::Null)
}

fn sender(node: &TandemNode) -> (u64, u64, u64, u64) {
    let s = status(node);
    let x = &s["replication"]["sender"];
    let g = |k: &str| x[k].as_u64().unwrap_or(0);
    (
        g("records_sent"),
        g("batches_sent"),
        g("retransmits"),
        g("overflow_dropped"),
    )
}

fn records(node: &TandemNode) -> u64 {
    node.ctl_json(&["executor", "status"])
        .map(|s| s["connection_records"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Connections made on `port` so far (sum of the servers' totals in `server report`).
fn port_total(node: &TandemNode, port: u16) -> u64 {
    node.ctl_json(&["server", "report", &format!("{CLUSTER_IP}@{port}@")])
        .map(|rows| {
            rows.as_array()
                .map(|a| a.iter().map(|r| r["total"].as_u64().unwrap_or(0)).sum())
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn replication_section(args: &BenchHaArgs) -> Result<ReplicationResult> {
    progress("replication: building the lab (client, lb1, lb2, s1-s3)");
    let cl = ClusterLab::new("harep", 2, 3)?;
    cl.client
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    for s in &cl.servers {
        s.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
    }
    let servers = (1..=cl.servers.len())
        .map(cluster::server_ip)
        .collect::<Vec<_>>()
        .join("+");
    let extra = format!(
        "port add {CLUSTER_IP}@{SYN_PORT} repstrategy connection\n\
         server add {CLUSTER_IP}@{SYN_PORT}@{servers}\n\
         port add {CLUSTER_IP}@{SINK_PORT} protocol udp method mac\n\
         server add {CLUSTER_IP}@{SINK_PORT}@{servers}\n"
    );
    let lb1 = TandemNode::start(
        &cl.lab,
        &cl.lbs[0],
        &format!("{}\n{extra}", demo_config(1)),
        &[],
    )?;
    let mut lb2 = TandemNode::start(
        &cl.lab,
        &cl.lbs[1],
        &format!("{}\n{extra}", demo_config(2)),
        &[],
    )?;
    let hatimeout = format!("{}", args.rep_hatimeout);
    for n in [&lb1, &lb2] {
        n.ctl(&["executor", "set", "hatimeout", &hatimeout])?;
    }
    join_pair(&lb1, 1, "manual", HA_PORT)?;
    join_pair(&lb2, 2, "manual", HA_PORT)?;
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(20))?;
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20))?;
    cl.wait_serving(cluster::HTTP_PORT, Duration::from_secs(10))?;
    let sinks: Vec<UdpSink> = cl
        .servers
        .iter()
        .map(|s| UdpSink::start_in(s, SINK_PORT))
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_secs(1));
    let mut out = ReplicationResult {
        rss_idle: rss_of(&lb1, &lb2),
        ..ReplicationResult::default()
    };

    // (a) The cost of replication on the forwarding path.
    for round in 1..=args.rounds {
        for mode in ["none", "both"] {
            if interrupted() {
                bail!("interrupted");
            }
            for n in [&lb1, &lb2] {
                n.ctl(&[
                    "port",
                    "set",
                    &format!("{CLUSTER_IP}@{}", cluster::HTTP_PORT),
                    "repstrategy",
                    mode,
                ])?;
                n.ctl(&[
                    "port",
                    "set",
                    &format!("{CLUSTER_IP}@{SINK_PORT}"),
                    "repstrategy",
                    mode,
                ])?;
            }
            wait_ha_state(&lb1, "Active", true, Duration::from_secs(10))?;
            std::thread::sleep(Duration::from_millis(500));
            let before = sender(&lb1).0;
            let target = ClusterLab::cluster(cluster::HTTP_PORT);
            let (secs, conc) = (Duration::from_secs_f64(args.conn_secs), args.concurrency);
            let conn = cl
                .client
                .in_ns(move || conn_rate(target, conc, secs, Duration::from_secs(2)))?;
            let conn_records_sent = sender(&lb1).0 - before;
            std::thread::sleep(Duration::from_millis(500));
            let count = || sinks.iter().map(UdpSink::count).sum::<u64>();
            let c0 = count();
            let utarget = ClusterLab::cluster(SINK_PORT);
            let usecs = Duration::from_secs_f64(args.udp_secs);
            let flood = cl
                .client
                .in_ns(move || udp_flood(utarget, 2, 64, 18, usecs, 20_000_000, 0))??;
            std::thread::sleep(Duration::from_millis(300));
            let delivered = count() - c0;
            let delivered_pps = delivered as f64 / flood.elapsed_s.max(1e-9);
            progress(&format!(
                "  repstrategy {mode} round {round}: {:.0} conn/s ({} failed, {} records replicated), {:.0} delivered pps ({:.0} sent/s)",
                conn.per_sec, conn.failed, conn_records_sent, delivered_pps, flood.offered_pps
            ));
            out.cost.push(CostRow {
                repstrategy: mode.into(),
                round,
                conn,
                conn_records_sent,
                flood,
                delivered,
                delivered_pps,
            });
        }
    }
    let mean = |mode: &str, f: &dyn Fn(&CostRow) -> f64| {
        let v: Vec<f64> = out
            .cost
            .iter()
            .filter(|c| c.repstrategy == mode)
            .map(f)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    out.conn_ratio = mean("both", &|c| c.conn.per_sec) / mean("none", &|c| c.conn.per_sec);
    out.pps_ratio = mean("both", &|c| c.delivered_pps) / mean("none", &|c| c.delivered_pps);
    drop(sinks);
    for n in [&lb1, &lb2] {
        n.ctl(&[
            "port",
            "set",
            &format!("{CLUSTER_IP}@{}", cluster::HTTP_PORT),
            "repstrategy",
            "none",
        ])?;
    }
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(10))?;

    // (b) A burst of SYNs: connection records on the Active, replicated as they are made.
    let n = args.records;
    let base_active = port_total(&lb1, SYN_PORT);
    let (r0, b0, t0, o0) = sender(&lb1);
    progress(&format!(
        "replication: SYN burst of {n} frames at {} frames/s to port {SYN_PORT}",
        args.syn_rate
    ));
    let lb_mac = parse_mac(&cl.lbs[0].mac);
    let client_mac = parse_mac(&cl.client.mac);
    let started = Instant::now();
    let mut passes = 0;
    loop {
        passes += 1;
        let rate = args.syn_rate;
        out.burst_sent += cl
            .client
            .in_ns(move || syn_burst(lb_mac, client_mac, n, rate))??;
        // Connections the Active made on the port (a record each; a SYN again on a held
        // record makes none).
        let have = port_total(&lb1, SYN_PORT).saturating_sub(base_active);
        progress(&format!(
            "  pass {passes}: the Active made {have} connection records on port {SYN_PORT}"
        ));
        if have as f64 >= n as f64 * 0.99 || passes >= 3 {
            break;
        }
    }
    out.burst_passes = passes;
    out.burst_elapsed_s = started.elapsed().as_secs_f64();
    let burst_end = Instant::now();
    out.active_records = records(&lb1);
    let want = (out.active_records as f64 * 0.99) as u64;
    let caught = wait_until(
        Duration::from_secs(120),
        "the Standby to hold 99 % of the records",
        || records(&lb2) >= want,
    );
    out.standby_catch_up_s = caught.is_ok().then(|| burst_end.elapsed().as_secs_f64());
    out.standby_records_after_burst = records(&lb2);
    let (r1, b1, t1, o1) = sender(&lb1);
    out.burst_records_sent = r1 - r0;
    out.burst_batches_sent = b1 - b0;
    out.burst_records_per_batch =
        out.burst_records_sent as f64 / out.burst_batches_sent.max(1) as f64;
    out.burst_retransmits = t1 - t0;
    out.burst_overflow_dropped = o1 - o0;
    std::thread::sleep(Duration::from_secs(1));
    out.rss_loaded = rss_of(&lb1, &lb2);
    progress(&format!(
        "  Active {} records, Standby {} ({}); {} records in {} batches; RSS {} / {} kB",
        out.active_records,
        out.standby_records_after_burst,
        out.standby_catch_up_s
            .map(|s| format!("99 % {s:.2} s after the burst"))
            .unwrap_or_else(|| "did not catch up".into()),
        out.burst_records_sent,
        out.burst_batches_sent,
        out.rss_loaded.active_kb,
        out.rss_loaded.standby_kb
    ));

    // (c) Full resync of a restarted Standby.
    progress("replication: kill -9 of the Standby, restart, re-join, full resync");
    lb2.kill()?;
    std::thread::sleep(Duration::from_millis(500));
    wait_ha_state(&lb1, "Active", false, Duration::from_secs(10))?;
    let (r2, b2, t2, _) = sender(&lb1);
    out.active_records_at_resync = records(&lb1);
    let want = (out.active_records_at_resync as f64 * 0.99) as u64;
    let t = Instant::now();
    let udp_before = tandem_lab::bench::sys::udp_counters(&cl.lbs[1]).unwrap_or((0, 0));
    // How long the Active's control lock is held: tandemctl answers wait for it.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let socket = lb1.socket.clone();
        std::thread::spawn(move || {
            let ctl = tandem_lab::find_binary("tandemctl").ok();
            let mut max = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if let Some(ctl) = &ctl {
                    let _ = std::process::Command::new(ctl)
                        .arg("--socket")
                        .arg(&socket)
                        .args(["--json", "highavailability", "status"])
                        .output();
                }
                max = max.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        })
    };
    lb2.restart()?;
    let hatimeout = format!("{}", args.rep_hatimeout);
    lb2.ctl(&["executor", "set", "hatimeout", &hatimeout])?;
    join_pair(&lb2, 2, "manual", HA_PORT)?;
    out.resync_restart_s = t.elapsed().as_secs_f64();
    let deadline = t + Duration::from_secs(120);
    loop {
        let st = status(&lb2);
        if st["state"] == "Standby"
            && st["sub_state"] == "Synchronized"
            && st["replication"]["connection_records"]
                .as_u64()
                .unwrap_or(0)
                >= want
        {
            out.resync_s = Some(t.elapsed().as_secs_f64());
            out.receiver_last_full_sync = st["replication"]["receiver"]["last_full_sync"].clone();
            out.standby_records_after_resync = st["replication"]["connection_records"]
                .as_u64()
                .unwrap_or(0);
            break;
        }
        if Instant::now() > deadline {
            progress(&format!("  resync did not complete: {}", st["replication"]));
            out.standby_records_after_resync = st["replication"]["connection_records"]
                .as_u64()
                .unwrap_or(0);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    out.active_ctl_max_ms = watcher
        .join()
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN);
    let udp_after = tandem_lab::bench::sys::udp_counters(&cl.lbs[1]).unwrap_or((0, 0));
    out.standby_udp_rcvbuf_errors = udp_after.1.saturating_sub(udp_before.1);
    let since_ms = t.elapsed().as_millis() as u64;
    for (i, n) in [&lb1, &lb2].iter().enumerate() {
        let st = status(n);
        let moves: Vec<String> = st["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["age_ms"].as_u64().unwrap_or(u64::MAX) < since_ms)
            .map(|x| {
                format!(
                    "lb{}: {} -> {} ({})",
                    i + 1,
                    x["from"].as_str().unwrap_or("?"),
                    x["to"].as_str().unwrap_or("?"),
                    x["reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        out.resync_transitions.extend(moves);
    }
    let st1 = status(&lb1);
    out.sender_last_full_sync = st1["replication"]["sender"]["last_full_sync"].clone();
    let (r3, b3, t3, _) = sender(&lb1);
    out.resync_records_sent = r3 - r2;
    out.resync_batches_sent = b3 - b2;
    out.resync_retransmits = t3 - t2;
    out.resync_records_per_batch =
        out.resync_records_sent as f64 / out.resync_batches_sent.max(1) as f64;
    out.rss_after_resync = rss_of(&lb1, &lb2);
    progress(&format!(
        "  resync: {} s (restart + join {:.2} s); sender {}; {} records in {} batches",
        out.resync_s
            .map(|s| format!("{s:.2}"))
            .unwrap_or_else(|| "-".into()),
        out.resync_restart_s,
        out.sender_last_full_sync,
        out.resync_records_sent,
        out.resync_batches_sent
    ));
    drop((lb1, lb2));
    cl.lab.shutdown()?;
    Ok(out)
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

fn csum(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP SYN from `src:sport` to the cluster's SYN_PORT, as an Ethernet frame.
fn syn_frame(dst: [u8; 6], src_mac: [u8; 6], src: [u8; 4], sport: u16) -> [u8; 54] {
    let mut f = [0u8; 54];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let cluster: [u8; 4] = CLUSTER_IP
        .parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .unwrap_or([192, 0, 2, 100]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, src[0], src[1], src[2], src[3], cluster[0],
        cluster[1], cluster[2], cluster[3],
    ]);
    let s = fold(csum(ip, 0));
    ip[10..12].copy_from_slice(&s.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&SYN_PORT.to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x02;
    tcp[14] = 0xff;
    tcp[15] = 0xff;
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&cluster);
    pseudo[9] = 6;
    pseudo[11] = 20;
    let s = fold(csum(tcp, csum(&pseudo, 0)));
    tcp[16..18].copy_from_slice(&s.to_be_bytes());
    f
}

/// Sends `n` SYNs (sources 203.0.113.1+, ports 1024-61023) from the calling thread's
/// namespace's eth0 to `lb_mac`, paced to `rate` frames/s; returns how many were sent.
fn syn_burst(lb_mac: [u8; 6], client_mac: [u8; 6], n: usize, rate: u64) -> Result<u64> {
    // SAFETY: plain libc calls on a socket we own; buffers outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
        }
        let name = std::ffi::CString::new("eth0")?;
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
        sll.sll_halen = 6;
        let start = Instant::now();
        let mut sent = 0u64;
        for i in 0..n {
            let src = [203, 0, 113, (i / 60000) as u8 + 1];
            let sport = 1024 + (i % 60000) as u16;
            let f = syn_frame(lb_mac, client_mac, src, sport);
            let mut tries = 0;
            loop {
                let r = libc::sendto(
                    fd,
                    f.as_ptr() as *const libc::c_void,
                    f.len(),
                    0,
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                if r >= 0 {
                    sent += 1;
                    break;
                }
                tries += 1;
                if tries > 1000 {
                    break;
                }
                std::thread::yield_now();
            }
            if i % 500 == 499 && rate > 0 {
                let due = start + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
        }
        libc::close(fd);
        Ok(sent)
    }
}

fn print_replication(r: &ReplicationResult) {
    println!();
    println!("## Replication cost on the forwarding path (Active lb1, MAC forwarding)");
    println!();
    println!(
        "| repstrategy | round | conn/s | failed | p50 ms | p99 ms | records replicated | UDP sent/s | UDP delivered/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for c in &r.cost {
        println!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {:.0} | {:.0} |",
            c.repstrategy,
            c.round,
            c.conn.per_sec,
            c.conn.failed,
            c.conn.latency.p50_ms,
            c.conn.latency.p99_ms,
            c.conn_records_sent,
            c.flood.offered_pps,
            c.delivered_pps
        );
    }
    println!();
    println!(
        "both ÷ none: conn/s {:.3}, UDP delivered pps {:.3}",
        r.conn_ratio, r.pps_ratio
    );
    println!();
    println!("## Replication of a SYN burst, full resync, memory");
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    let kb = |v: u64| format!("{:.1} MB", v as f64 / 1024.0);
    let rows: Vec<(String, String)> = vec![
        (
            "SYN frames sent (passes, seconds)".into(),
            format!(
                "{} ({}, {:.1} s)",
                r.burst_sent, r.burst_passes, r.burst_elapsed_s
            ),
        ),
        (
            "connection records on the Active".into(),
            r.active_records.to_string(),
        ),
        (
            "on the Standby after the burst".into(),
            format!(
                "{} ({})",
                r.standby_records_after_burst,
                r.standby_catch_up_s
                    .map(|s| format!("≥ 99 % {s:.2} s after the burst ended"))
                    .unwrap_or_else(|| "did not reach 99 %".into())
            ),
        ),
        (
            "burst: records / batches (records per batch)".into(),
            format!(
                "{} / {} ({:.1})",
                r.burst_records_sent, r.burst_batches_sent, r.burst_records_per_batch
            ),
        ),
        (
            "burst: retransmits, overflow drops".into(),
            format!("{}, {}", r.burst_retransmits, r.burst_overflow_dropped),
        ),
        (
            "resync: restart → Standby/Synchronized with ≥ 99 %".into(),
            format!(
                "{} s (restart + join {:.2} s)",
                r.resync_s
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_else(|| "-".into()),
                r.resync_restart_s
            ),
        ),
        (
            "resync: sender last_full_sync".into(),
            r.sender_last_full_sync.to_string(),
        ),
        (
            "resync: receiver last_full_sync".into(),
            r.receiver_last_full_sync.to_string(),
        ),
        (
            "resync: records / batches (records per batch), retransmits".into(),
            format!(
                "{} / {} ({:.1}), {}",
                r.resync_records_sent,
                r.resync_batches_sent,
                r.resync_records_per_batch,
                r.resync_retransmits
            ),
        ),
        (
            "resync: slowest tandemctl answer of the Active (lock held)".into(),
            format!("{:.0} ms", r.active_ctl_max_ms),
        ),
        (
            "resync: Standby UDP RcvbufErrors".into(),
            r.standby_udp_rcvbuf_errors.to_string(),
        ),
        (
            "resync: HA transitions during it".into(),
            if r.resync_transitions.is_empty() {
                "none".into()
            } else {
                r.resync_transitions.join("; ")
            },
        ),
        (
            "Standby records after resync / Active".into(),
            format!(
                "{} / {}",
                r.standby_records_after_resync, r.active_records_at_resync
            ),
        ),
        (
            "VmRSS idle: Active / Standby".into(),
            format!(
                "{} / {}",
                kb(r.rss_idle.active_kb),
                kb(r.rss_idle.standby_kb)
            ),
        ),
        (
            "VmRSS with the records: Active / Standby (VmHWM)".into(),
            format!(
                "{} / {} ({} / {})",
                kb(r.rss_loaded.active_kb),
                kb(r.rss_loaded.standby_kb),
                kb(r.rss_loaded.active_hwm_kb),
                kb(r.rss_loaded.standby_hwm_kb)
            ),
        ),
        (
            "VmRSS after the resync: Active / restarted Standby (VmHWM)".into(),
            format!(
                "{} / {} ({} / {})",
                kb(r.rss_after_resync.active_kb),
                kb(r.rss_after_resync.standby_kb),
                kb(r.rss_after_resync.active_hwm_kb),
                kb(r.rss_after_resync.standby_hwm_kb)
            ),
        ),
    ];
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    std::io::stdout().flush().ok();
}
