//! The advisors' probes: one async function per advisor kind, run as tasks on the health
//! thread's tokio runtime (no thread per server).
//!
//! [`run`] turns a [`Probe`] from the scheduler into an [`Outcome`]. Every probe is bounded:
//! the connect by `connecttimeout`, everything after it (TLS handshake, request, reply,
//! script run) by `receivetimeout`, and what is read by [`MAX_REPLY`]. A server that accepts
//! and never answers fails after receivetimeout; a closed port fails at once.
//!
//! | advisor | up when | load |
//! | --- | --- | --- |
//! | `connect` | the TCP connect succeeds | connect time, ms |
//! | `http` | `advisorresponse` (if set) is in the reply, else the status is 1xx–3xx | ms until the reply was judged |
//! | `https` | TLS handshake, then as `http` | as `http` |
//! | `ping` | an ICMP / ICMPv6 echo reply with our id, sequence and token comes back | round trip, ms |
//! | `dns` | a reply with our id whose RCODE is not SERVFAIL or REFUSED | round trip, ms |
//! | `ADV_name` | the script exits 0 | the number on its first output line, if any |
//!
//! **Certificates are not verified** by the `https` advisor: servers behind a load balancer
//! commonly use internal or self-signed certificates, and the check is about the service
//! answering, not about who it is. The handshake itself (and the server's signature over it)
//! is checked by rustls as usual. SNI is the `Host` of `advisorrequest` if it has one, else the
//! server's address.

// Until the health loop (lead) calls `run`, the binary does not use this module.

mod custom;
mod dns;
mod http;
mod ping;
pub mod runner;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_scale;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::advisor::{Outcome, Probe};
use tandem_core::config::AdvisorKind;
use tokio::net::TcpStream;

/// Most bytes read from a server's reply (or a custom advisor's output stream).
pub const MAX_REPLY: usize = 64 * 1024;

/// What every probe shares: the custom advisors' directory and the TLS client set-up.
#[derive(Clone)]
pub struct ProbeContext {
    /// The HA scripts directory (`highavailability scripts DIR`), where `ADV_name` lives.
    pub script_dir: Option<PathBuf>,
    tls: Arc<rustls::ClientConfig>,
}

impl ProbeContext {
    pub fn new(script_dir: Option<PathBuf>) -> ProbeContext {
        ProbeContext {
            script_dir,
            tls: http::tls_config(),
        }
    }
}

/// What a probe returns: the load (None: the advisor reports none) or why it failed.
pub(crate) type ProbeResult = Result<Option<u32>, String>;

/// Runs one probe to its end (within its timeouts) and says what it found.
pub async fn run(probe: &Probe, ctx: &ProbeContext) -> Outcome {
    let started = Instant::now();
    let result = match &probe.kind {
        AdvisorKind::Connect => connect(probe).await.map(|_| Some(elapsed_ms(started))),
        AdvisorKind::Http => http::http(probe, started).await,
        AdvisorKind::Https => http::https(probe, &ctx.tls, started).await,
        AdvisorKind::Ping => ping::ping(probe, ping::SocketKind::Any).await,
        AdvisorKind::Dns => dns::dns(probe).await,
        AdvisorKind::Custom(name) => custom::custom(probe, name, ctx.script_dir.as_deref()).await,
    };
    match result {
        Ok(load) => Outcome::Up { load },
        Err(reason) => Outcome::Down { reason },
    }
}

/// Milliseconds since `t`, saturated.
pub(crate) fn elapsed_ms(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX)
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A TCP connection to the probe's address within connecttimeout.
pub(crate) async fn connect(probe: &Probe) -> Result<TcpStream, String> {
    match tokio::time::timeout(probe.connecttimeout, TcpStream::connect(probe.address)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("connect to {}: {e}", probe.address)),
        Err(_) => Err(format!(
            "connect to {}: no answer within {}",
            probe.address,
            secs(probe.connecttimeout)
        )),
    }
}

/// The first line of `bytes` (at most 200 characters, lossy UTF-8), trimmed.
pub(crate) fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let s = String::from_utf8_lossy(line);
    s.trim().chars().take(200).collect()
}
