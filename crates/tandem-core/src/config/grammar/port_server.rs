//! `port ...` and `server ...`.

use super::super::model::{Method, Protocol, RepStrategy, Selection};
use super::syntax::{PORT_VERBS, SERVER_VERBS};
use super::targets::{ServerTarget, Targets, parse_part, port_target_in, server_target_in};
use super::words::{
    Words, YES_NO, match_keyword, parse_label, parse_number, parse_port, parse_text, parse_u32,
    set_once,
};
use super::{Command, ParseError};
use serde::Serialize;
use std::net::IpAddr;

/// Options of `port add` / `port set`; `None` = not given (keep the current value, or the
/// default at `add`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortOptions {
    pub method: Option<Method>,
    pub protocol: Option<Protocol>,
    /// `porttype both` (`Some(true)`, with `protocol` `Tcp`); `Some(false)` whenever
    /// `protocol` or `porttype tcp|udp` is given.
    pub both: Option<bool>,
    pub selection: Option<Selection>,
    pub stickytime: Option<u32>,
    pub staletimeout: Option<u32>,
    pub weightbound: Option<u32>,
    pub reset: Option<bool>,
    pub repstrategy: Option<RepStrategy>,
}

/// Options of `server add` / `server set` (`mapport` only at `add`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerOptions {
    pub weight: Option<u32>,
    pub fixedweight: Option<bool>,
    pub returnaddress: Option<IpAddr>,
    pub router: Option<IpAddr>,
    pub mapport: Option<u16>,
    /// The request of the `http`/`https`/`dns` advisors; `""` = back to the default.
    pub advisorrequest: Option<String>,
    /// The expected reply (a substring); `""` = back to the default (the status class).
    pub advisorresponse: Option<String>,
    /// `label "TEXT"`: the operator's name for the server; `""` = no label.
    pub label: Option<String>,
}

const PORT_OPTIONS: &[&str] = &[
    "method",
    "protocol",
    "porttype",
    "selectionalgorithm",
    "stickytime",
    "staletimeout",
    "weightbound",
    "reset",
    "repstrategy",
];
const SERVER_ADD_OPTIONS: &[&str] = &[
    "address",
    "weight",
    "fixedweight",
    "returnaddress",
    "router",
    "mapport",
    "advisorrequest",
    "advisorresponse",
    "label",
];
const SERVER_SET_OPTIONS: &[&str] = &[
    "weight",
    "fixedweight",
    "returnaddress",
    "router",
    "advisorrequest",
    "advisorresponse",
    "label",
];
const METHODS: &[&str] = &["mac", "nat"];
const PROTOCOLS: &[&str] = &["tcp", "udp"];
const PORTTYPES: &[&str] = &["tcp", "udp", "both"];
const SELECTIONS: &[&str] = &["connection", "affinity", "conn+affin", "hash"];
const REPSTRATEGIES: &[&str] = &["none", "connection", "affinity", "both"];

fn parse_port_options(w: &mut Words<'_>) -> Result<PortOptions, ParseError> {
    let mut o = PortOptions::default();
    while let Some(word) = w.next() {
        let name = match_keyword(word, PORT_OPTIONS)?;
        match name {
            "method" => {
                let v = match w.keyword(METHODS)? {
                    "mac" => Method::Mac,
                    _ => Method::Nat,
                };
                set_once(&mut o.method, name, v)?;
            }
            "protocol" | "porttype" => {
                let choices = if name == "protocol" {
                    PROTOCOLS
                } else {
                    PORTTYPES
                };
                let (v, both) = match w.keyword(choices)? {
                    "tcp" => (Protocol::Tcp, false),
                    "udp" => (Protocol::Udp, false),
                    _ => (Protocol::Tcp, true),
                };
                // `porttype` is IBM's name of `protocol` (with `both`): one of them, once.
                set_once(&mut o.protocol, "protocol", v)?;
                o.both = Some(both);
            }
            "selectionalgorithm" => {
                let v = match w.keyword(SELECTIONS)? {
                    "connection" => Selection::Connection,
                    "affinity" => Selection::Affinity,
                    "conn+affin" => Selection::ConnAffin,
                    _ => Selection::Hash,
                };
                set_once(&mut o.selection, name, v)?;
            }
            "stickytime" => {
                let v = parse_u32(w.value("seconds")?, name, 0, "0-4294967295")?;
                set_once(&mut o.stickytime, name, v)?;
            }
            "staletimeout" => {
                let v = parse_u32(w.value("seconds")?, name, 1, "1-4294967295")?;
                set_once(&mut o.staletimeout, name, v)?;
            }
            "weightbound" => {
                let v = parse_number(w.value("number")?, name, 1, 100, "1-100")? as u32;
                set_once(&mut o.weightbound, name, v)?;
            }
            "reset" => {
                let v = w.keyword(YES_NO)? == "yes";
                set_once(&mut o.reset, name, v)?;
            }
            _ => {
                let v = match w.keyword(REPSTRATEGIES)? {
                    "none" => RepStrategy::None,
                    "connection" => RepStrategy::Connection,
                    "affinity" => RepStrategy::Affinity,
                    _ => RepStrategy::Both,
                };
                set_once(&mut o.repstrategy, name, v)?;
            }
        }
    }
    Ok(o)
}

fn parse_server_options(
    w: &mut Words<'_>,
    add: bool,
    address: &mut Option<IpAddr>,
) -> Result<ServerOptions, ParseError> {
    let mut o = ServerOptions::default();
    while let Some(word) = w.next() {
        let name = if add {
            match_keyword(word, SERVER_ADD_OPTIONS)?
        } else {
            match match_keyword(word, SERVER_SET_OPTIONS) {
                Ok(name) => name,
                Err(e) => {
                    // A word meaning `mapport` gets a more helpful message than "unknown".
                    if let Ok(option @ ("mapport" | "address")) =
                        match_keyword(word, SERVER_ADD_OPTIONS)
                    {
                        return Err(ParseError::OptionNotAllowed {
                            option,
                            command: "server set",
                            reason: "it can only be given at server add",
                        });
                    }
                    return Err(e);
                }
            }
        };
        match name {
            "address" => {
                let v = w.address("address")?;
                set_once(address, name, v)?;
            }
            "weight" => {
                let v = parse_number(w.value("number")?, name, 0, 100, "0-100")? as u32;
                set_once(&mut o.weight, name, v)?;
            }
            "fixedweight" => {
                let v = w.keyword(YES_NO)? == "yes";
                set_once(&mut o.fixedweight, name, v)?;
            }
            "returnaddress" => {
                let v = w.address("address")?;
                set_once(&mut o.returnaddress, name, v)?;
            }
            "router" => {
                let v = w.address("address")?;
                set_once(&mut o.router, name, v)?;
            }
            "advisorrequest" => {
                let v = parse_text(w.value("\"text\"")?, name)?;
                set_once(&mut o.advisorrequest, name, v)?;
            }
            "advisorresponse" => {
                let v = parse_text(w.value("\"text\"")?, name)?;
                set_once(&mut o.advisorresponse, name, v)?;
            }
            "label" => {
                let v = parse_label(w.value("\"text\"")?)?;
                set_once(&mut o.label, name, v)?;
            }
            _ => {
                let v = parse_port(w.value("port")?)?;
                set_once(&mut o.mapport, name, v)?;
            }
        }
    }
    Ok(o)
}

pub(super) fn parse_port_command(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&PORT_VERBS)?;
    let word = w.value("CLUSTER@PORT")?;
    let target = port_target_in(w, word)?;
    let cmd = match verb {
        "add" => {
            if target.ports.is_all() {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "port",
                    command: "port add",
                });
            }
            Command::PortAdd {
                target,
                options: parse_port_options(w)?,
            }
        }
        "set" => Command::PortSet {
            target,
            options: parse_port_options(w)?,
        },
        "remove" => Command::PortRemove(target),
        "report" => Command::PortReport(target),
        _ => Command::PortStatus(target),
    };
    w.end()?;
    Ok(cmd)
}

pub(super) fn parse_server_command(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(&SERVER_VERBS)?;
    let word = w.value("CLUSTER@PORT@SERVER")?;
    let (port, servers) = server_target_in(w, word)?;
    let mut address = None;
    let options = match verb {
        "add" | "set" => Some(parse_server_options(w, verb == "add", &mut address)?),
        _ => None,
    };
    let servers = match address {
        // `server add C@P@LABEL address ADDR`: LABEL names the server, ADDR is its address.
        Some(address) => {
            if servers.is_empty() || servers.contains('+') {
                return Err(ParseError::Invalid(format!(
                    "server add {word} address {address}: one server name goes with one address"
                )));
            }
            Targets::List(vec![address])
        }
        None => parse_part(word, servers, |item| w.host(item))?,
    };
    let target = ServerTarget {
        clusters: port.clusters,
        ports: port.ports,
        servers,
    };
    let options = options.unwrap_or_default();
    let cmd = match verb {
        "add" => {
            if target.servers.is_all() {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "server",
                    command: "server add",
                });
            }
            Command::ServerAdd { target, options }
        }
        "set" => Command::ServerSet { target, options },
        "down" => Command::ServerDown(target),
        "up" => Command::ServerUp(target),
        "remove" => Command::ServerRemove(target),
        "report" => Command::ServerReport(target),
        _ => Command::ServerStatus(target),
    };
    w.end()?;
    Ok(cmd)
}
