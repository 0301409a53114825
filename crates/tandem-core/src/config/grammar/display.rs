//! `Display` of commands: the canonical line that [`super::parse_line`] reads back.

use super::Command;
use super::executor_cluster::ExecutorSetting;
use super::port_server::{PortOptions, ServerOptions};
use super::targets::Targets;
use super::words::yes_no;
use std::fmt;

impl fmt::Display for PortOptions {
    /// The options as they follow the target (each with a leading space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.method {
            write!(f, " method {}", m.keyword())?;
        }
        if let Some(p) = self.protocol {
            write!(f, " protocol {}", p.keyword())?;
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
            ExecutorSet(ExecutorSetting::SynTimeout(s)) => {
                write!(f, "executor set syntimeout {s}")
            }
            ClusterAdd(cs) => {
                f.write_str("cluster add ")?;
                Targets::List(cs.clone()).write_part(f)
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
            HaMaintenance => f.write_str("highavailability maintenance"),
            ManagerReachInterval(s) => write!(f, "manager reach set interval {s}"),
        }
    }
}
