//! The syntax table against the parser: same keywords, examples that parse and display back.

use super::super::{ParseError, parse, parse_line};
use super::*;

/// The keywords the parser expects after `words` (from its "unknown keyword" error on a
/// word that matches nothing).
fn expected_after(words: &str) -> Vec<&'static str> {
    let line = format!("{words} zzzzqq");
    let refs: Vec<&str> = line.split_whitespace().collect();
    match parse(&refs) {
        Err(ParseError::UnknownKeyword { expected, .. }) => expected,
        other => panic!("{line}: expected an unknown keyword error, got {other:?}"),
    }
}

#[test]
fn every_example_parses_and_displays_back() {
    let mut n = 0;
    for g in groups() {
        let examples = g.examples.iter().map(|e| (g.name, *e));
        let verb_examples = g
            .verbs
            .iter()
            .flat_map(|v| v.examples.iter().map(move |e| (v.name, *e)));
        for (what, example) in examples.chain(verb_examples) {
            let cmd = parse_line(example)
                .unwrap_or_else(|e| panic!("{}: example {example:?}: {e}", g.name))
                .unwrap_or_else(|| panic!("{example:?} is empty"));
            assert_eq!(cmd.to_string(), example, "{} {what}", g.name);
            assert!(
                example.starts_with(&format!("{} {what}", g.name)) || g.verbs.is_empty(),
                "{example:?} is not an example of {} {what}",
                g.name
            );
            n += 1;
        }
    }
    assert!(n > 80, "{n} examples");
}

#[test]
fn every_usable_verb_has_a_usage_a_summary_and_an_example() {
    for g in groups() {
        assert!(!g.summary.is_empty(), "{}", g.name);
        if g.verbs.is_empty() {
            assert!(!g.usages.is_empty() && !g.examples.is_empty(), "{}", g.name);
        }
        for v in g.verbs {
            assert!(!v.summary.is_empty(), "{} {}", g.name, v.name);
            assert!(!v.usages.is_empty(), "{} {}", g.name, v.name);
            for u in v.usages {
                assert!(
                    u.starts_with(&format!("{} {}", g.name, v.name)),
                    "usage {u:?} of {} {}",
                    g.name,
                    v.name
                );
            }
            assert_eq!(v.examples.is_empty(), v.refused, "{} {}", g.name, v.name);
        }
    }
}

#[test]
fn the_parser_takes_exactly_the_table_groups() {
    let table: Vec<&str> = groups().iter().map(|g| g.name).collect();
    let mut parser = expected_after("");
    // `ha` is matched whole, outside the prefix list; the parser takes it.
    assert!(parse(&["ha", "status"]).is_ok());
    parser.push("ha");
    assert_eq!(parser, table);
}

#[test]
fn the_parser_takes_exactly_the_table_verbs() {
    for g in groups() {
        let names: Vec<&str> = g.verbs.iter().map(|v| v.name).collect();
        if g.verbs.is_empty() {
            // `diagnostics FILE`: no verb keyword, the next word is the file.
            assert!(parse(&[g.name, "/tmp/x.tar.gz"]).is_ok(), "{}", g.name);
            continue;
        }
        assert_eq!(expected_after(g.name), names, "verbs of {}", g.name);
        // And each verb word is taken as that verb (refused ones with their reason, never
        // as an unknown keyword).
        for v in g.verbs {
            match parse(&[g.name, v.name]) {
                Err(ParseError::UnknownKeyword { word, .. }) if word == v.name => {
                    panic!("{} {} is unknown to the parser", g.name, v.name)
                }
                Ok(_) | Err(_) => {}
            }
            if v.refused {
                let e = parse(&[g.name, v.name, "x"]).unwrap_err();
                assert!(
                    e.to_string().contains("not supported"),
                    "{} {}: {e}",
                    g.name,
                    v.name
                );
            }
        }
    }
}

/// The option names of a verb in the table.
fn options(group: &str, verb: &str) -> Vec<&'static str> {
    let g = super::group(group).unwrap();
    let v = g.verbs.iter().find(|v| v.name == verb).unwrap();
    v.options.iter().map(|o| o.name).collect()
}

/// The table's options of a verb and the parser's are the same set.
fn same_options(table: Vec<&'static str>, parser: Vec<&'static str>, what: &str) {
    let mut t = table;
    let mut p = parser;
    t.sort_unstable();
    p.sort_unstable();
    assert_eq!(t, p, "options of {what}");
}

#[test]
fn the_parser_takes_exactly_the_table_options() {
    same_options(
        options("executor", "set"),
        expected_after("executor set"),
        "executor set",
    );
    same_options(
        options("cluster", "add"),
        expected_after("cluster add 192.0.2.100"),
        "cluster add",
    );
    same_options(
        options("cluster", "set"),
        expected_after("cluster set 192.0.2.100"),
        "cluster set",
    );
    for verb in ["add", "set"] {
        same_options(
            options("port", verb),
            expected_after(&format!("port {verb} 192.0.2.100@80")),
            "port add|set",
        );
    }
    same_options(
        options("server", "add"),
        expected_after("server add 192.0.2.100@80@198.51.100.11"),
        "server add",
    );
    same_options(
        options("server", "set"),
        expected_after("server set 192.0.2.100@80@198.51.100.11"),
        "server set",
    );
    same_options(
        options("sasp", "add"),
        expected_after("sasp add 192.0.2.100 gwm 198.51.100.5"),
        "sasp add",
    );
    same_options(
        options("ha", "start"),
        expected_after("ha start primary"),
        "ha start",
    );
    same_options(
        options("ha", "configure"),
        expected_after("ha configure"),
        "ha configure",
    );
    same_options(
        options("file", "save"),
        expected_after("file save x.cfg"),
        "file save",
    );
}

#[test]
fn groups_and_verbs_resolve_as_the_parser_reads_them() {
    assert_eq!(resolve_group("ex").unwrap().name, "executor");
    assert_eq!(resolve_group("HA").unwrap().name, "ha");
    assert_eq!(resolve_group("h").unwrap().name, "highavailability");
    assert!(matches!(
        resolve_group("bogus"),
        Err(ParseError::UnknownKeyword { .. })
    ));
    let ex = resolve_group("executor").unwrap();
    assert!(resolve_verb(ex, "sta").is_none()); // start or status: ambiguous
    assert_eq!(resolve_verb(ex, "star").unwrap().name, "start");
}
