//! The node core: everything one `eterned` decides, as one pure state machine.
//!
//! It composes the cores: failure detection ([`Liveness`]), consensus ([`Consensus`]), the
//! replicated [`ClusterState`], leases ([`LeaseHolder`], and [`LeaseKeeper`] while it is the
//! coordinator), placement ([`place`]) and the local group lifecycles ([`LocalGroup`]).
//!
//! The shell (the actor tree, or the simulator) drives it quinn-style:
//!
//! 1. feed what happened with [`NodeCore::handle`];
//! 2. call [`NodeCore::handle_timeout`] once `now_us >= next_timeout_us()`;
//! 3. carry out [`NodeCore::drain_effects`]: heartbeats, messages, agent ops, the watchdog,
//!    events.
//!
//! Timers are a small table of deadlines; nothing here reads a clock.

use std::sync::Arc;

use super::admin::{resolve, AdminRequest, Resolved};
use super::consensus::{Consensus, Outgoing};
use super::detector::{Liveness, LivenessEvent};
use super::drain::DrainView;
use super::group::{GroupEvent, GroupStatus, LocalGroup, Want};
use super::lease::{Grant, LeaseHolder, LeaseKeeper};
use super::message::{Effect, Event, Heartbeat, Input, Message};
use super::placement::{place, Target};
use super::raft_log::LogStore;
use super::schedule::CivilTime;
use super::spec::{ClusterSpec, GroupId, NodeId, PathId};
use super::state::{Applied, Cause, ClusterState, Command, Phase, Release};

pub use super::consensus::ConsensusError;

/// Test-only switches that break a safety rule on purpose, so that a test can show the
/// simulator's checker catches the breakage. Never set in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Take over from a silent owner without waiting for its lease to run out (breaks 4b).
    pub skip_lease_wait: bool,
}

/// The coordinator's view of what each node reported about its instances.
#[derive(Clone, Debug, Default)]
struct Reports {
    /// Per group, per node: that node's latest report (a lookup, not a search: clone groups
    /// have a copy on every node and the coordinator reads them on every pass).
    per_group: Vec<Vec<Option<Reported>>>,
}

/// One node's latest report on one group.
#[derive(Clone, Copy, Debug)]
struct Reported {
    node: NodeId,
    epoch: u64,
    status: GroupStatus,
    /// The node had applied the instance's stop when it reported: a `Stopped` is final.
    stopping: bool,
}

impl Reports {
    fn new(groups: usize, nodes: usize) -> Reports {
        Reports {
            per_group: vec![vec![None; nodes]; groups],
        }
    }

    fn find(&self, g: GroupId, node: NodeId, epoch: u64) -> Option<&Reported> {
        self.per_group
            .get(usize::from(g))?
            .get(usize::from(node))?
            .as_ref()
            .filter(|r| r.epoch == epoch)
    }

    fn get(&self, g: GroupId, node: NodeId, epoch: u64) -> Option<GroupStatus> {
        self.find(g, node, epoch).map(|r| r.status)
    }

    /// Whether `node` confirmed that its instance of `g` under `epoch` is down for good: it
    /// reported `Stopped` after it had applied the stop. A `Stopped` from before (a lease
    /// lapse, say) may be stale: the node may have started again since, and the report that
    /// said so may have been lost.
    fn confirms_stop(&self, g: GroupId, node: NodeId, epoch: u64) -> bool {
        self.find(g, node, epoch)
            .is_some_and(|r| r.stopping && r.status == GroupStatus::Stopped)
    }

    fn set(&mut self, g: GroupId, r: Reported) {
        if let Some(slot) = self
            .per_group
            .get_mut(usize::from(g))
            .and_then(|v| v.get_mut(usize::from(r.node)))
        {
            *slot = Some(r);
        }
    }

    /// Whether `node`'s latest report on any group says `status`.
    fn any_from(&self, node: NodeId, status: GroupStatus) -> bool {
        self.per_group.iter().any(|v| {
            v.get(usize::from(node))
                .and_then(Option::as_ref)
                .is_some_and(|r| r.status == status)
        })
    }

    fn forget_node(&mut self, node: NodeId) {
        for v in &mut self.per_group {
            if let Some(slot) = v.get_mut(usize::from(node)) {
                *slot = None;
            }
        }
    }
}

/// Coordinator-only state (this node is the raft leader).
struct Coordinator {
    keeper: LeaseKeeper,
    reports: Reports,
    /// Per group: (state version, when) of the last proposal, to avoid proposing twice.
    proposed: Vec<Option<(u64, u64)>>,
    /// Per group: since when its stopping instance waits for a confirmation.
    stopping_since: Vec<Option<(u64, u64)>>,
    /// Something changed: run a placement pass.
    dirty: bool,
    /// When a pass must run again even if nothing changed (a lease expiry we wait for).
    wake_us: Option<u64>,
    /// The last placement and what it was computed from: (state applied index, liveness
    /// view, civil time). Most passes follow a report, which changes none of these.
    placed: Option<Placed>,
    /// Per node, reused by each clone group of a pass: in its target; has an instance.
    scratch_wanted: Vec<bool>,
    scratch_present: Vec<bool>,
}

/// A placement and what it was computed from (see `Coordinator::placed`).
type Placed = (u64, Vec<bool>, Option<CivilTime>, Vec<Target>);

/// The node core.
pub struct NodeCore<S: LogStore> {
    spec: Arc<ClusterSpec>,
    me: NodeId,
    incarnation: u64,
    consensus: Consensus<S>,
    state: ClusterState,
    live: Liveness,
    digest_ok: Vec<bool>,
    lease: LeaseHolder,
    lease_ok: bool,
    /// Since when we stop exclusive resources without a usable lease (None while we hold one).
    urgent_since_us: Option<u64>,
    /// Groups to reconcile on the next pass (see `mark_dirty`).
    dirty_groups: Vec<GroupId>,
    /// Reconcile every group on the next pass.
    dirty_all: bool,
    /// The groups the last reconcile pass looked at (what reports and caches revisit).
    reconciled: Vec<GroupId>,
    /// Cached from the local groups by `cache_locals`: their earliest deadline.
    locals_next_us: Option<u64>,
    /// Cached likewise, per group: its deadline, and whether it may be active and exclusive.
    local_deadline_us: Vec<Option<u64>>,
    local_exposed: Vec<bool>,
    /// The groups whose `local_deadline_us` is set (a few per node, out of all groups).
    timed: Vec<GroupId>,
    /// How many of `local_exposed` are true.
    exposed_count: usize,
    /// Cached likewise: whether an exclusive resource may be active here.
    exposed: bool,
    coordinator: Option<Coordinator>,
    locals: Vec<Option<LocalGroup>>,
    /// Per group: the last (epoch, status, stopping) reported, so reports go out on change.
    sent: Vec<Option<(u64, GroupStatus, bool)>>,
    /// Per group: the replicated state has an instance of it on this node (kept as commands
    /// apply, so the periodic reports need not search every group's instances).
    mine: Vec<bool>,
    /// Per group: the periodic report pass must look at it (its report is waited for, or
    /// could not be sent for want of a coordinator). Every other group's report only changes
    /// when it is reconciled, and that pass looks at it.
    watch: Vec<bool>,
    civil: Option<(CivilTime, u64)>,
    next_hb_us: Vec<u64>,
    next_tick_us: u64,
    next_renew_us: u64,
    next_report_us: u64,
    next_timeout_us: u64,
    next_op: u64,
    fenced: bool,
    watchdog_us: Option<u64>,
    dirty: bool,
    faults: Faults,
    effects: Vec<Effect>,
    outgoing: Vec<Outgoing>,
    committed: Vec<(u64, Command)>,
    scratch_events: Vec<LivenessEvent>,
}

const REPORT_EVERY_US: u64 = 100_000;
const RETRY_PROPOSAL_US: u64 = 200_000;

impl<S: LogStore> NodeCore<S> {
    /// A node core for node `me`, starting at `now_us`, over `store` (which may hold a
    /// persisted log). `incarnation` must differ on every daemon start (the shell uses its
    /// wall clock at start); `seed` feeds the election timeouts.
    pub fn new(
        spec: Arc<ClusterSpec>,
        me: NodeId,
        store: S,
        incarnation: u64,
        seed: u64,
        now_us: u64,
        logger: &slog::Logger,
    ) -> Result<Self, ConsensusError> {
        let n = spec.nodes.len();
        let consensus = Consensus::new(me, n, &spec.timing, store, seed, logger)?;
        let tick_us = u64::from(spec.timing.raft_tick_ms) * 1000;
        Ok(NodeCore {
            me,
            incarnation,
            consensus,
            state: ClusterState::new(&spec),
            live: Liveness::new(&spec, me, now_us),
            digest_ok: vec![true; n],
            lease: LeaseHolder::default(),
            lease_ok: false,
            urgent_since_us: None,
            dirty_groups: Vec::new(),
            dirty_all: true,
            reconciled: Vec::new(),
            locals_next_us: None,
            local_deadline_us: vec![None; spec.groups.len()],
            local_exposed: vec![false; spec.groups.len()],
            timed: Vec::new(),
            exposed_count: 0,
            exposed: false,
            coordinator: None,
            locals: (0..spec.groups.len()).map(|_| None).collect(),
            sent: vec![None; spec.groups.len()],
            mine: vec![false; spec.groups.len()],
            watch: vec![true; spec.groups.len()],
            civil: None,
            next_hb_us: vec![now_us; spec.paths.len()],
            next_tick_us: now_us + tick_us,
            next_renew_us: now_us,
            next_report_us: now_us + REPORT_EVERY_US,
            next_timeout_us: now_us,
            next_op: 0,
            fenced: false,
            watchdog_us: None,
            dirty: true,
            faults: Faults::default(),
            effects: Vec::new(),
            outgoing: Vec::new(),
            committed: Vec::new(),
            scratch_events: Vec::new(),
            spec,
        })
    }

    /// Turn on test-only rule breakers (see [`Faults`]).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// The node's civil time changed minute (`stamp` = minutes since the Unix epoch).
    pub fn set_civil_time(&mut self, t: CivilTime, stamp: u64) {
        self.civil = Some((t, stamp));
        if let Some(c) = &mut self.coordinator {
            c.dirty = true;
        }
    }

    /// The replicated state as applied here.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The coordinator, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.consensus.leader()
    }

    /// Whether this node is the coordinator.
    pub fn is_leader(&self) -> bool {
        self.consensus.is_leader()
    }

    /// The consensus term.
    pub fn term(&self) -> u64 {
        self.consensus.term()
    }

    /// The liveness view.
    pub fn liveness(&self) -> &Liveness {
        &self.live
    }

    /// Whether this node may run exclusive groups now.
    pub fn holds_lease(&self) -> bool {
        self.lease_ok
    }

    /// This node's instance of a group, if it runs one.
    pub fn local_group(&self, g: GroupId) -> Option<&LocalGroup> {
        self.locals.get(usize::from(g))?.as_ref()
    }

    /// The persisted consensus store.
    pub fn store(&self) -> &S {
        self.consensus.store()
    }

    /// An operator's request by names, resolved against the config, the applied state and
    /// [`NodeCore::alive_view`]; what passes may be fed as [`Input::Admin`].
    pub fn resolve_admin(&self, req: AdminRequest<'_>) -> Result<Resolved, String> {
        resolve(&self.spec, &self.state, &self.alive_view(), req)
    }

    /// What a drain of this node looks at (see [`super::drain`]).
    pub fn drain_view(&self) -> DrainView {
        let me = self.me;
        let held = self.locals.iter().flatten().any(LocalGroup::holds_anything);
        let active = self.state.groups.iter().any(|g| {
            g.instances
                .iter()
                .any(|i| i.node == me && i.phase == Phase::Active)
        });
        DrainView {
            standby: self.state.standby[usize::from(me)],
            coordinator_known: self.consensus.leader().is_some(),
            holds_anything: held || active,
        }
    }

    /// When [`NodeCore::handle_timeout`] must be called next.
    pub fn next_timeout_us(&self) -> u64 {
        self.next_timeout_us
    }

    /// Whether effects wait to be taken.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// Take the effects produced so far.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// Something happened.
    pub fn handle(&mut self, input: Input, now_us: u64) {
        match input {
            Input::Heartbeat { from, path, hb } => {
                self.handle_heartbeat(from, path, hb, now_us);
                return;
            }
            Input::Message { from, msg } => {
                // Lease traffic is most of a large cluster's messages, and most of it (a second
                // copy of a request, a renewal that only extends the lease) changes nothing the
                // pass below looks at: a later lease end only makes the armed timeout early.
                let quiet = matches!(msg, Message::LeaseRequest { .. } | Message::LeaseGrant(_));
                let effects_before = self.effects.len();
                self.on_message(from, msg, now_us);
                if quiet
                    && self.effects.len() == effects_before
                    && !self.dirty
                    && !self.coordinator.as_ref().is_some_and(|c| c.dirty)
                {
                    return;
                }
            }
            Input::AgentResult {
                group,
                resource,
                op,
                outcome,
            } => {
                let gs = &self.spec.groups[usize::from(group).min(self.spec.groups.len() - 1)];
                if let Some(l) = self
                    .locals
                    .get_mut(usize::from(group))
                    .and_then(Option::as_mut)
                {
                    let mut ev = Vec::new();
                    l.handle_result(gs, resource, op, outcome, now_us, &mut ev);
                    self.group_events(group, ev);
                    self.mark_dirty(group);
                }
            }
            Input::Exited { group, resource } => {
                if let Some(l) = self
                    .locals
                    .get_mut(usize::from(group))
                    .and_then(Option::as_mut)
                {
                    let mut ev = Vec::new();
                    l.handle_exit(
                        &self.spec.groups[usize::from(group)],
                        resource,
                        now_us,
                        &mut ev,
                    );
                    self.group_events(group, ev);
                    self.mark_dirty(group);
                }
            }
            Input::Admin(cmd) => self.on_admin(cmd, self.me),
        }
        self.after(now_us);
    }

    /// A heartbeat arrived: `handle(Input::Heartbeat { .. })`, and whether it left anything
    /// for the shell (effects, an earlier timeout). Most heartbeats change nothing but a
    /// detector deadline, which only moves later: the next timeout already armed stays a
    /// valid (early) bound, so the whole pass is skipped. This is the hot path of a large
    /// cluster, and a shell may skip its own work when this returns false.
    pub fn handle_heartbeat(
        &mut self,
        from: NodeId,
        path: PathId,
        hb: Heartbeat,
        now_us: u64,
    ) -> bool {
        if !self.on_heartbeat(from, path, hb, now_us) {
            return false;
        }
        self.after(now_us);
        true
    }

    /// Timers due at `now_us`.
    pub fn handle_timeout(&mut self, now_us: u64) {
        for p in 0..self.next_hb_us.len() {
            if now_us >= self.next_hb_us[p] {
                let interval_us = u64::from(self.spec.paths[p].interval_ms) * 1000;
                next_period(&mut self.next_hb_us[p], now_us, interval_us);
                self.effects.push(Effect::Heartbeat {
                    path: p as u8,
                    hb: Heartbeat {
                        incarnation: self.incarnation,
                        digest: self.spec.digest,
                    },
                });
            }
        }
        if self.live.next_deadline_us().is_some_and(|d| now_us >= d) {
            let mut ev = std::mem::take(&mut self.scratch_events);
            self.live.handle_timeout(now_us, &mut ev);
            self.liveness_events(&mut ev);
            self.scratch_events = ev;
        } else {
            // Heartbeats move deadlines later without recomputing the earliest: make it exact
            // before the next tick (we wake then anyway) so that we do not wake for a deadline
            // that has already moved.
            let tick_us = u64::from(self.spec.timing.raft_tick_ms) * 1000;
            self.live.refresh_next_deadline(now_us + tick_us);
        }
        if now_us >= self.next_tick_us {
            let tick_us = u64::from(self.spec.timing.raft_tick_ms) * 1000;
            next_period(&mut self.next_tick_us, now_us, tick_us);
            self.consensus.tick();
        }
        if now_us >= self.next_renew_us {
            let renew_us = u64::from(self.spec.timing.lease_renew_ms) * 1000;
            next_period(&mut self.next_renew_us, now_us, renew_us);
            self.renew_lease(now_us);
        }
        if now_us >= self.next_report_us {
            next_period(&mut self.next_report_us, now_us, REPORT_EVERY_US);
            self.send_reports(true);
        }
        if self.locals_next_us.is_some_and(|d| now_us >= d) {
            // Only groups with a deadline can be due; handling one changes the caches only
            // in the pass that follows, so the list stays as it is during this loop.
            for k in 0..self.timed.len() {
                let g = usize::from(self.timed[k]);
                // The per-group cache is exact here: every change to a local group reconciles
                // it and refreshes its entry before the next input.
                if self.local_deadline_us[g].is_none_or(|d| now_us < d) {
                    continue;
                }
                let gs = &self.spec.groups[g];
                if let Some(l) = self.locals[g].as_mut() {
                    if l.next_deadline_us(gs).is_some_and(|d| now_us >= d) {
                        let mut ev = Vec::new();
                        l.handle_timeout(gs, now_us, &mut ev);
                        self.group_events(g as GroupId, ev);
                        self.mark_dirty(g as GroupId);
                    }
                }
            }
        }
        if let Some(c) = &mut self.coordinator {
            if c.wake_us.is_some_and(|w| now_us >= w) {
                c.dirty = true;
            }
        }
        self.after(now_us);
    }

    /// A heartbeat arrived; whether it changed anything beyond a detector deadline.
    fn on_heartbeat(&mut self, from: NodeId, path: u8, hb: Heartbeat, now_us: u64) -> bool {
        if usize::from(from) >= self.digest_ok.len() || from == self.me {
            return false;
        }
        let ok = hb.digest == self.spec.digest;
        if ok == self.digest_ok[usize::from(from)]
            && self.live.renew(from, path, hb.incarnation, now_us)
        {
            // Nearly every heartbeat: a later deadline on a path that is up, nothing else.
            return false;
        }
        let mut changed = ok != self.digest_ok[usize::from(from)];
        if changed {
            self.digest_ok[usize::from(from)] = ok;
            if !ok {
                self.effects.push(Effect::Event(Event::ConfigMismatch {
                    peer: from,
                    digest: hb.digest,
                }));
            }
            if let Some(c) = &mut self.coordinator {
                c.dirty = true;
            }
        }
        let mut ev = std::mem::take(&mut self.scratch_events);
        self.live
            .handle_heartbeat(from, path, hb.incarnation, now_us, &mut ev);
        changed |= !ev.is_empty();
        self.liveness_events(&mut ev);
        self.scratch_events = ev;
        changed
    }

    fn liveness_events(&mut self, ev: &mut Vec<LivenessEvent>) {
        for e in ev.drain(..) {
            if let Some(c) = &mut self.coordinator {
                c.dirty = true;
                if let LivenessEvent::PeerRestarted { peer } = e {
                    // A rebooted node ran its fencing course: it may hold leases again.
                    c.keeper.allow(peer);
                    c.reports.forget_node(peer);
                }
            }
            self.effects.push(Effect::Event(Event::Liveness(e)));
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message, now_us: u64) {
        if usize::from(from) >= self.spec.nodes.len() || from == self.me {
            return;
        }
        match msg {
            Message::Raft { msg, stamp_us } => match self.consensus.step(from, *msg, stamp_us) {
                Ok(Some(echo)) => {
                    if let Some(c) = &mut self.coordinator {
                        c.keeper.handle_echo(from, echo);
                    }
                }
                Ok(None) => {}
                Err(why) => self
                    .effects
                    .push(Effect::Event(Event::Dropped { from, why })),
            },
            Message::LeaseRequest { stamp_us } => {
                let term = self.consensus.term();
                let commit = self.consensus.commit();
                if let Some(c) = &mut self.coordinator {
                    if let Some(grant) = c.keeper.grant(from, term, stamp_us, commit, now_us) {
                        self.effects.push(Effect::Send {
                            to: from,
                            msg: Message::LeaseGrant(grant),
                        });
                    }
                }
            }
            Message::LeaseGrant(grant) => self.on_grant(grant, now_us),
            Message::Report {
                group,
                epoch,
                status,
                stopping,
            } => self.on_report(
                group,
                Reported {
                    node: from,
                    epoch,
                    status,
                    stopping,
                },
            ),
            Message::Admin(cmd) => self.on_admin(cmd, from),
        }
    }

    fn on_grant(&mut self, grant: Grant, now_us: u64) {
        if grant.term != self.consensus.term() || self.fenced {
            return;
        }
        self.lease.handle_grant(grant, self.consensus.applied());
        self.check_lease(now_us);
    }

    fn on_report(&mut self, group: GroupId, r: Reported) {
        if usize::from(group) >= self.spec.groups.len() {
            return;
        }
        if let Some(c) = &mut self.coordinator {
            if r.status == GroupStatus::StopFailed {
                c.keeper.refuse(r.node);
            }
            // Periodic reports repeat what we know: only news calls for a placement pass.
            let known = c.reports.find(group, r.node, r.epoch);
            if known.is_none_or(|k| k.status != r.status || k.stopping != r.stopping) {
                c.reports.set(group, r);
                c.dirty = true;
            }
        }
    }

    fn on_admin(&mut self, cmd: super::state::AdminCommand, _from: NodeId) {
        if self.consensus.is_leader() {
            let alive = self.alive_view();
            match self.state.check_admin(&self.spec, &alive, &cmd) {
                Ok(()) => {
                    self.consensus.propose(&Command::Admin(cmd));
                }
                Err(e) => self.effects.push(Effect::Event(Event::AdminRefused {
                    cmd,
                    why: e.to_string(),
                })),
            }
        } else if let Some(l) = self.consensus.leader() {
            self.effects.push(Effect::Send {
                to: l,
                msg: Message::Admin(cmd),
            });
        } else {
            self.effects.push(Effect::Event(Event::AdminRefused {
                cmd,
                why: "no coordinator is elected (no quorum?)".into(),
            }));
        }
    }

    fn renew_lease(&mut self, now_us: u64) {
        if self.fenced {
            return;
        }
        if let Some(c) = &mut self.coordinator {
            let term = self.consensus.term();
            let commit = self.consensus.commit();
            if let Some(grant) = c.keeper.grant(self.me, term, now_us, commit, now_us) {
                self.lease.handle_grant(grant, self.consensus.applied());
            }
        } else if let Some(l) = self.consensus.leader() {
            if l != self.me {
                self.effects.push(Effect::Send {
                    to: l,
                    msg: Message::LeaseRequest { stamp_us: now_us },
                });
            }
        }
    }

    fn check_lease(&mut self, now_us: u64) {
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        let ok = !self.fenced && self.lease.holds(now_us + budget_us);
        if ok != self.lease_ok {
            self.lease_ok = ok;
            if ok {
                self.urgent_since_us = None;
            }
            self.dirty = true;
            self.dirty_all = true;
            self.effects.push(Effect::Event(if ok {
                Event::LeaseAcquired
            } else {
                Event::LeaseLost
            }));
        }
    }

    /// The one liveness view every decision of this node uses, per node: can it host groups
    /// now? Alive on some path, with our config digest, not refused a lease by us as the
    /// coordinator (its stop failed), and for this node itself, not fenced.
    pub fn alive_view(&self) -> Vec<bool> {
        let mut alive = self.live.alive_view();
        for (i, a) in alive.iter_mut().enumerate() {
            *a = *a && self.digest_ok[i];
        }
        if let Some(c) = &self.coordinator {
            for (i, a) in alive.iter_mut().enumerate() {
                // A node being fenced (its stop failed) can host nothing until it reboots.
                if c.keeper.is_refused(i as NodeId) {
                    *a = false;
                }
            }
        }
        alive[usize::from(self.me)] = !self.fenced;
        alive
    }

    /// After every input: run consensus, apply, reconcile, coordinate, arm timers.
    fn after(&mut self, now_us: u64) {
        // Consensus may produce more work after we propose; two rounds settle it.
        let mut worked = false;
        for _ in 0..3 {
            self.run_consensus(now_us);
            self.check_lease(now_us);
            let reconciled = self.dirty;
            if self.dirty {
                self.dirty = false;
                self.reconcile(now_us);
                self.send_reports(false);
                worked = true;
            }
            if self.coordinator.as_ref().is_some_and(|c| c.dirty) {
                self.coordinate(now_us);
                worked = true;
            } else if !(reconciled && self.dirty) {
                break;
            }
        }
        // Proposals and reports made above may have given consensus work (most inputs make
        // none: a raft message's answer already left in the first round).
        if worked {
            self.run_consensus(now_us);
        }
        self.arm_watchdog(now_us);
        self.next_timeout_us = self.compute_next_timeout();
    }

    fn run_consensus(&mut self, now_us: u64) {
        let mut out = std::mem::take(&mut self.outgoing);
        let mut committed = std::mem::take(&mut self.committed);
        if let Err(e) = self.consensus.drain(now_us, &mut out, &mut committed) {
            // A store that cannot persist must not let us act on unpersisted state.
            self.effects.push(Effect::Event(Event::Dropped {
                from: self.me,
                why: format!("consensus: {e}"),
            }));
        }
        for o in out.drain(..) {
            self.effects.push(Effect::Send {
                to: o.to,
                msg: Message::Raft {
                    msg: o.msg,
                    stamp_us: o.stamp_us,
                },
            });
        }
        for (index, cmd) in committed.drain(..) {
            if self.state.apply(&self.spec, index, &cmd) == Applied::Changed {
                // Only the group the command touched needs a local pass; a large cluster
                // commits many times a second and most commits concern another node's group.
                match cmd.group(&self.spec) {
                    Some(g) => {
                        self.mark_dirty(g);
                        self.mine[usize::from(g)] = self.state.instance_on(g, self.me).is_some();
                    }
                    None => {
                        self.dirty = true;
                        self.dirty_all = true;
                        for g in 0..self.spec.groups.len() {
                            self.mine[g] = self.state.instance_on(g as GroupId, self.me).is_some();
                        }
                    }
                }
                if let Some(c) = &mut self.coordinator {
                    c.dirty = true;
                }
            }
            self.effects
                .push(Effect::Event(Event::Committed { index, cmd }));
        }
        // Raft's applied index, not the last command's: elections append empty entries that
        // carry no command, and a pending grant waits for the log to reach its commit index.
        self.lease.handle_applied(self.consensus.applied());
        self.outgoing = out;
        self.committed = committed;
        // Role changes.
        let leader = self.consensus.is_leader();
        if leader && self.coordinator.is_none() {
            let n = self.spec.nodes.len();
            self.coordinator = Some(Coordinator {
                keeper: LeaseKeeper::new(self.me, n, self.spec.quorum(), &self.spec.timing, now_us),
                reports: Reports::new(self.spec.groups.len(), n),
                proposed: vec![None; self.spec.groups.len()],
                stopping_since: vec![None; self.spec.groups.len()],
                dirty: true,
                wake_us: None,
                placed: None,
                scratch_wanted: vec![false; n],
                scratch_present: vec![false; n],
            });
            self.effects.push(Effect::Event(Event::BecameLeader {
                term: self.consensus.term(),
            }));
            // Every node reports afresh to the new coordinator.
            self.sent.iter_mut().for_each(|s| *s = None);
            self.dirty = true;
            self.dirty_all = true;
        } else if !leader && self.coordinator.is_some() {
            self.coordinator = None;
            self.effects.push(Effect::Event(Event::SteppedDown {
                term: self.consensus.term(),
            }));
        }
    }

    /// Bring local group instances in line with the replicated state and our lease.
    fn reconcile(&mut self, now_us: u64) {
        // Only the groups that changed, unless something that concerns all of them did (the
        // lease, fencing, standby, maintenance, a new leader): a monitor result or a commit for
        // one group must not cost a pass over every group.
        let mut todo = std::mem::take(&mut self.reconciled);
        todo.clear();
        todo.append(&mut self.dirty_groups);
        if std::mem::take(&mut self.dirty_all) || self.state.maintenance {
            todo.clear();
            todo.extend(0..self.spec.groups.len() as GroupId);
        }
        // Results and timeouts changed these groups since the caches last looked.
        self.cache_locals(&todo);
        if self.state.maintenance {
            // Leaving maintenance is a commit, which reconciles every group.
            self.reconciled = todo;
            return;
        }
        // Urgent stops must be done by the lease's end (or, with no lease, within the stop budget
        // of knowing we had none): the same deadline the watchdog enforces. An episode ends once
        // nothing exclusive may be active here, so a later one gets a budget of its own.
        if !self.exposed {
            self.urgent_since_us = None;
        }
        if !self.lease_ok && self.urgent_since_us.is_none() {
            let exclusive_here = self
                .locals
                .iter()
                .enumerate()
                .any(|(g, l)| self.spec.groups[g].is_exclusive() && l.is_some())
                || (0..self.spec.groups.len()).any(|g| {
                    self.spec.groups[g].is_exclusive()
                        && self.state.instance_on(g as GroupId, self.me).is_some()
                });
            if exclusive_here {
                self.urgent_since_us = Some(now_us);
            }
        }
        let lease_end_us = self.urgent_deadline_us(now_us);
        for &gid in &todo {
            let g = usize::from(gid);
            let gs = &self.spec.groups[g];
            let inst = self.state.instance_on(gid, self.me).copied();
            let exclusive = gs.is_exclusive();
            let run = inst.is_some_and(|i| i.phase == Phase::Active)
                && (!exclusive || self.lease_ok)
                && !self.fenced;
            let want = if run { Want::Run } else { Want::Stop };
            let slot = &mut self.locals[g];
            match (slot.as_mut(), inst) {
                (None, None) => continue,
                (None, Some(i)) => *slot = Some(LocalGroup::new(gid, gs, i.epoch, want)),
                (Some(l), Some(i)) if l.epoch == i.epoch => l.set_want(want),
                (Some(l), _) => {
                    l.set_want(Want::Stop);
                    if !l.holds_anything() && l.idle() {
                        *slot = inst.map(|i| LocalGroup::new(gid, gs, i.epoch, want));
                    }
                }
            }
            let Some(l) = slot.as_mut() else { continue };
            // Past the lease's stop point, stop everything exclusive at once (all in parallel,
            // each op cut to the lease's end); the watchdog covers a stop that hangs.
            let urgent = exclusive && !self.lease_ok && l.holds_anything();
            l.set_urgent(urgent.then_some(lease_end_us.max(now_us)));
            let mut ops = Vec::new();
            l.drive(gs, now_us, &mut self.next_op, &mut ops);
            self.effects.extend(ops.into_iter().map(Effect::Agent));
            let status = l.status();
            if status == GroupStatus::StopFailed && !self.fenced {
                // A stop we cannot finish: give up the lease so the watchdog reboots us and
                // the coordinator can take over once the lease has run out.
                self.fenced = true;
                self.dirty = true;
                self.dirty_all = true;
                self.lease.surrender();
                self.lease_ok = false;
                self.effects.push(Effect::Event(Event::SelfFence));
            }
            let epoch = l.epoch;
            if self.sent[g].is_none_or(|s| s.0 != epoch || s.1 != status) {
                self.effects.push(Effect::Event(Event::GroupStatus {
                    group: gid,
                    epoch,
                    status,
                }));
            }
            if inst.is_none() && !l.holds_anything() && l.idle() {
                self.locals[g] = None;
            }
        }
        // What this pass looked at: the caches and the reports that follow need only these.
        self.cache_locals(&todo);
        self.reconciled = todo;
    }

    /// Something happened to group `g` here: reconcile it on this pass.
    fn mark_dirty(&mut self, g: GroupId) {
        self.dirty = true;
        if !self.dirty_groups.contains(&g) {
            self.dirty_groups.push(g);
        }
    }

    /// Tell the coordinator how our instances are doing: on change (of the groups the last
    /// reconcile looked at), and every `REPORT_EVERY_US` while the state still waits for it
    /// (`periodic`, every group).
    fn send_reports(&mut self, periodic: bool) {
        let Some(leader) = self.consensus.leader() else {
            // Nobody to tell: the periodic pass looks at these once a coordinator is known.
            for &g in &self.reconciled {
                self.watch[usize::from(g)] = true;
            }
            return;
        };
        let todo = std::mem::take(&mut self.reconciled);
        let count = if periodic {
            self.spec.groups.len()
        } else {
            todo.len()
        };
        let gids = (0..count).map(|k| if periodic { k as GroupId } else { todo[k] });
        for gid in gids {
            let g = usize::from(gid);
            debug_assert_eq!(self.mine[g], self.state.instance_on(gid, self.me).is_some());
            if periodic && !self.watch[g] {
                continue;
            }
            self.watch[g] = false;
            if !self.mine[g] {
                continue;
            }
            let Some(inst) = self.state.instance_on(gid, self.me).copied() else {
                continue;
            };
            let status = match &self.locals[g] {
                Some(l) if l.epoch == inst.epoch => l.status(),
                Some(l) if l.holds_anything() => GroupStatus::Stopping,
                _ => GroupStatus::Stopped,
            };
            let waited_for = match inst.phase {
                Phase::Stopping => {
                    status == GroupStatus::Stopped || status == GroupStatus::StopFailed
                }
                Phase::Active => matches!(status, GroupStatus::CannotRun | GroupStatus::StopFailed),
            };
            let stopping = inst.phase == Phase::Stopping;
            // Whatever this look sends, only a report the coordinator waits for is repeated;
            // anything that could change that reconciles the group and looks again.
            self.watch[g] = waited_for;
            let changed =
                self.sent[g].is_none_or(|s| s.0 != inst.epoch || s.1 != status || s.2 != stopping);
            if !(changed || (periodic && waited_for)) {
                continue;
            }
            self.sent[g] = Some((inst.epoch, status, stopping));
            let r = Reported {
                node: self.me,
                epoch: inst.epoch,
                status,
                stopping,
            };
            if leader == self.me {
                self.on_report(gid, r);
            } else {
                self.effects.push(Effect::Send {
                    to: leader,
                    msg: Message::Report {
                        group: gid,
                        epoch: inst.epoch,
                        status,
                        stopping,
                    },
                });
            }
        }
        self.reconciled = todo;
    }

    fn group_events(&mut self, group: GroupId, ev: Vec<GroupEvent>) {
        for e in ev {
            self.effects.push(Effect::Event(match e {
                GroupEvent::ResourceFailed { resource, .. } => {
                    Event::ResourceFailed { group, resource }
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

    /// The coordinator's pass: placement, then at most one step per group toward its target.
    fn coordinate(&mut self, now_us: u64) {
        let alive = self.alive_view();
        let Some(c) = self.coordinator.as_mut() else {
            return;
        };
        c.dirty = false;
        c.wake_us = None;
        if self.state.maintenance {
            return;
        }
        // A node refused for dragging out a stop has lost its lease by the time its last
        // stopping instance is released: it may hold leases again. One whose stop failed stays
        // refused until it reboots (see `liveness_events`).
        for n in 0..self.spec.nodes.len() as NodeId {
            if c.keeper.is_refused(n)
                && !c.reports.any_from(n, GroupStatus::StopFailed)
                && !self.state.groups.iter().any(|g| {
                    g.instances
                        .iter()
                        .any(|i| i.node == n && i.phase == Phase::Stopping)
                })
            {
                c.keeper.allow(n);
            }
        }
        let spec = &self.spec;
        let state = &self.state;
        let civil = self.civil.map(|(t, _)| t);
        // `place` is a pure function of these: recompute only when one changed.
        let fresh = c
            .placed
            .as_ref()
            .is_some_and(|(at, a, t, _)| *at == state.applied && *a == alive && *t == civil);
        if !fresh {
            let targets = place(spec, state, &alive, civil.as_ref());
            c.placed = Some((state.applied, alive.clone(), civil, targets));
        }
        let Some((_, _, _, targets)) = &c.placed else {
            return;
        };
        let mut proposals: Vec<Command> = Vec::new();
        for (g, target) in targets.iter().enumerate() {
            let gid = g as GroupId;
            let gstate = &state.groups[g];
            if let Some((version, at)) = c.proposed[g] {
                if version == gstate.version && now_us < at + RETRY_PROPOSAL_US {
                    wake(&mut c.wake_us, at + RETRY_PROPOSAL_US);
                    continue;
                }
            }
            let exclusive = spec.groups[g].is_exclusive();
            let before = proposals.len();
            // Instances on their way down: release them once we know they are down.
            for inst in gstate
                .instances
                .iter()
                .filter(|i| i.phase == Phase::Stopping)
            {
                if c.reports.confirms_stop(gid, inst.node, inst.epoch) {
                    proposals.push(Command::Released {
                        group: gid,
                        node: inst.node,
                        epoch: inst.epoch,
                        how: Release::Confirmed,
                    });
                } else if !exclusive && !alive[usize::from(inst.node)] {
                    // A clone copy on a lost node blocks nobody.
                    proposals.push(Command::Released {
                        group: gid,
                        node: inst.node,
                        epoch: inst.epoch,
                        how: Release::LeaseExpired,
                    });
                } else if exclusive
                    && (c.keeper.lease_expired(inst.node, now_us) || self.faults.skip_lease_wait)
                    && (!alive[usize::from(inst.node)]
                        || self.faults.skip_lease_wait
                        || c.keeper.is_refused(inst.node))
                {
                    proposals.push(Command::Released {
                        group: gid,
                        node: inst.node,
                        epoch: inst.epoch,
                        how: Release::LeaseExpired,
                    });
                } else {
                    if exclusive {
                        let expiry_us = c.keeper.expiry_us(inst.node);
                        if expiry_us > now_us {
                            wake(&mut c.wake_us, expiry_us);
                        }
                    }
                    // An owner that neither confirms nor goes silent (it reaches us only over
                    // the disk path, say) is fenced by refusing its lease after a while.
                    let since = match c.stopping_since[g] {
                        Some((e, t)) if e == inst.epoch => t,
                        _ => {
                            c.stopping_since[g] = Some((inst.epoch, now_us));
                            now_us
                        }
                    };
                    let patience_us =
                        max_stop_us(spec, g) + 2 * u64::from(spec.timing.lease_ms) * 1000;
                    let give_up_us = since + patience_us;
                    if now_us < give_up_us {
                        wake(&mut c.wake_us, give_up_us);
                    } else if exclusive && alive[usize::from(inst.node)] {
                        c.keeper.refuse(inst.node);
                        c.dirty = true;
                    }
                    // Past patience with a silent owner: the lease expiry armed above decides.
                }
            }
            // An exclusive group whose every instance is released above may be activated in
            // the same batch: the activation applies after the releases, and only if they left
            // no instance (`ClusterState::apply`), so it can never overlap the old owner. Its
            // target does not change with the release (placement ignores stopping instances),
            // and a failover saves one commit round.
            let stopping = gstate
                .instances
                .iter()
                .filter(|i| i.phase == Phase::Stopping)
                .count();
            let all_released = stopping > 0
                && proposals.len() - before == stopping
                && gstate.instances.len() == stopping;
            if proposals.len() == before || !exclusive || all_released {
                match target {
                    Target::Exclusive(t) => {
                        if stopping > 0 && !all_released {
                            // Wait for the release above.
                        } else if let Some(active) =
                            gstate.instances.iter().find(|i| i.phase == Phase::Active)
                        {
                            let reported = c.reports.get(gid, active.node, active.epoch);
                            if matches!(reported, Some(GroupStatus::CannotRun)) {
                                proposals.push(Command::Failed {
                                    group: gid,
                                    node: active.node,
                                    epoch: active.epoch,
                                });
                            } else if t.is_none_or(|(n, _)| n != active.node) {
                                let cause = match t {
                                    Some((_, cause)) => *cause,
                                    None if state.standby[usize::from(active.node)] => {
                                        Cause::Standby
                                    }
                                    None => Cause::Failure,
                                };
                                proposals.push(Command::Stop {
                                    group: gid,
                                    node: active.node,
                                    epoch: active.epoch,
                                    cause,
                                });
                            }
                        } else if let Some((n, cause)) = t {
                            proposals.push(Command::Activate {
                                group: gid,
                                node: *n,
                                cause: *cause,
                            });
                        }
                    }
                    Target::Clone(nodes) => {
                        // Lookups by node, not searches: a clone may run on every node.
                        let wanted = &mut c.scratch_wanted;
                        let present = &mut c.scratch_present;
                        wanted.iter_mut().for_each(|w| *w = false);
                        present.iter_mut().for_each(|p| *p = false);
                        for &n in nodes {
                            wanted[usize::from(n)] = true;
                        }
                        for i in &gstate.instances {
                            present[usize::from(i.node)] = true;
                        }
                        for active in gstate.instances.iter().filter(|i| i.phase == Phase::Active) {
                            let reported = c.reports.get(gid, active.node, active.epoch);
                            if matches!(reported, Some(GroupStatus::CannotRun)) {
                                proposals.push(Command::Failed {
                                    group: gid,
                                    node: active.node,
                                    epoch: active.epoch,
                                });
                            } else if !c.scratch_wanted[usize::from(active.node)] {
                                let cause = if alive[usize::from(active.node)] {
                                    Cause::Standby
                                } else {
                                    Cause::Failure
                                };
                                proposals.push(Command::Stop {
                                    group: gid,
                                    node: active.node,
                                    epoch: active.epoch,
                                    cause,
                                });
                            }
                        }
                        for &n in nodes {
                            if !c.scratch_present[usize::from(n)] {
                                proposals.push(Command::Activate {
                                    group: gid,
                                    node: n,
                                    cause: Cause::Initial,
                                });
                            }
                        }
                    }
                }
            }
            if proposals.len() > before {
                c.proposed[g] = Some((gstate.version, now_us));
                wake(&mut c.wake_us, now_us + RETRY_PROPOSAL_US);
            }
        }
        if let Some((t, stamp)) = self.civil {
            for (i, s) in spec.schedules.iter().enumerate() {
                if s.cron.matches(&t) && state.schedule_fired[i] < stamp {
                    proposals.push(Command::ScheduleFired {
                        index: i as u16,
                        stamp,
                    });
                }
            }
        }
        self.consensus.propose_all(&proposals);
    }

    /// Update what the timer table and the watchdog need from local groups `todo`: each
    /// one's next deadline and whether an exclusive resource may be active in it, and from
    /// those the earliest deadline and `exposed`. Every change to a local group marks it
    /// dirty, and reconcile calls this for the dirty groups before and after driving them, so
    /// the caches never lag behind a change. Incremental: a large cluster reconciles a group
    /// or two per input, and a pass over every group on each would dominate its cost.
    fn cache_locals(&mut self, todo: &[GroupId]) {
        let mut rescan = false;
        for &gid in todo {
            let g = usize::from(gid);
            let gs = &self.spec.groups[g];
            let l = self.locals[g].as_ref();
            let exposed = gs.is_exclusive() && l.is_some_and(|l| l.may_be_active());
            if exposed != self.local_exposed[g] {
                self.local_exposed[g] = exposed;
                if exposed {
                    self.exposed_count += 1;
                } else {
                    self.exposed_count -= 1;
                }
            }
            let deadline = l.and_then(|l| l.next_deadline_us(gs));
            let old = std::mem::replace(&mut self.local_deadline_us[g], deadline);
            match (old, deadline) {
                (None, Some(_)) => self.timed.push(gid),
                (Some(_), None) => {
                    if let Some(k) = self.timed.iter().position(|&t| t == gid) {
                        self.timed.swap_remove(k);
                    }
                }
                _ => {}
            }
            if old.is_some() && old == self.locals_next_us && deadline != old {
                // The earliest moved: unless this group's new deadline is still the earliest,
                // look at every group once the batch is done.
                rescan = true;
            }
            if let Some(d) = deadline {
                if self.locals_next_us.is_none_or(|m| d <= m) {
                    self.locals_next_us = Some(d);
                }
            }
        }
        if rescan {
            let deadlines = &self.local_deadline_us;
            self.locals_next_us = self
                .timed
                .iter()
                .filter_map(|&g| deadlines[usize::from(g)])
                .min();
        }
        self.exposed = self.exposed_count > 0;
        debug_assert_eq!(
            self.locals_next_us,
            self.local_deadline_us.iter().flatten().copied().min()
        );
        debug_assert_eq!(self.exposed, self.local_exposed.contains(&true));
        debug_assert_eq!(
            self.timed.len(),
            self.local_deadline_us.iter().flatten().count()
        );
    }

    fn arm_watchdog(&mut self, now_us: u64) {
        let holds_exclusive = self.exposed;
        let deadline = if self.fenced {
            // A stop we could not finish, in any group: only a reboot cleans that up. Keep
            // the first deadline so that it does not slide.
            Some(self.watchdog_us.map_or(now_us, |d| d.min(now_us)))
        } else if !holds_exclusive {
            None
        } else {
            // The lease's end; without a lease (something was found running after a start),
            // the stop budget from when we knew we had none.
            Some(self.urgent_deadline_us(now_us))
        };
        if deadline != self.watchdog_us {
            self.watchdog_us = deadline;
            self.effects.push(Effect::Watchdog {
                deadline_us: deadline,
            });
        }
    }

    /// When exclusive resources must be stopped by: the lease's end, or without a lease, the
    /// stop budget from when we started stopping them.
    fn urgent_deadline_us(&self, now_us: u64) -> u64 {
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        self.lease
            .until_us()
            .max(self.urgent_since_us.unwrap_or(now_us) + budget_us)
    }

    fn compute_next_timeout(&self) -> u64 {
        let mut next = self
            .next_tick_us
            .min(self.next_renew_us)
            .min(self.next_report_us);
        for &t in &self.next_hb_us {
            next = next.min(t);
        }
        if let Some(d) = self.live.next_deadline_us() {
            next = next.min(d);
        }
        if self.lease_ok {
            // When the lease reaches its stop point.
            let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
            next = next.min(self.lease.until_us().saturating_sub(budget_us));
        }
        if let Some(d) = self.locals_next_us {
            next = next.min(d);
        }
        if let Some(w) = self.coordinator.as_ref().and_then(|c| c.wake_us) {
            next = next.min(w);
        }
        next
    }
}

/// Advance a periodic timer that fired at `now_us` by one period from when it was due, not
/// from now: the periodic timers all start at boot, so they stay in phase and fire on the same
/// wake-up instead of each a few microseconds apart. One that fell a whole period behind
/// restarts from now.
fn next_period(due_us: &mut u64, now_us: u64, period_us: u64) {
    *due_us += period_us;
    if *due_us <= now_us {
        *due_us = now_us + period_us;
    }
}

fn wake(slot: &mut Option<u64>, at: u64) {
    debug_assert!(at > 0);
    *slot = Some(slot.map_or(at, |w| w.min(at)));
}

fn max_stop_us(spec: &ClusterSpec, g: usize) -> u64 {
    spec.groups[g]
        .resources
        .iter()
        .map(|r| u64::from(r.stop_timeout_ms) * 1000)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: GroupStatus, stopping: bool) -> Reported {
        Reported {
            node: 1,
            epoch: 7,
            status,
            stopping,
        }
    }

    /// A `Stopped` sent before the node knew of the stop (a lease lapse) does not confirm
    /// the stop: the node may have started again, and the report that said so may be lost.
    #[test]
    fn only_a_stopped_report_made_after_the_stop_confirms_it() {
        let mut r = Reports::new(1, 3);
        r.set(0, report(GroupStatus::Stopped, false));
        assert!(!r.confirms_stop(0, 1, 7));
        r.set(0, report(GroupStatus::Stopping, true));
        assert!(!r.confirms_stop(0, 1, 7));
        r.set(0, report(GroupStatus::Stopped, true));
        assert!(r.confirms_stop(0, 1, 7));
        assert!(!r.confirms_stop(0, 1, 8), "another epoch");
    }
}
