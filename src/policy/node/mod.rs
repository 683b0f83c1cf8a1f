//! The node core: everything one `eterned` decides, as one pure state machine.
//!
//! It composes the parts, each in a room of its own: failure detection ([`Liveness`]),
//! consensus ([`Consensus`]), the replicated [`ClusterState`], this node's lease
//! ([`LeaseHolder`]), the [`Coordinator`] while this node is the raft leader, this node's group
//! instances ([`Locals`]) and the deadlines of all of them ([`TimerTable`]). What is left here
//! is the loop: route each input to its part, then run consensus, apply, reconcile and
//! coordinate until nothing changes, and arm the next timeout.
//!
//! The shell (the actor tree, or the simulator) drives it quinn-style:
//!
//! 1. feed what happened with [`NodeCore::handle`];
//! 2. call [`NodeCore::handle_timeout`] once `now_us >= next_timeout_us()`;
//! 3. carry out [`NodeCore::drain_effects`]: heartbeats, messages, agent ops, the watchdog,
//!    events.
//!
//! Nothing here reads a clock: time comes in as `now_us`.
//!
//! # Driving a `NodeCore`
//!
//! A shell in a dozen lines: here one node of three, alone on a virtual clock. It sends
//! heartbeats, times out into an election (which it cannot win alone), and writes what raft
//! asks to make durable into a log of its own before it reports it persisted.
//!
//! ```
//! use std::sync::Arc;
//! use eterne::config::ClusterConfig;
//! use eterne::policy::message::{Effect, Input};
//! use eterne::policy::node::NodeCore;
//! use eterne::policy::raft_log::MemLog;
//!
//! let toml = r#"
//! [cluster]
//! name = "demo"
//! [[path]]
//! name = "lan"
//! kind = "network"
//! [[node]]
//! name = "n1"
//! addresses = { lan = "10.0.0.1:7400" }
//! [[node]]
//! name = "n2"
//! addresses = { lan = "10.0.0.2:7400" }
//! [[node]]
//! name = "n3"
//! addresses = { lan = "10.0.0.3:7400" }
//! "#;
//! let spec = Arc::new(ClusterConfig::from_str(toml, "cluster.toml").unwrap().spec());
//! let logger = slog::Logger::root(slog::Discard, slog::o!());
//! let empty = MemLog::new_with_conf_state(&[1, 2, 3]);
//! let mut core = NodeCore::new(spec, 0, empty.clone(), 1, 42, 1_000_000, &logger).unwrap();
//! let mut disk = empty; // the shell's durable log
//! let (mut now, mut heartbeats, mut sent) = (1_000_000, 0, 0);
//! while now < 5_000_000 {
//!     now = now.max(core.next_timeout_us());
//!     core.handle_timeout(now);
//!     let effects: Vec<Effect> = core.drain_effects().collect();
//!     for e in effects {
//!         match e {
//!             Effect::Heartbeat { .. } => heartbeats += 1,
//!             Effect::Send { .. } => sent += 1, // a raft vote request, say
//!             Effect::Persist { batch, then } => {
//!                 batch.write_to(&mut disk).unwrap(); // write (and fsync) first,
//!                 sent += then.len(); // then send what waited for it,
//!                 core.handle(Input::Persisted { number: batch.number }, now); // then say so
//!             }
//!             _ => {} // agent ops, the watchdog, events
//!         }
//!     }
//! }
//! assert!(heartbeats > 0 && sent > 0);
//! assert!(core.coordinator().is_none(), "one node of three elects nobody");
//! ```

use std::sync::Arc;

use super::admin::{resolve, AdminRequest, Resolved};
use super::consensus::{Consensus, Outgoing};
use super::coordinator::{Coordinator, Reported, View};
use super::detector::{Liveness, LivenessEvent};
use super::drain::DrainView;
use super::entry::EntryError;
use super::fencing::{DeviceChange, DeviceHealth, DeviceWatch};
use super::group::LocalGroup;
use super::lease::{Grant, LeaseHolder};
use super::local::{Context, Locals, ReportTo};
use super::message::{Effect, Event, Heartbeat, Input, Message};
use super::raft_log::{MemLog, Persist};
use super::raft_wire::WireMessage;
use super::route::Router;
use super::schedule::CivilTime;
use super::snapshot;
use super::spec::{ClusterSpec, GroupId, NodeId, PartitionPolicy, PathId, ResourceId};
use super::state::{AdminCommand, Applied, ClusterState, Command, Phase};
use super::timer::{Timer, TimerTable};
use super::two_node::{Facts, TwoNode};

mod agreement;
mod disk;

pub use super::consensus::ConsensusError;

/// Test-only switches that break a safety rule on purpose, so that a test can show the
/// simulator's checker catches the breakage. Never set in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Take over from a silent owner without waiting for its lease to run out (breaks 4b).
    pub skip_lease_wait: bool,
    /// The shell (the simulator) sends what waits for a raft log write before the write is
    /// durable, as a daemon that acknowledged before its fsync would (breaks raft's
    /// persistence rule; a crash that loses the write loses a committed entry).
    pub ack_before_durable: bool,
    /// The simulator's model of the monitor process never stops anything hard: a core that
    /// died or stalled with exclusive resources up leaves them up past its lease (breaks the
    /// promise of docs/runtime.md "The two processes"). Read by `simulations/sim/monitor.rs`;
    /// the real monitor has no such switch.
    pub monitor_never_stops_hard: bool,
    /// Two nodes with fencing: go on alone when the peer falls silent, as if its fence had
    /// succeeded, without running one (breaks "only a fenced peer is left out",
    /// `policy/two_node.rs`).
    pub alone_unfenced: bool,
    /// Vote for a candidate whatever its config digest (breaks "a coordinator is elected by
    /// voters with its own file", docs/architecture.md "Agreement by content").
    pub vote_any_config: bool,
}

/// The node core.
pub struct NodeCore {
    spec: Arc<ClusterSpec>,
    me: NodeId,
    incarnation: u64,
    consensus: Consensus,
    state: ClusterState,
    live: Liveness,
    /// Per peer: the config digest its last heartbeat carried (`None`: not heard yet).
    peer_digest: Vec<Option<u64>>,
    /// The first committed entry this node could not read since the last [`Command::Config`]
    /// of its own digest (see [`NodeCore::config_differs`]).
    unreadable: Option<(u64, EntryError)>,
    /// Whether [`NodeCore::config_ok`] held after the last pass (to tell its changes).
    config_was_ok: bool,
    /// The index of the last applied [`Command::Config`] of this node's own digest.
    own_config_at: u64,
    /// As coordinator: the term and time of our last proposal of [`Command::Config`].
    config_asked: Option<(u64, u64)>,
    lease: LeaseHolder,
    lease_ok: bool,
    coordinator: Option<Coordinator>,
    /// What the fence device's `monitor` action last said, here.
    device: DeviceWatch,
    /// Two nodes with a fencing device and no witness: going on alone after fencing the peer.
    two_node: Option<TwoNode>,
    two_node_wake: Option<u64>,
    locals: Locals,
    router: Router,
    civil: Option<(CivilTime, u64)>,
    timers: TimerTable,
    next_timeout_us: u64,
    /// The commit index of the log recovered at start: once applied, the start's sweep for
    /// what an earlier run left here begins ([`Locals::sweep_orphans`]).
    sweep_after: Option<u64>,
    /// Applied entries between two snapshots of the state ([`snapshot::SNAPSHOT_EVERY`]).
    snapshot_every: u64,
    /// The log was discarded to rejoin and is not caught up yet ([`NodeCore::rejoin`]).
    rejoining: bool,
    /// Why the state disk failed, while it does ([`NodeCore::state_disk_failed`]).
    disk_failed: Option<String>,
    faults: Faults,
    effects: Vec<Effect>,
    outgoing: Vec<Outgoing>,
    committed: Vec<(u64, Command)>,
    persist: Vec<(Persist, Vec<Outgoing>)>,
    scratch_events: Vec<LivenessEvent>,
}

/// How often the reports the coordinator still waits for are repeated.
const REPORT_EVERY_US: u64 = 100_000;

/// How long a coordinator waits for its [`Command::Config`] to commit before asking again.
const CONFIG_RETRY_US: u64 = 200_000;

impl NodeCore {
    /// A node core for node `me`, starting at `now_us`, over `store`: the raft log as the
    /// shell recovered it from its durable store (empty on a first start). `incarnation` must differ on every daemon start (the shell uses its
    /// wall clock at start); `seed` feeds the election timeouts.
    pub fn new(
        spec: Arc<ClusterSpec>,
        me: NodeId,
        store: MemLog,
        incarnation: u64,
        seed: u64,
        now_us: u64,
        logger: &slog::Logger,
    ) -> Result<Self, ConsensusError> {
        let n = spec.nodes.len();
        let consensus = Consensus::new(me, &spec, store, seed, logger)?;
        let sweep_after = Some(consensus.commit());
        let tick_us = u64::from(spec.timing.raft_tick_ms) * 1000;
        let mut timers = TimerTable::new(spec.paths.len());
        for p in 0..spec.paths.len() {
            timers.set(Timer::Heartbeat(p as PathId), Some(now_us));
        }
        timers.set(Timer::RaftTick, Some(now_us + tick_us));
        timers.set(Timer::LeaseRenew, Some(now_us));
        timers.set(Timer::Report, Some(now_us + REPORT_EVERY_US));
        let mut core = NodeCore {
            me,
            incarnation,
            consensus,
            state: ClusterState::new(&spec),
            live: Liveness::new(&spec, me, now_us),
            peer_digest: vec![None; n],
            unreadable: None,
            config_was_ok: true,
            own_config_at: 0,
            config_asked: None,
            lease: LeaseHolder::default(),
            lease_ok: false,
            coordinator: None,
            device: DeviceWatch::default(),
            two_node: (spec.nodes.len() == 2 && spec.partition == PartitionPolicy::Fence)
                .then(|| TwoNode::new(me, 1 - me)),
            two_node_wake: None,
            locals: Locals::new(&spec),
            router: Router::new(&spec),
            civil: None,
            timers,
            next_timeout_us: now_us,
            sweep_after,
            snapshot_every: snapshot::SNAPSHOT_EVERY,
            rejoining: false,
            disk_failed: None,
            faults: Faults::default(),
            effects: Vec::new(),
            outgoing: Vec::new(),
            committed: Vec::new(),
            persist: Vec::new(),
            scratch_events: Vec::new(),
            spec,
        };
        let log = core.consensus.log();
        let (index, data) = (log.snapshot_metadata().index, log.snapshot_data().to_vec());
        if index > 0 {
            core.restore(index, &data);
        }
        Ok(core)
    }

    /// Take a snapshot every `entries` applied entries instead of every
    /// [`snapshot::SNAPSHOT_EVERY`] (tests and the simulator, to see it happen often).
    pub fn set_snapshot_every(&mut self, entries: u64) {
        self.snapshot_every = entries.max(1);
    }

    /// This node's log was discarded (`eternectl state discard`) and it rejoins the cluster:
    /// it takes no part in elections until its log holds what the coordinator had committed
    /// ([`super::consensus::Rejoin`]); [`Event::Rejoined`] says when.
    pub fn rejoin(&mut self) {
        self.consensus.rejoin();
        self.rejoining = true;
    }

    /// Whether the node still catches up after discarding its log.
    pub fn rejoining(&self) -> bool {
        self.rejoining
    }

    /// Replaces the replicated state with a snapshot's, at start (the one the log continues
    /// from) or when the coordinator sent one because this node was too far behind. What the
    /// snapshot names that this config lacks is left out and keeps the node from acting, as
    /// an unreadable entry would.
    fn restore(&mut self, index: u64, data: &[u8]) {
        match snapshot::decode(data, &self.spec, self.consensus.keys()) {
            Ok((state, unknown)) => {
                self.state = state;
                if self.state.config == self.spec.digest {
                    self.own_config_at = index;
                }
                if let Some(why) = unknown {
                    self.unreadable.get_or_insert((index, why));
                }
            }
            Err(why) => {
                self.unreadable.get_or_insert((index, why));
            }
        }
        self.locals.note_applied(&self.state, self.me, None);
        if let Some(c) = &mut self.coordinator {
            c.dirty = true;
        }
    }

    /// Every [`NodeCore::set_snapshot_every`] applied entries: a snapshot of the state, and
    /// the log it covers dropped (here and, through a [`Persist`] batch, on disk). Not while
    /// this node cannot read the log: its state is not the cluster's.
    fn maybe_snapshot(&mut self) {
        let applied = self.consensus.applied();
        if applied < self.consensus.snapshot_index() + self.snapshot_every
            || self.unreadable.is_some()
        {
            return;
        }
        let taken = snapshot::encode(&self.state, self.consensus.keys())
            .map_err(ConsensusError::from)
            .and_then(|data| self.consensus.snapshot(data));
        match taken {
            Ok(Some(batch)) => self.effects.push(Effect::Persist {
                batch: Box::new(batch),
                then: Vec::new(),
            }),
            Ok(None) => {}
            Err(e) => self.effects.push(Effect::Event(Event::Dropped {
                from: self.me,
                why: format!("snapshot: {e}"),
            })),
        }
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

    /// The resolved config this core runs.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The replicated state as applied here.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The coordinator (the raft leader), if known.
    pub fn coordinator(&self) -> Option<NodeId> {
        self.consensus.leader()
    }

    /// Whether this node is the coordinator.
    pub fn is_coordinator(&self) -> bool {
        self.consensus.is_leader()
    }

    /// What this node's fence device last answered to its `monitor` action.
    pub fn fence_device(&self) -> &DeviceHealth {
        self.device.health()
    }

    /// The consensus term.
    pub fn term(&self) -> u64 {
        self.consensus.term()
    }

    /// The liveness view.
    pub fn liveness(&self) -> &Liveness {
        &self.live
    }

    /// When this node's lease ends (this core's clock, µs; 0 if it never held one).
    pub fn lease_until_us(&self) -> u64 {
        self.lease.until_us()
    }

    /// The last raft log index applied here.
    pub fn applied(&self) -> u64 {
        self.consensus.applied()
    }

    /// The lease the previous core of this node held, handed over by the monitor process and
    /// converted to this core's clock (`until_us`). It is used as a grant is: only once this
    /// core's log has reached `applied`, the index the previous core had applied, so the new
    /// core never acts on an older state than the one the lease was used with. Call before
    /// the first input.
    pub fn inherit_lease(&mut self, until_us: u64, applied: u64, now_us: u64) {
        let grant = Grant {
            term: self.consensus.term(),
            echo_us: until_us,
            valid_us: 0,
            commit: applied,
        };
        self.lease.handle_grant(grant, self.consensus.applied());
        self.check_lease(now_us);
    }

    /// Whether this node may run exclusive groups now.
    pub fn holds_lease(&self) -> bool {
        self.lease_ok
    }

    /// This node's instance of a group, if it runs one.
    pub fn local_group(&self, g: GroupId) -> Option<&LocalGroup> {
        self.locals.get(g)
    }

    /// Whether the shell reported the connection to `peer` on `path` up.
    pub fn connected(&self, peer: NodeId, path: PathId) -> bool {
        self.router.is_up(peer, path)
    }

    /// The failures of resource `r` of group `g` seen on this node since the daemon started
    /// or the group's failures were cleared.
    pub fn resource_failures(&self, g: GroupId, r: ResourceId) -> u32 {
        self.locals.resource_failures(g, r)
    }

    /// The last failure of resource `r` of group `g` seen on this node.
    pub fn last_failure(&self, g: GroupId, r: ResourceId) -> Option<&super::local::LastFailure> {
        self.locals.last_failure(g, r)
    }

    /// The raft log in memory: everything persisted, and what is still in flight.
    pub fn log(&self) -> &MemLog {
        self.consensus.log()
    }

    /// An operator's request by names, resolved against the config, the applied state and
    /// [`NodeCore::alive_view`]; what passes may be fed as [`Input::Admin`].
    pub fn resolve_admin(&self, req: AdminRequest<'_>) -> Result<Resolved, String> {
        resolve(&self.spec, &self.state, &self.alive_view(), req)
    }

    /// What a drain of this node looks at (see [`super::drain`]).
    pub fn drain_view(&self) -> DrainView {
        let me = self.me;
        let held = self.locals.holds_anything();
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
        self.silence_if_disk_failed();
        self.effects.drain(..)
    }

    /// Something happened.
    pub fn handle(&mut self, input: Input, now_us: u64) {
        if self.disk_failed.is_some()
            && matches!(input, Input::Heartbeat { .. } | Input::Message { .. })
        {
            return;
        }
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
                    && !self.locals.dirty
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
                reason,
            } => self.locals.handle_result(
                &self.spec,
                (group, resource, op),
                (outcome, reason),
                now_us,
                &mut self.effects,
            ),
            Input::ResourceFailed {
                group,
                resource,
                reason,
            } => self.locals.handle_resource_failed(
                &self.spec,
                (group, resource, reason),
                now_us,
                &mut self.effects,
            ),
            Input::Admin(cmd) => self.on_admin(cmd, self.me),
            Input::Persisted { number } => self.consensus.on_persisted(number),
            Input::StateDiskFailed { why } => self.state_disk_fails(why),
            Input::StateDiskRecovered => {
                if !self.state_disk_recovers() {
                    return;
                }
            }
            Input::FenceResult {
                target,
                attempt,
                outcome,
            } => self.on_fence_result(target, attempt, outcome, now_us),
            Input::FenceDeviceChecked { outcome } => {
                let change = self.device.on_check(outcome.ok, &outcome.reason, now_us);
                self.effects.push(Effect::Event(match change {
                    None => return,
                    Some(DeviceChange::Failed) => Event::FenceDeviceFailed { outcome },
                    Some(DeviceChange::Recovered) => Event::FenceDeviceRecovered { outcome },
                }));
                // Nothing else depends on it: no pass.
                return;
            }
            Input::Connection { peer, path, up } => {
                self.router.set(peer, path, up);
                if !(up && self.consensus.is_leader()) {
                    // Only the paths of later messages change: no pass.
                    return;
                }
                // A peer reached again (a new core after a restart, above all) learns who
                // coordinates and what is committed now, not at the next heartbeat tick: its
                // lease request, and so its lease, need both.
                self.consensus.ping();
            }
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
        if self.disk_failed.is_some() || !self.on_heartbeat(from, path, hb, now_us) {
            return false;
        }
        self.after(now_us);
        true
    }

    /// Timers due at `now_us`.
    pub fn handle_timeout(&mut self, now_us: u64) {
        let tick_us = u64::from(self.spec.timing.raft_tick_ms) * 1000;
        for p in 0..self.spec.paths.len() {
            let t = Timer::Heartbeat(p as PathId);
            if self.timers.is_due(t, now_us) {
                let interval_us = u64::from(self.spec.paths[p].interval_ms) * 1000;
                self.timers.advance(t, now_us, interval_us);
                self.effects.push(Effect::Heartbeat {
                    path: p as PathId,
                    hb: Heartbeat {
                        incarnation: self.incarnation,
                        digest: self.spec.digest,
                    },
                });
            }
        }
        if self.live.next_timeout_us().is_some_and(|d| now_us >= d) {
            let mut ev = std::mem::take(&mut self.scratch_events);
            self.live.handle_timeout(now_us, &mut ev);
            self.liveness_events(&mut ev);
            self.scratch_events = ev;
        } else {
            // Heartbeats move deadlines later without recomputing the earliest: make it exact
            // before the next tick (we wake then anyway) so that we do not wake for a deadline
            // that has already moved.
            self.live.refresh_next_timeout(now_us + tick_us);
        }
        if self.timers.is_due(Timer::RaftTick, now_us) {
            self.timers.advance(Timer::RaftTick, now_us, tick_us);
            self.consensus.tick();
        }
        if self.timers.is_due(Timer::LeaseRenew, now_us) {
            let renew_us = u64::from(self.spec.timing.lease_renew_ms) * 1000;
            self.timers.advance(Timer::LeaseRenew, now_us, renew_us);
            self.renew_lease(now_us);
        }
        if self.timers.is_due(Timer::Report, now_us) {
            self.timers.advance(Timer::Report, now_us, REPORT_EVERY_US);
            self.send_reports(true);
        }
        self.locals
            .handle_timeout(&self.spec, now_us, &mut self.effects);
        if let Some(c) = &mut self.coordinator {
            if c.wake_us.is_some_and(|w| now_us >= w) {
                c.dirty = true;
            }
        }
        self.after(now_us);
    }

    /// A heartbeat arrived; whether it changed anything beyond a detector deadline.
    fn on_heartbeat(&mut self, from: NodeId, path: u8, hb: Heartbeat, now_us: u64) -> bool {
        if usize::from(from) >= self.peer_digest.len() || from == self.me {
            return false;
        }
        let ok = hb.digest == self.spec.digest;
        let known = self.peer_digest[usize::from(from)];
        if known == Some(hb.digest) && self.live.renew(from, path, hb.incarnation, now_us) {
            // Nearly every heartbeat: a later deadline on a path that is up, nothing else.
            return false;
        }
        let mut changed = known != Some(hb.digest);
        if changed {
            self.peer_digest[usize::from(from)] = Some(hb.digest);
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
                    c.on_restart(peer);
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
            // Only a candidate with our own file gets our vote: a coordinator is elected by
            // voters that agree on the config. A vote request with another digest, or without
            // one, is dropped (the candidate's next election asks again).
            Message::Vote { msg, digest } => {
                let agrees = digest == self.spec.digest || self.faults.vote_any_config;
                if agrees && is_vote_request(&msg) {
                    self.on_raft(from, *msg, 0, now_us);
                }
            }
            Message::Raft { msg, stamp_us } => {
                if !is_vote_request(&msg) {
                    self.on_raft(from, *msg, stamp_us, now_us);
                }
            }
            Message::LeaseRequest { stamp_us } => {
                let term = self.consensus.term();
                let commit = self.consensus.commit();
                let agrees = self.peer_digest[usize::from(from)] == Some(self.spec.digest);
                // A two-node peer left out after its fence gets no lease until it is taken
                // back: whatever it booted with is older than what was decided without it
                // (its instances were released by the fence, not by a lease running out).
                let left_out = self
                    .two_node
                    .as_ref()
                    .is_some_and(|t| t.peer() == from && !self.consensus.is_voter(from));
                if let Some(c) = self.coordinator.as_mut().filter(|_| agrees && !left_out) {
                    if let Some(grant) = c.keeper.grant(from, term, stamp_us, commit, now_us) {
                        self.effects
                            .push(self.router.send(from, Message::LeaseGrant(grant)));
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
            // Only the coordinator answers for the cluster: from anyone else it is dropped.
            Message::AdminRefused { cmd, why } if self.consensus.leader() == Some(from) => {
                let name = self.spec.nodes.get(usize::from(from));
                let by = name.map_or("?", |n| n.name.as_str());
                self.effects.push(Effect::Event(Event::AdminRefused {
                    cmd,
                    why: format!("{why} (said the coordinator, {by})"),
                }));
            }
            Message::AdminRefused { .. } => {}
        }
    }

    /// A raft message from `from`, stepped into consensus.
    fn on_raft(&mut self, from: NodeId, msg: WireMessage, stamp_us: u64, now_us: u64) {
        let leader = self.consensus.leader();
        match self.consensus.step(from, msg, stamp_us) {
            Ok(Some(echo)) => {
                if let Some(c) = &mut self.coordinator {
                    c.keeper.handle_echo(from, echo);
                }
            }
            Ok(None) => {}
            Err(why) => self
                .effects
                .push(Effect::Event(Event::Dropped { from, why })),
        }
        if self.consensus.leader() != leader {
            // A coordinator just learnt of: ask it for a lease now, not at the next renewal
            // tick.
            self.renew_lease(now_us);
        }
    }

    /// A fence this node asked for as the coordinator ended: an event either way; the
    /// coordinator (if this node still is it) decides what follows.
    fn on_fence_result(
        &mut self,
        target: NodeId,
        attempt: u32,
        outcome: super::message::FenceOutcome,
        now_us: u64,
    ) {
        if usize::from(target) >= self.spec.nodes.len() {
            return;
        }
        let ok = outcome.ok;
        if TwoNode::owns(attempt) {
            let last = self.consensus.last_index();
            if let Some(t) = &mut self.two_node {
                t.on_result(attempt, ok, last, now_us);
            }
        } else if let Some(c) = &mut self.coordinator {
            c.on_fence_result(target, attempt, ok, now_us);
        }
        self.effects.push(Effect::Event(if ok {
            Event::FenceSucceeded {
                target,
                attempt,
                outcome,
            }
        } else {
            Event::FenceFailed {
                target,
                attempt,
                outcome,
            }
        }));
    }

    fn on_grant(&mut self, grant: Grant, now_us: u64) {
        if grant.term != self.consensus.term() || self.locals.fenced() {
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
            c.on_report(group, r);
        }
    }

    fn on_admin(&mut self, cmd: super::state::AdminCommand, from: NodeId) {
        if self.consensus.is_leader() {
            let alive = self.alive_view();
            let checked = if self.state.config != self.spec.digest {
                Err(super::state::AdminError::Refused(
                    "the coordinator has not yet committed its config (cluster.toml); try again"
                        .into(),
                ))
            } else {
                self.state.check_admin(&self.spec, &alive, &cmd)
            };
            match checked {
                Ok(()) => {
                    self.consensus.propose(&Command::Admin(cmd));
                }
                Err(e) => {
                    let why = e.to_string();
                    if from != self.me {
                        // Forwarded: the asking node's operator waits for the answer.
                        let back = Message::AdminRefused {
                            cmd: cmd.clone(),
                            why: why.clone(),
                        };
                        self.effects.push(self.router.send(from, back));
                    }
                    self.effects
                        .push(Effect::Event(Event::AdminRefused { cmd, why }));
                }
            }
        } else if let Some(l) = self.consensus.leader() {
            self.effects.push(self.router.send(l, Message::Admin(cmd)));
        } else {
            self.effects.push(Effect::Event(Event::AdminRefused {
                cmd,
                why: "no coordinator is elected (no quorum?)".into(),
            }));
        }
    }

    fn renew_lease(&mut self, now_us: u64) {
        // No lease while the start's sweep may still find something left running here, nor
        // while this node's config is not the committed one.
        if self.locals.fenced()
            || self.disk_failed.is_some()
            || self.sweep_after.is_some()
            || self.locals.sweeping()
            || !self.config_ok()
        {
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
                self.effects.push(
                    self.router
                        .send(l, Message::LeaseRequest { stamp_us: now_us }),
                );
            }
        }
    }

    fn check_lease(&mut self, now_us: u64) {
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        let ok = !self.locals.fenced()
            && self.disk_failed.is_none()
            && self.config_ok()
            && self.lease.holds(now_us + budget_us);
        if ok != self.lease_ok {
            self.lease_ok = ok;
            if ok {
                self.locals.lease_regained();
            }
            self.locals.mark_all();
            if !ok && self.sweep_after.is_none() {
                // Back without a lease is a join: look again for what may run here unplaced.
                self.locals.sweep_orphans(&self.spec, &self.state, self.me);
            }
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
            *a = *a && self.config_agrees(i as NodeId);
        }

        if let Some(c) = &self.coordinator {
            for (i, a) in alive.iter_mut().enumerate() {
                // A node being fenced (its stop failed) can host nothing until it reboots.
                if c.keeper.is_refused(i as NodeId) {
                    *a = false;
                }
            }
        }
        if let Some(t) = &self.two_node {
            // A peer left out after its fence hosts nothing until it is a voter again: it
            // may have booted with a stale log, and nothing commits with it yet.
            if !self.consensus.is_voter(t.peer()) {
                alive[usize::from(t.peer())] = false;
            }
        }
        alive[usize::from(self.me)] =
            !self.locals.fenced() && self.disk_failed.is_none() && self.config_differs().is_none();
        alive
    }

    /// After every input: run consensus, apply, reconcile, coordinate, arm timers.
    fn after(&mut self, now_us: u64) {
        // Consensus may produce more work after we propose; two rounds settle it.
        let mut worked = false;
        for _ in 0..3 {
            self.run_consensus(now_us);
            if self
                .sweep_after
                .is_some_and(|c| self.consensus.applied() >= c)
            {
                self.sweep_after = None;
                self.locals.sweep_orphans(&self.spec, &self.state, self.me);
            }
            self.check_lease(now_us);
            // A node that failed (its state disk) shoots no one and places nothing: it hears
            // no one, so to it everyone else looks lost.
            let failed = self.disk_failed.is_some();
            if self.two_node.is_some() && !failed {
                worked |= self.step_two_node(now_us);
            }
            let reconciled = self.locals.dirty;
            if self.locals.dirty {
                self.reconcile(now_us);
                self.send_reports(false);
                worked = true;
            }
            if !failed && self.coordinator.as_ref().is_some_and(|c| c.dirty) {
                self.coordinate(now_us);
                worked = true;
            } else if !(reconciled && self.locals.dirty) {
                break;
            }
        }
        // Proposals and reports made above may have given consensus work (most inputs make
        // none: a raft message's answer already left in the first round).
        if worked {
            self.run_consensus(now_us);
        }
        self.locals
            .arm_watchdog(&self.spec, self.lease.until_us(), now_us, &mut self.effects);
        self.next_timeout_us = self.next_timeout();
    }

    /// Two nodes with fencing (`policy/two_node.rs`): fence a silent peer, go alone once it
    /// is off, take it back once it caught up. Whether it proposed or changed anything.
    fn step_two_node(&mut self, now_us: u64) -> bool {
        let Some(t) = self.two_node.as_mut() else {
            return false;
        };
        let peer = t.peer();
        let facts = Facts {
            peer_votes: self.consensus.is_voter(peer),
            // Lost after it was heard: at a start every peer counts as suspected until its
            // first heartbeat, and a node must never shoot a peer it simply has not heard yet.
            peer_silent: self.live.is_suspected(peer) && self.live.incarnation(peer) != 0,
            leader: self.consensus.is_leader(),
            last_index: self.consensus.last_index(),
            incarnation: self.incarnation,
            peer_incarnation: self.live.incarnation(peer),
            peer_matched: self.consensus.matched(peer),
            now_us,
        };
        let todo = t.step(&self.state, facts);
        self.two_node_wake = todo.wake_us;
        let mut worked = false;
        if let Some(r) = todo.fence.filter(|_| self.faults.alone_unfenced) {
            let last = self.consensus.last_index();
            t.on_result(r.attempt, true, last, now_us);
            self.two_node_wake = Some(now_us);
        } else if let Some(r) = todo.fence {
            ask_fence(&mut self.effects, r);
        }
        let change = if todo.go_alone {
            Some(self.consensus.go_alone(peer))
        } else if todo.take_back {
            Some(self.consensus.take_back(peer))
        } else {
            None
        };
        if let Some(result) = change {
            worked = true;
            if let Err(e) = result {
                self.effects.push(Effect::Event(Event::Dropped {
                    from: self.me,
                    why: format!("consensus: a two-node configuration change failed: {e}"),
                }));
            }
            let quorum = self.quorum();
            if let Some(c) = &mut self.coordinator {
                c.keeper.set_quorum(quorum);
                c.dirty = true;
            }
        }
        if !todo.propose.is_empty() {
            self.consensus.propose_all(&todo.propose);
            worked = true;
        }
        worked
    }

    /// The voters that make a majority in this node's raft configuration now.
    fn quorum(&self) -> usize {
        match &self.two_node {
            Some(t) if !self.consensus.is_voter(t.peer()) => 1,
            _ => self.spec.quorum(),
        }
    }

    fn run_consensus(&mut self, now_us: u64) {
        let mut out = std::mem::take(&mut self.outgoing);
        let mut committed = std::mem::take(&mut self.committed);
        let mut persist = std::mem::take(&mut self.persist);
        if let Err(e) = self
            .consensus
            .drain(now_us, &mut out, &mut committed, &mut persist)
        {
            // A log that refuses a change must not let us act on it.
            self.effects.push(Effect::Event(Event::Dropped {
                from: self.me,
                why: format!("consensus: {e}"),
            }));
        }
        let digest = self.spec.digest;
        for o in out.drain(..) {
            let (to, msg) = raft_message(o, digest);
            self.effects.push(self.router.send(to, msg));
        }
        // After the messages that may go at once: the shell writes the batch and only then
        // sends what waited for it.
        for (batch, then) in persist.drain(..) {
            let router = &self.router;
            let then = then
                .into_iter()
                .map(|o| raft_message(o, digest))
                .map(|(to, msg)| (to, router.paths(to, &msg), msg))
                .collect();
            self.effects.push(Effect::Persist {
                batch: Box::new(batch),
                then,
            });
        }
        self.persist = persist;
        for (peer, acknowledged, ends_at) in self.consensus.take_behind() {
            self.effects.push(Effect::Event(Event::FollowerBehind {
                peer,
                acknowledged,
                ends_at,
            }));
        }
        if let Some((index, data)) = self.consensus.take_restored() {
            self.restore(index, &data);
            self.effects
                .push(Effect::Event(Event::SnapshotInstalled { index }));
        }
        for (index, cmd) in committed.drain(..) {
            if cmd
                == (Command::Config {
                    digest: self.spec.digest,
                })
            {
                self.own_config_at = index;
            }
            if self.state.apply(&self.spec, index, &cmd) == Applied::Changed {
                // Only the group the command touched needs a local pass; a large cluster
                // commits many times a second and most commits concern another node's group.
                self.locals
                    .note_applied(&self.state, self.me, cmd.group(&self.spec));
                if let Command::Admin(AdminCommand::ClearFailures { group, node }) = cmd {
                    if node.is_none_or(|n| n == self.me) {
                        self.locals.clear_failures(group);
                    }
                }
                if let Some(c) = &mut self.coordinator {
                    c.dirty = true;
                }
            }
            self.effects
                .push(Effect::Event(Event::Committed { index, cmd }));
        }
        self.note_unreadable();
        self.maybe_snapshot();
        if self.rejoining && self.consensus.rejoining().is_none() {
            self.rejoining = false;
            self.effects.push(Effect::Event(Event::Rejoined {
                through: self.consensus.commit(),
            }));
        }
        // Raft's applied index, not the last command's: elections append empty entries that
        // carry no command, and a pending grant waits for the log to reach its commit index.
        self.lease.handle_applied(self.consensus.applied());
        self.outgoing = out;
        self.committed = committed;
        // Role changes.
        let coordinating = self.consensus.is_leader();
        if coordinating && self.coordinator.is_none() {
            let mut c = Coordinator::new(&self.spec, self.me, now_us);
            c.keeper.set_quorum(self.quorum());
            self.coordinator = Some(c);
            self.effects.push(Effect::Event(Event::BecameCoordinator {
                term: self.consensus.term(),
            }));
            // Every node reports afresh to the new coordinator.
            self.locals.report_afresh();
        } else if !coordinating && self.coordinator.is_some() {
            self.coordinator = None;
            self.effects.push(Effect::Event(Event::SteppedDown {
                term: self.consensus.term(),
            }));
        }
    }

    /// Bring local group instances in line with the replicated state and our lease; a stop
    /// that failed costs us the lease (see [`Locals::reconcile`]).
    fn reconcile(&mut self, now_us: u64) {
        let cx = Context {
            spec: &self.spec,
            state: &self.state,
            me: self.me,
            lease_ok: self.lease_ok,
            config_ok: self.config_ok(),
            lease_until_us: self.lease.until_us(),
            now_us,
        };
        if self.locals.reconcile(cx, &mut self.effects) {
            self.lease.surrender();
            self.lease_ok = false;
        }
    }

    /// Reports on our instances: to a remote coordinator as messages, to ourselves directly.
    fn send_reports(&mut self, periodic: bool) {
        let mut own = Vec::new();
        let to = ReportTo {
            state: &self.state,
            me: self.me,
            coordinator: self.consensus.leader(),
            router: &self.router,
        };
        self.locals
            .send_reports(to, periodic, &mut self.effects, &mut own);
        for (g, r) in own {
            self.on_report(g, r);
        }
    }

    /// The coordinator's pass (see [`Coordinator::pass`]); what it decides is proposed.
    fn coordinate(&mut self, now_us: u64) {
        if self.state.config != self.spec.digest || self.unreadable.is_some() {
            self.agree_config(now_us);
            return;
        }
        let alive = self.alive_view();
        let mut heard = self.live.alive_view();
        // This node hears itself: it never fences itself (its own failed stop is the
        // watchdog's).
        heard[usize::from(self.me)] = true;
        let Some(c) = self.coordinator.as_mut() else {
            return;
        };
        let view = View {
            spec: &self.spec,
            state: &self.state,
            alive: &alive,
            heard: &heard,
            civil: self.civil,
            now_us,
            faults: self.faults,
        };
        let mut proposals = Vec::new();
        c.pass(&view, &mut proposals);
        for r in c.fencer.take_requests() {
            ask_fence(&mut self.effects, r);
        }
        self.consensus.propose_all(&proposals);
    }

    /// Copy the deadlines owned by the parts into the timer table; its earliest is next.
    fn next_timeout(&mut self) -> u64 {
        self.timers
            .set(Timer::Detector, self.live.next_timeout_us());
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        // When the lease reaches its stop point.
        let stop_point = self
            .lease_ok
            .then(|| self.lease.until_us().saturating_sub(budget_us));
        self.timers.set(Timer::LeaseStop, stop_point);
        self.timers
            .set(Timer::LocalGroups, self.locals.next_timeout_us());
        // Neither runs while the state disk fails (see `after`): no wake for them either.
        let failed = self.disk_failed.is_some();
        let wake = self.coordinator.as_ref().and_then(|c| c.wake_us);
        self.timers
            .set(Timer::CoordinatorWake, wake.filter(|_| !failed));
        self.timers
            .set(Timer::TwoNode, self.two_node_wake.filter(|_| !failed));
        self.timers.next_timeout().unwrap_or(u64::MAX)
    }
}

/// A request for a vote or a pre-vote: what only a candidate with our file may have.
fn is_vote_request(msg: &WireMessage) -> bool {
    use raft::eraftpb::MessageType as T;
    matches!(
        super::raft_wire::message_type_from_code(msg.msg_type),
        Ok(T::MsgRequestVote | T::MsgRequestPreVote)
    )
}

/// A raft message for a peer, as a [`Message`]: a vote request as a [`Message::Vote`] with
/// our config's `digest`.
fn raft_message(o: Outgoing, digest: u64) -> (NodeId, Message) {
    let msg = if is_vote_request(&o.msg) {
        Message::Vote { msg: o.msg, digest }
    } else {
        Message::Raft {
            msg: o.msg,
            stamp_us: o.stamp_us,
        }
    };
    (o.to, msg)
}

/// Asks the shell to run fence `r` and tells that it started.
fn ask_fence(effects: &mut Vec<Effect>, r: super::fencing::FenceRequest) {
    effects.push(Effect::Fence {
        target: r.target,
        attempt: r.attempt,
    });
    effects.push(Effect::Event(Event::FenceStarted {
        target: r.target,
        attempt: r.attempt,
    }));
}
