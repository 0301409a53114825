//! The configuration model: executor → cluster → port → server, as dscontrol has it.
//!
//! This is plain data. The grammar (`super::grammar`) turns command words into
//! [`super::Command`]s and [`Config::apply`](super::Config::apply) changes a model; the data
//! plane compiles a model into its lookup snapshot.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Forwarding method of a port (`port add ... method mac|nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Dispatch / direct server return: the frame goes unchanged to the server's MAC.
    Mac,
    /// Directed: destination rewritten to the server, source to its returnaddress.
    Nat,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// `selectionalgorithm` of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// A server picked afresh (by weight) for each new connection.
    Connection,
    /// A client IP keeps its server while its affinity record lives (stickytime).
    Affinity,
    /// Both: affinity when a live record exists, else by weight.
    #[serde(rename = "conn+affin")]
    ConnAffin,
    /// Weighted Maglev lookup on the flow hash: no shared state needed.
    Hash,
}

/// `repstrategy` of a port: which records are replicated to the HA partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepStrategy {
    None,
    Connection,
    Affinity,
    Both,
}

/// Packet I/O backend of the data plane (`executor set packetio`, node-local; docs/packet-io.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketIo {
    /// AF_XDP where the interface takes it, else AF_PACKET.
    #[default]
    Auto,
    /// AF_XDP only: the data plane does not start when the interface refuses it.
    Afxdp,
    /// AF_PACKET rings (no XDP program).
    Afpacket,
}

impl PacketIo {
    /// The keyword, as `executor set packetio` takes it.
    pub fn word(self) -> &'static str {
        match self {
            PacketIo::Auto => "auto",
            PacketIo::Afxdp => "afxdp",
            PacketIo::Afpacket => "afpacket",
        }
    }
}

/// The daemon's log level (`executor set loglevel`, node-local; docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    /// The default.
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The keyword, as `executor set loglevel` takes it.
    pub fn word(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level of a keyword (full, lowercase); `None` for any other word.
    pub fn from_word(word: &str) -> Option<LogLevel> {
        Some(match word {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

/// The executor: the forwarding engine of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Executor {
    /// `executor start` has been run (and `stop` not since).
    pub started: bool,
    /// Non-forwarding address: the node's own address on the forwarding interface.
    pub nfa: Option<IpAddr>,
    /// Router through which traffic back to clients goes (NAT).
    pub clientgateway: Option<IpAddr>,
    /// HA heartbeat timeout, seconds (default 2).
    pub hatimeout: f64,
    /// Most connection records (and affinity records) the node holds; `None` (`auto`): derived
    /// from the machine's memory when the daemon starts.
    pub maxconnections: Option<u64>,
    /// Seconds a TCP record lives before the client's first ACK (half-open), default
    /// [`DEFAULT_SYNTIMEOUT`].
    pub syntimeout: u32,
    /// Seconds a closed (FIN/RST) connection record is kept (`executor set fintimeout`);
    /// `None`: the data plane's default (`forward::plan::DEFAULT_FIN_TIMEOUT`, 4 s).
    pub fintimeout: Option<u32>,
    /// Executor-level default `staletimeout` for ports added later (`executor set
    /// staletimeout`); the port-level value is the one that takes effect.
    pub staletimeout: Option<u32>,
    /// Executor-level default `stickytime` for ports added later (`executor set stickytime`).
    pub stickytime: Option<u32>,
    /// Packet I/O backend (`executor set packetio auto|afxdp|afpacket`), default auto.
    pub packetio: PacketIo,
    /// Where the metrics and the status page are served (`executor set metrics
    /// ADDR:PORT|off`, node-local); `None` (the default): not served.
    pub metrics: Option<std::net::SocketAddr>,
    /// The daemon's log level (`executor set loglevel`, node-local), default info.
    pub loglevel: LogLevel,
}

/// Default `syntimeout`, seconds: a handshake that completes at all does so within it
/// (a lost SYN-ACK is sent again after 1 s, then 3 s), while a SYN flood's records, and the NAT
/// ports they hold, go after seconds instead of the staletimeout's minutes.
pub const DEFAULT_SYNTIMEOUT: u32 = 5;

/// Largest `maxconnections`.
pub const MAX_MAXCONNECTIONS: u64 = 1 << 30;

/// Largest `syntimeout`, seconds.
pub const MAX_SYNTIMEOUT: u32 = 3600;

impl Default for Executor {
    fn default() -> Self {
        Executor {
            started: false,
            nfa: None,
            clientgateway: None,
            hatimeout: 2.0,
            maxconnections: None,
            syntimeout: DEFAULT_SYNTIMEOUT,
            fintimeout: None,
            staletimeout: None,
            stickytime: None,
            packetio: PacketIo::Auto,
            metrics: None,
            loglevel: LogLevel::Info,
        }
    }
}

/// A cluster: a virtual address that clients connect to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub address: IpAddr,
    /// How the manager weighs its inputs (`cluster set CLUSTER proportions ...`).
    pub proportions: super::health::Proportions,
    /// Cluster-level defaults for ports added later (`cluster add|set C staletimeout S |
    /// stickytime S | weightbound N`); they win over the executor's, and a value given at
    /// `port add` wins over both. Only the port-level value takes effect (IBM).
    pub defaults: PortDefaults,
    /// `cluster add|set CLUSTER primaryhost NFA`: the nfa of the node that forwards this
    /// cluster in mutual high availability (role `both`, see `docs/mutual-ha.md`).
    pub primaryhost: Option<IpAddr>,
    /// `cluster add|set CLUSTER label "TEXT"`: the operator's name for the cluster, shown by
    /// the reports and the status page (at most 64 printable characters, shared by the pair).
    pub label: Option<String>,
    pub ports: BTreeMap<u16, Port>,
}

/// Defaults that a cluster hands to the ports added to it later; `None` = not set here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortDefaults {
    pub staletimeout: Option<u32>,
    pub stickytime: Option<u32>,
    pub weightbound: Option<u32>,
}

impl PortDefaults {
    /// Whether no default is set.
    pub fn is_empty(&self) -> bool {
        *self == PortDefaults::default()
    }
}

/// A port of a cluster and its servers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Port {
    pub number: u16,
    pub method: Method,
    /// The protocol the port serves (`protocol tcp|udp`, IBM's `porttype tcp|udp`); with
    /// [`Port::both`] it is `Tcp` and the port serves UDP as well.
    pub protocol: Protocol,
    /// `porttype both`: the port serves TCP and UDP (see [`Port::protocols`]).
    pub both: bool,
    pub selection: Selection,
    /// Seconds an affinity record lives without a new connection; 0 = no affinity.
    pub stickytime: u32,
    /// Seconds of inactivity after which a connection record is removed.
    pub staletimeout: u32,
    /// Largest weight a server may have on this port (1–100).
    pub weightbound: u32,
    /// Send a TCP RST to clients of a server that goes down (weight 0 / `server down`).
    pub reset: bool,
    pub repstrategy: RepStrategy,
    /// Servers by address.
    pub servers: BTreeMap<IpAddr, Server>,
}

impl Port {
    /// A port with IBM's defaults: method mac, tcp, selectionalgorithm connection,
    /// stickytime 0, weightbound 20, staletimeout 300 (900 on port 21, 32000000 on port 23).
    pub fn with_defaults(number: u16) -> Port {
        Port {
            number,
            method: Method::Mac,
            protocol: Protocol::Tcp,
            both: false,
            selection: Selection::Connection,
            stickytime: 0,
            staletimeout: default_staletimeout(number),
            weightbound: 20,
            reset: false,
            repstrategy: RepStrategy::None,
            servers: BTreeMap::new(),
        }
    }
}

impl Port {
    /// The protocols the port serves: one, or TCP and UDP for `porttype both`.
    pub fn protocols(&self) -> &'static [Protocol] {
        match (self.both, self.protocol) {
            (true, _) => &[Protocol::Tcp, Protocol::Udp],
            (false, Protocol::Tcp) => &[Protocol::Tcp],
            (false, Protocol::Udp) => &[Protocol::Udp],
        }
    }

    /// `tcp`, `udp` or `both`, as `port report` shows it.
    pub fn porttype_keyword(&self) -> &'static str {
        if self.both {
            "both"
        } else {
            self.protocol.keyword()
        }
    }
}

/// IBM's default staletimeout for a port number.
pub fn default_staletimeout(port: u16) -> u32 {
    match port {
        21 => 900,
        23 => 32_000_000,
        _ => 300,
    }
}

/// A server behind a port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    pub address: IpAddr,
    /// 0..=weightbound; 0 = no new connections. Default weightbound/2.
    pub weight: u32,
    /// The manager never changes a fixed weight.
    pub fixedweight: bool,
    /// NAT: source address of forwarded requests (servers reply to it).
    pub returnaddress: Option<IpAddr>,
    /// Next hop towards the server (defaults to the server itself).
    pub router: Option<IpAddr>,
    /// NAT: destination port on the server (defaults to the cluster port).
    pub mapport: Option<u16>,
    /// `server down`: no new connections; open ones continue.
    pub down: bool,
    /// `manager quiesce`: no new connections, but clients with affinity keep reaching it.
    pub quiesced: bool,
    /// The request the `http`/`https`/`dns` advisors send (`advisorrequest`).
    pub advisorrequest: Option<String>,
    /// The reply the advisors expect (`advisorresponse`, a substring of the reply).
    pub advisorresponse: Option<String>,
    /// `server add|set ... label "TEXT"`: the operator's name for the server (reports,
    /// status page; at most 64 printable characters).
    pub label: Option<String>,
}

impl Server {
    /// Whether the server may receive new connections.
    pub fn accepts_new(&self) -> bool {
        !self.down && self.weight > 0
    }
}

impl Method {
    /// The dscontrol keyword (`mac`, `nat`).
    pub fn keyword(self) -> &'static str {
        match self {
            Method::Mac => "mac",
            Method::Nat => "nat",
        }
    }
}

impl Protocol {
    /// The dscontrol keyword (`tcp`, `udp`).
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl Selection {
    /// The dscontrol keyword (`connection`, `affinity`, `conn+affin`, `hash`).
    pub fn keyword(self) -> &'static str {
        match self {
            Selection::Connection => "connection",
            Selection::Affinity => "affinity",
            Selection::ConnAffin => "conn+affin",
            Selection::Hash => "hash",
        }
    }
}

impl RepStrategy {
    /// The dscontrol keyword (`none`, `connection`, `affinity`, `both`).
    pub fn keyword(self) -> &'static str {
        match self {
            RepStrategy::None => "none",
            RepStrategy::Connection => "connection",
            RepStrategy::Affinity => "affinity",
            RepStrategy::Both => "both",
        }
    }
}

/// Role of this node in an HA pair (`highavailability backup add primary|backup ...`).
///
/// `both` is mutual high availability: two HA instances, each an ordinary primary/backup
/// pair for the clusters of one primaryhost (`docs/mutual-ha.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Backup,
    Both,
}

impl Role {
    /// The dscontrol keyword (`primary`, `backup`).
    pub fn keyword(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
            Role::Both => "both",
        }
    }
}

/// Recovery strategy of an HA pair: whether a recovered primary takes Active back by itself
/// (`auto`) or only on `highavailability takeover` (`manual`). Failover is the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    Auto,
    Manual,
}

impl Recovery {
    /// The dscontrol keyword (`auto`, `manual`).
    pub fn keyword(self) -> &'static str {
        match self {
            Recovery::Auto => "auto",
            Recovery::Manual => "manual",
        }
    }
}

/// `highavailability backup add ROLE RECOVERY PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub role: Role,
    pub recovery: Recovery,
    /// UDP port that carries the heartbeats; the same on both nodes.
    pub port: u16,
}

/// The high-availability part of a configuration (`highavailability ...` statements and
/// `manager reach set interval`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaConfig {
    /// Heartbeat pairs (source on this node, destination on the partner), in the order added.
    pub heartbeats: Vec<(IpAddr, IpAddr)>,
    /// Reach targets, in the order added.
    pub reach: Vec<IpAddr>,
    /// Role, recovery strategy and heartbeat port; `None` = no HA (stand-alone, Idle).
    pub backup: Option<Backup>,
    /// Path of the file holding the HMAC key that authenticates heartbeats.
    pub key_file: Option<String>,
    /// Directory holding the goActive / goStandby / ... scripts.
    pub script_dir: Option<String>,
    /// Seconds between reach-target probes (`manager reach set interval`, default 2).
    pub reach_interval: f64,
    /// Configuration sync with the partner (`highavailability sync off|on`, default on).
    pub sync: bool,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            heartbeats: Vec::new(),
            reach: Vec::new(),
            backup: None,
            key_file: None,
            script_dir: None,
            reach_interval: 2.0,
            sync: true,
        }
    }
}
