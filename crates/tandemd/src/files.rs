//! Configuration files: `file save|newload|appendload|report|delete` and `tandemd --config
//! FILE` (or `default.cfg` of the configuration directory at start).
//!
//! * The `file` commands are parsed by the grammar (`tandem_core::config`) like every other
//!   command; this module does their I/O. A `file newload|appendload` line inside a file reads
//!   that file here too ([`DirFiles`]), and host names are resolved by [`SystemResolver`].
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

use crate::node::Reply;
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tandem_core::config::{self, Command, Config, FileSource, Loaded, Resolver};

/// The configuration directory when `--config-dir` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/tandem";
/// The largest configuration file read (a file with 100 000 servers is about 8 MB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The file loaded at start when `--config` is not given.
pub const DEFAULT_CFG: &str = "default.cfg";

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

impl ConfigDir {
    /// Whether file `name` exists (as anything: a link or a directory counts).
    pub fn exists(&self, name: &str) -> Result<bool> {
        let path = self.resolve(name)?;
        Ok(std::fs::symlink_metadata(path).is_ok())
    }

    /// `file delete NAME`: removes a regular file of the directory (never a link's target or
    /// a directory); returns its path.
    pub fn delete(&self, name: &str) -> Result<PathBuf> {
        let path = self.resolve(name)?;
        self.check_dir()?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => bail!("deleting {}: not a regular file (refused)", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{name} does not exist in the configuration directory {}",
                self.dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
        }
        std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("flushing the directory {}", self.dir.display()))?;
        Ok(path)
    }

    /// `file report`: the regular files of the directory with plain names (not the hidden
    /// temporary files), by name: name, size in bytes, modification time (seconds since 1970).
    pub fn list(&self) -> Result<Vec<(String, u64, u64)>> {
        self.check_dir()?;
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() || check_name(&name).is_err() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            files.push((name, meta.len(), modified));
        }
        files.sort();
        Ok(files)
    }
}

/// Reads the files named by `file newload|appendload` lines inside a file being loaded.
pub struct DirFiles<'a>(pub &'a ConfigDir);

impl FileSource for DirFiles<'_> {
    fn read(&mut self, name: &str) -> std::result::Result<String, String> {
        self.0
            .read(name)
            .map(|(_, text)| text)
            .map_err(|e| format!("{e:#}"))
    }
}

/// Host names through the system resolver (`/etc/hosts`, then DNS, as `getaddrinfo` does);
/// an IPv4 address is preferred when a name has both.
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&mut self, name: &str) -> std::result::Result<IpAddr, String> {
        use std::net::ToSocketAddrs;
        let addrs: Vec<IpAddr> = (name, 0)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .map(|a| a.ip())
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| "no address".to_string())
    }
}

/// Loads `text` (file `name`) on top of `base`, with nested files from `dir` and host names.
pub fn load(dir: &ConfigDir, text: &str, name: &str, base: &Config) -> Result<Loaded> {
    config::load_file_with(text, name, base, &mut DirFiles(dir), &mut SystemResolver)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Adds warnings to a reply: logged, printed before the output, and in `data["warnings"]`.
pub fn with_warnings(mut reply: Reply, warnings: &[String]) -> Reply {
    if warnings.is_empty() || !reply.ok {
        return reply;
    }
    let mut text = String::new();
    for w in warnings {
        tracing::warn!("{w}");
        text.push_str("warning: ");
        text.push_str(w);
        text.push('\n');
    }
    text.push_str(&reply.output);
    reply.output = text;
    if let Some(obj) = reply.data.as_object_mut() {
        obj.insert("warnings".into(), serde_json::json!(warnings));
    } else {
        reply.data = serde_json::json!({"warnings": warnings});
    }
    reply
}

/// Runs a `file` command. `running` gives the running configuration; `install` commits a
/// loaded one (`true` for newload), refusing if the running one is no longer `base`.
pub fn run(
    dir: &ConfigDir,
    cmd: &Command,
    running: impl FnOnce() -> Config,
    install: impl FnOnce(&Config, Config) -> Result<()>,
) -> Reply {
    let done = |path: PathBuf| {
        Reply::ok(
            String::new(),
            serde_json::json!({"done": cmd.to_string(), "path": path.display().to_string()}),
        )
    };
    let result = match cmd {
        Command::FileSave { name, force } => (|| {
            if !force && dir.exists(name)? {
                bail!("{name} exists: add force to overwrite");
            }
            dir.save(name, &render(&running()))
        })()
        .map(done),
        Command::FileNewLoad(name) | Command::FileAppendLoad(name) => (|| {
            // The file (and the files it loads, and the host names it holds) are read
            // without the node lock; the commit then checks nothing changed meanwhile.
            let (path, text) = dir.read(name)?;
            let base = match cmd {
                Command::FileNewLoad(_) => Config::default(),
                _ => running(),
            };
            let loaded = load(dir, &text, &path.display().to_string(), &base)?;
            install(&base, loaded.config)?;
            Ok(with_warnings(done(path), &loaded.warnings))
        })(),
        Command::FileDelete(name) => dir.delete(name).map(done),
        Command::FileReport => dir.list().map(|files| report(dir, &files)),
        _ => Err(anyhow::anyhow!("'{cmd}' is not a file command")),
    };
    result.unwrap_or_else(|e| Reply::err(format!("{e:#}")))
}

/// The `file report` table and JSON.
fn report(dir: &ConfigDir, files: &[(String, u64, u64)]) -> Reply {
    let mut text = format!("Configuration files in {}:\n", dir.path().display());
    let width = files.iter().map(|f| f.0.len()).max().unwrap_or(4).max(4);
    text.push_str(&format!(
        "{:<width$}  {:>10}  MODIFIED (UTC)\n",
        "NAME", "SIZE"
    ));
    let mut json = Vec::new();
    for (name, size, modified) in files {
        let when = utc(*modified);
        text.push_str(&format!("{name:<width$}  {size:>10}  {when}\n"));
        json.push(
            serde_json::json!({"name": name, "size": size, "modified": when,
                                     "modified_unix": modified}),
        );
    }
    if files.is_empty() {
        text.push_str("(no files)\n");
    }
    Reply::ok(
        text,
        serde_json::json!({"directory": dir.path().display().to_string(), "files": json}),
    )
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM:SS` (UTC): the log's timestamp, to the second.
fn utc(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    crate::halog::rfc3339(t)[..19].replacen('T', " ", 1)
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

/// Whether `name` is a plain file name (the grammar's rule,
/// [`tandem_core::config::check_file_name`]).
pub fn check_name(name: &str) -> Result<()> {
    tandem_core::config::check_file_name(name).map_err(|why| anyhow::anyhow!(why))
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
