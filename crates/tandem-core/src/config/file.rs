//! Configuration files: a script of dscontrol lines, loaded all or nothing and saved in
//! IBM's `file save` order.

use super::Config;
use super::apply::{Applied, ConfigError};
use super::grammar::AdvisorSetting;
use super::grammar::{
    Command, ExecutorSetting, ParseError, PortOptions, PortTarget, ServerOptions, ServerTarget,
    Targets, parse_line,
};
use super::health::{DEFAULT_ADVISOR_INTERVAL, Manager, Proportions};
use super::model::Executor;

/// A command that failed to parse or to apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The first bad line of a configuration file; displays as `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {error}")]
pub struct FileError {
    /// The file name given to [`load_file`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub error: CommandError,
}

/// Loads a configuration file on top of `base` (pass `&Config::default()` for `file newload`,
/// the running configuration for `file appendload`).
///
/// All or nothing: the new configuration is returned only if every line parses and applies;
/// otherwise the error of the first bad line, and `base` is untouched. Blank and comment
/// lines, and query lines (status, report), are skipped; `executor start` sets
/// `executor.started`.
pub fn load_file(text: &str, file_name: &str, base: &Config) -> Result<Config, FileError> {
    let mut config = base.clone();
    for (index, line) in text.lines().enumerate() {
        let fail = |error: CommandError| FileError {
            file: file_name.to_string(),
            line: index + 1,
            error,
        };
        let Some(cmd) = parse_line(line).map_err(|e| fail(e.into()))? else {
            continue;
        };
        if cmd.is_mutation() {
            // The copy is thrown away on error, so no per-line copy is needed.
            config.apply_in_place(&cmd).map_err(|e| fail(e.into()))?;
        }
    }
    Ok(config)
}

impl Config {
    /// Parses and applies one line (see [`parse_line`] and [`Config::apply`]); `Ok(None)` for
    /// a blank or comment line.
    pub fn apply_line(&mut self, line: &str) -> Result<Option<Applied>, CommandError> {
        match parse_line(line)? {
            Some(cmd) => Ok(Some(self.apply(&cmd)?)),
            None => Ok(None),
        }
    }

    /// The configuration as commands, in IBM's `file save` order: executor, clusters (and
    /// their proportions when not the default), ports, servers (then `server down` and
    /// `manager quiesce` for servers that are down or quiesced), the manager's settings and
    /// `manager start`, the advisors (`advisor start`, then the settings that differ from the
    /// defaults), the SASP groups, `manager reach`, and the `highavailability` statements last.
    ///
    /// Applying them to `Config::default()` gives a configuration equal to `self`.
    pub fn saved_commands(&self) -> Vec<Command> {
        let mut cmds = Vec::new();
        let Executor {
            started,
            nfa,
            clientgateway,
            hatimeout,
            maxconnections,
            syntimeout,
        } = self.executor;
        if started {
            cmds.push(Command::ExecutorStart);
        }
        if let Some(a) = nfa {
            cmds.push(Command::ExecutorSet(ExecutorSetting::Nfa(a)));
        }
        if let Some(a) = clientgateway {
            cmds.push(Command::ExecutorSet(ExecutorSetting::ClientGateway(a)));
        }
        cmds.push(Command::ExecutorSet(ExecutorSetting::HaTimeout(hatimeout)));
        if maxconnections.is_some() {
            cmds.push(Command::ExecutorSet(ExecutorSetting::MaxConnections(
                maxconnections,
            )));
        }
        if syntimeout != super::model::DEFAULT_SYNTIMEOUT {
            cmds.push(Command::ExecutorSet(ExecutorSetting::SynTimeout(
                syntimeout,
            )));
        }

        for (&c, cluster) in &self.clusters {
            cmds.push(Command::ClusterAdd {
                clusters: vec![c],
                proportions: None,
                primaryhost: cluster.primaryhost,
            });
            if cluster.proportions != Proportions::default() {
                cmds.push(Command::ClusterSetProportions {
                    clusters: Targets::List(vec![c]),
                    proportions: cluster.proportions,
                });
            }
        }
        for (&c, cluster) in &self.clusters {
            for (&p, port) in &cluster.ports {
                let options = PortOptions {
                    method: Some(port.method),
                    protocol: Some(port.protocol),
                    selection: Some(port.selection),
                    stickytime: Some(port.stickytime),
                    staletimeout: Some(port.staletimeout),
                    weightbound: Some(port.weightbound),
                    reset: Some(port.reset),
                    repstrategy: Some(port.repstrategy),
                };
                let target = PortTarget {
                    clusters: Targets::List(vec![c]),
                    ports: Targets::List(vec![p]),
                };
                cmds.push(Command::PortAdd { target, options });
            }
        }
        let target = |c, p, s| ServerTarget {
            clusters: Targets::List(vec![c]),
            ports: Targets::List(vec![p]),
            servers: Targets::List(vec![s]),
        };
        let mut down = Vec::new();
        let mut quiesced = Vec::new();
        for (&c, cluster) in &self.clusters {
            for (&p, port) in &cluster.ports {
                for (&s, server) in &port.servers {
                    let options = ServerOptions {
                        weight: Some(server.weight),
                        fixedweight: server.fixedweight.then_some(true),
                        returnaddress: server.returnaddress,
                        router: server.router,
                        mapport: server.mapport,
                        advisorrequest: server.advisorrequest.clone(),
                        advisorresponse: server.advisorresponse.clone(),
                    };
                    cmds.push(Command::ServerAdd {
                        target: target(c, p, s),
                        options,
                    });
                    if server.down {
                        down.push(Command::ServerDown(target(c, p, s)));
                    }
                    if server.quiesced {
                        quiesced.push(Command::ManagerQuiesce(target(c, p, s)));
                    }
                }
            }
        }
        cmds.extend(down);
        cmds.extend(quiesced);
        self.save_health(&mut cmds);

        let ha = &self.ha;
        cmds.push(Command::ManagerReachInterval(ha.reach_interval));
        if let Some(path) = &ha.key_file {
            cmds.push(Command::HaKey(path.clone()));
        }
        if let Some(path) = &ha.script_dir {
            cmds.push(Command::HaScripts(path.clone()));
        }
        for &(source, destination) in &ha.heartbeats {
            cmds.push(Command::HaHeartbeatAdd {
                source,
                destination,
            });
        }
        for &a in &ha.reach {
            cmds.push(Command::HaReachAdd(a));
        }
        if let Some(backup) = ha.backup {
            cmds.push(Command::HaBackupAdd(backup));
        }
        cmds
    }

    /// The manager, advisor and SASP part of [`Config::saved_commands`].
    fn save_health(&self, cmds: &mut Vec<Command>) {
        let m = &self.health.manager;
        let d = Manager::default();
        if m.interval != d.interval {
            cmds.push(Command::ManagerInterval(m.interval));
        }
        if m.sensitivity != d.sensitivity {
            cmds.push(Command::ManagerSensitivity(m.sensitivity));
        }
        if m.smoothing != d.smoothing {
            cmds.push(Command::ManagerSmoothing(m.smoothing));
        }
        if m.running {
            cmds.push(Command::ManagerStart);
        }
        for (key, a) in &self.health.advisors {
            cmds.push(Command::AdvisorStart(key.clone()));
            let set = |setting| Command::AdvisorSet {
                key: key.clone(),
                setting,
            };
            // `advisor interval` moves timeouts equal to the old interval along: the
            // interval first, then the timeouts that differ from it.
            if a.interval != DEFAULT_ADVISOR_INTERVAL {
                cmds.push(set(AdvisorSetting::Interval(a.interval)));
            }
            if a.connecttimeout != a.interval {
                cmds.push(set(AdvisorSetting::ConnectTimeout(a.connecttimeout)));
            }
            if a.receivetimeout != a.interval {
                cmds.push(set(AdvisorSetting::ReceiveTimeout(a.receivetimeout)));
            }
            if a.retries != 0 {
                cmds.push(set(AdvisorSetting::Retries(a.retries)));
            }
            if a.timeout.is_some() {
                cmds.push(set(AdvisorSetting::Timeout(a.timeout)));
            }
        }
        for (group, gwms) in &self.health.sasp {
            for (gwm, settings) in gwms {
                cmds.push(Command::SaspAdd {
                    group: *group,
                    gwm: *gwm,
                    settings: settings.clone(),
                });
            }
        }
    }

    /// [`Config::saved_commands`] as text lines, without a leading `dscontrol` (the caller
    /// may add one; [`load_file`] accepts both).
    pub fn to_commands(&self) -> Vec<String> {
        self.saved_commands()
            .iter()
            .map(Command::to_string)
            .collect()
    }
}
