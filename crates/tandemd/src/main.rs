//! `tandemd`: the Tandem daemon.
//!
//! ```text
//! tandemd [--config FILE] [--config-dir DIR] [--log-dir DIR] [--socket PATH] [--workers N] [--ring v2|v3] [--interface IF]
//! ```
//! Starts a node from a command file (the dscontrol grammar, one command per line; without
//! `--config`, `default.cfg` of the configuration directory if it exists), forwards
//! cluster traffic at packet level on the interface that holds the nfa, and takes commands
//! from `tandemctl` on a Unix socket.

mod admin;
mod afpacket;
mod afxdp;
mod dataplane;
mod diagnostics;
mod files;
mod ha;
mod halog;
mod health;
mod keys;
mod limits;
mod mutual;
mod netdev;
mod node;
mod reach;

mod report;
mod scripts;
mod web;

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "tandemd",
    version,
    about = "Tandem: a high-availability layer-4 load balancer"
)]
struct Args {
    /// Command file to load at start (all or nothing); without it, `default.cfg` of the
    /// configuration directory is loaded if it exists.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Directory of the files `file save|newload|appendload|delete NAME` write and read.
    #[arg(long, default_value = files::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Directory of the HA logs (ha.log, ha.out, ha.result; created with mode 0750).
    #[arg(long, default_value = halog::DEFAULT_LOG_DIR)]
    log_dir: PathBuf,
    /// Admin socket for tandemctl.
    #[arg(long, short, default_value = "/run/tandem/tandemd.sock")]
    socket: PathBuf,
    /// Forwarding worker threads (one packet ring each, flow-hash fanout).
    #[arg(long, default_value_t = default_workers())]
    workers: usize,
    /// Receive ring layout: v2 (a slot per frame, lowest latency) or v3 (blocks).
    #[arg(long, default_value = "v2")]
    ring: afpacket::RingVersion,
    /// Forward on this interface instead of the one that holds the nfa.
    #[arg(long)]
    interface: Option<String>,
    /// Gratuitous ARPs sent per address when forwarding starts.
    #[arg(long, default_value_t = 3)]
    garp_count: u32,
    /// Milliseconds between those gratuitous ARPs.
    #[arg(long, default_value_t = 200)]
    garp_interval_ms: u64,
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("tandemd: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    halog::install(&args.log_dir);
    halog::event(&format!("tandemd {} starting", env!("CARGO_PKG_VERSION")));
    let node = Arc::new(node::Node::new(node::NodeOptions {
        workers: args.workers,
        ring: afpacket::RingConfig {
            version: args.ring,
            ..Default::default()
        },
        interface: args.interface.clone(),
        garp_count: args.garp_count.max(1),
        garp_interval: Duration::from_millis(args.garp_interval_ms),
        config_dir: files::ConfigDir::new(args.config_dir.clone()),
    }));
    match &args.config {
        Some(path) => {
            node.load_file(path)?;
            tracing::info!(config = %path.display(), "configuration loaded");
        }
        // As IBM's dsserver: default.cfg of the configuration directory, if there is one.
        None => {
            let path = args.config_dir.join(files::DEFAULT_CFG);
            if std::fs::symlink_metadata(&path).is_ok() {
                node.load_file(&path)?;
                tracing::info!(config = %path.display(), "default.cfg loaded");
            } else {
                tracing::info!(
                    config_dir = %args.config_dir.display(),
                    "no default.cfg in the configuration directory: starting with an empty configuration"
                );
            }
        }
    }
    node.health.start(node.clone())?;
    let admin = admin::serve(&args.socket, node.clone())?;
    {
        let node = node.clone();
        std::thread::Builder::new()
            .name("ha".into())
            .spawn(move || node.run_ha())?;
    }
    tracing::info!(socket = %args.socket.display(), log_dir = %args.log_dir.display(), config_dir = %node.opts.config_dir.path().display(), "tandemd ready");
    wait_for_signal();
    tracing::info!(admin_socket = ?admin.counts(), "stopping");
    node.shutdown();
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    // SAFETY: building a signal set and blocking those signals for this (main) thread before
    // waiting for them synchronously; other threads inherit the mask only if spawned later, so
    // we also tolerate the signal arriving at another thread by using sigwait on the set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
