//! Lab building blocks for server health (issue 8): services a test kills and restarts,
//! servers that stop answering ping, scripts, and a poll for JSON reports.
//!
//! A [`Service`] is one process on one server host serving one protocol, so that killing it
//! is "the service died" while the host, its other services and its address stay up:
//!
//! | constructor | process | what an advisor sees |
//! | --- | --- | --- |
//! | [`Service::http`] | `tandem-lab serve --http PORT` | `GET`/`HEAD` → `200 OK`, `X-Server: NAME`, body `server=NAME` |
//! | [`Service::echo`] | `tandem-lab serve --echo PORT` | a TCP listener (connect advisor; long-lived connections) |
//! | [`Service::silent`] | `tandem-lab serve --silent PORT` | accepts, never answers |
//! | [`Service::dns`] | `tandem-lab serve --dns PORT` | UDP DNS, every query answered |
//! | [`Service::https`] | `openssl s_server -www` with a self-signed P-256 certificate | TLS, then `GET` → `HTTP/1.0 200 ok` (it does not answer `HEAD`) |
//! | [`Service::load`] | `tandem-lab serve --http PORT --load-file F` | `GET /load` → the first word of F ([`set_load`]) |
//!
//! [`block_ping`] / [`unblock_ping`] make a host drop ICMP echo requests (nftables), for the
//! ping advisor. [`write_script`] writes an executable shell script (custom `ADV_` advisors,
//! `serverDown`/`managerAlert` scripts).
//!
//! [`node`] holds the lab side of the tests: a [`node::HealthLab`] (a client, load balancers,
//! servers with their own services) and reads of tandemd's reports (advisor state, a server's
//! effective weight and its source).

pub mod gwm;
pub mod node;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Host, LabProcess, find_binary, wait_until};

/// How long a service may take to be ready.
const READY: Duration = Duration::from_secs(20);

/// One killable service on a server host. See the module docs.
pub struct Service {
    host: Host,
    args: Vec<String>,
    /// TCP port to wait for (services without a `ready` line), else `None`.
    wait_port: Option<u16>,
    process: Option<LabProcess>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("host", &self.host.name)
            .field("args", &self.args)
            .field("running", &self.process.is_some())
            .finish()
    }
}

fn serve_args(name: &str, extra: &[String]) -> Result<Vec<String>> {
    let bin = find_binary("tandem-lab")?;
    let mut args = vec![
        bin.display().to_string(),
        "serve".into(),
        "--name".into(),
        name.into(),
    ];
    args.extend_from_slice(extra);
    Ok(args)
}

impl Service {
    /// Starts `args` on `host` and waits until it is ready (a `ready` line, or `wait_port`
    /// accepting).
    fn launch(host: &Host, args: Vec<String>, wait_port: Option<u16>) -> Result<Service> {
        let mut s = Service {
            host: host.clone(),
            args,
            wait_port,
            process: None,
        };
        s.start()?;
        Ok(s)
    }

    /// HTTP on `port` answering `server=NAME`.
    pub fn http(host: &Host, name: &str, port: u16) -> Result<Service> {
        let args = serve_args(name, &["--http".into(), port.to_string()])?;
        Service::launch(host, args, None)
    }

    /// A TCP line echo on `port` (a target for the connect advisor that also holds
    /// long-lived connections).
    pub fn echo(host: &Host, name: &str, port: u16) -> Result<Service> {
        let args = serve_args(name, &["--echo".into(), port.to_string()])?;
        Service::launch(host, args, None)
    }

    /// A port that accepts connections and never answers.
    pub fn silent(host: &Host, name: &str, port: u16) -> Result<Service> {
        let args = serve_args(name, &["--silent".into(), port.to_string()])?;
        Service::launch(host, args, None)
    }

    /// A DNS responder on UDP `port`.
    pub fn dns(host: &Host, name: &str, port: u16) -> Result<Service> {
        let args = serve_args(name, &["--dns".into(), port.to_string()])?;
        Service::launch(host, args, None)
    }

    /// HTTP on `port` whose `GET /load` answers the first word of `load_file`.
    pub fn load(host: &Host, name: &str, port: u16, load_file: &Path) -> Result<Service> {
        let args = serve_args(
            name,
            &[
                "--http".into(),
                port.to_string(),
                "--load-file".into(),
                load_file.display().to_string(),
            ],
        )?;
        Service::launch(host, args, None)
    }

    /// HTTPS on `port`: `openssl s_server -www` with a self-signed certificate for `NAME.test`
    /// made in `dir` (the lab's log directory). It answers `GET` (a status page starting
    /// `HTTP/1.0 200 ok`), not `HEAD`, one connection at a time.
    pub fn https(host: &Host, name: &str, port: u16, dir: &Path) -> Result<Service> {
        let (cert, key) = self_signed(dir, name)?;
        let args = vec![
            "openssl".into(),
            "s_server".into(),
            "-accept".into(),
            port.to_string(),
            "-cert".into(),
            cert.display().to_string(),
            "-key".into(),
            key.display().to_string(),
            "-www".into(),
            "-quiet".into(),
        ];
        Service::launch(host, args, Some(port))
    }

    /// Starts the process again (after [`Service::kill`]); an error if it runs.
    pub fn start(&mut self) -> Result<()> {
        if self.process.is_some() {
            bail!("service {:?} on {} already runs", self.args, self.host.name);
        }
        let mut p = self.host.spawn(&self.args)?;
        match self.wait_port {
            None => p.wait_for_log("ready", READY)?,
            Some(port) => {
                let waited = self.host.wait_tcp_port(port, READY);
                if let Err(e) = waited {
                    bail!("{e:#}; log of {}:\n{}", p.label(), p.log());
                }
            }
        }
        self.process = Some(p);
        Ok(())
    }

    /// `kill -9` of the service: its listener disappears at once (new connections are
    /// refused), connections it held are reset by the kernel.
    pub fn kill(&mut self) -> Result<()> {
        match self.process.take() {
            Some(mut p) => p.kill().map(drop),
            None => bail!(
                "service {:?} on {} is not running",
                self.args,
                self.host.name
            ),
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(LabProcess::is_running)
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(LabProcess::log)
            .unwrap_or_default()
    }
}

/// A self-signed P-256 certificate and key for `NAME.test` in `dir` (made once, then reused):
/// `(cert.pem, key.pem)`.
pub fn self_signed(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={name}.test"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((cert, key))
}

const PING_TABLE: &str = "tlabping";

/// Makes `host` drop every ICMP echo request it receives (nftables table `tlabping`), so that
/// it stops answering ping while its services still run.
pub fn block_ping(host: &Host) -> Result<()> {
    let rules = format!(
        "table ip {PING_TABLE} {{\n\tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n\t\ticmp type echo-request drop\n\t}}\n}}\n"
    );
    host.run(["nft", &rules])
        .or_else(|_| {
            // Older nft wants the rules from a file.
            let path = std::env::temp_dir().join(format!("{}-{PING_TABLE}.nft", host.ns));
            std::fs::write(&path, &rules)?;
            let r = host.run(["nft", "-f", &path.display().to_string()]);
            let _ = std::fs::remove_file(&path);
            r
        })
        .with_context(|| format!("blocking ping on {}", host.name))
        .map(drop)
}

/// Undoes [`block_ping`].
pub fn unblock_ping(host: &Host) -> Result<()> {
    host.run(["nft", "delete", "table", "ip", PING_TABLE])
        .with_context(|| format!("unblocking ping on {}", host.name))
        .map(drop)
}

/// Writes an executable (`0755`) shell script `dir/name` with `body` after a `#!/bin/sh`
/// line; returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Writes `value` as the load of a [`Service::load`] server (atomically: a temporary file
/// renamed over it).
pub fn set_load(load_file: &Path, value: u64) -> Result<()> {
    let tmp = load_file.with_extension("tmp");
    std::fs::write(&tmp, format!("{value}\n"))?;
    std::fs::rename(&tmp, load_file).with_context(|| format!("writing {}", load_file.display()))
}

/// Polls `fetch` (every 20 ms, backing off to 200 ms) until `cond` holds for its value; returns that value and how
/// long it took, or fails after `timeout` quoting the last value (or error) seen.
pub fn poll_json<F, C>(
    timeout: Duration,
    what: &str,
    mut fetch: F,
    mut cond: C,
) -> Result<(serde_json::Value, Duration)>
where
    F: FnMut() -> Result<serde_json::Value>,
    C: FnMut(&serde_json::Value) -> bool,
{
    let start = std::time::Instant::now();
    let mut last = String::from("(nothing yet)");
    let mut found = None;
    let waited = wait_until(timeout, what, || match fetch() {
        Ok(v) if cond(&v) => {
            found = Some(v);
            true
        }
        Ok(v) => {
            last = v.to_string();
            false
        }
        Err(e) => {
            last = format!("error: {e:#}");
            false
        }
    });
    match (waited, found) {
        (Ok(()), Some(v)) => Ok((v, start.elapsed())),
        (waited, _) => bail!(
            "{}; last seen: {last}",
            waited
                .err()
                .map_or_else(|| what.to_string(), |e| format!("{e:#}"))
        ),
    }
}
