//! `tandem_core::advisor::TargetState`: the advisors' states the Active sends to the
//! Standby (`decode_all`, `encode_all`, `encode_chunks`), and `Scheduler::seed` of what
//! decodes into a scheduler configured with `tandem_fuzz::ADVISOR_CONFIG`.
//!
//! Input: the encoded state list, as the partner sends it.
//!
//! Checked besides "no panic": what decodes re-encodes to a list that decodes equal, and
//! whose encoding is stable; `encode_chunks` at 1400 bytes and at `MIN_CHUNK` gives chunks
//! within the bound, each a list that decodes, packed greedily, that together give the states
//! in order; seeding counts every state (seeded or unknown), raises no event, keeps the
//! target set, and `export` then gives the last seeded state of each target; answering every
//! probe with the seeded state (unseeded targets up) raises no script event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tandem_core::advisor::{MIN_CHUNK, Outcome, Scheduler, State, TargetKey, TargetState};
use tandem_core::config::{Config, load_file};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        load_file(
            tandem_fuzz::ADVISOR_CONFIG,
            "advisor_state.cfg",
            &Config::default(),
        )
        .expect("the target's configuration loads")
    })
}

/// Encoded size of one entry (a list of it, less the 5-byte list header).
fn entry_len(s: &TargetState) -> usize {
    TargetState::encode_all(std::slice::from_ref(s)).len() - 5
}

fn check_chunks(states: &[TargetState], max: usize) {
    let chunks = TargetState::encode_chunks(states, max);
    let bound = max.max(MIN_CHUNK);
    assert!(!chunks.is_empty(), "no chunk at all");
    let mut back: Vec<TargetState> = Vec::with_capacity(states.len());
    for (i, c) in chunks.iter().enumerate() {
        assert!(
            c.len() <= bound,
            "chunk {i} of {} bytes, bound {bound}",
            c.len()
        );
        let part = TargetState::decode_all(c).expect("every chunk decodes");
        assert!(
            !part.is_empty() || (chunks.len() == 1 && states.is_empty()),
            "empty chunk {i} of {}",
            chunks.len()
        );
        if i + 1 < chunks.len() {
            let next = &states[back.len() + part.len()];
            assert!(
                c.len() + entry_len(next) > bound,
                "chunk {i} ({} bytes) had room for the next entry",
                c.len()
            );
        }
        back.extend(part);
    }
    assert_eq!(
        back, states,
        "chunks of {max} decode to the states in order"
    );
}

fn check_seed(states: &[TargetState]) {
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, config());
    let targets = s.len();
    s.seed(t0, states);
    let st = s.stats();
    assert_eq!(
        st.seeded + st.seed_unknown,
        states.len() as u64,
        "every state seeded or counted"
    );
    assert_eq!(s.len(), targets, "seeding changed the target set");
    assert!(s.poll_event().is_none(), "seeding raised an event");
    // The last state of each key this node has wins.
    let mut last: HashMap<&TargetKey, &TargetState> = HashMap::new();
    for x in states {
        if s.target(&x.key).is_some() {
            last.insert(&x.key, x);
        }
    }
    let exported = s.export();
    assert_eq!(exported.len(), last.len(), "export after seed");
    for e in &exported {
        let want = last[&e.key];
        assert_eq!(e.state, want.state, "{:?}", e.key);
        assert_eq!(e.failures, want.failures, "{:?}", e.key);
        let load = if want.state == State::Up {
            want.load
        } else {
            None
        };
        assert_eq!(e.load, load, "{:?}", e.key);
    }
    // A takeover that finds what the partner saw raises no script.
    s.set_running(t0, true);
    let end = t0 + Duration::from_secs(20);
    let mut probes = 0;
    while let Some(at) = s.poll_timeout().filter(|at| *at <= end) {
        while let Some(p) = s.poll_probe(at) {
            probes += 1;
            assert!(probes < 10_000, "probes without end");
            let key = last.keys().find(|k| {
                k.cluster == p.cluster
                    && k.server == p.server
                    && k.port() == p.port
                    && k.advisor.kind == p.kind
            });
            let outcome = match key.map(|k| last[k]) {
                Some(x) if x.state == State::Down => Outcome::Down {
                    reason: "as the partner saw it".into(),
                },
                Some(x) => Outcome::Up { load: x.load },
                None => Outcome::Up { load: Some(1) },
            };
            s.handle_result(at + Duration::from_millis(1), p.id, outcome);
        }
    }
    assert!(probes > 0, "no probe after a takeover");
    if let Some(e) = s.poll_event() {
        panic!("a script after a takeover that found the partner's states: {e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(states) = TargetState::decode_all(data) else {
        return;
    };
    let bytes = TargetState::encode_all(&states);
    let again = TargetState::decode_all(&bytes).expect("a decoded list re-encodes and decodes");
    assert_eq!(again, states, "encode_all round trip");
    assert_eq!(
        TargetState::encode_all(&again),
        bytes,
        "encoding not stable"
    );
    check_chunks(&states, 1400);
    check_chunks(&states, MIN_CHUNK);
    check_seed(&states);
});
