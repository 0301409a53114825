//! Packet views, rewrites and checksums for Tandem's data plane.
//!
//! This crate is the *wire layer*: it knows the byte layout of the headers Tandem forwards
//! (Ethernet II with at most one 802.1Q tag, ARP for Ethernet/IPv4, IPv4, IPv6 with its
//! extension headers, neighbour discovery, TCP and UDP) and nothing else. It does no I/O, keeps no state and allocates on no hot path; the daemon
//! hands it frames it read from an `AF_PACKET` ring and gets back a classification, or hands
//! it a frame to patch in place before transmitting it.
//!
//! # Layout
//!
//! * [`parse`] classifies one Ethernet frame into a [`Frame`]: an [`Arp`] message, an IPv6
//!   neighbour solicitation or advertisement ([`Ndp`]), an IPv4 or IPv6 [`Packet`] (TCP/UDP,
//!   the only protocols Tandem balances), another IP protocol, or another ethertype. Frames that claim more than they carry are rejected with a [`Malformed`]
//!   reason, which doubles as an index into a drop-counter array ([`Malformed::ALL`],
//!   [`Malformed::index`], [`Malformed::name`]).
//! * [`rewrite`] patches a parsed packet in place: MAC addresses, and the destination or
//!   source address/port (IPv4 or IPv6) with *incremental* (RFC 1624) updates of the IPv4
//!   header checksum and the TCP/UDP checksum. [`complete_partial_checksum`] and [`fill_l4_checksum`] finish
//!   frames that a local stack left with only the pseudo-header sum in the checksum field
//!   (`TP_STATUS_CSUMNOTREADY`, typical over veth).
//! * [`fragment`] locates IPv4 fragments ([`Fragment`]); [`icmp`] locates ICMP errors that
//!   quote a TCP/UDP datagram ([`IcmpError`]) and translates them for NAT
//!   ([`icmp::translate`]); [`ipv4::rewrite_addresses`] rewrites addresses of what has no
//!   TCP/UDP header to update.
//! * [`checksum`] has the Internet checksum arithmetic.
//! * [`build`] writes whole frames Tandem originates: ARP replies, requests and gratuitous
//!   announcements, and TCP resets over IPv4 and IPv6; [`ndp`] writes neighbour
//!   solicitations, solicited and unsolicited advertisements.
//! * [`ethernet`], [`arp`], [`ipv4`], [`ipv6`], [`tcp`] and [`udp`] are per-header views in the style of
//!   smoltcp's `wire` module: field offset constants and a checked view over a byte buffer
//!   with typed getters (and setters on mutable buffers).
//!
//! # Contracts
//!
//! * **No panics on input bytes.** Every function here returns normally for every byte
//!   string; bad input shows up as `Err`. (A property test feeds [`parse`] arbitrary bytes.)
//! * **Offsets are absolute.** A [`Packet`] records where the IP header ([`Packet::l3`]), the
//!   TCP/UDP header ([`Packet::l4`]), the L4 payload ([`Packet::payload`]) start and where the
//!   L4 data ends ([`Packet::end`]), all as byte offsets from the start of the frame. Bytes
//!   past the IP total length (Ethernet padding of short frames) are never part of a
//!   length or a checksum.
//! * **Rewrites read old values from the frame**, not from the [`Packet`]: a `Packet` only
//!   tells where the headers are, so it stays usable for a frame that was rewritten after it
//!   was parsed (rewriting the destination, then the source, with the same `Packet` is fine).
//!   A rewrite checks that the `Packet` fits the frame and returns a [`RewriteError`] instead
//!   of touching the frame when it does not.
//! * **Checksums are kept, not trusted.** Parsing does not verify checksums (a load balancer
//!   forwards what it is given); rewrites keep a checksum exactly as right or wrong as it was.
//!   Frames whose checksum is not yet complete must be completed *before* a rewrite.
//! * **IPv4 and IPv6.** Addresses are [`std::net::IpAddr`] in every type; a [`Packet`]'s
//!   family is its addresses'. IPv6 hop-by-hop, routing and destination options headers are
//!   skipped to find TCP/UDP ([`ipv6::upper_layer`]). Rewrites return
//!   [`RewriteError::AddressFamily`] when asked to mix families.
//! * **IPv4 fragments are located, not reassembled** ([`Frame::Fragment`]): the first one as
//!   a [`Packet`] with its ports, later ones by their datagram identification (see
//!   [`fragment`]). An IPv6 fragment header is [`Malformed::Fragment`] for now. ICMP errors
//!   quoting a TCP/UDP datagram are [`Frame::IcmpError`] (see [`icmp`]).
//!
//! # Example
//!
//! ```
//! use std::net::Ipv4Addr;
//! use tandem_wire::{build, parse, rewrite_dst, set_dst_mac, Frame};
//!
//! // A frame to rewrite: here a TCP RST we build ourselves.
//! let mut frame = build::tcp_rst_ipv4(
//!     [2, 0, 0, 0, 0, 1],
//!     [2, 0, 0, 0, 0, 2],
//!     "192.0.2.1:40000".parse().unwrap(),
//!     "192.0.2.100:80".parse().unwrap(),
//!     1,
//!     None,
//! );
//! let Ok(Frame::Ip(pkt)) = parse(&frame) else { panic!("not a TCP/UDP packet") };
//! assert!(pkt.is_rst());
//! rewrite_dst(&mut frame, &pkt, Ipv4Addr::new(10, 0, 0, 7), 8080).unwrap();
//! set_dst_mac(&mut frame, [2, 0, 0, 0, 0, 7]).unwrap();
//! let Ok(Frame::Ip(out)) = parse(&frame) else { unreachable!() };
//! assert_eq!(out.dst_ip, Ipv4Addr::new(10, 0, 0, 7));
//! assert_eq!(out.dst_port, 8080);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arp;
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod fragment;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod mac;
pub mod ndp;
mod parse;
pub mod rewrite;
pub mod tcp;
pub mod udp;

pub use build::{
    arp_reply, arp_request, gratuitous_arp, tcp_rst, tcp_rst_ipv4, tcp_rst_ipv6, tcp_rst_reply,
    tcp_rst_reply_ipv4,
};
pub use fragment::Fragment;
pub use icmp::IcmpError;
pub use mac::{MacAddr, ParseMacAddrError};
pub use ndp::{
    IPPROTO_ICMPV6, Ndp, NdpOp, neighbor_advertisement, neighbor_solicitation,
    unsolicited_advertisement,
};
pub use parse::{Arp, ArpOp, Frame, Malformed, Packet, parse};
pub use rewrite::{
    RewriteError, complete_partial_checksum, fill_l4_checksum, rewrite_dst, rewrite_src,
    set_dst_mac, set_src_mac,
};

/// A header field: the byte range it occupies, relative to the start of its header.
pub type Field = core::ops::Range<usize>;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Big-endian `u16` at `at`, or 0 when out of range (callers check ranges first; the
/// fallback only keeps the function panic-free).
#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.saturating_add(2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// Big-endian `u32` at `at`, or 0 when out of range (see [`read_u16`]).
#[inline]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.saturating_add(4)) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

/// Six bytes at `at`, or zeros when out of range (see [`read_u16`]).
#[inline]
pub(crate) fn read_mac(b: &[u8], at: usize) -> [u8; 6] {
    match b.get(at..at.saturating_add(6)) {
        Some(&[a, b, c, d, e, f]) => [a, b, c, d, e, f],
        _ => [0; 6],
    }
}

/// Writes `bytes` at `at`; does nothing when out of range (callers check ranges first).
#[inline]
pub(crate) fn write_bytes(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

/// Writes a big-endian `u16` at `at` (see [`write_bytes`]).
#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    write_bytes(b, at, &v.to_be_bytes());
}

/// Writes a big-endian `u32` at `at` (see [`write_bytes`]).
#[inline]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    write_bytes(b, at, &v.to_be_bytes());
}
