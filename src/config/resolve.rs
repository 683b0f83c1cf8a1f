//! Resolution of a validated config into the index-based [`ClusterSpec`], and its digest.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::schema::*;
use crate::policy::schedule::{CronExpr, DailyWindow};
use crate::policy::spec::{
    ClusterSpec, Failback, GroupId, GroupKind, GroupSpec, MonitorSpec, NodeId, NodeSpec,
    PartitionPolicy, PathKind, PathSpec, ResourceId, ResourceSpec, ScheduledMove, TimingSpec,
};

/// The timing section with the drift fraction turned into parts per million.
pub(crate) fn timing_spec(t: &TimingConfig) -> TimingSpec {
    let ppm = (t.max_clock_drift * 1_000_000.0).round();
    TimingSpec {
        lease_ms: t.lease_ms,
        lease_renew_ms: t.lease_renew_ms,
        // Validation keeps the fraction within 0..=0.1; the clamp only guards the cast.
        max_clock_drift_ppm: ppm.clamp(0.0, 1_000_000.0) as u32,
        takeover_margin_ms: t.takeover_margin_ms,
        stop_budget_ms: t.stop_budget_ms,
        raft_tick_ms: t.raft_tick_ms,
        election_ticks: t.election_ticks,
        heartbeat_ticks: t.heartbeat_ticks,
    }
}

/// Resolves a config that passed validation. Names that do not resolve (impossible after
/// validation) are skipped rather than panicking.
pub(crate) fn resolve(c: &ClusterConfig) -> ClusterSpec {
    let mut nodes: Vec<NodeSpec> = c
        .nodes
        .iter()
        .map(|n| NodeSpec {
            name: n.name.clone(),
            capacity: n.capacity.unwrap_or(u32::MAX),
            witness: false,
        })
        .collect();
    // The witness is last, so node ids of resource-holding nodes are 0..n.
    if let Some(w) = &c.witness {
        nodes.push(NodeSpec {
            name: w.name.clone(),
            capacity: 0,
            witness: true,
        });
    }
    let node_ids: HashMap<&str, NodeId> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i as NodeId))
        .collect();
    let group_ids: HashMap<&str, GroupId> = c
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), i as GroupId))
        .collect();

    let path_spec = |p: &PathConfig| PathSpec {
        name: p.name.clone(),
        kind: match p.kind {
            PathKindConfig::Network => PathKind::Network,
            PathKindConfig::Disk => PathKind::Disk,
        },
        interval_ms: p.interval_ms(),
        misses: p.misses(),
    };
    let paths = c
        .paths
        .iter()
        .filter(|p| p.kind == PathKindConfig::Network)
        .chain(c.paths.iter().filter(|p| p.kind == PathKindConfig::Disk))
        .map(path_spec)
        .collect();

    let voters = nodes.len();
    let partition = if c.fencing.is_some() {
        PartitionPolicy::Fence
    } else if voters >= 3 || voters == 1 {
        // A single node has nobody to disagree with: its own vote is the majority.
        PartitionPolicy::Quorum
    } else {
        PartitionPolicy::NoAutoFailover
    };

    let mut groups: Vec<GroupSpec> = c
        .groups
        .iter()
        .map(|g| resolve_group(g, &c.monitor, &node_ids, &group_ids))
        .collect();
    // Anti-affinity holds both ways; store it on both groups.
    for gi in 0..groups.len() {
        for other in groups[gi].anti_affinity.clone() {
            let back = &mut groups[usize::from(other)].anti_affinity;
            if !back.contains(&(gi as GroupId)) {
                back.push(gi as GroupId);
            }
        }
    }

    let schedules = c
        .schedules
        .iter()
        .filter_map(|s| {
            Some(ScheduledMove {
                group: *group_ids.get(s.group.as_str())?,
                to: s.to.as_deref().and_then(|t| node_ids.get(t).copied()),
                cron: CronExpr::parse(&s.cron).ok()?,
            })
        })
        .collect();

    ClusterSpec {
        name: c.cluster.name.clone(),
        nodes,
        paths,
        timing: timing_spec(&c.timing),
        partition,
        groups,
        schedules,
        digest: digest(c),
    }
}

fn resolve_group(
    g: &GroupConfig,
    monitor: &MonitorDefaults,
    node_ids: &HashMap<&str, NodeId>,
    group_ids: &HashMap<&str, GroupId>,
) -> GroupSpec {
    let order = dependency_order(g);
    let new_index: HashMap<&str, ResourceId> = order
        .iter()
        .enumerate()
        .map(|(new, &old)| (g.resources[old].name.as_str(), new as ResourceId))
        .collect();
    let resources = order
        .iter()
        .map(|&old| {
            let r = &g.resources[old];
            let mut depends_on: Vec<ResourceId> = r
                .depends_on
                .iter()
                .filter_map(|d| new_index.get(d.as_str()).copied())
                .collect();
            depends_on.sort_unstable();
            depends_on.dedup();
            resource_spec(r, monitor, depends_on)
        })
        .collect();
    let mut anti_affinity: Vec<GroupId> = Vec::new();
    for name in &g.anti_affinity {
        if let Some(&id) = group_ids.get(name.as_str()) {
            if !anti_affinity.contains(&id) {
                anti_affinity.push(id);
            }
        }
    }
    GroupSpec {
        name: g.name.clone(),
        nodes: g
            .nodes
            .iter()
            .filter_map(|n| node_ids.get(n.as_str()).copied())
            .collect(),
        kind: match g.mode {
            GroupMode::Exclusive => GroupKind::Exclusive,
            GroupMode::Clone => GroupKind::Clone { copies: g.copies },
        },
        failback: match g.failback {
            FailbackMode::Manual => Failback::Manual,
            FailbackMode::Auto => Failback::Auto {
                window: g
                    .failback_window
                    .as_deref()
                    .and_then(|w| DailyWindow::parse(w).ok()),
            },
        },
        stickiness: g.stickiness,
        max_restarts: g.max_restarts,
        restart_window_ms: g.restart_window_ms,
        restart_backoff_ms: g.restart_backoff_ms,
        restart_backoff_max_ms: g.restart_backoff_max_ms,
        failure_timeout_ms: g.failure_timeout_ms,
        load: g.load,
        anti_affinity,
        resources,
    }
}

/// One resource as the cores and its agent see it: defaults from `[monitor]` filled in,
/// `depends_on` already resolved to indices.
pub(crate) fn resource_spec(
    r: &ResourceConfig,
    monitor: &MonitorDefaults,
    depends_on: Vec<ResourceId>,
) -> ResourceSpec {
    let filled = filled_resource(r, monitor);
    ResourceSpec {
        name: r.name.clone(),
        agent: r.kind.clone(),
        params: r
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        depends_on,
        monitor_quick: monitor_spec(filled.quick),
        monitor_deep: filled.deep.map(|d| monitor_spec(Some(d))),
        start_timeout_ms: filled.start_timeout_ms.unwrap_or(monitor.start_timeout_ms),
        stop_timeout_ms: filled.stop_timeout_ms.unwrap_or(monitor.stop_timeout_ms),
        migration_threshold: r.migration_threshold,
    }
}

fn monitor_spec(m: Option<MonitorConfig>) -> MonitorSpec {
    let m = m.unwrap_or(MonitorConfig {
        interval_ms: 0,
        timeout_ms: 0,
    });
    MonitorSpec {
        interval_ms: m.interval_ms,
        timeout_ms: m.timeout_ms,
    }
}

/// A resource with every default from `[monitor]` written in.
fn filled_resource(r: &ResourceConfig, m: &MonitorDefaults) -> ResourceConfig {
    let mut r = r.clone();
    r.quick.get_or_insert(MonitorConfig {
        interval_ms: m.quick_interval_ms,
        timeout_ms: m.quick_timeout_ms,
    });
    r.deep.get_or_insert(MonitorConfig {
        interval_ms: m.deep_interval_ms,
        timeout_ms: m.deep_timeout_ms,
    });
    r.start_timeout_ms.get_or_insert(m.start_timeout_ms);
    r.stop_timeout_ms.get_or_insert(m.stop_timeout_ms);
    r
}

/// Resource indices in start order: every dependency before its dependents, otherwise config
/// order (stable). A cycle (refused by validation) leaves its members in config order at the
/// end. Kahn's algorithm with the ready resources in a min-heap: always the first ready one in
/// config order, in O((resources + dependencies) · log resources).
pub(crate) fn dependency_order(g: &GroupConfig) -> Vec<usize> {
    let deps = super::validate::dependency_graph(g);
    let n = deps.len();
    let mut waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        placed[i] = true;
        order.push(i);
        for &j in &dependents[i] {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    order.extend((0..n).filter(|&i| !placed[i]));
    order
}

/// The digest of a config's meaning: FNV-1a over a MessagePack encoding of the config with
/// every default written in and the calendar rules in normal form. Comments, whitespace, key
/// order and whether a default is spelled out do not change it; maps are ordered (BTreeMap).
pub(crate) fn digest(c: &ClusterConfig) -> u64 {
    let mut n = c.clone();
    for p in &mut n.paths {
        p.interval_ms = Some(p.interval_ms());
        p.misses = Some(p.misses());
        if p.kind == PathKindConfig::Disk {
            p.slot_bytes = Some(p.slot_bytes());
        }
    }
    for g in &mut n.groups {
        for r in &mut g.resources {
            *r = filled_resource(r, &c.monitor);
        }
        if let Some(w) = g
            .failback_window
            .as_deref()
            .and_then(|w| DailyWindow::parse(w).ok())
        {
            g.failback_window = Some(w.to_string());
        }
    }
    // Every resource now carries its own values; the defaults no longer mean anything.
    n.monitor = MonitorDefaults::default();
    for s in &mut n.schedules {
        if let Ok(cron) = CronExpr::parse(&s.cron) {
            s.cron = cron.to_string();
        }
    }
    // Serializing plain structs, strings and maps to a Vec cannot fail; an empty encoding
    // would still give a stable (if useless) digest rather than a panic.
    let bytes = rmp_serde::to_vec(&n).unwrap_or_default();
    crate::ondisk::fnv1a64(&bytes)
}
