//! Writes the seed corpora of the fuzz targets (fuzz/seeds/TARGET/NAME) from Tandem's real
//! encoders: frames with right checksums, heartbeats of a real pair exchange, replication
//! batches of a real `Sender` and acknowledgements of a real `Receiver`, configuration files,
//! admin requests, SASP messages and advisor state lists.
//!
//! Run from the repository: `cargo +nightly run --manifest-path fuzz/Cargo.toml -p
//! tandem-fuzz-seedgen` (the seeds are checked in; rerun after changing an input layout).

mod advisor;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_core::config::{Config, Protocol, load_file};
use tandem_core::forward::NatMapping;
use tandem_core::ha::{Action, Heartbeat, Machine, ProductVersion, decode, encode};
use tandem_core::replication::{
    AffinityRecord, ConnectionRecord, Receiver, Record, Sender, SenderConfig,
};
use tandem_fuzz::ha::{EPOCH, KEY, settings};
use tandem_wire::checksum;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create seed directory");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

// ----- frame_engine -----

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// An Ethernet/IPv4/TCP-or-UDP frame with right checksums.
fn ip_frame(
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    udp: bool,
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = if udp { 8 } else { 20 } + payload.len();
    let mut f = Vec::new();
    f.extend_from_slice(&OUR_MAC);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4_len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, if udp { 17 } else { 6 }, 0, 0]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    let c = checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    if udp {
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    } else {
        f.extend_from_slice(&1000u32.to_be_bytes());
        f.extend_from_slice(&(if tcp_flags & 0x10 != 0 { 777u32 } else { 0 }).to_be_bytes());
        f.extend_from_slice(&[0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
    }
    f.extend_from_slice(payload);
    let Ok(tandem_wire::Frame::Ip(p)) = tandem_wire::parse(&f) else {
        panic!("seed frame does not parse")
    };
    let c = checksum::l4_checksum_ipv4(&f, &p).expect("checksum");
    let at = p.l4 + if udp { 6 } else { 16 };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

/// One operation of the frame_engine target: `ctrl, dt, sel, len, bytes`.
fn engine_op(out: &mut Vec<u8>, ctrl: u8, dt: u8, sel: u8, frame: &[u8]) {
    out.extend_from_slice(&[ctrl, dt, sel]);
    out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    out.extend_from_slice(frame);
}

fn frame_engine(dir: &Path) {
    let client = Ipv4Addr::new(203, 0, 113, 7);
    let cluster = Ipv4Addr::new(192, 0, 2, 100);
    let ret = Ipv4Addr::new(192, 0, 2, 200);
    let cmac = [2, 0, 0, 0, 2, 0];
    let get = b"GET / HTTP/1.0\r\n\r\n";
    // Raw frames (ctrl 0): a MAC-port connection, open, data, close.
    let mut s = vec![0u8];
    for (flags, payload) in [(0x02, &[][..]), (0x10, &get[..]), (0x11, &[][..])] {
        let f = ip_frame(cmac, (client, 40000), (cluster, 80), false, flags, payload);
        engine_op(&mut s, 0, 1, 0, &f);
    }
    engine_op(&mut s, 0x20, 200, 0, &[]);
    write(dir, "frame_engine", "mac_tcp_raw", &s);
    // Raw NAT connection, with the replies of both servers (one has the record).
    let mut s = vec![16u8];
    let syn = ip_frame(cmac, (client, 40000), (cluster, 8080), false, 0x02, &[]);
    engine_op(&mut s, 0, 1, 0, &syn);
    for last in [11, 12] {
        let srv = Ipv4Addr::new(192, 0, 2, last);
        let smac = [2, 0, 0, 0, 1, last - 11];
        let f = ip_frame(smac, (srv, 80), (ret, 40000), false, 0x12, &[]);
        engine_op(&mut s, 0, 1, 0, &f);
        let f = ip_frame(smac, (srv, 80), (ret, 40000), false, 0x11, b"bye");
        engine_op(&mut s, 0x80, 1, 0, &f);
    }
    let ack = ip_frame(cmac, (client, 40000), (cluster, 8080), false, 0x10, get);
    engine_op(&mut s, 0x24, 1, 0, &ack);
    write(dir, "frame_engine", "nat_tcp_raw", &s);
    // Raw UDP to the NAT port (variant: NAT port UDP) and its reply.
    let mut s = vec![32u8];
    let f = ip_frame(cmac, (client, 40001), (cluster, 8080), true, 0, b"ping");
    engine_op(&mut s, 0, 1, 0, &f);
    let f = ip_frame(
        [2, 0, 0, 0, 1, 0],
        (Ipv4Addr::new(192, 0, 2, 11), 80),
        (ret, 40001),
        true,
        0,
        b"pong",
    );
    engine_op(&mut s, 0, 1, 0, &f);
    write(dir, "frame_engine", "nat_udp_raw", &s);
    // Patched frames (ctrl 1 = to the cluster, 2 = from a server, 3 = ARP).
    let tcp = |flags: u8, payload: &[u8]| {
        let mut v = vec![0u8; 46];
        v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        v
    };
    let mut s = vec![1 | 4 | 8];
    engine_op(&mut s, 1, 0, 0x01, &tcp(0x02, &[]));
    engine_op(&mut s, 1, 0, 0x05, &tcp(0x02, &[]));
    engine_op(&mut s, 0x40, 3, 0x02, &[]);
    engine_op(&mut s, 1, 0, 0x01, &tcp(0x10, get));
    engine_op(&mut s, 0x61, 255, 0x01, &tcp(0x04, &[]));
    write(dir, "frame_engine", "affinity_reset_patched", &s);
    let mut s = vec![0u8];
    engine_op(&mut s, 1, 1, 0x40, &tcp(0x02, &[]));
    engine_op(&mut s, 2, 1, 0x00, &tcp(0x12, &[]));
    engine_op(&mut s, 2, 1, 0x10, &tcp(0x12, &[]));
    engine_op(&mut s, 1, 1, 0x40, &tcp(0x10, get));
    engine_op(&mut s, 2, 1, 0x00, &tcp(0x11, &[]));
    write(dir, "frame_engine", "nat_tcp_patched", &s);
    let mut s = vec![0u8];
    engine_op(&mut s, 3, 0, 0x00, &[0; 42]);
    engine_op(&mut s, 3, 0, 0x13, &[0; 42]);
    engine_op(&mut s, 3, 0, 0x1a, &[0; 60]);
    write(dir, "frame_engine", "arp_patched", &s);
}

// ----- heartbeat_decode -----

/// Heartbeats the machine sends now: (pair, heartbeat).
fn sent(m: &mut Machine) -> Vec<(usize, Heartbeat)> {
    let mut v = Vec::new();
    while let Some(a) = m.poll_action() {
        if let Action::SendHeartbeat {
            pair, heartbeat, ..
        } = a
        {
            v.push((pair, heartbeat));
        }
    }
    v
}

fn timeouts(m: &mut Machine, now: Instant) -> Vec<(usize, Heartbeat)> {
    let mut v = sent(m);
    while m.poll_timeout().is_some_and(|t| t <= now) {
        m.handle_timeout(now);
        v.extend(sent(m));
    }
    v
}

/// A real exchange between the target's node (A) and its partner (B), written as the
/// target's input: B's heartbeats as A receives them, in A's loop order.
fn heartbeat_exchange(
    variant: u8,
    keyed: bool,
    dt: u8,
    steps: usize,
    raw_records: bool,
) -> Vec<u8> {
    let key = keyed.then_some(KEY);
    let t0 = Instant::now();
    let mut now = t0;
    let version = ProductVersion::new(9, 0, 5, 8);
    let mut a = Machine::new(EPOCH, version);
    let mut b = Machine::new(2 * EPOCH, version);
    a.configure(now, &settings(variant, false));
    b.configure(now, &settings(variant, true));
    a.executor_started(now);
    b.executor_started(now);
    let mut to_b = sent(&mut a);
    let mut to_a = sent(&mut b);
    let mut input = vec![variant];
    for step in 0..steps {
        now += Duration::from_millis(u64::from(dt) * 10);
        for (pair, hb) in to_b.drain(..) {
            let bytes = encode(&hb, key);
            b.handle_heartbeat(now, pair, &decode(&bytes, key).expect("own heartbeat"));
        }
        to_a.extend(timeouts(&mut b, now));
        to_a.extend(sent(&mut b));
        let mut first = true;
        if to_a.is_empty() {
            input.extend_from_slice(&[if keyed { 4 } else { 0 }, dt, 0, 0]);
        }
        for (pair, mut hb) in to_a.drain(..) {
            if raw_records && step % 3 == 0 {
                hb.records = vec![1, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
            }
            let bytes = encode(&hb, key);
            let ctrl = pair as u8 | if keyed { 4 } else { 0 };
            input.extend_from_slice(&[ctrl, if first { dt } else { 0 }]);
            input.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            input.extend_from_slice(&bytes);
            first = false;
            let hb = decode(&bytes, key).expect("partner heartbeat");
            if let Some(i) = a.pair_index(hb_local(pair), hb_remote(pair)) {
                a.handle_heartbeat(now, i, &hb);
            }
            to_b.extend(sent(&mut a));
        }
        to_b.extend(timeouts(&mut a, now));
    }
    println!(
        "heartbeat seed {variant}: node {} {}, partner {} {}",
        a.state(),
        a.sub_state(),
        b.state(),
        b.sub_state()
    );
    input
}

fn hb_local(pair: usize) -> IpAddr {
    tandem_fuzz::ha::pair(pair as u8).0
}

fn hb_remote(pair: usize) -> IpAddr {
    tandem_fuzz::ha::pair(pair as u8).1
}

fn heartbeat_decode(dir: &Path) {
    write(
        dir,
        "heartbeat_decode",
        "pair_keyed",
        &heartbeat_exchange(0, true, 50, 10, false),
    );
    write(
        dir,
        "heartbeat_decode",
        "pair_unkeyed_backup",
        &heartbeat_exchange(1, false, 50, 10, false),
    );
    write(
        dir,
        "heartbeat_decode",
        "pair_fast_replication",
        &heartbeat_exchange(4 | 8, true, 1, 6, true),
    );
    write(
        dir,
        "heartbeat_decode",
        "pair_manual",
        &heartbeat_exchange(2 | 8, false, 50, 10, true),
    );
}

// ----- replication_receiver -----

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn records() -> Vec<Record> {
    let mac = ConnectionRecord {
        proto: Protocol::Tcp,
        client: sock("203.0.113.7:40000"),
        cluster: sock("192.0.2.100:80"),
        server: ip("192.0.2.11"),
        nat: None,
        client_mac: [2, 0, 0, 0, 2, 0],
        client_ack: 777,
        closing: false,
        ended: false,
        idle_ms: 10,
        staletimeout_s: 300,
    };
    let nat = ConnectionRecord {
        client: sock("203.0.113.8:40001"),
        cluster: sock("192.0.2.100:8080"),
        server: ip("192.0.2.12"),
        nat: Some(NatMapping {
            returnaddress: ip("192.0.2.200"),
            nat_port: 40001,
            server_port: 80,
        }),
        ..mac
    };
    let aff = AffinityRecord {
        cluster: ip("192.0.2.100"),
        port: 80,
        client: ip("203.0.113.7"),
        server: ip("192.0.2.11"),
        age_ms: 5,
        stickytime_s: 60,
    };
    let ended = ConnectionRecord { ended: true, ..mac };
    let v6 = ConnectionRecord {
        client: sock("[2001:db8::7]:40002"),
        ..mac
    };
    vec![
        Record::Connection(mac),
        Record::Connection(nat),
        Record::Affinity(aff),
        Record::Connection(v6),
        Record::Connection(ended),
    ]
}

fn rep_op(out: &mut Vec<u8>, ctrl: u8, dt: u8, bytes: &[u8]) {
    out.extend_from_slice(&[ctrl, dt]);
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn replication_receiver(dir: &Path) {
    let now = Instant::now();
    let mut tx = Sender::new(SenderConfig {
        session: 7,
        ..SenderConfig::default()
    });
    let mut rx = Receiver::default();
    let all = records();
    for r in &all[..3] {
        tx.push(*r);
    }
    let mut batches = Vec::new();
    tx.pace(now);
    while let Some(b) = tx.next_batch(now, 1400) {
        batches.push(b.bytes);
    }
    tx.start_full_sync(all.iter().copied(), now);
    tx.pace(now + Duration::from_secs(1));
    while let Some(b) = tx.next_batch(now + Duration::from_secs(1), 120) {
        batches.push(b.bytes);
    }
    let mut acks = Vec::new();
    for b in &batches {
        let out = rx.on_batch(b, now);
        acks.push(out.ack.expect("acknowledged").to_bytes());
    }
    // In order, with the acknowledgements.
    let mut s = vec![255u8];
    for (b, a) in batches.iter().zip(&acks) {
        rep_op(&mut s, 4, 1, b);
        rep_op(&mut s, 1, 0, a);
    }
    write(dir, "replication_receiver", "in_order", &s);
    // Reversed, duplicated, then a reset and a new session.
    let mut s = vec![3u8];
    for b in batches.iter().rev() {
        rep_op(&mut s, 0, 1, b);
        rep_op(&mut s, 0, 0, b);
    }
    let mut tx2 = Sender::new(SenderConfig {
        session: 8,
        first_seq: u32::MAX - 1,
        ..SenderConfig::default()
    });
    for r in &all {
        tx2.push(*r);
    }
    tx2.pace(now);
    let mut later = Vec::new();
    while let Some(b) = tx2.next_batch(now, 60) {
        later.push(b.bytes);
    }
    rep_op(&mut s, 2, 200, &[]);
    for b in &later {
        rep_op(&mut s, 0, 130, b);
    }
    rep_op(&mut s, 0, 1, &batches[0]);
    write(
        dir,
        "replication_receiver",
        "reordered_new_session_wrap",
        &s,
    );
}

// ----- grammar and admin_request -----

const EVERY_COMMAND: &str = "\
dscontrol executor start
executor set nfa 192.0.2.2
executor set clientgateway 192.0.2.1
executor set hatimeout 0.5
cluster add 192.0.2.100+192.0.2.101+2001:db8::100
port add 192.0.2.100@80+443 method mac selectionalgorithm conn+affin stickytime 30 staletimeout 120 weightbound 50 reset yes repstrategy both
port add 192.0.2.101@8080 method nat protocol udp selectionalgorithm hash repstrategy connection
port set 192.0.2.100@443 selectionalgorithm affinity
server add 192.0.2.100@80+443@192.0.2.11+192.0.2.12 weight 10 fixedweight yes router 192.0.2.1
server add 192.0.2.101@8080@192.0.2.13 weight 5 returnaddress 192.0.2.200 mapport 53
server set @80@192.0.2.11 weight 20
server down 192.0.2.100@443@192.0.2.12
server up 192.0.2.100@443@192.0.2.12
server down 192.0.2.100@80@192.0.2.12
server status @@
port report 192.0.2.100@80
cluster status @
executor report
highavailability heartbeat add 192.0.2.2 192.0.2.3
highavailability heartbeat add 198.51.100.2 198.51.100.3
highavailability reach add 203.0.113.1
highavailability backup add primary auto 20001
highavailability key /etc/tandem/ha.key
highavailability scripts /etc/tandem/scripts
manager reach set interval 1.5
highavailability status # a comment
ex star
highavailability reach delete 203.0.113.1
highavailability heartbeat delete 198.51.100.2
server remove 192.0.2.100@443@192.0.2.11
port remove 192.0.2.100@443
cluster remove 2001:db8::100
highavailability takeover
highavailability maintenance
highavailability backup delete
executor stop
";

/// The health commands of issue 8: advisors, manager, quiesce, proportions, SASP, quoted
/// advisor strings.
const HEALTH: &str = r#"executor set nfa 192.0.2.2
cluster add 192.0.2.100 proportions 40 30 20 10
cluster add 192.0.2.101
cluster set @ proportions 50 50 0 0
port add 192.0.2.100@80+443
port add 192.0.2.101@80
server add 192.0.2.100@80+443@192.0.2.11+192.0.2.12 advisorrequest "HEAD /health HTTP/1.1\r\nHost: www # x" advisorresponse "200 \"OK\""
server add 192.0.2.101@80@192.0.2.11
server set @@192.0.2.11 advisorresponse "" # back to the default
manager quiesce 192.0.2.12
manager unquiesce 192.0.2.100@443@192.0.2.12
manager interval 4
manager sensitivity 10
manager smoothing 2.5
manager start
advisor start http 80
advisor interval http 80 3
advisor connecttimeout http 80 1
advisor receivetimeout http 80 1.5
advisor retries http 80 2
advisor timeout http 80 60
advisor start https 192.0.2.100@443
advisor start ping 192.0.2.101@80
advisor start ADV_load 80
advisor timeout ADV_load 80 unlimited
advisor list
advisor report http 80
manager report 192.0.2.100
sasp add 192.0.2.100@80 gwm 198.51.100.7 mode pull interval 9 members changed
sasp add 192.0.2.100@80 gwm 198.51.100.8 port 4000 grace 0 tls yes
sasp add 192.0.2.101 gwm 2001:db8::7
sasp report
sasp remove 192.0.2.100@80 gwm 198.51.100.8
advisor stop ping 192.0.2.101@80
port remove 192.0.2.100@443
highavailability heartbeat add 192.0.2.2 192.0.2.3
highavailability backup add primary auto 12345
"#;

fn grammar(dir: &Path, demo: &str) {
    write(dir, "grammar", "demo.cfg", demo.as_bytes());
    write(
        dir,
        "grammar",
        "every_command.cfg",
        EVERY_COMMAND.as_bytes(),
    );
    let cfg = load_file(EVERY_COMMAND, "every.cfg", &Config::default()).expect("loads");
    write(
        dir,
        "grammar",
        "saved.cfg",
        cfg.to_commands().join("\n").as_bytes(),
    );
    write(dir, "grammar", "health.cfg", HEALTH.as_bytes());
    let cfg = load_file(HEALTH, "health.cfg", &Config::default()).expect("loads");
    write(
        dir,
        "grammar",
        "health_saved.cfg",
        cfg.to_commands().join("\n").as_bytes(),
    );
}

fn admin_request(dir: &Path) {
    let requests: [(&str, &[&str], bool); 8] = [
        ("executor_status", &["executor", "status"], false),
        (
            "server_weight",
            &["server", "set", "192.0.2.100@80@192.0.2.11", "weight", "5"],
            true,
        ),
        (
            "port_add",
            &["port", "add", "192.0.2.100@443", "method", "nat"],
            false,
        ),
        ("cluster_report", &["cluster", "report", "@"], true),
        (
            "ha_backup",
            &[
                "highavailability",
                "backup",
                "add",
                "backup",
                "manual",
                "20001",
            ],
            false,
        ),
        (
            "ha_key",
            &["highavailability", "key", "/etc/tandem/ha.key"],
            false,
        ),
        ("prefixes", &["ser", "dow", "@@192.0.2.12"], false),
        ("dscontrol", &["dscontrol", "executor", "report"], false),
    ];
    for (name, words, json) in requests {
        let words: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        let line = format!("{{\"words\":[{}],\"json\":{json}}}", words.join(","));
        write(dir, "admin_request", name, line.as_bytes());
    }
}

/// The ha_node target: a pair running (empty injections), then records, a replay, a
/// takeover, a lost link and a restart of the partner.
fn ha_node(dir: &Path) {
    let op = |out: &mut Vec<u8>, ctrl: u8, dt: u8, bytes: &[u8]| {
        out.extend_from_slice(&[ctrl, dt]);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for (name, variant, dt) in [
        ("keyed_primary", 1u8, 50u8),
        ("unkeyed_backup", 2, 50),
        ("keyed_fast_manual", 1 | 4 | 8, 3),
    ] {
        let mut s = vec![variant];
        for _ in 0..8 {
            op(&mut s, 0, dt, &[]);
        }
        op(&mut s, 0x20, 1, &[]);
        op(&mut s, 0x28, 1, &[0]);
        op(&mut s, 0x09, 1, &[3, 0, 0, 0, 0, 1]);
        op(&mut s, 0x40, dt, &[]);
        for _ in 0..4 {
            op(&mut s, 0, dt, &[]);
        }
        op(&mut s, 0x10, dt, &[]);
        op(&mut s, 0x80, dt, &[]);
        for _ in 0..4 {
            op(&mut s, 0, dt, &[]);
        }
        write(dir, "ha_node", name, &s);
    }
}

// ----- sasp_decode -----

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Golden vectors of `shared/reference/sasp-notes.md` §3.2 (checked byte for byte by
/// `tandem-core`'s codec tests).
const SASP_GOLDEN: [(&str, &str); 7] = [
    (
        "v01_get_weights_reply_rfc_example",
        "2010000d010000006a320000001035000900004000014011000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a010030120008000d0028301000180600500000000000000000000000000a0a0a020030120008000d0014",
    ),
    (
        "v04_set_lb_state_reply_ok",
        "2010000d0100000012000000021055000500",
    ),
    (
        "v05_registration_req",
        "2010000d010000005c00000003101000070100014010000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a01003010001c0600500000000000000000000000000a0a0a020477656232",
    ),
    (
        "v07_registration_reply_already_registered",
        "2010000d0100000012000000031015000540",
    ),
    (
        "v11_send_weights_push",
        "2010000d0100000067000000001040000600014011000600023011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a010030120008000d0028301000180600500000000000000000000000000a0a0a020030120008000f0000",
    ),
    (
        "v12_set_member_state_req_quiesce",
        "2010000d010000004600000006106000070100014012000600013011000e034c4231054641524d31301000180600500000000000000000000000000a0a0a0200301300060001",
    ),
    (
        "v20_set_lb_state_reply_not_understood_v1",
        "2010000d01000000120000000b1055000510",
    ),
];

/// A GWM's side of a whole conversation with the fuzzed session (IDs 1, 2, 3), then pushes.
fn sasp_conversation() -> Vec<u8> {
    use tandem_core::sasp::codec::{
        Body, Group, GroupWeights, Member, Message, ReturnCode, WeightEntry,
    };
    let code = ReturnCode::SUCCESS;
    let member = |i: u8| Member::new(IpAddr::V4(Ipv4Addr::new(10, 10, 10, i)), 80, 6);
    let weights = |w1: u16, w2: u16| GroupWeights {
        group: Group::new("LB1", "FARM1"),
        entries: vec![
            (
                member(1),
                WeightEntry {
                    state: 0,
                    flags: 0x0d,
                    weight: w1,
                },
            ),
            (
                member(2),
                WeightEntry {
                    state: 0,
                    flags: 0x0d,
                    weight: w2,
                },
            ),
        ],
    };
    let msgs = [
        Message::new(1, Body::SetLbStateReply { code }),
        Message::new(2, Body::RegistrationReply { code }),
        Message::new(
            3,
            Body::GetWeightsReply {
                code,
                interval: 1,
                groups: vec![weights(40, 20)],
            },
        ),
        Message::new(
            0,
            Body::SendWeights {
                groups: vec![weights(10, 30)],
            },
        ),
        Message::new(0, Body::SendWeights { groups: vec![] }),
    ];
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out).expect("encode");
    }
    out
}

fn sasp_decode(dir: &Path) {
    for (name, hex) in SASP_GOLDEN {
        let mut s = vec![0x3f];
        s.extend(unhex(hex));
        write(dir, "sasp_decode", name, &s);
    }
    let conv = sasp_conversation();
    for (name, ctl) in [
        ("push", 0x3f),
        ("pull", 0x7f),
        ("push_changed", 0xbf),
        ("bytewise", 0x00),
    ] {
        let mut s = vec![ctl];
        s.extend_from_slice(&conv);
        write(dir, "sasp_decode", &format!("conversation_{name}"), &s);
    }
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = fuzz.join("seeds");
    let demo = std::fs::read_to_string(fuzz.join("../examples/demo.cfg")).expect("demo.cfg");
    sasp_decode(&dir);
    frame_engine(&dir);
    heartbeat_decode(&dir);
    replication_receiver(&dir);
    grammar(&dir, &demo);
    admin_request(&dir);
    ha_node(&dir);
    advisor::advisor_state(&dir);
    println!("seeds written to {}", dir.display());
}
