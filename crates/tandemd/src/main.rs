//! `tandemd`: the Tandem daemon.
//!
//! ```text
//! tandemd [--config FILE] [--config-dir DIR] [--log-dir DIR] [--socket PATH] [--workers N] [--ring v2|v3] [--interface IF]
//!         [--log-target auto|journald|stderr]
//! tandemd --check-config FILE [--config-dir DIR]
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
mod logging;
mod mutual;
mod netdev;
mod node;
mod reach;

mod report;
mod scripts;
mod systemd;
mod web;

use anyhow::Result;
use clap::{CommandFactory, Parser};
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
    /// Where the log goes: journald when stderr is systemd's journal stream (auto), or as said.
    #[arg(long, value_enum, default_value = "auto")]
    log_target: logging::Target,
    /// Validate FILE as the daemon would load it at start (same loader, host names resolved,
    /// nested files from --config-dir), print "FILE: OK (N commands)" or the error with
    /// FILE:LINE, and exit 0 or 1 without starting anything.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Write tandemd's man page (roff, section 8) to stdout.
    #[arg(long, hide = true)]
    manpage: bool,
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
}

fn main() {
    // SAFETY: the first thing the process does; no other thread exists yet.
    unsafe { systemd::init() };
    let args = Args::parse();
    if args.manpage {
        std::process::exit(match manpage() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tandemd: {e:#}");
                1
            }
        });
    }
    if let Some(file) = &args.check_config {
        std::process::exit(check_config(file, &args.config_dir));
    }
    let target = logging::init(args.log_target);
    tracing::debug!(log_target = target, "log target");
    if let Err(e) = run(args) {
        tracing::error!("{e:#}");
        eprintln!("tandemd: {e:#}");
        std::process::exit(1);
    }
}

/// `--check-config FILE`: the start loader alone; prints the verdict, returns the exit code.
fn check_config(file: &std::path::Path, config_dir: &std::path::Path) -> i32 {
    let checked = files::read_start_config(file).and_then(|text| {
        let dir = files::ConfigDir::new(config_dir.to_path_buf());
        let loaded = files::load(
            &dir,
            &text,
            &file.display().to_string(),
            &Default::default(),
        )?;
        // What the first commit would refuse without touching the host: mutual HA groups.
        tandem_core::ha::mutual::Groups::from_config(&loaded.config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let commands = text
            .lines()
            .filter(|l| tandem_core::config::split_line(l).is_ok_and(|w| !w.is_empty()))
            .count();
        Ok((loaded.warnings, commands))
    });
    match checked {
        Ok((warnings, commands)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            println!("{}: OK ({commands} commands)", file.display());
            0
        }
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// tandemd.8, from the same argument definitions the daemon parses.
fn manpage() -> Result<()> {
    let cmd = Args::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    Ok(())
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
    systemd::ready(&format!("ready: admin socket {}", args.socket.display()));
    wait_for_signal();
    systemd::stopping();
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
