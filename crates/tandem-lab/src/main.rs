//! `tandem-lab`: network-namespace lab for Tandem.
//!
//! Subcommands: traffic tools meant to run inside lab hosts (`serve`, `http-load`,
//! `udp-request`, `long-lived`), housekeeping (`cleanup`), and the `demo` and `bench`
//! scenarios. To add a subcommand: add a variant to [`Command`] (its doc comment is the help
//! text), an args struct, and an arm in [`dispatch`]; larger ones get a module under
//! `src/cli/` like `demo` and `bench`.
//!
//! Labs made by this binary are removed on exit, on panic (Drop during unwinding plus a final
//! sweep in `main`) and on SIGINT/SIGTERM/SIGHUP (the handler installed by `Lab::new`).

mod cli {
    pub mod bench;
    pub mod bench_ha;
    pub mod bench_health;
    pub mod demo;
}

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tandem-lab",
    version,
    about = "Network-namespace lab for Tandem: test servers, load clients, demo, bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run test servers (HTTP, UDP responder, TCP line echo) on 0.0.0.0 until killed.
    Serve(ServeArgs),
    /// Send HTTP GETs, each on a new TCP connection, and report who answered.
    HttpLoad(HttpLoadArgs),
    /// Send one UDP datagram and print the answer.
    UdpRequest(UdpRequestArgs),
    /// Hold echo connections open for a while, pinging, and report how they fared.
    LongLived(LongLivedArgs),
    /// Remove leftover lab namespaces (and their processes) of dead lab runs.
    Cleanup(CleanupArgs),
    /// Demonstrate Tandem in a lab.
    Demo(cli::demo::DemoArgs),
    /// Benchmark Tandem in a lab.
    Bench(cli::bench::BenchArgs),
    /// Benchmark Tandem's high availability (failover, false takeovers, replication) in a lab.
    BenchHa(cli::bench_ha::BenchHaArgs),
    /// Benchmark health checking of 2 000 servers: tandemd's http advisor beside HAProxy and
    /// keepalived (CPU, memory, time from a server's death to its weight 0).
    BenchHealth(cli::bench_health::BenchHealthArgs),
    /// Answer HTTP on every address of this host for each port, on one epoll thread (the
    /// servers of `bench-health`).
    ServeMany(ServeManyArgs),
}

#[derive(Args, Debug)]
struct ServeManyArgs {
    /// Ports to listen on (0.0.0.0), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    ports: Vec<u16>,
    /// Print the request counter every this many seconds; 0 = never.
    #[arg(long, default_value_t = 0)]
    stats_secs: u64,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Name put in every answer (`server=NAME`).
    #[arg(long)]
    name: String,
    /// HTTP port (repeatable).
    #[arg(long = "http", value_name = "PORT")]
    http: Vec<u16>,
    /// UDP responder port (repeatable).
    #[arg(long = "udp", value_name = "PORT")]
    udp: Vec<u16>,
    /// TCP line-echo port (repeatable).
    #[arg(long = "echo", value_name = "PORT")]
    echo: Vec<u16>,
    /// Silent TCP port: accepts and never answers (repeatable).
    #[arg(long = "silent", value_name = "PORT")]
    silent: Vec<u16>,
    /// DNS port (UDP; repeatable): answers every query, `A` with 192.0.2.53.
    #[arg(long = "dns", value_name = "PORT")]
    dns: Vec<u16>,
    /// File whose first word `GET /load` answers (re-read every request; 0 without it).
    #[arg(long)]
    load_file: Option<std::path::PathBuf>,
    /// Print counters (as JSON) every this many seconds when they changed; 0 = never.
    #[arg(long, default_value_t = 0)]
    stats_secs: u64,
}

#[derive(Args, Debug)]
struct HttpLoadArgs {
    /// IP:PORT to load.
    #[arg(long)]
    target: SocketAddr,
    /// Number of requests.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Requests in flight at once (threads).
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Path to GET (`/bytes/N` adds N bytes of filler to the answer).
    #[arg(long, default_value = "/")]
    path: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct UdpRequestArgs {
    /// IP:PORT to ask.
    #[arg(long)]
    target: SocketAddr,
    /// Datagram payload.
    #[arg(long, default_value = "hello")]
    payload: String,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

#[derive(Args, Debug)]
struct LongLivedArgs {
    /// IP:PORT of an echo server.
    #[arg(long)]
    target: SocketAddr,
    /// Number of connections.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Milliseconds between pings on each connection.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// How long to keep them open, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Print the records as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct CleanupArgs {
    /// Also remove labs whose creating process is still running.
    #[arg(long)]
    all: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = std::panic::catch_unwind(|| dispatch(cli));
    // Labs dropped while unwinding have cleaned up already; sweep any that escaped Drop.
    tandem_lab::cleanup_live_labs();
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("tandem-lab: error: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::HttpLoad(args) => http_load(args),
        Command::UdpRequest(args) => udp_request(args),
        Command::LongLived(args) => long_lived(args),
        Command::Cleanup(args) => cleanup(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::BenchHa(args) => cli::bench_ha::run(args),
        Command::BenchHealth(args) => cli::bench_health::run(args),
        Command::ServeMany(args) => serve_many(args),
    }
}

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let config = tandem_lab::ServeConfig {
        name: args.name,
        http: args.http,
        udp: args.udp,
        echo: args.echo,
        silent: args.silent,
        dns: args.dns,
        load_file: args.load_file,
    };
    let server = tandem_lab::serve(&config)?;
    let ports = |addrs: &[SocketAddr]| addrs.iter().map(|a| a.port()).collect::<Vec<_>>();
    println!(
        "serve {} ready: http {:?} udp {:?} echo {:?} silent {:?} dns {:?}",
        server.name(),
        ports(server.http_addrs()),
        ports(server.udp_addrs()),
        ports(server.echo_addrs()),
        ports(server.silent_addrs()),
        ports(server.dns_addrs())
    );
    std::io::stdout().flush()?;
    let mut last = server.stats();
    loop {
        if args.stats_secs == 0 {
            std::thread::park();
            continue;
        }
        std::thread::sleep(Duration::from_secs(args.stats_secs));
        let now = server.stats();
        if now != last {
            println!("stats: {}", serde_json::to_string(&now)?);
            std::io::stdout().flush()?;
            last = now;
        }
    }
}

fn serve_many(args: ServeManyArgs) -> Result<ExitCode> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addrs, stats, _thread) = tandem_lab::bench::many::serve_many(&args.ports, stop)?;
    println!("serve-many ready: {} ports {:?}", addrs.len(), args.ports);
    std::io::stdout().flush()?;
    loop {
        if args.stats_secs == 0 {
            std::thread::park();
            continue;
        }
        std::thread::sleep(Duration::from_secs(args.stats_secs));
        let r = stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        let d = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
        println!("stats: requests {r} dropped {d}");
        std::io::stdout().flush()?;
    }
}

fn http_load(args: HttpLoadArgs) -> Result<ExitCode> {
    let report = tandem_lab::traffic::http_load_path(
        args.target,
        &args.path,
        args.count,
        args.concurrency,
        Duration::from_millis(args.timeout_ms),
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(code(report.all_ok()))
}

fn udp_request(args: UdpRequestArgs) -> Result<ExitCode> {
    let answer = tandem_lab::udp_request(
        args.target,
        &args.payload,
        Duration::from_millis(args.timeout_ms),
    )?;
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

fn long_lived(args: LongLivedArgs) -> Result<ExitCode> {
    let set = tandem_lab::LongLivedSet::start(
        args.target,
        args.connections,
        Duration::from_millis(args.interval_ms),
    )?;
    let until = Instant::now() + Duration::from_secs(args.duration_secs);
    while Instant::now() < until && !tandem_lab::interrupted() {
        std::thread::sleep(
            Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
        );
    }
    let stats = set.stop();
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        for c in &stats {
            println!(
                "c{}: server {:?} echoes {} longest gap {:.3}s max rtt {:.3}s ended {}",
                c.index,
                c.server.as_deref().unwrap_or("-"),
                c.echoes,
                c.longest_gap.as_secs_f64(),
                c.max_rtt.as_secs_f64(),
                c.ended.as_ref().map_or("no".to_string(), |e| e.to_string()),
            );
        }
    }
    Ok(code(stats.iter().all(|c| c.is_healthy() && c.echoes > 0)))
}

fn cleanup(args: CleanupArgs) -> Result<ExitCode> {
    let removed = tandem_lab::remove_leftovers(args.all)?;
    for ns in &removed {
        println!("removed namespace {ns}");
    }
    let dirs = tandem_lab::remove_stale_log_dirs()?;
    for dir in &dirs {
        println!("removed log directory {}", dir.display());
    }
    if removed.is_empty() && dirs.is_empty() {
        println!("nothing to clean up");
    }
    Ok(ExitCode::SUCCESS)
}
