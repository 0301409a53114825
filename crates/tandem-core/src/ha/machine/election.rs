//! Who should be Active when the two nodes disagree: a pure rule over what each node says of
//! itself, so that both nodes, given the same facts, reach opposite answers (one wins).
//!
//! In order:
//! 1. A node in maintenance loses.
//! 2. A node that has just started (Listen) loses to one that was already running (Standby or
//!    Active): a node that crashed and restarted within hatimeout holds no records, while its
//!    partner holds the replicated table; making the empty node Active would break every open
//!    connection (under `auto` recovery it gets Active back later, yield-first, with the table
//!    handed over).
//! 3. While neither is starting, more reach targets wins (a starting node's probes may not
//!    have answered yet, so reach does not decide at start-up).
//! 4. Different roles: the primary wins, except when both are Active and the primary's
//!    recovery is `manual` (then the backup, the current holder, keeps Active).
//! 5. Same role (misconfigured): the older epoch (the longer-running node) wins.
//! 6. Same role and epoch: the lower heartbeat source address wins.

use super::*;

/// What the election compares of one node (from its own settings, or from its heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub maintenance: bool,
    pub state: State,
    pub reach: u16,
    pub role: Role,
    pub recovery: Recovery,
    pub epoch: u64,
    /// The node's heartbeat source address on the first pair (the last tie-break).
    pub address: Option<IpAddr>,
}

/// Whether `me` should be Active rather than `other`, and why. `both_active`: the two are
/// Active at once (a healed partition), as opposed to neither being Active.
pub fn prefer(me: &Candidate, other: &Candidate, both_active: bool) -> (bool, String) {
    if me.maintenance != other.maintenance {
        let why = if me.maintenance {
            "this node is in maintenance"
        } else {
            "partner is in maintenance"
        };
        return (!me.maintenance, why.into());
    }
    let starting = |c: &Candidate| c.state == State::Listen;
    if starting(me) != starting(other) {
        let why = if starting(me) {
            "this node has just started; the partner holds the replicated table"
        } else {
            "partner has just started; this node holds the replicated table"
        };
        return (!starting(me), why.into());
    }
    if me.reach != other.reach && !starting(me) {
        return (
            me.reach > other.reach,
            format!(
                "reach targets {} here, {} on partner",
                me.reach, other.reach
            ),
        );
    }
    if me.role != other.role {
        let primary = if me.role == Role::Primary { me } else { other };
        let primary_wins = !both_active || primary.recovery == Recovery::Auto;
        let win = (me.role == Role::Primary) == primary_wins;
        let why = match (both_active, primary_wins) {
            (false, _) => "the primary goes Active",
            (true, true) => "recovery auto: the primary keeps Active",
            (true, false) => "recovery manual: the backup keeps Active",
        };
        return (win, why.into());
    }
    if me.epoch != other.epoch {
        return (
            me.epoch < other.epoch,
            "same role on both nodes: the longer-running one wins".into(),
        );
    }
    let win = match (me.address, other.address) {
        (Some(a), Some(b)) => a <= b,
        (a, b) => a.is_some() || b.is_none(),
    };
    (win, "same role and epoch: the lower address wins".into())
}

impl Machine {
    /// This node as the election sees it.
    pub(super) fn candidate(&self) -> Candidate {
        Candidate {
            maintenance: self.maintenance,
            state: self.state(),
            reach: self.reach_count(),
            role: self.role().unwrap_or(Role::Primary),
            recovery: self.recovery(),
            epoch: self.epoch,
            address: self.pairs.first().map(|p| p.source),
        }
    }

    /// The partner as the election sees it (from its heartbeat).
    pub(super) fn partner_candidate(&self, p: &Heartbeat) -> Candidate {
        Candidate {
            maintenance: p.maintenance,
            state: p.state,
            reach: p.reach_count,
            role: p.role,
            recovery: p.recovery,
            epoch: p.epoch,
            address: self.pairs.first().map(|p| p.destination),
        }
    }

    /// [`prefer`] between this node and the partner that sent `p`.
    pub(super) fn prefer_self(&self, p: &Heartbeat, both_active: bool) -> (bool, String) {
        prefer(&self.candidate(), &self.partner_candidate(p), both_active)
    }

    /// Neither is Active: should this node go Active now?
    pub(super) fn wins_vacancy(&self, p: &Heartbeat) -> Option<String> {
        let mine = self.attempt().is_some();
        let theirs = p.request == Request::TakeoverRequest;
        if mine && !theirs {
            return Some("takeover: partner is not Active".into());
        }
        if theirs && !mine {
            return None;
        }
        let (win, why) = self.prefer_self(p, false);
        win.then(|| format!("partner is {}; {why}", p.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_candidates() -> Vec<Candidate> {
        let mut v = Vec::new();
        for maintenance in [false, true] {
            for state in [State::Listen, State::Standby, State::Active] {
                for reach in [0, 1] {
                    for role in [Role::Primary, Role::Backup] {
                        for recovery in [Recovery::Auto, Recovery::Manual] {
                            for epoch in [1, 2] {
                                for address in ["192.0.2.2", "192.0.2.3"] {
                                    v.push(Candidate {
                                        maintenance,
                                        state,
                                        reach,
                                        role,
                                        recovery,
                                        epoch,
                                        address: Some(address.parse().unwrap()),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        v
    }

    /// Two distinct nodes (different epoch or address, as two real nodes always are) never
    /// both win and never both lose, whatever else they say.
    #[test]
    fn the_election_is_symmetric_over_the_whole_truth_table() {
        let all = all_candidates();
        let mut pairs = 0;
        for a in &all {
            for b in &all {
                if a.epoch == b.epoch && a.address == b.address {
                    continue;
                }
                // Both Active only makes sense for two Active nodes; vacancy for two others.
                for both_active in [false, true] {
                    let (wa, why_a) = prefer(a, b, both_active);
                    let (wb, why_b) = prefer(b, a, both_active);
                    assert_ne!(
                        wa, wb,
                        "{a:?} vs {b:?} (both active {both_active}): {why_a} / {why_b}"
                    );
                    pairs += 1;
                }
            }
        }
        assert!(pairs > 10_000, "{pairs}");
    }

    fn node(state: State, role: Role, recovery: Recovery, epoch: u64) -> Candidate {
        Candidate {
            maintenance: false,
            state,
            reach: 1,
            role,
            recovery,
            epoch,
            address: Some(
                if role == Role::Primary {
                    "192.0.2.2"
                } else {
                    "192.0.2.3"
                }
                .parse()
                .unwrap(),
            ),
        }
    }

    /// The rows an operator relies on, one by one.
    #[test]
    fn the_rules_in_order() {
        use Recovery::*;
        use Role::*;
        let p = |s, r| node(s, Primary, r, 10);
        let b = |s, r| node(s, Backup, r, 20);
        // Start-up (both Listen): the primary goes Active, whatever the recovery.
        assert!(prefer(&p(State::Listen, Manual), &b(State::Listen, Manual), false).0);
        // The primary crashed and restarted within hatimeout (Listen) while the backup is a
        // Standby holding the table: the backup wins, under auto and under manual.
        for r in [Auto, Manual] {
            let (win, why) = prefer(&b(State::Standby, r), &p(State::Listen, r), false);
            assert!(win, "{why}");
            assert!(why.contains("replicated table"), "{why}");
        }
        // Healed partition, both Active: auto → primary, manual → backup.
        assert!(prefer(&p(State::Active, Auto), &b(State::Active, Auto), true).0);
        assert!(prefer(&b(State::Active, Manual), &p(State::Active, Manual), true).0);
        // Maintenance loses before everything else.
        let mut m = p(State::Active, Auto);
        m.maintenance = true;
        assert!(!prefer(&m, &b(State::Listen, Auto), true).0);
        // More reach wins between running nodes, not while one is starting.
        let mut more = b(State::Standby, Auto);
        more.reach = 2;
        assert!(prefer(&more, &p(State::Standby, Auto), false).0);
        let mut starting = b(State::Listen, Auto);
        starting.reach = 2;
        let mut other = p(State::Listen, Auto);
        other.reach = 0;
        assert!(
            !prefer(&starting, &other, false).0,
            "roles decide at start-up"
        );
        // Same roles: the older epoch, then the lower address.
        let old = node(State::Standby, Primary, Auto, 1);
        let young = node(State::Standby, Primary, Auto, 2);
        assert!(prefer(&old, &young, false).0);
    }
}
