//! `diagnostics FILE`: one archive (tar.gz) with both partners' HA logs (`ha.log*`, `ha.out`,
//! `ha.result`), `highavailability status` (text and JSON), `executor status`, the saved
//! configuration and recent counters, each file name prefixed by its node's address
//! (`192.0.2.2_ha.log`), as the Workload Deployer's trace.zip.
//!
//! This node's files are read here; the partner's come over the partner channel
//! (`tandem_core::ha::bundle`): the partner's HA thread asks for them with
//! [`tandem_core::ha::Event::BuildBundle`], this module's worker thread builds them (off the node
//! lock) into a tar.gz of their own, and the requester adds its entries to the archive. A
//! partner that does not answer leaves `PARTNER-MISSING.txt` saying why.
//!
//! The daemon writes FILE itself (an absolute path; `tandemctl` makes a relative one absolute
//! against its own directory), so the admin socket's replies stay small. FILE must not exist
//! yet (root writes it: it never replaces a file), and is made with mode 0600: logs and
//! configuration are the operator's.

use crate::node::{Node, Reply};
use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use parking_lot::Mutex;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// The longest wait for the partner's bundle (the protocol's own deadlines end it sooner).
const WAIT: Duration = Duration::from_secs(40);
/// Bytes unpacked from the partner's bundle, at most (its compressed size is bounded too).
const MAX_UNPACKED: u64 = 64 << 20;
/// Entries taken from the partner's bundle, at most.
const MAX_ENTRIES: usize = 64;

/// The worker that builds bundles for the partner.
#[derive(Default)]
pub struct Diagnostics {
    builds: Mutex<Option<mpsc::Sender<u64>>>,
}

impl Diagnostics {
    /// Starts the worker (once; the HA thread does it as it starts).
    pub fn start(node: Arc<Node>) {
        let (tx, rx) = mpsc::channel::<u64>();
        *node.diagnostics.builds.lock() = Some(tx);
        let spawned = std::thread::Builder::new()
            .name("diagnostics".into())
            .spawn(move || {
                for id in rx {
                    let bundle = local_files(&node).and_then(|f| pack(&f));
                    let result = match bundle {
                        Ok(bytes) => {
                            crate::halog::event(&format!(
                                "diagnostics: this node's files sent to the partner ({} bytes)",
                                bytes.len()
                            ));
                            Ok(bytes)
                        }
                        Err(e) => Err(format!("{e:#}")),
                    };
                    node.with_ha(|ha, now| ha.bundle_built(now, id, result));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no diagnostics thread: the partner's diagnostics requests go unanswered");
        }
    }

    /// The partner asked for bundle `id` (called under the node lock: only queues it).
    pub fn build(&self, id: u64) {
        if let Some(tx) = self.builds.lock().as_ref() {
            let _ = tx.send(id);
        }
    }
}

/// This node's address, the prefix of its files: the nfa, else the first heartbeat source.
fn prefix(config: &tandem_core::config::Config) -> String {
    config
        .executor
        .nfa
        .or(config.ha.heartbeats.first().map(|(s, _)| *s))
        .map(|a| a.to_string())
        .unwrap_or_else(|| "local".into())
}

/// This node's files for the archive, named with its prefix.
pub fn local_files(node: &Node) -> Result<Vec<(String, Vec<u8>)>> {
    let config = node.config();
    let p = prefix(&config);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(log) = crate::halog::get() {
        for path in log.files() {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push((format!("{p}_{name}"), bytes));
        }
    }
    let queries: [(&str, &[&str]); 7] = [
        ("highavailability_status", &["highavailability", "status"]),
        ("executor_status", &["executor", "status"]),
        ("executor_report", &["executor", "report"]),
        ("cluster_report", &["cluster", "report", "@"]),
        ("port_report", &["port", "report", "@"]),
        ("server_report", &["server", "report", "@@"]),
        ("manager_status", &["manager", "status"]),
    ];
    for (name, words) in queries {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let r = node.execute(&words, true);
        let text = if r.ok {
            r.output.clone()
        } else {
            format!("error: {}\n", r.error)
        };
        files.push((format!("{p}_{name}.txt"), text.into_bytes()));
        let json = serde_json::to_vec_pretty(&r.data).unwrap_or_default();
        files.push((format!("{p}_{name}.json"), json));
    }
    files.push((
        format!("{p}_configuration.cfg"),
        crate::files::render(&config).into_bytes(),
    ));
    let counters = node.with_ha(|ha, _| {
        serde_json::json!({
            "bundle": ha.bundle_counters(),
            "ha_log_write_failures": crate::halog::get().map_or(0, |l| l.failures()),
            "uptime_s": node.started_at.elapsed().as_secs(),
        })
    });
    files.push((
        format!("{p}_diagnostics.json"),
        serde_json::to_vec_pretty(&counters).unwrap_or_default(),
    ));
    Ok(files)
}

/// A tar.gz of `files`.
pub fn pack(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mtime = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o640);
        h.set_mtime(mtime);
        tar.append_data(&mut h, name, bytes.as_slice())
            .with_context(|| format!("archiving {name}"))?;
    }
    let gz = tar.into_inner().context("finishing the archive")?;
    gz.finish().context("compressing the archive")
}

/// The entries of a tar.gz (the partner's bundle), bounded; names must be plain file names.
pub fn unpack(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut out = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().context("reading the partner's bundle")? {
        let mut entry = entry.context("reading the partner's bundle")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("the partner's bundle holds a file named {name:?}");
        }
        if out.len() >= MAX_ENTRIES {
            bail!("the partner's bundle holds more than {MAX_ENTRIES} files");
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_UNPACKED - total + 1)
            .read_to_end(&mut data)?;
        total += data.len() as u64;
        if total > MAX_UNPACKED {
            bail!(
                "the partner's bundle unpacks to more than {} MiB",
                MAX_UNPACKED >> 20
            );
        }
        out.push((name, data));
    }
    Ok(out)
}

/// `diagnostics FILE`.
pub fn run(node: &Node, path: &str) -> Reply {
    match write_archive(node, Path::new(path)) {
        Ok((text, data)) => Reply::ok(text, data),
        Err(e) => Reply::err(format!("diagnostics: {e:#}")),
    }
}

fn write_archive(node: &Node, path: &Path) -> Result<(String, serde_json::Value)> {
    if !path.is_absolute() {
        bail!("give the archive an absolute path (tandemctl makes a relative one absolute)");
    }
    if path.exists() {
        bail!("{} exists: remove it or give another name", path.display());
    }
    let started = Instant::now();
    // Ask the partner first: it builds its bundle while this node gathers its own files.
    let (pull, authenticated) = node.with_ha(|ha, now| {
        (
            ha.request_bundle(now),
            ha.keys().authenticated() || !ha.machine().configured(),
        )
    });
    let mut files = local_files(node)?;
    let own = files.len();
    let partner: Result<usize, String> = match pull {
        Err(reason) => Err(reason),
        Ok(id) => {
            let outcome = loop {
                if let Some(r) = node.with_ha(|ha, _| ha.bundle_outcome(id)) {
                    break r;
                }
                if started.elapsed() > WAIT {
                    break Err(format!("no answer within {} s", WAIT.as_secs()));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            outcome.and_then(|bytes| {
                let entries = unpack(&bytes).map_err(|e| format!("{e:#}"))?;
                let n = entries.len();
                files.extend(entries);
                Ok(n)
            })
        }
    };
    let mut manifest = format!(
        "Tandem diagnostics, {}\nthis node: {} ({own} files)\n",
        crate::halog::rfc3339(SystemTime::now()),
        prefix(&node.config()),
    );
    match &partner {
        Ok(n) => manifest.push_str(&format!("partner: {n} files\n")),
        Err(reason) => {
            manifest.push_str(&format!("partner: missing ({reason})\n"));
            files.push((
                "PARTNER-MISSING.txt".into(),
                format!(
                    "The partner's files are not in this archive: {reason}.\nRun `diagnostics FILE` on the partner too, \
                     or look at its log directory.\n"
                )
                .into_bytes(),
            ));
        }
    }
    if !authenticated {
        manifest.push_str(
            "unauthenticated pair: no key is set, so the partner's files came over an unauthenticated channel\n",
        );
    }
    files.insert(0, ("MANIFEST.txt".into(), manifest.into_bytes()));
    let bytes = pack(&files)?;
    // Written beside FILE, then linked to its name (which fails if it appeared meanwhile).
    let name = path.file_name().context("the archive path names no file")?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.with_context(|| format!("writing {}", path.display()))?;
    let partner_text = match &partner {
        Ok(n) => format!("the partner's {n} files included"),
        Err(reason) => format!("the partner's files are missing: {reason}"),
    };
    crate::halog::event(&format!(
        "diagnostics written to {} ({} bytes; {partner_text})",
        path.display(),
        bytes.len()
    ));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let text = format!(
        "diagnostics written to {} ({} files, {} bytes; {partner_text}{})\n",
        path.display(),
        files.len(),
        bytes.len(),
        if authenticated {
            ""
        } else {
            "; unauthenticated pair"
        }
    );
    let data = serde_json::json!({
        "path": path.display().to_string(),
        "bytes": bytes.len(),
        "files": names,
        "partner": partner.as_ref().ok(),
        "partner_missing": partner.as_ref().err(),
        "authenticated": authenticated,
    });
    Ok((text, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_round_trip_and_hostile_bundles_are_refused() {
        let files = vec![
            ("192.0.2.3_ha.log".to_string(), b"line\n".to_vec()),
            ("192.0.2.3_ha.out".to_string(), Vec::new()),
        ];
        assert_eq!(unpack(&pack(&files).unwrap()).unwrap(), files);
        for bad in ["../etc/passwd", "dir/file", ".hidden"] {
            let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            // Written raw, as a hostile partner would: the builder refuses `..` itself.
            h.as_gnu_mut().unwrap().name[..bad.len()].copy_from_slice(bad.as_bytes());
            h.set_cksum();
            tar.append(&h, &b"x"[..]).unwrap();
            let bytes = tar.into_inner().unwrap().finish().unwrap();
            assert!(unpack(&bytes).is_err(), "{bad}");
        }
        assert!(unpack(b"not a gzip stream").is_err());
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_ENTRIES)
            .map(|i| (format!("f{i}"), vec![]))
            .collect();
        assert!(unpack(&pack(&many).unwrap()).is_err());
    }
}
