//! The web server of a pair in a lab (`executor set metrics ADDR:PORT`): a live `/metrics`
//! scrape passes `promtool check metrics`; after traffic and `kill -9` of the Active, the new
//! Active's counters moved (frames, connections per server, the transition with its cause,
//! heartbeats); `/api/query` answers reports as tandemctl does and refuses changes (403);
//! unknown paths are 404; the Grafana dashboard uses only metrics the scrape has. Needs root,
//! `curl` and `promtool` (Debian `prometheus`); runs in the nextest group `lab`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, join_pair, lb_ip, wait_ha_state};
use tandem_lab::serial;

const HA_PORT: u16 = 20011;
const WEB_PORT: u16 = 9100;
const PORTS: &str = "port add 192.0.2.100@7 repstrategy connection\n\
server add 192.0.2.100@7@192.0.2.11+192.0.2.12+192.0.2.13\n";

fn url(n: usize, path: &str) -> String {
    format!("http://{}:{WEB_PORT}{path}", lb_ip(n))
}

/// GET `path` of node `n` from inside its own namespace: (status code, body).
fn get(node: &TandemNode, n: usize, path: &str, method: &str) -> (u16, String) {
    let out = node
        .host
        .exec([
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &url(n, path),
        ])
        .expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

fn scrape(node: &TandemNode, n: usize) -> String {
    let (code, body) = get(node, n, "/metrics", "GET");
    assert_eq!(code, 200, "{body}");
    body
}

/// `promtool check metrics` on a live scrape: no error and no lint complaint.
fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus: apt-get install -y prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sum of the samples of `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\""))))
            .then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

/// The families the scrape declares (`# TYPE NAME ...`).
fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn lab_metrics_of_a_pair_move_through_a_takeover() {
    let _g = serial();
    tandem_lab::set_packetio(Some(tandem_lab::PacketIo::Afpacket));
    let lab = ClusterLab::new("metrics", 2, 3).expect("lab (needs root)");
    let cfg = |n: usize, metrics: bool| {
        let web = if metrics {
            format!("executor set metrics {}:{WEB_PORT}\n", lb_ip(n))
        } else {
            String::new()
        };
        format!("{}\nexecutor set hatimeout 1\n{PORTS}{web}", demo_config(n))
    };
    // lb1 serves from its configuration file (at start), lb2 from a command (at runtime).
    let mut lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &cfg(1, true), &[]).unwrap();
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &cfg(2, false), &[]).unwrap();
    // A bind failure refuses the command and changes nothing.
    assert!(
        lb2.ctl(&["executor", "set", "metrics", "198.51.100.99:9100"])
            .is_err()
    );
    assert_eq!(
        lb2.ctl_json(&["executor", "status"]).unwrap()["metrics"],
        serde_json::Value::Null
    );
    lb2.ctl(&[
        "executor",
        "set",
        "metrics",
        &format!("{}:{WEB_PORT}", lb_ip(2)),
    ])
    .unwrap();
    assert_eq!(
        lb2.ctl_json(&["executor", "status"]).unwrap()["metrics"],
        url(2, "/metrics")
    );
    join_pair(&lb1, 1, "manual", HA_PORT).unwrap();
    join_pair(&lb2, 2, "manual", HA_PORT).unwrap();
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(15)).unwrap();
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(15)).unwrap();

    // The JSON routes and the refusals.
    let (code, body) = get(&lb1, 1, "/api/query?cmd=executor+stop", "GET");
    assert_eq!(code, 403, "{body}");
    let refused: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["ok"], false, "{body}");
    assert_eq!(
        lb1.ctl_json(&["executor", "status"]).unwrap()["state"],
        "started"
    );
    let (code, body) = get(&lb1, 1, "/api/query?cmd=executor%20status", "GET");
    assert_eq!(code, 200, "{body}");
    let web: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ctl = lb1.ctl_json(&["executor", "status"]).unwrap();
    assert_eq!(web["ok"], true, "{body}");
    assert_eq!(web["data"]["nfa"], ctl["nfa"]);
    assert_eq!(web["data"]["metrics"], ctl["metrics"]);
    let keys = |v: &serde_json::Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(&web["data"]), keys(&ctl));
    assert_eq!(get(&lb1, 1, "/nothing-here", "GET").0, 404);
    assert_eq!(get(&lb1, 1, "/metrics", "POST").0, 405);
    let (code, body) = get(&lb1, 1, "/api/status", "GET");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["node"]["nfa"], lb_ip(1), "{body}");
    assert_eq!(status["highavailability"]["state"], "Active", "{body}");
    assert!(!status["history"].as_array().unwrap().is_empty(), "{body}");
    let port7 = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["port"] == 7)
        .count();
    assert_eq!(port7, 3, "{body}");

    // Traffic through the Active, replicated to the Standby.
    let set = lab
        .client
        .long_lived_set(ClusterLab::cluster(7), 20, Duration::from_millis(100))
        .unwrap();
    set.wait_echoes(3, Duration::from_secs(20)).unwrap();
    tandem_lab::cluster::wait_connection_records(&lb2, 20, Duration::from_secs(10)).unwrap();
    let a = scrape(&lb1, 1);
    promtool(&a);
    assert!(value(&a, "tandem_frames_forwarded_total", &[]) > 0.0, "{a}");
    assert!(
        value(&a, "tandem_server_connections_active", &[("port", "7")]) >= 20.0,
        "{a}"
    );
    assert!(value(&a, "tandem_server_connections_total", &[("port", "7")]) >= 20.0);
    assert_eq!(value(&a, "tandem_ha_state", &[("state", "Active")]), 1.0);
    let pair = [("source", lb_ip(1)), ("destination", lb_ip(2))];
    let pair: Vec<(&str, &str)> = pair.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(
        value(&a, "tandem_ha_heartbeats_sent_total", &pair) > 0.0,
        "{a}"
    );
    assert!(
        value(&a, "tandem_ha_heartbeats_received_total", &pair) > 0.0,
        "{a}"
    );
    assert_eq!(value(&a, "tandem_ha_config_digest_match", &[]), 1.0, "{a}");
    assert!(
        value(&a, "tandem_replication_records_sent_total", &[]) >= 20.0,
        "{a}"
    );
    let before = scrape(&lb2, 2);
    promtool(&before);
    assert!(value(&before, "tandem_replication_records_installed_total", &[]) >= 20.0);
    assert_eq!(
        value(&before, "tandem_ha_state", &[("state", "Standby")]),
        1.0
    );

    lb1.kill().unwrap();
    wait_ha_state(&lb2, "Active", false, Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = scrape(&lb2, 2);
    promtool(&after);
    let conns = set.stop();
    assert!(conns.iter().all(|c| c.ended.is_none()), "{conns:?}");
    assert_eq!(
        value(&after, "tandem_ha_state", &[("state", "Active")]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tandem_ha_transitions_total",
            &[
                ("from", "Standby"),
                ("to", "Active"),
                ("cause", "heartbeat timeout")
            ]
        ),
        1.0,
        "{after}"
    );
    for name in [
        "tandem_frames_forwarded_total",
        "tandem_server_packets_total",
        "tandem_ha_heartbeats_sent_total",
    ] {
        assert!(
            value(&after, name, &[]) > value(&before, name, &[]),
            "{name} did not move on the new Active:\n{after}"
        );
    }
    assert_eq!(
        value(&after, "tandem_ha_heartbeat_pair_up", &[]),
        0.0,
        "{after}"
    );
    assert!(value(&after, "tandem_ha_partner_last_heard_seconds", &[]) >= 1.0);

    // The dashboard uses only metrics the scrapes declare.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/grafana-dashboard.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(json["panels"].as_array().is_some_and(|p| p.len() >= 6));
    // (A family without series is not written: the union of the three scrapes has them all.)
    let mut known = families(&after);
    known.extend(families(&a));
    known.extend(families(&before));
    let mut used = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("tandem_") {
            used += 1;
            assert!(
                known.contains(word),
                "the dashboard uses {word}, not in the scrape"
            );
        }
    }
    assert!(used >= 10, "{used}");
    drop((lb1, lb2, lab));
}
