//! The dscontrol command grammar: words in, [`Command`] out.
//!
//! ```text
//! executor start|stop|status|report
//! executor set nfa ADDR | clientgateway ADDR | hatimeout SECONDS
//!     | maxconnections N|auto | syntimeout SECONDS
//! cluster add CLUSTER[+CLUSTER...]
//! cluster remove|report|status CLUSTER[+CLUSTER...]|@
//! port add|set CLUSTER@PORT[+PORT...] [method mac|nat] [protocol tcp|udp]
//!     [selectionalgorithm connection|affinity|conn+affin|hash] [stickytime S]
//!     [staletimeout S] [weightbound N] [reset yes|no] [repstrategy none|connection|affinity|both]
//! port remove|report|status CLUSTER@PORT
//! server add CLUSTER@PORT@SERVER [weight N] [fixedweight yes|no] [returnaddress ADDR]
//!     [router ADDR] [mapport P]
//! server set CLUSTER@PORT@SERVER [weight N] [fixedweight yes|no] [returnaddress ADDR] [router ADDR]
//! server down|up|remove|report|status CLUSTER@PORT@SERVER
//! highavailability heartbeat add SRC DST | heartbeat delete ADDR
//! highavailability reach add|delete ADDR
//! highavailability backup add primary|backup auto|manual PORT | backup delete
//! highavailability backup set recovery auto|manual
//! highavailability status | takeover | maintenance [start|stop]
//! highavailability key FILE | key generate FILE | scripts DIR
//! manager reach set interval SECONDS
//! ```
//!
//! As in dscontrol, every keyword (command words, option names and option values such as
//! `nat` or `conn+affin`) may be shortened to any prefix that is unique where it stands:
//! `ex sta` is `executor start`, `ex st` is ambiguous. Keywords are case-insensitive.
//!
//! In a `CLUSTER@PORT@SERVER` target each part is either a `+` list (`10.0.0.1+10.0.0.2`) or
//! empty, which is the `@` wildcard: `@80@10.0.0.21` is server 10.0.0.21 on port 80 of
//! every cluster, `10.0.0.1@@` every server of every port of cluster 10.0.0.1, and a lone `@`
//! every cluster (or, as a port target, every port of every cluster). Clusters and servers are
//! IP addresses (IPv4 or IPv6), not host names.

use super::model::{Backup, Method, Protocol, Recovery, RepStrategy, Role, Selection};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Largest `hatimeout` and reach `interval`, in seconds. A bound keeps every value
/// convertible to a `Duration` without overflow.
pub const MAX_SECONDS: f64 = 3600.0;
/// Smallest `hatimeout` and reach `interval`, in seconds.
pub const MIN_SECONDS: f64 = 0.01;

/// Why a command line could not be parsed. Every message names the offending word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The command stops where a keyword is needed.
    #[error("missing keyword after '{after}' (expected one of: {})", .expected.join(", "))]
    MissingKeyword {
        after: String,
        expected: Vec<&'static str>,
    },
    /// A word is not (a prefix of) any keyword allowed where it stands.
    #[error("unknown keyword '{word}' (expected one of: {})", .expected.join(", "))]
    UnknownKeyword {
        word: String,
        expected: Vec<&'static str>,
    },
    /// A word is a prefix of several keywords allowed where it stands.
    #[error("ambiguous keyword '{word}': {}", .candidates.join(", "))]
    AmbiguousKeyword {
        word: String,
        candidates: Vec<&'static str>,
    },
    /// A keyword that needs a value (or a target) is the last word.
    #[error("missing {what} after '{after}'")]
    MissingValue { after: String, what: &'static str },
    /// A word that should be an IP address is not one.
    #[error("bad address '{0}'")]
    BadAddress(String),
    /// A word that should be a number is not one.
    #[error("bad {what} '{word}' (expected a number)")]
    BadNumber { what: &'static str, word: String },
    /// A number outside the range allowed for it (`port 0 out of range 1-65535`).
    #[error("{what} {value} out of range {range}")]
    OutOfRange {
        what: &'static str,
        value: String,
        range: &'static str,
    },
    /// A word that should be a time in seconds is not a usable one.
    #[error("bad {what} '{word}' (expected seconds, a number from 0.01 to 3600)")]
    BadSeconds { what: &'static str, word: String },
    /// A target that is not of the form the command needs.
    #[error("bad target '{word}' (expected {expected})")]
    BadTarget {
        word: String,
        expected: &'static str,
    },
    /// The `@` wildcard where the command needs named objects.
    #[error(
        "the '@' wildcard is not allowed for the {part} in '{word}' ({command} needs explicit {part}s)"
    )]
    WildcardNotAllowed {
        word: String,
        part: &'static str,
        command: &'static str,
    },
    /// An option given twice in one command.
    #[error("option '{0}' given twice")]
    DuplicateOption(&'static str),
    /// An option that exists but not in this command.
    #[error("option '{option}' is not allowed in {command}: {reason}")]
    OptionNotAllowed {
        option: &'static str,
        command: &'static str,
        reason: &'static str,
    },
    /// Words left over after a complete command.
    #[error("unexpected word '{0}'")]
    UnexpectedWord(String),
    /// No words at all.
    #[error("empty command")]
    Empty,
    /// Any other invalid value, with the reason.
    #[error("{0}")]
    Invalid(String),
}

/// Either the `@` wildcard (every existing object at that level) or a `+` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets<T> {
    /// `@`: every cluster / port / server that exists at that level.
    All,
    /// Explicit objects, in command order, without duplicates.
    List(Vec<T>),
}

impl<T: PartialEq> Targets<T> {
    /// Whether this is the `@` wildcard.
    pub fn is_all(&self) -> bool {
        matches!(self, Targets::All)
    }

    /// Whether `item` is selected (always true for the wildcard).
    pub fn contains(&self, item: &T) -> bool {
        match self {
            Targets::All => true,
            Targets::List(items) => items.contains(item),
        }
    }
}

impl<T: fmt::Display> Targets<T> {
    /// Writes the part as it appears inside a target: the `+` list, or nothing for `@`.
    fn write_part(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Targets::List(items) = self {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{item}")?;
            }
        }
        Ok(())
    }
}

/// A cluster target: `CLUSTER[+CLUSTER...]` or `@`.
impl<T: fmt::Display> fmt::Display for Targets<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Targets::All => f.write_str("@"),
            Targets::List(_) => self.write_part(f),
        }
    }
}

/// `CLUSTER@PORT`, each part a `+` list or the wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortTarget {
    pub clusters: Targets<IpAddr>,
    pub ports: Targets<u16>,
}

impl fmt::Display for PortTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.clusters.write_part(f)?;
        f.write_str("@")?;
        self.ports.write_part(f)
    }
}

/// `CLUSTER@PORT@SERVER`, each part a `+` list or the wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerTarget {
    pub clusters: Targets<IpAddr>,
    pub ports: Targets<u16>,
    pub servers: Targets<IpAddr>,
}

impl ServerTarget {
    /// The `CLUSTER@PORT` part.
    pub fn port_target(&self) -> PortTarget {
        PortTarget {
            clusters: self.clusters.clone(),
            ports: self.ports.clone(),
        }
    }
}

impl fmt::Display for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.clusters.write_part(f)?;
        f.write_str("@")?;
        self.ports.write_part(f)?;
        f.write_str("@")?;
        self.servers.write_part(f)
    }
}

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

/// Options of `port add` / `port set`; `None` = not given (keep the current value, or the
/// default at `add`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortOptions {
    pub method: Option<Method>,
    pub protocol: Option<Protocol>,
    pub selection: Option<Selection>,
    pub stickytime: Option<u32>,
    pub staletimeout: Option<u32>,
    pub weightbound: Option<u32>,
    pub reset: Option<bool>,
    pub repstrategy: Option<RepStrategy>,
}

/// Options of `server add` / `server set` (`mapport` only at `add`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServerOptions {
    pub weight: Option<u32>,
    pub fixedweight: Option<bool>,
    pub returnaddress: Option<IpAddr>,
    pub router: Option<IpAddr>,
    pub mapport: Option<u16>,
}

/// One dscontrol command, parsed and checked for syntax and ranges (not yet against a
/// configuration: see [`Config::apply`](super::Config::apply)).
///
/// `Display` writes the canonical command line (full keywords, no leading `dscontrol`),
/// which [`parse_line`] reads back to an equal command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Command {
    /// `executor start`
    ExecutorStart,
    /// `executor stop`
    ExecutorStop,
    /// `executor status` (query)
    ExecutorStatus,
    /// `executor report` (query)
    ExecutorReport,
    /// `executor set nfa|clientgateway|hatimeout VALUE`
    ExecutorSet(ExecutorSetting),
    /// `cluster add CLUSTER[+CLUSTER...]` (no wildcard)
    ClusterAdd(Vec<IpAddr>),
    /// `cluster remove CLUSTER[+...]|@` (removes its ports and servers too)
    ClusterRemove(Targets<IpAddr>),
    /// `cluster report CLUSTER[+...]|@` (query)
    ClusterReport(Targets<IpAddr>),
    /// `cluster status CLUSTER[+...]|@` (query)
    ClusterStatus(Targets<IpAddr>),
    /// `port add CLUSTER@PORT[+PORT...] [options]` (ports explicit; `@` cluster = every
    /// existing cluster)
    PortAdd {
        target: PortTarget,
        options: PortOptions,
    },
    /// `port set CLUSTER@PORT [options]`
    PortSet {
        target: PortTarget,
        options: PortOptions,
    },
    /// `port remove CLUSTER@PORT` (removes its servers too)
    PortRemove(PortTarget),
    /// `port report CLUSTER@PORT` (query)
    PortReport(PortTarget),
    /// `port status CLUSTER@PORT` (query)
    PortStatus(PortTarget),
    /// `server add CLUSTER@PORT@SERVER [options]` (servers explicit)
    ServerAdd {
        target: ServerTarget,
        options: ServerOptions,
    },
    /// `server set CLUSTER@PORT@SERVER [options]` (no `mapport`)
    ServerSet {
        target: ServerTarget,
        options: ServerOptions,
    },
    /// `server down CLUSTER@PORT@SERVER`
    ServerDown(ServerTarget),
    /// `server up CLUSTER@PORT@SERVER`
    ServerUp(ServerTarget),
    /// `server remove CLUSTER@PORT@SERVER`
    ServerRemove(ServerTarget),
    /// `server report CLUSTER@PORT@SERVER` (query)
    ServerReport(ServerTarget),
    /// `server status CLUSTER@PORT@SERVER` (query)
    ServerStatus(ServerTarget),
    /// `highavailability heartbeat add SRC DST`
    HaHeartbeatAdd { source: IpAddr, destination: IpAddr },
    /// `highavailability heartbeat delete ADDR` (either end of a pair)
    HaHeartbeatDelete(IpAddr),
    /// `highavailability reach add ADDR`
    HaReachAdd(IpAddr),
    /// `highavailability reach delete ADDR`
    HaReachDelete(IpAddr),
    /// `highavailability backup add primary|backup auto|manual PORT`
    HaBackupAdd(Backup),
    /// `highavailability backup delete`
    HaBackupDelete,
    /// `highavailability backup set recovery auto|manual`: changes the recovery strategy in
    /// place (no delete and re-add, so the node never passes through Idle)
    HaBackupRecovery(Recovery),
    /// `highavailability status` (query)
    HaStatus,
    /// `highavailability takeover` (action for the HA machine; no model change). IBM's
    /// `takeover ADDRESS` is for mutual high availability (role `both`) and is refused at
    /// parse time with that reason.
    HaTakeover(Option<IpAddr>),
    /// `highavailability key FILE`: HMAC key file for heartbeats
    HaKey(String),
    /// `highavailability scripts DIR`: directory of the go scripts
    HaScripts(String),
    /// `highavailability maintenance`: prints the upgrade plan (query)
    HaMaintenance,
    /// `highavailability maintenance start|stop`: this node hands Active over and never takes
    /// it back, until stopped (an action for the HA node; not saved in files)
    HaMaintenanceMode(bool),
    /// `highavailability key generate FILE`: writes a new random key to FILE (mode 0600;
    /// refuses to overwrite). An action; the key is used once `highavailability key FILE`
    /// names it.
    HaKeyGenerate(String),
    /// `manager reach set interval SECONDS`
    ManagerReachInterval(f64),
}

impl Command {
    /// Whether the command changes the configuration. Queries (report, status) and HA
    /// actions (takeover, maintenance) do not.
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Command::ExecutorStatus
                | Command::ExecutorReport
                | Command::ClusterReport(_)
                | Command::ClusterStatus(_)
                | Command::PortReport(_)
                | Command::PortStatus(_)
                | Command::ServerReport(_)
                | Command::ServerStatus(_)
                | Command::HaStatus
                | Command::HaTakeover(_)
                | Command::HaMaintenance
                | Command::HaMaintenanceMode(_)
                | Command::HaKeyGenerate(_)
        )
    }
}

/// Whether `cmd` changes the configuration (see [`Command::is_mutation`]).
pub fn is_mutation(cmd: &Command) -> bool {
    cmd.is_mutation()
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for PortOptions {
    /// The options as they follow the target (each with a leading space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.method {
            write!(f, " method {}", m.keyword())?;
        }
        if let Some(p) = self.protocol {
            write!(f, " protocol {}", p.keyword())?;
        }
        if let Some(s) = self.selection {
            write!(f, " selectionalgorithm {}", s.keyword())?;
        }
        if let Some(v) = self.stickytime {
            write!(f, " stickytime {v}")?;
        }
        if let Some(v) = self.staletimeout {
            write!(f, " staletimeout {v}")?;
        }
        if let Some(v) = self.weightbound {
            write!(f, " weightbound {v}")?;
        }
        if let Some(v) = self.reset {
            write!(f, " reset {}", yes_no(v))?;
        }
        if let Some(r) = self.repstrategy {
            write!(f, " repstrategy {}", r.keyword())?;
        }
        Ok(())
    }
}

impl fmt::Display for ServerOptions {
    /// The options as they follow the target (each with a leading space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.weight {
            write!(f, " weight {v}")?;
        }
        if let Some(v) = self.fixedweight {
            write!(f, " fixedweight {}", yes_no(v))?;
        }
        if let Some(a) = self.returnaddress {
            write!(f, " returnaddress {a}")?;
        }
        if let Some(a) = self.router {
            write!(f, " router {a}")?;
        }
        if let Some(p) = self.mapport {
            write!(f, " mapport {p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Command::*;
        match self {
            ExecutorStart => f.write_str("executor start"),
            ExecutorStop => f.write_str("executor stop"),
            ExecutorStatus => f.write_str("executor status"),
            ExecutorReport => f.write_str("executor report"),
            ExecutorSet(ExecutorSetting::Nfa(a)) => write!(f, "executor set nfa {a}"),
            ExecutorSet(ExecutorSetting::ClientGateway(a)) => {
                write!(f, "executor set clientgateway {a}")
            }
            ExecutorSet(ExecutorSetting::HaTimeout(s)) => write!(f, "executor set hatimeout {s}"),
            ExecutorSet(ExecutorSetting::MaxConnections(Some(n))) => {
                write!(f, "executor set maxconnections {n}")
            }
            ExecutorSet(ExecutorSetting::MaxConnections(None)) => {
                f.write_str("executor set maxconnections auto")
            }
            ExecutorSet(ExecutorSetting::SynTimeout(s)) => {
                write!(f, "executor set syntimeout {s}")
            }
            ClusterAdd(cs) => {
                f.write_str("cluster add ")?;
                Targets::List(cs.clone()).write_part(f)
            }
            ClusterRemove(t) => write!(f, "cluster remove {t}"),
            ClusterReport(t) => write!(f, "cluster report {t}"),
            ClusterStatus(t) => write!(f, "cluster status {t}"),
            PortAdd { target, options } => write!(f, "port add {target}{options}"),
            PortSet { target, options } => write!(f, "port set {target}{options}"),
            PortRemove(t) => write!(f, "port remove {t}"),
            PortReport(t) => write!(f, "port report {t}"),
            PortStatus(t) => write!(f, "port status {t}"),
            ServerAdd { target, options } => write!(f, "server add {target}{options}"),
            ServerSet { target, options } => write!(f, "server set {target}{options}"),
            ServerDown(t) => write!(f, "server down {t}"),
            ServerUp(t) => write!(f, "server up {t}"),
            ServerRemove(t) => write!(f, "server remove {t}"),
            ServerReport(t) => write!(f, "server report {t}"),
            ServerStatus(t) => write!(f, "server status {t}"),
            HaHeartbeatAdd {
                source,
                destination,
            } => {
                write!(f, "highavailability heartbeat add {source} {destination}")
            }
            HaHeartbeatDelete(a) => write!(f, "highavailability heartbeat delete {a}"),
            HaReachAdd(a) => write!(f, "highavailability reach add {a}"),
            HaReachDelete(a) => write!(f, "highavailability reach delete {a}"),
            HaBackupAdd(b) => write!(
                f,
                "highavailability backup add {} {} {}",
                b.role.keyword(),
                b.recovery.keyword(),
                b.port
            ),
            HaBackupDelete => f.write_str("highavailability backup delete"),
            HaBackupRecovery(r) => {
                write!(f, "highavailability backup set recovery {}", r.keyword())
            }
            HaMaintenanceMode(on) => write!(
                f,
                "highavailability maintenance {}",
                if *on { "start" } else { "stop" }
            ),
            HaKeyGenerate(p) => write!(f, "highavailability key generate {p}"),
            HaStatus => f.write_str("highavailability status"),
            HaTakeover(None) => f.write_str("highavailability takeover"),
            HaTakeover(Some(a)) => write!(f, "highavailability takeover {a}"),
            HaKey(p) => write!(f, "highavailability key {p}"),
            HaScripts(p) => write!(f, "highavailability scripts {p}"),
            HaMaintenance => f.write_str("highavailability maintenance"),
            ManagerReachInterval(s) => write!(f, "manager reach set interval {s}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Words that may precede a command on a line and are skipped.
const PROGRAM_NAMES: [&str; 2] = ["dscontrol", "tandemctl"];

const OBJECTS: &[&str] = &[
    "executor",
    "cluster",
    "port",
    "server",
    "highavailability",
    "manager",
];
const EXECUTOR_VERBS: &[&str] = &["start", "stop", "status", "report", "set"];
const EXECUTOR_SETTINGS: &[&str] = &[
    "nfa",
    "clientgateway",
    "hatimeout",
    "maxconnections",
    "syntimeout",
];
const CLUSTER_VERBS: &[&str] = &["add", "remove", "report", "status"];
const PORT_VERBS: &[&str] = &["add", "set", "remove", "report", "status"];
const SERVER_VERBS: &[&str] = &["add", "set", "down", "up", "remove", "report", "status"];
const HA_VERBS: &[&str] = &[
    "heartbeat",
    "reach",
    "backup",
    "status",
    "takeover",
    "key",
    "scripts",
    "maintenance",
];
const ADD_DELETE: &[&str] = &["add", "delete"];
const ADD_SET_DELETE: &[&str] = &["add", "set", "delete"];
const BACKUP_SETTINGS: &[&str] = &["recovery"];
const START_STOP: &[&str] = &["start", "stop"];
const MANAGER_VERBS: &[&str] = &["reach"];
const SET: &[&str] = &["set"];
const REACH_SETTINGS: &[&str] = &["interval"];
const PORT_OPTIONS: &[&str] = &[
    "method",
    "protocol",
    "selectionalgorithm",
    "stickytime",
    "staletimeout",
    "weightbound",
    "reset",
    "repstrategy",
];
const SERVER_ADD_OPTIONS: &[&str] = &[
    "weight",
    "fixedweight",
    "returnaddress",
    "router",
    "mapport",
];
const SERVER_SET_OPTIONS: &[&str] = &["weight", "fixedweight", "returnaddress", "router"];
const METHODS: &[&str] = &["mac", "nat"];
const PROTOCOLS: &[&str] = &["tcp", "udp"];
const SELECTIONS: &[&str] = &["connection", "affinity", "conn+affin", "hash"];
const REPSTRATEGIES: &[&str] = &["none", "connection", "affinity", "both"];
const YES_NO: &[&str] = &["yes", "no"];
const ROLES: &[&str] = &["primary", "backup"];
const RECOVERIES: &[&str] = &["auto", "manual"];

/// Resolves `word` to one of `choices`: an exact (case-insensitive) match, or else the only
/// choice that `word` is a prefix of.
fn match_keyword(word: &str, choices: &[&'static str]) -> Result<&'static str, ParseError> {
    let lower = word.to_ascii_lowercase();
    if let Some(exact) = choices.iter().find(|c| **c == lower) {
        return Ok(*exact);
    }
    let mut candidates: Vec<&'static str> = if lower.is_empty() {
        Vec::new()
    } else {
        choices
            .iter()
            .copied()
            .filter(|c| c.starts_with(&lower))
            .collect()
    };
    match candidates.len() {
        1 => Ok(candidates[0]),
        0 => Err(ParseError::UnknownKeyword {
            word: word.to_string(),
            expected: choices.to_vec(),
        }),
        _ => {
            candidates.sort_unstable();
            Err(ParseError::AmbiguousKeyword {
                word: word.to_string(),
                candidates,
            })
        }
    }
}

/// A cursor over the words of one command.
struct Words<'w> {
    words: &'w [&'w str],
    pos: usize,
}

impl<'w> Words<'w> {
    fn next(&mut self) -> Option<&'w str> {
        let word = self.words.get(self.pos).copied();
        if word.is_some() {
            self.pos += 1;
        }
        word
    }

    /// The word before the cursor (for "missing ... after 'X'" messages).
    fn previous(&self) -> String {
        match self.pos.checked_sub(1).and_then(|i| self.words.get(i)) {
            Some(w) => (*w).to_string(),
            None => String::new(),
        }
    }

    /// The next word, which must be one of `choices`.
    fn keyword(&mut self, choices: &[&'static str]) -> Result<&'static str, ParseError> {
        match self.next() {
            Some(word) => match_keyword(word, choices),
            None => Err(ParseError::MissingKeyword {
                after: self.previous(),
                expected: choices.to_vec(),
            }),
        }
    }

    /// The next word, which must exist; `what` names it in the error.
    fn value(&mut self, what: &'static str) -> Result<&'w str, ParseError> {
        match self.next() {
            Some(word) => Ok(word),
            None => Err(ParseError::MissingValue {
                after: self.previous(),
                what,
            }),
        }
    }

    /// Fails unless every word has been used.
    fn end(&mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(word) => Err(ParseError::UnexpectedWord(word.to_string())),
            None => Ok(()),
        }
    }

    fn address(&mut self, what: &'static str) -> Result<IpAddr, ParseError> {
        parse_address(self.value(what)?)
    }
}

/// An IP address (IPv4 or IPv6, not the unspecified `0.0.0.0` / `::`).
fn parse_address(word: &str) -> Result<IpAddr, ParseError> {
    match IpAddr::from_str(word) {
        Ok(addr) if !addr.is_unspecified() => Ok(addr),
        _ => Err(ParseError::BadAddress(word.to_string())),
    }
}

/// An unsigned integer in `min..=max`; `range` is the text shown in errors (`"1-100"`).
fn parse_number(
    word: &str,
    what: &'static str,
    min: u64,
    max: u64,
    range: &'static str,
) -> Result<u64, ParseError> {
    let digits = word.strip_prefix('+').unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber {
            what,
            word: word.to_string(),
        });
    }
    match digits.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ParseError::OutOfRange {
            what,
            value: word.to_string(),
            range,
        }),
    }
}

fn parse_port(word: &str) -> Result<u16, ParseError> {
    // The range check makes the narrowing conversion lossless.
    parse_number(word, "port", 1, 65535, "1-65535").map(|n| n as u16)
}

fn parse_u32(
    word: &str,
    what: &'static str,
    min: u64,
    range: &'static str,
) -> Result<u32, ParseError> {
    parse_number(word, what, min, u64::from(u32::MAX), range).map(|n| n as u32)
}

/// A positive number of seconds, possibly fractional (`0.2`), within
/// [`MIN_SECONDS`]`..=`[`MAX_SECONDS`].
fn parse_seconds(word: &str, what: &'static str) -> Result<f64, ParseError> {
    match f64::from_str(word) {
        Ok(s) if s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(ParseError::BadSeconds {
            what,
            word: word.to_string(),
        }),
    }
}

/// A file or directory name: not empty, no whitespace and no `#` (so that a saved
/// configuration reads back the same).
fn parse_path(word: &str, what: &'static str) -> Result<String, ParseError> {
    if word.is_empty() || word.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(ParseError::Invalid(format!(
            "bad {what} '{word}' (must not be empty or contain whitespace or '#')"
        )));
    }
    Ok(word.to_string())
}

/// One part of a target: empty = `@` wildcard, else a `+` list without duplicates.
fn parse_part<T: PartialEq>(
    word: &str,
    part: &str,
    parse_item: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Targets<T>, ParseError> {
    if part.is_empty() {
        return Ok(Targets::All);
    }
    let mut items = Vec::new();
    for item in part.split('+') {
        if item.is_empty() {
            return Err(ParseError::BadTarget {
                word: word.to_string(),
                expected: "items joined by single '+' signs",
            });
        }
        let item = parse_item(item)?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(Targets::List(items))
}

/// `CLUSTER[+CLUSTER...]` or `@`.
fn parse_cluster_target(word: &str) -> Result<Targets<IpAddr>, ParseError> {
    if word == "@" {
        return Ok(Targets::All);
    }
    if word.contains('@') {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER[+CLUSTER...] or @",
        });
    }
    parse_part(word, word, parse_address)
}

fn parse_port_target(word: &str) -> Result<PortTarget, ParseError> {
    let parts: Vec<&str> = word.split('@').collect();
    let [clusters, ports] = parts[..] else {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER@PORT",
        });
    };
    Ok(PortTarget {
        clusters: parse_part(word, clusters, parse_address)?,
        ports: parse_part(word, ports, parse_port)?,
    })
}

fn parse_server_target(word: &str) -> Result<ServerTarget, ParseError> {
    let parts: Vec<&str> = word.split('@').collect();
    let [clusters, ports, servers] = parts[..] else {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER@PORT@SERVER",
        });
    };
    Ok(ServerTarget {
        clusters: parse_part(word, clusters, parse_address)?,
        ports: parse_part(word, ports, parse_port)?,
        servers: parse_part(word, servers, parse_address)?,
    })
}

/// Stores an option value, refusing a second one.
fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateOption(name));
    }
    *slot = Some(value);
    Ok(())
}

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
            "protocol" => {
                let v = match w.keyword(PROTOCOLS)? {
                    "tcp" => Protocol::Tcp,
                    _ => Protocol::Udp,
                };
                set_once(&mut o.protocol, name, v)?;
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

fn parse_server_options(w: &mut Words<'_>, add: bool) -> Result<ServerOptions, ParseError> {
    let mut o = ServerOptions::default();
    while let Some(word) = w.next() {
        let name = if add {
            match_keyword(word, SERVER_ADD_OPTIONS)?
        } else {
            match match_keyword(word, SERVER_SET_OPTIONS) {
                Ok(name) => name,
                Err(e) => {
                    // A word meaning `mapport` gets a more helpful message than "unknown".
                    if let Ok("mapport") = match_keyword(word, SERVER_ADD_OPTIONS) {
                        return Err(ParseError::OptionNotAllowed {
                            option: "mapport",
                            command: "server set",
                            reason: "it can only be given at server add",
                        });
                    }
                    return Err(e);
                }
            }
        };
        match name {
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
            _ => {
                let v = parse_port(w.value("port")?)?;
                set_once(&mut o.mapport, name, v)?;
            }
        }
    }
    Ok(o)
}

fn parse_executor(w: &mut Words<'_>) -> Result<Command, ParseError> {
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
                        super::model::MAX_MAXCONNECTIONS,
                        "1-1073741824 or auto",
                    )?)
                })
            }
            _ => ExecutorSetting::SynTimeout(parse_number(
                w.value("seconds")?,
                "syntimeout",
                1,
                u64::from(super::model::MAX_SYNTIMEOUT),
                "1-3600",
            )? as u32),
        }),
    };
    w.end()?;
    Ok(cmd)
}

fn parse_cluster(w: &mut Words<'_>) -> Result<Command, ParseError> {
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

fn parse_port_command(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(PORT_VERBS)?;
    let word = w.value("CLUSTER@PORT")?;
    let target = parse_port_target(word)?;
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

fn parse_server_command(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let verb = w.keyword(SERVER_VERBS)?;
    let word = w.value("CLUSTER@PORT@SERVER")?;
    let target = parse_server_target(word)?;
    let cmd = match verb {
        "add" => {
            if target.servers.is_all() {
                return Err(ParseError::WildcardNotAllowed {
                    word: word.to_string(),
                    part: "server",
                    command: "server add",
                });
            }
            Command::ServerAdd {
                target,
                options: parse_server_options(w, true)?,
            }
        }
        "set" => Command::ServerSet {
            target,
            options: parse_server_options(w, false)?,
        },
        "down" => Command::ServerDown(target),
        "up" => Command::ServerUp(target),
        "remove" => Command::ServerRemove(target),
        "report" => Command::ServerReport(target),
        _ => Command::ServerStatus(target),
    };
    w.end()?;
    Ok(cmd)
}

fn parse_highavailability(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(HA_VERBS)? {
        "heartbeat" => match w.keyword(ADD_DELETE)? {
            "add" => {
                let source = w.address("source address")?;
                let destination = w.address("destination address")?;
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
            _ => Command::HaHeartbeatDelete(w.address("address")?),
        },
        "reach" => match w.keyword(ADD_DELETE)? {
            "add" => Command::HaReachAdd(w.address("address")?),
            _ => Command::HaReachDelete(w.address("address")?),
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
                // IBM's third role gets a clear refusal, but does not make `b` ambiguous.
                if w.words
                    .get(w.pos)
                    .is_some_and(|r| r.eq_ignore_ascii_case("both"))
                {
                    return Err(ParseError::Invalid(
                        "role 'both' (mutual high availability) is not supported; use primary or backup".to_string(),
                    ));
                }
                let role = match w.keyword(ROLES)? {
                    "primary" => Role::Primary,
                    _ => Role::Backup,
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
        "takeover" => {
            if let Some(word) = w.next() {
                parse_address(word)?;
                return Err(ParseError::Invalid(
                    "takeover ADDRESS is for mutual high availability (role both), which Tandem does \
                     not run; use 'highavailability takeover' on the Standby node"
                        .to_string(),
                ));
            }
            Command::HaTakeover(None)
        }
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
        _ => match w.words.get(w.pos) {
            None => Command::HaMaintenance,
            Some(_) => Command::HaMaintenanceMode(w.keyword(START_STOP)? == "start"),
        },
    };
    w.end()?;
    Ok(cmd)
}

fn parse_manager(w: &mut Words<'_>) -> Result<Command, ParseError> {
    w.keyword(MANAGER_VERBS)?; // reach
    w.keyword(SET)?;
    w.keyword(REACH_SETTINGS)?; // interval
    let seconds = parse_seconds(w.value("seconds")?, "interval")?;
    w.end()?;
    Ok(Command::ManagerReachInterval(seconds))
}

/// Parses the words of one command (without a leading `dscontrol`).
///
/// Checks syntax and value ranges only; whether the named clusters, ports and servers exist
/// is for [`Config::apply`](super::Config::apply).
pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut w = Words { words, pos: 0 };
    match w.keyword(OBJECTS)? {
        "executor" => parse_executor(&mut w),
        "cluster" => parse_cluster(&mut w),
        "port" => parse_port_command(&mut w),
        "server" => parse_server_command(&mut w),
        "highavailability" => parse_highavailability(&mut w),
        _ => parse_manager(&mut w),
    }
}

/// Parses one line of a configuration file or of interactive input.
///
/// A `#` starts a comment that runs to the end of the line. The words are separated by
/// whitespace, and a leading `dscontrol` or `tandemctl` is skipped. A line with no words
/// (blank, or only a comment) gives `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let text = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    parse_words(&words)
}

/// Parses a command given as words already (from `tandemctl`'s arguments): no comment is cut
/// and no word is split again, so a file name with a space or a `#` stays whole. A leading
/// `dscontrol` or `tandemctl` is skipped; no words at all give `Ok(None)`.
pub fn parse_words(words: &[&str]) -> Result<Option<Command>, ParseError> {
    let mut words = words;
    if words.is_empty() {
        return Ok(None);
    }
    if PROGRAM_NAMES.contains(&words[0].to_ascii_lowercase().as_str()) {
        let program = words[0];
        words = &words[1..];
        if words.is_empty() {
            return Err(ParseError::MissingKeyword {
                after: program.to_string(),
                expected: OBJECTS.to_vec(),
            });
        }
    }
    parse(words).map(Some)
}
