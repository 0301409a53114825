//! The four single-producer single-consumer rings of an AF_XDP socket, seen from user space.
//!
//! Each ring is a power-of-two array of descriptors with a producer and a consumer index that
//! only grow (and wrap at `u32::MAX`); an index is turned into a slot with `& mask`. We produce
//! on the fill and transmit rings and consume the receive and completion rings; the kernel does
//! the other side. Our own copies of the indices are cached and the shared ones re-read only
//! when the cache says the ring is full (producer) or empty (consumer), as libxdp does.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where one mapped ring lives.
#[derive(Debug, Clone, Copy)]
pub struct RingPtrs<T> {
    pub producer: *const AtomicU32,
    pub consumer: *const AtomicU32,
    pub flags: *const AtomicU32,
    pub desc: *mut T,
    /// Number of descriptors (a power of two).
    pub size: u32,
}

/// The side of a ring we fill (fill ring, transmit ring).
pub struct Producer<T> {
    p: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
    _t: PhantomData<T>,
}

/// The side of a ring we drain (receive ring, completion ring).
pub struct Consumer<T> {
    p: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
    _t: PhantomData<T>,
}

// SAFETY: a ring's memory belongs to the socket that owns both this handle and the mapping;
// the handle is moved between threads, never shared.
unsafe impl<T> Send for Producer<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Consumer<T> {}

/// The shared (producer, consumer) indices of a ring, as a handle starts from them.
///
/// # Safety
/// As [`Producer::new`].
unsafe fn indices<T>(p: &RingPtrs<T>) -> (u32, u32) {
    debug_assert!(p.size.is_power_of_two());
    // SAFETY: valid per the contract.
    unsafe {
        (
            (*p.producer).load(Ordering::Acquire),
            (*p.consumer).load(Ordering::Acquire),
        )
    }
}

impl<T: Copy> Producer<T> {
    /// # Safety
    /// The pointers must stay valid (mapped) for the life of the handle, `desc` must hold
    /// `size` descriptors, and `size` must be a power of two.
    pub unsafe fn new(p: RingPtrs<T>) -> Producer<T> {
        // SAFETY: valid per the contract.
        let (prod, cons) = unsafe { indices(&p) };
        Producer {
            p,
            cached_prod: prod,
            cached_cons: cons,
            _t: PhantomData,
        }
    }

    /// Free slots, at most `want`; the shared consumer index is read only when the cached
    /// one does not show `want` free slots.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.p.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return want;
        }
        // SAFETY: valid per the constructor's contract.
        self.cached_cons = unsafe { (*self.p.consumer).load(Ordering::Acquire) };
        (self.p.size - self.cached_prod.wrapping_sub(self.cached_cons)).min(want)
    }

    /// Writes the `i`-th descriptor after the last submitted one (`i` < what `free` gave).
    pub fn write(&mut self, i: u32, value: T) {
        let idx = self.cached_prod.wrapping_add(i) & (self.p.size - 1);
        // SAFETY: idx < size, inside the descriptor array; the slot is ours (free).
        unsafe { self.p.desc.add(idx as usize).write_volatile(value) };
    }

    /// Hands the first `n` written descriptors to the kernel.
    pub fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // SAFETY: valid per the constructor's contract. Release: the descriptors first.
        unsafe { (*self.p.producer).store(self.cached_prod, Ordering::Release) };
    }

    /// The kernel asks to be woken (a `sendto` kick for transmit, a poll for fill).
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: valid per the constructor's contract.
        unsafe { (*self.p.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0 }
    }

    /// Descriptors submitted and not yet taken by the kernel.
    pub fn outstanding(&mut self) -> u32 {
        self.p.size - self.free(self.p.size)
    }
}

impl<T: Copy> Consumer<T> {
    /// # Safety
    /// As [`Producer::new`].
    pub unsafe fn new(p: RingPtrs<T>) -> Consumer<T> {
        // SAFETY: valid per the contract.
        let (prod, cons) = unsafe { indices(&p) };
        Consumer {
            p,
            cached_prod: prod,
            cached_cons: cons,
            _t: PhantomData,
        }
    }

    /// Descriptors ready, at most `max`; the shared producer index is read only when the
    /// cache shows none.
    pub fn available(&mut self, max: u32) -> u32 {
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready == 0 {
            // SAFETY: valid per the constructor's contract. Acquire: then the descriptors.
            self.cached_prod = unsafe { (*self.p.producer).load(Ordering::Acquire) };
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        ready.min(max)
    }

    /// The `i`-th ready descriptor (`i` < what `available` gave).
    pub fn read(&self, i: u32) -> T {
        let idx = self.cached_cons.wrapping_add(i) & (self.p.size - 1);
        // SAFETY: idx < size; the kernel produced this slot and does not touch it until released.
        unsafe { self.p.desc.add(idx as usize).read_volatile() }
    }

    /// Gives the first `n` read descriptors back to the kernel.
    pub fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // SAFETY: valid per the constructor's contract. Release: our reads happened before.
        unsafe { (*self.p.consumer).store(self.cached_cons, Ordering::Release) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in ordinary memory, with the test playing the kernel.
    struct Fake {
        idx: Box<[AtomicU32; 3]>,
        desc: Vec<u64>,
    }

    impl Fake {
        fn new(size: u32, start: u32) -> Fake {
            Fake {
                idx: Box::new([
                    AtomicU32::new(start),
                    AtomicU32::new(start),
                    AtomicU32::new(0),
                ]),
                desc: vec![0; size as usize],
            }
        }
        fn ptrs(&mut self) -> RingPtrs<u64> {
            RingPtrs {
                producer: &self.idx[0],
                consumer: &self.idx[1],
                flags: &self.idx[2],
                desc: self.desc.as_mut_ptr(),
                size: self.desc.len() as u32,
            }
        }
        fn prod(&self) -> u32 {
            self.idx[0].load(Ordering::Relaxed)
        }
        fn cons(&self) -> u32 {
            self.idx[1].load(Ordering::Relaxed)
        }
    }

    #[test]
    fn producer_fills_to_size_and_wraps_the_index() {
        let start = u32::MAX - 2;
        let mut f = Fake::new(4, start);
        // SAFETY: the fake outlives the handle.
        let mut p = unsafe { Producer::new(f.ptrs()) };
        assert_eq!(p.free(8), 4);
        for i in 0..4 {
            p.write(i, 100 + u64::from(i));
        }
        p.submit(4);
        assert_eq!(f.prod(), start.wrapping_add(4));
        assert_eq!(p.free(1), 0, "full until the kernel consumes");
        // The kernel consumes three: they come back as free slots.
        f.idx[1].store(start.wrapping_add(3), Ordering::Release);
        assert_eq!(p.free(8), 3);
        assert_eq!(p.outstanding(), 1);
        // Slots are indices & mask: start is 0xffff_fffd, slot 1; the fifth write is slot 1 again.
        assert_eq!(f.desc, vec![103, 100, 101, 102]);
        p.write(0, 7);
        p.submit(1);
        assert_eq!(f.desc[1], 7);
        assert_eq!(f.prod(), 2, "wrapped past u32::MAX");
        f.idx[2].store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(p.needs_wakeup());
    }

    #[test]
    fn consumer_sees_what_the_kernel_produced_across_the_wrap() {
        let start = u32::MAX - 1;
        let mut f = Fake::new(4, start);
        // SAFETY: the fake outlives the handle.
        let mut c = unsafe { Consumer::new(f.ptrs()) };
        assert_eq!(c.available(64), 0);
        for i in 0..3u32 {
            f.desc[(start.wrapping_add(i) & 3) as usize] = 10 + u64::from(i);
        }
        f.idx[0].store(start.wrapping_add(3), Ordering::Release);
        assert_eq!(c.available(2), 2, "bounded by max");
        assert_eq!((c.read(0), c.read(1)), (10, 11));
        c.release(2);
        assert_eq!(f.cons(), start.wrapping_add(2));
        assert_eq!(c.available(64), 1, "the cached producer still holds one");
        assert_eq!(c.read(0), 12);
        c.release(1);
        assert_eq!(f.cons(), 1, "wrapped past u32::MAX");
        assert_eq!(c.available(64), 0);
        c.release(0);
        assert_eq!(f.cons(), 1);
    }
}
