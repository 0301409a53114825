//! The admin request path: `tandem_core::admin::decode_request` of a request line, then
//! `config::parse_words` of its words, applied to a running configuration (the demo's), as
//! tandemd's socket shell does.
//!
//! Checked besides "no panic": a decoded request has at most `MAX_WORDS` words and came from
//! at most `MAX_REQUEST_BYTES`; a command accepted from the socket displays as a line that
//! parses back to the same command (so `file save` writes what `file newload` reads); a
//! refused command leaves the configuration unchanged, and the configuration saves and loads
//! back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tandem_core::admin::{MAX_REQUEST_BYTES, MAX_WORDS, decode_request};
use tandem_core::config::{Config, load_file, parse_line, parse_words};

fn demo() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        load_file(
            include_str!("../../examples/demo.cfg"),
            "demo.cfg",
            &Config::default(),
        )
        .expect("the demo configuration loads")
    })
}

fuzz_target!(|data: &[u8]| {
    // The shell hands over one line, without its newline.
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(req) = decode_request(line) else {
        return;
    };
    assert!(line.len() <= MAX_REQUEST_BYTES && req.words.len() <= MAX_WORDS);
    let words: Vec<&str> = req.words.iter().map(String::as_str).collect();
    // As tandemd's admin shell: the words as words (no join and re-split).
    let Ok(Some(cmd)) = parse_words(&words) else {
        return;
    };
    let shown = cmd.to_string();
    assert_eq!(
        parse_line(&shown),
        Ok(Some(cmd.clone())),
        "{words:?} parses to a command that displays as '{shown}', which parses differently"
    );
    let mut config = demo().clone();
    if config.apply(&cmd).is_err() {
        assert_eq!(
            &config,
            demo(),
            "a refused command changed the configuration"
        );
        return;
    }
    let text = config.to_commands().join("\n");
    match load_file(&text, "saved.cfg", &Config::default()) {
        Ok(back) => assert_eq!(back, config, "saved configuration loads back different"),
        Err(e) => panic!("saved configuration does not load: {e}\n{text}"),
    }
});
