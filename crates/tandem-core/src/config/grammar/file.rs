//! `file save|newload|appendload|report|delete`: configuration files of the configuration
//! directory. They are actions, not changes of the configuration ([`Command::is_mutation`]
//! is false): the daemon reads and writes the files, and [`load_file`](super::super::load_file)
//! reads nested ones through the caller's [`FileSource`](super::super::FileSource).

use super::syntax::FILE_VERBS;
use super::words::{Words, match_keyword};
use super::{Command, ParseError};

const FORCE: &[&str] = &["force"];

/// The longest file name accepted (room left for a temporary file's suffix).
pub const MAX_FILE_NAME: usize = 200;

/// Whether `name` is a plain file name of the configuration directory: not empty, no `/`,
/// NUL, whitespace, `#` or `"`, not `.`/`..` nor hidden (a leading `.` is kept for temporary
/// files), at most [`MAX_FILE_NAME`] bytes. The error says why not.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".to_string());
    }
    if name.contains('/') {
        return Err("it contains '/'".to_string());
    }
    if name.contains('\0') {
        return Err("it contains NUL".to_string());
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is a directory"));
    }
    if name.starts_with('.') {
        return Err("names starting with '.' are reserved for temporary files".to_string());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c == '#' || c == '"')
    {
        return Err("it contains whitespace, '#' or '\"'".to_string());
    }
    if name.len() > MAX_FILE_NAME {
        return Err(format!("longer than {MAX_FILE_NAME} bytes"));
    }
    Ok(())
}

fn file_name(w: &mut Words<'_>) -> Result<String, ParseError> {
    let name = w.value("file name")?;
    check_file_name(name).map_err(|why| {
        ParseError::Invalid(format!(
            "bad file name '{}': {why} (files are plain names in the configuration directory)",
            name.escape_debug()
        ))
    })?;
    Ok(name.to_string())
}

pub(super) fn parse_file(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(&FILE_VERBS)? {
        "save" => {
            let name = file_name(w)?;
            let force = match w.next() {
                None => false,
                Some(word) => {
                    match_keyword(word, FORCE)?;
                    true
                }
            };
            Command::FileSave { name, force }
        }
        "newload" => Command::FileNewLoad(file_name(w)?),
        "appendload" => Command::FileAppendLoad(file_name(w)?),
        "report" => Command::FileReport,
        _ => Command::FileDelete(file_name(w)?),
    };
    w.end()?;
    Ok(cmd)
}
