//! Heartbeat reception: replay and copy rules, the partner's view, replies, and the
//! confirmation rule of unauthenticated pairs.

use super::*;

impl Machine {
    /// A decoded, authenticated heartbeat arrived on heartbeat pair `pair`. Replays are
    /// refused here (one guard per pair).
    pub fn handle_heartbeat(&mut self, now: Instant, pair: usize, hb: &Heartbeat) -> Received {
        let now = self.tick(now);
        let r = self.receive(now, pair, hb);
        self.evaluate(now);
        r
    }

    pub(super) fn receive(&mut self, now: Instant, pair: usize, hb: &Heartbeat) -> Received {
        if !self.ha_running() {
            return Received::Ignored;
        }
        let role = self.role();
        if pair >= self.pairs.len() {
            self.drops.count(DropKind::UnknownPair);
            return Received::Dropped(DropKind::UnknownPair);
        }
        if hb.epoch == self.epoch && hb.version == self.version && Some(hb.role) == role {
            self.drops.count(DropKind::Own);
            return Received::Dropped(DropKind::Own);
        }
        if !self.settings.authenticated
            && let Err(kind) = self.confirm_unauthenticated(now, hb)
        {
            self.drops.count(kind);
            return Received::Dropped(kind);
        }
        let authenticated = self.settings.authenticated;
        let p = &mut self.pairs[pair];
        let before = p.guard.last();
        if p.guard.accept(hb.epoch, hb.seq).is_err() {
            if !authenticated && before.is_some_and(|(e, _)| e == hb.epoch) {
                // Unkeyed, a forged heartbeat may have taken this seq first: the genuine one
                // still counts as alive (a copy), never as a replay.
                return Received::Duplicate;
            }
            self.drops.count(DropKind::Replayed);
            return Received::Dropped(DropKind::Replayed);
        }
        if let Some((e, s)) = before
            && e == hb.epoch
        {
            p.lost = p.lost.saturating_add(hb.seq - s - 1);
        }
        p.received += 1;
        p.last_heard = Some(now);
        let address = p.destination;

        // Same partner, older epoch (through a pair that had not seen the new one), or a
        // copy of a heartbeat already taken from another pair.
        if let Some(old) = &mut self.partner {
            if hb.epoch < old.hb.epoch {
                self.drops.count(DropKind::Replayed);
                return Received::Dropped(DropKind::Replayed);
            }
            if hb.epoch == old.hb.epoch && hb.seq <= old.hb.seq {
                if !(self.settings.authenticated && old.left()) {
                    old.last_heard = old.last_heard.max(now);
                }
                return Received::Duplicate;
            }
            if hb.epoch > old.hb.epoch {
                // The partner restarted: it is a new partner (rejoin).
                self.partner = None;
                self.drop_contact();
            }
        }

        let h = self.silence();
        let was_heard = self.heard(now);
        let ack_sent = if hb.ack_epoch == self.epoch {
            self.send_time(hb.ack)
        } else {
            None
        };
        let fresh_ack = ack_sent.is_some_and(|t| now.saturating_duration_since(t) <= h);
        let prev_request = self.partner.as_ref().map(|p| p.hb.request);
        let prev_says = self
            .partner
            .as_ref()
            .map(|p| (p.hb.state, p.hb.sub_state, p.hb.request));
        let was_running = self
            .partner
            .as_ref()
            .is_some_and(|p| p.hb.epoch == hb.epoch && (p.was_running || !p.says_leaving()));
        let heard_since = match &self.partner {
            Some(p) if was_heard => p.heard_since,
            _ => now,
        };
        let mut content = hb.clone();
        content.records = Vec::new();
        self.partner = Some(Partner {
            hb: content,
            last_heard: now,
            heard_since,
            fresh_ack,
            address,
            pair,
            was_running,
        });

        // PH36755: the partner has just entered Standby: re-announce our addresses.
        if self.state() == State::Active
            && hb.request == Request::StandbyEntered
            && prev_request != Some(Request::StandbyEntered)
        {
            self.actions.push_back(Action::Announce);
        }
        // Our own Standby notice is acknowledged once an Active partner has seen it.
        let epoch = self.epoch;
        if let Some(d) = self.standby_mut()
            && let Notice::Sent(seq) = d.notice
            && hb.state == State::Active
            && hb.ack_epoch == epoch
            && hb.ack >= seq
        {
            d.notice = Notice::None;
        }

        // Reply at once when the partner's view of us is stale, when we have never acked this
        // partner run, or when it says something new (so it gets our ack without waiting an
        // interval). A reply answers nothing that a reply would trigger again, so two nodes
        // never ping-pong; the rate limit guards against floods.
        let interval = self.settings.interval();
        let stale_view = hb.ack < self.change_seq
            || ack_sent.is_none_or(|t| now.saturating_duration_since(t) > interval + interval / 2);
        let unacked = self.acked_epoch != Some(hb.epoch);
        let news = prev_says != Some((hb.state, hb.sub_state, hb.request));
        let round_before = self.last_round;
        self.evaluate(now);
        let sent_now = self.last_round != round_before;
        let may_reply = self.last_reply.is_none_or(|t| now >= t + interval / 4);
        if (stale_view || unacked || news) && may_reply && !sent_now && self.ha_running() {
            self.last_reply = Some(now);
            self.send_round(now);
        }
        Received::New
    }

    pub(super) fn facts(&self, now: Instant, hb: &Heartbeat) -> Facts {
        let fresh_ack = hb.ack_epoch == self.epoch
            && self
                .send_time(hb.ack)
                .is_some_and(|t| now.saturating_duration_since(t) <= self.silence());
        Facts {
            epoch: hb.epoch,
            state: hb.state,
            sub_state: hb.sub_state,
            request: hb.request,
            maintenance: hb.maintenance,
            handover: hb.handover,
            reach: hb.reach_count,
            role: hb.role,
            recovery: hb.recovery,
            fresh_ack,
        }
    }

    /// Unauthenticated pairs: whether `hb` may be acted on now. A heartbeat that says what
    /// the partner already says, with a plausible seq, may; one that changes the partner's
    /// view (or jumps far ahead) waits for a second, later one that says the same, so that no
    /// single forged datagram moves the pair, advances a replay guard or hides the genuine
    /// partner.
    pub(super) fn confirm_unauthenticated(
        &mut self,
        now: Instant,
        hb: &Heartbeat,
    ) -> Result<(), DropKind> {
        let Some(p) = &self.partner else {
            return Ok(()); // first contact: nothing to protect yet
        };
        if hb.epoch < p.hb.epoch || (hb.epoch == p.hb.epoch && hb.seq <= p.hb.seq) {
            return Ok(()); // the replay and copy rules below decide
        }
        let facts = self.facts(now, hb);
        let known = self.facts(now, &p.hb);
        let interval = Duration::from_millis(u64::from(p.hb.interval_ms).max(1));
        let elapsed = now.saturating_duration_since(p.last_heard);
        let plausible_jump = (elapsed.as_nanos() / interval.as_nanos()).min(1 << 40) as u64 * 2 + 8;
        let plausible = hb.epoch == p.hb.epoch && hb.seq - p.hb.seq <= plausible_jump;
        if plausible
            && facts
                == (Facts {
                    fresh_ack: facts.fresh_ack,
                    ..known
                })
        {
            // Ack freshness may go from stale to fresh freely (that only restores contact);
            // fresh to stale needs confirmation like any other change.
            if facts.fresh_ack || !known.fresh_ack {
                self.unconfirmed = None;
                return Ok(());
            }
        }
        match self.unconfirmed {
            Some(u)
                if Facts {
                    fresh_ack: false,
                    ..u.facts
                } == Facts {
                    fresh_ack: false,
                    ..facts
                } && hb.seq > u.seq
                    && hb.seq - u.seq <= plausible_jump =>
            {
                self.unconfirmed = None;
                Ok(())
            }
            _ => {
                self.unconfirmed = Some(Unconfirmed { facts, seq: hb.seq });
                Err(DropKind::Unconfirmed)
            }
        }
    }
}
