//! Frames the engine originates, typed: announcements of owned addresses (gratuitous ARP,
//! unsolicited neighbour advertisements), questions for next hops (ARP requests, neighbour
//! solicitations) and TCP resets; and the answers to ARP and neighbour discovery.
//!
//! [`Engine::install`] and [`Engine::announcements`] return [`ControlFrame`]s, so a shell
//! knows what it sends without looking into the bytes.

use super::engine::{Engine, Verdict};
use super::plan::Plan;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tandem_wire as wire;

/// What a [`ControlFrame`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlFrameKind {
    /// A gratuitous ARP announcing an owned IPv4 address (request or reply form).
    GratuitousArp,
    /// An unsolicited neighbour advertisement announcing an owned IPv6 address (override
    /// flag, to all-nodes): the IPv6 twin of a gratuitous ARP.
    UnsolicitedNa,
    /// An ARP request for an IPv4 next hop.
    ArpRequest,
    /// A neighbour solicitation for an IPv6 next hop.
    NeighborSolicit,
    /// A TCP reset to a client of a server that went down on a `reset yes` port.
    TcpReset,
}

/// A whole Ethernet frame the engine wants sent, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFrame {
    /// What the frame is.
    pub kind: ControlFrameKind,
    /// The frame to send, as it goes on the wire.
    pub bytes: Vec<u8>,
}

impl ControlFrame {
    /// Whether this announces an owned address (gratuitous ARP or unsolicited NA): what a
    /// shell repeats after a takeover.
    pub fn is_announcement(&self) -> bool {
        matches!(
            self.kind,
            ControlFrameKind::GratuitousArp | ControlFrameKind::UnsolicitedNa
        )
    }
}

/// The announcements of `ip` at `our_mac`: both gratuitous ARP forms for IPv4, one
/// unsolicited neighbour advertisement for IPv6.
pub(super) fn announce(our_mac: [u8; 6], ip: IpAddr) -> Vec<ControlFrame> {
    match ip {
        IpAddr::V4(a) => [false, true]
            .into_iter()
            .map(|reply_form| ControlFrame {
                kind: ControlFrameKind::GratuitousArp,
                bytes: wire::gratuitous_arp(our_mac, a, reply_form).to_vec(),
            })
            .collect(),
        IpAddr::V6(a) => vec![ControlFrame {
            kind: ControlFrameKind::UnsolicitedNa,
            bytes: wire::unsolicited_advertisement(our_mac, a),
        }],
    }
}

/// A TCP reset from `cluster` to `client` (`None` for mixed families, which the
/// configuration refuses).
pub(super) fn reset(
    our_mac: [u8; 6],
    client_mac: [u8; 6],
    cluster: SocketAddr,
    client: SocketAddr,
    seq: u32,
) -> Option<ControlFrame> {
    wire::tcp_rst(our_mac, client_mac, cluster, client, seq, None).map(|bytes| ControlFrame {
        kind: ControlFrameKind::TcpReset,
        bytes,
    })
}

impl Engine {
    /// The question for next hop `ip` (ARP request or neighbour solicitation) if it should go
    /// out now: rate-limited per address, and only with a source address to ask from. Not
    /// counted: the caller counts what it sends ([`Engine::count_sent`]).
    pub(super) fn solicit(&self, plan: &Plan, ip: IpAddr, now: Instant) -> Option<ControlFrame> {
        match ip {
            IpAddr::V4(a) => {
                let nfa = plan.nfa?;
                self.neighbors.should_ask(ip, now).then(|| ControlFrame {
                    kind: ControlFrameKind::ArpRequest,
                    bytes: wire::arp_request(plan.our_mac, nfa, a).to_vec(),
                })
            }
            IpAddr::V6(a) => {
                let nfa6 = plan.nfa6?;
                self.neighbors.should_ask(ip, now).then(|| ControlFrame {
                    kind: ControlFrameKind::NeighborSolicit,
                    bytes: wire::neighbor_solicitation(plan.our_mac, nfa6, a),
                })
            }
        }
    }

    /// Counts a frame the engine sends under its protocol's counter.
    pub(super) fn count_sent(&self, worker: usize, f: &ControlFrame) {
        let counter = match f.kind {
            ControlFrameKind::GratuitousArp | ControlFrameKind::ArpRequest => &self.node.arp_sent,
            ControlFrameKind::UnsolicitedNa | ControlFrameKind::NeighborSolicit => {
                &self.node.ndp_sent
            }
            ControlFrameKind::TcpReset => &self.node.resets_sent,
        };
        counter.add(worker, 1);
    }

    /// An ARP message: learn a wanted neighbour; answer requests for owned addresses.
    pub(super) fn arp(
        &self,
        worker: usize,
        plan: &Plan,
        arp: &wire::Arp,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        if plan.neighbors.contains(&IpAddr::V4(arp.sender_ip)) {
            self.neighbors
                .learn(IpAddr::V4(arp.sender_ip), arp.sender_mac);
        }
        if arp.op == wire::ArpOp::Request
            && arp.sender_ip != arp.target_ip
            && plan.owns(IpAddr::V4(arp.target_ip))
        {
            out.push(
                wire::arp_reply(plan.our_mac, arp.target_ip, arp.sender_mac, arp.sender_ip)
                    .to_vec(),
            );
            self.node.arp_sent.add(worker, 1);
            return Verdict::Consumed;
        }
        Verdict::Pass
    }

    /// A neighbour solicitation or advertisement: learn a wanted neighbour (the target of an
    /// advertisement, the sender of a solicitation, from their link-layer address options);
    /// answer solicitations for owned addresses with a solicited advertisement.
    pub(super) fn ndp(
        &self,
        worker: usize,
        plan: &Plan,
        n: &wire::Ndp,
        out: &mut Vec<Vec<u8>>,
    ) -> Verdict {
        let learnt = match n.op {
            wire::NdpOp::Advert => n.target,
            wire::NdpOp::Solicit => n.src_ip,
        };
        if let Some(mac) = n.link_addr
            && plan.neighbors.contains(&IpAddr::V6(learnt))
        {
            self.neighbors.learn(IpAddr::V6(learnt), mac);
        }
        if n.op == wire::NdpOp::Solicit && plan.owns(IpAddr::V6(n.target)) {
            out.push(wire::neighbor_advertisement(plan.our_mac, n));
            self.node.ndp_sent.add(worker, 1);
            return Verdict::Consumed;
        }
        Verdict::Pass
    }
}
