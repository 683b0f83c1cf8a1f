//! The resolved cluster description the cores work on.
//!
//! `cluster.toml` names things; the cores index them. [`crate::config`] validates a config file
//! and resolves it into a [`ClusterSpec`]: nodes, paths, groups and resources become dense
//! indices ([`NodeId`], [`PathId`], [`GroupId`], [`ResourceId`]), times become integers with
//! their unit in the name, and every cross reference is known to be valid. A `ClusterSpec` is
//! therefore always consistent: code in `policy` may index with its ids without checks.

use super::schedule::{CronExpr, DailyWindow};

/// A node's index in [`ClusterSpec::nodes`].
pub type NodeId = u16;
/// A heartbeat path's index in [`ClusterSpec::paths`].
pub type PathId = u8;
/// A resource group's index in [`ClusterSpec::groups`].
pub type GroupId = u16;
/// A resource's index inside its group's [`GroupSpec::resources`].
pub type ResourceId = u16;

/// The whole cluster, resolved from `cluster.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// The cluster's name; peers with another name are refused.
    pub name: String,
    /// Every node, the witness included (it votes and holds no resources).
    pub nodes: Vec<NodeSpec>,
    /// The heartbeat paths, network paths first, then the disk path if any.
    pub paths: Vec<PathSpec>,
    /// Lease, election and takeover timing.
    pub timing: TimingSpec,
    /// What may happen across a partition (decides whether a two-node cluster is allowed).
    pub partition: PartitionPolicy,
    /// The resource groups, in config order.
    pub groups: Vec<GroupSpec>,
    /// Scheduled moves, in config order.
    pub schedules: Vec<ScheduledMove>,
    /// A digest of the config file's meaning; nodes whose digests differ take over nothing.
    pub digest: u64,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// The node's name (also the name in its certificate).
    pub name: String,
    /// How much group load this node can carry (M-to-N placement). `u32::MAX` = unlimited.
    pub capacity: u32,
    /// A witness votes in consensus and never runs a resource.
    pub witness: bool,
}

/// The kind of a heartbeat path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// A network path over one NIC of each node (QUIC datagrams).
    Network,
    /// A shared disk with a slot per node (counter and timestamp).
    Disk,
}

/// A heartbeat path and its failure-detector settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PathSpec {
    /// The path's name from the config.
    pub name: String,
    /// Network or disk.
    pub kind: PathKind,
    /// Time between two heartbeats a node sends on this path.
    pub interval_ms: u32,
    /// How many intervals without a heartbeat before the path to a peer is declared lost.
    pub misses: u32,
}

impl PathSpec {
    /// How long a peer may be silent on this path before the path is lost.
    pub fn timeout_us(&self) -> u64 {
        // Both factors come from the config: saturate, never wrap (validation bounds them).
        u64::from(self.interval_ms)
            .saturating_mul(u64::from(self.misses))
            .saturating_mul(1000)
    }
}

/// Lease, consensus and takeover timing, all in one place because they are only safe together
/// (see `docs/architecture.md`, "Safety argument").
#[derive(Clone, Debug, PartialEq)]
pub struct TimingSpec {
    /// How long an acknowledged contact with a quorum leader lets a node keep exclusive groups.
    pub lease_ms: u32,
    /// How often a node asks the leader to renew its lease.
    pub lease_renew_ms: u32,
    /// Bound on the rate difference between any two nodes' monotonic clocks, in parts per
    /// million (10_000 = 1 %).
    pub max_clock_drift_ppm: u32,
    /// Added to the lease before the coordinator takes over from a silent owner.
    pub takeover_margin_ms: u32,
    /// A node starts stopping its exclusive groups this long before its lease runs out, so
    /// that they are stopped (or the node is rebooted by its watchdog) when it does.
    pub stop_budget_ms: u32,
    /// One consensus tick.
    pub raft_tick_ms: u32,
    /// Minimum election timeout, in ticks (the maximum is twice this).
    pub election_ticks: u32,
    /// The leader's heartbeat period, in ticks.
    pub heartbeat_ticks: u32,
}

impl TimingSpec {
    /// How long after its last lease grant to a node the coordinator must wait before it may
    /// start that node's exclusive groups elsewhere (design.md §5, rule 4b).
    pub fn takeover_wait_us(&self) -> u64 {
        let lease_us = u64::from(self.lease_ms) * 1000;
        let drift_us = u128::from(lease_us) * u128::from(self.max_clock_drift_ppm) / 1_000_000;
        lease_us
            .saturating_add(u64::try_from(drift_us).unwrap_or(u64::MAX))
            .saturating_add(u64::from(self.takeover_margin_ms) * 1000)
    }

    /// How long a follower is guaranteed to refuse votes after it heard from its leader:
    /// `(election_ticks - 1)` ticks on its clock, shrunk by the drift bound. A leader's
    /// authority, and every lease derived from it, must end inside this window.
    pub fn vote_guard_us(&self) -> u64 {
        // ticks × tick × 1000 × 10⁶ of two u32s fits in u128; the u64 product did not.
        let ticks = u128::from(self.election_ticks.saturating_sub(1));
        let us = ticks * u128::from(self.raft_tick_ms) * 1000;
        let shrunk = us * 1_000_000 / (1_000_000 + u128::from(self.max_clock_drift_ppm));
        u64::try_from(shrunk).unwrap_or(u64::MAX)
    }
}

/// What the cluster may do when nodes cannot reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionPolicy {
    /// Quorum decides: the majority side (counting a witness) takes over after the lease.
    Quorum,
    /// A fencing device confirms that the other side is off before takeover.
    Fence,
    /// Two nodes without witness or fencing: the user chose that no group fails over across a
    /// partition; only clean stops and admin moves relocate groups.
    NoAutoFailover,
}

/// A resource group: the unit of failover.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// Nodes that may run it, in priority order: the first is the preferred node, the rest are
    /// backup nodes.
    pub nodes: Vec<NodeId>,
    /// Exclusive (one node at a time) or clone (several at once).
    pub kind: GroupKind,
    /// When a group that failed over returns to a more preferred node.
    pub failback: Failback,
    /// Keep a healthy group where it is rather than move it to balance load.
    pub stickiness: bool,
    /// Local restarts allowed within `restart_window_ms` before the group escalates.
    pub max_restarts: u32,
    /// The window over which local restarts are counted.
    pub restart_window_ms: u64,
    /// The wait before the second local restart in the window; doubled for each one after.
    pub restart_backoff_ms: u64,
    /// The longest wait before a local restart.
    pub restart_backoff_max_ms: u64,
    /// A node's failure count of the group is forgotten this long after it last grew (0:
    /// never).
    pub failure_timeout_ms: u64,
    /// How much capacity the group uses on its node.
    pub load: u32,
    /// Groups that must not run on the same node as this one (both directions are stored).
    pub anti_affinity: Vec<GroupId>,
    /// Resources, in an order where every dependency comes before its dependents.
    pub resources: Vec<ResourceSpec>,
}

impl GroupSpec {
    /// Whether this group must never be active on two nodes at once.
    pub fn is_exclusive(&self) -> bool {
        matches!(self.kind, GroupKind::Exclusive)
    }
}

/// Exclusive or clone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// At most one node runs it (the default).
    Exclusive,
    /// Runs on `copies` nodes at once (every listed node when `None`); only local recovery.
    Clone {
        /// How many nodes run a copy; `None` = every eligible listed node.
        copies: Option<u16>,
    },
}

/// Failback policy of a group.
#[derive(Clone, Debug, PartialEq)]
pub enum Failback {
    /// Stay on the backup node until an administrator moves the group.
    Manual,
    /// Return to the most preferred eligible node, only inside `window` if one is given.
    Auto {
        /// Daily window in node-local time, e.g. 02:00-04:00.
        window: Option<DailyWindow>,
    },
}

/// One resource of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSpec {
    /// The resource's name (unique in the cluster).
    pub name: String,
    /// The agent type: `ip`, `application`, `ocf`, …
    pub agent: String,
    /// The agent's parameters, as given.
    pub params: Vec<(String, String)>,
    /// Resources of the same group this one needs started first.
    pub depends_on: Vec<ResourceId>,
    /// The quick health check.
    pub monitor_quick: MonitorSpec,
    /// The deep health check, if any.
    pub monitor_deep: Option<MonitorSpec>,
    /// How long `start` may take.
    pub start_timeout_ms: u32,
    /// How long `stop` may take; past it the stop has failed (a reason to fence).
    pub stop_timeout_ms: u32,
    /// Failures of this resource within the group's restart window after which the group
    /// escalates (leaves this node) whatever its `max_restarts`; `None`: no bound of its own.
    pub migration_threshold: Option<u32>,
}

/// One health check depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorSpec {
    /// Time between two checks.
    pub interval_ms: u32,
    /// How long one check may take.
    pub timeout_ms: u32,
}

/// A cron-like move of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledMove {
    /// The group to move.
    pub group: GroupId,
    /// Where to; `None` = back to its most preferred eligible node.
    pub to: Option<NodeId>,
    /// When, in node-local civil time (minute resolution).
    pub cron: CronExpr,
}

impl ClusterSpec {
    /// The node with this name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| i as NodeId)
    }

    /// The group with this name.
    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(|i| i as GroupId)
    }

    /// Every resource of every group, numbered in config order across groups: the number the
    /// log uses for one resource ([`crate::policy::state::AdminCommand::Manage`]), with its
    /// group and its index in the group.
    pub fn resources(&self) -> impl Iterator<Item = (GroupId, ResourceId)> + '_ {
        self.groups.iter().enumerate().flat_map(|(g, gs)| {
            (0..gs.resources.len()).map(move |r| (g as GroupId, r as ResourceId))
        })
    }

    /// The group and index of resource number `n` of [`ClusterSpec::resources`].
    pub fn resource_at(&self, n: u16) -> Option<(GroupId, ResourceId)> {
        self.resources().nth(usize::from(n))
    }

    /// The number in [`ClusterSpec::resources`] of the resource called `name`, with its group.
    pub fn resource_named(&self, name: &str) -> Option<(u16, GroupId, ResourceId)> {
        self.resources().enumerate().find_map(|(n, (g, r))| {
            (self.groups[usize::from(g)].resources[usize::from(r)].name == name)
                .then_some((n as u16, g, r))
        })
    }

    /// Number of votes needed for a majority.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(raft_tick_ms: u32, election_ticks: u32, lease_ms: u32, ppm: u32) -> TimingSpec {
        TimingSpec {
            lease_ms,
            lease_renew_ms: 1,
            max_clock_drift_ppm: ppm,
            takeover_margin_ms: u32::MAX,
            stop_budget_ms: 1,
            raft_tick_ms,
            election_ticks,
            heartbeat_ticks: 1,
        }
    }

    /// `raft_tick_ms × election_ticks` of two large u32s overflowed u64 (a panic in debug
    /// builds, a wrapped and far too short window in release); config check computes the
    /// window before it has refused the values.
    #[test]
    fn the_timing_products_saturate_or_fit_never_wrap() {
        let t = timing(20, 10, 150, 10_000);
        assert_eq!(t.vote_guard_us(), 178_217);
        assert_eq!(
            t.takeover_wait_us(),
            150_000 + 1_500 + u64::from(u32::MAX) * 1000
        );
        let huge = timing(u32::MAX, u32::MAX, u32::MAX, 1_000_000);
        let exact = u128::from(u32::MAX - 1) * u128::from(u32::MAX) * 1000 / 2;
        assert_eq!(
            huge.vote_guard_us(),
            u64::MAX,
            "{exact} does not fit: saturated"
        );
        assert!(huge.takeover_wait_us() >= u64::from(u32::MAX) * 1000 * 2);
        let path = PathSpec {
            name: "p".to_string(),
            kind: PathKind::Network,
            interval_ms: u32::MAX,
            misses: u32::MAX,
        };
        assert_eq!(path.timeout_us(), u64::MAX);
    }
}
