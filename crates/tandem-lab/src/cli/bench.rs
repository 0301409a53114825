//! `tandem-lab bench`: throughput and latency of Tandem in a lab. Not wired yet.

use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `tandem-lab bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<ExitCode> {
    println!("bench: not yet wired");
    Ok(ExitCode::SUCCESS)
}
