//! `tandemctl`: the operator's CLI for a Tandem node.
//!
//! It is deliberately thin: the command words go unchanged to the daemon over its Unix socket,
//! where the same grammar that reads configuration files parses them. One parser, one set of
//! error messages. clap reads tandemctl's own options (`--socket`, `--json`, `--help`,
//! `--version`) and makes the help, completions and man pages from the grammar's syntax table
//! (see `help`); it never parses the command words, so every abbreviation the daemon takes
//! (`tandemctl ex sta`) keeps working. With no command it reads commands from standard input,
//! one per line, like `dscontrol` with no arguments (`exit` or `quit` ends it); on a terminal
//! with history and completion (see `interactive`).
//!
//! ```text
//! tandemctl [--socket PATH] [--json] COMMAND...
//! tandemctl port add 192.0.2.100@80 method nat
//! tandemctl --json server report 192.0.2.100@80@
//! tandemctl port --help | tandemctl help port | tandemctl completions bash | tandemctl manpages DIR
//! ```
//!
//! Exit codes: see [`help::EXIT_CODES`].

mod help;
mod interactive;

use anyhow::{Context, Result};
use clap::{ArgAction, Parser};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use tandem_core::config::syntax;

/// Where `tandemd` listens unless told otherwise.
const DEFAULT_SOCKET: &str = "/run/tandem/tandemd.sock";

/// Exit codes (documented in docs/commands.md and `--help`).
const OK: i32 = 0;
const REFUSED: i32 = 1;
const USAGE: i32 = 2;
const UNREACHABLE: i32 = 3;

/// tandemctl's own options; the rest of the command line is the command's words.
#[derive(Parser, Debug)]
#[command(
    name = "tandemctl",
    version,
    disable_help_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// tandemd's admin socket
    #[arg(short, long, value_name = "PATH", env = "TANDEM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: String,
    /// Print replies as JSON (the reply's data; errors too, as {"ok": false, "error", "exit_code"})
    #[arg(short, long)]
    json: bool,
    /// Print help (`tandemctl GROUP --help`, `tandemctl help GROUP [VERB]` for a group's)
    #[arg(short, long, action = ArgAction::SetTrue)]
    help: bool,
    /// The command words (a dscontrol command), passed to tandemd unchanged
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    words: Vec<String>,
}

#[derive(Serialize)]
struct Request<'a> {
    words: &'a [String],
    json: bool,
}

#[derive(Deserialize)]
struct Response {
    ok: bool,
    #[serde(default)]
    output: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    error: String,
}

/// A failure with its exit code.
#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Prints a failure as text on stderr or, with `--json`, as JSON on stdout.
fn report(json: bool, f: &Failure) {
    if json {
        let v = serde_json::json!({"ok": false, "error": f.message, "exit_code": f.code});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if f.code == REFUSED {
        eprintln!("error: {}", f.message);
    } else {
        eprintln!("tandemctl: {}", f.message);
    }
}

struct Options {
    socket: String,
    json: bool,
}

/// What the command line asks for.
enum Action {
    /// Send these words to tandemd.
    Run(Vec<String>),
    /// Read commands from standard input.
    Stdin,
    /// Print this text (help, completions) and exit 0.
    Print(String),
    Manpages(std::path::PathBuf),
}

fn parse_args(args: Vec<String>) -> Result<(Options, Action), (bool, Failure)> {
    let json_asked = wants_json(&args);
    let cli = match Cli::try_parse_from(std::iter::once("tandemctl".to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {
            return Ok((
                Options {
                    socket: String::new(),
                    json: false,
                },
                Action::Print(e.to_string()),
            ));
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            return Err((
                json_asked,
                Failure::new(USAGE, format!("{first} (see tandemctl --help)")),
            ));
        }
    };
    let opts = Options {
        socket: cli.socket,
        json: cli.json,
    };
    let json = opts.json;
    let mut words = cli.words;
    if cli.help {
        let text = help::help_text(&[]).map_err(|e| (json, Failure::new(USAGE, e)))?;
        return Ok((opts, Action::Print(text)));
    }
    // IBM-style invocations sometimes keep the program name: `tandemctl dscontrol executor status`.
    if words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("dscontrol") || w.eq_ignore_ascii_case("tandemctl"))
    {
        words.remove(0);
        if words.is_empty() {
            return Err((
                json,
                Failure::new(
                    USAGE,
                    "a command must follow dscontrol (see tandemctl --help)",
                ),
            ));
        }
    }
    let action = local_action(&words).map_err(|f| (json, f))?;
    let action = match action {
        Some(a) => a,
        None if words.is_empty() => Action::Stdin,
        None => {
            absolute_archive_path(&mut words)
                .map_err(|e| (json, Failure::new(USAGE, format!("{e:#}"))))?;
            Action::Run(words)
        }
    };
    Ok((opts, action))
}

/// Whether `--json` / `-j` stands among the options (before the first command word).
fn wants_json(args: &[String]) -> bool {
    let mut value_next = false;
    for a in args {
        if value_next {
            value_next = false;
            continue;
        }
        match a.as_str() {
            "--json" | "-j" => return true,
            "--socket" | "-s" => value_next = true,
            s if s.starts_with('-') => {}
            _ => return false,
        }
    }
    false
}

/// The commands tandemctl answers itself: `help`, `GROUP ... --help`, `completions`,
/// `manpages`, and an unknown group (usage, without asking the daemon). `None`: the words go
/// to the daemon.
fn local_action(words: &[String]) -> Result<Option<Action>, Failure> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    match first.as_str() {
        "help" => {
            return help::help_text(&words[1..])
                .map(|t| Some(Action::Print(t)))
                .map_err(|e| Failure::new(USAGE, format!("{e} (see tandemctl --help)")));
        }
        "completions" => {
            let shell = match words.get(1).map(|s| s.parse::<clap_complete::Shell>()) {
                Some(Ok(shell)) if words.len() == 2 => shell,
                _ => {
                    return Err(Failure::new(
                        USAGE,
                        "usage: tandemctl completions bash|zsh|fish",
                    ));
                }
            };
            let mut out = Vec::new();
            help::completions(shell, &mut out);
            return Ok(Some(Action::Print(
                String::from_utf8_lossy(&out).into_owned(),
            )));
        }
        "manpages" => {
            return match words {
                [_, dir] => Ok(Some(Action::Manpages(dir.into()))),
                _ => Err(Failure::new(USAGE, "usage: tandemctl manpages DIR")),
            };
        }
        _ => {}
    }
    if let Err(e) = syntax::resolve_group(first) {
        return Err(Failure::new(
            USAGE,
            format!("unknown command group: {e} (see tandemctl --help)"),
        ));
    }
    if words[1..].iter().any(|w| w == "--help" || w == "-h") {
        let before: Vec<String> = words
            .iter()
            .take_while(|w| *w != "--help" && *w != "-h")
            .cloned()
            .collect();
        return help::help_text(&before)
            .map(|t| Some(Action::Print(t)))
            .map_err(|e| Failure::new(USAGE, e));
    }
    Ok(None)
}

/// `diagnostics FILE` is written by the daemon, whose directory is not ours: a relative FILE
/// is made absolute here.
fn absolute_archive_path(words: &mut [String]) -> Result<()> {
    if let [first, path] = words
        && first.len() >= 2
        && "diagnostics".starts_with(first.to_ascii_lowercase().as_str())
        && !path.starts_with('/')
    {
        let cwd = std::env::current_dir().context("the current directory")?;
        *path = cwd.join(&*path).display().to_string();
    }
    Ok(())
}

fn send(socket: &str, words: &[String], json: bool) -> Result<Response, Failure> {
    let unreachable = |what: String| Failure::new(UNREACHABLE, what);
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        unreachable(format!(
            "cannot reach tandemd at {socket}: {e} (is it running? see --socket)"
        ))
    })?;
    let io = |e: std::io::Error| unreachable(format!("talking to tandemd at {socket}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut line = serde_json::to_string(&Request { words, json })
        .map_err(|e| Failure::new(USAGE, format!("encoding the request: {e}")))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(|e| {
        unreachable(format!(
            "no answer from tandemd at {socket}: {e} (it may be busy or wedged)"
        ))
    })?;
    serde_json::from_str(&reply).map_err(|_| {
        unreachable(format!(
            "tandemd at {socket} sent an unreadable answer: {reply:?}"
        ))
    })
}

/// Runs one command; prints its output.
fn run_one(opts: &Options, words: &[String]) -> Result<(), Failure> {
    let resp = send(&opts.socket, words, opts.json)?;
    if !resp.ok {
        // Whatever tandemd refuses, its parse errors included, is 1: 2 is for what tandemctl
        // tells itself (its options, a group that matches nothing).
        return Err(Failure::new(REFUSED, resp.error));
    }
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&resp.data).unwrap_or_default()
        );
    } else if !resp.output.is_empty() {
        print!("{}", resp.output);
        if !resp.output.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, action) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err((json, f)) => {
            report(json, &f);
            std::process::exit(f.code);
        }
    };
    let code = match action {
        Action::Print(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            OK
        }
        Action::Manpages(dir) => match help::manpages(&dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                OK
            }
            Err(e) => {
                let f = Failure::new(REFUSED, format!("{e:#}"));
                report(opts.json, &f);
                f.code
            }
        },
        Action::Run(words) => match run_one(&opts, &words) {
            Ok(()) => OK,
            Err(f) => {
                report(opts.json, &f);
                f.code
            }
        },
        Action::Stdin => run_stdin(&opts),
    };
    std::process::exit(code);
}

/// One line of standard input or of the interactive session; `false` ends the session.
fn run_line(opts: &Options, line: &str, code: &mut i32) -> bool {
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => {
            report(opts.json, &Failure::new(USAGE, e));
            *code = (*code).max(USAGE);
            return true;
        }
    };
    match words.first().map(String::as_str) {
        None => return true,
        Some("exit" | "quit") => return false,
        _ => {}
    }
    let mut words = words;
    if words[0].eq_ignore_ascii_case("dscontrol") || words[0].eq_ignore_ascii_case("tandemctl") {
        words.remove(0);
    }
    let result = match local_action(&words) {
        Ok(Some(Action::Print(text))) => {
            print!("{text}");
            Ok(())
        }
        Ok(Some(_)) => Err(Failure::new(
            USAGE,
            "not in a session: run it as tandemctl's command",
        )),
        Ok(None) if words.is_empty() => Err(Failure::new(USAGE, "a command must follow dscontrol")),
        Ok(None) => match absolute_archive_path(&mut words) {
            Ok(()) => run_one(opts, &words),
            Err(e) => Err(Failure::new(USAGE, format!("{e:#}"))),
        },
        Err(f) => Err(f),
    };
    if let Err(f) = result {
        report(opts.json, &f);
        *code = (*code).max(f.code);
        if f.code == UNREACHABLE {
            return false; // every further command would fail the same way
        }
    }
    true
}

/// Commands from standard input: interactive on a terminal, else one per line. The exit code
/// is the highest of the commands' (3 stops at once: the daemon is gone).
fn run_stdin(opts: &Options) -> i32 {
    let mut code = OK;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let mut session = match interactive::Session::new() {
            Ok(s) => s,
            Err(e) => {
                report(
                    opts.json,
                    &Failure::new(USAGE, format!("the terminal: {e}")),
                );
                return USAGE;
            }
        };
        while let Some(line) = session.next_line() {
            if !run_line(opts, &line, &mut code) {
                break;
            }
        }
        return code;
    }
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                report(
                    opts.json,
                    &Failure::new(USAGE, format!("reading standard input: {e}")),
                );
                return USAGE;
            }
        };
        if !run_line(opts, &line, &mut code) {
            break;
        }
    }
    code
}

/// Splits an interactive line as the daemon's grammar splits a file line
/// (`tandem_core::config::split_line`): whitespace between words, a `#` outside quotes starts a
/// comment, a double-quoted word keeps its spaces and `#` (`\"` inside does not end it). The
/// quotes go; backslash escapes stay for the daemon to decode.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string (a '\"' ends it)".into()),
                    Some('"') => break,
                    Some('\\') => {
                        word.push('\\');
                        word.extend(chars.next());
                    }
                    Some(c) => word.push(c),
                }
            }
            if chars
                .peek()
                .is_some_and(|c| !c.is_whitespace() && *c != '#')
            {
                return Err(
                    "a closing '\"' must be followed by a space or the end of the line".into(),
                );
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '#' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_words(s: &str) -> (Options, Vec<String>) {
        match parse_args(args(s)) {
            Ok((o, Action::Run(w))) => (o, w),
            Ok(_) => panic!("{s}: not a command to run"),
            Err((_, f)) => panic!("{s}: {}", f.message),
        }
    }

    #[test]
    fn a_relative_diagnostics_file_is_made_absolute_here() {
        let cwd = std::env::current_dir().unwrap();
        let (_, w) = run_words("diag trace.tar.gz");
        assert_eq!(w[1], cwd.join("trace.tar.gz").display().to_string());
        let (_, w) = run_words("diagnostics /tmp/t.tar.gz");
        assert_eq!(w[1], "/tmp/t.tar.gz");
        // Other commands' words are never touched.
        let (_, w) = run_words("highavailability scripts rel");
        assert_eq!(w[2], "rel");
    }

    #[test]
    fn interactive_lines_keep_quoted_words() {
        assert_eq!(
            split_words(
                "server set @@192.0.2.11 advisorrequest \"HEAD / HTTP/1.1\\r\\nHost: a # b\" # c"
            )
            .unwrap(),
            [
                "server",
                "set",
                "@@192.0.2.11",
                "advisorrequest",
                "HEAD / HTTP/1.1\\r\\nHost: a # b"
            ]
        );
        assert_eq!(
            split_words("  executor status # x").unwrap(),
            ["executor", "status"]
        );
        assert_eq!(
            split_words("a \"say \\\"hi\\\"\"").unwrap(),
            ["a", "say \\\"hi\\\""]
        );
        assert_eq!(split_words("a \"\"").unwrap(), ["a", ""]);
        assert!(split_words("a \"open").is_err());
        assert!(split_words("a \"x\"y").is_err());
    }

    #[test]
    fn options_stop_at_the_first_command_word() {
        let (o, w) = run_words("--socket /tmp/x.sock --json server report 192.0.2.100@80@ --json");
        assert_eq!(o.socket, "/tmp/x.sock");
        assert!(o.json);
        assert_eq!(w, ["server", "report", "192.0.2.100@80@", "--json"]);
    }

    #[test]
    fn abbreviations_and_leading_dscontrol_go_to_the_daemon_unchanged() {
        let (_, w) = run_words("dscontrol executor status");
        assert_eq!(w, ["executor", "status"]);
        let (_, w) = run_words("ex sta");
        assert_eq!(w, ["ex", "sta"]);
        let (_, w) = run_words("HA stat");
        assert_eq!(w, ["HA", "stat"]);
    }

    #[test]
    fn usage_errors_are_code_2() {
        for bad in [
            "--bogus executor status",
            "bogus status",
            "s report @",
            "completions tcsh",
        ] {
            match parse_args(args(bad)) {
                Err((_, f)) => assert_eq!(f.code, USAGE, "{bad}: {}", f.message),
                Ok(_) => panic!("{bad} accepted"),
            }
        }
        assert!(wants_json(&args("--socket /x -j bogus")));
        assert!(!wants_json(&args("bogus --json")));
    }
}
