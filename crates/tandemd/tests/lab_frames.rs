//! Frames of real networks through the real tandemd: jumbo frames on a 9000-byte MTU lab,
//! 8 KB UDP datagrams fragmented at MTU 1500 (MAC and NAT, both ways), a real router whose
//! smaller link makes it send "fragmentation needed" to the cluster address (the flow's
//! server must get it, or its answers never arrive), 802.1Q-tagged frames on the untagged
//! interface (counted per VLAN, and named in `executor report`). Needs root; runs in the
//! nextest group `lab`. (A balancer on a VLAN sub-interface, eth0.100, is not tested here:
//! this machine's kernel has no 802.1Q devices, see docs/forwarding.md.)

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use tandem_lab::cluster::{
    CLUSTER_IP, ClusterLab, TandemNode, demo_config, mac_bytes, send_raw_frames,
};
use tandem_lab::{Host, serial};

const TIMEOUT: Duration = Duration::from_secs(2);

/// The demo configuration plus a NAT UDP port 9998 (mapport 9999) on the three servers.
fn config() -> String {
    format!(
        "{}port add {CLUSTER_IP}@9998 protocol udp method nat\n\
         server add {CLUSTER_IP}@9998@192.0.2.11+192.0.2.12+192.0.2.13 returnaddress 192.0.2.200 mapport 9999\n",
        demo_config(1)
    )
}

/// A UDP request of `len` bytes from `host` to the cluster's `port`, tried up to 5 times (the
/// first may meet a next hop not yet resolved); the answer must echo it.
fn udp_echo(host: &Host, port: u16, len: usize) -> String {
    let payload: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut last = String::new();
    for _ in 0..5 {
        match host.udp_request(ClusterLab::cluster(port), &payload, TIMEOUT) {
            Ok(reply) if reply.ends_with(&payload) => return reply,
            Ok(reply) => last = format!("answer of {} bytes does not echo", reply.len()),
            Err(e) => last = format!("{e:#}"),
        }
    }
    panic!(
        "{len}-byte UDP request to port {port} from {} not answered: {last}",
        host.name
    )
}

fn drops(node: &TandemNode, reason: &str) -> u64 {
    let s = node.ctl_json(&["executor", "status"]).unwrap();
    s["drops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[0] == reason)
        .and_then(|d| d[1].as_u64())
        .unwrap_or_else(|| panic!("no drop reason {reason}: {s}"))
}

/// A UDP datagram client:4000+i → cluster:9999 tagged with VLAN `vlan`, as a trunk carries it.
fn tagged_udp(src_mac: &str, dst_mac: &str, vlan: u16, i: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac_bytes(dst_mac));
    f.extend_from_slice(&mac_bytes(src_mac));
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vlan.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    let payload = format!("tagged {i}");
    let udp_len = 8 + payload.len() as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&[0, i, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 10, 192, 0, 2, 100]);
    let c = tandem_wire::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(4000 + u16::from(i)).to_be_bytes());
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum
    f.extend_from_slice(payload.as_bytes());
    f
}

/// From the far client's `client_port` to the cluster's `port`: a 1450-byte request, sent
/// again every 700 ms until answered (at most 10 s). The first answer (1481 bytes, DF) does
/// not fit the router's 1400-byte link; later ones come only once the server learnt that from
/// the router's ICMP. Returns the answering server's name.
fn far_request(far: &Host, port: u16, client_port: u16) -> String {
    let answer = far
        .in_ns(move || -> Result<String, String> {
            let s = UdpSocket::bind(("198.51.100.10", client_port)).map_err(|e| e.to_string())?;
            s.connect(ClusterLab::cluster(port))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(700)))
                .map_err(|e| e.to_string())?;
            let payload = vec![b'p'; 1450];
            let mut buf = vec![0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                s.send(&payload).map_err(|e| e.to_string())?;
                if let Ok(n) = s.recv(&mut buf) {
                    return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            Err(format!(
                "no answer on port {port} within 10 s: the router's ICMP did not reach the server"
            ))
        })
        .unwrap()
        .unwrap();
    assert!(answer.ends_with(&"p".repeat(1450)), "{answer}");
    answer.split_whitespace().next().unwrap().to_string()
}

fn set_mtu(host: &Host, dev: &str, mtu: u32) {
    host.run(["ip", "link", "set", "dev", dev, "mtu", &mtu.to_string()])
        .unwrap();
}

#[test]
fn lab_jumbo_frames_of_9000_bytes_are_forwarded() {
    let _g = serial();
    let lab = ClusterLab::new("jumbo", 1, 3).expect("lab (needs root and network namespaces)");
    // MTU 9000 everywhere: the bridge, its ports and every host, before tandemd starts (it
    // reads the interface's MTU when it opens its rings).
    let sw = lab.lab.switch();
    set_mtu(sw, "br0", 9000);
    for h in lab.lab.hosts() {
        set_mtu(sw, &h.name, 9000);
        set_mtu(&h, "eth0", 9000);
    }
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &config(), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert_eq!(status["mtu"], 9000, "{status}");
    assert_eq!(status["frame_limit"], 9014, "{status}");
    // AF_XDP frames hold no jumbo frame (no multi-buffer): auto runs AF_PACKET and says why,
    // unless the test run asked for a backend.
    if tandem_lab::packetio().is_none() {
        let running = status["packetio_running"].as_str().unwrap_or_default();
        assert!(
            running.starts_with("afpacket (afxdp refused") && running.contains("MTU 9000"),
            "{status}"
        );
    }
    // 8972 bytes of UDP with DF (the default of a Linux UDP socket that fits the path MTU):
    // one 9014-byte frame to the cluster, not fragmented.
    for _ in 0..3 {
        udp_echo(&lab.client, 9999, 8972);
    }
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert_eq!(
        status["fragment_datagrams"], 0,
        "the jumbo requests came whole: {status}"
    );
    // NAT: the request whole, the answer (8975 bytes of UDP) fragmented by the server.
    udp_echo(&lab.client, 9998, 8972);
    assert_eq!(drops(&node, "oversize"), 0);
    assert_eq!(drops(&node, "fragment-unknown"), 0);
    // TCP with the jumbo MSS (8960): a 30 000-byte line to the echo port reaches the server
    // in segments of up to 8960 bytes, 9014-byte frames through tandemd.
    node.ctl(&["port", "add", "192.0.2.100@7"]).unwrap();
    node.ctl(&[
        "server",
        "add",
        "192.0.2.100@7@192.0.2.11+192.0.2.12+192.0.2.13",
    ])
    .unwrap();
    let line = "j".repeat(30_000);
    let echoed = lab
        .client
        .in_ns(|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&ClusterLab::cluster(7), TIMEOUT)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("{line}\n").as_bytes())?;
            let mut out = String::new();
            BufReader::new(s).read_line(&mut out)?;
            Ok(out)
        })
        .unwrap()
        .expect("the 30 000-byte line echoed");
    assert!(echoed.trim_end().ends_with(&line), "{} bytes", echoed.len());
    assert_eq!(drops(&node, "oversize"), 0);
    let report = node.ctl(&["executor", "report"]).unwrap();
    assert!(report.contains("9000 / 9014 bytes"), "{report}");
}

#[test]
fn lab_fragments_frag_needed_and_tagged_frames() {
    let _g = serial();
    // On AF_PACKET: with AF_XDP on veth the receive VLAN offload takes the tag off before XDP
    // runs, and the frame reaches Tandem untagged (docs/packet-io.md, "VLAN tags").
    tandem_lab::set_packetio(Some(tandem_lab::PacketIo::Afpacket));
    let lab = ClusterLab::new("frames", 1, 3).expect("lab (needs root and network namespaces)");
    // A router (rt: 192.0.2.1) to a far network 198.51.100.0/24 over a 1400-byte link, with
    // a far client (198.51.100.10) behind it. The far host is made on the bridge and its link
    // then moved into the router.
    let rt = lab.lab.add_host("rt", &["192.0.2.1/24"]).unwrap();
    let far = lab.lab.add_host("far", &["198.51.100.10/24"]).unwrap();
    let sw = lab.lab.switch();
    sw.run(["ip", "link", "set", "dev", "far", "nomaster"])
        .unwrap();
    sw.run(["ip", "link", "set", "dev", "far", "netns", &rt.ns])
        .unwrap();
    for cmd in [
        "ip addr add 198.51.100.1/24 dev far",
        "ip link set dev far mtu 1400",
        "ip link set dev far up",
    ] {
        rt.run(cmd.split(' ')).unwrap();
    }
    rt.sysctl("net.ipv4.ip_forward", "1").unwrap();
    set_mtu(&far, "eth0", 1400);
    far.run(["ip", "route", "add", "default", "via", "198.51.100.1"])
        .unwrap();
    for s in &lab.servers {
        s.run(["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.1"])
            .unwrap();
    }
    let node = TandemNode::start(&lab.lab, &lab.lbs[0], &config(), &[]).expect("tandemd starts");
    lab.wait_serving(80, Duration::from_secs(20))
        .expect("cluster answers");

    // 8 KB datagrams at MTU 1500: six fragments each way. MAC: the request's fragments go
    // through tandemd, the answer straight to the client; NAT: both ways through tandemd.
    for _ in 0..3 {
        udp_echo(&lab.client, 9999, 8000);
        udp_echo(&lab.client, 9998, 8000);
    }
    assert_eq!(drops(&node, "fragment-unknown"), 0);
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    assert!(
        status["fragment_datagrams"].as_u64().unwrap() >= 6,
        "first fragments remembered: {status}"
    );

    // Path-MTU discovery through tandemd. The far client asks port 9999 (MAC) from a fixed
    // port; the server's 1481-byte answer (DF) does not fit the router's 1400-byte link: the
    // router sends "fragmentation needed" to the cluster address, tandemd must pass it to
    // the flow's server, whose next answers are then fragmented to 1400 and arrive.
    let server = far_request(&far, 9999, 5000);
    for s in &lab.servers {
        let route = s.run(["ip", "route", "get", "198.51.100.10"]).unwrap();
        assert_eq!(
            route.contains("mtu 1400"),
            s.name == server,
            "only {server}, the flow's server, learnt the path MTU; {}: {route}",
            s.name
        );
    }
    // The same through NAT (port 9998): tandemd sends the translated answer to the router,
    // which answers "fragmentation needed" about cluster:9998 → far:5001; tandemd translates
    // it to what the server sent (server:9999 → returnaddress:natport), so the server lowers
    // its path MTU to the return address and its next answers come fragmented, which
    // tandemd translates back fragment by fragment.
    let server = far_request(&far, 9998, 5001);
    for s in &lab.servers {
        let route = s.run(["ip", "route", "get", "192.0.2.200"]).unwrap();
        assert_eq!(
            route.contains("mtu 1400"),
            s.name == server,
            "only {server}, the NAT flow's server, learnt the path MTU; {}: {route}",
            s.name
        );
    }
    assert_eq!(drops(&node, "fragment-unknown"), 0);
    assert_eq!(drops(&node, "icmp-no-connection"), 0);

    // Tagged frames on the untagged interface: VLAN 100 datagrams from the client to the
    // cluster (raw frames: this machine's kernel has no 802.1Q devices to make them with).
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|i| tagged_udp(&lab.client.mac, &lab.lbs[0].mac, 100, i))
        .collect();
    send_raw_frames(&lab.client, frames.into_iter()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while drops(&node, "vlan") < 5 {
        assert!(Instant::now() < deadline, "tagged frames not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = node.ctl_json(&["executor", "status"]).unwrap();
    let vlans = status["vlan_drops"].as_array().unwrap();
    assert!(
        vlans
            .iter()
            .any(|v| v["vlan"] == 100 && v["frames"].as_u64().unwrap() >= 5),
        "{status}"
    );
    assert!(drops(&node, "vlan") >= 5);
    let report = node.ctl(&["executor", "report"]).unwrap();
    assert!(
        report.contains("vlan 100: ")
            && report.contains("not configured: run tandemd on the VLAN interface eth0.100"),
        "{report}"
    );
}
