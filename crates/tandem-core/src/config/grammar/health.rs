//! `advisor ...`, `manager ...` and `sasp ...`: the commands of server health.
//!
//! ```text
//! advisor start|stop|report|status NAME PORT|CLUSTER@PORT
//! advisor interval|connecttimeout|receivetimeout NAME PORT|CLUSTER@PORT SECONDS
//! advisor retries NAME PORT|CLUSTER@PORT N            (0-100)
//! advisor timeout NAME PORT|CLUSTER@PORT unlimited|SECONDS
//! advisor list
//! manager start|stop|status
//! manager report [CLUSTER[+CLUSTER...]|@]
//! manager interval SECONDS | sensitivity PERCENT | smoothing INDEX
//! manager quiesce|unquiesce SERVER|CLUSTER@PORT@SERVER
//! sasp add CLUSTER[@PORT] gwm ADDRESS [port N] [mode push|pull] [members all|changed]
//!     [interval SECONDS] [grace SECONDS] [tls yes|no]
//! sasp remove CLUSTER[@PORT] [gwm ADDRESS [port N]]
//! sasp report
//! ```
//!
//! NAME is `connect`, `http`, `https`, `ping`, `dns` (unique prefixes allowed) or
//! `ADV_name` (a custom advisor: the executable of that name in the script directory). IBM's
//! other advisors and the log, version, metric and daily forms are refused with the reason.

use super::super::health::{
    AdvisorKey, AdvisorKind, DEFAULT_SASP_PORT, GwmAddress, SaspGroupTarget, SaspGwm, SaspMode,
};
use super::highavailability::parse_reach;
use super::syntax::{ADVISOR_VERBS, MANAGER_VERBS, SASP_VERBS};
use super::targets::{Targets, parse_cluster_target, parse_part, parse_server_target};
use super::words::{
    Words, YES_NO, match_keyword, parse_address, parse_number, parse_path, parse_port,
    parse_seconds, set_once,
};
use super::{Command, MAX_SECONDS, ParseError};
use serde::Serialize;
use std::net::IpAddr;
use std::str::FromStr;

/// `advisor interval|connecttimeout|receivetimeout|retries|timeout NAME TARGET VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisorSetting {
    /// Seconds between two queries of one server. Timeouts that equal the old interval (never
    /// set apart from it) follow it, as IBM's default timeout is the interval.
    Interval(f64),
    ConnectTimeout(f64),
    ReceiveTimeout(f64),
    /// Failed queries tolerated before a server is marked down (0-100).
    Retries(u32),
    /// Seconds a report is trusted; `None` = `unlimited`.
    Timeout(Option<f64>),
}

/// The GWM of `sasp remove ... gwm ADDRESS [port N]`; no port = every GWM at that address.
pub type GwmSelector = (IpAddr, Option<u16>);

/// Largest `manager smoothing` index.
pub const MAX_SMOOTHING: f64 = 100.0;
/// Largest `advisor retries`.
pub const MAX_RETRIES: u32 = 100;
/// Longest custom advisor name (`ADV_` included).
pub const MAX_CUSTOM_ADVISOR_NAME: usize = 64;

/// The advisors Tandem runs (plus `ADV_name`, checked apart).
const ADVISOR_NAMES: &[&str] = &["connect", "http", "https", "ping", "dns"];
const ADVISOR_CHOICES: &[&str] = &["connect", "http", "https", "ping", "dns", "ADV_name"];
/// IBM's advisors that Tandem does not have: refused by name, with the supported list.
const IBM_ADVISORS: &[&str] = &[
    "db2",
    "ftp",
    "cachingproxy",
    "imap",
    "ldap",
    "ldapuri",
    "nntp",
    "pop3",
    "self",
    "sip",
    "smtp",
    "ssl",
    "ssl2http",
    "telnet",
    "wlm",
];
const GWM: &[&str] = &["gwm"];
const SASP_OPTIONS: &[&str] = &["port", "mode", "members", "interval", "grace", "tls"];
const SASP_MODES: &[&str] = &["push", "pull"];
const SASP_MEMBERS: &[&str] = &["all", "changed"];
const PORT: &[&str] = &["port"];
const UNLIMITED: &[&str] = &["unlimited"];

const LOGS: &str =
    "advisors and the manager log through tandemd's log (RUST_LOG), not files of their own";

/// An advisor name: a built-in one (unique prefix) or `ADV_name`.
pub(super) fn parse_advisor_kind(word: &str) -> Result<AdvisorKind, ParseError> {
    if let Some(prefix) = word.get(..4)
        && prefix.eq_ignore_ascii_case("adv_")
    {
        return custom_advisor(&word[4..]).map(AdvisorKind::Custom);
    }
    let lower = word.to_ascii_lowercase();
    if IBM_ADVISORS.contains(&lower.as_str()) {
        return Err(ParseError::Invalid(format!(
            "advisor '{word}' is not supported (supported: {})",
            ADVISOR_CHOICES.join(", ")
        )));
    }
    match match_keyword(word, ADVISOR_NAMES) {
        Ok("connect") => Ok(AdvisorKind::Connect),
        Ok("http") => Ok(AdvisorKind::Http),
        Ok("https") => Ok(AdvisorKind::Https),
        Ok("ping") => Ok(AdvisorKind::Ping),
        Ok(_) => Ok(AdvisorKind::Dns),
        Err(ParseError::UnknownKeyword { word, .. }) => Err(ParseError::UnknownKeyword {
            word,
            expected: ADVISOR_CHOICES.to_vec(),
        }),
        Err(e) => Err(e),
    }
}

/// The `name` of `ADV_name`: letters, digits and `_`; gives `ADV_name`.
fn custom_advisor(name: &str) -> Result<String, ParseError> {
    let full = format!("ADV_{name}");
    if name.is_empty()
        || full.len() > MAX_CUSTOM_ADVISOR_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ParseError::Invalid(format!(
            "bad custom advisor name '{full}' (ADV_ then 1 to {} letters, digits or '_')",
            MAX_CUSTOM_ADVISOR_NAME - 4
        )));
    }
    Ok(full)
}

/// `PORT` or `CLUSTER@PORT` (one cluster, one port; `@PORT` is `PORT`).
fn parse_advisor_target(word: &str) -> Result<(Option<IpAddr>, u16), ParseError> {
    let bad = || ParseError::BadTarget {
        word: word.to_string(),
        expected: "PORT or CLUSTER@PORT",
    };
    if word.contains('+') {
        return Err(bad());
    }
    match word.split_once('@') {
        None => Ok((None, parse_port(word)?)),
        Some((_, port)) if port.is_empty() || port.contains('@') => Err(bad()),
        Some(("", port)) => Ok((None, parse_port(port)?)),
        Some((cluster, port)) => Ok((Some(parse_address(cluster)?), parse_port(port)?)),
    }
}

fn advisor_key(w: &mut Words<'_>) -> Result<AdvisorKey, ParseError> {
    let kind = parse_advisor_kind(w.value("advisor name")?)?;
    let (cluster, port) = parse_advisor_target(w.value("PORT or CLUSTER@PORT")?)?;
    Ok(AdvisorKey {
        kind,
        cluster,
        port,
    })
}

pub(super) fn parse_advisor(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&ADVISOR_VERBS)?;
    let cmd = match verb {
        "list" => Command::AdvisorList,
        "loglevel" | "logsize" => {
            return Err(ParseError::Invalid(format!(
                "advisor {verb} is not supported: {LOGS}"
            )));
        }
        "version" => {
            return Err(ParseError::Invalid(
                "advisor version is not supported: the advisors are part of tandemd and have its version"
                    .to_string(),
            ));
        }
        _ => {
            let key = advisor_key(w)?;
            match verb {
                "start" => Command::AdvisorStart(key),
                "stop" => Command::AdvisorStop(key),
                "report" => Command::AdvisorReport(key),
                "status" => {
                    if w.words.get(w.pos).is_some() {
                        return Err(ParseError::Invalid(format!(
                            "advisor status takes no log file: {LOGS}"
                        )));
                    }
                    Command::AdvisorStatus(key)
                }
                "retries" => {
                    let n = parse_number(
                        w.value("number")?,
                        "retries",
                        0,
                        u64::from(MAX_RETRIES),
                        "0-100",
                    )?;
                    Command::AdvisorSet {
                        key,
                        setting: AdvisorSetting::Retries(n as u32),
                    }
                }
                "timeout" => {
                    let word = w.value("seconds or unlimited")?;
                    let setting = if f64::from_str(word).is_ok() {
                        AdvisorSetting::Timeout(Some(parse_seconds(word, "timeout")?))
                    } else {
                        match_keyword(word, UNLIMITED)?;
                        AdvisorSetting::Timeout(None)
                    };
                    Command::AdvisorSet { key, setting }
                }
                _ => {
                    let seconds = parse_seconds(w.value("seconds")?, verb)?;
                    let setting = match verb {
                        "interval" => AdvisorSetting::Interval(seconds),
                        "connecttimeout" => AdvisorSetting::ConnectTimeout(seconds),
                        _ => AdvisorSetting::ReceiveTimeout(seconds),
                    };
                    Command::AdvisorSet { key, setting }
                }
            }
        }
    };
    w.end()?;
    Ok(cmd)
}

/// `SERVER` (that server on every port of every cluster) or `CLUSTER@PORT@SERVER`.
fn parse_quiesce_target(word: &str) -> Result<super::ServerTarget, ParseError> {
    if word.contains('@') {
        return parse_server_target(word);
    }
    Ok(super::ServerTarget {
        clusters: Targets::All,
        ports: Targets::All,
        servers: parse_part(word, word, parse_address)?,
    })
}

pub(super) fn parse_manager(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&MANAGER_VERBS)?;
    let cmd = match verb {
        "reach" => return parse_reach(w),
        "start" => match w.next() {
            None => Command::ManagerStart,
            // IBM's `manager start LOGFILE [METRIC_PORT]`: accepted with a warning.
            Some(logfile) => Command::ManagerStartLogged {
                logfile: parse_path(logfile, "log file")?,
                metric_port: match w.next() {
                    None => None,
                    Some(port) => Some(parse_port(port)?),
                },
            },
        },
        "stop" => Command::ManagerStop,
        "status" => Command::ManagerStatus,
        "report" => match w.next() {
            None => Command::ManagerReport(Targets::All),
            Some(word) => Command::ManagerReport(parse_cluster_target(word)?),
        },
        "interval" => Command::ManagerInterval(parse_seconds(w.value("seconds")?, "interval")?),
        "sensitivity" => Command::ManagerSensitivity(parse_number(
            w.value("percent")?,
            "sensitivity",
            0,
            100,
            "0-100",
        )? as u32),
        "smoothing" => {
            let word = w.value("index")?;
            match f64::from_str(word) {
                Ok(s) if s.is_finite() && (1.0..=MAX_SMOOTHING).contains(&s) => {
                    Command::ManagerSmoothing(s)
                }
                Ok(_) => {
                    return Err(ParseError::OutOfRange {
                        what: "smoothing",
                        value: word.to_string(),
                        range: "1-100",
                    });
                }
                Err(_) => {
                    return Err(ParseError::BadNumber {
                        what: "smoothing",
                        word: word.to_string(),
                    });
                }
            }
        }
        "quiesce" | "unquiesce" => {
            let target = parse_quiesce_target(w.value("SERVER or CLUSTER@PORT@SERVER")?)?;
            if let Some(word) = w.words.get(w.pos)
                && word.eq_ignore_ascii_case("daily")
            {
                return Err(ParseError::Invalid(
                    "daily quiesce is not supported: run manager quiesce and unquiesce at those \
                     hours (cron)"
                        .to_string(),
                ));
            }
            if verb == "quiesce" {
                Command::ManagerQuiesce(target)
            } else {
                Command::ManagerUnquiesce(target)
            }
        }
        "loglevel" | "logsize" => {
            return Err(ParseError::Invalid(format!(
                "manager {verb} is not supported: {LOGS}"
            )));
        }
        "metric" => {
            return Err(ParseError::Invalid(
                "manager metric is not supported: there is no Metric Server (a custom ADV_ \
                 advisor reports a system load)"
                    .to_string(),
            ));
        }
        "refresh" => {
            return Err(ParseError::Invalid(
                "manager refresh is not supported: the manager reads the forwarding counters \
                 every interval"
                    .to_string(),
            ));
        }
        "restart" => {
            return Err(ParseError::Invalid(
                "manager restart is not supported: run manager stop, then manager start"
                    .to_string(),
            ));
        }
        _ => {
            return Err(ParseError::Invalid(
                "manager version is not supported: the manager is part of tandemd and has its version"
                    .to_string(),
            ));
        }
    };
    w.end()?;
    Ok(cmd)
}

/// `CLUSTER` or `CLUSTER@PORT`: one cluster, at most one port.
fn parse_sasp_group(word: &str) -> Result<SaspGroupTarget, ParseError> {
    let bad = || ParseError::BadTarget {
        word: word.to_string(),
        expected: "CLUSTER or CLUSTER@PORT (one cluster, one port)",
    };
    if word.contains('+') {
        return Err(bad());
    }
    match word.split_once('@') {
        None => Ok(SaspGroupTarget {
            cluster: parse_address(word)?,
            port: None,
        }),
        Some(("", _)) | Some((_, "")) => Err(bad()),
        Some((_, port)) if port.contains('@') => Err(bad()),
        Some((cluster, port)) => Ok(SaspGroupTarget {
            cluster: parse_address(cluster)?,
            port: Some(parse_port(port)?),
        }),
    }
}

/// A grace period: 0 (fall back at once) to [`MAX_SECONDS`].
fn parse_grace(word: &str) -> Result<f64, ParseError> {
    match f64::from_str(word) {
        Ok(s) if s.is_finite() && (0.0..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(ParseError::Invalid(format!(
            "bad grace '{word}' (expected seconds, a number from 0 to 3600)"
        ))),
    }
}

fn parse_sasp_options(w: &mut Words<'_>) -> Result<(u16, SaspGwm), ParseError> {
    let mut port = None;
    let mut mode = None;
    let mut members = None;
    let mut interval = None;
    let mut grace = None;
    let mut tls = None;
    while let Some(word) = w.next() {
        let name = match_keyword(word, SASP_OPTIONS)?;
        match name {
            "port" => set_once(&mut port, name, parse_port(w.value("port")?)?)?,
            "mode" => {
                let v = match w.keyword(SASP_MODES)? {
                    "push" => SaspMode::Push,
                    _ => SaspMode::Pull,
                };
                set_once(&mut mode, name, v)?;
            }
            "members" => set_once(&mut members, name, w.keyword(SASP_MEMBERS)? == "changed")?,
            "interval" => set_once(
                &mut interval,
                name,
                parse_seconds(w.value("seconds")?, "interval")?,
            )?,
            "grace" => set_once(&mut grace, name, parse_grace(w.value("seconds")?)?)?,
            _ => set_once(&mut tls, name, w.keyword(YES_NO)? == "yes")?,
        }
    }
    let defaults = SaspGwm::default();
    let gwm = SaspGwm {
        mode: mode.unwrap_or(defaults.mode),
        changed_only: members.unwrap_or(defaults.changed_only),
        interval,
        grace: grace.unwrap_or(defaults.grace),
        tls: tls.unwrap_or(defaults.tls),
    };
    if gwm.interval.is_some() && gwm.mode != SaspMode::Pull {
        return Err(ParseError::OptionNotAllowed {
            option: "interval",
            command: "sasp add",
            reason: "it is the polling interval of mode pull (in mode push the GWM sends at its own interval)",
        });
    }
    Ok((port.unwrap_or(DEFAULT_SASP_PORT), gwm))
}

pub(super) fn parse_sasp(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&SASP_VERBS)?;
    let cmd = match verb {
        "report" => Command::SaspReport,
        "add" => {
            let group = parse_sasp_group(w.value("CLUSTER or CLUSTER@PORT")?)?;
            w.keyword(GWM)?;
            let address = w.address("GWM address")?;
            let (port, settings) = parse_sasp_options(w)?;
            let gwm: GwmAddress = (address, port);
            Command::SaspAdd {
                group,
                gwm,
                settings,
            }
        }
        _ => {
            let group = parse_sasp_group(w.value("CLUSTER or CLUSTER@PORT")?)?;
            let gwm = match w.next() {
                None => None,
                Some(word) => {
                    match_keyword(word, GWM)?;
                    let address = w.address("GWM address")?;
                    let port = match w.next() {
                        None => None,
                        Some(word) => {
                            match_keyword(word, PORT)?;
                            Some(parse_port(w.value("port")?)?)
                        }
                    };
                    Some((address, port))
                }
            };
            Command::SaspRemove { group, gwm }
        }
    };
    w.end()?;
    Ok(cmd)
}
