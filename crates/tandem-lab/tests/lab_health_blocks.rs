//! The health building blocks (tandem_lab::health) against real processes in a lab: a
//! killed service refuses connections and comes back, a silent port never answers, the DNS
//! responder answers, HTTPS completes a TLS handshake, a blocked host stops answering ping,
//! `/load` follows its file. Needs root; nextest group `lab`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use tandem_lab::health::{self, Service};
use tandem_lab::{Lab, serial};

fn raw_request(target: SocketAddr, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn lab_health_services_die_and_return() {
    let _guard = serial();
    let lab = Lab::new("hblocks").expect("lab (needs root)");
    let client = lab.add_host("c1", &["192.0.2.10/24"]).unwrap();
    let server = lab.add_host("s1", &["192.0.2.21/24"]).unwrap();
    let load_file = lab.log_dir().join("s1.load");
    health::set_load(&load_file, 17).unwrap();

    let mut http = Service::http(&server, "s1", 8080).unwrap();
    let mut silent = Service::silent(&server, "s1", 8081).unwrap();
    let _dns = Service::dns(&server, "s1", 5353).unwrap();
    let _load = Service::load(&server, "s1", 8082, &load_file).unwrap();
    let _https = Service::https(&server, "s1", 8443, lab.log_dir()).unwrap();

    let web: SocketAddr = "192.0.2.21:8080".parse().unwrap();
    client
        .in_ns(|| {
            // HEAD (IBM's http advisor default) gets the head, no body; GET gets the body.
            let head = raw_request(web, "HEAD / HTTP/1.0\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
            assert!(
                head.contains("X-Server: s1") && !head.contains("server=s1"),
                "{head}"
            );
            let get = raw_request(web, "GET / HTTP/1.0\r\n\r\n").unwrap();
            assert!(get.ends_with("server=s1\n"), "{get}");
            let load = raw_request(
                "192.0.2.21:8082".parse().unwrap(),
                "GET /load HTTP/1.0\r\n\r\n",
            )
            .unwrap();
            assert!(load.ends_with("\r\n\r\n17\n"), "{load}");

            // Silent: the connection is accepted, nothing ever comes back.
            let mut s = TcpStream::connect_timeout(
                &"192.0.2.21:8081".parse().unwrap(),
                Duration::from_secs(2),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            s.write_all(b"HEAD / HTTP/1.0\r\n\r\n").unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 16];
            let err = s.read(&mut buf).expect_err("silent port answered");
            assert!(
                matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{err}"
            );
            assert!(started.elapsed() >= Duration::from_millis(1400));

            // DNS: an A question for example.test gets 192.0.2.53.
            let u = UdpSocket::bind("0.0.0.0:0").unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut q = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
            u.send_to(&q, "192.0.2.21:5353").unwrap();
            let mut r = [0u8; 512];
            let (n, _) = u.recv_from(&mut r).unwrap();
            assert_eq!(&r[..2], &[0xab, 0xcd]);
            assert_eq!(&r[n - 4..n], &[192, 0, 2, 53]);
        })
        .unwrap();
    health::set_load(&load_file, 3).unwrap();
    let load = client
        .in_ns(|| {
            raw_request(
                "192.0.2.21:8082".parse().unwrap(),
                "GET /load HTTP/1.0\r\n\r\n",
            )
        })
        .unwrap()
        .unwrap();
    assert!(load.ends_with("\r\n\r\n3\n"), "{load}");

    // HTTPS: a real TLS handshake and a GET through it.
    let out = client
        .exec([
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 openssl s_client -connect 192.0.2.21:8443 -quiet 2>/dev/null",
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.0 200 ok"), "{text}");

    // Killing a service: connections are refused at once; the host still answers ping and
    // its other services; a restart serves again.
    http.kill().unwrap();
    let refused = client
        .in_ns(|| raw_request(web, "GET / HTTP/1.0\r\n\r\n"))
        .unwrap();
    assert_eq!(
        refused.expect_err("killed service answered").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert!(client.ping("192.0.2.21", 1).unwrap());
    assert!(silent.is_running());
    http.start().unwrap();
    let back = client
        .in_ns(|| raw_request(web, "GET / HTTP/1.0\r\n\r\n"))
        .unwrap()
        .unwrap();
    assert!(back.ends_with("server=s1\n"), "{back}");
    silent.kill().unwrap();
    assert!(silent.kill().is_err(), "killing a dead service must say so");

    // Ping: blocked, then answered again.
    health::block_ping(&server).unwrap();
    assert!(
        !client.ping("192.0.2.21", 2).unwrap(),
        "blocked host answered ping"
    );
    let still = client
        .in_ns(|| raw_request(web, "GET / HTTP/1.0\r\n\r\n"))
        .unwrap();
    assert!(still.is_ok(), "blocking ping cut HTTP: {still:?}");
    health::unblock_ping(&server).unwrap();
    assert!(client.ping("192.0.2.21", 2).unwrap());
}
