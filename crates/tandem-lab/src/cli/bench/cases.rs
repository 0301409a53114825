//! The cases: direct (no balancer), nftables, Tandem with each packet I/O, and the replication
//! section; the lab's IPv6 set-up and the configurations they load.

use super::*;

/// `ip` inside `host` (tolerant of an address that is already there: `replace`).
fn ip(host: &Host, args: &[&str]) -> Result<()> {
    let mut all = vec!["ip"];
    all.extend_from_slice(args);
    host.run(all).map(drop)
}

/// Turns IPv6 on in the bench's hosts and gives them their 2001:db8::/64 addresses (no
/// duplicate address detection, so they are usable at once); the servers get the IPv6 cluster
/// address on `lo` for MAC forwarding (a host answers neighbour solicitations only for
/// addresses of the interface they arrive on, so nothing else is needed for IPv6).
pub(super) fn enable_ipv6(cl: &ClusterLab, lbk: &Host) -> Result<()> {
    let f = Family::V6;
    let mut hosts: Vec<(&Host, IpAddr)> = vec![(&cl.client, f.client()), (lbk, f.lbk())];
    for (i, lb) in cl.lbs.iter().enumerate() {
        hosts.push((lb, f.lb(i + 1)));
    }
    for (i, s) in cl.servers.iter().enumerate() {
        hosts.push((s, f.server(i + 1)));
    }
    for (h, addr) in hosts {
        h.sysctls(&[
            ("net.ipv6.conf.all.disable_ipv6", "0"),
            ("net.ipv6.conf.default.disable_ipv6", "0"),
            ("net.ipv6.conf.eth0.disable_ipv6", "0"),
            ("net.ipv6.conf.lo.disable_ipv6", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.eth0.accept_dad", "0"),
        ])
        .with_context(|| format!("turning IPv6 on in {}", h.name))?;
        ip(
            h,
            &[
                "-6",
                "addr",
                "replace",
                &format!("{addr}/{}", f.prefix()),
                "dev",
                "eth0",
                "nodad",
            ],
        )
        .with_context(|| format!("adding {addr} to {}", h.name))?;
    }
    for s in &cl.servers {
        ip(
            s,
            &[
                "-6",
                "addr",
                "replace",
                &format!("{}/128", f.cluster()),
                "dev",
                "lo",
            ],
        )?;
    }
    // The client's ephemeral ports are the whole range for IPv6 too (one sysctl for both).
    Ok(())
}

/// The rows of a Tandem packet I/O case, one per `--modes` value, not yet measured.
pub(super) fn tandem_rows(family: Family, packetio: &str, modes: &[String]) -> Vec<Row> {
    let name = packetio_label(packetio);
    MODES
        .iter()
        .filter(|m| modes.iter().any(|x| x == *m))
        .map(|m| {
            Row::new(
                family,
                packetio,
                Some(m),
                format!("Tandem {name}, {}", m.to_uppercase()),
            )
        })
        .collect()
}

fn packetio_label(packetio: &str) -> &'static str {
    match packetio {
        "afxdp" => "AF_XDP",
        _ => "AF_PACKET",
    }
}

/// The first useful line of a start failure: the daemon's own error where the log has one.
fn reason(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let line = text
        .lines()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("refused") || l.contains("unknown")
        })
        .or_else(|| text.lines().next())
        .unwrap_or("")
        .trim();
    line.chars().take(240).collect::<String>().replace('|', "/")
}

/// Tandem's configuration for one family: the demo's executor (nfa on lb1's IPv4 address,
/// which names the interface), and the bench's cluster with four ports.
fn tandem_config(family: Family, n: usize, packetio: Option<&str>) -> String {
    let c = family.cluster();
    let servers = (1..=3)
        .map(|i| family.server(i).to_string())
        .collect::<Vec<_>>()
        .join("+");
    let ret = family.return_ip();
    let mut out = match family {
        Family::V4 => format!("{}\n", cluster::demo_config(n)),
        Family::V6 => format!(
            "executor start\nexecutor set nfa {}\ncluster add {c}\n",
            cluster::lb_ip(n)
        ),
    };
    if let Some(p) = packetio {
        out.push_str(&format!("executor set packetio {p}\n"));
    }
    out.push_str(&format!(
        "# tandem-lab bench: HTTP on port {HTTP_PORT}, UDP sinks on port {SINK_PORT}.\n\
         port add {c}@{HTTP_PORT} method mac\n\
         server add {c}@{HTTP_PORT}@{servers}\n\
         port add {c}@{NAT_HTTP_PORT} method nat\n\
         server add {c}@{NAT_HTTP_PORT}@{servers} returnaddress {ret} mapport {HTTP_PORT}\n\
         port add {c}@{SINK_PORT} protocol udp method mac\n\
         server add {c}@{SINK_PORT}@{servers}\n\
         port add {c}@{NAT_UDP_PORT} protocol udp method nat\n\
         server add {c}@{NAT_UDP_PORT}@{servers} returnaddress {ret} mapport {SINK_PORT}\n"
    ));
    out
}

impl Ctx<'_> {
    /// Waits until an HTTP GET from the client through `target` is answered.
    fn wait_serving(&self, target: SocketAddr, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("HTTP through {target}"), || {
            self.cl
                .client
                .http_get(target, Duration::from_millis(500))
                .is_ok()
        })
    }

    pub(super) fn direct_case(&self, family: Family, mut row: Row) -> Row {
        let s1 = family.server(1);
        progress(format!(
            "case direct {}: client straight to s1 ({s1})",
            family.label()
        ));
        let tcp = SocketAddr::new(s1, HTTP_PORT);
        let udp = SocketAddr::new(s1, SINK_PORT);
        if let Err(e) = self.wait_serving(tcp, Duration::from_secs(10)) {
            return row.not_run(reason(&e));
        }
        match self.rounds(tcp, udp, None, None, &format!("direct-{}", family.name())) {
            Ok(r) => row.rounds = r,
            Err(e) => return row.not_run(reason(&e)),
        }
        row
    }

    pub(super) fn nft_case(&self, family: Family, lbk: &Host, mut row: Row) -> Row {
        progress(format!(
            "case nft {}: kernel forwarding in lbk, nftables DNAT numgen inc mod 3 + {}",
            family.label(),
            if family == Family::V4 {
                "masquerade"
            } else {
                "SNAT"
            }
        ));
        let servers: Vec<String> = (1..=3).map(|i| family.server(i).to_string()).collect();
        let map = servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{i} : {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (table, key, fwd) = match family {
            Family::V4 => ("ip", "ip", "net.ipv4.ip_forward"),
            Family::V6 => ("ip6", "ip6", "net.ipv6.conf.all.forwarding"),
        };
        let c = family.cluster();
        let rules = format!(
            "table {table} tandembench {{\n\
             \tchain prerouting {{\n\
             \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
             \t\t{key} daddr {c} tcp dport {HTTP_PORT} dnat to numgen inc mod 3 map {{ {map} }}\n\
             \t\t{key} daddr {c} udp dport {SINK_PORT} dnat to numgen inc mod 3 map {{ {map} }}\n\
             \t}}\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tct status dnat {key} daddr {{ {list} }} {snat}\n\
             \t}}\n\
             }}\n",
            list = servers.join(", "),
            // IPv6 source selection takes the cluster address (also on lbk's eth0) for
            // masquerade, and the servers hold that one on lo: name lbk's own address instead.
            snat = match family {
                Family::V4 => "masquerade".to_string(),
                Family::V6 => format!("snat to {}", family.lbk()),
            },
        );
        let path = self
            .cl
            .lab
            .log_dir()
            .join(format!("lbk-{}.nft", family.name()));
        let cidr = format!(
            "{c}/{}",
            match family {
                Family::V4 => 32,
                Family::V6 => 128,
            }
        );
        let setup = || -> Result<()> {
            std::fs::write(&path, &rules)?;
            lbk.sysctl(fwd, "1")?;
            lbk.run(["nft", "-f", &path.display().to_string()])
                .context("loading the nftables rules (is nft installed?)")?;
            ip(lbk, &["addr", "replace", &cidr, "dev", "eth0", "nodad"])
                .or_else(|_| ip(lbk, &["addr", "replace", &cidr, "dev", "eth0"]))?;
            self.flush_neighbours()
        };
        let result = setup().and_then(|()| {
            let tcp = SocketAddr::new(c, HTTP_PORT);
            self.wait_serving(tcp, Duration::from_secs(10))?;
            let r = self.rounds(
                tcp,
                SocketAddr::new(c, SINK_PORT),
                None,
                Some(lbk),
                &format!("nft-{}", family.name()),
            )?;
            if let Ok(ct) = lbk.exec(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]) {
                progress(format!(
                    "  nft: conntrack entries now {}",
                    String::from_utf8_lossy(&ct.stdout).trim()
                ));
            }
            Ok(r)
        });
        if result.is_err() {
            self.diagnose(&[lbk]);
        }
        // Hand the cluster address back.
        let _ = ip(lbk, &["addr", "del", &cidr, "dev", "eth0"]);
        let _ = lbk.run(["nft", "delete", "table", table, "tandembench"]);
        let _ = lbk.sysctl(fwd, "0");
        let _ = self.flush_neighbours();
        match result {
            Ok(r) => row.rounds = r,
            Err(e) => return row.not_run(reason(&e)),
        }
        row
    }

    /// Starts tandemd on lb `n` (1-based) with `executor set packetio P`. A build whose grammar
    /// has no `packetio` keyword refuses the line; for `afpacket` (then its only packet I/O) the
    /// daemon starts again without it and the note says so; `afxdp` is never replaced.
    fn start_tandem(
        &self,
        family: Family,
        n: usize,
        packetio: &str,
    ) -> std::result::Result<(TandemNode, Option<String>), String> {
        let lb = &self.cl.lbs[n - 1];
        let w = self.args.workers.to_string();
        let flags = ["--workers", w.as_str(), "--ring", self.args.ring.as_str()];
        let start = |cfg: &str| TandemNode::start(&self.cl.lab, lb, cfg, &flags);
        match start(&tandem_config(family, n, Some(packetio))) {
            Ok(node) => Ok((node, None)),
            Err(e) => {
                let why = reason(&e);
                let keyword = why.contains("packetio");
                if packetio == "afpacket" && keyword {
                    progress(format!(
                        "  packetio afpacket refused ({why}): this build has no packetio keyword; AF_PACKET is its only packet I/O, starting without the line"
                    ));
                    start(&tandem_config(family, n, None))
                        .map(|node| {
                            (
                                node,
                                Some("build without the packetio keyword: AF_PACKET only".into()),
                            )
                        })
                        .map_err(|e| reason(&e))
                } else if keyword {
                    Err(format!("packetio {packetio} refused: {why}"))
                } else {
                    Err(format!("tandemd did not start: {why}"))
                }
            }
        }
    }

    /// What tandemd says runs (`packetio_running` of `executor status` or `executor report`,
    /// e.g. `afxdp (copy mode, native XDP on eth0, 1 queue)`); an error if another backend
    /// runs than the one set, or if `afxdp` was set and tandemd does not say that it runs.
    fn check_packetio(
        node: &TandemNode,
        packetio: &str,
    ) -> std::result::Result<Option<serde_json::Value>, String> {
        let mut setting = None;
        for cmd in [["executor", "status"], ["executor", "report"]] {
            let Ok(v) = node.ctl_json(&cmd) else {
                continue;
            };
            let d = if v.get("data").is_some() {
                v["data"].clone()
            } else {
                v
            };
            if let Some(running) = d.get("packetio_running").and_then(|x| x.as_str()) {
                if running.split_whitespace().next() != Some(packetio) {
                    return Err(format!(
                        "packetio {packetio} set, but tandemd runs {running}"
                    ));
                }
                return Ok(Some(serde_json::Value::String(running.to_string())));
            }
            setting = setting.or_else(|| d.get("packetio").cloned());
        }
        if packetio == "afxdp" {
            return Err(format!(
                "packetio afxdp set, but tandemd does not say that AF_XDP runs (no \
                 packetio_running in executor status or report{})",
                setting
                    .map(|s| format!("; packetio {s}"))
                    .unwrap_or_default()
            ));
        }
        Ok(setting)
    }

    pub(super) fn tandem_case(&self, family: Family, packetio: &str) -> Vec<Row> {
        let mut rows = tandem_rows(family, packetio, &self.args.modes);
        progress(format!(
            "case {packetio} {}: tandemd --workers {} --ring {} with executor set packetio {packetio}",
            family.label(),
            self.args.workers,
            self.args.ring
        ));
        let lb = &self.cl.lbs[0];
        if self.args.lb_ingress_drop {
            let c = family.cluster();
            let r = family.return_ip();
            let key = if family == Family::V4 { "ip" } else { "ip6" };
            let rules = format!(
                "table netdev tandembench {{\n\
                 \tchain ingress {{\n\
                 \t\ttype filter hook ingress device eth0 priority 0; policy accept;\n\
                 \t\t{key} daddr {{ {c}, {r} }} drop\n\
                 \t}}\n\
                 }}\n"
            );
            let path = self.cl.lab.log_dir().join("lb1-ingress.nft");
            let _ = lb.run(["nft", "delete", "table", "netdev", "tandembench"]);
            let loaded = std::fs::write(&path, rules)
                .map_err(anyhow::Error::from)
                .and_then(|()| lb.run(["nft", "-f", &path.display().to_string()]));
            if let Err(e) = loaded {
                let why = format!("loading the netdev ingress drop on lb1: {}", reason(&e));
                return rows.into_iter().map(|r| r.not_run(why.clone())).collect();
            }
        }
        let (mut node, note) = match self.start_tandem(family, 1, packetio) {
            Ok(x) => x,
            Err(why) => return rows.into_iter().map(|r| r.not_run(why.clone())).collect(),
        };
        let status = match Self::check_packetio(&node, packetio) {
            Ok(s) => s.or_else(|| note.clone().map(serde_json::Value::String)),
            Err(why) => {
                let _ = node.kill();
                return rows.into_iter().map(|r| r.not_run(why.clone())).collect();
            }
        };
        let _ = self.flush_neighbours();
        let c = family.cluster();
        for row in rows.iter_mut() {
            let (http, udp) = if row.mode.as_deref() == Some("nat") {
                (NAT_HTTP_PORT, NAT_UDP_PORT)
            } else {
                (HTTP_PORT, SINK_PORT)
            };
            row.packetio_status = status.clone();
            if let Some(n) = &note {
                row.label.push_str(&format!(" ({n})"));
            }
            let tcp = SocketAddr::new(c, http);
            let tag = format!(
                "{packetio}-{}-{}",
                row.mode.as_deref().unwrap_or(""),
                family.name()
            );
            let measured = self
                .wait_serving(tcp, Duration::from_secs(10))
                .map_err(|e| {
                    let (rx, fwd, drops) = probe::executor_counters(&node);
                    e.context(format!(
                        "tandemd took the configuration but nothing was answered through {tcp} \
                         (it received {rx} frames, forwarded {fwd}, dropped {drops})"
                    ))
                })
                .and_then(|()| {
                    self.rounds(tcp, SocketAddr::new(c, udp), Some(&node), Some(lb), &tag)
                });
            match measured {
                Ok(r) => row.rounds = r,
                Err(e) => {
                    let why = reason(&e);
                    *row = row.clone().not_run(why);
                }
            }
        }
        if rows.iter().any(|r| r.not_run.is_some()) {
            eprintln!("----- tandemd log -----\n{}", node.log());
        }
        let _ = node.kill();
        let _ = lb.run(["nft", "delete", "table", "netdev", "tandembench"]);
        rows
    }

    /// The pair lb1 + lb2 (IPv4, MAC), `repstrategy none` then `both` on the measured ports,
    /// alternating each round.
    pub(super) fn replication_case(&self, ran: &[&str]) -> Replication {
        let mut out = Replication::default();
        // AF_XDP where it ran, else AF_PACKET.
        let Some(packetio) = ["afxdp", "afpacket"]
            .into_iter()
            .find(|p| ran.contains(p))
            .or_else(|| {
                (!self.args.case("afpacket") && !self.args.case("afxdp")).then_some("afpacket")
            })
        else {
            out.not_run =
                Some("no Tandem packet I/O ran in this bench (see the rows above)".into());
            return out;
        };
        out.packetio = packetio.into();
        progress(format!(
            "case replication: lb1 + lb2 as a pair, packetio {packetio}, repstrategy none vs both"
        ));
        let result = (|| -> std::result::Result<Vec<Row>, String> {
            let (lb1, _) = self.start_tandem(Family::V4, 1, packetio)?;
            let (lb2, _) = self.start_tandem(Family::V4, 2, packetio)?;
            let nodes = [lb1, lb2];
            let pair = || -> Result<()> {
                for (i, n) in nodes.iter().enumerate() {
                    cluster::join_pair(n, i + 1, "manual", HA_PORT)?;
                }
                cluster::wait_ha_state(&nodes[0], "Active", true, Duration::from_secs(20))?;
                cluster::wait_ha_state(&nodes[1], "Standby", true, Duration::from_secs(20))?;
                self.flush_neighbours()?;
                self.wait_serving(
                    SocketAddr::new(Family::V4.cluster(), HTTP_PORT),
                    Duration::from_secs(10),
                )
            };
            let mut rows = vec![
                Row::new(Family::V4, "none", Some("mac"), "repstrategy none".into()),
                Row::new(Family::V4, "both", Some("mac"), "repstrategy both".into()),
            ];
            let measured = pair().and_then(|()| {
                for round in 1..=self.args.rounds() {
                    for row in rows.iter_mut() {
                        for n in &nodes {
                            for port in [HTTP_PORT, SINK_PORT] {
                                n.ctl(&[
                                    "port",
                                    "set",
                                    &format!("{CLUSTER_IP}@{port}"),
                                    "repstrategy",
                                    &row.case,
                                ])?;
                            }
                        }
                        cluster::wait_ha_state(&nodes[0], "Active", true, Duration::from_secs(10))?;
                        std::thread::sleep(Duration::from_millis(300));
                        let c = Family::V4.cluster();
                        let one = self.round(
                            SocketAddr::new(c, HTTP_PORT),
                            SocketAddr::new(c, SINK_PORT),
                            Some(&nodes[0]),
                            Some(&self.cl.lbs[0]),
                            &format!("replication-{} round {round}", row.case),
                        )?;
                        row.rounds.push(one);
                    }
                }
                Ok(())
            });
            if let Err(e) = measured {
                eprintln!("----- lb1 log -----\n{}", nodes[0].log());
                eprintln!("----- lb2 log -----\n{}", nodes[1].log());
                for mut n in nodes {
                    let _ = n.kill();
                }
                return Err(reason(&e));
            }
            for mut n in nodes {
                let _ = n.kill();
            }
            Ok(rows)
        })();
        let _ = self.flush_neighbours();
        match result {
            Ok(rows) => out.rows = rows,
            Err(why) => {
                progress(format!("  replication: not run: {why}"));
                out.not_run = Some(why);
            }
        }
        out
    }

    /// After a failed case: what the client, `extra` hosts and server 1 know (addresses,
    /// neighbours, nftables counters), on stderr.
    fn diagnose(&self, extra: &[&Host]) {
        let hosts = std::iter::once(&self.cl.client)
            .chain(extra.iter().copied())
            .chain(self.cl.servers.iter().take(1));
        for h in hosts {
            for cmd in [
                &["ip", "addr", "show", "dev", "eth0"][..],
                &["ip", "-6", "neigh"][..],
                &["ip", "neigh"][..],
                &["nft", "list", "ruleset"][..],
            ] {
                if let Ok(out) = h.exec(cmd.iter().copied()) {
                    eprintln!(
                        "----- {}: {} -----\n{}{}",
                        h.name,
                        cmd.join(" "),
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }

    /// Forgets who holds the cluster address (it moves between lb1 and lbk).
    fn flush_neighbours(&self) -> Result<()> {
        for h in std::iter::once(&self.cl.client).chain(self.cl.servers.iter()) {
            h.run(["ip", "neigh", "flush", "all"])?;
            let _ = h.run(["ip", "-6", "neigh", "flush", "all"]);
        }
        Ok(())
    }
}
