//! The pair's shared key file: read it (bounded, never blocking) and generate a new one
//! (`highavailability key FILE`, `highavailability key generate FILE`).

use anyhow::{Context, Result};
use std::io::Write;

/// Reads a shared heartbeat key: the file's bytes, surrounding whitespace removed. Only a
/// small regular file is read (opened without blocking: a FIFO or a device can never wedge
/// the caller, which may hold the node lock during a configuration load).
pub fn read_key(path: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("reading the HA key file {path}"))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading the HA key file {path}"))?;
    if !meta.is_file() {
        anyhow::bail!("the HA key file {path} is not a regular file");
    }
    let mut bytes = Vec::new();
    f.take(4097)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the HA key file {path}"))?;
    if bytes.len() > 4096 {
        anyhow::bail!("the HA key file {path} is longer than 4096 bytes");
    }
    let text = String::from_utf8_lossy(&bytes);
    let key = text.trim().as_bytes().to_vec();
    if key.len() < 16 {
        anyhow::bail!(
            "the HA key in {path} is too short ({} bytes; use at least 16, e.g. \
             'highavailability key generate FILE')",
            key.len()
        );
    }
    Ok(key)
}

/// Writes a new random pair key (32 bytes from the kernel, as 64 hex digits) to `path`, mode
/// 0600, refusing to overwrite an existing file.
pub fn generate_key(path: &str) -> Result<()> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom")?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating the key file {path} (it must not exist yet)"))?;
    f.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}
