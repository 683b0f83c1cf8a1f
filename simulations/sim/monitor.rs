//! The two processes of a node (docs/runtime.md "The two processes"): its core, which the
//! simulator runs as a [`NodeCore`], and its monitor, modelled here with the monitor's own
//! rules ([`crate::policy::monitor`]), so the simulator and `src/monitor/` cannot drift apart.
//!
//! The faults that concern one process only, not the machine:
//!
//! - **a core crash**: the core dies, what it runs keeps running (world truth unchanged); the
//!   monitor starts a new core, handing it the lease the dead one held, after a restart time
//!   that is short as a rule and sometimes long (a slow disk, a loaded machine);
//! - **a core pause**: the core stops stepping (SIGSTOP, a frozen VM) for 50 ms to 3 s; what
//!   reaches it waits (messages, agent results, its disk's acknowledgements) and heartbeats are
//!   lost; a core silent for [`WEDGED_US`] is killed as wedged;
//! - **a monitor crash**: for a few ms nobody watches; the core starts a new monitor and tells
//!   it again what must be down by when.
//!
//! The monitor acts on [`verdict`]: when exclusive resources must be down and the core cannot
//! do it, it kills the core and stops every exclusive resource of the node hard, which the
//! model does at once (the real hard stop is bounded by the time left before the lease ends).
//! A hard stop on a node whose stops hang fails, and the hardware watchdog resets the machine.
//! The test-only [`Faults::monitor_never_stops_hard`] switches the hard stop off, so that a
//! test can show the checker catches what it prevents.
//!
//! Not modelled: both processes dying at once (only a hardware watchdog helps then: nobody is
//! left to stop anything), so the faults above never overlap on one node.

use super::*;
use crate::policy::monitor::{
    alive_every_us, next_check, next_core, verdict, CoreSeen, Deadline, Rules, Verdict,
};
/// A core silent this long is killed as wedged.
const WEDGED_US: u64 = 2_000_000;
/// How long a new core takes to come up: usually, and when the machine is slow.
const CORE_START_US: (u64, u64) = (10_000, 100_000);
const SLOW_CORE_START_US: (u64, u64) = (300_000, 3_000_000);
/// How long a core pause lasts.
const PAUSE_US: (u64, u64) = (50_000, 3_000_000);
/// How long a crashed monitor is away before the core has started another.
const MONITOR_DOWN_US: (u64, u64) = (1_000, 20_000);

/// One node's monitor process, as far as the model needs it.
#[derive(Default)]
pub(super) struct SimMonitor {
    /// What the core told it must be down by when (local µs).
    armed: Option<Deadline>,
    /// The lease it hands the next core: its end (local µs) and the index it was used at.
    lease: Option<(u64, u64)>,
    /// When its one pending check fires (real µs).
    check_at: Option<u64>,
    /// It is being restarted until then (real µs): nobody watches.
    down_until: Option<u64>,
}

/// A core that does not step (SIGSTOP): the core itself, since when (local µs), and what
/// reached it meanwhile, delivered when it goes on.
pub(super) struct Paused {
    core: NodeCore,
    since_local: u64,
    pub(super) deferred: Vec<Ev>,
}

impl Sim {
    /// The monitor's rules on the simulator's local µs (`src/monitor/` uses them in ns): the
    /// core says it is alive as often as the daemon's does for this stop budget.
    fn monitor_rules(&self) -> Rules {
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        Rules::new(alive_every_us(budget_us), WEDGED_US)
    }

    /// Whether the machine runs (whatever its core does).
    pub(super) fn machine_up(&self, node: NodeId) -> bool {
        !self.nodes[usize::from(node)].machine_down
    }

    /// The core process with its monitor, both as a fault may hit them: the core steps and
    /// the monitor watches.
    fn both_up(&self, node: NodeId) -> bool {
        let n = &self.nodes[usize::from(node)];
        n.core.is_some() && n.mon.down_until.is_none()
    }

    /// A fault on one of the node's two processes (`kind` 0..8: core crash, pause, monitor
    /// crash); none while one of them is already down.
    pub(super) fn process_fault(&mut self, node: NodeId, kind: u64) {
        if !self.both_up(node) {
            return;
        }
        match kind {
            0..=3 => {
                let slow = self.fault_rng.chance(125_000);
                let (lo, hi) = if slow {
                    SLOW_CORE_START_US
                } else {
                    CORE_START_US
                };
                let after = self.fault_rng.range(lo, hi);
                self.kill_core(node, "fault: core crash, its resources keep running", after);
            }
            4..=5 => {
                let i = usize::from(node);
                let Some(core) = self.nodes[i].core.take() else {
                    return;
                };
                let since_local = self.nodes[i].clock.local(self.now_us);
                self.nodes[i].paused = Some(Paused {
                    core,
                    since_local,
                    deferred: Vec::new(),
                });
                let pause = self.fault_rng.range(PAUSE_US.0, PAUSE_US.1);
                self.trace(format!(
                    "fault: {}'s core paused for {} ms",
                    self.name(node),
                    pause / 1000
                ));
                let inc = self.nodes[i].incarnation;
                self.schedule(self.now_us + pause, Ev::Resume { node, inc });
                self.arm_monitor(node);
            }
            _ => {
                let i = usize::from(node);
                let down = self.fault_rng.range(MONITOR_DOWN_US.0, MONITOR_DOWN_US.1);
                self.nodes[i].mon = SimMonitor {
                    down_until: Some(self.now_us + down),
                    ..SimMonitor::default()
                };
                self.trace(format!("fault: {}'s monitor crashes", self.name(node)));
                let power = self.nodes[i].power;
                self.schedule(self.now_us + down, Ev::MonitorUp { node, power });
            }
        }
    }

    /// The core process dies (the machine and what it runs do not); the monitor keeps the
    /// lease it was told and starts a new core after `restart_us`.
    fn kill_core(&mut self, node: NodeId, why: &str, restart_us: u64) {
        let i = usize::from(node);
        let local = self.nodes[i].clock.local(self.now_us);
        let core = match (self.nodes[i].core.take(), self.nodes[i].paused.take()) {
            (Some(c), _) => c,
            (None, Some(p)) => p.core,
            (None, None) => return,
        };
        // The daemon tells its monitor the lease after every step, so the last one told is
        // the one the core dies with; only an armed monitor keeps one.
        if self.nodes[i].mon.armed.is_some() {
            let until = core.lease_until_us();
            self.nodes[i].mon.lease = (until > local).then(|| (until, core.applied()));
        }
        self.crash_disk(node);
        self.trace(format!("{} ({why})", self.name(node)));
        let inc = self.nodes[i].incarnation;
        self.schedule(self.now_us + restart_us, Ev::CoreRestart { node, inc });
        self.arm_monitor(node);
    }

    /// `Ev::CoreRestart`: the monitor's new core is up, with the lease handed over.
    pub(super) fn core_restart(&mut self, node: NodeId, inc: u64) {
        let i = usize::from(node);
        let sn = &self.nodes[i];
        if sn.incarnation != inc || sn.machine_down || sn.core.is_some() || sn.paused.is_some() {
            return;
        }
        if sn.mon.down_until.is_some() {
            // Not modelled (see the module doc); never happens, as faults do not overlap.
            return;
        }
        // The monitor's own rule: a core that died past its stop point is stopped for first,
        // and its successor gets no lease.
        let local = self.nodes[i].clock.local(self.now_us);
        let mon = &self.nodes[i].mon;
        let next = next_core(
            mon.armed,
            mon.lease.map(|l| l.0),
            local,
            self.monitor_rules(),
        );
        if next.stop_hard_first {
            self.stop_hard(node, true);
            if !self.breaker.monitor_never_stops_hard {
                return; // it starts the next core once done
            }
        }
        let lease = self.nodes[i].mon.lease.take().filter(|_| next.hand_lease);
        self.trace(format!(
            "{}'s monitor starts a new core{}",
            self.name(node),
            if lease.is_some() {
                " with the lease"
            } else {
                ""
            }
        ));
        self.start_core(node, lease);
    }

    /// `Ev::Resume`: a paused core steps again; what reached it meanwhile arrives now.
    pub(super) fn resume(&mut self, node: NodeId, inc: u64) {
        let i = usize::from(node);
        if self.nodes[i].incarnation != inc {
            return;
        }
        let Some(p) = self.nodes[i].paused.take() else {
            return;
        };
        self.nodes[i].core = Some(p.core);
        self.trace(format!("{}'s core goes on", self.name(node)));
        for ev in p.deferred {
            self.schedule(self.now_us, ev);
        }
        self.tell_links(node);
        self.arm_monitor(node);
        self.after_node(node);
    }

    /// What reaches a paused core waits for it; `Some(ev)` when `ev` is not for a paused
    /// core.
    pub(super) fn defer_if_paused(&mut self, ev: Ev) -> Option<Ev> {
        let node = match &ev {
            Ev::Msg { to, .. } => *to,
            Ev::AgentDone { node, .. }
            | Ev::Written { node, .. }
            | Ev::DiskFailed { node, .. }
            | Ev::DiskRetry { node, .. } => *node,
            _ => return Some(ev),
        };
        match self.nodes[usize::from(node)].paused.as_mut() {
            Some(p) => {
                p.deferred.push(ev);
                None
            }
            None => Some(ev),
        }
    }

    /// `Effect::Watchdog`: the core tells its monitor by when exclusive resources must be
    /// down (if the monitor is there to hear it).
    pub(super) fn tell_monitor(&mut self, node: NodeId, deadline_us: Option<u64>) {
        let i = usize::from(node);
        self.nodes[i].told = deadline_us;
        if self.nodes[i].mon.down_until.is_some() {
            return;
        }
        let budget = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        self.nodes[i].mon.armed = deadline_us.map(|d| Deadline {
            deadline: d,
            stop_at: d.saturating_sub(budget),
        });
        if deadline_us.is_none() {
            self.nodes[i].mon.lease = None;
        }
        self.arm_monitor(node);
    }

    /// `Ev::MonitorUp`: the core started a new monitor and told it what it tells every new
    /// one.
    pub(super) fn monitor_up(&mut self, node: NodeId, power: u64) {
        let i = usize::from(node);
        if self.nodes[i].power != power || self.nodes[i].mon.down_until.is_none() {
            return;
        }
        self.nodes[i].mon.down_until = None;
        self.trace(format!("{}'s core starts a new monitor", self.name(node)));
        let told = self.nodes[i].told;
        self.tell_monitor(node, told);
    }

    /// The core as the monitor sees it: a running core is heard all the time (it says it is
    /// alive every few ms).
    fn core_seen(&self, node: NodeId, local: u64) -> CoreSeen {
        let n = &self.nodes[usize::from(node)];
        match (&n.core, &n.paused) {
            (Some(_), _) => CoreSeen::Heard(local),
            (None, Some(p)) => CoreSeen::Heard(p.since_local),
            (None, None) => CoreSeen::Absent,
        }
    }

    /// Make sure the monitor's one pending check fires by the time its verdict may change. A
    /// check that finds the deadline moved arms the next one.
    pub(super) fn arm_monitor(&mut self, node: NodeId) {
        let i = usize::from(node);
        if self.nodes[i].machine_down || self.nodes[i].mon.down_until.is_some() {
            return;
        }
        let local = self.nodes[i].clock.local(self.now_us);
        let seen = self.core_seen(node, local);
        let armed = self.nodes[i].mon.armed;
        if armed.is_none() && self.nodes[i].core.is_some() {
            // A core that steps is never wedged here: nothing to check.
            return;
        }
        let Some(at_local) = next_check(armed, seen, self.monitor_rules()) else {
            return;
        };
        let at = self.nodes[i].clock.real(at_local).max(self.now_us);
        if self.nodes[i]
            .mon
            .check_at
            .is_none_or(|p| at < p || p < self.now_us)
        {
            self.nodes[i].mon.check_at = Some(at);
            let power = self.nodes[i].power;
            self.schedule(at, Ev::MonitorCheck { node, power });
        }
    }

    /// `Ev::MonitorCheck`: the monitor judges, and acts.
    pub(super) fn monitor_check(&mut self, node: NodeId, power: u64) {
        let i = usize::from(node);
        if self.nodes[i].power != power || self.nodes[i].mon.check_at != Some(self.now_us) {
            return;
        }
        self.nodes[i].mon.check_at = None;
        if self.nodes[i].mon.down_until.is_some() {
            return;
        }
        let local = self.nodes[i].clock.local(self.now_us);
        let seen = self.core_seen(node, local);
        match verdict(self.nodes[i].mon.armed, seen, local, self.monitor_rules()) {
            Verdict::Wait => self.arm_monitor(node),
            Verdict::StopHard { core_absent } => self.stop_hard(node, core_absent),
            Verdict::KillWedged => {
                // Drawn from the main stream: what the cores do must not shift the faults.
                let after = self.rng.range(CORE_START_US.0, CORE_START_US.1);
                self.kill_core(node, "its monitor kills the wedged core", after);
            }
        }
    }

    /// Exclusive resources must be down now and the core cannot do it: kill the core, stop
    /// every exclusive resource of the node, start a new core.
    fn stop_hard(&mut self, node: NodeId, core_absent: bool) {
        let i = usize::from(node);
        self.nodes[i].mon.armed = None;
        self.nodes[i].mon.lease = None;
        if self.breaker.monitor_never_stops_hard {
            self.trace(format!(
                "{}'s monitor would stop everything hard (switched off)",
                self.name(node)
            ));
            return;
        }
        let why = if core_absent {
            "the core cannot stop in time"
        } else {
            "the deadline passed"
        };
        if self.nodes[i].core.is_some() || self.nodes[i].paused.is_some() {
            self.nodes[i].core = None;
            self.nodes[i].paused = None;
            self.crash_disk(node);
        }
        if self.world.hang_stops.contains(&node) {
            self.crash(
                node,
                "its monitor's hard stop hangs: the hardware watchdog resets it",
                None,
            );
            return;
        }
        for (g, spec) in self.spec.groups.iter().enumerate() {
            if !spec.is_exclusive() {
                continue;
            }
            for t in &mut self.world.truth[g] {
                t.active.retain(|a| a.0 != node);
            }
            self.world
                .bad
                .retain(|b| !(b.0 == node && usize::from(b.1) == g));
        }
        self.trace(format!(
            "{}'s monitor stops every exclusive resource hard ({why})",
            self.name(node)
        ));
        let after = self.rng.range(CORE_START_US.0, CORE_START_US.1);
        let inc = self.nodes[i].incarnation;
        self.schedule(self.now_us + after, Ev::CoreRestart { node, inc });
    }
}
