//! This node's side of the cluster: its group instances ([`LocalGroup`]) brought in line with
//! the replicated state and the lease (reconcile), the reports it owes the coordinator, the
//! caches the timer table and the watchdog read, and the watchdog's deadline.
//!
//! Everything here is incremental: a large cluster reconciles a group or two per input, and a
//! pass over every group on each would dominate its cost. A group is looked at when something
//! happened to it ([`Locals::mark_dirty`]), or all of them when something that concerns all of
//! them did ([`Locals::mark_all`]: the lease, fencing, standby, maintenance, a new coordinator).

use super::coordinator::Reported;
use super::group::{GroupEvent, GroupStatus, LocalGroup, Outcome, Want};
use super::message::{Effect, Event, Message};
use super::route::Router;
use super::spec::{ClusterSpec, GroupId, NodeId, ResourceId};
use super::state::{ClusterState, Phase};

/// What reconcile reads from the rest of the node core.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The resolved config.
    pub spec: &'a ClusterSpec,
    /// The replicated state as applied here.
    pub state: &'a ClusterState,
    /// This node.
    pub me: NodeId,
    /// Whether we hold a lease that lets us run exclusive groups now.
    pub lease_ok: bool,
    /// Whether this node's config is the committed one: a node whose file differs runs no
    /// group at all, clones included ([`super::node::NodeCore::config_differs`]).
    pub config_ok: bool,
    /// When our lease ends (0 without one).
    pub lease_until_us: u64,
    /// Now, on the shell's monotonic clock.
    pub now_us: u64,
}

/// Where reports go and what they are read from.
#[derive(Clone, Copy, Debug)]
pub struct ReportTo<'a> {
    /// The replicated state as applied here.
    pub state: &'a ClusterState,
    /// This node.
    pub me: NodeId,
    /// The coordinator, if one is known.
    pub coordinator: Option<NodeId>,
    /// The paths to it.
    pub router: &'a Router,
}

/// The last report sent for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    epoch: u64,
    status: GroupStatus,
    stopping: bool,
}

/// This node's group instances and what is derived from them.
pub struct Locals {
    groups: Vec<Option<LocalGroup>>,
    /// Something happened here: reconcile on the next pass.
    pub dirty: bool,
    /// Groups to reconcile on the next pass (see [`Locals::mark_dirty`]).
    dirty_groups: Vec<GroupId>,
    /// Reconcile every group on the next pass.
    dirty_all: bool,
    /// The groups the last reconcile pass looked at (what reports and caches revisit).
    reconciled: Vec<GroupId>,
    /// Cached from the local groups by `cache`: their earliest deadline.
    next_timeout_us: Option<u64>,
    /// Cached likewise, per group: its deadline, and whether it may be active and exclusive.
    deadline_us: Vec<Option<u64>>,
    exposed_per_group: Vec<bool>,
    /// The groups whose `deadline_us` is set (a few per node, out of all groups).
    timed: Vec<GroupId>,
    /// How many of `exposed_per_group` are true.
    exposed_count: usize,
    /// Cached likewise: whether an exclusive resource may be active here.
    exposed: bool,
    /// Per group: the last report sent, so reports go out on change.
    sent: Vec<Option<Sent>>,
    /// Per group: the replicated state has an instance of it on this node (kept as commands
    /// apply, so the periodic reports need not search every group's instances).
    mine: Vec<bool>,
    /// Per group: the periodic report pass must look at it (its report is waited for, or
    /// could not be sent for want of a coordinator). Every other group's report only changes
    /// when it is reconciled, and that pass looks at it.
    watch: Vec<bool>,
    /// Since when we stop exclusive resources without a usable lease (None while we hold one).
    urgent_since_us: Option<u64>,
    /// The watchdog deadline last armed.
    watchdog_us: Option<u64>,
    /// A stop failed here: we gave up our lease and wait for the watchdog to reboot us.
    fenced: bool,
    /// The id of the next agent operation.
    next_op: u64,
    /// Per group, per resource: the failures seen here since the daemon started (or since
    /// an operator cleared the group's failures).
    resource_failures: Vec<Vec<u32>>,
    /// Per group and resource: the last failure seen here, until a clear.
    last_failure: Vec<Vec<Option<LastFailure>>>,
    /// Per group: the start's sweep for what an earlier run left here (see
    /// [`Locals::sweep_orphans`]).
    orphans: Vec<Orphan>,
}

/// Where the start's sweep stands for one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Orphan {
    /// Not swept (placed here, not ours to run, or done).
    No,
    /// Probing (and stopping what the probe finds).
    Looking,
    /// Found active: stopping it.
    Found,
}

/// The epoch of a sweep's instance: real activations are raft indexes, never 0.
const SWEEP_EPOCH: u64 = 0;

impl Locals {
    /// Nothing running for any group of `spec`; the first pass looks at all of them.
    pub fn new(spec: &ClusterSpec) -> Locals {
        let groups = spec.groups.len();
        Locals {
            resource_failures: spec
                .groups
                .iter()
                .map(|g| vec![0; g.resources.len()])
                .collect(),
            last_failure: spec
                .groups
                .iter()
                .map(|g| vec![None; g.resources.len()])
                .collect(),
            groups: (0..groups).map(|_| None).collect(),
            dirty: true,
            dirty_groups: Vec::new(),
            dirty_all: true,
            reconciled: Vec::new(),
            next_timeout_us: None,
            deadline_us: vec![None; groups],
            exposed_per_group: vec![false; groups],
            timed: Vec::new(),
            exposed_count: 0,
            exposed: false,
            sent: vec![None; groups],
            mine: vec![false; groups],
            watch: vec![true; groups],
            urgent_since_us: None,
            watchdog_us: None,
            fenced: false,
            next_op: 0,
            orphans: vec![Orphan::No; groups],
        }
    }

    /// At start, once the log this node recovered has been applied, and whenever this node
    /// lost its lease (it comes back as a node joining): probe every exclusive group that may
    /// run here but is not placed here, and stop whatever is found active (an earlier run
    /// left it: its daemon died with both processes, its placement changed while it was
    /// down, a stop claimed success and left it running). Until the sweep is done
    /// ([`Locals::sweeping`]) the node asks for no lease, so what it left running is down
    /// before it may start anything.
    pub fn sweep_orphans(&mut self, spec: &ClusterSpec, state: &ClusterState, me: NodeId) {
        for (g, gs) in spec.groups.iter().enumerate() {
            let gid = g as GroupId;
            if !gs.is_exclusive()
                || !gs.nodes.contains(&me)
                || state.instance_on(gid, me).is_some()
                || self.groups[g].is_some()
            {
                continue;
            }
            self.groups[g] = Some(LocalGroup::new(gid, gs, SWEEP_EPOCH, Want::Stop));
            self.orphans[g] = Orphan::Looking;
            self.mark_dirty(gid);
        }
    }

    /// Whether the start's sweep still probes or stops something.
    pub fn sweeping(&self) -> bool {
        self.orphans.iter().any(|o| *o != Orphan::No)
    }

    /// This node's instance of a group, if it runs one.
    pub fn get(&self, g: GroupId) -> Option<&LocalGroup> {
        self.groups.get(usize::from(g))?.as_ref()
    }

    /// Whether any local instance still holds a resource.
    pub fn holds_anything(&self) -> bool {
        self.groups.iter().flatten().any(LocalGroup::holds_anything)
    }

    /// The failures of resource `r` of group `g` seen here.
    pub fn resource_failures(&self, g: GroupId, r: ResourceId) -> u32 {
        self.resource_failures
            .get(usize::from(g))
            .and_then(|f| f.get(usize::from(r)))
            .copied()
            .unwrap_or(0)
    }

    /// The last failure of resource `r` of group `g` seen here, if any since the last clear.
    pub fn last_failure(&self, g: GroupId, r: ResourceId) -> Option<&LastFailure> {
        self.last_failure
            .get(usize::from(g))
            .and_then(|f| f.get(usize::from(r)))
            .and_then(Option::as_ref)
    }

    /// An operator cleared group `g`'s failures: this node's counts of its resources go too.
    pub fn clear_failures(&mut self, g: GroupId) {
        if let Some(f) = self.resource_failures.get_mut(usize::from(g)) {
            f.iter_mut().for_each(|c| *c = 0);
        }
        if let Some(f) = self.last_failure.get_mut(usize::from(g)) {
            f.iter_mut().for_each(|x| *x = None);
        }
    }

    /// Whether a stop failed here (we fenced ourselves).
    pub fn fenced(&self) -> bool {
        self.fenced
    }

    /// The earliest deadline of the local groups.
    pub fn next_timeout_us(&self) -> Option<u64> {
        self.next_timeout_us
    }

    /// Something happened to group `g` here: reconcile it on this pass.
    pub fn mark_dirty(&mut self, g: GroupId) {
        self.dirty = true;
        if !self.dirty_groups.contains(&g) {
            self.dirty_groups.push(g);
        }
    }

    /// Something that concerns every group happened: reconcile them all on this pass.
    pub fn mark_all(&mut self) {
        self.dirty = true;
        self.dirty_all = true;
    }

    /// A new coordinator: every report goes to it afresh.
    pub fn report_afresh(&mut self) {
        self.sent.iter_mut().for_each(|s| *s = None);
        self.mark_all();
    }

    /// A command touching group `g` (or, with `None`, every group) applied: keep `mine`.
    pub fn note_applied(&mut self, state: &ClusterState, me: NodeId, g: Option<GroupId>) {
        match g {
            Some(g) => {
                self.mark_dirty(g);
                self.mine[usize::from(g)] = state.instance_on(g, me).is_some();
            }
            None => {
                self.mark_all();
                for (g, mine) in self.mine.iter_mut().enumerate() {
                    *mine = state.instance_on(g as GroupId, me).is_some();
                }
            }
        }
    }

    /// An agent operation finished.
    pub fn handle_result(
        &mut self,
        spec: &ClusterSpec,
        (group, resource, op): (GroupId, ResourceId, u64),
        (outcome, reason): (Outcome, String),
        now_us: u64,
        effects: &mut Vec<Effect>,
    ) {
        let gs = &spec.groups[usize::from(group).min(spec.groups.len() - 1)];
        if let Some(l) = self
            .groups
            .get_mut(usize::from(group))
            .and_then(Option::as_mut)
        {
            let mut ev = Vec::new();
            l.handle_result(gs, resource, op, outcome, now_us, &mut ev);
            let g = usize::from(group);
            if self.orphans[g] == Orphan::Looking && l.may_be_active() {
                self.orphans[g] = Orphan::Found;
            }
            self.group_events(group, ev, &reason, now_us, effects);
            self.mark_dirty(group);
        }
    }

    /// A supervised process exited on its own.
    pub fn handle_resource_failed(
        &mut self,
        spec: &ClusterSpec,
        (group, resource, reason): (GroupId, ResourceId, String),
        now_us: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(l) = self
            .groups
            .get_mut(usize::from(group))
            .and_then(Option::as_mut)
        {
            let mut ev = Vec::new();
            l.handle_resource_failed(&spec.groups[usize::from(group)], resource, now_us, &mut ev);
            self.group_events(group, ev, &reason, now_us, effects);
            self.mark_dirty(group);
        }
    }

    /// The local groups' deadlines due at `now_us`.
    pub fn handle_timeout(&mut self, spec: &ClusterSpec, now_us: u64, effects: &mut Vec<Effect>) {
        if self.next_timeout_us.is_none_or(|d| now_us < d) {
            return;
        }
        // Only groups with a deadline can be due; handling one changes the caches only in the
        // pass that follows, so the list stays as it is during this loop.
        for k in 0..self.timed.len() {
            let g = usize::from(self.timed[k]);
            // The per-group cache is exact here: every change to a local group reconciles it
            // and refreshes its entry before the next input.
            if self.deadline_us[g].is_none_or(|d| now_us < d) {
                continue;
            }
            let gs = &spec.groups[g];
            if let Some(l) = self.groups[g].as_mut() {
                if l.next_timeout_us(gs).is_some_and(|d| now_us >= d) {
                    let mut ev = Vec::new();
                    l.handle_timeout(gs, now_us, &mut ev);
                    self.group_events(
                        g as GroupId,
                        ev,
                        "no answer within its timeout",
                        now_us,
                        effects,
                    );
                    self.mark_dirty(g as GroupId);
                }
            }
        }
    }

    /// Bring local group instances in line with the replicated state and our lease. Returns
    /// true when a stop failed and this node fenced itself: the caller gives up its lease.
    pub fn reconcile(&mut self, cx: Context<'_>, effects: &mut Vec<Effect>) -> bool {
        let Context {
            spec, state, me, ..
        } = cx;
        let now_us = cx.now_us;
        let mut lease_ok = cx.lease_ok;
        let mut self_fenced = false;
        self.dirty = false;
        // Only the groups that changed, unless something that concerns all of them did: a
        // monitor result or a commit for one group must not cost a pass over every group.
        let mut todo = std::mem::take(&mut self.reconciled);
        todo.clear();
        todo.append(&mut self.dirty_groups);
        if std::mem::take(&mut self.dirty_all) || state.maintenance {
            todo.clear();
            todo.extend(0..spec.groups.len() as GroupId);
        }
        // Results and timeouts changed these groups since the caches last looked.
        self.cache(spec, &todo);
        if state.maintenance {
            // Leaving maintenance is a commit, which reconciles every group.
            self.reconciled = todo;
            return false;
        }
        // Urgent stops must be done by the lease's end (or, with no lease, within the stop
        // budget of knowing we had none): the same deadline the watchdog enforces. An episode
        // ends once nothing exclusive may be active here, so a later one gets a budget of its
        // own.
        if !self.exposed {
            self.urgent_since_us = None;
        }
        // Only what is known or suspected active counts: a resource not yet probed (a
        // fresh instance, the start's sweep) is probed within its own timeout, and the
        // budget starts if the probe finds it running. Cutting a probe to the budget once
        // fenced a node over a slow OCF script that found nothing.
        if !lease_ok && self.urgent_since_us.is_none() {
            let exposed_here = self.groups.iter().enumerate().any(|(g, l)| {
                spec.groups[g].is_exclusive() && l.as_ref().is_some_and(|l| l.may_be_active())
            });
            if exposed_here {
                self.urgent_since_us = Some(now_us);
            }
        }
        let lease_end_us = self.urgent_deadline_us(spec, cx.lease_until_us, now_us);
        for &gid in &todo {
            let g = usize::from(gid);
            let gs = &spec.groups[g];
            let inst = state.instance_on(gid, me).copied();
            let exclusive = gs.is_exclusive();
            let run = inst.is_some_and(|i| i.phase == Phase::Active)
                && (!exclusive || lease_ok)
                && cx.config_ok
                && !self.fenced;
            let want = if run { Want::Run } else { Want::Stop };
            let slot = &mut self.groups[g];
            match (slot.as_mut(), inst) {
                (None, None) => continue,
                (None, Some(i)) => *slot = Some(LocalGroup::new(gid, gs, i.epoch, want)),
                (Some(l), Some(i)) if l.epoch == i.epoch => l.set_want(want),
                (Some(l), _) => {
                    l.set_want(Want::Stop);
                    if !l.holds_anything() && l.idle() {
                        *slot = inst.map(|i| LocalGroup::new(gid, gs, i.epoch, want));
                        let found = std::mem::replace(&mut self.orphans[g], Orphan::No);
                        if found == Orphan::Found {
                            effects.push(Effect::Event(match state.active_node(gid) {
                                Some(placed) if placed != me => {
                                    Event::MultipleActive { group: gid, placed }
                                }
                                _ => Event::OrphanStopped { group: gid },
                            }));
                        }
                    }
                }
            }
            let Some(l) = slot.as_mut() else { continue };
            // Past the lease's stop point, stop everything exclusive at once (all in parallel,
            // each op cut to the lease's end); the watchdog covers a stop that hangs.
            let urgent = exclusive && !lease_ok && l.may_be_active();
            l.set_urgent(urgent.then_some(lease_end_us.max(now_us)));
            l.set_unmanaged(&state.groups[g].unmanaged);
            let mut ops = Vec::new();
            l.drive(gs, now_us, &mut self.next_op, &mut ops);
            effects.extend(ops.into_iter().map(Effect::Agent));
            let status = l.status();
            if status == GroupStatus::StopFailed && !self.fenced {
                // A stop we cannot finish: give up the lease so the watchdog reboots us and
                // the coordinator can take over once the lease has run out.
                self.fenced = true;
                self.dirty = true;
                self.dirty_all = true;
                lease_ok = false;
                self_fenced = true;
                effects.push(Effect::Event(Event::SelfFence));
            }
            let epoch = l.epoch;
            if self.sent[g].is_none_or(|s| s.epoch != epoch || s.status != status) {
                effects.push(Effect::Event(Event::GroupStatus {
                    group: gid,
                    epoch,
                    status,
                }));
            }
            if inst.is_none() && !l.holds_anything() && l.idle() {
                self.groups[g] = None;
            }
        }
        // What this pass looked at: the caches and the reports that follow need only these.
        self.cache(spec, &todo);
        self.reconciled = todo;
        self_fenced
    }

    /// Tell the coordinator how our instances are doing: on change (of the groups the last
    /// reconcile looked at), and every report period while the state still waits for it
    /// (`periodic`, every group). Reports to a remote coordinator become effects; when we are
    /// the coordinator they are appended to `own`.
    pub fn send_reports(
        &mut self,
        to: ReportTo<'_>,
        periodic: bool,
        effects: &mut Vec<Effect>,
        own: &mut Vec<(GroupId, Reported)>,
    ) {
        let ReportTo {
            state,
            me,
            coordinator,
            router,
        } = to;
        let Some(coordinator) = coordinator else {
            // Nobody to tell: the periodic pass looks at these once a coordinator is known.
            for &g in &self.reconciled {
                self.watch[usize::from(g)] = true;
            }
            return;
        };
        let todo = std::mem::take(&mut self.reconciled);
        let count = if periodic {
            self.groups.len()
        } else {
            todo.len()
        };
        let gids = (0..count).map(|k| if periodic { k as GroupId } else { todo[k] });
        for gid in gids {
            let g = usize::from(gid);
            debug_assert_eq!(self.mine[g], state.instance_on(gid, me).is_some());
            if periodic && !self.watch[g] {
                continue;
            }
            self.watch[g] = false;
            if !self.mine[g] {
                continue;
            }
            let Some(inst) = state.instance_on(gid, me).copied() else {
                continue;
            };
            let status = match &self.groups[g] {
                Some(l) if l.epoch == inst.epoch => l.status(),
                Some(l) if l.holds_anything() => GroupStatus::Stopping,
                _ => GroupStatus::Stopped,
            };
            let waited_for = match inst.phase {
                Phase::Stopping => {
                    status == GroupStatus::Stopped || status == GroupStatus::StopFailed
                }
                Phase::Active => matches!(
                    status,
                    GroupStatus::CannotRun
                        | GroupStatus::CannotRunAnywhere
                        | GroupStatus::StopFailed
                ),
            };
            let stopping = inst.phase == Phase::Stopping;
            // Whatever this look sends, only a report the coordinator waits for is repeated;
            // anything that could change that reconciles the group and looks again.
            self.watch[g] = waited_for;
            let now = Sent {
                epoch: inst.epoch,
                status,
                stopping,
            };
            if !(self.sent[g] != Some(now) || (periodic && waited_for)) {
                continue;
            }
            self.sent[g] = Some(now);
            if coordinator == me {
                own.push((
                    gid,
                    Reported {
                        node: me,
                        epoch: inst.epoch,
                        status,
                        stopping,
                    },
                ));
            } else {
                effects.push(router.send(
                    coordinator,
                    Message::Report {
                        group: gid,
                        epoch: inst.epoch,
                        status,
                        stopping,
                    },
                ));
            }
        }
        self.reconciled = todo;
    }

    /// Arm, move or disarm the watchdog: while an exclusive resource may be active here it
    /// must fire if we have not stopped it by the lease's end.
    pub fn arm_watchdog(
        &mut self,
        spec: &ClusterSpec,
        lease_until_us: u64,
        now_us: u64,
        effects: &mut Vec<Effect>,
    ) {
        let deadline = if self.fenced {
            // A stop we could not finish, in any group: only a reboot cleans that up. Keep
            // the first deadline so that it does not slide.
            Some(self.watchdog_us.map_or(now_us, |d| d.min(now_us)))
        } else if !self.exposed {
            None
        } else {
            // The lease's end; without a lease (something was found running after a start),
            // the stop budget from when we knew we had none.
            Some(self.urgent_deadline_us(spec, lease_until_us, now_us))
        };
        if deadline != self.watchdog_us {
            self.watchdog_us = deadline;
            effects.push(Effect::Watchdog {
                deadline_us: deadline,
            });
        }
    }

    /// The lease is usable again: a later loss starts a new stop budget.
    pub fn lease_regained(&mut self) {
        self.urgent_since_us = None;
    }

    /// When exclusive resources must be stopped by: the lease's end, or without a lease, the
    /// stop budget from when we started stopping them.
    fn urgent_deadline_us(&self, spec: &ClusterSpec, lease_until_us: u64, now_us: u64) -> u64 {
        let budget_us = u64::from(spec.timing.stop_budget_ms) * 1000;
        lease_until_us.max(self.urgent_since_us.unwrap_or(now_us) + budget_us)
    }

    /// Update what the timer table and the watchdog need from local groups `todo`: each
    /// one's next deadline and whether an exclusive resource may be active in it, and from
    /// those the earliest deadline and `exposed`. Every change to a local group marks it
    /// dirty, and reconcile calls this for the dirty groups before and after driving them, so
    /// the caches never lag behind a change.
    fn cache(&mut self, spec: &ClusterSpec, todo: &[GroupId]) {
        let mut rescan = false;
        for &gid in todo {
            let g = usize::from(gid);
            let gs = &spec.groups[g];
            let l = self.groups[g].as_ref();
            let exposed = gs.is_exclusive() && l.is_some_and(|l| l.may_be_active());
            if exposed != self.exposed_per_group[g] {
                self.exposed_per_group[g] = exposed;
                if exposed {
                    self.exposed_count += 1;
                } else {
                    self.exposed_count -= 1;
                }
            }
            let deadline = l.and_then(|l| l.next_timeout_us(gs));
            let old = std::mem::replace(&mut self.deadline_us[g], deadline);
            match (old, deadline) {
                (None, Some(_)) => self.timed.push(gid),
                (Some(_), None) => {
                    if let Some(k) = self.timed.iter().position(|&t| t == gid) {
                        self.timed.swap_remove(k);
                    }
                }
                _ => {}
            }
            if old.is_some() && old == self.next_timeout_us && deadline != old {
                // The earliest moved: unless this group's new deadline is still the earliest,
                // look at every group once the batch is done.
                rescan = true;
            }
            if let Some(d) = deadline {
                if self.next_timeout_us.is_none_or(|m| d <= m) {
                    self.next_timeout_us = Some(d);
                }
            }
        }
        if rescan {
            let deadlines = &self.deadline_us;
            self.next_timeout_us = self
                .timed
                .iter()
                .filter_map(|&g| deadlines[usize::from(g)])
                .min();
        }
        self.exposed = self.exposed_count > 0;
        debug_assert_eq!(
            self.next_timeout_us,
            self.deadline_us.iter().flatten().copied().min()
        );
        debug_assert_eq!(self.exposed, self.exposed_per_group.contains(&true));
        debug_assert_eq!(self.timed.len(), self.deadline_us.iter().flatten().count());
    }

    /// A local group's events as the node's events; failures are counted, and the last one
    /// of each resource kept (with `reason`, the words of what was handled, and `now_us`).
    fn group_events(
        &mut self,
        group: GroupId,
        ev: Vec<GroupEvent>,
        reason: &str,
        now_us: u64,
        effects: &mut Vec<Effect>,
    ) {
        for e in ev {
            effects.push(Effect::Event(match e {
                GroupEvent::ResourceFailed { resource, action } => {
                    let (g, r) = (usize::from(group), usize::from(resource));
                    if let Some(c) = self.resource_failures.get_mut(g).and_then(|f| f.get_mut(r)) {
                        *c += 1;
                    }
                    if let Some(f) = self.last_failure.get_mut(g).and_then(|f| f.get_mut(r)) {
                        *f = Some(LastFailure {
                            action,
                            reason: reason.to_string(),
                            at_us: now_us,
                        });
                    }
                    Event::ResourceFailed {
                        group,
                        resource,
                        action,
                        reason: reason.to_string(),
                    }
                }
                GroupEvent::LocalRestart { resource, count } => Event::LocalRestart {
                    group,
                    resource,
                    count,
                },
                GroupEvent::Escalated => Event::Escalated { group },
            }));
        }
    }
}

/// A resource's last failure on this node, for status: what failed, why, and when (on the
/// core's monotonic clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastFailure {
    /// The operation (a process exit counts as a quick monitor).
    pub action: crate::policy::group::Action,
    /// The agent's words.
    pub reason: String,
    /// When, in the core's microseconds.
    pub at_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::group::Action;
    use crate::policy::testutil::simple_spec;

    /// The agent ops among `effects`, taken out.
    fn ops(effects: &mut Vec<Effect>) -> Vec<crate::policy::group::AgentOp> {
        let mut out = Vec::new();
        effects.retain(|e| match e {
            Effect::Agent(op) => {
                out.push(*op);
                false
            }
            _ => true,
        });
        out
    }

    fn pass(l: &mut Locals, spec: &ClusterSpec, state: &ClusterState, now_us: u64) -> Vec<Effect> {
        let cx = Context {
            spec,
            state,
            me: 0,
            lease_ok: false,
            config_ok: true,
            lease_until_us: 0,
            now_us,
        };
        let mut effects = Vec::new();
        l.reconcile(cx, &mut effects);
        effects
    }

    #[test]
    fn the_start_sweep_stops_what_an_earlier_run_left_and_only_then_is_done() {
        // Two groups that may run on node 0; neither is placed anywhere.
        let spec = simple_spec(3, 2);
        let state = ClusterState::new(&spec);
        let mut l = Locals::new(&spec);
        l.sweep_orphans(&spec, &state, 0);
        assert!(l.sweeping());
        let mut effects = pass(&mut l, &spec, &state, 1_000);
        let probes = ops(&mut effects);
        assert_eq!(probes.len(), 2, "every group that may run here is probed");
        assert!(probes.iter().all(|o| o.action == Action::Probe));
        // g0 was left running here; g1 is not running.
        let mut effects = Vec::new();
        for (o, outcome) in probes.iter().zip([Outcome::Ok, Outcome::NotRunning]) {
            l.handle_result(
                &spec,
                (o.group, o.resource, o.op),
                (outcome, String::new()),
                2_000,
                &mut effects,
            );
        }
        let mut effects = pass(&mut l, &spec, &state, 2_000);
        let stops = ops(&mut effects);
        assert_eq!(stops.len(), 1, "only what is running is stopped");
        assert_eq!((stops[0].group, stops[0].action), (0, Action::Stop));
        assert!(l.sweeping(), "not done while the stop runs");
        let mut effects = Vec::new();
        let o = stops[0];
        l.handle_result(
            &spec,
            (o.group, o.resource, o.op),
            (Outcome::Ok, String::new()),
            3_000,
            &mut effects,
        );
        let effects = pass(&mut l, &spec, &state, 3_000);
        let orphans: Vec<_> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Event(Event::OrphanStopped { .. })))
            .collect();
        assert_eq!(
            orphans.len(),
            1,
            "one orphan_stopped event, for g0: {effects:?}"
        );
        assert!(matches!(
            orphans[0],
            Effect::Event(Event::OrphanStopped { group: 0 })
        ));
        assert!(!l.sweeping());
        assert!(l.get(0).is_none() && l.get(1).is_none());
    }

    #[test]
    fn a_probe_without_a_lease_has_its_own_timeout_and_the_stop_budget_starts_at_what_it_finds() {
        // A slow probe (an OCF shell script) once counted against the stop budget: it timed
        // out, the stop that followed timed out too, and the node fenced itself at start.
        let spec = simple_spec(3, 1);
        let state = ClusterState::new(&spec);
        let mut l = Locals::new(&spec);
        l.sweep_orphans(&spec, &state, 0);
        let mut effects = pass(&mut l, &spec, &state, 1_000);
        let probes = ops(&mut effects);
        let quick_us = u64::from(spec.groups[0].resources[0].monitor_quick.timeout_ms) * 1000;
        let budget_us = u64::from(spec.timing.stop_budget_ms) * 1000;
        assert!(
            quick_us > budget_us,
            "the test needs a probe timeout above the budget"
        );
        assert_eq!(probes[0].deadline_us, 1_000 + quick_us, "{probes:?}");
        // The probe answers after the budget would have run out, and finds it running.
        let found_us = 1_000 + budget_us * 2;
        let o = probes[0];
        l.handle_result(
            &spec,
            (o.group, o.resource, o.op),
            (Outcome::Ok, String::new()),
            found_us,
            &mut effects,
        );
        let mut effects = pass(&mut l, &spec, &state, found_us);
        let stops = ops(&mut effects);
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].action, Action::Stop);
        assert_eq!(
            stops[0].deadline_us,
            found_us + budget_us,
            "the budget starts now"
        );
        assert!(!l.fenced(), "nothing failed");
    }

    #[test]
    fn a_group_found_here_while_placed_elsewhere_is_stopped_here_as_multiple_active() {
        let spec = simple_spec(3, 1);
        let mut state = ClusterState::new(&spec);
        state.groups[0]
            .instances
            .push(crate::policy::state::Instance {
                node: 1,
                epoch: 5,
                phase: Phase::Active,
                stop_cause: None,
            });
        let mut l = Locals::new(&spec);
        l.sweep_orphans(&spec, &state, 0);
        let mut effects = pass(&mut l, &spec, &state, 1_000);
        let probe = ops(&mut effects)[0];
        l.handle_result(
            &spec,
            (probe.group, probe.resource, probe.op),
            (Outcome::Ok, String::new()),
            2_000,
            &mut effects,
        );
        let mut effects = pass(&mut l, &spec, &state, 2_000);
        let stop = ops(&mut effects)[0];
        assert_eq!(stop.action, Action::Stop, "the copy here is stopped");
        l.handle_result(
            &spec,
            (stop.group, stop.resource, stop.op),
            (Outcome::Ok, String::new()),
            3_000,
            &mut effects,
        );
        let effects = pass(&mut l, &spec, &state, 3_000);
        assert!(
            effects.iter().any(|e| matches!(
                e,
                Effect::Event(Event::MultipleActive {
                    group: 0,
                    placed: 1
                })
            )),
            "{effects:?}"
        );
        assert!(!l.sweeping());
    }

    #[test]
    fn the_start_sweep_leaves_groups_placed_here_and_groups_not_ours() {
        let mut spec = simple_spec(3, 2);
        // g1 may not run on node 0.
        spec.groups[1].nodes = vec![1, 2];
        let mut state = ClusterState::new(&spec);
        state.groups[0]
            .instances
            .push(crate::policy::state::Instance {
                node: 0,
                epoch: 5,
                phase: Phase::Active,
                stop_cause: None,
            });
        let mut l = Locals::new(&spec);
        l.sweep_orphans(&spec, &state, 0);
        assert!(!l.sweeping(), "nothing to sweep");
    }
}
