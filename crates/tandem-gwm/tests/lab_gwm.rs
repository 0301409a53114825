//! The `tandem-gwm` binary in a lab: it probes members, reads their load from a command,
//! applies the weights file, pushes changes, keeps a lost LB for the grace period, and its
//! fault injection does what `--help` says. The LB side is a driver on the shared codec.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tandem_core::sasp::codec::{
    Body, FLAG_LB, Group, GroupMembers, LB_FLAG_PUSH, Member, Message, ReturnCode,
};
use tandem_lab::{Host, Lab};

use support::{Lb, MemberServer, await_state, merge};

const GWM_IP: &str = "192.0.2.50";
const BIN: &str = env!("CARGO_BIN_EXE_tandem-gwm");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn members() -> Vec<Member> {
    vec![
        Member::new(ip("192.0.2.21"), 80, 6),
        Member::new(ip("192.0.2.22"), 80, 6),
    ]
}

fn set_lb(uid: &str, flags: u8) -> Body {
    Body::SetLbStateRequest {
        lb_uid: uid.into(),
        health: 0x7f,
        flags,
    }
}

fn register(uid: &str) -> Body {
    Body::RegistrationRequest {
        flags: FLAG_LB,
        groups: vec![GroupMembers {
            group: Group::new(uid, "192.0.2.100@80"),
            members: members(),
        }],
    }
}

/// `tandem-gwm status --json`, run from `host`.
fn status(host: &Host, addr: &str) -> Result<Value> {
    let out = host.run([BIN, "status", "--status", addr, "--json"])?;
    serde_json::from_str(&out).context("status JSON")
}

fn wait_status(
    host: &Host,
    addr: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = status(host, addr)?;
        if cond(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "status never showed {what}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lab_gwm_follows_members_loads_overrides_and_lost_lbs() -> Result<()> {
    let _guard = tandem_lab::serial();
    let lab = Lab::new("gwm-run").context("lab (needs root)")?;
    let gwm_host = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
    let lb_host = lab.add_host("lb", &["192.0.2.10/24"])?;
    let m1_host = lab.add_host("m1", &["192.0.2.21/24"])?;
    let m2_host = lab.add_host("m2", &["192.0.2.22/24"])?;
    let _m1 = MemberServer::start(&m1_host, "")?;
    let mut m2 = MemberServer::start(&m2_host, "")?;
    let loads = lab.log_dir().join("loads");
    std::fs::create_dir_all(&loads)?;
    std::fs::write(loads.join("192.0.2.21"), "1\n")?;
    std::fs::write(loads.join("192.0.2.22"), "1\n")?;
    let weights = lab.log_dir().join("weights");
    let status_addr = format!("{GWM_IP}:3861");
    let mut gwm = gwm_host.spawn([
        BIN,
        "run",
        "--listen",
        &format!("{GWM_IP}:3860"),
        "--status",
        &status_addr,
        "--interval",
        "0.3",
        "--push-interval",
        "1",
        "--lb-grace",
        "2",
        "--member-check",
        "tcp",
        "--load-command",
        &format!("cat {}/$MEMBER_ADDRESS", loads.display()),
        "--weights-file",
        weights.to_str().unwrap(),
    ])?;
    gwm.wait_for_log("listening on", Duration::from_secs(10))?;
    let addr: SocketAddr = format!("{GWM_IP}:3860").parse()?;
    // The weights file does not exist yet: said so, nothing overridden.
    let v = status(&lb_host, &status_addr)?;
    assert!(
        v["weights_file_error"]
            .as_str()
            .unwrap_or("")
            .contains("open"),
        "{v:#}"
    );

    let uid = "tandem-192.0.2.10";
    let mut a = lb_host.in_ns(|| Lb::connect(addr))??;
    let mut state = BTreeMap::new();
    let mut want = BTreeMap::from([
        (ip("192.0.2.21"), (0x0d, 65535)),
        (ip("192.0.2.22"), (0x0d, 65535)),
    ]);
    let mut pushes = Vec::new();
    let r = a.request(1, set_lb(uid, LB_FLAG_PUSH), &mut pushes)?;
    assert_eq!(
        r.body,
        Body::SetLbStateReply {
            code: ReturnCode::SUCCESS
        }
    );
    let r = a.request(1, register(uid), &mut pushes)?;
    assert_eq!(
        r.body,
        Body::RegistrationReply {
            code: ReturnCode::SUCCESS
        }
    );
    pushes.drain(..).for_each(|m| merge(&mut state, &m));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;

    // m2's load goes from 1 to 3: its weight halves.
    std::fs::write(loads.join("192.0.2.22"), "3\n")?;
    want.insert(ip("192.0.2.22"), (0x0d, 32768));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;

    // m2's service dies: out of contact, weight 0, pushed within a few intervals.
    let killed = Instant::now();
    m2.stop();
    want.insert(ip("192.0.2.22"), (0x0c, 0));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;
    let took = killed.elapsed();
    eprintln!("member death to weight 0 at the LB: {took:?} (probe interval 0.3 s)");
    assert!(
        took < Duration::from_secs(5),
        "member death seen after {took:?}"
    );
    let v = status(&lb_host, &status_addr)?;
    let m2s = &v["lbs"][0]["groups"][0]["members"][1];
    assert!(
        m2s["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("192.0.2.22:80"),
        "{m2s:#}"
    );
    // It comes back.
    let _m2 = MemberServer::start(&m2_host, "")?;
    want.insert(ip("192.0.2.22"), (0x0d, 32768));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;

    // The operator sets m1's weight in the weights file; a bad edit keeps the last good one.
    std::fs::write(&weights, "192.0.2.21 80 777\n")?;
    want.insert(ip("192.0.2.21"), (0x0d, 777));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;
    std::fs::write(&weights, "192.0.2.21 80 lots\n")?;
    let v = wait_status(&lb_host, &status_addr, "the weights file error", |v| {
        v["weights_file_error"]
            .as_str()
            .is_some_and(|e| e.contains("line 1"))
    })?;
    assert_eq!(v["lbs"][0]["groups"][0]["members"][0]["weight"], 777);
    // Quiesce in the file: QUIESCE flag, weight 0.
    std::fs::write(&weights, "192.0.2.21 80 quiesce\n")?;
    want.insert(ip("192.0.2.21"), (0x0f, 0));
    await_state(&mut a, &mut state, &want, Duration::from_secs(10))?;
    let text = lb_host.run([BIN, "status", "--status", &status_addr])?;
    assert!(
        text.contains(&format!("LB {uid}: connected from 192.0.2.10")),
        "{text}"
    );
    assert!(text.contains("flags [PUSH]"), "{text}");
    assert!(text.contains("192.0.2.21 port 80 proto 6: weight 0 [contact quiesce registered-by-lb confident] load 1.0"), "{text}");

    // The LB goes away: kept for the grace period (a quick reconnect finds its members),
    // then dropped.
    let _ = a.close()?;
    let v = wait_status(&lb_host, &status_addr, "the LB lost", |v| {
        v["lbs"][0]["connected"] == false
    })?;
    assert!(
        v["lbs"][0]["grace_left"].as_f64().is_some_and(|g| g > 0.0),
        "{v:#}"
    );
    let mut b = lb_host.in_ns(|| Lb::connect(addr))??;
    let r = b.request(1, register(uid), &mut pushes)?;
    assert_eq!(
        r.body,
        Body::RegistrationReply {
            code: ReturnCode::ALREADY_REGISTERED
        }
    );
    let _ = b.close()?;
    wait_status(
        &lb_host,
        &status_addr,
        "the LB dropped after its grace",
        |v| v["lbs"].as_array().is_some_and(|l| l.is_empty()),
    )?;
    gwm.stop(Duration::from_secs(5))?;
    lab.shutdown()?;
    Ok(())
}

/// Expects the connection to be closed by the GWM within `limit` (EOF or a decoding error
/// of its last bytes); returns the error text.
fn expect_failure(lb: &mut Lb, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Err(e) = lb.recv(Duration::from_millis(200)) {
            return format!("{e:#}");
        }
    }
    panic!("no failure within {limit:?}")
}

#[test]
fn lab_gwm_fault_injection() -> Result<()> {
    let _guard = tandem_lab::serial();
    let lab = Lab::new("gwm-fault").context("lab (needs root)")?;
    let gwm_host = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
    let lb_host = lab.add_host("lb", &["192.0.2.10/24"])?;
    let faults = [
        ("close-after=2", "0"),
        ("silent", "1"),
        ("bad-version", "0"),
        ("malformed", "2"),
        ("oversized", "1"),
        ("slow=700", "0"),
    ];
    let mut gwms = Vec::new();
    for (i, (fault, after)) in faults.iter().enumerate() {
        let port = (3870 + i).to_string();
        let mut p = gwm_host.spawn([
            BIN,
            "run",
            "--listen",
            &format!("{GWM_IP}:{port}"),
            "--member-check",
            "none",
            "--interval",
            "0.3",
            "--push-interval",
            "1",
            "--fault",
            fault,
            "--fault-after",
            after,
        ])?;
        p.wait_for_log("listening on", Duration::from_secs(10))?;
        gwms.push(p);
    }
    // No fault, a long interval: new members are probed at once all the same.
    let mut p = gwm_host.spawn([
        BIN,
        "run",
        "--listen",
        &format!("{GWM_IP}:3880"),
        "--member-check",
        "none",
        "--interval",
        "60",
    ])?;
    p.wait_for_log("listening on", Duration::from_secs(10))?;
    gwms.push(p);
    let addr = |i: usize| -> SocketAddr { format!("{GWM_IP}:{}", 3870 + i).parse().unwrap() };
    let uid = "tandem-192.0.2.10";
    lb_host.in_ns(|| -> Result<()> {
        let mut pushes = Vec::new();
        // close-after=2: two replies, then the connection is closed instead of the push.
        let mut lb = Lb::connect(addr(0))?;
        lb.request(1, set_lb(uid, LB_FLAG_PUSH), &mut pushes)?;
        lb.request(1, register(uid), &mut pushes)?;
        let e = expect_failure(&mut lb, Duration::from_secs(5));
        assert!(e.contains("closed"), "{e}");
        // silent after 1: the first reply, then nothing, and the connection stays open.
        let mut lb = Lb::connect(addr(1))?;
        lb.request(1, set_lb(uid, 0), &mut pushes)?;
        lb.send(1, register(uid))?;
        assert!(lb.recv(Duration::from_secs(2))?.is_none(), "a silent GWM");
        // bad-version: replies carry version 2.
        let mut lb = Lb::connect(addr(2))?;
        let r: Message = lb.request(1, set_lb(uid, 0), &mut pushes)?;
        assert_eq!(r.version, 2);
        // malformed after 2: the Get Weights reply announces a group it does not hold.
        let mut lb = Lb::connect(addr(3))?;
        lb.request(1, set_lb(uid, 0), &mut pushes)?;
        lb.request(1, register(uid), &mut pushes)?;
        lb.send(
            1,
            Body::GetWeightsRequest {
                groups: vec![Group::new(uid, "192.0.2.100@80")],
            },
        )?;
        let e = expect_failure(&mut lb, Duration::from_secs(5));
        assert!(e.contains("truncated"), "{e}");
        // oversized after 1: a header announcing 2^31-1 bytes.
        let mut lb = Lb::connect(addr(4))?;
        lb.request(1, set_lb(uid, 0), &mut pushes)?;
        lb.send(1, register(uid))?;
        let e = expect_failure(&mut lb, Duration::from_secs(5));
        assert!(e.contains("exceeds the limit"), "{e}");
        // slow=700: every reply held 0.7 s.
        let mut lb = Lb::connect(addr(5))?;
        let t = Instant::now();
        lb.request(1, set_lb(uid, 0), &mut pushes)?;
        assert!(
            t.elapsed() >= Duration::from_millis(650),
            "{:?}",
            t.elapsed()
        );
        assert!(pushes.is_empty());
        // Probed at registration, not an interval (60 s) later.
        let mut lb = Lb::connect(format!("{GWM_IP}:3880").parse()?)?;
        lb.request(1, set_lb(uid, LB_FLAG_PUSH), &mut pushes)?;
        lb.request(1, register(uid), &mut pushes)?;
        let mut state = BTreeMap::new();
        pushes.drain(..).for_each(|m| merge(&mut state, &m));
        let want = BTreeMap::from([
            (ip("192.0.2.21"), (0x0d, 65535)),
            (ip("192.0.2.22"), (0x0d, 65535)),
        ]);
        await_state(&mut lb, &mut state, &want, Duration::from_secs(5))?;
        Ok(())
    })??;
    for mut p in gwms {
        p.stop(Duration::from_secs(5))?;
    }
    lab.shutdown()?;
    Ok(())
}

/// A CA and a certificate for `ip` signed by it: (CA PEM, certificate PEM, key PEM).
fn tls_material(ip: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![ip.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Set LB State over TLS trusting `ca_pem`; returns the reply.
fn tls_set_lb(addr: SocketAddr, ca_pem: &str) -> Result<Message> {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(&Message::new(7, set_lb("tandem-tls", 0)).to_bytes()?)?;
    let mut framer = tandem_core::sasp::codec::Framer::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = framer.next_message()? {
            return Ok(m);
        }
        let n = tls.read(&mut buf)?;
        anyhow::ensure!(n > 0, "closed before the reply");
        framer.push(&buf[..n]);
    }
}

#[test]
fn lab_gwm_tls() -> Result<()> {
    let _guard = tandem_lab::serial();
    let lab = Lab::new("gwm-tls").context("lab (needs root)")?;
    let gwm_host = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
    let lb_host = lab.add_host("lb", &["192.0.2.10/24"])?;
    let (ca, cert, key) = tls_material(GWM_IP);
    let (cert_file, key_file) = (lab.log_dir().join("gwm.pem"), lab.log_dir().join("gwm.key"));
    std::fs::write(&cert_file, cert)?;
    std::fs::write(&key_file, key)?;
    let mut gwm = gwm_host.spawn([
        BIN,
        "run",
        "--listen",
        &format!("{GWM_IP}:3860"),
        "--member-check",
        "none",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ])?;
    gwm.wait_for_log("listening on", Duration::from_secs(10))?;
    let addr: SocketAddr = format!("{GWM_IP}:3860").parse()?;
    lb_host.in_ns(|| -> Result<()> {
        // A client trusting the CA gets its reply (Message ID echoed) over TLS.
        let r = tls_set_lb(addr, &ca)?;
        assert_eq!(
            (r.id, r.body),
            (
                7,
                Body::SetLbStateReply {
                    code: ReturnCode::SUCCESS
                }
            )
        );
        // A client trusting another CA refuses the GWM's certificate.
        let (other_ca, _, _) = tls_material(GWM_IP);
        let e = format!("{:#}", tls_set_lb(addr, &other_ca).unwrap_err());
        assert!(e.to_lowercase().contains("certificate"), "{e}");
        // A client speaking SASP in clear is dropped, not answered.
        let mut lb = Lb::connect(addr)?;
        lb.send(1, set_lb("tandem-clear", 0))?;
        match lb.recv(Duration::from_secs(5)) {
            Ok(Some(m)) => panic!("a clear-text reply: {m:?}"),
            Ok(None) => panic!("still open after 5 s"),
            Err(e) => assert!(format!("{e:#}").contains("closed"), "{e:#}"),
        }
        Ok(())
    })??;
    gwm.wait_for_log("TLS handshake failed", Duration::from_secs(5))?;
    gwm.stop(Duration::from_secs(5))?;
    lab.shutdown()?;
    Ok(())
}
