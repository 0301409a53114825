//! The word cursor, keyword matching (unique prefixes) and value parsers.

use super::{MAX_SECONDS, MIN_SECONDS, ParseError};
use std::net::IpAddr;
use std::str::FromStr;

pub(super) const YES_NO: &[&str] = &["yes", "no"];
pub(super) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
/// Resolves `word` to one of `choices`: an exact (case-insensitive) match, or else the only
/// choice that `word` is a prefix of.
pub(super) fn match_keyword(
    word: &str,
    choices: &[&'static str],
) -> Result<&'static str, ParseError> {
    let lower = word.to_ascii_lowercase();
    if let Some(exact) = choices.iter().find(|c| **c == lower) {
        return Ok(*exact);
    }
    let mut candidates: Vec<&'static str> = if lower.is_empty() {
        Vec::new()
    } else {
        choices
            .iter()
            .copied()
            .filter(|c| c.starts_with(&lower))
            .collect()
    };
    match candidates.len() {
        1 => Ok(candidates[0]),
        0 => Err(ParseError::UnknownKeyword {
            word: word.to_string(),
            expected: choices.to_vec(),
        }),
        _ => {
            candidates.sort_unstable();
            Err(ParseError::AmbiguousKeyword {
                word: word.to_string(),
                candidates,
            })
        }
    }
}

/// Turns host names into addresses while a command is parsed (`server add @80@www1`,
/// `highavailability heartbeat add lb1 lb2`). The core does no I/O: the caller passes one (the
/// daemon's uses the system resolver); without one, a host name is a `bad address`.
pub trait Resolver {
    /// The address of host `name`, or why there is none.
    fn resolve(&mut self, name: &str) -> Result<IpAddr, String>;
}

/// The resolver of callers that take addresses only: every host name is a `bad address`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&mut self, name: &str) -> Result<IpAddr, String> {
        Err(format!("bad address '{name}'"))
    }
}

/// Whether `word` can be a host name: letters, digits, `-` and `.`, at least one letter, at
/// most 253 bytes (so `10.0.0.300` or `2001:db8::zz` stay bad addresses).
fn is_host_name(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 253
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && word.bytes().any(|b| b.is_ascii_alphabetic())
        && !word.starts_with(['-', '.'])
}

/// A cursor over the words of one command.
pub(super) struct Words<'w> {
    pub(super) words: &'w [&'w str],
    pub(super) pos: usize,
    /// Resolves host names where the grammar allows them; `None`: addresses only.
    pub(super) resolver: Option<&'w mut dyn Resolver>,
    /// `resolved NAME to ADDR`, one per host name resolved.
    pub(super) warnings: Vec<String>,
}

impl<'w> Words<'w> {
    pub(super) fn next(&mut self) -> Option<&'w str> {
        let word = self.words.get(self.pos).copied();
        if word.is_some() {
            self.pos += 1;
        }
        word
    }

    /// The word before the cursor (for "missing ... after 'X'" messages).
    pub(super) fn previous(&self) -> String {
        match self.pos.checked_sub(1).and_then(|i| self.words.get(i)) {
            Some(w) => (*w).to_string(),
            None => String::new(),
        }
    }

    /// The next word, which must be one of `choices`.
    pub(super) fn keyword(&mut self, choices: &[&'static str]) -> Result<&'static str, ParseError> {
        match self.next() {
            Some(word) => match_keyword(word, choices),
            None => Err(ParseError::MissingKeyword {
                after: self.previous(),
                expected: choices.to_vec(),
            }),
        }
    }

    /// The next word, which must exist; `what` names it in the error.
    pub(super) fn value(&mut self, what: &'static str) -> Result<&'w str, ParseError> {
        match self.next() {
            Some(word) => Ok(word),
            None => Err(ParseError::MissingValue {
                after: self.previous(),
                what,
            }),
        }
    }

    /// Fails unless every word has been used.
    pub(super) fn end(&mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(word) => Err(ParseError::UnexpectedWord(word.to_string())),
            None => Ok(()),
        }
    }

    pub(super) fn address(&mut self, what: &'static str) -> Result<IpAddr, ParseError> {
        parse_address(self.value(what)?)
    }

    /// The next word as an address or a host name (resolved once, with a warning).
    pub(super) fn host_value(&mut self, what: &'static str) -> Result<IpAddr, ParseError> {
        let word = self.value(what)?;
        self.host(word)
    }

    /// `word` as an address or, where the grammar allows host names, a host name resolved by
    /// the caller's [`Resolver`] (a warning `resolved NAME to ADDR` is kept).
    pub(super) fn host(&mut self, word: &str) -> Result<IpAddr, ParseError> {
        if let Ok(a) = parse_address(word) {
            return Ok(a);
        }
        let (true, Some(resolver)) = (is_host_name(word), self.resolver.as_mut()) else {
            return Err(ParseError::BadAddress(word.to_string()));
        };
        match resolver.resolve(word) {
            Ok(a) if !a.is_unspecified() => {
                self.warnings.push(format!("resolved {word} to {a}"));
                Ok(a)
            }
            Ok(a) => Err(ParseError::Invalid(format!(
                "cannot resolve {word}: it resolves to the unspecified address {a}"
            ))),
            Err(e) if e.starts_with("bad address") => Err(ParseError::BadAddress(word.to_string())),
            Err(e) => Err(ParseError::Invalid(format!("cannot resolve {word}: {e}"))),
        }
    }
}

/// An IP address (IPv4 or IPv6, not the unspecified `0.0.0.0` / `::`).
pub(super) fn parse_address(word: &str) -> Result<IpAddr, ParseError> {
    match IpAddr::from_str(word) {
        Ok(addr) if !addr.is_unspecified() => Ok(addr),
        _ => Err(ParseError::BadAddress(word.to_string())),
    }
}

/// An unsigned integer in `min..=max`; `range` is the text shown in errors (`"1-100"`).
pub(super) fn parse_number(
    word: &str,
    what: &'static str,
    min: u64,
    max: u64,
    range: &'static str,
) -> Result<u64, ParseError> {
    let digits = word.strip_prefix('+').unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber {
            what,
            word: word.to_string(),
        });
    }
    match digits.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ParseError::OutOfRange {
            what,
            value: word.to_string(),
            range,
        }),
    }
}

pub(super) fn parse_port(word: &str) -> Result<u16, ParseError> {
    // The range check makes the narrowing conversion lossless.
    parse_number(word, "port", 1, 65535, "1-65535").map(|n| n as u16)
}

pub(super) fn parse_u32(
    word: &str,
    what: &'static str,
    min: u64,
    range: &'static str,
) -> Result<u32, ParseError> {
    parse_number(word, what, min, u64::from(u32::MAX), range).map(|n| n as u32)
}

/// A positive number of seconds, possibly fractional (`0.2`), within
/// [`MIN_SECONDS`]`..=`[`MAX_SECONDS`].
pub(super) fn parse_seconds(word: &str, what: &'static str) -> Result<f64, ParseError> {
    match f64::from_str(word) {
        Ok(s) if s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(ParseError::BadSeconds {
            what,
            word: word.to_string(),
        }),
    }
}

/// A file or directory name: not empty, no whitespace, `#` or `"` (so that a saved
/// configuration reads back the same: it is written as a bare word).
pub(super) fn parse_path(word: &str, what: &'static str) -> Result<String, ParseError> {
    if word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || c == '#' || c == '"')
    {
        return Err(ParseError::Invalid(format!(
            "bad {what} '{word}' (must not be empty or contain whitespace, '#' or '\"')"
        )));
    }
    Ok(word.to_string())
}
/// Stores an option value, refusing a second one.
pub(super) fn set_once<T>(
    slot: &mut Option<T>,
    name: &'static str,
    value: T,
) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateOption(name));
    }
    *slot = Some(value);
    Ok(())
}

/// Longest `advisorrequest` / `advisorresponse`, in bytes (after escapes are decoded).
pub const MAX_ADVISOR_TEXT: usize = 4096;

/// Splits a line into words: whitespace separates words, a `#` outside double quotes starts a
/// comment that runs to the end of the line, and a word that starts with `"` runs to the
/// matching `"` (spaces and `#` included; `\"` does not end it). The quotes are removed, the
/// backslash escapes are kept as they are: the value parser that needs a string
/// ([`parse_text`]) decodes them, for words from a line and from `tandemctl`'s arguments
/// alike.
pub fn split_line(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        if c != '"' {
            let mut end = line.len();
            while let Some(&(i, c)) = chars.peek() {
                if c.is_whitespace() || c == '#' {
                    end = i;
                    break;
                }
                chars.next();
            }
            words.push(line[start..end].to_string());
            continue;
        }
        chars.next(); // the opening quote
        let mut word = String::new();
        let mut closed = false;
        while let Some((_, c)) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => {
                    word.push('\\');
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                c => word.push(c),
            }
        }
        if !closed {
            return Err(ParseError::Invalid(format!(
                "unterminated quoted string starting at {:?} (a '\"' ends it; write \\\" for a quote inside)",
                &line[start..]
            )));
        }
        if let Some(&(_, next)) = chars.peek()
            && !next.is_whitespace()
            && next != '#'
        {
            return Err(ParseError::Invalid(format!(
                "a closing '\"' must be followed by a space or the end of the line (in {:?})",
                &line[start..]
            )));
        }
        words.push(word);
    }
    Ok(words)
}

/// A string value (`advisorrequest`, `advisorresponse`): the word with its backslash escapes
/// decoded (`\"` `\\` `\r` `\n` `\t`). A word that arrives still wrapped in double quotes
/// (a `tandemctl` argument given as `'"HEAD /"'`) loses them. At most [`MAX_ADVISOR_TEXT`]
/// bytes.
pub(super) fn parse_text(word: &str, what: &'static str) -> Result<String, ParseError> {
    let inner = match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(inner) => inner,
        None => word,
    };
    let mut text = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        text.push(match chars.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('r') => '\r',
            Some('n') => '\n',
            Some('t') => '\t',
            Some(other) => {
                return Err(ParseError::Invalid(format!(
                    "bad escape '\\{other}' in {what} (use \\\" \\\\ \\r \\n or \\t)"
                )));
            }
            None => {
                return Err(ParseError::Invalid(format!(
                    "{what} ends with a lone '\\' (write \\\\ for a backslash)"
                )));
            }
        });
    }
    if text.len() > MAX_ADVISOR_TEXT {
        return Err(ParseError::Invalid(format!(
            "{what} is {} bytes long (at most {MAX_ADVISOR_TEXT})",
            text.len()
        )));
    }
    Ok(text)
}

/// Writes `text` as one double-quoted word that [`split_line`] and [`parse_text`] read back
/// to `text`.
pub(super) fn write_quoted(f: &mut std::fmt::Formatter<'_>, text: &str) -> std::fmt::Result {
    use std::fmt::Write;
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\r' => f.write_str("\\r")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Longest `label` of a cluster or server, in characters.
pub const MAX_LABEL: usize = 64;

/// A `label "TEXT"` of a cluster or server: a string value ([`parse_text`]) of at most
/// [`MAX_LABEL`] characters, printable (no control characters: no line breaks or tabs);
/// `""` removes the label. Any other text is kept as it is, `<script>` included: the reports
/// print it and the status page renders it as text.
pub(super) fn parse_label(word: &str) -> Result<String, ParseError> {
    let text = parse_text(word, "label")?;
    let chars = text.chars().count();
    if chars > MAX_LABEL {
        return Err(ParseError::Invalid(format!(
            "label is {chars} characters long (at most {MAX_LABEL})"
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(ParseError::Invalid(format!(
            "label holds the control character {c:?} (a label is one line of printable text)"
        )));
    }
    Ok(text)
}
