//! The manager's computation in numbers.

use super::*;
use crate::config::load_file;
use crate::health::{Overlay, SaspInput, WeightSource};

const C: &str = "192.0.2.100";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(last: u8) -> ServerId {
    ServerId {
        cluster: ip(C),
        port: 80,
        server: IpAddr::from([192, 0, 2, last]),
    }
}

/// Port 80 (weightbound 20) with servers .11, .12, .13 at the default weight (10), the
/// manager started with IBM's defaults (interval 2, sensitivity 5, smoothing 1.5) and
/// proportions 50/50/0/0.
fn config(extra: &str) -> Config {
    let mut c = load_file(
        &format!(
            "executor start\ncluster add 192.0.2.100\nport add 192.0.2.100@80\n\
             server add 192.0.2.100@80@192.0.2.11+192.0.2.12+192.0.2.13\n{extra}"
        ),
        "t.cfg",
        &Config::default(),
    )
    .unwrap();
    c.health.manager.running = true;
    c
}

fn sample(last: u8, active: u64, total: u64) -> ServerSample {
    ServerSample {
        id: id(last),
        active,
        total,
    }
}

fn weights(m: &Manager, lasts: &[u8]) -> Vec<u32> {
    lasts.iter().map(|l| m.weights()[&id(*l)]).collect()
}

fn no_advisor() -> BTreeMap<ServerId, AdvisorInput> {
    BTreeMap::new()
}

fn port_mut(c: &mut Config) -> &mut crate::config::Port {
    c.clusters
        .get_mut(&ip(C))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap()
}

/// The acceptance case of issue 8, worked through in docs/manager.md: .11 holds 50
/// long-lived connections, .12 and .13 are idle.
#[test]
fn busy_server_gets_a_lower_weight_than_its_idle_peers_within_three_intervals() {
    let t0 = Instant::now();
    let c = config("");
    let mut m = Manager::new();
    m.configure(&c, t0);
    assert_eq!(
        weights(&m, &[11, 12, 13]),
        [10, 10, 10],
        "starts from the config"
    );
    assert_eq!(m.poll_timeout(), Some(t0), "computes at once");
    let s = [sample(11, 50, 50), sample(12, 0, 0), sample(13, 0, 0)];
    let mut seen = Vec::new();
    let mut t = t0;
    for _ in 0..3 {
        assert_eq!(m.poll_timeout(), Some(t));
        m.handle_timeout(t, &s, &no_advisor());
        seen.push(weights(&m, &[11, 12, 13]));
        t += Duration::from_secs(2);
    }
    // Targets: .11 = 1 + 19·(0.5·1/51 + 0.5·1) = 10.686, idle = 20. Damped by 1.5:
    // .11 10 → 10.457 → 10.610 → 10.661; idle 10 → 16.667 → 18.889 → 19.630.
    // Interval 3 would move the rounded total by 2 of 49 (4 %): not pushed.
    assert_eq!(seen, [[10, 17, 17], [11, 19, 19], [11, 19, 19]]);
    assert!(seen[0][0] < seen[0][1] && seen[0][0] < seen[0][2]);
    let o = Overlay::compute(&c, &no_advisor(), m.weights(), &SaspInput::default());
    let e = o.get(&id(11)).unwrap();
    assert_eq!((e.weight, e.source), (11, WeightSource::Manager));
}

#[test]
fn fixedweight_servers_are_never_changed() {
    let t0 = Instant::now();
    let c = config("server set 192.0.2.100@80@192.0.2.12 weight 4 fixedweight yes\n");
    let mut m = Manager::new();
    m.configure(&c, t0);
    let s = [sample(11, 50, 50), sample(12, 0, 0), sample(13, 0, 0)];
    for i in 0..5 {
        m.handle_timeout(t0 + Duration::from_secs(2 * i), &s, &no_advisor());
    }
    assert!(!m.weights().contains_key(&id(12)));
    let o = Overlay::compute(&c, &no_advisor(), m.weights(), &SaspInput::default());
    let e = o.get(&id(12)).unwrap();
    assert_eq!((e.weight, e.source), (4, WeightSource::Fixed));
    // The others are computed among themselves: .11 busy, .13 idle.
    assert!(m.weights()[&id(11)] < m.weights()[&id(13)]);
}

/// IBM's example: a total of 100 becoming 105 is not pushed at sensitivity 5, 106 is.
/// Two servers at 50 (weightbound 100), proportions 0/0/100/0 with port loads 0 and 1:
/// targets 100 and 50.5; the smoothing index sets how far .11 moves in one interval
/// (.12 stays at 50).
#[test]
fn sensitivity_threshold_is_exact() {
    let t0 = Instant::now();
    for (smoothing, moved_to, pushed) in [(10.0, 55, false), (50.0 / 6.0, 56, true)] {
        let mut c = config("");
        let port = port_mut(&mut c);
        port.weightbound = 100;
        port.servers.remove(&IpAddr::from([192, 0, 2, 13]));
        for s in port.servers.values_mut() {
            s.weight = 50;
        }
        c.clusters.get_mut(&ip(C)).unwrap().proportions = Proportions {
            active: 0,
            new: 0,
            port: 100,
            system: 0,
        };
        c.health.manager.smoothing = smoothing;
        let mut m = Manager::new();
        m.configure(&c, t0);
        let loads: BTreeMap<_, _> = [(id(11), 0), (id(12), 1)]
            .into_iter()
            .map(|(i, l)| {
                (
                    i,
                    AdvisorInput {
                        down: false,
                        load: Some(l),
                        system: None,
                    },
                )
            })
            .collect();
        let changed = m.handle_timeout(t0, &[], &loads);
        assert_eq!(changed, pushed, "smoothing {smoothing}");
        let p = &m.ports[&(ip(C), 80)].servers;
        let proposed = [
            p[&IpAddr::from([192, 0, 2, 11])].current.round() as u32,
            p[&IpAddr::from([192, 0, 2, 12])].current.round() as u32,
        ];
        assert_eq!(proposed, [moved_to, 50]);
        let expect = if pushed { [moved_to, 50] } else { [50, 50] };
        assert_eq!(weights(&m, &[11, 12]), expect);
    }
}

#[test]
fn smoothing_converges_geometrically() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.sensitivity = 0;
    c.health.manager.smoothing = 4.0;
    let mut m = Manager::new();
    m.configure(&c, t0);
    // Everyone idle: target 20, from 10.
    let s = [sample(11, 0, 0), sample(12, 0, 0), sample(13, 0, 0)];
    let mut path = Vec::new();
    for i in 0..12 {
        m.handle_timeout(t0 + Duration::from_secs(2 * i), &s, &no_advisor());
        path.push(m.weights()[&id(11)]);
    }
    // 20 − 10·0.75ⁿ: 12.5, 14.4, 15.8, 16.8, 17.6, 18.2, 18.7, 19.0, 19.2, 19.4, 19.6, 19.7.
    assert_eq!(path, [13, 14, 16, 17, 18, 18, 19, 19, 19, 19, 20, 20]);
    // Smoothing 1: no damping, the target at once.
    c.health.manager.smoothing = 1.0;
    let mut m = Manager::new();
    m.configure(&c, t0);
    m.handle_timeout(t0, &s, &no_advisor());
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 20, 20]);
}

#[test]
fn weightbound_1_gives_weight_1_whatever_the_load() {
    let t0 = Instant::now();
    let mut c = config("");
    let port = port_mut(&mut c);
    port.weightbound = 1;
    for s in port.servers.values_mut() {
        s.weight = 1;
    }
    let mut m = Manager::new();
    m.configure(&c, t0);
    let s = [sample(11, 500, 500), sample(12, 0, 0), sample(13, 3, 9)];
    for i in 0..3 {
        m.handle_timeout(t0 + Duration::from_secs(2 * i), &s, &no_advisor());
        assert_eq!(weights(&m, &[11, 12, 13]), [1, 1, 1]);
    }
}

#[test]
fn all_inputs_zero_gives_equal_weights_at_the_weightbound() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.smoothing = 1.0;
    let mut m = Manager::new();
    m.configure(&c, t0);
    assert!(
        m.handle_timeout(t0, &[], &no_advisor()),
        "no samples: all zero"
    );
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 20, 20]);
    let s = [sample(11, 0, 0), sample(12, 0, 0), sample(13, 0, 0)];
    assert!(!m.handle_timeout(t0 + Duration::from_secs(2), &s, &no_advisor()));
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 20, 20]);
}

#[test]
fn new_connections_are_the_difference_of_totals() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.smoothing = 1.0;
    c.clusters.get_mut(&ip(C)).unwrap().proportions = Proportions {
        active: 0,
        new: 100,
        port: 0,
        system: 0,
    };
    let mut m = Manager::new();
    m.configure(&c, t0);
    // First interval: the baseline (no new counted), all equal.
    m.handle_timeout(t0, &[sample(11, 0, 1000), sample(12, 0, 0)], &no_advisor());
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 20, 20]);
    // Then .11 got 9 new, .12 none, .13 none: (0+1)/(9+1) = 0.1 → 1 + 19·0.1 = 2.9 → 3.
    let t1 = t0 + Duration::from_secs(2);
    m.handle_timeout(t1, &[sample(11, 0, 1009), sample(12, 0, 0)], &no_advisor());
    assert_eq!(weights(&m, &[11, 12, 13]), [3, 20, 20]);
    let r = m.report(&c, &Overlay::default(), &[]);
    assert_eq!(r.ports[0].servers[0].new, 9);
    // Counters that started again count from 0.
    let t2 = t1 + Duration::from_secs(2);
    m.handle_timeout(t2, &[sample(11, 0, 0), sample(12, 0, 0)], &no_advisor());
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 20, 20]);
}

#[test]
fn down_and_quiesced_servers_are_left_out_and_keep_their_weight() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.smoothing = 1.0;
    port_mut(&mut c)
        .servers
        .get_mut(&IpAddr::from([192, 0, 2, 13]))
        .unwrap()
        .quiesced = true;
    let mut m = Manager::new();
    m.configure(&c, t0);
    let adv: BTreeMap<_, _> = [(
        id(12),
        AdvisorInput {
            down: true,
            ..AdvisorInput::default()
        },
    )]
    .into();
    // .11 is the only one computed: alone, it scores 1 whatever its load.
    m.handle_timeout(t0, &[sample(11, 40, 40)], &adv);
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 10, 10]);
}

#[test]
fn port_and_system_loads_count_by_their_proportions_and_missing_ones_warn() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.smoothing = 1.0;
    c.health.manager.sensitivity = 0;
    c.clusters.get_mut(&ip(C)).unwrap().proportions = Proportions {
        active: 0,
        new: 0,
        port: 50,
        system: 50,
    };
    let mut m = Manager::new();
    m.configure(&c, t0);
    let load = |l: u32| AdvisorInput {
        down: false,
        load: Some(l),
        system: None,
    };
    // Port loads 9, 19, (missing = mean 14): scores 1, 0.5, 10/15; no system input.
    let adv: BTreeMap<_, _> = [(id(11), load(9)), (id(12), load(19))].into();
    m.handle_timeout(t0, &[], &adv);
    // 1 + 19·score: 20, 10.5 → 11 (half away from zero), 13.67 → 14.
    assert_eq!(weights(&m, &[11, 12, 13]), [20, 11, 14]);
    assert_eq!(m.warnings().len(), 1, "{:?}", m.warnings());
    assert!(m.warnings()[0].contains("system load 50%"));
    // With a system load the warning goes.
    let mut adv = adv;
    for l in [11, 12, 13] {
        adv.entry(id(l)).or_insert(load(14)).system = Some(5);
    }
    m.handle_timeout(t0 + Duration::from_secs(2), &[], &adv);
    assert!(m.warnings().is_empty());
}

#[test]
fn timing_stop_and_restart() {
    let t0 = Instant::now();
    let mut c = config("");
    let mut m = Manager::new();
    m.configure(&c, t0);
    assert!(m.handle_timeout(t0, &[], &no_advisor()));
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    assert!(
        !m.handle_timeout(t0 + Duration::from_secs(1), &[], &no_advisor()),
        "not due yet"
    );
    c.health.manager.interval = 0.5;
    m.configure(&c, t0 + Duration::from_secs(1));
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
    c.health.manager.running = false;
    m.configure(&c, t0 + Duration::from_secs(1));
    assert_eq!(m.poll_timeout(), None);
    assert!(m.weights().is_empty());
    assert!(!m.handle_timeout(t0 + Duration::from_secs(9), &[], &no_advisor()));
    // A new start begins from the configured weights again.
    c.health.manager.running = true;
    m.configure(&c, t0 + Duration::from_secs(10));
    assert_eq!(weights(&m, &[11, 12, 13]), [10, 10, 10]);
}

#[test]
fn servers_added_start_from_their_configured_weight_and_removed_ones_go() {
    let t0 = Instant::now();
    let mut c = config("");
    c.health.manager.smoothing = 1.0;
    let mut m = Manager::new();
    m.configure(&c, t0);
    m.handle_timeout(t0, &[], &no_advisor());
    let port = port_mut(&mut c);
    port.servers.remove(&IpAddr::from([192, 0, 2, 13]));
    let mut s = port.servers[&IpAddr::from([192, 0, 2, 11])].clone();
    s.address = IpAddr::from([192, 0, 2, 14]);
    s.weight = 3;
    port.servers.insert(s.address, s);
    m.configure(&c, t0 + Duration::from_secs(1));
    assert!(!m.weights().contains_key(&id(13)));
    assert_eq!(weights(&m, &[11, 12, 14]), [20, 20, 3]);
}

#[test]
fn report_has_inputs_effective_weights_and_sources() {
    let t0 = Instant::now();
    let c = config("server set 192.0.2.100@80@192.0.2.12 fixedweight yes\n");
    let mut m = Manager::new();
    m.configure(&c, t0);
    m.handle_timeout(t0, &[sample(11, 50, 50)], &no_advisor());
    let o = Overlay::compute(&c, &no_advisor(), m.weights(), &SaspInput::default());
    let r = m.report(&c, &o, &[]);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["running"], true);
    let p = &json["ports"][0];
    assert_eq!(
        (p["cluster"].as_str(), p["port"].as_u64()),
        (Some(C), Some(80))
    );
    assert_eq!(p["all_down"], false);
    let s11 = &p["servers"][0];
    assert_eq!(s11["server"], "192.0.2.11");
    assert_eq!(s11["active"], 50);
    assert_eq!(s11["new"], 0);
    assert_eq!(s11["source"], "manager");
    assert_eq!(s11["weight"], s11["manager_weight"]);
    assert!(s11["port_load"].is_null() && s11["system_load"].is_null());
    assert_eq!(p["servers"][1]["source"], "fixed");
    assert!(p["servers"][1]["manager_weight"].is_null());
    // A cluster filter that matches nothing.
    let none = m.report(&c, &o, &[ip("198.51.100.1")]);
    assert!(none.ports.is_empty());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any counters, loads and settings: computed weights stay within [1, weightbound]
        /// (fixed ones are never in the map), and nothing panics.
        #[test]
        fn weights_stay_within_bounds(
            weightbound in 1u32..=100,
            smoothing in 1.0f64..10.0,
            sensitivity in 0u32..=100,
            props in (0u32..=100, 0u32..=100, 0u32..=100),
            rounds in prop::collection::vec(
                prop::collection::vec((any::<u64>(), any::<u64>(), prop::option::of(any::<u32>()), prop::option::of(any::<u32>()), any::<bool>()), 3),
                1..6,
            ),
        ) {
            let t0 = Instant::now();
            let mut c = config("server set 192.0.2.100@80@192.0.2.13 fixedweight yes\n");
            c.health.manager.smoothing = smoothing;
            c.health.manager.sensitivity = sensitivity;
            let (a, n, p) = props;
            let total = a + n + p;
            let scale = |x: u32| if total > 100 { x * 100 / total } else { x };
            let (a, n, p) = (scale(a), scale(n), scale(p));
            c.clusters.get_mut(&ip(C)).unwrap().proportions =
                Proportions { active: a, new: n, port: p, system: 100 - a - n - p };
            let port = port_mut(&mut c);
            port.weightbound = weightbound;
            for s in port.servers.values_mut() {
                s.weight = s.weight.min(weightbound);
            }
            let mut m = Manager::new();
            m.configure(&c, t0);
            for (k, round) in rounds.iter().enumerate() {
                let mut samples = Vec::new();
                let mut adv = BTreeMap::new();
                for (j, (active, total, load, system, down)) in round.iter().enumerate() {
                    let sid = id(11 + j as u8);
                    samples.push(ServerSample { id: sid, active: *active, total: *total });
                    adv.insert(sid, AdvisorInput { down: *down, load: *load, system: *system });
                }
                m.handle_timeout(t0 + Duration::from_secs(2 * k as u64), &samples, &adv);
                prop_assert!(!m.weights().contains_key(&id(13)));
                for w in m.weights().values() {
                    prop_assert!((1..=weightbound).contains(w), "{w} of {weightbound}");
                }
            }
        }
    }
}
