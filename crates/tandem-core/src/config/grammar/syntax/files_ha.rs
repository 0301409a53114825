//! The syntax of `file` and `ha` (the appliance commands).

use super::{Opt, Verb, names, opt, verb};

// ---------------------------------------------------------------- file

pub(super) const FILE: [Verb; 5] = [
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
pub(in crate::config::grammar) const FILE_VERBS: [&str; 5] = names(&FILE);

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

pub(super) const HA: [Verb; 5] = [
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
pub(in crate::config::grammar) const APPLIANCE_VERBS: [&str; 5] = names(&HA);
