//! Double-quoted words and string values: `advisorrequest` / `advisorresponse`.

use super::*;

fn words(line: &str) -> Vec<String> {
    split_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn split_line_quotes_comments_and_escapes() {
    assert_eq!(words("  a b\tc  "), ["a", "b", "c"]);
    assert_eq!(words("a # b c"), ["a"]);
    assert_eq!(words("a#b"), ["a"]);
    assert_eq!(words("# only"), Vec::<String>::new());
    assert_eq!(words(""), Vec::<String>::new());
    // A quoted word keeps spaces and '#'; the escapes stay for the value parser.
    assert_eq!(
        words(r#"x "HEAD / HTTP/1.1\r\nHost: a # b" y # c"#),
        ["x", r"HEAD / HTTP/1.1\r\nHost: a # b", "y"]
    );
    assert_eq!(words(r#"x "say \"hi\"" y"#), ["x", r#"say \"hi\""#, "y"]);
    assert_eq!(words(r#"x "a\\" y"#), ["x", r"a\\", "y"]);
    assert_eq!(words(r#"x """#), ["x", ""]);
    assert_eq!(words(r##""a"#"##), ["a"]);
    // A quote inside a bare word is a character.
    assert_eq!(words(r#"a"b c"#), [r#"a"b"#, "c"]);

    for (bad, reason) in [
        (r#"x "open"#, "unterminated quoted string"),
        (r#"x "ends with \""#, "unterminated quoted string"),
        (r#"x "a"b"#, "a closing '\"' must be followed by a space"),
    ] {
        let e = split_line(bad).unwrap_err().to_string();
        assert!(e.starts_with(reason), "{bad}: {e}");
        assert!(parse_line(bad).is_err());
    }
}

#[test]
fn advisorrequest_and_advisorresponse() {
    let line = r#"server set 192.0.2.100@80@192.0.2.11 advisorrequest "HEAD /health HTTP/1.1\r\nHost: www.example\r\n" advisorresponse "200 OK""#;
    let c = cmd(line);
    let Command::ServerSet { options, .. } = &c else {
        panic!("{c:?}")
    };
    assert_eq!(
        options.advisorrequest.as_deref(),
        Some("HEAD /health HTTP/1.1\r\nHost: www.example\r\n")
    );
    assert_eq!(options.advisorresponse.as_deref(), Some("200 OK"));
    assert_eq!(c.to_string(), line, "canonical form");

    // Every escape, and characters that need none.
    let c = cmd(r#"server add 192.0.2.100@80@192.0.2.30 advisorreq "a\"b\\c\td\r\ne # f""#);
    let Command::ServerAdd { options, .. } = &c else {
        panic!("{c:?}")
    };
    assert_eq!(
        options.advisorrequest.as_deref(),
        Some("a\"b\\c\td\r\ne # f")
    );
    assert_eq!(cmd(&c.to_string()), c);

    // A bare word works too (no spaces), escapes included.
    let c = cmd(r"server set @@192.0.2.11 advisorresponse HTTP/1.1\r\n");
    let Command::ServerSet { options, .. } = &c else {
        panic!("{c:?}")
    };
    assert_eq!(options.advisorresponse.as_deref(), Some("HTTP/1.1\r\n"));

    // Errors name the problem.
    assert_eq!(
        parse_err(r#"server set @@192.0.2.11 advisorrequest "a\qb""#),
        r#"bad escape '\q' in advisorrequest (use \" \\ \r \n or \t)"#
    );
    assert_eq!(
        parse_err(r"server set @@192.0.2.11 advisorrequest a\"),
        r"advisorrequest ends with a lone '\' (write \\ for a backslash)"
    );
    assert_eq!(
        parse_err("server set @@192.0.2.11 advisorrequest"),
        "missing \"text\" after 'advisorrequest'"
    );
    assert_eq!(
        parse_err(r#"server set @@192.0.2.11 advisorrequest "a" advisorrequest "b""#),
        "option 'advisorrequest' given twice"
    );
    assert_eq!(
        parse_err(r#"server set @@192.0.2.11 adv "a""#),
        "ambiguous keyword 'adv': advisorrequest, advisorresponse"
    );
    let long = format!(
        "server set @@192.0.2.11 advisorrequest \"{}\"",
        "x".repeat(MAX_ADVISOR_TEXT + 1)
    );
    assert_eq!(
        parse_err(&long),
        "advisorrequest is 4097 bytes long (at most 4096)"
    );
}

#[test]
fn advisor_strings_apply_and_clear() {
    let mut c = sample();
    run(
        &mut c,
        r#"server add 192.0.2.100@80@192.0.2.30 advisorrequest "GET / HTTP/1.0" advisorresponse "ok""#,
    );
    let s = server(&c, "192.0.2.100", 80, "192.0.2.30");
    assert_eq!(s.advisorrequest.as_deref(), Some("GET / HTTP/1.0"));
    assert_eq!(s.advisorresponse.as_deref(), Some("ok"));
    // `server set` changes one and keeps the other.
    run(
        &mut c,
        r#"server set 192.0.2.100@80@192.0.2.30 advisorrequest "HEAD /x HTTP/1.0""#,
    );
    let s = server(&c, "192.0.2.100", 80, "192.0.2.30");
    assert_eq!(s.advisorrequest.as_deref(), Some("HEAD /x HTTP/1.0"));
    assert_eq!(s.advisorresponse.as_deref(), Some("ok"));
    // `""` goes back to the advisor's default.
    run(
        &mut c,
        r#"server set 192.0.2.100@80@192.0.2.30 advisorresponse """#,
    );
    assert_eq!(
        server(&c, "192.0.2.100", 80, "192.0.2.30").advisorresponse,
        None
    );
    // Wildcards reach every selected server.
    run(&mut c, r#"server set @@192.0.2.11 advisorresponse "up""#);
    assert_eq!(
        server(&c, "192.0.2.101", 80, "192.0.2.11")
            .advisorresponse
            .as_deref(),
        Some("up")
    );
}

#[test]
fn words_from_tandemctl_decode_escapes_too() {
    // `tandemctl server set C@P@S advisorrequest 'HEAD / HTTP/1.1\r\nHost: x'`: one argument,
    // decoded as in a line; an argument that still has its quotes loses them.
    for arg in [
        r"HEAD / HTTP/1.1\r\nHost: x",
        r#""HEAD / HTTP/1.1\r\nHost: x""#,
    ] {
        let c = parse_words(&[
            "server",
            "set",
            "192.0.2.100@80@192.0.2.11",
            "advisorrequest",
            arg,
        ])
        .unwrap()
        .unwrap();
        let Command::ServerSet { options, .. } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            options.advisorrequest.as_deref(),
            Some("HEAD / HTTP/1.1\r\nHost: x")
        );
        assert_eq!(parse_line(&c.to_string()), Ok(Some(c.clone())));
    }
    // An argument holding a '#' keeps it (no comment in words).
    let c = parse_words(&["server", "set", "@@192.0.2.11", "advisorresponse", "a # b"])
        .unwrap()
        .unwrap();
    assert_eq!(parse_line(&c.to_string()), Ok(Some(c)));
}

/// Inputs of the kind the fuzzers make: every one is a clear error or a command that displays
/// back to itself, never a panic, and a megabyte line is handled at once.
#[test]
fn hostile_lines_are_refused_or_round_trip() {
    let big = "x".repeat(1 << 20);
    let lines = [
        "\"".to_string(),
        "\"\"\"".to_string(),
        "\\".to_string(),
        "advisor start ADVé 80".to_string(),
        "advisor start ADV_é 80".to_string(),
        "advisor start é 80".to_string(),
        "advisor start adv_ 80".to_string(),
        "advisor start ADV_\"x\" 80".to_string(),
        "server set @@192.0.2.11 advisorrequest \"é\\\"\u{2028}\u{b}\0\"".to_string(),
        "server set @@192.0.2.11 advisorrequest \"\\".to_string(),
        "server set @@192.0.2.11 advisorrequest \"\\\"".to_string(),
        "server set @@192.0.2.11 advisorrequest \"a\"\"b\"".to_string(),
        format!("server set @@192.0.2.11 advisorrequest \"{big}\""),
        format!(
            "server set @@192.0.2.11 advisorrequest \"{}\"",
            "é".repeat(2048)
        ),
        format!("\"{big}"),
        format!("advisor start http {big}"),
        "sasp add 192.0.2.100@80 gwm 198.51.100.7 grace 1e-7".to_string(),
        "sasp add 192.0.2.100@80 gwm 198.51.100.7 grace -0".to_string(),
        "manager smoothing 1e2".to_string(),
        "manager smoothing -inf".to_string(),
        "cluster set @ proportions 4294967296 0 0 0".to_string(),
        "cluster set @ proportions 100 0 0 +0".to_string(),
        "manager quiesce +".to_string(),
        "manager quiesce @".to_string(),
        "manager quiesce @@@".to_string(),
        "sasp remove @".to_string(),
        "advisor timeout http 80 -0".to_string(),
    ];
    let t0 = std::time::Instant::now();
    for line in &lines {
        let mut c = sample();
        let before = c.clone();
        match parse_line(line) {
            Ok(Some(command)) => {
                assert_eq!(
                    parse_line(&command.to_string()),
                    Ok(Some(command.clone())),
                    "{line:.80}"
                );
                if c.apply(&command).is_err() {
                    assert_eq!(c, before, "{line:.80}");
                }
                let saved = c.to_commands().join("\n");
                assert_eq!(load_file(&saved, "saved.cfg", &Config::default()), Ok(c));
            }
            Ok(None) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "hostile lines took {:?}",
        t0.elapsed()
    );
    // 2 048 two-byte characters are 4 096 bytes: the longest value accepted.
    assert!(
        parse_line(&format!(
            "server set @@192.0.2.11 advisorrequest \"{}\"",
            "é".repeat(2048)
        ))
        .is_ok()
    );
}
