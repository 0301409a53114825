//! The HA thread of a node: datagrams, timers, reach probes, replication records and
//! snapshots, in one loop.

use super::Node;
use crate::netdev;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Node {
    /// The HA thread: datagrams in (a bounded number per wake-up), exact timers, reach
    /// probes, the data plane's records, snapshots streamed from the table; transmits out.
    pub fn run_ha(self: Arc<Self>) {
        crate::diagnostics::Diagnostics::start(self.clone());
        self.web.attach(&self);
        let mut more = false;
        let mut filter_checked: Option<(Instant, u16)> = None;
        loop {
            let (mut fds, wake, port) = {
                let st = self.state.lock();
                (
                    st.ha.fds(),
                    st.ha.next_wakeup(Instant::now()),
                    st.ha.node.machine().port(),
                )
            };
            // Does the host's packet filter drop the heartbeat port? Checked now and then, and
            // when the port changes, without the node lock (it runs `nft`).
            if let Some(port) = port
                && filter_checked
                    .is_none_or(|(t, p)| p != port || t.elapsed() >= Duration::from_secs(30))
            {
                filter_checked = Some((Instant::now(), port));
                let warning = netdev::rules_dropping_udp_port(port)
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        format!(
                            "the packet filter drops the heartbeat port {port} ({}): heartbeats \
                             cannot arrive, the partner will take over",
                            r.join("; ")
                        )
                    });
                let mut st = self.state.lock();
                if warning.is_some() && st.ha.filter_warning != warning {
                    tracing::warn!("{}", warning.as_deref().unwrap_or_default());
                }
                st.ha.filter_warning = warning;
            }
            fds.push(self.waker.1.as_raw_fd());
            // Exact: the node says when its next timer is due (a streamed full sync paces
            // through the sender's timers).
            let cap = 1000;
            let timeout = if more {
                0
            } else {
                wake.map_or(cap, |w| {
                    let d = w.saturating_duration_since(Instant::now());
                    (d.as_micros().div_ceil(1000) as i32).min(cap)
                })
            };
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .map(|fd| libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: pfds is a valid array of pollfd for the call.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if pfds.last().is_some_and(|p| p.revents & libc::POLLIN != 0) {
                let mut sink = [0u8; 64];
                while (&self.waker.1).read(&mut sink).is_ok_and(|n| n > 0) {}
            }
            let now = Instant::now();
            let mut st = self.state.lock();
            // Timers first: a heartbeat due goes out whatever is waiting to be read.
            st.ha.handle_timeouts(now);
            self.flush(&mut st, now);
            more = st.ha.receive(now);
            st.ha.probe(now);
            self.flush(&mut st, now);
            let replicating = st.ha.replicating();
            self.engine
                .replication
                .enabled
                .store(replicating, std::sync::atomic::Ordering::Relaxed);
            let records = self.engine.replication.drain();
            st.ha.push_records(records);
            st.ha.handle_timeouts(now);
            self.flush(&mut st, now);
            // Instance 0's snapshot, else instance 1's (mutual HA). Streamed from the table
            // by the sender as it paces (Engine::snapshot_cursor): no copy of the table.
            let instance = if std::mem::take(&mut st.snapshot_wanted) {
                Some(0)
            } else if std::mem::take(&mut st.ha.second_snapshot_wanted) {
                Some(1)
            } else {
                None
            };
            if let Some(instance) = instance {
                let clusters: std::collections::HashSet<IpAddr> = st
                    .config
                    .clusters
                    .keys()
                    .copied()
                    .filter(|&c| st.ha.snapshot_takes(instance, c))
                    .collect();
                let queued = self.engine.replication.drain();
                st.ha.push_records(queued);
                let cursor = self.engine.snapshot_cursor(move |c| clusters.contains(&c));
                st.ha
                    .instance_mut(instance)
                    .full_sync_from(Instant::now(), Box::new(cursor));
                self.flush(&mut st, now);
            }
        }
    }
}
