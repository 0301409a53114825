//! Before/after readings around one measurement: CPU of the lab and of tandemd, its counters.

use super::*;

/// Before/after readings around one measurement.
pub(super) struct Probe {
    perf_record: Option<PerfRecord>,
    pids: Vec<u32>,
    lab_cpu: Duration,
    machine: (f64, f64),
    softirq: f64,
    tandemd: Option<TandemProbe>,
}

struct TandemProbe {
    pid: u32,
    cpu: Duration,
    ctxsw: (u64, u64),
    received: u64,
    frames: u64,
    drops: u64,
    perf_stat: Option<PerfStat>,
}

/// tandemd's (frames received, frames forwarded, drops).
pub(super) fn executor_counters(node: &TandemNode) -> (u64, u64, u64) {
    match node.ctl_json(&["executor", "report"]) {
        Ok(v) => {
            let d = if v.get("data").is_some() {
                &v["data"]
            } else {
                &v
            };
            let n = |k: &str| d[k].as_u64().unwrap_or(0);
            (
                n("frames_received"),
                n("frames_forwarded"),
                n("drops_total"),
            )
        }
        Err(_) => (0, 0, 0),
    }
}

impl Probe {
    pub(super) fn start(
        node: Option<&TandemNode>,
        mut pids: Vec<u32>,
        servers: &[u32],
        args: &BenchArgs,
        tag: &str,
    ) -> Probe {
        let tandemd_pid = node.and_then(|n| n.process.as_ref()).map(|p| p.pid());
        pids.extend(tandemd_pid);
        let perf_record = args.perf_record.as_deref().and_then(|d| {
            let owners = bench::profile::LabPids {
                bench: std::process::id(),
                servers: servers.to_vec(),
                tandemd: tandemd_pid,
            };
            PerfRecord::start(d, tag, owners)
        });
        let tandemd = node.and_then(|n| {
            let pid = n.process.as_ref()?.pid();
            let (received, frames, drops) = executor_counters(n);
            Some(TandemProbe {
                pid,
                received,
                cpu: sys::process_cpu(pid).unwrap_or_default(),
                ctxsw: sys::context_switches(pid),
                frames,
                drops,
                perf_stat: args.perf_stat.then(|| PerfStat::start(pid)).flatten(),
            })
        });
        Probe {
            perf_record,
            lab_cpu: sys::processes_cpu(&pids),
            pids,
            machine: sys::machine_cpu(),
            softirq: sys::machine_softirq(),
            tandemd,
        }
    }

    /// The usage (with `units` of work done), and frames tandemd received meanwhile.
    pub(super) fn finish(self, node: Option<&TandemNode>, units: u64) -> (Usage, Option<u64>) {
        let (busy1, total1) = sys::machine_cpu();
        let softirq1 = sys::machine_softirq();
        // Stop recording now; sort the profile once everything else is read.
        let recorded = self.perf_record.map(PerfRecord::stop);
        let lab = sys::processes_cpu(&self.pids)
            .saturating_sub(self.lab_cpu)
            .as_secs_f64();
        let cpus = num_cpus() as f64;
        let span = (total1 - self.machine.1).max(1e-9); // CPU-seconds of all cores
        let wall = span / cpus;
        let mut usage = Usage {
            machine_busy_pct: 100.0 * (busy1 - self.machine.0) / span * cpus,
            machine_softirq_pct: 100.0 * (softirq1 - self.softirq) / span * cpus,
            machine_us_per_unit: if units > 0 {
                (busy1 - self.machine.0) * 1e6 / units as f64
            } else {
                0.0
            },
            lab_cpu_pct: 100.0 * lab / wall.max(1e-9),
            lab_us_per_unit: if units > 0 {
                lab * 1e6 / units as f64
            } else {
                0.0
            },
            ..Usage::default()
        };
        let mut received = None;
        if let (Some(t), Some(node)) = (self.tandemd, node) {
            let syscalls = t.perf_stat.and_then(|p| p.stop());
            let cpu = sys::process_cpu(t.pid)
                .unwrap_or_default()
                .saturating_sub(t.cpu);
            let ctxsw = sys::context_switches(t.pid);
            let (rx, frames, drops) = executor_counters(node);
            received = Some(rx.saturating_sub(t.received));
            let frames = frames.saturating_sub(t.frames);
            let per = |x: f64| (frames > 0).then(|| x / frames as f64);
            usage.tandemd_cpu_pct = Some(100.0 * cpu.as_secs_f64() / wall.max(1e-9));
            usage.tandemd_frames = Some(frames);
            usage.tandemd_us_per_frame = per(cpu.as_secs_f64() * 1e6);
            usage.tandemd_ctxsw_per_frame =
                per(((ctxsw.0 + ctxsw.1).saturating_sub(t.ctxsw.0 + t.ctxsw.1)) as f64);
            usage.tandemd_syscalls_per_frame = syscalls.and_then(|s| per(s as f64));
            usage.tandemd_drops = Some(drops.saturating_sub(t.drops));
        }
        usage.profile = recorded.and_then(PerfRecord::analyze);
        (usage, received)
    }
}

pub(super) fn tandemd_note(u: &Usage) -> String {
    match (u.tandemd_cpu_pct, u.tandemd_frames) {
        (Some(cpu), Some(frames)) => {
            let mut s = format!(", tandemd {cpu:.0}% CPU, {frames} frames");
            if let Some(us) = u.tandemd_us_per_frame {
                s.push_str(&format!(", {us:.2} µs/frame"));
            }
            if let Some(c) = u.tandemd_ctxsw_per_frame {
                s.push_str(&format!(", {c:.2} ctxsw/frame"));
            }
            if let Some(c) = u.tandemd_syscalls_per_frame {
                s.push_str(&format!(", {c:.2} syscalls/frame"));
            }
            if let Some(d) = u.tandemd_drops.filter(|d| *d > 0) {
                s.push_str(&format!(", {d} drops"));
            }
            s
        }
        _ => String::new(),
    }
}
