//! The lab: a switch namespace with a bridge, and hosts hanging off it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::addr::{mac_for, parse_cidr};
use crate::netns;
use crate::process::{LabProcess, tail};
use crate::traffic::{self, LoadReport, LongLived, LongLivedSet};

/// Every namespace (and log directory) a lab creates is named `tlab-<pid in hex>-<n>[-<tag>]…`.
pub const LAB_PREFIX: &str = "tlab-";

/// Set this to keep the lab's log directory even when everything went well.
const KEEP_LOGS_ENV: &str = "TANDEM_LAB_KEEP_LOGS";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Labs alive in this process, for the signal handler.
static REGISTRY: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a lab made, shared by the lab, its hosts and its processes.
pub(crate) struct Shared {
    id: String,
    log_dir: PathBuf,
    state: Mutex<State>,
    /// Held for the whole of a cleanup, so that a second cleaner (the signal thread racing a
    /// Drop) waits for the first to finish instead of exiting the process under it.
    cleaning: Mutex<()>,
}

#[derive(Default)]
struct State {
    /// In creation order; the switch first.
    namespaces: Vec<String>,
    /// Process groups of spawned processes that have not been reaped.
    pgids: BTreeSet<i32>,
    /// host name → MAC
    hosts: BTreeMap<String, String>,
    spawned: usize,
    cleaned: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn forget_pgid(&self, pgid: i32) {
        self.state().pgids.remove(&pgid);
    }

    /// Creates a namespace and records it, atomically with respect to [`Shared::cleanup`].
    fn create_ns(&self, ns: &str) -> Result<()> {
        let mut state = self.state();
        if state.cleaned {
            bail!("lab {} has already been cleaned up", self.id);
        }
        netns::add(ns).with_context(|| {
            format!("creating network namespace {ns} (tandem-lab needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        })?;
        state.namespaces.push(ns.to_string());
        Ok(())
    }

    /// Kills every process group, then everything left in the namespaces, then deletes the
    /// namespaces (hosts first, the switch last). Idempotent. Returns the errors met.
    fn cleanup(&self) -> Vec<String> {
        let _cleaning = lock(&self.cleaning);
        let (pgids, namespaces) = {
            let mut state = self.state();
            if state.cleaned {
                return Vec::new();
            }
            state.cleaned = true;
            (
                std::mem::take(&mut state.pgids),
                std::mem::take(&mut state.namespaces),
            )
        };
        for pgid in pgids {
            // SAFETY: killpg(2) has no memory effects. The group's leader is unreaped (it is
            // removed from `pgids` when reaped), so the id still names our group.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        let mut errors = Vec::new();
        for ns in namespaces.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }

    fn spawn(self: &Arc<Self>, host: &str, ns: &str, template: &Command) -> Result<LabProcess> {
        let program = template.get_program().to_string_lossy().into_owned();
        let base = Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(template.get_program())
            .args(template.get_args());
        for (key, value) in template.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = template.get_current_dir() {
            cmd.current_dir(dir);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

        let mut state = self.state();
        if state.cleaned {
            bail!("lab {} has already been cleaned up", self.id);
        }
        state.spawned += 1;
        let label = format!("{host}-{base}-{}", state.spawned);
        let log = self.log_dir.join(format!("{label}.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let args: Vec<_> = template.get_args().collect();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning `{}` in {ns}", netns::render(&program, &args)))?;
        state.pgids.insert(child.id() as i32);
        drop(state);
        Ok(LabProcess::new(child, label, log, Arc::clone(self)))
    }
}

/// Runs every registered lab's cleanup; returns how many labs had something to clean.
pub(crate) fn cleanup_registered() -> usize {
    let labs: Vec<Arc<Shared>> = std::mem::take(&mut *lock(&REGISTRY));
    let mut cleaned = 0;
    for lab in labs {
        let was_clean = lab.state().cleaned;
        let errors = lab.cleanup();
        for error in &errors {
            eprintln!("tandem-lab: cleaning up {}: {error}", lab.id);
        }
        if errors.is_empty() && std::env::var_os(KEEP_LOGS_ENV).is_none() {
            let _ = std::fs::remove_dir_all(&lab.log_dir);
        }
        if !was_clean {
            cleaned += 1;
        }
    }
    cleaned
}

/// A host without IPv6 (the IPv4 labs): no link-local address, no router solicitations or
/// MLD reports on the wire.
const IPV6_OFF: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// A host with IPv6: addresses usable at once (no duplicate address detection: the lab's
/// addresses are unique by construction), no router advertisements or autoconfiguration
/// (the lab has no router; addresses are the ones given).
const IPV6_ON: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.dad_transmits", "0"),
    ("net.ipv6.conf.default.dad_transmits", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.all.autoconf", "0"),
    ("net.ipv6.conf.default.autoconf", "0"),
    ("net.ipv6.conf.all.forwarding", "0"),
    ("net.ipv6.conf.all.disable_ipv6", "0"),
    ("net.ipv6.conf.default.disable_ipv6", "0"),
];

/// `ip addr add IP/LEN dev DEV` in `ns`; IPv6 addresses `nodad` (usable at once).
fn add_addr(ns: &str, ip: IpAddr, len: u8, dev: &str) -> Result<()> {
    let cidr = format!("{ip}/{len}");
    let mut args = vec!["-n", ns, "addr", "add", &cidr, "dev", dev];
    if ip.is_ipv6() {
        args.push("nodad");
    }
    netns::run("ip", &args).map(drop)
}

/// A set of network namespaces wired to one bridge. See the crate docs.
///
/// Dropping it (also during a panic's unwinding) kills all its processes and deletes all its
/// namespaces; [`Lab::shutdown`] does the same and reports errors.
pub struct Lab {
    shared: Arc<Shared>,
    switch: Host,
    hosts: Mutex<Vec<Host>>,
    torn_down: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.shared.id)
            .field("log_dir", &self.shared.log_dir)
            .finish()
    }
}

fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect()
}

fn ensure_root() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "tandem-lab must run as root (it creates network namespaces, veths and a bridge); \
             running as uid {euid}. Lab tests fail rather than skip: run them as root"
        );
    }
    Ok(())
}

impl Lab {
    /// Creates a lab: a unique id `tlab-<pid hex>-<n>-<tag>` (the tag keeps only ASCII letters
    /// and digits, at most 16), a log directory `$TMPDIR/<id>/`, and the switch namespace
    /// `<id>-sw` holding an up bridge `br0`.
    ///
    /// Also installs the signal cleanup ([`crate::install_signal_cleanup`]) and removes
    /// namespaces left by labs whose creating process has died ([`cleanup_leftovers`]).
    /// Fails with a clear message when not root or when namespaces cannot be made.
    pub fn new(tag: &str) -> Result<Lab> {
        ensure_root()?;
        if let Err(e) = crate::signals::install_signal_cleanup() {
            eprintln!("tandem-lab: warning: {e:#}; Ctrl-C will not clean up");
        }
        match remove_leftovers(false) {
            Ok(removed) if !removed.is_empty() => {
                eprintln!(
                    "tandem-lab: removed leftover namespaces of dead labs: {}",
                    removed.join(", ")
                )
            }
            Ok(_) => {}
            Err(e) => eprintln!("tandem-lab: warning: removing leftovers: {e:#}"),
        }

        let tag = sanitize_tag(tag);
        let pid = std::process::id();
        let id = loop {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let id = if tag.is_empty() {
                format!("{LAB_PREFIX}{pid:x}-{n}")
            } else {
                format!("{LAB_PREFIX}{pid:x}-{n}-{tag}")
            };
            let taken = netns::list()?
                .iter()
                .any(|ns| ns.starts_with(&format!("{id}-")));
            if !taken {
                break id;
            }
        };
        let log_dir = std::env::temp_dir().join(&id);
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir)
                .with_context(|| format!("removing stale {}", log_dir.display()))?;
        }
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;

        let shared = Arc::new(Shared {
            id: id.clone(),
            log_dir,
            state: Mutex::new(State::default()),
            cleaning: Mutex::new(()),
        });
        lock(&REGISTRY).push(Arc::clone(&shared));
        let switch_ns = format!("{id}-sw");
        let switch = Host {
            name: "sw".into(),
            ns: switch_ns.clone(),
            mac: String::new(),
            addrs: Vec::new(),
            port: None,
            switch_ns,
            lab: Arc::clone(&shared),
        };
        // From here on, an early return drops `lab`, which cleans up.
        let mut lab = Lab {
            shared,
            switch,
            hosts: Mutex::new(Vec::new()),
            torn_down: false,
        };
        lab.setup_switch()?;
        lab.switch.mac = lab
            .switch
            .run(["cat", "/sys/class/net/br0/address"])
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Ok(lab)
    }

    fn setup_switch(&self) -> Result<()> {
        let sw = &self.switch.ns;
        self.shared.create_ns(sw)?;
        netns::sysctls(
            sw,
            &[
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
            ],
        )?;
        netns::run("ip", &["-n", sw, "link", "set", "dev", "lo", "up"])?;
        netns::run(
            "ip",
            &["-n", sw, "link", "add", "name", "br0", "type", "bridge"],
        )?;
        netns::run("ip", &["-n", sw, "link", "set", "dev", "br0", "up"])?;
        // A switch forwards frames, it does not judge them. With br_netfilter loaded on the
        // machine (Docker loads it), bridged IPv4 goes through the netfilter hooks, which drop
        // malformed headers before they reach the node under test: turn that off here (the
        // sysctls are per namespace; they exist only when the module is loaded).
        for key in ["iptables", "ip6tables", "arptables"] {
            let path = format!("net.bridge.bridge-nf-call-{key}");
            let _ = netns::run(
                "ip",
                &["netns", "exec", sw, "sysctl", "-qw", &format!("{path}=0")],
            );
        }
        Ok(())
    }

    /// The lab's id, the prefix of all its namespace names.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The switch namespace as a [`Host`] named `sw` (its `mac` is br0's; it has no port, so
    /// `link_down`/`link_up` fail). Use it e.g. to run `tcpdump -i br0`.
    pub fn switch(&self) -> &Host {
        &self.switch
    }

    /// Directory of the processes' log files (`$TMPDIR/<id>/`). Removed when the lab is dropped,
    /// unless a panic is unwinding, cleanup failed, or `TANDEM_LAB_KEEP_LOGS` is set.
    pub fn log_dir(&self) -> &Path {
        &self.shared.log_dir
    }

    /// The hosts added so far.
    pub fn hosts(&self) -> Vec<Host> {
        lock(&self.hosts).clone()
    }

    /// The host of that name.
    pub fn host(&self, name: &str) -> Option<Host> {
        lock(&self.hosts).iter().find(|h| h.name == name).cloned()
    }

    /// Names of the namespaces this lab created and has not deleted yet.
    pub fn namespaces(&self) -> Vec<String> {
        self.shared.state().namespaces.clone()
    }

    /// Adds a host: namespace `<id>-<name>` whose `eth0` (MAC [`crate::mac_for`]`(name)`) is
    /// wired to port `<name>` of the switch's `br0`, with `lo` up and the given addresses
    /// (`"192.0.2.10/24"`; documentation ranges only) on `eth0`.
    ///
    /// `name`: 1 to 15 characters `[a-z0-9-]` starting with a letter; not `sw`, `lo`, `br0`.
    ///
    /// Host settings: IPv6 disabled unless an address is IPv6 (then IPv6 is on without
    /// duplicate address detection, router advertisements or autoconfiguration: see
    /// [`Host::enable_ipv6`]), `ip_forward=0`, `rp_filter=0`, `send_redirects=0`, and
    /// `ethtool -K eth0 tso off gso off gro off tx off`, and two queues each way on both ends
    /// of the veth (flows spread over them by hash, so AF_XDP runs a socket per queue and two
    /// workers, as AF_PACKET runs two rings). TX checksum offload is off: a veth
    /// would otherwise hand the peer partial checksums, which a frame from a real NIC never
    /// has, and which XDP cannot see (AF_XDP would forward them unfinished; docs/packet-io.md).
    pub fn add_host(&self, name: &str, addrs: &[&str]) -> Result<Host> {
        validate_host_name(name)?;
        let parsed: Vec<(IpAddr, u8)> =
            addrs.iter().map(|a| parse_cidr(a)).collect::<Result<_>>()?;
        let ipv6 = parsed.iter().any(|(ip, _)| ip.is_ipv6());
        let mac = mac_for(name);
        {
            let state = self.shared.state();
            if state.hosts.contains_key(name) {
                bail!("lab {} already has a host named {name}", self.id());
            }
            if let Some((other, _)) = state.hosts.iter().find(|(_, m)| **m == mac) {
                bail!(
                    "host names {name} and {other} hash to the same MAC {mac}; pick another name"
                );
            }
        }
        let ns = format!("{}-{name}", self.id());
        let sw = self.switch.ns.as_str();
        self.shared.create_ns(&ns)?;
        let setup = || -> Result<()> {
            // Set before eth0 exists, so that its own settings start from these defaults.
            netns::sysctls(&ns, if ipv6 { IPV6_ON } else { IPV6_OFF })?;
            netns::sysctls(
                &ns,
                &[
                    ("net.ipv4.ip_forward", "0"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.default.rp_filter", "0"),
                    ("net.ipv4.conf.all.send_redirects", "0"),
                    ("net.ipv4.conf.default.send_redirects", "0"),
                ],
            )?;
            netns::run(
                "ip",
                &[
                    "-n",
                    sw,
                    "link",
                    "add",
                    "name",
                    name,
                    "numtxqueues",
                    "2",
                    "numrxqueues",
                    "2",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "numtxqueues",
                    "2",
                    "numrxqueues",
                    "2",
                    "netns",
                    &ns,
                ],
            )?;
            netns::run(
                "ip",
                &["-n", &ns, "link", "set", "dev", "eth0", "address", &mac],
            )?;
            netns::run(
                "ip",
                &[
                    "netns", "exec", &ns, "ethtool", "-K", "eth0", "tso", "off", "gso", "off",
                    "gro", "off", "tx", "off",
                ],
            )?;
            // Best effort: UDP segmentation offload, and the same on the switch side.
            let _ = netns::output(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "ethtool",
                    "-K",
                    "eth0",
                    "tx-udp-segmentation",
                    "off",
                ],
            );
            let _ = netns::output(
                "ip",
                &[
                    "netns", "exec", sw, "ethtool", "-K", name, "tso", "off", "gso", "off", "gro",
                    "off",
                ],
            );
            netns::run(
                "ip",
                &["-n", sw, "link", "set", "dev", name, "master", "br0"],
            )?;
            netns::run("ip", &["-n", sw, "link", "set", "dev", name, "up"])?;
            netns::run("ip", &["-n", &ns, "link", "set", "dev", "lo", "up"])?;
            netns::run("ip", &["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
            for (ip, len) in &parsed {
                add_addr(&ns, *ip, *len, "eth0")?;
            }
            Ok(())
        };
        setup().with_context(|| format!("setting up host {name} in lab {}", self.id()))?;
        self.shared
            .state()
            .hosts
            .insert(name.to_string(), mac.clone());
        let host = Host {
            name: name.to_string(),
            ns,
            mac,
            addrs: parsed,
            port: Some(name.to_string()),
            switch_ns: sw.to_string(),
            lab: Arc::clone(&self.shared),
        };
        lock(&self.hosts).push(host.clone());
        Ok(host)
    }

    /// Tears the lab down now (what `Drop` does), reporting cleanup errors.
    pub fn shutdown(mut self) -> Result<()> {
        let errors = self.teardown();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("cleaning up lab: {}", errors.join("; ")))
        }
    }

    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let panicking = std::thread::panicking();
        if panicking {
            self.dump_logs();
        }
        let errors = self.shared.cleanup();
        lock(&REGISTRY).retain(|lab| !Arc::ptr_eq(lab, &self.shared));
        let keep = panicking || !errors.is_empty() || std::env::var_os(KEEP_LOGS_ENV).is_some();
        if keep {
            eprintln!(
                "tandem-lab: logs of lab {} kept in {}",
                self.id(),
                self.log_dir().display()
            );
        } else {
            let _ = std::fs::remove_dir_all(self.log_dir());
        }
        errors
    }

    /// Prints the tail of every process log to stderr (done automatically when a panic drops
    /// the lab).
    pub fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.log_dir()) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            eprintln!(
                "----- {} (last 40 lines) -----\n{}",
                path.display(),
                tail(&text, 40)
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for error in self.teardown() {
            eprintln!("tandem-lab: cleaning up {}: {error}", self.shared.id);
        }
    }
}

fn validate_host_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !["sw", "lo", "br0"].contains(&name);
    if !ok {
        bail!(
            "bad host name {name:?}: use 1-15 characters [a-z0-9-] starting with a letter, not sw/lo/br0"
        );
    }
    Ok(())
}

/// One host of a [`Lab`]: a network namespace with `eth0` on the lab's bridge. Cheap to clone;
/// it stays usable until the lab is dropped.
#[derive(Clone)]
pub struct Host {
    /// Short name given to [`Lab::add_host`]; also the switch port's name.
    pub name: String,
    /// Network namespace name, `<lab id>-<name>`.
    pub ns: String,
    /// MAC of `eth0`, `02:xx:xx:xx:xx:xx` ([`crate::mac_for`]).
    pub mac: String,
    addrs: Vec<(IpAddr, u8)>,
    port: Option<String>,
    switch_ns: String,
    lab: Arc<Shared>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("ns", &self.ns)
            .field("mac", &self.mac)
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl Host {
    /// The first IPv4 address given to [`Lab::add_host`]. Panics if the host has none.
    pub fn ip(&self) -> Ipv4Addr {
        self.addrs
            .iter()
            .find_map(|(ip, _)| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .unwrap_or_else(|| panic!("host {} has no IPv4 address", self.name))
    }

    /// The first IPv6 address given to [`Lab::add_host`]. Panics if the host has none.
    pub fn ip6(&self) -> Ipv6Addr {
        self.addrs
            .iter()
            .find_map(|(ip, _)| match ip {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .unwrap_or_else(|| panic!("host {} has no IPv6 address", self.name))
    }

    /// Turns IPv6 on in this host (what [`Lab::add_host`] does for a host given an IPv6
    /// address): no duplicate address detection, router advertisements or
    /// autoconfiguration. Idempotent.
    pub fn enable_ipv6(&self) -> Result<()> {
        self.sysctls(IPV6_ON)?;
        self.sysctls(&[
            ("net.ipv6.conf.eth0.accept_dad", "0"),
            ("net.ipv6.conf.eth0.dad_transmits", "0"),
            ("net.ipv6.conf.eth0.accept_ra", "0"),
            ("net.ipv6.conf.eth0.autoconf", "0"),
            ("net.ipv6.conf.eth0.disable_ipv6", "0"),
            ("net.ipv6.conf.lo.disable_ipv6", "0"),
        ])
    }

    /// Addresses given to [`Lab::add_host`] as `"a.b.c.d/len"` (`"2001:db8::a/64"`).
    pub fn addrs(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|(ip, len)| format!("{ip}/{len}"))
            .collect()
    }

    /// Runs a command inside the namespace (`ip netns exec <ns> args...`) to completion and
    /// returns its output, whatever its exit status.
    pub fn exec<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        if args.is_empty() {
            bail!("exec: empty command");
        }
        let mut full: Vec<&OsStr> = vec![
            OsStr::new("netns"),
            OsStr::new("exec"),
            OsStr::new(&self.ns),
        ];
        full.extend(args.iter().map(|a| a.as_os_str()));
        netns::output("ip", &full)
    }

    /// Like [`Host::exec`], but fails (quoting stderr) unless the command exits 0; returns stdout.
    pub fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.exec(&args)?;
        let program = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        netns::check(&program, &args[1..], out).with_context(|| format!("in host {}", self.name))
    }

    /// Starts a process inside the namespace, in its own process group, stdout and stderr to
    /// a log file in the lab's log directory. See [`LabProcess`].
    pub fn spawn<I, S>(&self, args: I) -> Result<LabProcess>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args = args.into_iter();
        let Some(program) = args.next() else {
            bail!("spawn: empty command")
        };
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.spawn_command(&cmd)
    }

    /// Like [`Host::spawn`], taking program, arguments, environment changes and working
    /// directory from `cmd` (its stdio settings are ignored).
    pub fn spawn_command(&self, cmd: &Command) -> Result<LabProcess> {
        self.lab.spawn(&self.name, &self.ns, cmd)
    }

    /// Runs `f` on a fresh thread that has joined this host's network namespace, and returns
    /// its result (a panic in `f` is propagated). Sockets `f` creates, and threads it spawns,
    /// stay in the namespace, also after it returns.
    pub fn in_ns<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let ns = self.ns.as_str();
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name(format!("ns-{}", self.name))
                .spawn_scoped(scope, move || -> Result<R> {
                    netns::enter(ns)?;
                    Ok(f())
                })
                .context("spawning a namespace thread")?;
            match handle.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Like [`Host::in_ns`] but does not wait: returns the thread's handle once it has joined
    /// the namespace.
    pub fn in_ns_background<F, R>(&self, f: F) -> Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let ns = self.ns.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let handle = std::thread::Builder::new()
            .name(format!("ns-{}", self.name))
            .spawn(move || {
                let entered = netns::enter(&ns);
                let ok = entered.is_ok();
                let _ = tx.send(entered);
                if !ok {
                    // Silent unwind: the caller got the error and dropped this handle.
                    std::panic::resume_unwind(Box::new(()));
                }
                f()
            })
            .context("spawning a namespace thread")?;
        rx.recv().context("namespace thread died")??;
        Ok(handle)
    }

    fn port(&self) -> Result<&str> {
        self.port
            .as_deref()
            .ok_or_else(|| anyhow!("{} has no switch port", self.name))
    }

    /// "Cuts the cable": sets the switch-side end of the host's veth down. The host's `eth0`
    /// loses carrier and nothing passes either way until [`Host::link_up`].
    pub fn link_down(&self) -> Result<()> {
        let port = self.port()?;
        netns::run(
            "ip",
            &["-n", &self.switch_ns, "link", "set", "dev", port, "down"],
        )
        .map(drop)
    }

    /// Reconnects the cable cut by [`Host::link_down`].
    pub fn link_up(&self) -> Result<()> {
        let port = self.port()?;
        netns::run(
            "ip",
            &["-n", &self.switch_ns, "link", "set", "dev", port, "up"],
        )
        .map(drop)
    }

    /// Adds an address (`"192.0.2.11/24"`, `"2001:db8::11/64"`, documentation ranges only)
    /// to `eth0`; an IPv6 one turns IPv6 on ([`Host::enable_ipv6`]) and skips DAD.
    pub fn add_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_cidr(cidr)?;
        if ip.is_ipv6() {
            self.enable_ipv6()?;
        }
        add_addr(&self.ns, ip, len, "eth0")
    }

    /// Removes an address from `eth0`.
    pub fn del_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_cidr(cidr)?;
        netns::run(
            "ip",
            &[
                "-n",
                &self.ns,
                "addr",
                "del",
                &format!("{ip}/{len}"),
                "dev",
                "eth0",
            ],
        )
        .map(drop)
    }

    /// Server setup for MAC forwarding: puts `ip` (e.g. the cluster address `192.0.2.100`,
    /// a `/32` unless given otherwise) on `lo`, and sets `arp_ignore=1` and `arp_announce=2`
    /// (for `all` and `eth0`) so the host never answers or advertises it on the wire.
    ///
    /// An IPv6 address (`2001:db8::100`, a `/128`) goes on `lo` the same way; the kernel
    /// answers neighbour solicitations only for addresses of the interface they arrive on,
    /// so an address of `lo` is never advertised on `eth0` and needs no sysctl.
    pub fn add_loopback_address(&self, ip: &str) -> Result<()> {
        let (ip, len) = parse_cidr(ip)?;
        if ip.is_ipv6() {
            self.enable_ipv6()?;
            return add_addr(&self.ns, ip, len, "lo");
        }
        self.sysctls(&[
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.eth0.arp_ignore", "1"),
            ("net.ipv4.conf.eth0.arp_announce", "2"),
        ])?;
        add_addr(&self.ns, ip, len, "lo")
    }

    /// Sets one sysctl inside the namespace (`key` dotted, e.g. `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.sysctls(&[(key, value)])
    }

    /// Sets several sysctls inside the namespace in one go.
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> Result<()> {
        netns::sysctls(&self.ns, settings)
    }

    /// Polls until something accepts TCP connections on `127.0.0.1:port` inside this host
    /// (i.e. a server bound to 0.0.0.0 or 127.0.0.1 is up).
    pub fn wait_tcp_port(&self, port: u16, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.in_ns(|| {
            crate::wait_until(
                timeout,
                &format!("{addr} to accept in {}", self.name),
                || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok(),
            )
        })?
    }

    /// `ping -c count` to a documentation address (IPv4 or IPv6); true if any reply came back.
    pub fn ping(&self, ip: &str, count: u32) -> Result<bool> {
        let target: IpAddr = ip.parse().with_context(|| format!("bad address {ip:?}"))?;
        crate::check_lab_ip(target)?;
        let out = self.exec([
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            ip,
        ])?;
        Ok(out.status.success())
    }

    /// [`traffic::http_load`] from this host.
    pub fn http_load(
        &self,
        target: SocketAddr,
        count: usize,
        concurrency: usize,
        timeout: Duration,
    ) -> Result<LoadReport> {
        self.in_ns(|| traffic::http_load(target, count, concurrency, timeout))
    }

    /// [`traffic::http_get`] from this host: the name of the server that answered.
    pub fn http_get(&self, target: SocketAddr, timeout: Duration) -> Result<String> {
        self.in_ns(|| traffic::http_get(target, timeout))?
    }

    /// [`traffic::udp_request`] from this host.
    pub fn udp_request(
        &self,
        target: SocketAddr,
        payload: &str,
        timeout: Duration,
    ) -> Result<String> {
        self.in_ns(|| traffic::udp_request(target, payload, timeout))?
    }

    /// [`LongLived::connect`] from this host (the connection stays in this namespace).
    pub fn long_lived(&self, target: SocketAddr, name: &str) -> Result<LongLived> {
        self.in_ns(|| LongLived::connect(target, name))?
    }

    /// [`LongLivedSet::start`] from this host (its threads stay in this namespace).
    pub fn long_lived_set(
        &self,
        target: SocketAddr,
        connections: usize,
        interval: Duration,
    ) -> Result<LongLivedSet> {
        self.in_ns(|| LongLivedSet::start(target, connections, interval))?
    }
}

/// Owner pid encoded in a lab name (`tlab-<pid hex>-...`).
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(LAB_PREFIX)?;
    let hex = rest.split('-').next()?;
    i32::from_str_radix(hex, 16).ok()
}

fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces named `tlab-…` whose creating process is gone (after killing anything
/// still running inside them); labs of live processes are left alone, so this is safe to run
/// while other lab tests run. Returns how many namespaces were removed.
pub fn cleanup_leftovers() -> Result<usize> {
    remove_leftovers(false).map(|removed| removed.len())
}

/// Like [`cleanup_leftovers`], returning the names removed. With `include_live`, also removes
/// labs whose creating process is still running (including this process's own).
pub fn remove_leftovers(include_live: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for ns in netns::list()? {
        if !ns.starts_with(LAB_PREFIX) {
            continue;
        }
        if !include_live && owner_pid(&ns).is_none_or(process_alive) {
            continue;
        }
        match netns::delete(&ns) {
            Ok(()) => removed.push(ns),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("removed {removed:?} but failed: {}", errors.join("; "));
    }
    Ok(removed)
}

/// Removes `$TMPDIR/tlab-*` log directories of labs whose creating process is gone (the
/// `cleanup` subcommand does this; labs keep their logs after a failure). Returns their paths.
pub fn remove_stale_log_dirs() -> Result<Vec<PathBuf>> {
    let dir = std::env::temp_dir();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(LAB_PREFIX)
            && owner_pid(&name).is_some_and(|pid| !process_alive(pid))
            && path.is_dir()
        {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize_tag("Fail-Over_2!"), "failover2");
        assert_eq!(owner_pid("tlab-1f2e-3-basic-c1"), Some(0x1f2e));
        assert_eq!(owner_pid("other-1f2e"), None);
        validate_host_name("c1").unwrap();
        validate_host_name("node-a").unwrap();
        for bad in [
            "",
            "sw",
            "br0",
            "lo",
            "1abc",
            "UPPER",
            "waytoolongname16",
            "a_b",
        ] {
            assert!(validate_host_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
