//! The source side of the sync engine: answering a follower's status and pulls, announcing the head.

use super::*;

impl SyncEngine {
    pub(super) fn serves(&self) -> bool {
        self.enabled && self.role != Role::Follower
    }

    pub(super) fn on_status(
        &mut self,
        now: Instant,
        off: bool,
        want_full: bool,
        lineage: u64,
        applied: u64,
        digest: u64,
    ) {
        if off {
            // The partner has sync off: nothing to answer; it reads texts for drift only.
            self.partner_off_until = Some(now + self.cfg.head_every * 3);
            self.follower = None;
            return;
        }
        if !self.serves() {
            self.push(Message::Head {
                off: !self.enabled,
                lineage: self.log.lineage(),
                head: self.log.head(),
                digest: self.digest,
                resume: Resume::None,
                echo: (0, 0),
            });
            return;
        }
        self.partner_off_until = None;
        self.follower = Some(FollowerView {
            lineage,
            applied,
            digest,
        });
        let log = &self.log;
        let resume = if lineage == log.lineage()
            && applied == log.head()
            && digest == self.digest
            && !want_full
        {
            Resume::InSync
        } else if lineage == log.lineage()
            && applied < log.head()
            && log.digest_at(applied) == Some(digest)
            && !want_full
        {
            Resume::Entries
        } else if lineage == log.lineage()
            && (applied > log.head() || log.digest_at(applied).is_some_and(|d| d != digest))
        {
            Resume::Diverged
        } else {
            Resume::Full
        };
        if resume == Resume::InSync {
            self.common = Some((lineage, applied));
        }
        if matches!(resume, Resume::Full | Resume::Diverged) {
            self.counters.full_syncs_sent += 1;
            self.snapshot = Some((log.lineage(), log.head(), self.text.clone(), self.digest));
        }
        self.push(Message::Head {
            off: false,
            lineage: self.log.lineage(),
            head: self.log.head(),
            digest: self.digest,
            resume,
            echo: (applied, digest),
        });
    }

    pub(super) fn on_get(&mut self, what: What, lineage: u64, seq: u64, offset: u32, count: u16) {
        let object: Option<(Arc<Vec<u8>>, u64, bool)> = match what {
            What::Text if seq == self.digest => {
                Some((Arc::new(self.text.as_bytes().to_vec()), self.digest, true))
            }
            What::Text => None,
            _ if !self.serves() || lineage != self.log.lineage() => None,
            What::Entry => self
                .log
                .entry(seq)
                .map(|e| (e.payload.clone(), e.digest_after, e.replace)),
            What::Full => match &self.snapshot {
                Some((l, s, text, d)) if *l == lineage && *s == seq => {
                    Some((Arc::new(text.as_bytes().to_vec()), *d, true))
                }
                _ if seq == self.log.head() => {
                    Some((Arc::new(self.text.as_bytes().to_vec()), self.digest, true))
                }
                _ => None,
            },
        };
        let Some((payload, digest_after, replace)) = object else {
            self.push(Message::Gone { what, lineage, seq });
            return;
        };
        let Ok(total) = u32::try_from(payload.len()) else {
            self.push(Message::Gone { what, lineage, seq });
            return;
        };
        let size = self.chunk_size() as u32;
        let mut at = offset.min(total);
        for _ in 0..count.clamp(1, 256) {
            let end = (at + size).min(total);
            if what == What::Entry && at == 0 {
                self.counters.entries_sent += 1;
            }
            self.counters.chunks_sent += 1;
            self.push(Message::Chunk {
                what,
                lineage,
                seq,
                digest_after,
                replace,
                total,
                offset: at,
                data: payload[at as usize..end as usize].to_vec(),
            });
            at = end;
            if at >= total {
                break;
            }
        }
    }

    pub(super) fn chunk_size(&self) -> usize {
        self.cfg.max_message.saturating_sub(CHUNK_HEADER).max(64)
    }

    pub(super) fn announce(&mut self, now: Instant) {
        if self.serves() && self.role == Role::Source {
            let at = (self.log.lineage(), self.log.head(), self.digest);
            if self.announced != Some(at) {
                self.announced = Some(at);
                self.next_head = Some(now + self.cfg.head_every);
                self.push_head();
            }
        }
    }

    pub(super) fn push_head(&mut self) {
        self.push(Message::Head {
            off: !self.enabled,
            lineage: self.log.lineage(),
            head: self.log.head(),
            digest: self.digest,
            resume: Resume::None,
            echo: (0, 0),
        });
    }

    /// The follower is known to be at the head (no need to repeat it).
    pub(super) fn follower_at_head(&self) -> bool {
        self.follower.is_some_and(|f| {
            f.lineage == self.log.lineage()
                && f.applied == self.log.head()
                && f.digest == self.digest
        })
    }

    // ----- follower side -----
}
