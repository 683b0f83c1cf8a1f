//! Fencing, as the coordinator runs it (design.md §5, rule 4c): with `[fencing]` in the
//! config (`PartitionPolicy::Fence`), an exclusive group whose owner went silent is taken over
//! only once a fencing device confirmed that owner off, never on the lease's expiry alone
//! (Pacemaker's behaviour with stonith enabled).
//!
//! One [`FenceState`] per node, not per group: a node that owned five groups is fenced once.
//!
//! | state | on | next |
//! |---|---|---|
//! | `Idle` | a silent owner's instance is stopping, unconfirmed | `Running` (asks the shell: [`FenceRequest`]; the node is refused leases) |
//! | `Running` | the agent confirmed | `Done` |
//! | `Running` | the agent failed (or timed out) | `Failed`, retried after a backoff (1 s, 2 s, 4 s … up to 10 s) |
//! | `Failed` | the retry is due and still needed | `Running` (attempt + 1) |
//! | `Failed` | no longer needed (the owner came back and confirmed its stop), or it restarted | `Idle` |
//! | `Done` | pass | propose [`Command::Fenced`] while it would release something; then `Idle` |
//!
//! Why `through`: the fence ran after the state had applied that index, so every instance
//! placed up to it ran on the machine the device powered off. What was placed later may run
//! on a rebooted machine and is not released by this fence. While a fence is not `Idle` the
//! node is refused leases, so a machine that reboots fast cannot start anything before the
//! release is committed (its next grant carries a commit index past it).
//!
//! Every node also watches the device itself ([`DeviceWatch`]): the shell runs the agent's
//! `monitor` action every `monitor_interval_ms` and feeds the outcome in; a change between
//! answering and not answering is an event, so an operator learns of an unreachable device
//! before a fence needs it, not when it fails.
//!
//! Pure: time comes in as `now_us`; the shell runs the agent and feeds the outcome back.

use super::spec::NodeId;
use super::state::{ClusterState, Command};

/// The first retry after a failed fence.
pub const FENCE_RETRY_MIN_US: u64 = 1_000_000;
/// The longest wait between two attempts.
pub const FENCE_RETRY_MAX_US: u64 = 10_000_000;
/// How long a proposed [`Command::Fenced`] may take to commit before it is proposed again.
const PROPOSE_AGAIN_US: u64 = 200_000;

/// Where the fencing of one node stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceState {
    /// Nothing asked.
    Idle,
    /// Asked the shell for `attempt`, when the state had applied `through`.
    Running {
        /// The attempt (1 = first).
        attempt: u32,
        /// The applied index when asked.
        through: u64,
    },
    /// `attempt` failed; the next one is due at `retry_us`.
    Failed {
        /// The attempt that failed.
        attempt: u32,
        /// When to try again.
        retry_us: u64,
    },
    /// `attempt` succeeded; what was placed up to `through` is gone.
    Done {
        /// The attempt that succeeded.
        attempt: u32,
        /// The applied index when it was asked.
        through: u64,
        /// When [`Command::Fenced`] was last proposed.
        proposed_us: Option<u64>,
    },
}

/// A fence the shell must run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FenceRequest {
    /// The node to fence.
    pub target: NodeId,
    /// The attempt.
    pub attempt: u32,
}

/// The coordinator's fencing of every node.
#[derive(Clone, Debug)]
pub struct Fencer {
    per_node: Vec<FenceState>,
    /// Per node: a [`Command::Fenced`] is in the batch of the current pass.
    in_batch: Vec<bool>,
    requests: Vec<FenceRequest>,
}

/// How long to wait after failed attempt `attempt`.
pub fn backoff_us(attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(16);
    (FENCE_RETRY_MIN_US << shift).min(FENCE_RETRY_MAX_US)
}

impl Fencer {
    /// Nothing fenced, for `nodes` nodes.
    pub fn new(nodes: usize) -> Fencer {
        Fencer {
            per_node: vec![FenceState::Idle; nodes],
            in_batch: vec![false; nodes],
            requests: Vec::new(),
        }
    }

    /// Where the fencing of `node` stands.
    pub fn state(&self, node: NodeId) -> FenceState {
        self.per_node
            .get(usize::from(node))
            .copied()
            .unwrap_or(FenceState::Idle)
    }

    /// Whether `node` is being fenced (or its fence is not yet committed): refuse it leases.
    pub fn busy(&self, node: NodeId) -> bool {
        self.state(node) != FenceState::Idle
    }

    /// The fences asked for since the last call, for the shell.
    pub fn take_requests(&mut self) -> impl Iterator<Item = FenceRequest> + '_ {
        self.requests.drain(..)
    }

    /// The shell's outcome of a request. Whether it was the awaited one (a stale outcome, of
    /// an attempt this coordinator did not ask for, changes nothing).
    pub fn on_result(&mut self, target: NodeId, attempt: u32, ok: bool, now_us: u64) -> bool {
        let Some(s) = self.per_node.get_mut(usize::from(target)) else {
            return false;
        };
        let FenceState::Running {
            attempt: a,
            through,
        } = *s
        else {
            return false;
        };
        if a != attempt {
            return false;
        }
        *s = if ok {
            FenceState::Done {
                attempt,
                through,
                proposed_us: None,
            }
        } else {
            FenceState::Failed {
                attempt,
                retry_us: now_us + backoff_us(attempt),
            }
        };
        true
    }

    /// `node` restarted (a new incarnation): a failed fence is moot. A running one still
    /// reports, and a done one still releases what ran before it.
    pub fn on_restart(&mut self, node: NodeId) {
        if let Some(s) = self.per_node.get_mut(usize::from(node)) {
            if matches!(s, FenceState::Failed { .. }) {
                *s = FenceState::Idle;
            }
        }
    }

    /// Whether the instance of `node` under `epoch` is released by the [`Command::Fenced`]
    /// in this pass's batch.
    pub fn covers(&self, node: NodeId, epoch: u64) -> bool {
        let i = usize::from(node);
        self.in_batch.get(i).copied().unwrap_or(false)
            && matches!(self.state(node), FenceState::Done { through, .. } if epoch <= through)
    }

    /// One pass: `needs[n]` says a silent owner's stopping instance on `n` waits for a fence.
    /// Asks for fences, proposes what succeeded (into `out`), and returns when it must look
    /// again (a retry), if ever. Returns the nodes newly asked for through
    /// [`Fencer::take_requests`].
    pub fn step(
        &mut self,
        needs: &[bool],
        state: &ClusterState,
        now_us: u64,
        out: &mut Vec<Command>,
    ) -> Option<u64> {
        let mut wake: Option<u64> = None;
        let mut at = |w: u64| wake = Some(wake.map_or(w, |x: u64| x.min(w)));
        self.in_batch.iter_mut().for_each(|b| *b = false);
        for (i, &need) in needs.iter().enumerate().take(self.per_node.len()) {
            let node = i as NodeId;
            let mut s = self.per_node[i];
            if let FenceState::Done {
                attempt,
                through,
                proposed_us,
            } = s
            {
                if state.fence_would_release(node, through) {
                    match proposed_us {
                        Some(p) if now_us < p + PROPOSE_AGAIN_US => at(p + PROPOSE_AGAIN_US),
                        _ => {
                            out.push(Command::Fenced { node, through });
                            self.in_batch[i] = true;
                            s = FenceState::Done {
                                attempt,
                                through,
                                proposed_us: Some(now_us),
                            };
                        }
                    }
                } else {
                    s = FenceState::Idle;
                }
            }
            s = match s {
                FenceState::Idle if need => self.ask(node, 1, state.applied),
                FenceState::Failed { .. } if !need => FenceState::Idle,
                FenceState::Failed { attempt, retry_us } if now_us >= retry_us => {
                    self.ask(node, attempt + 1, state.applied)
                }
                FenceState::Failed { retry_us, .. } => {
                    at(retry_us);
                    s
                }
                other => other,
            };
            self.per_node[i] = s;
        }
        wake
    }

    fn ask(&mut self, target: NodeId, attempt: u32, through: u64) -> FenceState {
        self.requests.push(FenceRequest { target, attempt });
        FenceState::Running { attempt, through }
    }
}

/// What this node last learnt of its fence device from the agent's `monitor` action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceHealth {
    /// Not checked yet (or monitoring is off).
    #[default]
    Unknown,
    /// The last check answered, at `since_us` (the first of the run of good checks).
    Answers {
        /// When it first answered after a failure (or the first check).
        since_us: u64,
    },
    /// The last check failed.
    Fails {
        /// Why, from the agent's verdict.
        reason: String,
        /// When it first failed in this run of failures.
        since_us: u64,
    },
}

/// A change in [`DeviceHealth`] worth telling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChange {
    /// The device stopped answering (or failed its first check).
    Failed,
    /// It answers again after a failure.
    Recovered,
}

/// The health of this node's fence device, from the checks the shell runs.
#[derive(Clone, Debug, Default)]
pub struct DeviceWatch {
    health: DeviceHealth,
}

impl DeviceWatch {
    /// The state.
    pub fn health(&self) -> &DeviceHealth {
        &self.health
    }

    /// A check ended: `ok`, or failed for `reason`. What changed, if anything: a failure is
    /// told once per run of failures, a recovery once, a first good check not at all.
    pub fn on_check(&mut self, ok: bool, reason: &str, now_us: u64) -> Option<DeviceChange> {
        let (next, change) = match (&self.health, ok) {
            (DeviceHealth::Answers { .. }, true) => return None,
            (DeviceHealth::Fails { .. }, false) => return None,
            (DeviceHealth::Unknown, true) => (DeviceHealth::Answers { since_us: now_us }, None),
            (DeviceHealth::Fails { .. }, true) => (
                DeviceHealth::Answers { since_us: now_us },
                Some(DeviceChange::Recovered),
            ),
            (_, false) => (
                DeviceHealth::Fails {
                    reason: reason.to_string(),
                    since_us: now_us,
                },
                Some(DeviceChange::Failed),
            ),
        };
        self.health = next;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_failure_and_its_recovery_are_told_once_each() {
        let mut w = DeviceWatch::default();
        assert_eq!(
            w.on_check(true, "", 1),
            None,
            "a first good check is no news"
        );
        assert_eq!(w.on_check(true, "", 2), None);
        assert_eq!(w.on_check(false, "no route", 3), Some(DeviceChange::Failed));
        assert_eq!(w.on_check(false, "still no route", 4), None);
        assert_eq!(
            w.health(),
            &DeviceHealth::Fails {
                reason: "no route".into(),
                since_us: 3
            },
            "the first failure of the run is kept"
        );
        assert_eq!(w.on_check(true, "", 5), Some(DeviceChange::Recovered));
        assert_eq!(w.health(), &DeviceHealth::Answers { since_us: 5 });
        let mut fresh = DeviceWatch::default();
        assert_eq!(
            fresh.on_check(false, "agent not found", 9),
            Some(DeviceChange::Failed),
            "a device that never answered is told at its first check"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff_us(1), 1_000_000);
        assert_eq!(backoff_us(2), 2_000_000);
        assert_eq!(backoff_us(4), 8_000_000);
        assert_eq!(backoff_us(5), FENCE_RETRY_MAX_US);
        assert_eq!(backoff_us(u32::MAX), FENCE_RETRY_MAX_US);
    }

    #[test]
    fn a_stale_outcome_changes_nothing() {
        let mut f = Fencer::new(3);
        assert!(!f.on_result(1, 1, true, 0), "nothing was asked");
        f.per_node[1] = FenceState::Running {
            attempt: 2,
            through: 7,
        };
        assert!(!f.on_result(1, 1, true, 0), "an older attempt");
        assert!(f.on_result(1, 2, false, 100));
        assert_eq!(
            f.state(1),
            FenceState::Failed {
                attempt: 2,
                retry_us: 100 + backoff_us(2)
            }
        );
        f.on_restart(1);
        assert_eq!(
            f.state(1),
            FenceState::Idle,
            "a restarted node needs no fence"
        );
    }
}
