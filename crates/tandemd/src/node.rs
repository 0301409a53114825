//! A node's control plane: the running configuration, commits, and command execution.
//!
//! Every change, whether from the config file at start or from `tandemctl`, goes the same way:
//! parse with the shared grammar → apply to a copy of the configuration → bring the data plane
//! in line (interface, plan) → only then make the copy the running configuration. A change that
//! fails at any step leaves everything as it was.

use crate::afpacket::RingConfig;
use crate::dataplane::Dataplane;
use crate::netdev;
use crate::report;
use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::config::{self, Command, Config};
use tandem_core::forward::{Engine, Plan};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub workers: usize,
    pub ring: RingConfig,
    /// Forward on this interface instead of the one holding the nfa.
    pub interface: Option<String>,
    /// Gratuitous ARPs sent when addresses start being forwarded: count and spacing.
    pub garp_count: u32,
    pub garp_interval: Duration,
}

/// The answer to one command.
#[derive(Debug, Serialize)]
pub struct Reply {
    pub ok: bool,
    pub output: String,
    pub data: serde_json::Value,
    pub error: String,
}

impl Reply {
    pub fn ok(output: String, data: serde_json::Value) -> Reply {
        Reply { ok: true, output, data, error: String::new() }
    }
    pub fn err(error: String) -> Reply {
        Reply { ok: false, output: String::new(), data: serde_json::Value::Null, error }
    }
}

struct State {
    config: Config,
    dataplane: Option<Dataplane>,
}

/// One Tandem node.
pub struct Node {
    state: Mutex<State>,
    pub engine: Arc<Engine>,
    pub opts: NodeOptions,
    pub started_at: Instant,
}

impl Node {
    pub fn new(opts: NodeOptions) -> Node {
        Node {
            state: Mutex::new(State { config: Config::default(), dataplane: None }),
            engine: Arc::new(Engine::default()),
            opts,
            started_at: Instant::now(),
        }
    }

    /// Loads a command file (all or nothing) and commits it.
    pub fn load_file(&self, path: &std::path::Path) -> Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut st = self.state.lock();
        let new = config::load_file(&text, &path.display().to_string(), &st.config).map_err(|e| anyhow!("{e}"))?;
        self.commit(&mut st, new)
    }

    /// Runs one command given as words (the dscontrol grammar).
    pub fn execute(&self, words: &[String], _json: bool) -> Reply {
        if let Some(reply) = self.file_command(words) {
            return reply;
        }
        let line = words.join(" ");
        let cmd = match config::parse_line(&line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return Reply::err("empty command".into()),
            Err(e) => return Reply::err(e.to_string()),
        };
        let mut st = self.state.lock();
        if cmd.is_mutation() {
            let mut new = st.config.clone();
            if let Err(e) = new.apply(&cmd) {
                return Reply::err(e.to_string());
            }
            return match self.commit(&mut st, new) {
                Ok(()) => Reply::ok(String::new(), serde_json::json!({"done": line})),
                Err(e) => Reply::err(format!("{e:#}")),
            };
        }
        match self.query(&st, &cmd) {
            Ok((text, data)) => Reply::ok(text, data),
            Err(e) => Reply::err(format!("{e:#}")),
        }
    }

    /// `file newload|appendload|save FILE`: the dscontrol file commands, which touch the node's
    /// file system and so live here rather than in the (I/O-free) grammar.
    fn file_command(&self, words: &[String]) -> Option<Reply> {
        let first = words.first()?.to_ascii_lowercase();
        if first.len() < 2 || !"file".starts_with(&first) {
            return None;
        }
        let verbs = ["newload", "appendload", "save"];
        let Some(verb) = words.get(1).map(|w| w.to_ascii_lowercase()) else {
            return Some(Reply::err("missing keyword after 'file' (expected one of: newload, appendload, save)".into()));
        };
        let matches: Vec<&str> = verbs.iter().copied().filter(|v| v.starts_with(verb.as_str())).collect();
        let verb = match matches.as_slice() {
            [one] => *one,
            [] => return Some(Reply::err(format!("unknown keyword '{verb}' (expected one of: newload, appendload, save)"))),
            many => return Some(Reply::err(format!("ambiguous keyword '{verb}': {}", many.join(", ")))),
        };
        let (Some(path), None) = (words.get(2), words.get(3)) else {
            return Some(Reply::err(format!("file {verb} takes exactly one FILE")));
        };
        let mut st = self.state.lock();
        let result = match verb {
            "save" => {
                let mut text = String::from("# Saved by tandemd: executor, clusters, ports, servers, then high availability.\n");
                for line in st.config.to_commands() {
                    text.push_str(&line);
                    text.push('\n');
                }
                std::fs::write(path, text).with_context(|| format!("writing {path}"))
            }
            _ => (|| {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
                let base = if verb == "newload" { Config::default() } else { st.config.clone() };
                let new = config::load_file(&text, path, &base).map_err(|e| anyhow!("{e}"))?;
                self.commit(&mut st, new)
            })(),
        };
        Some(match result {
            Ok(()) => Reply::ok(String::new(), serde_json::json!({"done": format!("file {verb} {path}")})),
            Err(e) => Reply::err(format!("{e:#}")),
        })
    }

    fn query(&self, st: &State, cmd: &Command) -> Result<(String, serde_json::Value)> {
        let view = report::View {
            config: &st.config,
            engine: &self.engine,
            interface: st.dataplane.as_ref().map(|d| &d.interface),
            workers: st.dataplane.as_ref().map(|d| d.workers).unwrap_or(0),
            ring: self.opts.ring.version,
            uptime: self.started_at.elapsed(),
        };
        report::render(&view, cmd)
    }

    /// Brings the data plane in line with `new`, then makes it the running configuration.
    fn commit(&self, st: &mut State, new: Config) -> Result<()> {
        // The forwarding interface: the one holding the nfa (or the one named at start).
        let wanted = match (&self.opts.interface, new.executor.nfa) {
            (Some(name), _) => Some(netdev::interface_by_name(name)?),
            (None, Some(nfa)) => Some(netdev::interface_with_address(nfa)?),
            (None, None) => None,
        };
        let current = st.dataplane.as_ref().map(|d| d.interface.clone());
        if wanted != current {
            // Stop the old workers before the new ones take the interface.
            st.dataplane = None;
            if let Some(iface) = wanted {
                match netdev::disable_gro(&iface.name) {
                    Ok(true) => tracing::info!(interface = %iface.name, "turned generic receive offload off"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not turn GRO off; super-frames will be dropped"),
                }
                st.dataplane = Some(Dataplane::start(self.engine.clone(), iface, self.opts.workers, self.opts.ring)?);
            }
        }
        let forwarding = new.executor.started && st.dataplane.is_some();
        let mac = st.dataplane.as_ref().map(|d| d.interface.mac).unwrap_or_default();
        let plan = Plan::compile(&new, forwarding, mac, &self.engine.counters);
        let frames = self.engine.install(plan, Instant::now());
        if let Some(dp) = &st.dataplane {
            dp.send(&frames);
            let announce = frames.iter().any(|f| f.len() >= 14 && f[12..14] == [0x08, 0x06] && f[0..6] == [0xff; 6]);
            if announce && self.opts.garp_count > 1 {
                self.repeat_announcements(dp);
            }
        }
        st.config = new;
        Ok(())
    }

    /// Sends the gratuitous ARPs again, `garp_count - 1` more times, spaced, off the command path.
    fn repeat_announcements(&self, dp: &Dataplane) {
        let tx = dp.tx.clone();
        let engine = self.engine.clone();
        let (count, gap) = (self.opts.garp_count, self.opts.garp_interval);
        std::thread::spawn(move || {
            for _ in 1..count {
                std::thread::sleep(gap);
                for f in engine.announcements() {
                    let _ = tx.send(&f);
                }
            }
        });
    }
}
