//! Address rules of the lab and deterministic MAC addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context, Result, bail};

/// The IPv4 documentation networks (RFC 5737), the only ones lab hosts may use.
const DOC_V4: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];

fn is_doc_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    DOC_V4.iter().any(|net| o[..3] == net[..])
}

fn is_doc_v6(ip: std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    s[0] == 0x2001 && s[1] == 0x0db8
}

/// Accepts only documentation addresses: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
/// (and 2001:db8::/32 for IPv6). Everything a lab host is given must pass this.
pub fn check_lab_ip(ip: IpAddr) -> Result<()> {
    let ok = match ip {
        IpAddr::V4(v4) => is_doc_v4(v4),
        IpAddr::V6(v6) => is_doc_v6(v6),
    };
    if !ok {
        bail!(
            "{ip} is not a documentation address: lab hosts may only use 192.0.2.0/24, \
             198.51.100.0/24, 203.0.113.0/24 (or 2001:db8::/32)"
        );
    }
    Ok(())
}

/// Accepts targets the traffic clients may send to: documentation addresses
/// ([`check_lab_ip`]) and loopback. The clients call this before sending anything.
pub fn check_target(target: SocketAddr) -> Result<()> {
    if target.ip().is_loopback() {
        return Ok(());
    }
    check_lab_ip(target.ip()).with_context(|| format!("refusing to send traffic to {target}"))
}

/// Parses `"192.0.2.10/24"` or `"2001:db8::10/64"` (or a bare address, taken as `/32` or
/// `/128`) and checks it is a documentation address.
pub(crate) fn parse_cidr(text: &str) -> Result<(IpAddr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (
            ip,
            Some(
                len.parse::<u8>()
                    .with_context(|| format!("prefix length in {text:?}"))?,
            ),
        ),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .with_context(|| format!("IP address in {text:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        bail!("prefix length {len} in {text:?} is over {max}");
    }
    check_lab_ip(ip)?;
    Ok((ip, len))
}

/// The lab's IPv6 address plan, beside the IPv4 one of [`crate::cluster`]: every host of a
/// dual-stack lab gets `2001:db8::<n>/64` where its IPv4 address is `192.0.2.<n>/24` (the
/// last octet written as hexadecimal digits of the same value: `192.0.2.10` →
/// `2001:db8::10`, so the two plans read alike), the cluster `2001:db8::100`, the NAT
/// return address `2001:db8::200`.
pub fn v6_twin(v4: Ipv4Addr) -> Ipv6Addr {
    let last = v4.octets()[3];
    // "10" read as hexadecimal digits: 192.0.2.10 -> 2001:db8::10 (0x10).
    let digits = u16::from_str_radix(&last.to_string(), 16).unwrap_or(u16::from(last));
    Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, digits)
}

/// The MAC address a host of this name gets: locally administered, unicast (first octet
/// `0x02`), the other five octets from a hash (FNV-1a) of the name. Same name, same MAC, in
/// every lab; formatted `02:xx:xx:xx:xx:xx`.
pub fn mac_for(name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = hash.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[3], b[4], b[5], b[6], b[7]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_ranges_only() {
        for ok in ["192.0.2.1", "198.51.100.200", "203.0.113.9", "2001:db8::1"] {
            check_lab_ip(ok.parse().unwrap()).unwrap();
        }
        for bad in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "192.0.3.1",
            "127.0.0.1",
            "fe80::1",
        ] {
            assert!(
                check_lab_ip(bad.parse().unwrap()).is_err(),
                "{bad} accepted"
            );
        }
        check_target("127.0.0.1:80".parse().unwrap()).unwrap();
        check_target("192.0.2.100:80".parse().unwrap()).unwrap();
        assert!(check_target("172.16.0.1:80".parse().unwrap()).is_err());
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("192.0.2.10/24").unwrap(),
            ("192.0.2.10".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr("192.0.2.100").unwrap(),
            ("192.0.2.100".parse().unwrap(), 32)
        );
        assert_eq!(
            parse_cidr("2001:db8::10/64").unwrap(),
            ("2001:db8::10".parse().unwrap(), 64)
        );
        assert_eq!(
            parse_cidr("2001:db8::100").unwrap(),
            ("2001:db8::100".parse().unwrap(), 128)
        );
        assert!(parse_cidr("2001:db8::1/129").is_err());
        assert!(parse_cidr("fd00::1/64").is_err());
        assert!(parse_cidr("192.0.2.10/33").is_err());
        assert!(parse_cidr("10.1.2.3/8").is_err());
        assert!(parse_cidr("nonsense").is_err());
    }

    #[test]
    fn v6_twins_read_like_their_v4_addresses() {
        let twin = |s: &str| v6_twin(s.parse().unwrap()).to_string();
        assert_eq!(twin("192.0.2.10"), "2001:db8::10");
        assert_eq!(twin("192.0.2.2"), "2001:db8::2");
        assert_eq!(twin("192.0.2.100"), "2001:db8::100");
        assert_eq!(twin("192.0.2.200"), "2001:db8::200");
        assert_eq!(twin("192.0.2.255"), "2001:db8::255");
    }

    #[test]
    fn macs_are_deterministic_local_unicast() {
        let a = mac_for("s1");
        assert_eq!(a, mac_for("s1"));
        assert_ne!(a, mac_for("s2"));
        assert!(a.starts_with("02:"));
        assert_eq!(a.len(), 17);
    }
}
