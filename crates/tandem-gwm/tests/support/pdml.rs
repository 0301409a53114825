//! tshark's PDML of SASP PDUs, and what it must show for a message the codec decodes.
//!
//! Self-contained (tandem-core and anyhow only), so that other crates' tests can include it
//! with `#[path = ".../tandem-gwm/tests/support/pdml.rs"] mod pdml;`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use tandem_core::sasp::codec::{
    Body, Group, LB_FLAG_NOCHANGE, LB_FLAG_PUSH, LB_FLAG_TRUST, Member, Message, ReturnCode,
    STATE_QUIESCE,
};

pub type Summary = BTreeMap<String, Vec<String>>;

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
pub fn expected(bytes: &[u8]) -> Summary {
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
pub struct Pdu {
    pub stream: u32,
    pub from_gwm: bool,
    pub fields: Summary,
}

/// Parses tshark's PDML: every SASP PDU with its TCP stream and direction (`from_gwm`: sent
/// from `gwm_port`); fails on malformed packets, on expert errors anywhere and on expert
/// warnings inside SASP.
pub fn parse_pdml(pdml: &str, gwm_port: u16) -> Result<Vec<Pdu>> {
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
                    from_gwm: src_port.context("a SASP PDU without tcp.srcport")? == gwm_port,
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
