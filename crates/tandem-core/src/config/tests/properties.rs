//! Properties: no input panics, parsed commands display back, saved configurations load back.

use super::*;
use proptest::prelude::*;

/// Words that hit the grammar often, plus arbitrary strings.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "executor", "cluster", "port", "server", "highavailability", "manager", "ex", "s", "st",
            "add", "set", "remove", "report", "status", "down", "up", "start", "stop", "heartbeat",
            "reach", "backup", "delete", "takeover", "key", "scripts", "maintenance", "interval",
            "nfa", "clientgateway", "hatimeout", "method", "nat", "mac", "protocol", "udp",
            "selectionalgorithm", "affinity", "conn+affin", "hash", "stickytime", "staletimeout",
            "weightbound", "weight", "reset", "yes", "no", "repstrategy", "both", "fixedweight",
            "returnaddress", "router", "mapport", "primary", "auto", "manual", "@", "@@", "@80",
            "10.0.0.1", "10.0.0.1@80", "10.0.0.1@80@10.0.0.2", "@@10.0.0.2", "10.0.0.1+10.0.0.3",
            "10.0.0.5", "::1", "0", "1", "20", "100", "65535", "65536", "0.2", "-1", "1e400", "#",
            "dscontrol", "+", "@+", "10.0.0.1@+80", "::ffff:10.0.0.1@80@10.0.0.2",
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
            "manager reach set interval 3.5",
        ]).prop_map(String::from),
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
