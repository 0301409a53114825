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

/// `tcpdump` of the SASP port on a lab host's `eth0`, written to a pcap file.
pub struct SaspCapture {
    process: LabProcess,
    pub pcap: PathBuf,
}

impl SaspCapture {
    /// Starts `tcpdump -i eth0 -U -w DIR/HOST-sasp.pcap tcp port 3860` on `host` and waits
    /// until it listens.
    pub fn start(host: &Host, dir: &Path) -> Result<SaspCapture> {
        let pcap = dir.join(format!("{}-sasp.pcap", host.name));
        let mut process = host
            .spawn([
                "tcpdump",
                "-i",
                "eth0",
                "-U",
                "-n",
                "-w",
                &pcap.display().to_string(),
                "tcp",
                "port",
                &GWM_PORT.to_string(),
            ])
            .context("tcpdump (apt-get install tcpdump)")?;
        process.wait_for_log("listening on", Duration::from_secs(10))?;
        Ok(SaspCapture { process, pcap })
    }

    /// Stops the capture (SIGINT, so the file is complete) and decodes it with tshark's SASP
    /// dissector ([`check_sasp_pcap`]).
    pub fn finish(mut self) -> Result<SaspDecode> {
        std::thread::sleep(Duration::from_millis(500));
        self.process.signal(libc::SIGINT)?;
        self.process.wait(Duration::from_secs(10))?;
        check_sasp_pcap(&self.pcap)
    }
}

/// What tshark decoded from a capture of SASP sessions.
#[derive(Debug, Default)]
pub struct SaspDecode {
    /// SASP messages (PDUs) decoded.
    pub messages: usize,
    /// Message types seen (`0x1010` ...).
    pub types: std::collections::BTreeSet<String>,
    /// Weights carried in weight entries.
    pub weights: std::collections::BTreeSet<u64>,
    /// Member addresses carried.
    pub members: std::collections::BTreeSet<String>,
    /// The whole PDML, for searching (LB UIDs appear in it as text).
    pub pdml: String,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// Runs `tshark -r PCAP -d tcp.port==3860,sasp -T pdml` and fails on a malformed packet or
/// an expert warning or error inside a SASP PDU; returns what it decoded.
pub fn check_sasp_pcap(pcap: &Path) -> Result<SaspDecode> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={GWM_PORT},sasp"), "-T", "pdml"])
        .output()
        .context("running tshark (apt-get install tshark)")?;
    if !out.status.success() {
        bail!("tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pdml = String::from_utf8_lossy(&out.stdout).into_owned();
    decode_pdml(pdml).with_context(|| format!("decoding {}", pcap.display()))
}

/// The checks of [`check_sasp_pcap`] on tshark's PDML.
pub fn decode_pdml(pdml: String) -> Result<SaspDecode> {
    let mut d = SaspDecode::default();
    let mut in_sasp = false;
    for (n, line) in pdml.lines().enumerate() {
        let t = line.trim_start();
        if t.contains("_ws.malformed") {
            bail!("PDML line {n}: malformed packet: {t}");
        }
        if t.starts_with("<proto ") {
            in_sasp = attr(t, "name") == Some("sasp");
        } else if t.starts_with("</packet>") {
            in_sasp = false;
        }
        if !in_sasp {
            continue;
        }
        let show = attr(t, "show").unwrap_or("");
        match attr(t, "name") {
            Some("_ws.expert.severity") => {
                // chat 0x00200000, note 0x00400000, warn 0x00600000, error 0x00800000
                let sev: u64 = show.parse().unwrap_or(0);
                if sev >= 0x0060_0000 {
                    bail!("PDML line {n}: expert info of severity {sev:#x} in SASP: {t}");
                }
            }
            // The field also names components (0x3xxx, 0x4xxx) and the header (0x2010).
            Some("sasp.msg.type") if show.starts_with("0x10") => {
                d.messages += 1;
                d.types.insert(show.to_string());
            }
            Some("sasp.wtentrydatacomp.weight") => {
                let w: Option<u64> = attr(t, "showname")
                    .and_then(|s| s.rsplit(' ').next())
                    .and_then(|v| v.parse().ok());
                d.weights.extend(w);
            }
            Some("sasp.memdatacomp.ip") => {
                // IPv4 members are shown as IPv4-compatible IPv6 (`::192.0.2.21`).
                d.members.insert(show.trim_start_matches("::").to_string());
            }
            _ => {}
        }
    }
    d.pdml = pdml;
    Ok(d)
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as tshark 4.0 writes them (from a capture of tandem-gwm).
    const PDML: &str = r#"<packet>
  <proto name="tcp" showname="TCP" size="20" pos="34">
      <field name="_ws.expert.severity" showname="Severity level: Warning" size="0" pos="0" show="6291456"/>
  </proto>
  <proto name="sasp" showname="Server/Application State Protocol" size="60" pos="66">
    <field name="sasp.msg.type" showname="Type: SASP" size="2" pos="66" show="0x2010" value="2010"/>
    <field name="sasp.msg.type" showname="Message Type: Send Weights (0x1040)" size="2" pos="79" show="0x1040" value="1040"/>
      <field name="sasp.setlbstate-req.lbuid" showname="Set LB State Req-LB UID: tandem-192.0.2.10" size="17" pos="84" show="tandem-192.0.2.10" value="74"/>
        <field name="sasp.memdatacomp.ip" showname="Member Data Comp (::192.0.2.21)" size="24" pos="129" show="::192.0.2.21" value="30">
          <field name="sasp.wtentrydatacomp.weight" showname="Wt Entry Data Comp-weight: 32768" size="2" pos="150" show="0x8000" value="8000"/>
          <field name="sasp.msg.type" showname="Wt Entry Data Comp: Weight Entry Data Component (0x3012)" size="2" pos="152" show="0x3012" value="3012"/>
          <field name="_ws.expert.severity" showname="Severity level: Note" size="0" pos="0" show="4194304"/>
  </proto>
</packet>
"#;

    #[test]
    fn pdml_decode_counts_messages_weights_members_and_ignores_tcp_warnings() {
        let d = decode_pdml(PDML.to_string()).unwrap();
        assert_eq!(d.messages, 1);
        assert_eq!(d.types.iter().collect::<Vec<_>>(), ["0x1040"]);
        assert_eq!(d.weights.iter().collect::<Vec<_>>(), [&32768]);
        assert_eq!(d.members.iter().collect::<Vec<_>>(), ["192.0.2.21"]);
        assert!(d.pdml.contains("tandem-192.0.2.10"));
        let warn = PDML.replace("show=\"4194304\"", "show=\"6291456\"");
        assert!(
            decode_pdml(warn).is_err(),
            "a warning inside SASP must fail"
        );
        let bad = PDML.replace("<proto name=\"tcp\"", "<proto name=\"_ws.malformed\"");
        assert!(decode_pdml(bad).is_err());
    }

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
