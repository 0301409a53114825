//! `tandem_core::ha` heartbeat decode with and without a key, encode → decode round trips,
//! and decoded heartbeats fed to a `ha::Machine` configured as one node of a pair.
//!
//! Input: a variant byte (role, recovery, replication, hatimeout), then operations until
//! the input ends, each `ctrl, dt, len(u16 le), bytes`:
//!
//! * `ctrl` bits 0-1: heartbeat pair the datagram arrived on (pairs 0 and 1 are configured,
//!   2 and 3 are not); bit 2: this node has the key (decode with it), else no key; bit 3:
//!   feed the node its own last heartbeat back (reflected) instead of the bytes; bit 4: the
//!   operator runs `takeover`; bit 5: a full synchronisation completes; bit 6: executor
//!   stop, then start; bit 7: time advance in seconds instead of 10 ms steps.
//!
//! Checked besides "no panic": a datagram that decodes with the key decodes equally without
//! one; whatever decodes re-encodes (with and without the key) and decodes equal; every
//! heartbeat the machine sends round-trips; the machine's timers never livelock (handling
//! every due timeout ends with the next one in the future).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tandem_core::ha::{Action, DropKind, Heartbeat, Machine, ProductVersion, decode, encode};
use tandem_fuzz::Input;
use tandem_fuzz::ha::{EPOCH, KEY, pair, settings};

/// Encodes `hb` with and without the key and checks both decode to `hb`.
fn round_trip(hb: &Heartbeat) {
    // Plain `assert!`: the records section can be 64 KiB, too long to print.
    let n = hb.records.len();
    let plain = encode(hb, None);
    assert!(
        decode(&plain, None).as_ref() == Ok(hb),
        "unkeyed round trip ({n} record bytes)"
    );
    let keyed = encode(hb, Some(KEY));
    let back = decode(&keyed, Some(KEY));
    assert!(
        back.as_ref() == Ok(hb),
        "keyed round trip ({n} record bytes)"
    );
    let back = decode(&keyed, None);
    assert!(
        back.as_ref() == Ok(hb),
        "keyed, read without key ({n} record bytes)"
    );
}

/// Carries out the machine's actions; returns its last heartbeat sent.
fn drain(m: &mut Machine, last: &mut Option<Heartbeat>) {
    let mut n = 0;
    while let Some(a) = m.poll_action() {
        n += 1;
        assert!(n < 10_000, "the machine queues actions without end");
        if let Action::SendHeartbeat { heartbeat, .. } = a {
            round_trip(&heartbeat);
            *last = Some(heartbeat);
        }
    }
}

/// Handles every due timeout; the machine must then have its next timer in the future.
fn timeouts(m: &mut Machine, now: Instant, last: &mut Option<Heartbeat>) {
    let mut n = 0;
    while let Some(t) = m.poll_timeout() {
        if t > now {
            break;
        }
        n += 1;
        assert!(
            n < 1000,
            "timers livelock: {t:?} <= {now:?} after {n} rounds"
        );
        m.handle_timeout(now);
        drain(m, last);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let variant = input.u8();
    let mut now = Instant::now();
    let mut m = Machine::new(EPOCH, ProductVersion::new(9, 0, 5, 8));
    m.configure(now, &settings(variant, false));
    m.executor_started(now);
    let mut last = None;
    drain(&mut m, &mut last);

    while !input.is_empty() {
        let ctrl = input.u8();
        let dt = u64::from(input.u8());
        let bytes = input.frame().unwrap_or_default();
        now += if ctrl & 0x80 != 0 {
            Duration::from_secs(dt)
        } else {
            Duration::from_millis(dt * 10)
        };

        let plain = decode(bytes, None);
        let keyed = decode(bytes, Some(KEY));
        if let Ok(hb) = &keyed {
            assert_eq!(
                plain.as_ref(),
                Ok(hb),
                "decodes with the key but not without"
            );
        }
        if let Ok(hb) = &plain {
            round_trip(hb);
        }

        let (local, remote) = pair(ctrl & 3);
        let decoded = if ctrl & 8 != 0 {
            last.clone().ok_or(DropKind::Malformed)
        } else if ctrl & 4 != 0 {
            keyed.map_err(|e| e.kind())
        } else {
            plain.map_err(|e| e.kind())
        };
        match decoded {
            Ok(hb) => match m.pair_index(local, remote) {
                Some(i) => {
                    let _ = m.handle_heartbeat(now, i, &hb);
                }
                None => m.record_bad_datagram(DropKind::UnknownPair),
            },
            Err(kind) => m.record_bad_datagram(kind),
        }
        drain(&mut m, &mut last);
        if ctrl & 0x10 != 0 {
            let _ = m.takeover(now);
        }
        if ctrl & 0x20 != 0 {
            m.sync_complete(now);
        }
        if ctrl & 0x40 != 0 {
            m.executor_stopped(now);
            drain(&mut m, &mut last);
            m.executor_started(now);
        }
        drain(&mut m, &mut last);
        timeouts(&mut m, now, &mut last);
        let _ = m.status(now);
    }
});
