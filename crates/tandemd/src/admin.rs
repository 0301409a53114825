//! The admin socket: one JSON request per line from `tandemctl`, one JSON reply per line.
//!
//! Request: `{"words": ["executor", "status"], "json": false}`.
//! Reply: `{"ok": true, "output": "...table...", "data": {...}, "error": ""}`.
//! The socket file is created with mode 0600: only its owner (root) may command the node.

use crate::node::{Node, Reply};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

#[derive(Deserialize)]
struct Request {
    words: Vec<String>,
    #[serde(default)]
    json: bool,
}

/// Binds the socket (replacing a stale file) and serves it on a thread.
pub fn serve(path: &Path, node: Arc<Node>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("another tandemd is listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    // Create it private from the start: no window in which others could connect.
    // SAFETY: umask only changes the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let node = node.clone();
                let _ = std::thread::Builder::new()
                    .name("admin-conn".into())
                    .spawn(move || client(stream, node));
            }
        })?;
    Ok(())
}

fn client(stream: UnixStream, node: Arc<Node>) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let r = node.execute(&req.words, req.json);
                if r.ok {
                    tracing::debug!(command = %req.words.join(" "), "command done");
                } else {
                    tracing::info!(command = %req.words.join(" "), error = %r.error, "command refused");
                }
                r
            }
            Err(e) => Reply::err(format!("malformed request: {e}")),
        };
        let mut text = serde_json::to_string(&reply)
            .unwrap_or_else(|_| "{\"ok\":false,\"error\":\"encoding\"}".into());
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}
