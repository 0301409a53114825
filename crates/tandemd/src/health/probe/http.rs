//! The `http` and `https` advisors.
//!
//! The request is the server's `advisorrequest` (default `HEAD / HTTP/1.0`), with `\r` and `\n`
//! written as escapes or as real line breaks; a request line without a version gets
//! ` HTTP/1.0`, an HTTP/1.1 request without `Host` gets the server's address, and the header
//! terminator is added when missing. Without `advisorresponse` the status line decides
//! (1xx–3xx up); with it the server is up when that text is in the reply (headers or body),
//! read until the reply is complete, the server closes, or [`MAX_REPLY`] bytes.

use super::{MAX_REPLY, ProbeResult, connect, elapsed_ms, first_line, secs};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tandem_core::advisor::Probe;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const DEFAULT_REQUEST: &str = "HEAD / HTTP/1.0\r\n\r\n";

pub(super) async fn http(probe: &Probe, started: Instant) -> ProbeResult {
    let stream = connect(probe).await?;
    let req = request(probe);
    within(probe, exchange(stream, &req, probe)).await?;
    Ok(Some(elapsed_ms(started)))
}

pub(super) async fn https(probe: &Probe, tls: &Arc<ClientConfig>, started: Instant) -> ProbeResult {
    let tcp = connect(probe).await?;
    let req = request(probe);
    let name = sni(&req, probe.address.ip());
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    within(probe, async {
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        exchange(stream, &req, probe).await
    })
    .await?;
    Ok(Some(elapsed_ms(started)))
}

async fn within(
    probe: &Probe,
    f: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(probe.receivetimeout, f).await {
        Ok(r) => r,
        Err(_) => Err(format!("no reply within {}", secs(probe.receivetimeout))),
    }
}

/// Sends the request and judges the reply.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
    probe: &Probe,
) -> Result<(), String> {
    s.write_all(req)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    s.flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let head_only = req.starts_with(b"HEAD ");
    let expected = probe
        .response
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(str::as_bytes);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let room = MAX_REPLY - buf.len();
        let n = match s.read(&mut chunk[..room.min(8192)]).await {
            Ok(n) => n,
            // A TLS peer closing without close_notify, a reset after the reply: judge what came.
            Err(_) if !buf.is_empty() => 0,
            Err(e) => return Err(format!("reading the reply: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let end = n == 0 || buf.len() >= MAX_REPLY;
        if let Some(verdict) = judge(&buf, expected, head_only, end) {
            return verdict;
        }
        if end {
            return Err("incomplete reply".into());
        }
    }
}

/// The verdict on the reply so far, or `None` to read on. `end`: nothing more will come.
fn judge(
    buf: &[u8],
    expected: Option<&[u8]>,
    head_only: bool,
    end: bool,
) -> Option<Result<(), String>> {
    if let Some(want) = expected {
        if contains(buf, want) {
            return Some(Ok(()));
        }
        if end || reply_complete(buf, head_only) {
            let status = status(buf)
                .map(|s| format!(" (status {s})"))
                .unwrap_or_default();
            return Some(Err(format!(
                "expected response {:?} not in the reply{status}",
                String::from_utf8_lossy(want)
            )));
        }
        return None;
    }
    if !buf.contains(&b'\n') && !end {
        return None;
    }
    Some(match status(buf) {
        Some(100..=399) => Ok(()),
        Some(code) => Err(format!("status {code}: {}", first_line(buf))),
        None if buf.is_empty() => Err("the server closed without a reply".into()),
        None => Err(format!(
            "not an HTTP status line: {:?}",
            first_line(buf).chars().take(80).collect::<String>()
        )),
    })
}

/// The status code of `HTTP/x.y NNN ...`.
fn status(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Whether the headers and the body (by Content-Length, chunked end, or none) are all in.
fn reply_complete(buf: &[u8], head_only: bool) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let code = status(buf).unwrap_or(0);
    if head_only || (100..200).contains(&code) || code == 204 || code == 304 {
        return true;
    }
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if let Some(len) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        return buf.len() - end >= len;
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return buf[end..].ends_with(b"0\r\n\r\n");
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// The bytes to send for the probe's `advisorrequest`.
pub(super) fn request(probe: &Probe) -> Vec<u8> {
    let Some(raw) = probe.request.as_deref().filter(|r| !r.trim().is_empty()) else {
        return DEFAULT_REQUEST.as_bytes().to_vec();
    };
    let text = raw.replace("\\r", "\r").replace("\\n", "\n");
    if text.contains("\r\n\r\n") {
        return text.into_bytes();
    }
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return DEFAULT_REQUEST.as_bytes().to_vec();
    }
    if !lines[0].contains(" HTTP/") {
        lines[0].push_str(" HTTP/1.0");
    }
    let has_host = lines[1..]
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("host:"));
    if lines[0].ends_with("HTTP/1.1") && !has_host {
        let host = match probe.address.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        lines.push(format!("Host: {host}"));
    }
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

/// The TLS server name: the request's Host (without port) if any, else the address.
fn sni(req: &[u8], ip: IpAddr) -> ServerName<'static> {
    let text = String::from_utf8_lossy(req);
    let host = text.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("host")
            .then(|| v.trim().to_string())
    });
    if let Some(h) = host {
        let h = if let Some(rest) = h.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default().to_string()
        } else {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h.clone(), |(n, _)| n.to_string())
        };
        if let Ok(a) = h.parse::<IpAddr>() {
            return ServerName::IpAddress(a.into());
        }
        if let Ok(n) = ServerName::try_from(h) {
            return n;
        }
    }
    ServerName::IpAddress(ip.into())
}

/// The client set-up of the `https` advisor: ring, TLS 1.2 and 1.3, no certificate check.
pub(super) fn tls_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts any server certificate (see the module documentation of `probe`), but checks
/// the handshake signatures with the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn probe(req: Option<&str>, ip: &str) -> Probe {
        Probe {
            id: tandem_core::advisor::ProbeId(1),
            kind: tandem_core::config::AdvisorKind::Http,
            cluster: "192.0.2.1".parse().unwrap(),
            port: 80,
            server: ip.parse().unwrap(),
            address: std::net::SocketAddr::new(ip.parse().unwrap(), 80),
            connecttimeout: std::time::Duration::from_secs(1),
            receivetimeout: std::time::Duration::from_secs(1),
            request: req.map(String::from),
            response: None,
            custom: None,
        }
    }

    fn req(r: Option<&str>, ip: &str) -> String {
        String::from_utf8(request(&probe(r, ip))).unwrap()
    }

    #[test]
    fn requests_are_completed() {
        assert_eq!(req(None, "192.0.2.5"), "HEAD / HTTP/1.0\r\n\r\n");
        assert_eq!(req(Some("GET /x"), "192.0.2.5"), "GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(
            req(Some("GET /h HTTP/1.1"), "2001:db8::5"),
            "GET /h HTTP/1.1\r\nHost: [2001:db8::5]\r\n\r\n"
        );
        assert_eq!(
            req(Some("GET /h HTTP/1.1\\r\\nHost: www.example"), "192.0.2.5"),
            "GET /h HTTP/1.1\r\nHost: www.example\r\n\r\n"
        );
        assert_eq!(
            req(Some("HEAD / HTTP/1.0\nUser-Agent: t\n"), "192.0.2.5"),
            "HEAD / HTTP/1.0\r\nUser-Agent: t\r\n\r\n"
        );
        let body = "POST /p HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(req(Some(body), "192.0.2.5"), body);
    }

    #[test]
    fn sni_from_host_or_address() {
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let s = sni(b"GET / HTTP/1.1\r\nHost: www.example:8443\r\n\r\n", ip);
        assert_eq!(s, ServerName::try_from("www.example").unwrap());
        let s = sni(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", ip);
        assert_eq!(
            s,
            ServerName::IpAddress("2001:db8::1".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(
            sni(DEFAULT_REQUEST.as_bytes(), ip),
            ServerName::IpAddress(ip.into())
        );
    }

    #[test]
    fn verdicts() {
        let ok = b"HTTP/1.1 302 Found\r\n";
        assert_eq!(judge(ok, None, false, false), Some(Ok(())));
        assert_eq!(judge(b"HTTP/1.1 30", None, false, false), None, "read on");
        let e = judge(b"HTTP/1.1 503 Busy\r\n", None, false, false).unwrap();
        assert_eq!(e, Err("status 503: HTTP/1.1 503 Busy".into()));
        assert!(
            judge(b"SSH-2.0-x\r\n", None, false, false)
                .unwrap()
                .is_err()
        );
        assert!(judge(b"", None, false, true).unwrap().is_err());
        let want = Some(&b"alive"[..]);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nal";
        assert_eq!(judge(r, want, false, false), None);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalive";
        assert_eq!(judge(r, want, false, false), Some(Ok(())));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndead";
        let e = judge(r, want, false, false).unwrap().unwrap_err();
        assert!(e.contains("not in the reply (status 200)"), "{e}");
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
        assert!(
            judge(r, want, true, false).unwrap().is_err(),
            "HEAD: no body"
        );
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndead\r\n0\r\n\r\n";
        assert!(judge(r, want, false, false).unwrap().is_err());
    }
}
