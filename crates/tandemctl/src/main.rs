//! `tandemctl`: the operator's CLI for a Tandem node.
//!
//! It is deliberately thin: the command words go unchanged to the daemon over its Unix socket,
//! where the same grammar that reads configuration files parses them. One parser, one set of
//! error messages. With no command it reads commands from standard input, one per line, like
//! `dscontrol` with no arguments (`exit` or `quit` ends it).
//!
//! ```text
//! tandemctl [--socket PATH] [--json] COMMAND...
//! tandemctl port add 192.0.2.100@80 method nat
//! tandemctl --json server report 192.0.2.100@80@
//! ```

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Where `tandemd` listens unless told otherwise.
const DEFAULT_SOCKET: &str = "/run/tandem/tandemd.sock";

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

struct Options {
    socket: String,
    json: bool,
    words: Vec<String>,
}

const USAGE: &str = "usage: tandemctl [--socket PATH] [--json] COMMAND...\n\
  COMMAND is a dscontrol command, e.g. `executor status`, `port add 192.0.2.100@80 method nat`.\n\
  With no COMMAND, commands are read from standard input, one per line.";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options> {
    let mut socket = std::env::var("TANDEM_SOCKET").unwrap_or_else(|_| DEFAULT_SOCKET.to_string());
    let mut json = false;
    let mut words = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if !words.is_empty() {
            words.push(a);
            continue;
        }
        match a.as_str() {
            "--socket" | "-s" => socket = args.next().context("--socket needs a path")?,
            "--json" | "-j" => json = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with("--socket=") => socket = s["--socket=".len()..].to_string(),
            s if s.starts_with("--") => bail!("unknown option '{s}'\n{USAGE}"),
            _ => words.push(a),
        }
    }
    // IBM-style invocations sometimes keep the program name: `tandemctl dscontrol executor status`.
    if words
        .first()
        .is_some_and(|w| w == "dscontrol" || w == "tandemctl")
    {
        words.remove(0);
    }
    absolute_archive_path(&mut words)?;
    Ok(Options {
        socket,
        json,
        words,
    })
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

fn send(socket: &str, words: &[String], json: bool) -> Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach tandemd at {socket} (is it running? see --socket)")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_string(&Request { words, json })?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .context("reading tandemd's answer")?;
    serde_json::from_str(&reply)
        .with_context(|| format!("tandemd sent an unreadable answer: {reply:?}"))
}

/// Runs one command; prints its output; returns whether it succeeded.
fn run_one(opts: &Options, words: &[String]) -> Result<bool> {
    let resp = send(&opts.socket, words, opts.json)?;
    if !resp.ok {
        eprintln!("error: {}", resp.error);
        return Ok(false);
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&resp.data)?);
    } else if !resp.output.is_empty() {
        print!("{}", resp.output);
        if !resp.output.ends_with('\n') {
            println!();
        }
    }
    Ok(true)
}

fn main() {
    let code = match real_main() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("tandemctl: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn real_main() -> Result<bool> {
    let opts = parse_args(std::env::args().skip(1))?;
    if !opts.words.is_empty() {
        return run_one(&opts, &opts.words);
    }
    // Interactive / scripted mode.
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut all_ok = true;
    loop {
        if interactive {
            print!("tandemctl> ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let words = match split_words(&line) {
            Ok(words) => words,
            Err(e) => {
                eprintln!("error: {e}");
                all_ok = false;
                continue;
            }
        };
        match words.first().map(String::as_str) {
            None => continue,
            Some("exit" | "quit") => break,
            _ => {}
        }
        all_ok &= run_one(&opts, &words)?;
    }
    Ok(all_ok)
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

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn a_relative_diagnostics_file_is_made_absolute_here() {
        let cwd = std::env::current_dir().unwrap();
        let o = parse_args(args("diag trace.tar.gz")).unwrap();
        assert_eq!(o.words[1], cwd.join("trace.tar.gz").display().to_string());
        let o = parse_args(args("diagnostics /tmp/t.tar.gz")).unwrap();
        assert_eq!(o.words[1], "/tmp/t.tar.gz");
        // Other commands' words are never touched.
        let o = parse_args(args("highavailability scripts rel")).unwrap();
        assert_eq!(o.words[2], "rel");
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
        let o = parse_args(args(
            "--socket /tmp/x.sock --json server report 192.0.2.100@80@ --json",
        ))
        .unwrap();
        assert_eq!(o.socket, "/tmp/x.sock");
        assert!(o.json);
        assert_eq!(o.words, ["server", "report", "192.0.2.100@80@", "--json"]);
    }

    #[test]
    fn leading_dscontrol_is_ignored() {
        let o = parse_args(args("dscontrol executor status")).unwrap();
        assert_eq!(o.words, ["executor", "status"]);
    }

    #[test]
    fn unknown_option_is_an_error() {
        assert!(parse_args(args("--bogus executor status")).is_err());
    }
}
