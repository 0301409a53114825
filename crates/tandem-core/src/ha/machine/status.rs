//! `highavailability status`: what the machine reports, and the warnings an operator should act on.

use super::*;

/// Liveness of one heartbeat pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairLiveness {
    /// A heartbeat arrived within hatimeout.
    Ok,
    /// Nothing has arrived on it yet.
    Trying,
    /// Heartbeats arrived, but none within hatimeout.
    Down,
}

/// How this node sees its partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Contact {
    /// Two-way: heard, and it hears us.
    Ok,
    /// Heard; its acks do not show it hearing us yet.
    Pending,
    /// Heard, but its acks are older than hatimeout: it does not hear us.
    Deaf,
    /// Not heard within hatimeout.
    Silent,
    /// It said it was leaving (executor stopped or HA deleted).
    Left,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropCounters {
    pub truncated: u64,
    pub bad_magic: u64,
    pub unsupported_format: u64,
    pub bad_mac: u64,
    pub missing_mac: u64,
    pub malformed: u64,
    pub replayed: u64,
    pub own: u64,
    pub unknown_pair: u64,
    pub unconfirmed: u64,
}

impl DropCounters {
    pub(super) fn count(&mut self, kind: DropKind) {
        let c = match kind {
            DropKind::Truncated => &mut self.truncated,
            DropKind::BadMagic => &mut self.bad_magic,
            DropKind::UnsupportedFormat => &mut self.unsupported_format,
            DropKind::BadMac => &mut self.bad_mac,
            DropKind::MissingMac => &mut self.missing_mac,
            DropKind::Malformed => &mut self.malformed,
            DropKind::Replayed => &mut self.replayed,
            DropKind::Own => &mut self.own,
            DropKind::UnknownPair => &mut self.unknown_pair,
            DropKind::Unconfirmed => &mut self.unconfirmed,
        };
        *c += 1;
    }
}

/// `highavailability status`, serializable. Ages are in ms before the `now` given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaStatus {
    pub configured: bool,
    pub role: Option<Role>,
    pub recovery: Option<Recovery>,
    pub port: Option<u16>,
    pub state: State,
    pub sub_state: SubState,
    pub maintenance: bool,
    pub version: ProductVersion,
    pub epoch: u64,
    pub hatimeout_ms: u64,
    pub interval_ms: u64,
    pub reach_count: u16,
    pub reach_total: u16,
    pub partner: Option<PartnerStatus>,
    pub heartbeats: Vec<PairStatus>,
    pub reach: Vec<ReachStatus>,
    pub dropped: DropCounters,
    /// A takeover in progress, or how the last one ended.
    pub takeover: Option<String>,
    /// Configuration differences and other things an operator should fix.
    pub warnings: Vec<String>,
    /// How long ago two-way contact with the partner was lost, while it has not come back
    /// (the shell turns it into the "partner lost at HH:MM:SS" warning, with wall-clock time).
    pub partner_lost_ms: Option<u64>,
    /// Last transitions, newest first.
    pub transitions: Vec<TransitionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartnerStatus {
    /// Destination of the pair it was last heard on.
    pub address: Option<IpAddr>,
    pub contact: Contact,
    pub role: Role,
    pub recovery: Recovery,
    pub state: State,
    pub sub_state: SubState,
    pub version: ProductVersion,
    pub compatible: bool,
    pub epoch: u64,
    pub last_heard_ms: u64,
    pub reach_count: u16,
    pub reach_total: u16,
    pub maintenance: bool,
    pub request: Request,
    pub config_matches: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairStatus {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub status: PairLiveness,
    pub last_heard_ms: Option<u64>,
    pub received: u64,
    /// Heartbeats missed on this pair (gaps in seq).
    pub lost: u64,
    pub sent: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachStatus {
    pub address: IpAddr,
    /// `None` until the first probe result.
    pub reachable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionStatus {
    pub age_ms: u64,
    pub from: State,
    pub to: State,
    pub reason: String,
}

impl Machine {
    /// The status report; ages relative to `now`.
    pub fn status(&self, now: Instant) -> HaStatus {
        let h = self.settings.hatimeout();
        let age = |t: Instant| ms(now.saturating_duration_since(t));
        let partner = self.partner.as_ref().map(|p| PartnerStatus {
            address: Some(p.address),
            contact: self.contact_kind(now),
            role: p.hb.role,
            recovery: p.hb.recovery,
            state: p.hb.state,
            sub_state: p.hb.sub_state,
            version: p.hb.version,
            compatible: p.hb.version.compatible(&self.version),
            epoch: p.hb.epoch,
            last_heard_ms: age(p.last_heard),
            reach_count: p.hb.reach_count,
            reach_total: p.hb.reach_total,
            maintenance: p.hb.maintenance,
            request: p.hb.request,
            config_matches: p.hb.config_digest == self.settings.config_digest,
        });
        let heartbeats = self
            .pairs
            .iter()
            .map(|p| PairStatus {
                source: p.source,
                destination: p.destination,
                status: match p.last_heard {
                    None => PairLiveness::Trying,
                    Some(t) if now < t + h => PairLiveness::Ok,
                    Some(_) => PairLiveness::Down,
                },
                last_heard_ms: p.last_heard.map(age),
                received: p.received,
                lost: p.lost,
                sent: p.sent,
            })
            .collect();
        let takeover = match self.attempt() {
            Some(a) => Some(format!(
                "{} in progress: waiting for the partner to yield ({} left)",
                a.kind,
                secs(a.deadline.saturating_duration_since(now))
            )),
            None => self.takeover_note.clone(),
        };
        HaStatus {
            configured: self.configured(),
            role: self.role(),
            recovery: self.settings.backup.map(|b| b.recovery),
            port: self.settings.backup.map(|b| b.port),
            state: self.state(),
            sub_state: self.sub_state(),
            maintenance: self.maintenance,
            version: self.version,
            epoch: self.epoch,
            hatimeout_ms: ms(h),
            interval_ms: ms(self.settings.interval()),
            reach_count: self.reach_count(),
            reach_total: self.reach_total(),
            partner,
            heartbeats,
            reach: self
                .reach
                .iter()
                .map(|r| ReachStatus {
                    address: r.address,
                    reachable: r.reachable,
                })
                .collect(),
            dropped: self.drops.clone(),
            takeover,
            warnings: self.warnings(now),
            partner_lost_ms: self.partner_lost_at.map(age),
            transitions: self
                .history
                .iter()
                .rev()
                .map(|t| TransitionStatus {
                    age_ms: age(t.at),
                    from: t.from,
                    to: t.to,
                    reason: t.reason.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn warnings(&self, now: Instant) -> Vec<String> {
        let mut w = Vec::new();
        if self.configured() && self.pairs.is_empty() {
            w.push("no heartbeat pair configured: the partner can never be heard".into());
        }
        let Some(p) = &self.partner else { return w };
        if !p.hb.version.compatible(&self.version) {
            w.push(format!(
                "partner runs {}, incompatible with {} here: no replication, no failback, no takeover",
                p.hb.version, self.version
            ));
        }
        if Some(p.hb.role) == self.role() {
            w.push(format!(
                "both nodes are configured as {}",
                p.hb.role.keyword()
            ));
        }
        if p.hb.recovery != self.recovery() {
            w.push(format!(
                "recovery strategies differ ({} here, {} on the partner): they must be the same on both nodes",
                self.recovery().keyword(),
                p.hb.recovery.keyword()
            ));
        }
        if p.hb.config_digest != self.settings.config_digest {
            w.push("configurations differ from the partner's".into());
        }
        let h = u32::try_from(self.settings.hatimeout().as_millis()).unwrap_or(u32::MAX);
        if p.hb.hatimeout_ms != h {
            w.push(format!(
                "hatimeout differs ({h} ms here, {} ms on the partner)",
                p.hb.hatimeout_ms
            ));
        }
        if p.hb.reach_total != self.reach_total() {
            w.push(format!(
                "reach target counts differ ({} here, {} on the partner)",
                self.reach_total(),
                p.hb.reach_total
            ));
        }
        if self.contact_kind(now) == Contact::Deaf {
            w.push(
                "the partner does not hear this node (its acks are older than hatimeout)".into(),
            );
        }
        w
    }
}
