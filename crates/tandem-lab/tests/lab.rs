//! Integration tests of the lab itself. They need root (network namespaces): without it they
//! FAIL with a message saying so; they never skip. Each takes `tandem_lab::serial()`, and the
//! nextest test group `lab` (see `.config/nextest.toml`) runs them one at a time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::{Duration, Instant};

use tandem_lab::{Host, LAB_PREFIX, Lab, LoadReport, ServeConfig, mac_for, serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_tandem-lab");

fn new_lab(tag: &str) -> Lab {
    Lab::new(tag).unwrap_or_else(|e| {
        panic!(
            "\n\n*** tandem-lab tests need root and network namespaces; creating a lab failed: {e:#}\n\
             *** run them as root (e.g. `sudo -E cargo test -p tandem-lab`). They fail rather than skip.\n\n"
        )
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Named namespaces whose name starts with `prefix`, per `ip netns list`, sorted.
fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn assert_lab_gone(id: &str) {
    let left = namespaces_with_prefix(&format!("{id}-"));
    assert!(
        left.is_empty(),
        "namespaces of lab {id} still exist: {left:?}"
    );
}

fn start_serve(host: &Host, name: &str, extra: &[&str]) -> tandem_lab::LabProcess {
    let mut args = vec![BIN, "serve", "--name", name];
    args.extend_from_slice(extra);
    let mut process = host.spawn(&args).expect("spawn serve");
    process
        .wait_for_log("ready", Duration::from_secs(30))
        .expect("serve ready");
    process
}

#[test]
fn lab_http_udp_echo_and_link_cut() {
    let _serial = serial();
    let lab = new_lab("basic");
    let client = lab.add_host("c1", &["192.0.2.10/24"]).unwrap();
    let server = lab.add_host("s1", &["192.0.2.21/24"]).unwrap();
    let serve = start_serve(
        &server,
        "s1",
        &["--http", "80", "--udp", "5300", "--echo", "7000"],
    );
    server.wait_tcp_port(80, Duration::from_secs(10)).unwrap();
    let http = addr("192.0.2.21:80");
    let udp = addr("192.0.2.21:5300");
    let echo = addr("192.0.2.21:7000");

    let report = client
        .http_load(http, 300, 30, Duration::from_secs(10))
        .unwrap();
    assert!(report.all_ok(), "{report}");
    assert_eq!(
        report.by_server,
        BTreeMap::from([("s1".to_string(), 300)]),
        "{report}"
    );

    assert_eq!(
        client
            .udp_request(udp, "hello", Duration::from_secs(5))
            .unwrap(),
        "s1 hello"
    );

    let mut conn = client.long_lived(echo, "t1").unwrap();
    for seq in 1..=3 {
        let answer = conn.ping().unwrap();
        assert_eq!(answer.server, "s1");
        assert_eq!(answer.seq, seq);
    }

    // Cut the server's cable: nothing gets through.
    server.link_down().unwrap();
    let short = Duration::from_millis(800);
    assert!(
        client.http_get(http, short).is_err(),
        "HTTP answered with the link down"
    );
    assert!(
        client.udp_request(udp, "cut", short).is_err(),
        "UDP answered with the link down"
    );
    conn.set_timeout(short);
    assert!(conn.ping().is_err(), "echo answered with the link down");
    assert!(!client.ping("192.0.2.21", 1).unwrap());

    // Reconnect: new requests work again, and the held connection recovers on the same server.
    server.link_up().unwrap();
    wait_until(
        Duration::from_secs(30),
        "HTTP through the restored link",
        || client.http_get(http, Duration::from_secs(2)).is_ok(),
    )
    .unwrap();
    assert_eq!(
        client
            .udp_request(udp, "back", Duration::from_secs(5))
            .unwrap(),
        "s1 back"
    );
    conn.set_timeout(Duration::from_secs(30));
    let answer = conn.ping().expect("held connection survives a cable cut");
    assert_eq!(answer.server, "s1");
    assert!(client.ping("192.0.2.21", 1).unwrap());

    let id = lab.id().to_string();
    assert_eq!(lab.namespaces().len(), 3, "{:?}", lab.namespaces());
    drop(conn);
    drop(serve);
    lab.shutdown().expect("clean shutdown");
    assert_lab_gone(&id);
}

#[test]
fn lab_cli_clients() {
    let _serial = serial();
    let lab = new_lab("cli");
    let client = lab.add_host("c1", &["198.51.100.10/24"]).unwrap();
    let server = lab.add_host("s1", &["198.51.100.21/24"]).unwrap();
    let _serve = start_serve(
        &server,
        "s1",
        &["--http", "8080", "--udp", "5300", "--echo", "7000"],
    );

    let mut load = client
        .spawn([
            BIN,
            "http-load",
            "--target",
            "198.51.100.21:8080",
            "--count",
            "60",
            "--concurrency",
            "6",
            "--json",
        ])
        .unwrap();
    let status = load.wait(Duration::from_secs(60)).unwrap();
    let log = load.log();
    assert!(status.success(), "http-load failed: {log}");
    let report: LoadReport = serde_json::from_str(log.lines().last().unwrap_or("")).expect(&log);
    assert_eq!((report.ok, report.failed), (60, 0), "{report}");
    assert_eq!(report.by_server.get("s1"), Some(&60));

    let mut udp = client
        .spawn([
            BIN,
            "udp-request",
            "--target",
            "198.51.100.21:5300",
            "--payload",
            "over-cli",
        ])
        .unwrap();
    assert!(
        udp.wait(Duration::from_secs(30)).unwrap().success(),
        "{}",
        udp.log()
    );
    assert_eq!(udp.log().trim(), "s1 over-cli");

    let mut held = client
        .spawn([
            BIN,
            "long-lived",
            "--target",
            "198.51.100.21:7000",
            "--connections",
            "3",
            "--duration-secs",
            "1",
            "--json",
        ])
        .unwrap();
    assert!(
        held.wait(Duration::from_secs(60)).unwrap().success(),
        "{}",
        held.log()
    );
    let stats: Vec<tandem_lab::ConnStats> =
        serde_json::from_str(held.log().trim()).expect("long-lived JSON");
    assert_eq!(stats.len(), 3);
    assert!(
        stats
            .iter()
            .all(|c| c.server.as_deref() == Some("s1") && c.echoes > 0),
        "{stats:?}"
    );

    // Refused addresses are refused before anything is sent.
    let mut refused = client
        .spawn([BIN, "udp-request", "--target", "10.1.2.3:53"])
        .unwrap();
    assert!(!refused.wait(Duration::from_secs(30)).unwrap().success());
    assert!(
        refused.log().contains("not a documentation address"),
        "{}",
        refused.log()
    );
}

#[test]
fn lab_host_setup_and_mac_forwarding_server() {
    let _serial = serial();
    let lab = new_lab("setup");
    let client = lab.add_host("c1", &["192.0.2.10/24"]).unwrap();
    let other = lab.add_host("c2", &["192.0.2.11/24"]).unwrap();
    let server = lab
        .add_host("s1", &["192.0.2.21/24", "192.0.2.22/24"])
        .unwrap();

    // Deterministic MAC, offloads as documented (TX checksum offload off: docs/packet-io.md).
    assert_eq!(server.mac, mac_for("s1"));
    assert_eq!(
        server
            .run(["cat", "/sys/class/net/eth0/address"])
            .unwrap()
            .trim(),
        mac_for("s1")
    );
    let features = server.run(["ethtool", "-k", "eth0"]).unwrap();
    for expected in [
        "tcp-segmentation-offload: off",
        "generic-segmentation-offload: off",
        "generic-receive-offload: off",
        "tx-checksumming: off",
    ] {
        assert!(
            features.contains(expected),
            "{expected:?} missing in:\n{features}"
        );
    }
    assert!(
        lab.switch()
            .run(["ip", "link", "show", "br0"])
            .unwrap()
            .contains("UP")
    );
    assert!(
        lab.add_host("bad", &["10.0.0.1/24"]).is_err(),
        "non-documentation address accepted"
    );
    assert!(
        lab.add_host("c1", &["192.0.2.12/24"]).is_err(),
        "duplicate host accepted"
    );

    // Server side of MAC forwarding: the cluster address on lo, never answered on the wire.
    server.add_loopback_address("192.0.2.100").unwrap();
    assert!(
        server
            .run(["ip", "addr", "show", "dev", "lo"])
            .unwrap()
            .contains("192.0.2.100/32")
    );
    assert_eq!(
        server
            .run(["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"])
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        server
            .run(["sysctl", "-n", "net.ipv4.conf.all.arp_announce"])
            .unwrap()
            .trim(),
        "2"
    );
    assert!(
        !other.ping("192.0.2.100", 2).unwrap(),
        "server answered ARP for its loopback address"
    );

    // In-process servers (library), running inside the server's namespace.
    let config = ServeConfig {
        name: "s1".into(),
        http: vec![80],
        udp: vec![5300],
        echo: vec![7000],
        ..ServeConfig::default()
    };
    let running = server
        .in_ns(|| tandem_lab::serve(&config))
        .unwrap()
        .unwrap();

    // What Tandem's MAC mode does, done by hand: the client sends frames for the cluster
    // address straight to the server's MAC; the server answers from the cluster address.
    client
        .run([
            "ip",
            "neigh",
            "replace",
            "192.0.2.100",
            "lladdr",
            &server.mac,
            "dev",
            "eth0",
        ])
        .unwrap();
    let vip = |port: u16| SocketAddr::from(([192, 0, 2, 100], port));
    let report = client
        .http_load(vip(80), 100, 10, Duration::from_secs(10))
        .unwrap();
    assert!(report.all_ok(), "{report}");
    // The UDP client only accepts answers from the address it sent to (IP_PKTINFO at work).
    assert_eq!(
        client
            .udp_request(vip(5300), "via-vip", Duration::from_secs(5))
            .unwrap(),
        "s1 via-vip"
    );
    assert_eq!(
        client
            .udp_request(addr("192.0.2.22:5300"), "second", Duration::from_secs(5))
            .unwrap(),
        "s1 second"
    );
    let stats = running.stop();
    assert_eq!(stats.http_requests, 100, "{stats:?}");
    assert_eq!(stats.udp_replies, 2, "{stats:?}");

    // Refused targets: nothing is sent.
    let refused = client
        .http_load(addr("10.0.0.1:80"), 3, 1, Duration::from_secs(1))
        .unwrap();
    assert_eq!((refused.ok, refused.failed), (0, 3));
    assert!(
        client
            .udp_request(addr("8.8.8.8:53"), "x", Duration::from_secs(1))
            .is_err()
    );
}

#[test]
fn lab_long_lived_set_survives_link_flap() {
    let _serial = serial();
    let lab = new_lab("flap");
    let client = lab.add_host("c1", &["203.0.113.10/24"]).unwrap();
    let server = lab.add_host("s1", &["203.0.113.21/24"]).unwrap();
    let _serve = start_serve(&server, "s1", &["--echo", "7000"]);
    let target = addr("203.0.113.21:7000");

    let set = client
        .long_lived_set(target, 8, Duration::from_millis(100))
        .unwrap();
    set.wait_echoes(3, Duration::from_secs(30)).unwrap();

    // An outage of about 1.5 s (the outage itself is the scenario, not a synchronisation).
    server.link_down().unwrap();
    let cut = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let before: Vec<u64> = set.snapshot().iter().map(|c| c.echoes).collect();
    server.link_up().unwrap();
    let outage = cut.elapsed();

    wait_until(
        Duration::from_secs(30),
        "every connection to echo again after the outage",
        || {
            set.snapshot()
                .iter()
                .zip(&before)
                .all(|(c, b)| c.echoes >= b + 2)
        },
    )
    .unwrap();
    let stats = set.stop();
    for c in &stats {
        assert!(c.is_healthy(), "{c:?}");
        assert_eq!(c.server.as_deref(), Some("s1"), "{c:?}");
        assert_eq!(c.servers_seen, vec!["s1".to_string()], "{c:?}");
        assert!(
            c.longest_gap >= outage - Duration::from_millis(300),
            "gap {:?} < outage {outage:?}: {c:?}",
            c.longest_gap
        );
    }
}

#[test]
fn lab_process_control() {
    let _serial = serial();
    let lab = new_lab("proc");
    let host = lab.add_host("h1", &["192.0.2.30/24"]).unwrap();

    let mut quick = host
        .spawn([
            "sh",
            "-c",
            "echo hello-from-$(cat /proc/sys/net/ipv4/ip_forward); exit 3",
        ])
        .unwrap();
    let status = quick.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(quick.log().trim(), "hello-from-0");
    assert!(quick.log_path().starts_with(lab.log_dir()));

    let mut failing = host.spawn(["sh", "-c", "echo oops; exit 1"]).unwrap();
    let err = failing
        .wait_for_log("never printed", Duration::from_secs(30))
        .unwrap_err();
    assert!(format!("{err:#}").contains("oops"), "{err:#}");

    let mut sleeper = host.spawn(["sleep", "600"]).unwrap();
    assert!(sleeper.is_running());
    let status = sleeper.stop(Duration::from_secs(5)).unwrap();
    assert!(!status.success());

    // Runs in the namespace: the host sees only its own interfaces.
    let links = host.run(["ip", "-o", "link", "show"]).unwrap();
    assert!(links.contains("eth0") && !links.contains("br0"), "{links}");
    let ip_in_thread = host
        .in_ns(|| std::fs::read_to_string("/sys/class/net/eth0/address"))
        .unwrap();
    assert!(ip_in_thread.is_ok(), "{ip_in_thread:?}");
}

#[test]
fn lab_panic_cleans_up() {
    let _serial = serial();
    let mut seen: Option<(String, u32, Vec<i32>)> = None;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let lab = new_lab("panic");
        let host = lab.add_host("h1", &["192.0.2.40/24"]).unwrap();
        let serve = start_serve(&host, "h1", &["--echo", "7000"]);
        // A process the lab did not spawn itself, detached into its own session.
        host.run(["sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &"])
            .unwrap();
        let mut strays = Vec::new();
        wait_until(
            Duration::from_secs(10),
            "the detached sleep to show up",
            || {
                strays = ns_pids(&host.ns);
                strays.len() >= 2
            },
        )
        .unwrap();
        seen = Some((lab.id().to_string(), serve.pid(), strays));
        panic!("deliberate panic inside a lab");
    }));
    assert!(result.is_err());
    let (id, serve_pid, strays) = seen.expect("the lab was built");
    assert_lab_gone(&id);
    let logs = std::env::temp_dir().join(&id);
    assert!(
        logs.join("h1-tandem-lab-1.log").is_file(),
        "logs of a panicked lab are kept"
    );
    let _ = std::fs::remove_dir_all(&logs);
    assert!(
        !process_exists(serve_pid as i32),
        "serve ({serve_pid}) survived"
    );
    wait_until(
        Duration::from_secs(10),
        "processes of the lab to vanish",
        || !strays.iter().any(|&p| process_exists(p)),
    )
    .unwrap();
}

fn ns_pids(ns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// True if the pid names a live (non-zombie) process.
fn process_exists(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn lab_cleanup_leftovers_spares_live_labs() {
    let _serial = serial();
    let lab = new_lab("live");
    lab.add_host("h1", &["192.0.2.50/24"]).unwrap();
    // pid_max is never a valid pid, so this looks like the leftover of a dead process.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = [
        format!("{LAB_PREFIX}{pid_max:x}-0-fake-sw"),
        format!("{LAB_PREFIX}{pid_max:x}-1-fake-sw"),
    ];
    let guard = Removal(dead.to_vec());
    let make = |ns: &str| {
        let ok = Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap()
            .success();
        assert!(ok, "could not create {ns}");
    };
    make(&dead[0]);

    let removed = tandem_lab::cleanup_leftovers().unwrap();
    assert!(removed >= 1, "removed {removed}");
    assert!(
        namespaces_with_prefix(&dead[0]).is_empty(),
        "{} not removed",
        dead[0]
    );
    let mut live = lab.namespaces();
    live.sort();
    assert_eq!(
        namespaces_with_prefix(&format!("{}-", lab.id())),
        live,
        "a live lab was touched"
    );

    make(&dead[1]);
    let out = Command::new(BIN).arg("cleanup").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&dead[1]),
        "cleanup did not report {}: {text}",
        dead[1]
    );
    assert!(namespaces_with_prefix(&dead[1]).is_empty());
    assert_eq!(
        namespaces_with_prefix(&format!("{}-", lab.id())),
        live,
        "cleanup touched a live lab"
    );
    drop(guard);
}

/// Deletes namespaces made by hand, also when the test fails.
struct Removal(Vec<String>);

impl Drop for Removal {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Set in the child process of [`lab_sigint_cleans_up`].
const SIGNAL_CHILD_ENV: &str = "TANDEM_LAB_TEST_SIGNAL_CHILD";

#[test]
fn lab_sigint_cleans_up() {
    if std::env::var_os(SIGNAL_CHILD_ENV).is_some() {
        // Child: build a lab with a server, report, and wait to be interrupted.
        let lab = new_lab("sigint");
        let host = lab.add_host("h1", &["192.0.2.60/24"]).unwrap();
        let serve = start_serve(&host, "h1", &["--echo", "7000"]);
        println!("\n@@LAB {} {}", lab.id(), serve.pid());
        std::thread::sleep(Duration::from_secs(120));
        panic!("no signal came");
    }
    let _serial = serial();
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lab_sigint_cleans_up",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(SIGNAL_CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut found = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once("@@LAB ") {
            let mut words = rest.split_whitespace();
            found = Some((
                words.next().unwrap().to_string(),
                words.next().unwrap().parse::<i32>().unwrap(),
            ));
            break;
        }
    }
    let Some((id, serve_pid)) = found else {
        let _ = child.kill();
        panic!("child exited without building a lab: {:?}", child.wait());
    };
    assert!(!namespaces_with_prefix(&format!("{id}-")).is_empty());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status}");
    assert_lab_gone(&id);
    assert!(
        !process_exists(serve_pid),
        "serve survived the interrupted lab"
    );
}
