//! Advisors against real services (issue 8, acceptance 1): for each advisor kind (connect,
//! http, https, ping, custom), a server whose service dies is down, weight 0, within
//! interval × (retries + 1) + 1 s; new connections go to the others; it comes back within an
//! interval of its first good probe; an open connection to a server that goes down continues
//! (`reset no`); a target that accepts and never answers fails after receivetimeout. The dns
//! advisor (not in the acceptance list) is checked for down and up as well.
//!
//! Lab: client 192.0.2.10, lb1 192.0.2.2 (tandemd, cluster 192.0.2.100, MAC forwarding),
//! servers s1-s3 192.0.2.11-13, each running its own killable service
//! (`tandem_lab::health::Service`). Needs root; nextest group `lab`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tandem_lab::cluster::{ClusterLab, TandemNode, server_ip};
use tandem_lab::health::node::{
    HealthLab, advisor_state, connect_count, down_bound, mac_config, server_total, wait_advisor,
};
use tandem_lab::health::{self, Service};
use tandem_lab::serial;

/// Advisor interval (s) and retries of these tests: down after 2 failed probes.
const INTERVAL: f64 = 1.0;
const RETRIES: u32 = 1;
/// Added to the acceptance bound for polling tandemctl on a loaded machine.
const SLACK: f64 = 1.0;

struct Case {
    hl: HealthLab,
    node: TandemNode,
    services: Vec<Service>,
    advisor: String,
    port: u16,
}

fn cluster(port: u16) -> SocketAddr {
    ClusterLab::cluster(port)
}

/// Three servers running `make(lab, n)`, tandemd with port `port`, the script directory
/// (`highavailability scripts`), then the advisor (`interval 1`, `retries 1`), and waits
/// until it says every server is up.
fn setup(tag: &str, advisor: &str, port: u16, make: impl Fn(&HealthLab, usize) -> Service) -> Case {
    setup_with(tag, advisor, port, make, "")
}

/// [`setup`] with more lines in the node's configuration file.
fn setup_with(
    tag: &str,
    advisor: &str,
    port: u16,
    make: impl Fn(&HealthLab, usize) -> Service,
    extra_config: &str,
) -> Case {
    let hl = HealthLab::new(tag, 1, 3).expect("lab (needs root)");
    let services: Vec<Service> = (1..=3).map(|n| make(&hl, n)).collect();
    let config = mac_config(1, &[(port, "")], 3) + extra_config;
    let node = hl.start_node(1, &config).expect("tandemd");
    node.ctl(&["highavailability", "scripts", hl.scripts.to_str().unwrap()])
        .unwrap();
    let p = port.to_string();
    node.ctl(&["advisor", "start", advisor, &p]).unwrap();
    node.ctl(&["advisor", "interval", advisor, &p, &INTERVAL.to_string()])
        .unwrap();
    node.ctl(&["advisor", "retries", advisor, &p, &RETRIES.to_string()])
        .unwrap();
    let case = Case {
        hl,
        node,
        services,
        advisor: advisor.to_string(),
        port,
    };
    let t = Instant::now();
    for n in 1..=3 {
        case.wait(n, "up", t, Duration::from_secs(15));
    }
    case
}

impl Case {
    fn wait(&self, n: usize, state: &str, since: Instant, bound: Duration) -> Duration {
        let took = wait_advisor(
            &self.node,
            &self.advisor,
            self.port,
            &server_ip(n),
            state,
            since,
            bound,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "{} advisor: s{n} {state} after {:.2} s (bound {:.1} s)",
            self.advisor,
            took.as_secs_f64(),
            bound.as_secs_f64()
        );
        took
    }

    fn totals(&self) -> Vec<u64> {
        (1..=3)
            .map(|n| server_total(&self.node, self.port, &server_ip(n)).unwrap())
            .collect()
    }

    /// `count` new connections through the cluster; returns how many each server got
    /// (from Tandem's counters) and asserts they all connected when `all_connect`.
    fn spread(&self, count: usize, all_connect: bool) -> Vec<u64> {
        let before = self.totals();
        let ok = connect_count(&self.hl.cl.client, cluster(self.port), count).unwrap();
        if all_connect {
            assert_eq!(ok, count, "connections through the cluster failed");
        }
        let after = self.totals();
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    }

    /// The whole acceptance sequence for a kind whose failure is `fail(case)` and recovery
    /// `recover(case)`, on server 2.
    fn down_and_back(&mut self, fail: impl FnOnce(&mut Case), recover: impl FnOnce(&mut Case)) {
        let even = self.spread(30, true);
        assert!(even.iter().all(|&n| n >= 5), "before: {even:?}");

        let t0 = Instant::now();
        fail(self);
        self.wait(2, "down", t0, down_bound(INTERVAL, RETRIES, SLACK));
        let got = self.spread(30, true);
        assert_eq!(
            got[1], 0,
            "new connections reached the down server: {got:?}"
        );
        assert!(got[0] >= 10 && got[2] >= 10, "others: {got:?}");

        let t1 = Instant::now();
        recover(self);
        // The next probe is due within one interval, the server is up within one interval
        // after it.
        self.wait(
            2,
            "up",
            t1,
            Duration::from_secs_f64(2.0 * INTERVAL + 1.0 + SLACK),
        );
        let back = self.spread(30, true);
        assert!(
            back[1] >= 5,
            "the server that came back gets nothing: {back:?}"
        );
    }
}

fn kill2(c: &mut Case) {
    c.services[1].kill().unwrap();
}

fn restart2(c: &mut Case) {
    c.services[1].start().unwrap();
}

#[test]
fn lab_health_connect_advisor() {
    let _guard = serial();
    let mut c = setup("hconnect", "connect", 80, |hl, n| {
        Service::http(hl.server(n), &format!("s{n}"), 80).unwrap()
    });
    c.down_and_back(kill2, restart2);
}

#[test]
fn lab_health_http_advisor_and_silent_target() {
    let _guard = serial();
    let mut c = setup("hhttp", "http", 80, |hl, n| {
        Service::http(hl.server(n), &format!("s{n}"), 80).unwrap()
    });
    c.node
        .ctl(&["advisor", "receivetimeout", "http", "80", "1"])
        .unwrap();
    c.down_and_back(kill2, restart2);

    // A target that accepts and never answers: a failure after receivetimeout, never a hang.
    let t0 = Instant::now();
    c.services[2].kill().unwrap();
    let mut silent = Service::silent(c.hl.server(3), "s3", 80).unwrap();
    let bound = down_bound(INTERVAL, RETRIES, SLACK + 1.0); // + receivetimeout
    c.wait(3, "down", t0, bound);
    let v = c
        .node
        .ctl_json(&["advisor", "report", "http", "80"])
        .unwrap();
    let s3 = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == server_ip(3))
        .cloned()
        .unwrap();
    assert!(
        s3["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no reply within 1.000s")),
        "the silent target did not fail at receivetimeout: {s3}"
    );
    assert_eq!(
        advisor_state(&c.node, "http", 80, &server_ip(1)).unwrap(),
        "up"
    );
    silent.kill().unwrap();
}

#[test]
fn lab_health_https_advisor() {
    let _guard = serial();
    // openssl s_server -www answers GET, not HEAD: the advisor's request and the expected
    // answer come from the servers' options (quoted words in the configuration file).
    let options: String = (1..=3)
        .map(|n| {
            format!(
                "server set 192.0.2.100@443@{} advisorrequest \"GET / HTTP/1.0\" advisorresponse \"200 ok\"\n",
                server_ip(n)
            )
        })
        .collect();
    let mut c = setup_with(
        "hhttps",
        "https",
        443,
        |hl, n| Service::https(hl.server(n), &format!("s{n}"), 443, hl.cl.lab.log_dir()).unwrap(),
        &options,
    );
    // The same options through tandemctl, one argument per quoted string.
    c.node
        .ctl(&[
            "server",
            "set",
            &format!("192.0.2.100@443@{}", server_ip(1)),
            "advisorrequest",
            "GET / HTTP/1.0",
        ])
        .unwrap();
    c.down_and_back(kill2, restart2);
}

#[test]
fn lab_health_ping_advisor_keeps_open_connections() {
    let _guard = serial();
    let c = setup("hping", "ping", 7, |hl, n| {
        Service::echo(hl.server(n), &format!("s{n}"), 7).unwrap()
    });
    // Long-lived echo connections through the cluster until one lands on s2.
    let mut conns = Vec::new();
    for i in 0..6 {
        let mut l =
            c.hl.cl
                .client
                .long_lived(cluster(7), &format!("ll{i}"))
                .unwrap();
        l.ping().unwrap();
        conns.push(l);
    }
    let mut on_s2 = conns
        .into_iter()
        .find(|l| l.server() == Some("s2"))
        .expect("no long-lived connection reached s2");

    let t0 = Instant::now();
    health::block_ping(c.hl.server(2)).unwrap();
    c.wait(2, "down", t0, down_bound(INTERVAL, RETRIES, SLACK));
    // The open connection continues (reset no), on the same server.
    let echo = on_s2
        .ping()
        .expect("open connection to the down server broke");
    assert_eq!(echo.server, "s2");
    // The service still runs, so every connection connects; Tandem sends none to s2.
    let got = c.spread(30, true);
    assert_eq!(
        got[1], 0,
        "new connections reached the down server: {got:?}"
    );

    let t1 = Instant::now();
    health::unblock_ping(c.hl.server(2)).unwrap();
    c.wait(
        2,
        "up",
        t1,
        Duration::from_secs_f64(2.0 * INTERVAL + 1.0 + SLACK),
    );
    assert!(c.spread(30, true)[1] >= 5);
    on_s2
        .ping()
        .expect("open connection broke when the server came back");
}

#[test]
fn lab_health_custom_advisor() {
    let _guard = serial();
    let bin = tandem_lab::find_binary("tandem-lab").unwrap();
    let mut c = setup("hcustom", "ADV_lab", 80, |hl, n| {
        if n == 1 {
            // ADV_lab: an HTTP GET of the server's port 80 with the lab's client tool; exit
            // status 0 and a load on the first line when it answers. The server comes in
            // $SERVER (or as the first argument).
            health::write_script(
                &hl.scripts,
                "ADV_lab",
                &format!(
                    "S=\"${{SERVER:-$1}}\"\n\
                     if {bin} http-load --target \"$S:80\" --count 1 --concurrency 1 --timeout-ms 1000 >/dev/null 2>&1; then\n\
                     \techo 5\n\texit 0\nfi\nexit 1",
                    bin = bin.display()
                ),
            )
            .unwrap();
        }
        Service::http(hl.server(n), &format!("s{n}"), 80).unwrap()
    });
    c.down_and_back(kill2, restart2);
    let v = c
        .node
        .ctl_json(&["advisor", "report", "ADV_lab", "80"])
        .unwrap();
    let s1 = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == server_ip(1))
        .cloned()
        .unwrap();
    assert_eq!(s1["load"], 5, "the script's load is not reported: {v}");
}

#[test]
fn lab_health_dns_advisor() {
    let _guard = serial();
    let hl = HealthLab::new("hdns", 1, 3).expect("lab (needs root)");
    let mut services: Vec<Service> = (1..=3)
        .map(|n| Service::dns(hl.server(n), &format!("s{n}"), 53).unwrap())
        .collect();
    let node = hl
        .start_node(1, &mac_config(1, &[(53, "protocol udp")], 3))
        .unwrap();
    let c = Case {
        hl,
        node,
        services: Vec::new(),
        advisor: "dns".into(),
        port: 53,
    };
    for cmd in [
        vec!["advisor", "start", "dns", "53"],
        vec!["advisor", "interval", "dns", "53", "1"],
        vec!["advisor", "retries", "dns", "53", "1"],
        vec!["advisor", "receivetimeout", "dns", "53", "1"],
    ] {
        c.node.ctl(&cmd).unwrap();
    }
    let t = Instant::now();
    for n in 1..=3 {
        c.wait(n, "up", t, Duration::from_secs(15));
    }
    // The responder dies: queries go unanswered (port unreachable).
    let t0 = Instant::now();
    services[1].kill().unwrap();
    c.wait(2, "down", t0, down_bound(INTERVAL, RETRIES, SLACK + 1.0));
    assert_eq!(
        advisor_state(&c.node, "dns", 53, &server_ip(1)).unwrap(),
        "up"
    );
    let t1 = Instant::now();
    services[1].start().unwrap();
    c.wait(
        2,
        "up",
        t1,
        Duration::from_secs_f64(2.0 * INTERVAL + 1.0 + SLACK),
    );
}
