//! `tandem-gwm`: a small SASP (RFC 4678) Group Workload Manager.
//!
//! For users without z/OS and for Tandem's tests: load balancers connect to it (TCP, default
//! port 3860), set their state and register their members; it probes every registered member
//! (TCP connect or HTTP GET), reads a load signal per member (an HTTP path on the member or a
//! command), computes weights (0..65535, inversely to the load, 0 when a member is out of
//! contact or quiesced) and pushes them or answers polls, all or only the changed members as
//! each load balancer asked. The protocol rules are in `tandem_core::sasp::gwm`.
//!
//! ```text
//! tandem-gwm run --listen 0.0.0.0:3860 --status 127.0.0.1:3861 --member-check http \
//!     --load-url-path /load
//! tandem-gwm status --status 127.0.0.1:3861 [--json]
//! ```

mod fault;
mod probe;
mod server;
mod status;
mod tls;
mod weights_file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use probe::{LoadSource, MemberCheck};

const FAULT_HELP: &str = "Fault injection for tests, applied per connection to the messages the \
GWM sends once --fault-after messages went out unchanged: `close` (close the connection), \
`close-after=N` (the same after N messages), \
`silent` (send nothing more, keep the connection), `bad-version` (version 2 in every header), \
`malformed` (weights messages announce one group more than they hold), `oversized` (a header \
announcing 2^31-1 bytes, then nothing), `slow=MS` (hold every message MS milliseconds)";

#[derive(Parser)]
#[command(
    name = "tandem-gwm",
    version,
    about = "A small SASP (RFC 4678) Group Workload Manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Accept load balancers, probe their members, send them weights.
    Run(Box<RunArgs>),
    /// Show the view of a running tandem-gwm (from its --status endpoint).
    Status {
        /// The --status address of the running tandem-gwm.
        #[arg(long, default_value = "127.0.0.1:3861")]
        status: SocketAddr,
        /// Print the JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address and port load balancers connect to.
    #[arg(long, default_value = "0.0.0.0:3860")]
    listen: SocketAddr,
    /// Seconds between two probes of a member; also the poll interval suggested to pulling
    /// load balancers.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,
    /// Pushing load balancers get Send Weights at least this often (seconds), and at once
    /// when a weight changes.
    #[arg(long, default_value_t = 10.0)]
    push_interval: f64,
    /// Seconds a disconnected load balancer's registrations are kept.
    #[arg(long, default_value_t = 60.0)]
    lb_grace: f64,
    /// Seconds a probe (check or load read) may take (default: the interval, at most 5).
    #[arg(long)]
    probe_timeout: Option<f64>,
    /// Address of the status endpoint (HTTP, `GET /status` answers JSON); none if absent.
    #[arg(long)]
    status: Option<SocketAddr>,
    /// How a member's contact is checked.
    #[arg(long, value_enum, default_value = "tcp")]
    member_check: MemberCheck,
    /// Load signal: `GET PATH` on the member answers a number.
    #[arg(long, conflicts_with = "load_command")]
    load_url_path: Option<String>,
    /// Load signal: this shell command, run with MEMBER_ADDRESS, MEMBER_PORT and
    /// MEMBER_PROTOCOL set, prints a number.
    #[arg(long)]
    load_command: Option<String>,
    /// Operator overrides, `ADDRESS PORT WEIGHT [quiesce]` or `ADDRESS PORT quiesce` lines,
    /// re-read when the file changes.
    #[arg(long)]
    weights_file: Option<PathBuf>,
    #[arg(long, help = FAULT_HELP)]
    fault: Option<String>,
    /// TLS toward load balancers: this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Messages sent normally on each connection before --fault applies.
    #[arg(long, default_value_t = 0)]
    fault_after: u64,
}

fn seconds(name: &str, v: f64, min: f64) -> Result<Duration> {
    if !v.is_finite() || v < min || v > 86_400.0 {
        bail!("--{name} {v}: wants seconds from {min} to 86400");
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Status { status, json } => {
            let v = status::fetch(status, Duration::from_secs(5))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", status::render(&v));
            }
            Ok(())
        }
        Command::Run(a) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let interval = seconds("interval", a.interval, 0.1)?;
            let (fault, fault_after) = match a.fault.as_deref().map(fault::parse_arg).transpose()? {
                Some((f, Some(n))) => (Some(f), n),
                Some((f, None)) => (Some(f), a.fault_after),
                None => (None, a.fault_after),
            };
            let opts = server::RunOptions {
                listen: a.listen,
                interval,
                push_interval: seconds("push-interval", a.push_interval, 0.1)?,
                lb_grace: seconds("lb-grace", a.lb_grace, 0.0)?,
                probe_timeout: match a.probe_timeout {
                    Some(t) => seconds("probe-timeout", t, 0.01)?,
                    None => interval.min(Duration::from_secs(5)),
                },
                status: a.status,
                member_check: a.member_check,
                load: match (a.load_url_path, a.load_command) {
                    (Some(path), _) => {
                        if !path.starts_with('/') || path.contains(char::is_whitespace) {
                            bail!("--load-url-path {path:?}: wants a path like /load");
                        }
                        LoadSource::Url(path)
                    }
                    (None, Some(cmd)) => LoadSource::Command(cmd),
                    (None, None) => LoadSource::None,
                },
                weights_file: a.weights_file,
                fault,
                fault_after,
                tls: match (&a.tls_cert, &a.tls_key) {
                    (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
                    _ => None,
                },
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(server::run(opts))
        }
    }
}
