//! Records and resync: resident bytes per IPv4 connection record with 1 000 000 of them, the
//! sender's extra memory during a full sync of them, and the time of a full resync (encode,
//! batch codec, receive, install on a second engine) in process.
//!
//! `cargo bench -p tandem-core --bench records [-- RUNS [RECORDS]]`: each run is a child
//! process of its own (fresh memory); medians and spread of the runs are printed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::forward::loopback_full_sync;

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect(field)
        * 1024
}

/// CPU time of the process (every thread, user and system), milliseconds (10 ms steps).
fn cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = &s[s.rfind(')').expect("stat") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().expect("ticks"))
        .collect();
    // USER_HZ is 100 on Linux.
    (f[0] + f[1]) * 10
}

fn reset_peak() {
    // Linux: "5" resets VmHWM to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs");
}

const CONFIG: &str = "port add 192.0.2.100@80 repstrategy connection staletimeout 3600\n\
    server add 192.0.2.100@80@192.0.2.11\n\
    server add 192.0.2.100@80@192.0.2.12\n";

/// One run: prints `bytes_per_record rss_mb sync_extra_mb resync_ms resync_cpu_ms
/// receiver_mb receiver_peak_extra_mb`.
fn child(n: u32) {
    let t0 = Instant::now();
    let cfg = config(&format!("executor set maxconnections {n}\n{CONFIG}"));
    let a = engine(&cfg, t0);
    a.replication
        .enabled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut frames = Vec::new();
    let base = status("VmRSS:");
    for i in 0..n {
        let src = flood_source(i);
        for flags in [SYN, ACK] {
            frames.clear();
            frames.extend_from_slice(&tcp(src, (CLUSTER, 80), flags));
            assert!(sent(handle(&a, &mut frames, t0)), "record {i}");
        }
        if i % 65536 == 0 {
            a.replication.drain();
        }
    }
    a.replication.drain();
    assert_eq!(a.conns.len(), n as usize);
    let filled = status("VmRSS:");
    let per = (filled - base) / u64::from(n);
    let a = Arc::new(a);
    // The sender's side: the sync streamed and the received records dropped.
    reset_peak();
    let before = status("VmRSS:");
    let s = loopback_full_sync(&a, None);
    assert_eq!(s.records, u64::from(n));
    let extra = status("VmHWM:").saturating_sub(before);
    // The resync: from the first record encoded to the last installed.
    let b = engine(&cfg, t0);
    reset_peak();
    let empty = status("VmRSS:");
    let cpu = cpu_ms();
    let start = Instant::now();
    let r = loopback_full_sync(&a, Some(&b));
    let took = start.elapsed();
    let cpu = cpu_ms() - cpu;
    assert_eq!(b.conns.len(), n as usize);
    assert_eq!(r.installed, n as usize);
    // The receiver's table, and the peak above it during the sync (batches in flight).
    let installed = status("VmRSS:").saturating_sub(empty);
    let peak = status("VmHWM:").saturating_sub(empty);
    println!(
        "{per} {} {} {} {} {} {}",
        filled / 1_000_000,
        extra / 1_000_000,
        took.as_millis(),
        cpu,
        installed / 1_000_000,
        peak.saturating_sub(installed) / 1_000_000,
    );
    // Keep both alive to here.
    drop((a, b));
    let _ = Duration::ZERO;
}

fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if std::env::var_os("RECORDS_BENCH_CHILD").is_some() {
        child(
            args.first()
                .and_then(|a| a.parse().ok())
                .unwrap_or(1_000_000),
        );
        return;
    }
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let n: u32 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let exe = std::env::current_exe().expect("current_exe");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for run in 0..runs {
        let out = std::process::Command::new(&exe)
            .arg(n.to_string())
            .env("RECORDS_BENCH_CHILD", "1")
            .output()
            .expect("run the child");
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let row: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().expect("a number"))
            .collect();
        println!("run {run}: {line}");
        rows.push(row);
    }
    let col = |i: usize| median(&mut rows.iter().map(|r| r[i]).collect::<Vec<_>>());
    let names = [
        "bytes per IPv4 record (RSS)",
        "process RSS with the records, MB",
        "sender's extra peak RSS during a full sync, MB",
        "full resync, ms (encode → installed)",
        "full resync, CPU ms of the process (all threads)",
        "receiver's RSS growth with the installed records, MB",
        "receiver's extra peak RSS during the sync, MB",
    ];
    println!("{n} records, {runs} runs: median (min–max)");
    for (i, name) in names.iter().enumerate() {
        let (m, lo, hi) = col(i);
        println!("  {name}: {m} ({lo}–{hi})");
    }
}
