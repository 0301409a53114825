//! HA scripts (`goActive`, `goStandby`, `goInOp`, `goIdle`, `highavailChange`): run one at a
//! time, in order, each in its own process group under a time limit, and only from a directory
//! nobody but root can write to.
//!
//! * **Process group.** Each script leads a new process group. When the script exits, whatever
//!   it left behind in its group (`sleep 60 &`) is terminated: SIGTERM, then SIGKILL after
//!   [`Limits::grace`]. At the time limit the whole group, script included, goes the same way.
//!   A script that wants to leave a daemon running must detach it (`setsid`).
//! * **Output.** stdout and stderr share one pipe, read without blocking; lines go to the
//!   daemon's log (bounded in length and in total). Reading stops when the script exits or is
//!   killed, so a background child that holds the pipe open never blocks the runner.
//! * **Queue.** At most [`Limits::queue`] jobs wait; when it is full the oldest job is dropped
//!   (counted and logged), so after flapping the scripts that run describe the latest states.
//! * **Ownership.** The directory and each script must be owned by root (or by the user the
//!   daemon runs as) and must not be writable by group or others; otherwise the script is
//!   refused (counted and logged). [`check_dir`] also runs when `highavailability scripts DIR`
//!   is committed, so a bad directory is refused with the command.

use anyhow::{Result, bail};
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a script may run before its process group is killed.
pub const SCRIPT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Between SIGTERM and SIGKILL of a script's process group.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// Jobs that may wait for the runner (8 transitions: a go script and `highavailChange` each).
pub const QUEUE_LIMIT: usize = 16;
/// The longest output line logged (longer ones are cut).
const MAX_LINE: usize = 4096;
/// Output logged per script run; the rest is counted, not logged.
const MAX_OUTPUT: usize = 64 * 1024;
/// How often the runner looks at a running script (exit, time limit) between output reads.
const TICK: Duration = Duration::from_millis(10);

/// What a script is told, in environment variables (documented in docs/ha.md).
#[derive(Debug, Clone)]
pub struct ScriptJob {
    pub name: &'static str,
    pub arg: Option<&'static str>,
    pub env: Vec<(String, String)>,
}

/// The runner's limits ([`Limits::default`] is what the daemon uses).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time_limit: Duration,
    pub grace: Duration,
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time_limit: SCRIPT_TIME_LIMIT,
            grace: KILL_GRACE,
            queue: QUEUE_LIMIT.max(1),
        }
    }
}

/// What the runner did, since the daemon started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScriptStats {
    /// Scripts started.
    pub ran: u64,
    /// Scripts that exited with a non-zero status or could not be started.
    pub failed: u64,
    /// Scripts killed at the time limit.
    pub timed_out: u64,
    /// Runs after which processes left in the script's group were killed.
    pub leftovers_killed: u64,
    /// Runs refused: directory or script not owned by root, or writable by others.
    pub refused: u64,
    /// Jobs dropped because the queue was full (the oldest go first).
    pub dropped: u64,
}

struct Queue {
    jobs: VecDeque<(PathBuf, ScriptJob)>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Mutex<ScriptStats>,
    limits: Limits,
}

/// Runs HA scripts one at a time, in order, each under a time limit, logging their output.
pub struct ScriptRunner {
    shared: Arc<Shared>,
}

impl ScriptRunner {
    /// The daemon's runner, with the default limits.
    pub fn start() -> ScriptRunner {
        ScriptRunner::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> ScriptRunner {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            stats: Mutex::new(ScriptStats::default()),
            limits: Limits {
                queue: limits.queue.max(1),
                ..limits
            },
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("scripts".into())
            .spawn(move || worker_loop(&worker))
            .expect("spawning the script runner");
        ScriptRunner { shared }
    }

    /// Queues `job` (the script `dir/job.name`); never blocks.
    pub fn queue(&self, dir: PathBuf, job: ScriptJob) {
        let mut q = self.shared.queue.lock();
        if q.jobs.len() >= self.shared.limits.queue
            && let Some((_, old)) = q.jobs.pop_front()
        {
            let dropped = {
                let mut s = self.shared.stats.lock();
                s.dropped += 1;
                s.dropped
            };
            tracing::warn!(
                script = old.name,
                arg = old.arg.unwrap_or(""),
                dropped,
                "script queue full ({} waiting): the oldest script was dropped",
                self.shared.limits.queue
            );
        }
        q.jobs.push_back((dir, job));
        self.shared.wake.notify_one();
    }

    /// The counters, for `highavailability status` (not shown there yet: the HA glue is being
    /// rewritten; the warnings in the log carry the counts meanwhile).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn stats(&self) -> ScriptStats {
        *self.shared.stats.lock()
    }
}

impl Drop for ScriptRunner {
    /// Stops the runner thread after the script it is running (queued ones are dropped).
    fn drop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

fn worker_loop(shared: &Shared) {
    loop {
        let (dir, job) = {
            let mut q = shared.queue.lock();
            loop {
                if q.stop {
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                shared.wake.wait(&mut q);
            }
        };
        run_script(&dir, &job, &shared.limits, &shared.stats);
    }
}

/// Whether `meta` (of `path`, a `what`) is owned by root or by us and writable only by its
/// owner.
fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != 0 && meta.uid() != euid {
        bail!(
            "{what} {} is owned by uid {}: HA scripts run as root, so it must be owned by root",
            path.display(),
            meta.uid()
        );
    }
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and by everyone",
            (true, false) => "its group",
            _ => "everyone",
        };
        bail!(
            "{what} {} is writable by {who} (mode {mode:04o}): HA scripts run as root, so it must \
             be writable only by its owner (chmod go-w {})",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Checks a script directory: an absolute path to an existing directory owned by root and
/// writable only by it. Run at commit of `highavailability scripts DIR` and before each script.
pub fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_absolute() {
        bail!("script directory {} is not an absolute path", dir.display());
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| anyhow::anyhow!("script directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        bail!("script directory {} is not a directory", dir.display());
    }
    check_owner_and_mode(dir, &meta, "script directory")
}

/// Checks one script: `Ok(false)` when there is none (not an error: scripts are optional).
pub(crate) fn check_script(path: &Path) -> Result<bool> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => bail!("script {}: {e}", path.display()),
    };
    // A symbolic link is judged by what it points to.
    let meta = if link.file_type().is_symlink() {
        std::fs::metadata(path).map_err(|e| anyhow::anyhow!("script {}: {e}", path.display()))?
    } else {
        link
    };
    if !meta.is_file() {
        bail!("script {} is not a regular file", path.display());
    }
    check_owner_and_mode(path, &meta, "script")?;
    if meta.permissions().mode() & 0o100 == 0 {
        bail!(
            "script {} is not executable (chmod u+x {})",
            path.display(),
            path.display()
        );
    }
    Ok(true)
}

/// A pipe for the script's output: (read end, write end), both close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own. The write end is made blocking again below.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The script gets a normal (blocking) stdout; only our read end stays non-blocking.
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let flags = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    Ok((r, w))
}

/// Whether process `pid` (our child) has exited, without reaping it: while the zombie stays,
/// its pid, and so the process group id, cannot be reused.
fn has_exited(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; waitid writes it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; WNOWAIT leaves the child waitable.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r != 0 {
        // Not our child any more (ECHILD): nothing left to wait for.
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR);
    }
    // SAFETY: si_pid is valid for a WEXITED report, and zero when nothing changed.
    unsafe { info.si_pid() != 0 }
}

/// Live (non-zombie) processes of process group `pgid`, from /proc; `None` if /proc cannot
/// be read.
fn group_members(pgid: i32) -> Option<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue; // gone meanwhile
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid) && state != Some("Z") && state != Some("X") {
            n += 1;
        }
    }
    Some(n)
}

fn killpg(pgid: i32, sig: libc::c_int) {
    // SAFETY: killpg(2) has no memory effects.
    unsafe { libc::killpg(pgid, sig) };
}

/// Ends every process of group `pgid`: SIGTERM, then SIGKILL to whatever is left after
/// `grace`. Returns whether anything was there to end.
fn terminate_group(pgid: i32, grace: Duration) -> bool {
    if group_members(pgid) == Some(0) {
        return false;
    }
    killpg(pgid, libc::SIGTERM);
    killpg(pgid, libc::SIGCONT); // stopped processes must run to see SIGTERM
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if group_members(pgid) == Some(0) {
            return true;
        }
        std::thread::sleep(TICK);
    }
    killpg(pgid, libc::SIGKILL);
    true
}

/// The script's output, cut into log lines, bounded.
struct OutputLog {
    script: &'static str,
    partial: Vec<u8>,
    logged: usize,
    skipped: usize,
}

impl OutputLog {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&bytes[..i]);
                    self.line();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.take(bytes);
                    bytes = &[];
                }
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        let keep = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..keep]);
        self.skipped += bytes.len() - keep;
    }

    fn line(&mut self) {
        if self.logged + self.partial.len() <= MAX_OUTPUT {
            self.logged += self.partial.len();
            tracing::info!(
                script = self.script,
                "{}",
                String::from_utf8_lossy(&self.partial)
            );
        } else {
            self.skipped += self.partial.len();
        }
        self.partial.clear();
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.line();
        }
        if self.skipped > 0 {
            tracing::info!(
                script = self.script,
                "{} bytes of output not logged (lines over {MAX_LINE} bytes, or over {MAX_OUTPUT} bytes in all)",
                self.skipped
            );
        }
    }
}

/// Reads what the pipe holds now (at most `limit` bytes); returns false at end of file.
fn read_available(pipe: &mut std::fs::File, out: &mut OutputLog, limit: usize) -> bool {
    let mut buf = [0u8; 8192];
    let mut read = 0;
    while read < limit {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                read += n;
                out.feed(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // WouldBlock: nothing more for now
        }
    }
    true
}

fn wait_readable(fd: i32, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is a valid pollfd for the call.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().max(1) as libc::c_int) };
}

fn run_script(dir: &Path, job: &ScriptJob, limits: &Limits, stats: &Mutex<ScriptStats>) {
    let path = dir.join(job.name);
    let checked = check_dir(dir).and_then(|()| check_script(&path));
    match checked {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(script = %path.display(), "no such script: nothing to run");
            return;
        }
        Err(e) => {
            let refused = {
                let mut s = stats.lock();
                s.refused += 1;
                s.refused
            };
            tracing::warn!(refused, "script refused: {e:#}");
            return;
        }
    }
    let started = Instant::now();
    let spawned = pipe().and_then(|(r, w)| {
        let mut cmd = Command::new(&path);
        if let Some(a) = job.arg {
            cmd.arg(a);
        }
        cmd.envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(w.try_clone()?))
            .stderr(Stdio::from(w))
            .process_group(0);
        // `cmd` (and with it our copies of the write end) is dropped at the end of this
        // closure, so the pipe reaches end of file once the script's processes close it.
        let child = cmd.spawn()?;
        Ok((r, child))
    });
    let (read_end, mut child) = match spawned {
        Ok(x) => x,
        Err(e) => {
            stats.lock().failed += 1;
            tracing::warn!(script = %path.display(), error = %e, "could not run script");
            return;
        }
    };
    stats.lock().ran += 1;
    let pid = child.id() as i32;
    let fd = read_end.as_raw_fd();
    let mut pipe = std::fs::File::from(read_end);
    let mut out = OutputLog {
        script: job.name,
        partial: Vec::new(),
        logged: 0,
        skipped: 0,
    };
    let deadline = started + limits.time_limit;
    let mut open = true;
    let timed_out = loop {
        if has_exited(pid) {
            break false;
        }
        let now = Instant::now();
        if now >= deadline {
            break true;
        }
        let wait = TICK.min(deadline - now);
        if open {
            wait_readable(fd, wait);
            open = read_available(&mut pipe, &mut out, 64 * 1024);
        } else {
            std::thread::sleep(wait);
        }
    };
    // What the script wrote before it ended; then no more reading, whoever holds the pipe.
    if open {
        read_available(&mut pipe, &mut out, MAX_OUTPUT);
    }
    drop(pipe);
    out.finish();
    if timed_out {
        stats.lock().timed_out += 1;
        tracing::warn!(
            script = %path.display(),
            limit_s = limits.time_limit.as_secs_f64(),
            "script exceeded its time limit: its process group is killed"
        );
        terminate_group(pid, limits.grace);
        // Also if the script moved itself to another group.
        let _ = child.kill();
    } else if terminate_group(pid, limits.grace) {
        stats.lock().leftovers_killed += 1;
        tracing::warn!(
            script = %path.display(),
            "script left processes running in its process group: they were terminated \
             (detach long-running programs with setsid)"
        );
    }
    // The leader has exited or was sent SIGKILL: this returns at once.
    let status = child.wait().ok();
    if !status.is_some_and(|s| s.success()) {
        stats.lock().failed += 1;
    }
    tracing::info!(
        script = job.name,
        arg = job.arg.unwrap_or(""),
        status = ?status.map(|s| s.code()),
        took_ms = started.elapsed().as_millis() as u64,
        "script ran"
    );
}

#[cfg(test)]
#[path = "scripts_tests.rs"]
mod tests;
