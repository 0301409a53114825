//! `advisor ...`: grammar, refusals, apply, and what removing a cluster or port takes along.

use super::*;

fn advisor(config: &Config, kind: AdvisorKind, cluster: Option<&str>, port: u16) -> Advisor {
    config.health.advisors[&key(kind, cluster, port)].clone()
}

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

/// `connecttimeout` means something only to the advisors that connect (connect, http, https).
#[test]
fn connecttimeout_is_refused_where_there_is_no_connect_phase() {
    let mut c = config("cluster add 192.0.2.100\nport add 192.0.2.100@80");
    for name in ["ping", "dns", "ADV_load"] {
        run(&mut c, &format!("advisor start {name} 80"));
        assert_eq!(
            fail(&mut c, &format!("advisor connecttimeout {name} 80 2")),
            format!(
                "advisor {name} has no connect phase (it sends one query and waits \
                 receivetimeout for the answer): set receivetimeout"
            )
        );
        run(&mut c, &format!("advisor receivetimeout {name} 80 2"));
    }
    run(&mut c, "advisor start http 80");
    run(&mut c, "advisor connecttimeout http 80 2");
}
