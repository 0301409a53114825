//! The command syntax table: every command group with its verbs, usage lines, a one-line
//! summary per verb, the options with their values, and examples.
//!
//! It is the one source of truth for the group and verb keywords: the parser takes its
//! lists of groups ([`OBJECTS`]) and verbs (`EXECUTOR_VERBS`, ...) from it, and `tandemctl`
//! builds its `--help`, shell completions and man pages from it. So the help cannot name a
//! command the parser does not take, nor miss one it takes (the tests check both, and that
//! every example parses and displays back).

/// One command group (`executor`, `port`, ...).
#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// The group keyword as the parser takes it.
    pub name: &'static str,
    /// One line: what the group is about.
    pub summary: &'static str,
    /// The group's usage lines when it has no verbs (`diagnostics FILE`); else empty.
    pub usages: &'static [&'static str],
    /// Examples of a group without verbs (canonical lines, as `file save` writes them).
    pub examples: &'static [&'static str],
    /// The verbs, in the parser's order.
    pub verbs: &'static [Verb],
}

/// One verb of a group (`port add`).
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    /// The verb keyword as the parser takes it.
    pub name: &'static str,
    /// One line: what the command does.
    pub summary: &'static str,
    /// Usage lines, each a whole command (`port add CLUSTER@PORT[+PORT...] [OPTIONS]`).
    pub usages: &'static [&'static str],
    /// The options, with their values.
    pub options: &'static [Opt],
    /// Example lines in canonical form (they parse, and display back to themselves).
    pub examples: &'static [&'static str],
    /// An IBM keyword the parser knows and refuses with the reason (in `summary`).
    pub refused: bool,
}

/// An option of a verb and its values (`method`, `mac|nat`).
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub name: &'static str,
    pub values: &'static str,
}

const fn verb(
    name: &'static str,
    summary: &'static str,
    usages: &'static [&'static str],
    options: &'static [Opt],
    examples: &'static [&'static str],
) -> Verb {
    Verb {
        name,
        summary,
        usages,
        options,
        examples,
        refused: false,
    }
}

const fn refused(
    name: &'static str,
    summary: &'static str,
    usage: &'static [&'static str],
) -> Verb {
    Verb {
        name,
        summary,
        usages: usage,
        options: &[],
        examples: &[],
        refused: true,
    }
}

const fn opt(name: &'static str, values: &'static str) -> Opt {
    Opt { name, values }
}

/// The verb keywords of a verb list, at compile time (so the parser's lists are the table's).
const fn names<const N: usize>(verbs: &[Verb; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = verbs[i].name;
        i += 1;
    }
    out
}

const fn group_names<const N: usize>(groups: &[Group; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = groups[i].name;
        i += 1;
    }
    out
}

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

const EXECUTOR: [Verb; 5] = [
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
pub(super) const EXECUTOR_VERBS: [&str; 5] = names(&EXECUTOR);

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

const CLUSTER: [Verb; 5] = [
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
pub(super) const CLUSTER_VERBS: [&str; 5] = names(&CLUSTER);

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

const PORT: [Verb; 5] = [
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
pub(super) const PORT_VERBS: [&str; 5] = names(&PORT);

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

const SERVER: [Verb; 7] = [
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
pub(super) const SERVER_VERBS: [&str; 7] = names(&SERVER);

// ---------------------------------------------------------------- highavailability

const HIGHAVAILABILITY: [Verb; 9] = [
    verb(
        "heartbeat",
        "add or delete a heartbeat address pair",
        &[
            "highavailability heartbeat add SRC DST",
            "highavailability heartbeat delete ADDR",
        ],
        &[],
        &[
            "highavailability heartbeat add 192.0.2.2 192.0.2.3",
            "highavailability heartbeat delete 192.0.2.3",
        ],
    ),
    verb(
        "reach",
        "add or delete a reach target (an address both nodes must reach)",
        &["highavailability reach add|delete ADDR"],
        &[],
        &[
            "highavailability reach add 192.0.2.1",
            "highavailability reach delete 192.0.2.1",
        ],
    ),
    verb(
        "backup",
        "this node's role, recovery strategy and HA port",
        &[
            "highavailability backup add primary|backup|both auto|manual PORT",
            "highavailability backup delete",
            "highavailability backup set recovery auto|manual",
        ],
        &[],
        &[
            "highavailability backup add primary manual 20001",
            "highavailability backup delete",
            "highavailability backup set recovery auto",
        ],
    ),
    verb(
        "status",
        "the HA state, partner and synchronization",
        &["highavailability status"],
        &[],
        &["highavailability status"],
    ),
    verb(
        "takeover",
        "make this node Active (mutual HA: the cluster group of primaryhost ADDRESS)",
        &["highavailability takeover [ADDRESS]"],
        &[],
        &["highavailability takeover"],
    ),
    verb(
        "key",
        "the heartbeats' HMAC key file, or generate a new one",
        &[
            "highavailability key FILE",
            "highavailability key generate FILE",
        ],
        &[],
        &[
            "highavailability key /etc/tandem/ha.key",
            "highavailability key generate /etc/tandem/ha.key",
        ],
    ),
    verb(
        "scripts",
        "the directory of the HA go scripts",
        &["highavailability scripts DIR"],
        &[],
        &["highavailability scripts /etc/tandem/scripts"],
    ),
    verb(
        "maintenance",
        "the upgrade plan, or hand Active over and keep it off (start|stop)",
        &["highavailability maintenance [start|stop]"],
        &[],
        &[
            "highavailability maintenance",
            "highavailability maintenance start",
        ],
    ),
    verb(
        "sync",
        "configuration sync with the partner (node-local, default on)",
        &["highavailability sync off|on"],
        &[],
        &["highavailability sync off"],
    ),
];
pub(super) const HA_VERBS: [&str; 9] = names(&HIGHAVAILABILITY);

// ---------------------------------------------------------------- manager

const MANAGER: [Verb; 16] = [
    verb(
        "reach",
        "the interval of the reach probes",
        &["manager reach set interval SECONDS"],
        &[],
        &["manager reach set interval 1"],
    ),
    verb(
        "start",
        "start the manager (IBM's LOGFILE and METRIC_PORT are accepted, unused)",
        &["manager start [LOGFILE [METRIC_PORT]]"],
        &[],
        &["manager start"],
    ),
    verb(
        "stop",
        "stop the manager",
        &["manager stop"],
        &[],
        &["manager stop"],
    ),
    verb(
        "status",
        "the manager's settings and state",
        &["manager status"],
        &[],
        &["manager status"],
    ),
    verb(
        "report",
        "weights and what made them, per server",
        &["manager report [CLUSTER[+...]|@]"],
        &[],
        &["manager report", "manager report 192.0.2.100"],
    ),
    verb(
        "interval",
        "seconds between two weight updates (default 2)",
        &["manager interval SECONDS"],
        &[],
        &["manager interval 2"],
    ),
    verb(
        "sensitivity",
        "least weight change, in percent, that is applied (default 5)",
        &["manager sensitivity PERCENT"],
        &[],
        &["manager sensitivity 5"],
    ),
    verb(
        "smoothing",
        "how slowly weights follow the load (1-100, default 1.5)",
        &["manager smoothing INDEX"],
        &[],
        &["manager smoothing 1.5"],
    ),
    verb(
        "quiesce",
        "no new connections to a server, affinity kept",
        &["manager quiesce SERVER|CLUSTER@PORT@SERVER"],
        &[],
        &["manager quiesce 192.0.2.100@80@198.51.100.11"],
    ),
    verb(
        "unquiesce",
        "undo manager quiesce",
        &["manager unquiesce SERVER|CLUSTER@PORT@SERVER"],
        &[],
        &["manager unquiesce @@198.51.100.11"],
    ),
    refused(
        "loglevel",
        "refused (IBM): the manager logs through tandemd's log",
        &["manager loglevel LEVEL"],
    ),
    refused(
        "logsize",
        "refused (IBM): the manager logs through tandemd's log",
        &["manager logsize SIZE"],
    ),
    refused(
        "metric",
        "refused (IBM): there is no Metric Server",
        &["manager metric ..."],
    ),
    refused(
        "refresh",
        "refused (IBM): the manager reads the counters every interval",
        &["manager refresh ..."],
    ),
    refused(
        "restart",
        "refused (IBM): run manager stop, then manager start",
        &["manager restart"],
    ),
    refused(
        "version",
        "refused (IBM): the manager has tandemd's version",
        &["manager version"],
    ),
];
pub(super) const MANAGER_VERBS: [&str; 16] = names(&MANAGER);

// ---------------------------------------------------------------- advisor

const ADVISOR: [Verb; 13] = [
    verb(
        "start",
        "start an advisor on a port (NAME: connect, http, https, ping, dns or ADV_name)",
        &["advisor start NAME PORT|CLUSTER@PORT"],
        &[],
        &[
            "advisor start http 80",
            "advisor start ADV_load 192.0.2.100@80",
        ],
    ),
    verb(
        "stop",
        "stop an advisor",
        &["advisor stop NAME PORT|CLUSTER@PORT"],
        &[],
        &["advisor stop http 80"],
    ),
    verb(
        "interval",
        "seconds between two queries of a server (default 7)",
        &["advisor interval NAME PORT|CLUSTER@PORT SECONDS"],
        &[],
        &["advisor interval http 80 5"],
    ),
    verb(
        "connecttimeout",
        "seconds a connect may take",
        &["advisor connecttimeout NAME PORT|CLUSTER@PORT SECONDS"],
        &[],
        &["advisor connecttimeout http 80 2"],
    ),
    verb(
        "receivetimeout",
        "seconds a reply may take once connected",
        &["advisor receivetimeout NAME PORT|CLUSTER@PORT SECONDS"],
        &[],
        &["advisor receivetimeout http 80 2"],
    ),
    verb(
        "retries",
        "failed queries tolerated before a server is down (0-100)",
        &["advisor retries NAME PORT|CLUSTER@PORT N"],
        &[],
        &["advisor retries http 80 2"],
    ),
    verb(
        "timeout",
        "seconds the last report is trusted",
        &["advisor timeout NAME PORT|CLUSTER@PORT unlimited|SECONDS"],
        &[],
        &["advisor timeout http 80 unlimited"],
    ),
    verb(
        "list",
        "the advisors started",
        &["advisor list"],
        &[],
        &["advisor list"],
    ),
    verb(
        "report",
        "an advisor's results per server",
        &["advisor report NAME PORT|CLUSTER@PORT"],
        &[],
        &["advisor report http 80"],
    ),
    verb(
        "status",
        "an advisor's settings",
        &["advisor status NAME PORT|CLUSTER@PORT"],
        &[],
        &["advisor status http 192.0.2.100@80"],
    ),
    refused(
        "loglevel",
        "refused (IBM): advisors log through tandemd's log",
        &["advisor loglevel ..."],
    ),
    refused(
        "logsize",
        "refused (IBM): advisors log through tandemd's log",
        &["advisor logsize ..."],
    ),
    refused(
        "version",
        "refused (IBM): the advisors have tandemd's version",
        &["advisor version ..."],
    ),
];
pub(super) const ADVISOR_VERBS: [&str; 13] = names(&ADVISOR);

// ---------------------------------------------------------------- sasp

const SASP_ADD_OPTS: &[Opt] = &[
    opt("port", "N"),
    opt("mode", "push|pull"),
    opt("members", "all|changed"),
    opt("interval", "SECONDS"),
    opt("grace", "SECONDS"),
    opt("tls", "yes|no"),
];

const SASP: [Verb; 3] = [
    verb(
        "add",
        "a SASP group (a cluster or one port of it) and its Global Workload Manager",
        &[
            "sasp add CLUSTER[@PORT] gwm ADDRESS [port N] [mode push|pull] [members all|changed] [interval SECONDS] [grace SECONDS] [tls yes|no]",
        ],
        SASP_ADD_OPTS,
        &[
            "sasp add 192.0.2.100@80 gwm 198.51.100.5",
            "sasp add 192.0.2.100 gwm 198.51.100.5 port 3861 mode pull interval 5 tls yes",
        ],
    ),
    verb(
        "remove",
        "a SASP group, or its GWMs at an address (and port)",
        &["sasp remove CLUSTER[@PORT] [gwm ADDRESS [port N]]"],
        &[],
        &[
            "sasp remove 192.0.2.100@80",
            "sasp remove 192.0.2.100 gwm 198.51.100.5 port 3861",
        ],
    ),
    verb(
        "report",
        "the SASP groups, GWMs and their weights",
        &["sasp report"],
        &[],
        &["sasp report"],
    ),
];
pub(super) const SASP_VERBS: [&str; 3] = names(&SASP);

// ---------------------------------------------------------------- file

const FILE: [Verb; 5] = [
    verb(
        "save",
        "write the running configuration to a file (force: overwrite)",
        &["file save NAME [force]"],
        &[opt("force", "")],
        &["file save default.cfg", "file save default.cfg force"],
    ),
    verb(
        "newload",
        "replace the running configuration with a file (all or nothing)",
        &["file newload NAME"],
        &[],
        &["file newload default.cfg"],
    ),
    verb(
        "appendload",
        "apply a file on top of the running configuration (all or nothing)",
        &["file appendload NAME"],
        &[],
        &["file appendload extra.cfg"],
    ),
    verb(
        "report",
        "the files of the configuration directory",
        &["file report"],
        &[],
        &["file report"],
    ),
    verb(
        "delete",
        "remove a file of the configuration directory",
        &["file delete NAME"],
        &[],
        &["file delete old.cfg"],
    ),
];
pub(super) const FILE_VERBS: [&str; 5] = names(&FILE);

// ---------------------------------------------------------------- ha (appliance)

const HA_START_OPTS: &[Opt] = &[
    opt("floating", "ADDR[+ADDR...]"),
    opt("floatingip", "ADDR[+ADDR...]"),
    opt("local", "ADDR"),
    opt("partner", "ADDR"),
    opt("sync", "LOCAL PARTNER"),
    opt("pinginterval", "SECONDS"),
    opt("port", "N"),
    opt("recovery", "auto|manual"),
    opt("primaryip", "ADDR"),
    opt("secondaryip", "ADDR"),
    opt("primarysyncip", "ADDR"),
    opt("secondarysyncip", "ADDR"),
];

const HA: [Verb; 5] = [
    verb(
        "start",
        "stand-alone to one node of a pair (heartbeats, reach, backup, executor start)",
        &[
            "ha start primary|secondary floating ADDR[+ADDR...] local ADDR partner ADDR [sync LOCAL PARTNER] [pinginterval SECONDS] [port N] [recovery auto|manual]",
        ],
        HA_START_OPTS,
        &[
            "ha start primary floating 192.0.2.100 local 192.0.2.2 partner 192.0.2.3",
            "ha start secondary floating 192.0.2.100+192.0.2.101 local 192.0.2.3 partner 192.0.2.2 sync 198.51.100.3 198.51.100.2 pinginterval 1 recovery auto",
        ],
    ),
    verb(
        "configure",
        "change a running pair in place",
        &[
            "ha configure [floating ADDR[+ADDR...]] [local ADDR] [partner ADDR] [sync LOCAL PARTNER] [pinginterval SECONDS] [recovery auto|manual]",
        ],
        HA_START_OPTS,
        &[
            "ha configure pinginterval 2",
            "ha configure floating 192.0.2.100+192.0.2.102",
        ],
    ),
    verb(
        "stop",
        "back to stand-alone",
        &["ha stop"],
        &[],
        &["ha stop"],
    ),
    verb(
        "status",
        "the appliance view of the pair: mode, sync, partner, networks",
        &["ha status"],
        &[],
        &["ha status"],
    ),
    verb(
        "failover",
        "a controlled handover to the partner",
        &["ha failover"],
        &[],
        &["ha failover"],
    ),
];
pub(super) const APPLIANCE_VERBS: [&str; 5] = names(&HA);

// ---------------------------------------------------------------- the table

/// The groups in the parser's order of keywords (`ha` last: it is matched whole, apart).
const GROUPS: [Group; 11] = [
    Group {
        name: "executor",
        summary: "the node: forwarding on or off, its address and settings",
        usages: &[],
        examples: &[],
        verbs: &EXECUTOR,
    },
    Group {
        name: "cluster",
        summary: "clusters: the addresses clients connect to",
        usages: &[],
        examples: &[],
        verbs: &CLUSTER,
    },
    Group {
        name: "port",
        summary: "ports of clusters: forwarding method, protocol, selection, replication",
        usages: &[],
        examples: &[],
        verbs: &PORT,
    },
    Group {
        name: "server",
        summary: "servers behind a port: weights, state, NAT addresses",
        usages: &[],
        examples: &[],
        verbs: &SERVER,
    },
    Group {
        name: "highavailability",
        summary: "the HA pair: heartbeats, reach targets, role, takeover",
        usages: &[],
        examples: &[],
        verbs: &HIGHAVAILABILITY,
    },
    Group {
        name: "manager",
        summary: "the manager: server weights from load and advisors",
        usages: &[],
        examples: &[],
        verbs: &MANAGER,
    },
    Group {
        name: "advisor",
        summary: "advisors: health checks of servers",
        usages: &[],
        examples: &[],
        verbs: &ADVISOR,
    },
    Group {
        name: "sasp",
        summary: "SASP: weights from a Global Workload Manager",
        usages: &[],
        examples: &[],
        verbs: &SASP,
    },
    Group {
        name: "diagnostics",
        summary: "write the pair's diagnostics archive (HA logs, status, configuration, counters)",
        usages: &["diagnostics FILE"],
        examples: &["diagnostics /tmp/tandem-diag.tar.gz"],
        verbs: &[],
    },
    Group {
        name: "file",
        summary: "configuration files of the configuration directory",
        usages: &[],
        examples: &[],
        verbs: &FILE,
    },
    Group {
        name: "ha",
        summary: "appliance commands over the HA statements (spelled out: `h` is highavailability)",
        usages: &[],
        examples: &[],
        verbs: &HA,
    },
];

/// Every command group, in the parser's order.
pub fn groups() -> &'static [Group] {
    &GROUPS
}

/// The group named `name` exactly (lower case).
pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

const ALL_GROUP_NAMES: [&str; 11] = group_names(&GROUPS);

/// The group keywords matched by prefix (all but `ha`, which is matched whole).
pub(super) const OBJECTS: &[&str] = ALL_GROUP_NAMES.split_at(10).0;

/// The group a command's first word names, as the parser reads it: `ha` whole, any other
/// group by a unique prefix (case-insensitive). `Err` with the parser's message otherwise.
pub fn resolve_group(word: &str) -> Result<&'static Group, super::ParseError> {
    if word.eq_ignore_ascii_case("ha") {
        return Ok(&GROUPS[10]);
    }
    let name = super::words::match_keyword(word, OBJECTS)?;
    Ok(group(name).expect("OBJECTS come from GROUPS"))
}

/// The verb of `group` that `word` names (a unique prefix), as the parser reads it.
pub fn resolve_verb(group: &'static Group, word: &str) -> Option<&'static Verb> {
    let names: Vec<&'static str> = group.verbs.iter().map(|v| v.name).collect();
    let name = super::words::match_keyword(word, &names).ok()?;
    group.verbs.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests;
