//! Deterministic tests of the scheduler with a fake clock.

use super::*;
use crate::config::{Advisor, AdvisorKey, AdvisorKind, Config, Method, load_file};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(lines: &str) -> Config {
    match load_file(lines, "test.cfg", &Config::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

const C1: &str = "192.0.2.100";
const C2: &str = "192.0.2.101";

/// Cluster C1 port 80 with three servers, cluster C2 port 80 with one.
fn sample() -> Config {
    config(
        "cluster add 192.0.2.100+192.0.2.101
         port add 192.0.2.100@80
         port add 192.0.2.101@80
         server add 192.0.2.100@80@198.51.100.1+198.51.100.2+198.51.100.3
         server add 192.0.2.101@80@198.51.100.9",
    )
}

fn key(kind: AdvisorKind, cluster: Option<&str>, port: u16) -> AdvisorKey {
    AdvisorKey {
        kind,
        cluster: cluster.map(ip),
        port,
    }
}

fn advisor(interval: f64, retries: u32) -> Advisor {
    Advisor {
        interval,
        connecttimeout: 1.0,
        receivetimeout: 2.0,
        retries,
        timeout: None,
    }
}

fn with(mut c: Config, k: AdvisorKey, a: Advisor) -> Config {
    c.health.advisors.insert(k, a);
    c
}

/// All probes due at `now`.
fn due(s: &mut Scheduler, now: Instant) -> Vec<Probe> {
    std::iter::from_fn(|| s.poll_probe(now)).collect()
}

fn events(s: &mut Scheduler) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn up() -> Outcome {
    Outcome::Up { load: Some(5) }
}

fn down() -> Outcome {
    Outcome::Down {
        reason: "connection refused".into(),
    }
}

/// A running scheduler on `config`; returns it and the first batch of probes (all sent by
/// t0 + 1 s).
fn started(config: &Config, t0: Instant) -> (Scheduler, Vec<Probe>) {
    let mut s = Scheduler::new();
    s.configure(t0, config);
    s.set_running(t0, true);
    let mut p = Vec::new();
    while let Some(at) = s.poll_timeout().filter(|at| *at <= t0 + ms(1000)) {
        let batch = due(&mut s, at);
        if batch.is_empty() {
            break;
        }
        p.extend(batch);
    }
    (s, p)
}

#[test]
fn targets_addresses_and_probe_contents() {
    let mut c = sample();
    c.health
        .advisors
        .insert(key(AdvisorKind::Http, None, 80), advisor(7.0, 0));
    c.health
        .advisors
        .insert(key(AdvisorKind::Ping, None, 80), advisor(7.0, 0));
    c.health.advisors.insert(
        key(AdvisorKind::Custom("ADV_load".into()), Some(C1), 80),
        advisor(7.0, 0),
    );
    // NAT with a mapport on C2.
    let p2 = c
        .clusters
        .get_mut(&ip(C2))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    p2.method = Method::Nat;
    let srv = p2.servers.get_mut(&ip("198.51.100.9")).unwrap();
    srv.mapport = Some(8080);
    srv.advisorrequest = Some("GET /health HTTP/1.1\r\nHost: a".into());
    srv.advisorresponse = Some("OK".into());
    let t0 = Instant::now();
    let (s, probes) = started(&c, t0);
    // http × 4 servers, ping × 4, custom × 3 (C1 only).
    assert_eq!(s.len(), 11);
    assert_eq!(probes.len(), 11);
    let find = |kind: &AdvisorKind, server: &str| {
        probes
            .iter()
            .find(|p| &p.kind == kind && p.server == ip(server))
            .unwrap_or_else(|| panic!("no {kind:?} probe of {server}"))
    };
    let h = find(&AdvisorKind::Http, "198.51.100.9");
    assert_eq!(
        h.address,
        "198.51.100.9:8080".parse().unwrap(),
        "NAT: mapport"
    );
    assert_eq!(
        h.request.as_deref(),
        Some("GET /health HTTP/1.1\r\nHost: a")
    );
    assert_eq!(h.response.as_deref(), Some("OK"));
    assert_eq!((h.cluster, h.port), (ip(C2), 80));
    assert_eq!(h.connecttimeout, ms(1000));
    assert_eq!(h.receivetimeout, ms(2000));
    assert_eq!(h.custom, None);
    let h = find(&AdvisorKind::Http, "198.51.100.1");
    assert_eq!(
        h.address,
        "198.51.100.1:80".parse().unwrap(),
        "MAC: cluster port"
    );
    let p = find(&AdvisorKind::Ping, "198.51.100.9");
    assert_eq!(p.address.port(), 0);
    let cu = find(&AdvisorKind::Custom("ADV_load".into()), "198.51.100.2");
    assert_eq!(cu.custom.as_deref(), Some("ADV_load"));
    assert!(
        !probes
            .iter()
            .any(|p| p.custom.is_some() && p.cluster == ip(C2)),
        "the custom advisor watches C1@80 only"
    );
}

#[test]
fn a_cluster_advisor_replaces_the_port_wide_one_there() {
    let c = with(
        with(
            sample(),
            key(AdvisorKind::Connect, None, 80),
            advisor(7.0, 0),
        ),
        key(AdvisorKind::Connect, Some(C1), 80),
        advisor(3.0, 1),
    );
    let t0 = Instant::now();
    let (s, probes) = started(&c, t0);
    assert_eq!(s.len(), 4, "one connect target per server, not two");
    let r = s
        .report(t0, &key(AdvisorKind::Connect, Some(C1), 80))
        .unwrap();
    assert_eq!(r.servers.len(), 3);
    let r = s.report(t0, &key(AdvisorKind::Connect, None, 80)).unwrap();
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].cluster, ip(C2));
    assert_eq!(probes.len(), 4);
}

#[test]
fn probes_only_while_running_and_all_due_when_starting() {
    let c = with(
        sample(),
        key(AdvisorKind::Connect, None, 80),
        advisor(7.0, 0),
    );
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, &c);
    assert!(due(&mut s, t0 + ms(60_000)).is_empty(), "not running");
    assert_eq!(s.poll_timeout(), None);
    s.set_running(t0 + ms(60_000), true);
    let t1 = t0 + ms(60_000);
    assert_eq!(s.poll_timeout(), Some(t1), "due at once");
    // Spread: one at once, then one every FIRST_PROBE_GAP.
    assert_eq!(due(&mut s, t1).len(), 1);
    assert_eq!(due(&mut s, t1 + FIRST_PROBE_GAP).len(), 1);
    assert_eq!(due(&mut s, t1 + FIRST_PROBE_GAP * 3).len(), 2);
    assert_eq!(s.in_flight(), 4);
    // Stopping forgets the probes in flight.
    s.set_running(t1 + ms(10), false);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.poll_timeout(), None);
    s.handle_result(t1 + ms(11), ProbeId(0), up());
    assert_eq!(s.stats().stale_results, 1);
}

#[test]
fn first_probes_of_many_targets_are_spread_within_one_interval() {
    let mut c = config("cluster add 192.0.2.100\nport add 192.0.2.100@80");
    let port = c
        .clusters
        .get_mut(&ip(C1))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    let template = {
        let mut cc = sample();
        cc.clusters
            .get_mut(&ip(C1))
            .unwrap()
            .ports
            .get_mut(&80)
            .unwrap()
            .servers[&ip("198.51.100.1")]
            .clone()
    };
    for i in 0..5000u32 {
        let a = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
        port.servers.insert(
            a,
            crate::config::Server {
                address: a,
                ..template.clone()
            },
        );
    }
    let c = with(c, key(AdvisorKind::Http, None, 80), advisor(7.0, 0));
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, &c);
    s.set_running(t0, true);
    let mut per_ms = std::collections::BTreeMap::<u128, usize>::new();
    let mut last = t0;
    let mut n = 0;
    while let Some(at) = s.poll_timeout() {
        if n == 5000 {
            break;
        }
        let batch = due(&mut s, at);
        n += batch.len();
        *per_ms.entry((at - t0).as_millis()).or_default() += batch.len();
        last = at;
    }
    assert_eq!(n, 5000);
    assert!(
        last - t0 <= ms(7000),
        "all first probes within one interval"
    );
    assert!(
        last - t0 >= ms(6900),
        "spread over the interval: {:?}",
        last - t0
    );
    assert!(
        per_ms.values().all(|&k| k <= 2),
        "at most two probes in a millisecond"
    );
}

#[test]
fn interval_is_measured_from_the_start_of_the_previous_probe() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1",
    );
    let c = with(c, key(AdvisorKind::Connect, None, 80), advisor(7.0, 0));
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    assert_eq!(p.len(), 1);
    // At most one in flight: nothing else due while it runs.
    assert!(due(&mut s, t0 + ms(2500)).is_empty());
    let g0 = s.generation();
    s.handle_result(t0 + ms(2500), p[0].id, up());
    assert!(s.generation() > g0, "unknown → up moves the generation");
    assert_eq!(s.poll_timeout(), Some(t0 + ms(7000)));
    assert!(due(&mut s, t0 + ms(6999)).is_empty());
    let p = due(&mut s, t0 + ms(7000));
    assert_eq!(p.len(), 1);
    assert_ne!(p[0].id.0, 0, "a fresh id");
    let g1 = s.generation();
    s.handle_result(t0 + ms(7010), p[0].id, Outcome::Up { load: Some(99) });
    assert_eq!(s.generation(), g1, "a new load alone does not");
    let p = due(&mut s, t0 + ms(14_000));
    s.handle_result(t0 + ms(14_010), p[0].id, down());
    assert!(s.generation() > g1, "up → down does");
}

#[test]
fn down_after_retries_plus_one_failures_and_up_on_the_first_good_one() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1+198.51.100.2",
    );
    let k = key(AdvisorKind::Connect, None, 80);
    let c = with(c, k.clone(), advisor(7.0, 2));
    let tk = TargetKey {
        advisor: k,
        cluster: ip(C1),
        server: ip("198.51.100.1"),
    };
    let t0 = Instant::now();
    let (mut s, mut probes) = started(&c, t0);
    let mut now = t0;
    for round in 0..3 {
        for p in probes.drain(..) {
            let o = if p.server == ip("198.51.100.1") {
                down()
            } else {
                up()
            };
            s.handle_result(now + ms(10), p.id, o);
        }
        let h = s.target(&tk).unwrap();
        assert_eq!(h.failures, round + 1);
        let expect = if round < 2 {
            State::Unknown
        } else {
            State::Down
        };
        assert_eq!(h.state, expect, "after {} failures", round + 1);
        assert_eq!(h.last_error.as_deref(), Some("connection refused"));
        now += ms(7000);
        probes = due(&mut s, now + ms(5));
    }
    assert!(s.is_down(ip(C1), 80, ip("198.51.100.1")));
    assert_eq!(
        events(&mut s),
        vec![Event::ServerDown {
            cluster: ip(C1),
            port: 80,
            server: ip("198.51.100.1"),
            advisor: AdvisorKind::Connect,
            reason: "connection refused".into()
        }]
    );
    // One good query brings it back.
    for p in probes.drain(..) {
        s.handle_result(now + ms(10), p.id, Outcome::Up { load: Some(42) });
    }
    let h = s.target(&tk).unwrap();
    assert_eq!((h.state, h.failures, h.load), (State::Up, 0, Some(42)));
    assert_eq!(h.last_error, None);
    assert_eq!(h.since, Some(now + ms(10)));
    let ev = events(&mut s);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].script(), "serverUp");
    // A failure after up with retries 2 does not take it down.
    now += ms(7000);
    for p in due(&mut s, now + ms(5)) {
        s.handle_result(now + ms(6), p.id, down());
    }
    assert_eq!(s.target(&tk).unwrap().state, State::Up);
    assert!(events(&mut s).is_empty());
}

#[test]
fn a_probe_without_result_fails_after_both_timeouts_plus_slack() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1",
    );
    let k = key(AdvisorKind::Http, None, 80);
    let c = with(c, k.clone(), advisor(7.0, 0));
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    let id = p[0].id;
    // connecttimeout 1 + receivetimeout 2 + 1 s slack.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(4000)));
    assert!(due(&mut s, t0 + ms(3999)).is_empty());
    assert!(
        due(&mut s, t0 + ms(4000)).is_empty(),
        "failed, not re-sent yet"
    );
    assert_eq!(s.stats().lost_probes, 1);
    let tk = TargetKey {
        advisor: k,
        cluster: ip(C1),
        server: ip("198.51.100.1"),
    };
    let h = s.target(&tk).unwrap();
    assert_eq!(h.state, State::Down);
    assert!(
        h.last_error
            .as_deref()
            .unwrap()
            .contains("no result within 4")
    );
    // The only server of the port: managerAlert, not serverDown.
    assert_eq!(
        events(&mut s),
        vec![Event::ManagerAlert {
            cluster: ip(C1),
            port: 80
        }]
    );
    // The late result is stale.
    s.handle_result(t0 + ms(4100), id, up());
    assert_eq!(s.stats().stale_results, 1);
    assert_eq!(s.target(&tk).unwrap().state, State::Down);
    // Next probe one interval after the lost one left.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(7000)));
}

#[test]
fn stale_and_unknown_ids_are_ignored_and_counted() {
    let c = with(
        sample(),
        key(AdvisorKind::Connect, None, 80),
        advisor(7.0, 0),
    );
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    s.handle_result(t0 + ms(1), ProbeId(999_999), down());
    s.handle_result(t0 + ms(1), p[0].id, up());
    s.handle_result(t0 + ms(2), p[0].id, down());
    assert_eq!(s.stats().stale_results, 2);
    assert_eq!(s.stats().results, 1);
    // A result of a removed target.
    let removed = p.iter().find(|p| p.cluster == ip(C2)).expect("C2 probe").id;
    let mut c2 = c.clone();
    c2.clusters.remove(&ip(C2));
    s.configure(t0 + ms(3), &c2);
    assert_eq!(s.len(), 3);
    s.handle_result(t0 + ms(4), removed, down());
    assert_eq!(s.stats().stale_results, 3);
    assert_eq!(s.in_flight(), 2);
}

#[test]
fn configure_keeps_states_adds_due_at_once_and_drops() {
    let k = key(AdvisorKind::Connect, None, 80);
    let c = with(sample(), k.clone(), advisor(7.0, 0));
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    for p in p {
        s.handle_result(t0 + ms(10), p.id, up());
    }
    // Add a server, remove one, change the interval.
    let mut c2 = c.clone();
    let port = c2
        .clusters
        .get_mut(&ip(C1))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    let mut srv = port.servers.remove(&ip("198.51.100.3")).unwrap();
    srv.address = ip("198.51.100.4");
    port.servers.insert(srv.address, srv);
    c2.health.advisors.get_mut(&k).unwrap().interval = 3.0;
    let t1 = t0 + ms(100);
    s.configure(t1, &c2);
    assert_eq!(s.len(), 4);
    let tk = |srv: &str| TargetKey {
        advisor: k.clone(),
        cluster: ip(C1),
        server: ip(srv),
    };
    assert_eq!(s.target(&tk("198.51.100.1")).unwrap().state, State::Up);
    assert!(s.target(&tk("198.51.100.3")).is_none());
    assert_eq!(s.target(&tk("198.51.100.4")).unwrap().state, State::Unknown);
    let p = due(&mut s, t1);
    assert_eq!(p.len(), 1, "the new server is due at once");
    assert_eq!(p[0].server, ip("198.51.100.4"));
    // The shorter interval applies to the kept ones from now on.
    assert_eq!(due(&mut s, t1 + ms(3000)).len(), 3);
    // Removing the advisor drops every target.
    let mut c3 = c2.clone();
    c3.health.advisors.clear();
    s.configure(t1 + ms(3001), &c3);
    assert!(s.is_empty());
    assert_eq!(s.poll_timeout(), None);
    assert!(s.report(t1, &k).is_none());
}

/// Runs one round at `now`: every due probe answered by `f(server)`.
fn round(s: &mut Scheduler, now: Instant, f: impl Fn(IpAddr) -> Outcome) {
    for p in due(s, now) {
        s.handle_result(now, p.id, f(p.server));
    }
}

#[test]
fn ibm_script_rules_last_down_alerts_first_up_clears() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1+198.51.100.2+198.51.100.3",
    );
    let c = with(c, key(AdvisorKind::Connect, None, 80), advisor(1.0, 0));
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.configure(t0, &c);
    s.set_running(t0, true);
    let mut now = t0 + ms(10);
    round(&mut s, now, |_| up());
    assert!(events(&mut s).is_empty(), "unknown → up raises nothing");
    let downs = std::cell::RefCell::new(std::collections::HashSet::new());
    let step = |s: &mut Scheduler, now: &mut Instant, srv: &str, go_down: bool| {
        if go_down {
            downs.borrow_mut().insert(ip(srv));
        } else {
            downs.borrow_mut().remove(&ip(srv));
        }
        *now += ms(1000);
        round(s, *now, |a| {
            if downs.borrow().contains(&a) {
                down()
            } else {
                up()
            }
        });
        events(s)
            .into_iter()
            .map(|e| match &e {
                Event::ServerDown { server, .. } | Event::ServerUp { server, .. } => {
                    format!("{} {}", e.script(), server)
                }
                _ => e.script().to_string(),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        step(&mut s, &mut now, "198.51.100.1", true),
        ["serverDown 198.51.100.1"]
    );
    assert_eq!(
        step(&mut s, &mut now, "198.51.100.2", true),
        ["serverDown 198.51.100.2"]
    );
    assert!(!s.port_all_down(ip(C1), 80));
    assert_eq!(
        step(&mut s, &mut now, "198.51.100.3", true),
        ["managerAlert"]
    );
    assert!(s.port_all_down(ip(C1), 80));
    assert!(
        step(&mut s, &mut now, "198.51.100.3", true).is_empty(),
        "once"
    );
    assert_eq!(
        step(&mut s, &mut now, "198.51.100.2", false),
        ["managerClear"]
    );
    assert_eq!(
        step(&mut s, &mut now, "198.51.100.1", false),
        ["serverUp 198.51.100.1"]
    );
    // The script environment.
    let e = Event::ServerDown {
        cluster: ip(C1),
        port: 80,
        server: ip("198.51.100.1"),
        advisor: AdvisorKind::Http,
        reason: "status 503".into(),
    };
    let env = e.env();
    assert!(env.contains(&("CLUSTER".into(), C1.into())));
    assert!(env.contains(&("PORT".into(), "80".into())));
    assert!(env.contains(&("SERVER".into(), "198.51.100.1".into())));
    assert!(env.contains(&("ADVISOR".into(), "http".into())));
    assert!(env.contains(&("REASON".into(), "status 503".into())));
}

#[test]
fn operator_down_servers_count_for_all_down() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1+198.51.100.2",
    );
    let c = with(c, key(AdvisorKind::Connect, None, 80), advisor(1.0, 0));
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    for p in p {
        s.handle_result(t0 + ms(5), p.id, up());
    }
    // The operator takes .2 down: no script.
    let mut c2 = c.clone();
    c2.clusters
        .get_mut(&ip(C1))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap()
        .servers
        .get_mut(&ip("198.51.100.2"))
        .unwrap()
        .down = true;
    s.configure(t0 + ms(10), &c2);
    assert!(events(&mut s).is_empty());
    // The advisor takes .1 down: the last one, so managerAlert.
    round(&mut s, t0 + ms(1000), |a| {
        if a == ip("198.51.100.1") {
            down()
        } else {
            up()
        }
    });
    assert_eq!(
        events(&mut s),
        vec![Event::ManagerAlert {
            cluster: ip(C1),
            port: 80
        }]
    );
    // The operator brings .2 back: managerClear.
    s.configure(t0 + ms(1100), &c);
    assert_eq!(
        events(&mut s),
        vec![Event::ManagerClear {
            cluster: ip(C1),
            port: 80
        }]
    );
}

#[test]
fn several_advisors_any_down_is_down_and_loads_split() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1+198.51.100.2",
    );
    let c = with(c, key(AdvisorKind::Connect, None, 80), advisor(1.0, 0));
    let c = with(c, key(AdvisorKind::Http, None, 80), advisor(1.0, 0));
    let c = with(
        c,
        key(AdvisorKind::Custom("ADV_cpu".into()), None, 80),
        advisor(1.0, 0),
    );
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    assert_eq!(p.len(), 6);
    let now = t0 + ms(1000);
    for p in p {
        let o = match (&p.kind, p.server == ip("198.51.100.1")) {
            (AdvisorKind::Http, true) => Outcome::Down {
                reason: "status 503".into(),
            },
            (AdvisorKind::Connect, _) => Outcome::Up { load: Some(3) },
            (AdvisorKind::Http, false) => Outcome::Up { load: Some(9) },
            _ => Outcome::Up { load: Some(70) },
        };
        s.handle_result(now, p.id, o);
    }
    let h = s.health(now, ip(C1), 80, ip("198.51.100.1")).unwrap();
    assert_eq!(h.state, State::Down);
    assert_eq!(h.reason.as_deref(), Some("http: status 503"));
    let h = s.health(now, ip(C1), 80, ip("198.51.100.2")).unwrap();
    assert_eq!(h.state, State::Up);
    assert_eq!(h.port_load, Some(9), "the largest built-in load");
    assert_eq!(h.system_load, Some(70), "the custom advisor's load");
    assert!(s.health(now, ip(C1), 81, ip("198.51.100.2")).is_none());
}

#[test]
fn an_up_report_past_timeout_is_unknown_a_down_one_stays() {
    let c = config(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add 192.0.2.100@80@198.51.100.1+198.51.100.2",
    );
    let k = key(AdvisorKind::Connect, None, 80);
    let mut a = advisor(7.0, 0);
    a.timeout = Some(10.0);
    let c = with(c, k.clone(), a);
    let t0 = Instant::now();
    let (mut s, p) = started(&c, t0);
    for p in p {
        let o = if p.server == ip("198.51.100.1") {
            up()
        } else {
            down()
        };
        s.handle_result(t0 + ms(10), p.id, o);
    }
    // Stop probing (standby) so nothing refreshes the reports.
    s.set_running(t0 + ms(20), false);
    let at = |t| {
        s.health(t0 + ms(t), ip(C1), 80, ip("198.51.100.1"))
            .unwrap()
    };
    assert_eq!((at(5000).state, at(5000).port_load), (State::Up, Some(5)));
    assert_eq!(
        (at(10_011).state, at(10_011).port_load),
        (State::Unknown, None)
    );
    let h2 = s
        .health(t0 + ms(1_000_000), ip(C1), 80, ip("198.51.100.2"))
        .unwrap();
    assert_eq!(h2.state, State::Down, "a down report is used however old");
    let r = s.report(t0 + ms(10_011), &k).unwrap();
    assert!(!r.running);
    assert_eq!(r.servers[0].state, State::Unknown);
    assert_eq!(r.servers[0].load, None);
    assert_eq!(r.servers[1].state, State::Down);
}
