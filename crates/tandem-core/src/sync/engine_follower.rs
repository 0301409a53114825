//! The follower side of the sync engine: heads, chunks, pulls and retransmission, drift.

use super::*;

impl SyncEngine {
    pub(super) fn on_head(
        &mut self,
        now: Instant,
        off: bool,
        known: Known,
        resume: Resume,
        echo: (u64, u64),
    ) {
        if off {
            self.partner_off_until = Some(now + self.cfg.head_every * 3);
            self.want_status = false;
            self.transfer = self.transfer.take().filter(|t| t.what == What::Text);
            return;
        }
        if self.role != Role::Follower || !self.enabled {
            self.counters.dropped += 1;
            return;
        }
        self.partner_off_until = None;
        self.head = Some(known);
        if resume == Resume::None {
            // An announcement: ask where to go from here, unless busy or already there.
            if !self.in_sync()
                && !self.want_status
                && self.transfer.is_none()
                && self.applying.is_none()
            {
                self.want_status = true;
                self.send_request(now, true);
            }
            return;
        }
        if !self.want_status || echo != (self.log.head(), self.digest) {
            return; // an answer to a status already answered, or to an older one
        }
        self.want_status = false;
        self.want_full = false;
        self.progress(now);
        if matches!(resume, Resume::Full | Resume::Diverged) && known.digest == self.digest {
            // The same shared configuration already (both loaded the same file): adopt the
            // source's position, nothing to transfer; a status confirms it.
            self.log.reset(known.lineage, known.head, known.digest);
            self.common = Some((known.lineage, known.head));
            self.want_status = true;
            self.send_request(now, true);
            return;
        }
        match resume {
            Resume::InSync | Resume::None => {
                if self.in_sync() {
                    self.common = Some((known.lineage, known.head));
                }
                if self.in_sync() && self.stopped.take().is_some() {
                    self.events.push_back(SyncEvent::Note(format!(
                        "configuration sync recovered: in sync at change {}",
                        self.log.head()
                    )));
                }
            }
            Resume::Entries => {
                self.transfer = Some(Transfer::new(
                    What::Entry,
                    known.lineage,
                    self.log.head() + 1,
                ));
            }
            Resume::Full | Resume::Diverged => {
                let mut t = Transfer::new(What::Full, known.lineage, known.head);
                if resume == Resume::Diverged
                    || (known.lineage != self.log.lineage() && !self.log.is_empty())
                {
                    t.discard = Some(self.discard_text(known));
                }
                self.transfer = Some(t);
            }
        }
        self.send_request(now, true);
    }

    pub(super) fn discard_text(&self, known: Known) -> String {
        let mut s = format!(
            "# Configuration sync: this node's shared configuration before a full sync from the\n\
             # partner replaced it (lineage {:016x} change {}; the partner is at lineage {:016x}\n\
             # change {}). Changes this node held that the partner did not:\n",
            self.log.lineage(),
            self.log.head(),
            known.lineage,
            known.head
        );
        let from = match self.common {
            Some((l, seq)) if l == self.log.lineage() => seq,
            _ => self.log.base_seq(),
        };
        for e in self.log.after(from) {
            let lines = e.lines();
            if e.replace {
                s.push_str(&format!(
                    "#   change {}: a replacing load of {} lines\n",
                    e.seq,
                    lines.len()
                ));
            } else {
                for l in lines {
                    s.push_str(&format!("#   change {}: {l}\n", e.seq));
                }
            }
        }
        s.push_str("# The whole shared configuration it had (loadable with file appendload):\n");
        s.push_str(&self.text);
        s
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_chunk(
        &mut self,
        now: Instant,
        id: (What, u64, u64),
        digest_after: u64,
        replace: bool,
        total: u32,
        offset: u32,
        data: Vec<u8>,
    ) {
        let Some(t) = self
            .transfer
            .as_mut()
            .filter(|t| (t.what, t.lineage, t.seq) == id)
        else {
            self.counters.dropped += 1; // a late duplicate, or not asked for
            return;
        };
        if total > MAX_OBJECT || t.total.is_some_and(|n| n != total) {
            self.counters.dropped += 1;
            return;
        }
        self.counters.chunks_received += 1;
        t.total = Some(total);
        t.digest_after = digest_after;
        t.replace = replace;
        if offset >= t.done() && !data.is_empty() && t.parts.len() < 1024 {
            t.parts.insert(offset, data);
        }
        while let Some(part) = t.parts.remove(&t.done()) {
            t.buf.extend_from_slice(&part);
        }
        let done = t.done();
        t.parts.retain(|&o, _| o > done);
        let window_done = done >= t.asked_to.min(total);
        if t.what != What::Text {
            self.progress(now);
        }
        if self.transfer.as_ref().is_some_and(Transfer::complete) {
            let t = self.transfer.take().expect("complete transfer");
            self.finish(now, t);
        } else if window_done {
            self.send_request(now, true);
        }
    }

    pub(super) fn finish(&mut self, now: Instant, t: Transfer) {
        if t.what == What::Text {
            let partner = String::from_utf8_lossy(&t.buf);
            let diff = crate::sync::shared::first_difference(&self.text, &partner);
            if let Some(key) = self.difference.as_ref().map(|d| d.0) {
                self.difference = Some((key, diff));
            }
            return;
        }
        let apply = Apply {
            lineage: t.lineage,
            seq: t.seq,
            full: t.what == What::Full,
            replace: t.replace || t.what == What::Full,
            payload: Arc::new(t.buf),
            digest_after: t.digest_after,
        };
        if crate::sync::shared::digest_of(&String::from_utf8_lossy(&apply.payload))
            != apply.digest_after
            && apply.full
        {
            self.apply_failed_early(now, apply.seq);
            return;
        }
        self.sent_at = None;
        self.applying = Some((apply.clone(), t.discard));
        self.events.push_back(SyncEvent::Apply(apply));
    }

    pub(super) fn apply_failed_early(&mut self, now: Instant, seq: u64) {
        self.counters.apply_failed += 1;
        self.last_error = Some(format!(
            "full configuration at change {seq}: digest mismatch"
        ));
        self.want_status = true;
        self.send_request(now, true);
    }

    /// After an entry: the next one, or a status that confirms the position to the source.
    pub(super) fn next_pull(&mut self, now: Instant) {
        if self.role != Role::Follower {
            return;
        }
        match self.head {
            Some(k) if k.lineage == self.log.lineage() && k.head > self.log.head() => {
                self.transfer = Some(Transfer::new(What::Entry, k.lineage, self.log.head() + 1));
            }
            _ => {
                if self.in_sync() && self.stopped.take().is_some() {
                    self.events.push_back(SyncEvent::Note(format!(
                        "configuration sync recovered: in sync at change {}",
                        self.log.head()
                    )));
                }
                self.want_status = true;
            }
        }
        self.send_request(now, true);
    }

    pub(super) fn progress(&mut self, now: Instant) {
        self.last_progress = Some(now);
        self.rto = self.cfg.rto_min;
    }

    /// The request the follower (or a node reading its partner's text) has outstanding.
    pub(super) fn request(&self) -> Option<Message> {
        if let Some(t) = &self.transfer {
            let done = t.done();
            let count = self.cfg.window;
            return Some(Message::Get {
                what: t.what,
                lineage: t.lineage,
                seq: t.seq,
                offset: done,
                count,
            });
        }
        if self.applying.is_some() || !self.enabled || self.role != Role::Follower {
            return None;
        }
        self.want_status.then(|| Message::Status {
            off: false,
            full: false,
            lineage: self.log.lineage(),
            applied: self.log.head(),
            digest: self.digest,
        })
    }

    /// Sends the outstanding request now (`fresh`: its state changed) or when its timer is due.
    pub(super) fn send_request(&mut self, now: Instant, fresh: bool) {
        if self.retry_after.is_some_and(|t| now < t) {
            return;
        }
        self.retry_after = None;
        let Some(mut msg) = self.request() else {
            self.sent_at = None;
            return;
        };
        let due = self.sent_at.is_none_or(|t| now >= t + self.rto);
        if !fresh && !due {
            return;
        }
        if !fresh && self.sent_at.is_some() {
            self.counters.retransmits += 1;
            self.rto = (self.rto * 2).min(self.cfg.rto_max);
        }
        let size = self.chunk_size() as u32;
        if let Some(t) = self.transfer.as_mut() {
            t.asked_to = t.done().saturating_add(size * u32::from(self.cfg.window));
        }
        if let Message::Status { full, .. } = &mut msg {
            *full = self.want_full;
        }
        let bytes = msg.encode();
        self.sent_at = Some(now);
        self.out.push_back(bytes);
    }

    /// Drift with sync off (here or on the partner): read the partner's shared text when the
    /// digests differ, and find the first differing statement.
    pub(super) fn drift(&mut self, now: Instant) {
        let off = !self.enabled || self.partner_off(now);
        let Some(partner) = self
            .partner_digest
            .filter(|_| off && self.role != Role::Standalone)
        else {
            self.difference = None;
            if self.transfer.as_ref().is_some_and(|t| t.what == What::Text) {
                self.transfer = None;
            }
            return;
        };
        if partner == self.digest {
            self.difference = None;
            return;
        }
        let key = (self.digest, partner);
        if self.difference.as_ref().is_some_and(|d| d.0 == key) {
            return;
        }
        self.difference = Some((key, None));
        let mut t = Transfer::new(What::Text, 0, partner);
        t.discard = None;
        self.transfer = Some(t);
        self.send_request(now, true);
    }

    // ----- timers and output -----
}
