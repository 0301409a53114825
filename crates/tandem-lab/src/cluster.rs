//! The standard Tandem lab: a client, load-balancer nodes running `tandemd`, and servers.
//!
//! ```text
//!  client 192.0.2.10 ─┐
//!  lb1    192.0.2.2  ─┤  (tandemd; cluster 192.0.2.100, NAT return address 192.0.2.200)
//!  lb2    192.0.2.3  ─┤  (second node of a pair, when asked for)
//!  s1..sN 192.0.2.11+ ┘  (tandem-lab serve: HTTP 80, UDP 9999, echo 7; cluster on loopback)
//! ```
//!
//! [`ClusterLab::dual_stack`] gives every host its IPv6 twin as well ([`crate::v6_twin`]):
//! client `2001:db8::10`, nodes `2001:db8::2`, `::3`, servers `2001:db8::11`+, cluster
//! `2001:db8::100` (on the servers' loopback too), NAT return address `2001:db8::200`, all in
//! `2001:db8::/64` on the same bridge.
//!
//! Used by the demo, the benchmarks and the integration tests, so that they all exercise the
//! same real hosts and the real daemon binary.

use crate::{Host, Lab, LabProcess, find_binary, wait_until};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

pub const CLIENT_IP: &str = "192.0.2.10";
pub const CLUSTER_IP: &str = "192.0.2.100";
pub const RETURN_IP: &str = "192.0.2.200";
pub const HTTP_PORT: u16 = 80;
pub const UDP_PORT: u16 = 9999;
pub const ECHO_PORT: u16 = 7;
pub const CLIENT_IP6: &str = "2001:db8::10";
pub const CLUSTER_IP6: &str = "2001:db8::100";
pub const RETURN_IP6: &str = "2001:db8::200";

/// IPv6 address of load balancer node `n` (1-based): the twin of [`lb_ip`].
pub fn lb_ip6(n: usize) -> String {
    twin(&lb_ip(n))
}

/// IPv6 address of server `n` (1-based): the twin of [`server_ip`].
pub fn server_ip6(n: usize) -> String {
    twin(&server_ip(n))
}

fn twin(v4: &str) -> String {
    v4.parse()
        .map(|ip| crate::v6_twin(ip).to_string())
        .unwrap_or_else(|_| panic!("{v4} is not an IPv4 address"))
}

/// Address of load balancer node `n` (1-based).
pub fn lb_ip(n: usize) -> String {
    format!("192.0.2.{}", 1 + n)
}

/// Address of server `n` (1-based).
pub fn server_ip(n: usize) -> String {
    format!("192.0.2.{}", 10 + n)
}

/// A running `tandemd` in a lab host, with its admin socket.
pub struct TandemNode {
    pub host: Host,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// `tandemd --config-dir`: the lab's log directory, unless `extra_args` name another.
    pub config_dir: PathBuf,
    /// `tandemd --log-dir`: `HOST-log` in the lab's log directory, unless `extra_args` name another.
    pub log_dir: PathBuf,
    pub process: Option<LabProcess>,
    extra_args: Vec<String>,
}

impl TandemNode {
    /// Starts `tandemd` in `host` with `config` (the text of a command file), and waits until
    /// it answers on its socket. With a backend set ([`crate::set_packetio`], the
    /// [`crate::packetio_matrix`] tests), `executor set packetio X` is the file's first line.
    pub fn start(lab: &Lab, host: &Host, config: &str, extra_args: &[&str]) -> Result<TandemNode> {
        let cfg_path = lab.log_dir().join(format!("{}.cfg", host.name));
        let config = match crate::packetio() {
            Some(p) => format!("executor set packetio {}\n{config}", p.word()),
            None => config.to_string(),
        };
        std::fs::write(&cfg_path, config)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        let socket = lab.log_dir().join(format!("{}.sock", host.name));
        let mut node = TandemNode {
            host: host.clone(),
            socket,
            config: cfg_path,
            config_dir: lab.log_dir().to_path_buf(),
            log_dir: lab.log_dir().join(format!("{}-log", host.name)),
            process: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        node.restart()?;
        Ok(node)
    }

    /// Starts (again) the daemon with the same configuration file.
    pub fn restart(&mut self) -> Result<()> {
        let tandemd = find_binary("tandemd")?;
        let _ = std::fs::remove_file(&self.socket);
        let mut args = vec![
            tandemd.display().to_string(),
            "--config".into(),
            self.config.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
        ];
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--config-dir"))
        {
            args.push("--config-dir".into());
            args.push(self.config_dir.display().to_string());
        }
        if !self.extra_args.iter().any(|a| a.starts_with("--log-dir")) {
            args.push("--log-dir".into());
            args.push(self.log_dir.display().to_string());
        }
        args.extend(self.extra_args.iter().cloned());
        let mut p = self.host.spawn(&args)?;
        p.wait_for_log("tandemd ready", Duration::from_secs(20))
            .with_context(|| format!("tandemd on {} did not start", self.host.name))?;
        self.process = Some(p);
        Ok(())
    }

    /// `kill -9` of the daemon.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill()?;
        }
        Ok(())
    }

    /// Runs `tandemctl --socket S ARGS...`, returning its raw output (any exit status).
    pub fn ctl_output(&self, args: &[&str]) -> Result<Output> {
        let tandemctl = find_binary("tandemctl")?;
        std::process::Command::new(tandemctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running tandemctl")
    }

    /// Runs a tandemctl command that must succeed; returns its standard output.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl_output(args)?;
        if !out.status.success() {
            bail!(
                "tandemctl {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a tandemctl command with `--json` and parses the answer.
    pub fn ctl_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ctl(&all)?;
        serde_json::from_str(&text)
            .with_context(|| format!("tandemctl --json {}: {text}", args.join(" ")))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.log()).unwrap_or_default()
    }
}

/// The standard lab with a client, `nodes` load balancers (not started) and `servers` servers
/// (started, serving HTTP, UDP and echo, cluster address on loopback).
pub struct ClusterLab {
    pub lab: Lab,
    pub client: Host,
    pub lbs: Vec<Host>,
    pub servers: Vec<Host>,
    pub server_procs: Vec<LabProcess>,
}

impl ClusterLab {
    /// The IPv4 lab (IPv6 off in every host).
    pub fn new(tag: &str, nodes: usize, servers: usize) -> Result<ClusterLab> {
        Self::build(tag, nodes, servers, false)
    }

    /// The same lab with IPv6 beside IPv4 in every host (see the module docs for the plan):
    /// the servers also hold [`CLUSTER_IP6`] on loopback and serve on IPv6.
    pub fn dual_stack(tag: &str, nodes: usize, servers: usize) -> Result<ClusterLab> {
        Self::build(tag, nodes, servers, true)
    }

    fn build(tag: &str, nodes: usize, servers: usize, ipv6: bool) -> Result<ClusterLab> {
        let lab = Lab::new(tag)?;
        let addrs = |v4: &str| {
            let mut a = vec![format!("{v4}/24")];
            if ipv6 {
                a.push(format!("{}/64", twin(v4)));
            }
            a
        };
        let add = |name: &str, v4: &str| {
            let a = addrs(v4);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            lab.add_host(name, &a)
        };
        let client = add("client", CLIENT_IP)?;
        let mut lbs = Vec::new();
        for n in 1..=nodes {
            lbs.push(add(&format!("lb{n}"), &lb_ip(n))?);
        }
        let bin = find_binary("tandem-lab")?;
        let mut hosts = Vec::new();
        let mut procs = Vec::new();
        for n in 1..=servers {
            let name = format!("s{n}");
            let h = add(&name, &server_ip(n))?;
            h.add_loopback_address(CLUSTER_IP)?;
            if ipv6 {
                h.add_loopback_address(CLUSTER_IP6)?;
            }
            let p = h.spawn([
                bin.display().to_string(),
                "serve".into(),
                "--name".into(),
                name.clone(),
                "--http".into(),
                HTTP_PORT.to_string(),
                "--udp".into(),
                UDP_PORT.to_string(),
                "--echo".into(),
                ECHO_PORT.to_string(),
            ])?;
            hosts.push(h);
            procs.push(p);
        }
        for p in &mut procs {
            p.wait_for_log("ready", Duration::from_secs(20))?;
        }
        Ok(ClusterLab {
            lab,
            client,
            lbs,
            servers: hosts,
            server_procs: procs,
        })
    }

    /// `CLUSTER:port`.
    pub fn cluster(port: u16) -> SocketAddr {
        format!("{CLUSTER_IP}:{port}")
            .parse()
            .expect("static address")
    }

    /// `[CLUSTER6]:port`.
    pub fn cluster6(port: u16) -> SocketAddr {
        format!("[{CLUSTER_IP6}]:{port}")
            .parse()
            .expect("static address")
    }

    /// Waits until an HTTP GET from the client through `port` succeeds.
    pub fn wait_serving(&self, port: u16, timeout: Duration) -> Result<()> {
        self.wait_serving_at(Self::cluster(port), timeout)
    }

    /// Waits until an HTTP GET from the client to `target` (e.g. [`ClusterLab::cluster6`])
    /// succeeds.
    pub fn wait_serving_at(&self, target: SocketAddr, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("HTTP through {target}"), || {
            self.client
                .http_get(target, Duration::from_millis(500))
                .is_ok()
        })
    }
}

/// The demo configuration (examples/demo.cfg), with the nfa of node `n`.
pub fn demo_config(n: usize) -> String {
    include_str!("../../../examples/demo.cfg")
        .replace("nfa 192.0.2.2", &format!("nfa {}", lb_ip(n)))
}

/// The HA state of a node as `(state, sub-state)`, e.g. `("Active", "Synchronized")`;
/// `("unreachable", "")` when its daemon does not answer.
pub fn ha_state(node: &TandemNode) -> (String, String) {
    match node.ctl_json(&["highavailability", "status"]) {
        Ok(v) => (
            v["state"].as_str().unwrap_or("?").to_string(),
            v["sub_state"].as_str().unwrap_or("?").to_string(),
        ),
        Err(_) => ("unreachable".into(), String::new()),
    }
}

/// Waits until `node` is in `state` (and Synchronized, with `synchronized`).
/// Waits until `standby` holds `active`'s shared configuration through configuration sync
/// (the same shared digest, standby `in-sync`): a change made on the Active has reached it.
pub fn wait_config_synced(
    active: &TandemNode,
    standby: &TandemNode,
    timeout: Duration,
) -> Result<()> {
    let digest = |n: &TandemNode| {
        n.ctl_json(&["highavailability", "status"])
            .ok()
            .map(|v| (v["sync"]["digest"].clone(), v["sync"]["state"].clone()))
    };
    crate::wait_until(
        timeout,
        "the standby to hold the Active's configuration",
        || match (digest(active), digest(standby)) {
            (Some((a, _)), Some((b, state))) => !a.is_null() && a == b && state == "in-sync",
            _ => false,
        },
    )
}

pub fn wait_ha_state(
    node: &TandemNode,
    state: &str,
    synchronized: bool,
    timeout: Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (s, sub) = ha_state(node);
        // Synchronized also means that configuration sync is not still transferring (it
        // holds takeovers back until the standby has the Active's configuration).
        let config_synced = || {
            node.ctl_json(&["highavailability", "status"])
                .is_ok_and(|v| v["sync"]["state"] != "syncing")
        };
        if s == state && (!synchronized || (sub == "Synchronized" && config_synced())) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let status = node
                .ctl(&["highavailability", "status"])
                .unwrap_or_default();
            bail!(
                "{} is {s}/{sub}, wanted {state}{}:\n{status}\n{}",
                node.host.name,
                if synchronized { "/Synchronized" } else { "" },
                node.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The HA statements of the seed procedure (steps 4 to 6) for node `n` of a pair, as tandemctl
/// command words: heartbeat towards the other node, reach target the client, backup role.
pub fn seed_commands(n: usize, recovery: &str, port: u16) -> Vec<Vec<String>> {
    seed_commands_with(n, recovery, port, lb_ip, CLIENT_IP)
}

/// [`seed_commands`] over IPv6 (a [`ClusterLab::dual_stack`] lab): the heartbeat between the
/// nodes' IPv6 addresses, the client's IPv6 address as the reach target.
pub fn seed_commands_v6(n: usize, recovery: &str, port: u16) -> Vec<Vec<String>> {
    seed_commands_with(n, recovery, port, lb_ip6, CLIENT_IP6)
}

fn seed_commands_with(
    n: usize,
    recovery: &str,
    port: u16,
    ip: fn(usize) -> String,
    reach: &str,
) -> Vec<Vec<String>> {
    let (me, other, role) = if n == 1 {
        (ip(1), ip(2), "primary")
    } else {
        (ip(2), ip(1), "backup")
    };
    [
        format!("highavailability heartbeat add {me} {other}"),
        format!("highavailability reach add {reach}"),
        format!("highavailability backup add {role} {recovery} {port}"),
    ]
    .iter()
    .map(|c| c.split_whitespace().map(String::from).collect())
    .collect()
}

/// Runs the seed procedure's HA statements on node `n` through tandemctl.
pub fn join_pair(node: &TandemNode, n: usize, recovery: &str, port: u16) -> Result<()> {
    run_commands(node, seed_commands(n, recovery, port))
}

/// [`join_pair`] over IPv6 ([`seed_commands_v6`]).
pub fn join_pair_v6(node: &TandemNode, n: usize, recovery: &str, port: u16) -> Result<()> {
    run_commands(node, seed_commands_v6(n, recovery, port))
}

fn run_commands(node: &TandemNode, commands: Vec<Vec<String>>) -> Result<()> {
    for cmd in commands {
        let words: Vec<&str> = cmd.iter().map(String::as_str).collect();
        node.ctl(&words)?;
    }
    Ok(())
}

/// The connection records a node's table holds (`executor status`); 0 when it does not
/// answer.
pub fn connection_records(node: &TandemNode) -> u64 {
    node.ctl_json(&["executor", "status"])
        .map(|s| s["connection_records"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Waits until `node` holds at least `n` connection records (e.g. a standby's replicated
/// copies).
pub fn wait_connection_records(node: &TandemNode, n: u64, timeout: Duration) -> Result<()> {
    crate::wait_until(
        timeout,
        &format!("{} to hold {n} connection records", node.host.name),
        || connection_records(node) >= n,
    )
}

/// Waits until an HTTP GET from the client through `port` succeeds; returns how long it took.
pub fn time_to_serve(lab: &ClusterLab, port: u16, limit: Duration) -> Result<Duration> {
    let start = std::time::Instant::now();
    loop {
        if lab
            .client
            .http_get(ClusterLab::cluster(port), Duration::from_millis(300))
            .is_ok()
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("no service through port {port} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `02:xx:..` as bytes (the lab's MAC strings; see [`crate::mac_for`]).
pub fn mac_bytes(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

/// Sends raw Ethernet frames out of `host`'s `eth0` (for malformed frames and SYN bursts),
/// retrying while the socket's buffer is full. Only the frames given are sent; the lab's
/// address rules are the caller's to keep.
pub fn send_raw_frames(
    host: &Host,
    frames: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> Result<()> {
    host.in_ns(move || -> Result<()> {
        // SAFETY: plain libc calls on a socket this closure owns; every buffer outlives its call.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let name = std::ffi::CString::new("eth0").expect("static name");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            for (i, f) in frames.enumerate() {
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
                        break;
                    }
                    let err = std::io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::ENOBUFS)
                        && err.kind() != std::io::ErrorKind::WouldBlock
                    {
                        libc::close(fd);
                        bail!("sendto: {err}");
                    }
                    std::thread::yield_now();
                }
                // At most about 200 000 frames/s: a burst, not a flood that overruns the rings.
                if i % 1000 == 999 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            libc::close(fd);
        }
        Ok(())
    })?
}
