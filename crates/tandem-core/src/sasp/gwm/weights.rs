//! Weights: computed per group from the members' health, load and overrides, and sent
//! (pushes, NOCHANGE bookkeeping).

use std::time::Instant;

use super::*;

impl Gwm {
    /// The weights of `groups` of `uid` for `conn`; updates what it was last sent. With
    /// `changed_only`, members whose weight and flags were last sent as they are now are left
    /// out (their group stays, possibly empty).
    pub(super) fn weights_for(
        &mut self,
        conn: ConnId,
        uid: &str,
        groups: &[String],
        changed_only: bool,
    ) -> Vec<GroupWeights> {
        let mut out = Vec::new();
        for name in groups {
            let entries = self.group_entries(uid, name);
            let Some(session) = self.sessions.get_mut(&conn) else {
                break;
            };
            let mut sent = Vec::new();
            for e in entries {
                let key = (name.clone(), e.member);
                let now = (e.weight, e.flags);
                let before = session.last_sent.insert(key, now);
                if !changed_only || before != Some(now) {
                    sent.push(e);
                }
            }
            out.push(GroupWeights {
                lb_uid: uid.to_owned(),
                group: name.clone(),
                entries: sent,
            });
        }
        out
    }

    /// The current weight entries of one group.
    pub(super) fn group_entries(&self, uid: &str, group: &str) -> Vec<WeightEntry> {
        let Some(g) = self.lbs.get(uid).and_then(|lb| lb.groups.get(group)) else {
            return Vec::new();
        };
        let min_load = g
            .members
            .keys()
            .filter_map(|k| self.health.get(k))
            .filter(|h| h.contact)
            .filter_map(|h| h.load)
            .fold(None, |acc: Option<f64>, l| {
                Some(acc.map_or(l, |a| a.min(l)))
            });
        g.members
            .iter()
            .map(|(key, m)| {
                let health = self.health.get(key);
                let ov = self.overrides.get(&(key.address, key.port));
                let contact = health.is_some_and(|h| h.contact);
                let confident =
                    health.is_some_and(|h| h.confident) || ov.is_some_and(|o| o.weight.is_some());
                let quiesce = m.quiesce || ov.is_some_and(|o| o.quiesce);
                let mut flags = 0;
                if contact {
                    flags |= WE_CONTACT;
                }
                if quiesce {
                    flags |= WE_QUIESCE;
                }
                if m.by_lb {
                    flags |= WE_REGISTRATION;
                }
                if confident {
                    flags |= WE_CONFIDENT;
                }
                let weight = if quiesce || !contact || !confident {
                    0
                } else if let Some(w) = ov.and_then(|o| o.weight) {
                    w
                } else {
                    load_weight(health.and_then(|h| h.load), min_load)
                };
                WeightEntry {
                    member: *key,
                    label: m.label.clone(),
                    state: m.state,
                    flags,
                    weight,
                }
            })
            .collect()
    }

    /// Sends what PUSH connections are due: when something changed (at once, but not sooner
    /// than `push_gap` after the previous push, so that a burst of probe results makes one
    /// message and costs one comparison), else when their push interval is up.
    pub(super) fn flush(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        let conns: Vec<(ConnId, String)> = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .filter_map(|s| Some((s.id, s.lb_uid.clone()?)))
            .collect();
        for (conn, uid) in conns {
            let Some(lb) = self.lbs.get(&uid) else {
                continue;
            };
            if lb.flags & LB_PUSH == 0 || lb.conn != Some(conn) {
                continue;
            }
            let nochange = lb.flags & LB_NOCHANGE != 0;
            let session = &self.sessions[&conn];
            let periodic = session.next_push.is_some_and(|t| now >= t);
            let recheck = session.recheck_at.is_some_and(|t| now >= t);
            if !periodic && !dirty && !recheck {
                continue;
            }
            if !periodic {
                let gap_end = session.last_push.map(|t| t + self.settings.push_gap);
                if let Some(gap_end) = gap_end.filter(|&t| now < t) {
                    // Too soon after the last push: look again when the gap is over.
                    if let Some(session) = self.sessions.get_mut(&conn) {
                        session.recheck_at = Some(gap_end);
                    }
                    continue;
                }
                let names: Vec<&String> = lb.groups.keys().collect();
                let changed = names.iter().any(|name| {
                    self.group_entries(&uid, name).iter().any(|e| {
                        session.last_sent.get(&((*name).clone(), e.member))
                            != Some(&(e.weight, e.flags))
                    })
                });
                if let Some(session) = self.sessions.get_mut(&conn) {
                    session.recheck_at = None;
                }
                if !changed {
                    continue;
                }
            }
            let names: Vec<String> = self.lbs[&uid].groups.keys().cloned().collect();
            let weights = self.weights_for(conn, &uid, &names, nochange);
            let push_interval = self.settings.push_interval;
            if let Some(session) = self.sessions.get_mut(&conn) {
                session.next_push = Some(now + push_interval);
                session.recheck_at = None;
                session.last_push = Some(now);
                session.pushes += 1;
            }
            self.queue(conn, wire::encode_send_weights(&weights));
        }
    }

    /// Forgets the health of members no longer registered by any LB.
    pub(super) fn prune_health(&mut self) {
        let targets = self.probe_targets();
        self.health.retain(|k, _| targets.contains(k));
    }
}

/// A weight from a load: 65535 for the least loaded member of the group, `65535 × (1 + min)
/// / (1 + load)` for the others; 65535 when there is no load signal.
pub fn load_weight(load: Option<f64>, min_load: Option<f64>) -> u16 {
    match (load, min_load) {
        (Some(load), Some(min)) => {
            let load = load.max(0.0);
            let min = min.max(0.0).min(load);
            let w = 65535.0 * (1.0 + min) / (1.0 + load);
            w.round().clamp(1.0, 65535.0) as u16
        }
        _ => 65535,
    }
}
