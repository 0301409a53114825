//! The lab of the health tests, and what they read from tandemd.
//!
//! ```text
//!  client 192.0.2.10 ─┐
//!  lb1    192.0.2.2  ─┤  tandemd (cluster 192.0.2.100, MAC forwarding)
//!  lb2    192.0.2.3  ─┤  (second node of a pair, when asked for)
//!  s1..sN 192.0.2.11+ ┘  no services until the test starts them (health::Service), cluster
//!                        address on loopback
//! ```
//!
//! The reports read here are the shapes of the issue 8 design: `advisor report NAME TARGET`
//! (`servers[].state` up/down/unknown), `server report C@P@S` (the effective `weight` and its
//! `weight_source`), `manager report` (`ports[].all_down`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::{CLUSTER_IP, ClusterLab, TandemNode, lb_ip, server_ip};
use crate::{Host, wait_until};

/// A [`ClusterLab`] whose servers run nothing yet, and a root-owned script directory.
pub struct HealthLab {
    pub cl: ClusterLab,
    /// `<log dir>/scripts` (mode 0755): give it to `highavailability scripts`.
    pub scripts: PathBuf,
}

impl HealthLab {
    /// A client, `nodes` load-balancer hosts (not started) and `servers` server hosts
    /// `s1..` (192.0.2.11 up) holding the cluster address on loopback, with no services.
    pub fn new(tag: &str, nodes: usize, servers: usize) -> Result<HealthLab> {
        let mut cl = ClusterLab::new(tag, nodes, 0)?;
        for n in 1..=servers {
            let h = cl
                .lab
                .add_host(&format!("s{n}"), &[&format!("{}/24", server_ip(n))])?;
            h.add_loopback_address(CLUSTER_IP)?;
            cl.servers.push(h);
        }
        let scripts = cl.lab.log_dir().join("scripts");
        std::fs::create_dir_all(&scripts)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755))?;
        Ok(HealthLab { cl, scripts })
    }

    /// Server host `n` (1-based).
    pub fn server(&self, n: usize) -> &Host {
        &self.cl.servers[n - 1]
    }

    /// Starts tandemd on load balancer `n` (1-based) with `config`.
    pub fn start_node(&self, n: usize, config: &str) -> Result<TandemNode> {
        TandemNode::start(&self.cl.lab, &self.cl.lbs[n - 1], config, &[])
    }
}

/// A configuration for node `n`: executor, cluster 192.0.2.100, each `(port, extra)` as
/// `port add 192.0.2.100@PORT method mac EXTRA` with servers 1..=`servers` (weight 10).
pub fn mac_config(n: usize, ports: &[(u16, &str)], servers: usize) -> String {
    let list = (1..=servers).map(server_ip).collect::<Vec<_>>().join("+");
    let mut out = format!(
        "executor start\nexecutor set nfa {}\ncluster add {CLUSTER_IP}\n",
        lb_ip(n)
    );
    for (port, extra) in ports {
        out.push_str(&format!(
            "port add {CLUSTER_IP}@{port} method mac {extra}\nserver add {CLUSTER_IP}@{port}@{list} weight 10\n"
        ));
    }
    out
}

/// `server report 192.0.2.100@PORT@SERVER`: the server's row.
pub fn server_row(node: &TandemNode, port: u16, server: &str) -> Result<Value> {
    let v = node.ctl_json(&["server", "report", &format!("{CLUSTER_IP}@{port}@{server}")])?;
    match v.get(0) {
        Some(row) => Ok(row.clone()),
        None => bail!("server report {port}@{server}: no row in {v}"),
    }
}

/// The effective weight of a server and the rule that set it (`weight_source`, if given).
pub fn weight(node: &TandemNode, port: u16, server: &str) -> Result<(u64, String)> {
    let row = server_row(node, port, server)?;
    let w = row["weight"]
        .as_u64()
        .with_context(|| format!("no weight in {row}"))?;
    let source = row["weight_source"].as_str().unwrap_or("").to_string();
    Ok((w, source))
}

/// Total connections Tandem sent to a server so far (`server report`'s `total`).
pub fn server_total(node: &TandemNode, port: u16, server: &str) -> Result<u64> {
    let row = server_row(node, port, server)?;
    row["total"]
        .as_u64()
        .with_context(|| format!("no total in {row}"))
}

/// The advisor's view of one server: `up`, `down` or `unknown`.
pub fn advisor_state(node: &TandemNode, advisor: &str, port: u16, server: &str) -> Result<String> {
    let v = node.ctl_json(&["advisor", "report", advisor, &port.to_string()])?;
    let servers = v["servers"]
        .as_array()
        .with_context(|| format!("advisor report without servers: {v}"))?;
    let row = servers
        .iter()
        .find(|s| s["server"] == server)
        .with_context(|| format!("advisor report has no server {server}: {v}"))?;
    Ok(row["state"].as_str().unwrap_or("?").to_string())
}

/// Waits until the advisor says `state` for `server` and, for `down`, its effective weight
/// is 0 (for `up`, above 0). Returns how long it took from `since`.
pub fn wait_advisor(
    node: &TandemNode,
    advisor: &str,
    port: u16,
    server: &str,
    state: &str,
    since: Instant,
    timeout: Duration,
) -> Result<Duration> {
    let mut last = String::new();
    let waited = wait_until(
        timeout.saturating_sub(since.elapsed()),
        &format!("{advisor} advisor to say {server} is {state}"),
        || {
            let s = advisor_state(node, advisor, port, server);
            let w = weight(node, port, server);
            last = format!("{s:?} {w:?}");
            match (s, w) {
                (Ok(s), Ok((w, _))) => s == state && ((state == "down") == (w == 0)),
                _ => false,
            }
        },
    );
    match waited {
        Ok(()) => Ok(since.elapsed()),
        Err(e) => bail!("{e:#}; last state and weight: {last}\n{}", node.log()),
    }
}

/// `count` TCP connections from `client` to `target`, one after the other (1 s timeout
/// each); returns how many connected. With MAC forwarding a connection sent to a server
/// whose service is dead is refused, so `count` of `count` means none went to it.
pub fn connect_count(client: &Host, target: SocketAddr, count: usize) -> Result<usize> {
    client.in_ns(|| {
        (0..count)
            .filter(|_| {
                std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok()
            })
            .count()
    })
}

/// The bound of the acceptance test: interval × (retries + 1) + 1 s, plus `slack` for the
/// poll of the reports on a loaded machine.
pub fn down_bound(interval: f64, retries: u32, slack: f64) -> Duration {
    Duration::from_secs_f64(interval * f64::from(retries + 1) + 1.0 + slack)
}
