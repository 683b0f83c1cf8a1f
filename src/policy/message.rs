//! What nodes say to each other, what a node core is told, and what it asks its shell to do.
//!
//! - [`Heartbeat`]: the datagram sent on every heartbeat path, to every peer.
//! - [`Message`]: control and consensus messages (QUIC streams in the daemon).
//! - [`Input`]: everything that can happen to a node core.
//! - [`Effect`]: everything a node core asks of its shell (the actors, or the simulator).
//! - [`Event`]: what happened, for logs, notifications and the simulator's trace.

use serde::{Deserialize, Serialize};

use super::detector::LivenessEvent;
use super::group::{Action, AgentOp, GroupStatus, Outcome};
use super::lease::Grant;
use super::raft_log::Persist;
use super::raft_wire::WireMessage;
use super::spec::{GroupId, NodeId, PathId, ResourceId};
use super::state::{AdminCommand, Command};

/// A heartbeat datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The sender's incarnation: changes when its daemon restarts.
    pub incarnation: u64,
    /// The digest of the sender's config; a node whose digest differs takes over nothing.
    pub digest: u64,
}

/// A control or consensus message between two nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A raft message. `stamp_us` is the leader's clock on a heartbeat, or the echo of that
    /// stamp on a heartbeat response (0 otherwise); see [`super::lease`].
    Raft {
        /// The raft message in our own types. Boxed: it is four times the size of any other
        /// message, and every message, input and effect is moved several times on its way
        /// (the encoding is the same as unboxed).
        msg: Box<WireMessage>,
        /// Stamp or echo.
        stamp_us: u64,
    },
    /// A raft request for a vote or a pre-vote, with the candidate's config digest: only a
    /// voter with the same `cluster.toml` passes it to raft (docs/architecture.md, "Agreement
    /// by content"). Carried with the request, not taken from the candidate's last heartbeat,
    /// which may be older than the file it restarted with.
    Vote {
        /// The raft message (a vote or pre-vote request).
        msg: Box<WireMessage>,
        /// The candidate's [`super::spec::ClusterSpec::digest`].
        digest: u64,
    },
    /// Please renew my lease; `stamp_us` is my clock when I sent this.
    LeaseRequest {
        /// The requester's clock.
        stamp_us: u64,
    },
    /// Your lease is renewed.
    LeaseGrant(Grant),
    /// The status of my instance of a group, for the coordinator.
    Report {
        /// The group.
        group: GroupId,
        /// The instance's epoch.
        epoch: u64,
        /// Its status here.
        status: GroupStatus,
        /// The sender had applied the instance's stop: a `Stopped` status is final, and only
        /// such a report confirms a stop (an earlier `Stopped` may be stale).
        stopping: bool,
    },
    /// An admin command forwarded to the coordinator.
    Admin(AdminCommand),
    /// The coordinator's answer to a forwarded [`Message::Admin`] it refused: the node that
    /// asked tells its operator why, rather than waiting for a commit that never comes.
    AdminRefused {
        /// The command, as forwarded.
        cmd: AdminCommand,
        /// Why (the check's words).
        why: String,
    },
}

impl Message {
    /// Whether this message travels on every path at once, the disk path included. Leases do:
    /// one lossy NIC must not cost a node its lease, and a node that still reaches the cluster
    /// through the shared disk keeps its groups (partitioned, not dead). Everything else goes
    /// on one network path (the consensus log never uses the disk).
    pub fn on_every_path(&self) -> bool {
        matches!(self, Message::LeaseRequest { .. } | Message::LeaseGrant(_))
    }
}

/// Messages that wait for a [`Persist`] batch: to whom, on which paths, what.
pub type Waiting = Vec<(NodeId, PathSet, Message)>;

/// A set of heartbeat paths (by [`PathId`]): which paths a message goes on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathSet(u32);

impl PathSet {
    /// The most paths a config may have (validation refuses more).
    pub const MAX_PATHS: usize = 32;

    /// The set with `p` added (paths past [`PathSet::MAX_PATHS`] are never in a set).
    pub fn with(self, p: PathId) -> PathSet {
        match 1u32.checked_shl(u32::from(p)) {
            Some(bit) => PathSet(self.0 | bit),
            None => self,
        }
    }

    /// A set of one path.
    pub fn one(p: PathId) -> PathSet {
        PathSet::default().with(p)
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: PathId) -> bool {
        1u32.checked_shl(u32::from(p))
            .is_some_and(|bit| self.0 & bit != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The paths in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = PathId> {
        (0..Self::MAX_PATHS as PathId).filter(move |&p| self.contains(p))
    }
}

/// Something that happens to a node core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A heartbeat arrived.
    Heartbeat {
        /// From whom.
        from: NodeId,
        /// On which path.
        path: PathId,
        /// What it said.
        hb: Heartbeat,
    },
    /// A message arrived (already authenticated by the transport).
    Message {
        /// From whom.
        from: NodeId,
        /// What.
        msg: Message,
    },
    /// An agent operation finished (or was killed at its deadline by the shell).
    AgentResult {
        /// The group.
        group: GroupId,
        /// The resource.
        resource: ResourceId,
        /// The op id from the [`AgentOp`].
        op: u64,
        /// How it went.
        outcome: Outcome,
        /// Why, in the agent's words (for events and status; decides nothing).
        reason: String,
    },
    /// A resource failed on its own, between operations: its process exited (seen at once, by
    /// pidfd or child wait), its agent saw it fail, or its actor keeps crashing. The group's
    /// local recovery takes over, as after a failed monitor.
    ResourceFailed {
        /// The group.
        group: GroupId,
        /// The resource.
        resource: ResourceId,
        /// What happened (for events and status; decides nothing).
        reason: String,
    },
    /// An administrator asked for something on this node.
    Admin(AdminCommand),
    /// A connection to `peer` on `path` came up or went down (network paths; a disk path is
    /// always connected unless the shell says otherwise). Decides which paths messages take.
    Connection {
        /// The peer.
        peer: NodeId,
        /// The path.
        path: PathId,
        /// Up or down.
        up: bool,
    },
    /// The shell made every [`Effect::Persist`] batch up to `number` durable.
    Persisted {
        /// The last batch written.
        number: u64,
    },
    /// A fence the core asked for ([`Effect::Fence`]) ended: the agent's verdict, or a
    /// failure at the timeout the shell enforces. Always fed, exactly once per request.
    FenceResult {
        /// The node fenced.
        target: NodeId,
        /// The request's attempt number, from the effect.
        attempt: u32,
        /// How it went.
        outcome: FenceOutcome,
    },
    /// The shell ran the fence device's `monitor` action (every `monitor_interval_ms`).
    FenceDeviceChecked {
        /// How it went (`ok`: the device answers).
        outcome: FenceOutcome,
    },
    /// The shell could not write a raft log batch (a full or failing state disk) and keeps
    /// trying: this node fails as a whole until [`Input::StateDiskRecovered`] (see
    /// [`crate::policy::node::NodeCore::state_disk_failed`]).
    StateDiskFailed {
        /// The file and the operating system's error.
        why: String,
    },
    /// A raft log batch was written again after [`Input::StateDiskFailed`].
    StateDiskRecovered,
}

/// How one run of the fence agent went, as the shell saw it (for the events, and `ok` for the
/// coordinator's decision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceOutcome {
    /// The agent confirmed the action (exit 0).
    pub ok: bool,
    /// The action run (`reboot`, `off`).
    pub action: String,
    /// The agent's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How long the agent ran, in ms (the delay before it not counted).
    pub duration_ms: u64,
    /// Why it failed, or empty.
    pub reason: String,
    /// The tail of the agent's output.
    pub output: String,
}

impl FenceOutcome {
    /// A fence of `action` that failed before or around the agent's run, for `reason`.
    pub fn failed(action: &str, reason: String) -> FenceOutcome {
        FenceOutcome {
            ok: false,
            action: action.into(),
            exit_code: None,
            duration_ms: 0,
            reason,
            output: String::new(),
        }
    }
}

/// Something a node core asks its shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a heartbeat datagram on `path` to every peer.
    Heartbeat {
        /// The path.
        path: PathId,
        /// The datagram.
        hb: Heartbeat,
    },
    /// Send a message to one peer on each of `paths` (the core's choice, see
    /// `NodeCore::route`).
    Send {
        /// To whom.
        to: NodeId,
        /// On which paths.
        paths: PathSet,
        /// What.
        msg: Message,
    },
    /// Make `batch` durable, after every batch before it; then send `then` (messages that may
    /// only leave once the batch is written: a follower's answers, a vote) and feed
    /// [`Input::Persisted`]. A batch that cannot be written: send nothing, feed
    /// [`Input::StateDiskFailed`], and try it again (later batches wait behind it).
    Persist {
        /// What to write (boxed: a batch is large and rare, and every effect is moved a few
        /// times on its way to the shell).
        batch: Box<Persist>,
        /// What to send once it is written, and on which paths.
        then: Waiting,
    },
    /// Run an agent operation (the shell kills it at its deadline).
    Agent(AgentOp),
    /// Arm the watchdog to reboot this node at `deadline_us` (our clock) unless re-armed, or
    /// disarm it (`None`): armed while exclusive resources may be active, at the lease's end.
    Watchdog {
        /// When to reboot.
        deadline_us: Option<u64>,
    },
    /// Run the fence agent against `target` (after its configured delay, bounded by the
    /// configured timeout), off the core's thread, and feed [`Input::FenceResult`] with the
    /// same `attempt`. Asked by the coordinator once per target, not per group.
    Fence {
        /// The node to fence.
        target: NodeId,
        /// Counts the coordinator's requests for this target (1 = first).
        attempt: u32,
    },
    /// Something happened worth a log line or notification.
    Event(Event),
}

/// What happened, as a typed event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A liveness change (path lost or up, peer suspected or alive, peer restarted).
    Liveness(LivenessEvent),
    /// This node became the coordinator (raft leader).
    BecameCoordinator {
        /// Its term.
        term: u64,
    },
    /// This node is no longer the coordinator.
    SteppedDown {
        /// Its term now.
        term: u64,
    },
    /// A command was committed and applied here.
    Committed {
        /// The log index (the epoch of an activation).
        index: u64,
        /// The command.
        cmd: Command,
    },
    /// This node's lease ran out (or the stop budget before it began).
    LeaseLost,
    /// This node holds a lease again.
    LeaseAcquired,
    /// A resource failed.
    ResourceFailed {
        /// The group.
        group: GroupId,
        /// The resource.
        resource: ResourceId,
        /// The operation that failed (a process exit counts as a quick monitor).
        action: Action,
        /// Why, as the agent said.
        reason: String,
    },
    /// A local restart began.
    LocalRestart {
        /// The group.
        group: GroupId,
        /// The failed resource.
        resource: ResourceId,
        /// Restarts in the window.
        count: u32,
    },
    /// Local recovery of a group is exhausted here.
    Escalated {
        /// The group.
        group: GroupId,
    },
    /// A group instance here changed status.
    GroupStatus {
        /// The group.
        group: GroupId,
        /// The epoch.
        epoch: u64,
        /// The new status.
        status: GroupStatus,
    },
    /// A peer runs a different configuration.
    ConfigMismatch {
        /// The peer.
        peer: NodeId,
        /// Its digest.
        digest: u64,
    },
    /// This node stopped acting on the cluster's state, or acts again: its config is not the
    /// committed one, or it could not read a committed entry (`why`); `None` once it agrees.
    ConfigDiffers {
        /// Why, or `None`: the files agree again.
        why: Option<String>,
    },
    /// As coordinator: a follower's log ends before entries it had acknowledged (its disk
    /// lost them, or its log was discarded to rejoin); it is sent them again, or a snapshot.
    FollowerBehind {
        /// The follower.
        peer: NodeId,
        /// What it had acknowledged (the log index).
        acknowledged: u64,
        /// Where its log ends now.
        ends_at: u64,
    },
    /// This node was too far behind for the entries it missed (the coordinator had
    /// compacted them): it installed the coordinator's snapshot of the state instead.
    SnapshotInstalled {
        /// The log index the snapshot stands for.
        index: u64,
    },
    /// This node, whose log was discarded to rejoin, holds what the coordinator had
    /// committed: it votes and may coordinate again.
    Rejoined {
        /// Its log is durable through this index.
        through: u64,
    },
    /// A message from a peer could not be used and was dropped.
    Dropped {
        /// From whom.
        from: NodeId,
        /// Why.
        why: String,
    },
    /// An admin command was refused.
    AdminRefused {
        /// The command.
        cmd: AdminCommand,
        /// Why.
        why: String,
    },
    /// This node's stop failed: it gives up its lease and waits for the watchdog.
    SelfFence,
    /// The coordinator asked for a fence of `target` (its groups wait for it).
    FenceStarted {
        /// The node to fence.
        target: NodeId,
        /// The attempt (1 = first).
        attempt: u32,
    },
    /// The fence agent confirmed `target` is fenced: its stopping instances are released.
    FenceSucceeded {
        /// The node fenced.
        target: NodeId,
        /// The attempt.
        attempt: u32,
        /// The agent's verdict.
        outcome: FenceOutcome,
    },
    /// The fence of `target` failed: nothing of it is taken over; tried again later.
    FenceFailed {
        /// The node not fenced.
        target: NodeId,
        /// The attempt.
        attempt: u32,
        /// The agent's verdict.
        outcome: FenceOutcome,
    },
    /// This node's fence device stopped answering its `monitor` action: a fence asked of
    /// this node now would fail.
    FenceDeviceFailed {
        /// The failed check.
        outcome: FenceOutcome,
    },
    /// This node's fence device answers again.
    FenceDeviceRecovered {
        /// The good check.
        outcome: FenceOutcome,
    },
    /// This node's state disk failed: it gave up its lease, stops its exclusive groups and
    /// falls silent, as a node that died, until its writes succeed again.
    StateDiskFailed {
        /// The file and the operating system's error.
        why: String,
    },
    /// This node's raft log is written again: it is heard again and may ask for a lease.
    StateDiskRecovered,
    /// A group not placed here was found active here at start (an earlier run of the daemon
    /// left it) and has been stopped, before this node asked for a lease.
    OrphanStopped {
        /// The group.
        group: GroupId,
    },
    /// A group placed on another node was found active here too (at start, or when this node
    /// came back after losing its lease) and has been stopped here: the placed copy is the one
    /// that stays.
    MultipleActive {
        /// The group.
        group: GroupId,
        /// Where it is placed.
        placed: NodeId,
    },
}
