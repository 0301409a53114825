//! IBM configuration files as they are: the dispatcher-notes §3 file, classic executor and
//! cluster defaults inherited by ports, `porttype`, `address`, host names, nested files.

use super::*;
use std::collections::BTreeMap;

/// The illustrative saved file of dispatcher-notes.md §3, unchanged.
const IBM_SAMPLE: &str = include_str!("../../../../../examples/ibm-sample.cfg");

/// Host names from a table, as /etc/hosts would give them.
struct Hosts(BTreeMap<&'static str, &'static str>);

impl Resolver for Hosts {
    fn resolve(&mut self, name: &str) -> Result<IpAddr, String> {
        self.0
            .get(name)
            .map(|a| ip(a))
            .ok_or_else(|| "Name or service not known".to_string())
    }
}

fn hosts() -> Hosts {
    Hosts(BTreeMap::from([
        ("www1.example", "192.0.2.21"),
        ("www2.example", "192.0.2.22"),
        ("vip.example", "192.0.2.100"),
        ("lb1.example", "192.0.2.11"),
        ("lb2.example", "192.0.2.12"),
        ("gw.example", "192.0.2.1"),
    ]))
}

/// Files of a configuration directory, from a table.
struct Dir(BTreeMap<&'static str, String>);

impl FileSource for Dir {
    fn read(&mut self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{name}: No such file or directory"))
    }
}

fn load_with(text: &str, dir: &mut Dir, base: &Config) -> Result<Loaded, FileError> {
    load_file_with(text, "top.cfg", base, dir, &mut hosts())
}

#[test]
fn the_ibm_sample_loads_unchanged_and_saves_an_equivalent_file() {
    let loaded = load_file_with(
        IBM_SAMPLE,
        "ibm-sample.cfg",
        &Config::default(),
        &mut NoFiles,
        &mut NoResolver,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert!(c.executor.started);
    assert_eq!(c.executor.nfa, Some(ip("10.0.0.11")));
    let cluster = &c.clusters[&ip("10.0.0.100")];
    assert_eq!(
        (
            cluster.proportions.active,
            cluster.proportions.new,
            cluster.proportions.port,
            cluster.proportions.system
        ),
        (49, 50, 1, 0)
    );
    let p = port(c, "10.0.0.100", 80);
    assert_eq!((p.staletimeout, p.weightbound), (300, 20));
    assert_eq!(p.servers.len(), 2);
    assert!(c.health.manager.running);
    assert_eq!(c.health.advisors.len(), 1);
    assert_eq!(c.ha.heartbeats, vec![(ip("10.0.0.11"), ip("10.0.0.12"))]);
    assert_eq!(c.ha.reach, vec![ip("10.0.0.1")]);
    assert!(c.ha.backup.is_some());
    // `manager start manager.log 10004`: started, and the unused log file and port are said.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].starts_with("ibm-sample.cfg:11: manager start: the log file manager.log and the metric port 10004 are not used"),
        "{:?}",
        loaded.warnings
    );
    // file save writes an equivalent file: it loads back to the same configuration, in
    // IBM's order (HA last).
    let saved = c.to_commands().join("\n");
    assert_eq!(config(&saved), *c, "{saved}");
    let lines: Vec<&str> = saved.lines().collect();
    let last_object = lines
        .iter()
        .rposition(|l| l.starts_with("server add"))
        .unwrap();
    let first_ha = saved
        .lines()
        .position(|l| l.starts_with("highavailability"))
        .unwrap();
    assert!(last_object < first_ha, "{saved}");
}

#[test]
fn executor_and_cluster_defaults_are_inherited_by_ports_added_later() {
    let c = config(
        "executor set staletimeout 100\n\
         executor set stickytime 30\n\
         executor set fintimeout 20\n\
         cluster add 192.0.2.100 weightbound 50 staletimeout 200\n\
         cluster add 192.0.2.101\n\
         port add 192.0.2.100@80\n\
         port add 192.0.2.100@81 staletimeout 7 stickytime 0 weightbound 10\n\
         port add 192.0.2.101@80\n\
         port add 192.0.2.101@21\n\
         cluster set 192.0.2.101 stickytime 60\n\
         port add 192.0.2.101@82\n",
    );
    assert_eq!(c.executor.fintimeout, Some(20));
    let plan =
        crate::forward::Plan::compile(&c, &Default::default(), true, [0; 6], &Default::default());
    assert_eq!(plan.fin_timeout, std::time::Duration::from_secs(20));
    let p = port(&c, "192.0.2.100", 80);
    assert_eq!((p.staletimeout, p.stickytime, p.weightbound), (200, 30, 50));
    let p = port(&c, "192.0.2.100", 81);
    assert_eq!((p.staletimeout, p.stickytime, p.weightbound), (7, 0, 10));
    let p = port(&c, "192.0.2.101", 80);
    assert_eq!((p.staletimeout, p.stickytime, p.weightbound), (100, 30, 20));
    // The executor's staletimeout wins over IBM's per-port default (900 on port 21).
    assert_eq!(port(&c, "192.0.2.101", 21).staletimeout, 100);
    // Set after port 80 was added: only the port added later inherits it.
    assert_eq!(port(&c, "192.0.2.101", 80).stickytime, 30);
    assert_eq!(port(&c, "192.0.2.101", 82).stickytime, 60);
    // Saved (before the ports) and loaded back equal.
    let saved = c.to_commands();
    assert!(saved.contains(&"executor set fintimeout 20".to_string()));
    assert!(saved.contains(&"cluster add 192.0.2.100 staletimeout 200 weightbound 50".to_string()));
    assert!(saved.contains(&"cluster add 192.0.2.101 stickytime 60".to_string()));
    assert_eq!(config(&saved.join("\n")), c);
    // Ranges.
    assert!(parse_err("executor set fintimeout 0").contains("out of range 1-3600"));
    assert!(parse_err("cluster set 192.0.2.1 weightbound 101").contains("out of range 1-100"));
    assert!(parse_err("cluster set 192.0.2.1 address 192.0.2.2").contains("given at cluster add"));
    assert!(parse_err("cluster set 192.0.2.1").contains("missing keyword"));
    let mut c2 = c.clone();
    assert!(fail(&mut c2, "cluster set 198.51.100.1 stickytime 5").contains("does not exist"));
}

#[test]
fn porttype_tcp_udp_both() {
    let c = config(
        "cluster add 192.0.2.100\n\
         port add 192.0.2.100@53 porttype both\n\
         port add 192.0.2.100@54 porttype udp\n\
         port add 192.0.2.100@55 porttype tcp\n\
         port add 192.0.2.100@56 protocol udp\n",
    );
    let p = port(&c, "192.0.2.100", 53);
    assert!(p.both);
    assert_eq!(p.protocols(), &[Protocol::Tcp, Protocol::Udp]);
    assert_eq!(p.porttype_keyword(), "both");
    assert_eq!(port(&c, "192.0.2.100", 54).protocols(), &[Protocol::Udp]);
    assert_eq!(port(&c, "192.0.2.100", 55).protocols(), &[Protocol::Tcp]);
    assert_eq!(port(&c, "192.0.2.100", 56).protocols(), &[Protocol::Udp]);
    assert_eq!(config(&c.to_commands().join("\n")), c);
    // The plan serves both protocols on a `both` port, one on the others.
    let plan =
        crate::forward::Plan::compile(&c, &Default::default(), true, [0; 6], &Default::default());
    let vip = ip("192.0.2.100");
    assert!(plan.port(vip, 53, 6).is_some() && plan.port(vip, 53, 17).is_some());
    assert!(plan.port(vip, 54, 6).is_none() && plan.port(vip, 54, 17).is_some());
    assert!(plan.port(vip, 55, 6).is_some() && plan.port(vip, 55, 17).is_none());
    // `protocol` after `porttype both` makes it one protocol again.
    let mut c2 = c.clone();
    run(&mut c2, "port set 192.0.2.100@53 protocol udp");
    assert_eq!(port(&c2, "192.0.2.100", 53).protocols(), &[Protocol::Udp]);
    assert!(parse_err("port add 192.0.2.100@57 protocol tcp porttype udp").contains("given twice"));
    assert!(parse_err("port add 192.0.2.100@57 porttype sctp").contains("unknown keyword 'sctp'"));
    assert_eq!(
        cmd("port add 192.0.2.100@57 portt b").to_string(),
        "port add 192.0.2.100@57 porttype both"
    );
}

#[test]
fn server_and_cluster_names_with_an_address() {
    let c = config(
        "cluster add www address 192.0.2.100\n\
         port add 192.0.2.100@80\n\
         server add 192.0.2.100@80@ServerA address 192.0.2.21 weight 5\n",
    );
    assert!(c.clusters.contains_key(&ip("192.0.2.100")));
    assert_eq!(server(&c, "192.0.2.100", 80, "192.0.2.21").weight, 5);
    assert!(
        parse_err("server set 192.0.2.100@80@ServerA address 192.0.2.21")
            .contains("only be given at server add")
    );
    assert!(
        parse_err("server add 192.0.2.100@80@a+b address 192.0.2.21")
            .contains("one server name goes with one address")
    );
    assert!(
        parse_err("cluster add a+b address 192.0.2.21")
            .contains("one cluster name goes with one address")
    );
    // Without `address`, a name is a bad address when nothing resolves names.
    assert_eq!(
        parse_err("server add 192.0.2.100@80@ServerA"),
        "bad address 'ServerA'"
    );
}

#[test]
fn host_names_are_resolved_once_with_a_warning() {
    let text = "cluster add vip.example\n\
                port add vip.example@80\n\
                server add vip.example@80@www1.example+www2.example\n\
                highavailability heartbeat add lb1.example lb2.example\n\
                highavailability reach add gw.example\n";
    let loaded = load_with(text, &mut Dir(BTreeMap::new()), &Config::default()).unwrap();
    let c = &loaded.config;
    assert_eq!(port(c, "192.0.2.100", 80).servers.len(), 2);
    assert_eq!(c.ha.heartbeats, vec![(ip("192.0.2.11"), ip("192.0.2.12"))]);
    assert_eq!(c.ha.reach, vec![ip("192.0.2.1")]);
    assert!(
        loaded
            .warnings
            .contains(&"top.cfg:1: resolved vip.example to 192.0.2.100".to_string())
    );
    assert!(
        loaded
            .warnings
            .contains(&"top.cfg:3: resolved www2.example to 192.0.2.22".to_string())
    );
    assert!(
        loaded
            .warnings
            .contains(&"top.cfg:5: resolved gw.example to 192.0.2.1".to_string())
    );
    // Stored as addresses.
    assert!(!c.to_commands().join("\n").contains("example"));
    // A name that does not resolve: file:line, nothing loaded.
    let err = load_with(
        "cluster add 192.0.2.100\nport add 192.0.2.100@80\nserver add @80@nohost.example\n",
        &mut Dir(BTreeMap::new()),
        &Config::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "top.cfg:3: cannot resolve nohost.example: Name or service not known"
    );
    // Not a name: still a bad address, resolver or not.
    let err = load_with(
        "cluster add 192.0.2.300",
        &mut Dir(BTreeMap::new()),
        &Config::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "top.cfg:1: bad address '192.0.2.300'");
}

#[test]
fn nested_files_load_all_or_nothing_with_the_chain_in_errors() {
    let mut dir = Dir(BTreeMap::from([
        (
            "ports.cfg",
            "port add 192.0.2.100@80\nfile appendload servers.cfg\n".to_string(),
        ),
        (
            "servers.cfg",
            "server add 192.0.2.100@80@192.0.2.21\n".to_string(),
        ),
        (
            "bad.cfg",
            "port add 192.0.2.100@81\nserver add 192.0.2.100@82@192.0.2.21\n".to_string(),
        ),
        ("loop.cfg", "file appendload top.cfg\n".to_string()),
        ("new.cfg", "cluster add 198.51.100.1\n".to_string()),
        ("writes.cfg", "file save x.cfg\n".to_string()),
    ]));
    let c = load_with(
        "cluster add 192.0.2.100\nfile appendload ports.cfg\n",
        &mut dir,
        &Config::default(),
    )
    .unwrap()
    .config;
    assert_eq!(port(&c, "192.0.2.100", 80).servers.len(), 1);
    // A bad line deep inside: outer:line: inner:line: reason.
    let err = load_with("executor set fintimeout 9\nfile a bad.cfg\n", &mut dir, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "top.cfg:2: bad.cfg:2: server on an unknown port 192.0.2.100@82"
    );
    // A cycle is refused with the chain.
    let err = load_with("file appendload loop.cfg\n", &mut dir, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "top.cfg:1: loop.cfg:1: file appendload top.cfg: a cycle of files (top.cfg -> loop.cfg -> top.cfg)"
    );
    // newload inside a file starts again from nothing.
    let c2 = load_with(
        "cluster add 192.0.2.7\nfile newload new.cfg\n",
        &mut dir,
        &c,
    )
    .unwrap()
    .config;
    assert_eq!(
        c2.clusters.keys().copied().collect::<Vec<_>>(),
        vec![ip("198.51.100.1")]
    );
    // A load never writes.
    let err = load_with("file appendload writes.cfg\n", &mut dir, &c).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "top.cfg:1: writes.cfg:1: 'file save x.cfg' is refused inside a file being loaded"
        ),
        "{err}"
    );
    let err = load_with("file delete x.cfg\n", &mut dir, &c).unwrap_err();
    assert!(err.to_string().contains("refused inside a file"), "{err}");
    // A missing file.
    let err = load_with("file newload nothere.cfg\n", &mut dir, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "top.cfg:1: file newload nothere.cfg: nothere.cfg: No such file or directory"
    );
    // Depth: four files below the top load, a fifth is refused.
    let mut deep = Dir(BTreeMap::new());
    for i in 1..=5 {
        deep.0.insert(
            ["d1.cfg", "d2.cfg", "d3.cfg", "d4.cfg", "d5.cfg"][i - 1],
            if i < 5 {
                format!("file appendload d{}.cfg\n", i + 1)
            } else {
                "cluster add 192.0.2.9\n".to_string()
            },
        );
    }
    deep.0
        .insert("d4.cfg", "cluster add 192.0.2.9\n".to_string());
    assert!(load_with("file appendload d1.cfg\n", &mut deep, &Config::default()).is_ok());
    deep.0
        .insert("d4.cfg", "file appendload d5.cfg\n".to_string());
    let err = load_with("file appendload d1.cfg\n", &mut deep, &Config::default()).unwrap_err();
    assert!(
        err.to_string().ends_with("file appendload d5.cfg: files nest at most 4 deep (top.cfg -> d1.cfg -> d2.cfg -> d3.cfg -> d4.cfg -> d5.cfg)"),
        "{err}"
    );
}

#[test]
fn ha_statements_first_load_with_a_warning_and_save_last() {
    let text = "highavailability heartbeat add 192.0.2.11 192.0.2.12\n\
                highavailability backup add primary auto 12345\n\
                cluster add 192.0.2.100\n\
                port add 192.0.2.100@80\n\
                server add 192.0.2.100@80@192.0.2.21\n";
    let loaded = load_with(text, &mut Dir(BTreeMap::new()), &Config::default()).unwrap();
    assert_eq!(
        loaded.warnings,
        vec!["top.cfg:1: HA statements come before cluster/port/server statements (IBM asks for them last; `file save` writes them last)".to_string()]
    );
    let saved = loaded.config.to_commands();
    let first_ha = saved
        .iter()
        .position(|l| l.starts_with("highavailability"))
        .unwrap();
    assert!(
        saved[..first_ha]
            .iter()
            .any(|l| l.starts_with("server add"))
    );
    assert!(
        saved[first_ha..]
            .iter()
            .all(|l| l.starts_with("highavailability"))
    );
    // The same statements last: no warning.
    let last: Vec<&str> = text.lines().skip(2).chain(text.lines().take(2)).collect();
    let loaded2 = load_with(
        &last.join("\n"),
        &mut Dir(BTreeMap::new()),
        &Config::default(),
    )
    .unwrap();
    assert!(loaded2.warnings.is_empty());
    assert_eq!(loaded2.config, loaded.config);
}

#[test]
fn file_commands_are_in_the_grammar() {
    assert_eq!(
        cmd("fi sa x.cfg f"),
        Command::FileSave {
            name: "x.cfg".into(),
            force: true
        }
    );
    assert_eq!(
        cmd("dscontrol file save x.cfg"),
        Command::FileSave {
            name: "x.cfg".into(),
            force: false
        }
    );
    assert_eq!(
        cmd("file newload a.cfg"),
        Command::FileNewLoad("a.cfg".into())
    );
    assert_eq!(
        cmd("FILE APP a.cfg"),
        Command::FileAppendLoad("a.cfg".into())
    );
    assert_eq!(cmd("file rep"), Command::FileReport);
    assert_eq!(cmd("file del a.cfg"), Command::FileDelete("a.cfg".into()));
    for c in [
        "file save x.cfg force",
        "file newload a",
        "file appendload a",
        "file report",
        "file delete a",
    ] {
        let parsed = cmd(c);
        assert!(!parsed.is_mutation() && parsed.is_file_command(), "{c}");
        assert_eq!(parsed.to_string(), c);
    }
    assert!(
        parse_err("file save x.cfg y").contains("unknown keyword 'y' (expected one of: force)")
    );
    assert!(parse_err("file save").contains("missing file name"));
    assert!(parse_err("file report x").contains("unexpected word 'x'"));
    for bad in ["../x", "/etc/passwd", ".hidden", "..", "a/b"] {
        assert!(
            parse_err(&format!("file newload {bad}")).contains("bad file name"),
            "{bad}"
        );
    }
    // Applying a file command to a configuration changes nothing.
    let mut c = config("cluster add 192.0.2.100");
    let before = c.clone();
    assert!(matches!(run(&mut c, "file save x.cfg"), Applied::Query(_)));
    assert_eq!(c, before);
}
