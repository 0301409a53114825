//! The grammar: words in, commands out, and their display.

use super::*;

#[test]
fn executor_forms() {
    assert_eq!(cmd("executor start"), Command::ExecutorStart);
    assert_eq!(cmd("executor stop"), Command::ExecutorStop);
    assert_eq!(cmd("executor status"), Command::ExecutorStatus);
    assert_eq!(cmd("executor report"), Command::ExecutorReport);
    assert_eq!(
        cmd("executor set nfa 10.0.0.11"),
        Command::ExecutorSet(ExecutorSetting::Nfa(ip("10.0.0.11")))
    );
    assert_eq!(
        cmd("executor set clientgateway 10.0.0.1"),
        Command::ExecutorSet(ExecutorSetting::ClientGateway(ip("10.0.0.1")))
    );
    assert_eq!(
        cmd("executor set hatimeout 0.2"),
        Command::ExecutorSet(ExecutorSetting::HaTimeout(0.2))
    );
    assert_eq!(
        cmd("executor set hatimeout 3"),
        Command::ExecutorSet(ExecutorSetting::HaTimeout(3.0))
    );
    for bad in ["0", "-1", "abc", "inf", "NaN", "1e9"] {
        assert_eq!(
            parse_err(&format!("executor set hatimeout {bad}")),
            format!("bad hatimeout '{bad}' (expected seconds, a number from 0.01 to 3600)")
        );
    }
    assert_eq!(
        parse_err("executor set hatimeout"),
        "missing seconds after 'hatimeout'"
    );
    assert_eq!(
        parse_err("executor set nfa 10.0.0.300"),
        "bad address '10.0.0.300'"
    );
    assert_eq!(parse_err("executor start now"), "unexpected word 'now'");
}

#[test]
fn abbreviations_and_ambiguity() {
    assert_eq!(cmd("ex star"), Command::ExecutorStart);
    assert_eq!(
        parse_err("ex sta"),
        "ambiguous keyword 'sta': start, status"
    );
    assert_eq!(cmd("e sto"), Command::ExecutorStop);
    assert_eq!(cmd("ex stat"), Command::ExecutorStatus);
    assert_eq!(cmd("ex rep"), Command::ExecutorReport);
    assert_eq!(cmd("EXECUTOR Start"), Command::ExecutorStart);
    assert_eq!(
        cmd("ex se h 2"),
        Command::ExecutorSet(ExecutorSetting::HaTimeout(2.0))
    );
    assert_eq!(
        parse_err("ex st"),
        "ambiguous keyword 'st': start, status, stop"
    );
    assert_eq!(
        parse_err("ex s"),
        "ambiguous keyword 's': set, start, status, stop"
    );
    assert_eq!(
        parse_err("cl re @"),
        "ambiguous keyword 're': remove, report"
    );
    assert_eq!(
        cmd("p a 10.0.0.1@80 m n sel conn+ sti 60 stal 30 w 50 res y rep b pro u"),
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::List(vec![ip("10.0.0.1")]),
                ports: Targets::List(vec![80])
            },
            options: PortOptions {
                method: Some(Method::Nat),
                protocol: Some(Protocol::Udp),
                both: Some(false),
                selection: Some(Selection::ConnAffin),
                stickytime: Some(60),
                staletimeout: Some(30),
                weightbound: Some(50),
                reset: Some(true),
                repstrategy: Some(RepStrategy::Both),
            },
        }
    );
    // An exact keyword wins over longer ones it is a prefix of.
    assert_eq!(
        cmd("port set 10.0.0.1@80 selectionalgorithm connection"),
        cmd("port set 10.0.0.1@80 selectionalgorithm conne")
    );
    assert_eq!(
        parse_err("port set 10.0.0.1@80 selectionalgorithm conn"),
        "ambiguous keyword 'conn': conn+affin, connection"
    );
    assert_eq!(
        parse_err("port set 10.0.0.1@80 s 5"),
        "ambiguous keyword 's': selectionalgorithm, staletimeout, stickytime"
    );
    assert_eq!(cmd("h st"), Command::HaStatus);
    assert_eq!(
        parse_err("h s"),
        "ambiguous keyword 's': scripts, status, sync"
    );
}

#[test]
fn unknown_keywords_name_the_word_and_the_choices() {
    assert_eq!(
        parse_err("port add 10.0.0.1@80 methd nat"),
        "unknown keyword 'methd' (expected one of: method, protocol, porttype, selectionalgorithm, stickytime, \
         staletimeout, weightbound, reset, repstrategy)"
    );
    assert_eq!(
        parse_err("frobnicate"),
        "unknown keyword 'frobnicate' (expected one of: executor, cluster, port, server, highavailability, manager, advisor, sasp, diagnostics, file)"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 method dsr"),
        "unknown keyword 'dsr' (expected one of: mac, nat)"
    );
    assert_eq!(
        parse_err("executor"),
        "missing keyword after 'executor' (expected one of: start, stop, status, report, set)"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 method"),
        "missing keyword after 'method' (expected one of: mac, nat)"
    );
    assert_eq!(parse_err("cluster add"), "missing cluster after 'add'");
    assert_eq!(
        parse_err("server set 10.0.0.1@80@10.0.0.2 mapport 8080"),
        "option 'mapport' is not allowed in server set: it can only be given at server add"
    );
    assert_eq!(
        parse_err("port set 10.0.0.1@80 stickytime 1 stickytime 2"),
        "option 'stickytime' given twice"
    );
    assert_eq!(parse(&[]).unwrap_err(), ParseError::Empty);
    assert!(matches!(
        parse(&[""]),
        Err(ParseError::UnknownKeyword { .. })
    ));
}

#[test]
fn parse_line_comments_prefixes_and_blank_lines() {
    assert_eq!(parse_line(""), Ok(None));
    assert_eq!(parse_line("   \t "), Ok(None));
    assert_eq!(parse_line("# a comment"), Ok(None));
    assert_eq!(parse_line("   # indented comment"), Ok(None));
    assert_eq!(
        parse_line("dscontrol executor start # start it"),
        Ok(Some(Command::ExecutorStart))
    );
    assert_eq!(
        parse_line("tandemctl ex star\r"),
        Ok(Some(Command::ExecutorStart))
    );
    assert_eq!(
        parse_line("DSCONTROL executor start"),
        Ok(Some(Command::ExecutorStart))
    );
    assert!(parse_err("dscontrol").starts_with("missing keyword after 'dscontrol'"));
    assert!(parse_err("dscontrol # nothing").starts_with("missing keyword after 'dscontrol'"));
}

#[test]
fn addresses_ports_and_numbers() {
    assert_eq!(
        parse_err("cluster add 192.0.2.300"),
        "bad address '192.0.2.300'"
    );
    assert_eq!(
        parse_err("cluster add www.example.com"),
        "bad address 'www.example.com'"
    );
    assert_eq!(parse_err("cluster add 0.0.0.0"), "bad address '0.0.0.0'");
    assert_eq!(
        parse_err("port add 10.0.0.1@0"),
        "port 0 out of range 1-65535"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@70000"),
        "port 70000 out of range 1-65535"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@99999999999999999999999"),
        "port 99999999999999999999999 out of range 1-65535"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@http"),
        "bad port 'http' (expected a number)"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@-1"),
        "bad port '-1' (expected a number)"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 weightbound 0"),
        "weightbound 0 out of range 1-100"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 weightbound 101"),
        "weightbound 101 out of range 1-100"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 staletimeout 0"),
        "staletimeout 0 out of range 1-4294967295"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@80 stickytime x"),
        "bad stickytime 'x' (expected a number)"
    );
    assert_eq!(
        parse_err("server add 10.0.0.1@80@10.0.0.2 weight 101"),
        "weight 101 out of range 0-100"
    );
    assert_eq!(
        parse_err("server add 10.0.0.1@80@10.0.0.2 mapport 0"),
        "port 0 out of range 1-65535"
    );
    assert_eq!(
        parse_err("port add 10.0.0.1"),
        "bad target '10.0.0.1' (expected CLUSTER@PORT)"
    );
    assert_eq!(
        parse_err("server add 10.0.0.1@80"),
        "bad target '10.0.0.1@80' (expected CLUSTER@PORT@SERVER)"
    );
    assert_eq!(
        parse_err("cluster add 10.0.0.1@80"),
        "bad target '10.0.0.1@80' (expected CLUSTER[+CLUSTER...] or @)"
    );
    assert_eq!(
        parse_err("cluster add 10.0.0.1++10.0.0.2"),
        "bad target '10.0.0.1++10.0.0.2' (expected items joined by single '+' signs)"
    );
    // IPv6 everywhere.
    assert_eq!(
        cmd("server add 2001:db8::100@80@2001:db8::11+2001:db8::12"),
        Command::ServerAdd {
            target: ServerTarget {
                clusters: Targets::List(vec![ip("2001:db8::100")]),
                ports: Targets::List(vec![80]),
                servers: Targets::List(vec![ip("2001:db8::11"), ip("2001:db8::12")]),
            },
            options: ServerOptions::default(),
        }
    );
}

#[test]
fn targets_wildcards_and_lists() {
    assert_eq!(
        cmd("cluster status @"),
        Command::ClusterStatus(Targets::All)
    );
    assert_eq!(
        cmd("cluster remove 10.0.0.1+10.0.0.2+10.0.0.1"),
        Command::ClusterRemove(Targets::List(vec![ip("10.0.0.1"), ip("10.0.0.2")]))
    );
    assert_eq!(
        parse_err("cluster add @"),
        "the '@' wildcard is not allowed for the cluster in '@' (cluster add needs explicit clusters)"
    );
    assert_eq!(
        cmd("port status @"),
        Command::PortStatus(PortTarget {
            clusters: Targets::All,
            ports: Targets::All
        })
    );
    assert_eq!(
        cmd("port report 10.0.0.1@"),
        Command::PortReport(PortTarget {
            clusters: Targets::List(vec![ip("10.0.0.1")]),
            ports: Targets::All
        })
    );
    assert_eq!(
        cmd("port add @80+443"),
        Command::PortAdd {
            target: PortTarget {
                clusters: Targets::All,
                ports: Targets::List(vec![80, 443])
            },
            options: PortOptions::default(),
        }
    );
    assert_eq!(
        parse_err("port add 10.0.0.1@"),
        "the '@' wildcard is not allowed for the port in '10.0.0.1@' (port add needs explicit ports)"
    );
    assert_eq!(
        cmd("server down @@"),
        Command::ServerDown(ServerTarget {
            clusters: Targets::All,
            ports: Targets::All,
            servers: Targets::All
        })
    );
    assert_eq!(
        cmd("server add @80@10.0.0.11"),
        Command::ServerAdd {
            target: ServerTarget {
                clusters: Targets::All,
                ports: Targets::List(vec![80]),
                servers: Targets::List(vec![ip("10.0.0.11")]),
            },
            options: ServerOptions::default(),
        }
    );
    assert_eq!(
        parse_err("server add 10.0.0.1@80@"),
        "the '@' wildcard is not allowed for the server in '10.0.0.1@80@' (server add needs explicit servers)"
    );
    assert_eq!(
        parse_err("server status @@@"),
        "bad target '@@@' (expected CLUSTER@PORT@SERVER)"
    );
}

#[test]
fn every_command_form_parses_and_displays_back() {
    let lines = [
        "executor start",
        "executor stop",
        "executor status",
        "executor report",
        "executor set nfa 10.0.0.11",
        "executor set clientgateway 10.0.0.1",
        "executor set hatimeout 0.2",
        "executor set packetio auto",
        "executor set packetio afxdp",
        "executor set packetio afpacket",
        "executor set metrics 127.0.0.1:9100",
        "executor set metrics [2001:db8::1]:9100",
        "executor set metrics off",
        "executor set loglevel debug",
        "cluster add 10.0.0.100+10.0.0.101",
        "cluster remove @",
        "cluster report 10.0.0.100",
        "cluster status 10.0.0.100+10.0.0.101",
        "port add 10.0.0.100@80+443 method nat protocol udp selectionalgorithm hash stickytime 5 staletimeout 60 \
         weightbound 50 reset yes repstrategy connection",
        "port add @21",
        "port set 10.0.0.100@80 selectionalgorithm affinity reset no repstrategy affinity",
        "port remove 10.0.0.100@80",
        "port report @",
        "port status 10.0.0.100@",
        "server add 10.0.0.100@80@10.0.0.21 weight 7 fixedweight yes returnaddress 10.0.0.50 router 10.0.0.1 \
         mapport 8080",
        "server set @80@10.0.0.21 weight 0 fixedweight no returnaddress 10.0.0.50 router 10.0.0.2",
        "server down 10.0.0.100@80@10.0.0.21",
        "server up @@10.0.0.21",
        "server remove 10.0.0.100@@",
        "server report @@",
        "server status 10.0.0.100@80+443@10.0.0.21+10.0.0.22",
        "highavailability heartbeat add 10.0.0.11 10.0.0.12",
        "highavailability heartbeat delete 10.0.0.12",
        "highavailability reach add 10.0.0.1",
        "highavailability reach delete 10.0.0.1",
        "highavailability backup add primary auto 12345",
        "highavailability backup add backup manual 12345",
        "highavailability backup delete",
        "highavailability status",
        "highavailability backup set recovery manual",
        "highavailability takeover",
        "highavailability key /etc/tandem/ha.key",
        "highavailability key generate /etc/tandem/new.key",
        "highavailability scripts /etc/tandem/scripts",
        "highavailability maintenance",
        "highavailability maintenance start",
        "highavailability maintenance stop",
        "manager reach set interval 1.5",
    ];
    for line in lines {
        let c = cmd(line);
        assert_eq!(c.to_string(), line, "canonical form");
        assert_eq!(cmd(&c.to_string()), c);
    }
}

#[test]
fn mutations_and_queries() {
    for q in [
        "executor status",
        "executor report",
        "cluster report @",
        "cluster status @",
        "port report @",
        "port status @",
        "server report @@",
        "server status @@",
        "highavailability status",
        "highavailability takeover",
        "highavailability maintenance",
    ] {
        assert!(!is_mutation(&cmd(q)), "{q}");
    }
    for m in [
        "executor start",
        "executor stop",
        "cluster add 10.0.0.1",
        "server down @@",
        "highavailability key k",
    ] {
        assert!(is_mutation(&cmd(m)), "{m}");
    }
}

#[test]
fn words_from_tandemctl_are_not_split_again() {
    // A key file whose name holds a space and a '#' reaches the grammar whole (a joined and
    // re-split line would have cut it to '/etc/tandem/my'), and is refused with the reason:
    // `file save` could not write it back as a line.
    assert_eq!(
        parse_words(&["highavailability", "key", "/etc/tandem/my key#1"])
            .unwrap_err()
            .to_string(),
        "bad key file '/etc/tandem/my key#1' (must not be empty or contain whitespace, '#' or '\"')"
    );
    // A word from tandemctl that starts with a quote would be written back as a quoted word,
    // which reads back without its quotes: refused too.
    assert!(
        parse_words(&["highavailability", "key", "\"k\""])
            .unwrap_err()
            .to_string()
            .starts_with("bad key file")
    );
    assert_eq!(
        parse_words(&["dscontrol", "executor", "start"]),
        Ok(Some(Command::ExecutorStart))
    );
    assert_eq!(parse_words(&[]), Ok(None));
    assert!(parse_words(&["tandemctl"]).is_err());
}
