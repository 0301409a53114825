use super::*;

/// nftables DNAT of the VIP's port 80 over the servers, with masquerade, on both ka hosts.
pub(super) fn setup_keepalived_datapath(cl: &ClusterLab, kas: &[Host]) -> Result<()> {
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

pub(super) fn holds_vip(ka: &Host) -> bool {
    ka.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{VIP}/")))
        .unwrap_or(false)
}

pub(super) fn keepalived_config(i: usize, advert: f64, notify: &Path) -> String {
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

pub(super) fn start_keepalived(
    lab: &Lab,
    ka: &Host,
    i: usize,
    advert: f64,
) -> Result<(LabProcess, PathBuf)> {
    let dir = lab.log_dir();
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

pub(super) fn mtime_unix(path: &Path) -> Option<f64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    m.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

pub(super) fn keepalived_failover(
    cl: &ClusterLab,
    kas: &[Host],
    advert: f64,
    failure: Failure,
    run: usize,
) -> Result<FailoverRun> {
    // A clean slate: no VIP anywhere, no failure rule, no stale neighbour entries.
    for ka in kas {
        let _ = ka.exec(["ip", "neigh", "flush", "all"]);
        let _ = ka.exec(["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
        let _ = ka.exec(["nft", "delete", "table", "ip", "kadead"]);
        let _ = ka.exec(["conntrack", "-F"]);
    }
    let (mut ka1, _n1) = start_keepalived(&cl.lab, &kas[0], 0, advert)?;
    wait_until(Duration::from_secs(20), "ka1 to hold the VIP", || {
        holds_vip(&kas[0])
    })
    .with_context(|| ka1.log())?;
    let (mut ka2, n2) = start_keepalived(&cl.lab, &kas[1], 1, advert)?;
    ka2.wait_for_log("Entering BACKUP STATE", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs_f64((advert * 5.0).max(0.5)));
    // After a link cut the neighbour entries of the two may still be failed: ka2 can go MASTER
    // before ARP resolves, then yields to ka1's priority. Wait for that.
    let settled = wait_until(Duration::from_secs(10), "keepalived to settle", || {
        holds_vip(&kas[0]) && !holds_vip(&kas[1])
    });
    if settled.is_err() {
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
    let entries = |p: &LabProcess| p.log().matches("Entering ").count();
    let before = (entries(&ka1), entries(&ka2));
    std::thread::sleep(Duration::from_secs(1));
    // As for Tandem: a pair that changed state during the warm-up is a flap, not a failover.
    if (entries(&ka1), entries(&ka2)) != before || holds_vip(&kas[1]) {
        let _ = probe.finish();
        ka1.kill()?;
        ka2.kill()?;
        progress("  keepalived changed state before the failure (a false takeover)");
        return Ok(FailoverRun {
            system: "keepalived".into(),
            failure: failure.name().into(),
            setting_s: advert,
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
    let (cut, killed) = match failure {
        Failure::Kill => {
            // The node's data path dies, then its keepalived (SIGKILL to the whole process
            // group).
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
            (cut, killed)
        }
        Failure::LinkCut => {
            let cut = unix_now();
            kas[0].link_down()?;
            (cut, unix_now())
        }
    };
    let limit = Duration::from_secs_f64(advert * 10.0 + 5.0);
    wait_until(limit, "ka2 to take the VIP", || holds_vip(&kas[1]))?;
    let recovered = wait_recovered(target, &cl.client, limit);
    std::thread::sleep(Duration::from_millis(200));
    let attempts = probe.finish();
    let a = analyse(&attempts, killed);
    let detect_ms = mtime_unix(&n2).map(|t| (t - killed) * 1000.0);
    ka2.kill()?;
    if failure == Failure::LinkCut {
        // ka1 goes before its cable comes back (it would preempt ka2 with its priority).
        ka1.kill()?;
        kas[0].link_up()?;
    }
    if !recovered {
        progress("  warning: service did not come back within the limit");
    }
    Ok(FailoverRun {
        system: "keepalived".into(),
        failure: failure.name().into(),
        setting_s: advert,
        run,
        flapped_before: false,
        gap_ms: a.gap,
        answered_ms: a.answered,
        detect_ms,
        failed_after: a.failed,
        attempts_after: a.after,
        last_ok_before_ms: a.last_ok,
        datapath_cut_before_ms: (failure == Failure::Kill).then_some((killed - cut) * 1000.0),
        failure_call_ms: if failure == Failure::LinkCut {
            (killed - cut) * 1000.0
        } else {
            0.0
        },
    })
}

// ---------------------------------------------------------------------------------------------
// keepalived's fastest stable setting, and keepalived soaked with VRRP adverts dropped.

/// A keepalived pair (ka1 priority 254, ka2 253) alone in a lab of its own, settled: ka1
/// MASTER holding the VIP, ka2 BACKUP.
pub(super) struct KaPair {
    pub(super) lab: Lab,
    pub(super) kas: Vec<Host>,
    pub(super) procs: Vec<LabProcess>,
    pub(super) advert: f64,
}

impl KaPair {
    pub(super) fn start(tag: &str, advert: f64) -> Result<KaPair> {
        let lab = Lab::new(tag)?;
        let kas: Vec<Host> = (0..2)
            .map(|i| lab.add_host(&format!("ka{}", i + 1), &[&format!("{}/24", KA_IPS[i])]))
            .collect::<Result<_>>()?;
        let (ka1, _) = start_keepalived(&lab, &kas[0], 0, advert)?;
        wait_until(Duration::from_secs(20), "ka1 to hold the VIP", || {
            holds_vip(&kas[0])
        })
        .with_context(|| ka1.log())?;
        let (mut ka2, _) = start_keepalived(&lab, &kas[1], 1, advert)?;
        ka2.wait_for_log("Entering BACKUP STATE", Duration::from_secs(20))?;
        std::thread::sleep(Duration::from_secs_f64((advert * 5.0).max(1.0)));
        Ok(KaPair {
            lab,
            kas,
            procs: vec![ka1, ka2],
            advert,
        })
    }

    /// VRRP state entries (MASTER or BACKUP) in each daemon's log so far.
    pub(super) fn entries(&self) -> [u64; 2] {
        let n = |p: &LabProcess| {
            p.log()
                .lines()
                .filter(|l| {
                    l.contains("Entering MASTER STATE") || l.contains("Entering BACKUP STATE")
                })
                .count() as u64
        };
        [n(&self.procs[0]), n(&self.procs[1])]
    }

    pub(super) fn state_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (i, p) in self.procs.iter().enumerate() {
            for l in p.log().lines().filter(|l| l.contains("Entering ")) {
                v.push(format!("ka{}: {l}", i + 1));
            }
        }
        v
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct KaStability {
    pub(super) advert_s: f64,
    pub(super) duration_s: f64,
    /// VRRP state changes after the pair settled, ka1 and ka2 (0, 0: stable).
    pub(super) changes: [u64; 2],
    /// Polls (every 100 ms) at which both held the VIP.
    pub(super) both_held_vip: u64,
    pub(super) polls: u64,
    pub(super) stable: bool,
    pub(super) log: Vec<String>,
}

/// Watches a settled pair for `duration`; counts state changes and polls with the VIP on both.
fn watch_ka(pair: &KaPair, duration: Duration) -> KaStability {
    let before = pair.entries();
    let start = Instant::now();
    let mut r = KaStability {
        advert_s: pair.advert,
        ..KaStability::default()
    };
    while start.elapsed() < duration && !interrupted() {
        r.polls += 1;
        if holds_vip(&pair.kas[0]) && holds_vip(&pair.kas[1]) {
            r.both_held_vip += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = pair.entries();
    r.duration_s = start.elapsed().as_secs_f64();
    r.changes = [after[0] - before[0], after[1] - before[1]];
    r.stable = r.changes == [0, 0] && r.both_held_vip == 0;
    r.log = pair.state_lines();
    r
}

/// Every `--ka-candidates` advert_int in a lab of its own, all at once, for `--ka-stable-secs`;
/// returns the results, smallest advert_int first.
pub(super) fn ka_stability_section(args: &BenchHaArgs) -> Result<Vec<KaStability>> {
    which("keepalived").context("keepalived is not installed (apt-get install -y keepalived)")?;
    let mut pairs = Vec::new();
    for &a in &args.ka_candidates {
        progress(&format!(
            "ka-stability: keepalived pair at advert_int {a} s"
        ));
        pairs.push(KaPair::start("kastab", a)?);
    }
    let duration = Duration::from_secs_f64(args.ka_stable_secs);
    progress(&format!(
        "ka-stability: {} pair(s) side by side for {} s",
        pairs.len(),
        args.ka_stable_secs
    ));
    let mut out: Vec<KaStability> = std::thread::scope(|scope| {
        let hs: Vec<_> = pairs
            .iter()
            .map(|p| scope.spawn(move || watch_ka(p, duration)))
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for p in pairs {
        drop(p.procs);
        p.lab.shutdown()?;
    }
    out.sort_by(|a, b| a.advert_s.total_cmp(&b.advert_s));
    Ok(out)
}

/// The smallest advert_int that was stable, and every larger one stable too.
pub(super) fn fastest_stable(v: &[KaStability]) -> Option<f64> {
    let mut best = None;
    for r in v.iter().rev() {
        if !r.stable {
            break;
        }
        best = Some(r.advert_s);
    }
    best
}

pub(super) fn print_ka_stability(v: &[KaStability]) {
    println!();
    println!("## keepalived: the fastest stable advert_int (no loss added, pairs side by side)");
    println!();
    println!(
        "| advert_int | duration s | state changes ka1, ka2 | polls with the VIP on both | stable |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for r in v {
        println!(
            "| {} s | {:.0} | {}, {} | {} of {} | {} |",
            r.advert_s,
            r.duration_s,
            r.changes[0],
            r.changes[1],
            r.both_held_vip,
            r.polls,
            if r.stable { "yes" } else { "**no**" }
        );
        if !r.stable {
            for l in r.log.iter().take(12) {
                println!("    {l}");
            }
        }
    }
    match fastest_stable(v) {
        Some(a) => println!("\nfastest stable advert_int: {a} s"),
        None => println!("\nno candidate was stable"),
    }
    std::io::stdout().flush().ok();
}

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct KaSoakResult {
    pub(super) advert_s: f64,
    pub(super) drop_pct: u32,
    pub(super) watch: KaStability,
    /// VRRP datagrams ka1 sent / dropped, received / dropped (nft counters).
    pub(super) out_total: u64,
    pub(super) out_dropped: u64,
    pub(super) in_total: u64,
    pub(super) in_dropped: u64,
}

/// A keepalived pair with `drop_pct` % of VRRP (IP protocol 112) dropped in ka1, both
/// directions, the same nftables rule as Tandem's soak.
pub(super) fn ka_soak_prepare(advert: f64, drop_pct: u32) -> Result<KaPair> {
    let pair = KaPair::start("kasoak", advert)?;
    let rules = format!(
        "table inet hasoak {{\n\
         \tchain o {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\tip protocol vrrp counter\n\
         \t\tip protocol vrrp numgen random mod 100 < {drop_pct} counter drop\n\
         \t}}\n\
         \tchain i {{\n\
         \t\ttype filter hook input priority 0; policy accept;\n\
         \t\tip protocol vrrp counter\n\
         \t\tip protocol vrrp numgen random mod 100 < {drop_pct} counter drop\n\
         \t}}\n\
         }}\n"
    );
    let path = pair.lab.log_dir().join("kasoak.nft");
    std::fs::write(&path, &rules)?;
    pair.kas[0]
        .run(["nft", "-c", "-f", &path.display().to_string()])
        .context("nft -c")?;
    pair.kas[0].run(["nft", "-f", &path.display().to_string()])?;
    Ok(pair)
}

pub(super) fn ka_soak_one(pair: &KaPair, duration: Duration, drop_pct: u32) -> KaSoakResult {
    let watch = watch_ka(pair, duration);
    let (out_total, out_dropped) = nft_counters(&pair.kas[0], "o");
    let (in_total, in_dropped) = nft_counters(&pair.kas[0], "i");
    KaSoakResult {
        advert_s: pair.advert,
        drop_pct,
        watch,
        out_total,
        out_dropped,
        in_total,
        in_dropped,
    }
}

pub(super) fn print_ka_soak(v: &[KaSoakResult]) {
    if v.is_empty() {
        return;
    }
    println!();
    println!("## keepalived beside it: VRRP adverts dropped (nftables in ka1, both directions)");
    println!();
    println!(
        "| advert_int | duration s | drop % | ka1 sent/dropped | ka1 received/dropped | state changes ka1, ka2 | polls with the VIP on both |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in v {
        println!(
            "| {} s | {:.0} | {} | {}/{} | {}/{} | {}, {} | {} of {} |",
            r.advert_s,
            r.watch.duration_s,
            r.drop_pct,
            r.out_total,
            r.out_dropped,
            r.in_total,
            r.in_dropped,
            r.watch.changes[0],
            r.watch.changes[1],
            r.watch.both_held_vip,
            r.watch.polls
        );
        for l in r.watch.log.iter().skip(2).take(20) {
            println!("    {l}");
        }
    }
    std::io::stdout().flush().ok();
}
