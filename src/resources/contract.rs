//! An agent run through its contract, the way `ocf-tester` runs an OCF agent: what
//! `eternectl agent test TYPE` reports. Each step is one operation with the outcome the
//! contract requires of it; a step that answers otherwise is a problem of the agent, named
//! with what it answered.
//!
//! | step | requires |
//! |---|---|
//! | validate | this node can run it (programs, parameters, an OCF agent's meta-data and `validate-all`) |
//! | probe | not running (else the run stops here: a test never touches what already runs) |
//! | start | `Ok` |
//! | probe, monitor quick, monitor deep | `Ok`: it is seen running at every depth |
//! | start again | `Ok`: starting what runs is a success |
//! | stop | `Ok` |
//! | monitor quick, probe | `NotRunning`: stopped is seen as stopped, never as failed |
//! | stop again | `Ok`: stopping what is stopped is a success |
//!
//! Every operation is bounded by its timeout, as the daemon bounds it. After a failed start
//! the run still stops the resource, so a test leaves nothing behind.

use std::time::Duration;

use super::{perform, Agent, Report};
use crate::policy::group::{Action, Outcome};

/// One step of the run and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What was done, e.g. `"monitor (deep)"`.
    pub name: &'static str,
    /// What the contract requires.
    pub wanted: Outcome,
    /// What the agent answered (`None`: it gave no answer within the bound).
    pub got: Option<Outcome>,
    /// The agent's reason, or what went wrong.
    pub reason: String,
}

impl Step {
    /// Whether the agent did what the contract requires.
    pub fn passed(&self) -> bool {
        self.got == Some(self.wanted)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The steps taken, in order.
    pub steps: Vec<Step>,
    /// Why the run stopped before its end, if it did.
    pub stopped_early: Option<String>,
}

impl Run {
    /// The steps that failed.
    pub fn problems(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| !s.passed())
    }

    /// Whether the agent passed every step and the run reached its end.
    pub fn passed(&self) -> bool {
        self.stopped_early.is_none() && self.problems().next().is_none()
    }
}

/// The bounds of the run's operations.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// `start` (and `validate`).
    pub start: Duration,
    /// `stop`.
    pub stop: Duration,
    /// `probe` and `monitor`.
    pub monitor: Duration,
}

/// Runs `agent` through its contract (see the module docs).
pub async fn run(agent: &dyn Agent, bounds: Bounds) -> Run {
    let mut steps = Vec::new();
    let validated = tokio::time::timeout(bounds.start, agent.validate()).await;
    let why = match validated {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", bounds.start.as_millis())),
    };
    steps.push(Step {
        name: "validate",
        wanted: Outcome::Ok,
        got: Some(if why.is_none() {
            Outcome::Ok
        } else {
            Outcome::FailedHard
        }),
        reason: why.clone().unwrap_or_else(|| "this node can run it".into()),
    });
    if let Some(why) = why {
        return Run {
            steps,
            stopped_early: Some(format!("validate failed: {why}")),
        };
    }
    let first = op(agent, "probe", Action::Probe, Outcome::NotRunning, bounds).await;
    let running = first.got == Some(Outcome::Ok);
    steps.push(first);
    if running {
        return Run {
            steps,
            stopped_early: Some(
                "it already runs on this node: a test never touches a running resource; stop it \
                 first (or test on a node that does not run it)"
                    .into(),
            ),
        };
    }
    let plan: [(&'static str, Action, Outcome); 9] = [
        ("start", Action::Start, Outcome::Ok),
        ("probe (running)", Action::Probe, Outcome::Ok),
        ("monitor (quick)", Action::MonitorQuick, Outcome::Ok),
        ("monitor (deep)", Action::MonitorDeep, Outcome::Ok),
        ("start again", Action::Start, Outcome::Ok),
        ("stop", Action::Stop, Outcome::Ok),
        (
            "monitor (quick, stopped)",
            Action::MonitorQuick,
            Outcome::NotRunning,
        ),
        ("probe (stopped)", Action::Probe, Outcome::NotRunning),
        ("stop again", Action::Stop, Outcome::Ok),
    ];
    let mut started = true;
    for (name, action, wanted) in plan {
        if !started && action != Action::Stop {
            continue;
        }
        let step = op(agent, name, action, wanted, bounds).await;
        if name == "start" && !step.passed() {
            // Nothing more to learn while it does not run; still stop it, below.
            started = false;
        }
        steps.push(step);
    }
    let stopped_early = (!started).then(|| "start failed: only the stops were tried".to_string());
    Run {
        steps,
        stopped_early,
    }
}

async fn op(
    agent: &dyn Agent,
    name: &'static str,
    action: Action,
    wanted: Outcome,
    bounds: Bounds,
) -> Step {
    let bound = match action {
        Action::Start => bounds.start,
        Action::Stop => bounds.stop,
        _ => bounds.monitor,
    };
    // Epoch 1: the only activation of this run.
    match tokio::time::timeout(bound, perform(agent, action, 1)).await {
        Ok(Report { outcome, reason }) => Step {
            name,
            wanted,
            got: Some(outcome),
            reason,
        },
        Err(_) => Step {
            name,
            wanted,
            got: None,
            reason: format!("no answer within {} ms", bound.as_millis()),
        },
    }
}
