//! The dscontrol command grammar: words in, [`Command`] out.
//!
//! ```text
//! executor start|stop|status|report
//! executor set nfa ADDR | clientgateway ADDR | hatimeout SECONDS
//!     | maxconnections N|auto | syntimeout SECONDS | packetio auto|afxdp|afpacket
//!     | metrics ADDR:PORT|off | loglevel error|warn|info|debug|trace
//! cluster add CLUSTER[+CLUSTER...] [proportions ACTIVE NEW PORT SYSTEM]
//! cluster set CLUSTER[+CLUSTER...]|@ proportions ACTIVE NEW PORT SYSTEM
//! cluster add|set CLUSTER ... [label "TEXT"];  server add|set ... [label "TEXT"]
//! cluster remove|report|status CLUSTER[+CLUSTER...]|@
//! port add|set CLUSTER@PORT[+PORT...] [method mac|nat] [protocol tcp|udp]
//!     [selectionalgorithm connection|affinity|conn+affin|hash] [stickytime S]
//!     [staletimeout S] [weightbound N] [reset yes|no] [repstrategy none|connection|affinity|both]
//! port remove|report|status CLUSTER@PORT
//! server add CLUSTER@PORT@SERVER [weight N] [fixedweight yes|no] [returnaddress ADDR]
//!     [router ADDR] [mapport P] [advisorrequest "TEXT"] [advisorresponse "TEXT"]
//! server set CLUSTER@PORT@SERVER [weight N] [fixedweight yes|no] [returnaddress ADDR] [router ADDR]
//!     [advisorrequest "TEXT"] [advisorresponse "TEXT"]
//! server down|up|remove|report|status CLUSTER@PORT@SERVER
//! highavailability heartbeat add SRC DST | heartbeat delete ADDR
//! highavailability reach add|delete ADDR
//! highavailability backup add primary|backup auto|manual PORT | backup delete
//! highavailability backup set recovery auto|manual
//! highavailability status | takeover | maintenance [start|stop]
//! highavailability key FILE | key generate FILE | scripts DIR
//! highavailability sync off|on
//! manager reach set interval SECONDS
//! ha start|configure|stop|status|failover ...  (appliance commands: see the `appliance` module)
//! advisor ... | manager ... | sasp ...      (server health: see the `health` module)
//! executor set fintimeout S | staletimeout S | stickytime S
//! cluster add|set CLUSTER ... [staletimeout S] [stickytime S] [weightbound N]; add: [address ADDR]
//! port add|set ... [porttype tcp|udp|both];  server add ... [address ADDR]
//! file save NAME [force] | newload NAME | appendload NAME | report | delete NAME
//! ```
//!
//! The group and verb keywords come from the syntax table ([`syntax`]), which also gives
//! `tandemctl` its help, completions and man pages.
//!
//! A string value is one word; in a line it is double-quoted to hold spaces or `#`
//! (`advisorrequest "HEAD / HTTP/1.1\r\nHost: www"`), with the escapes `\"` `\\` `\r` `\n`
//! `\t`. `Display` always writes it quoted.
//!
//! As in dscontrol, every keyword (command words, option names and option values such as
//! `nat` or `conn+affin`) may be shortened to any prefix that is unique where it stands:
//! `ex sta` is `executor start`, `ex st` is ambiguous. Keywords are case-insensitive.
//!
//! In a `CLUSTER@PORT@SERVER` target each part is either a `+` list (`10.0.0.1+10.0.0.2`) or
//! empty, which is the `@` wildcard: `@80@10.0.0.21` is server 10.0.0.21 on port 80 of
//! every cluster, `10.0.0.1@@` every server of every port of cluster 10.0.0.1, and a lone `@`
//! every cluster (or, as a port target, every port of every cluster). Clusters and servers are
//! IP addresses (IPv4 or IPv6); with a [`Resolver`] ([`parse_resolving`]) they, and heartbeat
//! and reach addresses, may also be host names, resolved once with a warning.

mod appliance;
mod diagnostics;
mod display;
mod executor_cluster;
mod file;
mod health;
mod highavailability;
mod port_server;
pub mod syntax;
mod targets;
mod words;

pub use appliance::{Appliance, ApplianceOptions, ByRole, DEFAULT_HA_PORT};
pub(crate) use executor_cluster::check_proportions;
pub use executor_cluster::{ExecutorSetting, MAX_FINTIMEOUT};
pub use file::{MAX_FILE_NAME, check_file_name};
pub use health::{
    AdvisorSetting, GwmSelector, MAX_CUSTOM_ADVISOR_NAME, MAX_RETRIES, MAX_SMOOTHING,
};
pub use port_server::{PortOptions, ServerOptions};
pub use targets::{PortTarget, ServerTarget, Targets};
pub use words::{MAX_ADVISOR_TEXT, MAX_LABEL, NoResolver, Resolver, split_line};

use super::health::{AdvisorKey, GwmAddress, Proportions, SaspGroupTarget, SaspGwm};
use super::model::{Backup, PortDefaults, Recovery};
use serde::Serialize;
use std::net::IpAddr;
use syntax::OBJECTS;
use words::Words;
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
    /// `cluster add CLUSTER[+CLUSTER...] [proportions ACTIVE NEW PORT SYSTEM] [primaryhost NFA]`
    /// (no wildcard)
    ClusterAdd {
        clusters: Vec<IpAddr>,
        proportions: Option<Proportions>,
        /// `staletimeout S`, `stickytime S`, `weightbound N`: defaults of ports added later.
        defaults: PortDefaults,
        /// The nfa of the node that forwards these clusters in mutual HA (mutual helper).
        primaryhost: Option<IpAddr>,
        /// `label "TEXT"`: the operator's name for the clusters (reports, status page).
        label: Option<String>,
    },
    /// `cluster set CLUSTER[+...]|@ proportions ACTIVE NEW PORT SYSTEM` (each 0-100, sum 100)
    ClusterSetProportions {
        clusters: Targets<IpAddr>,
        proportions: Proportions,
    },
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
    /// `highavailability backup add primary|backup|both auto|manual PORT`
    HaBackupAdd(Backup),
    /// `highavailability backup delete`
    HaBackupDelete,
    /// `highavailability backup set recovery auto|manual`: changes the recovery strategy in
    /// place (no delete and re-add, so the node never passes through Idle)
    HaBackupRecovery(Recovery),
    /// `highavailability status` (query)
    HaStatus,
    /// `highavailability takeover [ADDRESS]` (action for the HA machine; no model change).
    /// ADDRESS, a primaryhost, names the cluster group to take over in mutual high
    /// availability (role `both`); the daemon refuses it in an ordinary pair, with IBM's reason.
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
    /// `advisor start NAME PORT|CLUSTER@PORT` (refused if already started there)
    AdvisorStart(AdvisorKey),
    /// `advisor stop NAME PORT|CLUSTER@PORT`
    AdvisorStop(AdvisorKey),
    /// `advisor interval|connecttimeout|receivetimeout|retries|timeout NAME TARGET VALUE`
    AdvisorSet {
        key: AdvisorKey,
        setting: AdvisorSetting,
    },
    /// `advisor list` (query)
    AdvisorList,
    /// `advisor report NAME TARGET` (query)
    AdvisorReport(AdvisorKey),
    /// `advisor status NAME TARGET` (query)
    AdvisorStatus(AdvisorKey),
    /// `manager start`
    ManagerStart,
    /// `manager stop`
    ManagerStop,
    /// `manager status` (query)
    ManagerStatus,
    /// `manager report [CLUSTER[+...]|@]` (query; no cluster = every cluster)
    ManagerReport(Targets<IpAddr>),
    /// `manager interval SECONDS`
    ManagerInterval(f64),
    /// `manager sensitivity PERCENT` (0-100)
    ManagerSensitivity(u32),
    /// `manager smoothing INDEX` (1-100)
    ManagerSmoothing(f64),
    /// `manager quiesce SERVER|CLUSTER@PORT@SERVER`: no new connections, affinity kept. A
    /// lone `SERVER` is `@@SERVER` (that server on every port of every cluster).
    ManagerQuiesce(ServerTarget),
    /// `manager unquiesce SERVER|CLUSTER@PORT@SERVER`
    ManagerUnquiesce(ServerTarget),
    /// `sasp add CLUSTER[@PORT] gwm ADDRESS [port N] [mode push|pull] [members all|changed]
    /// [interval SECONDS] [grace SECONDS] [tls yes|no]`
    SaspAdd {
        group: SaspGroupTarget,
        gwm: GwmAddress,
        settings: SaspGwm,
    },
    /// `sasp remove CLUSTER[@PORT] [gwm ADDRESS [port N]]`: the whole group, or its GWMs at
    /// that address (and port)
    SaspRemove {
        group: SaspGroupTarget,
        gwm: Option<GwmSelector>,
    },
    /// `sasp report` (query)
    SaspReport,
    // --- logs helper ---
    /// `diagnostics FILE`: writes the diagnostics archive of the pair (both nodes' HA logs,
    /// status, configuration, counters) to FILE. An action; not saved in files.
    Diagnostics(String),
    // ----- appliance helper (issue 9) -----
    /// `ha start|configure|stop|status|failover`: the appliance commands, a front over the
    /// HA statements (see `config::appliance`)
    Ha(Appliance),
    // ----- sync helper -----
    /// `highavailability sync off|on`: configuration sync with the partner (node-local; on by
    /// default; see `docs/config-sync.md`)
    HaSync(bool),

    // ---- files helper (issue 9): IBM classic cluster defaults, manager start's log file,
    // and the `file` commands.
    /// `cluster set CLUSTER[+...]|@ [staletimeout S] [stickytime S] [weightbound N]`:
    /// defaults of the ports added to the cluster later (IBM: "inherited by objects added
    /// later, but only the port-level value takes effect").
    ClusterSetDefaults {
        clusters: Targets<IpAddr>,
        defaults: PortDefaults,
    },
    /// `manager start LOGFILE [METRIC_PORT]` (IBM's form): starts the manager as `manager
    /// start` does; the log file and the metric port are not used, and loading or running
    /// it warns so (the manager logs through tandemd's log; there is no Metric Server).
    ManagerStartLogged {
        logfile: String,
        metric_port: Option<u16>,
    },
    /// `file save NAME [force]`: writes the configuration to NAME of the configuration
    /// directory; an existing NAME only with `force` (an action, not a change)
    FileSave { name: String, force: bool },
    /// `file newload NAME`: replaces the configuration by file NAME (all or nothing)
    FileNewLoad(String),
    /// `file appendload NAME`: applies file NAME on top of the configuration (all or nothing)
    FileAppendLoad(String),
    /// `file report`: the files of the configuration directory (query)
    FileReport,
    /// `file delete NAME`: removes file NAME of the configuration directory (an action)
    FileDelete(String),
    // ----- mutual (mutual high availability) -----
    /// `cluster set CLUSTER[+...]|@ primaryhost NFA`: the node that forwards the clusters in
    /// mutual HA
    ClusterSetPrimaryHost {
        clusters: Targets<IpAddr>,
        primaryhost: IpAddr,
    },
    /// `cluster set CLUSTER[+...]|@ label "TEXT"`: the operator's name for the clusters
    /// (at most 64 printable characters; `""` removes it)
    ClusterSetLabel {
        clusters: Targets<IpAddr>,
        label: String,
    },
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
                | Command::AdvisorList
                | Command::AdvisorReport(_)
                | Command::AdvisorStatus(_)
                | Command::ManagerStatus
                | Command::ManagerReport(_)
                | Command::SaspReport
                | Command::Diagnostics(_)
                | Command::Ha(Appliance::Status | Appliance::Failover)
                | Command::FileSave { .. }
                | Command::FileNewLoad(_)
                | Command::FileAppendLoad(_)
                | Command::FileReport
                | Command::FileDelete(_)
        )
    }

    /// Whether this is one of the `file` commands (run by the daemon, which owns the files).
    pub fn is_file_command(&self) -> bool {
        matches!(
            self,
            Command::FileSave { .. }
                | Command::FileNewLoad(_)
                | Command::FileAppendLoad(_)
                | Command::FileReport
                | Command::FileDelete(_)
        )
    }

    /// What the command accepts but does not act on, said to the operator (`manager start
    /// LOGFILE PORT`); empty for every other command.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Command::ManagerStartLogged {
                logfile,
                metric_port,
            } => {
                let port = match metric_port {
                    Some(p) => format!(" and the metric port {p}"),
                    None => String::new(),
                };
                vec![format!(
                    "manager start: the log file {logfile}{port} are not used (the manager logs \
                     through tandemd's log, and there is no Metric Server); the manager is started"
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// Whether `cmd` changes the configuration (see [`Command::is_mutation`]).
pub fn is_mutation(cmd: &Command) -> bool {
    cmd.is_mutation()
}

/// Words that may precede a command on a line and are skipped.
const PROGRAM_NAMES: [&str; 2] = ["dscontrol", "tandemctl"];

/// Parses the words of one command (without a leading `dscontrol`).
///
/// Checks syntax and value ranges only; whether the named clusters, ports and servers exist
/// is for [`Config::apply`](super::Config::apply).
pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut w = Words {
        words,
        pos: 0,
        resolver: None,
        warnings: Vec::new(),
    };
    parse_in(&mut w)
}

/// Parses the words of one command (without a leading `dscontrol`), resolving host names
/// where the grammar allows them (clusters, servers, heartbeat and reach addresses) through
/// `resolver`. Returns the command and a warning per name resolved (`resolved NAME to ADDR`).
pub fn parse_resolving(
    words: &[&str],
    resolver: &mut dyn Resolver,
) -> Result<(Command, Vec<String>), ParseError> {
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut w = Words {
        words,
        pos: 0,
        resolver: Some(resolver),
        warnings: Vec::new(),
    };
    let cmd = parse_in(&mut w)?;
    Ok((cmd, w.warnings))
}

fn parse_in(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let w = &mut *w;
    // `ha` (the appliance commands) is matched whole: its one prefix `h` stays
    // `highavailability`, as in dscontrol.
    if w.words[0].eq_ignore_ascii_case("ha") {
        w.pos = 1;
        return appliance::parse_ha(w);
    }
    match w.keyword(OBJECTS)? {
        "executor" => executor_cluster::parse_executor(w),
        "cluster" => executor_cluster::parse_cluster(w),
        "port" => port_server::parse_port_command(w),
        "server" => port_server::parse_server_command(w),
        "highavailability" => highavailability::parse_highavailability(w),
        "manager" => health::parse_manager(w),
        "advisor" => health::parse_advisor(w),
        "diagnostics" => diagnostics::parse_diagnostics(w),
        "file" => file::parse_file(w),
        _ => health::parse_sasp(w),
    }
}

/// Parses one line of a configuration file or of interactive input.
///
/// A `#` starts a comment that runs to the end of the line. The words are separated by
/// whitespace; a double-quoted word keeps its spaces and `#` (see [`split_line`]). A leading
/// `dscontrol` or `tandemctl` is skipped. A line with no words (blank, or only a comment)
/// gives `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let words = split_line(line)?;
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    parse_words(&refs)
}

/// Parses a command given as words already (from `tandemctl`'s arguments): no comment is cut
/// and no word is split again, so a file name with a space or a `#` stays whole. String
/// values (`advisorrequest "..."`) decode their backslash escapes here as in a line. A leading
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

/// [`parse_words`] with host names resolved through `resolver` (see [`parse_resolving`]).
pub fn parse_words_resolving(
    words: &[&str],
    resolver: &mut dyn Resolver,
) -> Result<Option<(Command, Vec<String>)>, ParseError> {
    let Some(words) = strip_program_name(words)? else {
        return Ok(None);
    };
    parse_resolving(words, resolver).map(Some)
}

/// [`parse_line`] with host names resolved through `resolver` (see [`parse_resolving`]).
pub fn parse_line_resolving(
    line: &str,
    resolver: &mut dyn Resolver,
) -> Result<Option<(Command, Vec<String>)>, ParseError> {
    let words = split_line(line)?;
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    parse_words_resolving(&refs, resolver)
}

/// The words without a leading `dscontrol` / `tandemctl`; `None` for no words.
fn strip_program_name<'a, 'b>(words: &'a [&'b str]) -> Result<Option<&'a [&'b str]>, ParseError> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if PROGRAM_NAMES.contains(&first.to_ascii_lowercase().as_str()) {
        if words.len() == 1 {
            return Err(ParseError::MissingKeyword {
                after: first.to_string(),
                expected: OBJECTS.to_vec(),
            });
        }
        return Ok(Some(&words[1..]));
    }
    Ok(Some(words))
}
