//! The help, shell completions and man pages, generated from the grammar's syntax table
//! (`tandem_core::config::syntax`): the same table the daemon's parser takes its keywords
//! from, so the help cannot drift from the commands.

use crate::Cli;
use anyhow::{Context, Result};
use clap::{Arg, ArgAction, CommandFactory, builder::PossibleValuesParser};
use std::io::Write;
use std::path::Path;
use tandem_core::config::syntax::{self, Group, Verb};

/// The exit codes, as `--help` and the man page state them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  command refused: tandemd refused it (words that are not a command, with the grammar's
     error; an object that does not exist; a value the configuration refuses; an action that
     cannot run now)
  2  usage: a bad tandemctl option, or a command group that matches nothing (said without
     asking tandemd)
  3  tandemd unreachable: socket missing, connection refused or denied, no answer in time";

const ABOUT: &str = "Tandem's control CLI: sends dscontrol commands to tandemd";
const LONG_ABOUT: &str = "\
Tandem's control CLI. The command words go unchanged to tandemd over its Unix socket, where the
grammar that reads configuration files parses them. Every keyword may be shortened to a unique
prefix (`ex sta` = `executor start`); a leading `dscontrol` is ignored. With no command and a
terminal on standard input, tandemctl is interactive (history in ~/.tandemctl_history, Tab
completes groups, verbs and options); otherwise it reads commands from standard input, one per
line.";

fn verb_command(group: &Group, verb: &Verb) -> clap::Command {
    let usage = verb
        .usages
        .iter()
        .map(|u| format!("tandemctl {u}"))
        .collect::<Vec<_>>()
        .join("\n       ");
    let mut after = String::new();
    if !verb.options.is_empty() {
        after.push_str("Options of the command:\n");
        for o in verb.options {
            after.push_str(&format!("  {} {}\n", o.name, o.values));
        }
    }
    if !verb.examples.is_empty() {
        after.push_str("Examples:\n");
        for e in verb.examples {
            after.push_str(&format!("  tandemctl {e}\n"));
        }
    }
    let mut words = Arg::new("words")
        .value_name("ARGS")
        .help("targets, values and options, as in the usage")
        .num_args(0..)
        .trailing_var_arg(true)
        .allow_hyphen_values(true)
        .hide_possible_values(true);
    if !verb.options.is_empty() {
        // For completion only: this command is never used to parse.
        let names: Vec<&'static str> = verb.options.iter().map(|o| o.name).collect();
        words = words.value_parser(PossibleValuesParser::new(names));
    }
    clap::Command::new(verb.name)
        .about(verb.summary)
        .override_usage(usage)
        .after_help(after)
        .hide(verb.refused)
        .arg(words)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .display_name(format!("tandemctl-{}-{}", group.name, verb.name))
}

/// The clap command of one group, with its verbs as subcommands.
pub fn group_command(group: &'static Group) -> clap::Command {
    let usages: Vec<String> = if group.verbs.is_empty() {
        group
            .usages
            .iter()
            .map(|u| format!("tandemctl {u}"))
            .collect()
    } else {
        group
            .verbs
            .iter()
            .filter(|v| !v.refused)
            .flat_map(|v| v.usages.iter().map(|u| format!("tandemctl {u}")))
            .collect()
    };
    let mut after = String::new();
    let examples: Vec<&str> = group
        .examples
        .iter()
        .chain(group.verbs.iter().flat_map(|v| v.examples.iter().take(1)))
        .copied()
        .collect();
    if !examples.is_empty() {
        after.push_str("Examples:\n");
        for e in examples {
            after.push_str(&format!("  tandemctl {e}\n"));
        }
    }
    let refused: Vec<&str> = group
        .verbs
        .iter()
        .filter(|v| v.refused)
        .map(|v| v.name)
        .collect();
    if !refused.is_empty() {
        after.push_str(&format!(
            "Refused with the reason (IBM keywords Tandem does not run): {}\n",
            refused.join(", ")
        ));
    }
    let mut cmd = clap::Command::new(group.name)
        .about(group.summary)
        .override_usage(usages.join("\n       "))
        .after_help(after)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .display_name(format!("tandemctl-{}", group.name));
    if group.verbs.is_empty() {
        cmd = cmd.arg(Arg::new("words").value_name("ARGS").num_args(0..));
    }
    for v in group.verbs {
        cmd = cmd.subcommand(verb_command(group, v));
    }
    cmd
}

/// The whole command: tandemctl's options (derive), the command groups from the syntax table,
/// and `completions`, `manpages` and `help`. Used for help, completions and man pages; the
/// command words themselves are never parsed by clap (the daemon parses them).
pub fn full_command() -> clap::Command {
    let mut cmd = Cli::command()
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .mut_arg("words", |a| a.hide(true))
        .override_usage(
            "tandemctl [OPTIONS] GROUP VERB [ARGS...]\n       tandemctl [OPTIONS]   (commands from standard input)\n       tandemctl help [GROUP [VERB]]\n       tandemctl completions bash|zsh|fish\n       tandemctl manpages DIR",
        )
        .after_help(EXIT_CODES)
        .subcommand_help_heading("Command groups")
        .subcommand_value_name("GROUP");
    for g in syntax::groups() {
        cmd = cmd.subcommand(group_command(g));
    }
    cmd.subcommand(
        clap::Command::new("completions")
            .about("print a shell completion script (bash, zsh, fish)")
            .arg(
                Arg::new("shell")
                    .required(true)
                    .value_parser(clap::value_parser!(clap_complete::Shell)),
            ),
    )
    .subcommand(
        clap::Command::new("manpages")
            .about("write the man pages (tandemctl.1, tandemctl-GROUP.1, tandemctl-GROUP-VERB.1) into DIR")
            .arg(Arg::new("dir").required(true).value_name("DIR")),
    )
    .subcommand(
        clap::Command::new("help")
            .about("help of tandemctl, a group or a verb")
            .arg(Arg::new("words").num_args(0..).action(ArgAction::Append)),
    )
}

/// The help text for `words` (`[]`, `[GROUP]`, `[GROUP, VERB]`, prefixes allowed), or `None`
/// when the group matches nothing.
pub fn help_text(words: &[String]) -> Result<String, String> {
    let mut cmd = full_command();
    cmd.build();
    let Some(first) = words.first() else {
        return Ok(cmd.render_long_help().to_string());
    };
    let group = match first.to_ascii_lowercase().as_str() {
        name @ ("completions" | "manpages" | "help") => {
            let sub = cmd.find_subcommand_mut(name).expect("built in");
            return Ok(sub.render_help().to_string());
        }
        _ => syntax::resolve_group(first).map_err(|e| e.to_string())?,
    };
    let sub = cmd.find_subcommand_mut(group.name).expect("every group");
    if let Some(word) = words.get(1)
        && let Some(verb) = syntax::resolve_verb(group, word)
    {
        let v = sub.find_subcommand_mut(verb.name).expect("every verb");
        return Ok(v.render_help().to_string());
    }
    Ok(sub.render_help().to_string())
}

/// `tandemctl completions SHELL`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut cmd = full_command();
    clap_complete::generate(shell, &mut cmd, "tandemctl", out);
}

/// `tandemctl manpages DIR`: `tandemctl.1`, `tandemctl-GROUP.1` per group and
/// `tandemctl-GROUP-VERB.1` per verb (the group pages name them). Returns the files written.
pub fn manpages(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = full_command();
    cmd.build();
    let mut written = Vec::new();
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .with_context(|| format!("rendering {name}.1"))?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write("tandemctl".into(), cmd.clone())?;
    for own in ["completions", "manpages", "help"] {
        let name = format!("tandemctl-{own}");
        let sub = cmd.find_subcommand(own).expect("built in").clone();
        write(
            name.clone(),
            sub.name(name).bin_name(format!("tandemctl {own}")),
        )?;
    }
    for g in syntax::groups() {
        let name = format!("tandemctl-{}", g.name);
        let sub = cmd
            .find_subcommand(g.name)
            .expect("every group")
            .clone()
            .name(name.clone())
            .bin_name(format!("tandemctl {}", g.name));
        for v in g.verbs {
            let verb_name = format!("tandemctl-{}-{}", g.name, v.name);
            let verb = sub
                .find_subcommand(v.name)
                .expect("every verb")
                .clone()
                .name(verb_name.clone())
                .bin_name(format!("tandemctl {} {}", g.name, v.name));
            write(verb_name, verb)?;
        }
        write(name, sub)?;
    }
    Ok(written)
}
