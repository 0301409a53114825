//! Advisor targets of the `serve` tool: a silent port, a DNS responder, the `/load` signal.

use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::server::Ctx;

/// The address every `A` question is answered with (a documentation address).
pub const DNS_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// Largest load value `/load` reports; anything else in the file reads as 0.
const MAX_LOAD: u64 = 1 << 32;

/// The load `/load` reports: the first word of `file` as an integer, 0 when there is no file,
/// it cannot be read, or its first word is not a number in `0..=2^32`.
pub(crate) fn read_load(file: Option<&Path>) -> u64 {
    let Some(file) = file else { return 0 };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|&v| v <= MAX_LOAD)
        .unwrap_or(0)
}

/// Accepts and never answers: reads (and drops) what the client sends until it closes or the
/// server stops.
pub(crate) fn handle_silent(mut stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    ctx.counters
        .silent_connections
        .fetch_add(1, Ordering::Relaxed);
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 4096];
    while !ctx.stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Builds the answer to one DNS query, or `None` for something that is not a query (a
/// response, a truncated header, a question that runs past the datagram).
///
/// The answer copies the id and the first question, sets QR, RA and RD as asked, RCODE 0;
/// an `A`/`IN` question gets one answer [`DNS_ANSWER`] (TTL 60), anything else none.
pub fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let mut reply = Vec::with_capacity(query.len() + 16);
    reply.extend_from_slice(&query[..2]);
    reply.push(0x80 | (query[2] & 0x01)); // QR, opcode QUERY, RD copied
    reply.push(0x80); // RA, RCODE 0
    if qdcount == 0 {
        reply.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        return Some(reply);
    }
    // The first question: labels up to the root, then type and class.
    let mut i = 12;
    loop {
        let len = *query.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None; // no compression in a question we answer
        }
        i += 1 + len;
        if i > 12 + 255 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(i + 2)?, *query.get(i + 3)?]);
    let question = &query[12..i + 4];
    let answer = qtype == 1 && qclass == 1;
    reply.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if answer {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&DNS_ANSWER.octets());
    }
    Some(reply)
}

/// Answers DNS queries on `socket` until the server stops.
pub(crate) fn dns_loop(socket: UdpSocket, ctx: &Ctx) {
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
        ctx.counters.error("dns set_read_timeout", &e);
    }
    let mut buf = [0u8; 1500];
    while !ctx.stop.load(Ordering::SeqCst) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if super::is_timeout(&e) => continue,
            Err(e) => {
                ctx.counters.error("dns receive", &e);
                continue;
            }
        };
        let Some(reply) = dns_answer(&buf[..n]) else {
            ctx.counters.error("dns", &"not a query I can answer");
            continue;
        };
        match socket.send_to(&reply, src) {
            Ok(_) => {
                ctx.counters.dns_replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => ctx.counters.error("dns reply", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dig example.test A` as sent on the wire (id 0x1234, RD).
    fn query(qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["example", "test"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn answers_a_with_the_fixed_address() {
        let q = query(1);
        let r = dns_answer(&q).unwrap();
        assert_eq!(&r[..4], &[0x12, 0x34, 0x81, 0x80]);
        assert_eq!(&r[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&r[12..q.len()], &q[12..]);
        assert_eq!(&r[r.len() - 4..], &DNS_ANSWER.octets());
    }

    #[test]
    fn other_types_get_noerror_without_answers() {
        let r = dns_answer(&query(2)).unwrap();
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.len(), query(2).len());
    }

    #[test]
    fn refuses_responses_and_truncated_queries() {
        let mut resp = query(1);
        resp[2] |= 0x80;
        assert!(dns_answer(&resp).is_none());
        assert!(dns_answer(&[0; 11]).is_none());
        let q = query(1);
        assert!(dns_answer(&q[..q.len() - 2]).is_none());
        let mut endless = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        endless.extend(std::iter::repeat_n([1u8, b'a'], 200).flatten());
        assert!(dns_answer(&endless).is_none());
    }

    #[test]
    fn load_file_values() {
        let dir = std::env::temp_dir().join(format!("tandem-lab-loadtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("load");
        assert_eq!(read_load(None), 0);
        assert_eq!(read_load(Some(&f)), 0);
        std::fs::write(&f, "42 busy\n").unwrap();
        assert_eq!(read_load(Some(&f)), 42);
        std::fs::write(&f, "-3").unwrap();
        assert_eq!(read_load(Some(&f)), 0);
        std::fs::write(&f, "99999999999").unwrap();
        assert_eq!(read_load(Some(&f)), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
