//! A lab of network-namespace hosts for Tandem's integration tests, demo and benchmarks.
//!
//! # The picture
//!
//! ```text
//!   <id>-sw (switch namespace)            <id>-c1            <id>-s1
//!   ┌──────────────────────────┐         ┌────────┐         ┌────────┐
//!   │ br0 ── c1 ──────────────────veth──── eth0   │         │        │
//!   │    └── s1 ──────────────────veth─────────────────────── eth0   │
//!   └──────────────────────────┘         └────────┘         └────────┘
//! ```
//!
//! A [`Lab`] owns one *switch* namespace holding a Linux bridge `br0`, and any number of
//! [`Host`]s, each a namespace of its own whose `eth0` is one end of a veth pair; the other end
//! (named after the host) is a port of `br0`. Nothing is ever created in the root namespace.
//! Every name starts with [`LAB_PREFIX`] and embeds the creating process id, so concurrent labs
//! never collide and leftovers of a crashed run can be recognised ([`cleanup_leftovers`]).
//!
//! Hosts may only use documentation addresses (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32); the lab refuses anything else, and the traffic clients
//! refuse to send to anything but those ranges and loopback ([`check_lab_ip`]).
//!
//! IPv6 is off in a host unless it is given an IPv6 address (`"2001:db8::10/64"`, in
//! [`Lab::add_host`] or [`Host::add_address`]); then it is on without duplicate address
//! detection (addresses are usable at once), router advertisements or autoconfiguration.
//! [`cluster::ClusterLab::dual_stack`] gives every host of the standard lab its IPv6 twin
//! ([`v6_twin`]: `192.0.2.10` → `2001:db8::10`), and the servers answer on both families.
//!
//! # Cleanup
//!
//! Dropping a [`Lab`] (also while unwinding from a panic) kills every process it spawned
//! (whole process groups, then anything else still inside its namespaces) and deletes its
//! namespaces, which removes the veths and the bridge. [`Lab::new`] also installs a handler
//! for SIGINT/SIGTERM/SIGHUP ([`install_signal_cleanup`]) that cleans every live lab of the
//! process before exiting, and removes leftovers of labs whose creating process is dead.
//!
//! # Traffic
//!
//! [`traffic`] holds std-only servers ([`serve`]) and clients ([`http_load`], [`udp_request`],
//! [`LongLived`], [`LongLivedSet`]). They use whatever network namespace the calling thread is
//! in: run them with [`Host::in_ns`] (a fresh thread that joined the host's namespace; threads
//! it spawns and sockets it creates stay there), or as a process with [`Host::spawn`] running
//! the `tandem-lab` binary's subcommands.
//!
//! [`flood`] sends junk UDP and ICMP floods with `sendmmsg` (hardening tests), and
//! [`capture`] records ARP frames without tcpdump ("no gratuitous ARP").
//!
//! # Tests
//!
//! Lab tests need root and must run one at a time: take [`serial`] first thing in every test
//! (serialises tests within one process) and run them under the nextest test group `lab`
//! (serialises test processes; see `.config/nextest.toml` at the workspace root).
//!
//! ```no_run
//! use std::time::Duration;
//! let _guard = tandem_lab::serial();
//! let lab = tandem_lab::Lab::new("doc").expect("lab (needs root)");
//! let client = lab.add_host("c1", &["192.0.2.10/24"]).unwrap();
//! let server = lab.add_host("s1", &["192.0.2.21/24"]).unwrap();
//! let bin = tandem_lab::find_binary("tandem-lab").unwrap();
//! let mut srv = server
//!     .spawn([bin.to_str().unwrap(), "serve", "--name", "s1", "--http", "80"])
//!     .unwrap();
//! srv.wait_for_log("ready", Duration::from_secs(10)).unwrap();
//! let report = client
//!     .http_load("192.0.2.21:80".parse().unwrap(), 100, 10, Duration::from_secs(5))
//!     .unwrap();
//! assert_eq!(report.ok, 100);
//! ```

mod addr;
pub mod bench;
pub mod capture;
pub mod cluster;
pub mod flood;
pub mod health;
mod lab;
mod netns;
pub mod packetio;
mod process;
mod signals;
pub mod traffic;
pub mod twotier;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use addr::{check_lab_ip, check_target, mac_for, v6_twin};
pub use lab::{Host, LAB_PREFIX, Lab, cleanup_leftovers, remove_leftovers, remove_stale_log_dirs};
pub use packetio::{PacketIo, packetio, set_packetio};
pub use process::LabProcess;
pub use signals::{install_signal_cleanup, interrupted};
pub use traffic::{
    ConnStats, Echo, Ended, LatencySummary, LoadReport, LongLived, LongLivedSet, ServeConfig,
    Server, ServerStats, http_get, http_load, serve, udp_request,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// Process-wide lock that lab tests take first, so that tests sharing a process (plain
/// `cargo test`) build their labs one at a time. A test that panicked while holding it does not
/// poison it for the others.
///
/// Across processes (nextest runs every test in its own process) use the nextest test group
/// `lab` from `.config/nextest.toml`.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `cond` (every 20 ms at first, backing off to 200 ms) until it returns true, or fails
/// after `timeout` with an error naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if cond() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Finds an executable of this workspace (`tandemd`, `tandemctl`, `tandem-lab`, ...).
///
/// Looks in `$TANDEM_BIN_DIR` if set (and only there), else in the directory of the current
/// executable and in its parent (integration tests run from `target/<profile>/deps/`, the
/// binaries are in `target/<profile>/`).
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("TANDEM_BIN_DIR") {
        dirs.push(PathBuf::from(dir));
    } else {
        let exe = std::env::current_exe().context("current_exe")?;
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    for dir in &dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "executable `{name}` not found in {dirs:?} (build it first, e.g. `cargo build -p <crate>`, \
         or point TANDEM_BIN_DIR at the directory holding it)"
    )
}

/// Cleans up every lab of this process that has not been dropped yet (what the signal
/// handler does); returns how many had anything to clean. The `tandem-lab` binary calls this
/// on its way out. Labs cleaned this way become unusable.
pub fn cleanup_live_labs() -> usize {
    lab::cleanup_registered()
}
