//! Processes spawned inside lab hosts.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lab::Shared;

/// A process started by [`crate::Host::spawn`] inside a host's namespace.
///
/// It leads its own process group; its stdout and stderr go to a log file under the lab's
/// temporary directory ([`LabProcess::log_path`]). Dropping it SIGKILLs the whole group and
/// reaps it; dropping the [`crate::Lab`] kills it too.
pub struct LabProcess {
    child: Child,
    pid: i32,
    label: String,
    log: PathBuf,
    lab: Arc<Shared>,
    status: Option<ExitStatus>,
}

impl std::fmt::Debug for LabProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabProcess")
            .field("pid", &self.pid)
            .field("label", &self.label)
            .field("log", &self.log)
            .field("status", &self.status)
            .finish()
    }
}

fn killpg(pgid: i32, sig: libc::c_int) {
    // SAFETY: killpg(2) has no memory effects.
    unsafe { libc::killpg(pgid, sig) };
}

impl LabProcess {
    pub(crate) fn new(child: Child, label: String, log: PathBuf, lab: Arc<Shared>) -> Self {
        let pid = child.id() as i32;
        LabProcess {
            child,
            pid,
            label,
            log,
            lab,
            status: None,
        }
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// `<host>-<program>-<n>`, also the stem of the log file's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file collecting stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process printed so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs. When the
    /// leader has exited, the rest of its process group is killed before it is reaped.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        // SAFETY: waitid with WNOWAIT only inspects our own child; a zeroed siginfo_t is valid.
        let exited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if rc != 0 {
                return Err(std::io::Error::last_os_error()).context("waitid");
            }
            info.si_pid() != 0
        };
        if !exited {
            return Ok(None);
        }
        // The leader is a zombie, so the group id cannot have been reused: kill stragglers.
        killpg(self.pid, libc::SIGKILL);
        self.reap().map(Some)
    }

    fn reap(&mut self) -> Result<ExitStatus> {
        let status = self.child.wait().context("waiting for child")?;
        self.status = Some(status);
        self.lab.forget_pgid(self.pid);
        Ok(status)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_status(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the process to exit; an error if it does not.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.wait_timeout(timeout)? {
            Some(status) => Ok(status),
            None => bail!(
                "{} still running after {timeout:?}; log:\n{}",
                self.label,
                tail(&self.log(), 40)
            ),
        }
    }

    /// Waits until the log contains `needle` (e.g. the `ready` line of `tandem-lab serve`).
    /// Fails early, quoting the log, if the process exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_status()? {
                if self.log().contains(needle) {
                    return Ok(());
                }
                bail!(
                    "{} exited ({status}) before printing {needle:?}; log:\n{}",
                    self.label,
                    tail(&self.log(), 40)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not print {needle:?} within {timeout:?}; log:\n{}",
                    self.label,
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the whole process group.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        if self.status.is_some() {
            bail!("{} has already exited", self.label);
        }
        // SAFETY: killpg(2) has no memory effects; the group is ours while the leader is unreaped.
        if unsafe { libc::killpg(self.pid, sig) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("signalling {}", self.label));
        }
        Ok(())
    }

    /// Graceful stop: SIGTERM to the group, then SIGKILL if it has not exited after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        killpg(self.pid, libc::SIGTERM);
        match self.wait_timeout(grace)? {
            Some(status) => Ok(status),
            None => self.kill(),
        }
    }

    /// SIGKILLs the group and reaps the process.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        killpg(self.pid, libc::SIGKILL);
        self.reap()
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill();
        }
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
