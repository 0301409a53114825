//! One AF_XDP socket bound to one queue of the forwarding interface, with its own UMEM.
//!
//! The UMEM is [`FRAMES`] frames of [`FRAME_SIZE`] bytes. A frame is always in exactly one
//! place: on the fill ring or the receive ring (the kernel's), on the transmit or completion
//! ring (the kernel's), or on our free list. A received frame the engine rewrote goes straight
//! onto the transmit ring (in place, no copy); one it did not want goes back to the free list,
//! and the fill ring is topped up from there. Nothing is allocated per frame, and the only
//! system call per batch is the `sendto` kick when the transmit ring asks for one.

use super::ring::{Consumer, Producer, RingPtrs};
use crate::afpacket::{Disposition, cvt};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Bytes per UMEM frame: a 1500-byte MTU frame with room (larger frames are dropped by the
/// kernel and counted in `rx_dropped`; see docs/packet-io.md).
pub const FRAME_SIZE: u32 = 4096;
/// Descriptors per ring (a burst of this many frames waits for the worker without loss).
const RING_SIZE: u32 = 4096;
/// Frames in one UMEM: the fill ring full, plus as many for frames in transmit.
const FRAMES: u32 = RING_SIZE * 2;
/// Frames handled per round.
const BATCH: u32 = 64;

/// Counters of one socket, kept by its worker and read by `executor report`.
#[derive(Debug, Default)]
pub struct XskCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Frames the engine wanted sent that found the transmit ring full, or control frames
    /// that found no free frame or were larger than a frame.
    pub tx_dropped: AtomicU64,
}

/// The kernel's counters of a socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct KernelStats {
    /// Frames dropped (too large for a frame, among others).
    pub rx_dropped: u64,
    /// Frames lost because the receive ring was full.
    pub rx_ring_full: u64,
    /// Frames lost because the fill ring was empty.
    pub fill_ring_empty: u64,
}

/// A second descriptor of a socket, to read its kernel counters from another thread (the
/// socket lives as long as either descriptor).
pub struct StatsHandle {
    fd: OwnedFd,
    pub counters: Arc<XskCounters>,
}

impl StatsHandle {
    pub fn kernel(&self) -> KernelStats {
        // SAFETY: zeroed statistics are a valid value; the kernel fills them.
        let mut k: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if getsockopt(&self.fd, libc::XDP_STATISTICS, &mut k).is_err() {
            return KernelStats::default();
        }
        KernelStats {
            rx_dropped: k.rx_dropped,
            rx_ring_full: k.rx_ring_full,
            fill_ring_empty: k.rx_fill_ring_empty_descs,
        }
    }
}

/// One bound socket.
pub struct Xsk {
    fd: OwnedFd,
    umem: *mut u8,
    umem_len: usize,
    maps: [(usize, usize); 4],
    fill: Producer<u64>,
    comp: Consumer<u64>,
    rx: Consumer<libc::xdp_desc>,
    tx: Producer<libc::xdp_desc>,
    free: Vec<u64>,
    counters: Arc<XskCounters>,
}

// SAFETY: the mappings belong to this socket alone and are only touched through `&mut self`.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, val: &T) -> io::Result<()> {
    crate::afpacket::setsockopt(fd, libc::SOL_XDP, name, val)
}

fn getsockopt<T: Copy>(fd: &OwnedFd, name: libc::c_int, val: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable T of `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            val as *mut T as *mut libc::c_void,
            &mut len,
        )
    })
    .map(|_| ())
}

fn map_ring(fd: &OwnedFd, len: usize, pgoff: u64) -> io::Result<*mut u8> {
    // SAFETY: mapping a ring the kernel allocated for this socket, at its documented offset.
    let m = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff as libc::off_t,
        )
    };
    if m == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(m as *mut u8)
    }
}

impl Xsk {
    /// Opens a socket on queue `queue` of `ifindex`: zero-copy first, copy mode when the
    /// driver refuses it (veth does). Returns the socket and, in copy mode, why zero-copy
    /// was refused.
    pub fn open(ifindex: u32, queue: u32) -> io::Result<(Xsk, Option<io::Error>)> {
        match Xsk::open_with(ifindex, queue, libc::XDP_ZEROCOPY) {
            Ok(x) => Ok((x, None)),
            Err(zc) => Xsk::open_with(ifindex, queue, libc::XDP_COPY).map(|x| (x, Some(zc))),
        }
    }

    fn open_with(ifindex: u32, queue: u32, mode: u16) -> io::Result<Xsk> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: raw is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = (FRAMES * FRAME_SIZE) as usize;
        // SAFETY: an anonymous private mapping of our own.
        let umem = unsafe {
            libc::mmap(
                ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let umem = umem as *mut u8;
        // From here on, `Xsk`'s drop unmaps what is mapped; build it piecewise.
        let mut maps = [(0usize, 0usize); 4];
        let result = (|| {
            let reg = libc::xdp_umem_reg {
                addr: umem as u64,
                len: umem_len as u64,
                chunk_size: FRAME_SIZE,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            setsockopt(&fd, libc::XDP_UMEM_REG, &reg)?;
            for opt in [
                libc::XDP_UMEM_FILL_RING,
                libc::XDP_UMEM_COMPLETION_RING,
                libc::XDP_RX_RING,
                libc::XDP_TX_RING,
            ] {
                setsockopt(&fd, opt, &RING_SIZE)?;
            }
            // SAFETY: zeroed offsets are a valid value; the kernel fills them.
            let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
            getsockopt(&fd, libc::XDP_MMAP_OFFSETS, &mut off)?;
            let u64s = std::mem::size_of::<u64>() as u64;
            let descs = std::mem::size_of::<libc::xdp_desc>() as u64;
            let specs = [
                (off.fr, u64s, libc::XDP_UMEM_PGOFF_FILL_RING),
                (off.cr, u64s, libc::XDP_UMEM_PGOFF_COMPLETION_RING),
                (off.rx, descs, libc::XDP_PGOFF_RX_RING as u64),
                (off.tx, descs, libc::XDP_PGOFF_TX_RING as u64),
            ];
            let mut ptrs = [ptr::null_mut::<u8>(); 4];
            for (i, (o, size, pgoff)) in specs.iter().enumerate() {
                let len = (o.desc + u64::from(RING_SIZE) * size) as usize;
                ptrs[i] = map_ring(&fd, len, *pgoff)?;
                maps[i] = (ptrs[i] as usize, len);
            }
            let at = |i: usize, o: &libc::xdp_ring_offset| -> RingPtrs<u8> {
                // SAFETY: offsets inside the mapping the kernel described.
                unsafe {
                    RingPtrs {
                        producer: ptrs[i].add(o.producer as usize) as *const AtomicU32,
                        consumer: ptrs[i].add(o.consumer as usize) as *const AtomicU32,
                        flags: ptrs[i].add(o.flags as usize) as *const AtomicU32,
                        desc: ptrs[i].add(o.desc as usize),
                        size: RING_SIZE,
                    }
                }
            };
            fn cast<T>(p: RingPtrs<u8>) -> RingPtrs<T> {
                RingPtrs {
                    producer: p.producer,
                    consumer: p.consumer,
                    flags: p.flags,
                    desc: p.desc as *mut T,
                    size: p.size,
                }
            }
            // SAFETY: the rings stay mapped as long as the socket (unmapped in drop).
            let (fill, comp, rx, tx) = unsafe {
                (
                    Producer::new(cast(at(0, &off.fr))),
                    Consumer::new(cast(at(1, &off.cr))),
                    Consumer::new(cast(at(2, &off.rx))),
                    Producer::new(cast(at(3, &off.tx))),
                )
            };
            Ok((fill, comp, rx, tx))
        })();
        let (fill, comp, rx, tx) = match result {
            Ok(r) => r,
            Err(e) => {
                unmap(umem, umem_len, &maps);
                return Err(e);
            }
        };
        let mut xsk = Xsk {
            fd,
            umem,
            umem_len,
            maps,
            fill,
            comp,
            rx,
            tx,
            free: (0..FRAMES)
                .map(|i| u64::from(i * FRAME_SIZE))
                .rev()
                .collect(),
            counters: Arc::default(),
        };
        // The fill ring full before bind, so the first frames find room.
        xsk.refill();
        // SAFETY: zeroed sockaddr_xdp is valid; fields set below.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = mode | libc::XDP_USE_NEED_WAKEUP;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // SAFETY: sa is a valid sockaddr_xdp for the call.
        cvt(unsafe {
            libc::bind(
                xsk.fd.as_raw_fd(),
                &sa as *const libc::sockaddr_xdp as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;
        Ok(xsk)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A handle that reads this socket's counters from another thread.
    pub fn stats_handle(&self) -> io::Result<StatsHandle> {
        Ok(StatsHandle {
            fd: self.fd.try_clone()?,
            counters: self.counters.clone(),
        })
    }

    /// Moves free frames onto the fill ring, as many as fit.
    fn refill(&mut self) {
        let n = self.fill.free(self.free.len() as u32);
        for i in 0..n {
            let addr = self.free.pop().unwrap_or_default();
            self.fill.write(i, addr);
        }
        self.fill.submit(n);
    }

    /// Frames whose transmission completed go back to the free list.
    fn reap(&mut self) {
        let n = self.comp.available(RING_SIZE);
        for i in 0..n {
            self.free
                .push(self.comp.read(i) & !(u64::from(FRAME_SIZE) - 1));
        }
        self.comp.release(n);
    }

    /// Tells the kernel to transmit, when the ring asks for it. In copy mode one `sendto`
    /// sends at most 32 descriptors and says `EAGAIN` when more wait: kick again (bounded),
    /// or the transmit ring fills, no frame completes, and the fill ring runs dry.
    fn kick(&mut self) {
        if !self.tx.needs_wakeup() {
            return;
        }
        for _ in 0..=(RING_SIZE / 32) {
            // SAFETY: a zero-length sendto on our socket: the kernel's cue to transmit.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null(),
                    0,
                )
            };
            if r >= 0 {
                break;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    if self.tx.outstanding() == 0 {
                        break;
                    }
                }
                // EBUSY (the kernel is sending for us), ENOBUFS, ENETDOWN: try next round.
                _ => break,
            }
        }
    }

    /// Hands every ready frame to `handle` (which may rewrite it in place) and transmits
    /// those it asks for, from the same frame. Returns the number of frames seen.
    pub fn process(&mut self, handle: &mut dyn FnMut(&mut [u8]) -> Disposition) -> usize {
        let mut seen = 0;
        loop {
            self.reap();
            let n = self.rx.available(BATCH);
            if n == 0 {
                break;
            }
            let room = self.tx.free(n);
            let mut sent = 0;
            for i in 0..n {
                let d = self.rx.read(i);
                let len = (d.len as usize).min(FRAME_SIZE as usize);
                let within = (d.addr as usize).saturating_add(len) <= self.umem_len;
                let disposition = if within {
                    // SAFETY: [addr, addr+len) lies inside the UMEM (checked), in a frame the
                    // kernel handed to us and does not touch until we give it back.
                    let frame = unsafe {
                        std::slice::from_raw_parts_mut(self.umem.add(d.addr as usize), len)
                    };
                    handle(frame)
                } else {
                    Disposition::Done
                };
                match disposition {
                    Disposition::Transmit(out) if sent < room => {
                        self.tx.write(
                            sent,
                            libc::xdp_desc {
                                addr: d.addr,
                                len: out.min(len) as u32,
                                options: 0,
                            },
                        );
                        sent += 1;
                    }
                    other => {
                        if matches!(other, Disposition::Transmit(_)) {
                            self.counters.tx_dropped.fetch_add(1, Relaxed);
                        }
                        self.free.push(d.addr & !(u64::from(FRAME_SIZE) - 1));
                    }
                }
            }
            self.rx.release(n);
            self.tx.submit(sent);
            self.counters.rx.fetch_add(u64::from(n), Relaxed);
            self.counters.tx.fetch_add(u64::from(sent), Relaxed);
            seen += n as usize;
            if sent > 0 {
                self.kick();
                self.reap();
            }
            self.refill();
            if n < BATCH {
                break;
            }
        }
        seen
    }

    /// Sends frames from ordinary buffers (ARP replies, resets): each is copied into a free
    /// frame. Frames larger than a UMEM frame, or without a free frame, are counted drops.
    pub fn send_buffers(&mut self, frames: &[Vec<u8>]) {
        if frames.is_empty() {
            return;
        }
        self.reap();
        let room = self.tx.free(frames.len() as u32);
        let mut sent = 0;
        for f in frames {
            if sent == room || f.len() > FRAME_SIZE as usize {
                self.counters.tx_dropped.fetch_add(1, Relaxed);
                continue;
            }
            let Some(addr) = self.free.pop() else {
                self.counters.tx_dropped.fetch_add(1, Relaxed);
                continue;
            };
            // SAFETY: a free frame of FRAME_SIZE bytes inside the UMEM; f.len() fits.
            unsafe { ptr::copy_nonoverlapping(f.as_ptr(), self.umem.add(addr as usize), f.len()) };
            self.tx.write(
                sent,
                libc::xdp_desc {
                    addr,
                    len: f.len() as u32,
                    options: 0,
                },
            );
            sent += 1;
        }
        self.tx.submit(sent);
        self.counters.tx.fetch_add(u64::from(sent), Relaxed);
        if sent > 0 {
            self.kick();
        }
    }

    /// Transmit descriptors not yet taken (copy mode needs kicks until they are).
    pub fn tx_outstanding(&mut self) -> bool {
        self.tx.outstanding() > 0
    }

    /// Kicks the kernel again when transmit descriptors wait (copy mode sends at most a
    /// budget per kick).
    pub fn flush(&mut self) {
        if self.tx_outstanding() {
            self.kick();
        }
    }
}

fn unmap(umem: *mut u8, umem_len: usize, maps: &[(usize, usize); 4]) {
    for &(addr, len) in maps {
        if len > 0 {
            // SAFETY: unmapping a ring we mapped, once.
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }
    // SAFETY: unmapping our UMEM, once.
    unsafe { libc::munmap(umem as *mut libc::c_void, umem_len) };
}

impl Drop for Xsk {
    fn drop(&mut self) {
        unmap(self.umem, self.umem_len, &self.maps);
    }
}

/// Waits up to `timeout_ms` for frames on any of `socks`.
pub fn wait(socks: &[Xsk], timeout_ms: i32) {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 16];
    let n = socks.len().min(fds.len());
    for (p, s) in fds.iter_mut().zip(socks) {
        p.fd = s.raw_fd();
        p.events = libc::POLLIN;
    }
    // SAFETY: n valid pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
}
