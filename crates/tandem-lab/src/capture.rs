//! Frame capture without tcpdump: an AF_PACKET socket in a lab host's namespace that records
//! every ARP frame (or every IPv6 neighbour advertisement) the host's interfaces see, in the
//! background, until stopped. Used to prove that an operation sent no gratuitous ARP (a
//! takeover announces the cluster addresses with broadcast ARPs whose sender and target
//! address are the same), and that a takeover announces IPv6 cluster addresses with
//! unsolicited neighbour advertisements.

use std::net::{Ipv4Addr, Ipv6Addr};
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

/// One IPv6 neighbour advertisement (ICMPv6 type 136) as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaFrame {
    /// When it was seen, from the start of the capture.
    pub at: Duration,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The S flag: an answer to a solicitation (clear in an unsolicited advertisement).
    pub solicited: bool,
    /// The O flag: receivers replace the MAC they hold for `target`.
    pub override_flag: bool,
    /// The target link-layer address option, if present.
    pub target_mac: Option<[u8; 6]>,
}

impl NaFrame {
    /// An unsolicited advertisement that moves the address (S clear, O set): what a takeover
    /// sends for its IPv6 cluster and return addresses.
    pub fn is_unsolicited_override(&self) -> bool {
        !self.solicited && self.override_flag
    }

    /// Parses an Ethernet frame carrying an IPv6 neighbour advertisement (no extension
    /// headers, as NDP messages are sent).
    pub fn parse(at: Duration, f: &[u8]) -> Option<NaFrame> {
        if f.len() < 14 + 40 + 24 || f[12..14] != [0x86, 0xdd] {
            return None;
        }
        let ip = &f[14..];
        if ip[0] >> 4 != 6 || ip[6] != 58 {
            return None;
        }
        let icmp = &ip[40..];
        if icmp[0] != 136 || icmp[1] != 0 {
            return None;
        }
        let mac = |s: &[u8]| -> [u8; 6] { s[..6].try_into().unwrap_or([0; 6]) };
        let v6 = |s: &[u8]| -> Ipv6Addr {
            let b: [u8; 16] = s[..16].try_into().unwrap_or([0; 16]);
            Ipv6Addr::from(b)
        };
        // Options after the 24-byte message: type 2 is the target link-layer address.
        let mut target_mac = None;
        let mut opts = &icmp[24..];
        while opts.len() >= 8 {
            let len = usize::from(opts[1]) * 8;
            if len == 0 || len > opts.len() {
                break;
            }
            if opts[0] == 2 && len >= 8 {
                target_mac = Some(mac(&opts[2..8]));
            }
            opts = &opts[len..];
        }
        Some(NaFrame {
            at,
            eth_dst: mac(&f[0..6]),
            eth_src: mac(&f[6..12]),
            ip_src: v6(&ip[8..24]),
            ip_dst: v6(&ip[24..40]),
            target: v6(&icmp[8..24]),
            solicited: icmp[4] & 0x40 != 0,
            override_flag: icmp[4] & 0x20 != 0,
            target_mac,
        })
    }
}

/// A running capture of ARP frames ([`ArpCapture`]) or neighbour advertisements
/// ([`NaCapture`]); `stop` returns what it saw.
pub struct Capture<T> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<T>>>>,
}

/// Every ARP frame a host's interfaces see.
pub type ArpCapture = Capture<ArpFrame>;
/// Every IPv6 neighbour advertisement a host's interfaces see.
pub type NaCapture = Capture<NaFrame>;

impl ArpCapture {
    /// Starts capturing every ARP frame on `host`'s interfaces (all of them: for the switch
    /// namespace, every port of the bridge). Returns once the socket is open.
    pub fn start(host: &Host) -> Result<ArpCapture> {
        Capture::open(host, libc::ETH_P_ARP as u16, "ARP", ArpFrame::parse)
    }
}

impl NaCapture {
    /// Starts capturing every IPv6 neighbour advertisement on `host`'s interfaces. Returns
    /// once the socket is open.
    pub fn start(host: &Host) -> Result<NaCapture> {
        Capture::open(
            host,
            libc::ETH_P_IPV6 as u16,
            "neighbour advertisement",
            NaFrame::parse,
        )
    }
}

impl<T: Send + 'static> Capture<T> {
    fn open(
        host: &Host,
        ethertype: u16,
        what: &'static str,
        parse: fn(Duration, &[u8]) -> Option<T>,
    ) -> Result<Capture<T>> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let handle = host.in_ns_background(move || -> Result<Vec<T>> {
            // SAFETY: plain socket(2); the descriptor is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(ethertype.to_be()),
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
                if let Some(f) = parse(start.elapsed(), &buf[..n as usize]) {
                    // Bounded: a capture is for seconds of control traffic, not a flood.
                    if frames.len() < 100_000 {
                        frames.push(f);
                    }
                }
            }
            Ok(frames)
        })?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow::anyhow!("{what} capture did not start"))??;
        Ok(Capture {
            stop,
            handle: Some(handle),
        })
    }
}

impl<T> Capture<T> {
    /// Stops the capture and returns every frame seen.
    pub fn stop(mut self) -> Result<Vec<T>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("capture thread panicked"),
            None => Ok(Vec::new()),
        }
    }
}

impl<T> Drop for Capture<T> {
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

    #[test]
    fn parses_neighbour_advertisements() {
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let mut ip = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
        ip.extend_from_slice(&target.octets());
        ip.extend_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[136, 0, 0, 0, 0x20, 0, 0, 0]);
        f.extend_from_slice(&target.octets());
        f.extend_from_slice(&[2, 1, 2, 0, 0, 0, 0, 2]);
        let na = NaFrame::parse(Duration::ZERO, &f).unwrap();
        assert_eq!(na.target, target);
        assert_eq!(na.target_mac, Some([2, 0, 0, 0, 0, 2]));
        assert!(na.is_unsolicited_override());
        let mut solicited = f.clone();
        solicited[14 + 40 + 4] = 0x60;
        assert!(
            !NaFrame::parse(Duration::ZERO, &solicited)
                .unwrap()
                .is_unsolicited_override()
        );
        for n in 0..f.len() {
            let _ = NaFrame::parse(Duration::ZERO, &f[..n]);
        }
        let mut ns = f.clone();
        ns[14 + 40] = 135;
        assert!(NaFrame::parse(Duration::ZERO, &ns).is_none());
    }
}
