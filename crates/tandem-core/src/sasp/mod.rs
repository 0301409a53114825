//! SASP (Server/Application State Protocol, RFC 4678): weights from a Group Workload
//! Manager (GWM), sans IO.
//!
//! * [`gwm`]: the GWM side (registry of load balancers, groups, members; sessions), for
//!   `tandem-gwm`.
//! * [`codec`]: every message and component of the protocol as a typed value, the
//!   [`codec::Framer`] that cuts a TCP stream into messages. Built to RFC 4678 §4–§7 and the
//!   §8 example; the golden vectors of `shared/reference/sasp-notes.md` §3 are its tests.
//! * [`lb`]: [`lb::LbSession`], the load balancer's side of one connection to one GWM
//!   (registration, push or pull, changed-only, quiesce, deregistration, silent-GWM
//!   detection), [`lb::Backoff`] for reconnecting, [`lb::GwmState`] for `sasp report`, and
//!   the weight conversion rules the overlay applies.
//!
//! The load balancer is the TCP client and the GWM the server (port 3860). One message
//! component per message; requests carry an ID that the reply echoes; Send Weights is the
//! only unsolicited message.

pub mod codec;
pub mod gwm;
pub mod lb;

#[cfg(test)]
mod tests;
