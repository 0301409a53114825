//! A high-availability pair of real `tandemd` processes in a lab: the seed procedure, failover
//! on `kill -9` and on a cut link, recovery strategies, reach targets, bad heartbeats, version
//! mismatch, scripts, and a dual-active watch. Needs root; runs in the nextest group `lab`.

use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, ha_state, wait_ha_state};
use tandem_lab::serial;

const PORT: &str = "20001";

fn state(node: &TandemNode) -> (String, String) {
    ha_state(node)
}

fn wait_state(node: &TandemNode, want: &str, sync: bool, timeout: Duration) {
    wait_ha_state(node, want, sync, timeout).unwrap_or_else(|e| panic!("{e:#}"));
}

/// Two nodes with the demo configuration, then steps 4 to 8 of the seed procedure through
/// tandemctl, verbatim.
fn pair(tag: &str, recovery: &str, extra: &[&str]) -> (ClusterLab, TandemNode, TandemNode) {
    let lab = ClusterLab::new(tag, 2, 3).expect("lab (needs root)");
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), extra).expect("lb1");
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), extra).expect("lb2");
    for (node, src, dst, role) in [
        (&lb1, "192.0.2.2", "192.0.2.3", "primary"),
        (&lb2, "192.0.2.3", "192.0.2.2", "backup"),
    ] {
        node.ctl(&["highavailability", "heartbeat", "add", src, dst])
            .unwrap();
        node.ctl(&["highavailability", "reach", "add", "192.0.2.10"])
            .unwrap();
        node.ctl(&["highavailability", "backup", "add", role, recovery, PORT])
            .unwrap();
    }
    wait_state(&lb1, "Active", true, Duration::from_secs(15));
    wait_state(&lb2, "Standby", true, Duration::from_secs(15));
    lab.wait_serving(80, Duration::from_secs(10)).unwrap();
    (lab, lb1, lb2)
}

/// The production step: a generated key on both nodes; waits until the key change is over
/// (both sign with it and refuse anything else).
fn key_the_pair(lab: &ClusterLab, lb1: &TandemNode, lb2: &TandemNode) -> std::path::PathBuf {
    let keyfile = lab.lab.log_dir().join("pair.key");
    let path = keyfile.to_str().unwrap();
    lb1.ctl(&["highavailability", "key", "generate", path])
        .unwrap();
    for n in [lb1, lb2] {
        n.ctl(&["highavailability", "key", path]).unwrap();
    }
    tandem_lab::wait_until(Duration::from_secs(20), "the key change to end", || {
        [lb1, lb2].iter().all(|n| {
            n.ctl_json(&["highavailability", "status"])
                .is_ok_and(|s| s["replication"]["key_change"].is_null())
        })
    })
    .unwrap();
    wait_state(lb1, "Active", true, Duration::from_secs(10));
    wait_state(lb2, "Standby", true, Duration::from_secs(10));
    keyfile
}

fn time_to_serve(lab: &ClusterLab, limit: Duration) -> Duration {
    tandem_lab::cluster::time_to_serve(lab, 80, limit).unwrap_or_else(|e| panic!("{e:#}"))
}

fn lab_seed_procedure_then_kill_9_of_the_active_and_auto_recovery() {
    let _g = serial();
    let (lab, mut lb1, lb2) = pair("haseed", "auto", &[]);
    let status = lb1.ctl(&["highavailability", "status"]).unwrap();
    assert!(
        status.contains("primary") && status.contains("auto") && status.contains("20001"),
        "{status}"
    );

    lb1.kill().unwrap();
    let gap = time_to_serve(&lab, Duration::from_secs(10));
    wait_state(&lb2, "Active", false, Duration::from_secs(5));
    assert!(
        gap <= Duration::from_secs(3),
        "new connections succeeded only after {gap:?} (hatimeout 2 s + 1 s)"
    );

    // auto: the restarted primary takes Active back once synchronized.
    lb1.restart().unwrap();
    for (n, cmd) in [
        (
            &lb1,
            vec![
                "highavailability",
                "heartbeat",
                "add",
                "192.0.2.2",
                "192.0.2.3",
            ],
        ),
        (&lb1, vec!["highavailability", "reach", "add", "192.0.2.10"]),
        (
            &lb1,
            vec!["highavailability", "backup", "add", "primary", "auto", PORT],
        ),
    ] {
        n.ctl(&cmd).unwrap();
    }
    wait_state(&lb1, "Active", true, Duration::from_secs(20));
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    time_to_serve(&lab, Duration::from_secs(5));
}

fn lab_cut_link_fails_over_and_manual_recovery_waits_for_takeover() {
    let _g = serial();
    let (lab, lb1, lb2) = pair("hamanual", "manual", &[]);
    lab.lbs[0].link_down().unwrap();
    let gap = time_to_serve(&lab, Duration::from_secs(10));
    assert!(gap <= Duration::from_secs(3), "failover gap {gap:?}");
    wait_state(&lb2, "Active", false, Duration::from_secs(5));
    lab.lbs[0].link_up().unwrap();
    // manual: the primary comes back as Standby and stays there.
    wait_state(&lb1, "Standby", true, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        state(&lb1).0,
        "Standby",
        "manual recovery must not fail back by itself"
    );
    assert_eq!(state(&lb2).0, "Active");
    lb1.ctl(&["highavailability", "takeover"]).unwrap();
    wait_state(&lb1, "Active", true, Duration::from_secs(10));
    wait_state(&lb2, "Standby", true, Duration::from_secs(10));
    time_to_serve(&lab, Duration::from_secs(5));
    // takeover on the Active is refused with a reason.
    let out = lb1.ctl_output(&["highavailability", "takeover"]).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Active"));
}

fn lab_reach_target_lost_by_the_active_hands_over() {
    let _g = serial();
    let (lab, lb1, lb2) = pair("hareach", "manual", &[]);
    // Only lb1 loses its path to the reach target.
    lab.lbs[0]
        .run(["ip", "route", "add", "blackhole", "192.0.2.10/32"])
        .unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(15));
    wait_state(&lb1, "Standby", false, Duration::from_secs(5));
    let status = lb1.ctl_json(&["highavailability", "status"]).unwrap();
    assert_eq!(status["reach"][0]["reachable"], false, "{status}");
}

fn lab_version_mismatch_is_reported_and_exactly_one_node_is_active() {
    let _g = serial();
    let lab = ClusterLab::new("haver", 2, 1).expect("lab");
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).unwrap();
    // SAFETY: set before the child is spawned; the test is single-threaded here.
    unsafe { std::env::set_var("TANDEM_VERSION", "9.1.0.0") };
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[]);
    unsafe { std::env::remove_var("TANDEM_VERSION") };
    let lb2 = lb2.unwrap();
    for (node, src, dst, role) in [
        (&lb1, "192.0.2.2", "192.0.2.3", "primary"),
        (&lb2, "192.0.2.3", "192.0.2.2", "backup"),
    ] {
        node.ctl(&["highavailability", "heartbeat", "add", src, dst])
            .unwrap();
        node.ctl(&["highavailability", "backup", "add", role, "auto", PORT])
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut both_seen_incompatible = false;
    while Instant::now() < deadline {
        let a = lb1.ctl_json(&["highavailability", "status"]).unwrap();
        let b = lb2.ctl_json(&["highavailability", "status"]).unwrap();
        let actives = [&a, &b].iter().filter(|s| s["state"] == "Active").count();
        assert!(actives <= 1, "both Active:\n{a}\n{b}");
        let settled = [&a, &b]
            .iter()
            .all(|s| s["state"] == "Active" || s["state"] == "Standby");
        if a["partner"]["compatible"] == false && b["partner"]["compatible"] == false && settled {
            both_seen_incompatible = true;
            assert_eq!(actives, 1, "exactly one Active:\n{a}\n{b}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        both_seen_incompatible,
        "both nodes report the incompatible partner"
    );
    let text = lb2.ctl(&["highavailability", "status"]).unwrap();
    assert!(text.contains("INCOMPATIBLE"), "{text}");
}

/// A plausible heartbeat of an Active primary.
fn heartbeat() -> tandem_core::ha::Heartbeat {
    use tandem_core::config::{Recovery, Role};
    use tandem_core::ha::{Heartbeat, ProductVersion, Request, State, SubState};
    Heartbeat {
        version: ProductVersion::new(0, 1, 0, 0),
        epoch: 1,
        seq: 1,
        ack_epoch: 0,
        ack: 0,
        role: Role::Primary,
        state: State::Active,
        sub_state: SubState::Synchronized,
        recovery: Recovery::Manual,
        reach_count: 9,
        reach_total: 9,
        config_digest: 0,
        request: Request::TakeoverRequest,
        maintenance: false,
        handover: false,
        hatimeout_ms: 2000,
        interval_ms: 500,
        records: Vec::new(),
    }
}

fn lab_bad_heartbeats_are_counted_and_change_nothing() {
    let _g = serial();
    let (lab, lb1, lb2) = pair("habad", "manual", &[]);
    // A shared key on both nodes: every heartbeat now carries an HMAC-SHA256.
    key_the_pair(&lab, &lb1, &lb2);
    // A second heartbeat pair towards the client, so that what the client sends is examined
    // as heartbeats (datagrams from unknown addresses are counted as such).
    lb2.ctl(&[
        "highavailability",
        "heartbeat",
        "add",
        "192.0.2.3",
        "192.0.2.10",
    ])
    .unwrap();
    let wrong_key = b"0123456789abcdef-wrong-key".to_vec();
    let forged = tandem_core::ha::encode(&heartbeat(), Some(&wrong_key));
    let unkeyed = tandem_core::ha::encode(&heartbeat(), None);
    let before = lb2.ctl_json(&["highavailability", "status"]).unwrap()["dropped"].clone();
    lab.client
        .in_ns(move || {
            let s = std::net::UdpSocket::bind("192.0.2.10:20001").unwrap();
            let garbage = [0x5au8; 120];
            for _ in 0..20 {
                for d in [&garbage[..], &unkeyed[..10], &forged[..], &unkeyed[..]] {
                    s.send_to(d, "192.0.2.3:20001").unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let st = lb2.ctl_json(&["highavailability", "status"]).unwrap();
    let d = &st["dropped"];
    let grew = |k: &str| d[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert!(grew("bad_magic") >= 20, "garbage: {d}");
    assert!(grew("truncated") >= 20, "truncated: {d}");
    assert!(grew("bad_mac") >= 20, "wrong key: {d}");
    assert!(grew("missing_mac") >= 20, "unauthenticated: {d}");
    assert_eq!(state(&lb1).0, "Active");
    assert_eq!(state(&lb2).0, "Standby");
    let text = lb2.ctl(&["highavailability", "status"]).unwrap();
    assert!(text.contains("bad_mac"), "{text}");
}

fn lab_no_dual_active_through_failovers_and_takeovers() {
    let _g = serial();
    let (lab, mut lb1, lb2) = pair("hawatch", "manual", &[]);
    let watch = |lb1: &TandemNode, lb2: &TandemNode, dur: Duration| {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            // Two reads are not one instant: lb1 read Active, then lb2 read Active, may be a
            // clean hand-over in between. lb1 read Active again after that proves an instant
            // at which both were (a node does not go Standby and back within milliseconds).
            let a1 = state(lb1).0;
            let b = state(lb2).0;
            let a2 = state(lb1).0;
            assert!(
                !(a1 == "Active" && b == "Active" && a2 == "Active"),
                "both Active while the heartbeat pair works"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    for round in 0..2 {
        lb2.ctl(&["highavailability", "takeover"])
            .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        watch(&lb1, &lb2, Duration::from_secs(3));
        wait_state(&lb2, "Active", true, Duration::from_secs(10));
        lb1.ctl(&["highavailability", "takeover"]).unwrap();
        watch(&lb1, &lb2, Duration::from_secs(3));
        wait_state(&lb1, "Active", true, Duration::from_secs(10));
    }
    // A failover and a return (the watch pauses while lb1 is dead: no heartbeat pair works).
    lb1.kill().unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(5));
    lb1.restart().unwrap();
    for cmd in [
        vec![
            "highavailability",
            "heartbeat",
            "add",
            "192.0.2.2",
            "192.0.2.3",
        ],
        vec!["highavailability", "reach", "add", "192.0.2.10"],
        vec![
            "highavailability",
            "backup",
            "add",
            "primary",
            "manual",
            PORT,
        ],
    ] {
        lb1.ctl(&cmd).unwrap();
        watch(&lb1, &lb2, Duration::from_millis(300));
    }
    wait_state(&lb1, "Standby", true, Duration::from_secs(10));
    watch(&lb1, &lb2, Duration::from_secs(3));
    time_to_serve(&lab, Duration::from_secs(5));
}

fn lab_scripts_run_once_per_transition_in_order_with_their_environment() {
    let _g = serial();
    let lab = ClusterLab::new("hascripts", 2, 1).expect("lab");
    let dir = lab.lab.log_dir().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    // tandemd runs scripts only from a directory writable by root alone.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("ran.log");
    for name in [
        "goActive",
        "goStandby",
        "goInOp",
        "goIdle",
        "highavailChange",
    ] {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$(basename $0) arg=$1 state=$TANDEM_STATE role=$TANDEM_ROLE clusters=$TANDEM_CLUSTERS\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg1 = format!(
        "{}\nhighavailability scripts {}\n",
        demo_config(1),
        dir.display()
    );
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &cfg1, &[]).unwrap();
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[]).unwrap();
    lb1.ctl(&[
        "highavailability",
        "heartbeat",
        "add",
        "192.0.2.2",
        "192.0.2.3",
    ])
    .unwrap();
    lb1.ctl(&[
        "highavailability",
        "backup",
        "add",
        "primary",
        "manual",
        PORT,
    ])
    .unwrap();
    lb2.ctl(&[
        "highavailability",
        "heartbeat",
        "add",
        "192.0.2.3",
        "192.0.2.2",
    ])
    .unwrap();
    lb2.ctl(&[
        "highavailability",
        "backup",
        "add",
        "backup",
        "manual",
        PORT,
    ])
    .unwrap();
    wait_state(&lb1, "Active", true, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    // Idle at start, then HA: Listen, then Active; each go script followed by highavailChange.
    let active = lines
        .iter()
        .position(|l| l.starts_with("goActive"))
        .unwrap_or_else(|| panic!("goActive ran: {text}"));
    assert!(
        lines[active + 1].starts_with("highavailChange arg=goActive"),
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("goActive")).count(),
        1,
        "{text}"
    );
    assert!(
        lines[active].contains("state=Active") && lines[active].contains("role=primary"),
        "{text}"
    );
    assert!(lines[active].contains("clusters=192.0.2.100"), "{text}");
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("go") {
            let name = l.split_whitespace().next().unwrap();
            assert_eq!(
                lines
                    .get(i + 1)
                    .map(|n| n.starts_with(&format!("highavailChange arg={name}"))),
                Some(true),
                "{text}"
            );
        }
    }
}

fn lab_executor_stop_hands_over_and_deleting_ha_returns_to_stand_alone() {
    let _g = serial();
    let (lab, lb1, lb2) = pair("hastop", "manual", &[]);
    // Unkeyed, a "leaving" notice could be forged by anyone: it is ignored, and the partner
    // takes over on silence (hatimeout 2 s).
    let t = Instant::now();
    lb1.ctl(&["executor", "stop"]).unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(6));
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "an unauthenticated leaving notice was believed: takeover after {:?}",
        t.elapsed()
    );
    lb1.ctl(&["executor", "start"]).unwrap();
    wait_state(&lb1, "Standby", true, Duration::from_secs(10));
    lb1.ctl(&["highavailability", "takeover"]).unwrap();
    wait_state(&lb1, "Active", true, Duration::from_secs(10));
    key_the_pair(&lab, &lb1, &lb2);
    // Keyed, the IBM tip: stop the executor on one machine (the partner takes over at once),
    // delete HA on the other.
    let t = Instant::now();
    lb1.ctl(&["executor", "stop"]).unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the partner took over only after {:?}",
        t.elapsed()
    );
    time_to_serve(&lab, Duration::from_secs(5));
    assert_eq!(state(&lb1).0, "Down");
    for cmd in [
        vec!["highavailability", "heartbeat", "delete", "192.0.2.3"],
        vec!["highavailability", "reach", "delete", "192.0.2.10"],
        vec!["highavailability", "backup", "delete"],
    ] {
        lb2.ctl(&cmd).unwrap();
    }
    wait_state(&lb2, "Idle", false, Duration::from_secs(5));
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 50, 4, Duration::from_secs(5))
        .unwrap();
    assert_eq!(r.ok, 50, "stand-alone lb2 forwards: {r}");
}

fn lab_sigterm_of_the_active_hands_over_at_once() {
    let _g = serial();
    let (lab, mut lb1, lb2) = pair("haterm", "auto", &[]);
    key_the_pair(&lab, &lb1, &lb2);
    let t = Instant::now();
    let mut p = lb1.process.take().unwrap();
    p.stop(Duration::from_secs(5)).unwrap();
    wait_state(&lb2, "Active", false, Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "takeover after SIGTERM took {:?}",
        t.elapsed()
    );
    time_to_serve(&lab, Duration::from_secs(5));
    drop(lb1);
}

/// Captures the UDP payload of one heartbeat (magic `TNDM`; replication and configuration
/// sync frames share the port) from `src` to port `dport` seen by `host`.
fn capture_heartbeat(host: &tandem_lab::Host, src: [u8; 4], dport: u16) -> Vec<u8> {
    host.in_ns(move || {
        // SAFETY: plain libc calls on a socket we own; the buffer outlives each call.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM,
                (libc::ETH_P_IP as u16).to_be() as i32,
            );
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let mut buf = [0u8; 2048];
            loop {
                let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                assert!(
                    n > 0,
                    "no heartbeat captured: {}",
                    std::io::Error::last_os_error()
                );
                let p = &buf[..n as usize];
                let ihl = ((p[0] & 0x0f) as usize) * 4;
                if p[9] == 17
                    && p[12..16] == src
                    && p.len() > ihl + 8
                    && u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]) == dport
                    && p[ihl + 8..].starts_with(b"TNDM")
                {
                    libc::close(fd);
                    return p[ihl + 8..].to_vec();
                }
            }
        }
    })
    .unwrap()
}

fn lab_replayed_heartbeats_of_the_real_partner_are_counted_and_change_nothing() {
    let _g = serial();
    let (lab, lb1, lb2) = pair("hareplay", "manual", &[]);
    key_the_pair(&lab, &lb1, &lb2);
    // A genuine, authenticated heartbeat of lb1, recorded on the wire and sent again later
    // from lb1's own address: authentic but old.
    let recorded = capture_heartbeat(&lab.lbs[1], [192, 0, 2, 2], 20001);
    std::thread::sleep(Duration::from_millis(1200));
    let before = lb2.ctl_json(&["highavailability", "status"]).unwrap()["dropped"]["replayed"]
        .as_u64()
        .unwrap();
    lab.lbs[0]
        .in_ns(move || {
            let s = std::net::UdpSocket::bind("192.0.2.2:0").unwrap();
            for _ in 0..20 {
                s.send_to(&recorded, "192.0.2.3:20001").unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = lb2.ctl_json(&["highavailability", "status"]).unwrap()["dropped"]["replayed"]
        .as_u64()
        .unwrap();
    assert!(
        after >= before + 20,
        "replayed heartbeats counted: {before} -> {after}"
    );
    assert_eq!(state(&lb1).0, "Active");
    assert_eq!(state(&lb2).0, "Standby");
    assert_eq!(ha_state(&lb2).1, "Synchronized");
}

// These tests run on both packet I/O backends (docs/packet-io.md).
tandem_lab::packetio_matrix!(
    lab_seed_procedure_then_kill_9_of_the_active_and_auto_recovery,
    lab_cut_link_fails_over_and_manual_recovery_waits_for_takeover,
    lab_reach_target_lost_by_the_active_hands_over,
    lab_version_mismatch_is_reported_and_exactly_one_node_is_active,
    lab_bad_heartbeats_are_counted_and_change_nothing,
    lab_no_dual_active_through_failovers_and_takeovers,
    lab_scripts_run_once_per_transition_in_order_with_their_environment,
    lab_executor_stop_hands_over_and_deleting_ha_returns_to_stand_alone,
    lab_sigterm_of_the_active_hands_over_at_once,
    lab_replayed_heartbeats_of_the_real_partner_are_counted_and_change_nothing,
);
