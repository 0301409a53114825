//! SASP with the real `tandem-gwm` (issue 8, acceptance 4): weights set in the GWM show in
//! `server report` and steer new connections in proportion, push and pull, all members and
//! changed only; quiesce stops new connections to that member; killing the GWM keeps the last
//! weights for the grace period, then the manager steers; a restarted GWM is re-registered;
//! after an HA takeover the new Active steers by SASP at once. Every SASP message of each test is captured (tcpdump on the GWM host) and decoded by
//! tshark's SASP dissector: no malformed packet, no expert warning, the LB UID, the members
//! and the weights of the test in the decode (acceptance 5).
//!
//! Lab: client 192.0.2.10, lb1 192.0.2.2 (tandemd, cluster 192.0.2.100 port 80 MAC,
//! weightbound 20), servers s1-s3 192.0.2.11-13 (HTTP), gwm 192.0.2.50 (`tandem-gwm run`,
//! weights from its weights file). Needs root and `cargo build -p tandem-gwm`; nextest group
//! `lab`.

use std::time::{Duration, Instant};

use tandem_lab::cluster::{ClusterLab, TandemNode, server_ip};
use tandem_lab::health::Service;
use tandem_lab::health::gwm::{Gwm, MemberWeight, SaspCapture, raw_for};
use tandem_lab::health::node::{HealthLab, connect_count, mac_config, server_total, weight};
use tandem_lab::{serial, wait_until};

const GWM_IP: &str = "192.0.2.50";
/// GWM probe/push interval and the LB's grace, seconds.
const INTERVAL: f64 = 1.0;
const GRACE: f64 = 4.0;

struct Sasp {
    hl: HealthLab,
    node: TandemNode,
    gwm: Gwm,
    capture: Option<SaspCapture>,
    _services: Vec<Service>,
}

fn members(weights: [u32; 3], quiesce: [bool; 3]) -> Vec<MemberWeight> {
    (0..3)
        .map(|i| MemberWeight {
            quiesce: quiesce[i],
            ..MemberWeight::new(&server_ip(i + 1), 80, raw_for(weights[i], 20))
        })
        .collect()
}

fn setup(tag: &str, sasp_options: &[&str]) -> Sasp {
    let hl = HealthLab::new(tag, 1, 3).expect("lab (needs root)");
    let services: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let gwm_host = hl
        .cl
        .lab
        .add_host("gwm", &[&format!("{GWM_IP}/24")])
        .unwrap();
    let capture = SaspCapture::start(&gwm_host, hl.cl.lab.log_dir()).expect("tcpdump");
    let gwm = Gwm::start(
        &gwm_host,
        hl.cl.lab.log_dir(),
        INTERVAL,
        &members([20, 10, 5], [false; 3]),
        &[],
    )
    .expect("tandem-gwm");
    let node = hl.start_node(1, &mac_config(1, &[(80, "")], 3)).unwrap();
    let mut cmd = vec!["sasp", "add", "192.0.2.100@80", "gwm", GWM_IP];
    let grace = GRACE.to_string();
    cmd.extend_from_slice(sasp_options);
    cmd.extend_from_slice(&["grace", &grace]);
    node.ctl(&cmd).unwrap();
    Sasp {
        hl,
        node,
        gwm,
        capture: Some(capture),
        _services: services,
    }
}

impl Sasp {
    fn weights(&self) -> Vec<(u64, String)> {
        (1..=3)
            .map(|n| weight(&self.node, 80, &server_ip(n)).unwrap())
            .collect()
    }

    fn wait_weights(&self, want: [u64; 3], source: &str, since: Instant, bound: Duration) {
        let mut last = Vec::new();
        wait_until(
            bound.saturating_sub(since.elapsed()),
            &format!("weights {want:?} from {source}"),
            || {
                last = self.weights();
                last.iter().map(|w| w.0).collect::<Vec<_>>() == want
                    && last.iter().all(|w| w.1 == source)
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}; last {last:?}\nsasp report: {:?}\n{}\n--- gwm:\n{}",
                self.node.ctl(&["sasp", "report"]),
                self.node.log(),
                self.gwm.log()
            )
        });
        eprintln!(
            "weights {want:?} ({source}) after {:.2} s",
            since.elapsed().as_secs_f64()
        );
    }

    /// `count` new connections; what each server got (Tandem's counters).
    fn spread(&self, count: usize) -> Vec<u64> {
        let totals = || -> Vec<u64> {
            (1..=3)
                .map(|n| server_total(&self.node, 80, &server_ip(n)).unwrap())
                .collect()
        };
        let before = totals();
        let ok = connect_count(&self.hl.cl.client, ClusterLab::cluster(80), count).unwrap();
        assert_eq!(ok, count);
        totals().iter().zip(before).map(|(a, b)| a - b).collect()
    }

    /// Stops the capture and checks tshark's decode of it: clean, the LB UID, the three
    /// members, the raw weights `weights` among those carried, and the message `types`
    /// besides Set LB State and Registration.
    fn check_capture(&mut self, weights: &[u32], types: &[&str]) {
        let d = self
            .capture
            .take()
            .expect("capture already checked")
            .finish()
            .unwrap_or_else(|e| panic!("tshark: {e:#}"));
        eprintln!("tshark: {} SASP messages, types {:?}", d.messages, d.types);
        assert!(d.messages >= 6, "{d:?}");
        // Set LB State, Registration and their replies at least.
        for &t in ["0x1050", "0x1055", "0x1010", "0x1015"].iter().chain(types) {
            assert!(d.types.contains(t), "no message {t} decoded: {:?}", d.types);
        }
        assert!(d.pdml.contains("tandem-192.0.2.2"), "LB UID not decoded");
        for n in 1..=3 {
            assert!(d.members.contains(&server_ip(n)), "{:?}", d.members);
        }
        for &w in weights {
            let raw = u64::from(raw_for(w, 20));
            assert!(
                d.weights.contains(&raw),
                "weight {raw} not decoded: {:?}",
                d.weights
            );
        }
    }

    fn gwm_report(&self) -> serde_json::Value {
        let v = self.node.ctl_json(&["sasp", "report"]).unwrap();
        v["groups"][0]["gwms"][0].clone()
    }
}

/// Shares within ±30 % of the weights' proportion (and 0 where the weight is 0).
fn assert_in_proportion(got: &[u64], weights: [u64; 3]) {
    let total: u64 = got.iter().sum();
    let wsum: u64 = weights.iter().sum();
    for i in 0..3 {
        let expected = total as f64 * weights[i] as f64 / wsum as f64;
        if weights[i] == 0 {
            assert_eq!(got[i], 0, "s{} has weight 0: {got:?}", i + 1);
        } else {
            let lo = expected * 0.7;
            let hi = expected * 1.3;
            assert!(
                (got[i] as f64) >= lo && (got[i] as f64) <= hi,
                "s{}: {} connections, expected {expected:.0} (weights {weights:?}): {got:?}",
                i + 1,
                got[i]
            );
        }
    }
}

#[test]
fn lab_sasp_push_all_quiesce_grace_and_reregistration() {
    let _guard = serial();
    let mut t = setup("sasppush", &["mode", "push", "members", "all"]);
    // The manager runs too: SASP outranks it while the GWM steers, it takes over after grace.
    t.node
        .ctl(&["manager", "interval", "1"])
        .and_then(|_| t.node.ctl(&["manager", "start"]))
        .unwrap();
    let t0 = Instant::now();
    t.wait_weights([20, 10, 5], "sasp", t0, Duration::from_secs(15));
    t.gwm
        .wait_status_contains("tandem-192.0.2.2", Duration::from_secs(5))
        .unwrap();
    let g = t.gwm_report();
    assert_eq!(g["state"], "connected", "{g}");
    assert_eq!(g["mode"], "push", "{g}");
    assert_eq!(g["changed_only"], false, "{g}");
    assert_eq!(g["lb_uid"], "tandem-192.0.2.2", "{g}");
    assert_eq!(g["members"].as_array().map(Vec::len), Some(3), "{g}");
    assert_in_proportion(&t.spread(175), [20, 10, 5]);

    // Quiesce s2 in the GWM: the QUIESCE flag, not weight 0, and no new connections.
    let t1 = Instant::now();
    t.gwm
        .set_weights(&members([20, 10, 5], [false, true, false]))
        .unwrap();
    t.wait_weights([20, 0, 5], "sasp", t1, Duration::from_secs(10));
    let g = t.gwm_report();
    let s2 = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == server_ip(2))
        .cloned()
        .unwrap();
    assert_eq!(s2["quiesce"], true, "{s2}");
    assert_in_proportion(&t.spread(100), [20, 0, 5]);
    t.gwm
        .set_weights(&members([20, 10, 5], [false; 3]))
        .unwrap();
    t.wait_weights([20, 10, 5], "sasp", Instant::now(), Duration::from_secs(10));

    // GWM killed: the last weights hold for the grace period, then the manager steers.
    let killed = Instant::now();
    t.gwm.kill().unwrap();
    std::thread::sleep(Duration::from_secs_f64(GRACE / 2.0));
    let during: Vec<(u64, String)> = t.weights();
    assert_eq!(
        during,
        [20, 10, 5].map(|w| (w, "sasp".to_string())).to_vec(),
        "weights changed within the grace period"
    );
    let state = t.gwm_report()["state"].clone();
    assert!(
        state == "grace" || state == "backoff" || state == "connecting",
        "{state}"
    );
    let mut last = Vec::new();
    wait_until(
        Duration::from_secs_f64(GRACE + 4.0).saturating_sub(killed.elapsed()),
        "the manager to steer after grace",
        || {
            last = t.weights();
            last.iter().all(|w| w.1 == "manager")
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}; {last:?}"));
    assert!(
        killed.elapsed() >= Duration::from_secs_f64(GRACE * 0.9),
        "grace not kept: {:?}",
        killed.elapsed()
    );

    // A restarted GWM: the LB reconnects (backoff), registers again, the GWM steers again.
    let t2 = Instant::now();
    t.gwm.restart().unwrap();
    t.wait_weights([20, 10, 5], "sasp", t2, Duration::from_secs(30));
    t.gwm
        .wait_status_contains("tandem-192.0.2.2", Duration::from_secs(5))
        .unwrap();
    let g = t.gwm_report();
    assert_eq!(g["state"], "connected", "{g}");
    assert!(
        g["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["registration"] == true),
        "{g}"
    );
    t.check_capture(&[20, 10, 5], &["0x1040"]); // Send Weights
}

#[test]
fn lab_sasp_pull_changed_only() {
    let _guard = serial();
    let mut t = setup(
        "sasppull",
        &["mode", "pull", "members", "changed", "interval", "1"],
    );
    let t0 = Instant::now();
    t.wait_weights([20, 10, 5], "sasp", t0, Duration::from_secs(15));
    let g = t.gwm_report();
    assert_eq!(g["mode"], "pull", "{g}");
    assert_eq!(g["changed_only"], true, "{g}");
    assert_in_proportion(&t.spread(175), [20, 10, 5]);

    // One member changes: with changed-only the GWM sends that one; the others keep theirs.
    let t1 = Instant::now();
    t.gwm
        .set_weights(&members([20, 20, 5], [false; 3]))
        .unwrap();
    t.wait_weights([20, 20, 5], "sasp", t1, Duration::from_secs(10));
    assert_in_proportion(&t.spread(180), [20, 20, 5]);
    // And a weight of 0 (CONTACT kept): no new connections to it.
    let t2 = Instant::now();
    t.gwm.set_weights(&members([0, 20, 5], [false; 3])).unwrap();
    t.wait_weights([0, 20, 5], "sasp", t2, Duration::from_secs(10));
    assert_in_proportion(&t.spread(100), [0, 20, 5]);
    // Get Weights requests and replies (pull) carried every weight of the test.
    t.check_capture(&[20, 10, 5, 0], &["0x1030", "0x1035"]); // Get Weights
}

/// Acceptance (takeover): both nodes of a pair hold a SASP session with their own LB UID; only
/// the Active's weights steer; after `kill -9` of the Active the new Active steers by the
/// GWM's latest weights within one GWM interval of becoming Active.
#[test]
fn lab_sasp_takeover_new_active_steers_at_once() {
    let _guard = serial();
    let hl = HealthLab::new("sasptakeover", 2, 3).expect("lab (needs root)");
    let _services: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let gwm_host = hl
        .cl
        .lab
        .add_host("gwm", &[&format!("{GWM_IP}/24")])
        .unwrap();
    let gwm = Gwm::start(
        &gwm_host,
        hl.cl.lab.log_dir(),
        INTERVAL,
        &members([20, 10, 5], [false; 3]),
        &[],
    )
    .expect("tandem-gwm");
    let mut lb1 = hl.start_node(1, &mac_config(1, &[(80, "")], 3)).unwrap();
    let lb2 = hl.start_node(2, &mac_config(2, &[(80, "")], 3)).unwrap();
    tandem_lab::cluster::join_pair(&lb1, 1, "auto", 20001).unwrap();
    tandem_lab::cluster::join_pair(&lb2, 2, "auto", 20001).unwrap();
    tandem_lab::cluster::wait_ha_state(&lb1, "Active", true, Duration::from_secs(20)).unwrap();
    tandem_lab::cluster::wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20)).unwrap();
    // Made on the Active; configuration sync gives the Standby the same SASP group.
    lb1.ctl(&["sasp", "add", "192.0.2.100@80", "gwm", GWM_IP])
        .unwrap();
    tandem_lab::cluster::wait_config_synced(&lb1, &lb2, Duration::from_secs(10)).unwrap();
    let w = |node: &TandemNode| -> Vec<u64> {
        (1..=3)
            .map(|n| {
                weight(node, 80, &server_ip(n))
                    .map(|w| w.0)
                    .unwrap_or(u64::MAX)
            })
            .collect()
    };
    wait_until(Duration::from_secs(15), "lb1 steered by SASP", || {
        w(&lb1) == [20, 10, 5]
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}\n{}", w(&lb1), lb1.log()));
    // Both LB UIDs registered; the Standby keeps its session.
    for uid in ["tandem-192.0.2.2", "tandem-192.0.2.3"] {
        gwm.wait_status_contains(uid, Duration::from_secs(10))
            .unwrap();
    }
    let standby = lb2.ctl_json(&["sasp", "report"]).unwrap();
    assert_eq!(
        standby["groups"][0]["gwms"][0]["state"], "connected",
        "{standby}"
    );
    assert_eq!(
        standby["groups"][0]["gwms"][0]["lb_uid"], "tandem-192.0.2.3",
        "{standby}"
    );

    // New weights in the GWM, then the Active dies.
    gwm.set_weights(&members([5, 10, 20], [false; 3])).unwrap();
    std::thread::sleep(Duration::from_secs_f64(INTERVAL * 2.0));
    lb1.kill().unwrap();
    tandem_lab::cluster::wait_ha_state(&lb2, "Active", false, Duration::from_secs(20)).unwrap();
    let active = Instant::now();
    let mut last = Vec::new();
    wait_until(
        Duration::from_secs_f64(INTERVAL + 1.0),
        "the new Active steered by SASP",
        || {
            last = w(&lb2);
            last == [5, 10, 20]
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}: {last:?}\n{}", lb2.log()));
    eprintln!(
        "new Active steered by SASP {:.2} s after it became Active",
        active.elapsed().as_secs_f64()
    );
    let before: Vec<u64> = (1..=3)
        .map(|n| server_total(&lb2, 80, &server_ip(n)).unwrap())
        .collect();
    assert_eq!(
        connect_count(&hl.cl.client, ClusterLab::cluster(80), 175).unwrap(),
        175
    );
    let got: Vec<u64> = (1..=3)
        .map(|n| server_total(&lb2, 80, &server_ip(n)).unwrap())
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();
    assert_in_proportion(&got, [5, 10, 20]);
}

/// Bad input (issue 8, Build 7): a GWM whose messages turn malformed (`tandem-gwm --fault
/// malformed`, after four good ones on each connection) gets its session closed with a
/// logged reason, and Tandem keeps the last good weights.
#[test]
fn lab_sasp_malformed_gwm_messages_keep_the_last_good_weights() {
    let _guard = serial();
    let hl = HealthLab::new("saspbad", 1, 3).expect("lab (needs root)");
    let _services: Vec<Service> = (1..=3)
        .map(|n| Service::http(hl.server(n), &format!("s{n}"), 80).unwrap())
        .collect();
    let gwm_host = hl
        .cl
        .lab
        .add_host("gwm", &[&format!("{GWM_IP}/24")])
        .unwrap();
    let gwm = Gwm::start(
        &gwm_host,
        hl.cl.lab.log_dir(),
        INTERVAL,
        &members([20, 10, 5], [false; 3]),
        &["--fault", "malformed", "--fault-after", "4"],
    )
    .expect("tandem-gwm");
    let node = hl.start_node(1, &mac_config(1, &[(80, "")], 3)).unwrap();
    node.ctl(&[
        "sasp",
        "add",
        "192.0.2.100@80",
        "gwm",
        GWM_IP,
        "grace",
        "30",
    ])
    .unwrap();
    let w = || -> Vec<(u64, String)> {
        (1..=3)
            .map(|n| weight(&node, 80, &server_ip(n)).unwrap())
            .collect()
    };
    let want: Vec<(u64, String)> = [20, 10, 5].map(|w| (w, "sasp".to_string())).to_vec();
    wait_until(Duration::from_secs(15), "weights from SASP", || w() == want)
        .unwrap_or_else(|e| panic!("{e:#}: {:?}\n{}\n{}", w(), node.log(), gwm.log()));
    // The malformed message closes the session, with the reason in the log.
    wait_until(Duration::from_secs(15), "a logged SASP disconnect", || {
        node.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("SASP:"))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", node.log()));
    let reason = node
        .log()
        .lines()
        .find(|l| l.contains("WARN") && l.contains("SASP:"))
        .unwrap_or_default()
        .to_string();
    eprintln!("logged: {reason}");
    // The last good weights stay, and keep steering.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w(), want, "weights changed after a malformed message");
    let before: Vec<u64> = (1..=3)
        .map(|n| server_total(&node, 80, &server_ip(n)).unwrap())
        .collect();
    assert_eq!(
        connect_count(&hl.cl.client, ClusterLab::cluster(80), 70).unwrap(),
        70
    );
    let got: Vec<u64> = (1..=3)
        .map(|n| server_total(&node, 80, &server_ip(n)).unwrap())
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();
    assert_in_proportion(&got, [20, 10, 5]);
}
