//! The cases: bridge (no balancer), nftables, Tandem; the connection and UDP measurements.

use super::*;

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
                self.args.load.concurrency,
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
                self.args.load.concurrency,
                Duration::from_secs_f64(self.args.load.conn_secs),
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
                Duration::from_secs_f64(a.load.udp_secs),
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

    pub(super) fn bridge_case(&self) -> Result<Row> {
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

    pub(super) fn nft_case(&self, lbk: &Host) -> Result<Row> {
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

    pub(super) fn tandem_case(
        &self,
        workers: usize,
        ring: &str,
        mac: bool,
        nat: bool,
    ) -> Result<Vec<Row>> {
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
