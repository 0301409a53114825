//! The probes against real sockets, in a private network namespace made by each test
//! (`unshare(CLONE_NEWNET)` on a dedicated thread; needs root, fails loudly otherwise).

use super::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::advisor::{Outcome, Probe, ProbeId};
use tandem_core::config::AdvisorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Runs `f` on a fresh thread inside a new network namespace with `lo` up, on a
/// current-thread tokio runtime; panics in `f` fail the test.
pub(super) fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) affects only this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "unshare(CLONE_NEWNET) failed: {} (the probe tests need root)",
                std::io::Error::last_os_error()
            );
        }
        ip(&["link", "set", "lo", "up"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// Runs `ip ARGS` (in the calling thread's namespace), which must succeed.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (iproute2 is needed)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair with 192.0.2.1/24 and 2001:db8::1/64 on one end and static neighbours for
/// 192.0.2.77 and 2001:db8::77: packets to those leave and are never answered.
fn blackhole_prefixes() {
    ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "va"]);
    ip(&["addr", "add", "2001:db8::1/64", "dev", "va", "nodad"]);
    ip(&["link", "set", "va", "up"]);
    ip(&["link", "set", "vb", "up"]);
    for addr in ["192.0.2.77", "2001:db8::77"] {
        ip(&[
            "neigh",
            "add",
            addr,
            "lladdr",
            "02:00:00:00:00:77",
            "dev",
            "va",
        ]);
    }
}

fn probe(kind: AdvisorKind, address: SocketAddr) -> Probe {
    Probe {
        id: ProbeId(1),
        kind,
        cluster: "203.0.113.1".parse().unwrap(),
        port: 80,
        server: address.ip(),
        address,
        connecttimeout: Duration::from_secs(1),
        receivetimeout: Duration::from_secs(1),
        request: None,
        response: None,
        custom: None,
    }
}

fn ctx() -> ProbeContext {
    ProbeContext::new(None)
}

#[track_caller]
fn assert_up(o: &Outcome) {
    assert!(matches!(o, Outcome::Up { .. }), "expected up: {o:?}");
}

#[track_caller]
fn assert_down(o: &Outcome, contains: &str) {
    match o {
        Outcome::Down { reason } => assert!(
            reason.contains(contains),
            "reason {reason:?} should contain {contains:?}"
        ),
        o => panic!("expected down ({contains}): {o:?}"),
    }
}

/// Times `run(probe)`.
async fn timed(p: &Probe, c: &ProbeContext) -> (Outcome, Duration) {
    let t = Instant::now();
    let o = run(p, c).await;
    (o, t.elapsed())
}

/// A free port: bind, note it, close.
async fn closed_port(host: &str) -> SocketAddr {
    let l = TcpListener::bind((host, 0)).await.unwrap();
    l.local_addr().unwrap()
}

#[test]
fn connect_up_refused_and_unanswered() {
    in_netns(|| async {
        blackhole_prefixes();
        for host in ["127.0.0.1", "::1"] {
            let l = TcpListener::bind((host, 0)).await.unwrap();
            let addr = l.local_addr().unwrap();
            let (o, _) = timed(&probe(AdvisorKind::Connect, addr), &ctx()).await;
            assert_up(&o);
            drop(l);
            let (o, took) = timed(&probe(AdvisorKind::Connect, addr), &ctx()).await;
            assert_down(&o, "refused");
            assert!(
                took < Duration::from_millis(500),
                "a closed port fails fast"
            );
        }
        for addr in ["192.0.2.77:80", "[2001:db8::77]:80"] {
            let (o, took) =
                timed(&probe(AdvisorKind::Connect, addr.parse().unwrap()), &ctx()).await;
            assert_down(&o, "no answer within 1.000s");
            assert!(
                (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
                "connecttimeout bounds the connect: {took:?}"
            );
        }
    });
}

/// An HTTP server answering every connection with `reply` (keeping it open when `linger`);
/// the requests it read go to the returned channel.
async fn http_server(
    host: &str,
    reply: &'static [u8],
    linger: bool,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = TcpListener::bind((host, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let req = read_head(&mut s).await;
                let _ = tx.send(req);
                let _ = s.write_all(reply).await;
                if linger {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    (addr, rx)
}

/// Reads up to the end of the request head.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    req
}

#[test]
fn http_status_classes_expected_response_and_silence() {
    in_netns(|| async {
        let c = ctx();
        let (ok, mut reqs) = http_server("127.0.0.1", b"HTTP/1.0 200 OK\r\n\r\n", false).await;
        let (o, _) = timed(&probe(AdvisorKind::Http, ok), &c).await;
        assert_up(&o);
        assert_eq!(reqs.recv().await.unwrap(), b"HEAD / HTTP/1.0\r\n\r\n");
        let (redirect, _) = http_server("::1", b"HTTP/1.1 301 Moved\r\n\r\n", false).await;
        assert_up(&run(&probe(AdvisorKind::Http, redirect), &c).await);
        let (busy, _) = http_server("127.0.0.1", b"HTTP/1.1 503 Busy\r\n\r\n", false).await;
        assert_down(
            &run(&probe(AdvisorKind::Http, busy), &c).await,
            "status 503",
        );
        // advisorrequest / advisorresponse, with a keep-alive server that never closes: the
        // verdict comes when the body is complete, not at receivetimeout.
        let body = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nstate=alive";
        let (ka, mut reqs) = http_server("127.0.0.1", body, true).await;
        let mut p = probe(AdvisorKind::Http, ka);
        p.request = Some("GET /health HTTP/1.1".into());
        p.response = Some("alive".into());
        p.receivetimeout = Duration::from_secs(5);
        let (o, took) = timed(&p, &c).await;
        assert_up(&o);
        assert!(took < Duration::from_secs(2), "{took:?}");
        let req = String::from_utf8(reqs.recv().await.unwrap()).unwrap();
        assert_eq!(
            req,
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        );
        p.response = Some("ready".into());
        let (o, took) = timed(&p, &c).await;
        assert_down(&o, "\"ready\" not in the reply (status 200)");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // A silent server: accepted, never answered → down after receivetimeout.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let (o, took) = timed(&probe(AdvisorKind::Http, addr), &c).await;
        assert_down(&o, "no reply within 1.000s");
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
            "{took:?}"
        );
        keep.abort();
        // A closed port fails fast.
        let closed = closed_port("127.0.0.1").await;
        let (o, took) = timed(&probe(AdvisorKind::Http, closed), &c).await;
        assert_down(&o, "refused");
        assert!(took < Duration::from_millis(500));
        // A server that sends endless garbage is cut at MAX_REPLY.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let chunk = vec![b'x'; 4096];
                    while s.write_all(&chunk).await.is_ok() {}
                });
            }
        });
        let mut p = probe(AdvisorKind::Http, addr);
        p.response = Some("never".into());
        let (o, took) = timed(&p, &c).await;
        assert_down(&o, "not in the reply");
        assert!(took < Duration::from_millis(900), "cut, not timed out");
    });
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["www.example".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// An HTTPS server answering `reply`; sends (SNI, request) of each connection.
async fn https_server(
    host: &str,
    reply: &'static [u8],
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Vec<u8>)>,
) {
    let acceptor = tls_acceptor();
    let l = TcpListener::bind((host, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(String::from);
                let req = read_head(&mut tls).await;
                let _ = tx.send((sni, req));
                let _ = tls.write_all(reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, rx)
}

#[test]
fn https_handshake_sni_and_check_inside() {
    in_netns(|| async {
        let c = ctx();
        let (addr, mut seen) = https_server("127.0.0.1", b"HTTP/1.0 200 OK\r\n\r\nhealthy").await;
        let mut p = probe(AdvisorKind::Https, addr);
        let (o, _) = timed(&p, &c).await;
        assert_up(&o);
        let (sni, req) = seen.recv().await.unwrap();
        assert_eq!(sni, None, "an IP address is not sent as SNI");
        assert_eq!(req, b"HEAD / HTTP/1.0\r\n\r\n");
        p.request = Some("GET / HTTP/1.1\\r\\nHost: www.example".into());
        p.response = Some("healthy".into());
        assert_up(&run(&p, &c).await);
        let (sni, _) = seen.recv().await.unwrap();
        assert_eq!(sni.as_deref(), Some("www.example"));
        p.response = Some("sick".into());
        assert_down(&run(&p, &c).await, "not in the reply");
        let (v6, _) = https_server("::1", b"HTTP/1.1 500 Oops\r\n\r\n").await;
        assert_down(&run(&probe(AdvisorKind::Https, v6), &c).await, "status 500");
        // A plain HTTP server is not an HTTPS one.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
            }
        });
        assert_down(
            &run(&probe(AdvisorKind::Https, plain), &c).await,
            "TLS handshake",
        );
        // A silent server: the handshake never completes.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let (o, took) = timed(&probe(AdvisorKind::Https, addr), &c).await;
        assert_down(&o, "no reply within 1.000s");
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
            "{took:?}"
        );
        keep.abort();
    });
}

#[test]
fn ping_raw_and_datagram_up_and_unanswered() {
    in_netns(|| async {
        blackhole_prefixes();
        // Allow unprivileged ICMP sockets in this namespace (per network namespace).
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
            .expect("ping_group_range");
        for kind in [ping::SocketKind::Raw, ping::SocketKind::Dgram] {
            for host in ["127.0.0.1", "::1"] {
                let p = probe(AdvisorKind::Ping, SocketAddr::new(host.parse().unwrap(), 0));
                let r = ping::ping(&p, kind).await;
                assert!(matches!(r, Ok(Some(_))), "{kind:?} {host}: {r:?}");
            }
            for host in ["192.0.2.77", "2001:db8::77"] {
                let p = probe(AdvisorKind::Ping, SocketAddr::new(host.parse().unwrap(), 0));
                let t = Instant::now();
                let r = ping::ping(&p, kind).await;
                let took = t.elapsed();
                let e = r.expect_err("nobody answers");
                assert!(e.contains("no echo reply"), "{e}");
                assert!(
                    (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
                    "{took:?}"
                );
            }
        }
        // Through run(): any socket kind.
        let p = probe(AdvisorKind::Ping, "127.0.0.1:0".parse().unwrap());
        assert_up(&run(&p, &ctx()).await);
    });
}

/// A DNS responder on UDP that answers each query with `rcode` (after a reply with a wrong
/// id first, when `decoy`).
async fn dns_server(host: &str, rcode: u8, decoy: bool) -> SocketAddr {
    let s = UdpSocket::bind((host, 0)).await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut b).await {
            let mut r = b[..n].to_vec();
            r[2] |= 0x80;
            r[3] = (r[3] & 0xf0) | rcode;
            if decoy {
                let mut d = r.clone();
                d[0] ^= 0xff;
                let _ = s.send_to(&d, from).await;
            }
            let _ = s.send_to(&r, from).await;
        }
    });
    addr
}

#[test]
fn dns_answered_failing_closed_and_silent() {
    in_netns(|| async {
        let c = ctx();
        for host in ["127.0.0.1", "::1"] {
            let a = dns_server(host, 0, true).await;
            assert_up(&run(&probe(AdvisorKind::Dns, a), &c).await);
            let mut p = probe(AdvisorKind::Dns, dns_server(host, 3, false).await);
            p.request = Some("www.example".into());
            assert_up(&run(&p, &c).await); // NXDOMAIN is an answer
        }
        let a = dns_server("127.0.0.1", 2, false).await;
        assert_down(&run(&probe(AdvisorKind::Dns, a), &c).await, "SERVFAIL");
        let a = dns_server("127.0.0.1", 5, false).await;
        assert_down(&run(&probe(AdvisorKind::Dns, a), &c).await, "REFUSED");
        let mut p = probe(AdvisorKind::Dns, a);
        p.request = Some("bad name".into());
        assert_down(&run(&p, &c).await, "bad DNS name");
        // Nobody on the port: the ICMP port unreachable fails it at once.
        let free = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let (o, took) = timed(&probe(AdvisorKind::Dns, free), &c).await;
        assert_down(&o, "refused");
        assert!(took < Duration::from_millis(500));
        // A socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (o, took) = timed(&probe(AdvisorKind::Dns, silent.local_addr().unwrap()), &c).await;
        assert_down(&o, "no reply within 1.000s");
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
            "{took:?}"
        );
    });
}

/// A root-owned script directory of its own, removed at the end.
struct ScriptDir(std::path::PathBuf);

impl ScriptDir {
    fn new(tag: &str) -> ScriptDir {
        use std::os::unix::fs::PermissionsExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("tandem-adv-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ScriptDir(d)
    }

    fn script(&self, name: &str, body: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for ScriptDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn custom_probe(name: &str) -> Probe {
    let mut p = probe(
        AdvisorKind::Custom(name.into()),
        "198.51.100.7:8080".parse().unwrap(),
    );
    p.custom = Some(name.into());
    p
}

#[test]
fn custom_advisor_load_status_environment_and_time_limit() {
    in_netns(|| async {
        let dir = ScriptDir::new("custom");
        let c = ProbeContext::new(Some(dir.0.clone()));
        dir.script("ADV_load", "echo 37; echo ignored", 0o755);
        assert_eq!(
            run(&custom_probe("ADV_load"), &c).await,
            Outcome::Up { load: Some(37) }
        );
        dir.script("ADV_noload", "echo fine", 0o755);
        assert_eq!(
            run(&custom_probe("ADV_noload"), &c).await,
            Outcome::Up { load: None }
        );
        dir.script(
            "ADV_env",
            "echo \"$CLUSTER $PORT $SERVER $SERVER_PORT\" >&2; exit 3",
            0o755,
        );
        assert_down(
            &run(&custom_probe("ADV_env"), &c).await,
            "203.0.113.1 80 198.51.100.7 8080 (exit status 3)",
        );
        // A script that hangs, with a background child: both killed at receivetimeout.
        let pidfile = dir.0.join("child.pid");
        dir.script(
            "ADV_hang",
            &format!("sleep 60 & echo $! > {}; sleep 60", pidfile.display()),
            0o755,
        );
        let (o, took) = timed(&custom_probe("ADV_hang"), &c).await;
        assert_down(&o, "no result within 1.000s (killed)");
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
            "{took:?}"
        );
        let child: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat"));
            if stat.map_or(true, |s| s.contains(") Z ")) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the script's background child was killed");
        // Missing, not executable, writable by others, no directory.
        assert_down(&run(&custom_probe("ADV_none"), &c).await, "no script");
        dir.script("ADV_noexec", "exit 0", 0o644);
        assert_down(
            &run(&custom_probe("ADV_noexec"), &c).await,
            "not executable",
        );
        dir.script("ADV_open", "exit 0", 0o777);
        assert_down(&run(&custom_probe("ADV_open"), &c).await, "writable by");
        assert_down(
            &run(&custom_probe("ADV_load"), &ctx()).await,
            "no script directory",
        );
    });
}
