//! AF_XDP packet I/O: the XDP steering program, the sockets of each queue, and the side
//! socket that shows the engine the neighbour frames the program leaves to the kernel.
//! See docs/packet-io.md.

pub mod program;
pub mod ring;
pub mod socket;

pub use program::Steering;
pub use socket::{StatsHandle, Xsk};

use crate::afpacket::{Ring, RingConfig, RingVersion};
use anyhow::{Context, Result};

/// The AF_XDP counters of a data plane, summed over its sockets (`executor report`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AfxdpStats {
    /// Frames the XDP program sent to the sockets and passed to the kernel.
    pub xdp_steered: u64,
    pub xdp_passed: u64,
    pub rx: u64,
    pub tx: u64,
    pub tx_dropped: u64,
    /// The kernel's: too large for a UMEM frame (among others), receive ring full, fill ring empty.
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
}

impl AfxdpStats {
    pub fn collect(steering: (u64, u64), socks: &[StatsHandle]) -> AfxdpStats {
        use std::sync::atomic::Ordering::Relaxed;
        let mut s = AfxdpStats {
            xdp_steered: steering.0,
            xdp_passed: steering.1,
            ..Default::default()
        };
        for h in socks {
            let k = h.kernel();
            s.rx += h.counters.rx.load(Relaxed);
            s.tx += h.counters.tx.load(Relaxed);
            s.tx_dropped += h.counters.tx_dropped.load(Relaxed);
            s.rx_dropped += k.rx_dropped;
            s.rx_ring_full += k.rx_ring_full;
            s.fill_ring_empty += k.fill_ring_empty;
        }
        s
    }
}

/// Receive queues of an interface (`/sys/class/net/IF/queues/rx-*`), at least 1.
pub fn rx_queues(name: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// Classic BPF: ARP, and ICMPv6 router/neighbour discovery (types 133-137) without
/// extension headers. Everything else stays out of the side socket.
const NEIGHBOUR_FILTER: [libc::sock_filter; 10] = [
    op(0x28, 0, 0, 12),     // ldh [12]             ethertype
    op(0x15, 6, 0, 0x0806), // jeq ARP        -> accept
    op(0x15, 0, 6, 0x86dd), // jne IPv6       -> reject
    op(0x30, 0, 0, 20),     // ldb [20]             next header
    op(0x15, 0, 4, 58),     // jne ICMPv6     -> reject
    op(0x30, 0, 0, 54),     // ldb [54]             ICMPv6 type
    op(0x35, 0, 2, 133),    // jlt 133        -> reject
    op(0x25, 1, 0, 137),    // jgt 137        -> reject
    op(0x06, 0, 0, 0xffff), // accept
    op(0x06, 0, 0, 0),      // reject
];

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The side socket: an AF_PACKET ring that sees the ARP and neighbour-discovery frames the
/// XDP program passes to the kernel (replies to the engine's own requests among them; taps
/// run after XDP_PASS), so the engine learns server and router addresses from them.
pub fn neighbour_ring(ifindex: i32) -> Result<Ring> {
    let ring = Ring::open(
        ifindex,
        None,
        RingConfig {
            version: RingVersion::V2,
            ring_bytes: 1 << 20,
            block_timeout_ms: 1,
            // ARP and neighbour discovery frames are small.
            mtu: 1500,
        },
    )
    .context("opening the neighbour socket")?;
    ring.attach_filter(&NEIGHBOUR_FILTER)
        .context("filtering the neighbour socket")?;
    Ok(ring)
}
