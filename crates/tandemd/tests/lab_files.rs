//! Configuration files through the real `tandemctl` and `tandemd` (issue 9, points 2 and 3):
//! `file save|newload|appendload|report|delete`, bad files that change nothing, HA statements
//! first, IBM's §3 file as it is, host names from the namespace's hosts file, and
//! `default.cfg` at start. Needs root; runs in the nextest group `lab`.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_lab::cluster::{
    CLIENT_IP, CLUSTER_IP, ClusterLab, TandemNode, demo_config, lb_ip, server_ip,
};
use tandem_lab::serial;

/// The illustrative file of dispatcher-notes.md §3, as it is.
const IBM_SAMPLE: &str = include_str!("../../../examples/ibm-sample.cfg");

/// The §3 file with nothing changed but its addresses, to the lab's documentation addresses.
fn ibm_sample_for_the_lab() -> String {
    IBM_SAMPLE
        .replace("10.0.0.100", CLUSTER_IP)
        .replace("10.0.0.11", &lb_ip(1))
        .replace("10.0.0.12", &lb_ip(2))
        .replace("10.0.0.21", &server_ip(1))
        .replace("10.0.0.22", &server_ip(2))
        .replace("reach add 10.0.0.1", &format!("reach add {CLIENT_IP}"))
}

/// `/etc/netns/NS/hosts` for the duration of a test (`ip netns exec` bind-mounts it over
/// /etc/hosts for the processes it starts); removed on drop, also on failure.
struct NetnsHosts(PathBuf);

impl NetnsHosts {
    fn new(ns: &str, text: &str) -> NetnsHosts {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/NS (needs root)");
        std::fs::write(dir.join("hosts"), text).expect("write the namespace's hosts file");
        // A name not in the hosts file fails at once (no DNS server to wait for).
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .expect("write the namespace's resolv.conf");
        NetnsHosts(dir)
    }
}

impl Drop for NetnsHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn saved(node: &TandemNode, name: &str) -> String {
    node.ctl(&["file", "save", name, "force"])
        .unwrap_or_else(|e| panic!("file save {name}: {e:#}"));
    std::fs::read_to_string(node.config_dir.join(name)).unwrap()
}

fn stderr_of(node: &TandemNode, args: &[&str]) -> String {
    let out = node.ctl_output(args).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn lab_file_commands_round_trip_refuse_bad_files_and_load_ibm_files() {
    let _g = serial();
    let lab = ClusterLab::new("files", 1, 3).expect("lab (needs root and network namespaces)");
    let _hosts = NetnsHosts::new(
        &lab.lbs[0].ns,
        &format!(
            "127.0.0.1 localhost\n{} www1.lab.example\n{} www2.lab.example\n{} gw.lab.example\n",
            server_ip(1),
            server_ip(2),
            "192.0.2.1"
        ),
    );
    let mut node =
        TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");
    let dir = node.config_dir.clone();

    // save → newload → save: the same file (the configuration digest of the pair leaves the
    // HA statements out, so the saved texts are compared: they hold everything).
    node.ctl(&["file", "save", "one.cfg"]).unwrap();
    let one = std::fs::read_to_string(dir.join("one.cfg")).unwrap();
    assert!(
        one.contains("server add 192.0.2.100@80@192.0.2.13 weight 20"),
        "{one}"
    );
    node.ctl(&["file", "newload", "one.cfg"]).unwrap();
    node.ctl(&["file", "save", "two.cfg"]).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("two.cfg")).unwrap(), one);

    // An existing file is overwritten only with force.
    let err = stderr_of(&node, &["file", "save", "one.cfg"]);
    assert!(
        err.contains("one.cfg exists: add force to overwrite"),
        "{err}"
    );
    node.ctl(&["fi", "sa", "one.cfg", "f"]).unwrap();

    // file report lists the files (name, size, time; JSON too); file delete removes one.
    let report = node.ctl_json(&["file", "report"]).unwrap();
    let files = report["files"].as_array().unwrap();
    let two = files
        .iter()
        .find(|f| f["name"] == "two.cfg")
        .expect("two.cfg listed");
    assert_eq!(two["size"].as_u64(), Some(one.len() as u64));
    assert!(two["modified"].as_str().unwrap().starts_with("20"), "{two}");
    assert!(node.ctl(&["file", "report"]).unwrap().contains("two.cfg"));
    node.ctl(&["file", "delete", "two.cfg"]).unwrap();
    assert!(!dir.join("two.cfg").exists());
    let err = stderr_of(&node, &["file", "delete", "two.cfg"]);
    assert!(err.contains("two.cfg does not exist"), "{err}");
    let err = stderr_of(&node, &["file", "delete", "../etc/passwd"]);
    assert!(err.contains("bad file name"), "{err}");

    // From piped standard input, with IBM's dscontrol prefix.
    let mut ctl = std::process::Command::new(tandem_lab::find_binary("tandemctl").unwrap())
        .arg("--socket")
        .arg(&node.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = ctl.stdin.take().unwrap();
        stdin
            .write_all(b"dscontrol file save piped.cfg\ndscontrol file report\n")
            .unwrap();
    }
    let out = ctl.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("piped.cfg"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("piped.cfg")).unwrap(), one);

    // Bad files: each names file:line and changes nothing.
    let before = saved(&node, "before.cfg");
    for (bad, why) in [
        ("frobnicate 192.0.2.100", "unknown keyword 'frobnicate'"),
        (
            "server add 192.0.2.103@80@192.0.2.300",
            "bad address '192.0.2.300'",
        ),
        (
            "port add 192.0.2.103@70000",
            "port 70000 out of range 1-65535",
        ),
        (
            "server add 192.0.2.103@81@192.0.2.11",
            "server on an unknown port 192.0.2.103@81",
        ),
        (
            "server add 192.0.2.103@80@nohost.lab.example",
            "cannot resolve nohost.lab.example",
        ),
        ("file save x.cfg", "refused inside a file being loaded"),
    ] {
        std::fs::write(
            dir.join("bad.cfg"),
            format!("# bad\ncluster add 192.0.2.103\nport add 192.0.2.103@80\n{bad}\n"),
        )
        .unwrap();
        for verb in ["appendload", "newload"] {
            let err = stderr_of(&node, &["file", verb, "bad.cfg"]);
            assert!(
                err.contains("bad.cfg:4: ") && err.contains(why),
                "{bad}: {err}"
            );
            assert_eq!(
                saved(&node, "after.cfg"),
                before,
                "{bad} changed the configuration"
            );
        }
    }
    // A bad line in a nested file: outer:line: inner:line: reason, nothing applied.
    std::fs::write(
        dir.join("outer.cfg"),
        "cluster add 192.0.2.104\nfile appendload bad.cfg\n",
    )
    .unwrap();
    let err = stderr_of(&node, &["file", "appendload", "outer.cfg"]);
    assert!(err.contains("outer.cfg:2: bad.cfg:4: "), "{err}");
    assert_eq!(saved(&node, "after.cfg"), before);

    // HA statements first: loads, with the warning, and saves them last.
    std::fs::write(
        dir.join("hafirst.cfg"),
        format!(
            "highavailability heartbeat add {} {}\nhighavailability reach add 192.0.2.1\n{}",
            lb_ip(1),
            lb_ip(2),
            demo_config(1)
        ),
    )
    .unwrap();
    let out = node.ctl(&["file", "newload", "hafirst.cfg"]).unwrap();
    assert!(
        out.contains("warning: ")
            && out.contains("HA statements come before cluster/port/server statements"),
        "{out}"
    );
    let text = saved(&node, "hafirst-saved.cfg");
    let lines: Vec<&str> = text.lines().collect();
    let first_ha = lines
        .iter()
        .position(|l| l.starts_with("highavailability"))
        .unwrap();
    let last_server = lines
        .iter()
        .rposition(|l| l.starts_with("server add"))
        .unwrap();
    assert!(last_server < first_ha, "{text}");

    // Host names from the namespace's hosts file, resolved once, stored as addresses.
    let out = node
        .ctl(&[
            "server",
            "add",
            "192.0.2.100@80@www1.lab.example+www2.lab.example",
            "weight",
            "1",
        ])
        .unwrap_err();
    // 192.0.2.11 and .12 are on port 80 already: the name resolved, the add is refused.
    assert!(
        format!("{out:#}").contains("server 192.0.2.100@80@192.0.2.11 already exists"),
        "{out:#}"
    );
    let out = node.ctl(&["port", "add", "192.0.2.100@81"]).unwrap();
    assert!(out.is_empty(), "{out}");
    let out = node
        .ctl(&["server", "add", "192.0.2.100@81@www1.lab.example"])
        .unwrap();
    assert!(
        out.contains(&format!("resolved www1.lab.example to {}", server_ip(1))),
        "{out}"
    );
    let text = saved(&node, "names.cfg");
    assert!(
        text.contains(&format!("server add 192.0.2.100@81@{}", server_ip(1))),
        "{text}"
    );
    assert!(!text.contains("lab.example"));

    // The §3 file, addresses aside as it is: loads, saves an equivalent file.
    std::fs::write(dir.join("ibm.cfg"), ibm_sample_for_the_lab()).unwrap();
    let out = node.ctl(&["file", "newload", "ibm.cfg"]).unwrap();
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("the cluster of the §3 file answers");
    assert!(
        out.contains(
            "manager start: the log file manager.log and the metric port 10004 are not used"
        ),
        "{out}"
    );
    let ibm = saved(&node, "ibm-saved.cfg");
    node.ctl(&["file", "newload", "ibm-saved.cfg"]).unwrap();
    assert_eq!(saved(&node, "ibm-again.cfg"), ibm);
    assert!(
        ibm.contains("cluster set 192.0.2.100 proportions 49 50 1 0"),
        "{ibm}"
    );
    assert!(ibm.contains("advisor start http 80"), "{ibm}");
    assert!(ibm.contains("manager start"), "{ibm}");
    // It forwards: the §3 servers answer through the cluster.
    let r = lab
        .client
        .http_load(ClusterLab::cluster(80), 20, 4, Duration::from_secs(5))
        .unwrap();
    println!("§3 file: {}/{} connections answered", r.ok, r.requested);
    assert_eq!(r.ok, 20, "{r}");

    // default.cfg is loaded at start when --config is not given.
    std::fs::write(dir.join("default.cfg"), demo_config(1)).unwrap();
    node.kill().unwrap();
    let tandemd = tandem_lab::find_binary("tandemd").unwrap();
    let sock = dir.join("default.sock");
    let mut p = lab.lbs[0]
        .spawn([
            tandemd.to_str().unwrap(),
            "--config-dir",
            dir.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ])
        .unwrap();
    p.wait_for_log("default.cfg loaded", Duration::from_secs(20))
        .expect("default.cfg is loaded at start");
    p.wait_for_log("tandemd ready", Duration::from_secs(20))
        .unwrap();
    node.socket = sock.clone();
    assert_eq!(saved(&node, "default-saved.cfg"), one);
    p.kill().unwrap();
    // A bad default.cfg: tandemd refuses to start, naming file:line.
    std::fs::write(
        dir.join("default.cfg"),
        "cluster add 192.0.2.100\nport add 192.0.2.100@0\n",
    )
    .unwrap();
    let out = lab.lbs[0]
        .exec([
            tandemd.to_str().unwrap(),
            "--config-dir",
            dir.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("default.cfg:2: port 0 out of range 1-65535"),
        "{err}"
    );
}
