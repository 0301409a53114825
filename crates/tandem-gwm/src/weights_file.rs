//! The operator's override file (`--weights-file`): one member a line,
//! `ADDRESS PORT WEIGHT [quiesce]` or `ADDRESS PORT quiesce`; `#` starts a comment.
//!
//! ```text
//! # exact weights for the lab test
//! 192.0.2.21 80 60000
//! 192.0.2.22 80 20000
//! 192.0.2.23 80 quiesce
//! ```
//!
//! The file is re-read when its contents change; a file that does not parse is reported and
//! the last good overrides stay in force.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use tandem_core::sasp::gwm::Override;

/// Largest weights file read.
pub const MAX_FILE: u64 = 1 << 20;

pub type Overrides = BTreeMap<(IpAddr, u16), Override>;

/// Parses the file's text.
pub fn parse(text: &str) -> Result<Overrides> {
    let mut out = Overrides::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        parse_line(line, &mut out).with_context(|| format!("line {}: {line:?}", n + 1))?;
    }
    Ok(out)
}

fn parse_line(line: &str, out: &mut Overrides) -> Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 3 || words.len() > 4 {
        bail!("expected `ADDRESS PORT WEIGHT [quiesce]` or `ADDRESS PORT quiesce`");
    }
    let address: IpAddr = words[0]
        .parse()
        .with_context(|| format!("{:?} is not an IP address", words[0]))?;
    let port: u16 = words[1]
        .parse()
        .with_context(|| format!("{:?} is not a port (0-65535)", words[1]))?;
    let (weight, quiesce) = match (words[2], words.get(3)) {
        ("quiesce", None) => (None, true),
        (w, q) => {
            let weight: u16 = w
                .parse()
                .with_context(|| format!("{w:?} is not a weight (0-65535)"))?;
            match q {
                None => (Some(weight), false),
                Some(&"quiesce") => (Some(weight), true),
                Some(other) => bail!("{other:?}: only `quiesce` may follow the weight"),
            }
        }
    };
    if out
        .insert((address, port), Override { weight, quiesce })
        .is_some()
    {
        bail!("{address} {port} is listed twice");
    }
    Ok(())
}

/// Reads and parses the file (bounded).
pub fn read(path: &std::path::Path) -> Result<(Vec<u8>, Overrides)> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        bail!("{} is larger than {MAX_FILE} bytes", path.display());
    }
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let overrides = parse(text).with_context(|| path.display().to_string())?;
    Ok((bytes, overrides))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_file_lines() {
        let o = parse(
            "# c\n192.0.2.21 80 60000\n\n2001:db8::1 443 5 quiesce # x\n192.0.2.23 80 quiesce\n",
        )
        .unwrap();
        assert_eq!(o.len(), 3);
        let a: IpAddr = "192.0.2.21".parse().unwrap();
        assert_eq!(
            o[&(a, 80)],
            Override {
                weight: Some(60000),
                quiesce: false
            }
        );
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            o[&(b, 443)],
            Override {
                weight: Some(5),
                quiesce: true
            }
        );
        let c: IpAddr = "192.0.2.23".parse().unwrap();
        assert_eq!(
            o[&(c, 80)],
            Override {
                weight: None,
                quiesce: true
            }
        );
    }

    #[test]
    fn weights_file_errors_name_the_line() {
        for (text, needle) in [
            ("192.0.2.1 80\n", "expected"),
            ("x 80 1\n", "not an IP address"),
            ("192.0.2.1 99999 1\n", "not a port"),
            ("192.0.2.1 80 65536\n", "not a weight"),
            ("192.0.2.1 80 1 drain\n", "only `quiesce`"),
            ("192.0.2.1 80 1\n192.0.2.1 80 2\n", "listed twice"),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("line "), "{text:?}: {err}");
        }
    }
}
