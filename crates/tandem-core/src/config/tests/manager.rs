//! `manager ...` (not `reach`), quiesce, and the proportions of `cluster add|set`.

use super::*;

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
    // IBM's `manager start LOGFILE [PORT]`: accepted, and said to be unused.
    let logged = cmd("manager start manager.log 10004");
    assert_eq!(
        logged,
        Command::ManagerStartLogged {
            logfile: "manager.log".into(),
            metric_port: Some(10004)
        }
    );
    assert_eq!(logged.to_string(), "manager start manager.log 10004");
    assert!(logged.warnings()[0].contains("are not used"));
    assert_eq!(parse_err("manager start a.log 1 x"), "unexpected word 'x'");
    assert_eq!(
        parse_err("manager start a.log 0"),
        "port 0 out of range 1-65535"
    );
    for (line, reason) in [
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
            label: None,
            clusters: vec![ip("192.0.2.1"), ip("192.0.2.2")],
            proportions: Some(p(100, 0, 0, 0)),
            defaults: Default::default(),
            primaryhost: None,
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
        "unknown keyword '0' (expected one of: label, primaryhost, proportions, staletimeout, stickytime, weightbound)"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100 nosuch 5"),
        "unknown keyword 'nosuch' (expected one of: label, primaryhost, proportions, staletimeout, stickytime, weightbound)"
    );
    assert_eq!(
        parse_err("cluster set 192.0.2.100"),
        "missing keyword after '192.0.2.100' (expected one of: label, primaryhost, proportions, staletimeout, stickytime, weightbound)"
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
