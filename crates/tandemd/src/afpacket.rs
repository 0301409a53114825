//! AF_PACKET receive rings and batched transmit: the thin, `unsafe` I/O shell of the data plane.
//!
//! Each forwarding worker owns one [`Ring`]: an `AF_PACKET` socket bound to the forwarding
//! interface, joined to a `PACKET_FANOUT_HASH` group so that the kernel spreads flows across
//! workers, with a memory-mapped receive ring. Two ring layouts are supported:
//!
//! - `TPACKET_V2`: one fixed slot per frame; the kernel hands each frame over at once. Lowest
//!   latency, which is what a connection-rate workload (SYN, SYN-ACK, ... one small frame at a
//!   time) needs.
//! - `TPACKET_V3`: variable-size frames packed in blocks; a block is handed over when full or when
//!   its retire timer (≥ 1 ms, rounded to jiffies) fires. Fewer wake-ups under load, but each frame
//!   may wait for the timer when traffic is light.
//!
//! The frames are modified in place in the ring and transmitted straight from it with
//! `sendmmsg` (no copy), before the slots are returned to the kernel.
//!
//! Traps handled here (see the design notes): the socket ignores its own outgoing frames
//! (`PACKET_IGNORE_OUTGOING`), frames with a not-yet-computed checksum are flagged
//! (`TP_STATUS_CSUMNOTREADY`) so the caller completes it, and transmit bypasses the qdisc layer.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{Ordering, fence};

/// Which ring layout to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingVersion {
    V2,
    V3,
}

impl std::str::FromStr for RingVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v2" | "2" => Ok(RingVersion::V2),
            "v3" | "3" => Ok(RingVersion::V3),
            other => Err(format!(
                "unknown ring version '{other}' (expected v2 or v3)"
            )),
        }
    }
}

/// What the kernel told us about a received frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameMeta {
    /// The TCP/UDP checksum is not computed yet (local sender with checksum offload).
    pub csum_not_ready: bool,
    /// The kernel stripped a VLAN tag (`TP_STATUS_VLAN_VALID`).
    pub vlan: bool,
    /// The tag's VLAN id (low 12 bits of `tp_vlan_tci`) when `vlan`.
    pub vlan_id: Option<u16>,
    /// The frame was truncated by the ring slot (larger than the slot: a super-frame).
    pub truncated: bool,
}

/// What to do with a frame after the handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transmit the (possibly rewritten) frame, `len` bytes from its start.
    Transmit(usize),
    /// Nothing to send.
    Done,
}

/// Ring sizing.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    pub version: RingVersion,
    /// Total ring memory in bytes.
    pub ring_bytes: usize,
    /// V3 block retire timeout, milliseconds.
    pub block_timeout_ms: u32,
    /// The interface's MTU: the ring's slots hold a frame of it (V2 slots are 4096 bytes up
    /// to an MTU of about 4000, 16384 for jumbo frames of 9000).
    pub mtu: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            version: RingVersion::V2,
            ring_bytes: 8 << 20,
            block_timeout_ms: 1,
            mtu: 1500,
        }
    }
}

/// The ring slot for frames of `mtu`: the frame (MTU, Ethernet header, a VLAN tag) behind
/// the tpacket header and its alignment (under 100 bytes), as a power of two from 4096 (the
/// slot of a 1500-byte MTU) to the block size.
fn frame_size(mtu: usize) -> usize {
    (mtu + 18 + 128).next_power_of_two().clamp(4096, BLOCK_SIZE)
}
const BLOCK_SIZE: usize = 1 << 18;
const BATCH: usize = 64;

/// One worker's packet socket with its mapped receive ring.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    version: RingVersion,
    // V2: frame slots; V3: blocks.
    slot_size: usize,
    slot_count: usize,
    next: usize,
    /// V3: frames of the current block to transmit (reused, so no allocation per block).
    tx_scratch: Vec<(usize, usize)>,
}

// SAFETY: the mapping is owned by this Ring alone; it is only touched through `&mut self`.
unsafe impl Send for Ring {}

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the given size for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Index of a network interface by name.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx as i32)
    }
}

impl Ring {
    /// Opens a packet socket on `ifindex`, maps its receive ring and joins fanout group
    /// `fanout_group` (flow-hash fanout) when given.
    pub fn open(ifindex: i32, fanout_group: Option<u16>, cfg: RingConfig) -> io::Result<Ring> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let raw = cvt(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto)
        })?;
        // SAFETY: raw is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let version: libc::c_int = match cfg.version {
            RingVersion::V2 => libc::tpacket_versions::TPACKET_V2 as libc::c_int,
            RingVersion::V3 => libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        let one: libc::c_int = 1;
        // Our own transmitted frames must not come back to us.
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)?;
        // Transmit straight to the driver; forwarding needs no local queueing discipline.
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)?;

        let block_nr = (cfg.ring_bytes / BLOCK_SIZE).max(4);
        let frame_size = frame_size(cfg.mtu);
        let (slot_size, slot_count) = match cfg.version {
            RingVersion::V2 => {
                let req = libc::tpacket_req {
                    tp_block_size: BLOCK_SIZE as u32,
                    tp_block_nr: block_nr as u32,
                    tp_frame_size: frame_size as u32,
                    tp_frame_nr: (block_nr * (BLOCK_SIZE / frame_size)) as u32,
                };
                setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
                (frame_size, block_nr * (BLOCK_SIZE / frame_size))
            }
            RingVersion::V3 => {
                let req = libc::tpacket_req3 {
                    tp_block_size: BLOCK_SIZE as u32,
                    tp_block_nr: block_nr as u32,
                    tp_frame_size: frame_size as u32,
                    tp_frame_nr: (block_nr * (BLOCK_SIZE / frame_size)) as u32,
                    tp_retire_blk_tov: cfg.block_timeout_ms,
                    tp_sizeof_priv: 0,
                    tp_feature_req_word: 0,
                };
                setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
                (BLOCK_SIZE, block_nr)
            }
        };
        let map_len = slot_size * slot_count;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        let map = if map == libc::MAP_FAILED {
            // MAP_LOCKED may fail under a memlock limit; retry without it.
            // SAFETY: as above.
            let m = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if m == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            m
        } else {
            map
        } as *mut u8;

        // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll for the call's duration.
        let bound = cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        });
        let ring = Ring {
            fd,
            map,
            map_len,
            version: cfg.version,
            slot_size,
            slot_count,
            next: 0,
            tx_scratch: Vec::new(),
        };
        bound?;
        if let Some(group) = fanout_group {
            let arg: libc::c_int =
                (group as libc::c_int) | ((libc::PACKET_FANOUT_HASH as libc::c_int) << 16);
            setsockopt(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
        }
        Ok(ring)
    }

    /// Keeps only the frames `filter` (classic BPF) accepts from now on (frames taken before
    /// are handled as any other: the engine sees every frame on the AF_PACKET backend).
    pub fn attach_filter(&self, filter: &[libc::sock_filter]) -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        Ok(())
    }

    /// Waits up to `timeout_ms` for frames.
    pub fn wait(&self, timeout_ms: i32) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    }

    /// Hands every ready frame to `handle` (which may rewrite it in place), transmits those it
    /// asks for in batches, and returns the slots to the kernel. Returns the number of frames seen.
    pub fn process(
        &mut self,
        handle: &mut dyn FnMut(&mut [u8], FrameMeta) -> Disposition,
    ) -> usize {
        match self.version {
            RingVersion::V2 => self.process_v2(handle),
            RingVersion::V3 => self.process_v3(handle),
        }
    }

    fn process_v2(&mut self, handle: &mut dyn FnMut(&mut [u8], FrameMeta) -> Disposition) -> usize {
        let mut seen = 0;
        let mut out: [(usize, usize); BATCH] = [(0, 0); BATCH];
        let mut held: [usize; BATCH] = [0; BATCH];
        loop {
            let mut n_out = 0;
            let mut n_held = 0;
            while n_held < BATCH {
                let slot = self.next;
                // SAFETY: slot < slot_count, so the header lies inside the mapping.
                let hdr = unsafe { self.map.add(slot * self.slot_size) as *mut libc::tpacket2_hdr };
                // SAFETY: hdr is aligned (slot size is a multiple of 16) and inside the map.
                let status = unsafe { ptr::read_volatile(&(*hdr).tp_status) };
                if status & libc::TP_STATUS_USER == 0 {
                    break;
                }
                fence(Ordering::Acquire);
                // SAFETY: the kernel filled this slot and handed it to us (TP_STATUS_USER).
                let (mac, snaplen, len) = unsafe {
                    (
                        (*hdr).tp_mac as usize,
                        (*hdr).tp_snaplen as usize,
                        (*hdr).tp_len,
                    )
                };
                let meta = FrameMeta {
                    csum_not_ready: status & libc::TP_STATUS_CSUMNOTREADY != 0,
                    vlan: status & libc::TP_STATUS_VLAN_VALID != 0,
                    // SAFETY: as above, the slot's header is ours.
                    vlan_id: (status & libc::TP_STATUS_VLAN_VALID != 0)
                        .then(|| unsafe { (*hdr).tp_vlan_tci } & 0x0fff),
                    truncated: (snaplen as u32) < len,
                };
                let off = slot * self.slot_size + mac;
                let snaplen = snaplen.min(self.slot_size.saturating_sub(mac));
                // SAFETY: [off, off+snaplen) lies within this slot, owned by us until released.
                let frame = unsafe { std::slice::from_raw_parts_mut(self.map.add(off), snaplen) };
                if let Disposition::Transmit(n) = handle(frame, meta) {
                    out[n_out] = (off, n.min(snaplen));
                    n_out += 1;
                }
                held[n_held] = slot;
                n_held += 1;
                seen += 1;
                self.next = (self.next + 1) % self.slot_count;
            }
            self.transmit(&out[..n_out]);
            fence(Ordering::Release);
            for &slot in &held[..n_held] {
                // SAFETY: returning a slot we own to the kernel.
                unsafe {
                    let hdr = self.map.add(slot * self.slot_size) as *mut libc::tpacket2_hdr;
                    ptr::write_volatile(&mut (*hdr).tp_status, libc::TP_STATUS_KERNEL);
                }
            }
            if n_held < BATCH {
                return seen;
            }
        }
    }

    fn process_v3(&mut self, handle: &mut dyn FnMut(&mut [u8], FrameMeta) -> Disposition) -> usize {
        let mut seen = 0;
        loop {
            let block_off = self.next * self.slot_size;
            // SAFETY: block index < slot_count; the descriptor is at the block's start.
            let desc = unsafe { self.map.add(block_off) as *mut libc::tpacket_block_desc };
            // SAFETY: aligned, inside the map.
            let status = unsafe { ptr::read_volatile(&(*desc).hdr.bh1.block_status) };
            if status & libc::TP_STATUS_USER == 0 {
                return seen;
            }
            fence(Ordering::Acquire);
            // SAFETY: the block is ours (TP_STATUS_USER).
            let (num, first) = unsafe {
                (
                    (*desc).hdr.bh1.num_pkts as usize,
                    (*desc).hdr.bh1.offset_to_first_pkt as usize,
                )
            };
            let mut pkt = first;
            let mut out = std::mem::take(&mut self.tx_scratch);
            out.clear();
            for _ in 0..num {
                if pkt + std::mem::size_of::<libc::tpacket3_hdr>() > self.slot_size {
                    break;
                }
                // SAFETY: pkt offset checked to be inside the block.
                let h = unsafe { &*(self.map.add(block_off + pkt) as *const libc::tpacket3_hdr) };
                let mac = h.tp_mac as usize;
                let snaplen = (h.tp_snaplen as usize).min(self.slot_size.saturating_sub(pkt + mac));
                let meta = FrameMeta {
                    csum_not_ready: h.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
                    vlan: h.tp_status & libc::TP_STATUS_VLAN_VALID != 0,
                    vlan_id: (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0)
                        .then_some((h.hv1.tp_vlan_tci & 0x0fff) as u16),
                    truncated: h.tp_snaplen < h.tp_len,
                };
                let next = h.tp_next_offset as usize;
                let off = block_off + pkt + mac;
                // SAFETY: the frame lies inside this block, which we own until released.
                let frame = unsafe { std::slice::from_raw_parts_mut(self.map.add(off), snaplen) };
                if let Disposition::Transmit(n) = handle(frame, meta) {
                    out.push((off, n.min(snaplen)));
                }
                seen += 1;
                if next == 0 {
                    break;
                }
                pkt += next;
            }
            for chunk in out.chunks(BATCH) {
                self.transmit(chunk);
            }
            self.tx_scratch = out;
            fence(Ordering::Release);
            // SAFETY: returning the block we own to the kernel.
            unsafe {
                ptr::write_volatile(&mut (*desc).hdr.bh1.block_status, libc::TP_STATUS_KERNEL)
            };
            self.next = (self.next + 1) % self.slot_count;
        }
    }

    /// Sends frames that live in the ring (offset, length) with one `sendmmsg`.
    fn transmit(&self, frames: &[(usize, usize)]) {
        if frames.is_empty() {
            return;
        }
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: zeroed mmsghdr is valid; filled below.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let n = frames.len().min(BATCH);
        for i in 0..n {
            let (off, len) = frames[i];
            // SAFETY: offsets come from frames inside the mapping.
            iov[i] = libc::iovec {
                iov_base: unsafe { self.map.add(off) } as *mut libc::c_void,
                iov_len: len,
            };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        self.sendmmsg(&mut msgs[..n]);
    }

    /// Sends frames from ordinary buffers (ARP replies, resets).
    pub fn send_buffers(&self, frames: &[&[u8]]) {
        for chunk in frames.chunks(BATCH) {
            let mut iov: [libc::iovec; BATCH] = [libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            // SAFETY: zeroed mmsghdr is valid; filled below.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, f) in chunk.iter().enumerate() {
                iov[i] = libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                };
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            self.sendmmsg(&mut msgs[..chunk.len()]);
        }
    }

    fn sendmmsg(&self, msgs: &mut [libc::mmsghdr]) {
        let mut done = 0;
        let mut retries = 0;
        while done < msgs.len() {
            // SAFETY: msgs[done..] are valid headers whose iovecs point at live memory.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as u32,
                    0,
                )
            };
            if r <= 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // ENOBUFS/EAGAIN under pressure: retry a little, then drop (counted by the kernel).
                retries += 1;
                if retries > 3 {
                    return;
                }
                std::thread::yield_now();
                continue;
            }
            done += r as usize;
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.map_len) };
    }
}

/// A send-only packet socket for the control plane's occasional frames (gratuitous ARP, ARP
/// requests, resets from configuration changes).
pub struct TxSocket {
    fd: OwnedFd,
}

impl TxSocket {
    pub fn open(ifindex: i32) -> io::Result<TxSocket> {
        // Protocol 0: this socket receives nothing.
        // SAFETY: plain socket(2) call.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: raw is a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is valid for the call.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        Ok(TxSocket { fd })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live buffer of frame.len() bytes.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
