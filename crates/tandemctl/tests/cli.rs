//! The `tandemctl` binary as an operator runs it: help, completions, man pages, exit codes
//! (without a daemon and against a real `tandemd` process on a temporary socket), and the
//! docs' command tables against `--help`. (This test also makes `cargo nextest run
//! --workspace` build the binary that the lab tests drive.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tandemctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(args)
        .env_remove("TANDEM_SOCKET")
        .output()
        .expect("tandemctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandemctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_unreachable_daemon_is_exit_3_with_a_clear_error() {
    let dir = temp_dir("unreachable");
    let sock = dir.join("none.sock");
    let out = tandemctl(&["--socket", sock.to_str().unwrap(), "executor", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach tandemd") && err.contains("none.sock"),
        "{err}"
    );
    // With --json the error is JSON on stdout.
    let out = tandemctl(&["--json", "-s", sock.to_str().unwrap(), "ex", "sta"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 3);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach tandemd")
    );
    // A socket path that is no socket (refused) is unreachable too.
    let file = dir.join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let out = tandemctl(&["--socket", file.to_str().unwrap(), "executor", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_and_unknown_groups_are_usage_exit_2_without_a_daemon() {
    let out = tandemctl(&["--bogus", "executor", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--bogus"), "{}", stderr(&out));
    let out = tandemctl(&["--socket", "/nonexistent.sock", "bogus", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown command group"),
        "{}",
        stderr(&out)
    );
    let out = tandemctl(&["--json", "-s", "/nonexistent.sock", "s", "report"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
    assert!(v["error"].as_str().unwrap().contains("ambiguous"), "{v}");
    let out = tandemctl(&["--json", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
    assert_eq!(v["exit_code"], 2);
    let out = tandemctl(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_lists_groups_and_a_group_lists_its_verbs_usages_and_summaries() {
    let out = tandemctl(&["--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let top = stdout(&out);
    for g in [
        "executor",
        "cluster",
        "port",
        "server",
        "highavailability",
        "manager",
        "advisor",
        "sasp",
        "diagnostics",
        "file",
        "ha",
        "completions",
        "manpages",
        "--socket",
        "--json",
        "Exit codes",
    ] {
        assert!(top.contains(g), "--help lacks {g}:\n{top}");
    }
    for args in [&["port", "--help"][..], &["help", "port"], &["po", "-h"]] {
        let out = tandemctl(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let help = stdout(&out);
        for needle in [
            "tandemctl port add CLUSTER@PORT",
            "tandemctl port remove CLUSTER@PORT",
            "add",
            "set",
            "report",
            "status",
            "change ports' options",
        ] {
            assert!(help.contains(needle), "{args:?} lacks {needle:?}:\n{help}");
        }
    }
    let out = tandemctl(&["help", "port", "add"]);
    let help = stdout(&out);
    assert!(
        help.contains("selectionalgorithm connection|affinity|conn+affin|hash"),
        "{help}"
    );
    assert!(help.contains("tandemctl port add 192.0.2.100@80"), "{help}");
    let out = tandemctl(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_bash_completion_script_names_the_groups_and_verbs() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tandemctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["executor", "highavailability", "takeover", "appendload"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
        if shell != "fish" {
            // Option names complete after the verb (fish's generator leaves positional
            // values out).
            assert!(
                script.contains("selectionalgorithm"),
                "{shell} lacks options"
            );
        }
    }
    // bash itself reads the script, and completing `tandemctl po` gives `port`.
    let script = stdout(&tandemctl(&["completions", "bash"]));
    let dir = temp_dir("bash");
    let file = dir.join("tandemctl.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(tandemctl port ''); COMP_CWORD=2; COMP_LINE='tandemctl port '; \
         COMP_POINT=15; _tandemctl tandemctl '' port; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash runs");
    let replies = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for verb in ["add", "set", "remove", "report", "status"] {
        assert!(
            replies.lines().any(|l| l == verb),
            "{verb} not completed: {replies}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn manpages_are_written_for_tandemctl_and_each_group() {
    let dir = temp_dir("man");
    let out = tandemctl(&["manpages", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for g in [
        "tandemctl",
        "tandemctl-executor",
        "tandemctl-port",
        "tandemctl-server",
        "tandemctl-highavailability",
        "tandemctl-ha",
        "tandemctl-diagnostics",
    ] {
        let page = std::fs::read_to_string(dir.join(format!("{g}.1")))
            .unwrap_or_else(|e| panic!("{g}.1: {e}"));
        assert!(page.contains(".TH"), "{g}.1 is no man page");
    }
    let port = std::fs::read_to_string(dir.join("tandemctl-port.1")).unwrap();
    assert!(port.contains("selectionalgorithm"), "{port}");
    // man itself renders the page (Debian package man-db).
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.join("tandemctl-port.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man runs (apt-get install man-db)");
    assert!(out.status.success(), "man: {}", stderr(&out));
    let text = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains("tandemctl port add CLUSTER@PORT"), "{text}");
    // Every page a page names exists (a verb has its own: tandemctl-port-add.1).
    for page in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(page.unwrap().path())
            .unwrap()
            .replace("\\-", "-");
        for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
            if let Some(name) = word.strip_suffix("(1)") {
                assert!(
                    dir.join(format!("{name}.1")).exists(),
                    "{name}(1) is named, not written"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every command of docs/commands.md's tables appears in the help: a row's backticked
/// `GROUP VERB ...` in that group's `--help` (the verb in its list), an option row of a group
/// section in the group's or its `add` verb's help, and the tandemctl section's rows in
/// `tandemctl --help`.
#[test]
fn every_command_in_the_docs_appears_in_help() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    let docs = std::fs::read_to_string(&docs).expect("docs/commands.md");
    let groups = [
        "executor",
        "cluster",
        "port",
        "server",
        "highavailability",
        "manager",
        "advisor",
        "sasp",
        "diagnostics",
        "file",
        "ha",
    ];
    let mut help_cache = std::collections::HashMap::new();
    let mut help = |args: Vec<String>| -> String {
        help_cache
            .entry(args.clone())
            .or_insert_with(|| {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = tandemctl(&refs);
                assert!(out.status.success(), "{args:?}: {}", stderr(&out));
                stdout(&out)
            })
            .clone()
    };
    let mut section = String::new();
    let mut checked = 0;
    for line in docs.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or("")
                .to_string();
            continue;
        }
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let cell = row.split(" | ").next().unwrap_or("");
        let cell = format!("`{cell}");
        let segments: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let first = segments.first().copied().unwrap_or("");
        let words: Vec<&str> = first.split_whitespace().collect();
        let Some(word) = words.first() else { continue };
        if groups.contains(word) {
            let group = *word;
            let group_help = help(vec![group.into(), "--help".into()]);
            match words.get(1) {
                Some(verb) if !verb.chars().all(|c| c.is_ascii_uppercase()) => {
                    assert!(
                        group_help
                            .lines()
                            .any(|l| l.split_whitespace().next() == Some(verb)),
                        "docs: `{first}`: verb {verb} not in `tandemctl {group} --help`:\n{group_help}"
                    );
                }
                _ => assert!(
                    group_help.contains(&format!("tandemctl {first}")),
                    "docs: `{first}` not in `tandemctl {group} --help`:\n{group_help}"
                ),
            }
        } else if groups.contains(&section.as_str()) {
            let group_help = help(vec![section.clone(), "--help".into()]);
            let add_help = help(vec!["help".into(), section.clone(), "add".into()]);
            assert!(
                group_help.contains(word) || add_help.contains(word),
                "docs: option `{first}` of {section} not in its help"
            );
        } else if section == "tandemctl" {
            let top = help(vec!["--help".into()]);
            assert!(
                top.contains(word),
                "docs: `{first}` of the tandemctl section not in --help"
            );
        } else {
            continue;
        }
        checked += 1;
    }
    assert!(
        checked >= 40,
        "only {checked} rows of docs/commands.md checked"
    );
}

/// A real tandemd on a temporary socket, without a data plane (no nfa, executor stopped);
/// killed when dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let bin = Path::new(env!("CARGO_BIN_EXE_tandemctl"))
            .parent()
            .unwrap()
            .join("tandemd");
        assert!(
            bin.exists(),
            "{} is missing: build it first (cargo build -p tandemd)",
            bin.display()
        );
        let dir = temp_dir(name);
        let socket = dir.join("tandemd.sock");
        let child = Command::new(&bin)
            .arg("--socket")
            .arg(&socket)
            .arg("--config-dir")
            .arg(&dir)
            .arg("--log-dir")
            .arg(dir.join("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tandemd starts");
        let mut d = Daemon { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&d.socket).is_ok() {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("tandemd exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "tandemd's socket never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend(args);
        tandemctl(&all)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn exit_codes_against_a_real_daemon() {
    let d = Daemon::start("daemon-codes");
    // 0: ok, abbreviations and a leading dscontrol pass through unchanged.
    let out = d.ctl(&["ex", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.ctl(&["dscontrol", "cluster", "add", "192.0.2.100"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.ctl(&["--json", "cluster", "report", "@"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON reply");
    // 1: a well-formed command the daemon refuses.
    let out = d.ctl(&["port", "add", "192.0.2.200@80"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    let out = d.ctl(&["--json", "cluster", "add", "192.0.2.100"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
    assert_eq!(
        (v["ok"].clone(), v["exit_code"].clone()),
        (false.into(), 1.into())
    );
    // Words the grammar does not take: refused by the daemon with its parse error, 1 too.
    let out = d.ctl(&["port", "add", "192.0.2.100@80", "method", "bogus"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown keyword 'bogus'"),
        "{}",
        stderr(&out)
    );
    let out = d.ctl(&["ex", "st"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("ambiguous"), "{}", stderr(&out));
    // Commands from a pipe: the highest code of the lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["--socket", d.socket.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"executor status\ncluster remove 192.0.2.99\nexecutor report\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn interactive_mode_completes_keywords_and_keeps_history() {
    let d = Daemon::start("daemon-interactive");
    let home = temp_dir("home");
    // `script` (util-linux) gives tandemctl a terminal; Tab completes `clu` and `rep`.
    let cmd = format!(
        "{} --socket {}",
        env!("CARGO_BIN_EXE_tandemctl"),
        d.socket.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", &home)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs (util-linux)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for line in [
            &b"clu\trep\t@\n"[..],
            b"port add 192.0.2.99@80\n",
            b"exit\n",
        ] {
            stdin.write_all(line).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("tandemctl> "), "no prompt: {text}");
    // The refused port add makes the session's code 1.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("does not exist") || text.contains("error:"),
        "{text}"
    );
    let history = std::fs::read_to_string(home.join(".tandemctl_history")).expect("history");
    assert!(history.contains("cluster report @"), "{history}");
    assert!(history.contains("port add 192.0.2.99@80"), "{history}");
    std::fs::remove_dir_all(&home).unwrap();
}
