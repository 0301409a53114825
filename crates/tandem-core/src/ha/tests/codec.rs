//! The heartbeat datagram: round trips, authentication, truncation, replay, versions.

use crate::config::{Recovery, Role};
use crate::ha::heartbeat::{
    self, DropKind, FLAG_KEYED, HEADER_LEN, Heartbeat, HeartbeatError, MAC_LEN, MAX_RECORDS,
    MIN_LEN, ProductVersion, ReplayGuard, Request, State, SubState, decode, encode,
};
use proptest::prelude::*;

const KEY: &[u8] = b"a shared secret of the pair";

fn sample() -> Heartbeat {
    Heartbeat {
        version: ProductVersion::new(9, 0, 5, 8),
        epoch: 1_700_000_000_123,
        seq: 42,
        ack_epoch: 1_700_000_000_456,
        ack: 41,
        role: Role::Backup,
        state: State::Standby,
        sub_state: SubState::Synchronized,
        recovery: Recovery::Manual,
        reach_count: 2,
        reach_total: 3,
        config_digest: 0xDEAD_BEEF_0123_4567,
        request: Request::StandbyEntered,
        maintenance: true,
        handover: false,
        hatimeout_ms: 2000,
        interval_ms: 500,
        records: b"some replication records".to_vec(),
    }
}

#[test]
fn round_trip_unkeyed_and_keyed() {
    for records in [Vec::new(), b"x".to_vec(), vec![7u8; 1400]] {
        let hb = Heartbeat {
            records,
            ..sample()
        };
        let plain = encode(&hb, None);
        assert_eq!(plain.len(), MIN_LEN + hb.records.len());
        assert_eq!(decode(&plain, None).unwrap(), hb);
        let keyed = encode(&hb, Some(KEY));
        assert_eq!(keyed.len(), MIN_LEN + hb.records.len() + MAC_LEN);
        assert_eq!(decode(&keyed, Some(KEY)).unwrap(), hb);
    }
}

#[test]
fn every_enum_value_round_trips() {
    for state in [
        State::Idle,
        State::Listen,
        State::Active,
        State::Standby,
        State::Down,
    ] {
        for request in [
            Request::None,
            Request::TakeoverRequest,
            Request::StandbyEntered,
            Request::YieldAck,
            Request::Leaving,
        ] {
            for (role, recovery, sub_state) in [
                (Role::Primary, Recovery::Auto, SubState::NotSynchronized),
                (Role::Backup, Recovery::Manual, SubState::Synchronized),
            ] {
                let hb = Heartbeat {
                    state,
                    request,
                    role,
                    recovery,
                    sub_state,
                    ..sample()
                };
                assert_eq!(decode(&encode(&hb, Some(KEY)), Some(KEY)).unwrap(), hb);
            }
        }
    }
}

#[test]
fn stable_header_layout() {
    let bytes = encode(&sample(), Some(KEY));
    assert_eq!(&bytes[..4], b"TNDM");
    assert_eq!(bytes[4], 1, "format");
    assert_eq!(
        bytes[5],
        0x01 | 0x02 | 0x04,
        "flags keyed|records|maintenance"
    );
    assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), HEADER_LEN as u16);
    assert_eq!(&bytes[8..16], &[0, 9, 0, 0, 0, 5, 0, 8], "V.R.M.F");
    assert_eq!(
        u64::from_be_bytes(bytes[24..32].try_into().unwrap()),
        42,
        "seq"
    );
    assert_eq!(bytes[49], 3, "state Standby");
    assert_eq!(bytes[64], 2, "request standby-entered");
    assert!(heartbeat::carries_mac(&bytes));
    assert!(!heartbeat::carries_mac(&encode(&sample(), None)));
}

#[test]
fn truncated_at_every_length() {
    for key in [None, Some(KEY)] {
        let bytes = encode(&sample(), key);
        for len in 0..bytes.len() {
            match decode(&bytes[..len], key) {
                Err(HeartbeatError::Truncated { got, .. }) => assert_eq!(got, len),
                other => panic!("len {len} key {}: {other:?}", key.is_some()),
            }
        }
        // An unkeyed node reads a keyed datagram cut anywhere as truncated too.
        if key.is_some() {
            for len in 0..bytes.len() {
                assert!(matches!(
                    decode(&bytes[..len], None),
                    Err(HeartbeatError::Truncated { .. })
                ));
            }
        }
    }
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut bytes = encode(&sample(), None);
    bytes.push(0);
    assert_eq!(
        decode(&bytes, None),
        Err(HeartbeatError::Malformed("length (trailing bytes)"))
    );
}

#[test]
fn every_flipped_bit_is_refused_with_a_key() {
    let bytes = encode(&sample(), Some(KEY));
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        let err = decode(&b, Some(KEY)).expect_err("a flipped bit must never pass");
        // Past the stable header (and outside the records length), the MAC is what catches it.
        let byte = i / 8;
        if byte >= 8 && !(HEADER_LEN..HEADER_LEN + 2).contains(&byte) {
            assert_eq!(err, HeartbeatError::BadMac, "bit {i}");
        }
    }
}

#[test]
fn wrong_key_missing_mac_and_unkeyed_receiver() {
    let keyed = encode(&sample(), Some(KEY));
    assert_eq!(
        decode(&keyed, Some(b"another key")),
        Err(HeartbeatError::BadMac)
    );
    let plain = encode(&sample(), None);
    assert_eq!(decode(&plain, Some(KEY)), Err(HeartbeatError::MissingMac));
    // A node without a key still sees its keyed partner alive (no dual-active from a key
    // configured on one side only); it authenticates nothing.
    assert_eq!(decode(&keyed, None).unwrap(), sample());
    // Forging: change a field and recompute nothing → BadMac.
    let mut forged = keyed.clone();
    forged[49] = 2; // state Active
    assert_eq!(decode(&forged, Some(KEY)), Err(HeartbeatError::BadMac));
    // Dropping the trailer and the KEYED flag does not help the forger either.
    let mut stripped = keyed[..keyed.len() - MAC_LEN].to_vec();
    stripped[5] &= !FLAG_KEYED;
    assert_eq!(
        decode(&stripped, Some(KEY)),
        Err(HeartbeatError::MissingMac)
    );
}

#[test]
fn foreign_datagrams() {
    assert_eq!(
        decode(b"GET / HTTP/1.1\r\n\r\n", None),
        Err(HeartbeatError::BadMagic)
    );
    let mut b = encode(&sample(), None);
    b[0] = b'X';
    assert_eq!(decode(&b, None), Err(HeartbeatError::BadMagic));
    assert_eq!(HeartbeatError::BadMagic.kind(), DropKind::BadMagic);
}

#[test]
fn format_evolution() {
    // Another format number: refused.
    let mut b = encode(&sample(), None);
    b[4] = 2;
    assert!(matches!(
        decode(&b, None),
        Err(HeartbeatError::UnsupportedFormat { format: 2, .. })
    ));
    // A critical flag this decoder does not know: refused.
    let mut b = encode(&sample(), None);
    b[5] |= 0x80;
    assert!(matches!(
        decode(&b, None),
        Err(HeartbeatError::UnsupportedFormat { .. })
    ));
    // The last non-critical flag, hand-over (0x08), added after the first release: an older
    // decoder ignores it, this one reads it.
    let mut b = encode(&sample(), Some(KEY));
    b[5] |= 0x08;
    let mac_start = b.len() - MAC_LEN;
    resign(&mut b, mac_start);
    let decoded = decode(&b, Some(KEY)).unwrap();
    assert!(decoded.handover);
    assert_eq!(
        Heartbeat {
            handover: false,
            ..decoded
        },
        sample()
    );
    // A later product appends 6 bytes of fields after offset 76: still decoded, fields skipped.
    let plain = encode(&sample(), None);
    let mut longer = plain[..HEADER_LEN].to_vec();
    longer.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    longer.extend_from_slice(&plain[HEADER_LEN..]);
    longer[6..8].copy_from_slice(&((HEADER_LEN + 6) as u16).to_be_bytes());
    assert_eq!(decode(&longer, None).unwrap(), sample());
    let mut keyed = longer.clone();
    keyed[5] |= FLAG_KEYED;
    let end = keyed.len();
    keyed.extend_from_slice(&[0; MAC_LEN]);
    resign(&mut keyed, end);
    assert_eq!(decode(&keyed, Some(KEY)).unwrap(), sample());
    // A header shorter than format 1's: malformed.
    let mut b = encode(&sample(), None);
    b[6..8].copy_from_slice(&70u16.to_be_bytes());
    assert_eq!(
        decode(&b, None),
        Err(HeartbeatError::Malformed("header length"))
    );
}

fn resign(b: &mut Vec<u8>, mac_start: usize) {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(&b[..mac_start]);
    let tag = mac.finalize().into_bytes();
    b.truncate(mac_start);
    b.extend_from_slice(&tag);
}

#[test]
fn out_of_range_codes_are_malformed() {
    for (offset, what) in [
        (48, "role"),
        (49, "state"),
        (50, "sub-state"),
        (51, "recovery"),
        (64, "request"),
    ] {
        let mut b = encode(&sample(), None);
        b[offset] = 0xEE;
        assert_eq!(decode(&b, None), Err(HeartbeatError::Malformed(what)));
    }
    let mut b = encode(
        &Heartbeat {
            records: Vec::new(),
            ..sample()
        },
        None,
    );
    b[5] |= 0x02; // records flag without records
    assert_eq!(
        decode(&b, None),
        Err(HeartbeatError::Malformed("records flag"))
    );
}

#[test]
fn replay_guard() {
    let mut g = ReplayGuard::new();
    assert!(g.accept(10, 1).is_ok());
    assert!(g.accept(10, 2).is_ok());
    assert!(g.accept(10, 2).is_err(), "same seq");
    assert!(g.accept(10, 1).is_err(), "older seq");
    assert!(g.accept(9, 100).is_err(), "older epoch");
    assert!(
        g.accept(11, 1).is_ok(),
        "restart: new epoch, seq starts again"
    );
    assert!(g.accept(10, 3).is_err(), "the old epoch is gone for good");
    assert_eq!(g.last(), Some((11, 1)));
    assert!(g.check(11, 2).is_ok());
    assert_eq!(g.last(), Some((11, 1)), "check does not record");
}

#[test]
fn product_versions() {
    let v: ProductVersion = "9.0.5.8".parse().unwrap();
    assert_eq!(v, ProductVersion::new(9, 0, 5, 8));
    assert_eq!(v.to_string(), "9.0.5.8");
    assert!(
        v.compatible(&"9.0.5.10".parse().unwrap()),
        "fix level ignored"
    );
    assert!(
        v.compatible(&"9.0.0.0".parse().unwrap()),
        "modification ignored (8.5.5.16+)"
    );
    assert!(
        !v.compatible(&"9.1.0.0".parse().unwrap()),
        "release differs"
    );
    assert!(
        !v.compatible(&"8.5.5.16".parse().unwrap()),
        "version differs"
    );
    for bad in [
        "",
        "9",
        "9.0.5",
        "9.0.5.8.1",
        "9.0.x.8",
        "9..5.8",
        "9.0.5.70000",
        "-1.0.0.0",
        "+9.0.5.8",
    ] {
        assert!(bad.parse::<ProductVersion>().is_err(), "{bad:?}");
    }
    assert_eq!(
        " 8.5.5.16 ".parse::<ProductVersion>().unwrap(),
        ProductVersion::new(8, 5, 5, 16)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes, None);
        let _ = decode(&bytes, Some(KEY));
    }

    #[test]
    fn decode_never_panics_on_mutated_heartbeats(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
        keyed in any::<bool>(),
    ) {
        let key = keyed.then_some(KEY);
        let mut b = encode(&sample(), key);
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        let len = b.len();
        b.truncate(len - cut % 4);
        let _ = decode(&b, None);
        let r = decode(&b, Some(KEY));
        if keyed && b.len() == len && r.is_ok() {
            // Only an edit that changed nothing can pass authentication.
            prop_assert_eq!(r.unwrap(), sample());
        }
    }

    #[test]
    fn round_trip_any_heartbeat(
        epoch in any::<u64>(), seq in any::<u64>(), ack_epoch in any::<u64>(), ack in any::<u64>(),
        reach_count in any::<u16>(), reach_total in any::<u16>(), digest in any::<u64>(),
        v in any::<[u16; 4]>(), h in any::<u32>(), i in any::<u32>(), maintenance in any::<bool>(),
        records in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let hb = Heartbeat {
            version: ProductVersion::new(v[0], v[1], v[2], v[3]),
            epoch, seq, ack_epoch, ack, reach_count, reach_total, config_digest: digest,
            hatimeout_ms: h, interval_ms: i, maintenance, records, ..sample()
        };
        prop_assert_eq!(decode(&encode(&hb, Some(KEY)), Some(KEY)).unwrap(), hb.clone());
        prop_assert_eq!(decode(&encode(&hb, None), None).unwrap(), hb);
    }
}

#[test]
fn example_in_docs_heartbeat_md() {
    let hb = Heartbeat {
        version: ProductVersion::new(9, 0, 5, 8),
        epoch: 0x0000_018B_CFE5_6C00,
        seq: 42,
        ack_epoch: 0x0000_018B_CFE5_7000,
        ack: 41,
        role: Role::Primary,
        state: State::Active,
        sub_state: SubState::Synchronized,
        recovery: Recovery::Auto,
        reach_count: 1,
        reach_total: 1,
        config_digest: 0x4D,
        request: Request::None,
        maintenance: false,
        handover: false,
        hatimeout_ms: 2000,
        interval_ms: 500,
        records: Vec::new(),
    };
    let doc = include_str!("../../../../../docs/heartbeat.md");
    let example = doc.split("## Example").nth(1).unwrap();
    let hex: Vec<u8> = example
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit()))
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.len() == 2 && u8::from_str_radix(w, 16).is_ok())
                .map(|w| u8::from_str_radix(w, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(hex, encode(&hb, None));
    assert_eq!(decode(&hex, None).unwrap(), hb);
}

/// Fuzzing finding 2 (BENCHMARKS.md): a records section longer than the encoder ever writes
/// decoded, and re-encoded shorter. It is refused now.
#[test]
fn fuzz_regression_records_longer_than_the_encoder_writes_are_refused() {
    let mut b = encode(&sample(), None);
    b.truncate(HEADER_LEN);
    let n = MAX_RECORDS + 3;
    b.extend_from_slice(&(n as u16).to_be_bytes());
    b.extend(std::iter::repeat_n(0u8, n));
    b[5] |= 0x02; // RECORDS
    assert_eq!(
        decode(&b, None),
        Err(HeartbeatError::Malformed("records length"))
    );
    let mut ok = sample();
    ok.records = vec![7; MAX_RECORDS];
    assert_eq!(decode(&encode(&ok, None), None).unwrap(), ok);
}
