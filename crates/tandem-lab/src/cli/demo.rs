//! `tandem-lab demo`: a guided demonstration of Tandem in a lab. Not wired yet.

use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `tandem-lab demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> Result<ExitCode> {
    println!("demo: not yet wired");
    Ok(ExitCode::SUCCESS)
}
