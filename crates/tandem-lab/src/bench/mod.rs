//! Building blocks of `tandem-lab bench`: load generators that measure rather than test.
//!
//! - [`conn_rate`]: new TCP connections per second (one HTTP GET per connection), time-bounded,
//!   with latency percentiles.
//! - [`UdpSink`] and [`udp_flood`]: a counting UDP sink (no replies) and a bounded flood of
//!   small datagrams from many source ports, for forwarded packets per second.
//! - [`http`]: a dual-stack HTTP server for keep-alive and one-request connections, and the
//!   keep-alive load ([`keepalive_rate`]).
//! - [`many`]: one epoll thread answering HTTP for thousands of servers (`bench-health`).
//! - [`sys`]: CPU time, context switches and interface counters read from `/proc` and `ip`.
//! - [`profile`]: a `perf record -g` profile sorted into buckets (where tandemd's time goes).
//!
//! Like the rest of [`crate::traffic`], everything runs in the network namespace of the calling
//! thread: use [`crate::Host::in_ns`] (or [`UdpSink::start_in`]).

pub mod http;
mod load;
pub mod many;
pub mod profile;
pub mod sys;
mod udp;

pub use http::{BenchHttp, keepalive_rate};
pub use load::{ConnRate, conn_rate};
pub use udp::{FloodReport, UdpSink, udp_flood};
