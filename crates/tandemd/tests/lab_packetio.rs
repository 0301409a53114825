//! `executor set packetio`: what runs, what `executor report` says, switching backends on a
//! running node (docs/packet-io.md). Needs root; runs in the nextest group `lab`.

use std::time::Duration;
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config};
use tandem_lab::serial;

const TIMEOUT: Duration = Duration::from_secs(5);

fn running(node: &TandemNode) -> (String, String) {
    let s = node.ctl_json(&["executor", "status"]).unwrap();
    (
        s["packetio"].as_str().unwrap_or_default().to_string(),
        s["packetio_running"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn ingress_filter(lab: &ClusterLab) -> bool {
    lab.lbs[0]
        .exec(["nft", "list", "table", "netdev", "tandem_eth0"])
        .unwrap()
        .status
        .success()
}

fn serves(lab: &ClusterLab, what: &str) {
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 200, 4, TIMEOUT)
        .unwrap();
    assert_eq!(r.ok, r.requested, "{what}: every connection answered: {r}");
}

#[test]
fn lab_packetio_auto_runs_afxdp_and_switching_backends_keeps_connections() {
    let _g = serial();
    tandem_lab::set_packetio(None);
    let lab = ClusterLab::new("pio", 1, 3).expect("lab (needs root and network namespaces)");
    let node =
        TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");
    // auto: AF_XDP on the lab's veth (copy mode: veth refuses zero-copy).
    let (set, run) = running(&node);
    assert_eq!(set, "auto");
    assert!(
        run.starts_with("afxdp (copy mode, native XDP on eth0, 2 queues)"),
        "{run}"
    );
    let report = node.ctl(&["executor", "report"]).unwrap();
    assert!(
        report.contains("afxdp (copy mode") && report.contains("(set: auto)"),
        "{report}"
    );
    assert!(!ingress_filter(&lab), "AF_XDP needs no ingress filter");
    serves(&lab, "auto");

    // A connection that lives through the switches.
    node.ctl(&["port", "add", "192.0.2.100@7"]).unwrap();
    node.ctl(&[
        "server",
        "add",
        "192.0.2.100@7@192.0.2.11+192.0.2.12+192.0.2.13",
    ])
    .unwrap();
    let mut conn = lab
        .client
        .long_lived(ClusterLab::cluster(7), "through")
        .unwrap();
    let first = conn.ping().unwrap().server;

    node.ctl(&["executor", "set", "packetio", "afpacket"])
        .unwrap();
    let (set, run) = running(&node);
    assert_eq!((set.as_str(), run.as_str()), ("afpacket", "afpacket (set)"));
    assert!(
        ingress_filter(&lab),
        "AF_PACKET drops the cluster traffic for the kernel"
    );
    serves(&lab, "afpacket");
    assert_eq!(
        conn.ping().unwrap().server,
        first,
        "the connection kept its server"
    );

    node.ctl(&["executor", "set", "packetio", "afxdp"]).unwrap();
    let (set, run) = running(&node);
    assert_eq!(set, "afxdp");
    assert!(run.starts_with("afxdp ("), "{run}");
    assert!(!ingress_filter(&lab));
    serves(&lab, "afxdp");
    assert_eq!(
        conn.ping().unwrap().server,
        first,
        "the connection kept its server"
    );
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert!(
        status["afxdp"]["xdp_steered"].as_u64().unwrap() > 0,
        "{status}"
    );

    // Unknown words are refused with the choices.
    let out = node
        .ctl_output(&["executor", "set", "packetio", "dpdk"])
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("afxdp"), "{err}");
}
