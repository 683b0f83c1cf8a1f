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
//!
//! Everything comes from the seed; the same seed gives the same trace, byte for byte.

pub mod scenario;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::ondisk::fnv1a64_from;
use crate::policy::detector::LivenessEvent;
use crate::policy::group::{Action, AgentOp, Outcome};
use crate::policy::message::{Effect, Event, Heartbeat, Input, Message};
use crate::policy::node::{Faults, NodeCore};
use crate::policy::placement::{place, Target};
use crate::policy::raft_log::MemLog;
use crate::policy::rng::Rng;
use crate::policy::schedule::CivilTime;
use crate::policy::spec::{ClusterSpec, GroupId, NodeId, PathKind, ResourceId};
use crate::policy::state::{AdminCommand, Cause, Command};

pub use scenario::{Scenario, Scripted, Shape};

/// How long after the faults stop every group must be active again (L1).
pub const RECOVERY_BOUND_US: u64 = 20_000_000;
/// After the faults stop, how long the cluster may settle before L2 watches for moves.
pub const SETTLE_US: u64 = 10_000_000;
/// How long a crashed or rebooted node stays down.
const REBOOT_US: (u64, u64) = (500_000, 4_000_000);

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which rule: "S1", "S2", "L1", "L2" or "LOG".
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
    /// A node's raft log batch is durable.
    Persisted {
        node: NodeId,
        inc: u64,
        number: u64,
    },
    /// The watchdog's deadline may have passed (one pending per node, see `arm_watchdog`).
    WatchdogCheck {
        node: NodeId,
        inc: u64,
    },
    Fault,
    Scripted(Scripted),
    Heal(HealKind),
    EndOfFaults,
    Minute,
    Check,
}

enum HealKind {
    Cut {
        path: u8,
        from: NodeId,
        to: NodeId,
    },
    Loss {
        path: u8,
    },
    Bad {
        node: NodeId,
        group: GroupId,
        resource: ResourceId,
    },
}

struct Clock {
    offset_us: i64,
    rate_ppm: i64,
}

impl Clock {
    fn local(&self, real_us: u64) -> u64 {
        // i64 is ample: a run of 10^11 µs at 10^4 ppm stays far below 2^63.
        let r = real_us as i64;
        (r + r * self.rate_ppm / 1_000_000 + self.offset_us).max(0) as u64
    }

    fn real(&self, local_us: u64) -> u64 {
        // Deadlines beyond a century are "never"; clamp so the arithmetic stays in i64.
        let l = local_us.min(1 << 52) as i64 - self.offset_us;
        // Round up so that a timer never fires before its local deadline.
        let num = l * 1_000_000;
        let den = 1_000_000 + self.rate_ppm;
        ((num + den - 1) / den).max(0) as u64
    }
}

struct SimNode {
    core: Option<NodeCore>,
    /// The node's durable raft log: what its `Persist` batches wrote.
    store: MemLog,
    clock: Clock,
    incarnation: u64,
    /// The value of `Sim::boots` when this node last booted.
    boot_seq: u64,
    /// When (real time) the pending wake-up fires, and the local deadline it is for.
    wake_at: u64,
    wake_local: u64,
    /// The armed watchdog deadline (local clock), and when its one pending check fires.
    watchdog: Option<u64>,
    watchdog_check: Option<u64>,
}

/// Per (group, resource): which nodes have it active, with the epoch they started it under.
#[derive(Default, Clone)]
struct Truth {
    active: Vec<(NodeId, u64)>,
}

struct World {
    truth: Vec<Vec<Truth>>,
    max_epoch: Vec<u64>,
    /// Injected health failures: (node, group, resource) whose monitor fails.
    bad: Vec<(NodeId, GroupId, ResourceId)>,
    /// Agents whose stop hangs on this node (until reboot).
    hang_stops: Vec<NodeId>,
}

/// The most nodes a simulation runs (a heartbeat's receivers are a 128-bit set).
pub const MAX_NODES: usize = 128;

/// One simulation.
pub struct Sim {
    sc: Scenario,
    spec: Arc<ClusterSpec>,
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
    /// cut[path][from * n + to]: messages from → to on this path are dropped.
    cut: Vec<Vec<bool>>,
    path_loss_ppm: Vec<u32>,
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
                store: MemLog::new_with_conf_state(&voters),
                clock: Clock {
                    offset_us: rng.range(0, 1_000_000_000) as i64,
                    rate_ppm: rng.range(0, (2 * drift + 1) as u64) as i64 - drift,
                },
                incarnation: 0,
                boot_seq: 0,
                wake_at: u64::MAX,
                wake_local: u64::MAX,
                watchdog: None,
                watchdog_check: None,
            })
            .collect();
        let truth = spec
            .groups
            .iter()
            .map(|g| vec![Truth::default(); g.resources.len()])
            .collect();
        let mut sim = Sim {
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
            cut: vec![vec![false; n * n]; spec.paths.len()],
            path_loss_ppm: vec![0; spec.paths.len()],
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

    fn trace(&mut self, line: String) {
        self.digest = fnv1a64_from(self.digest, line.as_bytes());
        self.digest = fnv1a64_from(self.digest, &self.now_us.to_le_bytes());
        if let Some(echo) = self.echo {
            echo(&format!("{:>9.3}s  {line}", self.now_us as f64 / 1e6));
        }
        const TAIL: usize = 60;
        let line = format!("{:>12}us {line}", self.now_us);
        if self.tail.len() < TAIL || self.verbose {
            self.tail.push(line);
        } else {
            self.tail[self.tail_at] = line;
            self.tail_at = (self.tail_at + 1) % TAIL;
        }
    }

    /// A line for a watching person only (the demo): printed, but not part of the trace, so it
    /// changes neither the digest nor the speed of a normal run.
    fn narrate(&self, line: &str) {
        if let Some(echo) = self.echo {
            echo(&format!("{:>9.3}s    {line}", self.now_us as f64 / 1e6));
        }
    }

    fn violate(&mut self, rule: &'static str, detail: String) {
        if self.violation.is_none() {
            self.trace(format!("VIOLATION {rule}: {detail}"));
            self.violation = Some(Violation {
                rule,
                detail,
                at_us: self.now_us,
                step: self.step,
            });
        }
    }

    fn name(&self, n: NodeId) -> &str {
        &self.spec.nodes[usize::from(n)].name
    }

    fn boot(&mut self, node: NodeId) {
        let i = usize::from(node);
        self.nodes[i].incarnation += 1;
        let inc = self.nodes[i].incarnation;
        self.boots += 1;
        self.nodes[i].boot_seq = self.boots;
        let local = self.nodes[i].clock.local(self.now_us);
        let store = self.nodes[i].store.clone();
        let seed = self
            .sc
            .seed
            .wrapping_mul(31)
            .wrapping_add(u64::from(node) * 1_000_003 + inc);
        match NodeCore::new(
            self.spec.clone(),
            node,
            store,
            inc,
            seed,
            local,
            &self.logger,
        ) {
            Ok(mut core) => {
                core.set_faults(self.breaker);
                self.nodes[i].core = Some(core);
                let n = self.nodes.len() as NodeId;
                for p in 0..self.spec.paths.len() {
                    for peer in (0..n).filter(|&peer| peer != node) {
                        self.tell_link(node, peer, p);
                    }
                }
                self.nodes[i].watchdog = None;
                self.nodes[i].watchdog_check = None;
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
        self.nodes[i].watchdog = None;
        self.nodes[i].watchdog_check = None;
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
        }
    }

    fn handle(&mut self, ev: Ev) {
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
            Ev::Persisted { node, inc, number } => {
                let i = usize::from(node);
                if self.nodes[i].incarnation != inc {
                    return;
                }
                let local = self.nodes[i].clock.local(self.now_us);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.handle(Input::Persisted { number }, local);
                    self.after_node(node);
                }
            }
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
                if self.nodes[usize::from(node)].core.is_none() {
                    self.trace(format!("{} boots", self.name(node)));
                    self.boot(node);
                }
            }
            Ev::WatchdogCheck { node, inc } => {
                let i = usize::from(node);
                if self.nodes[i].incarnation == inc
                    && self.nodes[i].core.is_some()
                    && self.nodes[i].watchdog_check == Some(self.now_us)
                {
                    self.nodes[i].watchdog_check = None;
                    if let Some(d) = self.nodes[i].watchdog {
                        if self.nodes[i].clock.real(d) <= self.now_us {
                            self.crash(node, "watchdog reboot", None);
                        } else {
                            // Re-armed later since: check again then.
                            self.arm_watchdog(node);
                        }
                    }
                }
            }
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
        let real = self.nodes[i].clock.real(next_local).max(self.now_us);
        if real < self.nodes[i].wake_at || self.nodes[i].wake_at < self.now_us {
            self.nodes[i].wake_at = real;
            self.nodes[i].wake_local = next_local;
            self.schedule(real, Ev::Wake(node));
        }
    }

    fn delay(&mut self, kind: PathKind) -> u64 {
        match kind {
            PathKind::Network => self.sc.delay_us.0 + self.rng.range(0, self.sc.delay_us.1),
            // The disk path is read every few ms by the daemon.
            PathKind::Disk => 5_000 + self.rng.range(0, 20_000),
        }
    }

    fn link_up(&self, path: usize, from: NodeId, to: NodeId) -> bool {
        let n = self.nodes.len();
        !self.cut[path][usize::from(from) * n + usize::from(to)]
    }

    fn effect(&mut self, node: NodeId, e: Effect) {
        match e {
            Effect::Heartbeat { path, hb } => {
                let p = usize::from(path);
                let kind = self.spec.paths[p].kind;
                let loss = self.loss_on(p);
                let n = self.nodes.len();
                let row = usize::from(node) * n;
                // One event for every peer the datagram reaches: a bit set, no allocation.
                let mut to = 0u128;
                for peer in 0..n {
                    if peer == usize::from(node)
                        || self.cut[p][row + peer]
                        || (loss > 0 && self.rng.chance(loss))
                    {
                        continue;
                    }
                    to |= 1 << peer;
                }
                if to != 0 {
                    let at = self.now_us + self.delay(kind);
                    let boots = self.boots;
                    self.schedule(
                        at,
                        Ev::Hb {
                            from: node,
                            path,
                            hb,
                            to,
                            boots,
                        },
                    );
                }
            }
            Effect::Send { to, paths, msg } => {
                if usize::from(to) >= self.nodes.len() {
                    return;
                }
                // The node core chose the paths (`policy::route`): leases on every path that
                // is up, everything else on one network path. Of a lease message's copies only
                // the first to arrive is delivered: the later ones change nothing at the
                // receiver (one grant per request, an equal grant extends nothing), and
                // dropping them saves a third of a large cluster's events. Duplication below
                // still sends some second copies, so the receivers' handling of copies stays
                // exercised.
                let inc = self.nodes[usize::from(to)].incarnation;
                let mut first: Option<u64> = None;
                for p in paths.iter() {
                    let p = usize::from(p);
                    if !self.link_up(p, node, to) {
                        continue;
                    }
                    let kind = self.spec.paths[p].kind;
                    if !self.rng.chance(self.loss_on(p)) {
                        let at = self.now_us + self.delay(kind);
                        first = Some(first.map_or(at, |f| f.min(at)));
                    }
                }
                if let Some(at) = first {
                    if self.rng.chance(self.sc.dup_ppm) {
                        let again = at + self.delay(PathKind::Network);
                        self.schedule(
                            again,
                            Ev::Msg {
                                from: node,
                                to,
                                msg: msg.clone(),
                                inc,
                            },
                        );
                    }
                    self.schedule(
                        at,
                        Ev::Msg {
                            from: node,
                            to,
                            msg,
                            inc,
                        },
                    );
                }
            }
            Effect::Persist { batch, then } => {
                let i = usize::from(node);
                if let Err(e) = batch.write_to(&mut self.nodes[i].store) {
                    self.violate(
                        "PERSIST",
                        format!("node {} cannot write its log: {e}", self.name(node)),
                    );
                    return;
                }
                for (to, paths, msg) in then {
                    self.effect(node, Effect::Send { to, paths, msg });
                }
                let inc = self.nodes[i].incarnation;
                let now = self.now_us;
                self.schedule(
                    now,
                    Ev::Persisted {
                        node,
                        inc,
                        number: batch.number,
                    },
                );
            }
            Effect::Agent(op) => self.agent_op(node, op),
            Effect::Watchdog { deadline_us } => {
                self.nodes[usize::from(node)].watchdog = deadline_us;
                self.arm_watchdog(node);
            }
            Effect::Event(ev) => self.on_event(node, ev),
        }
    }

    /// Make sure a check is pending by the node's watchdog deadline. The deadline moves later
    /// on every lease renewal; rather than one check per move, a single pending check looks
    /// again when it fires and re-arms itself if the deadline has moved.
    fn arm_watchdog(&mut self, node: NodeId) {
        let i = usize::from(node);
        let Some(d) = self.nodes[i].watchdog else {
            return;
        };
        let at = self.nodes[i].clock.real(d).max(self.now_us);
        if self.nodes[i].watchdog_check.is_none_or(|p| at < p) {
            self.nodes[i].watchdog_check = Some(at);
            let inc = self.nodes[i].incarnation;
            self.schedule(at, Ev::WatchdogCheck { node, inc });
        }
    }

    fn loss_on(&self, p: usize) -> u32 {
        if self.spec.paths[p].kind == PathKind::Disk {
            return 0;
        }
        self.sc.loss_ppm.max(self.path_loss_ppm[p])
    }

    fn on_event(&mut self, node: NodeId, ev: Event) {
        match ev {
            Event::Committed { index, cmd } => {
                let i = index as usize;
                if self.log.len() <= i {
                    self.log.resize(i + 1, None);
                }
                match &self.log[i] {
                    Some(prev) if *prev != cmd => {
                        let detail = format!(
                            "index {index}: {} applied {cmd:?}, another node {prev:?}",
                            self.name(node)
                        );
                        self.violate("LOG", detail);
                    }
                    Some(_) => {}
                    None => {
                        self.commits += 1;
                        self.check_move(&cmd);
                        let line = self.describe(index, &cmd);
                        self.trace(line);
                        self.log[i] = Some(cmd);
                    }
                }
            }
            Event::BecameLeader { term } => {
                self.trace(format!("{} is coordinator (term {term})", self.name(node)))
            }
            Event::Liveness(LivenessEvent::PeerSuspected { peer }) => {
                let line = format!("{} suspects {}", self.name(node), self.name(peer));
                self.trace(line)
            }
            Event::LeaseLost => self.trace(format!("{} lost its lease", self.name(node))),
            Event::SelfFence => {
                self.trace(format!("{} fences itself (a stop failed)", self.name(node)))
            }
            Event::Escalated { group } => {
                let line = format!(
                    "{}: {} cannot run here, asks for failover",
                    self.name(node),
                    self.spec.groups[usize::from(group)].name
                );
                self.trace(line)
            }
            Event::LocalRestart {
                group,
                resource,
                count,
            } => {
                let line = format!(
                    "{}: local restart of {} ({} in window)",
                    self.name(node),
                    self.spec.groups[usize::from(group)].resources[usize::from(resource)].name,
                    count
                );
                self.trace(line)
            }
            _ => {}
        }
    }

    fn describe(&self, index: u64, cmd: &Command) -> String {
        let g = |g: &GroupId| self.spec.groups[usize::from(*g)].name.clone();
        match cmd {
            Command::Activate { group, node, cause } => {
                format!(
                    "#{index} activate {} on {} (epoch {index}, {cause:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Stop {
                group,
                node,
                epoch,
                cause,
            } => {
                format!(
                    "#{index} stop {} on {} (epoch {epoch}, {cause:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Released {
                group,
                node,
                epoch,
                how,
            } => {
                format!(
                    "#{index} released {} from {} (epoch {epoch}, {how:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Failed { group, node, epoch } => {
                format!(
                    "#{index} {} failed on {} (epoch {epoch})",
                    g(group),
                    self.name(*node)
                )
            }
            other => format!("#{index} {other:?}"),
        }
    }

    /// L2: after the faults stopped and the cluster settled, a group moves only for a failback
    /// or a schedule.
    fn check_move(&mut self, cmd: &Command) {
        if let Command::Activate {
            cause: Cause::Failure,
            ..
        } = cmd
        {
            self.failovers += 1;
        }
        let settled =
            !self.faults_on && self.now_us >= self.sc.faults_until_us + SETTLE_US && self.sc.faults;
        if !settled {
            return;
        }
        if let Command::Stop {
            group, node, cause, ..
        } = cmd
        {
            if !matches!(cause, Cause::Failback | Cause::Schedule) {
                let detail = format!(
                    "{} stopped on {} for {cause:?} after the faults stopped",
                    self.spec.groups[usize::from(*group)].name,
                    self.name(*node)
                );
                self.violate("L2", detail);
            }
        }
    }

    fn agent_op(&mut self, node: NodeId, op: AgentOp) {
        let inc = self.nodes[usize::from(node)].incarnation;
        let g = usize::from(op.group);
        let r = usize::from(op.resource);
        let exclusive = self.spec.groups[g].is_exclusive();
        if matches!(op.action, Action::Start | Action::Stop) {
            let verb = if op.action == Action::Start {
                "starts"
            } else {
                "stops"
            };
            let line = format!(
                "{} {verb} {} (epoch {})",
                self.name(node),
                self.spec.groups[g].resources[r].name,
                op.epoch
            );
            self.narrate(&line);
        }
        let (outcome, took_us) = match op.action {
            Action::Probe => {
                let here = self.world.truth[g][r].active.iter().any(|a| a.0 == node);
                (
                    if here {
                        Outcome::Ok
                    } else {
                        Outcome::NotRunning
                    },
                    1_000,
                )
            }
            Action::Start => {
                // S2: never start under an epoch lower than one already used for the group.
                // (Clone copies each carry their own epoch and may run side by side.)
                if exclusive && op.epoch < self.world.max_epoch[g] {
                    let detail = format!(
                        "{} starts {} under epoch {} after epoch {} was used",
                        self.name(node),
                        self.spec.groups[g].resources[r].name,
                        op.epoch,
                        self.world.max_epoch[g]
                    );
                    self.violate("S2", detail);
                }
                self.world.max_epoch[g] = self.world.max_epoch[g].max(op.epoch);
                // World truth: active from the moment the start begins.
                let t = &mut self.world.truth[g][r];
                if !t.active.iter().any(|a| a.0 == node) {
                    t.active.push((node, op.epoch));
                }
                if exclusive && t.active.len() > 1 {
                    let holders: Vec<String> = t
                        .active
                        .iter()
                        .map(|(n, e)| {
                            format!("{} (epoch {e})", self.spec.nodes[usize::from(*n)].name)
                        })
                        .collect();
                    let detail = format!(
                        "{} active on {}",
                        self.spec.groups[g].resources[r].name,
                        holders.join(" and ")
                    );
                    self.violate("S1", detail);
                }
                let fails = self.faults_on && self.rng.chance(20_000);
                (
                    if fails { Outcome::Failed } else { Outcome::Ok },
                    self.rng.range(5_000, 60_000),
                )
            }
            Action::Stop => {
                if self.world.hang_stops.contains(&node) {
                    return; // never answers; the node's stop timeout and watchdog take over
                }
                (Outcome::Ok, self.rng.range(1_000, 20_000))
            }
            Action::MonitorQuick | Action::MonitorDeep => {
                let here = self.world.truth[g][r].active.iter().any(|a| a.0 == node);
                let bad = self.world.bad.contains(&(node, op.group, op.resource));
                let outcome = if bad {
                    Outcome::Failed
                } else if here {
                    Outcome::Ok
                } else {
                    Outcome::NotRunning
                };
                (outcome, self.rng.range(500, 5_000))
            }
        };
        self.schedule(
            self.now_us + took_us,
            Ev::AgentDone {
                node,
                inc,
                op,
                outcome,
            },
        );
    }

    fn agent_done(&mut self, node: NodeId, inc: u64, op: AgentOp, outcome: Outcome) {
        let i = usize::from(node);
        if self.nodes[i].incarnation != inc || self.nodes[i].core.is_none() {
            return;
        }
        if op.action == Action::Stop && outcome == Outcome::Ok {
            let t = &mut self.world.truth[usize::from(op.group)][usize::from(op.resource)];
            t.active.retain(|a| a.0 != node);
            self.world
                .bad
                .retain(|b| *b != (node, op.group, op.resource));
        }
        let local = self.nodes[i].clock.local(self.now_us);
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.handle(
                Input::AgentResult {
                    group: op.group,
                    resource: op.resource,
                    op: op.op,
                    outcome,
                },
                local,
            );
        }
        self.after_node(node);
    }

    fn inject_fault(&mut self) {
        let n = self.nodes.len();
        let paths = self.spec.paths.len();
        let span = self.fault_rng.range(500_000, 5_000_000);
        let until = (self.now_us + span).min(self.sc.faults_until_us);
        self.fault_count += 1;
        let pick = self.fault_rng.range(0, 100);
        let node = self.fault_rng.range(0, n as u64) as NodeId;
        match pick {
            0..=19 => {
                if self.nodes[usize::from(node)].core.is_some() {
                    self.crash(node, "fault: node crash", None);
                }
            }
            20..=34 => self.isolate(node, until),
            35..=44 => {
                // One-way: the node hears nothing (or is not heard).
                let inbound = self.fault_rng.chance(500_000);
                self.trace(format!(
                    "fault: {} one-way cut ({})",
                    self.name(node),
                    if inbound {
                        "hears nothing"
                    } else {
                        "is not heard"
                    }
                ));
                for p in 0..paths {
                    if self.spec.paths[p].kind != PathKind::Network {
                        continue;
                    }
                    for peer in 0..n as NodeId {
                        if peer != node {
                            if inbound {
                                self.set_cut(p, peer, node, true, until);
                            } else {
                                self.set_cut(p, node, peer, true, until);
                            }
                        }
                    }
                }
            }
            45..=54 => {
                // Split the cluster in two on every network path.
                let mut side = vec![false; n];
                for s in side.iter_mut() {
                    *s = self.fault_rng.chance(500_000);
                }
                self.trace(format!(
                    "fault: split {:?}",
                    side.iter().map(|&s| u8::from(s)).collect::<Vec<_>>()
                ));
                for p in 0..paths {
                    if self.spec.paths[p].kind != PathKind::Network {
                        continue;
                    }
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.set_cut(p, a as NodeId, b as NodeId, true, until);
                            }
                        }
                    }
                }
            }
            55..=62 => {
                // One network path fails everywhere: only an event.
                let p = self.fault_rng.range(0, paths as u64) as usize;
                if self.spec.paths[p].kind == PathKind::Network {
                    self.trace(format!(
                        "fault: path {} down everywhere",
                        self.spec.paths[p].name
                    ));
                    for a in 0..n as NodeId {
                        for b in 0..n as NodeId {
                            if a != b {
                                self.set_cut(p, a, b, true, until);
                            }
                        }
                    }
                }
            }
            63..=70 => {
                let p = self.fault_rng.range(0, paths as u64) as usize;
                let loss = self.fault_rng.range(50_000, 400_000) as u32;
                self.trace(format!(
                    "fault: {}% loss on {}",
                    loss / 10_000,
                    self.spec.paths[p].name
                ));
                self.path_loss_ppm[p] = loss;
                self.schedule(until, Ev::Heal(HealKind::Loss { path: p as u8 }));
            }
            71..=82 => {
                // An application crash: the process exits, seen at once.
                if let Some((g, r, owner)) = self.random_active() {
                    self.exit_process(g, r, owner);
                }
            }
            83..=90 => {
                // A health failure: monitors fail until the resource is stopped.
                if let Some((g, r, owner)) = self.random_active() {
                    let name = self.spec.groups[usize::from(g)].resources[usize::from(r)]
                        .name
                        .clone();
                    self.trace(format!("fault: {name} unhealthy on {}", self.name(owner)));
                    self.world.bad.push((owner, g, r));
                    self.schedule(
                        until,
                        Ev::Heal(HealKind::Bad {
                            node: owner,
                            group: g,
                            resource: r,
                        }),
                    );
                }
            }
            91..=94 => {
                // Stops hang on this node (until it reboots).
                if !self.world.hang_stops.contains(&node) {
                    self.trace(format!("fault: stops hang on {}", self.name(node)));
                    self.world.hang_stops.push(node);
                }
            }
            _ => self.admin_fault(),
        }
    }

    /// Cut `node` off every network path in both directions until `until` (a disk path
    /// survives: partitioned, not dead).
    fn isolate(&mut self, node: NodeId, until: u64) {
        let n = self.nodes.len();
        self.trace(format!(
            "fault: {} partitioned from every network",
            self.name(node)
        ));
        for p in 0..self.spec.paths.len() {
            if self.spec.paths[p].kind != PathKind::Network {
                continue;
            }
            for peer in 0..n as NodeId {
                if peer != node {
                    self.set_cut(p, node, peer, true, until);
                    self.set_cut(p, peer, node, true, until);
                }
            }
        }
    }

    /// A resource's process exits on `owner`; its node sees the exit at once.
    fn exit_process(&mut self, g: GroupId, r: ResourceId, owner: NodeId) {
        let t = &mut self.world.truth[usize::from(g)][usize::from(r)];
        t.active.retain(|a| a.0 != owner);
        let name = self.spec.groups[usize::from(g)].resources[usize::from(r)]
            .name
            .clone();
        self.trace(format!("fault: {name} exits on {}", self.name(owner)));
        let local = self.nodes[usize::from(owner)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(owner)].core.as_mut() {
            core.handle(
                Input::Exited {
                    group: g,
                    resource: r,
                },
                local,
            );
            self.after_node(owner);
        }
    }

    fn scripted(&mut self, f: Scripted) {
        self.fault_count += 1;
        match f {
            Scripted::Crash { node, down_us } => {
                if self.nodes[usize::from(node)].core.is_some() {
                    self.crash(node, "fault: node crash", Some(down_us));
                }
            }
            Scripted::Exit { group, resource } => {
                let owner = self.world.truth[usize::from(group)][usize::from(resource)]
                    .active
                    .first()
                    .map(|a| a.0);
                if let Some(owner) = owner {
                    self.exit_process(group, resource, owner);
                }
            }
            Scripted::Isolate { node, for_us } => self.isolate(node, self.now_us + for_us),
        }
    }

    fn admin_fault(&mut self) {
        let n = self.spec.nodes.len();
        let groups = self.spec.groups.len();
        let g = self.fault_rng.range(0, groups as u64) as GroupId;
        let node = self.fault_rng.range(0, n as u64) as NodeId;
        let cmd = match self.fault_rng.range(0, 5) {
            0 => AdminCommand::Move { group: g, to: None },
            1 => AdminCommand::Move {
                group: g,
                to: Some(node),
            },
            2 => AdminCommand::Standby { node, on: true },
            3 => AdminCommand::Standby { node, on: false },
            _ => AdminCommand::FailbackNow { group: g },
        };
        self.trace(format!("admin: {cmd:?}"));
        let via = self.fault_rng.range(0, n as u64) as NodeId;
        let local = self.nodes[usize::from(via)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(via)].core.as_mut() {
            core.handle(Input::Admin(cmd), local);
            self.after_node(via);
        }
    }

    fn random_active(&mut self) -> Option<(GroupId, ResourceId, NodeId)> {
        let mut all = Vec::new();
        for (g, rs) in self.world.truth.iter().enumerate() {
            for (r, t) in rs.iter().enumerate() {
                for a in &t.active {
                    all.push((g as GroupId, r as ResourceId, a.0));
                }
            }
        }
        if all.is_empty() {
            return None;
        }
        let k = self.fault_rng.range(0, all.len() as u64) as usize;
        Some(all[k])
    }

    fn set_cut(&mut self, path: usize, from: NodeId, to: NodeId, on: bool, until: u64) {
        self.write_cut(path, from, to, on);
        if on {
            self.schedule(
                until,
                Ev::Heal(HealKind::Cut {
                    path: path as u8,
                    from,
                    to,
                }),
            );
        }
    }

    /// Cut (`on`) or mend the link from `from` to `to` on `path`, and tell `from`'s node core,
    /// as a QUIC connection going down or coming up would.
    fn write_cut(&mut self, path: usize, from: NodeId, to: NodeId, on: bool) {
        let n = self.nodes.len();
        self.cut[path][usize::from(from) * n + usize::from(to)] = on;
        self.tell_link(from, to, path);
    }

    /// Tell `from`'s node core whether its link to `to` on `path` is up.
    fn tell_link(&mut self, from: NodeId, to: NodeId, path: usize) {
        let up = self.link_up(path, from, to);
        let local = self.nodes[usize::from(from)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(from)].core.as_mut() {
            let input = Input::Connection {
                peer: to,
                path: path as crate::policy::spec::PathId,
                up,
            };
            core.handle(input, local);
        }
    }

    fn heal(&mut self, h: HealKind) {
        match h {
            HealKind::Cut { path, from, to } => self.write_cut(usize::from(path), from, to, false),
            HealKind::Loss { path } => self.path_loss_ppm[usize::from(path)] = 0,
            HealKind::Bad {
                node,
                group,
                resource,
            } => self.world.bad.retain(|b| *b != (node, group, resource)),
        }
    }

    fn end_faults(&mut self) {
        self.faults_on = false;
        if !self.sc.faults {
            return;
        }
        self.trace("faults stop; everything heals".into());
        let n = self.nodes.len() as NodeId;
        for p in 0..self.spec.paths.len() {
            for from in 0..n {
                for to in (0..n).filter(|&to| to != from) {
                    self.write_cut(p, from, to, false);
                }
            }
        }
        self.path_loss_ppm.iter_mut().for_each(|l| *l = 0);
        self.sc.loss_ppm = 0;
        self.sc.dup_ppm = 0;
        self.world.bad.clear();
        self.world.hang_stops.clear();
        // Take every node out of standby so that every group has somewhere to go.
        let n = self.spec.nodes.len();
        for node in 0..n as NodeId {
            let via = node;
            if self.nodes[usize::from(via)].core.is_some() {
                let local = self.nodes[usize::from(via)].clock.local(self.now_us);
                if let Some(core) = self.nodes[usize::from(via)].core.as_mut() {
                    core.handle(
                        Input::Admin(AdminCommand::Standby { node, on: false }),
                        local,
                    );
                }
                self.after_node(via);
            }
        }
        self.schedule(self.now_us + 50_000, Ev::Check);
    }

    /// After the faults, an operator takes every node out of standby and repeats the command
    /// until the coordinator has committed it (an admin command sent while no coordinator was
    /// known is refused, not queued).
    fn retry_unstandby(&mut self) {
        if self.now_us < self.next_unstandby_us {
            return;
        }
        self.next_unstandby_us = self.now_us + 500_000;
        let Some(leader) = self
            .nodes
            .iter()
            .position(|n| n.core.as_ref().is_some_and(|c| c.is_leader()))
        else {
            return;
        };
        let standby: Vec<NodeId> = match self.nodes[leader].core.as_ref() {
            Some(c) => (0..self.spec.nodes.len() as NodeId)
                .filter(|&n| c.state().standby[usize::from(n)])
                .collect(),
            None => return,
        };
        let local = self.nodes[leader].clock.local(self.now_us);
        for node in standby {
            if let Some(core) = self.nodes[leader].core.as_mut() {
                core.handle(
                    Input::Admin(AdminCommand::Standby { node, on: false }),
                    local,
                );
            }
        }
        self.after_node(leader as NodeId);
    }

    /// L1: every group that has an eligible node runs (world truth: every resource active on
    /// the node the committed state names).
    fn check_recovery(&mut self, final_check: bool) {
        if self.recovered_at.is_some() || !self.sc.faults {
            return;
        }
        let since = self.now_us.saturating_sub(self.sc.faults_until_us);
        // Use the state of any live node that holds a lease and has caught up with the leader.
        let leader = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .find(|c| c.is_leader());
        let Some(leader) = leader else {
            if since > RECOVERY_BOUND_US || final_check {
                self.violate(
                    "L1",
                    format!(
                        "no coordinator {}s after the faults stopped",
                        since / 1_000_000
                    ),
                );
            }
            return;
        };
        let state = leader.state().clone();
        // Which groups have somewhere to run: a node in their list that is up, not in standby,
        // without a failure there, with room for the group and no anti-affinity partner. That
        // is the placement rule itself; its unit tests check it against hand-written cases.
        let up: Vec<bool> = self.nodes.iter().map(|n| n.core.is_some()).collect();
        let targets = place(&self.spec, &state, &up, None);
        let mut missing = None;
        for (g, gs) in self.spec.groups.iter().enumerate() {
            let eligible = match &targets[g] {
                Target::Exclusive(t) => t.is_some(),
                Target::Clone(nodes) => !nodes.is_empty(),
            };
            if !eligible || state.maintenance {
                continue;
            }
            let owners: Vec<NodeId> = state.groups[g].instances.iter().map(|i| i.node).collect();
            let ok = if gs.is_exclusive() {
                owners.len() == 1
                    && state.groups[g].instances[0].phase == crate::policy::state::Phase::Active
                    && self.world.truth[g]
                        .iter()
                        .all(|t| t.active.len() == 1 && t.active[0].0 == owners[0])
            } else {
                let running: Vec<NodeId> = state.groups[g]
                    .instances
                    .iter()
                    .filter(|i| i.phase == crate::policy::state::Phase::Active)
                    .map(|i| i.node)
                    .collect();
                !running.is_empty()
                    && running.iter().all(|o| {
                        self.world.truth[g]
                            .iter()
                            .all(|t| t.active.iter().any(|a| a.0 == *o))
                    })
            };
            if !ok {
                missing = Some(g);
                break;
            }
        }
        match missing {
            None => {
                self.recovered_at = Some(self.now_us);
                self.trace(format!(
                    "every group is active again, {} ms after the faults stopped",
                    since / 1000
                ));
            }
            Some(g) if since > RECOVERY_BOUND_US || final_check => {
                let detail = format!(
                    "{} not active {} s after the faults stopped (bound {} s)",
                    self.spec.groups[g].name,
                    since / 1_000_000,
                    RECOVERY_BOUND_US / 1_000_000
                );
                self.violate("L1", detail);
            }
            Some(_) => {}
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
    cmd
}

/// Run one seed.
pub fn run_seed(seed: u64, shape: Shape, breaker: Faults) -> Report {
    Sim::new(Scenario::from_seed(seed, shape), breaker).run()
}
