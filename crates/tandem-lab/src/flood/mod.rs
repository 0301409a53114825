//! Floods for the hardening tests and benchmarks, all from lab hosts to lab addresses:
//! [`syn`] sends raw TCP SYNs from random documentation sources (connection-table floods),
//! [`junk`] sends junk UDP at a port and ICMP echoes at an address (heartbeat-port and
//! reach-prober floods). Both batch with `sendmmsg`.

pub mod junk;
pub mod syn;

pub use junk::{FloodStats, IcmpKind, icmp_flood, junk_udp_flood};
pub use syn::{FloodReport, SynFlood, syn_flood};
