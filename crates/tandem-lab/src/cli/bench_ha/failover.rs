use super::*;

// The probe: a new connection every 10 ms.

#[derive(Clone, Debug)]
pub(super) struct Attempt {
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) ok: bool,
}

pub(super) struct Probe {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) handle: std::thread::JoinHandle<Vec<Attempt>>,
}

impl Probe {
    pub(super) fn start(client: &Host, target: SocketAddr) -> Result<Probe> {
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

    pub(super) fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Failover.

#[derive(Clone, Debug, Serialize)]
pub(super) struct FailoverRun {
    pub(super) system: String,
    /// "kill -9" or "link cut".
    pub(super) failure: String,
    /// hatimeout (Tandem) or advert_int (keepalived), seconds.
    pub(super) setting_s: f64,
    pub(super) run: usize,
    /// The pair changed roles by itself during the warm-up: no failover measured.
    pub(super) flapped_before: bool,
    /// First answered attempt started after the failure, minus the failure, ms.
    pub(super) gap_ms: Option<f64>,
    /// When that attempt was answered, ms after the failure.
    pub(super) answered_ms: Option<f64>,
    /// When the survivor went Active/MASTER, ms after the failure.
    pub(super) detect_ms: Option<f64>,
    /// Attempts started after the failure that failed, and all started after it.
    pub(super) failed_after: usize,
    pub(super) attempts_after: usize,
    /// Last answered attempt started before the failure, ms before it (negative).
    pub(super) last_ok_before_ms: Option<f64>,
    /// How long the call that caused the failure took (`ip link set down` for a link cut), ms;
    /// the failure is taken at its end.
    pub(super) failure_call_ms: f64,
    /// keepalived: how long before the SIGKILL the data path was cut, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) datapath_cut_before_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct Summary {
    pub(super) system: String,
    pub(super) failure: String,
    pub(super) setting_s: f64,
    pub(super) runs: usize,
    /// Runs not counted: the pair changed roles by itself before the failure.
    pub(super) flapped_before: usize,
    pub(super) gap_min_ms: f64,
    pub(super) gap_median_ms: f64,
    pub(super) gap_max_ms: f64,
    pub(super) detect_median_ms: Option<f64>,
    /// Theoretical detection time: hatimeout, or 3 × advert_int + skew.
    pub(super) expected_detect_ms: f64,
}

pub(super) struct Analysis {
    pub(super) gap: Option<f64>,
    pub(super) answered: Option<f64>,
    pub(super) failed: usize,
    pub(super) after: usize,
    pub(super) last_ok: Option<f64>,
}

pub(super) fn analyse(attempts: &[Attempt], failure: f64) -> Analysis {
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
pub(super) fn wait_recovered(target: SocketAddr, client: &Host, limit: Duration) -> bool {
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

/// How the Active fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// `kill -9` of the daemon (Tandem: its data plane dies with it; keepalived: the data path
    /// is cut by nftables first, see the module doc).
    Kill,
    /// The node's cable is cut: the switch-side end of its veth goes down.
    LinkCut,
}

impl Failure {
    pub(super) fn parse(s: &str) -> Result<Failure> {
        match s {
            "kill" => Ok(Failure::Kill),
            "linkcut" => Ok(Failure::LinkCut),
            _ => bail!("unknown failure {s:?} (expected kill or linkcut)"),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Failure::Kill => "kill -9",
            Failure::LinkCut => "link cut",
        }
    }
}

pub(super) fn failover_section(
    args: &BenchHaArgs,
    tandem: bool,
    keepalived: bool,
    ka_adverts: &[f64],
    results: &mut Results,
) -> Result<()> {
    let failures: Vec<Failure> = args
        .failures
        .iter()
        .map(|s| Failure::parse(s))
        .collect::<Result<_>>()?;
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
            for &failure in &failures {
                let mut run = 0;
                let mut valid = 0;
                while valid < args.runs && run < args.runs * 2 {
                    run += 1;
                    if interrupted() {
                        bail!("interrupted");
                    }
                    let r = tandem_failover(&cl, h, failure, run).with_context(|| {
                        format!(
                            "Tandem failover ({}), hatimeout {h}, run {run}",
                            failure.name()
                        )
                    })?;
                    progress(&format!(
                        "  tandem hatimeout {h} s, {} run {run}: gap {} ms, detected at {} ms, {} of {} attempts failed",
                        failure.name(),
                        fmt_opt(r.gap_ms),
                        fmt_opt(r.detect_ms),
                        r.failed_after,
                        r.attempts_after
                    ));
                    if !r.flapped_before {
                        valid += 1;
                    }
                    results.failover.push(r);
                }
                summarize(results, "tandem", failure, h, h * 1000.0);
            }
        }
    }
    if keepalived {
        which("keepalived")
            .context("keepalived is not installed (apt-get install -y keepalived)")?;
        setup_keepalived_datapath(&cl, &kas)?;
        for &advert in ka_adverts {
            let skew = (256 - KA_PRIORITIES[1]) as f64 * advert / 256.0;
            for &failure in &failures {
                let mut run = 0;
                let mut valid = 0;
                while valid < args.runs && run < args.runs * 2 {
                    run += 1;
                    if interrupted() {
                        bail!("interrupted");
                    }
                    let r = keepalived_failover(&cl, &kas, advert, failure, run).with_context(
                        || {
                            format!(
                                "keepalived failover ({}), advert_int {advert}, run {run}",
                                failure.name()
                            )
                        },
                    )?;
                    progress(&format!(
                        "  keepalived advert_int {advert} s, {} run {run}: gap {} ms, MASTER at {} ms, {} of {} attempts failed",
                        failure.name(),
                        fmt_opt(r.gap_ms),
                        fmt_opt(r.detect_ms),
                        r.failed_after,
                        r.attempts_after
                    ));
                    if !r.flapped_before {
                        valid += 1;
                    }
                    results.failover.push(r);
                }
                summarize(
                    results,
                    "keepalived",
                    failure,
                    advert,
                    (3.0 * advert + skew) * 1000.0,
                );
            }
        }
    }
    cl.lab.shutdown()?;
    Ok(())
}

pub(super) fn summarize(
    results: &mut Results,
    system: &str,
    failure: Failure,
    setting: f64,
    expected: f64,
) {
    let runs: Vec<&FailoverRun> = results
        .failover
        .iter()
        .filter(|r| r.system == system && r.setting_s == setting && r.failure == failure.name())
        .collect();
    let flaps = runs.iter().filter(|r| r.flapped_before).count();
    let runs: Vec<&FailoverRun> = runs.into_iter().filter(|r| !r.flapped_before).collect();
    let mut gaps: Vec<f64> = runs.iter().filter_map(|r| r.gap_ms).collect();
    let mut detects: Vec<f64> = runs.iter().filter_map(|r| r.detect_ms).collect();
    let min = gaps.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = gaps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    results.failover_summary.push(Summary {
        system: system.into(),
        failure: failure.name().into(),
        setting_s: setting,
        runs: runs.len(),
        flapped_before: flaps,
        gap_min_ms: min,
        gap_median_ms: median(&mut gaps),
        gap_max_ms: max,
        detect_median_ms: (!detects.is_empty()).then(|| median(&mut detects)),
        expected_detect_ms: expected,
    });
}

/// Waits until one node of the pair is Active and the other Standby, both Synchronized, and
/// returns which one is Active (0: `lb1`). Either may end Active: at tiny hatimeouts the first
/// to join may be alone long enough to go Active, and manual recovery keeps it so.
pub(super) fn wait_pair_settled(lb1: &TandemNode, lb2: &TandemNode) -> Result<usize> {
    let mut active = None;
    wait_until(
        Duration::from_secs(20),
        "one node Active, the other Standby, synchronized",
        || {
            let (a, b) = (ha_state(lb1), ha_state(lb2));
            let sync = a.1 == "Synchronized" && b.1 == "Synchronized";
            active = match (a.0.as_str(), b.0.as_str()) {
                ("Active", "Standby") if sync => Some(0),
                ("Standby", "Active") if sync => Some(1),
                _ => None,
            };
            active.is_some()
        },
    )?;
    Ok(active.unwrap_or(0))
}

pub(super) fn tandem_failover(
    cl: &ClusterLab,
    hatimeout: f64,
    failure: Failure,
    run: usize,
) -> Result<FailoverRun> {
    let lb1 = TandemNode::start(&cl.lab, &cl.lbs[0], &demo_config(1), &[])?;
    let lb2 = TandemNode::start(&cl.lab, &cl.lbs[1], &demo_config(2), &[])?;
    let h = format!("{hatimeout}");
    for n in [&lb1, &lb2] {
        n.ctl(&["executor", "set", "hatimeout", &h])?;
    }
    join_pair(&lb1, 1, "manual", HA_PORT)?;
    join_pair(&lb2, 2, "manual", HA_PORT)?;
    let a = wait_pair_settled(&lb1, &lb2)?;
    let (mut lb1, lb2) = if a == 0 { (lb1, lb2) } else { (lb2, lb1) };
    let failing_host = &cl.lbs[a];
    let target = ClusterLab::cluster(cluster::HTTP_PORT);
    if !wait_recovered(target, &cl.client, Duration::from_secs(10)) {
        bail!("the pair does not serve {target}");
    }
    let probe = Probe::start(&cl.client, target)?;
    std::thread::sleep(Duration::from_secs(1));
    // A pair that changed roles during the warm-up (a false takeover, possible at tiny
    // hatimeouts on a busy machine) would fail its Standby: such a run is recorded as a flap,
    // not as a failover.
    let flapped = ha_state(&lb1).0 != "Active" || ha_state(&lb2).0 != "Standby";
    if flapped {
        let transitions = lb2.ctl_json(&["highavailability", "status"])?["transitions"].clone();
        let _ = probe.finish();
        progress(&format!(
            "  the pair changed roles before the failure (a false takeover): {transitions}"
        ));
        return Ok(FailoverRun {
            system: "tandem".into(),
            failure: failure.name().into(),
            setting_s: hatimeout,
            run,
            flapped_before: true,
            gap_ms: None,
            answered_ms: None,
            detect_ms: None,
            failed_after: 0,
            attempts_after: 0,
            last_ok_before_ms: None,
            datapath_cut_before_ms: None,
            failure_call_ms: 0.0,
        });
    }
    let before_failure = unix_now();
    match failure {
        Failure::Kill => lb1.kill()?,
        Failure::LinkCut => failing_host.link_down()?,
    }
    // kill(2) acts at once; `ip link set down` acts when the command is done, ~5 ms after it
    // was started: the failure is the moment the call returned.
    let failed_at = match failure {
        Failure::Kill => before_failure,
        Failure::LinkCut => unix_now(),
    };
    let limit = Duration::from_secs_f64(hatimeout * 3.0 + 5.0);
    let outcome = (|| -> Result<(Option<f64>, bool)> {
        wait_ha_state(&lb2, "Active", false, limit)?;
        // The daemon computed the ages somewhere between these two instants: take the middle.
        let before = unix_now();
        let status = lb2.ctl_json(&["highavailability", "status"])?;
        let asked = (before + unix_now()) / 2.0;
        let recovered = wait_recovered(target, &cl.client, limit);
        let detect_ms = status["transitions"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["to"] == "Active"))
            .and_then(|t| t["age_ms"].as_f64())
            .map(|age| (asked - age / 1000.0 - failed_at) * 1000.0);
        Ok((detect_ms, recovered))
    })();
    std::thread::sleep(Duration::from_millis(200));
    let attempts = probe.finish();
    // The cut node goes before its cable comes back: it must not meet the new Active.
    drop(lb1);
    drop(lb2);
    if failure == Failure::LinkCut {
        failing_host.link_up()?;
    }
    let (detect_ms, recovered) = outcome?;
    let a = analyse(&attempts, failed_at);
    if !recovered {
        progress("  warning: service did not come back within the limit");
    }
    Ok(FailoverRun {
        system: "tandem".into(),
        failure: failure.name().into(),
        setting_s: hatimeout,
        run,
        gap_ms: a.gap,
        answered_ms: a.answered,
        detect_ms,
        failed_after: a.failed,
        attempts_after: a.after,
        last_ok_before_ms: a.last_ok,
        flapped_before: false,
        datapath_cut_before_ms: None,
        failure_call_ms: (failed_at - before_failure) * 1000.0,
    })
}

pub(super) fn print_failover(r: &Results) {
    println!();
    println!(
        "## Failover: kill -9 or link cut of the active, new connection every 10 ms (gap = first answered attempt started after the failure)"
    );
    println!();
    println!(
        "| system | failure | hatimeout / advert_int | runs | flapped before the failure | gap min ms | gap median ms | gap max ms | detection median ms | expected detection ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for s in &r.failover_summary {
        println!(
            "| {} | {} | {} s | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} |",
            s.system,
            s.failure,
            s.setting_s,
            s.runs,
            s.flapped_before,
            s.gap_min_ms,
            s.gap_median_ms,
            s.gap_max_ms,
            fmt_opt(s.detect_median_ms),
            s.expected_detect_ms
        );
    }
    println!();
    println!(
        "| system | failure | setting s | run | gap ms | answered ms | detect ms | failed/attempts after | last ok before ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for x in &r.failover {
        println!(
            "| {} | {} | {} | {}{} | {} | {} | {} | {}/{} | {} |",
            x.system,
            x.failure,
            x.setting_s,
            x.run,
            if x.flapped_before { " (flapped)" } else { "" },
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
