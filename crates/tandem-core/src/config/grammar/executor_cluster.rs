//! `executor ...` and `cluster ...`.

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
const CLUSTER_VERBS: &[&str] = &["add", "remove", "report", "status"];

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
            Targets::List(clusters) => Command::ClusterAdd(clusters),
            Targets::All => {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "cluster",
                    command: "cluster add",
                });
            }
        },
        "remove" => Command::ClusterRemove(target),
        "report" => Command::ClusterReport(target),
        _ => Command::ClusterStatus(target),
    };
    w.end()?;
    Ok(cmd)
}
