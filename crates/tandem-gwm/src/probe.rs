//! Member checks (contact) and load signals.
//!
//! * `--member-check tcp`: the member accepts a TCP connection within the timeout.
//! * `--member-check http`: `GET / HTTP/1.0` answered with a 1xx–3xx status in time.
//! * `--member-check none`: every member is taken as in contact (for members the GWM cannot
//!   reach).
//! * `--load-url-path PATH`: `GET PATH` on the member answers 200 with a number (its load,
//!   lower is better) as the body.
//! * `--load-command CMD`: `sh -c CMD` with `MEMBER_ADDRESS`, `MEMBER_PORT` and
//!   `MEMBER_PROTOCOL` set prints a number on its first line and exits 0.
//!
//! Members that are not TCP (system members with port 0, UDP members) are not checked by
//! `tcp` or `http`: their contact comes from the load source when there is one (read = in
//! contact), else they are taken as in contact but not CONFIDENT.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tandem_core::sasp::gwm::{MemberHealth, MemberKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Largest HTTP reply or command output read.
const MAX_REPLY: usize = 64 * 1024;
const TCP: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberCheck {
    Tcp,
    Http,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadSource {
    None,
    Url(String),
    Command(String),
}

/// Checks one member and reads its load; never takes longer than about twice `limit`.
pub async fn probe(
    member: MemberKey,
    check: MemberCheck,
    load: &LoadSource,
    limit: Duration,
) -> MemberHealth {
    let addr = SocketAddr::new(member.address, member.port);
    let checkable = member.protocol == TCP && member.port != 0;
    let checked: Result<bool> = match check {
        MemberCheck::None => Ok(true),
        _ if !checkable => Ok(false),
        MemberCheck::Tcp => tcp_check(addr, limit).await.map(|()| true),
        MemberCheck::Http => http_get(addr, "/", limit).await.and_then(|(status, _)| {
            if (100..400).contains(&status) {
                Ok(true)
            } else {
                Err(anyhow!("HTTP status {status}"))
            }
        }),
    };
    let (mut contact, mut confident, mut last_error) = match checked {
        Ok(true) => (true, true, None),
        // Not checkable by tcp/http.
        Ok(false) => (
            true,
            false,
            Some(format!(
                "protocol {} port {} is not checked by {check:?}",
                member.protocol, member.port
            )),
        ),
        Err(e) => (false, true, Some(format!("{e:#}"))),
    };
    let mut value = None;
    if contact && *load != LoadSource::None {
        match read_load(member, load, limit).await {
            Ok(v) => {
                value = Some(v);
                confident = true;
                if !checkable && check != MemberCheck::None {
                    last_error = None;
                }
            }
            Err(e) => {
                confident = false;
                if !checkable && check != MemberCheck::None {
                    contact = false;
                }
                last_error = Some(format!("load: {e:#}"));
            }
        }
    }
    MemberHealth {
        contact,
        load: value,
        confident,
        last_error,
    }
}

async fn tcp_check(addr: SocketAddr, limit: Duration) -> Result<()> {
    timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connect to {addr}: no answer within {limit:?}"))?
        .with_context(|| format!("connect to {addr}"))?;
    Ok(())
}

/// `GET path HTTP/1.0`; returns the status and the body (bounded), all within `limit`.
pub async fn http_get(addr: SocketAddr, path: &str, limit: Duration) -> Result<(u16, String)> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: tandem-gwm\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .context("send the request")?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.context("read the reply")?;
            if n == 0 {
                break;
            }
            if reply.len() + n > MAX_REPLY {
                bail!("reply longer than {MAX_REPLY} bytes");
            }
            reply.extend_from_slice(&buf[..n]);
        }
        parse_http(&reply)
    };
    timeout(limit, work)
        .await
        .map_err(|_| anyhow!("HTTP GET {path} from {addr}: no complete answer within {limit:?}"))?
}

fn parse_http(reply: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let proto = words.next().unwrap_or("");
    if !proto.starts_with("HTTP/") {
        bail!(
            "not an HTTP reply: {:?}",
            status_line.chars().take(60).collect::<String>()
        );
    }
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {status_line:?}"))?;
    Ok((status, body.to_owned()))
}

/// The first number of a load signal's text.
pub fn parse_load(text: &str) -> Result<f64> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let word = first.split_whitespace().next().unwrap_or("");
    let v: f64 = word.parse().with_context(|| {
        format!(
            "{:?} is not a number",
            first.chars().take(40).collect::<String>()
        )
    })?;
    if !v.is_finite() || v < 0.0 {
        bail!("load {v} is not a finite number ≥ 0");
    }
    Ok(v)
}

async fn read_load(member: MemberKey, load: &LoadSource, limit: Duration) -> Result<f64> {
    match load {
        LoadSource::None => bail!("no load source"),
        LoadSource::Url(path) => {
            let (status, body) =
                http_get(SocketAddr::new(member.address, member.port), path, limit).await?;
            if status != 200 {
                bail!("GET {path}: HTTP status {status}");
            }
            parse_load(&body)
        }
        LoadSource::Command(cmd) => {
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("MEMBER_ADDRESS", member.address.to_string())
                .env("MEMBER_PORT", member.port.to_string())
                .env("MEMBER_PROTOCOL", member.protocol.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("run {cmd:?}"))?;
            let mut stdout = child.stdout.take().context("stdout")?;
            let work = async {
                let mut out = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = stdout.read(&mut buf).await?;
                    if n == 0 || out.len() >= MAX_REPLY {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                let status = child.wait().await?;
                Ok::<_, std::io::Error>((status, out))
            };
            let (status, out) = timeout(limit, work)
                .await
                .map_err(|_| anyhow!("{cmd:?} did not finish within {limit:?}"))?
                .with_context(|| format!("run {cmd:?}"))?;
            if !status.success() {
                bail!("{cmd:?} exited with {status}");
            }
            parse_load(&String::from_utf8_lossy(&out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_text() {
        assert_eq!(parse_load("12.5\n").unwrap(), 12.5);
        assert_eq!(parse_load("\n  7 requests\nx").unwrap(), 7.0);
        assert!(parse_load("busy").is_err());
        assert!(parse_load("-1").is_err());
        assert!(parse_load("NaN").is_err());
        assert!(parse_load("").is_err());
    }

    #[test]
    fn http_reply() {
        assert_eq!(
            parse_http(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\n42\n").unwrap(),
            (200, "42\n".into())
        );
        assert_eq!(parse_http(b"HTTP/1.1 503 x\r\n\r\n").unwrap().0, 503);
        assert!(parse_http(b"SSH-2.0-x\r\n").is_err());
    }
}
