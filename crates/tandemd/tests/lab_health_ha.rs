//! Advisors at the edges (issue 8, acceptance 2 and the takeover bullet): every server of a
//! port down (managerAlert once, weights weightbound/2, traffic spread over all, managerClear
//! when one returns), and an HA takeover after which the new Active's advisors steer within
//! one interval.
//!
//! Lab: client 192.0.2.10, lb1 192.0.2.2 (and lb2 192.0.2.3), servers s1-s3 192.0.2.11-13
//! with their own HTTP services, cluster 192.0.2.100 port 80 (MAC). Needs root; nextest
//! group `lab`.

use std::time::{Duration, Instant};

use tandem_lab::cluster::{ClusterLab, TandemNode, join_pair, server_ip, wait_ha_state};
use tandem_lab::health::node::{HealthLab, down_bound, mac_config, wait_advisor, weight};
use tandem_lab::health::{self, Service};
use tandem_lab::{serial, wait_until};

const SLACK: f64 = 1.0;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// A script that appends `NAME CLUSTER PORT SERVER ADVISOR` to `DIR/NAME.log`.
fn recording_script(hl: &HealthLab, name: &str) -> std::path::PathBuf {
    let log = hl.scripts.join(format!("{name}.log"));
    health::write_script(
        &hl.scripts,
        name,
        &format!(
            "echo \"{name} $CLUSTER $PORT $SERVER $ADVISOR\" >> {}",
            log.display()
        ),
    )
    .unwrap();
    log
}

fn start_advisor(node: &TandemNode, name: &str, interval: f64) {
    node.ctl(&["advisor", "start", name, "80"]).unwrap();
    node.ctl(&["advisor", "interval", name, "80", &interval.to_string()])
        .unwrap();
}

#[test]
fn lab_health_all_servers_down_spreads_and_alerts_once() {
    let _guard = serial();
    let hl = HealthLab::new("halldown", 1, 3).expect("lab (needs root)");
    let _services: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let alert = recording_script(&hl, "managerAlert");
    let clear = recording_script(&hl, "managerClear");
    let down = recording_script(&hl, "serverDown");
    let node = hl.start_node(1, &mac_config(1, &[(80, "")], 3)).unwrap();
    node.ctl(&["highavailability", "scripts", hl.scripts.to_str().unwrap()])
        .unwrap();
    // The ping advisor: a server stops answering ping while its HTTP service still runs, so
    // "all down" can be seen carrying traffic.
    start_advisor(&node, "ping", 1.0);
    let t = Instant::now();
    for n in 1..=3 {
        wait_advisor(
            &node,
            "ping",
            80,
            &server_ip(n),
            "up",
            t,
            Duration::from_secs(15),
        )
        .unwrap();
    }

    let t0 = Instant::now();
    for n in 1..=3 {
        health::block_ping(hl.server(n)).unwrap();
    }
    let bound = down_bound(1.0, 0, SLACK + 1.0);
    let mut last = String::new();
    wait_until(bound, "the port to be all down", || {
        let r = node.ctl_json(&["manager", "report"]);
        last = format!("{r:?}");
        r.is_ok_and(|v| v["ports"][0]["all_down"] == true)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {last}\n{}", node.log()));
    eprintln!("all down after {:.2} s", t0.elapsed().as_secs_f64());
    // IBM: weights reset to half the weightbound (20 by default), traffic over all.
    for n in 1..=3 {
        let (w, source) = weight(&node, 80, &server_ip(n)).unwrap();
        assert_eq!((w, source.as_str()), (10, "all-down"), "s{n}");
    }
    let status = node.ctl(&["manager", "report"]).unwrap()
        + &node
            .ctl(&["port", "status", "192.0.2.100@80"])
            .unwrap_or_default();
    assert!(
        status.contains("all servers down"),
        "status does not say so:\n{status}"
    );
    let load = hl
        .cl
        .client
        .http_load(ClusterLab::cluster(80), 60, 4, Duration::from_secs(3))
        .unwrap();
    assert_eq!(load.ok, 60, "{load}");
    for n in 1..=3 {
        let got = load.by_server.get(&format!("s{n}")).copied().unwrap_or(0);
        assert!(
            got >= 10,
            "all down: traffic is not spread over all: {load}"
        );
    }
    // managerAlert ran once (not three times, and not again while the port stays down);
    // serverDown ran for the first two only (IBM: the last one raises managerAlert instead).
    wait_until(Duration::from_secs(5), "managerAlert to run", || {
        !lines(&alert).is_empty()
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let a = lines(&alert);
    assert_eq!(a.len(), 1, "managerAlert ran {} times: {a:?}", a.len());
    assert!(a[0].starts_with("managerAlert 192.0.2.100 80"), "{a:?}");
    assert_eq!(lines(&down).len(), 2, "{:?}", lines(&down));
    assert!(lines(&clear).is_empty());

    // One returns: managerClear, it alone gets the traffic.
    let t1 = Instant::now();
    health::unblock_ping(hl.server(1)).unwrap();
    wait_advisor(
        &node,
        "ping",
        80,
        &server_ip(1),
        "up",
        t1,
        Duration::from_secs(5),
    )
    .unwrap();
    wait_until(Duration::from_secs(5), "managerClear to run", || {
        !lines(&clear).is_empty()
    })
    .unwrap();
    assert_eq!(lines(&clear).len(), 1, "{:?}", lines(&clear));
    for n in 2..=3 {
        assert_eq!(weight(&node, 80, &server_ip(n)).unwrap().0, 0, "s{n}");
    }
    let load = hl
        .cl
        .client
        .http_load(ClusterLab::cluster(80), 30, 4, Duration::from_secs(3))
        .unwrap();
    assert_eq!(load.by_server.get("s1").copied(), Some(30), "{load}");
}

#[test]
fn lab_health_takeover_new_active_advisors_steer_within_an_interval() {
    let _guard = serial();
    const INTERVAL: f64 = 2.0;
    let hl = HealthLab::new("htakeover", 2, 3).expect("lab (needs root)");
    let mut services: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let mut lb1 = hl.start_node(1, &mac_config(1, &[(80, "")], 3)).unwrap();
    let lb2 = hl.start_node(2, &mac_config(2, &[(80, "")], 3)).unwrap();
    join_pair(&lb1, 1, "auto", 20001).unwrap();
    join_pair(&lb2, 2, "auto", 20001).unwrap();
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(20)).unwrap();
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20)).unwrap();
    // Made on the Active; configuration sync gives the Standby the same advisors.
    start_advisor(&lb1, "http", INTERVAL);
    tandem_lab::cluster::wait_config_synced(&lb1, &lb2, Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    for n in 1..=3 {
        wait_advisor(
            &lb1,
            "http",
            80,
            &server_ip(n),
            "up",
            t,
            Duration::from_secs(15),
        )
        .unwrap();
    }
    // The Standby does not probe.
    let v = lb2.ctl_json(&["advisor", "report", "http", "80"]).unwrap();
    assert_eq!(v["running"], false, "the Standby's advisor runs: {v}");

    // s2 dies while lb1 is Active: lb1 marks it down (and tells lb2).
    let t0 = Instant::now();
    services[1].kill().unwrap();
    wait_advisor(
        &lb1,
        "http",
        80,
        &server_ip(2),
        "down",
        t0,
        down_bound(INTERVAL, 0, SLACK),
    )
    .unwrap();
    // The partner channel carries it: the Standby, which probes nothing itself, holds s2 down
    // from lb1's states (so the takeover below starts from them, not from its own probes).
    let seeded = Instant::now();
    loop {
        let (w, source) = weight(&lb2, 80, &server_ip(2)).unwrap();
        if w == 0 && source == "advisor-down" {
            break;
        }
        assert!(
            seeded.elapsed() < Duration::from_secs(5),
            "the Standby never took the Active's advisor states: weight {w} ({source})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // s3 dies and lb1 is killed at the same moment.
    services[2].kill().unwrap();
    lb1.kill().unwrap();
    wait_ha_state(&lb2, "Active", false, Duration::from_secs(20)).unwrap();
    let active = Instant::now();
    // s2 is down at once (the partner's last states); s3 within one interval of its
    // first probe, which the new Active sends at once.
    let (w2, _) = weight(&lb2, 80, &server_ip(2)).unwrap();
    assert_eq!(w2, 0, "the new Active forgot the partner's down server");
    let took = wait_advisor(
        &lb2,
        "http",
        80,
        &server_ip(3),
        "down",
        active,
        Duration::from_secs_f64(INTERVAL + 1.0 + SLACK),
    )
    .unwrap();
    eprintln!(
        "new Active: s3 down {:.2} s after it became Active",
        took.as_secs_f64()
    );
    let v = lb2.ctl_json(&["advisor", "report", "http", "80"]).unwrap();
    assert_eq!(v["running"], true, "{v}");
    let load = hl
        .cl
        .client
        .http_load(ClusterLab::cluster(80), 30, 4, Duration::from_secs(3))
        .unwrap();
    assert_eq!(load.by_server.get("s1").copied(), Some(30), "{load}");
}
