//! Low-level namespace plumbing: running `ip`, listing, entering, emptying and deleting
//! network namespaces.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

pub(crate) fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// Renders a command line for error messages.
pub(crate) fn render<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// Runs a command to completion, capturing its output, whatever its exit status.
pub(crate) fn output<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "could not run `{}` (is it installed?)",
                render(program, args)
            )
        })
}

/// Runs a command; fails (with its stderr) unless it exits 0. Returns its stdout.
pub(crate) fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    let out = output(program, args)?;
    check(program, args, out)
}

pub(crate) fn check<S: AsRef<OsStr>>(program: &str, args: &[S], out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            render(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names of all named network namespaces.
pub(crate) fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(NETNS_DIR),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.context(NETNS_DIR)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

pub(crate) fn exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

pub(crate) fn add(ns: &str) -> Result<()> {
    run("ip", &["netns", "add", ns]).map(drop)
}

/// Process ids inside the namespace, never our own.
pub(crate) fn pids(ns: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(out) = output("ip", &["netns", "pids", ns]) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|&p| p != me && p > 1)
        .collect()
}

/// SIGKILLs every process inside the namespace (never our own process) and waits up to a few
/// seconds for them to be gone. Returns how many were killed.
pub(crate) fn kill_all_in(ns: &str) -> usize {
    let mut killed = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids(ns);
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) with a positive pid and a valid signal has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

/// Kills what is left inside and deletes the namespace (deleting it also removes its
/// interfaces; a veth takes its peer with it). Deleting a namespace that is already gone is
/// not an error.
pub(crate) fn delete(ns: &str) -> Result<()> {
    if !exists(ns) {
        return Ok(());
    }
    kill_all_in(ns);
    let out = output("ip", &["netns", "del", ns])?;
    if !out.status.success() && exists(ns) {
        check("ip", &["netns", "del", ns], out)?;
    }
    Ok(())
}

/// Moves the *calling thread* into the named network namespace. Only call this on a thread of
/// our own making that is not reused for anything else afterwards.
pub(crate) fn enter(ns: &str) -> Result<()> {
    let path = ns_path(ns);
    let file = File::open(&path)
        .with_context(|| format!("opening {} (does namespace {ns} exist?)", path.display()))?;
    // SAFETY: setns(2) on a valid open descriptor; only affects the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns into {ns}"));
    }
    Ok(())
}

/// Writes sysctls inside the namespace in one `sysctl -w` run (keys in dotted form, e.g.
/// `net.ipv4.ip_forward`).
pub(crate) fn sysctls(ns: &str, settings: &[(&str, &str)]) -> Result<()> {
    let mut args: Vec<String> = ["netns", "exec", ns, "sysctl", "-q", "-w"]
        .map(String::from)
        .to_vec();
    args.extend(settings.iter().map(|(k, v)| format!("{k}={v}")));
    run("ip", &args)
        .map(drop)
        .with_context(|| format!("setting sysctls in {ns}"))
}
