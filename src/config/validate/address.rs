//! The rules of addresses. A member's (a node's or the witness's) `host:port` on a network path
//! is an IP address or a host name with a port from 1 to 65535 (the member listens there); an
//! IP address must be one a host can hold and a peer can reach (not unspecified, multicast or
//! the broadcast address), and no two members share a host, nor one member a `host:port` on
//! two paths. A floating address (`ip` resource, `address = "IP/PREFIX"`) has a prefix within
//! 0..=32 (IPv4) or 0..=128 (IPv6), is a unicast address a host may hold (not unspecified,
//! loopback, multicast, broadcast or IPv6 link-local, as the agent refuses too), not a whole
//! network (a /0 prefix, the network or broadcast address of its IPv4 subnet, the
//! subnet-router anycast address of its IPv6 one), and not a member's own address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::super::locate::Loc;
use super::super::schema::*;
use super::Report;

/// The host of a `host:port`: an IP address, or a host name in lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, compared without case.
    Name(String),
}

/// A problem: what is wrong, and how to fix it.
type Problem = (String, String);

/// Why no host can hold `ip` as its own, or no peer reach it there, if so.
fn not_a_host(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address (any address), not one a host holds")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("the broadcast address")
    } else {
        None
    }
}

/// Parses a member's `host:port` on a network path.
pub(super) fn parse_host_port(text: &str) -> Result<(Host, u16), Problem> {
    let shape = || {
        (
            format!("address \"{text}\" is not HOST:PORT"),
            "write it like 10.0.0.1:7400, [fd00::1]:7400 or node1.example:7400".to_string(),
        )
    };
    let (host, port) = match text.parse::<SocketAddr>() {
        Ok(sa) => (Host::Ip(sa.ip()), sa.port()),
        Err(_) => {
            let (name, port) = text.rsplit_once(':').ok_or_else(shape)?;
            let port: u16 = port.parse().map_err(|_| shape())?;
            let name_ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                        && !label.starts_with('-')
                });
            if !name_ok {
                return Err(shape());
            }
            (Host::Name(name.to_ascii_lowercase()), port)
        }
    };
    if port == 0 {
        return Err((
            format!("address \"{text}\" has port 0; the node listens on this port"),
            "give the port it listens on, from 1 to 65535, e.g. 7400".to_string(),
        ));
    }
    if let Host::Ip(ip) = host {
        if let Some(why) = not_a_host(ip) {
            return Err((
                format!("address \"{text}\": {ip} is {why}; peers cannot reach a node there"),
                "give the node's own unicast address on this path".to_string(),
            ));
        }
    }
    Ok((host, port))
}

/// Parses a floating `address/prefix`.
pub(super) fn parse_floating(text: &str) -> Result<(IpAddr, u8), Problem> {
    let example = "write it like 192.0.2.10/24 or 2001:db8::10/64";
    let Some((bare, prefix)) = text.trim().split_once('/') else {
        return Err((
            format!("address \"{text}\" has no prefix length"),
            format!("{example}: the prefix gives the subnet route and the announcements"),
        ));
    };
    let Ok(ip) = bare.trim().parse::<IpAddr>() else {
        return Err((
            format!("address \"{text}\" is not an IP address"),
            example.to_string(),
        ));
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let Some(len) = prefix.trim().parse::<u8>().ok().filter(|&n| n <= max) else {
        return Err((
            format!(
                "address \"{text}\": prefix length \"{prefix}\" is outside 0 to {max} for {family}"
            ),
            example.to_string(),
        ));
    };
    let why = not_a_host(ip).or_else(|| match ip {
        _ if ip.is_loopback() => Some("a loopback address; no other machine reaches it"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            Some("link-local; a floating address must be routable")
        }
        _ => None,
    });
    if let Some(why) = why {
        return Err((
            format!("address \"{text}\": {ip} is {why}"),
            "give the unicast address clients use for the service".to_string(),
        ));
    }
    if len == 0 {
        return Err((
            format!("address \"{text}\": a /0 prefix puts every address on the NIC's link"),
            "give the prefix of the subnet the address is in, e.g. /24".to_string(),
        ));
    }
    // The network-wide addresses of the subnet: where there are host bits to spare.
    let network_wide = match ip {
        IpAddr::V4(v4) if len <= 30 => {
            let host_bits = u32::MAX >> len;
            let bits = u32::from(v4);
            if bits & host_bits == 0 {
                Some("the network address")
            } else if bits & host_bits == host_bits {
                Some("the broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) if len <= 126 => {
            let host_bits = u128::MAX >> len;
            (u128::from(v6) & host_bits == 0).then_some("the subnet-router anycast address")
        }
        _ => None,
    };
    if let Some(what) = network_wide {
        return Err((
            format!("address \"{text}\": {ip} is {what} of its /{len} subnet, not a host's"),
            "give a host address inside the subnet".to_string(),
        ));
    }
    Ok((ip, len))
}

/// A member's name and the path of one of its addresses.
pub(super) type Holder<'c> = (&'c str, &'c str);

/// Every member with its location and addresses: the nodes in order, then the witness.
fn members(c: &ClusterConfig) -> Vec<(Loc, &str, &std::collections::BTreeMap<String, String>)> {
    let nodes = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (Loc::root().key("node").at(i), n.name.as_str(), &n.addresses));
    let witness = c
        .witness
        .iter()
        .map(|w| (Loc::root().key("witness"), w.name.as_str(), &w.addresses));
    nodes.chain(witness).collect()
}

/// No two members share a host, and no member has one `host:port` on two paths. Returns each
/// member IP address with its holder, for the floating addresses to be checked against.
pub(super) fn check_shared<'c>(
    c: &'c ClusterConfig,
    r: &mut Report,
) -> HashMap<IpAddr, Holder<'c>> {
    let mut hosts: HashMap<Host, Holder<'c>> = HashMap::new();
    let mut sockets: HashMap<(Host, u16), Holder<'c>> = HashMap::new();
    for (loc, name, addresses) in members(c) {
        for (path, text) in addresses {
            let Ok((host, port)) = parse_host_port(text) else {
                continue; // Reported with the member's other address rules.
            };
            let aloc = loc.key("addresses").key(path);
            match sockets.get(&(host.clone(), port)) {
                Some(&(other, other_path)) if other == name => r.push(
                    aloc.clone(),
                    format!(
                        "address \"{text}\" is also this node's address on path \
                         \"{other_path}\""
                    ),
                    "each path needs its own NIC address (or at least its own port)",
                ),
                _ => {}
            }
            match hosts.get(&host) {
                Some(&(other, other_path)) if other != name => r.push(
                    aloc,
                    format!(
                        "address \"{text}\": the host is also \"{other}\"'s address on path \
                         \"{other_path}\""
                    ),
                    "give every node its own address on every path: two nodes cannot \
                     listen on one address",
                ),
                Some(_) => {}
                None => {
                    hosts.insert(host.clone(), (name, path.as_str()));
                }
            }
            sockets.entry((host, port)).or_insert((name, path.as_str()));
        }
    }
    hosts
        .into_iter()
        .filter_map(|(h, holder)| match h {
            Host::Ip(ip) => Some((ip, holder)),
            Host::Name(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses() {
        assert!(parse_host_port("10.0.0.1:7400").is_ok());
        assert!(parse_host_port("[fd00::1]:7400").is_ok());
        assert_eq!(
            parse_host_port("Node1.Example:7400").map(|(h, _)| h),
            Ok(Host::Name("node1.example".to_string()))
        );
        for (text, want) in [
            ("10.0.0.1:0", "has port 0"),
            ("node1:0", "has port 0"),
            ("10.0.0.1:65536", "is not HOST:PORT"),
            ("10.0.0.1", "is not HOST:PORT"),
            ("0.0.0.0:7400", "0.0.0.0 is the unspecified address"),
            ("[::]:7400", ":: is the unspecified address"),
            ("224.0.0.1:7400", "is a multicast address"),
            ("255.255.255.255:7400", "is the broadcast address"),
        ] {
            let err = parse_host_port(text).expect_err(text).0;
            assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn floating_addresses() {
        assert_eq!(
            parse_floating("192.0.2.10/24"),
            Ok(("192.0.2.10".parse().unwrap(), 24))
        );
        assert!(parse_floating("2001:db8::10/64").is_ok());
        assert!(parse_floating("192.0.2.10/32").is_ok(), "a host route");
        assert!(
            parse_floating("192.0.2.0/31").is_ok(),
            "RFC 3021: both are hosts"
        );
        for (text, want) in [
            ("192.0.2.10", "has no prefix length"),
            (
                "192.0.2.10/33",
                "prefix length \"33\" is outside 0 to 32 for IPv4",
            ),
            ("192.0.2.10/-1", "prefix length \"-1\" is outside 0 to 32"),
            ("192.0.2.10/x", "prefix length \"x\""),
            ("2001:db8::10/129", "is outside 0 to 128 for IPv6"),
            ("0.0.0.0/0", "0.0.0.0 is the unspecified address"),
            ("::/0", ":: is the unspecified address"),
            ("192.0.2.10/0", "a /0 prefix"),
            ("224.0.0.5/24", "multicast"),
            ("255.255.255.255/32", "the broadcast address"),
            ("127.0.0.2/8", "loopback"),
            ("fe80::1/64", "link-local"),
            (
                "192.0.2.0/24",
                "192.0.2.0 is the network address of its /24 subnet",
            ),
            (
                "192.0.2.255/24",
                "192.0.2.255 is the broadcast address of its /24 subnet",
            ),
            ("2001:db8::/64", "the subnet-router anycast address"),
            ("banana/24", "is not an IP address"),
        ] {
            let err = parse_floating(text).expect_err(text).0;
            assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
        }
    }
}
