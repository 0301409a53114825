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

mod files_ha;
mod health;
mod objects;
pub(super) use files_ha::{APPLIANCE_VERBS, FILE_VERBS};
use files_ha::{FILE, HA};
use health::{ADVISOR, HIGHAVAILABILITY, MANAGER, SASP};
pub(super) use health::{ADVISOR_VERBS, HA_VERBS, MANAGER_VERBS, SASP_VERBS};
use objects::{CLUSTER, EXECUTOR, PORT, SERVER};
pub(super) use objects::{CLUSTER_VERBS, EXECUTOR_VERBS, PORT_VERBS, SERVER_VERBS};

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
