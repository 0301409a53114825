//! What is shared between the two nodes and what is node-local.
//!
//! Node-local statements are never synced: `executor start|stop`, `executor set nfa|packetio|metrics|loglevel`, and
//! `highavailability heartbeat|backup|key|scripts|sync ...`. Everything else is shared
//! (hatimeout, reach targets, clusters, ports, servers, manager, advisors, SASP).

use crate::config::{Command, Config, ExecutorSetting, FileError, load_file};

/// Whether a command is node-local (never synced, allowed on a follower).
pub fn is_node_local(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ExecutorStart
            | Command::ExecutorStop
            | Command::ExecutorSet(ExecutorSetting::Nfa(_))
            | Command::ExecutorSet(ExecutorSetting::PacketIo(_))
            | Command::ExecutorSet(ExecutorSetting::Metrics(_))
            | Command::ExecutorSet(ExecutorSetting::LogLevel(_))
            | Command::HaHeartbeatAdd { .. }
            | Command::HaHeartbeatDelete(_)
            | Command::HaBackupAdd(_)
            | Command::HaBackupDelete
            | Command::HaBackupRecovery(_)
            | Command::HaKey(_)
            | Command::HaKeyGenerate(_)
            | Command::HaScripts(_)
            | Command::HaMaintenanceMode(_)
            | Command::HaSync(_)
            | Command::Ha(_)
    )
}

/// The shared part of a configuration, as canonical command lines in `file save` order.
pub fn shared_lines(cfg: &Config) -> Vec<String> {
    cfg.saved_commands()
        .iter()
        .filter(|c| !is_node_local(c))
        .map(Command::to_string)
        .collect()
}

/// The node-local part, as canonical command lines.
pub fn local_lines(cfg: &Config) -> Vec<String> {
    cfg.saved_commands()
        .iter()
        .filter(|c| is_node_local(c))
        .map(Command::to_string)
        .collect()
}

/// The shared text: [`shared_lines`], one per line.
pub fn shared_text(cfg: &Config) -> String {
    let mut s = shared_lines(cfg).join("\n");
    s.push('\n');
    s
}

/// The digest of a shared text (xxh3).
pub fn digest_of(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// The digest the pair compares (heartbeats) and the change log records: of the shared part
/// exactly.
pub fn shared_digest(cfg: &Config) -> u64 {
    digest_of(&shared_text(cfg))
}

/// The configuration a follower would run after receiving `lines`: with `replace`, the
/// shared part becomes `lines` and the node-local statements of `current` stay; otherwise
/// the lines apply on top of `current`. All or nothing: an error changes nothing.
pub fn candidate(current: &Config, replace: bool, lines: &[&str]) -> Result<Config, FileError> {
    if replace {
        let mut text = local_lines(current).join("\n");
        text.push('\n');
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        load_file(&text, "configuration sync", &Config::default())
    } else {
        let text = lines.join("\n");
        load_file(&text, "configuration sync", current)
    }
}

/// The first statement in which two shared texts differ, for status: `line N: partner has
/// `…`, this node has `…``.
pub fn first_difference(mine: &str, partner: &str) -> Option<String> {
    let a: Vec<&str> = mine.lines().collect();
    let b: Vec<&str> = partner.lines().collect();
    let n = a.len().max(b.len());
    (0..n).find_map(|i| {
        let (x, y) = (a.get(i), b.get(i));
        if x == y {
            return None;
        }
        let show = |l: Option<&&str>| l.map_or("nothing".to_string(), |l| format!("`{l}`"));
        Some(format!(
            "line {}: partner has {}, this node has {}",
            i + 1,
            show(y),
            show(x)
        ))
    })
}
