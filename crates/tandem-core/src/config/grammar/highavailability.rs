//! `highavailability ...` and `manager reach set interval`.

use super::super::model::{Backup, Recovery, Role};
use super::syntax::HA_VERBS;
use super::words::{Words, parse_address, parse_path, parse_port, parse_seconds};
use super::{Command, ParseError};

const OFF_ON: &[&str] = &["off", "on"];
const ADD_DELETE: &[&str] = &["add", "delete"];
const ADD_SET_DELETE: &[&str] = &["add", "set", "delete"];
const BACKUP_SETTINGS: &[&str] = &["recovery"];
const START_STOP: &[&str] = &["start", "stop"];
const SET: &[&str] = &["set"];
const REACH_SETTINGS: &[&str] = &["interval"];
const ROLES: &[&str] = &["primary", "backup", "both"];
const RECOVERIES: &[&str] = &["auto", "manual"];

pub(super) fn parse_highavailability(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(&HA_VERBS)? {
        "heartbeat" => match w.keyword(ADD_DELETE)? {
            "add" => {
                let source = w.host_value("source address")?;
                let destination = w.host_value("destination address")?;
                if source.is_ipv4() != destination.is_ipv4() {
                    return Err(ParseError::Invalid(format!(
                        "heartbeat addresses {source} and {destination} must both be IPv4 or both IPv6"
                    )));
                }
                if source == destination {
                    return Err(ParseError::Invalid(format!(
                        "heartbeat source and destination are the same address {source}"
                    )));
                }
                Command::HaHeartbeatAdd {
                    source,
                    destination,
                }
            }
            _ => Command::HaHeartbeatDelete(w.host_value("address")?),
        },
        "reach" => match w.keyword(ADD_DELETE)? {
            "add" => Command::HaReachAdd(w.host_value("address")?),
            _ => Command::HaReachDelete(w.host_value("address")?),
        },
        "backup" => match w.keyword(ADD_SET_DELETE)? {
            "set" => {
                w.keyword(BACKUP_SETTINGS)?;
                Command::HaBackupRecovery(match w.keyword(RECOVERIES)? {
                    "auto" => Recovery::Auto,
                    _ => Recovery::Manual,
                })
            }
            "add" => {
                // `b` stays `backup` (as before `both` existed); `bo` is `both`.
                let role = match w.words.get(w.pos) {
                    Some(r) if r.eq_ignore_ascii_case("b") => {
                        w.pos += 1;
                        Role::Backup
                    }
                    _ => match w.keyword(ROLES)? {
                        "primary" => Role::Primary,
                        "backup" => Role::Backup,
                        _ => Role::Both,
                    },
                };
                let recovery = match w.keyword(RECOVERIES)? {
                    "auto" => Recovery::Auto,
                    _ => Recovery::Manual,
                };
                let port = parse_port(w.value("port")?)?;
                Command::HaBackupAdd(Backup {
                    role,
                    recovery,
                    port,
                })
            }
            _ => Command::HaBackupDelete,
        },
        "status" => Command::HaStatus,
        "takeover" => match w.next() {
            Some(word) => Command::HaTakeover(Some(parse_address(word)?)),
            None => Command::HaTakeover(None),
        },
        "key" => {
            let first = w.value("key file")?;
            if first.eq_ignore_ascii_case("generate") {
                Command::HaKeyGenerate(parse_path(w.value("key file")?, "key file")?)
            } else {
                Command::HaKey(parse_path(first, "key file")?)
            }
        }
        "scripts" => Command::HaScripts(parse_path(
            w.value("script directory")?,
            "script directory",
        )?),
        "sync" => Command::HaSync(w.keyword(OFF_ON)? == "on"),
        _ => match w.words.get(w.pos) {
            None => Command::HaMaintenance,
            Some(_) => Command::HaMaintenanceMode(w.keyword(START_STOP)? == "start"),
        },
    };
    w.end()?;
    Ok(cmd)
}

/// `manager reach set interval SECONDS`, after `manager reach`.
pub(super) fn parse_reach(w: &mut Words<'_>) -> Result<Command, ParseError> {
    w.keyword(SET)?;
    w.keyword(REACH_SETTINGS)?; // interval
    let seconds = parse_seconds(w.value("seconds")?, "interval")?;
    w.end()?;
    Ok(Command::ManagerReachInterval(seconds))
}
