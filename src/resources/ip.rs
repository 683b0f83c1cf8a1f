//! The `ip` agent: a floating IPv4 or IPv6 address (design.md §7), with local NIC failover.
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `address` | Required. The address with its prefix length, e.g. `"192.0.2.10/24"` or `"2001:db8::10/64"`. |
//! | `nics` | Required. The NICs that may carry it, in order, comma-separated, e.g. `"eth0, eth1"`. The first with carrier gets the address; the others are for local NIC failover. |
//! | `arp_count` | How many announcements (gratuitous ARPs, or unsolicited neighbour advertisements for IPv6) each burst sends, 0–100. Default 5. 0 sends none. |
//! | `arp_interval_ms` | Time between two announcements of a burst, 1–10000. Default 200. |
//! | `label` | IPv4 only: the address gets the label `<nic>:<label>` (as `ip addr` shows it). `<nic>:<label>` must fit in 15 bytes for every NIC of the list. |
//!
//! # How it runs
//!
//! - Addresses are added and removed through netlink (`RTM_NEWADDR`, `RTM_DELADDR`; see
//!   [`netlink`]), never by running `ip`. The interface's own addresses are not touched.
//! - **Secondary addresses.** An IPv4 address in the subnet of an address the NIC already has
//!   becomes a *secondary* address, and by default the kernel deletes every secondary address
//!   when the primary one is removed: an administrator renumbering the NIC would silently take
//!   the floating address down. Before adding, the agent therefore writes `1` to
//!   `/proc/sys/net/ipv4/conf/<nic>/promote_secondaries` for every NIC of the list: the kernel
//!   then promotes a secondary to primary instead of deleting it. The setting is left on at
//!   stop (it changes nothing for a NIC without secondaries, and another floating address may
//!   rely on it). The address keeps the prefix length the user gave, so the subnet route and
//!   the source-address choice are those an administrator expects.
//! - **IPv6** addresses are added with `IFA_F_NODAD`. Duplicate address detection would keep
//!   the address *tentative* (unusable: no bind, no answer) for about a second after it is
//!   added, which is most of a failover budget; the cluster itself guarantees that one node at
//!   a time holds the address, which is what DAD would have checked.
//! - **Announcements.** After the address is added, a burst of `arp_count` announcements, one
//!   every `arp_interval_ms`, tells neighbours and switches where the address now lives (see
//!   [`announce`]). `start` returns once the address is present and the first announcement went
//!   out; the rest of the burst runs in the background.
//! - **Carrier watch (local NIC failover).** While the address is active, a task subscribed to
//!   link changes (`RTMGRP_LINK`) re-reads the links on every change. When the NIC holding the
//!   address has no carrier any more (link down, or `IFF_LOWER_UP`/`IFF_RUNNING` off), the
//!   address moves to the first NIC of the list that has carrier, with a new burst, and a log
//!   line says so. A NIC that vanishes (hot-unplugged) takes its addresses with it: the
//!   address is then placed anew the same way. The address does not move back when an earlier NIC regains carrier (no local
//!   failback: that would be a second outage for no gain). When no NIC of the list has carrier,
//!   the agent reports [`AgentEvent::Failed`] (once per outage) and leaves the address where it
//!   is, so the group's local recovery and then remote failover take over; if a NIC regains
//!   carrier before that, the address moves there.
//! - `monitor` (both depths): the address is on a NIC of the list and that NIC has carrier →
//!   `Ok`; on a NIC without carrier → `Failed`; absent → `NotRunning`.
//! - `probe`: the address is on a NIC of the list → `Ok` (and the carrier watch is started:
//!   adopted); else `NotRunning`.
//! - `stop` removes the address from every NIC of the list; absent is `Ok`.
//!
//! # Network namespaces
//!
//! Netlink and packet sockets belong to the network namespace of the thread that opens them.
//! `start` and `probe` open the carrier watch's sockets on the calling thread; the watch
//! opens the sockets of later announcements on the thread that runs it. The daemon runs all of
//! them in the host's namespace; the tests run a current-thread runtime on a thread that
//! entered the test's namespace, so every socket lands there.

pub mod announce;
pub mod netlink;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use self::announce::Announcer;
use self::netlink::{Link, LinkEvents, Netlink};
use super::process::AbortOnDrop;
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, AgentEvent, Depth, HardStop, Report};
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

/// Every parameter the agent knows; anything else is a typo and refused.
pub const PARAMS: &[&str] = &["address", "nics", "arp_count", "arp_interval_ms", "label"];

/// Default `arp_count`.
pub const ARP_COUNT_DEFAULT: u32 = 5;
/// Largest `arp_count`.
pub const ARP_COUNT_MAX: u32 = 100;
/// Default `arp_interval_ms`.
pub const ARP_INTERVAL_MS_DEFAULT: u64 = 200;
/// Largest `arp_interval_ms`.
pub const ARP_INTERVAL_MS_MAX: u64 = 10_000;
/// The longest interface name (IFNAMSIZ − 1); an address label has the same limit.
const IFNAME_MAX: usize = 15;
/// After a failed read of link events, the watch waits this long before it reads again.
const WATCH_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The `ip` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Ip {
    /// What the carrier watch needs too.
    cfg: Arc<Config>,
    /// Whether the address is active here, the watch and the running burst.
    state: Arc<Mutex<State>>,
}

/// The parsed parameters and where to report.
#[derive(Debug)]
struct Config {
    /// The resource's name, for messages.
    name: String,
    /// Copied into events.
    group: GroupId,
    /// Copied into events.
    resource: ResourceId,
    /// Where a carrier loss on every NIC is reported.
    events: mpsc::Sender<AgentEvent>,
    /// The floating address.
    addr: IpAddr,
    /// Its prefix length.
    prefix_len: u8,
    /// The NICs, in order of preference; never empty, no duplicates.
    nics: Vec<String>,
    /// Announcements per burst.
    arp_count: u32,
    /// Between two announcements.
    arp_interval: Duration,
    /// The label suffix (IPv4 only).
    label: Option<String>,
}

/// What changes while the resource runs. Guarded by one mutex that is never held across an
/// `.await`; every netlink change happens under it, so `stop` and the carrier watch never
/// interleave.
#[derive(Debug, Default)]
struct State {
    /// Started (or adopted) and not stopped: the carrier watch may move the address.
    active: bool,
    /// The carrier watch.
    watch: Option<AbortOnDrop>,
    /// The running announcement burst.
    burst: Option<AbortOnDrop>,
    /// A carrier loss on every NIC was reported and carrier has not come back since.
    reported: bool,
    /// The NIC the agent last put the address on: if that NIC vanishes (a hot-unplugged
    /// NIC takes its addresses with it), the watch places the address anew.
    placed: Option<String>,
}

/// Where the address is on the NICs of the list, as read now.
#[derive(Debug)]
struct View {
    /// The NICs of the list that exist, in list order.
    nics: Vec<Link>,
    /// Names of list NICs that do not exist.
    missing: Vec<String>,
    /// The NIC of the list that holds the address, if any.
    holder: Option<Link>,
}

impl View {
    /// The first NIC of the list with carrier.
    fn first_with_carrier(&self) -> Option<&Link> {
        self.nics.iter().find(|l| l.has_carrier())
    }

    /// Each NIC and its state, for reasons: `"eth0 (no carrier), eth1 (missing)"`.
    fn describe(&self, cfg: &Config) -> String {
        cfg.nics
            .iter()
            .map(|n| match self.nics.iter().find(|l| &l.name == n) {
                Some(l) if l.has_carrier() => format!("{n} (carrier)"),
                Some(_) => format!("{n} (no carrier)"),
                None => format!("{n} (missing)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Config {
    fn cidr(&self) -> String {
        format!("{}/{}", self.addr, self.prefix_len)
    }

    fn family(&self) -> i32 {
        match self.addr {
            IpAddr::V4(_) => libc::AF_INET,
            IpAddr::V6(_) => libc::AF_INET6,
        }
    }

    /// Reads the links and addresses now.
    fn view(&self, nl: &Netlink) -> Result<View, String> {
        let links = nl
            .links()
            .map_err(|e| format!("netlink: listing links: {e}"))?;
        let addrs = nl
            .addrs(self.family())
            .map_err(|e| format!("netlink: listing addresses: {e}"))?;
        let mut nics = Vec::new();
        let mut missing = Vec::new();
        for n in &self.nics {
            match links.iter().find(|l| &l.name == n) {
                Some(l) => nics.push(l.clone()),
                None => missing.push(n.clone()),
            }
        }
        let holder = nics
            .iter()
            .find(|l| {
                addrs
                    .iter()
                    .any(|a| a.index == l.index && a.addr == self.addr)
            })
            .cloned();
        Ok(View {
            nics,
            missing,
            holder,
        })
    }

    fn label_for(&self, nic: &str) -> Option<String> {
        match (self.addr, &self.label) {
            (IpAddr::V4(_), Some(l)) => Some(format!("{nic}:{l}")),
            _ => None,
        }
    }

    /// Puts the address on `to` (removing it from `from` first, if given). Call with the
    /// state lock held.
    fn put(&self, nl: &Netlink, from: Option<&Link>, to: &Link) -> Result<(), String> {
        if let Some(f) = from {
            match nl.del_addr(f.index, self.addr, self.prefix_len) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot remove {} from {}: {e}",
                        self.cidr(),
                        f.name
                    ))
                }
            }
        }
        if self.addr.is_ipv4() {
            promote_secondaries(&to.name)?;
        }
        let label = self.label_for(&to.name);
        match nl.add_addr(to.index, self.addr, self.prefix_len, label.as_deref()) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(format!("cannot add {} to {}: {e}", self.cidr(), to.name)),
        }
    }

    /// Sends the first announcement now and the rest of the burst in the background
    /// (replacing a burst still running). With `arp_count = 0`, or on a NIC without an
    /// Ethernet address, sends nothing.
    fn announce(&self, st: &mut State, link: &Link) -> Result<(), String> {
        st.burst = None;
        let Some(mac) = link.mac else {
            tracing::info!(resource = %self.name, nic = %link.name,
                "no Ethernet address on this NIC: nothing to announce");
            return Ok(());
        };
        if self.arp_count == 0 {
            return Ok(());
        }
        let a = Announcer::new(self.addr, link.index, &link.name, mac)
            .map_err(|e| format!("cannot open a socket to announce on {}: {e}", link.name))?;
        a.send()
            .map_err(|e| format!("cannot announce {} on {}: {e}", self.addr, link.name))?;
        let rest = self.arp_count - 1;
        if rest == 0 {
            return Ok(());
        }
        let (name, nic, interval) = (self.name.clone(), link.name.clone(), self.arp_interval);
        let task = tokio::spawn(async move {
            for _ in 0..rest {
                tokio::time::sleep(interval).await;
                if let Err(e) = a.send() {
                    tracing::warn!(resource = %name, nic = %nic, error = %e,
                        "announcement not sent");
                }
            }
        });
        st.burst = Some(AbortOnDrop(task));
        Ok(())
    }

    fn report_failed(&self, reason: String) {
        tracing::error!(resource = %self.name, address = %self.cidr(), reason = %reason,
            "no NIC of the list has carrier");
        let ev = AgentEvent::Failed {
            group: self.group,
            resource: self.resource,
            reason,
        };
        let events = self.events.clone();
        tokio::spawn(async move {
            let _ = events.send(ev).await;
        });
    }

    /// One pass of the carrier watch: moves the address off a NIC without carrier.
    fn react(&self, state: &Mutex<State>, nl: &Netlink) {
        let mut st = lock(state);
        if !st.active {
            return;
        }
        let view = match self.view(nl) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(resource = %self.name, error = %e, "carrier watch cannot read links");
                return;
            }
        };
        let holder = match (&view.holder, &st.placed) {
            (Some(h), _) if h.has_carrier() => {
                st.reported = false;
                return;
            }
            (Some(h), _) => Some(h.clone()),
            // Its NIC vanished with the address: place it anew.
            (None, Some(p)) if !view.nics.iter().any(|l| &l.name == p) => None,
            // Removed by someone else from a NIC that is still there: not ours to re-add, a
            // vanished address is the monitor's news.
            (None, _) => return,
        };
        let from = holder
            .as_ref()
            .map_or_else(|| st.placed.clone().unwrap_or_default(), |h| h.name.clone());
        let Some(to) = view.first_with_carrier().cloned() else {
            if !st.reported {
                st.reported = true;
                self.report_failed(format!(
                    "{} on {from}: no NIC of the list has carrier: {}",
                    self.cidr(),
                    view.describe(self)
                ));
            }
            return;
        };
        st.reported = false;
        match self.put(nl, holder.as_ref(), &to) {
            Ok(()) => {
                st.placed = Some(to.name.clone());
                tracing::warn!(resource = %self.name, address = %self.cidr(),
                    from = %from, to = %to.name, "local NIC failover: carrier lost");
                if let Err(e) = self.announce(&mut st, &to) {
                    tracing::warn!(resource = %self.name, error = %e, "announcement failed");
                }
            }
            Err(e) => {
                st.reported = true;
                self.report_failed(format!("local NIC failover failed: {e}"));
            }
        }
    }
}

/// Lets the kernel promote a secondary address instead of deleting it with the primary.
fn promote_secondaries(nic: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{nic}/promote_secondaries");
    if std::fs::read_to_string(&path)
        .map(|v| v.trim() == "1")
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(&path, "1").map_err(|e| {
        format!(
            "cannot enable promote_secondaries ({path}: {e}); without it removing {nic}'s \
             primary address would delete the floating address too"
        )
    })
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ip {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        let p = parse(spec)?;
        Ok(Ip {
            cfg: Arc::new(Config {
                name: spec.name.clone(),
                group: ctx.group,
                resource: ctx.resource,
                events: ctx.events.clone(),
                addr: p.addr,
                prefix_len: p.prefix_len,
                nics: p.nics,
                arp_count: p.arp_count,
                arp_interval: Duration::from_millis(p.arp_interval_ms),
                label: p.label,
            }),
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// The floating address and its prefix length.
    pub fn address(&self) -> (IpAddr, u8) {
        (self.cfg.addr, self.cfg.prefix_len)
    }

    /// The NICs, in order of preference.
    pub fn nics(&self) -> &[String] {
        &self.cfg.nics
    }

    /// Starts the carrier watch unless it runs. Its sockets are opened here, on the calling
    /// thread (see the module docs on namespaces).
    fn ensure_watch(&self, st: &mut State) -> Result<(), String> {
        st.active = true;
        if st.watch.is_some() {
            return Ok(());
        }
        let events =
            LinkEvents::open().map_err(|e| format!("cannot subscribe to link changes: {e}"))?;
        let nl = Netlink::open().map_err(|e| format!("cannot open netlink: {e}"))?;
        let (cfg, state) = (self.cfg.clone(), self.state.clone());
        let task = tokio::spawn(async move {
            // Whatever changed between the caller's look and the subscription is seen here.
            cfg.react(&state, &nl);
            loop {
                if let Err(e) = events.next().await {
                    tracing::warn!(resource = %cfg.name, error = %e,
                        "carrier watch: reading link changes failed");
                    tokio::time::sleep(WATCH_ERROR_PAUSE).await;
                }
                cfg.react(&state, &nl);
            }
        });
        st.watch = Some(AbortOnDrop(task));
        Ok(())
    }

    fn start_now(&self) -> Result<String, String> {
        let cfg = &self.cfg;
        let nl = Netlink::open().map_err(|e| format!("cannot open netlink: {e}"))?;
        let mut st = lock(&self.state);
        let view = cfg.view(&nl)?;
        let target = match &view.holder {
            Some(h) if h.has_carrier() => h.clone(),
            _ => view
                .first_with_carrier()
                .cloned()
                .ok_or_else(|| format!("no NIC of the list has carrier: {}", view.describe(cfg)))?,
        };
        if cfg.addr.is_ipv4() {
            for l in &view.nics {
                promote_secondaries(&l.name)?;
            }
        }
        // Subscribe before changing anything, so no carrier change is missed.
        self.ensure_watch(&mut st)?;
        let already = view.holder.as_ref().map(|h| h.index) == Some(target.index);
        if !already {
            if let Err(e) = cfg.put(&nl, view.holder.as_ref(), &target) {
                st.active = false;
                st.watch = None;
                return Err(e);
            }
        }
        st.reported = false;
        st.placed = Some(target.name.clone());
        cfg.announce(&mut st, &target)?;
        tracing::info!(resource = %cfg.name, address = %cfg.cidr(), nic = %target.name,
            already, "floating address active");
        Ok(if already {
            format!("{} already on {}", cfg.cidr(), target.name)
        } else {
            format!("{} added to {}", cfg.cidr(), target.name)
        })
    }

    fn stop_now(&self) -> Result<String, String> {
        let cfg = &self.cfg;
        let mut st = lock(&self.state);
        st.active = false;
        st.watch = None;
        st.burst = None;
        st.reported = false;
        st.placed = None;
        let nl = Netlink::open().map_err(|e| format!("cannot open netlink: {e}"))?;
        let removed = remove_addr(&nl, cfg.addr, cfg.prefix_len, &cfg.nics)?;
        if removed.is_empty() {
            return Ok(format!("{} not present", cfg.cidr()));
        }
        tracing::info!(resource = %cfg.name, address = %cfg.cidr(), nics = %removed.join(","),
            "floating address removed");
        Ok(format!(
            "{} removed from {}",
            cfg.cidr(),
            removed.join(", ")
        ))
    }

    fn look(&self) -> Result<View, String> {
        let nl = Netlink::open().map_err(|e| format!("cannot open netlink: {e}"))?;
        self.cfg.view(&nl)
    }
}

/// Removes `addr/prefix_len` from whichever of the interfaces `nics` hold it; the names of
/// those it was removed from.
fn remove_addr(
    nl: &Netlink,
    addr: IpAddr,
    prefix_len: u8,
    nics: &[String],
) -> Result<Vec<String>, String> {
    let family = match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    let links = nl
        .links()
        .map_err(|e| format!("netlink: listing links: {e}"))?;
    let addrs = nl
        .addrs(family)
        .map_err(|e| format!("netlink: listing addresses: {e}"))?;
    let mut removed = Vec::new();
    for l in links.iter().filter(|l| nics.contains(&l.name)) {
        if !addrs.iter().any(|a| a.index == l.index && a.addr == addr) {
            continue;
        }
        match nl.del_addr(l.index, addr, prefix_len) {
            Ok(()) => removed.push(l.name.clone()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => {
                return Err(format!(
                    "cannot remove {addr}/{prefix_len} from {}: {e}",
                    l.name
                ))
            }
        }
    }
    Ok(removed)
}

/// The monitor's hard stop of a floating address (see [`super::hard_stop`]): removed from
/// whichever of `nics` holds it, without the agent. Blocking; netlink of the calling thread's
/// namespace.
pub fn remove_everywhere(addr: IpAddr, prefix_len: u8, nics: &[String]) -> Result<(), String> {
    let nl = Netlink::open().map_err(|e| format!("cannot open netlink: {e}"))?;
    remove_addr(&nl, addr, prefix_len, nics).map(|_| ())
}

#[async_trait]
impl Agent for Ip {
    fn hard_stop(&self) -> Option<HardStop> {
        Some(HardStop::DelAddr {
            resource: self.cfg.name.clone(),
            addr: self.cfg.addr,
            prefix_len: self.cfg.prefix_len,
            nics: self.cfg.nics.clone(),
        })
    }

    async fn validate(&self) -> Result<(), AgentError> {
        let view = self
            .look()
            .map_err(|e| param_err(&self.cfg.name, "nics", e))?;
        if !view.missing.is_empty() {
            return Err(param_err(
                &self.cfg.name,
                "nics",
                format!(
                    "no interface named {} on this node; list the NICs `ip link` shows",
                    view.missing.join(", ")
                ),
            ));
        }
        Ok(())
    }

    async fn start(&self, _epoch: u64) -> Report {
        match self.start_now() {
            Ok(r) => Report::ok(r),
            Err(e) => Report::failed(e),
        }
    }

    async fn stop(&self) -> Report {
        match self.stop_now() {
            Ok(r) => Report::ok(r),
            Err(e) => Report::failed(e),
        }
    }

    async fn monitor(&self, _depth: Depth) -> Report {
        let cfg = &self.cfg;
        match self.look() {
            Err(e) => Report::failed(e),
            Ok(v) => match &v.holder {
                None => Report::not_running(format!("{} is on no NIC of the list", cfg.cidr())),
                Some(h) if h.has_carrier() => {
                    Report::ok(format!("{} on {} (carrier)", cfg.cidr(), h.name))
                }
                Some(h) => Report::failed(format!(
                    "{} on {} without carrier; NICs: {}",
                    cfg.cidr(),
                    h.name,
                    v.describe(cfg)
                )),
            },
        }
    }

    async fn probe(&self) -> Report {
        let cfg = &self.cfg;
        let view = match self.look() {
            Ok(v) => v,
            Err(e) => return Report::failed(e),
        };
        let Some(h) = view.holder else {
            return Report::not_running(format!("{} is on no NIC of the list", cfg.cidr()));
        };
        // Found active: adopt it (watch its carrier from now on).
        let mut st = lock(&self.state);
        st.placed = Some(h.name.clone());
        if let Err(e) = self.ensure_watch(&mut st) {
            return Report::failed(format!("{} on {} but {e}", cfg.cidr(), h.name));
        }
        Report::ok(format!("{} on {}", cfg.cidr(), h.name))
    }
}

/// Parameters, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    addr: IpAddr,
    prefix_len: u8,
    nics: Vec<String>,
    arp_count: u32,
    arp_interval_ms: u64,
    label: Option<String>,
}

/// Whether `n` can be an interface name (what the kernel's `dev_valid_name` accepts).
fn is_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= IFNAME_MAX
        && n != "."
        && n != ".."
        && !n.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Parses `"addr/len"`.
fn parse_cidr(v: &str) -> Result<(IpAddr, u8), String> {
    let Some((a, l)) = v.trim().split_once('/') else {
        return Err(format!(
            "{v:?} has no prefix length; write it like \"192.0.2.10/24\" or \"2001:db8::10/64\""
        ));
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = l
        .parse()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("prefix length {l:?} is not a number from 0 to {max}"))?;
    if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
        return Err(format!(
            "{addr} is an unspecified, loopback or multicast address; give a unicast one"
        ));
    }
    if let IpAddr::V4(a4) = addr {
        if a4.is_broadcast() {
            return Err(format!("{addr} is the broadcast address"));
        }
    }
    if let IpAddr::V6(a6) = addr {
        if a6.is_unicast_link_local() {
            return Err(format!(
                "{addr} is link-local; a floating address must be routable"
            ));
        }
    }
    Ok((addr, len))
}

fn parse(spec: &ResourceSpec) -> Result<Params, AgentError> {
    let name = spec.name.as_str();
    let err = |param: &str, problem: String| param_err(name, param, problem);
    known_params(spec, "an ip", PARAMS)?;
    let (addr, prefix_len) = match lookup(spec, "address") {
        None => {
            return Err(err(
                "address",
                "is missing; give the floating address with its prefix, e.g. \
                 address = \"192.0.2.10/24\""
                    .to_string(),
            ))
        }
        Some(v) => parse_cidr(v).map_err(|e| err("address", e))?,
    };
    let nics_raw = lookup(spec, "nics").unwrap_or("");
    let mut nics: Vec<String> = Vec::new();
    for n in nics_raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !is_ifname(n) {
            return Err(err(
                "nics",
                format!("{n:?} is not an interface name (1–15 bytes, no '/', ':' or spaces)"),
            ));
        }
        if nics.iter().any(|m| m == n) {
            return Err(err("nics", format!("{n:?} is listed twice")));
        }
        nics.push(n.to_string());
    }
    if nics.is_empty() {
        return Err(err(
            "nics",
            "is missing or empty; list the NICs that may carry the address, in order, e.g. \
             nics = \"eth0, eth1\""
                .to_string(),
        ));
    }
    let number = |param: &str, default: u64, min: u64, max: u64| -> Result<u64, AgentError> {
        match lookup(spec, param) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| err(param, format!("{v:?} is not a number from {min} to {max}"))),
        }
    };
    let arp_count = number(
        "arp_count",
        u64::from(ARP_COUNT_DEFAULT),
        0,
        u64::from(ARP_COUNT_MAX),
    )? as u32;
    let arp_interval_ms = number(
        "arp_interval_ms",
        ARP_INTERVAL_MS_DEFAULT,
        1,
        ARP_INTERVAL_MS_MAX,
    )?;
    let label = match lookup(spec, "label").map(str::trim) {
        None => None,
        Some(_) if addr.is_ipv6() => {
            return Err(err(
                "label",
                "IPv6 addresses have no labels; remove label".to_string(),
            ))
        }
        Some(l) => {
            if l.is_empty()
                || !l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(err(
                    "label",
                    format!("{l:?} is not a label (letters, digits, '_', '-', '.')"),
                ));
            }
            if let Some(n) = nics.iter().find(|n| n.len() + 1 + l.len() > IFNAME_MAX) {
                return Err(err(
                    "label",
                    format!("\"{n}:{l}\" is longer than {IFNAME_MAX} bytes; give a shorter label"),
                ));
            }
            Some(l.to_string())
        }
    };
    Ok(Params {
        addr,
        prefix_len,
        nics,
        arp_count,
        arp_interval_ms,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(params: &[(&str, &str)]) -> ResourceSpec {
        crate::policy::testutil::agent_resource("vip", "ip", params)
    }

    fn param_of(r: Result<Params, AgentError>) -> String {
        match r {
            Err(AgentError::Param {
                resource, param, ..
            }) => {
                assert_eq!(resource, "vip");
                param
            }
            other => panic!("not a parameter error: {other:?}"),
        }
    }

    #[test]
    fn parameters_parse_with_defaults() {
        let p = parse(&spec(&[
            ("address", "192.0.2.10/24"),
            ("nics", " eth0 ,eth1,"),
        ]))
        .unwrap();
        assert_eq!(p.addr, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!(p.prefix_len, 24);
        assert_eq!(p.nics, vec!["eth0", "eth1"]);
        assert_eq!(p.arp_count, ARP_COUNT_DEFAULT);
        assert_eq!(p.arp_interval_ms, ARP_INTERVAL_MS_DEFAULT);
        assert_eq!(p.label, None);
        let p = parse(&spec(&[
            ("address", "2001:db8::10/64"),
            ("nics", "bond0"),
            ("arp_count", "0"),
            ("arp_interval_ms", "50"),
        ]))
        .unwrap();
        assert!(p.addr.is_ipv6());
        assert_eq!((p.arp_count, p.arp_interval_ms), (0, 50));
        let p = parse(&spec(&[
            ("address", "192.0.2.10/32"),
            ("nics", "eth0"),
            ("label", "vip"),
        ]))
        .unwrap();
        assert_eq!(p.label.as_deref(), Some("vip"));
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let nic = ("nics", "eth0");
        for (params, want) in [
            (vec![nic], "address"),
            (vec![("address", "192.0.2.10"), nic], "address"),
            (vec![("address", "192.0.2.10/33"), nic], "address"),
            (vec![("address", "2001:db8::1/129"), nic], "address"),
            (vec![("address", "192.0.2.300/24"), nic], "address"),
            (vec![("address", "127.0.0.2/8"), nic], "address"),
            (vec![("address", "224.0.0.1/4"), nic], "address"),
            (vec![("address", "fe80::1/64"), nic], "address"),
            (vec![("address", "192.0.2.10/24")], "nics"),
            (vec![("address", "192.0.2.10/24"), ("nics", " , ")], "nics"),
            (
                vec![("address", "192.0.2.10/24"), ("nics", "eth0,eth0")],
                "nics",
            ),
            (
                vec![("address", "192.0.2.10/24"), ("nics", "eth0:1")],
                "nics",
            ),
            (
                vec![
                    ("address", "192.0.2.10/24"),
                    ("nics", "averyveryverylongname"),
                ],
                "nics",
            ),
            (
                vec![("address", "192.0.2.10/24"), nic, ("arp_count", "101")],
                "arp_count",
            ),
            (
                vec![("address", "192.0.2.10/24"), nic, ("arp_count", "-1")],
                "arp_count",
            ),
            (
                vec![("address", "192.0.2.10/24"), nic, ("arp_interval_ms", "0")],
                "arp_interval_ms",
            ),
            (
                vec![("address", "2001:db8::1/64"), nic, ("label", "x")],
                "label",
            ),
            (
                vec![("address", "192.0.2.10/24"), nic, ("label", "a b")],
                "label",
            ),
            (
                vec![
                    ("address", "192.0.2.10/24"),
                    nic,
                    ("label", "waytoolonglabel"),
                ],
                "label",
            ),
            (vec![("address", "192.0.2.10/24"), nic, ("nic", "x")], "nic"),
        ] {
            assert_eq!(param_of(parse(&spec(&params))), want, "{params:?}");
        }
    }
}
