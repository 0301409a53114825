//! The servers: HTTP, UDP responder, line echo. Thread per connection, never dying on errors.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{LineEvent, LineReader};

#[path = "server6.rs"]
mod v6;

/// What [`serve`] listens on. All sockets bind `0.0.0.0:<port>`; port 0 picks a free one
/// (see [`Server::http_addrs`] and friends). HTTP, echo, silent and UDP ports are bound on
/// `[::]` too (the same port, IPv6 only) when the host has IPv6.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServeConfig {
    /// Reported in every answer (`server=<name>`, `<name> <payload>`). No whitespace.
    pub name: String,
    /// HTTP ports.
    pub http: Vec<u16>,
    /// UDP responder ports.
    pub udp: Vec<u16>,
    /// TCP line-echo ports.
    pub echo: Vec<u16>,
    /// "Silent" TCP ports: connections are accepted, read and never answered (an advisor
    /// target that hangs).
    #[serde(default)]
    pub silent: Vec<u16>,
    /// DNS ports (UDP): every well-formed query is answered NOERROR, an `A` question with
    /// [`super::DNS_ANSWER`].
    #[serde(default)]
    pub dns: Vec<u16>,
    /// File whose first word `GET /load` returns (re-read at every request; `0` when the file
    /// is missing): the load signal a GWM or a custom advisor reads.
    #[serde(default)]
    pub load_file: Option<std::path::PathBuf>,
}

/// Counters of a running [`Server`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// TCP connections accepted (HTTP and echo).
    pub connections: u64,
    /// HTTP requests answered.
    pub http_requests: u64,
    /// UDP datagrams answered.
    pub udp_replies: u64,
    /// Echo lines answered.
    pub echo_lines: u64,
    /// Connections accepted on silent ports.
    #[serde(default)]
    pub silent_connections: u64,
    /// DNS queries answered.
    #[serde(default)]
    pub dns_replies: u64,
    /// Errors (failed accepts, broken connections, unsendable replies...).
    pub errors: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    connections: AtomicU64,
    http_requests: AtomicU64,
    udp_replies: AtomicU64,
    echo_lines: AtomicU64,
    pub(super) silent_connections: AtomicU64,
    pub(super) dns_replies: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    /// Counts an error and prints the first few (then one in a thousand) to stderr.
    pub(super) fn error(&self, what: &str, err: &dyn std::fmt::Display) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 20 || n.is_multiple_of(1000) {
            eprintln!("tandem-lab serve: {what}: {err} (error #{})", n + 1);
        }
    }
}

pub(super) struct Ctx {
    pub(super) name: String,
    pub(super) stop: AtomicBool,
    pub(super) counters: Counters,
    load_file: Option<std::path::PathBuf>,
}

/// Running servers. Dropping (or [`Server::stop`]) stops them: listeners close within a few
/// hundred milliseconds; open echo connections are closed, HTTP requests in flight finish.
pub struct Server {
    ctx: Arc<Ctx>,
    threads: Vec<JoinHandle<()>>,
    http: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    echo: Vec<SocketAddr>,
    silent: Vec<SocketAddr>,
    dns: Vec<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.ctx.name)
            .field("http", &self.http)
            .field("udp", &self.udp)
            .field("echo", &self.echo)
            .field("silent", &self.silent)
            .field("dns", &self.dns)
            .finish()
    }
}

/// Binds every port of `config` (failing if any cannot be bound) and serves them on background
/// threads in the calling thread's network namespace.
pub fn serve(config: &ServeConfig) -> Result<Server> {
    if config.name.is_empty() || config.name.chars().any(char::is_whitespace) {
        bail!(
            "server name {:?} must be non-empty without whitespace",
            config.name
        );
    }
    if config.http.is_empty()
        && config.udp.is_empty()
        && config.echo.is_empty()
        && config.silent.is_empty()
        && config.dns.is_empty()
    {
        bail!("nothing to serve: give at least one HTTP, UDP, echo, silent or DNS port");
    }
    let ctx = Arc::new(Ctx {
        name: config.name.clone(),
        stop: AtomicBool::new(false),
        counters: Counters::default(),
        load_file: config.load_file.clone(),
    });
    let mut server = Server {
        ctx: Arc::clone(&ctx),
        threads: Vec::new(),
        http: Vec::new(),
        udp: Vec::new(),
        echo: Vec::new(),
        silent: Vec::new(),
        dns: Vec::new(),
    };
    // Bind everything first, so a failure leaves nothing running.
    let mut http = Vec::new();
    for &port in &config.http {
        let l = TcpListener::bind(("0.0.0.0", port))
            .with_context(|| format!("binding HTTP port {port}"))?;
        let addr = l.local_addr()?;
        server.http.push(addr);
        http.push(l);
        http.extend(
            v6::tcp(addr.port())
                .with_context(|| format!("binding HTTP port [::]:{}", addr.port()))?,
        );
    }
    let mut echo = Vec::new();
    for &port in &config.echo {
        let l = TcpListener::bind(("0.0.0.0", port))
            .with_context(|| format!("binding echo port {port}"))?;
        let addr = l.local_addr()?;
        server.echo.push(addr);
        echo.push(l);
        echo.extend(
            v6::tcp(addr.port())
                .with_context(|| format!("binding echo port [::]:{}", addr.port()))?,
        );
    }
    let mut udp = Vec::new();
    let mut udp6 = Vec::new();
    for &port in &config.udp {
        let s = UdpSocket::bind(("0.0.0.0", port))
            .with_context(|| format!("binding UDP port {port}"))?;
        enable_pktinfo(&s).context("IP_PKTINFO")?;
        let addr = s.local_addr()?;
        server.udp.push(addr);
        udp.push(s);
        udp6.extend(
            v6::udp(addr.port())
                .with_context(|| format!("binding UDP port [::]:{}", addr.port()))?,
        );
    }
    let mut silent = Vec::new();
    for &port in &config.silent {
        let l = TcpListener::bind(("0.0.0.0", port))
            .with_context(|| format!("binding silent port {port}"))?;
        let addr = l.local_addr()?;
        server.silent.push(addr);
        silent.push(l);
        silent.extend(
            v6::tcp(addr.port())
                .with_context(|| format!("binding silent port [::]:{}", addr.port()))?,
        );
    }
    let mut dns = Vec::new();
    for &port in &config.dns {
        let s = UdpSocket::bind(("0.0.0.0", port))
            .with_context(|| format!("binding DNS port {port}"))?;
        server.dns.push(s.local_addr()?);
        dns.push(s);
    }
    for listener in silent {
        server.spawn("silent-accept", {
            let ctx = Arc::clone(&ctx);
            move || accept_loop(listener, ctx, Kind::Silent)
        })?;
    }
    for socket in dns {
        server.spawn("dns", {
            let ctx = Arc::clone(&ctx);
            move || super::health::dns_loop(socket, &ctx)
        })?;
    }
    for listener in http {
        server.spawn("http-accept", {
            let ctx = Arc::clone(&ctx);
            move || accept_loop(listener, ctx, Kind::Http)
        })?;
    }
    for listener in echo {
        server.spawn("echo-accept", {
            let ctx = Arc::clone(&ctx);
            move || accept_loop(listener, ctx, Kind::Echo)
        })?;
    }
    for socket in udp {
        let second = socket.try_clone()?;
        for s in [socket, second] {
            server.spawn("udp", {
                let ctx = Arc::clone(&ctx);
                move || udp_loop::<V4>(s, ctx)
            })?;
        }
    }
    for socket in udp6 {
        server.spawn("udp6", {
            let ctx = Arc::clone(&ctx);
            move || udp_loop::<v6::V6>(socket, ctx)
        })?;
    }
    Ok(server)
}

impl Server {
    fn spawn(&mut self, what: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name(format!("serve-{what}"))
            .spawn(f)
            .with_context(|| format!("spawning {what} thread"))?;
        self.threads.push(handle);
        Ok(())
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// Bound HTTP addresses (0.0.0.0:port).
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http
    }

    /// Bound UDP addresses.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// Bound echo addresses.
    pub fn echo_addrs(&self) -> &[SocketAddr] {
        &self.echo
    }

    /// Bound silent addresses.
    pub fn silent_addrs(&self) -> &[SocketAddr] {
        &self.silent
    }

    /// Bound DNS addresses.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns
    }

    /// Current counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.ctx.counters;
        ServerStats {
            connections: c.connections.load(Ordering::Relaxed),
            http_requests: c.http_requests.load(Ordering::Relaxed),
            udp_replies: c.udp_replies.load(Ordering::Relaxed),
            echo_lines: c.echo_lines.load(Ordering::Relaxed),
            silent_connections: c.silent_connections.load(Ordering::Relaxed),
            dns_replies: c.dns_replies.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops listening and closes echo connections; returns the final counters.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.ctx.stop.store(true, Ordering::SeqCst);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Http,
    Echo,
    Silent,
}

fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, kind: Kind) {
    if let Err(e) = listener.set_nonblocking(true) {
        ctx.counters.error("set_nonblocking", &e);
    }
    let fd = listener.as_raw_fd();
    while !ctx.stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        if ready <= 0 {
            continue; // timeout or EINTR
        }
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => {
                    ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let conn_ctx = Arc::clone(&ctx);
                    let spawned =
                        std::thread::Builder::new()
                            .stack_size(256 * 1024)
                            .spawn(move || {
                                let result = match kind {
                                    Kind::Http => handle_http(stream, &conn_ctx),
                                    Kind::Echo => handle_echo(stream, &conn_ctx),
                                    Kind::Silent => super::health::handle_silent(stream, &conn_ctx),
                                };
                                if let Err(e) = result {
                                    conn_ctx.counters.error("connection", &e);
                                }
                            });
                    if let Err(e) = spawned {
                        ctx.counters.error("spawning a connection thread", &e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ctx.counters.error("accept", &e);
                    // Out of descriptors or memory: back off instead of spinning.
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Largest filler `/bytes/N` may ask for.
const MAX_FILLER: usize = 1 << 30;

fn handle_http(mut stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = find(&request, b"\r\n\r\n").or_else(|| find(&request, b"\n\n")) {
            break i;
        }
        if request.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head over 16 KiB",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            if request.is_empty() {
                return Ok(()); // connected and closed: a port probe
            }
            break request.len();
        }
        request.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&request[..head_end]);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("/");
    let body = if path == "/load" {
        format!("{}\n", super::health::read_load(ctx.load_file.as_deref()))
    } else {
        format!("server={}\n", ctx.name)
    };
    // HEAD (what IBM's http advisor sends by default) gets the GET's head without its body.
    let (status, filler, send_body) = match method {
        "GET" => {
            let filler = path
                .strip_prefix("/bytes/")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
                .min(MAX_FILLER);
            ("200 OK", filler, true)
        }
        "HEAD" => ("200 OK", 0, false),
        _ => ("405 Method Not Allowed", 0, true),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nServer: tandem-lab\r\nX-Server: {name}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len() + filler,
        if send_body { body.as_str() } else { "" },
        name = ctx.name,
    );
    stream.write_all(response.as_bytes())?;
    let block = [b'x'; 64 * 1024];
    let mut left = filler;
    while left > 0 {
        let n = left.min(block.len());
        stream.write_all(&block[..n])?;
        left -= n;
    }
    stream.flush()?;
    ctx.counters.http_requests.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn handle_echo(mut stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = LineReader::default();
    loop {
        match reader.next_line(&mut stream, None, Some(&ctx.stop))? {
            LineEvent::Line(line) => {
                stream.write_all(format!("{} {line}\n", ctx.name).as_bytes())?;
                ctx.counters.echo_lines.fetch_add(1, Ordering::Relaxed);
            }
            LineEvent::Eof | LineEvent::Stopped | LineEvent::TimedOut => return Ok(()),
        }
    }
}

fn enable_pktinfo(socket: &UdpSocket) -> io::Result<()> {
    set_flag(socket.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO)
}

/// Turns a boolean socket option on.
fn set_flag(fd: libc::c_int, level: libc::c_int, opt: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Control-message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 128]);

/// A plain C socket address (`sockaddr_in`, `sockaddr_in6`) or control-message payload
/// (`in_pktinfo`, `in6_pktinfo`): all-zero bytes are a valid value.
///
/// # Safety
/// Only for `repr(C)` structs of integers and arrays of them.
unsafe trait Plain: Copy {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract.
        unsafe { std::mem::zeroed() }
    }
}
// SAFETY: C structs of integers.
unsafe impl Plain for libc::sockaddr_in {}
// SAFETY: C structs of integers.
unsafe impl Plain for libc::sockaddr_in6 {}
// SAFETY: C structs of integers.
unsafe impl Plain for libc::in_pktinfo {}
// SAFETY: C structs of integers.
unsafe impl Plain for libc::in6_pktinfo {}

/// Receives a datagram: (length, source address `S`, the payload `T` of the first control
/// message of `level`/`kind`, e.g. IP_PKTINFO).
fn recv_msg<S: Plain, T: Plain>(
    fd: libc::c_int,
    buf: &mut [u8],
    level: libc::c_int,
    kind: libc::c_int,
) -> io::Result<(usize, S, Option<T>)> {
    // SAFETY: all pointers in msghdr point at live local buffers of the stated sizes; CMSG_*
    // walk only the control buffer the kernel filled.
    unsafe {
        let mut src = S::zeroed();
        let mut control = Control([0; 128]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut src as *mut S).cast();
        msg.msg_namelen = size_of::<S>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        let n = libc::recvmsg(fd, &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut info = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == level && (*cmsg).cmsg_type == kind {
                info = Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<T>()));
                break;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, src, info))
    }
}

/// Sends `data` to `to`, with one control message `level`/`kind` carrying `info` when given
/// (e.g. IP_PKTINFO: the source address).
fn send_msg<S: Plain, T: Plain>(
    fd: libc::c_int,
    data: &[u8],
    to: &S,
    level: libc::c_int,
    kind: libc::c_int,
    info: Option<T>,
) -> io::Result<()> {
    // SAFETY: as in recv_msg; the control buffer is large enough for one small payload.
    unsafe {
        let mut control = Control([0; 128]);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut _,
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (to as *const S as *mut S).cast();
        msg.msg_namelen = size_of::<S>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(info) = info {
            let space = libc::CMSG_SPACE(size_of::<T>() as u32) as usize;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<T>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
        }
        if libc::sendmsg(fd, &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// One address family of the UDP responder.
trait Family {
    type Addr: Plain;
    type Info: Plain;
    const LEVEL: libc::c_int;
    const PKTINFO: libc::c_int;
    /// The control message to answer with, given the one received: the destination address
    /// as the reply's source when it is one we may answer from.
    fn reply_info(received: Self::Info) -> Option<Self::Info>;
}

struct V4;

impl Family for V4 {
    type Addr = libc::sockaddr_in;
    type Info = libc::in_pktinfo;
    const LEVEL: libc::c_int = libc::IPPROTO_IP;
    const PKTINFO: libc::c_int = libc::IP_PKTINFO;
    fn reply_info(received: libc::in_pktinfo) -> Option<libc::in_pktinfo> {
        let ip = std::net::Ipv4Addr::from(u32::from_be(received.ipi_addr.s_addr));
        // A unicast address we may answer from (not broadcast, multicast or unspecified).
        let ok = !(ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.octets()[3] == 255);
        ok.then_some(libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: received.ipi_addr,
            ipi_addr: libc::in_addr { s_addr: 0 },
        })
    }
}

/// The UDP responder: `<name> <payload>` back to the sender, from the address it sent to.
fn udp_loop<F: Family>(socket: UdpSocket, ctx: Arc<Ctx>) {
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
        ctx.counters.error("udp set_read_timeout", &e);
    }
    let fd = socket.as_raw_fd();
    let mut buf = vec![0u8; 65536];
    let mut reply = Vec::with_capacity(65536 + ctx.name.len() + 1);
    while !ctx.stop.load(Ordering::SeqCst) {
        let (n, src, dst) = match recv_msg::<F::Addr, F::Info>(fd, &mut buf, F::LEVEL, F::PKTINFO) {
            Ok(r) => r,
            Err(e) if super::is_timeout(&e) => continue,
            Err(e) => {
                // e.g. ECONNREFUSED from an earlier reply's ICMP error: keep serving.
                ctx.counters.error("udp receive", &e);
                continue;
            }
        };
        reply.clear();
        reply.extend_from_slice(ctx.name.as_bytes());
        reply.push(b' ');
        reply.extend_from_slice(&buf[..n]);
        let info = dst.and_then(F::reply_info);
        match send_msg(fd, &reply, &src, F::LEVEL, F::PKTINFO, info) {
            Ok(()) => {
                ctx.counters.udp_replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => ctx.counters.error("udp reply", &e),
        }
    }
}
