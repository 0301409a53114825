//! The precedence of the overlay, rule by rule and together.

use super::*;
use crate::config::{Config, load_file};

const C: &str = "192.0.2.100";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(server: &str) -> ServerId {
    ServerId {
        cluster: ip(C),
        port: 80,
        server: ip(server),
    }
}

/// Port 80 (weightbound 20) with servers .11 (weight 10), .12 (weight 6), .13 (weight 4).
fn config() -> Config {
    load_file(
        "executor start\ncluster add 192.0.2.100\nport add 192.0.2.100@80\n\
         server add 192.0.2.100@80@192.0.2.11 weight 10\n\
         server add 192.0.2.100@80@192.0.2.12 weight 6\n\
         server add 192.0.2.100@80@192.0.2.13 weight 4\n",
        "t.cfg",
        &Config::default(),
    )
    .unwrap()
}

fn server_mut<'a>(c: &'a mut Config, s: &str) -> &'a mut crate::config::Server {
    c.clusters
        .get_mut(&ip(C))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap()
        .servers
        .get_mut(&ip(s))
        .unwrap()
}

fn down(servers: &[&str]) -> BTreeMap<ServerId, AdvisorInput> {
    servers
        .iter()
        .map(|s| {
            (
                id(s),
                AdvisorInput {
                    down: true,
                    ..AdvisorInput::default()
                },
            )
        })
        .collect()
}

fn member(weight: u16) -> SaspMember {
    SaspMember {
        weight,
        contact: true,
        quiesce: false,
        confident: true,
        steering: true,
    }
}

fn sasp(members: &[(&str, SaspMember)]) -> SaspInput {
    let mut s = SaspInput::default();
    for (srv, m) in members {
        s.add(id(srv), *m);
    }
    s
}

fn eff(o: &Overlay, s: &str) -> (u32, WeightSource) {
    let e = o.get(&id(s)).expect("server in overlay");
    (e.weight, e.source)
}

fn none() -> BTreeMap<ServerId, u32> {
    BTreeMap::new()
}

#[test]
fn nothing_running_gives_the_configured_weights() {
    let c = config();
    let o = Overlay::compute(&c, &BTreeMap::new(), &none(), &SaspInput::default());
    assert_eq!(eff(&o, "192.0.2.11"), (10, WeightSource::Config));
    assert_eq!(eff(&o, "192.0.2.12"), (6, WeightSource::Config));
    assert!(!o.all_down(ip(C), 80));
    // The empty overlay agrees for every server.
    let port = &c.clusters[&ip(C)].ports[&80];
    for s in port.servers.values() {
        let e = Overlay::default().effective(ip(C), port, s);
        assert_eq!(Some(&e), o.get(&id(&s.address.to_string())));
    }
}

#[test]
fn operator_down_and_quiesce_win_over_everything_but_all_down() {
    let mut c = config();
    c.health.manager.running = true;
    server_mut(&mut c, "192.0.2.11").down = true;
    server_mut(&mut c, "192.0.2.12").quiesced = true;
    let m: BTreeMap<_, _> = [(id("192.0.2.11"), 15), (id("192.0.2.12"), 15)].into();
    let s = sasp(&[("192.0.2.11", member(65535)), ("192.0.2.12", member(65535))]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &s);
    let e11 = *o.get(&id("192.0.2.11")).unwrap();
    let e12 = *o.get(&id("192.0.2.12")).unwrap();
    assert_eq!((e11.weight, e11.source), (0, WeightSource::OperatorDown));
    assert!(!e11.keeps_affinity, "down breaks affinity");
    assert_eq!((e12.weight, e12.source), (0, WeightSource::Quiesced));
    assert!(e12.keeps_affinity, "quiesce keeps affinity (IBM)");
    assert!(!e12.accepts_new());
    // The empty overlay applies them too.
    let port = &c.clusters[&ip(C)].ports[&80];
    let q = Overlay::default().effective(ip(C), port, &port.servers[&ip("192.0.2.12")]);
    assert_eq!(q, e12);
}

#[test]
fn advisor_down_is_zero_and_breaks_affinity() {
    let mut c = config();
    c.health.manager.running = true;
    let m: BTreeMap<_, _> = [(id("192.0.2.11"), 15)].into();
    let s = sasp(&[("192.0.2.11", member(65535))]);
    let o = Overlay::compute(&c, &down(&["192.0.2.11"]), &m, &s);
    let e = *o.get(&id("192.0.2.11")).unwrap();
    assert_eq!((e.weight, e.source), (0, WeightSource::AdvisorDown));
    assert!(!e.keeps_affinity);
    // Loads without down change nothing here.
    let up: BTreeMap<_, _> = [(
        id("192.0.2.12"),
        AdvisorInput {
            down: false,
            load: Some(30),
            system: None,
        },
    )]
    .into();
    let o = Overlay::compute(&c, &up, &none(), &SaspInput::default());
    assert_eq!(eff(&o, "192.0.2.12"), (6, WeightSource::Config));
}

#[test]
fn all_down_spreads_half_the_weightbound_over_every_server() {
    let mut c = config();
    // Two by the advisors, one by the operator: all down.
    server_mut(&mut c, "192.0.2.13").down = true;
    let o = Overlay::compute(
        &c,
        &down(&["192.0.2.11", "192.0.2.12"]),
        &none(),
        &SaspInput::default(),
    );
    assert!(o.all_down(ip(C), 80));
    assert_eq!(o.all_down_ports().collect::<Vec<_>>(), vec![(ip(C), 80)]);
    for s in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
        assert_eq!(eff(&o, s), (10, WeightSource::AllDown), "{s}");
        assert!(o.get(&id(s)).unwrap().accepts_new());
    }
    // One back: it alone takes new connections again.
    let o = Overlay::compute(&c, &down(&["192.0.2.11"]), &none(), &SaspInput::default());
    assert!(!o.all_down(ip(C), 80));
    assert_eq!(eff(&o, "192.0.2.11"), (0, WeightSource::AdvisorDown));
    assert_eq!(eff(&o, "192.0.2.12"), (6, WeightSource::Config));
    assert_eq!(eff(&o, "192.0.2.13"), (0, WeightSource::OperatorDown));
}

#[test]
fn all_down_with_weightbound_1_still_spreads() {
    let mut c = config();
    let port = c
        .clusters
        .get_mut(&ip(C))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    port.weightbound = 1;
    for s in port.servers.values_mut() {
        s.weight = 1;
    }
    let all = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
    let o = Overlay::compute(&c, &down(&all), &none(), &SaspInput::default());
    for s in all {
        assert_eq!(eff(&o, s), (1, WeightSource::AllDown));
    }
}

#[test]
fn quiesced_servers_are_not_down_for_the_all_down_rule() {
    let mut c = config();
    server_mut(&mut c, "192.0.2.13").quiesced = true;
    let o = Overlay::compute(
        &c,
        &down(&["192.0.2.11", "192.0.2.12"]),
        &none(),
        &SaspInput::default(),
    );
    assert!(!o.all_down(ip(C), 80));
    assert_eq!(eff(&o, "192.0.2.13"), (0, WeightSource::Quiesced));
}

#[test]
fn sasp_weights_are_converted_to_the_weightbound() {
    assert_eq!(sasp_weight(0, 20), 0);
    assert_eq!(sasp_weight(65535, 20), 20);
    assert_eq!(sasp_weight(32768, 20), 10);
    assert_eq!(sasp_weight(1, 20), 1, "a raw weight above 0 stays above 0");
    assert_eq!(sasp_weight(65535, 100), 100);
    assert_eq!(sasp_weight(65535, 1), 1);
    // 10000 * 20 / 65535 = 3.05 → 3; 11000 * 20 / 65535 = 3.36 → 3; 12000 → 3.66 → 4.
    assert_eq!(sasp_weight(10000, 20), 3);
    assert_eq!(sasp_weight(12000, 20), 4);
    let mut c = config();
    c.health.manager.running = true;
    let m: BTreeMap<_, _> = [(id("192.0.2.11"), 2), (id("192.0.2.12"), 2)].into();
    let s = sasp(&[("192.0.2.11", member(65535)), ("192.0.2.12", member(16384))]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &s);
    assert_eq!(eff(&o, "192.0.2.11"), (20, WeightSource::Sasp));
    assert_eq!(eff(&o, "192.0.2.12"), (5, WeightSource::Sasp));
    // .13 has no member entry: the lower rules (config here; the manager has none for it).
    assert_eq!(eff(&o, "192.0.2.13"), (4, WeightSource::Config));
}

#[test]
fn sasp_contact_quiesce_and_confident_flags() {
    let c = config();
    let no_contact = SaspMember {
        contact: false,
        ..member(65535)
    };
    let quiesce = SaspMember {
        quiesce: true,
        ..member(65535)
    };
    let unsure = SaspMember {
        confident: false,
        ..member(65535)
    };
    let s = sasp(&[
        ("192.0.2.11", no_contact),
        ("192.0.2.12", quiesce),
        ("192.0.2.13", member(65535)),
    ]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &none(), &s);
    let e11 = *o.get(&id("192.0.2.11")).unwrap();
    let e12 = *o.get(&id("192.0.2.12")).unwrap();
    assert_eq!((e11.weight, e11.source), (0, WeightSource::Sasp));
    assert!(!e11.keeps_affinity, "no contact: avoid the member");
    assert_eq!((e12.weight, e12.source), (0, WeightSource::Sasp));
    assert!(e12.keeps_affinity, "QUIESCE is a quiesce");
    assert_eq!(eff(&o, "192.0.2.13"), (20, WeightSource::Sasp));

    // Some confident: the others are avoided.
    let s = sasp(&[("192.0.2.11", unsure), ("192.0.2.12", member(65535))]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &none(), &s);
    assert_eq!(eff(&o, "192.0.2.11"), (0, WeightSource::Sasp));
    assert_eq!(eff(&o, "192.0.2.12"), (20, WeightSource::Sasp));

    // None confident: the GWM is disregarded for the port.
    let s = sasp(&[("192.0.2.11", unsure), ("192.0.2.12", unsure)]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &none(), &s);
    assert_eq!(eff(&o, "192.0.2.11"), (10, WeightSource::Config));
    assert_eq!(eff(&o, "192.0.2.12"), (6, WeightSource::Config));
}

#[test]
fn sasp_after_grace_falls_back_to_the_manager() {
    let mut c = config();
    c.health.manager.running = true;
    let m: BTreeMap<_, _> = [(id("192.0.2.11"), 7)].into();
    let lost = SaspMember {
        steering: false,
        ..member(65535)
    };
    let s = sasp(&[("192.0.2.11", lost)]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &s);
    assert_eq!(eff(&o, "192.0.2.11"), (7, WeightSource::Manager));
    // Steering again (in contact or within grace): the GWM decides.
    let s = sasp(&[("192.0.2.11", member(32768))]);
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &s);
    assert_eq!(eff(&o, "192.0.2.11"), (10, WeightSource::Sasp));
}

#[test]
fn sasp_reports_of_two_gwms_combine() {
    let mut s = SaspInput::default();
    let lost = SaspMember {
        steering: false,
        ..member(100)
    };
    s.add(id("192.0.2.11"), lost);
    s.add(id("192.0.2.11"), member(1000));
    assert_eq!(s.members[&id("192.0.2.11")], member(1000), "steering wins");
    s.add(id("192.0.2.11"), lost);
    assert_eq!(
        s.members[&id("192.0.2.11")],
        member(1000),
        "lost one ignored"
    );
    s.add(
        id("192.0.2.11"),
        SaspMember {
            quiesce: true,
            ..member(3000)
        },
    );
    let m = s.members[&id("192.0.2.11")];
    assert_eq!((m.weight, m.quiesce, m.contact), (2000, true, true));
}

#[test]
fn manager_weights_apply_only_while_it_runs_and_never_to_fixedweight() {
    let mut c = config();
    server_mut(&mut c, "192.0.2.12").fixedweight = true;
    let m: BTreeMap<_, _> = [
        (id("192.0.2.11"), 3),
        (id("192.0.2.12"), 3),
        (id("192.0.2.13"), 50),
    ]
    .into();
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &SaspInput::default());
    assert_eq!(eff(&o, "192.0.2.11"), (10, WeightSource::Config), "stopped");
    c.health.manager.running = true;
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &SaspInput::default());
    assert_eq!(eff(&o, "192.0.2.11"), (3, WeightSource::Manager));
    assert_eq!(eff(&o, "192.0.2.12"), (6, WeightSource::Fixed));
    assert_eq!(
        eff(&o, "192.0.2.13"),
        (20, WeightSource::Manager),
        "never above the weightbound"
    );
}

#[test]
fn fixedweight_yields_to_sasp_and_to_down() {
    let mut c = config();
    c.health.manager.running = true;
    server_mut(&mut c, "192.0.2.11").fixedweight = true;
    server_mut(&mut c, "192.0.2.12").fixedweight = true;
    let s = sasp(&[("192.0.2.11", member(65535))]);
    let o = Overlay::compute(&c, &down(&["192.0.2.12"]), &none(), &s);
    assert_eq!(eff(&o, "192.0.2.11"), (20, WeightSource::Sasp));
    assert_eq!(eff(&o, "192.0.2.12"), (0, WeightSource::AdvisorDown));
}

#[test]
fn configured_weight_zero_takes_no_new_and_keeps_no_affinity() {
    let mut c = config();
    server_mut(&mut c, "192.0.2.11").weight = 0;
    let o = Overlay::compute(&c, &BTreeMap::new(), &none(), &SaspInput::default());
    let e = *o.get(&id("192.0.2.11")).unwrap();
    assert_eq!((e.weight, e.source), (0, WeightSource::Config));
    assert!(!e.accepts_new() && !e.keeps_affinity);
}

#[test]
fn source_names_are_the_report_words() {
    let all = [
        (WeightSource::Config, "config"),
        (WeightSource::Manager, "manager"),
        (WeightSource::Sasp, "sasp"),
        (WeightSource::AdvisorDown, "advisor-down"),
        (WeightSource::OperatorDown, "operator-down"),
        (WeightSource::Quiesced, "quiesced"),
        (WeightSource::AllDown, "all-down"),
        (WeightSource::Fixed, "fixed"),
    ];
    for (s, word) in all {
        assert_eq!(s.name(), word);
        assert_eq!(serde_json::to_value(s).unwrap(), word);
    }
}

#[test]
fn servers_of_other_ports_are_independent() {
    let mut c = load_file(
        "executor start\ncluster add 192.0.2.100\nport add 192.0.2.100@80+443\n\
         server add 192.0.2.100@80+443@192.0.2.11\n",
        "t.cfg",
        &Config::default(),
    )
    .unwrap();
    c.health.manager.running = true;
    let o = Overlay::compute(&c, &down(&["192.0.2.11"]), &none(), &SaspInput::default());
    assert!(o.all_down(ip(C), 80));
    assert!(!o.all_down(ip(C), 443));
    let on443 = ServerId {
        port: 443,
        ..id("192.0.2.11")
    };
    assert_eq!(o.get(&on443).unwrap().source, WeightSource::Config);
    assert_eq!(o.servers().count(), 2);
}

#[test]
fn a_server_added_after_the_overlay_gets_the_configuration_rules() {
    let mut c = config();
    let o = Overlay::compute(&c, &down(&["192.0.2.11"]), &none(), &SaspInput::default());
    let port = c
        .clusters
        .get_mut(&ip(C))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    let mut s = port.servers[&ip("192.0.2.12")].clone();
    s.address = ip("192.0.2.14");
    s.weight = 7;
    let e = o.effective(ip(C), port, &s);
    assert_eq!((e.weight, e.source), (7, WeightSource::Config));
}

#[test]
fn a_configuration_newer_than_the_overlay_still_counts() {
    let mut c = config();
    c.health.manager.running = true;
    let m: BTreeMap<_, _> = [(id("192.0.2.11"), 15)].into();
    let o = Overlay::compute(&c, &BTreeMap::new(), &m, &SaspInput::default());
    server_mut(&mut c, "192.0.2.11").down = true;
    server_mut(&mut c, "192.0.2.12").weight = 2;
    server_mut(&mut c, "192.0.2.13").quiesced = true;
    let port = &c.clusters[&ip(C)].ports[&80];
    let e = |s: &str| {
        let e = o.effective(ip(C), port, &port.servers[&ip(s)]);
        (e.weight, e.source)
    };
    assert_eq!(e("192.0.2.11"), (0, WeightSource::OperatorDown));
    assert_eq!(e("192.0.2.12"), (2, WeightSource::Config));
    assert_eq!(e("192.0.2.13"), (0, WeightSource::Quiesced));
    // A smaller weightbound caps the manager's weight.
    server_mut(&mut c, "192.0.2.11").down = false;
    let port = c
        .clusters
        .get_mut(&ip(C))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap();
    port.weightbound = 12;
    let e = o.effective(ip(C), port, &port.servers[&ip("192.0.2.11")]);
    assert_eq!((e.weight, e.source), (12, WeightSource::Manager));
}

#[test]
fn all_down_changes_name_the_alert_and_the_clear() {
    let mut c = config();
    let all = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
    let up = Overlay::compute(&c, &BTreeMap::new(), &none(), &SaspInput::default());
    let two = Overlay::compute(&c, &down(&all[..2]), &none(), &SaspInput::default());
    let gone = Overlay::compute(&c, &down(&all), &none(), &SaspInput::default());
    assert!(two.all_down_changes(&up).is_empty());
    assert_eq!(gone.all_down_changes(&two), vec![(ip(C), 80, true)]);
    assert!(gone.all_down_changes(&gone).is_empty(), "once");
    assert_eq!(two.all_down_changes(&gone), vec![(ip(C), 80, false)]);
    // The port removed while all down: no clear.
    c.clusters.get_mut(&ip(C)).unwrap().ports.clear();
    let empty = Overlay::compute(&c, &BTreeMap::new(), &none(), &SaspInput::default());
    assert!(empty.all_down_changes(&gone).is_empty());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Srv {
        weight: u32,
        fixed: bool,
        down: bool,
        quiesced: bool,
        advisor_down: bool,
        manager: Option<u32>,
        sasp: Option<(u16, u8, bool)>,
    }

    fn srv() -> impl Strategy<Value = Srv> {
        (
            0u32..=120,
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.3),
            prop::option::of(0u32..=200),
            prop::option::of((any::<u16>(), 0u8..16, any::<bool>())),
        )
            .prop_map(
                |(weight, fixed, down, quiesced, advisor_down, manager, sasp)| Srv {
                    weight,
                    fixed,
                    down,
                    quiesced,
                    advisor_down,
                    manager,
                    sasp,
                },
            )
    }

    proptest! {
        /// Whatever the inputs: weights within [0, weightbound], accepts_new ⇔ weight > 0,
        /// a server that takes new clients keeps its affinity ones, all-down exactly when
        /// every server is down by the operator or an advisor, and then everybody takes new
        /// connections.
        #[test]
        fn overlay_invariants(
            weightbound in 1u32..=100,
            running in any::<bool>(),
            servers in prop::collection::vec(srv(), 0..8),
        ) {
            let mut c = config();
            c.health.manager.running = running;
            let port = c.clusters.get_mut(&ip(C)).unwrap().ports.get_mut(&80).unwrap();
            port.weightbound = weightbound;
            let template = port.servers[&ip("192.0.2.11")].clone();
            port.servers.clear();
            let mut advisor = BTreeMap::new();
            let mut manager = BTreeMap::new();
            let mut sasp = SaspInput::default();
            for (i, s) in servers.iter().enumerate() {
                let addr = IpAddr::from([192, 0, 2, 20 + i as u8]);
                let mut srv = template.clone();
                srv.address = addr;
                srv.weight = s.weight.min(weightbound);
                srv.fixedweight = s.fixed;
                srv.down = s.down;
                srv.quiesced = s.quiesced;
                port.servers.insert(addr, srv);
                let sid = ServerId { cluster: ip(C), port: 80, server: addr };
                advisor.insert(sid, AdvisorInput { down: s.advisor_down, ..AdvisorInput::default() });
                if let Some(w) = s.manager {
                    manager.insert(sid, w);
                }
                if let Some((w, flags, steering)) = s.sasp {
                    sasp.add(sid, SaspMember {
                        weight: w,
                        contact: flags & 1 != 0,
                        quiesce: flags & 2 != 0,
                        confident: flags & 8 != 0,
                        steering,
                    });
                }
            }
            let o = Overlay::compute(&c, &advisor, &manager, &sasp);
            let all_down = !servers.is_empty() && servers.iter().all(|s| s.down || s.advisor_down);
            prop_assert_eq!(o.all_down(ip(C), 80), all_down);
            prop_assert_eq!(o.servers().count(), servers.len());
            for (sid, e) in o.servers() {
                prop_assert!(e.weight <= weightbound);
                prop_assert_eq!(e.accepts_new(), e.weight > 0);
                if e.accepts_new() {
                    prop_assert!(e.keeps_affinity);
                }
                if all_down {
                    prop_assert_eq!(e.source, WeightSource::AllDown);
                    prop_assert!(e.weight >= 1);
                }
                let i = usize::from(match sid.server { IpAddr::V4(a) => a.octets()[3] - 20, _ => unreachable!() });
                let s = &servers[i];
                if !all_down && (s.down || s.advisor_down || s.quiesced) {
                    prop_assert_eq!(e.weight, 0);
                }
                if e.source == WeightSource::Manager {
                    prop_assert!(running && !s.fixed);
                }
            }
        }
    }
}
