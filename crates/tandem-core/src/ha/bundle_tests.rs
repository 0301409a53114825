use super::*;

/// A deterministic, lossy link between a requester and a partner, time stepping by 10 ms.
struct Harness {
    now: Instant,
    req: Bundles,
    srv: Bundles,
    /// The partner's bundle (None: it never answers).
    bundle: Option<Result<Vec<u8>, String>>,
    seed: u64,
    /// Per mille of datagrams lost and duplicated; reordering swaps neighbours.
    loss: u64,
    dup: u64,
    reorder: bool,
    delivered: u64,
}

impl Harness {
    fn new(bundle: Option<Result<Vec<u8>, String>>) -> Harness {
        Harness {
            now: Instant::now(),
            req: Bundles::default(),
            srv: Bundles::default(),
            bundle,
            seed: 0x9e37_79b9_7f4a_7c15,
            loss: 0,
            dup: 0,
            reorder: false,
            delivered: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1000
    }

    fn carry(&mut self, from_req: bool) {
        let mut batch = Vec::new();
        loop {
            let m = if from_req {
                self.req.poll_message()
            } else {
                self.srv.poll_message()
            };
            let Some(m) = m else { break };
            if self.rand() < self.loss {
                continue;
            }
            if self.rand() < self.dup {
                batch.push(m.clone());
            }
            batch.push(m);
        }
        if self.reorder {
            for i in (1..batch.len()).step_by(2) {
                batch.swap(i - 1, i);
            }
        }
        for m in batch {
            self.delivered += 1;
            if from_req {
                self.srv.handle(self.now, &m);
            } else {
                self.req.handle(self.now, &m);
            }
        }
    }

    /// Runs until the requester has an outcome for `id` (or 60 s of simulated time).
    fn run(&mut self, id: u64) -> Result<Vec<u8>, String> {
        let end = self.now + Duration::from_secs(60);
        while self.now < end {
            self.carry(true);
            while let Some(b) = self.srv.poll_build() {
                if let Some(bundle) = self.bundle.clone() {
                    self.srv.built(b, bundle);
                }
            }
            if self.bundle.is_none() {
                // A partner that never answers: nothing it is sent arrives.
                while self.srv.poll_message().is_some() {}
            }
            self.carry(false);
            if let Some(r) = self.req.take_outcome(id) {
                return r;
            }
            self.now += Duration::from_millis(10);
            if self.req.poll_timeout().is_some_and(|t| t <= self.now) {
                self.req.handle_timeout(self.now);
            }
        }
        panic!("no outcome within a minute");
    }
}

fn sample(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 1000) as u8).collect()
}

#[test]
fn messages_round_trip_and_garbage_is_refused() {
    let msgs = [
        Message::Request { id: 7 },
        Message::Manifest {
            id: 7,
            size: 5000,
            chunks: 5,
            digest: 99,
        },
        Message::Refused {
            id: 7,
            reason: "too big é".into(),
        },
        Message::Pull {
            id: 7,
            first: 3,
            count: 2,
        },
        Message::Chunk {
            id: 7,
            index: 4,
            bytes: &[1, 2, 3],
        },
    ];
    for m in &msgs {
        let b = m.encode();
        assert_eq!(Message::decode(&b).as_ref(), Some(m));
        for n in 0..b.len() {
            // Every prefix is refused, but a refusal or chunk cut in its free-length tail.
            if let Some(d) = Message::decode(&b[..n]) {
                assert!(
                    matches!(d, Message::Refused { .. } | Message::Chunk { .. }) && n >= 9,
                    "{n}: {d:?}"
                );
            }
        }
        let mut longer = b.clone();
        longer.extend_from_slice(&[0; 2000]);
        assert_eq!(Message::decode(&longer), None, "trailing bytes: {m:?}");
    }
    assert_eq!(Message::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    let mut b = Bundles::default();
    b.handle(Instant::now(), &[5, 1]);
    b.handle(Instant::now(), b"garbage that is not a message");
    assert_eq!(b.counters().malformed, 2);
}

#[test]
fn a_bundle_is_pulled_whole_on_a_clean_link() {
    let data = sample(100_000);
    let mut h = Harness::new(Some(Ok(data.clone())));
    h.req.request(h.now, 1);
    assert_eq!(h.run(1), Ok(data));
    assert_eq!(h.req.counters().pulled, 1);
    assert_eq!(h.srv.counters().served, 1);
    assert_eq!(h.srv.counters().chunks_sent, u64::from(chunks_for(100_000)));
    assert_eq!(h.req.counters().retries, 0);
    assert_eq!(h.req.poll_timeout(), None, "nothing left to do");
}

#[test]
fn loss_duplication_and_reordering_still_give_the_exact_bundle() {
    for (loss, dup, reorder) in [(200, 0, false), (0, 300, true), (300, 300, true)] {
        let data = sample(50_000 + loss as usize);
        let mut h = Harness::new(Some(Ok(data.clone())));
        (h.loss, h.dup, h.reorder) = (loss, dup, reorder);
        h.req.request(h.now, 42);
        assert_eq!(h.run(42), Ok(data), "loss {loss} dup {dup}");
        if loss > 0 {
            assert!(h.req.counters().retries > 0);
        }
        if dup > 0 {
            assert!(h.req.counters().duplicates + h.srv.counters().duplicates > 0);
        }
        // The partner built the bundle once, however often it was asked.
        assert_eq!(h.srv.counters().served, 1);
    }
}

#[test]
fn an_empty_bundle_and_one_of_exactly_one_chunk() {
    for n in [0, CHUNK_BYTES, CHUNK_BYTES + 1] {
        let mut h = Harness::new(Some(Ok(sample(n))));
        h.req.request(h.now, 3);
        assert_eq!(h.run(3), Ok(sample(n)));
    }
}

#[test]
fn a_silent_partner_is_reported_after_the_answer_timeout() {
    let mut h = Harness::new(None);
    let start = h.now;
    h.req.request(h.now, 5);
    let err = h.run(5).unwrap_err();
    assert!(err.contains("did not answer within 5 s"), "{err}");
    assert!(h.now >= start + ANSWER_TIMEOUT && h.now <= start + ANSWER_TIMEOUT + RETRY);
    assert_eq!(h.req.counters().failed, 1);
    assert!(h.req.counters().retries >= 10, "requests were sent again");
}

#[test]
fn a_partner_that_cannot_build_or_builds_too_much_refuses_with_the_reason() {
    let mut h = Harness::new(Some(Err("log directory unreadable".into())));
    h.req.request(h.now, 8);
    assert_eq!(
        h.run(8),
        Err("the partner refused: log directory unreadable".into())
    );
    let mut h = Harness::new(Some(Ok(vec![0; MAX_BUNDLE_BYTES + 1])));
    h.req.request(h.now, 9);
    let err = h.run(9).unwrap_err();
    assert!(err.contains("over the 8 MiB bound"), "{err}");
}

#[test]
fn lies_about_sizes_and_chunks_are_refused_and_counted() {
    let now = Instant::now();
    // A manifest over the bound, or whose chunks do not add up, ends the pull.
    for (size, chunks) in [(u32::MAX, chunks_for(u32::MAX as usize)), (5000, 2)] {
        let mut r = Bundles::default();
        r.request(now, 1);
        let m = Message::Manifest {
            id: 1,
            size,
            chunks,
            digest: 0,
        };
        r.handle(now, &m.encode());
        assert!(r.take_outcome(1).unwrap().is_err());
        assert_eq!(r.counters().malformed, 1);
    }
    // Chunks of the wrong length, out of range, not asked for, or for another id.
    let mut r = Bundles::default();
    r.request(now, 1);
    let data = sample(3 * CHUNK_BYTES);
    r.handle(now, &manifest(1, &data).encode());
    let chunk = |id, index, bytes: &[u8]| Message::Chunk { id, index, bytes }.encode();
    r.handle(now, &chunk(1, 0, &data[..10]));
    r.handle(now, &chunk(1, 7, &data[..CHUNK_BYTES]));
    r.handle(now, &chunk(2, 0, &data[..CHUNK_BYTES]));
    assert_eq!(r.counters().malformed, 2);
    assert_eq!(r.counters().stray, 1);
    // A wrong digest is caught at the end.
    for i in 0..3 {
        let mut c = data[i * CHUNK_BYTES..(i + 1) * CHUNK_BYTES].to_vec();
        if i == 2 {
            c[0] ^= 1;
        }
        r.handle(now, &chunk(1, i as u32, &c));
    }
    assert_eq!(
        r.take_outcome(1),
        Some(Err("the partner's bundle does not match its digest".into()))
    );
    // The serving side: a pull for a bundle it does not hold is refused, a pull out of range
    // counted; a pull never gets more than the window.
    let mut s = Bundles::default();
    s.handle(
        now,
        &Message::Pull {
            id: 4,
            first: 0,
            count: 1,
        }
        .encode(),
    );
    assert_eq!(s.counters().stray, 1);
    s.handle(now, &Message::Request { id: 4 }.encode());
    assert_eq!(s.poll_build(), Some(4));
    s.built(4, Ok(sample(100 * CHUNK_BYTES)));
    while s.poll_message().is_some() {}
    s.handle(
        now,
        &Message::Pull {
            id: 4,
            first: 0,
            count: u16::MAX,
        }
        .encode(),
    );
    let mut n = 0;
    while s.poll_message().is_some() {
        n += 1;
    }
    assert_eq!(n, PULL_WINDOW);
    s.handle(
        now,
        &Message::Pull {
            id: 4,
            first: 100,
            count: 1,
        }
        .encode(),
    );
    assert_eq!(s.counters().malformed, 1);
    s.handle(
        now,
        &Message::Pull {
            id: 5,
            first: 0,
            count: 1,
        }
        .encode(),
    );
    assert!(matches!(
        Message::decode(&s.poll_message().unwrap()),
        Some(Message::Refused { id: 5, .. })
    ));
}

#[test]
fn a_stale_build_is_ignored_and_abandon_ends_the_pull() {
    let now = Instant::now();
    let mut s = Bundles::default();
    s.handle(now, &Message::Request { id: 1 }.encode());
    s.handle(now, &Message::Request { id: 2 }.encode());
    s.built(1, Ok(vec![1]));
    assert_eq!(s.poll_message(), None, "bundle 1 was replaced by 2");
    s.built(2, Ok(vec![2]));
    assert!(matches!(
        Message::decode(&s.poll_message().unwrap()),
        Some(Message::Manifest { id: 2, size: 1, .. })
    ));
    let mut r = Bundles::default();
    r.request(now, 1);
    r.abandon("partner lost");
    assert_eq!(r.take_outcome(1), Some(Err("partner lost".into())));
    assert_eq!(r.take_outcome(1), None);
    assert_eq!(r.poll_timeout(), None);
}
