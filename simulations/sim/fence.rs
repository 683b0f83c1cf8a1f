//! Fencing in the simulator: the fence device a coordinator's [`Effect::Fence`] reaches.
//!
//! Each request is drawn from the sim's seeded generator:
//!
//! | outcome | chance | what happens |
//! |---|---|---|
//! | success | 70 % | after 50–500 ms the target is power cycled: a machine crash in world truth (everything on it dies, it boots again later, as `action = "reboot"`), then the coordinator hears `ok` |
//! | failure | 20 % | after 50–500 ms the coordinator hears a failure (exit 1); the target is untouched |
//! | hang | 10 % | the agent never answers; at [`FENCE_TIMEOUT_US`] the shell's timeout kills it and the coordinator hears a failure; the target is untouched |
//!
//! The outcome reaches the node that asked only if its core has not crashed since (a new core
//! asks again if it needs to), and the device acts only if the asking machine is still up: an
//! agent dies with its machine. Some scenarios run with fencing ([`with_fencing`]), some
//! two-node clusters with a fencing device and no witness ([`two_node_fencing`]): chosen from
//! the seed by generators of their own, so scenarios without fencing stay as they were.
//!
//! Two nodes fence each other at once in a partition; as `delay_ms = { n1 = … }` would, the
//! fencing of the first node waits [`TWO_NODE_DELAY_US`] more, so that it shoots first and
//! survives.

use super::*;
use crate::policy::message::FenceOutcome;
use crate::policy::spec::PartitionPolicy;

/// The fence timeout the simulated shell enforces on a hanging agent.
pub const FENCE_TIMEOUT_US: u64 = 2_000_000;
/// How long a fence agent that answers takes.
const FENCE_RUN_US: (u64, u64) = (50_000, 500_000);

/// In a two-node cluster with fencing: how much longer fencing the first node waits.
pub const TWO_NODE_DELAY_US: u64 = 1_000_000;

/// The end of a fence: delivered at the time it happens.
pub(super) struct FenceDone {
    /// The node that asked, its incarnation and its machine's boots then.
    by: NodeId,
    inc: u64,
    power: u64,
    target: NodeId,
    attempt: u32,
    /// The device powers the target off (a success).
    power_cycle: bool,
    outcome: FenceOutcome,
}

/// Whether the scenario of `seed` (with `partition` as it would be without fencing) has a
/// `[fencing]` device: a third of the clusters that have quorum.
pub fn with_fencing(seed: u64, partition: PartitionPolicy) -> PartitionPolicy {
    let mut rng = Rng::new(seed ^ 0xFE4C_E5EE);
    if partition == PartitionPolicy::Quorum && rng.chance(333_333) {
        PartitionPolicy::Fence
    } else {
        partition
    }
}

/// Whether the two-node scenario of `seed` has a fencing device instead of a witness: half
/// of them.
pub fn two_node_fencing(seed: u64, nodes: usize) -> bool {
    let mut rng = Rng::new(seed ^ 0x2_40DE_FE4C);
    nodes == 2 && rng.chance(500_000)
}

impl Sim {
    /// `Effect::Fence` from `by`: draw how the device answers and when.
    pub(super) fn fence_request(&mut self, by: NodeId, target: NodeId, attempt: u32) {
        let pick = self.rng.range(0, 100);
        let run_us = self.rng.range(FENCE_RUN_US.0, FENCE_RUN_US.1);
        let (power_cycle, after_us, outcome) = match pick {
            0..=69 => (true, run_us, outcome(true, Some(0), run_us, "")),
            70..=89 => (
                false,
                run_us,
                outcome(false, Some(1), run_us, "fence_sim off exited 1"),
            ),
            _ => (
                false,
                FENCE_TIMEOUT_US,
                outcome(
                    false,
                    None,
                    FENCE_TIMEOUT_US,
                    "fence_sim gave no answer within the timeout and was killed",
                ),
            ),
        };
        self.trace(format!(
            "{} fences {} (attempt {attempt}): {}",
            self.name(by),
            self.name(target),
            match pick {
                0..=69 => "will succeed",
                70..=89 => "will fail",
                _ => "will hang",
            }
        ));
        let inc = self.nodes[usize::from(by)].incarnation;
        let power = self.nodes[usize::from(by)].power;
        let delay_us = if self.spec.nodes.len() == 2 && target == 0 {
            TWO_NODE_DELAY_US
        } else {
            0
        };
        self.schedule(
            self.now_us + delay_us + after_us,
            Ev::Fence(FenceDone {
                by,
                inc,
                power,
                target,
                attempt,
                power_cycle,
                outcome,
            }),
        );
    }

    /// The device acted (or gave up): power cycle the target, then tell the coordinator.
    pub(super) fn fence_done(&mut self, f: FenceDone) {
        let asker_up = self.machine_up(f.by) && self.nodes[usize::from(f.by)].power == f.power;
        if !asker_up {
            self.trace(format!(
                "the fence of {} by {} died with its machine",
                self.name(f.target),
                self.name(f.by)
            ));
            return;
        }
        if f.power_cycle {
            // The machine, whatever its core does (paused, restarting): what it runs dies.
            if self.machine_up(f.target) {
                self.crash(f.target, "fenced: power cycled", None);
            } else {
                // Already down: the power cycle kills nothing more.
                self.trace(format!("{} fenced while down", self.name(f.target)));
            }
        }
        let i = usize::from(f.by);
        if self.nodes[i].incarnation != f.inc {
            return;
        }
        if let Some(p) = self.nodes[i].paused.as_mut() {
            // The asking core does not step: the answer waits for it (the power is off now).
            p.deferred.push(Ev::Fence(FenceDone {
                power_cycle: false,
                ..f
            }));
            return;
        }
        self.trace(format!(
            "{} hears the fence of {} (attempt {}) {}",
            self.name(f.by),
            self.name(f.target),
            f.attempt,
            if f.outcome.ok { "succeeded" } else { "failed" }
        ));
        let local = self.nodes[i].clock.local(self.now_us);
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.handle(
                Input::FenceResult {
                    target: f.target,
                    attempt: f.attempt,
                    outcome: f.outcome,
                },
                local,
            );
            self.after_node(f.by);
        }
    }
}

fn outcome(ok: bool, exit_code: Option<i32>, run_us: u64, reason: &str) -> FenceOutcome {
    FenceOutcome {
        ok,
        action: "reboot".into(),
        exit_code,
        duration_ms: run_us / 1000,
        reason: reason.into(),
        output: String::new(),
    }
}
