//! Tests of the grammar, `Config::apply`, file loading and saving, by concern.

mod advisor;
mod appliance;
mod apply;
mod diagnostics;
mod files;
mod grammar;
mod health;
mod highavailability;
mod ibm;
mod labels;
mod manager;
mod properties;
mod quoting;

use super::*;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Parses a line that must hold a command.
fn cmd(line: &str) -> Command {
    match parse_line(line) {
        Ok(Some(c)) => c,
        other => panic!("{line:?}: {other:?}"),
    }
}

/// The parse error of a line, as text.
fn parse_err(line: &str) -> String {
    match parse_line(line) {
        Err(e) => e.to_string(),
        other => panic!("{line:?} should not parse: {other:?}"),
    }
}

/// Applies a line that must succeed.
fn run(config: &mut Config, line: &str) -> Applied {
    match config.apply_line(line) {
        Ok(Some(a)) => a,
        other => panic!("{line:?}: {other:?}"),
    }
}

/// Applies a line that must fail, checks that nothing changed, and returns the error text.
fn fail(config: &mut Config, line: &str) -> String {
    let before = config.clone();
    let err = match config.apply_line(line) {
        Err(e) => e.to_string(),
        other => panic!("{line:?} should fail: {other:?}"),
    };
    assert_eq!(
        *config, before,
        "{line:?} failed but changed the configuration"
    );
    err
}

fn config(lines: &str) -> Config {
    match load_file(lines, "test.cfg", &Config::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// Two clusters, ports 80 and 443 on the first, port 80 on the second, two servers each.
fn sample() -> Config {
    config(
        "executor set nfa 192.0.2.2
         cluster add 192.0.2.100+192.0.2.101
         port add 192.0.2.100@80+443
         port add 192.0.2.101@80
         server add 192.0.2.100@80+443@192.0.2.11+192.0.2.12
         server add 192.0.2.101@80@192.0.2.11+192.0.2.13",
    )
}

fn server(config: &Config, c: &str, p: u16, s: &str) -> Server {
    config.clusters[&ip(c)].ports[&p].servers[&ip(s)].clone()
}

fn port(config: &Config, c: &str, p: u16) -> Port {
    config.clusters[&ip(c)].ports[&p].clone()
}

/// An advisor key: `kind` on `cluster@port`, or on `port` of every cluster.
fn key(kind: AdvisorKind, cluster: Option<&str>, port: u16) -> AdvisorKey {
    AdvisorKey {
        kind,
        cluster: cluster.map(ip),
        port,
    }
}
