//! Mutual high availability (role both) in a lab: two clusters, one per node (primaryhost);
//! each node serves its own cluster and replicates its connections to the other; `kill -9` of
//! either node moves its cluster to the other with 50 of 50 long-lived TCP connections
//! surviving. IPv4 (the data plane forwards IPv4 only; the grouping logic is family-blind and
//! unit-tested with IPv6 in tandem-core). Needs root; runs in the nextest group `lab`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem_lab::cluster::{CLIENT_IP, ClusterLab, TandemNode, lb_ip};
use tandem_lab::{ConnStats, LongLivedSet, serial};

const HA_PORT: u16 = 20001;
const HATIMEOUT: Duration = Duration::from_secs(1);
/// lb1's cluster (primaryhost lb1's nfa) and lb2's.
const CLUSTERS: [&str; 2] = ["192.0.2.100", "192.0.2.101"];
const CONNECTIONS: usize = 50;

/// Node `n`'s configuration (1 or 2): both clusters with their primaryhost, an echo port that
/// replicates connections, the nfa heartbeat pair, role both with `recovery`.
fn config(n: usize, recovery: &str) -> String {
    let (me, other) = (lb_ip(n), lb_ip(3 - n));
    let mut c = format!(
        "executor start\nexecutor set nfa {me}\nexecutor set hatimeout {}\n",
        HATIMEOUT.as_secs_f64()
    );
    for (i, cluster) in CLUSTERS.iter().enumerate() {
        c.push_str(&format!(
            "cluster add {cluster} primaryhost {}\n\
             port add {cluster}@7 repstrategy connection\n\
             server add {cluster}@7@192.0.2.11+192.0.2.12+192.0.2.13\n",
            lb_ip(i + 1)
        ));
    }
    c.push_str(&format!(
        "highavailability heartbeat add {me} {other}\n\
         highavailability reach add {CLIENT_IP}\n\
         highavailability backup add both {recovery} {HA_PORT}\n"
    ));
    c
}

/// The state and sub-state of the group of `primaryhost` on `node` (from status `groups`).
fn group_state(node: &TandemNode, primaryhost: &str) -> (String, String) {
    let Ok(v) = node.ctl_json(&["highavailability", "status"]) else {
        return ("unreachable".into(), String::new());
    };
    v["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["primaryhost"] == primaryhost))
        .map(|g| {
            (
                g["state"].as_str().unwrap_or("?").to_string(),
                g["sub_state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .unwrap_or(("no group".into(), String::new()))
}

/// Waits until `node` is `state` (and Synchronized, with `synchronized`) for the group of
/// `primaryhost`.
fn wait_group(node: &TandemNode, primaryhost: &str, state: &str, synced: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (s, sub) = group_state(node, primaryhost);
        if s == state && (!synced || sub == "Synchronized") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: group {primaryhost} is {s}/{sub}, wanted {state}:\n{}\n{}",
            node.host.name,
            node.ctl(&["highavailability", "status"])
                .unwrap_or_default(),
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each node Active for its own group and Standby for the other's, all Synchronized.
fn wait_own_groups(lb1: &TandemNode, lb2: &TandemNode, limit: Duration) {
    let (p1, p2) = (lb_ip(1), lb_ip(2));
    wait_group(lb1, &p1, "Active", true, limit);
    wait_group(lb1, &p2, "Standby", true, limit);
    wait_group(lb2, &p2, "Active", true, limit);
    wait_group(lb2, &p1, "Standby", true, limit);
}

/// Packets `node` forwarded for `cluster` (`cluster report`).
fn packets(node: &TandemNode, cluster: &str) -> u64 {
    fn sum(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, x)| {
                    if k == "packets" {
                        x.as_u64().unwrap_or(0)
                    } else {
                        sum(x)
                    }
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(sum).sum(),
            _ => 0,
        }
    }
    node.ctl_json(&["cluster", "report", cluster])
        .map(|v| sum(&v))
        .unwrap_or(0)
}

fn records(node: &TandemNode) -> u64 {
    node.ctl_json(&["executor", "status"])
        .map(|s| s["connection_records"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Waits until `node` holds at least `n` connection records.
fn wait_records(node: &TandemNode, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while records(node) < n {
        assert!(
            Instant::now() < deadline,
            "{} holds {} connection records, wanted {n}",
            node.host.name,
            records(node)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn target(cluster: &str) -> SocketAddr {
    format!("{cluster}:7").parse().expect("static address")
}

/// Every connection of the set alive, on its first server, echoing, with no stall beyond
/// hatimeout + 1 s; returns how many (asserted to be all).
fn assert_survived(conns: &[ConnStats], what: &str) -> usize {
    let mut worst = Duration::ZERO;
    for (i, c) in conns.iter().enumerate() {
        assert!(c.ended.is_none(), "{what}: connection {i} ended: {c:?}");
        assert_eq!(
            c.servers_seen.len(),
            1,
            "{what}: connection {i} changed server: {c:?}"
        );
        assert!(
            c.longest_gap <= HATIMEOUT + Duration::from_secs(2),
            "{what}: connection {i} stalled {:?}",
            c.longest_gap
        );
        assert!(
            c.since_last_echo < Duration::from_secs(1),
            "{what}: connection {i} no longer echoes: {c:?}"
        );
        worst = worst.max(c.longest_gap);
    }
    assert_eq!(conns.len(), CONNECTIONS);
    println!(
        "{what}: {} of {CONNECTIONS} connections survived (longest stall {worst:?})",
        conns.len()
    );
    conns.len()
}

fn sets(lab: &ClusterLab) -> [LongLivedSet; 2] {
    CLUSTERS.map(|c| {
        let set = lab
            .client
            .long_lived_set(target(c), CONNECTIONS, Duration::from_millis(100))
            .unwrap();
        set.wait_echoes(3, Duration::from_secs(20)).unwrap();
        set
    })
}

fn lab_mutual_each_node_serves_its_cluster_and_either_can_fail() {
    let _g = serial();
    let lab = ClusterLab::new("mutual", 2, 3).expect("lab (needs root)");
    for s in &lab.servers {
        s.add_loopback_address(CLUSTERS[1]).unwrap();
    }
    let mut lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &config(1, "auto"), &[]).unwrap();
    let mut lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &config(2, "auto"), &[]).unwrap();
    wait_own_groups(&lb1, &lb2, Duration::from_secs(20));
    let status = lb1.ctl(&["highavailability", "status"]).unwrap();
    assert!(status.contains("Cluster groups"), "{status}");

    // Traffic to each cluster is served by its own primary.
    let before = [
        CLUSTERS.map(|c| packets(&lb1, c)),
        CLUSTERS.map(|c| packets(&lb2, c)),
    ];
    let [set1, set2] = sets(&lab);
    wait_records(&lb1, 2 * CONNECTIONS as u64, Duration::from_secs(10));
    wait_records(&lb2, 2 * CONNECTIONS as u64, Duration::from_secs(10));
    let after = [
        CLUSTERS.map(|c| packets(&lb1, c)),
        CLUSTERS.map(|c| packets(&lb2, c)),
    ];
    let grew = |n: usize, c: usize| after[n][c] - before[n][c];
    println!(
        "packets forwarded: lb1 {}/{} , lb2 {}/{} (cluster {}/{})",
        grew(0, 0),
        grew(0, 1),
        grew(1, 0),
        grew(1, 1),
        CLUSTERS[0],
        CLUSTERS[1]
    );
    assert!(grew(0, 0) >= CONNECTIONS as u64, "lb1 serves its cluster");
    assert!(grew(1, 1) >= CONNECTIONS as u64, "lb2 serves its cluster");
    assert_eq!(grew(0, 1), 0, "lb1 forwards nothing of lb2's cluster");
    assert_eq!(grew(1, 0), 0, "lb2 forwards nothing of lb1's cluster");

    // kill -9 lb1: its cluster moves to lb2 with every connection.
    lb1.kill().unwrap();
    wait_group(&lb2, &lb_ip(1), "Active", false, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    assert_survived(&set1.snapshot(), "lb1's cluster after kill -9 of lb1");
    assert_survived(&set2.snapshot(), "lb2's cluster after kill -9 of lb1");

    // lb1 returns (auto: it takes its group back after the hand-over of records), then
    // kill -9 lb2: its cluster moves to lb1 with every connection.
    lb1.restart().unwrap();
    wait_own_groups(&lb1, &lb2, Duration::from_secs(30));
    wait_records(&lb1, 2 * CONNECTIONS as u64, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_survived(&set1.snapshot(), "lb1's cluster after lb1 took it back");
    lb2.kill().unwrap();
    wait_group(&lb1, &lb_ip(2), "Active", false, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    let survived = assert_survived(&set2.stop(), "lb2's cluster after kill -9 of lb2");
    assert_eq!(survived, CONNECTIONS);
    assert_survived(&set1.stop(), "lb1's cluster after kill -9 of lb2");
}

fn lab_mutual_manual_recovery_and_takeover_address() {
    let _g = serial();
    let lab = ClusterLab::new("mutualm", 2, 3).expect("lab (needs root)");
    for s in &lab.servers {
        s.add_loopback_address(CLUSTERS[1]).unwrap();
    }
    let mut lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &config(1, "manual"), &[]).unwrap();
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &config(2, "manual"), &[]).unwrap();
    wait_own_groups(&lb1, &lb2, Duration::from_secs(20));
    // takeover without ADDRESS in mutual HA names the choices; an unknown group is refused.
    let e = lb1.ctl(&["highavailability", "takeover"]).unwrap_err();
    assert!(format!("{e:#}").contains(&lb_ip(2)), "{e:#}");
    let e = lb1
        .ctl(&["highavailability", "takeover", "192.0.2.99"])
        .unwrap_err();
    assert!(format!("{e:#}").contains("no cluster group"), "{e:#}");
    lb1.kill().unwrap();
    wait_group(&lb2, &lb_ip(1), "Active", false, Duration::from_secs(5));
    lb1.restart().unwrap();
    // Manual: lb1 stays Standby for its own group until `takeover ITS_NFA`.
    wait_group(&lb1, &lb_ip(1), "Standby", true, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(group_state(&lb1, &lb_ip(1)).0, "Standby");
    assert_eq!(group_state(&lb2, &lb_ip(1)).0, "Active");
    lb1.ctl(&["highavailability", "takeover", &lb_ip(1)])
        .unwrap();
    wait_own_groups(&lb1, &lb2, Duration::from_secs(15));
}

// These tests run on both packet I/O backends (docs/packet-io.md).
tandem_lab::packetio_matrix!(
    lab_mutual_each_node_serves_its_cluster_and_either_can_fail,
    lab_mutual_manual_recovery_and_takeover_address,
);
