//! The HA part of the configuration, as the machine needs it, with the rules that derive
//! timers from hatimeout.

use crate::config::{Backup, Config, RepStrategy};
use std::net::IpAddr;
use std::time::Duration;

/// Upper bound of every timer setting (so that `now + timer` never overflows).
pub const MAX_TIMER: Duration = Duration::from_secs(86_400);

/// The HA part of the configuration, as the machine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HaSettings {
    /// Role, recovery and port; `None` = HA off (stand-alone, Idle).
    pub backup: Option<Backup>,
    /// Heartbeat pairs: (source on this node, destination on the partner).
    pub heartbeats: Vec<(IpAddr, IpAddr)>,
    /// Reach targets.
    pub reach: Vec<IpAddr>,
    /// `executor set hatimeout` (default 2 s).
    pub hatimeout: Duration,
    /// Heartbeat interval; `None` = hatimeout / 4.
    pub interval: Option<Duration>,
    /// How long a takeover request waits for the partner to yield; `None` = 2 × hatimeout.
    pub takeover_timeout: Option<Duration>,
    /// How long an `auto` primary stays in contact and Synchronized before it asks for Active
    /// back (damps flapping); `None` = hatimeout.
    pub failback_hold: Option<Duration>,
    /// Seconds between reach probes (`manager reach set interval`, default 2 s).
    pub reach_interval: Duration,
    /// How long a Standby must reach strictly more targets than the Active before the Active
    /// yields to it; `None` = reach interval + hatimeout. Probes on two nodes see a shared
    /// target fail at different moments: without this hold they would swap for nothing.
    pub reach_hold: Option<Duration>,
    /// Some port replicates records: Synchronized then also needs [`super::Machine::sync_complete`].
    pub replication: bool,
    /// Digest of the whole configuration, reported in heartbeats.
    pub config_digest: u64,
    /// Heartbeats are authenticated (a key is configured on this node). Unauthenticated, a
    /// node never acts on one datagram alone: a "leaving" notice is ignored (only silence
    /// for hatimeout counts), and a heartbeat that changes what the partner says (its epoch,
    /// state, request, sub-state, reach, maintenance, or an implausible seq jump) is acted on
    /// only once a second, later heartbeat says the same.
    pub authenticated: bool,
}

impl Default for HaSettings {
    fn default() -> Self {
        HaSettings {
            backup: None,
            heartbeats: Vec::new(),
            reach: Vec::new(),
            hatimeout: Duration::from_secs(2),
            interval: None,
            takeover_timeout: None,
            failback_hold: None,
            reach_interval: Duration::from_secs(2),
            reach_hold: None,
            replication: false,
            config_digest: 0,
            authenticated: false,
        }
    }
}

impl HaSettings {
    /// The settings a configuration gives (digest left at 0: the caller knows its digest).
    pub fn from_config(cfg: &Config) -> Self {
        let replication = cfg
            .clusters
            .values()
            .flat_map(|c| c.ports.values())
            .any(|p| p.repstrategy != RepStrategy::None);
        HaSettings {
            backup: cfg.ha.backup,
            heartbeats: cfg.ha.heartbeats.clone(),
            reach: cfg.ha.reach.clone(),
            hatimeout: Duration::try_from_secs_f64(cfg.executor.hatimeout)
                .unwrap_or(Duration::from_secs(2)),
            reach_interval: Duration::try_from_secs_f64(cfg.ha.reach_interval)
                .unwrap_or(Duration::from_secs(2)),
            replication,
            authenticated: cfg.ha.key_file.is_some(),
            ..HaSettings::default()
        }
    }

    /// hatimeout, within 10 ms..=1 day.
    pub fn hatimeout(&self) -> Duration {
        self.hatimeout.clamp(Duration::from_millis(10), MAX_TIMER)
    }

    /// Heartbeat interval: the configured one within 1 ms..=hatimeout, else hatimeout / 4.
    pub fn interval(&self) -> Duration {
        let h = self.hatimeout();
        self.interval
            .unwrap_or(h / 4)
            .clamp(Duration::from_millis(1), h)
    }

    /// Default 2 × hatimeout; at least one interval, at most a day.
    pub fn takeover_timeout(&self) -> Duration {
        self.takeover_timeout
            .unwrap_or(self.hatimeout() * 2)
            .clamp(self.interval(), MAX_TIMER)
    }

    /// Default hatimeout; at most a day.
    pub fn failback_hold(&self) -> Duration {
        self.failback_hold
            .unwrap_or(self.hatimeout())
            .min(MAX_TIMER)
    }

    /// Default reach interval + hatimeout; at most a day.
    pub fn reach_hold(&self) -> Duration {
        self.reach_hold
            .unwrap_or(self.reach_interval.min(MAX_TIMER) + self.hatimeout())
            .min(MAX_TIMER)
    }
}
