//! Custom advisors (`ADV_name`): run the executable `ADV_name` of the script directory.
//!
//! * The directory and the script pass the HA scripts' checks (owned by root or the daemon's
//!   user, writable only by the owner; see `crate::scripts`), checked before every run.
//! * Environment: the daemon's, plus `CLUSTER`, `PORT` (the cluster port), `SERVER` and
//!   `SERVER_PORT` (where other advisors would probe: the port or the NAT mapport).
//! * It runs in its own process group; at receivetimeout the group is killed (SIGKILL) and the
//!   query fails. Whatever the script leaves in its group is killed when it exits.
//! * Exit status 0 = up; a number on the first line of its output is the load (rounded,
//!   saturated to u32; anything else = no load). A non-zero status = down, the reason being
//!   the first line of its standard error (or the status).
//! * At most [`MAX_REPLY`] bytes of each output stream are kept; a script that leaves a child
//!   holding its output open loses what that output would have said after it exits.

use super::{MAX_REPLY, ProbeResult, first_line, secs};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tandem_core::advisor::Probe;
use tokio::io::{AsyncRead, AsyncReadExt};

/// After the script exits, how long its output pipes may take to reach end of file.
const DRAIN: Duration = Duration::from_millis(100);

pub(super) async fn custom(probe: &Probe, name: &str, dir: Option<&Path>) -> ProbeResult {
    let dir = dir.ok_or_else(|| {
        format!("{name}: no script directory (set one with highavailability scripts DIR)")
    })?;
    crate::scripts::check_dir(dir).map_err(|e| format!("{name}: {e}"))?;
    let path = dir.join(name);
    match crate::scripts::check_script(&path) {
        Ok(true) => {}
        Ok(false) => return Err(format!("{name}: no script {}", path.display())),
        Err(e) => return Err(format!("{name}: {e}")),
    }
    let mut cmd = tokio::process::Command::new(&path);
    cmd.env("CLUSTER", probe.cluster.to_string())
        .env("PORT", probe.port.to_string())
        .env("SERVER", probe.server.to_string())
        .env("SERVER_PORT", probe.address.port().to_string())
        .env("ADVISORREQUEST", probe.request.as_deref().unwrap_or(""))
        .env("ADVISORRESPONSE", probe.response.as_deref().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: starting {}: {e}", path.display()))?;
    let pgid = child.id().map(|p| p as i32);
    let out = child.stdout.take();
    let err = child.stderr.take();
    let run = async {
        let mut readers = std::pin::pin!(async { tokio::join!(bounded(out), bounded(err)) });
        let mut status = std::pin::pin!(child.wait());
        tokio::select! {
            outputs = &mut readers => (outputs, status.await),
            st = &mut status => {
                let outputs = tokio::time::timeout(DRAIN, &mut readers)
                    .await
                    .unwrap_or_default();
                (outputs, st)
            }
        }
    };
    let result = tokio::time::timeout(probe.receivetimeout, run).await;
    // Whatever is left in the group (a timed-out script, or its background children) goes.
    if let Some(pgid) = pgid {
        // SAFETY: killpg(2) has no memory effects; the group is the one the script led.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    let ((stdout, stderr), status) = match result {
        Ok(r) => r,
        Err(_) => {
            let _ = child.wait().await;
            return Err(format!(
                "{name}: no result within {} (killed)",
                secs(probe.receivetimeout)
            ));
        }
    };
    let status = status.map_err(|e| format!("{name}: {e}"))?;
    if status.success() {
        return Ok(load(&stdout));
    }
    let why = first_line(&stderr);
    let code = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_string(),
    };
    Err(if why.is_empty() {
        format!("{name}: {code}")
    } else {
        format!("{name}: {why} ({code})")
    })
}

/// Reads a stream to its end, keeping the first MAX_REPLY bytes.
async fn bounded(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut s) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_REPLY - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The number on the first line of the output, if any.
fn load(stdout: &[u8]) -> Option<u32> {
    let line = first_line(stdout);
    let v: f64 = line.split_whitespace().next()?.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(v.round().min(f64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod unit {
    #[test]
    fn loads() {
        assert_eq!(super::load(b"42\nmore"), Some(42));
        assert_eq!(super::load(b" 7.6 percent"), Some(8));
        assert_eq!(super::load(b"1e99"), Some(u32::MAX));
        assert_eq!(super::load(b"-3"), None);
        assert_eq!(super::load(b"NaN"), None);
        assert_eq!(super::load(b"busy"), None);
        assert_eq!(super::load(b""), None);
    }
}
