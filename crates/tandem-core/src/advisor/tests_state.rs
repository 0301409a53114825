//! Tests of seeding, the state codec, reports and scale.

use super::*;
use crate::config::{Advisor, AdvisorKey, AdvisorKind, Config, load_file};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn base() -> Config {
    match load_file(
        "cluster add 192.0.2.100+2001:db8::100
         port add 192.0.2.100@80
         port add 2001:db8::100@443
         server add 192.0.2.100@80@198.51.100.1+198.51.100.2
         server add 2001:db8::100@443@2001:db8::1+2001:db8::2",
        "test.cfg",
        &Config::default(),
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn adv() -> Advisor {
    Advisor {
        interval: 2.0,
        connecttimeout: 1.0,
        receivetimeout: 1.0,
        retries: 0,
        timeout: Some(30.0),
    }
}

fn configured() -> Config {
    let mut c = base();
    let h = &mut c.health.advisors;
    h.insert(
        AdvisorKey {
            kind: AdvisorKind::Http,
            cluster: None,
            port: 80,
        },
        adv(),
    );
    h.insert(
        AdvisorKey {
            kind: AdvisorKind::Custom("ADV_x1".into()),
            cluster: Some(ip("2001:db8::100")),
            port: 443,
        },
        adv(),
    );
    c
}

/// Runs every probe due up to `until`, each answered by `f`.
fn run_until(s: &mut Scheduler, until: Instant, f: impl Fn(&Probe) -> Outcome) {
    while let Some(at) = s.poll_timeout().filter(|at| *at <= until) {
        while let Some(p) = s.poll_probe(at) {
            s.handle_result(at + ms(1), p.id, f(&p));
        }
    }
}

fn server_down(p: &Probe) -> Outcome {
    if p.server == ip("198.51.100.2") || p.server == ip("2001:db8::2") {
        Outcome::Down {
            reason: "refused".into(),
        }
    } else {
        Outcome::Up { load: Some(17) }
    }
}

#[test]
fn export_encode_decode_seed_round_trip() {
    let c = configured();
    let t0 = Instant::now();
    let mut a = Scheduler::new();
    a.configure(t0, &c);
    a.set_running(t0, true);
    run_until(&mut a, t0 + ms(100), server_down);
    let exported = a.export();
    assert_eq!(exported.len(), 4);
    let bytes = TargetState::encode_all(&exported);
    let decoded = TargetState::decode_all(&bytes).expect("decodes");
    assert_eq!(decoded, exported);
    // A standby that becomes active: configured, seeded, then running.
    let mut b = Scheduler::new();
    let t1 = t0 + ms(5000);
    b.configure(t1, &c);
    b.seed(t1, &decoded);
    assert_eq!(b.stats().seeded, 4);
    for (cl, port, srv, st) in [
        ("192.0.2.100", 80, "198.51.100.1", State::Up),
        ("192.0.2.100", 80, "198.51.100.2", State::Down),
        ("2001:db8::100", 443, "2001:db8::2", State::Down),
    ] {
        assert_eq!(
            b.health(t1, ip(cl), port, ip(srv)).unwrap().state,
            st,
            "{srv}"
        );
    }
    assert_eq!(
        b.health(t1, ip("192.0.2.100"), 80, ip("198.51.100.1"))
            .unwrap()
            .port_load,
        Some(17)
    );
    b.set_running(t1, true);
    assert!(b.poll_event().is_none(), "seeded states raise no script");
    assert_eq!(b.poll_timeout(), Some(t1), "probes at once");
    // A seed of a target this node does not have is counted and ignored.
    let mut other = decoded[0].clone();
    other.key.server = ip("203.0.113.77");
    b.seed(t1, &[other]);
    assert_eq!(b.stats().seed_unknown, 1);
}

#[test]
fn seeded_all_down_port_clears_when_a_server_returns() {
    let c = configured();
    let t0 = Instant::now();
    let mut a = Scheduler::new();
    a.configure(t0, &c);
    a.set_running(t0, true);
    run_until(&mut a, t0 + ms(100), |_| Outcome::Down {
        reason: "refused".into(),
    });
    assert!(a.port_all_down(ip("192.0.2.100"), 80));
    let mut b = Scheduler::new();
    b.configure(t0, &c);
    b.seed(t0, &a.export());
    b.set_running(t0, true);
    run_until(&mut b, t0 + ms(100), |_| Outcome::Up { load: None });
    let ev: Vec<&str> = std::iter::from_fn(|| b.poll_event())
        .map(|e| e.script())
        .collect();
    assert_eq!(ev, ["managerClear", "serverUp", "managerClear", "serverUp"]);
}

#[test]
fn decode_refuses_bad_input_without_panicking() {
    let c = configured();
    let t0 = Instant::now();
    let mut a = Scheduler::new();
    a.configure(t0, &c);
    a.set_running(t0, true);
    run_until(&mut a, t0 + ms(100), server_down);
    let bytes = TargetState::encode_all(&a.export());
    // Every truncation fails.
    for n in 0..bytes.len() {
        assert!(TargetState::decode_all(&bytes[..n]).is_err(), "cut at {n}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        TargetState::decode_all(&long),
        Err(DecodeError::Trailing(1))
    );
    let mut v = bytes.clone();
    v[0] = 9;
    assert_eq!(TargetState::decode_all(&v), Err(DecodeError::Version(9)));
    let mut many = vec![1u8];
    many.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        TargetState::decode_all(&many),
        Err(DecodeError::TooMany(u32::MAX))
    );
    // A count larger than the bytes can hold is refused before allocating.
    let mut big = vec![1u8];
    big.extend_from_slice(&65_536u32.to_be_bytes());
    assert_eq!(TargetState::decode_all(&big), Err(DecodeError::Truncated));
    let mut k = bytes.clone();
    k[5] = 77;
    assert_eq!(TargetState::decode_all(&k), Err(DecodeError::Kind(77)));
    // Every single-byte change either decodes or is refused; none panics.
    let mut x: u32 = 12345;
    for i in 0..bytes.len() {
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut m = bytes.clone();
            m[i] = x as u8;
            let _ = TargetState::decode_all(&m);
        }
    }
    // Unknown states and invalid custom names are not encoded.
    let mut st = a.export();
    st[0].state = State::Unknown;
    st[1].key.advisor.kind = AdvisorKind::Custom("ADV_bad name".into());
    let back = TargetState::decode_all(&TargetState::encode_all(&st)).unwrap();
    assert_eq!(back.len(), st.len() - 2);
}

#[test]
fn report_and_list_json_shapes() {
    let c = configured();
    let t0 = Instant::now();
    let mut a = Scheduler::new();
    a.configure(t0, &c);
    a.set_running(t0, true);
    run_until(&mut a, t0 + ms(100), server_down);
    let list = serde_json::to_value(a.list()).unwrap();
    assert_eq!(
        list["advisors"][0],
        serde_json::json!({"name": "http", "cluster": null, "port": 80, "interval": 2.0,
            "connecttimeout": 1.0, "receivetimeout": 1.0, "retries": 0, "timeout": 30.0})
    );
    assert_eq!(list["advisors"][1]["name"], "ADV_x1");
    assert_eq!(list["advisors"][1]["cluster"], "2001:db8::100");
    let key = AdvisorKey {
        kind: AdvisorKind::Http,
        cluster: None,
        port: 80,
    };
    let r = serde_json::to_value(a.report(t0 + ms(100), &key).unwrap()).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"name": "http", "cluster": null, "port": 80, "running": true,
            "servers": [
              {"cluster": "192.0.2.100", "port": 80, "server": "198.51.100.1", "state": "up",
               "load": 17, "failures": 0, "last_error": null},
              {"cluster": "192.0.2.100", "port": 80, "server": "198.51.100.2", "state": "down",
               "load": null, "failures": 1, "last_error": "refused"}]})
    );
}

/// 10 000 servers on one port, probed by http every 7 s: two full rounds, in bounded
/// time and with the scheduler's tables no larger than the targets.
#[test]
fn ten_thousand_targets_in_bounded_time_and_memory() {
    let mut c = base();
    let port = c
        .clusters
        .get_mut(&ip("192.0.2.100"))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    let template = port.servers[&ip("198.51.100.1")].clone();
    for i in 0..10_000u32 {
        let a = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        port.servers.insert(
            a,
            crate::config::Server {
                address: a,
                ..template.clone()
            },
        );
    }
    c.health.advisors.insert(
        AdvisorKey {
            kind: AdvisorKind::Http,
            cluster: None,
            port: 80,
        },
        Advisor::default(),
    );
    let started = std::time::Instant::now();
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, &c);
    s.set_running(t0, true);
    assert_eq!(s.len(), 10_002);
    let mut probes = 0u64;
    let mut pending: std::collections::VecDeque<(Instant, ProbeId, bool)> = Default::default();
    let end = t0 + Duration::from_secs(14);
    let mut now = t0;
    let mut peak_in_flight = 0;
    while now <= end {
        while let Some(p) = s.poll_probe(now) {
            probes += 1;
            // Every 100th server is dead; results come 20 ms later.
            let dead = p.server.to_string().ends_with(".0");
            pending.push_back((now + ms(20), p.id, dead));
        }
        peak_in_flight = peak_in_flight.max(s.in_flight());
        while let Some(&(at, id, dead)) = pending.front() {
            if at > now {
                break;
            }
            pending.pop_front();
            let o = if dead {
                Outcome::Down {
                    reason: "refused".into(),
                }
            } else {
                Outcome::Up { load: Some(2) }
            };
            s.handle_result(at, id, o);
        }
        let next = s.poll_timeout().unwrap_or(end);
        let next_result = pending.front().map_or(end, |p| p.0);
        now = next.min(next_result).max(now + ms(1));
    }
    assert!(
        (20_004..=30_006).contains(&probes),
        "two to three rounds: {probes}"
    );
    assert!(
        peak_in_flight <= 40,
        "spread: few probes in flight at once ({peak_in_flight})"
    );
    assert!(s.in_flight() <= s.len());
    let mut n = 0;
    while s.poll_event().is_some() {
        n += 1;
    }
    assert!(n <= EVENT_QUEUE_LIMIT);
    assert!(n >= 40, "the dead servers went down: {n}");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "10 000 targets took {elapsed:?}"
    );
}

mod round_trip {
    use super::super::{State, TargetKey, TargetState};
    use crate::config::{AdvisorKey, AdvisorKind};
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(|b| IpAddr::from(b).to_canonical()),
        ]
    }

    fn kind() -> impl Strategy<Value = AdvisorKind> {
        prop_oneof![
            Just(AdvisorKind::Connect),
            Just(AdvisorKind::Http),
            Just(AdvisorKind::Https),
            Just(AdvisorKind::Ping),
            Just(AdvisorKind::Dns),
            "[A-Za-z0-9_]{1,60}".prop_map(|n| AdvisorKind::Custom(format!("ADV_{n}"))),
        ]
    }

    fn state() -> impl Strategy<Value = TargetState> {
        (
            kind(),
            proptest::option::of(addr()),
            any::<u16>(),
            addr(),
            addr(),
            any::<bool>(),
            proptest::option::of(any::<u32>()),
            any::<u32>(),
        )
            .prop_map(|(kind, kc, port, cluster, server, up, load, failures)| {
                TargetState {
                    key: TargetKey {
                        advisor: AdvisorKey {
                            kind,
                            cluster: kc,
                            port,
                        },
                        cluster,
                        server,
                    },
                    state: if up { State::Up } else { State::Down },
                    load,
                    failures,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn encode_decode_round_trip(states in proptest::collection::vec(state(), 0..40)) {
            let bytes = TargetState::encode_all(&states);
            prop_assert_eq!(TargetState::decode_all(&bytes), Ok(states));
        }

        #[test]
        fn chunks_fit_and_decode_to_the_whole(
            states in proptest::collection::vec(state(), 0..80),
            max in 0usize..2000,
        ) {
            let chunks = TargetState::encode_chunks(&states, max);
            let mut back = Vec::new();
            for c in &chunks {
                prop_assert!(c.len() <= max.max(super::super::MIN_CHUNK));
                back.extend(TargetState::decode_all(c).unwrap());
            }
            prop_assert_eq!(back, states);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = TargetState::decode_all(&bytes);
        }
    }
}
