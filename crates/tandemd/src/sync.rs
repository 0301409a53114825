//! Configuration sync, the daemon's side (a child of `node.rs`): what a commit records, the
//! refusal of shared changes on a follower, applying what the partner sends (all or nothing,
//! through the one commit path), the discarded-changes file, and the status section. The
//! protocol itself is sans IO in `tandem_core::sync`; see `docs/config-sync.md`.

use super::{Node, State};
use anyhow::{Result, anyhow};
use std::time::Instant;
use tandem_core::config::{Command, Config};
use tandem_core::sync::{self, Apply, Origin};

/// The origin of a command's change: its canonical line.
pub(super) fn command_origin(cmd: &Command) -> Origin {
    Origin::Command(cmd.to_string())
}

impl Node {
    /// Before a commit: a follower refuses a change of the shared configuration (anything
    /// but an entry from the partner). Node-local statements pass.
    pub(super) fn sync_gate(
        &self,
        st: &mut State,
        new: &Config,
        origin: Option<&Origin>,
    ) -> Result<()> {
        if origin == Some(&Origin::Synced) {
            return Ok(());
        }
        let now = Instant::now();
        if !st
            .ha
            .node
            .sync_status(now)
            .role
            .is_some_and(|r| r == sync::Role::Follower)
        {
            return Ok(());
        }
        if sync::shared_digest(new) == sync::shared_digest(&st.config) {
            return Ok(());
        }
        match st.ha.node.sync_refusal(now) {
            Some(message) => Err(anyhow!(message)),
            None => Ok(()),
        }
    }

    /// An entry (or the full configuration) from the partner: applied to a copy, checked
    /// against the source's digest, committed; or reported as failed (nothing changes).
    pub(super) fn sync_apply(&self, st: &mut State, now: Instant, apply: Apply) {
        let lines = apply.lines();
        let candidate = sync::candidate(&st.config, apply.replace, &lines)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let d = sync::shared_digest(&c);
                if d == apply.digest_after {
                    Ok(c)
                } else {
                    Err(format!(
                        "the result's digest {d:016x} is not the source's {:016x}",
                        apply.digest_after
                    ))
                }
            });
        let result = candidate.and_then(|new| {
            st.origin = Some(Origin::Synced);
            self.commit(st, new).map_err(|e| format!("{e:#}"))
        });
        if let Err(e) = result {
            st.origin = None;
            st.ha.node.clear_change_origin();
            st.ha.node.sync_apply_failed(now, e);
        }
    }

    /// A full sync replaced changes made here alone: they go to a file, never lost silently.
    pub(super) fn sync_discarded(&self, st: &mut State, now: Instant, text: String) {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("sync-discarded-{unix}.cfg");
        let note = match self.opts.config_dir.save(&name, &text) {
            Ok(path) => format!(
                "configuration sync replaced changes made on this node alone; they are kept in {}",
                path.display()
            ),
            Err(e) => format!(
                "configuration sync replaced changes made on this node alone, and writing them to {name} failed: {e:#}"
            ),
        };
        tracing::warn!("{note}");
        st.ha.event(now, note);
    }
}

/// The text section of `highavailability status` for `data["sync"]`.
pub fn status_text(v: &serde_json::Value) -> String {
    let s = |k: &str| {
        v.get(k)
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::from("Configuration sync\n");
    let mut line = |k: &str, val: String| out.push_str(&format!("  {k:.<30} {val}\n"));
    line("State", s("state"));
    line(
        "Change (applied / source head)",
        format!("{} / {}", s("applied"), s("head")),
    );
    line("Lineage", s("lineage"));
    if !v["stopped_at"].is_null() {
        line("Stopped at change", s("stopped_at"));
    }
    if !v["transfer"].is_null() {
        line("Transfer", s("transfer"));
    }
    if !v["first_difference"].is_null() {
        line("First difference", s("first_difference"));
    }
    if !v["note"].is_null() {
        line("Note", s("note"));
    }
    if !v["last_error"].is_null() {
        line("Last error", s("last_error"));
    }
    let c = &v["counters"];
    line(
        "Entries sent / applied",
        format!("{} / {}", c["entries_sent"], c["entries_applied"]),
    );
    line(
        "Full syncs served / applied",
        format!("{} / {}", c["full_syncs_sent"], c["full_syncs"]),
    );
    line(
        "Retransmits / refused",
        format!("{} / {}", c["retransmits"], c["refused"]),
    );
    out
}
