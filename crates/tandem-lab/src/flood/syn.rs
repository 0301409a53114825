//! A fast SYN flooder: TCP SYNs from random documentation sources, sent raw out of a lab
//! host's `eth0` with `sendmmsg` on an AF_PACKET socket.
//!
//! One SYN frame is built per target; each frame sent is a copy with a random source address
//! (198.51.100.1-254 or 203.0.113.1-254) and source port, its IPv4 and TCP checksums updated
//! incrementally (RFC 1624, `tandem_wire::checksum`). Only documentation addresses are used
//! and only lab hosts send, like every other lab traffic.

use crate::{Host, check_target};
use anyhow::{Result, bail};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tandem_wire::checksum::{ipv4_header_checksum, l4_checksum_ipv4, update_u16, update_u32};

/// What to flood.
#[derive(Debug, Clone)]
pub struct SynFlood {
    /// Destination MAC (the load balancer's).
    pub dst_mac: [u8; 6],
    /// Source MAC (the sending host's).
    pub src_mac: [u8; 6],
    /// Targets (cluster address and port), taken in turn.
    pub targets: Vec<SocketAddrV4>,
    /// SYNs to send.
    pub count: u64,
    /// Seed of the sources (a given seed sends the same sequence).
    pub seed: u64,
    /// Most SYNs a second (`None`: as fast as the socket takes them).
    pub max_pps: Option<u64>,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodReport {
    /// SYNs the kernel accepted.
    pub sent: u64,
    pub elapsed: Duration,
}

impl FloodReport {
    /// SYNs a second.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const FRAME_LEN: usize = 54;
const IP: usize = 14;
const TCP: usize = 34;
const BATCH: usize = 256;

/// The SYN frame from `src` to `dst`, checksums filled.
fn syn_frame(flood: &SynFlood, src: SocketAddrV4, dst: SocketAddrV4) -> Result<[u8; FRAME_LEN]> {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&flood.dst_mac);
    f[6..12].copy_from_slice(&flood.src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[IP..TCP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let sum = ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let tcp = &mut f[TCP..];
    tcp[0..2].copy_from_slice(&src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let packet = match tandem_wire::parse(&f) {
        Ok(tandem_wire::Frame::Ip(p)) => p,
        other => bail!("built a SYN that does not parse: {other:?}"),
    };
    let sum = l4_checksum_ipv4(&f, &packet).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    f[TCP + 16..TCP + 18].copy_from_slice(&sum.to_be_bytes());
    Ok(f)
}

/// xorshift64*: cheap, deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A random source: a documentation address (not .0 or .255) and a port of 1024-65535.
fn source(rng: &mut Rng) -> SocketAddrV4 {
    let r = rng.next();
    let host = (r % 254) as u8 + 1;
    let ip = if (r >> 8) & 1 == 0 {
        Ipv4Addr::new(198, 51, 100, host)
    } else {
        Ipv4Addr::new(203, 0, 113, host)
    };
    SocketAddrV4::new(ip, 1024 + ((r >> 16) % 64512) as u16)
}

/// Rewrites the template `t` into `out` with source `src`, checksums updated.
fn retarget(t: &[u8; FRAME_LEN], out: &mut [u8; FRAME_LEN], src: SocketAddrV4) {
    *out = *t;
    let old_ip = u32::from_be_bytes([t[IP + 12], t[IP + 13], t[IP + 14], t[IP + 15]]);
    let new_ip = u32::from(*src.ip());
    let old_port = u16::from_be_bytes([t[TCP], t[TCP + 1]]);
    out[IP + 12..IP + 16].copy_from_slice(&new_ip.to_be_bytes());
    out[TCP..TCP + 2].copy_from_slice(&src.port().to_be_bytes());
    let ip_sum = u16::from_be_bytes([t[IP + 10], t[IP + 11]]);
    out[IP + 10..IP + 12].copy_from_slice(&update_u32(ip_sum, old_ip, new_ip).to_be_bytes());
    let tcp_sum = u16::from_be_bytes([t[TCP + 16], t[TCP + 17]]);
    let tcp_sum = update_u16(update_u32(tcp_sum, old_ip, new_ip), old_port, src.port());
    out[TCP + 16..TCP + 18].copy_from_slice(&tcp_sum.to_be_bytes());
}

/// Starts the flood from `host` on a background thread; its handle gives the report.
pub fn syn_flood(host: &Host, flood: SynFlood) -> Result<JoinHandle<Result<FloodReport>>> {
    if flood.targets.is_empty() {
        bail!("a SYN flood needs a target");
    }
    for t in &flood.targets {
        check_target(SocketAddr::V4(*t))?;
    }
    let templates = flood
        .targets
        .iter()
        .map(|t| {
            syn_frame(
                &flood,
                SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 1024),
                *t,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    host.in_ns_background(move || send(&flood, &templates))
}

fn send(flood: &SynFlood, templates: &[[u8; FRAME_LEN]]) -> Result<FloodReport> {
    // SAFETY: plain libc calls on a socket this function owns; every buffer and header passed
    // to the kernel lives until the call returns.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        // Straight to the driver: the flood measures the receiver, not this host's qdisc.
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let name = std::ffi::CString::new("eth0").expect("static name");
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&flood.dst_mac);
        let mut frames = vec![[0u8; FRAME_LEN]; BATCH];
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
        for f in frames.iter_mut() {
            iov.push(libc::iovec {
                iov_base: f.as_mut_ptr() as *mut libc::c_void,
                iov_len: FRAME_LEN,
            });
        }
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
        for v in iov.iter_mut() {
            let mut h: libc::mmsghdr = std::mem::zeroed();
            h.msg_hdr.msg_name = &mut sll as *mut libc::sockaddr_ll as *mut libc::c_void;
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_hdr.msg_iov = v as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            msgs.push(h);
        }
        let mut rng = Rng(flood.seed | 1);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut next = 0usize;
        while sent < flood.count {
            let n = BATCH.min((flood.count - sent) as usize);
            for f in frames.iter_mut().take(n) {
                retarget(&templates[next], f, source(&mut rng));
                next = (next + 1) % templates.len();
            }
            let mut done = 0usize;
            while done < n {
                let r = libc::sendmmsg(fd, msgs.as_mut_ptr().add(done), (n - done) as u32, 0);
                if r > 0 {
                    done += r as usize;
                    continue;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ENOBUFS)
                    && err.kind() != std::io::ErrorKind::WouldBlock
                {
                    libc::close(fd);
                    bail!("sendmmsg: {err}");
                }
                std::thread::yield_now();
            }
            sent += n as u64;
            if let Some(pps) = flood.max_pps {
                let due = Duration::from_secs_f64(sent as f64 / pps.max(1) as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        libc::close(fd);
        Ok(FloodReport {
            sent,
            elapsed: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_valid_syns_from_documentation_sources_with_correct_checksums() {
        let flood = SynFlood {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 3],
            targets: vec!["192.0.2.100:80".parse().unwrap()],
            count: 0,
            seed: 7,
            max_pps: None,
        };
        let dst = flood.targets[0];
        let t = syn_frame(
            &flood,
            SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 1024),
            dst,
        )
        .unwrap();
        let mut rng = Rng(7);
        let mut out = [0u8; FRAME_LEN];
        for _ in 0..1000 {
            let src = source(&mut rng);
            retarget(&t, &mut out, src);
            let fresh = syn_frame(&flood, src, dst).unwrap();
            assert_eq!(
                out, fresh,
                "incremental checksums equal computed ones for {src}"
            );
            let o = src.ip().octets();
            assert!(o[..3] == [198, 51, 100] || o[..3] == [203, 0, 113]);
            assert!((1..=254).contains(&o[3]) && src.port() >= 1024);
        }
    }
}
