//! `tandem_wire::parse` of arbitrary bytes, and the forwarding engine handling them as
//! received frames, both directions, with time moving forward.
//!
//! Configuration (as tandemd compiles it into a `Plan`): cluster 192.0.2.100 with a MAC port
//! (80) and a NAT port (8080, returnaddress 192.0.2.200, mapport 80), two servers each
//! (192.0.2.11, 192.0.2.12, both resolved by ARP before the input starts). The first input
//! byte picks a variant (selection algorithm, stickytime, reset, replication, protocol).
//! `selectionalgorithm hash` is left out: compiling its Maglev table (65 537 slots) for
//! every plan made the target ~50 times slower.
//!
//! Then operations until the input ends, each `ctrl, dt, sel, len(u16 le), bytes`:
//!
//! * `ctrl` bits 0-1: 0 = the bytes as they are; 1 = patched into a client → cluster frame;
//!   2 = patched into a server → returnaddress frame (NAT replies); 3 = patched into an ARP
//!   message. Bits 2-4: `RxMeta` csum_not_ready, vlan, truncated. Bit 5: housekeeping after
//!   the frame. Bit 6: install a new plan (forwarding on/off, server 192.0.2.12 down/up, from
//!   `sel`). Bit 7: toggle replication.
//! * `dt`: time advance before the frame (< 128: dt × 10 ms, else (dt - 128) × 10 s).
//! * `sel`: which client, port, server, protocol the patch writes.
//!
//! Checked besides "no panic": a transmitted frame parses, comes from our MAC, is no longer
//! than the received one, and keeps every checksum that was right still right; at the end,
//! a day later, every record has ended, every NAT port is free and no server counts an
//! active connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{Engine, Plan, RxMeta, Verdict};
use tandem_fuzz::Input;
use tandem_wire::{self as wire, Frame, checksum, ipv4::Ipv4Header};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLUSTER: [u8; 4] = [192, 0, 2, 100];
const RETURN: [u8; 4] = [192, 0, 2, 200];
const NFA: [u8; 4] = [192, 0, 2, 2];
const SERVERS: [[u8; 4]; 2] = [[192, 0, 2, 11], [192, 0, 2, 12]];
const CLIENTS: [[u8; 4]; 4] = [
    [203, 0, 113, 7],
    [203, 0, 113, 8],
    [198, 51, 100, 9],
    [192, 0, 2, 11],
];
const CLIENT_PORTS: [u16; 4] = [40000, 40001, 1024, 80];
const CLUSTER_PORTS: [u16; 2] = [80, 8080];

fn server_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, i as u8]
}

fn client_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 2, i as u8]
}

fn config_text(variant: u8, server_down: bool) -> String {
    let mac_sel = match variant & 3 {
        0 => "selectionalgorithm connection",
        1 => "selectionalgorithm affinity stickytime 30",
        2 => "selectionalgorithm affinity stickytime 1",
        _ => "selectionalgorithm conn+affin stickytime 30",
    };
    let nat_sticky = if variant & 4 != 0 {
        " stickytime 30"
    } else {
        ""
    };
    let reset = if variant & 8 != 0 { "yes" } else { "no" };
    let rep = if variant & 16 != 0 { "both" } else { "none" };
    let nat_proto = if variant & 32 != 0 { "udp" } else { "tcp" };
    let stale = if variant & 64 != 0 { 5 } else { 300 };
    let mut t = format!(
        "executor start\nexecutor set nfa 192.0.2.2\ncluster add 192.0.2.100\n\
         port add 192.0.2.100@80 method mac {mac_sel} reset {reset} repstrategy {rep} staletimeout {stale}\n\
         port add 192.0.2.100@8080 method nat protocol {nat_proto}{nat_sticky} repstrategy {rep} staletimeout {stale}\n\
         server add 192.0.2.100@80@192.0.2.11+192.0.2.12\n\
         server add 192.0.2.100@8080@192.0.2.11+192.0.2.12 returnaddress 192.0.2.200 mapport 80\n"
    );
    if server_down {
        t.push_str("server down 192.0.2.100@@192.0.2.12\n");
    }
    t
}

/// The configurations of every variant, parsed once.
fn config(variant: u8, server_down: bool) -> &'static Config {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    let all = CONFIGS.get_or_init(|| {
        (0..=255u8)
            .flat_map(|v| [false, true].map(move |d| (v, d)))
            .map(|(v, d)| {
                load_file(&config_text(v, d), "fuzz.cfg", &Config::default())
                    .expect("the fuzz configuration is valid")
            })
            .collect()
    });
    &all[usize::from(variant) * 2 + usize::from(server_down)]
}

fn put(frame: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = frame.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Patches `frame` (as far as it is long enough) into an IPv4 TCP/UDP frame to us.
#[allow(clippy::too_many_arguments)]
fn patch_ip(
    frame: &mut [u8],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    udp: bool,
    fix_len: bool,
) {
    put(frame, 0, &OUR_MAC);
    put(frame, 6, &src_mac);
    put(frame, 12, &[0x08, 0x00]);
    put(frame, 14, &[0x45]);
    if fix_len {
        let total = u16::try_from(frame.len().saturating_sub(14)).unwrap_or(u16::MAX);
        put(frame, 16, &total.to_be_bytes());
        put(frame, 20, &[0x40, 0]); // DF, no fragment
    }
    put(frame, 23, &[if udp { 17 } else { 6 }]);
    put(frame, 26, &src);
    put(frame, 30, &dst);
    put(frame, 34, &sport.to_be_bytes());
    put(frame, 36, &dport.to_be_bytes());
    if fix_len {
        if udp {
            let l = u16::try_from(frame.len().saturating_sub(34)).unwrap_or(u16::MAX);
            put(frame, 38, &l.to_be_bytes());
        } else {
            put(frame, 46, &[0x50]);
        }
        // Right IP header checksum, so that the "kept right" check has work to do.
        if frame.len() >= 34 {
            put(frame, 24, &[0, 0]);
            let c = checksum::ipv4_header_checksum(&frame[14..34]);
            put(frame, 24, &c.to_be_bytes());
        }
    }
}

fn patch_arp(frame: &mut [u8], sel: u8) {
    const IPS: [[u8; 4]; 4] = [SERVERS[0], SERVERS[1], CLUSTER, NFA];
    put(frame, 0, &[0xff; 6]);
    put(frame, 12, &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0]);
    put(frame, 21, &[1 + (sel & 1)]);
    let sender = usize::from(sel >> 1 & 3);
    if sender < 2 {
        put(frame, 22, &server_mac(sender));
    }
    put(frame, 28, &IPS[sender]);
    put(frame, 38, &IPS[usize::from(sel >> 3 & 3)]);
}

/// Whether a stored checksum is the computed one; 0x0000 and 0xffff are the same value in
/// ones' complement (an incremental update may give either).
fn same_checksum(computed: u16, stored: u16) -> bool {
    computed == stored || matches!((computed, stored), (0, 0xffff) | (0xffff, 0))
}

/// What the checksums of an IP frame are: (IP header right, L4 checksum right, UDP without
/// checksum).
fn checksums(frame: &[u8]) -> Option<(bool, bool, bool)> {
    let Ok(Frame::Ip(p)) = wire::parse(frame) else {
        return None;
    };
    let ip_ok = Ipv4Header::new_checked(&frame[p.l3..]).is_ok_and(|h| h.verify_checksum());
    let at = p.l4 + if p.is_tcp() { 16 } else { 6 };
    let stored = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let none = p.is_udp() && stored == 0;
    let l4_ok = checksum::l4_checksum_ipv4(frame, &p).is_ok_and(|c| same_checksum(c, stored));
    Some((ip_ok, l4_ok, none))
}

fn install(e: &Engine, cfg: &Config, forwarding: bool, now: Instant) {
    let frames = e.install(
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            forwarding,
            OUR_MAC,
            &e.counters,
        ),
        now,
    );
    for f in frames {
        assert!(
            wire::parse(&f.bytes).is_ok(),
            "engine built an unparsable frame"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // Frames parse, or not, without panicking.
    let _ = wire::parse(data);

    let mut input = Input::new(data);
    let variant = input.u8();
    let mut now = Instant::now();
    let e = Engine::default();
    install(&e, config(variant, false), true, now);
    for (i, s) in SERVERS.iter().enumerate() {
        let mut arp = wire::arp_reply(server_mac(i), Ipv4Addr::from(*s), OUR_MAC, NFA.into());
        e.handle(&mut arp, RxMeta::default(), now, &mut Vec::new());
    }

    let mut out = Vec::new();
    while !input.is_empty() {
        let ctrl = input.u8();
        let dt = input.u8();
        let sel = input.u8();
        let len = usize::from(input.u16() % 2048);
        let mut frame = input.bytes(len).to_vec();
        now += if dt < 128 {
            Duration::from_millis(u64::from(dt) * 10)
        } else {
            Duration::from_secs(u64::from(dt - 128) * 10)
        };
        let client = usize::from(sel & 3);
        let cport = CLIENT_PORTS[usize::from(sel >> 2 & 3)];
        let server = usize::from(sel >> 4 & 1);
        let udp = sel & 0x20 != 0;
        let fix_len = sel & 0x80 == 0;
        match ctrl & 3 {
            0 => {}
            1 => {
                let port = CLUSTER_PORTS[usize::from(sel >> 6 & 1)];
                patch_ip(
                    &mut frame,
                    client_mac(client),
                    CLIENTS[client],
                    CLUSTER,
                    cport,
                    port,
                    udp,
                    fix_len,
                );
            }
            2 => patch_ip(
                &mut frame,
                server_mac(server),
                SERVERS[server],
                RETURN,
                if sel & 0x40 == 0 { 80 } else { cport },
                cport,
                udp,
                fix_len,
            ),
            _ => patch_arp(&mut frame, sel),
        }
        let meta = RxMeta {
            csum_not_ready: ctrl & 4 != 0,
            vlan: ctrl & 8 != 0,
            vlan_id: (ctrl & 8 != 0).then_some(u16::from(sel) & 0x0fff),
            truncated: ctrl & 16 != 0,
        };
        let before = checksums(&frame);
        let received_len = frame.len();
        out.clear();
        let verdict = e.handle(&mut frame, meta, now, &mut out);
        if let Verdict::Transmit(n) = verdict {
            assert!(n <= received_len, "transmits more than it received");
            let sent = &frame[..n];
            let src_mac = match wire::parse(sent) {
                Ok(Frame::Ip(p)) => p.src_mac,
                Ok(Frame::Fragment(f)) => f.src_mac,
                Ok(Frame::IcmpError(e)) => e.src_mac,
                _ => panic!("transmitted frame does not parse: {sent:02x?}"),
            };
            assert_eq!(src_mac, OUR_MAC, "transmitted frame not from our MAC");
            if let (Some((ip_ok, l4_ok, none)), Some(after)) = (before, checksums(sent)) {
                assert!(!ip_ok || after.0, "a right IP header checksum became wrong");
                if meta.csum_not_ready {
                    assert!(after.1, "a completed L4 checksum is wrong");
                } else if none {
                    assert!(after.2, "a UDP datagram without checksum got one");
                } else {
                    assert!(!l4_ok || after.1, "a right L4 checksum became wrong");
                }
            }
        }
        for f in &out {
            assert!(wire::parse(f).is_ok(), "engine built an unparsable frame");
        }
        if ctrl & 0x20 != 0 {
            let (frames, _) = e.housekeeping(now);
            for f in frames {
                assert!(wire::parse(&f).is_ok(), "engine built an unparsable frame");
            }
        }
        if ctrl & 0x40 != 0 {
            install(&e, config(variant, sel & 2 != 0), sel & 1 == 0, now);
        }
        if ctrl & 0x80 != 0 {
            let on = !e.replication.enabled.load(Relaxed);
            e.replication.enabled.store(on, Relaxed);
            let _ = e.replication.drain();
        }
    }

    // A day later every record has ended and given back what it held.
    install(&e, config(variant, false), true, now);
    now += Duration::from_secs(86_400);
    let _ = e.housekeeping(now);
    assert_eq!(e.conns.len(), 0, "records outlived their timeouts");
    let ret = IpAddr::from(RETURN);
    for proto in [6, 17] {
        assert_eq!(e.natpool.in_use(ret, proto), 0, "NAT ports leaked");
    }
    for port in CLUSTER_PORTS {
        for s in SERVERS {
            if let Some(c) = e.counters.lookup(CLUSTER.into(), port, s.into()) {
                assert_eq!(c.active_signed(), 0, "active count wrong on {port} {s:?}");
            }
        }
    }
});
