//! `tandem-lab bench-health`: health checking of 2 000 HTTP servers by tandemd's `http`
//! advisor, HAProxy's health checks and keepalived's HTTP_GET checker, in the same lab, at the
//! same time, on the same servers.
//!
//! ```text
//!  srv  203.0.113.1-200/24   one `tandem-lab serve-many` process: HTTP on ports 8001-8010 of
//!                            every address = 2 000 servers (epoll, one thread)
//!  lb1  192.0.2.2, 203.0.113.250   tandemd: cluster 192.0.2.100, ports 8001-8010 (MAC), the
//!                            2 000 servers, `advisor start http PORT` on each port
//!  hap  203.0.113.251        haproxy -db: a backend per port, `check inter 7s fall 1 rise 1`
//!  ka   203.0.113.252        keepalived: a virtual_server per port, HTTP_GET, delay_loop 7,
//!                            retry 0 (needs the kernel's IPVS; said so and skipped without it)
//! ```
//!
//! All three mark a server down after one failed check (Tandem's default retries 0; HAProxy
//! `fall 1`; keepalived `retry 0`) and probe each server every `--interval` seconds (7, IBM's
//! default). Steps:
//!
//! 1. tandemd starts without advisors; its CPU over `--baseline-secs` is the idle cost.
//! 2. The advisors (and HAProxy, keepalived) start; once every server was seen up by each,
//!    the CPU time (utime+stime from `/proc/PID/stat`, all threads; keepalived: parent and
//!    checker child) and VmRSS of each are measured over `--steady-secs`, all three running.
//! 3. `--deaths` times, one server dies: an nftables `reject with tcp reset` on the server
//!    host for its address and port (connections refused, as when the service is killed).
//!    Each checker's view is polled every 50 ms until it says down: Tandem `server report
//!    C@P@S` weight 0, HAProxy `show stat` status DOWN, keepalived its `notify_down` file.
//!    The time from the reject to that is the figure; it is between 0 and one interval
//!    (plus the check's own time) depending on where in its interval the death falls, so each
//!    death comes after a random pause of 0 to one interval.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_lab::bench::sys;
use tandem_lab::cluster::TandemNode;
use tandem_lab::{Host, Lab, LabProcess, find_binary, wait_until};

mod peers;
use peers::*;

const CLUSTER: &str = "192.0.2.100";
const KA_VIP: &str = "192.0.2.150";
const FIRST_PORT: u16 = 8001;
const DEATH_TABLE: &str = "tlabdeath";

/// Arguments of `tandem-lab bench-health`.
#[derive(clap::Args, Debug)]
pub struct BenchHealthArgs {
    /// Server addresses (203.0.113.1 up), at most 240.
    #[arg(long, default_value_t = 200)]
    addresses: usize,
    /// Ports per address (8001 up); servers = addresses × ports.
    #[arg(long, default_value_t = 10)]
    ports: u16,
    /// Seconds between two checks of one server, for all three.
    #[arg(long, default_value_t = 7.0)]
    interval: f64,
    /// Seconds of tandemd without advisors (its idle CPU).
    #[arg(long, default_value_t = 21.0)]
    baseline_secs: f64,
    /// Seconds of the CPU and memory measurement with every checker running.
    #[arg(long, default_value_t = 70.0)]
    steady_secs: f64,
    /// Servers killed one after the other (time to weight 0 of each).
    #[arg(long, default_value_t = 10)]
    deaths: usize,
    /// Checkers: tandem, haproxy, keepalived (all by default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tandem,haproxy,keepalived"
    )]
    only: Vec<String>,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

fn progress(msg: &str) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    eprintln!("[{:02}:{:02}:{:02}] {msg}", t / 3600, t / 60 % 60, t % 60);
}

/// One checker's results.
#[derive(Debug, Default, Serialize)]
struct CheckerResult {
    name: String,
    /// Why it was not measured, if it was not.
    skipped: Option<String>,
    /// CPU, percent of one core, over the steady window.
    cpu_pct: Option<f64>,
    /// tandemd only: CPU without advisors.
    idle_cpu_pct: Option<f64>,
    /// tandemd only: VmRSS without advisors.
    idle_rss_kib: Option<u64>,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
    /// Seconds from each death to "down" (None: not seen within the bound).
    deaths: Vec<Option<f64>>,
    median_s: Option<f64>,
    min_s: Option<f64>,
    max_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Results {
    date: String,
    servers: usize,
    interval: f64,
    steady_secs: f64,
    loadavg_before: String,
    responder_requests_per_s: f64,
    checkers: Vec<CheckerResult>,
}

enum Kind {
    Tandem(Box<TandemNode>),
    Haproxy { sock: PathBuf },
    Keepalived { dir: PathBuf },
}

struct Checker {
    kind: Kind,
    procs: Vec<LabProcess>,
    result: CheckerResult,
}

impl Checker {
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for p in &self.procs {
            pids.push(p.pid());
            if matches!(self.kind, Kind::Keepalived { .. }) {
                pids.extend(sys::child_pids(p.pid()));
            }
        }
        if let Kind::Tandem(node) = &self.kind {
            pids.extend(node.process.as_ref().map(|p| p.pid()));
        }
        pids
    }

    /// Has every server been checked and found up?
    fn all_up(&self, servers: &[(String, u16)], ports: &[u16]) -> bool {
        match &self.kind {
            Kind::Tandem(node) => ports.iter().all(|p| {
                node.ctl_json(&["advisor", "report", "http", &p.to_string()])
                    .is_ok_and(|v| {
                        let s = v["servers"].as_array().cloned().unwrap_or_default();
                        s.len() == servers.len() / ports.len()
                            && s.iter().all(|x| x["state"] == "up")
                    })
            }),
            Kind::Haproxy { sock } => haproxy_stat(sock)
                .is_ok_and(|m| m.len() == servers.len() && m.values().all(|(_, ok)| *ok)),
            // keepalived says nothing while servers stay up: two intervals after its start.
            Kind::Keepalived { .. } => true,
        }
    }

    fn is_down(&self, addr: &str, port: u16) -> bool {
        match &self.kind {
            Kind::Tandem(node) => node
                .ctl_json(&["server", "report", &format!("{CLUSTER}@{port}@{addr}")])
                .is_ok_and(|v| v[0]["weight"] == 0),
            Kind::Haproxy { sock } => haproxy_stat(sock).is_ok_and(|m| {
                m.get(&(port, addr.to_string()))
                    .is_some_and(|(s, _)| s.starts_with("DOWN"))
            }),
            Kind::Keepalived { dir } => dir.join(format!("down-{addr}-{port}")).exists(),
        }
    }
}

fn tandem_config(servers: &[(String, u16)], ports: &[u16]) -> String {
    let plist = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("+");
    let mut addrs: Vec<&str> = servers.iter().map(|s| s.0.as_str()).collect();
    addrs.dedup();
    addrs.sort();
    addrs.dedup();
    format!(
        "executor start\nexecutor set nfa 192.0.2.2\ncluster add {CLUSTER}\n\
         port add {CLUSTER}@{plist} method mac\nserver add {CLUSTER}@{plist}@{}\n",
        addrs.join("+")
    )
}

fn cpu_pct(pids: &[u32], secs: f64) -> f64 {
    let c0 = sys::processes_cpu(pids);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let c1 = sys::processes_cpu(pids);
    100.0 * (c1.saturating_sub(c0)).as_secs_f64() / t0.elapsed().as_secs_f64()
}

fn stats(samples: &[Option<f64>]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mut v: Vec<f64> = samples.iter().flatten().copied().collect();
    if v.is_empty() {
        return (None, None, None);
    }
    v.sort_by(f64::total_cmp);
    (Some(v[v.len() / 2]), v.first().copied(), v.last().copied())
}

pub fn run(args: BenchHealthArgs) -> Result<ExitCode> {
    if args.addresses == 0 || args.addresses > 240 || args.ports == 0 || args.ports > 100 {
        bail!("--addresses must be 1-240 and --ports 1-100");
    }
    let want = |n: &str| args.only.iter().any(|o| o == n);
    let ports: Vec<u16> = (0..args.ports).map(|i| FIRST_PORT + i).collect();
    let addrs: Vec<String> = (1..=args.addresses)
        .map(|i| format!("203.0.113.{i}"))
        .collect();
    let servers: Vec<(String, u16)> = ports
        .iter()
        .flat_map(|&p| addrs.iter().map(move |a| (a.clone(), p)))
        .collect();
    let loadavg_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    progress(&format!(
        "{} servers ({} addresses × {} ports), interval {} s",
        servers.len(),
        addrs.len(),
        ports.len(),
        args.interval
    ));

    let lab = Lab::new("bhealth")?;
    let cidrs: Vec<String> = addrs.iter().map(|a| format!("{a}/24")).collect();
    let cidr_refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
    let srv = lab.add_host("srv", &cidr_refs)?;
    let bin = find_binary("tandem-lab")?;
    let plist = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut responder = srv.spawn([
        bin.display().to_string(),
        "serve-many".into(),
        "--ports".into(),
        plist,
        "--stats-secs".into(),
        "1".into(),
    ])?;
    responder.wait_for_log("ready", Duration::from_secs(20))?;
    let table = format!(
        "table inet {DEATH_TABLE} {{\n\tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n\t}}\n}}\n"
    );
    let table_file = lab.log_dir().join("death.nft");
    std::fs::write(&table_file, table)?;
    srv.run(["nft", "-f", &table_file.display().to_string()])?;

    let mut checkers: Vec<Checker> = Vec::new();
    if want("tandem") {
        let lb1 = lab.add_host("lb1", &["192.0.2.2/24", "203.0.113.250/24"])?;
        let node = TandemNode::start(&lab, &lb1, &tandem_config(&servers, &ports), &[])?;
        let pid = node.process.as_ref().map(|p| p.pid()).unwrap_or(0);
        progress(&format!("tandemd idle for {} s", args.baseline_secs));
        let idle = cpu_pct(&[pid], args.baseline_secs);
        let mut result = CheckerResult {
            name: "tandemd http advisor".into(),
            idle_cpu_pct: Some(idle),
            idle_rss_kib: Some(sys::process_rss_kib(pid).0),
            ..Default::default()
        };
        for p in &ports {
            let ps = p.to_string();
            let secs = args.interval.to_string();
            let started = node
                .ctl(&["advisor", "start", "http", &ps])
                .and_then(|_| node.ctl(&["advisor", "interval", "http", &ps, &secs]));
            if let Err(e) = started {
                result.skipped = Some(format!("advisor start failed: {e:#}"));
                break;
            }
        }
        checkers.push(Checker {
            kind: Kind::Tandem(Box::new(node)),
            procs: Vec::new(),
            result,
        });
    }
    if want("haproxy") {
        let hap = lab.add_host("hap", &["203.0.113.251/24"])?;
        let mut result = CheckerResult {
            name: "HAProxy check".into(),
            ..Default::default()
        };
        let mut procs = Vec::new();
        let sock = lab.log_dir().join("haproxy.sock");
        match which("haproxy") {
            None => {
                result.skipped = Some("haproxy is not installed (apt-get install haproxy)".into())
            }
            Some(bin) => {
                let cfg = lab.log_dir().join("haproxy.cfg");
                std::fs::write(&cfg, haproxy_config(&servers, args.interval, &sock))?;
                let p = hap.spawn([
                    bin.display().to_string(),
                    "-f".into(),
                    cfg.display().to_string(),
                    "-db".into(),
                ])?;
                procs.push(p);
            }
        }
        checkers.push(Checker {
            kind: Kind::Haproxy { sock },
            procs,
            result,
        });
    }
    if want("keepalived") {
        let ka = lab.add_host("ka", &["203.0.113.252/24"])?;
        let dir = lab.log_dir().join("ka");
        std::fs::create_dir_all(&dir)?;
        let mut result = CheckerResult {
            name: "keepalived HTTP_GET".into(),
            ..Default::default()
        };
        let mut procs = Vec::new();
        match keepalived_blocker(&ka) {
            Some(why) => result.skipped = Some(why),
            None => {
                let cfg = dir.join("keepalived.conf");
                std::fs::write(&cfg, keepalived_config(&servers, args.interval, &dir))?;
                let p = ka.spawn([
                    "keepalived".to_string(),
                    "-f".into(),
                    cfg.display().to_string(),
                    "-n".into(),
                    "-l".into(),
                    "-C".into(),
                    "-p".into(),
                    dir.join("ka.pid").display().to_string(),
                    "-c".into(),
                    dir.join("checker.pid").display().to_string(),
                ])?;
                procs.push(p);
            }
        }
        checkers.push(Checker {
            kind: Kind::Keepalived { dir },
            procs,
            result,
        });
    }

    // Every checker has seen every server up (keepalived: two intervals).
    let bound = Duration::from_secs_f64(args.interval * 3.0 + 30.0);
    for c in checkers.iter_mut().filter(|c| c.result.skipped.is_none()) {
        progress(&format!(
            "waiting for {} to see every server up",
            c.result.name
        ));
        let waited = wait_until(bound, &format!("{} to see all up", c.result.name), || {
            !c.procs.iter_mut().all(LabProcess::is_running) || c.all_up(&servers, &ports)
        });
        if let Err(e) = waited {
            let log: String = c.procs.iter().map(|p| p.log()).collect();
            c.result.skipped = Some(format!("{e:#}; log: {}", tail(&log)));
        }
        for p in &mut c.procs {
            if !p.is_running() {
                c.result.skipped = Some(format!("exited: {}", tail(&p.log())));
            }
        }
    }
    if checkers
        .iter()
        .any(|c| matches!(c.kind, Kind::Keepalived { .. }))
    {
        std::thread::sleep(Duration::from_secs_f64(args.interval * 2.0));
    }

    // Steady state: every checker at once.
    progress(&format!("steady state for {} s", args.steady_secs));
    let live: Vec<(usize, Vec<u32>)> = checkers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.result.skipped.is_none())
        .map(|(i, c)| (i, c.pids()))
        .collect();
    let before: Vec<Duration> = live.iter().map(|(_, p)| sys::processes_cpu(p)).collect();
    let r0 = responder_requests(&responder);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.steady_secs));
    let wall = t0.elapsed().as_secs_f64();
    let responder_rate = (responder_requests(&responder).saturating_sub(r0)) as f64 / wall;
    for ((i, pids), b) in live.iter().zip(before) {
        let c = &mut checkers[*i];
        let cpu = sys::processes_cpu(pids).saturating_sub(b);
        c.result.cpu_pct = Some(100.0 * cpu.as_secs_f64() / wall);
        let (rss, hwm) = pids
            .iter()
            .map(|&p| sys::process_rss_kib(p))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        c.result.rss_kib = Some(rss);
        c.result.hwm_kib = Some(hwm);
    }

    // Deaths.
    let death_bound = Duration::from_secs_f64(args.interval * 2.0 + 5.0);
    // Each death at a random point of the checkers' intervals (a sequence of deaths at a
    // fixed pace would lock onto their phase).
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for d in 0..args.deaths {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pause = (rng % 1000) as f64 / 1000.0 * args.interval;
        std::thread::sleep(Duration::from_secs_f64(pause));
        let (addr, port) =
            &servers[(d * servers.len() / args.deaths.max(1) + 7 * d + 3) % servers.len()];
        let rule = format!("ip daddr {addr} tcp dport {port} reject with tcp reset");
        let mut words = vec!["nft", "add", "rule", "inet", DEATH_TABLE, "input"];
        words.extend(rule.split(' '));
        srv.run(&words).context("killing a server")?;
        let t0 = Instant::now();
        let mut seen: Vec<Option<f64>> = checkers
            .iter()
            .map(|c| {
                if c.result.skipped.is_some() {
                    Some(-1.0)
                } else {
                    None
                }
            })
            .collect();
        while seen.iter().any(Option::is_none) && t0.elapsed() < death_bound {
            for (c, s) in checkers.iter().zip(seen.iter_mut()) {
                if s.is_none() && c.is_down(addr, *port) {
                    *s = Some(t0.elapsed().as_secs_f64());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let line: Vec<String> = checkers
            .iter()
            .zip(&seen)
            .filter(|(c, _)| c.result.skipped.is_none())
            .map(|(c, s)| match s {
                Some(t) => format!("{} {t:.2} s", c.result.name),
                None => format!("{} not within {death_bound:?}", c.result.name),
            })
            .collect();
        progress(&format!(
            "death {} ({addr}:{port}): {}",
            d + 1,
            line.join(", ")
        ));
        for (c, s) in checkers.iter_mut().zip(seen) {
            if c.result.skipped.is_none() {
                c.result.deaths.push(s);
            }
        }
    }
    for c in &mut checkers {
        (c.result.median_s, c.result.min_s, c.result.max_s) = stats(&c.result.deaths);
    }

    let results = Results {
        date: String::from_utf8_lossy(
            &std::process::Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d %H:%M UTC")
                .output()?
                .stdout,
        )
        .trim()
        .to_string(),
        servers: servers.len(),
        interval: args.interval,
        steady_secs: args.steady_secs,
        loadavg_before: loadavg_before.trim().to_string(),
        responder_requests_per_s: responder_rate,
        checkers: checkers.into_iter().map(|c| c.result).collect(),
    };
    print_table(&results);
    let json = serde_json::to_string_pretty(&results)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    std::io::stdout().flush()?;
    drop(responder);
    lab.shutdown()?;
    Ok(ExitCode::SUCCESS)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// Requests the responder answered so far (its last `stats:` line, printed every second).
fn responder_requests(p: &LabProcess) -> u64 {
    p.log()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("stats: requests "))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn print_table(r: &Results) {
    println!(
        "bench-health {}: {} servers, interval {} s, steady {} s (loadavg before: {})",
        r.date, r.servers, r.interval, r.steady_secs, r.loadavg_before
    );
    println!(
        "{:<24} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "checker", "CPU %", "idle %", "RSS KiB", "HWM KiB", "median s", "min s", "max s"
    );
    println!(
        "responder: {:.0} requests/s answered during the steady window",
        r.responder_requests_per_s
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    for c in &r.checkers {
        if let Some(why) = &c.skipped {
            println!("{:<24} not measured: {why}", c.name);
            continue;
        }
        println!(
            "{:<24} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9}",
            c.name,
            f(c.cpu_pct),
            f(c.idle_cpu_pct),
            c.rss_kib.map_or("-".into(), |v| v.to_string()),
            c.hwm_kib.map_or("-".into(), |v| v.to_string()),
            f(c.median_s),
            f(c.min_s),
            f(c.max_s)
        );
        let all: Vec<String> = c
            .deaths
            .iter()
            .map(|d| d.map_or("none".into(), |x| format!("{x:.2}")))
            .collect();
        println!("{:<24} deaths: {}", "", all.join(" "));
        if let Some(rss) = c.idle_rss_kib {
            println!("{:<24} RSS without advisors: {rss} KiB", "");
        }
    }
}
