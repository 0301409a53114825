//! `tandem-lab bench-ha`: Tandem's high availability measured in a lab, beside keepalived.
//!
//! Sections (`--only`, comma-separated; all of them by default), one file each:
//!
//! - `failover` ([`failover`]): a failure of the Active `tandemd` of a pair (lb1 192.0.2.2,
//!   lb2 192.0.2.3, cluster 192.0.2.100, MAC forwarding to three servers) while the client opens
//!   a new HTTP connection every 10 ms (each in its own thread, 1 s timeout). The gap is the
//!   start of the first attempt begun after the failure that was answered, minus the failure.
//!   Failures (`--failures`): `kill` (`kill -9` of the daemon) and `linkcut` (the switch-side
//!   end of lb1's veth goes down). Once per `--hatimeouts` value (`executor set hatimeout` on
//!   both nodes before the pair is formed) and failure, `--runs` times, each run with a freshly
//!   started pair.
//! - `ka-stability` ([`keepalived`]): keepalived's fastest stable setting. A keepalived pair per
//!   `--ka-candidates` advert_int, one lab each, side by side for `--ka-stable-secs` with no loss
//!   added; a candidate is stable if neither daemon changed VRRP state and the VIP was never on
//!   both. The fastest stable one joins `--ka-adverts` for the `keepalived` section.
//! - `keepalived` ([`keepalived`]): the same failures and the same probe against keepalived
//!   (VRRPv3, unicast) on two more hosts, ka1 192.0.2.5 (priority 254) and ka2 192.0.2.6
//!   (priority 253), managing the VIP 192.0.2.150; the node holding the VIP forwards it with
//!   nftables DNAT (`numgen inc mod 3` over the same servers, masquerade), at each
//!   `--ka-adverts` advert_int. `kill`: the data path of ka1 dies (an nftables drop of everything
//!   addressed to the VIP, before DNAT) and every keepalived process of ka1 gets SIGKILL, a few
//!   milliseconds later; the gap is measured from the SIGKILL. (SIGKILL alone leaves the VIP and
//!   the DNAT rules of the kernel in place on ka1: forwarding would go on, and the VIP would end
//!   up on both nodes.) `linkcut`: ka1's cable is cut, as for Tandem.
//! - `soak` ([`soak`]): a pair per `--soak-hatimeouts` value and a keepalived pair per
//!   `--soak-ka-adverts` value (all at once, one lab each) with `--drop-pct` % of the heartbeat
//!   port's datagrams (keepalived: of VRRP) dropped by nftables in lb1 / ka1 (the primary), both
//!   directions (`numgen random mod 100 < N`); the HA states polled every 100 ms for
//!   `--duration` seconds. Counts state changes (false takeovers), sub-state changes, and
//!   "partner lost" events, from the polling and from the daemons' own transition history.
//! - `replication` ([`replication`]): (a) new connections/s (HTTP, `--concurrency` threads, `--conn-secs`) and
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
use tandem_lab::{Host, Lab, LabProcess, interrupted, wait_until};

mod failover;
mod keepalived;
mod replication;
mod soak;

use failover::*;
use keepalived::*;
use replication::*;
use soak::*;

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
    /// Sections to run, comma-separated: failover, ka-stability, keepalived, soak, replication
    /// (all by default).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Failures of the failover sections, comma-separated: kill (kill -9), linkcut (cable cut).
    #[arg(long, value_delimiter = ',', default_value = "kill,linkcut")]
    failures: Vec<String>,
    /// advert_int values of the keepalived failover section, seconds (the fastest stable one
    /// found by `ka-stability` is added when that section runs too).
    #[arg(long, value_delimiter = ',', default_value = "0.03,0.67")]
    ka_adverts: Vec<f64>,
    /// advert_int candidates of the `ka-stability` section, seconds (keepalived's minimum is
    /// 0.01).
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.02,0.03,0.05,0.1")]
    ka_candidates: Vec<f64>,
    /// Seconds each `ka-stability` candidate must run without a state change.
    #[arg(long, default_value_t = 120.0)]
    ka_stable_secs: f64,
    /// keepalived advert_int values soaked beside Tandem (empty: none).
    #[arg(long, value_delimiter = ',', default_value = "0.03")]
    soak_ka_adverts: Vec<f64>,
    /// Failover runs per setting.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// hatimeout values of the failover section, seconds (keepalived: advert_int = this / 3).
    #[arg(long, value_delimiter = ',', default_value = "0.02,0.1,2")]
    hatimeouts: Vec<f64>,
    /// Seconds of each soak (the recorded figure is 600).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// hatimeout values soaked side by side, one lab each.
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
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
    #[command(flatten)]
    load: crate::cli::bench::LoadArgs,
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
    ka_stability: Vec<KaStability>,
    soak: Vec<SoakResult>,
    ka_soak: Vec<KaSoakResult>,
    replication: Option<ReplicationResult>,
}

pub fn run(args: BenchHaArgs) -> Result<ExitCode> {
    let all = [
        "failover",
        "ka-stability",
        "keepalived",
        "soak",
        "replication",
    ];
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
    let mut ka_adverts = args.ka_adverts.clone();
    if want("ka-stability") {
        results.ka_stability = ka_stability_section(&args)?;
        print_ka_stability(&results.ka_stability);
        save(&results)?;
        if let Some(a) = fastest_stable(&results.ka_stability)
            && !ka_adverts.contains(&a)
        {
            ka_adverts.insert(0, a);
        }
    }
    if (want("failover") || want("keepalived")) && !interrupted() {
        failover_section(
            &args,
            want("failover"),
            want("keepalived"),
            &ka_adverts,
            &mut results,
        )?;
        print_failover(&results);
        save(&results)?;
    }
    if want("soak") && !interrupted() {
        (results.soak, results.ka_soak) = soak_section(&args)?;
        print_soak(&results.soak);
        print_ka_soak(&results.ka_soak);
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

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
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
