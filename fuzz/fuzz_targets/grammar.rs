//! The dscontrol grammar: `config::parse_line` on each line of the input, applied to a
//! running `Config`, and `config::load_file` on the whole input.
//!
//! Checked besides "no panic": the `Display` of every parsed `Command` parses back to the
//! same `Command`; a refused command leaves the configuration unchanged; a query changes
//! nothing; and a configuration saved with `Config::to_commands` loads back equal (the
//! contract of `file save` / `file newload`); when `load_file` accepts the whole input, it
//! gives the configuration that applying the lines one by one gave.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::config::{Config, load_file, parse_line};

/// Above this many servers the per-line copies and the save/reload check are skipped: a few
/// kilobytes of wildcards expand to millions of servers (a 2.5 KB file gives 1.4 million;
/// reported, not a crash), and the checks would turn every such input into a timeout.
const BIG: usize = 20_000;

fn servers(config: &Config) -> usize {
    config
        .clusters
        .values()
        .flat_map(|c| c.ports.values())
        .map(|p| p.servers.len())
        .sum()
}

fn reloads_equal(config: &Config) {
    if servers(config) > BIG {
        return;
    }
    let text = config.to_commands().join("\n");
    match load_file(&text, "saved.cfg", &Config::default()) {
        Ok(back) => assert_eq!(&back, config, "saved configuration loads back different"),
        Err(e) => panic!("saved configuration does not load: {e}\n{text}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut config = Config::default();
    for line in text.lines() {
        let Ok(Some(cmd)) = parse_line(line) else {
            continue;
        };
        let shown = cmd.to_string();
        assert_eq!(
            parse_line(&shown),
            Ok(Some(cmd.clone())),
            "'{line}' displays as '{shown}', which parses differently"
        );
        let before = config.clone();
        match config.apply(&cmd) {
            Ok(_) if !cmd.is_mutation() => {
                assert_eq!(config, before, "a query changed the configuration")
            }
            Ok(_) => {}
            Err(_) => assert_eq!(
                config, before,
                "a refused command changed the configuration"
            ),
        }
    }
    reloads_equal(&config);
    if let Ok(loaded) = load_file(&text, "fuzz.cfg", &Config::default()) {
        // Every line parsed and applied, so line by line gave the same.
        assert!(loaded == config, "load_file and line-by-line apply differ");
        reloads_equal(&loaded);
    }
});
