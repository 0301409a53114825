//! Frame capture without tcpdump: an AF_PACKET socket in a lab host's namespace that records
//! every ARP frame the host's interfaces see, in the background, until stopped. Used to prove
//! that an operation sent no gratuitous ARP (a takeover announces the cluster addresses with
//! broadcast ARPs whose sender and target address are the same).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Host;

/// One ARP frame as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpFrame {
    /// When it was seen, from the start of the capture.
    pub at: Duration,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// A gratuitous ARP: an announcement of the sender's own address (sender IP = target IP),
    /// or any broadcast reply.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip || (self.op == 2 && self.eth_dst == [0xff; 6])
    }

    /// Parses an Ethernet frame carrying IPv4-over-Ethernet ARP.
    pub fn parse(at: Duration, f: &[u8]) -> Option<ArpFrame> {
        if f.len() < 42 || f[12..14] != [0x08, 0x06] {
            return None;
        }
        let a = &f[14..];
        if a[0..2] != [0, 1] || a[2..4] != [0x08, 0x00] || a[4] != 6 || a[5] != 4 {
            return None;
        }
        let mac = |s: &[u8]| -> [u8; 6] { s[..6].try_into().unwrap_or([0; 6]) };
        let ip = |s: &[u8]| Ipv4Addr::new(s[0], s[1], s[2], s[3]);
        Some(ArpFrame {
            at,
            eth_dst: mac(&f[0..6]),
            eth_src: mac(&f[6..12]),
            op: u16::from_be_bytes([a[6], a[7]]),
            sender_mac: mac(&a[8..14]),
            sender_ip: ip(&a[14..18]),
            target_ip: ip(&a[24..28]),
        })
    }
}

impl std::fmt::Display for ArpFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = |m: &[u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        write!(
            f,
            "{:.3}s {} {} -> {}: {} is-at {} (target {})",
            self.at.as_secs_f64(),
            if self.op == 1 { "request" } else { "reply" },
            m(&self.eth_src),
            m(&self.eth_dst),
            self.sender_ip,
            m(&self.sender_mac),
            self.target_ip
        )
    }
}

/// A running ARP capture; [`ArpCapture::stop`] returns what it saw.
pub struct ArpCapture {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<ArpFrame>>>>,
}

impl ArpCapture {
    /// Starts capturing every ARP frame on `host`'s interfaces (all of them: for the switch
    /// namespace, every port of the bridge). Returns once the socket is open.
    pub fn start(host: &Host) -> Result<ArpCapture> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let handle = host.in_ns_background(move || -> Result<Vec<ArpFrame>> {
            // SAFETY: plain socket(2); the descriptor is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from((libc::ETH_P_ARP as u16).to_be()),
                )
            };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                let _ = tx.send(Err(anyhow::anyhow!("AF_PACKET socket (needs root): {e}")));
                bail!("AF_PACKET socket: {e}");
            }
            // SAFETY: fd is a fresh descriptor nobody else owns.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            // SAFETY: setsockopt with a timeval on our socket.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            let _ = tx.send(Ok(()));
            let start = Instant::now();
            let mut frames = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: recv into a buffer that outlives the call.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    continue;
                }
                if let Some(f) = ArpFrame::parse(start.elapsed(), &buf[..n as usize]) {
                    // Bounded: a capture is for seconds of control traffic, not a flood.
                    if frames.len() < 100_000 {
                        frames.push(f);
                    }
                }
            }
            Ok(frames)
        })?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow::anyhow!("ARP capture did not start"))??;
        Ok(ArpCapture {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the capture and returns every ARP frame seen.
    pub fn stop(mut self) -> Result<Vec<ArpFrame>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("ARP capture thread panicked"),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for ArpCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: u16, dst: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn parses_and_tells_gratuitous_from_ordinary() {
        let garp = frame(1, [0xff; 6], [192, 0, 2, 100], [192, 0, 2, 100]);
        let f = ArpFrame::parse(Duration::ZERO, &garp).unwrap();
        assert_eq!(f.sender_ip, Ipv4Addr::new(192, 0, 2, 100));
        assert!(f.is_gratuitous());
        let ask = frame(1, [0xff; 6], [192, 0, 2, 10], [192, 0, 2, 100]);
        assert!(
            !ArpFrame::parse(Duration::ZERO, &ask)
                .unwrap()
                .is_gratuitous()
        );
        let answer = frame(2, [2, 0, 0, 0, 0, 9], [192, 0, 2, 100], [192, 0, 2, 10]);
        assert!(
            !ArpFrame::parse(Duration::ZERO, &answer)
                .unwrap()
                .is_gratuitous()
        );
        assert!(ArpFrame::parse(Duration::ZERO, &garp[..30]).is_none());
    }
}
