//! Helpers of tandem-gwm's lab tests: tools check, member servers, an LB driver on the
//! shared SASP codec.
#![allow(dead_code)]

pub mod pdml;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tandem_core::sasp::codec::{Body, Framer, Header, Member, Message};
use tandem_lab::Host;

pub const PORT: u16 = 3860;

pub fn need(tool: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: `DEBIAN_FRONTEND=noninteractive apt-get install -y tshark tcpdump`"
    );
}

/// A member: answers `GET /load` with its load, anything else with 200 OK, on port 80.
pub struct MemberServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MemberServer {
    pub fn start(host: &Host, load: &str) -> Result<MemberServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let load = load.to_owned();
        let thread = host.in_ns_background(move || {
            let listener = TcpListener::bind("0.0.0.0:80").expect("bind :80");
            listener.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 2048];
                        let n = s.read(&mut buf).unwrap_or(0);
                        let req = String::from_utf8_lossy(&buf[..n]);
                        let body = if req.starts_with("GET /load ") {
                            load.as_str()
                        } else {
                            "OK"
                        };
                        let _ = write!(
                            s,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        rx.recv_timeout(Duration::from_secs(5))
            .context("member server did not start")?;
        Ok(MemberServer {
            stop,
            thread: Some(thread),
        })
    }

    /// Closes the listener (connections are refused from then on).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MemberServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whole messages as bytes, in order.
pub type Messages = Vec<Vec<u8>>;

/// One LB connection: what it sent and received, as bytes, in order.
pub struct Lb {
    stream: TcpStream,
    framer: Framer,
    /// Received bytes not yet returned as messages (the messages as they were on the wire).
    raw: Vec<u8>,
    sent: Vec<Vec<u8>>,
    received: Vec<Vec<u8>>,
    next_id: u32,
}

impl Lb {
    pub fn connect(addr: SocketAddr) -> Result<Lb> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Lb {
            stream,
            framer: Framer::new(),
            raw: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            next_id: 1,
        })
    }

    pub fn send(&mut self, version: u8, body: Body) -> Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = Message::new(id, body);
        msg.version = version;
        let bytes = msg.to_bytes()?;
        self.stream.write_all(&bytes)?;
        self.sent.push(bytes);
        Ok(id)
    }

    /// The next message from the GWM within `limit`.
    pub fn recv(&mut self, limit: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(m) = self.framer.next_message()? {
                let len = Header::decode(&self.raw)?.message_len;
                self.received.push(self.raw.drain(..len).collect());
                return Ok(Some(m));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the GWM closed the connection"),
                Ok(n) => {
                    self.framer.push(&buf[..n]);
                    self.raw.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends a request and returns its reply (pushes arriving meanwhile go to `pushes`).
    pub fn request(
        &mut self,
        version: u8,
        body: Body,
        pushes: &mut Vec<Message>,
    ) -> Result<Message> {
        let id = self.send(version, body)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.recv(Duration::from_millis(500))? {
                Some(m) if matches!(m.body, Body::SendWeights { .. }) => pushes.push(m),
                Some(m) => {
                    assert_eq!(m.id, id, "the reply echoes the Message ID");
                    return Ok(m);
                }
                None => {}
            }
        }
        bail!("no reply to request {id}")
    }

    /// Closes our side, reads what is left until the GWM closes too.
    pub fn close(mut self) -> Result<(Messages, Messages)> {
        self.stream.shutdown(Shutdown::Write)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.recv(Duration::from_millis(200)) {
                Ok(Some(_)) => {}
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => bail!("the GWM did not close after our FIN"),
                Err(_) => break,
            }
        }
        Ok((self.sent, self.received))
    }
}

pub fn member(ip: &str, label: &str) -> Member {
    let mut m = Member::new(ip.parse().unwrap(), 80, 6);
    m.label = label.to_owned();
    m
}

/// Merges weights messages into (address → (flags, weight)).
pub fn merge(state: &mut BTreeMap<IpAddr, (u8, u16)>, m: &Message) {
    let groups = match &m.body {
        Body::SendWeights { groups } | Body::GetWeightsReply { groups, .. } => groups,
        _ => return,
    };
    for g in groups {
        for (member, e) in &g.entries {
            state.insert(member.address, (e.flags, e.weight));
        }
    }
}

/// Reads pushes until `want` holds (or fails after `limit`).
pub fn await_state(
    lb: &mut Lb,
    state: &mut BTreeMap<IpAddr, (u8, u16)>,
    want: &BTreeMap<IpAddr, (u8, u16)>,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while state != want {
        if Instant::now() >= deadline {
            bail!("weights {state:?}, expected {want:?}");
        }
        if let Some(m) = lb.recv(Duration::from_millis(500))? {
            assert!(
                matches!(m.body, Body::SendWeights { .. }),
                "only pushes: {m:?}"
            );
            merge(state, &m);
        }
    }
    Ok(())
}

/// Cuts a byte stream into whole SASP messages (by their headers' Message Length).
pub fn split_messages(mut bytes: &[u8]) -> Result<Messages> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = Header::decode(bytes)?.message_len;
        anyhow::ensure!(bytes.len() >= len, "a cut message at the end");
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// The shared `LbSession` over a real TCP connection: runs it until `done` says so (or fails
/// after `limit`), recording every byte each way.
pub struct SessionDriver {
    pub session: tandem_core::sasp::lb::LbSession,
    stream: TcpStream,
    pub sent: Vec<u8>,
    pub received: Vec<u8>,
    pub events: Vec<tandem_core::sasp::lb::LbEvent>,
}

impl SessionDriver {
    pub fn connect(addr: SocketAddr, session: tandem_core::sasp::lb::LbSession) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut d = SessionDriver {
            session,
            stream,
            sent: Vec::new(),
            received: Vec::new(),
            events: Vec::new(),
        };
        d.session.handle_connected(Instant::now());
        Ok(d)
    }

    pub fn run_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&tandem_core::sasp::lb::LbSession) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(b) = self.session.poll_transmit() {
                self.stream.write_all(&b)?;
                self.sent.extend_from_slice(&b);
            }
            self.events
                .extend(std::iter::from_fn(|| self.session.poll_event()));
            if done(&self.session) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the session never reached {what}: {:?}",
                self.events
            );
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the GWM closed the connection"),
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    self.session.handle_bytes(Instant::now(), &buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            if self.session.poll_timeout().is_some_and(|t| now >= t) {
                self.session.handle_timeout(now);
            }
        }
    }

    /// Closes our side and reads until the GWM closes; returns (sent, received) messages.
    pub fn close(mut self) -> Result<(Messages, Messages)> {
        while let Some(b) = self.session.poll_transmit() {
            self.stream.write_all(&b)?;
            self.sent.extend_from_slice(&b);
        }
        self.stream.shutdown(Shutdown::Write)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the GWM did not close after our FIN"
                    );
                }
                Err(_) => break,
            }
        }
        Ok((split_messages(&self.sent)?, split_messages(&self.received)?))
    }
}
