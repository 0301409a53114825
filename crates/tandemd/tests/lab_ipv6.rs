//! IPv6 end to end in a dual-stack lab ([`ClusterLab::dual_stack`]) with real `tandemd`
//! processes: an IPv6 cluster spreads 3 000 connections by weight over MAC and NAT, an IPv6
//! pair (heartbeat over IPv6) fails over on `kill -9` with its replicated IPv6 connections
//! alive, an ICMPv6 reach target decides a takeover, and one node serves an IPv4 and an IPv6
//! cluster at once. Needs root; runs in the nextest group `lab`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem_lab::capture::{NaCapture, NaFrame};
use tandem_lab::cluster::{
    CLIENT_IP6, CLUSTER_IP6, ClusterLab, TandemNode, demo_config, join_pair_v6, lb_ip, lb_ip6,
    mac_bytes, wait_connection_records, wait_ha_state,
};
use tandem_lab::{ConnStats, LoadReport, serial};

const TIMEOUT: Duration = Duration::from_secs(5);
const HA_PORT: u16 = 20001;
/// As in lab_replication: detection ends before the client's 1.4 s retransmission.
const HATIMEOUT: Duration = Duration::from_secs(1);

/// The IPv6 twin of examples/demo.cfg: cluster 2001:db8::100 with MAC port 80, NAT port 8080
/// (return address 2001:db8::200), UDP port 9999, weights 10/10/20; echo ports 7 (MAC) and
/// 2007 (NAT) replicated. The nfa is node `n`'s IPv6 address unless `v4_nfa`.
fn v6_config(n: usize, v4_nfa: bool) -> String {
    let nfa = if v4_nfa { lb_ip(n) } else { lb_ip6(n) };
    let c = CLUSTER_IP6;
    let s = |i: usize| tandem_lab::cluster::server_ip6(i);
    let (s1, s2, s3) = (s(1), s(2), s(3));
    format!(
        "executor start\n\
         executor set nfa {nfa}\n\
         executor set hatimeout {hatimeout}\n\
         cluster add {c}\n\
         port add {c}@80 method mac\n\
         port add {c}@8080 method nat\n\
         port add {c}@9999 protocol udp method mac\n\
         port add {c}@7 repstrategy connection\n\
         port add {c}@2007 method nat repstrategy connection\n\
         server add {c}@80@{s1}+{s2} weight 10\n\
         server add {c}@80@{s3} weight 20\n\
         server add {c}@8080@{s1}+{s2} weight 10 returnaddress 2001:db8::200 mapport 80\n\
         server add {c}@8080@{s3} weight 20 returnaddress 2001:db8::200 mapport 80\n\
         server add {c}@9999@{s1}+{s2}+{s3}\n\
         server add {c}@7@{s1}+{s2}+{s3}\n\
         server add {c}@2007@{s1}+{s2}+{s3} returnaddress 2001:db8::200 mapport 7\n",
        hatimeout = HATIMEOUT.as_secs_f64(),
    )
}

fn assert_weighted(r: &LoadReport, what: &str) {
    assert_eq!(r.ok, r.requested, "{what}: every connection answered: {r}");
    let s = r.shares();
    for (name, want) in [("s1", 25.0), ("s2", 25.0), ("s3", 50.0)] {
        let got = s.get(name).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() <= 5.0,
            "{what}: {name} got {got:.1} %, want {want} ± 5: {s:?}"
        );
    }
    eprintln!("{what}: {} connections, shares {s:.1?}", r.ok);
}

/// One node of the dual-stack lab with `config`, serving `[2001:db8::100]:80`.
fn single(tag: &str, config: &str) -> (ClusterLab, TandemNode) {
    let lab = ClusterLab::dual_stack(tag, 1, 3).expect("lab (needs root and network namespaces)");
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], config, &[]).expect("tandemd starts");
    if let Err(e) = lab.wait_serving_at(ClusterLab::cluster6(80), Duration::from_secs(20)) {
        panic!(
            "{e:#}\n{}\n{}",
            node.ctl(&["executor", "status"]).unwrap_or_default(),
            node.log()
        );
    }
    (lab, node)
}

fn lab_ipv6_mac_and_nat_spread_3000_connections_by_weight_and_reports_show_ipv6() {
    let _g = serial();
    let (lab, node) = single("v6fwd", &v6_config(1, false));
    let mac = lab
        .client
        .http_load(ClusterLab::cluster6(80), 3000, 16, TIMEOUT)
        .unwrap();
    assert_weighted(&mac, "IPv6 MAC port 80");
    lab.wait_serving_at(ClusterLab::cluster6(8080), Duration::from_secs(10))
        .unwrap();
    let nat = lab
        .client
        .http_load(ClusterLab::cluster6(8080), 3000, 16, TIMEOUT)
        .unwrap();
    assert_weighted(&nat, "IPv6 NAT port 8080");

    // UDP over IPv6 (MAC): the servers answer from the cluster address on their loopback.
    let mut answered = BTreeSet::new();
    for i in 0..9 {
        let reply = lab
            .client
            .udp_request(ClusterLab::cluster6(9999), &format!("q{i}"), TIMEOUT)
            .unwrap();
        let (server, payload) = reply.split_once(' ').unwrap();
        assert_eq!(payload, format!("q{i}"));
        answered.insert(server.to_string());
    }
    assert!(!answered.is_empty(), "UDP over IPv6 answered");

    // Every report speaks IPv6.
    let servers = node.ctl(&["server", "report", &format!("{CLUSTER_IP6}@80@")]);
    let servers = servers.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(servers.contains("2001:db8::13"), "{servers}");
    let json = node
        .ctl_json(&["server", "report", &format!("{CLUSTER_IP6}@80@")])
        .unwrap();
    let total: u64 = json
        .as_array()
        .map(|rows| rows.iter().map(|r| r["total"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert!(total >= 3000, "server report total {total}: {json}");
    let cluster = node.ctl(&["cluster", "report", CLUSTER_IP6]).unwrap();
    assert!(cluster.contains(CLUSTER_IP6), "{cluster}");
    let executor = node.ctl(&["executor", "report"]).unwrap();
    assert!(
        executor.contains("Nonforwarding address ....... 2001:db8::2"),
        "{executor}"
    );
    // The node's kernel is kept out of the IPv6 traffic it forwards, as out of IPv4's: by the
    // nftables ingress filter on AF_PACKET, by the XDP program (which takes the frames before
    // the kernel, so no filter is installed) on AF_XDP.
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    let running = status["packetio_running"].as_str().unwrap_or_default();
    let rules = lab.lbs[0].run(["nft", "list", "ruleset"]).unwrap();
    if running.starts_with("afxdp") {
        assert!(
            !rules.contains("tandem_eth0"),
            "{running}, yet an ingress filter: {rules}"
        );
    } else {
        assert!(
            rules.contains("ip6 daddr { 2001:db8::100, 2001:db8::200 } drop"),
            "ingress filter ({running}): {rules}"
        );
    }
    assert!(
        status.to_string().contains("2001:db8::2"),
        "the IPv6 nfa in executor status: {status}"
    );
}

fn lab_ipv4_and_ipv6_clusters_on_one_node() {
    let _g = serial();
    // demo.cfg (IPv4 cluster 192.0.2.100, nfa 192.0.2.2) plus the IPv6 cluster's lines.
    let v6: String = v6_config(1, true)
        .lines()
        .filter(|l| !l.starts_with("executor"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = format!("{}\n{v6}", demo_config(1));
    let (lab, node) = single("v6mixed", &config);
    lab.wait_serving(80, Duration::from_secs(10)).unwrap();
    for (target, what) in [
        (ClusterLab::cluster(80), "IPv4 MAC"),
        (ClusterLab::cluster6(80), "IPv6 MAC"),
        (ClusterLab::cluster(8080), "IPv4 NAT"),
        (ClusterLab::cluster6(8080), "IPv6 NAT"),
    ] {
        let r = lab.client.http_load(target, 400, 8, TIMEOUT).unwrap();
        assert!(r.all_ok(), "{what} {target}: {r}");
    }
    // UDP (MAC) on both families: each answer comes from the cluster address asked.
    for target in [ClusterLab::cluster(9999), ClusterLab::cluster6(9999)] {
        let reply = lab.client.udp_request(target, "mixed", TIMEOUT).unwrap();
        assert!(reply.ends_with(" mixed"), "{target}: {reply}");
    }
    let report = node
        .ctl(&["cluster", "report", &format!("192.0.2.100+{CLUSTER_IP6}")])
        .unwrap();
    assert!(
        report.contains("192.0.2.100") && report.contains(CLUSTER_IP6),
        "{report}"
    );
}

/// An IPv6 pair: both nodes with [`v6_config`], heartbeat between their IPv6 addresses and
/// the client's IPv6 address as reach target ([`join_pair_v6`]).
fn v6_pair(tag: &str, recovery: &str) -> (ClusterLab, TandemNode, TandemNode) {
    let lab = ClusterLab::dual_stack(tag, 2, 3).expect("lab (needs root)");
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &v6_config(1, false), &[]).unwrap();
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &v6_config(2, false), &[]).unwrap();
    join_pair_v6(&lb1, 1, recovery, HA_PORT).unwrap();
    join_pair_v6(&lb2, 2, recovery, HA_PORT).unwrap();
    if let Err(e) = wait_ha_state(&lb1, "Active", true, Duration::from_secs(20)) {
        panic!(
            "{e:#}\nlb2: {}",
            lb2.ctl(&["highavailability", "status"]).unwrap_or_default()
        );
    }
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(15)).unwrap();
    let status = lb2.ctl_json(&["highavailability", "status"]).unwrap();
    assert_eq!(
        status["partner"]["address"],
        lb_ip6(1),
        "the partner is heard over IPv6: {status}"
    );
    assert_eq!(status["reach"][0]["reachable"], true, "{status}");
    lab.wait_serving_at(ClusterLab::cluster6(80), Duration::from_secs(10))
        .unwrap();
    (lab, lb1, lb2)
}

fn assert_survived(conns: &[ConnStats], what: &str) {
    for c in conns {
        if let Err(e) = c.survived(HATIMEOUT + Duration::from_secs(1)) {
            panic!("{what}: {e:#}: {c:?}");
        }
    }
}

/// The new Active announced the IPv6 cluster address with its own MAC in an unsolicited
/// neighbour advertisement (override set) that the client saw.
fn assert_announced(frames: &[NaFrame], new_active: &tandem_lab::Host) {
    let cluster: std::net::Ipv6Addr = CLUSTER_IP6.parse().unwrap();
    let mac = mac_bytes(&new_active.mac);
    let announced: Vec<&NaFrame> = frames
        .iter()
        .filter(|f| f.target == cluster && f.is_unsolicited_override())
        .collect();
    assert!(
        announced
            .iter()
            .any(|f| f.target_mac == Some(mac) && f.eth_src == mac),
        "no unsolicited NA for {cluster} from {}: {frames:?}",
        new_active.name
    );
    eprintln!(
        "{} unsolicited NA(s) for {cluster} from {}",
        announced.len(),
        new_active.name
    );
}

/// Time until an HTTP GET from the client to `target` succeeds.
fn time_to_serve(lab: &ClusterLab, target: SocketAddr, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if lab
            .client
            .http_get(target, Duration::from_millis(300))
            .is_ok()
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no service at {target} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lab_ipv6_pair_fails_over_on_kill_9_with_50_replicated_connections_alive() {
    let _g = serial();
    let (lab, mut lb1, lb2) = v6_pair("v6rep", "manual");
    let echo = |port| SocketAddr::new(CLUSTER_IP6.parse().unwrap(), port);
    let mac = lab
        .client
        .long_lived_set(echo(7), 25, Duration::from_millis(100))
        .unwrap();
    let nat = lab
        .client
        .long_lived_set(echo(2007), 25, Duration::from_millis(100))
        .unwrap();
    mac.wait_echoes(3, Duration::from_secs(20)).unwrap();
    nat.wait_echoes(3, Duration::from_secs(20)).unwrap();
    wait_connection_records(&lb2, 50, Duration::from_secs(10)).unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            lb2.ctl(&["highavailability", "status"]).unwrap_or_default()
        )
    });
    let capture = NaCapture::start(&lab.client).unwrap();
    let killed = Instant::now();
    lb1.kill().unwrap();
    wait_ha_state(&lb2, "Active", false, Duration::from_secs(5)).unwrap();
    let takeover = killed.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    assert_announced(&capture.stop().unwrap(), &lab.lbs[1]);
    let (mac, nat) = (mac.stop(), nat.stop());
    assert_survived(&mac, "IPv6 MAC echo after kill -9 of the Active");
    assert_survived(&nat, "IPv6 NAT echo after kill -9 of the Active");
    let longest = mac
        .iter()
        .chain(&nat)
        .map(|c| c.longest_gap)
        .max()
        .unwrap_or_default();
    eprintln!(
        "IPv6 kill -9: {} of 50 connections survived, takeover {takeover:?}, longest stall {longest:?}",
        mac.len() + nat.len()
    );
    // New connections go through the new Active (it announced the cluster with NAs).
    let served = time_to_serve(&lab, ClusterLab::cluster6(80), Duration::from_secs(5));
    assert!(served < Duration::from_secs(5), "{served:?}");
}

fn lab_ipv6_reach_target_lost_by_the_active_hands_over() {
    let _g = serial();
    let (lab, lb1, lb2) = v6_pair("v6reach", "manual");
    // Only lb1 loses its path to the reach target (the client's IPv6 address).
    let capture = NaCapture::start(&lab.client).unwrap();
    let lost = Instant::now();
    lab.lbs[0]
        .run([
            "ip",
            "-6",
            "route",
            "add",
            "blackhole",
            &format!("{CLIENT_IP6}/128"),
        ])
        .unwrap();
    wait_ha_state(&lb2, "Active", false, Duration::from_secs(15)).unwrap();
    let takeover = lost.elapsed();
    wait_ha_state(&lb1, "Standby", false, Duration::from_secs(5)).unwrap();
    let status = lb1.ctl_json(&["highavailability", "status"]).unwrap();
    assert_eq!(status["reach"][0]["address"], CLIENT_IP6, "{status}");
    assert_eq!(status["reach"][0]["reachable"], false, "{status}");
    let status = lb2.ctl_json(&["highavailability", "status"]).unwrap();
    assert_eq!(status["reach"][0]["reachable"], true, "{status}");
    // The client is served through lb2 (its unsolicited NAs moved the cluster address).
    let served = time_to_serve(&lab, ClusterLab::cluster6(80), Duration::from_secs(5));
    eprintln!("IPv6 reach lost: lb2 Active after {takeover:?}, serving {served:?} later");
    std::thread::sleep(Duration::from_millis(500));
    assert_announced(&capture.stop().unwrap(), &lab.lbs[1]);
}

// Every test on both packet I/O backends (docs/packet-io.md).
tandem_lab::packetio_matrix!(
    lab_ipv6_mac_and_nat_spread_3000_connections_by_weight_and_reports_show_ipv6,
    lab_ipv4_and_ipv6_clusters_on_one_node,
    lab_ipv6_pair_fails_over_on_kill_9_with_50_replicated_connections_alive,
    lab_ipv6_reach_target_lost_by_the_active_hands_over,
);
