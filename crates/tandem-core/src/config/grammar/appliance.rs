//! `ha ...`: the appliance commands, modelled on IBM Workload Deployer's startHA, configureHA,
//! stopHA, HAstatus and failover. Each changing one expands to ordinary `highavailability` and
//! `executor` statements (see [`crate::config::appliance`]).
//!
//! ```text
//! ha start primary|secondary floating ADDR[+ADDR...] local ADDR partner ADDR
//!     [sync LOCAL PARTNER] [pinginterval SECONDS] [port N] [recovery auto|manual]
//! ha configure [floating ADDR[+ADDR...]] [local ADDR] [partner ADDR] [sync LOCAL PARTNER]
//!     [pinginterval SECONDS] [port N] [recovery auto|manual]
//! ha stop | status | failover
//! ```
//!
//! Workload Deployer's option names are aliases: `floatingip` = `floating`, `primaryip` /
//! `secondaryip` = `local` / `partner` on the primary (the other way round on the secondary),
//! `primarysyncip` / `secondarysyncip` likewise for the `sync` pair. In `ha start` they are
//! resolved at once (the role is in the command); in `ha configure` they stay as written and
//! are resolved against the configured role when applied.

use super::super::model::{Recovery, Role};
use super::syntax::APPLIANCE_VERBS;
use super::words::{Words, parse_address, parse_port, parse_seconds, set_once};
use super::{Command, ParseError};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// An `ha` command.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Appliance {
    /// `ha start primary|secondary OPTIONS`: stand-alone → one node of a pair.
    Start {
        role: Role,
        options: ApplianceOptions,
    },
    /// `ha configure OPTIONS`: changes a running pair in place.
    Configure(ApplianceOptions),
    /// `ha stop`: back to stand-alone.
    Stop,
    /// `ha status` (query).
    Status,
    /// `ha failover`: a controlled handover (an action).
    Failover,
}

/// The options of `ha start` and `ha configure`. Empty / `None` = not given.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ApplianceOptions {
    /// The floating addresses: cluster addresses, which move with Active.
    pub floating: Vec<IpAddr>,
    /// This node's address on the public network (the first heartbeat pair's source).
    pub local: Option<IpAddr>,
    /// The partner's address on the public network (heartbeat destination, reach target).
    pub partner: Option<IpAddr>,
    /// The sync network: (this node, the partner), the second heartbeat pair.
    pub sync: Option<(IpAddr, IpAddr)>,
    /// Seconds of silence on both networks before the partner is declared dead (hatimeout).
    pub pinginterval: Option<f64>,
    /// Heartbeat UDP port (`ha start` default 20001).
    pub port: Option<u16>,
    /// Recovery strategy (`ha start` default manual).
    pub recovery: Option<Recovery>,
    /// Workload Deployer spellings kept for `ha configure` (resolved by role when applied).
    pub by_role: ByRole,
}

/// `primaryip`, `secondaryip`, `primarysyncip`, `secondarysyncip` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ByRole {
    pub primary: Option<IpAddr>,
    pub secondary: Option<IpAddr>,
    pub primary_sync: Option<IpAddr>,
    pub secondary_sync: Option<IpAddr>,
}

impl ByRole {
    fn is_empty(&self) -> bool {
        *self == ByRole::default()
    }
}

/// Default heartbeat port of `ha start`.
pub const DEFAULT_HA_PORT: u16 = 20001;

const ROLES: &[&str] = &["primary", "secondary"];
const RECOVERIES: &[&str] = &["auto", "manual"];
const OPTIONS: &[&str] = &[
    "floating",
    "floatingip",
    "local",
    "partner",
    "sync",
    "pinginterval",
    "port",
    "recovery",
    "primaryip",
    "secondaryip",
    "primarysyncip",
    "secondarysyncip",
];

pub(super) fn parse_ha(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let cmd = match w.keyword(&APPLIANCE_VERBS)? {
        "start" => {
            let role = match w.keyword(ROLES)? {
                "primary" => Role::Primary,
                _ => Role::Backup,
            };
            let mut options = parse_options(w)?;
            resolve_by_role(&mut options, role)?;
            for (given, what) in [
                (!options.floating.is_empty(), "floating"),
                (options.local.is_some(), "local"),
                (options.partner.is_some(), "partner"),
            ] {
                if !given {
                    return Err(ParseError::Invalid(format!(
                        "ha start needs '{what}' (ha start primary|secondary floating ADDR local ADDR partner ADDR ...)"
                    )));
                }
            }
            check_addresses(&options)?;
            Appliance::Start { role, options }
        }
        "configure" => {
            let options = parse_options(w)?;
            if options == ApplianceOptions::default() {
                return Err(ParseError::Invalid(
                    "ha configure needs at least one option (floating, local, partner, sync, pinginterval, port, recovery)"
                        .into(),
                ));
            }
            if !options.by_role.is_empty()
                && (options.local.is_some() || options.partner.is_some() || options.sync.is_some())
            {
                return Err(ParseError::Invalid(
                    "give either local/partner/sync or primaryip/secondaryip/primarysyncip/secondarysyncip, not both"
                        .into(),
                ));
            }
            check_addresses(&options)?;
            Appliance::Configure(options)
        }
        "stop" => Appliance::Stop,
        "status" => Appliance::Status,
        _ => Appliance::Failover,
    };
    w.end()?;
    Ok(Command::Ha(cmd))
}

fn parse_options(w: &mut Words<'_>) -> Result<ApplianceOptions, ParseError> {
    let mut o = ApplianceOptions::default();
    let mut floating: Option<Vec<IpAddr>> = None;
    while w.words.get(w.pos).is_some() {
        match w.keyword(OPTIONS)? {
            "floating" | "floatingip" => {
                let list = w.value("floating addresses")?;
                let mut addrs = Vec::new();
                for a in list.split('+') {
                    let a = parse_address(a)?;
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
                set_once(&mut floating, "floating", addrs)?;
            }
            "local" => set_once(&mut o.local, "local", w.address("local address")?)?,
            "partner" => set_once(&mut o.partner, "partner", w.address("partner address")?)?,
            "sync" => {
                let local = w.address("local sync address")?;
                let partner = w.address("partner sync address")?;
                set_once(&mut o.sync, "sync", (local, partner))?;
            }
            "pinginterval" => {
                let s = parse_seconds(w.value("seconds")?, "pinginterval")?;
                set_once(&mut o.pinginterval, "pinginterval", s)?;
            }
            "port" => set_once(&mut o.port, "port", parse_port(w.value("port")?)?)?,
            "recovery" => {
                let r = match w.keyword(RECOVERIES)? {
                    "auto" => Recovery::Auto,
                    _ => Recovery::Manual,
                };
                set_once(&mut o.recovery, "recovery", r)?;
            }
            "primaryip" => set_once(
                &mut o.by_role.primary,
                "primaryip",
                w.address("primary address")?,
            )?,
            "secondaryip" => set_once(
                &mut o.by_role.secondary,
                "secondaryip",
                w.address("secondary address")?,
            )?,
            "primarysyncip" => set_once(
                &mut o.by_role.primary_sync,
                "primarysyncip",
                w.address("primary sync address")?,
            )?,
            _ => set_once(
                &mut o.by_role.secondary_sync,
                "secondarysyncip",
                w.address("secondary sync address")?,
            )?,
        }
    }
    o.floating = floating.unwrap_or_default();
    Ok(o)
}

/// `ha start`: the Workload Deployer spellings become local / partner / sync for `role`.
fn resolve_by_role(o: &mut ApplianceOptions, role: Role) -> Result<(), ParseError> {
    let b = std::mem::take(&mut o.by_role);
    if b.is_empty() {
        return Ok(());
    }
    let (mine, theirs, my_sync, their_sync) = match role {
        Role::Primary => (b.primary, b.secondary, b.primary_sync, b.secondary_sync),
        _ => (b.secondary, b.primary, b.secondary_sync, b.primary_sync),
    };
    let mix = |name: &str| {
        ParseError::Invalid(format!(
            "'{name}' given twice (as local/partner/sync and as primaryip/secondaryip/...syncip)"
        ))
    };
    if let Some(a) = mine {
        if o.local.is_some() {
            return Err(mix("local"));
        }
        o.local = Some(a);
    }
    if let Some(a) = theirs {
        if o.partner.is_some() {
            return Err(mix("partner"));
        }
        o.partner = Some(a);
    }
    match (my_sync, their_sync) {
        (None, None) => {}
        (Some(l), Some(p)) => {
            if o.sync.is_some() {
                return Err(mix("sync"));
            }
            o.sync = Some((l, p));
        }
        _ => {
            return Err(ParseError::Invalid(
                "ha start needs both primarysyncip and secondarysyncip (or sync LOCAL PARTNER)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Same family, and no address used for two things.
fn check_addresses(o: &ApplianceOptions) -> Result<(), ParseError> {
    if let (Some(l), Some(p)) = (o.local, o.partner) {
        check_pair(l, p, "local", "partner")?;
    }
    if let Some((l, p)) = o.sync {
        check_pair(l, p, "sync local", "sync partner")?;
        if Some((l, p)) == o.local.zip(o.partner) {
            return Err(ParseError::Invalid(format!(
                "the sync network {l} {p} must differ from the public one"
            )));
        }
    }
    Ok(())
}

fn check_pair(l: IpAddr, p: IpAddr, a: &str, b: &str) -> Result<(), ParseError> {
    if l == p {
        return Err(ParseError::Invalid(format!(
            "{a} and {b} are the same address {l}"
        )));
    }
    if l.is_ipv4() != p.is_ipv4() {
        return Err(ParseError::Invalid(format!(
            "{a} {l} and {b} {p} must both be IPv4 or both IPv6"
        )));
    }
    Ok(())
}

impl fmt::Display for ApplianceOptions {
    /// The options, each with a leading space, in canonical words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.floating.is_empty() {
            let list: Vec<String> = self.floating.iter().map(|a| a.to_string()).collect();
            write!(f, " floating {}", list.join("+"))?;
        }
        if let Some(a) = self.local {
            write!(f, " local {a}")?;
        }
        if let Some(a) = self.partner {
            write!(f, " partner {a}")?;
        }
        if let Some((l, p)) = self.sync {
            write!(f, " sync {l} {p}")?;
        }
        let b = &self.by_role;
        for (name, v) in [
            ("primaryip", b.primary),
            ("secondaryip", b.secondary),
            ("primarysyncip", b.primary_sync),
            ("secondarysyncip", b.secondary_sync),
        ] {
            if let Some(a) = v {
                write!(f, " {name} {a}")?;
            }
        }
        if let Some(s) = self.pinginterval {
            write!(f, " pinginterval {s}")?;
        }
        if let Some(p) = self.port {
            write!(f, " port {p}")?;
        }
        if let Some(r) = self.recovery {
            write!(f, " recovery {}", r.keyword())?;
        }
        Ok(())
    }
}

impl fmt::Display for Appliance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Appliance::Start { role, options } => write!(
                f,
                "ha start {}{options}",
                match role {
                    Role::Primary => "primary",
                    _ => "secondary",
                }
            ),
            Appliance::Configure(options) => write!(f, "ha configure{options}"),
            Appliance::Stop => f.write_str("ha stop"),
            Appliance::Status => f.write_str("ha status"),
            Appliance::Failover => f.write_str("ha failover"),
        }
    }
}
