//! systemd's notification protocol (`sd_notify(3)`), for `Type=notify` units.
//!
//! * `READY=1` once the start configuration is loaded (its data plane running when it starts
//!   the executor) and the admin socket serves ([`ready`], from `main`).
//! * `STATUS=...` whenever the HA state, sub-state or partner contact changes ([`Notifier::tick`],
//!   from the HA loop): `systemctl status tandemd` shows it.
//! * `WATCHDOG=1` every `WATCHDOG_USEC / 2`, sent only from the HA loop ([`Notifier::tick`]):
//!   an HA loop that stops turning stops the keepalives, and systemd restarts the daemon.
//! * `STOPPING=1` on an orderly stop ([`stopping`]).
//!
//! Without `NOTIFY_SOCKET` every call is a no-op. The socket is a path or an abstract name
//! (`@name`). The variables are read once at start ([`init`]) and removed from the
//! environment, so the HA scripts the daemon runs never see them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the notifications go, read from the environment at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `NOTIFY_SOCKET`: a path, or an abstract name (without its `@`).
    pub socket: Option<Socket>,
    /// `WATCHDOG_USEC`, when `WATCHDOG_PID` is absent or names this process.
    pub watchdog: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Env {
    /// The environment as systemd sets it for a service with process id `pid`.
    pub fn parse(
        notify_socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Env {
        let socket = notify_socket
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('@') {
                Some(name) => Socket::Abstract(name.as_bytes().to_vec()),
                None => Socket::Path(PathBuf::from(s)),
            });
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(Duration::from_micros);
        Env { socket, watchdog }
    }
}

/// The connection to systemd (or nothing).
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, Socket)>,
    watchdog: Option<Duration>,
    state: std::sync::Mutex<Ticks>,
}

#[derive(Debug, Default)]
struct Ticks {
    last_keepalive: Option<Instant>,
    last_status: Option<String>,
}

impl Notifier {
    pub fn new(env: Env) -> Notifier {
        // Non-blocking: a full receive queue at systemd never stalls the HA loop.
        let socket = env.socket.and_then(|s| match UnixDatagram::unbound()
            .and_then(|d| d.set_nonblocking(true).map(|()| d))
        {
            Ok(d) => Some((d, s)),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET set, but no datagram socket: systemd will not be told");
                None
            }
        });
        Notifier {
            watchdog: if socket.is_some() { env.watchdog } else { None },
            socket,
            state: Default::default(),
        }
    }

    /// Whether notifications go anywhere.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often the HA loop must call [`Notifier::tick`] at least (half the watchdog period).
    pub fn keepalive_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one message (newline-separated `KEY=value` lines); errors are logged, never fatal.
    pub fn send(&self, message: &str) {
        let Some((sock, to)) = &self.socket else {
            return;
        };
        let sent = match to {
            Socket::Path(p) => sock.send_to(message.as_bytes(), p),
            Socket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(message.as_bytes(), &a))
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "sd_notify: {}", message.replace('\n', " "));
        }
    }

    /// From the HA loop, every turn: `WATCHDOG=1` when half the period has passed, and
    /// `STATUS=` (the line `status` makes) when `key` differs from the last one.
    pub fn tick(&self, now: Instant, key: String, status: impl FnOnce() -> String) {
        if !self.enabled() {
            return;
        }
        let mut t = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(every) = self.keepalive_every()
            && t.last_keepalive
                .is_none_or(|last| now.saturating_duration_since(last) >= every)
        {
            t.last_keepalive = Some(now);
            self.send("WATCHDOG=1");
        }
        if t.last_status.as_deref() != Some(key.as_str()) {
            self.send(&format!("STATUS={}", status()));
            t.last_status = Some(key);
        }
    }
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// Reads (and removes) `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
///
/// # Safety
/// Call before any other thread exists (it changes the environment).
pub unsafe fn init() {
    let var = |k: &str| std::env::var(k).ok();
    let env = Env::parse(
        var("NOTIFY_SOCKET").as_deref(),
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    );
    for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // SAFETY: the caller guarantees that no other thread reads the environment yet.
        unsafe { std::env::remove_var(k) };
    }
    let _ = NOTIFIER.set(Notifier::new(env));
}

/// The notifier ([`init`] not called: one that does nothing).
pub fn get() -> &'static Notifier {
    NOTIFIER.get_or_init(|| Notifier::new(Env::parse(None, None, None, 0)))
}

/// `READY=1`, with a first status line; the HA loop's next turn sends the HA status again.
pub fn ready(status: &str) {
    let n = get();
    n.state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last_status = None;
    n.send(&format!("READY=1\nSTATUS={status}"));
}

/// `STOPPING=1`.
pub fn stopping() {
    get().send("STOPPING=1\nSTATUS=stopping");
}

/// The HA loop's poll cap (ms), shortened so that keepalives are never late.
pub fn poll_cap_ms(cap: i32) -> i32 {
    get()
        .keepalive_every()
        .map_or(cap, |d| cap.min((d.as_millis() as i32).max(1)))
}

/// From the HA loop (node lock held): keepalive and status.
pub fn ha_tick(ha: &crate::ha::HaShell, now: Instant) {
    let n = get();
    if !n.enabled() {
        return;
    }
    let instances: Vec<&tandem_core::ha::Node> = std::iter::once(&ha.node)
        .chain(ha.second.as_ref())
        .collect();
    n.tick(now, status_key(&instances), || status_line(&instances, now));
}

/// The status line for systemd from the HA machine of instance 0 (and 1, mutual HA).
pub fn status_line(instances: &[&tandem_core::ha::Node], now: Instant) -> String {
    use tandem_core::ha::State;
    instances
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let m = node.machine();
            let group = if instances.len() > 1 {
                format!("group {}: ", i + 1)
            } else {
                String::new()
            };
            let text = match m.state() {
                State::Down => "Down (executor stopped)".to_string(),
                State::Idle => "Idle (stand-alone, forwarding)".to_string(),
                state => {
                    let s = m.status(now);
                    let partner = match &s.partner {
                        Some(p) if m.in_contact() => format!(
                            ", partner {} {}, heard {} ms ago",
                            p.address.map(|a| a.to_string()).unwrap_or_default(),
                            p.state,
                            p.last_heard_ms
                        ),
                        Some(p) => format!(
                            ", partner {} lost",
                            p.address.map(|a| a.to_string()).unwrap_or_default()
                        ),
                        None => ", no partner heard".to_string(),
                    };
                    format!("{state} ({}){partner}", m.sub_state())
                }
            };
            format!("{group}{text}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The status only changes on a change of state, sub-state or contact: the line to compare
/// (without the ever-changing "heard N ms ago").
pub fn status_key(instances: &[&tandem_core::ha::Node]) -> String {
    instances
        .iter()
        .map(|n| {
            let m = n.machine();
            format!(
                "{:?}/{:?}/{}/{:?}",
                m.state(),
                m.sub_state(),
                m.in_contact(),
                m.partner_pair()
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_as_systemd_sets_it() {
        let e = Env::parse(Some("/run/systemd/notify"), Some("2000000"), None, 42);
        assert_eq!(
            e.socket,
            Some(Socket::Path(PathBuf::from("/run/systemd/notify")))
        );
        assert_eq!(e.watchdog, Some(Duration::from_secs(2)));
        // The watchdog is for another process: none here.
        let e = Env::parse(Some("@abc"), Some("2000000"), Some("7"), 42);
        assert_eq!(e.socket, Some(Socket::Abstract(b"abc".to_vec())));
        assert_eq!(e.watchdog, None);
        assert_eq!(
            Env::parse(None, Some("x"), Some("42"), 42),
            Env {
                socket: None,
                watchdog: None
            }
        );
        assert_eq!(
            Env::parse(Some("@x"), Some("500000"), Some("42"), 42).watchdog,
            Some(Duration::from_millis(500))
        );
    }

    /// A real abstract socket: keepalives at half the period, a status only when it changes.
    #[test]
    fn abstract_socket_keepalives_and_status_changes() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tandemd-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_nonblocking(true).unwrap();
        let n = Notifier::new(Env::parse(
            Some(&format!("@{name}")),
            Some("1000000"),
            None,
            0,
        ));
        assert_eq!(n.keepalive_every(), Some(Duration::from_millis(500)));
        let t0 = Instant::now();
        n.tick(t0, "a".into(), || "Active (Synchronized)".into());
        n.tick(t0 + Duration::from_millis(100), "a".into(), || {
            "changed".into()
        });
        n.tick(t0 + Duration::from_millis(600), "s".into(), || {
            "Standby".into()
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(len) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(
            got,
            [
                "WATCHDOG=1",
                "STATUS=Active (Synchronized)",
                "WATCHDOG=1",
                "STATUS=Standby"
            ]
        );
    }

    #[test]
    fn nothing_without_a_socket() {
        let n = Notifier::new(Env::parse(None, Some("1000000"), None, 0));
        assert!(!n.enabled());
        assert_eq!(n.keepalive_every(), None);
        n.tick(Instant::now(), "k".into(), || {
            unreachable!("no status without a socket")
        });
    }
}
