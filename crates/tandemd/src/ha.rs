//! The I/O shell around `tandem_core::ha::Machine`: heartbeat UDP sockets, the ICMP reach
//! prober, the script runner, and the HA thread that moves events in and actions out.
//!
//! All state lives in the node's lock (see `node.rs`): the HA thread takes it for each batch
//! of events, so a transition (forwarding on or off, ARP ownership, gratuitous ARPs) happens in
//! one step with the configuration it belongs to, and scripts are queued right after it, never
//! found by polling (PH50064).

use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tandem_core::ha::{self, HaSettings, Machine, ProductVersion};

pub use crate::scripts::{ScriptJob, ScriptRunner};

/// The version this build advertises (override with TANDEM_VERSION=V.R.M.F, for upgrade tests).
pub fn product_version() -> ProductVersion {
    if let Ok(v) = std::env::var("TANDEM_VERSION")
        && let Ok(pv) = v.parse()
    {
        return pv;
    }
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u16>().unwrap_or(0));
    ProductVersion::new(
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        0,
    )
}

/// Heartbeat sockets, one per local source address, all on the HA port.
pub struct Sockets {
    pub port: u16,
    pub by_source: BTreeMap<IpAddr, UdpSocket>,
}

impl Sockets {
    /// A socket for every heartbeat source address of `settings`, reusing those of `old` that
    /// are still wanted (a socket being closed may still hold its port for a moment while the
    /// HA thread polls it, so rebinding the same address is avoided, and retried briefly).
    pub fn bind(settings: &HaSettings, old: Option<Sockets>) -> Result<Option<Sockets>> {
        let Some(backup) = settings.backup else {
            return Ok(None);
        };
        let mut reuse = match old {
            Some(o) if o.port == backup.port => o.by_source,
            _ => BTreeMap::new(),
        };
        let mut by_source = BTreeMap::new();
        for (src, _) in &settings.heartbeats {
            if by_source.contains_key(src) {
                continue;
            }
            if let Some(s) = reuse.remove(src) {
                by_source.insert(*src, s);
                continue;
            }
            let addr = SocketAddr::new(*src, backup.port);
            let mut tries = 0;
            let s = loop {
                match UdpSocket::bind(addr) {
                    Ok(s) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("binding the heartbeat socket {addr}"));
                    }
                }
            };
            s.set_nonblocking(true)?;
            set_buffers(&s);
            by_source.insert(*src, s);
        }
        Ok(Some(Sockets {
            port: backup.port,
            by_source,
        }))
    }
}

/// Room for a full replication window (128 datagrams of ~1.5 kB) and then some: with the
/// default receive buffer (about 208 kB) a full synchronisation overruns it and retransmits.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

fn set_buffers(s: &UdpSocket) {
    for opt in [
        libc::SO_RCVBUF,
        libc::SO_SNDBUF,
        libc::SO_RCVBUFFORCE,
        libc::SO_SNDBUFFORCE,
    ] {
        // SAFETY: setsockopt on our own socket with a valid int.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &SOCKET_BUFFER as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Pings reach targets (ICMP echo over a raw socket) and reports who answered.
pub struct Prober {
    fd: OwnedFd,
    ident: u16,
    seq: u16,
    /// Target → (seq of the last probe, answered since).
    outstanding: HashMap<Ipv4Addr, (u16, bool)>,
    pub last_round: Option<Instant>,
}

impl Prober {
    pub fn open() -> Result<Prober> {
        // SAFETY: plain socket(2) call.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMP,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error())
                .context("opening the ICMP socket for reach targets");
        }
        // SAFETY: raw is a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Prober {
            fd,
            ident: (std::process::id() & 0xffff) as u16,
            seq: 0,
            outstanding: HashMap::new(),
            last_round: None,
        })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// One probe round: reports the previous round's unanswered targets as unreachable, and
    /// sends a new echo request to each target.
    pub fn round(&mut self, targets: &[IpAddr], machine: &mut Machine, now: Instant) {
        for (ip, (_, answered)) in self.outstanding.drain() {
            if !answered {
                machine.handle_reach(now, IpAddr::V4(ip), false);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        for t in targets {
            let IpAddr::V4(ip) = t else { continue };
            let mut pkt = [0u8; 16];
            pkt[0] = 8; // echo request
            pkt[4..6].copy_from_slice(&self.ident.to_be_bytes());
            pkt[6..8].copy_from_slice(&self.seq.to_be_bytes());
            pkt[8..16].copy_from_slice(b"tandemHA");
            let sum = tandem_wire::checksum::ones_complement_sum(&pkt);
            pkt[2..4].copy_from_slice(&(!sum).to_be_bytes());
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*ip).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: pkt and addr are valid for the call.
            unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    pkt.as_ptr() as *const libc::c_void,
                    pkt.len(),
                    0,
                    &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
            }
            self.outstanding.insert(*ip, (self.seq, false));
        }
        self.last_round = Some(now);
    }

    /// Reads echo replies; each first answer of the round reports the target reachable.
    pub fn receive(&mut self, machine: &mut Machine, now: Instant) {
        let mut buf = [0u8; 1500];
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n <= 0 {
                return;
            }
            let pkt = &buf[..n as usize];
            // Raw ICMP sockets deliver the IP header too.
            let ihl = ((pkt[0] & 0x0f) as usize) * 4;
            if pkt.len() < ihl + 8 || pkt[ihl] != 0 {
                continue; // not an echo reply
            }
            let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
            let ident = u16::from_be_bytes([pkt[ihl + 4], pkt[ihl + 5]]);
            let seq = u16::from_be_bytes([pkt[ihl + 6], pkt[ihl + 7]]);
            if ident != self.ident {
                continue;
            }
            if let Some((want, answered)) = self.outstanding.get_mut(&src)
                && *want == seq
                && !*answered
            {
                *answered = true;
                machine.handle_reach(now, IpAddr::V4(src), true);
            }
        }
    }
}

/// The HA part of a node.
pub struct HaShell {
    pub machine: Machine,
    pub sockets: Option<Sockets>,
    pub key: Option<Vec<u8>>,
    pub prober: Option<Prober>,
    pub scripts: ScriptRunner,
    pub reach_interval: Duration,
    /// Recent events for the takeover timeline (time, text).
    pub events: VecDeque<(Instant, String)>,
    pub rep: crate::replication::Replicator,
    /// The machine asked for a full synchronisation of the partner; the HA thread takes the
    /// snapshot off the lock.
    pub full_sync_wanted: bool,
}

/// A replication message that arrived (in a heartbeat or its own datagram).
pub struct Incoming {
    pub from: SocketAddr,
    pub local: IpAddr,
    pub message: Vec<u8>,
}

impl HaShell {
    pub fn new() -> HaShell {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        HaShell {
            machine: Machine::new(epoch, product_version()),
            sockets: None,
            key: None,
            prober: None,
            scripts: ScriptRunner::start(),
            reach_interval: Duration::from_secs(2),
            events: VecDeque::new(),
            rep: crate::replication::Replicator::new(),
            full_sync_wanted: false,
        }
    }

    pub fn event(&mut self, now: Instant, text: String) {
        tracing::info!("{text}");
        self.events.push_back((now, text));
        while self.events.len() > 64 {
            self.events.pop_front();
        }
    }

    /// Reads heartbeats from every socket into the machine; returns the replication messages
    /// that came with them (authenticated).
    pub fn receive(&mut self, now: Instant) -> Vec<Incoming> {
        let mut incoming = Vec::new();
        let Some(sockets) = &self.sockets else {
            return incoming;
        };
        let mut buf = [0u8; 65536];
        for (local, sock) in &sockets.by_source {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let Some(pair) = self.machine.pair_index(*local, from.ip()) else {
                    self.machine.record_bad_datagram(ha::DropKind::UnknownPair);
                    continue;
                };
                if crate::replication::is_replication(&buf[..n]) {
                    match crate::replication::unwrap(&buf[..n], self.key.as_deref()) {
                        Ok(message) => incoming.push(Incoming {
                            from,
                            local: *local,
                            message: message.to_vec(),
                        }),
                        Err(e) => {
                            tracing::debug!(from = %from, error = ?e, "replication datagram dropped");
                            self.rep.counters.datagrams_dropped += 1;
                        }
                    }
                    continue;
                }
                match ha::decode(&buf[..n], self.key.as_deref()) {
                    Ok(hb) => {
                        let r = self.machine.handle_heartbeat(now, pair, &hb);
                        if r == ha::Received::New && !hb.records.is_empty() {
                            incoming.push(Incoming {
                                from,
                                local: *local,
                                message: hb.records,
                            });
                        }
                    }
                    Err(e) => {
                        tracing::debug!(from = %from, error = %e, "heartbeat dropped");
                        self.machine.record_bad_datagram(e.kind());
                    }
                }
            }
        }
        incoming
    }

    /// Sends a replication message (batch or ack) from `source` to `destination`.
    pub fn send_message(&self, source: IpAddr, destination: SocketAddr, message: &[u8]) {
        let Some(sockets) = &self.sockets else { return };
        let Some(sock) = sockets.by_source.get(&source) else {
            return;
        };
        let bytes = crate::replication::wrap(message, self.key.as_deref());
        if let Err(e) = sock.send_to(&bytes, destination) {
            tracing::debug!(error = %e, %destination, "replication datagram not sent");
        }
    }

    /// Sends one heartbeat.
    pub fn send(&self, source: IpAddr, destination: IpAddr, port: u16, hb: &ha::Heartbeat) {
        let Some(sockets) = &self.sockets else { return };
        let Some(sock) = sockets.by_source.get(&source) else {
            return;
        };
        let bytes = ha::encode(hb, self.key.as_deref());
        if let Err(e) = sock.send_to(&bytes, SocketAddr::new(destination, port)) {
            tracing::debug!(error = %e, %destination, "heartbeat not sent");
        }
    }

    /// File descriptors the HA thread waits on.
    pub fn fds(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .sockets
            .iter()
            .flat_map(|s| s.by_source.values().map(|s| s.as_raw_fd()))
            .collect();
        if let Some(p) = &self.prober {
            v.push(p.raw_fd());
        }
        v
    }

    /// Reach probing: a round every reach interval.
    pub fn probe(&mut self, now: Instant) {
        let targets = self.machine.settings().reach.clone();
        if targets.is_empty() {
            return;
        }
        if self.prober.is_none() {
            match Prober::open() {
                Ok(p) => self.prober = Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "reach targets cannot be probed");
                    return;
                }
            }
        }
        let interval = self.reach_interval;
        let Some(p) = self.prober.as_mut() else {
            return;
        };
        p.receive(&mut self.machine, now);
        if p.last_round
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
        {
            p.round(&targets, &mut self.machine, now);
        }
    }

    /// The next instant the HA thread must wake up.
    pub fn next_wakeup(&self, now: Instant) -> Instant {
        let mut t = now + Duration::from_millis(50);
        if let Some(m) = self.machine.poll_timeout() {
            t = t.min(m);
        }
        t.max(now)
    }
}
