//! Traffic tools: servers and clients on plain `std::net` sockets.
//!
//! All of them use the network namespace of the thread that calls them (threads they spawn
//! inherit it). From a test, call them through [`crate::Host::in_ns`] or the `Host`
//! wrappers ([`crate::Host::http_load`], ...); as processes, run the `tandem-lab` binary's
//! `serve`, `http-load`, `udp-request` and `long-lived` subcommands with
//! [`crate::Host::spawn`].
//!
//! Protocols (what Tandem gets to forward):
//! - HTTP: `GET <path>` on a new TCP connection per request; the answer is `HTTP/1.0 200 OK`,
//!   `Connection: close`, body `server=<name>\n` (followed by N filler bytes for the path
//!   `/bytes/N`), then the server closes.
//! - UDP: a datagram `<payload>` is answered by `<name> <payload>`, sent from the address the
//!   request was sent to (so a server holding the cluster address on `lo` answers from it).
//! - Echo: a TCP connection carrying lines; each line `<line>` is answered `<name> <line>`.
//!
//! Advisor targets (issue 8): `HEAD` is answered like `GET` without the body (IBM's http
//! advisor sends `HEAD / HTTP/1.0`); `GET /load` answers the first word of the server's load
//! file (`0` without one); a *silent* port accepts and never answers; a DNS port answers every
//! query NOERROR (`A` questions with [`DNS_ANSWER`]).
//!
//! [`Relay`] carries TCP from the root namespace into a lab host (`tandem-lab demo --web`).

mod client;
mod health;
mod relay;
mod server;

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use client::{
    ConnStats, Echo, Ended, LatencySummary, LoadReport, LongLived, LongLivedSet, http_get,
    http_load, http_load_path, udp_request,
};
pub use health::{DNS_ANSWER, dns_answer};
pub use relay::{MAX_CONNECTIONS as RELAY_MAX_CONNECTIONS, Relay, RelayStats};
pub use server::{ServeConfig, Server, ServerStats, serve};

/// Longest line the echo protocol accepts.
const MAX_LINE: usize = 64 * 1024;

/// How often blocking reads wake up to look at a stop flag.
const TICK: Duration = Duration::from_millis(100);

pub(crate) enum LineEvent {
    Line(String),
    Eof,
    TimedOut,
    Stopped,
}

/// Reads `\n`-terminated lines from a TCP stream, keeping partial lines across timeouts.
#[derive(Default)]
pub(crate) struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// Next line (without the line end), or `Eof`, or `TimedOut` once `deadline` passed, or
    /// `Stopped` once `stop` is set (checked every [`TICK`]).
    pub(crate) fn next_line(
        &mut self,
        stream: &mut TcpStream,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> io::Result<LineEvent> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(LineEvent::Line(
                    text.trim_end_matches(['\r', '\n']).to_string(),
                ));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Ok(LineEvent::Stopped);
            }
            let mut wait = stop.map(|_| TICK);
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(LineEvent::TimedOut);
                }
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            stream.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(LineEvent::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A read that timed out or was interrupted (try again), not a failure.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Sleeps until `until`, waking every [`TICK`] to look at `stop`; false if stopped.
pub(crate) fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// Serde for `Duration` as (fractional) seconds.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(D::Error::custom)
    }
}
