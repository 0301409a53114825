//! Configuration files: `file save|newload|appendload NAME` and `tandemd --config FILE`.
//!
//! * Names given to the `file` commands are plain file names inside the configuration
//!   directory (`/etc/tandem`, or `tandemd --config-dir DIR`): no `/`, not `.` or `..`, no NUL,
//!   not hidden (a leading `.` is kept for temporary files), and the file itself may not be a
//!   symbolic link. Only `--config FILE`, the operator's own command line, takes any path.
//! * `file save` is atomic: the text goes to a new temporary file in the same directory, is
//!   flushed to disk (fsync), renamed over the old file, and the directory is flushed too. A
//!   crash or a full file system leaves the old file as it was, and no temporary file behind.
//! * `file newload|appendload` read only regular files, at most [`MAX_CONFIG_BYTES`], and the
//!   file is opened without blocking (a FIFO cannot hold the caller) and read before the node
//!   lock is taken, so the HA thread never waits for a file.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The configuration directory when `--config-dir` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/tandem";
/// The largest configuration file read (a file with 100 000 servers is about 8 MB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The longest file name accepted (room left for the temporary file's suffix).
const MAX_NAME: usize = 200;

/// `file newload`, `file appendload` or `file save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileVerb {
    NewLoad,
    AppendLoad,
    Save,
}

impl FileVerb {
    pub fn keyword(self) -> &'static str {
        match self {
            FileVerb::NewLoad => "newload",
            FileVerb::AppendLoad => "appendload",
            FileVerb::Save => "save",
        }
    }
}

/// A `file` command: the verb and the file name, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCommand {
    pub verb: FileVerb,
    pub name: String,
}

impl FileCommand {
    /// `None` if `words` is not a `file` command (`fi`, `fil`, `file`, any case); otherwise the
    /// command or the reason it is malformed. Keywords may be abbreviated, as in the grammar.
    pub fn parse(words: &[String]) -> Option<Result<FileCommand, String>> {
        let first = words.first()?.to_ascii_lowercase();
        if first.len() < 2 || !"file".starts_with(&first) {
            return None;
        }
        let verbs = [FileVerb::NewLoad, FileVerb::AppendLoad, FileVerb::Save];
        let expected = "expected one of: newload, appendload, save";
        let Some(word) = words.get(1).map(|w| w.to_ascii_lowercase()) else {
            return Some(Err(format!("missing keyword after 'file' ({expected})")));
        };
        let matches: Vec<FileVerb> = verbs
            .into_iter()
            .filter(|v| v.keyword().starts_with(word.as_str()))
            .collect();
        let verb = match matches.as_slice() {
            [one] => *one,
            [] => return Some(Err(format!("unknown keyword '{word}' ({expected})"))),
            many => {
                let names: Vec<&str> = many.iter().map(|v| v.keyword()).collect();
                return Some(Err(format!(
                    "ambiguous keyword '{word}': {}",
                    names.join(", ")
                )));
            }
        };
        let (Some(name), None) = (words.get(2), words.get(3)) else {
            return Some(Err(format!(
                "file {} takes exactly one FILE",
                verb.keyword()
            )));
        };
        Some(Ok(FileCommand {
            verb,
            name: name.clone(),
        }))
    }
}

/// The directory the `file` commands work in.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl Default for ConfigDir {
    fn default() -> ConfigDir {
        ConfigDir::new(DEFAULT_CONFIG_DIR.into())
    }
}

impl ConfigDir {
    pub fn new(dir: PathBuf) -> ConfigDir {
        ConfigDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of file `name`, if `name` is a plain file name.
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        check_name(name).with_context(|| {
            format!(
                "bad file name '{}': files are plain names in the configuration directory {} \
                 (tandemd --config-dir)",
                name.escape_debug(),
                self.dir.display()
            )
        })?;
        Ok(self.dir.join(name))
    }

    /// The directory must exist: `file` commands never create it.
    fn check_dir(&self) -> Result<()> {
        let meta = std::fs::metadata(&self.dir).with_context(|| {
            format!(
                "configuration directory {} (create it, or start tandemd with --config-dir DIR)",
                self.dir.display()
            )
        })?;
        if !meta.is_dir() {
            bail!(
                "configuration directory {} is not a directory",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Reads file `name` for `file newload|appendload`: a regular file (not a link, FIFO or
    /// device), at most [`MAX_CONFIG_BYTES`], UTF-8. Returns its path and text.
    pub fn read(&self, name: &str) -> Result<(PathBuf, String)> {
        let path = self.resolve(name)?;
        self.check_dir()?;
        // O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW: no links.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => anyhow::anyhow!(
                    "reading {}: it is a symbolic link (refused: name a file of {})",
                    path.display(),
                    self.dir.display()
                ),
                _ => anyhow::Error::new(e).context(format!("reading {}", path.display())),
            })?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            bail!(
                "reading {}: not a regular file (refused: a FIFO, device or directory would \
                 never end or hold the node)",
                path.display()
            );
        }
        let text = read_limited(file, &path)?;
        Ok((path, text))
    }

    /// Writes `text` as file `name`, atomically; returns its path.
    pub fn save(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.resolve(name)?;
        self.check_dir()?;
        // The name must be a regular file or nothing: never a link, whose target the rename
        // would not touch, nor a directory or device.
        let mode = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "writing {}: it is a symbolic link (refused: name a file of {})",
                path.display(),
                self.dir.display()
            ),
            Ok(m) if !m.is_file() => bail!("writing {}: not a regular file", path.display()),
            Ok(m) => m.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o644,
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_new(&tmp, text.as_bytes(), mode)
            .and_then(|()| std::fs::rename(&tmp, &path).context("renaming it into place"));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!(
                "writing {} (the previous file is unchanged)",
                path.display()
            )));
        }
        // The rename is durable once the directory is on disk.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("flushing the directory {}", self.dir.display()))?;
        Ok(path)
    }
}

/// The text `file save` writes: the configuration as commands, in IBM's order.
pub fn render(config: &tandem_core::config::Config) -> String {
    let mut text = String::from(
        "# Saved by tandemd: executor, clusters, ports, servers, manager, advisors, sasp, then high availability.\n",
    );
    for line in config.to_commands() {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Creates `tmp` (which must not exist), writes `bytes`, flushes them to disk.
fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .with_context(|| format!("creating the temporary file {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a whole file of at most [`MAX_CONFIG_BYTES`] as UTF-8.
fn read_limited(file: std::fs::File, path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "reading {}: larger than {} MB (refused)",
            path.display(),
            MAX_CONFIG_BYTES >> 20
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "reading {}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Reads the `--config FILE` given at start: any path the operator names (following links,
/// FIFOs included: nothing else runs yet), at most [`MAX_CONFIG_BYTES`].
pub fn read_start_config(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    read_limited(file, path)
}

/// Whether `name` is a plain file name: not empty, no `/` or NUL, not `.`/`..` or hidden,
/// at most [`MAX_NAME`] bytes.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("empty");
    }
    if name.contains('/') {
        bail!("it contains '/'");
    }
    if name.contains('\0') {
        bail!("it contains NUL");
    }
    if name == "." || name == ".." {
        bail!("'{name}' is a directory");
    }
    if name.starts_with('.') {
        bail!("names starting with '.' are reserved for temporary files");
    }
    if name.len() > MAX_NAME {
        bail!("longer than {MAX_NAME} bytes");
    }
    Ok(())
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
