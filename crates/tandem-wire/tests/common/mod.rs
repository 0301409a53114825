//! Helpers shared by the property test files.

#![allow(dead_code)]

use tandem_wire::{Frame, IPPROTO_TCP, Packet, parse};

pub fn parsed(frame: &[u8]) -> Packet {
    match parse(frame) {
        Ok(Frame::Ip(p)) => p,
        other => panic!("expected an IP packet, got {other:?}"),
    }
}

pub fn stored_l4_checksum(frame: &[u8], p: &Packet) -> u16 {
    let at = p.l4 + if p.proto == IPPROTO_TCP { 16 } else { 6 };
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

pub fn set_l4_checksum(frame: &mut [u8], p: &Packet, v: u16) {
    let at = p.l4 + if p.proto == IPPROTO_TCP { 16 } else { 6 };
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
