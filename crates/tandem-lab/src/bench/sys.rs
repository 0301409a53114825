//! What the machine did during a measurement: CPU time, context switches, interface counters.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::Host;

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU time (user + system, all threads) of process `pid`.
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// Context switches (voluntary, involuntary) summed over the threads of `pid`.
pub fn context_switches(pid: u32) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for entry in dir.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total.0 += v.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                total.1 += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// Machine-wide CPU time from `/proc/stat`: (busy, total), in seconds, summed over CPUs.
/// Softirq work (where the kernel forwards, bridges and NATs) counts as busy.
pub fn machine_cpu() -> (f64, f64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let total: u64 = (0..8).map(get).sum();
    let hz = clock_ticks();
    ((total - idle) as f64 / hz, total as f64 / hz)
}

/// Softirq share of machine CPU time: (softirq seconds) from `/proc/stat`.
pub fn machine_softirq() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    v.get(6).copied().unwrap_or(0) as f64 / clock_ticks()
}

/// Counters of one interface inside a host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

impl std::ops::Sub for LinkStats {
    type Output = LinkStats;
    fn sub(self, o: LinkStats) -> LinkStats {
        LinkStats {
            rx_packets: self.rx_packets.saturating_sub(o.rx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(o.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(o.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(o.tx_dropped),
        }
    }
}

/// `ip -s -j link show dev IF` inside `host`.
pub fn link_stats(host: &Host, dev: &str) -> Result<LinkStats> {
    let out = host.run(["ip", "-s", "-j", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("ip -j link")?;
    let s = &v[0]["stats64"];
    let n = |dir: &str, key: &str| s[dir][key].as_u64().unwrap_or(0);
    Ok(LinkStats {
        rx_packets: n("rx", "packets"),
        rx_dropped: n("rx", "dropped"),
        tx_packets: n("tx", "packets"),
        tx_dropped: n("tx", "dropped"),
    })
}

/// UDP counters of `host` (`/proc/net/snmp`): (InDatagrams, RcvbufErrors).
pub fn udp_counters(host: &Host) -> Result<(u64, u64)> {
    let out = host.run(["cat", "/proc/net/snmp"])?;
    let mut udp = out.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return Ok((0, 0));
    };
    let pairs: Vec<(&str, u64)> = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .map(|(n, v)| (n, v.parse().unwrap_or(0)))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
    Ok((get("InDatagrams"), get("RcvbufErrors")))
}

/// Packets dropped at the per-CPU input backlogs (`/proc/net/softnet_stat`, second column,
/// summed over CPUs; machine-wide). A veth hands frames to its peer through this backlog.
pub fn backlog_drops() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/softnet_stat") else {
        return 0;
    };
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

/// Waits until the machine is quiet (busy below `max_busy_pct`, percent of one core, over a
/// half-second sample) or `max_wait` passed. Returns the busy percentage of the last sample.
pub fn wait_quiet(max_busy_pct: f64, max_wait: Duration) -> f64 {
    let start = std::time::Instant::now();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    loop {
        let (b0, t0) = machine_cpu();
        std::thread::sleep(Duration::from_millis(500));
        let (b1, t1) = machine_cpu();
        let busy = 100.0 * (b1 - b0) / ((t1 - t0).max(1e-9) / cpus);
        if busy <= max_busy_pct || start.elapsed() >= max_wait {
            return busy;
        }
    }
}

/// Process ids of the kernel's `ksoftirqd/N` threads (softirq work the kernel deferred).
pub fn ksoftirqd_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// CPU time of a set of processes, summed (processes that are gone count as zero).
pub fn processes_cpu(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&p| process_cpu(p).ok()).sum()
}

/// `(VmRSS, VmHWM)` of process `pid` in KiB, from `/proc/PID/status` (zeros when it is gone).
pub fn process_rss_kib(pid: u32) -> (u64, u64) {
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

/// Direct children of `pid` (from `/proc/PID/task/*/children`).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
