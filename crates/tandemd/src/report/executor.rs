//! `executor status|report`: the executor's settings, traffic, table bounds and drops.

use super::{View, dots, opt};
use crate::netdev::mac_string;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use tandem_core::forward::DropReason;

#[derive(Serialize)]
pub(super) struct ExecutorView {
    state: &'static str,
    nfa: Option<IpAddr>,
    interface: Option<String>,
    mac: Option<String>,
    clientgateway: Option<IpAddr>,
    hatimeout: f64,
    workers: usize,
    ring: String,
    /// `executor set packetio` (auto, afxdp, afpacket).
    packetio: &'static str,
    /// The backend running and why ("afxdp (copy mode, native XDP on eth0, 1 queue)").
    packetio_running: Option<String>,
    /// AF_XDP: the XDP program's and the sockets' counters.
    afxdp: Option<crate::afxdp::AfxdpStats>,
    uptime_seconds: u64,
    clusters: usize,
    ports: usize,
    servers: usize,
    frames_received: u64,
    frames_forwarded: u64,
    bytes_forwarded: u64,
    frames_passed_to_kernel: u64,
    arp_sent: u64,
    ndp_sent: u64,
    resets_sent: u64,
    /// The bound of the connection and affinity tables in force, and where it comes from.
    maxconnections: usize,
    maxconnections_from: &'static str,
    syntimeout: u32,
    connection_records: usize,
    halfopen_records: usize,
    halfopen_evicted: u64,
    refused_table_full: u64,
    refused_client_halfopen_limit: u64,
    affinity_records: usize,
    affinity_refused: u64,
    replicated_installed: u64,
    replicated_refused: Vec<(String, u64)>,
    drops_total: u64,
    drops: Vec<(String, u64)>,
    /// The interface's MTU and the largest frame forwarded (larger ones: `oversize`).
    mtu: Option<usize>,
    frame_limit: usize,
    /// Datagrams whose later fragments Tandem knows where to send, and those forgotten early.
    fragment_datagrams: usize,
    fragment_datagrams_max: usize,
    fragment_evicted: u64,
    /// Tagged frames dropped (reason `vlan`), per VLAN id.
    vlan_drops: Vec<VlanDrops>,
    /// Where the metrics are served (`http://ADDR/metrics`), None: off.
    metrics: Option<String>,
}

#[derive(Serialize)]
struct VlanDrops {
    vlan: u16,
    frames: u64,
    /// What to do about them.
    hint: String,
}

pub(super) fn executor(v: &View) -> ExecutorView {
    let e = v.engine;
    let ports: usize = v.config.clusters.values().map(|c| c.ports.len()).sum();
    let servers: usize = v
        .config
        .clusters
        .values()
        .flat_map(|c| c.ports.values())
        .map(|p| p.servers.len())
        .sum();
    ExecutorView {
        state: match (v.config.executor.started, v.interface.is_some()) {
            (true, true) => "started",
            (true, false) => "started, waiting for an nfa (executor set nfa ADDR)",
            (false, _) => "stopped",
        },
        nfa: v.config.executor.nfa,
        interface: v.interface.map(|i| i.name.clone()),
        mac: v.interface.map(|i| mac_string(i.mac)),
        clientgateway: v.config.executor.clientgateway,
        hatimeout: v.config.executor.hatimeout,
        workers: v.workers,
        ring: format!("{:?}", v.ring).to_lowercase(),
        packetio: v.config.executor.packetio.word(),
        packetio_running: v.packetio.map(str::to_string),
        afxdp: v.afxdp,
        uptime_seconds: v.uptime.as_secs(),
        clusters: v.config.clusters.len(),
        ports,
        servers,
        frames_received: e.node.received.load(Relaxed),
        frames_forwarded: e.node.forwarded.load(Relaxed),
        bytes_forwarded: e.node.forwarded_bytes.load(Relaxed),
        frames_passed_to_kernel: e.node.passed.load(Relaxed),
        arp_sent: e.node.arp_sent.load(Relaxed),
        ndp_sent: e.node.ndp_sent.load(Relaxed),
        resets_sent: e.node.resets_sent.load(Relaxed),
        maxconnections: e.max_connections(),
        maxconnections_from: if v.config.executor.maxconnections.is_some() {
            "configured"
        } else {
            "auto: a quarter of memory"
        },
        syntimeout: v.config.executor.syntimeout,
        connection_records: e.conns.len(),
        halfopen_records: e.conns.halfopen(),
        halfopen_evicted: e.conns.evicted.load(Relaxed),
        refused_table_full: e.node.dropped(DropReason::ConnectionTableFull),
        refused_client_halfopen_limit: e.node.dropped(DropReason::HalfOpenLimit),
        affinity_records: e.affinity.len(),
        affinity_refused: e.affinity.refused.load(Relaxed),
        replicated_installed: e.replicated.installed.load(Relaxed),
        replicated_refused: e
            .replicated
            .all_refused()
            .into_iter()
            .map(|(r, n)| (r.name().to_string(), n))
            .collect(),
        drops_total: e.node.total_drops(),
        drops: e
            .node
            .drops()
            .into_iter()
            .map(|(r, n)| (r.name().to_string(), n))
            .collect(),
        mtu: v.interface.map(|i| i.mtu),
        frame_limit: e.plan().frame_limit(),
        fragment_datagrams: e.fragments.len(),
        fragment_datagrams_max: e.fragments.max(),
        fragment_evicted: e.fragments.evicted.load(Relaxed),
        vlan_drops: e
            .vlans
            .read()
            .into_iter()
            .map(|(vlan, frames)| VlanDrops {
                vlan,
                frames,
                hint: format!(
                    "not configured: run tandemd on the VLAN interface {}.{vlan}",
                    v.interface.map_or("IFACE", |i| i.name.as_str())
                ),
            })
            .collect(),
        metrics: v.web.map(|a| format!("http://{a}/metrics")),
    }
}

pub(super) fn executor_text(e: &ExecutorView) -> String {
    let mut s = String::from("Executor Status:\n----------------\n");
    dots(&mut s, "State", e.state);
    dots(&mut s, "Nonforwarding address", opt(&e.nfa));
    dots(
        &mut s,
        "Interface",
        format!("{} ({})", opt(&e.interface), opt(&e.mac)),
    );
    dots(&mut s, "Client gateway", opt(&e.clientgateway));
    dots(&mut s, "HA timeout", format!("{} s", e.hatimeout));
    dots(
        &mut s,
        "Workers / ring",
        format!("{} / {}", e.workers, e.ring),
    );
    dots(
        &mut s,
        "Packet I/O",
        match &e.packetio_running {
            Some(running) => format!("{running} (set: {})", e.packetio),
            None => format!("{} (not running)", e.packetio),
        },
    );
    if let Some(x) = &e.afxdp {
        dots(
            &mut s,
            "XDP frames steered / passed",
            format!("{} / {}", x.xdp_steered, x.xdp_passed),
        );
        dots(
            &mut s,
            "AF_XDP rx / tx / tx dropped",
            format!("{} / {} / {}", x.rx, x.tx, x.tx_dropped),
        );
        dots(
            &mut s,
            "AF_XDP kernel drops (rx / ring full / fill empty)",
            format!(
                "{} / {} / {}",
                x.rx_dropped, x.rx_ring_full, x.fill_ring_empty
            ),
        );
    }
    dots(&mut s, "Uptime", format!("{} s", e.uptime_seconds));
    dots(
        &mut s,
        "Metrics and status page",
        e.metrics
            .as_deref()
            .unwrap_or("off (executor set metrics ADDR:PORT)"),
    );
    dots(
        &mut s,
        "Clusters / ports / servers",
        format!("{} / {} / {}", e.clusters, e.ports, e.servers),
    );
    dots(&mut s, "Frames received", e.frames_received);
    dots(
        &mut s,
        "Frames forwarded",
        format!("{} ({} bytes)", e.frames_forwarded, e.bytes_forwarded),
    );
    dots(
        &mut s,
        "Frames left to the kernel",
        e.frames_passed_to_kernel,
    );
    dots(&mut s, "ARP frames sent", e.arp_sent);
    dots(&mut s, "NDP frames sent", e.ndp_sent);
    dots(&mut s, "Resets sent", e.resets_sent);
    dots(
        &mut s,
        "Max connections",
        format!("{} ({})", e.maxconnections, e.maxconnections_from),
    );
    dots(&mut s, "SYN timeout", format!("{} s", e.syntimeout));
    let fill = 100.0 * e.connection_records as f64 / e.maxconnections.max(1) as f64;
    dots(
        &mut s,
        "Connection records",
        format!(
            "{} ({fill:.1} % full, {} half-open)",
            e.connection_records, e.halfopen_records
        ),
    );
    dots(&mut s, "Half-open records evicted", e.halfopen_evicted);
    dots(
        &mut s,
        "New flows refused",
        format!(
            "{} (table full), {} (client half-open limit)",
            e.refused_table_full, e.refused_client_halfopen_limit
        ),
    );
    dots(
        &mut s,
        "Affinity records",
        format!(
            "{} ({} refused: table full)",
            e.affinity_records, e.affinity_refused
        ),
    );
    let refused: u64 = e.replicated_refused.iter().map(|(_, n)| n).sum();
    dots(
        &mut s,
        "Replicated records",
        format!("{} installed, {refused} refused", e.replicated_installed),
    );
    for (reason, n) in &e.replicated_refused {
        if *n > 0 {
            dots(&mut s, &format!("  {reason}"), n);
        }
    }
    dots(
        &mut s,
        "MTU / largest frame",
        format!(
            "{} / {} bytes",
            e.mtu.map_or("-".to_string(), |m| m.to_string()),
            e.frame_limit
        ),
    );
    dots(
        &mut s,
        "Fragmented datagrams",
        format!(
            "{} of {} ({} forgotten: table full)",
            e.fragment_datagrams, e.fragment_datagrams_max, e.fragment_evicted
        ),
    );
    dots(&mut s, "Frames dropped", e.drops_total);
    for (reason, n) in &e.drops {
        if *n > 0 {
            dots(&mut s, &format!("  {reason}"), n);
        }
    }
    for d in &e.vlan_drops {
        s.push_str(&format!(
            "  vlan {}: {} frames dropped ({})\n",
            d.vlan, d.frames, d.hint
        ));
    }
    s
}
