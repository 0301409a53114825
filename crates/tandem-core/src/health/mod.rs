//! The weight overlay: what the operator, the advisors, the manager and SASP say about each
//! server, combined into the weight the data plane uses.
//!
//! The health loop of the daemon gathers the inputs (advisor states, the manager's weights,
//! the GWMs' weights) and calls [`Overlay::compute`]; the node compiles its plan with the
//! result ([`crate::forward::Plan::compile`]). An empty overlay ([`Overlay::default`]) gives
//! the configured weights, `server down` and `manager quiesce` only: the behaviour of a node
//! on which no advisor, manager or SASP group runs.
//!
//! Precedence, per server of a port (docs/manager.md has the same list):
//! 1. `server down` → 0 ([`WeightSource::OperatorDown`]);
//! 2. `manager quiesce` → 0 for new clients; clients with a live affinity record keep
//!    reaching it ([`WeightSource::Quiesced`]);
//! 3. an advisor says down → 0 ([`WeightSource::AdvisorDown`]);
//! 4. every server of the port down (rules 1 and 3) → every server gets weightbound/2 (at
//!    least 1) and new connections are spread over all ([`WeightSource::AllDown`]);
//! 5. the port is steered by SASP (a GWM in contact, or within grace, and at least one member
//!    of the port CONFIDENT) → the GWM's weight converted to `[0, weightbound]`, 0 for a
//!    member without CONTACT, with QUIESCE or not CONFIDENT ([`WeightSource::Sasp`]);
//! 6. the manager runs → its weight, except for `fixedweight yes` servers
//!    ([`WeightSource::Manager`]);
//! 7. the configured weight ([`WeightSource::Config`], or [`WeightSource::Fixed`] for a
//!    `fixedweight yes` server).

#[cfg(test)]
mod tests;

use crate::config::{Config, Port, Server};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One server of one cluster port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServerId {
    pub cluster: IpAddr,
    pub port: u16,
    pub server: IpAddr,
}

/// What the advisors say about one server (the health loop passes it from the advisor
/// scheduler).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AdvisorInput {
    /// An advisor of the port marked the server down.
    pub down: bool,
    /// The port load: a protocol advisor's last response time, milliseconds (lower is
    /// better); `None` when no protocol advisor reports one (or its report timed out).
    pub load: Option<u32>,
    /// The system load: the value a custom (`ADV_`) advisor reports (lower is better).
    pub system: Option<u32>,
}

/// What a GWM says about one member (a server of a port), with the state of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SaspMember {
    /// The raw SASP weight, 0–65535.
    pub weight: u16,
    /// CONTACT_SUCCESS: the GWM located the member and it runs.
    pub contact: bool,
    /// QUIESCE: no new connections for the member.
    pub quiesce: bool,
    /// CONFIDENT: the GWM knows the member's state.
    pub confident: bool,
    /// The group's GWM is in contact now, or was within `grace`: its weights steer.
    pub steering: bool,
}

/// The SASP weights of every member known to a GWM, one entry per server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SaspInput {
    pub members: BTreeMap<ServerId, SaspMember>,
}

impl SaspInput {
    /// Adds what one GWM says about `id`. When several GWMs of a group report the same
    /// member (RFC 4678 §9.5 leaves the combination to the LB), a steering report wins over
    /// one that does not steer, and two steering reports combine: the mean weight, CONTACT
    /// and CONFIDENT when either says so, QUIESCE when either says so.
    pub fn add(&mut self, id: ServerId, member: SaspMember) {
        use std::collections::btree_map::Entry;
        match self.members.entry(id) {
            Entry::Vacant(v) => {
                v.insert(member);
            }
            Entry::Occupied(mut o) => {
                let old = *o.get();
                if member.steering && !old.steering {
                    o.insert(member);
                } else if member.steering == old.steering {
                    o.insert(SaspMember {
                        weight: ((u32::from(old.weight) + u32::from(member.weight)) / 2) as u16,
                        contact: old.contact || member.contact,
                        quiesce: old.quiesce || member.quiesce,
                        confident: old.confident || member.confident,
                        steering: old.steering,
                    });
                }
            }
        }
    }
}

/// Which rule decided a server's effective weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightSource {
    /// The configured weight (`server add|set ... weight`).
    Config,
    /// The manager's computed weight.
    Manager,
    /// A GWM's weight (SASP).
    Sasp,
    /// An advisor marked the server down.
    AdvisorDown,
    /// `server down`.
    OperatorDown,
    /// `manager quiesce`.
    Quiesced,
    /// Every server of the port is down: weightbound/2 for all.
    AllDown,
    /// `fixedweight yes`: the configured weight, which the manager never changes.
    Fixed,
}

impl WeightSource {
    /// The word reports use (`config`, `manager`, `sasp`, `advisor-down`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WeightSource::Config => "config",
            WeightSource::Manager => "manager",
            WeightSource::Sasp => "sasp",
            WeightSource::AdvisorDown => "advisor-down",
            WeightSource::OperatorDown => "operator-down",
            WeightSource::Quiesced => "quiesced",
            WeightSource::AllDown => "all-down",
            WeightSource::Fixed => "fixed",
        }
    }
}

/// The weight the data plane uses for one server, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Effective {
    /// 0..=weightbound; 0 = no new connections.
    pub weight: u32,
    pub source: WeightSource,
    /// A live affinity record may still send its client here: true while the server takes
    /// new connections and when it is quiesced (by the operator or a GWM's QUIESCE); false
    /// when it is down or at weight 0. A server that may not keep its clients is also the
    /// one whose connections `reset yes` ends.
    pub keeps_affinity: bool,
}

impl Effective {
    /// Whether the server takes new connections.
    pub fn accepts_new(&self) -> bool {
        self.weight > 0
    }
}

/// The effective weight of every server of every port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    servers: BTreeMap<ServerId, Effective>,
    /// Ports (cluster, port) whose servers are all down.
    all_down: BTreeSet<(IpAddr, u16)>,
}

/// Converts a raw SASP weight (0–65535) to `[0, weightbound]`: `w * weightbound / 65535`
/// rounded to the nearest integer, and at least 1 for a raw weight above 0 (a member the GWM
/// wants some traffic for gets some; Cisco's LB adds 1 for the same reason).
pub fn sasp_weight(raw: u16, weightbound: u32) -> u32 {
    if raw == 0 {
        return 0;
    }
    let w = (u64::from(raw) * u64::from(weightbound) + 65535 / 2) / 65535;
    (w as u32).max(1)
}

/// Weightbound/2, at least 1: every server's weight when all of a port's are down.
pub fn all_down_weight(weightbound: u32) -> u32 {
    (weightbound / 2).max(1)
}

/// The configuration-only rules (1, 2 and 7): what a server's weight is when nothing else
/// is known.
fn config_rule(server: &Server) -> Effective {
    if server.down {
        Effective {
            weight: 0,
            source: WeightSource::OperatorDown,
            keeps_affinity: false,
        }
    } else if server.quiesced {
        Effective {
            weight: 0,
            source: WeightSource::Quiesced,
            keeps_affinity: true,
        }
    } else {
        Effective {
            weight: server.weight,
            source: if server.fixedweight {
                WeightSource::Fixed
            } else {
                WeightSource::Config
            },
            keeps_affinity: server.weight > 0,
        }
    }
}

impl Overlay {
    /// Applies the precedence (module documentation) to every server of `config`.
    ///
    /// `advisor`: the advisors' view per server (absent = nothing known, up);
    /// `manager`: the manager's pushed weights (used only while `manager start` is in force);
    /// `sasp`: the GWMs' members.
    pub fn compute(
        config: &Config,
        advisor: &BTreeMap<ServerId, AdvisorInput>,
        manager: &BTreeMap<ServerId, u32>,
        sasp: &SaspInput,
    ) -> Overlay {
        let mut overlay = Overlay::default();
        let manager_running = config.health.manager.running;
        for (caddr, cluster) in &config.clusters {
            for (pnum, port) in &cluster.ports {
                let id = |s: IpAddr| ServerId {
                    cluster: *caddr,
                    port: *pnum,
                    server: s,
                };
                let advisor_down = |s: IpAddr| advisor.get(&id(s)).is_some_and(|a| a.down);
                let all_down = !port.servers.is_empty()
                    && port
                        .servers
                        .values()
                        .all(|s| s.down || advisor_down(s.address));
                if all_down {
                    overlay.all_down.insert((*caddr, *pnum));
                }
                // Rule 5 applies to the port when one member a steering GWM reports is
                // CONFIDENT (sasp-notes §2.11: all non-confident = disregard the GWM).
                let sasp_steers = port.servers.keys().any(|s| {
                    sasp.members
                        .get(&id(*s))
                        .is_some_and(|m| m.steering && m.confident)
                });
                for (saddr, server) in &port.servers {
                    let sid = id(*saddr);
                    let eff = if all_down {
                        Effective {
                            weight: all_down_weight(port.weightbound),
                            source: WeightSource::AllDown,
                            keeps_affinity: true,
                        }
                    } else if server.down || server.quiesced {
                        config_rule(server)
                    } else if advisor_down(*saddr) {
                        Effective {
                            weight: 0,
                            source: WeightSource::AdvisorDown,
                            keeps_affinity: false,
                        }
                    } else if let Some(m) =
                        sasp.members.get(&sid).filter(|m| sasp_steers && m.steering)
                    {
                        sasp_rule(m, port)
                    } else if let Some(w) = manager
                        .get(&sid)
                        .filter(|_| manager_running && !server.fixedweight)
                    {
                        let weight = (*w).min(port.weightbound);
                        Effective {
                            weight,
                            source: WeightSource::Manager,
                            keeps_affinity: weight > 0,
                        }
                    } else {
                        config_rule(server)
                    };
                    overlay.servers.insert(sid, eff);
                }
            }
        }
        overlay
    }

    /// The effective weight of `server` of `port` (of cluster `cluster`): the computed one,
    /// or the configuration-only rules when the overlay does not know the server (an empty
    /// overlay, or a server added since it was computed).
    ///
    /// The configuration passed here may be newer than the one the overlay was computed
    /// from: a `server down`, quiesce or weight set since then takes effect at once (the
    /// configuration rules are applied again), and no weight exceeds the port's weightbound.
    pub fn effective(&self, cluster: IpAddr, port: &Port, server: &Server) -> Effective {
        let id = ServerId {
            cluster,
            port: port.number,
            server: server.address,
        };
        let Some(e) = self.servers.get(&id) else {
            return config_rule(server);
        };
        match e.source {
            WeightSource::AllDown => Effective {
                weight: all_down_weight(port.weightbound),
                ..*e
            },
            _ if server.down || server.quiesced => config_rule(server),
            WeightSource::Config
            | WeightSource::Fixed
            | WeightSource::OperatorDown
            | WeightSource::Quiesced => config_rule(server),
            WeightSource::Manager | WeightSource::Sasp | WeightSource::AdvisorDown => {
                // The weightbound is at least 1: a weight above 0 stays above 0.
                Effective {
                    weight: e.weight.min(port.weightbound.max(1)),
                    ..*e
                }
            }
        }
    }

    /// The computed weight of one server, if the overlay knows it.
    pub fn get(&self, id: &ServerId) -> Option<&Effective> {
        self.servers.get(id)
    }

    /// Every server the overlay knows, in order.
    pub fn servers(&self) -> impl Iterator<Item = (&ServerId, &Effective)> {
        self.servers.iter()
    }

    /// Whether every server of the port is down (rule 4: the weights are spread).
    pub fn all_down(&self, cluster: IpAddr, port: u16) -> bool {
        self.all_down.contains(&(cluster, port))
    }

    /// Ports whose servers are all down, in order.
    pub fn all_down_ports(&self) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
        self.all_down.iter().copied()
    }

    /// The ports whose all-down state changed since `before`, in order: `(cluster, port,
    /// true)` when every server just went down (IBM runs `managerAlert`), `false` when one
    /// came back (`managerClear`). A port that is gone from the configuration clears nothing.
    pub fn all_down_changes(&self, before: &Overlay) -> Vec<(IpAddr, u16, bool)> {
        let known: BTreeSet<(IpAddr, u16)> = self
            .servers
            .keys()
            .map(|id| (id.cluster, id.port))
            .collect();
        let mut out: Vec<(IpAddr, u16, bool)> = self
            .all_down
            .difference(&before.all_down)
            .map(|&(c, p)| (c, p, true))
            .chain(
                before
                    .all_down
                    .difference(&self.all_down)
                    .filter(|k| known.contains(k))
                    .map(|&(c, p)| (c, p, false)),
            )
            .collect();
        out.sort();
        out
    }
}

/// Rule 5 for a member of a steering port.
fn sasp_rule(m: &SaspMember, port: &Port) -> Effective {
    let usable = m.contact && !m.quiesce && m.confident;
    let weight = if usable {
        sasp_weight(m.weight, port.weightbound)
    } else {
        0
    };
    Effective {
        weight,
        source: WeightSource::Sasp,
        // QUIESCE is a quiesce (clients with affinity stay); no contact or no confidence
        // means the member is to be avoided.
        keeps_affinity: weight > 0 || (m.quiesce && m.contact && m.confident),
    }
}
