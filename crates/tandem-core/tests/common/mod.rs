//! Helpers shared by the engine test files: a configured engine with resolved servers, and
//! real Ethernet/IPv4/TCP|UDP frames.

#![allow(dead_code)]

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::Instant;
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{Engine, Plan, RxMeta, Verdict};

pub const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
pub const CLIENT: [u8; 4] = [203, 0, 113, 7];
pub const CLUSTER: [u8; 4] = [192, 0, 2, 100];
pub const RETURN: [u8; 4] = [192, 0, 2, 200];

/// TCP flags of a test segment.
pub const SYN: u8 = 1;
pub const ACK: u8 = 2;
pub const FIN: u8 = 4;
pub const RST: u8 = 8;

pub fn server_mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

pub fn config(text: &str) -> Config {
    let base = "executor start\nexecutor set nfa 192.0.2.2\ncluster add 192.0.2.100\n";
    load_file(&format!("{base}{text}"), "test.cfg", &Config::default()).expect("valid config")
}

/// An engine with `cfg` installed and servers 192.0.2.11-13 resolved.
pub fn engine(cfg: &Config, now: Instant) -> Engine {
    let e = Engine::default();
    e.install(
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            true,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    for last in 11..=13 {
        let mut arp = tandem_wire::arp_reply(
            server_mac(last),
            Ipv4Addr::new(192, 0, 2, last),
            OUR_MAC,
            Ipv4Addr::new(192, 0, 2, 2),
        );
        let mut out = Vec::new();
        e.handle(&mut arp, RxMeta::default(), now, &mut out);
    }
    e
}

/// A TCP segment from `src` to `dst` with `flags` (SYN | ACK | FIN | RST), from `mac`.
pub fn tcp_from(mac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(mac, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 65535);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(777);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let payload = if flags & SYN != 0 {
        &[][..]
    } else {
        &b"GET / HTTP/1.0\r\n\r\n"[..]
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A client's TCP segment.
pub fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    tcp_from(CLIENT_MAC, src, dst, flags)
}

/// A server's TCP segment (from server 192.0.2.`last`).
pub fn server_tcp(last: u8, src_port: u16, dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    tcp_from(server_mac(last), ([192, 0, 2, last], src_port), dst, flags)
}

pub fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut v = Vec::new();
    b.write(&mut v, b"ping").unwrap();
    v
}

pub fn handle(e: &Engine, frame: &mut [u8], now: Instant) -> Verdict {
    let mut out = Vec::new();
    e.handle(frame, RxMeta::default(), now, &mut out)
}

pub fn sent(v: Verdict) -> bool {
    matches!(v, Verdict::Transmit(_))
}

/// The source port of a forwarded (NAT-translated) IPv4 TCP/UDP frame.
pub fn src_port(frame: &[u8]) -> u16 {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    u16::from_be_bytes([frame[14 + ihl], frame[15 + ihl]])
}

/// A client address of 198.51.100.0/24 or 203.0.113.0/24 (documentation ranges) for `i`,
/// with a source port: 65 024 distinct (address, port) flows per 256 addresses.
pub fn flood_source(i: u32) -> ([u8; 4], u16) {
    let host = (i % 254 + 1) as u8;
    let net = if (i / 254).is_multiple_of(2) { 51 } else { 113 };
    let a = if net == 51 {
        [198, 51, 100, host]
    } else {
        [203, 0, 113, host]
    };
    (a, 1024 + ((i / 508) % 64000) as u16)
}
