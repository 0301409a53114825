//! `tandem-gwm` (issue 8's Group Workload Manager) in a lab host, for the SASP tests.
//!
//! Started as `tandem-gwm run --listen 0.0.0.0:3860 --status 0.0.0.0:3861 --interval I
//! --push-interval I --member-check http --weights-file FILE`; its weights file holds
//! `ADDRESS PORT WEIGHT [quiesce]` lines (re-read on change), so a test sets exact weights.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Host, LabProcess, find_binary, wait_until};

/// SASP port the GWM listens on.
pub const GWM_PORT: u16 = 3860;
/// Port of its status endpoint (HTTP/JSON).
pub const STATUS_PORT: u16 = 3861;

/// A running (or killed) `tandem-gwm` on a lab host.
pub struct Gwm {
    host: Host,
    args: Vec<String>,
    /// The operator override file (`ADDRESS PORT WEIGHT [quiesce]` lines).
    pub weights_file: PathBuf,
    process: Option<LabProcess>,
}

/// One line of the weights file.
#[derive(Debug, Clone)]
pub struct MemberWeight {
    pub address: String,
    pub port: u16,
    /// Raw SASP weight, 0–65535.
    pub weight: u16,
    pub quiesce: bool,
}

impl MemberWeight {
    pub fn new(address: &str, port: u16, weight: u16) -> MemberWeight {
        MemberWeight {
            address: address.into(),
            port,
            weight,
            quiesce: false,
        }
    }
}

impl Gwm {
    /// Starts `tandem-gwm run` on `host` (probing members every `interval` seconds, pushing at
    /// least as often), with the weights file `dir/gwm-weights` (written first from
    /// `weights`; empty: no override) and `extra` arguments; waits until it accepts on 3860.
    pub fn start(
        host: &Host,
        dir: &Path,
        interval: f64,
        weights: &[MemberWeight],
        extra: &[&str],
    ) -> Result<Gwm> {
        let bin = find_binary("tandem-gwm")
            .context("tandem-gwm (helper W's crate; `cargo build -p tandem-gwm`)")?;
        let weights_file = dir.join(format!("{}-gwm-weights", host.name));
        let mut args = vec![
            bin.display().to_string(),
            "run".into(),
            "--listen".into(),
            format!("0.0.0.0:{GWM_PORT}"),
            "--status".into(),
            format!("0.0.0.0:{STATUS_PORT}"),
            "--interval".into(),
            interval.to_string(),
            "--push-interval".into(),
            interval.to_string(),
            "--member-check".into(),
            "http".into(),
        ];
        if !weights.is_empty() {
            args.push("--weights-file".into());
            args.push(weights_file.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut gwm = Gwm {
            host: host.clone(),
            args,
            weights_file,
            process: None,
        };
        if !weights.is_empty() {
            gwm.set_weights(weights)?;
        }
        gwm.restart()?;
        Ok(gwm)
    }

    /// Starts it again after [`Gwm::kill`].
    pub fn restart(&mut self) -> Result<()> {
        if self.process.is_some() {
            bail!("tandem-gwm on {} already runs", self.host.name);
        }
        let mut p = self.host.spawn(&self.args)?;
        let up = self.host.wait_tcp_port(GWM_PORT, Duration::from_secs(20));
        if let Err(e) = up {
            let _ = p.kill();
            bail!("{e:#}; tandem-gwm log:\n{}", p.log());
        }
        self.process = Some(p);
        Ok(())
    }

    /// `kill -9`: its SASP connections drop with it.
    pub fn kill(&mut self) -> Result<()> {
        match self.process.take() {
            Some(mut p) => p.kill().map(drop),
            None => bail!("tandem-gwm on {} is not running", self.host.name),
        }
    }

    /// Rewrites the weights file (atomically).
    pub fn set_weights(&self, weights: &[MemberWeight]) -> Result<()> {
        let text: String = weights
            .iter()
            .map(|w| {
                format!(
                    "{} {} {}{}\n",
                    w.address,
                    w.port,
                    w.weight,
                    if w.quiesce { " quiesce" } else { "" }
                )
            })
            .collect();
        let tmp = self.weights_file.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.weights_file)?;
        Ok(())
    }

    /// `tandem-gwm status --status 127.0.0.1:3861 --json`, run in its host.
    pub fn status(&self) -> Result<Value> {
        let bin = &self.args[0];
        let out = self.host.run([
            bin.as_str(),
            "status",
            "--status",
            &format!("127.0.0.1:{STATUS_PORT}"),
            "--json",
        ])?;
        serde_json::from_str(&out).with_context(|| format!("tandem-gwm status: {out}"))
    }

    /// Waits until the GWM's status names `text` (e.g. an LB UID): the LB registered.
    pub fn wait_status_contains(&self, text: &str, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        wait_until(
            timeout,
            &format!("tandem-gwm status to show {text}"),
            || {
                last = self
                    .status()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|e| format!("{e:#}"));
                last.contains(text)
            },
        )
        .with_context(|| format!("last status: {last}"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(LabProcess::log)
            .unwrap_or_default()
    }
}

/// The raw SASP weight that tandemd turns into `weight` at weightbound `bound`
/// (`round(w × bound / 65535)`; the inverse used by the tests to pick raw weights).
pub fn raw_for(weight: u32, bound: u32) -> u16 {
    ((f64::from(weight) * 65535.0 / f64::from(bound)).round() as u32).min(65535) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_weights_round_trip_through_the_conversion() {
        for bound in [1, 20, 100] {
            for w in 0..=bound {
                let raw = raw_for(w, bound);
                let back = (f64::from(raw) * f64::from(bound) / 65535.0).round() as u32;
                assert_eq!(back, w, "bound {bound}");
            }
        }
    }
}
