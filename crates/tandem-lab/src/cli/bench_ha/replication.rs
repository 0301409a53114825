use super::*;

#[derive(Clone, Debug, Serialize)]
pub(super) struct CostRow {
    pub(super) repstrategy: String,
    pub(super) round: usize,
    pub(super) conn: ConnRate,
    /// Records the Active's sender sent during the connection-rate measurement.
    pub(super) conn_records_sent: u64,
    pub(super) flood: FloodReport,
    pub(super) delivered: u64,
    pub(super) delivered_pps: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Rss {
    pub(super) active_kb: u64,
    pub(super) standby_kb: u64,
    pub(super) active_hwm_kb: u64,
    pub(super) standby_hwm_kb: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct ReplicationResult {
    pub(super) cost: Vec<CostRow>,
    pub(super) conn_ratio: f64,
    pub(super) pps_ratio: f64,
    pub(super) burst_sent: u64,
    pub(super) burst_passes: usize,
    pub(super) burst_elapsed_s: f64,
    pub(super) active_records: u64,
    pub(super) standby_records_after_burst: u64,
    pub(super) standby_catch_up_s: Option<f64>,
    pub(super) burst_records_sent: u64,
    pub(super) burst_batches_sent: u64,
    pub(super) burst_records_per_batch: f64,
    pub(super) burst_retransmits: u64,
    pub(super) burst_overflow_dropped: u64,
    pub(super) resync_s: Option<f64>,
    pub(super) resync_restart_s: f64,
    pub(super) resync_records_sent: u64,
    pub(super) resync_batches_sent: u64,
    pub(super) resync_records_per_batch: f64,
    pub(super) resync_retransmits: u64,
    pub(super) sender_last_full_sync: serde_json::Value,
    pub(super) receiver_last_full_sync: serde_json::Value,
    pub(super) standby_records_after_resync: u64,
    pub(super) active_records_at_resync: u64,
    /// Slowest `tandemctl highavailability status` on the Active during the resync, ms: the
    /// longest the Active's control lock (and so its HA thread) was held.
    pub(super) active_ctl_max_ms: f64,
    /// UDP datagrams the Standby's kernel dropped for a full socket buffer during the resync.
    pub(super) standby_udp_rcvbuf_errors: u64,
    /// HA transitions (older than the restart excluded) on both nodes after the resync.
    pub(super) resync_transitions: Vec<String>,
    pub(super) rss_idle: Rss,
    pub(super) rss_loaded: Rss,
    pub(super) rss_after_resync: Rss,
}

pub(super) fn rss(pid: u32) -> (u64, u64) {
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

pub(super) fn pid(node: &TandemNode) -> u32 {
    node.process.as_ref().map(|p| p.pid()).unwrap_or(0)
}

pub(super) fn rss_of(active: &TandemNode, standby: &TandemNode) -> Rss {
    let (a, ah) = rss(pid(active));
    let (s, sh) = rss(pid(standby));
    Rss {
        active_kb: a,
        standby_kb: s,
        active_hwm_kb: ah,
        standby_hwm_kb: sh,
    }
}

pub(super) fn status(node: &TandemNode) -> serde_json::Value {
    node.ctl_json(&["highavailability", "status"])
        .unwrap_or(serde_json::Value::Null)
}

pub(super) fn sender(node: &TandemNode) -> (u64, u64, u64, u64) {
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

pub(super) fn records(node: &TandemNode) -> u64 {
    node.ctl_json(&["executor", "status"])
        .map(|s| s["connection_records"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Connections made on `port` so far (sum of the servers' totals in `server report`).
pub(super) fn port_total(node: &TandemNode, port: u16) -> u64 {
    node.ctl_json(&["server", "report", &format!("{CLUSTER_IP}@{port}@")])
        .map(|rows| {
            rows.as_array()
                .map(|a| a.iter().map(|r| r["total"].as_u64().unwrap_or(0)).sum())
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

pub(super) fn replication_section(args: &BenchHaArgs) -> Result<ReplicationResult> {
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
            let (secs, conc) = (
                Duration::from_secs_f64(args.load.conn_secs),
                args.load.concurrency,
            );
            let conn = cl
                .client
                .in_ns(move || conn_rate(target, conc, secs, Duration::from_secs(2)))?;
            let conn_records_sent = sender(&lb1).0 - before;
            std::thread::sleep(Duration::from_millis(500));
            let count = || sinks.iter().map(UdpSink::count).sum::<u64>();
            let c0 = count();
            let utarget = ClusterLab::cluster(SINK_PORT);
            let usecs = Duration::from_secs_f64(args.load.udp_secs);
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

pub(super) fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

pub(super) fn csum(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    sum
}

pub(super) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP SYN from `src:sport` to the cluster's SYN_PORT, as an Ethernet frame.
pub(super) fn syn_frame(dst: [u8; 6], src_mac: [u8; 6], src: [u8; 4], sport: u16) -> [u8; 54] {
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
pub(super) fn syn_burst(lb_mac: [u8; 6], client_mac: [u8; 6], n: usize, rate: u64) -> Result<u64> {
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

pub(super) fn print_replication(r: &ReplicationResult) {
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
