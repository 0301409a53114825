//! A node's control plane: the running configuration, commits, and command execution.
//!
//! Every change, whether from the config file at start or from `tandemctl`, goes the same way:
//! parse with the shared grammar → apply to a copy of the configuration → bring the data plane
//! in line (interface, plan) → only then make the copy the running configuration. A change that
//! fails at any step leaves everything as it was.

use crate::afpacket::RingConfig;
use crate::dataplane::Dataplane;
use crate::ha::{HaShell, ScriptJob, Sockets};
use crate::health::Health;
use crate::netdev;
use crate::report;
use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::config::{self, Command, Config};
use tandem_core::forward::{Engine, Plan};
use tandem_core::ha::{Action, Event, HaSettings};
use tandem_core::health::Overlay;

#[path = "appliance.rs"]
mod appliance;
#[path = "ha_loop.rs"]
mod ha_loop;
#[path = "sync.rs"]
mod sync;

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
    /// Where `file save|newload|appendload NAME` work (`--config-dir`).
    pub config_dir: crate::files::ConfigDir,
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
    filtered: Vec<IpAddr>,
    /// The HA node asked for a snapshot of the tables; the HA thread takes it off the lock.
    snapshot_wanted: bool,
    /// The weights the health loop computed (advisors, manager, SASP); empty = configured.
    overlay: Overlay,
    /// Where the change being committed comes from (configuration sync records it).
    origin: Option<tandem_core::sync::Origin>,
}

/// One Tandem node.
pub struct Node {
    state: Mutex<State>,
    /// Written to wake the HA thread when a command changed its timers.
    waker: (UnixStream, UnixStream),
    pub engine: Arc<Engine>,
    /// Advisors, manager and SASP sessions (their own thread; see `health`).
    pub health: Health,
    pub opts: NodeOptions,
    pub started_at: Instant,
    /// Builds diagnostics bundles for the partner (`diagnostics.rs`).
    pub diagnostics: crate::diagnostics::Diagnostics,
    /// The web server (`executor set metrics`; see `web`).
    pub web: crate::web::Control,
}

impl Node {
    pub fn new(opts: NodeOptions) -> Node {
        Node {
            state: Mutex::new(State {
                config: Config::default(),
                dataplane: None,
                ha: HaShell::new(),
                filtered: Vec::new(),
                snapshot_wanted: false,
                overlay: Overlay::default(),
                origin: None,
            }),
            waker: {
                let (a, b) = UnixStream::pair().expect("a socket pair to wake the HA thread");
                // Never block: a full pipe already means "wake up", an empty one "nothing".
                a.set_nonblocking(true).expect("non-blocking waker");
                b.set_nonblocking(true).expect("non-blocking waker");
                (a, b)
            },
            engine: Arc::new(Engine::new(crate::limits::default_max_connections())),
            health: Health::new(),
            opts,
            started_at: Instant::now(),
            diagnostics: Default::default(),
            web: Default::default(),
        }
    }

    /// Loads the command file given at start (`--config`, any path, or `default.cfg`; all or
    /// nothing; nested files from the configuration directory) and commits it.
    pub fn load_file(&self, path: &std::path::Path) -> Result<()> {
        let text = crate::files::read_start_config(path)?;
        let base = self.state.lock().config.clone();
        let loaded = crate::files::load(
            &self.opts.config_dir,
            &text,
            &path.display().to_string(),
            &base,
        )?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let mut st = self.state.lock();
        self.commit(&mut st, loaded.config)
    }

    /// Runs one command from `origin`, then logs it (audit, ha.log, ha.out, ha.result: halog.rs).
    pub fn execute_as(&self, words: &[String], json: bool, origin: &crate::halog::Origin) -> Reply {
        let reply = self.execute(words, json);
        crate::halog::after_command(origin, words, &reply);
        reply
    }

    /// The running configuration (a copy).
    pub fn config(&self) -> Config {
        self.state.lock().config.clone()
    }

    /// Runs `f` on the HA node under the lock, then carries out what it asked for.
    pub fn with_ha<R>(&self, f: impl FnOnce(&mut tandem_core::ha::Node, Instant) -> R) -> R {
        let mut st = self.state.lock();
        let now = Instant::now();
        let r = f(&mut st.ha.node, now);
        self.flush(&mut st, now);
        self.wake();
        r
    }

    /// Runs one command given as words (the dscontrol grammar).
    pub fn execute(&self, words: &[String], _json: bool) -> Reply {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let (cmd, mut warnings) =
            match config::parse_words_resolving(&refs, &mut crate::files::SystemResolver) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Reply::err("empty command".into()),
                Err(e) => return Reply::err(e.to_string()),
            };
        warnings.extend(cmd.warnings());
        if cmd.is_file_command() {
            return crate::files::with_warnings(self.file_command(&cmd), &warnings);
        }
        let line = words.join(" ");
        if let Command::Diagnostics(path) = &cmd {
            return crate::diagnostics::run(self, path); // without the node lock
        }
        if let Command::Ha(a) = &cmd {
            return appliance::execute(self, a, &line);
        }
        // The key file is read when the key command runs (before the node is locked), not
        // on every commit: an edited file changes nothing until the operator says so.
        let key = match &cmd {
            Command::HaKey(path) => match crate::keys::read_key(path) {
                Ok(k) => Some(k),
                Err(e) => return Reply::err(format!("{e:#}")),
            },
            _ => None,
        };
        if report::health::is_health_query(&cmd) {
            // Answered from the health loop's state alone, without the node lock.
            return match self
                .health
                .with_core(|core| report::health::render(core, &cmd, Instant::now()))
            {
                Ok((text, data)) => Reply::ok(text, data),
                Err(e) => Reply::err(format!("{e:#}")),
            };
        }
        let mut st = self.state.lock();
        if cmd.is_mutation() {
            let mut new = st.config.clone();
            let applied = match new.apply(&cmd) {
                Ok(a) => a,
                Err(e) => return Reply::err(e.to_string()),
            };
            warnings.extend(report::selection_warnings(&new, &applied));
            if let Some(k) = key {
                st.ha.set_key(Instant::now(), Some(k));
                self.flush(&mut st, Instant::now());
            }
            st.origin = Some(sync::command_origin(&cmd));
            return match self.commit(&mut st, new) {
                Ok(()) => crate::files::with_warnings(
                    Reply::ok(String::new(), serde_json::json!({"done": line})),
                    &warnings,
                ),
                Err(e) => Reply::err(format!("{e:#}")),
            };
        }
        match self.query(&mut st, &cmd) {
            Ok((text, data)) => Reply::ok(text, data),
            Err(e) => Reply::err(format!("{e:#}")),
        }
    }

    /// `file save|newload|appendload|report|delete`: files of the configuration directory
    /// (files.rs). File I/O happens without the node lock: a slow disk or a FIFO never holds
    /// the HA thread.
    fn file_command(&self, cmd: &Command) -> Reply {
        let appending = !matches!(cmd, Command::FileNewLoad(_));
        crate::files::run(
            &self.opts.config_dir,
            cmd,
            || self.state.lock().config.clone(),
            |base, new| {
                let mut st = self.state.lock();
                if appending && st.config != *base {
                    anyhow::bail!(
                        "the configuration changed while the file was loading: run '{cmd}' again"
                    );
                }
                st.origin = Some(tandem_core::sync::Origin::Replace);
                self.commit(&mut st, new)
            },
        )
    }

    fn query(&self, st: &mut State, cmd: &Command) -> Result<(String, serde_json::Value)> {
        let now = Instant::now();
        match cmd {
            Command::HaStatus => {
                let mut status = st.ha.node.status(now);
                status.warnings.extend(st.ha.filter_warning.clone());
                status
                    .warnings
                    .extend(appliance::partner_lost_warning(&status));
                status
                    .warnings
                    .extend(tandem_core::ha::mutual::warnings(&st.config));
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
                let rep = crate::ha::replication_status(&st.ha, &self.engine, now);
                let (mut text, mut data) = report::ha_status(&status, &events)?;
                text.push_str(&report::replication_text(&rep));
                data["replication"] = rep;
                data["sync"] = serde_json::to_value(st.ha.node.sync_status(now))?;
                text.push_str(&sync::status_text(&data["sync"]));
                if let Some((t, groups)) = st.ha.groups_status() {
                    text.push_str(&t);
                    data["groups"] = groups;
                }
                return Ok((text, data));
            }
            Command::HaTakeover(address) => {
                let text = st.ha.takeover(now, *address)?;
                self.flush(st, now);
                return Ok((text, serde_json::json!({"takeover": "started"})));
            }
            Command::HaMaintenance => return report::maintenance(&st.config, &self.engine),
            Command::HaMaintenanceMode(on) => {
                if !st.ha.node.machine().configured() {
                    anyhow::bail!("high availability is not configured on this node");
                }
                st.ha.node.set_maintenance(now, *on);
                if let Some(second) = &mut st.ha.second {
                    second.set_maintenance(now, *on);
                }
                let text = if *on {
                    "maintenance started: this node hands Active over to a Synchronized partner and does not take it back"
                } else {
                    "maintenance stopped"
                };
                st.ha.event(now, text.into());
                self.flush(st, now);
                self.wake();
                return Ok((format!("{text}\n"), serde_json::json!({"maintenance": on})));
            }
            Command::HaKeyGenerate(path) => {
                crate::keys::generate_key(path)?;
                return Ok((
                    format!(
                        "new key written to {path} (mode 0600); copy it to the partner, then run \
                         'highavailability key {path}' on each node, one after the other\n"
                    ),
                    serde_json::json!({"key_file": path}),
                ));
            }
            _ => {}
        }
        let view = report::View {
            config: &st.config,
            overlay: &st.overlay,
            engine: &self.engine,
            interface: st.dataplane.as_ref().map(|d| &d.interface),
            workers: st.dataplane.as_ref().map(|d| d.workers).unwrap_or(0),
            packetio: st.dataplane.as_ref().map(|d| d.packetio.as_str()),
            afxdp: st.dataplane.as_ref().and_then(|d| d.afxdp_stats()),
            ring: self.opts.ring.version,
            uptime: self.started_at.elapsed(),
            web: self.web.addr(),
        };
        report::render(&view, cmd)
    }

    /// Brings the data plane and HA in line with `new`, then makes it the running
    /// configuration. Everything that can fail (interface, sockets, key file) is prepared
    /// first, so a failure changes nothing.
    fn commit(&self, st: &mut State, new: Config) -> Result<()> {
        let now = Instant::now();
        let origin = st.origin.take();
        self.sync_gate(st, &new, origin.as_ref())?;
        let web = self.prepare_web(st, &new)?;
        // Scripts run as root: a new script directory must be root's alone (docs/ha.md).
        if new.ha.script_dir != st.config.ha.script_dir
            && let Some(dir) = &new.ha.script_dir
        {
            crate::scripts::check_dir(dir.as_ref()).context("highavailability scripts")?;
        }
        // The forwarding interface: the one holding the nfa (or the one named at start).
        let wanted = match (&self.opts.interface, new.executor.nfa) {
            (Some(name), _) => Some(netdev::interface_by_name(name)?),
            (None, Some(nfa)) => Some(netdev::interface_with_address(nfa)?),
            (None, None) => None,
        };
        // HA: settings, sockets and key, prepared before anything changes. The key file is
        // read here only when the key statement itself changes (a configuration file that
        // names it); the key command reads it in `execute`.
        let key_changed = new.ha.key_file != st.config.ha.key_file;
        let key = match (&new.ha.key_file, key_changed) {
            (Some(path), true) => Some(Some(crate::keys::read_key(path)?)),
            (None, true) => Some(None),
            (_, false) => None,
        };
        // Mutual HA (role both): the cluster groups, or why this configuration cannot run.
        let groups = tandem_core::ha::mutual::Groups::from_config(&new).map_err(|e| anyhow!(e))?;
        let mut base = HaSettings::from_config(&new);
        base.config_digest = config_digest(&new);
        let settings = crate::mutual::instance0_settings(&groups, &new, base.clone());
        let current = st.ha.node.machine().settings();
        let ha_changed = HaSettings {
            authenticated: current.authenticated,
            ..settings.clone()
        } != *current;
        let new_sockets = if ha_changed
            && (settings.backup != current.backup || settings.heartbeats != current.heartbeats)
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
        let current_io = st.dataplane.as_ref().map(|d| d.setting);
        // A new packetio setting restarts the data plane on the same interface.
        let io_changed = current_io.is_some_and(|io| io != new.executor.packetio);
        if wanted != current || io_changed {
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
                    new.executor.packetio,
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
                                current_io.unwrap_or_default(),
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
        // A commit that stops the executor and deletes HA (`ha stop` leaving a pair) goes Down
        // first, never through Idle (which forwards): stop before the new HA settings.
        let stopping = was_started && !new.executor.started;
        if stopping {
            st.ha.executor_stopped(now);
        }
        st.config = new;
        self.web.apply(web);
        if let Some(key) = key {
            st.ha.set_key(now, key);
        }
        st.ha.reach_interval = Duration::try_from_secs_f64(st.config.ha.reach_interval)
            .unwrap_or(Duration::from_secs(2));
        if let Some(sockets) = new_sockets {
            st.ha.sockets = sockets;
        }
        let config = st.config.clone();
        if let Some(origin) = origin {
            st.ha.node.set_change_origin(origin);
        }
        st.ha.node.configure(now, &config, settings);
        st.ha
            .configure_second(now, &config, &base, groups, was_started);
        let unauthenticated =
            st.ha.node.machine().configured() && !st.ha.node.keys().authenticated();
        if unauthenticated && !st.ha.warned_unauthenticated {
            tracing::warn!(
                "high availability without a key: anyone on the heartbeat segment can forge heartbeats \
                 and records (Tandem acts on no single datagram alone, but only a key authenticates \
                 the pair); run 'highavailability key generate FILE' and 'highavailability key FILE' on both nodes"
            );
        }
        st.ha.warned_unauthenticated = unauthenticated;
        match (was_started, st.config.executor.started) {
            (false, true) => st.ha.executor_started(now),
            (true, false) => self.engine.clear(now),
            _ => {}
        }
        self.flush(st, now);
        st.overlay = self.health.configure(&st.config);
        self.refresh_plan(st);
        self.wake();
        Ok(())
    }

    /// `executor set metrics`: binds the new address before anything changes (a bind failure
    /// refuses the command); `web.apply` swaps the servers once the commit is through.
    fn prepare_web(&self, st: &State, new: &Config) -> Result<crate::web::Prepared> {
        self.web
            .prepare(st.config.executor.metrics, new.executor.metrics)
    }

    /// New weights from the health loop: installs its latest overlay, read under the node lock
    /// (so a commit that ran meanwhile, with its own overlay, is never undone by an older one).
    pub fn refresh_overlay(&self) {
        let mut st = self.state.lock();
        let overlay = self.health.with_core(|c| c.overlay.clone());
        if st.overlay != overlay {
            st.overlay = overlay;
            self.refresh_plan(&mut st);
        }
    }

    /// Sends chunks of this node's advisor states to the partner (when Active).
    pub fn send_health(&self, chunks: &[Vec<u8>]) {
        let mut st = self.state.lock();
        for chunk in chunks {
            if !st.ha.node.send_health(chunk) {
                break;
            }
        }
        st.ha.transmit();
    }

    /// Queues an advisor script (`serverDown`, `serverUp`, `managerAlert`, `managerClear`) from
    /// the script directory, as the HA scripts are.
    pub fn queue_health_script(&self, name: &'static str, env: Vec<(String, String)>) {
        let st = self.state.lock();
        if let Some(dir) = &st.config.ha.script_dir {
            st.ha.scripts.queue(
                dir.into(),
                ScriptJob {
                    name,
                    arg: None,
                    env,
                },
            );
        }
    }

    /// Compiles and installs the plan for the running configuration and HA state; sends what
    /// the change calls for (gratuitous ARPs, resets, ARP requests).
    fn refresh_plan(&self, st: &mut State) {
        let running = st.config.executor.started && st.dataplane.is_some();
        let forwarding = running
            && match &st.ha.groups {
                None => st.ha.node.machine().forwarding(),
                Some(_) => st.config.clusters.keys().any(|&c| st.ha.forwards(c)),
            };
        // Advisors probe and the manager runs only where the node forwards.
        self.health.set_forwarding(forwarding);
        let mac = st
            .dataplane
            .as_ref()
            .map(|d| d.interface.mac)
            .unwrap_or_default();
        // Per cluster: in mutual HA, the clusters whose group is Active here.
        let mut plan = Plan::compile_for(
            &st.config,
            &st.overlay,
            &|c| running && st.ha.forwards(c),
            mac,
            &self.engine.counters,
        );
        plan.forwarding = forwarding;
        if let Some(dp) = &st.dataplane {
            plan.mtu_frame = tandem_core::forward::mtu_frame(dp.interface.mtu);
        }
        // The node's kernel never needs traffic for cluster or return addresses, whether this
        // node forwards it or not. AF_XDP: the XDP program steers it to the sockets before
        // the kernel. AF_PACKET: filter it at ingress (after the rings took their copy).
        if let Some(dp) = st.dataplane.as_ref().filter(|d| d.steers()) {
            let addrs: Vec<IpAddr> = plan
                .clusters
                .iter()
                .chain(plan.return_addresses.iter())
                .copied()
                .collect();
            if let Err(e) = dp.set_steered(&addrs) {
                tracing::warn!(error = %format!("{e:#}"), "updating the XDP program's addresses");
            }
        } else if let Some(dp) = &st.dataplane {
            let mut addrs: Vec<IpAddr> = plan
                .clusters
                .iter()
                .chain(plan.return_addresses.iter())
                .copied()
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
            let announce = frames.iter().any(|f| f.is_announcement());
            dp.send(&frames.into_iter().map(|f| f.bytes).collect::<Vec<_>>());
            if announce && self.opts.garp_count > 1 {
                self.repeat_announcements(dp);
            }
        }
    }

    /// Sends what the HA node has to send and carries out its events, in order.
    fn flush(&self, st: &mut State, now: Instant) {
        // Received records of consecutive Install events are installed together (a full
        // sync's datagrams arrive many at a time: a large batch installs in parallel).
        let mut installs: Option<(u8, Vec<tandem_core::replication::Record>)> = None;
        loop {
            st.ha.transmit();
            let Some((instance, event)) = st.ha.poll_event() else {
                break;
            };
            if let Event::Install(records) = event {
                match &mut installs {
                    Some((i, pending)) if *i == instance => pending.extend(records),
                    _ => {
                        self.install(st, now, installs.take());
                        installs = Some((instance, records));
                    }
                }
                continue;
            }
            self.install(st, now, installs.take());
            match event {
                Event::Machine(action) => self.on_action(st, now, instance, action),
                Event::TakeSnapshot if instance == 1 => st.ha.second_snapshot_wanted = true,
                Event::TakeSnapshot => st.snapshot_wanted = true,
                Event::Install(_) => {}
                Event::Note(text) => st.ha.event(now, text),
                Event::PartnerHealth(chunk) => self.health.partner_chunk(chunk),
                Event::BuildBundle(id) => self.diagnostics.build(id),
                Event::SyncApply(apply) => self.sync_apply(st, now, apply),
                Event::SyncDiscarded(text) => self.sync_discarded(st, now, text),
            }
        }
        self.install(st, now, installs);
    }

    /// Installs received records (on a few threads by shard when there are many).
    fn install(
        &self,
        st: &mut State,
        now: Instant,
        records: Option<(u8, Vec<tandem_core::replication::Record>)>,
    ) {
        let Some((instance, records)) = records else {
            return;
        };
        let installed = self.engine.install_replicated_batch(&records, now);
        st.ha
            .instance_mut(instance)
            .note_installed(installed as u64);
    }

    fn on_action(&self, st: &mut State, now: Instant, instance: u8, action: Action) {
        // Mutual HA: what happens to which cluster group.
        let group = st
            .ha
            .groups
            .as_ref()
            .map(|g| format!("group {}: ", g.group(instance).primaryhost))
            .unwrap_or_default();
        match &action {
            Action::Announce => {
                if let Some(dp) = &st.dataplane {
                    let frames = self.engine.announcements();
                    dp.send(&frames.into_iter().map(|f| f.bytes).collect::<Vec<_>>());
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
                    env: crate::ha::script_env_for(&st.ha, &st.config, name, instance),
                };
                if let Some(dir) = &st.config.ha.script_dir {
                    st.ha.scripts.queue(dir.into(), job);
                }
            }
            // Said once for the pair (the partner is lost to both instances at once).
            Action::PartnerLost if instance == 0 => {
                appliance::partner_changed(st, now, true, "partner lost: this node is alone".into())
            }
            Action::PartnerLost => st.ha.event(now, format!("{group}partner lost")),
            Action::PartnerFound { compatible } => {
                let text = format!(
                    "{group}partner found ({})",
                    if *compatible {
                        "compatible"
                    } else {
                        "incompatible version"
                    }
                );
                if instance == 0 {
                    appliance::partner_changed(st, now, false, text)
                } else {
                    st.ha.event(now, text)
                }
            }
            other => {
                if let Some(fwd) = other.forwarding() {
                    self.refresh_plan(st);
                    st.ha.event(
                        now,
                        format!(
                            "{group}{other:?}: {} (state {})",
                            if fwd { "forwarding" } else { "not forwarding" },
                            st.ha.instance(instance).machine().state()
                        ),
                    );
                }
            }
        }
    }

    /// Wakes the HA thread (its timers may have changed).
    fn wake(&self) {
        let _ = (&self.waker.0).write(&[1]);
    }

    /// Orderly stop (SIGTERM/SIGINT): stop forwarding and tell the partner, whose takeover is
    /// then immediate instead of waiting for hatimeout.
    pub fn shutdown(&self) {
        let now = Instant::now();
        let mut st = self.state.lock();
        // The partner hears first (it takes over at once); the GWMs are told after.
        st.ha.executor_stopped(now);
        self.flush(&mut st, now);
        drop(st);
        self.health.shutdown();
        let mut st = self.state.lock();
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
                    let _ = tx.send(&f.bytes);
                }
            }
        });
    }
}

/// A digest of the configuration the pair must agree on: its shared part (the node-local
/// statements differ between the two nodes by design; see `tandem_core::sync::shared`).
fn config_digest(cfg: &Config) -> u64 {
    tandem_core::sync::shared_digest(cfg)
}
