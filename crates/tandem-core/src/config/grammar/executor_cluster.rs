//! `executor ...` and `cluster ...` (with the manager's proportions).

use super::super::health::Proportions;
use super::targets::{Targets, parse_cluster_target};
use super::words::{Words, parse_number, parse_seconds};
use super::{Command, ParseError};
use serde::Serialize;
use std::net::IpAddr;

/// `executor set ...`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorSetting {
    /// `nfa ADDR`: the non-forwarding address of this node.
    Nfa(IpAddr),
    /// `clientgateway ADDR`: the router towards clients (NAT).
    ClientGateway(IpAddr),
    /// `hatimeout SECONDS`: heartbeat timeout.
    HaTimeout(f64),
    /// `maxconnections N|auto`: the bound of the connection and affinity tables (`None`:
    /// `auto`, derived from the machine's memory).
    MaxConnections(Option<u64>),
    /// `syntimeout SECONDS`: lifetime of a TCP record before the client's first ACK.
    SynTimeout(u32),
}

const EXECUTOR_VERBS: &[&str] = &["start", "stop", "status", "report", "set"];
const EXECUTOR_SETTINGS: &[&str] = &[
    "nfa",
    "clientgateway",
    "hatimeout",
    "maxconnections",
    "syntimeout",
];
const CLUSTER_VERBS: &[&str] = &["add", "set", "remove", "report", "status"];
const CLUSTER_OPTIONS: &[&str] = &["proportions", "primaryhost"];

pub(super) fn parse_executor(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(EXECUTOR_VERBS)? {
        "start" => Command::ExecutorStart,
        "stop" => Command::ExecutorStop,
        "status" => Command::ExecutorStatus,
        "report" => Command::ExecutorReport,
        _ => Command::ExecutorSet(match w.keyword(EXECUTOR_SETTINGS)? {
            "nfa" => ExecutorSetting::Nfa(w.address("address")?),
            "clientgateway" => ExecutorSetting::ClientGateway(w.address("address")?),
            "hatimeout" => {
                ExecutorSetting::HaTimeout(parse_seconds(w.value("seconds")?, "hatimeout")?)
            }
            "maxconnections" => {
                let word = w.value("number")?;
                ExecutorSetting::MaxConnections(if word.eq_ignore_ascii_case("auto") {
                    None
                } else {
                    Some(parse_number(
                        word,
                        "maxconnections",
                        1,
                        crate::config::model::MAX_MAXCONNECTIONS,
                        "1-1073741824 or auto",
                    )?)
                })
            }
            _ => ExecutorSetting::SynTimeout(parse_number(
                w.value("seconds")?,
                "syntimeout",
                1,
                u64::from(crate::config::model::MAX_SYNTIMEOUT),
                "1-3600",
            )? as u32),
        }),
    };
    w.end()?;
    Ok(cmd)
}

pub(super) fn parse_cluster(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(CLUSTER_VERBS)?;
    let word = w.value("cluster")?;
    let target = parse_cluster_target(word)?;
    let cmd = match verb {
        "add" => match target {
            Targets::List(clusters) => {
                let (mut proportions, mut primaryhost) = (None, None);
                while w.words.get(w.pos).is_some() {
                    let option = w.keyword(CLUSTER_OPTIONS)?;
                    let seen = match option {
                        "proportions" => proportions.replace(parse_proportions(w)?).is_some(),
                        _ => primaryhost.replace(w.address("primaryhost")?).is_some(),
                    };
                    if seen {
                        return Err(ParseError::Invalid(format!(
                            "option '{option}' given twice"
                        )));
                    }
                }
                Command::ClusterAdd {
                    clusters,
                    proportions,
                    primaryhost,
                }
            }
            Targets::All => {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "cluster",
                    command: "cluster add",
                });
            }
        },
        "set" => match w.keyword(CLUSTER_OPTIONS)? {
            "proportions" => Command::ClusterSetProportions {
                clusters: target,
                proportions: parse_proportions(w)?,
            },
            _ => Command::ClusterSetPrimaryHost {
                clusters: target,
                primaryhost: w.address("primaryhost")?,
            },
        },
        "remove" => Command::ClusterRemove(target),
        "report" => Command::ClusterReport(target),
        _ => Command::ClusterStatus(target),
    };
    w.end()?;
    Ok(cmd)
}

/// `ACTIVE NEW PORT SYSTEM`: four percentages that add up to 100.
fn parse_proportions(w: &mut Words<'_>) -> Result<Proportions, ParseError> {
    let mut values = [0u32; 4];
    for (value, what) in values.iter_mut().zip(["active", "new", "port", "system"]) {
        *value = parse_number(w.value(what)?, what, 0, 100, "0-100")? as u32;
    }
    let [active, new, port, system] = values;
    let p = Proportions {
        active,
        new,
        port,
        system,
    };
    check_proportions(&p).map_err(ParseError::Invalid)?;
    Ok(p)
}

/// Each proportion 0-100, and they add up to 100.
pub(crate) fn check_proportions(p: &Proportions) -> Result<(), String> {
    let all = [p.active, p.new, p.port, p.system];
    if let Some(v) = all.iter().find(|v| **v > 100) {
        return Err(format!("proportion {v} out of range 0-100"));
    }
    let sum: u32 = all.iter().sum();
    if sum != 100 {
        return Err(format!(
            "proportions {} {} {} {} add up to {sum} (they must add up to 100)",
            p.active, p.new, p.port, p.system
        ));
    }
    Ok(())
}
