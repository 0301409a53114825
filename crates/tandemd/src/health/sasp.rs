//! The tokio shell of one LB ↔ GWM SASP connection.
//!
//! [`spawn`] starts a task on the current runtime (the health thread's) that connects to the
//! GWM (TCP, or TLS with `tls yes`), drives a [`LbSession`] (bytes both ways, its timers),
//! reconnects with [`Backoff`] when the connection ends, and reports to the health loop on
//! a bounded channel ([`SaspEvent`]). The [`SaspHandle`] changes the groups and quiesced
//! members (kept across reconnects) and shuts the session down (DeRegistration, bounded
//! wait).
//!
//! States as `sasp report` shows them ([`GwmState`]): before the first contact the task
//! alternates `connecting` and `backoff`; a new connection is `registering` until Set LB
//! State and the Registrations are answered, then `connected`. When contact is lost it is
//! `grace` for the group's grace period (the last weights keep steering, reconnection
//! attempts go on), then `lost` (the GWM's weights no longer count) until a new session is
//! `connected` again.
//!
//! TLS (`tls yes`): the GWM's certificate is verified with rustls (ring provider) against
//! the CA certificates of [`SASP_CA_FILE`] when that file exists, else against the system's
//! bundle [`SYSTEM_CA_FILE`]; the certificate must name the GWM's IP address (an IP
//! subjectAltName), since `sasp add` names the GWM by address. No client certificate is
//! sent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tandem_core::sasp::codec::{ReturnCode, WeightEntry};
use tandem_core::sasp::lb::{
    Backoff, Groups, GwmState, LbEvent, LbSession, LbSettings, MemberId, SettingsError,
    group_confident,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout};

/// CA certificates (PEM) that `tls yes` verifies GWMs against, when the file exists.
pub const SASP_CA_FILE: &str = "/etc/tandem/sasp-ca.pem";
/// The system's CA bundle, used when [`SASP_CA_FILE`] does not exist.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Bytes read from the GWM at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Events the channel holds before the task waits for the health loop.
pub const EVENT_QUEUE: usize = 256;

/// What to connect to and how.
#[derive(Clone)]
pub struct SaspConfig {
    pub gwm: SocketAddr,
    pub settings: LbSettings,
    pub groups: Groups,
    /// How long the last weights keep steering after contact is lost.
    pub grace: Duration,
    /// `Some`: TLS with this client configuration ([`tls_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Seed of the reconnection jitter (distinct per node and GWM).
    pub seed: u64,
    /// Names this session in its events (distinct per session of a loop).
    pub serial: u64,
}

/// A report of one GWM's task to the health loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaspEvent {
    pub gwm: SocketAddr,
    /// The session's [`SaspConfig::serial`]: events of a replaced session are told apart.
    pub serial: u64,
    pub kind: SaspEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaspEventKind {
    /// The GWM's state changed (see the module doc; [`GwmState::steers`] says whether its
    /// weights count).
    State(GwmState),
    /// The merged weights of a group (the whole table of the current connection).
    Weights {
        group: String,
        entries: BTreeMap<MemberId, WeightEntry>,
    },
    /// The GWM refused a request (the session goes on).
    Refused {
        request: &'static str,
        code: ReturnCode,
    },
    /// A connection attempt failed or a session ended; `reason` is logged and reported.
    Disconnected { reason: String },
}

/// What the health loop knows of one GWM, kept up to date from its events: the basis of
/// `sasp report` and of the weights the overlay takes from SASP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GwmView {
    pub state: Option<GwmState>,
    /// The last disconnection or refusal, for the report.
    pub last_error: Option<String>,
    /// The last merged weights of each group.
    pub weights: BTreeMap<String, BTreeMap<MemberId, WeightEntry>>,
}

impl GwmView {
    pub fn apply(&mut self, event: &SaspEventKind) {
        match event {
            SaspEventKind::State(state) => {
                self.state = Some(*state);
                if *state == GwmState::Lost {
                    self.weights.clear();
                }
            }
            SaspEventKind::Weights { group, entries } => {
                self.weights.insert(group.clone(), entries.clone());
            }
            SaspEventKind::Refused { request, code } => {
                self.last_error = Some(format!("{request} refused: {code}"));
            }
            SaspEventKind::Disconnected { reason } => self.last_error = Some(reason.clone()),
        }
    }

    /// The weights of `group` that are to steer now: the GWM is connected or in grace, and
    /// at least one member is CONFIDENT (else `None`: advisors and manager decide).
    pub fn steering(&self, group: &str) -> Option<&BTreeMap<MemberId, WeightEntry>> {
        let table = self.weights.get(group)?;
        (self.state.is_some_and(GwmState::steers) && group_confident(table.values()))
            .then_some(table)
    }
}

enum Command {
    SetGroups(Groups),
    Quiesce(MemberId, bool),
    Shutdown(Duration),
}

/// Controls one GWM's task. Dropping it shuts the task down as [`SaspHandle::shutdown`]
/// does, with a 2 s wait for the DeRegistration reply (without the abort).
pub struct SaspHandle {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl SaspHandle {
    /// New groups (Registration and DeRegistration of the difference).
    pub fn set_groups(&self, groups: Groups) {
        let _ = self.commands.send(Command::SetGroups(groups));
    }

    /// Quiesces or un-quiesces a member (Set Member State); remembered across reconnects.
    pub fn set_quiesce(&self, member: MemberId, quiesce: bool) {
        let _ = self.commands.send(Command::Quiesce(member, quiesce));
    }

    /// Deregisters every group and ends the task, waiting at most `wait` for the GWM's
    /// reply (the task is aborted if it is not over shortly after).
    pub async fn shutdown(self, wait: Duration) {
        let _ = self.commands.send(Command::Shutdown(wait));
        let mut task = self.task;
        if timeout(wait + Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The rustls client configuration of `tls yes`: CA certificates from [`SASP_CA_FILE`] if it
/// exists, else from [`SYSTEM_CA_FILE`].
pub fn default_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let own = Path::new(SASP_CA_FILE);
    tls_config(if own.exists() {
        own
    } else {
        Path::new(SYSTEM_CA_FILE)
    })
}

/// A rustls client configuration (ring provider) trusting the PEM certificates of `ca_file`.
pub fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading CA certificates from {}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("parsing {}", ca_file.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate of {}", ca_file.display()))?;
    }
    if roots.is_empty() {
        bail!("no CA certificate in {}", ca_file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Starts the task of one GWM on the current tokio runtime. Fails at once on settings a
/// session cannot use (LB UID or group names out of range).
pub fn spawn(
    config: SaspConfig,
    events: mpsc::Sender<SaspEvent>,
) -> Result<SaspHandle, SettingsError> {
    LbSession::new(config.settings.clone(), config.groups.clone())?;
    let (commands, rx) = mpsc::unbounded_channel();
    let task = Task {
        backoff: Backoff::new(config.seed),
        groups: config.groups.clone(),
        config,
        quiesced: BTreeSet::new(),
        state: None,
        grace_until: None,
        events,
        commands: rx,
    };
    Ok(SaspHandle {
        commands,
        task: tokio::spawn(task.run()),
    })
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a wait or a session ended early.
enum Stop {
    /// Shut down, or nobody listens any more: the task ends.
    End,
}

struct Task {
    config: SaspConfig,
    groups: Groups,
    quiesced: BTreeSet<MemberId>,
    /// Last state reported (`None` before the first).
    state: Option<GwmState>,
    /// In grace: when it ends.
    grace_until: Option<tokio::time::Instant>,
    backoff: Backoff,
    events: mpsc::Sender<SaspEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// A sleep until `at`, or forever when `None`.
async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) {
        let _ = self.main_loop().await;
    }

    async fn main_loop(&mut self) -> Result<(), Stop> {
        loop {
            if !self.lost_contact() {
                self.set_state(GwmState::Connecting).await?;
            }
            let connect = connect(
                self.config.gwm,
                self.config.tls.clone(),
                self.config.settings.reply_timeout,
            );
            let reason = match self.while_waiting(connect).await? {
                Ok(stream) => self.session(stream).await?,
                Err(e) => format!("{e:#}"),
            };
            tracing::warn!(gwm = %self.config.gwm, "SASP: {reason}");
            self.report(SaspEventKind::Disconnected { reason }).await?;
            match self.state {
                Some(GwmState::Connected) => {
                    let until = tokio::time::Instant::now() + self.config.grace;
                    self.grace_until = Some(until);
                    self.set_state(GwmState::Grace).await?;
                }
                Some(GwmState::Grace | GwmState::Lost) => {}
                _ => self.set_state(GwmState::Backoff).await?,
            }
            let delay = self.backoff.next_delay();
            self.while_waiting(tokio::time::sleep(delay)).await?;
        }
    }

    /// Contact was lost (grace or lost): connection attempts do not change the state.
    fn lost_contact(&self) -> bool {
        matches!(self.state, Some(GwmState::Grace | GwmState::Lost))
    }

    async fn report(&mut self, kind: SaspEventKind) -> Result<(), Stop> {
        let event = SaspEvent {
            gwm: self.config.gwm,
            serial: self.config.serial,
            kind,
        };
        self.events.send(event).await.map_err(|_| Stop::End)
    }

    async fn set_state(&mut self, state: GwmState) -> Result<(), Stop> {
        if self.state == Some(state) {
            return Ok(());
        }
        self.state = Some(state);
        if state != GwmState::Grace {
            self.grace_until = None;
        }
        self.report(SaspEventKind::State(state)).await
    }

    async fn grace_over(&mut self) -> Result<(), Stop> {
        tracing::warn!(gwm = %self.config.gwm, "SASP: grace over, the GWM's weights no longer count");
        self.set_state(GwmState::Lost).await
    }

    /// Runs `fut` while taking commands and ending the grace period on time.
    async fn while_waiting<F: Future>(&mut self, fut: F) -> Result<F::Output, Stop> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown(_)) => return Err(Stop::End),
                    Some(Command::SetGroups(g)) => self.groups = g,
                    Some(Command::Quiesce(m, q)) => {
                        if q { self.quiesced.insert(m); } else { self.quiesced.remove(&m); }
                    }
                },
                _ = sleep_opt(self.grace_until) => self.grace_over().await?,
            }
        }
    }

    /// One connection; returns why it ended (or `Stop` to end the task).
    async fn session(&mut self, mut stream: Pin<Box<dyn Stream>>) -> Result<String, Stop> {
        let mut s = match LbSession::new(self.config.settings.clone(), self.groups.clone()) {
            Ok(s) => s,
            Err(e) => return Ok(format!("cannot start a session: {e}")),
        };
        let now = Instant::now();
        for m in &self.quiesced {
            s.set_quiesce(now, *m, true);
        }
        s.handle_connected(now);
        if !self.lost_contact() {
            self.set_state(GwmState::Registering).await?;
        }
        let write_timeout = self.config.settings.reply_timeout;
        let mut buf = vec![0u8; READ_CHUNK];
        let mut shutdown_by: Option<tokio::time::Instant> = None;
        loop {
            while let Some(bytes) = s.poll_transmit() {
                match timeout(write_timeout, stream.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => s.handle_close(&format!("write: {e}")),
                    Err(_) => s.handle_close("write: the GWM does not read"),
                }
            }
            while let Some(event) = s.poll_event() {
                match event {
                    LbEvent::Registered => {
                        self.backoff.reset();
                        self.set_state(GwmState::Connected).await?;
                    }
                    LbEvent::Weights { group, entries } => {
                        self.report(SaspEventKind::Weights { group, entries })
                            .await?;
                    }
                    LbEvent::Error { request, code } => {
                        tracing::warn!(gwm = %self.config.gwm, "SASP: {request} refused: {code}");
                        self.report(SaspEventKind::Refused { request, code })
                            .await?;
                    }
                    LbEvent::Closed { reason } => {
                        let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
                        if shutdown_by.is_some() {
                            tracing::info!(gwm = %self.config.gwm, "SASP: {reason}");
                            return Err(Stop::End);
                        }
                        return Ok(reason);
                    }
                }
            }
            let timer = s.poll_timeout().map(tokio::time::Instant::from_std);
            let wake = match (timer, shutdown_by) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) => s.handle_close("the GWM closed the connection"),
                    Ok(n) => s.handle_bytes(Instant::now(), &buf[..n]),
                    Err(e) => s.handle_close(&format!("read: {e}")),
                },
                cmd = self.commands.recv(), if shutdown_by.is_none() => match cmd {
                    None | Some(Command::Shutdown(_)) => {
                        let wait = match cmd {
                            Some(Command::Shutdown(w)) => w,
                            _ => Duration::from_secs(2),
                        };
                        shutdown_by = Some(tokio::time::Instant::now() + wait);
                        s.shutdown(Instant::now());
                    }
                    Some(Command::SetGroups(g)) => {
                        match s.set_groups(Instant::now(), g.clone()) {
                            Ok(()) => self.groups = g,
                            Err(e) => tracing::warn!(gwm = %self.config.gwm, "SASP: groups refused: {e}"),
                        }
                    }
                    Some(Command::Quiesce(m, q)) => {
                        if q { self.quiesced.insert(m); } else { self.quiesced.remove(&m); }
                        s.set_quiesce(Instant::now(), m, q);
                    }
                },
                _ = sleep_opt(wake) => {
                    if shutdown_by.is_some_and(|t| tokio::time::Instant::now() >= t) {
                        tracing::warn!(gwm = %self.config.gwm, "SASP: no DeRegistration reply before shutdown");
                        return Err(Stop::End);
                    }
                    s.handle_timeout(Instant::now());
                }
                _ = sleep_opt(self.grace_until) => self.grace_over().await?,
            }
        }
    }
}

/// Opens the connection (TCP, then TLS when configured) within `limit`.
async fn connect(
    gwm: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    limit: Duration,
) -> Result<Pin<Box<dyn Stream>>> {
    let open = async {
        let tcp = TcpStream::connect(gwm)
            .await
            .with_context(|| format!("connect to {gwm}"))?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = tls else {
            return Ok(Box::pin(tcp) as Pin<Box<dyn Stream>>);
        };
        let name = rustls::pki_types::ServerName::IpAddress(gwm.ip().into());
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {gwm}"))?;
        Ok(Box::pin(stream) as Pin<Box<dyn Stream>>)
    };
    match timeout(limit, open).await {
        Ok(r) => r,
        Err(_) => bail!(
            "connect to {gwm}: no connection within {:.1} s",
            limit.as_secs_f64()
        ),
    }
}

#[cfg(test)]
#[path = "sasp_tests.rs"]
mod tests;
