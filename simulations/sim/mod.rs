//! The deterministic cluster simulator (design.md §10.2).
//!
//! Many nodes run the real [`NodeCore`] in one thread, against a virtual clock per node (with
//! drift inside the configured bound), a simulated network (delay, jitter that reorders, loss,
//! duplication, one-way and two-way partitions per path), simulated agents (start can fail,
//! monitors can fail, processes can exit, stops can hang) and crashes with restarts that keep
//! the persisted consensus log. A *world truth* records which node really has each resource
//! active; invariants are checked after every step:
//!
//! - **S1 at most one active**: an exclusive resource is never active on two nodes at once.
//! - **S2 epochs only grow**: no resource starts under an epoch lower than one already used
//!   for its group.
//! - **L1 recovery**: once faults stop, every group with an eligible node is active again
//!   within [`RECOVERY_BOUND_US`].
//! - **L2 no flapping**: once faults stopped and the cluster settled, a group moves only for a
//!   failback or a schedule.
//! - **Log agreement**: every node that commits index *i* commits the same command there.
//! - **State agreement**: nodes of one file that applied the log up to index *i* hold the
//!   same state, whether they applied every entry or installed a snapshot (compaction and
//!   catch-up lose nothing).
//! - **Durability**: a node acknowledges an append or grants a vote only once its disk holds it.
//!
//! Everything comes from the seed; the same seed gives the same trace, byte for byte.
//!
//! The parts: this module keeps [`Sim`], its event queue and the loop that feeds each node
//! core and carries out its effects; [`scenario`] derives a run from a seed; `clock` (each
//! node's drifting clock), `network` (delays, loss, duplication, cuts: one
//! [`NetworkOptions`]), `agents` (the simulated resource agents), `world` (the world truth),
//! `faults` (what is injected and healed), `monitor` (each node's monitor process, and the
//! faults of one process: a core crash or pause, a monitor crash), `checker` (the invariants above) and `trace` (the
//! digest and the demo's narration).

mod agents;
mod checker;
mod clock;
mod disk;
mod faults;
mod fence;
mod monitor;
mod network;
pub mod scenario;
mod trace;
mod world;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::ondisk::fnv1a64_from;
use crate::policy::detector::LivenessEvent;
use crate::policy::entry::Keys;
use crate::policy::group::{Action, AgentOp, Outcome};
use crate::policy::message::{Effect, Event, Heartbeat, Input, Message, PathSet};
use crate::policy::node::{Faults, NodeCore};
use crate::policy::placement::{place, Target};
use crate::policy::raft_log::MemLog;
use crate::policy::rng::Rng;
use crate::policy::schedule::CivilTime;
use crate::policy::spec::{ClusterSpec, GroupId, NodeId, PathId, PathKind, ResourceId};
use crate::policy::state::{AdminCommand, Cause, Command};

pub use scenario::{DiskOptions, NetworkOptions, Scenario, Scripted, Shape};

use clock::Clock;
use disk::Disk;
use faults::HealKind;
use monitor::{Paused, SimMonitor};
use network::Network;
use world::{Truth, World};

/// How long after the faults stop every group must be active again (L1).
pub const RECOVERY_BOUND_US: u64 = 20_000_000;
/// After the faults stop, how long the cluster may settle before L2 watches for moves.
pub const SETTLE_US: u64 = 10_000_000;
/// How long a crashed or rebooted node stays down.
const REBOOT_US: (u64, u64) = (500_000, 4_000_000);

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which rule: "S1", "S2", "L1", "L2", "LOG", "STATE", "DURABLE", "PERSIST", "LIVE" or
    /// "CFG" (a node whose file differs coordinated or started a resource).
    pub rule: &'static str,
    /// What exactly.
    pub detail: String,
    /// Simulated time (µs).
    pub at_us: u64,
    /// Step number.
    pub step: u64,
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes (witness included).
    pub nodes: usize,
    /// Groups.
    pub groups: usize,
    /// Steps (events processed).
    pub steps: u64,
    /// Simulated seconds.
    pub sim_seconds: f64,
    /// A digest of the whole trace: equal seeds give equal digests.
    pub trace_digest: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The last trace lines (for a violation report).
    pub tail: Vec<String>,
    /// Time from the end of faults until every group was active again, if it recovered.
    pub recovery_us: Option<u64>,
    /// Commands committed.
    pub commits: u64,
    /// Failovers observed (activations caused by a failure).
    pub failovers: u64,
    /// Faults injected.
    pub faults: u64,
    /// Raft log writes that a crash lost or tore (the disk fault).
    pub torn_writes: u64,
    /// State disks that failed for a while (the node failed as a whole meanwhile).
    pub disk_failures: u64,
    /// Snapshots a node took of its own state (its log compacted).
    pub snapshots_taken: u64,
    /// Snapshots from a coordinator installed by a node that was too far behind.
    pub snapshots_installed: u64,
}

enum Ev {
    Wake(NodeId),
    /// A heartbeat datagram reaching the nodes in the bit set `to` (at most 128 nodes), each
    /// only if it has not rebooted since `boots` (the count of boots when it was sent).
    Hb {
        from: NodeId,
        path: u8,
        hb: Heartbeat,
        to: u128,
        boots: u64,
    },
    Msg {
        from: NodeId,
        to: NodeId,
        msg: Message,
        inc: u64,
    },
    AgentDone {
        node: NodeId,
        inc: u64,
        op: AgentOp,
        outcome: Outcome,
    },
    Restart(NodeId),
    /// The raft log batch a node's disk is writing is durable.
    Written {
        node: NodeId,
        inc: u64,
    },
    /// A fault: the node crashes in the middle of a raft log write.
    CrashDuringWrite {
        node: NodeId,
        inc: u64,
    },
    /// The core hears its state disk failed.
    DiskFailed {
        node: NodeId,
        inc: u64,
    },
    /// A write the failed disk refused is tried again.
    DiskRetry {
        node: NodeId,
        inc: u64,
    },
    /// The monitor's verdict may have changed (one pending per node, see `arm_monitor`);
    /// `power` is the machine's boot count when it was armed.
    MonitorCheck {
        node: NodeId,
        power: u64,
    },
    /// The monitor's new core (incarnation `inc` died) is up.
    CoreRestart {
        node: NodeId,
        inc: u64,
    },
    /// A paused core goes on.
    Resume {
        node: NodeId,
        inc: u64,
    },
    /// The core has started a new monitor.
    MonitorUp {
        node: NodeId,
        power: u64,
    },
    Fault,
    Scripted(Scripted),
    Heal(HealKind),
    EndOfFaults,
    Minute,
    Check,
    /// A fence request ends (see `fence`).
    Fence(fence::FenceDone),
    /// A fault: the node restarts with a `cluster.toml` that differs from the others' (`on`),
    /// or with theirs again.
    OwnConfig {
        node: NodeId,
        on: bool,
    },
}

struct SimNode {
    /// The core process, while it steps.
    core: Option<NodeCore>,
    /// The core process while it does not (see `monitor`).
    paused: Option<Paused>,
    /// The machine is off (crashed, not yet booted again).
    machine_down: bool,
    /// Machine boots so far (a core restart is not one).
    power: u64,
    /// The monitor process.
    mon: SimMonitor,
    /// What the current core last told its monitor must be down by when (it tells a new
    /// monitor the same).
    told: Option<u64>,
    /// The node's raft log disk: what its `Persist` batches wrote, and what is in flight.
    disk: Disk,
    clock: Clock,
    incarnation: u64,
    /// The value of `Sim::boots` when this node last booted.
    boot_seq: u64,
    /// When (real time) the pending wake-up fires, and the local deadline it is for.
    wake_at: u64,
    wake_local: u64,
    /// It runs with `Sim::other_spec`, a file that differs from every other node's.
    differs: bool,
    /// The applied index of its state when the checker last looked.
    checked_applied: u64,
}

/// The most nodes a simulation runs (a heartbeat's receivers are a 128-bit set).
pub const MAX_NODES: usize = 128;

/// One simulation.
pub struct Sim {
    sc: Scenario,
    spec: Arc<ClusterSpec>,
    /// The file a node with a differing config runs: the first group's order of preference
    /// reversed (same groups at the same places, so world truth reads the same).
    other_spec: Arc<ClusterSpec>,
    /// How `spec` names things in snapshots, and the digest of the state each applied index
    /// left, with the node that first reached it (the state agreement check).
    keys: Keys,
    state_at: HashMap<u64, (u64, NodeId)>,
    /// Network delays, losses and agent outcomes.
    rng: Rng,
    /// What fault comes when, from a stream of its own: a change in how the cores behave
    /// changes the network draws but not the fault schedule, so runs stay comparable.
    fault_rng: Rng,
    now_us: u64,
    step: u64,
    /// Boots so far (see `Ev::Hb`).
    boots: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: Vec<Option<Ev>>,
    free: Vec<usize>,
    nodes: Vec<SimNode>,
    net: Network,
    world: World,
    log: Vec<Option<Command>>,
    digest: u64,
    tail: Vec<String>,
    tail_at: usize,
    violation: Option<Violation>,
    faults_on: bool,
    breaker: Faults,
    recovered_at: Option<u64>,
    /// When the operator may repeat "unstandby" after the faults.
    next_unstandby_us: u64,
    /// Reused by `after_node` (effects of one step).
    scratch_effects: Vec<Effect>,
    commits: u64,
    failovers: u64,
    /// Raft log writes a crash lost or tore.
    torn_writes: u64,
    /// State disks that failed for a while.
    disk_failures: u64,
    /// When a failure count last expired (the checker's L2 lets groups move just after).
    failures_expired_us: Option<u64>,
    /// Durable snapshots: taken by a node of its own state, installed from a coordinator.
    snapshots_taken: u64,
    snapshots_installed: u64,
    fault_count: u64,
    verbose: bool,
    logger: slog::Logger,
    /// Lines printed as they happen (the demo), if set.
    pub echo: Option<fn(&str)>,
}

impl Sim {
    /// A simulation of `sc`; `breaker` turns on a test-only rule breaker in every node.
    pub fn new(sc: Scenario, breaker: Faults) -> Sim {
        let spec = sc.spec.clone();
        let n = spec.nodes.len();
        assert!(
            n <= MAX_NODES,
            "the simulator runs at most {MAX_NODES} nodes, not {n}"
        );
        let mut rng = Rng::new(sc.seed ^ 0xD1CE_5EED);
        let drift = i64::from(spec.timing.max_clock_drift_ppm) / 3;
        let voters: Vec<u64> = (1..=n as u64).collect();
        let nodes = (0..n)
            .map(|_| SimNode {
                core: None,
                paused: None,
                machine_down: true,
                power: 0,
                mon: SimMonitor::default(),
                told: None,
                disk: Disk::new(&voters),
                clock: Clock {
                    offset_us: rng.range(0, 1_000_000_000) as i64,
                    rate_ppm: rng.range(0, (2 * drift + 1) as u64) as i64 - drift,
                },
                incarnation: 0,
                boot_seq: 0,
                wake_at: u64::MAX,
                wake_local: u64::MAX,
                differs: false,
                checked_applied: 0,
            })
            .collect();
        let truth = spec
            .groups
            .iter()
            .map(|g| vec![Truth::default(); g.resources.len()])
            .collect();
        let mut other = (*spec).clone();
        if let Some(g) = other.groups.first_mut() {
            g.nodes.reverse();
        }
        other.digest ^= 0xD1FF_C0F1;
        let mut sim = Sim {
            other_spec: Arc::new(other),
            keys: Keys::new(&spec),
            state_at: HashMap::new(),
            spec: spec.clone(),
            rng,
            fault_rng: Rng::new(sc.seed ^ 0xFA17_5EED),
            now_us: 0,
            step: 0,
            boots: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            nodes,
            net: Network::new(sc.network, spec.paths.len(), n),
            world: World {
                truth,
                max_epoch: vec![0; spec.groups.len()],
                bad: Vec::new(),
                hang_stops: Vec::new(),
            },
            log: Vec::new(),
            digest: crate::ondisk::FNV_OFFSET,
            tail: Vec::new(),
            tail_at: 0,
            violation: None,
            faults_on: sc.faults,
            breaker,
            recovered_at: None,
            next_unstandby_us: 0,
            scratch_effects: Vec::new(),
            commits: 0,
            failovers: 0,
            torn_writes: 0,
            disk_failures: 0,
            failures_expired_us: None,
            snapshots_taken: 0,
            snapshots_installed: 0,
            fault_count: 0,
            verbose: false,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
            echo: None,
            sc,
        };
        for i in 0..n {
            sim.boot(i as NodeId);
        }
        if sim.sc.faults {
            let first = sim.sc.fault_every_us;
            sim.schedule(first, Ev::Fault);
            sim.schedule(sim.sc.faults_until_us, Ev::EndOfFaults);
        } else {
            sim.schedule(0, Ev::EndOfFaults);
        }
        for (at, f) in sim.sc.script.clone() {
            sim.schedule(at, Ev::Scripted(f));
        }
        sim.plan_own_config();
        sim.schedule(0, Ev::Minute);
        sim
    }

    /// Keep every trace line in the tail (for the demo and for debugging).
    pub fn set_verbose(&mut self, v: bool) {
        self.verbose = v;
    }

    fn schedule(&mut self, at_us: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.events[s] = Some(ev);
                s
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        // The sequence number breaks ties in insertion order: deterministic.
        self.queue
            .push(Reverse((at_us, (self.seq << 24) | slot as u64)));
    }

    /// The machine boots: a fresh monitor, and a core with nothing handed over.
    fn boot(&mut self, node: NodeId) {
        let i = usize::from(node);
        self.nodes[i].machine_down = false;
        self.nodes[i].power += 1;
        self.nodes[i].mon = SimMonitor::default();
        self.start_core(node, None);
    }

    /// A new core process on a running machine, with the lease its monitor hands over (its
    /// end on this node's local clock, and the index it was used at).
    fn start_core(&mut self, node: NodeId, lease: Option<(u64, u64)>) {
        let i = usize::from(node);
        self.nodes[i].incarnation += 1;
        let inc = self.nodes[i].incarnation;
        self.boots += 1;
        self.nodes[i].boot_seq = self.boots;
        let local = self.nodes[i].clock.local(self.now_us);
        let store = self.nodes[i].disk.log.clone();
        let seed = self
            .sc
            .seed
            .wrapping_mul(31)
            .wrapping_add(u64::from(node) * 1_000_003 + inc);
        let spec = if self.nodes[i].differs {
            self.other_spec.clone()
        } else {
            self.spec.clone()
        };
        match NodeCore::new(spec, node, store, inc, seed, local, &self.logger) {
            Ok(mut core) => {
                core.set_faults(self.breaker);
                core.set_snapshot_every(self.sc.disk.snapshot_every);
                if let Some((until, applied)) = lease.filter(|l| l.0 > local) {
                    core.inherit_lease(until, applied, local);
                }
                self.nodes[i].core = Some(core);
                self.nodes[i].told = None;
                self.tell_links(node);
                self.nodes[i].wake_at = u64::MAX;
                self.after_node(node);
            }
            Err(e) => self.violate(
                "BOOT",
                format!("node {} cannot start: {e}", self.name(node)),
            ),
        }
    }

    /// The node dies with everything on it; it boots again after `down_us` (drawn if `None`).
    fn crash(&mut self, node: NodeId, why: &str, down_us: Option<u64>) {
        let i = usize::from(node);
        self.nodes[i].core = None;
        self.nodes[i].paused = None;
        self.nodes[i].machine_down = true;
        self.nodes[i].mon = SimMonitor::default();
        self.nodes[i].told = None;
        self.crash_disk(node);
        // The machine dies: every process on it dies with it.
        for g in &mut self.world.truth {
            for t in g.iter_mut() {
                t.active.retain(|a| a.0 != node);
            }
        }
        self.world.bad.retain(|b| b.0 != node);
        self.world.hang_stops.retain(|&h| h != node);
        self.trace(format!("{} crashes ({why})", self.name(node)));
        let down = down_us.unwrap_or_else(|| self.rng.range(REBOOT_US.0, REBOOT_US.1));
        self.schedule(self.now_us + down, Ev::Restart(node));
    }

    /// Run to the end (or the first violation).
    pub fn run(mut self) -> Report {
        let end = self.sc.duration_us;
        let mut same_instant = 0u32;
        while let Some(Reverse((at, key))) = self.queue.pop() {
            if at > end || self.violation.is_some() {
                break;
            }
            if at == self.now_us {
                same_instant += 1;
                if same_instant == 100_000 {
                    self.violate(
                        "LIVE",
                        "100000 steps without simulated time advancing (a livelock)".to_string(),
                    );
                    break;
                }
            } else {
                same_instant = 0;
            }
            self.now_us = at;
            self.step += 1;
            let slot = (key & 0xFF_FFFF) as usize;
            let Some(ev) = self.events[slot].take() else {
                continue;
            };
            self.free.push(slot);
            self.handle(ev);
        }
        if self.violation.is_none() && self.sc.faults && self.recovered_at.is_none() {
            self.now_us = end;
            self.check_recovery(true);
        }
        let mut tail = self.tail.clone();
        if !self.verbose && tail.len() == 60 {
            tail.rotate_left(self.tail_at);
        }
        Report {
            seed: self.sc.seed,
            nodes: self.spec.nodes.len(),
            groups: self.spec.groups.len(),
            steps: self.step,
            sim_seconds: end as f64 / 1e6,
            trace_digest: self.digest,
            violation: self.violation.clone(),
            tail,
            recovery_us: self
                .recovered_at
                .map(|t| t.saturating_sub(self.sc.faults_until_us)),
            commits: self.commits,
            failovers: self.failovers,
            faults: self.fault_count,
            torn_writes: self.torn_writes,
            disk_failures: self.disk_failures,
            snapshots_taken: self.snapshots_taken,
            snapshots_installed: self.snapshots_installed,
        }
    }

    fn handle(&mut self, ev: Ev) {
        let Some(ev) = self.defer_if_paused(ev) else {
            return;
        };
        match ev {
            Ev::Wake(node) => {
                let i = usize::from(node);
                if self.nodes[i].wake_at != self.now_us {
                    return;
                }
                self.nodes[i].wake_at = u64::MAX;
                let local = self.nodes[i].clock.local(self.now_us);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    if local >= core.next_timeout_us() {
                        core.handle_timeout(local);
                    }
                }
                self.after_node(node);
            }
            Ev::Hb {
                from,
                path,
                hb,
                to,
                boots,
            } => {
                let mut rest = to;
                while rest != 0 {
                    let i = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    let t = i as NodeId;
                    if self.nodes[i].boot_seq > boots {
                        continue;
                    }
                    let local = self.nodes[i].clock.local(self.now_us);
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        // Nearly every delivery changes nothing the shell must act on.
                        if core.handle_heartbeat(from, path, hb, local) {
                            self.after_node(t);
                        }
                    }
                }
            }
            Ev::Written { node, inc } => self.written(node, inc),
            Ev::CrashDuringWrite { node, inc } => self.crash_during_write(node, inc),
            Ev::DiskRetry { node, inc } => self.retry_write(node, inc),
            Ev::DiskFailed { node, inc } => self.disk_failed(node, inc),
            Ev::Msg { from, to, msg, inc } => {
                let i = usize::from(to);
                if self.nodes[i].incarnation != inc {
                    return;
                }
                let local = self.nodes[i].clock.local(self.now_us);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.handle(Input::Message { from, msg }, local);
                    self.after_node(to);
                }
            }
            Ev::AgentDone {
                node,
                inc,
                op,
                outcome,
            } => self.agent_done(node, inc, op, outcome),
            Ev::Restart(node) => {
                if self.nodes[usize::from(node)].machine_down {
                    self.trace(format!("{} boots", self.name(node)));
                    self.boot(node);
                }
            }
            Ev::MonitorCheck { node, power } => self.monitor_check(node, power),
            Ev::CoreRestart { node, inc } => self.core_restart(node, inc),
            Ev::Resume { node, inc } => self.resume(node, inc),
            Ev::MonitorUp { node, power } => self.monitor_up(node, power),
            Ev::Fault => {
                if self.faults_on {
                    self.inject_fault();
                    let next = self.now_us
                        + self
                            .fault_rng
                            .range(self.sc.fault_every_us / 2, self.sc.fault_every_us * 3 / 2);
                    if next < self.sc.faults_until_us {
                        self.schedule(next, Ev::Fault);
                    }
                }
            }
            Ev::Scripted(f) => self.scripted(f),
            Ev::Heal(h) => self.heal(h),
            Ev::EndOfFaults => self.end_faults(),
            Ev::Fence(f) => self.fence_done(f),
            Ev::OwnConfig { node, on } => self.own_config(node, on),
            Ev::Minute => {
                // Civil time: the run starts on 2026-01-01 at an hour drawn from the seed.
                let start_min = (self.sc.seed % 24) * 60;
                let minute = start_min + self.now_us / 60_000_000;
                let stamp = 29_430_720 + minute; // 2026-01-01T00:00Z in minutes since 1970
                let t = civil_from_minutes(stamp);
                for i in 0..self.nodes.len() {
                    let local = self.nodes[i].clock.local(self.now_us);
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        core.set_civil_time(t, stamp);
                        core.handle_timeout(local.max(core.next_timeout_us().min(local)));
                        self.after_node(i as NodeId);
                    }
                }
                self.schedule(self.now_us + 60_000_000, Ev::Minute);
            }
            Ev::Check => {
                self.retry_unstandby();
                self.check_recovery(false);
                if self.recovered_at.is_none() {
                    self.schedule(self.now_us + 50_000, Ev::Check);
                }
            }
        }
    }

    /// Carry out a node's effects and re-arm its wake-up.
    fn after_node(&mut self, node: NodeId) {
        let i = usize::from(node);
        let now_us = self.now_us;
        let sn = &mut self.nodes[i];
        let Some(core) = sn.core.as_mut() else {
            return;
        };
        let next_local = core.next_timeout_us();
        let armed = sn.wake_at != u64::MAX && sn.wake_at >= now_us;
        if !core.has_effects() && armed && next_local == sn.wake_local {
            // Nothing to carry out and the wake-up is armed: most heartbeats end here.
            return;
        }
        // A scratch vector reused across calls: this runs after every step.
        let mut effects = std::mem::take(&mut self.scratch_effects);
        effects.extend(core.drain_effects());
        let mut crashed = false;
        for e in effects.drain(..) {
            if crashed {
                continue;
            }
            self.effect(node, e);
            crashed = self.nodes[i].core.is_none();
        }
        self.scratch_effects = effects;
        if crashed {
            return;
        }
        self.check_state(node);
        let real = self.nodes[i].clock.real(next_local).max(self.now_us);
        if real < self.nodes[i].wake_at || self.nodes[i].wake_at < self.now_us {
            self.nodes[i].wake_at = real;
            self.nodes[i].wake_local = next_local;
            self.schedule(real, Ev::Wake(node));
        }
    }

    fn effect(&mut self, node: NodeId, e: Effect) {
        match e {
            Effect::Heartbeat { path, hb } => self.send_heartbeat(node, path, hb),
            Effect::Send { to, paths, msg } => self.send_message(node, to, paths, msg),
            Effect::Persist { batch, then } => self.persist(node, *batch, then),
            Effect::Agent(op) => self.agent_op(node, op),
            Effect::Watchdog { deadline_us } => self.tell_monitor(node, deadline_us),
            Effect::Fence { target, attempt } => self.fence_request(node, target, attempt),
            Effect::Event(ev) => self.on_event(node, ev),
        }
    }
}

/// Civil time (UTC stands in for local time in the simulator) of `minutes` since 1970.
pub fn civil_from_minutes(minutes: u64) -> CivilTime {
    let days = (minutes / 1440) as i64;
    let mod_min = minutes % 1440;
    let (year, month, day) = crate::policy::schedule::civil_from_days(days);
    let weekday = ((days + 4).rem_euclid(7)) as u8; // 1970-01-01 was a Thursday
    CivilTime {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: (mod_min / 60) as u8,
        minute: (mod_min % 60) as u8,
        weekday,
    }
}

/// The command that replays a seed.
pub fn replay_command(seed: u64, shape: &Shape, breaker: Faults) -> String {
    let mut cmd = format!("cargo run --release --bin eterne-sim -- --seed {seed}");
    if let Some(n) = shape.nodes {
        let _ = write!(cmd, " --nodes {n}");
    }
    if let Some(g) = shape.groups {
        let _ = write!(cmd, " --groups {g}");
    }
    if let Some(s) = shape.seconds {
        let _ = write!(cmd, " --seconds {s}");
    }
    if let Some(w) = shape.witness {
        let _ = write!(cmd, " --witness {w}");
    }
    if shape.no_faults {
        cmd.push_str(" --no-faults");
    }
    if breaker.skip_lease_wait {
        cmd.push_str(" --break-skip-lease-wait");
    }
    if breaker.ack_before_durable {
        cmd.push_str(" --break-ack-before-durable");
    }
    if breaker.monitor_never_stops_hard {
        cmd.push_str(" --break-no-stop-hard");
    }
    if breaker.alone_unfenced {
        cmd.push_str(" --break-alone-unfenced");
    }
    if breaker.vote_any_config {
        cmd.push_str(" --break-vote-any-config");
    }
    cmd
}

/// Run one seed.
pub fn run_seed(seed: u64, shape: Shape, breaker: Faults) -> Report {
    Sim::new(Scenario::from_seed(seed, shape), breaker).run()
}
