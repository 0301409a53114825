//! Wire exactness: a real `tandem-gwm` and an LB driver built on the shared SASP codec talk
//! inside a lab, `tcpdump` captures the conversation on the GWM's veth, and Wireshark's SASP
//! dissector (`tshark`) decodes it. Asserted: no malformed packet, no expert warning or error
//! in SASP, every one of the 11 message types seen, and for every message of every
//! connection, in order, tshark's fields (types, IDs, lengths, LB UIDs, group names, member
//! addresses, ports, protocols, labels, weights, flags, return codes, interval) equal what the
//! codec says was sent. A third connection is driven by the shared `LbSession` itself.
//! Needs root, `tcpdump` and `tshark` (fails loudly without them).

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use tandem_core::sasp::codec::{
    Body, FLAG_LB, Group, GroupMemberStates, GroupMembers, LB_FLAG_NOCHANGE, LB_FLAG_PUSH,
    MemberState, ReturnCode, STATE_QUIESCE,
};
use tandem_lab::Lab;

use support::pdml::{Summary, expected, parse_pdml};
use support::{Lb, MemberServer, PORT, SessionDriver, await_state, member, merge, need};
use tandem_core::config::SaspMode;
use tandem_core::sasp::lb::{LbEvent, LbSession, LbSettings, MemberId, SessionState};

const GWM_IP: &str = "192.0.2.50";

#[test]
fn lab_tshark_decodes_a_tandem_gwm_conversation() -> Result<()> {
    need("tcpdump");
    need("tshark");
    let _guard = tandem_lab::serial();
    let lab = Lab::new("gwm-tshark").context("lab (needs root)")?;
    let gwm_host = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
    let lb_host = lab.add_host("lb", &["192.0.2.10/24"])?;
    let mut servers = Vec::new();
    for (name, ip, load) in [
        ("m1", "192.0.2.21", "1"),
        ("m2", "192.0.2.22", "3"),
        ("m3", "192.0.2.23", "0"),
    ] {
        let host = lab.add_host(name, &[&format!("{ip}/24")])?;
        servers.push(MemberServer::start(&host, load)?);
    }
    let pcap = lab.log_dir().join("sasp.pcap");
    let weights = lab.log_dir().join("weights");
    std::fs::write(&weights, "# the operator sets m3\n192.0.2.23 80 1234\n")?;
    let mut dump = gwm_host.spawn([
        "tcpdump",
        "-i",
        "eth0",
        "--immediate-mode",
        "-U",
        "-Z",
        "root",
        "-w",
        pcap.to_str().unwrap(),
        "tcp port 3860",
    ])?;
    dump.wait_for_log("listening on", Duration::from_secs(10))?;
    let bin = env!("CARGO_BIN_EXE_tandem-gwm");
    let status_addr = format!("{GWM_IP}:3861");
    let mut gwm = gwm_host.spawn([
        bin,
        "run",
        "--listen",
        &format!("{GWM_IP}:{PORT}"),
        "--status",
        &status_addr,
        "--interval",
        "0.3",
        "--push-interval",
        "1",
        "--member-check",
        "http",
        "--load-url-path",
        "/load",
        "--weights-file",
        weights.to_str().unwrap(),
    ])?;
    gwm.wait_for_log("listening on", Duration::from_secs(10))?;

    let gwm_addr: SocketAddr = format!("{GWM_IP}:{PORT}").parse()?;
    let (a, b, c) = lb_host.in_ns(|| -> Result<_> {
        let group = Group::new("tandem-192.0.2.10", "192.0.2.100@80");
        let members = vec![
            member("192.0.2.21", ""),
            member("192.0.2.22", ""),
            member("192.0.2.23", "web3"),
            member("2001:db8::30", ""),
        ];
        let mut pushes = Vec::new();
        // LB A: push, changed members only.
        let mut a = Lb::connect(gwm_addr)?;
        let r = a.request(
            1,
            Body::SetLbStateRequest {
                lb_uid: "tandem-192.0.2.10".into(),
                health: 0x7f,
                flags: LB_FLAG_PUSH | LB_FLAG_NOCHANGE,
            },
            &mut pushes,
        )?;
        assert_eq!(
            r.body,
            Body::SetLbStateReply {
                code: ReturnCode::SUCCESS
            }
        );
        let r = a.request(
            1,
            Body::RegistrationRequest {
                flags: FLAG_LB,
                groups: vec![GroupMembers {
                    group: group.clone(),
                    members: members.clone(),
                }],
            },
            &mut pushes,
        )?;
        assert_eq!(
            r.body,
            Body::RegistrationReply {
                code: ReturnCode::SUCCESS
            }
        );
        let mut state = BTreeMap::new();
        pushes.iter().for_each(|m| merge(&mut state, m));
        // Loads 1, 3, 0 (m3 overridden to 1234); the IPv6 member cannot be reached.
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut want = BTreeMap::from([
            (ip("192.0.2.21"), (0x0d, 32768)),
            (ip("192.0.2.22"), (0x0d, 16384)),
            (ip("192.0.2.23"), (0x0d, 1234)),
            (ip("2001:db8::30"), (0x0c, 0)),
        ]);
        await_state(&mut a, &mut state, &want, Duration::from_secs(20))?;
        let r = a.request(
            1,
            Body::GetWeightsRequest {
                groups: vec![group.clone()],
            },
            &mut pushes,
        )?;
        assert!(
            matches!(
                r.body,
                Body::GetWeightsReply {
                    code: ReturnCode::SUCCESS,
                    interval: 1,
                    ..
                }
            ),
            "{r:?}"
        );
        merge(&mut state, &r);
        // The status endpoint and `tandem-gwm status` agree.
        let out = std::process::Command::new(bin)
            .args(["status", "--status", &status_addr, "--json"])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let lb = &st["lbs"][0];
        assert_eq!(lb["lb_uid"], "tandem-192.0.2.10");
        assert_eq!(
            (
                lb["connected"].as_bool(),
                lb["push"].as_bool(),
                lb["changed_only"].as_bool()
            ),
            (Some(true), Some(true), Some(true))
        );
        let m1 = &lb["groups"][0]["members"][0];
        assert_eq!(
            (
                m1["address"].as_str(),
                m1["weight"].as_u64(),
                m1["load"].as_f64()
            ),
            (Some("192.0.2.21"), Some(32768), Some(1.0))
        );
        // Quiesce m2: QUIESCE flag and weight 0, pushed at once.
        let r = a.request(
            1,
            Body::SetMemberStateRequest {
                flags: FLAG_LB,
                groups: vec![GroupMemberStates {
                    group: group.clone(),
                    entries: vec![(
                        members[1].clone(),
                        MemberState {
                            state: 0,
                            flags: STATE_QUIESCE,
                        },
                    )],
                }],
            },
            &mut pushes,
        )?;
        assert_eq!(
            r.body,
            Body::SetMemberStateReply {
                code: ReturnCode::SUCCESS
            }
        );
        pushes.drain(..).for_each(|m| merge(&mut state, &m));
        want.insert(ip("192.0.2.22"), (0x0f, 0));
        await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;
        let r = a.request(
            1,
            Body::DeregistrationRequest {
                flags: FLAG_LB,
                reason: 1,
                groups: vec![GroupMembers {
                    group: group.clone(),
                    members: vec![members[3].clone()],
                }],
            },
            &mut pushes,
        )?;
        assert_eq!(
            r.body,
            Body::DeregistrationReply {
                code: ReturnCode::SUCCESS
            }
        );

        // LB B: pull, all members; first a version-2 proposal (answered 0x10, version 1).
        let mut pushes = Vec::new();
        let mut b = Lb::connect(gwm_addr)?;
        let set_b = |flags| Body::SetLbStateRequest {
            lb_uid: "tandem-192.0.2.11".into(),
            health: 0x40,
            flags,
        };
        let r = b.request(2, set_b(0), &mut pushes)?;
        assert_eq!(
            (r.version, r.body),
            (
                1,
                Body::SetLbStateReply {
                    code: ReturnCode::NOT_UNDERSTOOD
                }
            )
        );
        let r = b.request(1, set_b(0), &mut pushes)?;
        assert_eq!(
            r.body,
            Body::SetLbStateReply {
                code: ReturnCode::SUCCESS
            }
        );
        let group_b = Group::new("tandem-192.0.2.11", "192.0.2.100@80");
        let reg_b = Body::RegistrationRequest {
            flags: FLAG_LB,
            groups: vec![GroupMembers {
                group: group_b.clone(),
                members: vec![members[0].clone()],
            }],
        };
        assert_eq!(
            b.request(1, reg_b.clone(), &mut pushes)?.body,
            Body::RegistrationReply {
                code: ReturnCode::SUCCESS
            }
        );
        assert_eq!(
            b.request(1, reg_b, &mut pushes)?.body,
            Body::RegistrationReply {
                code: ReturnCode::ALREADY_REGISTERED
            }
        );
        let r = b.request(
            1,
            Body::GetWeightsRequest {
                groups: vec![group_b.clone()],
            },
            &mut pushes,
        )?;
        let Body::GetWeightsReply { code, groups, .. } = &r.body else {
            panic!("{r:?}")
        };
        assert_eq!(*code, ReturnCode::SUCCESS);
        assert_eq!(groups[0].entries.len(), 1, "all members in pull mode");
        assert_eq!(
            (groups[0].entries[0].1.flags, groups[0].entries[0].1.weight),
            (0x0d, 65535)
        );
        let all = Body::DeregistrationRequest {
            flags: FLAG_LB,
            reason: 1,
            groups: vec![GroupMembers {
                group: Group::new("tandem-192.0.2.11", ""),
                members: vec![],
            }],
        };
        assert_eq!(
            b.request(1, all, &mut pushes)?.body,
            Body::DeregistrationReply {
                code: ReturnCode::SUCCESS
            }
        );
        assert!(
            pushes.is_empty(),
            "no pushes in pull mode or after the last check: {pushes:?}"
        );
        // LB C: the shared LbSession itself (push, changed only), quiesce, then shutdown
        // (DeRegistration of everything).
        let settings = LbSettings {
            lb_uid: "tandem-192.0.2.12".into(),
            mode: SaspMode::Push,
            changed_only: true,
            interval: None,
            reply_timeout: Duration::from_secs(10),
        };
        let (m1, m2) = (MemberId::of(&members[0]), MemberId::of(&members[1]));
        let groups = BTreeMap::from([("192.0.2.100@80".to_owned(), [m1, m2].into())]);
        let mut c = SessionDriver::connect(gwm_addr, LbSession::new(settings, groups)?)?;
        let view = |s: &LbSession, m: MemberId| {
            s.weights()
                .values()
                .find_map(|g| g.get(&m))
                .map(|e| (e.flags, e.weight))
        };
        c.run_until(Duration::from_secs(10), "the weights", |s| {
            view(s, m1) == Some((0x0d, 65535)) && view(s, m2) == Some((0x0d, 32768))
        })?;
        c.session.set_quiesce(std::time::Instant::now(), m2, true);
        c.run_until(Duration::from_secs(10), "m2 quiesced", |s| {
            view(s, m2) == Some((0x0f, 0))
        })?;
        c.session.shutdown(std::time::Instant::now());
        c.run_until(Duration::from_secs(10), "the end of the session", |s| {
            s.state() == SessionState::Closed
        })?;
        assert!(c.events.contains(&LbEvent::Registered), "{:?}", c.events);
        Ok((a.close()?, b.close()?, c.close()?))
    })??;
    servers.iter_mut().for_each(MemberServer::stop);
    // Let tcpdump write the last packets (FIN, ACK) before it stops.
    std::thread::sleep(Duration::from_secs(1));
    dump.signal(libc::SIGINT)?;
    dump.wait(Duration::from_secs(10))?;
    gwm.stop(Duration::from_secs(5))?;

    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-d",
            "tcp.port==3860,sasp",
            "-T",
            "pdml",
        ])
        .output()
        .context("run tshark")?;
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdml = String::from_utf8(out.stdout)?;
    let pdus = parse_pdml(&pdml, PORT)?;
    let mut types = std::collections::BTreeSet::new();
    for (stream, (sent, received)) in [a, b, c].into_iter().enumerate() {
        for (from_gwm, msgs) in [(false, sent), (true, received)] {
            let seen: Vec<&Summary> = pdus
                .iter()
                .filter(|p| p.stream == stream as u32 && p.from_gwm == from_gwm)
                .map(|p| &p.fields)
                .collect();
            assert!(msgs.len() >= 5, "stream {stream}: a conversation");
            assert_eq!(
                seen.len(),
                msgs.len(),
                "stream {stream}, from GWM {from_gwm}: PDUs decoded vs messages"
            );
            for (i, (got, bytes)) in seen.iter().zip(&msgs).enumerate() {
                let want = expected(bytes);
                assert_eq!(
                    *got, &want,
                    "stream {stream}, from GWM {from_gwm}, message {i}"
                );
                types.insert(want["sasp.msg.type"][1].clone());
            }
        }
    }
    let all: Vec<String> = [
        "1010", "1015", "1020", "1025", "1030", "1035", "1040", "1050", "1055", "1060", "1065",
    ]
    .iter()
    .map(|t| format!("0x{t}"))
    .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        all,
        "every message type seen"
    );
    assert!(
        pdus.iter().all(|p| p.stream < 3),
        "only our three connections"
    );
    lab.shutdown()?;
    Ok(())
}

/// tshark's verdict on `hex` bytes sent from port 3860 (wrapped in a pcap by text2pcap).
fn pdml_of(hex: &str, dir: &std::path::Path) -> Result<String> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let dump: String = bytes
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let hexes: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:06x} {}\n", i * 16, hexes.join(" "))
        })
        .collect();
    let (txt, pcap) = (dir.join("in.txt"), dir.join("in.pcap"));
    std::fs::write(&txt, dump)?;
    let st = std::process::Command::new("text2pcap")
        .args([
            "-q",
            "-T",
            "3860,40000",
            txt.to_str().unwrap(),
            pcap.to_str().unwrap(),
        ])
        .status()?;
    assert!(st.success(), "text2pcap");
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-d",
            "tcp.port==3860,sasp",
            "-T",
            "pdml",
        ])
        .output()?;
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn tshark_checker_rejects_malformed_and_unknown_messages() -> Result<()> {
    need("tshark");
    need("text2pcap");
    let dir = std::env::temp_dir().join(format!("tandem-gwm-pdml-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // A good Set LB State Reply passes and yields its fields.
    let pdus = parse_pdml(
        &pdml_of("2010000d0100000012000000011055000500", &dir)?,
        PORT,
    )?;
    assert_eq!(pdus.len(), 1);
    assert!(pdus[0].from_gwm);
    assert_eq!(pdus[0].fields["sasp.setlbstate-rep.retcode"], vec!["0x00"]);
    // n04 (unknown message type: an expert warning) and n03 (malformed) are refused.
    let unknown = parse_pdml(
        &pdml_of("2010000d0100000012000000031070000500", &dir)?,
        PORT,
    );
    assert!(format!("{:#}", unknown.unwrap_err()).contains("expert info"));
    let n03 = "2010000d0100000021000000041030000600013011000e204c4231054641524d31";
    let malformed = parse_pdml(&pdml_of(n03, &dir)?, PORT);
    assert!(format!("{:#}", malformed.unwrap_err()).contains("malformed"));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
