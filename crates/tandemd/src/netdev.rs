//! Facts about the node's network interfaces, and the few settings the data plane needs.

use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The forwarding interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: i32,
    pub mac: [u8; 6],
    /// MTU in bytes (IP packet size).
    pub mtu: usize,
}

/// Finds the interface that holds `addr` (the nfa, IPv4 or IPv6).
pub fn interface_with_address(addr: IpAddr) -> Result<Interface> {
    let want = addr.to_canonical();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getifaddrs");
    }
    let mut found = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_addr, when non-null, points to a sockaddr of its family.
        if let Some(ip) = unsafe { sockaddr_ip(ifa.ifa_addr) }
            && ip == want
        {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            found = Some(name);
            break;
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: freeing the list getifaddrs allocated.
    unsafe { libc::freeifaddrs(ifap) };
    let name = found.with_context(|| format!("no interface of this node holds the nfa {addr}"))?;
    interface_by_name(&name)
}

/// The address of an AF_INET or AF_INET6 sockaddr; `None` for other families or null.
///
/// # Safety
/// `sa` is null or points to a sockaddr whose storage matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    match unsafe { (*sa).sa_family } as i32 {
        libc::AF_INET => {
            // SAFETY: AF_INET addresses are sockaddr_in.
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: AF_INET6 addresses are sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Reads an interface's index, MAC and MTU.
pub fn interface_by_name(name: &str) -> Result<Interface> {
    let index = crate::afpacket::ifindex(name).with_context(|| format!("interface {name}"))?;
    let mac_text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .with_context(|| format!("reading the MAC address of {name}"))?;
    let mac = parse_mac(mac_text.trim())
        .with_context(|| format!("MAC address of {name}: {mac_text:?}"))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500);
    Ok(Interface {
        name: name.to_string(),
        index,
        mac,
        mtu,
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Turns generic receive offload off on `name`, so the rings never see coalesced super-frames
/// (which must not be forwarded above the MTU). Returns whether it was on.
pub fn disable_gro(name: &str) -> Result<bool> {
    const ETHTOOL_GGRO: u32 = 0x2b;
    const ETHTOOL_SGRO: u32 = 0x2c;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct Ifreq {
        name: [u8; 16],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for ethtool");
    }
    let run = |cmd: u32, data: u32| -> std::io::Result<u32> {
        let mut val = EthtoolValue { cmd, data };
        let mut req = Ifreq {
            name: [0; 16],
            data: &mut val,
            _pad: [0; 16],
        };
        let n = name.len().min(15);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: req is a valid ifreq whose data points to a live ethtool_value.
        let r = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(val.data)
        }
    };
    let result = (|| {
        let was = run(ETHTOOL_GGRO, 0)? != 0;
        if was {
            run(ETHTOOL_SGRO, 0)?;
        }
        Ok::<bool, std::io::Error>(was)
    })();
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    result.with_context(|| format!("turning GRO off on {name}"))
}

/// Formats a MAC address.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// nftables table name for the ingress filter of `iface`.
fn ingress_table(iface: &str) -> String {
    let clean: String = iface
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("tandem_{clean}")
}

/// Keeps the node's own IP stack out of the traffic Tandem forwards: a netdev ingress rule on
/// the forwarding interface drops IPv4 and IPv6 packets for the cluster and return addresses
/// after the packet sockets have taken their copy (taps run before the ingress hook). Without
/// it the kernel receives every forwarded frame as well, looks up a route and drops it (about
/// 0.7 µs a frame in the benchmark), or, with IP forwarding on, routes a duplicate. Neighbour
/// solicitations are not matched (their destination is a solicited-node multicast address),
/// so Tandem still sees and answers them. Best effort: it needs the `nft` command; an empty
/// address list removes the rule.
pub fn set_ingress_filter(iface: &str, addrs: &[IpAddr]) -> Result<()> {
    run_nft(&ingress_script(iface, addrs))
}

fn ingress_script(iface: &str, addrs: &[IpAddr]) -> String {
    let table = ingress_table(iface);
    let mut script = format!("add table netdev {table}\ndelete table netdev {table}\n");
    let set = |v6: bool| -> Vec<String> {
        addrs
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| a.to_string())
            .collect()
    };
    let mut rules = String::new();
    for (family, v6) in [("ip", false), ("ip6", true)] {
        let set = set(v6);
        if !set.is_empty() {
            rules.push_str(&format!(
                "    {family} daddr {{ {} }} drop\n",
                set.join(", ")
            ));
        }
    }
    if !rules.is_empty() {
        script.push_str(&format!(
            "table netdev {table} {{\n  chain ingress {{\n    type filter hook ingress device \"{iface}\" priority 0; policy accept;\n{rules}  }}\n}}\n"
        ));
    }
    script
}

/// Removes the ingress filter of `iface`, if any.
pub fn clear_ingress_filter(iface: &str) {
    let table = ingress_table(iface);
    let _ = run_nft(&format!(
        "add table netdev {table}\ndelete table netdev {table}\n"
    ));
}

fn run_nft(script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (package nftables)")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft refused the ingress filter: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Rules of the host's packet filter (nftables, which iptables-nft also writes to) that drop
/// or reject UDP to `port`: the seed procedure's optional iptables step would silence the
/// heartbeats. `None` when `nft` cannot be run.
pub fn rules_dropping_udp_port(port: u16) -> Option<Vec<String>> {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| dropping_rules(&String::from_utf8_lossy(&out.stdout), port))
}

/// The lines of an `nft list ruleset` text that drop or reject UDP to `port` (named alone or
/// in a set, `dport 20001` or `dport { 53, 20001 }`; ranges are not read).
fn dropping_rules(ruleset: &str, port: u16) -> Vec<String> {
    let p = port.to_string();
    ruleset
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("udp") || l.contains("meta l4proto"))
        .filter(|l| l.split_whitespace().any(|w| w == "drop" || w == "reject"))
        .filter(|l| {
            l.split("dport").skip(1).any(|rest| {
                let rest = rest.trim_start();
                let words: Vec<&str> = if let Some(set) = rest.strip_prefix('{') {
                    set.split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(str::trim)
                        .collect()
                } else {
                    rest.split_whitespace().take(1).collect()
                };
                words.contains(&p.as_str())
            })
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_that_drop_the_heartbeat_port_are_found() {
        let ruleset = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\
            \t\tudp dport 20001 drop\n\t\tudp dport { 53, 20002 } reject\n\t\ttcp dport 20001 drop\n\
            \t\tudp dport 20001 accept\n\t}\n}\n";
        assert_eq!(dropping_rules(ruleset, 20001), ["udp dport 20001 drop"]);
        assert_eq!(
            dropping_rules(ruleset, 20002),
            ["udp dport { 53, 20002 } reject"]
        );
        assert!(dropping_rules(ruleset, 200).is_empty());
    }

    #[test]
    fn the_ingress_filter_covers_ipv4_and_ipv6_addresses() {
        let addrs: Vec<IpAddr> = ["192.0.2.100", "2001:db8::100", "2001:db8::200"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let script = ingress_script("eth0", &addrs);
        assert!(script.contains("ip daddr { 192.0.2.100 } drop"), "{script}");
        assert!(
            script.contains("ip6 daddr { 2001:db8::100, 2001:db8::200 } drop"),
            "{script}"
        );
        let v6_only = ingress_script("eth0", &addrs[1..]);
        assert!(!v6_only.contains("ip daddr"), "{v6_only}");
        let none = ingress_script("eth0", &[]);
        assert!(
            !none.contains("chain"),
            "an empty list removes the rule: {none}"
        );
    }

    #[test]
    fn the_interface_of_an_ipv4_or_ipv6_address_is_found() {
        for a in ["127.0.0.1", "::1"] {
            let i = interface_with_address(a.parse().unwrap()).expect(a);
            assert_eq!(i.name, "lo", "{a}");
        }
        assert!(interface_with_address("2001:db8::7:7".parse().unwrap()).is_err());
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:00:5e:00:01:0a"), Some([2, 0, 0x5e, 0, 1, 10]));
        assert_eq!(parse_mac("02:00:5e:00:01"), None);
        assert_eq!(parse_mac("02:00:5e:00:01:0a:00"), None);
        assert_eq!(mac_string([2, 0, 0x5e, 0, 1, 10]), "02:00:5e:00:01:0a");
    }
}
