//! `executor ...` and `cluster ...` (with the manager's proportions).

use super::super::health::Proportions;
use super::super::model::{LogLevel, PacketIo, PortDefaults};
use super::syntax::{CLUSTER_VERBS, EXECUTOR_VERBS};
use super::targets::{Targets, cluster_target_in};
use super::words::{
    Words, match_keyword, parse_label, parse_number, parse_seconds, parse_u32, set_once,
};
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
    /// `fintimeout SECONDS`: how long a closed (FIN/RST) connection record is kept.
    FinTimeout(u32),
    /// `staletimeout SECONDS`: default staletimeout of ports added later (IBM classic).
    StaleTimeout(u32),
    /// `stickytime SECONDS`: default stickytime of ports added later (IBM classic).
    StickyTime(u32),
    /// `packetio auto|afxdp|afpacket`: the data plane's packet I/O backend (node-local).
    PacketIo(PacketIo),
    /// `metrics ADDR:PORT|off`: where the metrics and status page are served (node-local;
    /// `None`: off).
    Metrics(Option<std::net::SocketAddr>),
    /// `loglevel error|warn|info|debug|trace`: the daemon's log level (node-local).
    LogLevel(LogLevel),
}

/// Largest `executor set fintimeout`, seconds.
pub const MAX_FINTIMEOUT: u32 = 3600;

const EXECUTOR_SETTINGS: &[&str] = &[
    "nfa",
    "clientgateway",
    "hatimeout",
    "maxconnections",
    "syntimeout",
    "fintimeout",
    "staletimeout",
    "stickytime",
    "packetio",
    "metrics",
    "loglevel",
];
const LOGLEVEL_WORDS: &[&str] = &["error", "warn", "info", "debug", "trace"];
const PACKETIO_WORDS: &[&str] = &["auto", "afxdp", "afpacket"];
const CLUSTER_ADD_OPTIONS: &[&str] = &[
    "address",
    "label",
    "primaryhost",
    "proportions",
    "staletimeout",
    "stickytime",
    "weightbound",
];
const CLUSTER_SET_OPTIONS: &[&str] = &[
    "label",
    "primaryhost",
    "proportions",
    "staletimeout",
    "stickytime",
    "weightbound",
];

pub(super) fn parse_executor(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(&EXECUTOR_VERBS)? {
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
            "fintimeout" => ExecutorSetting::FinTimeout(parse_number(
                w.value("seconds")?,
                "fintimeout",
                1,
                u64::from(MAX_FINTIMEOUT),
                "1-3600",
            )? as u32),
            "staletimeout" => ExecutorSetting::StaleTimeout(parse_u32(
                w.value("seconds")?,
                "staletimeout",
                1,
                "1-4294967295",
            )?),
            "stickytime" => ExecutorSetting::StickyTime(parse_u32(
                w.value("seconds")?,
                "stickytime",
                0,
                "0-4294967295",
            )?),
            "packetio" => ExecutorSetting::PacketIo(match w.keyword(PACKETIO_WORDS)? {
                "auto" => PacketIo::Auto,
                "afxdp" => PacketIo::Afxdp,
                _ => PacketIo::Afpacket,
            }),
            "metrics" => ExecutorSetting::Metrics(parse_metrics(w.value("ADDR:PORT or off")?)?),
            "loglevel" => ExecutorSetting::LogLevel(
                LogLevel::from_word(w.keyword(LOGLEVEL_WORDS)?).expect("a LOGLEVEL_WORDS word"),
            ),
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

/// `executor set metrics ADDR:PORT|off`: `off` (any case) is `None`; an IPv6 address is
/// bracketed (`[2001:db8::1]:9100`); port 0 is refused (the page needs a known port).
fn parse_metrics(word: &str) -> Result<Option<std::net::SocketAddr>, ParseError> {
    if word.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = word.parse().map_err(|_| ParseError::BadTarget {
        word: word.to_string(),
        expected: "ADDR:PORT (IPv6 as [ADDR]:PORT) or off",
    })?;
    if addr.port() == 0 {
        return Err(ParseError::OutOfRange {
            what: "metrics port",
            value: "0".to_string(),
            range: "1-65535",
        });
    }
    Ok(Some(addr))
}

/// The options of `cluster add` / `cluster set`.
#[derive(Default)]
struct ClusterOptions {
    address: Option<std::net::IpAddr>,
    proportions: Option<Proportions>,
    primaryhost: Option<std::net::IpAddr>,
    label: Option<String>,
    defaults: PortDefaults,
}

fn parse_cluster_options(w: &mut Words<'_>, add: bool) -> Result<ClusterOptions, ParseError> {
    let mut o = ClusterOptions::default();
    let choices = if add {
        CLUSTER_ADD_OPTIONS
    } else {
        CLUSTER_SET_OPTIONS
    };
    while let Some(word) = w.next() {
        let name = match match_keyword(word, choices) {
            Ok(name) => name,
            Err(e) => {
                if !add && let Ok("address") = match_keyword(word, CLUSTER_ADD_OPTIONS) {
                    return Err(ParseError::OptionNotAllowed {
                        option: "address",
                        command: "cluster set",
                        reason: "a cluster's address is given at cluster add",
                    });
                }
                return Err(e);
            }
        };
        match name {
            "address" => {
                let a = w.address("address")?;
                set_once(&mut o.address, name, a)?;
            }
            "proportions" => {
                let p = parse_proportions(w)?;
                set_once(&mut o.proportions, name, p)?;
            }
            "primaryhost" => {
                let a = w.address("primaryhost")?;
                set_once(&mut o.primaryhost, name, a)?;
            }
            "label" => {
                let v = parse_label(w.value("\"text\"")?)?;
                set_once(&mut o.label, name, v)?;
            }
            "staletimeout" => {
                let v = parse_u32(w.value("seconds")?, name, 1, "1-4294967295")?;
                set_once(&mut o.defaults.staletimeout, name, v)?;
            }
            "stickytime" => {
                let v = parse_u32(w.value("seconds")?, name, 0, "0-4294967295")?;
                set_once(&mut o.defaults.stickytime, name, v)?;
            }
            _ => {
                let v = parse_number(w.value("number")?, name, 1, 100, "1-100")? as u32;
                set_once(&mut o.defaults.weightbound, name, v)?;
            }
        }
    }
    Ok(o)
}

pub(super) fn parse_cluster(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&CLUSTER_VERBS)?;
    let word = w.value("cluster")?;
    let cmd = match verb {
        "add" => {
            if word == "@" {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "cluster",
                    command: "cluster add",
                });
            }
            if word.is_empty() || word.contains('@') {
                return Err(ParseError::BadTarget {
                    word: word.to_string(),
                    expected: "CLUSTER[+CLUSTER...] or @",
                });
            }
            let o = parse_cluster_options(w, true)?;
            // `cluster add NAME address ADDR`: NAME is a label, ADDR the cluster's address.
            let clusters = match o.address {
                Some(address) => {
                    if word.contains('+') {
                        return Err(ParseError::Invalid(format!(
                            "cluster add {word} address {address}: one cluster name goes with one address"
                        )));
                    }
                    vec![address]
                }
                None => match cluster_target_in(w, word)? {
                    Targets::List(clusters) => clusters,
                    Targets::All => unreachable!("'@' was refused above"),
                },
            };
            Command::ClusterAdd {
                clusters,
                proportions: o.proportions,
                defaults: o.defaults,
                primaryhost: o.primaryhost,
                label: o.label,
            }
        }
        "set" => {
            let target = cluster_target_in(w, word)?;
            let o = parse_cluster_options(w, false)?;
            if let Some(label) = o.label {
                if o.primaryhost.is_some() || o.proportions.is_some() || !o.defaults.is_empty() {
                    return Err(ParseError::Invalid(
                        "cluster set takes label alone (give another cluster set command for \
                         the other settings)"
                            .to_string(),
                    ));
                }
                w.end()?;
                return Ok(Command::ClusterSetLabel {
                    clusters: target,
                    label,
                });
            }
            if let Some(primaryhost) = o.primaryhost {
                if o.proportions.is_some() || !o.defaults.is_empty() {
                    return Err(ParseError::Invalid(
                        "cluster set takes primaryhost alone (give another cluster set command \
                         for proportions or the port defaults)"
                            .to_string(),
                    ));
                }
                return Ok(Command::ClusterSetPrimaryHost {
                    clusters: target,
                    primaryhost,
                });
            }
            match (o.proportions, o.defaults.is_empty()) {
                (Some(proportions), true) => Command::ClusterSetProportions {
                    clusters: target,
                    proportions,
                },
                (None, false) => Command::ClusterSetDefaults {
                    clusters: target,
                    defaults: o.defaults,
                },
                (None, true) => {
                    return Err(ParseError::MissingKeyword {
                        after: w.previous(),
                        expected: CLUSTER_SET_OPTIONS.to_vec(),
                    });
                }
                (Some(_), false) => {
                    return Err(ParseError::Invalid(
                        "cluster set takes proportions or staletimeout|stickytime|weightbound, \
                         not both in one command (give two cluster set commands)"
                            .to_string(),
                    ));
                }
            }
        }
        "remove" => Command::ClusterRemove(cluster_target_in(w, word)?),
        "report" => Command::ClusterReport(cluster_target_in(w, word)?),
        _ => Command::ClusterStatus(cluster_target_in(w, word)?),
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
