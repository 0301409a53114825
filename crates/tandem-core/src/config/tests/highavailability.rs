//! `highavailability ...` commands: grammar and apply.

use super::*;

#[test]
fn highavailability_grammar() {
    assert_eq!(
        cmd("high heart add 10.0.0.11 10.0.0.12"),
        Command::HaHeartbeatAdd {
            source: ip("10.0.0.11"),
            destination: ip("10.0.0.12")
        }
    );
    assert_eq!(
        cmd("highavailability backup add primary manual 20000"),
        Command::HaBackupAdd(Backup {
            role: Role::Primary,
            recovery: Recovery::Manual,
            port: 20000
        })
    );
    assert_eq!(
        cmd("h b a b a 20000"),
        Command::HaBackupAdd(Backup {
            role: Role::Backup,
            recovery: Recovery::Auto,
            port: 20000
        })
    );
    assert_eq!(
        cmd("highavailability backup add both auto 20000"),
        Command::HaBackupAdd(Backup {
            role: Role::Both,
            recovery: Recovery::Auto,
            port: 20000
        })
    );
    assert_eq!(
        cmd("h b a bo m 20000"),
        Command::HaBackupAdd(Backup {
            role: Role::Both,
            recovery: Recovery::Manual,
            port: 20000
        })
    );
    assert_eq!(
        parse_err("highavailability backup add primary auto 0"),
        "port 0 out of range 1-65535"
    );
    assert_eq!(
        parse_err("highavailability heartbeat add 10.0.0.11 2001:db8::12"),
        "heartbeat addresses 10.0.0.11 and 2001:db8::12 must both be IPv4 or both IPv6"
    );
    assert_eq!(
        parse_err("highavailability heartbeat add 10.0.0.11 10.0.0.11"),
        "heartbeat source and destination are the same address 10.0.0.11"
    );
    assert_eq!(
        parse_err("highavailability heartbeat add 10.0.0.11"),
        "missing destination address after '10.0.0.11'"
    );
    assert_eq!(
        cmd("highavailability takeover 10.0.0.1"),
        Command::HaTakeover(Some(ip("10.0.0.1")))
    );
    assert_eq!(
        parse_err("highavailability takeover 10.0.0.1 10.0.0.2"),
        "unexpected word '10.0.0.2'"
    );
    assert_eq!(
        parse_err("highavailability maintenance begin"),
        "unknown keyword 'begin' (expected one of: start, stop)"
    );
    assert_eq!(
        parse_err("highavailability backup set role primary"),
        "unknown keyword 'role' (expected one of: recovery)"
    );
    assert_eq!(
        cmd("highavailability key a#b"),
        Command::HaKey("a".to_string())
    ); // '#' starts a comment
    assert_eq!(
        parse(&["highavailability", "key", "a b"])
            .unwrap_err()
            .to_string(),
        "bad key file 'a b' (must not be empty or contain whitespace, '#' or '\"')"
    );
    assert_eq!(
        cmd("man rea se int 0.5"),
        Command::ManagerReachInterval(0.5)
    );
    assert_eq!(
        parse_err("manager reach set interval 0"),
        "bad interval '0' (expected seconds, a number from 0.01 to 3600)"
    );
}

#[test]
fn highavailability_commands() {
    let mut c = Config::default();
    assert_eq!(c.ha.reach_interval, 2.0);
    assert_eq!(
        run(&mut c, "highavailability heartbeat add 10.0.0.11 10.0.0.12"),
        Applied::Changed(Resolved::HighAvailability)
    );
    run(&mut c, "highavailability heartbeat add 10.0.1.11 10.0.1.12");
    assert_eq!(
        fail(&mut c, "highavailability heartbeat add 10.0.0.11 10.0.0.12"),
        "heartbeat 10.0.0.11 10.0.0.12 already exists"
    );
    run(&mut c, "highavailability reach add 10.0.0.1");
    run(&mut c, "highavailability reach add 10.0.1.1");
    assert_eq!(
        fail(&mut c, "highavailability reach add 10.0.0.1"),
        "reach target 10.0.0.1 already exists"
    );
    run(&mut c, "highavailability backup add primary auto 12345");
    assert_eq!(
        fail(&mut c, "highavailability backup add backup auto 12345"),
        "high availability backup is already configured; run 'highavailability backup delete' first"
    );
    run(&mut c, "highavailability key /etc/tandem/ha.key");
    run(&mut c, "highavailability scripts /etc/tandem/scripts");
    run(&mut c, "manager reach set interval 0.5");
    assert_eq!(
        c.ha,
        HaConfig {
            heartbeats: vec![
                (ip("10.0.0.11"), ip("10.0.0.12")),
                (ip("10.0.1.11"), ip("10.0.1.12"))
            ],
            reach: vec![ip("10.0.0.1"), ip("10.0.1.1")],
            backup: Some(Backup {
                role: Role::Primary,
                recovery: Recovery::Auto,
                port: 12345
            }),
            key_file: Some("/etc/tandem/ha.key".to_string()),
            script_dir: Some("/etc/tandem/scripts".to_string()),
            reach_interval: 0.5,
            sync: true,
        }
    );
    run(&mut c, "highavailability sync off");
    assert!(!c.ha.sync);
    assert!(
        c.to_commands()
            .contains(&"highavailability sync off".to_string())
    );
    run(&mut c, "high sync on");
    assert!(c.ha.sync);
    for q in [
        "highavailability status",
        "highavailability takeover",
        "high maint",
        "high maint start",
        "high key generate /etc/tandem/k",
    ] {
        let q = parse_line(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let before = c.clone();
        assert_eq!(
            c.apply(&q.unwrap()),
            Ok(Applied::Query(Resolved::HighAvailability))
        );
        assert_eq!(c, before);
    }
    // `heartbeat delete` takes either end of a pair.
    run(&mut c, "highavailability heartbeat delete 10.0.0.12");
    run(&mut c, "highavailability heartbeat delete 10.0.1.11");
    assert!(c.ha.heartbeats.is_empty());
    assert_eq!(
        fail(&mut c, "highavailability heartbeat delete 10.0.0.11"),
        "no heartbeat uses address 10.0.0.11"
    );
    run(&mut c, "highavailability reach delete 10.0.0.1");
    assert_eq!(c.ha.reach, vec![ip("10.0.1.1")]);
    assert_eq!(
        fail(&mut c, "highavailability reach delete 10.0.0.1"),
        "reach target 10.0.0.1 does not exist"
    );
    // The recovery strategy changes in place: role and port stay.
    let before = c.ha.backup.unwrap();
    run(&mut c, "high backup set recovery manual");
    assert_eq!(
        c.ha.backup,
        Some(Backup {
            recovery: Recovery::Manual,
            ..before
        })
    );
    run(&mut c, "highavailability backup delete");
    assert_eq!(c.ha.backup, None);
    assert_eq!(
        fail(&mut c, "highavailability backup set recovery auto"),
        "no high availability backup is configured"
    );
    assert_eq!(
        fail(&mut c, "highavailability backup delete"),
        "no high availability backup is configured"
    );
}

/// `cluster add|set ... primaryhost NFA` (mutual HA): grammar, apply, save.
#[test]
fn primaryhost_grammar_apply_and_save() {
    assert_eq!(
        cmd("cluster add 192.0.2.100+192.0.2.101 primaryhost 192.0.2.1"),
        Command::ClusterAdd {
            label: None,
            clusters: vec![ip("192.0.2.100"), ip("192.0.2.101")],
            proportions: None,
            defaults: Default::default(),
            primaryhost: Some(ip("192.0.2.1")),
        }
    );
    assert_eq!(
        cmd("cluster add 2001:db8::100 primaryhost 2001:db8::1 proportions 50 50 0 0").to_string(),
        "cluster add 2001:db8::100 proportions 50 50 0 0 primaryhost 2001:db8::1"
    );
    assert_eq!(
        cmd("cl se @ pri 192.0.2.2"),
        Command::ClusterSetPrimaryHost {
            clusters: Targets::All,
            primaryhost: ip("192.0.2.2"),
        }
    );
    assert_eq!(
        parse_err("cluster add 192.0.2.100 primaryhost 192.0.2.1 primaryhost 192.0.2.2"),
        "option 'primaryhost' given twice"
    );
    let mut c = Config::default();
    for line in [
        "cluster add 192.0.2.100 primaryhost 192.0.2.1",
        "cluster add 192.0.2.200",
        "cluster set 192.0.2.200 primaryhost 192.0.2.2",
    ] {
        c.apply(&cmd(line)).unwrap();
    }
    assert_eq!(
        c.clusters[&ip("192.0.2.200")].primaryhost,
        Some(ip("192.0.2.2"))
    );
    let saved = c.to_commands();
    assert!(
        saved.contains(&"cluster add 192.0.2.200 primaryhost 192.0.2.2".to_string()),
        "{saved:?}"
    );
    let back = load_file(&saved.join("\n"), "saved.cfg", &Config::default()).unwrap();
    assert_eq!(back, c);
    assert!(
        c.apply(&cmd("cluster set 192.0.2.9 primaryhost 192.0.2.1"))
            .is_err()
    );
    assert_eq!(
        c.clusters[&ip("192.0.2.200")].primaryhost,
        Some(ip("192.0.2.2"))
    );
}
