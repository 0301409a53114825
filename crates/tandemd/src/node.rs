//! A node's control plane: the running configuration, commits, and command execution.
//!
//! Every change, whether from the config file at start or from `tandemctl`, goes the same way:
//! parse with the shared grammar → apply to a copy of the configuration → bring the data plane
//! in line (interface, plan) → only then make the copy the running configuration. A change that
//! fails at any step leaves everything as it was.

use crate::afpacket::RingConfig;
use crate::dataplane::Dataplane;
use crate::ha::{HaShell, ScriptJob, Sockets};
use crate::netdev;
use crate::report;
use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::config::{self, Command, Config};
use tandem_core::forward::{Engine, Plan};
use tandem_core::ha::{Action, HaSettings};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub workers: usize,
    pub ring: RingConfig,
    /// Forward on this interface instead of the one holding the nfa.
    pub interface: Option<String>,
    /// Gratuitous ARPs sent when addresses start being forwarded: count and spacing.
    pub garp_count: u32,
    pub garp_interval: Duration,
}

/// The answer to one command.
#[derive(Debug, Serialize)]
pub struct Reply {
    pub ok: bool,
    pub output: String,
    pub data: serde_json::Value,
    pub error: String,
}

impl Reply {
    pub fn ok(output: String, data: serde_json::Value) -> Reply {
        Reply {
            ok: true,
            output,
            data,
            error: String::new(),
        }
    }
    pub fn err(error: String) -> Reply {
        Reply {
            ok: false,
            output: String::new(),
            data: serde_json::Value::Null,
            error,
        }
    }
}

struct State {
    config: Config,
    dataplane: Option<Dataplane>,
    ha: HaShell,
    /// Addresses the ingress filter drops for the node's kernel (see `netdev::set_ingress_filter`).
    filtered: Vec<std::net::Ipv4Addr>,
}

/// One Tandem node.
pub struct Node {
    state: Mutex<State>,
    pub engine: Arc<Engine>,
    pub opts: NodeOptions,
    pub started_at: Instant,
}

impl Node {
    pub fn new(opts: NodeOptions) -> Node {
        Node {
            state: Mutex::new(State {
                config: Config::default(),
                dataplane: None,
                ha: HaShell::new(),
                filtered: Vec::new(),
            }),
            engine: Arc::new(Engine::new(crate::limits::default_max_connections())),
            opts,
            started_at: Instant::now(),
        }
    }

    /// Loads a command file (all or nothing) and commits it.
    pub fn load_file(&self, path: &std::path::Path) -> Result<()> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut st = self.state.lock();
        let new = config::load_file(&text, &path.display().to_string(), &st.config)
            .map_err(|e| anyhow!("{e}"))?;
        self.commit(&mut st, new)
    }

    /// Runs one command given as words (the dscontrol grammar).
    pub fn execute(&self, words: &[String], _json: bool) -> Reply {
        if let Some(reply) = self.file_command(words) {
            return reply;
        }
        let line = words.join(" ");
        let cmd = match config::parse_line(&line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return Reply::err("empty command".into()),
            Err(e) => return Reply::err(e.to_string()),
        };
        let mut st = self.state.lock();
        if cmd.is_mutation() {
            let mut new = st.config.clone();
            if let Err(e) = new.apply(&cmd) {
                return Reply::err(e.to_string());
            }
            return match self.commit(&mut st, new) {
                Ok(()) => Reply::ok(String::new(), serde_json::json!({"done": line})),
                Err(e) => Reply::err(format!("{e:#}")),
            };
        }
        match self.query(&mut st, &cmd) {
            Ok((text, data)) => Reply::ok(text, data),
            Err(e) => Reply::err(format!("{e:#}")),
        }
    }

    /// `file newload|appendload|save FILE`: the dscontrol file commands, which touch the node's
    /// file system and so live here rather than in the (I/O-free) grammar.
    fn file_command(&self, words: &[String]) -> Option<Reply> {
        let first = words.first()?.to_ascii_lowercase();
        if first.len() < 2 || !"file".starts_with(&first) {
            return None;
        }
        let verbs = ["newload", "appendload", "save"];
        let Some(verb) = words.get(1).map(|w| w.to_ascii_lowercase()) else {
            return Some(Reply::err(
                "missing keyword after 'file' (expected one of: newload, appendload, save)".into(),
            ));
        };
        let matches: Vec<&str> = verbs
            .iter()
            .copied()
            .filter(|v| v.starts_with(verb.as_str()))
            .collect();
        let verb = match matches.as_slice() {
            [one] => *one,
            [] => {
                return Some(Reply::err(format!(
                    "unknown keyword '{verb}' (expected one of: newload, appendload, save)"
                )));
            }
            many => {
                return Some(Reply::err(format!(
                    "ambiguous keyword '{verb}': {}",
                    many.join(", ")
                )));
            }
        };
        let (Some(path), None) = (words.get(2), words.get(3)) else {
            return Some(Reply::err(format!("file {verb} takes exactly one FILE")));
        };
        let mut st = self.state.lock();
        let result = match verb {
            "save" => {
                let mut text = String::from(
                    "# Saved by tandemd: executor, clusters, ports, servers, then high availability.\n",
                );
                for line in st.config.to_commands() {
                    text.push_str(&line);
                    text.push('\n');
                }
                std::fs::write(path, text).with_context(|| format!("writing {path}"))
            }
            _ => (|| {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
                let base = if verb == "newload" {
                    Config::default()
                } else {
                    st.config.clone()
                };
                let new = config::load_file(&text, path, &base).map_err(|e| anyhow!("{e}"))?;
                self.commit(&mut st, new)
            })(),
        };
        Some(match result {
            Ok(()) => Reply::ok(
                String::new(),
                serde_json::json!({"done": format!("file {verb} {path}")}),
            ),
            Err(e) => Reply::err(format!("{e:#}")),
        })
    }

    fn query(&self, st: &mut State, cmd: &Command) -> Result<(String, serde_json::Value)> {
        let now = Instant::now();
        match cmd {
            Command::HaStatus => {
                let status = st.ha.machine.status(now);
                let events: Vec<(u64, String)> = st
                    .ha
                    .events
                    .iter()
                    .map(|(t, e)| {
                        (
                            now.saturating_duration_since(*t).as_millis() as u64,
                            e.clone(),
                        )
                    })
                    .collect();
                let rep = replication_status(st, &self.engine, now);
                let (mut text, mut data) = report::ha_status(&status, &events)?;
                text.push_str(&report::replication_text(&rep));
                data["replication"] = rep;
                return Ok((text, data));
            }
            Command::HaTakeover(_) => {
                st.ha
                    .machine
                    .takeover(now)
                    .map_err(|e| anyhow!("takeover refused: {e}"))?;
                st.ha
                    .event(now, "takeover requested by the operator".into());
                self.drain(st, now);
                return Ok((
                    "takeover started: the partner yields, then this node goes Active\n".into(),
                    serde_json::json!({"takeover": "started"}),
                ));
            }
            Command::HaMaintenance => return report::maintenance(&st.config, &self.engine),
            _ => {}
        }
        let view = report::View {
            config: &st.config,
            engine: &self.engine,
            interface: st.dataplane.as_ref().map(|d| &d.interface),
            workers: st.dataplane.as_ref().map(|d| d.workers).unwrap_or(0),
            ring: self.opts.ring.version,
            uptime: self.started_at.elapsed(),
        };
        report::render(&view, cmd)
    }

    /// Brings the data plane and HA in line with `new`, then makes it the running
    /// configuration. Everything that can fail (interface, sockets, key file) is prepared
    /// first, so a failure changes nothing.
    fn commit(&self, st: &mut State, new: Config) -> Result<()> {
        let now = Instant::now();
        // The forwarding interface: the one holding the nfa (or the one named at start).
        let wanted = match (&self.opts.interface, new.executor.nfa) {
            (Some(name), _) => Some(netdev::interface_by_name(name)?),
            (None, Some(nfa)) => Some(netdev::interface_with_address(nfa)?),
            (None, None) => None,
        };
        // HA: settings, sockets and key, prepared before anything changes.
        let key = match &new.ha.key_file {
            Some(path) => Some(read_key(path)?),
            None => None,
        };
        let mut settings = HaSettings::from_config(&new);
        settings.config_digest = config_digest(&new);
        let ha_changed = settings != *st.ha.machine.settings();
        let new_sockets = if ha_changed
            && (settings.backup != st.ha.machine.settings().backup
                || settings.heartbeats != st.ha.machine.settings().heartbeats)
        {
            // Keep the sockets still wanted; on failure put them back untouched.
            let old = st.ha.sockets.take();
            let keep_port = old.as_ref().map(|o| o.port);
            match Sockets::bind(&settings, old) {
                Ok(s) => Some(s),
                Err(e) => {
                    if keep_port.is_some() {
                        // Rebind what we had (its sockets were consumed); best effort.
                        let prev = HaSettings::from_config(&st.config);
                        st.ha.sockets = Sockets::bind(&prev, None).ok().flatten();
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let current = st.dataplane.as_ref().map(|d| d.interface.clone());
        if wanted != current {
            // Stop the old workers before the new ones take the interface.
            if let Some(dp) = &st.dataplane {
                netdev::clear_ingress_filter(&dp.interface.name);
            }
            st.filtered.clear();
            st.dataplane = None;
            if let Some(iface) = wanted {
                if std::fs::read_to_string(format!(
                    "/proc/sys/net/ipv4/conf/{}/forwarding",
                    iface.name
                ))
                .is_ok_and(|v| v.trim() == "1")
                {
                    tracing::warn!(
                        interface = %iface.name,
                        "the kernel forwards IPv4 on this interface: it will also route cluster traffic Tandem forwards \
                         (duplicates, ICMP redirects); turn it off (sysctl net.ipv4.conf.{}.forwarding=0)",
                        iface.name
                    );
                }
                match netdev::disable_gro(&iface.name) {
                    Ok(true) => {
                        tracing::info!(interface = %iface.name, "turned generic receive offload off")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not turn GRO off; super-frames will be dropped")
                    }
                }
                match Dataplane::start(
                    self.engine.clone(),
                    iface,
                    self.opts.workers,
                    self.opts.ring,
                ) {
                    Ok(dp) => st.dataplane = Some(dp),
                    Err(e) => {
                        // Nothing of the change applies: the previous interface and the
                        // previous heartbeat sockets come back.
                        if let Some(prev) = current {
                            st.dataplane = Dataplane::start(
                                self.engine.clone(),
                                prev,
                                self.opts.workers,
                                self.opts.ring,
                            )
                            .ok();
                        }
                        if let Some(sockets) = new_sockets {
                            let prev = HaSettings::from_config(&st.config);
                            st.ha.sockets = Sockets::bind(&prev, sockets).ok().flatten();
                        }
                        st.filtered.clear();
                        self.refresh_plan(st);
                        return Err(e);
                    }
                }
            }
        }
        let was_started = st.config.executor.started;
        st.config = new;
        st.ha.key = key;
        st.ha.reach_interval = Duration::try_from_secs_f64(st.config.ha.reach_interval)
            .unwrap_or(Duration::from_secs(2));
        if let Some(sockets) = new_sockets {
            st.ha.sockets = sockets;
        }
        if ha_changed {
            st.ha.machine.configure(now, &settings);
        }
        match (was_started, st.config.executor.started) {
            (false, true) => st.ha.machine.executor_started(now),
            (true, false) => {
                st.ha.machine.executor_stopped(now);
                self.engine.clear(now);
            }
            _ => {}
        }
        self.drain(st, now);
        self.refresh_plan(st);
        Ok(())
    }

    /// Compiles and installs the plan for the running configuration and HA state; sends what
    /// the change calls for (gratuitous ARPs, resets, ARP requests).
    fn refresh_plan(&self, st: &mut State) {
        let forwarding =
            st.config.executor.started && st.dataplane.is_some() && st.ha.machine.forwarding();
        let mac = st
            .dataplane
            .as_ref()
            .map(|d| d.interface.mac)
            .unwrap_or_default();
        let plan = Plan::compile(&st.config, forwarding, mac, &self.engine.counters);
        // The node's kernel never needs traffic for cluster or return addresses, whether this
        // node forwards it or not: filter it at ingress (after the rings took their copy).
        if let Some(dp) = &st.dataplane {
            let mut addrs: Vec<std::net::Ipv4Addr> = plan
                .clusters
                .iter()
                .chain(plan.return_addresses.iter())
                .filter_map(|a| match a {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                })
                .collect();
            addrs.sort();
            if addrs != st.filtered {
                match netdev::set_ingress_filter(&dp.interface.name, &addrs) {
                    Ok(()) => st.filtered = addrs,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "no ingress filter: the node's kernel also sees forwarded frames")
                    }
                }
            }
        }
        let frames = self.engine.install(plan, Instant::now());
        if let Some(dp) = &st.dataplane {
            dp.send(&frames);
            let announce = frames
                .iter()
                .any(|f| f.len() >= 14 && f[12..14] == [0x08, 0x06] && f[0..6] == [0xff; 6]);
            if announce && self.opts.garp_count > 1 {
                self.repeat_announcements(dp);
            }
        }
    }

    /// Carries out the HA machine's actions, in order.
    fn drain(&self, st: &mut State, now: Instant) {
        while let Some(action) = st.ha.machine.poll_action() {
            match &action {
                Action::SendHeartbeat {
                    source,
                    destination,
                    port,
                    heartbeat,
                    ..
                } => {
                    // Records ride in heartbeats (about 15 each), as IBM's do.
                    let mut hb = heartbeat.clone();
                    if self.replicating(st)
                        && let Some(batch) = st
                            .ha
                            .rep
                            .sender
                            .next_batch(now, crate::replication::HEARTBEAT_RECORD_BYTES)
                    {
                        hb.records = batch.bytes;
                    }
                    st.ha.send(*source, *destination, *port, &hb);
                }
                Action::Announce => {
                    if let Some(dp) = &st.dataplane {
                        dp.send(&self.engine.announcements());
                    }
                    st.ha.event(
                        now,
                        "partner entered Standby: gratuitous ARPs sent again".into(),
                    );
                }
                Action::RunScript { name, arg } => {
                    let job = ScriptJob {
                        name,
                        arg: *arg,
                        env: script_env(st, name),
                    };
                    if let Some(dir) = &st.config.ha.script_dir {
                        st.ha.scripts.queue(dir.into(), job);
                    }
                }
                Action::PartnerLost => st.ha.event(now, "partner lost".into()),
                Action::PartnerFound { compatible } => st.ha.event(
                    now,
                    format!(
                        "partner found ({})",
                        if *compatible {
                            "compatible"
                        } else {
                            "incompatible version"
                        }
                    ),
                ),
                Action::RequestFullSync => {
                    // The snapshot of a large table takes a while: it is taken off the node
                    // lock (by the HA thread, see `run_ha`), so heartbeats and commands go on.
                    if st.ha.machine.settings().replication {
                        st.ha.full_sync_wanted = true;
                    }
                }
                other => {
                    if let Some(fwd) = other.forwarding() {
                        self.refresh_plan(st);
                        st.ha.event(
                            now,
                            format!(
                                "{other:?}: {} (state {})",
                                if fwd { "forwarding" } else { "not forwarding" },
                                st.ha.machine.state()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The HA thread: heartbeats in, timers, reach probes, actions out.
    pub fn run_ha(self: Arc<Self>) {
        let mut snapshot: Option<std::sync::mpsc::Receiver<Vec<tandem_core::replication::Record>>> =
            None;
        loop {
            let (fds, wake) = {
                let st = self.state.lock();
                (st.ha.fds(), st.ha.next_wakeup(Instant::now()))
            };
            let timeout = wake
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(50) as i32;
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .map(|fd| libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            if pfds.is_empty() {
                std::thread::sleep(Duration::from_millis(timeout.max(1) as u64));
            } else {
                // SAFETY: pfds is a valid array of pollfd for the call.
                unsafe {
                    libc::poll(
                        pfds.as_mut_ptr(),
                        pfds.len() as libc::nfds_t,
                        timeout.max(1),
                    )
                };
            }
            let now = Instant::now();
            let mut st = self.state.lock();
            let incoming = st.ha.receive(now);
            for msg in incoming {
                self.on_replication_message(&mut st, msg, now);
            }
            st.ha.probe(now);
            st.ha.machine.handle_timeout(now);
            self.drain(&mut st, now);
            self.replicate(&mut st, now);
            if st.ha.rep.sender.is_idle() {
                st.ha.rep.sender.compact();
            }
            if std::mem::take(&mut st.ha.full_sync_wanted) && snapshot.is_none() {
                // Take the snapshot on its own thread, without the node lock.
                let engine = self.engine.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let records = engine.snapshot_records(Instant::now());
                    let _ = tx.send(records);
                });
                snapshot = Some(rx);
            }
            if let Some(rx) = &snapshot
                && let Ok(records) = rx.try_recv()
            {
                snapshot = None;
                for r in self.engine.replication.drain() {
                    st.ha.rep.sender.push(r);
                }
                let n = records.len();
                st.ha.rep.sender.start_full_sync(records, now);
                st.ha.rep.counters.full_syncs_sent += 1;
                st.ha.event(
                    now,
                    format!("full synchronisation of the partner started ({n} records)"),
                );
            }
        }
    }

    /// Whether this node sends records now: Active, in contact with a compatible partner,
    /// some port replicating.
    fn replicating(&self, st: &State) -> bool {
        let m = &st.ha.machine;
        m.settings().replication
            && m.state() == tandem_core::ha::State::Active
            && m.in_contact()
            && m.partner_compatible() == Some(true)
    }

    /// The partner's address for replication datagrams: the first heartbeat pair.
    fn partner(&self, st: &State) -> Option<(IpAddr, SocketAddr)> {
        let port = st.ha.sockets.as_ref()?.port;
        st.ha
            .machine
            .settings()
            .heartbeats
            .first()
            .map(|(s, d)| (*s, SocketAddr::new(*d, port)))
    }

    /// Moves the workers' records into the sender, and sends what pacing allows.
    fn replicate(&self, st: &mut State, now: Instant) {
        let on = self.replicating(st);
        self.engine
            .replication
            .enabled
            .store(on, std::sync::atomic::Ordering::Relaxed);
        let records = self.engine.replication.drain();
        if !on {
            return;
        }
        for r in records {
            st.ha.rep.sender.push(r);
        }
        if st.ha.rep.sender.poll_timeout().is_some_and(|t| t <= now) {
            st.ha.rep.sender.handle_timeout(now);
        }
        let Some((source, dest)) = self.partner(st) else {
            return;
        };
        let mut budget = st.ha.rep.sender.pace(now);
        while budget > 0 {
            let Some(batch) = st
                .ha
                .rep
                .sender
                .next_batch(now, crate::replication::DATAGRAM_RECORD_BYTES)
            else {
                break;
            };
            budget = budget.saturating_sub(batch.bytes.len());
            st.ha.send_message(source, dest, &batch.bytes);
        }
    }

    /// A replication message from the partner: records to install, or an acknowledgement.
    fn on_replication_message(&self, st: &mut State, msg: crate::ha::Incoming, now: Instant) {
        use tandem_core::replication::{Ack, MessageKind, message_kind};
        match message_kind(&msg.message) {
            Some(MessageKind::Ack) => {
                if let Ok(ack) = Ack::decode(&msg.message) {
                    let had = st.ha.rep.sender.stats().last_full_sync;
                    st.ha.rep.sender.on_ack(&ack, now);
                    let done = st.ha.rep.sender.stats().last_full_sync;
                    if done != had
                        && let Some(d) = done
                    {
                        st.ha.rep.counters.last_sync_sent = Some(now);
                        st.ha.event(
                            now,
                            format!(
                                "partner holds the full table: {} records in {} ms",
                                d.records, d.duration_ms
                            ),
                        );
                        st.ha.machine.sync_complete(now);
                    }
                } else {
                    st.ha.rep.counters.datagrams_dropped += 1;
                }
            }
            Some(MessageKind::Batch) => {
                let out = st
                    .ha
                    .rep
                    .receiver
                    .on_batch_validated(&msg.message, now, &st.config);
                for r in &out.records {
                    if self.engine.install_replicated(r, now).is_ok() {
                        st.ha.rep.counters.installed += 1;
                    }
                }
                if let Some(ack) = out.ack {
                    st.ha.send_message(msg.local, msg.from, &ack.to_bytes());
                }
                if out.sync_complete {
                    st.ha.rep.counters.last_sync_received = Some(now);
                    st.ha.event(now, "full synchronisation received".into());
                    st.ha.machine.sync_complete(now);
                }
            }
            None => st.ha.rep.counters.datagrams_dropped += 1,
        }
    }

    /// Orderly stop (SIGTERM/SIGINT): stop forwarding and tell the partner, whose takeover is
    /// then immediate instead of waiting for hatimeout.
    pub fn shutdown(&self) {
        let now = Instant::now();
        let mut st = self.state.lock();
        st.ha.machine.executor_stopped(now);
        self.drain(&mut st, now);
        st.config.executor.started = false;
        self.refresh_plan(&mut st);
        if let Some(dp) = &st.dataplane {
            netdev::clear_ingress_filter(&dp.interface.name);
        }
        st.dataplane = None;
    }

    /// Sends the gratuitous ARPs again, `garp_count - 1` more times, spaced, off the command path.
    fn repeat_announcements(&self, dp: &Dataplane) {
        let tx = dp.tx.clone();
        let engine = self.engine.clone();
        let (count, gap) = (self.opts.garp_count, self.opts.garp_interval);
        std::thread::spawn(move || {
            for _ in 1..count {
                std::thread::sleep(gap);
                for f in engine.announcements() {
                    let _ = tx.send(&f);
                }
            }
        });
    }
}

/// A digest of the configuration the pair must agree on (everything but the HA statements,
/// which differ between the two nodes by design).
fn config_digest(cfg: &Config) -> u64 {
    let text: Vec<String> = cfg
        .to_commands()
        .into_iter()
        .filter(|l| !l.starts_with("highavailability") && !l.contains("nfa"))
        .collect();
    xxhash_rust::xxh3::xxh3_64(text.join("\n").as_bytes())
}

/// Reads a shared heartbeat key: the file's bytes, surrounding whitespace removed.
fn read_key(path: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the HA key file {path}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let key = text.trim().as_bytes().to_vec();
    if key.len() < 16 {
        anyhow::bail!(
            "the HA key in {path} is too short ({} bytes; use at least 16)",
            key.len()
        );
    }
    Ok(key)
}

/// The environment of an HA script.
fn script_env(st: &State, name: &str) -> Vec<(String, String)> {
    let status = st.ha.machine.status(Instant::now());
    let clusters: Vec<String> = st.config.clusters.keys().map(|c| c.to_string()).collect();
    let mut returns: Vec<String> = st
        .config
        .clusters
        .values()
        .flat_map(|c| c.ports.values())
        .flat_map(|p| p.servers.values())
        .filter_map(|s| s.returnaddress.map(|r| r.to_string()))
        .collect();
    returns.sort();
    returns.dedup();
    vec![
        ("TANDEM_SCRIPT".into(), name.to_string()),
        (
            "TANDEM_ROLE".into(),
            status
                .role
                .map(|r| r.keyword().to_string())
                .unwrap_or_else(|| "none".into()),
        ),
        ("TANDEM_STATE".into(), status.state.to_string()),
        ("TANDEM_SUBSTATE".into(), status.sub_state.to_string()),
        (
            "TANDEM_PARTNER".into(),
            status
                .partner
                .as_ref()
                .and_then(|p| p.address)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
        (
            "TANDEM_PARTNER_STATE".into(),
            status
                .partner
                .as_ref()
                .map(|p| p.state.to_string())
                .unwrap_or_default(),
        ),
        ("TANDEM_CLUSTERS".into(), clusters.join(" ")),
        ("TANDEM_RETURN_ADDRESSES".into(), returns.join(" ")),
        (
            "TANDEM_NFA".into(),
            st.config
                .executor
                .nfa
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
    ]
}

/// Replication counters for `highavailability status`.
fn replication_status(st: &State, engine: &Engine, now: Instant) -> serde_json::Value {
    let r = &st.ha.rep;
    serde_json::json!({
        "sender": r.sender.stats(),
        "receiver": r.receiver.stats(),
        "installed": r.counters.installed,
        "datagrams_dropped": r.counters.datagrams_dropped,
        "full_syncs_sent": r.counters.full_syncs_sent,
        "last_sync_received_ms_ago": r.counters.last_sync_received.map(|t| now.saturating_duration_since(t).as_millis() as u64),
        "last_sync_sent_ms_ago": r.counters.last_sync_sent.map(|t| now.saturating_duration_since(t).as_millis() as u64),
        "queue_dropped": engine.replication.dropped.load(std::sync::atomic::Ordering::Relaxed),
        "connection_records": engine.conns.len(),
        "affinity_records": engine.affinity.len(),
    })
}
