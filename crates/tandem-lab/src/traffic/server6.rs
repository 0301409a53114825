//! The IPv6 side of the servers: every TCP and UDP port of [`super::serve`] is bound on `[::]`
//! as well (IPv6 only, beside the IPv4 socket of the same port), so one `tandem-lab serve`
//! answers an IPv4 and an IPv6 cluster. The UDP responder answers from the address the
//! datagram was sent to (`IPV6_PKTINFO`), as the IPv4 one does with `IP_PKTINFO`: a server
//! behind a MAC-forwarding cluster answers from the cluster address on its loopback.

use std::io;
use std::net::{Ipv6Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Control, Ctx};

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
    let one: libc::c_int = 1;
    for (level, opt) in [
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    ] {
        // SAFETY: setsockopt with a valid int on our socket.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                opt,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
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
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int on our socket.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(UdpSocket::from(fd)))
}

/// Receives a datagram: (length, source, destination address from IPV6_PKTINFO).
fn recv6(
    fd: libc::c_int,
    buf: &mut [u8],
) -> io::Result<(usize, libc::sockaddr_in6, Option<libc::in6_pktinfo>)> {
    // SAFETY: all pointers in msghdr point at live local buffers of the stated sizes; CMSG_*
    // walk only the control buffer the kernel filled.
    unsafe {
        let mut src: libc::sockaddr_in6 = std::mem::zeroed();
        let mut control = Control([0; 128]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut src as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        let n = libc::recvmsg(fd, &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut dst = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_PKTINFO {
                dst = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, src, dst))
    }
}

/// Sends `data` to `to`, from the address (and interface) of `from` when given.
fn send6(
    fd: libc::c_int,
    data: &[u8],
    to: &libc::sockaddr_in6,
    from: Option<libc::in6_pktinfo>,
) -> io::Result<()> {
    // SAFETY: as in recv6; the control buffer is large enough for one in6_pktinfo.
    unsafe {
        let mut control = Control([0; 128]);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut _,
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (to as *const libc::sockaddr_in6 as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(info) = from {
            let space = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
            (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
            // The interface is left to routing: the address is on lo, the reply leaves eth0.
            let info = libc::in6_pktinfo {
                ipi6_addr: info.ipi6_addr,
                ipi6_ifindex: 0,
            };
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
        }
        if libc::sendmsg(fd, &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A unicast address we may answer from (not multicast, unspecified or link-local).
fn answerable_from(info: &libc::in6_pktinfo) -> bool {
    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_unicast_link_local())
}

/// The UDP responder on IPv6: `<name> <payload>` back to the sender, from the address it
/// sent to.
pub(super) fn udp_loop(socket: UdpSocket, ctx: Arc<Ctx>) {
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
        ctx.counters.error("udp6 set_read_timeout", &e);
    }
    let fd = socket.as_raw_fd();
    let mut buf = vec![0u8; 65536];
    let mut reply = Vec::with_capacity(65536 + ctx.name.len() + 1);
    while !ctx.stop.load(Ordering::SeqCst) {
        let (n, src, dst) = match recv6(fd, &mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                ctx.counters.error("udp6 receive", &e);
                continue;
            }
        };
        reply.clear();
        reply.extend_from_slice(ctx.name.as_bytes());
        reply.push(b' ');
        reply.extend_from_slice(&buf[..n]);
        let from = dst.filter(answerable_from);
        match send6(fd, &reply, &src, from) {
            Ok(()) => {
                ctx.counters.udp_replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => ctx.counters.error("udp6 reply", &e),
        }
    }
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
