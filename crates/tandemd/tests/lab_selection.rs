//! `selectionalgorithm connection|affinity|conn+affin` through a real tandemd with real TCP
//! and UDP traffic: `port report --json` counts connection and affinity records by kind.
//! Needs root; runs in the nextest group `lab`.

use std::collections::BTreeSet;
use std::time::Duration;
use tandem_lab::cluster::{CLUSTER_IP, ClusterLab, TandemNode, demo_config};
use tandem_lab::serial;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The port rows of `port report` for ports 80 (TCP, MAC), 8080 (TCP, NAT), 9999 (UDP):
/// (connection records, affinity records) of each.
fn records(node: &TandemNode) -> Vec<(u64, u64, u64)> {
    let v = node
        .ctl_json(&["port", "report", &format!("{CLUSTER_IP}@80+8080+9999")])
        .unwrap();
    let rows = v.as_array().expect("rows");
    rows.iter()
        .map(|r| {
            (
                r["port"].as_u64().unwrap(),
                r["connection_records"].as_u64().unwrap(),
                r["affinity_records"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row(rows: &[(u64, u64, u64)], port: u64) -> (u64, u64) {
    let r = rows.iter().find(|r| r.0 == port).expect("port row");
    (r.1, r.2)
}

/// The servers that answered `n` UDP requests (each from its own source port).
fn udp_servers(lab: &ClusterLab, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|i| {
            let reply = lab
                .client
                .udp_request(ClusterLab::cluster(9999), &format!("hello {i}"), TIMEOUT)
                .unwrap();
            assert!(reply.ends_with(&format!("hello {i}")), "{reply}");
            reply
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn lab_selection_algorithms_make_the_records_the_maintenance_document_says() {
    let _g = serial();
    let lab = ClusterLab::new("select", 1, 3).expect("lab (needs root and network namespaces)");
    let node =
        TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");
    let c = CLUSTER_IP;
    node.ctl(&[
        "port",
        "set",
        &format!("{c}@80+9999"),
        "selectionalgorithm",
        "affinity",
        "stickytime",
        "60",
    ])
    .unwrap();
    let warning = node
        .ctl(&[
            "port",
            "set",
            &format!("{c}@8080"),
            "selectionalgorithm",
            "connection",
            "stickytime",
            "60",
        ])
        .unwrap();
    assert!(
        warning.contains("stickytime 60 has no effect under selectionalgorithm connection"),
        "port set warns: {warning}"
    );
    lab.wait_serving(8080, Duration::from_secs(10)).unwrap();
    // The records the checks above made under `connection` end after the FIN timeout.
    let start = std::time::Instant::now();
    while row(&records(&node), 80).0 > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "connection records of port 80 did not end: {:?}",
            records(&node)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // affinity, TCP: one client keeps its server across many connections.
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 200, 4, TIMEOUT)
        .unwrap();
    println!("affinity port 80: {r}");
    assert_eq!(r.ok, 200, "{r}");
    assert_eq!(r.by_server.len(), 1, "200 connections, one server: {r}");
    // affinity, UDP: datagrams from 12 source ports, one server.
    let udp = udp_servers(&lab, 12);
    assert_eq!(udp.len(), 1, "UDP affinity: {udp:?}");
    // connection with stickytime 60: one client's connections spread over the servers.
    let r = lab
        .client
        .http_load(ClusterLab::cluster(8080), 150, 4, TIMEOUT)
        .unwrap();
    println!("connection port 8080 (stickytime 60): {r}");
    assert_eq!(r.ok, 150, "{r}");
    assert_eq!(r.by_server.len(), 3, "connections spread: {r}");

    let rows = records(&node);
    println!("records (port, connection, affinity): {rows:?}");
    assert_eq!(
        row(&rows, 80),
        (0, 1),
        "affinity: no connection records, one client"
    );
    assert_eq!(
        row(&rows, 9999),
        (0, 1),
        "affinity (UDP): no connection records"
    );
    let (conns, affs) = row(&rows, 8080);
    assert_eq!(affs, 0, "connection: no affinity records");
    assert!(
        conns >= 1,
        "connection: connection records (closing ones): {conns}"
    );
    let text = node.ctl(&["port", "report", &format!("{c}@8080")]).unwrap();
    assert!(
        text.contains("ConnRecs") && text.contains("note: port"),
        "{text}"
    );

    // conn+affin: both kinds; clients keep their server.
    node.ctl(&[
        "port",
        "set",
        &format!("{c}@80+9999"),
        "selectionalgorithm",
        "conn+affin",
    ])
    .unwrap();
    let udp = udp_servers(&lab, 12);
    assert_eq!(udp.len(), 1, "UDP conn+affin: {udp:?}");
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 100, 4, TIMEOUT)
        .unwrap();
    println!("conn+affin port 80: {r}");
    assert_eq!(r.ok, 100, "{r}");
    assert_eq!(r.by_server.len(), 1, "conn+affin keeps the client: {r}");
    let rows = records(&node);
    println!("records after conn+affin (port, connection, affinity): {rows:?}");
    let (conns, affs) = row(&rows, 9999);
    assert_eq!(affs, 1, "conn+affin (UDP): the client's affinity record");
    assert!(
        conns >= 12,
        "conn+affin (UDP): a connection record per flow: {conns}"
    );
    let (conns, affs) = row(&rows, 80);
    assert_eq!(affs, 1, "conn+affin (TCP): the client's affinity record");
    assert!(conns >= 1, "conn+affin (TCP): connection records: {conns}");
}

// These tests run on both packet I/O backends (docs/packet-io.md).
tandem_lab::packetio_matrix!(
    lab_selection_algorithms_make_the_records_the_maintenance_document_says,
);
