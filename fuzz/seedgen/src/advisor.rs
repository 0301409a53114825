//! Seeds of the `advisor_state` target: the exports of a real `Scheduler` configured with
//! `tandem_fuzz::ADVISOR_CONFIG` after real probe rounds, cut by `encode_chunks` too, and a
//! list of every entry form (each advisor kind, cluster keys of both families, loads, targets
//! the fuzzed node does not have), all made by `TargetState::encode_all` / `encode_chunks`.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tandem_core::advisor::{MIN_CHUNK, Outcome, Probe, Scheduler, State, TargetKey, TargetState};
use tandem_core::config::{AdvisorKey, AdvisorKind, Config, load_file};

const TARGET: &str = "advisor_state";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("seed address")
}

/// The export of a scheduler whose probes `answer` answers, after 20 s of rounds.
fn export(answer: impl Fn(&Probe) -> Outcome) -> Vec<TargetState> {
    let config = load_file(
        tandem_fuzz::ADVISOR_CONFIG,
        "advisor_state.cfg",
        &Config::default(),
    )
    .expect("the target's configuration loads");
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, &config);
    s.set_running(t0, true);
    let end = t0 + Duration::from_secs(20);
    while let Some(at) = s.poll_timeout().filter(|at| *at <= end) {
        while let Some(p) = s.poll_probe(at) {
            let outcome = answer(&p);
            s.handle_result(at + Duration::from_millis(3), p.id, outcome);
        }
    }
    let states = s.export();
    assert!(!states.is_empty(), "the seed scheduler exported nothing");
    states
}

fn down() -> Outcome {
    Outcome::Down {
        reason: "connection refused".into(),
    }
}

fn state(
    kind: AdvisorKind,
    key_cluster: Option<&str>,
    port: u16,
    cluster: &str,
    server: &str,
) -> TargetKey {
    TargetKey {
        advisor: AdvisorKey {
            kind,
            cluster: key_cluster.map(ip),
            port,
        },
        cluster: ip(cluster),
        server: ip(server),
    }
}

/// One entry of each form the codec knows.
fn every_form() -> Vec<TargetState> {
    let long = format!("ADV_{}", "Z9_".repeat(20));
    let keys = [
        state(
            AdvisorKind::Connect,
            Some("192.0.2.100"),
            80,
            "192.0.2.100",
            "198.51.100.1",
        ),
        state(AdvisorKind::Http, None, 80, "192.0.2.100", "198.51.100.2"),
        state(
            AdvisorKind::Https,
            None,
            443,
            "2001:db8::100",
            "2001:db8::1",
        ),
        state(AdvisorKind::Ping, None, 443, "2001:db8::100", "2001:db8::2"),
        state(AdvisorKind::Dns, None, 53, "192.0.2.100", "203.0.113.53"),
        state(
            AdvisorKind::Custom("ADV_x1".into()),
            Some("2001:db8::100"),
            443,
            "2001:db8::100",
            "2001:db8::1",
        ),
        state(
            AdvisorKind::Custom(long),
            Some("2001:db8::100"),
            65535,
            "2001:db8::100",
            "2001:db8::ffff",
        ),
    ];
    keys.into_iter()
        .enumerate()
        .map(|(i, key)| TargetState {
            key,
            state: if i % 2 == 0 { State::Up } else { State::Down },
            load: (i % 2 == 0 && i != 4).then_some(i as u32 * 10),
            failures: if i == 3 { u32::MAX } else { i as u32 },
        })
        .collect()
}

pub fn advisor_state(dir: &Path) {
    let write = |name: &str, bytes: &[u8]| super::write(dir, TARGET, name, bytes);
    let mixed = export(|p| {
        if p.server == ip("198.51.100.2") || p.server == ip("2001:db8::2") {
            down()
        } else {
            Outcome::Up { load: Some(17) }
        }
    });
    write("export_mixed", &TargetState::encode_all(&mixed));
    for (i, c) in TargetState::encode_chunks(&mixed, MIN_CHUNK)
        .iter()
        .enumerate()
    {
        write(&format!("export_mixed_chunk_{i}"), c);
    }
    let port80_down = export(|p| {
        if p.port == 80 {
            down()
        } else {
            Outcome::Up { load: None }
        }
    });
    write(
        "export_port80_all_down",
        &TargetState::encode_all(&port80_down),
    );
    write(
        "export_all_up",
        &TargetState::encode_all(&export(|_| Outcome::Up { load: Some(3) })),
    );
    write("every_form", &TargetState::encode_all(&every_form()));
    write("empty", &TargetState::encode_all(&[]));
    // Longer than a 1400-byte chunk (about 3 KB, within the smoke run's -max_len=4096): the
    // mixed export, then every form again for 40 more servers, some of them the node's.
    let more = (0..40u8).flat_map(|i| {
        every_form().into_iter().map(move |mut x| {
            x.key.server = match x.key.server {
                IpAddr::V4(_) => IpAddr::from([198, 51, 100, i]),
                IpAddr::V6(_) => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i)]),
            };
            x
        })
    });
    let many: Vec<TargetState> = mixed.iter().cloned().chain(more).take(75).collect();
    let bytes = TargetState::encode_all(&many);
    assert!(
        bytes.len() > 1400 && bytes.len() <= 4096,
        "many: {} bytes",
        bytes.len()
    );
    write("many_entries", &bytes);
}
