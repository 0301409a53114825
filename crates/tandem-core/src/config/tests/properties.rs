//! Properties: no input panics, parsed commands display back, saved configurations load back.

use super::*;
use proptest::prelude::*;

/// Words that hit the grammar often, plus arbitrary strings.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "executor", "cluster", "port", "server", "highavailability", "manager", "ex", "s", "st",
            "add", "set", "remove", "report", "status", "down", "up", "start", "stop", "heartbeat",
            "reach", "backup", "delete", "takeover", "key", "scripts", "maintenance", "interval", "sync", "off", "on",
            "nfa", "clientgateway", "hatimeout", "method", "nat", "mac", "protocol", "udp",
            "selectionalgorithm", "affinity", "conn+affin", "hash", "stickytime", "staletimeout",
            "weightbound", "weight", "reset", "yes", "no", "repstrategy", "both", "fixedweight",
            "returnaddress", "router", "mapport", "primary", "auto", "manual", "@", "@@", "@80",
            "10.0.0.1", "10.0.0.1@80", "10.0.0.1@80@10.0.0.2", "@@10.0.0.2", "10.0.0.1+10.0.0.3",
            "10.0.0.5", "::1", "0", "1", "20", "100", "65535", "65536", "0.2", "-1", "1e400", "#",
            "dscontrol", "+", "@+", "10.0.0.1@+80", "::ffff:10.0.0.1@80@10.0.0.2",
            "advisor", "sasp", "a", "sa", "list", "connect", "http", "https", "ping", "dns",
            "ADV_x", "adv_", "db2", "connecttimeout", "receivetimeout", "retries", "timeout",
            "unlimited", "sensitivity", "smoothing", "quiesce", "unquiesce", "daily", "proportions",
            "50", "gwm", "mode", "push", "pull", "members", "changed", "all", "grace", "tls",
            "advisorrequest", "advisorresponse", "\"", "\"a b\"", "\"\\r\\n\"", "\\", "\"#\"",
            "\"x", "x\"", "\\q", "loglevel", "version", "metric", "refresh", "diagnostics", "di", "/tmp/d.tar.gz",
            "ha", "configure", "failover", "secondary", "floating", "local", "partner", "sync",
            "pinginterval", "recovery", "primaryip", "secondaryip", "192.0.2.100", "192.0.2.101",
            "192.0.2.100+192.0.2.101",
            "file", "newload", "appendload", "force", "delete", "porttype", "address",
            "fintimeout", "www.example", "a.cfg", "../a", "manager.log", "10004",
        ]).prop_map(String::from),
        1 => any::<String>(),
        1 => "[0-9a-f:.@+#]{0,12}",
    ]
}

/// Commands that mostly apply: small pools of addresses and ports, `add` most often.
fn line() -> impl Strategy<Value = String> {
    fn pick(items: &[&'static str]) -> impl Strategy<Value = &'static str> + Clone {
        prop::sample::select(items.to_vec())
    }
    let verb = prop_oneof![
        6 => Just("add"),
        2 => Just("set"),
        1 => pick(&["remove", "down", "up", "status"]),
    ];
    let cl = pick(&["10.0.0.1", "10.0.0.2", "", "10.0.0.1+10.0.0.2"]);
    let pt = pick(&["21", "80", "443", "80+443", "23", ""]);
    let sv = pick(&["10.0.1.1", "10.0.1.2", "10.0.1.1+10.0.1.2", "10.0.1.3", ""]);
    let port_opt = pick(&[
        "",
        "",
        "",
        " method nat",
        " method mac",
        " protocol udp",
        " selectionalgorithm affinity",
        " selectionalgorithm hash",
        " stickytime 30",
        " staletimeout 77",
        " weightbound 5",
        " weightbound 100",
        " reset yes",
        " repstrategy both",
        " porttype both",
        " porttype udp",
    ]);
    let server_opt = pick(&[
        "",
        "",
        " weight 3",
        " weight 50",
        " fixedweight yes",
        " returnaddress 10.0.2.1",
        " returnaddress 10.0.2.1",
        " router 10.0.0.254",
        " mapport 8080",
    ]);
    prop_oneof![
        2 => (pick(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1+10.0.0.2"]), verb.clone())
            .prop_map(|(c, v)| format!("cluster {v} {c}")),
        4 => (cl.clone(), pt.clone(), verb.clone(), port_opt.clone(), port_opt)
            .prop_map(|(c, p, v, o1, o2)| format!("port {v} {c}@{p}{o1}{o2}")),
        6 => (cl, pt, sv, verb, server_opt.clone(), server_opt)
            .prop_map(|(c, p, s, v, o1, o2)| format!("server {v} {c}@{p}@{s}{o1}{o2}")),
        2 => pick(&[
            "executor start", "executor stop", "executor set nfa 10.0.2.1", "executor set nfa 10.0.0.9",
            "executor set clientgateway 10.0.0.254", "executor set hatimeout 0.7",
            "highavailability heartbeat add 10.0.0.9 10.0.0.10", "highavailability heartbeat delete 10.0.0.10",
            "highavailability reach add 10.0.0.254", "highavailability reach delete 10.0.0.254",
            "highavailability backup add primary manual 12345", "highavailability backup delete",
            "highavailability key k.key", "highavailability scripts scripts",
            "manager reach set interval 3.5", "highavailability sync off", "highavailability sync on",
            "executor set fintimeout 30", "executor set staletimeout 60", "executor set stickytime 5",
            "cluster add 10.0.0.4 staletimeout 90 weightbound 40", "cluster set @ stickytime 7",
            "cluster set 10.0.0.1 weightbound 80", "manager start manager.log 10004",
            "file report", "file save a.cfg force",
        ]).prop_map(String::from),
        4 => health_line(),
    ]
}

/// Health commands over the same pools: advisors, manager, quiesce, proportions, SASP and
/// advisor strings (quoted, with escapes).
fn health_line() -> impl Strategy<Value = String> {
    fn pick(items: &[&'static str]) -> impl Strategy<Value = &'static str> + Clone {
        prop::sample::select(items.to_vec())
    }
    let name = pick(&["http", "connect", "ADV_load", "ping"]);
    let at = pick(&["80", "443", "10.0.0.1@80", "10.0.0.2@443", "10.0.0.3@80"]);
    let setting = pick(&[
        "start",
        "start",
        "start",
        "stop",
        "interval 3",
        "interval 7",
        "interval 0.5",
        "connecttimeout 7",
        "connecttimeout 2",
        "receivetimeout 1.5",
        "receivetimeout 3",
        "retries 2",
        "retries 0",
        "timeout 30",
        "timeout unlimited",
    ]);
    let group = pick(&["10.0.0.1", "10.0.0.1@80", "10.0.0.2@443"]);
    let gwm = pick(&["198.51.100.7", "198.51.100.8", "2001:db8::7"]);
    let sasp_opt = pick(&[
        "",
        "",
        " port 4000",
        " mode pull",
        " mode pull interval 5",
        " members changed",
        " grace 0",
        " grace 12.5",
        " tls yes",
        " mode push tls no",
    ]);
    let text = pick(&[
        "\"HEAD / HTTP/1.0\"",
        "\"a\\\"b\\\\c\\r\\n # d\"",
        "\"\"",
        "ok",
        "\"200 OK\"",
    ]);
    let sv = pick(&[
        "10.0.1.1",
        "10.0.1.2",
        "@@10.0.1.1",
        "10.0.0.1@80@10.0.1.1",
        "@@",
    ]);
    prop_oneof![
        4 => (setting, name, at).prop_map(|(s, n, a)| match s.split_once(' ') {
            Some((verb, value)) => format!("advisor {verb} {n} {a} {value}"),
            None => format!("advisor {s} {n} {a}"),
        }),
        2 => pick(&[
            "manager start", "manager stop", "manager interval 4", "manager sensitivity 0",
            "manager sensitivity 5", "manager smoothing 2.5", "manager smoothing 1.5",
        ]).prop_map(String::from),
        2 => (pick(&["quiesce", "unquiesce"]), sv.clone())
            .prop_map(|(v, s)| format!("manager {v} {s}")),
        1 => (pick(&["10.0.0.1", "@", "10.0.0.2+10.0.0.1"]), pick(&["50 50 0 0", "25 25 25 25", "0 0 100 0"]))
            .prop_map(|(c, p)| format!("cluster set {c} proportions {p}")),
        1 => (pick(&["10.0.0.3", "10.0.0.4"]), pick(&["40 40 20 0", "50 50 0 0"]))
            .prop_map(|(c, p)| format!("cluster add {c} proportions {p}")),
        // mutual: primaryhost, role both, takeover ADDRESS
        1 => (pick(&["10.0.0.1", "@", "10.0.0.2+10.0.0.1"]), pick(&["10.0.0.9", "10.0.0.10", "2001:db8::9"]))
            .prop_map(|(c, h)| format!("cluster set {c} primaryhost {h}")),
        1 => (pick(&["10.0.0.5", "10.0.0.6"]), pick(&["", " proportions 50 50 0 0"]), pick(&["10.0.0.9", "10.0.0.10"]))
            .prop_map(|(c, p, h)| format!("cluster add {c}{p} primaryhost {h}")),
        1 => pick(&["highavailability backup add both auto 12345", "highavailability takeover 10.0.0.9"])
            .prop_map(String::from),
        3 => (group.clone(), gwm.clone(), sasp_opt)
            .prop_map(|(g, a, o)| format!("sasp add {g} gwm {a}{o}")),
        1 => (group, prop::option::of(gwm), prop::option::of(pick(&["3860", "4000"])))
            .prop_map(|(g, a, p)| match (a, p) {
                (None, _) => format!("sasp remove {g}"),
                (Some(a), None) => format!("sasp remove {g} gwm {a}"),
                (Some(a), Some(p)) => format!("sasp remove {g} gwm {a} port {p}"),
            }),
        2 => (pick(&["add", "set"]), pick(&["10.0.0.1@80@10.0.1.1", "@@10.0.1.2", "10.0.0.2@443@10.0.1.3"]),
              pick(&["advisorrequest", "advisorresponse"]), text)
            .prop_map(|(v, t, o, x)| format!("server {v} {t} {o} {x}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No input makes parsing or applying panic; a failed apply changes nothing; a parsed
    /// command prints back to itself.
    #[test]
    fn never_panics(words in prop::collection::vec(word(), 0..8)) {
        let line = words.join(" ");
        let mut config = sample();
        let before = config.clone();
        if let Ok(Some(cmd)) = parse_line(&line) {
            prop_assert_eq!(parse_line(&cmd.to_string()), Ok(Some(cmd.clone())));
            if config.apply(&cmd).is_err() {
                prop_assert_eq!(&config, &before);
            }
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let _ = parse(&refs);
        let _ = load_file(&words.join("\n"), "p.cfg", &before);
    }

    /// Any configuration built by commands saves to lines that load back to it.
    #[test]
    fn save_load_round_trip(lines in prop::collection::vec(line(), 0..60)) {
        let mut config = Config::default();
        for line in &lines {
            let before = config.clone();
            if config.apply_line(line).is_err() {
                prop_assert_eq!(&config, &before);
            }
        }
        let saved = config.to_commands();
        let loaded = load_file(&saved.join("\n"), "saved.cfg", &Config::default());
        prop_assert_eq!(loaded, Ok(config));
    }
}
