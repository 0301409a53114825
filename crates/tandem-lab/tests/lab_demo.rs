//! The demo itself: runs the real `tandem-lab demo` binary (small traffic) and checks that it
//! reports 50 of 50 long-lived connections carrying on through the takeover, a takeover time,
//! and a summary whose claims are the very numbers printed above it; the `--web` relay (root
//! namespace to a lab host, upstream socket made inside the host's namespace); and
//! `demo --web` (a page address per node, the lab kept until Ctrl-C, then removed). Needs root
//! (network namespaces); fails without it, never skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_lab::traffic::Relay;
use tandem_lab::{Lab, ServeConfig, serial};

const BIN: &str = env!("CARGO_BIN_EXE_tandem-lab");

/// The numbers in `line` (integers and decimals, in order).
fn numbers(line: &str) -> Vec<f64> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| !w.is_empty() && w != &".")
        .filter_map(|w| w.trim_end_matches('.').parse().ok())
        .collect()
}

/// The one line of `out` that starts (after spaces) with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one line starting {prefix:?} wanted:\n{out}"
    );
    found[0]
}

/// The one line of `out` that contains `needle`.
fn line_with<'a>(out: &'a str, needle: &str) -> &'a str {
    let found: Vec<&str> = out.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(found.len(), 1, "one line with {needle:?} wanted:\n{out}");
    found[0]
}

#[test]
fn lab_demo_reports_50_of_50_long_lived_and_a_summary_that_matches() {
    let _g = serial();
    let out = Command::new(BIN)
        .args(["demo", "--connections", "300", "--concurrency", "8"])
        .output()
        .expect("running tandem-lab demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tandem-lab demo failed ({}; it needs root):\n{stdout}\n{stderr}",
        out.status
    );
    let summary = &stdout[stdout.find("\nSummary:\n").expect("a summary") + 1..];

    // Long-lived: the section's figures, and the summary saying the same.
    let section = numbers(line(&stdout, "carried on:"));
    assert_eq!(section.len(), 5, "{section:?}");
    let (carried, opened, broke, longest, median) =
        (section[0], section[1], section[2], section[3], section[4]);
    assert_eq!((carried, opened, broke), (50.0, 50.0, 0.0), "{stdout}");
    assert!(longest >= median && median > 0.0, "{stdout}");
    let claimed = numbers(line(summary, "ok   long-lived:"));
    assert_eq!(claimed, vec![carried, opened, longest, median], "{summary}");
    assert!(summary.contains("50 of 50 connections open before the kill carried on"));

    // The takeover time.
    let takeover = numbers(line(&stdout, "takeover time:"));
    assert!(
        takeover[0] > 0.0 && takeover[0] < 10.0,
        "takeover time {takeover:?}"
    );
    assert_eq!(
        numbers(line(summary, "ok   takeover:")),
        vec![2.0, takeover[0]],
        "{summary}"
    );

    // New connections during the failover: attempted, failed during / after / before.
    let nc = numbers(line_with(&stdout, "attempted after the kill; failed:"));
    let (attempted, during, after, before) = (nc[0], nc[1], nc[nc.len() - 2], nc[nc.len() - 1]);
    let claimed = numbers(line(summary, "ok   new connections:"));
    assert_eq!(claimed[0], during + after, "{summary}");
    assert_eq!(claimed[1], attempted, "{summary}");
    assert_eq!(claimed[2], during, "{summary}");
    assert_eq!(&claimed[claimed.len() - 2..], &[after, before], "{summary}");
    assert_eq!((after, before), (0.0, 0.0), "{stdout}");

    // The HTTP rounds: each "N of M answered" is the summary's.
    let rounds: Vec<Vec<f64>> = stdout
        .lines()
        .filter(|l| l.contains(" answered in ") && l.contains(" connections/s"))
        .map(|l| numbers(l)[..2].to_vec())
        .collect();
    assert_eq!(
        rounds,
        vec![vec![300.0, 300.0], vec![300.0, 300.0]],
        "{stdout}"
    );
    for (port, r) in [(80.0, &rounds[0]), (8080.0, &rounds[1])] {
        let prefix = format!("ok   port {port}:");
        assert_eq!(numbers(line(summary, &prefix)), vec![port, r[0], r[1]]);
    }
    assert!(!summary.contains("FAIL"), "{summary}");
    assert!(
        summary.contains("Demo complete: every claim above holds"),
        "{summary}"
    );
}

#[test]
fn lab_demo_relay_carries_bytes_both_ways_into_a_namespace() {
    let _g = serial();
    let lab = Lab::new("relay").expect("a lab (needs root)");
    let host = lab.add_host("s1", &["192.0.2.21/24"]).unwrap();
    let config = ServeConfig {
        name: "s1".into(),
        http: vec![80],
        echo: vec![7],
        ..ServeConfig::default()
    };
    let _server = host.in_ns(|| tandem_lab::serve(&config)).unwrap().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let echo = Relay::start(any, &host, "192.0.2.21:7".parse().unwrap()).unwrap();
    let http = Relay::start(any, &host, "192.0.2.21:80".parse().unwrap()).unwrap();
    let closed = Relay::start(any, &host, "192.0.2.21:81".parse().unwrap()).unwrap();

    // Echo: lines go in, answers come back, on one held connection.
    let mut c = TcpStream::connect(echo.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    for i in 0..3 {
        writeln!(c, "hello {i}").unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        assert_eq!(answer, format!("s1 hello {i}\n"));
    }
    // The client's end (FIN) is passed on: the server closes and the relay closes.
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");

    // HTTP, as a browser would ask.
    let mut h = TcpStream::connect(http.local_addr()).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    h.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    h.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(page.ends_with("server=s1\n"), "{page}");
    assert!(http.stats().bytes_down.load(Ordering::Relaxed) >= page.len() as u64);
    assert!(http.stats().bytes_up.load(Ordering::Relaxed) >= 18);

    // Nothing listening upstream: the connection is closed and counted.
    let mut x = TcpStream::connect(closed.local_addr()).unwrap();
    x.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = x.read_to_end(&mut buf);
    assert!(buf.is_empty());
    assert_eq!(closed.stats().upstream_failed.load(Ordering::Relaxed), 1);

    // The lab address itself is not reachable from the root namespace: only the relay is.
    assert!(
        TcpStream::connect_timeout(
            &"192.0.2.21:80".parse().unwrap(),
            Duration::from_millis(300)
        )
        .is_err()
    );
}

#[test]
fn lab_demo_web_prints_relayed_pages_and_keeps_the_lab_until_ctrl_c() {
    let _g = serial();
    let mut child = Command::new(BIN)
        .args(["demo", "--connections", "100", "--web", "--web-port", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running tandem-lab demo --web");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !seen.contains("press Ctrl-C") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no 'press Ctrl-C' from demo --web:\n{seen}");
            }
        }
    }
    // One page address per node, each a relay on 127.0.0.1 that accepts connections while
    // the lab is kept.
    let urls: std::collections::BTreeSet<&str> = seen
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"))
        })
        .collect();
    assert_eq!(urls.len(), 2, "{seen}");
    for u in &urls {
        let addr: SocketAddr = u
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("relay {addr} does not accept: {e}\n{seen}"));
    }
    assert!(
        seen.contains("tandemctl executor set metrics 192.0.2.2:9180"),
        "{seen}"
    );
    assert!(
        seen.contains("tandemctl executor set metrics 192.0.2.3:9180"),
        "{seen}"
    );
    assert!(
        seen.contains("Demo complete: every claim above holds"),
        "{seen}"
    );
    // Ctrl-C removes the lab and exits 128 + SIGINT.
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    let id = seen
        .lines()
        .find_map(|l| l.split("logs in ").nth(1))
        .and_then(|p| std::path::Path::new(p.trim()).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("the lab's log directory");
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{id}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left after Ctrl-C: {left:?}");
}
