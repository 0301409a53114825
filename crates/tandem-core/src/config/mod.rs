//! Configuration model and dscontrol grammar.
//!
//! * [`model`]: the plain data (executor → cluster → port → server, plus [`HaConfig`]).
//! * [`parse`] / [`parse_line`] / [`parse_words`]: dscontrol words → [`Command`] (syntax and value ranges).
//! * [`Config::apply`]: runs a [`Command`] against a [`Config`], atomically, and checks the
//!   rules that need the configuration (the cluster exists, the weight is within the port's
//!   weightbound, NAT servers have a valid returnaddress, ...).
//! * [`load_file`] / [`Config::to_commands`]: a configuration file (a script of dscontrol
//!   lines) in and out, in IBM's `file save` order.
//!
//! Everything here is sans-IO: files come in and go out as text.

pub mod appliance;
mod apply;
mod file;
mod grammar;
pub mod health;
pub mod model;

#[cfg(test)]
mod fuzz_regressions;
#[cfg(test)]
mod tests;

pub use apply::{Applied, ConfigError, Resolved};
pub use file::{
    CommandError, FileError, FileSource, Loaded, MAX_FILE_DEPTH, NoFiles, load_file, load_file_with,
};
pub use grammar::{
    AdvisorSetting, Appliance, ApplianceOptions, ByRole, Command, DEFAULT_HA_PORT, ExecutorSetting,
    GwmSelector, MAX_ADVISOR_TEXT, MAX_CUSTOM_ADVISOR_NAME, MAX_FILE_NAME, MAX_FINTIMEOUT,
    MAX_LABEL, MAX_RETRIES, MAX_SECONDS, MAX_SMOOTHING, MIN_SECONDS, NoResolver, ParseError,
    PortOptions, PortTarget, Resolver, ServerOptions, ServerTarget, Targets, check_file_name,
    is_mutation, parse, parse_line, parse_line_resolving, parse_resolving, parse_words,
    parse_words_resolving, split_line, syntax,
};
pub use health::*;
pub use model::*;

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A whole configuration: what `file save` writes and `file newload` reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Config {
    pub executor: Executor,
    /// Clusters by address.
    pub clusters: BTreeMap<IpAddr, Cluster>,
    pub ha: HaConfig,
    /// Advisors, manager and SASP.
    pub health: HealthConfig,
}
