//! `Display` of commands: the canonical line that [`super::parse_line`] reads back.

use super::super::health::{
    AdvisorKey, DEFAULT_SASP_PORT, Proportions, SaspGroupTarget, SaspGwm, SaspMode,
};
use super::Command;
use super::executor_cluster::ExecutorSetting;
use super::health::AdvisorSetting;
use super::port_server::{PortOptions, ServerOptions};
use super::targets::Targets;
use super::words::{write_quoted, yes_no};
use std::fmt;

impl fmt::Display for PortOptions {
    /// The options as they follow the target (each with a leading space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.method {
            write!(f, " method {}", m.keyword())?;
        }
        match (self.both, self.protocol) {
            (Some(true), _) => f.write_str(" porttype both")?,
            (_, Some(p)) => write!(f, " protocol {}", p.keyword())?,
            _ => {}
        }
        if let Some(s) = self.selection {
            write!(f, " selectionalgorithm {}", s.keyword())?;
        }
        if let Some(v) = self.stickytime {
            write!(f, " stickytime {v}")?;
        }
        if let Some(v) = self.staletimeout {
            write!(f, " staletimeout {v}")?;
        }
        if let Some(v) = self.weightbound {
            write!(f, " weightbound {v}")?;
        }
        if let Some(v) = self.reset {
            write!(f, " reset {}", yes_no(v))?;
        }
        if let Some(r) = self.repstrategy {
            write!(f, " repstrategy {}", r.keyword())?;
        }
        Ok(())
    }
}

impl fmt::Display for ServerOptions {
    /// The options as they follow the target (each with a leading space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.weight {
            write!(f, " weight {v}")?;
        }
        if let Some(v) = self.fixedweight {
            write!(f, " fixedweight {}", yes_no(v))?;
        }
        if let Some(a) = self.returnaddress {
            write!(f, " returnaddress {a}")?;
        }
        if let Some(a) = self.router {
            write!(f, " router {a}")?;
        }
        if let Some(p) = self.mapport {
            write!(f, " mapport {p}")?;
        }
        if let Some(text) = &self.advisorrequest {
            f.write_str(" advisorrequest ")?;
            write_quoted(f, text)?;
        }
        if let Some(text) = &self.advisorresponse {
            f.write_str(" advisorresponse ")?;
            write_quoted(f, text)?;
        }
        if let Some(text) = &self.label {
            f.write_str(" label ")?;
            write_quoted(f, text)?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Command::*;
        match self {
            ExecutorStart => f.write_str("executor start"),
            ExecutorStop => f.write_str("executor stop"),
            ExecutorStatus => f.write_str("executor status"),
            ExecutorReport => f.write_str("executor report"),
            ExecutorSet(ExecutorSetting::Nfa(a)) => write!(f, "executor set nfa {a}"),
            ExecutorSet(ExecutorSetting::ClientGateway(a)) => {
                write!(f, "executor set clientgateway {a}")
            }
            ExecutorSet(ExecutorSetting::HaTimeout(s)) => write!(f, "executor set hatimeout {s}"),
            ExecutorSet(ExecutorSetting::MaxConnections(Some(n))) => {
                write!(f, "executor set maxconnections {n}")
            }
            ExecutorSet(ExecutorSetting::MaxConnections(None)) => {
                f.write_str("executor set maxconnections auto")
            }
            ExecutorSet(ExecutorSetting::PacketIo(p)) => {
                write!(f, "executor set packetio {}", p.word())
            }
            ExecutorSet(ExecutorSetting::Metrics(Some(a))) => {
                write!(f, "executor set metrics {a}")
            }
            ExecutorSet(ExecutorSetting::Metrics(None)) => f.write_str("executor set metrics off"),
            ExecutorSet(ExecutorSetting::LogLevel(l)) => {
                write!(f, "executor set loglevel {}", l.word())
            }
            ExecutorSet(ExecutorSetting::SynTimeout(s)) => {
                write!(f, "executor set syntimeout {s}")
            }
            ExecutorSet(ExecutorSetting::FinTimeout(s)) => {
                write!(f, "executor set fintimeout {s}")
            }
            ExecutorSet(ExecutorSetting::StaleTimeout(s)) => {
                write!(f, "executor set staletimeout {s}")
            }
            ExecutorSet(ExecutorSetting::StickyTime(s)) => {
                write!(f, "executor set stickytime {s}")
            }
            ClusterAdd {
                clusters,
                proportions,
                defaults,
                primaryhost,
                label,
            } => {
                f.write_str("cluster add ")?;
                Targets::List(clusters.clone()).write_part(f)?;
                if let Some(p) = proportions {
                    write!(f, " proportions {}", ProportionWords(p))?;
                }
                if let Some(a) = primaryhost {
                    write!(f, " primaryhost {a}")?;
                }
                if let Some(text) = label {
                    f.write_str(" label ")?;
                    write_quoted(f, text)?;
                }
                write!(f, "{}", DefaultWords(defaults))
            }
            ClusterSetDefaults { clusters, defaults } => {
                write!(f, "cluster set {clusters}{}", DefaultWords(defaults))
            }
            ManagerStartLogged {
                logfile,
                metric_port,
            } => {
                write!(f, "manager start {logfile}")?;
                match metric_port {
                    Some(p) => write!(f, " {p}"),
                    None => Ok(()),
                }
            }
            FileSave { name, force } => {
                write!(f, "file save {name}{}", if *force { " force" } else { "" })
            }
            FileNewLoad(name) => write!(f, "file newload {name}"),
            FileAppendLoad(name) => write!(f, "file appendload {name}"),
            FileReport => f.write_str("file report"),
            FileDelete(name) => write!(f, "file delete {name}"),
            ClusterSetPrimaryHost {
                clusters,
                primaryhost,
            } => write!(f, "cluster set {clusters} primaryhost {primaryhost}"),
            ClusterSetProportions {
                clusters,
                proportions,
            } => write!(
                f,
                "cluster set {clusters} proportions {}",
                ProportionWords(proportions)
            ),
            ClusterSetLabel { clusters, label } => {
                write!(f, "cluster set {clusters} label ")?;
                write_quoted(f, label)
            }
            ClusterRemove(t) => write!(f, "cluster remove {t}"),
            ClusterReport(t) => write!(f, "cluster report {t}"),
            ClusterStatus(t) => write!(f, "cluster status {t}"),
            PortAdd { target, options } => write!(f, "port add {target}{options}"),
            PortSet { target, options } => write!(f, "port set {target}{options}"),
            PortRemove(t) => write!(f, "port remove {t}"),
            PortReport(t) => write!(f, "port report {t}"),
            PortStatus(t) => write!(f, "port status {t}"),
            ServerAdd { target, options } => write!(f, "server add {target}{options}"),
            ServerSet { target, options } => write!(f, "server set {target}{options}"),
            ServerDown(t) => write!(f, "server down {t}"),
            ServerUp(t) => write!(f, "server up {t}"),
            ServerRemove(t) => write!(f, "server remove {t}"),
            ServerReport(t) => write!(f, "server report {t}"),
            ServerStatus(t) => write!(f, "server status {t}"),
            HaHeartbeatAdd {
                source,
                destination,
            } => {
                write!(f, "highavailability heartbeat add {source} {destination}")
            }
            HaHeartbeatDelete(a) => write!(f, "highavailability heartbeat delete {a}"),
            HaReachAdd(a) => write!(f, "highavailability reach add {a}"),
            HaReachDelete(a) => write!(f, "highavailability reach delete {a}"),
            HaBackupAdd(b) => write!(
                f,
                "highavailability backup add {} {} {}",
                b.role.keyword(),
                b.recovery.keyword(),
                b.port
            ),
            HaBackupDelete => f.write_str("highavailability backup delete"),
            HaBackupRecovery(r) => {
                write!(f, "highavailability backup set recovery {}", r.keyword())
            }
            HaMaintenanceMode(on) => write!(
                f,
                "highavailability maintenance {}",
                if *on { "start" } else { "stop" }
            ),
            HaKeyGenerate(p) => write!(f, "highavailability key generate {p}"),
            HaStatus => f.write_str("highavailability status"),
            HaTakeover(None) => f.write_str("highavailability takeover"),
            HaTakeover(Some(a)) => write!(f, "highavailability takeover {a}"),
            HaKey(p) => write!(f, "highavailability key {p}"),
            HaScripts(p) => write!(f, "highavailability scripts {p}"),
            HaSync(on) => write!(
                f,
                "highavailability sync {}",
                if *on { "on" } else { "off" }
            ),
            HaMaintenance => f.write_str("highavailability maintenance"),
            Ha(a) => write!(f, "{a}"),
            ManagerReachInterval(s) => write!(f, "manager reach set interval {s}"),
            AdvisorStart(k) => write!(f, "advisor start {}", KeyWords(k)),
            AdvisorStop(k) => write!(f, "advisor stop {}", KeyWords(k)),
            AdvisorSet { key, setting } => {
                let k = KeyWords(key);
                match setting {
                    AdvisorSetting::Interval(s) => write!(f, "advisor interval {k} {s}"),
                    AdvisorSetting::ConnectTimeout(s) => {
                        write!(f, "advisor connecttimeout {k} {s}")
                    }
                    AdvisorSetting::ReceiveTimeout(s) => {
                        write!(f, "advisor receivetimeout {k} {s}")
                    }
                    AdvisorSetting::Retries(n) => write!(f, "advisor retries {k} {n}"),
                    AdvisorSetting::Timeout(Some(s)) => write!(f, "advisor timeout {k} {s}"),
                    AdvisorSetting::Timeout(None) => write!(f, "advisor timeout {k} unlimited"),
                }
            }
            AdvisorList => f.write_str("advisor list"),
            AdvisorReport(k) => write!(f, "advisor report {}", KeyWords(k)),
            AdvisorStatus(k) => write!(f, "advisor status {}", KeyWords(k)),
            ManagerStart => f.write_str("manager start"),
            ManagerStop => f.write_str("manager stop"),
            ManagerStatus => f.write_str("manager status"),
            ManagerReport(Targets::All) => f.write_str("manager report"),
            ManagerReport(t) => write!(f, "manager report {t}"),
            ManagerInterval(s) => write!(f, "manager interval {s}"),
            ManagerSensitivity(p) => write!(f, "manager sensitivity {p}"),
            ManagerSmoothing(s) => write!(f, "manager smoothing {s}"),
            ManagerQuiesce(t) => write!(f, "manager quiesce {t}"),
            ManagerUnquiesce(t) => write!(f, "manager unquiesce {t}"),
            SaspAdd {
                group,
                gwm: (address, port),
                settings,
            } => {
                write!(f, "sasp add {} gwm {address}", GroupWords(group))?;
                if *port != DEFAULT_SASP_PORT {
                    write!(f, " port {port}")?;
                }
                write!(f, "{}", SaspWords(settings))
            }
            SaspRemove { group, gwm } => {
                write!(f, "sasp remove {}", GroupWords(group))?;
                if let Some((address, port)) = gwm {
                    write!(f, " gwm {address}")?;
                    if let Some(port) = port {
                        write!(f, " port {port}")?;
                    }
                }
                Ok(())
            }
            SaspReport => f.write_str("sasp report"),
            Diagnostics(p) => write!(f, "diagnostics {p}"),
        }
    }
}

/// The cluster-level port defaults that are set (each with a leading space).
struct DefaultWords<'a>(&'a super::super::model::PortDefaults);

impl fmt::Display for DefaultWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if let Some(v) = d.staletimeout {
            write!(f, " staletimeout {v}")?;
        }
        if let Some(v) = d.stickytime {
            write!(f, " stickytime {v}")?;
        }
        if let Some(v) = d.weightbound {
            write!(f, " weightbound {v}")?;
        }
        Ok(())
    }
}

/// `ACTIVE NEW PORT SYSTEM`.
struct ProportionWords<'a>(&'a Proportions);

impl fmt::Display for ProportionWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        write!(f, "{} {} {} {}", p.active, p.new, p.port, p.system)
    }
}

/// `NAME PORT` or `NAME CLUSTER@PORT`.
pub(crate) struct KeyWords<'a>(pub(crate) &'a AdvisorKey);

impl fmt::Display for KeyWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.kind.keyword(), AdvisorTarget(self.0))
    }
}

/// `PORT` or `CLUSTER@PORT` of an advisor.
pub(crate) struct AdvisorTarget<'a>(pub(crate) &'a AdvisorKey);

impl fmt::Display for AdvisorTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.cluster {
            Some(c) => write!(f, "{c}@{}", self.0.port),
            None => write!(f, "{}", self.0.port),
        }
    }
}

/// `CLUSTER` or `CLUSTER@PORT` of a SASP group.
pub(crate) struct GroupWords<'a>(pub(crate) &'a SaspGroupTarget);

impl fmt::Display for GroupWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.port {
            Some(p) => write!(f, "{}@{p}", self.0.cluster),
            None => write!(f, "{}", self.0.cluster),
        }
    }
}

/// The options of a GWM that differ from the defaults (each with a leading space).
struct SaspWords<'a>(&'a SaspGwm);

impl fmt::Display for SaspWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.0;
        let d = SaspGwm::default();
        if g.mode != d.mode {
            let mode = match g.mode {
                SaspMode::Push => "push",
                SaspMode::Pull => "pull",
            };
            write!(f, " mode {mode}")?;
        }
        if g.changed_only != d.changed_only {
            let members = if g.changed_only { "changed" } else { "all" };
            write!(f, " members {members}")?;
        }
        if let Some(s) = g.interval {
            write!(f, " interval {s}")?;
        }
        if g.grace != d.grace {
            write!(f, " grace {}", g.grace)?;
        }
        if g.tls != d.tls {
            write!(f, " tls {}", yes_no(g.tls))?;
        }
        Ok(())
    }
}
