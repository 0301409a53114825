//! The two checkers Tandem is compared with: HAProxy's health checks and keepalived's
//! HTTP_GET checker, configured for the same servers, interval and "down after one failed
//! check" as the Tandem advisor.

use super::*;

/// `haproxy.cfg`: one backend per port, `server ADDR:PORT check inter I fall 1 rise 1` for
/// every server, `option httpchk HEAD /` (what Tandem's http advisor sends), a stats socket.
pub(super) fn haproxy_config(servers: &[(String, u16)], interval: f64, sock: &Path) -> String {
    let ms = (interval * 1000.0).round() as u64;
    let mut out = format!(
        "global\n\
         \tmaxconn 4096\n\
         \tstats socket {sock} mode 600 level admin\n\
         \tstats timeout 10s\n\
         defaults\n\
         \tmode http\n\
         \ttimeout connect {ms}ms\n\
         \ttimeout client {ms}ms\n\
         \ttimeout server {ms}ms\n\
         \ttimeout check {ms}ms\n",
        sock = sock.display()
    );
    let mut ports: Vec<u16> = servers.iter().map(|s| s.1).collect();
    ports.dedup();
    for port in ports {
        out.push_str(&format!(
            "backend b{port}\n\toption httpchk HEAD /\n\tbalance roundrobin\n"
        ));
        for (addr, _) in servers.iter().filter(|s| s.1 == port) {
            out.push_str(&format!(
                "\tserver {addr}_{port} {addr}:{port} check inter {ms}ms fall 1 rise 1\n"
            ));
        }
    }
    out
}

/// HAProxy's view: `(backend port, server address) → status` (`UP`, `DOWN`, `UP 1/2`...),
/// from `show stat` on its stats socket; `ok` counts servers whose last check passed.
pub(super) fn haproxy_stat(sock: &Path) -> Result<HashMap<(u16, String), (String, bool)>> {
    use std::os::unix::net::UnixStream;
    let mut s = UnixStream::connect(sock).with_context(|| format!("{}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"show stat\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("").trim_start_matches("# ");
    let cols: Vec<&str> = head.split(',').collect();
    let idx = |n: &str| cols.iter().position(|c| *c == n);
    let (Some(px), Some(sv), Some(st), Some(cs)) = (
        idx("pxname"),
        idx("svname"),
        idx("status"),
        idx("check_status"),
    ) else {
        bail!("unexpected `show stat` header: {head}");
    };
    let mut out = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(p), Some(name)) = (f.get(px), f.get(sv)) else {
            continue;
        };
        let Some(port) = p.strip_prefix('b').and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        let Some((addr, _)) = name.split_once('_') else {
            continue; // BACKEND / FRONTEND rows
        };
        let status = f.get(st).copied().unwrap_or("").to_string();
        let ok = f.get(cs).is_some_and(|c| c.starts_with("L7OK"));
        out.insert((port, addr.to_string()), (status, ok));
    }
    Ok(out)
}

/// `keepalived.conf`: one virtual server (VIP) per port, `delay_loop` the interval, each
/// real server with `HTTP_GET` (`/`, status 200), `retry 0`, and a `notify_down` script
/// that touches `DIR/down-ADDR-PORT`.
pub(super) fn keepalived_config(servers: &[(String, u16)], interval: f64, dir: &Path) -> String {
    let mut out = String::from(
        "global_defs {\n\trouter_id bench\n\tscript_user root\n\tenable_script_security\n}\n",
    );
    let mut ports: Vec<u16> = servers.iter().map(|s| s.1).collect();
    ports.dedup();
    for port in ports {
        out.push_str(&format!(
            "virtual_server {KA_VIP} {port} {{\n\tdelay_loop {interval}\n\tlb_algo rr\n\tlb_kind DR\n\tprotocol TCP\n"
        ));
        for (addr, _) in servers.iter().filter(|s| s.1 == port) {
            out.push_str(&format!(
                "\treal_server {addr} {port} {{\n\t\tweight 1\n\t\tnotify_down \"/usr/bin/touch {dir}/down-{addr}-{port}\"\n\t\tHTTP_GET {{\n\t\t\turl {{\n\t\t\t\tpath /\n\t\t\t\tstatus_code 200\n\t\t\t}}\n\t\t\tconnect_timeout {interval}\n\t\t\tretry 0\n\t\t}}\n\t}}\n",
                dir = dir.display()
            ));
        }
        out.push_str("}\n");
    }
    out
}

/// Why keepalived's checker cannot run here, if it cannot: it needs the kernel's IPVS
/// (`ip_vs`), and exits at start without it.
pub(super) fn keepalived_blocker(host: &Host) -> Option<String> {
    if which("keepalived").is_none() {
        return Some("keepalived is not installed (apt-get install keepalived)".into());
    }
    let has_ipvs = host.run(["cat", "/proc/net/ip_vs"]).is_ok_and(|_| true);
    if !has_ipvs {
        return Some(
            "keepalived's HTTP_GET checker needs IPVS (kernel module ip_vs): this kernel has none \
             (no /proc/net/ip_vs), and its checker exits at start (\"IPVS: Can't initialize ipvs\")"
                .into(),
        );
    }
    None
}

pub(super) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
