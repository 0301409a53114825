//! `tandem-lab demo --web`: each node serves its status page and metrics on its own lab
//! address (`executor set metrics ADDR:PORT`, inside its namespace), and a relay per node on
//! `127.0.0.1` in the root namespace makes them reachable from a browser on this machine
//! ([`tandem_lab::traffic::Relay`]: the upstream sockets are made inside the node's namespace,
//! so no lab address is ever routed from the root namespace).

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use tandem_lab::Host;
use tandem_lab::cluster::TandemNode;
use tandem_lab::traffic::Relay;

/// Port the nodes serve metrics and the status page on, on their lab address.
pub const METRICS_PORT: u16 = 9180;

/// The relays of a `--web` demo, one per node.
pub struct Web {
    relays: Vec<(String, Relay)>,
}

impl Web {
    /// A relay per node host: node `i` (0-based) on `127.0.0.1:base+i` (`base` 0: any free
    /// port). The relays exist before the daemons start; a page asked for before its daemon
    /// serves gets its connection closed.
    pub fn start(nodes: &[Host], base: u16) -> Result<Web> {
        let mut relays = Vec::new();
        for (i, host) in nodes.iter().enumerate() {
            let port = if base == 0 { 0 } else { base + i as u16 };
            let listen: SocketAddr = ([127, 0, 0, 1], port).into();
            let relay = Relay::start(listen, host, upstream(host))
                .with_context(|| format!("relay for {} (choose another --web-port)", host.name))?;
            relays.push((host.name.clone(), relay));
        }
        Ok(Web { relays })
    }

    /// Prints each node's page address.
    pub fn print(&self) {
        println!("Status pages (relayed from 127.0.0.1 into each node's namespace):");
        for (name, r) in &self.relays {
            println!(
                "  {name}: http://{}/   (relayed to {} inside {name})",
                r.local_addr(),
                r.upstream()
            );
        }
    }

    /// `executor set metrics ADDR:PORT` on `node`, its lab address.
    pub fn enable(node: &TandemNode) -> Result<()> {
        let addr = upstream(&node.host).to_string();
        println!(
            "  {}$ tandemctl executor set metrics {addr}",
            node.host.name
        );
        node.ctl(&["executor", "set", "metrics", &addr])?;
        Ok(())
    }
}

fn upstream(host: &Host) -> SocketAddr {
    SocketAddr::new(host.ip().into(), METRICS_PORT)
}

/// Waits for Enter on standard input (at once when it is not a terminal or at its end).
pub fn wait_enter(prompt: &str) {
    print!("{prompt}");
    std::io::stdout().flush().ok();
    if !std::io::stdin().is_terminal() {
        println!("(standard input is not a terminal: going on)");
        return;
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Keeps the lab (and the relays) until Ctrl-C; the lab's signal handler then removes it.
pub fn hold_until_ctrl_c() {
    println!("The lab stays up for the browser; press Ctrl-C to remove it and exit.");
    std::io::stdout().flush().ok();
    while !tandem_lab::interrupted() {
        std::thread::sleep(Duration::from_millis(200));
    }
}
