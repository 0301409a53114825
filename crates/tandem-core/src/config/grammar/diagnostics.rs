//! `diagnostics FILE` (logs helper): writes the pair's diagnostics archive (both nodes' HA
//! logs, status, configuration and counters) to FILE. An action, not saved in files.

use super::words::{Words, parse_path};
use super::{Command, ParseError};

/// After the `diagnostics` keyword: the archive's path, and nothing more.
pub(super) fn parse_diagnostics(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let path = parse_path(w.value("archive file")?, "archive file")?;
    w.end()?;
    Ok(Command::Diagnostics(path))
}
