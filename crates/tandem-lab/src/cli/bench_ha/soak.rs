use super::*;

// ---------------------------------------------------------------------------------------------
// Soak: false takeovers with heartbeats dropped.

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct SoakResult {
    pub(super) hatimeout_s: f64,
    pub(super) duration_s: f64,
    pub(super) drop_pct: u32,
    /// State changes seen by polling every 100 ms, per node.
    pub(super) state_changes_polled: [u64; 2],
    /// Sub-state changes seen by polling.
    pub(super) sub_state_changes_polled: [u64; 2],
    /// Polls that got no answer.
    pub(super) unreachable_polls: [u64; 2],
    pub(super) polls: u64,
    /// Transitions in the daemons' history (16 kept) younger than the window.
    pub(super) transitions_in_history: [u64; 2],
    /// "partner lost" events in the daemons' event log (64 kept) younger than the window.
    pub(super) partner_lost_events: [u64; 2],
    /// Heartbeat-port datagrams lb1 sent / dropped, received / dropped (nft counters).
    pub(super) out_total: u64,
    pub(super) out_dropped: u64,
    pub(super) in_total: u64,
    pub(super) in_dropped: u64,
    /// The pair's own heartbeat counters at the end (received, lost, sent), per node.
    pub(super) heartbeat_counters: [serde_json::Value; 2],
    pub(super) final_states: [String; 2],
    pub(super) changes: Vec<String>,
    /// The daemons' own record of those transitions, with their reasons.
    pub(super) history: Vec<String>,
}

/// Tandem pairs at `--soak-hatimeouts` and keepalived pairs at `--soak-ka-adverts`, all soaked
/// at the same time, one lab each.
pub(super) fn soak_section(args: &BenchHaArgs) -> Result<(Vec<SoakResult>, Vec<KaSoakResult>)> {
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
        // The drop rule is in lb1, both directions, whichever node is Active.
        wait_pair_settled(&lb1, &lb2)?;
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
    let mut ka_pairs = Vec::new();
    if !args.soak_ka_adverts.is_empty() {
        which("keepalived")
            .context("keepalived is not installed (apt-get install -y keepalived)")?;
    }
    for &a in &args.soak_ka_adverts {
        progress(&format!(
            "soak: building a keepalived pair with advert_int {a} s"
        ));
        ka_pairs.push(ka_soak_prepare(a, args.drop_pct)?);
    }
    let duration = Duration::from_secs_f64(args.duration);
    progress(&format!(
        "soak: {} Tandem pair(s) and {} keepalived pair(s), {} s, {} % of heartbeats dropped each way in lb1 / ka1",
        pairs.len(),
        ka_pairs.len(),
        args.duration,
        args.drop_pct
    ));
    let mut ka_out = Vec::new();
    let results: Vec<Result<SoakResult>> = std::thread::scope(|scope| {
        let ka: Vec<_> = ka_pairs
            .iter()
            .map(|p| scope.spawn(move || ka_soak_one(p, duration, args.drop_pct)))
            .collect();
        let handles: Vec<_> = pairs
            .iter()
            .map(|(h, cl, lb1, lb2)| {
                scope.spawn(move || soak_one(*h, cl, lb1, lb2, duration, args.drop_pct))
            })
            .collect();
        let tandem = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("soak thread panicked")))
            })
            .collect();
        ka_out = ka.into_iter().filter_map(|h| h.join().ok()).collect();
        tandem
    });
    let mut out = Vec::new();
    for r in results {
        out.push(r?);
    }
    for (_, cl, lb1, lb2) in pairs {
        drop((lb1, lb2));
        cl.lab.shutdown()?;
    }
    for p in ka_pairs {
        drop(p.procs);
        p.lab.shutdown()?;
    }
    Ok((out, ka_out))
}

pub(super) fn nft_counters(host: &Host, chain: &str) -> (u64, u64) {
    let text = host
        .run(["nft", "list", "chain", "inet", "hasoak", chain])
        .unwrap_or_default();
    let mut counts = text.lines().filter_map(|l| {
        let i = l.find("counter packets ")?;
        l[i + 16..].split_whitespace().next()?.parse::<u64>().ok()
    });
    (counts.next().unwrap_or(0), counts.next().unwrap_or(0))
}

pub(super) fn soak_one(
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

pub(super) fn print_soak(v: &[SoakResult]) {
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
