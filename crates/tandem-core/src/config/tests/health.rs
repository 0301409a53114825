//! `sasp ...`, and what every health command shares: queries, range checks, canonical display.

use super::*;

#[test]
fn sasp_grammar() {
    let group = |c: &str, p: Option<u16>| SaspGroupTarget {
        cluster: ip(c),
        port: p,
    };
    assert_eq!(
        cmd("sasp add 192.0.2.100@80 gwm 198.51.100.7"),
        Command::SaspAdd {
            group: group("192.0.2.100", Some(80)),
            gwm: (ip("198.51.100.7"), DEFAULT_SASP_PORT),
            settings: SaspGwm::default(),
        }
    );
    assert_eq!(
        cmd(
            "sa add 192.0.2.100 gwm 2001:db8::7 port 4000 mode pull members changed interval 5 grace 0 tls yes"
        ),
        Command::SaspAdd {
            group: group("192.0.2.100", None),
            gwm: (ip("2001:db8::7"), 4000),
            settings: SaspGwm {
                mode: SaspMode::Pull,
                changed_only: true,
                interval: Some(5.0),
                grace: 0.0,
                tls: true,
            },
        }
    );
    assert_eq!(
        cmd("sasp add 192.0.2.100 gwm 198.51.100.7 mem all mo push g 12.5 t no"),
        Command::SaspAdd {
            group: group("192.0.2.100", None),
            gwm: (ip("198.51.100.7"), DEFAULT_SASP_PORT),
            settings: SaspGwm {
                grace: 12.5,
                ..SaspGwm::default()
            },
        }
    );
    assert_eq!(
        cmd("sasp remove 192.0.2.100@80"),
        Command::SaspRemove {
            group: group("192.0.2.100", Some(80)),
            gwm: None
        }
    );
    assert_eq!(
        cmd("sasp rem 192.0.2.100@80 gwm 198.51.100.7"),
        Command::SaspRemove {
            group: group("192.0.2.100", Some(80)),
            gwm: Some((ip("198.51.100.7"), None))
        }
    );
    assert_eq!(
        cmd("sasp remove 192.0.2.100@80 gwm 198.51.100.7 port 3861"),
        Command::SaspRemove {
            group: group("192.0.2.100", Some(80)),
            gwm: Some((ip("198.51.100.7"), Some(3861)))
        }
    );
    assert_eq!(cmd("sasp report"), Command::SaspReport);

    // Errors.
    assert_eq!(parse_err("s report"), "ambiguous keyword 's': sasp, server");
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 interval 5"),
        "option 'interval' is not allowed in sasp add: it is the polling interval of mode pull (in mode push the GWM sends at its own interval)"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 tls yes tls no"),
        "option 'tls' given twice"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 198.51.100.7"),
        "unknown keyword '198.51.100.7' (expected one of: gwm)"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm"),
        "missing GWM address after 'gwm'"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 grace -1"),
        "bad grace '-1' (expected seconds, a number from 0 to 3600)"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 mode poll"),
        "unknown keyword 'poll' (expected one of: push, pull)"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 mode p"),
        "ambiguous keyword 'p': pull, push"
    );
    assert_eq!(
        parse_err("sasp add 192.0.2.100@80 gwm 198.51.100.7 port 0"),
        "port 0 out of range 1-65535"
    );
    for bad in [
        "@80",
        "192.0.2.100@",
        "192.0.2.100+192.0.2.101",
        "192.0.2.100@80+443",
        "192.0.2.100@80@192.0.2.11",
    ] {
        assert_eq!(
            parse_err(&format!("sasp add {bad} gwm 198.51.100.7")),
            format!(
                "bad target '{bad}' (expected CLUSTER or CLUSTER@PORT (one cluster, one port))"
            ),
            "{bad}"
        );
    }
    assert_eq!(
        parse_err("sasp remove 192.0.2.100 gwm 198.51.100.7 mode pull"),
        "unknown keyword 'mode' (expected one of: port)"
    );
    assert_eq!(
        parse_err("sasp report 192.0.2.100"),
        "unexpected word '192.0.2.100'"
    );
}

#[test]
fn sasp_apply() {
    let mut c = sample();
    let g80 = SaspGroupTarget {
        cluster: ip("192.0.2.100"),
        port: Some(80),
    };
    assert_eq!(
        fail(&mut c, "sasp add 192.0.2.99 gwm 198.51.100.7"),
        "cluster 192.0.2.99 does not exist"
    );
    assert_eq!(
        fail(&mut c, "sasp add 192.0.2.101@443 gwm 198.51.100.7"),
        "port 192.0.2.101@443 does not exist"
    );
    assert_eq!(
        run(&mut c, "sasp add 192.0.2.100@80 gwm 198.51.100.7"),
        Applied::Changed(Resolved::Sasp(vec![g80]))
    );
    assert_eq!(
        fail(&mut c, "sasp add 192.0.2.100@80 gwm 198.51.100.7 mode pull"),
        "sasp group 192.0.2.100@80 already takes weights from gwm 198.51.100.7 port 3860"
    );
    run(
        &mut c,
        "sasp add 192.0.2.100@80 gwm 198.51.100.7 port 4000 mode pull",
    );
    run(&mut c, "sasp add 192.0.2.100@80 gwm 198.51.100.8 tls yes");
    assert_eq!(c.health.sasp[&g80].len(), 3);
    assert_eq!(
        c.health.sasp[&g80][&(ip("198.51.100.7"), 4000)].mode,
        SaspMode::Pull
    );
    assert!(c.health.sasp[&g80][&(ip("198.51.100.8"), 3860)].tls);
    assert_eq!(
        run(&mut c, "sasp report"),
        Applied::Query(Resolved::Sasp(vec![g80]))
    );

    // Remove one GWM by address and port, then every GWM of an address.
    assert_eq!(
        fail(
            &mut c,
            "sasp remove 192.0.2.100@80 gwm 198.51.100.8 port 4000"
        ),
        "sasp group 192.0.2.100@80 has no gwm 198.51.100.8 port 4000"
    );
    run(
        &mut c,
        "sasp remove 192.0.2.100@80 gwm 198.51.100.8 port 3860",
    );
    assert_eq!(c.health.sasp[&g80].len(), 2);
    assert_eq!(
        fail(&mut c, "sasp remove 192.0.2.100@80 gwm 198.51.100.9"),
        "sasp group 192.0.2.100@80 has no gwm 198.51.100.9"
    );
    // The last GWM gone: the group goes.
    run(&mut c, "sasp remove 192.0.2.100@80 gwm 198.51.100.7");
    assert!(c.health.sasp.is_empty());
    assert_eq!(
        fail(&mut c, "sasp remove 192.0.2.100@80"),
        "there is no sasp group 192.0.2.100@80"
    );
    run(&mut c, "sasp add 192.0.2.100 gwm 198.51.100.7");
    run(&mut c, "sasp remove 192.0.2.100");
    assert!(c.health.sasp.is_empty());
}

/// One connection per GWM carries every group that names it, so two groups may share a GWM
/// only with the same settings (review finding: the second group's were silently unused).
#[test]
fn sasp_groups_sharing_a_gwm_agree_on_its_settings() {
    let mut c = sample();
    run(
        &mut c,
        "sasp add 192.0.2.100@80 gwm 198.51.100.7 mode pull interval 5",
    );
    assert_eq!(
        fail(
            &mut c,
            "sasp add 192.0.2.100@443 gwm 198.51.100.7 mode push members changed"
        ),
        "gwm 198.51.100.7 port 3860 already serves sasp group 192.0.2.100@80 with other \
         settings (one connection per GWM carries all its groups): use the same mode, members, \
         interval, grace and tls"
    );
    run(
        &mut c,
        "sasp add 192.0.2.100@443 gwm 198.51.100.7 mode pull interval 5",
    );
    // Another port of the same GWM address is another GWM.
    run(
        &mut c,
        "sasp add 192.0.2.100@443 gwm 198.51.100.7 port 4000",
    );
    assert_eq!(c.health.sasp.len(), 2);
}

#[test]
fn health_queries_are_not_mutations() {
    for q in [
        "advisor list",
        "advisor report http 80",
        "advisor status http 192.0.2.100@80",
        "manager status",
        "manager report",
        "manager report 192.0.2.100",
        "sasp report",
    ] {
        assert!(!cmd(q).is_mutation(), "{q}");
    }
    for m in [
        "advisor start http 80",
        "advisor stop http 80",
        "advisor interval http 80 3",
        "advisor timeout http 80 unlimited",
        "manager start",
        "manager stop",
        "manager interval 3",
        "manager sensitivity 3",
        "manager smoothing 3",
        "manager quiesce 192.0.2.11",
        "manager unquiesce 192.0.2.11",
        "cluster set @ proportions 50 50 0 0",
        "sasp add 192.0.2.100 gwm 198.51.100.7",
        "sasp remove 192.0.2.100",
        "server set @@192.0.2.11 advisorrequest \"GET /\"",
    ] {
        assert!(cmd(m).is_mutation(), "{m}");
    }
}

#[test]
fn health_commands_built_in_code_are_range_checked() {
    let mut c = sample();
    let http80 = key(AdvisorKind::Http, None, 80);
    run(&mut c, "advisor start http 80");
    let before = c.clone();
    let bad = [
        Command::AdvisorSet {
            key: http80.clone(),
            setting: AdvisorSetting::Interval(0.0),
        },
        Command::AdvisorSet {
            key: http80.clone(),
            setting: AdvisorSetting::Timeout(Some(f64::INFINITY)),
        },
        Command::AdvisorSet {
            key: http80.clone(),
            setting: AdvisorSetting::Retries(101),
        },
        Command::AdvisorStart(key(AdvisorKind::Custom("rm -rf".into()), None, 80)),
        Command::AdvisorStart(key(AdvisorKind::Http, None, 0)),
        Command::ManagerSensitivity(101),
        Command::ManagerSmoothing(0.5),
        Command::ManagerInterval(f64::NAN),
        Command::ClusterSetProportions {
            clusters: Targets::All,
            proportions: Proportions {
                active: 60,
                new: 60,
                port: 0,
                system: 0,
            },
        },
        Command::SaspAdd {
            group: SaspGroupTarget {
                cluster: ip("192.0.2.100"),
                port: None,
            },
            gwm: (ip("198.51.100.7"), 3860),
            settings: SaspGwm {
                grace: -1.0,
                ..SaspGwm::default()
            },
        },
        Command::SaspAdd {
            group: SaspGroupTarget {
                cluster: ip("192.0.2.100"),
                port: None,
            },
            gwm: (ip("198.51.100.7"), 3860),
            settings: SaspGwm {
                interval: Some(5.0),
                ..SaspGwm::default()
            },
        },
        Command::ServerSet {
            target: ServerTarget {
                clusters: Targets::List(vec![ip("192.0.2.100")]),
                ports: Targets::List(vec![80]),
                servers: Targets::List(vec![ip("192.0.2.11")]),
            },
            options: ServerOptions {
                advisorrequest: Some("x".repeat(MAX_ADVISOR_TEXT + 1)),
                ..ServerOptions::default()
            },
        },
    ];
    for b in &bad {
        assert!(c.apply(b).is_err(), "{b:?} was accepted");
        assert_eq!(c, before);
    }
}

#[test]
fn every_health_form_displays_back() {
    for line in [
        "advisor start connect 80",
        "advisor stop https 192.0.2.100@443",
        "advisor start ADV_x_1 2001:db8::1@53",
        "advisor interval ping 80 0.25",
        "advisor connecttimeout dns 53 3",
        "advisor receivetimeout http 80 3600",
        "advisor retries http 80 100",
        "advisor timeout http 80 unlimited",
        "advisor timeout http 80 0.01",
        "advisor list",
        "advisor report http 80",
        "advisor status http 192.0.2.100@80",
        "manager start",
        "manager stop",
        "manager status",
        "manager report",
        "manager report 192.0.2.100+2001:db8::100",
        "manager interval 2",
        "manager sensitivity 5",
        "manager smoothing 1.5",
        "manager quiesce @@192.0.2.11",
        "manager quiesce 192.0.2.100@80+443@192.0.2.11+192.0.2.12",
        "manager unquiesce @80@",
        "cluster add 192.0.2.1+192.0.2.2 proportions 25 25 25 25",
        "cluster set @ proportions 50 50 0 0",
        "cluster set 192.0.2.1+192.0.2.2 proportions 0 0 0 100",
        "sasp add 192.0.2.100 gwm 198.51.100.7",
        "sasp add 192.0.2.100@80 gwm 2001:db8::7 port 1 mode pull members changed interval 0.5 grace 3600 tls yes",
        "sasp remove 192.0.2.100",
        "sasp remove 192.0.2.100@80 gwm 198.51.100.7",
        "sasp remove 192.0.2.100@80 gwm 198.51.100.7 port 3860",
        "sasp report",
        r#"server add @80@192.0.2.11 advisorrequest "GET /\"x\" HTTP/1.0\r\n\r\n" advisorresponse """#,
        r#"server set 192.0.2.100@80@192.0.2.11 weight 3 advisorresponse "a\\b\tc""#,
    ] {
        let c = cmd(line);
        assert_eq!(c.to_string(), line, "canonical form");
        assert_eq!(cmd(&c.to_string()), c);
    }
    // Non-canonical input displays canonically.
    for (line, canonical) in [
        ("adv star HTTP @80", "advisor start http 80"),
        ("man rep @", "manager report"),
        ("manager quiesce 192.0.2.11", "manager quiesce @@192.0.2.11"),
        (
            "sasp add 192.0.2.100 gwm 198.51.100.7 port 3860 mode push members all grace 30 tls no",
            "sasp add 192.0.2.100 gwm 198.51.100.7",
        ),
        (
            "server set @@192.0.2.11 advisorrequest ok",
            r#"server set @@192.0.2.11 advisorrequest "ok""#,
        ),
    ] {
        assert_eq!(cmd(line).to_string(), canonical, "{line}");
    }
}
