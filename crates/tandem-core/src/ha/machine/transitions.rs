//! Decisions and transitions: the evaluation loop, contact, takeover attempts, hand-over,
//! the decision table per state, reach hold and failback, and the heartbeats that announce
//! what changed.

use super::*;

impl Machine {
    pub(super) fn enter_listen(&mut self, now: Instant, reason: String) {
        self.reset_run();
        self.transition(now, State::Listen, reason);
        self.next_send = Some(now);
    }

    pub(super) fn transition(&mut self, now: Instant, to: State, reason: String) {
        let from = self.state();
        if from == to {
            return;
        }
        let attempt = self.attempt();
        self.phase = match to {
            State::Idle => Phase::Idle,
            State::Down => Phase::Down,
            State::Listen => Phase::Listen {
                deadline: now + self.settings.hatimeout(),
            },
            State::Standby => Phase::Standby(StandbyData {
                notice: Notice::Pending,
                ..StandbyData::default()
            }),
            State::Active => Phase::Active(ActiveData::default()),
        };
        if to == State::Active
            && let Some(a) = attempt
        {
            self.takeover_note = Some(format!("{} completed", a.kind));
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Transition {
            at: now,
            from,
            to,
            reason,
        });
        let (action, script) = match to {
            State::Active => (Action::GoActive, Some(GO_ACTIVE)),
            State::Standby => (Action::GoStandby, Some(GO_STANDBY)),
            State::Idle => (Action::GoIdle, Some(GO_IDLE)),
            State::Down => (Action::GoDown, Some(GO_IN_OP)),
            State::Listen => (Action::GoListen, (from == State::Down).then_some(GO_IN_OP)),
        };
        self.actions.push_back(action);
        if let Some(name) = script {
            self.actions
                .push_back(Action::RunScript { name, arg: None });
            self.actions.push_back(Action::RunScript {
                name: HIGHAVAIL_CHANGE,
                arg: Some(name),
            });
        }
    }

    pub(super) fn start_attempt(&mut self, now: Instant, kind: AttemptKind) {
        let deadline = now + self.settings.takeover_timeout();
        if let Some(d) = self.standby_mut() {
            d.attempt = Some(Attempt { kind, deadline });
            self.takeover_note = None;
        }
    }

    pub(super) fn abandon_attempt(&mut self, now: Instant, why: String) {
        if let Some(a) = self.standby_mut().and_then(|d| d.attempt.take()) {
            self.takeover_note = Some(format!("{} abandoned: {why}", a.kind));
            if a.kind == AttemptKind::Failback {
                self.failback_not_before = Some(now + self.settings.failback_hold());
            }
        }
    }

    pub(super) fn signature(&self) -> Signature {
        Signature {
            state: self.state(),
            sub_state: self.sub_state(),
            request: self.outgoing_request(),
            reach: (self.reach_count(), self.reach_total()),
            maintenance: self.maintenance,
            handover: self.handing_over(),
        }
    }

    pub(super) fn outgoing_request(&self) -> Request {
        if !self.ha_running() {
            Request::Leaving
        } else if self.handing_over() {
            Request::None
        } else if self.yielded().is_some() {
            Request::YieldAck
        } else if self.attempt().is_some() {
            Request::TakeoverRequest
        } else if self.standby().is_some_and(|d| d.notice != Notice::None) {
            Request::StandbyEntered
        } else {
            Request::None
        }
    }

    /// One heartbeat on every pair.
    pub(super) fn send_round(&mut self, now: Instant) {
        let Some(backup) = self.settings.backup else {
            return;
        };
        self.seq += 1;
        let seq = self.seq;
        let sig = self.signature();
        if self.sent_signature != Some(sig) {
            self.sent_signature = Some(sig);
            self.change_seq = seq;
        }
        let request = sig.request;
        if request == Request::StandbyEntered
            && let Some(d) = self.standby_mut()
            && d.notice == Notice::Pending
        {
            d.notice = Notice::Sent(seq);
        }
        let h = self.silence();
        let interval = self.settings.interval();
        while self
            .sent
            .front()
            .is_some_and(|&(_, t)| now.saturating_duration_since(t) > h * 2 + interval)
        {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
        self.first_send.get_or_insert(now);
        self.last_round = Some(now);
        self.next_send = self.ha_running().then(|| now + interval);
        let (ack_epoch, ack) = self
            .partner
            .as_ref()
            .map_or((0, 0), |p| (p.hb.epoch, p.hb.seq));
        self.acked_epoch = self.partner.as_ref().map(|p| p.hb.epoch);
        let heartbeat = Heartbeat {
            version: self.version,
            epoch: self.epoch,
            seq,
            ack_epoch,
            ack,
            role: backup.role,
            state: self.state(),
            sub_state: sig.sub_state,
            recovery: backup.recovery,
            reach_count: sig.reach.0,
            reach_total: sig.reach.1,
            config_digest: self.settings.config_digest,
            request,
            maintenance: self.maintenance,
            handover: sig.handover,
            hatimeout_ms: u32::try_from(self.settings.hatimeout().as_millis()).unwrap_or(u32::MAX),
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            records: Vec::new(),
        };
        for (i, p) in self.pairs.iter_mut().enumerate() {
            p.sent += 1;
            self.actions.push_back(Action::SendHeartbeat {
                pair: i,
                source: p.source,
                destination: p.destination,
                port: backup.port,
                heartbeat: heartbeat.clone(),
            });
        }
    }

    /// Re-decides everything from the current facts, then sends a heartbeat if what we say
    /// changed.
    pub(super) fn evaluate(&mut self, now: Instant) {
        if !self.ha_running() {
            return;
        }
        for _ in 0..4 {
            self.update_contact(now);
            self.update_handover(now);
            self.update_attempt(now);
            self.track_reach(now);
            if !self.decide(now) {
                break;
            }
        }
        self.update_contact(now);
        self.maybe_failback(now);
        if self.sent_signature != Some(self.signature()) || self.next_send.is_some_and(|t| now >= t)
        {
            self.send_round(now);
        }
        self.last_eval = Some(now);
    }

    pub(super) fn update_contact(&mut self, now: Instant) {
        let heard = self.heard(now);
        let contact = heard && self.partner.as_ref().is_some_and(|p| p.fresh_ack);
        if contact && !self.contact {
            self.contact = true;
            self.contact_since = Some(now);
            self.partner_lost_at = None;
            let compatible = self.compatible();
            self.actions.push_back(Action::PartnerFound { compatible });
        } else if !contact && self.contact {
            self.drop_contact();
        }
        if let Some(y) = self.yielded() {
            // Cleared when the partner took Active, and when it no longer asks for it (it gave
            // up, or yielded to us in turn): then the tie-break decides.
            let p = self.partner.as_ref();
            let partner_active = p.is_some_and(|p| p.hb.state == State::Active);
            let asking = p.is_some_and(|p| p.hb.request == Request::TakeoverRequest);
            if (now >= y || !heard || partner_active || !asking)
                && let Some(d) = self.standby_mut()
            {
                d.yielded_until = None;
            }
        }
        if self.contact && self.compatible() {
            let p = self.partner.as_ref().expect("contact implies a partner");
            if self.state() == State::Active && p.hb.sub_state == SubState::Synchronized {
                self.synced = true;
            }
            if self.state() == State::Active && !self.synced && !self.sync_requested {
                self.sync_requested = true;
                self.actions.push_back(Action::RequestFullSync);
            }
        }
    }

    pub(super) fn update_handover(&mut self, now: Instant) {
        if let Some(d) = self.standby_mut()
            && d.handover_until.is_some_and(|t| now >= t)
        {
            d.handover_until = None;
        }
    }

    pub(super) fn update_attempt(&mut self, now: Instant) {
        let Some(a) = self.attempt() else { return };
        if !self.contact {
            self.abandon_attempt(now, "lost contact with the partner".into());
        } else if now >= a.deadline {
            let why = format!(
                "the partner did not yield within {}",
                secs(self.settings.takeover_timeout())
            );
            self.abandon_attempt(now, why);
        }
    }

    pub(super) fn loss_reason(&self) -> String {
        match &self.partner {
            Some(p) if self.left(p) => match p.hb.state {
                State::Idle => "partner left high availability".into(),
                _ => "partner left (executor stopped)".into(),
            },
            Some(_) => format!(
                "heartbeat timeout (hatimeout {} exceeded)",
                secs(self.settings.hatimeout())
            ),
            None => {
                format!(
                    "no partner heard within hatimeout ({})",
                    secs(self.settings.hatimeout())
                )
            }
        }
    }

    /// One decision step; true if the state changed.
    pub(super) fn decide(&mut self, now: Instant) -> bool {
        let heard = self.heard(now);
        let deaf = self.deaf(now);
        let contact = self.contact;
        let p = self
            .partner
            .as_ref()
            .filter(|_| heard)
            .map(|p| p.hb.clone());
        let before = self.state();
        match (self.state(), p) {
            (State::Listen, None)
                if self.listen_deadline().is_some_and(|d| now >= d)
                    || self.partner.as_ref().is_some_and(|p| self.left(p)) =>
            {
                let reason = self.loss_reason();
                self.transition(now, State::Active, reason);
            }
            (State::Listen, Some(p)) => {
                if p.state == State::Active {
                    self.transition(now, State::Standby, "partner is Active".into());
                } else if contact
                    && !deaf
                    && let Some(why) = self.wins_vacancy(&p)
                {
                    self.transition(now, State::Active, why);
                }
            }
            (State::Standby, None) => {
                let reason = self.loss_reason();
                self.transition(now, State::Active, reason);
            }
            (State::Standby, Some(p)) if p.state != State::Active && contact && !deaf => {
                if p.handover {
                    // The partner has yielded and is handing its records over: wait for it
                    // (bounded by its own deadline, and by silence).
                } else if let Some(a) = self.attempt().filter(|_| p.state == State::Standby) {
                    if p.request == Request::TakeoverRequest && !self.prefer_self(&p, false).0 {
                        // Both asked at once: the tie-break decides, the loser gives up.
                        self.abandon_attempt(
                            now,
                            "the partner asked for Active too and is preferred".into(),
                        );
                    } else {
                        let why = format!("{}: partner yielded", a.kind);
                        self.transition(now, State::Active, why);
                    }
                } else if self.yielded().is_none()
                    && let Some(why) = self.wins_vacancy(&p)
                {
                    self.transition(now, State::Active, why);
                }
            }
            (State::Active, Some(p)) => {
                let sync = self.sub_state() == SubState::Synchronized;
                let mine = self.reach_count();
                if p.state == State::Active {
                    if deaf {
                        self.transition(
                            now,
                            State::Standby,
                            "partner is Active and does not hear this node".into(),
                        );
                    } else if contact {
                        let (win, why) = self.prefer_self(&p, true);
                        if !win {
                            self.transition(now, State::Standby, format!("both Active: {why}"));
                        }
                    }
                } else if contact
                    && sync
                    && p.state == State::Standby
                    && self.config_behind.is_none()
                {
                    let partner_maint_only = p.maintenance && !self.maintenance;
                    let why = if p.request == Request::TakeoverRequest
                        && mine <= p.reach_count
                        && !partner_maint_only
                    {
                        Some("partner requested takeover".to_string())
                    } else if self
                        .reach_behind_since()
                        .is_some_and(|t| now >= t + self.settings.reach_hold())
                    {
                        Some(format!(
                            "partner reaches more targets ({} > {mine})",
                            p.reach_count
                        ))
                    } else if self.maintenance && !p.maintenance {
                        Some("maintenance: handing Active over to the partner".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.transition(now, State::Standby, why);
                        let timeout = self.settings.takeover_timeout();
                        let replication = self.settings.replication;
                        if let Some(d) = self.standby_mut() {
                            d.yielded_until = Some(now + timeout);
                            if replication {
                                // The seed's rule: a node leaving Active sends the partner every
                                // record first; the partner waits for it (FLAG_HANDOVER).
                                d.handover_until = Some(now + timeout / 2);
                            }
                        }
                        if replication {
                            self.actions.push_back(Action::HandOver);
                        }
                    }
                }
            }
            _ => {}
        }
        self.state() != before
    }

    /// Starts or clears the reach hold: Active, Synchronized, the Standby partner reaches
    /// strictly more (and is not the only one in maintenance).
    pub(super) fn track_reach(&mut self, now: Instant) {
        let mine = self.reach_count();
        let behind = self.state() == State::Active
            && self.heard(now)
            && self.sub_state() == SubState::Synchronized
            && self.partner.as_ref().is_some_and(|p| {
                p.hb.state == State::Standby
                    && p.hb.reach_count > mine
                    && (self.maintenance || !p.hb.maintenance)
            });
        if let Some(d) = self.active_mut() {
            if !behind {
                d.reach_behind_since = None;
            } else if d.reach_behind_since.is_none() {
                d.reach_behind_since = Some(now);
            }
        }
    }

    pub(super) fn maybe_failback(&mut self, now: Instant) {
        if self.state() != State::Standby
            || self.role() != Some(Role::Primary)
            || self.recovery() != Recovery::Auto
            || self.maintenance
            || self.config_behind.is_some()
            || self.attempt().is_some()
            || self.yielded().is_some()
            || self.sub_state() != SubState::Synchronized
            || self.failback_not_before.is_some_and(|t| now < t)
            || self
                .contact_since
                .is_none_or(|t| now < t + self.settings.failback_hold())
        {
            return;
        }
        let Some(p) = &self.partner else { return };
        if p.hb.state == State::Active
            && p.hb.role == Role::Backup
            && self.reach_count() >= p.hb.reach_count
        {
            self.start_attempt(now, AttemptKind::Failback);
        }
    }
}
