//! The daemon's shells, through the real `tandemd` and `tandemctl` in a lab: `file` commands
//! confined to the configuration directory and atomic on a full disk (a small tmpfs), the
//! admin socket's bounds (a 1 GiB line, idle and busy clients), and HA scripts that leave
//! background children or sit in a writable directory. Needs root; runs in the nextest group
//! `lab`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, wait_ha_state};
use tandem_lab::serial;

/// A small tmpfs on a fresh directory (outside the lab's log directory), unmounted and removed
/// on drop, also when the test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(tag: &str, size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("tandem-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg(format!("tandem-{tag}"))
            .arg(&dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs a tandemctl command that must fail; returns its error text.
fn refused(node: &TandemNode, args: &[&str]) -> String {
    let out = node.ctl_output(args).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} was not refused: {err}"
    );
    err
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn pid(node: &TandemNode) -> u32 {
    node.process.as_ref().expect("running").pid()
}

#[test]
fn lab_file_commands_stay_in_the_config_dir_and_a_full_disk_keeps_the_old_file() {
    let _g = serial();
    // Declared first, so it is unmounted after the lab has stopped the daemon.
    let fs = Tmpfs::new("shell-cfgdir", "256k");
    let dir = fs.0.clone();
    let lab = ClusterLab::new("shfiles", 1, 1).expect("lab (needs root)");
    let config_dir = dir.display().to_string();
    let node = TandemNode::start(
        &lab.lab,
        &lab.lbs[0],
        &demo_config(1),
        &["--config-dir", &config_dir],
    )
    .unwrap();

    // Names are plain names in the directory.
    for bad in ["../x", "../../etc/x", "/tmp/x", "a/b", "..", ".hidden"] {
        let err = refused(&node, &["file", "save", bad]);
        assert!(
            err.contains("bad file name") && err.contains("configuration directory"),
            "{bad}: {err}"
        );
        let err = refused(&node, &["file", "newload", bad]);
        assert!(err.contains("bad file name"), "{bad}: {err}");
    }
    assert!(!dir.parent().unwrap().join("x").exists());
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));

    // save, then newload, round-trips.
    node.ctl(&["file", "save", "tandem.cfg"]).unwrap();
    let old = std::fs::read(dir.join("tandem.cfg")).unwrap();
    assert!(String::from_utf8_lossy(&old).contains("cluster add 192.0.2.100"));
    node.ctl(&["cluster", "add", "192.0.2.101"]).unwrap();
    node.ctl(&["file", "newload", "tandem.cfg"]).unwrap();
    node.ctl(&["file", "save", "again.cfg"]).unwrap();
    assert_eq!(std::fs::read(dir.join("again.cfg")).unwrap(), old);
    std::fs::remove_file(dir.join("again.cfg")).unwrap();

    // Links out of the directory, FIFOs and devices are refused, at once.
    let outside = lab.lab.log_dir().join("outside.cfg");
    std::fs::write(&outside, "cluster add 192.0.2.102\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.cfg")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.cfg").display().to_string()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let err = refused(&node, &["file", "newload", "link.cfg"]);
    assert!(err.contains("symbolic link"), "{err}");
    let err = refused(&node, &["file", "save", "link.cfg"]);
    assert!(err.contains("link.cfg exists: add force"), "{err}");
    let err = refused(&node, &["file", "save", "link.cfg", "force"]);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "cluster add 192.0.2.102\n"
    );
    let t0 = Instant::now();
    let err = refused(&node, &["file", "appendload", "fifo.cfg"]);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    node.ctl(&["highavailability", "status"]).unwrap();
    std::fs::remove_file(dir.join("link.cfg")).unwrap();
    std::fs::remove_file(dir.join("fifo.cfg")).unwrap();

    // A full file system: the save fails, the old file is byte-identical, no temporary file.
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let full = loop {
        if let Err(e) = filler.write_all(&[0x5a; 4096]) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    for i in 0..50 {
        node.ctl(&["cluster", "add", &format!("192.0.2.{}", 120 + i)])
            .unwrap();
    }
    let err = refused(&node, &["file", "save", "tandem.cfg", "force"]);
    assert!(
        err.contains("No space left") && err.contains("previous file is unchanged"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("tandem.cfg")).unwrap(), old);
    assert_eq!(names(&dir), ["filler", "tandem.cfg"]);
    // With room again, the same save goes through and loads back.
    drop(filler);
    std::fs::remove_file(dir.join("filler")).unwrap();
    node.ctl(&["file", "save", "tandem.cfg", "force"]).unwrap();
    let new = std::fs::read_to_string(dir.join("tandem.cfg")).unwrap();
    assert!(new.contains("cluster add 192.0.2.169"), "{new}");
    node.ctl(&["file", "newload", "tandem.cfg"]).unwrap();
    assert_eq!(names(&dir), ["tandem.cfg"]);
    assert!(!node.log().contains("panicked"));
    drop(node);
    drop(lab);
}

#[test]
fn lab_admin_socket_bounds_long_lines_idle_clients_and_busy_clients() {
    let _g = serial();
    let lab = ClusterLab::new("shadmin", 1, 1).expect("lab (needs root)");
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &demo_config(1), &[]).unwrap();
    let sock = node.socket.clone();
    node.ctl(&["executor", "status"]).unwrap();
    let rss0 = rss_kb(pid(&node));

    // 1 GiB without a newline: an error reply, the connection closed, memory unchanged.
    let s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent: u64 = 0;
        while sent < 1 << 30 {
            match w.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(_) => break,
            }
        }
        sent
    });
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).unwrap();
    let sent = writer.join().unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["ok"], false, "{reply}");
    assert!(
        v["error"].as_str().unwrap().contains("request too long"),
        "{reply}"
    );
    assert!(
        sent < 1 << 30,
        "the daemon read the whole GiB ({sent} bytes)"
    );
    let rss1 = rss_kb(pid(&node));
    eprintln!("1 GiB line: {sent} bytes written before the close; RSS {rss0} kB -> {rss1} kB");
    assert!(
        rss1 < rss0 + 4096,
        "RSS grew from {rss0} kB to {rss1} kB after a 1 GiB line"
    );
    node.ctl(&["executor", "status"]).unwrap();

    // 20 idle clients: 16 take the slots, the rest wait; a tandemctl command behind them is
    // answered once the idle ones time out (5 s), without retrying.
    // One of them drips a byte every 0.3 s: the timeout is per request, not per read.
    let drip = {
        let s = UnixStream::connect(&sock).unwrap();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut w = s.try_clone().unwrap();
            let dripper = std::thread::spawn(move || {
                for b in br#"{"words":["executor","status"]}"#.iter().cycle().take(30) {
                    if w.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            let took = t0.elapsed();
            dripper.join().unwrap();
            (line, took)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let idle: Vec<UnixStream> = (0..19)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let out = node.ctl(&["executor", "status"]).unwrap();
    let took = t0.elapsed();
    eprintln!("behind 20 idle clients, tandemctl was answered after {took:?}");
    assert!(!out.is_empty());
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "the 21st client was answered after {took:?} (idle clients time out after 5 s)"
    );
    let mut first = BufReader::new(&idle[0]);
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    first.read_line(&mut line).unwrap();
    assert!(line.contains("no complete request within 5 s"), "{line}");
    drop(idle);
    let (line, took) = drip.join().unwrap();
    assert!(
        line.contains("no complete request within 5 s") && took < Duration::from_secs(8),
        "the dripping client got {line:?} after {took:?}"
    );

    // 16 busy clients (a request every 0.3 s) hold every slot: the next connection waits 7 s
    // and is refused with a clear error; the busy ones are served throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..16)
        .map(|_| {
            let s = UnixStream::connect(&sock).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    w.write_all(b"{\"words\":[\"executor\",\"status\"],\"json\":true}\n")
                        .unwrap();
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(line.contains("\"ok\":true"), "{line}");
                    answered += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let out = node.ctl_output(&["executor", "status"]).unwrap();
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("behind 16 busy clients, tandemctl was refused after {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("busy: 16 admin clients"), "{err}");
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(20),
        "refused after {took:?} (slot wait 7 s)"
    );
    for b in busy {
        assert!(b.join().unwrap() >= 10);
    }
    // Slots are free again.
    node.ctl(&["executor", "status"]).unwrap();
    let rss2 = rss_kb(pid(&node));
    eprintln!("RSS at the end: {rss2} kB");
    assert!(rss2 < rss0 + 8192, "RSS {rss0} kB → {rss2} kB");
    let log = node.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("admin socket: request too long"), "{log}");
}

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn wait_for_line(path: &Path, prefix: &str, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if std::fs::read_to_string(path).is_ok_and(|s| s.lines().any(|l| l.starts_with(prefix))) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn lab_a_background_child_of_go_active_does_not_delay_the_next_script_and_bad_dirs_are_refused() {
    let _g = serial();
    let lab = ClusterLab::new("shscripts", 1, 1).expect("lab (needs root)");
    let dir = lab.lab.log_dir().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ran = dir.join("ran.log");
    let d = dir.display();
    script(
        &dir,
        "goActive",
        &format!(
            "sleep 60 &\necho $! > {d}/bg.pid\necho \"goActive $TANDEM_STATE\" >> {d}/ran.log"
        ),
    );
    script(
        &dir,
        "goInOp",
        &format!("echo \"goInOp $TANDEM_STATE\" >> {d}/ran.log"),
    );
    // A lone primary goes Active after hatimeout.
    let cfg = format!(
        "{}\nhighavailability heartbeat add 192.0.2.2 192.0.2.3\n\
         highavailability backup add primary auto 20001\nhighavailability scripts {d}\n",
        demo_config(1)
    );
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &cfg, &[]).unwrap();
    wait_ha_state(&node, "Active", false, Duration::from_secs(20)).unwrap();
    wait_for_line(&ran, "goActive Active", Duration::from_secs(10)).expect("goActive ran");
    let bg: i32 = std::fs::read_to_string(dir.join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // The next transition's script runs at once, not after `sleep 60` (nor the 10 s limit).
    let t0 = Instant::now();
    node.ctl(&["executor", "stop"]).unwrap();
    let took = wait_for_line(&ran, "goInOp Down", Duration::from_secs(70))
        .map(|_| t0.elapsed())
        .expect("goInOp ran");
    eprintln!("goInOp ran {took:?} after executor stop (goActive left `sleep 60 &`)");
    assert!(
        took < Duration::from_secs(8),
        "goInOp ran {took:?} after the transition"
    );
    assert!(
        !Path::new(&format!("/proc/{bg}")).exists()
            || std::fs::read_to_string(format!("/proc/{bg}/stat")).is_ok_and(|s| s.contains(") Z")),
        "goActive's background sleep (pid {bg}) is still running"
    );
    assert!(
        node.log().contains("left processes running"),
        "{}",
        node.log()
    );

    // A group-writable script directory is refused at commit, naming the problem.
    let bad = lab.lab.log_dir().join("bad-scripts");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o775)).unwrap();
    let bad_s = bad.display().to_string();
    let err = refused(&node, &["highavailability", "scripts", &bad_s]);
    assert!(
        err.contains(&bad_s) && err.contains("writable by its group"),
        "{err}"
    );
    // The running configuration still names the good directory.
    node.ctl(&["file", "save", "after.cfg"]).unwrap();
    let saved = std::fs::read_to_string(lab.lab.log_dir().join("after.cfg")).unwrap();
    assert!(
        saved.contains(&format!("highavailability scripts {d}")),
        "{saved}"
    );
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    node.ctl(&["highavailability", "scripts", &bad_s]).unwrap();
    // A later chmod makes the runner refuse (and log) rather than run.
    script(
        &bad,
        "goActive",
        &format!("echo ran >> {}/ran", bad.display()),
    );
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    node.ctl(&["executor", "start"]).unwrap();
    wait_ha_state(&node, "Active", false, Duration::from_secs(20)).unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) && !node.log().contains("script refused") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = node.log();
    assert!(
        log.contains("script refused") && log.contains("writable by its group and by everyone"),
        "{log}"
    );
    assert!(!bad.join("ran").exists());
}
