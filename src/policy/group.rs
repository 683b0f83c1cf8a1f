//! The lifecycle of one group instance on one node (design.md §4, GroupActor).
//!
//! Resources start in dependency order and stop in reverse. Before anything is started each
//! resource is probed (is it already active here?), so a restarted daemon adopts what runs
//! instead of starting a second copy. A failed resource is cured locally first: it and the
//! resources that depend on it are stopped and started again, up to `max_restarts` within
//! `restart_window_ms`, the first at once and each later one after a wait that doubles from
//! `restart_backoff_ms` up to `restart_backoff_max_ms` ([`restart_backoff_ms`]), so that a
//! resource that dies at once after each start is not restarted in a tight loop. Past that
//! budget the group *escalates*: it stops everything and
//! reports that it cannot run here, and the coordinator fails it over. A resource with a
//! `migration_threshold` escalates once it has failed that many times within the window,
//! whatever budget the group has left (Pacemaker's `migration-threshold`). A failure whose
//! severity says no restart here can mend it ([`Outcome::FailedHard`], [`Outcome::FailedFatal`]:
//! OCF's hard and fatal errors) escalates at once.
//!
//! One operation runs per resource at a time (the OCF rule). The caller carries out
//! [`AgentOp`]s and reports results; the caller also enforces each op's deadline by calling
//! [`LocalGroup::handle_timeout`], which counts a late op as failed.

use super::spec::{GroupId, GroupSpec, ResourceId};

/// An operation on a resource agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Is it active here now?
    Probe,
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// The quick health check.
    MonitorQuick,
    /// The deep health check.
    MonitorDeep,
}

/// The outcome of an agent operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Success; for probe and monitor: running.
    Ok,
    /// Probe or monitor: cleanly not running.
    NotRunning,
    /// The operation failed (or timed out) in a way a restart may mend: OCF's "soft" errors.
    Failed,
    /// The operation failed in a way no restart on this node mends (OCF's "hard" errors: bad
    /// arguments, not installed, no permission): the group skips its local restarts and
    /// escalates at once, so the coordinator moves it to another node.
    FailedHard,
    /// The operation failed in a way no node mends (OCF's "fatal" error: the parameters are
    /// wrong everywhere): no restart here, and the group reports
    /// [`GroupStatus::CannotRunAnywhere`], so the coordinator keeps it off every node until an
    /// administrator clears its failures.
    FailedFatal,
}

impl Outcome {
    /// Whether this is a failure of any severity.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::FailedHard | Outcome::FailedFatal
        )
    }

    /// Whether a local restart cannot mend this failure (hard or fatal).
    pub fn skips_local_restart(self) -> bool {
        matches!(self, Outcome::FailedHard | Outcome::FailedFatal)
    }
}

/// An operation the caller must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentOp {
    /// The group.
    pub group: GroupId,
    /// The resource.
    pub resource: ResourceId,
    /// What to do.
    pub action: Action,
    /// The instance's epoch (fencing token for agents that enforce it).
    pub epoch: u64,
    /// Identifies this op; a result for an older op is ignored.
    pub op: u64,
    /// When the op has failed if no result came (caller's clock).
    pub deadline_us: u64,
}

/// A resource's state on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResourceState {
    /// Not probed yet.
    Unknown,
    /// Not active here.
    Inactive,
    /// Start in progress.
    Starting,
    /// Active and healthy.
    Active,
    /// Stop in progress.
    Stopping,
    /// Failed (a monitor, an exit, or a start): must be stopped before anything else.
    Failed,
    /// The stop failed: only fencing cleans this up.
    StopFailed,
}

/// Whether this node should run the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Run it.
    Run,
    /// Stop it.
    Stop,
}

/// What the group reports upwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupStatus {
    /// Probing or starting.
    Starting,
    /// Every resource is active.
    Running,
    /// Stopping.
    Stopping,
    /// Every resource is inactive.
    Stopped,
    /// Local recovery is exhausted; stopping and asking for failover.
    CannotRun,
    /// A resource failed fatally (OCF 6, "not configured": its parameters are wrong on
    /// every node): stopping, and asking that the group run on no node until its failures
    /// are cleared.
    CannotRunAnywhere,
    /// A stop failed: the node must be fenced.
    StopFailed,
}

/// Something worth an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// A resource failed.
    ResourceFailed {
        /// Which.
        resource: ResourceId,
        /// During which action.
        action: Action,
    },
    /// A local restart began (count within the window).
    LocalRestart {
        /// The failed resource.
        resource: ResourceId,
        /// Restarts within the window, this one included.
        count: u32,
    },
    /// The restart budget is exhausted.
    Escalated,
}

#[derive(Clone, Copy, Debug)]
struct Res {
    state: ResourceState,
    /// The op in flight: (id, action, deadline).
    op: Option<(u64, Action, u64)>,
    next_quick_us: u64,
    next_deep_us: u64,
    /// Part of a local restart: stop, then start again.
    restarting: bool,
}

/// One group instance on this node.
#[derive(Clone, Debug)]
pub struct LocalGroup {
    /// The group.
    pub group: GroupId,
    /// The instance's epoch.
    pub epoch: u64,
    want: Want,
    res: Vec<Res>,
    restarts_us: Vec<u64>,
    /// Per resource: when it failed, within the restart window (for `migration_threshold`).
    failures_us: Vec<Vec<u64>>,
    /// Per resource: left to the administrator (`eternectl unmanage`): monitored, never
    /// started or stopped here, its failures reported and not acted on. A lost lease still
    /// stops it: the lease outranks the administrator's hands-off.
    unmanaged: Vec<bool>,
    /// No start before then (a local restart's backoff); 0: none pending.
    start_after_us: u64,
    escalated: bool,
    /// The escalation came from a fatal failure: no node can run the group.
    fatal: bool,
    stop_failed: bool,
    /// Set when the lease is about to run out: stop everything now, in parallel, each op cut
    /// to this deadline (the watchdog covers a stop that still hangs).
    urgent_deadline_us: Option<u64>,
}

impl LocalGroup {
    /// A new instance; every resource is probed first.
    pub fn new(group: GroupId, spec: &GroupSpec, epoch: u64, want: Want) -> LocalGroup {
        let res = spec
            .resources
            .iter()
            .map(|_| Res {
                state: ResourceState::Unknown,
                op: None,
                next_quick_us: 0,
                next_deep_us: 0,
                restarting: false,
            })
            .collect();
        LocalGroup {
            group,
            epoch,
            want,
            res,
            restarts_us: Vec::new(),
            failures_us: vec![Vec::new(); spec.resources.len()],
            unmanaged: vec![false; spec.resources.len()],
            start_after_us: 0,
            escalated: false,
            fatal: false,
            stop_failed: false,
            urgent_deadline_us: None,
        }
    }

    /// Which resources are unmanaged (indices in the group), from the replicated state.
    pub fn set_unmanaged(&mut self, unmanaged: &[ResourceId]) {
        for (r, u) in self.unmanaged.iter_mut().enumerate() {
            *u = unmanaged.contains(&(r as ResourceId));
        }
    }

    /// Run or stop.
    pub fn set_want(&mut self, want: Want) {
        self.want = want;
    }

    /// What this node wants of the instance.
    pub fn want(&self) -> Want {
        self.want
    }

    /// Enter (or leave, with `None`) urgent stopping: the lease ends at `deadline_us`.
    pub fn set_urgent(&mut self, deadline_us: Option<u64>) {
        self.urgent_deadline_us = deadline_us;
    }

    /// Whether no operation is in flight.
    pub fn idle(&self) -> bool {
        self.res.iter().all(|r| r.op.is_none())
    }

    /// The state of each resource.
    pub fn resource_states(&self) -> impl Iterator<Item = ResourceState> + '_ {
        self.res.iter().map(|r| r.state)
    }

    /// Whether any resource may be active here (anything but cleanly inactive).
    pub fn holds_anything(&self) -> bool {
        self.res.iter().any(|r| r.state != ResourceState::Inactive)
    }

    /// Whether a resource is known or suspected to be active here (started, starting,
    /// stopping, failed or failing to stop). `Unknown` (not probed) does not count: a fresh
    /// machine runs nothing.
    pub fn may_be_active(&self) -> bool {
        use ResourceState::*;
        self.res
            .iter()
            .any(|r| matches!(r.state, Starting | Active | Stopping | Failed | StopFailed))
    }

    /// The group's status.
    pub fn status(&self) -> GroupStatus {
        use ResourceState::*;
        if self.stop_failed {
            return GroupStatus::StopFailed;
        }
        let all = |s: ResourceState| self.res.iter().all(|r| r.state == s);
        if all(Inactive) {
            // Once told to stop, an escalated instance that is down is simply stopped: that is
            // what the coordinator waits for before it releases the instance.
            if self.want == Want::Stop {
                return GroupStatus::Stopped;
            }
        }
        if self.escalated && self.fatal {
            return GroupStatus::CannotRunAnywhere;
        }
        if self.escalated {
            return GroupStatus::CannotRun;
        }
        match self.want {
            Want::Run if all(Active) => GroupStatus::Running,
            Want::Run => GroupStatus::Starting,
            Want::Stop => GroupStatus::Stopping,
        }
    }

    fn running(&self) -> bool {
        self.want == Want::Run && !self.escalated && !self.stop_failed
    }

    /// Decide the next operations at `now_us`. `next_op` hands out op ids.
    pub fn drive(
        &mut self,
        spec: &GroupSpec,
        now_us: u64,
        next_op: &mut u64,
        out: &mut Vec<AgentOp>,
    ) {
        use ResourceState::*;
        if let Some(deadline) = self.urgent_deadline_us {
            self.drive_urgent(spec, now_us, deadline, next_op, out);
            return;
        }
        let running = self.running();
        if now_us >= self.start_after_us {
            self.start_after_us = 0;
        }
        let may_start = self.start_after_us == 0;
        for r in 0..self.res.len() {
            if self.res[r].op.is_some() {
                continue;
            }
            let rs = &spec.resources[r];
            let dependents_down = || {
                spec.resources.iter().enumerate().all(|(d, ds)| {
                    !ds.depends_on.contains(&(r as ResourceId))
                        || matches!(self.res[d].state, Inactive | Unknown)
                })
            };
            let monitor = |res: &Res| {
                if now_us >= res.next_quick_us {
                    Some((Action::MonitorQuick, rs.monitor_quick.timeout_ms))
                } else if rs.monitor_deep.is_some() && now_us >= res.next_deep_us {
                    rs.monitor_deep.map(|d| (Action::MonitorDeep, d.timeout_ms))
                } else {
                    None
                }
            };
            let action = match self.res[r].state {
                Unknown => Some((Action::Probe, rs.monitor_quick.timeout_ms)),
                // Unmanaged: watched whether active or failed, never started or stopped.
                Active | Failed if self.unmanaged[r] => monitor(&self.res[r]),
                _ if self.unmanaged[r] => None,
                Inactive if running && may_start => {
                    let deps_up = rs
                        .depends_on
                        .iter()
                        .all(|&d| self.res[usize::from(d)].state == Active);
                    deps_up.then_some((Action::Start, rs.start_timeout_ms))
                }
                Active if !running || self.res[r].restarting => {
                    dependents_down().then_some((Action::Stop, rs.stop_timeout_ms))
                }
                Failed => dependents_down().then_some((Action::Stop, rs.stop_timeout_ms)),
                Active => monitor(&self.res[r]),
                _ => None,
            };
            if let Some((action, timeout_ms)) = action {
                *next_op += 1;
                let deadline_us = now_us.saturating_add(u64::from(timeout_ms) * 1000);
                self.res[r].op = Some((*next_op, action, deadline_us));
                match action {
                    Action::Start => self.res[r].state = Starting,
                    Action::Stop => self.res[r].state = Stopping,
                    _ => {}
                }
                out.push(AgentOp {
                    group: self.group,
                    resource: r as ResourceId,
                    action,
                    epoch: self.epoch,
                    op: *next_op,
                    deadline_us,
                });
            }
        }
    }

    /// Stop every resource that may be active, all at once, without waiting for dependents:
    /// the lease is running out and each agent's stop is self-sufficient (the filesystem
    /// agent ends the processes holding its mount, for instance). A resource never probed
    /// here is probed first, so that a node that has not got its lease yet does not stop
    /// (and, if that stop is slow, fence itself over) what never ran.
    fn drive_urgent(
        &mut self,
        spec: &GroupSpec,
        now_us: u64,
        deadline_us: u64,
        next_op: &mut u64,
        out: &mut Vec<AgentOp>,
    ) {
        use ResourceState::*;
        for (r, res) in self.res.iter_mut().enumerate() {
            match res.op {
                // A stop or a probe in flight goes on, cut to the deadline.
                Some((id, action @ (Action::Stop | Action::Probe), d)) => {
                    res.op = Some((id, action, d.min(deadline_us.max(now_us))));
                    continue;
                }
                // Abandon a start or monitor in flight: the shell kills it.
                Some((_, Action::Start, _)) => res.state = Failed,
                Some(_) | None => {}
            }
            res.op = None;
            if res.state == Unknown {
                // Never probed here (a fresh instance, or a restarted daemon): ask first. A
                // stop of something that never ran can still be slow (an OCF script), and a
                // stop that misses the deadline fences the node. What the probe finds running
                // (or cannot tell about) is stopped on the next pass.
                *next_op += 1;
                let timeout_us = u64::from(spec.resources[r].monitor_quick.timeout_ms) * 1000;
                let deadline = now_us
                    .saturating_add(timeout_us)
                    .min(deadline_us.max(now_us));
                res.op = Some((*next_op, Action::Probe, deadline));
                out.push(AgentOp {
                    group: self.group,
                    resource: r as ResourceId,
                    action: Action::Probe,
                    epoch: self.epoch,
                    op: *next_op,
                    deadline_us: deadline,
                });
                continue;
            }
            if !matches!(res.state, Active | Failed | Starting) {
                continue;
            }
            *next_op += 1;
            let timeout_us = u64::from(spec.resources[r].stop_timeout_ms) * 1000;
            let deadline = now_us
                .saturating_add(timeout_us)
                .min(deadline_us.max(now_us));
            res.op = Some((*next_op, Action::Stop, deadline));
            res.state = Stopping;
            out.push(AgentOp {
                group: self.group,
                resource: r as ResourceId,
                action: Action::Stop,
                epoch: self.epoch,
                op: *next_op,
                deadline_us: deadline,
            });
        }
    }

    /// The result of op `op` on `resource`.
    pub fn handle_result(
        &mut self,
        spec: &GroupSpec,
        resource: ResourceId,
        op: u64,
        outcome: Outcome,
        now_us: u64,
        events: &mut Vec<GroupEvent>,
    ) {
        use ResourceState::*;
        let r = usize::from(resource);
        let Some(res) = self.res.get_mut(r) else {
            return;
        };
        let Some((id, action, _)) = res.op else {
            return;
        };
        if id != op {
            return;
        }
        res.op = None;
        let rs = &spec.resources[r];
        let schedule = |res: &mut Res| {
            res.next_quick_us =
                now_us.saturating_add(u64::from(rs.monitor_quick.interval_ms) * 1000);
            if let Some(d) = rs.monitor_deep {
                res.next_deep_us = now_us.saturating_add(u64::from(d.interval_ms) * 1000);
            }
        };
        let unmanaged = self.unmanaged[r];
        match (action, outcome) {
            // Unmanaged: a monitor says what it is, and only that; the next one is scheduled
            // whatever it found, and a failure is an event, not a restart.
            (Action::MonitorQuick | Action::MonitorDeep, o) if unmanaged => {
                let was = res.state;
                schedule(res);
                res.state = match o {
                    Outcome::Ok => Active,
                    _ => Failed,
                };
                if o.is_failure() && was != Failed {
                    events.push(GroupEvent::ResourceFailed { resource, action });
                }
            }
            (Action::Probe, Outcome::Ok) => {
                res.state = Active;
                schedule(res);
            }
            (Action::Probe, Outcome::NotRunning) => res.state = Inactive,
            // A probe that cannot tell: treat as possibly active, stop it to be sure.
            (Action::Probe, o) if o.is_failure() => res.state = Failed,
            (Action::Start, Outcome::Ok) => {
                res.state = Active;
                schedule(res);
            }
            (Action::Stop, Outcome::Ok | Outcome::NotRunning) => {
                res.state = Inactive;
                res.restarting = false;
            }
            (Action::Stop, o) if o.is_failure() => {
                res.state = StopFailed;
                self.stop_failed = true;
            }
            (Action::MonitorQuick, Outcome::Ok) => {
                res.next_quick_us =
                    now_us.saturating_add(u64::from(rs.monitor_quick.interval_ms) * 1000);
            }
            (Action::MonitorDeep, Outcome::Ok) => {
                if let Some(d) = rs.monitor_deep {
                    res.next_deep_us = now_us.saturating_add(u64::from(d.interval_ms) * 1000);
                }
            }
            (Action::Start | Action::MonitorQuick | Action::MonitorDeep, o) => {
                // A monitor result for a resource we are already stopping changes nothing.
                if res.state == Active || res.state == Starting {
                    let restart = !o.skips_local_restart();
                    if o == Outcome::FailedFatal && self.running() {
                        self.fatal = true;
                    }
                    self.fail(spec, resource, action, restart, now_us, events);
                }
            }
            // Every action and outcome is covered above; the guards only split failures.
            (Action::Probe | Action::Stop, _) => {}
        }
    }

    /// An exited process, seen at once by the agent (pidfd or child wait).
    pub fn handle_resource_failed(
        &mut self,
        spec: &GroupSpec,
        resource: ResourceId,
        now_us: u64,
        events: &mut Vec<GroupEvent>,
    ) {
        let Some(res) = self.res.get_mut(usize::from(resource)) else {
            return;
        };
        if res.state == ResourceState::Active {
            // Any monitor in flight is moot now.
            res.op = None;
            self.fail(spec, resource, Action::MonitorQuick, true, now_us, events);
        }
    }

    /// `resource` failed during `action`: restart it here within the budget (unless
    /// `restart` is false: a hard or fatal error), else escalate.
    fn fail(
        &mut self,
        spec: &GroupSpec,
        resource: ResourceId,
        action: Action,
        restart: bool,
        now_us: u64,
        events: &mut Vec<GroupEvent>,
    ) {
        let r = usize::from(resource);
        self.res[r].state = ResourceState::Failed;
        events.push(GroupEvent::ResourceFailed { resource, action });
        if !self.running() || self.unmanaged[r] {
            return;
        }
        // restart_window_ms is a u64 from the config: saturate rather than wrap.
        let window_us = spec.restart_window_ms.saturating_mul(1000);
        self.restarts_us
            .retain(|&t| t.saturating_add(window_us) > now_us);
        let failures = &mut self.failures_us[r];
        failures.retain(|&t| t.saturating_add(window_us) > now_us);
        failures.push(now_us);
        let over_threshold = spec.resources[r]
            .migration_threshold
            .is_some_and(|t| failures.len() as u32 >= t);
        if !restart || over_threshold || self.restarts_us.len() as u32 >= spec.max_restarts {
            self.escalated = true;
            events.push(GroupEvent::Escalated);
            return;
        }
        self.restarts_us.push(now_us);
        let count = self.restarts_us.len() as u32;
        let wait_us = restart_backoff_ms(spec, count).saturating_mul(1000);
        if wait_us > 0 {
            self.start_after_us = now_us.saturating_add(wait_us);
        }
        events.push(GroupEvent::LocalRestart { resource, count });
        // Restart the failed resource and everything that depends on it, transitively.
        let mut affected = vec![false; self.res.len()];
        affected[r] = true;
        for (d, ds) in spec.resources.iter().enumerate() {
            // Resources are sorted with dependencies first, so one pass suffices.
            if ds.depends_on.iter().any(|&x| affected[usize::from(x)]) {
                affected[d] = true;
            }
        }
        for (d, hit) in affected.into_iter().enumerate() {
            if hit && d != r && self.res[d].state != ResourceState::Inactive {
                self.res[d].restarting = true;
            }
        }
    }

    /// Ops whose deadline passed at `now_us` count as failed.
    pub fn handle_timeout(&mut self, spec: &GroupSpec, now_us: u64, events: &mut Vec<GroupEvent>) {
        for r in 0..self.res.len() {
            if let Some((id, _, deadline)) = self.res[r].op {
                if now_us >= deadline {
                    self.handle_result(spec, r as ResourceId, id, Outcome::Failed, now_us, events);
                }
            }
        }
    }

    /// The earliest time something is due (an op deadline, a monitor, the end of a restart's
    /// backoff).
    pub fn next_timeout_us(&self, spec: &GroupSpec) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut take = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if self.start_after_us > 0 && self.running() {
            take(self.start_after_us);
        }
        for (r, res) in self.res.iter().enumerate() {
            if let Some((_, _, d)) = res.op {
                take(d);
            } else if (res.state == ResourceState::Active
                || (res.state == ResourceState::Failed && self.unmanaged[r]))
                && self.running()
                && !res.restarting
            {
                take(res.next_quick_us);
                if spec.resources[r].monitor_deep.is_some() {
                    take(res.next_deep_us);
                }
            }
        }
        next
    }
}

/// The wait before local restart number `count` within the window (1: the first): none for
/// the first, `restart_backoff_ms` for the second, twice as long for each one after, never
/// over `restart_backoff_max_ms`. Systemd's `RestartSec` with `RestartSteps`, in effect: a
/// resource that fails at once after each start is not restarted in a tight loop.
pub fn restart_backoff_ms(spec: &GroupSpec, count: u32) -> u64 {
    if count <= 1 || spec.restart_backoff_ms == 0 {
        return 0;
    }
    let factor = 1u64.checked_shl(count - 2).unwrap_or(u64::MAX);
    spec.restart_backoff_ms
        .saturating_mul(factor)
        .min(spec.restart_backoff_max_ms.max(spec.restart_backoff_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::{resource, simple_spec};

    /// A group ip ← fs ← app (app depends on fs, fs on ip).
    fn chain() -> GroupSpec {
        let mut spec = simple_spec(2, 1);
        let mut g = spec.groups.remove(0);
        g.resources = vec![
            resource("ip", vec![]),
            resource("fs", vec![0]),
            resource("app", vec![1]),
        ];
        g.max_restarts = 1;
        g
    }

    /// Drive the group, answering every op with `answer`, until nothing is in flight.
    fn settle(
        g: &mut LocalGroup,
        spec: &GroupSpec,
        now: u64,
        answer: impl Fn(&AgentOp) -> Outcome,
        log: &mut Vec<String>,
    ) {
        let mut op = 100;
        for _ in 0..20 {
            let mut out = Vec::new();
            g.drive(spec, now, &mut op, &mut out);
            if out.is_empty() {
                return;
            }
            for o in out {
                log.push(format!(
                    "{:?} {}",
                    o.action,
                    spec.resources[usize::from(o.resource)].name
                ));
                g.handle_result(spec, o.resource, o.op, answer(&o), now, &mut Vec::new());
            }
        }
    }

    #[test]
    fn starts_in_dependency_order_after_probing() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(
            &mut g,
            &spec,
            0,
            |o| {
                if o.action == Action::Probe {
                    Outcome::NotRunning
                } else {
                    Outcome::Ok
                }
            },
            &mut log,
        );
        assert_eq!(
            log,
            [
                "Probe ip",
                "Probe fs",
                "Probe app",
                "Start ip",
                "Start fs",
                "Start app"
            ]
        );
        assert_eq!(g.status(), GroupStatus::Running);
    }

    #[test]
    fn stops_in_reverse_order() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        assert_eq!(
            log,
            ["Probe ip", "Probe fs", "Probe app"],
            "probe found all running: adopted"
        );
        log.clear();
        g.set_want(Want::Stop);
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        assert_eq!(log, ["Stop app", "Stop fs", "Stop ip"]);
        assert_eq!(g.status(), GroupStatus::Stopped);
    }

    /// The second local restart waits `restart_backoff_ms`, each one after it twice as long,
    /// never over `restart_backoff_max_ms`; the first is at once. The wait is a timeout of the
    /// group, so the node core wakes for it.
    #[test]
    fn local_restarts_back_off_exponentially_up_to_a_bound() {
        let mut spec = chain();
        spec.max_restarts = 10;
        spec.restart_window_ms = 3_600_000;
        spec.restart_backoff_ms = 1_000;
        spec.restart_backoff_max_ms = 4_000;
        let waits: Vec<u64> = (1..=6).map(|n| restart_backoff_ms(&spec, n)).collect();
        assert_eq!(waits, [0, 1_000, 2_000, 4_000, 4_000, 4_000]);

        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        let mut now = 1_000_000;
        for (n, wait_ms) in waits.iter().enumerate() {
            let mut ev = Vec::new();
            g.handle_resource_failed(&spec, 2, now, &mut ev);
            assert!(
                matches!(ev[1], GroupEvent::LocalRestart { count, .. } if count == n as u32 + 1),
                "{ev:?}"
            );
            log.clear();
            settle(&mut g, &spec, now, |_| Outcome::Ok, &mut log);
            // Monitors fall due too on this clock; only starts and stops are of interest.
            let ss = |log: &mut Vec<String>| log.retain(|l| !l.starts_with("Monitor"));
            ss(&mut log);
            let wait_us = wait_ms * 1000;
            if wait_us == 0 {
                assert_eq!(log, ["Stop app", "Start app"], "restart {}", n + 1);
            } else {
                assert_eq!(log, ["Stop app"], "restart {} waits", n + 1);
                assert!(
                    g.next_timeout_us(&spec).is_some_and(|t| t <= now + wait_us),
                    "the group wakes by the end of its wait"
                );
                log.clear();
                settle(&mut g, &spec, now + wait_us - 1, |_| Outcome::Ok, &mut log);
                ss(&mut log);
                assert!(log.is_empty(), "not before its wait: {log:?}");
                settle(&mut g, &spec, now + wait_us, |_| Outcome::Ok, &mut log);
                ss(&mut log);
                assert_eq!(log, ["Start app"], "restart {}", n + 1);
                now += wait_us;
            }
            assert_eq!(g.status(), GroupStatus::Running);
            now += 10_000;
        }
    }

    #[test]
    fn local_restart_then_escalation() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        // fs fails: app (its dependent) and fs are restarted, ip is left alone.
        let mut ev = Vec::new();
        g.handle_resource_failed(&spec, 1, 10, &mut ev);
        assert_eq!(
            ev[1],
            GroupEvent::LocalRestart {
                resource: 1,
                count: 1
            }
        );
        log.clear();
        settle(&mut g, &spec, 10, |_| Outcome::Ok, &mut log);
        assert_eq!(log, ["Stop app", "Stop fs", "Start fs", "Start app"]);
        assert_eq!(g.status(), GroupStatus::Running);
        // A second failure inside the window exceeds max_restarts = 1: escalate and stop all.
        ev.clear();
        g.handle_resource_failed(&spec, 2, 20, &mut ev);
        assert_eq!(ev.last(), Some(&GroupEvent::Escalated));
        log.clear();
        settle(&mut g, &spec, 20, |_| Outcome::Ok, &mut log);
        assert_eq!(log, ["Stop app", "Stop fs", "Stop ip"]);
        assert_eq!(g.status(), GroupStatus::CannotRun);
        // The coordinator answers with a stop: once down, the instance reports Stopped, which
        // is what lets the coordinator release it.
        g.set_want(Want::Stop);
        assert_eq!(g.status(), GroupStatus::Stopped);
    }

    #[test]
    fn a_migration_threshold_escalates_before_the_group_budget_runs_out() {
        let mut spec = chain();
        spec.max_restarts = 10;
        spec.resources[2].migration_threshold = Some(2);
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        // fs fails twice: its threshold is none of its own, so both are restarted here.
        for t in [10, 20] {
            let mut ev = Vec::new();
            g.handle_resource_failed(&spec, 1, t, &mut ev);
            assert!(
                matches!(ev[1], GroupEvent::LocalRestart { resource: 1, .. }),
                "{ev:?}"
            );
            settle(&mut g, &spec, t + 5_000_000, |_| Outcome::Ok, &mut log);
        }
        // app's first failure is restarted; its second reaches migration_threshold = 2.
        let mut ev = Vec::new();
        g.handle_resource_failed(&spec, 2, 30_000_000, &mut ev);
        assert!(
            matches!(ev[1], GroupEvent::LocalRestart { resource: 2, .. }),
            "{ev:?}"
        );
        settle(&mut g, &spec, 40_000_000, |_| Outcome::Ok, &mut log);
        ev.clear();
        g.handle_resource_failed(&spec, 2, 50_000_000, &mut ev);
        assert_eq!(ev.last(), Some(&GroupEvent::Escalated), "{ev:?}");
        // Past the window its count starts again.
        let mut g = LocalGroup::new(0, &spec, 8, Want::Run);
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        let window_us = spec.restart_window_ms * 1000;
        for t in [10, 10 + window_us] {
            let mut ev = Vec::new();
            g.handle_resource_failed(&spec, 2, t, &mut ev);
            assert!(
                matches!(ev[1], GroupEvent::LocalRestart { resource: 2, .. }),
                "{ev:?}"
            );
            settle(&mut g, &spec, t + 40_000_000, |_| Outcome::Ok, &mut log);
        }
    }

    #[test]
    fn an_unmanaged_resource_is_watched_never_started_stopped_or_restarted() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut log);
        g.set_unmanaged(&[1]);
        // fs's process dies: an event, no restart of it or of app, no escalation.
        let mut ev = Vec::new();
        g.handle_resource_failed(&spec, 1, 10, &mut ev);
        assert_eq!(
            ev,
            [GroupEvent::ResourceFailed {
                resource: 1,
                action: Action::MonitorQuick
            }]
        );
        log.clear();
        let later = 5_000_000;
        settle(&mut g, &spec, later, |_| Outcome::Ok, &mut log);
        // Only monitors: fs's says it is back (an administrator mended it by hand).
        assert!(log.iter().all(|l| l.starts_with("MonitorQuick")), "{log:?}");
        assert!(log.contains(&"MonitorQuick fs".to_string()), "{log:?}");
        assert_eq!(g.status(), GroupStatus::Running);
        // Told to stop, the group stops what is managed and leaves fs (and ip, which fs
        // depends on, and which must outlive it) alone.
        g.set_want(Want::Stop);
        log.clear();
        settle(&mut g, &spec, later + 1, |_| Outcome::Ok, &mut log);
        assert_eq!(log, ["Stop app"]);
        // Managed again: the stop goes on.
        g.set_unmanaged(&[]);
        log.clear();
        settle(&mut g, &spec, later + 2, |_| Outcome::Ok, &mut log);
        assert_eq!(log, ["Stop fs", "Stop ip"]);
    }

    #[test]
    fn a_hard_or_fatal_failure_skips_the_local_restarts() {
        let spec = chain();
        let fresh = |o: &AgentOp| {
            if o.action == Action::Probe {
                Outcome::NotRunning
            } else {
                Outcome::Ok
            }
        };
        // fs's quick monitor fails with each severity; the budget (max_restarts = 1) is
        // untouched, so only severity decides between a local restart and escalation.
        let mut got = Vec::new();
        for outcome in [Outcome::Failed, Outcome::FailedHard, Outcome::FailedFatal] {
            let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
            settle(&mut g, &spec, 0, fresh, &mut Vec::new());
            assert_eq!(g.status(), GroupStatus::Running);
            let now = u64::from(spec.resources[1].monitor_quick.interval_ms) * 1000;
            let mut ops = Vec::new();
            g.drive(&spec, now, &mut 500, &mut ops);
            let fs = ops
                .iter()
                .find(|o| o.resource == 1 && o.action == Action::MonitorQuick)
                .expect("fs is monitored");
            let mut ev = Vec::new();
            g.handle_result(&spec, 1, fs.op, outcome, now, &mut ev);
            got.push((outcome, ev.last().copied()));
            let want = if outcome == Outcome::FailedFatal {
                GroupStatus::CannotRunAnywhere
            } else if outcome == Outcome::FailedHard {
                GroupStatus::CannotRun
            } else {
                GroupStatus::Starting
            };
            assert_eq!(g.status(), want, "after {outcome:?}");
        }
        assert_eq!(
            got,
            [
                (
                    Outcome::Failed,
                    Some(GroupEvent::LocalRestart {
                        resource: 1,
                        count: 1
                    })
                ),
                (Outcome::FailedHard, Some(GroupEvent::Escalated)),
                (Outcome::FailedFatal, Some(GroupEvent::Escalated)),
            ]
        );
    }

    #[test]
    fn without_a_lease_a_fresh_instance_is_probed_not_stopped() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        g.set_urgent(Some(1_000_000));
        let mut log = Vec::new();
        // ip and fs never ran here; app is found running (a daemon restart, say).
        settle(
            &mut g,
            &spec,
            0,
            |o| match (o.action, o.resource) {
                (Action::Probe, 2) => Outcome::Ok,
                (Action::Probe, _) => Outcome::NotRunning,
                _ => Outcome::Ok,
            },
            &mut log,
        );
        assert_eq!(log, ["Probe ip", "Probe fs", "Probe app", "Stop app"]);
        assert_eq!(
            g.status(),
            GroupStatus::Starting,
            "nothing runs; it waits for the lease"
        );
    }

    #[test]
    fn restart_budget_renews_after_the_window() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut Vec::new());
        let mut ev = Vec::new();
        g.handle_resource_failed(&spec, 2, 10, &mut ev);
        settle(&mut g, &spec, 10, |_| Outcome::Ok, &mut Vec::new());
        let later = 10 + spec.restart_window_ms * 1000;
        g.handle_resource_failed(&spec, 2, later, &mut ev);
        assert!(!ev.contains(&GroupEvent::Escalated));
    }

    /// `restart_window_ms` is a u64 from the config: × 1000 overflowed (a panic in debug
    /// builds; in release a wrapped, short window renewed the budget early).
    #[test]
    fn a_huge_restart_window_saturates_and_still_counts() {
        let mut spec = chain();
        spec.restart_window_ms = u64::MAX;
        spec.max_restarts = 1;
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut Vec::new());
        let mut ev = Vec::new();
        g.handle_resource_failed(&spec, 2, 10, &mut ev);
        settle(&mut g, &spec, 10, |_| Outcome::Ok, &mut Vec::new());
        assert!(
            !ev.contains(&GroupEvent::Escalated),
            "one restart is allowed"
        );
        g.handle_resource_failed(&spec, 2, u64::MAX / 2, &mut ev);
        assert!(
            ev.contains(&GroupEvent::Escalated),
            "the first restart is still inside the window"
        );
    }

    #[test]
    fn stop_timeout_is_a_stop_failure() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        settle(&mut g, &spec, 0, |_| Outcome::Ok, &mut Vec::new());
        g.set_want(Want::Stop);
        let mut out = Vec::new();
        g.drive(&spec, 0, &mut 1, &mut out);
        assert_eq!(out[0].action, Action::Stop);
        g.handle_timeout(&spec, out[0].deadline_us, &mut Vec::new());
        assert_eq!(g.status(), GroupStatus::StopFailed);
    }

    #[test]
    fn failed_start_is_stopped_then_retried_within_budget() {
        let spec = chain();
        let mut g = LocalGroup::new(0, &spec, 7, Want::Run);
        let mut log = Vec::new();
        let mut first = true;
        let mut op = 0;
        for _ in 0..20 {
            let mut out = Vec::new();
            g.drive(&spec, 0, &mut op, &mut out);
            for o in out {
                log.push(format!(
                    "{:?} {}",
                    o.action,
                    spec.resources[usize::from(o.resource)].name
                ));
                let outcome = match o.action {
                    Action::Probe => Outcome::NotRunning,
                    Action::Start if o.resource == 0 && first => {
                        first = false;
                        Outcome::Failed
                    }
                    _ => Outcome::Ok,
                };
                g.handle_result(&spec, o.resource, o.op, outcome, 0, &mut Vec::new());
            }
        }
        assert_eq!(
            &log[3..],
            ["Start ip", "Stop ip", "Start ip", "Start fs", "Start app"]
        );
    }
}
