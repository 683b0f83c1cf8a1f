//! A small NETLINK_ROUTE client: list links and addresses, add and delete one address, and
//! watch link changes (`RTMGRP_LINK`). Only what the `ip` agent needs.
//!
//! Why hand-written rather than `rtnetlink`/`netlink-packet-route`/`neli`: the agent needs
//! five message kinds, and it must control *where* each socket is created (a netlink socket
//! belongs to the network namespace of the thread that creates it; the namespace tests rely
//! on that) and that no call blocks longer than a receive timeout. A few hundred lines over
//! `libc` do that without a second async stack or a large dependency tree.
//!
//! Every parser here is total: a short, truncated or malformed message from the kernel is an
//! error or is skipped, never a panic.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

// Message types and flags (linux/rtnetlink.h, linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

// Attributes (linux/if_addr.h, linux/if_link.h).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;

/// `IFA_F_NODAD`: the address is usable at once, without duplicate address detection.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_SECONDARY`: an IPv4 address in the subnet of another one on the same link.
pub const IFA_F_SECONDARY: u32 = 0x01;

const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const IFINFOMSG: usize = 16;
/// How long one request waits for the kernel's answer before it fails.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer (the kernel sends dump parts of at most about 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// A dump or an acknowledgement never takes more receives than this.
const RECVS_MAX: usize = 10_000;

/// A network interface as netlink lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// The hardware address, if it is a 6-byte (Ethernet) one.
    pub mac: Option<[u8; 6]>,
}

impl Link {
    /// Administratively up (`IFF_UP`), with carrier (`IFF_LOWER_UP`) and operationally
    /// running (`IFF_RUNNING`).
    pub fn has_carrier(&self) -> bool {
        let want = (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_LOWER_UP) as u32;
        self.flags & want == want
    }
}

/// An address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    /// The interface's index.
    pub index: u32,
    /// The address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `IFA_F_*` flags (the 32-bit `IFA_FLAGS` when present).
    pub flags: u32,
}

/// A NETLINK_ROUTE socket for requests. It belongs to the network namespace of the thread
/// that opened it.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: AtomicU32,
}

fn netlink_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain socket(2) call.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain old data; zeroed is valid.
    let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = groups;
    // SAFETY: sa is a valid sockaddr_nl of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

impl Netlink {
    /// Opens a request socket (with a receive timeout, so no call blocks for long).
    pub fn open() -> io::Result<Netlink> {
        let fd = netlink_socket(0, false)?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: tv is a valid timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            fd,
            seq: AtomicU32::new(1),
        })
    }

    /// Every interface.
    pub fn links(&self) -> io::Result<Vec<Link>> {
        let mut body = vec![0u8; IFINFOMSG];
        body[0] = libc::AF_UNSPEC as u8;
        let mut links = Vec::new();
        self.request(RTM_GETLINK, NLM_F_DUMP, &body, |ty, payload| {
            if ty == RTM_NEWLINK {
                if let Some(l) = parse_link(payload) {
                    links.push(l);
                }
            }
        })?;
        Ok(links)
    }

    /// Every address of `family` (`AF_INET` or `AF_INET6`).
    pub fn addrs(&self, family: i32) -> io::Result<Vec<Addr>> {
        let mut body = vec![0u8; IFADDRMSG];
        body[0] = family as u8;
        let mut addrs = Vec::new();
        self.request(RTM_GETADDR, NLM_F_DUMP, &body, |ty, payload| {
            if ty == RTM_NEWADDR {
                if let Some(a) = parse_addr(payload) {
                    addrs.push(a);
                }
            }
        })?;
        Ok(addrs)
    }

    /// Adds `addr/prefix_len` to interface `index`. IPv6 addresses get `IFA_F_NODAD`. `label`
    /// (IPv4 only) must start with the interface's name. Fails with `EEXIST` if the address is
    /// already there.
    pub fn add_addr(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        label: Option<&str>,
    ) -> io::Result<()> {
        let body = addr_body(index, addr, prefix_len, label, true);
        self.request(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &body,
            |_, _| {},
        )
    }

    /// Deletes `addr/prefix_len` from interface `index` (`EADDRNOTAVAIL` if it is not there).
    pub fn del_addr(&self, index: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        let body = addr_body(index, addr, prefix_len, None, false);
        self.request(RTM_DELADDR, NLM_F_ACK, &body, |_, _| {})
    }

    /// Sends one request and reads its answer: the parts of a dump (each handed to `each`)
    /// up to `NLMSG_DONE`, or the acknowledgement.
    fn request(
        &self,
        ty: u16,
        flags: u16,
        body: &[u8],
        mut each: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg = encode_msg(ty, NLM_F_REQUEST | flags, seq, body);
        // SAFETY: sockaddr_nl is plain old data; zeroed (pid 0) addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and kernel are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; RECV_BUF];
        for _ in 0..RECVS_MAX {
            let got = recv(&self.fd, &mut buf)?;
            for (hdr, payload) in Messages::new(&buf[..got]) {
                if hdr.seq != seq {
                    continue; // an answer to an earlier request that timed out
                }
                match hdr.ty {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .map(i32::from_ne_bytes)
                            .ok_or_else(|| bad("short NLMSG_ERROR"))?;
                        if code == 0 {
                            return Ok(()); // the acknowledgement
                        }
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    NLMSG_DONE => return Ok(()),
                    t => each(t, payload),
                }
            }
        }
        Err(bad("netlink answer never ended"))
    }
}

/// A subscription to link changes (`RTMGRP_LINK`), read asynchronously.
#[derive(Debug)]
pub struct LinkEvents {
    fd: AsyncFd<OwnedFd>,
}

impl LinkEvents {
    /// Subscribes, in the calling thread's network namespace. Needs a tokio runtime.
    pub fn open() -> io::Result<LinkEvents> {
        let fd = netlink_socket(libc::RTMGRP_LINK as u32, true)?;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which alone owns and closes it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(LinkEvents { fd })
    }

    /// Waits for the next batch of link messages and drains it. Returns how many link
    /// messages it read; an overrun (`ENOBUFS`: the kernel dropped some) counts as one, since
    /// the caller re-reads the state anyway.
    pub async fn next(&self) -> io::Result<usize> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut count = 0usize;
            for _ in 0..RECVS_MAX {
                match recv_nonblocking(self.fd.get_ref(), &mut buf) {
                    Ok(n) => {
                        count += Messages::new(&buf[..n])
                            .filter(|(h, _)| h.ty == RTM_NEWLINK || h.ty == RTM_DELLINK)
                            .count();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => count += 1,
                    Err(e) => return Err(e),
                }
            }
            if count > 0 {
                return Ok(count);
            }
        }
    }
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    for _ in 0..16 {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the kernel (netlink)",
            ));
        }
        return Err(e);
    }
    Err(io::Error::from(io::ErrorKind::Interrupted))
}

fn recv_nonblocking(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A message header, decoded.
#[derive(Clone, Copy, Debug)]
struct Hdr {
    ty: u16,
    seq: u32,
}

/// The messages of one datagram; stops at the first malformed one.
struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Messages<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Messages { buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (Hdr, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.buf;
        let len = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?) as usize;
        if len < NLMSG_HDR || len > b.len() {
            self.buf = &[];
            return None;
        }
        let hdr = Hdr {
            ty: u16::from_ne_bytes(b.get(4..6)?.try_into().ok()?),
            seq: u32::from_ne_bytes(b.get(8..12)?.try_into().ok()?),
        };
        let payload = &b[NLMSG_HDR..len];
        self.buf = b.get(align4(len)..).unwrap_or(&[]);
        Some((hdr, payload))
    }
}

/// The attributes of a message body after its fixed part; stops at the first malformed one.
fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(rest.get(2..4)?.try_into().ok()?);
        if len < 4 || len > rest.len() {
            rest = &[];
            return None;
        }
        let value = &rest[4..len];
        rest = rest.get(align4(len)..).unwrap_or(&[]);
        // The top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        Some((ty & 0x3fff, value))
    })
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

fn encode_msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.extend_from_slice(body);
    m
}

/// An `ifaddrmsg` and its attributes for adding (`add`) or deleting an address.
fn addr_body(index: u32, addr: IpAddr, prefix_len: u8, label: Option<&str>, add: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    let (family, nodad) = match addr {
        IpAddr::V4(_) => (libc::AF_INET as u8, 0),
        IpAddr::V6(_) => (libc::AF_INET6 as u8, IFA_F_NODAD),
    };
    b.push(family);
    b.push(prefix_len);
    b.push(if add { nodad as u8 } else { 0 });
    b.push(0); // scope: universe
    b.extend_from_slice(&index.to_ne_bytes());
    match addr {
        IpAddr::V4(a) => {
            push_attr(&mut b, IFA_LOCAL, &a.octets());
            push_attr(&mut b, IFA_ADDRESS, &a.octets());
            if add && prefix_len < 31 {
                let host_mask = u32::MAX >> prefix_len;
                let brd = u32::from(a) | host_mask;
                push_attr(&mut b, IFA_BROADCAST, &brd.to_be_bytes());
            }
            if let (true, Some(l)) = (add, label) {
                let mut v = l.as_bytes().to_vec();
                v.push(0);
                push_attr(&mut b, IFA_LABEL, &v);
            }
        }
        IpAddr::V6(a) => {
            push_attr(&mut b, IFA_ADDRESS, &a.octets());
            if add {
                push_attr(&mut b, IFA_FLAGS, &nodad.to_ne_bytes());
            }
        }
    }
    b
}

fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < IFINFOMSG {
        return None;
    }
    let index = i32::from_ne_bytes(p.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(p.get(8..12)?.try_into().ok()?);
    let mut name = None;
    let mut mac = None;
    for (ty, v) in attrs(&p[IFINFOMSG..]) {
        match ty {
            IFLA_IFNAME => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                name = Some(String::from_utf8_lossy(&v[..end]).into_owned());
            }
            IFLA_ADDRESS if v.len() == 6 => mac = v.try_into().ok(),
            _ => {}
        }
    }
    Some(Link {
        index: u32::try_from(index).ok()?,
        name: name?,
        flags,
        mac,
    })
}

fn parse_addr(p: &[u8]) -> Option<Addr> {
    if p.len() < IFADDRMSG {
        return None;
    }
    let family = i32::from(p[0]);
    let prefix_len = p[1];
    let mut flags = u32::from(p[2]);
    let index = u32::from_ne_bytes(p.get(4..8)?.try_into().ok()?);
    let mut local = None;
    let mut address = None;
    for (ty, v) in attrs(&p[IFADDRMSG..]) {
        let ip = match (family, v.len()) {
            (libc::AF_INET, 4) => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
            (libc::AF_INET6, 16) => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
            _ => None,
        };
        match ty {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            IFA_FLAGS if v.len() == 4 => flags = u32::from_ne_bytes(v.try_into().ok()?),
            _ => {}
        }
    }
    Some(Addr {
        index,
        addr: local.or(address)?,
        prefix_len,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn an_ipv4_add_carries_local_address_broadcast_and_label() {
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        let b = addr_body(7, a, 24, Some("eth0:vip"), true);
        assert_eq!(&b[..4], &[libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 7);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b[8..]).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(got[0], (IFA_LOCAL, vec![192, 0, 2, 10]));
        assert_eq!(got[1], (IFA_ADDRESS, vec![192, 0, 2, 10]));
        assert_eq!(got[2], (IFA_BROADCAST, vec![192, 0, 2, 255]));
        assert_eq!(got[3], (IFA_LABEL, b"eth0:vip\0".to_vec()));
        // Round trip through the parser.
        let parsed = parse_addr(&b).unwrap();
        assert_eq!(parsed.addr, a);
        assert_eq!(parsed.prefix_len, 24);
    }

    #[test]
    fn an_ipv6_add_asks_for_nodad() {
        let a = IpAddr::V6("2001:db8::10".parse::<Ipv6Addr>().unwrap());
        let b = addr_body(3, a, 64, None, true);
        assert_eq!(b[0], libc::AF_INET6 as u8);
        assert_eq!(u32::from(b[2]) & IFA_F_NODAD, IFA_F_NODAD);
        let parsed = parse_addr(&b).unwrap();
        assert_eq!(parsed.addr, a);
        assert_eq!(parsed.flags & IFA_F_NODAD, IFA_F_NODAD);
        // A delete carries no flags.
        let d = addr_body(3, a, 64, None, false);
        assert_eq!(d[2], 0);
        assert!(attrs(&d[8..]).all(|(t, _)| t != IFA_FLAGS));
    }

    #[test]
    fn malformed_messages_end_the_walk_without_panicking() {
        let good = encode_msg(RTM_NEWLINK, 0, 9, &[0u8; IFINFOMSG]);
        let mut two = good.clone();
        two.extend_from_slice(&[0xff; 7]); // a truncated second header
        let seen: Vec<_> = Messages::new(&two).collect();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.seq, 9);
        // A length field beyond the buffer.
        let mut lie = good.clone();
        lie[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(Messages::new(&lie).count(), 0);
        // Attributes with a bad length.
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0, 1, 2]).count(), 0);
        // Links and addresses too short to hold their fixed part.
        assert!(parse_link(&[0; 8]).is_none());
        assert!(parse_addr(&[0; 4]).is_none());
        // A link without a name is skipped.
        assert!(parse_link(&[0; IFINFOMSG]).is_none());
    }

    #[test]
    fn carrier_needs_up_running_and_lower_up() {
        let mut l = Link {
            index: 1,
            name: "eth0".into(),
            flags: (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_LOWER_UP) as u32,
            mac: None,
        };
        assert!(l.has_carrier());
        l.flags &= !(libc::IFF_LOWER_UP as u32);
        assert!(!l.has_carrier());
        l.flags = (libc::IFF_RUNNING | libc::IFF_LOWER_UP) as u32;
        assert!(!l.has_carrier());
    }
}
