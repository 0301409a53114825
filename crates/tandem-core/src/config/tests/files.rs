//! Configuration files: loading, and `file save` order and round trips.

use super::*;

const GOOD_FILE: &str = "\
# Tandem configuration
dscontrol executor start
dscontrol executor set nfa 10.0.0.11
dscontrol executor set hatimeout 2
dscontrol highavailability reach add 10.0.0.1   # HA statements may come first
cluster add 10.0.0.100
executor status
port add 10.0.0.100@80 selectionalgorithm connection
port set 10.0.0.100@80 staletimeout 300
port set 10.0.0.100@80 weightbound 20
port add 10.0.0.100@443 method nat

server add 10.0.0.100@80@10.0.0.21 weight 10
server add 10.0.0.100@80@10.0.0.22 weight 10
server add 10.0.0.100@443@10.0.0.21 returnaddress 10.0.0.50 router 10.0.0.21
server down 10.0.0.100@80@10.0.0.22
server status @@
dscontrol highavailability heartbeat add 10.0.0.11 10.0.0.12
dscontrol highavailability backup add primary auto 12345
";

#[test]
fn load_good_file() {
    let c = config(GOOD_FILE);
    assert!(c.executor.started);
    assert_eq!(c.executor.nfa, Some(ip("10.0.0.11")));
    assert_eq!(c.clusters.len(), 1);
    assert_eq!(port(&c, "10.0.0.100", 443).method, Method::Nat);
    assert!(server(&c, "10.0.0.100", 80, "10.0.0.22").down);
    assert_eq!(c.ha.reach, vec![ip("10.0.0.1")]);
    assert_eq!(c.ha.backup.map(|b| b.port), Some(12345));
    // appendload on top of a running configuration.
    let c2 = load_file("cluster add 10.0.0.101\nport add @8080", "more.cfg", &c).unwrap();
    assert_eq!(c2.clusters.len(), 2);
    assert!(port(&c2, "10.0.0.100", 8080).servers.is_empty());
    assert!(c2.clusters[&ip("10.0.0.101")].ports.contains_key(&8080));
}

#[test]
fn load_file_reports_the_first_bad_line() {
    let base = config("cluster add 192.0.2.100\nport add 192.0.2.100@80");
    let cases = [
        (
            "port add 192.0.2.100@81 methd nat",
            "unknown keyword 'methd' (expected one of: method, protocol",
        ),
        ("cluster add 192.0.2.300", "bad address '192.0.2.300'"),
        ("port add 192.0.2.100@0", "port 0 out of range 1-65535"),
        (
            "port add 192.0.2.100@70000",
            "port 70000 out of range 1-65535",
        ),
        (
            "server add 192.0.2.100@81@192.0.2.11",
            "server on an unknown port 192.0.2.100@81",
        ),
        (
            "cluster add 192.0.2.100",
            "cluster 192.0.2.100 already exists",
        ),
        (
            "server status 192.0.2.100@80@192.0.2.300",
            "bad address '192.0.2.300'",
        ),
    ];
    for (bad, reason) in cases {
        let text = format!(
            "# header\ncluster add 192.0.2.101\nport add 192.0.2.101@80\n{bad}\nserver add @80@192.0.2.11\n"
        );
        let err = load_file(&text, "bad.cfg", &base).unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(err.file, "bad.cfg");
        let text = err.to_string();
        assert!(text.starts_with(&format!("bad.cfg:4: {reason}")), "{text}");
    }
    // Only the first error is reported.
    let err = load_file("cluster add 1.2.3.4.5\nport add x", "f", &base).unwrap_err();
    assert_eq!(err.to_string(), "f:1: bad address '1.2.3.4.5'");
    assert!(matches!(
        err.error,
        CommandError::Parse(ParseError::BadAddress(_))
    ));
    let err = load_file("\n\nserver add 192.0.2.100@81@192.0.2.11", "f", &base).unwrap_err();
    assert_eq!(
        err.error,
        CommandError::Config(ConfigError::ServerOnUnknownPort {
            cluster: ip("192.0.2.100"),
            port: 81
        })
    );
}

#[test]
fn load_the_demo_configuration() {
    let c = config(include_str!("../../../../../examples/demo.cfg"));
    assert!(c.executor.started);
    let p8080 = port(&c, "192.0.2.100", 8080);
    assert_eq!(p8080.method, Method::Nat);
    assert_eq!(
        p8080.servers[&ip("192.0.2.13")].returnaddress,
        Some(ip("192.0.2.200"))
    );
    assert_eq!(p8080.servers[&ip("192.0.2.13")].mapport, Some(80));
    assert_eq!(port(&c, "192.0.2.100", 9999).protocol, Protocol::Udp);
    assert_eq!(port(&c, "192.0.2.100", 9999).servers.len(), 3);
    assert_eq!(config(&c.to_commands().join("\n")), c);
}

#[test]
fn to_commands_order_and_round_trip() {
    let c = config(GOOD_FILE);
    let lines = c.to_commands();
    assert_eq!(
        lines,
        vec![
            "executor start",
            "executor set nfa 10.0.0.11",
            "executor set hatimeout 2",
            "cluster add 10.0.0.100",
            "port add 10.0.0.100@80 method mac protocol tcp selectionalgorithm connection stickytime 0 \
             staletimeout 300 weightbound 20 reset no repstrategy none",
            "port add 10.0.0.100@443 method nat protocol tcp selectionalgorithm connection stickytime 0 \
             staletimeout 300 weightbound 20 reset no repstrategy none",
            "server add 10.0.0.100@80@10.0.0.21 weight 10",
            "server add 10.0.0.100@80@10.0.0.22 weight 10",
            "server add 10.0.0.100@443@10.0.0.21 weight 10 returnaddress 10.0.0.50 router 10.0.0.21",
            "server down 10.0.0.100@80@10.0.0.22",
            "manager reach set interval 2",
            "highavailability heartbeat add 10.0.0.11 10.0.0.12",
            "highavailability reach add 10.0.0.1",
            "highavailability backup add primary auto 12345",
        ]
    );
    assert_eq!(config(&lines.join("\n")), c);
    let prefixed: Vec<String> = lines.iter().map(|l| format!("dscontrol {l}")).collect();
    assert_eq!(config(&prefixed.join("\n")), c);
}

#[test]
fn round_trip_of_a_rich_configuration() {
    let c = config(
        "executor set nfa 2001:db8::2
         executor set clientgateway 2001:db8::1
         executor set hatimeout 0.3
         cluster add 2001:db8::100+192.0.2.100
         port add 2001:db8::100@53 protocol udp selectionalgorithm hash staletimeout 5 repstrategy both
         port add 192.0.2.100@21+23 selectionalgorithm conn+affin stickytime 60 weightbound 100 reset yes method nat
         server add 2001:db8::100@53@2001:db8::11 weight 0 fixedweight yes
         server add 192.0.2.100@@192.0.2.11 returnaddress 192.0.2.50 mapport 2121 weight 77
         server down @23@192.0.2.11
         manager reach set interval 7.25
         highavailability key /etc/tandem/key
         highavailability scripts /etc/tandem/scripts
         highavailability heartbeat add 2001:db8::2 2001:db8::3
         highavailability backup add backup manual 20000",
    );
    let lines = c.to_commands();
    assert_eq!(config(&lines.join("\n")), c);
    assert_eq!(
        Config::default().to_commands(),
        vec!["executor set hatimeout 2", "manager reach set interval 2"]
    );
    assert_eq!(
        config(&Config::default().to_commands().join("\n")),
        Config::default()
    );
}

#[test]
fn config_serializes() {
    // The daemon renders reports from the model; it must stay serializable.
    fn assert_serialize<T: serde::Serialize>(_: &T) {}
    assert_serialize(&sample());
    assert_serialize(&cmd("port add @80"));
    assert_serialize(&Applied::Query(Resolved::Executor));
}

/// Every health field away from its default, saved in IBM's order and loaded back equal.
#[test]
fn health_configuration_saves_in_order_and_loads_back() {
    let c = config(
        r#"executor set nfa 192.0.2.2
         cluster add 192.0.2.100 proportions 40 30 20 10
         cluster add 192.0.2.101
         port add 192.0.2.100@80+443
         port add 192.0.2.101@80
         server add 192.0.2.100@80@192.0.2.11 advisorrequest "HEAD /health HTTP/1.1\r\nHost: www # 1" advisorresponse "200"
         server add 192.0.2.100@80@192.0.2.12
         server add 192.0.2.100@443@192.0.2.11
         server add 192.0.2.101@80@192.0.2.11 advisorresponse "say \"ok\"\\"
         manager quiesce 192.0.2.100@80@192.0.2.12
         server down 192.0.2.100@443@192.0.2.11
         advisor start http 80
         advisor interval http 80 3
         advisor receivetimeout http 80 1.5
         advisor retries http 80 2
         advisor timeout http 80 60
         advisor start ADV_load 192.0.2.100@443
         advisor start connect 192.0.2.101@80
         advisor connecttimeout connect 192.0.2.101@80 5
         advisor interval connect 192.0.2.101@80 2
         manager interval 4
         manager smoothing 2.5
         manager sensitivity 0
         manager start
         sasp add 192.0.2.100@80 gwm 198.51.100.7 mode pull interval 9 members changed
         sasp add 192.0.2.100@80 gwm 198.51.100.8 port 4000 grace 0 tls yes
         sasp add 192.0.2.101 gwm 2001:db8::7
         highavailability heartbeat add 192.0.2.2 192.0.2.3
         highavailability backup add primary auto 12345"#,
    );
    // What the fields hold.
    let a = &c.health.advisors[&AdvisorKey {
        kind: AdvisorKind::Connect,
        cluster: Some(ip("192.0.2.101")),
        port: 80,
    }];
    assert_eq!(
        (a.interval, a.connecttimeout, a.receivetimeout),
        (2.0, 5.0, 2.0)
    );
    assert_eq!(
        server(&c, "192.0.2.101", 80, "192.0.2.11")
            .advisorresponse
            .as_deref(),
        Some("say \"ok\"\\")
    );
    let lines = c.to_commands();
    assert_eq!(
        lines,
        vec![
            "executor set nfa 192.0.2.2",
            "executor set hatimeout 2",
            "cluster add 192.0.2.100",
            "cluster set 192.0.2.100 proportions 40 30 20 10",
            "cluster add 192.0.2.101",
            "port add 192.0.2.100@80 method mac protocol tcp selectionalgorithm connection stickytime 0 \
             staletimeout 300 weightbound 20 reset no repstrategy none",
            "port add 192.0.2.100@443 method mac protocol tcp selectionalgorithm connection stickytime 0 \
             staletimeout 300 weightbound 20 reset no repstrategy none",
            "port add 192.0.2.101@80 method mac protocol tcp selectionalgorithm connection stickytime 0 \
             staletimeout 300 weightbound 20 reset no repstrategy none",
            r#"server add 192.0.2.100@80@192.0.2.11 weight 10 advisorrequest "HEAD /health HTTP/1.1\r\nHost: www # 1" advisorresponse "200""#,
            "server add 192.0.2.100@80@192.0.2.12 weight 10",
            "server add 192.0.2.100@443@192.0.2.11 weight 10",
            r#"server add 192.0.2.101@80@192.0.2.11 weight 10 advisorresponse "say \"ok\"\\""#,
            "server down 192.0.2.100@443@192.0.2.11",
            "manager quiesce 192.0.2.100@80@192.0.2.12",
            "manager interval 4",
            "manager sensitivity 0",
            "manager smoothing 2.5",
            "manager start",
            "advisor start connect 192.0.2.101@80",
            "advisor interval connect 192.0.2.101@80 2",
            "advisor connecttimeout connect 192.0.2.101@80 5",
            "advisor start http 80",
            "advisor interval http 80 3",
            "advisor receivetimeout http 80 1.5",
            "advisor retries http 80 2",
            "advisor timeout http 80 60",
            "advisor start ADV_load 192.0.2.100@443",
            "sasp add 192.0.2.100@80 gwm 198.51.100.7 mode pull members changed interval 9",
            "sasp add 192.0.2.100@80 gwm 198.51.100.8 port 4000 grace 0 tls yes",
            "sasp add 192.0.2.101 gwm 2001:db8::7",
            "manager reach set interval 2",
            "highavailability heartbeat add 192.0.2.2 192.0.2.3",
            "highavailability backup add primary auto 12345",
        ]
    );
    assert_eq!(config(&lines.join("\n")), c);
    // Each line is one command that displays as itself.
    for line in &lines {
        assert_eq!(&cmd(line).to_string(), line);
    }
}

#[test]
fn packetio_is_saved_when_not_auto_and_is_node_local() {
    let c = config("executor set packetio afpacket");
    assert_eq!(c.executor.packetio, PacketIo::Afpacket);
    let saved: Vec<String> = c.saved_commands().iter().map(|c| c.to_string()).collect();
    assert!(
        saved.contains(&"executor set packetio afpacket".to_string()),
        "{saved:?}"
    );
    let auto = config("executor set packetio auto");
    assert_eq!(auto.executor.packetio, PacketIo::Auto);
    assert!(
        !auto
            .saved_commands()
            .iter()
            .any(|c| c.to_string().contains("packetio"))
    );
    assert!(crate::sync::is_node_local(
        &parse_line("executor set packetio afxdp").unwrap().unwrap()
    ));
    assert!(parse_line("executor set packetio xdp").is_err());
}

#[test]
fn metrics_and_loglevel_are_saved_when_set_and_are_node_local() {
    let c = config("executor set metrics 192.0.2.1:9100\nexecutor set loglevel warn");
    assert_eq!(c.executor.metrics, Some("192.0.2.1:9100".parse().unwrap()));
    assert_eq!(c.executor.loglevel, LogLevel::Warn);
    let saved: Vec<String> = c.saved_commands().iter().map(|c| c.to_string()).collect();
    assert!(
        saved.contains(&"executor set metrics 192.0.2.1:9100".to_string()),
        "{saved:?}"
    );
    assert!(
        saved.contains(&"executor set loglevel warn".to_string()),
        "{saved:?}"
    );
    let default = config("executor set metrics off\nexecutor set loglevel info");
    assert_eq!(default.executor.metrics, None);
    assert!(!default.saved_commands().iter().any(|c| {
        let l = c.to_string();
        l.contains("metrics") || l.contains("loglevel")
    }));
    for line in [
        "executor set metrics 192.0.2.1:9100",
        "executor set loglevel trace",
    ] {
        assert!(crate::sync::is_node_local(
            &parse_line(line).unwrap().unwrap()
        ));
    }
    for bad in [
        "executor set metrics 192.0.2.1",
        "executor set metrics 192.0.2.1:0",
        "executor set metrics 192.0.2.1:70000",
        "executor set metrics 2001:db8::1:9100",
        "executor set metrics",
        "executor set loglevel loud",
        "executor set loglevel",
    ] {
        assert!(parse_line(bad).is_err(), "{bad} parsed");
    }
    // Prefixes work as for every keyword.
    assert_eq!(
        parse_line("ex se log deb").unwrap().unwrap().to_string(),
        "executor set loglevel debug"
    );
}
