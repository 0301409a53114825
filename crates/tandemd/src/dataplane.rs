//! The data plane's threads: packet workers and housekeeping, around the shared [`Engine`].
//!
//! Two packet I/O backends (docs/packet-io.md): AF_XDP (an XDP program steers the cluster
//! traffic to one socket per queue) and AF_PACKET (one ring per worker, flow-hash fanout).

use crate::afpacket::{Disposition, FrameMeta, Ring, RingConfig, TxSocket};
use crate::afxdp::{self, AfxdpStats, StatsHandle, Steering, Xsk};
use crate::netdev::Interface;
use anyhow::{Context, Result};
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tandem_core::config::PacketIo;
use tandem_core::forward::{Engine, RxMeta, Verdict};

/// Running workers bound to one interface. Dropping it stops them (and detaches the XDP
/// program after the sockets are closed).
pub struct Dataplane {
    pub interface: Interface,
    pub workers: usize,
    /// The setting it was started for.
    pub setting: PacketIo,
    /// What runs and why, for `executor report` ("afxdp (copy mode, native XDP on eth0, 1
    /// queue)", "afpacket (afxdp refused: ...)").
    pub packetio: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub tx: Arc<TxSocket>,
    /// AF_XDP: the XDP program and its maps.
    steering: Option<Mutex<Steering>>,
    /// AF_XDP: the sockets' counters.
    xsk_stats: Vec<StatsHandle>,
}

impl Dataplane {
    /// Starts the backend `setting` asks for on `interface` (auto: AF_XDP, else AF_PACKET).
    pub fn start(
        engine: Arc<Engine>,
        interface: Interface,
        workers: usize,
        ring: RingConfig,
        setting: PacketIo,
    ) -> Result<Dataplane> {
        let workers = workers.max(1);
        // Ring slots that hold the interface's largest frame (jumbo frames too).
        let ring = RingConfig {
            mtu: interface.mtu,
            ..ring
        };
        match setting {
            PacketIo::Afpacket => Dataplane::start_afpacket(
                engine,
                interface,
                workers,
                ring,
                setting,
                "afpacket (set)".into(),
            ),
            PacketIo::Afxdp => Dataplane::start_afxdp(engine, interface, workers, setting)
                .context("starting AF_XDP (executor set packetio afxdp)"),
            PacketIo::Auto => {
                match Dataplane::start_afxdp(engine.clone(), interface.clone(), workers, setting) {
                    Ok(dp) => Ok(dp),
                    Err(e) => {
                        let why = format!("{e:#}");
                        tracing::warn!(interface = %interface.name, error = %why, "AF_XDP refused: AF_PACKET runs");
                        Dataplane::start_afpacket(
                            engine,
                            interface,
                            workers,
                            ring,
                            setting,
                            format!("afpacket (afxdp refused: {why})"),
                        )
                    }
                }
            }
        }
    }

    fn start_afpacket(
        engine: Arc<Engine>,
        interface: Interface,
        workers: usize,
        ring: RingConfig,
        setting: PacketIo,
        packetio: String,
    ) -> Result<Dataplane> {
        let group = (std::process::id() & 0xffff) as u16;
        let tx = Arc::new(TxSocket::open(interface.index).context("opening the transmit socket")?);
        let mut rings = Vec::new();
        for _ in 0..workers {
            rings.push(
                Ring::open(interface.index, (workers > 1).then_some(group), ring)
                    .with_context(|| format!("opening a packet ring on {}", interface.name))?,
            );
        }
        let mut dp = Dataplane {
            interface,
            workers,
            setting,
            packetio,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            tx,
            steering: None,
            xsk_stats: Vec::new(),
        };
        engine.set_workers(workers);
        for (i, ring) in rings.into_iter().enumerate() {
            let (engine, stop) = (engine.clone(), dp.stop.clone());
            dp.spawn(format!("worker-{i}"), move || worker(i, ring, engine, stop))?;
        }
        dp.spawn_housekeeping(engine)?;
        tracing::info!(interface = %dp.interface.name, workers, ring = ?ring.version, "data plane started (AF_PACKET)");
        Ok(dp)
    }

    fn start_afxdp(
        engine: Arc<Engine>,
        interface: Interface,
        workers: usize,
        setting: PacketIo,
    ) -> Result<Dataplane> {
        // A frame must fit one UMEM frame after the kernel's XDP headroom (no multi-buffer):
        // jumbo MTUs run on AF_PACKET (auto falls back with this reason).
        let largest = tandem_core::forward::mtu_frame(interface.mtu) + 4;
        let room = afxdp::socket::FRAME_SIZE as usize - XDP_HEADROOM;
        if largest > room {
            anyhow::bail!(
                "MTU {} of {} needs frames of {largest} bytes; AF_XDP frames hold {room} \
                 (jumbo frames need packetio afpacket)",
                interface.mtu,
                interface.name
            );
        }
        let ifindex = u32::try_from(interface.index).context("interface index")?;
        let tx = Arc::new(TxSocket::open(interface.index).context("opening the transmit socket")?);
        let mut steering = Steering::attach(ifindex)?;
        if let Some(why) = &steering.native_refused {
            tracing::info!(interface = %interface.name, refused = %why, "native XDP refused: generic (skb) mode");
        }
        let queues = afxdp::rx_queues(&interface.name);
        let mut socks = Vec::new();
        let mut xsk_stats = Vec::new();
        let mut zc_refused = None;
        for q in 0..queues {
            let (xsk, refused) = Xsk::open(ifindex, q).with_context(|| {
                format!("opening the AF_XDP socket of {} queue {q}", interface.name)
            })?;
            steering.set_socket(q, xsk.raw_fd())?;
            zc_refused = zc_refused.or(refused);
            xsk_stats.push(xsk.stats_handle().context("duplicating an AF_XDP socket")?);
            socks.push(xsk);
        }
        let neighbours = afxdp::neighbour_ring(interface.index)?;
        let threads = workers.min(queues as usize).max(1);
        let mut per_worker: Vec<Vec<Xsk>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, s) in socks.into_iter().enumerate() {
            per_worker[i % threads].push(s);
        }
        let packetio = format!(
            "afxdp ({} mode, {} XDP on {}, {queues} queue{})",
            if zc_refused.is_some() {
                "copy"
            } else {
                "zero-copy"
            },
            steering.mode,
            interface.name,
            if queues == 1 { "" } else { "s" },
        );
        let mut dp = Dataplane {
            interface,
            workers: threads,
            setting,
            packetio,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            tx,
            steering: Some(Mutex::new(steering)),
            xsk_stats,
        };
        // The neighbour socket's worker has the index after the XDP workers'.
        engine.set_workers(threads + 1);
        for (i, socks) in per_worker.into_iter().enumerate() {
            let (engine, stop) = (engine.clone(), dp.stop.clone());
            dp.spawn(format!("worker-{i}"), move || {
                worker_xdp(i, socks, engine, stop)
            })?;
        }
        {
            let (engine, stop) = (engine.clone(), dp.stop.clone());
            dp.spawn("neighbours".into(), move || {
                worker(threads, neighbours, engine, stop)
            })?;
        }
        dp.spawn_housekeeping(engine)?;
        tracing::info!(interface = %dp.interface.name, workers = threads, packetio = %dp.packetio, "data plane started (AF_XDP)");
        Ok(dp)
    }

    fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let t = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .context("spawning a data plane thread")?;
        self.threads.push(t);
        Ok(())
    }

    fn spawn_housekeeping(&mut self, engine: Arc<Engine>) -> Result<()> {
        let (tx, stop) = (self.tx.clone(), self.stop.clone());
        self.spawn("housekeeping".into(), move || {
            housekeeping(engine, tx, stop)
        })
    }

    /// The XDP program decides what the node's kernel sees (no ingress filter needed).
    pub fn steers(&self) -> bool {
        self.steering.is_some()
    }

    /// AF_XDP: the addresses whose frames go to the sockets (cluster and return addresses).
    pub fn set_steered(&self, addrs: &[IpAddr]) -> Result<()> {
        match &self.steering {
            Some(s) => s.lock().set_addresses(addrs),
            None => Ok(()),
        }
    }

    /// AF_XDP: the program's and the sockets' counters.
    pub fn afxdp_stats(&self) -> Option<AfxdpStats> {
        let steering = self.steering.as_ref()?.lock().counters();
        Some(AfxdpStats::collect(steering, &self.xsk_stats))
    }

    /// Sends control-plane frames now.
    pub fn send(&self, frames: &[Vec<u8>]) {
        for f in frames {
            if let Err(e) = self.tx.send(f) {
                tracing::warn!(error = %e, "sending a control frame");
            }
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The workers' sockets are closed (the stats handles go next); `steering` detaches
        // the program after.
    }
}

/// The headroom the kernel keeps in front of a frame in an XDP buffer (XDP_PACKET_HEADROOM).
const XDP_HEADROOM: usize = 256;

/// The nice value of the packet workers: above ordinary work, so that frames are not lost to
/// batch jobs (compilers, backups) sharing the node's CPUs. The kernel's own forwarding runs in
/// softirq context, ahead of every task; a user-space forwarder at nice 0 gets only its fair
/// share among the runnable tasks, and its receive rings overflow while it waits
/// (BENCHMARKS.md, "Data plane v2": `rx_ring_full` at 11-22 % CPU on a machine at load 13).
/// A worker sleeps in `poll` when there is nothing to do, so it takes no CPU from others then.
/// Not real-time (keepalived's way): a bug that spins cannot starve the node.
pub const WORKER_NICE: libc::c_int = -10;

/// Puts the calling thread (a packet worker) at [`WORKER_NICE`]. Without the privilege
/// (`CAP_SYS_NICE`), the thread stays as it is and the daemon says so once per thread.
fn raise_priority(name: &str) {
    // SAFETY: gettid(2) has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority(2) on our own thread's id: PRIO_PROCESS with a thread id changes
    // that thread only.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WORKER_NICE) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        tracing::info!(worker = name, error = %e, nice = WORKER_NICE, "packet worker keeps its priority");
    }
}

/// An AF_PACKET worker, index `index` of the engine's workers.
fn worker(index: usize, mut ring: Ring, engine: Arc<Engine>, stop: Arc<AtomicBool>) {
    raise_priority("afpacket");
    let mut extra: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        ring.wait(100);
        let now = Instant::now();
        ring.process(&mut |frame: &mut [u8], meta: FrameMeta| {
            let meta = RxMeta {
                csum_not_ready: meta.csum_not_ready,
                vlan: meta.vlan,
                vlan_id: meta.vlan_id,
                truncated: meta.truncated,
            };
            match engine.handle_on(index, frame, meta, now, &mut extra) {
                Verdict::Transmit(n) => Disposition::Transmit(n),
                _ => Disposition::Done,
            }
        });
        if !extra.is_empty() {
            let refs: Vec<&[u8]> = extra.iter().map(|f| f.as_slice()).collect();
            ring.send_buffers(&refs);
            extra.clear();
        }
    }
}

/// An AF_XDP worker: its sockets (one per queue it serves) in turn. XDP frames carry no
/// partial checksums (docs/packet-io.md) and keep their VLAN tag in the frame.
fn worker_xdp(index: usize, mut socks: Vec<Xsk>, engine: Arc<Engine>, stop: Arc<AtomicBool>) {
    raise_priority("afxdp");
    let mut extra: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut seen = 0;
        for s in socks.iter_mut() {
            seen += s.process(&mut |frame: &mut [u8]| match engine.handle_on(
                index,
                frame,
                RxMeta::default(),
                now,
                &mut extra,
            ) {
                Verdict::Transmit(n) => Disposition::Transmit(n),
                _ => Disposition::Done,
            });
            if !extra.is_empty() {
                s.send_buffers(&extra);
                extra.clear();
            }
            s.flush();
        }
        if seen == 0 {
            afxdp::socket::wait(&socks, 100);
        }
    }
}

fn housekeeping(engine: Arc<Engine>, tx: Arc<TxSocket>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let (frames, _ended) = engine.housekeeping(Instant::now());
        for f in frames {
            let _ = tx.send(&f);
        }
    }
}
