//! The IPv6 side of the servers: every TCP and UDP port of [`super::serve`] is bound on `[::]`
//! as well (IPv6 only, beside the IPv4 socket of the same port), so one `tandem-lab serve`
//! answers an IPv4 and an IPv6 cluster. The UDP responder answers from the address the
//! datagram was sent to (`IPV6_PKTINFO`), as the IPv4 one does with `IP_PKTINFO`: a server
//! behind a MAC-forwarding cluster answers from the cluster address on its loopback.

use std::io;
use std::net::{Ipv6Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Family, set_flag};

/// A socket of `kind` bound to `[::]:port`, IPv6 only. `Ok(None)` when the host has no IPv6
/// (the kernel refuses the family or the address): the IPv4 labs run with IPv6 off.
fn bind6(kind: libc::c_int, port: u16) -> io::Result<Option<OwnedFd>> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_INET6, kind | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: raw is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_flag(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    set_flag(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    // SAFETY: an all-zero sockaddr_in6 is the unspecified address.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = port.to_be();
    // SAFETY: sa is a valid sockaddr_in6 of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(fd))
}

/// A TCP listener on `[::]:port` (IPv6 only), or `None` without IPv6.
pub(super) fn tcp(port: u16) -> io::Result<Option<TcpListener>> {
    let Some(fd) = bind6(libc::SOCK_STREAM, port)? else {
        return Ok(None);
    };
    // SAFETY: listen(2) on our bound socket.
    if unsafe { libc::listen(fd.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(TcpListener::from(fd)))
}

/// A UDP socket on `[::]:port` (IPv6 only) that learns each datagram's destination, or
/// `None` without IPv6.
pub(super) fn udp(port: u16) -> io::Result<Option<UdpSocket>> {
    let Some(fd) = bind6(libc::SOCK_DGRAM, port)? else {
        return Ok(None);
    };
    set_flag(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
    Ok(Some(UdpSocket::from(fd)))
}

/// IPv6 for the UDP responder (`super::udp_loop`).
pub(super) struct V6;

impl Family for V6 {
    type Addr = libc::sockaddr_in6;
    type Info = libc::in6_pktinfo;
    const LEVEL: libc::c_int = libc::IPPROTO_IPV6;
    const PKTINFO: libc::c_int = libc::IPV6_PKTINFO;
    fn reply_info(received: libc::in6_pktinfo) -> Option<libc::in6_pktinfo> {
        // The interface is left to routing: the address is on lo, the reply leaves eth0.
        answerable_from(&received).then_some(libc::in6_pktinfo {
            ipi6_addr: received.ipi6_addr,
            ipi6_ifindex: 0,
        })
    }
}

/// A unicast address we may answer from (not multicast, unspecified or link-local).
fn answerable_from(info: &libc::in6_pktinfo) -> bool {
    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_unicast_link_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_multicast_are_not_answered_from() {
        let info = |ip: &str| libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: ip.parse::<Ipv6Addr>().unwrap().octets(),
            },
            ipi6_ifindex: 0,
        };
        assert!(answerable_from(&info("2001:db8::100")));
        assert!(!answerable_from(&info("fe80::1")));
        assert!(!answerable_from(&info("ff02::1")));
        assert!(!answerable_from(&info("::")));
    }
}
