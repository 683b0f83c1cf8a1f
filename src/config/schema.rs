//! The typed schema of `cluster.toml`.
//!
//! Every section is a struct, every field is documented with its meaning and its default, and
//! unknown fields are refused (`deny_unknown_fields`): a typo must never be silently ignored.
//! These types hold the config as written (names, not indices); [`super::ClusterConfig::spec`]
//! resolves them into the [`crate::policy::spec::ClusterSpec`] the decision cores use. Things
//! only the runtime needs (addresses, the disk device, fencing, notifications) stay here.
//!
//! Every number has a range, stated on its field and enforced by validation from one table,
//! [`super::limits::RANGES`]; so are the counts (nodes, groups, resources, paths, schedules)
//! and the file's size. `docs/config.md` lists them all.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole `cluster.toml`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `[cluster]`: the cluster's identity and partition setting. Required.
    pub cluster: ClusterSection,
    /// `[timing]`: lease, takeover and consensus timing. Optional; every field has a default.
    #[serde(default)]
    pub timing: TimingConfig,
    /// `[monitor]`: health-check and action timeouts for every resource that does not set its
    /// own. Optional; every field has a default.
    #[serde(default)]
    pub monitor: MonitorDefaults,
    /// `[[path]]`: the heartbeat paths, in config order. At least one network path is required.
    #[serde(default, rename = "path")]
    pub paths: Vec<PathConfig>,
    /// `[[node]]`: the nodes that may run resources, in config order (= node order).
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeConfig>,
    /// `[witness]`: an optional third vote for a two-node cluster; it holds no resources.
    #[serde(default)]
    pub witness: Option<WitnessConfig>,
    /// `[fencing]`: an optional fencing device that powers off a node the cluster lost.
    #[serde(default)]
    pub fencing: Option<FencingConfig>,
    /// `[[group]]`: the resource groups, the unit of failover. Default: none.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// `[[schedule]]`: scheduled moves of groups. Default: none.
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    /// `[[notification]]`: where events are sent besides the event log. Default: none.
    #[serde(default, rename = "notification")]
    pub notifications: Vec<NotificationConfig>,
}

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// The cluster's name; nodes refuse peers that carry another name. Required.
    pub name: String,
    /// Allows a two-node cluster with neither witness nor fencing: no group then fails over
    /// across a partition (only clean stops and admin moves relocate groups). Default: false.
    #[serde(default)]
    pub no_automatic_failover_across_partition: bool,
}

/// `[timing]`. The values are only safe together; validation checks how they relate.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// How long an acknowledged contact with a quorum leader lets a node keep its exclusive
    /// groups, in ms. Range: 10 to 60000. Default: 150.
    pub lease_ms: u32,
    /// How often a node renews its lease, in ms; must be below half the lease. Range: 1 to
    /// 30000. Default: 30.
    pub lease_renew_ms: u32,
    /// Bound on the rate difference between two nodes' clocks, as a fraction (0.01 = 1 %).
    /// Range: 0 to 0.1. Default: 0.01.
    pub max_clock_drift: f64,
    /// Added to the lease before a silent owner's groups are taken over, in ms. Range: 0 to
    /// 60000. Default: 40.
    pub takeover_margin_ms: u32,
    /// A node starts stopping its exclusive groups this long before its lease ends, in ms;
    /// must be below the lease. Range: 1 to 60000. Default: 60.
    pub stop_budget_ms: u32,
    /// One consensus tick, in ms. Range: 1 to 1000. Default: 20.
    pub raft_tick_ms: u32,
    /// Minimum election timeout, in ticks. Range: 2 to 1000, and `raft_tick_ms ×
    /// election_ticks` at most 60000 ms, so a dead leader is always replaced within two
    /// minutes (raft-rs randomises the timeout up to twice this). Default: 10.
    pub election_ticks: u32,
    /// The leader's heartbeat period, in ticks; must be below `election_ticks`. Range: 1 to
    /// 999. Default: 2.
    pub heartbeat_ticks: u32,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            lease_ms: 150,
            lease_renew_ms: 30,
            max_clock_drift: 0.01,
            takeover_margin_ms: 40,
            stop_budget_ms: 60,
            raft_tick_ms: 20,
            election_ticks: 10,
            heartbeat_ticks: 2,
        }
    }
}

/// `[monitor]`: defaults for every resource.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorDefaults {
    /// Time between two quick health checks, in ms. Range: 10 to 86400000 (a day). Default:
    /// 2000.
    pub quick_interval_ms: u32,
    /// How long a quick check may take, in ms; below its interval. Range: 1 to 3600000 (an
    /// hour). Default: 1000.
    pub quick_timeout_ms: u32,
    /// Time between two deep health checks, in ms. Range: 10 to 86400000. Default: 30000.
    pub deep_interval_ms: u32,
    /// How long a deep check may take, in ms; below its interval. Range: 1 to 3600000.
    /// Default: 10000.
    pub deep_timeout_ms: u32,
    /// How long starting a resource may take, in ms. Range: 1 to 3600000. Default: 30000.
    pub start_timeout_ms: u32,
    /// How long stopping a resource may take, in ms; a failed stop is a reason to fence.
    /// Range: 1 to 3600000. Default: 30000.
    pub stop_timeout_ms: u32,
}

impl Default for MonitorDefaults {
    fn default() -> Self {
        MonitorDefaults {
            quick_interval_ms: 2000,
            quick_timeout_ms: 1000,
            deep_interval_ms: 30000,
            deep_timeout_ms: 10000,
            start_timeout_ms: 30000,
            stop_timeout_ms: 30000,
        }
    }
}

/// The kind of a heartbeat path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKindConfig {
    /// A network path over one NIC of each node.
    Network,
    /// A shared disk with one slot per node.
    Disk,
}

/// `[[path]]`: one heartbeat path.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// The path's name; nodes give one address per network path under this name. Required.
    pub name: String,
    /// `network` or `disk`. Required.
    pub kind: PathKindConfig,
    /// Time between two heartbeats, in ms. Range: 1 to 60000. Default: 50 for network, 200
    /// for disk.
    #[serde(default)]
    pub interval_ms: Option<u32>,
    /// Missed heartbeats before the path to a peer is lost. Range: 1 to 100, and
    /// `interval_ms × misses` (failure detection) at most 600000 ms, so a dead node is
    /// always noticed within ten minutes. Default: 4 for network, 5 for disk.
    #[serde(default)]
    pub misses: Option<u32>,
    /// The shared block device or file of a disk path. Required for disk, refused for network.
    #[serde(default)]
    pub device: Option<String>,
    /// Bytes per node slot on the disk, a multiple of 512 large enough for a slot record of
    /// every member. Disk only. Range: 512 to 1048576. Default: 4096.
    #[serde(default)]
    pub slot_bytes: Option<u32>,
}

impl PathConfig {
    /// The heartbeat interval, the kind's default filled in.
    pub fn interval_ms(&self) -> u32 {
        self.interval_ms.unwrap_or(match self.kind {
            PathKindConfig::Network => 50,
            PathKindConfig::Disk => 200,
        })
    }

    /// The number of misses, the kind's default filled in.
    pub fn misses(&self) -> u32 {
        self.misses.unwrap_or(match self.kind {
            PathKindConfig::Network => 4,
            PathKindConfig::Disk => 5,
        })
    }

    /// The slot size of a disk path, the default filled in.
    pub fn slot_bytes(&self) -> u32 {
        self.slot_bytes.unwrap_or(4096)
    }
}

/// `[[node]]`: a node that may run resources.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name: its hostname or `--node NAME`, and the name in its certificate.
    /// Required.
    pub name: String,
    /// How much group load the node carries (M-to-N placement). Range: 0 to 1000000.
    /// Default: unlimited.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// One `host:port` per network path, keyed by path name. Required.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// What the node's monitor process does when even its hard stop of an exclusive resource
    /// fails (docs/runtime.md "The two processes"). Default: `reboot`.
    #[serde(default)]
    pub on_stop_failure: OnStopFailure,
}

/// What a node does when it cannot stop an exclusive resource, not even hard: it must not go
/// on as a member that may still hold what another node is about to start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStopFailure {
    /// Reboot the machine at once, without syncing (a hung device could hang the sync); it
    /// stops petting a hardware watchdog too. The default, as Pacemaker fences a node whose
    /// stop failed.
    #[default]
    Reboot,
    /// Stop petting the hardware watchdog and end the daemon (exit code 71): with a watchdog
    /// the machine resets; without one, what would not stop is left to the operator. For
    /// test machines and for nodes that must never reboot themselves.
    Exit,
}

/// `[witness]`: a third vote for a two-node cluster (`eterned --witness`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name (a node name; it may not appear in a group). Required.
    pub name: String,
    /// One `host:port` per network path, keyed by path name. Required.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
}

/// `[fencing]`: a device that powers a lost node off before its groups are taken over.
///
/// The agent is run as Pacemaker runs fence-agents (`src/resources/fence.rs`): its arguments
/// as `key=value` lines on stdin, its exit code as the verdict, killed at `timeout_ms`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FencingConfig {
    /// How a node is fenced: `agent` (a fence agent powers it off; the default) or
    /// `poison_pill` (a pill written on the disk path makes its monitor stop everything and
    /// reboot or exit, as SBD does; for clusters with a shared disk and no power switch).
    #[serde(default)]
    pub method: FenceMethod,
    /// The fence agent, e.g. `fence_ipmilan`: a name looked up on `PATH`, then in `/usr/sbin`
    /// and `/sbin`, or an absolute path. Required with `method = "agent"`; refused with
    /// `poison_pill`.
    #[serde(default)]
    pub agent: String,
    /// `poison_pill`: the disk heartbeat path (`[[path]] kind = "disk"`) whose device carries
    /// the pills. Required with `poison_pill`, refused otherwise.
    #[serde(default)]
    pub path: Option<String>,
    /// `poison_pill`: how long a fencer waits for the target to acknowledge its pill, in ms;
    /// past it the fence counts as done (a node that never read the pill has lost its lease
    /// by then), so it must be longer than `[timing] lease_ms` plus `takeover_margin_ms`.
    /// Range: 1 to 600000. Default: 10000.
    #[serde(default = "default_pill_timeout_ms")]
    pub pill_timeout_ms: u32,
    /// The agent's parameters, one `key=value` line each on its stdin, as given. The keys
    /// this product writes itself (`action`, `plug`, `port`, `nodename`) are refused here.
    /// Default: none.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// What fencing a node does: `reboot` (power cycle) or `off`. Default: reboot, as
    /// Pacemaker's `stonith-action`.
    #[serde(default)]
    pub action: FenceActionConfig,
    /// How long one run of the agent may take, in ms; past it the agent's process group is
    /// killed and the fence counts as failed. Range: 1 to 600000. Default: 60000.
    #[serde(default = "default_fence_timeout_ms")]
    pub timeout_ms: u32,
    /// The agent argument that names the target: `plug` or `port` (older agents). Default:
    /// plug.
    #[serde(default)]
    pub target_arg: FenceTargetArg,
    /// Per node: parameters for fencing that node, over `params` (an IPMI board per node:
    /// `node_params.n1 = { ipaddr = "10.50.0.11" }`). Same rules as `params`. Default: none.
    #[serde(default)]
    pub node_params: BTreeMap<String, BTreeMap<String, String>>,
    /// Per node: how the device names it (the `plug`/`port` value), as Pacemaker's
    /// `pcmk_host_map`. A node not listed is named by its node name. Default: none.
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    /// Per node: how long to wait before fencing it, in ms, as Pacemaker's
    /// `pcmk_delay_base`. In a two-node cluster where both sides may fence each other at
    /// once, a delay on one node lets that node shoot first and survive. Range: 0 to 600000.
    /// Default: none (0).
    #[serde(default)]
    pub delay_ms: BTreeMap<String, u32>,
    /// How often every node runs the agent's `monitor` action, in ms, to find out that the
    /// device cannot be reached before a fence needs it (Pacemaker monitors a stonith device
    /// the same way). A failure and the recovery are events (`fence_device_failed`,
    /// `fence_device_recovered`) and `eternectl status` shows the device's state. 0 turns
    /// it off. Range: 1000 to 86400000 (or 0, off). Default: 60000.
    #[serde(default = "default_fence_monitor_interval_ms")]
    pub monitor_interval_ms: u32,
}

fn default_fence_timeout_ms() -> u32 {
    60_000
}

fn default_fence_monitor_interval_ms() -> u32 {
    60_000
}

fn default_pill_timeout_ms() -> u32 {
    10_000
}

/// `[fencing] method`: how a node is fenced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceMethod {
    /// A fence agent (`agent`), run as Pacemaker runs fence-agents (the default).
    #[default]
    Agent,
    /// A pill on the disk path (`path`), read by the target's monitor.
    PoisonPill,
}

/// `[fencing] action`: what fencing a node does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceActionConfig {
    /// Power cycle the node (the default).
    #[default]
    Reboot,
    /// Power the node off; it stays off until someone powers it on.
    Off,
}

/// `[fencing] target_arg`: which agent argument carries the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceTargetArg {
    /// `plug=` (current fence-agents; the default).
    #[default]
    Plug,
    /// `port=` (older agents).
    Port,
}

/// How many nodes run a group at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// One node at a time (the default).
    #[default]
    Exclusive,
    /// Several nodes at once; failures are only recovered locally.
    Clone,
}

/// When a group returns to a more preferred node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailbackMode {
    /// Only when an administrator moves it (the default).
    #[default]
    Manual,
    /// Automatically, inside `failback_window` if one is given.
    Auto,
}

/// `[[group]]`: a resource group, the unit of failover.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name, unique in the cluster. Required.
    pub name: String,
    /// Nodes that may run the group, in priority order: the first is the preferred node, the
    /// rest are backup nodes. Required, not empty.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// `exclusive` or `clone`. Default: exclusive.
    #[serde(default)]
    pub mode: GroupMode,
    /// How many nodes run a clone group. Clone only. Range: 1 to the listed nodes (at most
    /// 64). Default: every listed node.
    #[serde(default)]
    pub copies: Option<u16>,
    /// `manual` or `auto`. Default: manual.
    #[serde(default)]
    pub failback: FailbackMode,
    /// Daily window for automatic failback, `HH:MM-HH:MM` node-local time, may wrap past
    /// midnight. Only with `failback = "auto"`. Default: any time.
    #[serde(default)]
    pub failback_window: Option<String>,
    /// Keep a healthy group where it is rather than move it to balance load. Default: true.
    #[serde(default = "default_true")]
    pub stickiness: bool,
    /// Local restarts allowed within `restart_window_ms` before remote failover. Range: 0 to
    /// 100. Default: 3.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// The window over which local restarts are counted, in ms. Range: 0 to 86400000 (a
    /// day), and not 0 while `max_restarts` is above 0. Default: 300000 (5 min).
    #[serde(default = "default_restart_window_ms")]
    pub restart_window_ms: u64,
    /// The wait before the second local restart within the window, in ms; each restart after
    /// it waits twice as long as the one before, up to `restart_backoff_max_ms` (the first
    /// restart is at once). 0: no wait. Range: 0 to 3600000. Default: 1000.
    #[serde(default = "default_restart_backoff_ms")]
    pub restart_backoff_ms: u64,
    /// The longest wait before a local restart, in ms. Range: 0 to 3600000, and not below
    /// `restart_backoff_ms`. Default: 30000.
    #[serde(default = "default_restart_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// How long after a node's last failure of this group its failure count is forgotten (it
    /// may host the group again), in ms, as Pacemaker's `failure-timeout`. 0: never (an
    /// administrator clears it). Range: 0 to 604800000 (a week). Default: 0.
    #[serde(default)]
    pub failure_timeout_ms: u64,
    /// How much of a node's capacity the group uses. Range: 0 to 1000000. Default: 0.
    #[serde(default)]
    pub load: u32,
    /// Groups that must not run on the same node as this one. Default: none.
    #[serde(default)]
    pub anti_affinity: Vec<String>,
    /// `[[group.resource]]`: the group's resources. Default: none.
    #[serde(default, rename = "resource")]
    pub resources: Vec<ResourceConfig>,
}

fn default_true() -> bool {
    true
}
fn default_max_restarts() -> u32 {
    3
}
fn default_restart_window_ms() -> u64 {
    300_000
}
fn default_restart_backoff_ms() -> u64 {
    1_000
}
fn default_restart_backoff_max_ms() -> u64 {
    30_000
}

/// A health check's interval and timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Time between two checks, in ms. Range: 10 to 86400000. Required.
    pub interval_ms: u32,
    /// How long one check may take, in ms; below the interval. Range: 1 to 3600000.
    /// Required.
    pub timeout_ms: u32,
}

/// The resource agent types built in.
pub const RESOURCE_TYPES: &[&str] = &[
    "ip",
    "application",
    "service",
    "filesystem",
    "disk_lock",
    "network_name",
    "share",
    "ocf",
];

/// `[[group.resource]]`: one resource of a group.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The resource's name, unique in the whole cluster. Required.
    pub name: String,
    /// The agent type, one of [`RESOURCE_TYPES`]. Required.
    #[serde(rename = "type")]
    pub kind: String,
    /// The agent's parameters (for `ip`: `address` with prefix, `nics`). Default: none.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Resources of the same group that must be started first. Default: none.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The quick health check. Default: `[monitor]` quick_interval_ms / quick_timeout_ms.
    #[serde(default)]
    pub quick: Option<MonitorConfig>,
    /// The deep health check. Default: `[monitor]` deep_interval_ms / deep_timeout_ms.
    #[serde(default)]
    pub deep: Option<MonitorConfig>,
    /// How long `start` may take, in ms. Range: 1 to 3600000. Default: `[monitor]`
    /// start_timeout_ms.
    #[serde(default)]
    pub start_timeout_ms: Option<u32>,
    /// How long `stop` may take, in ms. Range: 1 to 3600000. Default: `[monitor]`
    /// stop_timeout_ms.
    #[serde(default)]
    pub stop_timeout_ms: Option<u32>,
    /// Failures of this resource on one node, within the group's `restart_window_ms`, after
    /// which the group leaves that node even if `max_restarts` would allow another local
    /// restart (Pacemaker's `migration-threshold`): 1 moves the group at its first failure.
    /// Range: 1 to 100. Default: none, the group's `max_restarts` alone decides.
    #[serde(default)]
    pub migration_threshold: Option<u32>,
}

/// `[[schedule]]`: a cron-like move of a group.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The group to move. Required.
    pub group: String,
    /// The node to move it to, one of the group's nodes. Default: back to the group's most
    /// preferred eligible node.
    #[serde(default)]
    pub to: Option<String>,
    /// When: five cron fields, minute hour day-of-month month day-of-week, node-local time.
    /// Required.
    pub cron: String,
}

/// How a notification is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A line in the system log (RFC 5424 to `socket`).
    Log,
    /// Runs `command` with the event in environment variables.
    Script,
    /// POSTs the event as JSON to `url`.
    Webhook,
}

/// Event names a notification may filter on.
pub const EVENT_NAMES: &[&str] = &[
    "failover",
    "failback",
    "scheduled_move",
    "local_restart",
    "nic_failover",
    "resource_failed",
    "group_cannot_run",
    "node_lost",
    "node_joined",
    "path_lost",
    "path_restored",
    "fenced",
    "fence_started",
    "fence_succeeded",
    "fence_failed",
    "node_fenced",
    "fence_device_failed",
    "fence_device_recovered",
    "going_alone",
    "joined_committed",
    "config_mismatch",
    "config_differs",
    "event_log_reopened",
    "state_disk_failed",
    "state_disk_recovered",
    "failures_expired",
    "resource_refused",
    "admin_action",
];

/// `[[notification]]`: where events are sent besides the event log.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfig {
    /// `log`, `script` or `webhook`. Required.
    pub kind: NotificationKind,
    /// The program to run, for `script` (required there, refused elsewhere).
    #[serde(default)]
    pub command: Option<String>,
    /// The address to POST to, for `webhook` (required there, refused elsewhere).
    #[serde(default)]
    pub url: Option<String>,
    /// Only these events, from [`EVENT_NAMES`]. Default: all events.
    #[serde(default)]
    pub events: Vec<String>,
    /// `script`: how long the program may run, `webhook`: how long one try may take, in ms;
    /// past it the program's process group is killed, the try failed. Range: 1 to 600000.
    /// Default: 5000.
    #[serde(default = "default_notification_timeout_ms")]
    pub timeout_ms: u32,
    /// `log`: the system log's datagram socket. Default: `/dev/log` (journald and rsyslog).
    #[serde(default)]
    pub socket: Option<String>,
    /// `webhook` with `https://`: the PEM bundle of the CAs to trust. Default: the system's,
    /// `/etc/ssl/certs/ca-certificates.crt`.
    #[serde(default)]
    pub ca: Option<String>,
}

fn default_notification_timeout_ms() -> u32 {
    5_000
}
