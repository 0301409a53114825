//! Reports of the health loop: `advisor list|report|status`, `manager status|report`, `sasp
//! report` (JSON shapes in docs/advisors.md; the data structures are tandem-core's).

use super::Table;
use crate::health::Core;
use anyhow::{Result, anyhow};
use std::fmt::Write;
use std::time::Instant;
use tandem_core::config::{Command, Targets};

/// Whether `cmd` is one of the health queries answered here.
pub fn is_health_query(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::AdvisorList
            | Command::AdvisorReport(_)
            | Command::AdvisorStatus(_)
            | Command::ManagerStatus
            | Command::ManagerReport(_)
            | Command::SaspReport
    )
}

/// Answers a health query from the loop's state.
pub fn render(core: &Core, cmd: &Command, now: Instant) -> Result<(String, serde_json::Value)> {
    match cmd {
        Command::AdvisorList => {
            let list = core.scheduler.list();
            let mut t = Table::new(&[
                "Advisor",
                "Cluster",
                "Port",
                "Interval",
                "Connecttimeout",
                "Receivetimeout",
                "Retries",
                "Timeout",
            ]);
            for a in &list.advisors {
                t.row(vec![
                    a.name.clone(),
                    a.cluster.map_or("@".into(), |c| c.to_string()),
                    a.port.to_string(),
                    a.interval.to_string(),
                    a.connecttimeout.to_string(),
                    a.receivetimeout.to_string(),
                    a.retries.to_string(),
                    a.timeout.map_or("unlimited".into(), |t| t.to_string()),
                ]);
            }
            Ok((t.render(), serde_json::to_value(&list)?))
        }
        Command::AdvisorReport(key) | Command::AdvisorStatus(key) => {
            let rep = core.scheduler.report(now, key).ok_or_else(|| {
                anyhow!(
                    "advisor {} is not started on port {}",
                    key.kind.keyword(),
                    key.cluster
                        .map_or(key.port.to_string(), |c| format!("{c}@{}", key.port))
                )
            })?;
            let mut out = String::new();
            let _ = writeln!(
                out,
                "Advisor {} on port {} ({})",
                rep.name,
                rep.cluster
                    .map_or(rep.port.to_string(), |c| format!("{c}@{}", rep.port)),
                if rep.running {
                    "probing"
                } else {
                    "not probing: this node does not forward"
                }
            );
            let mut t = Table::new(&[
                "Cluster",
                "Port",
                "Server",
                "State",
                "Load",
                "Failures",
                "Last error",
            ]);
            for s in &rep.servers {
                t.row(vec![
                    s.cluster.to_string(),
                    s.port.to_string(),
                    s.server.to_string(),
                    s.state.keyword().to_string(),
                    s.load.map_or("-".into(), |l| l.to_string()),
                    s.failures.to_string(),
                    s.last_error.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            out.push_str(&t.render());
            Ok((out, serde_json::to_value(&rep)?))
        }
        Command::ManagerStatus | Command::ManagerReport(_) => {
            let clusters = match cmd {
                Command::ManagerReport(Targets::List(list)) => list.clone(),
                _ => Vec::new(),
            };
            let rep = core.manager.report(&core.config, &core.overlay, &clusters);
            let mut out = String::new();
            let _ = writeln!(
                out,
                "Manager {}{}",
                if rep.running { "running" } else { "stopped" },
                if core.forwarding || !rep.running {
                    ""
                } else {
                    " (waiting: this node does not forward)"
                }
            );
            for w in &rep.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            for p in &rep.ports {
                let _ = writeln!(
                    out,
                    "\nPort {}@{}{}",
                    p.cluster,
                    p.port,
                    if p.all_down {
                        ": all servers down, spreading over all (weightbound/2 each)"
                    } else {
                        ""
                    }
                );
                let mut t = Table::new(&[
                    "Server",
                    "Weight",
                    "Source",
                    "Manager",
                    "Active",
                    "New",
                    "Port load",
                    "System",
                ]);
                for s in &p.servers {
                    t.row(vec![
                        s.server.to_string(),
                        s.weight.to_string(),
                        s.source.name().to_string(),
                        s.manager_weight.map_or("-".into(), |w| w.to_string()),
                        s.active.to_string(),
                        s.new.to_string(),
                        s.port_load.map_or("-".into(), |l| l.to_string()),
                        s.system_load.map_or("-".into(), |l| l.to_string()),
                    ]);
                }
                out.push_str(&t.render());
            }
            Ok((out, serde_json::to_value(&rep)?))
        }
        Command::SaspReport => {
            let rep = core.steering.report(&core.config);
            let mut out = String::new();
            for g in &rep.groups {
                let _ = writeln!(out, "SASP group {}", g.name);
                for gwm in &g.gwms {
                    let _ = writeln!(
                        out,
                        "  GWM {} {} (LB UID {}, {:?}, {} members){}",
                        std::net::SocketAddr::new(gwm.address, gwm.port),
                        gwm.state,
                        gwm.lb_uid.as_deref().unwrap_or("-"),
                        gwm.mode,
                        if gwm.changed_only { "changed" } else { "all" },
                        gwm.last_error
                            .as_ref()
                            .map(|e| format!(": last error: {e}"))
                            .unwrap_or_default()
                    );
                    let mut t = Table::new(&[
                        "    Member",
                        "Port",
                        "Proto",
                        "Weight",
                        "Raw",
                        "Contact",
                        "Quiesce",
                        "Confident",
                    ]);
                    for m in &gwm.members {
                        t.row(vec![
                            format!("    {}", m.address),
                            m.port.to_string(),
                            m.protocol.clone(),
                            m.weight.to_string(),
                            m.raw_weight.to_string(),
                            m.contact.to_string(),
                            m.quiesce.to_string(),
                            m.confident.to_string(),
                        ]);
                    }
                    out.push_str(&t.render());
                }
            }
            if rep.groups.is_empty() {
                out.push_str("no SASP group (sasp add CLUSTER[@PORT] gwm ADDRESS)\n");
            }
            Ok((out, serde_json::to_value(&rep)?))
        }
        other => Err(anyhow!("'{other}' is not a health query")),
    }
}
