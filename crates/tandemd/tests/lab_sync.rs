//! Configuration sync on a real pair of `tandemd` processes: the whole configuration when the
//! pair forms, 100 changes mirrored in order, a sync cut in the middle of a 5 000-command
//! `file appendload` (inconsistent, then self-recovery), a change refused on the standby, a
//! failover and an incremental resync of the old Active, and drift shown with sync off.
//! Needs root; runs in the nextest group `lab`.

use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, join_pair, lb_ip, wait_ha_state};
use tandem_lab::{serial, wait_until};

const PORT: u16 = 20001;

fn sync(node: &TandemNode) -> serde_json::Value {
    node.ctl_json(&["highavailability", "status"])
        .map(|v| v["sync"].clone())
        .unwrap_or(serde_json::Value::Null)
}

fn wait_sync(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    wait_until(limit, what, &mut ok).unwrap_or_else(|e| panic!("{e:#}"));
    t.elapsed()
}

/// Both in agreement: the follower in sync, equal digests.
fn converged(follower: &TandemNode, source: &TandemNode) -> bool {
    let (f, s) = (sync(follower), sync(source));
    f["state"] == "in-sync" && f["digest"] == s["digest"] && f["applied"] == s["applied"]
}

fn nft(node: &TandemNode, rule: &str) {
    let out = node.host.exec(["nft", rule]).expect("nft");
    assert!(
        out.status.success(),
        "nft {rule}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lab_sync_formation_changes_cut_refusal_failover_and_drift() {
    let _g = serial();
    let lab = ClusterLab::new("sync", 2, 3).expect("lab (needs root)");
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("lb1");
    // lb2 starts with its node-local statements only.
    let local = format!("executor start\nexecutor set nfa {}\n", lb_ip(2));
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &local, &[]).expect("lb2");
    join_pair(&lb1, 1, "manual", PORT).unwrap();
    join_pair(&lb2, 2, "manual", PORT).unwrap();
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(15)).unwrap();
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(15)).unwrap();

    // 1. The standby receives the whole configuration when the pair forms.
    let took = wait_sync("lb2 in sync with lb1", Duration::from_secs(10), || {
        converged(&lb2, &lb1)
    });
    let s2 = sync(&lb2);
    assert_eq!(s2["counters"]["full_syncs"], 1, "{s2}");
    lb2.ctl(&["server", "report", "192.0.2.100@8080@192.0.2.13"])
        .expect("lb2 holds lb1's servers");
    assert_eq!(sync(&lb1)["state"], "source");
    eprintln!("full sync when the pair formed: in sync {took:?} after Synchronized");

    // 4. A change on the standby is refused and names the Active; node-local ones pass.
    let out = lb2
        .ctl_output(&["port", "set", "192.0.2.100@80", "stickytime", "7"])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the standby took a shared change");
    assert!(
        err.contains("refused") && err.contains(&lb_ip(1)),
        "the refusal names the Active: {err}"
    );
    lb2.ctl(&["highavailability", "backup", "set", "recovery", "manual"])
        .expect("node-local statements are allowed on the standby");
    assert_eq!(sync(&lb2)["counters"]["refused"], 1);

    // 2. 100 changes in a row on the Active reach the standby in order, each within 1 s.
    let base = sync(&lb2)["applied"].as_u64().unwrap();
    let mut worst = Duration::ZERO;
    for i in 1..=100u64 {
        let t = Instant::now();
        lb1.ctl(&[
            "port",
            "set",
            "192.0.2.100@80",
            "stickytime",
            &i.to_string(),
        ])
        .unwrap();
        let want = base + i;
        loop {
            let a = sync(&lb2)["applied"].as_u64().unwrap_or(0);
            assert!(a <= want, "lb2 at change {a}, beyond {want}");
            if a == want {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "change {i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        worst = worst.max(t.elapsed());
    }
    eprintln!("100 changes: the slowest reached the standby in {worst:?} (command included)");
    assert!(worst <= Duration::from_secs(1), "a change took {worst:?}");
    wait_sync("lb2 converged", Duration::from_secs(5), || {
        converged(&lb2, &lb1)
    });
    let s2 = sync(&lb2);
    assert_eq!(s2["counters"]["full_syncs"], 1, "incremental: {s2}");

    // 3. Cut the sync link in the middle of a 5 000-command file appendload: past the first
    //    60 kB, lb2's namespace drops lb1's large datagrams (the chunks); heartbeats go on.
    let mut file = String::new();
    for p in 1..=50 {
        file.push_str(&format!("port add 192.0.2.100@{}\n", 1000 + p));
        for s in 1..=99 {
            file.push_str(&format!(
                "server add 192.0.2.100@{}@198.51.100.{s} weight 3\n",
                1000 + p
            ));
        }
    }
    std::fs::write(lab.lab.log_dir().join("big.cfg"), &file).unwrap();
    nft(&lb2, "add table inet synccut");
    nft(
        &lb2,
        "add chain inet synccut in { type filter hook input priority 0 ; }",
    );
    nft(
        &lb2,
        "add rule inet synccut in udp sport 20001 meta length > 1000 quota over 60 kbytes drop",
    );
    let before = sync(&lb2)["applied"].as_u64().unwrap();
    lb1.ctl(&["file", "appendload", "big.cfg"]).unwrap();
    let head = sync(&lb1)["applied"].as_u64().unwrap();
    assert_eq!(head, before + 1, "the load is one change");
    wait_sync("lb2 inconsistent", Duration::from_secs(30), || {
        sync(&lb2)["state"] == "inconsistent"
    });
    let s2 = sync(&lb2);
    assert_eq!(s2["stopped_at"], before, "{s2}");
    assert_eq!(s2["head"], head, "{s2}");
    assert!(
        s2["transfer"]
            .as_str()
            .is_some_and(|t| !t.contains(" 0 of")),
        "stopped part way: {s2}"
    );
    let gate = lb2.ctl_output(&["highavailability", "takeover"]).unwrap();
    assert!(!gate.status.success());
    let why = String::from_utf8_lossy(&gate.stderr);
    assert!(
        why.contains(&format!("configuration is at change {before} of {head}")),
        "takeover refused while inconsistent: {why}"
    );
    eprintln!("inconsistent: {}", s2["transfer"]);
    nft(&lb2, "delete table inet synccut");
    let took = wait_sync(
        "lb2 converges after the cut",
        Duration::from_secs(5),
        || converged(&lb2, &lb1),
    );
    eprintln!("converged {took:?} after the link's return");
    lb2.ctl(&["server", "report", "192.0.2.100@1050@198.51.100.99"])
        .expect("the whole load arrived");

    // 5. `ha failover` on the Active (the appliance's controlled handover): the new Active
    //    serves; the old Active leaves, changes are made on the new one; the old Active rejoins
    //    as follower with an incremental resync.
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(10)).unwrap();
    let out = lb1.ctl(&["ha", "failover"]).unwrap();
    eprintln!("ha failover: {}", out.trim());
    wait_ha_state(&lb2, "Active", true, Duration::from_secs(10)).unwrap();
    wait_ha_state(&lb1, "Standby", true, Duration::from_secs(10)).unwrap();
    lab.wait_serving(80, Duration::from_secs(10))
        .expect("the new Active serves after ha failover");
    wait_sync("lb1 follows lb2", Duration::from_secs(5), || {
        converged(&lb1, &lb2)
    });
    lb1.ctl(&["executor", "stop"]).unwrap();
    wait_sync("lb2 alone", Duration::from_secs(10), || {
        sync(&lb2)["state"] == "standalone"
    });
    for i in 0..3 {
        lb2.ctl(&[
            "port",
            "set",
            "192.0.2.100@80",
            "stickytime",
            &(500 + i).to_string(),
        ])
        .unwrap();
    }
    let sent = sync(&lb2)["counters"]["entries_sent"].as_u64().unwrap();
    let fulls = sync(&lb1)["counters"]["full_syncs"].as_u64().unwrap();
    lb1.ctl(&["executor", "start"]).unwrap();
    wait_ha_state(&lb1, "Standby", false, Duration::from_secs(15)).unwrap();
    let took = wait_sync("lb1 resyncs", Duration::from_secs(10), || {
        converged(&lb1, &lb2)
    });
    let commands = file.lines().count();
    let sent = sync(&lb2)["counters"]["entries_sent"].as_u64().unwrap() - sent;
    eprintln!(
        "incremental resync of the old Active: {sent} entries sent (configuration > {commands} commands) in {took:?}"
    );
    assert!(sent < commands as u64, "{sent} entries sent");
    // The 3 changes it missed (a Get resent on a loaded machine counts again, never a full
    // sync: that is asserted above through `sent < commands`).
    assert!(sent >= 3, "{sent} entries sent for the 3 changes it missed");
    assert_eq!(
        sync(&lb1)["counters"]["full_syncs"].as_u64().unwrap(),
        fulls
    );

    // 6. Sync off on both: a change on one is not mirrored; status shows the first difference.
    for n in [&lb1, &lb2] {
        n.ctl(&["highavailability", "sync", "off"]).unwrap();
    }
    lb2.ctl(&["port", "set", "192.0.2.100@80", "stickytime", "42"])
        .unwrap();
    wait_sync("the first difference", Duration::from_secs(10), || {
        let d = &sync(&lb1)["first_difference"];
        d.as_str().is_some_and(|d| d.contains("stickytime 42"))
    });
    let s1 = sync(&lb1);
    assert_eq!(s1["state"], "off");
    eprintln!("drift with sync off: {}", s1["first_difference"]);
    assert!(
        sync(&lb2)["first_difference"]
            .as_str()
            .is_some_and(|d| d.contains("stickytime 502"))
    );
    lb1.ctl(&["port", "set", "192.0.2.100@80", "stickytime", "43"])
        .expect("with sync off the standby takes changes");
}
