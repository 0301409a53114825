//! The syntax of `highavailability`, `manager`, `advisor` and `sasp`.

use super::{Opt, Verb, names, opt, refused, verb};

// ---------------------------------------------------------------- highavailability

pub(super) const HIGHAVAILABILITY: [Verb; 9] = [
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
pub(in crate::config::grammar) const HA_VERBS: [&str; 9] = names(&HIGHAVAILABILITY);

// ---------------------------------------------------------------- manager

pub(super) const MANAGER: [Verb; 16] = [
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
pub(in crate::config::grammar) const MANAGER_VERBS: [&str; 16] = names(&MANAGER);

// ---------------------------------------------------------------- advisor

pub(super) const ADVISOR: [Verb; 13] = [
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
pub(in crate::config::grammar) const ADVISOR_VERBS: [&str; 13] = names(&ADVISOR);

// ---------------------------------------------------------------- sasp

const SASP_ADD_OPTS: &[Opt] = &[
    opt("port", "N"),
    opt("mode", "push|pull"),
    opt("members", "all|changed"),
    opt("interval", "SECONDS"),
    opt("grace", "SECONDS"),
    opt("tls", "yes|no"),
];

pub(super) const SASP: [Verb; 3] = [
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
pub(in crate::config::grammar) const SASP_VERBS: [&str; 3] = names(&SASP);
