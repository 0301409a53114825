//! `advisor ...`, `manager ...`, `sasp ...` and the manager's proportions: grammar and apply.

use super::*;

fn key(kind: AdvisorKind, cluster: Option<&str>, port: u16) -> AdvisorKey {
    AdvisorKey {
        kind,
        cluster: cluster.map(ip),
        port,
    }
}

fn advisor(config: &Config, kind: AdvisorKind, cluster: Option<&str>, port: u16) -> Advisor {
    config.health.advisors[&key(kind, cluster, port)].clone()
}

// ----- advisor ---------------------------------------------------------------------------------

#[test]
fn advisor_grammar() {
    assert_eq!(
        cmd("advisor start http 80"),
        Command::AdvisorStart(key(AdvisorKind::Http, None, 80))
    );
    assert_eq!(
        cmd("adv star https 192.0.2.100@443"),
        Command::AdvisorStart(key(AdvisorKind::Https, Some("192.0.2.100"), 443))
    );
    // `@PORT` is `PORT`; names are keywords (case, unique prefixes).
    assert_eq!(
        cmd("advisor stop CONN @80"),
        Command::AdvisorStop(key(AdvisorKind::Connect, None, 80))
    );
    assert_eq!(
        cmd("advisor start pi 7"),
        Command::AdvisorStart(key(AdvisorKind::Ping, None, 7))
    );
    assert_eq!(
        cmd("advisor start d 53"),
        Command::AdvisorStart(key(AdvisorKind::Dns, None, 53))
    );
    assert_eq!(
        cmd("advisor start ADV_load 80"),
        Command::AdvisorStart(key(AdvisorKind::Custom("ADV_load".into()), None, 80))
    );
    assert_eq!(
        cmd("advisor start adv_My_Check2 80"),
        Command::AdvisorStart(key(AdvisorKind::Custom("ADV_My_Check2".into()), None, 80))
    );
    let k = key(AdvisorKind::Http, None, 80);
    let set = |setting| Command::AdvisorSet {
        key: k.clone(),
        setting,
    };
    assert_eq!(
        cmd("advisor interval http 80 3"),
        set(AdvisorSetting::Interval(3.0))
    );
    assert_eq!(
        cmd("advisor conn http 80 0.5"),
        set(AdvisorSetting::ConnectTimeout(0.5))
    );
    assert_eq!(
        cmd("advisor rec http 80 2"),
        set(AdvisorSetting::ReceiveTimeout(2.0))
    );
    assert_eq!(
        cmd("advisor ret http 80 3"),
        set(AdvisorSetting::Retries(3))
    );
    assert_eq!(
        cmd("advisor ti http 80 unlimited"),
        set(AdvisorSetting::Timeout(None))
    );
    assert_eq!(
        cmd("advisor timeout http 80 unl"),
        set(AdvisorSetting::Timeout(None))
    );
    assert_eq!(
        cmd("advisor timeout http 80 30"),
        set(AdvisorSetting::Timeout(Some(30.0)))
    );
    assert_eq!(cmd("advisor list"), Command::AdvisorList);
    assert_eq!(
        cmd("advisor rep http 80"),
        Command::AdvisorReport(k.clone())
    );
    assert_eq!(
        cmd("advisor stat http 80"),
        Command::AdvisorStatus(k.clone())
    );
}

#[test]
fn advisor_grammar_errors() {
    // IBM's other advisors: refused with the list of ours.
    assert_eq!(
        parse_err("advisor start db2 50000"),
        "advisor 'db2' is not supported (supported: connect, http, https, ping, dns, ADV_name)"
    );
    assert_eq!(
        parse_err("advisor start ldap 389"),
        "advisor 'ldap' is not supported (supported: connect, http, https, ping, dns, ADV_name)"
    );
    assert_eq!(
        parse_err("advisor start gopher 70"),
        "unknown keyword 'gopher' (expected one of: connect, http, https, ping, dns, ADV_name)"
    );
    assert_eq!(
        parse_err("advisor start htt 80"),
        "ambiguous keyword 'htt': http, https"
    );
    assert!(parse_err("advisor start ADV_ 80").contains("bad custom advisor name 'ADV_'"));
    assert!(parse_err("advisor start ADV_a-b 80").contains("bad custom advisor name"));
    assert!(parse_err(&format!("advisor start ADV_{} 80", "x".repeat(61))).contains("1 to 60"));
    assert_eq!(
        parse_err("advisor st http 80"),
        "ambiguous keyword 'st': start, status, stop"
    );
    assert_eq!(
        parse_err("advisor start http"),
        "missing PORT or CLUSTER@PORT after 'http'"
    );
    assert_eq!(
        parse_err("advisor start"),
        "missing advisor name after 'start'"
    );
    for bad in [
        "80+443",
        "192.0.2.1+192.0.2.2@80",
        "@",
        "192.0.2.1@80@192.0.2.3",
    ] {
        assert_eq!(
            parse_err(&format!("advisor start http {bad}")),
            format!("bad target '{bad}' (expected PORT or CLUSTER@PORT)"),
            "{bad}"
        );
    }
    assert_eq!(
        parse_err("advisor start http 0"),
        "port 0 out of range 1-65535"
    );
    assert_eq!(
        parse_err("advisor start http host@80"),
        "bad address 'host'"
    );
    assert_eq!(
        parse_err("advisor interval http 80 0"),
        "bad interval '0' (expected seconds, a number from 0.01 to 3600)"
    );
    assert_eq!(
        parse_err("advisor connecttimeout http 80 4000"),
        "bad connecttimeout '4000' (expected seconds, a number from 0.01 to 3600)"
    );
    assert_eq!(
        parse_err("advisor retries http 80 101"),
        "retries 101 out of range 0-100"
    );
    assert_eq!(
        parse_err("advisor timeout http 80 never"),
        "unknown keyword 'never' (expected one of: unlimited)"
    );
    assert_eq!(
        parse_err("advisor timeout http 80 inf"),
        "bad timeout 'inf' (expected seconds, a number from 0.01 to 3600)"
    );
    assert_eq!(
        parse_err("advisor interval http 80"),
        "missing seconds after '80'"
    );
    assert_eq!(parse_err("advisor start http 80 x"), "unexpected word 'x'");
    assert_eq!(parse_err("advisor list all"), "unexpected word 'all'");
    // IBM forms Tandem does not act on.
    for (line, reason) in [
        (
            "advisor loglevel http 80 5",
            "advisor loglevel is not supported: advisors and the manager log through tandemd's log",
        ),
        (
            "advisor logsize http 80 unlimited",
            "advisor logsize is not supported",
        ),
        (
            "advisor version http 80",
            "advisor version is not supported: the advisors are part of tandemd",
        ),
        (
            "advisor status http 80 http.log",
            "advisor status takes no log file",
        ),
    ] {
        let e = parse_err(line);
        assert!(e.starts_with(reason), "{line}: {e}");
    }
}

#[test]
fn advisor_apply() {
    let mut c = sample();
    // Not started: settings, stop and reports are refused with the place.
    assert_eq!(
        fail(&mut c, "advisor interval http 80 3"),
        "advisor http is not started on port 80"
    );
    assert_eq!(
        fail(&mut c, "advisor stop http 192.0.2.100@80"),
        "advisor http is not started on 192.0.2.100@80"
    );
    assert_eq!(
        c.apply_line("advisor report http 80")
            .unwrap_err()
            .to_string(),
        "advisor http is not started on port 80"
    );
    // Start, twice refused.
    assert_eq!(
        run(&mut c, "advisor start http 80"),
        Applied::Changed(Resolved::Advisors(vec![key(AdvisorKind::Http, None, 80)]))
    );
    assert_eq!(advisor(&c, AdvisorKind::Http, None, 80), Advisor::default());
    assert_eq!(
        fail(&mut c, "advisor start http 80"),
        "advisor http is already started on port 80"
    );
    // A PORT advisor needs no port; a CLUSTER@PORT advisor needs both.
    run(&mut c, "advisor start connect 8080");
    assert_eq!(
        fail(&mut c, "advisor start http 192.0.2.99@80"),
        "cluster 192.0.2.99 does not exist"
    );
    assert_eq!(
        fail(&mut c, "advisor start http 192.0.2.101@443"),
        "port 192.0.2.101@443 does not exist"
    );
    // The same advisor on PORT and on CLUSTER@PORT are two advisors.
    run(&mut c, "advisor start http 192.0.2.100@80");
    assert_eq!(c.health.advisors.len(), 3);

    // The interval moves the timeouts that were never set apart from it.
    run(&mut c, "advisor interval http 80 3");
    let a = advisor(&c, AdvisorKind::Http, None, 80);
    assert_eq!(
        (a.interval, a.connecttimeout, a.receivetimeout),
        (3.0, 3.0, 3.0)
    );
    run(&mut c, "advisor connecttimeout http 80 1");
    run(&mut c, "advisor interval http 80 5");
    let a = advisor(&c, AdvisorKind::Http, None, 80);
    assert_eq!(
        (a.interval, a.connecttimeout, a.receivetimeout),
        (5.0, 1.0, 5.0)
    );
    run(&mut c, "advisor receivetimeout http 80 2.5");
    run(&mut c, "advisor retries http 80 2");
    run(&mut c, "advisor timeout http 80 20");
    let a = advisor(&c, AdvisorKind::Http, None, 80);
    assert_eq!(
        a,
        Advisor {
            interval: 5.0,
            connecttimeout: 1.0,
            receivetimeout: 2.5,
            retries: 2,
            timeout: Some(20.0),
        }
    );
    run(&mut c, "advisor timeout http 80 unlimited");
    assert_eq!(advisor(&c, AdvisorKind::Http, None, 80).timeout, None);
    // The other advisors kept their defaults.
    assert_eq!(
        advisor(&c, AdvisorKind::Http, Some("192.0.2.100"), 80),
        Advisor::default()
    );

    // Queries.
    let all = vec![
        key(AdvisorKind::Connect, None, 8080),
        key(AdvisorKind::Http, None, 80),
        key(AdvisorKind::Http, Some("192.0.2.100"), 80),
    ];
    let mut listed = match c.apply_line("advisor list").unwrap() {
        Some(Applied::Query(Resolved::Advisors(keys))) => keys,
        other => panic!("{other:?}"),
    };
    listed.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        run(&mut c, "advisor status http 192.0.2.100@80"),
        Applied::Query(Resolved::Advisors(vec![key(
            AdvisorKind::Http,
            Some("192.0.2.100"),
            80
        )]))
    );

    run(&mut c, "advisor stop connect 8080");
    assert_eq!(c.health.advisors.len(), 2);
}

#[test]
fn removing_a_cluster_or_port_removes_its_advisors_and_sasp_groups() {
    let mut c = sample();
    run(&mut c, "advisor start http 80");
    run(&mut c, "advisor start http 192.0.2.100@80");
    run(&mut c, "advisor start https 192.0.2.100@443");
    run(&mut c, "advisor start connect 192.0.2.101@80");
    run(&mut c, "sasp add 192.0.2.100@80 gwm 198.51.100.7");
    run(&mut c, "sasp add 192.0.2.100 gwm 198.51.100.7");
    run(&mut c, "sasp add 192.0.2.101@80 gwm 198.51.100.7");

    run(&mut c, "port remove 192.0.2.100@80");
    let keys: Vec<_> = c.health.advisors.keys().cloned().collect();
    assert_eq!(
        keys,
        vec![
            key(AdvisorKind::Connect, Some("192.0.2.101"), 80),
            key(AdvisorKind::Http, None, 80),
            key(AdvisorKind::Https, Some("192.0.2.100"), 443),
        ]
    );
    let groups: Vec<_> = c.health.sasp.keys().copied().collect();
    assert_eq!(
        groups,
        vec![
            SaspGroupTarget {
                cluster: ip("192.0.2.100"),
                port: None
            },
            SaspGroupTarget {
                cluster: ip("192.0.2.101"),
                port: Some(80)
            },
        ]
    );

    run(&mut c, "cluster remove 192.0.2.100");
    let keys: Vec<_> = c.health.advisors.keys().cloned().collect();
    assert_eq!(
        keys,
        vec![
            key(AdvisorKind::Connect, Some("192.0.2.101"), 80),
            key(AdvisorKind::Http, None, 80),
        ]
    );
    assert_eq!(c.health.sasp.len(), 1);
}

// ----- manager ---------------------------------------------------------------------------------

#[test]
fn manager_grammar() {
    assert_eq!(cmd("manager start"), Command::ManagerStart);
    assert_eq!(cmd("man sto"), Command::ManagerStop);
    assert_eq!(cmd("manager status"), Command::ManagerStatus);
    assert_eq!(cmd("manager report"), Command::ManagerReport(Targets::All));
    assert_eq!(
        cmd("manager report @"),
        Command::ManagerReport(Targets::All)
    );
    assert_eq!(
        cmd("manager rep 192.0.2.100+192.0.2.101"),
        Command::ManagerReport(Targets::List(vec![ip("192.0.2.100"), ip("192.0.2.101")]))
    );
    assert_eq!(cmd("manager interval 0.5"), Command::ManagerInterval(0.5));
    assert_eq!(cmd("manager sens 0"), Command::ManagerSensitivity(0));
    assert_eq!(
        cmd("manager sensitivity 100"),
        Command::ManagerSensitivity(100)
    );
    assert_eq!(cmd("manager sm 4"), Command::ManagerSmoothing(4.0));
    assert_eq!(cmd("manager smoothing 1"), Command::ManagerSmoothing(1.0));
    // A lone SERVER is that server on every port of every cluster.
    assert_eq!(
        cmd("manager quiesce 192.0.2.11"),
        Command::ManagerQuiesce(ServerTarget {
            clusters: Targets::All,
            ports: Targets::All,
            servers: Targets::List(vec![ip("192.0.2.11")]),
        })
    );
    assert_eq!(
        cmd("manager unq 192.0.2.100@80@192.0.2.11"),
        Command::ManagerUnquiesce(ServerTarget {
            clusters: Targets::List(vec![ip("192.0.2.100")]),
            ports: Targets::List(vec![80]),
            servers: Targets::List(vec![ip("192.0.2.11")]),
        })
    );
    // Existing HA form still parses (`re` is ambiguous now: reach, refresh, report, restart).
    assert_eq!(
        cmd("manager reach set interval 2"),
        Command::ManagerReachInterval(2.0)
    );
    assert_eq!(
        parse_err("manager re set interval 2"),
        "ambiguous keyword 're': reach, refresh, report, restart"
    );
}

#[test]
fn manager_grammar_errors() {
    assert_eq!(
        parse_err("manager sensitivity 101"),
        "sensitivity 101 out of range 0-100"
    );
    assert_eq!(
        parse_err("manager sensitivity 5.5"),
        "bad sensitivity '5.5' (expected a number)"
    );
    assert_eq!(
        parse_err("manager smoothing 0.5"),
        "smoothing 0.5 out of range 1-100"
    );
    assert_eq!(
        parse_err("manager smoothing NaN"),
        "smoothing NaN out of range 1-100"
    );
    assert_eq!(
        parse_err("manager smoothing x"),
        "bad smoothing 'x' (expected a number)"
    );
    assert_eq!(
        parse_err("manager interval 0"),
        "bad interval '0' (expected seconds, a number from 0.01 to 3600)"
    );
    assert_eq!(
        parse_err("manager quiesce"),
        "missing SERVER or CLUSTER@PORT@SERVER after 'quiesce'"
    );
    assert_eq!(
        parse_err("manager quiesce 192.0.2.100@80"),
        "bad target '192.0.2.100@80' (expected CLUSTER@PORT@SERVER)"
    );
    assert_eq!(parse_err("manager quiesce nohost"), "bad address 'nohost'");
    assert_eq!(
        parse_err("manager report 192.0.2.100@80"),
        "bad target '192.0.2.100@80' (expected CLUSTER[+CLUSTER...] or @)"
    );
    assert_eq!(parse_err("manager stop now"), "unexpected word 'now'");
    for (line, reason) in [
        (
            "manager start manager.log 10004",
            "manager start takes no log file or metric port",
        ),
        (
            "manager quiesce 192.0.2.11 daily 1 5",
            "daily quiesce is not supported",
        ),
        ("manager loglevel 3", "manager loglevel is not supported"),
        (
            "manager logsize unlimited",
            "manager logsize is not supported",
        ),
        (
            "manager metric set loglevel 1",
            "manager metric is not supported",
        ),
        ("manager refresh 3", "manager refresh is not supported"),
        ("manager restart hello", "manager restart is not supported"),
        ("manager version", "manager version is not supported"),
    ] {
        let e = parse_err(line);
        assert!(e.starts_with(reason), "{line}: {e}");
    }
}

#[test]
fn manager_apply() {
    let mut c = sample();
    assert_eq!(fail(&mut c, "manager stop"), "the manager is not started");
    let clusters = Resolved::Manager(vec![ip("192.0.2.100"), ip("192.0.2.101")]);
    assert_eq!(
        run(&mut c, "manager start"),
        Applied::Changed(clusters.clone())
    );
    assert!(c.health.manager.running);
    assert_eq!(
        fail(&mut c, "manager start"),
        "the manager is already started"
    );
    run(&mut c, "manager interval 4");
    run(&mut c, "manager sensitivity 10");
    run(&mut c, "manager smoothing 3.5");
    assert_eq!(
        c.health.manager,
        Manager {
            running: true,
            interval: 4.0,
            sensitivity: 10,
            smoothing: 3.5,
        }
    );
    assert_eq!(
        run(&mut c, "manager status"),
        Applied::Query(clusters.clone())
    );
    assert_eq!(run(&mut c, "manager report"), Applied::Query(clusters));
    assert_eq!(
        run(&mut c, "manager report 192.0.2.101"),
        Applied::Query(Resolved::Manager(vec![ip("192.0.2.101")]))
    );
    assert_eq!(
        c.apply_line("manager report 192.0.2.99")
            .unwrap_err()
            .to_string(),
        "cluster 192.0.2.99 does not exist"
    );
    run(&mut c, "manager stop");
    assert!(!c.health.manager.running);
}

#[test]
fn quiesce_and_unquiesce() {
    let mut c = sample();
    // A lone SERVER: every port that has it (192.0.2.11 is on three ports).
    assert_eq!(
        run(&mut c, "manager quiesce 192.0.2.11"),
        Applied::Changed(Resolved::Servers(vec![
            (ip("192.0.2.100"), 80, ip("192.0.2.11")),
            (ip("192.0.2.100"), 443, ip("192.0.2.11")),
            (ip("192.0.2.101"), 80, ip("192.0.2.11")),
        ]))
    );
    assert!(server(&c, "192.0.2.100", 443, "192.0.2.11").quiesced);
    assert!(!server(&c, "192.0.2.100", 443, "192.0.2.12").quiesced);
    run(&mut c, "manager unquiesce 192.0.2.100@443@192.0.2.11");
    assert!(!server(&c, "192.0.2.100", 443, "192.0.2.11").quiesced);
    assert!(server(&c, "192.0.2.100", 80, "192.0.2.11").quiesced);
    // Quiesce is not down: the weight stays.
    assert_eq!(server(&c, "192.0.2.100", 80, "192.0.2.11").weight, 10);
    // Targets must exist.
    assert_eq!(
        fail(&mut c, "manager quiesce 192.0.2.99"),
        "no server matches '@@192.0.2.99'"
    );
    assert_eq!(
        fail(&mut c, "manager quiesce 192.0.2.100@80@192.0.2.13"),
        "server 192.0.2.100@80@192.0.2.13 does not exist"
    );
    assert_eq!(
        fail(&mut c, "manager quiesce 192.0.2.100@8080@192.0.2.11"),
        "port 192.0.2.100@8080 does not exist"
    );
    run(&mut c, "manager unquiesce @@");
    assert!(
        c.clusters
            .values()
            .flat_map(|cl| cl.ports.values())
            .flat_map(|p| p.servers.values())
            .all(|s| !s.quiesced)
    );
}

// ----- proportions -----------------------------------------------------------------------------

#[test]
fn proportions() {
    let p = |active, new, port, system| Proportions {
        active,
        new,
        port,
        system,
    };
    assert_eq!(
        cmd("cluster set 192.0.2.100 proportions 40 40 20 0"),
        Command::ClusterSetProportions {
            clusters: Targets::List(vec![ip("192.0.2.100")]),
            proportions: p(40, 40, 20, 0),
        }
    );
    assert_eq!(
        cmd("cl set @ prop 25 25 25 25"),
        Command::ClusterSetProportions {
            clusters: Targets::All,
            proportions: p(25, 25, 25, 25),
        }
    );
    assert_eq!(
        cmd("cluster add 192.0.2.1+192.0.2.2 proportions 100 0 0 0"),
        Command::ClusterAdd {
            clusters: vec![ip("192.0.2.1"), ip("192.0.2.2")],
            proportions: Some(p(100, 0, 0, 0)),
        }
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 proportions 50 50 10 0"),
        "proportions 50 50 10 0 add up to 110 (they must add up to 100)"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 proportions 101 0 0 0"),
        "active 101 out of range 0-100"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 proportions 50 50 0"),
        "missing system after '0'"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 proportions 50 50 0 0 0"),
        "unexpected word '0'"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 weightbound 5"),
        "unknown keyword 'weightbound' (expected one of: proportions)"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100"),
        "missing keyword after '192.0.2.100' (expected one of: proportions)"
    );
    assert_eq!(
        parse_err("cluster add 192.0.2.1 proportions 50 50 0 x"),
        "bad system 'x' (expected a number)"
    );

    let mut c = sample();
    assert_eq!(
        c.clusters[&ip("192.0.2.100")].proportions,
        Proportions::default()
    );
    run(&mut c, "cluster set @ proportions 30 30 20 20");
    assert!(
        c.clusters
            .values()
            .all(|cl| cl.proportions == p(30, 30, 20, 20))
    );
    run(&mut c, "cluster set 192.0.2.101 proportions 50 50 0 0");
    assert_eq!(c.clusters[&ip("192.0.2.101")].proportions, p(50, 50, 0, 0));
    assert_eq!(
        fail(
            &mut c,
            "cluster set 192.0.2.100+192.0.2.99 proportions 50 50 0 0"
        ),
        "cluster 192.0.2.99 does not exist"
    );
    run(&mut c, "cluster add 192.0.2.102 proportions 0 0 100 0");
    assert_eq!(c.clusters[&ip("192.0.2.102")].proportions, p(0, 0, 100, 0));
    let mut empty = Config::default();
    assert_eq!(
        fail(&mut empty, "cluster set @ proportions 50 50 0 0"),
        "no cluster matches '@'"
    );
}

// ----- sasp ------------------------------------------------------------------------------------

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
