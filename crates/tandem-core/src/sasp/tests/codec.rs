//! Codec tests: the golden vectors of `sasp-notes.md` §3.2 byte for byte, negative vectors,
//! truncation at every offset, framing, and proptest round trips.

use crate::codec::Reader;
use crate::sasp::codec::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn lb1(name: &str) -> Group {
    Group::new("LB1", name)
}

fn m(last: u8) -> Member {
    Member::new(IpAddr::V4(Ipv4Addr::new(10, 10, 10, last)), 80, 6)
}

fn labelled(last: u8, label: &str) -> Member {
    Member {
        label: label.into(),
        ..m(last)
    }
}

fn we(flags: u8, weight: u16) -> WeightEntry {
    WeightEntry {
        state: 0,
        flags,
        weight,
    }
}

fn weights(entries: Vec<(Member, WeightEntry)>) -> Vec<GroupWeights> {
    vec![GroupWeights {
        group: lb1("FARM1"),
        entries,
    }]
}

fn v(version: u8, id: u32, body: Body) -> Message {
    Message { version, id, body }
}

/// (name, hex, value) of every positive vector of §3.2.
fn golden() -> Vec<(&'static str, &'static str, Message)> {
    use Body::*;
    let reg_members = vec![GroupMembers {
        group: lb1("FARM1"),
        members: vec![m(1), labelled(2, "web2")],
    }];
    vec![
        (
            "v01_get_weights_reply_rfc_example",
            "2010000d010000006a320000001035000900004000014011000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a010030120008000d0028301000180600500000000000000000000000000a0a0a020030120008000d0014",
            v(1, 0x3200_0000, GetWeightsReply {
                code: ReturnCode::SUCCESS,
                interval: 64,
                groups: weights(vec![(m(1), we(0x0d, 40)), (m(2), we(0x0d, 20))]),
            }),
        ),
        (
            "v02_set_lb_state_req_pull",
            "2010000d0100000017000000011050000a034c42317f00",
            v(1, 1, SetLbStateRequest { lb_uid: "LB1".into(), health: 0x7f, flags: 0 }),
        ),
        (
            "v03_set_lb_state_req_push_nochange",
            "2010000d0100000017000000021050000a034c42317f05",
            v(1, 2, SetLbStateRequest {
                lb_uid: "LB1".into(),
                health: 0x7f,
                flags: LB_FLAG_PUSH | LB_FLAG_NOCHANGE,
            }),
        ),
        (
            "v04_set_lb_state_reply_ok",
            "2010000d0100000012000000021055000500",
            v(1, 2, SetLbStateReply { code: ReturnCode::SUCCESS }),
        ),
        (
            "v05_registration_req",
            "2010000d010000005c00000003101000070100014010000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a01003010001c0600500000000000000000000000000a0a0a020477656232",
            v(1, 3, RegistrationRequest { flags: FLAG_LB, groups: reg_members }),
        ),
        (
            "v06_registration_reply_ok",
            "2010000d0100000012000000031015000500",
            v(1, 3, RegistrationReply { code: ReturnCode::SUCCESS }),
        ),
        (
            "v07_registration_reply_already_registered",
            "2010000d0100000012000000031015000540",
            v(1, 3, RegistrationReply { code: ReturnCode::ALREADY_REGISTERED }),
        ),
        (
            "v08_get_weights_req_farm1",
            "2010000d0100000021000000041030000600013011000e034c4231054641524d31",
            v(1, 4, GetWeightsRequest { groups: vec![lb1("FARM1")] }),
        ),
        (
            "v09_get_weights_req_all_groups",
            "2010000d010000001c0000000510300006000130110009034c423100",
            v(1, 5, GetWeightsRequest { groups: vec![lb1("")] }),
        ),
        (
            "v10_get_weights_reply_unknown_lbuid",
            "2010000d010000001600000005103500094300000000",
            v(1, 5, GetWeightsReply {
                code: ReturnCode::UNKNOWN_LB_UID,
                interval: 0,
                groups: vec![],
            }),
        ),
        (
            "v11_send_weights_push",
            "2010000d0100000067000000001040000600014011000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a010030120008000d0028301000180600500000000000000000000000000a0a0a020030120008000f0000",
            v(1, 0, SendWeights {
                groups: weights(vec![(m(1), we(0x0d, 40)), (m(2), we(0x0f, 0))]),
            }),
        ),
        (
            "v12_set_member_state_req_quiesce",
            "2010000d010000004600000006106000070100014012000600013011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a0200301300060001",
            v(1, 6, SetMemberStateRequest {
                flags: FLAG_LB,
                groups: vec![GroupMemberStates {
                    group: lb1("FARM1"),
                    entries: vec![(m(2), MemberState { state: 0, flags: STATE_QUIESCE })],
                }],
            }),
        ),
        (
            "v13_set_member_state_reply_ok",
            "2010000d0100000012000000061065000500",
            v(1, 6, SetMemberStateReply { code: ReturnCode::SUCCESS }),
        ),
        (
            "v14_dereg_req_one_member",
            "2010000d01000000410000000710200008010100014010000600013011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a0200",
            v(1, 7, DeregistrationRequest {
                flags: FLAG_LB,
                reason: REASON_LEARNED,
                groups: vec![GroupMembers { group: lb1("FARM1"), members: vec![m(2)] }],
            }),
        ),
        (
            "v15_dereg_req_whole_group",
            "2010000d01000000290000000810200008010000014010000600003011000e034c4231054641524d31",
            v(1, 8, DeregistrationRequest {
                flags: FLAG_LB,
                reason: REASON_NONE,
                groups: vec![GroupMembers { group: lb1("FARM1"), members: vec![] }],
            }),
        ),
    ]
    .into_iter()
    .chain(more_golden())
    .collect()
}

fn more_golden() -> Vec<(&'static str, &'static str, Message)> {
    use Body::*;
    let v6a: IpAddr = "2001:db8::10".parse().unwrap();
    let v6b: IpAddr = "2001:db8::20".parse().unwrap();
    vec![
        (
            "v16_dereg_req_all_groups",
            "2010000d010000002400000009102000080100000140100006000030110009034c423100",
            v(
                1,
                9,
                DeregistrationRequest {
                    flags: FLAG_LB,
                    reason: REASON_NONE,
                    groups: vec![GroupMembers {
                        group: lb1(""),
                        members: vec![],
                    }],
                },
            ),
        ),
        (
            "v17_dereg_reply_ok",
            "2010000d0100000012000000091025000500",
            v(
                1,
                9,
                DeregistrationReply {
                    code: ReturnCode::SUCCESS,
                },
            ),
        ),
        (
            "v18_registration_req_ipv6_system_member",
            "2010000d01000000590000000a101000070100014010000600023011000f034c42310656364641524d301000180601bb20010db8000000000000000000000010003010001800000020010db800000000000000000000002000",
            v(
                1,
                10,
                RegistrationRequest {
                    flags: FLAG_LB,
                    groups: vec![GroupMembers {
                        group: lb1("V6FARM"),
                        members: vec![Member::new(v6a, 443, 6), Member::new(v6b, 0, 0)],
                    }],
                },
            ),
        ),
        (
            "v19_set_lb_state_req_v2_proposal",
            "2010000d02000000170000000b1050000a034c42317f01",
            v(
                2,
                11,
                SetLbStateRequest {
                    lb_uid: "LB1".into(),
                    health: 0x7f,
                    flags: LB_FLAG_PUSH,
                },
            ),
        ),
        (
            "v20_set_lb_state_reply_not_understood_v1",
            "2010000d01000000120000000b1055000510",
            v(
                1,
                11,
                SetLbStateReply {
                    code: ReturnCode::NOT_UNDERSTOOD,
                },
            ),
        ),
    ]
}

#[test]
fn golden_vectors_encode_and_decode_byte_for_byte() {
    let all = golden();
    assert_eq!(all.len(), 20, "every positive vector of §3.2");
    for (name, h, msg) in all {
        let bytes = hex(h);
        assert_eq!(msg.to_bytes().unwrap(), bytes, "{name}: encode");
        assert_eq!(Message::decode(&bytes).unwrap(), msg, "{name}: decode");
        let header = Header::decode(&bytes).unwrap();
        assert_eq!(header.message_len, bytes.len(), "{name}: message length");
        assert_eq!(peek_type(&bytes), Some(msg.body.message_type()), "{name}");
    }
}

#[test]
fn golden_vector_lengths_and_labels() {
    let v01 = hex(golden()[0].1);
    assert_eq!(v01.len(), 106, "the RFC §8 example");
    // The Get Weights Reply TLV's Length is 9 and the group's 6: lengths do not nest.
    assert_eq!(&v01[13..17], &[0x10, 0x35, 0x00, 0x09]);
    let Body::RegistrationRequest { groups, .. } =
        Message::decode(&hex(golden()[4].1)).unwrap().body
    else {
        panic!("v05 is a registration")
    };
    assert_eq!(groups[0].members[1].label, "web2");
}

#[test]
fn framing_vector_splits_into_three_messages() {
    let stream = hex(
        "2010000d0100000017000000011050000a034c42317f002010000d010000005c00000003101000070100014010000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a01003010001c0600500000000000000000000000000a0a0a0204776562322010000d0100000021000000041030000600013011000e034c4231054641524d31",
    );
    assert_eq!(stream.len(), 148);
    // Fed whole, and one byte at a time: the same three messages, IDs 1, 3, 4.
    for chunk in [148, 1, 7] {
        let mut f = Framer::new();
        let mut ids = Vec::new();
        for part in stream.chunks(chunk) {
            f.push(part);
            while let Some(m) = f.next_message().unwrap() {
                ids.push(m.id);
            }
        }
        assert_eq!(ids, [1, 3, 4], "chunks of {chunk}");
        assert_eq!(f.buffered(), 0);
    }
}

#[test]
fn negative_vectors_are_refused() {
    let cases = [
        (
            "n01_bad_header_type",
            "2011000d0100000012000000031015000500",
            DecodeError::BadHeaderType(0x2011),
        ),
        (
            "n02_bad_header_tlv_length",
            "2010000c0100000012000000031015000500",
            DecodeError::BadHeaderLength(12),
        ),
        (
            "n03_lbuid_len_overruns",
            "2010000d0100000021000000041030000600013011000e204c4231054641524d31",
            DecodeError::Truncated("LB UID"),
        ),
        (
            "n04_unknown_message_type",
            "2010000d0100000012000000031070000500",
            DecodeError::UnknownMessageType(0x1070),
        ),
        (
            "n05_msg_len_below_header",
            "2010000d010000000c000000011050000a034c42317f00",
            DecodeError::BadMessageLength(12),
        ),
        (
            "n06_msg_len_negative",
            "2010000d0180000017000000011050000a034c42317f00",
            DecodeError::BadMessageLength(0x8000_0017),
        ),
    ];
    for (name, h, want) in cases {
        let bytes = hex(h);
        assert_eq!(Message::decode(&bytes), Err(want.clone()), "{name}");
        let mut f = Framer::new();
        f.push(&bytes);
        assert_eq!(f.next_message(), Err(want.clone()), "{name}: framer");
        f.push(&hex(golden()[1].1));
        assert_eq!(
            f.next_message(),
            Err(want),
            "{name}: the framer stays failed"
        );
    }
}

#[test]
fn bad_lengths_strings_and_trailing_bytes_are_refused() {
    let mut v05 = hex(golden()[4].1);
    // Member Data Length 0x1c → 0x1d: a leaf component must carry its exact length.
    assert_eq!(
        &v05[64..68],
        &[0x30, 0x10, 0x00, 0x1c],
        "the second Member Data"
    );
    assert_eq!(Message::decode(&v05).unwrap().body.message_type(), 0x1010);
    v05[67] = 0x1d;
    assert!(matches!(
        Message::decode(&v05),
        Err(DecodeError::BadLength {
            what: "Member Data",
            got: 0x1d,
            expected: 28
        })
    ));
    // A label that is not UTF-8.
    let mut v05 = hex(golden()[4].1);
    let n = v05.len();
    v05[n - 1] = 0xff;
    assert_eq!(Message::decode(&v05), Err(DecodeError::BadString("Label")));
    // Two components in one message.
    let mut two = hex("2010000d0100000017000000031015000500");
    two.extend_from_slice(&hex("1015000500"));
    assert_eq!(Message::decode(&two), Err(DecodeError::TrailingBytes(5)));
    // A buffer longer than its Message Length.
    let mut long = hex(golden()[5].1);
    long.push(0);
    assert_eq!(Message::decode(&long), Err(DecodeError::TrailingBytes(1)));
    // Oversized: refused from the header alone.
    let mut big = hex("2010000d0100000000000000031015000500");
    big[5..9].copy_from_slice(&((MAX_MESSAGE_LEN as u32) + 1).to_be_bytes());
    assert!(matches!(
        Header::decode(&big),
        Err(DecodeError::TooLong { .. })
    ));
    let mut f = Framer::new();
    f.push(&big[..HEADER_LEN]);
    assert!(matches!(f.next_message(), Err(DecodeError::TooLong { .. })));
    // Counts drive nesting: a count larger than what follows is a truncation.
    let mut v08 = hex(golden()[7].1);
    v08[18] = 2;
    assert_eq!(
        Message::decode(&v08),
        Err(DecodeError::Truncated("Group Data"))
    );
    // A component where another is expected.
    let mut v12 = hex(golden()[11].1);
    let at = v12.len() - 6;
    v12[at + 1] = 0x12;
    assert!(matches!(
        Message::decode(&v12),
        Err(DecodeError::UnexpectedComponent { found: 0x3012, .. })
    ));
}

#[test]
fn parent_lengths_that_include_nested_components_are_accepted() {
    // v05 with the Registration TLV's Length = everything after the header (92 − 13 = 79)
    // and the group's Length = 6 + 14 + 24 + 28.
    let mut v05 = hex(golden()[4].1);
    v05[15..17].copy_from_slice(&79u16.to_be_bytes());
    v05[22..24].copy_from_slice(&72u16.to_be_bytes());
    assert_eq!(Message::decode(&v05).unwrap(), golden()[4].2);
    v05[22..24].copy_from_slice(&71u16.to_be_bytes());
    assert!(matches!(
        Message::decode(&v05),
        Err(DecodeError::BadLength {
            what: "Group of Member Data",
            got: 71,
            ..
        })
    ));
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for (name, h, msg) in golden() {
        let bytes = hex(h);
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..cut]).is_err(),
                "{name} cut at {cut}"
            );
            // Same cut with the Message Length patched to match: the body is short.
            if cut >= HEADER_LEN {
                let mut b = bytes[..cut].to_vec();
                b[5..9].copy_from_slice(&(cut as u32).to_be_bytes());
                assert!(
                    Message::decode(&b).is_err(),
                    "{name} cut at {cut}, length patched"
                );
            }
            let mut f = Framer::new();
            f.push(&bytes[..cut]);
            assert_eq!(f.next_message(), Ok(None), "{name}: framer waits at {cut}");
            f.push(&bytes[cut..]);
            assert_eq!(
                f.next_message(),
                Ok(Some(msg.clone())),
                "{name}: framer at {cut}"
            );
        }
    }
}

#[test]
fn addresses_ipv4_compatible_out_both_forms_in() {
    let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let wire = address_to_wire(a);
    assert_eq!(&wire[..12], &[0; 12]);
    assert_eq!(address_from_wire(wire), a);
    let mapped = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets();
    assert_eq!(address_from_wire(mapped), a);
    for v6 in [
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::UNSPECIFIED,
        "2001:db8::1".parse().unwrap(),
    ] {
        assert_eq!(address_from_wire(v6.octets()), IpAddr::V6(v6));
    }
}

#[test]
fn encode_refuses_what_does_not_fit_and_leaves_the_output_alone() {
    let mut out = vec![9];
    let long = "x".repeat(256);
    let msg = Message::new(
        1,
        Body::SetLbStateRequest {
            lb_uid: long.clone(),
            health: 0,
            flags: 0,
        },
    );
    assert!(matches!(
        msg.encode(&mut out),
        Err(EncodeError::StringTooLong { what: "LB UID", .. })
    ));
    let mut member = m(1);
    member.label = long;
    let msg = Message::new(
        2,
        Body::RegistrationRequest {
            flags: FLAG_LB,
            groups: vec![GroupMembers {
                group: lb1("G"),
                members: vec![member],
            }],
        },
    );
    assert!(matches!(
        msg.encode(&mut out),
        Err(EncodeError::StringTooLong { what: "Label", .. })
    ));
    let msg = Message::new(
        3,
        Body::GetWeightsRequest {
            groups: vec![lb1("G"); 65_536],
        },
    );
    assert!(matches!(
        msg.encode(&mut out),
        Err(EncodeError::TooMany { count: 65_536, .. })
    ));
    let msg = Message::new(
        4,
        Body::RegistrationRequest {
            flags: FLAG_LB,
            groups: vec![GroupMembers {
                group: lb1("G"),
                members: vec![m(1); 50_000],
            }],
        },
    );
    assert!(matches!(
        msg.encode(&mut out),
        Err(EncodeError::TooLong { .. })
    ));
    assert_eq!(out, [9]);
}

#[test]
fn return_codes_have_names() {
    assert_eq!(
        ReturnCode::ALREADY_REGISTERED.describe(),
        "member already registered"
    );
    assert_eq!(
        ReturnCode(0x99).to_string(),
        "0x99 (unknown message-specific error)"
    );
}

// ---- proptest round trips ----

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>()
            .prop_filter("0.0.0.0 and 0.0.0.1 read back as :: and ::1", |a| *a > 1)
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>()
            .prop_filter("outside ::/96 and ::ffff:0:0/96", |a| (a >> 32) > 0xffff)
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

fn arb_str() -> impl Strategy<Value = String> {
    // Up to 255 bytes of UTF-8 (multi-byte characters included).
    "[a-zA-Z0-9 éß€-]{0,60}"
}

fn arb_member() -> impl Strategy<Value = Member> {
    (any::<u8>(), any::<u16>(), arb_addr(), arb_str()).prop_map(
        |(protocol, port, address, label)| Member {
            protocol,
            port,
            address,
            label,
        },
    )
}

fn arb_group() -> impl Strategy<Value = Group> {
    (arb_str(), arb_str()).prop_map(|(lb_uid, name)| Group { lb_uid, name })
}

fn arb_we() -> impl Strategy<Value = WeightEntry> {
    (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(state, flags, weight)| WeightEntry {
        state,
        flags,
        weight,
    })
}

fn arb_gm() -> impl Strategy<Value = GroupMembers> {
    (arb_group(), prop::collection::vec(arb_member(), 0..4))
        .prop_map(|(group, members)| GroupMembers { group, members })
}

fn arb_gw() -> impl Strategy<Value = GroupWeights> {
    (
        arb_group(),
        prop::collection::vec((arb_member(), arb_we()), 0..4),
    )
        .prop_map(|(group, entries)| GroupWeights { group, entries })
}

fn arb_gs() -> impl Strategy<Value = GroupMemberStates> {
    let st = (any::<u8>(), any::<u8>()).prop_map(|(state, flags)| MemberState { state, flags });
    (arb_group(), prop::collection::vec((arb_member(), st), 0..4))
        .prop_map(|(group, entries)| GroupMemberStates { group, entries })
}

fn arb_body() -> impl Strategy<Value = Body> {
    let code = any::<u8>().prop_map(ReturnCode);
    prop_oneof![
        (any::<u8>(), prop::collection::vec(arb_gm(), 0..3))
            .prop_map(|(flags, groups)| Body::RegistrationRequest { flags, groups }),
        code.clone()
            .prop_map(|code| Body::RegistrationReply { code }),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(arb_gm(), 0..3)
        )
            .prop_map(|(flags, reason, groups)| Body::DeregistrationRequest {
                flags,
                reason,
                groups
            }),
        code.clone()
            .prop_map(|code| Body::DeregistrationReply { code }),
        prop::collection::vec(arb_group(), 0..3)
            .prop_map(|groups| Body::GetWeightsRequest { groups }),
        (
            code.clone(),
            any::<u16>(),
            prop::collection::vec(arb_gw(), 0..3)
        )
            .prop_map(|(code, interval, groups)| Body::GetWeightsReply {
                code,
                interval,
                groups
            }),
        prop::collection::vec(arb_gw(), 0..3).prop_map(|groups| Body::SendWeights { groups }),
        (arb_str(), any::<u8>(), any::<u8>()).prop_map(|(lb_uid, health, flags)| {
            Body::SetLbStateRequest {
                lb_uid,
                health,
                flags,
            }
        }),
        code.clone().prop_map(|code| Body::SetLbStateReply { code }),
        (any::<u8>(), prop::collection::vec(arb_gs(), 0..3))
            .prop_map(|(flags, groups)| Body::SetMemberStateRequest { flags, groups }),
        code.prop_map(|code| Body::SetMemberStateReply { code }),
    ]
}

proptest! {
    #[test]
    fn round_trip(version in any::<u8>(), id in any::<u32>(), body in arb_body()) {
        let msg = Message { version, id, body };
        let bytes = msg.to_bytes().unwrap();
        prop_assert_eq!(Header::decode(&bytes).unwrap().message_len, bytes.len());
        prop_assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&bytes);
        let mut f = Framer::new();
        f.push(&bytes);
        let _ = f.next_message();
        let _ = Member::decode(&mut Reader::new(&bytes));
    }

    #[test]
    fn corrupted_golden_bytes_never_panic(i in 0usize..20, at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = hex(golden()[i].1);
        let at = at.index(bytes.len());
        bytes[at] = b;
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to a message that decodes the same.
            let again = m.to_bytes().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap(), m);
        }
    }
}
