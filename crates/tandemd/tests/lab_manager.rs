//! The manager against real connections (issue 8, acceptance 3): docs/manager.md's worked
//! example in a lab. Port 7 (echo, MAC), three servers of weight 10, weightbound 20,
//! proportions 50/50/0/0, defaults smoothing 1.5 and sensitivity 5: s1 holds 50 long-lived
//! connections, s2 and s3 are idle. Within three manager intervals the weights are 11 19 19
//! (pushed 10 17 17, then 11 19 19; the next change, 2 of 49, is below sensitivity and not
//! pushed); with sensitivity 0 it is (11 20 20). Port 80 beside it has s3 `fixedweight yes`:
//! its weight stays 10 while its peers rise. New connections follow the weights.
//!
//! Needs root; nextest group `lab`.

use std::time::{Duration, Instant};

use tandem_lab::cluster::{ClusterLab, server_ip};
use tandem_lab::health::Service;
use tandem_lab::health::node::{HealthLab, mac_config, weight};
use tandem_lab::{serial, wait_until};

/// Manager interval of the test, seconds.
const INTERVAL: f64 = 1.0;

fn weights(node: &tandem_lab::cluster::TandemNode, port: u16) -> Vec<(u64, String)> {
    (1..=3)
        .map(|n| weight(node, port, &server_ip(n)).unwrap())
        .collect()
}

#[test]
fn lab_manager_lowers_a_busy_server_keeps_fixedweight_and_holds_small_changes() {
    let _guard = serial();
    let hl = HealthLab::new("manager", 1, 3).expect("lab (needs root)");
    let _echo: Vec<Service> = (1..=3)
        .map(|n| Service::echo(hl.server(n), &format!("s{n}"), 7).unwrap())
        .collect();
    let _http: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let config = mac_config(1, &[(7, ""), (80, "")], 3)
        + "server set 192.0.2.100@80@192.0.2.13 fixedweight yes\n"
        + "cluster set 192.0.2.100 proportions 50 50 0 0\n";
    let node = hl.start_node(1, &config).unwrap();

    // 50 long-lived connections, all to s1: the others are down while they open.
    for n in 2..=3 {
        node.ctl(&["server", "down", &format!("192.0.2.100@7@{}", server_ip(n))])
            .unwrap();
    }
    let held = hl
        .cl
        .client
        .long_lived_set(ClusterLab::cluster(7), 50, Duration::from_millis(500))
        .unwrap();
    wait_until(Duration::from_secs(10), "50 connections on s1", || {
        let row = tandem_lab::health::node::server_row(&node, 7, &server_ip(1)).unwrap();
        row["active"].as_u64() == Some(50)
    })
    .unwrap();
    for n in 2..=3 {
        node.ctl(&["server", "up", &format!("192.0.2.100@7@{}", server_ip(n))])
            .unwrap();
    }
    assert_eq!(
        weights(&node, 7).iter().map(|w| w.0).collect::<Vec<_>>(),
        [10, 10, 10]
    );

    node.ctl(&["manager", "interval", &INTERVAL.to_string()])
        .unwrap();
    let t0 = Instant::now();
    node.ctl(&["manager", "start"]).unwrap();
    // Three intervals, plus one for the first (which only takes the counters' base), plus
    // slack for a loaded machine.
    let bound = Duration::from_secs_f64(4.0 * INTERVAL + 2.0);
    let mut last = Vec::new();
    let reached = wait_until(bound, "weights 11 19 19 on port 7", || {
        last = weights(&node, 7);
        last.iter().map(|w| w.0).collect::<Vec<_>>() == [11, 19, 19]
    });
    reached.unwrap_or_else(|e| panic!("{e:#}; last {last:?}\n{}", node.log()));
    eprintln!(
        "manager: 11 19 19 after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(last.iter().all(|w| w.1 == "manager"), "{last:?}");

    // Port 80: s3 is fixedweight (10, "fixed"); its idle peers rise to 19 or 20.
    let p80 = weights(&node, 80);
    assert_eq!(p80[2], (10, "fixed".to_string()), "{p80:?}");
    assert!(p80[0].0 >= 19 && p80[1].0 >= 19, "{p80:?}");

    // Below sensitivity: the next change (19 → 20 twice, 2 of 49 = 4 %) is not pushed.
    std::thread::sleep(Duration::from_secs_f64(3.0 * INTERVAL));
    let held_weights: Vec<u64> = weights(&node, 7).iter().map(|w| w.0).collect();
    assert_eq!(
        held_weights,
        [11, 19, 19],
        "a change below sensitivity was pushed"
    );
    let report = node.ctl_json(&["manager", "report"]).unwrap();
    let port7 = report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 7)
        .cloned()
        .unwrap();
    assert_eq!(port7["servers"][0]["active"], 50, "{port7}");

    // New connections follow: s1 gets about 11 of every 49.
    let before: Vec<u64> = (1..=3)
        .map(|n| tandem_lab::health::node::server_total(&node, 7, &server_ip(n)).unwrap())
        .collect();
    let ok =
        tandem_lab::health::node::connect_count(&hl.cl.client, ClusterLab::cluster(7), 98).unwrap();
    assert_eq!(ok, 98);
    let got: Vec<u64> = (1..=3)
        .map(|n| tandem_lab::health::node::server_total(&node, 7, &server_ip(n)).unwrap())
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert!(
        got[0] <= 30 && got[1] >= 30 && got[2] >= 30,
        "new connections do not follow 11 19 19: {got:?}"
    );

    // Sensitivity 0: the held change is pushed.
    node.ctl(&["manager", "sensitivity", "0"]).unwrap();
    let mut last = Vec::new();
    wait_until(
        Duration::from_secs_f64(2.0 * INTERVAL + 2.0),
        "11 20 20",
        || {
            last = weights(&node, 7).iter().map(|w| w.0).collect();
            last == [11, 20, 20]
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}; last {last:?}"));

    // The long-lived connections were never disturbed.
    let stats = held.stop();
    assert!(
        stats.iter().all(|c| c.is_healthy() && c.echoes > 0),
        "{stats:?}"
    );
}
