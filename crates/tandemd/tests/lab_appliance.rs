//! The appliance commands (`ha start|configure|stop|status|failover`) on a real pair of
//! `tandemd` processes with two networks: the public one (the lab's switch) and a dedicated
//! sync link (a veth between the two nodes, the "crossover cable"). Needs root; runs in the
//! nextest group `lab`.

use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, wait_ha_state};
use tandem_lab::serial;

const HATIMEOUT: f64 = 1.0;

fn wait_state(node: &TandemNode, want: &str, sync: bool, timeout: Duration) {
    wait_ha_state(node, want, sync, timeout).unwrap_or_else(|e| panic!("{e:#}"));
}

fn time_to_serve(lab: &ClusterLab, limit: Duration) -> Duration {
    tandem_lab::cluster::time_to_serve(lab, 80, limit).unwrap_or_else(|e| panic!("{e:#}"))
}

fn ha_status(node: &TandemNode) -> serde_json::Value {
    node.ctl_json(&["ha", "status"]).unwrap()
}

/// The sync network: a veth `sync0` between lb1 (198.51.100.2) and lb2 (198.51.100.3).
fn sync_link(lab: &ClusterLab) {
    let (a, b) = (&lab.lbs[0], &lab.lbs[1]);
    a.run([
        "ip", "link", "add", "sync0", "type", "veth", "peer", "name", "sync0", "netns", &b.ns,
    ])
    .unwrap();
    for (h, addr) in [(a, "198.51.100.2/24"), (b, "198.51.100.3/24")] {
        h.run(["ip", "addr", "add", addr, "dev", "sync0"]).unwrap();
        h.run(["ip", "link", "set", "sync0", "up"]).unwrap();
    }
}

fn start_words(role: &str, n: usize, recovery: &str) -> Vec<String> {
    let (local, partner, sl, sp) = if n == 1 {
        ("192.0.2.2", "192.0.2.3", "198.51.100.2", "198.51.100.3")
    } else {
        ("192.0.2.3", "192.0.2.2", "198.51.100.3", "198.51.100.2")
    };
    format!(
        "ha start {role} floating 192.0.2.100 local {local} partner {partner} sync {sl} {sp} \
         pinginterval {HATIMEOUT} recovery {recovery}"
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn ha_start(node: &TandemNode, role: &str, n: usize, recovery: &str) -> String {
    let words = start_words(role, n, recovery);
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    node.ctl(&refs).unwrap()
}

/// The lab, both daemons (demo configuration, no HA) and the sync link.
fn lab(tag: &str) -> (ClusterLab, TandemNode, TandemNode) {
    let lab = ClusterLab::new(tag, 2, 2).expect("lab (needs root)");
    sync_link(&lab);
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("lb1");
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[]).expect("lb2");
    (lab, lb1, lb2)
}

fn frames_forwarded(node: &TandemNode) -> u64 {
    node.ctl_json(&["executor", "status"]).unwrap()["frames_forwarded"]
        .as_u64()
        .unwrap()
}

#[test]
fn lab_ha_start_status_failover_and_the_two_networks() {
    let _g = serial();
    let (lab, lb1, lb2) = lab("applnet");
    let t = Instant::now();
    let out = ha_start(&lb1, "primary", 1, "manual");
    println!("lb1 ha start ({:?}): {out}", t.elapsed());
    assert!(
        out.contains(
            "no partner answers at 192.0.2.3 yet: this node runs as primary alone and will pair when it answers"
        ),
        "{out}"
    );
    wait_state(&lb1, "Active", false, Duration::from_secs(5));
    assert_eq!(ha_status(&lb1)["mode"], "primary");
    let out = ha_start(&lb2, "secondary", 2, "manual");
    println!("lb2 ha start: {out}");
    assert!(
        out.contains("partner 192.0.2.2 answered (state Active)"),
        "{out}"
    );
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    let s2 = ha_status(&lb2);
    assert_eq!(s2["mode"], "secondary", "{s2}");
    // wait_state(.., true) waited for configuration sync to finish: the secondary follows.
    assert_eq!(s2["sync"]["state"], "in-sync", "{s2}");
    assert_eq!(s2["partner"]["address"], "192.0.2.2", "{s2}");
    assert_eq!(s2["networks"][0]["network"], "public", "{s2}");
    assert_eq!(s2["networks"][0]["status"], "up", "{s2}");
    assert_eq!(s2["networks"][1]["network"], "sync", "{s2}");
    assert_eq!(s2["networks"][1]["status"], "up", "{s2}");
    let text = lb2.ctl(&["ha", "status"]).unwrap();
    assert!(text.starts_with("mode: secondary\n"), "{text}");
    lab.wait_serving(80, Duration::from_secs(10)).unwrap();

    // ha failover from the Active, then back from the (new) Standby.
    let out = lb1.ctl(&["ha", "failover"]).unwrap();
    println!("failover from the Active: {out}");
    assert!(out.contains("the partner is Active"), "{out}");
    wait_state(&lb2, "Active", false, Duration::from_secs(2));
    let gap = time_to_serve(&lab, Duration::from_secs(10));
    println!("served by lb2 after {gap:?}");
    assert_eq!(ha_status(&lb2)["mode"], "primary");
    assert_eq!(ha_status(&lb1)["mode"], "secondary");
    wait_state(&lb1, "Standby", true, Duration::from_secs(10));
    let out = lb1.ctl(&["ha", "failover"]).unwrap();
    println!("failover from the Standby: {out}");
    assert!(out.contains("this node is Active"), "{out}");
    wait_state(&lb2, "Standby", false, Duration::from_secs(5));
    time_to_serve(&lab, Duration::from_secs(10));
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));

    // One network cut (the sync link): the partner is still heard on the public one.
    lab.lbs[0]
        .run(["ip", "link", "set", "sync0", "down"])
        .unwrap();
    std::thread::sleep(Duration::from_secs_f64(HATIMEOUT * 4.0));
    assert_eq!(
        ha_status(&lb2)["state"],
        "Standby",
        "one network cut: no takeover"
    );
    assert_eq!(ha_status(&lb1)["state"], "Active");
    let s2 = ha_status(&lb2);
    assert_eq!(s2["networks"][0]["status"], "up", "{s2}");
    assert_eq!(s2["networks"][1]["status"], "down", "{s2}");
    time_to_serve(&lab, Duration::from_secs(2));
    // Both networks cut: the partner is declared dead, lb2 takes over.
    let cut = Instant::now();
    lab.lbs[0].link_down().unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(10));
    let took = cut.elapsed();
    println!("both networks cut: lb2 Active after {took:?}");
    time_to_serve(&lab, Duration::from_secs(10));
    let s2 = ha_status(&lb2);
    assert!(
        s2["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("partner lost at")),
        "{s2}"
    );
    lab.lbs[0].link_up().unwrap();
    lab.lbs[0]
        .run(["ip", "link", "set", "sync0", "up"])
        .unwrap();
    wait_state(&lb1, "Standby", true, Duration::from_secs(15));
    assert_eq!(ha_status(&lb1)["mode"], "secondary");
}

#[test]
fn lab_ha_partner_lost_recovery_mismatch_and_stop() {
    let _g = serial();
    let (lab, lb1, mut lb2) = lab("applstop");
    // lb1's script directory (in the lab's log directory, root's alone): partnerLost and
    // partnerFound append to marker files.
    let scripts = lab.lab.log_dir().join("scripts");
    let marks = lab.lab.log_dir().join("marks");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&marks).unwrap();
    set_mode(&scripts, 0o755);
    for name in ["partnerLost", "partnerFound"] {
        let path = scripts.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$TANDEM_SCRIPT $TANDEM_STATE\" >> {}/{name}\n",
                marks.display()
            ),
        )
        .unwrap();
        set_mode(&path, 0o755);
    }
    lb1.ctl(&["highavailability", "scripts", scripts.to_str().unwrap()])
        .unwrap();
    ha_start(&lb1, "primary", 1, "manual");
    // The secondary with another recovery strategy: both warn.
    ha_start(&lb2, "secondary", 2, "auto");
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    let w = ha_status(&lb1)["warnings"].to_string();
    assert!(
        w.contains(
            "recovery strategies differ (manual here, auto on the partner): they must be the same"
        ),
        "{w}"
    );
    // ha configure fixes it in place: no pass through Idle, Standby all along.
    let out = lb2.ctl(&["ha", "configure", "recovery", "manual"]).unwrap();
    assert!(
        out.contains("highavailability backup set recovery manual"),
        "{out}"
    );
    assert_eq!(ha_status(&lb2)["state"], "Standby");
    tandem_lab::wait_until(Duration::from_secs(5), "the warning to go", || {
        !ha_status(&lb1)["warnings"]
            .to_string()
            .contains("recovery strategies differ")
    })
    .unwrap();
    lab.wait_serving(80, Duration::from_secs(10)).unwrap();

    // Kill the secondary: the primary says so in status, log and its partnerLost script.
    lb2.kill().unwrap();
    tandem_lab::wait_until(Duration::from_secs(10), "lb1's partnerLost script", || {
        marks.join("partnerLost").exists()
    })
    .unwrap();
    let s1 = ha_status(&lb1);
    assert_eq!(s1["mode"], "primary", "{s1}");
    let warning = s1["warnings"].to_string();
    assert!(
        warning.contains("partner lost at") && warning.contains("this node is alone"),
        "{s1}"
    );
    assert!(lb1.log().contains("partner lost: this node is alone"));
    let ran = std::fs::read_to_string(marks.join("partnerLost")).unwrap();
    assert!(ran.contains("partnerLost Active"), "{ran}");
    time_to_serve(&lab, Duration::from_secs(2));

    // The secondary comes back (the HA setup is not in its file, as on the appliance).
    lb2.restart().unwrap();
    ha_start(&lb2, "secondary", 2, "manual");
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    tandem_lab::wait_until(Duration::from_secs(10), "lb1's partnerFound script", || {
        marks.join("partnerFound").exists()
    })
    .unwrap();
    assert!(
        !ha_status(&lb1)["warnings"]
            .to_string()
            .contains("partner lost")
    );

    // ha stop on the Standby: it leaves without ever forwarding; the Active keeps serving.
    let before = frames_forwarded(&lb2);
    let out = lb2.ctl(&["ha", "stop"]).unwrap();
    println!("ha stop on the Standby: {out}");
    assert!(
        out.contains("left the pair without owning the floating addresses"),
        "{out}"
    );
    for _ in 0..20 {
        time_to_serve(&lab, Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        frames_forwarded(&lb2),
        before,
        "the stopped Standby forwarded"
    );
    assert_eq!(ha_status(&lb2)["mode"], "stand-alone");
    assert_eq!(ha_status(&lb1)["state"], "Active");

    // ha stop on the Active with a live, Synchronized partner: it hands over first.
    ha_start(&lb2, "secondary", 2, "manual");
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    let out = lb1.ctl(&["ha", "stop"]).unwrap();
    println!("ha stop on the Active: {out}");
    assert!(
        out.contains("handed Active over to the partner 192.0.2.3"),
        "{out}"
    );
    assert_eq!(ha_status(&lb2)["state"], "Active");
    assert_eq!(ha_status(&lb1)["mode"], "stand-alone");
    let gap = time_to_serve(&lab, Duration::from_secs(5));
    println!("served by lb2 {gap:?} after the stop");
    // And on an Active alone: it keeps serving, stand-alone.
    tandem_lab::wait_until(Duration::from_secs(5), "lb2 to see lb1 gone", || {
        let c = ha_status(&lb2)["partner"]["contact"].clone();
        c == "silent" || c == "left"
    })
    .unwrap();
    let out = lb2.ctl(&["ha", "stop"]).unwrap();
    assert!(out.contains("keeps serving"), "{out}");
    time_to_serve(&lab, Duration::from_secs(2));
    let refused = lb2.ctl_output(&["ha", "failover"]).unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not configured"),
        "{refused:?}"
    );
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
