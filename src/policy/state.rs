//! The cluster state machine, applied from the replicated log.
//!
//! Every node applies the same committed [`Command`]s in the same order and so holds the same
//! [`ClusterState`]: where each group is placed and under which epoch, which nodes are in
//! standby, failure counts, admin overrides. A command carries its preconditions (the epoch it
//! acts on); one whose preconditions no longer hold is a no-op, so a stale or duplicated
//! proposal can never undo a newer decision.
//!
//! The epoch of an activation is the log index of the entry that placed it: unique, and larger
//! than every epoch before it (design.md §5, rule 2).

use serde::{Deserialize, Serialize};

use super::spec::{ClusterSpec, GroupId, NodeId, ResourceId};

/// Why a group started, stopped or moved. Every move names one (invariant L2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// First placement of a group that ran nowhere.
    Initial,
    /// The owner failed: its node was lost, or local recovery was exhausted there.
    Failure,
    /// An administrator moved the group.
    Admin,
    /// Return to a more preferred node (automatic, within the window).
    Failback,
    /// A scheduled move fired.
    Schedule,
    /// The node was put in standby (drained).
    Standby,
    /// The node left cleanly (daemon shutdown hands its groups over).
    Shutdown,
    /// Capacity or anti-affinity required the move.
    Capacity,
}

/// Why an instance was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Release {
    /// The owner confirmed the stop (rule 4a).
    Confirmed,
    /// The owner's lease ran out on the coordinator's clock (rule 4b).
    LeaseExpired,
    /// A fencing device confirmed the owner is off (rule 4c).
    Fenced,
}

/// An administrator's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Move a group to `to`, or to the next eligible node in its order.
    Move {
        /// The group.
        group: GroupId,
        /// The target, if named.
        to: Option<NodeId>,
    },
    /// Drain a node (true) or let it host groups again (false).
    Standby {
        /// The node.
        node: NodeId,
        /// On or off.
        on: bool,
    },
    /// Stop managing (true): nothing is started, stopped or moved; or resume (false).
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// Return a group to its most preferred eligible node now, clearing any admin move.
    FailbackNow {
        /// The group.
        group: GroupId,
    },
    /// Stop a group everywhere and start it nowhere (true), or let it run again (false):
    /// Pacemaker's `target-role=Stopped`, for one group instead of the whole cluster.
    Disable {
        /// The group.
        group: GroupId,
        /// On (disabled) or off.
        on: bool,
    },
    /// Leave one resource to the administrator (`on` false: Pacemaker's `is-managed=false`),
    /// or take it back (`on` true). Unmanaged, it is monitored and never started or stopped,
    /// and its group is pinned: neither moved nor stopped while it is.
    Manage {
        /// The resource: its number in [`ClusterSpec::resources`].
        resource: u16,
        /// Managed (true) or not.
        on: bool,
    },
    /// Forget the failure counts of a group (on every node, or one).
    ClearFailures {
        /// The group.
        group: GroupId,
        /// Only this node's count, if named.
        node: Option<NodeId>,
    },
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Start `group` on `node`; its epoch is this entry's index. Requires (exclusive) that
    /// the group has no instance anywhere, or (clone) none on `node`.
    Activate {
        /// The group.
        group: GroupId,
        /// Where.
        node: NodeId,
        /// Why.
        cause: Cause,
    },
    /// The owner of instance (`node`, `epoch`) must stop it.
    Stop {
        /// The group.
        group: GroupId,
        /// The owner.
        node: NodeId,
        /// The instance's epoch.
        epoch: u64,
        /// Why.
        cause: Cause,
    },
    /// Instance (`node`, `epoch`) no longer runs anywhere; the group may start elsewhere.
    Released {
        /// The group.
        group: GroupId,
        /// The former owner.
        node: NodeId,
        /// The instance's epoch.
        epoch: u64,
        /// How we know.
        how: Release,
    },
    /// Local recovery of instance (`node`, `epoch`) was exhausted: count a failure there and
    /// have the owner stop it.
    Failed {
        /// The group.
        group: GroupId,
        /// The node where it failed.
        node: NodeId,
        /// The instance's epoch.
        epoch: u64,
        /// A fatal failure (OCF 6): count a failure on every node of the group, so it runs
        /// nowhere until they are cleared. Absent in entries written before it existed.
        #[serde(default)]
        everywhere: bool,
    },
    /// A fencing device confirmed `node` was fenced (rule 4c) after the state had applied
    /// index `through`: every stopping instance of `node` with an epoch up to `through` ran
    /// before the fence and is gone; it is released. Instances placed later, and active
    /// ones (the node may have rebooted and started them again), are untouched.
    Fenced {
        /// The node fenced.
        node: NodeId,
        /// The applied index when the fence was asked for.
        through: u64,
    },
    /// Two nodes with a fencing device (docs/architecture.md §6): `node` fenced `peer`, its
    /// only peer, and goes on as the only voter. Every instance of `peer` placed up to
    /// `through` (the last index of `node`'s log when the fence succeeded: the peer could
    /// commit nothing without `node`) ran on the machine the device powered off and is
    /// released, active or stopping. The cluster is solo until a [`Command::Joined`] of the
    /// peer.
    Solo {
        /// The survivor.
        node: NodeId,
        /// The node fenced.
        peer: NodeId,
        /// The survivor's last log index when the fence succeeded.
        through: u64,
    },
    /// Two nodes with a fencing device: `node`'s daemon of `incarnation` took part in this
    /// commit. Proposed for a peer only while it is a voter, so the entry commits only with
    /// its acknowledgement: a node that applied its own `Joined` holds every committed entry,
    /// and may go on alone later ([`ClusterState::may_go_alone`]). A `Joined` of the peer of
    /// a solo survivor ends the solo state.
    Joined {
        /// The node.
        node: NodeId,
        /// Its daemon's incarnation.
        incarnation: u64,
    },
    /// An administrator's command, already checked by [`ClusterState::check_admin`].
    Admin(AdminCommand),
    /// Scheduled move `index` fired at civil minute `stamp` (minutes since the epoch).
    ScheduleFired {
        /// Index into [`ClusterSpec::schedules`].
        index: u16,
        /// The civil minute it fired for (so that it fires once).
        stamp: u64,
    },
    /// `node`'s failure count of `group` has not grown for the group's `failure_timeout_ms`:
    /// it is forgotten, as an administrator's `ClearFailures` of that node would (proposed by
    /// the coordinator, `Coordinator::expire_failures`).
    FailuresExpired {
        /// The group.
        group: GroupId,
        /// The node whose count is forgotten.
        node: NodeId,
    },
    /// The config every later entry is proposed under: the digest of the coordinator's
    /// `cluster.toml` ([`ClusterSpec::digest`]). A coordinator commits it before it proposes
    /// anything else; it was elected by voters that all have the same file
    /// (docs/architecture.md, "Agreement by content"). A node whose digest differs from the
    /// committed one takes nothing over and votes for no coordinator of the others.
    Config {
        /// The digest.
        digest: u64,
    },
}

/// What an id in a [`Command`] indexes (see [`Command::ids_mut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// [`ClusterSpec::groups`].
    Group,
    /// [`ClusterSpec::nodes`].
    Node,
    /// [`ClusterSpec::schedules`].
    Schedule,
    /// [`ClusterSpec::resources`]: every group's resources, numbered across groups.
    Resource,
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdKind::Group => "group",
            IdKind::Node => "node",
            IdKind::Schedule => "scheduled move",
            IdKind::Resource => "resource",
        })
    }
}

impl Command {
    /// Visits every id the command holds, in a fixed order, with what it indexes: the log
    /// writes these by name (`policy/entry.rs`), since positions differ between files.
    pub fn ids_mut(&mut self, f: &mut impl FnMut(IdKind, &mut u16)) {
        match self {
            Command::Activate { group, node, .. }
            | Command::Stop { group, node, .. }
            | Command::Released { group, node, .. }
            | Command::Failed { group, node, .. }
            | Command::Admin(AdminCommand::Move {
                group,
                to: Some(node),
            })
            | Command::Admin(AdminCommand::ClearFailures {
                group,
                node: Some(node),
            })
            | Command::FailuresExpired { group, node } => {
                f(IdKind::Group, group);
                f(IdKind::Node, node);
            }
            Command::Admin(AdminCommand::Move { group, to: None })
            | Command::Admin(AdminCommand::ClearFailures { group, node: None })
            | Command::Admin(AdminCommand::FailbackNow { group })
            | Command::Admin(AdminCommand::Disable { group, .. }) => f(IdKind::Group, group),
            Command::Fenced { node, .. }
            | Command::Joined { node, .. }
            | Command::Admin(AdminCommand::Standby { node, .. }) => f(IdKind::Node, node),
            Command::Solo { node, peer, .. } => {
                f(IdKind::Node, node);
                f(IdKind::Node, peer);
            }
            Command::ScheduleFired { index, .. } => f(IdKind::Schedule, index),
            Command::Admin(AdminCommand::Manage { resource, .. }) => f(IdKind::Resource, resource),
            Command::Admin(AdminCommand::Maintenance { .. }) | Command::Config { .. } => {}
        }
    }

    /// The one group this command can change, or `None` when it can change every group
    /// (standby, maintenance). Lets a node reconcile only what a commit touched.
    pub fn group(&self, spec: &ClusterSpec) -> Option<GroupId> {
        match *self {
            Command::Activate { group, .. }
            | Command::Stop { group, .. }
            | Command::Released { group, .. }
            | Command::Failed { group, .. }
            | Command::Admin(AdminCommand::Move { group, .. })
            | Command::Admin(AdminCommand::FailbackNow { group })
            | Command::Admin(AdminCommand::ClearFailures { group, .. })
            | Command::Admin(AdminCommand::Disable { group, .. })
            | Command::FailuresExpired { group, .. } => Some(group),
            Command::Admin(AdminCommand::Standby { .. } | AdminCommand::Maintenance { .. })
            | Command::Fenced { .. }
            | Command::Solo { .. }
            | Command::Joined { .. }
            | Command::Config { .. } => None,
            Command::ScheduleFired { index, .. } => {
                spec.schedules.get(usize::from(index)).map(|s| s.group)
            }
            Command::Admin(AdminCommand::Manage { resource, .. }) => {
                spec.resource_at(resource).map(|(g, _)| g)
            }
        }
    }
}

/// Running or on its way down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The owner should run it.
    Active,
    /// The owner must stop it; nobody else may start it until it is released.
    Stopping,
}

/// One activation of a group on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The owner.
    pub node: NodeId,
    /// The fencing token: the index of the entry that placed it.
    pub epoch: u64,
    /// Active or stopping.
    pub phase: Phase,
    /// Why it is stopping (meaningful in `Stopping`).
    pub stop_cause: Option<Cause>,
}

/// The replicated state of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Where it runs or is stopping (at most one for an exclusive group).
    pub instances: Vec<Instance>,
    /// Failures per node (indexed by node id): a node with a count is not eligible.
    pub failures: Vec<u32>,
    /// Where an administrator or a schedule put it; placement prefers it while eligible.
    pub home: Option<NodeId>,
    /// A move is wanted away from the current owner even though it is eligible (admin move
    /// without a named node): the next eligible node after `avoid`.
    pub avoid: Option<NodeId>,
    /// A failback was asked for: move to the most preferred node regardless of the window.
    pub failback_now: bool,
    /// Who asked for `home`, `avoid` or `failback_now` (admin, schedule or failback).
    pub request_cause: Option<Cause>,
    /// Why the group last stopped (the cause of its next activation).
    pub last_cause: Option<Cause>,
    /// An administrator disabled it: it is stopped everywhere and started nowhere.
    pub disabled: bool,
    /// Its resources an administrator took out of the cluster's hands (indices in the group,
    /// sorted): while any is, the group is pinned.
    pub unmanaged: Vec<ResourceId>,
    /// The highest epoch ever used for this group.
    pub last_epoch: u64,
    /// Bumped on every change, so the coordinator can tell a proposal is still pending.
    pub version: u64,
}

/// The whole replicated state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterState {
    /// Per group.
    pub groups: Vec<GroupState>,
    /// Per node: drained by an administrator.
    pub standby: Vec<bool>,
    /// The whole cluster is in maintenance: nothing is started, stopped or moved.
    pub maintenance: bool,
    /// Per scheduled move: the civil minute it last fired for.
    pub schedule_fired: Vec<u64>,
    /// Two nodes with fencing: the survivor going on alone since its [`Command::Solo`].
    pub solo: Option<NodeId>,
    /// Per node: the incarnation of its last [`Command::Joined`] (0: none).
    pub joined: Vec<u64>,
    /// The digest of the config the log is proposed under (0: none committed yet), from the
    /// last [`Command::Config`].
    pub config: u64,
    /// The index of the last applied entry.
    pub applied: u64,
}

/// What applying a command changed, for events and the simulator's trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The command changed the state.
    Changed,
    /// Its preconditions no longer held; nothing changed.
    Ignored,
}

/// Why an admin command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// Unknown group or node id.
    #[error("no such {0}")]
    Unknown(&'static str),
    /// The target node cannot run the group.
    #[error("node {node} cannot run group {group}: {why}")]
    NotEligible {
        /// Group name.
        group: String,
        /// Node name.
        node: String,
        /// Why not.
        why: String,
    },
    /// Nothing to do or not possible now.
    #[error("{0}")]
    Refused(String),
}

impl ClusterState {
    /// The state before the first entry.
    pub fn new(spec: &ClusterSpec) -> ClusterState {
        let n = spec.nodes.len();
        ClusterState {
            groups: (0..spec.groups.len())
                .map(|_| GroupState {
                    failures: vec![0; n],
                    ..GroupState::default()
                })
                .collect(),
            standby: vec![false; n],
            maintenance: false,
            schedule_fired: vec![0; spec.schedules.len()],
            solo: None,
            joined: vec![0; n],
            config: 0,
            applied: 0,
        }
    }

    /// Two nodes with fencing: whether `me`, whose daemon is `incarnation`, may fence its peer
    /// and go on alone. Only if this daemon's own [`Command::Joined`] is applied (its log
    /// then holds every committed entry, and every later commit needs it) and the peer is not
    /// going on alone (a peer that fenced us committed entries we do not have).
    pub fn may_go_alone(&self, me: NodeId, incarnation: u64) -> bool {
        self.joined.get(usize::from(me)) == Some(&incarnation)
            && incarnation != 0
            && self.solo.is_none_or(|s| s == me)
    }

    /// Apply the committed entry at `index`.
    pub fn apply(&mut self, spec: &ClusterSpec, index: u64, cmd: &Command) -> Applied {
        self.applied = self.applied.max(index);
        let changed = match *cmd {
            Command::Activate {
                group,
                node,
                cause: _,
            } => self.activate(spec, group, node, index),
            Command::Stop {
                group,
                node,
                epoch,
                cause,
            } => {
                self.with_instance(group, node, epoch, |i| {
                    if i.phase == Phase::Active {
                        i.phase = Phase::Stopping;
                        i.stop_cause = Some(cause);
                        true
                    } else {
                        false
                    }
                }) && {
                    self.groups[usize::from(group)].last_cause = Some(cause);
                    true
                }
            }
            Command::Released {
                group,
                node,
                epoch,
                how: _,
            } => {
                let Some(g) = self.groups.get_mut(usize::from(group)) else {
                    return Applied::Ignored;
                };
                let before = g.instances.len();
                g.instances
                    .retain(|i| !(i.node == node && i.epoch == epoch));
                let released = before != g.instances.len();
                if released {
                    // A change like any other: the coordinator's next step for the group (an
                    // activation) must not wait for its retry timer.
                    g.version += 1;
                }
                released
            }
            Command::Fenced { node, through } => self.release_fenced(node, through),
            Command::Solo {
                node,
                peer,
                through,
            } => {
                if usize::from(node) >= self.joined.len()
                    || usize::from(peer) >= self.joined.len()
                    || node == peer
                {
                    return Applied::Ignored;
                }
                self.solo = Some(node);
                for g in &mut self.groups {
                    let before = g.instances.len();
                    g.instances
                        .retain(|i| !(i.node == peer && i.epoch <= through));
                    if g.instances.len() != before {
                        g.version += 1;
                    }
                }
                true
            }
            Command::Joined { node, incarnation } => {
                let Some(j) = self.joined.get_mut(usize::from(node)) else {
                    return Applied::Ignored;
                };
                *j = incarnation;
                if self.solo.is_some_and(|s| s != node) {
                    self.solo = None;
                }
                true
            }
            Command::Failed {
                group,
                node,
                epoch,
                everywhere,
            } => {
                let hit = self.with_instance(group, node, epoch, |i| {
                    i.phase = Phase::Stopping;
                    i.stop_cause = Some(Cause::Failure);
                    true
                });
                if hit {
                    let g = &mut self.groups[usize::from(group)];
                    if let Some(f) = g.failures.get_mut(usize::from(node)) {
                        *f = f.saturating_add(1);
                    }
                    if everywhere {
                        let nodes = spec.groups.get(usize::from(group)).map(|gs| &gs.nodes);
                        for n in nodes.into_iter().flatten() {
                            if let Some(f) = g.failures.get_mut(usize::from(*n)) {
                                *f = (*f).max(1);
                            }
                        }
                    }
                    if g.home == Some(node) {
                        g.home = None;
                    }
                    g.last_cause = Some(Cause::Failure);
                }
                hit
            }
            Command::Admin(ref a) => self.apply_admin(spec, a),
            Command::FailuresExpired { group, node } => self.apply_admin(
                spec,
                &AdminCommand::ClearFailures {
                    group,
                    node: Some(node),
                },
            ),
            Command::Config { digest } => std::mem::replace(&mut self.config, digest) != digest,
            Command::ScheduleFired { index: s, stamp } => {
                let Some(sched) = spec.schedules.get(usize::from(s)) else {
                    return Applied::Ignored;
                };
                if self
                    .schedule_fired
                    .get(usize::from(s))
                    .is_none_or(|&f| f >= stamp)
                {
                    return Applied::Ignored;
                }
                self.schedule_fired[usize::from(s)] = stamp;
                let g = &mut self.groups[usize::from(sched.group)];
                g.home = sched.to;
                g.failback_now = sched.to.is_none();
                g.avoid = None;
                g.request_cause = Some(Cause::Schedule);
                g.version += 1;
                true
            }
        };
        if changed {
            Applied::Changed
        } else {
            Applied::Ignored
        }
    }

    fn activate(&mut self, spec: &ClusterSpec, group: GroupId, node: NodeId, epoch: u64) -> bool {
        let Some(gs) = spec.groups.get(usize::from(group)) else {
            return false;
        };
        if !gs.nodes.contains(&node) || self.maintenance {
            return false;
        }
        if self.groups[usize::from(group)].disabled {
            return false;
        }
        let g = &mut self.groups[usize::from(group)];
        let blocked = if gs.is_exclusive() {
            !g.instances.is_empty()
        } else {
            g.instances.iter().any(|i| i.node == node)
        };
        if blocked || epoch <= g.last_epoch {
            return false;
        }
        g.instances.push(Instance {
            node,
            epoch,
            phase: Phase::Active,
            stop_cause: None,
        });
        g.last_epoch = epoch;
        // A scheduled move is one-shot; an admin move pins the group until `failback`.
        if g.home == Some(node) && g.request_cause == Some(Cause::Schedule) {
            g.home = None;
        }
        g.failback_now = false;
        if g.avoid.is_some_and(|a| a != node) {
            g.avoid = None;
        }
        g.version += 1;
        true
    }

    /// [`Command::Fenced`]: release every stopping instance of `node` up to `through`.
    fn release_fenced(&mut self, node: NodeId, through: u64) -> bool {
        let mut any = false;
        for g in &mut self.groups {
            let before = g.instances.len();
            g.instances
                .retain(|i| !(i.node == node && i.phase == Phase::Stopping && i.epoch <= through));
            if g.instances.len() != before {
                g.version += 1;
                any = true;
            }
        }
        any
    }

    /// Whether `node` has a stopping instance a [`Command::Fenced`] up to `through` would
    /// release.
    pub fn fence_would_release(&self, node: NodeId, through: u64) -> bool {
        self.groups.iter().any(|g| {
            g.instances
                .iter()
                .any(|i| i.node == node && i.phase == Phase::Stopping && i.epoch <= through)
        })
    }

    fn with_instance(
        &mut self,
        group: GroupId,
        node: NodeId,
        epoch: u64,
        f: impl FnOnce(&mut Instance) -> bool,
    ) -> bool {
        let Some(g) = self.groups.get_mut(usize::from(group)) else {
            return false;
        };
        let Some(i) = g
            .instances
            .iter_mut()
            .find(|i| i.node == node && i.epoch == epoch)
        else {
            return false;
        };
        let changed = f(i);
        if changed {
            g.version += 1;
        }
        changed
    }

    /// The node `group` is active on, if any.
    pub fn active_node(&self, group: GroupId) -> Option<NodeId> {
        self.groups
            .get(usize::from(group))?
            .instances
            .iter()
            .find(|i| i.phase == Phase::Active)
            .map(|i| i.node)
    }

    /// The instance of `group` on `node`, if any.
    pub fn instance_on(&self, group: GroupId, node: NodeId) -> Option<&Instance> {
        self.groups
            .get(usize::from(group))?
            .instances
            .iter()
            .find(|i| i.node == node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::simple_spec;

    /// Every command that changes a group bumps its version: the coordinator holds back a
    /// second proposal for a group only while its version is the one it proposed against.
    /// (A release once did not, and the activation after it waited 200 ms for nothing.)
    #[test]
    fn every_change_to_a_group_bumps_its_version() {
        let spec = simple_spec(3, 1);
        let mut st = ClusterState::new(&spec);
        let admin = |a| Command::Admin(a);
        let steps: Vec<(u64, Command)> = vec![
            (
                5,
                Command::Activate {
                    group: 0,
                    node: 0,
                    cause: Cause::Initial,
                },
            ),
            (
                6,
                Command::Stop {
                    group: 0,
                    node: 0,
                    epoch: 5,
                    cause: Cause::Admin,
                },
            ),
            (
                7,
                Command::Released {
                    group: 0,
                    node: 0,
                    epoch: 5,
                    how: Release::Confirmed,
                },
            ),
            (
                8,
                Command::Activate {
                    group: 0,
                    node: 1,
                    cause: Cause::Failure,
                },
            ),
            (
                9,
                Command::Failed {
                    group: 0,
                    node: 1,
                    epoch: 8,
                    everywhere: false,
                },
            ),
            (
                10,
                Command::Released {
                    group: 0,
                    node: 1,
                    epoch: 8,
                    how: Release::LeaseExpired,
                },
            ),
            (
                11,
                admin(AdminCommand::Move {
                    group: 0,
                    to: Some(2),
                }),
            ),
            (12, admin(AdminCommand::FailbackNow { group: 0 })),
            (
                13,
                admin(AdminCommand::ClearFailures {
                    group: 0,
                    node: None,
                }),
            ),
            (14, admin(AdminCommand::Standby { node: 2, on: true })),
            (15, admin(AdminCommand::Maintenance { on: true })),
            (16, admin(AdminCommand::Maintenance { on: false })),
        ];
        for (index, cmd) in steps {
            let before = st.groups[0].version;
            assert_eq!(st.apply(&spec, index, &cmd), Applied::Changed, "{cmd:?}");
            assert!(
                st.groups[0].version > before,
                "{cmd:?} left the version at {before}"
            );
        }
    }

    #[test]
    fn a_command_names_the_one_group_it_can_change() {
        let spec = simple_spec(3, 2);
        let admin = |a| Command::Admin(a);
        let table: Vec<(Command, Option<GroupId>)> = vec![
            (
                Command::Activate {
                    group: 1,
                    node: 0,
                    cause: Cause::Initial,
                },
                Some(1),
            ),
            (
                Command::Stop {
                    group: 1,
                    node: 0,
                    epoch: 3,
                    cause: Cause::Admin,
                },
                Some(1),
            ),
            (
                Command::Released {
                    group: 0,
                    node: 2,
                    epoch: 3,
                    how: Release::Confirmed,
                },
                Some(0),
            ),
            (
                Command::Failed {
                    group: 1,
                    node: 2,
                    epoch: 3,
                    everywhere: false,
                },
                Some(1),
            ),
            (admin(AdminCommand::Move { group: 1, to: None }), Some(1)),
            (admin(AdminCommand::FailbackNow { group: 0 }), Some(0)),
            (
                admin(AdminCommand::ClearFailures {
                    group: 1,
                    node: None,
                }),
                Some(1),
            ),
            (Command::FailuresExpired { group: 1, node: 2 }, Some(1)),
            // These concern every group on a node, or every group.
            (admin(AdminCommand::Standby { node: 1, on: true }), None),
            (admin(AdminCommand::Maintenance { on: true }), None),
            // No such schedule: nothing to name, so every group is looked at.
            (Command::ScheduleFired { index: 9, stamp: 1 }, None),
            // The config under which the log goes on: every group may be affected.
            (Command::Config { digest: 7 }, None),
        ];
        for (cmd, group) in table {
            assert_eq!(cmd.group(&spec), group, "{cmd:?}");
        }
    }

    #[test]
    fn epochs_are_entry_indices_and_only_grow() {
        let spec = simple_spec(3, 1);
        let mut st = ClusterState::new(&spec);
        assert_eq!(
            st.apply(
                &spec,
                5,
                &Command::Activate {
                    group: 0,
                    node: 0,
                    cause: Cause::Initial
                }
            ),
            Applied::Changed
        );
        assert_eq!(st.groups[0].instances[0].epoch, 5);
        // A second activation of an exclusive group while an instance exists is ignored.
        assert_eq!(
            st.apply(
                &spec,
                6,
                &Command::Activate {
                    group: 0,
                    node: 1,
                    cause: Cause::Failure
                }
            ),
            Applied::Ignored
        );
        // Stop with a stale epoch is ignored; with the right one it stops.
        assert_eq!(
            st.apply(
                &spec,
                7,
                &Command::Stop {
                    group: 0,
                    node: 0,
                    epoch: 4,
                    cause: Cause::Failure
                }
            ),
            Applied::Ignored
        );
        assert_eq!(
            st.apply(
                &spec,
                8,
                &Command::Stop {
                    group: 0,
                    node: 0,
                    epoch: 5,
                    cause: Cause::Failure
                }
            ),
            Applied::Changed
        );
        // Still blocked until released.
        assert_eq!(
            st.apply(
                &spec,
                9,
                &Command::Activate {
                    group: 0,
                    node: 1,
                    cause: Cause::Failure
                }
            ),
            Applied::Ignored
        );
        assert_eq!(
            st.apply(
                &spec,
                10,
                &Command::Released {
                    group: 0,
                    node: 0,
                    epoch: 5,
                    how: Release::Confirmed
                }
            ),
            Applied::Changed
        );
        assert_eq!(
            st.apply(
                &spec,
                11,
                &Command::Activate {
                    group: 0,
                    node: 1,
                    cause: Cause::Failure
                }
            ),
            Applied::Changed
        );
        assert_eq!(st.groups[0].instances[0].epoch, 11);
        assert_eq!(st.groups[0].last_epoch, 11);
    }

    #[test]
    fn failure_counts_and_clear() {
        let spec = simple_spec(3, 1);
        let mut st = ClusterState::new(&spec);
        st.apply(
            &spec,
            1,
            &Command::Activate {
                group: 0,
                node: 0,
                cause: Cause::Initial,
            },
        );
        st.apply(
            &spec,
            2,
            &Command::Failed {
                group: 0,
                node: 0,
                epoch: 1,
                everywhere: false,
            },
        );
        assert_eq!(st.groups[0].failures[0], 1);
        assert_eq!(st.groups[0].instances[0].phase, Phase::Stopping);
        st.apply(
            &spec,
            3,
            &Command::Admin(AdminCommand::ClearFailures {
                group: 0,
                node: None,
            }),
        );
        assert_eq!(st.groups[0].failures[0], 0);
    }

    #[test]
    fn admin_checks_refuse_what_cannot_be_done() {
        let spec = simple_spec(3, 1);
        let st = ClusterState::new(&spec);
        let alive = [true, false, true];
        let err = st
            .check_admin(
                &spec,
                &alive,
                &AdminCommand::Move {
                    group: 0,
                    to: Some(1),
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("it is down"), "{err}");
        assert!(st
            .check_admin(
                &spec,
                &alive,
                &AdminCommand::Move {
                    group: 0,
                    to: Some(2)
                }
            )
            .is_ok());
        assert!(st
            .check_admin(&spec, &alive, &AdminCommand::Move { group: 9, to: None })
            .is_err());
    }

    /// A fence releases the node's stopping instances placed up to the index it was asked
    /// at, and nothing else: not an active instance (the machine may have rebooted and
    /// started it under a new lease), not a later one, not another node's.
    #[test]
    fn a_fence_releases_only_what_ran_before_it() {
        let spec = simple_spec(3, 3);
        let mut st = ClusterState::new(&spec);
        let act = |group, node| Command::Activate {
            group,
            node,
            cause: Cause::Initial,
        };
        let stop = |group, node, epoch| Command::Stop {
            group,
            node,
            epoch,
            cause: Cause::Failure,
        };
        for (i, c) in [
            act(0, 1),
            act(1, 1),
            act(2, 2),
            stop(0, 1, 1),
            stop(2, 2, 3),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(st.apply(&spec, i as u64 + 1, c), Applied::Changed);
        }
        assert!(st.fence_would_release(1, 5));
        assert!(
            !st.fence_would_release(1, 0),
            "placed after the fence was asked"
        );
        let v = st.groups[1].version;
        let fenced = Command::Fenced {
            node: 1,
            through: 5,
        };
        assert_eq!(fenced.group(&spec), None, "it may touch every group");
        assert_eq!(st.apply(&spec, 6, &fenced), Applied::Changed);
        assert!(
            st.groups[0].instances.is_empty(),
            "stopping on the fenced node"
        );
        assert_eq!(st.groups[1].instances.len(), 1, "active: untouched");
        assert_eq!(st.groups[1].version, v);
        assert_eq!(st.groups[2].instances.len(), 1, "another node's");
        assert_eq!(st.apply(&spec, 7, &fenced), Applied::Ignored);
    }

    #[test]
    fn maintenance_blocks_activation() {
        let spec = simple_spec(2, 1);
        let mut st = ClusterState::new(&spec);
        st.apply(
            &spec,
            1,
            &Command::Admin(AdminCommand::Maintenance { on: true }),
        );
        assert_eq!(
            st.apply(
                &spec,
                2,
                &Command::Activate {
                    group: 0,
                    node: 0,
                    cause: Cause::Initial
                }
            ),
            Applied::Ignored
        );
    }

    #[test]
    fn a_disabled_group_is_activated_nowhere_until_enabled() {
        let spec = simple_spec(2, 1);
        let mut st = ClusterState::new(&spec);
        let disable = |on| Command::Admin(AdminCommand::Disable { group: 0, on });
        let activate = Command::Activate {
            group: 0,
            node: 0,
            cause: Cause::Initial,
        };
        assert_eq!(st.apply(&spec, 1, &disable(true)), Applied::Changed);
        assert_eq!(st.apply(&spec, 2, &activate), Applied::Ignored);
        // Disabling twice is refused with a reason, and changes nothing if committed anyway.
        let again = st.check_admin(
            &spec,
            &[true, true],
            &AdminCommand::Disable { group: 0, on: true },
        );
        assert!(again.unwrap_err().to_string().contains("already disabled"));
        assert_eq!(st.apply(&spec, 3, &disable(true)), Applied::Ignored);
        assert_eq!(st.apply(&spec, 4, &disable(false)), Applied::Changed);
        assert_eq!(st.apply(&spec, 5, &activate), Applied::Changed);
    }

    #[test]
    fn a_fatal_failure_counts_on_every_node_of_the_group_until_cleared() {
        let spec = simple_spec(3, 1);
        let mut st = ClusterState::new(&spec);
        let activate = Command::Activate {
            group: 0,
            node: 1,
            cause: Cause::Initial,
        };
        assert_eq!(st.apply(&spec, 1, &activate), Applied::Changed);
        let failed = Command::Failed {
            group: 0,
            node: 1,
            epoch: 1,
            everywhere: true,
        };
        assert_eq!(st.apply(&spec, 2, &failed), Applied::Changed);
        assert_eq!(
            st.groups[0].failures,
            vec![1, 1, 1],
            "every node of the group counts one"
        );
        let clear = Command::Admin(AdminCommand::ClearFailures {
            group: 0,
            node: None,
        });
        st.apply(&spec, 3, &clear);
        assert_eq!(st.groups[0].failures, vec![0, 0, 0]);
    }
}
