//! The coordinator: what the raft leader decides for the whole cluster, one pass at a time.
//!
//! It keeps the leases it grants ([`LeaseKeeper`]), what every node last reported about its
//! instances ([`Reports`]), and on each pass proposes at most one step per group toward the
//! group's target placement:
//!
//! 1. release instances on their way down, once their stop is confirmed or their owner's
//!    lease has certainly run out (rule 4b), and fence an owner that does neither; with
//!    `[fencing]`, a silent owner is fenced by the fence agent first and its instances are
//!    released only once the fence is confirmed (rule 4c, [`super::fencing`]);
//! 2. for an exclusive group: mark a failed owner, stop an owner that is not the target, or
//!    activate the target (in the batch that releases the old owner, when that was the last);
//! 3. for a clone group: the same per copy;
//! 4. fire the schedules whose minute has come.
//!
//! A pass is pure: the node core hands it the applied state, its liveness view, civil time and
//! `now_us`, and proposes what comes out. Cases in `testdata/coordinator.txt`.

use super::fencing::Fencer;
use super::group::GroupStatus;
use super::lease::LeaseKeeper;
use super::node::Faults;
use super::placement::{place, Target};
use super::schedule::CivilTime;
use super::spec::{ClusterSpec, GroupId, NodeId, PartitionPolicy};
use super::state::{Cause, ClusterState, Command, GroupState, Instance, Phase, Release};

/// How long the coordinator waits for a proposal to commit before it proposes again.
pub const RETRY_PROPOSAL_US: u64 = 200_000;

/// One node's latest report on one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    /// The reporting node.
    pub node: NodeId,
    /// The instance's epoch the report is about.
    pub epoch: u64,
    /// How the instance is doing there.
    pub status: GroupStatus,
    /// The node had applied the instance's stop when it reported: a `Stopped` is final.
    pub stopping: bool,
}

/// What each node reported about its instances.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    /// Per group, per node: that node's latest report (a lookup, not a search: clone groups
    /// have a copy on every node and the coordinator reads them on every pass).
    per_group: Vec<Vec<Option<Reported>>>,
}

impl Reports {
    /// No reports yet, for `groups` groups on `nodes` nodes.
    pub fn new(groups: usize, nodes: usize) -> Reports {
        Reports {
            per_group: vec![vec![None; nodes]; groups],
        }
    }

    /// `node`'s latest report on `g`, if it is about `epoch`.
    pub fn find(&self, g: GroupId, node: NodeId, epoch: u64) -> Option<&Reported> {
        self.per_group
            .get(usize::from(g))?
            .get(usize::from(node))?
            .as_ref()
            .filter(|r| r.epoch == epoch)
    }

    /// The status `node` last reported for its instance of `g` under `epoch`.
    pub fn get(&self, g: GroupId, node: NodeId, epoch: u64) -> Option<GroupStatus> {
        self.find(g, node, epoch).map(|r| r.status)
    }

    /// Whether `node` confirmed that its instance of `g` under `epoch` is down for good: it
    /// reported `Stopped` after it had applied the stop. A `Stopped` from before (a lease
    /// lapse, say) may be stale: the node may have started again since, and the report that
    /// said so may have been lost.
    pub fn confirms_stop(&self, g: GroupId, node: NodeId, epoch: u64) -> bool {
        self.find(g, node, epoch)
            .is_some_and(|r| r.stopping && r.status == GroupStatus::Stopped)
    }

    /// Record `r` as its node's latest report on `g`.
    pub fn set(&mut self, g: GroupId, r: Reported) {
        if let Some(slot) = self
            .per_group
            .get_mut(usize::from(g))
            .and_then(|v| v.get_mut(usize::from(r.node)))
        {
            *slot = Some(r);
        }
    }

    /// Whether `node`'s latest report on any group says `status`.
    pub fn any_from(&self, node: NodeId, status: GroupStatus) -> bool {
        self.per_group.iter().any(|v| {
            v.get(usize::from(node))
                .and_then(Option::as_ref)
                .is_some_and(|r| r.status == status)
        })
    }

    /// Forget everything `node` reported (it restarted).
    pub fn forget_node(&mut self, node: NodeId) {
        for v in &mut self.per_group {
            if let Some(slot) = v.get_mut(usize::from(node)) {
                *slot = None;
            }
        }
    }
}

/// The last proposal for a group: made when the group's state had `version`, at `at_us`.
#[derive(Clone, Copy, Debug)]
struct Proposed {
    version: u64,
    at_us: u64,
}

/// Since when the stopping instance of a group (under `epoch`) waits for a confirmation.
#[derive(Clone, Copy, Debug)]
struct StoppingSince {
    epoch: u64,
    since_us: u64,
}

/// A placement and what it was computed from: most passes follow a report, which changes
/// none of these, and `place` is a pure function of them.
#[derive(Clone, Debug)]
struct Placed {
    applied: u64,
    alive: Vec<bool>,
    civil: Option<CivilTime>,
    targets: Vec<Target>,
}

/// What a pass reads: the node core's view of the cluster at `now_us`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The resolved config.
    pub spec: &'a ClusterSpec,
    /// The replicated state as applied here.
    pub state: &'a ClusterState,
    /// The node core's one liveness view (`NodeCore::alive_view`).
    pub alive: &'a [bool],
    /// Per node: heard on some heartbeat path (the detectors alone). A node not heard is
    /// silent: with `[fencing]` it is fenced before its groups are taken over.
    pub heard: &'a [bool],
    /// Civil time and its minute stamp, once the shell has told us.
    pub civil: Option<(CivilTime, u64)>,
    /// Now, on the shell's monotonic clock.
    pub now_us: u64,
    /// Test-only rule breakers.
    pub faults: Faults,
}

/// The coordinator's state, while this node is the raft leader.
pub struct Coordinator {
    /// The leases granted and refused, and when a silent owner's lease certainly ran out.
    pub keeper: LeaseKeeper,
    /// What every node last reported.
    pub reports: Reports,
    /// The fencing of silent owners (`[fencing]` only).
    pub fencer: Fencer,
    /// Per group: the last proposal, so as not to propose twice.
    proposed: Vec<Option<Proposed>>,
    /// Per group: since when its stopping instance waits for a confirmation.
    stopping_since: Vec<Option<StoppingSince>>,
    /// Something changed: run a pass.
    pub dirty: bool,
    /// When a pass must run again even if nothing changed (a lease expiry we wait for).
    pub wake_us: Option<u64>,
    placed: Option<Placed>,
    /// Per group, per node: the failure count last seen and since when (this coordinator's
    /// clock), for `failure_timeout_ms`.
    failures_seen: Vec<Vec<(u32, u64)>>,
    /// Per node, reused by each clone group of a pass: in its target; has an instance.
    scratch_wanted: Vec<bool>,
    scratch_present: Vec<bool>,
}

impl Coordinator {
    /// The coordinator of node `me`, which took office at `now_us`.
    pub fn new(spec: &ClusterSpec, me: NodeId, now_us: u64) -> Coordinator {
        let n = spec.nodes.len();
        let groups = spec.groups.len();
        Coordinator {
            keeper: LeaseKeeper::new(me, n, spec.quorum(), &spec.timing, now_us),
            reports: Reports::new(groups, n),
            fencer: Fencer::new(n),
            proposed: vec![None; groups],
            stopping_since: vec![None; groups],
            dirty: true,
            wake_us: None,
            placed: None,
            failures_seen: vec![vec![(0, 0); n]; groups],
            scratch_wanted: vec![false; n],
            scratch_present: vec![false; n],
        }
    }

    /// A node reported on its instance of `group`.
    pub fn on_report(&mut self, group: GroupId, r: Reported) {
        if r.status == GroupStatus::StopFailed {
            self.keeper.refuse(r.node);
        }
        // Periodic reports repeat what we know: only news calls for a pass.
        let known = self.reports.find(group, r.node, r.epoch);
        if known.is_none_or(|k| k.status != r.status || k.stopping != r.stopping) {
            self.reports.set(group, r);
            self.dirty = true;
        }
    }

    /// A peer restarted: it ran its fencing course and may hold leases again, unless a
    /// fence of it is still running or not yet committed.
    pub fn on_restart(&mut self, peer: NodeId) {
        self.fencer.on_restart(peer);
        if !self.fencer.busy(peer) {
            self.keeper.allow(peer);
        }
        self.reports.forget_node(peer);
    }

    /// The outcome of a fence this coordinator asked for.
    pub fn on_fence_result(&mut self, target: NodeId, attempt: u32, ok: bool, now_us: u64) {
        if self.fencer.on_result(target, attempt, ok, now_us) {
            self.dirty = true;
        }
    }

    /// One pass: placement, then at most one step per group toward its target, then the
    /// schedules that fired. The commands to propose are appended to `out`.
    pub fn pass(&mut self, v: &View<'_>, out: &mut Vec<Command>) {
        self.dirty = false;
        self.wake_us = None;
        if v.state.maintenance {
            return;
        }
        if v.spec.partition == PartitionPolicy::Fence {
            self.fence_silent_owners(v, out);
        }
        self.allow_drained(v);
        let civil = v.civil.map(|(t, _)| t);
        let fresh = self.placed.as_ref().is_some_and(|p| {
            p.applied == v.state.applied && p.alive.as_slice() == v.alive && p.civil == civil
        });
        let placed = match self.placed.take() {
            Some(p) if fresh => p,
            _ => Placed {
                applied: v.state.applied,
                alive: v.alive.to_vec(),
                civil,
                targets: place(v.spec, v.state, v.alive, civil.as_ref()),
            },
        };
        for (g, target) in placed.targets.iter().enumerate() {
            self.step_group(v, g as GroupId, target, out);
        }
        self.placed = Some(placed);
        fired_schedules(v, out);
        self.expire_failures(v, out);
    }

    /// `failure_timeout_ms`: a node's failure count of a group that has not grown for that
    /// long is cleared, and the node may host the group again. Timed on this coordinator's
    /// clock from when it first saw the count: a new coordinator starts the wait again, so a
    /// count is forgotten late, never early. Proposed as [`Command::FailuresExpired`]; asked
    /// again a second later while it does not apply.
    fn expire_failures(&mut self, v: &View<'_>, out: &mut Vec<Command>) {
        for (g, gs) in v.spec.groups.iter().enumerate() {
            let timeout_us = gs.failure_timeout_ms.saturating_mul(1000);
            if timeout_us == 0 {
                continue;
            }
            for (n, &count) in v.state.groups[g].failures.iter().enumerate() {
                let Some(seen) = self.failures_seen.get_mut(g).and_then(|s| s.get_mut(n)) else {
                    continue;
                };
                if count == 0 {
                    *seen = (0, 0);
                    continue;
                }
                if seen.0 != count {
                    *seen = (count, v.now_us);
                }
                let due = seen.1.saturating_add(timeout_us);
                if v.now_us >= due {
                    out.push(Command::FailuresExpired {
                        group: g as GroupId,
                        node: n as NodeId,
                    });
                    seen.1 = v.now_us.saturating_sub(timeout_us) + 1_000_000;
                    self.wake(v.now_us + 1_000_000);
                } else {
                    self.wake(due);
                }
            }
        }
    }

    /// A node refused for dragging out a stop has lost its lease by the time its last
    /// stopping instance is released: it may hold leases again. One whose stop failed stays
    /// refused until it reboots (see [`Coordinator::on_restart`]).
    fn allow_drained(&mut self, v: &View<'_>) {
        for n in 0..v.spec.nodes.len() as NodeId {
            if self.keeper.is_refused(n)
                && !self.fencer.busy(n)
                && !self.reports.any_from(n, GroupStatus::StopFailed)
                && !v.state.groups.iter().any(|g| {
                    g.instances
                        .iter()
                        .any(|i| i.node == n && i.phase == Phase::Stopping)
                })
            {
                self.keeper.allow(n);
                // The liveness view this pass was given counts `n` out: look again.
                self.dirty = true;
            }
        }
    }

    /// Rule 4c: ask for a fence of every silent node whose exclusive instance waits to be
    /// released, once per node; propose [`Command::Fenced`] for fences that succeeded (first
    /// in the batch, so a group it releases is activated elsewhere in the same batch).
    fn fence_silent_owners(&mut self, v: &View<'_>, out: &mut Vec<Command>) {
        let mut needs = vec![false; v.spec.nodes.len()];
        for (g, gs) in v.state.groups.iter().enumerate() {
            if !v.spec.groups[g].is_exclusive() {
                continue;
            }
            for i in gs.instances.iter().filter(|i| i.phase == Phase::Stopping) {
                let n = usize::from(i.node);
                if !v.heard.get(n).copied().unwrap_or(true)
                    && !self.reports.confirms_stop(g as GroupId, i.node, i.epoch)
                {
                    needs[n] = true;
                }
            }
        }
        let before = out.len();
        if let Some(w) = self.fencer.step(&needs, v.state, v.now_us, out) {
            self.wake(w);
        }
        if out.len() > before {
            self.wake(v.now_us + RETRY_PROPOSAL_US);
        }
        for (n, &need) in needs.iter().enumerate() {
            if need && self.fencer.busy(n as NodeId) && !self.keeper.is_refused(n as NodeId) {
                // No lease for a node being fenced: one that reboots fast starts nothing
                // before the release is committed.
                self.keeper.refuse(n as NodeId);
                self.dirty = true;
            }
        }
    }

    fn step_group(&mut self, v: &View<'_>, gid: GroupId, target: &Target, out: &mut Vec<Command>) {
        let g = usize::from(gid);
        let gstate = &v.state.groups[g];
        // A group with an unmanaged resource is pinned: moving or stopping it would start
        // or leave running what nobody may touch. Managing the resource again is a commit,
        // which brings the coordinator back here.
        if !gstate.unmanaged.is_empty() {
            return;
        }
        if let Some(p) = self.proposed[g] {
            if p.version == gstate.version && v.now_us < p.at_us + RETRY_PROPOSAL_US {
                self.wake(p.at_us + RETRY_PROPOSAL_US);
                return;
            }
        }
        let exclusive = v.spec.groups[g].is_exclusive();
        let before = out.len();
        let mut released = 0;
        for inst in gstate
            .instances
            .iter()
            .filter(|i| i.phase == Phase::Stopping)
        {
            match self.release(v, gid, inst, exclusive) {
                // The batch's `Fenced` (first in it) releases this one.
                Some(Release::Fenced) => released += 1,
                Some(how) => {
                    released += 1;
                    out.push(Command::Released {
                        group: gid,
                        node: inst.node,
                        epoch: inst.epoch,
                        how,
                    });
                }
                None => {}
            }
        }
        // An exclusive group whose every instance is released above may be activated in the
        // same batch: the activation applies after the releases, and only if they left no
        // instance (`ClusterState::apply`), so it can never overlap the old owner. Its target
        // does not change with the release (placement ignores stopping instances), and a
        // failover saves one commit round.
        let stopping = gstate
            .instances
            .iter()
            .filter(|i| i.phase == Phase::Stopping)
            .count();
        let all_released =
            stopping > 0 && released == stopping && gstate.instances.len() == stopping;
        if released == 0 || !exclusive || all_released {
            match target {
                Target::Exclusive(t) => {
                    if stopping == 0 || all_released {
                        self.step_exclusive(v, gid, gstate, *t, out);
                    }
                }
                Target::Clone(nodes) => self.step_clone(v, gid, gstate, nodes, out),
            }
        }
        if out.len() > before {
            self.proposed[g] = Some(Proposed {
                version: gstate.version,
                at_us: v.now_us,
            });
            self.wake(v.now_us + RETRY_PROPOSAL_US);
        }
    }

    /// Whether the stopping instance `inst` of `gid` may be released now, and how. When it
    /// may not, arms the wake-up that will tell, and past patience fences an owner that
    /// neither confirms nor goes silent.
    fn release(
        &mut self,
        v: &View<'_>,
        gid: GroupId,
        inst: &Instance,
        exclusive: bool,
    ) -> Option<Release> {
        let owner_alive = v.alive[usize::from(inst.node)];
        if self.reports.confirms_stop(gid, inst.node, inst.epoch) {
            return Some(Release::Confirmed);
        }
        if !exclusive && !owner_alive {
            // A clone copy on a lost node blocks nobody.
            return Some(Release::LeaseExpired);
        }
        let skip = v.faults.skip_lease_wait;
        let silent = !v.heard.get(usize::from(inst.node)).copied().unwrap_or(true);
        if exclusive && silent && !skip && v.spec.partition == PartitionPolicy::Fence {
            // Rule 4c: a silent owner is released only by a confirmed fence, never by the
            // lease alone; a failed fence means no takeover (`fence_silent_owners` retries).
            return self
                .fencer
                .covers(inst.node, inst.epoch)
                .then_some(Release::Fenced);
        }
        if exclusive
            && (self.keeper.lease_expired(inst.node, v.now_us) || skip)
            && (!owner_alive || skip || self.keeper.is_refused(inst.node))
        {
            return Some(Release::LeaseExpired);
        }
        if exclusive {
            let expiry_us = self.keeper.expiry_us(inst.node);
            if expiry_us > v.now_us {
                self.wake(expiry_us);
            }
        }
        // An owner that neither confirms nor goes silent (it reaches us only over the disk
        // path, say) is fenced by refusing its lease after a while.
        let g = usize::from(gid);
        let since_us = match self.stopping_since[g] {
            Some(s) if s.epoch == inst.epoch => s.since_us,
            _ => {
                self.stopping_since[g] = Some(StoppingSince {
                    epoch: inst.epoch,
                    since_us: v.now_us,
                });
                v.now_us
            }
        };
        let patience_us =
            max_stop_us(v.spec, g).saturating_add(2 * u64::from(v.spec.timing.lease_ms) * 1000);
        let give_up_us = since_us.saturating_add(patience_us);
        if v.now_us < give_up_us {
            self.wake(give_up_us);
        } else if exclusive && owner_alive {
            self.keeper.refuse(inst.node);
            self.dirty = true;
        }
        // Past patience with a silent owner: the lease expiry armed above decides.
        None
    }

    /// An exclusive group with nothing stopping (or all of it released in this batch): mark
    /// an owner that cannot run it, stop an owner that is not the target, or activate the
    /// target.
    fn step_exclusive(
        &self,
        v: &View<'_>,
        gid: GroupId,
        gstate: &GroupState,
        target: Option<(NodeId, Cause)>,
        out: &mut Vec<Command>,
    ) {
        let Some(active) = gstate.instances.iter().find(|i| i.phase == Phase::Active) else {
            if let Some((node, cause)) = target {
                out.push(Command::Activate {
                    group: gid,
                    node,
                    cause,
                });
            }
            return;
        };
        if self.cannot_run(gid, active) {
            out.push(self.failed(gid, active));
        } else if target.is_none_or(|(n, _)| n != active.node) {
            let cause = match target {
                Some((_, cause)) => cause,
                None if gstate.disabled => Cause::Admin,
                None if v.state.standby[usize::from(active.node)] => Cause::Standby,
                None => Cause::Failure,
            };
            out.push(stop(gid, active, cause));
        }
    }

    /// A clone group: mark copies that cannot run, stop copies outside the target, start the
    /// target's missing copies.
    fn step_clone(
        &mut self,
        v: &View<'_>,
        gid: GroupId,
        gstate: &GroupState,
        nodes: &[NodeId],
        out: &mut Vec<Command>,
    ) {
        // Lookups by node, not searches: a clone may run on every node.
        self.scratch_wanted.iter_mut().for_each(|w| *w = false);
        self.scratch_present.iter_mut().for_each(|p| *p = false);
        for &n in nodes {
            self.scratch_wanted[usize::from(n)] = true;
        }
        for i in &gstate.instances {
            self.scratch_present[usize::from(i.node)] = true;
        }
        for active in gstate.instances.iter().filter(|i| i.phase == Phase::Active) {
            if self.cannot_run(gid, active) {
                out.push(self.failed(gid, active));
            } else if !self.scratch_wanted[usize::from(active.node)] {
                let cause = if gstate.disabled {
                    Cause::Admin
                } else if v.alive[usize::from(active.node)] {
                    Cause::Standby
                } else {
                    Cause::Failure
                };
                out.push(stop(gid, active, cause));
            }
        }
        for &n in nodes {
            if !self.scratch_present[usize::from(n)] {
                out.push(Command::Activate {
                    group: gid,
                    node: n,
                    cause: Cause::Initial,
                });
            }
        }
    }

    /// Whether the owner of `active` reported that the group cannot run there.
    fn cannot_run(&self, gid: GroupId, active: &Instance) -> bool {
        matches!(
            self.reports.get(gid, active.node, active.epoch),
            Some(GroupStatus::CannotRun | GroupStatus::CannotRunAnywhere)
        )
    }

    /// The failure of `active` as a command: fatal ones count on every node.
    fn failed(&self, gid: GroupId, active: &Instance) -> Command {
        Command::Failed {
            group: gid,
            node: active.node,
            epoch: active.epoch,
            everywhere: self.reports.get(gid, active.node, active.epoch)
                == Some(GroupStatus::CannotRunAnywhere),
        }
    }

    fn wake(&mut self, at_us: u64) {
        debug_assert!(at_us > 0);
        self.wake_us = Some(self.wake_us.map_or(at_us, |w| w.min(at_us)));
    }
}

fn stop(group: GroupId, inst: &Instance, cause: Cause) -> Command {
    Command::Stop {
        group,
        node: inst.node,
        epoch: inst.epoch,
        cause,
    }
}

/// The schedules whose cron expression matches this minute and that have not fired in it.
fn fired_schedules(v: &View<'_>, out: &mut Vec<Command>) {
    let Some((t, stamp)) = v.civil else { return };
    for (i, s) in v.spec.schedules.iter().enumerate() {
        if s.cron.matches(&t) && v.state.schedule_fired[i] < stamp {
            out.push(Command::ScheduleFired {
                index: i as u16,
                stamp,
            });
        }
    }
}

/// The longest a group's stop may take: every resource's stop timeout in turn.
fn max_stop_us(spec: &ClusterSpec, g: usize) -> u64 {
    spec.groups[g]
        .resources
        .iter()
        .map(|r| u64::from(r.stop_timeout_ms) * 1000)
        .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests;
