//! Interactive mode (no command words, a terminal on standard input): rustyline with history
//! in `$HOME/.tandemctl_history` (at most [`HISTORY_SIZE`] lines) and Tab completion of the
//! group, verb and option keywords of the syntax table.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tandem_core::config::syntax;

/// The most lines the history file keeps.
pub const HISTORY_SIZE: usize = 1000;

/// Words of the interactive session that are not commands.
const SESSION_WORDS: &[&str] = &["help", "exit", "quit"];

/// The keywords that may stand at word `index` after `before` (the words already typed).
pub fn candidates(before: &[&str]) -> Vec<&'static str> {
    let Some(first) = before.first() else {
        let mut all: Vec<&'static str> = syntax::groups().iter().map(|g| g.name).collect();
        all.extend(SESSION_WORDS);
        return all;
    };
    let Ok(group) = syntax::resolve_group(first) else {
        return Vec::new();
    };
    let Some(word) = before.get(1) else {
        return group
            .verbs
            .iter()
            .filter(|v| !v.refused)
            .map(|v| v.name)
            .collect();
    };
    match syntax::resolve_verb(group, word) {
        Some(verb) => verb.options.iter().map(|o| o.name).collect(),
        None => Vec::new(),
    }
}

struct Keywords;

impl Completer for Keywords {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let before: Vec<&str> = head[..start].split_whitespace().collect();
        let partial = head[start..].to_ascii_lowercase();
        let pairs = candidates(&before)
            .into_iter()
            .filter(|c| c.starts_with(&partial))
            .map(|c| Pair {
                display: c.to_string(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Keywords {
    type Hint = String;
}
impl Highlighter for Keywords {}
impl Validator for Keywords {}
impl Helper for Keywords {}

/// The lines typed, one per call of `next`; history is saved when the session ends.
pub struct Session {
    editor: Editor<Keywords, rustyline::history::FileHistory>,
    history: Option<std::path::PathBuf>,
}

impl Session {
    pub fn new() -> rustyline::Result<Session> {
        let config = rustyline::Config::builder()
            .max_history_size(HISTORY_SIZE)?
            .auto_add_history(true)
            .history_ignore_dups(true)?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut editor = Editor::with_config(config)?;
        editor.set_helper(Some(Keywords));
        let history = std::env::var_os("HOME")
            .map(|home| std::path::Path::new(&home).join(".tandemctl_history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path); // none yet: a new one is written at the end
        }
        Ok(Session { editor, history })
    }

    /// The next line, or `None` at end of input (Ctrl-D) or Ctrl-C.
    pub fn next_line(&mut self) -> Option<String> {
        match self.editor.readline("tandemctl> ") {
            Ok(line) => Some(line),
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => None,
            Err(e) => {
                eprintln!("tandemctl: reading the terminal: {e}");
                None
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(path) = &self.history
            && let Err(e) = self.editor.save_history(path)
        {
            eprintln!("tandemctl: saving the history to {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn completion_offers_groups_verbs_and_options_of_the_table() {
        let groups = candidates(&[]);
        assert!(groups.contains(&"executor") && groups.contains(&"ha"));
        assert!(groups.contains(&"exit"));
        assert_eq!(
            candidates(&["port"]),
            ["add", "set", "remove", "report", "status"]
        );
        // Prefixes resolve as the parser reads them.
        assert!(candidates(&["po", "a", "192.0.2.100@80"]).contains(&"method"));
        assert!(candidates(&["ex"]).contains(&"set"));
        assert!(candidates(&["ex", "set"]).contains(&"packetio"));
        assert!(!candidates(&["manager"]).contains(&"refresh"));
        assert!(candidates(&["bogus"]).is_empty());
    }
}
