//! Configuration files: a script of dscontrol lines, loaded all or nothing and saved in
//! IBM's `file save` order.

use super::Config;
use super::apply::{Applied, ConfigError};
use super::grammar::AdvisorSetting;
use super::grammar::{
    Command, ExecutorSetting, NoResolver, ParseError, PortOptions, PortTarget, Resolver,
    ServerOptions, ServerTarget, Targets, parse_line, parse_line_resolving,
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
    /// A `file newload|appendload` line whose file has a bad line: `inner:line: reason`.
    #[error("{0}")]
    Nested(Box<FileError>),
    /// A `file` line refused inside a file (a write, a cycle, too deep, unreadable).
    #[error("{0}")]
    File(String),
}

/// The first bad line of a configuration file; displays as `file:line: reason` (and
/// `outer:line: inner:line: reason` for a nested file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {error}")]
pub struct FileError {
    /// The file name given to [`load_file`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub error: CommandError,
}

/// Reads the files that `file newload|appendload NAME` lines inside a file name (the daemon
/// reads them from its configuration directory; the core does no I/O).
pub trait FileSource {
    /// The text of file `name`, or why it cannot be read.
    fn read(&mut self, name: &str) -> Result<String, String>;
}

/// For callers without files: every nested `file newload|appendload` is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read(&mut self, name: &str) -> Result<String, String> {
        Err(format!(
            "cannot read {name}: no configuration directory here"
        ))
    }
}

/// How deep `file newload|appendload` lines may nest below the file being loaded.
pub const MAX_FILE_DEPTH: usize = 4;

/// A loaded configuration and what the operator should hear about it (host names resolved,
/// HA statements before the clusters, options accepted but not used), each `file:line: text`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Loads a configuration file on top of `base` (pass `&Config::default()` for `file newload`,
/// the running configuration for `file appendload`).
///
/// All or nothing: the new configuration is returned only if every line parses and applies;
/// otherwise the error of the first bad line, and `base` is untouched. Blank and comment
/// lines, and query lines (status, report), are skipped; `executor start` sets
/// `executor.started`. Host names are bad addresses and nested `file` lines are refused: see
/// [`load_file_with`] for both.
pub fn load_file(text: &str, file_name: &str, base: &Config) -> Result<Config, FileError> {
    load_file_with(text, file_name, base, &mut NoFiles, &mut NoResolver).map(|l| l.config)
}

/// [`load_file`] with nested files and host names.
///
/// * `file newload|appendload NAME` lines read NAME through `files` and load it in place
///   (`newload` starts again from an empty configuration), at most [`MAX_FILE_DEPTH`] files
///   deep, a cycle refused with the chain of names; a bad line inside reports
///   `outer:line: inner:line: reason`. All or nothing across the nesting.
/// * `file save|delete` lines are refused: a load never writes.
/// * Host names (clusters, servers, heartbeat and reach addresses) are resolved once through
///   `resolver`, with a warning each, and stored as addresses.
/// * HA statements (heartbeat, reach, backup) before cluster/port/server statements load,
///   with a warning.
pub fn load_file_with(
    text: &str,
    file_name: &str,
    base: &Config,
    files: &mut dyn FileSource,
    resolver: &mut dyn Resolver,
) -> Result<Loaded, FileError> {
    let mut loader = Loader {
        files,
        resolver,
        chain: vec![
            file_name
                .rsplit('/')
                .next()
                .unwrap_or(file_name)
                .to_string(),
        ],
        warnings: Vec::new(),
    };
    let mut config = base.clone();
    loader.load(text, file_name, &mut config)?;
    Ok(Loaded {
        config,
        warnings: loader.warnings,
    })
}

struct Loader<'a> {
    files: &'a mut dyn FileSource,
    resolver: &'a mut dyn Resolver,
    /// The names of the files being loaded, outermost first.
    chain: Vec<String>,
    warnings: Vec<String>,
}

/// The HA statements IBM asks to come after the clusters, ports and servers.
fn is_ha_statement(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::HaHeartbeatAdd { .. }
            | Command::HaHeartbeatDelete(_)
            | Command::HaReachAdd(_)
            | Command::HaReachDelete(_)
            | Command::HaBackupAdd(_)
            | Command::HaBackupDelete
            | Command::HaBackupRecovery(_)
    )
}

fn is_object_statement(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ClusterAdd { .. }
            | Command::ClusterSetProportions { .. }
            | Command::ClusterSetDefaults { .. }
            | Command::ClusterSetLabel { .. }
            | Command::ClusterRemove(_)
            | Command::PortAdd { .. }
            | Command::PortSet { .. }
            | Command::PortRemove(_)
            | Command::ServerAdd { .. }
            | Command::ServerSet { .. }
            | Command::ServerRemove(_)
    )
}

impl Loader<'_> {
    fn load(&mut self, text: &str, file_name: &str, config: &mut Config) -> Result<(), FileError> {
        let mut first_ha: Option<usize> = None;
        let mut warned_order = false;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let fail = |error: CommandError| FileError {
                file: file_name.to_string(),
                line: number,
                error,
            };
            let Some((cmd, resolved)) =
                parse_line_resolving(line, self.resolver).map_err(|e| fail(e.into()))?
            else {
                continue;
            };
            for text in resolved.into_iter().chain(cmd.warnings()) {
                self.warnings.push(format!("{file_name}:{number}: {text}"));
            }
            match &cmd {
                Command::FileSave { .. } | Command::FileDelete(_) => {
                    return Err(fail(CommandError::File(format!(
                        "'{cmd}' is refused inside a file being loaded (a load never writes files)"
                    ))));
                }
                Command::FileNewLoad(name) | Command::FileAppendLoad(name) => {
                    let newload = matches!(cmd, Command::FileNewLoad(_));
                    self.nested(name, newload, config).map_err(fail)?;
                }
                cmd if cmd.is_mutation() => {
                    if is_ha_statement(cmd) {
                        first_ha.get_or_insert(number);
                    } else if is_object_statement(cmd)
                        && !warned_order
                        && let Some(ha) = first_ha
                    {
                        warned_order = true;
                        self.warnings.push(format!(
                            "{file_name}:{ha}: HA statements come before cluster/port/server \
                             statements (IBM asks for them last; `file save` writes them last)"
                        ));
                    }
                    // The copy is thrown away on error, so no per-line copy is needed.
                    config.apply_in_place(cmd).map_err(|e| fail(e.into()))?;
                }
                Command::HaTakeover(_)
                | Command::HaMaintenanceMode(_)
                | Command::HaKeyGenerate(_)
                | Command::Diagnostics(_)
                | Command::Ha(super::grammar::Appliance::Failover) => {
                    // Actions of a running node, never of a load: said, not silently skipped.
                    self.warnings.push(format!(
                        "{file_name}:{number}: '{cmd}' is an action of a running node and is not \
                         carried out by loading a file (run it with tandemctl)"
                    ));
                }
                // Queries (status, report) change nothing and print nothing in a load.
                _ => {}
            }
        }
        Ok(())
    }

    /// A `file newload|appendload NAME` line inside a file.
    fn nested(
        &mut self,
        name: &str,
        newload: bool,
        config: &mut Config,
    ) -> Result<(), CommandError> {
        let verb = if newload { "newload" } else { "appendload" };
        if self.chain.iter().any(|n| n == name) {
            return Err(CommandError::File(format!(
                "file {verb} {name}: a cycle of files ({} -> {name})",
                self.chain.join(" -> ")
            )));
        }
        if self.chain.len() > MAX_FILE_DEPTH {
            return Err(CommandError::File(format!(
                "file {verb} {name}: files nest at most {MAX_FILE_DEPTH} deep ({} -> {name})",
                self.chain.join(" -> ")
            )));
        }
        let text = self
            .files
            .read(name)
            .map_err(|e| CommandError::File(format!("file {verb} {name}: {e}")))?;
        if newload {
            *config = Config::default();
        }
        self.chain.push(name.to_string());
        let loaded = self.load(&text, name, config);
        self.chain.pop();
        loaded.map_err(|e| CommandError::Nested(Box::new(e)))
    }
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
            fintimeout,
            staletimeout,
            stickytime,
            packetio,
            metrics,
            loglevel,
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
        if packetio != super::model::PacketIo::Auto {
            cmds.push(Command::ExecutorSet(ExecutorSetting::PacketIo(packetio)));
        }
        if metrics.is_some() {
            cmds.push(Command::ExecutorSet(ExecutorSetting::Metrics(metrics)));
        }
        if loglevel != super::model::LogLevel::Info {
            cmds.push(Command::ExecutorSet(ExecutorSetting::LogLevel(loglevel)));
        }
        if syntimeout != super::model::DEFAULT_SYNTIMEOUT {
            cmds.push(Command::ExecutorSet(ExecutorSetting::SynTimeout(
                syntimeout,
            )));
        }
        for (value, setting) in [
            (
                fintimeout,
                ExecutorSetting::FinTimeout as fn(u32) -> ExecutorSetting,
            ),
            (staletimeout, ExecutorSetting::StaleTimeout),
            (stickytime, ExecutorSetting::StickyTime),
        ] {
            if let Some(v) = value {
                cmds.push(Command::ExecutorSet(setting(v)));
            }
        }

        for (&c, cluster) in &self.clusters {
            cmds.push(Command::ClusterAdd {
                clusters: vec![c],
                proportions: None,
                defaults: cluster.defaults,
                primaryhost: cluster.primaryhost,
                label: cluster.label.clone(),
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
                    both: Some(port.both),
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
                        label: server.label.clone(),
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
        if !ha.sync {
            cmds.push(Command::HaSync(false));
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
