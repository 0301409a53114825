//! The I/O shell around `tandem_core::ha::Node`: heartbeat UDP sockets (IPv4 or IPv6), the
//! ICMP/ICMPv6 reach prober (`reach.rs`), the script runner. It decides nothing: datagrams go
//! into the node, transmits come out of it, and the node's events are carried out by
//! `node.rs`.
//!
//! All state lives in the node's lock (see `node.rs`): the HA thread takes it for each batch
//! of events, so a transition (forwarding on or off, ARP ownership, gratuitous ARPs) happens in
//! one step with the configuration it belongs to, and scripts are queued right after it, never
//! found by polling (PH50064). Each wake-up reads a bounded number of datagrams per socket, so
//! a flood of junk on the heartbeat port or of ICMP can delay nothing the node has to send.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tandem_core::config::Config;
use tandem_core::forward::Engine;
use tandem_core::ha::{HaSettings, Node, ProductVersion, datagram};

pub use crate::reach::Prober;
pub use crate::scripts::{ScriptJob, ScriptRunner};

/// Datagrams read from one socket per wake-up of the HA thread: enough for a full
/// replication window in a few wake-ups, few enough that a flood never keeps the thread
/// from sending heartbeats on time.
pub const READ_BUDGET: usize = 64;

/// The version this build advertises (override with TANDEM_VERSION=V.R.M.F, for upgrade tests).
pub fn product_version() -> ProductVersion {
    if let Ok(v) = std::env::var("TANDEM_VERSION")
        && let Ok(pv) = v.parse()
    {
        return pv;
    }
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u16>().unwrap_or(0));
    ProductVersion::new(
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        0,
    )
}

/// Random bytes from the kernel (for epochs' companions: sessions and probe tokens).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: the clock's nanoseconds are a poor but unpredictable-enough seed.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        return t ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(b)
}

/// Heartbeat sockets, one per local source address, all on the HA port.
pub struct Sockets {
    pub port: u16,
    pub by_source: BTreeMap<IpAddr, UdpSocket>,
}

impl Sockets {
    /// A socket for every heartbeat source address of `settings`, reusing those of `old` that
    /// are still wanted. Never sleeps: it runs with the node locked (a closed UDP socket frees
    /// its port at once, so there is nothing to wait for).
    pub fn bind(settings: &HaSettings, old: Option<Sockets>) -> Result<Option<Sockets>> {
        let Some(backup) = settings.backup else {
            return Ok(None);
        };
        let mut reuse = match old {
            Some(o) if o.port == backup.port => o.by_source,
            _ => BTreeMap::new(),
        };
        let mut by_source = BTreeMap::new();
        for (src, _) in &settings.heartbeats {
            if by_source.contains_key(src) {
                continue;
            }
            if let Some(s) = reuse.remove(src) {
                by_source.insert(*src, s);
                continue;
            }
            let addr = SocketAddr::new(*src, backup.port);
            let s = UdpSocket::bind(addr)
                .with_context(|| format!("binding the heartbeat socket {addr}"))?;
            s.set_nonblocking(true)?;
            set_buffers(&s);
            by_source.insert(*src, s);
        }
        Ok(Some(Sockets {
            port: backup.port,
            by_source,
        }))
    }
}

/// Room for a full replication window (128 datagrams of ~1.5 kB) and then some: with the
/// default receive buffer (about 208 kB) a full synchronisation overruns it and retransmits.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

fn set_buffers(s: &UdpSocket) {
    for opt in [
        libc::SO_RCVBUF,
        libc::SO_SNDBUF,
        libc::SO_RCVBUFFORCE,
        libc::SO_SNDBUFFORCE,
    ] {
        // SAFETY: setsockopt on our own socket with a valid int.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &SOCKET_BUFFER as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The HA part of a node: the sans-IO node and its sockets.
pub struct HaShell {
    /// HA instance 0: the pair, or the first cluster group of mutual HA (the configuration
    /// source for config sync is this instance's Active).
    pub node: Node,
    /// Mutual HA (role both): instance 1, the second cluster group, and the groups
    /// (`crate::mutual`). `None` outside mutual HA.
    pub second: Option<Node>,
    pub groups: Option<tandem_core::ha::mutual::Groups>,
    /// Instance 1 asked for a snapshot of its clusters' records.
    pub second_snapshot_wanted: bool,
    /// This run's epoch (both instances use it).
    pub epoch: u64,
    pub sockets: Option<Sockets>,
    pub prober: Option<Prober>,
    pub scripts: ScriptRunner,
    pub reach_interval: Duration,
    /// Recent events for the takeover timeline (time, text).
    pub events: VecDeque<(Instant, String)>,
    /// Datagrams that could not be sent (socket errors), for status.
    pub send_errors: u64,
    /// Packet-filter rules that drop the heartbeat port (checked off the lock, see `node.rs`).
    pub filter_warning: Option<String>,
    /// The log has said that the pair is not authenticated (said again when it changes back).
    pub warned_unauthenticated: bool,
    /// The last error opening a reach socket (logged once).
    pub reach_warning: Option<String>,
}

impl HaShell {
    pub fn new() -> HaShell {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        HaShell {
            node: Node::new(epoch, product_version(), random_u64() as u32),
            second: None,
            groups: None,
            second_snapshot_wanted: false,
            epoch,
            sockets: None,
            prober: None,
            scripts: ScriptRunner::start(),
            reach_interval: Duration::from_secs(2),
            events: VecDeque::new(),
            send_errors: 0,
            filter_warning: None,
            warned_unauthenticated: false,
            reach_warning: None,
        }
    }

    pub fn event(&mut self, now: Instant, text: String) {
        tracing::info!("{text}");
        crate::halog::event(&text);
        self.events.push_back((now, text));
        while self.events.len() > 64 {
            self.events.pop_front();
        }
    }

    /// Reads at most [`READ_BUDGET`] datagrams from each heartbeat socket into the node.
    /// Returns whether any socket may have more.
    pub fn receive(&mut self, now: Instant) -> bool {
        let Some(sockets) = &self.sockets else {
            return false;
        };
        let mut more = false;
        let mut buf = [0u8; 65536];
        for (local, sock) in &sockets.by_source {
            let mut n_read = 0;
            while n_read < READ_BUDGET {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    break;
                };
                n_read += 1;
                // Mutual HA: to the instance the datagram names (the node counts a wrong one).
                let node = match (&mut self.second, datagram::instance_of(&buf[..n])) {
                    (Some(second), 1) => second,
                    _ => &mut self.node,
                };
                node.handle_datagram(now, *local, from, &buf[..n]);
            }
            more |= n_read == READ_BUDGET;
        }
        more
    }

    /// Sends what the node has to send.
    pub fn transmit(&mut self) {
        while let Some(t) = self
            .node
            .poll_transmit()
            .or_else(|| self.second.as_mut().and_then(|s| s.poll_transmit()))
        {
            let sent = self
                .sockets
                .as_ref()
                .and_then(|s| s.by_source.get(&t.source))
                .map(|sock| sock.send_to(&t.bytes, t.destination));
            match sent {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.send_errors += 1;
                    tracing::debug!(error = %e, destination = %t.destination, "datagram not sent");
                }
                None => self.send_errors += 1,
            }
        }
    }

    /// File descriptors the HA thread waits on.
    pub fn fds(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .sockets
            .iter()
            .flat_map(|s| s.by_source.values().map(|s| s.as_raw_fd()))
            .collect();
        if let Some(p) = &self.prober {
            v.extend(p.raw_fds());
        }
        v
    }

    /// Reach probing: replies read (bounded), and a round every reach interval.
    pub fn probe(&mut self, now: Instant) {
        let targets = self.node.machine().settings().reach.clone();
        if targets.is_empty() {
            self.prober = None;
            return;
        }
        let opened = match self.prober.as_mut() {
            Some(p) => p.sockets_for(&targets),
            None => Prober::open(&targets).map(|p| self.prober = Some(p)),
        };
        if let Err(e) = opened {
            // Said once per failure kind; the targets of a family without a socket are
            // probed as lost (reported unreachable), never left out.
            let text = format!("{e:#}");
            if self.reach_warning.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "reach targets cannot be probed");
                self.reach_warning = Some(text);
            }
            if self.prober.is_none() {
                return;
            }
        }
        let interval = self.reach_interval;
        let Some(p) = self.prober.as_mut() else {
            return;
        };
        // Every instance hears every reach result.
        let (node, second) = (&mut self.node, &mut self.second);
        let mut report = |target: IpAddr, ok: bool| {
            node.handle_reach(now, target, ok);
            if let Some(s) = second.as_mut() {
                s.handle_reach(now, target, ok);
            }
        };
        p.receive(&mut report);
        if p.last_round
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
        {
            p.round(&targets, &mut report, now);
        }
    }

    /// The next instant the HA thread must wake up: the node's own timers, the next reach
    /// round, and a short poll of the data plane's record queue while replicating.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let mut t = self.node.poll_timeout();
        let mut consider = |c: Instant| t = Some(t.map_or(c, |t| t.min(c)));
        if let Some(p) = &self.prober
            && let Some(last) = p.last_round
        {
            consider(last + self.reach_interval);
        } else if !self.node.machine().settings().reach.is_empty() {
            consider(now);
        }
        if let Some(s) = &self.second
            && let Some(c) = s.poll_timeout()
        {
            consider(c);
        }
        if self.replicating() {
            consider(now + tandem_core::ha::node::RECORD_POLL);
        }
        t.map(|t| t.max(now))
    }
}

/// The environment of an HA script (of instance 0: the pair's, outside mutual HA).
#[allow(dead_code)] // the daemon calls script_env_for; kept for callers of instance 0
pub fn script_env(ha: &HaShell, config: &Config, name: &str) -> Vec<(String, String)> {
    script_env_for(ha, config, name, 0)
}

/// The environment of an HA script of HA instance `instance`: in mutual HA the group's
/// clusters, and `TANDEM_GROUP` (its primaryhost).
pub fn script_env_for(
    ha: &HaShell,
    config: &Config,
    name: &str,
    instance: u8,
) -> Vec<(String, String)> {
    let status = ha.instance(instance).machine().status(Instant::now());
    let group = ha.groups.as_ref().map(|g| g.group(instance));
    let clusters: Vec<String> = config
        .clusters
        .keys()
        .filter(|c| group.is_none_or(|g| g.clusters.contains(c)))
        .map(|c| c.to_string())
        .collect();
    let mut returns: Vec<String> = config
        .clusters
        .values()
        .filter(|c| group.is_none_or(|g| g.clusters.contains(&c.address)))
        .flat_map(|c| c.ports.values())
        .flat_map(|p| p.servers.values())
        .filter_map(|s| s.returnaddress.map(|r| r.to_string()))
        .collect();
    returns.sort();
    returns.dedup();
    let mut env = vec![
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
            config
                .executor
                .nfa
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
    ];
    if let Some(g) = group {
        env.push(("TANDEM_GROUP".into(), g.primaryhost.to_string()));
    }
    env
}

/// Replication counters for `highavailability status`.
pub fn replication_status(ha: &HaShell, engine: &Engine, now: Instant) -> serde_json::Value {
    let c = ha.node.channel_status(now);
    serde_json::json!({
        "authenticated": c.authenticated,
        "key_change": c.key_change,
        "replicating": c.replicating,
        "handing_over": c.handing_over,
        "sender": c.sender,
        "receiver": c.receiver,
        "channel": c.counters,
        "installed": c.counters.installed,
        "datagrams_dropped": c.counters.frames_dropped + c.counters.stale_epoch + c.counters.reflected + c.counters.wrong_direction + c.counters.stale_session,
        "full_syncs_sent": c.counters.full_syncs_sent,
        "last_sync_received_ms_ago": c.last_sync_received_ms_ago,
        "last_sync_sent_ms_ago": c.last_sync_sent_ms_ago,
        "queue_dropped": engine.replication.dropped.load(std::sync::atomic::Ordering::Relaxed),
        "connection_records": engine.conns.len(),
        "affinity_records": engine.affinity.len(),
        "send_errors": ha.send_errors,
        "reach_replies_unmatched": ha.prober.as_ref().map_or(0, |p| p.unmatched),
        "reach_probes_unsent": ha.prober.as_ref().map_or(0, |p| p.send_errors),
    })
}
