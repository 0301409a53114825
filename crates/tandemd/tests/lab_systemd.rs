//! tandemd under systemd's notification protocol, as a `Type=notify` unit with `WatchdogSec=`
//! runs it: a real daemon in a lab namespace with `NOTIFY_SOCKET` naming a datagram socket this
//! test reads. READY=1 comes once the start configuration is loaded and forwarding runs (the
//! data plane is up when it arrives), WATCHDOG=1 keepalives come every WATCHDOG_USEC/2, a
//! STATUS= line carries the HA state and changes with it, STOPPING=1 comes on SIGTERM.
//! Needs root.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, demo_config};
use tandem_lab::{find_binary, serial};

/// The datagrams received until `deadline` or until `stop` holds for one.
fn receive_until(
    rx: &UnixDatagram,
    deadline: Instant,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        rx.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok(n) = rx.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = stop(&text);
            got.push((Instant::now(), text));
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn lab_systemd_ready_after_forwarding_starts_then_watchdog_keepalives_status_and_stopping() {
    let _g = serial();
    let lab = ClusterLab::new("sdnotify", 1, 3).expect("lab (needs root)");
    let host = &lab.lbs[0];
    let dir = lab.lab.log_dir().to_path_buf();
    let notify = dir.join("notify.sock");
    let rx = UnixDatagram::bind(&notify).expect("binding the notify socket");
    let cfg = dir.join("lb1.cfg");
    std::fs::write(&cfg, demo_config(1)).unwrap();
    let socket = dir.join("lb1.sock");
    let mut cmd = std::process::Command::new(find_binary("tandemd").unwrap());
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .arg("--config-dir")
        .arg(&dir)
        .arg("--log-dir")
        .arg(dir.join("lb1-log"))
        .env("NOTIFY_SOCKET", &notify)
        // 1 s: a keepalive every 500 ms.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID");
    let mut daemon = host.spawn_command(&cmd).expect("starting tandemd");

    // READY=1, and at that moment the data plane forwards already.
    let got = receive_until(&rx, Instant::now() + Duration::from_secs(30), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(
        got.iter().any(|(_, m)| m.lines().any(|l| l == "READY=1")),
        "no READY=1 in 30 s: {got:?}\n{}",
        daemon.log()
    );
    let ctl = find_binary("tandemctl").unwrap();
    let out = std::process::Command::new(&ctl)
        .arg("--socket")
        .arg(&socket)
        .args(["--json", "executor", "status"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("executor status: {e}: {out:?}"));
    assert!(
        status["interface"].is_string() && status["packetio_running"].is_string(),
        "the data plane is not running when READY=1 arrives: {status}"
    );

    // Keepalives: about 6 in 3 s (at least 3 on a slow machine), and a STATUS with the state.
    let start = Instant::now();
    let got = receive_until(&rx, start + Duration::from_secs(3), |_| false);
    let keepalives = got.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(
        (3..=12).contains(&keepalives),
        "{keepalives} WATCHDOG=1 in 3 s with WATCHDOG_USEC=1000000: {got:?}"
    );
    let statuses: Vec<&String> = got
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("STATUS="))
        .collect();
    // The first STATUS after READY says the stand-alone state (sent at most once per change).
    assert!(
        statuses.len() <= 1,
        "STATUS repeated without a change: {statuses:?}"
    );

    // An HA change is a new STATUS line: a backup without a partner goes Listen, then Active.
    for args in [
        [
            "highavailability",
            "heartbeat",
            "add",
            "192.0.2.2",
            "192.0.2.3",
        ]
        .as_slice(),
        [
            "highavailability",
            "backup",
            "add",
            "primary",
            "auto",
            "20001",
        ]
        .as_slice(),
    ] {
        let out = std::process::Command::new(&ctl)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tandemctl {args:?}: {out:?}");
    }
    let got = receive_until(&rx, Instant::now() + Duration::from_secs(20), |m| {
        m.starts_with("STATUS=Active")
    });
    let status = got.iter().find(|(_, m)| m.starts_with("STATUS=Active"));
    assert!(
        status.is_some_and(|(_, m)| m.contains("no partner heard") || m.contains("lost")),
        "no STATUS=Active (alone) after HA was configured: {got:?}"
    );

    // SIGTERM: STOPPING=1, and the daemon exits.
    daemon.signal(libc::SIGTERM).unwrap();
    let got = receive_until(&rx, Instant::now() + Duration::from_secs(20), |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(
        got.iter()
            .any(|(_, m)| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {got:?}"
    );
    let exit = daemon.wait(Duration::from_secs(20)).expect("tandemd exits");
    assert!(exit.success(), "tandemd after SIGTERM: {exit:?}");
}
