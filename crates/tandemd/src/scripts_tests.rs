//! The script runner with real scripts (`/bin/sh`) and real processes.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the temporary directory, mode 0755, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tandemd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn job(name: &'static str, env: &[(&str, &str)]) -> ScriptJob {
    ScriptJob {
        name,
        arg: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Waits until `path` exists and is non-empty; returns how long that took.
fn wait_for_file(path: &Path, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Whether process `pid` is alive (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn read_pid(path: &Path) -> i32 {
    wait_for_file(path, Duration::from_secs(10)).expect("the script wrote its pid");
    // The shell writes the number and then the newline: wait for the whole line.
    for _ in 0..100 {
        let s = std::fs::read_to_string(path).unwrap();
        if s.ends_with('\n') {
            return s.trim().parse().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("pid file {} never completed", path.display());
}

fn wait_dead(pid: i32, timeout: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn limits(time_limit_ms: u64) -> Limits {
    Limits {
        time_limit: Duration::from_millis(time_limit_ms),
        grace: Duration::from_millis(500),
        queue: QUEUE_LIMIT,
    }
}

#[test]
fn a_background_child_holding_the_output_does_not_delay_the_next_script() {
    let dir = TempDir::new("scripts-bg");
    let d = dir.path().display().to_string();
    dir.script(
        "goActive",
        &format!("sleep 60 &\necho $! > {d}/bg.pid\necho goActive started; echo to stderr >&2"),
    );
    dir.script("goStandby", &format!("echo ran > {d}/standby.ran"));
    let limit = Duration::from_secs(5);
    let runner = ScriptRunner::with_limits(limits(limit.as_millis() as u64));
    let t0 = Instant::now();
    runner.queue(dir.path().into(), job("goActive", &[]));
    runner.queue(dir.path().into(), job("goStandby", &[]));
    let took = wait_for_file(&dir.0.join("standby.ran"), Duration::from_secs(60))
        .expect("goStandby never ran");
    assert!(
        took < limit,
        "goStandby ran {took:?} after goActive was queued: the background `sleep 60` delayed it \
         (limit {limit:?})"
    );
    let bg = read_pid(&dir.0.join("bg.pid"));
    assert!(
        wait_dead(bg, Duration::from_secs(5)),
        "the background sleep (pid {bg}) of goActive is still running"
    );
    let s = stats_after_runs(&runner, 2);
    assert_eq!((s.ran, s.timed_out, s.leftovers_killed), (2, 0, 1), "{s:?}");
    assert!(t0.elapsed() < Duration::from_secs(30));
}

/// The runner's counters once `runs` scripts have started, or after 10 s: a script can write
/// its file before the runner has counted it (the count follows `spawn` returning).
fn stats_after_runs(runner: &ScriptRunner, runs: u64) -> ScriptStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    while runner.stats().ran < runs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.stats()
}

#[test]
fn a_script_that_ignores_sigterm_is_killed_at_the_limit_with_its_children() {
    let dir = TempDir::new("scripts-term");
    let d = dir.path().display().to_string();
    dir.script(
        "goActive",
        &format!(
            "trap '' TERM\nsleep 300 &\necho $! > {d}/child.pid\necho $$ > {d}/self.pid\n\
             while :; do sleep 1; done"
        ),
    );
    dir.script("highavailChange", &format!("echo \"$1\" > {d}/change.ran"));
    let runner = ScriptRunner::with_limits(limits(1500));
    let t0 = Instant::now();
    runner.queue(dir.path().into(), job("goActive", &[]));
    runner.queue(
        dir.path().into(),
        ScriptJob {
            arg: Some("goActive"),
            ..job("highavailChange", &[])
        },
    );
    let me = read_pid(&dir.0.join("self.pid"));
    let child = read_pid(&dir.0.join("child.pid"));
    let took = wait_for_file(&dir.0.join("change.ran"), Duration::from_secs(60))
        .map(|_| t0.elapsed())
        .expect("highavailChange never ran");
    // 1.5 s limit + 0.5 s grace; generous for a loaded machine.
    assert!(
        took < Duration::from_secs(8),
        "the next script ran after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "killed early: {took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("change.ran")).unwrap(),
        "goActive\n"
    );
    assert!(wait_dead(me, Duration::from_secs(5)), "the script survived");
    assert!(
        wait_dead(child, Duration::from_secs(5)),
        "its child survived"
    );
    let s = stats_after_runs(&runner, 2);
    assert_eq!((s.ran, s.timed_out), (2, 1), "{s:?}");
}

#[test]
fn scripts_in_a_group_writable_directory_or_writable_by_others_are_refused() {
    let bad = TempDir::new("scripts-gw");
    let b = bad.path().display().to_string();
    bad.script("goActive", &format!("echo ran > {b}/ran"));
    std::fs::set_permissions(bad.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = check_dir(bad.path()).unwrap_err().to_string();
    assert!(
        err.contains(&b) && err.contains("writable by its group") && err.contains("0775"),
        "{err}"
    );
    std::fs::set_permissions(bad.path(), std::fs::Permissions::from_mode(0o757)).unwrap();
    let err = check_dir(bad.path()).unwrap_err().to_string();
    assert!(err.contains("writable by everyone"), "{err}");
    assert!(
        check_dir(Path::new("relative/dir"))
            .unwrap_err()
            .to_string()
            .contains("not an absolute path")
    );
    assert!(
        check_dir(&bad.0.join("missing"))
            .unwrap_err()
            .to_string()
            .contains("No such file")
    );

    let good = TempDir::new("scripts-ok");
    let g = good.path().display().to_string();
    check_dir(good.path()).unwrap();
    // A world-writable script in a good directory is refused too.
    let open = good.script("goStandby", &format!("echo ran > {g}/standby.ran"));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o757)).unwrap();
    good.script("goInOp", &format!("echo ran > {g}/inop.ran"));

    let runner = ScriptRunner::with_limits(limits(5000));
    runner.queue(bad.path().into(), job("goActive", &[]));
    runner.queue(good.path().into(), job("goStandby", &[]));
    runner.queue(good.path().into(), job("goInOp", &[]));
    wait_for_file(&good.0.join("inop.ran"), Duration::from_secs(20)).expect("goInOp ran");
    assert!(
        !bad.0.join("ran").exists(),
        "a script of the bad directory ran"
    );
    assert!(
        !good.0.join("standby.ran").exists(),
        "the writable script ran"
    );
    let s = stats_after_runs(&runner, 1);
    assert_eq!((s.ran, s.refused), (1, 2), "{s:?}");
}

#[test]
fn scripts_owned_by_another_user_are_refused() {
    // Needs root (chown); tandemd's tests run as root.
    let dir = TempDir::new("scripts-owner");
    let script = dir.script("goActive", "true");
    let cpath = std::ffi::CString::new(script.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    let r = unsafe { libc::chown(cpath.as_ptr(), 4242, 4242) };
    assert_eq!(
        r,
        0,
        "chown needs root: {}",
        std::io::Error::last_os_error()
    );
    let err = check_script(&script).unwrap_err().to_string();
    assert!(err.contains("owned by uid 4242"), "{err}");
    let cdir = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::chown(cdir.as_ptr(), 4242, 4242) }, 0);
    let err = check_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("owned by uid 4242"), "{err}");
}

#[test]
fn a_full_queue_drops_the_oldest_jobs_and_counts_them() {
    let dir = TempDir::new("scripts-queue");
    let d = dir.path().display().to_string();
    let gate = dir.0.join("gate");
    // goActive blocks the runner until the test opens the gate.
    dir.script(
        "goActive",
        &format!(
            "echo started > {d}/started\nwhile [ ! -e {} ]; do sleep 0.05; done",
            gate.display()
        ),
    );
    dir.script(
        "highavailChange",
        &format!("echo \"$MARK $1\" >> {d}/marks"),
    );
    let runner = ScriptRunner::with_limits(Limits {
        queue: 2,
        ..limits(20_000)
    });
    runner.queue(dir.path().into(), job("goActive", &[]));
    wait_for_file(&dir.0.join("started"), Duration::from_secs(10)).expect("goActive started");
    for mark in ["1", "2", "3", "4", "5"] {
        runner.queue(
            dir.path().into(),
            ScriptJob {
                arg: Some("goStandby"),
                ..job("highavailChange", &[("MARK", mark)])
            },
        );
    }
    assert_eq!(runner.stats().dropped, 3);
    std::fs::write(&gate, "open").unwrap();
    let marks = dir.0.join("marks");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20)
        && std::fs::read_to_string(&marks).map_or(0, |s| s.lines().count()) < 2
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The two latest jobs ran, in order, with their own environment and argument.
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "4 goStandby\n5 goStandby\n"
    );
    let s = stats_after_runs(&runner, 3);
    assert_eq!((s.ran, s.dropped, s.failed), (3, 3, 0), "{s:?}");
}

#[test]
fn output_is_logged_in_bounded_lines() {
    let mut out = OutputLog {
        script: "goActive",
        partial: Vec::new(),
        logged: 0,
        skipped: 0,
    };
    out.feed(b"short\n");
    out.feed(&vec![b'x'; MAX_LINE + 10]);
    out.feed(b"\n");
    assert_eq!(out.logged, 5 + MAX_LINE);
    assert_eq!(out.skipped, 10);
    for _ in 0..100 {
        out.feed(&[b'y'; 1000]);
        out.feed(b"\n");
    }
    out.finish();
    assert!(out.logged <= MAX_OUTPUT);
    assert_eq!(out.logged + out.skipped, 5 + MAX_LINE + 10 + 100 * 1000);
}

#[test]
fn a_missing_script_is_not_an_error_and_not_executable_is_refused() {
    let dir = TempDir::new("scripts-missing");
    assert!(!check_script(&dir.0.join("goIdle")).unwrap());
    let p = dir.script("goIdle", "true");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = check_script(&p).unwrap_err().to_string();
    assert!(err.contains("not executable"), "{err}");
}
