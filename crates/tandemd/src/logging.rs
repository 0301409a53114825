//! The daemon's log: `tracing` to journald (under systemd) or to stderr, with a level that
//! `executor set loglevel` changes at runtime (docs/operations.md, "Logs").
//!
//! * `--log-target auto` (the default) writes to journald when stderr is the journal stream
//!   systemd gave the service (`JOURNAL_STREAM` names stderr's device and inode), to stderr
//!   otherwise; `journald` and `stderr` force one. journald's fields: the message, the level
//!   as `PRIORITY`, `TARGET`, and the fields of the event and its spans.
//! * The start level is `TANDEM_LOG` (a `tracing` filter such as `debug` or
//!   `info,tandemd::ha=debug`), else `info`. A configuration change of `executor loglevel`
//!   (in the start file or later) replaces it with that level; a configuration that leaves
//!   `loglevel` at its default keeps `TANDEM_LOG`'s filter.
//! * Spans: `command{words, uid, pid}` around every admin command, `transition{from, to,
//!   cause}` around the log line of every HA transition.
//!
//! The HA log files (`halog.rs`) are written as before, whatever the target.

use std::sync::OnceLock;
use tandem_core::config::LogLevel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Where the log goes (`--log-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// journald when stderr is the journal stream systemd gave (JOURNAL_STREAM), else stderr.
    Auto,
    Journald,
    Stderr,
}

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`) names the file open on stderr.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on descriptor 2 into a zeroed stat of the right type.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}

/// Installs the subscriber; returns where the log goes ("journald" or "stderr").
pub fn init(target: Target) -> &'static str {
    let start = EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(start);
    let _ = FILTER.set(handle);
    let want_journal = match target {
        Target::Journald => true,
        Target::Stderr => false,
        Target::Auto => stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()),
    };
    let (journal, failed) = if want_journal {
        match tracing_journald::layer() {
            Ok(l) => (Some(l.with_syslog_identifier("tandemd".into())), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only on a terminal, never in a log file or the journal.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let chosen = if journal.is_some() {
        "journald"
    } else {
        "stderr"
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .init();
    if let Some(e) = failed {
        tracing::warn!(error = %e, "no journald socket: logging to stderr");
    }
    chosen
}

/// `executor set loglevel`: called by a commit with the running and the new level; acts only
/// on a change (so `TANDEM_LOG` holds until a configuration sets a level of its own).
pub fn apply_loglevel(running: LogLevel, new: LogLevel) {
    if running == new {
        return;
    }
    let Some(handle) = FILTER.get() else { return };
    match handle.reload(EnvFilter::new(new.word())) {
        Ok(()) => tracing::info!(from = running.word(), to = new.word(), "log level changed"),
        Err(e) => eprintln!("tandemd: changing the log level: {e}"),
    }
}

/// The span around one admin command.
pub fn command_span(words: &[String], origin: &crate::halog::Origin) -> tracing::Span {
    let (uid, pid) = match origin {
        crate::halog::Origin::Admin { uid, pid } => (Some(*uid), Some(*pid)),
        crate::halog::Origin::Internal => (None, None),
    };
    tracing::info_span!("command", words = %words.join(" "), uid, pid)
}

/// The span around the log line of the HA transition just made (the machine's newest).
pub fn transition_span(
    machine: &tandem_core::ha::Machine,
    now: std::time::Instant,
) -> tracing::Span {
    match machine.status(now).transitions.first() {
        Some(t) => tracing::info_span!(
            "transition",
            from = %t.from,
            to = %t.to,
            cause = %t.reason
        ),
        None => tracing::Span::none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:x")));
        // The real device and inode of stderr match; one off does not.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(2, &mut st) }, 0);
        assert!(stderr_is_journal(Some(&format!(
            "{}:{}",
            st.st_dev, st.st_ino
        ))));
        assert!(!stderr_is_journal(Some(&format!(
            "{}:{}",
            st.st_dev,
            st.st_ino + 1
        ))));
    }
}
