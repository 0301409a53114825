//! The measurements: keep-alive requests, new connections and a UDP flood, round after round.

use super::*;

impl Ctx<'_> {
    /// Waits (as allowed by --quiet-wait) for the machine to be quiet; returns its busy %.
    pub(super) fn quiet(&self) -> f64 {
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

    /// A TCP load: keep-alive requests (`keepalive`) or one request per connection.
    fn tcp(
        &self,
        target: SocketAddr,
        keepalive: bool,
        node: Option<&TandemNode>,
        tag: &str,
    ) -> Result<ConnResult> {
        let client = &self.cl.client;
        let timeout = Duration::from_secs(2);
        let load = |secs: Duration| -> Result<ConnRate> {
            if keepalive {
                bench::keepalive_rate(target, self.args.load.concurrency, secs, timeout)
            } else {
                Ok(bench::conn_rate(
                    target,
                    self.args.load.concurrency,
                    secs,
                    timeout,
                ))
            }
        };
        // Warm-up (neighbour caches, server threads), not measured.
        client.in_ns(|| load(Duration::from_millis(300)))??;
        let background = self.quiet();
        let probe = Probe::start(
            node,
            self.pids.clone(),
            &self.servers,
            self.args,
            &format!("{tag}-{}", if keepalive { "keepalive" } else { "conn" }),
        );
        let rate = client.in_ns(|| load(Duration::from_secs_f64(self.args.conn_secs())))??;
        let (mut usage, _) = probe.finish(node, rate.ok);
        usage.background_busy_pct = background;
        progress(format!(
            "  {tag}: {:.0} {}/s ({} ok, {} failed) p50 {:.2} ms p99 {:.2} ms; lab CPU {:.0}% ({:.0} µs each), machine {:.0}%{}",
            rate.per_sec,
            if keepalive { "keep-alive req" } else { "conn" },
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

    pub(super) fn udp(
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
                Duration::from_secs_f64(a.udp_secs()),
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

    /// `--rounds` rounds of the metrics asked for, through `tcp` (HTTP), and `udp` (the sinks'
    /// port, or the NAT port that maps to it).
    pub(super) fn rounds(
        &self,
        tcp: SocketAddr,
        udp: SocketAddr,
        node: Option<&TandemNode>,
        lb: Option<&Host>,
        tag: &str,
    ) -> Result<Vec<Round>> {
        let mut out = Vec::new();
        let n = self.args.rounds();
        for i in 1..=n {
            if tandem_lab::interrupted() {
                bail!("interrupted");
            }
            let tag = format!("{tag} round {i}/{n}");
            let round = self.round(tcp, udp, node, lb, &tag)?;
            out.push(round);
        }
        Ok(out)
    }

    /// One round of the metrics asked for.
    pub(super) fn round(
        &self,
        tcp: SocketAddr,
        udp: SocketAddr,
        node: Option<&TandemNode>,
        lb: Option<&Host>,
        tag: &str,
    ) -> Result<Round> {
        let mut round = Round::default();
        if self.args.metric("keepalive") {
            round.keepalive = Some(self.tcp(tcp, true, node, tag)?);
        }
        if self.args.metric("conn") {
            round.conn = Some(self.tcp(tcp, false, node, tag)?);
        }
        if self.args.metric("udp") {
            round.udp = Some(self.udp(udp, node, lb, tag)?);
        }
        Ok(round)
    }
}
