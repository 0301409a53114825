//! Running the health commands (`advisor`, `manager`, `sasp`, `cluster set ... proportions`)
//! against a configuration.
//!
//! Rules:
//! * an advisor is started once per `NAME PORT` or `NAME CLUSTER@PORT`; stopping or setting
//!   one that is not started is refused; a `CLUSTER@PORT` advisor needs that cluster and
//!   port (a `PORT` advisor needs nothing: it watches that port of every cluster that has
//!   it, now or later);
//! * `advisor interval` moves the connect and receive timeouts that equal the old interval
//!   along with it (IBM's default timeout is the interval), so a timeout set apart stays;
//! * `manager start` twice, or `manager stop` of a stopped manager, is refused;
//! * `manager quiesce|unquiesce` must select at least one existing server (a lone `SERVER`
//!   must be on at least one port);
//! * a SASP group's cluster, and its port if it names one, exist; one GWM address and port
//!   at most once per group; removing a group's last GWM removes the group;
//! * removing a cluster or a port **removes** what hangs on it: its `CLUSTER@PORT` advisors
//!   and its SASP groups (as removing a port removes its servers). `PORT` advisors stay.

use super::super::Config;
use super::super::grammar::{
    AdvisorSetting, Command, MAX_ADVISOR_TEXT, MAX_CUSTOM_ADVISOR_NAME, MAX_RETRIES, MAX_SECONDS,
    MAX_SMOOTHING, MIN_SECONDS, ServerOptions,
};
use super::super::health::{Advisor, AdvisorKey, AdvisorKind, SaspGroupTarget, SaspMode};
use super::{ConfigError, Resolved, non_empty};
use std::net::IpAddr;

/// `port 80` or `192.0.2.100@80`: where an advisor runs, for messages.
fn advisor_on(key: &AdvisorKey) -> String {
    match key.cluster {
        Some(c) => format!("{c}@{}", key.port),
        None => format!("port {}", key.port),
    }
}

fn group_name(g: &SaspGroupTarget) -> String {
    match g.port {
        Some(p) => format!("{}@{p}", g.cluster),
        None => g.cluster.to_string(),
    }
}

/// Range checks of the health commands built in code rather than parsed.
pub(super) fn check_values(cmd: &Command) -> Result<(), ConfigError> {
    let invalid = |msg: String| Err(ConfigError::Invalid(msg));
    let seconds_ok = |s: f64| s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s);
    let bad_seconds = |what: &str, s: f64| {
        invalid(format!(
            "bad {what} '{s}' (expected seconds, a number from 0.01 to 3600)"
        ))
    };
    let key_ok = |key: &AdvisorKey| -> Result<(), ConfigError> {
        if key.port == 0 {
            return invalid("port 0 out of range 1-65535".to_string());
        }
        if let AdvisorKind::Custom(name) = &key.kind {
            let ok = name.len() <= MAX_CUSTOM_ADVISOR_NAME
                && name.strip_prefix("ADV_").is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            if !ok {
                return invalid(format!("bad custom advisor name '{name}'"));
            }
        }
        Ok(())
    };
    let text_ok = |o: &ServerOptions| -> Result<(), ConfigError> {
        for (what, text) in [
            ("advisorrequest", &o.advisorrequest),
            ("advisorresponse", &o.advisorresponse),
        ] {
            if let Some(t) = text
                && t.len() > MAX_ADVISOR_TEXT
            {
                return invalid(format!(
                    "{what} is {} bytes long (at most {MAX_ADVISOR_TEXT})",
                    t.len()
                ));
            }
        }
        Ok(())
    };
    match cmd {
        Command::ClusterAdd {
            proportions: Some(p),
            ..
        }
        | Command::ClusterSetProportions { proportions: p, .. } => {
            crate::config::grammar::check_proportions(p).map_err(ConfigError::Invalid)
        }
        Command::ServerAdd { options, .. } | Command::ServerSet { options, .. } => text_ok(options),
        Command::AdvisorStart(key)
        | Command::AdvisorStop(key)
        | Command::AdvisorReport(key)
        | Command::AdvisorStatus(key) => key_ok(key),
        Command::AdvisorSet { key, setting } => {
            key_ok(key)?;
            match *setting {
                AdvisorSetting::Interval(s) if !seconds_ok(s) => bad_seconds("interval", s),
                AdvisorSetting::ConnectTimeout(s) if !seconds_ok(s) => {
                    bad_seconds("connecttimeout", s)
                }
                AdvisorSetting::ConnectTimeout(_)
                    if matches!(
                        key.kind,
                        AdvisorKind::Ping | AdvisorKind::Dns | AdvisorKind::Custom(_)
                    ) =>
                {
                    invalid(format!(
                        "advisor {} has no connect phase (it sends one query and waits \
                         receivetimeout for the answer): set receivetimeout",
                        key.kind.keyword()
                    ))
                }
                AdvisorSetting::ReceiveTimeout(s) if !seconds_ok(s) => {
                    bad_seconds("receivetimeout", s)
                }
                AdvisorSetting::Timeout(Some(s)) if !seconds_ok(s) => bad_seconds("timeout", s),
                AdvisorSetting::Retries(n) if n > MAX_RETRIES => {
                    invalid(format!("retries {n} out of range 0-100"))
                }
                _ => Ok(()),
            }
        }
        Command::ManagerInterval(s) if !seconds_ok(*s) => bad_seconds("interval", *s),
        Command::ManagerSensitivity(p) if *p > 100 => {
            invalid(format!("sensitivity {p} out of range 0-100"))
        }
        Command::ManagerSmoothing(s) if !(s.is_finite() && (1.0..=MAX_SMOOTHING).contains(s)) => {
            invalid(format!("smoothing {s} out of range 1-100"))
        }
        Command::SaspAdd {
            group,
            gwm,
            settings,
        } => {
            if group.port == Some(0) || gwm.1 == 0 {
                return invalid("port 0 out of range 1-65535".to_string());
            }
            if gwm.0.is_unspecified() {
                return invalid(format!("bad address '{}'", gwm.0));
            }
            if let Some(s) = settings.interval {
                if settings.mode != SaspMode::Pull {
                    return invalid(
                        "a sasp interval is the polling interval of mode pull".to_string(),
                    );
                }
                if !seconds_ok(s) {
                    return bad_seconds("interval", s);
                }
            }
            if !(settings.grace.is_finite() && (0.0..=MAX_SECONDS).contains(&settings.grace)) {
                return invalid(format!(
                    "bad grace '{}' (expected seconds, a number from 0 to 3600)",
                    settings.grace
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Config {
    /// The settings of a started advisor, or why there are none.
    pub(super) fn started_advisor(&self, key: &AdvisorKey) -> Result<&Advisor, ConfigError> {
        self.health
            .advisors
            .get(key)
            .ok_or_else(|| ConfigError::AdvisorNotStarted {
                advisor: key.kind.keyword().to_string(),
                on: advisor_on(key),
            })
    }

    /// The cluster (and port) a `CLUSTER@PORT` advisor or a SASP group names must exist.
    fn check_port_exists(&self, cluster: IpAddr, port: Option<u16>) -> Result<(), ConfigError> {
        let Some(c) = self.clusters.get(&cluster) else {
            return Err(ConfigError::ClusterNotFound(cluster));
        };
        match port {
            Some(p) if !c.ports.contains_key(&p) => {
                Err(ConfigError::PortNotFound { cluster, port: p })
            }
            _ => Ok(()),
        }
    }

    /// Removes the `CLUSTER@PORT` advisors and SASP groups of a removed cluster (`port`
    /// `None`) or port.
    pub(super) fn forget_health_of(&mut self, cluster: IpAddr, port: Option<u16>) {
        let gone =
            |c: Option<IpAddr>, p: Option<u16>| c == Some(cluster) && (port.is_none() || p == port);
        self.health
            .advisors
            .retain(|k, _| !gone(k.cluster, Some(k.port)));
        self.health
            .sasp
            .retain(|g, _| !gone(Some(g.cluster), g.port));
    }

    /// Applies a health command (see the module's rules).
    pub(super) fn apply_health(&mut self, cmd: &Command) -> Result<Resolved, ConfigError> {
        let all_clusters = |c: &Config| Resolved::Manager(c.clusters.keys().copied().collect());
        Ok(match cmd {
            Command::ClusterSetProportions {
                clusters,
                proportions,
            } => {
                let clusters = non_empty(self.select_clusters(clusters)?, "cluster", clusters)?;
                for c in &clusters {
                    if let Some(cluster) = self.clusters.get_mut(c) {
                        cluster.proportions = *proportions;
                    }
                }
                Resolved::Clusters(clusters)
            }
            Command::AdvisorStart(key) => {
                if let Some(c) = key.cluster {
                    self.check_port_exists(c, Some(key.port))?;
                }
                if self.health.advisors.contains_key(key) {
                    return Err(ConfigError::AdvisorAlreadyStarted {
                        advisor: key.kind.keyword().to_string(),
                        on: advisor_on(key),
                    });
                }
                self.health.advisors.insert(key.clone(), Advisor::default());
                Resolved::Advisors(vec![key.clone()])
            }
            Command::AdvisorStop(key) => {
                self.started_advisor(key)?;
                self.health.advisors.remove(key);
                Resolved::Advisors(vec![key.clone()])
            }
            Command::AdvisorSet { key, setting } => {
                self.started_advisor(key)?;
                if let Some(a) = self.health.advisors.get_mut(key) {
                    match *setting {
                        AdvisorSetting::Interval(s) => {
                            if a.connecttimeout == a.interval {
                                a.connecttimeout = s;
                            }
                            if a.receivetimeout == a.interval {
                                a.receivetimeout = s;
                            }
                            a.interval = s;
                        }
                        AdvisorSetting::ConnectTimeout(s) => a.connecttimeout = s,
                        AdvisorSetting::ReceiveTimeout(s) => a.receivetimeout = s,
                        AdvisorSetting::Retries(n) => a.retries = n,
                        AdvisorSetting::Timeout(t) => a.timeout = t,
                    }
                }
                Resolved::Advisors(vec![key.clone()])
            }
            Command::ManagerStart => {
                if self.health.manager.running {
                    return Err(ConfigError::ManagerAlreadyStarted);
                }
                self.health.manager.running = true;
                all_clusters(self)
            }
            Command::ManagerStop => {
                if !self.health.manager.running {
                    return Err(ConfigError::ManagerNotStarted);
                }
                self.health.manager.running = false;
                all_clusters(self)
            }
            Command::ManagerInterval(s) => {
                self.health.manager.interval = *s;
                all_clusters(self)
            }
            Command::ManagerSensitivity(p) => {
                self.health.manager.sensitivity = *p;
                all_clusters(self)
            }
            Command::ManagerSmoothing(s) => {
                self.health.manager.smoothing = *s;
                all_clusters(self)
            }
            Command::ManagerQuiesce(target) | Command::ManagerUnquiesce(target) => {
                let quiesce = matches!(cmd, Command::ManagerQuiesce(_));
                let servers = non_empty(self.select_servers(target)?, "server", target)?;
                for &(c, p, s) in &servers {
                    if let Some(server) = self.server_mut(c, p, s) {
                        server.quiesced = quiesce;
                    }
                }
                Resolved::Servers(servers)
            }
            Command::SaspAdd {
                group,
                gwm,
                settings,
            } => {
                self.check_port_exists(group.cluster, group.port)?;
                // One connection per GWM carries every group that names it (a GWM replaces a
                // connection whose LB UID it knows): its settings must agree.
                if let Some((other, theirs)) = self
                    .health
                    .sasp
                    .iter()
                    .find_map(|(g, gwms)| gwms.get(gwm).filter(|_| g != group).map(|s| (g, s)))
                    && theirs != settings
                {
                    return Err(ConfigError::Invalid(format!(
                        "gwm {} port {} already serves sasp group {} with other settings (one \
                         connection per GWM carries all its groups): use the same mode, \
                         members, interval, grace and tls",
                        gwm.0,
                        gwm.1,
                        group_name(other)
                    )));
                }
                let gwms = self.health.sasp.entry(*group).or_default();
                if gwms.contains_key(gwm) {
                    return Err(ConfigError::SaspGwmExists {
                        group: group_name(group),
                        gwm: format!("{} port {}", gwm.0, gwm.1),
                    });
                }
                gwms.insert(*gwm, settings.clone());
                Resolved::Sasp(vec![*group])
            }
            Command::SaspRemove { group, gwm } => {
                let Some(gwms) = self.health.sasp.get_mut(group) else {
                    return Err(ConfigError::SaspGroupNotFound(group_name(group)));
                };
                if let Some((address, port)) = gwm {
                    let before = gwms.len();
                    gwms.retain(|(a, p), _| !(a == address && port.is_none_or(|port| port == *p)));
                    if gwms.len() == before {
                        return Err(ConfigError::SaspGwmNotFound {
                            group: group_name(group),
                            gwm: match port {
                                Some(p) => format!("{address} port {p}"),
                                None => address.to_string(),
                            },
                        });
                    }
                    if !gwms.is_empty() {
                        return Ok(Resolved::Sasp(vec![*group]));
                    }
                }
                self.health.sasp.remove(group);
                Resolved::Sasp(vec![*group])
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "'{other}' is not a health command"
                )));
            }
        })
    }
}
