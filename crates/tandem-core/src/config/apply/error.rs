//! Why a command cannot be applied.

use std::net::IpAddr;

/// Why a command cannot be applied to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cluster {0} does not exist")]
    ClusterNotFound(IpAddr),
    #[error("cluster {0} already exists")]
    ClusterExists(IpAddr),
    #[error("port {cluster}@{port} does not exist")]
    PortNotFound { cluster: IpAddr, port: u16 },
    #[error("port {cluster}@{port} already exists")]
    PortExists { cluster: IpAddr, port: u16 },
    /// `server add` names a port that does not exist.
    #[error("server on an unknown port {cluster}@{port}")]
    ServerOnUnknownPort { cluster: IpAddr, port: u16 },
    #[error("server {cluster}@{port}@{server} does not exist")]
    ServerNotFound {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error("server {cluster}@{port}@{server} already exists")]
    ServerExists {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    /// A changing command whose wildcards select nothing.
    #[error("no {kind} matches '{target}'")]
    NothingSelected { kind: &'static str, target: String },
    #[error(
        "weight {weight} out of range 0-{weightbound} (the weightbound of port {cluster}@{port})"
    )]
    WeightAboveBound {
        cluster: IpAddr,
        port: u16,
        weight: u32,
        weightbound: u32,
    },
    #[error(
        "port {cluster}@{port}: selectionalgorithm affinity does not work with method nat \
         (use connection, conn+affin or hash)"
    )]
    NatAffinity { cluster: IpAddr, port: u16 },
    #[error(
        "server {cluster}@{port}@{server} needs a returnaddress: port {cluster}@{port} uses method nat"
    )]
    MissingReturnAddress {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error(
        "returnaddress {returnaddress} of server {cluster}@{port}@{server} must differ from the cluster, \
         server and nfa addresses (it is {clash})"
    )]
    ReturnAddressClash {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
        returnaddress: IpAddr,
        clash: String,
    },
    #[error(
        "the returnaddress of server {cluster}@{port}@{server} cannot be changed with server set; \
         remove the server and add it again"
    )]
    ReturnAddressFixed {
        cluster: IpAddr,
        port: u16,
        server: IpAddr,
    },
    #[error("{what} {address} is not of the same address family as {of}")]
    FamilyMismatch {
        what: &'static str,
        address: IpAddr,
        of: String,
    },
    /// An address the data plane cannot serve: multicast, the IPv4 broadcast address, or an
    /// IPv4-mapped IPv6 address (never on the wire; write the IPv4 address).
    #[error("{what} {address} cannot be forwarded to: it is {why}")]
    UnservableAddress {
        what: &'static str,
        address: IpAddr,
        why: &'static str,
    },
    #[error("nfa {0} is also a cluster address")]
    NfaIsCluster(IpAddr),
    #[error("heartbeat {0} {1} already exists")]
    HeartbeatExists(IpAddr, IpAddr),
    #[error("no heartbeat uses address {0}")]
    HeartbeatNotFound(IpAddr),
    #[error("reach target {0} already exists")]
    ReachExists(IpAddr),
    #[error("reach target {0} does not exist")]
    ReachNotFound(IpAddr),
    #[error(
        "high availability backup is already configured; run 'highavailability backup delete' first"
    )]
    BackupExists,
    #[error("no high availability backup is configured")]
    NoBackup,
    /// `advisor stop|report|status|interval|...` of an advisor that is not started there.
    #[error("advisor {advisor} is not started on {on}")]
    AdvisorNotStarted { advisor: String, on: String },
    #[error("advisor {advisor} is already started on {on}")]
    AdvisorAlreadyStarted { advisor: String, on: String },
    #[error("the manager is already started")]
    ManagerAlreadyStarted,
    #[error("the manager is not started")]
    ManagerNotStarted,
    #[error("sasp group {group} already takes weights from gwm {gwm}")]
    SaspGwmExists { group: String, gwm: String },
    #[error("there is no sasp group {0}")]
    SaspGroupNotFound(String),
    #[error("sasp group {group} has no gwm {gwm}")]
    SaspGwmNotFound { group: String, gwm: String },
    /// A command value out of range (only possible for commands built in code, since
    /// [`parse`](super::parse) checks ranges).
    #[error("{0}")]
    Invalid(String),
}
