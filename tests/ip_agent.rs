//! The `ip` agent in network namespaces of its own (root only; skipped with one line
//! otherwise): the floating address is added without touching the NIC's own address,
//! announced by gratuitous ARPs (counted by a packet capture), survives the removal of the
//! primary address (promote_secondaries), moves to the next NIC when the first loses carrier
//! (with a new burst), reports a failure when no NIC has carrier, and is removed by stop; an
//! IPv6 address is usable at once and announced by unsolicited neighbour advertisements.
//!
//! Each test creates its own namespace (a unique name) with two veth pairs `a0–b0`, `a1–b1`,
//! runs the agent on a thread that entered the namespace (a current-thread tokio runtime, so
//! every socket the agent opens lands there), and deletes the namespace when it ends, failed or
//! not. No packet leaves the namespace. Every wait is bounded by [`LIMIT`]; tests assert
//! behaviour, never timing.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use eterne::policy::group::Outcome;
use eterne::policy::spec::{MonitorSpec, ResourceSpec};
use eterne::resources::ip::announce::{parse_gratuitous_arp, parse_override_na};
use eterne::resources::{build, Agent, AgentError, AgentEvent, Depth};
use support::agent::Timings;
use support::netns::{Netns, LIMIT};
use tokio::sync::mpsc;

/// The timings of the test address.
const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 1000,
        timeout_ms: 1000,
    },
    deep: None,
    start_ms: 5000,
    stop_ms: 5000,
};

fn spec(params: &[(&str, &str)]) -> ResourceSpec {
    support::agent::resource("vip", "ip", params, &TIMINGS)
}

fn agent(params: &[(&str, &str)]) -> (Box<dyn Agent>, mpsc::Receiver<AgentEvent>) {
    let (ctx, rx) = support::agent::context(2, 0, "vip", std::env::temp_dir(), 16);
    (build(&spec(params), &ctx).expect("valid parameters"), rx)
}

/// A packet capture on one interface of the namespace: an `AF_PACKET` datagram socket (link
/// header removed) for one EtherType. Opened on the namespace's thread.
struct Capture {
    fd: OwnedFd,
}

impl Capture {
    fn open(nic: &str, ethertype: u16) -> Capture {
        let cname = std::ffi::CString::new(nic).unwrap();
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        assert!(index > 0, "no interface {nic}");
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ethertype.to_be()),
            )
        };
        assert!(
            raw >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ethertype.to_be();
        sa.sll_ifindex = index as i32;
        // SAFETY: sa is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv is a valid timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Capture { fd }
    }

    /// Counts packets for which `is_match` holds until `want` were seen and then `quiet`
    /// passed without another (so a burst longer than `want` is seen), or [`LIMIT`] passed.
    /// Runs on a blocking thread so that the runtime keeps sending.
    async fn count(self, want: usize, quiet: Duration, is_match: fn(&[u8]) -> bool) -> usize {
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + LIMIT;
            let mut seen = 0usize;
            let mut last = Instant::now();
            let mut buf = [0u8; 2048];
            while Instant::now() < deadline {
                if seen >= want && last.elapsed() >= quiet {
                    break;
                }
                // SAFETY: buf is valid for writes of its length.
                let n = unsafe {
                    libc::recv(
                        self.fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                    )
                };
                if n > 0 && is_match(&buf[..n as usize]) {
                    seen += 1;
                    last = Instant::now();
                }
            }
            seen
        })
        .await
        .expect("capture thread")
    }
}

const VIP4: &str = "192.0.2.10";
const VIP6: &str = "2001:db8::10";

fn is_garp_for_vip4(p: &[u8]) -> bool {
    parse_gratuitous_arp(p).map(|a| a.to_string()) == Some(VIP4.to_string())
}

fn is_na_for_vip6(p: &[u8]) -> bool {
    // IPv6 header (40 bytes), next header ICMPv6 (58), hop limit 255.
    p.len() > 40
        && p[6] == 58
        && p[7] == 255
        && parse_override_na(&p[40..]).map(|a| a.to_string()) == Some(VIP6.to_string())
}

#[test]
fn ipv4_add_announce_promote_nic_failover_and_stop() {
    if support::skip_unless_root(
        "ipv4_add_announce_promote_nic_failover_and_stop",
        "network namespaces",
    ) {
        return;
    }
    let ns = Netns::new("eterne-ip", "v4");
    ns.two_nics("192.0.2.1/24", "198.51.100.1/24");
    let inner = ns.0.clone();
    let count = 5usize;
    let quiet = Duration::from_millis(500);

    // A NIC the node does not have is named by validate.
    let missing = ns.run(|| async {
        let (a, _rx) = agent(&[("address", "192.0.2.10/24"), ("nics", "a0,nope0")]);
        a.validate().await
    });
    match missing {
        Err(AgentError::Param { param, problem, .. }) => {
            assert_eq!(param, "nics");
            assert!(problem.contains("nope0"), "{problem}");
        }
        other => panic!("validate: {other:?}"),
    }

    ns.run(move || async move {
        let ns = inner;
        let (a, mut events) = agent(&[
            ("address", "192.0.2.10/24"),
            ("nics", "a0, a1"),
            ("arp_count", "5"),
            ("arp_interval_ms", "50"),
            ("label", "vip"),
        ]);
        a.validate().await.expect("validate");
        assert_eq!(a.probe().await.outcome, Outcome::NotRunning);

        // Start: the address joins a0's own, which stays; a burst of gratuitous ARPs.
        let cap = Capture::open("b0", libc::ETH_P_ARP as u16);
        let r = a.start(7).await;
        assert_eq!(r.outcome, Outcome::Ok, "start: {}", r.reason);
        let on_a0 = ns.addrs("a0");
        assert!(on_a0.contains("192.0.2.10/24"), "{on_a0}");
        assert!(
            on_a0.contains("192.0.2.1/24"),
            "the primary address is untouched: {on_a0}"
        );
        assert!(on_a0.contains("a0:vip"), "labelled: {on_a0}");
        assert_eq!(cap.count(count, quiet, is_garp_for_vip4).await, count);
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Ok);
        assert_eq!(a.probe().await.outcome, Outcome::Ok);
        // A second start starts nothing new.
        assert_eq!(a.start(7).await.outcome, Outcome::Ok);

        // Removing the primary address leaves the floating one (promote_secondaries).
        ns.ip(&["addr", "del", "192.0.2.1/24", "dev", "a0"]);
        let on_a0 = ns.addrs("a0");
        assert!(
            on_a0.contains("192.0.2.10/24"),
            "promoted, not deleted: {on_a0}"
        );
        assert_eq!(a.monitor(Depth::Deep).await.outcome, Outcome::Ok);

        // a0 loses carrier (its peer goes down): the address moves to a1, with a new burst.
        let cap = Capture::open("b1", libc::ETH_P_ARP as u16);
        ns.ip(&["link", "set", "b0", "down"]);
        let seen = cap.count(count, quiet, is_garp_for_vip4).await;
        assert!(ns.addrs("a1").contains("192.0.2.10/24"), "moved to a1");
        assert!(!ns.addrs("a0").contains("192.0.2.10/"), "gone from a0");
        assert!(
            ns.addrs("a1").contains("198.51.100.1/24"),
            "a1's own address stays"
        );
        assert_eq!(seen, count, "a new burst on a1");
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Ok);

        // No NIC with carrier: the group hears of it.
        ns.ip(&["link", "set", "b1", "down"]);
        let ev = tokio::time::timeout(LIMIT, events.recv())
            .await
            .expect("a failure event in time")
            .expect("event channel open");
        match ev {
            AgentEvent::Failed {
                group,
                resource,
                reason,
            } => {
                assert_eq!((group, resource), (2, 0));
                assert!(reason.contains("carrier"), "{reason}");
            }
            other => panic!("unexpected event {other:?}"),
        }
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Failed);

        // Stop removes it; stopping again is Ok.
        let r = a.stop().await;
        assert_eq!(r.outcome, Outcome::Ok, "stop: {}", r.reason);
        assert!(!ns.addrs("a0").contains("192.0.2.10/"));
        assert!(!ns.addrs("a1").contains("192.0.2.10/"));
        assert_eq!(a.stop().await.outcome, Outcome::Ok);
        assert_eq!(a.probe().await.outcome, Outcome::NotRunning);
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::NotRunning);
    });
}

#[test]
fn ipv4_start_without_carrier_fails_and_adds_nothing() {
    if support::skip_unless_root(
        "ipv4_start_without_carrier_fails_and_adds_nothing",
        "network namespaces",
    ) {
        return;
    }
    let ns = Netns::new("eterne-ip", "nocarrier");
    ns.two_nics("192.0.2.1/24", "198.51.100.1/24");
    ns.ip(&["link", "set", "b0", "down"]);
    ns.ip(&["link", "set", "b1", "down"]);
    ns.wait_for("no carrier", || {
        ns.ip(&["link", "show", "dev", "a1"]).contains("NO-CARRIER")
    });
    let r = ns.run(|| async {
        let (a, _rx) = agent(&[("address", "192.0.2.10/24"), ("nics", "a0,a1")]);
        a.start(1).await
    });
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("a0 (no carrier)"), "{}", r.reason);
    assert!(!ns.addrs("a0").contains("192.0.2.10/"));
    assert!(!ns.addrs("a1").contains("192.0.2.10/"));
}

#[test]
fn ipv6_address_usable_at_once_and_announced() {
    if support::skip_unless_root(
        "ipv6_address_usable_at_once_and_announced",
        "network namespaces",
    ) {
        return;
    }
    let ns = Netns::new("eterne-ip", "v6");
    ns.two_nics("2001:db8::1/64", "2001:db8:1::1/64");
    let inner = ns.0.clone();
    ns.run(move || async move {
        let ns = inner;
        let (a, _rx) = agent(&[
            ("address", "2001:db8::10/64"),
            ("nics", "a0,a1"),
            ("arp_count", "3"),
            ("arp_interval_ms", "50"),
        ]);
        let cap = Capture::open("b0", libc::ETH_P_IPV6 as u16);
        let r = a.start(3).await;
        assert_eq!(r.outcome, Outcome::Ok, "start: {}", r.reason);
        let on_a0 = ns.ip(&["-6", "addr", "show", "dev", "a0"]);
        assert!(on_a0.contains("2001:db8::10/64"), "{on_a0}");
        let vip_line = on_a0
            .lines()
            .find(|l| l.contains("2001:db8::10/64"))
            .unwrap_or_default();
        assert!(!vip_line.contains("tentative"), "no DAD wait: {on_a0}");
        assert!(
            on_a0.contains("2001:db8::1/64"),
            "own address untouched: {on_a0}"
        );
        let seen = cap
            .count(3, Duration::from_millis(500), is_na_for_vip6)
            .await;
        assert_eq!(seen, 3, "unsolicited neighbour advertisements");
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Ok);
        let r = a.stop().await;
        assert_eq!(r.outcome, Outcome::Ok, "stop: {}", r.reason);
        assert!(!ns
            .ip(&["-6", "addr", "show", "dev", "a0"])
            .contains("2001:db8::10/"));
    });
}

#[test]
fn a_vanished_nic_hands_the_address_to_the_next() {
    if support::skip_unless_root(
        "a_vanished_nic_hands_the_address_to_the_next",
        "network namespaces",
    ) {
        return;
    }
    let ns = Netns::new("eterne-ip", "unplug");
    ns.two_nics("192.0.2.1/24", "198.51.100.1/24");
    let inner = ns.0.clone();
    ns.run(move || async move {
        let ns = inner;
        let (a, _rx) = agent(&[
            ("address", "192.0.2.10/24"),
            ("nics", "a0,a1"),
            ("arp_count", "2"),
            ("arp_interval_ms", "50"),
        ]);
        let r = a.start(1).await;
        assert_eq!(r.outcome, Outcome::Ok, "start: {}", r.reason);
        let cap = Capture::open("b1", libc::ETH_P_ARP as u16);
        // Unplugged: the NIC and its addresses are gone.
        ns.ip(&["link", "del", "a0"]);
        let seen = cap
            .count(2, Duration::from_millis(300), is_garp_for_vip4)
            .await;
        assert!(ns.addrs("a1").contains("192.0.2.10/24"), "moved to a1");
        assert_eq!(seen, 2, "announced on a1");
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Ok);
        assert_eq!(a.stop().await.outcome, Outcome::Ok);
        assert!(!ns.addrs("a1").contains("192.0.2.10/"));
    });
}
