//! Every rule a `cluster.toml` must satisfy beyond its types. All violations are collected:
//! a user fixes a file in one pass, not one error per run.
//!
//! - Sizes first ([`limits`]): nodes with the witness, paths, groups, resources per group and
//!   in all, schedules, notifications. A config over a count gets only those errors.
//! - Numbers: every one within its range of [`limits::RANGES`], named with the range.
//! - Names: not empty, plain characters; unique among nodes (and the witness), paths, groups,
//!   and resources across the whole cluster.
//! - Partition safety: two nodes need a witness, fencing, or
//!   `no_automatic_failover_across_partition = true` (design.md §5, rule 5).
//! - Fencing: the agent, its timeout, its parameters and per-node maps ([`fencing`]).
//! - Timing: `lease_renew_ms < lease_ms / 2`;
//!   `stop_budget_ms < lease_ms`; `heartbeat_ticks < election_ticks`; the lease fits in the
//!   leader's authority window ([`crate::policy::spec::TimingSpec::vote_guard_us`]) and is
//!   shorter than failure detection (`interval_ms × misses`) of every network path; the
//!   election timeout (`raft_tick_ms × election_ticks`) is at most a minute and failure
//!   detection of every path at most ten; every health-check timeout is below its interval.
//! - Paths: at least one network path; one disk path at most, with an absolute device and a
//!   slot size that is a multiple of 512 and holds a slot record of every member.
//! - Nodes and witness: one `host:port` address on every network path, none elsewhere; a
//!   port from 1, a reachable unicast host, no host shared by two members ([`address`]).
//! - Groups: a non-empty preferred node list of known nodes, each once, never the witness;
//!   `copies` only for clones and not above the listed nodes; `failback_window` only with
//!   `failback = "auto"` and well formed; `anti_affinity` names other, known groups.
//! - Resources: a known type; `ip` has an `address` with a prefix in range that a host can
//!   hold, not a whole network nor a member's own, and that no other resource floats;
//!   no `ip` or `disk_lock` in a clone group; `depends_on` names resources of the same group
//!   (else the error says which group the other one is in) without a cycle (named in full).
//! - Agents: every resource's agent builds with its parameters on each node of its group
//!   ([`agents`]); a type without an agent yet is refused with what to use instead.
//! - Schedules: a known group, a `to` among the group's nodes, a valid cron expression.
//! - Notifications: `command` for scripts, `url` for webhooks, known event names.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::limits::{self, MAX_DETECTION_MS, MAX_ELECTION_MS};

/// The least `max_clock_drift` accepted: 500 ppm, the most the kernel's clock discipline
/// (adjtimex) slews a clock by. A lease shortened by less could outlast what its grantor
/// counts on; 0 would claim two machines' clocks run at exactly one rate.
const MIN_CLOCK_DRIFT: f64 = 0.0005;
use super::locate::Loc;
use super::resolve;
use super::schema::*;
use super::Issue;
use crate::policy::schedule::{CronExpr, DailyWindow};

mod address;
mod agents;
mod fencing;
use fencing::check_fencing;

/// Collects issues.
#[derive(Default)]
struct Report {
    issues: Vec<Issue>,
}

impl Report {
    fn push(&mut self, loc: Loc, message: impl Into<String>, fix: impl Into<String>) {
        self.issues.push(Issue {
            loc,
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Refuses a number outside its range ([`limits::RANGES`], found by the field's path).
    fn within(&mut self, loc: Loc, value: u64) {
        let Some(range) = limits::range_at(&loc) else {
            debug_assert!(false, "no range for {loc:?}");
            return;
        };
        if range.contains(value) {
            return;
        }
        // A map entry is named with its map: `delay_ms.n1`.
        let keys = loc.keys();
        let field = match keys.as_slice() {
            [.., map, key] if map.ends_with("_ms") => format!("{map}.{key}"),
            [.., last] => last.to_string(),
            [] => String::new(),
        };
        let unit = unit_of(&field);
        self.push(
            loc,
            format!("{field} = {value} is outside {}", range.describe()),
            format!("give a value from {}", range.describe_in(unit)),
        );
    }

    /// Refuses 0 for a duration or count that must be positive.
    fn positive(&mut self, loc: Loc, field: &str, value: u64) {
        if value == 0 {
            self.push(
                loc.key(field),
                format!("{field} is 0"),
                "give a value greater than 0",
            );
        }
    }

    /// Names appear in certificates, logs and paths: keep them plain.
    fn name(&mut self, loc: Loc, what: &str, name: &str) {
        if name.is_empty() {
            self.push(
                loc.key("name"),
                format!("the {what} has an empty name"),
                "give it a name",
            );
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.push(
                loc.key("name"),
                format!("{what} name \"{name}\" has characters other than letters, digits, '-', '_' and '.'"),
                "rename it with letters, digits, '-', '_' or '.'",
            );
        }
    }
}

/// The unit a field's name ends in, for fixes: ` ms`, ` ticks`, ` bytes` or nothing.
fn unit_of(field: &str) -> &'static str {
    let last = field.rsplit(['.', '_']).next().unwrap_or("");
    match last {
        "ms" => " ms",
        "ticks" => " ticks",
        "bytes" => " bytes",
        _ => "",
    }
}

/// Resource types that must never be active on two nodes, so never in a clone group.
const EXCLUSIVE_ONLY: &[&str] = &["ip", "disk_lock"];

/// The most names a fix lists; the rest are counted.
const LIST_MAX: usize = 16;

/// `(a, b, c)`, for fixes that list the valid choices; past [`LIST_MAX`] names the rest are
/// counted, so a fix stays a line however large the config.
fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    let mut seen = HashSet::new();
    names.retain(|n| seen.insert(*n));
    if names.is_empty() {
        "none defined".to_string()
    } else if names.len() > LIST_MAX {
        let more = names.len() - LIST_MAX;
        format!("{}, and {more} more", names[..LIST_MAX].join(", "))
    } else {
        names.join(", ")
    }
}

/// Checks a whole config; an empty result means it is valid and [`resolve::resolve`] may run.
pub(crate) fn validate(c: &ClusterConfig) -> Vec<Issue> {
    let mut r = Report::default();
    check_sizes(c, &mut r);
    if !r.issues.is_empty() {
        // Past a size limit the rest would be noise (and work that grows with the input).
        return r.issues;
    }
    check_cluster(c, &mut r);
    check_timing(c, &mut r);
    check_monitor_defaults(&c.monitor, &mut r);
    check_paths(c, &mut r);
    check_nodes(c, &mut r);
    let member_ips = address::check_shared(c, &mut r);
    check_groups(c, &mut r);
    check_resources(c, &member_ips, &mut r);
    agents::check_agents(c, &mut r);
    check_schedules(c, &mut r);
    check_notifications(c, &mut r);
    r.issues
}

/// The counts of [`limits`]: every id type has room for them.
fn check_sizes(c: &ClusterConfig, r: &mut Report) {
    let members = c.nodes.len() + usize::from(c.witness.is_some());
    let mut over = |key: &str, count: usize, max: usize, what: &str, fix: &str| {
        if count > max {
            r.push(
                Loc::root().key(key).at(max.min(count.saturating_sub(1))),
                format!("{count} {what}; at most {max} are supported"),
                fix.to_string(),
            );
        }
    };
    over(
        "node",
        members,
        limits::MAX_NODES,
        "nodes (the witness included)",
        "split the machines into several clusters: one cluster's consensus and heartbeats \
         are sized for this many",
    );
    over(
        "path",
        c.paths.len(),
        limits::MAX_PATHS,
        "heartbeat paths",
        "one path per private NIC and one disk path is plenty: remove paths",
    );
    over(
        "group",
        c.groups.len(),
        limits::MAX_GROUPS,
        "groups",
        "put resources that fail over together into one group, or split the cluster",
    );
    over(
        "schedule",
        c.schedules.len(),
        limits::MAX_SCHEDULES,
        "schedules",
        "use cron lists and ranges (\"0 2,14 * * mon-fri\") instead of one schedule per time",
    );
    over(
        "notification",
        c.notifications.len(),
        limits::MAX_NOTIFICATIONS,
        "notifications",
        "send events to one script or webhook that fans them out",
    );
    let mut total = 0usize;
    for (gi, g) in c.groups.iter().enumerate() {
        total += g.resources.len();
        if g.resources.len() > limits::MAX_RESOURCES_PER_GROUP {
            r.push(
                Loc::root()
                    .key("group")
                    .at(gi)
                    .key("resource")
                    .at(limits::MAX_RESOURCES_PER_GROUP),
                format!(
                    "group \"{}\" has {} resources; at most {} per group are supported",
                    g.name,
                    g.resources.len(),
                    limits::MAX_RESOURCES_PER_GROUP
                ),
                "split the group: resources that need not fail over together belong in \
                 groups of their own",
            );
        }
    }
    if total > limits::MAX_RESOURCES {
        r.push(
            Loc::root().key("group"),
            format!(
                "{total} resources in all; at most {} are supported",
                limits::MAX_RESOURCES
            ),
            "split the cluster",
        );
    }
}

fn check_cluster(c: &ClusterConfig, r: &mut Report) {
    let loc = Loc::root().key("cluster");
    r.name(loc.clone(), "cluster", &c.cluster.name);
    let two_nodes = c.nodes.len() == 2;
    if two_nodes
        && c.witness.is_none()
        && c.fencing.is_none()
        && !c.cluster.no_automatic_failover_across_partition
    {
        r.push(
            loc,
            "a two-node cluster with neither witness nor fencing: two votes make no majority, \
             so a partition cannot be told from a dead node",
            "add a [witness] (any small third machine) or a [fencing] device, or set \
             no_automatic_failover_across_partition = true under [cluster] to accept that no \
             group fails over across a partition",
        );
    }
    if let Some(f) = &c.fencing {
        check_fencing(c, f, r);
    }
}

fn check_timing(c: &ClusterConfig, r: &mut Report) {
    let t = &c.timing;
    let loc = Loc::root().key("timing");
    for (field, value) in [
        ("lease_ms", t.lease_ms),
        ("lease_renew_ms", t.lease_renew_ms),
        ("takeover_margin_ms", t.takeover_margin_ms),
        ("stop_budget_ms", t.stop_budget_ms),
        ("raft_tick_ms", t.raft_tick_ms),
        ("election_ticks", t.election_ticks),
        ("heartbeat_ticks", t.heartbeat_ticks),
    ] {
        r.within(loc.key(field), u64::from(value));
    }
    let election_ms = u64::from(t.raft_tick_ms) * u64::from(t.election_ticks);
    let in_range = |field: &str, v: u32| {
        limits::range_at(&loc.key(field)).is_some_and(|r| r.contains(u64::from(v)))
    };
    // Only between values in range: else the range errors say it already.
    if election_ms > MAX_ELECTION_MS
        && in_range("raft_tick_ms", t.raft_tick_ms)
        && in_range("election_ticks", t.election_ticks)
    {
        r.push(
            loc.key("election_ticks"),
            format!(
                "the election timeout raft_tick_ms × election_ticks = {} × {} = {election_ms} ms \
                 is above {MAX_ELECTION_MS} ms",
                t.raft_tick_ms, t.election_ticks
            ),
            "lower raft_tick_ms or election_ticks: a dead leader is replaced only after this \
             long (20 × 10 is the default)",
        );
    }
    if !(MIN_CLOCK_DRIFT..=0.1).contains(&t.max_clock_drift) {
        r.push(
            loc.key("max_clock_drift"),
            format!(
                "max_clock_drift = {} is outside {MIN_CLOCK_DRIFT} to 0.1",
                t.max_clock_drift
            ),
            "give the bound as a fraction, e.g. 0.01 for 1 %: no clock keeps time exactly, and \
             the kernel's clock discipline alone may slew one by 0.0005 (500 ppm)",
        );
    }
    if t.lease_ms == 0 {
        return; // The relations below all involve the lease.
    }
    if t.lease_renew_ms > 0 && u64::from(t.lease_renew_ms) * 2 >= u64::from(t.lease_ms) {
        r.push(
            loc.key("lease_renew_ms"),
            format!(
                "lease_renew_ms = {} is not below half of lease_ms = {}",
                t.lease_renew_ms, t.lease_ms
            ),
            format!(
                "renew more often (below {} ms) so one lost renewal does not drop the lease",
                t.lease_ms.div_ceil(2)
            ),
        );
    }
    if t.stop_budget_ms >= t.lease_ms {
        r.push(
            loc.key("stop_budget_ms"),
            format!(
                "stop_budget_ms = {} is not below lease_ms = {}",
                t.stop_budget_ms, t.lease_ms
            ),
            "lower stop_budget_ms: a node starts stopping this long before its lease ends, so it \
             must fit inside the lease",
        );
    }
    if t.heartbeat_ticks >= t.election_ticks && t.election_ticks > 0 {
        r.push(
            loc.key("heartbeat_ticks"),
            format!(
                "heartbeat_ticks = {} is not below election_ticks = {}",
                t.heartbeat_ticks, t.election_ticks
            ),
            "lower heartbeat_ticks (2 is usual): followers must hear the leader several times \
             per election timeout",
        );
    }
    if t.raft_tick_ms > 0 && t.election_ticks > 0 && (0.0..=0.1).contains(&t.max_clock_drift) {
        let guard_us = resolve::timing_spec(t).vote_guard_us();
        if u64::from(t.lease_ms) * 1000 > guard_us {
            r.push(
                loc.key("lease_ms"),
                format!(
                    "lease_ms = {} outlasts the leader's authority window of {} ms \
                     ((election_ticks - 1) × raft_tick_ms, shrunk by max_clock_drift)",
                    t.lease_ms,
                    guard_us / 1000
                ),
                format!(
                    "lower lease_ms to at most {} or raise election_ticks or raft_tick_ms: a \
                     lease must end inside the leader's authority window, else a new leader \
                     could place a group while an old lease still runs",
                    guard_us / 1000
                ),
            );
        }
    }
    for p in c.paths.iter().filter(|p| p.kind == PathKindConfig::Network) {
        let detect_ms = u64::from(p.interval_ms()) * u64::from(p.misses());
        if detect_ms > 0 && u64::from(t.lease_ms) >= detect_ms {
            r.push(
                loc.key("lease_ms"),
                format!(
                    "lease_ms = {} is not shorter than failure detection on path \"{}\" \
                     ({} ms × {} misses = {} ms)",
                    t.lease_ms,
                    p.name,
                    p.interval_ms(),
                    p.misses(),
                    detect_ms
                ),
                format!(
                    "lower lease_ms below {detect_ms} or raise interval_ms or misses of path \"{}\"",
                    p.name
                ),
            );
        }
    }
}

/// Interval and timeout of one health check.
fn check_monitor(
    r: &mut Report,
    loc: Loc,
    interval_field: &str,
    interval: u32,
    timeout_field: &str,
    timeout: u32,
) {
    r.within(loc.key(interval_field), u64::from(interval));
    r.within(loc.key(timeout_field), u64::from(timeout));
    if interval > 0 && timeout > 0 && timeout >= interval {
        r.push(
            loc.key(timeout_field),
            format!("{timeout_field} = {timeout} is not below {interval_field} = {interval}"),
            "a check must end before the next one is due: lower the timeout or raise the interval",
        );
    }
}

fn check_monitor_defaults(m: &MonitorDefaults, r: &mut Report) {
    let loc = Loc::root().key("monitor");
    check_monitor(
        r,
        loc.clone(),
        "quick_interval_ms",
        m.quick_interval_ms,
        "quick_timeout_ms",
        m.quick_timeout_ms,
    );
    check_monitor(
        r,
        loc.clone(),
        "deep_interval_ms",
        m.deep_interval_ms,
        "deep_timeout_ms",
        m.deep_timeout_ms,
    );
    r.within(loc.key("start_timeout_ms"), u64::from(m.start_timeout_ms));
    r.within(loc.key("stop_timeout_ms"), u64::from(m.stop_timeout_ms));
}

fn check_paths(c: &ClusterConfig, r: &mut Report) {
    if !c.paths.iter().any(|p| p.kind == PathKindConfig::Network) {
        r.push(
            Loc::root().key("path"),
            "no network heartbeat path",
            "add a [[path]] with kind = \"network\" (one per private NIC; two are better than one)",
        );
    }
    let mut seen = HashSet::new();
    let mut disks = 0;
    for (i, p) in c.paths.iter().enumerate() {
        let loc = Loc::root().key("path").at(i);
        r.name(loc.clone(), "path", &p.name);
        if !seen.insert(p.name.as_str()) {
            r.push(
                loc.key("name"),
                format!("path name \"{}\" is used twice", p.name),
                "give each path its own name",
            );
        }
        r.within(loc.key("interval_ms"), u64::from(p.interval_ms()));
        r.within(loc.key("misses"), u64::from(p.misses()));
        let detect_ms = u64::from(p.interval_ms()) * u64::from(p.misses());
        let in_range = |field: &str, v: u32| {
            limits::range_at(&loc.key(field)).is_some_and(|r| r.contains(u64::from(v)))
        };
        if detect_ms > MAX_DETECTION_MS
            && in_range("interval_ms", p.interval_ms())
            && in_range("misses", p.misses())
        {
            r.push(
                loc.key("misses"),
                format!(
                    "failure detection interval_ms × misses = {} × {} = {detect_ms} ms is above \
                     {MAX_DETECTION_MS} ms",
                    p.interval_ms(),
                    p.misses()
                ),
                "lower interval_ms or misses: a dead node must be noticed within minutes",
            );
        }
        match p.kind {
            PathKindConfig::Network => {
                for (field, set) in [
                    ("device", p.device.is_some()),
                    ("slot_bytes", p.slot_bytes.is_some()),
                ] {
                    if set {
                        r.push(
                            loc.key(field),
                            format!("{field} is only for disk paths"),
                            "remove it, or set kind = \"disk\"",
                        );
                    }
                }
            }
            PathKindConfig::Disk => {
                disks += 1;
                if disks == 2 {
                    r.push(
                        loc.clone(),
                        "a second disk path; one disk path is supported",
                        "keep one [[path]] with kind = \"disk\"",
                    );
                }
                match &p.device {
                    None => r.push(
                        loc.key("device"),
                        "a disk path needs a device",
                        "set device = \"/dev/…\" (a block device or file every node shares)",
                    ),
                    Some(d) if !d.starts_with('/') => r.push(
                        loc.key("device"),
                        format!("device \"{d}\" is not an absolute path"),
                        "give the full path, e.g. /dev/disk/by-id/…",
                    ),
                    Some(_) => {}
                }
                let slot = p.slot_bytes();
                let members = c.nodes.len() + usize::from(c.witness.is_some());
                let record = crate::transport::disk::record_bytes(members);
                if slot % 512 != 0 {
                    r.push(
                        loc.key("slot_bytes"),
                        format!("slot_bytes = {slot} is not a multiple of 512"),
                        "use 4096 (the default) or another multiple of 512 (direct IO needs it)",
                    );
                } else if usize::try_from(slot).is_ok_and(|s| s < record) {
                    r.push(
                        loc.key("slot_bytes"),
                        format!(
                            "slot_bytes = {slot} cannot hold a slot record of {members} nodes \
                             ({record} bytes)"
                        ),
                        format!("give at least {}", record.div_ceil(512) * 512),
                    );
                }
                r.within(loc.key("slot_bytes"), u64::from(slot));
            }
        }
    }
}

/// The addresses of a node or of the witness: one per network path, each host:port.
fn check_addresses(
    c: &ClusterConfig,
    r: &mut Report,
    loc: Loc,
    addresses: &std::collections::BTreeMap<String, String>,
) {
    let network: Vec<&str> = c
        .paths
        .iter()
        .filter(|p| p.kind == PathKindConfig::Network)
        .map(|p| p.name.as_str())
        .collect();
    for path in &network {
        if !addresses.contains_key(*path) {
            r.push(
                loc.key("addresses"),
                format!("no address on network path \"{path}\""),
                format!("add {path} = \"HOST:PORT\" to addresses"),
            );
        }
    }
    for (path, addr) in addresses {
        let aloc = loc.key("addresses").key(path);
        match c.paths.iter().find(|p| &p.name == path) {
            None => r.push(
                aloc,
                format!("unknown path \"{path}\""),
                format!(
                    "give addresses only for network paths ({})",
                    list(network.iter().copied())
                ),
            ),
            Some(p) if p.kind == PathKindConfig::Disk => r.push(
                aloc,
                format!("path \"{path}\" is a disk path; it takes no address"),
                "remove this address",
            ),
            Some(_) => {
                if let Err((message, fix)) = address::parse_host_port(addr) {
                    r.push(aloc, message, fix);
                }
            }
        }
    }
}

fn check_nodes(c: &ClusterConfig, r: &mut Report) {
    if c.nodes.is_empty() {
        r.push(
            Loc::root().key("node"),
            "no [[node]] is defined",
            "add a [[node]] for every server of the cluster",
        );
    }
    let mut seen = HashSet::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let loc = Loc::root().key("node").at(i);
        r.name(loc.clone(), "node", &n.name);
        if !seen.insert(n.name.as_str()) {
            r.push(
                loc.key("name"),
                format!("node name \"{}\" is used twice", n.name),
                "give each node its own name",
            );
        }
        if let Some(cap) = n.capacity {
            r.within(loc.key("capacity"), u64::from(cap));
        }
        check_addresses(c, r, loc, &n.addresses);
    }
    if let Some(w) = &c.witness {
        let loc = Loc::root().key("witness");
        r.name(loc.clone(), "witness", &w.name);
        if seen.contains(w.name.as_str()) {
            r.push(
                loc.key("name"),
                format!("witness name \"{}\" is also a node", w.name),
                "the witness is a separate machine: give it its own name",
            );
        }
        check_addresses(c, r, loc, &w.addresses);
    }
}

fn check_groups(c: &ClusterConfig, r: &mut Report) {
    let node_names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    let group_names: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    let witness = c.witness.as_ref().map(|w| w.name.as_str());
    let mut seen = HashSet::new();
    for (gi, g) in c.groups.iter().enumerate() {
        let loc = Loc::root().key("group").at(gi);
        r.name(loc.clone(), "group", &g.name);
        if !seen.insert(g.name.as_str()) {
            r.push(
                loc.key("name"),
                format!("group name \"{}\" is used twice", g.name),
                "give each group its own name",
            );
        }
        if g.nodes.is_empty() {
            r.push(
                loc.key("nodes"),
                "empty preferred node list",
                format!(
                    "list the nodes that may run the group, preferred node first ({})",
                    list(node_names.iter().copied())
                ),
            );
        }
        let mut listed = HashSet::new();
        for n in &g.nodes {
            if Some(n.as_str()) == witness {
                r.push(
                    loc.key("nodes"),
                    format!("\"{n}\" is the witness; a witness holds no resources"),
                    format!(
                        "list only [[node]] names ({})",
                        list(node_names.iter().copied())
                    ),
                );
            } else if !node_names.contains(&n.as_str()) {
                r.push(
                    loc.key("nodes"),
                    format!("unknown node \"{n}\""),
                    format!("name a [[node]] ({})", list(node_names.iter().copied())),
                );
            } else if !listed.insert(n.as_str()) {
                r.push(
                    loc.key("nodes"),
                    format!("node \"{n}\" is listed twice"),
                    "list each node once, in priority order",
                );
            }
        }
        match (g.mode, g.copies) {
            (GroupMode::Exclusive, Some(_)) => r.push(
                loc.key("copies"),
                "copies is only for clone groups",
                "remove copies, or set mode = \"clone\"",
            ),
            (GroupMode::Clone, Some(0)) => r.within(loc.key("copies"), 0),
            (GroupMode::Clone, Some(k)) if usize::from(k) > g.nodes.len() => r.push(
                loc.key("copies"),
                format!("copies = {k} but only {} nodes are listed", g.nodes.len()),
                "list more nodes in nodes, or lower copies",
            ),
            _ => {}
        }
        if let Some(w) = &g.failback_window {
            if g.failback == FailbackMode::Manual {
                r.push(
                    loc.key("failback_window"),
                    "failback_window needs failback = \"auto\"",
                    "set failback = \"auto\", or remove failback_window",
                );
            }
            if let Err(e) = DailyWindow::parse(w) {
                r.push(
                    loc.key("failback_window"),
                    e,
                    "write HH:MM-HH:MM in node-local time, e.g. \"02:00-04:00\"",
                );
            }
        }
        r.within(loc.key("max_restarts"), u64::from(g.max_restarts));
        r.within(loc.key("restart_window_ms"), g.restart_window_ms);
        if g.max_restarts > 0 {
            r.positive(loc.clone(), "restart_window_ms", g.restart_window_ms);
        }
        r.within(loc.key("restart_backoff_ms"), g.restart_backoff_ms);
        r.within(loc.key("restart_backoff_max_ms"), g.restart_backoff_max_ms);
        r.within(loc.key("failure_timeout_ms"), g.failure_timeout_ms);
        if g.restart_backoff_max_ms < g.restart_backoff_ms {
            r.push(
                loc.key("restart_backoff_max_ms"),
                format!(
                    "restart_backoff_max_ms = {} is below restart_backoff_ms = {}",
                    g.restart_backoff_max_ms, g.restart_backoff_ms
                ),
                "the longest wait cannot be shorter than the first: raise restart_backoff_max_ms",
            );
        }
        r.within(loc.key("load"), u64::from(g.load));
        let mut anti = HashSet::new();
        for other in &g.anti_affinity {
            if other == &g.name {
                r.push(
                    loc.key("anti_affinity"),
                    format!("group \"{other}\" names itself"),
                    format!("remove \"{other}\" from its own anti_affinity"),
                );
            } else if !group_names.contains(&other.as_str()) {
                r.push(
                    loc.key("anti_affinity"),
                    format!("unknown group \"{other}\""),
                    format!(
                        "name another group ({})",
                        list(group_names.iter().copied().filter(|n| *n != g.name))
                    ),
                );
            } else if !anti.insert(other.as_str()) {
                r.push(
                    loc.key("anti_affinity"),
                    format!("group \"{other}\" is listed twice"),
                    "list each group once",
                );
            }
        }
        if g.resources.is_empty() {
            r.push(
                loc,
                "the group has no resources",
                "add a [[group.resource]] under it",
            );
        }
    }
}

fn check_resources(
    c: &ClusterConfig,
    member_ips: &HashMap<IpAddr, address::Holder<'_>>,
    r: &mut Report,
) {
    // Resource names are unique in the whole cluster: name → group.
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (gi, g) in c.groups.iter().enumerate() {
        for (ri, res) in g.resources.iter().enumerate() {
            let loc = Loc::root().key("group").at(gi).key("resource").at(ri);
            if let Some(first) = owner.get(res.name.as_str()) {
                r.push(
                    loc.key("name"),
                    format!(
                        "resource name \"{}\" is already used in group \"{first}\"",
                        res.name
                    ),
                    "resource names are unique in the whole cluster: rename one",
                );
            } else {
                owner.insert(&res.name, &g.name);
            }
        }
    }
    let mut floating: HashMap<IpAddr, (&str, &str)> = HashMap::new();
    for (gi, g) in c.groups.iter().enumerate() {
        let gloc = Loc::root().key("group").at(gi);
        let members: Vec<&str> = g.resources.iter().map(|x| x.name.as_str()).collect();
        let is_member: HashSet<&str> = members.iter().copied().collect();
        for (ri, res) in g.resources.iter().enumerate() {
            let loc = gloc.key("resource").at(ri);
            r.name(loc.clone(), "resource", &res.name);
            if !RESOURCE_TYPES.contains(&res.kind.as_str()) {
                r.push(
                    loc.key("type"),
                    format!("unknown resource type \"{}\"", res.kind),
                    format!("use one of: {}", list(RESOURCE_TYPES.iter().copied())),
                );
            }
            if g.mode == GroupMode::Clone && EXCLUSIVE_ONLY.contains(&res.kind.as_str()) {
                r.push(
                    loc.key("type"),
                    format!(
                        "a resource of type \"{}\" in a clone group would be active on several nodes at once",
                        res.kind
                    ),
                    "move it into an exclusive group",
                );
            }
            if res.kind == "ip" {
                check_ip(r, &loc, g, res, member_ips, &mut floating);
            }
            for dep in &res.depends_on {
                if is_member.contains(dep.as_str()) {
                    continue; // Cycles, self-dependencies included, are found below.
                }
                let message = match owner.get(dep.as_str()) {
                    Some(other) => format!(
                        "resource \"{dep}\" is in group \"{other}\"; a dependency must stay inside one group"
                    ),
                    None => format!("unknown resource \"{dep}\""),
                };
                let fix = match owner.get(dep.as_str()) {
                    Some(_) => {
                        "move the two resources into one group, or drop the dependency".to_string()
                    }
                    None => format!(
                        "name a resource of group \"{}\" ({})",
                        g.name,
                        list(members.iter().copied())
                    ),
                };
                r.push(loc.key("depends_on"), message, fix);
            }
            if let Some(q) = res.quick {
                check_monitor(
                    r,
                    loc.key("quick"),
                    "interval_ms",
                    q.interval_ms,
                    "timeout_ms",
                    q.timeout_ms,
                );
            }
            if let Some(d) = res.deep {
                check_monitor(
                    r,
                    loc.key("deep"),
                    "interval_ms",
                    d.interval_ms,
                    "timeout_ms",
                    d.timeout_ms,
                );
            }
            for (field, value) in [
                ("start_timeout_ms", res.start_timeout_ms),
                ("stop_timeout_ms", res.stop_timeout_ms),
                ("migration_threshold", res.migration_threshold),
            ] {
                if let Some(v) = value {
                    r.within(loc.key(field), u64::from(v));
                }
            }
        }
        for cycle in dependency_cycles(g) {
            let name = |i: usize| g.resources[i].name.as_str();
            let first = cycle[0];
            // A long cycle is shown by its ends: the message stays a line.
            let shown = if cycle.len() <= 12 {
                let names: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
                format!("dependency cycle: {} → {}", names.join(" → "), name(first))
            } else {
                let head: Vec<&str> = cycle[..8].iter().map(|&i| name(i)).collect();
                format!(
                    "dependency cycle of {} resources: {} → … → {} → {}",
                    cycle.len(),
                    head.join(" → "),
                    name(cycle[cycle.len() - 1]),
                    name(first)
                )
            };
            r.push(
                gloc.key("resource").at(first).key("depends_on"),
                shown,
                "remove one of these dependencies so the resources can start in order",
            );
        }
    }
}

/// An `ip` resource: its `address` is a floating address ([`address::parse_floating`]) that
/// is no member's own and that no other resource floats.
fn check_ip<'c>(
    r: &mut Report,
    loc: &Loc,
    g: &'c GroupConfig,
    res: &'c ResourceConfig,
    member_ips: &HashMap<IpAddr, address::Holder<'_>>,
    floating: &mut HashMap<IpAddr, (&'c str, &'c str)>,
) {
    let Some(address) = res.params.get("address") else {
        r.push(
            loc.key("params"),
            "an ip resource needs an address param",
            "add address = \"192.0.2.10/24\" (the floating address with its prefix) to params",
        );
        return;
    };
    let ip = match address::parse_floating(address) {
        Ok((ip, _)) => ip,
        Err((message, fix)) => {
            r.push(loc.key("params").key("address"), message, fix);
            return;
        }
    };
    if let Some((member, path)) = member_ips.get(&ip) {
        r.push(
            loc.key("params").key("address"),
            format!("floating address {ip} is \"{member}\"'s own address on path \"{path}\""),
            "a floating address moves between nodes: give it one no node holds as its own",
        );
        return;
    }
    match floating.get(&ip) {
        Some((other_group, other_res)) => r.push(
            loc.key("params").key("address"),
            format!(
                "floating address {ip} is also used by resource \"{other_res}\" of group \"{other_group}\""
            ),
            "a floating address belongs to one resource: remove one, or give it another address",
        ),
        None => {
            floating.insert(ip, (&g.name, &res.name));
        }
    }
}

/// The most dependency cycles reported per group; past it the first ones are enough to act on.
const MAX_CYCLES_REPORTED: usize = 16;

/// The dependency cycles in a group, each as resource indices in dependency order, starting
/// at its first resource in config order; at most [`MAX_CYCLES_REPORTED`]. Dependencies on
/// unknown names are ignored here.
///
/// A depth-first walk with an explicit stack, linear in resources and dependencies: a chain
/// of any length neither overflows the thread's stack nor takes quadratic time.
pub(crate) fn dependency_cycles(g: &GroupConfig) -> Vec<Vec<usize>> {
    let deps = dependency_graph(g);
    // 0 = unvisited, 1 = on the walk's path, 2 = done.
    let mut state = vec![0u8; deps.len()];
    // Where a resource on the path stands in it, so a back edge finds its cycle at once.
    let mut at = vec![0usize; deps.len()];
    // The path: each resource with the index of its next dependency to follow.
    let mut path: Vec<(usize, usize)> = Vec::new();
    let mut cycles = Vec::new();
    for start in 0..deps.len() {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        path.push((start, 0));
        while let Some(top) = path.last_mut() {
            let (i, next) = *top;
            let Some(&d) = deps[i].get(next) else {
                state[i] = 2;
                path.pop();
                continue;
            };
            top.1 += 1;
            match state[d] {
                0 => {
                    state[d] = 1;
                    at[d] = path.len();
                    path.push((d, 0));
                }
                1 if cycles.len() < MAX_CYCLES_REPORTED => {
                    cycles.push(path[at[d]..].iter().map(|&(r, _)| r).collect());
                }
                _ => {}
            }
        }
    }
    cycles
}

/// Each resource's dependencies as indices into the group's resources; names that are not
/// resources of the group are left out.
pub(crate) fn dependency_graph(g: &GroupConfig) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = g
        .resources
        .iter()
        .enumerate()
        .map(|(i, x)| (x.name.as_str(), i))
        .collect();
    g.resources
        .iter()
        .map(|x| {
            x.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect()
}

fn check_schedules(c: &ClusterConfig, r: &mut Report) {
    let witness = c.witness.as_ref().map(|w| w.name.as_str());
    for (i, s) in c.schedules.iter().enumerate() {
        let loc = Loc::root().key("schedule").at(i);
        let group = c.groups.iter().find(|g| g.name == s.group);
        if group.is_none() {
            r.push(
                loc.key("group"),
                format!("unknown group \"{}\"", s.group),
                format!(
                    "name a [[group]] ({})",
                    list(c.groups.iter().map(|g| g.name.as_str()))
                ),
            );
        }
        if let Some(to) = &s.to {
            let is_node = c.nodes.iter().any(|n| &n.name == to);
            if Some(to.as_str()) == witness {
                r.push(
                    loc.key("to"),
                    format!("\"{to}\" is the witness; it holds no resources"),
                    "name a node of the group",
                );
            } else if !is_node {
                r.push(
                    loc.key("to"),
                    format!("unknown node \"{to}\""),
                    format!(
                        "name a [[node]] ({})",
                        list(c.nodes.iter().map(|n| n.name.as_str()))
                    ),
                );
            } else if let Some(g) = group {
                if !g.nodes.contains(to) {
                    r.push(
                        loc.key("to"),
                        format!("node \"{to}\" is not in the nodes of group \"{}\"", g.name),
                        format!(
                            "name one of {}, or add \"{to}\" to the group's nodes",
                            list(g.nodes.iter().map(String::as_str))
                        ),
                    );
                }
            }
        }
        if let Err(e) = CronExpr::parse(&s.cron) {
            r.push(
                loc.key("cron"),
                e,
                "write five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * sun\"",
            );
        }
    }
}

fn check_notifications(c: &ClusterConfig, r: &mut Report) {
    for (i, n) in c.notifications.iter().enumerate() {
        let loc = Loc::root().key("notification").at(i);
        let wants_command = n.kind == NotificationKind::Script;
        let wants_url = n.kind == NotificationKind::Webhook;
        match (&n.command, wants_command) {
            (None, true) => r.push(
                loc.key("command"),
                "a script notification needs a command",
                "set command = \"/path/to/program\"",
            ),
            (Some(_), false) => r.push(
                loc.key("command"),
                "command is only for kind = \"script\"",
                "remove it, or set kind = \"script\"",
            ),
            (Some(cmd), true) if !cmd.starts_with('/') => r.push(
                loc.key("command"),
                format!("command \"{cmd}\" is not an absolute path"),
                "give the program's full path (the daemon runs with a minimal PATH)",
            ),
            _ => {}
        }
        match (&n.url, wants_url) {
            (None, true) => r.push(
                loc.key("url"),
                "a webhook notification needs a url",
                "set url = \"https://…\"",
            ),
            (Some(_), false) => r.push(
                loc.key("url"),
                "url is only for kind = \"webhook\"",
                "remove it, or set kind = \"webhook\"",
            ),
            (Some(u), true) if !(u.starts_with("http://") || u.starts_with("https://")) => r.push(
                loc.key("url"),
                format!("url \"{u}\" is not an http:// or https:// address"),
                "write the full address, e.g. https://alerts.example/hook",
            ),
            _ => {}
        }
        r.within(loc.key("timeout_ms"), u64::from(n.timeout_ms));
        match (&n.socket, n.kind == NotificationKind::Log) {
            (Some(_), false) => r.push(
                loc.key("socket"),
                "socket is only for kind = \"log\"",
                "remove it, or set kind = \"log\"",
            ),
            (Some(p), true) if !p.starts_with('/') => r.push(
                loc.key("socket"),
                format!("socket \"{p}\" is not an absolute path"),
                "give the system log's socket, e.g. /dev/log",
            ),
            _ => {}
        }
        let https = n.url.as_deref().is_some_and(|u| u.starts_with("https://"));
        match (&n.ca, https) {
            (Some(_), false) => r.push(
                loc.key("ca"),
                "ca is only for a webhook with an https:// url",
                "remove it, or give an https:// url",
            ),
            (Some(p), true) if !p.starts_with('/') => r.push(
                loc.key("ca"),
                format!("ca \"{p}\" is not an absolute path"),
                "give the PEM bundle's full path",
            ),
            _ => {}
        }
        for e in &n.events {
            if !EVENT_NAMES.contains(&e.as_str()) {
                r.push(
                    loc.key("events"),
                    format!("unknown event \"{e}\""),
                    format!(
                        "use event names from: {}",
                        list(EVENT_NAMES.iter().copied())
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A group of `n` resources `r0..`, resource `i` depending on `dep(i)` where given.
    fn group(n: usize, dep: impl Fn(usize) -> Option<usize>) -> GroupConfig {
        GroupConfig {
            name: "g".to_string(),
            nodes: vec!["a".to_string()],
            mode: GroupMode::Exclusive,
            copies: None,
            failback: FailbackMode::Manual,
            failback_window: None,
            stickiness: true,
            max_restarts: 3,
            restart_window_ms: 300_000,
            restart_backoff_ms: 1_000,
            restart_backoff_max_ms: 30_000,
            failure_timeout_ms: 0,
            load: 0,
            anti_affinity: Vec::new(),
            resources: (0..n)
                .map(|i| ResourceConfig {
                    name: format!("r{i}"),
                    kind: "application".to_string(),
                    params: Default::default(),
                    depends_on: dep(i).map(|d| format!("r{d}")).into_iter().collect(),
                    quick: None,
                    deep: None,
                    start_timeout_ms: None,
                    stop_timeout_ms: None,
                    migration_threshold: None,
                })
                .collect(),
        }
    }

    /// Runs `f` on a thread with a 128 KiB stack: a recursive walk over 120,000 resources
    /// would overflow it.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let handle = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(f)
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        handle
            .join()
            .unwrap_or_else(|_| panic!("the walk panicked"))
    }

    /// The walk once recursed per resource (a stack overflow at 120,000) and the order was
    /// quadratic (16 s at 60,000): both are now linear or n log n on an explicit stack.
    #[test]
    fn a_chain_of_120000_is_walked_without_recursion_in_linear_time() {
        const N: usize = 120_000;
        let chain = group(N, |i| i.checked_sub(1));
        let backwards = group(N, |i| (i + 1 < N).then_some(i + 1));
        let ring = group(N, |i| Some((i + 1) % N));
        let (took, cycles, order, back_order, ring_cycles) = on_small_stack(move || {
            let t = Instant::now();
            let cycles = dependency_cycles(&chain);
            let order = resolve::dependency_order(&chain);
            let back_order = resolve::dependency_order(&backwards);
            let ring_cycles = dependency_cycles(&ring);
            (t.elapsed(), cycles, order, back_order, ring_cycles)
        });
        println!("walks and orders of three {N}-resource groups: {took:?}");
        assert!(cycles.is_empty());
        assert!(
            order.iter().copied().eq(0..N),
            "a chain starts in config order"
        );
        assert!(
            back_order.iter().copied().eq((0..N).rev()),
            "dependencies first"
        );
        assert_eq!(ring_cycles.len(), 1);
        assert_eq!(ring_cycles[0].len(), N);
        assert!(ring_cycles[0].iter().copied().eq(0..N));
        assert!(
            took < Duration::from_secs(10),
            "{took:?}: quadratic again? (a guard, not a benchmark)"
        );
    }

    #[test]
    fn cycles_are_found_in_walk_order_and_capped() {
        // r0 → r1 → r2 → r0, and r3 → r3.
        let g = group(4, |i| Some([1, 2, 0, 3][i]));
        assert_eq!(dependency_cycles(&g), [vec![0, 1, 2], vec![3]]);
        // 40 resources each depending on itself: only the first cycles are reported.
        let g = group(40, Some);
        assert_eq!(dependency_cycles(&g).len(), MAX_CYCLES_REPORTED);
    }
}
