//! Replication messages (batch and acknowledgement) decoded, and a `Receiver` taking them on
//! the validated path against a small configuration, several messages per input so that
//! sequence numbers, sessions, gaps and full synchronisations are explored. Delivered records
//! are installed in a standby's forwarding engine, as tandemd does.
//!
//! Configuration: cluster 192.0.2.100, MAC port 80 (affinity, stickytime 60) and NAT port
//! 8080 (returnaddress 192.0.2.200, mapport 80), servers 192.0.2.11 and 192.0.2.12 on both,
//! repstrategy both.
//!
//! Input: a byte for the receiver's window (1..=256), then operations `ctrl, dt, len(u16
//! le), bytes` until the input ends. `ctrl` bit 0: the bytes are an acknowledgement (decoded
//! with `Ack::decode`) rather than a batch; bit 1: `Receiver::reset` first; bit 2: housekeeping
//! of the engine; `dt`: time advance (< 128: dt × 10 ms, else (dt - 128) × 10 s).
//!
//! Checked besides "no panic": an acknowledgement that decodes re-encodes to the same bytes;
//! every delivered record is valid for the configuration and re-encodes to an element that
//! decodes equal; the receiver never holds more batches than its window; it acknowledges every
//! batch of the current session; when every record's own lifetime (at most 2^32 s) is over,
//! the engine holds no record, no NAT port and no active connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tandem_core::config::{Config, load_file};
use tandem_core::forward::{Engine, Plan};
use tandem_core::replication::{
    Ack, BatchHeader, Item, MessageKind, Reader, Receiver, ReceiverConfig, Record, message_kind,
    validate,
};
use tandem_fuzz::Input;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        load_file(
            tandem_fuzz::REPLICATION_CONFIG,
            "fuzz.cfg",
            &Config::default(),
        )
        .expect("valid config")
    })
}

fn check_record(r: &Record) {
    assert_eq!(validate(r, config()), Ok(()), "delivered an invalid record");
    let mut bytes = Vec::new();
    r.encode(&mut bytes);
    assert_eq!(bytes.len(), r.encoded_len(), "encoded_len");
    let mut rd = Reader::new(&bytes);
    assert_eq!(
        Item::decode(&mut rd),
        Ok(Item::Record(*r)),
        "record round trip"
    );
    assert!(rd.is_empty(), "record element longer than written");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let window = u32::from(input.u8()) + 1;
    let cfg = config();
    let mut now = Instant::now();
    let mut rx = Receiver::new(ReceiverConfig { window });
    let engine = Engine::default();
    engine.install(
        Plan::compile(
            cfg,
            &tandem_core::health::Overlay::default(),
            false,
            [2, 0, 0, 0, 0, 2],
            &engine.counters,
        ),
        now,
    );

    while !input.is_empty() {
        let ctrl = input.u8();
        let dt = input.u8();
        let bytes = input.frame().unwrap_or_default();
        now += if dt < 128 {
            Duration::from_millis(u64::from(dt) * 10)
        } else {
            Duration::from_secs(u64::from(dt - 128) * 10)
        };
        if ctrl & 2 != 0 {
            rx.reset();
        }
        let kind = message_kind(bytes);
        if ctrl & 1 != 0 {
            if let Ok(ack) = Ack::decode(bytes) {
                assert_eq!(kind, Some(MessageKind::Ack));
                assert_eq!(ack.to_bytes(), bytes, "ack round trip");
            }
            continue;
        }
        let header = BatchHeader::decode(&mut Reader::new(bytes)).ok();
        if header.is_some() {
            assert_eq!(kind, Some(MessageKind::Batch));
        }
        let out = rx.on_batch_validated(bytes, now, cfg);
        for r in &out.records {
            check_record(r);
            let _ = engine.install_replicated(r, now);
        }
        let stats = rx.stats();
        assert!(
            stats.held <= window as usize,
            "holds {} > window {window}",
            stats.held
        );
        match header {
            None => assert!(out.ack.is_none(), "acknowledged garbage"),
            Some(h) if out.dropped.stale_session == 0 => {
                let ack = out
                    .ack
                    .expect("a batch of the current session is acknowledged");
                assert_eq!(ack.session, h.session, "acknowledged another session");
            }
            Some(_) => {}
        }
        if ctrl & 4 != 0 {
            let _ = engine.housekeeping(now);
        }
    }

    // Past every record's own lifetime (staletimeout and stickytime are at most 2^32 s).
    now += Duration::from_secs(1 << 33);
    let _ = engine.housekeeping(now);
    assert_eq!(engine.conns.len(), 0, "records outlived their lifetime");
    let ret: IpAddr = "192.0.2.200".parse().unwrap();
    for proto in [6, 17] {
        assert_eq!(engine.natpool.in_use(ret, proto), 0, "NAT ports leaked");
    }
    for port in [80, 8080] {
        for s in ["192.0.2.11", "192.0.2.12"] {
            let s: IpAddr = s.parse().unwrap();
            if let Some(c) = engine
                .counters
                .lookup("192.0.2.100".parse().unwrap(), port, s)
            {
                assert_eq!(c.active_signed(), 0, "active count wrong");
            }
        }
    }
});
