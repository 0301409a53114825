//! The data plane's threads: ring workers and housekeeping, around the shared [`Engine`].

use crate::afpacket::{Disposition, FrameMeta, Ring, RingConfig, TxSocket};
use crate::netdev::Interface;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tandem_core::forward::{Engine, RxMeta, Verdict};

/// Running workers bound to one interface. Dropping it stops them.
pub struct Dataplane {
    pub interface: Interface,
    pub workers: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub tx: Arc<TxSocket>,
}

impl Dataplane {
    /// Opens one ring per worker on `interface` (one fanout group) and starts the threads.
    pub fn start(
        engine: Arc<Engine>,
        interface: Interface,
        workers: usize,
        ring: RingConfig,
    ) -> Result<Dataplane> {
        let workers = workers.max(1);
        // Ring slots that hold the interface's largest frame (jumbo frames too).
        let ring = RingConfig {
            mtu: interface.mtu,
            ..ring
        };
        let group = (std::process::id() & 0xffff) as u16;
        let stop = Arc::new(AtomicBool::new(false));
        let tx = Arc::new(TxSocket::open(interface.index).context("opening the transmit socket")?);
        let mut rings = Vec::new();
        for _ in 0..workers {
            rings.push(
                Ring::open(interface.index, (workers > 1).then_some(group), ring)
                    .with_context(|| format!("opening a packet ring on {}", interface.name))?,
            );
        }
        let mut threads = Vec::new();
        for (i, ring) in rings.into_iter().enumerate() {
            let engine = engine.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker(ring, engine, stop))
                    .context("spawning a worker")?,
            );
        }
        {
            let engine = engine.clone();
            let stop = stop.clone();
            let tx = tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("housekeeping".into())
                    .spawn(move || housekeeping(engine, tx, stop))
                    .context("spawning housekeeping")?,
            );
        }
        tracing::info!(interface = %interface.name, workers, ring = ?ring.version, "data plane started");
        Ok(Dataplane {
            interface,
            workers,
            stop,
            threads,
            tx,
        })
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
    }
}

fn worker(mut ring: Ring, engine: Arc<Engine>, stop: Arc<AtomicBool>) {
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
            match engine.handle(frame, meta, now, &mut extra) {
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

fn housekeeping(engine: Arc<Engine>, tx: Arc<TxSocket>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let (frames, _ended) = engine.housekeeping(Instant::now());
        for f in frames {
            let _ = tx.send(&f);
        }
    }
}
