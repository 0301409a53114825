//! `executor set maxconnections N|auto` and `executor set syntimeout S`: grammar, ranges,
//! abbreviations, the saved configuration, and the plan the engine gets.

use tandem_core::config::{Command, Config, ExecutorSetting, load_file, parse_line};
use tandem_core::forward::{Engine, Plan};

fn cmd(line: &str) -> Command {
    parse_line(line).expect("parses").expect("a command")
}

#[test]
fn settings_parse_print_and_abbreviate() {
    assert_eq!(
        cmd("executor set maxconnections 50000"),
        Command::ExecutorSet(ExecutorSetting::MaxConnections(Some(50000)))
    );
    assert_eq!(
        cmd("ex se maxc AUTO"),
        Command::ExecutorSet(ExecutorSetting::MaxConnections(None))
    );
    assert_eq!(
        cmd("ex se syn 3"),
        Command::ExecutorSet(ExecutorSetting::SynTimeout(3))
    );
    // The old abbreviations still mean what they meant.
    assert_eq!(
        cmd("ex se h 2"),
        Command::ExecutorSet(ExecutorSetting::HaTimeout(2.0))
    );
    for line in [
        "executor set maxconnections 1",
        "executor set maxconnections auto",
        "executor set syntimeout 3600",
    ] {
        assert_eq!(cmd(line).to_string(), line, "canonical text reads back");
    }
    for bad in [
        "executor set maxconnections 0",
        "executor set maxconnections 1073741825",
        "executor set maxconnections -5",
        "executor set maxconnections many",
        "executor set maxconnections",
        "executor set syntimeout 0",
        "executor set syntimeout 3601",
        "executor set syntimeout 1.5",
        "executor set syntimeout 5 6",
    ] {
        let e = parse_line(bad).expect_err(bad);
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn settings_are_saved_and_load_back_and_reach_the_engine() {
    let text = "executor start\nexecutor set nfa 192.0.2.2\nexecutor set maxconnections 777\n\
                executor set syntimeout 9\n";
    let cfg = load_file(text, "t.cfg", &Config::default()).unwrap();
    assert_eq!(cfg.executor.maxconnections, Some(777));
    assert_eq!(cfg.executor.syntimeout, 9);
    let saved: Vec<String> = cfg.saved_commands().iter().map(|c| c.to_string()).collect();
    assert!(saved.contains(&"executor set maxconnections 777".to_string()));
    assert!(saved.contains(&"executor set syntimeout 9".to_string()));
    let again = load_file(&saved.join("\n"), "saved.cfg", &Config::default()).unwrap();
    assert_eq!(again, cfg);
    // Defaults are not written out.
    let plain = load_file("executor start\n", "p.cfg", &Config::default()).unwrap();
    let saved = plain
        .saved_commands()
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!saved.contains("maxconnections") && !saved.contains("syntimeout"));
    // The engine takes the configured bound, or its own default for `auto`.
    let e = Engine::new(12345);
    let now = std::time::Instant::now();
    e.install(
        Plan::compile(
            &cfg,
            &tandem_core::health::Overlay::default(),
            true,
            [2, 0, 0, 0, 0, 2],
            &e.counters,
        ),
        now,
    );
    assert_eq!(e.max_connections(), 777);
    assert_eq!(e.affinity.max(), 777);
    e.install(
        Plan::compile(
            &plain,
            &tandem_core::health::Overlay::default(),
            true,
            [2, 0, 0, 0, 0, 2],
            &e.counters,
        ),
        now,
    );
    assert_eq!(e.max_connections(), 12345);
}

#[test]
fn the_default_bound_follows_the_memory() {
    use tandem_core::forward::default_max_connections as f;
    assert_eq!(f(4 << 30), (4u64 << 30) as usize / 4 / 1280);
    assert_eq!(f(0), 1 << 16, "at least 65 536");
    assert_eq!(f(u64::MAX), 1 << 26, "at most 64 Mi");
}
