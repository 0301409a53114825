//! The appliance commands (`ha start|configure|stop`) expanded to ordinary statements.
//!
//! A pure function of the command and the configuration: the daemon applies the statements it
//! returns in one commit (all or nothing), and a configuration file that holds an `ha` line
//! loads as if it held the statements. The mapping (docs/appliance.md):
//!
//! | `ha start` option | statements |
//! | --- | --- |
//! | `local L partner P` | `highavailability heartbeat add L P` (the public network) |
//! | `sync SL SP` | `highavailability heartbeat add SL SP` (the second network) |
//! | `pinginterval S` | `executor set hatimeout S` |
//! | `primary\|secondary`, `recovery`, `port` | `highavailability backup add primary\|backup RECOVERY PORT` |
//! | `floating C+C...` | checked: every floating address is a cluster, every cluster is floating |
//! | (executor stopped) | `executor start` |
//!
//! The partner is declared dead only when both heartbeat pairs (both networks) are silent for
//! hatimeout: the HA machine hears the partner on any pair. Reach targets are not touched:
//! they are shared by the pair (configuration sync mirrors them), and the partner's own
//! address would be a useless one (each node reaches the other or neither does); add the
//! public network's gateway with `highavailability reach add`.

use super::grammar::{Appliance, ApplianceOptions, Command, DEFAULT_HA_PORT, ExecutorSetting};
use super::model::{Backup, Recovery, Role};
use super::{Applied, Config, ConfigError, Resolved};
use std::net::IpAddr;

/// The statements `cmd` stands for on a node with configuration `config`. `ha stop` here is
/// the plain form (HA statements deleted); [`expand_stop`] is the daemon's choice per state.
/// `ha status` and `ha failover` change nothing: an empty list.
pub fn expand(cmd: &Appliance, config: &Config) -> Result<Vec<Command>, ConfigError> {
    match cmd {
        Appliance::Start { role, options } => expand_start(*role, options, config),
        Appliance::Configure(options) => expand_configure(options, config),
        Appliance::Stop => expand_stop(config, false),
        Appliance::Status | Appliance::Failover => Ok(Vec::new()),
    }
}

/// `ha stop`: every heartbeat pair and the backup statement deleted (reach targets stay:
/// they are shared configuration) (key, script
/// directory and hatimeout stay). With `leave`, `executor stop` first: the node leaves the
/// pair without ever forwarding (a Standby, or an Active that has handed over), instead of
/// going stand-alone Idle, which forwards.
pub fn expand_stop(config: &Config, leave: bool) -> Result<Vec<Command>, ConfigError> {
    if config.ha.backup.is_none() && config.ha.heartbeats.is_empty() {
        return Err(invalid(
            "high availability is not configured: this node is already stand-alone",
        ));
    }
    let mut out = Vec::new();
    if leave && config.executor.started {
        out.push(Command::ExecutorStop);
    }
    if config.ha.backup.is_some() {
        out.push(Command::HaBackupDelete);
    }
    out.extend(delete_pairs(config, &config.ha.heartbeats));
    Ok(out)
}

fn expand_start(
    role: Role,
    o: &ApplianceOptions,
    config: &Config,
) -> Result<Vec<Command>, ConfigError> {
    if let Some(b) = config.ha.backup {
        return Err(invalid(&format!(
            "high availability is already configured (role {}): use 'ha configure' to change it, or 'ha stop' first",
            b.role.keyword()
        )));
    }
    check_floating(&o.floating, config)?;
    let (Some(local), Some(partner)) = (o.local, o.partner) else {
        return Err(invalid("ha start needs local and partner addresses"));
    };
    let mut out = vec![Command::HaHeartbeatAdd {
        source: local,
        destination: partner,
    }];
    if let Some((source, destination)) = o.sync {
        out.push(Command::HaHeartbeatAdd {
            source,
            destination,
        });
    }
    if let Some(s) = o.pinginterval {
        out.push(Command::ExecutorSet(ExecutorSetting::HaTimeout(s)));
    }
    out.push(Command::HaBackupAdd(Backup {
        role,
        recovery: o.recovery.unwrap_or(Recovery::Manual),
        port: o.port.unwrap_or(DEFAULT_HA_PORT),
    }));
    if !config.executor.started {
        out.push(Command::ExecutorStart);
    }
    Ok(out)
}

fn expand_configure(o: &ApplianceOptions, config: &Config) -> Result<Vec<Command>, ConfigError> {
    let Some(backup) = config.ha.backup else {
        return Err(invalid(
            "high availability is not configured: use 'ha start' first",
        ));
    };
    let pairs = &config.ha.heartbeats;
    if pairs.is_empty() || pairs.len() > 2 {
        return Err(invalid(&format!(
            "ha configure works on a pair set up with ha start (one public and at most one sync \
             heartbeat pair); this node has {} heartbeat pairs: use highavailability heartbeat add|delete",
            pairs.len()
        )));
    }
    if !o.floating.is_empty() {
        check_floating(&o.floating, config)?;
    }
    if let Some(p) = o.port
        && p != backup.port
    {
        return Err(invalid(&format!(
            "the heartbeat port cannot change on a running pair (it would pass through Idle, which \
             forwards): 'ha stop', then 'ha start ... port {p}' on both nodes"
        )));
    }
    // Workload Deployer spellings, by this node's role.
    let b = o.by_role;
    let primary = backup.role == Role::Primary;
    let (mine, theirs, my_sync, their_sync) = if primary {
        (b.primary, b.secondary, b.primary_sync, b.secondary_sync)
    } else {
        (b.secondary, b.primary, b.secondary_sync, b.primary_sync)
    };
    let (old_local, old_partner) = pairs[0];
    let old_sync = pairs.get(1).copied();
    let local = o.local.or(mine).unwrap_or(old_local);
    let partner = o.partner.or(theirs).unwrap_or(old_partner);
    let sync = match (o.sync, my_sync, their_sync, old_sync) {
        (Some(s), _, _, _) => Some(s),
        (None, None, None, old) => old,
        (None, l, p, Some((ol, op))) => Some((l.unwrap_or(ol), p.unwrap_or(op))),
        (None, Some(l), Some(p), None) => Some((l, p)),
        (None, _, _, None) => {
            return Err(invalid(
                "this pair has no sync network yet: give both sync addresses (sync LOCAL PARTNER)",
            ));
        }
    };
    if local == partner {
        return Err(invalid(&format!(
            "local and partner are the same address {local}"
        )));
    }
    if let Some((l, p)) = sync
        && (l == p || (l, p) == (local, partner) || l.is_ipv4() != p.is_ipv4())
    {
        return Err(invalid(&format!(
            "bad sync network {l} {p} (two different addresses of one family, not the public pair)"
        )));
    }
    let mut wanted = vec![(local, partner)];
    wanted.extend(sync);
    let mut out = Vec::new();
    if *pairs != wanted {
        // Deleted and added in one commit: the HA machine sees only the final set of pairs and
        // keeps the state of every pair that stays (never a pass through Idle).
        out.extend(delete_pairs(config, pairs));
        out.extend(
            wanted
                .iter()
                .map(|&(source, destination)| Command::HaHeartbeatAdd {
                    source,
                    destination,
                }),
        );
    }
    if let Some(s) = o.pinginterval
        && s != config.executor.hatimeout
    {
        out.push(Command::ExecutorSet(ExecutorSetting::HaTimeout(s)));
    }
    if let Some(r) = o.recovery
        && r != backup.recovery
    {
        out.push(Command::HaBackupRecovery(r));
    }
    if out.is_empty() && o.floating.is_empty() {
        return Err(invalid("ha configure: nothing to change"));
    }
    Ok(out)
}

/// `heartbeat delete` statements that remove exactly `pairs` (a delete removes every pair that
/// uses the address, so each is issued only for a pair still there).
fn delete_pairs(config: &Config, pairs: &[(IpAddr, IpAddr)]) -> Vec<Command> {
    let mut left = config.ha.heartbeats.clone();
    let mut out = Vec::new();
    for (source, _) in pairs {
        if left.iter().any(|(s, _)| s == source) {
            left.retain(|(s, d)| s != source && d != source);
            out.push(Command::HaHeartbeatDelete(*source));
        }
    }
    out
}

/// Every floating address is a cluster, and every cluster floats: in a pair all clusters move
/// with Active.
fn check_floating(floating: &[IpAddr], config: &Config) -> Result<(), ConfigError> {
    if let Some(missing) = floating.iter().find(|a| !config.clusters.contains_key(a)) {
        return Err(invalid(&format!(
            "floating address {missing} is not a cluster: add it first (cluster add {missing}, with its ports and servers)"
        )));
    }
    let fixed: Vec<String> = config
        .clusters
        .keys()
        .filter(|c| !floating.contains(c))
        .map(|c| c.to_string())
        .collect();
    if !fixed.is_empty() {
        return Err(invalid(&format!(
            "cluster {} is not among the floating addresses: in a pair every cluster moves with \
             Active, list them all (floating {})",
            fixed.join("+"),
            config
                .clusters
                .keys()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("+")
        )));
    }
    Ok(())
}

fn invalid(text: &str) -> ConfigError {
    ConfigError::Invalid(text.to_string())
}

impl Config {
    /// `ha ...` in a file or through [`Config::apply`]: the expansion applied in order.
    pub(super) fn apply_appliance(&mut self, cmd: &Appliance) -> Result<Applied, ConfigError> {
        if matches!(cmd, Appliance::Status | Appliance::Failover) {
            return Ok(Applied::Query(Resolved::HighAvailability));
        }
        for statement in expand(cmd, self)? {
            self.apply_in_place(&statement)?;
        }
        Ok(Applied::Changed(Resolved::HighAvailability))
    }
}
