//! `Config::apply` of executor, cluster, port and server commands.

use super::*;

#[test]
fn executor_commands() {
    let mut c = Config::default();
    assert_eq!(c.executor.hatimeout, 2.0);
    assert_eq!(
        run(&mut c, "executor start"),
        Applied::Changed(Resolved::Executor)
    );
    assert!(c.executor.started);
    run(&mut c, "executor set nfa 10.0.0.11");
    run(&mut c, "executor set clientgateway 10.0.0.1");
    run(&mut c, "executor set hatimeout 0.2");
    assert_eq!(c.executor.nfa, Some(ip("10.0.0.11")));
    assert_eq!(c.executor.clientgateway, Some(ip("10.0.0.1")));
    assert_eq!(c.executor.hatimeout, 0.2);
    let before = c.clone();
    assert_eq!(
        run(&mut c, "executor status"),
        Applied::Query(Resolved::Executor)
    );
    assert_eq!(c, before);
    run(&mut c, "executor stop");
    assert!(!c.executor.started);
}

#[test]
fn cluster_commands() {
    let mut c = Config::default();
    assert_eq!(
        run(&mut c, "cluster add 192.0.2.100+192.0.2.101"),
        Applied::Changed(Resolved::Clusters(vec![
            ip("192.0.2.100"),
            ip("192.0.2.101")
        ]))
    );
    assert_eq!(c.clusters.len(), 2);
    assert_eq!(c.clusters[&ip("192.0.2.100")].address, ip("192.0.2.100"));
    assert_eq!(
        fail(&mut c, "cluster add 192.0.2.102+192.0.2.100"),
        "cluster 192.0.2.100 already exists"
    );
    assert_eq!(
        fail(&mut c, "cluster remove 192.0.2.9"),
        "cluster 192.0.2.9 does not exist"
    );
    assert_eq!(
        fail(&mut c, "cluster status 192.0.2.9"),
        "cluster 192.0.2.9 does not exist"
    );
    assert_eq!(
        run(&mut c, "cluster status @"),
        Applied::Query(Resolved::Clusters(vec![
            ip("192.0.2.100"),
            ip("192.0.2.101")
        ]))
    );
    run(&mut c, "cluster remove 192.0.2.100");
    assert_eq!(
        c.clusters.keys().copied().collect::<Vec<_>>(),
        vec![ip("192.0.2.101")]
    );
    run(&mut c, "cluster remove @");
    assert!(c.clusters.is_empty());
    assert_eq!(fail(&mut c, "cluster remove @"), "no cluster matches '@'");
    assert_eq!(
        run(&mut c, "cluster report @"),
        Applied::Query(Resolved::Clusters(vec![]))
    );
}

#[test]
fn cluster_remove_removes_ports_and_servers() {
    let mut c = sample();
    run(&mut c, "cluster remove 192.0.2.100");
    assert!(!c.clusters.contains_key(&ip("192.0.2.100")));
    assert_eq!(
        fail(&mut c, "port status 192.0.2.100@80"),
        "cluster 192.0.2.100 does not exist"
    );
    run(&mut c, "cluster add 192.0.2.100");
    assert!(c.clusters[&ip("192.0.2.100")].ports.is_empty());
}

#[test]
fn port_defaults() {
    let mut c = config("cluster add 192.0.2.100");
    run(&mut c, "port add 192.0.2.100@21+23+80");
    let p80 = port(&c, "192.0.2.100", 80);
    assert_eq!(p80, Port::with_defaults(80));
    assert_eq!(p80.staletimeout, 300);
    assert_eq!(p80.weightbound, 20);
    assert_eq!(p80.method, Method::Mac);
    assert_eq!(p80.protocol, Protocol::Tcp);
    assert_eq!(p80.selection, Selection::Connection);
    assert_eq!(p80.stickytime, 0);
    assert!(!p80.reset);
    assert_eq!(p80.repstrategy, RepStrategy::None);
    assert_eq!(port(&c, "192.0.2.100", 21).staletimeout, 900);
    assert_eq!(port(&c, "192.0.2.100", 23).staletimeout, 32_000_000);
}

#[test]
fn port_add_set_remove() {
    let mut c = config("cluster add 192.0.2.100+192.0.2.101");
    assert_eq!(
        run(
            &mut c,
            "port add 192.0.2.100@80 protocol udp selectionalgorithm hash stickytime 30 staletimeout 60 weightbound 50 reset yes repstrategy both"
        ),
        Applied::Changed(Resolved::Ports(vec![(ip("192.0.2.100"), 80)]))
    );
    let p = port(&c, "192.0.2.100", 80);
    assert_eq!(
        (
            p.protocol,
            p.selection,
            p.stickytime,
            p.staletimeout,
            p.weightbound,
            p.reset,
            p.repstrategy
        ),
        (
            Protocol::Udp,
            Selection::Hash,
            30,
            60,
            50,
            true,
            RepStrategy::Both
        )
    );
    assert_eq!(
        fail(&mut c, "port add 192.0.2.9@80"),
        "cluster 192.0.2.9 does not exist"
    );
    assert_eq!(
        fail(&mut c, "port add 192.0.2.100@443+80"),
        "port 192.0.2.100@80 already exists"
    );
    // `@` in port add = every existing cluster; all or nothing.
    assert_eq!(
        fail(&mut c, "port add @80"),
        "port 192.0.2.100@80 already exists"
    );
    assert_eq!(
        run(&mut c, "port add @443"),
        Applied::Changed(Resolved::Ports(vec![
            (ip("192.0.2.100"), 443),
            (ip("192.0.2.101"), 443)
        ]))
    );
    run(&mut c, "port set 192.0.2.100@80+443 stickytime 60");
    assert_eq!(port(&c, "192.0.2.100", 80).stickytime, 60);
    assert_eq!(port(&c, "192.0.2.100", 443).stickytime, 60);
    assert_eq!(port(&c, "192.0.2.101", 443).stickytime, 0);
    assert_eq!(
        fail(&mut c, "port set 192.0.2.101@80 stickytime 5"),
        "port 192.0.2.101@80 does not exist"
    );
    // Wildcard cluster: clusters without the port are skipped.
    assert_eq!(
        run(&mut c, "port set @80 reset no"),
        Applied::Changed(Resolved::Ports(vec![(ip("192.0.2.100"), 80)]))
    );
    assert_eq!(
        fail(&mut c, "port set @8080 reset no"),
        "no port matches '@8080'"
    );
    assert_eq!(
        run(&mut c, "port status @"),
        Applied::Query(Resolved::Ports(vec![
            (ip("192.0.2.100"), 80),
            (ip("192.0.2.100"), 443),
            (ip("192.0.2.101"), 443)
        ]))
    );
    assert_eq!(
        fail(&mut c, "port remove 192.0.2.100@8080"),
        "port 192.0.2.100@8080 does not exist"
    );
    run(&mut c, "port remove @443");
    assert_eq!(
        run(&mut c, "port report @"),
        Applied::Query(Resolved::Ports(vec![(ip("192.0.2.100"), 80)]))
    );
    run(&mut c, "port remove 192.0.2.100@");
    assert_eq!(fail(&mut c, "port remove @"), "no port matches '@'");
}

#[test]
fn server_defaults_and_weights() {
    let mut c = config("cluster add 192.0.2.100\nport add 192.0.2.100@80");
    run(&mut c, "server add 192.0.2.100@80@192.0.2.11");
    let s = server(&c, "192.0.2.100", 80, "192.0.2.11");
    assert_eq!(
        s,
        Server {
            label: None,
            address: ip("192.0.2.11"),
            weight: 10,
            fixedweight: false,
            returnaddress: None,
            router: None,
            mapport: None,
            down: false,
            quiesced: false,
            advisorrequest: None,
            advisorresponse: None,
        }
    );
    assert_eq!(
        fail(&mut c, "server add 192.0.2.100@80@192.0.2.12 weight 21"),
        "weight 21 out of range 0-20 (the weightbound of port 192.0.2.100@80)"
    );
    run(
        &mut c,
        "server add 192.0.2.100@80@192.0.2.12 weight 20 fixedweight yes router 192.0.2.1 mapport 8080",
    );
    let s = server(&c, "192.0.2.100", 80, "192.0.2.12");
    assert_eq!(
        (s.weight, s.fixedweight, s.router, s.mapport),
        (20, true, Some(ip("192.0.2.1")), Some(8080))
    );
    run(
        &mut c,
        "server set 192.0.2.100@80@192.0.2.12 weight 0 fixedweight no router 192.0.2.3",
    );
    let s = server(&c, "192.0.2.100", 80, "192.0.2.12");
    assert_eq!(
        (s.weight, s.fixedweight, s.router),
        (0, false, Some(ip("192.0.2.3")))
    );
    assert!(!s.accepts_new());
    assert_eq!(
        fail(&mut c, "server set 192.0.2.100@80@192.0.2.12 weight 30"),
        "weight 30 out of range 0-20 (the weightbound of port 192.0.2.100@80)"
    );
    // A port with weightbound 7 gives a default weight of 3.
    run(&mut c, "port add 192.0.2.100@81 weightbound 7");
    run(&mut c, "server add 192.0.2.100@81@192.0.2.11");
    assert_eq!(server(&c, "192.0.2.100", 81, "192.0.2.11").weight, 3);
}

#[test]
fn lowering_weightbound_clamps_weights() {
    let mut c = config(
        "cluster add 192.0.2.100
         port add 192.0.2.100@80 weightbound 100
         server add 192.0.2.100@80@192.0.2.11 weight 90
         server add 192.0.2.100@80@192.0.2.12 weight 5",
    );
    run(&mut c, "port set 192.0.2.100@80 weightbound 10");
    assert_eq!(server(&c, "192.0.2.100", 80, "192.0.2.11").weight, 10);
    assert_eq!(server(&c, "192.0.2.100", 80, "192.0.2.12").weight, 5);
}

#[test]
fn server_add_errors() {
    let mut c = sample();
    assert_eq!(
        fail(&mut c, "server add 192.0.2.100@81@192.0.2.11"),
        "server on an unknown port 192.0.2.100@81"
    );
    assert_eq!(
        fail(&mut c, "server add 192.0.2.9@80@192.0.2.11"),
        "cluster 192.0.2.9 does not exist"
    );
    assert_eq!(
        fail(&mut c, "server add 192.0.2.100@80@192.0.2.14+192.0.2.11"),
        "server 192.0.2.100@80@192.0.2.11 already exists"
    );
    assert_eq!(
        fail(&mut c, "server add @81@192.0.2.11"),
        "no port matches '@81'"
    );
    assert_eq!(
        fail(&mut c, "server add 192.0.2.100@80@2001:db8::1"),
        "server 2001:db8::1 is not of the same address family as cluster 192.0.2.100"
    );
    assert_eq!(
        fail(
            &mut c,
            "server add 192.0.2.100@80@192.0.2.14 router 2001:db8::1"
        ),
        "router 2001:db8::1 is not of the same address family as server 192.0.2.100@80@192.0.2.14"
    );
}

#[test]
fn server_wildcards_and_lists() {
    let mut c = sample();
    // Port 80 of every cluster that has it.
    assert_eq!(
        run(&mut c, "server add @80@192.0.2.14"),
        Applied::Changed(Resolved::Servers(vec![
            (ip("192.0.2.100"), 80, ip("192.0.2.14")),
            (ip("192.0.2.101"), 80, ip("192.0.2.14"))
        ]))
    );
    // Every port of every cluster where server .11 is.
    assert_eq!(
        run(&mut c, "server down @@192.0.2.11"),
        Applied::Changed(Resolved::Servers(vec![
            (ip("192.0.2.100"), 80, ip("192.0.2.11")),
            (ip("192.0.2.100"), 443, ip("192.0.2.11")),
            (ip("192.0.2.101"), 80, ip("192.0.2.11"))
        ]))
    );
    assert!(server(&c, "192.0.2.100", 443, "192.0.2.11").down);
    assert!(!server(&c, "192.0.2.100", 443, "192.0.2.11").accepts_new());
    assert!(!server(&c, "192.0.2.100", 443, "192.0.2.12").down);
    run(&mut c, "server up 192.0.2.100@80+443@192.0.2.11");
    assert!(!server(&c, "192.0.2.100", 80, "192.0.2.11").down);
    assert!(server(&c, "192.0.2.101", 80, "192.0.2.11").down);
    assert_eq!(
        run(&mut c, "server status 192.0.2.101@@"),
        Applied::Query(Resolved::Servers(vec![
            (ip("192.0.2.101"), 80, ip("192.0.2.11")),
            (ip("192.0.2.101"), 80, ip("192.0.2.13")),
            (ip("192.0.2.101"), 80, ip("192.0.2.14"))
        ]))
    );
    run(&mut c, "server set @@ weight 1");
    assert!(
        c.clusters
            .values()
            .flat_map(|cl| cl.ports.values())
            .flat_map(|p| p.servers.values())
            .all(|s| s.weight == 1)
    );
    run(&mut c, "server remove @@192.0.2.14");
    assert_eq!(
        fail(&mut c, "server remove @@192.0.2.14"),
        "no server matches '@@192.0.2.14'"
    );
    assert_eq!(
        fail(&mut c, "server remove 192.0.2.100@80@192.0.2.14"),
        "server 192.0.2.100@80@192.0.2.14 does not exist"
    );
    assert_eq!(
        fail(&mut c, "server down 192.0.2.100@81@192.0.2.11"),
        "port 192.0.2.100@81 does not exist"
    );
    run(&mut c, "server remove 192.0.2.100@80@");
    assert!(port(&c, "192.0.2.100", 80).servers.is_empty());
    assert_eq!(
        fail(&mut c, "server report 192.0.2.100@80@192.0.2.11"),
        "server 192.0.2.100@80@192.0.2.11 does not exist"
    );
    assert_eq!(
        run(&mut c, "server report 192.0.2.100@80@"),
        Applied::Query(Resolved::Servers(vec![]))
    );
}

#[test]
fn nat_rules() {
    let mut c =
        config("executor set nfa 192.0.2.2\ncluster add 192.0.2.100\nport add 192.0.2.100@80");
    assert_eq!(
        fail(
            &mut c,
            "port add 192.0.2.100@81 method nat selectionalgorithm affinity"
        ),
        "port 192.0.2.100@81: selectionalgorithm affinity does not work with method nat \
         (use connection, conn+affin or hash)"
    );
    for ok in ["connection", "conn+affin", "hash"] {
        let mut c2 = c.clone();
        run(
            &mut c2,
            &format!("port add 192.0.2.100@81 method nat selectionalgorithm {ok}"),
        );
    }
    run(&mut c, "port add 192.0.2.100@81 method nat");
    assert_eq!(
        fail(
            &mut c,
            "port set 192.0.2.100@81 selectionalgorithm affinity"
        ),
        "port 192.0.2.100@81: selectionalgorithm affinity does not work with method nat \
         (use connection, conn+affin or hash)"
    );
    assert_eq!(
        fail(&mut c, "server add 192.0.2.100@81@192.0.2.11"),
        "server 192.0.2.100@81@192.0.2.11 needs a returnaddress: port 192.0.2.100@81 uses method nat"
    );
    assert_eq!(
        fail(
            &mut c,
            "server add 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.100"
        ),
        "returnaddress 192.0.2.100 of server 192.0.2.100@81@192.0.2.11 must differ from the cluster, \
         server and nfa addresses (it is the address of cluster 192.0.2.100)"
    );
    assert_eq!(
        fail(
            &mut c,
            "server add 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.11"
        ),
        "returnaddress 192.0.2.11 of server 192.0.2.100@81@192.0.2.11 must differ from the cluster, \
         server and nfa addresses (it is the server address)"
    );
    assert_eq!(
        fail(
            &mut c,
            "server add 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.2"
        ),
        "returnaddress 192.0.2.2 of server 192.0.2.100@81@192.0.2.11 must differ from the cluster, \
         server and nfa addresses (it is the nfa)"
    );
    assert_eq!(
        fail(
            &mut c,
            "server add 192.0.2.100@81@192.0.2.11 returnaddress 2001:db8::5"
        ),
        "returnaddress 2001:db8::5 is not of the same address family as server 192.0.2.100@81@192.0.2.11"
    );
    run(
        &mut c,
        "server add 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.50",
    );
    assert_eq!(
        server(&c, "192.0.2.100", 81, "192.0.2.11").returnaddress,
        Some(ip("192.0.2.50"))
    );
    // The returnaddress is fixed once given.
    assert_eq!(
        fail(
            &mut c,
            "server set 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.51"
        ),
        "the returnaddress of server 192.0.2.100@81@192.0.2.11 cannot be changed with server set; \
         remove the server and add it again"
    );
    run(
        &mut c,
        "server set 192.0.2.100@81@192.0.2.11 returnaddress 192.0.2.50 weight 3",
    );
    // Later changes must not make a returnaddress clash.
    assert_eq!(
        fail(&mut c, "executor set nfa 192.0.2.50"),
        fail(&mut c.clone(), "executor set nfa 192.0.2.50")
    );
    assert!(fail(&mut c, "executor set nfa 192.0.2.50").contains("(it is the nfa)"));
    assert!(
        fail(&mut c, "cluster add 192.0.2.50")
            .contains("(it is the address of cluster 192.0.2.50)")
    );
    // A MAC port whose servers lack a returnaddress cannot become NAT.
    run(&mut c, "server add 192.0.2.100@80@192.0.2.11");
    assert_eq!(
        fail(&mut c, "port set 192.0.2.100@80 method nat"),
        "server 192.0.2.100@80@192.0.2.11 needs a returnaddress: port 192.0.2.100@80 uses method nat"
    );
    run(&mut c, "server remove 192.0.2.100@80@192.0.2.11");
    run(
        &mut c,
        "server add 192.0.2.100@80@192.0.2.11 returnaddress 192.0.2.50",
    );
    run(&mut c, "port set 192.0.2.100@80 method nat");
    assert_eq!(port(&c, "192.0.2.100", 80).method, Method::Nat);
}

#[test]
fn nfa_is_not_a_cluster() {
    let mut c = config("cluster add 192.0.2.100");
    assert_eq!(
        fail(&mut c, "executor set nfa 192.0.2.100"),
        "nfa 192.0.2.100 is also a cluster address"
    );
    run(&mut c, "executor set nfa 192.0.2.2");
    assert_eq!(
        fail(&mut c, "cluster add 192.0.2.2"),
        "nfa 192.0.2.2 is also a cluster address"
    );
}

#[test]
fn failing_lists_change_nothing() {
    let mut c = sample();
    fail(&mut c, "cluster add 192.0.2.102+192.0.2.101");
    fail(&mut c, "port add 192.0.2.100+192.0.2.101@8080+443");
    fail(&mut c, "port add 192.0.2.100+192.0.2.9@8080");
    fail(&mut c, "port set 192.0.2.100+192.0.2.101@443 stickytime 9");
    fail(&mut c, "port remove 192.0.2.100@80+8080");
    fail(&mut c, "server add 192.0.2.100@80+81@192.0.2.14");
    fail(&mut c, "server add @80@192.0.2.14+192.0.2.13");
    fail(
        &mut c,
        "server set @80@192.0.2.11+192.0.2.12 weight 5 returnaddress 192.0.2.50",
    );
    fail(&mut c, "server down 192.0.2.100@80@192.0.2.11+192.0.2.13");
    fail(&mut c, "server remove 192.0.2.100+192.0.2.9@80@192.0.2.11");
    fail(&mut c, "cluster remove 192.0.2.100+192.0.2.9");
    assert_eq!(c, sample());
}

#[test]
fn commands_built_in_code_are_range_checked() {
    let mut c = config("cluster add 10.0.0.1");
    let bad = [
        Command::ExecutorSet(ExecutorSetting::HaTimeout(f64::NAN)),
        Command::ExecutorSet(ExecutorSetting::HaTimeout(-1.0)),
        Command::ManagerReachInterval(f64::INFINITY),
        Command::ClusterAdd {
            label: None,
            clusters: vec![],
            proportions: None,
            defaults: Default::default(),
            primaryhost: None,
        },
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::All,
                ports: Targets::List(vec![0]),
            },
            options: PortOptions::default(),
        },
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::All,
                ports: Targets::All,
            },
            options: PortOptions::default(),
        },
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::All,
                ports: Targets::List(vec![80]),
            },
            options: PortOptions {
                weightbound: Some(0),
                ..Default::default()
            },
        },
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::All,
                ports: Targets::List(vec![80]),
            },
            options: PortOptions {
                weightbound: Some(101),
                ..Default::default()
            },
        },
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::List(vec![]),
                ports: Targets::List(vec![80]),
            },
            options: PortOptions::default(),
        },
        Command::HaBackupAdd(Backup {
            role: Role::Primary,
            recovery: Recovery::Auto,
            port: 0,
        }),
        Command::HaKey(String::new()),
        Command::HaScripts("a b".to_string()),
    ];
    for cmd in bad {
        let before = c.clone();
        assert!(c.apply(&cmd).is_err(), "{cmd:?}");
        assert_eq!(c, before);
    }
}
