//! Where the time went: `perf script` call stacks of a machine-wide `perf record -g`, sorted
//! into a few buckets by the frames they contain.
//!
//! Two views. The forwarding workers of tandemd (threads `worker-N`): its own code, the
//! system calls it makes, and the kernel work that runs in its context only because on veths
//! the receiving host's stack runs in the sender's softirq. The load generator (threads
//! `udp-flood-N`), in whose softirq the kernel carries the client's frames to the balancer: the
//! bridge, Tandem's packet-socket tap and the balancer node's own IP stack.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::Serialize;

/// Samples per bucket, for one group of threads.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Breakdown {
    /// Threads whose samples were counted (name prefixes).
    pub threads: String,
    pub samples: u64,
    /// Bucket → percent of `samples`, largest first.
    pub buckets: Vec<(String, f64)>,
}

impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} ({} samples):", self.threads, self.samples)?;
        for (b, pct) in &self.buckets {
            writeln!(f, "  {pct:5.1}%  {b}")?;
        }
        Ok(())
    }
}

/// Puts one call stack (leaf first) into a bucket.
type Sorter = fn(&[String]) -> &'static str;

fn has(stack: &[String], names: &[&str]) -> bool {
    stack.iter().any(|s| names.iter().any(|n| s.starts_with(n)))
}

fn is_user(frame: &str) -> bool {
    frame.contains("(/") && !frame.contains("kernel")
}

fn worker_bucket(stack: &[String]) -> &'static str {
    let leaf = stack.first().map(String::as_str).unwrap_or("");
    if is_user(leaf) {
        if leaf.contains("tandemd)") {
            "user: tandemd (engine, ring walk, hashing)"
        } else {
            "user: libc"
        }
    } else if has(stack, &["do_sys_poll", "__x64_sys_poll"]) {
        "kernel: poll (sleep, wake-up)"
    } else if has(
        stack,
        &["handle_softirqs", "net_rx_action", "process_backlog"],
    ) {
        "kernel: softirq in the worker's context (bridge, then the receiving host's stack)"
    } else if has(
        stack,
        &[
            "sock_alloc_send_pskb",
            "alloc_skb",
            "skb_copy_datagram_from_iter",
        ],
    ) {
        "kernel tx: skb allocation and copy of the frame"
    } else if has(stack, &["copy_msghdr_from_user", "import_iovec"]) {
        "kernel tx: sendmmsg per-message setup (msghdr, iovec)"
    } else if has(
        stack,
        &["veth_xmit", "__dev_direct_xmit", "dev_hard_start_xmit"],
    ) {
        "kernel tx: device transmit (veth, backlog enqueue)"
    } else if has(stack, &["packet_sendmsg", "__sys_sendmmsg"]) {
        "kernel tx: packet_sendmsg (header parsing, checks, locks)"
    } else {
        "kernel: other (syscall entry, scheduler, interrupts)"
    }
}

fn sender_bucket(stack: &[String]) -> &'static str {
    let leaf = stack.first().map(String::as_str).unwrap_or("");
    if is_user(leaf) {
        "user"
    } else if has(stack, &["tpacket_rcv", "packet_rcv_fanout", "packet_rcv"]) {
        "balancer: packet-socket tap (fanout hash, copy into the ring)"
    } else if has(
        stack,
        &[
            "ip_rcv",
            "ip_route_input",
            "ip_error",
            "ip_list_rcv",
            "ip_sublist_rcv",
        ],
    ) {
        "balancer node's IP stack (Tandem: route lookup, then drop; nft: the forwarding path)"
    } else if has(
        stack,
        &[
            "br_handle_frame",
            "br_forward",
            "__br_forward",
            "br_dev_queue_push_xmit",
        ],
    ) {
        "bridge"
    } else if has(
        stack,
        &[
            "handle_softirqs",
            "net_rx_action",
            "process_backlog",
            "__netif_receive_skb",
        ],
    ) {
        "softirq: other"
    } else if has(stack, &["udp_sendmsg", "__sys_sendmmsg"]) {
        "client: UDP send path"
    } else {
        "other"
    }
}

/// Which processes are whose, to sort samples by thread group.
#[derive(Clone, Debug, Default)]
pub struct LabPids {
    /// This process (load generators, sinks).
    pub bench: u32,
    /// The `tandem-lab serve` processes.
    pub servers: Vec<u32>,
    /// tandemd.
    pub tandemd: Option<u32>,
}

fn thread_group(pids: &LabPids, comm: &str, pid: u32) -> &'static str {
    if Some(pid) == pids.tandemd {
        if comm.starts_with("worker-") {
            "tandemd workers"
        } else {
            "tandemd, other threads"
        }
    } else if pid == pids.bench {
        if comm.starts_with("udp-flood-") || comm.starts_with("conn-rate-") {
            "load generator (client)"
        } else if comm.starts_with("udp-sink-") {
            "UDP sinks (servers)"
        } else {
            "bench, other threads"
        }
    } else if pids.servers.contains(&pid) {
        "servers (tandem-lab serve: HTTP thread per connection)"
    } else if comm.starts_with("ksoftirqd") {
        "ksoftirqd"
    } else if pid == 0 {
        "idle"
    } else {
        "not this lab (other users of the machine, tandemctl, perf)"
    }
}

/// Runs `perf script` on `data` and sorts the samples: all of them by thread group, those of
/// tandemd's `worker-*` threads and those of the bench's `udp-flood-*` threads by stack.
pub fn breakdown(data: &Path, pids: &LabPids) -> Result<Vec<Breakdown>> {
    let mut child = Command::new("perf")
        .args(["script", "-F", "comm,pid,tid,ip,sym,dso", "-i"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running perf script")?;
    let out = child.stdout.take().context("perf script output")?;
    // (thread name prefix, process, sorter)
    let groups: [(&str, Option<u32>, Sorter); 2] = [
        ("worker-", pids.tandemd, worker_bucket),
        ("udp-flood-", Some(pids.bench), sender_bucket),
    ];
    let mut counts: Vec<BTreeMap<&'static str, u64>> = vec![BTreeMap::new(); groups.len()];
    let mut all: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut comm = String::new();
    let mut pid = 0u32;
    let mut stack: Vec<String> = Vec::new();
    let mut flush = |comm: &str, pid: u32, stack: &mut Vec<String>| {
        if !comm.is_empty() {
            *all.entry(thread_group(pids, comm, pid)).or_default() += 1;
            if let Some(g) = groups
                .iter()
                .position(|(p, owner, _)| comm.starts_with(p) && *owner == Some(pid))
            {
                *counts[g].entry(groups[g].2(stack)).or_default() += 1;
            }
        }
        stack.clear();
    };
    for line in BufReader::new(out).lines() {
        let line = line?;
        if line.trim().is_empty() {
            flush(&comm, pid, &mut stack);
            comm.clear();
        } else if line.starts_with([' ', '\t']) {
            let frame = line.trim().split_once(' ').map_or("", |(_, s)| s);
            stack.push(frame.to_string());
        } else {
            // "<comm> <pid>/<tid>": the command name may hold spaces.
            let (c, ids) = line.trim_end().rsplit_once(' ').unwrap_or(("", ""));
            comm = c.trim().to_string();
            pid = ids
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
        }
    }
    flush(&comm, pid, &mut stack);
    let _ = child.wait();
    let labels = [
        "all threads, by group".to_string(),
        "tandemd's worker-* threads, by call stack".into(),
        "the load generator's udp-flood-* threads, by call stack".into(),
    ];
    Ok(std::iter::once(all)
        .chain(counts)
        .zip(labels)
        .map(|(c, threads)| {
            let samples: u64 = c.values().sum();
            let mut buckets: Vec<(String, f64)> = c
                .into_iter()
                .map(|(b, n)| (b.to_string(), 100.0 * n as f64 / samples.max(1) as f64))
                .collect();
            buckets.sort_by(|a, b| b.1.total_cmp(&a.1));
            Breakdown {
                threads,
                samples,
                buckets,
            }
        })
        .filter(|b| b.samples > 0)
        .collect())
}
