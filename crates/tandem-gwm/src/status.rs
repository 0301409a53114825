//! The status endpoint (`--status ADDR:PORT`): `GET /status` answers the GWM's view as JSON.
//! Bounded: at most 16 status connections at once, requests of at most 8 KiB, 5 s each.
//! `tandem-gwm status` is its client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

const MAX_REQUEST: usize = 8 * 1024;
const MAX_CLIENTS: usize = 16;
const CLIENT_TIME: Duration = Duration::from_secs(5);

/// Serves `GET /status`; each request asks the main loop for the JSON over `ask`.
pub async fn serve(listener: TcpListener, ask: mpsc::Sender<oneshot::Sender<Value>>) {
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Too many at once: refuse rather than queue.
            drop(stream);
            continue;
        };
        let ask = ask.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(CLIENT_TIME, async {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 || req.len() + n > MAX_REQUEST {
                        return Ok::<_, std::io::Error>(());
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&req);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (code, body) = if line.starts_with("GET ") && (path == "/status" || path == "/") {
                    let (tx, rx) = oneshot::channel();
                    if ask.send(tx).await.is_err() {
                        return Ok(());
                    }
                    match rx.await {
                        Ok(v) => ("200 OK", v.to_string()),
                        Err(_) => return Ok(()),
                    }
                } else {
                    ("404 Not Found", "{\"error\":\"GET /status\"}".to_owned())
                };
                let head = format!(
                    "HTTP/1.0 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

/// Fetches the status JSON from `addr` (blocking; for `tandem-gwm status` and tests).
pub fn fetch(addr: SocketAddr, limit: Duration) -> Result<Value> {
    let mut stream = TcpStream::connect_timeout(&addr, limit)
        .with_context(|| format!("connect to the status endpoint {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(b"GET /status HTTP/1.0\r\n\r\n")?;
    let mut reply = Vec::new();
    stream
        .take(64 << 20)
        .read_to_end(&mut reply)
        .with_context(|| format!("read the status from {addr}"))?;
    let text = String::from_utf8_lossy(&reply);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{addr}: not an HTTP reply");
    };
    if !head.starts_with("HTTP/1.0 200") {
        bail!("{addr}: {}", head.lines().next().unwrap_or(""));
    }
    serde_json::from_str(body).with_context(|| format!("{addr}: the status is not JSON"))
}

/// The status as text for people.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    out.push_str(&format!(
        "listening on {}, member check {}, load {}, interval {} s, push interval {} s, {} connection(s)\n",
        s(&v["listen"]),
        s(&v["member_check"]),
        s(&v["load"]),
        s(&v["interval"]),
        s(&v["push_interval"]),
        s(&v["connections"]),
    ));
    if let Some(e) = v["weights_file_error"].as_str() {
        out.push_str(&format!("weights file: {e}\n"));
    }
    for lb in v["lbs"].as_array().into_iter().flatten() {
        let mut flags = Vec::new();
        for (k, name) in [
            ("push", "PUSH"),
            ("trust", "TRUST"),
            ("changed_only", "NOCHANGE"),
        ] {
            if lb[k].as_bool() == Some(true) {
                flags.push(name);
            }
        }
        let conn = if lb["connected"].as_bool() == Some(true) {
            format!("connected from {}", s(&lb["peer"]))
        } else {
            format!("not connected (kept {} s more)", s(&lb["grace_left"]))
        };
        out.push_str(&format!(
            "LB {}: {conn}, health {}, flags [{}], {} request(s), {} push(es)\n",
            s(&lb["lb_uid"]),
            s(&lb["health"]),
            flags.join(" "),
            s(&lb["requests"]),
            s(&lb["pushes"]),
        ));
        for g in lb["groups"].as_array().into_iter().flatten() {
            out.push_str(&format!("  group {}\n", s(&g["name"])));
            for m in g["members"].as_array().into_iter().flatten() {
                let mut f = Vec::new();
                for (k, name) in [
                    ("contact", "contact"),
                    ("quiesce", "quiesce"),
                    ("registration", "registered-by-lb"),
                    ("confident", "confident"),
                ] {
                    if m[k].as_bool() == Some(true) {
                        f.push(name);
                    }
                }
                out.push_str(&format!(
                    "    {} port {} proto {}: weight {} [{}] load {}{}\n",
                    s(&m["address"]),
                    s(&m["port"]),
                    s(&m["protocol"]),
                    s(&m["weight"]),
                    f.join(" "),
                    s(&m["load"]),
                    m["last_error"]
                        .as_str()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default(),
                ));
            }
        }
    }
    out
}
