//! `label "TEXT"` of clusters and servers: grammar, apply, save/load, sync.

use super::*;

const HOSTILE: &str = "<script>window.__pwned=1</script><b>x</b>";

fn cluster(config: &Config, c: &str) -> Cluster {
    config.clusters[&ip(c)].clone()
}

#[test]
fn labels_parse_and_display_back_to_the_same_command() {
    for line in [
        r#"cluster add 192.0.2.100 label "web front""#,
        r#"cluster add 192.0.2.100 primaryhost 192.0.2.2 label "<script>alert(1)</script>""#,
        r#"cluster set 192.0.2.100+192.0.2.101 label "a \"quoted\" # not a comment""#,
        r#"cluster set @ label """#,
        r#"server add 192.0.2.100@80@192.0.2.11 weight 5 label "rack 3, <b>bold</b>""#,
        r#"server set @@192.0.2.11 label "é ü 漢字""#,
    ] {
        let c = cmd(line);
        assert!(c.is_mutation(), "{line}");
        let again = cmd(&c.to_string());
        assert_eq!(again, c, "{line} -> {c}");
    }
    match cmd(r#"clu se 192.0.2.100 lab "x y""#) {
        Command::ClusterSetLabel { label, .. } => assert_eq!(label, "x y"),
        other => panic!("{other:?}"),
    }
    match cmd(&format!(
        r#"server add 192.0.2.100@80@192.0.2.11 label "{HOSTILE}""#
    )) {
        Command::ServerAdd { options, .. } => assert_eq!(options.label.as_deref(), Some(HOSTILE)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_labels_are_refused_with_a_reason() {
    let long = "x".repeat(65);
    assert_eq!(
        parse_err(&format!(r#"cluster set 192.0.2.100 label "{long}""#)),
        "label is 65 characters long (at most 64)"
    );
    // 64 characters are fine, also when they are more bytes.
    let wide = "é".repeat(MAX_LABEL);
    cmd(&format!(r#"server set @@192.0.2.11 label "{wide}""#));
    assert!(
        parse_err(r#"server set @@192.0.2.11 label "two\nlines""#).contains("control character")
    );
    assert!(parse_err(r#"cluster add 192.0.2.100 label "a\tb""#).contains("control character"));
    assert_eq!(
        parse_err("cluster set 192.0.2.100 label"),
        "missing \"text\" after 'label'"
    );
    assert_eq!(
        parse_err(r#"server add 192.0.2.100@80@192.0.2.11 label "a" label "b""#),
        "option 'label' given twice"
    );
    assert!(
        parse_err(r#"cluster set 192.0.2.100 label "a" weightbound 10"#)
            .contains("cluster set takes label alone")
    );
    assert!(
        parse_err(r#"cluster set 192.0.2.100 primaryhost 192.0.2.2 label "a""#)
            .contains("cluster set takes label alone")
    );
}

#[test]
fn labels_apply_change_and_clear() {
    let mut c = sample();
    assert_eq!(cluster(&c, "192.0.2.100").label, None);
    run(
        &mut c,
        &format!(r#"cluster set 192.0.2.100 label "{HOSTILE}""#),
    );
    assert_eq!(cluster(&c, "192.0.2.100").label.as_deref(), Some(HOSTILE));
    assert_eq!(cluster(&c, "192.0.2.101").label, None);
    run(&mut c, r#"cluster set @ label "both""#);
    assert_eq!(cluster(&c, "192.0.2.100").label.as_deref(), Some("both"));
    assert_eq!(cluster(&c, "192.0.2.101").label.as_deref(), Some("both"));
    run(&mut c, r#"cluster set 192.0.2.101 label """#);
    assert_eq!(cluster(&c, "192.0.2.101").label, None);
    run(&mut c, r#"cluster add 192.0.2.102 label "new""#);
    assert_eq!(cluster(&c, "192.0.2.102").label.as_deref(), Some("new"));
    assert!(fail(&mut c, r#"cluster set 192.0.2.199 label "x""#).contains("192.0.2.199"));

    run(
        &mut c,
        r#"server add 192.0.2.100@80@192.0.2.30 label "s30""#,
    );
    assert_eq!(
        server(&c, "192.0.2.100", 80, "192.0.2.30").label.as_deref(),
        Some("s30")
    );
    // `server set` with other options keeps the label; with label it changes it.
    run(&mut c, "server set 192.0.2.100@80@192.0.2.30 weight 3");
    assert_eq!(
        server(&c, "192.0.2.100", 80, "192.0.2.30").label.as_deref(),
        Some("s30")
    );
    run(
        &mut c,
        &format!(r#"server set @@192.0.2.11 label "{HOSTILE}""#),
    );
    assert_eq!(
        server(&c, "192.0.2.101", 80, "192.0.2.11").label.as_deref(),
        Some(HOSTILE)
    );
    run(&mut c, r#"server set 192.0.2.100@80@192.0.2.30 label """#);
    assert_eq!(server(&c, "192.0.2.100", 80, "192.0.2.30").label, None);
}

#[test]
fn labels_are_saved_loaded_and_shared_with_the_partner() {
    let mut c = sample();
    run(
        &mut c,
        &format!(r#"cluster set 192.0.2.100 label "{HOSTILE}""#),
    );
    run(
        &mut c,
        r#"server set 192.0.2.100@443@192.0.2.12 label "a \"b\" # c""#,
    );
    let saved: Vec<String> = c.saved_commands().iter().map(|c| c.to_string()).collect();
    let text = saved.join("\n");
    assert!(
        saved
            .iter()
            .any(|l| l.starts_with("cluster add 192.0.2.100")
                && l.ends_with(&format!(r#"label "{HOSTILE}""#))),
        "{text}"
    );
    let loaded = config(&text);
    assert_eq!(loaded, c, "{text}");
    assert_eq!(
        server(&loaded, "192.0.2.100", 443, "192.0.2.12")
            .label
            .as_deref(),
        Some(r#"a "b" # c"#)
    );
    // Labels are shared settings: in the text the pair syncs (and its digest).
    let shared = crate::sync::shared_text(&c);
    assert!(shared.contains(HOSTILE), "{shared}");
    let before = crate::sync::shared_text(&sample());
    assert_ne!(
        crate::sync::shared::digest_of(&shared),
        crate::sync::shared::digest_of(&before)
    );
    assert!(!crate::sync::is_node_local(&cmd(
        r#"cluster set @ label "x""#
    )));
}
