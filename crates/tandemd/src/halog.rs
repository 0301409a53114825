//! The HA logs of the log directory (`tandemd --log-dir DIR`, default `/var/log/tandem`), as
//! the Workload Deployer appliance keeps them, and the audit of changing commands.
//!
//! * `ha.log`: all HA activity, one line each, an RFC 3339 UTC timestamp first: every line of
//!   the takeover timeline (`HaShell::event`: state transitions, partner found or lost,
//!   synchronisations...), every HA command (`highavailability ...`, `ha ...`) with who gave
//!   it and its result. Rotated by size: past [`MAX_LOG_BYTES`] it becomes `ha.log.1` (the
//!   older ones shift up to `ha.log.3`, the oldest goes), so the logs never hold more than
//!   about 4 MiB.
//! * `ha.out`: the output of the last HA command given on the admin socket (replaced
//!   atomically: written to a temporary file, then renamed).
//! * `ha.result`: its result, `success` or `error: MESSAGE`, then the command line, who gave
//!   it and when (replaced atomically too).
//!
//! A write that fails (disk full, directory removed) is counted ([`HaLog::failures`]) and
//! warned about once; the node goes on. The next write tries again (a directory removed is
//! created again).
//!
//! The audit: every changing command (a configuration change or an action such as a
//! takeover) that comes from the admin socket is logged to tracing with target
//! `tandem::audit`: the peer's uid and pid (`SO_PEERCRED`), the command line, `ok` or the
//! error. HA commands go to `ha.log` as well.

use crate::node::Reply;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tandem_core::config::{self, Command};

/// `--log-dir` unless told otherwise.
pub const DEFAULT_LOG_DIR: &str = "/var/log/tandem";
/// Size past which `ha.log` is rotated.
pub const MAX_LOG_BYTES: u64 = 1 << 20;
/// Rotated logs kept (`ha.log.1` … `ha.log.3`).
pub const KEEP: usize = 3;
/// Bytes of a command's output kept in `ha.out` (the rest is cut, and the cut said).
pub const MAX_OUT_BYTES: usize = 1 << 20;

/// Who gave a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client of the admin socket, by its credentials (`SO_PEERCRED`).
    Admin { uid: u32, pid: i32 },
    /// The daemon itself (diagnostics reading status, other internal queries): not audited
    /// and never written to `ha.out`.
    Internal,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Admin { uid, pid } => write!(f, "uid {uid} pid {pid}"),
            Origin::Internal => f.write_str("tandemd"),
        }
    }
}

/// The log directory and its files.
pub struct HaLog {
    dir: PathBuf,
    log: Mutex<Option<(File, u64)>>,
    failures: AtomicU64,
    max_bytes: u64,
}

impl HaLog {
    /// The logs of `dir` (created, mode 0750, at the first write if missing).
    pub fn new(dir: impl Into<PathBuf>) -> HaLog {
        HaLog::with_limit(dir, MAX_LOG_BYTES)
    }

    /// As [`HaLog::new`], rotating past `max_bytes` (tests use a small one).
    pub fn with_limit(dir: impl Into<PathBuf>, max_bytes: u64) -> HaLog {
        HaLog {
            dir: dir.into(),
            log: Mutex::new(None),
            failures: AtomicU64::new(0),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Writes that failed since the start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The log files that exist, newest first: `ha.log`, `ha.log.1`, …, `ha.out`, `ha.result`.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut names = vec!["ha.log".to_string()];
        names.extend((1..=KEEP).map(|n| format!("ha.log.{n}")));
        names.push("ha.out".into());
        names.push("ha.result".into());
        names
            .into_iter()
            .map(|n| self.dir.join(n))
            .filter(|p| p.is_file())
            .collect()
    }

    /// Appends one line to `ha.log`, timestamp first.
    pub fn append(&self, text: &str) {
        let mut line = format!("{} ", rfc3339(SystemTime::now()));
        // One line each: a multi-line text keeps its lines, indented.
        line.push_str(&text.trim_end().replace('\n', "\n    "));
        line.push('\n');
        let mut log = self.log.lock();
        let r = self.append_locked(&mut log, line.as_bytes());
        if let Err(e) = r {
            *log = None;
            self.failed("ha.log", &e);
        }
    }

    fn append_locked(&self, log: &mut Option<(File, u64)>, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join("ha.log");
        // Reopened when the file went (rotated by hand, directory removed).
        if log.is_some() && !path.exists() {
            *log = None;
        }
        if log
            .as_ref()
            .is_some_and(|(_, size)| *size > 0 && size + bytes.len() as u64 > self.max_bytes)
        {
            *log = None;
            self.rotate()?;
        }
        if log.is_none() {
            self.make_dir()?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&path)?;
            let size = f.metadata()?.len();
            *log = Some((f, size));
            if size > 0 && size + bytes.len() as u64 > self.max_bytes {
                *log = None;
                self.rotate()?;
                return self.append_locked(log, bytes);
            }
        }
        let Some((f, size)) = log.as_mut() else {
            return Ok(());
        };
        f.write_all(bytes)?;
        *size += bytes.len() as u64;
        Ok(())
    }

    /// `ha.log.2` → `ha.log.3`, `ha.log.1` → `ha.log.2`, `ha.log` → `ha.log.1`.
    fn rotate(&self) -> std::io::Result<()> {
        let name = |n: usize| match n {
            0 => self.dir.join("ha.log"),
            n => self.dir.join(format!("ha.log.{n}")),
        };
        for n in (0..KEEP).rev() {
            match std::fs::rename(name(n), name(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn make_dir(&self) -> std::io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&self.dir)
    }

    /// Replaces `ha.out` and `ha.result` for the HA command `line` given by `origin`.
    pub fn last_command(&self, line: &str, origin: &Origin, reply: &Reply) {
        let mut out = reply.output.clone();
        if out.len() > MAX_OUT_BYTES {
            let mut cut = MAX_OUT_BYTES;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("\n[output cut]\n");
        }
        let result = format!(
            "{}\ncommand: {line}\nby: {origin}\ntime: {}\n",
            result_word(reply),
            rfc3339(SystemTime::now())
        );
        for (name, text) in [("ha.out", out), ("ha.result", result)] {
            if let Err(e) = self.replace(name, text.as_bytes()) {
                self.failed(name, &e);
            }
        }
    }

    /// Writes `name` atomically: a temporary file in the directory, then a rename.
    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.make_dir()?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join(name))
    }

    fn failed(&self, what: &str, e: &std::io::Error) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            tracing::warn!(
                error = %e,
                dir = %self.dir.display(),
                "cannot write {what} in the log directory (counted; warned once): the node goes on"
            );
        }
    }
}

/// `success` or `error: MESSAGE`.
fn result_word(reply: &Reply) -> String {
    if reply.ok {
        "success".into()
    } else {
        format!("error: {}", reply.error)
    }
}

static LOG: OnceLock<HaLog> = OnceLock::new();

/// Installs the daemon's log directory (once, at start). Without it nothing is written (unit
/// tests of other modules).
pub fn install(dir: &Path) {
    let _ = LOG.set(HaLog::new(dir));
}

/// The daemon's logs, if installed.
pub fn get() -> Option<&'static HaLog> {
    LOG.get()
}

/// A line of HA activity (the takeover timeline's lines come here).
pub fn event(text: &str) {
    if let Some(log) = get() {
        log.append(text);
    }
}

/// What is logged about a command once it has run: the audit (changing commands), `ha.log`
/// (HA commands), `ha.out` and `ha.result` (HA commands from the admin socket).
pub fn after_command(origin: &Origin, words: &[String], reply: &Reply) {
    if *origin == Origin::Internal {
        return;
    }
    let line = words.join(" ");
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let cmd = config::parse_words(&refs).ok().flatten();
    let (changing, ha) = classify(cmd.as_ref(), words);
    if changing {
        let Origin::Admin { uid, pid } = *origin else {
            return;
        };
        if reply.ok {
            tracing::info!(target: "tandem::audit", uid, pid, command = %line, "ok");
        } else {
            tracing::info!(target: "tandem::audit", uid, pid, command = %line, error = %reply.error, "refused");
        }
    }
    if ha && let Some(log) = get() {
        log.append(&format!(
            "command by {origin}: {line}: {}",
            result_word(reply)
        ));
        log.last_command(&line, origin, reply);
    }
}

/// Whether a command changes something (a configuration change or an action), and whether it
/// is an HA command. Words the grammar does not know (yet) count as changing (a refused
/// unknown command is audited too); they are HA commands when their first word abbreviates
/// `highavailability` or is `ha`.
pub fn classify(cmd: Option<&Command>, words: &[String]) -> (bool, bool) {
    match cmd {
        Some(cmd) => {
            let action = matches!(
                cmd,
                Command::HaTakeover(_)
                    | Command::HaMaintenanceMode(_)
                    | Command::HaKeyGenerate(_)
                    | Command::Diagnostics(_)
                    | Command::FileSave { .. }
                    | Command::FileNewLoad(_)
                    | Command::FileAppendLoad(_)
                    | Command::FileDelete(_)
                    | Command::Ha(_)
            );
            let text = cmd.to_string();
            (
                cmd.is_mutation() || action,
                text.starts_with("highavailability ") || text.starts_with("ha "),
            )
        }
        None => {
            let first = words.first().map(|w| w.to_ascii_lowercase());
            let ha = first.is_some_and(|w| {
                w == "ha" || (w.len() >= 2 && "highavailability".starts_with(w.as_str()))
            });
            (true, ha)
        }
    }
}

/// `2026-12-02T03:04:05.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
#[path = "halog_tests.rs"]
mod tests;
