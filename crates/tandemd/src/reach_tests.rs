//! The reach prober: parsing (no privileges), and real echo over loopback in a private
//! network namespace (`unshare(CLONE_NEWNET)`; needs root, fails loudly otherwise).

use super::*;
use std::time::Duration;

fn reply_v4(src: [u8; 4], ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![0u8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let total = 20 + icmp.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        1,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[192, 0, 2, 2]);
    let sum = tandem_wire::checksum::ones_complement_sum(&ip);
    ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

#[test]
fn echo_replies_parse_and_garbage_does_not() {
    let pkt = reply_v4([192, 0, 2, 10], 7, 9, b"token");
    let r = EchoReply::parse_v4(&pkt).unwrap();
    assert_eq!(
        (r.source, r.ident, r.seq, r.payload),
        (IpAddr::from([192, 0, 2, 10]), 7, 9, &b"token"[..])
    );
    for n in 0..pkt.len() {
        let _ = EchoReply::parse_v4(&pkt[..n]);
    }
    let mut bad_ihl = pkt.clone();
    bad_ihl[0] = 0x40; // IHL 0: the old prober indexed with it
    assert!(EchoReply::parse_v4(&bad_ihl).is_none());

    let src: IpAddr = "2001:db8::1".parse().unwrap();
    let mut v6 = echo_request(true, 7, 9, &[5; TOKEN]).to_vec();
    assert!(
        EchoReply::parse_v6(src, &v6).is_none(),
        "a request is no reply"
    );
    v6[0] = ECHO_REPLY_V6;
    let r = EchoReply::parse_v6(src, &v6).unwrap();
    assert_eq!(
        (r.source, r.ident, r.seq, r.payload),
        (src, 7, 9, &[5u8; TOKEN][..])
    );
    for n in 0..v6.len() {
        let _ = EchoReply::parse_v6(src, &v6[..n]);
    }
    assert!(EchoReply::parse_v6(src, &v6[..7]).is_none());
    let v4_type = {
        let mut p = v6.clone();
        p[0] = ECHO_REPLY_V4;
        p
    };
    assert!(EchoReply::parse_v6(src, &v4_type).is_none());
}

#[test]
fn only_the_token_of_the_round_counts() {
    let targets: Vec<IpAddr> = vec!["2001:db8::1".parse().unwrap()];
    let mut p = Prober {
        v4: None,
        v6: None,
        ident: 7,
        seq: 1,
        outstanding: HashMap::new(),
        last_round: None,
        unmatched: 0,
        send_errors: 0,
    };
    let mut seen = Vec::new();
    p.round(&targets, &mut |t, ok| seen.push((t, ok)), Instant::now());
    assert_eq!(p.send_errors, 1, "no IPv6 socket: the probe is not sent");
    let token = p.outstanding[&targets[0]].0;
    let spoof = [0u8; TOKEN];
    let reply = |tok: &[u8; TOKEN]| {
        let mut pkt = echo_request(true, 7, p.seq, tok);
        pkt[0] = ECHO_REPLY_V6;
        pkt
    };
    let spoofed = reply(&spoof);
    let good = reply(&token);
    p.answer(
        EchoReply::parse_v6(targets[0], &spoofed).unwrap(),
        &mut |t, ok| seen.push((t, ok)),
    );
    assert_eq!((p.unmatched, seen.len()), (1, 0));
    p.answer(
        EchoReply::parse_v6(targets[0], &good).unwrap(),
        &mut |t, ok| seen.push((t, ok)),
    );
    p.answer(
        EchoReply::parse_v6(targets[0], &good).unwrap(),
        &mut |t, ok| seen.push((t, ok)),
    );
    assert_eq!(seen, [(targets[0], true)], "reported once per round");
    // Next round: answered, so not reported down; the one after reports the silence.
    p.round(&targets, &mut |t, ok| seen.push((t, ok)), Instant::now());
    p.round(&targets, &mut |t, ok| seen.push((t, ok)), Instant::now());
    assert_eq!(seen, [(targets[0], true), (targets[0], false)]);
}

/// Runs `f` on a thread in a fresh network namespace with `lo` up.
fn in_netns(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) affects only this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "unshare(CLONE_NEWNET) failed: {} (the reach prober test needs root)",
                std::io::Error::last_os_error()
            );
        }
        let out = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .output()
            .expect("running ip (iproute2 is needed)");
        assert!(out.status.success(), "ip link set lo up failed");
        f();
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn loopback_answers_over_icmp_and_icmpv6_and_an_unroutable_target_is_down() {
    in_netns(|| {
        let up: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let down: IpAddr = "2001:db8::77".parse().unwrap();
        let mut targets = up.clone();
        targets.push(down);
        let mut p = Prober::open(&targets).expect("raw ICMP sockets (needs root)");
        assert_eq!(p.raw_fds().len(), 2);
        let mut seen: Vec<(IpAddr, bool)> = Vec::new();
        p.round(&targets, &mut |t, ok| seen.push((t, ok)), Instant::now());
        assert_eq!(p.send_errors, 1, "2001:db8::77 has no route here");
        let deadline = Instant::now() + Duration::from_secs(2);
        while seen.len() < 2 && Instant::now() < deadline {
            p.receive(&mut |t, ok| seen.push((t, ok)));
            std::thread::sleep(Duration::from_millis(10));
        }
        seen.sort();
        assert_eq!(seen, [(up[0], true), (up[1], true)]);
        seen.clear();
        p.round(&targets, &mut |t, ok| seen.push((t, ok)), Instant::now());
        assert_eq!(seen, [(down, false)], "the unsent probe is a lost one");
    });
}
