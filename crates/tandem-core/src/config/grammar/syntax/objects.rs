//! The syntax of `executor`, `cluster`, `port` and `server`.

use super::{Opt, Verb, names, opt, verb};

// ---------------------------------------------------------------- executor

const EXECUTOR_SETTINGS: &[Opt] = &[
    opt("nfa", "ADDR"),
    opt("clientgateway", "ADDR"),
    opt("hatimeout", "SECONDS"),
    opt("maxconnections", "N|auto"),
    opt("syntimeout", "SECONDS"),
    opt("fintimeout", "SECONDS"),
    opt("staletimeout", "SECONDS"),
    opt("stickytime", "SECONDS"),
    opt("packetio", "auto|afxdp|afpacket"),
    opt("metrics", "ADDR:PORT|off"),
    opt("loglevel", "error|warn|info|debug|trace"),
];

pub(super) const EXECUTOR: [Verb; 5] = [
    verb(
        "start",
        "start forwarding",
        &["executor start"],
        &[],
        &["executor start"],
    ),
    verb(
        "stop",
        "stop forwarding (ends every connection record, stops answering ARP)",
        &["executor stop"],
        &[],
        &["executor stop"],
    ),
    verb(
        "status",
        "state, nfa, interface, counters and drops by reason",
        &["executor status"],
        &[],
        &["executor status"],
    ),
    verb(
        "report",
        "the status with the table bounds, records and replication counters",
        &["executor report"],
        &[],
        &["executor report"],
    ),
    verb(
        "set",
        "set one node setting (nfa, timeouts, table bound, packet I/O, metrics, log level)",
        &[
            "executor set nfa ADDR",
            "executor set clientgateway ADDR",
            "executor set hatimeout SECONDS",
            "executor set maxconnections N|auto",
            "executor set syntimeout SECONDS",
            "executor set fintimeout SECONDS",
            "executor set staletimeout SECONDS",
            "executor set stickytime SECONDS",
            "executor set packetio auto|afxdp|afpacket",
            "executor set metrics ADDR:PORT|off",
            "executor set loglevel error|warn|info|debug|trace",
        ],
        EXECUTOR_SETTINGS,
        &[
            "executor set nfa 192.0.2.2",
            "executor set clientgateway 192.0.2.1",
            "executor set hatimeout 2",
            "executor set maxconnections auto",
            "executor set syntimeout 5",
            "executor set fintimeout 4",
            "executor set staletimeout 300",
            "executor set stickytime 0",
            "executor set packetio afpacket",
            "executor set metrics 192.0.2.2:9100",
            "executor set loglevel info",
        ],
    ),
];
pub(in crate::config::grammar) const EXECUTOR_VERBS: [&str; 5] = names(&EXECUTOR);

// ---------------------------------------------------------------- cluster

const CLUSTER_ADD_OPTS: &[Opt] = &[
    opt("address", "ADDR"),
    opt("primaryhost", "NFA"),
    opt("proportions", "ACTIVE NEW PORT SYSTEM"),
    opt("staletimeout", "SECONDS"),
    opt("stickytime", "SECONDS"),
    opt("weightbound", "N"),
    opt("label", "\"TEXT\""),
];
const CLUSTER_SET_OPTS: &[Opt] = &[
    opt("primaryhost", "NFA"),
    opt("proportions", "ACTIVE NEW PORT SYSTEM"),
    opt("staletimeout", "SECONDS"),
    opt("stickytime", "SECONDS"),
    opt("weightbound", "N"),
    opt("label", "\"TEXT\""),
];

pub(super) const CLUSTER: [Verb; 5] = [
    verb(
        "add",
        "add clusters (cluster addresses Tandem answers ARP for while it forwards)",
        &[
            "cluster add CLUSTER[+CLUSTER...] [proportions ACTIVE NEW PORT SYSTEM] [primaryhost NFA] [staletimeout S] [stickytime S] [weightbound N] [label \"TEXT\"]",
            "cluster add NAME address ADDR [OPTIONS]",
        ],
        CLUSTER_ADD_OPTS,
        &[
            "cluster add 192.0.2.100",
            "cluster add 192.0.2.100+192.0.2.101 proportions 50 50 0 0",
            "cluster add 192.0.2.100 staletimeout 600 weightbound 10",
        ],
    ),
    verb(
        "set",
        "change clusters: proportions, port defaults or primaryhost",
        &[
            "cluster set CLUSTER[+...]|@ proportions ACTIVE NEW PORT SYSTEM",
            "cluster set CLUSTER[+...]|@ [staletimeout S] [stickytime S] [weightbound N]",
            "cluster set CLUSTER[+...]|@ primaryhost NFA",
            "cluster set CLUSTER[+...]|@ label \"TEXT\"",
        ],
        CLUSTER_SET_OPTS,
        &[
            "cluster set @ proportions 40 40 20 0",
            "cluster set 192.0.2.100 stickytime 30",
            "cluster set 192.0.2.100 primaryhost 192.0.2.2",
        ],
    ),
    verb(
        "remove",
        "remove clusters with their ports, servers, advisors and SASP groups",
        &["cluster remove CLUSTER[+...]|@"],
        &[],
        &["cluster remove 192.0.2.100"],
    ),
    verb(
        "report",
        "clusters' settings and traffic",
        &["cluster report CLUSTER[+...]|@"],
        &[],
        &["cluster report @"],
    ),
    verb(
        "status",
        "clusters' settings",
        &["cluster status CLUSTER[+...]|@"],
        &[],
        &["cluster status 192.0.2.100"],
    ),
];
pub(in crate::config::grammar) const CLUSTER_VERBS: [&str; 5] = names(&CLUSTER);

// ---------------------------------------------------------------- port

const PORT_OPTS: &[Opt] = &[
    opt("method", "mac|nat"),
    opt("protocol", "tcp|udp"),
    opt("porttype", "tcp|udp|both"),
    opt("selectionalgorithm", "connection|affinity|conn+affin|hash"),
    opt("stickytime", "SECONDS"),
    opt("staletimeout", "SECONDS"),
    opt("weightbound", "N"),
    opt("reset", "yes|no"),
    opt("repstrategy", "none|connection|affinity|both"),
];

pub(super) const PORT: [Verb; 5] = [
    verb(
        "add",
        "add ports to clusters",
        &[
            "port add CLUSTER@PORT[+PORT...] [method mac|nat] [protocol tcp|udp] [porttype tcp|udp|both] [selectionalgorithm connection|affinity|conn+affin|hash] [stickytime S] [staletimeout S] [weightbound N] [reset yes|no] [repstrategy none|connection|affinity|both]",
        ],
        PORT_OPTS,
        &[
            "port add 192.0.2.100@80",
            "port add 192.0.2.100@80+443 method nat selectionalgorithm hash",
            "port add 192.0.2.100@53 porttype both",
            "port add @8080 protocol udp staletimeout 60 repstrategy connection",
        ],
    ),
    verb(
        "set",
        "change ports' options",
        &["port set CLUSTER@PORT[+PORT...] [OPTIONS as for port add]"],
        PORT_OPTS,
        &["port set 192.0.2.100@80 stickytime 60 reset yes"],
    ),
    verb(
        "remove",
        "remove ports with their servers, advisors and SASP groups",
        &["port remove CLUSTER@PORT"],
        &[],
        &["port remove 192.0.2.100@80"],
    ),
    verb(
        "report",
        "ports' settings, traffic and records",
        &["port report CLUSTER@PORT"],
        &[],
        &["port report @"],
    ),
    verb(
        "status",
        "ports' settings",
        &["port status CLUSTER@PORT"],
        &[],
        &["port status 192.0.2.100@80"],
    ),
];
pub(in crate::config::grammar) const PORT_VERBS: [&str; 5] = names(&PORT);

// ---------------------------------------------------------------- server

const SERVER_ADD_OPTS: &[Opt] = &[
    opt("address", "ADDR"),
    opt("weight", "N"),
    opt("fixedweight", "yes|no"),
    opt("returnaddress", "ADDR"),
    opt("router", "ADDR"),
    opt("mapport", "PORT"),
    opt("advisorrequest", "\"TEXT\""),
    opt("advisorresponse", "\"TEXT\""),
    opt("label", "\"TEXT\""),
];
const SERVER_SET_OPTS: &[Opt] = &[
    opt("weight", "N"),
    opt("fixedweight", "yes|no"),
    opt("returnaddress", "ADDR"),
    opt("router", "ADDR"),
    opt("advisorrequest", "\"TEXT\""),
    opt("advisorresponse", "\"TEXT\""),
    opt("label", "\"TEXT\""),
];

pub(super) const SERVER: [Verb; 7] = [
    verb(
        "add",
        "add servers to ports",
        &[
            "server add CLUSTER@PORT@SERVER[+SERVER...] [weight N] [fixedweight yes|no] [returnaddress ADDR] [router ADDR] [mapport PORT] [advisorrequest \"TEXT\"] [advisorresponse \"TEXT\"] [label \"TEXT\"]",
            "server add CLUSTER@PORT@NAME address ADDR [OPTIONS]",
        ],
        SERVER_ADD_OPTS,
        &[
            "server add 192.0.2.100@80@198.51.100.11",
            "server add 192.0.2.100@80@198.51.100.11+198.51.100.12 weight 10",
            "server add 192.0.2.100@80@198.51.100.11 returnaddress 192.0.2.50 mapport 8080",
        ],
    ),
    verb(
        "set",
        "change servers' options",
        &[
            "server set CLUSTER@PORT@SERVER [weight N] [fixedweight yes|no] [returnaddress ADDR] [router ADDR] [advisorrequest \"TEXT\"] [advisorresponse \"TEXT\"] [label \"TEXT\"]",
        ],
        SERVER_SET_OPTS,
        &[
            "server set @80@198.51.100.11 weight 5 fixedweight yes",
            "server set 192.0.2.100@80@198.51.100.11 advisorrequest \"HEAD / HTTP/1.1\\r\\nHost: www\"",
        ],
    ),
    verb(
        "down",
        "no new connections to servers (open ones continue)",
        &["server down CLUSTER@PORT@SERVER"],
        &[],
        &["server down 192.0.2.100@80@198.51.100.11"],
    ),
    verb(
        "up",
        "undo server down",
        &["server up CLUSTER@PORT@SERVER"],
        &[],
        &["server up 192.0.2.100@80@198.51.100.11"],
    ),
    verb(
        "remove",
        "remove servers",
        &["server remove CLUSTER@PORT@SERVER"],
        &[],
        &["server remove @@198.51.100.11"],
    ),
    verb(
        "report",
        "servers' weights, state and traffic",
        &["server report CLUSTER@PORT@SERVER"],
        &[],
        &["server report @@"],
    ),
    verb(
        "status",
        "servers' settings",
        &["server status CLUSTER@PORT@SERVER"],
        &[],
        &["server status 192.0.2.100@80@"],
    ),
];
pub(in crate::config::grammar) const SERVER_VERBS: [&str; 7] = names(&SERVER);
