//! Wire exactness: a real `tandem-gwm` and an LB driver built on the shared SASP codec talk
//! inside a lab, `tcpdump` captures the conversation on the GWM's veth, and Wireshark's SASP
//! dissector (`tshark`) decodes it. Asserted: no malformed packet, no expert warning or error
//! in SASP, every one of the 11 message types seen, and for every message of every
//! connection, in order, tshark's fields (types, IDs, lengths, LB UIDs, group names, member
//! addresses, ports, protocols, labels, weights, flags, return codes, interval) equal what the
//! codec says was sent. Needs root, `tcpdump` and `tshark` (fails loudly without them).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tandem_core::sasp::codec::{
    Body, FLAG_LB, Framer, Group, GroupMemberStates, GroupMembers, Header, LB_FLAG_NOCHANGE,
    LB_FLAG_PUSH, LB_FLAG_TRUST, Member, MemberState, Message, ReturnCode, STATE_QUIESCE,
};
use tandem_lab::{Host, Lab};

const GWM_IP: &str = "192.0.2.50";
const PORT: u16 = 3860;

fn need(tool: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: `DEBIAN_FRONTEND=noninteractive apt-get install -y tshark tcpdump`"
    );
}

/// A member: answers `GET /load` with its load, anything else with 200 OK.
fn member_server(host: &Host, load: &'static str, stop: Arc<AtomicBool>) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    host.in_ns_background(move || {
        let listener = TcpListener::bind("0.0.0.0:80").expect("bind :80");
        listener.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 2048];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let body = if req.starts_with("GET /load ") {
                        load
                    } else {
                        "OK"
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })?;
    rx.recv_timeout(Duration::from_secs(5))
        .context("member server did not start")?;
    Ok(())
}

/// Whole messages as bytes, in order.
type Messages = Vec<Vec<u8>>;

/// One LB connection: what it sent and received, as bytes, in order.
struct Lb {
    stream: TcpStream,
    framer: Framer,
    /// Received bytes not yet returned as messages (the messages as they were on the wire).
    raw: Vec<u8>,
    sent: Vec<Vec<u8>>,
    received: Vec<Vec<u8>>,
    next_id: u32,
}

impl Lb {
    fn connect() -> Result<Lb> {
        let addr: SocketAddr = format!("{GWM_IP}:{PORT}").parse()?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Lb {
            stream,
            framer: Framer::new(),
            raw: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            next_id: 1,
        })
    }

    fn send(&mut self, version: u8, body: Body) -> Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = Message::new(id, body);
        msg.version = version;
        let bytes = msg.to_bytes()?;
        self.stream.write_all(&bytes)?;
        self.sent.push(bytes);
        Ok(id)
    }

    /// The next message from the GWM within `limit`.
    fn recv(&mut self, limit: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(m) = self.framer.next_message()? {
                let len = Header::decode(&self.raw)?.message_len;
                self.received.push(self.raw.drain(..len).collect());
                return Ok(Some(m));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the GWM closed the connection"),
                Ok(n) => {
                    self.framer.push(&buf[..n]);
                    self.raw.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends a request and returns its reply (pushes arriving meanwhile go to `pushes`).
    fn request(&mut self, version: u8, body: Body, pushes: &mut Vec<Message>) -> Result<Message> {
        let id = self.send(version, body)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.recv(Duration::from_millis(500))? {
                Some(m) if matches!(m.body, Body::SendWeights { .. }) => pushes.push(m),
                Some(m) => {
                    assert_eq!(m.id, id, "the reply echoes the Message ID");
                    return Ok(m);
                }
                None => {}
            }
        }
        bail!("no reply to request {id}")
    }

    /// Closes our side, reads what is left until the GWM closes too.
    fn close(mut self) -> Result<(Messages, Messages)> {
        self.stream.shutdown(Shutdown::Write)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.recv(Duration::from_millis(200)) {
                Ok(Some(_)) => {}
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => bail!("the GWM did not close after our FIN"),
                Err(_) => break,
            }
        }
        Ok((self.sent, self.received))
    }
}

fn member(ip: &str, label: &str) -> Member {
    let mut m = Member::new(ip.parse().unwrap(), 80, 6);
    m.label = label.to_owned();
    m
}

/// Merges weights messages into (address → (flags, weight)).
fn merge(state: &mut BTreeMap<IpAddr, (u8, u16)>, m: &Message) {
    let groups = match &m.body {
        Body::SendWeights { groups } | Body::GetWeightsReply { groups, .. } => groups,
        _ => return,
    };
    for g in groups {
        for (member, e) in &g.entries {
            state.insert(member.address, (e.flags, e.weight));
        }
    }
}

/// Reads pushes until `want` holds (or fails after `limit`).
fn await_state(
    lb: &mut Lb,
    state: &mut BTreeMap<IpAddr, (u8, u16)>,
    want: &BTreeMap<IpAddr, (u8, u16)>,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while state != want {
        if Instant::now() >= deadline {
            bail!("weights {state:?}, expected {want:?}");
        }
        if let Some(m) = lb.recv(Duration::from_millis(500))? {
            assert!(
                matches!(m.body, Body::SendWeights { .. }),
                "only pushes: {m:?}"
            );
            merge(state, &m);
        }
    }
    Ok(())
}

type Summary = BTreeMap<String, Vec<String>>;

/// The fields compared, as tshark names them.
const KEYS: &[&str] = &[
    "sasp.msg.type",
    "sasp.version",
    "sasp.msg.len",
    "sasp.msg.id",
    "sasp.setlbstate-req.lbuid",
    "sasp.setlbstate-req.lbhealth",
    "sasp.flags.push",
    "sasp.flags.trust",
    "sasp.flags.nochange",
    "sasp.grpdatacomp.label.uid",
    "sasp.grpdatacomp.grpname",
    "sasp.memdatacomp.ip",
    "sasp.memdatacomp.port",
    "sasp.memdatacomp.protocol",
    "sasp.memdatacomp.label",
    "sasp.wtentrydatacomp.weight",
    "sasp.flags.contactsuccess",
    "sasp.flags.quiesce",
    "sasp.flags.registration",
    "sasp.flags.confident",
    "sasp.reg-rep.retcode",
    "sasp.dereg-rep.retcode",
    "sasp.getwt-rep.retcode",
    "sasp.getwt-rep.interval",
    "sasp.setlbstate-rep.retcode",
    "sasp.setmemstate-rep.retcode",
];

fn add(s: &mut Summary, k: &str, v: impl ToString) {
    s.entry(k.to_owned()).or_default().push(v.to_string());
}

fn bit(flags: u8, b: u8) -> &'static str {
    if flags & b != 0 { "1" } else { "0" }
}

fn show_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("::{a}"),
        IpAddr::V6(a) => a.to_string(),
    }
}

fn add_group(s: &mut Summary, g: &Group) {
    add(s, "sasp.msg.type", "0x3011");
    add(s, "sasp.grpdatacomp.label.uid", &g.lb_uid);
    add(s, "sasp.grpdatacomp.grpname", &g.name);
}

fn add_member(s: &mut Summary, m: &Member) {
    add(s, "sasp.msg.type", "0x3010");
    add(s, "sasp.memdatacomp.ip", show_ip(m.address));
    add(s, "sasp.memdatacomp.port", m.port);
    add(
        s,
        "sasp.memdatacomp.protocol",
        format!("0x{:02x}", m.protocol),
    );
    add(s, "sasp.memdatacomp.label", &m.label);
}

/// What tshark must show for `bytes`, from the codec's decoding of them.
fn expected(bytes: &[u8]) -> Summary {
    let m = Message::decode(bytes).expect("the codec decodes what was on the wire");
    let mut s = Summary::new();
    add(&mut s, "sasp.msg.type", "0x2010");
    add(&mut s, "sasp.version", m.version);
    add(&mut s, "sasp.msg.len", bytes.len());
    add(&mut s, "sasp.msg.id", m.id);
    add(
        &mut s,
        "sasp.msg.type",
        format!("0x{:04x}", m.body.message_type()),
    );
    let code = |s: &mut Summary, k: &str, c: &ReturnCode| add(s, k, format!("0x{:02x}", c.0));
    match &m.body {
        Body::SetLbStateRequest {
            lb_uid,
            health,
            flags,
        } => {
            add(&mut s, "sasp.setlbstate-req.lbuid", lb_uid);
            add(
                &mut s,
                "sasp.setlbstate-req.lbhealth",
                format!("0x{health:02x}"),
            );
            add(&mut s, "sasp.flags.push", bit(*flags, LB_FLAG_PUSH));
            add(&mut s, "sasp.flags.trust", bit(*flags, LB_FLAG_TRUST));
            add(&mut s, "sasp.flags.nochange", bit(*flags, LB_FLAG_NOCHANGE));
        }
        Body::RegistrationRequest { groups, .. } | Body::DeregistrationRequest { groups, .. } => {
            for g in groups {
                add(&mut s, "sasp.msg.type", "0x4010");
                add_group(&mut s, &g.group);
                for m in &g.members {
                    add_member(&mut s, m);
                }
            }
        }
        Body::GetWeightsRequest { groups } => groups.iter().for_each(|g| add_group(&mut s, g)),
        Body::GetWeightsReply {
            code: c,
            interval,
            groups,
        } => {
            code(&mut s, "sasp.getwt-rep.retcode", c);
            add(&mut s, "sasp.getwt-rep.interval", interval);
            add_weights(&mut s, groups);
        }
        Body::SendWeights { groups } => add_weights(&mut s, groups),
        Body::SetMemberStateRequest { groups, .. } => {
            for g in groups {
                add(&mut s, "sasp.msg.type", "0x4012");
                add_group(&mut s, &g.group);
                for (m, st) in &g.entries {
                    add_member(&mut s, m);
                    add(&mut s, "sasp.msg.type", "0x3013");
                    add(&mut s, "sasp.flags.quiesce", bit(st.flags, STATE_QUIESCE));
                }
            }
        }
        Body::RegistrationReply { code: c } => code(&mut s, "sasp.reg-rep.retcode", c),
        Body::DeregistrationReply { code: c } => code(&mut s, "sasp.dereg-rep.retcode", c),
        Body::SetLbStateReply { code: c } => code(&mut s, "sasp.setlbstate-rep.retcode", c),
        Body::SetMemberStateReply { code: c } => code(&mut s, "sasp.setmemstate-rep.retcode", c),
    }
    s
}

fn add_weights(s: &mut Summary, groups: &[tandem_core::sasp::codec::GroupWeights]) {
    for g in groups {
        add(s, "sasp.msg.type", "0x4011");
        add_group(s, &g.group);
        for (m, e) in &g.entries {
            add_member(s, m);
            add(s, "sasp.msg.type", "0x3012");
            add(s, "sasp.flags.contactsuccess", bit(e.flags, 0x01));
            add(s, "sasp.flags.quiesce", bit(e.flags, 0x02));
            add(s, "sasp.flags.registration", bit(e.flags, 0x04));
            add(s, "sasp.flags.confident", bit(e.flags, 0x08));
            add(s, "sasp.wtentrydatacomp.weight", e.weight);
        }
    }
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One SASP PDU as tshark decoded it.
#[derive(Debug)]
struct Pdu {
    stream: u32,
    from_gwm: bool,
    fields: Summary,
}

/// Parses tshark's PDML: every SASP PDU with its TCP stream and direction; fails on
/// malformed packets and on expert warnings or errors inside SASP.
fn parse_pdml(pdml: &str) -> Result<Vec<Pdu>> {
    let mut pdus = Vec::new();
    let (mut stream, mut src_port) = (None, None);
    let mut current: Option<(Summary, Vec<(String, String)>)> = None;
    for (n, line) in pdml.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("<packet>") {
            (stream, src_port) = (None, None);
        }
        if line.contains("_ws.malformed") {
            bail!("line {n}: malformed packet: {t}");
        }
        if t.starts_with("<field name=\"_ws.expert.severity\"") {
            let sev: u64 = attr(t, "show").unwrap_or("0").parse().unwrap_or(0);
            // 0x00600000 warning, 0x00800000 error.
            if sev >= 0x0080_0000 || (current.is_some() && sev >= 0x0060_0000) {
                bail!("line {n}: expert info of severity {sev:#x}");
            }
        }
        let name = attr(t, "name").unwrap_or("");
        if t.starts_with("<field ") {
            match name {
                "tcp.stream" => stream = attr(t, "show").and_then(|v| v.parse::<u32>().ok()),
                "tcp.srcport" => src_port = attr(t, "show").and_then(|v| v.parse::<u16>().ok()),
                _ => {}
            }
        }
        if t.starts_with("<proto name=\"sasp\"") {
            current = Some((Summary::new(), Vec::new()));
            continue;
        }
        if let Some((fields, seen)) = current.as_mut() {
            if t.starts_with("</proto>") {
                let (fields, _) = current.take().unwrap();
                pdus.push(Pdu {
                    stream: stream.context("a SASP PDU without tcp.stream")?,
                    from_gwm: src_port.context("a SASP PDU without tcp.srcport")? == PORT,
                    fields,
                });
                continue;
            }
            if t.starts_with("<field ") && KEYS.contains(&name) {
                // The Member Data subtree's header repeats the address over 24 bytes.
                if name == "sasp.memdatacomp.ip" && attr(t, "size") != Some("16") {
                    continue;
                }
                let pos = attr(t, "pos").unwrap_or("").to_owned();
                if seen.contains(&(name.to_owned(), pos.clone())) {
                    continue;
                }
                seen.push((name.to_owned(), pos));
                add(fields, name, unescape(attr(t, "show").unwrap_or("")));
            }
        }
    }
    Ok(pdus)
}

#[test]
fn lab_tshark_decodes_a_tandem_gwm_conversation() -> Result<()> {
    need("tcpdump");
    need("tshark");
    let _guard = tandem_lab::serial();
    let lab = Lab::new("gwm-tshark").context("lab (needs root)")?;
    let gwm_host = lab.add_host("gwm", &[&format!("{GWM_IP}/24")])?;
    let lb_host = lab.add_host("lb", &["192.0.2.10/24"])?;
    let stop = Arc::new(AtomicBool::new(false));
    for (name, ip, load) in [
        ("m1", "192.0.2.21", "1"),
        ("m2", "192.0.2.22", "3"),
        ("m3", "192.0.2.23", "0"),
    ] {
        let host = lab.add_host(name, &[&format!("{ip}/24")])?;
        member_server(&host, load, stop.clone())?;
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

    let (a, b) = lb_host.in_ns(|| -> Result<_> {
        let group = Group::new("tandem-192.0.2.10", "192.0.2.100@80");
        let members = vec![
            member("192.0.2.21", ""),
            member("192.0.2.22", ""),
            member("192.0.2.23", "web3"),
            member("2001:db8::30", ""),
        ];
        let mut pushes = Vec::new();
        // LB A: push, changed members only.
        let mut a = Lb::connect()?;
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
        let mut b = Lb::connect()?;
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
        Ok((a.close()?, b.close()?))
    })??;
    stop.store(true, Ordering::Relaxed);
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
    let pdus = parse_pdml(&pdml)?;
    let mut types = std::collections::BTreeSet::new();
    for (stream, (sent, received)) in [a, b].into_iter().enumerate() {
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
        pdus.iter().all(|p| p.stream < 2),
        "only our two connections"
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
    let pdus = parse_pdml(&pdml_of("2010000d0100000012000000011055000500", &dir)?)?;
    assert_eq!(pdus.len(), 1);
    assert!(pdus[0].from_gwm);
    assert_eq!(pdus[0].fields["sasp.setlbstate-rep.retcode"], vec!["0x00"]);
    // n04 (unknown message type: an expert warning) and n03 (malformed) are refused.
    let unknown = parse_pdml(&pdml_of("2010000d0100000012000000031070000500", &dir)?);
    assert!(format!("{:#}", unknown.unwrap_err()).contains("expert info"));
    let n03 = "2010000d0100000021000000041030000600013011000e204c4231054641524d31";
    let malformed = parse_pdml(&pdml_of(n03, &dir)?);
    assert!(format!("{:#}", malformed.unwrap_err()).contains("malformed"));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
