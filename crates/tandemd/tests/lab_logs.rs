//! The HA logs and diagnostics of a real pair: `ha.log`, `ha.out` and `ha.result` after HA
//! commands (one that works, one that fails), the audit line with the peer uid, and
//! `tandemctl diagnostics FILE`: one archive with both nodes' files prefixed by their
//! addresses, and `PARTNER-MISSING.txt` when the partner is gone. Needs root.

use flate2::read::GzDecoder;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, wait_ha_state};
use tandem_lab::serial;

fn pair(tag: &str) -> (ClusterLab, TandemNode, TandemNode) {
    let lab = ClusterLab::new(tag, 2, 3).expect("lab (needs root)");
    let lb1 = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("lb1");
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[]).expect("lb2");
    for (node, src, dst, role) in [
        (&lb1, "192.0.2.2", "192.0.2.3", "primary"),
        (&lb2, "192.0.2.3", "192.0.2.2", "backup"),
    ] {
        node.ctl(&["highavailability", "heartbeat", "add", src, dst])
            .unwrap();
        node.ctl(&["highavailability", "backup", "add", role, "auto", "20001"])
            .unwrap();
    }
    for (node, want) in [(&lb1, "Active"), (&lb2, "Standby")] {
        wait_ha_state(node, want, true, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    (lab, lb1, lb2)
}

fn read(node: &TandemNode, name: &str) -> String {
    std::fs::read_to_string(node.log_dir.join(name))
        .unwrap_or_else(|e| panic!("{}/{name}: {e}", node.log_dir.display()))
}

/// The archive's files, by name.
fn open_archive(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut archive = tar::Archive::new(GzDecoder::new(bytes.as_slice()));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

#[test]
fn lab_ha_logs_audit_and_a_diagnostics_archive_of_both_nodes() {
    let _g = serial();
    let (lab, lb1, mut lb2) = pair("logs");

    // A command that works: ha.log names it, who gave it and the result; ha.result says success.
    lb1.ctl(&["highavailability", "reach", "add", "192.0.2.10"])
        .unwrap();
    let log = read(&lb1, "ha.log");
    let uid = unsafe { libc::geteuid() };
    let line = log
        .lines()
        .find(|l| l.contains("highavailability reach add 192.0.2.10"))
        .unwrap_or_else(|| panic!("no command line in ha.log:\n{log}"));
    assert!(
        line.contains(&format!("command by uid {uid} pid "))
            && line.ends_with(": success")
            && line.starts_with("20")
            && line.as_bytes()[23] == b'Z',
        "{line}"
    );
    // The HA activity is there too (timeline lines), each with its RFC 3339 stamp.
    assert!(log.contains("partner found"), "{log}");
    assert!(
        log.lines()
            .all(|l| l.starts_with("20") || l.starts_with("    ")),
        "{log}"
    );
    let result = read(&lb1, "ha.result");
    assert!(
        result.starts_with("success\ncommand: highavailability reach add 192.0.2.10\nby: uid "),
        "{result}"
    );
    // A query: ha.out holds its output.
    let status = lb1.ctl(&["highavailability", "status"]).unwrap();
    assert_eq!(read(&lb1, "ha.out"), status);
    // A command that fails: ha.result says the error, ha.log too.
    let out = lb1
        .ctl_output(&["highavailability", "reach", "add", "192.0.2.999"])
        .unwrap();
    assert!(!out.status.success());
    let result = read(&lb1, "ha.result");
    assert!(
        result.starts_with("error: ")
            && result.contains("192.0.2.999")
            && result.contains("command: highavailability reach add 192.0.2.999"),
        "{result}"
    );
    assert_eq!(read(&lb1, "ha.out"), "");
    assert!(read(&lb1, "ha.log").contains("highavailability reach add 192.0.2.999: error: "));

    // The audit: changing commands with the peer's uid, to tracing (the daemon's log).
    let daemon_log = lb1.process.as_ref().unwrap().log();
    let audit: Vec<&str> = daemon_log
        .lines()
        .filter(|l| l.contains("tandem::audit"))
        .collect();
    assert!(
        audit.iter().any(|l| l.contains(&format!("uid={uid}"))
            && l.contains("command=highavailability reach add 192.0.2.10")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("192.0.2.999") && l.contains("refused")),
        "{audit:#?}"
    );
    assert!(
        !audit.iter().any(|l| l.contains("highavailability status")),
        "queries are not audited: {audit:#?}"
    );

    // Diagnostics on lb1: both nodes' files, each prefixed by its node's address.
    let path = lab.lab.log_dir().join("diagnostics-lb1.tar.gz");
    let text = lb1.ctl(&["diagnostics", path.to_str().unwrap()]).unwrap();
    println!("{text}");
    assert!(
        text.contains("the partner's") && text.contains("included"),
        "{text}"
    );
    let files = open_archive(&path);
    let names: Vec<&String> = files.keys().collect();
    println!("archive: {names:?}");
    for node in ["192.0.2.2", "192.0.2.3"] {
        for f in [
            "ha.log",
            "highavailability_status.txt",
            "highavailability_status.json",
            "executor_status.txt",
            "executor_report.json",
            "configuration.cfg",
        ] {
            let name = format!("{node}_{f}");
            let data = files
                .get(&name)
                .unwrap_or_else(|| panic!("{name} missing: {names:?}"));
            assert!(!data.is_empty(), "{name} is empty");
        }
        for f in ["ha.out", "ha.result"] {
            assert!(
                files.contains_key(&format!("{node}_{f}")),
                "{node}_{f}: {names:?}"
            );
        }
    }
    // The reports and statuses ran (a wrong wildcard would leave an error there).
    let ran = |n: &str| n.ends_with("_report.txt") || n.ends_with("_status.txt");
    for (name, data) in files.iter().filter(|(n, _)| ran(n)) {
        assert!(
            !data.starts_with(b"error: "),
            "{name}: {}",
            String::from_utf8_lossy(data)
        );
    }
    let status2: serde_json::Value =
        serde_json::from_slice(&files["192.0.2.3_highavailability_status.json"]).unwrap();
    assert_eq!(status2["state"], "Standby", "the partner's own status");
    assert!(String::from_utf8_lossy(&files["192.0.2.2_ha.log"]).contains("192.0.2.999"));
    assert!(
        String::from_utf8_lossy(&files["192.0.2.3_configuration.cfg"]).contains("nfa 192.0.2.3")
    );
    let manifest = String::from_utf8_lossy(&files["MANIFEST.txt"]).into_owned();
    assert!(
        manifest.contains("unauthenticated pair"),
        "no key set: {manifest}"
    );
    assert!(!files.contains_key("PARTNER-MISSING.txt"));
    // The partner logged that it sent its files.
    assert!(read(&lb2, "ha.log").contains("diagnostics: this node's files sent to the partner"));
    // An existing file is never replaced.
    let err = lb1
        .ctl_output(&["diagnostics", path.to_str().unwrap()])
        .unwrap();
    assert!(String::from_utf8_lossy(&err.stderr).contains("exists"));

    // The partner gone: the archive holds this node's files and says why the partner's are not.
    lb2.kill().unwrap();
    let path = lab.lab.log_dir().join("diagnostics-alone.tar.gz");
    let text = lb1.ctl(&["diagnostics", path.to_str().unwrap()]).unwrap();
    println!("{text}");
    let files = open_archive(&path);
    let missing = String::from_utf8_lossy(
        files
            .get("PARTNER-MISSING.txt")
            .unwrap_or_else(|| panic!("{:?}", files.keys())),
    )
    .into_owned();
    println!("{missing}");
    assert!(missing.contains("partner"), "{missing}");
    assert!(files.contains_key("192.0.2.2_ha.log"));
    assert!(!files.keys().any(|n| n.starts_with("192.0.2.3_")));
}
