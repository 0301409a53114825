//! Tandem in a lab of real hosts: the real `tandemd` and `tandemctl` binaries, network
//! namespaces on a bridge, real TCP and UDP traffic. Needs root; runs in the nextest group `lab`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tandem_lab::cluster::{
    CLUSTER_IP, ClusterLab, TandemNode, demo_config, mac_bytes, send_raw_frames, server_ip,
};
use tandem_lab::{LoadReport, serial};

const TIMEOUT: Duration = Duration::from_secs(5);

fn start(tag: &str) -> (ClusterLab, TandemNode) {
    let lab = ClusterLab::new(tag, 1, 3).expect("lab (needs root and network namespaces)");
    let node =
        TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");
    (lab, node)
}

fn shares(r: &LoadReport) -> BTreeMap<String, f64> {
    r.by_server
        .iter()
        .map(|(k, v)| (k.clone(), 100.0 * *v as f64 / r.ok as f64))
        .collect()
}

fn assert_weighted(r: &LoadReport, what: &str) {
    assert_eq!(r.ok, r.requested, "{what}: every connection answered: {r}");
    let s = shares(r);
    for (name, want) in [("s1", 25.0), ("s2", 25.0), ("s3", 50.0)] {
        let got = s.get(name).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() <= 5.0,
            "{what}: {name} got {got:.1} %, want {want} ± 5: {s:?}"
        );
    }
}

fn lab_mac_and_nat_ports_spread_3000_connections_by_weight_and_udp_answers() {
    let _g = serial();
    let (lab, node) = start("fwd");
    let mac = lab
        .client
        .http_load(ClusterLab::cluster(80), 3000, 16, TIMEOUT)
        .unwrap();
    assert_weighted(&mac, "MAC port 80");
    lab.wait_serving(8080, Duration::from_secs(10)).unwrap();
    let nat = lab
        .client
        .http_load(ClusterLab::cluster(8080), 3000, 16, TIMEOUT)
        .unwrap();
    assert_weighted(&nat, "NAT port 8080");

    let mut answered = BTreeSet::new();
    for i in 0..9 {
        let reply = lab
            .client
            .udp_request(ClusterLab::cluster(9999), &format!("hello {i}"), TIMEOUT)
            .unwrap();
        assert!(reply.ends_with(&format!("hello {i}")), "{reply}");
        answered.insert(
            reply
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        answered.len(),
        3,
        "UDP requests from distinct ports spread over the servers: {answered:?}"
    );

    // The reports count what went through.
    let rows = node
        .ctl_json(&["server", "report", &format!("{CLUSTER_IP}@8080@")])
        .unwrap();
    let total: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total"].as_u64().unwrap())
        .sum();
    assert!(total >= 3000, "server report total {total}: {rows}");
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert!(
        status["frames_forwarded"].as_u64().unwrap() > 20_000,
        "{status}"
    );
    let forwarded = status["frames_forwarded"].as_u64().unwrap();
    if tandem_lab::packetio() == Some(tandem_lab::PacketIo::Afxdp) {
        // The XDP program takes the cluster traffic before the kernel: no ingress filter.
        let running = status["packetio_running"].as_str().unwrap_or_default();
        assert!(running.starts_with("afxdp ("), "{status}");
        assert!(
            status["afxdp"]["xdp_steered"].as_u64().unwrap() >= forwarded,
            "{status}"
        );
        let out = lab.lbs[0]
            .exec(["nft", "list", "table", "netdev", "tandem_eth0"])
            .unwrap();
        assert!(
            !out.status.success(),
            "an ingress filter with AF_XDP: {out:?}"
        );
    } else {
        // The node's own kernel is kept out of the forwarded traffic by an ingress filter.
        let rules = lab.lbs[0]
            .run(["nft", "list", "table", "netdev", "tandem_eth0"])
            .unwrap();
        assert!(
            rules.contains("192.0.2.100")
                && rules.contains("192.0.2.200")
                && rules.contains("drop"),
            "{rules}"
        );
    }
    // Either way the node's kernel never received the cluster traffic (its IP counter).
    let received = kernel_ip_in_receives(&lab.lbs[0]);
    assert!(
        received < forwarded / 20,
        "the node's kernel received {received} IP packets, {forwarded} frames were forwarded"
    );
    let table = node
        .ctl(&["port", "report", &format!("{CLUSTER_IP}@")])
        .unwrap();
    assert!(table.contains("8080") && table.contains("nat"), "{table}");
}

/// `Ip: InReceives` of the host's network namespace (/proc/net/snmp).
fn kernel_ip_in_receives(host: &tandem_lab::Host) -> u64 {
    let snmp = host.run(["cat", "/proc/net/snmp"]).unwrap();
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|w| w == "InReceives")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn echo_port(node: &TandemNode, extra: &[&str]) {
    let mut add = vec!["port", "add", "192.0.2.100@7"];
    add.extend_from_slice(extra);
    node.ctl(&add).unwrap();
    node.ctl(&[
        "server",
        "add",
        "192.0.2.100@7@192.0.2.11+192.0.2.12+192.0.2.13",
    ])
    .unwrap();
}

/// Opens `n` connections to port 7 and returns the servers they reached.
fn new_connection_servers(lab: &ClusterLab, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let mut c = lab
            .client
            .long_lived(ClusterLab::cluster(7), "probe")
            .unwrap();
        let echo = c.ping().unwrap();
        *seen.entry(echo.server).or_default() += 1;
    }
    seen
}

fn lab_weight_zero_and_server_down_stop_new_connections_but_keep_open_ones() {
    let _g = serial();
    let (lab, node) = start("drain");
    echo_port(&node, &[]);
    let mut held = lab
        .client
        .long_lived(ClusterLab::cluster(7), "held")
        .unwrap();
    let name = held.ping().unwrap().server;
    let n: usize = name.trim_start_matches('s').parse().unwrap();
    let target = format!("192.0.2.100@7@{}", server_ip(n));

    let cases: [(Vec<&str>, Vec<&str>); 2] = [
        (
            vec!["server", "set", &target, "weight", "0"],
            vec!["server", "set", &target, "weight", "10"],
        ),
        (
            vec!["server", "down", &target],
            vec!["server", "up", &target],
        ),
    ];
    for (drain, undrain) in cases {
        node.ctl(&drain).unwrap();
        let seen = new_connection_servers(&lab, 30);
        assert!(
            !seen.contains_key(&name),
            "{drain:?}: new connections still reach {name}: {seen:?}"
        );
        for _ in 0..5 {
            let e = held.ping().expect("the open connection keeps working");
            assert_eq!(e.server, name);
        }
        node.ctl(&undrain).unwrap();
        let seen = new_connection_servers(&lab, 30);
        assert!(
            seen.contains_key(&name),
            "{undrain:?}: {name} gets new connections again: {seen:?}"
        );
    }
}

fn lab_reset_yes_resets_clients_of_a_server_that_goes_down() {
    let _g = serial();
    let (lab, node) = start("reset");
    echo_port(&node, &["reset", "yes"]);
    let mut held = lab
        .client
        .long_lived(ClusterLab::cluster(7), "held")
        .unwrap();
    held.set_timeout(Duration::from_secs(3));
    let name = held.ping().unwrap().server;
    let n: usize = name.trim_start_matches('s').parse().unwrap();
    node.ctl(&["server", "down", &format!("192.0.2.100@7@{}", server_ip(n))])
        .unwrap();
    let start = Instant::now();
    let err = held.ping().expect_err("the client was reset");
    assert!(
        format!("{err:#}").to_lowercase().contains("reset"),
        "{err:#}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "reset took {:?}",
        start.elapsed()
    );
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert!(status["resets_sent"].as_u64().unwrap() >= 1, "{status}");
}

fn lab_affinity_keeps_a_client_on_one_server_and_expires() {
    let _g = serial();
    let (lab, node) = start("sticky");
    node.ctl(&[
        "port",
        "set",
        "192.0.2.100@80",
        "selectionalgorithm",
        "affinity",
        "stickytime",
        "30",
    ])
    .unwrap();
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 100, 4, TIMEOUT)
        .unwrap();
    assert_eq!(r.ok, 100, "{r}");
    assert_eq!(
        r.by_server.len(),
        1,
        "100 connections from one client reach one server: {r}"
    );

    // A short stickytime: once it passes without a new connection, selection starts afresh.
    node.ctl(&["port", "set", "192.0.2.100@80", "stickytime", "1"])
        .unwrap();
    let mut rounds = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(2500));
        let r = lab
            .client
            .http_load(ClusterLab::cluster(80), 5, 1, TIMEOUT)
            .unwrap();
        assert_eq!(r.by_server.len(), 1, "within stickytime one server: {r}");
        rounds.push(r.by_server.keys().next().unwrap().clone());
    }
    let distinct: BTreeSet<_> = rounds.iter().collect();
    assert!(
        distinct.len() > 1,
        "after expiry the client was placed afresh: {rounds:?}"
    );
}

fn send_raw(lab: &ClusterLab, frames: Vec<Vec<u8>>) {
    send_raw_frames(&lab.client, frames.into_iter()).unwrap();
}

fn mac(s: &str) -> [u8; 6] {
    mac_bytes(s)
}

fn lab_malformed_frames_are_counted_and_dropped_and_forwarding_goes_on() {
    let _g = serial();
    let (lab, node) = start("garbage");
    let lb = mac(&lab.lbs[0].mac);
    let client = mac(&lab.client.mac);
    // A valid SYN to the cluster, then damaged copies of it.
    let mut syn = Vec::new();
    syn.extend_from_slice(&lb);
    syn.extend_from_slice(&client);
    syn.extend_from_slice(&[0x08, 0x00]);
    let ip = [
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 192, 0, 2, 10, 192, 0, 2, 100, // IPv4
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
        0, // TCP SYN
    ];
    syn.extend_from_slice(&ip);
    let mut bad_ihl = syn.clone();
    bad_ihl[14] = 0x4f; // header claims 60 bytes
    let mut fragment = syn.clone();
    fragment[21] = 0x01; // a TCP fragment at offset 8 (RFC 1858): never forwarded
    let truncated = syn[..34].to_vec();
    let mut bad_tcp = syn.clone();
    bad_tcp[14 + 20 + 12] = 0x20; // data offset 2
    let mut garbage: Vec<u8> = lb.iter().chain(client.iter()).copied().collect();
    garbage.extend_from_slice(&[0x08, 0x00]);
    garbage.extend((0..46).map(|i: u8| i.wrapping_mul(37)));
    // Addressed to the cluster: AF_XDP's program steers frames by destination address only.
    garbage[30..34].copy_from_slice(&[192, 0, 2, 100]);
    let mut frames = Vec::new();
    for _ in 0..10 {
        frames.extend([
            bad_ihl.clone(),
            fragment.clone(),
            truncated.clone(),
            bad_tcp.clone(),
            garbage.clone(),
        ]);
    }
    let before = node.ctl_json(&["executor", "status"]).unwrap()["drops_total"]
        .as_u64()
        .unwrap();
    send_raw(&lab, frames);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = node.ctl_json(&["executor", "status"]).unwrap();
        if s["drops_total"].as_u64().unwrap() >= before + 50 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let drops: BTreeMap<String, u64> = status["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_str().unwrap().to_string(), d[1].as_u64().unwrap()))
        .collect();
    // The truncated frame is padded to the Ethernet minimum on the way, so it shows as an IP
    // total length beyond the data; the garbage has IP version 0.
    for reason in [
        "bad-ihl",
        "fragment",
        "bad-total-length",
        "bad-tcp-header",
        "bad-ip-version",
    ] {
        assert!(drops[reason] >= 10, "{reason} counted: {drops:?} {status}");
    }
    assert!(
        status["drops_total"].as_u64().unwrap() >= before + 50,
        "{status}"
    );
    // Still forwarding.
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 50, 4, TIMEOUT)
        .unwrap();
    assert_eq!(r.ok, 50, "{r}");
    assert!(!node.log().contains("panicked"));
}

#[test]
fn lab_commands_work_from_tandemctl_and_bad_files_change_nothing() {
    let _g = serial();
    let (lab, node) = start("cmds");
    // Forms of point 2, through the CLI, with abbreviations, lists and wildcards.
    for cmd in [
        "executor set clientgateway 192.0.2.1",
        "ex set hatimeout 3",
        "cluster add 192.0.2.101+192.0.2.102",
        "port add 192.0.2.101+192.0.2.102@80+443 method nat selectionalgorithm conn+affin stickytime 60 staletimeout 120 weightbound 50 reset yes",
        "port set @443 protocol udp",
        "port add 192.0.2.102@21",
        "server add 192.0.2.101+192.0.2.102@80@192.0.2.11 weight 40 fixedweight yes returnaddress 192.0.2.201 router 192.0.2.11 mapport 8080",
        "server set 192.0.2.101@80@192.0.2.11 weight 30",
        "server add 192.0.2.102@21@192.0.2.12",
        "server down 192.0.2.102@21@192.0.2.12",
        "server up 192.0.2.102@21@192.0.2.12",
        "server remove 192.0.2.102@21@192.0.2.12",
        "port remove 192.0.2.102@21",
        "cluster remove 192.0.2.102",
    ] {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        node.ctl(&words).unwrap_or_else(|e| panic!("{cmd}: {e:#}"));
    }
    let ports = node.ctl_json(&["port", "status", "192.0.2.101@"]).unwrap();
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[0]["method"], "nat");
    assert_eq!(ports[0]["selectionalgorithm"], "conn+affin");
    assert_eq!(ports[0]["weightbound"], 50);
    assert_eq!(ports[1]["protocol"], "udp");
    let srv = node
        .ctl_json(&["server", "status", "192.0.2.101@80@192.0.2.11"])
        .unwrap();
    assert_eq!(srv[0]["weight"], 30);
    assert_eq!(srv[0]["mapport"], 8080);
    node.ctl(&["executor", "report"]).unwrap();
    node.ctl(&["cluster", "status", "@"]).unwrap();
    node.ctl(&["cluster", "report", "192.0.2.100+192.0.2.101"])
        .unwrap();
    node.ctl(&["port", "report", "192.0.2.101@80"]).unwrap();

    // A bad command is refused with a reason and changes nothing.
    let saved = lab.lab.log_dir().join("saved.cfg");
    node.ctl(&["file", "save", "saved.cfg"]).unwrap();
    let before = std::fs::read_to_string(&saved).unwrap();
    let out = node
        .ctl_output(&["port", "add", "192.0.2.101@70000"])
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("70000"));

    // A file with one bad line: named file:line, nothing applied (at runtime and at start).
    for (bad, why) in [
        ("port add 192.0.2.100@81 methd nat", "methd"),
        ("server add 192.0.2.100@80@192.0.2.300", "192.0.2.300"),
        ("port add 192.0.2.100@0", "0"),
        ("port add 192.0.2.100@70000", "70000"),
        ("server add 192.0.2.100@81@192.0.2.11", "81"),
    ] {
        let file = lab.lab.log_dir().join("bad.cfg");
        std::fs::write(
            &file,
            format!("# bad file\ncluster add 192.0.2.103\nport add 192.0.2.103@80\n{bad}\n"),
        )
        .unwrap();
        let out = node.ctl_output(&["file", "appendload", "bad.cfg"]).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            err.contains(&format!("{}:4:", file.display())) && err.contains(why),
            "{bad}: {err}"
        );
        node.ctl(&["file", "save", "saved.cfg", "force"]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&saved).unwrap(),
            before,
            "{bad} changed the configuration"
        );

        let tandemd = tandem_lab::find_binary("tandemd").unwrap();
        let sock = lab.lab.log_dir().join("unused.sock");
        let out = lab.lbs[0]
            .exec([
                tandemd.to_str().unwrap(),
                "--config",
                file.to_str().unwrap(),
                "--socket",
                sock.to_str().unwrap(),
            ])
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:4:", file.display())));
    }
    // The saved file loads back to the same configuration.
    node.ctl(&["file", "newload", "saved.cfg"]).unwrap();
    let again = lab.lab.log_dir().join("again.cfg");
    node.ctl(&["file", "save", "again.cfg"]).unwrap();
    assert_eq!(std::fs::read_to_string(&again).unwrap(), before);
    // Forwarding still works after all that.
    assert_eq!(
        lab.client
            .http_load(ClusterLab::cluster(80), 20, 4, TIMEOUT)
            .unwrap()
            .ok,
        20
    );
}

// These tests run on both packet I/O backends (docs/packet-io.md).
tandem_lab::packetio_matrix!(
    lab_mac_and_nat_ports_spread_3000_connections_by_weight_and_udp_answers,
    lab_weight_zero_and_server_down_stop_new_connections_but_keep_open_ones,
    lab_reset_yes_resets_clients_of_a_server_that_goes_down,
    lab_affinity_keeps_a_client_on_one_server_and_expires,
    lab_malformed_frames_are_counted_and_dropped_and_forwarding_goes_on,
);
