//! Announcing that an address moved here: gratuitous ARP (IPv4) and unsolicited neighbour
//! advertisements (IPv6), so that switches and neighbours update their tables at once instead
//! of waiting for their entries to age out.
//!
//! - IPv4: an ARP *request* with sender = target = the address, broadcast, sent from an
//!   `AF_PACKET` datagram socket (the kernel adds the Ethernet header). Both the request and
//!   the reply form are in use; the request form is what Linux's `arping -U` and keepalived
//!   send and what every stack we know accepts.
//! - IPv6: an unsolicited neighbour advertisement (ICMPv6 type 136, override flag set,
//!   solicited flag clear, the target link-layer address option) to all-nodes `ff02::1`, from a
//!   raw ICMPv6 socket bound to the address and to the interface, hop limit 255 (RFC 4861
//!   §7.2.6: receivers drop neighbour discovery packets with any other hop limit). The kernel
//!   computes the ICMPv6 checksum.
//!
//! A socket is opened when an [`Announcer`] is made, so it belongs to the network namespace of
//! the thread that made it; the burst may then run on any thread.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The all-nodes multicast address, where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 neighbour advertisement.
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// The override flag of a neighbour advertisement (first byte of the flags word).
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// One way to announce one address on one interface.
#[derive(Debug)]
pub struct Announcer {
    fd: OwnedFd,
    packet: Vec<u8>,
    /// Where each packet goes.
    dest: Dest,
}

#[derive(Debug)]
enum Dest {
    /// Broadcast on the interface with this index.
    Arp(i32),
    /// All-nodes on the interface with this index.
    Na(u32),
}

impl Announcer {
    /// Opens the socket for announcing `addr` on interface `ifindex` (named `ifname`, with
    /// hardware address `mac`).
    pub fn new(addr: IpAddr, ifindex: u32, ifname: &str, mac: [u8; 6]) -> io::Result<Announcer> {
        match addr {
            IpAddr::V4(a) => Ok(Announcer {
                fd: packet_socket()?,
                packet: garp_request(mac, a).to_vec(),
                dest: Dest::Arp(ifindex as i32),
            }),
            IpAddr::V6(a) => Ok(Announcer {
                fd: icmp6_socket(a, ifindex, ifname)?,
                packet: unsolicited_na(mac, a).to_vec(),
                dest: Dest::Na(ifindex),
            }),
        }
    }

    /// Sends one announcement.
    pub fn send(&self) -> io::Result<()> {
        let n = match self.dest {
            Dest::Arp(ifindex) => {
                // SAFETY: sockaddr_ll is plain old data; zeroed is valid.
                let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
                sa.sll_family = libc::AF_PACKET as u16;
                sa.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
                sa.sll_ifindex = ifindex;
                sa.sll_halen = 6;
                sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                // SAFETY: packet and sa are valid for the lengths passed.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        self.packet.as_ptr() as *const libc::c_void,
                        self.packet.len(),
                        0,
                        &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                        mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                }
            }
            Dest::Na(ifindex) => {
                // SAFETY: sockaddr_in6 is plain old data; zeroed is valid.
                let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_addr.s6_addr = ALL_NODES.octets();
                sa.sin6_scope_id = ifindex;
                // SAFETY: packet and sa are valid for the lengths passed.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        self.packet.as_ptr() as *const libc::c_void,
                        self.packet.len(),
                        0,
                        &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
                        mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// An `AF_PACKET` datagram socket that only sends (protocol 0: it receives nothing).
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, v: libc::c_int) -> io::Result<()> {
    // SAFETY: v is a valid c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A raw ICMPv6 socket bound to `addr` and to the interface, hop limit 255.
fn icmp6_socket(addr: Ipv6Addr, ifindex: u32, ifname: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = ifname.as_bytes();
    // SAFETY: name is valid for its length (the kernel copies at most IFNAMSIZ bytes).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
    setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
    setsockopt_int(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        ifindex as i32,
    )?;
    // SAFETY: sockaddr_in6 is plain old data; zeroed is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_addr.s6_addr = addr.octets();
    if addr.is_unicast_link_local() {
        sa.sin6_scope_id = ifindex;
    }
    // SAFETY: sa is a valid sockaddr_in6 of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A gratuitous ARP request for `ip` from `mac` (the ARP part; the kernel adds Ethernet).
pub fn garp_request(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // op: request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    // Target hardware address stays zero (unknown, as in any request).
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// An unsolicited neighbour advertisement for `ip` from `mac` (the ICMPv6 part; checksum left
/// zero for the kernel to fill in).
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = ND_NEIGHBOR_ADVERT;
    p[4] = NA_FLAG_OVERRIDE;
    p[8..24].copy_from_slice(&ip.octets());
    p[24] = 2; // option: target link-layer address
    p[25] = 1; // its length, in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// If `arp` (the ARP part of a frame) is a gratuitous announcement (request or reply with
/// sender address = target address), that address.
pub fn parse_gratuitous_arp(arp: &[u8]) -> Option<Ipv4Addr> {
    if arp.len() < 28 || arp[0..2] != [0, 1] || arp[2..4] != [8, 0] || arp[4] != 6 || arp[5] != 4 {
        return None;
    }
    let spa: [u8; 4] = arp.get(14..18)?.try_into().ok()?;
    let tpa: [u8; 4] = arp.get(24..28)?.try_into().ok()?;
    (spa == tpa).then(|| Ipv4Addr::from(spa))
}

/// If `icmp` (an ICMPv6 message) is a neighbour advertisement with the override flag, its
/// target address.
pub fn parse_override_na(icmp: &[u8]) -> Option<Ipv6Addr> {
    if icmp.len() < 24 || icmp[0] != ND_NEIGHBOR_ADVERT || icmp[4] & NA_FLAG_OVERRIDE == 0 {
        return None;
    }
    let t: [u8; 16] = icmp.get(8..24)?.try_into().ok()?;
    Some(Ipv6Addr::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn a_gratuitous_arp_names_the_address_twice() {
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        let p = garp_request(MAC, ip);
        assert_eq!(&p[6..8], &[0, 1], "request form");
        assert_eq!(&p[8..14], &MAC);
        assert_eq!(parse_gratuitous_arp(&p), Some(ip));
        let mut other = p;
        other[27] = 11;
        assert_eq!(parse_gratuitous_arp(&other), None);
        assert_eq!(parse_gratuitous_arp(&p[..20]), None);
    }

    #[test]
    fn an_unsolicited_na_overrides_and_carries_the_mac() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let p = unsolicited_na(MAC, ip);
        assert_eq!(p[0], 136);
        assert_eq!(p[4] & 0x40, 0, "not solicited");
        assert_eq!(&p[26..32], &MAC);
        assert_eq!(parse_override_na(&p), Some(ip));
        assert_eq!(parse_override_na(&p[..10]), None);
    }
}
