//! `diagnostics FILE` (logs helper).

use super::*;

#[test]
fn diagnostics_parses_displays_back_and_changes_nothing() {
    for (line, canonical) in [
        (
            "diagnostics /tmp/pair.tar.gz",
            "diagnostics /tmp/pair.tar.gz",
        ),
        ("diag trace.tar.gz", "diagnostics trace.tar.gz"),
        (
            "dscontrol diagnostics /var/tmp/t.tgz",
            "diagnostics /var/tmp/t.tgz",
        ),
    ] {
        let c = cmd(line);
        assert_eq!(c.to_string(), canonical);
        assert_eq!(cmd(&c.to_string()), c);
        assert!(!c.is_mutation(), "an action, not a configuration change");
        let mut config = Config::default();
        config.apply(&c).expect("a query applies");
        assert_eq!(config, Config::default());
    }
    // Through words (tandemctl): a path with a space stays one word, and is refused clearly.
    let err = parse_words(&["diagnostics", "/tmp/a b"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad archive file"), "{err}");
}

#[test]
fn diagnostics_needs_exactly_one_path() {
    assert!(parse_err("diagnostics").contains("archive file"));
    assert!(parse_err("diagnostics /tmp/a /tmp/b").contains("/tmp/b"));
}
